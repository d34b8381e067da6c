#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include "adapter.h"
#include "classify.h"
#include "convo.h"
#include "http.h"
#include "jsonh.h"
#include "memrun.h"
#include "ndjson.h"
#include "prom.h"
#include "rng.h"
#include "sim.h"
#include "sse.h"

#define MAX_EVENT_BYTES (8u << 20)  /* one SSE event / NDJSON line */
#define MAX_ERROR_BODY (256u << 10) /* kept of a non-stream response */
#define CONC_BATCH 8                /* finished requests handled between two looks at the sockets */

/* ---- one request -------------------------------------------------------- */

struct done_list;

struct xreq {
	const struct adapter *ad;
	int64_t asked;      /* max_tokens of the request */
	int64_t max_events; /* a server that streams far past max_tokens is cut off */
	struct sse_parser *sse;
	struct ndjson_parser *nd;
	struct stream_acc acc;
	struct buf body; /* a non-stream response (errors), cut at the ceiling */
	bool streaming;  /* the response is the stream we asked for */
	bool stream_error;
	char stream_error_msg[256];
	struct hx_result res;
	bool done;
	ar_ns t_chunk; /* arrival time of the chunk being parsed */
	char wall[32];     /* wall clock when sent */
	int64_t in_flight; /* requests in flight when sent, itself included */
	ar_ns due;         /* when it was due (concurrent replay), 0 = nothing scheduled */
	bool use_metrics;  /* cached tokens from /metrics around this request */
	double cached_before;
	struct done_list *dl; /* concurrent replay: on_done appends the request here */
	struct xreq *next_done;
};

/* Requests that finished in one turn of the event loop, in order. */
struct done_list {
	struct xreq *head, **tail;
	size_t n;
};

static int on_sse(void *ud, const struct sse_event *ev)
{
	struct xreq *x = ud;
	if (ev->comment)
		return 0; /* keep-alive pings never count as tokens */
	x->ad->event(&x->acc, ev->event, ev->data, ev->data_len, x->t_chunk);
	return 0;
}

static int on_line(void *ud, const char *line, size_t len)
{
	struct xreq *x = ud;
	x->ad->event(&x->acc, "", line, len, x->t_chunk);
	return 0;
}

static int on_status(void *ud, long status, ar_ns t)
{
	struct xreq *x = ud;
	x->streaming = status >= 200 && status < 300;
	return 0;
}

static int on_body(void *ud, const char *data, size_t n, ar_ns t)
{
	struct xreq *x = ud;
	struct ar_err err = {0};
	x->t_chunk = t;
	if (!x->streaming) {
		if (x->body.len < MAX_ERROR_BODY)
			(void)buf_append(&x->body, data, n < MAX_ERROR_BODY - x->body.len ? n : MAX_ERROR_BODY - x->body.len);
		return 0;
	}
	/* keep the first bytes too, as evidence when the stream turns out not to be one */
	if (x->body.len < 4096)
		(void)buf_append(&x->body, data, n < 4096 - x->body.len ? n : 4096 - x->body.len);
	int rc = x->sse ? sse_parser_feed(x->sse, data, n, on_sse, x, &err)
			: ndjson_parser_feed(x->nd, data, n, on_line, x, &err);
	if (rc < 0) {
		x->stream_error = true;
		snprintf(x->stream_error_msg, sizeof x->stream_error_msg, "%s", err.msg);
		return 1; /* stop reading: bounded memory whatever the server sends */
	}
	if (x->acc.token_events > x->max_events) {
		x->stream_error = true;
		snprintf(x->stream_error_msg, sizeof x->stream_error_msg,
			 "the server kept streaming: %lld token events for a request of %lld tokens",
			 (long long)x->acc.token_events, (long long)x->asked);
		return 1;
	}
	return 0;
}

static void on_done(void *ud, const struct hx_result *r)
{
	struct xreq *x = ud;
	x->res = *r;
	x->done = true;
	if (x->dl) {
		/* O(1): the loop learns which sessions finished without a scan */
		x->next_done = NULL;
		*x->dl->tail = x;
		x->dl->tail = &x->next_done;
		x->dl->n++;
	}
	if (!x->streaming || x->stream_error)
		return;
	struct ar_err err = {0};
	bool cut = false;
	int rc = x->sse ? sse_parser_finish(x->sse, on_sse, x, &cut, &err)
			: ndjson_parser_finish(x->nd, on_line, x, &cut, &err);
	if (rc < 0 && !x->stream_error) {
		x->stream_error = true;
		snprintf(x->stream_error_msg, sizeof x->stream_error_msg, "%s", err.msg);
	}
}

static int xreq_init(struct xreq *x, const struct adapter *ad, struct ar_err *err)
{
	memset(x, 0, sizeof *x);
	x->ad = ad;
	stream_acc_init(&x->acc);
	buf_init(&x->body, MAX_ERROR_BODY + 1);
	if (ad->wire == WIRE_SSE)
		x->sse = sse_parser_new(MAX_EVENT_BYTES);
	else
		x->nd = ndjson_parser_new(MAX_EVENT_BYTES);
	if (!x->sse && !x->nd)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	return 0;
}

static void xreq_free(struct xreq *x)
{
	sse_parser_free(x->sse);
	ndjson_parser_free(x->nd);
	stream_acc_free(&x->acc);
	buf_free(&x->body);
}

/* ---- the run ------------------------------------------------------------ */

struct run {
	const struct engine_cfg *cfg;
	const struct adapter *ad;
	struct rules *rules;
	struct hx_loop *loop;
	struct store *st;
	int64_t run_id, config_id;
	const struct engine_obs *obs;
	struct engine_summary *sum;
	char url[2048];      /* full endpoint URL */
	char endpoint[256];  /* "POST /v1/chat/completions" */
	char metrics_url[2048];
	char base[2048];      /* base URL without a trailing slash */
	bool metrics_ok;     /* /metrics answered with counters we know */
	struct rng rng;
	struct buf req_body;
	bool stop;
	bool concurrent;     /* conc_run: several requests in flight (the loop must not wait) */
	struct sim *sim;      /* the in-process simulated backend, or NULL */
	struct sim_prompt sp; /* its prompt of the current turn */
	ar_ns t_begin;        /* clock_now() when engine_run began: sent_ns counts from here */
	struct memrun *mem;   /* the server's memory (memrun.h), or NULL */
};

static void note(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct run *r, const char *fmt, ...)
{
	if (!r->obs || !r->obs->on_note)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->obs->on_note(r->obs->ud, msg);
}

static void make_nonce(struct run *r, char *out, size_t n, const char *kind)
{
	snprintf(out, n, "[%s %016llx] ", kind, (unsigned long long)rng_next(&r->rng));
}

/* Cumulative cached-prompt-token counters of the servers that export them. */
static bool metrics_cached(struct run *r, double *out)
{
	long status;
	char *body = NULL;
	size_t len;
	struct ar_err err;
	if (hx_fetch(r->metrics_url, NULL, 2000, 8u << 20, &status, &body, &len, &err) < 0 || status != 200) {
		free(body);
		return false;
	}
	struct prom_set *ps = NULL;
	bool ok = false;
	if (prom_parse(body, len, &ps, &err) == 0) {
		static const char *const names[] = {"llamacpp:prompt_tokens_cached_total", "vllm:prefix_cache_hits_total",
						    "vllm:prefix_cache_hits", "sglang:cached_tokens_total"};
		for (size_t i = 0; i < sizeof names / sizeof names[0] && !ok; i++) {
			double v = prom_sum(ps, names[i]);
			if (!isnan(v)) {
				*out = v;
				ok = true;
			}
		}
	}
	prom_set_free(ps);
	free(body);
	return ok;
}

static int cmp_ns(const void *a, const void *b)
{
	ar_ns x = *(const ar_ns *)a, y = *(const ar_ns *)b;
	return x < y ? -1 : x > y;
}

