/* The OpenAI chat-completions adapter (vLLM, SGLang, LM Studio, mlx-lm,
 * llama-server's OpenAI endpoint, ...). */
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "jsonh.h"

static int put_str(struct buf *b, const char *s)
{
	return jsonh_put_string(b, s, strlen(s));
}

/* The messages array in OpenAI form. The nonce goes at the very start of the
 * prompt: the system message, or the first message when there is none. */
int adapter_openai_messages(const struct req_ctx *r, struct buf *b)
{
	const struct tr_session *s = r->session;
	const struct convo *c = r->convo;
	bool sys = s->system && *s->system;
	struct buf text = BUF_INIT;
	int rc = -1;
	if (buf_putc(b, '[') < 0)
		goto out;
	if (sys) {
		buf_reset(&text);
		if (buf_puts(&text, r->nonce) < 0 || buf_puts(&text, s->system) < 0)
			goto out;
		if (buf_puts(b, "{\"role\":\"system\",\"content\":") < 0 ||
		    jsonh_put_string(b, text.data, text.len) < 0 || buf_putc(b, '}') < 0)
			goto out;
	}
	for (size_t i = 0; i < c->n; i++) {
		const struct tr_message *m = &c->msgs[i];
		if ((sys || i) && buf_putc(b, ',') < 0)
			goto out;
		buf_reset(&text);
		if (!sys && i == 0 && buf_puts(&text, r->nonce) < 0)
			goto out;
		if (adapter_message_text(r, i, &text) < 0)
			goto out;
		if (buf_puts(b, "{\"role\":") < 0 || put_str(b, tr_role_name(m->role)) < 0 ||
		    buf_puts(b, ",\"content\":") < 0)
			goto out;
		if (m->n_calls && !text.len ? buf_puts(b, "null") < 0 : jsonh_put_string(b, text.data ? text.data : "", text.len) < 0)
			goto out;
		if (m->n_calls) {
			if (buf_puts(b, ",\"tool_calls\":[") < 0)
				goto out;
			for (size_t k = 0; k < m->n_calls; k++) {
				const struct tr_tool_call *tc = &m->calls[k];
				if ((k && buf_putc(b, ',') < 0) || buf_puts(b, "{\"id\":") < 0 || put_str(b, tc->id) < 0 ||
				    buf_puts(b, ",\"type\":\"function\",\"function\":{\"name\":") < 0 ||
				    put_str(b, tc->name) < 0 || buf_puts(b, ",\"arguments\":") < 0 ||
				    put_str(b, tc->arguments ? tc->arguments : "{}") < 0 || buf_puts(b, "}}") < 0)
					goto out;
			}
			if (buf_putc(b, ']') < 0)
				goto out;
		}
		if (m->tool_call_id && (buf_puts(b, ",\"tool_call_id\":") < 0 || put_str(b, m->tool_call_id) < 0))
			goto out;
		if (m->name && (buf_puts(b, ",\"name\":") < 0 || put_str(b, m->name) < 0))
			goto out;
		if (buf_putc(b, '}') < 0)
			goto out;
	}
	rc = buf_putc(b, ']');
out:
	buf_free(&text);
	return rc;
}

static int openai_build(const struct adapter *ad, const struct req_ctx *r, struct buf *b, struct ar_err *err)
{
	if (buf_puts(b, "{\"model\":") < 0 || put_str(b, r->model ? r->model : "default") < 0 ||
	    buf_puts(b, ",\"messages\":") < 0 || adapter_openai_messages(r, b) < 0)
		goto oom;
	if (r->session->tools && cJSON_GetArraySize(r->session->tools) > 0 &&
	    (buf_puts(b, ",\"tools\":") < 0 || jsonh_put(b, r->session->tools) < 0))
		goto oom;
	if (buf_printf(b, ",\"stream\":%s", r->no_stream ? "false" : "true") < 0)
		goto oom;
	if (!r->no_stream && buf_puts(b, ",\"stream_options\":{\"include_usage\":true}") < 0)
		goto oom;
	/* max_tokens is what most servers read; OpenAI's newer models want
	 * max_completion_tokens (--max-tokens-field) */
	if (r->max_tokens_field != 1 && buf_printf(b, ",\"max_tokens\":%lld", (long long)r->max_tokens) < 0)
		goto oom;
	if (r->max_tokens_field >= 1 && buf_printf(b, ",\"max_completion_tokens\":%lld", (long long)r->max_tokens) < 0)
		goto oom;
	/* generate exactly max_tokens where the server lets us (vLLM, SGLang,
	 * llama-server accept these; --plain-openai leaves them out) */
	if (!r->plain && buf_printf(b, ",\"ignore_eos\":true,\"min_tokens\":%lld", (long long)r->max_tokens) < 0)
		goto oom;
	if (buf_putc(b, '}') < 0)
		goto oom;
	return 0;
oom:
	return ar_err_set(err, AR_ENOMEM, "request body too large or out of memory");
}

