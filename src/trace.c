#include "trace.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonh.h"
#include "tokest.h"

/* ---- diagnostics ------------------------------------------------------- */

void trace_diag_clear(struct trace_diag *d)
{
	d->n = 0;
	d->dropped = 0;
	d->unknown_type = false;
}

void trace_diag_add(struct trace_diag *d, const char *field, const char *fmt, ...)
{
	if (d->n >= TRACE_DIAG_MAX) {
		d->dropped++;
		return;
	}
	snprintf(d->p[d->n].field, sizeof d->p[d->n].field, "%s", field);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->p[d->n].msg, sizeof d->p[d->n].msg, fmt, ap);
	va_end(ap);
	d->n++;
}

/* ---- freeing ----------------------------------------------------------- */

void tr_tool_calls_free(struct tr_tool_call *calls, size_t n)
{
	if (!calls)
		return;
	for (size_t i = 0; i < n; i++) {
		free(calls[i].id);
		free(calls[i].name);
		free(calls[i].arguments);
	}
	free(calls);
}

void tr_message_clear(struct tr_message *m)
{
	if (!m)
		return;
	free(m->content);
	if (m->synth) {
		free(m->synth->blocks);
		free(m->synth);
	}
	tr_tool_calls_free(m->calls, m->n_calls);
	free(m->tool_call_id);
	free(m->name);
	cJSON_Delete(m->extra);
	memset(m, 0, sizeof *m);
}

void tr_response_free(struct tr_response *r)
{
	if (!r)
		return;
	free(r->content);
	free(r->reasoning);
	tr_tool_calls_free(r->calls, r->n_calls);
	free(r->finish);
	cJSON_Delete(r->extra);
	free(r);
}

void tr_turn_free(struct tr_turn *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_append; i++)
		tr_message_clear(&t->append[i]);
	free(t->append);
	tr_response_free(t->response);
	cJSON_Delete(t->recorded);
	cJSON_Delete(t->extra);
	free(t);
}

void tr_session_free(struct tr_session *s)
{
	if (!s)
		return;
	free(s->format);
	free(s->id);
	free(s->parent);
	cJSON_Delete(s->source);
	free(s->model);
	free(s->system);
	cJSON_Delete(s->tools);
	cJSON_Delete(s->meta);
	cJSON_Delete(s->extra);
	free(s);
}

void trace_item_clear(struct trace_item *item)
{
	if (!item)
		return;
	tr_session_free(item->session);
	tr_turn_free(item->turn);
	item->session = NULL;
	item->turn = NULL;
	item->kind = TRACE_ITEM_NONE;
}

