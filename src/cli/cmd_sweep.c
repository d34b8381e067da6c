/* agentreplay sweep: run every config of a sweep file, each against a server
 * it starts and stops (replay/sweep.h), into one store.
 *
 * This layer resolves what the libraries cannot: `gen:` trace specs (written
 * once by the generators library into a cache folder, then passed down as
 * files), the programs the backends name (a missing one is exit 2 before
 * anything starts), the store and its sweep identity, progress on stderr and
 * the results (a table, or the run --json object covering every config of the
 * sweep, read back from the store so a resumed sweep reports earlier configs
 * too).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arrival.h"
#include "cli.h"
#include "clock.h"
#include "gen.h"
#include "gen_profile.h"
#include "lifecycle.h"
#include "store.h"
#include "sweep.h"
#include "sweepcfg.h"
#include "units.h"

enum { O_DB = 1, O_RESUME, O_SHARD, O_DRY, O_JSON, O_QUIET, O_LOGDIR, O_RULES, O_CACHE };

static const struct cli_opt sweep_opts[] = {
	{"db", 0, "FILE", "results store (default agentreplay.db)", O_DB},
	{"resume", 0, NULL, "skip configs complete in --db, rerun partial ones (the config file must be unchanged)",
	 O_RESUME},
	{"shard", 0, "I/N", "run only shard I of N (1-based; configs split by key, round robin)", O_SHARD},
	{"dry-run", 0, NULL, "check the config and list the expanded configs; start nothing", O_DRY},
	{"json", 0, NULL, "print the sweep's results as one JSON object (run --json's shape)", O_JSON},
	{"quiet", 'q', NULL, "no progress on stderr", O_QUIET},
	{"log-dir", 0, "DIR", "server logs (default: DB.logs next to --db)", O_LOGDIR},
	{"rules-dir", 0, "DIR", "failure rule files (default: the shipped replay/rules)", O_RULES},
	{"gen-cache", 0, "DIR", "where gen: traces are written (default $XDG_CACHE_HOME/agentreplay/gen)", O_CACHE},
	{0},
};

struct sweep_cli {
	const char *db, *log_dir, *rules_dir, *cache;
	bool resume, dry, json, quiet;
	int shard_i, shard_n;
	char shard[32];
};

static int sweep_opt(void *ctx, int id, const char *val, struct ar_err *err)
{
	struct sweep_cli *c = ctx;
	switch (id) {
	case O_DB: c->db = val; break;
	case O_RESUME: c->resume = true; break;
	case O_SHARD:
		if (sweepcfg_parse_shard(val, &c->shard_i, &c->shard_n, err) < 0)
			return -1;
		snprintf(c->shard, sizeof c->shard, "%d/%d", c->shard_i, c->shard_n);
		break;
	case O_DRY: c->dry = true; break;
	case O_JSON: c->json = true; break;
	case O_QUIET: c->quiet = true; break;
	case O_LOGDIR: c->log_dir = val; break;
	case O_RULES: c->rules_dir = val; break;
	case O_CACHE: c->cache = val; break;
	}
	return 0;
}

/* ---- gen: traces ----------------------------------------------------------- */

