/*
 * Unit tests of the file plugin's strict base64 (plugins/file/base64.c):
 * the RFC 4648 vectors both ways, round trips of every length around the
 * block boundaries, and every non-canonical text refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"

/* RFC 4648 §10. */
static const struct {
    const char *plain, *encoded;
} vectors[] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

static void test_rfc_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
        size_t len = strlen(vectors[i].plain);
        char text[16];
        assert_int_equal(b64_encoded_len(len), strlen(vectors[i].encoded));
        b64_encode((const unsigned char *)vectors[i].plain, len, text);
        assert_string_equal(text, vectors[i].encoded);

        unsigned char out[8];
        size_t out_len = 99;
        assert_int_equal(b64_decode(vectors[i].encoded, strlen(vectors[i].encoded), out,
                                    sizeof out, &out_len),
                         0);
        assert_int_equal(out_len, len);
        assert_memory_equal(out, vectors[i].plain, len);
    }
}

static void test_round_trips(void **state)
{
    (void)state;
    unsigned char in[300], out[300];
    char text[401];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 151 + 7);
    for (size_t len = 0; len <= sizeof in; len++) {
        b64_encode(in, len, text);
        size_t out_len = 0;
        assert_int_equal(b64_decode(text, strlen(text), out, len, &out_len), 0);
        assert_int_equal(out_len, len);
        assert_memory_equal(out, in, len);
        /* One byte less room than needed is refused. */
        if (len > 0)
            assert_int_equal(b64_decode(text, strlen(text), out, len - 1, &out_len), -1);
    }
}

static void test_all_bytes(void **state)
{
    (void)state;
    unsigned char in[256], out[256];
    char text[345];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)i;
    b64_encode(in, sizeof in, text);
    size_t out_len = 0;
    assert_int_equal(b64_decode(text, strlen(text), out, sizeof out, &out_len), 0);
    assert_int_equal(out_len, sizeof in);
    assert_memory_equal(out, in, sizeof in);
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg",       "Zg=",       "Z",         "Zm9",      "Zm9vY",     /* lengths */
        "Zm9v\n",   " Zm9v",     "Zm 9",      "Zm9v\r\n", "Zm9\tv",    /* whitespace */
        "***=",     "Zm9$",      "Zm9-",      "Zm9_",     "Zm\x80v",   /* alphabet */
        "=Zm9",     "Z===",      "====",      "Zg==Zm9v", "Zm=v",      /* misplaced '=' */
        "Zm9vYg===", "Zh==",     "Zm9=",                               /* bits left over */
    };
    unsigned char out[16];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t out_len = 0;
        if (b64_decode(bad[i], strlen(bad[i]), out, sizeof out, &out_len) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* A NUL inside the text given by length is not base64 either. */
    size_t out_len = 0;
    assert_int_equal(b64_decode("Zm\0v", 4, out, sizeof out, &out_len), -1);
}

/* Groups are checked with one test over four table lookups: a character
 * outside the alphabet must be refused wherever it falls, in full groups
 * and in the padded last one. */
static void test_bad_char_everywhere(void **state)
{
    (void)state;
    static const char bad[] = {'*', '-', ' ', '\0', '\x80', '\xff'};
    unsigned char in[60], out[60];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = sizeof in - 2; len <= sizeof in; len++) { /* two, one and no '=' */
        char text[81];
        b64_encode(in, len, text);
        size_t text_len = strlen(text);
        size_t data_chars = text_len - (len % 3 ? 3 - len % 3 : 0);
        for (size_t at = 0; at < data_chars; at++) {
            for (size_t k = 0; k < sizeof bad; k++) {
                char *copy = malloc(text_len);
                assert_non_null(copy);
                memcpy(copy, text, text_len);
                copy[at] = bad[k];
                size_t out_len = 0;
                if (b64_decode(copy, text_len, out, sizeof out, &out_len) == 0)
                    fail_msg("accepted 0x%02x at %zu of %zu", (unsigned char)bad[k], at, text_len);
                free(copy);
            }
        }
        /* '=' anywhere before the padding is refused too. */
        for (size_t at = 0; at + 4 < text_len; at++) {
            char copy[81];
            memcpy(copy, text, text_len + 1);
            copy[at] = '=';
            size_t out_len = 0;
            assert_int_equal(b64_decode(copy, text_len, out, sizeof out, &out_len), -1);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_vectors),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_all_bytes),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_bad_char_everywhere),
    };
    return cmocka_run_group_tests_name("base64", tests, NULL, NULL);
}
