/* Unit tests: the NDJSON line splitter (replay/ndjson.c).
 *
 * Every input is fed whole, byte by byte, split in two at every offset, and
 * in random-size chunks; all must give the same lines, result and flags.
 * Bodies are real Ollama /api/chat streams (tests/data/streams). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ndjson.h"

static char *slurp(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/streams/%s", AR_TEST_DATA, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	struct buf b = BUF_INIT;
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		assert_int_equal(buf_append(&b, tmp, n), 0);
	fclose(f);
	*len = b.len;
	return buf_detach(&b);
}

struct rec {
	struct buf log;
	size_t lines;
	int stop_after;
	struct ndjson_parser *p;
};

static int record(void *ud, const char *line, size_t len)
{
	struct rec *r = ud;
	r->lines++;
	assert_int_equal(line[len], '\0');
	buf_printf(&r->log, "L%llu[%zu]", (unsigned long long)ndjson_parser_line(r->p), len);
	buf_append(&r->log, line, len);
	buf_putc(&r->log, '\n');
	return r->stop_after && (int)r->lines == r->stop_after ? 9 : 0;
}

struct result {
	struct buf text;
	size_t lines;
	int rc;
	bool unterminated;
};

static struct result feed_cuts(const char *in, size_t n, const size_t *cuts, size_t ncuts, size_t max,
			       int stop_after)
{
	struct result res = {BUF_INIT, 0, 0, false};
	struct ndjson_parser *p = ndjson_parser_new(max);
	assert_non_null(p);
	struct rec r = {BUF_INIT, 0, stop_after, p};
	struct ar_err err = {AR_OK, ""};
	size_t at = 0;
	int rc = 0;
	for (size_t k = 0; k <= ncuts && rc == 0; k++) {
		size_t end = k < ncuts ? cuts[k] : n;
		rc = ndjson_parser_feed(p, in + at, end - at, record, &r, &err);
		at = end;
	}
	bool unterm = false;
	if (rc == 0)
		rc = ndjson_parser_finish(p, record, &r, &unterm, &err);
	buf_append(&res.text, r.log.data ? r.log.data : "", r.log.len);
	buf_printf(&res.text, "rc=%d err=%s unterminated=%d", rc, rc < 0 ? err.msg : "", unterm);
	res.lines = r.lines;
	res.rc = rc;
	res.unterminated = unterm;
	buf_free(&r.log);
	ndjson_parser_free(p);
	return res;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void assert_same(const struct result *a, const struct result *b, const char *how)
{
	if (a->text.len != b->text.len || memcmp(a->text.data, b->text.data, a->text.len)) {
		print_message("whole:\n%s\n%s:\n%s\n", a->text.data, how, b->text.data);
		fail_msg("feeding %s differs from feeding whole", how);
	}
}

static struct result feed_all_ways(const char *in, size_t n, size_t max, int stop_after)
{
	struct result whole = feed_cuts(in, n, NULL, 0, max, stop_after);
	size_t *cuts = malloc((n + 1) * sizeof *cuts);
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	struct result r = feed_cuts(in, n, cuts, n ? n - 1 : 0, max, stop_after);
	assert_same(&whole, &r, "byte by byte");
	buf_free(&r.text);
	for (size_t k = 0; k <= n; k++) {
		size_t c = k;
		r = feed_cuts(in, n, &c, 1, max, stop_after);
		char how[64];
		snprintf(how, sizeof how, "split at %zu", k);
		assert_same(&whole, &r, how);
		buf_free(&r.text);
	}
	for (int round = 0; round < 20; round++) {
		size_t nc = 0, at = 0;
		size_t span = round < 10 ? 8 : 300;
		while (at < n && nc < n) {
			at += rnd() % span;
			if (at > n)
				at = n;
			cuts[nc++] = at;
		}
		r = feed_cuts(in, n, cuts, nc, max, stop_after);
		assert_same(&whole, &r, "random chunks");
		buf_free(&r.text);
	}
	free(cuts);
	return whole;
}

static char *with_eol(const char *s, size_t n, const char *eol, size_t *out_len)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n')
			assert_int_equal(buf_puts(&b, eol), 0);
		else
			assert_int_equal(buf_putc(&b, s[i]), 0);
	*out_len = b.len;
	return buf_detach(&b);
}

static bool has(const struct result *r, const char *needle)
{
	return strstr(r->text.data, needle) != NULL;
}

static void expect(const char *in, size_t max, const char *want)
{
	struct result r = feed_all_ways(in, strlen(in), max, 0);
	if (strcmp(r.text.data, want)) {
		print_message("input: %s\nwant:\n%s\ngot:\n%s\n", in, want, r.text.data);
		fail_msg("unexpected lines");
	}
	buf_free(&r.text);
}

static void test_ollama_chat(void **state)
{
	size_t n;
	char *in = slurp("ollama-chat.txt", &n);
	struct result r = feed_all_ways(in, n, 0, 0);
	assert_int_equal(r.lines, 16);
	assert_int_equal(r.rc, 0);
	assert_false(r.unterminated);
	assert_true(has(&r, "L1[128]{\"model\":\"qwen:0.5b\",\"created_at\":\"2025-12-02T08:14:34.3521847Z\","));
	/* the final object carries the server-side durations (nanoseconds) */
	assert_true(has(&r, "\"done\":true,\"done_reason\":\"stop\",\"total_duration\":12329858900,"
			    "\"load_duration\":12122030000,\"prompt_eval_count\":13,\"prompt_eval_duration\":55622600,"
			    "\"eval_count\":16,\"eval_duration\":120145700}\nrc=0"));
	/* the same as CRLF, and with blank lines (LF, CRLF, spaces) between */
	size_t vn;
	char *v = with_eol(in, n, "\r\n", &vn);
	struct result rv = feed_all_ways(v, vn, 0, 0);
	assert_string_equal(rv.text.data, r.text.data);
	buf_free(&rv.text);
	free(v);
	v = with_eol(in, n, "\n\n \t\r\n", &vn);
	rv = feed_all_ways(v, vn, 0, 0);
	assert_int_equal(rv.lines, 16);
	assert_true(strstr(rv.text.data, "L4[") != NULL); /* line numbers count blank lines */
	buf_free(&rv.text);
	free(v);
	buf_free(&r.text);
	free(in);
}

