/*
 * Unit tests of the wire codec (core/codec.c).
 *
 * malloc is wrapped (-Wl,--wrap=malloc) so the tests can count the codec's
 * allocations and make one fail; cJSON, being a shared library, is not
 * affected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"

/* ---- counting malloc ------------------------------------------------- */

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);

static size_t malloc_calls;
static size_t malloc_last_size;
static int fail_next_malloc;

void *__wrap_malloc(size_t size)
{
    malloc_calls++;
    malloc_last_size = size;
    if (fail_next_malloc) {
        fail_next_malloc = 0;
        return NULL;
    }
    return __real_malloc(size);
}

/* ---- helpers ---------------------------------------------------------- */

/* Appends a frame carrying `json` to buf (of capacity cap), returns the
 * new length. */
static size_t put_frame(unsigned char *buf, size_t used, size_t cap, const char *json)
{
    size_t n = strlen(json);
    assert_true(used + 4 + n <= cap);
    buf[used] = (unsigned char)(n >> 24);
    buf[used + 1] = (unsigned char)(n >> 16);
    buf[used + 2] = (unsigned char)(n >> 8);
    buf[used + 3] = (unsigned char)n;
    memcpy(buf + used + 4, json, n);
    return used + 4 + n;
}

/* Checks each delivered frame against the expected texts, without
 * allocating (so allocation counts measure the decoder alone). */
typedef struct collector {
    const char *const *expected;
    size_t expected_count;
    size_t got;
    size_t stop_after; /* 0 = never stop */
    const unsigned char *input_lo, *input_hi; /* the buffer being fed */
    size_t delivered_in_place;
} collector;

static int collect(void *arg, const unsigned char *payload, size_t len)
{
    collector *c = arg;
    assert_true(c->got < c->expected_count);
    const char *want = c->expected[c->got];
    assert_int_equal(len, strlen(want));
    assert_memory_equal(payload, want, len);
    if (payload >= c->input_lo && payload < c->input_hi)
        c->delivered_in_place++;
    c->got++;
    return c->stop_after && c->got == c->stop_after;
}

static const char *const three_frames[] = {
    "{\"type\":\"ping\",\"ts\":1}",
    "{\"type\":\"msg\",\"text\":\"h\xc3\xa9llo\"}",
    "{\"type\":\"x\"}",
};

static size_t three_frames_buffer(unsigned char *buf, size_t cap)
{
    size_t used = 0;
    for (size_t i = 0; i < 3; i++)
        used = put_frame(buf, used, cap, three_frames[i]);
    return used;
}

/* ---- decoder ---------------------------------------------------------- */

static void test_decoder_one_byte_feeds(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t len = three_frames_buffer(buf, sizeof buf);
    sa_decoder d;
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    collector c = {.expected = three_frames, .expected_count = 3};
    for (size_t i = 0; i < len; i++) {
        unsigned char byte = buf[i];
        c.input_lo = &byte;
        c.input_hi = &byte + 1;
        int stopped = -1;
        assert_int_equal(sa_decoder_feed(&d, &byte, 1, collect, &c, &stopped), SA_DECODE_OK);
        assert_int_equal(stopped, 0);
    }
    assert_int_equal(c.got, 3);
    assert_int_equal(c.delivered_in_place, 0);
    assert_null(d.payload); /* idle decoders hold no buffer */
    assert_int_equal(d.header_have, 0);
    sa_decoder_free(&d);
}

static void test_decoder_many_frames_one_feed_no_copy(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t len = three_frames_buffer(buf, sizeof buf);
    sa_decoder d;
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    collector c = {.expected = three_frames, .expected_count = 3, .input_lo = buf,
                   .input_hi = buf + len};
    size_t before = malloc_calls;
    assert_int_equal(sa_decoder_feed(&d, buf, len, collect, &c, NULL), SA_DECODE_OK);
    assert_int_equal(malloc_calls, before);
    assert_int_equal(c.got, 3);
    assert_int_equal(c.delivered_in_place, 3);
    assert_null(d.payload);
    sa_decoder_free(&d);
}

static void test_decoder_every_split_point(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t len = three_frames_buffer(buf, sizeof buf);
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b++) {
            sa_decoder d;
            sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
            collector c = {.expected = three_frames, .expected_count = 3};
            assert_int_equal(sa_decoder_feed(&d, buf, a, collect, &c, NULL), SA_DECODE_OK);
            assert_int_equal(sa_decoder_feed(&d, buf + a, b - a, collect, &c, NULL),
                             SA_DECODE_OK);
            assert_int_equal(sa_decoder_feed(&d, buf + b, len - b, collect, &c, NULL),
                             SA_DECODE_OK);
            assert_int_equal(c.got, 3);
            assert_null(d.payload);
            sa_decoder_free(&d);
        }
    }
}

static void test_decoder_partial_frame_buffer(void **state)
{
    (void)state;
    static const char *const one[] = {"{\"type\":\"partial\"}"};
    unsigned char buf[64];
    size_t len = put_frame(buf, 0, sizeof buf, one[0]);
    sa_decoder d;
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    collector c = {.expected = one, .expected_count = 1};
    size_t before = malloc_calls;
    assert_int_equal(sa_decoder_feed(&d, buf, 7, collect, &c, NULL), SA_DECODE_OK);
    assert_int_equal(malloc_calls, before + 1); /* exactly one buffer of N */
    assert_non_null(d.payload);
    assert_int_equal(d.payload_need, strlen(one[0]));
    assert_int_equal(d.payload_have, 3);
    assert_int_equal(c.got, 0);
    assert_int_equal(sa_decoder_feed(&d, buf + 7, len - 7, collect, &c, NULL), SA_DECODE_OK);
    assert_int_equal(c.got, 1);
    assert_null(d.payload);
    sa_decoder_free(&d);
}

