/* gen_write.c: from options to a trace file — sessions one after another,
 * the depth-tier workload, calibration against a real tokenizer, and dumps
 * of the final prompt. See gen.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convo.h"
#include "gen.h"
#include "gen_internal.h"
#include "gen_repo.h"
#include "gen_words.h"
#include "jsonh.h"
#include "tokest.h"
#include "trace_io.h"

int gen_check(const struct gen_opts *o, struct ar_err *err)
{
	if (!o->profile)
		return ar_err_set(err, AR_EINVAL, "no style profile");
	if (o->sessions < 1 || o->sessions > GEN_MAX_SESSIONS)
		return ar_err_set(err, AR_EINVAL, "--sessions must be from 1 to %d", GEN_MAX_SESSIONS);
	if (o->turns < 0 || o->turns > GEN_MAX_TURNS)
		return ar_err_set(err, AR_EINVAL, "--turns must be from 1 to %d", GEN_MAX_TURNS);
	if (o->tiers)
		return 0;
	if (o->depth < 1)
		return ar_err_set(err, AR_EINVAL, "--depth must be at least 1 token (e.g. 32k)");
	if (o->depth > GEN_MAX_DEPTH)
		return ar_err_set(err, AR_EINVAL, "--depth %lld is larger than the %lld tokens gen supports",
				  (long long)o->depth, (long long)GEN_MAX_DEPTH);
	if (o->context_limit < 0 || o->context_limit > GEN_MAX_DEPTH)
		return ar_err_set(err, AR_EINVAL, "--context-limit is out of range");
	if (o->compact_permille < 0 || o->compact_permille >= 1000)
		return ar_err_set(err, AR_EINVAL, "--compact-at must be a fraction between 0 and 1 (e.g. 0.8)");
	if (o->context_limit && o->depth > o->context_limit)
		return ar_err_set(err, AR_EINVAL, "--depth %lld is larger than --context-limit %lld",
				  (long long)o->depth, (long long)o->context_limit);
	if (o->compact_permille) {
		if (!o->context_limit)
			return ar_err_set(err, AR_EINVAL, "--compact-at needs --context-limit");
		int64_t threshold = o->context_limit * o->compact_permille / 1000;
		/* the session compacts near the threshold and then climbs to depth: the
		 * depth must lie below it (with the margin the compaction lands in) */
		if (o->depth >= threshold - threshold / 40) {
			char frac[8];
			snprintf(frac, sizeof frac, "%03d", o->compact_permille);
			for (int i = 2; i > 0 && frac[i] == '0'; i--)
				frac[i] = 0; /* 0.800 -> 0.8 */
			return ar_err_set(err, AR_EINVAL,
					  "--depth %lld must be below the compaction point (--compact-at 0.%s x --context-limit %lld = %lld tokens, less 2.5%%): the session compacts there and then climbs to --depth",
					  (long long)o->depth, frac, (long long)o->context_limit, (long long)threshold);
		}
	}
	return 0;
}

/* ---- the final prompt as text ------------------------------------------- */

