/* Unit tests: the Server-Sent Events push parser (replay/sse.c).
 *
 * Every input is fed whole, byte by byte, split in two at every offset, and
 * in random-size chunks; all must give the same record (events, comments,
 * result code, error message, truncation, pending data). Bodies are real
 * streams from tests/data/streams (see PROVENANCE.md there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sse.h"

/* ---- helpers ---------------------------------------------------------- */

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

/* Replaces every "\n" of s by `eol` (to make CRLF and lone-CR variants). */
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

struct rec {
	struct buf log; /* one entry per event, unambiguous (length-prefixed data) */
	size_t events, comments;
	int stop_after; /* stop (return 7) at this event; 0 = never */
};

static int record(void *ud, const struct sse_event *ev)
{
	struct rec *r = ud;
	if (ev->comment) {
		r->comments++;
		buf_printf(&r->log, "C[%zu]", ev->data_len);
	} else {
		r->events++;
		buf_printf(&r->log, "E<%s>#<%s>[%zu]", ev->event, ev->id, ev->data_len);
	}
	assert_int_equal(ev->data[ev->data_len], '\0');
	buf_append(&r->log, ev->data, ev->data_len);
	buf_putc(&r->log, '\n');
	if (r->stop_after && (int)r->events == r->stop_after)
		return 7;
	return 0;
}

/* What one feeding of an input produced. */
struct result {
	struct buf text; /* log + outcome */
	size_t events, comments;
	int rc;
	bool truncated;
	size_t footprint;
};

static void result_free(struct result *r)
{
	buf_free(&r->text);
}

