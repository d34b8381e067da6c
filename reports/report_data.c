/* report_data: the request query, the filter, and the model the formats render. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonh.h"
#include "report_int.h"

const char *const rpt_tier_name[RPT_NTIERS] = {"baseline", "32k", "64k", "128k"};
const int64_t rpt_tier_tokens[RPT_NTIERS] = {0, 32768, 65536, 131072};

/* The stable columns of csv/json (README.md, Reports). Append; never rename. */
const struct rpt_col rpt_cols[] = {
	{"run_id", "c.run_id", RT_INT},
	{"config_id", "c.id", RT_INT},
	{"config", "c.name", RT_TEXT},
	{"backend", "c.backend", RT_TEXT},
	{"model", "c.model", RT_TEXT},
	{"simulated", "c.simulated", RT_BOOL},
	{"request_id", "r.id", RT_INT},
	{"session", "r.session", RT_TEXT},
	{"turn", "r.turn", RT_INT},
	{"repeat", "r.repeat", RT_INT},
	{"cache", "r.cache", RT_TEXT},
	{"tier", "NULL", RT_TIER},
	{"wall_time", "r.wall_time", RT_TEXT},
	{"context_tokens_est", "r.context_tokens_est", RT_INT},
	{"requested_tokens", "r.requested_tokens", RT_INT},
	{"prompt_tokens", "r.prompt_tokens", RT_INT},
	{"cached_tokens", "r.cached_tokens", RT_INT},
	{"cached_source", "r.cached_source", RT_TEXT},
	{"completion_tokens", "r.completion_tokens", RT_INT},
	{"completion_source", "r.completion_source", RT_TEXT},
	{"connect_ms", "r.connect_ms", RT_REAL},
	{"ttfb_ms", "r.ttfb_ms", RT_REAL},
	{"ttft_ms", "r.ttft_ms", RT_REAL},
	{"decode_tps", "r.decode_tps", RT_REAL},
	{"prefill_tps", "r.prefill_tps", RT_REAL},
	{"itl_p50_ms", "r.itl_p50_ms", RT_REAL},
	{"itl_p90_ms", "r.itl_p90_ms", RT_REAL},
	{"itl_p99_ms", "r.itl_p99_ms", RT_REAL},
	{"e2e_ms", "r.e2e_ms", RT_REAL},
	{"mem_peak_bytes", "r.mem_peak_bytes", RT_INT},
	{"mem_end_bytes", "r.mem_end_bytes", RT_INT},
	{"gpu_peak_bytes", "r.gpu_peak_bytes", RT_INT},
	{"host_drop_bytes", "r.host_drop_bytes", RT_INT},
	{"kv_usage", "r.kv_usage", RT_REAL},
	{"sent_ns", "r.sent_ns", RT_INT},
	{"in_flight", "r.in_flight", RT_INT},
	{"due_ns", "r.due_ns", RT_INT},
	{"http_status", "r.http_status", RT_INT},
	{"outcome", "r.outcome", RT_TEXT},
	{"evidence", "r.evidence", RT_TEXT},
	{"flags", "r.flags", RT_TEXT},
	{"server_json", "r.server_json", RT_JSON},
};
const size_t rpt_ncols = sizeof rpt_cols / sizeof rpt_cols[0];

int rpt_col_find(const char *name)
{
	for (size_t i = 0; i < rpt_ncols; i++)
		if (!strcmp(rpt_cols[i].name, name))
			return (int)i;
	return -1;
}

int report_format_parse(const char *s, enum report_format *out, struct ar_err *err)
{
	static const char *const names[] = {"text", "md", "csv", "json", "html"};
	for (int i = 0; i < 5; i++)
		if (!strcmp(s, names[i])) {
			*out = (enum report_format)i;
			return 0;
		}
	return ar_err_set(err, AR_EINVAL, "unknown report format '%s' (use text, md, csv, json or html)", s);
}

/* ---- the request query ------------------------------------------------- */

