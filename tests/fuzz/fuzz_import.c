/* Fuzz target: every importer on arbitrary bytes, strict and --lenient.
 * Built with libFuzzer under clang (-DAR_FUZZ=ON); fuzz_replay.c replays the
 * corpus (seeded from the real logs in tests/data/import/) in ctest.
 *
 * Checks beyond "no crash": whenever an import succeeds, the trace it wrote
 * must pass the trace reader's full validation (turn order, tool results
 * answering issued calls, keep within history, parents before children) —
 * an importer never writes an invalid trace, whatever it was fed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "import.h"
#include "trace_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_valid(const char *path)
{
	struct trace_reader *r = NULL;
	struct ar_err err = {0};
	struct trace_reader_opts o = {0};
	if (trace_reader_open(&r, path, &o, &err) < 0)
		abort();
	for (;;) {
		struct trace_item it;
		struct trace_diag d;
		trace_diag_clear(&d);
		int rc = trace_reader_next(r, &it, &d, &err);
		if (rc == TRACE_EOF)
			break;
		if (rc != TRACE_ITEM) {
			fprintf(stderr, "importer wrote an invalid trace: %s %s %s\n", err.msg, d.n ? d.p[0].field : "",
				d.n ? d.p[0].msg : "");
			abort();
		}
		trace_item_clear(&it);
	}
	trace_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[] = "/tmp/fuzz_import_in_XXXXXX";
	int fd = mkstemp(in);
	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(in);
		return 0;
	}
	close(fd);
	char out[sizeof in + 16];
	snprintf(out, sizeof out, "%s.trace", in);
	for (const struct importer *const *t = import_table(); *t; t++) {
		for (int lenient = 0; lenient < 2; lenient++) {
			struct imp_opts o = {.lenient = lenient, .redact = NULL, .max_line = 1 << 20};
			struct imp_report rep;
			struct ar_err err = {0};
			memset(&rep, 0, sizeof rep);
			const char *inputs[] = {in};
			if (import_run(*t, inputs, 1, out, &o, &rep, &err) == 0) {
				check_valid(out);
				unlink(out);
			}
			imp_report_free(&rep);
		}
		/* sniffers get the head NUL-terminated, as import_sniff gives it */
		char *head = malloc(size + 1);
		if (head) {
			memcpy(head, data, size);
			head[size] = '\0';
			(*t)->sniff(in, head, size);
			free(head);
		}
	}
	unlink(in);
	return 0;
}
