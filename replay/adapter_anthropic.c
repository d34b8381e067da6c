/* The Anthropic Messages adapter: POST /v1/messages, SSE with named events
 * (message_start, content_block_delta with text/thinking/input_json deltas,
 * message_delta with the output usage, message_stop). The prompt total is
 * input_tokens + cache_read_input_tokens + cache_creation_input_tokens; the
 * cached part is cache_read_input_tokens. */
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "jsonh.h"

static int put_str(struct buf *b, const char *s)
{
	return jsonh_put_string(b, s, strlen(s));
}

/* Anthropic has no tool role: tool results are tool_result blocks in a user
 * turn, and consecutive same-role messages are merged into one turn. */
static int put_messages(const struct req_ctx *r, struct buf *b, bool nonce_first)
{
	const struct convo *c = r->convo;
	struct buf text = BUF_INIT;
	int rc = -1;
	const char *open_role = NULL;
	if (buf_putc(b, '[') < 0)
		goto out;
	for (size_t i = 0; i < c->n; i++) {
		const struct tr_message *m = &c->msgs[i];
		const char *role = m->role == TR_ASSISTANT ? "assistant" : "user";
		buf_reset(&text);
		if ((nonce_first && i == 0 && buf_puts(&text, r->nonce) < 0) || adapter_message_text(r, i, &text) < 0)
			goto out;
		if (!open_role || strcmp(open_role, role)) {
			if (open_role && buf_puts(b, "]},") < 0)
				goto out;
			if (buf_puts(b, "{\"role\":") < 0 || put_str(b, role) < 0 || buf_puts(b, ",\"content\":[") < 0)
				goto out;
			open_role = role;
		} else if (buf_putc(b, ',') < 0) {
			goto out;
		}
		if (m->role == TR_TOOL) {
			if (buf_puts(b, "{\"type\":\"tool_result\",\"tool_use_id\":") < 0 || put_str(b, m->tool_call_id) < 0 ||
			    buf_puts(b, ",\"content\":") < 0 || jsonh_put_string(b, text.data ? text.data : "", text.len) < 0 ||
			    buf_putc(b, '}') < 0)
				goto out;
			continue;
		}
		bool wrote = false;
		if (text.len || !m->n_calls) {
			if (buf_puts(b, "{\"type\":\"text\",\"text\":") < 0 ||
			    jsonh_put_string(b, text.len ? text.data : ".", text.len ? text.len : 1) < 0 || buf_putc(b, '}') < 0)
				goto out;
			wrote = true;
		}
		for (size_t k = 0; k < m->n_calls; k++) {
			cJSON *args = cJSON_Parse(m->calls[k].arguments ? m->calls[k].arguments : "{}");
			int bad = (wrote && buf_putc(b, ',') < 0) || buf_puts(b, "{\"type\":\"tool_use\",\"id\":") < 0 ||
				  put_str(b, m->calls[k].id) < 0 || buf_puts(b, ",\"name\":") < 0 ||
				  put_str(b, m->calls[k].name) < 0 || buf_puts(b, ",\"input\":") < 0 ||
				  (cJSON_IsObject(args) ? jsonh_put(b, args) : buf_puts(b, "{}")) < 0 || buf_putc(b, '}') < 0;
			cJSON_Delete(args);
			if (bad)
				goto out;
			wrote = true;
		}
	}
	if (open_role && buf_puts(b, "]}") < 0)
		goto out;
	rc = buf_putc(b, ']');
out:
	buf_free(&text);
	return rc;
}

