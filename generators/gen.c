/* gen.c: the session engine (see gen.h for the idea). */
#include "gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"
#include "gen_repo.h"
#include "gen_words.h"
#include "jsonh.h"
#include "tokest.h"

static const char *const kind_names[GEN_NKINDS] = {
	"system", "tools", "user", "assistant", "args", "code-c", "code-python", "code-typescript", "code-go",
	"code-rust", "docs", "grep", "list", "test", "build", "git", "web", "ack", "report", "summary", "notes",
};

const char *gen_kind_name(int k) { return k >= 0 && k < GEN_NKINDS ? kind_names[k] : "other"; }

/* ---- plan ---------------------------------------------------------------- */

enum { R_FINAL = GEN_NROLES, R_COMPACT };
enum { A_FIRST, A_TASK, A_RESULT, A_CONTINUE };

#define MIN_ELASTIC 24 /* tokens: a couple of lines */
#define MIN_BODY 8      /* tokens: the least a stretchable result's body gets (a line) */

struct plan {
	int role;            /* of this turn's response */
	int append;          /* what this turn appends */
	int seg;             /* segment (0, or 1 after a compaction) */
	bool elastic;        /* the append has a stretchable part */
	bool paste;          /* a user message carries pasted output (the stretchable part) */
	bool interject;
	bool test_fail;      /* role test/build: the run fails */
	int64_t natural;     /* natural tokens of the stretchable part */
	int64_t max;         /* at most this many */
	int64_t fixed_est;   /* tokens of the fixed part of the append */
	int64_t resp_est;    /* tokens of the response in later prompts */
	int64_t text_tokens; /* visible text of the response */
	int64_t out_tokens;  /* output tokens (visible + reasoning) */
	int64_t args_tokens; /* edit/write payload */
	int64_t min_el;      /* the least the stretchable part can take (wrapper + a line) */
	int64_t min_fixed;   /* the least the fixed part can take */
};

/* What the previous response's action left for its result. */
struct pend {
	int role;
	int file;
	int module;
	int64_t from, count; /* read range, count 0 = whole file */
	bool fail;
	char *tool;
	char *id;
	char *cmd;
	char *path;
	char *body; /* a result computed at call time (subagent report, write ack) */
	int64_t tool_ms;
};

struct hmsg {
	struct tr_message m;
	int64_t tok;
	int kind;
};

struct eng {
	const struct gen_opts *o;
	const struct gen_profile *p;
	bool natural; /* a subagent: natural sizes, no depth target */
	int64_t target;
	char id[160];
	struct rng r_plan, r_text, r_size, r_time, r_id;
	struct gen_repo *repo;
	bool own_repo;
	struct tr_session *ses;
	struct tr_turn *turns;
	size_t n_turns, cap_turns;
	struct hmsg *h;
	size_t nh, caph;
	int64_t prefix, hist;
	struct plan *plan;
	int64_t n_plan;
	/* what each role costs at the least, measured on the profile's templates */
	int64_t call_min[GEN_NROLES], result_min[GEN_NROLES];
	int n_seg;
	int64_t seg_end[2], seg_target[2];
	struct pend call;
	struct tr_response *prev; /* the previous turn's response (owned by its turn) */
	int64_t t_ms;
	int call_seq;
	int module;  /* the module the current task is about */
	int task_file;
	char *summary; /* the compaction summary, for the continuation */
	/* turn 0's fixed messages, built before planning */
	struct tr_message *first;
	int *first_kind;
	size_t n_first;
	int64_t first_tokens;
	/* mode chat */
	int fm; /* history index of the files message, -1 none */
	int chat_files[64];
	int n_chat_files;
	bool files_dirty;
	/* subagents */
	struct gen_session **children;
	size_t n_children, cap_children;
	char date[16];
};

/* ---- small helpers ------------------------------------------------------ */

static int oom(struct ar_err *err) { return ar_err_set(err, AR_ENOMEM, "out of memory"); }

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

static int msg_set(struct tr_message *m, enum tr_role role, const char *text, size_t n)
{
	memset(m, 0, sizeof *m);
	m->role = role;
	if (!(m->content = dup_n(text ? text : "", text ? n : 0)))
		return -1;
	m->content_len = text ? n : 0;
	return 0;
}

static int64_t est(const char *s, size_t n) { return tokest_text(s ? s : "", s ? n : 0); }
static int64_t est_buf(const struct buf *b) { return tokest_text(b->data ? b->data : "", b->len); }

static void sample_date(struct rng *r, char *out, size_t n)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int d = (int)rng_below(r, 365), m = 0;
	while (d >= days[m]) {
		d -= days[m];
		m++;
	}
	snprintf(out, n, "2025-%02d-%02d", m + 1, d + 1);
}

/* Template slots: a key/value list first, then the repository, then words. */
struct kv {
	const char *k;
	const char *v;
};

struct slots {
	struct eng *e;
	const struct kv *kv;
	size_t n;
	bool json; /* escape values for a JSON string */
	int file;
};

static int json_escape_into(struct buf *b, const char *s, size_t n)
{
	size_t before = b->len;
	if (jsonh_put_string(b, s, n) < 0)
		return -1;
	/* drop the quotes jsonh_put_string adds */
	size_t len = b->len - before;
	if (len < 2)
		return 0;
	memmove(b->data + before, b->data + before + 1, len - 2);
	b->len -= 2;
	b->data[b->len] = 0;
	return 0;
}

static int slot_fn(void *ctx, const char *name, size_t n, struct buf *b)
{
	struct slots *s = ctx;
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->kv[i].k) == n && !memcmp(s->kv[i].k, name, n)) {
			const char *v = s->kv[i].v ? s->kv[i].v : "";
			/* *_json values are JSON already */
			bool raw = n > 5 && !memcmp(name + n - 5, "_json", 5);
			if (s->json && !raw)
				return json_escape_into(b, v, strlen(v)) < 0 ? -1 : 1;
			return buf_puts(b, v) < 0 ? -1 : 1;
		}
	struct gen_repo_slots rs = {s->e->repo, &s->e->r_text, s->e->module, s->file};
	if (!s->json)
		return gen_repo_slot(&rs, name, n, b);
	struct buf tmp = BUF_INIT;
	int got = gen_repo_slot(&rs, name, n, &tmp);
	if (got > 0 && json_escape_into(b, tmp.data ? tmp.data : "", tmp.len) < 0)
		got = -1;
	buf_free(&tmp);
	return got;
}

static int expand(struct eng *e, struct buf *b, const char *tmpl, const struct kv *kv, size_t n, bool json)
{
	struct slots s = {e, kv, n, json, e->task_file};
	return gw_expand(b, tmpl ? tmpl : "", &e->r_text, slot_fn, &s);
}

/* ---- history mirror ------------------------------------------------------ */

static int hist_push(struct eng *e, const struct tr_message *m, int kind)
{
	if (e->nh == e->caph) {
		size_t cap = e->caph ? e->caph * 2 : 64;
		struct hmsg *h = realloc(e->h, cap * sizeof *h);
		if (!h)
			return -1;
		e->h = h;
		e->caph = cap;
	}
	struct hmsg *h = &e->h[e->nh];
	if (tr_message_copy(&h->m, m) < 0)
		return -1;
	h->tok = tr_message_tokens(m);
	h->kind = kind;
	e->hist += h->tok;
	e->nh++;
	return 0;
}

static void hist_truncate(struct eng *e, size_t keep)
{
	while (e->nh > keep) {
		e->nh--;
		e->hist -= e->h[e->nh].tok;
		tr_message_clear(&e->h[e->nh].m);
	}
}

static int64_t ctx_now(const struct eng *e) { return e->prefix + e->hist; }

/* Adds m (ownership taken) to turn t's append and to the mirror. */
static int append_msg(struct eng *e, struct tr_turn *t, struct tr_message *m, int kind)
{
	struct tr_message *a = realloc(t->append, (t->n_append + 1) * sizeof *a);
	if (!a) {
		tr_message_clear(m);
		return -1;
	}
	t->append = a;
	t->append[t->n_append++] = *m;
	memset(m, 0, sizeof *m);
	return hist_push(e, &t->append[t->n_append - 1], kind);
}

static int append_text(struct eng *e, struct tr_turn *t, enum tr_role role, const char *s, size_t n, int kind)
{
	struct tr_message m;
	if (msg_set(&m, role, s, n) < 0)
		return -1;
	return append_msg(e, t, &m, kind);
}

static int code_kind(enum gen_lang l)
{
	return l < GEN_LANG_N ? GEN_K_CODE_C + (int)l : GEN_K_DOCS;
}

static int result_kind(const struct eng *e, int role, int file)
{
	switch (role) {
	case GEN_ROLE_READ:
		return file >= 0 ? code_kind(e->repo->files[file].lang) : GEN_K_DOCS;
	case GEN_ROLE_SEARCH:
		return GEN_K_GREP;
	case GEN_ROLE_LIST:
		return GEN_K_LIST;
	case GEN_ROLE_TEST:
		return GEN_K_TEST;
	case GEN_ROLE_BUILD:
		return GEN_K_BUILD;
	case GEN_ROLE_SHELL:
		return GEN_K_GIT;
	case GEN_ROLE_WEB:
		return GEN_K_WEB;
	case GEN_ROLE_TASK:
		return GEN_K_REPORT;
	default:
		return GEN_K_ACK;
	}
}

static void pend_clear(struct pend *c)
{
	free(c->tool);
	free(c->id);
	free(c->cmd);
	free(c->path);
	free(c->body);
	memset(c, 0, sizeof *c);
	c->file = -1;
	c->module = -1;
}

/* ---- prefix: system prompt and tools ----------------------------------- */

static int build_tools(struct eng *e, cJSON **out, const char *const *only, int n_only, struct ar_err *err)
{
	const struct gen_profile *p = e->p;
	cJSON *tools = cJSON_CreateArray();
	if (!tools)
		return oom(err);
	for (const cJSON *t = p->tools ? p->tools->child : NULL; t; t = t->next) {
		const char *name = cJSON_GetObjectItem(cJSON_GetObjectItem(t, "function"), "name")->valuestring;
		bool keep = !only;
		for (int i = 0; i < n_only; i++)
			if (!strcmp(only[i], name))
				keep = true;
		if (keep)
			cJSON_AddItemToArray(tools, cJSON_Duplicate(t, 1));
	}
	/* pad the descriptions with the profile's usage notes up to tools_tokens;
	 * seeded by the profile alone, so every session of a style shares them */
	int n = cJSON_GetArraySize(tools);
	if (!only && p->tools_tokens > 0 && n > 0 && p->n_tool_notes > 0) {
		struct rng r;
		rng_seed(&r, rng_hash(p->name ? p->name : "style") ^ 0x70015);
		struct buf js = BUF_INIT, note = BUF_INIT;
		int64_t have = 0;
		for (int round = 0; round < 4; round++) {
			buf_reset(&js);
			if (jsonh_put(&js, tools) < 0)
				break;
			have = est_buf(&js);
			int64_t gap = p->tools_tokens - have;
			if (gap <= 8)
				break;
			/* notes are counted one by one (escaping adds a little: the next
			 * round's exact figure corrects it) */
			int64_t added = 0;
			int ti = (int)rng_below(&r, (uint64_t)n);
			while (added < gap) {
				cJSON *fn = cJSON_GetObjectItem(cJSON_GetArrayItem(tools, ti), "function");
				cJSON *d = cJSON_GetObjectItem(fn, "description");
				const char *name = cJSON_GetObjectItem(fn, "name")->valuestring;
				struct kv kv[] = {{"tool", name}};
				buf_reset(&note);
				size_t at;
				if (buf_puts(&note, d && cJSON_IsString(d) ? d->valuestring : "") < 0 ||
				    buf_puts(&note, d && *d->valuestring ? "\n- " : "- ") < 0)
					break;
				at = note.len;
				if (expand(e, &note, p->tool_notes[rng_below(&r, (uint64_t)p->n_tool_notes)], kv, 1, false) < 0)
					break;
				added += tokest_text(note.data + at, note.len - at) + 1;
				cJSON_ReplaceItemInObject(fn, "description", cJSON_CreateString(note.data));
				ti = (ti + 1) % n;
			}
		}
		buf_free(&js);
		buf_free(&note);
	}
	*out = tools;
	return 0;
}

