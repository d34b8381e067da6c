/* agentreplay gen: synthetic coding-agent sessions of a chosen depth.
 *
 * Parses the options into struct gen_opts (generators/gen.h), loads the style
 * profile, wires an HTTP tokenizer (replay/tokenize.h) when --tokenizer-url
 * is given, and writes through the core's atomic trace writer. Every input
 * problem is exit 2 with nothing left on disk. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gen.h"
#include "gen_profile.h"
#include "tokenize.h"
#include "units.h"

enum {
	O_DEPTH = 1,
	O_TURNS,
	O_SEED,
	O_STYLE,
	O_SESSIONS,
	O_OUT,
	O_COMPACT,
	O_LIMIT,
	O_TIERS,
	O_TOKURL,
	O_QUIET,
	O_STYLES,
};

static const struct cli_opt gen_opts_table[] = {
	{"depth", 0, "N", "tokens of the final prompt: 8192, 32k, 128k (default 32k)", O_DEPTH},
	{"turns", 0, "N", "requests per session (default: from the style's growth per turn)", O_TURNS},
	{"seed", 0, "N", "random seed; the same arguments give the same bytes (default 1)", O_SEED},
	{"style", 0, "S", "claude-code (default), codex, aider, generic, or a profile file", O_STYLE},
	{"sessions", 0, "K", "sessions in the file, each with its own seed (default 1)", O_SESSIONS},
	{"output", 'o', "FILE", "write here (.zst compresses) instead of standard output", O_OUT},
	{"compact-at", 0, "F", "compact the context at fraction F of --context-limit (e.g. 0.8)", O_COMPACT},
	{"context-limit", 0, "N", "the model's context window; --depth must fit in it", O_LIMIT},
	{"tiers", 0, NULL, "the depth-tier workload: ~23, ~750, 32k, 64k, 128k tokens", O_TIERS},
	{"tokenizer-url", 0, "URL", "size with a server's POST /tokenize (llama-server, vLLM)", O_TOKURL},
	{"quiet", 'q', NULL, "no summary line on standard error", O_QUIET},
	{"list-styles", 0, NULL, "print the shipped styles and exit", O_STYLES},
	{0},
};

struct gen_cfg {
	struct gen_opts o;
	const char *style;
	const char *out;
	const char *tok_url;
	const char *dump;
	bool quiet, list, has_depth, has_turns, has_sessions;
};

static int gen_opt(void *ctx, int id, const char *val, struct ar_err *err)
{
	struct gen_cfg *c = ctx;
	uint64_t v;
	double x;
	switch (id) {
	case O_DEPTH:
		if (units_parse_tokens(val, &v, err) < 0)
			return -1;
		if (v == 0)
			return ar_err_set(err, AR_EINVAL, "the depth must be at least 1 token (e.g. 32k)");
		if (v > (uint64_t)GEN_MAX_DEPTH)
			return ar_err_set(err, AR_EINVAL, "'%s' is more than the %lld tokens gen supports", val,
					  (long long)GEN_MAX_DEPTH);
		c->o.depth = (int64_t)v;
		c->has_depth = true;
		break;
	case O_TURNS:
		if (units_parse_count(val, &v, err) < 0)
			return -1;
		if (v == 0 || v > GEN_MAX_TURNS)
			return ar_err_set(err, AR_EINVAL, "the number of turns must be from 1 to %d", GEN_MAX_TURNS);
		c->o.turns = (int64_t)v;
		c->has_turns = true;
		break;
	case O_SEED:
		if (units_parse_count(val, &v, err) < 0)
			return -1;
		c->o.seed = v;
		break;
	case O_STYLE:
		c->style = val;
		break;
	case O_SESSIONS:
		if (units_parse_count(val, &v, err) < 0)
			return -1;
		if (v == 0 || v > GEN_MAX_SESSIONS)
			return ar_err_set(err, AR_EINVAL, "the number of sessions must be from 1 to %d", GEN_MAX_SESSIONS);
		c->o.sessions = (int64_t)v;
		c->has_sessions = true;
		break;
	case O_OUT:
		c->out = val;
		break;
	case O_COMPACT:
		if (units_parse_real(val, &x, err) < 0)
			return -1;
		if (!(x > 0 && x < 1))
			return ar_err_set(err, AR_EINVAL, "'%s' is not a fraction between 0 and 1 (e.g. 0.8)", val);
		c->o.compact_permille = (int32_t)(x * 1000 + 0.5);
		if (c->o.compact_permille < 1 || c->o.compact_permille > 999)
			return ar_err_set(err, AR_EINVAL, "'%s' is too close to 0 or 1", val);
		break;
	case O_LIMIT:
		if (units_parse_tokens(val, &v, err) < 0)
			return -1;
		if (v == 0 || v > (uint64_t)GEN_MAX_DEPTH)
			return ar_err_set(err, AR_EINVAL, "the context limit must be from 1 to %lld tokens",
					  (long long)GEN_MAX_DEPTH);
		c->o.context_limit = (int64_t)v;
		break;
	case O_TIERS:
		c->o.tiers = true;
		break;
	case O_TOKURL:
		c->tok_url = val;
		break;
	case O_QUIET:
		c->quiet = true;
		break;
	case O_STYLES:
		c->list = true;
		break;
	}
	return 0;
}

/* 131072 -> "131,072" */
static void group(char *out, size_t n, int64_t v)
{
	char tmp[32];
	snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v));
	size_t len = strlen(tmp), o = 0;
	if (v < 0 && o + 1 < n)
		out[o++] = '-';
	for (size_t i = 0; i < len && o + 1 < n; i++) {
		if (i && (len - i) % 3 == 0 && o + 1 < n)
			out[o++] = ',';
		out[o++] = tmp[i];
	}
	out[o] = 0;
}

