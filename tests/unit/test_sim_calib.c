/* Calibration test of the simulated backend: every published point of
 * shared/calibration/README.md within +-25% (the error table is printed),
 * the llama-server measurements of shared/REAL-BACKEND.md that were not
 * fitted within +-50% (the real tier's rule), and the hardware fit that the
 * real tier uses recovering a known profile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

#define PROFILES AR_SOURCE_DIR "/replay/sim/profiles"

static void test_published_points(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct ar_err err = {0};
	assert_int_equal(sim_catalog_new(&cat, PROFILES, &err), 0);
	struct sim_calib_row *rows = NULL;
	int n = sim_calib_published(cat, &rows, &err);
	if (n < 0)
		fail_msg("%s", err.msg);
	printf("calibration (shared/calibration/README.md), tolerance +-25%%\n");
	printf("%-13s %-66s %-11s %9s %9s %7s\n", "figure", "config", "prompt", "published", "model", "error");
	double worst = 0;
	int bad = 0;
	for (int i = 0; i < n; i++) {
		printf("%-13s %-66s %-11s %9.1f %9.1f %+6.1f%%\n", rows[i].what, rows[i].config, rows[i].prompt,
		       rows[i].published, rows[i].predicted, rows[i].error * 100);
		if (fabs(rows[i].error) > worst)
			worst = fabs(rows[i].error);
		bad += fabs(rows[i].error) > 0.25;
	}
	printf("%d points, worst error %.1f%%\n", n, worst * 100);
	free(rows);
	sim_catalog_free(cat);
	assert_true(n >= 25);
	assert_int_equal(bad, 0);
}

/* REAL-BACKEND.md: llama-bench and cold TTFT figures of the random-weight
 * Qwen2 models that the cpu-2core fit did not use. */
struct rb {
	const char *model, *quant;
	char kind; /* 'p' prefill tok/s, 'd' decode tok/s, 'c' cold TTFT s, 'm' RSS MiB */
	int64_t tokens, depth, ctx;
	double value;
};
static const struct rb rbs[] = {
	{"qwen2-micro-random", "f16", 'p', 2048, 0, 32768, 16100},
	{"qwen2-tiny-random", "f16", 'p', 2048, 0, 32768, 9150},
	{"qwen2-small-random", "f16", 'p', 2048, 0, 32768, 1870},
	{"qwen2-small-random", "q8_0", 'p', 512, 0, 32768, 3400},
	{"qwen2-small-random", "q8_0", 'p', 2048, 0, 32768, 2080},
	{"qwen2-small-random", "q8_0", 'd', 128, 0, 32768, 240},
	{"qwen2-small-random", "q8_0", 'p', 512, 8192, 32768, 373},
	{"qwen2-small-random", "q8_0", 'd', 128, 8192, 32768, 86},
	{"qwen2-micro-random", "f16", 'c', 8048, 0, 32768, 1.16},
	{"qwen2-micro-random", "f16", 'c', 30052, 0, 32768, 16.3},
	{"qwen2-tiny-random", "f16", 'c', 8048, 0, 32768, 2.54},
	{"qwen2-tiny-random", "f16", 'c', 30049, 0, 32768, 26.9},
	{"qwen2-tiny-random", "f16", 'c', 60031, 0, 131072, 125.5},
	{"qwen2-small-random", "f16", 'c', 8045, 0, 32768, 9.06},
	{"qwen2-small-random", "f16", 'c', 30052, 0, 32768, 105.6},
	{"qwen2-small-random", "q8_0", 'c', 8049, 0, 32768, 8.07},
	{"qwen2-micro-random", "f16", 'm', 0, 0, 4096, 103},
	{"qwen2-tiny-random", "f16", 'm', 0, 0, 32768, 170},
	{"qwen2-tiny-random", "f16", 'm', 0, 0, 131072, 362},
	{"qwen2-small-random", "f16", 'm', 0, 0, 131072, 772},
	{"qwen2-small-random", "q8_0", 'm', 0, 0, 131072, 681},
};

