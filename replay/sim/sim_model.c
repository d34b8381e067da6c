/* sim_model: the performance arithmetic of the simulator.
 *
 * Units: bytes, FLOP, FLOP/s, bytes/s, seconds inside; the exported
 * *_ms functions return milliseconds. The equations (README.md here):
 *
 *   weights in memory      W   = params_total x bits/8
 *   read per decode token  Wd  = (params_active - params_embedding) x bits/8
 *   touched by m tokens    W(m)= Wd - k.we + E.we.(1 - (1 - k/E)^m)   (MoE: E experts, k active,
 *                                we = one expert's bytes = (total - active)/(E - k) x bits/8)
 *   KV bytes of a sequence of t tokens
 *                          kv(t) = kv_tok.t + swa_tok.min(t, window) + state
 *   linear FLOPs per token  F  = 2 (params_active - params_embedding - vocab.hidden)
 *                               + linear_layers x linear_state_bytes    (head: last token only)
 *   attention FLOPs of m queries after d cached tokens
 *                          A(m,d) = 4.heads.head_dim.kv_layers (m.d + m(m+1)/2)
 *                                 + 4.heads.swa_head_dim.swa_layers . m . min(d + m/2, window)
 *   a forward pass of m tokens at depth d (prefill chunk, or decode m=1)
 *                          t = max(F.m.(1+dq)/(C.e_pf) + A(m,d).(1+kq)/(Ca.e_att),
 *                                  (W(m) + kv(d+m)) / (BW.e_bw))
 *                              + layers . t_layer
 *   decode (m = 1)          t = max(F.(1+dq)/(C.e_pf) + A(1,d).(1+kd)/(Cd.e_attd),
 *                                  (Wd + kv(d).(1+kd)) / (BW.e_bw)) + layers . t_layer
 *   prefill(n, d)          = sum of chunk passes (engine chunk size) + head
 *   decode                 = sum over generated tokens of the m=1 pass at the growing depth
 *
 * C is the hardware's rate at the quantization's compute precision (falling
 * back to what it has), Ca its attention rate (Cd: one query against the
 * cache, which on CPUs is far below the batched rate), BW its bandwidth; e_* the
 * engine's efficiency factors for the model's class (moe when it has
 * experts, else dense or hybrid); dq the quant's dequantization overhead;
 * kq, kd the KV type's prefill/decode overheads.
 */
#include <math.h>
#include <string.h>

#include "sim_int.h"

static double rate_for(const struct sim_hw *hw, enum sim_prec p, bool *fallback)
{
	/* the best precision the hardware has, in the order kernels fall back */
	static const enum sim_prec chain[PREC_N][4] = {
		[PREC_FP16] = {PREC_FP16, PREC_BF16, PREC_FP16, PREC_FP16},
		[PREC_BF16] = {PREC_BF16, PREC_FP16, PREC_BF16, PREC_BF16},
		[PREC_INT8] = {PREC_INT8, PREC_FP16, PREC_BF16, PREC_FP16},
		[PREC_FP8] = {PREC_FP8, PREC_BF16, PREC_FP16, PREC_FP16},
		[PREC_FP4] = {PREC_FP4, PREC_FP8, PREC_BF16, PREC_FP16},
	};
	*fallback = false;
	for (int i = 0; i < 4; i++) {
		double r = hw->flops[chain[p][i]] * hw->flops_eff[chain[p][i]];
		if (r > 0) {
			*fallback = chain[p][i] != p;
			return r;
		}
	}
	*fallback = true;
	return hw->flops[PREC_FP16] * hw->flops_eff[PREC_FP16];
}

void sim_model_derive(struct sim *s)
{
	const struct sim_model *m = s->m;
	const struct sim_quant *q = s->q;
	double B = q->bits / 8;
	s->cls = m->experts > 0 ? CLS_MOE : m->kind;
	s->stateful = m->linear_layers > 0 || m->swa_layers > 0;
	double read = m->params_active - m->params_embedding;
	double head = (double)m->vocab * (double)m->hidden;
	if (head > 0.9 * read)
		head = 0.9 * read;
	double pe = 0, E = (double)m->experts, k = (double)m->experts_active;
	if (E > k && k > 0)
		pe = (m->params_total - m->params_active) / (E - k);
	if (k * pe > read)
		pe = read / k;
	s->w_mem = m->params_total * B;
	s->w_expert = pe * B;
	s->w_decode = read * B;
	s->w_dense = (read - k * pe) * B;
	s->f_body = 2 * (read - head) + (double)m->linear_layers * m->linear_state_bytes;
	s->f_head = 2 * head;
	s->f_att = 4.0 * (double)(m->heads * m->head_dim * m->kv_layers);
	s->f_swa = 4.0 * (double)(m->heads * m->swa_head_dim * m->swa_layers);
	double kvB = s->kv->bits / 8;
	s->kv_tok = 2.0 * (double)(m->kv_layers * m->kv_heads * m->head_dim) * kvB;
	s->swa_tok = 2.0 * (double)(m->swa_layers * m->swa_kv_heads * m->swa_head_dim) * kvB;
	s->state = (double)m->linear_layers * m->linear_state_bytes;
	bool fb;
	s->c_lin = rate_for(s->hw, q->prec, &fb);
	s->c_att = s->hw->attention_flops > 0 ? s->hw->attention_flops : s->hw->flops[PREC_FP16];
	s->c_attd = s->hw->decode_attention_flops > 0 ? s->hw->decode_attention_flops : s->c_att;
	s->bw = s->hw->bandwidth;
	s->e_pf = s->e->eff_prefill[s->cls];
	s->e_att = s->e->eff_attention;
	s->e_attd = s->e->eff_decode_attention;
	s->e_bw = s->e->eff_decode[s->cls];
	s->t_layer = s->hw->layer_overhead >= 0 ? s->hw->layer_overhead : s->e->layer_overhead;
	s->overhead_bytes = s->e->runtime_overhead + s->hw->driver_overhead;
}