static void test_decoder_free_partial(void **state)
{
    (void)state;
    unsigned char buf[64];
    put_frame(buf, 0, sizeof buf, "{\"type\":\"never finished\"}");
    sa_decoder d;
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    collector c = {.expected = NULL, .expected_count = 0};
    assert_int_equal(sa_decoder_feed(&d, buf, 10, collect, &c, NULL), SA_DECODE_OK);
    assert_non_null(d.payload);
    sa_decoder_free(&d); /* LeakSanitizer checks the partial frame is freed */
    assert_null(d.payload);
}

static void test_decoder_zero_length(void **state)
{
    (void)state;
    static const unsigned char zero[] = {0, 0, 0, 0, '{', '}'};
    sa_decoder d;
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    collector c = {.expected = NULL, .expected_count = 0};
    assert_int_equal(sa_decoder_feed(&d, zero, sizeof zero, collect, &c, NULL),
                     SA_DECODE_EMPTY);
    assert_int_equal(c.got, 0);
    sa_decoder_free(&d);

    /* Also when the header arrives one byte at a time. */
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(sa_decoder_feed(&d, zero + i, 1, collect, &c, NULL), SA_DECODE_OK);
    assert_int_equal(sa_decoder_feed(&d, zero + 3, 1, collect, &c, NULL), SA_DECODE_EMPTY);
    sa_decoder_free(&d);
}

static void test_decoder_too_large_allocates_nothing(void **state)
{
    (void)state;
    static const unsigned char huge[] = {0xFF, 0xFF, 0xFF, 0xFF}; /* ~4 GiB */
    sa_decoder d;
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    collector c = {.expected = NULL, .expected_count = 0};
    size_t before = malloc_calls;
    assert_int_equal(sa_decoder_feed(&d, huge, sizeof huge, collect, &c, NULL),
                     SA_DECODE_TOO_LARGE);
    assert_int_equal(malloc_calls, before);
    assert_null(d.payload);
    sa_decoder_free(&d);

    /* One past the limit, split across feeds. */
    static const unsigned char over[] = {0x00, 0x00, 0x04, 0x01};
    sa_decoder_init(&d, 1024);
    before = malloc_calls;
    assert_int_equal(sa_decoder_feed(&d, over, 2, collect, &c, NULL), SA_DECODE_OK);
    assert_int_equal(sa_decoder_feed(&d, over + 2, 2, collect, &c, NULL), SA_DECODE_TOO_LARGE);
    assert_int_equal(malloc_calls, before);
    assert_null(d.payload);
    sa_decoder_free(&d);

}

static int count_frames(void *arg, const unsigned char *payload, size_t len)
{
    (void)payload;
    (void)len;
    (*(size_t *)arg)++;
    return 0;
}

/* A header announcing a big frame costs only what has arrived of it. */
static void test_decoder_grows_with_arrivals(void **state)
{
    (void)state;
    const size_t announced = 1024 * 1024;
    unsigned char *buf = malloc(4 + announced);
    assert_non_null(buf);
    buf[0] = 0;
    buf[1] = 0x10; /* 1 MiB */
    buf[2] = 0;
    buf[3] = 0;
    buf[4] = '"';
    memset(buf + 5, 'x', announced - 2);
    buf[4 + announced - 1] = '"';
    sa_decoder d;
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    size_t frames = 0;
    size_t before = malloc_calls;
    assert_int_equal(sa_decoder_feed(&d, buf, 4 + 10, count_frames, &frames, NULL),
                     SA_DECODE_OK);
    assert_int_equal(malloc_calls, before + 1);
    assert_true(malloc_last_size <= 4096);
    assert_true(d.payload_cap <= 4096);
    /* The rest in uneven pieces: the buffer grows, the frame comes out whole. */
    size_t pos = 4 + 10, step = 1000;
    while (pos < 4 + announced) {
        size_t n = 4 + announced - pos < step ? 4 + announced - pos : step;
        assert_int_equal(sa_decoder_feed(&d, buf + pos, n, count_frames, &frames, NULL),
                         SA_DECODE_OK);
        if (pos + n < 4 + announced)
            assert_true(d.payload_cap <= 2 * d.payload_have + 4096);
        pos += n;
        step = step * 3 / 2;
    }
    assert_int_equal(frames, 1);
    assert_null(d.payload);
    sa_decoder_free(&d);
    free(buf);
}

static void test_decoder_exact_limit(void **state)
{
    (void)state;
    const size_t limit = 1024;
    unsigned char *buf = malloc(4 + limit);
    assert_non_null(buf);
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = 0x04;
    buf[3] = 0;
    memset(buf + 4, ' ', limit);
    sa_decoder d;
    sa_decoder_init(&d, (uint32_t)limit);
    size_t frames = 0;
    assert_int_equal(sa_decoder_feed(&d, buf, 4 + limit, count_frames, &frames, NULL),
                     SA_DECODE_OK);
    assert_int_equal(frames, 1);
    sa_decoder_free(&d);
    free(buf);
}

static void test_decoder_stop_from_callback(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t len = three_frames_buffer(buf, sizeof buf);
    sa_decoder d;
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    collector c = {.expected = three_frames, .expected_count = 3, .stop_after = 2};
    int stopped = 0;
    assert_int_equal(sa_decoder_feed(&d, buf, len, collect, &c, &stopped), SA_DECODE_OK);
    assert_int_equal(stopped, 1);
    assert_int_equal(c.got, 2);
    sa_decoder_free(&d);

    /* Stopping on a frame that was reassembled from pieces. */
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    collector c2 = {.expected = three_frames, .expected_count = 3, .stop_after = 1};
    stopped = 0;
    assert_int_equal(sa_decoder_feed(&d, buf, 5, collect, &c2, &stopped), SA_DECODE_OK);
    assert_int_equal(stopped, 0);
    assert_int_equal(sa_decoder_feed(&d, buf + 5, len - 5, collect, &c2, &stopped),
                     SA_DECODE_OK);
    assert_int_equal(stopped, 1);
    assert_int_equal(c2.got, 1);
    assert_null(d.payload);
    sa_decoder_free(&d);
}

