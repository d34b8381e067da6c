/* sim_calib: the simulator against measurements.
 *
 * 1. The published points of shared/calibration/README.md, each predicted
 *    by running the same protocol through the model (a request, then the
 *    identical request again for warm figures). Where the README leaves the
 *    configuration implicit, the interpretation is written next to the point
 *    (and in replay/sim/README.md).
 * 2. Fitting a hardware profile (cpu-2core) to a real llama-server's
 *    prefill and decode rates: Nelder-Mead over log(compute), log(attention
 *    rate), log(bandwidth), log(per-layer overhead) with the engine's
 *    efficiency factors held fixed, and a weak prior towards the starting
 *    profile so points that do not constrain a parameter leave it alone.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"
#include "units.h"

/* ---- the published points ------------------------------------------------ */

enum metric { DECODE_TPS, WARM_TTFT, COLD_TTFT };

struct pub {
	const char *spec;
	const char *prompt;
	int64_t tokens;
	enum metric what;
	double value;
};

#define M3_MLX4 "hw=m3-max-64g,engine=mlx-lm,quant=mlx-4bit,kv=f16,model="
static const struct pub pubs[] = {
	/* mlx-lm 0.31.2, MLX 4-bit, f16 KV, short prompt */
	{M3_MLX4 "gemma-4-e2b", "short (23)", 23, DECODE_TPS, 110.2},
	{M3_MLX4 "qwen3.5-35b-a3b", "short (23)", 23, DECODE_TPS, 71.1},
	{M3_MLX4 "gemma-4-26b-a4b", "short (23)", 23, DECODE_TPS, 65.0},
	{M3_MLX4 "gemma-4-e4b", "short (23)", 23, DECODE_TPS, 60.1},
	{M3_MLX4 "gemma-4-e2b", "short (23)", 23, WARM_TTFT, 187},
	{M3_MLX4 "qwen3.5-35b-a3b", "short (23)", 23, WARM_TTFT, 210},
	{M3_MLX4 "gemma-4-26b-a4b", "short (23)", 23, WARM_TTFT, 251},
	{M3_MLX4 "gemma-4-e4b", "short (23)", 23, WARM_TTFT, 213},
	/* qwen3.6-27b by prompt; TTFT with the prefix cached by the previous identical request */
	{M3_MLX4 "qwen3.6-27b", "short (23)", 23, DECODE_TPS, 20.3},
	{M3_MLX4 "qwen3.6-27b", "code (751)", 751, DECODE_TPS, 20.3},
	{M3_MLX4 "qwen3.6-27b", "32k", 32768, DECODE_TPS, 17.3},
	{M3_MLX4 "qwen3.6-27b", "64k", 65536, DECODE_TPS, 15.0},
	{M3_MLX4 "qwen3.6-27b", "short (23)", 23, WARM_TTFT, 249},
	{M3_MLX4 "qwen3.6-27b", "code (751)", 751, WARM_TTFT, 249},
	{M3_MLX4 "qwen3.6-27b", "32k", 32768, WARM_TTFT, 304},
	{M3_MLX4 "qwen3.6-27b", "64k", 65536, WARM_TTFT, 454},
	/* the same model in MLX 8-bit: about 12 tok/s */
	{"hw=m3-max-64g,engine=mlx-lm,quant=mlx-8bit,kv=f16,model=qwen3.6-27b", "short (23)", 23, DECODE_TPS, 12.0},
	/* prefix caching, same machine, "a request at deep context": read as
	 * Ollama (the engine whose warm TTFT is that low) with gemma-4-e2b (the
	 * model of the engine comparison below, whose warm TTFT there is 80 ms at
	 * 32k) at 64k context */
	{"hw=m3-max-64g,engine=ollama,quant=q4_k_m,kv=f16,model=gemma-4-e2b", "64k", 65536, COLD_TTFT, 57000},
	{"hw=m3-max-64g,engine=ollama,quant=q4_k_m,kv=f16,model=gemma-4-e2b", "64k", 65536, WARM_TTFT, 91},
	/* TTFT short vs 32k by engine: read as gemma-4-e2b (mlx-lm's 178 ms
	 * matches its 187 ms above), second identical request */
	{M3_MLX4 "gemma-4-e2b", "short (23)", 23, WARM_TTFT, 178},
	{M3_MLX4 "gemma-4-e2b", "32k", 32768, WARM_TTFT, 286},
	{"hw=m3-max-64g,engine=ollama,quant=q4_k_m,kv=f16,model=gemma-4-e2b", "short (23)", 23, WARM_TTFT, 59},
	{"hw=m3-max-64g,engine=ollama,quant=q4_k_m,kv=f16,model=gemma-4-e2b", "32k", 32768, WARM_TTFT, 80},
	{"hw=m3-max-64g,engine=vllm-mlx,quant=mlx-4bit,kv=f16,model=gemma-4-e2b", "short (23)", 23, WARM_TTFT, 148},
	{"hw=m3-max-64g,engine=vllm-mlx,quant=mlx-4bit,kv=f16,model=gemma-4-e2b", "32k", 32768, WARM_TTFT, 27200},
};
#define NPUBS (sizeof pubs / sizeof pubs[0])

