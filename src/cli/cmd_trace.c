/* agentreplay trace validate|stats|cat: check, summarise and normalise traces. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convo.h"
#include "jsonh.h"
#include "trace_io.h"
#include "units.h"

enum { O_LENIENT = 1, O_MAXLINE, O_JSON, O_OUT, O_QUIET, O_TURNS };

static const struct cli_opt trace_opts[] = {
	{"lenient", 0, NULL, "skip lines of unknown type with a warning instead of an error", O_LENIENT},
	{"max-line-bytes", 0, "SIZE", "longest line accepted (default 16MiB)", O_MAXLINE},
	{"json", 0, NULL, "stats: one JSON object on stdout", O_JSON},
	{"turns", 0, NULL, "stats: list every turn's context tokens", O_TURNS},
	{"output", 'o', "FILE", "cat: write here instead of stdout (.zst compresses)", O_OUT},
	{"quiet", 'q', NULL, "validate: print only problems", O_QUIET},
	{0},
};

struct trace_cfg {
	struct trace_reader_opts ropts;
	bool json, quiet, turns;
	const char *out;
};

static int trace_opt(void *ctx, int id, const char *val, struct ar_err *err)
{
	struct trace_cfg *c = ctx;
	uint64_t v;
	switch (id) {
	case O_LENIENT: c->ropts.lenient = true; break;
	case O_MAXLINE:
		if (units_parse_bytes(val, &v, err) < 0)
			return -1;
		if (v < 1024 || v > (1ull << 31))
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range (1KiB to 2GiB)", val);
		c->ropts.max_line = (size_t)v;
		break;
	case O_JSON: c->json = true; break;
	case O_TURNS: c->turns = true; break;
	case O_OUT: c->out = val; break;
	case O_QUIET: c->quiet = true; break;
	}
	return 0;
}

/* FORMAT.md section 10: FILE:LINE: FIELD: MESSAGE, FILE:LINE:COL: MESSAGE for
 * byte-level problems, FILE: MESSAGE for the whole file. */
static void print_diag(const struct trace_reader *r, const struct trace_diag *d)
{
	const char *path = trace_reader_path(r);
	unsigned long long line = (unsigned long long)trace_reader_line(r);
	const char *w = d->warning ? "warning: " : "";
	for (size_t k = 0; k < d->n; k++) {
		const char *f = d->p[k].field;
		if (!line)
			fprintf(stderr, "%s: %s%s\n", path, w, d->p[k].msg);
		else if (d->p[k].col > 0)
			fprintf(stderr, "%s:%llu:%ld: %s%s\n", path, line, d->p[k].col, w, d->p[k].msg);
		else
			fprintf(stderr, "%s:%llu: %s%s%s%s\n", path, line, f, *f ? ": " : "", w, d->p[k].msg);
	}
	if (d->dropped)
		fprintf(stderr, "%s:%llu: (%zu more problems on this line)\n", path, line, d->dropped);
}

/* ---- validate ---------------------------------------------------------- */

static int validate_file(const char *path, const struct trace_cfg *c, uint64_t *problems)
{
	struct ar_err err = {0};
	struct trace_reader *r = NULL;
	if (trace_reader_open(&r, path, &c->ropts, &err) < 0) {
		cli_error_err(&err);
		(*problems)++;
		return -1;
	}
	uint64_t sessions = 0, turns = 0, bad = 0;
	for (;;) {
		struct trace_item it;
		struct trace_diag d;
		int rc = trace_reader_next(r, &it, &d, &err);
		if (rc == TRACE_EOF)
			break;
		if (rc == TRACE_FATAL) {
			cli_error_err(&err);
			bad++;
			break;
		}
		if (rc == TRACE_BAD) {
			print_diag(r, &d);
			bad += d.n + d.dropped;
			continue;
		}
		if (rc == TRACE_SKIPPED) {
			print_diag(r, &d);
			continue;
		}
		if (it.kind == TRACE_ITEM_SESSION)
			sessions++;
		else
			turns++;
		trace_item_clear(&it);
	}
	if (!bad && !c->quiet)
		printf("%s: ok (%" PRIu64 " session%s, %" PRIu64 " turn%s)\n", trace_reader_path(r), sessions,
		       sessions == 1 ? "" : "s", turns, turns == 1 ? "" : "s");
	trace_reader_close(r);
	*problems += bad;
	return 0;
}

/* ---- stats ------------------------------------------------------------- */

static const struct {
	const char *name;
	int64_t tokens;
} tiers[] = {{"baseline", 23}, {"code", 750}, {"32k", 32768}, {"64k", 65536}, {"128k", 131072}};
#define NTIERS (sizeof tiers / sizeof tiers[0])