static int build_system(struct eng *e, const char *base, int64_t tokens, bool notes, struct buf *b)
{
	const struct gen_profile *p = e->p;
	struct kv kv[] = {{"cwd", e->repo->root}, {"date", e->date}, {"repo", e->repo->name},
			  {"platform", "linux"}, {"lang", gen_lang_name(e->repo->lang)}};
	if (expand(e, b, base, kv, 5, false) < 0)
		return -1;
	if (p->environment && !e->natural) {
		if (b->len && buf_puts(b, "\n\n") < 0)
			return -1;
		if (expand(e, b, p->environment, kv, 5, false) < 0)
			return -1;
	}
	int64_t have = est_buf(b) + 4;
	if (tokens > have + 16) {
		int64_t gap = tokens - have - 4;
		if (notes) {
			if (buf_puts(b, "\n\n") < 0 || gen_repo_notes(e->repo, &e->r_text, gap, b) < 0)
				return -1;
		} else {
			/* a snapshot of the repository state, as agents put in their system prompt */
			if (buf_printf(b, "\n\ngitStatus: This is the git status at the start of the conversation.\nCurrent branch: main\n\n") < 0 ||
			    gen_repo_git(e->repo, &e->r_text, gap - 20, b, NULL) < 0)
				return -1;
		}
	}
	return 0;
}

static int build_session(struct eng *e, int64_t index, const char *parent, int64_t spawned_at, struct ar_err *err)
{
	const struct gen_profile *p = e->p;
	struct tr_session *s = calloc(1, sizeof *s);
	struct buf sys = BUF_INIT;
	if (!s)
		return oom(err);
	e->ses = s;
	s->spawned_at_turn = -1;
	if (!(s->format = strdup(TRACE_FORMAT)) || !(s->id = strdup(e->id)))
		goto fail;
	if (parent) {
		if (!(s->parent = strdup(parent)))
			goto fail;
		s->spawned_at_turn = spawned_at;
	}
	if (p->model && !(s->model = strdup(p->model)))
		goto fail;
	if (e->natural) {
		if (build_system(e, p->sub_system, 0, false, &sys) < 0)
			goto fail;
	} else if (build_system(e, p->system ? p->system : "", p->system_tokens, p->notes_at == GEN_NOTES_SYSTEM,
				&sys) < 0) {
		goto fail;
	}
	if (sys.len && !(s->system = strdup(sys.data)))
		goto fail;
	if (e->natural) {
		if (build_tools(e, &s->tools, (const char *const *)p->sub_tools, p->n_sub_tools, err) < 0)
			goto fail_err;
	} else if (!p->chat && build_tools(e, &s->tools, NULL, 0, err) < 0) {
		goto fail_err;
	}
	if (s->tools && cJSON_GetArraySize(s->tools) == 0) {
		cJSON_Delete(s->tools);
		s->tools = NULL;
	}
	s->source = cJSON_CreateObject();
	cJSON_AddStringToObject(s->source, "kind", "generator");
	s->meta = cJSON_CreateObject();
	cJSON *g = cJSON_AddObjectToObject(s->meta, "generator");
	cJSON_AddStringToObject(g, "style", p->name);
	cJSON_AddNumberToObject(g, "seed", (double)e->o->seed);
	if (!e->natural) {
		cJSON_AddNumberToObject(g, "depth", (double)e->o->depth);
		if (e->o->sessions > 1)
			cJSON_AddNumberToObject(g, "session", (double)(index + 1));
	} else {
		cJSON_AddStringToObject(g, "role", "subagent");
	}
	cJSON_AddStringToObject(g, "language", gen_lang_name(e->repo->lang));
	cJSON_AddStringToObject(g, "repository", e->repo->name);
	if (!e->natural && e->o->compact_permille) {
		cJSON_AddNumberToObject(g, "compact_at", (double)e->o->compact_permille / 1000.0);
		cJSON_AddNumberToObject(g, "context_limit", (double)e->o->context_limit);
	} else if (!e->natural && e->o->context_limit) {
		cJSON_AddNumberToObject(g, "context_limit", (double)e->o->context_limit);
	}
	e->prefix = tr_session_prefix_tokens(s);
	buf_free(&sys);
	return 0;
fail:
	oom(err);
fail_err:
	buf_free(&sys);
	return -1;
}

/* ---- turn 0's fixed messages --------------------------------------------- */

static int push_first(struct eng *e, enum tr_role role, const char *s, size_t n, int kind)
{
	struct tr_message *m = realloc(e->first, (e->n_first + 1) * sizeof *m);
	if (!m)
		return -1;
	e->first = m;
	int *k = realloc(e->first_kind, (e->n_first + 1) * sizeof *k);
	if (!k)
		return -1;
	e->first_kind = k;
	if (msg_set(&e->first[e->n_first], role, s, n) < 0)
		return -1;
	e->first_kind[e->n_first] = kind;
	e->first_tokens += tr_message_tokens(&e->first[e->n_first]);
	e->n_first++;
	return 0;
}

/* The user's request: one or more task sentences, about `tokens` long. */
static int task_text(struct eng *e, int64_t tokens, struct buf *b)
{
	struct gen_repo_slots rs = {e->repo, &e->r_text, e->module, -1};
	struct buf t = BUF_INIT;
	int rc = gw_sentence(&t, GW_TASK, &e->r_text, gen_repo_slot, &rs);
	for (int i = 0; rc == 0 && i < 40 && est_buf(&t) < tokens - 8; i++) {
		rc = buf_puts(&t, i % 3 == 2 ? "\n\n" : " ");
		if (rc == 0)
			rc = gw_sentence(&t, i % 2 ? GW_INTERJECT : GW_DOC, &e->r_text, gen_repo_slot, &rs);
	}
	if (rc == 0) {
		struct kv kv[] = {{"task", t.data ? t.data : ""}, {"cwd", e->repo->root}, {"date", e->date}};
		rc = expand(e, b, e->p->task_template, kv, 3, false);
	}
	buf_free(&t);
	return rc;
}

static int chat_files_message(struct eng *e, struct buf *b);

static int build_first(struct eng *e)
{
	const struct gen_profile *p = e->p;
	struct buf notes = BUF_INIT, b = BUF_INIT;
	int rc = -1;
	if (p->notes_at == GEN_NOTES_FIRST_USER && !e->natural) {
		int64_t nt = gen_dist_sample(&p->notes_tokens, &e->r_size);
		if (nt > 0 && gen_repo_notes(e->repo, &e->r_text, nt, &notes) < 0)
			goto out;
	}
	if (!e->natural) {
		for (int i = 0; i < p->n_first_user; i++) {
			struct kv kv[] = {{"notes", notes.data ? notes.data : ""}, {"cwd", e->repo->root},
					  {"date", e->date}, {"repo", e->repo->name}, {"platform", "linux"}};
			buf_reset(&b);
			if (expand(e, &b, p->first_user[i], kv, 5, false) < 0 ||
			    push_first(e, TR_USER, b.data ? b.data : "", b.len, GEN_K_NOTES) < 0)
				goto out;
		}
		if (p->chat) {
			if (p->map_intro) {
				buf_reset(&b);
				int64_t mt = gen_dist_sample(&p->map_tokens, &e->r_size);
				if (expand(e, &b, p->map_intro, NULL, 0, false) < 0 || buf_puts(&b, "\n") < 0 ||
				    gen_repo_map(e->repo, &e->r_text, mt, &b) < 0 ||
				    push_first(e, TR_USER, b.data, b.len, GEN_K_NOTES) < 0 ||
				    push_first(e, TR_ASSISTANT, p->map_ack ? p->map_ack : "Ok.",
					       strlen(p->map_ack ? p->map_ack : "Ok."), GEN_K_ASSISTANT) < 0)
					goto out;
			}
			int nf = (int)gen_dist_sample(&p->chat_files, &e->r_size);
			for (int i = 0; i < nf && e->n_chat_files < 64; i++) {
				int f = gen_repo_pick_unseen(e->repo, &e->r_plan, GEN_FILE_SRC);
				if (f < 0)
					break;
				int64_t sz = gen_dist_sample(&p->roles[GEN_ROLE_READ].size, &e->r_size);
				if (gen_repo_make(e->repo, f, sz, GEN_NUM_NONE) < 0)
					goto out;
				e->repo->files[f].seen = true;
				e->chat_files[e->n_chat_files++] = f;
				e->module = e->repo->files[f].module >= 0 ? e->repo->files[f].module : e->module;
			}
			buf_reset(&b);
			if (chat_files_message(e, &b) < 0)
				goto out;
			e->fm = (int)e->n_first;
			if (push_first(e, TR_USER, b.data, b.len, GEN_K_NOTES) < 0 ||
			    push_first(e, TR_ASSISTANT, p->files_ack, strlen(p->files_ack), GEN_K_ASSISTANT) < 0)
				goto out;
		}
	}
	rc = 0;
out:
	buf_free(&notes);
	buf_free(&b);
	return rc;
}

/* ---- planning ------------------------------------------------------------ */

static int64_t role_weight(const struct eng *e, int r)
{
	const struct gen_role_def *d = &e->p->roles[r];
	if (!d->present)
		return 0;
	if (e->natural) {
		/* subagents explore with the tools they have */
		if (r != GEN_ROLE_READ && r != GEN_ROLE_SEARCH && r != GEN_ROLE_LIST && r != GEN_ROLE_SHELL)
			return 0;
		bool has = false;
		for (int i = 0; i < e->p->n_sub_tools; i++)
			if (d->tool && !strcmp(e->p->sub_tools[i], d->tool))
				has = true;
		if (!has)
			return 0;
	}
	if (e->p->chat && r != GEN_ROLE_READ && r != GEN_ROLE_TEST && r != GEN_ROLE_EDIT && r != GEN_ROLE_BUILD)
		return 0;
	return d->weight;
}

static int pick_role(struct eng *e, const int *allowed, int n)
{
	int64_t w[GEN_NROLES];
	for (int i = 0; i < n; i++)
		w[i] = role_weight(e, allowed[i]);
	int k = gen_pick(&e->r_plan, w, n);
	return k < 0 ? -1 : allowed[k];
}

