/* gen_dist: the random distributions of the synthetic session generator,
 * computed in integer arithmetic only.
 *
 * `agentreplay gen` promises byte-identical output for the same arguments on
 * every machine. The PRNG (src/rng.h) is portable, but libm's exp/log/cos are
 * not bit-identical across C libraries, and a compiler may fuse a*b+c into an
 * FMA on one target and not on another. So nothing here touches floating
 * point after a profile is loaded: a log-normal draw is an Irwin-Hall(12)
 * approximation of a standard normal (Q16 fixed point, tails cut at 6 sigma)
 * fed to a table-driven 2^x, and probabilities are Q16 integers.
 *
 * Units: a distribution samples integers in the unit of the quantity it
 * describes (tokens, lines, milliseconds). Profiles write seconds; the loader
 * scales them to milliseconds (gen_dist_parse's `scale`).
 *
 * Ownership: plain values, nothing to free.
 */
#ifndef AR_GEN_DIST_H
#define AR_GEN_DIST_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "rng.h"

enum gen_dist_kind {
	GEN_DIST_FIXED,     /* always `median` */
	GEN_DIST_UNIFORM,   /* uniform in [min, max] */
	GEN_DIST_LOGNORMAL, /* median * e^(sigma * N(0,1)), clamped to [min, max] */
};

struct gen_dist {
	enum gen_dist_kind kind;
	int64_t median;
	int32_t sigma_q16; /* natural-log units, Q16 */
	int64_t min, max;
};

/* Q16 probability (0 .. 65536). */
typedef int32_t gen_prob;
#define GEN_PROB_ONE 65536

/* One draw. */
int64_t gen_dist_sample(const struct gen_dist *d, struct rng *r);
/* A draw scaled by `num/den` before clamping (for stretching a profile's
 * size distribution); den > 0. */
int64_t gen_dist_sample_scaled(const struct gen_dist *d, struct rng *r, int64_t num, int64_t den);
/* A fixed distribution of value v. */
struct gen_dist gen_dist_fixed(int64_t v);
/* True with probability p. */
bool gen_chance(struct rng *r, gen_prob p);
/* Index in [0, n) picked with the given non-negative weights; -1 when they
 * are all 0. */
int gen_pick(struct rng *r, const int64_t *weights, int n);
/* round(v * e^(x_q16 / 65536)) for |x| <= 20, saturating at INT64_MAX/4. */
int64_t gen_exp_scale(int64_t v, int64_t x_q16);

/* Reads a distribution from config node `v` (field names it in errors):
 *   a number                          fixed
 *   {min: A, max: B}                  uniform
 *   {median: M, sigma: S, min, max}   log-normal (min/max optional)
 * Values are multiplied by `scale` (1000 turns seconds into ms) and rounded.
 * `lo` is the smallest value allowed after scaling. */
int gen_dist_parse(const struct config_doc *doc, const cJSON *v, const char *field, int64_t scale, int64_t lo,
		   struct gen_dist *out, struct ar_err *err);
/* Reads a probability 0..1 into Q16. Absent: *out untouched. */
int gen_prob_parse(const struct config_doc *doc, const cJSON *obj, const char *field, gen_prob *out,
		   struct ar_err *err);

#endif
