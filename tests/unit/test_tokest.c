/* Unit tests: the token estimator against real tokenizer counts.
 *
 * tests/data/tokcal/counts.tsv holds the token counts of Llama-3, Qwen2 and
 * GPT-4o (o200k) tokenizers for each sample text beside it (made by
 * tests/real/tokcount.sh). The estimate must land within +-10% of each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokest.h"

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *p = malloc((size_t)len + 1);
	*n = fread(p, 1, (size_t)len, f);
	p[*n] = 0;
	fclose(f);
	return p;
}

static void test_basics(void **state)
{
	assert_int_equal(tokest_text("", 0), 0);
	assert_true(tokest_text("a", 1) >= 1);
	const char *s = "The quick brown fox jumps over the lazy dog.";
	int64_t t = tokest_text(s, strlen(s));
	assert_true(t >= 9 && t <= 12); /* real tokenizers: 10 */
	/* additive across word boundaries (within rounding) */
	int64_t a = tokest_text(s, 20), b = tokest_text(s + 20, strlen(s) - 20);
	assert_true(llabs(a + b - t) <= 2);
}

static void test_against_real_tokenizers(void **state)
{
	char path[512];
	snprintf(path, sizeof path, "%s/tokcal/counts.tsv", AR_TEST_DATA);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("missing %s", path);
	char line[1024];
	int rows = 0, bad = 0;
	double worst = 0;
	const char *names[3] = {"llama3", "qwen2", "o200k"};
	assert_non_null(fgets(line, sizeof line, f)); /* header */
	print_message("%-22s %8s %8s %8s %8s  errors\n", "sample", "est", "llama3", "qwen2", "o200k");
	while (fgets(line, sizeof line, f)) {
		char file[256];
		long bytes, chars, real[3];
		if (sscanf(line, "%255s %ld %ld %ld %ld %ld", file, &bytes, &chars, &real[0], &real[1], &real[2]) != 6)
			continue;
		snprintf(path, sizeof path, "%s/tokcal/%s", AR_TEST_DATA, file);
		size_t n = 0;
		char *text = slurp(path, &n);
		if (!text)
			fail_msg("missing sample %s", path);
		int64_t est = tokest_text(text, n);
		free(text);
		char errs[128] = "";
		for (int k = 0; k < 3; k++) {
			double e = (double)(est - real[k]) / (double)real[k];
			if (fabs(e) > worst)
				worst = fabs(e);
			if (fabs(e) > 0.10) {
				bad++;
				print_message("  %s vs %s: %+.1f%%\n", file, names[k], 100 * e);
			}
			snprintf(errs + strlen(errs), sizeof errs - strlen(errs), " %+5.1f%%", 100 * e);
		}
		print_message("%-22s %8lld %8ld %8ld %8ld %s\n", file, (long long)est, real[0], real[1], real[2], errs);
		rows++;
	}
	fclose(f);
	print_message("%d samples, worst error %.1f%%\n", rows, 100 * worst);
	assert_true(rows >= 50);
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics),
		cmocka_unit_test(test_against_real_tokenizers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
