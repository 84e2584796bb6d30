/*
 * Fuzzes the file plugin's strict base64 (plugins/file/base64.h), which
 * decodes every file_chunk a client sends and, in the client tools, every
 * chunk the server sends. It promises canonical base64: each byte string
 * has exactly one accepted text. So, with the encoder pinned down by the
 * RFC 4648 test vectors at start-up:
 *   - the input as text is accepted exactly when it is the encoding of the
 *     bytes its alphabet characters spell, and then decodes to those bytes;
 *   - a decode into one byte less than it needs is refused, and writes
 *     nothing past out_cap;
 *   - the input as bytes encodes to the announced length, and decodes back.
 * Every buffer is a heap block of its exact size, so that ASan sees any
 * access past its end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "fuzz_target.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_base64: %s\n", what);
    abort();
}

/* malloc that never returns NULL, nor a 0-byte block. */
static void *block(size_t len)
{
    void *p = malloc(len ? len : 1);
    if (!p)
        fail("out of memory");
    return p;
}

static char *encode(const unsigned char *bytes, size_t len)
{
    size_t text_len = b64_encoded_len(len);
    char *text = block(text_len + 1);
    b64_encode(bytes, len, text);
    if (strlen(text) != text_len)
        fail("b64_encode wrote another length than b64_encoded_len");
    return text;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char *const vectors[][2] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
        {"\xfb\xff", "+/8="},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char *text = encode((const unsigned char *)vectors[i][0], strlen(vectors[i][0]));
        if (strcmp(text, vectors[i][1]) != 0)
            fail("b64_encode fails an RFC 4648 test vector");
        free(text);
    }
    return 0;
}

/* The bytes that the alphabet characters of `text` spell, up to the first
 * '=' (anything else counts as zero bits), whole bytes only. Into `out`,
 * which holds len / 4 * 3 + 3 bytes; returns the count. */
static size_t spelled_bytes(const char *text, size_t len, unsigned char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t bits = 0;
    unsigned have = 0;
    size_t n = 0;
    for (size_t i = 0; i < len && text[i] != '='; i++) {
        const char *at = text[i] ? strchr(alphabet, text[i]) : NULL;
        bits = bits << 6 | (uint32_t)(at ? at - alphabet : 0);
        have += 6;
        if (have >= 8) {
            have -= 8;
            out[n++] = (unsigned char)(bits >> have);
            bits &= (1u << have) - 1;
        }
    }
    return n;
}

/* The input as base64 text. */
static void check_text(const char *text, size_t len)
{
    unsigned char *spelled = block(len / 4 * 3 + 3);
    size_t spelled_len = spelled_bytes(text, len, spelled);
    char *canonical = encode(spelled, spelled_len);
    int should_accept = strlen(canonical) == len && memcmp(canonical, text, len) == 0;
    free(canonical);

    size_t cap = len / 4 * 3, out_len = 0;
    unsigned char *out = block(cap);
    int rc = b64_decode(text, len, out, cap, &out_len);
    if (rc != 0 && rc != -1)
        fail("b64_decode returned neither 0 nor -1");
    if ((rc == 0) != should_accept)
        fail(should_accept ? "a canonical text is refused" : "a non-canonical text is accepted");
    if (rc == 0 && (out_len != spelled_len || memcmp(out, spelled, out_len) != 0))
        fail("an accepted text decodes to other bytes than it spells");
    free(out);
    free(spelled);

    if (rc == 0 && out_len > 0) {
        unsigned char *tight = block(out_len - 1);
        size_t tight_len;
        if (b64_decode(text, len, tight, out_len - 1, &tight_len) != -1)
            fail("a decode larger than out_cap is not refused");
        free(tight);
    }
}

/* The input as bytes: encode, then decode back. */
static void check_bytes(const unsigned char *bytes, size_t len)
{
    char *text = encode(bytes, len);
    size_t text_len = strlen(text), back_len = 0;
    unsigned char *back = block(len);
    if (b64_decode(text, text_len, back, len, &back_len) != 0 || back_len != len ||
        memcmp(back, bytes, len) != 0)
        fail("decode(encode(bytes)) != bytes");
    free(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact copy, so that a read past the text is caught. */
    char *text = block(size);
    memcpy(text, data, size);
    check_text(text, size);
    free(text);
    check_bytes(data, size);
    return 0;
}
