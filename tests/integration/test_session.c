/* PROTOCOL.md §3: hello, names, limits, shutdown, sendq_max; on the engine
 * named by argv[1]. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "harness.h"

/* Sanitizer builds run the daemon several times slower. */
#ifndef SA_TEST_TIME_SCALE
#define SA_TEST_TIME_SCALE 1
#endif

static cJSON *hello(sa_client *c, const char *name)
{
    cJSON *reply = NULL;
    int rc = sa_client_hello(c, name, NULL, &reply, H_REPLY_MS);
    if (rc != SA_CLIENT_OK)
        h_fail("hello %s: status %d (%s)", name, rc, sa_client_error(c));
    return h_keep(reply);
}

static int array_has_string(const cJSON *array, const char *want)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, array)
    {
        if (cJSON_IsString(item) && strcmp(item->valuestring, want) == 0)
            return 1;
    }
    return 0;
}

static void test_hello_reply(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_connect(d);
    h_send(c, "{\"type\":\"hello\",\"id\":\"h-1\",\"name\":\"alice\",\"token\":\"unused\","
              "\"client\":\"test/1\",\"proto\":1,\"extra\":{\"ignored\":true}}");
    cJSON *ok = h_expect(c, "ok", H_REPLY_MS);
    h_assert_str(ok, "re", "hello");
    h_assert_str(ok, "id", "h-1");
    h_assert_str(ok, "name", "alice");
    if (!*h_get_str(ok, "session"))
        h_fail("empty session: %s", h_json(ok));
    if (!*h_get_str(ok, "server"))
        h_fail("empty server: %s", h_json(ok));
    h_assert_str(ok, "engine", h_engine);
    if (h_get_num(ok, "proto") != 1)
        h_fail("proto should be 1: %s", h_json(ok));
    if (h_get_num(ok, "max_frame") != 1048576)
        h_fail("max_frame should be the default 1048576: %s", h_json(ok));
    const cJSON *hb = cJSON_GetObjectItemCaseSensitive(ok, "heartbeat");
    if (!cJSON_IsObject(hb) || h_get_num(hb, "interval") != 20 || h_get_num(hb, "timeout") != 40)
        h_fail("heartbeat should be {interval:20,timeout:40}: %s", h_json(ok));
    const cJSON *features = cJSON_GetObjectItemCaseSensitive(ok, "features");
    if (!cJSON_IsArray(features) || !array_has_string(features, "chat"))
        h_fail("features should list \"chat\": %s", h_json(ok));
    if (array_has_string(features, "rooms") || array_has_string(features, "echo"))
        h_fail("features lists a plugin that is not loaded: %s", h_json(ok));

    /* Session ids differ; settings show in the reply. */
    h_daemon *d2 = h_daemon_startv(NULL, "server.heartbeat_interval=7",
                                   "server.heartbeat_timeout=9", "server.max_frame=4096", NULL);
    sa_client *c2 = h_connect(d2);
    cJSON *ok2 = hello(c2, "alice");
    h_assert_str(ok2, "type", "ok");
    hb = cJSON_GetObjectItemCaseSensitive(ok2, "heartbeat");
    if (!cJSON_IsObject(hb) || h_get_num(hb, "interval") != 7 || h_get_num(hb, "timeout") != 9 ||
        h_get_num(ok2, "max_frame") != 4096)
        h_fail("hello reply ignores the settings: %s", h_json(ok2));
    if (strcmp(h_get_str(ok, "session"), h_get_str(ok2, "session")) == 0)
        h_fail("two sessions share the id %s", h_get_str(ok, "session"));
}

static void test_bad_names(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_connect(d);
    char long_name[34];
    memset(long_name, 'n', 33);
    long_name[33] = '\0';
    const char *const bad[] = {
        "{\"type\":\"hello\",\"name\":\"\"}",
        h_fmt("{\"type\":\"hello\",\"name\":\"%s\"}", long_name),
        "{\"type\":\"hello\",\"name\":\"a b\"}",
        "{\"type\":\"hello\",\"name\":\"\xc3\xa9\"}",
        "{\"type\":\"hello\",\"name\":\"a/b\"}",
        "{\"type\":\"hello\",\"name\":\"tab\\there\"}",
        "{\"type\":\"hello\",\"name\":\"semi;colon\"}",
        "{\"type\":\"hello\"}",
        "{\"type\":\"hello\",\"name\":42}",
        "{\"type\":\"hello\",\"name\":null}",
        "{\"type\":\"hello\",\"name\":[\"alice\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON *err = h_request_error(c, bad[i], "bad_name");
        h_assert_str(err, "re", "hello");
    }
    /* Still not logged in. */
    h_request_error(c, "{\"type\":\"msg\",\"text\":\"x\"}", "not_authenticated");

    /* 32 bytes of every allowed kind of character is fine. */
    static const char name32[] = "Az09_.-zzzzzzzzzzzzzzzzzzzzzzzzz";
    cJSON *ok = hello(c, name32);
    h_assert_str(ok, "type", "ok");
    h_assert_str(ok, "name", name32);
    h_request_ok(c, "{\"type\":\"msg\",\"text\":\"x\"}");
}

