/* Fan-out under load: 200 clients in 10 rooms all talking at once; every
 * message reaches every other member of its room exactly once and in the
 * sender's order (PROTOCOL.md §2, §6). Once with the default single event
 * loop, once with server.workers = 3, where the members of a room sit on
 * different loops (the sync engine ignores workers). On the engine named
 * by argv[1]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

enum {
    CLIENTS = 200,
    ROOMS = 10,
    PER_ROOM = CLIENTS / ROOMS,
    MESSAGES = 5, /* per client */
    DELIVERIES = CLIENTS * MESSAGES * (PER_ROOM - 1),
};

/* The whole exchange, connects included, must fit in this. */
#define FANOUT_DEADLINE_MS 60000

static sa_client *clients[CLIENTS];
/* last_seq[receiver][sender]: the sequence number of the last message
 * from sender seen by receiver (0: none yet). */
static int last_seq[CLIENTS][CLIENTS];

static int room_of(int client) { return client % ROOMS; }

/* Fails the test showing `frame`, which the harness then frees. */
#define FAIL_AT(frame, fmt, ...)                                                               \
    do {                                                                                       \
        cJSON *failed_ = (frame);                                                              \
        h_keep(failed_);                                                                       \
        h_fail(fmt ": %s", __VA_ARGS__, h_json(failed_));                                      \
    } while (0)

static void check_deadline(int64_t deadline, const char *phase)
{
    if (h_now_ms() > deadline)
        h_fail("fan-out did not finish within %d ms (%s)", FANOUT_DEADLINE_MS, phase);
}

/* The next frame of client i; the caller frees it. */
static cJSON *next_frame(int i, const char *waiting_for)
{
    cJSON *frame = NULL;
    int rc = sa_client_recv(clients[i], &frame, H_REPLY_MS);
    if (rc != SA_CLIENT_OK)
        h_fail("u%03d: no frame within %d ms (status %d) while waiting for %s", i, H_REPLY_MS,
               rc, waiting_for);
    return frame;
}

static const char *frame_type(const cJSON *frame)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(frame, "type");
    return cJSON_IsString(type) ? type->valuestring : "";
}

static void send_or_fail(int i, cJSON *msg)
{
    if (!msg)
        h_fail("out of memory");
    int rc = sa_client_send(clients[i], msg);
    cJSON_Delete(msg);
    if (rc != SA_CLIENT_OK)
        h_fail("u%03d: send failed: %s", i, sa_client_error(clients[i]));
}

static cJSON *request_body(const char *type, int id, int room)
{
    char room_name[16];
    snprintf(room_name, sizeof room_name, "room%d", room);
    cJSON *msg = cJSON_CreateObject();
    if (!msg || !cJSON_AddStringToObject(msg, "type", type) ||
        !cJSON_AddNumberToObject(msg, "id", id) ||
        !cJSON_AddStringToObject(msg, "room", room_name)) {
        cJSON_Delete(msg);
        return NULL;
    }
    return msg;
}

/* Reads the client name "uNNN" (three digits) at *text and moves past it.
 * Returns the client index, or -1 for anything else. */
static int parse_client(const char **text)
{
    const char *s = *text;
    if (s[0] != 'u')
        return -1;
    int index = 0;
    for (int i = 1; i <= 3; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        index = index * 10 + (s[i] - '0');
    }
    *text = s + 4;
    return index < CLIENTS ? index : -1;
}

/* The client a "uNNN" name string names, or -1. */
static int client_index(const cJSON *name)
{
    if (!cJSON_IsString(name))
        return -1;
    const char *rest = name->valuestring;
    int index = parse_client(&rest);
    return *rest == '\0' ? index : -1;
}

/* Every client joins its room (all sent at once, so the server decides the
 * order). Each then gets its join reply, listing the members so far, and
 * a joined event for each member who came after it, exactly once. */
static void join_all(int64_t deadline)
{
    for (int i = 0; i < CLIENTS; i++)
        send_or_fail(i, request_body("join", 1, room_of(i)));
    for (int i = 0; i < CLIENTS; i++) {
        int known[CLIENTS] = {0}; /* members i has been told of */
        cJSON *ok = next_frame(i, "its join reply");
        const cJSON *members = cJSON_GetObjectItemCaseSensitive(ok, "members");
        if (strcmp(frame_type(ok), "ok") != 0 || !cJSON_IsArray(members))
            FAIL_AT(ok, "u%03d: expected the join reply", i);
        int member_count = 0;
        const cJSON *name;
        cJSON_ArrayForEach(name, members)
        {
            int who = client_index(name);
            if (who < 0 || room_of(who) != room_of(i) || known[who]++)
                FAIL_AT(ok, "u%03d: wrong member list", i);
            member_count++;
        }
        if (!known[i])
            FAIL_AT(ok, "u%03d: not in its own room's member list", i);
        cJSON_Delete(ok);
        for (int joined = member_count; joined < PER_ROOM; joined++) {
            cJSON *e = next_frame(i, "joined events");
            int who = client_index(cJSON_GetObjectItemCaseSensitive(e, "user"));
            if (strcmp(frame_type(e), "joined") != 0 || who < 0 || room_of(who) != room_of(i) ||
                known[who]++)
                FAIL_AT(e, "u%03d: expected a joined event for a new member of room%d", i,
                        room_of(i));
            cJSON_Delete(e);
        }
        check_deadline(deadline, "joining");
    }
}

