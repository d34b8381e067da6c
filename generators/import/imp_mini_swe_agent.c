/* mini-swe-agent trajectories (*.traj.json, trajectory_format
 * "mini-swe-agent-1.x"): one JSON document whose `messages` are exactly what
 * was sent. Each assistant message with extra.response is one API call; the
 * messages since the previous call are its append. Usage is OpenAI/DeepSeek
 * (prompt_tokens includes cached). reasoning_content is kept as reasoning
 * (never history). A run that ended in an API error (more api_calls than
 * answers) gets a last turn without response. */
#include <stdlib.h>
#include <string.h>

#include "import.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)n;
	if (strstr(head, "\"mini-swe-agent") || strstr(head, "\"mini_version\""))
		return 90;
	size_t l = strlen(path);
	if (l > 10 && !strcmp(path + l - 10, ".traj.json") && strstr(head, "\"messages\""))
		return 40;
	return 0;
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	cJSON *doc = NULL;
	struct tr_session *s = NULL;
	struct tr_turn t;
	imp_turn_init(&t);
	int rc = -1;
	if (imp_read_json(path, &doc, err) < 0)
		return -1;
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(doc, "messages");
	const cJSON *info = cJSON_GetObjectItemCaseSensitive(doc, "info");
	if (!cJSON_IsArray(msgs)) {
		ar_err_set(err, AR_EFORMAT, "%s: messages: missing (not a mini-swe-agent trajectory)", path);
		goto out;
	}
	const char *iid = imp_str(doc, "instance_id");
	if (!(s = imp_session_new("mini-swe-agent", path, iid ? iid : "mini-swe-agent")))
		goto oom;
	imp_source_str(s, "trajectory_format", imp_str(doc, "trajectory_format"));
	imp_source_str(s, "version", imp_str(info, "mini_version"));
	imp_source_synth(s, "tools");
	const cJSON *m = msgs->child;
	if (m && imp_str(m, "role") && !strcmp(imp_str(m, "role"), "system")) {
		if (!(s->system = imp_parts_text(im, cJSON_GetObjectItemCaseSensitive(m, "content"))))
			goto oom;
		m = m->next;
	}
	const cJSON *stats = cJSON_GetObjectItemCaseSensitive(info, "model_stats");
	if (stats && (s->meta = cJSON_CreateObject()))
		cJSON_AddItemToObject(s->meta, "model_stats", cJSON_Duplicate(stats, 1));
	if (imp_session(im, s, err) < 0)
		goto out;
	double t0 = -1;
	int64_t answered = 0;
	for (; m; m = m->next) {
		const char *role = imp_str(m, "role");
		const cJSON *extra = cJSON_GetObjectItemCaseSensitive(m, "extra");
		const cJSON *resp = cJSON_GetObjectItemCaseSensitive(extra, "response");
		if (role && !strcmp(role, "exit"))
			continue;
		if (!role || strcmp(role, "assistant") || !resp) {
			if (imp_openai_message(im, &t, m, 0, err) < 0)
				goto out;
			continue;
		}
		/* one API call */
		struct tr_response *r = imp_resp(&t);
		if (!r)
			goto oom;
		char *text = imp_parts_text(im, cJSON_GetObjectItemCaseSensitive(m, "content"));
		if (!text)
			goto oom;
		if (*text && imp_resp_cat(r, text, strlen(text)) < 0) {
			free(text);
			goto oom;
		}
		free(text);
		if (imp_openai_calls(cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), NULL, r) < 0)
			goto oom;
		const char *rs = imp_str(m, "reasoning_content");
		if (rs && *rs && imp_resp_reason_cat(r, rs, strlen(rs)) < 0)
			goto oom;
		const cJSON *ch = cJSON_GetObjectItemCaseSensitive(resp, "choices");
		const char *fin = imp_finish(imp_str(cJSON_GetArrayItem(ch, 0), "finish_reason"));
		if (fin && !(r->finish = strdup(fin)))
			goto oom;
		struct imp_usage u;
		imp_usage_openai(cJSON_GetObjectItemCaseSensitive(resp, "usage"), &u);
		imp_usage_record(&t, &u);
		/* the tool schemas (info.config) are not in the messages: size them */
		if (imp_calibrate_turn0(im, &t, "mini-swe-agent", u.prompt) < 0)
			goto oom;
		imp_rec_str(&t, "model", imp_str(resp, "model"));
		double ts = imp_num(extra, "timestamp", -1);
		if (ts < 0)
			ts = imp_num(resp, "created", -1);
		if (ts >= 0) {
			if (t0 < 0)
				t0 = ts;
			t.t = ts - t0;
			t.has_t = true;
		}
		if (imp_turn(im, &t, 0, err) < 0)
			goto out;
		imp_turn_clear(&t);
		answered++;
	}
	int64_t calls = imp_int(stats, "api_calls", -1);
	const char *exit_status = imp_str(info, "exit_status");
	if (calls > answered && exit_status && strcmp(exit_status, "Submitted")) {
		/* the last call failed (InternalServerError, Timeout, ...): a turn without response */
		if (imp_turn(im, &t, 0, err) < 0)
			goto out;
		imp_drop(im, "failed request (turn without response)", 1);
	} else if (t.n_append) {
		imp_drop(im, "messages after the last call", (int64_t)t.n_append);
	}
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	imp_turn_clear(&t);
	tr_session_free(s);
	cJSON_Delete(doc);
	return rc;
}

const struct importer imp_mini_swe_agent = {
	.name = "mini-swe-agent",
	.summary = "mini-swe-agent trajectory (*.traj.json)",
	.sniff = sniff,
	.convert = convert,
};