static void test_decoder_out_of_memory(void **state)
{
    (void)state;
    unsigned char buf[64];
    put_frame(buf, 0, sizeof buf, "{\"type\":\"x\"}");
    sa_decoder d;
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    collector c = {.expected = NULL, .expected_count = 0};
    fail_next_malloc = 1;
    assert_int_equal(sa_decoder_feed(&d, buf, 6, collect, &c, NULL), SA_DECODE_NOMEM);
    fail_next_malloc = 0;
    assert_null(d.payload);
    sa_decoder_free(&d);
}

/* ---- encoder ---------------------------------------------------------- */

typedef struct round_trip {
    const cJSON *want;
    size_t frames;
} round_trip;

static int compare_json(void *arg, const unsigned char *payload, size_t len)
{
    round_trip *rt = arg;
    sa_envelope env;
    assert_int_equal(sa_envelope_parse(payload, len, &env), 0);
    assert_true(cJSON_Compare(env.root, rt->want, 1));
    assert_string_equal(env.type, "message");
    sa_envelope_free(&env);
    rt->frames++;
    return 0;
}

static void test_frame_round_trip(void **state)
{
    (void)state;
    cJSON *msg = cJSON_Parse("{\"type\":\"message\",\"room\":\"lobby\",\"text\":\"\xe2\x82\xac 1\","
                             "\"ts\":1700000000000,\"list\":[1,2,{\"a\":null}]}");
    assert_non_null(msg);
    sa_frame *f = sa_frame_from_json(msg);
    assert_non_null(f);
    assert_true(f->len > 4);
    size_t n = (size_t)f->bytes[0] << 24 | (size_t)f->bytes[1] << 16 |
               (size_t)f->bytes[2] << 8 | f->bytes[3];
    assert_int_equal(n, f->len - 4);

    /* What the decoder gets back from the frame is the same JSON. */
    sa_decoder d;
    sa_decoder_init(&d, SA_DEFAULT_MAX_FRAME);
    round_trip check = {.want = msg};
    assert_int_equal(sa_decoder_feed(&d, f->bytes, f->len, compare_json, &check, NULL),
                     SA_DECODE_OK);
    assert_int_equal(check.frames, 1);
    sa_decoder_free(&d);

    sa_frame_ref(f);
    sa_frame_unref(f);
    sa_frame_unref(f); /* the last reference: freed (LeakSanitizer checks) */
    sa_frame_unref(NULL);
    cJSON_Delete(msg);
}

static void test_frame_from_text(void **state)
{
    (void)state;
    sa_frame *f = sa_frame_from_text("{\"type\":\"x\"}", 12);
    assert_non_null(f);
    assert_int_equal(f->len, 16);
    static const unsigned char header[] = {0, 0, 0, 12};
    assert_memory_equal(f->bytes, header, 4);
    assert_memory_equal(f->bytes + 4, "{\"type\":\"x\"}", 12);
    sa_frame_unref(f);
    assert_null(sa_frame_from_text("", 0));
    assert_null(sa_frame_from_json(NULL));
    fail_next_malloc = 1;
    assert_null(sa_frame_from_text("{}", 2));
    fail_next_malloc = 0;
}

/* ---- UTF-8 ------------------------------------------------------------ */

typedef struct utf8_case {
    const char *bytes;
    size_t len;
    int valid;
} utf8_case;

#define U8(s, v) {s, sizeof(s) - 1, v}

static void test_utf8_table(void **state)
{
    (void)state;
    static const utf8_case cases[] = {
        U8("", 1),
        U8("plain ascii, long enough for the 8-byte fast path", 1),
        U8("caf\xc3\xa9", 1),
        U8("\xe2\x82\xac", 1),             /* U+20AC */
        U8("\xf0\x9f\x98\x80", 1),         /* U+1F600 */
        U8("\xf4\x8f\xbf\xbf", 1),         /* U+10FFFF */
        U8("\xed\x9f\xbf", 1),             /* U+D7FF */
        U8("\xee\x80\x80", 1),             /* U+E000 */
        U8("\xef\xbf\xbf", 1),             /* U+FFFF */
        U8("abcdefgh\xc3\xa9xyz", 1),      /* non-ASCII after a fast block */
        U8("\xc0\x80", 0),                 /* overlong NUL */
        U8("\xc1\xbf", 0),                 /* overlong */
        U8("\xe0\x80\x80", 0),             /* overlong */
        U8("\xe0\x9f\xbf", 0),             /* overlong */
        U8("\xf0\x8f\xbf\xbf", 0),         /* overlong */
        U8("\xed\xa0\x80", 0),             /* surrogate D800 */
        U8("\xed\xbf\xbf", 0),             /* surrogate DFFF */
        U8("\xf4\x90\x80\x80", 0),         /* U+110000 */
        U8("\xf5\x80\x80\x80", 0),
        U8("\xf8\x88\x80\x80\x80", 0),     /* 5-byte form */
        U8("\xfc\x84\x80\x80\x80\x80", 0), /* 6-byte form */
        U8("\xff", 0),
        U8("\x80", 0),                     /* lone continuation */
        U8("\xc3", 0),                     /* truncated */
        U8("\xe2\x82", 0),                 /* truncated */
        U8("\xf0\x9f\x98", 0),             /* truncated */
        U8("abcdefgh\xe2\x82", 0),         /* truncated at the end */
        U8("\xe2\x28\xa1", 0),             /* bad continuation */
        U8("\xf0\x9f\x28\x80", 0),         /* bad third byte */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* An exact-size copy, so an over-read shows under ASan. */
        unsigned char *copy = malloc(cases[i].len ? cases[i].len : 1);
        assert_non_null(copy);
        memcpy(copy, cases[i].bytes, cases[i].len);
        if (sa_utf8_valid(copy, cases[i].len) != cases[i].valid)
            fail_msg("case %zu: expected %s", i, cases[i].valid ? "valid" : "invalid");
        free(copy);
    }
}

