/* jsonh: small helpers over cJSON for the typed reads and compact writes the
 * trace, config and store code share. */
#ifndef AR_JSONH_H
#define AR_JSONH_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

/* True when v is a JSON number with no fractional part within int64 range
 * (2^53 and beyond are accepted only as exactly representable doubles). */
bool jsonh_int(const cJSON *v, int64_t *out);
/* Appends s as a JSON string literal (quotes included) to b. -1 on ceiling.
 * A byte that does not start a valid UTF-8 sequence is written as U+FFFD. */
int jsonh_put_string(struct buf *b, const char *s, size_t n);
/* The same with bytes from 0x80 up copied as they are: for a test server that
 * sends invalid UTF-8 on purpose. The tool itself writes with the above. */
int jsonh_put_string_raw(struct buf *b, const char *s, size_t n);
/* Appends v as compact JSON in agentreplay's normal form (FORMAT.md section
 * 11: no whitespace, minimal escapes, integral numbers below 2^53 as
 * integers). -1 on the buffer's ceiling or allocation failure. */
int jsonh_put(struct buf *b, const cJSON *v);
int jsonh_put_number(struct buf *b, double v);
/* Like jsonh_put for an object, with the members named in `order` first (in
 * that order), then the others in their own order. */
int jsonh_put_ordered(struct buf *b, const cJSON *obj, const char *const *order, size_t n);
/* Number of members of an object or array (0 otherwise). */
int jsonh_count(const cJSON *v);
/* Duplicates a string; NULL in gives NULL out (check with the input). */
char *jsonh_strdup(const char *s);
/* A short printable name of v's type: "string", "number", "object", ... */
const char *jsonh_type(const cJSON *v);

/* Replaces every invalid UTF-8 byte in v's key, v's string value and those of
 * everything under v by U+FFFD (cJSON keeps whatever bytes it was given; JSON
 * text and traces are UTF-8). Returns the number of replacements, or -1 out
 * of memory (v is then partly repaired). */
long jsonh_repair_utf8(cJSON *v);

#endif
