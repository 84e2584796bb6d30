/*
 * Fuzzes the incremental frame decoder the way a socket feeds it: the
 * stream arrives in pieces of any size, and every complete frame goes
 * through the envelope parser, as in a session.
 *
 * Input layout: 5 parameter bytes, then the byte stream.
 *   [0]    max_frame - 1 (so 1..256: small, so that too_large is reached)
 *   [1]    longest piece - 1 (pieces are 0..that many bytes)
 *   [2..3] seed of the piece sizes
 *   [4]    bit 7 set: the frame callback asks to stop after every
 *          (low 3 bits + 1) frames; otherwise it never stops
 *
 * When the callback never stops, a plain reading of the whole stream says
 * what the decoder must do whatever the split: deliver exactly its frames,
 * in order, then end with its status and idleness. Each piece is fed from
 * a heap block of its exact size, so that ASan sees any read past it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz_target.h"

#define PARAM_BYTES 5

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_decoder: %s\n", what);
    abort();
}

static uint32_t read_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* xorshift32: piece sizes that depend on the input alone. */
static uint32_t next_random(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* The plain reading of the stream: where the next frame starts. */
typedef struct reference {
    const unsigned char *stream;
    size_t len, pos;
    uint32_t max_frame;
} reference;

/* What the stream holds at `ref->pos`: a whole frame (SA_DECODE_OK with
 * *frame_len set), an error status, or the end (SA_DECODE_OK, *frame_len 0,
 * *complete 1 when no partial frame is left). */
static enum sa_decode_status reference_next(const reference *ref, size_t *frame_len,
                                            int *complete)
{
    size_t left = ref->len - ref->pos;
    *frame_len = 0;
    *complete = left == 0;
    if (left < SA_FRAME_HEADER)
        return SA_DECODE_OK;
    uint32_t n = read_be32(ref->stream + ref->pos);
    if (n == 0)
        return SA_DECODE_EMPTY;
    if (n > ref->max_frame)
        return SA_DECODE_TOO_LARGE;
    if (left - SA_FRAME_HEADER >= n)
        *frame_len = n;
    return SA_DECODE_OK;
}

typedef struct feed_state {
    reference ref;
    int checking;        /* the callback never stops: compare with ref */
    unsigned stop_every; /* frames between stops, when not checking */
    unsigned frames;
    int asked_stop; /* the callback returned nonzero during this feed */
} feed_state;

/* Valid frames must survive encoding: the host re-encodes what it echoes. */
static void check_reencoding(const sa_envelope *env)
{
    sa_frame *f = sa_frame_from_json(env->root);
    if (!f)
        fail("a valid request could not be encoded again");
    sa_envelope again;
    if (sa_envelope_parse(f->bytes + SA_FRAME_HEADER, f->len - SA_FRAME_HEADER, &again) != 0 ||
        strcmp(again.type, env->type) != 0)
        fail("a valid request is not valid once encoded again");
    sa_envelope_free(&again);
    sa_frame_unref(f);
}

static void check_envelope(const unsigned char *payload, size_t len)
{
    sa_envelope env;
    int rc = sa_envelope_parse(payload, len, &env);
    if (rc == 0) {
        if (!env.root || !env.type || env.error)
            fail("a valid envelope lacks its root or type, or has an error");
        if (env.id && !sa_id_valid(env.id))
            fail("a valid envelope has an invalid id");
        check_reencoding(&env);
    } else if (rc != -1 || !env.error || !env.message) {
        fail("an invalid envelope has no error code or message");
    }
    sa_envelope_free(&env);
}

static int on_frame(void *arg, const unsigned char *payload, size_t len)
{
    feed_state *st = arg;
    st->frames++;
    if (len == 0 || len > st->ref.max_frame)
        fail("frame length outside 1..max_frame");
    if (st->checking) {
        size_t expected_len;
        int complete;
        if (reference_next(&st->ref, &expected_len, &complete) != SA_DECODE_OK ||
            expected_len != len ||
            memcmp(payload, st->ref.stream + st->ref.pos + SA_FRAME_HEADER, len) != 0)
            fail("the decoder delivered a frame the stream does not hold here");
        st->ref.pos += SA_FRAME_HEADER + len;
    }
    check_envelope(payload, len);
    if (!st->checking && st->frames % st->stop_every == 0) {
        st->asked_stop = 1;
        return 1;
    }
    return 0;
}

/* Feeds one piece from a heap copy of exactly its size. */
static enum sa_decode_status feed_piece(sa_decoder *d, feed_state *st,
                                        const unsigned char *piece, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1); /* ours; freed below */
    if (!copy)
        fail("out of memory");
    memcpy(copy, piece, len);
    int stopped = -1;
    st->asked_stop = 0;
    enum sa_decode_status status = sa_decoder_feed(d, copy, len, on_frame, st, &stopped);
    free(copy);
    if (stopped != st->asked_stop || (stopped && status != SA_DECODE_OK))
        fail("*stopped does not match what the callback asked");
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PARAM_BYTES)
        return 0;
    uint32_t max_frame = 1u + data[0];
    size_t longest_piece = 1u + (size_t)data[1];
    uint32_t seed = ((uint32_t)data[2] << 8 | data[3]) + 1u; /* xorshift needs nonzero */
    feed_state st = {
        .ref = {.stream = data + PARAM_BYTES, .len = size - PARAM_BYTES, .max_frame = max_frame},
        .checking = !(data[4] & 0x80),
        .stop_every = (data[4] & 7u) + 1u,
    };

    sa_decoder d;
    sa_decoder_init(&d, max_frame);
    enum sa_decode_status status = SA_DECODE_OK;
    size_t pos = 0;
    while (pos < st.ref.len && status == SA_DECODE_OK) {
        size_t piece = next_random(&seed) % (longest_piece + 1);
        if (piece > st.ref.len - pos)
            piece = st.ref.len - pos;
        status = feed_piece(&d, &st, st.ref.stream + pos, piece);
        pos += piece;
    }

    if (st.checking) {
        size_t frame_len;
        int complete;
        enum sa_decode_status expected = reference_next(&st.ref, &frame_len, &complete);
        if (frame_len != 0)
            fail("the decoder did not deliver a whole frame the stream holds");
        if (status != expected)
            fail("the decoder's status differs from the stream's");
        if (status == SA_DECODE_OK && sa_decoder_idle(&d) != complete)
            fail("the decoder's idleness differs from the stream's");
    }
    sa_decoder_free(&d);
    if (!sa_decoder_idle(&d))
        fail("a freed decoder is not idle");
    return 0;
}