/* ASCII is skipped in blocks of 32 and 8 bytes: a sequence must be judged
 * the same wherever it falls in a block, and a truncated one at the end. */
static void test_utf8_every_position(void **state)
{
    (void)state;
    static const utf8_case inner[] = {
        U8("\xc3\xa9", 1), U8("\xf0\x9f\x98\x80", 1), U8("\xed\xa0\x80", 0),
        U8("\x80", 0),      U8("\xff", 0),
    };
    enum { ASCII = 70 };
    unsigned char text[ASCII + 4];
    for (size_t k = 0; k < sizeof inner / sizeof *inner; k++) {
        for (size_t at = 0; at <= ASCII; at++) {
            size_t len = at + inner[k].len;
            unsigned char *copy = malloc(len);
            assert_non_null(copy);
            memset(text, 'a', at);
            memcpy(text + at, inner[k].bytes, inner[k].len);
            memcpy(copy, text, len);
            assert_int_equal(sa_utf8_valid(copy, len), inner[k].valid);
            /* Cut one byte short, a multibyte sequence is never valid. */
            if (inner[k].valid)
                assert_int_equal(sa_utf8_valid(copy, len - 1), 0);
            free(copy);
        }
    }
}

/* ---- envelope --------------------------------------------------------- */

/* Parses `json` from an exact-size heap copy (frames are not NUL-terminated). */
static int parse(const char *json, size_t len, sa_envelope *env)
{
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, json, len);
    int rc = sa_envelope_parse(copy, len, env);
    free(copy);
    return rc;
}

#define PARSE(lit, env) parse(lit, sizeof(lit) - 1, env)

static void expect_error(int rc, const sa_envelope *env, const char *code, const char *message)
{
    assert_int_equal(rc, -1);
    assert_string_equal(env->error, code);
    if (message)
        assert_string_equal(env->message, message);
}

static void test_envelope_ok(void **state)
{
    (void)state;
    sa_envelope env;
    assert_int_equal(PARSE("{\"type\":\"ping\"}", &env), 0);
    assert_string_equal(env.type, "ping");
    assert_null(env.id);
    assert_null(env.error);
    sa_envelope_free(&env);

    assert_int_equal(PARSE(" \r\n\t{\"type\":\"msg\",\"id\":7,\"room\":\"lobby\"} \n", &env), 0);
    assert_string_equal(env.type, "msg");
    assert_non_null(env.id);
    assert_true(cJSON_IsNumber(env.id));
    assert_true(env.id->valuedouble == 7);
    sa_envelope_free(&env);

    assert_int_equal(PARSE("{\"type\":\"msg\",\"id\":\"req-1\",\"text\":\"h\\u00e9 \\ud83d\\ude00\"}",
                           &env),
                     0);
    assert_string_equal(env.id->valuestring, "req-1");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(env.root, "text");
    assert_string_equal(text->valuestring, "h\xc3\xa9 \xf0\x9f\x98\x80");
    sa_envelope_free(&env);
}

static void test_envelope_bad_json(void **state)
{
    (void)state;
    sa_envelope env;
    expect_error(PARSE("{\"type\":", &env), &env, "bad_json", "payload is not valid JSON");
    assert_null(env.root);
    sa_envelope_free(&env);
    expect_error(PARSE("not json", &env), &env, "bad_json", "payload is not valid JSON");
    sa_envelope_free(&env);
    expect_error(PARSE("{\"type\":\"x\"} trailing", &env), &env, "bad_json",
                 "payload is not valid JSON");
    assert_null(env.root);
    sa_envelope_free(&env);
    expect_error(PARSE("{\"type\":\"x\"}{}", &env), &env, "bad_json", NULL);
    sa_envelope_free(&env);
    /* A raw control byte inside a string, and a raw NUL outside one. */
    expect_error(PARSE("{\"type\":\"a\x01z\"}", &env), &env, "bad_json", NULL);
    sa_envelope_free(&env);
    expect_error(parse("{\"type\":\"x\"}\0", 13, &env), &env, "bad_json", NULL);
    sa_envelope_free(&env);
    expect_error(parse("{\"type\":\"a\0b\"}", 14, &env), &env, "bad_json", NULL);
    sa_envelope_free(&env);
    /* Raw invalid UTF-8, which cJSON alone would accept. */
    expect_error(PARSE("{\"type\":\"\xc0\x80\"}", &env), &env, "bad_json",
                 "payload is not valid UTF-8");
    sa_envelope_free(&env);
    expect_error(PARSE("{\"type\":\"\xed\xa0\x80\"}", &env), &env, "bad_json",
                 "payload is not valid UTF-8");
    sa_envelope_free(&env);
    /* A lone surrogate escape. */
    expect_error(PARSE("{\"type\":\"\\ud800\"}", &env), &env, "bad_json", NULL);
    sa_envelope_free(&env);
    /* Truncated in an escape. */
    expect_error(PARSE("{\"type\":\"\\", &env), &env, "bad_json", NULL);
    sa_envelope_free(&env);
    expect_error(parse("", 0, &env), &env, "bad_json", NULL);
    sa_envelope_free(&env);
}

/* Long strings are skipped a word at a time: a byte that ends the plain
 * text (control byte, escape, closing quote, \u0000) must count wherever
 * it falls in a word, and the text around it must reach cJSON unchanged. */
