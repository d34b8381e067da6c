#include "arrival.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rng.h"
#include "units.h"

int arrival_parse(const char *s, struct arrival *out, struct ar_err *err)
{
	memset(out, 0, sizeof *out);
	if (!strcmp(s, "all")) {
		out->kind = ARRIVAL_ALL;
		return 0;
	}
	if (!strcmp(s, "trace")) {
		out->kind = ARRIVAL_TRACE;
		return 0;
	}
	if (!strncmp(s, "stagger:", 8)) {
		int64_t ns;
		if (units_parse_duration_ns(s + 8, &ns, err) < 0)
			return ar_err_prefix(err, "--arrival '%s'", s);
		if (ns < 0)
			return ar_err_set(err, AR_EINVAL, "--arrival '%s': the stagger must be >= 0", s);
		out->kind = ARRIVAL_STAGGER;
		out->stagger = ns;
		return 0;
	}
	if (!strncmp(s, "poisson:", 8)) {
		double r;
		const char *v = s + 8;
		char num[64];
		size_t len = strlen(v);
		/* "4", "4/s" */
		if (len > 2 && !strcmp(v + len - 2, "/s"))
			len -= 2;
		if (len == 0 || len >= sizeof num)
			return ar_err_set(err, AR_EINVAL, "--arrival '%s': the rate is not a number of sessions per second", s);
		memcpy(num, v, len);
		num[len] = '\0';
		if (units_parse_real(num, &r, err) < 0)
			return ar_err_prefix(err, "--arrival '%s'", s);
		if (!(r > 0) || r > 1e6)
			return ar_err_set(err, AR_EINVAL, "--arrival '%s': the rate must be > 0 and at most 1e6 per second", s);
		out->kind = ARRIVAL_POISSON;
		out->rate = r;
		return 0;
	}
	return ar_err_set(err, AR_EINVAL, "--arrival '%s' is not all, stagger:DURATION, poisson:RATE or trace", s);
}

void arrival_schedule(const struct arrival *a, uint64_t seed, size_t n, ar_ns *out)
{
	struct rng g;
	rng_seed(&g, seed);
	double t = 0;
	for (size_t i = 0; i < n; i++) {
		switch (a->kind) {
		case ARRIVAL_ALL:
		case ARRIVAL_TRACE: out[i] = 0; break;
		case ARRIVAL_STAGGER: out[i] = (ar_ns)i * a->stagger; break;
		case ARRIVAL_POISSON:
			/* the first session at 0, then exponential gaps */
			if (i > 0) {
				double u = rng_unit(&g); /* [0, 1) */
				t += -log1p(-u) / a->rate;
			}
			out[i] = (ar_ns)llround(t * 1e9);
			break;
		}
	}
}

const char *arrival_name(const struct arrival *a, char *buf, size_t n)
{
	switch (a->kind) {
	case ARRIVAL_ALL: snprintf(buf, n, "all"); break;
	case ARRIVAL_TRACE: snprintf(buf, n, "trace"); break;
	case ARRIVAL_STAGGER: snprintf(buf, n, "stagger:%.6gms", (double)a->stagger / 1e6); break;
	case ARRIVAL_POISSON: snprintf(buf, n, "poisson:%g/s", a->rate); break;
	}
	return buf;
}