static void test_ollama_tools_unterminated(void **state)
{
	size_t n;
	char *in = slurp("ollama-chat-tools.txt", &n);
	struct result r = feed_all_ways(in, n, 0, 0);
	assert_int_equal(r.lines, 8);
	assert_true(has(&r, "\"thinking\":\"。\\n\"}"));
	assert_true(has(&r, "\"arguments\":{\"format\":\"celsius\",\"location\":\"北京\"}"));
	assert_true(has(&r, "\"prompt_eval_count\":302,\"prompt_eval_duration\":1156607100,"));
	buf_free(&r.text);
	/* the last line without its newline: delivered by finish, flagged */
	assert_int_equal(in[n - 1], '\n');
	struct result cut = feed_all_ways(in, n - 1, 0, 0);
	assert_int_equal(cut.lines, 8);
	assert_true(cut.unterminated);
	assert_true(strstr(cut.text.data, "\"eval_duration\":6539173200}\nrc=0 err= unterminated=1") != NULL);
	buf_free(&cut.text);
	/* cut in the middle of the last object: the caller gets the fragment */
	cut = feed_all_ways(in, n - 40, 0, 0);
	assert_true(cut.unterminated);
	assert_true(strstr(cut.text.data, "L8[") != NULL);
	buf_free(&cut.text);
	free(in);
}

static void test_rules(void **state)
{
	expect("", 0, "rc=0 err= unterminated=0");
	expect("\n\n  \n\t\r\n", 0, "rc=0 err= unterminated=0");
	expect("{}\n[1]\n", 0, "L1[2]{}\nL2[3][1]\nrc=0 err= unterminated=0");
	/* only the CR of a CRLF is removed; a lone CR is data */
	expect("{\"a\":\"x\ry\"}\r\n", 0, "L1[11]{\"a\":\"x\ry\"}\nrc=0 err= unterminated=0");
	expect("a\r\r\n", 0, "L1[2]a\r\nrc=0 err= unterminated=0");
	/* leading and trailing spaces are kept (JSON allows them) */
	expect("  {} \n", 0, "L1[5]  {} \nrc=0 err= unterminated=0");
	/* unterminated last line, with and without a trailing CR */
	expect("{}\n{\"done\":true}", 0, "L1[2]{}\nL2[13]{\"done\":true}\nrc=0 err= unterminated=1");
	expect("{}\n{\"done\":true}\r", 0, "L1[2]{}\nL2[13]{\"done\":true}\nrc=0 err= unterminated=1");
	/* trailing blank text without newline is not a line */
	expect("{}\n  ", 0, "L1[2]{}\nrc=0 err= unterminated=0");
}

