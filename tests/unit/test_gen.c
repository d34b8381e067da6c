/* Unit tests: the synthetic session generator (generators/gen.h) and
 * `agentreplay gen` through the CLI.
 *
 * Determinism, depth (+-2% by the core estimator) for every style at 8k..128k
 * and several seeds, turn counts, validity through the core reader, tool-call
 * pairing, compaction, subagents, --tiers, --sessions, a tokenizer, profile
 * errors, and every bad input of the issue (exit 2, nothing left on disk). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convo.h"
#include "gen.h"
#include "gen_internal.h"
#include "gen_profile.h"
#include "tokest.h"
#include "trace_io.h"

static const char *const styles[] = {"claude-code", "codex", "aider", "generic"};
#define NSTYLES 4

static struct gen_profile *load_style(const char *name)
{
	char path[4096];
	struct gen_profile *p = NULL;
	struct ar_err err = {0};
	assert_int_equal(gen_profile_path(name, path, sizeof path, &err), 0);
	if (gen_profile_load(&p, path, &err) < 0)
		fail_msg("loading %s: %s", path, err.msg);
	return p;
}

static struct gen_opts opts(const struct gen_profile *p, int64_t depth, int64_t turns, uint64_t seed)
{
	struct gen_opts o;
	memset(&o, 0, sizeof o);
	o.profile = p;
	o.depth = depth;
	o.turns = turns;
	o.seed = seed;
	o.sessions = 1;
	return o;
}

/* The final context of s by replaying its turns through the core's convo. */
static int64_t convo_final(const struct gen_session *s, int64_t *max_out)
{
	struct convo c;
	struct ar_err err;
	convo_init(&c, CONVO_COUNT_ONLY);
	convo_reset(&c, s->session);
	int64_t max = 0;
	for (size_t i = 0; i < s->n_turns; i++) {
		if (convo_step(&c, &s->turns[i], &err) < 0)
			fail_msg("convo_step: %s", err.msg);
		if (convo_tokens(&c) > max)
			max = convo_tokens(&c);
	}
	int64_t t = convo_tokens(&c);
	convo_free(&c);
	if (max_out)
		*max_out = max;
	return t;
}

static void serialise(const struct gen_session *s, struct buf *b)
{
	assert_int_equal(tr_session_write(s->session, b), 0);
	buf_putc(b, '\n');
	for (size_t i = 0; i < s->n_turns; i++) {
		assert_int_equal(tr_turn_write(&s->turns[i], b), 0);
		buf_putc(b, '\n');
	}
	for (size_t i = 0; i < s->n_children; i++)
		serialise(s->children[i], b);
}

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/ar-test-gen-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void rm_rf(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct buf b = BUF_INIT;
	char chunk[65536];
	size_t got;
	while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, got);
	fclose(f);
	*n = b.len;
	return buf_detach(&b);
}

/* ---- determinism ---------------------------------------------------------- */

static void test_determinism(void **state)
{
	(void)state;
	for (int s = 0; s < NSTYLES; s++) {
		struct gen_profile *p = load_style(styles[s]);
		struct gen_opts o = opts(p, 48 * 1024, 0, 7);
		struct gen_session *a = NULL, *b = NULL, *c = NULL;
		struct ar_err err;
		assert_int_equal(gen_session_make(&a, &o, 0, &err), 0);
		assert_int_equal(gen_session_make(&b, &o, 0, &err), 0);
		o.seed = 8;
		assert_int_equal(gen_session_make(&c, &o, 0, &err), 0);
		struct buf x = BUF_INIT, y = BUF_INIT, z = BUF_INIT;
		serialise(a, &x);
		serialise(b, &y);
		serialise(c, &z);
		assert_int_equal(x.len, y.len);
		assert_memory_equal(x.data, y.data, x.len);
		assert_true(x.len != z.len || memcmp(x.data, z.data, x.len) != 0);
		buf_free(&x);
		buf_free(&y);
		buf_free(&z);
		gen_session_free(a);
		gen_session_free(b);
		gen_session_free(c);
		gen_profile_free(p);
	}
	/* whole files too, through the writer (and a compressed one) */
	struct gen_profile *p = load_style("codex");
	char *dir = tmpdir();
	char f1[4200], f2[4200], f3[4200];
	snprintf(f1, sizeof f1, "%s/a.jsonl", dir);
	snprintf(f2, sizeof f2, "%s/b.jsonl", dir);
	snprintf(f3, sizeof f3, "%s/c.jsonl", dir);
	struct gen_opts o = opts(p, 20000, 0, 3);
	o.sessions = 3;
	struct ar_err err;
	assert_int_equal(gen_write(&o, f1, NULL, &err), 0);
	assert_int_equal(gen_write(&o, f2, NULL, &err), 0);
	o.seed = 4;
	assert_int_equal(gen_write(&o, f3, NULL, &err), 0);
	size_t n1, n2, n3;
	char *d1 = slurp(f1, &n1), *d2 = slurp(f2, &n2), *d3 = slurp(f3, &n3);
	assert_int_equal(n1, n2);
	assert_memory_equal(d1, d2, n1);
	assert_true(n1 != n3 || memcmp(d1, d3, n1) != 0);
	free(d1);
	free(d2);
	free(d3);
	rm_rf(dir);
	free(dir);
	gen_profile_free(p);
}

