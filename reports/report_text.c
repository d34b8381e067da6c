/* report_text: the summary tables as aligned text or GitHub markdown. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "report_int.h"
#include "utf8.h"

#define TBL_MAXCOLS 12

/* Every allocation of this file goes through tx_alloc, so a test can make
 * the Nth one fail (rpt_text_fail_alloc, SQLite's "Nth malloc fails") and
 * check that the report then fails with out of memory, cleanly, whichever
 * table it was building. */
static long fail_at = -1, nalloc;

void rpt_text_fail_alloc(long n)
{
	fail_at = n;
	nalloc = 0;
}

long rpt_text_allocs(void) { return nalloc; }

static void *tx_realloc(void *p, size_t n)
{
	if (nalloc++ == fail_at)
		return NULL;
	return realloc(p, n);
}

static void *tx_malloc(size_t n) { return tx_realloc(NULL, n); }

static char *tx_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = tx_malloc(n);
	return d ? memcpy(d, s, n) : NULL;
}

struct tbl {
	int ncols;
	const char *head[TBL_MAXCOLS];
	bool right[TBL_MAXCOLS];
	char **cell; /* nrows * ncols, owned */
	size_t nrows;
	bool oom;
};

/* Untrusted text made safe for one cell: valid UTF-8 (bad bytes -> '?'),
 * no control characters, at most `max` code points (cut with "..."), and in
 * markdown every character that could start markup backslash-escaped. */
static char *clean(const char *s, size_t max, bool md)
{
	if (!s)
		s = "";
	size_t n = strlen(s);
	char *out = tx_malloc(n * 2 + 8);
	if (!out)
		return NULL;
	size_t o = 0, cps = 0;
	for (size_t i = 0; i < n;) {
		size_t bad = utf8_check(s + i, n - i);
		size_t len = 1;
		unsigned char ch = (unsigned char)s[i];
		if (bad == 0) {
			out[o++] = '?';
		} else if (ch >= 0x80) {
			while (i + len < n && ((unsigned char)s[i + len] & 0xC0) == 0x80)
				len++;
			memcpy(out + o, s + i, len);
			o += len;
		} else if (ch < 0x20 || ch == 0x7f) {
			out[o++] = ' ';
		} else {
			if (md && strchr("\\`*_[]<>|&~#", ch))
				out[o++] = '\\';
			out[o++] = (char)ch;
		}
		i += len;
		if (++cps >= max && i < n) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
	}
	out[o] = 0;
	return out;
}

static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

static void tbl_init(struct tbl *t, int ncols, const char *const *head, const char *align)
{
	memset(t, 0, sizeof *t);
	t->ncols = ncols;
	for (int i = 0; i < ncols; i++) {
		t->head[i] = head[i];
		t->right[i] = align[i] == 'r';
	}
}

/* Adds a row of ncols cells; each cell is taken (owned) by the table. */
static void tbl_row(struct tbl *t, char **cells)
{
	char **nc = tx_realloc(t->cell, (t->nrows + 1) * (size_t)t->ncols * sizeof *nc);
	if (!nc) {
		t->oom = true;
		for (int i = 0; i < t->ncols; i++)
			free(cells[i]);
		return;
	}
	t->cell = nc;
	for (int i = 0; i < t->ncols; i++) {
		if (!cells[i])
			t->oom = true;
		t->cell[t->nrows * (size_t)t->ncols + (size_t)i] = cells[i];
	}
	t->nrows++;
}

static void pad(FILE *out, size_t n)
{
	while (n--)
		fputc(' ', out);
}

static void tbl_free(struct tbl *t)
{
	for (size_t k = 0; k < t->nrows * (size_t)t->ncols; k++)
		free(t->cell[k]);
	free(t->cell);
	t->cell = NULL;
	t->nrows = 0;
}

/* Prints the table and empties it; -1 (nothing printed) when a cell or row
 * could not be allocated. */
