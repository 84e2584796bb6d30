#include "histogram.h"

#include <string.h>

void hist_init(bench_histogram *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

/* Values below HIST_SUB_COUNT have a bucket each; above, a power of two
 * 2^m is split into HIST_SUB_COUNT buckets of width 2^(m - SUB_BITS). */
static unsigned bucket_of(uint64_t value)
{
    if (value < HIST_SUB_COUNT)
        return (unsigned)value;
    unsigned magnitude = 63u - (unsigned)__builtin_clzll(value);
    if (magnitude > HIST_MAX_MAGNITUDE)
        return HIST_BUCKETS - 1;
    unsigned shift = magnitude - HIST_SUB_BITS;
    unsigned sub = (unsigned)(value >> shift) - HIST_SUB_COUNT;
    return HIST_SUB_COUNT * (shift + 1) + sub;
}

/* The middle of a bucket's range. */
static uint64_t bucket_value(unsigned bucket)
{
    if (bucket < HIST_SUB_COUNT)
        return bucket;
    unsigned shift = bucket / HIST_SUB_COUNT - 1;
    uint64_t low = (uint64_t)(HIST_SUB_COUNT + bucket % HIST_SUB_COUNT) << shift;
    return low + (((uint64_t)1 << shift) >> 1);
}

void hist_record(bench_histogram *h, uint64_t value)
{
    h->counts[bucket_of(value)]++;
    h->total++;
    h->sum += value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

uint64_t hist_percentile(const bench_histogram *h, double percentile)
{
    if (h->total == 0)
        return 0;
    /* The rank of the sample wanted, 1-based, rounded up. */
    uint64_t rank = (uint64_t)((percentile / 100.0) * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->total)
        rank = h->total;
    uint64_t seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= rank) {
            uint64_t v = bucket_value(b);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const bench_histogram *h)
{
    return h->total ? (double)(h->sum / h->total) : 0.0;
}
