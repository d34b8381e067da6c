/* OpenHands event histories: an evaluation output.jsonl (one instance a
 * line: {instance_id, history[], metrics{token_usages[]}, ...}) or a
 * trajectory JSON (a list of events). Events {id, timestamp, source,
 * action|observation, args|content, tool_call_metadata{tool_call_id,
 * model_response (an OpenAI ChatCompletion with usage)}}. Each distinct
 * model_response.id is one API call (several tool calls of one response
 * share it); observations answering a tool_call_id become tool messages;
 * the system action is the system prompt; user messages and recall
 * observations are user input. Usage is per call (model_response.usage),
 * never the accumulated figures. A condensation action (the condenser)
 * restarts the context: keep 0 plus what it summarised. */
#include <stdlib.h>
#include <string.h>

#include "import.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)path;
	(void)n;
	if (strstr(head, "\"tool_call_metadata\"") || strstr(head, "\"llm_metrics\""))
		return 85;
	if (strstr(head, "\"instance_id\"") && strstr(head, "\"history\"") && strstr(head, "\"source\""))
		return 70;
	return 0;
}

struct oh {
	struct tr_turn t;
	char *cur; /* model_response.id of the open call */
	bool open;
	double t0;
	bool compact;
};

static int flush(struct imp *im, struct oh *h, struct ar_err *err)
{
	if (!h->open)
		return 0;
	if (imp_turn(im, &h->t, 0, err) < 0)
		return -1;
	imp_turn_clear(&h->t);
	h->open = false;
	return 0;
}