static void test_envelope_long_strings(void **state)
{
    (void)state;
    static const char head[] = "{\"type\":\"x\",\"data\":\"";
    enum { PLAIN = 40 };
    static const struct {
        const char *inner; /* put inside the plain text */
        int rc;
        const char *value; /* what cJSON must see between the two halves of the plain text */
    } cases[] = {
        {"\x1f", -1, NULL},      {"\\\"", 0, "\""},  {"\\\\", 0, "\\"},
        {"\\u0041", 0, "A"},    {"\\u0000", -1, NULL}, {"\xc3\xa9", 0, "\xc3\xa9"},
        {"\"", -1, NULL}, /* ends the string early: what follows is not JSON */
    };
    char plain[PLAIN + 1];
    for (size_t i = 0; i < PLAIN; i++)
        plain[i] = (char)('a' + i % 26);
    plain[PLAIN] = '\0';
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        for (size_t at = 0; at <= PLAIN; at++) {
            char json[256], want[128];
            int n = snprintf(json, sizeof json, "%s%.*s%s%s\"}", head, (int)at, plain,
                             cases[k].inner, plain + at);
            assert_true(n > 0 && (size_t)n < sizeof json);
            sa_envelope env;
            int rc = parse(json, (size_t)n, &env);
            assert_int_equal(rc, cases[k].rc);
            if (rc == 0) {
                snprintf(want, sizeof want, "%.*s%s%s", (int)at, plain, cases[k].value,
                         plain + at);
                const cJSON *data = cJSON_GetObjectItemCaseSensitive(env.root, "data");
                assert_string_equal(data->valuestring, want);
            }
            sa_envelope_free(&env);
        }
    }
}

/* A string of `len` letters, ours. */
static char *letters(size_t len, char first)
{
    char *s = malloc(len + 1);
    assert_non_null(s);
    for (size_t i = 0; i < len; i++)
        s[i] = (char)(first + i % 26);
    s[len] = '\0';
    return s;
}

/* sa_json_parse against cJSON on the same text: the same tree, or both
 * refuse it. */
