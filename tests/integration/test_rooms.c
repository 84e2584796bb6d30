/* PROTOCOL.md §5 (rooms), §6 with rooms (msg to a room), and which requests
 * exist under each combination of the chat, rooms and presence plugins; on
 * the engine named by argv[1]. */
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

#define PLUGINS_CHAT_ROOMS "server.plugins=chat rooms"
#define NO_AUTO_JOIN "rooms.auto_join="

/* A string of n copies of 'r' (n <= 100), owned by the harness. */
static const char *room_name_of_length(int n)
{
    static const char many[] = "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
                               "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr";
    return h_fmt("%.*s", n, many);
}

/* Fails unless frame[key] is an array holding exactly the n names, each
 * once, in any order (the protocol does not order members). */
static void assert_names(const cJSON *frame, const char *key, const char *const *names, size_t n)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(frame, key);
    if (!cJSON_IsArray(list) || (size_t)cJSON_GetArraySize(list) != n)
        h_fail("expected \"%s\" to list %zu names: %s", key, n, h_json(frame));
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, list)
        {
            if (!cJSON_IsString(item))
                h_fail("\"%s\" holds a non-string: %s", key, h_json(frame));
            if (strcmp(item->valuestring, names[i]) == 0)
                seen++;
        }
        if (seen != 1)
            h_fail("expected %s once in \"%s\", found it %d times: %s", names[i], key, seen,
                   h_json(frame));
    }
}

#define ASSERT_NAMES(frame, key, ...)                                                          \
    do {                                                                                       \
        const char *const want_[] = {__VA_ARGS__};                                             \
        assert_names(frame, key, want_, sizeof want_ / sizeof *want_);                         \
    } while (0)

/* An event pushed by the server carries neither id nor re. */
static void assert_event(const cJSON *e)
{
    h_assert_absent(e, "id");
    h_assert_absent(e, "re");
}

static cJSON *expect_joined(sa_client *c, const char *room, const char *user)
{
    cJSON *e = h_expect(c, "joined", H_REPLY_MS);
    h_assert_str(e, "room", room);
    h_assert_str(e, "user", user);
    assert_event(e);
    return e;
}

static cJSON *expect_left(sa_client *c, const char *room, const char *user, const char *reason)
{
    cJSON *e = h_expect(c, "left", H_REPLY_MS);
    h_assert_str(e, "room", room);
    h_assert_str(e, "user", user);
    h_assert_str(e, "reason", reason);
    assert_event(e);
    return e;
}

static cJSON *join(sa_client *c, const char *room)
{
    cJSON *ok = h_request_ok(c, h_fmt("{\"type\":\"join\",\"room\":\"%s\"}", room));
    h_assert_str(ok, "re", "join");
    return ok;
}

/* The entry of the `rooms` reply named `name`, or NULL. */
static const cJSON *find_room(const cJSON *rooms_reply, const char *name)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(rooms_reply, "rooms");
    if (!cJSON_IsArray(list))
        h_fail("rooms reply without a \"rooms\" array: %s", h_json(rooms_reply));
    const cJSON *room;
    cJSON_ArrayForEach(room, list)
    {
        if (!cJSON_IsObject(room))
            h_fail("rooms entry is not an object: %s", h_json(rooms_reply));
        const cJSON *room_name = cJSON_GetObjectItemCaseSensitive(room, "name");
        if (cJSON_IsString(room_name) && strcmp(room_name->valuestring, name) == 0)
            return room;
    }
    return NULL;
}

static cJSON *list_rooms(sa_client *c)
{
    cJSON *ok = h_request_ok(c, "{\"type\":\"rooms\"}");
    h_assert_str(ok, "re", "rooms");
    return ok;
}

/* Fails unless `rooms` lists `name` with `members` members and `topic`. */
static void assert_room_listed(sa_client *c, const char *name, double members, const char *topic)
{
    cJSON *ok = list_rooms(c);
    const cJSON *room = find_room(ok, name);
    if (!room)
        h_fail("rooms does not list %s: %s", name, h_json(ok));
    if (h_get_num(room, "members") != members)
        h_fail("rooms: %s should have %g members: %s", name, members, h_json(ok));
    h_assert_str(room, "topic", topic);
}

