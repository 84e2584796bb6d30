/* PROTOCOL.md §6 without rooms: msg and dm through the chat plugin, on the
 * engine named by argv[1]. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

/* ts is server time in ms since the epoch: near ours (same machine). */
static void assert_ts_now(const cJSON *frame)
{
    double ts = h_get_num(frame, "ts");
    double now = (double)h_wall_ms();
    if (fabs(ts - now) > 60000 || ts != floor(ts))
        h_fail("ts %.17g is not the current time in ms (%.17g): %s", ts, now, h_json(frame));
}

/* A message event as §6 describes it. */
static void check_message(const cJSON *m, const char *from, const char *text, const char *msg_id)
{
    h_assert_str(m, "type", "message");
    h_assert_str(m, "from", from);
    h_assert_str(m, "text", text);
    assert_ts_now(m);
    const char *id = h_get_str(m, "msg_id");
    if (msg_id && strcmp(id, msg_id) != 0)
        h_fail("message carries msg_id %s, the sender's ok said %s", id, msg_id);
    h_assert_absent(m, "id");
    h_assert_absent(m, "re");
}

static void test_msg_reaches_everyone_else(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");
    sa_client *anon = h_connect(d); /* no hello: not a user, gets nothing */

    cJSON *ok = h_request_ok(alice, "{\"type\":\"msg\",\"text\":\"hello all\"}");
    h_assert_str(ok, "re", "msg");
    const char *msg_id = h_get_str(ok, "msg_id");
    if (!*msg_id)
        h_fail("empty msg_id: %s", h_json(ok));
    assert_ts_now(ok);

    for (int i = 0; i < 2; i++) {
        cJSON *m = h_expect(i ? carol : bob, "message", H_REPLY_MS);
        check_message(m, "alice", "hello all", msg_id);
        h_assert_absent(m, "room");
        h_assert_absent(m, "to");
    }
    h_expect_silence(alice, H_QUIET_MS); /* no copy to the sender */
    h_expect_silence(anon, 10);
    h_expect_silence(bob, 10);
    h_expect_silence(carol, 10);

    /* Unknown members are ignored; text may be empty. */
    h_request_ok(bob, "{\"type\":\"msg\",\"text\":\"\",\"colour\":\"red\"}");
    check_message(h_expect(alice, "message", H_REPLY_MS), "bob", "", NULL);
    check_message(h_expect(carol, "message", H_REPLY_MS), "bob", "", NULL);
}