static void expect_same_parse(const char *json)
{
    size_t len = strlen(json);
    cJSON *fast = sa_json_parse((const unsigned char *)json, len);
    const char *end = NULL;
    cJSON *plain = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (plain) {
        while (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r')
            end++;
        if (end != json + len) {
            cJSON_Delete(plain);
            plain = NULL;
        }
    }
    assert_true((fast == NULL) == (plain == NULL));
    if (fast) {
        /* Printed, not cJSON_Compare: that looks members up by key, so it
         * cannot tell duplicate keys apart. */
        char *a = cJSON_PrintUnformatted(fast), *b = cJSON_PrintUnformatted(plain);
        assert_non_null(a);
        assert_non_null(b);
        assert_string_equal(a, b); /* member order and duplicate keys too */
        free(a);
        free(b);
    }
    cJSON_Delete(fast);
    cJSON_Delete(plain);
}

/* `format` with each '@' replaced by the next of `a` and `b`; ours. */
static char *fill_in(const char *format, const char *a, const char *b)
{
    size_t len = strlen(format) + strlen(a) + strlen(b) + 1;
    char *out = malloc(len), *o = out;
    assert_non_null(out);
    const char *next[] = {a, b};
    int used = 0;
    for (const char *p = format; *p; p++) {
        if (*p == '@' && used < 2) {
            size_t n = strlen(next[used]);
            memcpy(o, next[used++], n);
            o += n;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

static void test_json_parse_long_strings(void **state)
{
    (void)state;
    char *l1 = letters(1024, 'a'), *l2 = letters(5000, 'b'), *l3 = letters(70000, 'c');
    char *under = letters(1023, 'd');
    static const char *const formats[] = {
        "{\"type\":\"file_chunk\",\"data\":\"@\",\"offset\":0,\"x\":\"@\"}",
        "{\"@\":1,\"k\":\"@\"}",                                 /* a long key */
        "{\"a\":[\"\",\"@\",{\"b\":\"@\",\"\":\"\"}],\"c\":\"x\"}", /* nested, empty strings */
        "{\"d\":\"@\",\"d\":\"@\"}",                           /* duplicate keys */
        "  [\"@\", 1, true, null, \"@\"]\n",                    /* not an object, spaces */
        "{\"e\":\"\\n@\",\"f\":\"@\"}",                       /* an escape keeps it with cJSON */
        "{\"g\":\"@\",\"g2\":\"@\"} x",                         /* trailing garbage */
        "{\"h\":\"@\",\"h2\":\"@",                              /* unterminated */
        "{\"i\":\"@\x01\",\"j\":\"@\"}",                       /* a raw control byte */
        "{\"u\":\"\xc3\xa9@\xe2\x82\xac\",\"v\":\"@\"}",           /* multibyte UTF-8 */
    };
    const char *fills[][2] = {{l1, l2}, {l3, l1}, {under, l2}, {l2, under}};
    for (size_t f = 0; f < sizeof formats / sizeof *formats; f++) {
        for (size_t k = 0; k < sizeof fills / sizeof *fills; k++) {
            char *json = fill_in(formats[f], fills[k][0], fills[k][1]);
            expect_same_parse(json);
            free(json);
        }
    }
    /* Many long strings in one text, between short ones. */
    cJSON *many = cJSON_CreateArray();
    assert_non_null(many);
    for (int i = 0; i < 40; i++)
        assert_true(cJSON_AddItemToArray(many, cJSON_CreateString(i % 3 ? l1 : "s")));
    char *text = cJSON_PrintUnformatted(many);
    assert_non_null(text);
    expect_same_parse(text);
    free(text);
    cJSON_Delete(many);
    free(l1);
    free(l2);
    free(l3);
    free(under);
}

static void test_envelope_not_object(void **state)
{
    (void)state;
    sa_envelope env;
    expect_error(PARSE("[{\"type\":\"x\"}]", &env), &env, "bad_request", NULL);
    assert_non_null(env.root);
    assert_null(env.type);
    sa_envelope_free(&env);
    expect_error(PARSE("\"type\"", &env), &env, "bad_request", NULL);
    sa_envelope_free(&env);
    expect_error(PARSE("42", &env), &env, "bad_request", NULL);
    sa_envelope_free(&env);
}

static void test_envelope_type(void **state)
{
    (void)state;
    sa_envelope env;
    expect_error(PARSE("{\"id\":3}", &env), &env, "bad_request", "missing string type");
    assert_null(env.type);
    assert_non_null(env.id); /* echoed even so */
    sa_envelope_free(&env);
    expect_error(PARSE("{\"type\":5,\"id\":\"a\"}", &env), &env, "bad_request",
                 "missing string type");
    assert_null(env.type);
    assert_string_equal(env.id->valuestring, "a");
    sa_envelope_free(&env);
    expect_error(PARSE("{\"type\":null}", &env), &env, "bad_request", "missing string type");
    sa_envelope_free(&env);
    /* "Type" is not "type". */
    expect_error(PARSE("{\"Type\":\"x\"}", &env), &env, "bad_request", "missing string type");
    sa_envelope_free(&env);
}

static void test_envelope_id(void **state)
{
    (void)state;
    static const char id_error[] = "id must be an integer or a string of at most 64 bytes";
    static const char *const good[] = {
        "{\"type\":\"t\",\"id\":0}",
        "{\"type\":\"t\",\"id\":-12}",
        "{\"type\":\"t\",\"id\":9007199254740992}",
        "{\"type\":\"t\",\"id\":-9007199254740992}",
        "{\"type\":\"t\",\"id\":1e3}",
        "{\"type\":\"t\",\"id\":\"\"}",
        "{\"type\":\"t\",\"id\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
    };
    static const char *const bad[] = {
        "{\"type\":\"t\",\"id\":\"01234567890123456789012345678901234567890123456789012345678901234\"}",
        "{\"type\":\"t\",\"id\":1.5}",
        "{\"type\":\"t\",\"id\":9007199254740994}",
        "{\"type\":\"t\",\"id\":-9007199254740994}",
        "{\"type\":\"t\",\"id\":1e400}",
        "{\"type\":\"t\",\"id\":{\"a\":1}}",
        "{\"type\":\"t\",\"id\":[1]}",
        "{\"type\":\"t\",\"id\":true}",
        "{\"type\":\"t\",\"id\":null}",
    };
    sa_envelope env;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (parse(good[i], strlen(good[i]), &env) != 0)
            fail_msg("rejected %s: %s", good[i], env.message);
        assert_non_null(env.id);
        sa_envelope_free(&env);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse(bad[i], strlen(bad[i]), &env);
        if (rc != -1)
            fail_msg("accepted %s", bad[i]);
        assert_string_equal(env.error, "bad_request");
        assert_string_equal(env.message, id_error);
        assert_null(env.id);
        assert_string_equal(env.type, "t"); /* type still echoed */
        sa_envelope_free(&env);
    }
}

static void test_envelope_nul(void **state)
{
    (void)state;
    sa_envelope env;
    expect_error(PARSE("{\"type\":\"hello\",\"id\":1,\"name\":\"al\\u0000ice\"}", &env), &env,
                 "bad_name", "name contains NUL");
    assert_string_equal(env.type, "hello");
    assert_true(env.id->valuedouble == 1);
    sa_envelope_free(&env);

    expect_error(PARSE("{\"type\":\"msg\",\"id\":\"x\",\"text\":\"\\u0000\"}", &env), &env,
                 "bad_request", "strings must not contain NUL");
    assert_string_equal(env.type, "msg");
    assert_string_equal(env.id->valuestring, "x");
    sa_envelope_free(&env);

    /* In a key, in a nested name, in an array, in the type, in the id. */
    expect_error(PARSE("{\"type\":\"msg\",\"te\\u0000xt\":\"a\"}", &env), &env, "bad_request",
                 NULL);
    sa_envelope_free(&env);
    expect_error(PARSE("{\"type\":\"x\",\"file\":{\"name\":\"\\u0000\"}}", &env), &env,
                 "bad_name", NULL);
    sa_envelope_free(&env);
    expect_error(PARSE("{\"type\":\"x\",\"name\":[\"\\u0000\"]}", &env), &env, "bad_request",
                 NULL);
    sa_envelope_free(&env);
    expect_error(PARSE("{\"type\":\"he\\u0000llo\",\"id\":2}", &env), &env, "bad_request",
                 "strings must not contain NUL");
    assert_null(env.type);
    assert_non_null(env.id);
    sa_envelope_free(&env);
    expect_error(PARSE("{\"type\":\"x\",\"id\":\"a\\u0000\"}", &env), &env, "bad_request", NULL);
    assert_null(env.id);
    assert_string_equal(env.type, "x");
    sa_envelope_free(&env);
    /* The first NUL in document order decides. */
    expect_error(PARSE("{\"type\":\"x\",\"text\":\"\\u0000\",\"name\":\"\\u0000\"}", &env), &env,
                 "bad_request", NULL);
    sa_envelope_free(&env);
    /* A member key spelled with escapes is still "name". */
    expect_error(PARSE("{\"type\":\"x\",\"na\\u006de\":\"a\\u0000\"}", &env), &env, "bad_name",
                 NULL);
    sa_envelope_free(&env);
    /* An escaped backslash followed by a real NUL escape. */
    expect_error(PARSE("{\"type\":\"x\",\"text\":\"\\\\\\u0000\"}", &env), &env, "bad_request",
                 NULL);
    sa_envelope_free(&env);
    /* NUL and bad JSON: not JSON wins. */
    expect_error(PARSE("{\"type\":\"x\",\"text\":\"\\u0000\"", &env), &env, "bad_json", NULL);
    sa_envelope_free(&env);
}

static void test_envelope_escaped_backslash_is_not_nul(void **state)
{
    (void)state;
    sa_envelope env;
    /* JSON text "\\u0000": a backslash, then the letters u0000. */
    assert_int_equal(PARSE("{\"type\":\"x\",\"name\":\"\\\\u0000\"}", &env), 0);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(env.root, "name");
    assert_string_equal(name->valuestring, "\\u0000");
    sa_envelope_free(&env);
    /* Other escapes of the digit zero are fine too. */
    assert_int_equal(PARSE("{\"type\":\"x\",\"text\":\"\\u0030\\u00000\"}", &env), -1);
    sa_envelope_free(&env);
    assert_int_equal(PARSE("{\"type\":\"x\",\"text\":\"\\u0030\\\"\\\\\"}", &env), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(env.root, "text")->valuestring,
                        "0\"\\");
    sa_envelope_free(&env);
}

/* {"type":"x","a": followed by `arrays` nested arrays: depth arrays + 1. */
static char *nested(size_t arrays)
{
    static const char head[] = "{\"type\":\"x\",\"a\":";
    size_t len = strlen(head) + 2 * arrays + 1;
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, head, strlen(head));
    memset(s + strlen(head), '[', arrays);
    memset(s + strlen(head) + arrays, ']', arrays);
    s[len - 1] = '}';
    s[len] = '\0';
    return s;
}

static void test_envelope_depth(void **state)
{
    (void)state;
    sa_envelope env;
    char *deep = nested(99); /* depth 100 */
    expect_error(parse(deep, strlen(deep), &env), &env, "bad_json", "nesting too deep");
    assert_null(env.root);
    sa_envelope_free(&env);
    free(deep);

    char *limit = nested(SA_JSON_MAX_DEPTH - 1); /* exactly the limit */
    assert_int_equal(parse(limit, strlen(limit), &env), 0);
    sa_envelope_free(&env);
    free(limit);

    char *over = nested(SA_JSON_MAX_DEPTH);
    expect_error(parse(over, strlen(over), &env), &env, "bad_json", "nesting too deep");
    sa_envelope_free(&env);
    free(over);

    /* Brackets inside strings do not count. */
    char text[400];
    int n = snprintf(text, sizeof text, "{\"type\":\"x\",\"t\":\"%0200d\"}", 0);
    assert_true(n > 0 && (size_t)n < sizeof text);
    memset(text + 17, '[', 200);
    assert_int_equal(parse(text, (size_t)n, &env), 0);
    sa_envelope_free(&env);
}

/* Every prefix and many one-byte mutations of some valid requests, each
 * from an exact-size copy: nothing may crash or read past the end (ASan),
 * and every result is either valid or carries an error code. */
static void test_envelope_prefixes_and_mutations(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "{\"type\":\"hello\",\"id\":1,\"name\":\"alice\",\"proto\":1}",
        "{\"type\":\"msg\",\"id\":\"a\",\"text\":\"h\\u00e9\\ud83d\\ude00\\\\\\\"x\\u0000\"}",
        "{\"type\":\"file_put\",\"size\":-1.5e3,\"list\":[true,false,null,{}],\"o\":{\"a\":[]}}",
        "{\"type\":\"caf\xc3\xa9\",\"n\":\"\xf0\x9f\x98\x80\"}",
    };
    static const unsigned char replacements[] = {'"', '\\', '{', '}', '[', ']', ',', ':', '0',
                                                  'u', 0x00, 0x1f, 0x80, 0xff, 'e', '-'};
    uint32_t x = 99;
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        size_t len = strlen(seeds[s]);
        for (size_t cut = 0; cut <= len; cut++) {
            sa_envelope env;
            int rc = parse(seeds[s], cut, &env);
            assert_true(rc == 0 ? env.error == NULL : env.error != NULL && env.message != NULL);
            assert_true(cut == len || rc == -1);
            sa_envelope_free(&env);
        }
        char *mutated = malloc(len);
        assert_non_null(mutated);
        for (size_t round = 0; round < 2000; round++) {
            memcpy(mutated, seeds[s], len);
            for (int k = 0; k < 3; k++) {
                x = x * 1103515245u + 12345u;
                size_t at = (x >> 8) % len;
                x = x * 1103515245u + 12345u;
                mutated[at] = (char)replacements[(x >> 8) % sizeof replacements];
            }
            sa_envelope env;
            int rc = parse(mutated, len, &env);
            assert_true(rc == 0 ? env.error == NULL && env.type != NULL : env.error != NULL);
            sa_envelope_free(&env);
        }
        free(mutated);
    }
}

