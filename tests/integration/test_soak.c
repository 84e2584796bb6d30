/* Soak, on the engine named by argv[1]: SOAK_CLIENTS clients (500) connect
 * and say hello, join one of SOAK_ROOMS rooms, chat and send small files
 * (each upload fetched back by its sender) for SA_SOAK_SECONDS, then
 * leave. The server's resident memory (VmRSS) and open descriptors are read
 * from /proc at a baseline (after a warm-up round of the same kind), at
 * their peak and after everyone left: the descriptors must be back to the
 * baseline exactly, the memory within SOAK_RSS_SLACK_KIB of it, and no
 * message or file offer may be lost. The last line of the test's stderr is
 * "SOAK {...}" with the figures (docs/reliability.md).
 *
 * SA_SOAK_SECONDS (default 30, 10 under sanitizers) sets the chat phase;
 * SA_SOAK_CLIENTS (default 500) the number of clients. */
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "sa_sha256.h"

#ifndef SA_TEST_TIME_SCALE
#define SA_TEST_TIME_SCALE 1
#endif

#define SOAK_DEFAULT_SECONDS (SA_TEST_TIME_SCALE > 1 ? 10 : 30)
#define SOAK_DEFAULT_CLIENTS 500
#define SOAK_WARMUP_CLIENTS 50
#define SOAK_ROOMS 10
/* Every tick, this many messages and uploads start (fewer under
 * sanitizers, which slow the daemon down). */
#define SOAK_TICK_S 0.1
#define SOAK_MSGS_PER_TICK (40 / SA_TEST_TIME_SCALE)
#define SOAK_UPLOADS_PER_TICK 2
/* The files: FILE_BYTES of 'A', whose base64 is "QUFB" over and over. */
#define SOAK_FILE_BYTES 3072
/* How long the last deliveries and the server's cleanup may take. */
#define SOAK_DRAIN_MS (20000 * SA_TEST_TIME_SCALE)
/* Memory the server may keep after everyone left, over the baseline:
 * allocator caches and arenas (one per thread, for the sync engine)
 * that it keeps for reuse rather than returning them to the kernel. Not
 * checked under sanitizers: AddressSanitizer keeps freed memory in its
 * quarantine on purpose; there LeakSanitizer, when the daemon exits at
 * the end (it must exit 0), is what finds memory left behind. */
#define SOAK_RSS_SLACK_KIB (24 * 1024)
/* And the server keeps, by design, the record of every file sent (they
 * stay fetchable): its addressees are the room's members. */
#define SOAK_RSS_PER_FILE_KIB 4
#ifndef SA_TEST_SANITIZE
#define SA_TEST_SANITIZE 0
#endif

typedef struct soak_client {
    sa_client_async *conn; /* NULL once closed */
    int index, room;
    int64_t hello_id, join_id;
    int hello_ok, join_ok;
    long msgs_sent, msg_oks;   /* msg requests and their ok replies */
    long messages;             /* message events received */
    long offers;               /* file_offer events received */
    int uploading;             /* an upload or its download runs */
    int64_t put_id, end_id, get_id;
    char file_id[64];
    long file_bytes;           /* base64 bytes of the download so far */
    long files_done;           /* uploads fetched back whole */
    char *failure;             /* the first thing that went wrong; owned */
} soak_client;

typedef struct soak {
    struct ev_loop *loop;
    soak_client *clients;
    int count;
    long room_msgs[SOAK_ROOMS];   /* messages sent to each room */
    long room_files[SOAK_ROOMS];  /* uploads finished in each room */
    int room_members[SOAK_ROOMS];
    char sha256[SA_SHA256_HEX_LEN + 1];
    char *chunk_data; /* the file's base64 */
    uint64_t rng;
} soak;

static soak S;

static uint64_t next_random(void)
{
    S.rng ^= S.rng << 13;
    S.rng ^= S.rng >> 7;
    S.rng ^= S.rng << 17;
    return S.rng;
}