/* Polls `rooms` until `name` is gone (a disconnect is handled by the
 * server some moments after the socket closes). */
static void wait_room_gone(sa_client *c, const char *name)
{
    int64_t deadline = h_now_ms() + H_REPLY_MS;
    for (;;) {
        cJSON *ok = list_rooms(c);
        if (!find_room(ok, name))
            return;
        if (h_now_ms() > deadline)
            h_fail("room %s still listed %d ms after its last member left: %s", name, H_REPLY_MS,
                   h_json(ok));
        h_sleep_ms(20);
    }
}

static size_t room_count(sa_client *c)
{
    cJSON *ok = list_rooms(c);
    return (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ok, "rooms"));
}

/* ---- §5 rooms ------------------------------------------------------------------ */

static void test_join_creates_room(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");

    cJSON *ok = join(alice, "dev");
    h_assert_str(ok, "room", "dev");
    h_assert_str(ok, "topic", "");
    ASSERT_NAMES(ok, "members", "alice");

    ok = join(bob, "dev");
    h_assert_str(ok, "room", "dev");
    h_assert_str(ok, "topic", "");
    ASSERT_NAMES(ok, "members", "alice", "bob");
    expect_joined(alice, "dev", "bob");
    h_expect_silence(bob, H_QUIET_MS); /* the joiner is not told of itself */
    h_expect_silence(alice, 10);

    /* Joining again answers ok with the same room, and tells nobody. */
    ok = join(bob, "dev");
    h_assert_str(ok, "room", "dev");
    ASSERT_NAMES(ok, "members", "alice", "bob");
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(bob, 10);

    ok = h_request_ok(alice, "{\"type\":\"who\",\"room\":\"dev\"}");
    h_assert_str(ok, "re", "who");
    h_assert_str(ok, "room", "dev");
    ASSERT_NAMES(ok, "members", "alice", "bob");
}

static void test_leave(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");
    join(alice, "dev");
    join(bob, "dev");
    join(carol, "dev");
    expect_joined(alice, "dev", "bob");
    expect_joined(alice, "dev", "carol");
    expect_joined(bob, "dev", "carol");

    cJSON *ok = h_request_ok(bob, "{\"type\":\"leave\",\"room\":\"dev\"}");
    h_assert_str(ok, "re", "leave");
    h_assert_str(ok, "room", "dev");
    expect_left(alice, "dev", "bob", "leave");
    expect_left(carol, "dev", "bob", "leave");
    h_expect_silence(bob, H_QUIET_MS);
    ASSERT_NAMES(h_request_ok(alice, "{\"type\":\"who\",\"room\":\"dev\"}"), "members", "alice",
                 "carol");

    /* Not (or no longer) in it; a room that does not exist. */
    cJSON *err = h_request_error(bob, "{\"type\":\"leave\",\"room\":\"dev\"}", "not_member");
    h_assert_str(err, "re", "leave");
    h_request_error(bob, "{\"type\":\"leave\",\"room\":\"nowhere\"}", "no_such_room");
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(carol, 10);

    /* The last member out removes the room. */
    h_request_ok(carol, "{\"type\":\"leave\",\"room\":\"dev\"}");
    expect_left(alice, "dev", "carol", "leave");
    assert_room_listed(bob, "dev", 1, "");
    h_request_ok(alice, "{\"type\":\"leave\",\"room\":\"dev\"}");
    if (find_room(list_rooms(bob), "dev"))
        h_fail("the empty room dev is still listed");
    h_request_error(bob, "{\"type\":\"who\",\"room\":\"dev\"}", "no_such_room");
    h_request_error(alice, "{\"type\":\"leave\",\"room\":\"dev\"}", "no_such_room");

    /* Joining it again creates it afresh. */
    ok = join(bob, "dev");
    ASSERT_NAMES(ok, "members", "bob");
    h_assert_str(ok, "topic", "");
    h_expect_silence(alice, H_QUIET_MS);
}

