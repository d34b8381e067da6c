/* The Ollama adapter: POST /api/chat, NDJSON stream. The final object
 * (done:true) carries prompt_eval_count/duration, eval_count/duration and
 * load_duration (nanoseconds); all are kept as the server's figures. */
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "jsonh.h"

static int put_str(struct buf *b, const char *s)
{
	return jsonh_put_string(b, s, strlen(s));
}

static int ollama_build(const struct adapter *ad, const struct req_ctx *r, struct buf *b, struct ar_err *err)
{
	const struct tr_session *s = r->session;
	const struct convo *c = r->convo;
	bool sys = s->system && *s->system;
	struct buf text = BUF_INIT;
	if (buf_puts(b, "{\"model\":") < 0 || put_str(b, r->model ? r->model : "default") < 0 ||
	    buf_puts(b, ",\"messages\":[") < 0)
		goto oom;
	if (sys && (buf_puts(b, "{\"role\":\"system\",\"content\":") < 0 || buf_puts(&text, r->nonce) < 0 ||
		    buf_puts(&text, s->system) < 0 || jsonh_put_string(b, text.data, text.len) < 0 ||
		    buf_putc(b, '}') < 0))
		goto oom;
	for (size_t i = 0; i < c->n; i++) {
		const struct tr_message *m = &c->msgs[i];
		buf_reset(&text);
		if ((!sys && i == 0 && buf_puts(&text, r->nonce) < 0) || adapter_message_text(r, i, &text) < 0)
			goto oom;
		if (((sys || i) && buf_putc(b, ',') < 0) || buf_puts(b, "{\"role\":") < 0 ||
		    put_str(b, tr_role_name(m->role)) < 0 || buf_puts(b, ",\"content\":") < 0 ||
		    jsonh_put_string(b, text.data ? text.data : "", text.len) < 0)
			goto oom;
		if (m->n_calls) {
			/* Ollama wants arguments as an object */
			if (buf_puts(b, ",\"tool_calls\":[") < 0)
				goto oom;
			for (size_t k = 0; k < m->n_calls; k++) {
				cJSON *args = cJSON_Parse(m->calls[k].arguments ? m->calls[k].arguments : "{}");
				int rc = (k && buf_putc(b, ',') < 0) || buf_puts(b, "{\"function\":{\"name\":") < 0 ||
					 put_str(b, m->calls[k].name) < 0 || buf_puts(b, ",\"arguments\":") < 0 ||
					 (cJSON_IsObject(args) ? jsonh_put(b, args) : buf_puts(b, "{}")) < 0 ||
					 buf_puts(b, "}}") < 0;
				cJSON_Delete(args);
				if (rc)
					goto oom;
			}
			if (buf_putc(b, ']') < 0)
				goto oom;
		}
		if (m->name && (buf_puts(b, ",\"tool_name\":") < 0 || put_str(b, m->name) < 0))
			goto oom;
		if (buf_putc(b, '}') < 0)
			goto oom;
	}
	if (buf_putc(b, ']') < 0)
		goto oom;
	if (s->tools && cJSON_GetArraySize(s->tools) > 0 &&
	    (buf_puts(b, ",\"tools\":") < 0 || jsonh_put(b, s->tools) < 0))
		goto oom;
	if (buf_printf(b, ",\"stream\":%s,\"keep_alive\":\"30m\",\"options\":{\"num_predict\":%lld",
		       r->no_stream ? "false" : "true", (long long)r->max_tokens) < 0)
		goto oom;
	if (r->num_ctx > 0 && buf_printf(b, ",\"num_ctx\":%lld", (long long)r->num_ctx) < 0)
		goto oom;
	if (buf_puts(b, "}}") < 0)
		goto oom;
	buf_free(&text);
	return 0;
oom:
	buf_free(&text);
	return ar_err_set(err, AR_ENOMEM, "request body too large or out of memory");
}

static void ollama_event(struct stream_acc *a, const char *event, const char *data, size_t n, ar_ns t)
{
	cJSON *j = adapter_event_json(a, data, n);
	if (!j)
		return;
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	const cJSON *thinking = cJSON_GetObjectItemCaseSensitive(msg, "thinking");
	const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
	bool token = false;
	if (cJSON_IsString(content) && content->valuestring[0]) {
		token = true;
		adapter_note_text(a, content->valuestring);
	}
	if ((cJSON_IsString(thinking) && thinking->valuestring[0]) || (cJSON_IsArray(calls) && cJSON_GetArraySize(calls)))
		token = true;
	if (token)
		(void)stream_acc_token(a, t);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "done"))) {
		a->done = true;
		const cJSON *dr = cJSON_GetObjectItemCaseSensitive(j, "done_reason");
		if (cJSON_IsString(dr)) {
			a->finish_seen = true;
			snprintf(a->finish_reason, sizeof a->finish_reason, "%s", dr->valuestring);
		}
		int64_t v;
		if (jsonh_int(cJSON_GetObjectItemCaseSensitive(j, "prompt_eval_count"), &v))
			a->usage_prompt = v; /* tokens evaluated; Ollama reports no cached count */
		if (jsonh_int(cJSON_GetObjectItemCaseSensitive(j, "eval_count"), &v))
			a->usage_completion = v;
		static const char *const keep[] = {"prompt_eval_count", "prompt_eval_duration", "eval_count",
						   "eval_duration", "load_duration", "total_duration"};
		if (!a->server)
			a->server = cJSON_CreateObject();
		for (size_t i = 0; a->server && i < sizeof keep / sizeof keep[0]; i++) {
			const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, keep[i]);
			if (cJSON_IsNumber(x))
				cJSON_AddNumberToObject(a->server, keep[i], x->valuedouble);
		}
	}
	cJSON_Delete(j);
}

const struct adapter adapter_ollama = {
	.name = "ollama",
	.family = "ollama",
	.path = "/api/chat",
	.wire = WIRE_NDJSON,
	.build = ollama_build,
	.event = ollama_event,
};
