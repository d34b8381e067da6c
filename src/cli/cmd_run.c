/* agentreplay run: replay traces turn by turn against one backend. */
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli.h"
#include "engine.h"
#include "jsonh.h"
#include "memrun.h"
#include "procmem.h"
#include "store.h"
#include "units.h"

enum {
	O_BACKEND = 1, O_MODEL, O_DB, O_REPEATS, O_WARMUP, O_COLD, O_HISTORY, O_UNTIL_FAIL, O_SLO, O_TTFT_TIMEOUT,
	O_STALL_TIMEOUT, O_JSON, O_QUIET, O_PLAIN, O_NUM_CTX, O_RULES, O_LENIENT, O_MAXLINE, O_EXTRA, O_TOKEN_IDS, O_MAXFIELD, O_COLD_ERASE,
	O_CONCURRENCY, O_ARRIVAL, O_PACE, O_SEED,
	O_SERVER_PID, O_MEM_INTERVAL, O_MEM_BUDGET,
};

static const struct cli_opt run_opts[] = {
	{"backend", 'b', "SPEC", "sim[:key=value,...] (default), openai:URL, llama-server:URL, ollama:URL, anthropic:URL", O_BACKEND},
	{"model", 'm', "NAME", "model name sent in each request", O_MODEL},
	{"db", 0, "FILE", "results store (default agentreplay.db)", O_DB},
	{"repeats", 'n', "N", "measured replays per configuration (default 3)", O_REPEATS},
	{"warmup", 0, "N", "warmup requests before measuring (default 1)", O_WARMUP},
	{"cold", 0, "MODE", "tiers (default: first turn and 32k/64k/128k), deepest (first and deepest turn), every, none", O_COLD},
	{"cold-erase", 0, NULL, "llama-server: also erase every slot before each cold request (needs its --slot-save-path)",
	 O_COLD_ERASE},
	{"history", 0, "MODE", "recorded (default): the trace's answers; generated: the backend's", O_HISTORY},
	{"until-fail", 0, NULL, "stop at the first turn that is not ok and report the failure point", O_UNTIL_FAIL},
	{"slo", 0, "LIST", "thresholds that make a completed turn an 'slo' failure: ttft_ms=N,decode_tps=N", O_SLO},
	{"ttft-timeout", 0, "DUR", "no first token by then is a timeout (default 600s)", O_TTFT_TIMEOUT},
	{"stall-timeout", 0, "DUR", "no data for this long mid-stream is a timeout (default 60s)", O_STALL_TIMEOUT},
	{"concurrency", 'c', "N", "sessions in flight at once on one event loop (default 1; sessions are cloned with "
				  "their own nonces when the traces hold fewer)", O_CONCURRENCY},
	{"arrival", 0, "MODE", "when sessions start: all (default), stagger:DURATION, poisson:RATE (per second, "
			       "--seed), trace (the recorded t of each turn from the start of the replay)", O_ARRIVAL},
	{"pace", 0, "X", "wait the trace's recorded gaps t between turns, scaled by X (0 = no wait: default; "
			 "1 under --arrival trace)", O_PACE},
	{"seed", 0, "N", "seed of --arrival poisson (default 1)", O_SEED},
	{"json", 0, NULL, "print one JSON object on stdout (the contract scripts parse)", O_JSON},
	{"quiet", 'q', NULL, "no progress on stderr", O_QUIET},
	{"plain-openai", 0, NULL, "send only standard OpenAI fields (no ignore_eos/min_tokens)", O_PLAIN},
	{"token-ids", 0, NULL, "llama-server: send the prompt as token ids, tokenized before the clock starts "
				"(TTFT then excludes the server's tokenizer)", O_TOKEN_IDS},
	{"max-tokens-field", 0, "NAME", "openai: max_tokens (default), max_completion_tokens, or both", O_MAXFIELD},
	{"num-ctx", 0, "TOKENS", "Ollama options.num_ctx", O_NUM_CTX},
	{"extra", 0, "JSON", "an object whose members are added to every request body (e.g. sampling params)", O_EXTRA},
	{"rules-dir", 0, "DIR", "failure rule files (default: the shipped replay/rules)", O_RULES},
	{"lenient", 0, NULL, "skip trace lines of unknown type", O_LENIENT},
	{"max-line-bytes", 0, "SIZE", "longest trace line accepted (default 16MiB)", O_MAXLINE},
	{"server-pid", 0, "PID", "the server's process: its tree's memory is sampled (default: the process listening "
				 "on the URL's port, when local)", O_SERVER_PID},
	{"mem-interval", 0, "DUR", "memory sampling interval (default 100ms; 0 = off)", O_MEM_INTERVAL},
	{"mem-budget", 0, "SIZE", "memory the OOM projection measures against (default: host memory available "
				  "at the start, or the GPU's total)", O_MEM_BUDGET},
	{0},
};

struct run_cli {
	struct engine_cfg e;
	const char *spec;
	const char *db;
	bool json, quiet;
	char url_buf[2048];
	char backend_buf[64];
	char extra_buf[8192];
};

