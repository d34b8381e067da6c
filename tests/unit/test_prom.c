/* Unit tests: the Prometheus text format parser (replay/prom.c), on real
 * /metrics bodies of llama-server, vLLM and SGLang (tests/data/streams) and
 * on bodies that are not metrics at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "prom.h"

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

static struct prom_set *parse_ok(const char *body, size_t len)
{
	struct prom_set *s = NULL;
	struct ar_err err = {AR_OK, ""};
	if (prom_parse(body, len, &s, &err) != 0)
		fail_msg("parse failed: %s", err.msg);
	assert_non_null(s);
	return s;
}

static struct prom_set *parse_file(const char *name)
{
	size_t n;
	char *body = slurp(name, &n);
	struct prom_set *s = parse_ok(body, n);
	/* the same body with CRLF line ends parses to the same samples */
	struct buf crlf = BUF_INIT;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(body[i] == '\n' ? buf_puts(&crlf, "\r\n") : buf_putc(&crlf, body[i]), 0);
	struct prom_set *s2 = parse_ok(crlf.data, crlf.len);
	assert_int_equal(prom_count(s2), prom_count(s));
	for (size_t i = 0; i < prom_count(s); i++) {
		const struct prom_sample *a = prom_sample_at(s, i), *b = prom_sample_at(s2, i);
		assert_string_equal(a->name, b->name);
		assert_int_equal(a->n_labels, b->n_labels);
		assert_true(a->value == b->value || (isnan(a->value) && isnan(b->value)));
	}
	prom_set_free(s2);
	buf_free(&crlf);
	free(body);
	return s;
}

static double get(const struct prom_set *s, const char *name, const char *match)
{
	double v = -12345;
	if (!prom_get(s, name, match, &v))
		fail_msg("no sample %s{%s}", name, match ? match : "");
	return v;
}

static void expect_err(const char *body, enum ar_code code, const char *msg)
{
	struct prom_set *s = (struct prom_set *)(uintptr_t)1;
	struct ar_err err = {AR_OK, ""};
	if (prom_parse(body, strlen(body), &s, &err) == 0)
		fail_msg("accepted: %s", body);
	assert_null(s);
	if (err.code != code || !strstr(err.msg, msg))
		fail_msg("for %s\nwant (%d) ...%s...\ngot  (%d) %s", body, code, msg, err.code, err.msg);
}

static void test_llama_server(void **state)
{
	struct prom_set *s = parse_file("llama-server-metrics.txt");
	assert_int_equal(prom_count(s), 15);
	assert_true(get(s, "llamacpp:prompt_tokens_total", NULL) == 14493);
	assert_true(get(s, "llamacpp:prompt_tokens_cached_total", NULL) == 67);
	assert_true(get(s, "llamacpp:prompt_seconds_total", NULL) == 10.0292);
	assert_true(get(s, "llamacpp:tokens_predicted_total", NULL) == 33);
	assert_true(get(s, "llamacpp:n_busy_slots_per_decode", "") == 1);
	assert_true(prom_sum(s, "llamacpp:n_decode_total") == 40);
	const struct prom_sample *x = prom_sample_at(s, 0);
	assert_string_equal(x->name, "llamacpp:prompt_tokens_total");
	assert_int_equal(x->n_labels, 0);
	assert_false(x->has_timestamp);
	assert_int_equal(x->line, 3);
	assert_null(prom_sample_at(s, 15));
	/* no KV-cache usage gauge in llama-server's /metrics */
	assert_false(prom_get(s, "llamacpp:kv_cache_usage_ratio", NULL, NULL));
	assert_true(isnan(prom_sum(s, "llamacpp:kv_cache_usage_ratio")));
	prom_set_free(s);

	s = parse_file("llama-server-metrics-large.txt");
	assert_true(get(s, "llamacpp:prompt_tokens_total", NULL) == 1566020.0); /* "1.56602e+06" */
	assert_true(get(s, "llamacpp:prompt_tokens_cached_total", NULL) == 48210400.0);
	assert_true(get(s, "llamacpp:n_tokens_max", NULL) == 131071);
	prom_set_free(s);
}

