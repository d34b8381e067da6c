/* Unit tests of the reports library's pure parts: statistics, tier
 * selection, the filter parser, number formatting, the escapers, the chart
 * series, and the text report's out-of-memory handling (every allocation
 * made to fail in turn). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "report_int.h"
#include "store.h"

/* ---- statistics -------------------------------------------------------- */

static void test_median_minmax(void **state)
{
	(void)state;
	struct rpt_stat s;
	double odd[] = {3, 1, 2};
	rpt_stat_of(odd, 3, &s);
	assert_int_equal(s.n, 3);
	assert_true(s.med == 2 && s.min == 1 && s.max == 3);
	double even[] = {4, 1, 3, 2};
	rpt_stat_of(even, 4, &s);
	assert_true(s.med == 2.5 && s.min == 1 && s.max == 4);
	rpt_stat_of(NULL, 0, &s);
	assert_int_equal(s.n, 0);
	assert_true(isnan(s.med) && isnan(s.min) && isnan(s.max));
}

static void test_percentile(void **state)
{
	(void)state;
	double v[10];
	for (int i = 0; i < 10; i++)
		v[i] = i + 1;
	/* nearest rank */
	assert_true(rpt_percentile(v, 10, 50) == 5);
	assert_true(rpt_percentile(v, 10, 90) == 9);
	assert_true(rpt_percentile(v, 10, 99) == 10);
	assert_true(rpt_percentile(v, 10, 0) == 1);
	assert_true(rpt_percentile(v, 10, 100) == 10);
	assert_true(rpt_percentile(v, 1, 99) == 1);
	assert_true(isnan(rpt_percentile(v, 0, 50)));
}

/* ---- tiers ------------------------------------------------------------- */

static void cfg_init(struct rpt_cfg *c)
{
	memset(c, 0, sizeof *c);
	for (int k = 0; k < 2; k++)
		for (int t = 0; t < RPT_NTIERS; t++)
			c->tier[k][t].turn = -1;
}

static void test_tier_nearest(void **state)
{
	(void)state;
	struct rpt_cfg c;
	cfg_init(&c);
	/* 25000 and 40000 are both within +-25% of 32768; 40000 is nearer */
	int64_t depth[] = {900, 25000, 40000, 50000, 100000, 200000};
	for (int t = 0; t < 6; t++)
		rpt_tier_consider(&c, RQ_WARM, 0, t, depth[t]);
	assert_int_equal(c.tier[RQ_WARM][0].turn, 0);
	assert_int_equal(c.tier[RQ_WARM][1].turn, 2);
	assert_int_equal(c.tier[RQ_WARM][2].turn, 3); /* 50000: inside [49152, 81920] */
	assert_int_equal(c.tier[RQ_WARM][3].turn, 4); /* 100000: inside [98304, 163840]; 200000 is not */
	assert_int_equal(c.tier[RQ_WARM][3].depth, 100000);
	/* cold is chosen separately: nothing offered there */
	for (int t = 0; t < RPT_NTIERS; t++)
		assert_int_equal(c.tier[RQ_COLD][t].turn, -1);
	assert_int_equal(rpt_tier_bits(&c, RQ_WARM, 0, 2), 1u << 1);
	assert_int_equal(rpt_tier_bits(&c, RQ_WARM, 0, 1), 0);
	assert_int_equal(rpt_tier_bits(&c, RQ_WARM, 1, 2), 0); /* another session */
	assert_int_equal(rpt_tier_bits(&c, RQ_COLD, 0, 2), 0);
	assert_int_equal(rpt_tier_bits(&c, RQ_OTHER, 0, 0), 0);
}