static void fail_client(soak_client *c, const char *what)
{
    if (!c->failure)
        c->failure = strdup(what);
}

static const char *str_field(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static int64_t int_field(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(item) ? (int64_t)item->valuedouble : -1;
}

/* Sends a request made from a printf format (short JSON text); returns
 * its id, or -1 (noted as a failure). */
static int64_t request(soak_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t request(soak_client *c, const char *fmt, ...)
{
    char json[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(json, sizeof json, fmt, ap);
    va_end(ap);
    cJSON *msg = n > 0 && (size_t)n < sizeof json ? cJSON_Parse(json) : NULL;
    int64_t id = msg && c->conn ? sa_client_async_request(c->conn, msg) : -1;
    cJSON_Delete(msg);
    if (id < 0)
        fail_client(c, "could not send a request");
    return id;
}

static void send_chunk(soak_client *c)
{
    cJSON *msg = cJSON_CreateObject();
    if (!msg || !cJSON_AddStringToObject(msg, "type", "file_chunk") ||
        !cJSON_AddStringToObject(msg, "file_id", c->file_id) ||
        !cJSON_AddNumberToObject(msg, "offset", 0) ||
        !cJSON_AddStringToObject(msg, "data", S.chunk_data) || !c->conn ||
        sa_client_async_send(c->conn, msg) != 0)
        fail_client(c, "could not send a chunk");
    cJSON_Delete(msg);
}

static void on_ok(soak_client *c, const cJSON *frame, int64_t id)
{
    const char *re = str_field(frame, "re");
    if (id == c->hello_id) {
        c->hello_ok = 1;
    } else if (id == c->join_id) {
        c->join_ok = 1;
    } else if (re && strcmp(re, "msg") == 0) {
        c->msg_oks++;
    } else if (id == c->put_id) {
        const char *file_id = str_field(frame, "file_id");
        if (!file_id || strlen(file_id) >= sizeof c->file_id) {
            fail_client(c, "file_put reply without a file_id");
            return;
        }
        snprintf(c->file_id, sizeof c->file_id, "%s", file_id);
        send_chunk(c);
        c->end_id = request(c, "{\"type\":\"file_end\",\"file_id\":\"%s\"}", c->file_id);
    } else if (id == c->end_id) {
        S.room_files[c->room]++;
        c->file_bytes = 0;
        c->get_id =
            request(c, "{\"type\":\"file_get\",\"file_id\":\"%s\",\"offset\":0}", c->file_id);
    }
}

static void on_frame(sa_client_async *conn, const cJSON *frame, void *arg)
{
    (void)conn;
    soak_client *c = arg;
    const char *type = str_field(frame, "type");
    if (!type)
        return;
    if (strcmp(type, "ok") == 0) {
        on_ok(c, frame, int_field(frame, "id"));
    } else if (strcmp(type, "message") == 0) {
        c->messages++;
    } else if (strcmp(type, "file_offer") == 0) {
        c->offers++;
    } else if (strcmp(type, "file_chunk") == 0) {
        const char *data = str_field(frame, "data");
        c->file_bytes += data ? (long)strlen(data) : 0;
    } else if (strcmp(type, "file_end") == 0) {
        if (c->file_bytes != (long)strlen(S.chunk_data))
            fail_client(c, "a download came back with the wrong size");
        c->files_done++;
        c->uploading = 0;
    } else if (strcmp(type, "error") == 0 || strcmp(type, "bye") == 0) {
        char *text = cJSON_PrintUnformatted(frame);
        fail_client(c, text ? text : type);
        free(text);
    }
}

static void on_close(sa_client_async *conn, const char *reason, void *arg)
{
    (void)conn;
    soak_client *c = arg;
    fail_client(c, h_fmt("connection lost: %s", reason));
}

/* Runs the loop until done(), or fails after timeout_ms. */
static void run_until(int (*done)(void), int timeout_ms, const char *what)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    while (!done()) {
        for (int i = 0; i < S.count; i++)
            if (S.clients[i].failure)
                h_fail("client %d: %s", i, S.clients[i].failure);
        if (h_now_ms() > deadline)
            h_fail("%s: not done within %d ms", what, timeout_ms);
        ev_run(S.loop, EVRUN_ONCE | EVRUN_NOWAIT);
        if (!done())
            ev_run(S.loop, EVRUN_ONCE);
    }
}

static int all_joined(void)
{
    for (int i = 0; i < S.count; i++)
        if (!S.clients[i].hello_ok || !S.clients[i].join_ok)
            return 0;
    return 1;
}

/* Every reply in, every message and offer delivered, every file back. */
static int all_delivered(void)
{
    for (int i = 0; i < S.count; i++) {
        const soak_client *c = &S.clients[i];
        if (c->msg_oks != c->msgs_sent || c->uploading ||
            c->messages != S.room_msgs[c->room] - c->msgs_sent ||
            c->offers != S.room_files[c->room] - c->files_done)
            return 0;
    }
    return 1;
}

/* `count` clients log in as PREFIX<i> and join their rooms. */
static void connect_all(const char *port, int count, const char *prefix)
{
    S.clients = calloc((size_t)count, sizeof *S.clients);
    if (!S.clients)
        h_fail("out of memory");
    S.count = count;
    memset(S.room_msgs, 0, sizeof S.room_msgs);
    memset(S.room_files, 0, sizeof S.room_files);
    memset(S.room_members, 0, sizeof S.room_members);
    const sa_client_async_callbacks cb = {.on_frame = on_frame, .on_close = on_close};
    for (int i = 0; i < count; i++) {
        soak_client *c = &S.clients[i];
        char err[256];
        c->index = i;
        c->room = i % SOAK_ROOMS;
        c->put_id = c->end_id = c->get_id = -1;
        S.room_members[c->room]++;
        c->conn = sa_client_async_connect(S.loop, "127.0.0.1", port, H_REPLY_MS, &cb, c, err,
                                          sizeof err);
        if (!c->conn)
            h_fail("client %d of %d cannot connect: %s", i, count, err);
        c->hello_id =
            request(c, "{\"type\":\"hello\",\"name\":\"%s%d\",\"proto\":1}", prefix, i);
        c->join_id = request(c, "{\"type\":\"join\",\"room\":\"r%d\"}", c->room);
        /* Keeps the replies moving while the others connect. */
        ev_run(S.loop, EVRUN_NOWAIT);
    }
    run_until(all_joined, SOAK_DRAIN_MS, "hello and join of every client");
}

static void close_all(void)
{
    for (int i = 0; i < S.count; i++) {
        if (S.clients[i].conn)
            sa_client_async_close(S.clients[i].conn);
        free(S.clients[i].failure);
    }
    free(S.clients);
    S.clients = NULL;
    S.count = 0;
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    for (int k = 0; k < SOAK_MSGS_PER_TICK; k++) {
        soak_client *c = &S.clients[next_random() % (uint64_t)S.count];
        if (request(c, "{\"type\":\"msg\",\"room\":\"r%d\",\"text\":\"soak %ld from %d\"}",
                    c->room, c->msgs_sent, c->index) >= 0) {
            c->msgs_sent++;
            S.room_msgs[c->room]++;
        }
    }
    for (int k = 0; k < SOAK_UPLOADS_PER_TICK; k++) {
        soak_client *c = &S.clients[next_random() % (uint64_t)S.count];
        if (c->uploading)
            continue;
        c->uploading = 1;
        c->put_id = request(c,
                            "{\"type\":\"file_put\",\"name\":\"soak%d-%ld.txt\",\"size\":%d,"
                            "\"sha256\":\"%s\",\"room\":\"r%d\"}",
                            c->index, c->files_done, SOAK_FILE_BYTES, S.sha256, c->room);
    }
}

/* Chats and sends files for `seconds`, then waits for every delivery.
 * Returns the messages sent. */
static long chat(int seconds)
{
    ev_timer tick;
    ev_timer_init(&tick, on_tick, SOAK_TICK_S, SOAK_TICK_S);
    ev_timer_start(S.loop, &tick);
    int64_t end = h_now_ms() + (int64_t)seconds * 1000;
    while (h_now_ms() < end) {
        for (int i = 0; i < S.count; i++)
            if (S.clients[i].failure)
                h_fail("client %d: %s", i, S.clients[i].failure);
        ev_run(S.loop, EVRUN_ONCE);
    }
    ev_timer_stop(S.loop, &tick);
    run_until(all_delivered, SOAK_DRAIN_MS, "the last deliveries");
    long sent = 0;
    for (int r = 0; r < SOAK_ROOMS; r++)
        sent += S.room_msgs[r];
    return sent;
}

/* ---- the server's resources ---------------------------------------------------- */

static long status_kib(pid_t pid, const char *key)
{
    FILE *f = fopen(h_fmt("/proc/%d/status", (int)pid), "r");
    if (!f)
        h_fail("cannot read /proc/%d/status: %s", (int)pid, strerror(errno));
    char line[256];
    long kib = -1;
    size_t key_len = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, key_len) == 0 && line[key_len] == ':')
            kib = strtol(line + key_len + 1, NULL, 10);
    fclose(f);
    if (kib < 0)
        h_fail("no %s in /proc/%d/status", key, (int)pid);
    return kib;
}