static void test_rooms_and_who(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");

    if (room_count(alice) != 0)
        h_fail("rooms lists rooms before anyone joined one: %s", h_json(list_rooms(alice)));
    join(alice, "dev");
    join(bob, "dev");
    join(bob, "ops");
    h_request_ok(alice, "{\"type\":\"topic\",\"room\":\"dev\",\"topic\":\"ship it\"}");

    cJSON *ok = list_rooms(carol);
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ok, "rooms")) != 2)
        h_fail("rooms should list dev and ops only: %s", h_json(ok));
    assert_room_listed(carol, "dev", 2, "ship it");
    assert_room_listed(carol, "ops", 1, "");

    /* who works for non-members too. */
    ok = h_request_ok(carol, "{\"type\":\"who\",\"room\":\"ops\"}");
    h_assert_str(ok, "room", "ops");
    ASSERT_NAMES(ok, "members", "bob");
    cJSON *err = h_request_error(carol, "{\"type\":\"who\",\"room\":\"nowhere\"}", "no_such_room");
    h_assert_str(err, "re", "who");
}

static void test_topic(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");
    join(alice, "dev");
    join(bob, "dev");
    expect_joined(alice, "dev", "bob");

    cJSON *ok = h_request_ok(alice, "{\"type\":\"topic\",\"room\":\"dev\",\"topic\":\"release at 5\"}");
    h_assert_str(ok, "re", "topic");
    h_assert_str(ok, "room", "dev");
    h_assert_str(ok, "topic", "release at 5");
    cJSON *e = h_expect(bob, "topic", H_REPLY_MS);
    h_assert_str(e, "room", "dev");
    h_assert_str(e, "topic", "release at 5");
    h_assert_str(e, "by", "alice");
    assert_event(e);
    h_expect_silence(alice, H_QUIET_MS); /* not to the setter */
    h_expect_silence(carol, 10);

    /* Any member may set it. */
    h_request_ok(bob, "{\"type\":\"topic\",\"room\":\"dev\",\"topic\":\"\\u00e9t\\u00e9\"}");
    e = h_expect(alice, "topic", H_REPLY_MS);
    h_assert_str(e, "topic", "\xc3\xa9t\xc3\xa9");
    h_assert_str(e, "by", "bob");

    cJSON *err = h_request_error(carol, "{\"type\":\"topic\",\"room\":\"dev\",\"topic\":\"mine\"}",
                                 "not_member");
    h_assert_str(err, "re", "topic");
    h_request_error(carol, "{\"type\":\"topic\",\"room\":\"nowhere\",\"topic\":\"x\"}",
                    "no_such_room");
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(bob, 10);

    /* A newcomer sees the topic in its join reply. */
    ok = join(carol, "dev");
    h_assert_str(ok, "topic", "\xc3\xa9t\xc3\xa9");
    assert_room_listed(carol, "dev", 3, "\xc3\xa9t\xc3\xa9");
}

static void test_bad_room(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    join(bob, "dev");

    const char *const bad_values[] = {
        "\"\"",
        h_fmt("\"%s\"", room_name_of_length(65)),
        "\"a b\"",
        "\"\xc3\xa9\"",
        "\"a/b\"",
        "\"dev\\n\"",
        "5",
        "null",
        "[\"dev\"]",
    };
    static const char *const types[] = {"join", "leave", "who", "topic"};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        for (size_t v = 0; v < sizeof bad_values / sizeof *bad_values; v++) {
            cJSON *err = h_request_error(
                alice,
                h_fmt("{\"type\":\"%s\",\"room\":%s,\"topic\":\"t\"}", types[t], bad_values[v]),
                "bad_room");
            h_assert_str(err, "re", types[t]);
        }
        h_request_error(alice, h_fmt("{\"type\":\"%s\",\"topic\":\"t\"}", types[t]), "bad_room");
    }
    h_expect_silence(bob, H_QUIET_MS);
    if (room_count(alice) != 1)
        h_fail("a bad room name created a room: %s", h_json(list_rooms(alice)));

    /* The limits themselves are fine: 64 bytes, every allowed character. */
    const char *longest = room_name_of_length(64);
    h_assert_str(join(alice, longest), "room", longest);
    h_assert_str(join(alice, "Az09_.-"), "room", "Az09_.-");
    assert_room_listed(bob, longest, 1, "");
}

