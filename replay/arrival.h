/* arrival: when each session of a concurrent replay starts.
 *
 *   all             every session at 0 (as many at once as --concurrency allows)
 *   stagger:DUR     session i at i * DUR, exactly
 *   poisson:RATE    a Poisson process of RATE sessions per second: gaps are
 *                   exponential with mean 1/RATE, drawn from a seeded
 *                   xoshiro256** so a seed gives the same schedule everywhere
 *   trace           at 0; each session's turns keep the trace's recorded `t`
 *                   from the start of the replay (Mooncake-style request logs
 *                   carry the arrival time in the first turn's `t`)
 *
 * Times are ns from the start of the replay. A session starts at its arrival
 * or when a slot of the concurrency limit frees up, whichever is later.
 */
#ifndef AR_ARRIVAL_H
#define AR_ARRIVAL_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "err.h"

enum arrival_kind { ARRIVAL_ALL, ARRIVAL_STAGGER, ARRIVAL_POISSON, ARRIVAL_TRACE };

struct arrival {
	enum arrival_kind kind;
	ar_ns stagger;  /* ARRIVAL_STAGGER */
	double rate;    /* ARRIVAL_POISSON: sessions per second */
};

/* Parses all | stagger:DURATION | poisson:RATE | trace. -1 with err set
 * (naming the text) when it is none of these or out of range. */
int arrival_parse(const char *s, struct arrival *out, struct ar_err *err);
/* Writes n arrival times (ns, non-decreasing) to out. */
void arrival_schedule(const struct arrival *a, uint64_t seed, size_t n, ar_ns *out);
/* "all", "stagger:250ms", "poisson:4/s", "trace" into buf. */
const char *arrival_name(const struct arrival *a, char *buf, size_t n);

#endif
