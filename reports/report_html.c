/* report_html: one self-contained page (no network: a CSP forbids it) with
 * inline SVG charts written here, a survival matrix, and the request table
 * (data as JSON in a <script type="application/json">, rendered 100 rows a
 * page by report_html_js.h). Every untrusted string goes through esc() or,
 * inside the JSON, rpt_json_str(html = true), which escapes < > & '. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_html_js.h"
#include "report_int.h"

/* Okabe-Ito, colour-blind safe (yellow left out: unreadable on white) */
static const char *const palette[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7f7f7f"};
#define NPAL 7
static const char *const dashes[] = {"", "6 3", "2 3"};
#define esc rpt_html_esc

void rpt_html_esc(struct buf *b, const char *s)
{
	if (!s)
		return;
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_puts(b, "&amp;"); break;
		case '<': buf_puts(b, "&lt;"); break;
		case '>': buf_puts(b, "&gt;"); break;
		case '"': buf_puts(b, "&quot;"); break;
		case '\'': buf_puts(b, "&#39;"); break;
		default:
			if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
				buf_putc(b, ' ');
			else
				buf_putc(b, *s);
		}
	}
}

/* ---- charts ------------------------------------------------------------ */

enum ax_kind { AX_TOKENS, AX_MS, AX_RATE, AX_BYTES, AX_TURN };

struct axis {
	double lo, hi;
	bool log;
	enum ax_kind kind;
	const char *label;
};

struct chart {
	struct buf *b;
	double w, h, l, r, t, bt; /* size and margins */
	struct axis x, y;
};

static double px(const struct chart *c, double v)
{
	double f = c->x.log ? (log10(v) - log10(c->x.lo)) / (log10(c->x.hi) - log10(c->x.lo))
			    : (v - c->x.lo) / (c->x.hi - c->x.lo);
	return c->l + f * (c->w - c->l - c->r);
}

static double py(const struct chart *c, double v)
{
	if (c->y.log && v < c->y.lo)
		v = c->y.lo;
	double f = c->y.log ? (log10(v) - log10(c->y.lo)) / (log10(c->y.hi) - log10(c->y.lo))
			    : (v - c->y.lo) / (c->y.hi - c->y.lo);
	return c->h - c->bt - f * (c->h - c->t - c->bt);
}

static void tick_label(enum ax_kind k, double v, char *out, size_t n)
{
	switch (k) {
	case AX_TOKENS:
		if (v >= 1024 && fmod(v, 1024) == 0)
			snprintf(out, n, "%.0fk", v / 1024);
		else
			snprintf(out, n, "%.0f", v);
		break;
	case AX_MS:
		if (v >= 1000)
			snprintf(out, n, "%g s", v / 1000);
		else
			snprintf(out, n, "%g ms", v);
		break;
	case AX_BYTES:
		if (v >= 1024.0 * 1024 * 1024 || v == 0)
			snprintf(out, n, "%g GiB", v / (1024.0 * 1024 * 1024));
		else
			snprintf(out, n, "%g MiB", v / (1024.0 * 1024));
		break;
	default: snprintf(out, n, "%g", v);
	}
}

/* a linear axis from 0 with a "nice" step; tokens step in powers of two k */
static double nice_step(enum ax_kind k, double hi)
{
	if (hi <= 0)
		hi = 1;
	if (k == AX_TOKENS) {
		double s = 1024;
		while (hi / s > 8)
			s *= 2;
		while (hi / s < 2 && s > 1)
			s /= 2;
		return s;
	}
	if (k == AX_BYTES && hi >= 1024.0 * 1024 * 1024) {
		double g = 1024.0 * 1024 * 1024, s = g / 4;
		while (hi / s > 8)
			s = s * 2;
		return s;
	}
	double raw = hi / 6, p = pow(10, floor(log10(raw))), f = raw / p;
	return p * (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10);
}

static void axis_fit(struct axis *a, double lo, double hi)
{
	if (a->log) {
		if (!(lo > 0))
			lo = 1;
		if (!(hi > lo))
			hi = lo * 10;
		a->lo = pow(10, floor(log10(lo)));
		a->hi = pow(10, ceil(log10(hi)));
		if (a->hi <= a->lo)
			a->hi = a->lo * 10;
	} else {
		a->lo = 0;
		if (!(hi > 0))
			hi = 1;
		double s = nice_step(a->kind, hi);
		a->hi = ceil(hi / s) * s;
		if (a->hi < hi * 1.02)
			a->hi += s;
	}
}