static void test_room_full(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN,
                                  "rooms.max_members=2", NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");
    join(alice, "dev");
    join(bob, "dev");
    expect_joined(alice, "dev", "bob");

    cJSON *err = h_request_error(carol, "{\"type\":\"join\",\"room\":\"dev\"}", "room_full");
    h_assert_str(err, "re", "join");
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(bob, 10);
    ASSERT_NAMES(h_request_ok(carol, "{\"type\":\"who\",\"room\":\"dev\"}"), "members", "alice",
                 "bob");
    /* A member joining again is not refused. */
    join(bob, "dev");

    /* A place frees up when a member leaves. */
    h_request_ok(bob, "{\"type\":\"leave\",\"room\":\"dev\"}");
    expect_left(alice, "dev", "bob", "leave");
    ASSERT_NAMES(join(carol, "dev"), "members", "alice", "carol");
    expect_joined(alice, "dev", "carol");
}

/* A full auto_join room does not stop anyone from logging in. */
static void test_room_full_auto_join(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, "rooms.max_members=2", NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    expect_joined(alice, "lobby", "bob");
    sa_client *carol = h_login(d, "carol");
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(bob, 10);
    ASSERT_NAMES(h_request_ok(carol, "{\"type\":\"who\",\"room\":\"lobby\"}"), "members", "alice",
                 "bob");
    h_request_error(carol, "{\"type\":\"join\",\"room\":\"lobby\"}", "room_full");
    join(carol, "dev");
}

/* The auto_join room counts; a refused join creates no room and tells no
 * one; joining a room one is in already is no new room; leaving frees a
 * place. */
static void test_max_rooms_per_user(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, "rooms.max_rooms_per_user=2", NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    expect_joined(alice, "lobby", "bob");
    join(alice, "dev");
    join(bob, "ops");

    cJSON *err = h_request_error(alice, "{\"type\":\"join\",\"room\":\"ops\"}", "too_many_rooms");
    h_assert_str(err, "re", "join");
    h_request_error(alice, "{\"type\":\"join\",\"room\":\"fresh\"}", "too_many_rooms");
    h_expect_silence(bob, H_QUIET_MS);
    if (find_room(list_rooms(bob), "fresh"))
        h_fail("a refused join created its room");
    ASSERT_NAMES(h_request_ok(bob, "{\"type\":\"who\",\"room\":\"ops\"}"), "members", "bob");
    h_request_error(alice, "{\"type\":\"msg\",\"room\":\"ops\",\"text\":\"hi\"}",
                    "not_member");

    /* Already a member: not a third room. */
    join(alice, "DEV");
    h_request_ok(alice, "{\"type\":\"msg\",\"room\":\"lobby\",\"text\":\"still in\"}");
    h_expect(bob, "message", H_REPLY_MS);

    h_request_ok(alice, "{\"type\":\"leave\",\"room\":\"lobby\"}");
    expect_left(bob, "lobby", "alice", "leave");
    ASSERT_NAMES(join(alice, "ops"), "members", "bob", "alice");
    expect_joined(bob, "ops", "alice");

    /* A new session starts again from its auto_join room. */
    h_client_close(alice);
    expect_left(bob, "ops", "alice", "quit");
    /* The name is free once the rooms saw her quit. */
    sa_client *again = h_login(d, "alice");
    join(again, "dev");
    h_request_error(again, "{\"type\":\"join\",\"room\":\"ops\"}", "too_many_rooms");
}

static void test_case_insensitive(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");

    h_assert_str(join(alice, "Dev"), "room", "Dev");
    cJSON *ok = join(bob, "dev");
    h_assert_str(ok, "room", "Dev");
    ASSERT_NAMES(ok, "members", "alice", "bob");
    expect_joined(alice, "Dev", "bob");

    h_assert_str(join(bob, "DEV"), "room", "Dev"); /* already in it */
    h_expect_silence(alice, H_QUIET_MS);
    if (room_count(alice) != 1)
        h_fail("Dev and dev became two rooms: %s", h_json(list_rooms(alice)));
    assert_room_listed(alice, "Dev", 2, "");
    h_assert_str(h_request_ok(alice, "{\"type\":\"who\",\"room\":\"dEV\"}"), "room", "Dev");

    h_request_ok(bob, "{\"type\":\"topic\",\"room\":\"DEV\",\"topic\":\"t\"}");
    h_assert_str(h_expect(alice, "topic", H_REPLY_MS), "room", "Dev");

    h_assert_str(h_request_ok(bob, "{\"type\":\"leave\",\"room\":\"dEv\"}"), "room", "Dev");
    expect_left(alice, "Dev", "bob", "leave");
}