/* Feeds `in` cut at cuts[0..ncuts) (increasing offsets), then finishes. */
static struct result feed_cuts(const char *in, size_t n, const size_t *cuts, size_t ncuts, size_t max,
			       int stop_after)
{
	struct result res = {BUF_INIT, 0, 0, 0, false, 0};
	struct rec r = {BUF_INIT, 0, 0, stop_after};
	struct sse_parser *p = sse_parser_new(max);
	assert_non_null(p);
	struct ar_err err = {AR_OK, ""};
	size_t at = 0;
	int rc = 0;
	for (size_t k = 0; k <= ncuts && rc == 0; k++) {
		size_t end = k < ncuts ? cuts[k] : n;
		rc = sse_parser_feed(p, in + at, end - at, record, &r, &err);
		at = end;
	}
	bool trunc = false;
	if (rc == 0)
		assert_int_equal(sse_parser_finish(p, record, &r, &trunc, &err), 0);
	size_t plen;
	const char *pend = sse_parser_pending(p, &plen);
	buf_append(&res.text, r.log.data ? r.log.data : "", r.log.len);
	buf_printf(&res.text, "rc=%d err=%s truncated=%d pending[%zu]=", rc, rc < 0 ? err.msg : "", trunc, plen);
	buf_append(&res.text, pend, plen);
	res.events = r.events;
	res.comments = r.comments;
	res.rc = rc;
	res.truncated = trunc;
	res.footprint = sse_parser_footprint(p);
	buf_free(&r.log);
	sse_parser_free(p);
	return res;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
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

/* Feeds `in` every way and checks all agree; returns the whole-feed result. */
static struct result feed_all_ways(const char *in, size_t n, size_t max, int stop_after)
{
	struct result whole = feed_cuts(in, n, NULL, 0, max, stop_after);
	/* byte by byte */
	size_t *cuts = malloc((n + 1) * sizeof *cuts);
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	struct result r = feed_cuts(in, n, cuts, n ? n - 1 : 0, max, stop_after);
	assert_same(&whole, &r, "byte by byte");
	result_free(&r);
	/* two pieces, split at every offset (0 and n give an empty piece) */
	for (size_t k = 0; k <= n; k++) {
		size_t c = k;
		r = feed_cuts(in, n, &c, 1, max, stop_after);
		char how[64];
		snprintf(how, sizeof how, "split at %zu", k);
		assert_same(&whole, &r, how);
		result_free(&r);
	}
	/* random chunk sizes, small and large, empty chunks included */
	for (int round = 0; round < 20; round++) {
		size_t nc = 0, at = 0;
		size_t span = round < 10 ? 8 : 300;
		while (at < n) {
			at += rnd() % span;
			if (at > n)
				at = n;
			cuts[nc++] = at;
			if (nc == n)
				break;
		}
		r = feed_cuts(in, n, cuts, nc, max, stop_after);
		assert_same(&whole, &r, "random chunks");
		result_free(&r);
	}
	free(cuts);
	return whole;
}

/* Feeds a stream file every way, also as CRLF and lone-CR, also behind a
 * BOM: all must give the events of the LF original. */
static struct result check_stream(const char *in, size_t n)
{
	struct result base = feed_all_ways(in, n, 0, 0);
	static const char *eols[] = {"\r\n", "\r"};
	for (size_t e = 0; e < 2; e++) {
		size_t vn;
		char *v = with_eol(in, n, eols[e], &vn);
		struct result r = feed_all_ways(v, vn, 0, 0);
		assert_same(&base, &r, e ? "lone-CR variant" : "CRLF variant");
		result_free(&r);
		free(v);
	}
	char *b = malloc(n + 3);
	memcpy(b, "\xEF\xBB\xBF", 3);
	memcpy(b + 3, in, n);
	struct result r = feed_all_ways(b, n + 3, 0, 0);
	assert_same(&base, &r, "BOM variant");
	result_free(&r);
	free(b);
	return base;
}

static bool has(const struct result *r, const char *needle)
{
	return strstr(r->text.data, needle) != NULL;
}

/* ---- real streams ----------------------------------------------------- */

static void test_llama_server_chat(void **state)
{
	size_t n;
	char *in = slurp("llama-server-chat-timings.txt", &n);
	struct result r = check_stream(in, n);
	/* role chunk + 6 tokens + finish chunk with timings + [DONE] */
	assert_int_equal(r.events, 9);
	assert_int_equal(r.comments, 0);
	assert_false(r.truncated);
	assert_int_equal(strncmp(r.text.data, "E<>#<>[", 7), 0);
	assert_true(has(&r, "]{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\","
			    "\"content\":null}}]"));
	assert_true(has(&r, "\"timings\":{\"cache_n\":13,\"prompt_n\":13,"));
	assert_true(has(&r, "E<>#<>[6][DONE]\nrc=0"));
	result_free(&r);
	free(in);

	in = slurp("llama-server-chat-usage.txt", &n);
	r = check_stream(in, n);
	assert_int_equal(r.events, 9); /* role + 5 tokens + finish + usage chunk + [DONE] */
	assert_true(has(&r, "{\"choices\":[],"));
	assert_true(has(&r, "\"prompt_tokens_details\":{\"cached_tokens\":22}"));
	assert_true(has(&r, "[DONE]\nrc=0 err= truncated=0 pending[0]="));
	result_free(&r);
	free(in);
}

static void test_llama_server_ping(void **state)
{
	size_t n;
	char *in = slurp("llama-server-chat-ping.txt", &n);
	struct result r = check_stream(in, n);
	/* ":\n\n" x 4 before the first event: four empty comments, then role +
	 * 3 tokens + finish + [DONE] */
	assert_int_equal(r.comments, 4);
	assert_int_equal(r.events, 6);
	assert_int_equal(strncmp(r.text.data, "C[0]\nC[0]\nC[0]\nC[0]\nE<>#<>", 26), 0);
	result_free(&r);
	free(in);
}

static void test_llama_server_error_mid_stream(void **state)
{
	size_t n;
	char *in = slurp("llama-server-chat-error.txt", &n);
	struct result r = check_stream(in, n);
	/* role + 2 tokens, then the error event; no [DONE], but the stream
	 * ended at an event boundary: not truncated */
	assert_int_equal(r.events, 4);
	assert_true(has(&r, "]{\"error\":{\"code\":500,\"message\":\"Context size has been exceeded.\","
			    "\"type\":\"server_error\"}}\nrc=0 err= truncated=0"));
	assert_false(has(&r, "[DONE]"));
	result_free(&r);
	free(in);

	in = slurp("llama-server-chat-error-first.txt", &n);
	r = check_stream(in, n);
	assert_int_equal(r.events, 1);
	assert_true(has(&r, "\"Context size has been exceeded.\""));
	result_free(&r);
	free(in);
}

static void test_llama_server_completion(void **state)
{
	size_t n;
	char *in = slurp("llama-server-completion.txt", &n);
	struct result r = check_stream(in, n);
	assert_int_equal(r.events, 5); /* 4 tokens + the final object; no [DONE] on /completion */
	assert_true(has(&r, "\"stop\":true"));
	assert_true(has(&r, "\"tokens_cached\":8"));
	result_free(&r);
	free(in);
}

static void test_anthropic_messages(void **state)
{
	size_t n;
	char *in = slurp("anthropic-messages.txt", &n);
	struct result r = check_stream(in, n);
	assert_int_equal(r.events, 8);
	const char *order[] = {"message_start", "content_block_start", "ping", "content_block_delta",
			       "content_block_delta", "content_block_stop", "message_delta", "message_stop"};
	const char *at = r.text.data;
	for (size_t i = 0; i < 8; i++) {
		char want[64];
		snprintf(want, sizeof want, "E<%s>#<>", order[i]);
		const char *hit = strstr(at, want);
		if (!hit)
			fail_msg("event %zu '%s' missing or out of order", i, order[i]);
		at = hit + 1;
	}
	assert_true(has(&r, "\"usage\": {\"output_tokens\": 15}"));
	result_free(&r);
	free(in);

	in = slurp("llama-server-anthropic.txt", &n);
	r = check_stream(in, n);
	assert_int_equal(r.events, 9); /* start, block start, 4 deltas, block stop, delta, stop */
	assert_true(has(&r, "E<message_start>#<>"));
	assert_true(has(&r, "\"cache_read_input_tokens\":13"));
	assert_true(has(&r, "E<message_stop>#<>[23]{\"type\":\"message_stop\"}\nrc=0"));
	result_free(&r);
	free(in);
}

static void test_vllm_reasoning(void **state)
{
	size_t n;
	char *in = slurp("vllm-chat-reasoning.txt", &n);
	struct result r = check_stream(in, n);
	assert_int_equal(r.events, 1 + 16 + 7 + 1 + 1 + 1);
	assert_true(has(&r, "\"delta\":{\"reasoning_content\":\"Okay\"}"));
	assert_true(has(&r, "\"finish_reason\":\"stop\",\"stop_reason\":null"));
	assert_true(has(&r, "\"choices\":[],\"usage\":{\"prompt_tokens\":18,"));
	result_free(&r);
	free(in);

	in = slurp("vllm-chat-reasoning-new.txt", &n);
	r = check_stream(in, n);
	assert_int_equal(r.events, 1 + 7 + 8 + 1 + 1 + 1);
	assert_true(has(&r, "\"delta\":{\"reasoning\":\"The\"}"));
	result_free(&r);
	free(in);
}

/* ---- the spec's rules ------------------------------------------------- */

static struct result feed_str(const char *s, size_t max)
{
	return feed_all_ways(s, strlen(s), max, 0);
}

static void expect(const char *in, const char *want)
{
	struct result r = feed_str(in, 0);
	if (strcmp(r.text.data, want)) {
		print_message("input: %s\nwant:\n%s\ngot:\n%s\n", in, want, r.text.data);
		fail_msg("unexpected events");
	}
	result_free(&r);
}

static void test_spec_fields(void **state)
{
	/* multi-line data joined with \n */
	expect("data: YHOO\ndata: +2\ndata: 10\n\n", "E<>#<>[10]YHOO\n+2\n10\nrc=0 err= truncated=0 pending[0]=");
	/* the spec's example: ids persist, "id" alone resets it, only one space is removed */
	expect(": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
	       "C[12] test stream\nE<>#<1>[11]first event\nE<>#<>[12]second event\nE<>#<>[12] third event\n"
	       "rc=0 err= truncated=0 pending[0]=");
	/* "data" without colon is an empty data line; two of them give "\n";
	 * the last, unterminated event is not dispatched */
	expect("data\n\ndata\ndata\n\ndata:", "E<>#<>[0]\nE<>#<>[1]\n\nrc=0 err= truncated=1 pending[0]=");
	expect("data:test\n\ndata: test\n\n", "E<>#<>[4]test\nE<>#<>[4]test\nrc=0 err= truncated=0 pending[0]=");
	/* events without data are dropped, and their type does not leak */
	expect("event: x\n\ndata: y\n\n", "E<>#<>[1]y\nrc=0 err= truncated=0 pending[0]=");
	expect("event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\ndata: 113411\n\n",
	       "E<add>#<>[8]73857293\nE<remove>#<>[4]2153\nE<>#<>[6]113411\nrc=0 err= truncated=0 pending[0]=");
	/* retry, unknown fields, fields without a colon, leading-space field names: ignored */
	expect("retry: 10000\nfoo: bar\nbaz\n data: not a data field\ndata: ok\n\n",
	       "E<>#<>[2]ok\nrc=0 err= truncated=0 pending[0]=");
	/* "data" must be the whole field name */
	expect("datas: x\nDATA: y\ndat: z\n\n", "rc=0 err= truncated=0 pending[0]=");
	/* an id with a NUL is ignored; a value may contain colons */
	expect("id: 5\n\ndata: http://x:1/\n\n", "E<>#<5>[11]http://x:1/\nrc=0 err= truncated=0 pending[0]=");
	/* [DONE] is just data; tabs are not stripped */
	expect("data: [DONE]\n\ndata:\tx\n\n", "E<>#<>[6][DONE]\nE<>#<>[2]\tx\nrc=0 err= truncated=0 pending[0]=");
	/* comments are delivered verbatim, and do not disturb the open event */
	expect("data: a\n:ping\ndata: b\n\n", "C[4]ping\nE<>#<>[3]a\nb\nrc=0 err= truncated=0 pending[0]=");
	/* an empty stream, blank lines only */
	expect("", "rc=0 err= truncated=0 pending[0]=");
	expect("\n\n\r\n\r", "rc=0 err= truncated=0 pending[0]=");
}

static void test_nul_in_data_and_id(void **state)
{
	const char in[] = "id: 9\n\nid: a\0b\ndata: x\0y\n\n";
	struct result r = feed_all_ways(in, sizeof in - 1, 0, 0);
	const char want[] = "E<>#<9>[3]x\0y\nrc=0 err= truncated=0 pending[0]=";
	assert_int_equal(r.text.len, sizeof want - 1);
	assert_memory_equal(r.text.data, want, sizeof want - 1);
	result_free(&r);
}

static void test_line_ends(void **state)
{
	/* CRLF split between chunks must not produce an extra blank line */
	expect("data: a\r\n\r\ndata: b\r\n\r\n", "E<>#<>[1]a\nE<>#<>[1]b\nrc=0 err= truncated=0 pending[0]=");
	expect("data: a\r\rdata: b\r\r", "E<>#<>[1]a\nE<>#<>[1]b\nrc=0 err= truncated=0 pending[0]=");
	/* mixed: CR then LF is one end, LF then CR is two */
	expect("data: a\r\n\n\r", "E<>#<>[1]a\nrc=0 err= truncated=0 pending[0]=");
	expect("data: a\n\rdata: b\n\n", "E<>#<>[1]a\nE<>#<>[1]b\nrc=0 err= truncated=0 pending[0]=");
	/* CR CR LF: two line ends (a blank line), then an LF: another blank line */
	expect("data: a\r\r\ndata: b\n\n", "E<>#<>[1]a\nE<>#<>[1]b\nrc=0 err= truncated=0 pending[0]=");
}

static void test_bom(void **state)
{
	expect("\xEF\xBB\xBF" "data: a\n\n", "E<>#<>[1]a\nrc=0 err= truncated=0 pending[0]=");
	/* only one BOM is removed: a second one makes the field name unknown */
	expect("\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\ndata: b\n\n", "E<>#<>[1]b\nrc=0 err= truncated=0 pending[0]=");
	/* a BOM prefix that is not a BOM is content */
	expect("\xEF\xBB" "data: a\n\ndata: b\n\n", "E<>#<>[1]b\nrc=0 err= truncated=0 pending[0]=");
	expect("\xEF" "\n" "data: b\n\n", "E<>#<>[1]b\nrc=0 err= truncated=0 pending[0]=");
	/* a BOM later in the stream is data */
	expect("data: \xEF\xBB\xBFx\n\n", "E<>#<>[4]\xEF\xBB\xBFx\nrc=0 err= truncated=0 pending[0]=");
	/* a stream that is only a BOM, or only part of one */
	expect("\xEF\xBB\xBF", "rc=0 err= truncated=0 pending[0]=");
	expect("\xEF\xBB", "rc=0 err= truncated=1 pending[0]=");
	/* the offset counts the BOM */
	struct sse_parser *p = sse_parser_new(0);
	assert_int_equal(sse_parser_feed(p, "\xEF\xBB", 2, NULL, NULL, NULL), 0);
	assert_int_equal(sse_parser_offset(p), 0);
	assert_int_equal(sse_parser_feed(p, "\xBF" "data: 1\n\n", 10, NULL, NULL, NULL), 0);
	assert_int_equal(sse_parser_offset(p), 12);
	assert_int_equal(sse_parser_events(p), 1);
	sse_parser_free(p);
}

/* ---- ceiling ---------------------------------------------------------- */

static void test_ceiling(void **state)
{
	/* an event of exactly max bytes is fine; one more byte is not */
	struct result r = feed_str("data: 0123456789\n\ndata:0123456789a\n\n", 16);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.events, 2);
	result_free(&r);
	r = feed_str("data: 0123456789\n\ndata:0123456789ab\n\ndata: later\n\n", 16);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.events, 1); /* the event before the oversized one was delivered */
	assert_true(has(&r, "err=SSE event larger than 16 bytes (line at stream byte 18)"));
	result_free(&r);
	/* many small data lines adding up */
	r = feed_str("data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n", 30);
	assert_int_equal(r.rc, -1);
	assert_true(has(&r, "err=SSE event larger than 30 bytes (line at stream byte 34)"));
	result_free(&r);
	/* a huge comment line counts too */
	r = feed_str(": 0123456789012345678901234567890123456789\n\n", 16);
	assert_int_equal(r.rc, -1);
	result_free(&r);
	/* the event type counts with the data */
	r = feed_str("event: 0123456789\ndata: 0123456789\n\n", 16);
	assert_int_equal(r.rc, -1);
	result_free(&r);
}

