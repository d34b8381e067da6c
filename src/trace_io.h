/* trace_io: streaming reader and atomic writer of agentreplay-trace/1 files.
 *
 * Reader: plain or zstd (detected by the magic bytes 28 B5 2F FD, never by
 * name; concatenated frames allowed), one line at a time. Memory is bounded by
 * the longest line (opts.max_line, default 16 MiB), never by the file. Beyond
 * the per-line rules of trace.c it checks what spans lines: the first line is
 * a session, turn indexes run 0,1,2,..., t never goes back, keep stays within
 * the history, tool results answer a call issued earlier in the session,
 * session ids are unique, parents come first, sessions have turns.
 *
 * Writer: writes to a temporary file beside the target and renames it into
 * place on commit, so a failed run leaves nothing half-written; zstd when the
 * name ends in ".zst". TRACE_WRITER_DIRECT writes in place instead and ends a
 * zstd frame on every flush, so a killed writer leaves a valid file (the
 * recorder's mode). "-" means stdin / stdout.
 */
#ifndef AR_TRACE_IO_H
#define AR_TRACE_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "trace.h"

#define TRACE_DEFAULT_MAX_LINE (16u << 20)

struct trace_reader_opts {
	size_t max_line; /* bytes; 0 = TRACE_DEFAULT_MAX_LINE */
	bool lenient;    /* unknown line types are skipped with a warning */
};

enum trace_next {
	TRACE_FATAL = -2,  /* err set; stop reading */
	TRACE_BAD = -1,    /* this line (or session) has problems, listed in diag; go on */
	TRACE_EOF = 0,
	TRACE_ITEM = 1,    /* item filled */
	TRACE_SKIPPED = 2, /* --lenient skipped a line; diag holds the warning */
};

struct trace_reader;

/* Opens path ("-" = stdin). Returns 0, or -1 with err set (missing file,
 * directory, unreadable). */
int trace_reader_open(struct trace_reader **out, const char *path, const struct trace_reader_opts *opts,
		      struct ar_err *err);
/* Reads the next item; see enum trace_next. On TRACE_ITEM the caller owns the
 * item (trace_item_clear). */
int trace_reader_next(struct trace_reader *r, struct trace_item *item, struct trace_diag *diag,
		      struct ar_err *err);
/* Line number (1-based) of the line the last call was about. */
uint64_t trace_reader_line(const struct trace_reader *r);
const char *trace_reader_path(const struct trace_reader *r);
bool trace_reader_zstd(const struct trace_reader *r);
/* Uncompressed bytes delivered so far, and compressed bytes read. */
uint64_t trace_reader_bytes(const struct trace_reader *r);
uint64_t trace_reader_raw_bytes(const struct trace_reader *r);
void trace_reader_close(struct trace_reader *r);

enum { TRACE_WRITER_DIRECT = 1 };

struct trace_writer;

int trace_writer_open(struct trace_writer **out, const char *path, int flags, struct ar_err *err);
int trace_writer_session(struct trace_writer *w, const struct tr_session *s, struct ar_err *err);
int trace_writer_turn(struct trace_writer *w, const struct tr_turn *t, struct ar_err *err);
/* Writes one already-serialised line (without its line end). */
int trace_writer_line(struct trace_writer *w, const char *line, size_t n, struct ar_err *err);
/* Pushes what was written to the file (ends a zstd frame). */
int trace_writer_flush(struct trace_writer *w, struct ar_err *err);
/* Finishes, renames into place, frees w (also on failure). */
int trace_writer_commit(struct trace_writer *w, struct ar_err *err);
/* Discards: removes the temporary file, frees w. NULL is a no-op. */
void trace_writer_abort(struct trace_writer *w);

#endif