/* ---- depth ------------------------------------------------------------------ */

static void test_depth_matrix(void **state)
{
	(void)state;
	static const int64_t depths[] = {8192, 32768, 65536, 131072};
	for (int s = 0; s < NSTYLES; s++) {
		struct gen_profile *p = load_style(styles[s]);
		for (size_t d = 0; d < 4; d++) {
			for (uint64_t seed = 1; seed <= 3; seed++) {
				struct gen_opts o = opts(p, depths[d], 0, seed);
				struct gen_session *g = NULL;
				struct ar_err err = {0};
				int rc = gen_session_make(&g, &o, 0, &err);
				if (!strcmp(styles[s], "claude-code") && depths[d] == 8192) {
					/* its prefix alone is ~15k tokens: a clear usage error */
					assert_int_equal(rc, -1);
					assert_int_equal(err.code, AR_EINVAL);
					assert_non_null(strstr(err.msg, "smaller than what style 'claude-code' sends"));
					continue;
				}
				if (rc < 0)
					fail_msg("%s %lld seed %llu: %s", styles[s], (long long)depths[d],
						 (unsigned long long)seed, err.msg);
				int64_t final = convo_final(g, NULL);
				assert_int_equal(final, g->final_tokens);
				int64_t diff = final - depths[d];
				if (llabs(diff) * 100 > depths[d] * 2)
					fail_msg("%s depth %lld seed %llu: final %lld", styles[s], (long long)depths[d],
						 (unsigned long long)seed, (long long)final);
				/* in fact it lands within half a percent */
				assert_true(llabs(diff) * 200 <= depths[d]);
				gen_session_free(g);
			}
		}
		gen_profile_free(p);
	}
}

static void test_turns_honoured(void **state)
{
	(void)state;
	static const int64_t turns[] = {12, 25, 40, 80};
	for (int s = 0; s < NSTYLES; s++) {
		struct gen_profile *p = load_style(styles[s]);
		for (size_t k = 0; k < sizeof turns / sizeof turns[0]; k++) {
			struct gen_opts o = opts(p, 96 * 1024, turns[k], 11);
			struct gen_session *g = NULL;
			struct ar_err err;
			if (gen_session_make(&g, &o, 0, &err) < 0)
				fail_msg("%s --turns %lld: %s", styles[s], (long long)turns[k], err.msg);
			assert_int_equal(g->n_turns, turns[k]);
			for (size_t i = 0; i < g->n_turns; i++)
				assert_int_equal(g->turns[i].i, (int64_t)i);
			int64_t final = convo_final(g, NULL);
			assert_true(llabs(final - o.depth) * 50 <= o.depth);
			gen_session_free(g);
		}
		/* one and two requests work when the depth allows */
		for (int64_t n = 1; n <= 2; n++) {
			struct gen_opts o = opts(p, p->chat ? 12000 : (strcmp(styles[s], "claude-code") ? 16000 : 30000), n, 3);
			struct gen_session *g = NULL;
			struct ar_err err;
			if (gen_session_make(&g, &o, 0, &err) < 0)
				fail_msg("%s --turns %lld: %s", styles[s], (long long)n, err.msg);
			assert_int_equal(g->n_turns, n);
			assert_true(llabs(convo_final(g, NULL) - o.depth) * 50 <= o.depth);
			gen_session_free(g);
		}
		gen_profile_free(p);
	}
}