static void test_ceiling_memory(void **state)
{
	/* A server that sends 64 MiB without a newline: the parser fails once it
	 * holds 1 MiB, and its memory stays bounded by the ceiling. */
	const size_t max = 1u << 20;
	struct sse_parser *p = sse_parser_new(max);
	char *chunk = malloc(65536);
	memset(chunk, 'x', 65536);
	memcpy(chunk, "data: ", 6);
	struct ar_err err = {AR_OK, ""};
	size_t fed = 0;
	int rc = 0;
	while (fed < (64u << 20) && rc == 0) {
		rc = sse_parser_feed(p, chunk, 65536, NULL, NULL, &err);
		fed += 65536;
		memset(chunk, 'x', 6);
	}
	assert_int_equal(rc, -1);
	assert_int_equal(err.code, AR_ELIMIT);
	assert_string_equal(err.msg, "SSE event larger than 1048576 bytes (line at stream byte 0)");
	assert_true(fed <= max + 65536);
	size_t fp = sse_parser_footprint(p);
	print_message("footprint after the ceiling: %zu bytes (ceiling %zu)\n", fp, max);
	assert_true(fp <= 2 * (max + 1) + 1024);
	/* the parser is dead now */
	assert_int_equal(sse_parser_feed(p, "\n\n", 2, NULL, NULL, &err), -1);
	assert_int_equal(err.code, AR_EINVAL);
	bool t;
	assert_int_equal(sse_parser_finish(p, NULL, NULL, &t, &err), -1);
	sse_parser_free(p);

	/* the same with a huge event made of many lines, fed byte-sized and large */
	p = sse_parser_new(max);
	memset(chunk, 'y', 65536);
	memcpy(chunk, "data: ", 6);
	chunk[65535] = '\n';
	rc = 0;
	for (int i = 0; i < 64 && rc == 0; i++)
		rc = sse_parser_feed(p, chunk, 65536, NULL, NULL, &err);
	assert_int_equal(rc, -1);
	assert_int_equal(err.code, AR_ELIMIT);
	size_t plen;
	sse_parser_pending(p, &plen);
	assert_true(plen <= max);
	assert_true(sse_parser_footprint(p) <= 2 * 2 * (max + 1) + 1024);
	sse_parser_free(p);
	free(chunk);
}