static void chart_begin(struct chart *c, struct buf *b, const char *id, const char *title, double w, double h)
{
	c->b = b;
	c->w = w;
	c->h = h;
	c->l = 74;
	c->r = 16;
	c->t = 12;
	c->bt = 46;
	buf_printf(b, "<figure id=\"%s\"><figcaption>", id);
	esc(b, title);
	buf_printf(b, "</figcaption>\n<svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"", w, h);
	esc(b, title);
	buf_puts(b, "\" class=\"chart\">\n");
}

static void chart_axes(struct chart *c)
{
	struct buf *b = c->b;
	char lab[48];
	/* y */
	if (c->y.log) {
		for (double v = c->y.lo; v <= c->y.hi * 1.0001; v *= 10) {
			double y = py(c, v);
			tick_label(c->y.kind, v, lab, sizeof lab);
			buf_printf(b, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", c->l, c->w - c->r, y, y);
			buf_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", c->l - 6, y + 4, lab);
		}
	} else {
		double s = nice_step(c->y.kind, c->y.hi);
		for (double v = 0; v <= c->y.hi * 1.0001; v += s) {
			double y = py(c, v);
			tick_label(c->y.kind, v, lab, sizeof lab);
			buf_printf(b, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", c->l, c->w - c->r, y, y);
			buf_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", c->l - 6, y + 4, lab);
		}
	}
	/* x */
	if (c->x.kind != AX_TURN || c->x.hi > 0) {
		double s = nice_step(c->x.kind, c->x.hi);
		if (c->x.kind == AX_TURN && s < 1)
			s = 1;
		for (double v = 0; v <= c->x.hi * 1.0001; v += s) {
			double x = px(c, v);
			tick_label(c->x.kind, v, lab, sizeof lab);
			buf_printf(b, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", x, x, c->h - c->bt,
				   c->h - c->bt + 5);
			buf_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x,
				   c->h - c->bt + 18, lab);
		}
	}
	buf_printf(b, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", c->l, c->w - c->r,
		   c->h - c->bt, c->h - c->bt);
	buf_printf(b, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", c->l, c->l, c->t,
		   c->h - c->bt);
	buf_printf(b, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		   (c->l + c->w - c->r) / 2, c->h - 8, c->x.label);
	buf_printf(b,
		   "<text class=\"label\" transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
		   (c->t + c->h - c->bt) / 2, c->y.label);
}

/* marker shape k at (x, y) in colour col */
static void marker(struct buf *b, int k, double x, double y, const char *col)
{
	switch (k % 4) {
	case 0: buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>", x, y, col); break;
	case 1: buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"%s\"/>", x - 3.5, y - 3.5, col); break;
	case 2:
		buf_printf(b, "<path d=\"M%.1f %.1fl4 7h-8z\" fill=\"%s\"/>", x, y - 4.5, col);
		break;
	default: buf_printf(b, "<path d=\"M%.1f %.1fl4.5 4.5l-4.5 4.5l-4.5-4.5z\" fill=\"%s\"/>", x, y - 4.5, col);
	}
}

static void fail_mark(struct buf *b, double x, double y, const struct rpt_cfg *c, const char *col)
{
	buf_printf(b, "<g class=\"fail\"><path d=\"M%.1f %.1fl10 10m0 -10l-10 10\" stroke=\"%s\" stroke-width=\"3\"/><title>",
		   x - 5, y - 5, col);
	esc(b, c->name);
	buf_puts(b, ": ");
	esc(b, c->fail.cls);
	buf_printf(b, " at turn %lld, %lld tokens</title></g>\n", (long long)c->fail.turn, (long long)c->fail.depth);
}

static void legend(struct buf *b, const struct rpt_model *m, const char *extra)
{
	buf_puts(b, "<ul class=\"legend\">");
	int si = 0;
	for (size_t i = 0; i < m->ncfg; i++) {
		const struct rpt_cfg *c = &m->cfg[i];
		if (c->hidden)
			continue;
		const char *col = palette[si % NPAL];
		buf_printf(b, "<li><svg width=\"30\" height=\"12\" aria-hidden=\"true\"><line x1=\"0\" x2=\"30\" y1=\"6\" y2=\"6\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"%s\"/>",
			   col, dashes[(si / NPAL) % 3]);
		marker(b, si, 15, 6, col);
		buf_puts(b, "</svg>");
		esc(b, c->name);
		if (c->simulated)
			buf_puts(b, " <span class=\"sim\">sim</span>");
		buf_puts(b, "</li>");
		si++;
	}
	if (extra)
		buf_puts(b, extra);
	buf_puts(b, "</ul>\n");
}

/* One config's line: the median per bucket, a band (or, for a single
 * point, a whisker) from min to max, a marker with its figures per point. */
static void polyline(struct chart *ch, const struct rpt_pt *p, size_t n, int si, const char *name)
{
	struct buf *b = ch->b;
	const char *col = palette[si % NPAL];
	bool spread = false;
	for (size_t i = 0; i < n; i++)
		spread |= p[i].hi > p[i].lo;
	if (spread && n > 1) {
		buf_printf(b, "<path class=\"band\" fill=\"%s\" fill-opacity=\"0.15\" stroke=\"none\" d=\"M", col);
		for (size_t i = 0; i < n; i++)
			buf_printf(b, "%s%.1f %.1f", i ? "L" : "", px(ch, p[i].x), py(ch, p[i].hi));
		for (size_t i = n; i-- > 0;)
			buf_printf(b, "L%.1f %.1f", px(ch, p[i].x), py(ch, p[i].lo));
		buf_puts(b, "Z\"/>\n");
	} else if (spread) {
		buf_printf(b, "<line class=\"band\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n",
			   px(ch, p[0].x), px(ch, p[0].x), py(ch, p[0].hi), py(ch, p[0].lo), col);
	}
	if (n > 1) {
		buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"%s\" points=\"", col,
			   dashes[(si / NPAL) % 3]);
		for (size_t i = 0; i < n; i++)
			buf_printf(b, "%.1f,%.1f ", px(ch, p[i].x), py(ch, p[i].y));
		buf_puts(b, "\"/>\n");
	}
	size_t every = n > 40 ? n / 40 : 1;
	for (size_t i = 0; i < n; i++)
		if (i % every == 0 || i == n - 1) {
			buf_puts(b, "<g>");
			marker(b, si, px(ch, p[i].x), py(ch, p[i].y), col);
			buf_puts(b, "<title>");
			esc(b, name);
			char lx[48], ly[48], lo[48], hi[48];
			tick_label(ch->x.kind, round(p[i].x), lx, sizeof lx);
			if (ch->y.kind == AX_BYTES) {
				rpt_fmt_bytes(p[i].y, ly, sizeof ly);
				rpt_fmt_bytes(p[i].lo, lo, sizeof lo);
				rpt_fmt_bytes(p[i].hi, hi, sizeof hi);
			} else {
				snprintf(ly, sizeof ly, "%.1f", p[i].y);
				snprintf(lo, sizeof lo, "%.1f", p[i].lo);
				snprintf(hi, sizeof hi, "%.1f", p[i].hi);
			}
			buf_printf(b, ": %s %s, median %s (min-max %s-%s, %zu request%s)</title></g>",
				   ch->x.kind == AX_TURN ? "turn" : "depth", lx, ly, lo, hi, p[i].n, p[i].n == 1 ? "" : "s");
		}
	buf_puts(b, "\n");
}

