/* PROTOCOL.md §2: the envelope (type, id, re), on the engine of argv[1]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static void assert_id_num(const cJSON *reply, double want)
{
    if (h_get_num(reply, "id") != want)
        h_fail("expected id %.17g, got %s", want, h_json(reply));
}

static void test_integer_id_echoed(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");
    static const double ids[] = {0, 1, 123456789012.0, 9007199254740991.0, -7};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        char req[128];
        /* Sent as text: the test must not depend on how cJSON prints. */
        snprintf(req, sizeof req, "{\"type\":\"msg\",\"id\":%.17g,\"text\":\"hi\"}", ids[i]);
        h_send_payload(c, req, strlen(req));
        cJSON *ok = h_expect(c, "ok", H_REPLY_MS);
        h_assert_str(ok, "re", "msg");
        assert_id_num(ok, ids[i]);

        snprintf(req, sizeof req, "{\"type\":\"no_such_thing\",\"id\":%.17g}", ids[i]);
        h_send_payload(c, req, strlen(req));
        cJSON *err = h_expect_error(c, "unknown_type", H_REPLY_MS);
        h_assert_str(err, "re", "no_such_thing");
        assert_id_num(err, ids[i]);
    }
}

static void test_string_id_echoed(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");

    h_send(c, "{\"type\":\"msg\",\"id\":\"req-1\",\"text\":\"hi\"}");
    cJSON *ok = h_expect(c, "ok", H_REPLY_MS);
    h_assert_str(ok, "re", "msg");
    h_assert_str(ok, "id", "req-1");

    /* Not a number in disguise: "7" stays a string. */
    h_send(c, "{\"type\":\"nope\",\"id\":\"7\"}");
    cJSON *err = h_expect_error(c, "unknown_type", H_REPLY_MS);
    h_assert_str(err, "id", "7");
    h_assert_str(err, "re", "nope");

    char id64[65], id65[66];
    memset(id64, 'i', 64);
    id64[64] = '\0';
    memset(id65, 'j', 65);
    id65[65] = '\0';
    h_send(c, h_fmt("{\"type\":\"msg\",\"id\":\"%s\",\"text\":\"hi\"}", id64));
    ok = h_expect(c, "ok", H_REPLY_MS);
    h_assert_str(ok, "id", id64);

    h_send(c, h_fmt("{\"type\":\"msg\",\"id\":\"%s\",\"text\":\"hi\"}", id65));
    err = h_expect_error(c, "bad_request", H_REPLY_MS);
    h_assert_str(err, "re", "msg");

    /* Multi-byte: 32 two-byte characters are 64 bytes (ok), 33 are 66. */
    char mb[80] = "";
    for (int i = 0; i < 32; i++)
        strcat(mb, "\xc3\xa9");
    h_send(c, h_fmt("{\"type\":\"msg\",\"id\":\"%s\",\"text\":\"hi\"}", mb));
    ok = h_expect(c, "ok", H_REPLY_MS);
    h_assert_str(ok, "id", mb);
    strcat(mb, "\xc3\xa9");
    h_send(c, h_fmt("{\"type\":\"msg\",\"id\":\"%s\",\"text\":\"hi\"}", mb));
    h_expect_error(c, "bad_request", H_REPLY_MS);
}

static void test_bad_id(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    static const char *const bad[] = {"1.5", "true", "null", "{}", "[1]", "1e300",
                                      "18014398509481984"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        h_send(c, h_fmt("{\"type\":\"msg\",\"id\":%s,\"text\":\"hi\"}", bad[i]));
        cJSON *err = h_expect_error(c, "bad_request", H_REPLY_MS);
        h_assert_str(err, "re", "msg");
    }
    /* A refused request has no effect. */
    h_expect_silence(bob, H_QUIET_MS);
}