static double pct(const ar_ns *v, size_t n, double p)
{
	if (!n)
		return NAN;
	size_t k = (size_t)ceil(p * (double)n) - 1;
	if (k >= n)
		k = n - 1;
	return (double)v[k] / 1e6;
}

static void flag(char *flags, size_t n, const char *f)
{
	size_t len = strlen(flags);
	snprintf(flags + len, n - len, "%s%s", len ? "," : "", f);
}

struct turn_req {
	const char *trace;
	const struct tr_session *ses;
	int64_t turn, turns;
	int repeat;
	const char *cache;
	int64_t context_tokens;
	int64_t max_tokens;
	const char *body;
	size_t body_len;
	bool warmup;
	const struct sim_prompt *sp; /* the in-process simulated backend's prompt */
};

/* Starts one request on the loop (xreq_init included). */
static int req_start(struct run *r, const struct turn_req *t, struct xreq *x, bool metrics, struct ar_err *err)
{
	const struct engine_cfg *cfg = r->cfg;
	if (xreq_init(x, r->ad, err) < 0)
		return -1;
	x->asked = t->max_tokens;
	x->max_events = 4 * t->max_tokens + 1024;
	x->use_metrics = metrics && r->metrics_ok && !t->warmup && metrics_cached(r, &x->cached_before);
	static const char *const headers_sse[] = {"Content-Type: application/json", "Accept: text/event-stream", NULL};
	static const char *const headers_json[] = {"Content-Type: application/json", NULL};
	struct hx_opts o = {cfg->ttft_timeout, cfg->stall_timeout, 30 * AR_NS_PER_S};
	struct hx_callbacks cb = {on_status, on_body, on_done};
	clock_wall_iso8601(x->wall, sizeof x->wall);
	memrun_request_begin(r->mem);
	if (!hx_start(r->loop, r->url, r->ad->wire == WIRE_SSE ? headers_sse : headers_json, t->body, t->body_len, &o,
		      &cb, x, err))
		return -1;
	x->in_flight = hx_running(r->loop);
	return 0;
}

static int req_finish(struct run *r, const struct turn_req *t, struct xreq *x, struct engine_request *out,
		      struct ar_err *err);

/* Sends one request, waits for it, measures, classifies, stores it. */
static int do_request(struct run *r, const struct turn_req *t, struct xreq *x, struct engine_request *out,
		      struct ar_err *err)
{
	if (req_start(r, t, x, true, err) < 0)
		return -1;
	while (!x->done)
		if (hx_run(r->loop, 0, err) < 0)
			return -1;
	return req_finish(r, t, x, out, err);
}

/* Measures a finished request, classifies it, stores it (unless warmup)
 * and hands it to the observer. */
static int req_finish(struct run *r, const struct turn_req *t, struct xreq *x, struct engine_request *out,
		      struct ar_err *err)
{
	const struct engine_cfg *cfg = r->cfg;
	bool use_metrics = x->use_metrics;
	double cached_before = x->cached_before;
	/* ---- measure ---- */
	struct stream_acc *a = &x->acc;
	struct hx_result *res = &x->res;
	struct store_request *row = &out->row;
	memset(out, 0, sizeof *out);
	static char flags[256];
	flags[0] = '\0';
	ar_ns t0 = res->t_sent ? res->t_sent : res->t_start;
	row->session = t->ses->id;
	row->turn = t->turn;
	row->repeat = t->repeat;
	row->cache = t->cache;
	row->wall_time = x->wall;
	row->context_tokens_est = t->context_tokens;
	row->requested_tokens = t->max_tokens;
	row->http_status = (int)res->status;
	row->connect_ms = res->connect_ms;
	row->ttfb_ms = res->t_first_byte ? clock_ms(res->t_first_byte - t0) : NAN;
	row->ttft_ms = a->token_events ? clock_ms(a->t_first_token - t0) : NAN;
	row->e2e_ms = clock_ms(res->t_done - t0);
	row->prompt_tokens = a->usage_prompt;
	row->cached_tokens = a->usage_cached;
	row->cached_source = a->cached_source;
	if (row->cached_tokens < 0 && use_metrics) {
		double after;
		if (metrics_cached(r, &after) && after >= cached_before) {
			row->cached_tokens = (int64_t)(after - cached_before);
			row->cached_source = "metrics";
		}
	}
	if (!row->cached_source)
		row->cached_source = "none";
	if (a->usage_completion >= 0) {
		row->completion_tokens = a->usage_completion;
		row->completion_source = "usage";
	} else {
		row->completion_tokens = a->token_events;
		row->completion_source = "counted";
		if (a->token_events)
			flag(flags, sizeof flags, "usage_missing");
	}
	row->decode_tps = NAN;
	if (row->completion_tokens > 1 && a->t_last_token > a->t_first_token)
		row->decode_tps = (double)(row->completion_tokens - 1) / ((double)(a->t_last_token - a->t_first_token) / 1e9);
	row->prefill_tps = NAN;
	if (row->prompt_tokens >= 0 && a->token_events && row->ttft_ms > 0)
		row->prefill_tps = (double)(row->prompt_tokens - (row->cached_tokens > 0 ? row->cached_tokens : 0)) /
				   (row->ttft_ms / 1e3);
	row->itl_p50_ms = row->itl_p90_ms = row->itl_p99_ms = NAN;
	if (a->n_times > 1) {
		size_t n = a->n_times - 1;
		ar_ns *gaps = malloc(n * sizeof *gaps);
		if (gaps) {
			for (size_t i = 0; i < n; i++)
				gaps[i] = a->token_times[i + 1] - a->token_times[i];
			qsort(gaps, n, sizeof *gaps, cmp_ns);
			row->itl_p50_ms = pct(gaps, n, 0.50);
			row->itl_p90_ms = pct(gaps, n, 0.90);
			row->itl_p99_ms = pct(gaps, n, 0.99);
			free(gaps);
		}
	}
	row->mem_peak_bytes = row->mem_end_bytes = -1;
	row->gpu_peak_bytes = row->host_drop_bytes = -1;
	row->kv_usage = NAN;
	memrun_request_end(r->mem, t0, res->t_done, !r->concurrent, row);
	row->sent_ns = t0 - r->t_begin;
	row->in_flight = x->in_flight > 0 ? x->in_flight : 1;
	row->due_ns = x->due > 0 ? x->due - r->t_begin : -1;

	/* ---- classify ---- */
	struct outcome oc;
	classify_request(r->rules, r->ad, r->endpoint, res, a, x->body.data, x->body.len, x->stream_error,
			 x->stream_error_msg, &oc);
	if (!strcmp(oc.cls, "ok")) {
		if (row->completion_tokens > t->max_tokens)
			flag(flags, sizeof flags, "max_tokens_ignored");
		else if (row->completion_tokens < t->max_tokens)
			flag(flags, sizeof flags, "stopped_early");
		if (cfg->slo_ttft_ms > 0 && row->ttft_ms > cfg->slo_ttft_ms) {
			oc.cls = "slo";
			snprintf(oc.evidence, sizeof oc.evidence, "TTFT %.0f ms is over the SLO of %.0f ms", row->ttft_ms,
				 cfg->slo_ttft_ms);
		} else if (cfg->slo_decode_tps > 0 && row->decode_tps < cfg->slo_decode_tps) {
			oc.cls = "slo";
			snprintf(oc.evidence, sizeof oc.evidence, "decode %.1f tok/s is under the SLO of %.1f tok/s",
				 row->decode_tps, cfg->slo_decode_tps);
		}
	}
	memrun_check_crash(r->mem, &oc.cls, oc.evidence, sizeof oc.evidence);
	if (a->invalid_utf8)
		flag(flags, sizeof flags, "invalid_utf8");
	if (a->finish_seen && !a->done)
		flag(flags, sizeof flags, "no_end_marker");
	if (res->connect_ms > 0)
		flag(flags, sizeof flags, "new_connection");
	static char evidence[sizeof oc.evidence];
	snprintf(evidence, sizeof evidence, "%s", oc.evidence);
	row->outcome = oc.cls;
	row->evidence = evidence[0] ? evidence : NULL;
	row->flags = flags[0] ? flags : NULL;
	static struct buf server = BUF_INIT;
	buf_reset(&server);
	if (a->server && jsonh_put(&server, a->server) == 0)
		row->server_json = server.data;
	else
		row->server_json = NULL;
	out->trace = t->trace;
	out->session_turns = t->turns;
	if (cfg->on_failure && strcmp(row->outcome, "ok"))
		cfg->on_failure(cfg->on_failure_ud, row);
	if (t->warmup)
		return 0;
	if (store_request_add(r->st, r->config_id, row, err) < 0)
		return -1;
	memrun_add_point(r->mem, row);
	if (memrun_flush(r->mem, r->st, r->config_id, err) < 0)
		return -1;
	char mnotes[2048];
	if (memrun_notes(r->mem, mnotes, sizeof mnotes))
		note(r, "memory: %s", mnotes);
	r->sum->requests++;
	if (strcmp(row->outcome, "ok"))
		r->sum->failed++;
	if (r->obs && r->obs->on_request)
		r->obs->on_request(r->obs->ud, out);
	return 0;
}

