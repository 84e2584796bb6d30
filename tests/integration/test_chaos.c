/* Through the chaos proxy (tools/sa-chaos), on the engine named by argv[1]
 * and with both client modes (the blocking library API and the libev one):
 * tiny segments with jitter and delay, a black hole caught by the server's
 * heartbeat, a reset mid-frame; sa-client itself through the proxy; and the
 * proxy's own promises (same seed, same faults; rate; clean exit). */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "chaos_proxy.h"
#include "codec.h"
#include "harness.h"
#include "sa_sha256.h"

#ifndef SA_TEST_SA_CHAOS
#error "SA_TEST_SA_CHAOS (path of sa-chaos) must be defined by the build"
#endif
#ifndef SA_TEST_SA_CLIENT
#error "SA_TEST_SA_CLIENT (path of sa-client) must be defined by the build"
#endif
/* Sanitizer builds run every program several times slower. */
#ifndef SA_TEST_TIME_SCALE
#define SA_TEST_TIME_SCALE 1
#endif

/* The tests' base configuration loads chat only. */
#define WITH_ROOMS "server.plugins=chat rooms", "rooms.auto_join=lobby"

/* Long enough for a few hundred frames sent one byte at a time. */
#define BULK_MS (30000 * SA_TEST_TIME_SCALE)
#define EXIT_MS (10000 * SA_TEST_TIME_SCALE)

/* ---- clients in either mode ------------------------------------------------
 * One small interface over the blocking API and the libev API, so that
 * every scenario runs unchanged with both. The libev clients share one
 * loop, which runs only while a test waits for something. */

typedef enum { BLOCKING, EVENT_LOOP } client_mode;

typedef struct queued_frame {
    struct queued_frame *next;
    cJSON *frame;
} queued_frame;

typedef struct tclient {
    struct tclient *next;
    const char *name;
    sa_client *blocking;
    sa_client_async *async;
    queued_frame *head, *tail; /* received, not yet taken by the test */
    int ended;                 /* libev: the connection is over */
    char *end_reason;          /* libev: on_close's reason */
} tclient;

static tclient *clients;       /* the current test's, freed by chaos_teardown */
static struct ev_loop *loop;   /* the libev clients', made on first use */

static const char *mode_name(client_mode mode)
{
    return mode == BLOCKING ? "blocking" : "event-loop";
}

static int enqueue(tclient *c, cJSON *frame)
{
    queued_frame *q = malloc(sizeof *q);
    if (!q)
        return -1;
    q->next = NULL;
    q->frame = frame;
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    return 0;
}

static cJSON *dequeue(tclient *c)
{
    queued_frame *q = c->head;
    if (!q)
        return NULL;
    c->head = q->next;
    if (!c->head)
        c->tail = NULL;
    cJSON *frame = q->frame;
    free(q);
    return frame;
}

static void end_async(tclient *c, const char *reason)
{
    if (c->ended)
        return;
    c->ended = 1;
    c->end_reason = strdup(reason);
}

static void on_async_frame(sa_client_async *ac, const cJSON *frame, void *arg)
{
    (void)ac;
    tclient *c = arg;
    cJSON *copy = cJSON_Duplicate(frame, 1);
    if (!copy || enqueue(c, copy) != 0) {
        cJSON_Delete(copy);
        end_async(c, "test: out of memory");
    }
}

static void on_async_close(sa_client_async *ac, const char *reason, void *arg)
{
    (void)ac;
    end_async(arg, reason);
}

static const sa_client_async_callbacks async_callbacks = {on_async_frame, on_async_close};

static void on_wake(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

/* Runs the libev clients' loop until something happens, at most `ms`. */
static void run_loop(int ms)
{
    ev_timer wake;
    ev_timer_init(&wake, on_wake, ms / 1000.0, 0.0);
    ev_timer_start(loop, &wake);
    ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &wake);
}

static void free_client(tclient *c)
{
    if (c->blocking)
        sa_client_close(c->blocking);
    if (c->async)
        sa_client_async_close(c->async);
    cJSON *frame;
    while ((frame = dequeue(c)) != NULL)
        cJSON_Delete(frame);
    free(c->end_reason);
    free(c);
}

static tclient *tc_connect(client_mode mode, const char *port, const char *name)
{
    tclient *c = calloc(1, sizeof *c);
    if (!c)
        h_fail("out of memory");
    c->name = name;
    c->next = clients;
    clients = c;
    char err[256] = "";
    if (mode == BLOCKING) {
        c->blocking = sa_client_connect("127.0.0.1", port, H_REPLY_MS, err, sizeof err);
    } else {
        if (!loop && !(loop = ev_loop_new(EVFLAG_AUTO)))
            h_fail("cannot make a libev loop");
        c->async = sa_client_async_connect(loop, "127.0.0.1", port, H_REPLY_MS, &async_callbacks,
                                           c, err, sizeof err);
    }
    if (!c->blocking && !c->async)
        h_fail("%s (%s): cannot connect to 127.0.0.1:%s: %s", name, mode_name(mode), port, err);
    return c;
}

/* Closes the client now (it is otherwise closed at teardown). */
static void tc_close(tclient *c)
{
    for (tclient **at = &clients; *at; at = &(*at)->next) {
        if (*at == c) {
            *at = c->next;
            free_client(c);
            return;
        }
    }
}

static const char *tc_error(const tclient *c)
{
    if (c->blocking)
        return sa_client_error(c->blocking);
    return c->end_reason ? c->end_reason : "";
}

/* The next frame (owned by the harness) as *out, or the status why none
 * came within timeout_ms. */
static int tc_recv(tclient *c, cJSON **out, int timeout_ms)
{
    *out = h_keep(dequeue(c));
    if (*out)
        return SA_CLIENT_OK;
    if (c->blocking) {
        int rc = sa_client_recv(c->blocking, out, timeout_ms);
        if (rc == SA_CLIENT_OK)
            h_keep(*out);
        return rc;
    }
    int64_t deadline = h_now_ms() + timeout_ms;
    while (!c->head) {
        if (c->ended)
            return SA_CLIENT_CLOSED;
        int64_t left = deadline - h_now_ms();
        if (left <= 0)
            return SA_CLIENT_TIMEOUT;
        run_loop((int)left);
    }
    *out = h_keep(dequeue(c));
    return SA_CLIENT_OK;
}

/* Lets the client work (answer pings) for about `ms`, keeping what it
 * receives for later tc_recv calls. */
static void tc_pump(tclient *c, int ms)
{
    if (c->async) {
        run_loop(ms);
        return;
    }
    cJSON *frame = NULL;
    if (sa_client_recv(c->blocking, &frame, ms) == SA_CLIENT_OK && enqueue(c, frame) != 0) {
        cJSON_Delete(frame);
        h_fail("out of memory");
    }
}

