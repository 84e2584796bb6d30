/* The workloads. Each runs to the end, adds its results to `summary`,
 * prints a human-readable report (unless opt->json) and returns the exit
 * status: 0 when it ran, 1 when it could not (setup failed, server gone). */
#ifndef BENCH_WORKLOADS_H
#define BENCH_WORKLOADS_H

#include <ev.h>

#include <cjson/cJSON.h>

#include "options.h"
#include "proto.h"

/* fanout.c: S subscribers, P senders, M messages; deliveries per second,
 * latency, losses. */
int run_fanout(const bench_options *opt, const bench_proto *proto, struct ev_loop *loop,
               cJSON *summary);

/* conns.c: C idle logged-in connections, a ping on each, the server's RSS
 * per connection. */
int run_conns(const bench_options *opt, const bench_proto *proto, struct ev_loop *loop,
              cJSON *summary);

/* files.c: one file of --mib MiB uploaded, then downloaded, SHA-256
 * checked both ways; seconds and MiB/s of each (syncasync only). */
int run_files(const bench_options *opt, cJSON *summary);

#endif
