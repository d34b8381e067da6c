#include "classify.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rulefile.h"

struct rule {
	char cls[24];
	unsigned where; /* bit 1 body, 2 event, 4 log */
	pcre2_code *re;
};

struct rules {
	struct rule *v;
	size_t n, cap;
	pcre2_match_data *md;
};

const char *rules_default_dir(void)
{
	return AR_SOURCE_DIR "/replay/rules";
}

static const char *const classes[] = {"ok", "ctx_overflow", "oom", "crash", "timeout", "http_error",
				      "protocol_error", "slo"};

static const char *class_static(const char *name)
{
	for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
		if (!strcmp(classes[i], name))
			return classes[i];
	return NULL;
}

void rules_free(struct rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		pcre2_code_free(r->v[i].re);
	free(r->v);
	pcre2_match_data_free(r->md);
	free(r);
}

static int load_file(struct rules *r, const char *path, bool required, struct ar_err *err)
{
	struct rulefile *rf;
	if (rulefile_open(&rf, path, 4094, required, "rule file", err) < 0)
		return -1;
	if (!rf)
		return 0; /* optional, absent */
	int rc;
	char *p;
	while ((rc = rulefile_next(rf, &p, err)) == 1) {
		int lineno = rulefile_lineno(rf);
		char cls[32], where[64];
		int off = 0;
		if (sscanf(p, "%31s %63s %n", cls, where, &off) != 2 || !p[off]) {
			rc = ar_err_set(err, AR_EFORMAT, "%s:%d: expected 'CLASS WHERE PATTERN'", path, lineno);
			break;
		}
		if (!class_static(cls) || !strcmp(cls, "ok")) {
			rc = ar_err_set(err, AR_EFORMAT, "%s:%d: unknown class '%s'", path, lineno, cls);
			break;
		}
		unsigned w = 0;
		char *save = NULL;
		for (char *tok = strtok_r(where, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (!strcmp(tok, "body"))
				w |= 1;
			else if (!strcmp(tok, "event"))
				w |= 2;
			else if (!strcmp(tok, "log"))
				w |= 4;
			else {
				rc = ar_err_set(err, AR_EFORMAT, "%s:%d: unknown place '%s' (body, event or log)", path,
						lineno, tok);
				goto out;
			}
		}
		pcre2_code *re = rulefile_compile(rf, p + off, 0, NULL, err);
		if (!re) {
			rc = -1;
			break;
		}
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 16;
			struct rule *v = realloc(r->v, cap * sizeof *v);
			if (!v) {
				pcre2_code_free(re);
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
				break;
			}
			r->v = v;
			r->cap = cap;
		}
		snprintf(r->v[r->n].cls, sizeof r->v[r->n].cls, "%s", cls);
		r->v[r->n].where = w;
		r->v[r->n].re = re;
		r->n++;
	}
out:
	rulefile_close(rf);
	return rc < 0 ? -1 : 0;
}

/* The named family's rules first, then every other family's (the server
 * behind an OpenAI-compatible endpoint may be any engine), generic last. */
int rules_load(struct rules **out, const char *dir, const char *family, struct ar_err *err)
{
	*out = NULL;
	struct rules *r = calloc(1, sizeof *r);
	if (!r)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	char path[4096];
	if (family && *family) {
		snprintf(path, sizeof path, "%s/%s.rules", dir, family);
		if (load_file(r, path, false, err) < 0)
			goto fail;
	}
	DIR *d = opendir(dir);
	if (!d) {
		ar_err_set(err, AR_EIO, "cannot open the rules folder '%s': %s", dir, strerror(errno));
		goto fail;
	}
	/* a stable order whatever readdir returns */
	char names[64][256];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 64) {
		size_t len = strlen(e->d_name);
		if (len < 7 || strcmp(e->d_name + len - 6, ".rules") || !strcmp(e->d_name, "generic.rules"))
			continue;
		if (family && !strncmp(e->d_name, family, len - 6) && strlen(family) == len - 6)
			continue;
		snprintf(names[n++], sizeof names[0], "%s", e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		if (load_file(r, path, true, err) < 0)
			goto fail;
	}
	snprintf(path, sizeof path, "%s/generic.rules", dir);
	if (load_file(r, path, true, err) < 0)
		goto fail;
	if (!(r->md = pcre2_match_data_create(4, NULL))) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto fail;
	}
	*out = r;
	return 0;
fail:
	rules_free(r);
	return -1;
}

static void excerpt(char *out, size_t size, const char *text, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < size; i++) {
		unsigned char c = (unsigned char)text[i];
		out[k++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : (c < 0x20 ? '?' : (char)c);
	}
	out[k] = '\0';
}