static int mkdirs(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Writes the trace of a gen: spec (once: same spec, same bytes) and returns
 * its path in out. */
static int resolve_gen(const char *spec, const char *where, const char *cache, char *out, size_t n, struct ar_err *err)
{
	struct gen_opts o;
	memset(&o, 0, sizeof o);
	o.seed = 1;
	o.depth = 32768;
	o.sessions = 1;
	const char *style = "claude-code";
	char buf[1024], style_buf[256];
	snprintf(buf, sizeof buf, "%s", spec + 4);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq)
			return ar_err_set(err, AR_EFORMAT, "%s: '%s' is not key=value (style, depth, turns, seed, sessions)",
					  where, tok);
		*eq = '\0';
		const char *v = eq + 1;
		uint64_t x = 0;
		struct ar_err e = {0};
		if (!strcmp(tok, "style")) {
			snprintf(style_buf, sizeof style_buf, "%s", v);
			style = style_buf;
			continue;
		}
		int rc = !strcmp(tok, "depth") ? units_parse_tokens(v, &x, &e) : units_parse_count(v, &x, &e);
		if (rc < 0)
			return ar_err_set(err, AR_EFORMAT, "%s: %s: %s", where, tok, e.msg);
		if (!strcmp(tok, "depth"))
			o.depth = (int64_t)x;
		else if (!strcmp(tok, "turns"))
			o.turns = (int64_t)x;
		else if (!strcmp(tok, "seed"))
			o.seed = x;
		else if (!strcmp(tok, "sessions"))
			o.sessions = (int64_t)x;
		else
			return ar_err_set(err, AR_EFORMAT, "%s: unknown gen key '%s' (style, depth, turns, seed, sessions)",
					  where, tok);
	}
	char key[1200];
	snprintf(key, sizeof key, "%s|%s|%lld|%lld|%llu|%lld", AR_VERSION, style, (long long)o.depth, (long long)o.turns,
		 (unsigned long long)o.seed, (long long)o.sessions);
	char h[17];
	sweepcfg_hash(key, strlen(key), h);
	char dir[4096];
	if (cache)
		snprintf(dir, sizeof dir, "%s", cache);
	else if (getenv("XDG_CACHE_HOME") && *getenv("XDG_CACHE_HOME"))
		snprintf(dir, sizeof dir, "%s/agentreplay/gen", getenv("XDG_CACHE_HOME"));
	else
		snprintf(dir, sizeof dir, "%s/.cache/agentreplay/gen", getenv("HOME") ? getenv("HOME") : "/tmp");
	if (mkdirs(dir) < 0)
		return ar_err_set(err, AR_EIO, "cannot make the gen cache '%s': %s", dir, strerror(errno));
	char sname[64];
	snprintf(sname, sizeof sname, "%s", style);
	for (char *p = sname; *p; p++)
		if (*p == '/' || *p == '.')
			*p = '_';
	snprintf(out, n, "%s/%s-%lld-%s.jsonl", dir, sname, (long long)o.depth, h);
	if (access(out, R_OK) == 0)
		return 0;
	char ppath[4096];
	struct gen_profile *prof = NULL;
	if (gen_profile_path(style, ppath, sizeof ppath, err) < 0 || gen_profile_load(&prof, ppath, err) < 0)
		return ar_err_prefix(err, "%s", where);
	o.profile = prof;
	struct gen_report rep;
	int rc = gen_check(&o, err) < 0 ? -1 : gen_write(&o, out, &rep, err);
	gen_profile_free(prof);
	if (rc < 0)
		return ar_err_prefix(err, "%s", where);
	return 0;
}

/* ---- progress ------------------------------------------------------------- */

struct view {
	struct sweep_cli *c;
	bool tty, line_open;
	size_t i, n;
	const char *name;
	ar_ns t0, t_cfg;
	size_t done;
	double last_ttft;
	char last[160];
};