static void test_vllm(void **state)
{
	struct prom_set *s = parse_file("vllm-metrics.txt");
	assert_int_equal(prom_count(s), 27);
	assert_true(get(s, "vllm:gpu_cache_usage_perc", NULL) == 0.4219);
	assert_true(get(s, "vllm:kv_cache_usage_perc", "engine=0") == 0.4219);
	assert_true(get(s, "vllm:prefix_cache_queries_total", "engine=0,model_name=llama-vllm-single") == 230400);
	assert_true(get(s, "vllm:prefix_cache_hits_total", "model_name=\"llama-vllm-single\"") == 202736);
	assert_true(get(s, "vllm:prefix_cache_queries_created", NULL) == 1.7769301736864316e+09);
	assert_true(get(s, "vllm:num_requests_running", NULL) == 1);
	assert_true(get(s, "vllm:prompt_tokens_total", NULL) == 2097152);
	assert_true(get(s, "process_virtual_memory_bytes", NULL) == 4.5125312512e10); /* "e+010" */
	/* label matching: first match, every pair must match, spaces tolerated */
	assert_true(get(s, "vllm:request_success_total", "finished_reason=length") == 3);
	assert_true(get(s, "vllm:request_success_total", " finished_reason = stop , engine=0") == 7);
	assert_true(get(s, "vllm:request_success_total", NULL) == 7);
	assert_false(prom_get(s, "vllm:request_success_total", "finished_reason=length,engine=1", NULL));
	assert_false(prom_get(s, "vllm:request_success_total", "finished_reason", NULL));
	assert_false(prom_get(s, "vllm:request_success_total", "nope=1", NULL));
	assert_true(prom_sum(s, "vllm:request_success_total") == 10);
	assert_true(get(s, "vllm:time_to_first_token_seconds_bucket", "le=+Inf") == 5678);
	assert_true(get(s, "vllm:time_to_first_token_seconds_bucket", "le=\"0.01\"") == 89);
	assert_true(prom_sum(s, "python_gc_objects_collected_total") == 12867 + 3129 + 1146);
	/* labels keep body order and unescaped values */
	double v;
	assert_true(prom_get(s, "vllm:cache_config_info", "enable_prefix_caching=True,sliding_window=None", &v));
	for (size_t i = 0; i < prom_count(s); i++) {
		const struct prom_sample *x = prom_sample_at(s, i);
		if (strcmp(x->name, "vllm:cache_config_info"))
			continue;
		assert_int_equal(x->n_labels, 8);
		assert_string_equal(x->labels[0].name, "block_size");
		assert_string_equal(x->labels[0].value, "16");
		assert_string_equal(x->labels[7].name, "sliding_window");
	}
	prom_set_free(s);
}

static void test_sglang(void **state)
{
	struct prom_set *s = parse_file("sglang-metrics.txt");
	assert_int_equal(prom_count(s), 16);
	assert_true(get(s, "sglang:token_usage", NULL) == 0.28);
	assert_true(get(s, "sglang:cache_hit_rate", "model_name=meta-llama/Llama-3.1-8B-Instruct") ==
		    0.007507552643049313);
	assert_true(get(s, "sglang:prompt_tokens_total", NULL) == 8128902);
	assert_true(get(s, "sglang:time_to_first_token_seconds_sum", NULL) == 2.3518979474117756e+06);
	assert_true(get(s, "sglang:num_queue_reqs", NULL) == 2826);
	prom_set_free(s);
}

