/* Unit tests: backend adapters (request bodies and stream reading) and the
 * outcome classification, on real captured streams (tests/data/streams/). */
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

#include "adapter.h"
#include "classify.h"
#include "convo.h"
#include "ndjson.h"
#include "sse.h"
#include "trace.h"

static char *slurp(const char *name, size_t *n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/streams/%s", AR_TEST_DATA, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("missing %s", path);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *p = malloc((size_t)len + 1);
	*n = fread(p, 1, (size_t)len, f);
	p[*n] = 0;
	fclose(f);
	return p;
}

struct feed {
	const struct adapter *ad;
	struct stream_acc *acc;
	ar_ns t;
};

static int on_sse(void *ud, const struct sse_event *ev)
{
	struct feed *f = ud;
	if (!ev->comment)
		f->ad->event(f->acc, ev->event, ev->data, ev->data_len, f->t);
	return 0;
}

static int on_line(void *ud, const char *line, size_t n)
{
	struct feed *f = ud;
	f->ad->event(f->acc, "", line, n, f->t);
	return 0;
}

/* Feeds a captured stream one byte at a time, each byte 1 ms after the last,
 * as if it arrived like that. */
static void feed_file(const char *adapter, const char *file, struct stream_acc *acc)
{
	size_t n;
	char *body = slurp(file, &n);
	struct feed f = {adapter_find(adapter), acc, 0};
	assert_non_null(f.ad);
	stream_acc_init(acc);
	struct ar_err err;
	bool cut;
	if (f.ad->wire == WIRE_SSE) {
		struct sse_parser *p = sse_parser_new(1 << 20);
		for (size_t i = 0; i < n; i++) {
			f.t = (ar_ns)(i + 1) * 1000000;
			assert_int_equal(sse_parser_feed(p, body + i, 1, on_sse, &f, &err), 0);
		}
		sse_parser_finish(p, on_sse, &f, &cut, &err);
		sse_parser_free(p);
	} else {
		struct ndjson_parser *p = ndjson_parser_new(1 << 20);
		for (size_t i = 0; i < n; i++) {
			f.t = (ar_ns)(i + 1) * 1000000;
			assert_int_equal(ndjson_parser_feed(p, body + i, 1, on_line, &f, &err), 0);
		}
		ndjson_parser_finish(p, on_line, &f, &cut, &err);
		ndjson_parser_free(p);
	}
	free(body);
}

static void test_llama_chat_usage(void **state)
{
	struct stream_acc a;
	feed_file("openai", "llama-server-chat-usage.txt", &a);
	/* the role-only first chunk (content null) is not a token; 5 content events are */
	assert_int_equal(a.token_events, 5);
	assert_int_equal(a.usage_prompt, 23);
	assert_int_equal(a.usage_cached, 22);
	assert_string_equal(a.cached_source, "usage");
	assert_int_equal(a.usage_completion, 5);
	assert_true(a.done);
	assert_true(a.finish_seen);
	assert_string_equal(a.finish_reason, "length");
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(a.server, "timings"), "prompt_ms"));
	assert_true(a.t_first_token > 0 && a.t_last_token > a.t_first_token);
	stream_acc_free(&a);
}

static void test_llama_chat_timings_only(void **state)
{
	struct stream_acc a;
	feed_file("openai", "llama-server-chat-timings.txt", &a);
	/* no usage chunk: cached and prompt come from timings */
	assert_true(a.usage_cached >= 0);
	assert_string_equal(a.cached_source, "timings");
	assert_true(a.usage_prompt > 0);
	assert_true(a.done);
	stream_acc_free(&a);
}

static void test_ping_is_not_a_token(void **state)
{
	/* three ":" pings, then three content events: the pings are neither
	 * tokens nor the first token (each byte arrives 1 ms after the last) */
	struct stream_acc a;
	feed_file("openai", "llama-server-chat-ping.txt", &a);
	size_t n;
	char *body = slurp("llama-server-chat-ping.txt", &n);
	const char *first_data = strstr(body, "data:");
	assert_non_null(first_data);
	ar_ns data_at = (ar_ns)(first_data - body + 1) * 1000000;
	free(body);
	assert_int_equal(a.token_events, 3);
	assert_true(a.t_first_token > data_at);
	assert_true(a.done);
	stream_acc_free(&a);
}

static void test_llama_midstream_error(void **state)
{
	struct stream_acc a;
	feed_file("openai", "llama-server-chat-error.txt", &a);
	assert_false(a.done);
	assert_true(a.error.len > 0);
	assert_non_null(strstr(a.error.data, "Context size has been exceeded"));
	stream_acc_free(&a);
}

