#include "storemerge.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "store.h"

struct seen {
	char *key;
	size_t input;
};

static int cmp_seen(const void *a, const void *b)
{
	const struct seen *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : (x->input > y->input) - (x->input < y->input);
}

/* Keys and config hashes of every input; refuses duplicates and mixes. */
static int check_inputs(const char *const *in, size_t n, struct ar_err *err)
{
	struct seen *v = NULL;
	size_t nv = 0, cap = 0;
	char hash[64] = "", hash_from[4096] = "";
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		struct store *s = NULL;
		if (store_open(&s, in[i], STORE_READONLY, err) < 0) {
			ar_err_prefix(err, "input %zu", i + 1);
			goto out;
		}
		if (store_schema_version(s) != STORE_SCHEMA_VERSION) {
			ar_err_set(err, AR_EFORMAT, "store '%s' has schema %d, this agentreplay writes %d", in[i],
				   store_schema_version(s), STORE_SCHEMA_VERSION);
			store_close(s);
			goto out;
		}
		sqlite3_stmt *q;
		if (sqlite3_prepare_v2(store_db(s), "SELECT DISTINCT config_hash FROM runs WHERE config_hash IS NOT NULL", -1,
				       &q, NULL) != SQLITE_OK) {
			ar_err_set(err, AR_EIO, "store '%s': %s", in[i], sqlite3_errmsg(store_db(s)));
			store_close(s);
			goto out;
		}
		while (sqlite3_step(q) == SQLITE_ROW) {
			const char *h = (const char *)sqlite3_column_text(q, 0);
			if (!hash[0]) {
				snprintf(hash, sizeof hash, "%s", h);
				snprintf(hash_from, sizeof hash_from, "%s", in[i]);
			} else if (strcmp(hash, h)) {
				ar_err_set(err, AR_EINVAL,
					   "'%s' holds a sweep of config hash %s and '%s' one of hash %s: they come from "
					   "different config files and would be mixed",
					   hash_from, hash, in[i], h);
				sqlite3_finalize(q);
				store_close(s);
				goto out;
			}
		}
		sqlite3_finalize(q);
		if (sqlite3_prepare_v2(store_db(s),
				       "SELECT key FROM configs WHERE key IS NOT NULL AND status != 'superseded'", -1, &q,
				       NULL) != SQLITE_OK) {
			ar_err_set(err, AR_EIO, "store '%s': %s", in[i], sqlite3_errmsg(store_db(s)));
			store_close(s);
			goto out;
		}
		while (sqlite3_step(q) == SQLITE_ROW) {
			if (nv == cap) {
				cap = cap ? 2 * cap : 64;
				struct seen *p = realloc(v, cap * sizeof *p);
				if (!p) {
					sqlite3_finalize(q);
					store_close(s);
					ar_err_set(err, AR_ENOMEM, "out of memory");
					goto out;
				}
				v = p;
			}
			v[nv].input = i;
			if (!(v[nv].key = strdup((const char *)sqlite3_column_text(q, 0)))) {
				sqlite3_finalize(q);
				store_close(s);
				ar_err_set(err, AR_ENOMEM, "out of memory");
				goto out;
			}
			nv++;
		}
		sqlite3_finalize(q);
		store_close(s);
	}
	qsort(v, nv, sizeof *v, cmp_seen);
	for (size_t i = 0; i + 1 < nv; i++)
		if (!strcmp(v[i].key, v[i + 1].key)) {
			ar_err_set(err, AR_EINVAL,
				   "config '%s' is in both '%s' and '%s'%s: merging would count it twice (shards must not "
				   "overlap)",
				   v[i].key, in[v[i].input], in[v[i + 1].input], v[i].input == v[i + 1].input ? " (twice)" : "");
			goto out;
		}
	rc = 0;
out:
	for (size_t i = 0; i < nv; i++)
		free(v[i].key);
	free(v);
	return rc;
}

static int exec(sqlite3 *db, const char *sql, struct ar_err *err)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		ar_err_set(err, AR_EIO, "merge: %s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int64_t max_id(sqlite3 *db, const char *table)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT coalesce(max(%s),0) FROM main.%s", strcmp(table, "mem_samples") ? "id" : "rowid",
		 table);
	sqlite3_stmt *q;
	int64_t v = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

