/* reqdiff: see reqdiff.h. */
#include "reqdiff.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "jsonh.h"
#include "strset.h"

struct reqdiff {
	bool open;     /* a session is open */
	char *system;  /* the open session's system prompt (NULL = none) */
	char *tools;   /* its tools, compact JSON (NULL = none) */
	struct tr_message *hist;
	size_t n, cap;
	struct strset issued;
};

const char *reqdiff_api_name(enum reqdiff_api api)
{
	return api == REQDIFF_ANTHROPIC_MESSAGES ? "anthropic-messages" : "openai-chat";
}

int reqdiff_api_parse(const char *name, enum reqdiff_api *out)
{
	if (!strcmp(name, "openai-chat"))
		*out = REQDIFF_OPENAI_CHAT;
	else if (!strcmp(name, "anthropic-messages"))
		*out = REQDIFF_ANTHROPIC_MESSAGES;
	else
		return -1;
	return 0;
}

void reqdiff_req_clear(struct reqdiff_req *r)
{
	if (!r)
		return;
	free(r->system);
	cJSON_Delete(r->tools);
	free(r->model);
	for (size_t i = 0; i < r->n_msgs; i++)
		tr_message_clear(&r->msgs[i]);
	free(r->msgs);
	memset(r, 0, sizeof *r);
}

void reqdiff_turn_clear(struct reqdiff_turn *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_append; i++)
		tr_message_clear(&t->append[i]);
	free(t->append);
	memset(t, 0, sizeof *t);
}

/* ---- building normalised messages -------------------------------------- */

struct mlist {
	struct tr_message *v;
	size_t n, cap;
};

static struct tr_message *mlist_push(struct mlist *l, enum tr_role role)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct tr_message *v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return NULL;
		l->v = v;
		l->cap = cap;
	}
	struct tr_message *m = &l->v[l->n++];
	memset(m, 0, sizeof *m);
	m->role = role;
	return m;
}

