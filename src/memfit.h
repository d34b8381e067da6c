/* memfit: a model of a server's memory against context depth, and the depth
 * and turn at which it crosses a budget.
 *
 * What it is for: the memory sampler measures, per request, the peak memory
 * of the server while it held a context of x tokens. A line
 *     memory(x) = baseline + bytes_per_token * x
 * fitted to those points separates what the server holds whatever the
 * depth (weights, compute buffers, a KV cache allocated up front) from what
 * each token of context costs, and extrapolates to the depth where memory
 * would reach the budget: the out-of-memory that would come at turn N.
 *
 * Robustness: allocators grow in steps (KV caches in 256-token pages, arenas
 * that double, prompt caches that save a whole state at once), so the
 * slope is the Theil-Sen estimator (the median of the slopes between every
 * pair of points with distinct depth) and the baseline the median of
 * y - slope*x: a few steps or outliers cannot drag the line the way a least
 * squares fit would. r2 is reported against that line.
 *
 * Pure functions: no I/O, no globals. Units: tokens and bytes.
 */
#ifndef AR_MEMFIT_H
#define AR_MEMFIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct memfit_point {
	double x; /* context tokens */
	double y; /* bytes */
};

struct memfit {
	bool ok;           /* at least 3 points at 2 or more distinct depths */
	double baseline;   /* bytes at depth 0 */
	double slope;      /* bytes per token */
	double r2;         /* 1 - SSres/SStot against the fitted line; NaN when y is constant */
	size_t points;
	double x_min, x_max;
};

/* Fits the points (order does not matter; non-finite points are skipped).
 * Above MEMFIT_MAX_POINTS points an evenly spaced subset by depth is used.
 * Returns 0 with out->ok, or -1 when out of memory (out->ok false). */
#define MEMFIT_MAX_POINTS 1000
int memfit_fit(const struct memfit_point *p, size_t n, struct memfit *out);

/* The depth (tokens) where the line reaches budget bytes: -1 when the
 * slope is not positive or the fit not ok; 0 when the baseline is already
 * over. */
int64_t memfit_oom_tokens(const struct memfit *f, double budget);

/* The turn at which a session reaches `target` tokens: the first turn whose
 * depth is already >= target, else the last turn plus the turns its
 * per-turn growth (the Theil-Sen slope of depth against turn) needs.
 * turns[i], depths[i]: one point per turn (n >= 1). -1 when the depth does
 * not grow or target < 0. */
int64_t memfit_project_turn(const int64_t *turns, const double *depths, size_t n, double target);

#endif
