#include "gen_repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_words.h"
#include "tokest.h"

/* ---- filling to a token budget ------------------------------------------ */

int64_t gen_fill(struct buf *b, int64_t tokens, gen_line_fn next, void *ctx, int64_t max_lines, bool exact)
{
	size_t start = b->len;
	size_t *ends = NULL, cap = 0, n = 0;
	int64_t *est = NULL;
	int64_t running = 0;
	int64_t ret = -1;
	if (tokens < 1)
		tokens = 1;
	for (int round = 0; round < 4; round++) {
		/* grow until the per-line estimate reaches the goal */
		while (running < tokens && (max_lines <= 0 || (int64_t)n < max_lines)) {
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				size_t *e2 = realloc(ends, cap * sizeof *e2);
				if (e2)
					ends = e2;
				int64_t *t2 = realloc(est, cap * sizeof *t2);
				if (t2)
					est = t2;
				if (!e2 || !t2)
					goto out;
			}
			size_t before = b->len;
			if (next(ctx, b) < 0)
				goto out;
			if (b->len == before)
				break; /* the source ran dry */
			est[n] = tokest_text(b->data + before, b->len - before);
			ends[n] = b->len;
			running += est[n];
			n++;
		}
		/* the whole text's figure differs from the per-line sum by rounding and
		 * by how pieces join: correct towards it, dropping lines from the end
		 * while that gets closer */
		if (!exact)
			break;
		int64_t diff = tokest_text(b->data + start, b->len - start) - tokens;
		if (diff > 0 && n > 1) {
			size_t keep = n;
			while (keep > 1 && diff > 0 && llabs(diff - est[keep - 1]) < llabs(diff)) {
				diff -= est[keep - 1];
				running -= est[keep - 1];
				keep--;
			}
			if (keep < n) {
				n = keep;
				b->len = ends[n - 1];
				b->data[b->len] = 0;
			}
		}
		int64_t avg = n ? running / (int64_t)n : 8;
		if (diff >= -(avg > 2 ? avg / 2 : 1) || (max_lines > 0 && (int64_t)n >= max_lines))
			break;
		running = tokens + diff; /* short: the loop adds about -diff more */
	}
	ret = (int64_t)n;
out:
	free(ends);
	free(est);
	return ret;
}

/* ---- repository layout -------------------------------------------------- */

static int add_file_raw(struct gen_repo *repo, const char *path, enum gen_lang lang, enum gen_file_kind kind,
			int module)
{
	if (repo->n_files == repo->cap_files) {
		int cap = repo->cap_files ? repo->cap_files * 2 : 32;
		struct gen_file *f = realloc(repo->files, (size_t)cap * sizeof *f);
		if (!f)
			return -1;
		repo->files = f;
		repo->cap_files = cap;
	}
	struct gen_file *f = &repo->files[repo->n_files];
	memset(f, 0, sizeof *f);
	if (!(f->path = strdup(path)))
		return -1;
	f->lang = lang;
	f->kind = kind;
	f->module = module;
	f->seed = rng_next(&repo->r);
	buf_init(&f->text, 0);
	return repo->n_files++;
}

static void module_paths(const struct gen_repo *repo, const struct gen_module *m, char *src, char *test,
			 char *hdr, size_t n)
{
	hdr[0] = 0;
	switch (repo->lang) {
	case GEN_LANG_C:
		snprintf(src, n, "src/%s.c", m->name);
		snprintf(hdr, n, "src/%s.h", m->name);
		snprintf(test, n, "tests/test_%s.c", m->name);
		break;
	case GEN_LANG_PYTHON:
		snprintf(src, n, "%s/%s.py", repo->pkg, m->name);
		snprintf(test, n, "tests/test_%s.py", m->name);
		break;
	case GEN_LANG_TS:
		snprintf(src, n, "src/%s.ts", m->name);
		snprintf(test, n, "test/%s.test.ts", m->name);
		break;
	case GEN_LANG_GO:
		snprintf(src, n, "internal/%s/%s.go", m->name, m->name);
		snprintf(test, n, "internal/%s/%s_test.go", m->name, m->name);
		break;
	default:
		snprintf(src, n, "src/%s.rs", m->name);
		snprintf(test, n, "tests/%s.rs", m->name);
		break;
	}
}

static int add_module(struct gen_repo *repo)
{
	if (repo->n_mods == repo->cap_mods) {
		int cap = repo->cap_mods ? repo->cap_mods * 2 : 16;
		struct gen_module *m = realloc(repo->mods, (size_t)cap * sizeof *m);
		if (!m)
			return -1;
		repo->mods = m;
		repo->cap_mods = cap;
	}
	struct gen_module *m = &repo->mods[repo->n_mods];
	memset(m, 0, sizeof *m);
	/* a noun not used yet (fall back to noun+adjective) */
	for (int tries = 0; tries < 50; tries++) {
		const char *w = gw_noun(&repo->r);
		bool dup = false;
		for (int i = 0; i < repo->n_mods; i++)
			if (!strcmp(repo->mods[i].name, w))
				dup = true;
		if (!dup || tries == 49) {
			if (dup)
				snprintf(m->name, sizeof m->name, "%s_%s", w, gw_adj(&repo->r));
			else
				snprintf(m->name, sizeof m->name, "%s", w);
			break;
		}
	}
	enum gw_case tc = repo->lang == GEN_LANG_C ? GW_SNAKE : GW_PASCAL;
	const char *tn = gw_noun(&repo->r);
	if (!strcmp(tn, m->name))
		gw_ident_to(m->type, sizeof m->type, tc, m->name, NULL, NULL);
	else
		gw_ident_to(m->type, sizeof m->type, tc, m->name, tn, NULL);
	m->n_fns = 6 + (int)rng_below(&repo->r, GEN_CODE_MAX_FNS - 6);
	for (int i = 0; i < m->n_fns; i++) {
		const char *v = gw_verb(&repo->r), *o = gw_noun(&repo->r);
		switch (repo->lang) {
		case GEN_LANG_C:
			/* module_verb or module_verb_noun, as C libraries name things */
			gw_ident_to(m->fns[i], sizeof m->fns[i], GW_SNAKE, m->name, v, rng_below(&repo->r, 2) ? o : NULL);
			break;
		case GEN_LANG_TS:
			gw_ident_to(m->fns[i], sizeof m->fns[i], GW_CAMEL, v, o, NULL);
			break;
		case GEN_LANG_GO:
			gw_ident_to(m->fns[i], sizeof m->fns[i], GW_PASCAL, v, o, NULL);
			break;
		default:
			gw_ident_to(m->fns[i], sizeof m->fns[i], GW_SNAKE, v, o, NULL);
			break;
		}
	}
	char src[160], test[160], hdr[160];
	module_paths(repo, m, src, test, hdr, sizeof src);
	int idx = repo->n_mods++;
	m->src = add_file_raw(repo, src, repo->lang, GEN_FILE_SRC, idx);
	m = &repo->mods[idx];
	m->test = add_file_raw(repo, test, repo->lang, GEN_FILE_TEST, idx);
	m = &repo->mods[idx];
	m->header = hdr[0] ? add_file_raw(repo, hdr, repo->lang, GEN_FILE_HEADER, idx) : -1;
	m = &repo->mods[idx];
	if (m->src < 0 || m->test < 0 || (hdr[0] && m->header < 0))
		return -1;
	return idx;
}

static const char *const project_suffix[] = {"", "d", "kit", "db", "io", "hub", "lib", "ctl", "srv", "flow"};

