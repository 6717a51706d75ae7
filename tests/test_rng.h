/* The tests' random numbers: splitmix64 from a fixed seed, so every run
 * draws the same cases. A test that wants its own sequence defines
 * TEST_RNG_SEED before including this. Header-only: tests/neon builds it
 * with the cross compiler too. */
#ifndef BLLM_TEST_RNG_H
#define BLLM_TEST_RNG_H

#include <stdint.h>

#ifndef TEST_RNG_SEED
#define TEST_RNG_SEED 0x9e3779b97f4a7c15ull
#endif

static uint64_t rng_state = TEST_RNG_SEED;

static inline uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 0 .. n-1 */
static inline int rng_int(int n) { return (int)(rng_next() % (uint64_t)n); }
/* [0, 1), 53 bits */
static inline double rng_unif(void) { return (double)(rng_next() >> 11) * 0x1p-53; }
/* [-1, 1) as a float */
static inline float rng_uniform(void) { return (float)((double)(rng_next() >> 11) * 0x1p-52 - 1.0); }

#endif
