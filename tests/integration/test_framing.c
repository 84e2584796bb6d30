/* PROTOCOL.md §1: framing, on the engine named by argv[1]. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "harness.h"

/* The 4-byte big-endian length prefix followed by the payload, appended at
 * out + *len. */
static void put_frame(unsigned char *out, size_t *len, const char *payload)
{
    size_t n = strlen(payload);
    out[(*len)++] = (unsigned char)(n >> 24);
    out[(*len)++] = (unsigned char)(n >> 16);
    out[(*len)++] = (unsigned char)(n >> 8);
    out[(*len)++] = (unsigned char)n;
    memcpy(out + *len, payload, n);
    *len += n;
}

static void expect_pong(sa_client *c, double id, double ts)
{
    cJSON *pong = h_expect(c, "pong", H_REPLY_MS);
    if (h_get_num(pong, "id") != id || h_get_num(pong, "ts") != ts)
        h_fail("expected pong id %g ts %g, got %s", id, ts, h_json(pong));
}

/* Still open and in step: a ping gets its pong. */
static void expect_alive(sa_client *c)
{
    h_send(c, "{\"type\":\"ping\",\"id\":999,\"ts\":1}");
    expect_pong(c, 999, 1);
}

static void test_one_byte_segments(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_connect(d);
    /* Without Nagle every 1-byte write leaves as its own segment. */
    int one = 1;
    if (setsockopt(sa_client_fd(c), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        h_fail("TCP_NODELAY failed");

    static const char *const payloads[] = {
        "{\"type\":\"ping\",\"id\":1,\"ts\":42}",
        "{\"type\":\"hello\",\"id\":2,\"name\":\"slowpoke\"}",
    };
    for (size_t p = 0; p < 2; p++) {
        unsigned char frame[128];
        size_t len = 0;
        put_frame(frame, &len, payloads[p]);
        for (size_t i = 0; i < len; i++) {
            h_send_raw(c, frame + i, 1);
            h_sleep_ms(2);
        }
    }
    expect_pong(c, 1, 42);
    cJSON *ok = h_expect(c, "ok", H_REPLY_MS);
    h_assert_str(ok, "re", "hello");
    h_assert_str(ok, "name", "slowpoke");
}

static void test_merged_frames(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");

    unsigned char bytes[512];
    size_t len = 0;
    put_frame(bytes, &len, "{\"type\":\"ping\",\"id\":1,\"ts\":1}");
    put_frame(bytes, &len, "{\"type\":\"no_such_request\",\"id\":2}");
    put_frame(bytes, &len, "{\"type\":\"ping\",\"id\":3,\"ts\":3}");
    h_send_raw(c, bytes, len);
    expect_pong(c, 1, 1);
    cJSON *err = h_expect_error(c, "unknown_type", H_REPLY_MS);
    if (h_get_num(err, "id") != 2)
        h_fail("unknown_type reply lost its id: %s", h_json(err));
    expect_pong(c, 3, 3);

    /* Two and a half frames in one write, the rest of the third after. */
    len = 0;
    put_frame(bytes, &len, "{\"type\":\"ping\",\"id\":4,\"ts\":4}");
    put_frame(bytes, &len, "{\"type\":\"ping\",\"id\":5,\"ts\":5}");
    size_t third = len;
    put_frame(bytes, &len, "{\"type\":\"ping\",\"id\":6,\"ts\":6}");
    size_t cut = third + 9; /* inside the third payload */
    h_send_raw(c, bytes, cut);
    expect_pong(c, 4, 4);
    expect_pong(c, 5, 5);
    h_expect_silence(c, H_QUIET_MS);
    h_send_raw(c, bytes + cut, len - cut);
    expect_pong(c, 6, 6);
    /* A header split in two writes. */
    len = 0;
    put_frame(bytes, &len, "{\"type\":\"ping\",\"id\":7,\"ts\":7}");
    h_send_raw(c, bytes, 2);
    h_sleep_ms(50);
    h_send_raw(c, bytes + 2, len - 2);
    expect_pong(c, 7, 7);
}

static void test_empty_frame(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");
    static const unsigned char zero[4] = {0, 0, 0, 0};
    h_send_raw(c, zero, sizeof zero);
    h_expect_error(c, "bad_frame", H_REPLY_MS);
    h_expect_bye_closed(c, "bad_frame", H_REPLY_MS);

    /* Also before hello. */
    sa_client *anon = h_connect(d);
    h_send_raw(anon, zero, sizeof zero);
    h_expect_error(anon, "bad_frame", H_REPLY_MS);
    h_expect_bye_closed(anon, "bad_frame", H_REPLY_MS);
}

/* Sends only a header announcing `n` bytes: the server must answer without
 * waiting for (or allocating) the body. */
static void expect_too_large(sa_client *c, uint32_t n, int within_ms)
{
    unsigned char header[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                               (unsigned char)(n >> 8), (unsigned char)n};
    int64_t start = h_now_ms();
    h_send_raw(c, header, sizeof header);
    h_expect_error(c, "frame_too_large", within_ms);
    h_expect_bye_closed(c, "frame_too_large", within_ms);
    int64_t took = h_now_ms() - start;
    if (took > within_ms)
        h_fail("frame_too_large for %u bytes took %lld ms", n, (long long)took);
}

static void test_frame_too_large(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    expect_too_large(h_login(d, "alice"), 1048576u + 1, H_REPLY_MS);
    expect_too_large(h_login(d, "bob"), 0xFFFFFFFFu, 2000);
    expect_too_large(h_connect(d), 0x7FFFFFFFu, 2000); /* before hello too */
}

static void test_small_max_frame(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.max_frame=1024", NULL);
    sa_client *c = h_connect(d);
    cJSON *reply = NULL;
    if (sa_client_hello(c, "alice", NULL, &reply, H_REPLY_MS) != SA_CLIENT_OK)
        h_fail("hello failed: %s", sa_client_error(c));
    h_keep(reply);
    h_assert_str(reply, "type", "ok");
    if (h_get_num(reply, "max_frame") != 1024)
        h_fail("hello reply should say max_frame 1024: %s", h_json(reply));

    /* Exactly 1024 bytes passes. */
    char payload[1100];
    static const char head[] = "{\"type\":\"ping\",\"id\":1,\"ts\":1,\"pad\":\"";
    size_t pad = 1024 - (sizeof head - 1) - 2;
    snprintf(payload, sizeof payload, "%s%*s\"}", head, (int)pad, "");
    for (size_t i = sizeof head - 1; i < sizeof head - 1 + pad; i++)
        payload[i] = 'x';
    if (strlen(payload) != 1024)
        h_fail("test bug: payload is %zu bytes", strlen(payload));
    h_send_payload(c, payload, 1024);
    expect_pong(c, 1, 1);

    expect_too_large(c, 1025, H_REPLY_MS);
}

static void test_not_json(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");
    static const char *const bad[] = {
        "this is not json",
        "{\"type\":\"ping\"",
        "{\"type\":\"ping\",}",
        "{\"type\":\"ping\"} trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        h_send_payload(c, bad[i], strlen(bad[i]));
        h_expect_error(c, "bad_json", H_REPLY_MS);
        expect_alive(c);
    }
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    static const char *const bad[] = {
        "{\"type\":\"msg\",\"text\":\"\xff\xfe\"}",         /* never valid */
        "{\"type\":\"msg\",\"text\":\"\xc0\xaf\"}",         /* overlong '/' */
        "{\"type\":\"msg\",\"text\":\"\xed\xa0\x80\"}",     /* a surrogate */
        "{\"type\":\"msg\",\"text\":\"ab\xe2\x82\"}",       /* truncated sequence */
        "{\"type\":\"msg\",\"text\":\"\xf4\x90\x80\x80\"}", /* above U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        h_send_payload(c, bad[i], strlen(bad[i]));
        h_expect_error(c, "bad_json", H_REPLY_MS);
        expect_alive(c);
    }
    h_expect_silence(bob, H_QUIET_MS);
    /* Valid multi-byte text passes. */
    h_request_ok(c, "{\"type\":\"msg\",\"text\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}");
    cJSON *m = h_expect(bob, "message", H_REPLY_MS);
    h_assert_str(m, "text", "caf\xc3\xa9 \xf0\x9f\x98\x80");
}

static void test_not_an_object(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");
    static const char *const bad[] = {"[1,2,3]", "\"ping\"", "42", "null", "[{\"type\":\"ping\"}]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        h_send_payload(c, bad[i], strlen(bad[i]));
        h_expect_error(c, "bad_request", H_REPLY_MS);
        expect_alive(c);
    }
}

static void test_missing_type(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");
    static const char *const bad[] = {
        "{\"id\":1,\"text\":\"x\"}",
        "{\"type\":5,\"id\":1}",
        "{\"type\":null,\"id\":1}",
        "{\"type\":[\"ping\"],\"id\":1}",
        "{\"type\":{\"a\":1},\"id\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        h_send(c, bad[i]);
        cJSON *err = h_expect_error(c, "bad_request", H_REPLY_MS);
        /* The id could be read, so it is echoed. */
        if (h_get_num(err, "id") != 1)
            h_fail("reply to %s should carry id 1: %s", bad[i], h_json(err));
        expect_alive(c);
    }
    static const char empty_object[] = "{}";
    h_send_payload(c, empty_object, 2);
    h_expect_error(c, "bad_request", H_REPLY_MS);
    expect_alive(c);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_framing");
    const struct CMUnitTest tests[] = {
        H_TEST(test_one_byte_segments), H_TEST(test_merged_frames),
        H_TEST(test_empty_frame),       H_TEST(test_frame_too_large),
        H_TEST(test_small_max_frame),   H_TEST(test_not_json),
        H_TEST(test_invalid_utf8),      H_TEST(test_not_an_object),
        H_TEST(test_missing_type),
    };
    char group[64];
    snprintf(group, sizeof group, "framing/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