int gen_repo_new(struct gen_repo **out, uint64_t seed, enum gen_lang lang, const char *home, struct ar_err *err)
{
	*out = NULL;
	struct gen_repo *repo = calloc(1, sizeof *repo);
	if (!repo)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	rng_seed(&repo->r, seed);
	repo->lang = lang;
	const char *w = gw_noun(&repo->r);
	const char *suf = project_suffix[rng_below(&repo->r, sizeof project_suffix / sizeof project_suffix[0])];
	if (!*suf) {
		const char *w2 = gw_noun(&repo->r);
		snprintf(repo->name, sizeof repo->name, "%s%s", w, strcmp(w, w2) ? w2 : "s");
	} else {
		snprintf(repo->name, sizeof repo->name, "%s%s", w, suf);
	}
	snprintf(repo->root, sizeof repo->root, "%s/%s", home && *home ? home : "/home/dev", repo->name);
	snprintf(repo->pkg, sizeof repo->pkg, "%s", repo->name);
	int n = 6 + (int)rng_below(&repo->r, 8);
	for (int i = 0; i < n; i++)
		if (add_module(repo) < 0)
			goto oom;
	/* project files */
	static const char *const proj_files[GEN_LANG_N][3] = {
		[GEN_LANG_C] = {"Makefile", "README.md", "CMakeLists.txt"},
		[GEN_LANG_PYTHON] = {"pyproject.toml", "README.md", "setup.cfg"},
		[GEN_LANG_TS] = {"package.json", "README.md", "tsconfig.json"},
		[GEN_LANG_GO] = {"go.mod", "README.md", "Makefile"},
		[GEN_LANG_RUST] = {"Cargo.toml", "README.md", "src/lib.rs"},
	};
	for (int i = 0; i < 3; i++) {
		const char *p = proj_files[lang][i];
		enum gen_file_kind k = !strcmp(p, "README.md") ? GEN_FILE_DOC : GEN_FILE_CONFIG;
		if (!strcmp(p, "src/lib.rs"))
			k = GEN_FILE_SRC;
		if (add_file_raw(repo, p, k == GEN_FILE_SRC ? lang : GEN_LANG_N, k, -1) < 0)
			goto oom;
	}
	*out = repo;
	return 0;
oom:
	gen_repo_free(repo);
	return ar_err_set(err, AR_ENOMEM, "out of memory");
}

void gen_repo_free(struct gen_repo *repo)
{
	if (!repo)
		return;
	for (int i = 0; i < repo->n_files; i++) {
		free(repo->files[i].path);
		buf_free(&repo->files[i].text);
	}
	for (int i = 0; i < repo->n_edits; i++) {
		free(repo->edits[i].old_text);
		free(repo->edits[i].new_text);
	}
	free(repo->files);
	free(repo->mods);
	free(repo->edits);
	free(repo);
}

int gen_repo_module(struct gen_repo *repo, struct rng *r, int p_new)
{
	if (repo->n_mods == 0 || (int)(rng_next(r) >> 48) < p_new) {
		int m = add_module(repo);
		if (m >= 0)
			return m;
	}
	return (int)rng_below(r, (uint64_t)repo->n_mods);
}

int gen_repo_pick_unseen(struct gen_repo *repo, struct rng *r, int kind)
{
	int cand[512], n = 0;
	for (int i = 0; i < repo->n_files && n < 512; i++) {
		const struct gen_file *f = &repo->files[i];
		if (f->seen || (kind >= 0 && (int)f->kind != kind))
			continue;
		if (kind < 0 && f->kind != GEN_FILE_SRC && f->kind != GEN_FILE_TEST && rng_below(r, 4) != 0)
			continue; /* mostly code */
		cand[n++] = i;
	}
	if (n == 0) {
		int m = add_module(repo);
		if (m < 0)
			return -1;
		return kind == GEN_FILE_TEST ? repo->mods[m].test : repo->mods[m].src;
	}
	return cand[rng_below(r, (uint64_t)n)];
}

int gen_repo_pick_seen(struct gen_repo *repo, struct rng *r)
{
	int cand[512], n = 0;
	for (int i = 0; i < repo->n_files && n < 512; i++)
		if (repo->files[i].seen && repo->files[i].made && repo->files[i].lang != GEN_LANG_N &&
		    repo->files[i].text.len > 0)
			cand[n++] = i;
	if (!n)
		return -1;
	/* prefer source files over tests, recent over old: bias to the end */
	int a = (int)rng_below(r, (uint64_t)n), b = (int)rng_below(r, (uint64_t)n);
	return cand[a > b ? a : b];
}

int gen_repo_add_file(struct gen_repo *repo, int module, enum gen_file_kind kind, const char *path)
{
	return add_file_raw(repo, path, repo->lang, kind, module);
}

/* ---- file text ---------------------------------------------------------- */

/* "%6lld" by hand: this runs once per line of every file read */
static int put_number(struct buf *b, int64_t line, enum gen_numbering num)
{
	char d[24];
	int n = 0;
	uint64_t v = line > 0 ? (uint64_t)line : 0;
	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < 20);
	char out[40];
	int o = 0;
	if (num == GEN_NUM_NONE)
		return 0;
	if (num == GEN_NUM_NL)
		out[o++] = 'L';
	else
		for (int pad = n; pad < 6; pad++)
			out[o++] = ' ';
	while (n)
		out[o++] = d[--n];
	if (num == GEN_NUM_ARROW) {
		memcpy(out + o, "\xe2\x86\x92", 3);
		o += 3;
	} else if (num == GEN_NUM_TAB) {
		out[o++] = '\t';
	} else {
		out[o++] = ':';
		out[o++] = ' ';
	}
	return buf_append(b, out, (size_t)o);
}

struct make_ctx {
	struct gen_repo *repo;
	struct gen_file *f;
	struct gen_code *code;
	struct rng r;
	enum gen_numbering num;
	int64_t line;
	struct buf raw;
	int doc_state;
};

static int other_module(struct gen_repo *repo, int m)
{
	if (repo->n_mods < 2)
		return m;
	return (m + 1 + (int)(repo->files[0].seed % (uint64_t)(repo->n_mods - 1))) % repo->n_mods;
}

static int doc_line(struct make_ctx *c, struct buf *b)
{
	/* markdown or config text for project files */
	struct gen_repo_slots s = {c->repo, &c->r, 0, -1};
	const char *p = c->f->path;
	int rc;
	if (strstr(p, ".md")) {
		if (c->doc_state == 0)
			rc = buf_printf(b, "# %s\n", c->repo->name);
		else if (c->doc_state % 7 == 3)
			rc = buf_printf(b, "## %s\n", gw_noun(&c->r));
		else if (c->doc_state % 7 == 4 || c->doc_state % 7 == 0)
			rc = buf_putc(b, '\n');
		else {
			rc = gw_sentence(b, GW_DOC, &c->r, gen_repo_slot, &s);
			if (rc == 0)
				rc = buf_putc(b, '\n');
		}
	} else if (strstr(p, ".json")) {
		rc = c->doc_state == 0 ? buf_printf(b, "{\n  \"name\": \"%s\",\n", c->repo->name)
				       : buf_printf(b, "  \"%s\": \"^%u.%u.%u\",\n", gw_noun(&c->r),
						    (unsigned)rng_below(&c->r, 9) + 1, (unsigned)rng_below(&c->r, 20),
						    (unsigned)rng_below(&c->r, 10));
	} else {
		rc = c->doc_state == 0 ? buf_printf(b, "[project]\nname = \"%s\"\n", c->repo->name)
				       : buf_printf(b, "%s_%s = %u\n", gw_adj(&c->r), gw_noun(&c->r),
						    (unsigned)rng_below(&c->r, 4096));
	}
	c->doc_state++;
	return rc;
}

/* One line of the file: appended raw to c->raw and numbered to b. */
static int make_line(void *ctx, struct buf *b)
{
	struct make_ctx *c = ctx;
	size_t before = c->raw.len;
	int rc = c->code ? gen_code_line(c->code, &c->raw) : doc_line(c, &c->raw);
	if (rc < 0)
		return -1;
	c->line++;
	if (put_number(b, c->line, c->num) < 0)
		return -1;
	return buf_append(b, c->raw.data + before, c->raw.len - before);
}

