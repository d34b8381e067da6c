/* report: statistics, number formatting, and the entry point. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_int.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y ? 1 : 0;
}

/* nearest-rank percentile of sorted values, p in [0, 100] */
double rpt_percentile(const double *sorted, size_t n, double p)
{
	if (!n)
		return NAN;
	double rank = ceil(p / 100.0 * (double)n);
	size_t k = rank < 1 ? 0 : (size_t)rank - 1;
	return sorted[k < n ? k : n - 1];
}

void rpt_stat_of(double *v, size_t n, struct rpt_stat *s)
{
	s->n = n;
	s->med = s->min = s->max = NAN;
	s->oom = false;
	if (!n)
		return;
	qsort(v, n, sizeof *v, cmp_double);
	s->min = v[0];
	s->max = v[n - 1];
	s->med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double metric(const struct rpt_req *r, enum rpt_metric k)
{
	switch (k) {
	case RM_TTFT: return r->ttft;
	case RM_DECODE: return r->decode;
	case RM_PREFILL: return r->prefill;
	case RM_MEM: return r->mem < 0 ? NAN : (double)r->mem;
	}
	return NAN;
}

struct rpt_stat rpt_cell(const struct rpt_model *m, const struct rpt_cfg *c, int cache, int t, enum rpt_metric k,
			 const char **why)
{
	struct rpt_stat s = {0, NAN, NAN, NAN, false};
	*why = NULL;
	if (c->tier[cache][t].turn < 0)
		return s;
	double *v = malloc((c->n ? c->n : 1) * sizeof *v);
	if (!v) {
		s.oom = true;
		return s;
	}
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct rpt_req *r = &m->req[c->first + i];
		if (r->cache != cache || !(r->tiers & (1u << t)))
			continue;
		double x = metric(r, k);
		if (r->done && !isnan(x))
			v[n++] = x;
		else if (r->failed && !*why)
			*why = r->outcome;
	}
	rpt_stat_of(v, n, &s);
	if (n)
		*why = NULL;
	free(v);
	return s;
}

struct rpt_stat rpt_deepest(const struct rpt_model *m, const struct rpt_cfg *c)
{
	struct rpt_stat s = {0, NAN, NAN, NAN, false};
	if (c->repeats <= 0 || c->repeats > 1000000)
		return s;
	double *v = malloc((size_t)c->repeats * sizeof *v);
	if (!v) {
		s.oom = true;
		return s;
	}
	for (int64_t k = 0; k < c->repeats; k++)
		v[k] = -1;
	for (size_t i = 0; i < c->n; i++) {
		const struct rpt_req *r = &m->req[c->first + i];
		if (r->done && r->repeat >= 0 && r->depth > v[r->repeat])
			v[r->repeat] = (double)r->depth;
	}
	size_t n = 0;
	for (int64_t k = 0; k < c->repeats; k++)
		if (v[k] >= 0)
			v[n++] = v[k];
	rpt_stat_of(v, n, &s);
	free(v);
	return s;
}

/* powers of two: tokens from 256 up to 64 buckets, turns from 1 up to 200 */
double rpt_bucket_width(double xmax, bool by_turn)
{
	double w = by_turn ? 1 : 256, most = by_turn ? 200 : 64;
	while (xmax / w > most && w < 1e15)
		w *= 2;
	return w;
}

struct bpt {
	double b, x, y; /* bucket index, x, value */
};

static int cmp_bpt(const void *a, const void *b)
{
	const struct bpt *p = a, *q = b;
	if (p->b != q->b)
		return p->b < q->b ? -1 : 1;
	return p->y < q->y ? -1 : p->y > q->y ? 1 : 0;
}

