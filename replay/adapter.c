#include "adapter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"
#include "utf8.h"

#define TEXT_CEILING (4u << 20)
#define MAX_TIMES (1u << 20)

void stream_acc_init(struct stream_acc *a)
{
	memset(a, 0, sizeof *a);
	a->usage_prompt = a->usage_cached = a->usage_completion = -1;
	buf_init(&a->text, TEXT_CEILING);
	buf_init(&a->error, 16384);
}

void stream_acc_free(struct stream_acc *a)
{
	if (!a)
		return;
	free(a->token_times);
	cJSON_Delete(a->server);
	buf_free(&a->text);
	buf_free(&a->error);
	memset(a, 0, sizeof *a);
}

int stream_acc_token(struct stream_acc *a, ar_ns t)
{
	if (!a->token_events)
		a->t_first_token = t;
	a->t_last_token = t;
	a->token_events++;
	if (a->n_times < MAX_TIMES) {
		if (a->n_times == a->cap_times) {
			size_t cap = a->cap_times ? a->cap_times * 2 : 256;
			ar_ns *p = realloc(a->token_times, cap * sizeof *p);
			if (!p)
				return -1;
			a->token_times = p;
			a->cap_times = cap;
		}
		a->token_times[a->n_times++] = t;
	}
	return 0;
}

int adapter_message_text(const struct req_ctx *r, size_t idx, struct buf *out)
{
	const struct tr_message *m = &r->convo->msgs[idx];
	if (m->synth) {
		int64_t o = r->convo->origin[idx];
		return synth_expand(out, m->synth, r->session->id, o >= 0 ? CONVO_ORIGIN_TURN(o) : 0,
				    o >= 0 ? CONVO_ORIGIN_INDEX(o) : 0);
	}
	if (m->content)
		return buf_append(out, m->content, m->content_len);
	return 0;
}

static const struct adapter *const all[] = {&adapter_openai, &adapter_llama, &adapter_ollama, &adapter_anthropic};

const struct adapter *adapter_find(const char *name)
{
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (!strcmp(all[i]->name, name))
			return all[i];
	return NULL;
}

const char *adapter_names(void)
{
	return "openai, llama-server, ollama, anthropic";
}

cJSON *adapter_event_json(struct stream_acc *a, const char *data, size_t n)
{
	cJSON *j = cJSON_ParseWithLength(data, n);
	if (!cJSON_IsObject(j)) {
		a->bad_event = true;
		snprintf(a->bad_event_msg, sizeof a->bad_event_msg, "an event is not a JSON object: %.80s", data);
		cJSON_Delete(j);
		return NULL;
	}
	if (cJSON_GetObjectItemCaseSensitive(j, "error")) {
		buf_reset(&a->error);
		(void)buf_append(&a->error, data, n);
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

void adapter_note_text(struct stream_acc *a, const char *s)
{
	size_t n = strlen(s);
	if (utf8_check(s, n) != n)
		a->invalid_utf8 = true;
	(void)buf_append(&a->text, s, n); /* past the ceiling the text is cut, not the measurement */
}
