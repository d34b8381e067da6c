/* memfit: the memory line and the OOM projection, on exact, step-shaped and
 * spiky data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "memfit.h"

static void test_exact_line(void **st)
{
	(void)st;
	struct memfit_point p[10];
	for (int i = 0; i < 10; i++)
		p[i] = (struct memfit_point){1000.0 * i, 5e9 + 131072.0 * 1000 * i};
	struct memfit f;
	assert_int_equal(memfit_fit(p, 10, &f), 0);
	assert_true(f.ok);
	assert_true(fabs(f.slope - 131072) < 1e-6);
	assert_true(fabs(f.baseline - 5e9) < 1);
	assert_true(fabs(f.r2 - 1) < 1e-12);
	/* 12 GiB budget: (12 GiB - 5e9) / 131072 */
	double budget = 12.0 * 1073741824;
	assert_int_equal(memfit_oom_tokens(&f, budget), (int64_t)ceil((budget - 5e9) / 131072));
	assert_int_equal(memfit_oom_tokens(&f, 1e9), 0); /* already over */
}

/* A KV cache in 256-token pages and an arena that grabs 16 MiB at a time:
 * a staircase around the true slope. */
static void test_steps(void **st)
{
	(void)st;
	struct memfit_point p[40];
	const double b = 2048; /* bytes per token */
	for (int i = 0; i < 40; i++) {
		double x = 1500.0 + 2900.0 * i;
		double kv = ceil(x / 256) * 256 * b;
		double arena = ceil(kv / (16.0 * 1048576)) * 16.0 * 1048576; /* what the allocator holds */
		p[i] = (struct memfit_point){x, 300e6 + arena};
	}
	struct memfit f;
	assert_int_equal(memfit_fit(p, 40, &f), 0);
	assert_true(f.ok);
	assert_true(fabs(f.slope - b) / b < 0.05);
	assert_true(f.r2 > 0.95);
}

/* Transient spikes (a compute buffer during a long prefill) and a few
 * missing-sample points (the state before the request) must not drag the
 * line; least squares would. */
static void test_outliers(void **st)
{
	(void)st;
	struct memfit_point p[30];
	for (int i = 0; i < 30; i++)
		p[i] = (struct memfit_point){4000.0 * i, 1e9 + 1000.0 * 4000 * i};
	p[5].y += 2e9;
	p[17].y += 3e9;
	p[25].y = p[24].y; /* stood in by the previous turn's figure */
	p[3].y = NAN;      /* skipped */
	struct memfit f;
	assert_int_equal(memfit_fit(p, 30, &f), 0);
	assert_true(f.ok);
	assert_int_equal(f.points, 29);
	assert_true(fabs(f.slope - 1000) / 1000 < 0.02);
	assert_true(fabs(f.baseline - 1e9) / 1e9 < 0.02);
}

static void test_not_enough(void **st)
{
	(void)st;
	struct memfit f;
	struct memfit_point p[3] = {{100, 1}, {100, 2}, {100, 3}};
	assert_int_equal(memfit_fit(p, 2, &f), 0);
	assert_false(f.ok);
	assert_int_equal(memfit_fit(p, 3, &f), 0); /* one depth only */
	assert_false(f.ok);
	assert_int_equal(memfit_oom_tokens(&f, 1e9), -1);
	struct memfit_point flat[4] = {{1, 5}, {2, 5}, {3, 5}, {4, 5}};
	assert_int_equal(memfit_fit(flat, 4, &f), 0);
	assert_true(f.ok);
	assert_true(f.slope == 0);
	assert_true(isnan(f.r2));
	assert_int_equal(memfit_oom_tokens(&f, 1e9), -1); /* never grows: no OOM projected */
}

static void test_many_points(void **st)
{
	(void)st;
	static struct memfit_point p[5000];
	for (int i = 0; i < 5000; i++)
		p[i] = (struct memfit_point){(double)(i * 7 % 5000) * 10, 1e8 + 500.0 * (double)(i * 7 % 5000) * 10};
	struct memfit f;
	assert_int_equal(memfit_fit(p, 5000, &f), 0);
	assert_int_equal(f.points, MEMFIT_MAX_POINTS);
	assert_true(fabs(f.slope - 500) < 1e-6);
	assert_true(f.x_min == 0 && f.x_max == 49990);
}

static void test_turns(void **st)
{
	(void)st;
	int64_t t[5] = {0, 1, 2, 3, 4};
	double d[5] = {10000, 12000, 14000, 16000, 18000};
	assert_int_equal(memfit_project_turn(t, d, 5, 30000), 10); /* 18k + 6 x 2k */
	assert_int_equal(memfit_project_turn(t, d, 5, 30001), 11);
	assert_int_equal(memfit_project_turn(t, d, 5, 13000), 2); /* already reached */
	double flat[5] = {5000, 5000, 5000, 5000, 5000};
	assert_int_equal(memfit_project_turn(t, flat, 5, 9000), -1);
	assert_int_equal(memfit_project_turn(t, d, 0, 9000), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_line), cmocka_unit_test(test_steps),      cmocka_unit_test(test_outliers),
		cmocka_unit_test(test_not_enough), cmocka_unit_test(test_many_points), cmocka_unit_test(test_turns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
