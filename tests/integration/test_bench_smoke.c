/* sa-bench with tiny numbers against the engine named by argv[1]: the
 * fanout, conns and files workloads run to the end and their SUMMARY line
 * adds up. Not a benchmark: nothing here is timed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "harness.h"

#define BENCH_EXIT_MS 30000

/* The summary: the last line of `out`, "SUMMARY {json}", or the bare JSON
 * with --json (kept by the harness). */
static cJSON *summary_of(const char *out, const char *err, bool json_only)
{
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == '\n')
        len--;
    size_t start = len;
    while (start > 0 && out[start - 1] != '\n')
        start--;
    const char *prefix = json_only ? "{" : "SUMMARY {";
    if (len - start < strlen(prefix) || strncmp(out + start, prefix, strlen(prefix)) != 0)
        h_fail("the last line of sa-bench's output is not the summary:\n%s\nstderr:\n%s", out,
               err);
    size_t skip = strlen(prefix) - 1;
    cJSON *summary = cJSON_ParseWithLength(out + start + skip, len - start - skip);
    if (!cJSON_IsObject(summary))
        h_fail("the summary is not a JSON object: %.*s", (int)(len - start), out + start);
    return h_keep(summary);
}

/* Runs sa-bench against the daemon with the extra arguments (NULL-ended)
 * and returns its summary; fails unless it exits 0. */
static cJSON *run_bench(const h_daemon *d, const char *const *extra)
{
    bool json_only = false;
    const char *argv[32] = {SA_TEST_SA_BENCH, "--host", "127.0.0.1", "--port",
                            h_daemon_port(d)};
    size_t n = 5;
    for (size_t i = 0; extra[i] && n < 31; i++) {
        argv[n++] = extra[i];
        json_only |= strcmp(extra[i], "--json") == 0;
    }
    argv[n] = NULL;
    const char *out = NULL, *err = NULL;
    int status = h_run(argv, BENCH_EXIT_MS, &out, &err);
    cJSON *summary = summary_of(out, err, json_only);
    if (status != 0)
        h_fail("sa-bench exited %d:\n%s\nstderr:\n%s", status, out, err);
    h_assert_str(summary, "engine", h_engine);
    return summary;
}

static h_daemon *start_chat_daemon(void)
{
    return h_daemon_startv(NULL, "server.plugins=chat rooms", "chat.rate=0", "rooms.auto_join=",
                           NULL);
}

static void expect_all_delivered(const cJSON *summary, double senders, double subscribers,
                                 double messages)
{
    double expected = senders * subscribers * messages;
    if (h_get_num(summary, "sent") != senders * messages ||
        h_get_num(summary, "expected") != expected ||
        h_get_num(summary, "received") != expected || h_get_num(summary, "lost") != 0 ||
        h_get_num(summary, "anomalies") != 0 || h_get_num(summary, "rejected") != 0)
        h_fail("every message should reach every subscriber once: %s", h_json(summary));
    if (h_get_num(summary, "deliveries_per_s") <= 0 || h_get_num(summary, "max_us") <= 0 ||
        h_get_num(summary, "p50_us") > h_get_num(summary, "max_us"))
        h_fail("throughput and latency should be measured: %s", h_json(summary));
}

static void test_fanout_flat_out(void **state)
{
    (void)state;
    h_daemon *d = start_chat_daemon();
    cJSON *summary = run_bench(d, (const char *const[]){"--workload", "fanout", "-S", "5", "-P",
                                                        "2", "-M", "50", "-B", "64", "--window",
                                                        "8", NULL});
    h_assert_str(summary, "workload", "fanout");
    expect_all_delivered(summary, 2, 5, 50);
    /* Senders are room members too and get each other's messages, but the
     * run ends once the subscribers have all: some may still be on the way. */
    if (h_get_num(summary, "sender_deliveries") > 100)
        h_fail("senders got more than each other's messages: %s", h_json(summary));
}

