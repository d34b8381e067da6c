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
	d->warning = false;
	d->line_kind = TRACE_ITEM_NONE;
}

void trace_diag_add(struct trace_diag *d, const char *field, const char *fmt, ...)
{
	if (d->n >= TRACE_DIAG_MAX) {
		d->dropped++;
		return;
	}
	snprintf(d->p[d->n].field, sizeof d->p[d->n].field, "%s", field);
	d->p[d->n].col = 0;
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

/* Messages follow traces/FORMAT.md section 10 word for word. */

static void fpath(char *out, size_t n, const char *path, const char *field)
{
	snprintf(out, n, "%s%s%s", path, *path ? "." : "", field);
}

/* What a value is, for "expected X, got Y": a type name, or the number
 * itself when a number was the wrong kind of number. */
static const char *got(const cJSON *v, char *tmp, size_t n)
{
	if (cJSON_IsNumber(v)) {
		snprintf(tmp, n, "%.17g", v->valuedouble);
		return tmp;
	}
	return jsonh_type(v);
}

static void bad_type(struct trace_diag *d, const char *f, const char *want, const cJSON *v)
{
	char tmp[32];
	trace_diag_add(d, f, "expected %s, got %s", want, cJSON_IsNumber(v) ? "number" : got(v, tmp, sizeof tmp));
}

static void missing(struct trace_diag *d, const char *path, const char *field)
{
	char f[112];
	fpath(f, sizeof f, path, field);
	trace_diag_add(d, f, "missing required field");
}

/* Every member name of a spec-defined object appears once. */
static void check_dups(const cJSON *obj, const char *path, struct trace_diag *d)
{
	for (const cJSON *c = obj->child; c; c = c->next)
		for (const cJSON *e = obj->child; e != c; e = e->next)
			if (c->string && e->string && !strcmp(c->string, e->string)) {
				char f[112];
				fpath(f, sizeof f, path, c->string);
				trace_diag_add(d, f, "duplicate field");
				break;
			}
}

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
		fpath(f, sizeof f, path, k);
		if (i < fs->n_known) {
			if (fs->seen[i])
				trace_diag_add(d, f, "duplicate field");
			else
				fs->seen[i] = c;
		} else {
			/* unknown members are kept as they are, duplicates included */
			if (!*extra && !(*extra = cJSON_CreateObject()))
				return -1;
			cJSON_DetachItemViaPointer(obj, c);
			cJSON_AddItemToObject(*extra, k, c);
		}
		c = next;
	}
	return 0;
}

/* Reads an optional string field into *out (NULL when absent). Returns -1 on
 * OOM only; type problems go to d. */
static int get_str(const cJSON *v, const char *path, const char *field, char **out, size_t *len,
		   struct trace_diag *d)
{
	*out = NULL;
	if (len)
		*len = 0;
	if (!v)
		return 0;
	if (!cJSON_IsString(v)) {
		char f[112];
		fpath(f, sizeof f, path, field);
		bad_type(d, f, "string", v);
		return 0;
	}
	size_t n = strlen(v->valuestring);
	if (!(*out = dupn(v->valuestring, n)))
		return -1;
	if (len)
		*len = n;
	return 0;
}

/* Reads an optional integer field >= min; -1 when absent or bad. */
static int64_t get_int(const cJSON *v, const char *path, const char *field, int64_t min,
		       struct trace_diag *d)
{
	if (!v)
		return -1;
	char f[112], tmp[32];
	fpath(f, sizeof f, path, field);
	int64_t x;
	if (!cJSON_IsNumber(v)) {
		bad_type(d, f, "integer", v);
		return -1;
	}
	double dv = v->valuedouble;
	if (dv == floor(dv) && !jsonh_int(v, &x)) {
		trace_diag_add(d, f, "integer out of range");
		return -1;
	}
	if (!jsonh_int(v, &x)) {
		trace_diag_add(d, f, "expected integer, got %s", got(v, tmp, sizeof tmp));
		return -1;
	}
	if (x < min) {
		trace_diag_add(d, f, "must be >= %lld", (long long)min);
		return -1;
	}
	return x;
}

/* Checks an optional number field >= 0. */
static bool get_num(const cJSON *v, const char *path, const char *field, double *out, struct trace_diag *d)
{
	if (!v)
		return false;
	char f[112];
	fpath(f, sizeof f, path, field);
	if (!cJSON_IsNumber(v)) {
		bad_type(d, f, "number", v);
		return false;
	}
	if (!isfinite(v->valuedouble)) {
		trace_diag_add(d, f, "number out of range");
		return false;
	}
	if (v->valuedouble < 0) {
		trace_diag_add(d, f, "must be >= 0");
		return false;
	}
	*out = v->valuedouble;
	return true;
}