/* Appends the roles of one task (ending with R_FINAL) to s. */
static int task_script(struct eng *e, int *s, int cap)
{
	const struct gen_profile *p = e->p;
	int n = 0;
	int calls = (int)gen_dist_sample(e->natural ? &p->sub_calls : &p->calls_per_task, &e->r_plan);
	if (calls < 1)
		calls = 1;
	static const int explore[] = {GEN_ROLE_READ, GEN_ROLE_SEARCH, GEN_ROLE_LIST, GEN_ROLE_SHELL, GEN_ROLE_WEB,
				      GEN_ROLE_TASK, GEN_ROLE_TODO};
	static const int change[] = {GEN_ROLE_EDIT, GEN_ROLE_WRITE};
	bool has_test = role_weight(e, GEN_ROLE_TEST) > 0, has_build = role_weight(e, GEN_ROLE_BUILD) > 0;
	bool has_change = role_weight(e, GEN_ROLE_EDIT) + role_weight(e, GEN_ROLE_WRITE) > 0;
	if (e->natural || (!has_test && !has_change)) {
		for (int i = 0; i < calls && n < cap - 1; i++) {
			int r = pick_role(e, explore, 7);
			s[n++] = r < 0 ? GEN_ROLE_READ : r;
		}
		s[n++] = R_FINAL;
		return n;
	}
	if (p->chat) {
		int reads = 1 + calls / 4, fixes = 1 + calls / 3;
		for (int i = 0; i < reads && n < cap - 1; i++)
			s[n++] = GEN_ROLE_READ;
		for (int i = 0; i < fixes && n < cap - 1; i++)
			s[n++] = (i + 1 < fixes || !role_weight(e, GEN_ROLE_EDIT)) ? GEN_ROLE_TEST : GEN_ROLE_EDIT;
		s[n++] = R_FINAL;
		return n;
	}
	int n_explore = 1 + calls * 2 / 5;
	int n_change = calls / 4 > 0 ? calls / 4 : 1;
	for (int i = 0; i < n_explore && n < cap - 1; i++) {
		int r = pick_role(e, explore, i == 0 ? 7 : 6); /* plans come first, if at all */
		s[n++] = r < 0 ? GEN_ROLE_READ : r;
	}
	if (calls >= 3 && n < cap - 1)
		s[n++] = has_test ? GEN_ROLE_TEST : has_build ? GEN_ROLE_BUILD : GEN_ROLE_READ;
	for (int i = 0; i < n_change && n < cap - 1; i++) {
		int r = has_change ? pick_role(e, change, 2) : GEN_ROLE_READ;
		s[n++] = r < 0 ? GEN_ROLE_EDIT : r;
		if (gen_chance(&e->r_plan, p->reread) && n < cap - 1)
			s[n++] = GEN_ROLE_READ;
	}
	if (has_test && n < cap - 1)
		s[n++] = GEN_ROLE_TEST;
	s[n++] = R_FINAL;
	return n;
}

static int empty_slot(void *ctx, const char *name, size_t n, struct buf *b)
{
	(void)ctx;
	(void)name;
	(void)n;
	(void)b;
	return 1;
}

/* Tokens of a template with every slot empty. */
static int64_t template_tokens(const char *t)
{
	struct buf b = BUF_INIT;
	struct rng r;
	rng_seed(&r, 1);
	int64_t n = 0;
	if (t && gw_expand(&b, t, &r, empty_slot, NULL) == 0)
		n = est_buf(&b);
	buf_free(&b);
	return n;
}

/* The least each role's call and result cost: call framing, the tool name and
 * the arguments template (+ a few tokens of values); message framing and the
 * result template. */
static void role_minimums(struct eng *e)
{
	for (int r = 0; r < GEN_NROLES; r++) {
		const struct gen_role_def *d = &e->p->roles[r];
		if (!d->present) {
			e->call_min[r] = e->result_min[r] = 0;
			continue;
		}
		e->call_min[r] = e->p->chat ? 0
					    : TR_TOOL_CALL_OVERHEAD_TOKENS + template_tokens(d->tool) +
						      template_tokens(d->args) + 6;
		e->result_min[r] = TR_MESSAGE_OVERHEAD_TOKENS + template_tokens(d->result);
	}
}

static int64_t call_est(const struct eng *e, int role, int64_t args_tokens)
{
	/* tokens of a tool call in history: framing, name, arguments */
	int64_t base = role >= 0 && role < GEN_NROLES ? e->call_min[role] : 0;
	switch (role) {
	case GEN_ROLE_EDIT:
		return base + 10 + args_tokens * 2;
	case GEN_ROLE_WRITE:
		return base + 10 + args_tokens;
	case GEN_ROLE_TASK:
		return base + 60;
	case GEN_ROLE_TODO:
		return base + 80;
	default:
		return e->p->chat ? 0 : base + 12;
	}
}

static int plan_make(struct eng *e, int64_t n, struct ar_err *err)
{
	const struct gen_profile *p = e->p;
	e->plan = calloc((size_t)n, sizeof *e->plan);
	if (!e->plan)
		return oom(err);
	e->n_plan = n;
	role_minimums(e);
	int script[256];
	int ns = 0, pos = 0;
	bool fail_next = true; /* the first test run of a task fails (test_fail_first) */
	for (int64_t k = 0; k < n; k++) {
		if (pos >= ns) {
			ns = task_script(e, script, 256);
			pos = 0;
			fail_next = gen_chance(&e->r_plan, p->test_fail_first);
		}
		struct plan *pl = &e->plan[k];
		pl->role = script[pos++];
		if (pl->role == GEN_ROLE_TEST || pl->role == GEN_ROLE_BUILD) {
			pl->test_fail = fail_next;
			fail_next = gen_chance(&e->r_plan, p->test_fail_again);
		}
	}
	/* segments */
	for (int s = 0; s < e->n_seg; s++) {
		int64_t end = e->seg_end[s];
		if (s == 0 && e->n_seg == 2)
			e->plan[end].role = R_COMPACT;
	}
	/* appends follow from the previous response */
	for (int64_t k = 0; k < n; k++) {
		struct plan *pl = &e->plan[k];
		pl->seg = (e->n_seg == 2 && k > e->seg_end[0]) ? 1 : 0;
		if (k == 0)
			pl->append = A_FIRST;
		else if (e->plan[k - 1].role == R_COMPACT)
			pl->append = A_CONTINUE;
		else if (e->plan[k - 1].role == R_FINAL)
			pl->append = A_TASK;
		else
			pl->append = A_RESULT;
	}
	/* the last append of a segment must stretch to land on the target */
	for (int s = 0; s < e->n_seg && !e->natural; s++) {
		int64_t end = e->seg_end[s];
		struct plan *pl = &e->plan[end];
		if (pl->append == A_RESULT && !gen_role_elastic(e->plan[end - 1].role))
			e->plan[end - 1].role = p->chat ? GEN_ROLE_TEST : GEN_ROLE_READ;
		if (pl->append == A_RESULT && p->chat && e->plan[end - 1].role == GEN_ROLE_READ)
			e->plan[end - 1].role = GEN_ROLE_TEST; /* a test log fills exactly */
		if (pl->append == A_TASK || pl->append == A_FIRST)
			pl->paste = true;
	}
	/* sizes */
	for (int64_t k = 0; k < n; k++) {
		struct plan *pl = &e->plan[k];
		if (pl->append == A_RESULT) {
			int pr = e->plan[k - 1].role;
			const struct gen_role_def *d = &p->roles[pr];
			if (gen_role_elastic(pr)) {
				pl->elastic = true;
				pl->natural = gen_dist_sample(&d->size, &e->r_size);
				pl->max = d->max_tokens;
				pl->min_el = e->result_min[pr] + MIN_BODY;
			} else {
				pl->fixed_est = 4 + gen_dist_sample(&d->size, &e->r_size);
				pl->min_fixed = e->result_min[pr] + (pr == GEN_ROLE_EDIT ? 40 : pr == GEN_ROLE_TASK ? 60 : 2);
				if (pl->fixed_est < pl->min_fixed)
					pl->fixed_est = pl->min_fixed;
			}
			if (!e->natural && k != e->seg_end[pl->seg] && gen_chance(&e->r_plan, p->interject)) {
				pl->interject = true;
				pl->fixed_est += 4 + gen_dist_sample(&p->interject_tokens, &e->r_size);
				pl->min_fixed += 4 + 30;
			}
			if (pl->role == R_COMPACT) {
				int64_t cp = 4 + est(p->compact_prompt, strlen(p->compact_prompt));
				pl->fixed_est += cp;
				pl->min_fixed += cp;
			}
		} else if (pl->append == A_TASK) {
			pl->fixed_est = 4 + gen_dist_sample(&p->task_tokens, &e->r_size);
			pl->min_fixed = 4 + 40; /* one request sentence */
			if (!pl->paste && !e->natural && gen_chance(&e->r_plan, p->paste))
				pl->paste = true;
		} else if (pl->append == A_CONTINUE) {
			pl->fixed_est = 4 + e->plan[k - 1].text_tokens + 60;
			pl->min_fixed = pl->fixed_est;
		} else if (pl->append == A_FIRST) {
			pl->fixed_est = 4 + gen_dist_sample(&p->task_tokens, &e->r_size);
			pl->min_fixed = 4 + 40;
		}
		if (pl->paste) {
			pl->elastic = true;
			pl->min_el = 4 + 16 + MIN_BODY;
			pl->natural = gen_dist_sample(p->roles[GEN_ROLE_TEST].present ? &p->roles[GEN_ROLE_TEST].size
										 : &p->roles[GEN_ROLE_READ].size,
						      &e->r_size);
			pl->max = 25000;
		}
		/* the response */
		if (pl->role == R_FINAL) {
			pl->text_tokens = gen_dist_sample(&p->text_final, &e->r_size);
			pl->out_tokens = gen_dist_sample(&p->out_final, &e->r_size);
			pl->resp_est = 4 + pl->text_tokens;
		} else if (pl->role == R_COMPACT) {
			pl->text_tokens = gen_dist_sample(&p->summary_tokens, &e->r_size);
			pl->resp_est = 0; /* dropped by the keep:0 that follows */
		} else {
			const struct gen_role_def *d = &p->roles[pl->role];
			pl->text_tokens = gen_dist_sample(&p->text_call, &e->r_size);
			pl->out_tokens = gen_dist_sample(&p->out_call, &e->r_size);
			pl->args_tokens = gen_dist_sample(&d->args_tokens, &e->r_size);
			if (p->chat && (pl->role == GEN_ROLE_TEST || pl->role == GEN_ROLE_EDIT))
				pl->text_tokens += pl->args_tokens * 2 + 30; /* SEARCH/REPLACE blocks */
			pl->resp_est = 4 + pl->text_tokens + call_est(e, pl->role, pl->args_tokens);
		}
	}
	return 0;
}

/* The least a response of `role` adds to later prompts. */
static int64_t resp_min(const struct eng *e, int role)
{
	if (role == R_COMPACT)
		return 0;
	if (role == R_FINAL)
		return 4 + 24; /* a lead and a sentence */
	if (e->p->chat)
		return 4 + 40 + (role == GEN_ROLE_READ ? 0 : 40); /* a request, or edit blocks */
	return 4 + call_est(e, role, role == GEN_ROLE_WRITE ? 60 : 16);
}

/* Makes the planned sizes of turns from..end of segment s fit between `base`
 * (the context before turn `from` appends anything, its previous response
 * included) and the segment's target: shrinks replies and user texts towards
 * their minimum when they alone would overfill. Errors name the options. */
