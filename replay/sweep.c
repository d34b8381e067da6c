#include "sweep.h"
#include "arrival.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapter.h"
#include "buf.h"
#include "classify.h"
#include "lifecycle.h"
#include "utf8.h"

#define BISECT_TOLERANCE 2048
#define BISECT_MAX_PROBES 24
#define LOG_SCAN_MAX (1u << 20) /* of the server log read per failed request */
#define TAIL_BYTES 2048

static const char *const complete_status[] = {"ok", "failed", "start_failed", NULL};

static bool is_complete(const char *status)
{
	for (const char *const *c = complete_status; *c; c++)
		if (!strcmp(*c, status))
			return true;
	return false;
}

static int db_fail(struct store *st, struct ar_err *err, const char *what)
{
	return ar_err_set(err, AR_EIO, "store: %s: %s", what, sqlite3_errmsg(store_db(st)));
}

int sweep_prepare(struct store *st, const struct sweep_plan *plan, const char *db_path, bool resume,
		  struct ar_err *err)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(db, "SELECT config_path, config_hash FROM runs WHERE config_hash IS NOT NULL AND config_hash != ?"
				   " LIMIT 1", -1, &q, NULL) != SQLITE_OK)
		return db_fail(st, err, "cannot read the runs");
	sqlite3_bind_text(q, 1, plan->hash, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) == SQLITE_ROW) {
		ar_err_set(err, AR_EINVAL,
			   "store '%s' holds a sweep of '%s' (config hash %s), and '%s' (hash %s) is a different config: "
			   "results of the two would be mixed; use a new --db for it",
			   db_path, (const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
			   plan->path, plan->hash);
		sqlite3_finalize(q);
		return -1;
	}
	sqlite3_finalize(q);
	if (resume)
		return 0;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM configs WHERE key IS NOT NULL AND status != 'superseded'", -1, &q,
			       NULL) != SQLITE_OK)
		return db_fail(st, err, "cannot read the configs");
	int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
	sqlite3_finalize(q);
	if (n > 0)
		return ar_err_set(err, AR_EINVAL,
				  "store '%s' already holds %lld config%s of this sweep: pass --resume to continue it, or "
				  "use a new --db",
				  db_path, (long long)n, n == 1 ? "" : "s");
	return 0;
}

/* ---- one config ---------------------------------------------------------- */

struct cfg_run {
	const struct sweep_opts *o;
	const struct sweep_item *it;
	const struct sweep_backend *b;
	struct store *st;
	int64_t run_id, config_id;
	struct rules *rules;
	struct lc_server *srv;
	char log_path[4096];
	off_t log_mark; /* the log up to here belongs to earlier requests */
	int port;
	char url[2048], health[2048];
	char **argv, **env;
	bool crash_recorded;
	struct lc_memcg memcg; /* the server's memory cgroup, read when it got ready */
	bool have_memcg;
	/* strings handed to the engine's row by on_failure */
	char outcome[24];
	char evidence[1200];
	struct engine_obs eobs;
};