/* (got - want) / want as "+0.12%" without floating point */
static void pct(char *out, size_t n, int64_t got, int64_t want)
{
	int64_t d = (got - want) * 10000 / (want ? want : 1);
	int64_t a = d < 0 ? -d : d;
	snprintf(out, n, "%c%lld.%02lld%%", d < 0 ? '-' : '+', (long long)(a / 100), (long long)(a % 100));
}

static void summary(const struct gen_cfg *c, const struct gen_report *r, const char *path, const char *tok)
{
	char a[32], b[32], t[32], p1[32], p2[32];
	const char *where = strcmp(path, "-") ? path : "standard output";
	if (c->o.tiers) {
		fprintf(stderr, "agentreplay: gen: wrote the depth tiers (5 one-request sessions: ~23, ~750, 32k, 64k, 128k tokens) to '%s'\n",
			where);
		return;
	}
	group(t, sizeof t, r->depth);
	fprintf(stderr, "agentreplay: gen: wrote %lld session%s", (long long)r->sessions, r->sessions == 1 ? "" : "s");
	if (r->subagents)
		fprintf(stderr, " (+%lld subagent%s)", (long long)r->subagents, r->subagents == 1 ? "" : "s");
	fprintf(stderr, ", %lld turn%s, to '%s'\n", (long long)r->turns, r->turns == 1 ? "" : "s", where);
	group(a, sizeof a, r->min_final);
	group(b, sizeof b, r->max_final);
	pct(p1, sizeof p1, r->min_final, r->depth);
	pct(p2, sizeof p2, r->max_final, r->depth);
	if (r->min_final == r->max_final)
		fprintf(stderr, "agentreplay: gen: final context %s tokens by the estimator (target %s, %s)\n", a, t, p1);
	else
		fprintf(stderr, "agentreplay: gen: final context %s to %s tokens by the estimator (target %s, %s to %s)\n",
			a, b, t, p1, p2);
	if (tok && r->min_real >= 0) {
		group(a, sizeof a, r->min_real);
		group(b, sizeof b, r->max_real);
		pct(p1, sizeof p1, r->min_real, r->depth);
		pct(p2, sizeof p2, r->max_real, r->depth);
		if (r->min_real == r->max_real)
			fprintf(stderr, "agentreplay: gen: final context %s tokens by the tokenizer at '%s' (%s)\n", a, tok, p1);
		else
			fprintf(stderr, "agentreplay: gen: final context %s to %s tokens by the tokenizer at '%s' (%s to %s)\n",
				a, b, tok, p1, p2);
	}
}