static void test_msg_ids_unique(void **state)
{
    (void)state;
    enum { PER_USER = 20 };
    h_daemon *d = h_daemon_startv(NULL, "chat.rate=0", NULL);
    sa_client *users[2] = {h_login(d, "alice"), h_login(d, "bob")};
    const char *ids[4 * PER_USER];
    size_t n = 0;
    for (int i = 0; i < PER_USER; i++) {
        for (int u = 0; u < 2; u++) {
            cJSON *ok = h_request_ok(users[u], h_fmt("{\"type\":\"msg\",\"text\":\"m%d\"}", i));
            ids[n++] = h_get_str(ok, "msg_id");
            ok = h_request_ok(users[u], h_fmt("{\"type\":\"dm\",\"to\":\"%s\",\"text\":\"d\"}",
                                              u ? "alice" : "bob"));
            ids[n++] = h_get_str(ok, "msg_id");
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(ids[i], ids[j]) == 0)
                h_fail("msg_id %s given twice", ids[i]);
}

static void test_dm(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");

    cJSON *ok = h_request_ok(alice, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"psst\"}");
    h_assert_str(ok, "re", "dm");
    const char *msg_id = h_get_str(ok, "msg_id");
    assert_ts_now(ok);
    cJSON *m = h_expect(bob, "message", H_REPLY_MS);
    check_message(m, "alice", "psst", msg_id);
    h_assert_str(m, "to", "bob");
    h_assert_absent(m, "room");
    h_expect_silence(carol, H_QUIET_MS);
    h_expect_silence(alice, 10);

    /* Names are compared case-insensitively. */
    h_request_ok(carol, "{\"type\":\"dm\",\"to\":\"ALICE\",\"text\":\"hi\"}");
    check_message(h_expect(alice, "message", H_REPLY_MS), "carol", "hi", NULL);
    h_expect_silence(bob, H_QUIET_MS);
}

static void test_dm_errors(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *anon = h_connect(d);
    (void)anon;

    cJSON *err = h_request_error(alice, "{\"type\":\"dm\",\"to\":\"nobody\",\"text\":\"x\"}",
                                 "no_such_user");
    h_assert_str(err, "re", "dm");
    static const char *const bad[] = {
        "{\"type\":\"dm\",\"text\":\"x\"}",
        "{\"type\":\"dm\",\"to\":5,\"text\":\"x\"}",
        "{\"type\":\"dm\",\"to\":null,\"text\":\"x\"}",
        "{\"type\":\"dm\",\"to\":[\"bob\"],\"text\":\"x\"}",
        "{\"type\":\"dm\",\"to\":\"bob\"}",
        "{\"type\":\"dm\",\"to\":\"bob\",\"text\":7}",
        "{\"type\":\"dm\",\"to\":\"bob\",\"text\":{\"a\":1}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        h_request_error(alice, bad[i], "bad_request");
    h_expect_silence(bob, H_QUIET_MS);

    /* A user who left is no longer there. */
    h_client_close(bob);
    int64_t deadline = h_now_ms() + 3000;
    for (;;) {
        cJSON *reply = h_request(alice, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"x\"}");
        if (strcmp(h_get_str(reply, "type"), "error") == 0) {
            h_assert_str(reply, "code", "no_such_user");
            break;
        }
        if (h_now_ms() > deadline)
            h_fail("bob still reachable 3 s after he left");
        h_sleep_ms(50);
    }
}

static void test_text_missing_or_not_string(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    static const char *const bad[] = {
        "{\"type\":\"msg\"}",
        "{\"type\":\"msg\",\"text\":5}",
        "{\"type\":\"msg\",\"text\":null}",
        "{\"type\":\"msg\",\"text\":true}",
        "{\"type\":\"msg\",\"text\":[\"x\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON *err = h_request_error(alice, bad[i], "bad_request");
        h_assert_str(err, "re", "msg");
    }
    h_expect_silence(bob, H_QUIET_MS);
}

static void test_text_too_long(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "chat.max_text=10", NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");

    h_request_error(alice, "{\"type\":\"msg\",\"text\":\"01234567890\"}", "text_too_long");
    h_request_error(alice, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"01234567890\"}",
                    "text_too_long");
    /* Bytes count, not characters: five 2-byte characters are 10 bytes. */
    h_request_error(alice, "{\"type\":\"msg\",\"text\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x\"}",
                    "text_too_long");
    h_expect_silence(bob, H_QUIET_MS);

    h_request_ok(alice, "{\"type\":\"msg\",\"text\":\"0123456789\"}");
    check_message(h_expect(bob, "message", H_REPLY_MS), "alice", "0123456789", NULL);
    h_request_ok(alice, "{\"type\":\"msg\",\"text\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}");
    check_message(h_expect(bob, "message", H_REPLY_MS), "alice",
                  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", NULL);
    h_request_ok(alice, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"0123456789\"}");
    check_message(h_expect(bob, "message", H_REPLY_MS), "alice", "0123456789", NULL);
}

static void test_rate_limited(void **state)
{
    (void)state;
    enum { SENT = 30 };
    h_daemon *d = h_daemon_startv(NULL, "chat.rate=5", NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");

    /* All at once, then the replies in order. */
    for (int i = 1; i <= SENT; i++)
        h_send(alice, h_fmt("{\"type\":\"msg\",\"id\":%d,\"text\":\"burst %d\"}", i, i));
    int oks = 0, limited = 0;
    for (int i = 1; i <= SENT; i++) {
        cJSON *reply = h_recv(alice, H_REPLY_MS);
        if (h_get_num(reply, "id") != i)
            h_fail("reply %d out of order: %s", i, h_json(reply));
        if (strcmp(h_get_str(reply, "type"), "ok") == 0) {
            oks++;
        } else {
            h_assert_str(reply, "code", "rate_limited");
            h_assert_str(reply, "re", "msg");
            limited++;
        }
    }
    if (limited < 1 || oks > 10)
        h_fail("rate 5/s: %d of %d passed, %d rate_limited", oks, SENT, limited);
    /* Only the accepted ones were delivered. */
    for (int i = 0; i < oks; i++)
        h_expect(bob, "message", H_REPLY_MS);
    h_expect_silence(bob, H_QUIET_MS);

    /* The limit is per user, and it recovers. */
    sa_client *carol = h_login(d, "carol");
    h_request_ok(carol, "{\"type\":\"msg\",\"text\":\"mine\"}");
    h_sleep_ms(1500);
    h_request_ok(alice, "{\"type\":\"msg\",\"text\":\"later\"}");
}

/* msg and dm spend from one bucket: private messages are no way around
 * the rate. */
static void test_rate_limited_dm(void **state)
{
    (void)state;
    /* A burst of one, refilled once a second. */
    h_daemon *d = h_daemon_startv(NULL, "chat.rate=1", NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    h_request_ok(alice, "{\"type\":\"msg\",\"text\":\"spend\"}");
    cJSON *err = h_request_error(alice, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"x\"}",
                                 "rate_limited");
    h_assert_str(err, "re", "dm");
    h_expect(bob, "message", H_REPLY_MS);
    h_expect_silence(bob, H_QUIET_MS);
}

static void test_room_without_rooms_plugin(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    cJSON *err = h_request_error(alice, "{\"type\":\"msg\",\"room\":\"lobby\",\"text\":\"x\"}",
                                 "no_such_room");
    h_assert_str(err, "re", "msg");
    h_expect_silence(bob, H_QUIET_MS);
    /* The room requests themselves are not there. */
    h_request_error(alice, "{\"type\":\"join\",\"room\":\"lobby\"}", "unknown_type");
}

static void test_ordering(void **state)
{
    (void)state;
    enum { COUNT = 500 };
    h_daemon *d = h_daemon_startv(NULL, "chat.rate=0", NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");

    for (int i = 1; i <= COUNT; i++)
        h_send(alice, h_fmt("{\"type\":\"msg\",\"id\":%d,\"text\":\"n%d\"}", i, i));
    for (int i = 1; i <= COUNT; i++) {
        cJSON *reply = NULL;
        if (sa_client_recv(alice, &reply, H_REPLY_MS) != SA_CLIENT_OK)
            h_fail("reply %d of %d missing", i, COUNT);
        h_keep(reply);
        if (strcmp(h_get_str(reply, "type"), "ok") != 0 || h_get_num(reply, "id") != i)
            h_fail("reply %d: expected ok with id %d, got %s", i, i, h_json(reply));
    }
    char want[32];
    for (int i = 1; i <= COUNT; i++) {
        cJSON *m = NULL;
        if (sa_client_recv(bob, &m, H_REPLY_MS) != SA_CLIENT_OK)
            h_fail("bob: message %d of %d missing", i, COUNT);
        h_keep(m);
        snprintf(want, sizeof want, "n%d", i);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "text");
        if (!cJSON_IsString(text) || strcmp(text->valuestring, want) != 0)
            h_fail("bob: message %d should be %s, got %s", i, want, h_json(m));
    }
    h_expect_silence(bob, H_QUIET_MS);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_chat");
    const struct CMUnitTest tests[] = {
        H_TEST(test_msg_reaches_everyone_else),
        H_TEST(test_msg_ids_unique),
        H_TEST(test_dm),
        H_TEST(test_dm_errors),
        H_TEST(test_text_missing_or_not_string),
        H_TEST(test_text_too_long),
        H_TEST(test_rate_limited),
        H_TEST(test_rate_limited_dm),
        H_TEST(test_room_without_rooms_plugin),
        H_TEST(test_ordering),
    };
    char group[64];
    snprintf(group, sizeof group, "chat/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