/* ---- end of stream, stop, reset --------------------------------------- */

static void test_finish_truncated(void **state)
{
	/* the last event has no blank line: not dispatched, but visible as evidence */
	struct result r = feed_str("data: {\"a\":1}\n\ndata: {\"error\":{\"message\":\"got exception\"", 0);
	assert_int_equal(r.events, 1);
	assert_true(r.truncated);
	assert_true(has(&r, "]={\"error\":{\"message\":\"got exception\""));
	result_free(&r);
	/* one newline is not enough */
	r = feed_str("data: [DONE]\n", 0);
	assert_int_equal(r.events, 0);
	assert_true(r.truncated);
	assert_true(has(&r, "pending[6]=[DONE]"));
	result_free(&r);
	/* multi-line pending data, cut mid-field-name */
	r = feed_str("data: a\ndata: b\nda", 0);
	assert_true(r.truncated);
	assert_true(has(&r, "pending[3]=a\nb"));
	result_free(&r);
	/* a trailing comment, terminated or not, does not make a truncation */
	r = feed_str("data: a\n\n:", 0);
	assert_false(r.truncated);
	assert_int_equal(r.comments, 0);
	result_free(&r);
	r = feed_str("data: a\n\n:\n", 0);
	assert_false(r.truncated);
	assert_int_equal(r.comments, 1);
	result_free(&r);

	/* NULL truncated pointer is fine; finish twice is an error; reset revives */
	struct sse_parser *p = sse_parser_new(0);
	struct ar_err err;
	assert_int_equal(sse_parser_feed(p, "data: x", 7, NULL, NULL, &err), 0);
	assert_int_equal(sse_parser_finish(p, NULL, NULL, NULL, &err), 0);
	assert_string_equal(sse_parser_pending(p, NULL), "x");
	assert_int_equal(sse_parser_finish(p, NULL, NULL, NULL, &err), -1);
	assert_int_equal(err.code, AR_EINVAL);
	assert_int_equal(sse_parser_feed(p, "data: y\n\n", 9, NULL, NULL, &err), -1);
	sse_parser_reset(p);
	struct rec rc = {BUF_INIT, 0, 0, 0};
	assert_int_equal(sse_parser_feed(p, "id: 3\ndata: y\n\n", 15, record, &rc, &err), 0);
	assert_string_equal(rc.log.data, "E<>#<3>[1]y\n");
	sse_parser_reset(p); /* the last event id is forgotten too */
	buf_reset(&rc.log);
	assert_int_equal(sse_parser_feed(p, "data: z\n\n", 9, record, &rc, &err), 0);
	assert_string_equal(rc.log.data, "E<>#<>[1]z\n");
	buf_free(&rc.log);
	sse_parser_free(p);
	sse_parser_free(NULL);
}