/* TTFT vs depth (log y), decode vs depth, memory vs turn */
static void line_chart(struct buf *b, const struct rpt_model *m, enum rpt_metric k)
{
	size_t nsh = 0;
	struct rpt_pt **ser = calloc(m->ncfg ? m->ncfg : 1, sizeof *ser);
	size_t *cnt = calloc(m->ncfg ? m->ncfg : 1, sizeof *cnt);
	if (!ser || !cnt)
		goto out;
	double xmax = 0, ylo = INFINITY, yhi = 0;
	bool by_turn = k == RM_MEM;
	/* one bucket width for every config, so their points line up */
	for (size_t i = 0; i < m->ncfg; i++)
		for (size_t j = 0; !m->cfg[i].hidden && j < m->cfg[i].n; j++) {
			const struct rpt_req *r = &m->req[m->cfg[i].first + j];
			xmax = fmax(xmax, by_turn ? (double)r->turn : (double)r->depth);
		}
	double width = rpt_bucket_width(xmax, by_turn);
	xmax = 0;
	for (size_t i = 0; i < m->ncfg; i++) {
		const struct rpt_cfg *c = &m->cfg[i];
		if (c->hidden)
			continue;
		long got = rpt_series(m, c, k, by_turn, width, &ser[i]);
		if (got < 0)
			goto out;
		cnt[i] = (size_t)got;
		for (size_t j = 0; j < cnt[i]; j++) {
			xmax = fmax(xmax, ser[i][j].x);
			ylo = fmin(ylo, ser[i][j].lo);
			yhi = fmax(yhi, ser[i][j].hi);
		}
		if (c->fail.found)
			xmax = fmax(xmax, by_turn ? (double)c->fail.turn : (double)c->fail.depth);
		if (k == RM_MEM && c->mem.valid && c->mem.budget > 0)
			yhi = fmax(yhi, (double)c->mem.budget);
		if (k == RM_MEM && c->fail.found && c->fail.mem > 0)
			yhi = fmax(yhi, (double)c->fail.mem);
		nsh += cnt[i] > 0;
	}
	struct chart ch;
	const char *id = k == RM_TTFT ? "chart-ttft" : k == RM_DECODE ? "chart-decode" : "chart-mem";
	char title[400], wl[32];
	if (by_turn)
		snprintf(wl, sizeof wl, "%.0f", width);
	else
		tick_label(AX_TOKENS, width, wl, sizeof wl);
	if (k == RM_MEM)
		snprintf(title, sizeof title,
			 "Memory vs turn: per config, the median over sessions and repeats of every request's memory "
			 "reading %s%s, band: min-max (dashed: budget; X marks a failure)",
			 width > 1 ? "in each bucket of turns " : "at each turn", width > 1 ? wl : "");
	else
		snprintf(title, sizeof title,
			 "%s vs context depth%s: per config, the median over sessions and repeats of the completed warm "
			 "requests in each %s-token depth bucket, band: min-max%s",
			 k == RM_TTFT ? "Warm TTFT" : "Warm decode rate", k == RM_TTFT ? " (log scale)" : "", wl,
			 k == RM_TTFT ? " (X marks a failure)" : "");
	chart_begin(&ch, b, id, title, 760, 340);
	ch.x = (struct axis){0, 1, false, by_turn ? AX_TURN : AX_TOKENS, by_turn ? "turn" : "context depth (tokens)"};
	ch.y = (struct axis){0, 1, k == RM_TTFT, k == RM_TTFT ? AX_MS : k == RM_DECODE ? AX_RATE : AX_BYTES,
			     k == RM_TTFT ? "TTFT (ms, log)" : k == RM_DECODE ? "decode (tok/s)" : "memory (bytes)"};
	axis_fit(&ch.x, 0, xmax);
	axis_fit(&ch.y, ylo, yhi);
	chart_axes(&ch);
	if (!nsh)
		buf_printf(b, "<text class=\"label\" x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">no completed requests</text>",
			   ch.w / 2, ch.h / 2);
	int si = 0;
	for (size_t i = 0; i < m->ncfg; i++) {
		const struct rpt_cfg *c = &m->cfg[i];
		if (c->hidden)
			continue;
		polyline(&ch, ser[i], cnt[i], si, c->name);
		const char *col = palette[si % NPAL];
		if (k == RM_MEM && c->mem.valid && c->mem.budget > 0) {
			double y = py(&ch, (double)c->mem.budget);
			buf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"8 4\"><title>budget of ",
				   ch.l, ch.w - ch.r, y, y, col);
			esc(b, c->name);
			char bb[48];
			rpt_fmt_bytes((double)c->mem.budget, bb, sizeof bb);
			buf_printf(b, ": %s</title></line>\n", bb);
		}
		if (c->fail.found) {
			double fx = by_turn ? (double)c->fail.turn : (double)c->fail.depth;
			double fy;
			if (k == RM_MEM && c->fail.mem > 0)
				fy = py(&ch, (double)c->fail.mem);
			else if (cnt[i])
				fy = py(&ch, ser[i][cnt[i] - 1].y);
			else
				fy = ch.t + 10;
			if (fx >= 0)
				fail_mark(b, px(&ch, fx), fy, c, col);
		}
		si++;
	}
	buf_puts(b, "</svg>\n");
	legend(b, m, k == RM_MEM ? "<li>dashed line: memory budget (memory model)</li>" : NULL);
	buf_puts(b, "</figure>\n");