/* INSERT INTO main.T(cols) SELECT cols-with-offsets FROM src.T */
static int copy_table(sqlite3 *db, const char *table, int64_t off_self, int64_t off_run, int64_t off_cfg,
		      int64_t *count, struct ar_err *err)
{
	char sql[256];
	snprintf(sql, sizeof sql, "PRAGMA main.table_info(%s)", table);
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		return ar_err_set(err, AR_EIO, "merge: %s", sqlite3_errmsg(db));
	struct buf cols = BUF_INIT, sel = BUF_INIT;
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *c = (const char *)sqlite3_column_text(q, 1);
		buf_printf(&cols, "%s\"%s\"", cols.len ? "," : "", c);
		if (sel.len)
			buf_putc(&sel, ',');
		if (!strcmp(c, "id"))
			buf_printf(&sel, "id+%lld", (long long)off_self);
		else if (!strcmp(c, "run_id"))
			buf_printf(&sel, "run_id+%lld", (long long)off_run);
		else if (!strcmp(c, "config_id"))
			buf_printf(&sel, "config_id+%lld", (long long)off_cfg);
		else
			buf_printf(&sel, "\"%s\"", c);
	}
	sqlite3_finalize(q);
	struct buf ins = BUF_INIT;
	buf_printf(&ins, "INSERT INTO main.%s(%s) SELECT %s FROM src.%s ORDER BY rowid", table, cols.data, sel.data, table);
	buf_free(&cols);
	buf_free(&sel);
	int rc = ins.data ? exec(db, ins.data, err) : ar_err_set(err, AR_ENOMEM, "out of memory");
	buf_free(&ins);
	if (rc == 0)
		*count += sqlite3_changes(db);
	return rc;
}

int store_merge(const char *out, const char *const *in, size_t n, struct store_merge_report *rep, struct ar_err *err)
{
	memset(rep, 0, sizeof *rep);
	if (n == 0)
		return ar_err_set(err, AR_EINVAL, "no input stores");
	if (access(out, F_OK) == 0)
		return ar_err_set(err, AR_EINVAL, "'%s' already exists: merge writes a new store (pick another name)", out);
	if (check_inputs(in, n, err) < 0)
		return -1;
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", out);
	unlink(tmp);
	struct store *s = NULL;
	if (store_open(&s, tmp, 0, err) < 0)
		return -1;
	sqlite3 *db = store_db(s);
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *a;
		if (sqlite3_prepare_v2(db, "ATTACH DATABASE ? AS src", -1, &a, NULL) != SQLITE_OK) {
			ar_err_set(err, AR_EIO, "merge: %s", sqlite3_errmsg(db));
			goto rollback;
		}
		sqlite3_bind_text(a, 1, in[i], -1, SQLITE_TRANSIENT);
		int r = sqlite3_step(a);
		sqlite3_finalize(a);
		if (r != SQLITE_DONE) {
			ar_err_set(err, AR_EIO, "merge: cannot attach '%s': %s", in[i], sqlite3_errmsg(db));
			goto out;
		}
		/* one transaction per input; the rename at the end makes the whole merge atomic */
		if (exec(db, "BEGIN IMMEDIATE", err) < 0)
			goto out;
		int64_t off_run = max_id(db, "runs"), off_cfg = max_id(db, "configs"), off_req = max_id(db, "requests"),
			off_ev = max_id(db, "events");
		if (copy_table(db, "runs", off_run, off_run, off_cfg, &rep->runs, err) < 0 ||
		    copy_table(db, "configs", off_cfg, off_run, off_cfg, &rep->configs, err) < 0 ||
		    copy_table(db, "requests", off_req, off_run, off_cfg, &rep->requests, err) < 0 ||
		    copy_table(db, "events", off_ev, off_run, off_cfg, &rep->events, err) < 0 ||
		    copy_table(db, "mem_samples", 0, off_run, off_cfg, &rep->mem_samples, err) < 0) {
			ar_err_prefix(err, "'%s'", in[i]);
			goto rollback;
		}
		if (exec(db, "COMMIT", err) < 0)
			goto rollback;
		if (exec(db, "DETACH DATABASE src", err) < 0)
			goto out;
	}
	store_close(s);
	s = NULL;
	if (rename(tmp, out) < 0) {
		ar_err_set(err, AR_EIO, "cannot rename '%s' to '%s': %s", tmp, out, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
rollback:
	exec(db, "ROLLBACK", NULL);
out:
	store_close(s);
	unlink(tmp);
	char side[4300];
	snprintf(side, sizeof side, "%s-wal", tmp);
	unlink(side);
	snprintf(side, sizeof side, "%s-shm", tmp);
	unlink(side);
	return rc;
}