static void test_callback_stop(void **state)
{
	size_t n;
	char *in = slurp("llama-server-chat-timings.txt", &n);
	struct result r = feed_all_ways(in, n, 0, 2);
	assert_int_equal(r.rc, 7);
	assert_int_equal(r.events, 2);
	result_free(&r);
	struct sse_parser *p = sse_parser_new(0);
	struct rec rc = {BUF_INIT, 0, 0, 1};
	struct ar_err err;
	assert_int_equal(sse_parser_feed(p, in, n, record, &rc, &err), 7);
	assert_int_equal(sse_parser_feed(p, in, n, record, &rc, &err), -1);
	assert_string_equal(err.msg, "SSE parser was stopped by its callback");
	buf_free(&rc.log);
	sse_parser_free(p);
	free(in);
}

/* A BOM prefix that turns out not to be one, followed by line ends that the
 * chunking may split (the held bytes are replayed before the CR/LF logic). */
static void test_bom_prefix_then_line_ends(void **state)
{
	expect("\xEF\r\n" "data: a\n\n", "E<>#<>[1]a\nrc=0 err= truncated=0 pending[0]=");
	expect("\xEF\xBB\r\rdata: a\r\r", "E<>#<>[1]a\nrc=0 err= truncated=0 pending[0]=");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_llama_server_chat),
		cmocka_unit_test(test_llama_server_ping),
		cmocka_unit_test(test_llama_server_error_mid_stream),
		cmocka_unit_test(test_llama_server_completion),
		cmocka_unit_test(test_anthropic_messages),
		cmocka_unit_test(test_vllm_reasoning),
		cmocka_unit_test(test_spec_fields),
		cmocka_unit_test(test_nul_in_data_and_id),
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_bom),
		cmocka_unit_test(test_ceiling),
		cmocka_unit_test(test_ceiling_memory),
		cmocka_unit_test(test_finish_truncated),
		cmocka_unit_test(test_callback_stop),
		cmocka_unit_test(test_bom_prefix_then_line_ends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
