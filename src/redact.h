/* redact: secrets out of traces, on import and on record.
 *
 * Rules are PCRE2 patterns in rule files: the shipped src/rules/redact.rules
 * (API keys and tokens of the common providers, JWTs, private key blocks,
 * bearer/authorization headers, passwords in URLs, ...) plus any files the
 * user names. Each match's secret part (the pattern's group named `secret`,
 * else the whole match) is replaced by a placeholder of exactly the same
 * length in bytes, so token counts barely move and offsets stay put:
 * "[REDACTED:kind]" cut or padded with '*' to the secret's length (a secret
 * shorter than that becomes all '*').
 *
 * Ownership: redact_new returns a handle freed by redact_free (NULL ok). The
 * handle is not thread-safe; use one per thread.
 */
#ifndef AR_REDACT_H
#define AR_REDACT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

struct redact;

/* Loads the shipped rules (unless no_builtin) and then each of the n files
 * in extra (later rules with the same kind name replace earlier ones). A
 * rule that does not compile is an error naming FILE:LINE and PCRE2's
 * message with its offset. */
int redact_new(struct redact **out, const char *const *extra, size_t n, int no_builtin, struct ar_err *err);
void redact_free(struct redact *r);

/* Writes text[0..n) with every secret replaced into out (appended).
 * Returns the number of secrets replaced, or -1 with err set. */
int64_t redact_text(struct redact *r, const char *text, size_t n, struct buf *out, struct ar_err *err);

/* Replaces secrets in every string value of a cJSON tree, in place (object
 * keys are left alone). Returns the number replaced, or -1. */
int64_t redact_json(struct redact *r, cJSON *root, struct ar_err *err);

/* What was replaced so far, per rule kind (for the importer's and
 * recorder's report). */
size_t redact_n_kinds(const struct redact *r);
const char *redact_kind(const struct redact *r, size_t i);
int64_t redact_hits(const struct redact *r, size_t i);

#endif