static void test_auto_join_default(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    expect_joined(alice, "lobby", "bob");
    h_expect_silence(bob, H_QUIET_MS);
    h_expect_silence(alice, 10);

    ASSERT_NAMES(h_request_ok(bob, "{\"type\":\"who\",\"room\":\"lobby\"}"), "members", "alice",
                 "bob");
    assert_room_listed(alice, "lobby", 2, "");
    if (room_count(alice) != 1)
        h_fail("only lobby should exist: %s", h_json(list_rooms(alice)));

    /* Being in it already, a join of it is quiet. */
    ASSERT_NAMES(join(bob, "lobby"), "members", "alice", "bob");
    h_expect_silence(alice, H_QUIET_MS);
}

static void test_auto_join_other_room(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, "rooms.auto_join=Main", NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    expect_joined(alice, "Main", "bob");
    ASSERT_NAMES(h_request_ok(bob, "{\"type\":\"who\",\"room\":\"main\"}"), "members", "alice",
                 "bob");
    h_request_error(bob, "{\"type\":\"who\",\"room\":\"lobby\"}", "no_such_room");
}

static void test_auto_join_none(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(bob, 10);
    if (room_count(alice) != 0)
        h_fail("rooms.auto_join= (none) still made a room: %s", h_json(list_rooms(alice)));
    h_request_error(bob, "{\"type\":\"who\",\"room\":\"lobby\"}", "no_such_room");
}

/* Collects `count` left events at c and checks they name exactly the rooms
 * given, for `user` with `reason`, each once, in any order. */
static void expect_left_rooms(sa_client *c, const char *user, const char *reason,
                              const char *const *rooms, size_t count)
{
    int seen[16] = {0};
    if (count > sizeof seen / sizeof *seen)
        h_fail("test bug: too many rooms");
    for (size_t i = 0; i < count; i++) {
        cJSON *e = h_expect(c, "left", H_REPLY_MS);
        h_assert_str(e, "user", user);
        h_assert_str(e, "reason", reason);
        assert_event(e);
        const char *room = h_get_str(e, "room");
        size_t at = 0;
        while (at < count && strcmp(rooms[at], room) != 0)
            at++;
        if (at == count || seen[at]++)
            h_fail("unexpected or repeated left event: %s", h_json(e));
    }
}

static void test_disconnect_leaves_every_room(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");
    expect_joined(alice, "lobby", "bob");
    expect_joined(alice, "lobby", "carol");
    expect_joined(bob, "lobby", "carol");
    join(alice, "dev");
    join(bob, "dev");
    expect_joined(alice, "dev", "bob");
    join(bob, "ops");
    join(carol, "ops");
    expect_joined(bob, "ops", "carol");
    join(bob, "solo");
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(carol, 10);

    h_client_close(bob);
    static const char *const alice_rooms[] = {"lobby", "dev"};
    static const char *const carol_rooms[] = {"lobby", "ops"};
    expect_left_rooms(alice, "bob", "quit", alice_rooms, 2);
    expect_left_rooms(carol, "bob", "quit", carol_rooms, 2);
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(carol, 10);

    ASSERT_NAMES(h_request_ok(alice, "{\"type\":\"who\",\"room\":\"dev\"}"), "members", "alice");
    ASSERT_NAMES(h_request_ok(alice, "{\"type\":\"who\",\"room\":\"ops\"}"), "members", "carol");
    wait_room_gone(alice, "solo");

    /* A voluntary leave before quitting is not repeated as a quit. */
    h_request_ok(carol, "{\"type\":\"leave\",\"room\":\"lobby\"}");
    expect_left(alice, "lobby", "carol", "leave");
    h_client_close(carol);
    wait_room_gone(alice, "ops");
    h_expect_silence(alice, H_QUIET_MS);
}

/* ---- §6 chat with rooms -------------------------------------------------------- */