static void event(struct cfg_run *c, const char *kind, const char *detail)
{
	struct ar_err e = {0};
	(void)store_event_add(c->st, c->run_id, c->config_id, kind, detail, &e);
	if (c->o->obs && c->o->obs->on_event)
		c->o->obs->on_event(c->o->obs->ud, c->it, kind, detail);
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Looks for an OOM (or other log rule) line in the server log written since
 * the last completed request. Returns the class or NULL. */
static const char *scan_log(struct cfg_run *c, char *evidence, size_t n)
{
	off_t end = file_size(c->log_path);
	off_t from = c->log_mark;
	if (end - from > (off_t)LOG_SCAN_MAX)
		from = end - (off_t)LOG_SCAN_MAX;
	if (end <= from || !c->rules)
		return NULL;
	int fd = open(c->log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t len = (size_t)(end - from);
	char *text = malloc(len + 1);
	ssize_t got = text ? pread(fd, text, len, from) : -1;
	close(fd);
	if (got <= 0) {
		free(text);
		return NULL;
	}
	len = (size_t)got;
	/* rules run in UTF-8 mode: invalid bytes become '?' */
	for (size_t i = 0; i < len;) {
		size_t ok = utf8_check(text + i, len - i);
		i += ok;
		if (i < len)
			text[i++] = '?';
	}
	text[len] = '\0';
	const char *cls = rules_match(c->rules, "log", text, len, evidence, n);
	free(text);
	return cls;
}

/* A server that died by SIGKILL while the sweep had not stopped it: did the
 * kernel's OOM killer do it? A memory limit kills with no line in the log;
 * the server's memory cgroup counts the kills. True (class oom) when that
 * counter went up since the server got ready; what is known goes to ev
 * (empty when the server did not die by SIGKILL). */
static bool killed_by_oom(struct cfg_run *c, int w, char *ev, size_t n)
{
	ev[0] = '\0';
	if (!WIFSIGNALED(w) || WTERMSIG(w) != SIGKILL)
		return false;
	long long now = c->have_memcg ? lc_memcg_oom_kills(&c->memcg) : -1;
	if (c->have_memcg && c->memcg.oom_kills >= 0 && now > c->memcg.oom_kills) {
		char lim[64] = "no limit of its own";
		if (c->memcg.limit > 0)
			snprintf(lim, sizeof lim, "limit %.1f MiB", (double)c->memcg.limit / 1048576.0);
		snprintf(ev, n, "killed by signal 9 from the kernel's OOM killer: memory cgroup %s (%s) counted oom_kill %lld -> %lld",
			 c->memcg.path, lim, c->memcg.oom_kills, now);
		return true;
	}
	if (c->have_memcg)
		snprintf(ev, n, "killed by signal 9, not sent by the sweep; its memory cgroup %s counted no OOM kill", c->memcg.path);
	else
		snprintf(ev, n, "killed by signal 9, not sent by the sweep (the kernel's OOM killer or a memory limit?)");
	return false;
}

/* The engine's hook: a request failed; what does the server say? */
static void on_failure(void *ud, struct store_request *row)
{
	struct cfg_run *c = ud;
	if (!c->srv)
		return;
	const char *oc = row->outcome;
	bool transport = !strcmp(oc, "crash") || !strcmp(oc, "protocol_error") || !strcmp(oc, "timeout") ||
			 !strcmp(oc, "http_error") || !strcmp(oc, "oom");
	if (!transport)
		return;
	/* a server that reset the connection may be dying right now: give it a moment */
	bool exited = lc_poll_exit(c->srv, !strcmp(oc, "crash") || !strcmp(oc, "protocol_error") || !strcmp(oc, "oom")
						   ? 3000 : 200);
	char line[600] = "";
	const char *cls = scan_log(c, line, sizeof line);
	char status[96] = "";
	int w = 0;
	if (exited && lc_exited(c->srv, &w))
		lc_status_text(w, status, sizeof status);
	if (cls && !strcmp(cls, "oom")) {
		snprintf(c->outcome, sizeof c->outcome, "oom");
		snprintf(c->evidence, sizeof c->evidence, "server log: %s%s%s%s", line, exited ? " (server " : "",
			 status, exited ? ")" : "");
	} else if (exited) {
		char tail[700], killed[400];
		lc_log_tail(c->log_path, 3, tail, sizeof tail);
		for (char *p = tail; *p; p++)
			if (*p == '\n')
				*p = '|';
		bool oom = killed_by_oom(c, w, killed, sizeof killed);
		snprintf(c->outcome, sizeof c->outcome, oom ? "oom" : "crash");
		char how[420];
		if (killed[0])
			snprintf(how, sizeof how, "%s", killed);
		else
			snprintf(how, sizeof how, "exited (%s)", status);
		snprintf(c->evidence, sizeof c->evidence, "server %s during the request; client saw %s%s%.300s; log: %s", how,
			 oc, row->evidence ? ": " : "", row->evidence ? row->evidence : "", tail);
	} else {
		return;
	}
	row->outcome = c->outcome;
	row->evidence = c->evidence;
}

static void fwd_request(void *ud, const struct engine_request *r)
{
	struct cfg_run *c = ud;
	c->log_mark = file_size(c->log_path);
	const struct engine_obs *e = c->o->obs ? c->o->obs->engine : NULL;
	if (e && e->on_request)
		e->on_request(e->ud, r);
}

static void fwd_progress(void *ud, const struct engine_progress *p)
{
	struct cfg_run *c = ud;
	const struct engine_obs *e = c->o->obs ? c->o->obs->engine : NULL;
	if (e && e->on_progress)
		e->on_progress(e->ud, p);
}

static void fwd_note(void *ud, const char *msg)
{
	struct cfg_run *c = ud;
	const struct engine_obs *e = c->o->obs ? c->o->obs->engine : NULL;
	if (e && e->on_note)
		e->on_note(e->ud, msg);
}

static enum cold_mode cold_of(const char *s)
{
	return !strcmp(s, "every") ? COLD_EVERY : !strcmp(s, "deepest") ? COLD_DEEPEST : !strcmp(s, "none") ? COLD_NONE
											     : COLD_TIERS;
}

static void engine_cfg_of(struct cfg_run *c, struct engine_cfg *e, const char *const *traces, size_t ntraces)
{
	const struct sweep_measure *m = &c->o->plan->m;
	memset(e, 0, sizeof *e);
	e->backend = c->b->adapter;
	e->url = c->url;
	e->model = c->it->model;
	e->traces = traces;
	e->n_traces = ntraces;
	e->repeats = m->repeats;
	e->warmup = m->warmup;
	e->cold = cold_of(m->cold);
	e->history_generated = m->history_generated;
	e->until_fail = m->until_fail;
	e->slo_ttft_ms = m->slo_ttft_ms;
	e->slo_decode_tps = m->slo_decode_tps;
	e->ttft_timeout = m->ttft_timeout_ns;
	e->stall_timeout = m->stall_timeout_ns;
	e->plain = m->plain;
	e->max_tokens_field = m->max_tokens_field;
	e->extra_json = m->extra_json;
	e->rules_dir = c->o->rules_dir;
	e->stop = c->o->stop;
	e->on_failure = on_failure;
	e->on_failure_ud = c;
	/* the managed server's memory, sampled like run --server-pid */
	e->server_pid = c->srv ? (int64_t)lc_pid(c->srv) : 0;
	e->mem_interval_s = m->mem_interval_s;
	e->mem_budget = m->mem_budget;
	e->concurrency = m->concurrency;
	e->pace = m->pace;
	e->seed = m->seed;
	if (m->arrival[0] && arrival_parse(m->arrival, &e->arrival, NULL) < 0)
		e->arrival.kind = ARRIVAL_ALL; /* checked when the sweep was loaded (cmd_sweep) */
}

static void stop_server(struct cfg_run *c);

/* JSON text of a start/stop detail. */
static char *json_detail(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* Starts the server and waits for it. Returns 0 ready, -1 with *fail_json
 * (the start failure) set, or -2 when interrupted. */
static int start_server(struct cfg_run *c, char **fail_json, struct ar_err *err)
{
	const struct sweep_plan *p = c->o->plan;
	*fail_json = NULL;
	char msg[1400] = "";
	const char *cls = "crash";
	c->port = c->b->port;
	if (c->port) {
		if (lc_port_in_use(c->port)) {
			snprintf(msg, sizeof msg, "port %d is already in use by another process (a server left running?); "
				 "nothing was started", c->port);
			cls = "start_failed";
			goto fail;
		}
	} else if (lc_free_port(&c->port, err) < 0) {
		snprintf(msg, sizeof msg, "%s", err->msg);
		goto fail;
	}
	sweepcfg_strv_free(c->argv);
	sweepcfg_strv_free(c->env);
	c->argv = c->env = NULL;
	char *url = NULL, *health = NULL;
	if (sweepcfg_argv(p, c->it, c->port, &c->argv, err) < 0 || sweepcfg_env(p, c->it, c->port, &c->env, err) < 0 ||
	    sweepcfg_text(p, c->it, c->port, c->b->url, &url, err) < 0 ||
	    (c->b->health && sweepcfg_text(p, c->it, c->port, c->b->health, &health, err) < 0)) {
		free(url);
		snprintf(msg, sizeof msg, "%s", err->msg);
		cls = "start_failed";
		goto fail;
	}
	size_t ul = strlen(url);
	while (ul && url[ul - 1] == '/')
		ul--;
	snprintf(c->url, sizeof c->url, "%.*s", (int)ul, url);
	c->health[0] = '\0';
	if (health)
		snprintf(c->health, sizeof c->health, "%s%s", health[0] == '/' ? c->url : "", health);
	free(url);
	free(health);
	struct lc_spec spec = {c->argv, c->env, c->b->cwd, c->log_path, c->health[0] ? c->health : NULL, c->b->ready,
			       c->b->start_timeout_ns, c->b->stop_signal, c->b->grace_ns, c->port};
	lc_free(c->srv);
	c->srv = NULL;
	c->log_mark = file_size(c->log_path);
	c->have_memcg = false;
	if (lc_start(&c->srv, &spec, err) < 0) {
		snprintf(msg, sizeof msg, "%s", err->msg);
		cls = "start_failed";
		goto fail;
	}
	struct ar_err e2 = {0};
	(void)store_config_set_server(c->st, c->config_id, c->log_path, (int64_t)lc_pid(c->srv), &e2);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "pid", (double)lc_pid(c->srv));
	cJSON_AddNumberToObject(d, "port", c->port);
	cJSON_AddStringToObject(d, "url", c->url);
	cJSON_AddStringToObject(d, "log", c->log_path);
	cJSON *av = cJSON_AddArrayToObject(d, "argv");
	for (char **a = c->argv; *a; a++)
		cJSON_AddItemToArray(av, cJSON_CreateString(*a));
	char *ds = json_detail(d);
	event(c, "started", ds);
	cJSON_free(ds);
	double ready_s = 0;
	if (lc_wait_ready(c->srv, c->o->stop, &ready_s, err) < 0) {
		if (err->code == AR_EINTERNAL && c->o->stop && *c->o->stop)
			return -2;
		snprintf(msg, sizeof msg, "%s", err->msg);
		cls = err->code == AR_EBACKEND ? "timeout" : "crash";
		goto fail;
	}
	char rd[64];
	snprintf(rd, sizeof rd, "after %.2f s", ready_s);
	event(c, "ready", rd);
	c->have_memcg = lc_memcg_of(lc_pid(c->srv), &c->memcg);
	c->log_mark = file_size(c->log_path);
	return 0;
fail:;
	/* what the log says decides between oom and the rest */
	char line[600] = "", status[96] = "", tail[TAIL_BYTES];
	tail[0] = '\0';
	int w = 0;
	if (c->srv) {
		if (lc_poll_exit(c->srv, 0) && lc_exited(c->srv, &w))
			lc_status_text(w, status, sizeof status);
		c->crash_recorded = true; /* start_failed says it */
		stop_server(c);
		const char *lc = scan_log(c, line, sizeof line);
		if (lc && !strcmp(lc, "oom"))
			cls = "oom";
		lc_log_tail(c->log_path, 20, tail, sizeof tail);
	}
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "phase", "start");
	cJSON_AddNullToObject(f, "turn");
	cJSON_AddStringToObject(f, "class", cls);
	cJSON_AddStringToObject(f, "evidence", line[0] ? line : msg);
	cJSON_AddStringToObject(f, "message", msg);
	if (status[0])
		cJSON_AddStringToObject(f, "exit", status);
	cJSON_AddStringToObject(f, "log_tail", tail);
	*fail_json = json_detail(f);
	event(c, "start_failed", *fail_json);
	return -1;
}

static void stop_server(struct cfg_run *c)
{
	if (!c->srv)
		return;
	bool died = lc_poll_exit(c->srv, 0);
	int w = 0;
	if (died && !c->crash_recorded && lc_exited(c->srv, &w)) {
		char st[96], tail[TAIL_BYTES];
		lc_status_text(w, st, sizeof st);
		lc_log_tail(c->log_path, 20, tail, sizeof tail);
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "status", st);
		cJSON_AddStringToObject(d, "log_tail", tail);
		char *s = json_detail(d);
		event(c, "crashed", s);
		cJSON_free(s);
		c->crash_recorded = true;
	}
	struct lc_stop_result r;
	struct ar_err e = {0};
	int rc = lc_stop(c->srv, &r, &e);
	char st[96];
	lc_status_text(r.wstatus, st, sizeof st);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddBoolToObject(d, "was_running", r.was_running);
	cJSON_AddStringToObject(d, "status", st);
	cJSON_AddBoolToObject(d, "killed_after_grace", r.killed);
	cJSON_AddNumberToObject(d, "stop_s", round(r.stop_s * 1000) / 1000);
	cJSON_AddBoolToObject(d, "port_free", r.port_free);
	if (rc < 0)
		cJSON_AddStringToObject(d, "error", e.msg);
	char *s = json_detail(d);
	event(c, "stopped", s);
	cJSON_free(s);
	if (!r.port_free) {
		char m[160];
		snprintf(m, sizeof m, "port %d still accepts connections after the server stopped", c->port);
		event(c, "port_busy", m);
	}
	lc_free(c->srv);
	c->srv = NULL;
}

