/* The llama-server adapter: llama.cpp's native POST /completion.
 *
 * The native endpoint reports timings (prompt_n, prompt_ms, cache_n,
 * predicted_n, predicted_ms) and never parses the model's output, so a
 * random-weight test model cannot break the stream the way the chat
 * endpoint's output parser does (REAL-BACKEND.md). The prompt is rendered
 * by the server's own chat template first (POST /apply-template, outside the
 * measured time), then sent with cache_prompt so the server's prefix cache
 * works as it does for the chat endpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "http.h"
#include "jsonh.h"

static int llama_build(const struct adapter *ad, const struct req_ctx *r, struct buf *b, struct ar_err *err)
{
	struct buf tb = BUF_INIT;
	char *resp = NULL;
	cJSON *j = NULL;
	int rc = -1;
	if (buf_puts(&tb, "{\"messages\":") < 0 || adapter_openai_messages(r, &tb) < 0)
		goto oom;
	if (r->session->tools && cJSON_GetArraySize(r->session->tools) > 0 &&
	    (buf_puts(&tb, ",\"tools\":") < 0 || jsonh_put(&tb, r->session->tools) < 0))
		goto oom;
	if (buf_putc(&tb, '}') < 0)
		goto oom;
	char url[2100];
	snprintf(url, sizeof url, "%s/apply-template", r->base_url);
	long status;
	size_t len;
	if (hx_fetch(url, tb.data, 60000, 64u << 20, &status, &resp, &len, err) < 0)
		goto out;
	if (status != 200) {
		ar_err_set(err, AR_EBACKEND, "POST %s answered HTTP %ld (a llama-server without /apply-template? "
			   "use --backend openai:URL): %.200s", url, status, resp ? resp : "");
		goto out;
	}
	j = cJSON_ParseWithLength(resp, len);
	const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(j, "prompt");
	if (!cJSON_IsString(prompt)) {
		ar_err_set(err, AR_EBACKEND, "POST %s did not answer {\"prompt\": ...}: %.200s", url, resp ? resp : "");
		goto out;
	}
	if (buf_puts(b, "{\"prompt\":") < 0)
		goto oom;
	if (r->token_ids) {
		/* the server's own tokenizer, before the clock starts: TTFT then
		 * covers only what the server does after tokenizing */
		struct buf q = BUF_INIT;
		char *tresp = NULL;
		size_t tlen;
		snprintf(url, sizeof url, "%s/tokenize", r->base_url);
		int bad = buf_puts(&q, "{\"add_special\":true,\"content\":") < 0 ||
			  jsonh_put_string(&q, prompt->valuestring, strlen(prompt->valuestring)) < 0 || buf_putc(&q, '}') < 0;
		if (bad || hx_fetch(url, q.data, 60000, 64u << 20, &status, &tresp, &tlen, err) < 0) {
			buf_free(&q);
			free(tresp);
			if (bad)
				goto oom;
			goto out;
		}
		buf_free(&q);
		cJSON *tj = status == 200 ? cJSON_ParseWithLength(tresp, tlen) : NULL;
		const cJSON *toks = cJSON_GetObjectItemCaseSensitive(tj, "tokens");
		if (!cJSON_IsArray(toks)) {
			ar_err_set(err, AR_EBACKEND, "POST %s answered HTTP %ld without tokens: %.200s", url, status,
				   tresp ? tresp : "");
			cJSON_Delete(tj);
			free(tresp);
			goto out;
		}
		bad = jsonh_put(b, toks) < 0;
		cJSON_Delete(tj);
		free(tresp);
		if (bad)
			goto oom;
	} else if (jsonh_put_string(b, prompt->valuestring, strlen(prompt->valuestring)) < 0) {
		goto oom;
	}
	if (buf_printf(b, ",\"n_predict\":%lld,\"stream\":%s,\"cache_prompt\":true", (long long)r->max_tokens,
		       r->no_stream ? "false" : "true") < 0)
		goto oom;
	if (!r->plain && buf_puts(b, ",\"ignore_eos\":true") < 0)
		goto oom;
	if (buf_putc(b, '}') < 0)
		goto oom;
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "request body too large or out of memory");
out:
	cJSON_Delete(j);
	free(resp);
	buf_free(&tb);
	return rc;
}

static void llama_event(struct stream_acc *a, const char *event, const char *data, size_t n, ar_ns t)
{
	if (n == 6 && !memcmp(data, "[DONE]", 6)) {
		a->done = true;
		return;
	}
	cJSON *j = adapter_event_json(a, data, n);
	if (!j)
		return;
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
	if (cJSON_IsString(content) && content->valuestring[0]) {
		adapter_note_text(a, content->valuestring);
		(void)stream_acc_token(a, t);
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stop"))) {
		a->done = true;
		a->finish_seen = true;
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stop_type");
		snprintf(a->finish_reason, sizeof a->finish_reason, "%s", cJSON_IsString(st) ? st->valuestring : "stop");
		int64_t v;
		if (jsonh_int(cJSON_GetObjectItemCaseSensitive(j, "tokens_predicted"), &v))
			a->usage_completion = v;
		const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "timings");
		if (cJSON_IsObject(tm)) {
			int64_t cache_n, prompt_n;
			if (jsonh_int(cJSON_GetObjectItemCaseSensitive(tm, "cache_n"), &cache_n)) {
				a->usage_cached = cache_n;
				a->cached_source = "timings";
				if (jsonh_int(cJSON_GetObjectItemCaseSensitive(tm, "prompt_n"), &prompt_n))
					a->usage_prompt = cache_n + prompt_n;
			}
			if (!a->server)
				a->server = cJSON_CreateObject();
			cJSON *d = cJSON_Duplicate(tm, 1);
			if (a->server && d)
				cJSON_AddItemToObject(a->server, "timings", d);
			else
				cJSON_Delete(d);
		}
		static const char *const keep[] = {"tokens_evaluated", "tokens_cached", "truncated", "stop_type", "id_slot"};
		for (size_t i = 0; a->server && i < sizeof keep / sizeof keep[0]; i++) {
			const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, keep[i]);
			cJSON *d = x ? cJSON_Duplicate(x, 1) : NULL;
			if (d)
				cJSON_AddItemToObject(a->server, keep[i], d);
		}
	}
	cJSON_Delete(j);
}

const struct adapter adapter_llama = {
	.name = "llama-server",
	.family = "llama",
	.path = "/completion",
	.wire = WIRE_SSE,
	.llama_extras = true,
	.build = llama_build,
	.event = llama_event,
};