static void test_ceiling(void **state)
{
	/* exactly max bytes, with LF or CRLF, is fine */
	expect("0123456789\n", 10, "L1[10]0123456789\nrc=0 err= unterminated=0");
	expect("0123456789\r\n", 10, "L1[10]0123456789\nrc=0 err= unterminated=0");
	expect("0123456789\r", 10, "L1[10]0123456789\nrc=0 err= unterminated=1");
	/* one more is not, whichever way it arrives */
	expect("{}\n01234567890\n{}\n", 10, "L1[2]{}\nrc=-1 err=NDJSON line larger than 10 bytes (line 2) unterminated=0");
	expect("{}\n0123456789\rx\n", 10, "L1[2]{}\nrc=-1 err=NDJSON line larger than 10 bytes (line 2) unterminated=0");
	expect("0123456789\r\r\n", 10, "rc=-1 err=NDJSON line larger than 10 bytes (line 1) unterminated=0");

	/* 64 MiB without a newline: fails at the ceiling, memory bounded */
	const size_t max = 1u << 20;
	struct ndjson_parser *p = ndjson_parser_new(max);
	char *chunk = malloc(65536);
	memset(chunk, 'x', 65536);
	struct ar_err err = {AR_OK, ""};
	size_t fed = 0;
	int rc = 0;
	while (fed < (64u << 20) && rc == 0) {
		rc = ndjson_parser_feed(p, chunk, 65536, NULL, NULL, &err);
		fed += 65536;
	}
	assert_int_equal(rc, -1);
	assert_int_equal(err.code, AR_ELIMIT);
	assert_string_equal(err.msg, "NDJSON line larger than 1048576 bytes (line 1)");
	assert_true(fed <= max + 65536);
	print_message("footprint after the ceiling: %zu bytes (ceiling %zu)\n", ndjson_parser_footprint(p), max);
	assert_true(ndjson_parser_footprint(p) <= 2 * (max + 2) + 256);
	assert_int_equal(ndjson_parser_feed(p, "\n", 1, NULL, NULL, &err), -1);
	assert_int_equal(err.code, AR_EINVAL);
	ndjson_parser_free(p);
	free(chunk);
}

static void test_stop_finish_reset(void **state)
{
	size_t n;
	char *in = slurp("ollama-chat.txt", &n);
	struct result r = feed_all_ways(in, n, 0, 3);
	assert_int_equal(r.rc, 9);
	assert_int_equal(r.lines, 3);
	buf_free(&r.text);
	/* a stop from the last, unterminated line comes out of finish */
	r = feed_all_ways("{}\n{}", 5, 0, 2);
	assert_int_equal(r.rc, 9);
	buf_free(&r.text);

	struct ndjson_parser *p = ndjson_parser_new(0);
	struct ar_err err;
	struct rec rec = {BUF_INIT, 0, 0, p};
	assert_int_equal(ndjson_parser_feed(p, "{}\n{", 4, record, &rec, &err), 0);
	assert_int_equal(ndjson_parser_offset(p), 4);
	bool u;
	assert_int_equal(ndjson_parser_finish(p, record, &rec, &u, &err), 0);
	assert_true(u);
	assert_int_equal(ndjson_parser_finish(p, record, &rec, &u, &err), -1);
	assert_int_equal(err.code, AR_EINVAL);
	assert_int_equal(ndjson_parser_feed(p, "{}\n", 3, record, &rec, &err), -1);
	ndjson_parser_reset(p);
	buf_reset(&rec.log);
	assert_int_equal(ndjson_parser_feed(p, "{}\n", 3, record, &rec, &err), 0);
	assert_string_equal(rec.log.data, "L1[2]{}\n");
	assert_int_equal(ndjson_parser_finish(p, NULL, NULL, NULL, &err), 0);
	buf_free(&rec.log);
	ndjson_parser_free(p);
	ndjson_parser_free(NULL);
	free(in);
}

static void test_nul_bytes(void **state)
{
	const char in[] = "{\"a\":\"\0\"}\n";
	struct result r = feed_all_ways(in, sizeof in - 1, 0, 0);
	const char want[] = "L1[9]{\"a\":\"\0\"}\nrc=0 err= unterminated=0";
	assert_int_equal(r.text.len, sizeof want - 1);
	assert_memory_equal(r.text.data, want, sizeof want - 1);
	buf_free(&r.text);
}

/* Found by fuzz_ndjson (its invariant wrongly assumed no line ends in CR):
 * only the CR of a CRLF is removed, so "{}\r\r\n" is the line "{}\r"
 * (still valid JSON: CR is JSON whitespace). */
static void test_fuzz_regressions(void **state)
{
	expect("\n \n\t\r\n{}\r\r\n", 0, "L4[3]{}\r\nrc=0 err= unterminated=0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ollama_chat),
		cmocka_unit_test(test_ollama_tools_unterminated),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_ceiling),
		cmocka_unit_test(test_stop_finish_reset),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_fuzz_regressions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
