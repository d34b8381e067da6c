/* rng: xoshiro256** seeded through splitmix64.
 *
 * Portable and deterministic: the same seed gives the same sequence on every
 * machine (never rand()). Generators derive sub-streams with rng_fork() so that
 * adding a draw in one content model does not shift every other one.
 */
#ifndef AR_RNG_H
#define AR_RNG_H

#include <stdint.h>

struct rng {
	uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n) without modulo bias; n == 0 returns 0. */
uint64_t rng_below(struct rng *r, uint64_t n);
/* Uniform double in [0, 1). */
double rng_unit(struct rng *r);
/* Standard normal (Box-Muller). */
double rng_normal(struct rng *r);
/* A new independent stream keyed by `label` (e.g. a content kind). */
struct rng rng_fork(const struct rng *r, uint64_t label);
/* 64-bit FNV-1a of a string, for labels. */
uint64_t rng_hash(const char *s);

#endif