static const char *metric_name(enum metric m)
{
	return m == DECODE_TPS ? "decode tok/s" : m == WARM_TTFT ? "warm TTFT ms" : "cold TTFT ms";
}

/* The measurement protocol: the prompt, then the identical prompt again. */
static int measure(struct sim *s, int64_t tokens, enum metric what, double *out, struct ar_err *err)
{
	struct sim_prompt p;
	struct sim_result r1, r2;
	sim_prompt_init(&p);
	char text[64];
	snprintf(text, sizeof text, "calibration prompt of %" PRId64 " tokens", tokens);
	int rc = -1;
	if (sim_prompt_add_raw(&p, text, strlen(text), tokens) < 0) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	sim_prompt_end(&p);
	sim_reset_cache(s);
	if (sim_request(s, &p, 256, &r1, err) < 0 || sim_request(s, &p, 256, &r2, err) < 0)
		goto out;
	if (strcmp(r1.outcome, "ok") || strcmp(r2.outcome, "ok")) {
		ar_err_set(err, AR_EINVAL, "calibration config '%s' fails: %s", sim_describe(s), r2.evidence);
		goto out;
	}
	*out = what == DECODE_TPS ? r2.decode_tps : what == WARM_TTFT ? r2.ttft_ms : r1.ttft_cold_ms;
	rc = 0;
out:
	sim_prompt_free(&p);
	return rc;
}

int sim_calib_published(struct sim_catalog *cat, struct sim_calib_row **rows, struct ar_err *err)
{
	*rows = calloc(NPUBS, sizeof **rows);
	if (!*rows)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	for (size_t i = 0; i < NPUBS; i++) {
		struct sim *s = NULL;
		double v = 0;
		if (sim_new_in(&s, cat, pubs[i].spec, err) < 0 || measure(s, pubs[i].tokens, pubs[i].what, &v, err) < 0) {
			sim_free(s);
			free(*rows);
			*rows = NULL;
			return -1;
		}
		sim_free(s);
		struct sim_calib_row *r = &(*rows)[i];
		r->what = metric_name(pubs[i].what);
		r->config = pubs[i].spec;
		r->prompt = pubs[i].prompt;
		r->published = pubs[i].value;
		r->predicted = v;
		r->error = v / pubs[i].value - 1;
	}
	return (int)NPUBS;
}

/* ---- fitting a hardware profile to measured rates -------------------------- */