static int fit_segment(struct eng *e, int s, int64_t from, int64_t base, struct ar_err *err)
{
	const struct gen_profile *p = e->p;
	int64_t z = e->seg_end[s];
	/* fixed: what the plan wants outside the stretchable parts; least: what
	 * the turns cost at the very least (templates, a line per result) */
	int64_t fixed = 0, min_fixed = 0, min_el = 0, max_sum = 0;
	for (int64_t k = from; k <= z; k++) {
		const struct plan *pl = &e->plan[k];
		fixed += pl->fixed_est + (k < z ? pl->resp_est : 0);
		min_fixed += pl->min_fixed + (k < z ? resp_min(e, pl->role) : 0);
		if (pl->elastic) {
			min_el += pl->min_el;
			max_sum += k == z ? pl->max * 2 : pl->max;
		}
	}
	int64_t budget = e->seg_target[s] - base;
	int64_t turns = z - from + 1;
	int64_t per = turns > 0 ? (min_fixed + min_el + turns - 1) / turns : 1;
	if (budget - fixed < min_el) {
		if (budget - min_fixed < min_el) {
			int64_t start = e->prefix + e->first_tokens;
			int64_t fit = per > 0 ? (e->target - start) / per : 0;
			if (s == 1 && from == e->seg_end[0] + 1)
				return ar_err_set(err, AR_EINVAL,
						  "--depth %lld is too close to what style '%s' keeps after the compaction (%lld tokens) for the %lld turns left; use fewer --turns or a larger --depth",
						  (long long)e->o->depth, p->name, (long long)base, (long long)turns);
			if (from > 0)
				return ar_err_set(err, AR_EINVAL,
						  "--turns %lld is more than --depth %lld can fill with style '%s': at turn %lld the context is %lld tokens and the %lld turns left need at least %lld more; use fewer --turns",
						  (long long)e->n_plan, (long long)e->o->depth, p->name, (long long)from,
						  (long long)base, (long long)turns, (long long)(min_fixed + min_el));
			if (fit < 1 || e->target < start + MIN_ELASTIC)
				return ar_err_set(err, AR_EINVAL,
						  "--depth %lld is smaller than what style '%s' sends before the agent's first action: %lld tokens (system prompt and tool schemas %lld, first user message %lld)",
						  (long long)e->o->depth, p->name, (long long)(start + MIN_ELASTIC),
						  (long long)e->prefix, (long long)(e->first_tokens + MIN_ELASTIC));
			return ar_err_set(err, AR_EINVAL,
					  "--turns %lld is more than --depth %lld can fill: style '%s' starts at %lld tokens and every turn adds at least %lld (at most %lld turns fit)",
					  (long long)e->n_plan, (long long)e->o->depth, p->name, (long long)start,
					  (long long)per, (long long)(fit > 0 ? fit : 1));
		}
		/* shrink replies and user texts towards their least */
		int64_t room = budget - min_el - min_fixed, want = fixed - min_fixed;
		for (int64_t k = from; k <= z && want > 0; k++) {
			struct plan *pl = &e->plan[k];
			pl->text_tokens = pl->text_tokens * room / want;
			if (pl->role == R_FINAL && pl->text_tokens < 20)
				pl->text_tokens = 20;
			pl->args_tokens = pl->args_tokens * room / want;
			if (pl->fixed_est > pl->min_fixed && pl->append != A_CONTINUE)
				pl->fixed_est = pl->min_fixed + (pl->fixed_est - pl->min_fixed) * room / want;
			if (pl->role < GEN_NROLES)
				pl->resp_est = 4 + pl->text_tokens + call_est(e, pl->role, pl->args_tokens);
			else if (pl->role == R_FINAL)
				pl->resp_est = 4 + pl->text_tokens;
		}
	}
	if (budget - fixed > max_sum && from == 0) {
		int64_t mx = p->roles[GEN_ROLE_READ].max_tokens > 0 ? p->roles[GEN_ROLE_READ].max_tokens : 25000;
		return ar_err_set(err, AR_EINVAL,
				  "--turns %lld is too few to reach --depth %lld with style '%s': a tool result holds at most %lld tokens (try --turns %lld or more)",
				  (long long)e->n_plan, (long long)e->o->depth, p->name, (long long)mx,
				  (long long)(2 + (budget + mx - 1) / mx));
	}
	return 0;
}

static int plan_check(struct eng *e, struct ar_err *err)
{
	if (fit_segment(e, 0, 0, e->prefix + e->first_tokens, err) < 0)
		return -1;
	if (e->n_seg == 2 &&
	    fit_segment(e, 1, e->seg_end[0] + 1, e->prefix + (e->p->chat ? e->first_tokens : 0), err) < 0)
		return -1;
	return 0;
}

/* Tokens the stretchable part of turn k's append should have, given that the
 * fixed messages of this append take fixed_now. */
static int64_t elastic_target(struct eng *e, int64_t k, int64_t fixed_now)
{
	struct plan *pl = &e->plan[k];
	if (e->natural)
		return pl->natural;
	int64_t end = e->seg_end[pl->seg];
	/* the last stretchable result of a segment must land exactly */
	e->repo->exact = k == end;
	int64_t future = 0, rest = 0;
	for (int64_t j = k; j <= end; j++) {
		if (j < end)
			future += e->plan[j].resp_est;
		if (j > k) {
			future += e->plan[j].fixed_est;
			if (e->plan[j].elastic)
				rest += e->plan[j].natural;
		}
	}
	int64_t budget = e->seg_target[pl->seg] - ctx_now(e) - fixed_now - future;
	if (k == end)
		return budget < 8 ? 8 : budget;
	int64_t share = budget * pl->natural / (pl->natural + rest > 0 ? pl->natural + rest : 1);
	if (share < pl->min_el)
		share = pl->min_el;
	if (share > pl->max)
		share = pl->max;
	return share;
}

/* ---- responses ----------------------------------------------------------- */

static const int before_bank[GEN_NROLES] = {
	[GEN_ROLE_READ] = GW_BEFORE_READ,   [GEN_ROLE_SEARCH] = GW_BEFORE_SEARCH, [GEN_ROLE_LIST] = GW_BEFORE_LIST,
	[GEN_ROLE_TEST] = GW_BEFORE_TEST,   [GEN_ROLE_BUILD] = GW_BEFORE_BUILD,   [GEN_ROLE_SHELL] = GW_BEFORE_SHELL,
	[GEN_ROLE_EDIT] = GW_BEFORE_EDIT,   [GEN_ROLE_WRITE] = GW_BEFORE_WRITE,   [GEN_ROLE_TODO] = GW_BEFORE_TODO,
	[GEN_ROLE_TASK] = GW_BEFORE_TASK,   [GEN_ROLE_WEB] = GW_BEFORE_WEB,
};

/* Visible text of about `tokens`: a lead sentence from `bank`, then more
 * sentences on the same line (a note before a tool call) or explanation
 * paragraphs (a final answer, `prose`). 0 tokens: nothing. */
static int reply_text(struct eng *e, int bank, int64_t tokens, bool prose, struct buf *b)
{
	static const char *const leads[] = {"Fixed.", "Done.", "All set.", "The tests pass now.",
					    "Here's what I found and changed."};
	if (tokens <= 0 || (!prose && tokens < 8))
		return 0;
	struct gen_repo_slots rs = {e->repo, &e->r_text, e->module, e->call.file >= 0 ? e->call.file : -1};
	if (prose && buf_printf(b, "%s ", leads[rng_below(&e->r_text, 5)]) < 0)
		return -1;
	if (gw_sentence(b, (enum gw_bank)bank, &e->r_text, gen_repo_slot, &rs) < 0)
		return -1;
	int64_t have = est_buf(b);
	if (!prose) {
		for (int i = 0; i < 30 && have + 6 < tokens; i++) {
			if (buf_putc(b, ' ') < 0 || gw_sentence(b, GW_EXPLAIN, &e->r_text, gen_repo_slot, &rs) < 0)
				return -1;
			have = est_buf(b);
		}
		return 0;
	}
	if (have + 6 < tokens) {
		if (buf_puts(b, "\n\n") < 0 || gen_repo_prose(e->repo, &e->r_text, GW_EXPLAIN, tokens - have - 1, b) < 0)
			return -1;
		/* prose ends with a newline; a reply does not */
		while (b->len && b->data[b->len - 1] == '\n')
			b->data[--b->len] = 0;
	}
	return 0;
}

static char *call_id(struct eng *e)
{
	static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	struct buf b = BUF_INIT;
	buf_puts(&b, e->p->call_id_prefix);
	for (int i = 0; i < e->p->call_id_len; i++)
		buf_putc(&b, b62[rng_below(&e->r_id, 62)]);
	e->call_seq++;
	return buf_detach(&b);
}

static int todo_json(struct eng *e, bool codex, struct buf *b)
{
	int n = 3 + (int)rng_below(&e->r_text, 4), done = (int)rng_below(&e->r_text, (uint64_t)n);
	struct gen_repo_slots rs = {e->repo, &e->r_text, e->module, -1};
	if (buf_putc(b, '[') < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		struct buf s = BUF_INIT;
		if (gw_sentence(&s, GW_COMMIT, &e->r_text, gen_repo_slot, &rs) < 0)
			return -1;
		if (s.data && s.len)
			s.data[0] = (char)(s.data[0] >= 'a' && s.data[0] <= 'z' ? s.data[0] - 32 : s.data[0]);
		const char *st = i < done ? "completed" : i == done ? "in_progress" : "pending";
		int rc = buf_puts(b, i ? ",{" : "{");
		if (codex) {
			rc |= buf_puts(b, "\"step\":");
			rc |= jsonh_put_string(b, s.data ? s.data : "", s.len);
			rc |= buf_printf(b, ",\"status\":\"%s\"}", st);
		} else {
			rc |= buf_puts(b, "\"content\":");
			rc |= jsonh_put_string(b, s.data ? s.data : "", s.len);
			rc |= buf_printf(b, ",\"status\":\"%s\",\"activeForm\":", st);
			rc |= jsonh_put_string(b, s.data ? s.data : "", s.len);
			rc |= buf_putc(b, '}');
		}
		buf_free(&s);
		if (rc)
			return -1;
	}
	return buf_putc(b, ']');
}

static int run_child(struct eng *e, int64_t k, const char *prompt, struct gen_session **out, int64_t *dur_ms,
		     struct ar_err *err);

/* A SEARCH/REPLACE edit of a file in the chat (mode chat). */
static int chat_edit_blocks(struct eng *e, int64_t tokens, struct buf *b)
{
	int f = -1;
	if (e->n_chat_files)
		f = e->chat_files[rng_below(&e->r_plan, (uint64_t)e->n_chat_files)];
	if (f < 0)
		return 0;
	const char *old_text, *new_text;
	int64_t line;
	if (gen_repo_edit(e->repo, f, &e->r_text, tokens, &old_text, &new_text, &line) < 0)
		return 0;
	e->files_dirty = true;
	return buf_printf(b, "\n\n%s\n```%s\n<<<<<<< SEARCH\n%s\n=======\n%s\n>>>>>>> REPLACE\n```",
			  e->repo->files[f].path, gen_lang_fence(e->repo->files[f].lang), old_text, new_text);
}

