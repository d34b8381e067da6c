/* Unit tests of the importer core (generators/import/import.c,
 * import_blocks.c): time parsing, the line reader (CRLF, a 500 KB line, the
 * ceiling, a last line without LF), usage normalisation, token-only turns
 * (keep where the block ids diverge), sniffing of every real sample, and a
 * Claude Code log with a 500 KB tool result end to end (the written trace
 * validates and carries the whole result). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import.h"
#include "trace_io.h"

static void test_iso8601(void **state)
{
	(void)state;
	double t;
	assert_int_equal(imp_iso8601("1970-01-01T00:00:00Z", &t), 0);
	assert_true(t == 0);
	assert_int_equal(imp_iso8601("2026-06-16T16:29:02.518Z", &t), 0);
	assert_true(t > 1781627342.517 && t < 1781627342.519); /* date -d 2026-06-16T16:29:02Z +%s */
	double u;
	assert_int_equal(imp_iso8601("2026-06-16T18:29:02.518+02:00", &u), 0);
	assert_true(u == t);
	assert_int_equal(imp_iso8601("2000-02-29 12:00:00", &t), 0);
	assert_true(t == 951825600);
	assert_int_equal(imp_iso8601("yesterday", &t), -1);
	assert_int_equal(imp_iso8601("2026-13-01T00:00:00Z", &t), -1);
	assert_int_equal(imp_iso8601(NULL, &t), -1);
}