static void test_tier_empty_and_ties(void **state)
{
	(void)state;
	struct rpt_cfg c;
	cfg_init(&c);
	/* no depth within +-25% of any tier: only the baseline */
	rpt_tier_consider(&c, RQ_COLD, 0, 0, 900);
	rpt_tier_consider(&c, RQ_COLD, 0, 1, 24000); /* just below 0.75 * 32768 */
	rpt_tier_consider(&c, RQ_COLD, 0, 2, 41000); /* just above 1.25 * 32768 */
	assert_int_equal(c.tier[RQ_COLD][0].turn, 0);
	for (int t = 1; t < RPT_NTIERS; t++)
		assert_int_equal(c.tier[RQ_COLD][t].turn, -1);
	/* equally near: the smaller depth; equal depth: the earlier session */
	cfg_init(&c);
	rpt_tier_consider(&c, RQ_WARM, 1, 5, 35536);
	rpt_tier_consider(&c, RQ_WARM, 1, 4, 30000);
	assert_int_equal(c.tier[RQ_WARM][1].depth, 30000);
	rpt_tier_consider(&c, RQ_WARM, 0, 7, 30000);
	assert_int_equal(c.tier[RQ_WARM][1].sess, 0);
	assert_int_equal(c.tier[RQ_WARM][1].turn, 7);
	/* a turn that is baseline and 32k at once */
	cfg_init(&c);
	rpt_tier_consider(&c, RQ_WARM, 0, 0, 30000);
	assert_int_equal(rpt_tier_bits(&c, RQ_WARM, 0, 0), 1u | 2u);
	char lab[64];
	rpt_tier_label(3, lab, sizeof lab);
	assert_string_equal(lab, "baseline+32k");
	rpt_tier_label(0, lab, sizeof lab);
	assert_string_equal(lab, "");
	/* unknown depth or turn: never a tier */
	cfg_init(&c);
	rpt_tier_consider(&c, RQ_WARM, 0, 0, -1);
	rpt_tier_consider(&c, RQ_WARM, 0, -1, 900);
	assert_int_equal(c.tier[RQ_WARM][0].turn, -1);
}

/* ---- filter ------------------------------------------------------------ */

static void bad_filter(const char *expr, const char *want)
{
	struct ar_err err = {0};
	struct rpt_filter *f = (struct rpt_filter *)1;
	assert_int_equal(rpt_filter_parse(expr, &f, &err), -1);
	assert_null(f);
	assert_int_equal(err.code, want[0] == 'o' && !strcmp(want, "out of memory") ? AR_ENOMEM : AR_EINVAL);
	assert_string_equal(err.msg, want);
}

static void test_filter_parse(void **state)
{
	(void)state;
	struct ar_err err = {0};
	struct rpt_filter *f = NULL;
	assert_int_equal(rpt_filter_parse(NULL, &f, &err), 0);
	assert_null(f);
	assert_int_equal(rpt_filter_parse(" cache = warm , context_tokens_est>=16000,config~LLaMA", &f, &err), 0);
	assert_non_null(f);
	assert_false(rpt_filter_has_tier(f));
	assert_true(rpt_filter_pass_tier(f, 0));
	rpt_filter_free(f);
	assert_int_equal(rpt_filter_parse("simulated=true,ttft_ms<=1e3,turn!=2", &f, &err), 0);
	rpt_filter_free(f);

	bad_filter("ttft>5", "unknown column 'ttft' (the csv/json columns of README.md, Reports)");
	bad_filter("turn=abc", "column 'turn' is numeric, 'abc' is not a number");
	bad_filter("turn=", "column 'turn' is numeric, '' is not a number");
	bad_filter("turn~3", "column 'turn' is numeric; '~' needs a text column");
	bad_filter("cache", "filter condition 'cache' has no operator (= != < <= > >= ~)");
	bad_filter(" , ", "' , ' has no condition");
	bad_filter("tier<32k", "column 'tier' takes = != or ~, not a comparison");
	bad_filter("tier=16k", "tier '16k' is not one of baseline, 32k, 64k, 128k (or empty: none)");
	bad_filter("cache=warm,nope=1", "unknown column 'nope' (the csv/json columns of README.md, Reports)");
}

static void test_filter_tier(void **state)
{
	(void)state;
	struct ar_err err = {0};
	struct rpt_filter *f = NULL;
	assert_int_equal(rpt_filter_parse("tier=32k", &f, &err), 0);
	assert_true(rpt_filter_has_tier(f));
	assert_true(rpt_filter_pass_tier(f, 1u << 1));
	assert_true(rpt_filter_pass_tier(f, 1u | 1u << 1)); /* baseline+32k is 32k too */
	assert_false(rpt_filter_pass_tier(f, 1u));
	assert_false(rpt_filter_pass_tier(f, 0));
	rpt_filter_free(f);
	assert_int_equal(rpt_filter_parse("tier=", &f, &err), 0);
	assert_true(rpt_filter_pass_tier(f, 0));
	assert_false(rpt_filter_pass_tier(f, 1u << 3));
	rpt_filter_free(f);
	assert_int_equal(rpt_filter_parse("tier!=baseline", &f, &err), 0);
	assert_true(rpt_filter_pass_tier(f, 0));
	assert_true(rpt_filter_pass_tier(f, 1u << 2));
	assert_false(rpt_filter_pass_tier(f, 1u));
	rpt_filter_free(f);
	assert_int_equal(rpt_filter_parse("tier~K", &f, &err), 0); /* 32k, 64k, 128k */
	assert_true(rpt_filter_pass_tier(f, 1u << 3));
	assert_false(rpt_filter_pass_tier(f, 1u));
	assert_false(rpt_filter_pass_tier(f, 0));
	rpt_filter_free(f);
}