static const char *type_of(const cJSON *frame)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(frame, "type");
    return cJSON_IsString(type) ? type->valuestring : "";
}

static cJSON *parse_json(const char *json)
{
    cJSON *msg = cJSON_Parse(json);
    if (!msg)
        h_fail("test bug: not JSON: %s", json);
    return h_keep(msg);
}

static void tc_send(tclient *c, const char *json)
{
    cJSON *msg = parse_json(json);
    int rc = c->blocking ? sa_client_send(c->blocking, msg) : sa_client_async_send(c->async, msg);
    if (rc != 0)
        h_fail("%s: sending %s failed: %s", c->name, json, tc_error(c));
}

/* Sends json with a fresh id and returns the id without waiting. */
static int64_t tc_send_request(tclient *c, const char *json)
{
    cJSON *msg = parse_json(json);
    int64_t id = c->blocking ? sa_client_send_request(c->blocking, msg)
                             : sa_client_async_request(c->async, msg);
    if (id < 0)
        h_fail("%s: sending %s failed: %s", c->name, json, tc_error(c));
    return id;
}

static int is_reply_to(const cJSON *frame, int64_t id)
{
    const char *type = type_of(frame);
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(frame, "id");
    return (strcmp(type, "ok") == 0 || strcmp(type, "error") == 0) && cJSON_IsNumber(got) &&
           got->valuedouble == (double)id;
}

/* Sends json as a request and returns the reply; frames that come first
 * stay queued for tc_recv (in blocking mode too: the reply is looked for
 * with sa_client_recv, so frames already kept by tc_pump stay in order). */
static cJSON *tc_request(tclient *c, const char *json)
{
    int64_t id = tc_send_request(c, json);
    int64_t deadline = h_now_ms() + H_REPLY_MS;
    for (;;) {
        queued_frame *prev = NULL;
        for (queued_frame *q = c->head; q; prev = q, q = q->next) {
            if (!is_reply_to(q->frame, id))
                continue;
            if (prev)
                prev->next = q->next;
            else
                c->head = q->next;
            if (c->tail == q)
                c->tail = prev;
            cJSON *reply = q->frame;
            free(q);
            return h_keep(reply);
        }
        int64_t left = deadline - h_now_ms();
        if (left <= 0)
            h_fail("%s: no reply to %s within %d ms", c->name, json, H_REPLY_MS);
        if (c->async) {
            if (c->ended)
                h_fail("%s: the connection ended before the reply to %s: %s", c->name, json,
                       tc_error(c));
            run_loop((int)left);
            continue;
        }
        cJSON *frame = NULL;
        int rc = sa_client_recv(c->blocking, &frame, (int)left);
        if (rc != SA_CLIENT_OK)
            h_fail("%s: no reply to %s (status %d: %s)", c->name, json, rc, tc_error(c));
        if (enqueue(c, frame) != 0) {
            cJSON_Delete(frame);
            h_fail("out of memory");
        }
    }
}

static cJSON *tc_request_ok(tclient *c, const char *json)
{
    cJSON *reply = tc_request(c, json);
    if (strcmp(type_of(reply), "ok") != 0)
        h_fail("%s: request %s: expected ok, got %s", c->name, json, h_json(reply));
    return reply;
}

/* The next frame of `type` (with key == value when key is not NULL);
 * frames before it are passed over. */
static cJSON *tc_wait_for(tclient *c, const char *type, const char *key, const char *value,
                          int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        cJSON *frame = NULL;
        int rc = tc_recv(c, &frame, left > 0 ? (int)left : 0);
        if (rc != SA_CLIENT_OK)
            h_fail("%s: no \"%s\" frame%s%s%s%s within %d ms (status %d: %s)", c->name, type,
                   key ? " with " : "", key ? key : "", key ? "=" : "", key ? value : "",
                   timeout_ms, rc, tc_error(c));
        if (strcmp(type_of(frame), type) != 0)
            continue;
        const cJSON *got = key ? cJSON_GetObjectItemCaseSensitive(frame, key) : NULL;
        if (!key || (cJSON_IsString(got) && strcmp(got->valuestring, value) == 0))
            return frame;
    }
}

/* The connection must end within timeout_ms (frames before the end are
 * passed over), for a reason whose text contains `why` (NULL: any). */
static void tc_expect_end(tclient *c, const char *why, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        cJSON *frame = NULL;
        int rc = tc_recv(c, &frame, left > 0 ? (int)left : 0);
        if (rc == SA_CLIENT_OK)
            continue;
        if (rc == SA_CLIENT_TIMEOUT)
            h_fail("%s: the connection did not end within %d ms", c->name, timeout_ms);
        if (why && !strstr(tc_error(c), why))
            h_fail("%s: the connection ended with \"%s\", expected \"%s\"", c->name, tc_error(c),
                   why);
        return;
    }
}

static const char *hello_json(const char *name)
{
    return h_fmt("{\"type\":\"hello\",\"name\":\"%s\",\"proto\":1}", name);
}

/* Bytes of the frame the library sends for hello_json(name) without an
 * id: where a fault "after the hello" starts. */
static size_t hello_frame_bytes(const char *name)
{
    sa_frame *frame = sa_frame_from_json(parse_json(hello_json(name)));
    if (!frame)
        h_fail("out of memory");
    size_t len = frame->len;
    sa_frame_unref(frame);
    return len;
}

static tclient *tc_login(client_mode mode, const char *port, const char *name)
{
    tclient *c = tc_connect(mode, port, name);
    tc_request_ok(c, hello_json(name));
    return c;
}

/* Blocking client talking to the daemon directly: the next frame of
 * `type` with key == value, passing over others. */
static cJSON *wait_direct(sa_client *c, const char *type, const char *key, const char *value,
                          int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        cJSON *frame = h_recv(c, left > 0 ? (int)left : 0);
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(frame, key);
        if (strcmp(type_of(frame), type) == 0 && cJSON_IsString(got) &&
            strcmp(got->valuestring, value) == 0)
            return frame;
    }
}

/* ---- chat through the proxy ------------------------------------------------ */

#define BULK_MESSAGES 300

/* Alice and bob each behind a proxy cutting every direction into 1-byte
 * segments with jitter: 300 messages reach bob exactly once and in order,
 * and alice's 300 replies come in request order. */
