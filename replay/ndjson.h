/* ndjson: a push parser that splits newline-delimited JSON (one JSON value
 * per line, application/x-ndjson) into lines.
 *
 * What it is for: Ollama's /api/chat and /api/generate stream one JSON object
 * per line (the last one has "done":true and the eval counts/durations). The
 * adapter feeds the response bytes as curl delivers them (any chunk boundary)
 * and gets one callback per line; it parses the JSON itself.
 *
 * Rules: lines end in LF; a CR right before the LF is removed (CRLF); blank
 * lines (empty, or only spaces, tabs and CRs) are skipped; a lone CR is not a
 * line end (it is data). The line is handed over without its terminator,
 * NUL-terminated (len excludes the NUL; the line may itself contain NUL
 * bytes). Bytes are passed through: no UTF-8 or JSON checking here.
 *
 * Memory: one line buffer, holding at most max_line bytes; a longer line is
 * AR_ELIMIT "NDJSON line larger than N bytes (line K)" from feed, however the
 * bytes arrive (allocation stays below about 2 x max_line). No allocation
 * per byte; O(bytes fed).
 *
 * Ownership: the parser owns its buffer; the line passed to the callback is
 * valid only during the call.
 */
#ifndef AR_NDJSON_H
#define AR_NDJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Ceiling used when ndjson_parser_new() is given 0. */
#define NDJSON_DEFAULT_MAX_LINE ((size_t)16 << 20)

/* Called once per non-blank line. A non-zero return stops the parser:
 * feed() (or finish()) returns that value at once, the rest of the chunk is
 * not parsed, and the parser takes no more bytes. Use a positive value to
 * tell a stop apart from the parser's own -1. */
typedef int (*ndjson_line_fn)(void *ud, const char *line, size_t len);

struct ndjson_parser;

/* max_line: ceiling on one line, terminator excluded (0 =
 * NDJSON_DEFAULT_MAX_LINE). Returns NULL when out of memory. */
struct ndjson_parser *ndjson_parser_new(size_t max_line);
/* Releases the parser; NULL is a no-op. */
void ndjson_parser_free(struct ndjson_parser *p);
/* Forgets the stream so the parser can take a new one. */
void ndjson_parser_reset(struct ndjson_parser *p);

/* Parses len bytes, calling cb for each line they complete. Returns 0, the
 * callback's non-zero value, or -1 with err set (AR_ELIMIT: a line over the
 * ceiling; AR_EINVAL: the parser had failed, stopped or finished). */
int ndjson_parser_feed(struct ndjson_parser *p, const char *data, size_t len, ndjson_line_fn cb, void *ud,
		       struct ar_err *err);

/* End of stream: a last line without its newline is still delivered (JSON
 * needs no terminator), and *unterminated (may be NULL) is set to true so
 * the caller can note it; false when the stream ended with a newline or only
 * blank text followed. Returns 0, the callback's non-zero value, or -1 with
 * err set (AR_EINVAL after a failure, a stop or a second finish). */
int ndjson_parser_finish(struct ndjson_parser *p, ndjson_line_fn cb, void *ud, bool *unterminated,
			 struct ar_err *err);

/* Line number (1-based, blank lines counted) of the line being delivered, or
 * of the last line started; for the caller's error messages. */
uint64_t ndjson_parser_line(const struct ndjson_parser *p);
/* Stream bytes consumed. */
uint64_t ndjson_parser_offset(const struct ndjson_parser *p);
/* Bytes currently allocated by the parser (tests, memory accounting). */
size_t ndjson_parser_footprint(const struct ndjson_parser *p);

#endif
