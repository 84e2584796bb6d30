/* Output pacing (session_queued / session_notify_writable / on_writable),
 * through the pacer fixture plugin (tests/fixtures/pacer.c), which never
 * lets more than 256 KiB (plus one blob) wait in the daemon: streams far
 * larger than sendq_max reach fast and slow readers whole and in order,
 * neither is dropped, and the daemon's memory stays bounded. */
#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define BLOB_SIZE 60000
#define SMALL_SENDQ "1048576"

/* The bound on the daemon's resident memory while it streams 300 MB (5000
 * blobs of 60 KB) to a client that may queue up to 1 GiB: a daemon that
 * queued the stream instead of pacing it passes it at once (200 to 600 MiB
 * measured). Under AddressSanitizer freed memory sits in a quarantine
 * (256 MiB by default) before it is reused: that daemon gets a small one. */
#define RSS_STREAM_COUNT 5000
#define RSS_BOUND_KIB (64 * 1024)
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_SMALL_QUARANTINE "quarantine_size_mb=16"
#endif

static h_daemon *start(const char *sendq_max)
{
    return h_daemon_startv(NULL, "server.plugins=chat pacer",
                           h_fmt("server.plugin_dir=%s", SA_TEST_FIXTURE_DIR),
                           h_fmt("server.sendq_max=%s", sendq_max), NULL);
}

/* start(), with the daemon's ASan quarantine made small when there is one
 * (the daemon inherits this process's environment). */
static h_daemon *start_for_rss(const char *sendq_max)
{
#ifdef ASAN_SMALL_QUARANTINE
    const char *before = getenv("ASAN_OPTIONS");
    const char *saved = before ? h_fmt("%s", before) : NULL;
    /* A later option overrides an earlier one of the same name. */
    const char *small = saved ? h_fmt("%s:%s", saved, ASAN_SMALL_QUARANTINE)
                              : ASAN_SMALL_QUARANTINE;
    if (setenv("ASAN_OPTIONS", small, 1) != 0)
        h_fail("setenv ASAN_OPTIONS failed");
    h_daemon *d = start(sendq_max);
    if ((saved ? setenv("ASAN_OPTIONS", saved, 1) : unsetenv("ASAN_OPTIONS")) != 0)
        h_fail("restoring ASAN_OPTIONS failed");
    return d;
#else
    return start(sendq_max);
#endif
}

/* The daemon is the harness's child (fork + exec): the only child of this
 * process running syncasyncd, as each test starts one daemon. */
static pid_t daemon_pid(void)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        h_fail("cannot open /proc");
    pid_t found = 0;
    struct dirent *entry;
    while ((entry = readdir(proc))) {
        if (!isdigit((unsigned char)entry->d_name[0]))
            continue;
        char path[sizeof entry->d_name + 16], stat[512];
        snprintf(path, sizeof path, "/proc/%s/stat", entry->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* gone meanwhile */
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        /* "PID (COMM) STATE PPID ...": COMM may hold spaces and parens. */
        char *open = strchr(stat, '(');
        char *close = strrchr(stat, ')');
        char state;
        int ppid;
        if (!open || !close || close < open ||
            sscanf(close + 1, " %c %d", &state, &ppid) != 2 || ppid != getpid())
            continue;
        *close = '\0';
        if (strcmp(open + 1, "syncasyncd") == 0)
            found = (pid_t)atoi(entry->d_name);
    }
    closedir(proc);
    if (found == 0)
        h_fail("no syncasyncd child process found in /proc");
    return found;
}

static long rss_kib(pid_t pid)
{
    FILE *f = fopen(h_fmt("/proc/%d/status", (int)pid), "r");
    if (!f)
        h_fail("cannot read /proc/%d/status", (int)pid);
    char line[256];
    long kib = -1;
    while (kib < 0 && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) != 1)
            kib = -1;
    fclose(f);
    if (kib < 0)
        h_fail("no VmRSS line in /proc/%d/status", (int)pid);
    return kib;
}