/* Moves v out of its parent (so the parsed root can be freed) when it is an
 * object (want_object) or an array; reports otherwise. */
static cJSON *take(cJSON *parent, cJSON *v, int want_object, const char *path, const char *field,
		   struct trace_diag *d)
{
	if (!v)
		return NULL;
	bool ok = want_object ? cJSON_IsObject(v) : cJSON_IsArray(v);
	if (!ok) {
		char f[112];
		fpath(f, sizeof f, path, field);
		bad_type(d, f, want_object ? "object" : "array", v);
		return NULL;
	}
	return cJSON_DetachItemViaPointer(parent, v);
}

static int parse_calls(const cJSON *arr, const char *path, struct tr_tool_call **out, size_t *n_out,
		       struct trace_diag *d)
{
	*out = NULL;
	*n_out = 0;
	if (!arr)
		return 0;
	char f[112];
	fpath(f, sizeof f, path, "tool_calls");
	if (!cJSON_IsArray(arr)) {
		bad_type(d, f, "array", arr);
		return 0;
	}
	int n = cJSON_GetArraySize(arr);
	if (!n) {
		trace_diag_add(d, f, "must not be empty");
		return 0;
	}
	struct tr_tool_call *calls = calloc((size_t)n, sizeof *calls);
	if (!calls)
		return -1;
	int i = 0;
	for (const cJSON *c = arr->child; c; c = c->next, i++) {
		char p[112], q[112];
		snprintf(p, sizeof p, "%s[%d]", f, i);
		if (!cJSON_IsObject(c)) {
			bad_type(d, p, "object", c);
			continue;
		}
		check_dups(c, p, d);
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
		const cJSON *args = cJSON_GetObjectItemCaseSensitive(c, "arguments");
		if (!id)
			missing(d, p, "id");
		if (!name)
			missing(d, p, "name");
		if (!args)
			missing(d, p, "arguments");
		if (get_str(id, p, "id", &calls[i].id, NULL, d) < 0 ||
		    get_str(name, p, "name", &calls[i].name, NULL, d) < 0 ||
		    get_str(args, p, "arguments", &calls[i].arguments, NULL, d) < 0)
			goto oom;
		if (calls[i].id && !*calls[i].id) {
			fpath(q, sizeof q, p, "id");
			trace_diag_add(d, q, "must not be empty");
		}
		if (calls[i].name && !*calls[i].name) {
			fpath(q, sizeof q, p, "name");
			trace_diag_add(d, q, "must not be empty");
		}
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
		bad_type(d, f, "object", v);
		return 0;
	}
	check_dups(v, f, d);
	struct tr_synth *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(v, "tokens");
	const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(v, "blocks");
	const cJSON *bt = cJSON_GetObjectItemCaseSensitive(v, "block_tokens");
	size_t before = d->n + d->dropped;
	if (!tok)
		missing(d, f, "tokens");
	s->tokens = get_int(tok, f, "tokens", 1, d);
	s->block_tokens = get_int(bt, f, "block_tokens", 1, d);
	char bf[112];
	fpath(bf, sizeof bf, f, "blocks");
	if (blocks) {
		if (!cJSON_IsArray(blocks)) {
			bad_type(d, bf, "array", blocks);
		} else {
			int n = cJSON_GetArraySize(blocks);
			if (n && !(s->blocks = calloc((size_t)n, sizeof *s->blocks))) {
				free(s);
				return -1;
			}
			int i = 0;
			for (const cJSON *b = blocks->child; b; b = b->next, i++) {
				char ef[112];
				snprintf(ef, sizeof ef, "%s[%d]", bf, i);
				int64_t x = get_int(b, "", ef, 0, d);
				s->blocks[i] = x < 0 ? 0 : x;
			}
			s->n_blocks = (size_t)n;
			if (!bt) {
				char bq[112];
				fpath(bq, sizeof bq, f, "block_tokens");
				trace_diag_add(d, bq, "required with blocks");
			}
		}
	} else if (bt) {
		char bq[112];
		fpath(bq, sizeof bq, f, "block_tokens");
		trace_diag_add(d, bq, "only allowed with blocks");
	}
	if (d->n + d->dropped == before && s->n_blocks && s->block_tokens > 0 && s->tokens > 0) {
		/* ceil convention: only the last block may be cut */
		int64_t max_blocks = (s->tokens + s->block_tokens - 1) / s->block_tokens;
		if ((int64_t)s->n_blocks > max_blocks)
			trace_diag_add(d, bf, "%zu blocks of %lld tokens exceed tokens %lld", s->n_blocks,
				       (long long)s->block_tokens, (long long)s->tokens);
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
		bad_type(d, path, "object", obj);
		return 0;
	}
	struct fieldset fs = {message_fields, 6, {0}};
	if (walk_fields(obj, &fs, &m->extra, path, d) < 0)
		return -1;
	const cJSON *role = fs.seen[0], *content = fs.seen[1], *synth = fs.seen[2];
	const cJSON *calls = fs.seen[3], *tcid = fs.seen[4], *name = fs.seen[5];
	char f[112];
	fpath(f, sizeof f, path, "role");
	bool role_ok = false;
	if (!role)
		missing(d, path, "role");
	else if (!cJSON_IsString(role))
		bad_type(d, f, "string", role);
	else if (tr_role_parse(role->valuestring, &m->role) < 0)
		trace_diag_add(d, f, "unknown role '%.40s'", role->valuestring);
	else
		role_ok = true;
	if (get_str(content, path, "content", &m->content, &m->content_len, d) < 0)
		return -1;
	if (synth && parse_synth(synth, path, &m->synth, d) < 0)
		return -1;
	if (parse_calls(calls, path, &m->calls, &m->n_calls, d) < 0)
		return -1;
	if (get_str(tcid, path, "tool_call_id", &m->tool_call_id, NULL, d) < 0 ||
	    get_str(name, path, "name", &m->name, NULL, d) < 0)
		return -1;
	if (!role_ok)
		return 0;
	if (content && synth)
		trace_diag_add(d, path, "needs exactly one of content or synthetic");
	else if (!content && !synth && !(m->role == TR_ASSISTANT && calls))
		trace_diag_add(d, path, "needs exactly one of content or synthetic");
	if (calls && m->role != TR_ASSISTANT) {
		fpath(f, sizeof f, path, "tool_calls");
		trace_diag_add(d, f, "only allowed on role assistant");
	}
	fpath(f, sizeof f, path, "tool_call_id");
	if (m->role == TR_TOOL && !tcid)
		trace_diag_add(d, f, "missing required field");
	else if (m->role != TR_TOOL && tcid)
		trace_diag_add(d, f, "only allowed on role tool");
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
	if (get_str(fs.seen[0], "response", "content", &r->content, &r->content_len, d) < 0 ||
	    get_str(fs.seen[1], "response", "reasoning", &r->reasoning, NULL, d) < 0)
		goto oom;
	r->reasoning_tokens = get_int(fs.seen[2], "response", "reasoning_tokens", 0, d);
	if (parse_calls(fs.seen[3], "response", &r->calls, &r->n_calls, d) < 0)
		goto oom;
	r->output_tokens = get_int(fs.seen[4], "response", "output_tokens", 1, d);
	if (get_str(fs.seen[5], "response", "finish", &r->finish, NULL, d) < 0)
		goto oom;
	if (r->finish && strcmp(r->finish, "stop") && strcmp(r->finish, "length") &&
	    strcmp(r->finish, "tool_calls"))
		trace_diag_add(d, "response.finish", "unknown finish reason '%.40s'", r->finish);
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
	check_dups(rec, "recorded", d);
	int64_t v[3];
	for (size_t i = 0; i < 3; i++)
		v[i] = get_int(cJSON_GetObjectItemCaseSensitive(rec, ints[i]), "recorded", ints[i], 0, d);
	for (size_t i = 0; i < 2; i++) {
		double x;
		(void)get_num(cJSON_GetObjectItemCaseSensitive(rec, nums[i]), "recorded", nums[i], &x, d);
	}
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(rec, "model");
	if (model && !cJSON_IsString(model))
		bad_type(d, "recorded.model", "string", model);
	if (v[0] >= 0 && v[1] >= 0 && v[1] > v[0])
		trace_diag_add(d, "recorded.cached_tokens", "exceeds prompt_tokens");
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
		missing(d, "", "i");
	t->i = get_int(fs.seen[1], "", "i", 0, d);
	t->has_t = get_num(fs.seen[2], "", "t", &t->t, d);
	t->keep = get_int(fs.seen[3], "", "keep", 0, d);
	const cJSON *app = fs.seen[4];
	if (!app) {
		missing(d, "", "append");
	} else if (!cJSON_IsArray(app)) {
		bad_type(d, "append", "array", app);
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
			bad_type(d, "response", "object", r);
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

static void check_source(const cJSON *src, struct trace_diag *d)
{
	check_dups(src, "source", d);
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(src, "kind");
	const cJSON *file = cJSON_GetObjectItemCaseSensitive(src, "file");
	const cJSON *syn = cJSON_GetObjectItemCaseSensitive(src, "synthesized");
	if (kind && !cJSON_IsString(kind))
		bad_type(d, "source.kind", "string", kind);
	if (file && !cJSON_IsString(file))
		bad_type(d, "source.file", "string", file);
	if (syn && !cJSON_IsArray(syn)) {
		bad_type(d, "source.synthesized", "array", syn);
	} else if (syn) {
		int i = 0;
		for (const cJSON *c = syn->child; c; c = c->next, i++)
			if (!cJSON_IsString(c)) {
				char f[64];
				snprintf(f, sizeof f, "source.synthesized[%d]", i);
				bad_type(d, f, "string", c);
			}
	}
}

static void check_tools(const cJSON *tools, struct trace_diag *d)
{
	int i = 0;
	for (const cJSON *t = tools->child; t; t = t->next, i++) {
		char p[64], f[112];
		snprintf(p, sizeof p, "tools[%d]", i);
		if (!cJSON_IsObject(t)) {
			bad_type(d, p, "object", t);
			continue;
		}
		check_dups(t, p, d);
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
		const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
		fpath(f, sizeof f, p, "type");
		if (!type)
			missing(d, p, "type");
		else if (!cJSON_IsString(type))
			bad_type(d, f, "string", type);
		else if (strcmp(type->valuestring, "function"))
			trace_diag_add(d, f, "unsupported tool type '%.40s'", type->valuestring);
		fpath(f, sizeof f, p, "function");
		if (!fn) {
			missing(d, p, "function");
			continue;
		}
		if (!cJSON_IsObject(fn)) {
			bad_type(d, f, "object", fn);
			continue;
		}
		check_dups(fn, f, d);
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
		const cJSON *desc = cJSON_GetObjectItemCaseSensitive(fn, "description");
		const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
		char g[112];
		if (desc && !cJSON_IsString(desc)) {
			fpath(g, sizeof g, f, "description");
			bad_type(d, g, "string", desc);
		}
		if (params && !cJSON_IsObject(params)) {
			fpath(g, sizeof g, f, "parameters");
			bad_type(d, g, "object", params);
		}
		fpath(g, sizeof g, f, "name");
		if (!name) {
			missing(d, f, "name");
			continue;
		}
		if (!cJSON_IsString(name)) {
			bad_type(d, g, "string", name);
			continue;
		}
		if (!*name->valuestring) {
			trace_diag_add(d, g, "must not be empty");
			continue;
		}
		for (const cJSON *u = tools->child; u != t; u = u->next) {
			const cJSON *ufn = cJSON_GetObjectItemCaseSensitive(u, "function");
			const cJSON *un = cJSON_IsObject(ufn) ? cJSON_GetObjectItemCaseSensitive(ufn, "name") : NULL;
			if (cJSON_IsString(un) && !strcmp(un->valuestring, name->valuestring)) {
				trace_diag_add(d, g, "duplicate tool name '%.60s'", name->valuestring);
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
		missing(d, "", "format");
	if (get_str(fs.seen[1], "", "format", &s->format, NULL, d) < 0)
		goto oom;
	if (s->format && !format_ok(s->format))
		trace_diag_add(d, "format", "unsupported format '%.60s'", s->format);
	if (!fs.seen[2])
		missing(d, "", "id");
	if (get_str(fs.seen[2], "", "id", &s->id, NULL, d) < 0)
		goto oom;
	if (s->id && !*s->id)
		trace_diag_add(d, "id", "must not be empty");
	if (get_str(fs.seen[3], "", "parent", &s->parent, NULL, d) < 0)
		goto oom;
	if (s->parent && !*s->parent)
		trace_diag_add(d, "parent", "must not be empty");
	s->spawned_at_turn = get_int(fs.seen[4], "", "spawned_at_turn", 0, d);
	if (fs.seen[3] && !fs.seen[4])
		trace_diag_add(d, "spawned_at_turn", "required with parent");
	if (!fs.seen[3] && fs.seen[4])
		trace_diag_add(d, "spawned_at_turn", "only allowed with parent");
	s->source = take(root, (cJSON *)fs.seen[5], 1, "", "source", d);
	if (s->source)
		check_source(s->source, d);
	if (get_str(fs.seen[6], "", "model", &s->model, NULL, d) < 0 ||
	    get_str(fs.seen[7], "", "system", &s->system, NULL, d) < 0)
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

/* cJSON turns \u0000 into a NUL that silently cuts the string; refuse it.
 * Returns the 0-based offset of the escape, or -1. */
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
		trace_diag_add(d, "", "string contains U+0000");
		d->p[d->n - 1].col = nul + 1;
		return -1;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	if (!root) {
		long col = (end && end >= line && end <= line + len) ? (long)(end - line) + 1 : 1;
		trace_diag_add(d, "", "invalid JSON: syntax error");
		d->p[d->n - 1].col = col;
		return -1;
	}
	/* anything but blanks after the value is an error */
	for (const char *p = end; p && p < line + len; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
			trace_diag_add(d, "", "invalid JSON: text after the object");
			d->p[d->n - 1].col = (long)(p - line) + 1;
			cJSON_Delete(root);
			return -1;
		}
	int rc = -1;
	if (!cJSON_IsObject(root)) {
		trace_diag_add(d, "", "line is not a JSON object");
		goto out;
	}
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (!type) {
		missing(d, "", "type");
		goto out;
	}
	if (!cJSON_IsString(type)) {
		bad_type(d, "type", "string", type);
		goto out;
	}
	size_t before = d->n + d->dropped;
	if (!strcmp(type->valuestring, "session")) {
		d->line_kind = TRACE_ITEM_SESSION;
		if (parse_session(root, &item->session, d) < 0) {
			trace_diag_add(d, "", "out of memory");
			goto out;
		}
		item->kind = TRACE_ITEM_SESSION;
	} else if (!strcmp(type->valuestring, "turn")) {
		d->line_kind = TRACE_ITEM_TURN;
		if (parse_turn(root, &item->turn, d) < 0) {
			trace_diag_add(d, "", "out of memory");
			goto out;
		}
		item->kind = TRACE_ITEM_TURN;
	} else {
		trace_diag_add(d, "type", "unknown line type '%.40s'", type->valuestring);
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

static const char *const source_order[] = {"kind", "file", "synthesized"};
static const char *const recorded_order[] = {"prompt_tokens", "cached_tokens", "output_tokens",
					     "ttft_ms", "e2e_ms", "model"};
static const char *const function_order[] = {"name", "description", "parameters"};

static int put_tools(struct buf *b, const cJSON *tools)
{
	if (buf_putc(b, '[') < 0)
		return -1;
	for (const cJSON *t = tools->child; t; t = t->next) {
		if (t != tools->child && buf_putc(b, ',') < 0)
			return -1;
		if (!cJSON_IsObject(t)) {
			if (jsonh_put(b, t) < 0)
				return -1;
			continue;
		}
		/* the tool object in order, with its function object in order */
		bool first = true;
		if (buf_putc(b, '{') < 0)
			return -1;
		for (size_t pass = 0; pass < 3; pass++)
			for (const cJSON *c = t->child; c; c = c->next) {
				bool is_type = c->string && !strcmp(c->string, "type");
				bool is_fn = c->string && !strcmp(c->string, "function");
				if ((pass == 0 && !is_type) || (pass == 1 && !is_fn) || (pass == 2 && (is_type || is_fn)))
					continue;
				if (put_key(b, &first, c->string) < 0)
					return -1;
				if (is_fn ? jsonh_put_ordered(b, c, function_order, 3) < 0 : jsonh_put(b, c) < 0)
					return -1;
			}
		if (buf_putc(b, '}') < 0)
			return -1;
	}
	return buf_putc(b, ']');
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

static int put_double(struct buf *b, bool *first, const char *k, double v)
{
	if (put_key(b, first, k) < 0)
		return -1;
	return jsonh_put_number(b, v);
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
	if (t->recorded && (put_key(b, &f, "recorded") < 0 ||
			    jsonh_put_ordered(b, t->recorded, recorded_order, 6) < 0))
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
	if (s->source && (put_key(b, &f, "source") < 0 || jsonh_put_ordered(b, s->source, source_order, 3) < 0))
		return -1;
	if (s->model && put_str(b, &f, "model", s->model, strlen(s->model)) < 0)
		return -1;
	if (s->system && put_str(b, &f, "system", s->system, strlen(s->system)) < 0)
		return -1;
	if (s->tools && (put_key(b, &f, "tools") < 0 || put_tools(b, s->tools) < 0))
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
		struct buf b = BUF_INIT;
		if (put_tools(&b, s->tools) == 0)
			t += tokest_text(b.data, b.len);
		buf_free(&b);
	}
	return t;
}