static char *tmpfile_with(const char *data, size_t n)
{
	static char path[64];
	strcpy(path, "/tmp/test_import_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
	return path;
}

static void test_lines(void **state)
{
	(void)state;
	size_t big = 500 * 1024;
	char *data = malloc(big + 64);
	strcpy(data, "one\r\n");
	size_t n = 5;
	memset(data + n, 'x', big);
	n += big;
	memcpy(data + n, "\nlast", 5);
	n += 5;
	char *path = tmpfile_with(data, n);
	struct imp_lines r;
	struct ar_err err = {0};
	const char *s;
	size_t len;
	assert_int_equal(imp_lines_open(&r, path, 0, &err), 0);
	assert_int_equal(imp_lines_next(&r, &s, &len, &err), 1);
	assert_int_equal(len, 3); /* CR of CRLF dropped */
	assert_memory_equal(s, "one", 3);
	assert_int_equal(imp_lines_next(&r, &s, &len, &err), 1);
	assert_int_equal(len, big);
	assert_int_equal(r.lineno, 2);
	assert_int_equal(imp_lines_next(&r, &s, &len, &err), 1);
	assert_int_equal(len, 4); /* no LF at the end */
	assert_int_equal(imp_lines_next(&r, &s, &len, &err), 0);
	imp_lines_close(&r);
	/* the same file with a ceiling below the long line */
	assert_int_equal(imp_lines_open(&r, path, 100000, &err), 0);
	assert_int_equal(imp_lines_next(&r, &s, &len, &err), 1);
	assert_int_equal(imp_lines_next(&r, &s, &len, &err), -1);
	assert_non_null(strstr(err.msg, ":2: line longer than 100000 bytes"));
	imp_lines_close(&r);
	unlink(path);
	free(data);
}

static void test_usage(void **state)
{
	(void)state;
	struct imp_usage u;
	cJSON *a = cJSON_Parse("{\"input_tokens\":2,\"cache_creation_input_tokens\":13246,"
			       "\"cache_read_input_tokens\":24009,\"output_tokens\":437}");
	imp_usage_anthropic(a, &u);
	assert_int_equal(u.prompt, 2 + 13246 + 24009);
	assert_int_equal(u.cached, 24009);
	assert_int_equal(u.output, 437);
	assert_int_equal(u.cache_write, 13246);
	cJSON_Delete(a);
	cJSON *o = cJSON_Parse("{\"completion_tokens\":73,\"prompt_tokens\":1529,\"prompt_tokens_details\":"
			       "{\"cached_tokens\":320},\"prompt_cache_hit_tokens\":320}");
	imp_usage_openai(o, &u);
	assert_int_equal(u.prompt, 1529); /* OpenAI/DeepSeek: prompt includes cached */
	assert_int_equal(u.cached, 320);
	assert_int_equal(u.output, 73);
	cJSON_Delete(o);
	cJSON *d = cJSON_Parse("{\"prompt_tokens\":100,\"completion_tokens\":5,\"prompt_cache_hit_tokens\":64}");
	imp_usage_openai(d, &u);
	assert_int_equal(u.cached, 64);
	cJSON_Delete(d);
	assert_string_equal(imp_finish("end_turn"), "stop");
	assert_string_equal(imp_finish("tool_use"), "tool_calls");
	assert_string_equal(imp_finish("max_tokens"), "length");
	assert_null(imp_finish("pause_turn"));
}

static void test_blocks(void **state)
{
	(void)state;
	struct imp_blocks b;
	struct ar_err err = {0};
	struct tr_turn t;
	int64_t cached;
	imp_blocks_init(&b, 64, false); /* WEKA: floor */
	imp_turn_init(&t);
	int64_t r0[] = {1, 2, 3}, r1[] = {1, 2, 3, 4}, r2[] = {1, 9, 10};
	assert_int_equal(imp_blocks_turn(&b, &t, r0, 3, 200, &cached, &err), 0);
	assert_int_equal(t.keep, -1);
	assert_int_equal(t.n_append, 1);
	assert_int_equal(t.append[0].synth->tokens, 200 - TR_MESSAGE_OVERHEAD_TOKENS);
	assert_int_equal(t.append[0].synth->n_blocks, 3);
	assert_int_equal(cached, 0);
	imp_turn_clear(&t);
	/* growth: only the new block, sized so the whole prompt estimates to `in` */
	assert_int_equal(imp_blocks_turn(&b, &t, r1, 4, 270, &cached, &err), 0);
	assert_int_equal(t.keep, -1);
	assert_int_equal(t.append[0].synth->n_blocks, 1);
	assert_int_equal(t.append[0].synth->blocks[0], 4);
	/* 196 + 4 (message) + 4 (the response) + x + 4 = 270 */
	assert_int_equal(t.append[0].synth->tokens, 270 - 196 - 4 - 4 - 4);
	assert_int_equal(cached, 3 * 64);
	imp_turn_clear(&t);
	/* divergence after block 1: nothing of the history survives whole */
	assert_int_equal(imp_blocks_turn(&b, &t, r2, 3, 200, &cached, &err), 0);
	assert_int_equal(t.keep, 0);
	assert_int_equal(t.append[0].synth->n_blocks, 3);
	assert_int_equal(cached, 64);
	imp_turn_clear(&t);
	imp_blocks_free(&b);
}

/* every real sample in tests/data/import/<format>/ sniffs as <format> */
static void test_sniff_real(void **state)
{
	(void)state;
	static const char *const files[][2] = {
		{"claude-code", "claude-code/yael-peretz_jgive_transcript.jsonl"},
		{"claude-code", "claude-code/simonw-cct_5cccb21_sample-context-session.json"},
		{"codex", "codex/simonw-cct_871966d_sample_codex_session.jsonl"},
		{"gemini-cli", "gemini-cli/metaphi-010ac575_session-2026-01-30T06-08-7befeae5.json"},
		{"gemini-cli", "gemini-cli/metaphi-010ac575_transcript.stream-json.head40.jsonl"},
		{"mini-swe-agent", "mini-swe-agent/deepseek_bench1__astropy__astropy-12907.traj.json"},
		{"mooncake", "mooncake/synthetic_trace.head300.jsonl"},
		{"openhands", "openhands/tests_runtime_trajs_basic.json"},
		{"openhands", "openhands/multi_swe_bench_output.line1.jsonl"},
		{"swe-agent", "swe-agent/function_calling_simple.traj"},
		{"swe-agent", "swe-agent/ctf__crypto__katy.traj"},
		{"weka", "weka/trace_0291.json"},
		{"aider", "aider/jkassemi_friendly_names.aider.llm.history"},
		{"managed-agents", "managed-agents/open-hai_hraq_transcript.jsonl"},
	};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char path[1024];
		snprintf(path, sizeof path, "%s/import/%s", AR_TEST_DATA, files[i][1]);
		struct ar_err err = {0};
		const struct importer *imp = import_sniff(path, &err);
		if (!imp)
			fail_msg("%s: %s", path, err.msg);
		if (strcmp(imp->name, files[i][0]))
			fail_msg("%s sniffed as %s", files[i][1], imp->name);
	}
	struct ar_err err = {0};
	char *p = tmpfile_with("just text\n", 10);
	assert_null(import_sniff(p, &err));
	assert_non_null(strstr(err.msg, "tried claude-code, codex"));
	unlink(p);
}

