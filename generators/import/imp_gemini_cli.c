/* Gemini CLI.
 *  - the native session file (.gemini/tmp/<hash>/chats/session-*.json): one
 *    JSON document {sessionId, startTime, messages[]}; each "gemini" message
 *    is one model call {content, thoughts[], toolCalls[{id, name, args,
 *    result[{functionResponse}]}], tokens{input (includes cached), output,
 *    cached, thoughts}}. Tool results are embedded in the call that issued
 *    them: they become the next turn's tool messages. User messages are
 *    appended as they come.
 *  - `gemini -o stream-json` output (JSONL: init, message with delta chunks,
 *    tool_use, tool_result, result): no per-call usage; one turn per run of
 *    assistant output, with the tool results that follow as the next input.
 * The system prompt and tool schemas are not stored: turn 0 gets a synthetic
 * system message sized from its recorded input. */
#include <stdlib.h>
#include <string.h>

#include "import.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)path;
	(void)n;
	if (strstr(head, "\"projectHash\"") && strstr(head, "\"messages\""))
		return 90;
	if ((strstr(head, "\"type\":\"init\"") || strstr(head, "\"type\": \"init\"")) && strstr(head, "\"session_id\""))
		return 70;
	if (strstr(head, "\"tool_id\"") && strstr(head, "\"tool_name\""))
		return 60;
	if (strstr(head, "\"type\":\"gemini\""))
		return 60;
	return 0;
}