static void test_vllm_reasoning_counts(void **state)
{
	struct stream_acc a;
	feed_file("openai", "vllm-chat-reasoning.txt", &a);
	/* reasoning deltas are generated tokens too: the first token is the first reasoning delta */
	assert_int_equal(a.usage_completion, 23);
	assert_int_equal(a.usage_cached, 16);
	assert_true(a.token_events >= 20);
	assert_true(a.done);
	stream_acc_free(&a);
}

static void test_llama_native_completion(void **state)
{
	struct stream_acc a;
	feed_file("llama-server", "llama-server-completion.txt", &a);
	assert_true(a.token_events >= 1);
	assert_true(a.done);
	assert_true(a.usage_completion >= 1);
	assert_string_equal(a.cached_source, "timings");
	assert_non_null(cJSON_GetObjectItem(a.server, "timings"));
	stream_acc_free(&a);
}

static void test_anthropic(void **state)
{
	struct stream_acc a;
	feed_file("anthropic", "anthropic-messages.txt", &a);
	assert_true(a.token_events >= 1);
	assert_true(a.done);
	assert_true(a.usage_prompt >= 0);
	assert_true(a.usage_completion >= 0);
	stream_acc_free(&a);
}

static void test_ollama(void **state)
{
	struct stream_acc a;
	feed_file("ollama", "ollama-chat.txt", &a);
	assert_true(a.done);
	assert_int_equal(a.usage_prompt, 13);
	assert_int_equal(a.usage_completion, 16);
	/* 15 lines carry text; the final done object (and one empty piece) do not */
	assert_int_equal(a.token_events, 15);
	assert_non_null(cJSON_GetObjectItem(a.server, "load_duration"));
	stream_acc_free(&a);
	feed_file("ollama", "ollama-chat-tools.txt", &a);
	assert_true(a.done);
	assert_true(a.token_events >= 1); /* a tool call is generated output */
	stream_acc_free(&a);
}

/* ---- request bodies ---- */

static struct tr_session *session(const char *line)
{
	struct trace_item it;
	struct trace_diag d;
	trace_diag_clear(&d);
	assert_int_equal(trace_parse_line(line, strlen(line), &it, &d), 0);
	return it.session;
}

static struct tr_turn *turn(const char *line)
{
	struct trace_item it;
	struct trace_diag d;
	trace_diag_clear(&d);
	assert_int_equal(trace_parse_line(line, strlen(line), &it, &d), 0);
	return it.turn;
}