/* One request to the in-process simulated backend: the same row as a real
 * one, in modelled (virtual) time, marked simulated. */
static int sim_do_request(struct run *r, const struct turn_req *t, struct engine_request *out, struct ar_err *err)
{
	const struct engine_cfg *cfg = r->cfg;
	struct sim_result sr;
	if (sim_request(r->sim, t->sp, t->max_tokens, &sr, err) < 0)
		return -1;
	struct store_request *row = &out->row;
	memset(out, 0, sizeof *out);
	static char evidence[600], flags[64], wall[32];
	static struct buf server = BUF_INIT;
	clock_wall_iso8601(wall, sizeof wall);
	row->wall_time = wall;
	row->session = t->ses->id;
	row->turn = t->turn;
	row->repeat = t->repeat;
	row->cache = t->cache;
	row->context_tokens_est = t->context_tokens;
	row->requested_tokens = t->max_tokens;
	row->prompt_tokens = sr.prompt_tokens;
	row->cached_tokens = sr.cached_tokens;
	row->cached_source = "sim";
	row->completion_tokens = sr.completion_tokens;
	row->completion_source = "sim";
	bool ok = !strcmp(sr.outcome, "ok");
	row->connect_ms = 0;
	row->ttft_ms = ok || sr.error_after_tokens > 0 ? sr.ttft_ms : NAN;
	row->ttfb_ms = row->ttft_ms;
	row->decode_tps = ok ? sr.decode_tps : NAN;
	row->prefill_tps = ok && sr.ttft_ms > 0 ? (double)(sr.prompt_tokens - sr.cached_tokens) / (sr.ttft_ms / 1e3) : NAN;
	row->itl_p50_ms = ok ? sr.itl_p50_ms : NAN;
	row->itl_p90_ms = NAN;
	row->itl_p99_ms = ok ? sr.itl_p99_ms : NAN;
	row->e2e_ms = sr.e2e_ms;
	row->mem_peak_bytes = sr.mem_peak_bytes;
	row->mem_end_bytes = sr.mem_bytes;
	row->gpu_peak_bytes = row->host_drop_bytes = -1;
	row->kv_usage = NAN;
	row->sent_ns = -1; /* modelled time: no wall clock */
	row->in_flight = 1;
	row->due_ns = -1;
	row->http_status = sr.http_status;
	row->outcome = sr.outcome;
	snprintf(evidence, sizeof evidence, "%s", sr.evidence ? sr.evidence : "");
	row->evidence = evidence[0] ? evidence : NULL;
	flags[0] = '\0';
	if (ok && cfg->slo_ttft_ms > 0 && row->ttft_ms > cfg->slo_ttft_ms) {
		row->outcome = "slo";
		snprintf(evidence, sizeof evidence, "TTFT %.0f ms is over the SLO of %.0f ms", row->ttft_ms, cfg->slo_ttft_ms);
		row->evidence = evidence;
	} else if (ok && cfg->slo_decode_tps > 0 && row->decode_tps < cfg->slo_decode_tps) {
		row->outcome = "slo";
		snprintf(evidence, sizeof evidence, "decode %.1f tok/s is under the SLO of %.1f tok/s", row->decode_tps,
			 cfg->slo_decode_tps);
		row->evidence = evidence;
	}
	if (sr.truncated_tokens > 0)
		snprintf(flags, sizeof flags, "truncated");
	row->flags = flags[0] ? flags : NULL;
	buf_reset(&server);
	buf_printf(&server, "{\"simulated\":true,\"ttft_cold_ms\":%.3f,\"restored_tokens\":%lld,\"context\":%lld}",
		   sr.ttft_cold_ms, (long long)sr.restored_tokens, (long long)sr.context_tokens);
	row->server_json = server.data;
	out->trace = t->trace;
	out->session_turns = t->turns;
	if (t->warmup)
		return 0;
	if (store_request_add(r->st, r->config_id, row, err) < 0)
		return -1;
	r->sum->requests++;
	if (strcmp(row->outcome, "ok"))
		r->sum->failed++;
	if (r->obs && r->obs->on_request)
		r->obs->on_request(r->obs->ud, out);
	return 0;
}

