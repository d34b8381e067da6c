/* report_model: loads configs, runs and the compact request rows; derives
 * tiers, failure points and memory figures (definitions in report.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonh.h"
#include "report_int.h"

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return strdup(t ? (const char *)t : "");
}

static int64_t col_i64(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

static double col_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static int64_t json_i64(const cJSON *o, const char *k)
{
	int64_t v;
	return jsonh_int(cJSON_GetObjectItemCaseSensitive(o, k), &v) ? v : -1;
}

static double json_num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

static char *json_strdup(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) && v->valuestring ? strdup(v->valuestring) : NULL;
}

/* failure_json as cmd_run writes it; anything else is ignored */
static void parse_failure(const char *s, struct rpt_failure *f)
{
	cJSON *j = s ? cJSON_Parse(s) : NULL;
	if (cJSON_IsObject(j)) {
		const cJSON *cls = cJSON_GetObjectItemCaseSensitive(j, "class");
		if (cJSON_IsString(cls) && cls->valuestring && *cls->valuestring) {
			f->found = true;
			f->cls = strdup(cls->valuestring);
			f->session = json_strdup(j, "session");
			f->evidence = json_strdup(j, "evidence");
			f->turn = json_i64(j, "turn");
			f->depth = json_i64(j, "context_tokens");
			f->mem = json_i64(j, "mem_bytes");
		}
	}
	cJSON_Delete(j);
}

/* mem_json (the memory model): used when it parses with a known source */
static void parse_mem(const char *s, struct rpt_memmodel *mm)
{
	mm->valid = false;
	cJSON *j = s ? cJSON_Parse(s) : NULL;
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "source");
	if (cJSON_IsObject(j) && cJSON_IsString(src) && src->valuestring &&
	    (!strcmp(src->valuestring, "rss") || !strcmp(src->valuestring, "host_drop") ||
	     !strcmp(src->valuestring, "gpu"))) {
		mm->valid = true;
		snprintf(mm->source, sizeof mm->source, "%s", src->valuestring);
		mm->baseline = json_i64(j, "baseline_bytes");
		mm->budget = json_i64(j, "budget_bytes");
		mm->oom_tokens = json_i64(j, "projected_oom_tokens");
		mm->oom_turn = json_i64(j, "projected_oom_turn");
		mm->points = json_i64(j, "points");
		mm->bytes_per_token = json_num(j, "bytes_per_token");
		mm->r2 = json_num(j, "r2");
		if (mm->budget <= 0)
			mm->budget = -1;
	}
	cJSON_Delete(j);
}

