/* Keyed counter-based random streams: value i of the stream with key k is splitmix64's finaliser
 * applied to k + (i + 1) * gamma. The key itself is the finaliser chained over (seed, a, b, c), so
 * streams of nearby keys are unrelated. Nothing is shared between streams: a value depends only on
 * its key and index, never on the rank that draws it or the order of draws across units. */
#include <math.h>

#include "experiment.h"

#define GOLDEN_GAMMA 0x9E3779B97F4A7C15ULL

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void pl_rng_init(pl_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t k = mix64(seed + GOLDEN_GAMMA);
    k = mix64(k ^ (a + 1) * GOLDEN_GAMMA);
    k = mix64(k ^ (b + 2) * GOLDEN_GAMMA);
    k = mix64(k ^ (c + 3) * GOLDEN_GAMMA);
    r->key = k;
    r->counter = 0;
    r->has_spare = 0;
    r->spare = 0.0;
}

uint64_t pl_rng_u64(pl_rng *r)
{
    r->counter++;
    return mix64(r->key + r->counter * GOLDEN_GAMMA);
}

double pl_rng_uniform(pl_rng *r) { return (double)(pl_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t pl_rng_below(pl_rng *r, uint64_t n)
{
    /* Lemire's multiply-shift; the bias (n / 2^64) is far below anything measurable here. */
    return (uint64_t)(((unsigned __int128)pl_rng_u64(r) * n) >> 64);
}

double pl_rng_gaussian(pl_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = 1.0 - pl_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = pl_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

uint64_t pl_hash_label(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, 64 bit */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}
