#include "gen_dist.h"

#include <math.h>
#include <string.h>

/* 2^(i/64) in Q30, i = 0..64. */
static const uint32_t exp2_q30[65] = {
	1073741824u, 1085434106u, 1097253708u, 1109202018u, 1121280436u, 1133490379u, 1145833280u, 1158310587u,
	1170923762u, 1183674286u, 1196563654u, 1209593378u, 1222764986u, 1236080024u, 1249540052u, 1263146652u,
	1276901417u, 1290805962u, 1304861917u, 1319070932u, 1333434672u, 1347954824u, 1362633090u, 1377471191u,
	1392470869u, 1407633882u, 1422962010u, 1438457051u, 1454120821u, 1469955159u, 1485961921u, 1502142985u,
	1518500250u, 1535035634u, 1551751076u, 1568648537u, 1585730000u, 1602997467u, 1620452965u, 1638098541u,
	1655936265u, 1673968228u, 1692196547u, 1710623359u, 1729250827u, 1748081133u, 1767116489u, 1786359126u,
	1805811301u, 1825475297u, 1845353420u, 1865448001u, 1885761398u, 1906295993u, 1927054196u, 1948038440u,
	1969251188u, 1990694927u, 2012372174u, 2034285470u, 2056437387u, 2078830522u, 2101467502u, 2124350982u,
	2147483648u,
};

#define LOG2E_Q16 94548 /* log2(e) * 65536 */
#define SAT (INT64_MAX / 4)

int64_t gen_exp_scale(int64_t v, int64_t x_q16)
{
	if (v <= 0)
		return 0;
	if (x_q16 > 20 * 65536)
		x_q16 = 20 * 65536;
	if (x_q16 < -20 * 65536)
		x_q16 = -20 * 65536;
	/* y = x * log2(e) in Q32; split into an integer k and a fraction f */
	int64_t y = x_q16 * LOG2E_Q16;
	int64_t k = y / 4294967296LL;
	if (y < 0 && k * 4294967296LL != y)
		k--; /* floor, without shifting a negative number */
	uint64_t f = (uint64_t)(y - k * 4294967296LL); /* [0, 2^32) */
	unsigned idx = (unsigned)(f >> 26);
	uint64_t frac = f & ((1u << 26) - 1);
	uint64_t m = exp2_q30[idx] + (((uint64_t)(exp2_q30[idx + 1] - exp2_q30[idx]) * frac) >> 26);
	/* v * m * 2^(k - 30), rounded; v is cut to 31 bits so v * m fits in 63 */
	int shift = (int)k - 30;
	uint64_t vv = (uint64_t)v;
	while (vv >= (1ull << 31)) {
		vv >>= 1;
		shift++;
	}
	uint64_t p = vv * m;
	if (shift >= 0)
		return shift > 62 || p > ((uint64_t)SAT >> shift) ? SAT : (int64_t)(p << shift);
	int s = -shift;
	if (s > 62)
		return 0;
	return (int64_t)((p + (1ull << (s - 1))) >> s);
}