static int make_response(struct eng *e, int64_t k, struct tr_turn *t, struct ar_err *err)
{
	const struct gen_profile *p = e->p;
	struct plan *pl = &e->plan[k];
	struct tr_response *r = calloc(1, sizeof *r);
	struct buf text = BUF_INIT, args = BUF_INIT, tmp = BUF_INIT, tmp2 = BUF_INIT;
	int rc = -1;
	if (!r)
		return oom(err);
	r->reasoning_tokens = -1;
	r->output_tokens = -1;
	t->response = r;
	e->repo->exact = false;
	pend_clear(&e->call);
	e->call.role = pl->role;
	if (pl->role == R_FINAL || pl->role == R_COMPACT) {
		if (pl->role == R_COMPACT) {
			if (buf_puts(&text, "<summary>\n") < 0 ||
			    gen_repo_prose(e->repo, &e->r_text, GW_EXPLAIN, pl->text_tokens, &text) < 0 ||
			    buf_puts(&text, "</summary>") < 0)
				goto oom;
			free(e->summary);
			if (!(e->summary = strdup(text.data)))
				goto oom;
		} else {
			if (reply_text(e, GW_EXPLAIN, pl->text_tokens, true, &text) < 0)
				goto oom;
			if (p->chat && chat_edit_blocks(e, pl->args_tokens > 0 ? pl->args_tokens : 20, &text) < 0)
				goto oom;
		}
		if (!(r->content = strdup(text.data ? text.data : "")))
			goto oom;
		r->content_len = text.len;
		if (!(r->finish = strdup("stop")))
			goto oom;
	} else if (p->chat) {
		const struct gen_role_def *d = &p->roles[pl->role];
		if (pl->role == GEN_ROLE_READ) {
			int f = gen_repo_pick_unseen(e->repo, &e->r_plan, GEN_FILE_SRC);
			e->call.file = f;
			struct kv kv[] = {{"path", f >= 0 ? e->repo->files[f].path : ""}};
			if (reply_text(e, GW_BEFORE_READ, pl->text_tokens > 12 ? pl->text_tokens - 12 : 0, false, &text) < 0 ||
			    (text.len && buf_puts(&text, " ") < 0) || expand(e, &text, d->ask, kv, 1, false) < 0)
				goto oom;
		} else {
			struct kv kv[] = {{"path", ""}};
			if (expand(e, &text, d->ask, kv, 1, false) < 0 || buf_puts(&text, " ") < 0 ||
			    reply_text(e, GW_EXPLAIN, pl->text_tokens - pl->args_tokens * 2 - 30, false, &text) < 0 ||
			    chat_edit_blocks(e, pl->args_tokens, &text) < 0)
				goto oom;
			e->call.module = e->module;
			e->call.fail = pl->test_fail;
		}
		if (!(r->content = strdup(text.data ? text.data : "")))
			goto oom;
		r->content_len = text.len;
		if (!(r->finish = strdup("stop")))
			goto oom;
	} else {
		const struct gen_role_def *d = &p->roles[pl->role];
		struct pend *c = &e->call;
		c->module = e->module;
		c->tool_ms = gen_dist_sample(&d->tool_ms, &e->r_time);
		if (!(c->tool = strdup(d->tool)) || !(c->id = call_id(e)))
			goto oom;
		const char *tmpl = d->args;
		char num1[32] = "", num2[32] = "";
		struct kv kv[12];
		size_t nkv = 0;
		kv[nkv++] = (struct kv){"cwd", e->repo->root};
		switch (pl->role) {
		case GEN_ROLE_READ: {
			bool last = k + 1 == e->seg_end[k + 1 <= e->seg_end[0] ? 0 : (e->n_seg > 1 ? 1 : 0)];
			int f = -1;
			if (!last && e->plan[k > 0 ? k - 1 : 0].role == GEN_ROLE_EDIT && e->repo->n_edits)
				f = e->repo->edits[e->repo->n_edits - 1].file; /* re-read what was just edited */
			if (f < 0)
				f = gen_repo_pick_unseen(e->repo, &e->r_plan, rng_below(&e->r_plan, 3) ? GEN_FILE_SRC : -1);
			if (f < 0)
				goto oom;
			c->file = f;
			const struct gen_file *gf = &e->repo->files[f];
			if (gf->made && k + 1 < e->n_plan && d->args_range) {
				gen_repo_range(e->repo, f, e->plan[k + 1].natural, d->range_numbering, &e->r_plan, &c->from,
					       &c->count);
				if (c->count > 0) {
					snprintf(num1, sizeof num1, "%lld", (long long)c->from);
					snprintf(num2, sizeof num2, "%lld", (long long)c->count);
					tmpl = d->args_range;
				}
			}
			if (gf->module >= 0)
				e->module = c->module = gf->module;
			e->task_file = f;
			buf_printf(&tmp, "%s/%s", e->repo->root, gf->path);
			kv[nkv++] = (struct kv){"abs_path", tmp.data};
			kv[nkv++] = (struct kv){"path", gf->path};
			kv[nkv++] = (struct kv){"offset", num1};
			kv[nkv++] = (struct kv){"limit", num2};
			kv[nkv++] = (struct kv){"end", num2};
			if (c->count > 0)
				snprintf(num2, sizeof num2, "%lld", (long long)(c->from + c->count - 1));
			break;
		}
		case GEN_ROLE_SEARCH: {
			const struct gen_module *m = &e->repo->mods[e->module];
			const char *sym = m->fns[rng_below(&e->r_plan, (uint64_t)m->n_fns)];
			if (!(c->cmd = strdup(sym)))
				goto oom;
			kv[nkv++] = (struct kv){"pattern", sym};
			kv[nkv++] = (struct kv){"path", e->repo->lang == GEN_LANG_GO ? "internal" : "src"};
			kv[nkv++] = (struct kv){"ext", gen_lang_ext(e->repo->lang)};
			buf_printf(&tmp, "rg -n \"%s\" .", sym);
			kv[nkv++] = (struct kv){"command", tmp.data};
			break;
		}
		case GEN_ROLE_LIST:
			kv[nkv++] = (struct kv){"ext", gen_lang_ext(e->repo->lang)};
			kv[nkv++] = (struct kv){"path", e->repo->root};
			break;
		case GEN_ROLE_TEST:
		case GEN_ROLE_BUILD:
			if (pl->role == GEN_ROLE_TEST)
				gen_repo_test_cmd(e->repo, e->module, &tmp);
			else
				buf_puts(&tmp, gen_repo_build_cmd(e->repo));
			if (!(c->cmd = strdup(tmp.data ? tmp.data : "")))
				goto oom;
			c->fail = pl->test_fail;
			kv[nkv++] = (struct kv){"command", c->cmd};
			kv[nkv++] = (struct kv){"description", pl->role == GEN_ROLE_TEST ? "Run the tests" : "Build the project"};
			break;
		case GEN_ROLE_SHELL:
			buf_puts(&tmp, e->repo->n_edits ? "git status && git diff" : "git status && git log --oneline -20");
			if (!(c->cmd = strdup(tmp.data)))
				goto oom;
			kv[nkv++] = (struct kv){"command", c->cmd};
			kv[nkv++] = (struct kv){"description", "Show the working tree status"};
			break;
		case GEN_ROLE_WEB:
			buf_printf(&tmp, "https://docs.%s.dev/%s/%s", gw_noun(&e->r_text), gw_noun(&e->r_text),
				   gw_verb(&e->r_text));
			kv[nkv++] = (struct kv){"url", tmp.data};
			kv[nkv++] = (struct kv){"prompt", "How is this API meant to be used, and what are its limits?"};
			break;
		case GEN_ROLE_EDIT: {
			int f = -1;
			if (e->task_file >= 0 && e->repo->files[e->task_file].seen && e->repo->files[e->task_file].made &&
			    e->repo->files[e->task_file].lang != GEN_LANG_N)
				f = e->task_file;
			if (f < 0)
				f = gen_repo_pick_seen(e->repo, &e->r_plan);
			if (f < 0) {
				f = e->repo->mods[e->module].src;
				if (gen_repo_make(e->repo, f, 800, d->numbering) < 0)
					goto oom;
				e->repo->files[f].seen = true;
			}
			const char *old_text = "", *new_text = "";
			int64_t line = 0;
			if (gen_repo_edit(e->repo, f, &e->r_text, pl->args_tokens, &old_text, &new_text, &line) < 0) {
				/* a file too small to edit (a one-line read): edit the module's source */
				f = e->repo->mods[e->module].src;
				if (gen_repo_make(e->repo, f, 400, d->numbering) < 0)
					goto oom;
				e->repo->files[f].seen = true;
				if (gen_repo_edit(e->repo, f, &e->r_text, pl->args_tokens, &old_text, &new_text, &line) < 0)
					goto oom;
			}
			c->file = f;
			buf_printf(&tmp, "%s/%s", e->repo->root, e->repo->files[f].path);
			kv[nkv++] = (struct kv){"abs_path", tmp.data};
			kv[nkv++] = (struct kv){"path", e->repo->files[f].path};
			kv[nkv++] = (struct kv){"old", old_text};
			kv[nkv++] = (struct kv){"new", new_text};
			/* a patch for apply_patch-style tools */
			buf_printf(&tmp2, "*** Begin Patch\n*** Update File: %s\n@@\n", e->repo->files[f].path);
			for (const char *s = old_text; *s;) {
				size_t n = strcspn(s, "\n");
				buf_printf(&tmp2, "-%.*s\n", (int)n, s);
				s += n + (s[n] == '\n');
			}
			for (const char *s = new_text; *s;) {
				size_t n = strcspn(s, "\n");
				buf_printf(&tmp2, "+%.*s\n", (int)n, s);
				s += n + (s[n] == '\n');
			}
			buf_puts(&tmp2, "*** End Patch");
			kv[nkv++] = (struct kv){"patch", tmp2.data};
			break;
		}
		case GEN_ROLE_WRITE: {
			int m = e->module;
			bool test = rng_below(&e->r_plan, 2) == 0;
			char path[200];
			const struct gen_file *src = &e->repo->files[test ? e->repo->mods[m].test : e->repo->mods[m].src];
			const char *dot = strrchr(src->path, '.');
			/* test_x.py -> test_x_<adj>.py; x_test.go -> x_<adj>_test.go */
			const char *cut = dot;
			if (dot && dot - src->path > 5 && !strncmp(dot - 5, "_test", 5))
				cut = dot - 5;
			if (dot && dot - src->path > 5 && !strncmp(dot - 5, ".test", 5))
				cut = dot - 5;
			snprintf(path, sizeof path, "%.*s_%s%s", (int)(cut ? cut - src->path : 0), src->path,
				 gw_adj(&e->r_plan), cut ? cut : "");
			int f = gen_repo_add_file(e->repo, m, test ? GEN_FILE_TEST : GEN_FILE_SRC, path);
			if (f < 0)
				goto oom;
			struct gen_file *gf = &e->repo->files[f];
			if (gen_repo_new_text(e->repo, &e->r_text, m, test, pl->args_tokens, &gf->text) < 0)
				goto oom;
			gf->made = gf->seen = true;
			c->file = f;
			buf_printf(&tmp, "%s/%s", e->repo->root, gf->path);
			kv[nkv++] = (struct kv){"abs_path", tmp.data};
			kv[nkv++] = (struct kv){"path", gf->path};
			kv[nkv++] = (struct kv){"content", gf->text.data ? gf->text.data : ""};
			/* the same text as the lines of an "Add File" patch */
			for (const char *s = gf->text.data ? gf->text.data : ""; *s;) {
				size_t n = strcspn(s, "\n");
				buf_printf(&tmp2, "+%.*s\n", (int)n, s);
				s += n + (s[n] == '\n');
			}
			kv[nkv++] = (struct kv){"content_plus", tmp2.data ? tmp2.data : ""};
			break;
		}
		case GEN_ROLE_TODO:
			if (todo_json(e, strstr(d->args, "plan_json") != NULL, &tmp) < 0)
				goto oom;
			kv[nkv++] = (struct kv){"todos_json", tmp.data};
			kv[nkv++] = (struct kv){"plan_json", tmp.data};
			break;
		case GEN_ROLE_TASK: {
			struct gen_repo_slots rs = {e->repo, &e->r_text, e->module, -1};
			if (gw_sentence(&tmp2, GW_TASK, &e->r_text, gen_repo_slot, &rs) < 0 ||
			    buf_puts(&tmp2, " Report the relevant files, functions and line numbers; do not change any code.") < 0)
				goto oom;
			struct gen_session *child = NULL;
			int64_t dur = 0;
			if (run_child(e, k, tmp2.data, &child, &dur, err) < 0)
				goto fail;
			const struct tr_turn *last = &child->turns[child->n_turns - 1];
			const char *rep = last->response && last->response->content ? last->response->content : "";
			if (!(c->body = strdup(rep))) {
				gen_session_free(child);
				goto oom;
			}
			c->tool_ms = dur;
			if (e->n_children == e->cap_children) {
				size_t cap = e->cap_children ? e->cap_children * 2 : 4;
				struct gen_session **cs = realloc(e->children, cap * sizeof *cs);
				if (!cs) {
					gen_session_free(child);
					goto oom;
				}
				e->children = cs;
				e->cap_children = cap;
			}
			e->children[e->n_children++] = child;
			buf_printf(&tmp, "%s %s", gw_verb(&e->r_text), gw_noun(&e->r_text));
			kv[nkv++] = (struct kv){"description", tmp.data};
			kv[nkv++] = (struct kv){"prompt", tmp2.data};
			break;
		}
		}
		if (expand(e, &args, tmpl, kv, nkv, true) < 0)
			goto oom;
		if (reply_text(e, before_bank[pl->role], pl->text_tokens, false, &text) < 0)
			goto oom;
		if (text.len) {
			if (!(r->content = strdup(text.data)))
				goto oom;
			r->content_len = text.len;
		}
		if (!(r->calls = calloc(1, sizeof *r->calls)))
			goto oom;
		r->n_calls = 1;
		if (!(r->calls[0].id = strdup(c->id)) || !(r->calls[0].name = strdup(c->tool)) ||
		    !(r->calls[0].arguments = strdup(args.data ? args.data : "{}")))
			goto oom;
		if (!(r->finish = strdup("tool_calls")))
			goto oom;
	}
	/* output length: visible text and calls, plus hidden reasoning */
	int64_t visible = est(r->content, r->content_len) + tr_calls_tokens(r->calls, r->n_calls);
	int64_t out = visible > 0 ? visible : 1;
	if (p->reasoning && pl->role != R_COMPACT && pl->out_tokens > out) {
		r->reasoning_tokens = pl->out_tokens - out;
		out = pl->out_tokens;
	}
	r->output_tokens = out;
	e->prev = r;
	rc = 0;
	goto out;
oom:
	oom(err);
fail:
	rc = -1;
out:
	buf_free(&text);
	buf_free(&args);
	buf_free(&tmp);
	buf_free(&tmp2);
	return rc;
}