static int code_for(struct gen_repo *repo, const struct gen_file *f, uint64_t seed, struct gen_code **out)
{
	*out = NULL;
	if (f->lang == GEN_LANG_N || f->module < 0)
		return 0;
	const struct gen_module *m = &repo->mods[f->module];
	const struct gen_module *o = &repo->mods[other_module(repo, f->module)];
	struct gen_code_ctx cc = {0};
	cc.lang = f->lang;
	cc.project = repo->pkg;
	cc.module = m->name;
	cc.type = m->type;
	for (int i = 0; i < m->n_fns; i++)
		cc.fns[i] = m->fns[i];
	cc.n_fns = m->n_fns;
	cc.other_module = o->name;
	cc.other_type = o->type;
	cc.test = f->kind == GEN_FILE_TEST;
	cc.header = f->kind == GEN_FILE_HEADER;
	return gen_code_new(out, &cc, seed);
}

int gen_repo_make(struct gen_repo *repo, int fi, int64_t tokens, enum gen_numbering num)
{
	struct gen_file *f = &repo->files[fi];
	if (f->made)
		return 0;
	struct make_ctx c = {repo, f, NULL, {{0}}, num, 0, BUF_INIT, 0};
	struct buf numbered = BUF_INIT;
	int rc = -1;
	rng_seed(&c.r, f->seed);
	if (code_for(repo, f, f->seed ^ 0xc0de, &c.code) < 0)
		goto out;
	int64_t kept = gen_fill(&numbered, tokens, make_line, &c, 0, repo->exact);
	if (kept < 0)
		goto out;
	/* keep exactly the lines the fill kept */
	const char *s = c.raw.data ? c.raw.data : "";
	size_t len = 0;
	for (int64_t i = 0; i < kept; i++) {
		const char *e = strchr(s + len, '\n');
		if (!e) {
			len = strlen(s);
			break;
		}
		len = (size_t)(e - s) + 1;
	}
	buf_reset(&f->text);
	if (buf_append(&f->text, s, len) < 0)
		goto out;
	f->made = true;
	rc = 0;
out:
	gen_code_free(c.code);
	buf_free(&c.raw);
	buf_free(&numbered);
	return rc;
}

int64_t gen_repo_lines(const struct gen_repo *repo, int fi)
{
	const struct buf *t = &repo->files[fi].text;
	int64_t n = 0;
	for (size_t i = 0; i < t->len; i++)
		if (t->data[i] == '\n')
			n++;
	if (t->len && t->data[t->len - 1] != '\n')
		n++;
	return n;
}

/* Start of line `line` (1-based) in text, or text->len. */
static size_t line_start(const struct buf *t, int64_t line)
{
	size_t pos = 0;
	for (int64_t l = 1; l < line && pos < t->len; l++) {
		const char *e = memchr(t->data + pos, '\n', t->len - pos);
		if (!e)
			return t->len;
		pos = (size_t)(e - t->data) + 1;
	}
	return pos;
}

int64_t gen_repo_render(struct gen_repo *repo, int fi, int64_t from, int64_t count, enum gen_numbering num,
			struct buf *b)
{
	const struct buf *t = &repo->files[fi].text;
	if (from < 1)
		from = 1;
	size_t pos = line_start(t, from);
	int64_t line = from, n = 0;
	while (pos < t->len && (count <= 0 || n < count)) {
		const char *e = memchr(t->data + pos, '\n', t->len - pos);
		size_t end = e ? (size_t)(e - t->data) + 1 : t->len;
		if (put_number(b, line, num) < 0 || buf_append(b, t->data + pos, end - pos) < 0)
			return -1;
		pos = end;
		line++;
		n++;
	}
	return n;
}

void gen_repo_range(struct gen_repo *repo, int fi, int64_t tokens, enum gen_numbering num, struct rng *r,
		    int64_t *from, int64_t *count)
{
	struct buf tmp = BUF_INIT;
	gen_repo_render(repo, fi, 1, 0, num, &tmp);
	int64_t total = tokest_text(tmp.data ? tmp.data : "", tmp.len);
	int64_t lines = gen_repo_lines(repo, fi);
	buf_free(&tmp);
	*from = 1;
	*count = 0;
	if (total <= tokens || lines < 4)
		return;
	int64_t want = lines * tokens / (total ? total : 1);
	if (want < 1)
		want = 1;
	*count = want;
	if (lines > want)
		*from = 1 + (int64_t)rng_below(r, (uint64_t)(lines - want + 1));
}

/* ---- edits -------------------------------------------------------------- */

int gen_repo_edit(struct gen_repo *repo, int fi, struct rng *r, int64_t new_tokens, const char **old_text,
		  const char **new_text, int64_t *line_out)
{
	struct gen_file *f = &repo->files[fi];
	int64_t lines = gen_repo_lines(repo, fi);
	if (!f->made || lines < 1)
		return -1;
	/* a non-blank line away from the very top */
	int64_t first = lines > 6 ? 3 + (int64_t)rng_below(r, (uint64_t)(lines - 4)) : 1;
	size_t a = line_start(&f->text, first);
	for (int tries = 0; tries < 8 && a < f->text.len && f->text.data[a] == '\n'; tries++) {
		first = 1 + (int64_t)rng_below(r, (uint64_t)lines);
		a = line_start(&f->text, first);
	}
	int64_t span = 1 + (int64_t)rng_below(r, 3);
	if (first + span - 1 > lines)
		span = lines - first + 1;
	size_t e = line_start(&f->text, first + span);
	/* the old text without its final newline, as an editor would quote it */
	size_t old_len = e - a;
	if (old_len && f->text.data[a + old_len - 1] == '\n')
		old_len--;
	/* indentation of the first old line carries over */
	size_t ind = 0;
	while (a + ind < e && (f->text.data[a + ind] == ' ' || f->text.data[a + ind] == '\t'))
		ind++;
	struct buf nw = BUF_INIT;
	struct gen_code *code = NULL;
	struct gen_edit *ed;
	int ret = -1;
	if (code_for(repo, f, rng_next(r), &code) < 0 || !code)
		goto out;
	/* new statements at the old indentation */
	int64_t goal = new_tokens > 4 ? new_tokens : 4;
	int added = 0;
	do {
		if (added && buf_putc(&nw, '\n') < 0)
			goto out;
		if (buf_append(&nw, f->text.data + a, ind) < 0 || gen_code_statement(code, &nw, 0) < 0)
			goto out;
		added++;
	} while (tokest_text(nw.data, nw.len) < goal && added < 60);
	if (repo->n_edits == repo->cap_edits) {
		int cap = repo->cap_edits ? repo->cap_edits * 2 : 16;
		struct gen_edit *p = realloc(repo->edits, (size_t)cap * sizeof *p);
		if (!p)
			goto out;
		repo->edits = p;
		repo->cap_edits = cap;
	}
	ed = &repo->edits[repo->n_edits];
	ed->file = fi;
	ed->line = first;
	ed->old_text = strndup(f->text.data + a, old_len);
	ed->new_text = strndup(nw.data, nw.len);
	if (!ed->old_text || !ed->new_text) {
		free(ed->old_text);
		free(ed->new_text);
		goto out;
	}
	/* splice into the file */
	{
		struct buf t = BUF_INIT;
		if (buf_append(&t, f->text.data, a) < 0 || buf_append(&t, nw.data, nw.len) < 0 ||
		    buf_append(&t, f->text.data + a + old_len, f->text.len - a - old_len) < 0) {
			buf_free(&t);
			free(ed->old_text);
			free(ed->new_text);
			goto out;
		}
		buf_free(&f->text);
		f->text = t;
	}
	f->edits++;
	f->last_edit_line = first;
	*old_text = ed->old_text;
	*new_text = ed->new_text;
	*line_out = first;
	ret = repo->n_edits++;
out:
	gen_code_free(code);
	buf_free(&nw);
	return ret;
}

int gen_repo_snippet(struct gen_repo *repo, int fi, enum gen_numbering num, struct buf *b)
{
	int64_t at = repo->files[fi].last_edit_line;
	int64_t from = at > 4 ? at - 4 : 1;
	return gen_repo_render(repo, fi, from, 10, num, b) < 0 ? -1 : 0;
}

/* ---- slots -------------------------------------------------------------- */

static const char *fn_of(struct gen_repo *repo, int m, struct rng *r)
{
	const struct gen_module *mod = &repo->mods[m];
	return mod->fns[rng_below(r, (uint64_t)mod->n_fns)];
}