static void test_syntax(void **state)
{
	const char *body = "# HELP a:b Help with \\\\ and \\n escapes, and \"quotes\".\n"
			   "# TYPE a:b gauge\n"
			   "# just a comment\n"
			   "#\n"
			   "   \n"
			   "\ta:b{x=\"q\\\"uote\",y=\"back\\\\slash\",z=\"new\\nline\",} 1.5e-3 1700000000000\n"
			   "a:b { x = \"2\" , y=\"\" } NaN\n"
			   "a:b{} +Inf -5\n"
			   "a:b -Inf\n"
			   "c inf\n"
			   "_c\t-0.0\t\t 0 \n"
			   "d 1E3\n"
			   "e{l=\"ünïcödé ✓\"} .5\n"
			   "# EOF";
	struct prom_set *s = parse_ok(body, strlen(body));
	assert_int_equal(prom_count(s), 8);
	const struct prom_sample *x = prom_sample_at(s, 0);
	assert_string_equal(x->name, "a:b");
	assert_int_equal(x->n_labels, 3);
	assert_string_equal(x->labels[0].value, "q\"uote");
	assert_string_equal(x->labels[1].value, "back\\slash");
	assert_string_equal(x->labels[2].value, "new\nline");
	assert_true(x->value == 1.5e-3);
	assert_true(x->has_timestamp);
	assert_true(x->timestamp_ms == 1700000000000LL);
	assert_int_equal(x->line, 6);
	x = prom_sample_at(s, 1);
	assert_true(isnan(x->value));
	assert_string_equal(x->labels[0].value, "2");
	assert_string_equal(x->labels[1].value, "");
	x = prom_sample_at(s, 2);
	assert_int_equal(x->n_labels, 0);
	assert_true(isinf(x->value) && x->value > 0);
	assert_true(x->has_timestamp && x->timestamp_ms == -5);
	assert_true(isinf(prom_sample_at(s, 3)->value) && prom_sample_at(s, 3)->value < 0);
	assert_true(isinf(get(s, "c", NULL)));
	assert_true(get(s, "_c", NULL) == 0 && prom_sample_at(s, 5)->timestamp_ms == 0);
	assert_true(get(s, "d", NULL) == 1000);
	assert_true(get(s, "e", "l=ünïcödé ✓") == 0.5);
	assert_true(isnan(prom_sum(s, "a:b"))); /* NaN + anything */
	prom_set_free(s);

	/* empty and comment-only bodies are valid and empty */
	s = parse_ok("", 0);
	assert_int_equal(prom_count(s), 0);
	assert_false(prom_get(s, "x", NULL, NULL));
	prom_set_free(s);
	s = parse_ok("# HELP x y\n\n", 12);
	assert_int_equal(prom_count(s), 0);
	prom_set_free(s);
	/* a last line without newline is fine */
	s = parse_ok("x 1\ny 2", 7);
	assert_true(get(s, "y", NULL) == 2);
	prom_set_free(s);
	prom_set_free(NULL);
	assert_int_equal(prom_count(NULL), 0);
	assert_false(prom_get(NULL, "x", NULL, NULL));
}