int rpt_query_requests(sqlite3 *db, sqlite3_stmt **out, int64_t run_id, struct ar_err *err)
{
	struct buf q = BUF_INIT;
	int rc = 0;
	buf_puts(&q, "SELECT ");
	for (size_t i = 0; i < rpt_ncols; i++)
		buf_printf(&q, "%s%s", i ? ", " : "", rpt_cols[i].sql);
	buf_puts(&q, " FROM requests r JOIN configs c ON r.config_id = c.id"
		     " WHERE (?1 < 0 OR c.run_id = ?1)"
		     " ORDER BY c.id, r.session, r.repeat, r.turn, r.id");
	if (!q.data || sqlite3_prepare_v2(db, q.data, -1, out, NULL) != SQLITE_OK) {
		rc = ar_err_set(err, AR_EFORMAT, "cannot query the store's requests: %s", sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_bind_int64(*out, 1, run_id);
out:
	buf_free(&q);
	return rc;
}

/* ---- filter ------------------------------------------------------------ */

enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_HAS };

struct rpt_cond {
	int col, op;
	char *text;
	double num;
};

struct rpt_filter {
	struct rpt_cond *c;
	size_t n;
};

const char *report_filter_help(void)
{
	return "--filter EXPR keeps the requests matching every condition of EXPR, a comma-separated list of\n"
	       "COLUMN OP VALUE with OP one of = != < <= > >= and ~ (contains, case-insensitive); COLUMN is a\n"
	       "csv/json column name (README.md, Reports), numbers compare as numbers; tier=32k keeps the\n"
	       "requests of that tier (tier= those of none). Example:\n"
	       "  --filter 'cache=warm,context_tokens_est>=16000,config~llama'";
}

void rpt_filter_free(struct rpt_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->c[i].text);
	free(f->c);
	free(f);
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = 0;
	return s;
}