static void fmt_dur(double s, char *out, size_t n)
{
	if (s < 0 || isnan(s))
		snprintf(out, n, "?");
	else if (s < 60)
		snprintf(out, n, "%.0fs", s);
	else if (s < 3600)
		snprintf(out, n, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(out, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

static void eta(const struct view *v, char *el, char *et, size_t n)
{
	double elapsed = (double)(clock_now() - v->t0) / 1e9;
	fmt_dur(elapsed, el, n);
	if (v->done == 0)
		snprintf(et, n, "?");
	else
		fmt_dur(elapsed / (double)v->done * (double)(v->n - v->i + 1 - (v->i <= v->n ? 1 : 0)), et, n);
}

static void clear_line(struct view *v)
{
	if (v->line_open) {
		fputs("\r\033[K", stderr);
		v->line_open = false;
	}
}

static void on_config(void *ud, size_t i, size_t n, const struct sweep_item *it, const char *what, const char *detail)
{
	struct view *v = ud;
	v->i = i;
	v->n = n;
	v->name = it->name;
	char el[32], et[32];
	if (!strcmp(what, "start")) {
		v->t_cfg = clock_now();
		v->last_ttft = NAN;
		if (v->c->quiet || !v->tty)
			return;
		eta(v, el, et, sizeof el);
		clear_line(v);
		fprintf(stderr, "[%zu/%zu] %s: starting the server  (elapsed %s, ETA %s)", i, n, it->name, el, et);
		v->line_open = true;
		return;
	}
	v->done++;
	if (v->c->quiet)
		return;
	eta(v, el, et, sizeof el);
	clear_line(v);
	if (!strcmp(what, "skip"))
		fprintf(stderr, "[%zu/%zu] %s: %s in the store, skipped\n", i, n, it->name, detail);
	else
		fprintf(stderr, "[%zu/%zu] %s: %s in %.1f s%s%s  (elapsed %s, ETA %s)\n", i, n, it->name, detail,
			(double)(clock_now() - v->t_cfg) / 1e9, v->last[0] ? "; " : "", v->last, el, et);
	v->last[0] = '\0';
}

static void on_event(void *ud, const struct sweep_item *it, const char *kind, const char *detail)
{
	struct view *v = ud;
	(void)it;
	if (!strcmp(kind, "start_failed") || !strcmp(kind, "crashed")) {
		cJSON *j = cJSON_Parse(detail);
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, !strcmp(kind, "crashed") ? "status" : "message");
		snprintf(v->last, sizeof v->last, "%s: %.120s", kind, cJSON_IsString(m) ? m->valuestring : detail);
		cJSON_Delete(j);
	} else if (!strcmp(kind, "port_busy")) {
		snprintf(v->last, sizeof v->last, "%.150s", detail);
	}
}

static void on_request(void *ud, const struct engine_request *q)
{
	struct view *v = ud;
	v->last_ttft = q->row.ttft_ms;
	if (strcmp(q->row.outcome, "ok"))
		snprintf(v->last, sizeof v->last, "turn %lld: %s", (long long)q->row.turn, q->row.outcome);
}

static void on_progress(void *ud, const struct engine_progress *p)
{
	struct view *v = ud;
	if (v->c->quiet || !v->tty)
		return;
	char el[32], et[32], tt[32] = "-";
	eta(v, el, et, sizeof el);
	if (!isnan(v->last_ttft))
		snprintf(tt, sizeof tt, "%.0f ms", v->last_ttft);
	fprintf(stderr, "\r\033[K[%zu/%zu] %s: %srepeat %d/%d turn %lld/%lld %s, ctx %lld, last TTFT %s  (elapsed %s, ETA %s)",
		v->i, v->n, v->name, p->warmup ? "warmup " : "", p->repeat, p->repeats, (long long)p->turn + 1,
		(long long)p->turns, p->cache, (long long)p->context_tokens, tt, el, et);
	v->line_open = true;
}

static void on_note(void *ud, const char *msg)
{
	struct view *v = ud;
	if (v->c->quiet)
		return;
	clear_line(v);
	fprintf(stderr, "agentreplay: %s\n", msg);
}

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* ---- results --------------------------------------------------------------- */

static cJSON *col_json(sqlite3_stmt *q, int i)
{
	switch (sqlite3_column_type(q, i)) {
	case SQLITE_NULL: return cJSON_CreateNull();
	case SQLITE_INTEGER: return cJSON_CreateNumber((double)sqlite3_column_int64(q, i));
	case SQLITE_FLOAT: return cJSON_CreateNumber(sqlite3_column_double(q, i));
	default: return cJSON_CreateString((const char *)sqlite3_column_text(q, i));
	}
}

static const char *const req_cols[] = {"session", "turn", "repeat", "cache", "context_tokens_est", "requested_tokens",
				       "prompt_tokens", "cached_tokens", "cached_source", "completion_tokens",
				       "completion_source", "connect_ms", "ttfb_ms", "ttft_ms", "decode_tps",
				       "prefill_tps", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms", "e2e_ms",
				       "mem_peak_bytes", "http_status", "outcome", "evidence", "flags", NULL};

/* Every live config of this sweep (key set, not superseded). */
static int print_results(struct store *st, int64_t run_id, const struct sweep_plan *plan, bool json)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *q = NULL, *r = NULL;
	if (sqlite3_prepare_v2(db, "SELECT id, name, key, backend, url, model, status, failure_json, log_path, params_json"
				   " FROM configs WHERE key IS NOT NULL AND status != 'superseded' ORDER BY key",
			       -1, &q, NULL) != SQLITE_OK)
		return -1;
	struct buf sql = BUF_INIT;
	buf_puts(&sql, "SELECT ");
	for (int i = 0; req_cols[i]; i++)
		buf_printf(&sql, "%s%s", i ? "," : "", req_cols[i]);
	buf_puts(&sql, " FROM requests WHERE config_id=? ORDER BY id");
	if (sqlite3_prepare_v2(db, sql.data, -1, &r, NULL) != SQLITE_OK) {
		buf_free(&sql);
		sqlite3_finalize(q);
		return -1;
	}
	buf_free(&sql);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "run_id", (double)run_id);
	cJSON *sw = cJSON_AddObjectToObject(root, "sweep");
	cJSON_AddStringToObject(sw, "config", plan->path);
	cJSON_AddStringToObject(sw, "hash", plan->hash);
	cJSON *cfgs = cJSON_AddArrayToObject(root, "configs");
	if (!json)
		printf("%-40s %-12s %8s  %s\n", "config", "status", "requests", "failure point");
	while (sqlite3_step(q) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		cJSON *co = cJSON_CreateObject();
		cJSON_AddItemToObject(co, "name", col_json(q, 1));
		cJSON_AddItemToObject(co, "key", col_json(q, 2));
		cJSON_AddItemToObject(co, "backend", col_json(q, 3));
		cJSON_AddItemToObject(co, "url", col_json(q, 4));
		cJSON_AddItemToObject(co, "model", col_json(q, 5));
		cJSON_AddBoolToObject(co, "simulated", false);
		cJSON_AddItemToObject(co, "status", col_json(q, 6));
		cJSON_AddItemToObject(co, "log_path", col_json(q, 8));
		const char *pj = (const char *)sqlite3_column_text(q, 9);
		cJSON *params = pj ? cJSON_Parse(pj) : NULL;
		cJSON_AddItemToObject(co, "params", params ? params : cJSON_CreateNull());
		const char *fj = (const char *)sqlite3_column_text(q, 7);
		cJSON *failure = fj ? cJSON_Parse(fj) : NULL;
		cJSON *reqs = cJSON_AddArrayToObject(co, "requests");
		sqlite3_bind_int64(r, 1, id);
		int64_t nreq = 0;
		while (sqlite3_step(r) == SQLITE_ROW) {
			nreq++;
			if (!json)
				continue;
			cJSON *o = cJSON_CreateObject();
			for (int i = 0; req_cols[i]; i++)
				cJSON_AddItemToObject(o, req_cols[i], col_json(r, i));
			cJSON_AddItemToArray(reqs, o);
		}
		sqlite3_reset(r);
		if (!json) {
			char fp[400] = "-";
			if (failure) {
				const cJSON *t = cJSON_GetObjectItemCaseSensitive(failure, "turn");
				const cJSON *cl = cJSON_GetObjectItemCaseSensitive(failure, "class");
				const cJSON *ph = cJSON_GetObjectItemCaseSensitive(failure, "phase");
				const cJSON *ct = cJSON_GetObjectItemCaseSensitive(failure, "context_tokens");
				const cJSON *ev = cJSON_GetObjectItemCaseSensitive(failure, "evidence");
				const cJSON *bd = cJSON_GetObjectItemCaseSensitive(failure, "failure_depth");
				int k = 0;
				if (cJSON_IsNumber(t))
					k = snprintf(fp, sizeof fp, "turn %d at %.0f tokens: ", t->valueint,
						     cJSON_IsNumber(ct) ? ct->valuedouble : -1.0);
				else
					k = snprintf(fp, sizeof fp, "%s: ", cJSON_IsString(ph) ? ph->valuestring : "?");
				k += snprintf(fp + k, sizeof fp - (size_t)k, "%s", cJSON_IsString(cl) ? cl->valuestring : "?");
				if (cJSON_IsNumber(bd))
					k += snprintf(fp + k, sizeof fp - (size_t)k, " (bisected: fails from ~%.0f tokens)",
						      bd->valuedouble);
				if (cJSON_IsString(ev) && k < (int)sizeof fp)
					snprintf(fp + k, sizeof fp - (size_t)k, " — %.160s", ev->valuestring);
			}
			printf("%-40.40s %-12s %8lld  %s\n", (const char *)sqlite3_column_text(q, 1),
			       (const char *)sqlite3_column_text(q, 6), (long long)nreq, fp);
		}
		cJSON_AddItemToObject(co, "failure", failure ? failure : cJSON_CreateNull());
		cJSON_AddItemToArray(cfgs, co);
	}
	sqlite3_finalize(q);
	sqlite3_finalize(r);
	if (json) {
		char *s = cJSON_PrintUnformatted(root);
		if (s)
			puts(s);
		cJSON_free(s);
	}
	cJSON_Delete(root);
	return 0;
}