static int run_opt(void *ctx, int id, const char *val, struct ar_err *err)
{
	struct run_cli *c = ctx;
	uint64_t v;
	int64_t ns;
	switch (id) {
	case O_BACKEND: c->spec = val; break;
	case O_MODEL: c->e.model = val; break;
	case O_DB: c->db = val; break;
	case O_REPEATS:
		if (units_parse_count(val, &v, err) < 0)
			return -1;
		if (v < 1 || v > 1000)
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range (1 to 1000)", val);
		c->e.repeats = (int)v;
		break;
	case O_WARMUP:
		if (units_parse_count(val, &v, err) < 0)
			return -1;
		if (v > 100)
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range (0 to 100)", val);
		c->e.warmup = (int)v;
		break;
	case O_COLD:
		if (!strcmp(val, "tiers"))
			c->e.cold = COLD_TIERS;
		else if (!strcmp(val, "every"))
			c->e.cold = COLD_EVERY;
		else if (!strcmp(val, "deepest"))
			c->e.cold = COLD_DEEPEST;
		else if (!strcmp(val, "none"))
			c->e.cold = COLD_NONE;
		else
			return ar_err_set(err, AR_EINVAL, "'%s' is not tiers, deepest, every or none", val);
		break;
	case O_HISTORY:
		if (!strcmp(val, "recorded"))
			c->e.history_generated = false;
		else if (!strcmp(val, "generated"))
			c->e.history_generated = true;
		else
			return ar_err_set(err, AR_EINVAL, "'%s' is not recorded or generated", val);
		break;
	case O_UNTIL_FAIL: c->e.until_fail = true; break;
	case O_SLO: {
		char buf[256];
		snprintf(buf, sizeof buf, "%s", val);
		for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
			char *eq = strchr(tok, '=');
			if (!eq)
				return ar_err_set(err, AR_EINVAL, "'%s' is not key=value (ttft_ms=N, decode_tps=N)", tok);
			*eq = '\0';
			double x;
			if (units_parse_real(eq + 1, &x, err) < 0)
				return -1;
			if (x <= 0)
				return ar_err_set(err, AR_EINVAL, "%s must be > 0", tok);
			if (!strcmp(tok, "ttft_ms"))
				c->e.slo_ttft_ms = x;
			else if (!strcmp(tok, "decode_tps"))
				c->e.slo_decode_tps = x;
			else
				return ar_err_set(err, AR_EINVAL, "unknown SLO '%s' (ttft_ms, decode_tps)", tok);
		}
		break;
	}
	case O_TTFT_TIMEOUT:
	case O_STALL_TIMEOUT:
		if (units_parse_duration_ns(val, &ns, err) < 0)
			return -1;
		if (ns <= 0)
			return ar_err_set(err, AR_EINVAL, "'%s' must be more than 0", val);
		if (id == O_TTFT_TIMEOUT)
			c->e.ttft_timeout = ns;
		else
			c->e.stall_timeout = ns;
		break;
	case O_CONCURRENCY:
		if (units_parse_count(val, &v, err) < 0)
			return -1;
		if (v < 1 || v > 100000)
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range (1 to 100000)", val);
		c->e.concurrency = (int)v;
		break;
	case O_ARRIVAL:
		if (arrival_parse(val, &c->e.arrival, err) < 0)
			return -1;
		break;
	case O_PACE: {
		double x;
		if (units_parse_real(val, &x, err) < 0)
			return -1;
		if (!(x >= 0) || x > 1e6)
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range (0 to 1e6)", val);
		c->e.pace = x;
		break;
	}
	case O_SEED:
		if (units_parse_count(val, &v, err) < 0)
			return -1;
		c->e.seed = v;
		break;
	case O_JSON: c->json = true; break;
	case O_QUIET: c->quiet = true; break;
	case O_PLAIN: c->e.plain = true; break;
	case O_TOKEN_IDS: c->e.token_ids = true; break;
	case O_COLD_ERASE: c->e.cold_erase = true; break;
	case O_MAXFIELD:
		if (!strcmp(val, "max_tokens"))
			c->e.max_tokens_field = 0;
		else if (!strcmp(val, "max_completion_tokens"))
			c->e.max_tokens_field = 1;
		else if (!strcmp(val, "both"))
			c->e.max_tokens_field = 2;
		else
			return ar_err_set(err, AR_EINVAL, "'%s' is not max_tokens, max_completion_tokens or both", val);
		break;
	case O_NUM_CTX:
		if (units_parse_tokens(val, &v, err) < 0)
			return -1;
		c->e.num_ctx = (int64_t)v;
		break;
	case O_RULES: c->e.rules_dir = val; break;
	case O_EXTRA: {
		cJSON *j = cJSON_Parse(val);
		if (!cJSON_IsObject(j)) {
			cJSON_Delete(j);
			return ar_err_set(err, AR_EINVAL, "'%s' is not a JSON object", val);
		}
		struct buf b = BUF_INIT;
		int bad = jsonh_put(&b, j) < 0;
		cJSON_Delete(j);
		if (bad || b.len < 2) {
			buf_free(&b);
			return ar_err_set(err, AR_EINVAL, "cannot use --extra '%s'", val);
		}
		/* keep the members without the braces */
		b.data[b.len - 1] = '\0';
		snprintf(c->extra_buf, sizeof c->extra_buf, "%s", b.data + 1);
		buf_free(&b);
		c->e.extra_json = c->extra_buf;
		break;
	}
	case O_SERVER_PID:
		if (units_parse_count(val, &v, err) < 0)
			return -1;
		if (v < 1 || v > 0x7fffffff)
			return ar_err_set(err, AR_EINVAL, "'%s' is not a process id", val);
		c->e.server_pid = (int64_t)v;
		break;
	case O_MEM_INTERVAL:
		if (units_parse_duration_ns(val, &ns, err) < 0)
			return -1;
		if (ns < 0 || (ns > 0 && ns < AR_NS_PER_MS) || ns > 3600 * AR_NS_PER_S)
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range (0 = off, or 1ms to 1h)", val);
		c->e.mem_interval_s = (double)ns / 1e9;
		break;
	case O_MEM_BUDGET:
		if (units_parse_bytes(val, &v, err) < 0)
			return -1;
		if (v < 1 || v > (uint64_t)INT64_MAX)
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range", val);
		c->e.mem_budget = (int64_t)v;
		break;
	case O_LENIENT: c->e.ropts.lenient = true; break;
	case O_MAXLINE:
		if (units_parse_bytes(val, &v, err) < 0)
			return -1;
		if (v < 1024 || v > (1ull << 31))
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range (1KiB to 2GiB)", val);
		c->e.ropts.max_line = (size_t)v;
		break;
	}
	return 0;
}

/* ---- what we show ------------------------------------------------------- */

struct row_copy {
	char session[128];
	int64_t turn, repeat, ctx, prompt, cached, completion;
	bool cold;
	double ttft, decode, prefill, ttfb, e2e, itl50, itl99;
	int64_t sent_ns, in_flight, due_ns;
	char outcome[24];
};

struct view {
	struct run_cli *c;
	bool tty;
	cJSON *requests; /* for --json */
	struct row_copy *rows;
	size_t n, cap;
	bool line_open;
};