/* ---- numbers ----------------------------------------------------------- */

static void test_number_format(void **state)
{
	(void)state;
	char b[64];
	rpt_fmt_ms(NAN, b, sizeof b);
	assert_string_equal(b, "-");
	rpt_fmt_ms(5.26, b, sizeof b);
	assert_string_equal(b, "5.3");
	rpt_fmt_ms(150.4, b, sizeof b);
	assert_string_equal(b, "150");
	rpt_fmt_rate(45, b, sizeof b);
	assert_string_equal(b, "45.0");
	rpt_fmt_rate(NAN, b, sizeof b);
	assert_string_equal(b, "-");
	rpt_fmt_bytes(1.5 * 1024 * 1024 * 1024, b, sizeof b);
	assert_string_equal(b, "1.50 GiB");
	rpt_fmt_bytes(512.0 * 1024 * 1024, b, sizeof b);
	assert_string_equal(b, "512 MiB");
	rpt_fmt_bytes(-1, b, sizeof b);
	assert_string_equal(b, "-");
	rpt_fmt_tokens(-1, b, sizeof b);
	assert_string_equal(b, "-");
	rpt_fmt_tokens(32768, b, sizeof b);
	assert_string_equal(b, "32768");
	rpt_fmt_ratio(6, b, sizeof b);
	assert_string_equal(b, "6.00x");
	rpt_fmt_ratio(10.4, b, sizeof b);
	assert_string_equal(b, "10x");
	rpt_fmt_ratio(INFINITY, b, sizeof b);
	assert_string_equal(b, "-");
	rpt_fmt_ratio(NAN, b, sizeof b);
	assert_string_equal(b, "-");
}

/* ---- escapers ---------------------------------------------------------- */