static char *dupn(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static int calls_copy(struct tr_tool_call **dst, size_t *dn, const struct tr_tool_call *src, size_t n)
{
	*dst = NULL;
	*dn = 0;
	if (!n)
		return 0;
	struct tr_tool_call *c = calloc(n, sizeof *c);
	if (!c)
		return -1;
	for (size_t i = 0; i < n; i++) {
		c[i].id = jsonh_strdup(src[i].id);
		c[i].name = jsonh_strdup(src[i].name);
		c[i].arguments = jsonh_strdup(src[i].arguments);
		if ((src[i].id && !c[i].id) || (src[i].name && !c[i].name) ||
		    (src[i].arguments && !c[i].arguments)) {
			tr_tool_calls_free(c, n);
			return -1;
		}
	}
	*dst = c;
	*dn = n;
	return 0;
}

int tr_message_copy(struct tr_message *dst, const struct tr_message *src)
{
	memset(dst, 0, sizeof *dst);
	dst->role = src->role;
	if (src->content) {
		if (!(dst->content = dupn(src->content, src->content_len)))
			goto fail;
		dst->content_len = src->content_len;
	}
	if (src->synth) {
		if (!(dst->synth = calloc(1, sizeof *dst->synth)))
			goto fail;
		*dst->synth = *src->synth;
		dst->synth->blocks = NULL;
		if (src->synth->n_blocks) {
			dst->synth->blocks = malloc(src->synth->n_blocks * sizeof(int64_t));
			if (!dst->synth->blocks)
				goto fail;
			memcpy(dst->synth->blocks, src->synth->blocks, src->synth->n_blocks * sizeof(int64_t));
		}
	}
	if (calls_copy(&dst->calls, &dst->n_calls, src->calls, src->n_calls) < 0)
		goto fail;
	if (src->tool_call_id && !(dst->tool_call_id = jsonh_strdup(src->tool_call_id)))
		goto fail;
	if (src->name && !(dst->name = jsonh_strdup(src->name)))
		goto fail;
	if (src->extra && !(dst->extra = cJSON_Duplicate(src->extra, 1)))
		goto fail;
	return 0;
fail:
	tr_message_clear(dst);
	return -1;
}

const char *tr_role_name(enum tr_role r)
{
	switch (r) {
	case TR_SYSTEM: return "system";
	case TR_USER: return "user";
	case TR_ASSISTANT: return "assistant";
	case TR_TOOL: return "tool";
	}
	return "?";
}

int tr_role_parse(const char *name, enum tr_role *out)
{
	static const enum tr_role all[] = {TR_SYSTEM, TR_USER, TR_ASSISTANT, TR_TOOL};
	for (size_t i = 0; i < 4; i++)
		if (!strcmp(name, tr_role_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	return -1;
}

/* ---- parsing ----------------------------------------------------------- */

/* A small table-driven field walk: every member of an object is either one
 * of `known` (checked for duplicates) or moved into `extra`. */
struct fieldset {
	const char *const *known;
	size_t n_known;
	const cJSON *seen[16];
};

/* Walks obj's members; fills fs->seen[k] for known ones, moves unknown ones to
 * *extra (created on demand). Reports duplicates. Returns -1 on OOM. */
static int walk_fields(cJSON *obj, struct fieldset *fs, cJSON **extra, const char *path,
		       struct trace_diag *d)
{
	memset(fs->seen, 0, sizeof fs->seen);
	cJSON *c = obj->child;
	while (c) {
		cJSON *next = c->next;
		const char *k = c->string ? c->string : "";
		size_t i;
		for (i = 0; i < fs->n_known; i++)
			if (!strcmp(k, fs->known[i]))
				break;
		char f[112];
		snprintf(f, sizeof f, "%s%s%s", path, *path ? "." : "", k);
		if (i < fs->n_known) {
			if (fs->seen[i])
				trace_diag_add(d, f, "duplicate field");
			else
				fs->seen[i] = c;
		} else {
			if (*extra && cJSON_GetObjectItemCaseSensitive(*extra, k)) {
				trace_diag_add(d, f, "duplicate field");
			} else {
				if (!*extra && !(*extra = cJSON_CreateObject()))
					return -1;
				cJSON_DetachItemViaPointer(obj, c);
				cJSON_AddItemToObject(*extra, k, c);
			}
		}
		c = next;
	}
	return 0;
}

static void fpath(char *out, size_t n, const char *path, const char *field)
{
	snprintf(out, n, "%s%s%s", path, *path ? "." : "", field);
}

/* Reads an optional string; NULL/absent leave *out NULL. `allow_null` lets a
 * JSON null mean absent. Returns -1 on OOM only. */
static int get_str(const cJSON *v, const char *path, const char *field, bool allow_null, char **out,
		   size_t *len, struct trace_diag *d)
{
	*out = NULL;
	if (len)
		*len = 0;
	if (!v || (allow_null && cJSON_IsNull(v)))
		return 0;
	char f[112];
	fpath(f, sizeof f, path, field);
	if (!cJSON_IsString(v)) {
		trace_diag_add(d, f, "must be a string, not %s", jsonh_type(v));
		return 0;
	}
	size_t n = strlen(v->valuestring);
	if (!(*out = dupn(v->valuestring, n)))
		return -1;
	if (len)
		*len = n;
	return 0;
}

static int64_t get_int(const cJSON *v, const char *path, const char *field, int64_t min,
		       struct trace_diag *d)
{
	if (!v)
		return -1;
	char f[112];
	fpath(f, sizeof f, path, field);
	int64_t x;
	if (!jsonh_int(v, &x)) {
		if (cJSON_IsNumber(v))
			trace_diag_add(d, f, "must be an integer, not %g", v->valuedouble);
		else
			trace_diag_add(d, f, "must be an integer, not %s", jsonh_type(v));
		return -1;
	}
	if (x < min) {
		trace_diag_add(d, f, "must be >= %lld, not %lld", (long long)min, (long long)x);
		return -1;
	}
	return x;
}

/* Moves v out of its parent object (so the parsed root can be freed) when it
 * has the wanted JSON type; reports otherwise. */
static cJSON *take(cJSON *parent, cJSON *v, int want_object, const char *path, const char *field,
		   struct trace_diag *d)
{
	if (!v)
		return NULL;
	bool ok = want_object ? cJSON_IsObject(v) : cJSON_IsArray(v);
	if (!ok) {
		char f[112];
		fpath(f, sizeof f, path, field);
		trace_diag_add(d, f, "must be an %s, not %s", want_object ? "object" : "array",
			       jsonh_type(v));
		return NULL;
	}
	return cJSON_DetachItemViaPointer(parent, v);
}

static int parse_calls(cJSON *arr, const char *path, struct tr_tool_call **out, size_t *n_out,
		       struct trace_diag *d)
{
	*out = NULL;
	*n_out = 0;
	if (!arr)
		return 0;
	char f[112];
	fpath(f, sizeof f, path, "tool_calls");
	if (!cJSON_IsArray(arr)) {
		trace_diag_add(d, f, "must be an array, not %s", jsonh_type(arr));
		return 0;
	}
	int n = cJSON_GetArraySize(arr);
	if (!n)
		return 0;
	struct tr_tool_call *calls = calloc((size_t)n, sizeof *calls);
	if (!calls)
		return -1;
	int i = 0;
	for (cJSON *c = arr->child; c; c = c->next, i++) {
		char p[112];
		snprintf(p, sizeof p, "%s[%d]", f, i);
		if (!cJSON_IsObject(c)) {
			trace_diag_add(d, p, "must be an object, not %s", jsonh_type(c));
			continue;
		}
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
		const cJSON *args = cJSON_GetObjectItemCaseSensitive(c, "arguments");
		if (!id)
			trace_diag_add(d, p, "missing field 'id'");
		if (!name)
			trace_diag_add(d, p, "missing field 'name'");
		if (get_str(id, p, "id", false, &calls[i].id, NULL, d) < 0 ||
		    get_str(name, p, "name", false, &calls[i].name, NULL, d) < 0 ||
		    get_str(args, p, "arguments", false, &calls[i].arguments, NULL, d) < 0)
			goto oom;
		char q[112];
		if (calls[i].id && !*calls[i].id) {
			fpath(q, sizeof q, p, "id");
			trace_diag_add(d, q, "must not be empty");
		}
		if (calls[i].name && !*calls[i].name) {
			fpath(q, sizeof q, p, "name");
			trace_diag_add(d, q, "must not be empty");
		}
		if (!args && !(calls[i].arguments = dupn("{}", 2)))
			goto oom;
	}
	*out = calls;
	*n_out = (size_t)n;
	return 0;
oom:
	tr_tool_calls_free(calls, (size_t)n);
	return -1;
}

static int parse_synth(const cJSON *v, const char *path, struct tr_synth **out, struct trace_diag *d)
{
	*out = NULL;
	char f[112];
	fpath(f, sizeof f, path, "synthetic");
	if (!cJSON_IsObject(v)) {
		trace_diag_add(d, f, "must be an object, not %s", jsonh_type(v));
		return 0;
	}
	struct tr_synth *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(v, "tokens");
	const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(v, "blocks");
	const cJSON *bt = cJSON_GetObjectItemCaseSensitive(v, "block_tokens");
	size_t before = d->n + d->dropped;
	if (!tok)
		trace_diag_add(d, f, "missing field 'tokens'");
	s->tokens = get_int(tok, f, "tokens", 1, d);
	s->block_tokens = get_int(bt, f, "block_tokens", 1, d);
	if (blocks) {
		char bf[112];
		fpath(bf, sizeof bf, f, "blocks");
		if (!cJSON_IsArray(blocks)) {
			trace_diag_add(d, bf, "must be an array, not %s", jsonh_type(blocks));
		} else {
			int n = cJSON_GetArraySize(blocks);
			if (n) {
				s->blocks = calloc((size_t)n, sizeof *s->blocks);
				if (!s->blocks) {
					free(s);
					return -1;
				}
			}
			int i = 0;
			for (const cJSON *b = blocks->child; b; b = b->next, i++) {
				char ef[112];
				snprintf(ef, sizeof ef, "%s[%d]", bf, i);
				int64_t x;
				if (!jsonh_int(b, &x) || x < 0)
					trace_diag_add(d, ef, "must be an integer >= 0");
				else
					s->blocks[i] = x;
			}
			s->n_blocks = (size_t)n;
			if (!bt)
				trace_diag_add(d, f, "'block_tokens' is required when 'blocks' is given");
		}
	} else if (bt) {
		trace_diag_add(d, f, "'block_tokens' given without 'blocks'");
	}
	if (d->n + d->dropped != before) {
		free(s->blocks);
		free(s);
		return 0;
	}
	*out = s;
	return 0;
}

static const char *const message_fields[] = {"role", "content", "synthetic", "tool_calls",
					      "tool_call_id", "name"};

static int parse_message(cJSON *obj, const char *path, struct tr_message *m, struct trace_diag *d)
{
	memset(m, 0, sizeof *m);
	if (!cJSON_IsObject(obj)) {
		trace_diag_add(d, path, "must be an object, not %s", jsonh_type(obj));
		return 0;
	}
	struct fieldset fs = {message_fields, 6, {0}};
	if (walk_fields(obj, &fs, &m->extra, path, d) < 0)
		return -1;
	const cJSON *role = fs.seen[0], *content = fs.seen[1], *synth = fs.seen[2];
	cJSON *calls = (cJSON *)fs.seen[3];
	const cJSON *tcid = fs.seen[4], *name = fs.seen[5];
	char f[112];
	fpath(f, sizeof f, path, "role");
	if (!role) {
		trace_diag_add(d, path, "missing field 'role'");
	} else if (!cJSON_IsString(role)) {
		trace_diag_add(d, f, "must be a string, not %s", jsonh_type(role));
	} else if (tr_role_parse(role->valuestring, &m->role) < 0) {
		trace_diag_add(d, f, "unknown role '%.40s' (expected system, user, assistant or tool)",
			       role->valuestring);
		role = NULL;
	}
	if (get_str(content, path, "content", true, &m->content, &m->content_len, d) < 0)
		return -1;
	if (synth && parse_synth(synth, path, &m->synth, d) < 0)
		return -1;
	if (parse_calls(calls, path, &m->calls, &m->n_calls, d) < 0)
		return -1;
	if (get_str(tcid, path, "tool_call_id", false, &m->tool_call_id, NULL, d) < 0 ||
	    get_str(name, path, "name", false, &m->name, NULL, d) < 0)
		return -1;
	if (!role || !cJSON_IsString(role))
		return 0;
	bool has_content = content && !cJSON_IsNull(content);
	if (has_content && synth) {
		trace_diag_add(d, path, "has both 'content' and 'synthetic' (give one)");
	} else if (!has_content && !synth && !(m->role == TR_ASSISTANT && calls)) {
		trace_diag_add(d, path, "needs 'content' or 'synthetic'");
	}
	if (calls && m->role != TR_ASSISTANT) {
		fpath(f, sizeof f, path, "tool_calls");
		trace_diag_add(d, f, "only assistant messages carry tool calls");
	}
	fpath(f, sizeof f, path, "tool_call_id");
	if (m->role == TR_TOOL && !tcid)
		trace_diag_add(d, path, "a tool message needs 'tool_call_id'");
	else if (m->role != TR_TOOL && tcid)
		trace_diag_add(d, f, "only tool messages carry a tool_call_id");
	else if (m->tool_call_id && !*m->tool_call_id)
		trace_diag_add(d, f, "must not be empty");
	return 0;
}

static const char *const response_fields[] = {"content", "reasoning", "reasoning_tokens",
					      "tool_calls", "output_tokens", "finish"};

static int parse_response(cJSON *obj, struct tr_response **out, struct trace_diag *d)
{
	*out = NULL;
	struct tr_response *r = calloc(1, sizeof *r);
	if (!r)
		return -1;
	struct fieldset fs = {response_fields, 6, {0}};
	if (walk_fields(obj, &fs, &r->extra, "response", d) < 0)
		goto oom;
	if (get_str(fs.seen[0], "response", "content", true, &r->content, &r->content_len, d) < 0 ||
	    get_str(fs.seen[1], "response", "reasoning", true, &r->reasoning, NULL, d) < 0)
		goto oom;
	r->reasoning_tokens = get_int(fs.seen[2], "response", "reasoning_tokens", 0, d);
	if (parse_calls((cJSON *)fs.seen[3], "response", &r->calls, &r->n_calls, d) < 0)
		goto oom;
	r->output_tokens = get_int(fs.seen[4], "response", "output_tokens", 1, d);
	if (get_str(fs.seen[5], "response", "finish", false, &r->finish, NULL, d) < 0)
		goto oom;
	*out = r;
	return 0;
oom:
	tr_response_free(r);
	return -1;
}

static void check_recorded(const cJSON *rec, struct trace_diag *d)
{
	static const char *const ints[] = {"prompt_tokens", "cached_tokens", "output_tokens"};
	static const char *const nums[] = {"ttft_ms", "e2e_ms"};
	for (size_t i = 0; i < 3; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, ints[i]);
		(void)get_int(v, "recorded", ints[i], 0, d);
	}
	for (size_t i = 0; i < 2; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, nums[i]);
		if (!v)
			continue;
		char f[112];
		fpath(f, sizeof f, "recorded", nums[i]);
		if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
			trace_diag_add(d, f, "must be a number >= 0");
	}
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(rec, "model");
	if (model && !cJSON_IsString(model))
		trace_diag_add(d, "recorded.model", "must be a string, not %s", jsonh_type(model));
	int64_t p, c;
	if (jsonh_int(cJSON_GetObjectItemCaseSensitive(rec, "prompt_tokens"), &p) &&
	    jsonh_int(cJSON_GetObjectItemCaseSensitive(rec, "cached_tokens"), &c) && c > p && p >= 0)
		trace_diag_add(d, "recorded.cached_tokens", "%lld is more than prompt_tokens %lld",
			       (long long)c, (long long)p);
}

static const char *const turn_fields[] = {"type", "i", "t", "keep", "append", "response", "recorded"};

static int parse_turn(cJSON *root, struct tr_turn **out, struct trace_diag *d)
{
	*out = NULL;
	struct tr_turn *t = calloc(1, sizeof *t);
	if (!t)
		return -1;
	t->keep = -1;
	struct fieldset fs = {turn_fields, 7, {0}};
	if (walk_fields(root, &fs, &t->extra, "", d) < 0)
		goto oom;
	if (!fs.seen[1])
		trace_diag_add(d, "i", "missing field (the turn index)");
	t->i = get_int(fs.seen[1], "", "i", 0, d);
	if (fs.seen[2]) {
		const cJSON *tv = fs.seen[2];
		if (!cJSON_IsNumber(tv) || !isfinite(tv->valuedouble) || tv->valuedouble < 0)
			trace_diag_add(d, "t", "must be a number of seconds >= 0");
		else {
			t->t = tv->valuedouble;
			t->has_t = true;
		}
	}
	t->keep = get_int(fs.seen[3], "", "keep", 0, d);
	const cJSON *app = fs.seen[4];
	if (!app) {
		trace_diag_add(d, "append", "missing field (use [] for none)");
	} else if (!cJSON_IsArray(app)) {
		trace_diag_add(d, "append", "must be an array, not %s", jsonh_type(app));
	} else {
		int n = cJSON_GetArraySize(app);
		if (n) {
			if (!(t->append = calloc((size_t)n, sizeof *t->append)))
				goto oom;
			t->n_append = (size_t)n;
		}
		int i = 0;
		for (cJSON *m = app->child; m; m = m->next, i++) {
			char p[32];
			snprintf(p, sizeof p, "append[%d]", i);
			if (parse_message(m, p, &t->append[i], d) < 0)
				goto oom;
		}
	}
	if (fs.seen[5]) {
		cJSON *r = (cJSON *)fs.seen[5];
		if (!cJSON_IsObject(r))
			trace_diag_add(d, "response", "must be an object, not %s", jsonh_type(r));
		else if (parse_response(r, &t->response, d) < 0)
			goto oom;
	}
	if (fs.seen[6]) {
		t->recorded = take(root, (cJSON *)fs.seen[6], 1, "", "recorded", d);
		if (t->recorded)
			check_recorded(t->recorded, d);
	}
	*out = t;
	return 0;
oom:
	tr_turn_free(t);
	return -1;
}

static const char *const session_fields[] = {"type", "format", "id", "parent", "spawned_at_turn",
					      "source", "model", "system", "tools", "meta"};

static bool format_ok(const char *f)
{
	size_t n = strlen(TRACE_FORMAT);
	if (strncmp(f, TRACE_FORMAT, n))
		return false;
	if (!f[n])
		return true;
	if (f[n] != '.' || !f[n + 1])
		return false;
	for (const char *p = f + n + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static void check_tools(const cJSON *tools, struct trace_diag *d)
{
	int i = 0;
	for (const cJSON *t = tools->child; t; t = t->next, i++) {
		char p[64];
		snprintf(p, sizeof p, "tools[%d]", i);
		if (!cJSON_IsObject(t)) {
			trace_diag_add(d, p, "must be an object, not %s", jsonh_type(t));
			continue;
		}
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
		const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
		const cJSON *name = fn ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
		char f[112];
		if (!cJSON_IsString(type) || strcmp(type->valuestring, "function")) {
			fpath(f, sizeof f, p, "type");
			trace_diag_add(d, f, "must be \"function\"");
		}
		if (!cJSON_IsObject(fn)) {
			fpath(f, sizeof f, p, "function");
			trace_diag_add(d, f, "must be an object with a name");
			continue;
		}
		fpath(f, sizeof f, p, "function.name");
		if (!cJSON_IsString(name) || !*name->valuestring) {
			trace_diag_add(d, f, "must be a non-empty string");
			continue;
		}
		int j = 0;
		for (const cJSON *u = tools->child; u != t; u = u->next, j++) {
			const cJSON *ufn = cJSON_GetObjectItemCaseSensitive(u, "function");
			const cJSON *un = ufn ? cJSON_GetObjectItemCaseSensitive(ufn, "name") : NULL;
			if (cJSON_IsString(un) && !strcmp(un->valuestring, name->valuestring)) {
				trace_diag_add(d, f, "duplicate tool name '%.60s' (also tools[%d])",
					       name->valuestring, j);
				break;
			}
		}
	}
}

static int parse_session(cJSON *root, struct tr_session **out, struct trace_diag *d)
{
	*out = NULL;
	struct tr_session *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	s->spawned_at_turn = -1;
	struct fieldset fs = {session_fields, 10, {0}};
	if (walk_fields(root, &fs, &s->extra, "", d) < 0)
		goto oom;
	if (!fs.seen[1])
		trace_diag_add(d, "format", "missing field (expected \"" TRACE_FORMAT "\")");
	if (get_str(fs.seen[1], "", "format", false, &s->format, NULL, d) < 0)
		goto oom;
	if (s->format && !format_ok(s->format))
		trace_diag_add(d, "format", "unsupported format '%.60s' (this reader reads " TRACE_FORMAT
			       " and its minor revisions)", s->format);
	if (!fs.seen[2])
		trace_diag_add(d, "id", "missing field (the session id)");
	if (get_str(fs.seen[2], "", "id", false, &s->id, NULL, d) < 0)
		goto oom;
	if (s->id && !*s->id)
		trace_diag_add(d, "id", "must not be empty");
	if (get_str(fs.seen[3], "", "parent", false, &s->parent, NULL, d) < 0)
		goto oom;
	if (s->parent && !*s->parent)
		trace_diag_add(d, "parent", "must not be empty");
	s->spawned_at_turn = get_int(fs.seen[4], "", "spawned_at_turn", 0, d);
	if (fs.seen[3] && !fs.seen[4])
		trace_diag_add(d, "spawned_at_turn", "required when 'parent' is given");
	if (!fs.seen[3] && fs.seen[4])
		trace_diag_add(d, "spawned_at_turn", "given without 'parent'");
	s->source = take(root, (cJSON *)fs.seen[5], 1, "", "source", d);
	if (get_str(fs.seen[6], "", "model", false, &s->model, NULL, d) < 0 ||
	    get_str(fs.seen[7], "", "system", false, &s->system, NULL, d) < 0)
		goto oom;
	s->tools = take(root, (cJSON *)fs.seen[8], 0, "", "tools", d);
	if (s->tools)
		check_tools(s->tools, d);
	s->meta = take(root, (cJSON *)fs.seen[9], 1, "", "meta", d);
	*out = s;
	return 0;
oom:
	tr_session_free(s);
	return -1;
}

/* cJSON turns \u0000 into a NUL that silently cuts the string; refuse it. */
static long find_nul_escape(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4))
			return (long)i;
		i++; /* skip the escaped character */
	}
	return -1;
}

