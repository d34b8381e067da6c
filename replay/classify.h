/* classify: the outcome of a request, in the failure taxonomy of DESIGN.md
 * section 5 (ok, ctx_overflow, oom, crash, timeout, http_error,
 * protocol_error, slo), with the evidence that decided it.
 *
 * What server messages mean lives in data: PCRE2 rule files per backend
 * family in replay/rules/ (see its README), loaded at run time. The code
 * here only knows the transport facts: timeouts, refused or dropped
 * connections, HTTP status, missing end markers, malformed events.
 */
#ifndef AR_CLASSIFY_H
#define AR_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "adapter.h"
#include "err.h"
#include "http.h"

struct rules;

/* Default rule folder (the source tree's replay/rules). */
const char *rules_default_dir(void);
/* Loads DIR/<family>.rules (when present), then the other families' files
 * (the engine behind an OpenAI-compatible URL may be any), then
 * DIR/generic.rules. Errors name FILE:LINE and PCRE2's message. */
int rules_load(struct rules **out, const char *dir, const char *family, struct ar_err *err);
void rules_free(struct rules *r);
/* The class of the first rule for `where` ("body", "event", "log") whose
 * pattern matches text, or NULL. evidence gets the matching line (cut). */
const char *rules_match(const struct rules *r, const char *where, const char *text, size_t n, char *evidence,
			size_t evidence_size);

struct outcome {
	const char *cls;     /* static string */
	char evidence[600];
};

/* Decides a finished request's outcome. body: the response body when it
 * was not a stream (error responses), else NULL. endpoint: "POST /v1/..." */
void classify_request(const struct rules *r, const struct adapter *ad, const char *endpoint,
		      const struct hx_result *res, const struct stream_acc *acc, const char *body, size_t body_len,
		      bool stream_error, const char *stream_error_msg, struct outcome *out);

#endif