static void dry_run(const struct sweep_plan *p, const struct sweep_cli *c)
{
	size_t sel = 0;
	for (size_t i = 0; i < p->nitems; i++)
		sel += sweepcfg_in_shard(&p->items[i], c->shard_i, c->shard_n);
	printf("sweep %s (hash %s): %zu config%s", p->path, p->hash, p->nitems, p->nitems == 1 ? "" : "s");
	if (c->shard_n > 1)
		printf(", %zu in shard %s", sel, c->shard);
	printf("\ntraces:");
	for (size_t i = 0; i < p->ntraces; i++)
		printf(" %s", p->traces[i]);
	printf("\nmeasure: repeats %d, warmup %d, cold %s, until_fail %s, bisect %s\n", p->m.repeats, p->m.warmup,
	       p->m.cold, p->m.until_fail ? "true" : "false", p->m.bisect ? "true" : "false");
	size_t k = 0;
	for (size_t i = 0; i < p->nitems; i++) {
		const struct sweep_item *it = &p->items[i];
		if (!sweepcfg_in_shard(it, c->shard_i, c->shard_n))
			continue;
		char **argv = NULL;
		struct ar_err e = {0};
		printf("%zu. %s\n   key: %s\n", ++k, it->name, it->key);
		if (sweepcfg_argv(p, it, -1, &argv, &e) == 0) {
			printf("   command:");
			for (char **a = argv; *a; a++)
				printf(" %s", *a);
			char path[4096];
			if (!p->backends[it->backend].shell && lc_find_program(argv[0], path, sizeof path, &e) < 0)
				printf("   (not found here)");
			printf("\n");
		}
		sweepcfg_strv_free(argv);
	}
}