const char *rules_match(const struct rules *r, const char *where, const char *text, size_t n, char *evidence,
			size_t evidence_size)
{
	unsigned w = !strcmp(where, "body") ? 1 : !strcmp(where, "event") ? 2 : 4;
	for (size_t i = 0; i < r->n; i++) {
		if (!(r->v[i].where & w))
			continue;
		int rc = pcre2_match(r->v[i].re, (PCRE2_SPTR)text, n, 0, 0, r->md, NULL);
		if (rc < 0)
			continue;
		if (evidence) {
			/* the line around the match */
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
			size_t s = ov[0], e = ov[1];
			while (s > 0 && text[s - 1] != '\n')
				s--;
			while (e < n && text[e] != '\n')
				e++;
			if (e - s > evidence_size - 1 && ov[0] > s + 40)
				s = ov[0] - 40;
			excerpt(evidence, evidence_size, text + s, e - s);
		}
		return class_static(r->v[i].cls);
	}
	return NULL;
}

void classify_request(const struct rules *r, const struct adapter *ad, const char *endpoint,
		      const struct hx_result *res, const struct stream_acc *acc, const char *body, size_t body_len,
		      bool stream_error, const char *stream_error_msg, struct outcome *out)
{
	out->cls = "ok";
	out->evidence[0] = '\0';
	char ex[400];
	if (res->timed_out) {
		out->cls = "timeout";
		snprintf(out->evidence, sizeof out->evidence, "%s (%lld token events before it)", res->curl_error,
			 (long long)acc->token_events);
		return;
	}
	if (res->status == 0 && res->curl_code) {
		/* nothing came back: refused, reset, or closed before any byte */
		out->cls = "crash";
		snprintf(out->evidence, sizeof out->evidence, "%s: %s", endpoint, res->curl_error);
		return;
	}
	if (res->status >= 400) {
		excerpt(ex, sizeof ex, body ? body : "", body_len);
		const char *cls = body ? rules_match(r, "body", body, body_len, out->evidence, sizeof out->evidence) : NULL;
		if (cls) {
			out->cls = cls;
			return;
		}
		out->cls = "http_error";
		snprintf(out->evidence, sizeof out->evidence, "%s returned HTTP %ld%s%s: %s", endpoint, res->status,
			 res->content_type[0] ? " " : "", res->content_type, ex[0] ? ex : "(empty body)");
		return;
	}
	if (acc->error.len) {
		const char *cls = rules_match(r, "event", acc->error.data, acc->error.len, out->evidence, sizeof out->evidence);
		out->cls = cls ? cls : "http_error";
		if (!cls)
			excerpt(out->evidence, sizeof out->evidence, acc->error.data, acc->error.len);
		return;
	}
	if (stream_error) {
		out->cls = "protocol_error";
		snprintf(out->evidence, sizeof out->evidence, "%s", stream_error_msg);
		return;
	}
	if (res->curl_code && !acc->done) {
		/* the connection dropped (mid-headers or mid-stream): the server died or reset it */
		out->cls = "crash";
		snprintf(out->evidence, sizeof out->evidence, "%s: connection lost after %lld token events: %s", endpoint,
			 (long long)acc->token_events, res->curl_error);
		return;
	}
	bool want_sse = ad->wire == WIRE_SSE;
	const char *ct = res->content_type;
	bool ct_ok = want_sse ? !strncasecmp(ct, "text/event-stream", 17)
			      : (!strncasecmp(ct, "application/x-ndjson", 20) || !strncasecmp(ct, "application/json", 16));
	if (!ct_ok) {
		/* even when the bytes parse, a server that mislabels its stream breaks the protocol */
		excerpt(ex, sizeof ex, body ? body : "", body_len);
		out->cls = "protocol_error";
		snprintf(out->evidence, sizeof out->evidence, "%s: expected %s, got %s: %s", endpoint,
			 want_sse ? "text/event-stream" : "application/x-ndjson", ct[0] ? ct : "no content type",
			 ex[0] ? ex : "(empty body)");
		return;
	}
	if (acc->bad_event) {
		out->cls = "protocol_error";
		snprintf(out->evidence, sizeof out->evidence, "%s", acc->bad_event_msg);
		return;
	}
	if (!acc->done && !acc->finish_seen) {
		out->cls = "protocol_error";
		snprintf(out->evidence, sizeof out->evidence, "%s: the stream ended without its end marker after %lld token events",
			 endpoint, (long long)acc->token_events);
		return;
	}
	if (acc->token_events == 0 && acc->usage_completion != 0) {
		out->cls = "protocol_error";
		snprintf(out->evidence, sizeof out->evidence, "%s: the stream carried no generated token", endpoint);
	}
}
