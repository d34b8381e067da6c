/* Unit tests: the results store (src/store.c): migrations from an old
 * schema keep the rows, a newer schema and foreign files are refused, every
 * write lands in the columns a report reads back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static char dir[] = "/tmp/ar-test-store-XXXXXX";

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static void exec_raw(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("sql: %s", msg);
	sqlite3_close(db);
}

static int64_t query_int(struct store *s, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -999 : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static char *query_text(struct store *s, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const unsigned char *t = sqlite3_column_text(st, 0);
	char *v = t ? strdup((const char *)t) : NULL;
	sqlite3_finalize(st);
	return v;
}

static struct store_request row_template(void)
{
	struct store_request r = {0};
	r.session = "s1";
	r.turn = 0;
	r.repeat = 0;
	r.cache = "warm";
	r.context_tokens_est = 1000;
	r.requested_tokens = 32;
	r.prompt_tokens = 1010;
	r.cached_tokens = -1;
	r.cached_source = "none";
	r.completion_tokens = 32;
	r.completion_source = "usage";
	r.connect_ms = r.ttfb_ms = r.ttft_ms = 12.5;
	r.decode_tps = 50;
	r.prefill_tps = NAN;
	r.itl_p50_ms = r.itl_p90_ms = r.itl_p99_ms = 20;
	r.e2e_ms = 700;
	r.mem_peak_bytes = 1 << 20;
	r.mem_end_bytes = -1;
	r.http_status = 200;
	r.outcome = "ok";
	r.gpu_peak_bytes = -1;
	r.host_drop_bytes = 4096;
	r.kv_usage = 0.25;
	r.sent_ns = 123456789;
	r.in_flight = 3;
	r.due_ns = 123000000;
	return r;
}

static void test_fresh_store_roundtrip(void **state)
{
	char p[256];
	path_in(p, sizeof p, "fresh.db");
	struct store *s;
	struct ar_err err;
	assert_int_equal(store_open(&s, p, 0, &err), 0);
	assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
	int64_t run, cfg;
	assert_int_equal(store_run_begin(s, "agentreplay sweep x.yaml", "{}", &run, &err), 0);
	assert_int_equal(store_run_set_sweep(s, run, "x.yaml", "abc123", "2/4", &err), 0);
	struct store_config c = {.name = "n", .backend = "sim", .simulated = true, .key = "sim|m=a"};
	assert_int_equal(store_config_add(s, run, &c, &cfg, &err), 0);
	assert_int_equal(store_config_set_server(s, cfg, "/tmp/log", 4242, &err), 0);
	assert_int_equal(store_config_set_mem(s, cfg, "{\"source\":\"rss\"}", &err), 0);
	struct store_request r = row_template();
	assert_int_equal(store_request_add(s, cfg, &r, &err), 0);
	struct store_mem_sample ms[3] = {{1, 100, -1, -1, 5000, NAN, 2}, {2, 200, 150, -1, 4900, 0.5, 2}, {3, 300, 250, 7, 4800, 0.75, 3}};
	assert_int_equal(store_mem_samples_add(s, cfg, ms, 3, &err), 0);

	char *shard = query_text(s, "SELECT shard FROM runs");
	assert_string_equal(shard, "2/4");
	free(shard);
	char *key = query_text(s, "SELECT key FROM configs");
	assert_string_equal(key, "sim|m=a");
	free(key);
	assert_int_equal(query_int(s, "SELECT server_pid FROM configs"), 4242);
	assert_int_equal(query_int(s, "SELECT in_flight FROM requests"), 3);
	assert_int_equal(query_int(s, "SELECT sent_ns FROM requests"), 123456789);
	assert_int_equal(query_int(s, "SELECT due_ns FROM requests"), 123000000);
	assert_int_equal(query_int(s, "SELECT host_drop_bytes FROM requests"), 4096);
	/* unknown values are NULL, not -1 or NaN */
	assert_int_equal(query_int(s, "SELECT gpu_peak_bytes FROM requests"), -999);
	assert_int_equal(query_int(s, "SELECT mem_end_bytes FROM requests"), -999);
	assert_int_equal(query_int(s, "SELECT count(*) FROM requests WHERE prefill_tps IS NULL"), 1);
	assert_int_equal(query_int(s, "SELECT count(*) FROM mem_samples"), 3);
	assert_int_equal(query_int(s, "SELECT count(*) FROM mem_samples WHERE kv_usage IS NULL"), 1);
	assert_int_equal(query_int(s, "SELECT sum(procs) FROM mem_samples"), 7);
	store_close(s);

	/* read-only reopen sees the same rows */
	assert_int_equal(store_open(&s, p, STORE_READONLY, &err), 0);
	assert_int_equal(query_int(s, "SELECT count(*) FROM requests"), 1);
	store_close(s);
}

/* A store written by schema 1 (the first release) keeps its rows and gains
 * the new columns empty. */