static int sweep_main(int argc, char **argv)
{
	struct sweep_cli c;
	memset(&c, 0, sizeof c);
	c.db = "agentreplay.db";
	int npos = 0;
	int p = cli_parse(&cmd_sweep, argc, argv, sweep_opt, &c, &npos);
	if (p != 0)
		return p > 0 ? EXIT_OK : EXIT_USAGE;
	if (npos != 1) {
		cli_error("sweep: one CONFIG file, please (see 'agentreplay sweep --help')");
		return EXIT_USAGE;
	}
	struct ar_err err = {0};
	struct sweep_plan *plan = NULL;
	if (sweepcfg_load(&plan, argv[0], &err) < 0) {
		cli_error_err(&err);
		return EXIT_USAGE;
	}
	struct arrival arr;
	if (plan->m.arrival[0] && arrival_parse(plan->m.arrival, &arr, &err) < 0) {
		cli_error("%s: measure.arrival: %s", argv[0], err.msg);
		sweepcfg_free(plan);
		return EXIT_USAGE;
	}
	if (c.dry) {
		dry_run(plan, &c);
		sweepcfg_free(plan);
		return EXIT_OK;
	}
	int rc = EXIT_USAGE;
	struct store *st = NULL;
	char **traces = calloc(plan->ntraces + 1, sizeof *traces);
	char logdir[4096];
	int64_t run_id = 0;
	if (!traces) {
		cli_error("out of memory");
		goto out;
	}
	/* everything that can be checked before a server starts */
	for (size_t i = 0; i < plan->nitems; i++) {
		const struct sweep_item *it = &plan->items[i];
		const struct sweep_backend *b = &plan->backends[it->backend];
		if (!sweepcfg_in_shard(it, c.shard_i, c.shard_n) || b->shell)
			continue;
		char **av = NULL, path[4096];
		if (sweepcfg_argv(plan, it, -1, &av, &err) < 0) {
			cli_error_err(&err);
			goto out;
		}
		int r = lc_find_program(av[0], path, sizeof path, &err);
		if (r < 0) {
			cli_error("sweep: %s:%d: backends.%s.command: %s (config '%s'); nothing was started", plan->path,
				  b->argv_line[0], b->id, err.msg, it->name);
			sweepcfg_strv_free(av);
			goto out;
		}
		sweepcfg_strv_free(av);
		struct stat sb;
		if (b->cwd && (stat(b->cwd, &sb) < 0 || !S_ISDIR(sb.st_mode))) {
			cli_error("sweep: %s:%d: backends.%s.cwd: '%s' is not a directory; nothing was started", plan->path,
				  b->line, b->id, b->cwd);
			goto out;
		}
	}
	for (size_t i = 0; i < plan->ntraces; i++) {
		char where[4200], path[4096];
		snprintf(where, sizeof where, "%s:%d: traces[%zu]", plan->path, plan->trace_line[i], i);
		if (!strncmp(plan->traces[i], "gen:", 4)) {
			if (resolve_gen(plan->traces[i], where, c.cache, path, sizeof path, &err) < 0) {
				cli_error_err(&err);
				goto out;
			}
		} else {
			if (access(plan->traces[i], R_OK) < 0) {
				cli_error("sweep: %s: cannot read trace '%s': %s", where, plan->traces[i], strerror(errno));
				goto out;
			}
			snprintf(path, sizeof path, "%s", plan->traces[i]);
		}
		if (!(traces[i] = strdup(path))) {
			cli_error("out of memory");
			goto out;
		}
	}
	if (store_open(&st, c.db, 0, &err) < 0 || sweep_prepare(st, plan, c.db, c.resume, &err) < 0) {
		cli_error_err(&err);
		goto out;
	}
	if (c.log_dir)
		snprintf(logdir, sizeof logdir, "%s", c.log_dir);
	else
		snprintf(logdir, sizeof logdir, "%s.logs", c.db);
	if (mkdirs(logdir) < 0) {
		cli_error("sweep: cannot make the log folder '%s': %s", logdir, strerror(errno));
		goto out;
	}
	char cmdline[4096] = "agentreplay sweep";
	for (int i = 0; i < argc; i++)
		snprintf(cmdline + strlen(cmdline), sizeof cmdline - strlen(cmdline), " %s", argv[i]);
	char abspath[4096];
	if (!realpath(plan->path, abspath))
		snprintf(abspath, sizeof abspath, "%s", plan->path);
	if (store_run_begin(st, cmdline, NULL, &run_id, &err) < 0 ||
	    store_run_set_sweep(st, run_id, abspath, plan->hash, c.shard[0] ? c.shard : NULL, &err) < 0) {
		cli_error_err(&err);
		goto out;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct view v = {&c, isatty(STDERR_FILENO) != 0, false, 0, 0, NULL, clock_now(), 0, 0, NAN, ""};
	struct engine_obs eobs = {&v, on_request, on_progress, on_note};
	struct sweep_obs sobs = {&v, on_config, on_event, &eobs};
	struct sweep_opts so = {plan, (const char *const *)traces, plan->ntraces, logdir, c.rules_dir, c.resume,
				c.shard_i, c.shard_n, &stop_flag, &sobs};
	struct sweep_summary sum;
	int sr = sweep_run(st, run_id, &so, &sum, &err);
	clear_line(&v);
	const char *status = sr < 0 ? "error" : sum.interrupted ? "interrupted" : "ok";
	struct ar_err e2 = {0};
	if (store_run_end(st, run_id, status, &e2) < 0)
		cli_error_err(&e2);
	if (sr < 0) {
		cli_error_err(&err);
		rc = EXIT_FAILED;
		goto out;
	}
	if (!c.quiet)
		fprintf(stderr,
			"agentreplay: sweep: %zu config%s in this run%s: %zu ok, %zu failed, %zu did not start, %zu "
			"errors, %zu skipped (complete in %s)\n",
			sum.selected, sum.selected == 1 ? "" : "s", c.shard[0] ? " (shard)" : "", sum.ok, sum.failed,
			sum.start_failed, sum.errors, sum.skipped, c.db);
	if (print_results(st, run_id, plan, c.json) < 0) {
		cli_error("sweep: cannot read the results back from '%s'", c.db);
		rc = EXIT_FAILED;
		goto out;
	}
	rc = sum.interrupted ? EXIT_INTERRUPTED : sum.errors ? EXIT_FAILED : EXIT_OK;
out:
	if (traces)
		for (size_t i = 0; i < plan->ntraces; i++)
			free(traces[i]);
	free(traces);
	store_close(st);
	sweepcfg_free(plan);
	return rc;
}

const struct cli_cmd cmd_sweep = {
	.name = "sweep",
	.summary = "Start, measure and stop every server config of a sweep file; find where each one fails.",
	.usage = "sweep CONFIG.yaml [--db FILE] [--resume] [--shard I/N] [--dry-run] [--json] [options]",
	.description =
		"CONFIG (YAML or JSON) names backends (how to start each server: command argv with {model},\n"
		"{port}, {ctx}, {kv}, ... placeholders, env, cwd, health URL and/or ready log pattern, start\n"
		"timeout, stop signal, grace), models, a matrix of lists (cross product minus exclude rules),\n"
		"traces (files or gen:style=S,depth=N,turns=N,seed=N specs) and measure options. Examples:\n"
		"sweeps/ in the source tree. Each config gets its own server on a free port, its log in\n"
		"DB.logs/; a failing request is classified with what the server did (crash with its exit\n"
		"status, oom from its log); a server that never gets ready is recorded and skipped.\n"
		"until_fail (default true) stops a config at its first failing turn; bisect: true narrows\n"
		"the failing depth with single-request probes to +-2k tokens.\n"
		"--resume skips configs complete in --db and reruns partial ones (their old rows are\n"
		"superseded); a changed config file is refused. --shard I/N runs the I-th of N equal shares\n"
		"(merge the stores with 'agentreplay db merge').\n"
		"\n"
		"exit: 0 the sweep ran (failing configs are results), 1 a config could not be measured,\n"
		"2 bad config or input (nothing started), 130 interrupted (servers stopped, --resume continues).",
	.opts = sweep_opts,
	.run = sweep_main,
};
