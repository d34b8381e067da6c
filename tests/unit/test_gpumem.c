/* gpumem: NVML absent, present and failing, present and working (a fake
 * libnvidia-ml built by the tests), and nvidia-smi's CSV. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpumem.h"

static void test_absent(void **st)
{
	(void)st;
	struct gpumem *g;
	assert_int_equal(gpumem_open(&g, "/nonexistent/libnvidia-ml.so.1", ""), 0);
	assert_int_equal(gpumem_mode(g), GPUMEM_NONE);
	assert_string_equal(gpumem_note(g), ""); /* absent is not worth a note */
	int64_t pid = getpid(), tot;
	assert_int_equal(gpumem_sample(g, &pid, 1, &tot), -1);
	assert_int_equal(tot, -1);
	gpumem_free(g);
	gpumem_free(NULL);
}

static void test_failing(void **st)
{
	(void)st;
	setenv("FAKE_NVML", "fail", 1);
	struct gpumem *g;
	assert_int_equal(gpumem_open(&g, FAKE_NVML_LIB, ""), 0);
	assert_int_equal(gpumem_mode(g), GPUMEM_NONE);
	assert_non_null(strstr(gpumem_note(g), "failed to initialise: Driver Not Loaded"));
	gpumem_free(g);
	/* the nvidia-smi fallback: a program that is not there leaves the column empty */
	assert_int_equal(gpumem_open(&g, FAKE_NVML_LIB, "/nonexistent/nvidia-smi"), 0);
	assert_int_equal(gpumem_mode(g), GPUMEM_NONE);
	gpumem_free(g);
	unsetenv("FAKE_NVML");
}

static void test_working(void **st)
{
	(void)st;
	struct gpumem *g;
	assert_int_equal(gpumem_open(&g, FAKE_NVML_LIB, ""), 0);
	assert_int_equal(gpumem_mode(g), GPUMEM_NVML);
	int64_t pids[2] = {getpid(), 424242}, tot;
	assert_int_equal(gpumem_sample(g, pids, 2, &tot), 1LL << 30); /* only ours, not PID 1's */
	assert_int_equal(tot, 80LL << 30);
	int64_t other = 424242;
	assert_int_equal(gpumem_sample(g, &other, 1, &tot), 0);
	gpumem_free(g);
}

static void test_smi_csv(void **st)
{
	(void)st;
	int64_t pids[2] = {1234, 99}, sum;
	const char *ok = "1234, 512\n5678, 1024\n99, 2\n";
	assert_int_equal(gpumem_parse_smi(ok, strlen(ok), pids, 2, &sum), 3);
	assert_int_equal(sum, 514LL << 20);
	const char *na = "1234, [N/A]\n5678, 100\n";
	assert_int_equal(gpumem_parse_smi(na, strlen(na), pids, 2, &sum), 1);
	assert_int_equal(sum, 0);
	assert_int_equal(gpumem_parse_smi("", 0, pids, 2, &sum), 0);
	const char *junk = "<html><body>NVIDIA-SMI has failed</body></html>\n";
	assert_int_equal(gpumem_parse_smi(junk, strlen(junk), pids, 2, &sum), -1);
	const char *crlf = "1234, 7\r\n";
	assert_int_equal(gpumem_parse_smi(crlf, strlen(crlf), pids, 2, &sum), 1);
	assert_int_equal(sum, 7LL << 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_absent),
		cmocka_unit_test(test_failing),
		cmocka_unit_test(test_working),
		cmocka_unit_test(test_smi_csv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