int sim_calib_point_parse(const char *str, struct sim_calib_point *pt, struct ar_err *err)
{
	memset(pt, 0, sizeof *pt);
	char kind[8], toks[32], depth[32], rate[48];
	const char *colon = strchr(str, ':'), *at = strchr(str, '@'), *eq = strchr(str, '=');
	if (!colon || !at || !eq || !(colon < at && at < eq) || (size_t)(colon - str) >= sizeof kind ||
	    (size_t)(at - colon - 1) >= sizeof toks || (size_t)(eq - at - 1) >= sizeof depth ||
	    strcspn(eq + 1, ",") >= sizeof rate || strlen(eq + 1) >= sizeof pt->spec)
		return ar_err_set(err, AR_EINVAL, "'%s': expected pp:TOKENS@DEPTH=TOK_PER_S or tg:TOKENS@DEPTH=TOK_PER_S",
				  str);
	snprintf(kind, sizeof kind, "%.*s", (int)(colon - str), str);
	snprintf(toks, sizeof toks, "%.*s", (int)(at - colon - 1), colon + 1);
	snprintf(depth, sizeof depth, "%.*s", (int)(eq - at - 1), at + 1);
	snprintf(rate, sizeof rate, "%s", eq + 1);
	char *comma = strchr(rate, ',');
	if (comma) {
		snprintf(pt->spec, sizeof pt->spec, "%s", strchr(eq + 1, ',') + 1);
		*comma = 0;
	}
	if (!strcmp(kind, "pp"))
		pt->kind = 'p';
	else if (!strcmp(kind, "tg"))
		pt->kind = 'd';
	else
		return ar_err_set(err, AR_EINVAL, "'%s': '%s' is neither pp (prefill) nor tg (decode)", str, kind);
	uint64_t t, d;
	struct ar_err e2 = {0};
	if (units_parse_tokens(toks, &t, &e2) < 0 || units_parse_tokens(depth, &d, &e2) < 0 ||
	    units_parse_real(rate, &pt->tps, &e2) < 0)
		return ar_err_set(err, AR_EINVAL, "'%s': %s", str, e2.msg);
	if (t < 1 || t > (1u << 30) || d > (1ull << 32) || !(pt->tps > 0) || pt->tps > 1e9)
		return ar_err_set(err, AR_EINVAL, "'%s': tokens must be >= 1 and the rate positive", str);
	pt->tokens = (int64_t)t;
	pt->depth = (int64_t)d;
	return 0;
}

/* Predicted rate of a point (what llama-bench / llama-server timings report). */
static double point_rate(const struct sim *s, const struct sim_calib_point *pt)
{
	if (pt->kind == 'p')
		return (double)pt->tokens / (sim_prefill_ms(s, pt->tokens, pt->depth) / 1e3);
	double p50, p99;
	/* g tokens at depths d..d+g-1: the decode of g+1 tokens after a prompt of d */
	double ms = sim_decode_ms(s, pt->depth, pt->tokens + 1, &p50, &p99);
	return (double)pt->tokens / (ms / 1e3);
}

enum { FP_LIN, FP_ATT, FP_ATTD, FP_BW, FP_LAYER, FP_N };

struct fitctx {
	struct sim *s;
	struct sim **ps; /* the sim of each point */
	struct sim_hw hw;
	const struct sim_hw *orig;
	enum sim_prec prec;
	const struct sim_calib_point *pts;
	size_t n;
	double x0[FP_N];
};

static void apply(struct fitctx *f, const double *x)
{
	f->hw = *f->orig;
	double lin = exp(x[FP_LIN]);
	for (int p = 0; p < PREC_N; p++)
		if (f->orig->flops[p] > 0)
			f->hw.flops[p] = f->orig->flops[p] * lin / f->orig->flops[f->prec];
	f->hw.flops[f->prec] = lin;
	f->hw.attention_flops = exp(x[FP_ATT]);
	f->hw.decode_attention_flops = exp(x[FP_ATTD]);
	f->hw.bandwidth = exp(x[FP_BW]);
	f->hw.layer_overhead = exp(x[FP_LAYER]);
	f->s->hw = &f->hw;
	sim_model_derive(f->s);
	for (size_t i = 0; i < f->n; i++)
		if (f->ps[i] != f->s) {
			f->ps[i]->hw = &f->hw;
			sim_model_derive(f->ps[i]);
		}
}

static double cost(struct fitctx *f, const double *x)
{
	apply(f, x);
	double c = 0;
	for (size_t i = 0; i < f->n; i++) {
		double r = point_rate(f->ps[i], &f->pts[i]);
		double e = log(r / f->pts[i].tps);
		c += e * e;
	}
	for (int k = 0; k < FP_N; k++) /* weak prior: unconstrained parameters stay put */
		c += 1e-4 * (x[k] - f->x0[k]) * (x[k] - f->x0[k]);
	return c;
}

