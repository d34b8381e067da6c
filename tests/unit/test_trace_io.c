/* Unit tests: streaming trace reader and atomic writer (src/trace_io.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "buf.h"
#include "trace_io.h"

static char dir[256];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/ar-test-io-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name)
{
	static char p[4][320];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
	return p[k];
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
}

static void write_zst(const char *path, const char *text, size_t n)
{
	size_t cap = ZSTD_compressBound(n);
	char *z = malloc(cap);
	size_t zn = ZSTD_compress(z, cap, text, n, 3);
	assert_false(ZSTD_isError(zn));
	write_file(path, z, zn);
	free(z);
}

/* Reads a whole file into a log: "S id" / "T i" per item, "L:C FIELD: MSG" per
 * problem, "W ..." per warning, "F msg" for a fatal error. */
static void run(const char *path, bool lenient, struct buf *log)
{
	struct trace_reader_opts o = {0, lenient};
	struct trace_reader *r;
	struct ar_err err = {0};
	buf_reset(log);
	if (trace_reader_open(&r, path, &o, &err) < 0) {
		buf_printf(log, "F %s\n", err.msg);
		return;
	}
	for (;;) {
		struct trace_item it;
		struct trace_diag d;
		int rc = trace_reader_next(r, &it, &d, &err);
		if (rc == TRACE_EOF)
			break;
		if (rc == TRACE_FATAL) {
			buf_printf(log, "F %s\n", err.msg);
			break;
		}
		if (rc == TRACE_ITEM) {
			if (it.kind == TRACE_ITEM_SESSION)
				buf_printf(log, "S %s\n", it.session->id);
			else
				buf_printf(log, "T %lld\n", (long long)it.turn->i);
			trace_item_clear(&it);
			continue;
		}
		for (size_t k = 0; k < d.n; k++)
			buf_printf(log, "%s%llu:%ld %s: %s\n", rc == TRACE_SKIPPED ? "W " : "",
				   (unsigned long long)trace_reader_line(r), d.p[k].col, d.p[k].field, d.p[k].msg);
	}
	trace_reader_close(r);
}

#define SESSION "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"s\",\"system\":\"sys\"}\n"
#define TURN(i) "{\"type\":\"turn\",\"i\":" #i ",\"append\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n"

static void expect_log(const char *text, bool lenient, const char *want)
{
	const char *p = path_of("t.jsonl");
	write_file(p, text, strlen(text));
	struct buf log = BUF_INIT;
	run(p, lenient, &log);
	if (strcmp(log.data ? log.data : "", want))
		fail_msg("log was:\n%s\nwanted:\n%s", log.data, want);
	buf_free(&log);
}

static void test_plain_and_zstd_same(void **state)
{
	const char text[] = SESSION TURN(0) "\r\n   \n" TURN(1);
	const char *want = "S s\nT 0\nT 1\n";
	expect_log(text, false, want);
	const char *z = path_of("t.jsonl.zst");
	write_zst(z, text, sizeof text - 1);
	struct buf log = BUF_INIT;
	run(z, false, &log);
	assert_string_equal(log.data, want);
	/* two concatenated frames read as one stream */
	char both[512];
	size_t n1 = ZSTD_compress(both, 256, SESSION, strlen(SESSION), 1);
	size_t n2 = ZSTD_compress(both + n1, 256, TURN(0), strlen(TURN(0)), 1);
	write_file(z, both, n1 + n2);
	run(z, false, &log);
	assert_string_equal(log.data, "S s\nT 0\n");
	buf_free(&log);
}

static void test_truncated_zstd(void **state)
{
	char text[4096];
	size_t n = 0;
	n += (size_t)snprintf(text + n, sizeof text - n, SESSION);
	for (int i = 0; i < 20; i++)
		n += (size_t)snprintf(text + n, sizeof text - n,
				      "{\"type\":\"turn\",\"i\":%d,\"append\":[{\"role\":\"user\",\"content\":\"x%d\"}]}\n", i, i * 7919);
	char z[8192];
	size_t zn = ZSTD_compress(z, sizeof z, text, n, 3);
	const char *p = path_of("cut.zst");
	write_file(p, z, zn - 7); /* cut inside the frame */
	struct buf log = BUF_INIT;
	run(p, false, &log);
	assert_non_null(strstr(log.data, "F "));
	assert_non_null(strstr(log.data, "zstd: truncated frame"));
	buf_free(&log);
}