static cJSON *num_or_null(double v)
{
	return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

static cJSON *int_or_null(int64_t v)
{
	return v < 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)v);
}

static void on_request(void *ud, const struct engine_request *q)
{
	struct view *v = ud;
	const struct store_request *r = &q->row;
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		struct row_copy *p = realloc(v->rows, cap * sizeof *p);
		if (!p)
			return;
		v->rows = p;
		v->cap = cap;
	}
	struct row_copy *rc = &v->rows[v->n++];
	snprintf(rc->session, sizeof rc->session, "%s", r->session);
	rc->turn = r->turn;
	rc->repeat = r->repeat;
	rc->ctx = r->context_tokens_est;
	rc->prompt = r->prompt_tokens;
	rc->cached = r->cached_tokens;
	rc->completion = r->completion_tokens;
	rc->cold = !strcmp(r->cache, "cold");
	rc->ttft = r->ttft_ms;
	rc->decode = r->decode_tps;
	rc->prefill = r->prefill_tps;
	rc->ttfb = r->ttfb_ms;
	rc->e2e = r->e2e_ms;
	rc->itl50 = r->itl_p50_ms;
	rc->itl99 = r->itl_p99_ms;
	rc->sent_ns = r->sent_ns;
	rc->in_flight = r->in_flight;
	rc->due_ns = r->due_ns;
	snprintf(rc->outcome, sizeof rc->outcome, "%s", r->outcome);
	if (v->requests) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "session", r->session);
		cJSON_AddNumberToObject(o, "turn", (double)r->turn);
		cJSON_AddNumberToObject(o, "repeat", (double)r->repeat);
		cJSON_AddStringToObject(o, "cache", r->cache);
		cJSON_AddItemToObject(o, "context_tokens_est", int_or_null(r->context_tokens_est));
		cJSON_AddItemToObject(o, "requested_tokens", int_or_null(r->requested_tokens));
		cJSON_AddItemToObject(o, "prompt_tokens", int_or_null(r->prompt_tokens));
		cJSON_AddItemToObject(o, "cached_tokens", int_or_null(r->cached_tokens));
		cJSON_AddStringToObject(o, "cached_source", r->cached_source);
		cJSON_AddItemToObject(o, "completion_tokens", int_or_null(r->completion_tokens));
		cJSON_AddStringToObject(o, "completion_source", r->completion_source);
		cJSON_AddItemToObject(o, "connect_ms", num_or_null(r->connect_ms));
		cJSON_AddItemToObject(o, "ttfb_ms", num_or_null(r->ttfb_ms));
		cJSON_AddItemToObject(o, "ttft_ms", num_or_null(r->ttft_ms));
		cJSON_AddItemToObject(o, "decode_tps", num_or_null(r->decode_tps));
		cJSON_AddItemToObject(o, "prefill_tps", num_or_null(r->prefill_tps));
		cJSON_AddItemToObject(o, "itl_p50_ms", num_or_null(r->itl_p50_ms));
		cJSON_AddItemToObject(o, "itl_p90_ms", num_or_null(r->itl_p90_ms));
		cJSON_AddItemToObject(o, "itl_p99_ms", num_or_null(r->itl_p99_ms));
		cJSON_AddItemToObject(o, "e2e_ms", num_or_null(r->e2e_ms));
		cJSON_AddItemToObject(o, "mem_peak_bytes", int_or_null(r->mem_peak_bytes));
		cJSON_AddItemToObject(o, "sent_ns", int_or_null(r->sent_ns));
		cJSON_AddItemToObject(o, "in_flight", int_or_null(r->in_flight));
		cJSON_AddItemToObject(o, "due_ns", int_or_null(r->due_ns));
		cJSON_AddItemToObject(o, "mem_end_bytes", int_or_null(r->mem_end_bytes));
		cJSON_AddItemToObject(o, "gpu_peak_bytes", int_or_null(r->gpu_peak_bytes));
		cJSON_AddItemToObject(o, "host_drop_bytes", int_or_null(r->host_drop_bytes));
		cJSON_AddItemToObject(o, "kv_usage", num_or_null(r->kv_usage));
		cJSON *server = r->server_json ? cJSON_Parse(r->server_json) : NULL;
		cJSON_AddItemToObject(o, "server", server ? server : cJSON_CreateObject());
		cJSON_AddNumberToObject(o, "http_status", r->http_status);
		cJSON_AddStringToObject(o, "outcome", r->outcome);
		if (r->evidence)
			cJSON_AddStringToObject(o, "evidence", r->evidence);
		else
			cJSON_AddNullToObject(o, "evidence");
		if (r->flags)
			cJSON_AddStringToObject(o, "flags", r->flags);
		cJSON_AddItemToArray(v->requests, o);
	}
	if (v->c->quiet)
		return;
	char ttft[32] = "-", dec[32] = "-";
	if (!isnan(r->ttft_ms))
		snprintf(ttft, sizeof ttft, "%.0f ms", r->ttft_ms);
	if (!isnan(r->decode_tps))
		snprintf(dec, sizeof dec, "%.1f tok/s", r->decode_tps);
	if (v->tty) {
		fprintf(stderr, "\r\033[K[repeat %lld] %s turn %lld %s  ctx %lld  TTFT %s  %s  %s", (long long)r->repeat + 1,
			r->session, (long long)r->turn, r->cache, (long long)r->context_tokens_est, ttft, dec, r->outcome);
		v->line_open = true;
	} else {
		fprintf(stderr, "repeat %lld %s turn %lld %s: ctx %lld, TTFT %s, %s, %s%s%s\n", (long long)r->repeat + 1,
			r->session, (long long)r->turn, r->cache, (long long)r->context_tokens_est, ttft, dec, r->outcome,
			r->evidence ? ": " : "", r->evidence ? r->evidence : "");
	}
}

static void on_progress(void *ud, const struct engine_progress *p)
{
	struct view *v = ud;
	if (v->c->quiet || !v->tty)
		return;
	fprintf(stderr, "\r\033[K%s repeat %d/%d %s turn %lld/%lld %s, ctx %lld tokens ...", p->warmup ? "warmup" : "",
		p->repeat, p->repeats, p->session, (long long)p->turn + 1, (long long)p->turns, p->cache,
		(long long)p->context_tokens);
	v->line_open = true;
}