static void test_name_taken(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *c = h_connect(d);
    static const char *const taken[] = {"alice", "Alice", "ALICE"};
    for (size_t i = 0; i < 3; i++) {
        cJSON *err = hello(c, taken[i]);
        h_assert_str(err, "type", "error");
        h_assert_str(err, "code", "name_taken");
        h_assert_str(err, "re", "hello");
    }
    cJSON *ok = hello(c, "bob");
    h_assert_str(ok, "type", "ok");
    h_assert_str(ok, "name", "bob");

    /* Once alice is gone her name is free again (the server notices the
     * close asynchronously: retry for a bounded time). */
    h_client_close(alice);
    sa_client *again = h_connect(d);
    int64_t deadline = h_now_ms() + 3000;
    for (;;) {
        cJSON *reply = hello(again, "ALICE");
        if (strcmp(h_get_str(reply, "type"), "ok") == 0)
            break;
        h_assert_str(reply, "code", "name_taken");
        if (h_now_ms() > deadline)
            h_fail("the name alice is still taken 3 s after she left");
        h_sleep_ms(50);
    }
}

static void test_second_hello(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");
    cJSON *err = h_request_error(c, "{\"type\":\"hello\",\"name\":\"alice\"}", "bad_request");
    h_assert_str(err, "re", "hello");
    h_request_error(c, "{\"type\":\"hello\",\"name\":\"other\"}", "bad_request");
    /* The session is unchanged and "other" was not registered. */
    sa_client *other = h_login(d, "other");
    h_request_ok(c, "{\"type\":\"dm\",\"to\":\"other\",\"text\":\"hi\"}");
    cJSON *m = h_expect(other, "message", H_REPLY_MS);
    h_assert_str(m, "from", "alice");
}

static void test_hello_timeout(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.hello_timeout=1", NULL);
    int64_t start = h_now_ms();
    sa_client *silent = h_connect(d);
    sa_client *pinger = h_connect(d); /* pings are no substitute for hello */
    sa_client *polite = h_login(d, "alice");
    h_send(pinger, "{\"type\":\"ping\",\"ts\":1}");
    h_expect(pinger, "pong", H_REPLY_MS);

    h_expect_bye_closed(silent, "hello_timeout", 3000);
    int64_t took = h_now_ms() - start;
    if (took < 800)
        h_fail("hello_timeout=1 closed the connection after only %lld ms", (long long)took);
    h_expect_bye_closed(pinger, "hello_timeout", 3000);

    /* The one that said hello stays. */
    h_sleep_ms(1000);
    h_request_ok(polite, "{\"type\":\"msg\",\"text\":\"still here\"}");
}

static void test_max_clients(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.max_clients=2", NULL);
    sa_client *a = h_login(d, "alice");
    sa_client *b = h_login(d, "bob");
    sa_client *third = h_connect(d);
    h_expect_bye_closed(third, "server_full", H_REPLY_MS);
    h_request_ok(a, "{\"type\":\"msg\",\"text\":\"we are two\"}");
    h_expect(b, "message", H_REPLY_MS);

    /* A freed place can be taken again. */
    h_client_close(a);
    int64_t deadline = h_now_ms() + 3000;
    for (;;) {
        sa_client *c = h_connect(d);
        cJSON *reply = NULL;
        int rc = sa_client_hello(c, "carol", NULL, &reply, H_REPLY_MS);
        if (rc == SA_CLIENT_OK && strcmp(h_get_str(h_keep(reply), "type"), "ok") == 0)
            break;
        h_client_close(c);
        if (h_now_ms() > deadline)
            h_fail("no place for a new client 3 s after one of two left");
        h_sleep_ms(50);
    }
}

static void test_shutdown(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *a = h_login(d, "alice");
    sa_client *b = h_login(d, "bob");
    sa_client *anon = h_connect(d);
    h_send(anon, "{\"type\":\"ping\",\"ts\":1}"); /* make sure it was accepted */
    h_expect(anon, "pong", H_REPLY_MS);

    h_daemon_signal(d, SIGTERM);
    h_expect_bye_closed(a, "shutdown", H_REPLY_MS);
    h_expect_bye_closed(b, "shutdown", H_REPLY_MS);
    h_expect_bye_closed(anon, "shutdown", H_REPLY_MS);
    int status = h_daemon_wait(d, 5000);
    if (status != 0)
        h_fail("syncasyncd exited with %d after SIGTERM, expected 0", status);
    char err[256];
    sa_client *late = sa_client_connect("127.0.0.1", h_daemon_port(d), 1000, err, sizeof err);
    if (late) {
        sa_client_close(late);
        h_fail("still accepting connections after shutdown");
    }
}