static void test_empty_and_dir_and_missing(void **state)
{
	expect_log("", false, "0:0 : no session in file\n");
	expect_log("\n\n  \n", false, "0:0 : no session in file\n");
	struct buf log = BUF_INIT;
	run(dir, false, &log);
	assert_non_null(strstr(log.data, "is a directory"));
	run(path_of("nope.jsonl"), false, &log);
	assert_non_null(strstr(log.data, "No such file or directory"));
	buf_free(&log);
}

static void test_structure(void **state)
{
	expect_log(TURN(0), false, "1:0 type: turn before any session line\n0:0 : no session in file\n");
	expect_log(SESSION TURN(0) TURN(2) TURN(3), false, "S s\nT 0\n3:0 i: expected 1, got 2\nT 3\n");
	expect_log(SESSION "{\"type\":\"turn\",\"i\":0,\"t\":5,\"append\":[{\"role\":\"user\",\"content\":\"a\"}]}\n"
		   "{\"type\":\"turn\",\"i\":1,\"t\":4.5,\"append\":[]}\n",
		   false, "S s\nT 0\n3:0 t: 4.5 is less than the previous turn's 5\n");
	/* keep counts the previous response as a message */
	expect_log(SESSION TURN(0) "{\"type\":\"turn\",\"i\":1,\"keep\":2,\"append\":[]}\n", false,
		   "S s\nT 0\n3:0 keep: 2 exceeds history length 1\n");
	expect_log(SESSION "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"a\"}],\"response\":{\"content\":\"b\"}}\n"
		   "{\"type\":\"turn\",\"i\":1,\"keep\":2,\"append\":[]}\n", false, "S s\nT 0\nT 1\n");
	/* no system, nothing appended */
	expect_log("{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"n\"}\n"
		   "{\"type\":\"turn\",\"i\":0,\"append\":[]}\n",
		   false, "S n\n2:0 append: empty prompt (no system prompt and no history)\n");
	/* a session without turns is valid */
	expect_log(SESSION, false, "S s\n");
}

static void test_tool_calls(void **state)
{
	const char ok[] = SESSION
		"{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"a\"}],"
		"\"response\":{\"tool_calls\":[{\"id\":\"c1\",\"name\":\"bash\",\"arguments\":\"{}\"}]}}\n"
		"{\"type\":\"turn\",\"i\":1,\"append\":[{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"r\"},"
		"{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":\"r\"}]}\n";
	expect_log(ok, false, "S s\nT 0\n3:0 append[1].tool_call_id: tool result for unknown call 'c2'\n");
	/* a turn cannot answer its own response's calls */
	expect_log(SESSION "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"tool\",\"tool_call_id\":\"x\",\"content\":\"r\"}],"
		   "\"response\":{\"tool_calls\":[{\"id\":\"x\",\"name\":\"b\",\"arguments\":\"{}\"}]}}\n",
		   false, "S s\n2:0 append[0].tool_call_id: tool result for unknown call 'x'\n");
	/* ids are per session */
	expect_log(SESSION
		   "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"a\"}],"
		   "\"response\":{\"tool_calls\":[{\"id\":\"c1\",\"name\":\"bash\",\"arguments\":\"{}\"}]}}\n"
		   "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"s2\",\"system\":\"x\"}\n"
		   "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"r\"}]}\n",
		   false, "S s\nT 0\nS s2\n4:0 append[0].tool_call_id: tool result for unknown call 'c1'\n");
}

static void test_sessions(void **state)
{
	expect_log(SESSION TURN(0) SESSION, false, "S s\nT 0\n3:0 id: duplicate session id 's' (first at line 1)\n");
	expect_log(SESSION TURN(0)
		   "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"c\",\"parent\":\"p\",\"spawned_at_turn\":0}\n",
		   false, "S s\nT 0\n3:0 parent: unknown parent session 'p' (a parent must appear earlier in the file)\n");
	expect_log(SESSION TURN(0)
		   "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"c\",\"parent\":\"s\",\"spawned_at_turn\":1}\n",
		   false, "S s\nT 0\n3:0 spawned_at_turn: parent 's' has only 1 turns\n");
	expect_log(SESSION TURN(0)
		   "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"c\",\"parent\":\"s\",\"spawned_at_turn\":0,\"system\":\"x\"}\n"
		   TURN(0), false, "S s\nT 0\nS c\nT 0\n");
}