static void test_bodies(void **state)
{
	struct tr_session *s = session("{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"b\",\"system\":\"SYS\","
				       "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"bash\",\"parameters\":{\"type\":\"object\"}}}]}");
	struct tr_turn *t0 = turn("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"list\"}],"
				  "\"response\":{\"tool_calls\":[{\"id\":\"c1\",\"name\":\"bash\",\"arguments\":\"{\\\"cmd\\\":\\\"ls\\\"}\"}]}}");
	struct tr_turn *t1 = turn("{\"type\":\"turn\",\"i\":1,\"append\":[{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"a.c\"},"
				  "{\"role\":\"user\",\"synthetic\":{\"tokens\":5,\"blocks\":[7],\"block_tokens\":5}}]}");
	struct convo c;
	convo_init(&c, false);
	convo_reset(&c, s);
	struct ar_err err;
	assert_int_equal(convo_step(&c, t0, &err), 0);
	assert_int_equal(convo_step(&c, t1, &err), 0);
	struct req_ctx r = {s, &c, "[n1] ", "m", 42, 0, false, false, "http://x", false, 0};
	struct buf b = BUF_INIT;

	assert_int_equal(adapter_find("openai")->build(adapter_find("openai"), &r, &b, &err), 0);
	cJSON *j = cJSON_Parse(b.data);
	assert_non_null(j);
	cJSON *msgs = cJSON_GetObjectItem(j, "messages");
	assert_int_equal(cJSON_GetArraySize(msgs), 5); /* system, user, assistant, tool, user */
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content")->valuestring, "[n1] SYS");
	cJSON *asst = cJSON_GetArrayItem(msgs, 2);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(asst, "content")));
	cJSON *call = cJSON_GetArrayItem(cJSON_GetObjectItem(asst, "tool_calls"), 0);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(call, "function"), "arguments")->valuestring, "{\"cmd\":\"ls\"}");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 3), "tool_call_id")->valuestring, "c1");
	/* synthetic block 7 of 5 tokens: five words */
	const char *syn = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 4), "content")->valuestring;
	int words = 0;
	for (const char *p = syn; *p; p++)
		words += *p == ' ';
	assert_int_equal(words, 5);
	assert_int_equal((int)cJSON_GetObjectItem(j, "max_tokens")->valuedouble, 42);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ignore_eos")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stream_options"), "include_usage")));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tools")), 1);
	cJSON_Delete(j);

	/* --max-tokens-field */
	buf_reset(&b);
	r.max_tokens_field = 1;
	assert_int_equal(adapter_find("openai")->build(adapter_find("openai"), &r, &b, &err), 0);
	assert_non_null(strstr(b.data, "\"max_completion_tokens\":42"));
	assert_null(strstr(b.data, "\"max_tokens\""));
	r.max_tokens_field = 0;

	/* --plain-openai: only standard fields */
	buf_reset(&b);
	r.plain = true;
	assert_int_equal(adapter_find("openai")->build(adapter_find("openai"), &r, &b, &err), 0);
	assert_null(strstr(b.data, "ignore_eos"));
	r.plain = false;

	/* ollama: arguments as an object, options.num_predict, num_ctx */
	buf_reset(&b);
	r.num_ctx = 65536;
	assert_int_equal(adapter_find("ollama")->build(adapter_find("ollama"), &r, &b, &err), 0);
	j = cJSON_Parse(b.data);
	assert_non_null(j);
	cJSON *opt = cJSON_GetObjectItem(j, "options");
	assert_int_equal((int)cJSON_GetObjectItem(opt, "num_predict")->valuedouble, 42);
	assert_int_equal((int)cJSON_GetObjectItem(opt, "num_ctx")->valuedouble, 65536);
	asst = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "messages"), 2);
	cJSON *args = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(asst, "tool_calls"), 0),
							       "function"), "arguments");
	assert_true(cJSON_IsObject(args));
	cJSON_Delete(j);

	/* anthropic: system apart, tool results as tool_result blocks in a user turn */
	buf_reset(&b);
	assert_int_equal(adapter_find("anthropic")->build(adapter_find("anthropic"), &r, &b, &err), 0);
	j = cJSON_Parse(b.data);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "system")->valuestring, "[n1] SYS");
	msgs = cJSON_GetObjectItem(j, "messages");
	assert_int_equal(cJSON_GetArraySize(msgs), 3); /* user, assistant, user(tool_result + text) */
	cJSON *last = cJSON_GetArrayItem(msgs, 2);
	assert_string_equal(cJSON_GetObjectItem(last, "role")->valuestring, "user");
	cJSON *blk = cJSON_GetArrayItem(cJSON_GetObjectItem(last, "content"), 0);
	assert_string_equal(cJSON_GetObjectItem(blk, "type")->valuestring, "tool_result");
	assert_string_equal(cJSON_GetObjectItem(blk, "tool_use_id")->valuestring, "c1");
	assert_non_null(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tools"), 0), "input_schema"));
	cJSON_Delete(j);

	buf_free(&b);
	convo_free(&c);
	tr_turn_free(t0);
	tr_turn_free(t1);
	tr_session_free(s);
}

/* ---- classification ---- */

static void test_rules_files_load(void **state)
{
	static const char *const fams[] = {"llama", "vllm", "sglang", "ollama", "openai", "anthropic", "mlx", "none"};
	for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
		struct rules *r = NULL;
		struct ar_err err = {0};
		if (rules_load(&r, rules_default_dir(), fams[i], &err) < 0)
			fail_msg("%s: %s", fams[i], err.msg);
		rules_free(r);
	}
}

static const char *classify(const char *family, long status, const char *ct, int curl_code, bool timed_out,
			    const char *body, const char *event_error, bool done, int tokens, char *evidence)
{
	struct rules *r = NULL;
	struct ar_err err;
	assert_int_equal(rules_load(&r, rules_default_dir(), family, &err), 0);
	struct hx_result res;
	memset(&res, 0, sizeof res);
	res.status = status;
	snprintf(res.content_type, sizeof res.content_type, "%s", ct);
	res.curl_code = curl_code;
	res.timed_out = timed_out;
	snprintf(res.curl_error, sizeof res.curl_error, "%s", curl_code ? "Recv failure: Connection reset by peer" : "");
	struct stream_acc a;
	stream_acc_init(&a);
	a.done = done;
	a.token_events = tokens;
	if (event_error)
		buf_puts(&a.error, event_error);
	struct outcome oc;
	classify_request(r, adapter_find("openai"), "POST /v1/chat/completions", &res, &a, body, body ? strlen(body) : 0,
			 false, "", &oc);
	if (evidence)
		strcpy(evidence, oc.evidence);
	stream_acc_free(&a);
	rules_free(r);
	return oc.cls;
}