struct sess_stats {
	cJSON *obj; /* the JSON we build (also rendered as text) */
	cJSON *per_turn;
	cJSON *roles;
	cJSON *tools;
	int64_t turns, first, final, max, output;
	int64_t tier_turn[NTIERS];
	struct convo convo;
};

static void count_into(cJSON *obj, const char *key)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (v)
		cJSON_SetNumberValue(v, v->valuedouble + 1);
	else
		cJSON_AddNumberToObject(obj, key, 1);
}

static void sess_begin(struct sess_stats *s, const struct tr_session *ses, const char *file)
{
	memset(s, 0, sizeof *s);
	s->obj = cJSON_CreateObject();
	cJSON_AddStringToObject(s->obj, "file", file);
	cJSON_AddStringToObject(s->obj, "id", ses->id);
	if (ses->parent) {
		cJSON_AddStringToObject(s->obj, "parent", ses->parent);
		cJSON_AddNumberToObject(s->obj, "spawned_at_turn", (double)ses->spawned_at_turn);
	}
	cJSON_AddNumberToObject(s->obj, "tools_defined", (double)jsonh_count(ses->tools));
	cJSON_AddNumberToObject(s->obj, "prefix_tokens", (double)tr_session_prefix_tokens(ses));
	s->per_turn = cJSON_CreateArray();
	s->roles = cJSON_CreateObject();
	s->tools = cJSON_CreateObject();
	for (size_t k = 0; k < NTIERS; k++)
		s->tier_turn[k] = -1;
	convo_init(&s->convo, CONVO_COUNT_ONLY);
	convo_reset(&s->convo, ses);
}

static void sess_turn(struct sess_stats *s, const struct tr_turn *t)
{
	struct ar_err err;
	if (convo_step(&s->convo, t, &err) < 0)
		return; /* the reader already reported it */
	int64_t ctx = convo_tokens(&s->convo);
	cJSON_AddItemToArray(s->per_turn, cJSON_CreateNumber((double)ctx));
	if (s->turns == 0)
		s->first = ctx;
	s->final = ctx;
	if (ctx > s->max)
		s->max = ctx;
	for (size_t k = 0; k < NTIERS; k++)
		if (s->tier_turn[k] < 0 && ctx >= tiers[k].tokens)
			s->tier_turn[k] = t->i;
	for (size_t k = 0; k < t->n_append; k++) {
		count_into(s->roles, tr_role_name(t->append[k].role));
		for (size_t j = 0; j < t->append[k].n_calls; j++)
			count_into(s->tools, t->append[k].calls[j].name);
	}
	if (t->response) {
		count_into(s->roles, "assistant");
		for (size_t j = 0; j < t->response->n_calls; j++)
			count_into(s->tools, t->response->calls[j].name);
	}
	s->output += tr_response_output_tokens(t->response);
	s->turns++;
}

static cJSON *sess_end(struct sess_stats *s)
{
	cJSON *o = s->obj;
	cJSON_AddNumberToObject(o, "turns", (double)s->turns);
	cJSON *ctx = cJSON_AddObjectToObject(o, "context_tokens");
	cJSON_AddNumberToObject(ctx, "first", (double)s->first);
	cJSON_AddNumberToObject(ctx, "final", (double)s->final);
	cJSON_AddNumberToObject(ctx, "max", (double)s->max);
	cJSON_AddItemToObject(o, "messages_by_role", s->roles);
	cJSON_AddItemToObject(o, "tool_calls_by_name", s->tools);
	cJSON_AddNumberToObject(o, "output_tokens", (double)s->output);
	cJSON *tr = cJSON_AddObjectToObject(o, "tiers");
	for (size_t k = 0; k < NTIERS; k++) {
		if (s->tier_turn[k] >= 0)
			cJSON_AddNumberToObject(tr, tiers[k].name, (double)s->tier_turn[k]);
		else
			cJSON_AddNullToObject(tr, tiers[k].name);
	}
	cJSON_AddItemToObject(o, "per_turn_context_tokens", s->per_turn);
	convo_free(&s->convo);
	return o;
}

static void print_counts(const char *label, const cJSON *obj)
{
	printf("  %-16s", label);
	if (!obj->child)
		printf(" -");
	for (const cJSON *c = obj->child; c; c = c->next)
		printf(" %s %d%s", c->string, (int)c->valuedouble, c->next ? "," : "");
	printf("\n");
}