/* ---- validity through the core reader -------------------------------------- */

/* Reads a file with the core reader; returns sessions and turns, fails on
 * any problem. */
static void read_back(const char *path, int64_t *sessions, int64_t *turns)
{
	struct trace_reader *r = NULL;
	struct ar_err err = {0};
	if (trace_reader_open(&r, path, NULL, &err) < 0)
		fail_msg("open %s: %s", path, err.msg);
	*sessions = *turns = 0;
	for (;;) {
		struct trace_item it;
		struct trace_diag d;
		int rc = trace_reader_next(r, &it, &d, &err);
		if (rc == TRACE_EOF)
			break;
		if (rc == TRACE_FATAL)
			fail_msg("%s: %s", path, err.msg);
		if (rc != TRACE_ITEM)
			fail_msg("%s:%llu: %s: %s", path, (unsigned long long)trace_reader_line(r), d.p[0].field,
				 d.p[0].msg);
		if (it.kind == TRACE_ITEM_SESSION)
			(*sessions)++;
		else
			(*turns)++;
		trace_item_clear(&it);
	}
	trace_reader_close(r);
}

static void test_validity(void **state)
{
	(void)state;
	char *dir = tmpdir();
	for (int s = 0; s < NSTYLES; s++) {
		struct gen_profile *p = load_style(styles[s]);
		for (int variant = 0; variant < 4; variant++) {
			struct gen_opts o = opts(p, 64 * 1024, 0, 21 + (uint64_t)variant);
			if (variant == 1) {
				o.compact_permille = 800;
				o.context_limit = 131072;
			} else if (variant == 2) {
				o.sessions = 3;
				o.depth = 40000;
			} else if (variant == 3) {
				o.tiers = true;
			}
			char path[4200];
			snprintf(path, sizeof path, "%s/%s-%d.jsonl%s", dir, styles[s], variant, variant == 2 ? ".zst" : "");
			struct gen_report rep;
			struct ar_err err;
			if (gen_write(&o, path, &rep, &err) < 0)
				fail_msg("%s variant %d: %s", styles[s], variant, err.msg);
			int64_t ns, nt;
			read_back(path, &ns, &nt);
			assert_int_equal(ns, rep.sessions + rep.subagents);
			assert_true(nt >= rep.turns);
		}
		gen_profile_free(p);
	}
	rm_rf(dir);
	free(dir);
}

/* Every tool result answers the call of the assistant message right before it
 * in the materialised history, and every call is answered. */
static void check_pairing(const struct gen_session *g)
{
	struct convo c;
	struct ar_err err;
	convo_init(&c, false);
	convo_reset(&c, g->session);
	for (size_t i = 0; i < g->n_turns; i++) {
		assert_int_equal(convo_step(&c, &g->turns[i], &err), 0);
		for (size_t k = 0; k < c.n; k++) {
			const struct tr_message *m = &c.msgs[k];
			if (m->role != TR_TOOL)
				continue;
			assert_non_null(m->tool_call_id);
			/* the nearest assistant message before it issued this id */
			size_t j = k;
			while (j > 0 && c.msgs[j - 1].role == TR_TOOL)
				j--;
			assert_true(j > 0);
			const struct tr_message *a = &c.msgs[j - 1];
			assert_int_equal(a->role, TR_ASSISTANT);
			bool found = false;
			for (size_t q = 0; q < a->n_calls; q++)
				if (!strcmp(a->calls[q].id, m->tool_call_id))
					found = true;
			assert_true(found);
		}
		/* the calls of an assistant message followed by another turn are answered next */
		for (size_t k = 0; k + 1 < c.n; k++) {
			const struct tr_message *a = &c.msgs[k];
			if (a->role == TR_ASSISTANT && a->n_calls) {
				assert_int_equal(c.msgs[k + 1].role, TR_TOOL);
				assert_string_equal(c.msgs[k + 1].tool_call_id, a->calls[0].id);
			}
		}
	}
	convo_free(&c);
	/* ids are unique within the session */
	for (size_t i = 0; i < g->n_turns; i++)
		for (size_t j = i + 1; j < g->n_turns; j++)
			if (g->turns[i].response && g->turns[j].response && g->turns[i].response->n_calls &&
			    g->turns[j].response->n_calls)
				assert_string_not_equal(g->turns[i].response->calls[0].id, g->turns[j].response->calls[0].id);
}

