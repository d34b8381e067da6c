/* Fuzz target: the trace line parser and the streaming reader on arbitrary
 * bytes. Built with libFuzzer under clang (-DAR_FUZZ=ON); with any compiler,
 * fuzz_replay.c replays the corpus through the same entry point in ctest.
 *
 * Checks beyond "no crash": a line that parses must serialise, and its
 * normal form must parse again to the same normal form (cat of cat). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "trace.h"
#include "trace_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_roundtrip(const struct trace_item *it)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	int rc = it->kind == TRACE_ITEM_SESSION ? tr_session_write(it->session, &a) : tr_turn_write(it->turn, &a);
	if (rc < 0)
		abort();
	struct trace_item again;
	struct trace_diag d;
	trace_diag_clear(&d);
	if (trace_parse_line(a.data, a.len, &again, &d) < 0)
		abort(); /* the normal form of a valid line must be valid */
	rc = again.kind == TRACE_ITEM_SESSION ? tr_session_write(again.session, &b) : tr_turn_write(again.turn, &b);
	if (rc < 0 || a.len != b.len || memcmp(a.data, b.data, a.len))
		abort(); /* cat of cat differs from cat */
	trace_item_clear(&again);
	buf_free(&a);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* 1. the line codec */
	struct trace_item it;
	struct trace_diag d;
	trace_diag_clear(&d);
	if (trace_parse_line((const char *)data, size, &it, &d) == 0) {
		check_roundtrip(&it);
		trace_item_clear(&it);
	}
	/* 2. the whole reader (cross-line rules, zstd sniffing) over a memfd-like temp file */
	char path[] = "/tmp/ar-fuzz-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	struct trace_reader_opts o = {4096, true};
	struct trace_reader *r;
	struct ar_err err;
	if (trace_reader_open(&r, path, &o, &err) == 0) {
		for (int n = 0; n < 10000; n++) {
			int rc = trace_reader_next(r, &it, &d, &err);
			if (rc == TRACE_EOF || rc == TRACE_FATAL)
				break;
			if (rc == TRACE_ITEM)
				trace_item_clear(&it);
		}
		trace_reader_close(r);
	}
	unlink(path);
	return 0;
}