static bool nonempty_str(const cJSON *v)
{
	return cJSON_IsString(v) && v->valuestring[0];
}

static void keep_server(struct stream_acc *a, const char *key, const cJSON *v)
{
	if (!a->server && !(a->server = cJSON_CreateObject()))
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(a->server, key);
	cJSON *d = cJSON_Duplicate(v, 1);
	if (d)
		cJSON_AddItemToObject(a->server, key, d);
}


static void openai_event(struct stream_acc *a, const char *event, const char *data, size_t n, ar_ns t)
{
	if (n == 6 && !memcmp(data, "[DONE]", 6)) {
		a->done = true;
		return;
	}
	cJSON *j = adapter_event_json(a, data, n);
	if (!j)
		return;
	const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
	const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
	if (c0) {
		const cJSON *delta = cJSON_GetObjectItemCaseSensitive(c0, "delta");
		bool token = false;
		if (delta) {
			const cJSON *content = cJSON_GetObjectItemCaseSensitive(delta, "content");
			if (nonempty_str(content)) {
				token = true;
				adapter_note_text(a, content->valuestring);
			}
			if (nonempty_str(cJSON_GetObjectItemCaseSensitive(delta, "reasoning_content")) ||
			    nonempty_str(cJSON_GetObjectItemCaseSensitive(delta, "reasoning")))
				token = true;
			const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
			const cJSON *tc;
			cJSON_ArrayForEach(tc, tcs) {
				const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
				if (nonempty_str(cJSON_GetObjectItemCaseSensitive(fn, "arguments")) ||
				    nonempty_str(cJSON_GetObjectItemCaseSensitive(fn, "name")))
					token = true;
			}
		}
		/* /v1/completions streams choices[0].text */
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(c0, "text");
		if (nonempty_str(text)) {
			token = true;
			adapter_note_text(a, text->valuestring);
		}
		if (token)
			(void)stream_acc_token(a, t);
		const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
		if (cJSON_IsString(fr)) {
			a->finish_seen = true;
			snprintf(a->finish_reason, sizeof a->finish_reason, "%s", fr->valuestring);
		}
	}
	const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
	if (cJSON_IsObject(usage)) {
		int64_t v;
		if (jsonh_int(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens"), &v))
			a->usage_prompt = v;
		if (jsonh_int(cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens"), &v))
			a->usage_completion = v;
		const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
		if (jsonh_int(cJSON_GetObjectItemCaseSensitive(det, "cached_tokens"), &v)) {
			a->usage_cached = v;
			a->cached_source = "usage";
		}
		keep_server(a, "usage", usage);
	}
	const cJSON *timings = cJSON_GetObjectItemCaseSensitive(j, "timings");
	if (cJSON_IsObject(timings)) {
		int64_t cache_n, prompt_n, predicted_n;
		bool hc = jsonh_int(cJSON_GetObjectItemCaseSensitive(timings, "cache_n"), &cache_n);
		bool hp = jsonh_int(cJSON_GetObjectItemCaseSensitive(timings, "prompt_n"), &prompt_n);
		if (hc && a->usage_cached < 0) {
			a->usage_cached = cache_n;
			a->cached_source = "timings";
		}
		if (hc && hp && a->usage_prompt < 0)
			a->usage_prompt = cache_n + prompt_n;
		if (jsonh_int(cJSON_GetObjectItemCaseSensitive(timings, "predicted_n"), &predicted_n) &&
		    a->usage_completion < 0)
			a->usage_completion = predicted_n;
		keep_server(a, "timings", timings);
	}
	cJSON_Delete(j);
}

const struct adapter adapter_openai = {
	.name = "openai",
	.family = "openai",
	.path = "/v1/chat/completions",
	.wire = WIRE_SSE,
	.build = openai_build,
	.event = openai_event,
};