static void messages_in_order(client_mode mode)
{
    h_daemon *d = h_daemon_startv(NULL, WITH_ROOMS, "chat.rate=0", NULL);
    static const char *const faults[] = {"--segment", "1", "--jitter", "3", NULL};
    proxy *to_alice = proxy_start(h_daemon_port(d), "11", faults);
    proxy *to_bob = proxy_start(h_daemon_port(d), "12", faults);
    tclient *bob = tc_login(mode, to_bob->port, "bob");
    tclient *alice = tc_login(mode, to_alice->port, "alice");

    int64_t ids[BULK_MESSAGES];
    for (int i = 0; i < BULK_MESSAGES; i++)
        ids[i] = tc_send_request(
            alice, h_fmt("{\"type\":\"msg\",\"room\":\"lobby\",\"text\":\"m-%03d\"}", i));

    int64_t deadline = h_now_ms() + BULK_MS;
    for (int got = 0; got < BULK_MESSAGES;) {
        int64_t left = deadline - h_now_ms();
        cJSON *frame = NULL;
        int rc = tc_recv(bob, &frame, left > 0 ? (int)left : 0);
        if (rc != SA_CLIENT_OK)
            h_fail("bob (%s) received %d of %d messages, then status %d (%s)", mode_name(mode),
                   got, BULK_MESSAGES, rc, tc_error(bob));
        if (strcmp(type_of(frame), "message") != 0)
            continue;
        const char *want = h_fmt("m-%03d", got);
        h_assert_str(frame, "from", "alice");
        if (strcmp(h_get_str(frame, "text"), want) != 0)
            h_fail("bob (%s): message %d should be %s, got %s", mode_name(mode), got, want,
                   h_json(frame));
        got++;
    }
    /* Nothing twice. */
    int64_t quiet_until = h_now_ms() + H_QUIET_MS;
    for (int64_t left; (left = quiet_until - h_now_ms()) > 0;) {
        cJSON *frame = NULL;
        if (tc_recv(bob, &frame, (int)left) == SA_CLIENT_OK &&
            strcmp(type_of(frame), "message") == 0)
            h_fail("bob (%s): a message after the last one: %s", mode_name(mode), h_json(frame));
    }
    for (int got = 0; got < BULK_MESSAGES;) {
        int64_t left = deadline - h_now_ms();
        cJSON *frame = NULL;
        int rc = tc_recv(alice, &frame, left > 0 ? (int)left : 0);
        if (rc != SA_CLIENT_OK)
            h_fail("alice (%s) received %d of %d replies, then status %d (%s)", mode_name(mode),
                   got, BULK_MESSAGES, rc, tc_error(alice));
        const char *type = type_of(frame);
        if (strcmp(type, "ok") != 0 && strcmp(type, "error") != 0)
            continue;
        if (!is_reply_to(frame, ids[got]) || strcmp(type, "ok") != 0)
            h_fail("alice (%s): reply %d should be ok with id %lld, got %s", mode_name(mode), got,
                   (long long)ids[got], h_json(frame));
        h_assert_str(frame, "re", "msg");
        got++;
    }
    proxy_stop(to_alice);
    proxy_stop(to_bob);
}

static void test_one_byte_segments_in_order_blocking(void **state)
{
    (void)state;
    messages_in_order(BLOCKING);
}

static void test_one_byte_segments_in_order_event_loop(void **state)
{
    (void)state;
    messages_in_order(EVENT_LOOP);
}

/* Delay, jitter and 1-byte segments both ways, for everyone: hello, join,
 * joined, msg, dm and ping all work; then the proxy stops with both
 * connected: it exits 0 and both see their connection end. */
static void full_exchange(client_mode mode)
{
    h_daemon *d = h_daemon_startv(NULL, WITH_ROOMS, NULL);
    static const char *const faults[] = {"--delay", "20", "--jitter", "10", "--segment", "1",
                                         NULL};
    proxy *p = proxy_start(h_daemon_port(d), "21", faults);

    int64_t start = h_now_ms();
    tclient *alice = tc_login(mode, p->port, "alice");
    int64_t hello_ms = h_now_ms() - start;
    if (hello_ms < 40)
        h_fail("hello took %lld ms through 20 ms of delay each way", (long long)hello_ms);
    tclient *bob = tc_login(mode, p->port, "bob");

    cJSON *joined = tc_request_ok(alice, "{\"type\":\"join\",\"room\":\"chaos\"}");
    h_assert_str(joined, "room", "chaos");
    joined = tc_request_ok(bob, "{\"type\":\"join\",\"room\":\"chaos\"}");
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(joined, "members");
    if (cJSON_GetArraySize(members) != 2)
        h_fail("bob joined chaos with members %s, expected alice and bob", h_json(joined));
    cJSON *event = tc_wait_for(alice, "joined", "room", "chaos", H_REPLY_MS);
    h_assert_str(event, "user", "bob");

    tc_request_ok(alice, "{\"type\":\"msg\",\"room\":\"chaos\",\"text\":\"through the storm\"}");
    event = tc_wait_for(bob, "message", "room", "chaos", H_REPLY_MS);
    h_assert_str(event, "from", "alice");
    h_assert_str(event, "text", "through the storm");

    tc_request_ok(bob, "{\"type\":\"dm\",\"to\":\"alice\",\"text\":\"psst \\u00e9\\u4e2d\"}");
    event = tc_wait_for(alice, "message", "from", "bob", H_REPLY_MS);
    h_assert_str(event, "text", "psst \xc3\xa9\xe4\xb8\xad");

    tc_send(alice, "{\"type\":\"ping\",\"ts\":777,\"id\":\"p1\"}");
    event = tc_wait_for(alice, "pong", "id", "p1", H_REPLY_MS);
    if (h_get_num(event, "ts") != 777)
        h_fail("pong %s should echo ts 777", h_json(event));

    proxy_stop(p);
    tc_expect_end(alice, NULL, H_REPLY_MS);
    tc_expect_end(bob, NULL, H_REPLY_MS);
}

static void test_delay_jitter_segments_exchange_blocking(void **state)
{
    (void)state;
    full_exchange(BLOCKING);
}

static void test_delay_jitter_segments_exchange_event_loop(void **state)
{
    (void)state;
    full_exchange(EVENT_LOOP);
}

/* Alice's bytes vanish right after her hello, while the connection stays
 * open and she keeps answering pings (the pongs vanish too): the server's
 * heartbeat drops her within heartbeat_timeout (3 s), bob sees her leave,
 * and she gets bye idle_timeout, since the other direction still works. */