static void test_name(struct gen_repo *repo, int m, struct rng *r, char *out, size_t n)
{
	const char *fn = fn_of(repo, m, r);
	switch (repo->lang) {
	case GEN_LANG_GO: {
		char a[40];
		gw_ident_to(a, sizeof a, GW_PASCAL, gw_adj(r), NULL, NULL);
		snprintf(out, n, "Test%s%s", fn, a);
		break;
	}
	case GEN_LANG_TS: {
		snprintf(out, n, "%s.%s > handles an %s %s", repo->mods[m].type, fn, gw_adj(r), gw_noun(r));
		break;
	}
	case GEN_LANG_RUST:
		snprintf(out, n, "%s::tests::%s_%s", repo->mods[m].name, fn, gw_adj(r));
		break;
	default: {
		/* C test names drop the module prefix: test_push_full */
		size_t ml = strlen(repo->mods[m].name);
		if (repo->lang == GEN_LANG_C && !strncmp(fn, repo->mods[m].name, ml) && fn[ml] == '_')
			fn += ml + 1;
		snprintf(out, n, "test_%s_%s", fn, gw_adj(r));
		break;
	}
	}
}

int gen_repo_test_cmd(struct gen_repo *repo, int m, struct buf *b)
{
	switch (repo->lang) {
	case GEN_LANG_C:
		return buf_puts(b, "make test");
	case GEN_LANG_PYTHON:
		return m >= 0 ? buf_printf(b, "python -m pytest %s -q", repo->files[repo->mods[m].test].path)
			      : buf_puts(b, "python -m pytest -q");
	case GEN_LANG_TS:
		return m >= 0 ? buf_printf(b, "npx vitest run %s", repo->files[repo->mods[m].test].path)
			      : buf_puts(b, "npm test");
	case GEN_LANG_GO:
		return m >= 0 ? buf_printf(b, "go test ./internal/%s/...", repo->mods[m].name)
			      : buf_puts(b, "go test ./...");
	default:
		return buf_puts(b, "cargo test");
	}
}

const char *gen_repo_build_cmd(const struct gen_repo *repo)
{
	static const char *const cmds[GEN_LANG_N] = {"make", "python -m mypy .", "npx tsc --noEmit", "go build ./...",
						     "cargo build"};
	return cmds[repo->lang];
}

int gen_repo_slot(void *ctx, const char *name, size_t n, struct buf *b)
{
	struct gen_repo_slots *s = ctx;
	struct gen_repo *repo = s->repo;
	char key[16];
	if (n >= sizeof key || repo->n_mods == 0)
		return 0;
	memcpy(key, name, n);
	key[n] = 0;
	int m = s->module >= 0 && s->module < repo->n_mods ? s->module : 0;
	int m2 = other_module(repo, m);
	int rc;
	if (!strcmp(key, "fn"))
		rc = buf_puts(b, fn_of(repo, m, s->r));
	else if (!strcmp(key, "fn2"))
		rc = buf_puts(b, fn_of(repo, m2, s->r));
	else if (!strcmp(key, "type"))
		rc = buf_puts(b, repo->mods[m].type);
	else if (!strcmp(key, "module"))
		rc = buf_puts(b, repo->mods[m].name);
	else if (!strcmp(key, "path"))
		rc = buf_puts(b, repo->files[s->file >= 0 ? s->file : repo->mods[m].src].path);
	else if (!strcmp(key, "path2"))
		rc = buf_puts(b, repo->files[repo->mods[m2].src].path);
	else if (!strcmp(key, "test_path"))
		rc = buf_puts(b, repo->files[repo->mods[m].test].path);
	else if (!strcmp(key, "test")) {
		char t[160];
		test_name(repo, m, s->r, t, sizeof t);
		rc = buf_puts(b, t);
	} else if (!strcmp(key, "cmd"))
		rc = gen_repo_test_cmd(repo, m, b);
	else if (!strcmp(key, "line"))
		rc = buf_printf(b, "%u", 10 + (unsigned)rng_below(s->r, 300));
	else if (!strcmp(key, "flag")) {
		char f[64];
		gw_ident_to(f, sizeof f, repo->lang == GEN_LANG_TS || repo->lang == GEN_LANG_GO ? GW_CAMEL : GW_SNAKE,
			    gw_adj(s->r), gw_noun(s->r), NULL);
		rc = buf_puts(b, f);
	} else if (!strcmp(key, "errmsg"))
		rc = buf_printf(b, "%s: %s %s", repo->mods[m].name, gw_adj(s->r), gw_noun(s->r));
	else if (!strcmp(key, "lib"))
		rc = buf_puts(b, repo->name);
	else
		return 0;
	return rc < 0 ? -1 : 1;
}

/* ---- tool outputs ------------------------------------------------------- */

struct out_ctx {
	struct gen_repo *repo;
	struct rng *r;
	int m;
	int state;
	int64_t i;
	bool fail;
	const char *symbol;
	enum gen_grep_format fmt;
	struct gen_code *code;
	struct buf scratch;
	int failures;
	int tests;
	int tests_frames;
	int frame;
	char last[200]; /* the test being reported */
};

static int grep_line(void *ctx, struct buf *b)
{
	struct out_ctx *c = ctx;
	struct gen_repo *repo = c->repo;
	int fi = (int)rng_below(c->r, (uint64_t)repo->n_files);
	if (repo->files[fi].lang == GEN_LANG_N)
		fi = repo->mods[rng_below(c->r, (uint64_t)repo->n_mods)].src;
	if (c->fmt == GEN_GREP_FILES) {
		if (c->i++ == 0 && buf_printf(b, "Found %d files\n", 2 + (int)rng_below(c->r, 40)) < 0)
			return -1;
		return buf_printf(b, "%s\n", repo->files[fi].path);
	}
	int64_t line = 1 + (int64_t)rng_below(c->r, 400);
	if (buf_printf(b, "%s:%lld:", repo->files[fi].path, (long long)line) < 0)
		return -1;
	/* a code line that mentions the symbol */
	size_t at = b->len;
	if (gen_code_statement(c->code, b, 1) < 0)
		return -1;
	if (c->symbol && *c->symbol && !strstr(b->data + at, c->symbol)) {
		static const char *const lead[GEN_LANG_N][3] = {
			[GEN_LANG_C] = {"", "rc = ", "return "},
			[GEN_LANG_PYTHON] = {"", "result = self.", "return self."},
			[GEN_LANG_TS] = {"", "const result = this.", "return this."},
			[GEN_LANG_GO] = {"", "if err := s.", "return s."},
			[GEN_LANG_RUST] = {"", "let result = self.", "self."},
		};
		b->len = at;
		b->data[at] = 0;
		if (buf_puts(b, gen_code_indent(repo->lang)) < 0 ||
		    buf_printf(b, "%s%s(", lead[repo->lang][rng_below(c->r, 3)], c->symbol) < 0 ||
		    buf_printf(b, "%s, %u)", gw_noun(c->r), (unsigned)rng_below(c->r, 64)) < 0)
			return -1;
	}
	return buf_putc(b, '\n');
}

static struct gen_code *code_for_module(struct gen_repo *repo, int m, struct rng *r)
{
	struct gen_code *code = NULL;
	if (m < 0)
		m = 0;
	code_for(repo, &repo->files[repo->mods[m].src], rng_next(r), &code);
	return code;
}

int gen_repo_grep(struct gen_repo *repo, struct rng *r, const char *symbol, enum gen_grep_format fmt,
		  int64_t tokens, struct buf *b)
{
	struct out_ctx c = {repo, r, 0, 0, 0, false, symbol, fmt, NULL, BUF_INIT, 0, 0, 0, 0, ""};
	c.m = (int)rng_below(r, (uint64_t)repo->n_mods);
	if (!(c.code = code_for_module(repo, c.m, r)))
		return -1;
	int64_t rc = gen_fill(b, tokens, grep_line, &c, 0, repo->exact);
	gen_code_free(c.code);
	return rc < 0 ? -1 : 0;
}