out:
	for (size_t i = 0; ser && i < m->ncfg; i++)
		free(ser[i]);
	free(ser);
	free(cnt);
}

/* cold vs warm bars per tier, log y */
static void bar_chart(struct buf *b, const struct rpt_model *m)
{
	const char *why;
	double lo = INFINITY, hi = 0;
	for (size_t i = 0; i < m->ncfg; i++) {
		if (m->cfg[i].hidden)
			continue;
		for (int t = 0; t < RPT_NTIERS; t++)
			for (int k = 0; k < 2; k++) {
				struct rpt_stat s = rpt_cell(m, &m->cfg[i], k, t, RM_TTFT, &why);
				if (s.n && s.med > 0) {
					lo = fmin(lo, s.med);
					hi = fmax(hi, s.med);
				}
			}
	}
	double bw = 12, gap = 28;
	double gw = (double)m->nshown * 2 * bw + gap;
	struct chart ch;
	double w = fmax(760, 74 + 16 + RPT_NTIERS * gw);
	chart_begin(&ch, b, "chart-coldwarm", "Cold vs warm TTFT per tier (log scale; solid: cold, light: warm)", w, 340);
	ch.x = (struct axis){0, 1, false, AX_RATE, "tier"};
	ch.y = (struct axis){0, 1, true, AX_MS, "TTFT (ms, log)"};
	axis_fit(&ch.y, lo, hi);
	/* y axis and grid only: the x axis is categorical */
	ch.x.hi = 0;
	ch.x.kind = AX_TURN;
	chart_axes(&ch);
	double plotw = w - ch.l - ch.r, step = plotw / RPT_NTIERS;
	for (int t = 0; t < RPT_NTIERS; t++) {
		double x0 = ch.l + step * t + (step - (gw - gap)) / 2;
		buf_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", ch.l + step * t + step / 2,
			   ch.h - ch.bt + 18, rpt_tier_name[t]);
		int si = 0;
		for (size_t i = 0; i < m->ncfg; i++) {
			const struct rpt_cfg *c = &m->cfg[i];
			if (c->hidden)
				continue;
			for (int k = 0; k < 2; k++) {
				int cache = k == 0 ? RQ_COLD : RQ_WARM;
				struct rpt_stat s = rpt_cell(m, c, cache, t, RM_TTFT, &why);
				double x = x0 + (si * 2 + k) * bw;
				const char *col = palette[si % NPAL];
				if (!s.n || !(s.med > 0)) {
					buf_printf(b, "<text class=\"na\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">&#8211;</text>",
						   x + bw / 2, ch.h - ch.bt - 4);
					continue;
				}
				double y = py(&ch, s.med), y0 = ch.h - ch.bt;
				buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" fill-opacity=\"%s\" stroke=\"%s\"><title>",
					   x + 1, y, bw - 2, fmax(0.5, y0 - y), col, k == 0 ? "1" : "0.35", col);
				esc(b, c->name);
				char v[32];
				rpt_fmt_ms(s.med, v, sizeof v);
				buf_printf(b, ", %s, %s: %s ms (median of %zu)</title></rect>\n", rpt_tier_name[t],
					   k == 0 ? "cold" : "warm", v, s.n);
			}
			si++;
		}
	}
	buf_puts(b, "</svg>\n");
	legend(b, m, "<li>solid bar: cold, light bar: warm; &#8211;: not measured</li>");
	buf_puts(b, "</figure>\n");
}