static void check_room_message(const cJSON *m, const char *room, const char *from,
                               const char *text, const char *msg_id)
{
    h_assert_str(m, "type", "message");
    h_assert_str(m, "room", room);
    h_assert_str(m, "from", from);
    h_assert_str(m, "text", text);
    h_assert_absent(m, "to");
    assert_event(m);
    double ts = h_get_num(m, "ts");
    if (fabs(ts - (double)h_wall_ms()) > 60000)
        h_fail("ts is not the current time in ms: %s", h_json(m));
    if (msg_id)
        h_assert_str(m, "msg_id", msg_id);
}

static void test_msg_to_room(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");
    sa_client *dave = h_login(d, "dave"); /* in no room */
    join(alice, "Dev");
    join(bob, "dev");
    join(carol, "ops");
    expect_joined(alice, "Dev", "bob");

    cJSON *ok = h_request_ok(alice, "{\"type\":\"msg\",\"room\":\"dev\",\"text\":\"hi devs\"}");
    h_assert_str(ok, "re", "msg");
    const char *msg_id = h_get_str(ok, "msg_id");
    h_get_num(ok, "ts");
    /* The event names the room as it was created. */
    check_room_message(h_expect(bob, "message", H_REPLY_MS), "Dev", "alice", "hi devs", msg_id);
    h_expect_silence(carol, H_QUIET_MS);
    h_expect_silence(dave, 10);
    h_expect_silence(alice, 10);

    h_request_ok(carol, "{\"type\":\"msg\",\"room\":\"ops\",\"text\":\"alone\"}");
    h_request_ok(bob, "{\"type\":\"msg\",\"room\":\"DEV\",\"text\":\"back\"}");
    check_room_message(h_expect(alice, "message", H_REPLY_MS), "Dev", "bob", "back", NULL);
    h_expect_silence(alice, H_QUIET_MS);
    h_expect_silence(bob, 10);
    h_expect_silence(dave, 10);

    /* After leaving, bob no longer hears the room nor may talk to it. */
    h_request_ok(bob, "{\"type\":\"leave\",\"room\":\"dev\"}");
    expect_left(alice, "Dev", "bob", "leave");
    h_request_ok(alice, "{\"type\":\"msg\",\"room\":\"dev\",\"text\":\"gone?\"}");
    h_expect_silence(bob, H_QUIET_MS);
    h_request_error(bob, "{\"type\":\"msg\",\"room\":\"dev\",\"text\":\"x\"}", "not_member");
}

static void test_msg_room_errors(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    join(alice, "dev");
    join(bob, "dev");
    join(bob, "ops");
    expect_joined(alice, "dev", "bob");

    cJSON *err = h_request_error(alice, "{\"type\":\"msg\",\"text\":\"x\"}", "bad_request");
    h_assert_str(err, "re", "msg");
    err = h_request_error(alice, "{\"type\":\"msg\",\"room\":\"nowhere\",\"text\":\"x\"}",
                          "no_such_room");
    h_assert_str(err, "re", "msg");
    err = h_request_error(alice, "{\"type\":\"msg\",\"room\":\"ops\",\"text\":\"x\"}",
                          "not_member");
    h_assert_str(err, "re", "msg");
    const char *const bad[] = {"", "a b", "\xc3\xa9", room_name_of_length(65)};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err = h_request_error(
            alice, h_fmt("{\"type\":\"msg\",\"room\":\"%s\",\"text\":\"x\"}", bad[i]), "bad_room");
        h_assert_str(err, "re", "msg");
    }
    h_expect_silence(bob, H_QUIET_MS);
}

static void test_dm_with_rooms(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");
    join(alice, "dev");
    join(carol, "dev");
    expect_joined(alice, "dev", "carol");

    /* No shared room needed. */
    const char *msg_id = h_get_str(
        h_request_ok(alice, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"psst\"}"), "msg_id");
    cJSON *m = h_expect(bob, "message", H_REPLY_MS);
    h_assert_str(m, "from", "alice");
    h_assert_str(m, "to", "bob");
    h_assert_str(m, "text", "psst");
    h_assert_str(m, "msg_id", msg_id);
    h_assert_absent(m, "room");
    h_expect_silence(carol, H_QUIET_MS);
    h_request_error(alice, "{\"type\":\"dm\",\"to\":\"nobody\",\"text\":\"x\"}", "no_such_user");
}