static int gen_run(int argc, char **argv)
{
	struct gen_cfg c;
	memset(&c, 0, sizeof c);
	c.o.depth = 32768;
	c.o.seed = 1;
	c.o.sessions = 1;
	c.style = "claude-code";
	/* --dump-prompt DIR: a hidden option for the real-tokenizer tests */
	int w = 0;
	for (int i = 0; i < argc; i++) {
		if (i > 0 && !strcmp(argv[i], "--dump-prompt") && i + 1 < argc) {
			c.dump = argv[++i];
			continue;
		}
		if (i > 0 && !strncmp(argv[i], "--dump-prompt=", 14)) {
			c.dump = argv[i] + 14;
			continue;
		}
		argv[w++] = argv[i];
	}
	argc = w;
	int npos = 0;
	int p = cli_parse(&cmd_gen, argc, argv, gen_opt, &c, &npos);
	if (p != 0)
		return p > 0 ? EXIT_OK : EXIT_USAGE;
	if (c.list) {
		for (const char *const *s = gen_profile_builtin(); *s; s++) {
			char path[4096];
			struct gen_profile *prof = NULL;
			struct ar_err err = {0};
			gen_profile_path(*s, path, sizeof path, &err);
			if (gen_profile_load(&prof, path, &err) == 0)
				printf("%-12s %s\n", *s, prof->description ? prof->description : "");
			else
				printf("%-12s (%s)\n", *s, err.msg);
			gen_profile_free(prof);
		}
		return EXIT_OK;
	}
	if (npos > 0) {
		cli_error("gen: unexpected argument '%s' (see 'agentreplay gen --help')", argv[0]);
		return EXIT_USAGE;
	}
	if (c.o.tiers && (c.has_depth || c.has_turns || c.has_sessions || c.o.compact_permille)) {
		cli_error("gen: --tiers makes its own depths; it cannot be combined with --depth, --turns, --sessions or --compact-at");
		return EXIT_USAGE;
	}
	if (c.o.compact_permille && !c.o.context_limit)
		c.o.context_limit = 131072;
	struct ar_err err = {0};
	char path[4096];
	struct gen_profile *prof = NULL;
	struct tokenize *tk = NULL;
	struct gen_tokenizer gt = {0};
	int rc = EXIT_USAGE;
	if (gen_profile_path(c.style, path, sizeof path, &err) < 0) {
		cli_error("gen: --style: %s", err.msg);
		goto out;
	}
	if (gen_profile_load(&prof, path, &err) < 0) {
		if (!strchr(c.style, '/') && strstr(err.msg, "No such file"))
			cli_error("gen: unknown style '%s' (known: claude-code, codex, aider, generic; or a path to a profile file)",
				  c.style);
		else
			cli_error("gen: %s", err.msg);
		goto out;
	}
	c.o.profile = prof;
	c.o.dump_dir = c.dump;
	if (gen_check(&c.o, &err) < 0) {
		cli_error("gen: %s", err.msg);
		goto out;
	}
	if (c.tok_url) {
		if (tokenize_open(&tk, c.tok_url, &err) < 0) {
			cli_error("gen: --tokenizer-url: %s", err.msg);
			goto out;
		}
		/* fail before any work when the server is not there */
		if (tokenize_count(tk, "Hello, world.", 13, &err) < 0) {
			cli_error("gen: %s", err.msg);
			goto out;
		}
		gt.count = tokenize_count;
		gt.ud = tk;
		gt.label = tokenize_endpoint(tk);
		c.o.tokenizer = &gt;
	}
	const char *dest = c.out ? c.out : "-";
	struct gen_report rep;
	if (gen_write(&c.o, dest, &rep, &err) < 0) {
		cli_error("gen: %s", err.msg);
		goto out;
	}
	if (!c.quiet)
		summary(&c, &rep, dest, tk ? tokenize_endpoint(tk) : NULL);
	rc = EXIT_OK;
out:
	tokenize_close(tk);
	gen_profile_free(prof);
	return rc;
}

const struct cli_cmd cmd_gen = {
	.name = "gen",
	.summary = "Generate synthetic coding-agent sessions of a chosen depth.",
	.usage = "gen [--depth N] [--turns N] [--seed N] [--style S] [--sessions K] [-o FILE] [options]",
	.description =
		"Writes agentreplay-trace/1 sessions that look, to an inference server, like a coding agent\n"
		"at work: the style's system prompt and tool schemas, then turns that read files, search,\n"
		"run tests and builds, edit, answer, with the context climbing to --depth. The final prompt\n"
		"lands within +-2% of --depth by the core token estimator (+-1% of the real count with\n"
		"--tokenizer-url). Same arguments, same bytes, on every machine.\n"
		"\n"
		"Styles are YAML profiles in generators/styles/ (copy one and pass its path to --style).\n"
		"With --compact-at F the session compacts (a summary request, then a fresh context) near\n"
		"F x --context-limit (default 131072) and climbs again to --depth, which must lie below it.\n"
		"Nothing is left on disk when anything fails.",
	.opts = gen_opts_table,
	.run = gen_run,
};
