/* Fuzz target: the SSE push parser (replay/sse.c) on arbitrary bytes. Built
 * with libFuzzer under clang (-DAR_FUZZ=ON); with any compiler, fuzz_replay.c
 * replays the corpus through the same entry point in ctest.
 *
 * Input: the first byte picks the ceiling (0: the default; else 8..1028
 * bytes, so the AR_ELIMIT path is reached), the rest is the stream.
 * Checks beyond "no crash": feeding the stream whole, byte by byte, and in
 * chunks whose sizes come from the input gives the same events, comments,
 * result, error message, truncation flag and pending data; the pending
 * data never exceeds the ceiling. abort() when not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int record(void *ud, const struct sse_event *ev)
{
	struct buf *b = ud;
	if (ev->data[ev->data_len] != '\0')
		abort();
	buf_printf(b, "%c<%s>#<%s>[%zu]", ev->comment ? 'C' : 'E', ev->event, ev->id, ev->data_len);
	buf_append(b, ev->data, ev->data_len);
	buf_putc(b, '\n');
	return 0;
}

/* Feeds s[0..n) in chunks: step 0 = whole, 1 = byte by byte, else sizes
 * drawn from the input itself. Appends the outcome to out. */
static void run(const char *s, size_t n, size_t max, int step, struct buf *out)
{
	struct sse_parser *p = sse_parser_new(max);
	if (!p)
		abort();
	struct ar_err err = {AR_OK, ""};
	int rc = 0;
	size_t at = 0, k = 0;
	while (rc == 0 && (at < n || k == 0)) {
		size_t len = n - at;
		if (step == 1)
			len = len ? 1 : 0;
		else if (step > 1 && len)
			len = 1 + ((unsigned char)s[(k * 31) % n] % (len < 97 ? len : 97));
		if (len > n - at)
			len = n - at;
		rc = sse_parser_feed(p, s + at, len, record, out, &err);
		at += len;
		k++;
	}
	bool trunc = false;
	if (rc == 0 && sse_parser_finish(p, record, out, &trunc, &err) != 0)
		abort(); /* finish after a clean feed cannot fail */
	size_t plen;
	const char *pend = sse_parser_pending(p, &plen);
	if (max && plen > max)
		abort(); /* the ceiling held */
	buf_printf(out, "rc=%d err=%s trunc=%d pending[%zu]=", rc, rc ? err.msg : "", trunc, plen);
	buf_append(out, pend, plen);
	sse_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t max = data[0] ? 8 + (size_t)data[0] * 4 : 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	struct buf a = BUF_INIT, b = BUF_INIT, c = BUF_INIT;
	run(s, n, max, 0, &a);
	run(s, n, max, 1, &b);
	run(s, n, max, 2, &c);
	if (a.len != b.len || memcmp(a.data, b.data, a.len))
		abort(); /* byte by byte differs from whole */
	if (a.len != c.len || memcmp(a.data, c.data, a.len))
		abort(); /* chunked differs from whole */
	buf_free(&a);
	buf_free(&b);
	buf_free(&c);
	return 0;
}