/* A Claude Code log whose tool result is a 500 KB line imports whole. */
static void test_big_line_end_to_end(void **state)
{
	(void)state;
	size_t big = 500 * 1024;
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"parentUuid\":null,\"type\":\"user\",\"uuid\":\"u1\",\"sessionId\":\"s\",\"timestamp\":\"2026-01-01T00:00:00Z\","
		     "\"message\":{\"role\":\"user\",\"content\":\"go\"}}\n");
	buf_puts(&b, "{\"parentUuid\":\"u1\",\"type\":\"assistant\",\"uuid\":\"a1\",\"sessionId\":\"s\",\"timestamp\":\"2026-01-01T00:00:01Z\","
		     "\"message\":{\"id\":\"m1\",\"model\":\"x\",\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\","
		     "\"name\":\"Read\",\"input\":{}}],\"usage\":{\"input_tokens\":5000,\"output_tokens\":9}}}\n");
	buf_puts(&b, "{\"parentUuid\":\"a1\",\"type\":\"user\",\"uuid\":\"u2\",\"sessionId\":\"s\",\"timestamp\":\"2026-01-01T00:00:02Z\","
		     "\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":\"");
	for (size_t i = 0; i < big / 8; i++)
		buf_puts(&b, "abc def ");
	buf_puts(&b, "\"}]}}\n");
	buf_puts(&b, "{\"parentUuid\":\"u2\",\"type\":\"assistant\",\"uuid\":\"a2\",\"sessionId\":\"s\",\"timestamp\":\"2026-01-01T00:00:03Z\","
		     "\"message\":{\"id\":\"m2\",\"model\":\"x\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"}],"
		     "\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":135000,\"output_tokens\":2}}}\n");
	char in[64];
	strcpy(in, tmpfile_with(b.data, b.len));
	buf_free(&b);
	char out[80];
	snprintf(out, sizeof out, "%s.trace", in);
	struct imp_opts o = {0};
	struct imp_report rep;
	memset(&rep, 0, sizeof rep);
	struct ar_err err = {0};
	const char *inputs[] = {in};
	if (import_run(import_find("claude-code"), inputs, 1, out, &o, &rep, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(rep.turns, 2);
	assert_int_equal(rep.tool_calls, 1);
	assert_int_equal(rep.tool_results, 1);
	assert_int_equal(rep.rec_prompt, 5000 + 135005);
	imp_report_free(&rep);
	/* the written trace validates and holds the whole result */
	struct trace_reader *r = NULL;
	struct trace_reader_opts ro = {0};
	assert_int_equal(trace_reader_open(&r, out, &ro, &err), 0);
	size_t longest = 0;
	int items = 0;
	for (;;) {
		struct trace_item it;
		struct trace_diag d;
		trace_diag_clear(&d);
		int rc = trace_reader_next(r, &it, &d, &err);
		if (rc == TRACE_EOF)
			break;
		assert_int_equal(rc, TRACE_ITEM);
		items++;
		if (it.kind == TRACE_ITEM_TURN)
			for (size_t k = 0; k < it.turn->n_append; k++)
				if (it.turn->append[k].content_len > longest)
					longest = it.turn->append[k].content_len;
		trace_item_clear(&it);
	}
	trace_reader_close(r);
	assert_int_equal(items, 3);
	assert_int_equal(longest, big);
	unlink(in);
	unlink(out);
}

/* Writes text with every "sessionId":"s1" naming sid instead. */
static void write_with_sid(const char *path, const char *text, const char *sid)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	static const char key[] = "\"sessionId\":\"s1\"";
	for (const char *p = text, *q; *p; p = q + strlen(key)) {
		q = strstr(p, key);
		if (!q) {
			fputs(p, f);
			break;
		}
		fprintf(f, "%.*s\"sessionId\":\"%s\"", (int)(q - p), p, sid);
	}
	fclose(f);
}

/* Claude Code 2.1.x writes subagents to <dir>/<session>/subagents/agent-*.jsonl:
 * they become children of the main session, spawned at the Task call. The
 * session id comes from the log: one that is not a plain file name ("s*",
 * "../s1") must not steer the search, so the folder s1/ is not found then. */
