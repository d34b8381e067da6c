#include "store.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"

struct store {
	sqlite3 *db;
	char *path;
	int version;
	sqlite3_stmt *ins_request;
};

/* Migrations: entry k takes the schema from version k to k+1. Never edit an
 * entry once released; add a new one. */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE runs ("
	"  id INTEGER PRIMARY KEY,"
	"  started_at TEXT NOT NULL,"
	"  finished_at TEXT,"
	"  status TEXT NOT NULL DEFAULT 'running',"
	"  tool_version TEXT NOT NULL,"
	"  command_line TEXT,"
	"  host_json TEXT);"
	"CREATE TABLE configs ("
	"  id INTEGER PRIMARY KEY,"
	"  run_id INTEGER NOT NULL REFERENCES runs(id),"
	"  name TEXT NOT NULL,"
	"  backend TEXT NOT NULL,"
	"  url TEXT,"
	"  model TEXT,"
	"  simulated INTEGER NOT NULL DEFAULT 0,"
	"  params_json TEXT,"
	"  trace_json TEXT,"
	"  status TEXT NOT NULL DEFAULT 'running',"
	"  failure_json TEXT);"
	"CREATE TABLE requests ("
	"  id INTEGER PRIMARY KEY,"
	"  config_id INTEGER NOT NULL REFERENCES configs(id),"
	"  session TEXT NOT NULL,"
	"  turn INTEGER NOT NULL,"
	"  repeat INTEGER NOT NULL,"
	"  cache TEXT NOT NULL,"
	"  wall_time TEXT,"
	"  context_tokens_est INTEGER,"
	"  requested_tokens INTEGER,"
	"  prompt_tokens INTEGER,"
	"  cached_tokens INTEGER,"
	"  cached_source TEXT,"
	"  completion_tokens INTEGER,"
	"  completion_source TEXT,"
	"  connect_ms REAL, ttfb_ms REAL, ttft_ms REAL, decode_tps REAL, prefill_tps REAL,"
	"  itl_p50_ms REAL, itl_p90_ms REAL, itl_p99_ms REAL, e2e_ms REAL,"
	"  mem_peak_bytes INTEGER, mem_end_bytes INTEGER,"
	"  http_status INTEGER,"
	"  outcome TEXT NOT NULL,"
	"  evidence TEXT,"
	"  flags TEXT,"
	"  server_json TEXT);"
	"CREATE INDEX requests_config ON requests(config_id, session, repeat, turn);"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY,"
	"  run_id INTEGER REFERENCES runs(id),"
	"  config_id INTEGER REFERENCES configs(id),"
	"  wall_time TEXT NOT NULL,"
	"  t_ns INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  detail TEXT);"
	"CREATE TABLE mem_samples ("
	"  config_id INTEGER NOT NULL REFERENCES configs(id),"
	"  t_ns INTEGER NOT NULL,"
	"  rss_bytes INTEGER, pss_bytes INTEGER, gpu_bytes INTEGER,"
	"  host_available_bytes INTEGER, kv_usage REAL);",
	/* 1 -> 2: sweeps (config file identity, shards, managed servers), memory
	 * per request and its fitted model, concurrency per request. */
	"ALTER TABLE runs ADD COLUMN config_path TEXT;"
	"ALTER TABLE runs ADD COLUMN config_hash TEXT;"
	"ALTER TABLE runs ADD COLUMN shard TEXT;"
	"ALTER TABLE configs ADD COLUMN key TEXT;"
	"ALTER TABLE configs ADD COLUMN log_path TEXT;"
	"ALTER TABLE configs ADD COLUMN server_pid INTEGER;"
	"ALTER TABLE configs ADD COLUMN mem_json TEXT;"
	"CREATE INDEX configs_key ON configs(key);"
	"ALTER TABLE requests ADD COLUMN gpu_peak_bytes INTEGER;"
	"ALTER TABLE requests ADD COLUMN host_drop_bytes INTEGER;"
	"ALTER TABLE requests ADD COLUMN kv_usage REAL;"
	"ALTER TABLE requests ADD COLUMN sent_ns INTEGER;"
	"ALTER TABLE requests ADD COLUMN in_flight INTEGER;"
	"ALTER TABLE mem_samples ADD COLUMN procs INTEGER;",
	/* 2 -> 3: the intended send time of concurrent requests */
	"ALTER TABLE requests ADD COLUMN due_ns INTEGER;",
};
#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

