/* agentreplay import: other tools' session logs and request traces into
 * agentreplay-trace/1 (generators/import/). Writes through the core's
 * temp+rename trace writer, so a failed import leaves nothing at -o; the
 * report (turns, sessions, subagents, compactions, dropped items, recorded
 * token totals, estimated-vs-recorded prompt size) goes to stderr, or as one
 * JSON object to stdout with --json. Input problems are exit 2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "import.h"
#include "jsonh.h"
#include "redact.h"
#include "units.h"

enum { O_OUT = 1, O_LENIENT, O_NOREDACT, O_RULES, O_JSON, O_MAXLINE, O_LIST, O_QUIET };

static const struct cli_opt import_opts[] = {
	{"output", 'o', "FILE", "write the trace here (.zst compresses; default standard output)", O_OUT},
	{"lenient", 0, NULL, "skip bad lines and items with a warning instead of stopping", O_LENIENT},
	{"no-redact", 0, NULL, "keep secrets (API keys, tokens, passwords) as they are", O_NOREDACT},
	{"redact-rules", 0, "FILE", "more redaction rules (PCRE2, one per line; repeatable)", O_RULES},
	{"json", 0, NULL, "the report as one JSON object on standard output (needs -o)", O_JSON},
	{"max-line-bytes", 0, "SIZE", "longest input line accepted (default 64MiB)", O_MAXLINE},
	{"list", 0, NULL, "print the formats and exit", O_LIST},
	{"quiet", 'q', NULL, "no report on standard error (warnings still)", O_QUIET},
	{0},
};

#define MAX_RULES 16

struct import_cfg {
	const char *out;
	const char *rules[MAX_RULES];
	size_t n_rules;
	bool lenient, no_redact, json, list, quiet;
	size_t max_line;
};

static int import_opt(void *ctx, int id, const char *val, struct ar_err *err)
{
	struct import_cfg *c = ctx;
	uint64_t v;
	switch (id) {
	case O_OUT: c->out = val; break;
	case O_LENIENT: c->lenient = true; break;
	case O_NOREDACT: c->no_redact = true; break;
	case O_RULES:
		if (c->n_rules == MAX_RULES)
			return ar_err_set(err, AR_EINVAL, "at most %d rule files", MAX_RULES);
		c->rules[c->n_rules++] = val;
		break;
	case O_JSON: c->json = true; break;
	case O_LIST: c->list = true; break;
	case O_QUIET: c->quiet = true; break;
	case O_MAXLINE:
		if (units_parse_bytes(val, &v, err) < 0)
			return -1;
		if (v < 1024 || v > (1ull << 31))
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range (1KiB to 2GiB)", val);
		c->max_line = (size_t)v;
		break;
	}
	return 0;
}

/* 131072 -> "131,072" */
static const char *group(char *out, size_t n, int64_t v)
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
	return out;
}