/* ---- bisect -------------------------------------------------------------- */

static int64_t query_i64(struct store *st, const char *sql, int64_t a, int64_t b, int64_t dflt)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(store_db(st), sql, -1, &q, NULL) != SQLITE_OK)
		return dflt;
	sqlite3_bind_int64(q, 1, a);
	if (sqlite3_bind_parameter_count(q) > 1)
		sqlite3_bind_int64(q, 2, b);
	int64_t v = dflt;
	if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

/* One probe: a single request of `tokens` generated tokens. Returns 0 with
 * *failed and cls set, -1 when no server could be had (reason in err). */
static int probe(struct cfg_run *c, int64_t tokens, int64_t out_tokens, bool *failed, char *cls, size_t cls_n,
		 char *evid, size_t evid_n, struct ar_err *err)
{
	if (!c->srv || lc_poll_exit(c->srv, 0)) {
		/* a fresh server after a crash */
		stop_server(c);
		char *fj = NULL;
		int r = start_server(c, &fj, err);
		cJSON_free(fj);
		if (r < 0)
			return ar_err_set(err, AR_EBACKEND, "no server for the probe (%s)", r == -2 ? "interrupted" : "it did not start");
		c->crash_recorded = false;
	}
	char path[4200];
	snprintf(path, sizeof path, "%s.probe-%lld.jsonl", c->log_path, (long long)tokens);
	FILE *f = fopen(path, "w");
	if (!f)
		return ar_err_set(err, AR_EIO, "cannot write probe trace '%s': %s", path, strerror(errno));
	fprintf(f, "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"probe-%lld\"}\n", (long long)tokens);
	fprintf(f, "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":%lld}}],"
		   "\"response\":{\"content\":\"\",\"output_tokens\":%lld}}\n",
		(long long)tokens, (long long)out_tokens);
	if (fclose(f) != 0) {
		unlink(path);
		return ar_err_set(err, AR_EIO, "cannot write probe trace '%s'", path);
	}
	struct store *mem = NULL;
	int rc = -1;
	if (store_open(&mem, ":memory:", 0, err) < 0)
		goto out;
	int64_t rid = 0, cid = 0;
	struct store_config sc = {.name = "probe", .backend = c->b->adapter, .url = c->url, .model = c->it->model};
	if (store_run_begin(mem, "probe", NULL, &rid, err) < 0 || store_config_add(mem, rid, &sc, &cid, err) < 0)
		goto out;
	struct engine_cfg e;
	const char *tr[1] = {path};
	engine_cfg_of(c, &e, tr, 1);
	e.repeats = 1;
	e.warmup = 0;
	e.cold = COLD_NONE;
	e.until_fail = true;
	e.slo_ttft_ms = e.slo_decode_tps = 0; /* probes look for where it breaks, not for slowness */
	e.mem_interval_s = 0;                 /* single requests: nothing to fit */
	e.concurrency = 1;
	e.arrival.kind = ARRIVAL_ALL;
	e.pace = 0;
	struct engine_summary sum;
	struct engine_obs none = {c, NULL, NULL, NULL};
	c->log_mark = file_size(c->log_path);
	if (engine_run(&e, mem, rid, cid, &none, &sum, err) < 0) {
		/* a server that died at once refuses the connection: that is a failure too */
		if (lc_poll_exit(c->srv, 2000)) {
			*failed = true;
			char line[600] = "";
			const char *lc = scan_log(c, line, sizeof line);
			int w = 0;
			char killed[400] = "";
			bool oom = lc_exited(c->srv, &w) && killed_by_oom(c, w, killed, sizeof killed);
			snprintf(cls, cls_n, "%s", (lc && !strcmp(lc, "oom")) || oom ? "oom" : "crash");
			snprintf(evid, evid_n, "%s", line[0] ? line : killed[0] ? killed : err->msg);
			rc = 0;
		}
		goto out;
	}
	*failed = sum.failure.found;
	snprintf(cls, cls_n, "%s", sum.failure.found ? sum.failure.cls : "ok");
	snprintf(evid, evid_n, "%s", sum.failure.found ? sum.failure.evidence : "");
	rc = 0;