/* ---- results ------------------------------------------------------------ */

/* The body of a tool result of `tokens`, for the pending call. */
static int result_body(struct eng *e, int64_t tokens, struct buf *b, struct buf *snippet)
{
	const struct gen_profile *p = e->p;
	struct pend *c = &e->call;
	const struct gen_role_def *d = &p->roles[c->role];
	switch (c->role) {
	case GEN_ROLE_READ: {
		enum gen_numbering num = c->count > 0 ? d->range_numbering : d->numbering;
		if (gen_repo_make(e->repo, c->file, tokens, num) < 0)
			return -1;
		e->repo->files[c->file].seen = true;
		return gen_repo_render(e->repo, c->file, c->from, c->count, num, b) < 0 ? -1 : 0;
	}
	case GEN_ROLE_SEARCH:
		return gen_repo_grep(e->repo, &e->r_text, c->cmd, d->grep, tokens, b);
	case GEN_ROLE_LIST:
		return gen_repo_listing(e->repo, &e->r_text, d->grep == GEN_GREP_LINES && strstr(d->args, "ls"), tokens, b);
	case GEN_ROLE_TEST:
		return gen_repo_test_run(e->repo, &e->r_text, c->module, c->fail, tokens, b, NULL);
	case GEN_ROLE_BUILD:
		return gen_repo_build(e->repo, &e->r_text, c->module, c->fail, tokens, b, NULL);
	case GEN_ROLE_SHELL:
		return gen_repo_git(e->repo, &e->r_text, tokens, b, NULL);
	case GEN_ROLE_WEB:
		return gen_repo_doc_page(e->repo, &e->r_text, tokens, b, NULL);
	case GEN_ROLE_EDIT:
		return c->file >= 0 ? gen_repo_snippet(e->repo, c->file, d->numbering, snippet) : 0;
	case GEN_ROLE_TASK:
		return buf_puts(b, c->body ? c->body : "");
	default:
		return 0;
	}
}

/* The result message's text: the role's template around a body of about
 * `tokens` (the whole message, framing included). */
static int result_text(struct eng *e, int64_t tokens, const char *tmpl, struct buf *out)
{
	struct pend *c = &e->call;
	struct buf body = BUF_INIT, snip = BUF_INIT, abs = BUF_INIT, empty = BUF_INIT;
	char wall[32], nlines[32];
	int rc = -1;
	int64_t ms = c->tool_ms;
	snprintf(wall, sizeof wall, "%lld.%01lld", (long long)(ms / 1000), (long long)(ms % 1000 / 100));
	if (c->file >= 0)
		buf_printf(&abs, "%s/%s", e->repo->root, e->repo->files[c->file].path);
	snprintf(nlines, sizeof nlines, "%lld", (long long)(c->file >= 0 ? gen_repo_lines(e->repo, c->file) : 0));
	struct kv kv[] = {
		{"body", ""},
		{"cmd", c->cmd ? c->cmd : ""},
		{"path", c->file >= 0 ? e->repo->files[c->file].path : ""},
		{"abs_path", abs.data ? abs.data : ""},
		{"exit_code", c->fail ? "1" : "0"},
		{"wall_s", wall},
		{"snippet", ""},
		{"n", nlines},
		{"cwd", e->repo->root},
	};
	/* the template's own size, without the body */
	if (expand(e, &empty, tmpl, kv, 9, false) < 0)
		goto out;
	int64_t goal = tokens - 4 - est_buf(&empty);
	if (result_body(e, goal > 8 ? goal : 8, &body, &snip) < 0)
		goto out;
	/* strip one trailing newline: tool output is shown without it */
	if (body.len && body.data[body.len - 1] == '\n')
		body.data[--body.len] = 0;
	kv[0].v = body.data ? body.data : "";
	kv[6].v = snip.data ? snip.data : "";
	snprintf(nlines, sizeof nlines, "%lld", (long long)(c->file >= 0 ? gen_repo_lines(e->repo, c->file) : 0));
	rc = expand(e, out, tmpl, kv, 9, false);
out:
	buf_free(&body);
	buf_free(&snip);
	buf_free(&abs);
	buf_free(&empty);
	return rc;
}

/* ---- mode chat (aider): the files message is re-sent when a file changes -- */

static int chat_files_message(struct eng *e, struct buf *b)
{
	if (buf_puts(b, e->p->files_intro) < 0)
		return -1;
	for (int i = 0; i < e->n_chat_files; i++) {
		const struct gen_file *f = &e->repo->files[e->chat_files[i]];
		if (buf_printf(b, "\n\n%s\n````\n", f->path) < 0 || buf_append(b, f->text.data ? f->text.data : "", f->text.len) < 0)
			return -1;
		if (f->text.len && f->text.data[f->text.len - 1] != '\n' && buf_putc(b, '\n') < 0)
			return -1;
		if (buf_puts(b, "````") < 0)
			return -1;
	}
	return 0;
}

/* Rewrites history from the files message on: keep it up to there, re-send
 * the files (with `add` added, made to `add_tokens`), then the rest. */
static int chat_rewrite(struct eng *e, struct tr_turn *t, int add, int64_t add_tokens)
{
	if (e->fm < 0 || (size_t)e->fm + 2 > e->nh)
		return 0;
	size_t from = (size_t)e->fm + 2, n = e->nh - from;
	struct tr_message *saved = calloc(n ? n : 1, sizeof *saved);
	int *kinds = calloc(n ? n : 1, sizeof *kinds);
	struct buf b = BUF_INIT;
	int rc = -1;
	if (!saved || !kinds)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (tr_message_copy(&saved[i], &e->h[from + i].m) < 0)
			goto out;
		kinds[i] = e->h[from + i].kind;
	}
	t->keep = e->fm;
	hist_truncate(e, (size_t)e->fm);
	if (add >= 0) {
		if (gen_repo_make(e->repo, add, add_tokens, GEN_NUM_NONE) < 0)
			goto out;
		e->repo->files[add].seen = true;
		if (e->n_chat_files < 64)
			e->chat_files[e->n_chat_files++] = add;
	}
	if (chat_files_message(e, &b) < 0 || append_text(e, t, TR_USER, b.data, b.len, GEN_K_NOTES) < 0 ||
	    append_text(e, t, TR_ASSISTANT, e->p->files_ack, strlen(e->p->files_ack), GEN_K_ASSISTANT) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (append_msg(e, t, &saved[i], kinds[i]) < 0)
			goto out;
	e->files_dirty = false;
	rc = 0;
out:
	if (saved)
		for (size_t i = 0; i < n; i++)
			tr_message_clear(&saved[i]);
	free(saved);
	free(kinds);
	buf_free(&b);
	return rc;
}

/* ---- turns ---------------------------------------------------------------- */

static int paste_message(struct eng *e, struct tr_turn *t, int64_t k, int64_t fixed_now)
{
	struct buf b = BUF_INIT, body = BUF_INIT;
	int rc = -1;
	static const char lead[] = "Here is the output I get:\n\n```\n";
	int64_t goal = elastic_target(e, k, fixed_now) - 4 - est(lead, strlen(lead)) - 2;
	if (gen_repo_test_run(e->repo, &e->r_text, e->module, true, goal > 8 ? goal : 8, &body, NULL) < 0)
		goto out;
	if (buf_puts(&b, lead) < 0 || buf_append(&b, body.data ? body.data : "", body.len) < 0 ||
	    buf_puts(&b, "\n```") < 0)
		goto out;
	rc = append_text(e, t, TR_USER, b.data, b.len, GEN_K_TEST);
out:
	buf_free(&b);
	buf_free(&body);
	return rc;
}