static void claude_subagent_files(const char *sid, int want_subagents)
{
	char dir[] = "/tmp/test_import_cc_XXXXXX";
	assert_non_null(mkdtemp(dir));
	char p[256];
	snprintf(p, sizeof p, "%s/s1", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/s1/subagents", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	static const char *const main_log =
		"{\"parentUuid\":null,\"type\":\"user\",\"uuid\":\"u1\",\"sessionId\":\"s1\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"message\":{\"role\":\"user\",\"content\":\"go\"}}\n"
		"{\"parentUuid\":\"u1\",\"type\":\"assistant\",\"uuid\":\"a1\",\"sessionId\":\"s1\",\"timestamp\":\"2026-01-01T00:00:01Z\",\"message\":{\"id\":\"m1\",\"model\":\"x\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"plan\"}],\"usage\":{\"input_tokens\":900,\"output_tokens\":5}}}\n"
		"{\"parentUuid\":\"a1\",\"type\":\"user\",\"uuid\":\"u2\",\"sessionId\":\"s1\",\"timestamp\":\"2026-01-01T00:00:02Z\",\"message\":{\"role\":\"user\",\"content\":\"now\"}}\n"
		"{\"parentUuid\":\"u2\",\"type\":\"assistant\",\"uuid\":\"a2\",\"sessionId\":\"s1\",\"timestamp\":\"2026-01-01T00:00:03Z\",\"message\":{\"id\":\"m2\",\"model\":\"x\",\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"Task\",\"input\":{\"prompt\":\"look\"}}],\"usage\":{\"input_tokens\":950,\"output_tokens\":9}}}\n"
		"{\"parentUuid\":\"a2\",\"type\":\"user\",\"uuid\":\"u3\",\"sessionId\":\"s1\",\"timestamp\":\"2026-01-01T00:00:09Z\",\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":\"found\"}]}}\n"
		"{\"parentUuid\":\"u3\",\"type\":\"assistant\",\"uuid\":\"a3\",\"sessionId\":\"s1\",\"timestamp\":\"2026-01-01T00:00:10Z\",\"message\":{\"id\":\"m3\",\"model\":\"x\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"}],\"usage\":{\"input_tokens\":990,\"output_tokens\":2}}}\n";
	static const char *const agent_log =
		"{\"parentUuid\":null,\"isSidechain\":true,\"agentId\":\"ag1\",\"type\":\"user\",\"uuid\":\"x1\",\"sessionId\":\"s1\",\"timestamp\":\"2026-01-01T00:00:04Z\",\"message\":{\"role\":\"user\",\"content\":\"look\"}}\n"
		"{\"parentUuid\":\"x1\",\"isSidechain\":true,\"agentId\":\"ag1\",\"type\":\"assistant\",\"uuid\":\"x2\",\"sessionId\":\"s1\",\"timestamp\":\"2026-01-01T00:00:08Z\",\"message\":{\"id\":\"n1\",\"model\":\"h\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"found\"}],\"usage\":{\"input_tokens\":400,\"output_tokens\":3}}}\n";
	char mainp[256], agentp[256], out[256];
	snprintf(mainp, sizeof mainp, "%s/s1.jsonl", dir);
	snprintf(agentp, sizeof agentp, "%s/s1/subagents/agent-ag1.jsonl", dir);
	snprintf(out, sizeof out, "%s/out.jsonl", dir);
	write_with_sid(mainp, main_log, sid);
	write_with_sid(agentp, agent_log, sid);
	struct imp_opts o = {0};
	struct imp_report rep;
	memset(&rep, 0, sizeof rep);
	struct ar_err err = {0};
	const char *inputs[] = {mainp};
	if (import_run(import_find("claude-code"), inputs, 1, out, &o, &rep, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(rep.sessions, 1 + want_subagents);
	assert_int_equal(rep.subagents, want_subagents);
	assert_int_equal(rep.turns, 3 + want_subagents);
	imp_report_free(&rep);
	struct trace_reader *r = NULL;
	struct trace_reader_opts ro = {0};
	assert_int_equal(trace_reader_open(&r, out, &ro, &err), 0);
	bool seen_child = false;
	for (;;) {
		struct trace_item it;
		struct trace_diag d;
		trace_diag_clear(&d);
		int rc = trace_reader_next(r, &it, &d, &err);
		if (rc == TRACE_EOF)
			break;
		assert_int_equal(rc, TRACE_ITEM);
		if (it.kind == TRACE_ITEM_SESSION && it.session->parent) {
			assert_string_equal(it.session->parent, sid);
			assert_int_equal(it.session->spawned_at_turn, 1); /* the turn that called Task */
			seen_child = true;
		}
		trace_item_clear(&it);
	}
	trace_reader_close(r);
	assert_int_equal(seen_child, want_subagents > 0);
	unlink(out);
	unlink(agentp);
	unlink(mainp);
	snprintf(p, sizeof p, "%s/s1/subagents", dir);
	rmdir(p);
	snprintf(p, sizeof p, "%s/s1", dir);
	rmdir(p);
	rmdir(dir);
}

static void test_claude_subagent_files(void **state)
{
	(void)state;
	claude_subagent_files("s1", 1);
	claude_subagent_files("s*", 0);
	claude_subagent_files("../s1", 0);
	claude_subagent_files(".", 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iso8601),       cmocka_unit_test(test_lines),
		cmocka_unit_test(test_usage),         cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_sniff_real),    cmocka_unit_test(test_big_line_end_to_end),
		cmocka_unit_test(test_claude_subagent_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