static void black_hole(client_mode mode)
{
    h_daemon *d = h_daemon_startv(NULL, WITH_ROOMS, "server.heartbeat_interval=1",
                                  "server.heartbeat_timeout=3", NULL);
    sa_client *bob = h_login(d, "bob");
    size_t hello_bytes = hello_frame_bytes("alice");
    const char *const faults[] = {"--up-blackhole-after", h_fmt("%zu", hello_bytes), NULL};
    proxy *p = proxy_start(h_daemon_port(d), "31", faults);

    tclient *alice = tc_connect(mode, p->port, "alice");
    tc_send(alice, hello_json("alice"));
    tc_wait_for(alice, "ok", "re", "hello", H_REPLY_MS);
    int64_t start = h_now_ms();
    wait_direct(bob, "joined", "user", "alice", H_REPLY_MS);
    proxy_wait_log(p, h_fmt("black hole after %zu bytes", hello_bytes), H_REPLY_MS);

    int64_t limit = 3000 + 3000 * SA_TEST_TIME_SCALE;
    cJSON *left = NULL;
    while (!left) {
        if (h_now_ms() - start > limit)
            h_fail("alice (%s) behind a black hole was not dropped within %lld ms",
                   mode_name(mode), (long long)limit);
        tc_pump(alice, 20); /* she answers pings meanwhile */
        cJSON *frame = NULL;
        if (sa_client_recv(bob, &frame, 20) == SA_CLIENT_OK) {
            h_keep(frame);
            const cJSON *user = cJSON_GetObjectItemCaseSensitive(frame, "user");
            if (strcmp(type_of(frame), "left") == 0 && cJSON_IsString(user) &&
                strcmp(user->valuestring, "alice") == 0)
                left = frame;
        }
    }
    int64_t dropped_ms = h_now_ms() - start;
    h_assert_str(left, "reason", "quit");
    if (dropped_ms < 2000)
        h_fail("alice was dropped after %lld ms; heartbeat_timeout is 3 s",
               (long long)dropped_ms);

    cJSON *bye = tc_wait_for(alice, "bye", NULL, NULL, H_REPLY_MS);
    h_assert_str(bye, "reason", "idle_timeout");
    tc_expect_end(alice, NULL, H_REPLY_MS);
    h_request_error(bob, "{\"type\":\"dm\",\"to\":\"alice\",\"text\":\"still there?\"}",
                    "no_such_user");
    /* Her pongs went into the hole: the proxy swallowed bytes. It closes
     * the pair once she has closed too (the hole swallows her end). */
    tc_close(alice);
    const char *summary = proxy_wait_log(p, "conn 0 closed", H_REPLY_MS);
    if (strstr(summary, h_fmt("up %zu bytes", hello_bytes)) == NULL ||
        strstr(summary, ", 0 swallowed), down"))
        h_fail("expected %zu bytes up and pongs swallowed after them: %s", hello_bytes, summary);
    proxy_stop(p);
}

static void test_black_hole_blocking(void **state)
{
    (void)state;
    black_hole(BLOCKING);
}

static void test_black_hole_event_loop(void **state)
{
    (void)state;
    black_hole(EVENT_LOOP);
}

/* The proxy resets both connections 10 bytes into the frame after alice's
 * hello: alice sees a reset, the server ends her session (bob sees her
 * leave, without her message), and the name is free again. */
static void reset_mid_frame(client_mode mode)
{
    h_daemon *d = h_daemon_startv(NULL, WITH_ROOMS, NULL);
    sa_client *bob = h_login(d, "bob");
    size_t reset_at = hello_frame_bytes("alice") + 10;
    const char *const faults[] = {"--up-reset-after", h_fmt("%zu", reset_at), NULL};
    proxy *p = proxy_start(h_daemon_port(d), "41", faults);

    tclient *alice = tc_connect(mode, p->port, "alice");
    tc_send(alice, hello_json("alice"));
    tc_wait_for(alice, "ok", "re", "hello", H_REPLY_MS);
    wait_direct(bob, "joined", "user", "alice", H_REPLY_MS);

    tc_send(alice, "{\"type\":\"msg\",\"room\":\"lobby\",\"text\":\"cut after ten bytes\"}");
    tc_expect_end(alice, "reset", H_REPLY_MS);
    proxy_wait_log(p, h_fmt("up: reset after %zu bytes", reset_at), H_REPLY_MS);

    for (;;) {
        cJSON *frame = h_recv(bob, H_REPLY_MS);
        if (strcmp(type_of(frame), "message") == 0)
            h_fail("half a frame was delivered: %s", h_json(frame));
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(frame, "user");
        if (strcmp(type_of(frame), "left") == 0 && cJSON_IsString(user) &&
            strcmp(user->valuestring, "alice") == 0) {
            h_assert_str(frame, "reason", "quit");
            break;
        }
    }
    h_login(d, "alice");
    proxy_stop(p);
}

static void test_reset_mid_frame_blocking(void **state)
{
    (void)state;
    reset_mid_frame(BLOCKING);
}

static void test_reset_mid_frame_event_loop(void **state)
{
    (void)state;
    reset_mid_frame(EVENT_LOOP);
}

/* ---- sa-client through the proxy ----------------------------------------- */

#define CLI_LINES 40

static h_proc *start_sa_client(const char *port, const char *mode, const char *name)
{
    const char *const argv[] = {SA_TEST_SA_CLIENT, "--host", "127.0.0.1", "--port", port,
                                "--name", name, "--mode", mode, NULL};
    return h_spawn(argv);
}

/* Waits until `name` is a connected user, then until its sa-client shows a
 * dm from the probe: from then on it is reading the server. */
static void wait_ready(sa_client *probe, h_proc *p, const char *name)
{
    const char *req = h_fmt("{\"type\":\"dm\",\"to\":\"%s\",\"text\":\"ready-%s\"}", name, name);
    int64_t deadline = h_now_ms() + EXIT_MS;
    for (;;) {
        cJSON *reply = h_request(probe, req);
        if (strcmp(h_get_str(reply, "type"), "ok") == 0)
            break;
        h_assert_str(reply, "code", "no_such_user");
        if (h_now_ms() > deadline)
            h_fail("sa-client %s did not log in in time; stdout:\n%s\nstderr:\n%s", name,
                   h_proc_stdout(p), h_proc_stderr(p));
        h_sleep_ms(50);
    }
    h_proc_expect_line(p, h_fmt("[dm] <probe> ready-%s", name), H_REPLY_MS);
}

