/* Unit tests: the per-line codec of agentreplay-trace/1 (src/trace.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "trace.h"

static int parse(const char *line, struct trace_item *it, struct trace_diag *d)
{
	trace_diag_clear(d);
	return trace_parse_line(line, strlen(line), it, d);
}

/* Asserts the line fails with a problem at `field` whose message contains `msg`. */
static void expect_bad(const char *line, const char *field, const char *msg)
{
	struct trace_item it;
	struct trace_diag d;
	int rc = parse(line, &it, &d);
	if (rc == 0)
		fail_msg("accepted: %s", line);
	for (size_t i = 0; i < d.n; i++)
		if (!strcmp(d.p[i].field, field) && strstr(d.p[i].msg, msg))
			return;
	for (size_t i = 0; i < d.n; i++)
		print_message("  got %s: %s\n", d.p[i].field, d.p[i].msg);
	fail_msg("no problem '%s: ...%s...' for %s", field, msg, line);
}

static void test_session_ok(void **state)
{
	struct trace_item it;
	struct trace_diag d;
	const char *l = "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"s1\","
			"\"source\":{\"kind\":\"hand\"},\"model\":\"m\",\"system\":\"sys\",\"tools\":"
			"[{\"type\":\"function\",\"function\":{\"name\":\"read\",\"parameters\":{}}}],"
			"\"meta\":{\"a\":1},\"zzz\":[1,2]}";
	assert_int_equal(parse(l, &it, &d), 0);
	assert_int_equal(it.kind, TRACE_ITEM_SESSION);
	assert_string_equal(it.session->id, "s1");
	assert_string_equal(it.session->system, "sys");
	assert_null(it.session->parent);
	assert_int_equal(it.session->spawned_at_turn, -1);
	assert_non_null(cJSON_GetObjectItem(it.session->extra, "zzz"));
	trace_item_clear(&it);
	/* minor revisions are accepted */
	assert_int_equal(parse("{\"type\":\"session\",\"format\":\"agentreplay-trace/1.3\",\"id\":\"x\"}", &it, &d), 0);
	trace_item_clear(&it);
}

static void test_session_bad(void **state)
{
	expect_bad("{\"type\":\"session\",\"id\":\"x\"}", "format", "missing");
	expect_bad("{\"type\":\"session\",\"format\":\"agentreplay-trace/2\",\"id\":\"x\"}", "format",
		   "unsupported format");
	expect_bad("{\"type\":\"session\",\"format\":\"agentreplay-trace/1\"}", "id", "missing");
	expect_bad("{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"\"}", "id", "empty");
	expect_bad("{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":7}", "id", "expected string, got number");
	expect_bad("{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"x\",\"tools\":{}}",
		   "tools", "expected array, got object");
	expect_bad("{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"x\",\"tools\":"
		   "[{\"type\":\"function\",\"function\":{\"name\":\"a\"}},{\"type\":\"function\",\"function\":{\"name\":\"a\"}}]}",
		   "tools[1].function.name", "duplicate tool name");
	expect_bad("{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"x\",\"parent\":\"p\"}",
		   "spawned_at_turn", "required");
	expect_bad("{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"x\",\"id\":\"y\"}", "id",
		   "duplicate field");
}

static void test_turn_ok(void **state)
{
	struct trace_item it;
	struct trace_diag d;
	const char *l =
		"{\"type\":\"turn\",\"i\":3,\"t\":1.5,\"keep\":0,\"append\":["
		"{\"role\":\"user\",\"content\":\"hi\"},"
		"{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"name\":\"bash\",\"arguments\":\"{}\"}]},"
		"{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\"},"
		"{\"role\":\"user\",\"synthetic\":{\"tokens\":1000,\"blocks\":[1,2],\"block_tokens\":512}}],"
		"\"response\":{\"content\":\"done\",\"output_tokens\":48},"
		"\"recorded\":{\"prompt_tokens\":9120,\"cached_tokens\":0,\"ttft_ms\":812.5}}";
	assert_int_equal(parse(l, &it, &d), 0);
	struct tr_turn *t = it.turn;
	assert_int_equal(t->i, 3);
	assert_true(t->has_t && t->t == 1.5);
	assert_int_equal(t->keep, 0);
	assert_int_equal(t->n_append, 4);
	assert_int_equal(t->append[1].n_calls, 1);
	assert_string_equal(t->append[1].calls[0].name, "bash");
	assert_null(t->append[1].content);
	assert_int_equal(t->append[3].synth->tokens, 1000);
	assert_int_equal(t->append[3].synth->n_blocks, 2);
	assert_int_equal(t->response->output_tokens, 48);
	assert_int_equal(tr_response_output_tokens(t->response), 48);
	assert_int_equal(tr_message_tokens(&t->append[3]), 1000 + TR_MESSAGE_OVERHEAD_TOKENS);
	trace_item_clear(&it);
}