/* survival: one row per config, one cell per tier */
static void survival(struct buf *b, const struct rpt_model *m)
{
	const char *why;
	buf_puts(b, "<h2>Survival to depth</h2>\n<table class=\"surv\"><thead><tr><th>config</th>");
	for (int t = 0; t < RPT_NTIERS; t++)
		buf_printf(b, "<th>%s</th>", rpt_tier_name[t]);
	buf_puts(b, "</tr></thead><tbody>\n");
	for (size_t i = 0; i < m->ncfg; i++) {
		const struct rpt_cfg *c = &m->cfg[i];
		if (c->hidden)
			continue;
		buf_puts(b, "<tr><th>");
		esc(b, c->name);
		if (c->simulated)
			buf_puts(b, " <span class=\"sim\">sim</span>");
		buf_puts(b, "</th>");
		for (int t = 0; t < RPT_NTIERS; t++) {
			bool have = c->tier[RQ_WARM][t].turn >= 0 || c->tier[RQ_COLD][t].turn >= 0;
			struct rpt_stat w = rpt_cell(m, c, RQ_WARM, t, RM_TTFT, &why);
			const char *why_w = why;
			struct rpt_stat cs = rpt_cell(m, c, RQ_COLD, t, RM_TTFT, &why);
			const char *cls = why_w ? why_w : why;
			if (have && (w.n || cs.n)) {
				buf_puts(b, "<td class=\"ok\">&#10003; ok</td>");
			} else if (have) {
				buf_puts(b, "<td class=\"bad\">&#10007; ");
				esc(b, cls ? cls : "failed");
				buf_puts(b, "</td>");
			} else if (c->fail.found && t > 0 && c->fail.depth > c->max_done_depth &&
				   c->fail.depth < rpt_tier_tokens[t] * 3 / 4) {
				buf_puts(b, "<td class=\"bad\">&#10007; not reached (");
				esc(b, c->fail.cls);
				buf_printf(b, " at %lld)</td>", (long long)c->fail.depth);
			} else {
				buf_puts(b, "<td class=\"na\">n/a</td>");
			}
		}
		buf_puts(b, "</tr>\n");
	}
	buf_puts(b, "</tbody></table>\n<p class=\"note\">&#10003; ok: the tier's turn completed; &#10007;: it failed, or the"
		    " config failed before that depth; n/a: the trace does not reach that depth.</p>\n");
}

static void cell_ms(struct buf *b, struct rpt_stat s, const char *why, void (*f)(double, char *, size_t))
{
	char v[48];
	if (s.n) {
		f(s.med, v, sizeof v);
		buf_printf(b, "<td class=\"n\" title=\"median of %zu\">%s</td>", s.n, v);
	} else if (why) {
		buf_puts(b, "<td class=\"bad\">");
		esc(b, why);
		buf_puts(b, "</td>");
	} else {
		buf_puts(b, "<td class=\"na\">&#8211;</td>");
	}
}