out:
	store_close(mem);
	unlink(path);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "tokens", (double)tokens);
	cJSON_AddStringToObject(d, "outcome", rc == 0 ? cls : "error");
	if (rc == 0 && *failed)
		cJSON_AddStringToObject(d, "evidence", evid);
	if (rc < 0)
		cJSON_AddStringToObject(d, "error", err->msg);
	char *s = json_detail(d);
	event(c, "probe", s);
	cJSON_free(s);
	return rc;
}

/* Adds "bisect" to the failure object. */
static void bisect(struct cfg_run *c, cJSON *failure)
{
	int64_t hi = query_i64(c->st,
			       "SELECT context_tokens_est FROM requests WHERE config_id=? AND outcome NOT IN ('ok','slo') "
			       "ORDER BY id LIMIT 1",
			       c->config_id, 0, -1);
	if (hi < 0) /* the failure point is an SLO: nothing breaks to bisect */
		return;
	int64_t lo = query_i64(c->st,
			       "SELECT max(context_tokens_est) FROM requests WHERE config_id=? AND outcome='ok' "
			       "AND context_tokens_est < ?",
			       c->config_id, hi, 0);
	int64_t out_tokens = query_i64(c->st,
				       "SELECT requested_tokens FROM requests WHERE config_id=? AND outcome NOT IN ('ok','slo') "
				       "ORDER BY id LIMIT 1",
				       c->config_id, 0, 16);
	if (out_tokens < 1)
		out_tokens = 16;
	cJSON *b = cJSON_CreateObject();
	cJSON_AddNumberToObject(b, "tolerance_tokens", BISECT_TOLERANCE);
	int probes = 0;
	bool failed = false;
	char cls[32] = "", evid[600] = "", first_cls[32] = "";
	struct ar_err err = {0};
	/* does a single request at the failing depth fail at all? */
	if (probe(c, hi, out_tokens, &failed, cls, sizeof cls, evid, sizeof evid, &err) < 0) {
		cJSON_AddStringToObject(b, "error", err.msg);
		goto out;
	}
	probes++;
	if (!failed) {
		cJSON_AddBoolToObject(b, "reproduced", false);
		cJSON_AddStringToObject(b, "note",
					"a single request at the failing depth succeeds: the failure needs the session's "
					"history (cache, memory growth), not the depth alone");
		goto out;
	}
	snprintf(first_cls, sizeof first_cls, "%s", cls);
	cJSON_AddBoolToObject(b, "reproduced", true);
	while (hi - lo > BISECT_TOLERANCE && probes < BISECT_MAX_PROBES && !(c->o->stop && *c->o->stop)) {
		int64_t mid = lo + (hi - lo) / 2;
		if (probe(c, mid, out_tokens, &failed, cls, sizeof cls, evid, sizeof evid, &err) < 0) {
			cJSON_AddStringToObject(b, "error", err.msg);
			break;
		}
		probes++;
		if (failed)
			hi = mid;
		else
			lo = mid;
	}
	cJSON_AddNumberToObject(b, "ok_tokens", (double)lo);
	cJSON_AddNumberToObject(b, "fail_tokens", (double)hi);
	cJSON_AddStringToObject(b, "class", first_cls);
	cJSON_AddNumberToObject(failure, "failure_depth", (double)hi);
out:
	cJSON_AddNumberToObject(b, "probes", probes);
	cJSON_AddItemToObject(failure, "bisect", b);
}