static int db_err(struct store *s, struct ar_err *err, const char *what)
{
	/* SQLite says "disk I/O error"; the errno behind it says why (disk full,
	 * file too large, read-only file system) */
	int e = errno;
	int code = sqlite3_errcode(s->db) & 0xff; /* primary code of an extended one */
	if (sqlite3_system_errno(s->db))
		e = sqlite3_system_errno(s->db);
	else if (code != SQLITE_IOERR && code != SQLITE_FULL && code != SQLITE_CANTOPEN)
		e = 0;
	if (e)
		return ar_err_set(err, AR_EIO, "store '%s': %s: %s (%s)", s->path, what, sqlite3_errmsg(s->db), strerror(e));
	return ar_err_set(err, AR_EIO, "store '%s': %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int exec(struct store *s, const char *sql, struct ar_err *err)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		ar_err_set(err, AR_EIO, "store '%s': %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int user_version(struct store *s, int *v, struct ar_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return db_err(s, err, "cannot read the schema version");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_err(s, err, "cannot read the schema version");
	}
	*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* All pending migrations run in one transaction: a process killed while it
 * creates or upgrades a store leaves the old schema or the new one, never a
 * half-way version that another reader would see (or mistake for current).
 * The version is read inside the write lock, so two writers opening the
 * same new store do not both migrate it. */
static int migrate(struct store *s, struct ar_err *err)
{
	int v;
	if (exec(s, "BEGIN IMMEDIATE", err) < 0)
		return ar_err_prefix(err, "locking the store to check its schema");
	if (user_version(s, &v, err) < 0)
		goto fail;
	if (v > NMIGRATIONS) {
		ar_err_set(err, AR_EUNSUPPORTED,
			   "store '%s' has schema version %d, newer than this agentreplay understands (%d); "
			   "use a newer agentreplay",
			   s->path, v, NMIGRATIONS);
		goto fail;
	}
	for (; v < NMIGRATIONS; v++) {
		if (exec(s, migrations[v], err) < 0) {
			ar_err_prefix(err, "migrating to schema %d", v + 1);
			goto fail;
		}
	}
	char pragma[64];
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d;", v);
	if (exec(s, pragma, err) < 0 || exec(s, "COMMIT", err) < 0)
		goto fail;
	s->version = v;
	return 0;
fail:
	exec(s, "ROLLBACK", NULL);
	return -1;
}

/* A store that exists but lacks our tables is "not a store". */
static int looks_like_store(struct store *s, struct ar_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL) != SQLITE_OK) {
		/* SQLITE_NOTADB shows up here for files that are not databases */
		return ar_err_set(err, AR_EFORMAT, "'%s' is not an agentreplay store: %s", s->path,
				  sqlite3_errmsg(s->db));
	}
	int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (n < 0)
		return ar_err_set(err, AR_EFORMAT, "'%s' is not an agentreplay store: %s", s->path,
				  sqlite3_errmsg(s->db));
	int v;
	if (user_version(s, &v, err) < 0)
		return -1;
	if (n > 0 && v == 0)
		return ar_err_set(err, AR_EFORMAT, "'%s' is an SQLite database but not an agentreplay store", s->path);
	return 0;
}