static void summary(struct buf *b, const struct rpt_model *m)
{
	const char *why;
	buf_puts(b, "<h2>Configs</h2>\n<table id=\"ar-configs\" class=\"sum\"><thead><tr><th>config</th><th>backend</th>"
		    "<th>model</th><th>repeats</th><th>warm TTFT baseline (ms)</th><th>32k (ms)</th><th>32k/baseline</th>"
		    "<th>decode baseline (tok/s)</th><th>decode 128k (tok/s)</th><th>peak memory</th><th>projected OOM</th>"
		    "<th>failure point</th></tr></thead><tbody>\n");
	for (size_t i = 0; i < m->ncfg; i++) {
		const struct rpt_cfg *c = &m->cfg[i];
		if (c->hidden)
			continue;
		buf_puts(b, "<tr><th>");
		esc(b, c->name);
		if (c->simulated)
			buf_puts(b, " <span class=\"sim\">sim</span>");
		buf_puts(b, "</th><td>");
		esc(b, c->backend);
		buf_puts(b, "</td><td>");
		esc(b, c->model);
		buf_printf(b, "</td><td class=\"n\">%lld</td>", (long long)c->repeats);
		struct rpt_stat s0 = rpt_cell(m, c, RQ_WARM, 0, RM_TTFT, &why);
		cell_ms(b, s0, why, rpt_fmt_ms);
		struct rpt_stat s1 = rpt_cell(m, c, RQ_WARM, 1, RM_TTFT, &why);
		cell_ms(b, s1, why, rpt_fmt_ms);
		char r[32] = "&#8211;";
		if (s0.n && s1.n && s0.med > 0)
			rpt_fmt_ratio(s1.med / s0.med, r, sizeof r);
		buf_printf(b, "<td class=\"n\">%s</td>", r);
		cell_ms(b, rpt_cell(m, c, RQ_WARM, 0, RM_DECODE, &why), why, rpt_fmt_rate);
		cell_ms(b, rpt_cell(m, c, RQ_WARM, 3, RM_DECODE, &why), why, rpt_fmt_rate);
		char pk[48];
		rpt_fmt_bytes((double)c->peak_mem, pk, sizeof pk);
		buf_printf(b, "<td class=\"n\">%s</td><td class=\"n\">", pk);
		if (c->mem.valid && c->mem.oom_tokens > 0)
			buf_printf(b, "%lld tokens", (long long)c->mem.oom_tokens);
		else
			buf_puts(b, "&#8211;");
		buf_puts(b, "</td>");
		if (c->fail.found) {
			buf_puts(b, "<td class=\"bad\">");
			esc(b, c->fail.cls);
			buf_printf(b, " at turn %lld, %lld tokens", (long long)c->fail.turn, (long long)c->fail.depth);
			if (c->fail.evidence && *c->fail.evidence) {
				buf_puts(b, "<br><small>");
				esc(b, c->fail.evidence);
				buf_puts(b, "</small>");
			}
			buf_puts(b, "</td>");
		} else {
			buf_puts(b, "<td>none</td>");
		}
		buf_puts(b, "</tr>\n");
	}
	buf_puts(b, "</tbody></table>\n");
}

static void inflight(struct buf *b, const struct rpt_model *m)
{
	buf_puts(b, "<h2>Warm TTFT and prefix-cache hit by requests in flight</h2>\n<table class=\"sum\"><thead><tr>"
		    "<th>config</th><th>in flight</th><th>requests</th><th>p50 (ms)</th><th>p90 (ms)</th><th>p99 (ms)</th>"
		    "<th>cache hit</th></tr></thead><tbody>\n");
	for (size_t i = 0; i < m->ncfg; i++) {
		const struct rpt_cfg *c = &m->cfg[i];
		if (c->hidden || !c->n || !c->concurrent)
			continue;
		double *v = malloc(c->n * sizeof *v);
		if (!v)
			return;
		for (int bk = 0; bk < 40; bk++) {
			size_t n = 0;
			for (size_t k = 0; k < c->n; k++) {
				const struct rpt_req *r = &m->req[c->first + k];
				if (r->done && r->cache == RQ_WARM && !isnan(r->ttft) && r->in_flight >= 1 && rpt_inflight_bucket(r->in_flight) == bk)
					v[n++] = r->ttft;
			}
			if (!n)
				continue;
			struct rpt_stat s;
			rpt_stat_of(v, n, &s);
			char lab[48], p[3][32], hit[16];
			rpt_inflight_label(bk, lab, sizeof lab);
			double h = rpt_inflight_hit(m, c, bk);
			snprintf(hit, sizeof hit, isnan(h) ? "-" : "%.1f%%", h * 100);
			rpt_fmt_ms(rpt_percentile(v, n, 50), p[0], sizeof p[0]);
			rpt_fmt_ms(rpt_percentile(v, n, 90), p[1], sizeof p[1]);
			rpt_fmt_ms(rpt_percentile(v, n, 99), p[2], sizeof p[2]);
			buf_puts(b, "<tr><th>");
			esc(b, c->name);
			buf_printf(b, "</th><td class=\"n\">%s</td><td class=\"n\">%zu</td><td class=\"n\">%s</td>"
				      "<td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
				   lab, n, p[0], p[1], p[2], hit);
		}
		free(v);
	}
	buf_puts(b, "</tbody></table>\n");
}

/* the request table's data: columns of rpt_cols shown in the page */
static const char *const table_cols[] = {"config", "session", "turn", "repeat", "cache", "tier",
					 "context_tokens_est", "prompt_tokens", "cached_tokens", "completion_tokens",
					 "ttft_ms", "decode_tps", "prefill_tps", "e2e_ms", "mem_peak_bytes",
					 "in_flight", "outcome", "evidence"};
#define NTCOLS (sizeof table_cols / sizeof table_cols[0])

