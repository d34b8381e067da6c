/* rulefile: the line reader and pattern compiler shared by the rule files
 * (src/rules/redact.rules, the files in replay/rules/).
 *
 * A rule file is text, one rule per line; blank lines and lines whose first
 * non-blank character is '#' are skipped; leading blanks and the line end
 * (LF or CRLF) are not part of a rule. What a rule line holds is the
 * caller's business; the errors here name PATH:LINE.
 */
#ifndef AR_RULEFILE_H
#define AR_RULEFILE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct rulefile;

/* Opens path; lines longer than max_line bytes are an error (AR_ELIMIT).
 * A file that does not exist and is not required gives 0 with *out NULL. */
int rulefile_open(struct rulefile **out, const char *path, size_t max_line, bool required, const char *what,
		  struct ar_err *err);
/* The next rule line (NUL-terminated, owned by rf until the next call):
 * 1 and *line, 0 at the end, -1 with err set (too long, read error). */
int rulefile_next(struct rulefile *rf, char **line, struct ar_err *err);
/* Where the last line came from: its path and 1-based number. */
const char *rulefile_path(const struct rulefile *rf);
int rulefile_lineno(const struct rulefile *rf);
/* Compiles a pattern of the current line as UTF-8 that may meet invalid
 * UTF-8 in what it scans (PCRE2_MATCH_INVALID_UTF), plus extra options.
 * NULL with err "PATH:LINE: bad pattern[ for
 * 'name'] at offset N: why" on failure. */
pcre2_code *rulefile_compile(const struct rulefile *rf, const char *pattern, uint32_t extra, const char *name,
			     struct ar_err *err);
void rulefile_close(struct rulefile *rf);

#endif