static void on_note(void *ud, const char *msg)
{
	struct view *v = ud;
	if (v->line_open) {
		fputc('\n', stderr);
		v->line_open = false;
	}
	fprintf(stderr, "agentreplay: %s\n", msg);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median over repeats of one figure for (session, turn, cold). */
static double median_of(const struct view *v, const char *session, int64_t turn, bool cold, int what, int *count)
{
	double vals[1024];
	int n = 0;
	for (size_t i = 0; i < v->n && n < 1024; i++) {
		const struct row_copy *r = &v->rows[i];
		if (r->turn != turn || r->cold != cold || strcmp(r->session, session))
			continue;
		double x = what == 0 ? r->ttft : what == 1 ? r->decode : what == 2 ? (double)r->cached : (double)r->prompt;
		if (!isnan(x) && x >= 0)
			vals[n++] = x;
	}
	*count = n;
	if (!n)
		return NAN;
	qsort(vals, (size_t)n, sizeof vals[0], cmp_double);
	return n % 2 ? vals[n / 2] : (vals[n / 2 - 1] + vals[n / 2]) / 2;
}

static void fmt_ms(char *out, size_t n, double ms)
{
	if (isnan(ms))
		snprintf(out, n, "-");
	else if (ms >= 10000)
		snprintf(out, n, "%.1f s", ms / 1000);
	else
		snprintf(out, n, "%.0f ms", ms);
}

static void print_table(const struct view *v, const struct engine_summary *sum, const char *simulated)
{
	if (simulated)
		printf("SIMULATED: %s (modelled, not measured)\n\n", simulated);
	printf("%-18s %5s %9s %9s %10s %10s %11s  %s\n", "session", "turn", "context", "cached", "TTFT warm", "TTFT cold",
	       "decode", "outcome");
	for (size_t i = 0; i < v->n; i++) {
		const struct row_copy *r = &v->rows[i];
		/* one line per (session, turn): the first warm row of repeat 0 */
		if (r->cold || r->repeat != 0)
			continue;
		int nw, nc, nd, nk, np;
		double tw = median_of(v, r->session, r->turn, false, 0, &nw);
		double tc = median_of(v, r->session, r->turn, true, 0, &nc);
		double dec = median_of(v, r->session, r->turn, false, 1, &nd);
		double cached = median_of(v, r->session, r->turn, false, 2, &nk);
		double prompt = median_of(v, r->session, r->turn, false, 3, &np);
		char a[32], b[32], d[32], k[32], p[32];
		fmt_ms(a, sizeof a, tw);
		fmt_ms(b, sizeof b, tc);
		snprintf(d, sizeof d, isnan(dec) ? "-" : "%.1f tok/s", dec);
		snprintf(k, sizeof k, isnan(cached) ? "-" : "%.0f", cached);
		snprintf(p, sizeof p, "%lld", (long long)(isnan(prompt) ? r->ctx : (int64_t)prompt));
		/* the worst outcome of this turn over the repeats */
		const char *oc = "ok";
		for (size_t j = 0; j < v->n; j++)
			if (v->rows[j].turn == r->turn && !strcmp(v->rows[j].session, r->session) &&
			    strcmp(v->rows[j].outcome, "ok"))
				oc = v->rows[j].outcome;
		printf("%-18.18s %5lld %9s %9s %10s %10s %11s  %s\n", r->session, (long long)r->turn, p, k, a, b, d, oc);
	}
	printf("\n%lld requests measured, %lld not ok", (long long)sum->requests, (long long)sum->failed);
	if (sum->interrupted)
		printf(" (interrupted)");
	printf(". TTFT and decode are medians over repeats.\n");
	if (sum->failure.found)
		printf("failure point: session %s turn %lld at %lld context tokens: %s\n  evidence: %s\n",
		       sum->failure.session, (long long)sum->failure.turn, (long long)sum->failure.context_tokens,
		       sum->failure.cls, sum->failure.evidence);
}

/* ---- concurrency: TTFT and cache hit against sessions in flight ------- */

static double pct_sorted(const double *v, size_t n, double p)
{
	if (!n)
		return NAN;
	size_t k = (size_t)ceil(p * (double)n);
	return v[k ? k - 1 : 0];
}

struct conc_stat {
	int64_t lo, hi; /* in_flight range */
	size_t requests, not_ok;
	double p50, p90, p99, max; /* TTFT ms */
	int64_t prompt, cached, completion;
	double first_sent_ms, last_done_ms;
};

/* Figures of the rows idx[0..n). */
static void stat_of(const struct view *v, const size_t *idx, size_t n, struct conc_stat *st)
{
	double *t = malloc((n ? n : 1) * sizeof *t);
	size_t nt = 0;
	st->requests = n;
	st->not_ok = 0;
	st->prompt = st->cached = st->completion = 0;
	st->first_sent_ms = st->last_done_ms = NAN;
	for (size_t i = 0; i < n; i++) {
		const struct row_copy *r = &v->rows[idx[i]];
		if (t && !isnan(r->ttft))
			t[nt++] = r->ttft;
		if (strcmp(r->outcome, "ok"))
			st->not_ok++;
		if (r->prompt >= 0 && r->cached >= 0) {
			st->prompt += r->prompt;
			st->cached += r->cached;
		}
		if (r->completion > 0)
			st->completion += r->completion;
		if (r->sent_ns >= 0) {
			double s0 = (double)r->sent_ns / 1e6, e = s0 + (isnan(r->e2e) ? 0 : r->e2e);
			if (isnan(st->first_sent_ms) || s0 < st->first_sent_ms)
				st->first_sent_ms = s0;
			if (isnan(st->last_done_ms) || e > st->last_done_ms)
				st->last_done_ms = e;
		}
	}
	if (t)
		qsort(t, nt, sizeof *t, cmp_double);
	st->p50 = t ? pct_sorted(t, nt, 0.50) : NAN;
	st->p90 = t ? pct_sorted(t, nt, 0.90) : NAN;
	st->p99 = t ? pct_sorted(t, nt, 0.99) : NAN;
	st->max = t && nt ? t[nt - 1] : NAN;
	free(t);
}

static double hit_of(const struct conc_stat *st) { return st->prompt > 0 ? (double)st->cached / (double)st->prompt : NAN; }

static const struct view *sort_view;

static int cmp_in_flight(const void *a, const void *b)
{
	int64_t x = sort_view->rows[*(const size_t *)a].in_flight, y = sort_view->rows[*(const size_t *)b].in_flight;
	return x < y ? -1 : x > y;
}

static int cmp_session(const void *a, const void *b)
{
	const struct row_copy *x = &sort_view->rows[*(const size_t *)a], *y = &sort_view->rows[*(const size_t *)b];
	int c = strcmp(x->session, y->session);
	if (c)
		return c;
	if (x->repeat != y->repeat)
		return x->repeat < y->repeat ? -1 : 1;
	return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static cJSON *stat_json(const struct conc_stat *st)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "requests", (double)st->requests);
	cJSON_AddNumberToObject(o, "not_ok", (double)st->not_ok);
	cJSON_AddItemToObject(o, "ttft_p50_ms", num_or_null(st->p50));
	cJSON_AddItemToObject(o, "ttft_p90_ms", num_or_null(st->p90));
	cJSON_AddItemToObject(o, "ttft_p99_ms", num_or_null(st->p99));
	cJSON_AddItemToObject(o, "ttft_max_ms", num_or_null(st->max));
	cJSON_AddNumberToObject(o, "prompt_tokens", (double)st->prompt);
	cJSON_AddNumberToObject(o, "cached_tokens", (double)st->cached);
	cJSON_AddNumberToObject(o, "completion_tokens", (double)st->completion);
	cJSON_AddItemToObject(o, "cache_hit", num_or_null(hit_of(st)));
	return o;
}

