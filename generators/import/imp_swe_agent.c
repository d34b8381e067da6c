/* SWE-agent trajectories (*.traj): one JSON document {environment,
 * trajectory[], history[], info{model_stats}, replay_config?}. history[] is
 * the conversation as sent: the system prompt, then user/tool observations
 * and assistant actions (OpenAI function-calling tool_calls in newer
 * versions; `is_demo` user messages paste a whole demonstration into the
 * prompt and are kept, they were sent). Each assistant item is one API call.
 * There is no per-call usage (only run totals in info.model_stats, kept in
 * meta) and no timing per call: output lengths are estimated and t comes
 * from the steps' execution_time (source.synthesized says so). */
#include <stdlib.h>
#include <string.h>

#include "import.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)n;
	size_t l = strlen(path);
	bool traj = l > 5 && !strcmp(path + l - 5, ".traj");
	if (strstr(head, "\"history\"") && (strstr(head, "\"trajectory\"") || strstr(head, "\"message_type\"")))
		return traj ? 90 : 70;
	if (strstr(head, "\"environment\"") && strstr(head, "\"trajectory\""))
		return 70;
	return traj ? 30 : 0;
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	cJSON *doc = NULL;
	struct tr_session *s = NULL;
	struct tr_turn t;
	int rc = -1;
	imp_turn_init(&t);
	if (imp_read_json(path, &doc, err) < 0)
		return -1;
	const cJSON *hist = cJSON_GetObjectItemCaseSensitive(doc, "history");
	if (!cJSON_IsArray(hist)) {
		ar_err_set(err, AR_EFORMAT, "%s: history: missing (not a SWE-agent trajectory)", path);
		goto out;
	}
	const char *base = strrchr(path, '/');
	if (!(s = imp_session_new("swe-agent", path, base ? base + 1 : path)))
		goto oom;
	imp_source_synth(s, "output_tokens");
	const cJSON *info = cJSON_GetObjectItemCaseSensitive(doc, "info");
	const cJSON *stats = cJSON_GetObjectItemCaseSensitive(info, "model_stats");
	if (stats && (s->meta = cJSON_CreateObject()))
		cJSON_AddItemToObject(s->meta, "model_stats", cJSON_Duplicate(stats, 1));
	const cJSON *m = hist->child;
	if (m && imp_str(m, "role") && !strcmp(imp_str(m, "role"), "system")) {
		if (!(s->system = imp_parts_text(im, cJSON_GetObjectItemCaseSensitive(m, "content"))))
			goto oom;
		m = m->next;
	}
	/* step times: the cumulative execution time of the steps */
	const cJSON *traj = cJSON_GetObjectItemCaseSensitive(doc, "trajectory");
	const cJSON *step = cJSON_IsArray(traj) ? traj->child : NULL;
	bool timed = step && cJSON_GetObjectItemCaseSensitive(step, "execution_time");
	if (!timed)
		imp_source_synth(s, "timing");
	if (imp_session(im, s, err) < 0)
		goto out;
	double clock = 0;
	for (; m; m = m->next) {
		const char *role = imp_str(m, "role");
		if (!role || strcmp(role, "assistant")) {
			if (imp_openai_message(im, &t, m, 0, err) < 0)
				goto out;
			continue;
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
		if (imp_openai_calls(cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), NULL, r) < 0)
			goto oom;
		if (r->n_calls && !(r->finish = strdup("tool_calls")))
			goto oom;
		if (timed) {
			t.t = clock;
			t.has_t = true;
		}
		if (imp_turn(im, &t, 0, err) < 0)
			goto out;
		imp_turn_clear(&t);
		if (step) {
			clock += imp_num(step, "execution_time", 0);
			step = step->next;
		}
	}
	if (t.n_append)
		imp_drop(im, "observation after the last call", (int64_t)t.n_append);
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

const struct importer imp_swe_agent = {
	.name = "swe-agent",
	.summary = "SWE-agent trajectory (*.traj)",
	.sniff = sniff,
	.convert = convert,
};
