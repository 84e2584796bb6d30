/* What /proc says about the server under test. */
#ifndef BENCH_PROCSTAT_H
#define BENCH_PROCSTAT_H

#include <stdint.h>

/* VmRSS of process `pid` in KiB; -1 when it cannot be read. */
long long proc_rss_kib(long pid);
/* User + system CPU seconds used so far by process `pid`; -1 when it
 * cannot be read. */
double proc_cpu_seconds(long pid);
/* The same for this process. */
double self_cpu_seconds(void);
/* This process's VmRSS in KiB; -1 when it cannot be read. */
long long self_rss_kib(void);

#endif