/* Checks one message received by client i and records it. */
static void record_message(int i, cJSON *m)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "text");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(m, "from");
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(m, "room");
    /* Texts are "uNNN:S", S being the sequence number 1..MESSAGES. */
    const char *rest = cJSON_IsString(text) ? text->valuestring : "";
    int sender = parse_client(&rest);
    int seq = rest[0] == ':' && rest[1] >= '1' && rest[1] <= '0' + MESSAGES && !rest[2]
                  ? rest[1] - '0'
                  : -1;
    if (sender < 0 || seq < 0 || !cJSON_IsString(from) || !cJSON_IsString(room))
        FAIL_AT(m, "u%03d: malformed message", i);
    char want_from[16], want_room[16];
    snprintf(want_from, sizeof want_from, "u%03d", sender);
    snprintf(want_room, sizeof want_room, "room%d", room_of(i));
    if (strcmp(from->valuestring, want_from) != 0 || strcmp(room->valuestring, want_room) != 0)
        FAIL_AT(m, "u%03d: message with a wrong from or room", i);
    if (sender == i)
        FAIL_AT(m, "u%03d received its own message", i);
    if (room_of(sender) != room_of(i))
        FAIL_AT(m, "u%03d received a message from another room", i);
    if (seq != last_seq[i][sender] + 1)
        FAIL_AT(m, "u%03d: from %s expected message %d (lost, repeated or reordered)", i,
                want_from, last_seq[i][sender] + 1);
    last_seq[i][sender] = seq;
}

static void run_fanout(const char *workers)
{
    int64_t deadline = h_now_ms() + FANOUT_DEADLINE_MS;
    memset(last_seq, 0, sizeof last_seq);
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat rooms", "rooms.auto_join=",
                                  "chat.rate=0", workers, NULL);
    for (int i = 0; i < CLIENTS; i++)
        clients[i] = h_login(d, h_fmt("u%03d", i));
    check_deadline(deadline, "connecting");
    join_all(deadline);

    /* Round r: every client sends its r-th message, so that the senders of
     * each room interleave at the server. */
    char text[32];
    for (int r = 1; r <= MESSAGES; r++) {
        for (int i = 0; i < CLIENTS; i++) {
            cJSON *msg = request_body("msg", r, room_of(i));
            snprintf(text, sizeof text, "u%03d:%d", i, r);
            if (msg && !cJSON_AddStringToObject(msg, "text", text)) {
                cJSON_Delete(msg);
                msg = NULL;
            }
            send_or_fail(i, msg);
        }
    }

    long delivered = 0;
    const int per_client = MESSAGES * (PER_ROOM - 1);
    for (int i = 0; i < CLIENTS; i++) {
        int replies = 0, messages = 0;
        while (replies < MESSAGES || messages < per_client) {
            cJSON *f = next_frame(i, "messages and replies");
            const char *type = frame_type(f);
            if (strcmp(type, "ok") == 0) {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(f, "id");
                if (!cJSON_IsNumber(id) || id->valuedouble != replies + 1)
                    FAIL_AT(f, "u%03d: expected the ok for msg %d", i, replies + 1);
                replies++;
            } else if (strcmp(type, "message") == 0 && messages < per_client) {
                record_message(i, f);
                messages++;
            } else {
                FAIL_AT(f, "u%03d: unexpected frame after %d replies and %d messages", i,
                        replies, messages);
            }
            cJSON_Delete(f);
        }
        delivered += messages;
        check_deadline(deadline, "receiving");
    }
    if (delivered != DELIVERIES)
        h_fail("%ld deliveries, expected %d", delivered, DELIVERIES);
    for (int i = 0; i < CLIENTS; i++)
        for (int s = 0; s < CLIENTS; s++)
            if (s != i && room_of(s) == room_of(i) && last_seq[i][s] != MESSAGES)
                h_fail("u%03d got %d of u%03d's %d messages", i, last_seq[i][s], s, MESSAGES);

    /* Nothing else is on its way to anyone. */
    h_expect_silence(clients[0], H_QUIET_MS);
    for (int i = 1; i < CLIENTS; i++)
        h_expect_silence(clients[i], 1);
    if (strcmp(workers, "server.workers=3") == 0 && strcmp(h_engine, "async") == 0 &&
        !h_daemon_log_contains(d, "serving with 3 event loops"))
        h_fail("the async engine did not log its 3 event loops");
    for (int i = 0; i < CLIENTS; i++)
        h_client_close(clients[i]);
    h_daemon_stop(d);
}

static void test_fanout(void **state)
{
    (void)state;
    run_fanout("server.workers=1");
}

static void test_fanout_three_loops(void **state)
{
    (void)state;
    run_fanout("server.workers=3");
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_fanout");
    const struct CMUnitTest tests[] = {
        H_TEST(test_fanout),
        H_TEST(test_fanout_three_loops),
    };
    char group[64];
    snprintf(group, sizeof group, "fanout/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