static void print_session_text(const cJSON *o, bool turns)
{
	const cJSON *ctx = cJSON_GetObjectItem(o, "context_tokens");
	printf("session %s  (%s)\n", cJSON_GetObjectItem(o, "id")->valuestring,
	       cJSON_GetObjectItem(o, "file")->valuestring);
	const cJSON *parent = cJSON_GetObjectItem(o, "parent");
	if (parent)
		printf("  %-16s %s at turn %d\n", "subagent of", parent->valuestring,
		       (int)cJSON_GetObjectItem(o, "spawned_at_turn")->valuedouble);
	printf("  %-16s %d\n", "turns", (int)cJSON_GetObjectItem(o, "turns")->valuedouble);
	printf("  %-16s %d tokens (system + %d tool schemas)\n", "prefix",
	       (int)cJSON_GetObjectItem(o, "prefix_tokens")->valuedouble,
	       (int)cJSON_GetObjectItem(o, "tools_defined")->valuedouble);
	printf("  %-16s first %d, final %d, max %d tokens (estimated)\n", "context",
	       (int)cJSON_GetObjectItem(ctx, "first")->valuedouble,
	       (int)cJSON_GetObjectItem(ctx, "final")->valuedouble,
	       (int)cJSON_GetObjectItem(ctx, "max")->valuedouble);
	print_counts("messages", cJSON_GetObjectItem(o, "messages_by_role"));
	print_counts("tool calls", cJSON_GetObjectItem(o, "tool_calls_by_name"));
	printf("  %-16s %d\n", "output tokens", (int)cJSON_GetObjectItem(o, "output_tokens")->valuedouble);
	printf("  %-16s", "tiers reached");
	const cJSON *tr = cJSON_GetObjectItem(o, "tiers");
	for (const cJSON *c = tr->child; c; c = c->next) {
		if (cJSON_IsNull(c))
			printf(" %s -%s", c->string, c->next ? "," : "");
		else
			printf(" %s turn %d%s", c->string, (int)c->valuedouble, c->next ? "," : "");
	}
	printf("\n");
	if (turns) {
		printf("  %-16s", "per turn");
		int i = 0;
		for (const cJSON *c = cJSON_GetObjectItem(o, "per_turn_context_tokens")->child; c; c = c->next, i++)
			printf(" %d:%d", i, (int)c->valuedouble);
		printf("\n");
	}
}

static int stats_file(const char *path, const struct trace_cfg *c, cJSON *sessions, uint64_t *problems)
{
	struct ar_err err = {0};
	struct trace_reader *r = NULL;
	if (trace_reader_open(&r, path, &c->ropts, &err) < 0) {
		cli_error_err(&err);
		(*problems)++;
		return -1;
	}
	struct sess_stats s;
	bool open = false;
	for (;;) {
		struct trace_item it;
		struct trace_diag d;
		int rc = trace_reader_next(r, &it, &d, &err);
		if (rc == TRACE_EOF)
			break;
		if (rc == TRACE_FATAL) {
			cli_error_err(&err);
			(*problems)++;
			break;
		}
		if (rc == TRACE_BAD || rc == TRACE_SKIPPED) {
			print_diag(r, &d);
			if (rc == TRACE_BAD)
				*problems += d.n + d.dropped;
			continue;
		}
		if (it.kind == TRACE_ITEM_SESSION) {
			if (open)
				cJSON_AddItemToArray(sessions, sess_end(&s));
			sess_begin(&s, it.session, trace_reader_path(r));
			open = true;
		} else if (open) {
			sess_turn(&s, it.turn);
		}
		trace_item_clear(&it);
	}
	if (open)
		cJSON_AddItemToArray(sessions, sess_end(&s));
	trace_reader_close(r);
	return 0;
}

/* ---- cat --------------------------------------------------------------- */

static int cat_file(const char *path, const struct trace_cfg *c, struct trace_writer *w)
{
	struct ar_err err = {0};
	struct trace_reader *r = NULL;
	if (trace_reader_open(&r, path, &c->ropts, &err) < 0) {
		cli_error_err(&err);
		return -1;
	}
	int ret = 0;
	for (;;) {
		struct trace_item it;
		struct trace_diag d;
		int rc = trace_reader_next(r, &it, &d, &err);
		if (rc == TRACE_EOF)
			break;
		if (rc == TRACE_SKIPPED) {
			print_diag(r, &d);
			continue;
		}
		if (rc == TRACE_FATAL || rc == TRACE_BAD) {
			if (rc == TRACE_FATAL)
				cli_error_err(&err);
			else
				print_diag(r, &d);
			ret = -1;
			break;
		}
		int wr = it.kind == TRACE_ITEM_SESSION ? trace_writer_session(w, it.session, &err)
						       : trace_writer_turn(w, it.turn, &err);
		trace_item_clear(&it);
		if (wr < 0) {
			cli_error_err(&err);
			ret = -1;
			break;
		}
	}
	trace_reader_close(r);
	return ret;
}