static int listing_line(void *ctx, struct buf *b)
{
	struct out_ctx *c = ctx;
	struct gen_repo *repo = c->repo;
	if (c->i >= repo->n_files) {
		/* list more of the tree than the agent has touched */
		int m = gen_repo_module(repo, c->r, GEN_PROB_NEW_ALWAYS);
		(void)m;
	}
	const struct gen_file *f = &repo->files[c->i % repo->n_files];
	c->i++;
	if (c->fmt == GEN_GREP_LINES) /* long format */
		return buf_printf(b, "-rw-r--r--  1 dev dev %6u Mar %2u 10:%02u %s\n",
				  200 + (unsigned)rng_below(c->r, 30000), 1 + (unsigned)rng_below(c->r, 28),
				  (unsigned)rng_below(c->r, 60), f->path);
	return buf_printf(b, "%s/%s\n", repo->root, f->path);
}

int gen_repo_listing(struct gen_repo *repo, struct rng *r, bool long_format, int64_t tokens, struct buf *b)
{
	struct out_ctx c = {repo, r, 0, 0, 0, false, NULL, long_format ? GEN_GREP_LINES : GEN_GREP_FILES, NULL,
			    BUF_INIT, 0, 0, 0, 0, ""};
	c.i = (int64_t)rng_below(r, (uint64_t)repo->n_files);
	return gen_fill(b, tokens, listing_line, &c, 4000, repo->exact) < 0 ? -1 : 0;
}

/* A frame of a stack trace / traceback in the repo's language. */
static int trace_frame(struct out_ctx *c, struct buf *b)
{
	struct gen_repo *repo = c->repo;
	int m = (int)rng_below(c->r, (uint64_t)repo->n_mods);
	const char *path = repo->files[repo->mods[m].src].path;
	const char *fn = fn_of(repo, m, c->r);
	unsigned line = 10 + (unsigned)rng_below(c->r, 400);
	switch (repo->lang) {
	case GEN_LANG_C:
		return buf_printf(b, "    #%d 0x%012llx in %s %s:%u\n", c->frame++,
				  (unsigned long long)(0x55d0c0000000ull + rng_below(c->r, 1u << 24)), fn, path, line);
	case GEN_LANG_PYTHON: {
		int rc = buf_printf(b, "\n%s/%s:%u: in %s\n    ", repo->root, path, line, fn);
		if (rc == 0)
			rc = gen_code_statement(c->code, b, 0);
		return rc < 0 ? -1 : buf_putc(b, '\n');
	}
	case GEN_LANG_TS:
		return buf_printf(b, "    at %s.%s (%s/%s:%u:%u)\n", repo->mods[m].type, fn, repo->root, path, line,
				  1 + (unsigned)rng_below(c->r, 40));
	case GEN_LANG_GO:
		return buf_printf(b, "github.com/%s/%s/internal/%s.(*%s).%s(0xc000%06x, {0x%x, 0x%x})\n\t%s/%s:%u +0x%x\n",
				  repo->name, repo->name, repo->mods[m].name, repo->mods[m].type, fn,
				  (unsigned)rng_below(c->r, 1u << 24), (unsigned)rng_below(c->r, 1u << 20),
				  (unsigned)rng_below(c->r, 64), repo->root, path, line, (unsigned)rng_below(c->r, 0x400));
	default:
		return buf_printf(b, "  %d: %s::%s::%s\n             at ./%s:%u:%u\n", c->frame++, repo->name,
				  repo->mods[m].name, fn, path, line, 1 + (unsigned)rng_below(c->r, 40));
	}
}

/* pytest -q: progress dots per test file, then the FAILURES section. */
static int py_test_line(struct out_ctx *c, struct buf *b)
{
	struct gen_repo *repo = c->repo;
	int m = c->m >= 0 ? c->m : 0;
	if (c->state == 1) {
		int tm = c->tests == 0 ? m : (int)rng_below(c->r, (uint64_t)repo->n_mods);
		int n = 4 + (int)rng_below(c->r, 40);
		int fail_at = c->fail && (c->failures == 0 || rng_below(c->r, 4) == 0) ? (int)rng_below(c->r, (uint64_t)n) : -1;
		const char *path = repo->files[repo->mods[tm].test].path;
		size_t at = b->len;
		if (buf_printf(b, "%s ", path) < 0)
			return -1;
		for (int i = 0; i < n; i++)
			if (buf_putc(b, i == fail_at ? 'F' : '.') < 0)
				return -1;
		c->tests += n;
		if (fail_at >= 0)
			c->failures++;
		int pct = 10 * (c->i + 1);
		c->i++;
		int used = (int)(b->len - at);
		if (buf_printf(b, "%*s[%3d%%]\n", used < 75 ? 75 - used : 1, "", pct > 100 ? 100 : pct) < 0)
			return -1;
		if (c->i >= 3 + (int)rng_below(c->r, 6) && c->failures > 0) {
			c->state = 2;
			c->frame = -1;
		}
		return 0;
	}
	/* failure blocks: a header, the test's code, frames into the source, the error */
	char name[200];
	if (c->frame < 0) {
		c->frame = 0;
		return buf_puts(b, "\n=================================== FAILURES ===================================\n");
	}
	if (c->frame == 0) {
		test_name(repo, m, c->r, name, sizeof name);
		c->tests_frames = 2 + (int)rng_below(c->r, 5);
		c->frame = 1;
		const char *fn = fn_of(repo, m, c->r);
		return buf_printf(b, "_________________________________ %s _________________________________\n\n    def %s():\n        %s = %s(%u)\n>       assert %s.%s(%u) == %u\n\n%s:%d: \n",
				  name, name, gw_noun(c->r), repo->mods[m].type, (unsigned)rng_below(c->r, 64), gw_noun(c->r), fn,
				  (unsigned)rng_below(c->r, 64), (unsigned)rng_below(c->r, 64),
				  repo->files[repo->mods[m].test].path, 10 + (int)rng_below(c->r, 200));
	}
	if (c->frame++ < c->tests_frames)
		return trace_frame(c, b);
	c->frame = 0;
	unsigned a = (unsigned)rng_below(c->r, 64), z = (unsigned)rng_below(c->r, 64);
	int rc;
	switch (rng_below(c->r, 4)) {
	case 0:
		rc = buf_printf(b, "E       AssertionError: assert %u == %u", a, z);
		break;
	case 1:
		rc = buf_printf(b, "E       KeyError: '%s-%u'", gw_noun(c->r), a);
		break;
	case 2:
		rc = buf_printf(b, "E       ValueError: invalid %s %u (expected %u)", gw_noun(c->r), a, z);
		break;
	default:
		rc = buf_puts(b, "E       IndexError: list index out of range");
		break;
	}
	return rc < 0 ? -1 : buf_puts(b, "\n\n");
}