static void test_migrates_schema_1(void **state)
{
	char p[256];
	path_in(p, sizeof p, "v1.db");
	exec_raw(p, "CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,"
		    " status TEXT NOT NULL DEFAULT 'running', tool_version TEXT NOT NULL, command_line TEXT, host_json TEXT);"
		    "CREATE TABLE configs (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),"
		    " name TEXT NOT NULL, backend TEXT NOT NULL, url TEXT, model TEXT, simulated INTEGER NOT NULL DEFAULT 0,"
		    " params_json TEXT, trace_json TEXT, status TEXT NOT NULL DEFAULT 'running', failure_json TEXT);"
		    "CREATE TABLE requests (id INTEGER PRIMARY KEY, config_id INTEGER NOT NULL REFERENCES configs(id),"
		    " session TEXT NOT NULL, turn INTEGER NOT NULL, repeat INTEGER NOT NULL, cache TEXT NOT NULL, wall_time TEXT,"
		    " context_tokens_est INTEGER, requested_tokens INTEGER, prompt_tokens INTEGER, cached_tokens INTEGER,"
		    " cached_source TEXT, completion_tokens INTEGER, completion_source TEXT, connect_ms REAL, ttfb_ms REAL,"
		    " ttft_ms REAL, decode_tps REAL, prefill_tps REAL, itl_p50_ms REAL, itl_p90_ms REAL, itl_p99_ms REAL,"
		    " e2e_ms REAL, mem_peak_bytes INTEGER, mem_end_bytes INTEGER, http_status INTEGER, outcome TEXT NOT NULL,"
		    " evidence TEXT, flags TEXT, server_json TEXT);"
		    "CREATE INDEX requests_config ON requests(config_id, session, repeat, turn);"
		    "CREATE TABLE events (id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id),"
		    " config_id INTEGER REFERENCES configs(id), wall_time TEXT NOT NULL, t_ns INTEGER NOT NULL,"
		    " kind TEXT NOT NULL, detail TEXT);"
		    "CREATE TABLE mem_samples (config_id INTEGER NOT NULL REFERENCES configs(id), t_ns INTEGER NOT NULL,"
		    " rss_bytes INTEGER, pss_bytes INTEGER, gpu_bytes INTEGER, host_available_bytes INTEGER, kv_usage REAL);"
		    "INSERT INTO runs(started_at, tool_version) VALUES('2026-01-01T00:00:00Z', '0.1.0');"
		    "INSERT INTO configs(run_id, name, backend) VALUES(1, 'old', 'sim');"
		    "INSERT INTO requests(config_id, session, turn, repeat, cache, ttft_ms, outcome)"
		    " VALUES(1, 's', 0, 0, 'warm', 42.0, 'ok');"
		    "PRAGMA user_version = 1;");
	struct store *s;
	struct ar_err err;
	/* read-only cannot upgrade: it says so */
	assert_int_equal(store_open(&s, p, STORE_READONLY, &err), -1);
	assert_non_null(strstr(err.msg, "old schema"));
	assert_int_equal(store_open(&s, p, 0, &err), 0);
	assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
	assert_int_equal(query_int(s, "SELECT count(*) FROM requests WHERE ttft_ms = 42.0"), 1);
	assert_int_equal(query_int(s, "SELECT in_flight FROM requests"), -999);
	assert_int_equal(query_int(s, "SELECT due_ns FROM requests"), -999);
	struct store_request r = row_template();
	assert_int_equal(store_request_add(s, 1, &r, &err), 0);
	assert_int_equal(query_int(s, "SELECT count(*) FROM requests"), 2);
	store_close(s);
}

static void test_refuses_newer_and_foreign(void **state)
{
	char p[256], q[256], t[256];
	struct store *s;
	struct ar_err err;
	path_in(p, sizeof p, "newer.db");
	assert_int_equal(store_open(&s, p, 0, &err), 0);
	store_close(s);
	exec_raw(p, "PRAGMA user_version = 99;");
	assert_int_equal(store_open(&s, p, 0, &err), -1);
	assert_int_equal(err.code, AR_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "schema version 99"));
	assert_int_equal(store_open(&s, p, STORE_READONLY, &err), -1);
	assert_non_null(strstr(err.msg, "newer"));

	path_in(q, sizeof q, "other.db");
	exec_raw(q, "CREATE TABLE t(x);");
	assert_int_equal(store_open(&s, q, 0, &err), -1);
	assert_non_null(strstr(err.msg, "not an agentreplay store"));

	path_in(t, sizeof t, "text.db");
	FILE *f = fopen(t, "w");
	assert_non_null(f);
	for (int i = 0; i < 200; i++)
		fputs("this is not a database at all\n", f);
	fclose(f);
	assert_int_equal(store_open(&s, t, 0, &err), -1);
	assert_non_null(strstr(err.msg, "not an agentreplay store"));

	assert_int_equal(store_open(&s, dir, 0, &err), -1);
	assert_non_null(strstr(err.msg, "directory"));
	char missing[300];
	snprintf(missing, sizeof missing, "%s/none/x.db", dir);
	assert_int_equal(store_open(&s, missing, STORE_READONLY, &err), -1);
	assert_non_null(strstr(err.msg, "No such file"));
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_store_roundtrip),
		cmocka_unit_test(test_migrates_schema_1),
		cmocka_unit_test(test_refuses_newer_and_foreign),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