static void sa_client_lines_in_order(const char *mode)
{
    h_daemon *d = h_daemon_startv(NULL, WITH_ROOMS, "chat.rate=0", NULL);
    sa_client *probe = h_login(d, "probe");
    static const char *const faults[] = {"--segment", "1", "--jitter", "2", NULL};
    proxy *p = proxy_start(h_daemon_port(d), "51", faults);

    h_proc *bob = start_sa_client(p->port, mode, "bob");
    wait_ready(probe, bob, "bob");
    h_proc *alice = start_sa_client(p->port, mode, "alice");
    wait_ready(probe, alice, "alice");

    for (int i = 0; i < CLI_LINES; i++)
        h_proc_write_line(alice, h_fmt("line-%02d", i));
    h_proc_expect_line(bob, h_fmt("<alice> line-%02d", CLI_LINES - 1), BULK_MS);

    /* Every line of bob's output from alice, in order, each once. */
    const char *out = h_proc_stdout(bob);
    int seen = 0;
    for (const char *line = out; *line;) {
        size_t len = strcspn(line, "\n");
        const char *at = memmem(line, len, "<alice> ", 8);
        if (at) {
            const char *want = h_fmt("[lobby] <alice> line-%02d", seen);
            if (seen >= CLI_LINES || len != strlen(want) || strncmp(line, want, len) != 0)
                h_fail("sa-client --mode %s: line %d from alice should be \"%s\"; bob's "
                       "output:\n%s",
                       mode, seen, want, out);
            seen++;
        }
        line += len + (line[len] == '\n');
    }
    if (seen != CLI_LINES)
        h_fail("sa-client --mode %s: bob showed %d of alice's %d lines:\n%s", mode, seen,
               CLI_LINES, out);

    h_proc_close_stdin(alice);
    int status = h_proc_wait(alice, EXIT_MS);
    if (status != 0)
        h_fail("alice's sa-client exited with %d at end of stdin; stderr:\n%s", status,
               h_proc_stderr(alice));
    h_proc_write_line(bob, "/quit");
    status = h_proc_wait(bob, EXIT_MS);
    if (status != 0)
        h_fail("bob's sa-client exited with %d after /quit; stderr:\n%s", status,
               h_proc_stderr(bob));
    proxy_stop(p);
}

static void test_sa_client_one_byte_segments_mode_sync(void **state)
{
    (void)state;
    sa_client_lines_in_order("sync");
}

static void test_sa_client_one_byte_segments_mode_async(void **state)
{
    (void)state;
    sa_client_lines_in_order("async");
}

/* ---- the proxy on its own, in front of a socket of the test's ------------- */

static int local_listen(char port[16])
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        h_fail("cannot listen on loopback: %s", strerror(err));
    }
    snprintf(port, 16, "%u", (unsigned)ntohs(addr.sin_port));
    return fd;
}

static int local_connect(const char *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        h_fail("cannot connect to 127.0.0.1:%s: %s", port, strerror(err));
    }
    return fd;
}

/* Sockets of the raw tests, closed by chaos_teardown when a test fails
 * before closing them itself. */
static int raw_fds[8];
static size_t raw_fd_count;

static int keep_fd(int fd)
{
    if (raw_fd_count == sizeof raw_fds / sizeof *raw_fds) {
        close(fd);
        h_fail("test bug: too many raw sockets");
    }
    raw_fds[raw_fd_count++] = fd;
    return fd;
}

static int local_accept(int listen_fd)
{
    struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
    if (poll(&pfd, 1, H_REPLY_MS) != 1)
        h_fail("the proxy did not connect upstream within %d ms", H_REPLY_MS);
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        h_fail("accept: %s", strerror(errno));
    return keep_fd(fd);
}

static void send_all(int fd, const unsigned char *bytes, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = send(fd, bytes + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            h_fail("send: %s", strerror(errno));
        done += (size_t)n;
    }
}

enum read_end { READ_FULL, READ_EOF, READ_RESET, READ_TIMEOUT };

/* Reads into buf (at most cap bytes) until EOF, a reset, `cap` bytes or
 * timeout_ms; *got is how many arrived. */
static enum read_end read_until(int fd, unsigned char *buf, size_t cap, size_t *got,
                                int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    *got = 0;
    while (*got < cap) {
        int64_t left = deadline - h_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
            return READ_TIMEOUT;
        ssize_t n = recv(fd, buf + *got, cap - *got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ECONNRESET)
            return READ_RESET;
        if (n < 0)
            h_fail("recv: %s", strerror(errno));
        if (n == 0)
            return READ_EOF;
        *got += (size_t)n;
    }
    return READ_FULL;
}

static void close_kept(int fd)
{
    for (size_t i = 0; i < raw_fd_count; i++) {
        if (raw_fds[i] == fd) {
            raw_fds[i] = raw_fds[--raw_fd_count];
            close(fd);
            return;
        }
    }
}

#define PATTERN_BYTES 3000

static void fill_pattern(unsigned char *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++)
        bytes[i] = (unsigned char)(i * 7 + i / 251);
}

/* Sends the pattern through connection `index` of the proxy, checks that
 * it arrives whole, closes both ends and returns the up direction's part
 * of the proxy's summary: "N segments (plan HASH". */
static const char *pattern_through(proxy *p, int upstream, int index)
{
    unsigned char sent[PATTERN_BYTES], got[PATTERN_BYTES + 1];
    fill_pattern(sent, sizeof sent);
    int client = keep_fd(local_connect(p->port));
    send_all(client, sent, sizeof sent);
    if (shutdown(client, SHUT_WR) != 0)
        h_fail("shutdown: %s", strerror(errno));
    int server = local_accept(upstream);
    size_t n = 0;
    if (read_until(server, got, sizeof got, &n, H_REPLY_MS) != READ_EOF || n != sizeof sent ||
        memcmp(got, sent, sizeof sent) != 0)
        h_fail("connection %d: %zu bytes arrived through the proxy, expected the %zu sent "
               "and then the end of the stream",
               index, n, sizeof sent);
    close_kept(server);
    if (read_until(client, got, sizeof got, &n, H_REPLY_MS) != READ_EOF || n != 0)
        h_fail("connection %d: the server's end did not reach the client", index);
    close_kept(client);

    const char *line = proxy_wait_log(p, h_fmt("conn %d closed", index), H_REPLY_MS);
    const char *up = strstr(line, h_fmt("up %d bytes in ", PATTERN_BYTES));
    const char *plan_end = up ? strchr(up, ',') : NULL;
    if (!plan_end)
        h_fail("no summary of the up direction in: %s", line);
    up += strlen(h_fmt("up %d bytes in ", PATTERN_BYTES));
    unsigned long segments = strtoul(up, NULL, 10);
    /* Segments of 1 to 5 bytes: at least PATTERN_BYTES / 5 of them. */
    if (segments < PATTERN_BYTES / 5)
        h_fail("only %lu segments for %d bytes with --up-segment 5: %s", segments,
               PATTERN_BYTES, line);
    return h_fmt("%.*s", (int)(plan_end - up), up);
}

/* The same seed and the same bytes make the same segments; connection K
 * of seed S is planned like connection 0 of seed S+K. */