static int session_file(struct imp *im, const char *path, cJSON *doc, struct ar_err *err)
{
	struct tr_turn t;
	struct tr_session *s = NULL;
	int rc = -1;
	imp_turn_init(&t);
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(doc, "messages");
	const char *sid = imp_str(doc, "sessionId");
	if (!(s = imp_session_new("gemini-cli", path, sid ? sid : "gemini-cli")))
		goto oom;
	imp_source_synth(s, "system");
	imp_source_synth(s, "tools");
	double t0 = -1;
	int64_t turns = 0;
	bool written = false;
	for (const cJSON *m = cJSON_IsArray(msgs) ? msgs->child : NULL; m; m = m->next) {
		const char *type = imp_str(m, "type");
		if (!type)
			continue;
		if (!strcmp(type, "user")) {
			char *c = imp_parts_text(im, cJSON_GetObjectItemCaseSensitive(m, "content"));
			if (!c || !imp_msg(&t, TR_USER, c, strlen(c))) {
				free(c);
				goto oom;
			}
			free(c);
			continue;
		}
		if (strcmp(type, "gemini")) {
			imp_drop(im, "info/error message", 1);
			continue;
		}
		if (!written) {
			const char *model = imp_str(m, "model");
			if (model && !(s->model = strdup(model)))
				goto oom;
			if (imp_session(im, s, err) < 0)
				goto out;
			written = true;
		}
		struct tr_response *r = imp_resp(&t);
		if (!r)
			goto oom;
		char *c = imp_parts_text(im, cJSON_GetObjectItemCaseSensitive(m, "content"));
		if (!c || (*c && imp_resp_cat(r, c, strlen(c)) < 0)) {
			free(c);
			goto oom;
		}
		free(c);
		const cJSON *th = cJSON_GetObjectItemCaseSensitive(m, "thoughts");
		for (const cJSON *x = cJSON_IsArray(th) ? th->child : NULL; x; x = x->next) {
			const char *d = imp_str(x, "description");
			if (d && ((r->reasoning && imp_resp_reason_cat(r, "\n", 1) < 0) || imp_resp_reason_cat(r, d, strlen(d)) < 0))
				goto oom;
		}
		const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "toolCalls");
		for (const cJSON *x = cJSON_IsArray(calls) ? calls->child : NULL; x; x = x->next) {
			char *args = imp_json_text(cJSON_GetObjectItemCaseSensitive(x, "args"));
			int r1 = imp_resp_call(r, imp_str(x, "id"), imp_str(x, "name"), args ? args : "{}");
			free(args);
			if (r1 < 0)
				goto oom;
		}
		if (r->n_calls && !(r->finish = strdup("tool_calls")))
			goto oom;
		const cJSON *tok = cJSON_GetObjectItemCaseSensitive(m, "tokens");
		struct imp_usage u = {-1, -1, -1, -1, -1};
		u.prompt = imp_int(tok, "input", -1);
		u.cached = imp_int(tok, "cached", u.prompt >= 0 ? 0 : -1);
		int64_t out = imp_int(tok, "output", -1), thoughts = imp_int(tok, "thoughts", 0);
		if (out >= 0)
			u.output = out + (thoughts > 0 ? thoughts : 0);
		if (thoughts > 0)
			r->reasoning_tokens = thoughts;
		imp_usage_record(&t, &u);
		imp_rec_str(&t, "model", imp_str(m, "model"));
		double ts;
		/* the request went out when its input was complete: the previous
		 * answer's time; the message's own time is when the answer came */
		if (imp_iso8601(imp_str(m, "timestamp"), &ts) == 0) {
			if (t0 < 0) {
				double st;
				t0 = imp_iso8601(imp_str(doc, "startTime"), &st) == 0 && st <= ts ? st : ts;
			}
			t.t = ts - t0;
			t.has_t = true;
		}
		if (turns == 0 && u.prompt > 0) {
			int64_t h = 0;
			for (size_t k = 0; k < t.n_append; k++)
				h += tr_message_tokens(&t.append[k]);
			if (imp_synth_prefix(im, NULL, &t, "gemini-cli", u.prompt - h) < 0)
				goto oom;
		}
		if (imp_turn(im, &t, 0, err) < 0)
			goto out;
		imp_turn_clear(&t);
		turns++;
		/* the embedded results are the next request's input */
		for (const cJSON *x = cJSON_IsArray(calls) ? calls->child : NULL; x; x = x->next) {
			const cJSON *res = cJSON_GetObjectItemCaseSensitive(x, "result");
			struct buf b = BUF_INIT;
			for (const cJSON *fr = cJSON_IsArray(res) ? res->child : NULL; fr; fr = fr->next) {
				const cJSON *resp = cJSON_GetObjectItemCaseSensitive(
					cJSON_GetObjectItemCaseSensitive(fr, "functionResponse"), "response");
				const cJSON *outp = cJSON_GetObjectItemCaseSensitive(resp, "output");
				char *txt = imp_json_text(outp ? outp : resp);
				if (txt) {
					buf_puts(&b, txt);
					free(txt);
				}
				if (cJSON_GetObjectItemCaseSensitive(fr, "inlineData"))
					imp_drop(im, "image", 1);
			}
			const char *id = imp_str(x, "id");
			struct tr_message *tm = imp_msg(&t, TR_TOOL, b.data ? b.data : "", b.len);
			buf_free(&b);
			if (!tm || !(tm->tool_call_id = strdup(id ? id : "")))
				goto oom;
		}
	}
	if (!written && imp_session(im, s, err) < 0)
		goto out;
	if (t.n_append)
		imp_drop(im, "tool results after the last call", (int64_t)t.n_append);
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	tr_session_free(s);
	imp_turn_clear(&t);
	return rc;
}