static int event(struct imp *im, struct oh *h, struct tr_turn *pending, const cJSON *e, struct ar_err *err)
{
	const char *action = imp_str(e, "action");
	const char *obs = imp_str(e, "observation");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(e, "tool_call_metadata");
	const cJSON *mr = cJSON_GetObjectItemCaseSensitive(meta, "model_response");
	if (action && mr) {
		const char *rid = imp_str(mr, "id");
		if (!rid)
			rid = "";
		if (h->open && h->cur && !strcmp(h->cur, rid))
			return 0; /* another tool call of the same response */
		if (flush(im, h, err) < 0)
			return -1;
		free(h->cur);
		if (!(h->cur = strdup(rid)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		h->t = *pending;
		imp_turn_init(pending);
		h->open = true;
		if (h->compact) {
			h->t.keep = 0;
			h->compact = false;
		}
		double ts;
		if (imp_iso8601(imp_str(e, "timestamp"), &ts) == 0) {
			if (h->t0 < 0)
				h->t0 = ts;
			h->t.t = ts - h->t0;
			h->t.has_t = true;
		}
		const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(mr, "choices"), 0);
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
		struct tr_response *r = imp_resp(&h->t);
		if (!r)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		char *c = imp_parts_text(im, cJSON_GetObjectItemCaseSensitive(msg, "content"));
		if (!c || (*c && imp_resp_cat(r, c, strlen(c)) < 0)) {
			free(c);
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
		free(c);
		if (imp_openai_calls(cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"), NULL, r) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		const char *fin = imp_finish(imp_str(ch, "finish_reason"));
		if (fin && !(r->finish = strdup(fin)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		struct imp_usage u;
		imp_usage_openai(cJSON_GetObjectItemCaseSensitive(mr, "usage"), &u);
		imp_usage_record(&h->t, &u);
		if (imp_calibrate_turn0(im, &h->t, "openhands", u.prompt) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		imp_rec_str(&h->t, "model", imp_str(mr, "model"));
		return 0;
	}
	if (action && !strcmp(action, "system"))
		return 0; /* the session's system prompt, taken before */
	if (action && !strcmp(action, "condensation")) {
		h->compact = true;
		return 0;
	}
	if (obs && meta) {
		const char *id = imp_str(meta, "tool_call_id");
		const char *c = imp_str(e, "content");
		struct tr_message *m = imp_msg(pending, TR_TOOL, c ? c : "", c ? strlen(c) : 0);
		if (!m || !(m->tool_call_id = strdup(id ? id : "")))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		return 0;
	}
	const char *src = imp_str(e, "source");
	if (action && !strcmp(action, "message") && src && !strcmp(src, "user")) {
		const char *c = imp_str(args, "content");
		if (!c)
			c = imp_str(e, "message");
		if (c && !imp_msg(pending, TR_USER, c, strlen(c)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		return 0;
	}
	if (obs && !strcmp(obs, "recall")) {
		const char *c = imp_str(e, "content");
		if (c && *c && !imp_msg(pending, TR_USER, c, strlen(c)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		return 0;
	}
	return 0;
}

static int history(struct imp *im, const char *path, const char *id, const cJSON *hist, const cJSON *metrics,
		   struct ar_err *err)
{
	struct oh h;
	struct tr_turn pending;
	memset(&h, 0, sizeof h);
	imp_turn_init(&h.t);
	imp_turn_init(&pending);
	h.t0 = -1;
	int rc = -1;
	struct tr_session *s = imp_session_new("openhands", path, id);
	if (!s)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	imp_source_synth(s, "tools");
	for (const cJSON *e = hist->child; e; e = e->next) {
		const char *action = imp_str(e, "action");
		if (action && !strcmp(action, "system")) {
			const char *c = imp_str(cJSON_GetObjectItemCaseSensitive(e, "args"), "content");
			if (c && !(s->system = strdup(c)))
				goto oom;
			break;
		}
	}
	const cJSON *usages = cJSON_GetObjectItemCaseSensitive(metrics, "token_usages");
	if (cJSON_IsArray(usages) && (s->meta = cJSON_CreateObject()))
		cJSON_AddNumberToObject(s->meta, "token_usages", cJSON_GetArraySize(usages));
	if (imp_session(im, s, err) < 0)
		goto out;
	for (const cJSON *e = hist->child; e; e = e->next)
		if (event(im, &h, &pending, e, err) < 0)
			goto out;
	if (flush(im, &h, err) < 0)
		goto out;
	if (pending.n_append)
		imp_drop(im, "observation after the last call", (int64_t)pending.n_append);
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	tr_session_free(s);
	imp_turn_clear(&h.t);
	imp_turn_clear(&pending);
	free(h.cur);
	return rc;
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	FILE *f = fopen(path, "rb");
	int c0 = f ? getc(f) : EOF;
	while (f && (c0 == ' ' || c0 == '\n' || c0 == '\r' || c0 == '\t'))
		c0 = getc(f);
	if (f)
		fclose(f);
	if (c0 == '[') { /* a trajectory: one list of events */
		cJSON *doc = NULL;
		if (imp_read_json(path, &doc, err) < 0)
			return -1;
		const char *b = strrchr(path, '/');
		int rc = history(im, path, b ? b + 1 : path, doc, NULL, err);
		cJSON_Delete(doc);
		return rc;
	}
	struct imp_lines lr;
	cJSON *o = NULL;
	int got, rc = 0;
	if (imp_lines_open(&lr, path, im->o->max_line, err) < 0)
		return -1;
	while ((got = imp_jsonl_next(im, &lr, &o, err)) > 0) {
		const cJSON *hist = cJSON_GetObjectItemCaseSensitive(o, "history");
		const char *iid = imp_str(o, "instance_id");
		char id[64];
		snprintf(id, sizeof id, "line-%llu", (unsigned long long)lr.lineno);
		if (!cJSON_IsArray(hist))
			rc = imp_bad(im, lr.lineno, err, "history: missing");
		else
			rc = history(im, path, iid ? iid : id, hist, cJSON_GetObjectItemCaseSensitive(o, "metrics"), err);
		cJSON_Delete(o);
		o = NULL;
		if (rc < 0)
			break;
	}
	imp_lines_close(&lr);
	return got < 0 || rc < 0 ? -1 : 0;
}

const struct importer imp_openhands = {
	.name = "openhands",
	.summary = "OpenHands event history (evaluation output.jsonl or a trajectory .json)",
	.sniff = sniff,
	.convert = convert,
};