static const char *pl(int64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static void report_text(const struct imp_report *r, const char *dest)
{
	char a[32], b[32], c[32];
	fprintf(stderr, "agentreplay: import: %s: %lld %s", r->format, (long long)r->sessions,
		pl(r->sessions, "session", "sessions"));
	if (r->subagents)
		fprintf(stderr, " (%lld %s)", (long long)r->subagents, pl(r->subagents, "subagent", "subagents"));
	fprintf(stderr, ", %lld %s, %lld %s, %lld tool %s (%lld %s) -> '%s'\n", (long long)r->turns,
		pl(r->turns, "turn", "turns"), (long long)r->compactions, pl(r->compactions, "compaction", "compactions"),
		(long long)r->tool_calls, pl(r->tool_calls, "call", "calls"), (long long)r->tool_results,
		pl(r->tool_results, "result", "results"), dest);
	if (r->rec_turns)
		fprintf(stderr, "agentreplay: import: recorded %s prompt tokens (%s cached), %s output tokens over %lld %s\n",
			group(a, sizeof a, r->rec_prompt), group(b, sizeof b, r->rec_cached),
			group(c, sizeof c, r->rec_output), (long long)r->rec_turns, pl(r->rec_turns, "turn", "turns"));
	if (r->n_err)
		fprintf(stderr,
			"agentreplay: import: estimated vs recorded prompt size: median error %.1f%% (signed %+.1f%%) over %zu %s\n",
			100 * imp_report_median_abs(r), 100 * imp_report_median(r), r->n_err, pl((int64_t)r->n_err, "turn", "turns"));
	if (r->synthesized_prefix)
		fprintf(stderr, "agentreplay: import: missing system prompt / tool schemas synthesized to the recorded size in %lld %s\n",
			(long long)r->synthesized_prefix, pl(r->synthesized_prefix, "session", "sessions"));
	if (r->hidden_turns)
		fprintf(stderr, "agentreplay: import: hidden reasoning kept in context: %s tokens over %lld %s (synthetic)\n",
			group(a, sizeof a, r->hidden_tokens), (long long)r->hidden_turns, pl(r->hidden_turns, "turn", "turns"));
	for (size_t i = 0; i < r->n_drops; i++)
		fprintf(stderr, "agentreplay: import: dropped %lld %s\n", (long long)r->drops[i].n, r->drops[i].kind);
	if (r->redactions)
		fprintf(stderr, "agentreplay: import: redacted %lld %s\n", (long long)r->redactions,
			pl(r->redactions, "secret", "secrets"));
}

static void report_json(const struct imp_report *r, const char *dest)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"format\":");
	jsonh_put_string(&b, r->format, strlen(r->format));
	buf_puts(&b, ",\"output\":");
	jsonh_put_string(&b, dest, strlen(dest));
	buf_printf(&b,
		   ",\"files\":%lld,\"sessions\":%lld,\"subagents\":%lld,\"turns\":%lld,\"compactions\":%lld,"
		   "\"tool_calls\":%lld,\"tool_results\":%lld,\"lines\":%lld,\"bad_lines\":%lld,"
		   "\"recorded\":{\"turns\":%lld,\"prompt_tokens\":%lld,\"cached_tokens\":%lld,\"output_tokens\":%lld},"
		   "\"prompt_error\":{\"turns\":%zu,\"median_abs_pct\":",
		   (long long)r->files, (long long)r->sessions, (long long)r->subagents, (long long)r->turns,
		   (long long)r->compactions, (long long)r->tool_calls, (long long)r->tool_results, (long long)r->lines,
		   (long long)r->bad_lines, (long long)r->rec_turns, (long long)r->rec_prompt, (long long)r->rec_cached,
		   (long long)r->rec_output, r->n_err);
	jsonh_put_number(&b, round(1000 * imp_report_median_abs(r)) / 10);
	buf_puts(&b, ",\"median_pct\":");
	jsonh_put_number(&b, round(1000 * imp_report_median(r)) / 10);
	buf_printf(&b, "},\"synthesized_prefix\":%lld,\"hidden_reasoning\":{\"turns\":%lld,\"tokens\":%lld},"
		   "\"redactions\":%lld,\"dropped\":{",
		   (long long)r->synthesized_prefix, (long long)r->hidden_turns, (long long)r->hidden_tokens,
		   (long long)r->redactions);
	for (size_t i = 0; i < r->n_drops; i++) {
		if (i)
			buf_putc(&b, ',');
		jsonh_put_string(&b, r->drops[i].kind, strlen(r->drops[i].kind));
		buf_printf(&b, ":%lld", (long long)r->drops[i].n);
	}
	buf_printf(&b, "},\"warnings\":%lld}", (long long)(r->n_warn + (size_t)r->warn_more));
	if (b.data)
		printf("%s\n", b.data);
	buf_free(&b);
}