/* Test run lines: state 0 header, 1 per-test lines, 2 failure details, 3 summary. */
static int test_line(void *ctx, struct buf *b)
{
	struct out_ctx *c = ctx;
	struct gen_repo *repo = c->repo;
	char name[200];
	int m = c->m >= 0 ? c->m : 0;
	const char *tpath = repo->files[repo->mods[m].test].path;
	if (repo->lang == GEN_LANG_PYTHON && c->state > 0)
		return py_test_line(c, b);
	switch (c->state) {
	case 0:
		c->state = 1;
		switch (repo->lang) {
		case GEN_LANG_C:
			return buf_printf(b, "cc -std=c11 -Wall -Wextra -g -fsanitize=address -Isrc -o build/test_%s %s %s -lcmocka\n./build/test_%s\n[==========] tests: Running %d test(s).\n",
					  repo->mods[m].name, tpath, repo->files[repo->mods[m].src].path, repo->mods[m].name,
					  8 + (int)rng_below(c->r, 40));
		case GEN_LANG_PYTHON:
			return buf_printf(b, "============================= test session starts ==============================\nplatform linux -- Python 3.11.9, pytest-8.2.1, pluggy-1.5.0\nrootdir: %s\nconfigfile: pyproject.toml\ncollected %d items\n\n",
					  repo->root, 20 + (int)rng_below(c->r, 300));
		case GEN_LANG_TS:
			return buf_printf(b, "\n RUN  v1.6.0 %s\n\n", repo->root);
		case GEN_LANG_GO:
			return buf_puts(b, "");
		default:
			return buf_printf(b, "   Compiling %s v0.%d.%d (%s)\n    Finished `test` profile [unoptimized + debuginfo] target(s) in %d.%02ds\n     Running unittests src/lib.rs (target/debug/deps/%s-%016llx)\n\nrunning %d tests\n",
					  repo->name, (int)rng_below(c->r, 9), (int)rng_below(c->r, 20), repo->root,
					  1 + (int)rng_below(c->r, 30), (int)rng_below(c->r, 100), repo->name,
					  (unsigned long long)rng_next(c->r), 10 + (int)rng_below(c->r, 200));
		}
	case 1: {
		/* per-test lines; now and then a failure with its details */
		bool f = c->fail && (c->tests >= 2 || c->failures == 0) && rng_below(c->r, 6) == 0;
		if (c->fail && c->failures == 0 && c->tests >= 8)
			f = true;
		int tm = (int)rng_below(c->r, (uint64_t)repo->n_mods);
		if (c->tests < 2 || f)
			tm = m;
		test_name(repo, tm, c->r, name, sizeof name);
		snprintf(c->last, sizeof c->last, "%s", name);
		c->tests++;
		if (f) {
			c->failures++;
			c->state = 2;
			c->i = 0;
		}
		switch (repo->lang) {
		case GEN_LANG_C:
			if (f)
				return buf_printf(b, "[ RUN      ] %s\n", name);
			return buf_printf(b, "[ RUN      ] %s\n[       OK ] %s\n", name, name);
		case GEN_LANG_PYTHON: {
			const char *tp = repo->files[repo->mods[tm].test].path;
			return buf_printf(b, "%s::%s %s\n", tp, name, f ? "FAILED" : "PASSED");
		}
		case GEN_LANG_TS:
			return buf_printf(b, " %s %s (%d tests%s) %dms\n", f ? "\xe2\x9d\xaf" : "\xe2\x9c\x93",
					  repo->files[repo->mods[tm].test].path, 3 + (int)rng_below(c->r, 20),
					  f ? " | 1 failed" : "", 2 + (int)rng_below(c->r, 90));
		case GEN_LANG_GO:
			return buf_printf(b, "=== RUN   %s\n--- %s: %s (0.%02ds)\n", name, f ? "FAIL" : "PASS", name,
					  (int)rng_below(c->r, 30));
		default:
			return buf_printf(b, "test %s ... %s\n", name, f ? "FAILED" : "ok");
		}
	}
	case 2: {
		/* the details of the failure just listed: a header, then frames */
		if (c->i == 0) {
			c->i = 1;
			c->tests_frames = 4 + (int)rng_below(c->r, 10);
			c->frame = 0;
			snprintf(name, sizeof name, "%s", c->last);
			switch (repo->lang) {
			case GEN_LANG_C:
				if (rng_below(c->r, 2)) {
					/* an assertion failure: cmocka reports and moves on */
					c->state = 1;
					return buf_printf(b, "[  ERROR   ] --- 0x%x != 0x%x\n[   LINE   ] --- %s:%d: error: Failure!\n[  FAILED  ] %s\n",
							  (unsigned)rng_below(c->r, 64), (unsigned)rng_below(c->r, 64), tpath,
							  20 + (int)rng_below(c->r, 300), name);
				}
				return buf_printf(b, "=================================================================\n==%d==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x%012llx at pc 0x%012llx bp 0x7ffd%08x sp 0x7ffd%08x\nWRITE of size 4 at 0x%012llx thread T0\n",
						  10000 + (int)rng_below(c->r, 50000), (unsigned long long)(0x502000000000ull + rng_below(c->r, 1u << 20)),
						  (unsigned long long)(0x55d0c0000000ull + rng_below(c->r, 1u << 24)),
						  (unsigned)rng_below(c->r, 1u << 30), (unsigned)rng_below(c->r, 1u << 30),
						  (unsigned long long)(0x502000000000ull + rng_below(c->r, 1u << 20)));
			case GEN_LANG_PYTHON:
				return buf_printf(b, "\n___________________________ %s ___________________________\n", name);
			case GEN_LANG_TS:
				return buf_printf(b, "\n FAIL  %s > %s\nAssertionError: expected %d to be %d // Object.is equality\n\n- Expected\n+ Received\n\n- %d\n+ %d\n\n",
						  tpath, name, (int)rng_below(c->r, 10), 10 + (int)rng_below(c->r, 10), 10, 3);
			case GEN_LANG_GO:
				return buf_printf(b, "panic: runtime error: index out of range [%d] with length %d [recovered]\n\ngoroutine %d [running]:\ntesting.tRunner.func1.2({0x%x, 0xc000%06x})\n\t/usr/local/go/src/testing/testing.go:1631 +0x24a\n",
						  (int)rng_below(c->r, 64) + 1, (int)rng_below(c->r, 64), (int)rng_below(c->r, 40) + 2,
						  (unsigned)rng_below(c->r, 1u << 20), (unsigned)rng_below(c->r, 1u << 24));
			default:
				return buf_printf(b, "\n---- %s stdout ----\nthread '%s' panicked at %s:%d:%d:\nassertion `left == right` failed\n  left: %d\n right: %d\nstack backtrace:\n",
						  name, name, repo->files[repo->mods[m].src].path, 20 + (int)rng_below(c->r, 300),
						  5 + (int)rng_below(c->r, 20), (int)rng_below(c->r, 10), 10 + (int)rng_below(c->r, 10));
			}
		}
		if (--c->tests_frames <= 0)
			c->state = 1;
		return trace_frame(c, b);
	}
	default:
		return buf_puts(b, "");
	}
}

static int test_summary(struct out_ctx *c, struct buf *b)
{
	struct gen_repo *repo = c->repo;
	int fails = c->fail ? (c->failures ? c->failures : 1) : 0;
	int passed = c->tests > fails ? c->tests - fails : 0;
	int m = c->m >= 0 ? c->m : 0;
	char name[200];
	test_name(repo, m, c->r, name, sizeof name);
	switch (repo->lang) {
	case GEN_LANG_C:
		if (fails)
			return buf_printf(b, "[==========] tests: %d test(s) run.\n[  PASSED  ] %d test(s).\n[  FAILED  ] tests: %d test(s), listed below:\n[  FAILED  ] %s\nmake: *** [Makefile:14: test] Error 1\n[exit code 2]",
					  c->tests, passed, fails, name);
		return buf_printf(b, "[==========] tests: %d test(s) run.\n[  PASSED  ] %d test(s).\n[exit code 0]", c->tests,
				  c->tests);
	case GEN_LANG_PYTHON:
		if (fails)
			return buf_printf(b, "=========================== short test summary info ============================\nFAILED %s::%s - AssertionError: assert %d == %d\n========================= %d failed, %d passed in %d.%02ds =========================",
					  repo->files[repo->mods[m].test].path, name, (int)rng_below(c->r, 10), 10 + (int)rng_below(c->r, 10),
					  fails, passed, (int)rng_below(c->r, 9), (int)rng_below(c->r, 100));
		return buf_printf(b, "============================== %d passed in %d.%02ds ==============================",
				  c->tests, (int)rng_below(c->r, 9), (int)rng_below(c->r, 100));
	case GEN_LANG_TS:
		return buf_printf(b, " Test Files  %s%d passed (%d)\n      Tests  %s%d passed (%d)\n   Duration  %d.%02ds",
				  fails ? "1 failed | " : "", 3 + (int)rng_below(c->r, 10), 4 + (int)rng_below(c->r, 10),
				  fails ? "1 failed | " : "", passed, c->tests, (int)rng_below(c->r, 5), (int)rng_below(c->r, 100));
	case GEN_LANG_GO:
		if (fails)
			return buf_printf(b, "FAIL\nFAIL\tgithub.com/%s/%s/internal/%s\t0.%03ds\nFAIL", repo->name, repo->name,
					  repo->mods[m].name, (int)rng_below(c->r, 1000));
		return buf_printf(b, "ok  \tgithub.com/%s/%s/internal/%s\t0.%03ds", repo->name, repo->name,
				  repo->mods[m].name, (int)rng_below(c->r, 1000));
	default:
		return buf_printf(b, "\ntest result: %s. %d passed; %d failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.%02ds\n%s",
				  fails ? "FAILED" : "ok", passed, fails, (int)rng_below(c->r, 100),
				  fails ? "\nerror: test failed, to rerun pass `--lib`" : "");
	}
}

