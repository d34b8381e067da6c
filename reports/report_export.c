/* report_export: every request row with every figure, as CSV or JSON (the
 * column names are rpt_cols, documented in README.md, Reports). Rows are
 * streamed from the store, never held. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonh.h"
#include "report_int.h"
#include "utf8.h"

int rpt_json_str(struct buf *b, const char *s, bool html)
{
	static const char hex[] = "0123456789abcdef";
	if (!s)
		return buf_puts(b, "null");
	size_t n = strlen(s);
	if (buf_putc(b, '"') < 0)
		return -1;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			size_t len = 1;
			while (i + len < n && ((unsigned char)s[i + len] & 0xC0) == 0x80 && len < 4)
				len++;
			if (len == 3 && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x80 &&
			    ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) {
				/* U+2028/2029: valid JSON, but line ends to older JavaScript */
				if (buf_puts(b, (unsigned char)s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029") < 0)
					return -1;
			} else if (utf8_check(s + i, len) == len) {
				if (buf_append(b, s + i, len) < 0)
					return -1;
			} else if (buf_puts(b, "\\ufffd") < 0) {
				return -1;
			} else {
				len = 1;
			}
			i += len;
			continue;
		}
		int r;
		if (c == '"')
			r = buf_puts(b, "\\\"");
		else if (c == '\\')
			r = buf_puts(b, "\\\\");
		else if (c == '\n')
			r = buf_puts(b, "\\n");
		else if (c < 0x20 || c == 0x7f || (html && (c == '<' || c == '>' || c == '&' || c == '\'')))
			r = buf_printf(b, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
		else
			r = buf_putc(b, (char)c);
		if (r < 0)
			return -1;
		i++;
	}
	return buf_putc(b, '"');
}

/* True when a spreadsheet would read text starting like s as a formula
 * (OWASP, CSV injection): = + - @, or a TAB or CR before one of them. */
static bool csv_formula_like(const char *s)
{
	return s[0] && strchr("=+-@\t\r", s[0]) != NULL;
}

int rpt_csv_field(struct buf *b, const char *s, bool text)
{
	/* a text cell a spreadsheet would evaluate gets a leading quote, which
	 * spreadsheets show as text; numbers are never changed */
	bool guard = text && csv_formula_like(s);
	if (!guard && !strpbrk(s, ",\"\r\n") && s[0] != ' ' && (!*s || s[strlen(s) - 1] != ' '))
		return buf_puts(b, s);
	bool quote = strpbrk(s, ",\"\r\n") || s[0] == ' ' || (*s && s[strlen(s) - 1] == ' ');
	if (quote && buf_putc(b, '"') < 0)
		return -1;
	if (guard && buf_putc(b, '\'') < 0)
		return -1;
	for (; *s; s++)
		if ((*s == '"' && buf_putc(b, '"') < 0) || buf_putc(b, *s) < 0)
			return -1;
	return quote ? buf_putc(b, '"') : 0;
}

/* One value of the current row: into b as CSV (csv) or JSON. */
static int put_value(struct buf *b, sqlite3_stmt *st, size_t i, const struct rpt_req *r, bool csv)
{
	enum rpt_type t = rpt_cols[i].type;
	int ct = sqlite3_column_type(st, (int)i);
	if (t == RT_TIER) {
		char lab[64];
		rpt_tier_label(r->tiers, lab, sizeof lab);
		if (csv)
			return buf_puts(b, lab);
		return lab[0] ? rpt_json_str(b, lab, false) : buf_puts(b, "null");
	}
	if (ct == SQLITE_NULL)
		return csv ? 0 : buf_puts(b, "null");
	switch (t) {
	case RT_INT: return buf_printf(b, "%lld", (long long)sqlite3_column_int64(st, (int)i));
	case RT_REAL: return jsonh_put_number(b, sqlite3_column_double(st, (int)i));
	case RT_BOOL:
		return buf_puts(b, sqlite3_column_int(st, (int)i) ? (csv ? "1" : "true") : (csv ? "0" : "false"));
	case RT_JSON:
		if (!csv) {
			cJSON *j = cJSON_Parse((const char *)sqlite3_column_text(st, (int)i));
			int rc = j ? jsonh_put(b, j) : rpt_json_str(b, (const char *)sqlite3_column_text(st, (int)i), false);
			cJSON_Delete(j);
			return rc;
		}
		/* fall through */
	default: {
		const char *s = (const char *)sqlite3_column_text(st, (int)i);
		return csv ? rpt_csv_field(b, s ? s : "", true) : rpt_json_str(b, s, false);
	}
	}
}