/* SIGTERM while a burst waits in the server's queue to a slow reader:
 * the reader still gets every message, in order, then bye shutdown. */
static void test_shutdown_delivers_queued(void **state)
{
    (void)state;
    /* 9 MB: more than the kernel buffers between server and bob (tcp_wmem's
     * 4 MiB maximum on the server's side, bob's unread receive buffer), so
     * part of it waits in the server's queue. Bob's buffer is left as the
     * kernel sizes it: shrinking it after connect() takes back window
     * already offered, and the sender's stall over that (zero-window
     * probes) is the kernel's, not the server's. */
    enum { BURST = 900, TEXT_LEN = 10000 };
    h_daemon *d = h_daemon_startv(NULL, "chat.rate=0", "server.sendq_max=16777216", NULL);
    sa_client *a = h_login(d, "alice");
    sa_client *b = h_connect(d);
    h_assert_str(hello(b, "bob"), "type", "ok");

    char *text = malloc(TEXT_LEN + 1);
    if (!text)
        h_fail("out of memory");
    memset(text, 'b', TEXT_LEN);
    text[TEXT_LEN] = '\0';
    for (int i = 0; i < BURST; i++) {
        /* The message number leads the text, so order can be checked. */
        int n = snprintf(text, 8, "%05d ", i);
        text[n] = 'b';
        cJSON *req = h_keep(cJSON_CreateObject());
        if (!cJSON_AddStringToObject(req, "type", "msg") ||
            !cJSON_AddStringToObject(req, "text", text) || sa_client_send_request(a, req) < 0)
            h_fail("cannot send message %d", i);
    }
    free(text);
    for (int i = 0; i < BURST; i++)
        h_assert_str(h_expect(a, "ok", H_REPLY_MS), "re", "msg");

    /* Everything is accepted and queued to bob, who has read nothing. */
    h_daemon_signal(d, SIGTERM);
    for (int i = 0; i < BURST; i++) {
        cJSON *m = h_recv(b, H_REPLY_MS);
        if (strcmp(h_get_str(m, "type"), "message") != 0)
            h_fail("bob got %.200s instead of message %d of %d", h_json(m), i, BURST);
        const char *got = h_get_str(m, "text");
        if (strlen(got) != TEXT_LEN || atoi(got) != i)
            h_fail("bob's message %d is %.20s... (%zu bytes)", i, got, strlen(got));
    }
    h_expect_bye_closed(b, "shutdown", H_REPLY_MS);
    int status = h_daemon_wait(d, 5000);
    if (status != 0)
        h_fail("syncasyncd exited with %d after SIGTERM, expected 0", status);
}

/* Reads /proc/sys/net/ipv4/tcp_wmem's maximum: how much the kernel may
 * buffer on the server's side of a connection. */
static long kernel_send_buffer_max(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    long lo = 0, mid = 0, hi = 4L << 20;
    if (f) {
        if (fscanf(f, "%ld %ld %ld", &lo, &mid, &hi) != 3)
            hi = 4L << 20;
        fclose(f);
    }
    return hi;
}