static double kvbytes(const struct sim *s, double t)
{
	double w = (double)s->m->window;
	return s->kv_tok * t + s->swa_tok * (t < w ? t : w) + s->state;
}

int64_t sim_seq_bytes(const struct sim *s, int64_t n) { return (int64_t)ceil(kvbytes(s, (double)n)); }

double sim_weights_touched(const struct sim *s, int64_t m)
{
	if (!s->w_expert)
		return s->w_decode;
	double E = (double)s->m->experts, k = (double)s->m->experts_active;
	double frac = 1 - pow(1 - k / E, (double)m);
	return s->w_dense + E * s->w_expert * frac;
}

double sim_attn_flops(const struct sim *s, int64_t m, int64_t d)
{
	double M = (double)m, D = (double)d, w = (double)s->m->window;
	double sw = D + M / 2;
	return s->f_att * (M * D + M * (M + 1) / 2) + s->f_swa * M * (sw < w ? sw : w);
}

/* sum_{j=0}^{n-1} max(a + b j, c + d j) */
static double sum_max_affine(double a, double b, double c, double d, double n)
{
	if (n <= 0)
		return 0;
	double lo = 0, hi = n; /* [lo, hi) */
	double S1, S2;
	/* f(j) = (a - c) + (b - d) j; where f >= 0 the first line is the max */
	double f0 = a - c, fs = b - d;
	double x; /* first integer j where the sign of f changes */
	if (fs == 0) {
		x = f0 >= 0 ? n : 0; /* first is max everywhere, or nowhere */
		if (f0 >= 0)
			return n * a + b * n * (n - 1) / 2;
		return n * c + d * n * (n - 1) / 2;
	}
	double root = -f0 / fs;
	x = ceil(root);
	if (x < lo)
		x = lo;
	if (x > hi)
		x = hi;
	/* pieces [0, x) and [x, n) */
	double p1 = x, p2 = n - x;
	bool first_max_before = fs < 0; /* f decreasing: f >= 0 before the root */
	double A1 = first_max_before ? a : c, B1 = first_max_before ? b : d;
	double A2 = first_max_before ? c : a, B2 = first_max_before ? d : b;
	S1 = p1 * A1 + B1 * p1 * (p1 - 1) / 2;
	S2 = p2 * A2 + B2 * (x * p2 + p2 * (p2 - 1) / 2);
	return S1 + S2;
}

double sim_prefill_ms(const struct sim *s, int64_t n, int64_t d)
{
	if (n <= 0)
		return 0;
	const double lin = s->c_lin * s->e_pf / (1 + s->q->dequant_overhead);
	const double att = s->c_att * s->e_att / (1 + s->kv->prefill_overhead);
	const double bwr = s->bw * s->e_bw;
	const double lay = (double)s->m->layers * s->t_layer;
	const int64_t u = s->e->prefill_chunk > 0 ? s->e->prefill_chunk : 512;
	const double Wu = sim_weights_touched(s, u);
	const int64_t sat = s->m->swa_layers ? s->m->window : 0; /* depth from which chunks are affine */
	double t = 0;
	int64_t off = 0;
	while (off < n) {
		int64_t m = n - off < u ? n - off : u;
		int64_t dd = d + off;
		if (m == u && dd >= sat) {
			/* full chunks j = 0..N-1 at depth dd + j.u: both sides affine in j */
			int64_t N = (n - off) / u;
			double U = (double)u, D = (double)dd;
			double ca = s->f_body * U / lin + (s->f_att * (U * D + U * (U + 1) / 2) + s->f_swa * U * (double)sat) / att;
			double cb = s->f_att * U * U / att;
			double ma = (Wu + s->kv_tok * (D + U) + s->swa_tok * (double)sat + s->state) / bwr;
			double mb = s->kv_tok * U / bwr;
			if (!sat) {
				ca = s->f_body * U / lin + s->f_att * (U * D + U * (U + 1) / 2) / att;
				ma = (Wu + s->kv_tok * (D + U) + s->state) / bwr;
			}
			t += sum_max_affine(ca, cb, ma, mb, (double)N) + (double)N * lay;
			off += N * u;
			continue;
		}
		double W = m == u ? Wu : sim_weights_touched(s, m);
		double tc = s->f_body * (double)m / lin + sim_attn_flops(s, m, dd) / att;
		double tm = (W + kvbytes(s, (double)(dd + m))) / bwr;
		t += (tc > tm ? tc : tm) + lay;
		off += m;
	}
	t += s->f_head / lin;
	return t * 1e3;
}