/* The concurrency summary: by in-flight bucket (1, 2-3, 4-7, ...) and per
 * session (session, repeat). Prints the human form unless json; returns the
 * JSON form (or NULL when json is false). */
static cJSON *concurrency_summary(const struct view *v, const struct engine_cfg *e, bool json)
{
	size_t *idx = malloc((v->n ? v->n : 1) * sizeof *idx);
	if (!idx)
		return NULL;
	for (size_t i = 0; i < v->n; i++)
		idx[i] = i;
	sort_view = v;
	qsort(idx, v->n, sizeof *idx, cmp_in_flight);
	char arr[64];
	double pace = e->pace < 0 ? (e->arrival.kind == ARRIVAL_TRACE ? 1 : 0) : e->pace;
	/* how far sends fell behind their schedule (arrival, pacing, the previous
	 * answer): a client that cannot keep up sends less than it was asked to,
	 * and its TTFTs look better than the load it meant to offer */
	double *lag = malloc((v->n ? v->n : 1) * sizeof *lag);
	size_t nlag = 0;
	for (size_t i = 0; lag && i < v->n; i++)
		if (v->rows[i].due_ns >= 0 && v->rows[i].sent_ns >= 0)
			lag[nlag++] = (double)(v->rows[i].sent_ns - v->rows[i].due_ns) / 1e6;
	if (lag)
		qsort(lag, nlag, sizeof *lag, cmp_double);
	double lag50 = nlag ? pct_sorted(lag, nlag, 0.50) : NAN, lag99 = nlag ? pct_sorted(lag, nlag, 0.99) : NAN,
	       lagmax = nlag ? lag[nlag - 1] : NAN;
	free(lag);
	cJSON *root = json ? cJSON_CreateObject() : NULL, *by = NULL, *ses = NULL;
	if (root) {
		cJSON_AddNumberToObject(root, "concurrency", e->concurrency > 1 ? e->concurrency : 1);
		cJSON_AddStringToObject(root, "arrival", arrival_name(&e->arrival, arr, sizeof arr));
		cJSON_AddNumberToObject(root, "pace", pace);
		cJSON *sl = cJSON_AddObjectToObject(root, "send_lag_ms");
		cJSON_AddItemToObject(sl, "p50", num_or_null(lag50));
		cJSON_AddItemToObject(sl, "p99", num_or_null(lag99));
		cJSON_AddItemToObject(sl, "max", num_or_null(lagmax));
		by = cJSON_AddArrayToObject(root, "by_in_flight");
		ses = cJSON_AddArrayToObject(root, "sessions");
	} else {
		printf("\nconcurrency %d (arrival %s, pace %g): TTFT and prefix-cache hit by requests in flight at send\n",
		       e->concurrency > 1 ? e->concurrency : 1, arrival_name(&e->arrival, arr, sizeof arr), pace);
		if (!isnan(lag50))
			printf("sent behind schedule (arrival, pacing or the previous answer): p50 %.2f ms, p99 %.2f ms, "
			       "max %.2f ms\n",
			       lag50, lag99, lagmax);
		printf("%-11s %8s %10s %10s %10s %9s\n", "in flight", "requests", "TTFT p50", "TTFT p90", "TTFT p99", "cache hit");
	}
	for (size_t i = 0; i < v->n;) {
		int64_t f = v->rows[idx[i]].in_flight < 1 ? 1 : v->rows[idx[i]].in_flight;
		int64_t lo = 1;
		while (lo * 2 <= f)
			lo *= 2;
		int64_t hi = lo * 2 - 1;
		size_t j = i;
		while (j < v->n && (v->rows[idx[j]].in_flight < 1 ? 1 : v->rows[idx[j]].in_flight) <= hi)
			j++;
		struct conc_stat st;
		stat_of(v, idx + i, j - i, &st);
		if (root) {
			cJSON *o = stat_json(&st);
			cJSON_AddNumberToObject(o, "in_flight_min", (double)lo);
			cJSON_AddNumberToObject(o, "in_flight_max", (double)hi);
			cJSON_AddItemToArray(by, o);
		} else {
			char b[32], a[32], c[32], d[32], h[16];
			snprintf(b, sizeof b, lo == hi ? "%lld" : "%lld-%lld", (long long)lo, (long long)hi);
			fmt_ms(a, sizeof a, st.p50);
			fmt_ms(c, sizeof c, st.p90);
			fmt_ms(d, sizeof d, st.p99);
			snprintf(h, sizeof h, isnan(hit_of(&st)) ? "-" : "%.1f%%", hit_of(&st) * 100);
			printf("%-11s %8zu %10s %10s %10s %9s\n", b, st.requests, a, c, d, h);
		}
		i = j;
	}
	/* per session */
	qsort(idx, v->n, sizeof *idx, cmp_session);
	size_t nses = 0, rmin = SIZE_MAX, rmax = 0;
	for (size_t i = 0; i < v->n;) {
		size_t j = i;
		while (j < v->n && !strcmp(v->rows[idx[j]].session, v->rows[idx[i]].session) &&
		       v->rows[idx[j]].repeat == v->rows[idx[i]].repeat)
			j++;
		nses++;
		rmin = j - i < rmin ? j - i : rmin;
		rmax = j - i > rmax ? j - i : rmax;
		i = j;
	}
	bool list = root || nses <= 20;
	if (!root && list)
		printf("\n%-18s %6s %8s %6s %9s %9s %9s %10s %10s %10s\n", "session", "repeat", "requests", "not ok", "prompt",
		       "cached", "hit", "TTFT p50", "TTFT max", "span");
	for (size_t i = 0; i < v->n && list;) {
		size_t j = i;
		const struct row_copy *r0 = &v->rows[idx[i]];
		while (j < v->n && !strcmp(v->rows[idx[j]].session, r0->session) && v->rows[idx[j]].repeat == r0->repeat)
			j++;
		struct conc_stat st;
		stat_of(v, idx + i, j - i, &st);
		if (root) {
			cJSON *o = stat_json(&st);
			cJSON_AddStringToObject(o, "session", r0->session);
			cJSON_AddNumberToObject(o, "repeat", (double)r0->repeat);
			cJSON_AddItemToObject(o, "first_sent_ms", num_or_null(st.first_sent_ms));
			cJSON_AddItemToObject(o, "last_done_ms", num_or_null(st.last_done_ms));
			cJSON_AddItemToArray(ses, o);
		} else {
			char a[32], b[32], c[32], h[16];
			fmt_ms(a, sizeof a, st.p50);
			fmt_ms(b, sizeof b, st.max);
			fmt_ms(c, sizeof c, st.last_done_ms - st.first_sent_ms);
			snprintf(h, sizeof h, isnan(hit_of(&st)) ? "-" : "%.1f%%", hit_of(&st) * 100);
			printf("%-18.18s %6lld %8zu %6zu %9lld %9lld %9s %10s %10s %10s\n", r0->session, (long long)r0->repeat + 1,
			       st.requests, st.not_ok, (long long)st.prompt, (long long)st.cached, h, a, b, c);
		}
		i = j;
	}
	if (!root && !list)
		printf("\n%zu sessions replayed, %zu to %zu requests each (--json lists each session's totals)\n", nses,
		       rmin, rmax);
	free(idx);
	return root;
}

