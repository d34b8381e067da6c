/* import: OpenAI chat-format messages and tool calls, shared by the importers
 * of formats that store requests in that shape (mini-swe-agent, SWE-agent,
 * OpenHands, openai-log). */
#include <stdlib.h>
#include <string.h>

#include "import.h"

/* OpenAI tool_calls array -> calls of m or r */
int imp_openai_calls(const cJSON *calls, struct tr_message *m, struct tr_response *r)
{
	int k = 0;
	for (const cJSON *c = cJSON_IsArray(calls) ? calls->child : NULL; c; c = c->next, k++) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
		const char *id = imp_str(c, "id");
		char idbuf[32];
		if (!id) {
			snprintf(idbuf, sizeof idbuf, "call_%d", k);
			id = idbuf;
		}
		char *args = imp_json_text(cJSON_GetObjectItemCaseSensitive(f, "arguments"));
		int rc = m ? imp_msg_call(m, id, imp_str(f, "name"), args) : imp_resp_call(r, id, imp_str(f, "name"), args);
		free(args);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* An OpenAI chat message -> appended trace message. */
int imp_openai_message(struct imp *im, struct tr_turn *t, const cJSON *msg, uint64_t line, struct ar_err *err)
{
	const char *role = imp_str(msg, "role");
	enum tr_role r;
	if (!role)
		return imp_bad(im, line, err, "message without a role");
	if (!strcmp(role, "developer"))
		r = TR_SYSTEM;
	else if (!strcmp(role, "function"))
		r = TR_TOOL;
	else if (tr_role_parse(role, &r) < 0) {
		imp_drop(im, "message of an unknown role", 1);
		return 0;
	}
	char *text = imp_parts_text(im, cJSON_GetObjectItemCaseSensitive(msg, "content"));
	if (!text)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
	bool has_calls = r == TR_ASSISTANT && cJSON_GetArraySize(calls) > 0;
	struct tr_message *m = imp_msg(t, r, (*text || !has_calls) ? text : NULL, strlen(text));
	free(text);
	if (!m)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	if (has_calls && imp_openai_calls(calls, m, NULL) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	if (r == TR_TOOL) {
		const char *id = imp_str(msg, "tool_call_id");
		const cJSON *ids = cJSON_GetObjectItemCaseSensitive(msg, "tool_call_ids"); /* SWE-agent */
		if (!id && cJSON_IsArray(ids) && cJSON_IsString(ids->child))
			id = ids->child->valuestring;
		if (!id) { /* a tool message answering nothing: keep its text as user input */
			m->role = TR_USER;
		} else if (!(m->tool_call_id = strdup(id)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		const char *name = imp_str(msg, "name");
		if (name && m->role == TR_TOOL && !(m->name = strdup(name)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	return 0;
}