static int load_runs(sqlite3 *db, struct rpt_model *m, int64_t run_id, struct ar_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(db,
			       "SELECT id, started_at, finished_at, status, tool_version, command_line FROM runs"
			       " WHERE (?1 < 0 OR id = ?1) ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK)
		return ar_err_set(err, AR_EFORMAT, "cannot query the store's runs: %s", sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, run_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct rpt_run *nr = realloc(m->run, (m->nrun + 1) * sizeof *nr);
		if (!nr) {
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
		m->run = nr;
		struct rpt_run *r = &m->run[m->nrun++];
		r->id = sqlite3_column_int64(st, 0);
		r->started = col_dup(st, 1);
		r->finished = col_dup(st, 2);
		r->status = col_dup(st, 3);
		r->tool_version = col_dup(st, 4);
		r->command_line = col_dup(st, 5);
		if (!r->started || !r->finished || !r->status || !r->tool_version || !r->command_line) {
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		rc = ar_err_set(err, AR_EFORMAT, "cannot read the store's runs: %s", sqlite3_errmsg(db));
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

static int load_configs(sqlite3 *db, struct rpt_model *m, int64_t run_id, struct ar_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(db,
			       "SELECT id, run_id, name, backend, model, url, simulated, status, failure_json, mem_json"
			       " FROM configs WHERE (?1 < 0 OR run_id = ?1) ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK)
		return ar_err_set(err, AR_EFORMAT, "cannot query the store's configs: %s", sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, run_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct rpt_cfg *nc = realloc(m->cfg, (m->ncfg + 1) * sizeof *nc);
		if (!nc) {
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
		m->cfg = nc;
		struct rpt_cfg *c = &m->cfg[m->ncfg++];
		memset(c, 0, sizeof *c);
		c->id = sqlite3_column_int64(st, 0);
		c->run_id = sqlite3_column_int64(st, 1);
		c->name = col_dup(st, 2);
		c->backend = col_dup(st, 3);
		c->model = col_dup(st, 4);
		c->url = col_dup(st, 5);
		c->simulated = sqlite3_column_int(st, 6) != 0;
		c->status = col_dup(st, 7);
		c->fail.turn = c->fail.depth = c->fail.mem = -1;
		parse_failure((const char *)sqlite3_column_text(st, 8), &c->fail);
		parse_mem((const char *)sqlite3_column_text(st, 9), &c->mem);
		c->peak_mem = c->max_done_depth = -1;
		for (int k = 0; k < 2; k++)
			for (int t = 0; t < RPT_NTIERS; t++)
				c->tier[k][t].turn = -1;
		if (!c->name || !c->backend || !c->model || !c->url || !c->status) {
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		rc = ar_err_set(err, AR_EFORMAT, "cannot read the store's configs: %s", sqlite3_errmsg(db));
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

static const char *intern(struct rpt_model *m, const char *s)
{
	for (size_t i = 0; i < m->npool; i++)
		if (!strcmp(m->pool[i], s))
			return m->pool[i];
	if (m->npool >= 64)
		return "other"; /* outcomes are a short list; a store full of junk stays bounded */
	char **np = realloc(m->pool, (m->npool + 1) * sizeof *np);
	if (!np)
		return NULL;
	m->pool = np;
	if (!(m->pool[m->npool] = strdup(s)))
		return NULL;
	return m->pool[m->npool++];
}

/* better candidate for tier target T: nearer, then smaller depth, then earlier */
static bool tier_better(int64_t depth, uint32_t sess, int64_t turn, const struct rpt_tierturn *cur, int64_t target)
{
	if (cur->turn < 0)
		return true;
	int64_t dr = llabs(depth - target), dc = llabs(cur->depth - target);
	if (dr != dc)
		return dr < dc;
	if (depth != cur->depth)
		return depth < cur->depth;
	if (sess != cur->sess)
		return sess < cur->sess;
	return turn < cur->turn;
}

void rpt_tier_consider(struct rpt_cfg *c, int cache, uint32_t sess, int64_t turn, int64_t depth)
{
	if ((cache != RQ_COLD && cache != RQ_WARM) || depth < 0 || turn < 0)
		return;
	for (int t = 0; t < RPT_NTIERS; t++) {
		struct rpt_tierturn *tt = &c->tier[cache][t];
		int64_t target = rpt_tier_tokens[t];
		if (t > 0 && (depth * 4 < target * 3 || depth * 4 > target * 5))
			continue;
		if (tier_better(depth, sess, turn, tt, target)) {
			tt->turn = turn;
			tt->sess = sess;
			tt->depth = depth;
		}
	}
}

uint8_t rpt_tier_bits(const struct rpt_cfg *c, int cache, uint32_t sess, int64_t turn)
{
	uint8_t bits = 0;
	if (cache != RQ_COLD && cache != RQ_WARM)
		return 0;
	for (int t = 0; t < RPT_NTIERS; t++) {
		const struct rpt_tierturn *tt = &c->tier[cache][t];
		if (tt->turn >= 0 && tt->turn == turn && tt->sess == sess)
			bits |= (uint8_t)(1u << t);
	}
	return bits;
}

/* ---- the row iterator -------------------------------------------------- */

int rpt_iter_open(struct rpt_iter *it, sqlite3 *db, struct rpt_model *m, bool tiers_known, struct ar_err *err)
{
	memset(it, 0, sizeof *it);
	it->m = m;
	it->tiers_known = tiers_known;
	static const char *const names[] = {"config_id", "session", "turn", "repeat", "cache", "context_tokens_est",
					    "prompt_tokens"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		it->col[i] = rpt_col_find(names[i]);
	if (rpt_filter_parse(m->opts->filter, &it->f, err) < 0 ||
	    rpt_query_requests(db, &it->st, m->opts->run_id, err) < 0) {
		rpt_iter_close(it);
		return -1;
	}
	it->db = db;
	return 0;
}

void rpt_iter_close(struct rpt_iter *it)
{
	sqlite3_finalize(it->st);
	rpt_filter_free(it->f);
	free(it->prev);
	memset(it, 0, sizeof *it);
}

static size_t cfg_index(const struct rpt_model *m, int64_t id)
{
	size_t lo = 0, hi = m->ncfg;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->cfg[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int rpt_iter_next(struct rpt_iter *it, struct ar_err *err)
{
	const int i_cfg = it->col[0], i_sess = it->col[1], i_turn = it->col[2], i_rep = it->col[3],
		  i_cache = it->col[4], i_ctx = it->col[5], i_prompt = it->col[6];
	int s;
	while ((s = sqlite3_step(it->st)) == SQLITE_ROW) {
		sqlite3_stmt *st = it->st;
		if (!rpt_filter_pass(it->f, st))
			continue;
		int64_t cid = sqlite3_column_int64(st, i_cfg);
		size_t ci = cfg_index(it->m, cid);
		if (ci >= it->m->ncfg || it->m->cfg[ci].id != cid)
			continue; /* cannot happen: the join found it */
		struct rpt_req *r = &it->r;
		memset(r, 0, sizeof *r);
		r->cfg = (uint32_t)ci;
		/* sessions are numbered by runs of equal ids over the rows that
		 * pass the filter's column conditions: every pass numbers alike */
		const char *sess = (const char *)sqlite3_column_text(st, i_sess);
		if (!sess)
			sess = "";
		it->new_sess = !it->prev || strcmp(it->prev, sess) != 0;
		if (it->new_sess) {
			char *p = strdup(sess);
			if (!p)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			free(it->prev);
			it->prev = p;
			it->nsess++;
		}
		r->sess = (uint32_t)(it->nsess - 1);
		r->turn = col_i64(st, i_turn);
		r->repeat = col_i64(st, i_rep);
		r->depth = col_i64(st, i_ctx);
		if (r->depth < 0)
			r->depth = col_i64(st, i_prompt);
		const char *cache = (const char *)sqlite3_column_text(st, i_cache);
		r->cache = cache && !strcmp(cache, "warm") ? RQ_WARM : cache && !strcmp(cache, "cold") ? RQ_COLD : RQ_OTHER;
		if (!it->tiers_known)
			return 1;
		r->tiers = rpt_tier_bits(&it->m->cfg[ci], r->cache, r->sess, r->turn);
		if (!rpt_filter_pass_tier(it->f, r->tiers))
			continue;
		return 1;
	}
	if (s != SQLITE_DONE)
		return ar_err_set(err, AR_EFORMAT, "cannot read the store's requests: %s", sqlite3_errmsg(it->db));
	return 0;
}

/* pass 1: the tier turns of every config, over the rows that pass the
 * filter's column conditions (a tier condition needs them first) */
static int load_tiers(sqlite3 *db, struct rpt_model *m, struct ar_err *err)
{
	struct rpt_iter it;
	int rc;
	if (rpt_iter_open(&it, db, m, false, err) < 0)
		return -1;
	while ((rc = rpt_iter_next(&it, err)) == 1) {
		if (it.new_sess) {
			char **ns = realloc(m->sess, (m->nsess + 1) * sizeof *ns);
			if (!ns || !(ns[m->nsess] = strdup(it.prev))) {
				if (ns)
					m->sess = ns;
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
				break;
			}
			m->sess = ns;
			m->nsess++;
		}
		rpt_tier_consider(&m->cfg[it.r.cfg], it.r.cache, it.r.sess, it.r.turn, it.r.depth);
	}
	rpt_iter_close(&it);
	return rc < 0 ? -1 : 0;
}

/* pass 2: per config figures over the rows that pass the whole filter, and
 * (keep_rows) the compact rows the summaries and charts need */
static int load_requests(sqlite3 *db, struct rpt_model *m, bool keep_rows, struct ar_err *err)
{
	struct rpt_iter it;
	int rc;
	size_t cap = 0;
	const int i_ttft = rpt_col_find("ttft_ms"), i_dec = rpt_col_find("decode_tps"),
		  i_pre = rpt_col_find("prefill_tps"), i_mem = rpt_col_find("mem_peak_bytes"),
		  i_gpu = rpt_col_find("gpu_peak_bytes"), i_host = rpt_col_find("host_drop_bytes"),
		  i_inf = rpt_col_find("in_flight"), i_out = rpt_col_find("outcome"), i_ev = rpt_col_find("evidence"),
		  i_pt = rpt_col_find("prompt_tokens"), i_ct = rpt_col_find("cached_tokens");
	if (rpt_iter_open(&it, db, m, true, err) < 0)
		return -1;
	while ((rc = rpt_iter_next(&it, err)) == 1) {
		sqlite3_stmt *st = it.st;
		struct rpt_req row = it.r, *r = &row;
		struct rpt_cfg *c = &m->cfg[r->cfg];
		r->ttft = col_real(st, i_ttft);
		r->decode = col_real(st, i_dec);
		r->prefill = col_real(st, i_pre);
		int64_t mem = col_i64(st, i_mem);
		if (c->mem.valid && !strcmp(c->mem.source, "gpu") && col_i64(st, i_gpu) >= 0)
			mem = col_i64(st, i_gpu);
		else if (c->mem.valid && !strcmp(c->mem.source, "host_drop") && col_i64(st, i_host) >= 0)
			mem = col_i64(st, i_host);
		r->mem = mem;
		r->in_flight = col_i64(st, i_inf);
		r->prompt = col_i64(st, i_pt);
		r->cached = col_i64(st, i_ct);
		if (r->in_flight > 1)
			m->concurrent = c->concurrent = true;
		const char *outcome = (const char *)sqlite3_column_text(st, i_out);
		if (!outcome)
			outcome = "";
		if (!(r->outcome = intern(m, outcome))) {
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			break;
		}
		r->done = !strcmp(outcome, "ok") || !strcmp(outcome, "slo");
		r->failed = strcmp(outcome, "ok") != 0;
		if (r->mem > c->peak_mem)
			c->peak_mem = r->mem;
		if (r->done && r->depth > c->max_done_depth)
			c->max_done_depth = r->depth;
		if (r->repeat + 1 > c->repeats)
			c->repeats = r->repeat + 1;
		/* no failure_json (an interrupted run, an older writer): the first
		 * non-ok request in replay order is the failure point */
		if (r->failed && !c->fail.found) {
			const char *ev = (const char *)sqlite3_column_text(st, i_ev);
			c->fail.found = true;
			c->fail.session = strdup(m->sess[r->sess]);
			c->fail.cls = strdup(outcome);
			c->fail.evidence = ev ? strdup(ev) : NULL;
			c->fail.turn = r->turn;
			c->fail.depth = r->depth;
			c->fail.mem = r->mem;
			if (!c->fail.session || !c->fail.cls || (ev && !c->fail.evidence)) {
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
				break;
			}
		}
		if (!c->n)
			c->first = m->nreq;
		c->n++;
		m->nreq++;
		if (!keep_rows)
			continue;
		if (m->nreq > cap) {
			cap = cap ? cap * 2 : 256;
			struct rpt_req *nr = realloc(m->req, cap * sizeof *nr);
			if (!nr) {
				rc = ar_err_set(err, AR_ENOMEM, "out of memory (%zu requests)", m->nreq);
				break;
			}
			m->req = nr;
		}
		m->req[m->nreq - 1] = row;
	}
	rpt_iter_close(&it);
	return rc < 0 ? -1 : 0;
}

int report_model_load(sqlite3 *db, const struct report_opts *o, bool keep_rows, struct rpt_model *m, struct ar_err *err)
{
	struct rpt_filter *f = NULL;
	memset(m, 0, sizeof *m);
	m->opts = o;
	if (rpt_filter_parse(o->filter, &f, err) < 0)
		return -1;
	int rc = -1;
	if (o->run_id >= 0) {
		sqlite3_stmt *st = NULL;
		int found = 0;
		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM runs WHERE id = ?1", -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, o->run_id);
			found = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
		}
		sqlite3_finalize(st);
		if (!found) {
			ar_err_set(err, AR_EINVAL, "no run %lld in store '%s'", (long long)o->run_id,
				   o->source ? o->source : "");
			goto out;
		}
	}
	if (load_runs(db, m, o->run_id, err) < 0 || load_configs(db, m, o->run_id, err) < 0 ||
	    load_tiers(db, m, err) < 0 || load_requests(db, m, keep_rows, err) < 0)
		goto out;
	m->rows = keep_rows;
	for (size_t i = 0; i < m->ncfg; i++) {
		m->cfg[i].hidden = f && m->cfg[i].n == 0;
		m->nshown += !m->cfg[i].hidden;
	}
	rc = 0;
out:
	rpt_filter_free(f);
	return rc;
}

void report_model_free(struct rpt_model *m)
{
	for (size_t i = 0; i < m->nrun; i++) {
		struct rpt_run *r = &m->run[i];
		free(r->started);
		free(r->finished);
		free(r->status);
		free(r->tool_version);
		free(r->command_line);
	}
	free(m->run);
	for (size_t i = 0; i < m->ncfg; i++) {
		struct rpt_cfg *c = &m->cfg[i];
		free(c->name);
		free(c->backend);
		free(c->model);
		free(c->url);
		free(c->status);
		free(c->fail.session);
		free(c->fail.cls);
		free(c->fail.evidence);
	}
	free(m->cfg);
	free(m->req);
	for (size_t i = 0; i < m->nsess; i++)
		free(m->sess[i]);
	free(m->sess);
	for (size_t i = 0; i < m->npool; i++)
		free(m->pool[i]);
	free(m->pool);
	memset(m, 0, sizeof *m);
}
