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

static int load_requests(sqlite3 *db, struct rpt_model *m, const struct rpt_filter *f, struct ar_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	size_t cap = 0;
	const int i_cfg = rpt_col_find("config_id"), i_sess = rpt_col_find("session"), i_turn = rpt_col_find("turn"),
		  i_rep = rpt_col_find("repeat"), i_cache = rpt_col_find("cache"),
		  i_ctx = rpt_col_find("context_tokens_est"), i_prompt = rpt_col_find("prompt_tokens"),
		  i_ttft = rpt_col_find("ttft_ms"), i_dec = rpt_col_find("decode_tps"),
		  i_pre = rpt_col_find("prefill_tps"), i_mem = rpt_col_find("mem_peak_bytes"),
		  i_gpu = rpt_col_find("gpu_peak_bytes"), i_host = rpt_col_find("host_drop_bytes"),
		  i_inf = rpt_col_find("in_flight"), i_out = rpt_col_find("outcome"), i_ev = rpt_col_find("evidence");
	if (rpt_query_requests(db, &st, m->opts->run_id, err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!rpt_filter_pass(f, st))
			continue;
		int64_t cid = sqlite3_column_int64(st, i_cfg);
		size_t ci = cfg_index(m, cid);
		if (ci >= m->ncfg || m->cfg[ci].id != cid)
			continue; /* cannot happen: the join found it */
		if (m->nreq == cap) {
			cap = cap ? cap * 2 : 256;
			struct rpt_req *nr = realloc(m->req, cap * sizeof *nr);
			if (!nr) {
				rc = ar_err_set(err, AR_ENOMEM, "out of memory (%zu requests)", m->nreq);
				goto out;
			}
			m->req = nr;
		}
		struct rpt_req *r = &m->req[m->nreq];
		memset(r, 0, sizeof *r);
		r->cfg = (uint32_t)ci;
		const char *sess = (const char *)sqlite3_column_text(st, i_sess);
		if (!sess)
			sess = "";
		if (!m->nsess || strcmp(m->sess[m->nsess - 1], sess)) {
			char **ns = realloc(m->sess, (m->nsess + 1) * sizeof *ns);
			if (!ns || !(ns[m->nsess] = strdup(sess))) {
				if (ns)
					m->sess = ns;
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
				goto out;
			}
			m->sess = ns;
			m->nsess++;
		}
		r->sess = (uint32_t)(m->nsess - 1);
		r->turn = col_i64(st, i_turn);
		r->repeat = col_i64(st, i_rep);
		r->depth = col_i64(st, i_ctx);
		if (r->depth < 0)
			r->depth = col_i64(st, i_prompt);
		r->ttft = col_real(st, i_ttft);
		r->decode = col_real(st, i_dec);
		r->prefill = col_real(st, i_pre);
		struct rpt_cfg *c = &m->cfg[ci];
		int64_t mem = col_i64(st, i_mem);
		if (c->mem.valid && !strcmp(c->mem.source, "gpu") && col_i64(st, i_gpu) >= 0)
			mem = col_i64(st, i_gpu);
		else if (c->mem.valid && !strcmp(c->mem.source, "host_drop") && col_i64(st, i_host) >= 0)
			mem = col_i64(st, i_host);
		r->mem = mem;
		r->in_flight = col_i64(st, i_inf);
		if (r->in_flight > 1)
			m->concurrent = m->cfg[ci].concurrent = true;
		const char *cache = (const char *)sqlite3_column_text(st, i_cache);
		r->cache = cache && !strcmp(cache, "warm") ? RQ_WARM : cache && !strcmp(cache, "cold") ? RQ_COLD : RQ_OTHER;
		const char *outcome = (const char *)sqlite3_column_text(st, i_out);
		if (!outcome)
			outcome = "";
		if (!(r->outcome = intern(m, outcome))) {
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
		r->done = !strcmp(outcome, "ok") || !strcmp(outcome, "slo");
		r->failed = strcmp(outcome, "ok") != 0;
		if (!c->n)
			c->first = m->nreq;
		c->n++;
		/* no failure_json (an interrupted run, an older writer): the first
		 * non-ok request in replay order is the failure point */
		if (r->failed && !c->fail.found) {
			c->fail.found = true;
			c->fail.session = strdup(sess);
			c->fail.cls = strdup(outcome);
			const char *ev = (const char *)sqlite3_column_text(st, i_ev);
			c->fail.evidence = ev ? strdup(ev) : NULL;
			c->fail.turn = r->turn;
			c->fail.depth = r->depth;
			c->fail.mem = r->mem;
		}
		m->nreq++;
	}
	if (rc != SQLITE_DONE) {
		rc = ar_err_set(err, AR_EFORMAT, "cannot read the store's requests: %s", sqlite3_errmsg(db));
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

/* better candidate for tier target T: nearer, then smaller depth, then earlier */
static bool tier_better(const struct rpt_req *r, const struct rpt_tierturn *cur, int64_t target)
{
	if (cur->turn < 0)
		return true;
	int64_t dr = llabs(r->depth - target), dc = llabs(cur->depth - target);
	if (dr != dc)
		return dr < dc;
	if (r->depth != cur->depth)
		return r->depth < cur->depth;
	if (r->sess != cur->sess)
		return r->sess < cur->sess;
	return r->turn < cur->turn;
}

static void derive(struct rpt_model *m)
{
	for (size_t ci = 0; ci < m->ncfg; ci++) {
		struct rpt_cfg *c = &m->cfg[ci];
		struct rpt_req *rq = m->req + c->first;
		for (size_t i = 0; i < c->n; i++) {
			struct rpt_req *r = &rq[i];
			if (r->mem > c->peak_mem)
				c->peak_mem = r->mem;
			if (r->done && r->depth > c->max_done_depth)
				c->max_done_depth = r->depth;
			if (r->repeat + 1 > c->repeats)
				c->repeats = r->repeat + 1;
			if (r->cache == RQ_OTHER || r->depth < 0 || r->turn < 0)
				continue;
			for (int t = 0; t < RPT_NTIERS; t++) {
				struct rpt_tierturn *tt = &c->tier[r->cache][t];
				int64_t target = rpt_tier_tokens[t];
				if (t > 0 && (r->depth * 4 < target * 3 || r->depth * 4 > target * 5))
					continue;
				if (tier_better(r, tt, target)) {
					tt->turn = r->turn;
					tt->sess = r->sess;
					tt->depth = r->depth;
				}
			}
		}
		for (size_t i = 0; i < c->n; i++) {
			struct rpt_req *r = &rq[i];
			if (r->cache == RQ_OTHER)
				continue;
			for (int t = 0; t < RPT_NTIERS; t++) {
				const struct rpt_tierturn *tt = &c->tier[r->cache][t];
				if (tt->turn >= 0 && tt->turn == r->turn && tt->sess == r->sess)
					r->tiers |= (uint8_t)(1u << t);
			}
		}
	}
}

int report_model_load(sqlite3 *db, const struct report_opts *o, struct rpt_model *m, struct ar_err *err)
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
	    load_requests(db, m, f, err) < 0)
		goto out;
	derive(m);
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