/* "+X MiB per 1k tokens over N turns; projected OOM at ~96k tokens, turn 19 (budget 24 GiB)" */
static void fmt_bytes(char *out, size_t n, double b)
{
	if (fabs(b) >= 1024.0 * 1048576.0)
		snprintf(out, n, "%.1f GiB", b / (1024.0 * 1048576.0));
	else
		snprintf(out, n, "%.1f MiB", b / 1048576.0);
}

static void print_mem(const struct engine_mem *m)
{
	if (!m->sampled)
		return;
	if (!m->fitted) {
		printf("memory: sampled (%lld samples), too few turns at distinct depths to fit a model\n",
		       (long long)m->samples);
		return;
	}
	char per[32], base[32], bud[32];
	fmt_bytes(per, sizeof per, m->bytes_per_token * 1000);
	fmt_bytes(base, sizeof base, m->baseline_bytes);
	printf("memory: %s%s per 1k tokens over %lld turns (%s, baseline %s, r2 %.2f)", m->bytes_per_token >= 0 ? "+" : "",
	       per, (long long)m->turns, m->source, base, m->r2);
	if (m->oom_tokens >= 0) {
		fmt_bytes(bud, sizeof bud, (double)m->budget_bytes);
		printf("; projected OOM at ~%lldk tokens", (long long)((m->oom_tokens + 500) / 1000));
		if (m->oom_turn >= 0)
			printf(", turn %lld", (long long)m->oom_turn);
		printf(" (budget %s)", bud);
	} else if (m->budget_bytes > 0)
		printf("; no OOM projected (memory does not grow with depth)");
	printf("\n");
}

static cJSON *mem_json(const struct engine_mem *m)
{
	if (!m->sampled)
		return cJSON_CreateNull();
	cJSON *o = NULL;
	if (m->fitted) {
		char *s = memrun_json(m);
		o = s ? cJSON_Parse(s) : NULL;
		free(s);
	}
	if (!o)
		o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "turns", (double)m->turns);
	cJSON_AddNumberToObject(o, "samples", (double)m->samples);
	cJSON_AddStringToObject(o, "gpu", m->gpu_mode);
	cJSON_AddBoolToObject(o, "fitted", m->fitted);
	return o;
}

/* The server's PID when the URL names this machine: the process listening
 * on its port. 0 when none is found (memory is then not sampled). */