static void test_tool_pairing(void **state)
{
	(void)state;
	for (int s = 0; s < NSTYLES; s++) {
		struct gen_profile *p = load_style(styles[s]);
		for (uint64_t seed = 1; seed <= 4; seed++) {
			struct gen_opts o = opts(p, 100000, 0, seed);
			if (seed == 4) {
				o.compact_permille = 800;
				o.context_limit = 131072;
				o.depth = 60000;
			}
			struct gen_session *g = NULL;
			struct ar_err err;
			if (gen_session_make(&g, &o, 0, &err) < 0)
				fail_msg("%s: %s", styles[s], err.msg);
			check_pairing(g);
			for (size_t i = 0; i < g->n_children; i++)
				check_pairing(g->children[i]);
			if (p->chat)
				for (size_t i = 0; i < g->n_turns; i++)
					assert_true(!g->turns[i].response || g->turns[i].response->n_calls == 0);
			gen_session_free(g);
		}
		gen_profile_free(p);
	}
}

/* ---- compaction ------------------------------------------------------------- */

static void test_compaction(void **state)
{
	(void)state;
	for (int s = 0; s < NSTYLES; s++) {
		struct gen_profile *p = load_style(styles[s]);
		for (uint64_t seed = 1; seed <= 3; seed++) {
			struct gen_opts o = opts(p, 48 * 1024, 0, seed);
			o.compact_permille = 800;
			o.context_limit = 131072;
			struct gen_session *g = NULL;
			struct ar_err err;
			if (gen_session_make(&g, &o, 0, &err) < 0)
				fail_msg("%s: %s", styles[s], err.msg);
			struct convo c;
			convo_init(&c, CONVO_COUNT_ONLY);
			convo_reset(&c, g->session);
			int64_t prev = 0, before = -1, after = -1;
			int resets = 0;
			for (size_t i = 0; i < g->n_turns; i++) {
				const struct tr_turn *t = &g->turns[i];
				assert_int_equal(convo_step(&c, t, &err), 0);
				/* the tool styles start over (keep 0); aider keeps its map and files */
				if (t->keep == 0 || (p->chat && t->keep >= 0 && convo_tokens(&c) < prev / 2)) {
					resets++;
					before = prev;
					after = convo_tokens(&c);
					if (!p->chat)
						assert_int_equal(t->keep, 0);
				}
				prev = convo_tokens(&c);
				assert_true(prev <= o.context_limit);
			}
			convo_free(&c);
			assert_int_equal(resets, 1);
			/* the compaction request sits just under 80% of the limit */
			assert_true(before <= 131072 * 8 / 10);
			assert_true(before >= 131072 * 75 / 100);
			assert_true(after < before / 2);
			/* and the session still ends at the depth */
			assert_true(llabs(g->final_tokens - o.depth) * 50 <= o.depth);
			gen_session_free(g);
		}
		gen_profile_free(p);
	}
}

/* ---- subagents, sessions, tiers ---------------------------------------------- */

static void test_subagents(void **state)
{
	(void)state;
	struct gen_profile *p = load_style("claude-code");
	int found = 0;
	for (uint64_t seed = 1; seed <= 40 && found < 2; seed++) {
		struct gen_opts o = opts(p, 128 * 1024, 0, seed);
		struct gen_session *g = NULL;
		struct ar_err err;
		assert_int_equal(gen_session_make(&g, &o, 0, &err), 0);
		for (size_t i = 0; i < g->n_children; i++) {
			const struct gen_session *ch = g->children[i];
			found++;
			assert_string_equal(ch->session->parent, g->session->id);
			int64_t k = ch->session->spawned_at_turn;
			assert_true(k >= 0 && (size_t)k + 1 < g->n_turns);
			/* the parent's turn k calls Task; turn k+1 carries the child's report */
			const struct tr_response *r = g->turns[k].response;
			assert_non_null(r);
			assert_string_equal(r->calls[0].name, "Task");
			const struct tr_turn *next = &g->turns[k + 1];
			const struct tr_response *last = ch->turns[ch->n_turns - 1].response;
			assert_non_null(strstr(next->append[0].content, last->content));
			/* the child's clock starts at its own 0 and the parent waits for it */
			assert_true(next->t > g->turns[k].t);
			assert_true(ch->turns[0].t == 0);
		}
		gen_session_free(g);
	}
	assert_true(found >= 1);
	gen_profile_free(p);
}