static int tbl_print(struct tbl *t, const char *title, bool md, FILE *out)
{
	size_t w[TBL_MAXCOLS];
	if (t->oom) {
		tbl_free(t);
		return -1;
	}
	for (int i = 0; i < t->ncols; i++) {
		w[i] = width(t->head[i]);
		for (size_t r = 0; r < t->nrows; r++) {
			const char *c = t->cell[r * (size_t)t->ncols + (size_t)i];
			size_t cw = c ? width(c) : 0;
			if (cw > w[i])
				w[i] = cw;
		}
		if (md && w[i] < 3)
			w[i] = 3;
	}
	fprintf(out, md ? "### %s\n\n" : "%s\n", title);
	for (long r = -1; r < (long)t->nrows; r++) {
		if (md)
			fputs("|", out);
		for (int i = 0; i < t->ncols; i++) {
			const char *c = r < 0 ? t->head[i] : t->cell[(size_t)r * (size_t)t->ncols + (size_t)i];
			if (!c)
				c = "";
			size_t cw = width(c);
			bool last = i == t->ncols - 1;
			if (md)
				fputs(" ", out);
			else if (i)
				fputs("  ", out);
			if (t->right[i])
				pad(out, w[i] - cw);
			fputs(c, out);
			if (!t->right[i] && (md || !last))
				pad(out, w[i] - cw);
			if (md)
				fputs(" |", out);
		}
		fputs("\n", out);
		if (r < 0 && md) {
			fputs("|", out);
			for (int i = 0; i < t->ncols; i++) {
				fputs(" ", out);
				for (size_t k = 0; k + 1 < w[i]; k++)
					fputc('-', out);
				fputs(t->right[i] ? ":" : "-", out);
				fputs(" |", out);
			}
			fputs("\n", out);
		}
	}
	fputs("\n", out);
	tbl_free(t);
	return 0;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, f);
	vsnprintf(tmp, sizeof tmp, f, ap);
	va_end(ap);
	return tx_strdup(tmp);
}

static char *cfg_label(const struct rpt_cfg *c, bool md)
{
	char *name = clean(c->name, 48, md);
	if (!name)
		return NULL;
	char *s = fmt("%s%s", name, c->simulated ? (md ? " \\[sim\\]" : " [sim]") : "");
	free(name);
	return s;
}

/* a figure cell: the median, or why there is none */
static char *cell_text(struct rpt_stat s, const char *why, void (*f)(double, char *, size_t), bool md)
{
	if (s.oom)
		return NULL;
	if (s.n) {
		char b[48];
		f(s.med, b, sizeof b);
		return tx_strdup(b);
	}
	if (why)
		return clean(why, 16, md);
	return tx_strdup("-");
}

static void fmt_ms_ratio(double a, double b, char *out, size_t n) { rpt_fmt_ratio(b / a, out, n); }