typedef struct stream_check {
    int pause_ms;  /* sleep after each blob */
    pid_t rss_pid; /* nonzero: sample this process's VmRSS as blobs come */
    long rss_max_kib;
} stream_check;

/* What is wrong with frame number `i` of a stream of `count` blobs and
 * pace_done, or NULL. */
static const char *stream_frame_problem(const cJSON *frame, int i, int count)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(frame, "type");
    const char *want = i < count ? "blob" : "pace_done";
    if (!cJSON_IsString(type) || strcmp(type->valuestring, want) != 0)
        return h_fmt("expected %s %d, got %.200s", want, i, h_json(frame));
    if (i == count)
        return NULL;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(frame, "seq");
    if (!cJSON_IsNumber(seq) || seq->valuedouble != i)
        return h_fmt("blob %d arrived with seq %.200s", i, seq ? h_json(seq) : "missing");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(frame, "data");
    if (!cJSON_IsString(data) || strlen(data->valuestring) != BLOB_SIZE ||
        strspn(data->valuestring, "x") != BLOB_SIZE)
        return h_fmt("blob %d does not hold %d x's", i, BLOB_SIZE);
    return NULL;
}

/* Reads `count` blobs in order, then pace_done. Frames are freed as they
 * come (h_recv would keep them all until teardown). */
static void receive_stream(sa_client *c, int count, stream_check *check)
{
    for (int i = 0; i <= count; i++) {
        cJSON *frame = NULL;
        int rc = sa_client_recv(c, &frame, H_REPLY_MS);
        if (rc != SA_CLIENT_OK)
            h_fail("frame %d of %d: none within %d ms (status %d: %s)", i, count, H_REPLY_MS,
                   rc, rc == SA_CLIENT_ERROR ? sa_client_error(c) : "");
        const char *problem = stream_frame_problem(frame, i, count);
        cJSON_Delete(frame);
        if (problem)
            h_fail("%s", problem);
        if (check->pause_ms > 0)
            h_sleep_ms(check->pause_ms);
        if (check->rss_pid && i % 100 == 0) {
            long kib = rss_kib(check->rss_pid);
            if (kib > check->rss_max_kib)
                check->rss_max_kib = kib;
        }
    }
}

static const char *pace_request(int count, int from_timer)
{
    return h_fmt("{\"type\":\"pace\",\"count\":%d,\"size\":%d%s}", count, BLOB_SIZE,
                 from_timer ? ",\"from_timer\":true" : "");
}

/* Nothing was dropped for passing sendq_max (both engines' log lines say
 * "dropping"), and the connection still answers. */
static void expect_not_dropped(h_daemon *d, sa_client *c)
{
    h_send(c, "{\"type\":\"ping\",\"ts\":7}");
    h_expect(c, "pong", H_REPLY_MS);
    if (h_daemon_log_contains(d, "dropping"))
        h_fail("the daemon dropped a paced client");
}

static void test_fast_reader_gets_everything(void **state)
{
    (void)state;
    h_daemon *d = start(SMALL_SENDQ);
    sa_client *c = h_login(d, "fast");
    /* 120 MB through a 1 MiB sendq. */
    h_request_ok(c, pace_request(2000, 0));
    stream_check check = {0};
    receive_stream(c, 2000, &check);
    expect_not_dropped(d, c);
}

static void test_slow_reader_is_not_dropped(void **state)
{
    (void)state;
    h_daemon *d = start(SMALL_SENDQ);
    sa_client *slow = h_login(d, "slow");
    sa_client *other = h_login(d, "other");
    /* 18 MB at about 20 MB/s: without pacing the daemon would queue far
     * more than 1 MiB for this client within the first blobs. */
    h_request_ok(slow, pace_request(300, 0));
    /* The rest of the server is served meanwhile. */
    h_request_ok(other, "{\"type\":\"dm\",\"to\":\"other\",\"text\":\"fine\"}");
    h_expect(other, "message", H_REPLY_MS);
    stream_check check = {.pause_ms = 3};
    receive_stream(slow, 300, &check);
    expect_not_dropped(d, slow);
}