static void test_sessions(void **state)
{
	(void)state;
	struct gen_profile *p = load_style("generic");
	char *dir = tmpdir();
	char path[4200];
	snprintf(path, sizeof path, "%s/s.jsonl", dir);
	struct gen_opts o = opts(p, 20000, 0, 5);
	o.sessions = 4;
	struct gen_report rep;
	struct ar_err err;
	assert_int_equal(gen_write(&o, path, &rep, &err), 0);
	assert_int_equal(rep.sessions, 4);
	assert_true(llabs(rep.min_final - o.depth) * 50 <= o.depth);
	assert_true(llabs(rep.max_final - o.depth) * 50 <= o.depth);
	for (int64_t i = 0; i < 4; i++) {
		struct gen_session *g = NULL;
		assert_int_equal(gen_session_make(&g, &o, i, &err), 0);
		char want[64];
		snprintf(want, sizeof want, "gen-generic-5-%04lld", (long long)(i + 1));
		assert_string_equal(g->session->id, want);
		gen_session_free(g);
	}
	rm_rf(dir);
	free(dir);
	gen_profile_free(p);
}

static void test_tiers(void **state)
{
	(void)state;
	static const char *const ids[] = {"tiers-baseline", "tiers-code", "tiers-32k", "tiers-64k", "tiers-128k"};
	static const int64_t want[] = {23, 750, 32768, 65536, 131072};
	for (int s = 0; s < NSTYLES; s++) {
		struct gen_profile *p = load_style(styles[s]);
		struct gen_opts o = opts(p, 0, 0, 1);
		o.tiers = true;
		for (int t = 0; t < 5; t++) {
			struct gen_session *g = NULL;
			struct ar_err err;
			assert_int_equal(gen_tier_make(&g, &o, t, want[t], &err), 0);
			assert_string_equal(g->session->id, ids[t]);
			assert_int_equal(g->n_turns, 1);
			assert_int_equal(g->n_children, 0);
			assert_non_null(g->turns[0].response);
			assert_int_equal(g->turns[0].response->output_tokens, 256);
			int64_t final = convo_final(g, NULL);
			if (t == 0)
				assert_true(final >= 18 && final <= 28);
			else if (t == 1)
				assert_true(final >= 700 && final <= 800);
			else
				assert_true(llabs(final - want[t]) * 50 <= want[t]);
			if (t < 2) {
				assert_null(g->session->system);
				assert_null(g->session->tools);
			}
			gen_session_free(g);
		}
		gen_profile_free(p);
	}
}

/* ---- a tokenizer -------------------------------------------------------------- */

/* A stand-in for a model's tokenizer: 1.2 tokens per estimator token, plus
 * one per newline, so the estimator is off by ~25% and calibration must fix it. */
static int64_t fake_count(void *ud, const char *text, size_t n, struct ar_err *err)
{
	(void)err;
	int *calls = ud;
	(*calls)++;
	int64_t nl = 0;
	for (size_t i = 0; i < n; i++)
		nl += text[i] == '\n';
	return tokest_text(text, n) * 6 / 5 + nl;
}

static void test_tokenizer_calibration(void **state)
{
	(void)state;
	for (int s = 0; s < NSTYLES; s++) {
		struct gen_profile *p = load_style(styles[s]);
		int calls = 0;
		struct gen_tokenizer tk = {fake_count, &calls, "fake"};
		char *dir = tmpdir();
		char path[4200];
		snprintf(path, sizeof path, "%s/t.jsonl", dir);
		struct gen_opts o = opts(p, 100000, 0, 2);
		o.tokenizer = &tk;
		struct gen_report rep;
		struct ar_err err;
		if (gen_write(&o, path, &rep, &err) < 0)
			fail_msg("%s: %s", styles[s], err.msg);
		assert_true(calls >= 2);
		/* within 1% of the depth by the tokenizer */
		assert_true(llabs(rep.min_real - o.depth) * 100 <= o.depth);
		/* the estimator was aimed lower to get there */
		assert_true(rep.min_final < o.depth * 95 / 100);
		rm_rf(dir);
		free(dir);
		gen_profile_free(p);
	}
}