static void test_real_backend_holdout(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct ar_err err = {0};
	assert_int_equal(sim_catalog_new(&cat, PROFILES, &err), 0);
	printf("held out (shared/REAL-BACKEND.md, cpu-2core + llama-server), tolerance +-50%%\n");
	int bad = 0;
	for (size_t i = 0; i < sizeof rbs / sizeof *rbs; i++) {
		const struct rb *b = &rbs[i];
		char spec[256];
		snprintf(spec, sizeof spec, "hw=cpu-2core,engine=llama-server,kv=f16,model=%s,quant=%s,ctx=%lld", b->model,
			 b->quant, (long long)b->ctx);
		struct sim *s = NULL;
		if (sim_new_in(&s, cat, spec, &err) < 0)
			fail_msg("%s", err.msg);
		double v = 0, p50, p99;
		const char *what = "";
		if (b->kind == 'p') {
			v = (double)b->tokens / (sim_prefill_ms(s, b->tokens, b->depth) / 1e3);
			what = "prefill tok/s";
		} else if (b->kind == 'd') {
			v = (double)b->tokens / (sim_decode_ms(s, b->depth, b->tokens + 1, &p50, &p99) / 1e3);
			what = "decode tok/s";
		} else if (b->kind == 'c') {
			struct sim_prompt p;
			struct sim_result r;
			sim_prompt_init(&p);
			assert_int_equal(sim_prompt_add_raw(&p, "prompt", 6, b->tokens), 0);
			sim_prompt_end(&p);
			assert_int_equal(sim_request(s, &p, 8, &r, &err), 0);
			v = r.ttft_cold_ms / 1e3;
			sim_prompt_free(&p);
			what = "cold TTFT s";
		} else {
			v = (double)sim_mem_bytes(s) / 1048576.0;
			what = "RSS at load MiB";
		}
		double e = v / b->value - 1;
		printf("%-16s %-19s %-5s n=%-6lld d=%-5lld ctx=%-6lld %9.2f %9.2f %+6.1f%%\n", what, b->model, b->quant,
		       (long long)b->tokens, (long long)b->depth, (long long)b->ctx, b->value, v, e * 100);
		bad += fabs(e) > 0.5;
		sim_free(s);
	}
	sim_catalog_free(cat);
	assert_int_equal(bad, 0);
}

/* The helper the real tier uses: points made by a known profile are fitted
 * back to within 2%. */
static void test_hw_fit_round_trip(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct ar_err err = {0};
	assert_int_equal(sim_catalog_new(&cat, PROFILES, &err), 0);
	const char *spec = "hw=cpu-2core,engine=llama-server,model=qwen2-tiny-random,quant=f16,kv=f16";
	struct sim_calib_point pts[4];
	const char *txt[4] = {"pp:512@0=6000", "pp:512@8192=700", "tg:127@32=240", "tg:127@8704=40"};
	for (int i = 0; i < 4; i++)
		assert_int_equal(sim_calib_point_parse(txt[i], &pts[i], &err), 0);
	struct buf yaml = BUF_INIT;
	struct sim_calib_row *rows = NULL;
	if (sim_calib_fit_hw(cat, spec, "cpu-fit", pts, 4, &yaml, &rows, &err) < 0)
		fail_msg("%s", err.msg);
	for (int i = 0; i < 4; i++) {
		printf("fit %-14s measured %8.1f model %8.1f %+5.1f%%\n", rows[i].what, rows[i].published, rows[i].predicted,
		       rows[i].error * 100);
		assert_true(fabs(rows[i].error) < 0.02);
	}
	assert_non_null(strstr(yaml.data, "id: cpu-fit\n"));
	assert_non_null(strstr(yaml.data, "estimated: false\n"));
	/* the profile it wrote loads and reproduces the points */
	char path[] = "/tmp/ar-test-fit-XXXXXX.yaml";
	int fd = mkstemps(path, 5);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fwrite(yaml.data, 1, yaml.len, f);
	fclose(f);
	char spec2[256];
	snprintf(spec2, sizeof spec2, "hw=%s,engine=llama-server,model=qwen2-tiny-random,quant=f16,kv=f16", path);
	struct sim *s = NULL;
	/* the id inside differs from the file name: loaded by path, so allowed */
	if (sim_new_in(&s, cat, spec2, &err) < 0)
		fail_msg("%s", err.msg);
	double r = 512 / (sim_prefill_ms(s, 512, 0) / 1e3);
	assert_true(fabs(r / 6000 - 1) < 0.02);
	sim_free(s);
	unlink(path);
	/* bad points */
	struct sim_calib_point pt;
	assert_int_equal(sim_calib_point_parse("pp:512=100", &pt, &err), -1);
	assert_int_equal(sim_calib_point_parse("xx:512@0=100", &pt, &err), -1);
	assert_int_equal(sim_calib_point_parse("pp:512@0=-3", &pt, &err), -1);
	assert_int_equal(sim_calib_point_parse("pp:512@0=100,model=qwen2-small-random", &pt, &err), 0);
	assert_string_equal(pt.spec, "model=qwen2-small-random");
	free(rows);
	buf_free(&yaml);
	sim_catalog_free(cat);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_published_points),
		cmocka_unit_test(test_real_backend_holdout),
		cmocka_unit_test(test_hw_fit_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