static void test_same_seed_same_plan(void **state)
{
    (void)state;
    char port[16];
    int upstream = keep_fd(local_listen(port));
    static const char *const faults[] = {"--up-segment", "5", "--up-jitter", "1", NULL};
    proxy *first = proxy_start(port, "41", faults);
    proxy *again = proxy_start(port, "41", faults);
    proxy *next_seed = proxy_start(port, "42", faults);

    const char *first_0 = pattern_through(first, upstream, 0);
    const char *first_1 = pattern_through(first, upstream, 1);
    const char *again_0 = pattern_through(again, upstream, 0);
    const char *next_seed_0 = pattern_through(next_seed, upstream, 0);
    if (strcmp(first_0, again_0) != 0)
        h_fail("seed 41 twice, two plans: \"%s\" and \"%s\"", first_0, again_0);
    if (strcmp(first_1, next_seed_0) != 0)
        h_fail("connection 1 of seed 41 (\"%s\") should be planned like connection 0 of "
               "seed 42 (\"%s\")",
               first_1, next_seed_0);
    if (strcmp(first_0, first_1) == 0)
        h_fail("connections 0 and 1 of seed 41 got the same plan \"%s\"", first_0);
    proxy_stop(first);
    proxy_stop(again);
    proxy_stop(next_seed);
}

/* --rate, --blackhole-after (both sockets stay open, the other direction
 * still works) and --reset-prob, byte-exact against a socket of the test. */
static void test_rate_black_hole_random_reset(void **state)
{
    (void)state;
    char port[16];
    int upstream = keep_fd(local_listen(port));

    enum { RATE = 100000, RATE_BYTES = 60000 };
    static unsigned char bytes[RATE_BYTES], got[RATE_BYTES];
    fill_pattern(bytes, sizeof bytes);
    proxy *slow = proxy_start(port, "61", (const char *const[]){"--up-rate", "100000", NULL});
    int client = keep_fd(local_connect(slow->port));
    int server = local_accept(upstream);
    int64_t start = h_now_ms();
    send_all(client, bytes, sizeof bytes);
    size_t n = 0;
    read_until(server, got, sizeof got, &n, BULK_MS);
    int64_t took = h_now_ms() - start;
    if (n != sizeof bytes || memcmp(got, bytes, n) != 0)
        h_fail("--up-rate: %zu of %zu bytes arrived intact", n, sizeof bytes);
    /* 60 kB at 100 kB/s: 0.6 s, less the first slice that goes at once. */
    if (took < 450)
        h_fail("%d bytes at %d bytes/s took only %lld ms", RATE_BYTES, RATE, (long long)took);
    close_kept(client);
    close_kept(server);
    proxy_stop(slow);

    proxy *hole = proxy_start(port, "62",
                              (const char *const[]){"--up-blackhole-after", "100", NULL});
    client = keep_fd(local_connect(hole->port));
    server = local_accept(upstream);
    send_all(client, bytes, 1000);
    if (shutdown(client, SHUT_WR) != 0)
        h_fail("shutdown: %s", strerror(errno));
    /* 100 bytes, then nothing, not even the end of the stream. */
    if (read_until(server, got, 1000, &n, H_QUIET_MS + 200) != READ_TIMEOUT || n != 100 ||
        memcmp(got, bytes, 100) != 0)
        h_fail("--up-blackhole-after 100: %zu bytes arrived, or the stream ended", n);
    static const char down[] = "the other way still works";
    send_all(server, (const unsigned char *)down, sizeof down - 1);
    if (read_until(client, got, sizeof down - 1, &n, H_REPLY_MS) != READ_FULL ||
        memcmp(got, down, n) != 0)
        h_fail("--up-blackhole-after: only %zu bytes came down", n);
    close_kept(server);
    if (read_until(client, got, 1, &n, H_REPLY_MS) != READ_EOF)
        h_fail("--up-blackhole-after: the server's end did not reach the client");
    close_kept(client);
    proxy_wait_log(hole, "conn 0 closed: up 100 bytes in 1 segments", H_REPLY_MS);
    proxy_wait_log(hole, "900 swallowed", H_REPLY_MS);
    proxy_stop(hole);

    proxy *dice = proxy_start(port, "63", (const char *const[]){"--up-reset-prob", "1", NULL});
    client = keep_fd(local_connect(dice->port));
    server = local_accept(upstream);
    send_all(client, bytes, 10);
    if (read_until(client, got, 1, &n, H_REPLY_MS) != READ_RESET)
        h_fail("--up-reset-prob 1: the client was not reset");
    if (read_until(server, got, 10, &n, H_REPLY_MS) == READ_FULL || n != 0)
        h_fail("--up-reset-prob 1: %zu bytes went through before the reset", n);
    close_kept(client);
    close_kept(server);
    proxy_wait_log(dice, "random reset after 0 bytes", H_REPLY_MS);
    proxy_stop(dice);
}