/* One decode pass for a batch of b sequences with dsum context tokens. */
static void step_lines(const struct sim *s, double b, double *c0, double *c1, double *m0, double *m1, bool sat)
{
	const double lin = s->c_lin * s->e_pf / (1 + s->q->dequant_overhead);
	const double att = s->c_attd / (1 + s->kv->decode_overhead) * s->e_attd;
	const double bwr = s->bw * s->e_bw;
	const double kd = 1 + s->kv->decode_overhead;
	const double w = (double)s->m->window;
	/* time as a + slope x depth-sum (per sequence depth for b = 1) */
	*c0 = b * (s->f_body + s->f_head) / lin + (sat ? s->f_swa * w * b / att : 0);
	*c1 = (s->f_att + (sat ? 0 : s->f_swa)) / att;
	*m0 = (sim_weights_touched(s, (int64_t)b) + b * (s->state + (sat ? s->swa_tok * w : 0)) * kd) / bwr;
	*m1 = (s->kv_tok + (sat ? 0 : s->swa_tok)) * kd / bwr;
}

double sim_decode_step_ms(const struct sim *s, int64_t b, int64_t dsum)
{
	if (b < 1)
		b = 1;
	bool sat = (double)dsum / (double)b >= (double)s->m->window;
	double c0, c1, m0, m1;
	step_lines(s, (double)b, &c0, &c1, &m0, &m1, sat);
	double tc = c0 + c1 * (double)dsum, tm = m0 + m1 * (double)dsum;
	return ((tc > tm ? tc : tm) + (double)s->m->layers * s->t_layer) * 1e3;
}

double sim_decode_ms(const struct sim *s, int64_t p, int64_t g, double *p50, double *p99)
{
	*p50 = *p99 = 0;
	if (g <= 1)
		return 0;
	/* steps i = 1..g-1 at depth p + i */
	double lay = (double)s->m->layers * s->t_layer;
	double t = 0;
	int64_t first = p + 1, last = p + g - 1;
	int64_t w = s->m->window;
	int64_t split = s->m->swa_layers && first < w ? (w < last + 1 ? w : last + 1) : first; /* [first, split) unsaturated */
	double c0, c1, m0, m1;
	if (split > first) {
		step_lines(s, 1, &c0, &c1, &m0, &m1, false);
		double D = (double)first;
		t += sum_max_affine(c0 + c1 * D, c1, m0 + m1 * D, m1, (double)(split - first));
	}
	if (last + 1 > split) {
		step_lines(s, 1, &c0, &c1, &m0, &m1, true);
		double D = (double)split;
		t += sum_max_affine(c0 + c1 * D, c1, m0 + m1 * D, m1, (double)(last + 1 - split));
	}
	t += (double)(g - 1) * lay;
	*p50 = sim_decode_step_ms(s, 1, p + g / 2);
	*p99 = sim_decode_step_ms(s, 1, p + (int64_t)ceil(0.99 * (double)(g - 1)));
	return t * 1e3;
}

int sim_fill(struct buf *out, const char *t, const char *const *vals)
{
	while (*t) {
		const char *open = strchr(t, '{');
		if (!open)
			return buf_puts(out, t);
		if (buf_append(out, t, (size_t)(open - t)) < 0)
			return -1;
		const char *close = strchr(open + 1, '}');
		size_t nl = close ? (size_t)(close - open - 1) : 0;
		const char *val = NULL;
		for (size_t i = 0; close && vals[i]; i += 2)
			if (strlen(vals[i]) == nl && !strncmp(vals[i], open + 1, nl)) {
				val = vals[i + 1];
				break;
			}
		if (val) {
			if (buf_puts(out, val) < 0)
				return -1;
			t = close + 1;
		} else {
			if (buf_putc(out, '{') < 0)
				return -1;
			t = open + 1;
		}
	}
	if (!out->data)
		return buf_puts(out, "");
	return 0;
}
