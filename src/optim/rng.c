/* Counter-keyed random streams: a key (seed, domain, a, b) is hashed with the
 * splitmix64 finalizer into the state of a xoshiro256** generator
 * (https://prng.di.unimi.it/). Nothing global: each image/step owns its own
 * stream, so results do not depend on thread count or call order. */
#include <math.h>

#include "featviz/optim.h"

/* splitmix64: advances *x and returns the next output. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* One splitmix64 output seeded with x: a 64-bit mixing function. */
static uint64_t mix(uint64_t x) {
    return splitmix64(&x);
}

void fv_rng_seed(struct fv_rng *r, uint64_t seed, uint64_t domain, uint64_t a, uint64_t b) {
    uint64_t h = mix(seed);
    h = mix(h ^ domain);
    h = mix(h ^ a);
    h = mix(h ^ b);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&h);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t fv_rng_next(struct fv_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float fv_rng_uniform(struct fv_rng *r) {
    return (float)(fv_rng_next(r) >> 40) * 0x1p-24f;
}

float fv_rng_range(struct fv_rng *r, float lo, float hi) {
    float x = lo + (hi - lo) * fv_rng_uniform(r);
    return x < hi ? x : lo; /* rounding could reach hi */
}

int fv_rng_int(struct fv_rng *r, int lo, int hi) {
    uint64_t span = (uint64_t)((int64_t)hi - (int64_t)lo) + 1;
    /* multiply-shift on 32 random bits: bias < span / 2^32, irrelevant here */
    uint64_t x = (fv_rng_next(r) >> 32) * span >> 32;
    return (int)((int64_t)lo + (int64_t)x);
}

float fv_rng_normal(struct fv_rng *r) {
    double u1 = (double)((fv_rng_next(r) >> 11) + 1) * 0x1p-53; /* (0, 1] */
    double u2 = (double)(fv_rng_next(r) >> 11) * 0x1p-53;       /* [0, 1) */
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
