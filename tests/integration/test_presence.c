/* PROTOCOL.md §7: presence with and without the rooms plugin, on the
 * engine named by argv[1]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define PLUGINS_ALL "server.plugins=chat rooms presence"
#define NO_AUTO_JOIN "rooms.auto_join="

/* A presence event about `user`; text NULL: none expected. */
static cJSON *expect_presence(sa_client *c, const char *user, const char *status,
                              const char *text)
{
    cJSON *e = h_expect(c, "presence", H_REPLY_MS);
    h_assert_str(e, "user", user);
    h_assert_str(e, "status", status);
    if (text)
        h_assert_str(e, "text", text);
    h_assert_absent(e, "id");
    h_assert_absent(e, "re");
    return e;
}

static void expect_joined(sa_client *c, const char *room, const char *user)
{
    cJSON *e = h_expect(c, "joined", H_REPLY_MS);
    h_assert_str(e, "room", room);
    h_assert_str(e, "user", user);
}

static void join(sa_client *c, const char *room)
{
    h_request_ok(c, h_fmt("{\"type\":\"join\",\"room\":\"%s\"}", room));
}

/* After `user` disconnects, a peer in `shared` rooms with them gets one
 * offline presence and one left (quit) per room, in an order the protocol
 * leaves open. */
static void expect_departure(sa_client *c, const char *user, int shared)
{
    int offline = 0, left = 0;
    for (int i = 0; i < shared + 1; i++) {
        cJSON *e = h_recv(c, H_REPLY_MS);
        const char *type = h_get_str(e, "type");
        h_assert_str(e, "user", user);
        if (strcmp(type, "presence") == 0) {
            h_assert_str(e, "status", "offline");
            offline++;
        } else if (strcmp(type, "left") == 0) {
            h_assert_str(e, "reason", "quit");
            left++;
        } else {
            h_fail("expected presence offline or left, got %s", h_json(e));
        }
    }
    if (offline != 1 || left != shared)
        h_fail("%s left: expected 1 offline presence and %d left events, got %d and %d", user,
               shared, offline, left);
}

/* The users reply's entry for `name`, checked for status and text. */
static void assert_user(const cJSON *users_reply, const char *name, const char *status,
                        const char *text)
{
    const cJSON *item;
    int found = 0;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(users_reply, "users"))
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(item, "name");
        if (!cJSON_IsString(n) || strcmp(n->valuestring, name) != 0)
            continue;
        found++;
        h_assert_str(item, "status", status);
        h_assert_str(item, "text", text);
    }
    if (found != 1)
        h_fail("users should list %s once (found %d): %s", name, found, h_json(users_reply));
}

static cJSON *users(sa_client *c, int expected_count)
{
    cJSON *ok = h_request_ok(c, "{\"type\":\"users\"}");
    h_assert_str(ok, "re", "users");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(ok, "users");
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != expected_count)
        h_fail("users should list %d users: %s", expected_count, h_json(ok));
    return ok;
}

/* ---- with rooms ----------------------------------------------------------------- */

/* With the default auto_join, everyone in the lobby hears of logins and
 * departures; whoever left the lobby (and shares no room) does not. */
static void test_online_offline_to_lobby(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_ALL, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *carol = h_login(d, "carol");
    expect_joined(alice, "lobby", "carol");
    expect_presence(alice, "carol", "online", NULL);
    h_expect_silence(carol, H_QUIET_MS); /* nothing about herself */
    h_request_ok(carol, "{\"type\":\"leave\",\"room\":\"lobby\"}");
    h_expect(alice, "left", H_REPLY_MS);

    sa_client *bob = h_login(d, "bob");
    expect_joined(alice, "lobby", "bob");
    expect_presence(alice, "bob", "online", NULL);
    h_expect_silence(carol, H_QUIET_MS);
    h_expect_silence(bob, 10);
    h_expect_silence(alice, 10);

    h_client_close(bob);
    expect_departure(alice, "bob", 1);
    h_expect_silence(carol, H_QUIET_MS);
    h_expect_silence(alice, 10);
}

static void test_online_offline_room_peers_only(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_ALL, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");
    /* In no room at hello: nobody to tell. */
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(bob, 10);
    join(alice, "dev");
    join(bob, "dev");
    join(carol, "ops");
    expect_joined(alice, "dev", "bob");
    sa_client *dave = h_login(d, "dave");

    h_client_close(bob);
    expect_departure(alice, "bob", 1);
    h_expect_silence(carol, H_QUIET_MS);
    h_expect_silence(dave, 10);
    h_client_close(carol); /* alone in ops */
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(dave, 10);
    h_client_close(dave);
    h_expect_silence(alice, H_QUIET_MS);
}

static void test_status(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_ALL, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");
    join(alice, "dev");
    join(bob, "dev");
    expect_joined(alice, "dev", "bob");

    cJSON *ok = h_request_ok(alice, "{\"type\":\"status\",\"status\":\"away\",\"text\":\"lunch\"}");
    h_assert_str(ok, "re", "status");
    expect_presence(bob, "alice", "away", "lunch");
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(carol, 10);
    assert_user(users(carol, 3), "alice", "away", "lunch");

    /* Without text, the text is cleared. */
    h_request_ok(alice, "{\"type\":\"status\",\"status\":\"busy\"}");
    expect_presence(bob, "alice", "busy", "");
    assert_user(users(carol, 3), "alice", "busy", "");

    h_request_ok(alice, "{\"type\":\"status\",\"status\":\"online\",\"text\":\"back \\u2603\"}");
    expect_presence(bob, "alice", "online", "back \xe2\x98\x83");
    assert_user(users(bob, 3), "alice", "online", "back \xe2\x98\x83");
    h_expect_silence(carol, H_QUIET_MS);
}