static int64_t local_server_pid(const char *url, char *why, size_t n)
{
	const char *h = strstr(url, "://");
	h = h ? h + 3 : url;
	char host[256];
	size_t hl = strcspn(h, "/");
	snprintf(host, sizeof host, "%.*s", (int)(hl < sizeof host ? hl : sizeof host - 1), h);
	int port = !strncmp(url, "https", 5) ? 443 : 80;
	char *pc = strrchr(host, ':');
	if (pc && !strchr(pc, ']')) {
		char *end = NULL;
		long pl = strtol(pc + 1, &end, 10);
		port = end && !*end && pl > 0 && pl < 65536 ? (int)pl : port;
		*pc = '\0';
	}
	if (strcmp(host, "127.0.0.1") && strcmp(host, "localhost") && strcmp(host, "[::1]") && strcmp(host, "0.0.0.0")) {
		snprintf(why, n, "the server %s is not on this machine; pass --server-pid to sample a local one", host);
		return 0;
	}
	int64_t pid = 0;
	struct ar_err err = {0};
	if (procmem_find_listener(port, &pid, &err) < 0) {
		snprintf(why, n, "%s", err.msg);
		return 0;
	}
	return pid;
}

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static char *host_json(void)
{
	cJSON *h = cJSON_CreateObject();
	struct utsname u;
	if (uname(&u) == 0) {
		cJSON_AddStringToObject(h, "os", u.sysname);
		cJSON_AddStringToObject(h, "kernel", u.release);
		cJSON_AddStringToObject(h, "machine", u.machine);
		cJSON_AddStringToObject(h, "hostname", u.nodename);
	}
	cJSON_AddNumberToObject(h, "cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
	struct sysinfo si;
	if (sysinfo(&si) == 0)
		cJSON_AddNumberToObject(h, "mem_total_bytes", (double)si.totalram * si.mem_unit);
	char *s = cJSON_PrintUnformatted(h);
	cJSON_Delete(h);
	return s;
}

static int run_run(int argc, char **argv)
{
	struct run_cli c;
	memset(&c, 0, sizeof c);
	c.e.repeats = 3;
	c.e.warmup = 1;
	c.e.cold = COLD_TIERS;
	c.e.ttft_timeout = 600 * AR_NS_PER_S;
	c.e.stall_timeout = 60 * AR_NS_PER_S;
	c.e.pace = -1; /* default: 1 under --arrival trace, else 0 */
	c.e.seed = 1;
	c.db = "agentreplay.db";
	c.e.mem_interval_s = 0.1;
	int npos = 0;
	int p = cli_parse(&cmd_run, argc, argv, run_opt, &c, &npos);
	if (p != 0)
		return p > 0 ? EXIT_OK : EXIT_USAGE;
	static const char *default_trace[] = {AR_SOURCE_DIR "/traces/examples/small-session.jsonl"};
	c.e.traces = npos ? (const char *const *)argv : default_trace;
	c.e.n_traces = npos ? (size_t)npos : 1;
	if (!c.spec)
		c.spec = "sim"; /* the built-in simulated backend: no server, no GPU */
	const char *colon = strchr(c.spec, ':');
	if (!strncmp(c.spec, "sim", 3) && (c.spec[3] == '\0' || c.spec[3] == ':')) {
		snprintf(c.backend_buf, sizeof c.backend_buf, "sim");
		c.e.sim_spec = colon ? colon + 1 : NULL;
		c.url_buf[0] = '\0';
	} else {
		if (!colon || !colon[1]) {
			cli_error("run: backend '%s' needs a URL: KIND:URL, e.g. llama-server:http://127.0.0.1:8080", c.spec);
			return EXIT_USAGE;
		}
		snprintf(c.backend_buf, sizeof c.backend_buf, "%.*s", (int)(colon - c.spec), c.spec);
		snprintf(c.url_buf, sizeof c.url_buf, "%s", colon + 1);
		if (strncmp(c.url_buf, "http://", 7) && strncmp(c.url_buf, "https://", 8)) {
			cli_error("run: '%s' is not an http:// or https:// URL", c.url_buf);
			return EXIT_USAGE;
		}
	}
	c.e.backend = c.backend_buf;
	c.e.url = c.url_buf[0] ? c.url_buf : NULL;
	bool simulated = !strcmp(c.backend_buf, "sim");
	c.e.stop = &stop_flag;
	bool concurrent = c.e.concurrency > 1 || c.e.pace > 0 || c.e.arrival.kind != ARRIVAL_ALL;
	if (simulated || !(c.e.mem_interval_s > 0)) {
		c.e.server_pid = 0; /* the sim reports modelled memory; 0 = off */
	} else if (c.e.server_pid > 0) {
		if (!procmem_pid_alive(c.e.server_pid)) {
			cli_error("run: --server-pid %lld: no such process", (long long)c.e.server_pid);
			return EXIT_USAGE;
		}
	} else {
		char why[512] = "";
		c.e.server_pid = local_server_pid(c.url_buf, why, sizeof why);
		if (!c.e.server_pid && !c.quiet)
			fprintf(stderr, "agentreplay: memory not sampled: %s\n", why);
	}

	struct ar_err err = {0};
	struct store *st = NULL;
	/* the store first: an unwritable path fails before any request */
	if (store_open(&st, c.db, 0, &err) < 0) {
		cli_error_err(&err);
		return EXIT_USAGE;
	}
	char cmdline[4096] = "agentreplay run";
	for (int i = 0; i < argc; i++)
		snprintf(cmdline + strlen(cmdline), sizeof cmdline - strlen(cmdline), " %s", argv[i]);
	char *host = host_json();
	int64_t run_id = 0, config_id = 0;
	cJSON *params = cJSON_CreateObject();
	cJSON_AddNumberToObject(params, "repeats", c.e.repeats);
	cJSON_AddNumberToObject(params, "warmup", c.e.warmup);
	static const char *const cold_names[] = {"tiers", "every", "deepest", "none"};
	cJSON_AddStringToObject(params, "cold", cold_names[c.e.cold]);
	cJSON_AddStringToObject(params, "history", c.e.history_generated ? "generated" : "recorded");
	cJSON_AddBoolToObject(params, "until_fail", c.e.until_fail);
	if (concurrent) {
		char arr[64];
		cJSON_AddNumberToObject(params, "concurrency", c.e.concurrency > 1 ? c.e.concurrency : 1);
		cJSON_AddStringToObject(params, "arrival", arrival_name(&c.e.arrival, arr, sizeof arr));
		cJSON_AddNumberToObject(params, "pace", c.e.pace < 0 ? (c.e.arrival.kind == ARRIVAL_TRACE ? 1 : 0) : c.e.pace);
		cJSON_AddNumberToObject(params, "seed", (double)c.e.seed);
	}
	if (c.e.server_pid > 0) {
		cJSON_AddNumberToObject(params, "server_pid", (double)c.e.server_pid);
		cJSON_AddNumberToObject(params, "mem_interval_s", c.e.mem_interval_s);
	}
	if (c.e.mem_budget > 0)
		cJSON_AddNumberToObject(params, "mem_budget", (double)c.e.mem_budget);
	char *params_s = cJSON_PrintUnformatted(params);
	cJSON *traces = cJSON_CreateArray();
	for (size_t i = 0; i < c.e.n_traces; i++)
		cJSON_AddItemToArray(traces, cJSON_CreateString(c.e.traces[i]));
	char *traces_s = cJSON_PrintUnformatted(traces);
	char name[256];
	snprintf(name, sizeof name, "%s %s", c.spec, c.e.model ? c.e.model : "");
	struct store_config sc = {.name = name, .backend = c.e.backend, .url = c.e.url, .model = c.e.model,
				  .simulated = simulated, .params_json = params_s, .trace_json = traces_s};
	int rc = EXIT_OK;
	if (store_run_begin(st, cmdline, host, &run_id, &err) < 0 || store_config_add(st, run_id, &sc, &config_id, &err) < 0) {
		cli_error_err(&err);
		rc = EXIT_USAGE;
		goto out;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	struct view v = {&c, isatty(STDERR_FILENO) != 0, c.json ? cJSON_CreateArray() : NULL, NULL, 0, 0, false};
	struct engine_obs obs = {&v, on_request, on_progress, on_note};
	struct engine_summary sum;
	int er = engine_run(&c.e, st, run_id, config_id, &obs, &sum, &err);
	if (v.line_open)
		fputc('\n', stderr);
	cJSON *failure = NULL;
	if (sum.failure.found) {
		failure = cJSON_CreateObject();
		cJSON_AddStringToObject(failure, "session", sum.failure.session);
		cJSON_AddNumberToObject(failure, "turn", (double)sum.failure.turn);
		cJSON_AddNumberToObject(failure, "context_tokens", (double)sum.failure.context_tokens);
		cJSON_AddStringToObject(failure, "class", sum.failure.cls);
		cJSON_AddStringToObject(failure, "evidence", sum.failure.evidence);
		cJSON_AddItemToObject(failure, "mem_bytes", int_or_null(sum.failure.mem_bytes));
	}
	char *failure_s = failure ? cJSON_PrintUnformatted(failure) : NULL;
	const char *status = er < 0 ? "error" : sum.interrupted ? "interrupted" : sum.failure.found ? "failed" : "ok";
	struct ar_err e2 = {0};
	if (store_config_finish(st, config_id, status, failure_s, &e2) < 0 || store_run_end(st, run_id, status, &e2) < 0)
		cli_error_err(&e2);
	if (er < 0) {
		cli_error_err(&err);
		rc = err.code == AR_ENET ? EXIT_UNREACHABLE : err.code == AR_EBACKEND ? EXIT_FAILED : EXIT_USAGE;
	} else if (c.json) {
		cJSON *root = cJSON_CreateObject();
		cJSON_AddNumberToObject(root, "run_id", (double)run_id);
		cJSON *cfgs = cJSON_AddArrayToObject(root, "configs");
		cJSON *co = cJSON_CreateObject();
		cJSON_AddStringToObject(co, "name", name);
		cJSON_AddStringToObject(co, "backend", c.e.backend);
		if (c.e.url)
			cJSON_AddStringToObject(co, "url", c.e.url);
		else
			cJSON_AddNullToObject(co, "url");
		if (c.e.model)
			cJSON_AddStringToObject(co, "model", c.e.model);
		else
			cJSON_AddNullToObject(co, "model");
		cJSON_AddBoolToObject(co, "simulated", simulated);
		cJSON_AddItemToObject(co, "requests", v.requests);
		v.requests = NULL;
		cJSON_AddItemToObject(co, "failure", failure ? failure : cJSON_CreateNull());
		failure = NULL;
		cJSON_AddStringToObject(co, "status", status);
		if (concurrent)
			cJSON_AddItemToObject(co, "concurrency", concurrency_summary(&v, &c.e, true));
		cJSON_AddItemToObject(co, "memory", mem_json(&sum.mem));
		cJSON_AddItemToArray(cfgs, co);
		char *s = cJSON_PrintUnformatted(root);
		if (s)
			puts(s);
		cJSON_free(s);
		cJSON_Delete(root);
	} else {
		print_table(&v, &sum, simulated ? (c.e.sim_spec && *c.e.sim_spec ? c.e.sim_spec : "sim (default profile)") : NULL);
		if (concurrent)
			concurrency_summary(&v, &c.e, false);
		print_mem(&sum.mem);
	}
	if (er == 0) {
		if (sum.interrupted)
			rc = EXIT_INTERRUPTED;
		else if (sum.failed && !c.e.until_fail)
			rc = EXIT_FAILED;
	}
	cJSON_Delete(failure);
	cJSON_free(failure_s);
	cJSON_Delete(v.requests);
	free(v.rows);
out:
	cJSON_Delete(params);
	cJSON_Delete(traces);
	cJSON_free(params_s);
	cJSON_free(traces_s);
	cJSON_free(host);
	store_close(st);
	return rc;
}

const struct cli_cmd cmd_run = {
	.name = "run",
	.summary = "Replay traces turn by turn against a backend; measure and store every request.",
	.usage = "run [TRACE...] [--backend sim[:SPEC]|KIND:URL] [--model NAME] [options]",
	.description =
		"Each configuration gets warmup request(s), then --repeats full replays, each with its own\n"
		"nonce at the start of the prompt so no repeat inherits another's prefix cache. The warm pass\n"
		"is the natural replay; the cold pass re-sends selected turns (--cold) with fresh nonces.\n"
		"Every request is committed to --db before the next one starts. Without TRACE, the bundled\n"
		"example session is replayed. Without --backend, the built-in simulated backend answers\n"
		"(sim:model=...,quant=...,hw=...,engine=...,kv=...,ctx=...; see 'agentreplay sim profiles'),\n"
		"in modelled time, and every row is marked simulated.\n"
		"\n"
		"exit: 0 ok (a failure point found under --until-fail is a result), 1 some turn failed,\n"
		"2 usage or input error, 3 backend unreachable, 130 interrupted (the row in flight is kept).",
	.opts = run_opts,
	.run = run_run,
};
