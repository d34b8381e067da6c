/* err: errors as values.
 *
 * Library code never prints and never exits: a function that can fail takes a
 * `struct ar_err *` (may be NULL) and fills it with a code and a message that
 * says what went wrong and where (file:line, field, URL, errno text). Only the
 * CLI (src/cli/) prints messages and chooses exit codes.
 *
 * Messages are lower-case and quote their subject, git style:
 *   cannot open trace 'x.jsonl': No such file or directory
 */
#ifndef AR_ERR_H
#define AR_ERR_H

#include <stddef.h>

enum ar_code {
	AR_OK = 0,
	AR_EINVAL,       /* bad argument or usage */
	AR_EFORMAT,      /* input does not follow its format (trace, config, JSON) */
	AR_EIO,          /* read/write/open failed */
	AR_ENOMEM,       /* allocation failed */
	AR_ELIMIT,       /* input exceeds a configured ceiling (line length, buffer) */
	AR_EUNSUPPORTED, /* valid but not supported (format major version, ...) */
	AR_ENET,         /* network: connect, DNS, reset */
	AR_EBACKEND,     /* backend answered, but not as expected */
	AR_EINTERNAL,    /* a bug: an invariant did not hold */
};

#define AR_ERR_MSG_MAX 1024

struct ar_err {
	enum ar_code code;
	char msg[AR_ERR_MSG_MAX];
};

/* Name of a code, e.g. "format error". Never NULL. */
const char *ar_strerror(enum ar_code code);

/* Sets `e` (when non-NULL) to `code` and the formatted message; a message
 * longer than AR_ERR_MSG_MAX is cut. Returns -1 so callers can write
 * `return ar_err_set(err, AR_EIO, "...")`. */
int ar_err_set(struct ar_err *e, enum ar_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes the message already in `e` with a formatted context, separated by
 * ": " (e.g. the file name). Returns -1. */
int ar_err_prefix(struct ar_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Resets `e` to AR_OK with an empty message. */
void ar_err_clear(struct ar_err *e);

#endif
