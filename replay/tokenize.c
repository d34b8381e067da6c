#include "tokenize.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jsonh.h"

#define TOKENIZE_MAX_RESPONSE (512u << 20) /* a 1M-token answer is ~8 MB of ids */

enum flavour { FL_UNKNOWN, FL_LLAMA, FL_VLLM };

struct tokenize {
	CURL *curl;
	struct curl_slist *headers;
	char *endpoint;
	enum flavour fl;
	struct buf body, resp;
	char errbuf[CURL_ERROR_SIZE];
};

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

int tokenize_open(struct tokenize **out, const char *url, struct ar_err *err)
{
	*out = NULL;
	if (!url || !*url)
		return ar_err_set(err, AR_EINVAL, "empty tokenizer URL");
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return ar_err_set(err, AR_EINVAL, "tokenizer URL '%s' must start with http:// or https://", url);
	struct tokenize *t = calloc(1, sizeof *t);
	if (!t)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	buf_init(&t->body, 0);
	buf_init(&t->resp, TOKENIZE_MAX_RESPONSE);
	struct buf u = BUF_INIT;
	buf_puts(&u, url);
	while (u.len && u.data[u.len - 1] == '/')
		u.data[--u.len] = 0;
	if (!ends_with(u.data, "/tokenize")) {
		if (ends_with(u.data, "/v1")) {
			u.len -= 3;
			u.data[u.len] = 0;
		}
		buf_puts(&u, "/tokenize");
	}
	t->endpoint = buf_detach(&u);
	if (!t->endpoint || !(t->curl = curl_easy_init()) ||
	    !(t->headers = curl_slist_append(NULL, "Content-Type: application/json"))) {
		tokenize_close(t);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	*out = t;
	return 0;
}

void tokenize_close(struct tokenize *t)
{
	if (!t)
		return;
	if (t->curl)
		curl_easy_cleanup(t->curl);
	curl_slist_free_all(t->headers);
	free(t->endpoint);
	buf_free(&t->body);
	buf_free(&t->resp);
	free(t);
}

const char *tokenize_endpoint(const struct tokenize *t) { return t->endpoint; }

const char *tokenize_flavour(const struct tokenize *t)
{
	return t->fl == FL_LLAMA ? "llama-server" : t->fl == FL_VLLM ? "vllm" : "unknown";
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct buf *b = ud;
	return buf_append(b, p, size * n) < 0 ? 0 : size * n;
}

/* One POST; *status gets the HTTP status. */
static int post(struct tokenize *t, long *status, struct ar_err *err)
{
	buf_reset(&t->resp);
	t->errbuf[0] = 0;
	curl_easy_reset(t->curl);
	curl_easy_setopt(t->curl, CURLOPT_URL, t->endpoint);
	curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, t->body.data);
	curl_easy_setopt(t->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body.len);
	curl_easy_setopt(t->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(t->curl, CURLOPT_WRITEDATA, &t->resp);
	curl_easy_setopt(t->curl, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(t->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(t->curl, CURLOPT_TIMEOUT, 600L);
	CURLcode rc = curl_easy_perform(t->curl);
	if (rc != CURLE_OK) {
		if (rc == CURLE_WRITE_ERROR && t->resp.len >= TOKENIZE_MAX_RESPONSE - 16)
			return ar_err_set(err, AR_ELIMIT, "tokenizer at '%s' sent more than %u MiB", t->endpoint,
					  TOKENIZE_MAX_RESPONSE >> 20);
		/* curl's short text is stable (the error buffer adds timings) */
		return ar_err_set(err, AR_ENET, "cannot reach the tokenizer at '%s': %s", t->endpoint,
				  curl_easy_strerror(rc));
	}
	curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

static int make_body(struct tokenize *t, enum flavour fl, const char *text, size_t n)
{
	buf_reset(&t->body);
	int rc = buf_puts(&t->body, fl == FL_VLLM ? "{\"prompt\":" : "{\"content\":");
	if (rc == 0)
		rc = jsonh_put_string(&t->body, text, n);
	if (rc == 0)
		rc = buf_puts(&t->body, fl == FL_VLLM ? ",\"add_special_tokens\":false}"
						   : ",\"add_special\":false,\"parse_special\":false}");
	return rc;
}

/* Parses a 2xx answer: the count, or -2 for "not understood". */
static int64_t parse(const struct tokenize *t)
{
	cJSON *j = cJSON_ParseWithLength(t->resp.data ? t->resp.data : "", t->resp.len);
	int64_t n = -2;
	if (!j)
		return -2;
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "count");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "tokens");
	int64_t v;
	if (c && jsonh_int(c, &v) && v >= 0)
		n = v;
	else if (cJSON_IsArray(tok))
		n = cJSON_GetArraySize(tok);
	cJSON_Delete(j);
	return n;
}

static void excerpt(const struct tokenize *t, char *out, size_t n)
{
	size_t len = t->resp.len < n - 1 ? t->resp.len : n - 1;
	for (size_t i = 0; i < len; i++) {
		char c = t->resp.data[i];
		out[i] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
	}
	out[len] = 0;
}

int64_t tokenize_count(void *ud, const char *text, size_t n, struct ar_err *err)
{
	struct tokenize *t = ud;
	enum flavour tries[2] = {FL_LLAMA, FL_VLLM};
	int ntries = 2;
	if (t->fl != FL_UNKNOWN) {
		tries[0] = t->fl;
		ntries = 1;
	}
	char ex[240];
	long status = 0;
	for (int i = 0; i < ntries; i++) {
		if (make_body(t, tries[i], text, n) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		if (post(t, &status, err) < 0)
			return -1;
		if (status >= 200 && status < 300) {
			int64_t c = parse(t);
			/* llama-server answers {"tokens":[]} to a body without "content" */
			if (c >= 0 && !(c == 0 && n > 0 && t->fl == FL_UNKNOWN && i + 1 < ntries)) {
				t->fl = tries[i];
				return c;
			}
			if (c == -2 && i + 1 == ntries) {
				excerpt(t, ex, sizeof ex);
				return ar_err_set(err, AR_EBACKEND, "tokenizer at '%s' answered something else than a token list: %s",
						  t->endpoint, ex);
			}
		} else if (!(status >= 400 && status < 500 && i + 1 < ntries)) {
			break;
		}
	}
	excerpt(t, ex, sizeof ex);
	return ar_err_set(err, AR_EBACKEND, "tokenizer at '%s' answered HTTP %ld: %s", t->endpoint, status,
			  ex[0] ? ex : "(empty body)");
}