int trace_parse_line(const char *line, size_t len, struct trace_item *item, struct trace_diag *d)
{
	memset(item, 0, sizeof *item);
	long nul = find_nul_escape(line, len);
	if (nul >= 0) {
		trace_diag_add(d, "", "\\u0000 in a string at column %ld (NUL is not allowed)", nul + 1);
		return -1;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	if (!root) {
		long col = end ? (long)(end - line) + 1 : 1;
		if (!end) {
			const char *ep = cJSON_GetErrorPtr();
			if (ep >= line && ep <= line + len)
				col = (long)(ep - line) + 1;
		}
		trace_diag_add(d, "", "invalid JSON near column %ld", col);
		return -1;
	}
	/* anything but blanks after the value is an error */
	for (const char *p = end; p && p < line + len; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r') {
			trace_diag_add(d, "", "unexpected text after the JSON object at column %ld",
				       (long)(p - line) + 1);
			cJSON_Delete(root);
			return -1;
		}
	int rc = -1;
	if (!cJSON_IsObject(root)) {
		trace_diag_add(d, "", "a line must be a JSON object, not %s", jsonh_type(root));
		goto out;
	}
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (!type) {
		trace_diag_add(d, "type", "missing field (\"session\" or \"turn\")");
		goto out;
	}
	if (!cJSON_IsString(type)) {
		trace_diag_add(d, "type", "must be a string, not %s", jsonh_type(type));
		goto out;
	}
	size_t before = d->n + d->dropped;
	if (!strcmp(type->valuestring, "session")) {
		if (parse_session(root, &item->session, d) < 0) {
			trace_diag_add(d, "", "out of memory");
			goto out;
		}
		item->kind = TRACE_ITEM_SESSION;
	} else if (!strcmp(type->valuestring, "turn")) {
		if (parse_turn(root, &item->turn, d) < 0) {
			trace_diag_add(d, "", "out of memory");
			goto out;
		}
		item->kind = TRACE_ITEM_TURN;
	} else {
		trace_diag_add(d, "type", "unknown line type '%.40s' (expected \"session\" or \"turn\")",
			       type->valuestring);
		d->unknown_type = (d->n + d->dropped == before + 1);
		goto out;
	}
	rc = (d->n + d->dropped == before) ? 0 : -1;
	if (rc < 0)
		trace_item_clear(item);
out:
	cJSON_Delete(root);
	return rc;
}

/* ---- writing ----------------------------------------------------------- */

static int put_key(struct buf *b, bool *first, const char *k)
{
	if (!*first && buf_putc(b, ',') < 0)
		return -1;
	*first = false;
	if (jsonh_put_string(b, k, strlen(k)) < 0)
		return -1;
	return buf_putc(b, ':');
}

static int put_str(struct buf *b, bool *first, const char *k, const char *v, size_t n)
{
	if (put_key(b, first, k) < 0)
		return -1;
	return jsonh_put_string(b, v, n);
}

static int put_int(struct buf *b, bool *first, const char *k, int64_t v)
{
	if (put_key(b, first, k) < 0)
		return -1;
	return buf_printf(b, "%lld", (long long)v);
}

static int put_json(struct buf *b, bool *first, const char *k, const cJSON *v)
{
	if (put_key(b, first, k) < 0)
		return -1;
	return jsonh_put(b, v);
}

static int put_extra(struct buf *b, bool *first, const cJSON *extra)
{
	if (!extra)
		return 0;
	for (const cJSON *c = extra->child; c; c = c->next)
		if (put_json(b, first, c->string, c) < 0)
			return -1;
	return 0;
}

static int put_calls(struct buf *b, bool *first, const struct tr_tool_call *calls, size_t n)
{
	if (!n)
		return 0;
	if (put_key(b, first, "tool_calls") < 0 || buf_putc(b, '[') < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		bool f = true;
		if ((i && buf_putc(b, ',') < 0) || buf_putc(b, '{') < 0)
			return -1;
		const char *id = calls[i].id ? calls[i].id : "";
		const char *name = calls[i].name ? calls[i].name : "";
		const char *args = calls[i].arguments ? calls[i].arguments : "{}";
		if (put_str(b, &f, "id", id, strlen(id)) < 0 ||
		    put_str(b, &f, "name", name, strlen(name)) < 0 ||
		    put_str(b, &f, "arguments", args, strlen(args)) < 0 || buf_putc(b, '}') < 0)
			return -1;
	}
	return buf_putc(b, ']');
}

/* A number as cJSON prints it, so that parse → write is stable. */
static int put_double(struct buf *b, bool *first, const char *k, double v)
{
	if (put_key(b, first, k) < 0)
		return -1;
	cJSON *n = cJSON_CreateNumber(v);
	if (!n)
		return -1;
	int rc = jsonh_put(b, n);
	cJSON_Delete(n);
	return rc;
}

static int message_write(const struct tr_message *m, struct buf *b)
{
	bool f = true;
	if (buf_putc(b, '{') < 0)
		return -1;
	const char *role = tr_role_name(m->role);
	if (put_str(b, &f, "role", role, strlen(role)) < 0)
		return -1;
	if (m->content && put_str(b, &f, "content", m->content, m->content_len) < 0)
		return -1;
	if (m->synth) {
		bool g = true;
		if (put_key(b, &f, "synthetic") < 0 || buf_putc(b, '{') < 0 ||
		    put_int(b, &g, "tokens", m->synth->tokens) < 0)
			return -1;
		if (m->synth->n_blocks) {
			if (put_key(b, &g, "blocks") < 0 || buf_putc(b, '[') < 0)
				return -1;
			for (size_t i = 0; i < m->synth->n_blocks; i++)
				if (buf_printf(b, i ? ",%lld" : "%lld", (long long)m->synth->blocks[i]) < 0)
					return -1;
			if (buf_putc(b, ']') < 0 ||
			    put_int(b, &g, "block_tokens", m->synth->block_tokens) < 0)
				return -1;
		}
		if (buf_putc(b, '}') < 0)
			return -1;
	}
	if (put_calls(b, &f, m->calls, m->n_calls) < 0)
		return -1;
	if (m->tool_call_id && put_str(b, &f, "tool_call_id", m->tool_call_id, strlen(m->tool_call_id)) < 0)
		return -1;
	if (m->name && put_str(b, &f, "name", m->name, strlen(m->name)) < 0)
		return -1;
	if (put_extra(b, &f, m->extra) < 0)
		return -1;
	return buf_putc(b, '}');
}

int tr_turn_write(const struct tr_turn *t, struct buf *b)
{
	bool f = true;
	if (buf_putc(b, '{') < 0 || put_str(b, &f, "type", "turn", 4) < 0 || put_int(b, &f, "i", t->i) < 0)
		return -1;
	if (t->has_t && put_double(b, &f, "t", t->t) < 0)
		return -1;
	if (t->keep >= 0 && put_int(b, &f, "keep", t->keep) < 0)
		return -1;
	if (put_key(b, &f, "append") < 0 || buf_putc(b, '[') < 0)
		return -1;
	for (size_t i = 0; i < t->n_append; i++)
		if ((i && buf_putc(b, ',') < 0) || message_write(&t->append[i], b) < 0)
			return -1;
	if (buf_putc(b, ']') < 0)
		return -1;
	const struct tr_response *r = t->response;
	if (r) {
		bool g = true;
		if (put_key(b, &f, "response") < 0 || buf_putc(b, '{') < 0)
			return -1;
		if (r->content && put_str(b, &g, "content", r->content, r->content_len) < 0)
			return -1;
		if (r->reasoning && put_str(b, &g, "reasoning", r->reasoning, strlen(r->reasoning)) < 0)
			return -1;
		if (r->reasoning_tokens >= 0 && put_int(b, &g, "reasoning_tokens", r->reasoning_tokens) < 0)
			return -1;
		if (put_calls(b, &g, r->calls, r->n_calls) < 0)
			return -1;
		if (r->output_tokens >= 0 && put_int(b, &g, "output_tokens", r->output_tokens) < 0)
			return -1;
		if (r->finish && put_str(b, &g, "finish", r->finish, strlen(r->finish)) < 0)
			return -1;
		if (put_extra(b, &g, r->extra) < 0 || buf_putc(b, '}') < 0)
			return -1;
	}
	if (t->recorded && put_json(b, &f, "recorded", t->recorded) < 0)
		return -1;
	if (put_extra(b, &f, t->extra) < 0)
		return -1;
	return buf_putc(b, '}');
}

int tr_session_write(const struct tr_session *s, struct buf *b)
{
	bool f = true;
	const char *fmt = s->format ? s->format : TRACE_FORMAT;
	const char *id = s->id ? s->id : "";
	if (buf_putc(b, '{') < 0 || put_str(b, &f, "type", "session", 7) < 0 ||
	    put_str(b, &f, "format", fmt, strlen(fmt)) < 0 || put_str(b, &f, "id", id, strlen(id)) < 0)
		return -1;
	if (s->parent && (put_str(b, &f, "parent", s->parent, strlen(s->parent)) < 0 ||
			  put_int(b, &f, "spawned_at_turn", s->spawned_at_turn < 0 ? 0 : s->spawned_at_turn) < 0))
		return -1;
	if (s->source && put_json(b, &f, "source", s->source) < 0)
		return -1;
	if (s->model && put_str(b, &f, "model", s->model, strlen(s->model)) < 0)
		return -1;
	if (s->system && put_str(b, &f, "system", s->system, strlen(s->system)) < 0)
		return -1;
	if (s->tools && put_json(b, &f, "tools", s->tools) < 0)
		return -1;
	if (s->meta && put_json(b, &f, "meta", s->meta) < 0)
		return -1;
	if (put_extra(b, &f, s->extra) < 0)
		return -1;
	return buf_putc(b, '}');
}

/* ---- token estimates --------------------------------------------------- */

int64_t tr_calls_tokens(const struct tr_tool_call *calls, size_t n)
{
	int64_t t = 0;
	for (size_t i = 0; i < n; i++) {
		if (calls[i].name)
			t += tokest_text(calls[i].name, strlen(calls[i].name));
		if (calls[i].arguments)
			t += tokest_text(calls[i].arguments, strlen(calls[i].arguments));
		t += TR_TOOL_CALL_OVERHEAD_TOKENS;
	}
	return t;
}

int64_t tr_message_tokens(const struct tr_message *m)
{
	int64_t t = TR_MESSAGE_OVERHEAD_TOKENS;
	if (m->synth)
		t += m->synth->tokens;
	else if (m->content)
		t += tokest_text(m->content, m->content_len);
	return t + tr_calls_tokens(m->calls, m->n_calls);
}

int64_t tr_response_history_tokens(const struct tr_response *r)
{
	if (!r)
		return 0;
	int64_t t = TR_MESSAGE_OVERHEAD_TOKENS;
	if (r->content)
		t += tokest_text(r->content, r->content_len);
	return t + tr_calls_tokens(r->calls, r->n_calls);
}

int64_t tr_response_output_tokens(const struct tr_response *r)
{
	if (!r)
		return 1;
	if (r->output_tokens >= 1)
		return r->output_tokens;
	int64_t t = 0;
	if (r->content)
		t += tokest_text(r->content, r->content_len);
	t += tr_calls_tokens(r->calls, r->n_calls);
	if (r->reasoning)
		t += tokest_text(r->reasoning, strlen(r->reasoning));
	else if (r->reasoning_tokens > 0)
		t += r->reasoning_tokens;
	return t < 1 ? 1 : t;
}

int64_t tr_session_prefix_tokens(const struct tr_session *s)
{
	int64_t t = 0;
	if (s->system && *s->system)
		t += TR_MESSAGE_OVERHEAD_TOKENS + tokest_text(s->system, strlen(s->system));
	if (s->tools && cJSON_GetArraySize(s->tools) > 0) {
		char *txt = cJSON_PrintUnformatted(s->tools);
		if (txt) {
			t += tokest_text(txt, strlen(txt));
			cJSON_free(txt);
		}
	}
	return t;
}