static int stream_json(struct imp *im, const char *path, struct ar_err *err)
{
	struct imp_lines lr;
	struct tr_turn t;
	cJSON *o = NULL;
	int rc = -1, got;
	bool answering = false, opened = false;
	double t0 = -1;
	imp_turn_init(&t);
	if (imp_lines_open(&lr, path, im->o->max_line, err) < 0)
		return -1;
	while ((got = imp_jsonl_next(im, &lr, &o, err)) > 0) {
		const char *type = imp_str(o, "type");
		double ts = -1;
		imp_iso8601(imp_str(o, "timestamp"), &ts);
		if (!type)
			type = "";
		if (!strcmp(type, "init")) {
			if (answering) {
				if (imp_turn(im, &t, lr.lineno, err) < 0)
					goto out;
				imp_turn_clear(&t);
				answering = false;
			}
			/* input before init (the prompt) stays for the first call */
			const char *sid = imp_str(o, "session_id");
			struct tr_session *s = imp_session_new("gemini-cli", path, sid ? sid : "gemini-cli");
			if (!s)
				goto oom;
			const char *model = imp_str(o, "model");
			if (model)
				s->model = strdup(model);
			imp_source_synth(s, "system");
			imp_source_synth(s, "tools");
			imp_source_synth(s, "output_tokens");
			int r0 = imp_session(im, s, err);
			tr_session_free(s);
			if (r0 < 0)
				goto out;
			opened = true;
			t0 = ts;
		} else if (!opened && strcmp(type, "message")) {
			if (imp_bad(im, lr.lineno, err, "'%s' event before the init event", type) < 0)
				goto out;
		} else if (!strcmp(type, "message")) {
			const char *role = imp_str(o, "role");
			const char *c = imp_str(o, "content");
			if (role && !strcmp(role, "user")) {
				if (answering) {
					if (imp_turn(im, &t, lr.lineno, err) < 0)
						goto out;
					imp_turn_clear(&t);
					answering = false;
				}
				if (c && !imp_msg(&t, TR_USER, c, strlen(c)))
					goto oom;
			} else {
				if (!answering && ts >= 0 && t0 >= 0) {
					t.t = ts - t0;
					t.has_t = true;
				}
				answering = true;
				struct tr_response *r = imp_resp(&t);
				if (!r || (c && imp_resp_cat(r, c, strlen(c)) < 0)) /* delta chunks concatenate */
					goto oom;
			}
		} else if (!strcmp(type, "tool_use")) {
			if (!answering && ts >= 0 && t0 >= 0) {
				t.t = ts - t0;
				t.has_t = true;
			}
			answering = true;
			struct tr_response *r = imp_resp(&t);
			char *args = imp_json_text(cJSON_GetObjectItemCaseSensitive(o, "parameters"));
			int r1 = r ? imp_resp_call(r, imp_str(o, "tool_id"), imp_str(o, "tool_name"), args ? args : "{}") : -1;
			free(args);
			if (r1 < 0)
				goto oom;
		} else if (!strcmp(type, "tool_result")) {
			if (answering) {
				if (imp_turn(im, &t, lr.lineno, err) < 0)
					goto out;
				imp_turn_clear(&t);
				answering = false;
			}
			const cJSON *outp = cJSON_GetObjectItemCaseSensitive(o, "output");
			if (!outp)
				outp = cJSON_GetObjectItemCaseSensitive(o, "error");
			char *txt = imp_json_text(outp);
			struct tr_message *m = imp_msg(&t, TR_TOOL, txt ? txt : "", txt ? strlen(txt) : 0);
			free(txt);
			const char *id = imp_str(o, "tool_id");
			if (!m || !(m->tool_call_id = strdup(id ? id : "")))
				goto oom;
		} else if (!strcmp(type, "result")) {
			if (answering) {
				if (imp_turn(im, &t, lr.lineno, err) < 0)
					goto out;
				imp_turn_clear(&t);
				answering = false;
			}
		}
		cJSON_Delete(o);
		o = NULL;
	}
	if (got < 0)
		goto out;
	if (answering && imp_turn(im, &t, lr.lineno, err) < 0)
		goto out;
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	cJSON_Delete(o);
	imp_turn_clear(&t);
	imp_lines_close(&lr);
	return rc;
}

/* JSONL: the first line is a whole object ("{...}"); a session document's
 * first line is not */
static bool first_line_is_object(const char *head)
{
	const char *nl = strchr(head, '\n');
	if (!nl || head[0] != '{')
		return false;
	while (nl > head && (nl[-1] == '\r' || nl[-1] == ' '))
		nl--;
	return nl > head + 1 && nl[-1] == '}';
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	/* a document (session file) or JSONL (stream-json): look at the start */
	FILE *f = fopen(path, "rb");
	char head[4096] = "";
	if (f) {
		size_t n = fread(head, 1, sizeof head - 1, f);
		head[n] = 0;
		fclose(f);
	}
	if (strstr(head, "\"type\":\"init\"") || strstr(head, "\"type\": \"init\"") || strstr(head, "\"tool_id\"") ||
	    first_line_is_object(head))
		return stream_json(im, path, err);
	cJSON *doc = NULL;
	if (imp_read_json(path, &doc, err) < 0)
		return -1;
	int rc = session_file(im, path, doc, err);
	cJSON_Delete(doc);
	return rc;
}

const struct importer imp_gemini_cli = {
	.name = "gemini-cli",
	.summary = "Gemini CLI session file (chats/session-*.json) or 'gemini -o stream-json' output",
	.sniff = sniff,
	.convert = convert,
};
