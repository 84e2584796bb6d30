/*
 * sa-bench: load generator for syncasyncd and, with matching drivers, for
 * Redis pub/sub and Mosquitto, so that one workload runs against each.
 * See options.c for the command line, workloads.h for what is measured.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <ev.h>

#include "options.h"
#include "proto.h"
#include "report.h"
#include "workloads.h"

/* As many connections as the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        fprintf(stderr, "sa-bench: cannot raise the open file limit: %s\n", strerror(errno));
}

int main(int argc, char **argv)
{
    bench_options opt;
    int status = bench_parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;
    /* Sends use MSG_NOSIGNAL; this covers anything else on a closed socket. */
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    const bench_proto *proto = opt.target == BENCH_REDIS       ? &bench_proto_redis
                               : opt.target == BENCH_MOSQUITTO ? &bench_proto_mqtt
                                                               : &bench_proto_syncasync;
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        fprintf(stderr, "sa-bench: cannot create the event loop\n");
        return 1;
    }
    cJSON *summary = report_new(&opt);
    if (opt.workload == BENCH_FILES)
        status = run_files(&opt, summary);
    else if (opt.workload == BENCH_CONNS)
        status = run_conns(&opt, proto, loop, summary);
    else
        status = run_fanout(&opt, proto, loop, summary);
    report_num(summary, "status", status, 0);
    report_print(summary, opt.json);
    cJSON_Delete(summary);
    ev_loop_destroy(loop);
    return status;
}