static int open_fds(pid_t pid)
{
    DIR *d = opendir(h_fmt("/proc/%d/fd", (int)pid));
    if (!d)
        h_fail("cannot list /proc/%d/fd: %s", (int)pid, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The server's descriptors once they stop changing for half a second. */
static int settled_fds(pid_t pid)
{
    int64_t deadline = h_now_ms() + SOAK_DRAIN_MS;
    int n = open_fds(pid), same = 0;
    while (same < 5 && h_now_ms() < deadline) {
        h_sleep_ms(100);
        int now = open_fds(pid);
        same = now == n ? same + 1 : 0;
        n = now;
    }
    return n;
}

/* Waits (bounded) until the server holds `want` descriptors again. */
static int wait_fds(pid_t pid, int want)
{
    int64_t deadline = h_now_ms() + SOAK_DRAIN_MS;
    int n;
    while ((n = open_fds(pid)) != want && h_now_ms() < deadline)
        h_sleep_ms(50);
    return n;
}

static int env_number(const char *name, int fallback, int min, int max)
{
    const char *text = getenv(name);
    if (!text || !*text)
        return fallback;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (*end || v < min || v > max)
        h_fail("%s=%s: expected a whole number from %d to %d", name, text, min, max);
    return (int)v;
}

static void make_file_data(void)
{
    static const char block[] = "QUFB"; /* base64 of "AAA" */
    size_t len = SOAK_FILE_BYTES / 3 * 4;
    S.chunk_data = malloc(len + 1);
    unsigned char *plain = malloc(SOAK_FILE_BYTES);
    sa_sha256 *h = sa_sha256_new();
    if (!S.chunk_data || !plain || !h) {
        free(plain);
        sa_sha256_free(h);
        h_fail("out of memory");
    }
    for (size_t i = 0; i < len; i += 4)
        memcpy(S.chunk_data + i, block, 4);
    S.chunk_data[len] = '\0';
    memset(plain, 'A', SOAK_FILE_BYTES);
    int rc = sa_sha256_update(h, plain, SOAK_FILE_BYTES) == 0 &&
             sa_sha256_final_hex(h, S.sha256) == 0;
    free(plain);
    sa_sha256_free(h);
    if (!rc)
        h_fail("cannot hash the soak file");
}

static void test_soak(void **state)
{
    (void)state;
    int seconds = env_number("SA_SOAK_SECONDS", SOAK_DEFAULT_SECONDS, 1, 86400);
    int clients = env_number("SA_SOAK_CLIENTS", SOAK_DEFAULT_CLIENTS, 1, 5000);
    /* The test holds a socket per client, the daemon (which inherits the
     * limit) one more each. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) != 0)
        h_fail("getrlimit: %s", strerror(errno));
    rlim_t need = (rlim_t)clients + 256;
    if (nofile.rlim_cur < need) {
        if (nofile.rlim_max < need)
            h_fail("%d clients need %lu descriptors; the hard limit is %lu", clients,
                   (unsigned long)need, (unsigned long)nofile.rlim_max);
        nofile.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &nofile) != 0)
            h_fail("setrlimit: %s", strerror(errno));
    }
    S.rng = 0x9E3779B97F4A7C15ull;
    make_file_data();
    S.loop = ev_loop_new(EVFLAG_AUTO);
    if (!S.loop)
        h_fail("cannot create an event loop");

    const char *spool = h_fmt("%s/spool", h_tempdir());
    if (mkdir(spool, 0700) != 0)
        h_fail("mkdir %s: %s", spool, strerror(errno));
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat rooms presence file",
                                  "rooms.auto_join=", "chat.rate=0",
                                  h_fmt("file.spool_dir=%s", spool), NULL);
    pid_t pid = h_daemon_pid(d);

    /* Warm-up: what any first clients make the server allocate for good. */
    connect_all(h_daemon_port(d), SOAK_WARMUP_CLIENTS, "warm");
    chat(1);
    close_all();
    int fds_base = settled_fds(pid);
    long rss_base = status_kib(pid, "VmRSS");

    int64_t t0 = h_now_ms();
    connect_all(h_daemon_port(d), clients, "soak");
    int64_t t1 = h_now_ms();
    int fds_peak = open_fds(pid);
    long sent = chat(seconds);
    long rss_peak = status_kib(pid, "VmHWM");
    long deliveries = 0, offers = 0, files = 0;
    for (int i = 0; i < S.count; i++) {
        deliveries += S.clients[i].messages;
        offers += S.clients[i].offers;
        files += S.clients[i].files_done;
    }
    close_all();
    int fds_after = wait_fds(pid, fds_base);
    h_sleep_ms(500); /* the sync engine's threads finish exiting */
    long rss_after = status_kib(pid, "VmRSS");

    fprintf(stderr,
            "SOAK {\"engine\":\"%s\",\"clients\":%d,\"seconds\":%d,\"connect_ms\":%lld,"
            "\"messages\":%ld,\"deliveries\":%ld,\"files\":%ld,\"offers\":%ld,\"lost\":0,"
            "\"rss_kib\":{\"baseline\":%ld,\"peak\":%ld,\"after\":%ld},"
            "\"fds\":{\"baseline\":%d,\"peak\":%d,\"after\":%d}}\n",
            h_engine, clients, seconds, (long long)(t1 - t0), sent, deliveries, files, offers,
            rss_base, rss_peak, rss_after, fds_base, fds_peak, fds_after);
    if (fds_after != fds_base)
        h_fail("the server holds %d descriptors after everyone left, %d before", fds_after,
               fds_base);
    long slack = SOAK_RSS_SLACK_KIB + files * SOAK_RSS_PER_FILE_KIB;
    if (!SA_TEST_SANITIZE && rss_after > rss_base + slack)
        h_fail("the server's RSS is %ld KiB after everyone left, %ld KiB before (slack %ld KiB "
               "for %ld files)",
               rss_after, rss_base, slack, files);
    if (files == 0 || sent == 0)
        h_fail("the soak sent %ld messages and %ld files", sent, files);
    ev_loop_destroy(S.loop);
    S.loop = NULL;
    free(S.chunk_data);
    S.chunk_data = NULL;
    h_daemon_stop(d);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_soak");
    const struct CMUnitTest tests[] = {
        H_TEST(test_soak),
    };
    char group[64];
    snprintf(group, sizeof group, "soak/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
