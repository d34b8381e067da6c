/* sse: a push parser for Server-Sent Events (text/event-stream), following
 * the WHATWG HTML "event stream interpretation" rules.
 *
 * What it is for: the openai, llama-server and anthropic adapters feed it the
 * bytes of a streaming response exactly as curl hands them over (any chunk
 * boundary: one byte, a split CRLF, thousands of events at once) and get one
 * callback per event, timestamped by the caller where it happens.
 *
 * Rules implemented (and nothing adapter-specific: "[DONE]" is just data):
 *   - lines end in LF, CRLF or a lone CR; one UTF-8 BOM at the very start of
 *     the stream is dropped;
 *   - "field: value" with at most one space after the colon removed; a line
 *     without a colon is a field with an empty value;
 *   - "data" lines are joined with "\n"; "event" sets the type (reset after
 *     each event); "id" sets the last event id (kept across events, ignored
 *     when it contains a NUL); "retry" and unknown fields are ignored;
 *   - a blank line dispatches the event, unless it had no "data" line (an
 *     event without data is dropped, as the spec says);
 *   - a line starting with ':' is a comment (llama-server's keep-alive ping);
 *     it is delivered at once as its own event with comment = true and data =
 *     the text after the ':' (verbatim), without touching the event being
 *     assembled.
 * Bytes are passed through as they are: the parser does not decode or check
 * UTF-8 (the JSON layer does).
 *
 * Memory (the ceiling, max_event_bytes): the bytes held for the event being
 * assembled (its data, its event type and the unterminated line in progress)
 * never exceed max_event_bytes. A server that sends more (one huge event, or
 * endless bytes without a newline) gets AR_ELIMIT "SSE event larger than N
 * bytes (...)" from feed, and the parser's allocations stay below about
 * 2 x max_event_bytes per buffer (sse_parser_footprint). No allocation per
 * byte; the work is O(bytes fed).
 *
 * Ownership: the parser owns everything; the strings in a struct sse_event
 * are valid only during the callback.
 */
#ifndef AR_SSE_H
#define AR_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Ceiling used when sse_parser_new() is given 0. */
#define SSE_DEFAULT_MAX_EVENT ((size_t)16 << 20)

struct sse_event {
	const char *event; /* the "event:" type; "" when the event had none */
	const char *data;  /* data lines joined by "\n"; NUL-terminated, but may
			    * contain NUL bytes itself: data_len is the length */
	size_t data_len;
	const char *id;    /* last event id seen on the stream so far; "" if none */
	bool comment;      /* a ':' line: data is the text after the ':' */
};

/* Called once per dispatched event (and per comment line). A non-zero return
 * stops the parser: feed() returns that value at once, the rest of that chunk
 * is not parsed, and the parser is finished (later feeds fail). */
typedef int (*sse_event_fn)(void *ud, const struct sse_event *ev);

struct sse_parser;

/* A parser for one stream. max_event_bytes: the ceiling described above
 * (0 = SSE_DEFAULT_MAX_EVENT). Returns NULL when out of memory. */
struct sse_parser *sse_parser_new(size_t max_event_bytes);
/* Releases the parser; NULL is a no-op. */
void sse_parser_free(struct sse_parser *p);
/* Forgets the stream (events, last event id, errors) so the parser can take a
 * new one; keeps the allocations. */
void sse_parser_reset(struct sse_parser *p);

/* Parses len bytes of the stream, calling cb for each event completed by
 * them. Returns 0; the callback's non-zero value when it stopped the parser;
 * or -1 with err set: AR_ELIMIT when the ceiling was passed (the message
 * names the stream byte offset of the line that passed it), AR_EINVAL when
 * the parser had already failed, stopped or finished. After -1 or a stop the
 * parser takes no more bytes (sse_parser_pending still works). */
int sse_parser_feed(struct sse_parser *p, const char *data, size_t len, sse_event_fn cb, void *ud,
		    struct ar_err *err);

/* End of stream. An event still open (field lines, or an unterminated line,
 * after the last blank line) is NOT dispatched, as the spec says: *truncated
 * is set to true and its data stays readable with sse_parser_pending() (an
 * unterminated last line is applied to it first), for the caller to keep as
 * evidence. *truncated is false when the stream ended between events.
 * No event is dispatched from here; cb is accepted for symmetry with feed.
 * Returns 0, or -1 with err set (AR_EINVAL after a failure, a stop, or a
 * second finish). */
int sse_parser_finish(struct sse_parser *p, sse_event_fn cb, void *ud, bool *truncated, struct ar_err *err);

/* The data of the event being assembled (the "data:" values received since
 * the last dispatch, joined by "\n"), NUL-terminated, length in *len (may be
 * NULL). "" when there is none. Valid until the next call on the parser. */
const char *sse_parser_pending(const struct sse_parser *p, size_t *len);

/* Events dispatched so far (comments not counted) and stream bytes consumed
 * (the BOM included). */
uint64_t sse_parser_events(const struct sse_parser *p);
uint64_t sse_parser_offset(const struct sse_parser *p);

/* Bytes currently allocated by the parser's buffers (for tests and memory
 * accounting). */
size_t sse_parser_footprint(const struct sse_parser *p);

#endif