static void test_room_ordering(void **state)
{
    (void)state;
    enum { COUNT = 500 };
    h_daemon *d = h_daemon_startv(NULL, PLUGINS_CHAT_ROOMS, NO_AUTO_JOIN, "chat.rate=0", NULL);
    sa_client *alice = h_login(d, "alice");
    sa_client *bob = h_login(d, "bob");
    sa_client *carol = h_login(d, "carol");
    join(alice, "dev");
    join(bob, "dev");
    join(carol, "dev");
    expect_joined(alice, "dev", "bob");
    expect_joined(alice, "dev", "carol");
    expect_joined(bob, "dev", "carol");

    for (int i = 1; i <= COUNT; i++)
        h_send(alice, h_fmt("{\"type\":\"msg\",\"id\":%d,\"room\":\"dev\",\"text\":\"n%d\"}", i, i));
    for (int i = 1; i <= COUNT; i++) {
        cJSON *reply = h_recv(alice, H_REPLY_MS);
        if (strcmp(h_get_str(reply, "type"), "ok") != 0 || h_get_num(reply, "id") != i)
            h_fail("reply %d: expected ok with id %d, got %s", i, i, h_json(reply));
    }
    sa_client *const receivers[] = {bob, carol};
    char want[32];
    for (size_t r = 0; r < 2; r++) {
        for (int i = 1; i <= COUNT; i++) {
            cJSON *m = NULL;
            if (sa_client_recv(receivers[r], &m, H_REPLY_MS) != SA_CLIENT_OK)
                h_fail("%s: message %d of %d missing", r ? "carol" : "bob", i, COUNT);
            h_keep(m);
            snprintf(want, sizeof want, "n%d", i);
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "text");
            if (!cJSON_IsString(text) || strcmp(text->valuestring, want) != 0)
                h_fail("%s: message %d should be %s, got %s", r ? "carol" : "bob", i, want,
                       h_json(m));
        }
    }
    h_expect_silence(bob, H_QUIET_MS);
    h_expect_silence(carol, 10);
}

/* ---- plugin combinations ------------------------------------------------------- */

/* Logs in with a hello of our own and returns the reply (the harness's
 * h_login does not hand it out). */
static cJSON *login_reply(const h_daemon *d, const char *name, sa_client **out)
{
    sa_client *c = h_connect(d);
    cJSON *ok = h_request_ok(c, h_fmt("{\"type\":\"hello\",\"name\":\"%s\",\"proto\":1}", name));
    *out = c;
    return ok;
}

/* Whether the plugin handling `json` is loaded shows in the reply: any
 * reply but unknown_type (errors included) means it is. */
static void assert_known(sa_client *c, const char *json, int known)
{
    cJSON *reply = h_request(c, json);
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(reply, "code");
    int unknown = cJSON_IsString(code) && strcmp(code->valuestring, "unknown_type") == 0;
    if (known && unknown)
        h_fail("%s: the plugin is loaded, got %s", json, h_json(reply));
    if (!known && !unknown)
        h_fail("%s: expected unknown_type, the plugin is not loaded; got %s", json,
               h_json(reply));
}

static const char *const room_requests[] = {
    "{\"type\":\"join\",\"room\":\"dev\"}",
    "{\"type\":\"who\",\"room\":\"dev\"}",
    "{\"type\":\"rooms\"}",
    "{\"type\":\"topic\",\"room\":\"dev\",\"topic\":\"t\"}",
    "{\"type\":\"leave\",\"room\":\"dev\"}",
};
static const char *const presence_requests[] = {
    "{\"type\":\"status\",\"status\":\"away\"}",
    "{\"type\":\"users\"}",
};
static const char *const chat_requests[] = {
    "{\"type\":\"msg\",\"room\":\"dev\",\"text\":\"x\"}",
    "{\"type\":\"msg\",\"text\":\"x\"}",
    "{\"type\":\"dm\",\"to\":\"alice\",\"text\":\"x\"}",
};

static void assert_plugins(sa_client *c, int chat, int rooms, int presence)
{
    for (size_t i = 0; i < sizeof room_requests / sizeof *room_requests; i++)
        assert_known(c, room_requests[i], rooms);
    for (size_t i = 0; i < sizeof presence_requests / sizeof *presence_requests; i++)
        assert_known(c, presence_requests[i], presence);
    for (size_t i = 0; i < sizeof chat_requests / sizeof *chat_requests; i++)
        assert_known(c, chat_requests[i], chat);
}