static int table_data(sqlite3 *db, struct rpt_model *m, struct buf *b, FILE *out, struct ar_err *err)
{
	int rc = -1, idx[NTCOLS];
	for (size_t i = 0; i < NTCOLS; i++)
		idx[i] = rpt_col_find(table_cols[i]);
	buf_puts(b, "{\"cols\":[");
	for (size_t i = 0; i < NTCOLS; i++)
		buf_printf(b, "%s\"%s\"", i ? "," : "", table_cols[i]);
	buf_puts(b, "],\"types\":[");
	for (size_t i = 0; i < NTCOLS; i++) {
		enum rpt_type t = rpt_cols[idx[i]].type;
		buf_printf(b, "%s\"%s\"", i ? "," : "", t == RT_INT || t == RT_REAL ? "n" : "s");
	}
	buf_puts(b, "],\"configs\":{");
	bool first = true;
	for (size_t i = 0; i < m->ncfg; i++) {
		if (m->cfg[i].hidden)
			continue;
		buf_printf(b, "%s\"%lld\":", first ? "" : ",", (long long)m->cfg[i].id);
		rpt_json_str(b, m->cfg[i].name, true);
		first = false;
	}
	buf_puts(b, "},\"rows\":[");
	struct rpt_iter it;
	if (rpt_iter_open(&it, db, m, true, err) < 0)
		return -1;
	size_t k = 0;
	int got;
	while ((got = rpt_iter_next(&it, err)) == 1) {
		sqlite3_stmt *st = it.st;
		buf_puts(b, k ? ",\n[" : "\n[");
		for (size_t i = 0; i < NTCOLS; i++) {
			int c = idx[i];
			if (i)
				buf_putc(b, ',');
			if (i == 0) { /* config: its id, named in "configs" */
				buf_printf(b, "\"%lld\"", (long long)sqlite3_column_int64(st, rpt_col_find("config_id")));
				continue;
			}
			if (rpt_cols[c].type == RT_TIER) {
				char lab[64];
				rpt_tier_label(it.r.tiers, lab, sizeof lab);
				rpt_json_str(b, lab, true);
				continue;
			}
			if (sqlite3_column_type(st, c) == SQLITE_NULL) {
				buf_puts(b, "null");
			} else if (rpt_cols[c].type == RT_INT) {
				buf_printf(b, "%lld", (long long)sqlite3_column_int64(st, c));
			} else if (rpt_cols[c].type == RT_REAL) {
				double v = sqlite3_column_double(st, c);
				buf_printf(b, "%.*f", v < 10 ? 2 : 1, v);
			} else {
				const char *sv = (const char *)sqlite3_column_text(st, c);
				char cut[401];
				if (sv && strlen(sv) > 400) { /* evidence: the table shows its start */
					memcpy(cut, sv, 400);
					size_t l = 400;
					while (l && ((unsigned char)cut[l - 1] & 0xC0) == 0x80)
						l--; /* do not split a UTF-8 sequence */
					if (l && (unsigned char)cut[l - 1] >= 0xC0)
						l--;
					cut[l] = 0;
					sv = cut;
				}
				rpt_json_str(b, sv, true);
			}
		}
		buf_putc(b, ']');
		k++;
		if (b->len > (1u << 20)) {
			if (fwrite(b->data, 1, b->len, out) != b->len) {
				ar_err_set(err, AR_EIO, "cannot write the report");
				goto out;
			}
			buf_reset(b);
		}
	}
	if (got < 0)
		goto out;
	buf_puts(b, "]}");
	rc = 0;
out:
	rpt_iter_close(&it);
	return rc;
}

static const char css[] =
	":root{--bg:#fff;--fg:#1a1a1a;--muted:#666;--grid:#e3e3e3;--ok:#0072B2;--bad:#D55E00;--row:#f5f5f5;color-scheme:light dark}\n"
	"@media (prefers-color-scheme:dark){:root{--bg:#16181c;--fg:#e8e8e8;--muted:#a0a0a0;--grid:#33363c;--ok:#56B4E9;--bad:#E69F00;--row:#1f2227}}\n"
	"body{background:var(--bg);color:var(--fg);font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:1400px}\n"
	"h1{font-size:22px}h2{font-size:17px;margin-top:28px}figure{margin:20px 0;break-inside:avoid}figcaption{font-weight:600;margin-bottom:4px}\n"
	"svg.chart{width:100%;max-width:900px;height:auto;font-size:12px}.grid{stroke:var(--grid)}.axis{stroke:var(--fg)}\n"
	".tick,.label{fill:var(--fg)}.label{font-weight:600}text.na{fill:var(--muted)}\n"
	".legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:6px 18px}.legend svg{vertical-align:middle;margin-right:4px}\n"
	"table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 8px;border-bottom:1px solid var(--grid);text-align:left;vertical-align:top}\n"
	"td.n{text-align:right;font-variant-numeric:tabular-nums}td.bad,.surv td.bad{color:var(--bad);font-weight:600}td.ok{color:var(--ok);font-weight:600}\n"
	"td.na{color:var(--muted)}.sim{font-size:11px;border:1px solid var(--muted);border-radius:3px;padding:0 3px;color:var(--muted)}\n"
	"#ar-table th{cursor:pointer;position:sticky;top:0;background:var(--bg)}#ar-table th[aria-sort=ascending]::after{content:' \\25B2'}\n"
	"#ar-table th[aria-sort=descending]::after{content:' \\25BC'}#ar-table tbody tr:nth-child(even){background:var(--row)}\n"
	"#ar-table td{max-width:28em;overflow-wrap:anywhere}.note,.prov{color:var(--muted)}.controls{margin:8px 0;display:flex;gap:10px;align-items:center}\n"
	"input,button{font:inherit;color:var(--fg);background:var(--bg);border:1px solid var(--muted);border-radius:4px;padding:2px 8px}\n"
	"@media print{body{background:#fff;color:#000;margin:0}.controls{display:none}#ar-table th{position:static}}\n";