static void test_garbage(void **state)
{
	/* an HTML page from a proxy */
	expect_err("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head></html>\n", AR_EFORMAT,
		   "metrics line 1: expected a metric name, got '<' at column 1 (line: \"<!DOCTYPE html>\")");
	/* llama-server without --metrics answers JSON */
	expect_err("{\"error\":{\"code\":501,\"message\":\"This server does not support metrics endpoint. Start it with "
		   "`--metrics`\",\"type\":\"not_supported_error\"}}",
		   AR_EFORMAT, "metrics line 1: expected a metric name, got '{' at column 1");
	/* binary junk */
	expect_err("\x89PNG\r\n\x1a\n", AR_EFORMAT, "metrics line 1: expected a metric name, got byte 0x89");
	expect_err("ok 1\n\x7f\x45\x4c\x46\x02", AR_EFORMAT, "metrics line 2: expected a metric name, got byte 0x7f");
	/* cut-off lines, with the right line number */
	expect_err("# TYPE llamacpp:n_decode_total counter\nllamacpp:n_decode_total 40\nllamacpp:n_dec", AR_EFORMAT,
		   "metrics line 3: missing the value of 'llamacpp:n_dec' at column 15");
	expect_err("vllm:num_requests_running{engine=\"0", AR_EFORMAT,
		   "metrics line 1: unterminated label value (no closing '\"')");
	expect_err("vllm:num_requests_running{engine=\"0\"", AR_EFORMAT,
		   "metrics line 1: expected ',' or '}' after the value of label 'engine', got the end of the line");
	expect_err("vllm:x{engine=\"0\\", AR_EFORMAT, "unterminated label value (line ends in an escape)");
	expect_err("vllm:x 1e", AR_EFORMAT, "metrics line 1: bad sample value '1e'");
	/* other wrong shapes */
	expect_err("x{a=\"\\t\"} 1", AR_EFORMAT, "invalid escape '\\' + 't' in a label value");
	expect_err("x{a=\"1\",a=\"2\"} 1", AR_EFORMAT, "duplicate label name 'a'");
	expect_err("x{1a=\"1\"} 1", AR_EFORMAT, "expected a label name or '}', got '1'");
	expect_err("x{a:b=\"1\"} 1", AR_EFORMAT, "expected '=' after label name 'a', got ':'");
	expect_err("x{a=1} 1", AR_EFORMAT, "expected '\"' to open the value of label 'a', got '1'");
	expect_err("x abc", AR_EFORMAT, "bad sample value 'abc'");
	expect_err("x 0x10", AR_EFORMAT, "bad sample value '0x10'");
	expect_err("x 1,5", AR_EFORMAT, "bad sample value '1,5'");
	expect_err("x 1 12.5", AR_EFORMAT, "bad timestamp '12.5'");
	expect_err("x 1 99999999999999999999", AR_EFORMAT, "timestamp '99999999999999999999' out of range");
	expect_err("x 1 2 3", AR_EFORMAT, "unexpected '3' after the timestamp");
	expect_err("x-y 1", AR_EFORMAT, "unexpected '-' in metric name 'x'");
	expect_err("# TYPE\n", AR_EFORMAT, "'# TYPE' needs a metric name, got the end of the line");
	expect_err("# TYPE x\n", AR_EFORMAT, "'# TYPE' needs a type");
	expect_err("# TYPE x gauge extra\n", AR_EFORMAT, "unexpected 'e' after the type in '# TYPE'");
	expect_err("# HELP 9x help\n", AR_EFORMAT, "'# HELP' needs a metric name, got '9'");
	expect_err("x{a=\"\xff\"} 1", AR_EFORMAT, "label value is not valid UTF-8");
	/* a NUL byte anywhere on a line */
	struct prom_set *s = NULL;
	struct ar_err err;
	assert_int_equal(prom_parse("x 1\ny\0 2\n", 9, &s, &err), -1);
	assert_null(s);
	assert_non_null(strstr(err.msg, "metrics line 2: NUL byte (not a text body) at column 2"));
}

static void test_limits(void **state)
{
	struct prom_set *s = NULL;
	struct ar_err err;
	/* over 64 MiB: refused before reading */
	size_t big = PROM_MAX_BODY + 1;
	char *body = malloc(big);
	assert_non_null(body);
	assert_int_equal(prom_parse(body, big, &s, &err), -1);
	assert_int_equal(err.code, AR_ELIMIT);
	assert_null(s);
	/* one line over 1 MiB */
	size_t n = PROM_MAX_LINE + 10;
	memset(body, 'x', n);
	memcpy(body, "ok 1\n# ", 7);
	body[n - 1] = '\n';
	assert_int_equal(prom_parse(body, n, &s, &err), -1);
	assert_int_equal(err.code, AR_ELIMIT);
	assert_string_equal(err.msg, "metrics line 2: longer than 1048576 bytes");
	/* exactly 1 MiB is fine */
	n = PROM_MAX_LINE + 5 + 1;
	body[n - 1] = '\n';
	assert_int_equal(prom_parse(body, n, &s, &err), 0);
	assert_int_equal(prom_count(s), 1);
	prom_set_free(s);
	/* many samples: a long body of the same line */
	struct buf b = BUF_INIT;
	for (int i = 0; i < 20000; i++)
		buf_printf(&b, "vllm:prefix_cache_hits_total{engine=\"%d\"} %d\n", i, i);
	s = parse_ok(b.data, b.len);
	assert_int_equal(prom_count(s), 20000);
	assert_true(prom_sum(s, "vllm:prefix_cache_hits_total") == 19999.0 * 20000 / 2);
	assert_true(get(s, "vllm:prefix_cache_hits_total", "engine=777") == 777);
	prom_set_free(s);
	buf_free(&b);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_llama_server), cmocka_unit_test(test_vllm),    cmocka_unit_test(test_sglang),
		cmocka_unit_test(test_syntax),       cmocka_unit_test(test_garbage), cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
