/* Anthropic Managed-Agents session events (transcript.jsonl exported from a
 * hosted agent session): one event per line, {role, kind, time, content?,
 * tool?, raw{id, type, ...}}. A model request is the span
 * model_request_start ... model_request_end (raw.model_usage is Anthropic
 * usage); the agent.message / agent.tool_use / agent.thinking events inside
 * it are its response; define_outcome (the task), user messages, interrupts
 * and tool_result events between spans are the next request's input.
 * The system prompt and tool schemas are not in the log: turn 0 gets a
 * synthetic system message of the size the first request's usage implies. */
#include <stdlib.h>
#include <string.h>

#include "import.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)path;
	(void)n;
	if (strstr(head, "\"model_request_start\"") || strstr(head, "\"span.model_request_start\""))
		return 90;
	if (strstr(head, "\"sevt_"))
		return 60;
	return 0;
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	struct imp_lines lr;
	struct tr_turn t;
	struct tr_session *s = NULL;
	cJSON *o = NULL;
	int rc = -1, got;
	bool in_span = false, opened = false, thinking = false;
	double t0 = -1, span_t = 0;
	uint64_t span_line = 0;
	int64_t turns = 0;
	imp_turn_init(&t);
	if (imp_lines_open(&lr, path, im->o->max_line, err) < 0)
		return -1;
	while ((got = imp_jsonl_next(im, &lr, &o, err)) > 0) {
		const char *kind = imp_str(o, "kind");
		const cJSON *raw = cJSON_GetObjectItemCaseSensitive(o, "raw");
		if (!kind)
			kind = "";
		double ts = -1;
		imp_iso8601(imp_str(o, "time"), &ts);
		if (!opened) {
			const char *agent = imp_str(raw, "agent_name");
			(void)agent;
			if (!(s = imp_session_new("managed-agents", path, "managed-agents")))
				goto oom;
			imp_source_synth(s, "system");
			imp_source_synth(s, "tools");
			if (imp_session(im, s, err) < 0)
				goto out;
			opened = true;
		}
		if (!strcmp(kind, "model_request_start")) {
			if (in_span) { /* a span that never ended: a failed request */
				tr_response_free(t.response);
				t.response = NULL;
				if (imp_turn(im, &t, span_line, err) < 0)
					goto out;
				imp_turn_clear(&t);
				turns++;
				imp_drop(im, "request that never ended (turn without response)", 1);
			}
			in_span = true;
			span_line = lr.lineno;
			span_t = ts;
			if (ts >= 0) {
				if (t0 < 0)
					t0 = ts;
				t.t = ts - t0;
				t.has_t = true;
			}
		} else if (!strcmp(kind, "model_request_end")) {
			if (!in_span) {
				if (imp_bad(im, lr.lineno, err, "model_request_end without a start") < 0)
					goto out;
				goto next;
			}
			struct imp_usage u;
			imp_usage_anthropic(cJSON_GetObjectItemCaseSensitive(raw, "model_usage"), &u);
			if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(raw, "is_error"))) {
				tr_response_free(t.response);
				t.response = NULL;
				imp_drop(im, "failed request (turn without response)", 1);
			} else {
				if (!imp_resp(&t))
					goto oom;
				imp_usage_record(&t, &u);
				if (t.response->n_calls && !(t.response->finish = strdup("tool_calls")))
					goto oom;
			}
			if (ts >= 0 && span_t >= 0)
				imp_rec_num(&t, "e2e_ms", (ts - span_t) * 1000.0);
			if (turns == 0 && u.prompt > 0) {
				int64_t h = 0;
				for (size_t k = 0; k < t.n_append; k++)
					h += tr_message_tokens(&t.append[k]);
				if (imp_synth_prefix(im, NULL, &t, "managed-agents", u.prompt - h) < 0)
					goto oom;
			}
			if (imp_turn(im, &t, span_line, err) < 0)
				goto out;
			if (thinking) /* Claude keeps its thinking in the context */
				imp_hidden_reasoning(im, t.response);
			thinking = false;
			imp_turn_clear(&t);
			turns++;
			in_span = false;
		} else if (!strcmp(kind, "message") || !strcmp(kind, "tool_use") || !strcmp(kind, "thinking")) {
			const char *role = imp_str(o, "role");
			if (role && !strcmp(role, "user")) {
				const char *c = imp_str(o, "content");
				if (c && !imp_msg(&t, TR_USER, c, strlen(c)))
					goto oom;
				goto next;
			}
			if (!in_span) {
				imp_drop(im, "agent event outside a model request", 1);
				goto next;
			}
			struct tr_response *r = imp_resp(&t);
			if (!r)
				goto oom;
			if (!strcmp(kind, "message")) {
				const char *c = imp_str(o, "content");
				if (c && ((r->content_len && imp_resp_cat(r, "\n", 1) < 0) || imp_resp_cat(r, c, strlen(c)) < 0))
					goto oom;
			} else if (!strcmp(kind, "tool_use")) {
				char *args = imp_json_text(cJSON_GetObjectItemCaseSensitive(raw, "input"));
				const char *name = imp_str(raw, "name");
				int r1 = imp_resp_call(r, imp_str(raw, "id"), name ? name : imp_str(o, "tool"),
						       args ? args : imp_str(o, "content"));
				free(args);
				if (r1 < 0)
					goto oom;
			} else {
				const char *c = imp_str(o, "content");
				thinking = true;
				if (c && *c) {
					if (imp_resp_reason_cat(r, c, strlen(c)) < 0)
						goto oom;
				} else
					imp_drop(im, "hidden thinking (size in output_tokens)", 1);
			}
		} else if (!strcmp(kind, "tool_result")) {
			const char *c = imp_str(o, "content");
			char *txt = c ? NULL : imp_parts_text(im, cJSON_GetObjectItemCaseSensitive(raw, "content"));
			struct tr_message *m = imp_msg(&t, TR_TOOL, c ? c : txt ? txt : "", c ? strlen(c) : txt ? strlen(txt) : 0);
			free(txt);
			const char *id = imp_str(raw, "tool_use_id");
			if (!m || !(m->tool_call_id = strdup(id ? id : "")))
				goto oom;
		} else if (!strcmp(kind, "define_outcome")) {
			const char *d = imp_str(raw, "description");
			if (!d)
				d = imp_str(o, "content");
			if (d && !imp_msg(&t, TR_USER, d, strlen(d)))
				goto oom;
		} else if (!strcmp(kind, "interrupt")) {
			imp_drop(im, "interrupt event", 1);
		}
	next:
		cJSON_Delete(o);
		o = NULL;
	}
	if (got < 0)
		goto out;
	if (in_span) {
		tr_response_free(t.response);
		t.response = NULL;
		if (imp_turn(im, &t, span_line, err) < 0)
			goto out;
		imp_drop(im, "request that never ended (turn without response)", 1);
	} else if (t.n_append)
		imp_drop(im, "input after the last request", (int64_t)t.n_append);
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	cJSON_Delete(o);
	tr_session_free(s);
	imp_turn_clear(&t);
	imp_lines_close(&lr);
	return rc;
}

const struct importer imp_managed_agents = {
	.name = "managed-agents",
	.summary = "Anthropic Managed-Agents session events (transcript.jsonl)",
	.sniff = sniff,
	.convert = convert,
};