static void test_classify(void **state)
{
	char ev[700];
	const char *ctx400 = "{\"error\":{\"code\":400,\"message\":\"request (38008 tokens) exceeds the available context size "
			     "(32768 tokens), try increasing it\",\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":38008,\"n_ctx\":32768}}";
	assert_string_equal(classify("llama", 400, "application/json", 0, false, ctx400, NULL, false, 0, ev), "ctx_overflow");
	assert_non_null(strstr(ev, "38008 tokens"));
	assert_string_equal(classify("vllm", 400, "application/json", 0, false,
				     "{\"object\":\"error\",\"message\":\"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens\"}",
				     NULL, false, 0, ev), "ctx_overflow");
	assert_string_equal(classify("llama", 200, "text/event-stream", 0, false, NULL,
				     "{\"error\":{\"code\":500,\"message\":\"got exception: std::bad_alloc\",\"type\":\"server_error\"}}",
				     false, 3, ev), "oom");
	assert_string_equal(classify("llama", 200, "text/event-stream", 0, false, NULL,
				     "{\"error\":{\"code\":500,\"message\":\"Context size has been exceeded.\",\"type\":\"server_error\"}}",
				     false, 11, ev), "ctx_overflow");
	assert_string_equal(classify("llama", 200, "text/event-stream", 0, false, NULL,
				     "{\"error\":{\"code\":500,\"message\":\"The model produced output that does not match the expected peg-native format\"}}",
				     false, 40, ev), "http_error");
	assert_string_equal(classify("vllm", 500, "application/json", 0, false,
				     "{\"error\":\"CUDA out of memory. Tried to allocate 2.00 GiB\"}", NULL, false, 0, ev), "oom");
	/* transport facts */
	assert_string_equal(classify("llama", 0, "", 7, false, NULL, NULL, false, 0, ev), "crash");
	assert_string_equal(classify("llama", 200, "text/event-stream", 18, false, NULL, NULL, false, 300, ev), "crash");
	assert_non_null(strstr(ev, "300 token events"));
	assert_string_equal(classify("llama", 0, "", 28, true, NULL, NULL, false, 0, ev), "timeout");
	assert_string_equal(classify("llama", 404, "text/html", 0, false, "<html><body>Not Found</body></html>", NULL, false,
				     0, ev), "http_error");
	assert_non_null(strstr(ev, "POST /v1/chat/completions returned HTTP 404"));
	assert_non_null(strstr(ev, "Not Found"));
	assert_string_equal(classify("llama", 200, "text/html", 0, false, "<html>hello</html>", NULL, false, 0, ev),
			    "protocol_error");
	assert_non_null(strstr(ev, "expected text/event-stream, got text/html"));
	assert_string_equal(classify("llama", 200, "text/event-stream", 0, false, NULL, NULL, false, 5, ev), "protocol_error");
	assert_non_null(strstr(ev, "without its end marker"));
	assert_string_equal(classify("llama", 200, "text/event-stream", 0, false, NULL, NULL, true, 5, ev), "ok");
	assert_string_equal(classify("llama", 429, "application/json", 0, false, "{\"error\":\"slow down\"}", NULL, false, 0, ev),
			    "http_error");
}

static void test_bad_rule_file(void **state)
{
	char dir[] = "/tmp/ar-rules-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char p[600];
	snprintf(p, sizeof p, "%s/generic.rules", dir);
	FILE *f = fopen(p, "w");
	fputs("# comment\noom body (unclosed\n", f);
	fclose(f);
	struct rules *r = NULL;
	struct ar_err err = {0};
	assert_int_equal(rules_load(&r, dir, "x", &err), -1);
	assert_non_null(strstr(err.msg, "generic.rules:2: bad pattern"));
	f = fopen(p, "w");
	fputs("explode body x\n", f);
	fclose(f);
	assert_int_equal(rules_load(&r, dir, "x", &err), -1);
	assert_non_null(strstr(err.msg, "generic.rules:1: unknown class 'explode'"));
	unlink(p);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_llama_chat_usage),     cmocka_unit_test(test_llama_chat_timings_only),
		cmocka_unit_test(test_ping_is_not_a_token),  cmocka_unit_test(test_llama_midstream_error),
		cmocka_unit_test(test_vllm_reasoning_counts), cmocka_unit_test(test_llama_native_completion),
		cmocka_unit_test(test_anthropic),            cmocka_unit_test(test_ollama),
		cmocka_unit_test(test_bodies),               cmocka_unit_test(test_rules_files_load),
		cmocka_unit_test(test_classify),             cmocka_unit_test(test_bad_rule_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