static int trace_run(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
			cli_help(&cmd_trace, stdout);
			return EXIT_OK;
		}
		cli_error("trace: which one? validate, stats or cat (see 'agentreplay trace --help')");
		return EXIT_USAGE;
	}
	const char *sub = argv[1];
	struct trace_cfg c = {0};
	int npos = 0;
	int p = cli_parse(&cmd_trace, argc - 1, argv + 1, trace_opt, &c, &npos);
	if (p != 0)
		return p > 0 ? EXIT_OK : EXIT_USAGE;
	char **files = argv + 1;
	if (npos == 0) {
		cli_error("trace %s: no trace file given", sub);
		return EXIT_USAGE;
	}
	if (!strcmp(sub, "validate")) {
		uint64_t problems = 0;
		for (int i = 0; i < npos; i++)
			validate_file(files[i], &c, &problems);
		if (problems) {
			fprintf(stderr, "agentreplay: %llu problem%s found\n", (unsigned long long)problems,
				problems == 1 ? "" : "s");
			return EXIT_USAGE;
		}
		return EXIT_OK;
	}
	if (!strcmp(sub, "stats")) {
		uint64_t problems = 0;
		cJSON *root = cJSON_CreateObject();
		cJSON *sessions = cJSON_AddArrayToObject(root, "sessions");
		for (int i = 0; i < npos; i++)
			stats_file(files[i], &c, sessions, &problems);
		int64_t turns = 0, out = 0, maxctx = 0;
		for (const cJSON *s = sessions->child; s; s = s->next) {
			turns += (int64_t)cJSON_GetObjectItem(s, "turns")->valuedouble;
			out += (int64_t)cJSON_GetObjectItem(s, "output_tokens")->valuedouble;
			int64_t m = (int64_t)cJSON_GetObjectItem(cJSON_GetObjectItem(s, "context_tokens"), "max")->valuedouble;
			if (m > maxctx)
				maxctx = m;
		}
		cJSON *tot = cJSON_AddObjectToObject(root, "totals");
		cJSON_AddNumberToObject(tot, "files", npos);
		cJSON_AddNumberToObject(tot, "sessions", cJSON_GetArraySize(sessions));
		cJSON_AddNumberToObject(tot, "turns", (double)turns);
		cJSON_AddNumberToObject(tot, "output_tokens", (double)out);
		cJSON_AddNumberToObject(tot, "max_context_tokens", (double)maxctx);
		cJSON_AddNumberToObject(tot, "problems", (double)problems);
		if (c.json) {
			char *s = cJSON_PrintUnformatted(root);
			if (s)
				puts(s);
			cJSON_free(s);
		} else {
			for (const cJSON *s = sessions->child; s; s = s->next)
				print_session_text(s, c.turns);
			printf("total: %d session%s, %lld turns, max context %lld tokens, %lld output tokens\n",
			       cJSON_GetArraySize(sessions), cJSON_GetArraySize(sessions) == 1 ? "" : "s",
			       (long long)turns, (long long)maxctx, (long long)out);
		}
		cJSON_Delete(root);
		return problems ? EXIT_USAGE : EXIT_OK;
	}
	if (!strcmp(sub, "cat")) {
		struct ar_err err = {0};
		struct trace_writer *w = NULL;
		if (trace_writer_open(&w, c.out ? c.out : "-", 0, &err) < 0) {
			cli_error_err(&err);
			return EXIT_USAGE;
		}
		int rc = 0;
		for (int i = 0; i < npos && rc == 0; i++)
			rc = cat_file(files[i], &c, w);
		if (rc < 0) {
			if (c.out)
				trace_writer_abort(w);
			else
				trace_writer_commit(w, &err);
			return EXIT_USAGE;
		}
		if (trace_writer_commit(w, &err) < 0) {
			cli_error_err(&err);
			return EXIT_USAGE;
		}
		return EXIT_OK;
	}
	cli_error("trace: unknown subcommand '%s' (validate, stats or cat)", sub);
	return EXIT_USAGE;
}

const struct cli_cmd cmd_trace = {
	.name = "trace",
	.summary = "Check, summarise and normalise agentreplay-trace/1 files (plain or .zst).",
	.usage = "trace validate|stats|cat [options] FILE...",
	.description =
		"  validate  check every line against traces/FORMAT.md; each problem is printed as\n"
		"            FILE:LINE: field: what is wrong; exit 2 if there is any\n"
		"  stats     sessions, turns, context tokens per turn (estimated): first, final, max;\n"
		"            messages by role, tool calls by name, output tokens, depth tiers reached\n"
		"  cat       decompressed, normalised JSONL (cat of cat is byte-identical to cat)\n"
		"\n"
		"FILE may be '-' for standard input. zstd input is detected by its magic bytes.",
	.opts = trace_opts,
	.run = trace_run,
};
