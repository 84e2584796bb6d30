/*
 * conns: C idle logged-in connections, then one ping on each that must be
 * answered, and the server's memory per connection: its VmRSS once all
 * are up and answered, minus its VmRSS before the first connect, divided
 * by the connections up.
 *
 * Ownership: the conns struct lives on run_conns's stack; the fleet and
 * the answered[] array are freed before it returns.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "fleet.h"
#include "procstat.h"
#include "report.h"
#include "workloads.h"

/* Loopback ports one source address offers to one server port, with room
 * to spare below the default ephemeral range (32768-60999). */
#define PORTS_PER_SOURCE 25000u
/* Seconds to wait for every pong, at least; more for many connections. */
#define PING_TIMEOUT_MIN 10.0

typedef struct conns {
    struct ev_loop *loop;
    fleet fleet;
    bool *answered; /* owned, [C] */
    uint32_t pings, pongs; /* pings expected to be answered, and answered */
} conns;

static void on_event(fleet *f, fleet_member *m, const bench_event *ev,
                     const bench_rx_time *when)
{
    (void)when;
    conns *cs = f->workload;
    if (ev->kind != BENCH_EV_PONG || cs->answered[m->index])
        return;
    cs->answered[m->index] = true;
    if (++cs->pongs == cs->pings)
        ev_break(cs->loop, EVBREAK_ONE);
}

static void on_lost(fleet *f, fleet_member *m, const char *reason)
{
    (void)reason;
    conns *cs = f->workload;
    /* It will not answer: stop waiting for it. */
    if (cs->pings > 0 && !cs->answered[m->index]) {
        cs->pings--;
        if (cs->pongs == cs->pings)
            ev_break(cs->loop, EVBREAK_ONE);
    }
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

/* Runs the loop for `seconds` or until something breaks it. */
static void run_for(struct ev_loop *loop, double seconds)
{
    ev_timer t;
    ev_timer_init(&t, timeout_cb, seconds, 0);
    ev_timer_start(loop, &t);
    ev_run(loop, 0);
    ev_timer_stop(loop, &t);
}

/* File descriptors the run needs, against the limit main raised. */
static int check_fd_limit(uint32_t connections, char *err, size_t errlen)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    uint64_t need = (uint64_t)connections + 32;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        snprintf(err, errlen,
                 "%u connections need %llu file descriptors; the limit is %llu (hard %llu): "
                 "raise it (ulimit -n, as root ulimit -Hn)",
                 connections, (unsigned long long)need, (unsigned long long)rl.rlim_cur,
                 (unsigned long long)rl.rlim_max);
        return -1;
    }
    return 0;
}

int run_conns(const bench_options *opt, const bench_proto *proto, struct ev_loop *loop,
              cJSON *summary)
{
    char err[256];
    report_num(summary, "C", opt->connections, 0);
    if (check_fd_limit(opt->connections, err, sizeof err) != 0) {
        fprintf(stderr, "sa-bench: %s\n", err);
        report_str(summary, "error", err);
        return 1;
    }
    unsigned sources = opt->sources;
    if (sources == 0 && opt->connections > PORTS_PER_SOURCE)
        sources = (opt->connections + PORTS_PER_SOURCE - 1) / PORTS_PER_SOURCE;
    report_num(summary, "sources", sources, 0);

    conns cs = {.loop = loop};
    cs.answered = calloc(opt->connections, sizeof *cs.answered);
    if (!cs.answered) {
        report_str(summary, "error", "out of memory");
        return 1;
    }
    if (fleet_init(&cs.fleet, opt, proto, loop, opt->connections, 1, sources, err, sizeof err) !=
        0) {
        fprintf(stderr, "sa-bench: %s\n", err);
        report_str(summary, "error", err);
        free(cs.answered);
        return 1;
    }
    cs.fleet.workload = &cs;
    cs.fleet.on_event = on_event;
    cs.fleet.on_lost = on_lost;

    long long rss_base = opt->server_pid ? proc_rss_kib(opt->server_pid) : -1;
    long long self_base = self_rss_kib();
    uint64_t t0 = bench_now_ns();
    uint32_t up = fleet_setup(&cs.fleet);
    double connect_seconds = (bench_now_ns() - t0) / 1e9;
    if (!opt->json)
        fprintf(stderr, "sa-bench: %u of %u connections up in %.2f s; pinging\n",
                up - cs.fleet.lost, opt->connections, connect_seconds);

    /* One ping on every connection still up, all at once. */
    uint64_t t1 = bench_now_ns();
    for (uint32_t i = 0; i < cs.fleet.count; i++) {
        fleet_member *m = &cs.fleet.members[i];
        if (m->state != MEMBER_READY)
            continue;
        if (proto->ping(&m->conn, i) != 0)
            fleet_lose(&cs.fleet, m, "cannot queue the ping");
        else
            cs.pings++;
    }
    if (cs.pongs < cs.pings)
        run_for(loop, fmax(PING_TIMEOUT_MIN, cs.pings / 5000.0));
    double ping_seconds = (bench_now_ns() - t1) / 1e9;

    long long rss = opt->server_pid ? proc_rss_kib(opt->server_pid) : -1;
    long long self_rss = self_rss_kib();
    uint32_t alive = up - cs.fleet.lost;

    report_num(summary, "up", up, 0);
    report_num(summary, "failed", cs.fleet.failed, 0);
    report_num(summary, "lost_connections", cs.fleet.lost, 0);
    report_num(summary, "answered", cs.pongs, 0);
    report_num(summary, "connect_seconds", connect_seconds, 3);
    report_num(summary, "conns_per_s", connect_seconds > 0 ? up / connect_seconds : 0, 0);
    report_num(summary, "ping_seconds", ping_seconds, 3);
    if (cs.fleet.engine[0])
        report_str(summary, "engine", cs.fleet.engine);
    if (rss_base >= 0 && rss >= 0) {
        report_num(summary, "rss_base_kib", (double)rss_base, 0);
        report_num(summary, "rss_kib", (double)rss, 0);
        if (alive > 0)
            report_num(summary, "rss_per_conn_kib", (double)(rss - rss_base) / alive, 3);
    }
    if (self_base >= 0 && self_rss >= 0 && alive > 0)
        report_num(summary, "bench_rss_per_conn_kib", (double)(self_rss - self_base) / alive, 3);
    const char *first_error = cs.fleet.first_error[0] ? cs.fleet.first_error
                                                      : cs.fleet.first_loss;
    if (first_error[0])
        report_str(summary, "first_error", first_error);

    if (!opt->json) {
        printf("conns against %s%s%s: %u of %u up in %.2f s (%.0f/s), %u of %u pings answered "
               "in %.2f s\n",
               bench_target_name(opt->target), cs.fleet.engine[0] ? " engine " : "",
               cs.fleet.engine, up, opt->connections, connect_seconds,
               connect_seconds > 0 ? up / connect_seconds : 0, cs.pongs, alive, ping_seconds);
        if (rss_base >= 0 && rss >= 0 && alive > 0)
            printf("  server RSS %lld KiB -> %lld KiB: %.3f KiB per connection\n", rss_base, rss,
                   (double)(rss - rss_base) / alive);
        if (first_error[0])
            printf("  first failure: %s\n", first_error);
    }
    bool ok = up == opt->connections && cs.fleet.lost == 0 && cs.pongs == up;
    fleet_free(&cs.fleet);
    free(cs.answered);
    return ok ? 0 : 1;
}