static void test_bad_bytes(void **state)
{
	expect_log(SESSION "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"a\xc3\x28\"}]}\n", false,
		   "S s\n2:59 : invalid UTF-8\n");
	expect_log(SESSION "{\"type\":\"turn\",\"i\":0,,}\n", false, "S s\n2:23 : invalid JSON: syntax error\n");
	expect_log(SESSION "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"\\u0000\"}]}\n", false,
		   "S s\n2:58 : string contains U+0000\n");
	expect_log(SESSION "{\"type\":\"note\"}\n" TURN(0), true,
		   "S s\nW 2:0 type: unknown line type 'note', line skipped\nT 0\n");
	expect_log(SESSION "{\"type\":\"note\"}\n" TURN(0), false, "S s\n2:0 type: unknown line type 'note'\nT 0\n");
}

/* A 50 MB line is refused with its line number, without holding 50 MB, and the
 * next line is still read at the right line number. */
static void test_huge_line(void **state)
{
	const char *p = path_of("huge.jsonl");
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	fputs(SESSION, f);
	fputs("{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"content\":\"", f);
	static char chunk[1 << 20];
	memset(chunk, 'a', sizeof chunk);
	for (int i = 0; i < 50; i++)
		fwrite(chunk, 1, sizeof chunk, f);
	fputs("\"}]}\n", f);
	fputs(TURN(1), f);
	fclose(f);
	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	struct buf log = BUF_INIT;
	run(p, false, &log);
	getrusage(RUSAGE_SELF, &ru1);
	assert_string_equal(log.data, "S s\n2:0 : line longer than 16777216 bytes\nT 1\n");
	/* peak RSS grew by at most the 16 MiB line limit plus slack, not 50 MB */
	if (ru1.ru_maxrss - ru0.ru_maxrss > 40 * 1024)
		fail_msg("reader RSS grew by %ld KiB", ru1.ru_maxrss - ru0.ru_maxrss);
	buf_free(&log);
}

static size_t count_files(void)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_writer_atomic(void **state)
{
	struct ar_err err = {0};
	struct trace_writer *w;
	size_t before = count_files();
	const char *p = path_of("out.jsonl.zst");
	assert_int_equal(trace_writer_open(&w, p, 0, &err), 0);
	const char *line = "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"w\",\"system\":\"s\"}";
	assert_int_equal(trace_writer_line(w, line, strlen(line), &err), 0);
	assert_int_equal(access(p, F_OK), -1); /* nothing at the target until commit */
	trace_writer_abort(w);
	assert_int_equal(count_files(), before); /* no temp file left */
	assert_int_equal(trace_writer_open(&w, p, 0, &err), 0);
	const char *s = SESSION;
	assert_int_equal(trace_writer_line(w, s, strlen(s) - 1, &err), 0);
	assert_int_equal(trace_writer_commit(w, &err), 0);
	struct buf log = BUF_INIT;
	run(p, false, &log);
	assert_string_equal(log.data, "S s\n");
	/* writing into a missing directory fails cleanly */
	assert_int_equal(trace_writer_open(&w, "/nonexistent-dir/x.jsonl", 0, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent-dir/x.jsonl"));
	buf_free(&log);
}

/* DIRECT mode: after each flush the file is a valid trace, as a killed
 * recorder would leave it. */
static void test_writer_direct_flush(void **state)
{
	struct ar_err err = {0};
	struct trace_writer *w;
	const char *p = path_of("live.jsonl.zst");
	assert_int_equal(trace_writer_open(&w, p, TRACE_WRITER_DIRECT, &err), 0);
	const char *s = SESSION, *t0 = TURN(0), *t1 = TURN(1);
	assert_int_equal(trace_writer_line(w, s, strlen(s) - 1, &err), 0);
	assert_int_equal(trace_writer_line(w, t0, strlen(t0) - 1, &err), 0);
	assert_int_equal(trace_writer_flush(w, &err), 0);
	struct buf log = BUF_INIT;
	run(p, false, &log);
	assert_string_equal(log.data, "S s\nT 0\n");
	assert_int_equal(trace_writer_line(w, t1, strlen(t1) - 1, &err), 0);
	assert_int_equal(trace_writer_flush(w, &err), 0);
	run(p, false, &log);
	assert_string_equal(log.data, "S s\nT 0\nT 1\n");
	assert_int_equal(trace_writer_commit(w, &err), 0);
	buf_free(&log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_and_zstd_same), cmocka_unit_test(test_truncated_zstd),
		cmocka_unit_test(test_empty_and_dir_and_missing), cmocka_unit_test(test_structure),
		cmocka_unit_test(test_tool_calls),         cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_bad_bytes),          cmocka_unit_test(test_huge_line),
		cmocka_unit_test(test_writer_atomic),      cmocka_unit_test(test_writer_direct_flush),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