/* ---- values ----------------------------------------------------------- */

static void test_json_get_size(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int rc;
        uint64_t value;
    } cases[] = {
        {"{\"n\":0}", 0, 0},
        {"{\"n\":-0}", 0, 0},
        {"{\"n\":5000000000}", 0, 5000000000u},
        {"{\"n\":5e9}", 0, 5000000000u},
        {"{\"n\":9007199254740992}", 0, 9007199254740992u},
        {"{\"n\":9007199254740994}", -1, 0},
        {"{\"n\":-1}", -1, 0},
        {"{\"n\":1.5}", -1, 0},
        {"{\"n\":1e400}", -1, 0},
        {"{\"n\":-1e400}", -1, 0},
        {"{\"n\":\"5\"}", -1, 0},
        {"{\"n\":null}", -1, 0},
        {"{\"n\":true}", -1, 0},
        {"{\"n\":[5]}", -1, 0},
        {"{\"m\":5}", -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *obj = cJSON_Parse(cases[i].json);
        assert_non_null(obj);
        uint64_t out = 12345;
        int rc = sa_json_get_size(obj, "n", &out);
        if (rc != cases[i].rc)
            fail_msg("%s: rc %d", cases[i].json, rc);
        assert_int_equal(out, cases[i].rc == 0 ? cases[i].value : 12345);
        cJSON_Delete(obj);
    }
    uint64_t out;
    assert_int_equal(sa_json_get_size(NULL, "n", &out), -1);
}

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(sa_name_valid("alice", 32));
    assert_true(sa_name_valid("A-z_0.9", 32));
    assert_true(sa_name_valid("abcd", 4));
    assert_false(sa_name_valid("abcde", 4));
    assert_false(sa_name_valid("", 32));
    assert_false(sa_name_valid(NULL, 32));
    assert_false(sa_name_valid("al ice", 32));
    assert_false(sa_name_valid("al/ice", 32));
    assert_false(sa_name_valid("caf\xc3\xa9", 32));
    assert_true(sa_name_valid("x", SIZE_MAX));
}

