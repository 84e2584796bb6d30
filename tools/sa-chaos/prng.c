#include "prng.h"

void chaos_prng_seed(chaos_prng *r, uint64_t seed) { r->state = seed; }

uint64_t chaos_prng_next(chaos_prng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t chaos_prng_below(chaos_prng *r, uint64_t bound)
{
    /* Rejecting the few values below 2^64 mod bound removes modulo bias. */
    uint64_t threshold = -bound % bound;
    for (;;) {
        uint64_t x = chaos_prng_next(r);
        if (x >= threshold)
            return x % bound;
    }
}

double chaos_prng_unit(chaos_prng *r)
{
    return (double)(chaos_prng_next(r) >> 11) * 0x1.0p-53;
}