int store_open(struct store **out, const char *path, int flags, struct ar_err *err)
{
	*out = NULL;
	struct store *s = calloc(1, sizeof *s);
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		ar_err_set(err, AR_EIO, "store '%s' is a directory", path);
		goto fail;
	}
	if ((flags & STORE_READONLY) && access(path, F_OK) != 0) {
		ar_err_set(err, AR_EIO, "cannot open store '%s': %s", path, strerror(errno));
		goto fail;
	}
	int oflags = (flags & STORE_READONLY) ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if (sqlite3_open_v2(path, &s->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		ar_err_set(err, AR_EIO, "cannot open store '%s': %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	sqlite3_extended_result_codes(s->db, 1);
	if (looks_like_store(s, err) < 0)
		goto fail;
	if (!(flags & STORE_READONLY)) {
		/* WAL: readers (reports) never block the writer; NORMAL sync survives
		 * a killed process (what we promise), not a power cut. */
		if (exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", err) < 0)
			goto fail;
		if (migrate(s, err) < 0)
			goto fail;
	} else {
		int v;
		if (user_version(s, &v, err) < 0)
			goto fail;
		if (v > NMIGRATIONS) {
			ar_err_set(err, AR_EUNSUPPORTED,
				   "store '%s' has schema version %d, newer than this agentreplay understands (%d)", path, v,
				   NMIGRATIONS);
			goto fail;
		}
		if (v < NMIGRATIONS) {
			ar_err_set(err, AR_EFORMAT, "store '%s' is empty or has an old schema (%d); open it once for writing to upgrade",
				   path, v);
			goto fail;
		}
		s->version = v;
	}
	*out = s;
	return 0;
fail:
	store_close(s);
	return -1;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	sqlite3_finalize(s->ins_request);
	sqlite3_close(s->db);
	free(s->path);
	free(s);
}

int store_schema_version(const struct store *s) { return s->version; }
struct sqlite3 *store_db(struct store *s) { return s->db; }

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
	if (v < 0)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, v);
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
	if (isnan(v) || isinf(v))
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_double(st, i, v);
}

static int step_done(struct store *s, sqlite3_stmt *st, const char *what, struct ar_err *err)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		int r = db_err(s, err, what);
		sqlite3_reset(st);
		return r;
	}
	sqlite3_reset(st);
	return 0;
}

int store_run_begin(struct store *s, const char *command_line, const char *host_json, int64_t *run_id,
		    struct ar_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO runs(started_at, tool_version, command_line, host_json) VALUES(?,?,?,?)", -1,
			       &st, NULL) != SQLITE_OK)
		return db_err(s, err, "cannot record the run");
	char now[32];
	clock_wall_iso8601(now, sizeof now);
	bind_text(st, 1, now);
	bind_text(st, 2, AR_VERSION);
	bind_text(st, 3, command_line);
	bind_text(st, 4, host_json);
	int rc = step_done(s, st, "cannot record the run", err);
	sqlite3_finalize(st);
	if (rc == 0)
		*run_id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_run_end(struct store *s, int64_t run_id, const char *status, struct ar_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "UPDATE runs SET finished_at=?, status=? WHERE id=?", -1, &st, NULL) != SQLITE_OK)
		return db_err(s, err, "cannot finish the run");
	char now[32];
	clock_wall_iso8601(now, sizeof now);
	bind_text(st, 1, now);
	bind_text(st, 2, status);
	sqlite3_bind_int64(st, 3, run_id);
	int rc = step_done(s, st, "cannot finish the run", err);
	sqlite3_finalize(st);
	return rc;
}

int store_config_add(struct store *s, int64_t run_id, const struct store_config *c, int64_t *config_id,
		     struct ar_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO configs(run_id, name, backend, url, model, simulated, params_json, trace_json,"
			       " key) VALUES(?,?,?,?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(s, err, "cannot record the config");
	sqlite3_bind_int64(st, 1, run_id);
	bind_text(st, 2, c->name);
	bind_text(st, 3, c->backend);
	bind_text(st, 4, c->url);
	bind_text(st, 5, c->model);
	sqlite3_bind_int(st, 6, c->simulated);
	bind_text(st, 7, c->params_json);
	bind_text(st, 8, c->trace_json);
	bind_text(st, 9, c->key);
	int rc = step_done(s, st, "cannot record the config", err);
	sqlite3_finalize(st);
	if (rc == 0)
		*config_id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_config_finish(struct store *s, int64_t config_id, const char *status, const char *failure_json,
			struct ar_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "UPDATE configs SET status=?, failure_json=? WHERE id=?", -1, &st, NULL) !=
	    SQLITE_OK)
		return db_err(s, err, "cannot finish the config");
	bind_text(st, 1, status);
	bind_text(st, 2, failure_json);
	sqlite3_bind_int64(st, 3, config_id);
	int rc = step_done(s, st, "cannot finish the config", err);
	sqlite3_finalize(st);
	return rc;
}