int report_html(sqlite3 *db, struct rpt_model *m, FILE *out, struct ar_err *err)
{
	struct buf b = BUF_INIT;
	int rc = -1;
	buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
		     "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
		     "script-src 'unsafe-inline'\">\n<meta name=\"viewport\" content=\"width=device-width\">\n"
		     "<title>agentreplay report</title>\n<style>\n");
	buf_puts(&b, css);
	buf_printf(&b, "</style>\n<script>%s</script>\n</head><body>\n<h1>agentreplay report</h1>\n<p class=\"prov\">store ",
		   rpt_js_head);
	esc(&b, m->opts->source);
	buf_printf(&b, " &middot; %zu run%s, %zu config%s, %zu request%s", m->nrun, m->nrun == 1 ? "" : "s", m->nshown,
		   m->nshown == 1 ? "" : "s", m->nreq, m->nreq == 1 ? "" : "s");
	if (m->opts->filter && *m->opts->filter) {
		buf_puts(&b, " &middot; filter <code>");
		esc(&b, m->opts->filter);
		buf_puts(&b, "</code>");
	}
	buf_puts(&b, "</p>\n<ul class=\"prov\">");
	for (size_t i = 0; i < m->nrun; i++) {
		const struct rpt_run *r = &m->run[i];
		buf_printf(&b, "<li>run %lld, ", (long long)r->id);
		esc(&b, r->started);
		buf_puts(&b, ", ");
		esc(&b, r->status);
		buf_puts(&b, ", agentreplay ");
		esc(&b, r->tool_version);
		buf_puts(&b, ": <code>");
		esc(&b, r->command_line);
		buf_puts(&b, "</code></li>");
	}
	buf_puts(&b, "</ul>\n");
	if (!m->nshown) {
		buf_puts(&b, m->opts->filter ? "<p>No config has requests matching the filter.</p>\n"
					     : "<p>The store holds no configs.</p>\n");
	} else {
		summary(&b, m);
		buf_puts(&b, "<p class=\"note\"><span class=\"sim\">sim</span>: simulated by the sim backend (modelled, not measured)."
			     " Tiers: baseline is the shallowest turn; 32k/64k/128k is the turn whose depth is nearest"
			     " 32768/65536/131072 tokens within &plusmn;25%, for cold and warm requests separately.</p>\n");
		buf_puts(&b, "<h2>Charts</h2>\n");
		line_chart(&b, m, RM_TTFT);
		bar_chart(&b, m);
		line_chart(&b, m, RM_DECODE);
		line_chart(&b, m, RM_MEM);
		survival(&b, m);
		if (m->concurrent)
			inflight(&b, m);
	}
	buf_puts(&b, "<h2>Requests</h2>\n<div class=\"controls\"><input id=\"ar-filter\" type=\"search\" "
		     "placeholder=\"filter rows (any column)\" aria-label=\"filter rows\"><button id=\"ar-prev\">&#8249; prev"
		     "</button><button id=\"ar-next\">next &#8250;</button><span id=\"ar-info\"></span></div>\n"
		     "<table id=\"ar-table\"><thead><tr>");
	for (size_t i = 0; i < NTCOLS; i++)
		buf_printf(&b, "<th aria-sort=\"none\" title=\"sort\">%s</th>", table_cols[i]);
	buf_puts(&b, "</tr></thead><tbody id=\"ar-tbody\"></tbody></table>\n"
		     "<script id=\"ar-data\" type=\"application/json\">");
	if (table_data(db, m, &b, out, err) < 0)
		goto out;
	buf_puts(&b, "</script>\n<script>\n");
	buf_puts(&b, rpt_js_table);
	buf_puts(&b, "</script>\n</body></html>\n");
	if (!b.data || fwrite(b.data, 1, b.len, out) != b.len) {
		ar_err_set(err, AR_EIO, "cannot write the report");
		goto out;
	}
	rc = 0;
out:
	buf_free(&b);
	return rc;
}