static void test_armed_from_another_thread(void **state)
{
    (void)state;
    h_daemon *d = start(SMALL_SENDQ);
    sa_client *c = h_login(d, "timer");
    /* The first notice comes from the host's timer thread with nothing
     * queued: it must fire at once, in the session's lane. */
    h_request_ok(c, pace_request(200, 1));
    stream_check check = {0};
    receive_stream(c, 200, &check);
    expect_not_dropped(d, c);
}

static void test_memory_stays_bounded(void **state)
{
    (void)state;
    /* sendq_max 1 GiB: only pacing holds the queue down. */
    h_daemon *d = start_for_rss("1073741824");
    pid_t pid = daemon_pid();
    sa_client *c = h_login(d, "big");
    h_request_ok(c, pace_request(RSS_STREAM_COUNT, 0));
    stream_check check = {.rss_pid = pid};
    receive_stream(c, RSS_STREAM_COUNT, &check);
    print_message("daemon VmRSS peaked at %ld KiB while streaming %d MB (bound %d KiB)\n",
                  check.rss_max_kib, RSS_STREAM_COUNT * BLOB_SIZE / 1000000, RSS_BOUND_KIB);
    if (check.rss_max_kib > RSS_BOUND_KIB)
        h_fail("the daemon's VmRSS reached %ld KiB (bound %d KiB)", check.rss_max_kib,
               RSS_BOUND_KIB);
    expect_not_dropped(d, c);
}

static void test_disconnect_mid_stream(void **state)
{
    (void)state;
    h_daemon *d = start(SMALL_SENDQ);
    sa_client *c = h_login(d, "quitter");
    h_request_ok(c, pace_request(5000, 0));
    h_expect(c, "blob", H_REPLY_MS);
    h_client_close(c);
    sa_client *t = h_login(d, "quitter2");
    h_request_ok(t, pace_request(5000, 1));
    h_client_close(t);
    /* The streams' state is released (leak-free under ASan when the
     * daemon exits at teardown) and the daemon keeps serving. */
    sa_client *next = h_login(d, "next");
    h_request_ok(next, pace_request(10, 0));
    stream_check check = {0};
    receive_stream(next, 10, &check);
}

static void test_bad_requests(void **state)
{
    (void)state;
    h_daemon *d = start(SMALL_SENDQ);
    sa_client *c = h_login(d, "bad");
    h_request_error(c, "{\"type\":\"pace\",\"count\":1}", "bad_request");
    h_request_error(c, "{\"type\":\"pace\",\"count\":1,\"size\":100001}", "bad_request");
    h_request_error(c, "{\"type\":\"pace\",\"count\":-1,\"size\":10}", "bad_request");
    /* One stream at a time: the second is refused while the first (60 MB,
     * more than the socket buffers hold) waits for this client to read. */
    h_request_ok(c, pace_request(1000, 0));
    cJSON *reply = NULL;
    cJSON *second = h_keep(cJSON_Parse("{\"type\":\"pace\",\"count\":1,\"size\":1}"));
    if (!second || sa_client_request(c, second, &reply, H_REPLY_MS) != SA_CLIENT_OK)
        h_fail("no reply to a second pace request");
    h_keep(reply);
    h_assert_str(reply, "type", "error");
    h_assert_str(reply, "code", "bad_request");
    stream_check check = {0};
    receive_stream(c, 1000, &check);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_pacing");
    const struct CMUnitTest tests[] = {
        H_TEST(test_fast_reader_gets_everything),
        H_TEST(test_slow_reader_is_not_dropped),
        H_TEST(test_armed_from_another_thread),
        H_TEST(test_memory_stays_bounded),
        H_TEST(test_disconnect_mid_stream),
        H_TEST(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