static int set_content(struct tr_message *m, const char *s, size_t n)
{
	free(m->content);
	m->content = malloc(n + 1);
	if (!m->content)
		return -1;
	memcpy(m->content, s, n);
	m->content[n] = '\0';
	m->content_len = n;
	return 0;
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* Text of a content value: a string, or the text parts of an array joined
 * with "\n". Other parts are counted in *dropped. *has = false when the
 * value is null/absent. */
static int content_text(const cJSON *c, struct buf *out, int64_t *dropped, bool *has)
{
	buf_reset(out);
	*has = false;
	if (!c || cJSON_IsNull(c))
		return 0;
	*has = true;
	if (cJSON_IsString(c))
		return buf_puts(out, c->valuestring ? c->valuestring : "");
	if (!cJSON_IsArray(c)) {
		(*dropped)++;
		return 0;
	}
	bool first = true;
	for (const cJSON *p = c->child; p; p = p->next) {
		const char *type = str_of(p, "type");
		const char *text = str_of(p, "text");
		if (cJSON_IsString(p)) {
			text = p->valuestring;
		} else if (!text || (type && strcmp(type, "text") && strcmp(type, "input_text") && strcmp(type, "output_text"))) {
			(*dropped)++;
			continue;
		}
		if ((!first && buf_putc(out, '\n') < 0) || buf_puts(out, text ? text : "") < 0)
			return -1;
		first = false;
	}
	return 0;
}

static int add_call(struct tr_message *m, const char *id, const char *name, const char *args)
{
	struct tr_tool_call *v = realloc(m->calls, (m->n_calls + 1) * sizeof *v);
	if (!v)
		return -1;
	m->calls = v;
	struct tr_tool_call *c = &v[m->n_calls];
	c->id = jsonh_strdup(id);
	c->name = jsonh_strdup(name);
	c->arguments = jsonh_strdup(args);
	m->n_calls++;
	return c->id && c->name && c->arguments ? 0 : -1;
}

/* Compact normal-form JSON of v (Anthropic tool_use input). */
static char *compact(const cJSON *v)
{
	struct buf b = BUF_INIT;
	if (!v)
		return jsonh_strdup("{}");
	if (jsonh_put(&b, v) < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_detach(&b);
}

static int openai_calls(struct tr_message *m, const cJSON *calls, int64_t *dropped)
{
	for (const cJSON *c = calls ? calls->child : NULL; c; c = c->next) {
		const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
		const char *id = str_of(c, "id"), *name = str_of(fn, "name");
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
		if (!id || !*id || !name || !*name) {
			(*dropped)++;
			continue;
		}
		char *args = cJSON_IsString(a) ? jsonh_strdup(a->valuestring) : compact(a);
		int rc = args ? add_call(m, id, name, args) : -1;
		free(args);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int parse_openai(const cJSON *body, struct reqdiff_req *out, struct mlist *l, struct ar_err *err)
{
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
	if (!cJSON_IsArray(msgs))
		return ar_err_set(err, AR_EFORMAT, "messages: expected an array");
	struct buf t = BUF_INIT;
	int rc = -1, k = 0;
	for (const cJSON *m = msgs->child; m; m = m->next, k++) {
		if (!cJSON_IsObject(m)) {
			ar_err_set(err, AR_EFORMAT, "messages[%d]: expected an object", k);
			goto out;
		}
		const char *role = str_of(m, "role");
		bool has;
		if (content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &t, &out->dropped, &has) < 0)
			goto oom;
		if (!role) {
			ar_err_set(err, AR_EFORMAT, "messages[%d].role: expected a string", k);
			goto out;
		}
		if (!strcmp(role, "system") || !strcmp(role, "developer")) {
			if (k == 0) {
				if (!(out->system = jsonh_strdup(t.data ? t.data : "")))
					goto oom;
				continue;
			}
			struct tr_message *x = mlist_push(l, TR_SYSTEM);
			if (!x || set_content(x, t.data ? t.data : "", t.len) < 0)
				goto oom;
		} else if (!strcmp(role, "user")) {
			struct tr_message *x = mlist_push(l, TR_USER);
			if (!x || set_content(x, t.data ? t.data : "", t.len) < 0)
				goto oom;
		} else if (!strcmp(role, "assistant")) {
			struct tr_message *x = mlist_push(l, TR_ASSISTANT);
			if (!x || openai_calls(x, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), &out->dropped) < 0)
				goto oom;
			if ((has || !x->n_calls) && set_content(x, t.data ? t.data : "", t.len) < 0)
				goto oom;
		} else if (!strcmp(role, "tool") || !strcmp(role, "function")) {
			const char *id = str_of(m, "tool_call_id");
			struct tr_message *x = mlist_push(l, id && *id ? TR_TOOL : TR_USER);
			if (!x || set_content(x, t.data ? t.data : "", t.len) < 0)
				goto oom;
			if (id && *id && !(x->tool_call_id = jsonh_strdup(id)))
				goto oom;
			const char *name = str_of(m, "name");
			if (name && x->role == TR_TOOL && !(x->name = jsonh_strdup(name)))
				goto oom;
		} else {
			out->dropped++;
		}
	}
	rc = 0;
	goto out;
oom:
	rc = ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	buf_free(&t);
	return rc;
}

/* One Anthropic message's content blocks -> messages (see reqdiff.h). */
static int anthropic_blocks(const cJSON *blocks, bool assistant, struct mlist *l,
			    int64_t *dropped)
{
	struct buf text = BUF_INIT, part = BUF_INIT;
	int rc = -1;
	bool any_text = false;
	size_t tools_added = 0;
	struct tr_message *asst = NULL;
	if (assistant && !(asst = mlist_push(l, TR_ASSISTANT)))
		goto out;
	for (const cJSON *b = blocks->child; b; b = b->next) {
		const char *type = str_of(b, "type");
		if (cJSON_IsString(b) || (type && !strcmp(type, "text"))) {
			const char *s = cJSON_IsString(b) ? b->valuestring : str_of(b, "text");
			if ((any_text && buf_putc(&text, '\n') < 0) || buf_puts(&text, s ? s : "") < 0)
				goto out;
			any_text = true;
		} else if (assistant && type && !strcmp(type, "tool_use")) {
			const char *id = str_of(b, "id"), *name = str_of(b, "name");
			if (!id || !*id || !name || !*name) {
				(*dropped)++;
				continue;
			}
			char *args = compact(cJSON_GetObjectItemCaseSensitive(b, "input"));
			int r = args ? add_call(asst, id, name, args) : -1;
			free(args);
			if (r < 0)
				goto out;
		} else if (!assistant && type && !strcmp(type, "tool_result")) {
			const char *id = str_of(b, "tool_use_id");
			bool has;
			if (content_text(cJSON_GetObjectItemCaseSensitive(b, "content"), &part, dropped, &has) < 0)
				goto out;
			struct tr_message *x = mlist_push(l, id && *id ? TR_TOOL : TR_USER);
			if (!x || set_content(x, part.data ? part.data : "", part.len) < 0)
				goto out;
			if (id && *id && !(x->tool_call_id = jsonh_strdup(id)))
				goto out;
			tools_added++;
		} else {
			(*dropped)++; /* thinking, redacted_thinking, image, document, ... */
		}
	}
	if (assistant) {
		if ((any_text || !asst->n_calls) && set_content(asst, text.data ? text.data : "", text.len) < 0)
			goto out;
	} else if (any_text || !tools_added) {
		/* text beside tool results follows them; a message of dropped
		 * blocks only stays as an empty user message */
		struct tr_message *x = mlist_push(l, TR_USER);
		if (!x || set_content(x, text.data ? text.data : "", text.len) < 0)
			goto out;
	}
	rc = 0;
out:
	buf_free(&text);
	buf_free(&part);
	return rc;
}

static int parse_anthropic(const cJSON *body, struct reqdiff_req *out, struct mlist *l, struct ar_err *err)
{
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
	if (!cJSON_IsArray(msgs))
		return ar_err_set(err, AR_EFORMAT, "messages: expected an array");
	const cJSON *sys = cJSON_GetObjectItemCaseSensitive(body, "system");
	if (sys && !cJSON_IsNull(sys)) {
		struct buf t = BUF_INIT;
		bool has;
		if (content_text(sys, &t, &out->dropped, &has) < 0 || !(out->system = jsonh_strdup(t.data ? t.data : ""))) {
			buf_free(&t);
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
		buf_free(&t);
	}
	int k = 0;
	for (const cJSON *m = msgs->child; m; m = m->next, k++) {
		const char *role = cJSON_IsObject(m) ? str_of(m, "role") : NULL;
		if (!role)
			return ar_err_set(err, AR_EFORMAT, "messages[%d]: expected an object with a role", k);
		bool assistant = !strcmp(role, "assistant");
		if (!assistant && strcmp(role, "user")) {
			out->dropped++;
			continue;
		}
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
		if (cJSON_IsString(c)) {
			struct tr_message *x = mlist_push(l, assistant ? TR_ASSISTANT : TR_USER);
			if (!x || set_content(x, c->valuestring, strlen(c->valuestring)) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
		} else if (cJSON_IsArray(c)) {
			if (anthropic_blocks(c, assistant, l, &out->dropped) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
		} else {
			return ar_err_set(err, AR_EFORMAT, "messages[%d].content: expected a string or an array", k);
		}
	}
	return 0;
}

/* Tools in trace form, names unique; NULL when none survive. */
static int parse_tools(enum reqdiff_api api, const cJSON *body, struct reqdiff_req *out)
{
	const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
	if (!cJSON_IsArray(tools))
		return 0;
	cJSON *arr = cJSON_CreateArray();
	struct strset names;
	strset_init(&names);
	if (!arr)
		return -1;
	for (const cJSON *t = tools->child; t; t = t->next) {
		const cJSON *fn = t, *params = NULL;
		if (api == REQDIFF_OPENAI_CHAT) {
			const char *type = str_of(t, "type");
			fn = cJSON_GetObjectItemCaseSensitive(t, "function");
			if (!type || strcmp(type, "function") || !cJSON_IsObject(fn)) {
				out->dropped++;
				continue;
			}
			params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
		} else {
			/* server tools (web_search_..., bash_..., text_editor_...) have a
			 * type and no schema: the provider defines them, not the prompt */
			const char *type = str_of(t, "type");
			params = cJSON_GetObjectItemCaseSensitive(t, "input_schema");
			if (!params && type && strcmp(type, "custom")) {
				out->dropped++;
				continue;
			}
		}
		const char *name = str_of(fn, "name"), *desc = str_of(fn, "description");
		int added = name && *name ? strset_add(&names, name) : 0;
		if (added < 0)
			goto oom;
		if (!added) {
			out->dropped++;
			continue;
		}
		cJSON *o = cJSON_CreateObject(), *f = o ? cJSON_AddObjectToObject(o, "function") : NULL;
		if (!o || !cJSON_AddItemToArray(arr, o) || !cJSON_AddStringToObject(o, "type", "function") || !f ||
		    !cJSON_AddStringToObject(f, "name", name) || (desc && !cJSON_AddStringToObject(f, "description", desc)))
			goto oom;
		/* "type" first, as the normal form writes it */
		cJSON_DetachItemViaPointer(o, f);
		cJSON_AddItemToObject(o, "function", f);
		if (cJSON_IsObject(params)) {
			cJSON *p = cJSON_Duplicate(params, 1);
			if (!p || !cJSON_AddItemToObject(f, "parameters", p)) {
				cJSON_Delete(p);
				goto oom;
			}
		}
	}
	strset_free(&names);
	if (cJSON_GetArraySize(arr) == 0)
		cJSON_Delete(arr);
	else
		out->tools = arr;
	return 0;
oom:
	strset_free(&names);
	cJSON_Delete(arr);
	return -1;
}

int reqdiff_parse(enum reqdiff_api api, const cJSON *body, struct reqdiff_req *out, struct ar_err *err)
{
	memset(out, 0, sizeof *out);
	if (!cJSON_IsObject(body))
		return ar_err_set(err, AR_EFORMAT, "request body is not a JSON object");
	struct mlist l = {0};
	int rc = api == REQDIFF_ANTHROPIC_MESSAGES ? parse_anthropic(body, out, &l, err) : parse_openai(body, out, &l, err);
	out->msgs = l.v;
	out->n_msgs = l.n;
	if (rc == 0 && parse_tools(api, body, out) < 0)
		rc = ar_err_set(err, AR_ENOMEM, "out of memory");
	const char *model = str_of(body, "model");
	if (rc == 0 && model && !(out->model = jsonh_strdup(model)))
		rc = ar_err_set(err, AR_ENOMEM, "out of memory");
	if (rc < 0)
		reqdiff_req_clear(out);
	return rc;
}

/* ---- the diff -------------------------------------------------------------- */

int reqdiff_new(struct reqdiff **out, struct ar_err *err)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	strset_init(&(*out)->issued);
	return 0;
}

static void hist_clear(struct reqdiff *d)
{
	for (size_t i = 0; i < d->n; i++)
		tr_message_clear(&d->hist[i]);
	d->n = 0;
}

void reqdiff_free(struct reqdiff *d)
{
	if (!d)
		return;
	hist_clear(d);
	free(d->hist);
	free(d->system);
	free(d->tools);
	strset_free(&d->issued);
	free(d);
}

size_t reqdiff_history_len(const struct reqdiff *d)
{
	return d->n;
}

static int hist_push(struct reqdiff *d, const struct tr_message *m)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		struct tr_message *v = realloc(d->hist, cap * sizeof *v);
		if (!v)
			return -1;
		d->hist = v;
		d->cap = cap;
	}
	if (tr_message_copy(&d->hist[d->n], m) < 0)
		return -1;
	d->n++;
	return 0;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Equal as the trace materialises them: absent content equals "". */
static bool msg_eq(const struct tr_message *a, const struct tr_message *b)
{
	if (a->role != b->role || a->n_calls != b->n_calls || !str_eq(a->tool_call_id, b->tool_call_id) ||
	    !str_eq(a->name, b->name) || a->synth || b->synth)
		return false;
	if (!str_eq(a->content ? a->content : "", b->content ? b->content : ""))
		return false;
	for (size_t i = 0; i < a->n_calls; i++)
		if (!str_eq(a->calls[i].id, b->calls[i].id) || !str_eq(a->calls[i].name, b->calls[i].name) ||
		    !str_eq(a->calls[i].arguments, b->calls[i].arguments))
			return false;
	return true;
}

static char *tools_key(const cJSON *tools)
{
	if (!tools)
		return NULL;
	struct buf b = BUF_INIT;
	if (jsonh_put(&b, tools) < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_detach(&b);
}

int reqdiff_next(struct reqdiff *d, const struct reqdiff_req *req, struct reqdiff_turn *out, struct ar_err *err)
{
	memset(out, 0, sizeof *out);
	out->keep = -1;
	const char *sys = req->system && *req->system ? req->system : NULL;
	if (!sys && req->n_msgs == 0) {
		out->empty = true;
		return 0;
	}
	char *tk = tools_key(req->tools);
	if (req->tools && !tk)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	if (!d->open || !str_eq(d->system, sys) || !str_eq(d->tools, tk)) {
		out->new_session = true;
		hist_clear(d);
		strset_clear(&d->issued);
		free(d->system);
		free(d->tools);
		d->system = sys ? jsonh_strdup(sys) : NULL;
		d->tools = tk;
		tk = NULL;
		d->open = true;
		if (sys && !d->system)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	free(tk);
	size_t p = 0;
	while (p < d->n && p < req->n_msgs && msg_eq(&d->hist[p], &req->msgs[p]))
		p++;
	if (p < d->n) {
		out->keep = (int64_t)p;
		for (size_t i = p; i < d->n; i++)
			tr_message_clear(&d->hist[i]);
		d->n = p;
	}
	size_t na = req->n_msgs - p;
	if (na && !(out->append = calloc(na, sizeof *out->append)))
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	for (size_t i = 0; i < na; i++) {
		struct tr_message *m = &out->append[i];
		if (tr_message_copy(m, &req->msgs[p + i]) < 0)
			goto oom;
		out->n_append++;
		if (m->role == TR_TOOL && !strset_has(&d->issued, m->tool_call_id)) {
			/* a result for a call this session never issued: keep the text */
			m->role = TR_USER;
			free(m->tool_call_id);
			free(m->name);
			m->tool_call_id = m->name = NULL;
			out->orphans++;
		}
		for (size_t k = 0; k < m->n_calls; k++)
			if (strset_add(&d->issued, m->calls[k].id) < 0)
				goto oom;
		if (hist_push(d, m) < 0)
			goto oom;
	}
	if (!sys && d->n == 0)
		out->empty = true; /* cannot happen with n_msgs > 0; kept for safety */
	return 0;
oom:
	reqdiff_turn_clear(out);
	return ar_err_set(err, AR_ENOMEM, "out of memory");
}

int reqdiff_answer(struct reqdiff *d, const struct tr_response *resp, struct ar_err *err)
{
	if (!resp)
		return 0;
	struct tr_message m = {.role = TR_ASSISTANT};
	m.content = (char *)(resp->content ? resp->content : "");
	m.content_len = resp->content ? resp->content_len : 0;
	m.calls = resp->calls;
	m.n_calls = resp->n_calls;
	if (hist_push(d, &m) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	for (size_t k = 0; k < resp->n_calls; k++)
		if (strset_add(&d->issued, resp->calls[k].id) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
	return 0;
}

/* ---- the router -------------------------------------------------------------- */

struct rconv {
	struct reqdiff *d; /* NULL: closed */
	int64_t turns;     /* turns routed to it */
	uint64_t used;     /* recency: the router's clock at its last request or answer */
	bool awaiting;     /* its last response issued tool calls */
	bool spawner;      /* ... one of them a subagent tool */
};

struct reqdiff_router {
	struct rconv *c;
	size_t n, cap;
	size_t open, max_open;
	uint64_t clock;
};

void reqdiff_route_clear(struct reqdiff_route *r)
{
	if (!r)
		return;
	reqdiff_turn_clear(&r->diff);
	r->session = r->parent = r->spawned_at_turn = r->turn = -1;
}

int reqdiff_router_new(struct reqdiff_router **out, size_t max_open, struct ar_err *err)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	(*out)->max_open = max_open ? max_open : 256;
	return 0;
}

void reqdiff_router_free(struct reqdiff_router *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		reqdiff_free(r->c[i].d);
	free(r->c);
	free(r);
}

int64_t reqdiff_router_sessions(const struct reqdiff_router *r)
{
	return (int64_t)r->n;
}

bool reqdiff_is_subagent_tool(const char *name)
{
	static const char *const names[] = {"task", "agent", "spawn_agent", "dispatch_agent", "subagent",
					    "run_subagent", "spawn_subagent", "delegate", "delegate_task", "new_task"};
	if (!name)
		return false;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcasecmp(name, names[i]))
			return true;
	return false;
}

/* Leading messages of the request equal to d's history. */
static size_t common_prefix(const struct reqdiff *d, const struct reqdiff_req *req)
{
	size_t p = 0;
	while (p < d->n && p < req->n_msgs && msg_eq(&d->hist[p], &req->msgs[p]))
		p++;
	return p;
}

static bool better(const struct rconv *a, size_t pa, const struct rconv *best, size_t pbest)
{
	return !best || pa > pbest || (pa == pbest && a->used > best->used);
}

int reqdiff_router_next(struct reqdiff_router *r, const struct reqdiff_req *req, struct reqdiff_route *out,
			struct ar_err *err)
{
	memset(out, 0, sizeof *out);
	out->session = out->parent = out->spawned_at_turn = out->turn = -1;
	out->diff.keep = -1;
	const char *sys = req->system && *req->system ? req->system : NULL;
	if (!sys && req->n_msgs == 0) {
		out->diff.empty = true;
		return 0;
	}
	char *tk = tools_key(req->tools);
	if (req->tools && !tk)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	struct rconv *ext = NULL, *rew = NULL, *spawner = NULL, *idle = NULL, *waiter = NULL;
	size_t pext = 0, prew = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct rconv *c = &r->c[i];
		if (!c->d)
			continue;
		if (c->spawner && (!spawner || c->used > spawner->used))
			spawner = c;
		if (c->awaiting && (!waiter || c->used > waiter->used))
			waiter = c;
		if (!str_eq(c->d->system, sys) || !str_eq(c->d->tools, tk))
			continue;
		size_t p = common_prefix(c->d, req);
		if (c->d->n > 0 && p == c->d->n && better(c, p, ext, pext)) {
			ext = c;
			pext = p;
		} else if (p > 0 && better(c, p, rew, prew)) {
			rew = c;
			prew = p;
		}
		if (!c->awaiting && (!idle || c->used > idle->used))
			idle = c;
	}
	free(tk);
	struct rconv *to = ext ? ext : rew ? rew : spawner ? NULL : idle;
	struct rconv *parent = NULL;
	if (!to)
		parent = spawner ? spawner : waiter;
	if (!to) {
		/* a new session: close the least recently used one if full */
		if (r->open >= r->max_open) {
			struct rconv *lru = NULL;
			for (size_t i = 0; i < r->n; i++)
				if (r->c[i].d && (!lru || r->c[i].used < lru->used))
					lru = &r->c[i];
			if (lru == parent)
				parent = NULL; /* cannot happen with max_open >= 1 and an older one; be safe */
			if (lru) {
				reqdiff_free(lru->d);
				lru->d = NULL;
				r->open--;
			}
		}
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 16;
			size_t pi = parent ? (size_t)(parent - r->c) : 0;
			struct rconv *v = realloc(r->c, cap * sizeof *v);
			if (!v)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			r->c = v;
			r->cap = cap;
			if (parent)
				parent = &r->c[pi];
		}
		to = &r->c[r->n];
		memset(to, 0, sizeof *to);
		if (reqdiff_new(&to->d, err) < 0)
			return -1;
		r->n++;
		r->open++;
		if (parent && parent->turns > 0) {
			out->parent = (int64_t)(parent - r->c);
			out->spawned_at_turn = parent->turns - 1;
		}
	}
	if (reqdiff_next(to->d, req, &out->diff, err) < 0)
		return -1;
	out->session = (int64_t)(to - r->c);
	out->turn = to->turns++;
	to->used = ++r->clock;
	to->awaiting = to->spawner = false; /* it sent what it awaited */
	return 0;
}

int reqdiff_router_answer(struct reqdiff_router *r, int64_t session, const struct tr_response *resp,
			  struct ar_err *err)
{
	if (session < 0 || (size_t)session >= r->n || !r->c[session].d)
		return 0;
	struct rconv *c = &r->c[session];
	c->used = ++r->clock;
	c->awaiting = resp && resp->n_calls > 0;
	c->spawner = false;
	for (size_t k = 0; resp && k < resp->n_calls; k++)
		if (reqdiff_is_subagent_tool(resp->calls[k].name))
			c->spawner = true;
	return reqdiff_answer(c->d, resp, err);
}

/* ---- the request log's response -------------------------------------------- */

static bool num_of(const cJSON *o, const char *key, int64_t *v)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	return x && jsonh_int(x, v) && *v >= 0;
}

int reqdiff_log_response(enum reqdiff_api api, const cJSON *resp, double ttft_ms, double e2e_ms, const char *model,
			 struct tr_response **out_resp, cJSON **out_recorded, struct ar_err *err)
{
	*out_resp = NULL;
	*out_recorded = NULL;
	if (!cJSON_IsObject(resp))
		return ar_err_set(err, AR_EFORMAT, "response: expected an object");
	int64_t status = 0;
	if (!num_of(resp, "status", &status))
		return ar_err_set(err, AR_EFORMAT, "response.status: expected an integer");
	const cJSON *usage = cJSON_GetObjectItemCaseSensitive(resp, "usage");
	int64_t prompt = -1, cached = -1, output = -1, creation = -1, reasoning = -1;
	if (cJSON_IsObject(usage)) {
		if (api == REQDIFF_ANTHROPIC_MESSAGES) {
			int64_t in = -1, rd = 0, cr = 0;
			if (num_of(usage, "input_tokens", &in)) {
				if (!num_of(usage, "cache_read_input_tokens", &rd))
					rd = 0;
				if (!num_of(usage, "cache_creation_input_tokens", &cr))
					cr = 0;
				prompt = in + rd + cr;
				cached = rd;
				creation = cr;
			}
			if (!num_of(usage, "output_tokens", &output))
				output = -1;
		} else {
			if (!num_of(usage, "prompt_tokens", &prompt))
				prompt = -1;
			if (!num_of(usage, "completion_tokens", &output))
				output = -1;
			const cJSON *pd = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
			if (!num_of(pd, "cached_tokens", &cached))
				cached = -1;
			const cJSON *cd = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details");
			if (!num_of(cd, "reasoning_tokens", &reasoning) || reasoning == 0)
				reasoning = -1;
		}
		if (cached > prompt && prompt >= 0)
			cached = prompt;
	}
	cJSON *rec = cJSON_CreateObject();
	struct tr_response *r = NULL;
	if (!rec)
		goto oom;
	if ((prompt >= 0 && !cJSON_AddNumberToObject(rec, "prompt_tokens", (double)prompt)) ||
	    (cached >= 0 && prompt >= 0 && !cJSON_AddNumberToObject(rec, "cached_tokens", (double)cached)) ||
	    (output >= 0 && !cJSON_AddNumberToObject(rec, "output_tokens", (double)output)) ||
	    (ttft_ms >= 0 && isfinite(ttft_ms) && !cJSON_AddNumberToObject(rec, "ttft_ms", ttft_ms)) ||
	    (e2e_ms >= 0 && isfinite(e2e_ms) && !cJSON_AddNumberToObject(rec, "e2e_ms", e2e_ms)) ||
	    (model && !cJSON_AddStringToObject(rec, "model", model)) ||
	    (creation > 0 && !cJSON_AddNumberToObject(rec, "cache_creation_tokens", (double)creation)) ||
	    ((status < 200 || status >= 300) && !cJSON_AddNumberToObject(rec, "status", (double)status)))
		goto oom;
	if (!rec->child) {
		cJSON_Delete(rec);
		rec = NULL;
	}
	if (status >= 200 && status < 300) {
		if (!(r = calloc(1, sizeof *r)))
			goto oom;
		r->reasoning_tokens = -1;
		r->output_tokens = -1;
		const char *content = str_of(resp, "content");
		if (content) {
			if (!(r->content = jsonh_strdup(content)))
				goto oom;
			r->content_len = strlen(content);
		}
		struct tr_message tmp = {0};
		int64_t dropped = 0;
		if (openai_calls(&tmp, cJSON_GetObjectItemCaseSensitive(resp, "tool_calls"), &dropped) < 0) {
			tr_message_clear(&tmp);
			goto oom;
		}
		r->calls = tmp.calls;
		r->n_calls = tmp.n_calls;
		if (output >= 1)
			r->output_tokens = output;
		int64_t rchars = -1;
		if (reasoning > 0)
			r->reasoning_tokens = reasoning;
		else if (num_of(resp, "reasoning_chars", &rchars) && rchars > 0)
			r->reasoning_tokens = (rchars + 3) / 4; /* the text is not kept: its size only */
		if (r->n_calls && !(r->finish = jsonh_strdup("tool_calls")))
			goto oom;
	}
	*out_resp = r;
	*out_recorded = rec;
	return 0;
oom:
	tr_response_free(r);
	cJSON_Delete(rec);
	return ar_err_set(err, AR_ENOMEM, "out of memory");
}