/* ---- profiles -------------------------------------------------------------------- */

static int load_text(const char *text, struct ar_err *err)
{
	char *dir = tmpdir();
	char path[4200];
	snprintf(path, sizeof path, "%s/p.yaml", dir);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	struct gen_profile *p = NULL;
	int rc = gen_profile_load(&p, path, err);
	gen_profile_free(p);
	rm_rf(dir);
	free(dir);
	return rc;
}

static void test_profile_errors(void **state)
{
	(void)state;
	struct ar_err err;
	assert_int_equal(load_text("name: x\nroles: [unclosed\n", &err), -1);
	assert_int_equal(load_text("name: x\nrolez: {}\n", &err), -1);
	assert_non_null(strstr(err.msg, ":2: rolez: unknown field in the profile"));
	assert_int_equal(load_text("name: x\ntools: []\nroles:\n  read: {tool: Read, args: '{}'}\n", &err), -1);
	assert_non_null(strstr(err.msg, "uses tool 'Read', which is not in tools"));
	assert_int_equal(load_text("name: x\nroles: {}\n", &err), -1);
	assert_non_null(strstr(err.msg, "at least the role 'read'"));
	assert_int_equal(load_text("name: x\nroles:\n  read: {ask: a, size: {median: 10, sigma: 9}}\nmode: chat\n", &err), -1);
	assert_non_null(strstr(err.msg, "sigma"));
	/* every shipped style loads and its growth per turn matches its own sizes */
	for (int s = 0; s < NSTYLES; s++) {
		struct gen_profile *p = load_style(styles[s]);
		int64_t natural = gen_natural_growth(p, 1, NULL, NULL);
		if (natural * 100 < p->growth_per_turn * 70 || natural * 100 > p->growth_per_turn * 130)
			fail_msg("%s: growth_per_turn %lld but its sizes give %lld per turn", styles[s],
				 (long long)p->growth_per_turn, (long long)natural);
		gen_profile_free(p);
	}
}

/* ---- the CLI: bad input is exit 2 and leaves nothing ---------------------------------- */

static void bin_path(char *out, size_t n)
{
	const char *env = getenv("AR_BIN");
	if (env) {
		snprintf(out, n, "%s", env);
		return;
	}
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	assert_true(len > 0);
	exe[len] = 0;
	/* build/tests/test_gen -> build/agentreplay */
	char *d = dirname(dirname(exe));
	snprintf(out, n, "%s/agentreplay", d);
}

