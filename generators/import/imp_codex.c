/* Codex CLI rollouts (~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl): lines
 * {timestamp, type, payload}. session_meta opens the session (its
 * instructions are the system prompt); response_item payloads are the
 * conversation: message (user/developer input, assistant output),
 * function_call / custom_tool_call / local_shell_call (output),
 * function_call_output / custom_tool_call_output (input), reasoning (output:
 * summary text kept as reasoning, encrypted_content dropped, its size in
 * output_tokens). A run of output items is one API call; event_msg
 * token_count gives that call's usage in info.last_token_usage (never
 * total_token_usage, which is cumulative). A compacted line restarts the
 * context (keep 0 + its summary). Developer messages are system messages. */
#include <stdlib.h>
#include <string.h>

#include "import.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)path;
	(void)n;
	if (strstr(head, "\"type\":\"session_meta\"") || strstr(head, "\"codex_cli_rs\""))
		return 90;
	if (strstr(head, "\"type\":\"response_item\"") || strstr(head, "\"type\":\"turn_context\""))
		return 80;
	return 0;
}

struct cx {
	struct tr_turn t;       /* the call being read (output items) */
	struct tr_turn pending; /* input since the last call */
	bool answering, opened, compact;
	double t0;
	struct imp_usage u;
	bool have_u;
	char *model;
};

static int flush(struct imp *im, struct cx *c, uint64_t line, struct ar_err *err)
{
	if (!c->answering)
		return 0;
	if (c->have_u)
		imp_usage_record(&c->t, &c->u);
	if (c->model)
		imp_rec_str(&c->t, "model", c->model);
	if (imp_turn(im, &c->t, line, err) < 0)
		return -1;
	imp_turn_clear(&c->t);
	c->answering = false;
	c->have_u = false;
	return 0;
}

static int start_call(struct cx *c, double ts)
{
	if (c->answering)
		return 0;
	c->t = c->pending;
	imp_turn_init(&c->pending);
	c->answering = true;
	if (c->compact) {
		c->t.keep = 0;
		c->compact = false;
	}
	if (ts >= 0) {
		if (c->t0 < 0)
			c->t0 = ts;
		c->t.t = ts - c->t0;
		c->t.has_t = true;
	}
	return imp_resp(&c->t) ? 0 : -1;
}

static int input(struct imp *im, struct cx *c, uint64_t line, struct ar_err *err)
{
	return flush(im, c, line, err);
}