int gen_prompt_text(const struct gen_session *s, char **text, size_t *n, int64_t *framing, struct ar_err *err)
{
	struct buf b = BUF_INIT;
	const struct gen_prompt *pr = s->prompt;
	*text = NULL;
	*n = 0;
	for (size_t i = 0; pr && i < pr->n; i++) {
		if ((i && buf_puts(&b, "\n\n") < 0) || buf_append(&b, pr->p[i].text, pr->p[i].n) < 0) {
			buf_free(&b);
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
	}
	*n = b.len;
	if (!(*text = buf_detach(&b)))
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	*framing = pr ? pr->framing : 0;
	return 0;
}

static int write_file(const char *path, const char *data, size_t n, struct ar_err *err)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return ar_err_set(err, AR_EIO, "cannot create '%s': %s", path, strerror(errno));
	size_t w = fwrite(data, 1, n, f);
	if (fclose(f) != 0 || w != n)
		return ar_err_set(err, AR_EIO, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
	return 0;
}

int gen_dump_prompt(const struct gen_session *s, const char *dir, struct ar_err *err)
{
	char path[4096];
	char *text = NULL;
	size_t n = 0;
	int64_t framing = 0;
	struct buf tsv = BUF_INIT, kb = BUF_INIT;
	int rc = -1;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return ar_err_set(err, AR_EIO, "cannot create directory '%s': %s", dir, strerror(errno));
	if (gen_prompt_text(s, &text, &n, &framing, err) < 0)
		goto out;
	snprintf(path, sizeof path, "%s/prompt.txt", dir);
	if (write_file(path, text, n, err) < 0)
		goto out;
	buf_puts(&tsv, "kind\test_tokens\tbytes\tpieces\n");
	for (int k = 0; k < GEN_NKINDS; k++) {
		buf_reset(&kb);
		int pieces = 0;
		for (size_t i = 0; i < s->prompt->n; i++) {
			if (s->prompt->p[i].kind != k)
				continue;
			if (pieces++)
				buf_puts(&kb, "\n\n");
			buf_append(&kb, s->prompt->p[i].text, s->prompt->p[i].n);
		}
		if (!pieces)
			continue;
		snprintf(path, sizeof path, "%s/%s.txt", dir, gen_kind_name(k));
		if (write_file(path, kb.data, kb.len, err) < 0)
			goto out;
		buf_printf(&tsv, "%s\t%lld\t%zu\t%d\n", gen_kind_name(k), (long long)tokest_text(kb.data, kb.len), kb.len,
			   pieces);
	}
	buf_printf(&tsv, "prompt\t%lld\t%zu\t%zu\n", (long long)tokest_text(text, n), n, s->prompt->n);
	buf_printf(&tsv, "framing\t%lld\t0\t0\n", (long long)framing);
	buf_printf(&tsv, "final_context\t%lld\t0\t0\n", (long long)s->final_tokens);
	buf_printf(&tsv, "depth\t%lld\t0\t0\n", (long long)s->depth_target);
	snprintf(path, sizeof path, "%s/estimates.tsv", dir);
	if (tsv.len == 0 || write_file(path, tsv.data, tsv.len, err) < 0)
		goto out;
	rc = 0;
out:
	free(text);
	buf_free(&tsv);
	buf_free(&kb);
	return rc;
}

/* ---- depth tiers ---------------------------------------------------------- */

static int set_id(struct tr_session *s, const char *id)
{
	char *d = strdup(id);
	if (!d)
		return -1;
	free(s->id);
	s->id = d;
	return 0;
}

/* One request: the history of s's last prompt as the append of one turn. */
static int flatten(struct gen_session *s, struct ar_err *err)
{
	struct convo c;
	convo_init(&c, false);
	convo_reset(&c, s->session);
	int rc = -1;
	for (size_t i = 0; i < s->n_turns; i++)
		if (convo_step(&c, &s->turns[i], err) < 0)
			goto out;
	struct tr_message *msgs = calloc(c.n ? c.n : 1, sizeof *msgs);
	if (!msgs) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c.n; i++)
		if (tr_message_copy(&msgs[i], &c.msgs[i]) < 0) {
			for (size_t j = 0; j < i; j++)
				tr_message_clear(&msgs[j]);
			free(msgs);
			ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
	/* drop the turns and the subagents; keep one turn */
	for (size_t i = 0; i < s->n_turns; i++) {
		struct tr_turn *t = &s->turns[i];
		for (size_t j = 0; j < t->n_append; j++)
			tr_message_clear(&t->append[j]);
		free(t->append);
		tr_response_free(t->response);
	}
	for (size_t i = 0; i < s->n_children; i++)
		gen_session_free(s->children[i]);
	s->n_children = 0;
	s->n_turns = 1;
	struct tr_turn *t = &s->turns[0];
	memset(t, 0, sizeof *t);
	t->i = 0;
	t->t = 0;
	t->has_t = true;
	t->keep = -1;
	t->append = msgs;
	t->n_append = c.n;
	rc = 0;
out:
	convo_free(&c);
	return rc;
}

static int tier_response(struct tr_turn *t)
{
	struct tr_response *r = calloc(1, sizeof *r);
	if (!r)
		return -1;
	r->reasoning_tokens = -1;
	r->output_tokens = 256; /* the same decode work at every tier */
	t->response = r;
	return 0;
}

static const char *const tier_names[] = {"baseline", "code", "32k", "64k", "128k"};
static const int64_t tier_depth[] = {23, 750, 32768, 65536, 131072};

/* A one-turn session without system prompt or tools: a user message of about
 * `target` tokens in all. */
static int tier_small(struct gen_session **out, const struct gen_opts *o, int tier, int64_t target,
		      struct ar_err *err)
{
	struct gen_session *s = calloc(1, sizeof *s);
	struct gen_repo *repo = NULL;
	struct buf b = BUF_INIT;
	struct rng r;
	int rc = -1;
	if (!s)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	rng_seed(&r, o->seed ^ (0x7133ULL + (uint64_t)tier));
	if (!(s->session = calloc(1, sizeof *s->session)) || !(s->turns = calloc(1, sizeof *s->turns)))
		goto oom;
	s->session->spawned_at_turn = -1;
	char id[64];
	snprintf(id, sizeof id, "tiers-%s", tier_names[tier]);
	if (!(s->session->format = strdup(TRACE_FORMAT)) || set_id(s->session, id) < 0)
		goto oom;
	enum gen_lang lang = (enum gen_lang)rng_below(&r, GEN_LANG_N);
	if (gen_repo_new(&repo, rng_next(&r), lang, NULL, err) < 0)
		goto out;
	int64_t body = target - 4;
	if (tier == 0) {
		/* a short question */
		static const char *const asks[] = {
			"Write a {lang} function that reverses a linked list.",
			"What is the difference between a process and a thread?",
			"Explain what a mutex is in one paragraph.",
			"Write a {lang} function that checks whether a string is a palindrome.",
		};
		const char *a = asks[rng_below(&r, 4)];
		const char *ln = gen_lang_name(lang);
		for (const char *p = a; *p; p++) {
			if (!strncmp(p, "{lang}", 6)) {
				buf_printf(&b, "%c%s", ln[0] - 32, ln + 1);
				p += 5;
			} else {
				buf_putc(&b, *p);
			}
		}
		static const char *const more[] = {" Keep the answer short", " and", " show", " one", " example", "."};
		for (int i = 0; i < 6 && tokest_text(b.data, b.len) < body; i++)
			buf_puts(&b, more[i]);
	} else {
		static const char lead[] = "Explain what this code does and point out any bugs:\n\n```";
		buf_puts(&b, lead);
		buf_printf(&b, "%s\n", gen_lang_fence(lang));
		int f = repo->mods[0].src;
		if (gen_repo_make(repo, f, body - tokest_text(b.data, b.len) - 4, GEN_NUM_NONE) < 0)
			goto oom;
		buf_append(&b, repo->files[f].text.data, repo->files[f].text.len);
		buf_puts(&b, "```");
	}
	struct tr_turn *t = &s->turns[0];
	s->n_turns = 1;
	t->keep = -1;
	t->has_t = true;
	if (!(t->append = calloc(1, sizeof *t->append)))
		goto oom;
	t->n_append = 1;
	t->append[0].role = TR_USER;
	if (!(t->append[0].content = strdup(b.data)))
		goto oom;
	t->append[0].content_len = b.len;
	if (tier_response(t) < 0)
		goto oom;
	s->final_tokens = tr_message_tokens(&t->append[0]);
	s->real_tokens = -1;
	s->depth_target = target;
	if (!(s->prompt = calloc(1, sizeof *s->prompt)) || !(s->prompt->p = calloc(1, sizeof *s->prompt->p)))
		goto oom;
	s->prompt->n = s->prompt->cap = 1;
	s->prompt->p[0].kind = tier == 0 ? GEN_K_USER : GEN_K_CODE_C + (int)lang;
	if (!(s->prompt->p[0].text = strdup(b.data)))
		goto oom;
	s->prompt->p[0].n = b.len;
	s->prompt->framing = TR_MESSAGE_OVERHEAD_TOKENS;
	*out = s;
	s = NULL;
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	gen_session_free(s);
	gen_repo_free(repo);
	buf_free(&b);
	return rc;
}

int gen_tier_make(struct gen_session **out, const struct gen_opts *o, int tier, int64_t target, struct ar_err *err)
{
	*out = NULL;
	if (tier < 2)
		return tier_small(out, o, tier, target, err);
	struct gen_opts d = *o;
	d.tiers = false;
	d.depth = tier_depth[tier];
	d.turns = 0;
	d.sessions = 1;
	d.compact_permille = 0;
	d.context_limit = 0;
	struct gen_session *s = NULL;
	if (gen_session_make_target(&s, &d, tier, target, err) < 0)
		return -1;
	char id[64];
	snprintf(id, sizeof id, "tiers-%s", tier_names[tier]);
	if (set_id(s->session, id) < 0 || flatten(s, err) < 0 || tier_response(&s->turns[0]) < 0) {
		gen_session_free(s);
		return err && err->code ? -1 : ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	cJSON *g = cJSON_GetObjectItem(s->session->meta, "generator");
	if (g) {
		cJSON_DeleteItemFromObject(g, "depth");
		cJSON_AddStringToObject(g, "tier", tier_names[tier]);
		cJSON_AddNumberToObject(g, "depth", (double)tier_depth[tier]);
	}
	*out = s;
	return 0;
}

/* ---- calibration against a tokenizer -------------------------------------- */

static int64_t real_count(const struct gen_session *s, const struct gen_tokenizer *tk, struct ar_err *err)
{
	char *text = NULL;
	size_t n = 0;
	int64_t framing = 0;
	if (gen_prompt_text(s, &text, &n, &framing, err) < 0)
		return -1;
	int64_t c = tk->count(tk->ud, text, n, err);
	free(text);
	return c < 0 ? -1 : c + framing;
}

static int64_t dist(int64_t a, int64_t b) { return a > b ? a - b : b - a; }

/* Makes session `index` (or tier `tier` when >= 0); with a tokenizer, aims
 * the estimator so that the real count lands on the depth. */
static int make_one(struct gen_session **out, const struct gen_opts *o, int64_t index, int tier, struct ar_err *err)
{
	int64_t depth = tier >= 0 ? tier_depth[tier] : o->depth;
	int64_t target = depth;
	struct gen_session *best = NULL;
	*out = NULL;
	for (int iter = 0; iter < (o->tokenizer ? 6 : 1); iter++) {
		struct gen_session *s = NULL;
		int rc = tier >= 0 ? gen_tier_make(&s, o, tier, target, err) : gen_session_make_target(&s, o, index, target, err);
		if (rc < 0) {
			if (!best)
				return -1;
			break; /* keep the best so far (a later aim can be infeasible) */
		}
		if (!o->tokenizer) {
			best = s;
			break;
		}
		int64_t real = real_count(s, o->tokenizer, err);
		if (real < 0) {
			gen_session_free(s);
			gen_session_free(best);
			return -1;
		}
		s->real_tokens = real;
		if (!best || dist(real, depth) < dist(best->real_tokens, depth)) {
			gen_session_free(best);
			best = s;
		} else {
			gen_session_free(s);
		}
		if (dist(best->real_tokens, depth) * 1000 <= depth * 4)
			break;
		int64_t next = real > 0 ? (target * depth + real / 2) / real : target;
		if (next == target)
			break;
		target = next;
	}
	if (o->tokenizer && best) {
		cJSON *g = cJSON_GetObjectItem(best->session->meta, "generator");
		if (!g && best->session->meta)
			g = cJSON_AddObjectToObject(best->session->meta, "generator");
		if (g) {
			cJSON *tk = cJSON_AddObjectToObject(g, "tokenizer");
			if (o->tokenizer->label)
				cJSON_AddStringToObject(tk, "url", o->tokenizer->label);
			cJSON_AddNumberToObject(tk, "prompt_tokens", (double)best->real_tokens);
		}
	}
	*out = best;
	return 0;
}

static int write_session(struct trace_writer *w, const struct gen_session *s, struct ar_err *err)
{
	if (trace_writer_session(w, s->session, err) < 0)
		return -1;
	for (size_t i = 0; i < s->n_turns; i++)
		if (trace_writer_turn(w, &s->turns[i], err) < 0)
			return -1;
	for (size_t i = 0; i < s->n_children; i++)
		if (write_session(w, s->children[i], err) < 0)
			return -1;
	return 0;
}

static size_t count_children(const struct gen_session *s)
{
	size_t n = s->n_children;
	for (size_t i = 0; i < s->n_children; i++)
		n += count_children(s->children[i]);
	return n;
}

int gen_write(const struct gen_opts *o, const char *path, struct gen_report *rep, struct ar_err *err)
{
	struct gen_report r = {0, 0, 0, -1, -1, -1, -1, o->depth};
	struct trace_writer *w = NULL;
	if (gen_check(o, err) < 0)
		return -1;
	if (trace_writer_open(&w, path, 0, err) < 0)
		return -1;
	int64_t n = o->tiers ? 5 : o->sessions;
	for (int64_t i = 0; i < n; i++) {
		struct gen_session *s = NULL;
		if (make_one(&s, o, i, o->tiers ? (int)i : -1, err) < 0)
			goto fail;
		int rc = write_session(w, s, err);
		if (rc == 0 && o->dump_dir && i == n - 1)
			rc = gen_dump_prompt(s, o->dump_dir, err);
		r.sessions++;
		r.subagents += (int64_t)count_children(s);
		r.turns += (int64_t)s->n_turns;
		if (!o->tiers) {
			if (r.min_final < 0 || s->final_tokens < r.min_final)
				r.min_final = s->final_tokens;
			if (s->final_tokens > r.max_final)
				r.max_final = s->final_tokens;
			if (s->real_tokens >= 0) {
				if (r.min_real < 0 || s->real_tokens < r.min_real)
					r.min_real = s->real_tokens;
				if (s->real_tokens > r.max_real)
					r.max_real = s->real_tokens;
			}
		}
		gen_session_free(s);
		if (rc < 0)
			goto fail;
	}
	if (trace_writer_commit(w, err) < 0)
		return -1;
	if (rep)
		*rep = r;
	return 0;
fail:
	if (!strcmp(path, "-"))
		trace_writer_commit(w, NULL); /* what reached stdout stays there */
	else
		trace_writer_abort(w);
	return -1;
}