static void test_bad_status(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_ALL, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    join(alice, "dev");
    join(bob, "dev");
    expect_joined(alice, "dev", "bob");
    h_request_ok(alice, "{\"type\":\"status\",\"status\":\"away\",\"text\":\"lunch\"}");
    expect_presence(bob, "alice", "away", "lunch");

    static const char *const bad[] = {
        "{\"type\":\"status\",\"status\":\"sleeping\"}",
        "{\"type\":\"status\",\"status\":\"sleeping\",\"text\":\"zzz\"}",
        "{\"type\":\"status\"}",
        "{\"type\":\"status\",\"text\":\"zzz\"}",
        "{\"type\":\"status\",\"status\":5}",
        "{\"type\":\"status\",\"status\":null}",
        "{\"type\":\"status\",\"status\":\"\"}",
        "{\"type\":\"status\",\"status\":\"offline\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON *err = h_request_error(alice, bad[i], "bad_status");
        h_assert_str(err, "re", "status");
    }
    h_expect_silence(bob, H_QUIET_MS);
    /* A refused status changes nothing. */
    assert_user(users(bob, 2), "alice", "away", "lunch");
}

static void test_users(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_ALL, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "Carol");
    sa_client *anon = h_connect(d); /* no hello: not a user */
    (void)anon;
    h_request_ok(alice, "{\"type\":\"status\",\"status\":\"away\",\"text\":\"lunch\"}");
    h_request_ok(bob, "{\"type\":\"status\",\"status\":\"busy\"}");

    /* Everyone, shared room or not. */
    cJSON *ok = users(carol, 3);
    assert_user(ok, "alice", "away", "lunch");
    assert_user(ok, "bob", "busy", "");
    assert_user(ok, "Carol", "online", "");

    h_client_close(bob);
    int64_t deadline = h_now_ms() + H_REPLY_MS;
    for (;;) {
        ok = h_request_ok(alice, "{\"type\":\"users\"}");
        if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ok, "users")) == 2)
            break;
        if (h_now_ms() > deadline)
            h_fail("bob still listed %d ms after leaving: %s", H_REPLY_MS, h_json(ok));
        h_sleep_ms(20);
    }
    assert_user(ok, "alice", "away", "lunch");
    assert_user(ok, "Carol", "online", "");
}

/* Many shared rooms still make one event per change. */
static void test_fifty_shared_rooms(void **state)
{
    (void)state;
    enum { ROOMS = 50 };
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_ALL, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    for (int i = 0; i < ROOMS; i++) {
        const char *room = h_fmt("room%02d", i);
        join(alice, room);
        join(bob, room);
        expect_joined(alice, room, "bob");
    }
    h_request_ok(bob, "{\"type\":\"status\",\"status\":\"away\",\"text\":\"x\"}");
    expect_presence(alice, "bob", "away", "x");
    h_expect_silence(alice, H_QUIET_MS);
    h_request_ok(bob, "{\"type\":\"status\",\"status\":\"online\"}");
    expect_presence(alice, "bob", "online", "");
    h_expect_silence(alice, H_QUIET_MS);

    h_client_close(bob);
    expect_departure(alice, "bob", ROOMS);
    h_expect_silence(alice, H_QUIET_MS);
}

/* ---- without rooms -------------------------------------------------------------- */

static void test_presence_without_rooms(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat presence", NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *anon = h_connect(d);
    sa_client *bob = h_login(d, "bob");
    expect_presence(alice, "bob", "online", NULL);
    sa_client *carol = h_login(d, "carol");
    expect_presence(alice, "carol", "online", NULL);
    expect_presence(bob, "carol", "online", NULL);
    h_expect_silence(carol, H_QUIET_MS);

    h_request_ok(bob, "{\"type\":\"status\",\"status\":\"away\",\"text\":\"out\"}");
    expect_presence(alice, "bob", "away", "out");
    expect_presence(carol, "bob", "away", "out");
    h_expect_silence(bob, H_QUIET_MS);

    h_client_close(bob);
    expect_presence(alice, "bob", "offline", NULL);
    expect_presence(carol, "bob", "offline", NULL);
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(carol, 10);
    h_expect_silence(anon, 10); /* never logged in: never told */

    cJSON *ok = users(alice, 2);
    assert_user(ok, "alice", "online", "");
    assert_user(ok, "carol", "online", "");
    h_request_error(alice, "{\"type\":\"join\",\"room\":\"dev\"}", "unknown_type");
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_presence");
    const struct CMUnitTest tests[] = {
        H_TEST(test_online_offline_to_lobby),
        H_TEST(test_online_offline_room_peers_only),
        H_TEST(test_status),
        H_TEST(test_bad_status),
        H_TEST(test_users),
        H_TEST(test_fifty_shared_rooms),
        H_TEST(test_presence_without_rooms),
    };
    char group[64];
    snprintf(group, sizeof group, "presence/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