static int parse_cond(char *s, struct rpt_cond *c, struct ar_err *err)
{
	static const struct {
		const char *tok;
		int op;
	} ops[] = {{"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE}, {"=", OP_EQ}, {"<", OP_LT}, {">", OP_GT}, {"~", OP_HAS}};
	char *at = NULL;
	size_t toklen = 0;
	for (char *p = s; *p && !at; p++)
		for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
			if (!strncmp(p, ops[k].tok, strlen(ops[k].tok))) {
				at = p;
				toklen = strlen(ops[k].tok);
				c->op = ops[k].op;
				break;
			}
	if (!at)
		return ar_err_set(err, AR_EINVAL, "filter condition '%s' has no operator (= != < <= > >= ~)", s);
	char save = *at;
	*at = 0;
	char *name = trim(s);
	char *val = trim(at + toklen);
	int col = rpt_col_find(name);
	if (col < 0) {
		ar_err_set(err, AR_EINVAL, "unknown column '%s' (the csv/json columns of README.md, Reports)", name);
		*at = save;
		return -1;
	}
	c->col = col;
	if (!(c->text = strdup(val)))
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	for (char *p = c->text; *p; p++)
		if (c->op == OP_HAS)
			*p = (char)tolower((unsigned char)*p);
	enum rpt_type t = rpt_cols[col].type;
	if (t == RT_TIER) {
		/* tier=T: the row is tier T (a turn may be several: baseline+32k);
		 * tier= : the row is no tier; ~ looks into the label */
		if (c->op != OP_EQ && c->op != OP_NE && c->op != OP_HAS)
			return ar_err_set(err, AR_EINVAL, "column 'tier' takes = != or ~, not a comparison");
		c->num = 0;
		for (int k = 0; k < RPT_NTIERS; k++)
			if (!strcmp(val, rpt_tier_name[k]))
				c->num = (double)(1u << k);
		if (c->op != OP_HAS && *val && c->num == 0)
			return ar_err_set(err, AR_EINVAL, "tier '%s' is not one of baseline, 32k, 64k, 128k (or empty: none)",
					  val);
		return 0;
	}
	if (t == RT_INT || t == RT_REAL || t == RT_BOOL) {
		if (c->op == OP_HAS)
			return ar_err_set(err, AR_EINVAL, "column '%s' is numeric; '~' needs a text column", name);
		char *end;
		errno = 0;
		c->num = strtod(val, &end);
		if (t == RT_BOOL && (!strcmp(val, "true") || !strcmp(val, "false"))) {
			c->num = val[0] == 't';
		} else if (!*val || *end || errno || !isfinite(c->num)) {
			return ar_err_set(err, AR_EINVAL, "column '%s' is numeric, '%s' is not a number", name,
					  val);
		}
	}
	return 0;
}

int rpt_filter_parse(const char *expr, struct rpt_filter **out, struct ar_err *err)
{
	*out = NULL;
	if (!expr || !expr[0])
		return 0;
	struct rpt_filter *f = calloc(1, sizeof *f);
	char *copy = strdup(expr);
	if (!f || !copy) {
		free(f);
		free(copy);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	char *save = NULL;
	for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
		if (!*trim(part))
			continue;
		struct rpt_cond *nc = realloc(f->c, (f->n + 1) * sizeof *nc);
		if (!nc) {
			ar_err_set(err, AR_ENOMEM, "out of memory");
			goto fail;
		}
		f->c = nc;
		memset(&f->c[f->n], 0, sizeof f->c[f->n]);
		f->n++;
		if (parse_cond(part, &f->c[f->n - 1], err) < 0) {
			goto fail;
		}
	}
	if (!f->n) {
		ar_err_set(err, AR_EINVAL, "'%s' has no condition", expr);
		goto fail;
	}
	free(copy);
	*out = f;
	return 0;
fail:
	free(copy);
	rpt_filter_free(f);
	return -1;
}

int report_filter_check(const char *expr, struct ar_err *err)
{
	struct rpt_filter *f;
	if (rpt_filter_parse(expr, &f, err) < 0)
		return -1;
	rpt_filter_free(f);
	return 0;
}

static bool has_ci(const char *hay, const char *needle_lower)
{
	size_t n = strlen(needle_lower);
	for (; *hay; hay++) {
		size_t k = 0;
		while (k < n && hay[k] && tolower((unsigned char)hay[k]) == needle_lower[k])
			k++;
		if (k == n)
			return true;
	}
	return n == 0;
}

void rpt_tier_label(uint8_t tiers, char *out, size_t n)
{
	out[0] = 0;
	for (int t = 0; t < RPT_NTIERS; t++)
		if (tiers & (1u << t)) {
			size_t l = strlen(out);
			snprintf(out + l, n - l, "%s%s", l ? "+" : "", rpt_tier_name[t]);
		}
}

bool rpt_filter_has_tier(const struct rpt_filter *f)
{
	for (size_t i = 0; f && i < f->n; i++)
		if (rpt_cols[f->c[i].col].type == RT_TIER)
			return true;
	return false;
}

bool rpt_filter_pass_tier(const struct rpt_filter *f, uint8_t tiers)
{
	for (size_t i = 0; f && i < f->n; i++) {
		const struct rpt_cond *c = &f->c[i];
		if (rpt_cols[c->col].type != RT_TIER)
			continue;
		bool ok;
		if (c->op == OP_HAS) {
			char lab[64];
			rpt_tier_label(tiers, lab, sizeof lab);
			ok = has_ci(lab, c->text);
		} else {
			bool is = c->num ? (tiers & (uint8_t)c->num) != 0 : tiers == 0;
			ok = c->op == OP_EQ ? is : !is;
		}
		if (!ok)
			return false;
	}
	return true;
}

bool rpt_filter_pass(const struct rpt_filter *f, sqlite3_stmt *st)
{
	if (!f)
		return true;
	for (size_t i = 0; i < f->n; i++) {
		const struct rpt_cond *c = &f->c[i];
		enum rpt_type t = rpt_cols[c->col].type;
		if (t == RT_TIER)
			continue; /* rpt_filter_pass_tier, once the tiers are known */
		bool null = sqlite3_column_type(st, c->col) == SQLITE_NULL;
		int cmp;
		if (t == RT_INT || t == RT_REAL || t == RT_BOOL) {
			if (null) {
				if (c->op != OP_NE)
					return false;
				continue;
			}
			double v = sqlite3_column_double(st, c->col);
			cmp = v < c->num ? -1 : v > c->num ? 1 : 0;
		} else {
			const char *v = (const char *)sqlite3_column_text(st, c->col);
			if (!v)
				v = "";
			if (c->op == OP_HAS) {
				if (!has_ci(v, c->text))
					return false;
				continue;
			}
			cmp = strcmp(v, c->text);
		}
		bool ok = c->op == OP_EQ ? cmp == 0
			: c->op == OP_NE ? cmp != 0
			: c->op == OP_LT ? cmp < 0
			: c->op == OP_LE ? cmp <= 0
			: c->op == OP_GT ? cmp > 0
			: cmp >= 0;
		if (!ok)
			return false;
	}
	return true;
}