/* Pattern search in log space: each parameter tried up and down by the
 * step, the step halved when nothing improves. The max() in the model makes
 * the cost flat in some directions, which simplex methods misread; trying
 * both directions with large first steps, from a few starts, does not. */
static double pattern_search(struct fitctx *f, double *x)
{
	double best = cost(f, x), step = 2.0;
	while (step > 1e-5) {
		bool improved = false;
		for (int k = 0; k < FP_N; k++)
			for (int dir = -1; dir <= 1; dir += 2) {
				double keep = x[k];
				x[k] += dir * step;
				double c = cost(f, x);
				if (c < best - 1e-15) {
					best = c;
					improved = true;
				} else {
					x[k] = keep;
				}
			}
		if (!improved)
			step /= 2;
	}
	return best;
}

static void fit(struct fitctx *f, double *x)
{
	static const double starts[][FP_N] = {{0, 0, 0, 0, 0}, {0, 0, -2.3, 0, 0}, {0, 0, -4.6, 0, 1}, {-1, -1, -3, -0.5, 2}};
	double bestx[FP_N], best = INFINITY;
	for (size_t s = 0; s < sizeof starts / sizeof *starts; s++) {
		double y[FP_N];
		for (int k = 0; k < FP_N; k++)
			y[k] = f->x0[k] + starts[s][k];
		double c = pattern_search(f, y);
		if (c < best) {
			best = c;
			memcpy(bestx, y, sizeof y);
		}
	}
	memcpy(x, bestx, sizeof bestx);
}

static void yaml_str(struct buf *b, const char *key, const char *v)
{
	buf_printf(b, "%s: \"", key);
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_putc(b, '\\');
		if (*p == '\n')
			buf_puts(b, "\\n");
		else
			buf_putc(b, *p);
	}
	buf_puts(b, "\"\n");
}

