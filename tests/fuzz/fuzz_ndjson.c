/* Fuzz target: the NDJSON line splitter (replay/ndjson.c) on arbitrary
 * bytes. Built with libFuzzer under clang (-DAR_FUZZ=ON); fuzz_replay.c
 * replays the corpus in ctest with any compiler.
 *
 * Input: the first byte picks the line ceiling (0: default; else 4..1024),
 * the rest is the stream. Checks beyond "no crash": whole, byte-by-byte and
 * input-chunked feeding give the same lines, result, error and flag; no
 * delivered line is blank, holds an LF, or exceeds the ceiling. (It may end
 * in a CR: only the CR of a CRLF is removed, "{}\r\r\n" gives "{}\r".) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ndjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
	struct buf *out;
	size_t max;
};

static int record(void *ud, const char *line, size_t len)
{
	struct ctx *c = ud;
	if (line[len] != '\0' || (c->max && len > c->max) || memchr(line, '\n', len))
		abort();
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i == len)
		abort(); /* blank lines are skipped */
	buf_printf(c->out, "[%zu]", len);
	buf_append(c->out, line, len);
	buf_putc(c->out, '\n');
	return 0;
}

static void run(const char *s, size_t n, size_t max, int step, struct buf *out)
{
	struct ndjson_parser *p = ndjson_parser_new(max);
	if (!p)
		abort();
	struct ctx c = {out, max};
	struct ar_err err = {AR_OK, ""};
	int rc = 0;
	size_t at = 0, k = 0;
	while (rc == 0 && (at < n || k == 0)) {
		size_t len = n - at;
		if (step == 1)
			len = len ? 1 : 0;
		else if (step > 1 && len)
			len = 1 + ((unsigned char)s[(k * 17) % n] % (len < 61 ? len : 61));
		if (len > n - at)
			len = n - at;
		rc = ndjson_parser_feed(p, s + at, len, record, &c, &err);
		at += len;
		k++;
	}
	bool unterm = false;
	if (rc == 0)
		rc = ndjson_parser_finish(p, record, &c, &unterm, &err);
	buf_printf(out, "rc=%d err=%s unterm=%d", rc, rc ? err.msg : "", unterm);
	ndjson_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t max = data[0] ? 4 + (size_t)data[0] * 4 : 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	struct buf a = BUF_INIT, b = BUF_INIT, c = BUF_INIT;
	run(s, n, max, 0, &a);
	run(s, n, max, 1, &b);
	run(s, n, max, 2, &c);
	if (a.len != b.len || memcmp(a.data, b.data, a.len))
		abort();
	if (a.len != c.len || memcmp(a.data, c.data, a.len))
		abort();
	buf_free(&a);
	buf_free(&b);
	buf_free(&c);
	return 0;
}