static void test_plugins_chat_only(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat", NULL);
    sa_client *alice = NULL, *bob = NULL;
    ASSERT_NAMES(login_reply(d, "alice", &alice), "features", "chat");
    login_reply(d, "bob", &bob);
    h_expect_silence(alice, H_QUIET_MS); /* no joined, no presence */

    /* Without rooms a msg without room goes to everyone else. */
    h_request_ok(alice, "{\"type\":\"msg\",\"text\":\"to all\"}");
    cJSON *m = h_expect(bob, "message", H_REPLY_MS);
    h_assert_str(m, "text", "to all");
    h_assert_absent(m, "room");
    assert_plugins(bob, 1, 0, 0);
}

static void test_plugins_chat_rooms(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat rooms", NULL);
    sa_client *alice = NULL, *bob = NULL;
    ASSERT_NAMES(login_reply(d, "alice", &alice), "features", "chat", "rooms");
    login_reply(d, "bob", &bob);
    expect_joined(alice, "lobby", "bob");
    h_expect_silence(alice, H_QUIET_MS); /* no presence */

    h_request_ok(alice, "{\"type\":\"msg\",\"room\":\"lobby\",\"text\":\"hi\"}");
    check_room_message(h_expect(bob, "message", H_REPLY_MS), "lobby", "alice", "hi", NULL);
    assert_plugins(bob, 1, 1, 0);
}

static void test_plugins_chat_rooms_presence(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat rooms presence", NULL);
    sa_client *alice = NULL, *bob = NULL;
    ASSERT_NAMES(login_reply(d, "alice", &alice), "features", "chat", "rooms", "presence");
    login_reply(d, "bob", &bob);
    expect_joined(alice, "lobby", "bob");
    cJSON *p = h_expect(alice, "presence", H_REPLY_MS);
    h_assert_str(p, "user", "bob");
    h_assert_str(p, "status", "online");

    h_request_ok(alice, "{\"type\":\"msg\",\"room\":\"lobby\",\"text\":\"hi\"}");
    check_room_message(h_expect(bob, "message", H_REPLY_MS), "lobby", "alice", "hi", NULL);
    assert_plugins(bob, 1, 1, 1);
}

static void test_plugins_rooms_presence(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=rooms presence", NULL);
    sa_client *alice = NULL, *bob = NULL;
    ASSERT_NAMES(login_reply(d, "alice", &alice), "features", "rooms", "presence");
    login_reply(d, "bob", &bob);
    expect_joined(alice, "lobby", "bob");
    h_assert_str(h_expect(alice, "presence", H_REPLY_MS), "user", "bob");

    h_request_error(alice, "{\"type\":\"msg\",\"room\":\"lobby\",\"text\":\"hi\"}",
                    "unknown_type");
    h_request_error(alice, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"hi\"}", "unknown_type");
    h_expect_silence(bob, H_QUIET_MS);
    assert_plugins(bob, 0, 1, 1);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_rooms");
    const struct CMUnitTest tests[] = {
        H_TEST(test_join_creates_room),
        H_TEST(test_leave),
        H_TEST(test_rooms_and_who),
        H_TEST(test_topic),
        H_TEST(test_bad_room),
        H_TEST(test_room_full),
        H_TEST(test_room_full_auto_join),
        H_TEST(test_max_rooms_per_user),
        H_TEST(test_case_insensitive),
        H_TEST(test_auto_join_default),
        H_TEST(test_auto_join_other_room),
        H_TEST(test_auto_join_none),
        H_TEST(test_disconnect_leaves_every_room),
        H_TEST(test_msg_to_room),
        H_TEST(test_msg_room_errors),
        H_TEST(test_dm_with_rooms),
        H_TEST(test_room_ordering),
        H_TEST(test_plugins_chat_only),
        H_TEST(test_plugins_chat_rooms),
        H_TEST(test_plugins_chat_rooms_presence),
        H_TEST(test_plugins_rooms_presence),
    };
    char group[64];
    snprintf(group, sizeof group, "rooms/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