static void test_unknown_type(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");
    h_send(c, "{\"type\":\"frobnicate\",\"id\":5,\"x\":[1,2]}");
    cJSON *err = h_expect_error(c, "unknown_type", H_REPLY_MS);
    h_assert_str(err, "re", "frobnicate");
    assert_id_num(err, 5);
    /* Without an id the reply has none. */
    h_send(c, "{\"type\":\"frobnicate\"}");
    err = h_expect_error(c, "unknown_type", H_REPLY_MS);
    h_assert_str(err, "re", "frobnicate");
    h_assert_absent(err, "id");
    h_request_ok(c, "{\"type\":\"msg\",\"text\":\"still here\"}");
}

static void test_nul_in_text(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    static const char msg[] = "{\"type\":\"msg\",\"id\":3,\"text\":\"a\\u0000b\"}";
    h_send_payload(c, msg, sizeof msg - 1);
    cJSON *err = h_expect_error(c, "bad_request", H_REPLY_MS);
    h_assert_str(err, "re", "msg");
    assert_id_num(err, 3);
    static const char dm[] = "{\"type\":\"dm\",\"id\":4,\"to\":\"bob\",\"text\":\"\\u0000\"}";
    h_send_payload(c, dm, sizeof dm - 1);
    err = h_expect_error(c, "bad_request", H_REPLY_MS);
    assert_id_num(err, 4);
    h_expect_silence(bob, H_QUIET_MS);
    /* Other escapes are fine. */
    h_request_ok(c, "{\"type\":\"msg\",\"text\":\"tab\\there \\u00e9\"}");
    cJSON *m = h_expect(bob, "message", H_REPLY_MS);
    h_assert_str(m, "text", "tab\there \xc3\xa9");
}

static void test_nul_in_hello_name(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_connect(d);
    static const char hello[] = "{\"type\":\"hello\",\"id\":1,\"name\":\"al\\u0000ice\"}";
    h_send_payload(c, hello, sizeof hello - 1);
    cJSON *err = h_expect_error(c, "bad_name", H_REPLY_MS);
    h_assert_str(err, "re", "hello");
    assert_id_num(err, 1);
    /* The truncated name "al" was not registered: a NUL cut must not leak. */
    h_login(d, "al");
    cJSON *ok = h_request_ok(c, "{\"type\":\"hello\",\"name\":\"alice\"}");
    h_assert_str(ok, "name", "alice");
}

static void test_before_hello(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *bob = h_login(d, "bob");
    sa_client *c = h_connect(d);

    static const char *const refused[][2] = {
        {"{\"type\":\"msg\",\"id\":1,\"text\":\"x\"}", "msg"},
        {"{\"type\":\"dm\",\"id\":2,\"to\":\"bob\",\"text\":\"x\"}", "dm"},
        {"{\"type\":\"no_such_type\",\"id\":3}", "no_such_type"},
        {"{\"type\":\"pong\",\"id\":4,\"ts\":1}", "pong"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        h_send(c, refused[i][0]);
        cJSON *err = h_expect_error(c, "not_authenticated", H_REPLY_MS);
        h_assert_str(err, "re", refused[i][1]);
        assert_id_num(err, (double)(i + 1));
    }
    h_expect_silence(bob, H_QUIET_MS);

    h_send(c, "{\"type\":\"ping\",\"id\":9,\"ts\":77}");
    cJSON *pong = h_expect(c, "pong", H_REPLY_MS);
    assert_id_num(pong, 9);
    if (h_get_num(pong, "ts") != 77)
        h_fail("pong should echo ts 77: %s", h_json(pong));
    h_assert_absent(pong, "re");

    h_request_ok(c, "{\"type\":\"hello\",\"name\":\"alice\"}");
    h_request_ok(c, "{\"type\":\"msg\",\"text\":\"now I may\"}");
    h_expect(bob, "message", H_REPLY_MS);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_envelope");
    const struct CMUnitTest tests[] = {
        H_TEST(test_integer_id_echoed), H_TEST(test_string_id_echoed),
        H_TEST(test_bad_id),            H_TEST(test_unknown_type),
        H_TEST(test_nul_in_text),       H_TEST(test_nul_in_hello_name),
        H_TEST(test_before_hello),
    };
    char group[64];
    snprintf(group, sizeof group, "envelope/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