static int anthropic_build(const struct adapter *ad, const struct req_ctx *r, struct buf *b, struct ar_err *err)
{
	const struct tr_session *s = r->session;
	bool sys = s->system && *s->system;
	if (buf_puts(b, "{\"model\":") < 0 || put_str(b, r->model ? r->model : "default") < 0 ||
	    buf_printf(b, ",\"max_tokens\":%lld,\"stream\":%s", (long long)r->max_tokens,
		       r->no_stream ? "false" : "true") < 0)
		goto oom;
	if (sys) {
		struct buf t = BUF_INIT;
		int bad = buf_puts(&t, r->nonce) < 0 || buf_puts(&t, s->system) < 0 || buf_puts(b, ",\"system\":") < 0 ||
			  jsonh_put_string(b, t.data, t.len) < 0;
		buf_free(&t);
		if (bad)
			goto oom;
	}
	if (s->tools && cJSON_GetArraySize(s->tools) > 0) {
		if (buf_puts(b, ",\"tools\":[") < 0)
			goto oom;
		int k = 0;
		const cJSON *tool;
		cJSON_ArrayForEach(tool, s->tools) {
			const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tool, "function");
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
			const cJSON *desc = cJSON_GetObjectItemCaseSensitive(fn, "description");
			const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
			if (!cJSON_IsString(name))
				continue;
			if ((k++ && buf_putc(b, ',') < 0) || buf_puts(b, "{\"name\":") < 0 || put_str(b, name->valuestring) < 0)
				goto oom;
			if (cJSON_IsString(desc) && (buf_puts(b, ",\"description\":") < 0 || put_str(b, desc->valuestring) < 0))
				goto oom;
			if (buf_puts(b, ",\"input_schema\":") < 0 ||
			    (cJSON_IsObject(params) ? jsonh_put(b, params) : buf_puts(b, "{\"type\":\"object\"}")) < 0 ||
			    buf_putc(b, '}') < 0)
				goto oom;
		}
		if (buf_putc(b, ']') < 0)
			goto oom;
	}
	if (buf_puts(b, ",\"messages\":") < 0 || put_messages(r, b, !sys) < 0 || buf_putc(b, '}') < 0)
		goto oom;
	return 0;
oom:
	return ar_err_set(err, AR_ENOMEM, "request body too large or out of memory");
}

static void anthropic_event(struct stream_acc *a, const char *event, const char *data, size_t n, ar_ns t)
{
	cJSON *j = cJSON_ParseWithLength(data, n);
	if (!cJSON_IsObject(j)) {
		a->bad_event = true;
		snprintf(a->bad_event_msg, sizeof a->bad_event_msg, "an event is not a JSON object: %.80s", data);
		cJSON_Delete(j);
		return;
	}
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
	const char *ty = cJSON_IsString(type) ? type->valuestring : event;
	int64_t v;
	if (!strcmp(ty, "error")) {
		buf_reset(&a->error);
		(void)buf_append(&a->error, data, n);
	} else if (!strcmp(ty, "message_start")) {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "message"), "usage");
		int64_t in = 0, rd = 0, cr = 0;
		jsonh_int(cJSON_GetObjectItemCaseSensitive(u, "input_tokens"), &in);
		jsonh_int(cJSON_GetObjectItemCaseSensitive(u, "cache_read_input_tokens"), &rd);
		jsonh_int(cJSON_GetObjectItemCaseSensitive(u, "cache_creation_input_tokens"), &cr);
		if (u) {
			a->usage_prompt = in + rd + cr;
			a->usage_cached = rd;
			a->cached_source = "usage";
			if (!a->server)
				a->server = cJSON_CreateObject();
			cJSON *d = cJSON_Duplicate(u, 1);
			if (a->server && d)
				cJSON_AddItemToObject(a->server, "usage", d);
			else
				cJSON_Delete(d);
		}
	} else if (!strcmp(ty, "content_block_delta")) {
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "delta");
		const cJSON *txt = cJSON_GetObjectItemCaseSensitive(d, "text");
		const cJSON *th = cJSON_GetObjectItemCaseSensitive(d, "thinking");
		const cJSON *pj = cJSON_GetObjectItemCaseSensitive(d, "partial_json");
		bool token = false;
		if (cJSON_IsString(txt) && txt->valuestring[0]) {
			adapter_note_text(a, txt->valuestring);
			token = true;
		}
		if ((cJSON_IsString(th) && th->valuestring[0]) || (cJSON_IsString(pj) && pj->valuestring[0]))
			token = true;
		if (token)
			(void)stream_acc_token(a, t);
	} else if (!strcmp(ty, "message_delta")) {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
		if (jsonh_int(cJSON_GetObjectItemCaseSensitive(u, "output_tokens"), &v))
			a->usage_completion = v;
		const cJSON *sr = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "delta"), "stop_reason");
		if (cJSON_IsString(sr)) {
			a->finish_seen = true;
			snprintf(a->finish_reason, sizeof a->finish_reason, "%s", sr->valuestring);
		}
	} else if (!strcmp(ty, "message_stop")) {
		a->done = true;
	}
	cJSON_Delete(j);
}

const struct adapter adapter_anthropic = {
	.name = "anthropic",
	.family = "anthropic",
	.path = "/v1/messages",
	.wire = WIRE_SSE,
	.build = anthropic_build,
	.event = anthropic_event,
};