static void test_fanout_paced(void **state)
{
    (void)state;
    h_daemon *d = start_chat_daemon();
    cJSON *summary = run_bench(d, (const char *const[]){"-S", "3", "-M", "20", "--rate", "200",
                                                        "--json", NULL});
    expect_all_delivered(summary, 1, 3, 20);
    /* 20 messages at 200/s take about 0.1 s. */
    if (h_get_num(summary, "send_seconds") < 0.09)
        h_fail("paced messages went out too fast: %s", h_json(summary));
}

static void test_fanout_chat_in_rooms(void **state)
{
    (void)state;
    h_daemon *d = start_chat_daemon();
    /* Two rooms of 3 chatting senders: each message reaches the other 2. */
    cJSON *summary = run_bench(d, (const char *const[]){"-S", "0", "-P", "6", "--rooms", "2",
                                                        "--chat", "-M", "30", NULL});
    if (h_get_num(summary, "expected") != 6 * 30 * 2 ||
        h_get_num(summary, "received") != 6 * 30 * 2 || h_get_num(summary, "anomalies") != 0)
        h_fail("each message should reach the 2 others of its room: %s", h_json(summary));
}

static void test_conns(void **state)
{
    (void)state;
    h_daemon *d = start_chat_daemon();
    cJSON *summary = run_bench(d, (const char *const[]){"--workload", "conns", "-C", "20",
                                                        "--sources", "2", NULL});
    h_assert_str(summary, "workload", "conns");
    if (h_get_num(summary, "up") != 20 || h_get_num(summary, "answered") != 20 ||
        h_get_num(summary, "failed") != 0)
        h_fail("all 20 connections should be up and answer a ping: %s", h_json(summary));
}

static void test_files(void **state)
{
    (void)state;
    const char *spool = h_fmt("%s/spool", h_tempdir());
    if (mkdir(spool, 0700) != 0)
        h_fail("mkdir %s: %s", spool, strerror(errno));
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat file",
                                  h_fmt("file.spool_dir=%s", spool), NULL);
    cJSON *summary = run_bench(d, (const char *const[]){"--workload", "files", "--mib", "3",
                                                        "--json", NULL});
    h_assert_str(summary, "workload", "files");
    if (h_get_num(summary, "file_mib") != 3 || strlen(h_get_str(summary, "sha256")) != 64 ||
        h_get_num(summary, "upload_mib_per_s") <= 0 ||
        h_get_num(summary, "download_mib_per_s") <= 0)
        h_fail("a 3 MiB upload and download should be measured: %s", h_json(summary));
    h_daemon_stop(d);
}

static void test_usage_and_unreachable(void **state)
{
    (void)state;
    const char *out = NULL, *err = NULL;
    int status = h_run((const char *const[]){SA_TEST_SA_BENCH, "-B", "10", NULL}, BENCH_EXIT_MS,
                       &out, &err);
    if (status != 2)
        h_fail("a too small -B should be bad usage (2), got %d: %s", status, err);
    /* A port nobody listens on: a run that cannot happen, exit 1, and still a summary. */
    h_daemon *d = start_chat_daemon();
    const char *port = h_fmt("%s", h_daemon_port(d));
    h_daemon_stop(d);
    status = h_run((const char *const[]){SA_TEST_SA_BENCH, "--port", port, "-S", "2", "-M", "5",
                                         NULL},
                   BENCH_EXIT_MS, &out, &err);
    if (status != 1)
        h_fail("an unreachable server should end with 1, got %d: %s", status, err);
    h_assert_str(summary_of(out, err, false), "workload", "fanout");
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_bench_smoke");
    const struct CMUnitTest tests[] = {
        H_TEST(test_fanout_flat_out),
        H_TEST(test_fanout_paced),
        H_TEST(test_fanout_chat_in_rooms),
        H_TEST(test_conns),
        H_TEST(test_files),
        H_TEST(test_usage_and_unreachable),
    };
    char group[64];
    snprintf(group, sizeof group, "bench_smoke/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