/* Runs agentreplay with args in dir; returns the exit status, stderr in err. */
static int run_cli(const char *dir, const char *args, char *err, size_t n)
{
	char bin[PATH_MAX + 16], cmd[8192];
	bin_path(bin, sizeof bin);
	snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s 2>&1 >/dev/null", dir, bin, args);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t got = fread(err, 1, n - 1, p);
	err[got] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli_bad_input(void **state)
{
	(void)state;
	static const struct {
		const char *args;
		const char *msg;
	} cases[] = {
		{"gen --depth 0 -o out.jsonl", "the depth must be at least 1 token"},
		{"gen --depth 8k --style claude-code -o out.jsonl.zst", "is smaller than what style 'claude-code' sends"},
		{"gen --turns 0 -o out.jsonl", "the number of turns must be from 1"},
		{"gen --depth 16k --style generic --turns 3000 -o out.jsonl", "more than --depth 16384 can fill"},
		{"gen --depth 128k --turns 2 -o out.jsonl", "too few to reach --depth 131072"},
		{"gen --style nosuch -o out.jsonl", "unknown style 'nosuch'"},
		{"gen --style ../bad.yaml -o out.jsonl", "bad.yaml"},
		{"gen --style ../missing.yaml -o out.jsonl", "missing.yaml"},
		{"gen --tokenizer-url http://127.0.0.1:1 -o out.jsonl", "cannot reach the tokenizer at 'http://127.0.0.1:1/tokenize'"},
		{"gen --tokenizer-url ftp://x -o out.jsonl", "must start with http://"},
		{"gen --depth 32k --compact-at 1.5 -o out.jsonl", "not a fraction between 0 and 1"},
		{"gen --depth 120k --compact-at 0.8 --context-limit 128k -o out.jsonl", "must be below the compaction point"},
		{"gen --depth 64k --context-limit 32k -o out.jsonl", "larger than --context-limit"},
		{"gen --tiers --depth 32k -o out.jsonl", "--tiers makes its own depths"},
		{"gen --depth 12q -o out.jsonl", "unknown suffix"},
		{"gen --sessions 0 -o out.jsonl", "number of sessions"},
		{"gen --bogus", "unknown option '--bogus'"},
		{"gen extra-arg", "unexpected argument 'extra-arg'"},
	};
	char *root = tmpdir();
	char bad[4200], work[4200];
	snprintf(bad, sizeof bad, "%s/bad.yaml", root);
	FILE *f = fopen(bad, "w");
	fputs("name: bad\nroles:\n  read: {tool: Read, args: '{}'\n", f); /* unclosed mapping */
	fclose(f);
	snprintf(work, sizeof work, "%s/work", root);
	assert_int_equal(mkdir(work, 0755), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[4096];
		int rc = run_cli(work, cases[i].args, err, sizeof err);
		if (rc != 2 || !strstr(err, cases[i].msg))
			fail_msg("'%s': exit %d, stderr: %s", cases[i].args, rc, err);
		if (dir_entries(work) != 0)
			fail_msg("'%s' left files behind", cases[i].args);
	}
	/* a good run writes exactly the output */
	char err[4096];
	assert_int_equal(run_cli(work, "gen --depth 20k --style codex -q -o out.jsonl.zst", err, sizeof err), 0);
	assert_int_equal(dir_entries(work), 1);
	rm_rf(root);
	free(root);
}

/* Answers until the third session's first count, then fails. */
static int64_t fail_third(void *ud, const char *text, size_t n, struct ar_err *err)
{
	int *calls = ud;
	/* counts equal the estimator's: one count per session */
	if (++*calls >= 3)
		return ar_err_set(err, AR_ENET, "tokenizer went away");
	return tokest_text(text, n);
}

/* A failure after the output was opened removes the temporary file. */
static void test_nothing_half_written(void **state)
{
	(void)state;
	struct gen_profile *p = load_style("codex");
	char *dir = tmpdir();
	char path[4200];
	snprintf(path, sizeof path, "%s/x.jsonl.zst", dir);
	struct gen_opts o = opts(p, 16384, 5000, 1); /* infeasible: found after opening */
	struct ar_err err;
	assert_int_equal(gen_write(&o, path, NULL, &err), -1);
	assert_int_equal(dir_entries(dir), 0);
	/* a tokenizer that fails in the third session: the two written are gone too */
	o = opts(p, 16384, 0, 1);
	o.sessions = 3;
	int calls = 0;
	struct gen_tokenizer tk = {fail_third, &calls, "failing"};
	o.tokenizer = &tk;
	assert_int_equal(gen_write(&o, path, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "tokenizer went away"));
	assert_int_equal(calls, 3);
	assert_int_equal(dir_entries(dir), 0);
	/* and the same without it succeeds, leaving just the file */
	o.tokenizer = NULL;
	assert_int_equal(gen_write(&o, path, NULL, &err), 0);
	assert_int_equal(dir_entries(dir), 1);
	rm_rf(dir);
	free(dir);
	gen_profile_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_depth_matrix),
		cmocka_unit_test(test_turns_honoured),
		cmocka_unit_test(test_validity),
		cmocka_unit_test(test_tool_pairing),
		cmocka_unit_test(test_compaction),
		cmocka_unit_test(test_subagents),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_tiers),
		cmocka_unit_test(test_tokenizer_calibration),
		cmocka_unit_test(test_profile_errors),
		cmocka_unit_test(test_cli_bad_input),
		cmocka_unit_test(test_nothing_half_written),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