/* The decoded reply and the names of its members in order. */
static cJSON *decode_frame(const sa_frame *f)
{
    assert_non_null(f);
    size_t n = (size_t)f->bytes[0] << 24 | (size_t)f->bytes[1] << 16 |
               (size_t)f->bytes[2] << 8 | f->bytes[3];
    assert_int_equal(n + 4, f->len);
    cJSON *json = cJSON_ParseWithLength((const char *)f->bytes + 4, n);
    assert_non_null(json);
    return json;
}

static void expect_keys(const cJSON *obj, const char *const *keys, size_t count)
{
    size_t i = 0;
    for (const cJSON *c = obj->child; c; c = c->next, i++) {
        assert_true(i < count);
        assert_string_equal(c->string, keys[i]);
    }
    assert_int_equal(i, count);
}

static void test_frame_long_integers_exact(void **state)
{
    (void)state;
    cJSON *msg = cJSON_Parse("{\"type\":\"x\",\"id\":9007199254740991,"
                             "\"a\":[1.5,-9007199254740992,{\"ts\":1234567890123456}],\"s\":\"t\"}");
    assert_non_null(msg);
    sa_frame *f = sa_frame_from_json(msg);
    assert_non_null(f);
    const char *want = "{\"type\":\"x\",\"id\":9007199254740991,"
                       "\"a\":[1.5,-9007199254740992,{\"ts\":1234567890123456}],\"s\":\"t\"}";
    assert_int_equal(f->len, 4 + strlen(want));
    assert_memory_equal(f->bytes + 4, want, strlen(want));
    sa_frame_unref(f);
    cJSON_Delete(msg);
}

static void test_reply_frame(void **state)
{
    (void)state;
    cJSON *id = cJSON_CreateString("req-9");
    cJSON *fields = cJSON_Parse("{\"file_id\":\"f1\",\"expected\":5000000000,"
                                "\"list\":[1,{\"a\":\"b\"}],\"type\":\"evil\"}");
    assert_non_null(id);
    assert_non_null(fields);

    sa_frame *f = sa_reply_frame("error", "file_chunk", id, "bad_offset", "wrong offset", fields);
    cJSON *r = decode_frame(f);
    static const char *const error_keys[] = {"type", "re", "id", "file_id", "expected", "list",
                                             "code", "message"};
    expect_keys(r, error_keys, sizeof error_keys / sizeof error_keys[0]);
    assert_string_equal(cJSON_GetObjectItem(r, "type")->valuestring, "error");
    assert_string_equal(cJSON_GetObjectItem(r, "re")->valuestring, "file_chunk");
    assert_string_equal(cJSON_GetObjectItem(r, "id")->valuestring, "req-9");
    assert_string_equal(cJSON_GetObjectItem(r, "code")->valuestring, "bad_offset");
    assert_string_equal(cJSON_GetObjectItem(r, "message")->valuestring, "wrong offset");
    uint64_t expected;
    assert_int_equal(sa_json_get_size(r, "expected", &expected), 0);
    assert_int_equal(expected, 5000000000u);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(r, "list"), cJSON_GetObjectItem(fields, "list"),
                              1));
    cJSON_Delete(r);
    sa_frame_unref(f);

    /* The caller's values are untouched and still owned by the caller. */
    assert_string_equal(cJSON_GetObjectItem(fields, "file_id")->valuestring, "f1");
    assert_string_equal(id->valuestring, "req-9");

    /* ok reply, numeric id, no fields. */
    cJSON *num_id = cJSON_CreateNumber(9007199254740992.0);
    f = sa_reply_frame("ok", "ping", num_id, NULL, NULL, NULL);
    r = decode_frame(f);
    static const char *const ok_keys[] = {"type", "re", "id"};
    expect_keys(r, ok_keys, 3);
    assert_memory_equal(f->bytes + 4, "{\"type\":\"ok\",\"re\":\"ping\",\"id\":9007199254740992}",
                        f->len - 4);
    cJSON_Delete(r);
    sa_frame_unref(f);

    /* Neither re nor id: a framing error. */
    f = sa_reply_frame("error", NULL, NULL, "bad_frame", "empty", NULL);
    r = decode_frame(f);
    static const char *const bare_keys[] = {"type", "code", "message"};
    expect_keys(r, bare_keys, 3);
    cJSON_Delete(r);
    sa_frame_unref(f);

    cJSON_Delete(num_id);
    cJSON_Delete(fields);
    cJSON_Delete(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decoder_one_byte_feeds),
        cmocka_unit_test(test_decoder_many_frames_one_feed_no_copy),
        cmocka_unit_test(test_decoder_every_split_point),
        cmocka_unit_test(test_decoder_partial_frame_buffer),
        cmocka_unit_test(test_decoder_grows_with_arrivals),
        cmocka_unit_test(test_decoder_free_partial),
        cmocka_unit_test(test_decoder_zero_length),
        cmocka_unit_test(test_decoder_too_large_allocates_nothing),
        cmocka_unit_test(test_decoder_exact_limit),
        cmocka_unit_test(test_decoder_stop_from_callback),
        cmocka_unit_test(test_decoder_out_of_memory),
        cmocka_unit_test(test_frame_round_trip),
        cmocka_unit_test(test_frame_from_text),
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_every_position),
        cmocka_unit_test(test_envelope_ok),
        cmocka_unit_test(test_envelope_bad_json),
        cmocka_unit_test(test_envelope_long_strings),
        cmocka_unit_test(test_json_parse_long_strings),
        cmocka_unit_test(test_envelope_not_object),
        cmocka_unit_test(test_envelope_type),
        cmocka_unit_test(test_envelope_id),
        cmocka_unit_test(test_envelope_nul),
        cmocka_unit_test(test_envelope_escaped_backslash_is_not_nul),
        cmocka_unit_test(test_envelope_depth),
        cmocka_unit_test(test_envelope_prefixes_and_mutations),
        cmocka_unit_test(test_json_get_size),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_reply_frame),
        cmocka_unit_test(test_frame_long_integers_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