long rpt_series(const struct rpt_model *m, const struct rpt_cfg *c, enum rpt_metric k, bool by_turn, double width,
		struct rpt_pt **out)
{
	*out = NULL;
	if (!(width > 0))
		width = 1;
	struct bpt *p = malloc((c->n ? c->n : 1) * sizeof *p);
	if (!p)
		return -1;
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct rpt_req *r = &m->req[c->first + i];
		double v = metric(r, k);
		bool usable = k == RM_MEM ? r->mem >= 0 : (r->done && r->cache == RQ_WARM && v > 0);
		double x = by_turn ? (double)r->turn : (double)r->depth;
		if (!usable || isnan(v) || x < 0)
			continue;
		p[n++] = (struct bpt){floor(x / width), x, v};
	}
	if (!n) {
		free(p);
		return 0;
	}
	struct rpt_pt *q = malloc(n * sizeof *q);
	if (!q) {
		free(p);
		return -1;
	}
	qsort(p, n, sizeof *p, cmp_bpt);
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		double sx = 0;
		while (j < n && p[j].b == p[i].b)
			sx += p[j++].x;
		/* p[i..j) is sorted by value: median, min and max read off it */
		size_t cnt = j - i, mid = i + cnt / 2;
		q[o++] = (struct rpt_pt){sx / (double)cnt, cnt % 2 ? p[mid].y : (p[mid - 1].y + p[mid].y) / 2, p[i].y,
					 p[j - 1].y, cnt};
		i = j;
	}
	free(p);
	*out = q;
	return (long)o;
}

int rpt_inflight_bucket(int64_t f)
{
	if (f <= 1)
		return 0;
	int b = 1;
	int64_t hi = 2;
	while (f > hi && b < 40) {
		hi *= 2;
		b++;
	}
	return b;
}

double rpt_inflight_hit(const struct rpt_model *m, const struct rpt_cfg *c, int b)
{
	int64_t prompt = 0, cached = 0;
	for (size_t k = 0; k < c->n; k++) {
		const struct rpt_req *r = &m->req[c->first + k];
		if (r->done && r->cache == RQ_WARM && r->in_flight >= 1 && rpt_inflight_bucket(r->in_flight) == b &&
		    r->prompt > 0 && r->cached >= 0 && r->cached <= r->prompt) {
			prompt += r->prompt;
			cached += r->cached;
		}
	}
	return prompt > 0 ? (double)cached / (double)prompt : NAN;
}

void rpt_inflight_label(int b, char *out, size_t n)
{
	if (b <= 1)
		snprintf(out, n, "%d", b + 1);
	else
		snprintf(out, n, "%lld-%lld", (1LL << (b - 1)) + 1, 1LL << b);
}

void rpt_fmt_ms(double v, char *out, size_t n)
{
	if (isnan(v))
		snprintf(out, n, "-");
	else if (v < 10)
		snprintf(out, n, "%.1f", v);
	else
		snprintf(out, n, "%.0f", v);
}

void rpt_fmt_rate(double v, char *out, size_t n)
{
	if (isnan(v))
		snprintf(out, n, "-");
	else
		snprintf(out, n, "%.1f", v);
}

void rpt_fmt_bytes(double v, char *out, size_t n)
{
	if (isnan(v) || v < 0)
		snprintf(out, n, "-");
	else if (v >= 1024.0 * 1024 * 1024)
		snprintf(out, n, "%.2f GiB", v / (1024.0 * 1024 * 1024));
	else
		snprintf(out, n, "%.0f MiB", v / (1024.0 * 1024));
}

void rpt_fmt_tokens(int64_t v, char *out, size_t n)
{
	if (v < 0)
		snprintf(out, n, "-");
	else
		snprintf(out, n, "%lld", (long long)v);
}

void rpt_fmt_ratio(double v, char *out, size_t n)
{
	if (isnan(v) || isinf(v))
		snprintf(out, n, "-");
	else if (v < 10)
		snprintf(out, n, "%.2fx", v);
	else
		snprintf(out, n, "%.0fx", v);
}

int report_write(sqlite3 *db, const struct report_opts *o, FILE *out, struct ar_err *err)
{
	struct rpt_model m;
	bool rows = o->format == REPORT_TEXT || o->format == REPORT_MD || o->format == REPORT_HTML;
	int rc = report_model_load(db, o, rows, &m, err);
	if (rc == 0) {
		switch (o->format) {
		case REPORT_TEXT: rc = report_text(&m, false, out, err); break;
		case REPORT_MD: rc = report_text(&m, true, out, err); break;
		case REPORT_CSV: rc = report_csv(db, &m, out, err); break;
		case REPORT_JSON: rc = report_json(db, &m, out, err); break;
		case REPORT_HTML: rc = report_html(db, &m, out, err); break;
		}
	}
	if (rc == 0 && (fflush(out) != 0 || ferror(out)))
		rc = ar_err_set(err, AR_EIO, "cannot write the report: %s", strerror(errno));
	report_model_free(&m);
	return rc;
}