static int user_task(struct eng *e, struct tr_turn *t, int64_t k, const char *given)
{
	struct plan *pl = &e->plan[k];
	struct buf b = BUF_INIT;
	int rc = -1;
	/* a new task is usually about another part of the code */
	if (!given)
		e->module = gen_repo_module(e->repo, &e->r_plan, GEN_PROB_ONE / 8);
	e->task_file = -1;
	int64_t tt = pl->fixed_est > 4 ? pl->fixed_est - 4 : gen_dist_sample(&e->p->task_tokens, &e->r_size);
	if (given ? buf_puts(&b, given) < 0 : task_text(e, tt, &b) < 0)
		goto out;
	struct tr_message m;
	if (msg_set(&m, TR_USER, b.data, b.len) < 0 || append_msg(e, t, &m, GEN_K_USER) < 0)
		goto out;
	if (pl->paste && paste_message(e, t, k, 0) < 0)
		goto out;
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

static int make_turn(struct eng *e, int64_t k, const char *child_prompt, struct ar_err *err)
{
	const struct gen_profile *p = e->p;
	struct plan *pl = &e->plan[k];
	if (e->n_turns == e->cap_turns) {
		size_t cap = e->cap_turns ? e->cap_turns * 2 : 32;
		struct tr_turn *tt = realloc(e->turns, cap * sizeof *tt);
		if (!tt)
			return oom(err);
		e->turns = tt;
		e->cap_turns = cap;
	}
	struct tr_turn *t = &e->turns[e->n_turns++];
	memset(t, 0, sizeof *t);
	t->i = k;
	t->keep = -1;
	struct buf b = BUF_INIT;
	/* step 1: the previous answer joins the history */
	if (k > 0 && e->prev) {
		struct tr_message m = {0};
		m.role = TR_ASSISTANT;
		m.content = e->prev->content ? e->prev->content : (char *)"";
		m.content_len = e->prev->content ? e->prev->content_len : 0;
		m.calls = e->prev->calls;
		m.n_calls = e->prev->n_calls;
		if (hist_push(e, &m, GEN_K_ASSISTANT) < 0)
			goto oom;
	}
	/* re-fit what is left of the segment to the exact context so far: replies
	 * written longer than planned are paid for by later ones */
	if (k > 0 && !e->natural && pl->append != A_CONTINUE &&
	    fit_segment(e, pl->seg, k, ctx_now(e), err) < 0) {
		buf_free(&b);
		return -1;
	}
	/* when it is sent: model time of the previous answer, tool time, the user */
	if (k > 0) {
		int64_t gap = gen_dist_sample(&p->api_ms, &e->r_time);
		if (e->prev)
			gap += e->prev->output_tokens * 1000 / (p->decode_tps > 0 ? p->decode_tps : 60);
		if (pl->append == A_RESULT && !p->chat)
			gap += e->call.tool_ms;
		else if (pl->append == A_RESULT)
			gap += gen_dist_sample(&p->roles[e->call.role].tool_ms, &e->r_time);
		if (pl->append == A_TASK || pl->interject)
			gap += gen_dist_sample(&p->think_ms, &e->r_time);
		e->t_ms += gap;
	}
	t->t = (double)e->t_ms / 1000.0;
	t->has_t = true;
	switch (pl->append) {
	case A_FIRST:
		for (size_t i = 0; i < e->n_first; i++)
			if (append_msg(e, t, &e->first[i], e->first_kind[i]) < 0)
				goto oom;
		e->n_first = 0;
		if (user_task(e, t, k, child_prompt) < 0)
			goto oom;
		break;
	case A_CONTINUE: {
		if (p->chat && e->fm >= 0) {
			/* aider summarises the chat history but keeps the repository map and
			 * the files; the user drops all but the file being worked on */
			t->keep = e->fm;
			hist_truncate(e, (size_t)e->fm);
			if (e->n_chat_files > 1) {
				e->chat_files[0] = e->chat_files[e->n_chat_files - 1];
				e->n_chat_files = 1;
			}
			if (chat_files_message(e, &b) < 0 || append_text(e, t, TR_USER, b.data, b.len, GEN_K_NOTES) < 0 ||
			    append_text(e, t, TR_ASSISTANT, p->files_ack, strlen(p->files_ack), GEN_K_ASSISTANT) < 0)
				goto oom;
			e->files_dirty = false;
		} else {
			t->keep = 0;
			hist_truncate(e, 0);
		}
		buf_reset(&b);
		struct kv kv[] = {{"summary", e->summary ? e->summary : ""}};
		if (expand(e, &b, p->compact_continue, kv, 1, false) < 0 ||
		    append_text(e, t, TR_USER, b.data, b.len, GEN_K_SUMMARY) < 0)
			goto oom;
		break;
	}
	case A_TASK:
		if (p->chat && e->files_dirty && chat_rewrite(e, t, -1, 0) < 0)
			goto oom;
		if (user_task(e, t, k, NULL) < 0)
			goto oom;
		break;
	case A_RESULT: {
		/* fixed messages after the result come first (their size counts) */
		struct buf inter = BUF_INIT;
		int64_t fixed_now = 0;
		if (pl->interject) {
			struct gen_repo_slots rs = {e->repo, &e->r_text, e->module, -1};
			if (gw_sentence(&inter, GW_INTERJECT, &e->r_text, gen_repo_slot, &rs) < 0) {
				buf_free(&inter);
				goto oom;
			}
			fixed_now += 4 + est_buf(&inter);
		}
		if (pl->role == R_COMPACT)
			fixed_now += 4 + est(p->compact_prompt, strlen(p->compact_prompt));
		int kind = result_kind(e, e->call.role, e->call.file);
		if (p->chat) {
			int add = e->call.role == GEN_ROLE_READ ? e->call.file : -1;
			int64_t add_tokens = 0;
			if (add >= 0) {
				/* the file's share: what the rewrite costs without it is exact */
				struct buf tmpb = BUF_INIT;
				chat_files_message(e, &tmpb);
				int64_t files_now = 4 + est_buf(&tmpb);
				buf_free(&tmpb);
				int64_t old_files = e->fm >= 0 && (size_t)e->fm < e->nh ? e->h[e->fm].tok : 0;
				int64_t added_msg = 4 + est(p->added, strlen(p->added)) + 8;
				add_tokens = elastic_target(e, k, fixed_now + added_msg + files_now - old_files) - 12;
				if (add_tokens < MIN_ELASTIC)
					add_tokens = MIN_ELASTIC;
			}
			if ((e->files_dirty || add >= 0) && chat_rewrite(e, t, add, add_tokens) < 0) {
				buf_free(&inter);
				goto oom;
			}
			buf_reset(&b);
			if (e->call.role == GEN_ROLE_READ) {
				struct kv kv[] = {{"path", add >= 0 ? e->repo->files[add].path : ""}};
				if (expand(e, &b, p->added, kv, 1, false) < 0) {
					buf_free(&inter);
					goto oom;
				}
				kind = GEN_K_USER;
			} else if (e->call.role == GEN_ROLE_EDIT) {
				struct gen_repo_slots rs = {e->repo, &e->r_text, e->module, -1};
				if (expand(e, &b, p->followup ? p->followup : "{task}", NULL, 0, false) < 0 ||
				    gw_sentence(&b, GW_INTERJECT, &e->r_text, gen_repo_slot, &rs) < 0) {
					buf_free(&inter);
					goto oom;
				}
				kind = GEN_K_USER;
			} else {
				const struct gen_role_def *d = &p->roles[e->call.role];
				int64_t tgt = pl->elastic ? elastic_target(e, k, fixed_now) : pl->fixed_est;
				if (!e->call.cmd) {
					struct buf cmd = BUF_INIT;
					if (e->call.role == GEN_ROLE_BUILD)
						buf_puts(&cmd, gen_repo_build_cmd(e->repo));
					else
						gen_repo_test_cmd(e->repo, e->module, &cmd);
					e->call.cmd = buf_detach(&cmd);
				}
				if (result_text(e, tgt, d->result, &b) < 0) {
					buf_free(&inter);
					goto oom;
				}
			}
			if (append_text(e, t, TR_USER, b.data, b.len, kind) < 0) {
				buf_free(&inter);
				goto oom;
			}
		} else {
			const struct gen_role_def *d = &p->roles[e->call.role];
			int64_t tgt = pl->elastic ? elastic_target(e, k, fixed_now) : pl->fixed_est;
			buf_reset(&b);
			if (result_text(e, tgt, d->result, &b) < 0) {
				buf_free(&inter);
				goto oom;
			}
			struct tr_message m;
			if (msg_set(&m, TR_TOOL, b.data, b.len) < 0 || !(m.tool_call_id = strdup(e->call.id)) ||
			    !(m.name = strdup(e->call.tool))) {
				buf_free(&inter);
				goto oom;
			}
			if (append_msg(e, t, &m, kind) < 0) {
				buf_free(&inter);
				goto oom;
			}
		}
		if (pl->interject && append_text(e, t, TR_USER, inter.data, inter.len, GEN_K_USER) < 0) {
			buf_free(&inter);
			goto oom;
		}
		buf_free(&inter);
		if (pl->role == R_COMPACT &&
		    append_text(e, t, TR_USER, p->compact_prompt, strlen(p->compact_prompt), GEN_K_USER) < 0)
			goto oom;
		break;
	}
	}
	buf_free(&b);
	if (make_response(e, k, t, err) < 0)
		return -1;
	/* after a compaction the context restarts from what was kept: fit the rest */
	if (pl->append == A_CONTINUE && !e->natural && k + 1 < e->n_plan &&
	    fit_segment(e, pl->seg, k + 1, ctx_now(e) + tr_response_history_tokens(e->prev), err) < 0)
		return -1;
	return 0;
oom:
	buf_free(&b);
	return oom(err);
}

/* ---- sessions ------------------------------------------------------------ */

static uint64_t mix(uint64_t a, uint64_t b)
{
	struct rng r;
	rng_seed(&r, a ^ (b * 0x9e3779b97f4a7c15ULL));
	return rng_next(&r);
}

static void eng_free(struct eng *e)
{
	pend_clear(&e->call);
	hist_truncate(e, 0);
	free(e->h);
	free(e->plan);
	free(e->summary);
	for (size_t i = 0; i < e->n_first; i++)
		tr_message_clear(&e->first[i]);
	free(e->first);
	free(e->first_kind);
	if (e->own_repo)
		gen_repo_free(e->repo);
}

static int eng_init(struct eng *e, const struct gen_opts *o, uint64_t seed)
{
	memset(e, 0, sizeof *e);
	e->o = o;
	e->p = o->profile;
	e->fm = -1;
	e->task_file = -1;
	e->call.file = -1;
	e->call.module = -1;
	struct rng base;
	rng_seed(&base, seed);
	e->r_plan = rng_fork(&base, rng_hash("plan"));
	e->r_text = rng_fork(&base, rng_hash("text"));
	e->r_size = rng_fork(&base, rng_hash("size"));
	e->r_time = rng_fork(&base, rng_hash("time"));
	e->r_id = rng_fork(&base, rng_hash("id"));
	sample_date(&e->r_time, e->date, sizeof e->date);
	return 0;
}

/* Builds the prompt pieces from the mirror. */
static int build_prompt(struct eng *e, struct gen_prompt **out)
{
	struct gen_prompt *pr = calloc(1, sizeof *pr);
	struct buf b = BUF_INIT;
	if (!pr)
		return -1;
	*out = pr;
#define PIECE(pk, ps, pn)                                                               \
	do {                                                                                  \
		if (pr->n == pr->cap) {                                                       \
			size_t cap_ = pr->cap ? pr->cap * 2 : 64;                             \
			struct gen_piece *np_ = realloc(pr->p, cap_ * sizeof *np_);           \
			if (!np_)                                                             \
				goto fail;                                                    \
			pr->p = np_;                                                          \
			pr->cap = cap_;                                                       \
		}                                                                             \
		pr->p[pr->n].kind = (pk);                                                     \
		if (!(pr->p[pr->n].text = dup_n((ps), (pn))))                                 \
			goto fail;                                                            \
		pr->p[pr->n].n = (pn);                                                        \
		pr->n++;                                                                      \
	} while (0)
	if (e->ses->system && *e->ses->system) {
		PIECE(GEN_K_SYSTEM, e->ses->system, strlen(e->ses->system));
		pr->framing += TR_MESSAGE_OVERHEAD_TOKENS;
	}
	if (e->ses->tools && cJSON_GetArraySize(e->ses->tools) > 0) {
		if (jsonh_put(&b, e->ses->tools) < 0)
			goto fail;
		PIECE(GEN_K_TOOLS, b.data, b.len);
	}
	for (size_t i = 0; i < e->nh; i++) {
		const struct tr_message *m = &e->h[i].m;
		pr->framing += TR_MESSAGE_OVERHEAD_TOKENS;
		if (m->content_len)
			PIECE(e->h[i].kind, m->content, m->content_len);
		for (size_t j = 0; j < m->n_calls; j++) {
			buf_reset(&b);
			buf_printf(&b, "%s %s", m->calls[j].name, m->calls[j].arguments);
			PIECE(GEN_K_ARGS, b.data, b.len);
			pr->framing += TR_TOOL_CALL_OVERHEAD_TOKENS;
		}
	}
#undef PIECE
	buf_free(&b);
	return 0;
fail:
	buf_free(&b);
	return -1;
}

void gen_prompt_free(struct gen_prompt *pr)
{
	if (!pr)
		return;
	for (size_t i = 0; i < pr->n; i++)
		free(pr->p[i].text);
	free(pr->p);
	free(pr);
}

void gen_session_free(struct gen_session *s)
{
	if (!s)
		return;
	tr_session_free(s->session);
	for (size_t i = 0; i < s->n_turns; i++) {
		struct tr_turn *t = &s->turns[i];
		for (size_t j = 0; j < t->n_append; j++)
			tr_message_clear(&t->append[j]);
		free(t->append);
		tr_response_free(t->response);
		cJSON_Delete(t->recorded);
		cJSON_Delete(t->extra);
	}
	free(s->turns);
	for (size_t i = 0; i < s->n_children; i++)
		gen_session_free(s->children[i]);
	free(s->children);
	gen_prompt_free(s->prompt);
	free(s);
}

/* Moves the engine's product into a gen_session. */
static int finish(struct eng *e, struct gen_session **out, struct ar_err *err)
{
	struct gen_session *s = calloc(1, sizeof *s);
	if (!s)
		return oom(err);
	if (build_prompt(e, &s->prompt) < 0) {
		gen_session_free(s);
		return oom(err);
	}
	s->session = e->ses;
	e->ses = NULL;
	s->turns = e->turns;
	s->n_turns = e->n_turns;
	e->turns = NULL;
	e->n_turns = 0;
	s->children = e->children;
	s->n_children = e->n_children;
	e->children = NULL;
	e->n_children = 0;
	s->final_tokens = ctx_now(e);
	s->real_tokens = -1;
	s->depth_target = e->target;
	*out = s;
	return 0;
}

static void eng_discard(struct eng *e)
{
	struct gen_session tmp = {0};
	tmp.session = e->ses;
	tmp.turns = e->turns;
	tmp.n_turns = e->n_turns;
	tmp.children = e->children;
	tmp.n_children = e->n_children;
	e->ses = NULL;
	e->turns = NULL;
	e->n_turns = 0;
	e->children = NULL;
	e->n_children = 0;
	struct gen_session *heap = malloc(sizeof *heap);
	if (heap) {
		*heap = tmp;
		gen_session_free(heap);
	}
}

static int pick_language(struct eng *e)
{
	int k = gen_pick(&e->r_plan, e->p->lang_weight, GEN_LANG_N);
	return k < 0 ? GEN_LANG_PYTHON : k;
}

static int run_child(struct eng *parent, int64_t k, const char *prompt, struct gen_session **out, int64_t *dur_ms,
		     struct ar_err *err)
{
	struct eng e;
	eng_init(&e, parent->o, rng_next(&parent->r_plan));
	e.natural = true;
	e.repo = parent->repo;
	e.module = parent->module;
	snprintf(e.id, sizeof e.id, "%s/agent-%zu", parent->id, parent->n_children + 1);
	int rc = -1;
	if (build_session(&e, 0, parent->id, k, err) < 0)
		goto out;
	if (build_first(&e) < 0) {
		oom(err);
		goto out;
	}
	int64_t n = 1 + gen_dist_sample(&e.p->sub_calls, &e.r_plan);
	e.n_seg = 1;
	e.seg_end[0] = n - 1;
	if (plan_make(&e, n, err) < 0)
		goto out;
	/* a subagent explores and then reports */
	for (int64_t i = 0; i < n; i++)
		if (e.plan[i].role != R_FINAL && !gen_role_elastic(e.plan[i].role))
			e.plan[i].role = GEN_ROLE_READ;
	e.plan[n - 1].role = R_FINAL;
	for (int64_t i = 0; i < n; i++)
		if (make_turn(&e, i, i == 0 ? prompt : NULL, err) < 0)
			goto out;
	*dur_ms = e.t_ms + (e.prev ? e.prev->output_tokens * 1000 / (e.p->decode_tps ? e.p->decode_tps : 60) : 0) +
		  gen_dist_sample(&e.p->api_ms, &e.r_time);
	rc = finish(&e, out, err);
out:
	if (rc < 0)
		eng_discard(&e);
	eng_free(&e);
	return rc;
}

int gen_session_make_target(struct gen_session **out, const struct gen_opts *o, int64_t index, int64_t target,
			    struct ar_err *err)
{
	*out = NULL;
	struct eng e;
	const struct gen_profile *p = o->profile;
	eng_init(&e, o, mix(o->seed, (uint64_t)index));
	e.target = target;
	int rc = -1;
	if (o->sessions > 1)
		snprintf(e.id, sizeof e.id, "gen-%s-%llu-%04lld", p->name, (unsigned long long)o->seed,
			 (long long)(index + 1));
	else
		snprintf(e.id, sizeof e.id, "gen-%s-%llu", p->name, (unsigned long long)o->seed);
	struct ar_err rerr;
	if (gen_repo_new(&e.repo, rng_next(&e.r_plan), (enum gen_lang)pick_language(&e), p->home, &rerr) < 0) {
		oom(err);
		goto out;
	}
	e.own_repo = true;
	e.module = 0;
	if (build_session(&e, index, NULL, -1, err) < 0)
		goto out;
	if (build_first(&e) < 0) {
		oom(err);
		goto out;
	}
	int64_t start = e.prefix + e.first_tokens;
	int64_t growth = p->growth_per_turn > 0 ? p->growth_per_turn : 3000;
	int64_t n = o->turns;
	/* segments: a compaction request at about compact_at of the limit, then
	 * a fresh context that climbs to the depth */
	if (o->compact_permille > 0) {
		int64_t threshold = o->context_limit * o->compact_permille / 1000;
		int64_t margin = threshold * (5 + (int64_t)rng_below(&e.r_plan, 20)) / 1000;
		int64_t t1 = threshold - margin;
		int64_t summary = gen_dist_sample(&p->summary_tokens, &e.r_size) + 120;
		int64_t climb1 = t1 - start, climb2 = target - (e.prefix + summary);
		if (climb1 < 4 * MIN_ELASTIC) {
			char frac[8];
			snprintf(frac, sizeof frac, "%03d", o->compact_permille);
			for (int z = 2; z > 0 && frac[z] == '0'; z--)
				frac[z] = 0;
			ar_err_set(err, AR_EINVAL,
				   "--compact-at 0.%s of --context-limit %lld is below what style '%s' starts with (%lld tokens)",
				   frac, (long long)o->context_limit, p->name, (long long)start);
			goto out;
		}
		if (climb2 < MIN_ELASTIC)
			climb2 = MIN_ELASTIC;
		if (n == 0)
			n = (climb1 + growth - 1) / growth + 1 + (climb2 + growth - 1) / growth + 1;
		if (n < 4) {
			ar_err_set(err, AR_EINVAL, "--turns %lld is too few for a compaction: it needs at least 4 turns",
				   (long long)n);
			goto out;
		}
		int64_t n1 = n * climb1 / (climb1 + climb2);
		if (n1 < 2)
			n1 = 2;
		if (n - n1 < 2)
			n1 = n - 2;
		e.n_seg = 2;
		e.seg_end[0] = n1 - 1;
		e.seg_target[0] = t1;
		e.seg_end[1] = n - 1;
		e.seg_target[1] = target;
	} else {
		if (n == 0) {
			n = 1 + (target - start + growth - 1) / growth;
			if (n < 2)
				n = 2;
		}
		e.n_seg = 1;
		e.seg_end[0] = n - 1;
		e.seg_target[0] = target;
	}
	if (plan_make(&e, n, err) < 0 || plan_check(&e, err) < 0)
		goto out;
	for (int64_t k = 0; k < n; k++)
		if (make_turn(&e, k, NULL, err) < 0)
			goto out;
	/* the contract: the final prompt within 2% of the target. Tight plans (many
	 * turns for little depth) can miss; refuse rather than write it */
	if (llabs(ctx_now(&e) - target) * 50 > target) {
		ar_err_set(err, AR_EINVAL,
			   "--turns %lld is more than --depth %lld can fill with style '%s': the session would end at %lld tokens; use fewer --turns",
			   (long long)n, (long long)o->depth, p->name, (long long)ctx_now(&e));
		goto out;
	}
	rc = finish(&e, out, err);
out:
	if (rc < 0)
		eng_discard(&e);
	eng_free(&e);
	return rc;
}

int gen_session_make(struct gen_session **out, const struct gen_opts *o, int64_t index, struct ar_err *err)
{
	return gen_session_make_target(out, o, index, o->depth, err);
}

int64_t gen_natural_growth(const struct gen_profile *p, uint64_t seed, int64_t *per_role, int64_t *resp)
{
	struct gen_opts o = {0};
	o.profile = p;
	o.seed = seed;
	o.depth = 1 << 30;
	o.sessions = 1;
	struct eng e;
	eng_init(&e, &o, seed);
	const int64_t n = 2000;
	e.n_seg = 1;
	e.seg_end[0] = n - 1;
	e.seg_target[0] = o.depth;
	int64_t total = 0, rtot = 0;
	struct ar_err err;
	if (plan_make(&e, n, &err) == 0) {
		if (per_role)
			for (int r = 0; r < GEN_NROLES; r++)
				per_role[r] = 0;
		for (int64_t k = 1; k < n; k++) {
			const struct plan *pl = &e.plan[k];
			int64_t add = pl->fixed_est + (pl->elastic ? pl->natural : 0);
			total += add + e.plan[k - 1].resp_est;
			rtot += e.plan[k - 1].resp_est;
			if (per_role && pl->append == A_RESULT && e.plan[k - 1].role < GEN_NROLES)
				per_role[e.plan[k - 1].role] += add;
		}
		if (per_role)
			for (int r = 0; r < GEN_NROLES; r++)
				per_role[r] /= n - 1;
	}
	if (resp)
		*resp = rtot / (n - 1);
	eng_free(&e);
	return total / (n - 1);
}