int gen_repo_test_run(struct gen_repo *repo, struct rng *r, int m, bool fail, int64_t tokens, struct buf *b,
		      struct buf *cmd_out)
{
	struct out_ctx c = {repo, r, m, 0, 0, fail, NULL, GEN_GREP_LINES, NULL, BUF_INIT, 0, 0, 0, 0, ""};
	if (cmd_out && gen_repo_test_cmd(repo, m, cmd_out) < 0)
		return -1;
	if (!(c.code = code_for_module(repo, m, r)))
		return -1;
	/* leave room for the summary line */
	int64_t goal = tokens > 120 ? tokens - 60 : tokens / 2;
	int rc = -1;
	if (gen_fill(b, goal, test_line, &c, 0, repo->exact) < 0)
		goto out;
	if (c.tests == 0)
		c.tests = 1;
	rc = test_summary(&c, b);
out:
	gen_code_free(c.code);
	return rc;
}

static int build_line(void *ctx, struct buf *b)
{
	struct out_ctx *c = ctx;
	struct gen_repo *repo = c->repo;
	int m = c->i++ == 0 && c->m >= 0 ? c->m : (int)rng_below(c->r, (uint64_t)repo->n_mods);
	const char *path = repo->files[repo->mods[m].src].path;
	const char *fn = fn_of(repo, m, c->r);
	unsigned line = 10 + (unsigned)rng_below(c->r, 400), col = 2 + (unsigned)rng_below(c->r, 30);
	char var[64];
	gw_ident_to(var, sizeof var, repo->lang == GEN_LANG_TS || repo->lang == GEN_LANG_GO ? GW_CAMEL : GW_SNAKE,
		    gw_adj(c->r), gw_noun(c->r), NULL);
	buf_reset(&c->scratch);
	if (gen_code_statement(c->code, &c->scratch, 1) < 0)
		return -1;
	const char *src = c->scratch.data ? c->scratch.data : "";
	c->failures++;
	switch (repo->lang) {
	case GEN_LANG_C:
		return buf_printf(b, "%s: In function '%s':\n%s:%u:%u: error: '%s' undeclared (first use in this function)\n %4u | %s\n      | %*s^~~~~~\n",
				  path, fn, path, line, col, var, line, src, (int)col, "");
	case GEN_LANG_PYTHON:
		return buf_printf(b, "%s:%u: error: Argument 1 to \"%s\" of \"%s\" has incompatible type \"str\"; expected \"int\"  [arg-type]\n",
				  path, line, fn, repo->mods[m].type);
	case GEN_LANG_TS:
		return buf_printf(b, "%s(%u,%u): error TS2339: Property '%s' does not exist on type '%s'.\n", path, line, col,
				  var, repo->mods[m].type);
	case GEN_LANG_GO:
		return buf_printf(b, "%s:%u:%u: undefined: %s\n", path, line, col, var);
	default:
		return buf_printf(b, "error[E0308]: mismatched types\n  --> %s:%u:%u\n   |\n%-3u|%s\n   |%*s^^^^^^ expected `u64`, found `usize`\n   |\n",
				  path, line, col, line, src, (int)col, "");
	}
}

int gen_repo_build(struct gen_repo *repo, struct rng *r, int m, bool fail, int64_t tokens, struct buf *b,
		   struct buf *cmd_out)
{
	if (cmd_out && buf_puts(cmd_out, gen_repo_build_cmd(repo)) < 0)
		return -1;
	if (!fail) {
		const char *a = repo->mods[m >= 0 ? m : 0].name;
		switch (repo->lang) {
		case GEN_LANG_C:
			return buf_printf(b, "cc -std=c11 -Wall -Wextra -O2 -Isrc -c -o build/%s.o src/%s.c\n[exit code 0]", a, a);
		case GEN_LANG_PYTHON:
			return buf_printf(b, "Success: no issues found in %d source files", repo->n_files);
		case GEN_LANG_RUST:
			return buf_printf(b, "   Compiling %s v0.1.0 (%s)\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 3.42s",
					  repo->name, repo->root);
		default:
			return buf_puts(b, "[exit code 0]");
		}
	}
	struct out_ctx c = {repo, r, m, 0, 0, fail, NULL, GEN_GREP_LINES, NULL, BUF_INIT, 0, 0, 0, 0, ""};
	if (!(c.code = code_for_module(repo, m, r)))
		return -1;
	int rc = -1;
	if (gen_fill(b, tokens > 60 ? tokens - 30 : tokens, build_line, &c, 0, repo->exact) < 0)
		goto out;
	switch (repo->lang) {
	case GEN_LANG_C:
		rc = buf_printf(b, "make: *** [Makefile:9: build/%s.o] Error 1\n[exit code 2]",
				repo->mods[m >= 0 ? m : 0].name);
		break;
	case GEN_LANG_PYTHON:
		rc = buf_printf(b, "Found %d errors in %d files (checked %d source files)", c.failures,
				1 + c.failures / 3, repo->n_files);
		break;
	case GEN_LANG_TS:
		rc = buf_printf(b, "\nFound %d errors.", c.failures);
		break;
	case GEN_LANG_GO:
		rc = buf_puts(b, "[exit code 1]");
		break;
	default:
		rc = buf_printf(b, "\nFor more information about this error, try `rustc --explain E0308`.\nerror: could not compile `%s` (lib) due to %d previous errors",
				repo->name, c.failures);
		break;
	}
out:
	gen_code_free(c.code);
	buf_free(&c.scratch);
	return rc;
}

/* git: state 0 = header, then diff hunks of recorded edits, then log lines */
static int git_line(void *ctx, struct buf *b)
{
	struct out_ctx *c = ctx;
	struct gen_repo *repo = c->repo;
	if (c->state == 0) {
		c->state = 1;
		int rc = buf_puts(b, "On branch main\nChanges not staged for commit:\n  (use \"git add <file>...\" to update what will be committed)\n");
		for (int i = 0; i < repo->n_files && rc == 0; i++)
			if (repo->files[i].edits)
				rc = buf_printf(b, "\tmodified:   %s\n", repo->files[i].path);
		return rc < 0 ? -1 : buf_puts(b, "\n");
	}
	if (c->state == 1 && c->i < repo->n_edits) {
		const struct gen_edit *e = &repo->edits[repo->n_edits - 1 - c->i++];
		const char *p = repo->files[e->file].path;
		int rc = buf_printf(b, "diff --git a/%s b/%s\n--- a/%s\n+++ b/%s\n@@ -%lld,3 +%lld,4 @@\n", p, p, p, p,
				    (long long)e->line, (long long)e->line);
		for (const char *s = e->old_text; rc == 0 && *s;) {
			size_t n = strcspn(s, "\n");
			rc = buf_printf(b, "-%.*s\n", (int)n, s);
			s += n + (s[n] == '\n');
		}
		for (const char *s = e->new_text; rc == 0 && *s;) {
			size_t n = strcspn(s, "\n");
			rc = buf_printf(b, "+%.*s\n", (int)n, s);
			s += n + (s[n] == '\n');
		}
		return rc;
	}
	c->state = 2;
	struct gen_repo_slots s = {repo, c->r, (int)rng_below(c->r, (uint64_t)repo->n_mods), -1};
	if (buf_printf(b, "%07llx ", (unsigned long long)(rng_next(c->r) >> 36)) < 0 ||
	    gw_sentence(b, GW_COMMIT, c->r, gen_repo_slot, &s) < 0)
		return -1;
	return buf_putc(b, '\n');
}