static void test_options(void **state)
{
    (void)state;
    static const char *const bad[][4] = {
        {"--connect", "127.0.0.1:5050", NULL, NULL},              /* no --listen */
        {"--listen", "127.0.0.1:0", NULL, NULL},                  /* no --connect */
        {"--listen", "127.0.0.1", "--connect", "127.0.0.1:5050"}, /* no port */
        {"--listen", "::1:0", "--connect", "127.0.0.1:5050"},     /* v6 without brackets */
        {"--segment", "0", NULL, NULL},
        {"--up-reset-prob", "1.5", NULL, NULL},
        {"--down-jitter", "-3", NULL, NULL},
        {"--rate", "fast", NULL, NULL},
        {"--seed", "x", NULL, NULL},
        {"--no-such-option", NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *argv[8] = {SA_TEST_SA_CHAOS};
        size_t n = 1;
        if (strcmp(bad[i][0], "--listen") != 0 && strcmp(bad[i][0], "--connect") != 0) {
            argv[n++] = "--listen";
            argv[n++] = "127.0.0.1:0";
            argv[n++] = "--connect";
            argv[n++] = "127.0.0.1:5050";
        }
        for (size_t k = 0; k < 4 && bad[i][k]; k++)
            argv[n++] = bad[i][k];
        argv[n] = NULL;
        const char *out = NULL, *err = NULL;
        int status = h_run(argv, EXIT_MS, &out, &err);
        if (status != 2 || !strstr(err, "sa-chaos"))
            h_fail("sa-chaos %s %s: exit %d, expected 2 and a message; stderr:\n%s", bad[i][0],
                   bad[i][1] ? bad[i][1] : "", status, err);
    }
    const char *out = NULL, *err = NULL;
    int status = h_run((const char *const[]){SA_TEST_SA_CHAOS, "--help", NULL}, EXIT_MS, &out,
                       &err);
    if (status != 0 || !strstr(out, "--blackhole-after") || !strstr(out, "--up-"))
        h_fail("sa-chaos --help: exit %d; stdout:\n%s", status, out);
    status = h_run((const char *const[]){SA_TEST_SA_CHAOS, "--version", NULL}, EXIT_MS, &out,
                   &err);
    if (status != 0 || !strstr(out, "sa-chaos"))
        h_fail("sa-chaos --version: exit %d; stdout:\n%s", status, out);
}

/* ---- sa-client reconnects ------------------------------------------------- */

/* Resets every connection of alice's once this many bytes went up: her
 * hello, joins, status and short lines fit, the long line does not. */
#define RECONNECT_RESET_AFTER 1500

/* Bob, connected directly, must see alice say `text` in `room`. */
static void expect_message(sa_client *bob, const char *room, const char *text)
{
    for (;;) {
        cJSON *frame = wait_direct(bob, "message", "from", "alice", H_REPLY_MS);
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(frame, "text");
        if (cJSON_IsString(got) && strcmp(got->valuestring, text) == 0) {
            h_assert_str(frame, "room", room);
            return;
        }
    }
}

/* alice's sa-client goes through a proxy that resets her connection when
 * a long line passes: she reconnects, is back in both rooms with dev still
 * current and her status set again, and her next line reaches bob. */
static void sa_client_reconnects(const char *mode)
{
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat rooms presence",
                                  "rooms.auto_join=lobby", "chat.rate=0", NULL);
    sa_client *bob = h_login(d, "bob");
    h_request_ok(bob, "{\"type\":\"join\",\"room\":\"dev\"}");
    const char *const faults[] = {"--up-reset-after", h_fmt("%d", RECONNECT_RESET_AFTER), NULL};
    proxy *p = proxy_start(h_daemon_port(d), "61", faults);

    const char *const argv[] = {SA_TEST_SA_CLIENT, "--port", p->port, "--name", "alice",
                                "--mode", mode, "--retries", "5", NULL};
    h_proc *alice = h_spawn(argv);
    h_proc_expect_line(alice, "* you joined lobby", EXIT_MS);
    h_proc_write_line(alice, "/join dev");
    h_proc_expect_line(alice, "* you joined dev", H_REPLY_MS);
    wait_direct(bob, "joined", "room", "dev", H_REPLY_MS);
    h_proc_write_line(alice, "/status away lunch");
    wait_direct(bob, "presence", "status", "away", H_REPLY_MS);
    h_proc_write_line(alice, "before the reset");
    expect_message(bob, "dev", "before the reset");

    char long_line[RECONNECT_RESET_AFTER + 1];
    memset(long_line, 'x', sizeof long_line - 1);
    long_line[sizeof long_line - 1] = '\0';
    h_proc_write_line(alice, long_line);
    h_proc_expect_stderr(alice, "sa-client: connection lost: ", 1, H_REPLY_MS);
    wait_direct(bob, "left", "room", "dev", H_REPLY_MS);
    h_proc_expect_stderr(alice, "sa-client: reconnected; back in ", 1, EXIT_MS);
    if (!strstr(h_proc_stderr(alice), "(current room dev)") ||
        !strstr(h_proc_stderr(alice), "(retry 1 of 5)"))
        h_fail("sa-client --mode %s: unexpected reconnect lines:\n%s", mode,
               h_proc_stderr(alice));

    /* Bob sees her come back, away again, and talk in dev. */
    wait_direct(bob, "joined", "room", "dev", H_REPLY_MS);
    cJSON *presence = wait_direct(bob, "presence", "status", "away", H_REPLY_MS);
    h_assert_str(presence, "user", "alice");
    h_assert_str(presence, "text", "lunch");
    h_proc_write_line(alice, "after the reset");
    expect_message(bob, "dev", "after the reset");

    h_proc_write_line(alice, "/who dev");
    const char *who_dev = h_proc_expect_line(alice, "dev: ", H_REPLY_MS);
    h_proc_write_line(alice, "/who lobby");
    const char *who_lobby = h_proc_expect_line(alice, "lobby: ", H_REPLY_MS);
    if (!strstr(who_dev, "alice") || !strstr(who_lobby, "alice"))
        h_fail("sa-client --mode %s: /who after the reconnect: \"%s\", \"%s\"", mode, who_dev,
               who_lobby);
    cJSON *users = h_request_ok(bob, "{\"type\":\"users\"}");
    const cJSON *user;
    int found = 0;
    cJSON_ArrayForEach(user, cJSON_GetObjectItemCaseSensitive(users, "users"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(user, "name");
        if (cJSON_IsString(name) && strcmp(name->valuestring, "alice") == 0) {
            h_assert_str(user, "status", "away");
            found = 1;
        }
    }
    if (!found)
        h_fail("alice is not among the users: %s", h_json(users));

    h_proc_write_line(alice, "/quit");
    int status = h_proc_wait(alice, EXIT_MS);
    if (status != 0)
        h_fail("alice's sa-client exited with %d after /quit; stderr:\n%s", status,
               h_proc_stderr(alice));
    proxy_stop(p);
}

static void test_sa_client_reconnects_mode_sync(void **state)
{
    (void)state;
    sa_client_reconnects("sync");
}

static void test_sa_client_reconnects_mode_async(void **state)
{
    (void)state;
    sa_client_reconnects("async");
}

/* The way to the server is gone for a while (the proxy stops, then starts
 * again on the same port): lines typed meanwhile are kept and sent, in
 * order, once sa-client is back. */
static void sa_client_queues_while_disconnected(const char *mode)
{
    h_daemon *d = h_daemon_startv(NULL, WITH_ROOMS, "chat.rate=0", NULL);
    sa_client *bob = h_login(d, "bob");
    proxy *p = proxy_start(h_daemon_port(d), "63", NULL);
    const char *port = h_fmt("%s", p->port);
    const char *const argv[] = {SA_TEST_SA_CLIENT, "--port", port, "--name", "alice",
                                "--mode", mode, "--retries", "20", NULL};
    h_proc *alice = h_spawn(argv);
    h_proc_expect_line(alice, "* you joined lobby", EXIT_MS);
    wait_direct(bob, "joined", "user", "alice", H_REPLY_MS);

    proxy_stop(p);
    h_proc_expect_stderr(alice, "sa-client: connection lost: ", 1, H_REPLY_MS);
    h_proc_write_line(alice, "typed while away 1");
    h_proc_write_line(alice, "typed while away 2");
    h_proc_expect_stderr(alice, "sa-client: not connected: what you type is sent after", 1,
                         H_REPLY_MS);
    proxy_start_at(port, h_daemon_port(d), "64", NULL);
    h_proc_expect_stderr(alice, "sa-client: reconnected; back in lobby", 1, EXIT_MS);
    expect_message(bob, "lobby", "typed while away 1");
    cJSON *next = wait_direct(bob, "message", "from", "alice", H_REPLY_MS);
    h_assert_str(next, "text", "typed while away 2");

    h_proc_write_line(alice, "/quit");
    int status = h_proc_wait(alice, EXIT_MS);
    if (status != 0)
        h_fail("alice's sa-client exited with %d after /quit; stderr:\n%s", status,
               h_proc_stderr(alice));
}

static void test_sa_client_queues_while_disconnected_mode_sync(void **state)
{
    (void)state;
    sa_client_queues_while_disconnected("sync");
}

static void test_sa_client_queues_while_disconnected_mode_async(void **state)
{
    (void)state;
    sa_client_queues_while_disconnected("async");
}

/* A /send of 4 MiB through a proxy that resets alice's connection after
 * every 1.4 MB up: after each reconnect the upload goes on from the
 * server's offset, and bob is offered the whole file. */
#define SEND_SIZE (4u << 20)

static void sa_client_send_survives_resets(const char *mode)
{
    const char *spool = h_fmt("%s/spool", h_tempdir());
    if (mkdir(spool, 0700) != 0)
        h_fail("mkdir %s: %s", spool, strerror(errno));
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat rooms file", "rooms.auto_join=lobby",
                                  h_fmt("file.spool_dir=%s", spool), NULL);
    sa_client *bob = h_login(d, "bob");

    unsigned char *data = malloc(SEND_SIZE);
    sa_sha256 *hash = sa_sha256_new();
    char sha[SA_SHA256_HEX_LEN + 1];
    if (!data || !hash)
        h_fail("out of memory");
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < SEND_SIZE; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    const char *path = h_fmt("%s/resets.bin", h_tempdir());
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, SEND_SIZE, f) == SEND_SIZE;
    ok = (f && fclose(f) == 0) && ok;
    ok = ok && sa_sha256_update(hash, data, SEND_SIZE) == 0 && sa_sha256_final_hex(hash, sha) == 0;
    free(data);
    sa_sha256_free(hash);
    if (!ok)
        h_fail("cannot write %s", path);

    const char *const faults[] = {"--up-reset-after", "1400000", NULL};
    proxy *p = proxy_start(h_daemon_port(d), "65", faults);
    const char *const argv[] = {SA_TEST_SA_CLIENT, "--port", p->port, "--name", "alice",
                                "--mode", mode, "--retries", "20", NULL};
    h_proc *alice = h_spawn(argv);
    h_proc_expect_line(alice, "* you joined lobby", EXIT_MS);
    h_proc_write_line(alice, h_fmt("/send %s", path));
    cJSON *offer = wait_direct(bob, "file_offer", "from", "alice", BULK_MS);
    h_assert_str(offer, "name", "resets.bin");
    h_assert_str(offer, "sha256", sha);
    if (h_get_num(offer, "size") != SEND_SIZE)
        h_fail("offered %s", h_json(offer));
    h_proc_expect_line(alice, "* sent resets.bin (4194304 bytes): ", H_REPLY_MS);
    h_proc_expect_stderr(alice, "sa-client: reconnected", 2, H_REPLY_MS);

    h_proc_write_line(alice, "/quit");
    int status = h_proc_wait(alice, EXIT_MS);
    if (status != 0)
        h_fail("alice's sa-client exited with %d after /quit; stderr:\n%s", status,
               h_proc_stderr(alice));
}

