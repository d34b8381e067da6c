/* report: everything that reads the results store and renders it.
 *
 * Formats: "text" and "md" (the summary tables a person asks for first),
 * "csv" and "json" (every request row with every figure; the column names
 * are stable and documented in README.md, section Reports), and "html" (one
 * self-contained page: inline SVG charts and a sortable, filterable table).
 *
 * Depth tiers (one definition, used by every format): the depth of a
 * request is its context_tokens_est (prompt_tokens when that is missing).
 * For each config and each cache state (warm, cold), the baseline is the
 * turn of smallest depth, and tier T (32k, 64k, 128k = 32768, 65536, 131072
 * tokens) is the turn whose depth is nearest T among the turns within
 * [0.75 T, 1.25 T]; ties go to the smaller depth, then the earlier session
 * and turn. A tier with no such turn is an empty cell. The figures of a cell
 * are the completed requests (outcome ok or slo) of that turn: median and
 * min-max over repeats.
 *
 * The store is only read. Untrusted strings (trace session ids, config
 * names, evidence from server logs) are escaped for each format: HTML
 * entities in the page, \u003c in embedded JSON, quoted CSV, pipes escaped in
 * markdown, control characters replaced in text.
 */
#ifndef AR_REPORT_H
#define AR_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"

struct sqlite3;

enum report_format { REPORT_TEXT, REPORT_MD, REPORT_CSV, REPORT_JSON, REPORT_HTML };

struct report_opts {
	enum report_format format;
	int64_t run_id;     /* only this run; -1 for every run in the store */
	const char *filter; /* NULL or an expression (see report_filter_help) */
	const char *source; /* the store's path, shown as provenance (may be NULL) */
};

/* Parses "text", "md", "csv", "json" or "html". -1 with err set otherwise. */
int report_format_parse(const char *s, enum report_format *out, struct ar_err *err);

/* Checks a filter expression without a store (for early usage errors). */
int report_filter_check(const char *expr, struct ar_err *err);
/* One paragraph describing the filter syntax, for --help. */
const char *report_filter_help(void);

/* Renders the report of the store `db` (opened read-only by the caller) to
 * `out`. Errors: AR_EINVAL for a run id that does not exist or a bad filter,
 * AR_EFORMAT/AR_EIO for store trouble, AR_EIO when writing fails. Nothing is
 * retained; the caller closes `out`. */
int report_write(struct sqlite3 *db, const struct report_opts *o, FILE *out, struct ar_err *err);

#endif
