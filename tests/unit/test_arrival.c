/* arrival: parsing and the schedules (stagger exact, seeded Poisson). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arrival.h"

static void test_parse(void **state)
{
	(void)state;
	struct arrival a;
	struct ar_err err = {0};
	assert_int_equal(arrival_parse("all", &a, &err), 0);
	assert_int_equal(a.kind, ARRIVAL_ALL);
	assert_int_equal(arrival_parse("trace", &a, &err), 0);
	assert_int_equal(a.kind, ARRIVAL_TRACE);
	assert_int_equal(arrival_parse("stagger:250ms", &a, &err), 0);
	assert_int_equal(a.kind, ARRIVAL_STAGGER);
	assert_int_equal(a.stagger, 250 * AR_NS_PER_MS);
	assert_int_equal(arrival_parse("poisson:4", &a, &err), 0);
	assert_int_equal(a.kind, ARRIVAL_POISSON);
	assert_true(a.rate == 4.0);
	assert_int_equal(arrival_parse("poisson:2.5/s", &a, &err), 0);
	assert_true(a.rate == 2.5);
	static const char *const bad[] = {"", "some", "stagger:", "stagger:fast", "poisson:", "poisson:0", "poisson:-3",
					  "poisson:x/s", "stagger:-1s", "all:1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&err, 0, sizeof err);
		assert_int_equal(arrival_parse(bad[i], &a, &err), -1);
		assert_non_null(strstr(err.msg, "arrival"));
	}
}

static void test_stagger_exact(void **state)
{
	(void)state;
	struct arrival a = {ARRIVAL_STAGGER, 7 * AR_NS_PER_MS, 0};
	ar_ns t[100];
	arrival_schedule(&a, 1, 100, t);
	for (int i = 0; i < 100; i++)
		assert_int_equal(t[i], (ar_ns)i * 7 * AR_NS_PER_MS);
	struct arrival all = {ARRIVAL_ALL, 0, 0};
	arrival_schedule(&all, 1, 100, t);
	for (int i = 0; i < 100; i++)
		assert_int_equal(t[i], 0);
}

static void test_poisson(void **state)
{
	(void)state;
	enum { N = 20000 };
	struct arrival a = {ARRIVAL_POISSON, 0, 50.0}; /* mean gap 20 ms */
	ar_ns *t = malloc(N * sizeof *t), *u = malloc(N * sizeof *u);
	assert_non_null(t);
	assert_non_null(u);
	arrival_schedule(&a, 42, N, t);
	assert_int_equal(t[0], 0);
	double sum = 0, sum2 = 0;
	for (int i = 1; i < N; i++) {
		assert_true(t[i] >= t[i - 1]);
		double g = (double)(t[i] - t[i - 1]) / 1e9;
		sum += g;
		sum2 += g * g;
	}
	double mean = sum / (N - 1), sd = sqrt(sum2 / (N - 1) - mean * mean);
	/* exponential: mean = sd = 1/rate; 20000 gaps put the mean within ~0.7% (1 sigma) */
	assert_true(fabs(mean - 0.02) < 0.02 * 0.03);
	assert_true(fabs(sd - 0.02) < 0.02 * 0.05);
	/* the same seed gives the same schedule; another seed another one */
	arrival_schedule(&a, 42, N, u);
	assert_memory_equal(t, u, N * sizeof *t);
	arrival_schedule(&a, 43, N, u);
	assert_true(memcmp(t, u, N * sizeof *t) != 0);
	free(t);
	free(u);
}

static void test_name(void **state)
{
	(void)state;
	char b[64];
	struct arrival a = {ARRIVAL_STAGGER, 250 * AR_NS_PER_MS, 0};
	assert_string_equal(arrival_name(&a, b, sizeof b), "stagger:250ms");
	struct arrival p = {ARRIVAL_POISSON, 0, 4};
	assert_string_equal(arrival_name(&p, b, sizeof b), "poisson:4/s");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_stagger_exact),
		cmocka_unit_test(test_poisson),
		cmocka_unit_test(test_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