static void test_sa_client_send_survives_resets_mode_sync(void **state)
{
    (void)state;
    sa_client_send_survives_resets("sync");
}

static void test_sa_client_send_survives_resets_mode_async(void **state)
{
    (void)state;
    sa_client_send_survives_resets("async");
}

/* With the server gone for good, sa-client tries --retries times, then
 * says so and exits 1. */
static void sa_client_gives_up(const char *mode)
{
    h_daemon *d = h_daemon_startv(NULL, WITH_ROOMS, NULL);
    proxy *p = proxy_start(h_daemon_port(d), "62", NULL);
    const char *const argv[] = {SA_TEST_SA_CLIENT, "--port", p->port, "--name", "alice",
                                "--mode", mode, "--retries", "2", NULL};
    h_proc *alice = h_spawn(argv);
    h_proc_expect_line(alice, "* you joined lobby", EXIT_MS);
    proxy_stop(p);
    h_proc_expect_stderr(alice, "giving up after 2 retries", 1, EXIT_MS);
    h_proc_expect_line(alice, "! connection lost", H_REPLY_MS);
    int status = h_proc_wait(alice, EXIT_MS);
    if (status != 1)
        h_fail("sa-client --mode %s exited with %d after giving up, not 1; stderr:\n%s", mode,
               status, h_proc_stderr(alice));
    h_daemon_stop(d);
}

static void test_sa_client_gives_up_mode_sync(void **state)
{
    (void)state;
    sa_client_gives_up("sync");
}

static void test_sa_client_gives_up_mode_async(void **state)
{
    (void)state;
    sa_client_gives_up("async");
}

/* ---- setup and teardown ------------------------------------------------------ */

/* Closes the clients, then stops the proxies (each must exit 0 after
 * SIGTERM), then lets the harness stop the daemons. */
static int chaos_teardown(void **state)
{
    int failed = 0;
    while (clients) {
        tclient *c = clients;
        clients = c->next;
        free_client(c);
    }
    if (loop) {
        ev_loop_destroy(loop);
        loop = NULL;
    }
    while (raw_fd_count > 0)
        close(raw_fds[--raw_fd_count]);
    if (proxy_stop_all() != 0)
        failed = 1;
    int rc = h_teardown(state);
    return failed ? -1 : rc;
}

#define CHAOS_TEST(fn) cmocka_unit_test_setup_teardown(fn, h_setup, chaos_teardown)

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_chaos");
    const struct CMUnitTest tests[] = {
        CHAOS_TEST(test_options),
        CHAOS_TEST(test_same_seed_same_plan),
        CHAOS_TEST(test_rate_black_hole_random_reset),
        CHAOS_TEST(test_one_byte_segments_in_order_blocking),
        CHAOS_TEST(test_one_byte_segments_in_order_event_loop),
        CHAOS_TEST(test_delay_jitter_segments_exchange_blocking),
        CHAOS_TEST(test_delay_jitter_segments_exchange_event_loop),
        CHAOS_TEST(test_black_hole_blocking),
        CHAOS_TEST(test_black_hole_event_loop),
        CHAOS_TEST(test_reset_mid_frame_blocking),
        CHAOS_TEST(test_reset_mid_frame_event_loop),
        CHAOS_TEST(test_sa_client_one_byte_segments_mode_sync),
        CHAOS_TEST(test_sa_client_one_byte_segments_mode_async),
        CHAOS_TEST(test_sa_client_reconnects_mode_sync),
        CHAOS_TEST(test_sa_client_reconnects_mode_async),
        CHAOS_TEST(test_sa_client_queues_while_disconnected_mode_sync),
        CHAOS_TEST(test_sa_client_queues_while_disconnected_mode_async),
        CHAOS_TEST(test_sa_client_send_survives_resets_mode_sync),
        CHAOS_TEST(test_sa_client_send_survives_resets_mode_async),
        CHAOS_TEST(test_sa_client_gives_up_mode_sync),
        CHAOS_TEST(test_sa_client_gives_up_mode_async),
    };
    char group[64];
    snprintf(group, sizeof group, "chaos/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
