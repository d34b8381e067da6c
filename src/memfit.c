#include "memfit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int cmp_pt(const void *a, const void *b)
{
	const struct memfit_point *p = a, *q = b;
	return p->x < q->x ? -1 : p->x > q->x ? 1 : cmp_d(&p->y, &q->y);
}

/* The k-th smallest of v[0..n) (Hoare's selection, median-of-three pivot):
 * O(n) on average where a sort is O(n log n); v is reordered. */
static double select_k(double *v, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		double a = v[lo], b = v[mid], c = v[hi];
		double pv = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
		size_t i = lo, j = hi;
		while (i <= j) {
			while (v[i] < pv)
				i++;
			while (v[j] > pv)
				j--;
			if (i <= j) {
				double t = v[i];
				v[i] = v[j];
				v[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return v[k];
	}
	return v[k];
}

static double median(double *v, size_t n)
{
	double hi = select_k(v, n, n / 2);
	if (n % 2)
		return hi;
	/* the lower middle is the largest of what select_k left below n/2 */
	double lo = v[0];
	for (size_t i = 1; i < n / 2; i++)
		if (v[i] > lo)
			lo = v[i];
	return (lo + hi) / 2;
}

/* Theil-Sen slope and intercept of (x[i], y[i]); false when no pair has
 * distinct x. */
static int theil_sen(const double *x, const double *y, size_t n, double *slope, double *icpt, bool *ok)
{
	*ok = false;
	size_t np = n * (n - 1) / 2, k = 0;
	double *s = malloc((np ? np : 1) * sizeof *s);
	double *r = malloc((n ? n : 1) * sizeof *r);
	if (!s || !r) {
		free(s);
		free(r);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (x[j] != x[i])
				s[k++] = (y[j] - y[i]) / (x[j] - x[i]);
	if (k) {
		*slope = median(s, k);
		for (size_t i = 0; i < n; i++)
			r[i] = y[i] - *slope * x[i];
		*icpt = median(r, n);
		*ok = true;
	}
	free(s);
	free(r);
	return 0;
}

int memfit_fit(const struct memfit_point *p, size_t n, struct memfit *out)
{
	memset(out, 0, sizeof *out);
	out->r2 = NAN;
	struct memfit_point *v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		return -1;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (isfinite(p[i].x) && isfinite(p[i].y))
			v[m++] = p[i];
	qsort(v, m, sizeof *v, cmp_pt);
	if (m > MEMFIT_MAX_POINTS) {
		/* evenly spaced by rank of depth, both ends kept */
		for (size_t i = 0; i < MEMFIT_MAX_POINTS; i++)
			v[i] = v[(size_t)((double)i * (double)(m - 1) / (MEMFIT_MAX_POINTS - 1))];
		m = MEMFIT_MAX_POINTS;
	}
	out->points = m;
	if (m < 3 || v[0].x == v[m - 1].x) {
		free(v);
		return 0;
	}
	out->x_min = v[0].x;
	out->x_max = v[m - 1].x;
	double *x = malloc(m * sizeof *x), *y = malloc(m * sizeof *y);
	int rc = -1;
	if (!x || !y)
		goto out;
	for (size_t i = 0; i < m; i++) {
		x[i] = v[i].x;
		y[i] = v[i].y;
	}
	bool ok;
	if (theil_sen(x, y, m, &out->slope, &out->baseline, &ok) < 0)
		goto out;
	out->ok = ok;
	double mean = 0, ssr = 0, sst = 0;
	for (size_t i = 0; i < m; i++)
		mean += y[i];
	mean /= (double)m;
	for (size_t i = 0; i < m; i++) {
		double e = y[i] - (out->baseline + out->slope * x[i]);
		ssr += e * e;
		sst += (y[i] - mean) * (y[i] - mean);
	}
	out->r2 = sst > 0 ? 1 - ssr / sst : NAN;
	rc = 0;
out:
	free(x);
	free(y);
	free(v);
	return rc;
}

int64_t memfit_oom_tokens(const struct memfit *f, double budget)
{
	if (!f->ok || !(f->slope > 0) || !isfinite(budget))
		return -1;
	if (f->baseline >= budget)
		return 0;
	double t = (budget - f->baseline) / f->slope;
	return t > 9e15 ? -1 : (int64_t)ceil(t);
}

int64_t memfit_project_turn(const int64_t *turns, const double *depths, size_t n, double target)
{
	if (!n || target < 0)
		return -1;
	size_t last = 0;
	for (size_t i = 0; i < n; i++) {
		if (depths[i] >= target) {
			int64_t best = turns[i];
			for (size_t j = 0; j < n; j++)
				if (depths[j] >= target && turns[j] < best)
					best = turns[j];
			return best;
		}
		if (turns[i] > turns[last])
			last = i;
	}
	double *x = malloc(n * sizeof *x);
	if (!x)
		return -1;
	for (size_t i = 0; i < n; i++)
		x[i] = (double)turns[i];
	double slope = 0, icpt = 0;
	bool ok = false;
	int rc = theil_sen(x, depths, n, &slope, &icpt, &ok);
	free(x);
	if (rc < 0 || !ok || !(slope > 0))
		return -1;
	double more = ceil((target - depths[last]) / slope);
	return more > 1e12 ? -1 : turns[last] + (int64_t)more;
}