int sim_calib_fit_hw(struct sim_catalog *cat, const char *spec, const char *id, const struct sim_calib_point *pts,
		     size_t n, struct buf *yaml, struct sim_calib_row **rows, struct ar_err *err)
{
	struct sim *s = NULL;
	struct buf notes = BUF_INIT, src = BUF_INIT;
	int rc = -1;
	if (rows)
		*rows = NULL;
	if (!n)
		return ar_err_set(err, AR_EINVAL, "calibrate: no measured points");
	struct sim **ps = calloc(n, sizeof *ps);
	if (!ps)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	if (sim_new_in(&s, cat, spec, err) < 0) {
		free(ps);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!pts[i].spec[0]) {
			ps[i] = s;
			continue;
		}
		char *m = sim_spec_merge(spec, pts[i].spec);
		int r2 = m ? sim_new_in(&ps[i], s->cat, m, err) : ar_err_set(err, AR_ENOMEM, "out of memory");
		free(m);
		if (r2 < 0)
			goto out;
		if (strcmp(ps[i]->hw->id, s->hw->id)) {
			ar_err_set(err, AR_EINVAL, "calibrate: point %zu names another hardware profile", i + 1);
			goto out;
		}
	}
	struct fitctx f = {.s = s, .ps = ps, .orig = s->hw, .prec = s->q->prec, .pts = pts, .n = n};
	if (!(f.orig->flops[f.prec] > 0))
		f.prec = PREC_FP16;
	double x[FP_N];
	x[FP_LIN] = log(f.orig->flops[f.prec]);
	x[FP_ATT] = log(f.orig->attention_flops > 0 ? f.orig->attention_flops : f.orig->flops[PREC_FP16]);
	x[FP_ATTD] = log(f.orig->decode_attention_flops > 0 ? f.orig->decode_attention_flops : exp(x[FP_ATT]));
	x[FP_BW] = log(f.orig->bandwidth);
	x[FP_LAYER] = log(s->t_layer > 0 ? s->t_layer : 1e-6);
	memcpy(f.x0, x, sizeof x);
	fit(&f, x);
	apply(&f, x);
	struct sim_calib_row *rr = calloc(n, sizeof *rr);
	if (!rr) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	buf_printf(&notes, "Fitted to %zu measured point%s with engine %s and model %s (%s): ", n, n == 1 ? "" : "s",
		   s->e->id, s->m->id, s->q->id);
	buf_printf(&src, "agentreplay sim calibrate from a real llama-server's measured rates:");
	for (size_t i = 0; i < n; i++) {
		double pr = point_rate(ps[i], &pts[i]);
		rr[i].what = pts[i].kind == 'p' ? "prefill tok/s" : "decode tok/s";
		rr[i].prompt = "";
		rr[i].published = pts[i].tps;
		rr[i].predicted = pr;
		rr[i].error = pr / pts[i].tps - 1;
		rr[i].config = pts[i].spec[0] ? pts[i].spec : spec;
		buf_printf(&notes, "%s%s:%" PRId64 "@%" PRId64 "%s%s measured %.1f, model %.1f (%+.1f%%)", i ? "; " : "",
			   pts[i].kind == 'p' ? "pp" : "tg", pts[i].tokens, pts[i].depth, pts[i].spec[0] ? " " : "",
			   pts[i].spec, pts[i].tps, pr, rr[i].error * 100);
		buf_printf(&src, " %s:%" PRId64 "@%" PRId64 "=%.1f%s%s", pts[i].kind == 'p' ? "pp" : "tg", pts[i].tokens,
			   pts[i].depth, pts[i].tps, pts[i].spec[0] ? "," : "", pts[i].spec);
	}
	buf_printf(&notes, ". Rates are effective (what the engine's kernels reach on this host divided by its "
			   "efficiency factors), not datasheet peaks.");
	const struct sim_hw *h = &f.hw;
	buf_printf(yaml, "# Hardware profile for the agentreplay simulated backend, fitted by 'agentreplay sim calibrate'.\n");
	buf_printf(yaml, "id: %s\n", id);
	yaml_str(yaml, "name", f.orig->name);
	buf_printf(yaml, "kind: %s\n", h->kind);
	buf_printf(yaml, "memory_gib: %.6g\n", h->memory / SIM_GIB);
	buf_printf(yaml, "usable_fraction: %.6g\n", h->usable_fraction);
	buf_printf(yaml, "unified_memory: %s\n", h->unified ? "true" : "false");
	buf_printf(yaml, "bandwidth_gbs: %.6g\n", h->bandwidth / 1e9);
	buf_printf(yaml, "compute_tflops:\n");
	for (int p = 0; p < PREC_N; p++)
		if (h->flops[p] > 0)
			buf_printf(yaml, "  %s: %.6g\n", sim_prec_name((enum sim_prec)p), h->flops[p] / 1e12);
	bool any_eff = false;
	for (int p = 0; p < PREC_N; p++)
		any_eff |= h->flops[p] > 0 && h->flops_eff[p] != 1;
	if (any_eff) {
		buf_printf(yaml, "compute_efficiency:\n");
		for (int p = 0; p < PREC_N; p++)
			if (h->flops[p] > 0 && h->flops_eff[p] != 1)
				buf_printf(yaml, "  %s: %.6g\n", sim_prec_name((enum sim_prec)p), h->flops_eff[p]);
	}
	buf_printf(yaml, "attention_tflops: %.6g\n", h->attention_flops / 1e12);
	buf_printf(yaml, "decode_attention_tflops: %.6g\n", h->decode_attention_flops / 1e12);
	buf_printf(yaml, "layer_overhead_us: %.6g\n", h->layer_overhead * 1e6);
	buf_printf(yaml, "request_overhead_ms: %.6g\n", h->request_overhead * 1e3);
	if (h->driver_overhead > 0)
		buf_printf(yaml, "driver_overhead_gib: %.6g\n", h->driver_overhead / SIM_GIB);
	buf_printf(yaml, "estimated: false\n");
	yaml_str(yaml, "source", src.data);
	yaml_str(yaml, "notes", notes.data);
	if (rows) {
		*rows = rr;
		rr = NULL;
	}
	free(rr);
	rc = 0;
out:
	buf_free(&notes);
	buf_free(&src);
	for (size_t i = 0; i < n; i++)
		if (ps[i] != s)
			sim_free(ps[i]);
	free(ps);
	sim_free(s);
	return rc;
}
