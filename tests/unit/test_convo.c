/* Unit tests: history materialisation (src/convo.c), FORMAT.md section 7. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convo.h"
#include "trace.h"

static struct tr_turn *turn(const char *line)
{
	struct trace_item it;
	struct trace_diag d;
	trace_diag_clear(&d);
	if (trace_parse_line(line, strlen(line), &it, &d) < 0)
		fail_msg("bad test line: %s: %s", d.p[0].field, d.p[0].msg);
	return it.turn;
}

static void test_order_response_keep_append(void **state)
{
	struct convo c;
	convo_init(&c, false);
	convo_reset(&c, NULL);
	struct tr_turn *t0 = turn("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"one\"},"
				  "{\"role\":\"user\",\"content\":\"two\"}],\"response\":{\"content\":\"r0\","
				  "\"tool_calls\":[{\"id\":\"c\",\"name\":\"bash\",\"arguments\":\"{}\"}]}}");
	struct tr_turn *t1 = turn("{\"type\":\"turn\",\"i\":1,\"append\":[{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"out\"}],"
				  "\"response\":{\"content\":\"r1\"}}");
	/* keep 1: the previous response is added first, then truncation drops it */
	struct tr_turn *t2 = turn("{\"type\":\"turn\",\"i\":2,\"keep\":1,\"append\":[{\"role\":\"user\",\"content\":\"summary\"}]}");
	struct tr_turn *t3 = turn("{\"type\":\"turn\",\"i\":3,\"keep\":9,\"append\":[]}");
	struct ar_err err;
	assert_int_equal(convo_step(&c, t0, &err), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(convo_step(&c, t1, &err), 0);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.msgs[2].role, TR_ASSISTANT);
	assert_string_equal(c.msgs[2].content, "r0");
	assert_int_equal(c.msgs[2].n_calls, 1);
	assert_string_equal(c.msgs[3].tool_call_id, "c");
	int64_t before = convo_tokens(&c);
	assert_int_equal(convo_step(&c, t2, &err), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.msgs[0].content, "one");
	assert_string_equal(c.msgs[1].content, "summary");
	assert_true(convo_tokens(&c) < before);
	/* token sum equals the per-message estimates */
	assert_int_equal(c.history_tokens, tr_message_tokens(&t0->append[0]) + tr_message_tokens(&t2->append[0]));
	assert_int_equal(convo_step(&c, t3, &err), -1);
	assert_non_null(strstr(err.msg, "keep 9"));
	tr_turn_free(t0);
	tr_turn_free(t1);
	tr_turn_free(t2);
	tr_turn_free(t3);
	convo_free(&c);
}

/* count-only mode gives the same token totals as full mode */
static void test_count_only_matches(void **state)
{
	struct convo a, b;
	convo_init(&a, false);
	convo_init(&b, CONVO_COUNT_ONLY);
	convo_reset(&a, NULL);
	convo_reset(&b, NULL);
	const char *lines[] = {
		"{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":700}}],\"response\":{\"content\":\"hello there\"}}",
		"{\"type\":\"turn\",\"i\":1,\"append\":[{\"role\":\"user\",\"content\":\"int main(void) { return 0; }\"}],\"response\":{}}",
		"{\"type\":\"turn\",\"i\":2,\"keep\":0,\"append\":[{\"role\":\"user\",\"content\":\"fresh\"}]}",
	};
	struct ar_err err;
	for (int i = 0; i < 3; i++) {
		struct tr_turn *t = turn(lines[i]);
		assert_int_equal(convo_step(&a, t, &err), 0);
		assert_int_equal(convo_step(&b, t, &err), 0);
		assert_int_equal(convo_tokens(&a), convo_tokens(&b));
		tr_turn_free(t);
	}
	assert_int_equal(b.n, 1);
	convo_free(&a);
	convo_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_response_keep_append),
		cmocka_unit_test(test_count_only_matches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