int report_text(const struct rpt_model *m, bool md, FILE *out, struct ar_err *err)
{
	struct tbl t;
	const char *why, *why2;
	bool any_sim = false;
	if (md)
		fputs("## agentreplay report\n\n", out);
	else
		fputs("agentreplay report\n\n", out);
	char *src = clean(m->opts->source ? m->opts->source : "", 200, md);
	if (!src)
		goto oom;
	fprintf(out, "store: %s; %zu run%s, %zu config%s, %zu request%s\n", src, m->nrun,
		m->nrun == 1 ? "" : "s", m->nshown, m->nshown == 1 ? "" : "s", m->nreq, m->nreq == 1 ? "" : "s");
	free(src);
	if (m->opts->filter && *m->opts->filter) {
		char *f = clean(m->opts->filter, 200, md);
		if (!f)
			goto oom;
		fprintf(out, "%sfilter: %s\n", md ? "\n" : "", f);
		free(f);
	}
	fputs("\n", out);
	if (m->nrun) {
		static const char *const h[] = {"run", "started", "status", "version", "command line"};
		tbl_init(&t, 5, h, "rllll");
		for (size_t i = 0; i < m->nrun; i++) {
			const struct rpt_run *r = &m->run[i];
			char *c[] = {fmt("%lld", (long long)r->id), clean(r->started, 32, md), clean(r->status, 16, md),
				     clean(r->tool_version, 16, md), clean(r->command_line, 80, md)};
			tbl_row(&t, c);
		}
		if (tbl_print(&t, "Runs", md, out) < 0)
			goto oom;
	}
	if (!m->nshown) {
		fputs(m->opts->filter ? "No config has requests matching the filter.\n" : "The store holds no configs.\n",
		      out);
		return 0;
	}

	{
		static const char *const h[] = {"config", "repeats", "baseline", "32k", "32k/base", "64k", "128k"};
		tbl_init(&t, 7, h, "lrrrrrr");
		for (size_t i = 0; i < m->ncfg; i++) {
			const struct rpt_cfg *c = &m->cfg[i];
			if (c->hidden)
				continue;
			any_sim |= c->simulated;
			struct rpt_stat b = rpt_cell(m, c, RQ_WARM, 0, RM_TTFT, &why);
			char *c0 = cell_text(b, why, rpt_fmt_ms, md);
			struct rpt_stat s32 = rpt_cell(m, c, RQ_WARM, 1, RM_TTFT, &why2);
			char *c1 = cell_text(s32, why2, rpt_fmt_ms, md);
			char ratio[32] = "-";
			if (b.n && s32.n && b.med > 0)
				fmt_ms_ratio(b.med, s32.med, ratio, sizeof ratio);
			struct rpt_stat s64 = rpt_cell(m, c, RQ_WARM, 2, RM_TTFT, &why);
			char *c3 = cell_text(s64, why, rpt_fmt_ms, md);
			struct rpt_stat s128 = rpt_cell(m, c, RQ_WARM, 3, RM_TTFT, &why);
			char *c4 = cell_text(s128, why, rpt_fmt_ms, md);
			char *row[] = {cfg_label(c, md), fmt("%lld", (long long)c->repeats), c0, c1, tx_strdup(ratio), c3, c4};
			tbl_row(&t, row);
		}
		if (tbl_print(&t, "Warm TTFT by depth (ms, median over repeats)", md, out) < 0)
			goto oom;
	}
	{
		static const char *const h[] = {"config", "tier", "cold depth", "cold ms", "warm depth", "warm ms", "cold/warm"};
		tbl_init(&t, 7, h, "llrrrrr");
		for (size_t i = 0; i < m->ncfg; i++) {
			const struct rpt_cfg *c = &m->cfg[i];
			if (c->hidden)
				continue;
			for (int k = 0; k < RPT_NTIERS; k++) {
				if (c->tier[RQ_COLD][k].turn < 0 && c->tier[RQ_WARM][k].turn < 0)
					continue;
				struct rpt_stat cs = rpt_cell(m, c, RQ_COLD, k, RM_TTFT, &why);
				struct rpt_stat ws = rpt_cell(m, c, RQ_WARM, k, RM_TTFT, &why2);
				char cd[32], wd[32], ratio[32] = "-";
				rpt_fmt_tokens(c->tier[RQ_COLD][k].turn < 0 ? -1 : c->tier[RQ_COLD][k].depth, cd, sizeof cd);
				rpt_fmt_tokens(c->tier[RQ_WARM][k].turn < 0 ? -1 : c->tier[RQ_WARM][k].depth, wd, sizeof wd);
				if (cs.n && ws.n && ws.med > 0)
					fmt_ms_ratio(ws.med, cs.med, ratio, sizeof ratio);
				char *row[] = {cfg_label(c, md), tx_strdup(rpt_tier_name[k]), tx_strdup(cd),
					       cell_text(cs, why, rpt_fmt_ms, md), tx_strdup(wd),
					       cell_text(ws, why2, rpt_fmt_ms, md), tx_strdup(ratio)};
				tbl_row(&t, row);
			}
		}
		if (tbl_print(&t, "Cold vs warm TTFT by tier (ms, median over repeats)", md, out) < 0)
			goto oom;
	}
	{
		static const char *const h[] = {"config", "baseline", "32k", "64k", "128k"};
		tbl_init(&t, 5, h, "lrrrr");
		for (size_t i = 0; i < m->ncfg; i++) {
			const struct rpt_cfg *c = &m->cfg[i];
			if (c->hidden)
				continue;
			char *row[5] = {cfg_label(c, md)};
			for (int k = 0; k < RPT_NTIERS; k++) {
				struct rpt_stat s = rpt_cell(m, c, RQ_WARM, k, RM_DECODE, &why);
				row[k + 1] = cell_text(s, why, rpt_fmt_rate, md);
			}
			tbl_row(&t, row);
		}
		if (tbl_print(&t, "Decode rate by depth (tok/s, warm, median over repeats)", md, out) < 0)
			goto oom;
	}
	{
		static const char *const h[] = {"config", "peak memory", "budget", "projected OOM", "failure point", "evidence"};
		tbl_init(&t, 6, h, "lrrlll");
		for (size_t i = 0; i < m->ncfg; i++) {
			const struct rpt_cfg *c = &m->cfg[i];
			if (c->hidden)
				continue;
			char peak[48], budget[48] = "-", proj[64] = "-";
			rpt_fmt_bytes((double)c->peak_mem, peak, sizeof peak);
			if (c->mem.valid && c->mem.budget > 0)
				rpt_fmt_bytes((double)c->mem.budget, budget, sizeof budget);
			if (c->mem.valid && c->mem.oom_tokens > 0) {
				if (c->mem.oom_turn >= 0)
					snprintf(proj, sizeof proj, "%lld tokens (turn %lld)", (long long)c->mem.oom_tokens,
						 (long long)c->mem.oom_turn);
				else
					snprintf(proj, sizeof proj, "%lld tokens", (long long)c->mem.oom_tokens);
			}
			char *fp, *ev;
			if (c->fail.found) {
				char *cls = clean(c->fail.cls, 16, md);
				char dep[32];
				rpt_fmt_tokens(c->fail.depth, dep, sizeof dep);
				fp = cls ? fmt("%s at turn %lld, %s tokens", cls, (long long)c->fail.turn, dep) : NULL;
				free(cls);
				ev = clean(c->fail.evidence ? c->fail.evidence : "", 60, md);
			} else {
				fp = tx_strdup(!strcmp(c->status, "ok") || !c->status[0] ? "none" : c->status);
				ev = tx_strdup("");
			}
			char *row[] = {cfg_label(c, md), tx_strdup(peak), tx_strdup(budget), tx_strdup(proj), fp, ev};
			tbl_row(&t, row);
		}
		if (tbl_print(&t, "Memory and failure point", md, out) < 0)
			goto oom;
	}
	{
		static const char *const h[] = {"goal", "config", "median", "min-max", "repeats"};
		static const struct {
			const char *goal;
			int tier;
			enum rpt_metric k;
			int sign; /* +1: lower is better */
			void (*f)(double, char *, size_t);
		} goals[] = {
			{"fastest warm TTFT at 32k (ms)", 1, RM_TTFT, 1, rpt_fmt_ms},
			{"best decode at 128k (tok/s)", 3, RM_DECODE, -1, rpt_fmt_rate},
			{"lowest memory at 128k", 3, RM_MEM, 1, rpt_fmt_bytes},
			{"deepest context reached (tokens)", -1, RM_TTFT, -1, NULL},
		};
		tbl_init(&t, 5, h, "llrrr");
		for (size_t g = 0; g < sizeof goals / sizeof goals[0]; g++) {
			const struct rpt_cfg *best = NULL;
			struct rpt_stat bs = {0, NAN, NAN, NAN, false};
			for (size_t i = 0; i < m->ncfg; i++) {
				const struct rpt_cfg *c = &m->cfg[i];
				if (c->hidden)
					continue;
				struct rpt_stat s = goals[g].tier < 0 ? rpt_deepest(m, c)
								      : rpt_cell(m, c, RQ_WARM, goals[g].tier, goals[g].k, &why);
				if (s.oom) {
					tbl_free(&t);
					goto oom;
				}
				if (!s.n)
					continue;
				if (!best || (goals[g].sign > 0 ? s.med < bs.med : s.med > bs.med)) {
					best = c;
					bs = s;
				}
			}
			char med[48] = "-", lo[48], hi[48], range[100] = "-";
			if (best) {
				if (goals[g].f) {
					goals[g].f(bs.med, med, sizeof med);
					goals[g].f(bs.min, lo, sizeof lo);
					goals[g].f(bs.max, hi, sizeof hi);
				} else {
					rpt_fmt_tokens((int64_t)bs.med, med, sizeof med);
					rpt_fmt_tokens((int64_t)bs.min, lo, sizeof lo);
					rpt_fmt_tokens((int64_t)bs.max, hi, sizeof hi);
				}
				snprintf(range, sizeof range, "%s-%s", lo, hi);
			}
			char *row[] = {tx_strdup(goals[g].goal), best ? cfg_label(best, md) : tx_strdup("(no data)"), tx_strdup(med),
				       tx_strdup(range), best ? fmt("%zu", bs.n) : tx_strdup("0")};
			tbl_row(&t, row);
		}
		if (tbl_print(&t, "Best for each goal (median and min-max over repeats)", md, out) < 0)
			goto oom;
	}
	if (m->concurrent) {
		static const char *const h[] = {"config", "in flight", "requests", "p50", "p90", "p99", "cache hit"};
		tbl_init(&t, 7, h, "lrrrrrr");
		for (size_t i = 0; i < m->ncfg; i++) {
			const struct rpt_cfg *c = &m->cfg[i];
			if (c->hidden || !c->n || !c->concurrent)
				continue;
			double *v = tx_malloc(c->n * sizeof *v);
			if (!v) {
				tbl_free(&t);
				goto oom;
			}
			for (int b = 0; b < 40; b++) {
				size_t n = 0;
				for (size_t k = 0; k < c->n; k++) {
					const struct rpt_req *r = &m->req[c->first + k];
					if (r->done && r->cache == RQ_WARM && !isnan(r->ttft) && r->in_flight >= 1 &&
					    rpt_inflight_bucket(r->in_flight) == b)
						v[n++] = r->ttft;
				}
				if (!n)
					continue;
				struct rpt_stat s;
				rpt_stat_of(v, n, &s);
				char lab[48], p50[32], p90[32], p99[32], hit[16];
				rpt_inflight_label(b, lab, sizeof lab);
				double hr = rpt_inflight_hit(m, c, b);
				snprintf(hit, sizeof hit, isnan(hr) ? "-" : "%.1f%%", hr * 100);
				rpt_fmt_ms(rpt_percentile(v, n, 50), p50, sizeof p50);
				rpt_fmt_ms(rpt_percentile(v, n, 90), p90, sizeof p90);
				rpt_fmt_ms(rpt_percentile(v, n, 99), p99, sizeof p99);
				char *row[] = {cfg_label(c, md), tx_strdup(lab), fmt("%zu", n), tx_strdup(p50), tx_strdup(p90), tx_strdup(p99),
					       tx_strdup(hit)};
				tbl_row(&t, row);
			}
			free(v);
		}
		if (tbl_print(&t, "Warm TTFT and prefix-cache hit by requests in flight (ms, completed requests)", md, out) < 0)
			goto oom;
	}
	fputs(md ? "Notes:\n\n" : "Notes:\n", out);
	if (any_sim)
		fprintf(out, "%s[sim]: simulated by the sim backend (modelled, not measured).\n", md ? "- \\" : "- ");
	fprintf(out, "- Tiers: baseline is the shallowest turn; 32k/64k/128k is the turn whose context depth is\n"
		     "  nearest 32768/65536/131072 tokens within +-25%%, chosen separately for cold and warm\n"
		     "  requests. '-': no such turn; a class (oom, ...): that turn failed in every repeat.\n");
	return 0;
oom:
	return ar_err_set(err, AR_ENOMEM, "out of memory (the text report is incomplete)");
}