static void test_html_escape(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	rpt_html_esc(&b, "<script>\"x\"&'y'</script>\x01\tz\xe2\x80\xa8");
	assert_string_equal(b.data, "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt; \tz\xe2\x80\xa8");
	buf_reset(&b);
	rpt_html_esc(&b, NULL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void test_json_escape(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	/* inside <script>: no "</script>" can close the element */
	assert_int_equal(rpt_json_str(&b, "</script><!--&'", true), 0);
	assert_string_equal(b.data, "\"\\u003c/script\\u003e\\u003c!--\\u0026\\u0027\"");
	assert_null(strstr(b.data, "</"));
	buf_reset(&b);
	assert_int_equal(rpt_json_str(&b, "</script>", false), 0);
	assert_string_equal(b.data, "\"</script>\"");
	buf_reset(&b);
	/* U+2028, U+2029 escaped; other UTF-8 kept; bad bytes -> U+FFFD */
	assert_int_equal(rpt_json_str(&b, "a\xe2\x80\xa8" "b\xe2\x80\xa9" "c\xc3\xa9\xff\"\\\n\x1f", true), 0);
	assert_string_equal(b.data, "\"a\\u2028b\\u2029c\xc3\xa9\\ufffd\\\"\\\\\\n\\u001f\"");
	buf_reset(&b);
	assert_int_equal(rpt_json_str(&b, NULL, true), 0);
	assert_string_equal(b.data, "null");
	buf_free(&b);
}

static void csv_is(const char *in, bool text, const char *want)
{
	struct buf b = BUF_INIT;
	assert_int_equal(rpt_csv_field(&b, in, text), 0);
	assert_string_equal(b.data ? b.data : "", want);
	buf_free(&b);
}

static void test_csv_field(void **state)
{
	(void)state;
	csv_is("plain", true, "plain");
	csv_is("", true, "");
	csv_is("a,b", true, "\"a,b\"");
	csv_is("say \"hi\"", true, "\"say \"\"hi\"\"\"");
	csv_is(" pad", true, "\" pad\"");
	/* formula injection: text only */
	csv_is("=1+2", true, "'=1+2");
	csv_is("+1", true, "'+1");
	csv_is("-2", true, "'-2");
	csv_is("@SUM(A1)", true, "'@SUM(A1)");
	csv_is("\tx", true, "'\tx");
	csv_is("\rx", true, "\"'\rx\"");
	csv_is("=HYPERLINK(\"u\",\"v\")", true, "\"'=HYPERLINK(\"\"u\"\",\"\"v\"\")\"");
	csv_is("-2", false, "-2");
	csv_is("a=1", true, "a=1");
}

/* ---- chart series ------------------------------------------------------ */

static void test_series_aggregates(void **state)
{
	(void)state;
	/* two sessions x two repeats at the same depths, TTFT alternating high
	 * and low: one point per depth, median over all, min-max band */
	struct rpt_req rq[10];
	memset(rq, 0, sizeof rq);
	int64_t depth[] = {1000, 1000, 1000, 1000, 5000, 5000, 5000, 5000, 5100, 9000};
	double ttft[] = {100, 300, 120, 280, 500, 900, 520, 880, 700, 1000};
	for (int i = 0; i < 10; i++) {
		rq[i] = (struct rpt_req){.sess = (uint32_t)(i % 2), .turn = i / 4, .repeat = i / 2 % 2, .depth = depth[i],
					 .mem = -1, .ttft = ttft[i], .decode = NAN, .prefill = NAN, .cache = RQ_WARM,
					 .done = true};
	}
	rq[9].done = false; /* failed: not on the line */
	rq[9].failed = true;
	struct rpt_cfg c;
	cfg_init(&c);
	c.n = 10;
	struct rpt_model m = {.cfg = &c, .ncfg = 1, .req = rq, .nreq = 10};
	double w = rpt_bucket_width(126000, false);
	assert_true(w == 2048);
	assert_true(rpt_bucket_width(100, true) == 1);
	assert_true(rpt_bucket_width(1000, true) == 8);
	struct rpt_pt *p = NULL;
	long n = rpt_series(&m, &c, RM_TTFT, false, w, &p);
	assert_int_equal(n, 2);
	assert_true(p[0].x == 1000 && p[0].y == 200 && p[0].lo == 100 && p[0].hi == 300 && p[0].n == 4);
	/* 5000 and 5100 share the bucket [4096, 6144) */
	assert_true(p[1].x == (5000.0 * 4 + 5100) / 5 && p[1].y == 700 && p[1].lo == 500 && p[1].hi == 900);
	assert_int_equal(p[1].n, 5);
	free(p);
	/* cold requests are not on the warm line */
	for (int i = 0; i < 10; i++)
		rq[i].cache = RQ_COLD;
	assert_int_equal(rpt_series(&m, &c, RM_TTFT, false, w, &p), 0);
	assert_null(p);
}

/* ---- the text report when allocations fail ----------------------------- */

static void test_text_oom(void **state)
{
	(void)state;
	char path[] = "/tmp/ar-test-report-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	struct ar_err err = {0};
	struct store *st = NULL;
	assert_int_equal(store_open(&st, path, 0, &err), 0);
	FILE *sql = fopen(AR_TEST_DATA "/report/basic.sql", "r");
	assert_non_null(sql);
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t got;
	while ((got = fread(chunk, 1, sizeof chunk, sql)) > 0)
		assert_int_equal(buf_append(&b, chunk, got), 0);
	fclose(sql);
	assert_int_equal(sqlite3_exec(store_db(st), b.data, NULL, NULL, NULL), SQLITE_OK);
	buf_free(&b);
	struct report_opts o = {REPORT_TEXT, -1, NULL, "store.db"};
	struct rpt_model m;
	assert_int_equal(report_model_load(store_db(st), &o, true, &m, &err), 0);
	assert_true(m.concurrent); /* every table, the in-flight one too */

	rpt_text_fail_alloc(-1);
	FILE *out = tmpfile();
	assert_int_equal(report_text(&m, false, out, &err), 0);
	fclose(out);
	long total = rpt_text_allocs();
	assert_true(total > 100);
	/* each allocation fails in turn: the report must say out of memory */
	for (long k = 0; k < total; k++) {
		rpt_text_fail_alloc(k);
		out = tmpfile();
		memset(&err, 0, sizeof err);
		int rc = report_text(&m, k % 2 == 1, out, &err);
		fclose(out);
		if (rc != -1 || err.code != AR_ENOMEM)
			fail_msg("allocation %ld of %ld failed, report_text returned %d (%s)", k, total, rc, err.msg);
	}
	rpt_text_fail_alloc(-1);
	report_model_free(&m);
	store_close(st);
	unlink(path);
	char side[sizeof path + 8];
	snprintf(side, sizeof side, "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof side, "%s-shm", path);
	unlink(side);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_median_minmax),   cmocka_unit_test(test_percentile),
		cmocka_unit_test(test_tier_nearest),    cmocka_unit_test(test_tier_empty_and_ties),
		cmocka_unit_test(test_filter_parse),    cmocka_unit_test(test_filter_tier),
		cmocka_unit_test(test_number_format),   cmocka_unit_test(test_html_escape),
		cmocka_unit_test(test_json_escape),     cmocka_unit_test(test_csv_field),
		cmocka_unit_test(test_series_aggregates), cmocka_unit_test(test_text_oom),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