static int item(struct imp *im, struct cx *c, const cJSON *p, double ts, uint64_t line, struct ar_err *err)
{
	const char *type = imp_str(p, "type");
	if (!type)
		return 0;
	if (!strcmp(type, "message")) {
		const char *role = imp_str(p, "role");
		char *text = imp_parts_text(im, cJSON_GetObjectItemCaseSensitive(p, "content"));
		int rc = 0;
		if (!text)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		if (role && !strcmp(role, "assistant")) {
			if (start_call(c, ts) < 0 || (c->t.response->content_len && imp_resp_cat(c->t.response, "\n", 1) < 0) ||
			    imp_resp_cat(c->t.response, text, strlen(text)) < 0)
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
		} else {
			if (input(im, c, line, err) < 0)
				rc = -1;
			else if (!imp_msg(&c->pending, role && !strcmp(role, "user") ? TR_USER : TR_SYSTEM, text, strlen(text)))
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
		}
		free(text);
		return rc;
	}
	if (!strcmp(type, "function_call") || !strcmp(type, "custom_tool_call") || !strcmp(type, "local_shell_call")) {
		if (start_call(c, ts) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "arguments");
		if (!a)
			a = cJSON_GetObjectItemCaseSensitive(p, "input");
		if (!a)
			a = cJSON_GetObjectItemCaseSensitive(p, "action");
		char *args = imp_json_text(a);
		const char *id = imp_str(p, "call_id");
		if (!id)
			id = imp_str(p, "id");
		const char *name = imp_str(p, "name");
		int rc = imp_resp_call(c->t.response, id, name ? name : "shell", args ? args : "{}");
		free(args);
		return rc < 0 ? ar_err_set(err, AR_ENOMEM, "out of memory") : 0;
	}
	if (!strcmp(type, "function_call_output") || !strcmp(type, "custom_tool_call_output") ||
	    !strcmp(type, "local_shell_call_output")) {
		if (input(im, c, line, err) < 0)
			return -1;
		const cJSON *o = cJSON_GetObjectItemCaseSensitive(p, "output");
		const cJSON *oc = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "content") : NULL;
		char *text = imp_json_text(oc ? oc : o);
		struct tr_message *m = imp_msg(&c->pending, TR_TOOL, text ? text : "", text ? strlen(text) : 0);
		free(text);
		const char *id = imp_str(p, "call_id");
		if (!m || !(m->tool_call_id = strdup(id ? id : "")))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		return 0;
	}
	if (!strcmp(type, "reasoning")) {
		if (start_call(c, ts) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		const cJSON *sum = cJSON_GetObjectItemCaseSensitive(p, "summary");
		for (const cJSON *x = cJSON_IsArray(sum) ? sum->child : NULL; x; x = x->next) {
			const char *t = imp_str(x, "text");
			if (t && imp_resp_reason_cat(c->t.response, t, strlen(t)) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
		if (imp_str(p, "encrypted_content"))
			imp_drop(im, "encrypted reasoning (size in output_tokens)", 1);
		return 0;
	}
	return 0;
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	struct imp_lines lr;
	struct cx c;
	cJSON *o = NULL;
	int rc = -1, got;
	memset(&c, 0, sizeof c);
	imp_turn_init(&c.t);
	imp_turn_init(&c.pending);
	c.t0 = -1;
	if (imp_lines_open(&lr, path, im->o->max_line, err) < 0)
		return -1;
	while ((got = imp_jsonl_next(im, &lr, &o, err)) > 0) {
		const char *type = imp_str(o, "type");
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "payload");
		double ts = -1;
		imp_iso8601(imp_str(o, "timestamp"), &ts);
		if (!type)
			type = "";
		if (!c.opened && (!strcmp(type, "session_meta") || !strcmp(type, "response_item"))) {
			const char *id = imp_str(p, "id");
			struct tr_session *s = imp_session_new("codex", path, id && !strcmp(type, "session_meta") ? id : "codex");
			if (!s)
				goto oom;
			const char *ins = imp_str(p, "instructions");
			if (ins && !(s->system = strdup(ins))) {
				tr_session_free(s);
				goto oom;
			}
			imp_source_str(s, "version", imp_str(p, "cli_version"));
			imp_source_synth(s, "tools");
			int r0 = imp_session(im, s, err);
			tr_session_free(s);
			if (r0 < 0)
				goto out;
			c.opened = true;
		}
		if (!strcmp(type, "response_item")) {
			if (item(im, &c, p, ts, lr.lineno, err) < 0)
				goto out;
		} else if (!strcmp(type, "turn_context")) {
			const char *m = imp_str(p, "model");
			if (m) {
				free(c.model);
				if (!(c.model = strdup(m)))
					goto oom;
			}
		} else if (!strcmp(type, "event_msg")) {
			const char *et = imp_str(p, "type");
			if (et && !strcmp(et, "token_count")) {
				const cJSON *last = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "info"),
										     "last_token_usage");
				if (last) {
					c.u.prompt = imp_int(last, "input_tokens", -1);
					c.u.cached = imp_int(last, "cached_input_tokens", c.u.prompt >= 0 ? 0 : -1);
					int64_t out = imp_int(last, "output_tokens", -1), rs = imp_int(last, "reasoning_output_tokens", 0);
					/* output_tokens includes reasoning in the Responses API; some
					 * rollouts list it apart: take the larger reading */
					c.u.output = out >= 0 ? out : -1;
					c.u.reasoning = rs > 0 ? rs : -1;
					c.u.cache_write = -1;
					c.have_u = c.answering;
				}
			}
		} else if (!strcmp(type, "compacted")) {
			if (flush(im, &c, lr.lineno, err) < 0)
				goto out;
			for (size_t k = 0; k < c.pending.n_append; k++)
				tr_message_clear(&c.pending.append[k]);
			c.pending.n_append = 0;
			c.compact = true;
			const char *msg = imp_str(p, "message");
			if (msg && !imp_msg(&c.pending, TR_USER, msg, strlen(msg)))
				goto oom;
		}
		cJSON_Delete(o);
		o = NULL;
	}
	if (got < 0)
		goto out;
	if (!c.opened) {
		struct tr_session *s = imp_session_new("codex", path, "codex");
		if (!s)
			goto oom;
		int r0 = imp_session(im, s, err);
		tr_session_free(s);
		if (r0 < 0)
			goto out;
	}
	if (flush(im, &c, lr.lineno, err) < 0)
		goto out;
	if (c.pending.n_append)
		imp_drop(im, "input after the last call", (int64_t)c.pending.n_append);
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	cJSON_Delete(o);
	imp_turn_clear(&c.t);
	imp_turn_clear(&c.pending);
	free(c.model);
	imp_lines_close(&lr);
	return rc;
}

const struct importer imp_codex = {
	.name = "codex",
	.summary = "Codex CLI rollout (~/.codex/sessions/**/rollout-*.jsonl)",
	.sniff = sniff,
	.convert = convert,
};