static int supersede(struct store *st, int64_t config_id, struct ar_err *err)
{
	sqlite3 *db = store_db(st);
	char sql[512];
	snprintf(sql, sizeof sql,
		 "BEGIN IMMEDIATE; UPDATE configs SET status='superseded' WHERE id=%lld;"
		 " DELETE FROM requests WHERE config_id=%lld; DELETE FROM mem_samples WHERE config_id=%lld; COMMIT;",
		 (long long)config_id, (long long)config_id, (long long)config_id);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		ar_err_set(err, AR_EIO, "store: cannot supersede config %lld: %s", (long long)config_id, msg ? msg : "");
		sqlite3_free(msg);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* The latest live row of key: its id and status (empty when none). */
static int64_t latest_of(struct store *st, const char *key, char *status, size_t n)
{
	sqlite3_stmt *q;
	status[0] = '\0';
	if (sqlite3_prepare_v2(store_db(st),
			       "SELECT id, status FROM configs WHERE key=? AND status != 'superseded' ORDER BY id DESC LIMIT 1",
			       -1, &q, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
	int64_t id = -1;
	if (sqlite3_step(q) == SQLITE_ROW) {
		id = sqlite3_column_int64(q, 0);
		snprintf(status, n, "%s", (const char *)sqlite3_column_text(q, 1));
	}
	sqlite3_finalize(q);
	return id;
}

static void safe_name(const char *in, char *out, size_t n)
{
	size_t k = 0;
	for (; *in && k + 1 < n && k < 80; in++)
		out[k++] = (isalnum((unsigned char)*in) || *in == '-' || *in == '.' || *in == '_') ? *in : '_';
	out[k] = '\0';
}

static int run_one(struct store *st, int64_t run_id, const struct sweep_opts *o, const struct sweep_item *it,
		   struct sweep_summary *sum, const char **status_out, struct ar_err *err)
{
	struct cfg_run c;
	memset(&c, 0, sizeof c);
	c.o = o;
	c.it = it;
	c.b = &o->plan->backends[it->backend];
	c.st = st;
	c.run_id = run_id;
	c.eobs = (struct engine_obs){&c, fwd_request, fwd_progress, fwd_note};
	const char *status = "error";
	char *fail_json = NULL;
	cJSON *failure = NULL;
	int rc = -1;
	cJSON *tj = cJSON_CreateArray();
	for (size_t i = 0; i < o->ntraces; i++)
		cJSON_AddItemToArray(tj, cJSON_CreateString(o->traces[i]));
	char *traces_s = cJSON_PrintUnformatted(tj);
	cJSON_Delete(tj);
	struct store_config sc = {.name = it->name, .backend = c.b->adapter, .url = NULL, .model = it->model,
				  .simulated = false, .params_json = it->params_json, .trace_json = traces_s, .key = it->key};
	if (store_config_add(st, run_id, &sc, &c.config_id, err) < 0)
		goto out;
	const struct adapter *ad = adapter_find(c.b->adapter);
	if (rules_load(&c.rules, o->rules_dir ? o->rules_dir : rules_default_dir(), ad ? ad->family : "generic", err) < 0)
		goto out;
	char nm[96];
	safe_name(it->name, nm, sizeof nm);
	snprintf(c.log_path, sizeof c.log_path, "%s/%lld-%s.log", o->log_dir, (long long)c.config_id, nm);
	int sr = start_server(&c, &fail_json, err);
	if (sr == -2) {
		status = "interrupted";
		sum->interrupted = true;
		rc = 0;
		goto finish;
	}
	if (sr < 0) {
		status = "start_failed";
		sum->start_failed++;
		rc = 0;
		goto finish;
	}
	struct engine_cfg e;
	engine_cfg_of(&c, &e, (const char *const *)o->traces, o->ntraces);
	struct engine_summary es;
	struct ar_err eerr = {0};
	int er = engine_run(&e, st, run_id, c.config_id, &c.eobs, &es, &eerr);
	bool died = lc_poll_exit(c.srv, er < 0 ? 2000 : 0);
	if (er < 0 && died) {
		/* the server died where the engine could not make a row of it
		 * (warmup, the readiness probe): still a failure point */
		int w = 0;
		char stt[96], line[600] = "", tail[TAIL_BYTES];
		lc_exited(c.srv, &w);
		lc_status_text(w, stt, sizeof stt);
		const char *lc = scan_log(&c, line, sizeof line);
		lc_log_tail(c.log_path, 20, tail, sizeof tail);
		char killed[400];
		bool oom = killed_by_oom(&c, w, killed, sizeof killed);
		failure = cJSON_CreateObject();
		cJSON_AddStringToObject(failure, "phase", es.requests ? "replay" : "warmup");
		cJSON_AddNullToObject(failure, "turn");
		cJSON_AddStringToObject(failure, "class", (lc && !strcmp(lc, "oom")) || oom ? "oom" : "crash");
		cJSON_AddStringToObject(failure, "evidence", line[0] ? line : killed[0] ? killed : eerr.msg);
		cJSON_AddStringToObject(failure, "exit", stt);
		cJSON_AddStringToObject(failure, "log_tail", tail);
		status = "failed";
		sum->failed++;
	} else if (er < 0) {
		status = "error";
		sum->errors++;
		event(&c, "error", eerr.msg);
		fwd_note(&c, eerr.msg);
	} else if (es.interrupted) {
		status = "interrupted";
		sum->interrupted = true;
	} else if (es.failure.found) {
		status = "failed";
		sum->failed++;
		failure = cJSON_CreateObject();
		cJSON_AddStringToObject(failure, "phase", "replay");
		cJSON_AddStringToObject(failure, "session", es.failure.session);
		cJSON_AddNumberToObject(failure, "turn", (double)es.failure.turn);
		cJSON_AddNumberToObject(failure, "context_tokens", (double)es.failure.context_tokens);
		cJSON_AddStringToObject(failure, "class", es.failure.cls);
		cJSON_AddStringToObject(failure, "evidence", es.failure.evidence);
		if (es.failure.mem_bytes >= 0)
			cJSON_AddNumberToObject(failure, "mem_bytes", (double)es.failure.mem_bytes);
		else
			cJSON_AddNullToObject(failure, "mem_bytes");
		int w = 0;
		if (died && lc_exited(c.srv, &w)) {
			char stt[96];
			lc_status_text(w, stt, sizeof stt);
			cJSON_AddStringToObject(failure, "exit", stt);
		}
	} else {
		status = "ok";
		sum->ok++;
	}
	if (failure && o->plan->m.bisect && !(o->stop && *o->stop) && !strcmp(status, "failed"))
		bisect(&c, failure);
	stop_server(&c);
	if (failure) {
		char *s = cJSON_PrintUnformatted(failure);
		fail_json = s ? strdup(s) : NULL;
		cJSON_free(s);
	}
	rc = 0;
finish:
	stop_server(&c);
	if (store_config_finish(st, c.config_id, status, fail_json, err) < 0)
		rc = -1;
out:
	*status_out = status;
	cJSON_Delete(failure);
	free(fail_json);
	cJSON_free(traces_s);
	rules_free(c.rules);
	sweepcfg_strv_free(c.argv);
	sweepcfg_strv_free(c.env);
	lc_free(c.srv);
	return rc;
}

int sweep_run(struct store *st, int64_t run_id, const struct sweep_opts *o, struct sweep_summary *sum,
	      struct ar_err *err)
{
	memset(sum, 0, sizeof *sum);
	const struct sweep_plan *p = o->plan;
	size_t n = 0;
	for (size_t i = 0; i < p->nitems; i++)
		n += sweepcfg_in_shard(&p->items[i], o->shard_i, o->shard_n);
	sum->selected = n;
	size_t k = 0;
	for (size_t i = 0; i < p->nitems; i++) {
		const struct sweep_item *it = &p->items[i];
		if (!sweepcfg_in_shard(it, o->shard_i, o->shard_n))
			continue;
		k++;
		if (o->stop && *o->stop) {
			sum->interrupted = true;
			break;
		}
		char status[32];
		int64_t old = latest_of(st, it->key, status, sizeof status);
		if (old >= 0 && o->resume) {
			if (is_complete(status)) {
				sum->skipped++;
				if (o->obs && o->obs->on_config)
					o->obs->on_config(o->obs->ud, k, n, it, "skip", status);
				continue;
			}
			if (supersede(st, old, err) < 0)
				return -1;
		}
		if (o->obs && o->obs->on_config)
			o->obs->on_config(o->obs->ud, k, n, it, "start", NULL);
		const char *st_out = "error";
		if (run_one(st, run_id, o, it, sum, &st_out, err) < 0)
			return -1;
		if (o->obs && o->obs->on_config)
			o->obs->on_config(o->obs->ud, k, n, it, "done", st_out);
	}
	return 0;
}