int store_request_add(struct store *s, int64_t config_id, const struct store_request *r, struct ar_err *err)
{
	if (!s->ins_request &&
	    sqlite3_prepare_v2(s->db,
			       "INSERT INTO requests(config_id, session, turn, repeat, cache, wall_time,"
			       " context_tokens_est, requested_tokens, prompt_tokens, cached_tokens, cached_source,"
			       " completion_tokens, completion_source, connect_ms, ttfb_ms, ttft_ms, decode_tps,"
			       " prefill_tps, itl_p50_ms, itl_p90_ms, itl_p99_ms, e2e_ms, mem_peak_bytes,"
			       " mem_end_bytes, http_status, outcome, evidence, flags, server_json,"
			       " gpu_peak_bytes, host_drop_bytes, kv_usage, sent_ns, in_flight, due_ns)"
			       " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			       -1, &s->ins_request, NULL) != SQLITE_OK)
		return db_err(s, err, "cannot prepare the request insert");
	sqlite3_stmt *st = s->ins_request;
	int i = 1;
	sqlite3_bind_int64(st, i++, config_id);
	bind_text(st, i++, r->session);
	sqlite3_bind_int64(st, i++, r->turn);
	sqlite3_bind_int64(st, i++, r->repeat);
	bind_text(st, i++, r->cache);
	bind_text(st, i++, r->wall_time);
	bind_i64(st, i++, r->context_tokens_est);
	bind_i64(st, i++, r->requested_tokens);
	bind_i64(st, i++, r->prompt_tokens);
	bind_i64(st, i++, r->cached_tokens);
	bind_text(st, i++, r->cached_source);
	bind_i64(st, i++, r->completion_tokens);
	bind_text(st, i++, r->completion_source);
	bind_real(st, i++, r->connect_ms);
	bind_real(st, i++, r->ttfb_ms);
	bind_real(st, i++, r->ttft_ms);
	bind_real(st, i++, r->decode_tps);
	bind_real(st, i++, r->prefill_tps);
	bind_real(st, i++, r->itl_p50_ms);
	bind_real(st, i++, r->itl_p90_ms);
	bind_real(st, i++, r->itl_p99_ms);
	bind_real(st, i++, r->e2e_ms);
	bind_i64(st, i++, r->mem_peak_bytes);
	bind_i64(st, i++, r->mem_end_bytes);
	if (r->http_status > 0)
		sqlite3_bind_int(st, i++, r->http_status);
	else
		sqlite3_bind_null(st, i++);
	bind_text(st, i++, r->outcome ? r->outcome : "ok");
	bind_text(st, i++, r->evidence);
	bind_text(st, i++, r->flags);
	bind_text(st, i++, r->server_json);
	bind_i64(st, i++, r->gpu_peak_bytes);
	bind_i64(st, i++, r->host_drop_bytes);
	bind_real(st, i++, r->kv_usage);
	bind_i64(st, i++, r->sent_ns);
	bind_i64(st, i++, r->in_flight);
	bind_i64(st, i++, r->due_ns);
	/* autocommit: the row is its own transaction, durable when this returns */
	return step_done(s, st, "cannot record the request", err);
}

int store_event_add(struct store *s, int64_t run_id, int64_t config_id, const char *kind, const char *detail,
		    struct ar_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO events(run_id, config_id, wall_time, t_ns, kind, detail) VALUES(?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(s, err, "cannot record an event");
	char now[32];
	clock_wall_iso8601(now, sizeof now);
	bind_i64(st, 1, run_id);
	bind_i64(st, 2, config_id);
	bind_text(st, 3, now);
	sqlite3_bind_int64(st, 4, clock_now());
	bind_text(st, 5, kind);
	bind_text(st, 6, detail);
	int rc = step_done(s, st, "cannot record an event", err);
	sqlite3_finalize(st);
	return rc;
}

/* UPDATE one text/integer column of a row; the SQL names the column. */
static int update_row(struct store *s, const char *sql, const char *text, int64_t num, bool use_num, int64_t id,
		      const char *what, struct ar_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_err(s, err, what);
	if (use_num)
		bind_i64(st, 1, num);
	else
		bind_text(st, 1, text);
	sqlite3_bind_int64(st, 2, id);
	int rc = step_done(s, st, what, err);
	sqlite3_finalize(st);
	return rc;
}

int store_run_set_sweep(struct store *s, int64_t run_id, const char *config_path, const char *config_hash,
			const char *shard, struct ar_err *err)
{
	if (update_row(s, "UPDATE runs SET config_path=? WHERE id=?", config_path, 0, false, run_id,
		       "cannot record the sweep config", err) < 0 ||
	    update_row(s, "UPDATE runs SET config_hash=? WHERE id=?", config_hash, 0, false, run_id,
		       "cannot record the sweep config", err) < 0 ||
	    update_row(s, "UPDATE runs SET shard=? WHERE id=?", shard, 0, false, run_id, "cannot record the shard",
		       err) < 0)
		return -1;
	return 0;
}

int store_config_set_server(struct store *s, int64_t config_id, const char *log_path, int64_t server_pid,
			    struct ar_err *err)
{
	if (update_row(s, "UPDATE configs SET log_path=? WHERE id=?", log_path, 0, false, config_id,
		       "cannot record the server log", err) < 0 ||
	    update_row(s, "UPDATE configs SET server_pid=? WHERE id=?", NULL, server_pid, true, config_id,
		       "cannot record the server pid", err) < 0)
		return -1;
	return 0;
}

int store_config_set_mem(struct store *s, int64_t config_id, const char *mem_json, struct ar_err *err)
{
	return update_row(s, "UPDATE configs SET mem_json=? WHERE id=?", mem_json, 0, false, config_id,
			  "cannot record the memory model", err);
}

int store_mem_samples_add(struct store *s, int64_t config_id, const struct store_mem_sample *v, size_t n,
			  struct ar_err *err)
{
	sqlite3_stmt *st;
	if (n == 0)
		return 0;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO mem_samples(config_id, t_ns, rss_bytes, pss_bytes, gpu_bytes,"
			       " host_available_bytes, kv_usage, procs) VALUES(?,?,?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(s, err, "cannot record memory samples");
	/* a savepoint: one transaction of its own, or nested in the caller's
	 * (the concurrent engine commits a loop turn's rows in one) */
	if (exec(s, "SAVEPOINT mem_samples", err) < 0) {
		sqlite3_finalize(st);
		return -1;
	}
	for (size_t k = 0; k < n; k++) {
		sqlite3_bind_int64(st, 1, config_id);
		sqlite3_bind_int64(st, 2, v[k].t_ns);
		bind_i64(st, 3, v[k].rss_bytes);
		bind_i64(st, 4, v[k].pss_bytes);
		bind_i64(st, 5, v[k].gpu_bytes);
		bind_i64(st, 6, v[k].host_available_bytes);
		bind_real(st, 7, v[k].kv_usage);
		bind_i64(st, 8, v[k].procs);
		if (step_done(s, st, "cannot record a memory sample", err) < 0) {
			exec(s, "ROLLBACK TO mem_samples; RELEASE mem_samples", NULL);
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	return exec(s, "RELEASE mem_samples", err);
}

int store_tx_begin(struct store *s, struct ar_err *err) { return exec(s, "BEGIN", err); }

int store_tx_commit(struct store *s, struct ar_err *err)
{
	if (exec(s, "COMMIT", err) < 0) {
		exec(s, "ROLLBACK", NULL);
		return -1;
	}
	return 0;
}