static void test_turn_bad(void **state)
{
	expect_bad("{\"type\":\"turn\",\"append\":[]}", "i", "missing");
	expect_bad("{\"type\":\"turn\",\"i\":1.5,\"append\":[]}", "i", "expected integer, got 1.5");
	expect_bad("{\"type\":\"turn\",\"i\":-1,\"append\":[]}", "i", ">= 0");
	expect_bad("{\"type\":\"turn\",\"i\":\"0\",\"append\":[]}", "i", "expected integer, got string");
	expect_bad("{\"type\":\"turn\",\"i\":0}", "append", "missing");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"t\":-1,\"append\":[]}", "t", ">= 0");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
		   "append[0].role", "unknown role 'robot'");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"content\":\"x\"}]}", "append[0].role", "missing required field");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\"}]}", "append[0]", "needs exactly one of content or synthetic");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":3}]}",
		   "append[0].content", "expected string, got number");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "append[0].tool_call_id",
		   "missing required field");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"x\",\"tool_call_id\":\"c\"}]}",
		   "append[0].tool_call_id", "only allowed on role tool");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"x\",\"synthetic\":{\"tokens\":3}}]}",
		   "append[0]", "needs exactly one");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":0}}]}",
		   "append[0].synthetic.tokens", ">= 1");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":9,\"blocks\":[1]}}]}",
		   "append[0].synthetic.block_tokens", "required with blocks");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[],\"response\":{\"output_tokens\":0}}",
		   "response.output_tokens", ">= 1");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[],\"response\":{\"tool_calls\":[{\"name\":\"x\"}]}}",
		   "response.tool_calls[0].id", "missing required field");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[],\"recorded\":{\"prompt_tokens\":5,\"cached_tokens\":9}}",
		   "recorded.cached_tokens", "exceeds prompt_tokens");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[],\"response\":[]}", "response", "expected object, got array");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[],\"response\":{\"finish\":\"end_turn\"}}", "response.finish",
		   "unknown finish reason 'end_turn'");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[],\"response\":{\"tool_calls\":[]}}", "response.tool_calls",
		   "must not be empty");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":null}]}", "append[0].content",
		   "expected string, got null");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":1000,\"blocks\":[1,2,3,4,5],\"block_tokens\":256}}]}",
		   "append[0].synthetic.blocks", "5 blocks of 256 tokens exceed tokens 1000");
	expect_bad("{\"type\":\"turn\",\"i\":1e19,\"append\":[]}", "i", "integer out of range");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"t\":1e400,\"append\":[]}", "t", "number out of range");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"x\",\"role\":\"user\"}]}",
		   "append[0].role", "duplicate field");
	expect_bad("{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"x\",\"tools\":[{\"type\":\"web\",\"function\":{\"name\":\"a\"}}]}",
		   "tools[0].type", "unsupported tool type 'web'");
}

static void test_line_bad(void **state)
{
	expect_bad("{\"type\":\"turn\"", "", "invalid JSON");
	expect_bad("[1,2]", "", "line is not a JSON object");
	expect_bad("{\"i\":0}", "type", "missing");
	expect_bad("{\"type\":\"banana\"}", "type", "unknown line type 'banana'");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[]} x", "", "invalid JSON");
	expect_bad("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", "",
		   "U+0000");
	struct trace_item it;
	struct trace_diag d;
	assert_int_equal(parse("{\"type\":\"banana\"}", &it, &d), -1);
	assert_true(d.unknown_type);
	/* a literal backslash before u0000 text is fine */
	assert_int_equal(parse("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"a\\\\u0000\"}]}",
			       &it, &d), 0);
	assert_string_equal(it.turn->append[0].content, "a\\u0000");
	trace_item_clear(&it);
}