/* gen (optional) receives the generated text, for --history generated. */
static int request(struct run *r, const struct turn_req *t, struct engine_request *out, struct buf *gen,
		   struct ar_err *err)
{
	if (r->sim)
		return sim_do_request(r, t, out, err);
	struct xreq x;
	int rc = do_request(r, t, &x, out, err);
	if (rc == 0 && gen) {
		buf_reset(gen);
		if (x.acc.text.len && buf_append(gen, x.acc.text.data, x.acc.text.len) < 0)
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	xreq_free(&x);
	return rc;
}

static void progress(struct run *r, const struct turn_req *t)
{
	if (!r->obs || !r->obs->on_progress)
		return;
	struct engine_progress p = {t->repeat + 1, r->cfg->repeats, t->ses->id, t->turn, t->turns, t->context_tokens,
				    t->cache, t->warmup};
	r->obs->on_progress(r->obs->ud, &p);
}

static void failure_from(struct run *r, const struct engine_request *q)
{
	struct engine_failure *f = &r->sum->failure;
	if (f->found || !strcmp(q->row.outcome, "ok"))
		return;
	f->found = true;
	snprintf(f->session, sizeof f->session, "%s", q->row.session);
	f->turn = q->row.turn;
	f->context_tokens = q->row.prompt_tokens >= 0 ? q->row.prompt_tokens : q->row.context_tokens_est;
	snprintf(f->cls, sizeof f->cls, "%s", q->row.outcome);
	snprintf(f->evidence, sizeof f->evidence, "%s", q->row.evidence ? q->row.evidence : "");
	f->mem_bytes = q->row.mem_peak_bytes;
}

static const int64_t cold_tiers[] = {32768, 65536, 131072};

struct cold_item {
	int64_t turn;
	int64_t context_tokens;
	int64_t max_tokens;
	char *body; /* the whole request, with its own nonce */
	size_t body_len;
	struct sim_prompt sp; /* the same for the simulated backend */
};

/* Counts a session's turns by reading ahead would need a second pass; the
 * per-session turn counts were gathered during validation. */
struct sess_info {
	char *id;
	int64_t turns;
	int64_t deepest_turn; /* the turn with the largest estimated context */
	int64_t deepest_tokens;
};

struct trace_info {
	struct sess_info *s;
	size_t n, cap;
};

static const struct sess_info *info_of(const struct trace_info *ti, const char *id)
{
	for (size_t i = 0; i < ti->n; i++)
		if (!strcmp(ti->s[i].id, id))
			return &ti->s[i];
	return NULL;
}

static int64_t turns_of(const struct trace_info *ti, const char *id)
{
	const struct sess_info *si = info_of(ti, id);
	return si ? si->turns : 0;
}

static void trace_info_free(struct trace_info *ti)
{
	for (size_t i = 0; i < ti->n; i++)
		free(ti->s[i].id);
	free(ti->s);
}

/* Validates a trace completely before anything is sent. */
static int validate(struct run *r, const char *path, struct trace_info *ti, struct ar_err *err)
{
	struct trace_reader *rd = NULL;
	if (trace_reader_open(&rd, path, &r->cfg->ropts, err) < 0)
		return -1;
	struct buf problems = BUF_INIT;
	int nprob = 0, rc = 0;
	struct convo cv; /* token counts only: which turn is deepest */
	convo_init(&cv, CONVO_COUNT_ONLY);
	for (;;) {
		struct trace_item it;
		struct trace_diag d;
		int n = trace_reader_next(rd, &it, &d, err);
		if (n == TRACE_EOF)
			break;
		if (n == TRACE_FATAL) {
			rc = -1;
			goto out;
		}
		if (n == TRACE_BAD) {
			for (size_t k = 0; k < d.n; k++, nprob++)
				if (nprob < 5)
					buf_printf(&problems, "%s%s:%llu: %s%s%s", nprob ? "; " : "", path,
						   (unsigned long long)trace_reader_line(rd), d.p[k].field,
						   d.p[k].field[0] ? ": " : "", d.p[k].msg);
			continue;
		}
		if (n != TRACE_ITEM)
			continue;
		if (it.kind == TRACE_ITEM_SESSION) {
			if (ti->n == ti->cap) {
				size_t cap = ti->cap ? ti->cap * 2 : 8;
				struct sess_info *s = realloc(ti->s, cap * sizeof *s);
				if (!s) {
					trace_item_clear(&it);
					rc = ar_err_set(err, AR_ENOMEM, "out of memory");
					goto out;
				}
				ti->s = s;
				ti->cap = cap;
			}
			ti->s[ti->n].id = strdup(it.session->id);
			ti->s[ti->n].turns = 0;
			ti->s[ti->n].deepest_turn = 0;
			ti->s[ti->n].deepest_tokens = -1;
			ti->n++;
			convo_reset(&cv, it.session);
		} else if (ti->n) {
			struct sess_info *si = &ti->s[ti->n - 1];
			si->turns++;
			if (convo_step(&cv, it.turn, err) == 0 && convo_tokens(&cv) > si->deepest_tokens) {
				si->deepest_tokens = convo_tokens(&cv);
				si->deepest_turn = it.turn->i;
			}
		}
		trace_item_clear(&it);
	}
	if (nprob)
		rc = ar_err_set(err, AR_EFORMAT, "trace has %d problem%s (nothing was sent): %s%s", nprob,
				nprob == 1 ? "" : "s", problems.data, nprob > 5 ? "; ..." : "");
out:
	convo_free(&cv);
	buf_free(&problems);
	trace_reader_close(rd);
	return rc;
}

/* llama-server: erases every slot's KV cache (POST /slots/ID?action=erase;
 * the server needs --slot-save-path for slot actions), so a cold request
 * also starts from an empty cache, not only under a fresh nonce. */
static int erase_slots(struct run *r, struct ar_err *err)
{
	char url[2200];
	snprintf(url, sizeof url, "%s/slots", r->base);
	long status;
	char *body = NULL;
	size_t len;
	if (hx_fetch(url, NULL, 10000, 4u << 20, &status, &body, &len, err) < 0)
		return -1;
	cJSON *j = status == 200 ? cJSON_ParseWithLength(body, len) : NULL;
	if (!cJSON_IsArray(j)) {
		ar_err_set(err, AR_EBACKEND, "GET %s answered HTTP %ld: %.200s", url, status, body ? body : "");
		cJSON_Delete(j);
		free(body);
		return -1;
	}
	free(body);
	const cJSON *slot;
	int rc = 0;
	cJSON_ArrayForEach(slot, j) {
		int64_t id;
		if (!jsonh_int(cJSON_GetObjectItemCaseSensitive(slot, "id"), &id))
			continue;
		snprintf(url, sizeof url, "%s/slots/%lld?action=erase", r->base, (long long)id);
		if (hx_fetch(url, "{}", 10000, 1u << 20, &status, &body, &len, err) < 0) {
			rc = -1;
			break;
		}
		if (status != 200) {
			rc = ar_err_set(err, AR_EBACKEND, "POST %s answered HTTP %ld (start llama-server with --slot-save-path "
					"for slot actions): %.200s", url, status, body ? body : "");
			free(body);
			break;
		}
		free(body);
	}
	cJSON_Delete(j);
	return rc;
}

/* Merges --extra members into a request body (a JSON object). */
static int add_extra(const struct engine_cfg *cfg, struct buf *b)
{
	if (!cfg->extra_json || !*cfg->extra_json || !b->len || b->data[b->len - 1] != '}')
		return 0;
	b->len--;
	return (buf_putc(b, ',') < 0 || buf_puts(b, cfg->extra_json) < 0 || buf_putc(b, '}') < 0) ? -1 : 0;
}

/* Replays one trace file once (one repeat). */
static int replay_trace(struct run *r, const char *path, const struct trace_info *ti, int repeat, bool warmup_only,
			int *warmups_left, struct ar_err *err)
{
	const struct engine_cfg *cfg = r->cfg;
	struct trace_reader *rd = NULL;
	struct tr_session *ses = NULL;
	struct convo cv;
	convo_init(&cv, false);
	struct buf gen = BUF_INIT;
	struct cold_item *cold = NULL;
	size_t ncold = 0, capcold = 0;
	int rc = 0;
	char nonce[64];
	int next_tier = 0;
	bool session_stopped = false;
	if (trace_reader_open(&rd, path, &cfg->ropts, err) < 0)
		return -1;

	struct trace_item it = {0}; /* cleared at out: whatever path leaves the loop */
	for (;;) {
		struct trace_diag d;
		trace_item_clear(&it);
		int n = trace_reader_next(rd, &it, &d, err);
		bool end_session = n == TRACE_EOF || (n == TRACE_ITEM && it.kind == TRACE_ITEM_SESSION);
		if (n == TRACE_FATAL || n == TRACE_BAD) {
			if (n == TRACE_BAD)
				ar_err_set(err, AR_EFORMAT, "%s:%llu: the trace changed during the run", path,
					   (unsigned long long)trace_reader_line(rd));
			rc = -1;
			goto out;
		}
		if (end_session && ses && !warmup_only) {
			/* the cold pass of the session that just ended */
			for (size_t k = 0; k < ncold && !r->stop; k++) {
				if (cfg->cold_erase && r->ad && r->ad->llama_extras && erase_slots(r, err) < 0) {
					rc = -1;
					goto out;
				}
				struct turn_req t = {path, ses, cold[k].turn, turns_of(ti, ses->id), repeat, "cold",
						     cold[k].context_tokens, cold[k].max_tokens, cold[k].body,
						     cold[k].body_len, false, &cold[k].sp};
				progress(r, &t);
				struct engine_request q;
				if (request(r, &t, &q, NULL, err) < 0) {
					rc = -1;
					goto out;
				}
				failure_from(r, &q);
				if (cfg->until_fail && r->sum->failure.found)
					r->stop = true;
				if (cfg->stop && *cfg->stop)
					r->stop = true;
			}
		}
		if (end_session) {
			for (size_t k = 0; k < ncold; k++) {
				free(cold[k].body);
				sim_prompt_free(&cold[k].sp);
			}
			ncold = 0;
		}
		if (n == TRACE_EOF || r->stop) {
			if (n == TRACE_ITEM)
				trace_item_clear(&it);
			break;
		}
		if (n != TRACE_ITEM)
			continue;
		if (it.kind == TRACE_ITEM_SESSION) {
			tr_session_free(ses);
			ses = it.session;
			it.session = NULL;
			convo_reset(&cv, ses);
			make_nonce(r, nonce, sizeof nonce, warmup_only ? "warmup" : "run");
			next_tier = 0;
			session_stopped = false;
			trace_item_clear(&it);
			continue;
		}
		struct tr_turn *turn = it.turn;
		if (session_stopped || (warmup_only && *warmups_left <= 0)) {
			trace_item_clear(&it);
			if (warmup_only)
				break;
			continue;
		}
		if (convo_step(&cv, turn, err) < 0) {
			trace_item_clear(&it);
			rc = -1;
			goto out;
		}
		int64_t ctx = convo_tokens(&cv);
		int64_t max_tokens = tr_response_output_tokens(turn->response);
		if (warmup_only && max_tokens > 16)
			max_tokens = 16;
		struct req_ctx rq = {ses, &cv, nonce, cfg->model, max_tokens, cfg->num_ctx, cfg->plain, false, r->base, cfg->token_ids,
				     cfg->max_tokens_field};
		buf_reset(&r->req_body);
		if (r->sim ? sim_prompt_build(&r->sp, ses, &cv, nonce, err) < 0
			   : r->ad->build(r->ad, &rq, &r->req_body, err) < 0) {
			trace_item_clear(&it);
			rc = -1;
			goto out;
		}
		if (add_extra(cfg, &r->req_body) < 0) {
			trace_item_clear(&it);
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
		struct turn_req t = {path, ses, turn->i, turns_of(ti, ses->id), repeat, "warm", ctx, max_tokens,
				     r->req_body.data, r->req_body.len, warmup_only, &r->sp};
		/* is this turn one of the cold pass? */
		bool want_cold = false;
		if (!warmup_only && cfg->cold == COLD_EVERY)
			want_cold = true;
		else if (!warmup_only && cfg->cold == COLD_DEEPEST) {
			const struct sess_info *si = info_of(ti, ses->id);
			want_cold = turn->i == 0 || (si && turn->i == si->deepest_turn);
		} else if (!warmup_only && cfg->cold == COLD_TIERS) {
			if (turn->i == 0)
				want_cold = true;
			while (next_tier < 3 && ctx >= cold_tiers[next_tier]) {
				want_cold = true;
				next_tier++;
			}
		}
		if (want_cold) {
			/* the cold request: the same prompt under a nonce of its own, built
			 * now (the conversation moves on) and sent after the warm pass */
			if (ncold == capcold) {
				size_t cap = capcold ? capcold * 2 : 8;
				struct cold_item *c2 = realloc(cold, cap * sizeof *c2);
				if (!c2) {
					trace_item_clear(&it);
					rc = ar_err_set(err, AR_ENOMEM, "out of memory");
					goto out;
				}
				cold = c2;
				capcold = cap;
			}
			char cn[64];
			make_nonce(r, cn, sizeof cn, "cold");
			struct req_ctx cq = rq;
			cq.nonce = cn;
			struct buf cb = BUF_INIT;
			struct sim_prompt csp;
			sim_prompt_init(&csp);
			if (r->sim ? sim_prompt_build(&csp, ses, &cv, cn, err) < 0
				   : (r->ad->build(r->ad, &cq, &cb, err) < 0 || add_extra(cfg, &cb) < 0)) {
				buf_free(&cb);
				sim_prompt_free(&csp);
				trace_item_clear(&it);
				rc = -1;
				goto out;
			}
			struct cold_item *c = &cold[ncold++];
			c->sp = csp;
			c->turn = turn->i;
			c->context_tokens = ctx;
			c->max_tokens = max_tokens;
			c->body_len = cb.len;
			c->body = buf_detach(&cb);
		}
		progress(r, &t);
		struct engine_request q;
		if (request(r, &t, &q, cfg->history_generated ? &gen : NULL, err) < 0) {
			trace_item_clear(&it);
			rc = -1;
			goto out;
		}
		if (warmup_only) {
			(*warmups_left)--;
			if (strcmp(q.row.outcome, "ok"))
				note(r, "warmup request (%s turn %lld) failed: %s: %s", ses->id, (long long)turn->i,
				     q.row.outcome, q.row.evidence ? q.row.evidence : "");
			/* stop before measuring when the backend is not the API it was
			 * named as, refuses the request (4xx: path, auth, model, body) or
			 * died; a server error on this one request (5xx, an error event in
			 * a stream, such as llama-server's "model produced output that
			 * does not match the expected format") is the model's doing, and
			 * the measured turns will show whether it persists */
			int hs = q.row.http_status;
			bool refused = !strcmp(q.row.outcome, "http_error") && hs >= 400 && hs < 500 && hs != 408 && hs != 429;
			if (refused || !strcmp(q.row.outcome, "protocol_error") || !strcmp(q.row.outcome, "crash")) {
				rc = ar_err_set(err, !strcmp(q.row.outcome, "crash") ? AR_ENET : AR_EBACKEND,
						"the backend does not answer as the %s API should: %s", r->ad->name,
						q.row.evidence ? q.row.evidence : q.row.outcome);
				trace_item_clear(&it);
				goto out;
			}
		} else {
			failure_from(r, &q);
			if (strcmp(q.row.outcome, "ok") && cfg->until_fail)
				r->stop = true;
			/* --history generated: the backend's own text goes into the history */
			if (cfg->history_generated && !strcmp(q.row.outcome, "ok") &&
			    convo_set_generated(&cv, gen.data ? gen.data : "", gen.len) < 0) {
				trace_item_clear(&it);
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
				goto out;
			}
		}
		trace_item_clear(&it);
		if (cfg->stop && *cfg->stop) {
			r->stop = true;
			r->sum->interrupted = true;
		}
	}
out:
	trace_item_clear(&it);
	for (size_t k = 0; k < ncold; k++) {
		free(cold[k].body);
		sim_prompt_free(&cold[k].sp);
	}
	free(cold);
	buf_free(&gen);
	convo_free(&cv);
	tr_session_free(ses);
	trace_reader_close(rd);
	return rc;
}

/* Any HTTP answer means something is listening; a server still loading its
 * model (503, as llama-server and vLLM answer /health then) is waited for,
 * with backoff, up to two minutes. */
static bool reachable(struct run *r, struct ar_err *err)
{
	char probe[2100];
	snprintf(probe, sizeof probe, "%s%s", r->cfg->url,
		 !strcmp(r->ad->name, "ollama") ? "/api/version" : r->ad->llama_extras ? "/health" : "/v1/models");
	ar_ns deadline = clock_now() + 120 * AR_NS_PER_S;
	long wait_ms = 100;
	bool told = false;
	for (;;) {
		long status;
		char *body = NULL;
		size_t len;
		int rc = hx_fetch(probe, NULL, 10000, 1u << 20, &status, &body, &len, err);
		free(body);
		if (rc < 0) {
			ar_err_set(err, AR_ENET, "backend %s is unreachable: %s", r->cfg->url, err->msg);
			return false;
		}
		if (status != 503)
			return true;
		if (clock_now() > deadline) {
			ar_err_set(err, AR_EBACKEND, "backend %s still answers 503 (loading) after 120 s", probe);
			return false;
		}
		if (!told) {
			note(r, "%s answers 503 (still loading?); waiting for it", probe);
			told = true;
		}
		struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		if (wait_ms < 2000)
			wait_ms *= 2;
	}
}

/* One descriptor per concurrent connection: raise the soft limit to the
 * hard one when N needs more, and refuse an N the hard limit cannot carry
 * (rather than failing connections midway). */
static int raise_nofile(int n, struct ar_err *err)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)(n > 1 ? n : 1) + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	rl.rlim_cur = rl.rlim_max; /* soft to hard */
	(void)setrlimit(RLIMIT_NOFILE, &rl);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		return ar_err_set(err, AR_EINVAL, "--concurrency %d needs %llu file descriptors; the limit is %llu (raise it "
				  "with ulimit -n)", n, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
	return 0;
}

/* ---- concurrent replay --------------------------------------------------- */

/* A session of a trace, held in memory for every instance that replays it. */
struct csrc {
	const char *trace;
	const struct trace_info *ti;
	struct tr_session *ses;
	struct tr_turn **turns;
	size_t n, cap;
};

enum inst_state { INST_PENDING, INST_WAIT, INST_BUSY, INST_DONE };

/* One replay instance: a (session, repeat) with its own history. */
struct inst {
	struct xreq x; /* the request in flight (first member: xreq -> inst) */
	bool x_live;   /* x holds parser state to free */
	struct csrc *src;
	int repeat;
	enum inst_state state;
	char nonce[64];
	struct convo cv;
	size_t k;        /* next warm turn */
	int next_tier;
	struct cold_item *cold;
	size_t ncold, capcold, kcold;
	ar_ns t_start;   /* when the session started */
	ar_ns due;       /* INST_WAIT: when its next request is sent */
	ar_ns ready;     /* when its next request could go: arrival, a slot, the last answer's end */
	size_t heap_i;
	struct turn_req tr; /* what is in flight */
};

struct conc {
	struct run *r;
	struct csrc *src;
	size_t nsrc, capsrc;
	struct inst *in;
	size_t nin;
	ar_ns *arrive; /* per instance, from t0 */
	ar_ns t_slot;  /* when the latest session slot was freed */
	struct inst **heap; /* INST_WAIT instances by due */
	size_t nheap;
	ar_ns t0;
	double pace;
	bool trace_times;
	size_t active, next;
	struct done_list dl;
};

static void heap_swap(struct conc *c, size_t a, size_t b)
{
	struct inst *t = c->heap[a];
	c->heap[a] = c->heap[b];
	c->heap[b] = t;
	c->heap[a]->heap_i = a;
	c->heap[b]->heap_i = b;
}

static void heap_push(struct conc *c, struct inst *in)
{
	size_t i = c->nheap++;
	c->heap[i] = in;
	in->heap_i = i;
	while (i && c->heap[(i - 1) / 2]->due > c->heap[i]->due) {
		heap_swap(c, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static struct inst *heap_pop(struct conc *c)
{
	struct inst *top = c->heap[0];
	c->heap[0] = c->heap[--c->nheap];
	c->heap[0]->heap_i = 0;
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < c->nheap && c->heap[l]->due < c->heap[m]->due)
			m = l;
		if (l + 1 < c->nheap && c->heap[l + 1]->due < c->heap[m]->due)
			m = l + 1;
		if (m == i)
			break;
		heap_swap(c, i, m);
		i = m;
	}
	return top;
}

/* Reads every session of every trace into memory (validated already). */
static int conc_load(struct conc *c, const struct trace_info *tis, struct ar_err *err)
{
	const struct engine_cfg *cfg = c->r->cfg;
	for (size_t i = 0; i < cfg->n_traces; i++) {
		struct trace_reader *rd = NULL;
		if (trace_reader_open(&rd, cfg->traces[i], &cfg->ropts, err) < 0)
			return -1;
		for (;;) {
			struct trace_item it = {0};
			struct trace_diag d;
			int n = trace_reader_next(rd, &it, &d, err);
			if (n == TRACE_EOF)
				break;
			if (n == TRACE_FATAL || n == TRACE_BAD) {
				if (n == TRACE_BAD)
					ar_err_set(err, AR_EFORMAT, "%s:%llu: the trace changed during the run", cfg->traces[i],
						   (unsigned long long)trace_reader_line(rd));
				trace_reader_close(rd);
				return -1;
			}
			if (n != TRACE_ITEM)
				continue;
			if (it.kind == TRACE_ITEM_SESSION) {
				if (c->nsrc == c->capsrc) {
					size_t cap = c->capsrc ? 2 * c->capsrc : 8;
					struct csrc *p = realloc(c->src, cap * sizeof *p);
					if (!p)
						goto oom;
					c->src = p;
					c->capsrc = cap;
				}
				struct csrc *s = &c->src[c->nsrc++];
				memset(s, 0, sizeof *s);
				s->trace = cfg->traces[i];
				s->ti = &tis[i];
				s->ses = it.session;
				it.session = NULL;
			} else if (c->nsrc) {
				struct csrc *s = &c->src[c->nsrc - 1];
				if (s->n == s->cap) {
					size_t cap = s->cap ? 2 * s->cap : 16;
					struct tr_turn **p = realloc(s->turns, cap * sizeof *p);
					if (!p)
						goto oom;
					s->turns = p;
					s->cap = cap;
				}
				s->turns[s->n++] = it.turn;
				it.turn = NULL;
			}
			trace_item_clear(&it);
			continue;
		oom:
			trace_item_clear(&it);
			trace_reader_close(rd);
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
		trace_reader_close(rd);
	}
	return 0;
}

static void inst_release(struct inst *in)
{
	if (in->x_live) {
		xreq_free(&in->x);
		in->x_live = false;
	}
	for (size_t k = 0; k < in->ncold; k++) {
		free(in->cold[k].body);
		sim_prompt_free(&in->cold[k].sp);
	}
	free(in->cold);
	in->cold = NULL;
	in->ncold = in->capcold = in->kcold = 0;
	convo_free(&in->cv);
}

/* Builds and sends the instance's next request, or finishes the instance. */
static int inst_send(struct conc *c, struct inst *in, struct ar_err *err)
{
	struct run *r = c->r;
	const struct engine_cfg *cfg = r->cfg;
	struct csrc *s = in->src;
	if (in->x_live) {
		xreq_free(&in->x);
		in->x_live = false;
	}
	bool warm = in->k < s->n && !r->stop;
	bool cold = !warm && in->kcold < in->ncold && !r->stop;
	if (!warm && !cold) {
		in->state = INST_DONE;
		inst_release(in);
		c->active--;
		c->t_slot = in->ready; /* the session's last answer ended: its slot is free */
		return 0;
	}
	struct turn_req t;
	memset(&t, 0, sizeof t);
	t.trace = s->trace;
	t.ses = s->ses;
	t.turns = turns_of(s->ti, s->ses->id);
	t.repeat = in->repeat;
	if (cold) {
		struct cold_item *ci = &in->cold[in->kcold++];
		t.turn = ci->turn;
		t.cache = "cold";
		t.context_tokens = ci->context_tokens;
		t.max_tokens = ci->max_tokens;
		t.body = ci->body;
		t.body_len = ci->body_len;
	} else {
		const struct tr_turn *turn = s->turns[in->k++];
		if (convo_step(&in->cv, turn, err) < 0)
			return -1;
		int64_t ctx = convo_tokens(&in->cv);
		int64_t max_tokens = tr_response_output_tokens(turn->response);
		struct req_ctx rq = {s->ses, &in->cv, in->nonce, cfg->model, max_tokens, cfg->num_ctx, cfg->plain, false,
				     r->base, cfg->token_ids, cfg->max_tokens_field};
		buf_reset(&r->req_body);
		if (r->ad->build(r->ad, &rq, &r->req_body, err) < 0)
			return -1;
		if (add_extra(cfg, &r->req_body) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		bool want_cold = false;
		if (cfg->cold == COLD_EVERY)
			want_cold = true;
		else if (cfg->cold == COLD_DEEPEST) {
			const struct sess_info *si = info_of(s->ti, s->ses->id);
			want_cold = turn->i == 0 || (si && turn->i == si->deepest_turn);
		} else if (cfg->cold == COLD_TIERS) {
			want_cold = turn->i == 0;
			while (in->next_tier < 3 && ctx >= cold_tiers[in->next_tier]) {
				want_cold = true;
				in->next_tier++;
			}
		}
		if (want_cold) {
			if (in->ncold == in->capcold) {
				size_t cap = in->capcold ? in->capcold * 2 : 4;
				struct cold_item *c2 = realloc(in->cold, cap * sizeof *c2);
				if (!c2)
					return ar_err_set(err, AR_ENOMEM, "out of memory");
				in->cold = c2;
				in->capcold = cap;
			}
			char cn[64];
			make_nonce(r, cn, sizeof cn, "cold");
			struct req_ctx cq = rq;
			cq.nonce = cn;
			struct buf cb = BUF_INIT;
			if (r->ad->build(r->ad, &cq, &cb, err) < 0 || add_extra(cfg, &cb) < 0) {
				buf_free(&cb);
				return err->code ? -1 : ar_err_set(err, AR_ENOMEM, "out of memory");
			}
			struct cold_item *ci = &in->cold[in->ncold++];
			memset(ci, 0, sizeof *ci);
			sim_prompt_init(&ci->sp);
			ci->turn = turn->i;
			ci->context_tokens = ctx;
			ci->max_tokens = max_tokens;
			ci->body_len = cb.len;
			ci->body = buf_detach(&cb);
		}
		t.turn = turn->i;
		t.cache = "warm";
		t.context_tokens = ctx;
		t.max_tokens = max_tokens;
		t.body = r->req_body.data;
		t.body_len = r->req_body.len;
	}
	in->tr = t;
	in->tr.body = NULL; /* hx_start copied it */
	in->state = INST_BUSY;
	in->x_live = true;
	if (req_start(r, &t, &in->x, false, err) < 0)
		return -1;
	in->x.dl = &c->dl;
	in->x.due = in->ready;
	return 0;
}

/* When the instance's next request is due: the recorded pacing, if any. */
static ar_ns inst_due(const struct conc *c, const struct inst *in)
{
	const struct csrc *s = in->src;
	if (c->pace <= 0 || in->k >= s->n || (in->k == 0 && !c->trace_times))
		return 0;
	const struct tr_turn *turn = s->turns[in->k];
	double t = turn->has_t ? turn->t : 0, t0 = s->turns[0]->has_t ? s->turns[0]->t : 0;
	if (c->trace_times)
		return c->t0 + (ar_ns)(c->pace * t * 1e9);
	return in->t_start + (ar_ns)(c->pace * (t - t0) * 1e9);
}

/* Sends now, or waits in the heap until the instance's next turn is due. */
static int inst_next(struct conc *c, struct inst *in, ar_ns now, struct ar_err *err)
{
	ar_ns due = inst_due(c, in);
	if (due > in->ready)
		in->ready = due;
	if (due > now && !c->r->stop) {
		in->state = INST_WAIT;
		in->due = due;
		heap_push(c, in);
		return 0;
	}
	return inst_send(c, in, err);
}

static int conc_run(struct run *r, const struct trace_info *tis, struct ar_err *err)
{
	const struct engine_cfg *cfg = r->cfg;
	struct conc c;
	memset(&c, 0, sizeof c);
	c.r = r;
	c.dl.tail = &c.dl.head;
	int rc = -1;
	int conc_n = cfg->concurrency > 1 ? cfg->concurrency : 1;
	c.trace_times = cfg->arrival.kind == ARRIVAL_TRACE;
	c.pace = cfg->pace < 0 ? (c.trace_times ? 1.0 : 0.0) : cfg->pace;
	if (conc_load(&c, tis, err) < 0)
		goto out;
	if (!c.nsrc) {
		rc = 0;
		goto out;
	}
	/* instances: every session x repeats, more copies when N asks for more */
	size_t copies = (size_t)(cfg->repeats > 0 ? cfg->repeats : 1);
	if (c.nsrc * copies < (size_t)conc_n) {
		size_t want = ((size_t)conc_n + c.nsrc - 1) / c.nsrc;
		note(r, "%d concurrent sessions from %zu trace session%s: each is replayed %zu times (repeat = copy, each "
			"with its own nonce) instead of %zu", conc_n, c.nsrc, c.nsrc == 1 ? "" : "s", want, copies);
		copies = want;
	}
	size_t nsub = 0;
	for (size_t i = 0; i < c.nsrc; i++)
		nsub += c.src[i].ses->parent != NULL;
	if (nsub)
		note(r, "%zu subagent session%s replayed as independent sessions (not started by their parent)", nsub,
		     nsub == 1 ? "" : "s");
	c.nin = c.nsrc * copies;
	c.in = calloc(c.nin, sizeof *c.in);
	c.arrive = calloc(c.nin, sizeof *c.arrive);
	c.heap = calloc(c.nin, sizeof *c.heap);
	if (!c.in || !c.arrive || !c.heap) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c.nin; i++) {
		/* repeat-major: the first N in flight are as many distinct sessions as there are */
		c.in[i].src = &c.src[i % c.nsrc];
		c.in[i].repeat = (int)(i / c.nsrc);
		c.in[i].state = INST_PENDING;
	}
	arrival_schedule(&cfg->arrival, cfg->seed, c.nin, c.arrive);
	hx_loop_set_max_conns(r->loop, (long)conc_n + 16);
	c.t0 = clock_now();
	for (;;) {
		ar_ns now = clock_now();
		if (cfg->stop && *cfg->stop && !r->stop) {
			r->stop = true;
			r->sum->interrupted = true;
		}
		/* start sessions whose arrival has come, while there is a slot (a
		 * batch at a time, like finished requests below) */
		size_t started = 0;
		while (!r->stop && c.active < (size_t)conc_n && c.next < c.nin && c.t0 + c.arrive[c.next] <= now &&
		       started++ < CONC_BATCH) {
			struct inst *in = &c.in[c.next++];
			convo_init(&in->cv, false);
			convo_reset(&in->cv, in->src->ses);
			make_nonce(r, in->nonce, sizeof in->nonce, "run");
			in->t_start = now;
			/* due at its arrival, or when a slot freed if all were taken then */
			in->ready = c.t0 + c.arrive[c.next - 1];
			if (c.t_slot > in->ready)
				in->ready = c.t_slot;
			c.active++;
			if (inst_next(&c, in, now, err) < 0)
				goto out;
		}
		/* paced turns that are due */
		size_t paced = 0;
		while (c.nheap && (c.heap[0]->due <= now || r->stop) && paced++ < CONC_BATCH) {
			struct inst *in = heap_pop(&c);
			if (inst_send(&c, in, err) < 0)
				goto out;
		}
		if (c.active == 0 && (r->stop || c.next >= c.nin))
			break;
		ar_ns until = c.nheap ? c.heap[0]->due : 0;
		if (!r->stop && c.active < (size_t)conc_n && c.next < c.nin) {
			ar_ns a = c.t0 + c.arrive[c.next];
			if (!until || a < until)
				until = a;
		}
		if (until == 0 && !hx_running(r->loop))
			break; /* nothing can happen any more (cannot be: active > 0 means busy or waiting) */
		if (cfg->stop && (!until || until > now + 200 * AR_NS_PER_MS))
			until = now + 200 * AR_NS_PER_MS; /* notice a signal soon */
		if (c.dl.n)
			until = now; /* finished requests wait: only read what is ready (arrivals and paced
				      * turns left over by their batch limit are due, so `until` is past) */
		if (hx_poll(r->loop, until, err) < 0)
			goto out;
		if (!c.dl.n)
			continue;
		/* Requests that finished together are handled CONC_BATCH at a time,
		 * with a look at the sockets between batches: when a thousand
		 * sessions finish at once, their rows and next requests are a burst
		 * of work during which first tokens of others arrive, and a token
		 * read after the next one arrived shares its (later) kernel stamp.
		 * A batch's rows go in one transaction, committed before any of
		 * their sessions sends its next request. */
		struct xreq *batch = c.dl.head, **cut = &c.dl.head;
		size_t nb = 0;
		while (*cut && nb < CONC_BATCH) {
			cut = &(*cut)->next_done;
			nb++;
		}
		c.dl.head = *cut;
		*cut = NULL;
		c.dl.n -= nb;
		if (!c.dl.head)
			c.dl.tail = &c.dl.head;
		bool tx = nb > 1;
		if (tx && store_tx_begin(r->st, err) < 0)
			goto out;
		for (struct xreq *x = batch; x; x = x->next_done) {
			struct inst *in = (struct inst *)x;
			struct engine_request q;
			if (req_finish(r, &in->tr, &in->x, &q, err) < 0)
				goto out;
			failure_from(r, &q);
			if (strcmp(q.row.outcome, "ok") && cfg->until_fail)
				r->stop = true;
			if (cfg->history_generated && !strcmp(in->tr.cache, "warm") && !strcmp(q.row.outcome, "ok") &&
			    convo_set_generated(&in->cv, in->x.acc.text.data ? in->x.acc.text.data : "", in->x.acc.text.len) < 0) {
				ar_err_set(err, AR_ENOMEM, "out of memory");
				goto out;
			}
		}
		if (tx && store_tx_commit(r->st, err) < 0)
			goto out;
		now = clock_now();
		struct xreq *x = batch;
		while (x) {
			struct xreq *nx = x->next_done;
			((struct inst *)x)->ready = x->res.t_done;
			if (inst_next(&c, (struct inst *)x, now, err) < 0)
				goto out;
			x = nx;
		}
	}
	rc = 0;
out:
	if (rc < 0 && r->loop)
		hx_abort_all(r->loop); /* their on_done still points at instances: before freeing them */
	for (size_t i = 0; i < c.nin; i++)
		if (c.in[i].state != INST_PENDING && c.in[i].state != INST_DONE)
			inst_release(&c.in[i]);
	for (size_t i = 0; i < c.nsrc; i++) {
		for (size_t k = 0; k < c.src[i].n; k++)
			tr_turn_free(c.src[i].turns[k]);
		free(c.src[i].turns);
		tr_session_free(c.src[i].ses);
	}
	free(c.src);
	free(c.in);
	free(c.arrive);
	free(c.heap);
	return rc;
}

int engine_run(const struct engine_cfg *cfg, struct store *st, int64_t run_id, int64_t config_id,
	       const struct engine_obs *obs, struct engine_summary *sum, struct ar_err *err)
{
	struct run r;
	memset(&r, 0, sizeof r);
	memset(sum, 0, sizeof *sum);
	sum->failure.mem_bytes = -1;
	r.cfg = cfg;
	r.t_begin = clock_now();
	r.st = st;
	r.run_id = run_id;
	r.config_id = config_id;
	r.obs = obs;
	r.sum = sum;
	buf_init(&r.req_body, 0);
	struct trace_info *tis = calloc(cfg->n_traces ? cfg->n_traces : 1, sizeof *tis);
	int rc = -1;
	if (!tis)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	sim_prompt_init(&r.sp);
	bool simulated = !strcmp(cfg->backend, "sim");
	bool concurrent = cfg->concurrency > 1 || cfg->pace > 0 || cfg->arrival.kind != ARRIVAL_ALL;
	r.concurrent = concurrent;
	if (simulated && concurrent) {
		ar_err_set(err, AR_EINVAL, "--concurrency, --pace and --arrival need an HTTP backend: the in-process "
			   "simulator replays one session at a time in modelled time (run 'agentreplay sim serve' and "
			   "use --backend llama-server:URL)");
		goto out;
	}
	if (concurrent && (rc = raise_nofile(cfg->concurrency, err)) < 0)
		goto out;
	rc = -1;
	if (!simulated && !(r.ad = adapter_find(cfg->backend))) {
		ar_err_set(err, AR_EINVAL, "unknown backend '%s' (known: sim, %s)", cfg->backend, adapter_names());
		goto out;
	}
	for (size_t i = 0; i < cfg->n_traces; i++)
		if (validate(&r, cfg->traces[i], &tis[i], err) < 0)
			goto out;
	if (!simulated) {
		/* sent_ns counts from t_begin: its CLOCK_MONOTONIC value lets rows be
		 * lined up with memory samples (t_ns) and a server's own log */
		char ev[96];
		snprintf(ev, sizeof ev, "{\"t_begin_monotonic_ns\":%lld}", (long long)r.t_begin);
		if (store_event_add(st, run_id, config_id, "replay_clock", ev, err) < 0)
			goto out;
	}
	rng_seed(&r.rng, (uint64_t)clock_now() ^ (uint64_t)config_id << 32);
	if (simulated) {
		/* in-process, virtual time: no transport, no warmup (nothing to load) */
		if (sim_new(&r.sim, cfg->sim_spec && *cfg->sim_spec ? cfg->sim_spec : NULL, err) < 0)
			goto out;
		int none = 0;
		for (int rep = 0; rep < cfg->repeats && !r.stop; rep++)
			for (size_t i = 0; i < cfg->n_traces && !r.stop; i++)
				if (replay_trace(&r, cfg->traces[i], &tis[i], rep, false, &none, err) < 0)
					goto out;
		rc = 0;
		goto out;
	}
	if (rules_load(&r.rules, cfg->rules_dir ? cfg->rules_dir : rules_default_dir(), r.ad->family, err) < 0)
		goto out;
	if (hx_loop_new(&r.loop, err) < 0)
		goto out;
	size_t ul = strlen(cfg->url);
	while (ul && cfg->url[ul - 1] == '/')
		ul--;
	snprintf(r.url, sizeof r.url, "%.*s%s", (int)ul, cfg->url, r.ad->path);
	snprintf(r.base, sizeof r.base, "%.*s", (int)ul, cfg->url);
	snprintf(r.endpoint, sizeof r.endpoint, "POST %s", r.ad->path);
	snprintf(r.metrics_url, sizeof r.metrics_url, "%.*s/metrics", (int)ul, cfg->url);
	if (!reachable(&r, err))
		goto out;
	double probe;
	r.metrics_ok = metrics_cached(&r, &probe);
	if (memrun_start(&r.mem, cfg, r.metrics_url, err) < 0)
		goto out;

	int warmups = cfg->warmup;
	for (size_t i = 0; i < cfg->n_traces && warmups > 0 && !r.stop; i++)
		if (replay_trace(&r, cfg->traces[i], &tis[i], 0, true, &warmups, err) < 0)
			goto out;
	if (concurrent) {
		if (!r.stop && conc_run(&r, tis, err) < 0)
			goto out;
		rc = 0;
		goto out;
	}
	for (int rep = 0; rep < cfg->repeats && !r.stop; rep++)
		for (size_t i = 0; i < cfg->n_traces && !r.stop; i++)
			if (replay_trace(&r, cfg->traces[i], &tis[i], rep, false, &warmups, err) < 0)
				goto out;
	rc = 0;
out:
	if (rc == 0 && r.loop) {
		/* how the arrival times were taken: the kernel's receive stamps or,
		 * where it gave none, the clock when the loop got to the bytes */
		long long kern, clk;
		hx_loop_stamps(r.loop, &kern, &clk);
		char ev[96];
		snprintf(ev, sizeof ev, "{\"kernel_rx\":%lld,\"clock\":%lld}", kern, clk);
		rc = store_event_add(st, run_id, config_id, "arrival_stamps", ev, err);
	}
	if (rc == 0 && r.mem) {
		rc = memrun_finish(r.mem, st, config_id, &sum->mem, err);
		r.mem = NULL;
	}
	memrun_free(r.mem);
	for (size_t i = 0; i < cfg->n_traces; i++)
		trace_info_free(&tis[i]);
	free(tis);
	rules_free(r.rules);
	hx_loop_free(r.loop);
	buf_free(&r.req_body);
	sim_prompt_free(&r.sp);
	sim_free(r.sim);
	return rc;
}