/* Irwin-Hall sum of 12 uniforms: mean 0, variance 1, in Q16. */
static int64_t normal_q16(struct rng *r)
{
	int64_t s = 0;
	for (int i = 0; i < 12; i++)
		s += (int64_t)(rng_next(r) >> 48);
	return s - 6 * 65536;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

int64_t gen_dist_sample_scaled(const struct gen_dist *d, struct rng *r, int64_t num, int64_t den)
{
	int64_t v;
	switch (d->kind) {
	case GEN_DIST_UNIFORM:
		v = d->min + (int64_t)rng_below(r, (uint64_t)(d->max - d->min + 1));
		break;
	case GEN_DIST_LOGNORMAL: {
		int64_t z = normal_q16(r);
		v = gen_exp_scale(d->median, (int64_t)d->sigma_q16 * z / 65536);
		break;
	}
	default:
		v = d->median;
		break;
	}
	if (num != den && den > 0) {
		/* scale with rounding; values stay far below 2^40 */
		v = (v * num + den / 2) / den;
	}
	return clamp(v, d->min, d->max);
}

int64_t gen_dist_sample(const struct gen_dist *d, struct rng *r)
{
	return gen_dist_sample_scaled(d, r, 1, 1);
}

struct gen_dist gen_dist_fixed(int64_t v)
{
	struct gen_dist d = {GEN_DIST_FIXED, v, 0, v, v};
	return d;
}

bool gen_chance(struct rng *r, gen_prob p)
{
	if (p <= 0)
		return false;
	if (p >= GEN_PROB_ONE)
		return true;
	return (int64_t)(rng_next(r) >> 48) < p;
}

int gen_pick(struct rng *r, const int64_t *w, int n)
{
	int64_t total = 0;
	for (int i = 0; i < n; i++)
		total += w[i] > 0 ? w[i] : 0;
	if (total <= 0)
		return -1;
	int64_t x = (int64_t)rng_below(r, (uint64_t)total);
	for (int i = 0; i < n; i++) {
		if (w[i] <= 0)
			continue;
		if (x < w[i])
			return i;
		x -= w[i];
	}
	return n - 1;
}

static int num_member(const struct config_doc *doc, const cJSON *obj, const char *name, int required,
		      int64_t scale, int64_t lo, int64_t *out, struct ar_err *err)
{
	double x = 0;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!v && !required)
		return 0;
	if (config_get_num(doc, obj, name, required, 0, 1e12, &x, err) < 0)
		return -1;
	int64_t s = (int64_t)llround(x * (double)scale);
	if (s < lo)
		return config_error(doc, v, name, err, "must be at least %g", (double)lo / (double)scale);
	*out = s;
	return 0;
}

int gen_dist_parse(const struct config_doc *doc, const cJSON *v, const char *field, int64_t scale, int64_t lo,
		   struct gen_dist *out, struct ar_err *err)
{
	memset(out, 0, sizeof *out);
	if (cJSON_IsNumber(v)) {
		if (!(v->valuedouble >= 0 && v->valuedouble <= 1e12))
			return config_error(doc, v, field, err, "must be a number from 0 to 1e12");
		int64_t x = (int64_t)llround(v->valuedouble * (double)scale);
		if (x < lo)
			return config_error(doc, v, field, err, "must be at least %g", (double)lo / (double)scale);
		*out = gen_dist_fixed(x);
		return 0;
	}
	if (!cJSON_IsObject(v))
		return config_error(doc, v, field, err,
				    "expected a number or a distribution {median, sigma, min, max}");
	for (const cJSON *m = v->child; m; m = m->next)
		if (strcmp(m->string, "median") && strcmp(m->string, "sigma") && strcmp(m->string, "min") &&
		    strcmp(m->string, "max") && strcmp(m->string, "basis"))
			return config_error(doc, m, field, err, "unknown member '%s' (median, sigma, min, max, basis)",
					    m->string);
	bool has_median = cJSON_GetObjectItemCaseSensitive(v, "median") != NULL;
	out->min = lo;
	out->max = INT64_MAX / 8;
	if (num_member(doc, v, "min", 0, scale, lo, &out->min, err) < 0 ||
	    num_member(doc, v, "max", 0, scale, lo, &out->max, err) < 0)
		return -1;
	if (!has_median) {
		if (!cJSON_GetObjectItemCaseSensitive(v, "min") || !cJSON_GetObjectItemCaseSensitive(v, "max"))
			return config_error(doc, v, field, err, "needs median (log-normal) or min and max (uniform)");
		out->kind = GEN_DIST_UNIFORM;
	} else {
		double sigma = 0;
		if (num_member(doc, v, "median", 1, scale, lo, &out->median, err) < 0 ||
		    config_get_num(doc, v, "sigma", 0, 0, 3, &sigma, err) < 0)
			return -1;
		out->sigma_q16 = (int32_t)llround(sigma * 65536.0);
		out->kind = out->sigma_q16 ? GEN_DIST_LOGNORMAL : GEN_DIST_FIXED;
		if (out->median < out->min || out->median > out->max)
			return config_error(doc, v, field, err, "median is outside [min, max]");
	}
	if (out->min > out->max)
		return config_error(doc, v, field, err, "min is larger than max");
	return 0;
}

int gen_prob_parse(const struct config_doc *doc, const cJSON *obj, const char *field, gen_prob *out,
		   struct ar_err *err)
{
	double p = -1;
	if (!cJSON_GetObjectItemCaseSensitive(obj, field))
		return 0;
	if (config_get_num(doc, obj, field, 0, 0, 1, &p, err) < 0)
		return -1;
	*out = (gen_prob)llround(p * 65536.0);
	return 0;
}