static void test_many_problems(void **state)
{
	struct trace_item it;
	struct trace_diag d;
	assert_int_equal(parse("{\"type\":\"turn\",\"i\":\"x\",\"t\":\"y\",\"keep\":-2,\"append\":7}", &it, &d), -1);
	assert_int_equal(d.n, 4); /* all four reported, not just the first */
}

/* parse -> write -> parse -> write is stable, unknown fields kept in order */
static void test_roundtrip(void **state)
{
	const char *lines[] = {
		"{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"s\",\"parent\":\"p\",\"spawned_at_turn\":2,"
		"\"source\":{\"kind\":\"x\",\"file\":\"f\"},\"system\":\"a\\nb\\u0001\",\"z2\":1,\"a1\":{\"k\":[true,null]}}",
		"{\"i\":7,\"type\":\"turn\",\"extra\":\"kept\",\"t\":0.1,\"append\":[{\"name\":\"n\",\"role\":\"tool\","
		"\"tool_call_id\":\"c\",\"content\":\"\\\"q\\\"\",\"x\":1}],\"response\":{\"finish\":\"stop\","
		"\"reasoning_tokens\":5,\"content\":\"\\u00e9\"},\"recorded\":{\"ttft_ms\":1.25}}",
	};
	for (size_t k = 0; k < 2; k++) {
		struct trace_item it;
		struct trace_diag d;
		assert_int_equal(parse(lines[k], &it, &d), 0);
		struct buf b1 = BUF_INIT, b2 = BUF_INIT;
		if (it.kind == TRACE_ITEM_SESSION)
			assert_int_equal(tr_session_write(it.session, &b1), 0);
		else
			assert_int_equal(tr_turn_write(it.turn, &b1), 0);
		trace_item_clear(&it);
		assert_int_equal(parse(b1.data, &it, &d), 0);
		if (it.kind == TRACE_ITEM_SESSION)
			assert_int_equal(tr_session_write(it.session, &b2), 0);
		else
			assert_int_equal(tr_turn_write(it.turn, &b2), 0);
		trace_item_clear(&it);
		assert_string_equal(b1.data, b2.data);
		buf_free(&b1);
		buf_free(&b2);
	}
	/* canonical order: known fields first, then unknown in original order */
	struct trace_item it;
	struct trace_diag d;
	assert_int_equal(parse(lines[1], &it, &d), 0);
	struct buf b = BUF_INIT;
	tr_turn_write(it.turn, &b);
	assert_string_equal(b.data,
			    "{\"type\":\"turn\",\"i\":7,\"t\":0.1,\"append\":[{\"role\":\"tool\",\"content\":\"\\\"q\\\"\","
			    "\"tool_call_id\":\"c\",\"name\":\"n\",\"x\":1}],\"response\":{\"content\":\"\xc3\xa9\","
			    "\"reasoning_tokens\":5,\"finish\":\"stop\"},\"recorded\":{\"ttft_ms\":1.25},\"extra\":\"kept\"}");
	buf_free(&b);
	trace_item_clear(&it);
}

static void test_output_tokens_default(void **state)
{
	struct trace_item it;
	struct trace_diag d;
	assert_int_equal(parse("{\"type\":\"turn\",\"i\":0,\"append\":[],\"response\":{\"reasoning_tokens\":300}}", &it, &d), 0);
	assert_int_equal(tr_response_output_tokens(it.turn->response), 300);
	trace_item_clear(&it);
	assert_int_equal(parse("{\"type\":\"turn\",\"i\":0,\"append\":[],\"response\":{}}", &it, &d), 0);
	assert_int_equal(tr_response_output_tokens(it.turn->response), 1);
	trace_item_clear(&it);
	assert_int_equal(tr_response_output_tokens(NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session_ok),  cmocka_unit_test(test_session_bad),
		cmocka_unit_test(test_turn_ok),     cmocka_unit_test(test_turn_bad),
		cmocka_unit_test(test_line_bad),    cmocka_unit_test(test_many_problems),
		cmocka_unit_test(test_roundtrip),   cmocka_unit_test(test_output_tokens_default),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
