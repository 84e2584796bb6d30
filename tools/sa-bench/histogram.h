/*
 * Latency histogram in the manner of HdrHistogram: every power of two is
 * cut into 128 linear buckets, so a recorded value is kept to within 0.8 %
 * at every scale, in a fixed 43 KiB whatever the number of samples.
 */
#ifndef BENCH_HISTOGRAM_H
#define BENCH_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
/* Values up to 2^47 ns (39 hours); larger ones land in the last bucket. */
#define HIST_MAX_MAGNITUDE 47
#define HIST_BUCKETS (HIST_SUB_COUNT * (HIST_MAX_MAGNITUDE - HIST_SUB_BITS + 2))

typedef struct bench_histogram {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max; /* exact */
    long double sum;
} bench_histogram;

void hist_init(bench_histogram *h);
void hist_record(bench_histogram *h, uint64_t value);
/* The value below which `percentile` % of the samples lie (the middle of
 * its bucket, clamped to the exact max); 0 when empty. */
uint64_t hist_percentile(const bench_histogram *h, double percentile);
double hist_mean(const bench_histogram *h);

#endif