static int import_run_cmd(int argc, char **argv)
{
	struct import_cfg c;
	memset(&c, 0, sizeof c);
	int npos = 0;
	int p = cli_parse(&cmd_import, argc, argv, import_opt, &c, &npos);
	if (p != 0)
		return p > 0 ? EXIT_OK : EXIT_USAGE;
	if (c.list) {
		for (const struct importer *const *t = import_table(); *t; t++)
			printf("%-15s %s\n", (*t)->name, (*t)->summary);
		return EXIT_OK;
	}
	if (npos < 2) {
		cli_error("import: %s (usage: agentreplay import FORMAT FILE... [-o OUT])",
			  npos == 0 ? "missing FORMAT" : "missing the file to import");
		return EXIT_USAGE;
	}
	if (c.json && (!c.out || !strcmp(c.out, "-"))) {
		cli_error("import: --json prints the report on standard output, so the trace needs -o FILE");
		return EXIT_USAGE;
	}
	const char *fmt = argv[0];
	const struct importer *imp = NULL;
	if (strcmp(fmt, "auto") && !(imp = import_find(fmt))) {
		struct buf names = BUF_INIT;
		for (const struct importer *const *t = import_table(); *t; t++)
			buf_printf(&names, ", %s", (*t)->name);
		cli_error("import: unknown format '%s' (known: auto%s)", fmt, names.data ? names.data : "");
		buf_free(&names);
		return EXIT_USAGE;
	}
	struct ar_err err = {0};
	struct redact *rd = NULL;
	struct imp_report rep;
	memset(&rep, 0, sizeof rep);
	int rc = EXIT_USAGE;
	if (!imp) {
		/* say what auto chose, for every input */
		for (int i = 1; i < npos; i++) {
			const struct importer *s = import_sniff(argv[i], &err);
			if (!s) {
				cli_error("import: %s", err.msg);
				goto out;
			}
			fprintf(stderr, "agentreplay: import: '%s' looks like %s\n", argv[i], s->name);
		}
	}
	if (!c.no_redact && redact_new(&rd, c.rules, c.n_rules, 0, &err) < 0) {
		cli_error("import: %s", err.msg);
		goto out;
	}
	struct imp_opts o = {.lenient = c.lenient, .redact = rd, .max_line = c.max_line};
	const char *dest = c.out ? c.out : "-";
	int r = import_run(imp, (const char *const *)argv + 1, (size_t)npos - 1, dest, &o, &rep, &err);
	for (size_t i = 0; i < rep.n_warn; i++)
		fprintf(stderr, "%s\n", rep.warnings[i]);
	if (rep.warn_more)
		fprintf(stderr, "agentreplay: import: (%lld more warnings)\n", (long long)rep.warn_more);
	if (r < 0) {
		cli_error("import: %s", err.msg);
		goto out;
	}
	const char *shown = c.out ? c.out : "standard output";
	if (c.json)
		report_json(&rep, shown);
	else if (!c.quiet)
		report_text(&rep, shown);
	rc = EXIT_OK;
out:
	redact_free(rd);
	imp_report_free(&rep);
	return rc;
}

const struct cli_cmd cmd_import = {
	.name = "import",
	.summary = "Convert agent session logs and request traces into replayable traces.",
	.usage = "import FORMAT INPUT... [-o FILE] [--lenient] [--no-redact] [--redact-rules FILE] [--json]",
	.description =
		"FORMAT is auto (sniff each input and say what was chosen) or one of: claude-code, codex,\n"
		"gemini-cli, swe-agent, mini-swe-agent, openhands, aider, managed-agents, mooncake, weka,\n"
		"openai-log (agentreplay record's request log); --list describes them.\n"
		"\n"
		"One turn per model request (never per line or per user prompt); the active branch of\n"
		"tree-shaped logs; compaction as keep + summary; subagents as child sessions; usage as\n"
		"total prompt + cached tokens; what a format lacks (system prompt, tool schemas) made up\n"
		"deterministically to the recorded size and named in source.synthesized. Secrets are\n"
		"replaced by same-length placeholders unless --no-redact.\n"
		"\n"
		"The report says what was imported and dropped, the recorded token totals, and how far\n"
		"the estimated prompt of each turn is from what the agent really sent (median).\n"
		"A bad line stops the import (exit 2, nothing written) unless --lenient.",
	.opts = import_opts,
	.run = import_run_cmd,
};