static void test_sendq_exceeded(void **state)
{
    (void)state;
    /* MAX_LATENCY_MS: from alice's send to carol's receipt, for each
     * message; a slow reader must not slow the others down. */
    enum { TEXT_LEN = 50000, MAX_SENDS = 2000, MAX_SEND_MS = 20000, MAX_LATENCY_MS = 1000 };
    h_daemon *d = h_daemon_startv(NULL, "server.sendq_max=65536", "chat.rate=0",
                                  "chat.max_text=60000", "server.log_level=debug", NULL);
    sa_client *a = h_login(d, "alice");
    sa_client *b = h_connect(d);
    int small = 16384; /* smaller makes loopback TCP crawl (1 s per 50 KB) */
    if (setsockopt(sa_client_fd(b), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) != 0)
        h_fail("SO_RCVBUF: %s", strerror(errno));
    h_assert_str(hello(b, "bob"), "type", "ok");
    sa_client *carol = h_login(d, "carol"); /* reads everything: must stay */

    char *text = malloc(TEXT_LEN + 1);
    if (!text)
        h_fail("out of memory");
    memset(text, 'q', TEXT_LEN);
    text[TEXT_LEN] = '\0';
    cJSON *req = cJSON_CreateObject();
    h_keep(req);
    cJSON_AddStringToObject(req, "type", "msg");
    cJSON_AddStringToObject(req, "text", text);
    free(text);

    /* More than the kernel can hold on both sides plus sendq_max: by then
     * bob must have been dropped. bob must start reading soon after the
     * drop, as the server may give up writing the bye after a few seconds. */
    long must_drop_after = kernel_send_buffer_max() + (1L << 20) + 65536;
    long sent_bytes = 0;
    int sends = 0;
    int64_t start = h_now_ms();
    int64_t worst_latency = 0;
    while (sent_bytes < must_drop_after && sends < MAX_SENDS) {
        if (h_now_ms() - start > MAX_SEND_MS)
            h_fail("sent only %d messages in %d ms", sends, MAX_SEND_MS);
        int64_t sent_at = h_now_ms();
        cJSON *reply = NULL;
        int rc = sa_client_request(a, req, &reply, H_REPLY_MS);
        if (rc != SA_CLIENT_OK)
            h_fail("message %d: no reply (status %d, %s)", sends, rc, sa_client_error(a));
        h_keep(reply);
        if (strcmp(h_get_str(reply, "type"), "ok") != 0)
            h_fail("message %d refused: %s", sends, h_json(reply));
        sends++;
        sent_bytes += TEXT_LEN;
        /* carol reads each message before the next is sent: nothing is
         * ever queued to her, so she must never be dropped. */
        cJSON *m = NULL;
        rc = sa_client_recv(carol, &m, H_REPLY_MS);
        if (rc != SA_CLIENT_OK)
            h_fail("carol missed message %d (status %d)", sends, rc);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "message") != 0)
            h_fail("carol, who reads everything, got %.200s instead of message %d",
                   h_json(h_keep(m)), sends);
        cJSON_Delete(m);
        if (h_now_ms() - sent_at > worst_latency)
            worst_latency = h_now_ms() - sent_at;
    }
    if (worst_latency > MAX_LATENCY_MS * SA_TEST_TIME_SCALE)
        h_fail("a message took %lld ms to reach carol while bob's queue filled",
               (long long)worst_latency);

    /* bob now reads what is left: some messages, then bye, then EOF. */
    int got = 0;
    int64_t drain_deadline = h_now_ms() + 20000;
    for (;;) {
        if (h_now_ms() > drain_deadline || got > sends)
            h_fail("bob read %d frames of %d sent and no bye", got, sends);
        cJSON *f = NULL;
        int rc = sa_client_recv(b, &f, H_REPLY_MS);
        if (rc != SA_CLIENT_OK)
            h_fail("bob, after %d messages of %d sent: expected bye sendq_exceeded, got status "
                   "%d (%s)",
                   got, sends, rc, sa_client_error(b));
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(f, "type");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "message") == 0) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(f, "text");
            if (!cJSON_IsString(t) || strlen(t->valuestring) != TEXT_LEN)
                h_fail("bob got a damaged message after %d: %.200s", got, h_json(h_keep(f)));
            cJSON_Delete(f);
            got++;
            continue;
        }
        h_keep(f);
        h_assert_str(f, "type", "bye");
        h_assert_str(f, "reason", "sendq_exceeded");
        break;
    }
    h_expect_closed(b, H_REPLY_MS);
    if (got >= sends)
        h_fail("bob got all %d messages: nothing was discarded", sends);

    /* The rest of the server noticed nothing; bob is gone for good. */
    h_request_ok(a, "{\"type\":\"msg\",\"text\":\"after\"}");
    cJSON *m = h_expect(carol, "message", H_REPLY_MS);
    h_assert_str(m, "text", "after");
    int64_t deadline = h_now_ms() + 3000;
    for (;;) {
        cJSON *reply = h_request(a, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"x\"}");
        if (strcmp(h_get_str(reply, "type"), "error") == 0) {
            h_assert_str(reply, "code", "no_such_user");
            break;
        }
        if (h_now_ms() > deadline)
            h_fail("bob is still a user 3 s after being dropped");
        h_sleep_ms(50);
    }
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_session");
    const struct CMUnitTest tests[] = {
        H_TEST(test_hello_reply),   H_TEST(test_bad_names),     H_TEST(test_name_taken),
        H_TEST(test_second_hello),  H_TEST(test_hello_timeout), H_TEST(test_max_clients),
        H_TEST(test_shutdown),      H_TEST(test_shutdown_delivers_queued),
        H_TEST(test_sendq_exceeded),
    };
    char group[64];
    snprintf(group, sizeof group, "session/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