int gen_repo_git(struct gen_repo *repo, struct rng *r, int64_t tokens, struct buf *b, struct buf *cmd_out)
{
	struct out_ctx c = {repo, r, 0, 0, 0, false, NULL, GEN_GREP_LINES, NULL, BUF_INIT, 0, 0, 0, 0, ""};
	if (cmd_out && buf_puts(cmd_out, repo->n_edits ? "git status && git diff && git log --oneline -20"
						       : "git status && git log --oneline -20") < 0)
		return -1;
	return gen_fill(b, tokens, git_line, &c, 0, repo->exact) < 0 ? -1 : 0;
}

static int doc_page_line(void *ctx, struct buf *b)
{
	struct out_ctx *c = ctx;
	struct gen_repo *repo = c->repo;
	struct gen_repo_slots s = {repo, c->r, c->m, -1};
	int k = (int)(c->i++ % 9);
	if (c->i == 1)
		return buf_printf(b, "# %s %s reference\n\n", gw_noun(c->r), gw_noun(c->r));
	if (k == 3)
		return buf_printf(b, "\n## %s the %s\n\n", gw_verb(c->r), gw_noun(c->r));
	if (k == 6) {
		int rc = buf_printf(b, "```%s\n", gen_lang_fence(repo->lang));
		for (int i = 0; i < 4 && rc == 0; i++) {
			rc = gen_code_statement(c->code, b, 0);
			if (rc == 0)
				rc = buf_putc(b, '\n');
		}
		return rc < 0 ? -1 : buf_puts(b, "```\n");
	}
	if (gw_sentence(b, GW_DOC, c->r, gen_repo_slot, &s) < 0 || buf_putc(b, ' ') < 0 ||
	    gw_sentence(b, GW_DOC, c->r, gen_repo_slot, &s) < 0)
		return -1;
	return buf_putc(b, '\n');
}

int gen_repo_doc_page(struct gen_repo *repo, struct rng *r, int64_t tokens, struct buf *b, struct buf *url_out)
{
	struct out_ctx c = {repo, r, 0, 0, 0, false, NULL, GEN_GREP_LINES, NULL, BUF_INIT, 0, 0, 0, 0, ""};
	c.m = (int)rng_below(r, (uint64_t)repo->n_mods);
	if (url_out && buf_printf(url_out, "https://docs.%s.dev/%s/%s", gw_noun(r), gw_noun(r), gw_verb(r)) < 0)
		return -1;
	if (!(c.code = code_for_module(repo, c.m, r)))
		return -1;
	int64_t rc = gen_fill(b, tokens, doc_page_line, &c, 0, repo->exact);
	gen_code_free(c.code);
	return rc < 0 ? -1 : 0;
}

struct prose_ctx {
	struct gen_repo *repo;
	struct rng *r;
	int bank;
	int n;
};

static int prose_line(void *ctx, struct buf *b)
{
	struct prose_ctx *p = ctx;
	struct gen_repo_slots s = {p->repo, p->r, (int)rng_below(p->r, (uint64_t)p->repo->n_mods), -1};
	int k = p->n++;
	int rc = 0;
	if (k > 0 && k % 4 == 0)
		rc = buf_putc(b, '\n');
	if (rc == 0 && k % 4 == 1)
		rc = buf_puts(b, "- ");
	if (rc == 0)
		rc = gw_sentence(b, (enum gw_bank)p->bank, p->r, gen_repo_slot, &s);
	return rc < 0 ? -1 : buf_putc(b, '\n');
}

int gen_repo_prose(struct gen_repo *repo, struct rng *r, int bank, int64_t tokens, struct buf *b)
{
	struct prose_ctx p = {repo, r, bank, 0};
	return gen_fill(b, tokens, prose_line, &p, 0, repo->exact) < 0 ? -1 : 0;
}

static int notes_line(void *ctx, struct buf *b)
{
	struct prose_ctx *p = ctx;
	struct gen_repo *repo = p->repo;
	int k = p->n++;
	struct gen_repo_slots s = {repo, p->r, k % (repo->n_mods ? repo->n_mods : 1), -1};
	if (k == 0)
		return buf_printf(b, "# %s\n\n## Build and test\n\n- Build: `%s`\n- Test everything: `%s`\n",
				  repo->name, gen_repo_build_cmd(repo), repo->lang == GEN_LANG_C ? "make test" : "see below");
	if (k == 1) {
		int rc = buf_puts(b, "- Test one module: `");
		if (rc == 0)
			rc = gen_repo_test_cmd(repo, 0, b);
		return rc < 0 ? -1 : buf_puts(b, "`\n\n## Layout\n\n");
	}
	int m = (k - 2) % (repo->n_mods ? repo->n_mods : 1);
	if (k - 2 < repo->n_mods) {
		if (buf_printf(b, "- `%s`: the %s module (`%s`); ", repo->files[repo->mods[m].src].path,
			       repo->mods[m].name, repo->mods[m].type) < 0 ||
		    gw_sentence(b, GW_DOC, p->r, gen_repo_slot, &s) < 0)
			return -1;
		return buf_putc(b, '\n');
	}
	if (k - 2 == repo->n_mods)
		return buf_puts(b, "\n## Conventions\n\n");
	if (buf_puts(b, "- ") < 0 || gw_sentence(b, GW_DOC, p->r, gen_repo_slot, &s) < 0)
		return -1;
	return buf_putc(b, '\n');
}

int gen_repo_notes(struct gen_repo *repo, struct rng *r, int64_t tokens, struct buf *b)
{
	struct prose_ctx p = {repo, r, 0, 0};
	return gen_fill(b, tokens, notes_line, &p, 0, repo->exact) < 0 ? -1 : 0;
}

static int map_line(void *ctx, struct buf *b)
{
	struct prose_ctx *p = ctx;
	struct gen_repo *repo = p->repo;
	int k = p->n++;
	int fi = k % repo->n_files;
	if (k >= repo->n_files) {
		gen_repo_module(repo, p->r, GEN_PROB_NEW_ALWAYS);
		fi = k % repo->n_files;
	}
	const struct gen_file *f = &repo->files[fi];
	if (buf_printf(b, "\n%s:\n", f->path) < 0)
		return -1;
	if (f->module < 0)
		return 0;
	const struct gen_module *m = &repo->mods[f->module];
	int n = 1 + (int)rng_below(p->r, 4);
	for (int i = 0; i < n; i++)
		if (buf_printf(b, "\xe2\x8b\xae\n\xe2\x94\x82%s%s(%s)\n", repo->lang == GEN_LANG_PYTHON ? "def " : "",
			       m->fns[(i + k) % m->n_fns], gw_noun(p->r)) < 0)
			return -1;
	return buf_puts(b, "\xe2\x8b\xae\n");
}

int gen_repo_map(struct gen_repo *repo, struct rng *r, int64_t tokens, struct buf *b)
{
	struct prose_ctx p = {repo, r, 0, 0};
	return gen_fill(b, tokens, map_line, &p, 0, repo->exact) < 0 ? -1 : 0;
}

struct text_ctx {
	struct gen_code *code;
};

static int text_line(void *ctx, struct buf *b)
{
	struct text_ctx *t = ctx;
	return gen_code_line(t->code, b);
}

int gen_repo_new_text(struct gen_repo *repo, struct rng *r, int m, bool test, int64_t tokens, struct buf *b)
{
	struct gen_file tmp = {0};
	tmp.lang = repo->lang;
	tmp.kind = test ? GEN_FILE_TEST : GEN_FILE_SRC;
	tmp.module = m >= 0 ? m : 0;
	struct text_ctx t = {NULL};
	if (code_for(repo, &tmp, rng_next(r), &t.code) < 0 || !t.code)
		return -1;
	int64_t rc = gen_fill(b, tokens, text_line, &t, 0, repo->exact);
	gen_code_free(t.code);
	return rc < 0 ? -1 : 0;
}