/* Streams the filtered rows, one at a time (memory does not grow with them). */
static int stream_rows(sqlite3 *db, struct rpt_model *m, FILE *out, bool csv, struct ar_err *err)
{
	struct rpt_iter it;
	struct buf b = BUF_INIT;
	int rc = -1, got;
	size_t k = 0;
	if (rpt_iter_open(&it, db, m, true, err) < 0)
		return -1;
	while ((got = rpt_iter_next(&it, err)) == 1) {
		int bad = 0;
		buf_reset(&b);
		if (!csv)
			bad |= buf_puts(&b, k ? ",\n{" : "\n{");
		for (size_t i = 0; i < rpt_ncols; i++) {
			if (csv)
				bad |= i ? buf_putc(&b, ',') : 0;
			else
				bad |= buf_printf(&b, "%s\"%s\":", i ? "," : "", rpt_cols[i].name);
			bad |= put_value(&b, it.st, i, &it.r, csv);
		}
		bad |= buf_puts(&b, csv ? "\n" : "}");
		if (bad) {
			ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
		if (fwrite(b.data, 1, b.len, out) != b.len) {
			ar_err_set(err, AR_EIO, "cannot write the report");
			goto out;
		}
		k++;
	}
	if (got == 0)
		rc = 0;
out:
	buf_free(&b);
	rpt_iter_close(&it);
	return rc;
}

int report_csv(sqlite3 *db, struct rpt_model *m, FILE *out, struct ar_err *err)
{
	for (size_t i = 0; i < rpt_ncols; i++)
		fprintf(out, "%s%s", i ? "," : "", rpt_cols[i].name);
	fputc('\n', out);
	return stream_rows(db, m, out, true, err);
}

static void put_i64(struct buf *b, const char *k, int64_t v, bool comma)
{
	if (v < 0)
		buf_printf(b, "%s\"%s\":null", comma ? "," : "", k);
	else
		buf_printf(b, "%s\"%s\":%lld", comma ? "," : "", k, (long long)v);
}

static void put_str(struct buf *b, const char *k, const char *v, bool comma)
{
	buf_printf(b, "%s\"%s\":", comma ? "," : "", k);
	rpt_json_str(b, v, false);
}

static void put_num(struct buf *b, const char *k, double v)
{
	buf_printf(b, ",\"%s\":", k);
	jsonh_put_number(b, v); /* NaN prints null */
}

int report_json(sqlite3 *db, struct rpt_model *m, FILE *out, struct ar_err *err)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"format\":\"agentreplay-report/1\"");
	put_str(&b, "store", m->opts->source, true);
	put_str(&b, "filter", m->opts->filter, true);
	buf_puts(&b, ",\"runs\":[");
	for (size_t i = 0; i < m->nrun; i++) {
		const struct rpt_run *r = &m->run[i];
		buf_puts(&b, i ? ",\n{" : "\n{");
		put_i64(&b, "id", r->id, false);
		put_str(&b, "started_at", r->started, true);
		put_str(&b, "finished_at", r->finished[0] ? r->finished : NULL, true);
		put_str(&b, "status", r->status, true);
		put_str(&b, "tool_version", r->tool_version, true);
		put_str(&b, "command_line", r->command_line, true);
		buf_puts(&b, "}");
	}
	buf_puts(&b, "],\"configs\":[");
	bool first = true;
	for (size_t i = 0; i < m->ncfg; i++) {
		const struct rpt_cfg *c = &m->cfg[i];
		if (c->hidden)
			continue;
		buf_puts(&b, first ? "\n{" : ",\n{");
		first = false;
		put_i64(&b, "id", c->id, false);
		put_i64(&b, "run_id", c->run_id, true);
		put_str(&b, "name", c->name, true);
		put_str(&b, "backend", c->backend, true);
		put_str(&b, "model", c->model, true);
		put_str(&b, "url", c->url, true);
		buf_printf(&b, ",\"simulated\":%s", c->simulated ? "true" : "false");
		put_str(&b, "status", c->status, true);
		put_i64(&b, "requests", (int64_t)c->n, true);
		put_i64(&b, "repeats", c->repeats, true);
		put_i64(&b, "peak_mem_bytes", c->peak_mem, true);
		put_i64(&b, "deepest_ok_tokens", c->max_done_depth, true);
		buf_puts(&b, ",\"failure\":");
		if (c->fail.found) {
			buf_putc(&b, '{');
			put_str(&b, "session", c->fail.session, false);
			put_i64(&b, "turn", c->fail.turn, true);
			put_i64(&b, "context_tokens", c->fail.depth, true);
			put_str(&b, "class", c->fail.cls, true);
			put_str(&b, "evidence", c->fail.evidence, true);
			put_i64(&b, "mem_bytes", c->fail.mem, true);
			buf_puts(&b, "}");
		} else {
			buf_puts(&b, "null");
		}
		buf_puts(&b, ",\"mem\":");
		if (c->mem.valid) {
			buf_putc(&b, '{');
			put_str(&b, "source", c->mem.source, false);
			put_i64(&b, "baseline_bytes", c->mem.baseline, true);
			put_num(&b, "bytes_per_token", c->mem.bytes_per_token);
			put_i64(&b, "budget_bytes", c->mem.budget, true);
			put_i64(&b, "projected_oom_tokens", c->mem.oom_tokens, true);
			put_i64(&b, "projected_oom_turn", c->mem.oom_turn, true);
			put_i64(&b, "points", c->mem.points, true);
			put_num(&b, "r2", c->mem.r2);
			buf_puts(&b, "}");
		} else {
			buf_puts(&b, "null");
		}
		buf_puts(&b, ",\"tiers\":{");
		for (int k = 0; k < 2; k++) {
			buf_printf(&b, "%s\"%s\":{", k ? "," : "", k == RQ_WARM ? "warm" : "cold");
			for (int t = 0; t < RPT_NTIERS; t++) {
				const struct rpt_tierturn *tt = &c->tier[k][t];
				buf_printf(&b, "%s\"%s\":", t ? "," : "", rpt_tier_name[t]);
				if (tt->turn < 0) {
					buf_puts(&b, "null");
					continue;
				}
				buf_putc(&b, '{');
				put_str(&b, "session", m->sess[tt->sess], false);
				put_i64(&b, "turn", tt->turn, true);
				put_i64(&b, "context_tokens", tt->depth, true);
				buf_puts(&b, "}");
			}
			buf_puts(&b, "}");
		}
		buf_puts(&b, "}}");
	}
	buf_puts(&b, "],\"requests\":[");
	int rc = 0;
	if (!b.data || fwrite(b.data, 1, b.len, out) != b.len)
		rc = ar_err_set(err, AR_EIO, "cannot write the report");
	buf_free(&b);
	if (rc == 0)
		rc = stream_rows(db, m, out, false, err);
	if (rc == 0)
		fputs("]}\n", out);
	return rc;
}
