/*
 * The proxy's only source of randomness: SplitMix64, small and fully
 * determined by its seed, so a run with the same --seed and the same bytes
 * makes the same fault decisions.
 */
#ifndef CHAOS_PRNG_H
#define CHAOS_PRNG_H

#include <stdint.h>

typedef struct chaos_prng {
    uint64_t state;
} chaos_prng;

void chaos_prng_seed(chaos_prng *r, uint64_t seed);
uint64_t chaos_prng_next(chaos_prng *r);
/* Uniform in [0, bound); bound must be > 0. */
uint64_t chaos_prng_below(chaos_prng *r, uint64_t bound);
/* Uniform in [0, 1). */
double chaos_prng_unit(chaos_prng *r);

#endif
