/* agentreplay sim predict|profiles|serve|calibrate: the simulated backend.
 *
 * predict   runs a trace through the performance model (virtual time) and
 *           prints each turn's figures and the failure point; --matrix runs
 *           the cartesian product of profile lists and tells who survives
 *           to which depth.
 * profiles  lists every profile id by kind with a one-line description.
 * serve     the same model behind an HTTP server that streams like
 *           llama-server (replay/sim/sim_serve.h).
 * calibrate prints the published calibration points against the model, or
 *           fits a hardware profile (cpu-2core) to measured rates.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "jsonh.h"
#include "sim.h"
#include "sim_serve.h"
#include "units.h"

#define DEFAULT_TRACE AR_SOURCE_DIR "/traces/examples/small-session.jsonl"
#define MAX_POINTS 64

enum {
	O_PROFILE = 1,
	O_JSON,
	O_MATRIX,
	O_ALL,
	O_NONCE,
	O_PORT,
	O_HOST,
	O_SCALE,
	O_RSS,
	O_RSSMAX,
	O_PORTFILE,
	O_LOADTIME,
	O_POINT,
	O_PUBLISHED,
	O_OUT,
	O_ID,
	O_QUIET,
	O_MAXLINE,
};

static const struct cli_opt sim_opts[] = {
	{"profile", 'p', "SPEC", "model=ID,quant=ID,hw=ID,engine=ID,kv=ID,ctx=N,slots=N (omitted keys: defaults)", O_PROFILE},
	{"json", 0, NULL, "predict, profiles, calibrate: one JSON object on stdout", O_JSON},
	{"matrix", 'm', "LISTS", "predict: 'model=a,b;quant=x,y;hw=...;engine=...;kv=...;ctx=...' (all combinations)", O_MATRIX},
	{"all", 0, NULL, "predict: keep going past the failure point", O_ALL},
	{"nonce", 0, "TEXT", "predict: text put at the very start of the prompt (default none)", O_NONCE},
	{"port", 0, "N", "serve: TCP port (default 8080; 0 = any free port)", O_PORT},
	{"host", 0, "ADDR", "serve: address to bind (default 127.0.0.1)", O_HOST},
	{"time-scale", 0, "X", "serve: run X times faster than modelled (0.01 to 100000, default 1)", O_SCALE},
	{"rss-scale", 0, "X", "serve: allocate X bytes per modelled KV/cache byte (0 to 1, default 0)", O_RSS},
	{"rss-max", 0, "SIZE", "serve: ceiling of that allocation (default 1GiB)", O_RSSMAX},
	{"port-file", 0, "FILE", "serve: write the port there once listening", O_PORTFILE},
	{"load-time", 0, "DURATION", "serve: modelled model-loading time (/health 503 meanwhile)", O_LOADTIME},
	{"point", 0, "P", "calibrate: a measurement pp:TOKENS@DEPTH=TPS or tg:TOKENS@DEPTH=TPS (repeat)", O_POINT},
	{"published", 0, NULL, "calibrate: the published points against the model", O_PUBLISHED},
	{"output", 'o', "FILE", "calibrate: write the fitted profile here (default stdout)", O_OUT},
	{"id", 0, "ID", "calibrate: id of the fitted hardware profile (default: the profile's own)", O_ID},
	{"quiet", 'q', NULL, "serve: no log lines; predict: no progress", O_QUIET},
	{"max-line-bytes", 0, "SIZE", "predict: longest trace line accepted (default 16MiB)", O_MAXLINE},
	{0},
};

struct sim_cfg {
	const char *profile, *matrix, *nonce, *host, *port_file, *out, *id;
	bool json, all, published, quiet;
	int port;
	double scale, rss, load_time;
	uint64_t rss_max;
	size_t max_line;
	struct sim_calib_point pts[MAX_POINTS];
	size_t n_pts;
};

static int sim_opt(void *ctx, int id, const char *val, struct ar_err *err)
{
	struct sim_cfg *c = ctx;
	uint64_t v;
	double d;
	int64_t ns;
	switch (id) {
	case O_PROFILE: c->profile = val; break;
	case O_JSON: c->json = true; break;
	case O_MATRIX: c->matrix = val; break;
	case O_ALL: c->all = true; break;
	case O_NONCE: c->nonce = val; break;
	case O_PORT:
		if (units_parse_count(val, &v, err) < 0)
			return -1;
		if (v > 65535)
			return ar_err_set(err, AR_EINVAL, "port '%s' is out of range (0 to 65535)", val);
		c->port = (int)v;
		break;
	case O_HOST: c->host = val; break;
	case O_SCALE:
		if (units_parse_real(val, &d, err) < 0)
			return -1;
		if (!(d >= SIM_SERVE_MIN_SCALE && d <= SIM_SERVE_MAX_SCALE))
			return ar_err_set(err, AR_EINVAL, "time scale '%s' is absurd (use %g to %g; 100 = 100x faster)", val,
					  SIM_SERVE_MIN_SCALE, SIM_SERVE_MAX_SCALE);
		c->scale = d;
		break;
	case O_RSS:
		if (units_parse_real(val, &d, err) < 0)
			return -1;
		if (!(d >= 0 && d <= SIM_SERVE_MAX_RSS_SCALE))
			return ar_err_set(err, AR_EINVAL, "rss scale '%s' is out of range (0 to %g bytes per modelled byte)", val,
					  SIM_SERVE_MAX_RSS_SCALE);
		c->rss = d;
		break;
	case O_RSSMAX:
		if (units_parse_bytes(val, &v, err) < 0)
			return -1;
		if (v < (1u << 20) || v > (64ull << 30))
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range (1MiB to 64GiB)", val);
		c->rss_max = v;
		break;
	case O_PORTFILE: c->port_file = val; break;
	case O_LOADTIME:
		if (units_parse_duration_ns(val, &ns, err) < 0)
			return -1;
		if (ns < 0 || ns > 3600 * AR_NS_PER_S)
			return ar_err_set(err, AR_EINVAL, "load time '%s' is out of range (0 to 1h)", val);
		c->load_time = (double)ns / 1e9;
		break;
	case O_POINT:
		if (c->n_pts == MAX_POINTS)
			return ar_err_set(err, AR_EINVAL, "too many --point (at most %d)", MAX_POINTS);
		if (sim_calib_point_parse(val, &c->pts[c->n_pts], err) < 0)
			return -1;
		c->n_pts++;
		break;
	case O_PUBLISHED: c->published = true; break;
	case O_OUT: c->out = val; break;
	case O_ID: c->id = val; break;
	case O_QUIET: c->quiet = true; break;
	case O_MAXLINE:
		if (units_parse_bytes(val, &v, err) < 0)
			return -1;
		if (v < 1024 || v > (1ull << 31))
			return ar_err_set(err, AR_EINVAL, "'%s' is out of range (1KiB to 2GiB)", val);
		c->max_line = (size_t)v;
		break;
	}
	return 0;
}

/* ---- formatting ----------------------------------------------------------- */

static void fmt_ms(char *b, size_t n, double ms)
{
	if (ms < 1)
		snprintf(b, n, "%.2fms", ms);
	else if (ms < 1000)
		snprintf(b, n, "%.0fms", ms);
	else if (ms < 100000)
		snprintf(b, n, "%.2fs", ms / 1000);
	else
		snprintf(b, n, "%.0fs", ms / 1000);
}

static void fmt_gib(char *b, size_t n, int64_t bytes) { snprintf(b, n, "%.2f", (double)bytes / 1073741824.0); }

static double r3(double x) { return round(x * 1000) / 1000; }

/* ---- predict -------------------------------------------------------------- */

struct cfg_run {
	struct sim *sim;
	char *spec;
	cJSON *requests;
	cJSON *failure;
	int64_t last_ok_ctx, last_ok_turn, requests_n;
	double tier_ttft[3]; /* warm TTFT of the first turn at 32k, 64k, 128k */
	bool seen_tier[3];
	bool text_header;
};

struct predict {
	struct cfg_run *runs;
	size_t n;
	bool json, text_rows;
};

static cJSON *request_json(const struct tr_session *ses, const struct tr_turn *t, const struct sim_prompt *p,
			   const struct sim_result *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "session", ses->id);
	cJSON_AddNumberToObject(o, "turn", (double)t->i);
	cJSON_AddNumberToObject(o, "repeat", 0);
	cJSON_AddStringToObject(o, "cache", "warm");
	cJSON_AddNumberToObject(o, "context_tokens", (double)p->tokens);
	cJSON_AddNumberToObject(o, "prompt_tokens", (double)r->prompt_tokens);
	cJSON_AddNumberToObject(o, "cached_tokens", (double)r->cached_tokens);
	cJSON_AddNumberToObject(o, "completion_tokens", (double)r->completion_tokens);
	bool ok = !strcmp(r->outcome, "ok");
	double ttfb = r->http_status ? (r->overhead_ms < r->ttft_ms || !ok ? r->overhead_ms : r->ttft_ms) : 0;
	if (r->http_status)
		cJSON_AddNumberToObject(o, "ttfb_ms", r3(ttfb));
	else
		cJSON_AddNullToObject(o, "ttfb_ms");
	bool got_token = ok || r->error_after_tokens > 0;
	if (got_token)
		cJSON_AddNumberToObject(o, "ttft_ms", r3(r->ttft_ms));
	else
		cJSON_AddNullToObject(o, "ttft_ms");
	if (r->ttft_cold_ms > 0)
		cJSON_AddNumberToObject(o, "ttft_cold_ms", r3(r->ttft_cold_ms));
	else
		cJSON_AddNullToObject(o, "ttft_cold_ms");
	if (ok && r->completion_tokens > 1)
		cJSON_AddNumberToObject(o, "decode_tps", r3(r->decode_tps));
	else
		cJSON_AddNullToObject(o, "decode_tps");
	if (got_token)
		cJSON_AddNumberToObject(o, "prefill_tps", r3(r->prefill_tps));
	else
		cJSON_AddNullToObject(o, "prefill_tps");
	if (ok && r->completion_tokens > 1) {
		cJSON_AddNumberToObject(o, "itl_p50_ms", r3(r->itl_p50_ms));
		cJSON_AddNumberToObject(o, "itl_p99_ms", r3(r->itl_p99_ms));
	} else {
		cJSON_AddNullToObject(o, "itl_p50_ms");
		cJSON_AddNullToObject(o, "itl_p99_ms");
	}
	if (got_token || r->http_status)
		cJSON_AddNumberToObject(o, "e2e_ms", r3(r->e2e_ms));
	else
		cJSON_AddNullToObject(o, "e2e_ms");
	cJSON_AddNumberToObject(o, "mem_bytes", (double)r->mem_bytes);
	cJSON_AddNumberToObject(o, "mem_peak_bytes", (double)r->mem_peak_bytes);
	cJSON *srv = cJSON_AddObjectToObject(o, "server");
	if (ok) {
		cJSON *tm = cJSON_AddObjectToObject(srv, "timings");
		int64_t pn = r->prompt_tokens - r->cached_tokens;
		cJSON_AddNumberToObject(tm, "cache_n", (double)r->cached_tokens);
		cJSON_AddNumberToObject(tm, "prompt_n", (double)pn);
		cJSON_AddNumberToObject(tm, "prompt_ms", r3(r->ttft_ms));
		cJSON_AddNumberToObject(tm, "predicted_n", (double)r->completion_tokens);
		cJSON_AddNumberToObject(tm, "predicted_ms", r3(r->decode_ms));
	}
	cJSON_AddNumberToObject(srv, "context_size", (double)r->context_tokens);
	if (r->restored_tokens)
		cJSON_AddNumberToObject(srv, "restored_tokens", (double)r->restored_tokens);
	if (r->truncated_tokens)
		cJSON_AddNumberToObject(srv, "truncated_tokens", (double)r->truncated_tokens);
	if (r->http_status)
		cJSON_AddNumberToObject(o, "http_status", r->http_status);
	else
		cJSON_AddNullToObject(o, "http_status");
	cJSON_AddStringToObject(o, "outcome", r->outcome);
	if (*r->evidence)
		cJSON_AddStringToObject(o, "evidence", r->evidence);
	else
		cJSON_AddNullToObject(o, "evidence");
	return o;
}

static void print_row_header(void)
{
	printf("%-14s %5s %8s %8s %8s %8s %9s %7s %8s  %s\n", "session", "turn", "context", "cached", "ttft", "cold",
	       "prefill/s", "tok/s", "mem GiB", "outcome");
}

static int on_request(void *ctx, size_t i, const struct tr_session *ses, const struct tr_turn *t,
		      const struct sim_prompt *p, const struct sim_result *r)
{
	struct predict *pr = ctx;
	struct cfg_run *run = &pr->runs[i];
	run->requests_n++;
	bool ok = !strcmp(r->outcome, "ok");
	if (pr->json)
		cJSON_AddItemToArray(run->requests, request_json(ses, t, p, r));
	if (ok) {
		run->last_ok_ctx = p->tokens > run->last_ok_ctx ? p->tokens : run->last_ok_ctx;
		run->last_ok_turn = t->i;
		static const int64_t tiers[3] = {32768, 65536, 131072};
		for (int k = 0; k < 3; k++)
			if (!run->seen_tier[k] && p->tokens >= tiers[k]) {
				run->seen_tier[k] = true;
				run->tier_ttft[k] = r->ttft_ms;
			}
	} else if (!run->failure) {
		cJSON *f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "session", ses->id);
		cJSON_AddNumberToObject(f, "turn", (double)t->i);
		cJSON_AddNumberToObject(f, "context_tokens", (double)p->tokens);
		cJSON_AddStringToObject(f, "class", r->outcome);
		cJSON_AddStringToObject(f, "evidence", r->evidence);
		cJSON_AddNumberToObject(f, "mem_bytes", (double)r->mem_peak_bytes);
		if (r->http_status)
			cJSON_AddNumberToObject(f, "http_status", r->http_status);
		else
			cJSON_AddNullToObject(f, "http_status");
		run->failure = f;
	}
	if (pr->text_rows) {
		char a[24], b[24], m[24], tps[24], pf[24];
		fmt_ms(a, sizeof a, r->ttft_ms);
		fmt_ms(b, sizeof b, r->ttft_cold_ms);
		fmt_gib(m, sizeof m, r->mem_peak_bytes);
		snprintf(tps, sizeof tps, "%.1f", r->decode_tps);
		snprintf(pf, sizeof pf, "%.0f", r->prefill_tps);
		if (!ok) {
			if (!(r->error_after_tokens > 0))
				snprintf(a, sizeof a, "-");
			snprintf(tps, sizeof tps, "-");
			snprintf(pf, sizeof pf, "-");
		}
		printf("%-14.14s %5" PRId64 " %8" PRId64 " %8" PRId64 " %8s %8s %9s %7s %8s  %s\n", ses->id, t->i, p->tokens,
		       r->cached_tokens, a, r->ttft_cold_ms > 0 ? b : "-", pf, tps, m, r->outcome);
	}
	return 0;
}

/* Splits "model=a,b;quant=x" into key -> values and runs every combination. */
struct axis {
	char key[32];
	char *vals[64];
	size_t n;
};

static int parse_matrix(const char *m, struct axis *ax, size_t *nax, char **store, struct ar_err *err)
{
	*store = strdup(m);
	if (!*store)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	*nax = 0;
	char *save = NULL;
	for (char *part = strtok_r(*store, ";", &save); part; part = strtok_r(NULL, ";", &save)) {
		while (*part == ' ')
			part++;
		if (!*part)
			continue;
		char *eq = strchr(part, '=');
		if (!eq)
			return ar_err_set(err, AR_EINVAL, "--matrix: '%s' is not KEY=V1,V2,...", part);
		*eq = 0;
		if (*nax == 8)
			return ar_err_set(err, AR_EINVAL, "--matrix: too many keys");
		struct axis *a = &ax[(*nax)++];
		snprintf(a->key, sizeof a->key, "%s", part);
		static const char *const keys[] = {"model", "quant", "hw", "hardware", "engine", "kv", "ctx", "slots"};
		bool known = false;
		for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
			known |= !strcmp(part, keys[k]);
		if (!known)
			return ar_err_set(err, AR_EINVAL, "--matrix: unknown key '%s' (keys: model, quant, hw, engine, kv, ctx, slots)",
					  part);
		for (size_t k = 0; k + 1 < *nax; k++)
			if (!strcmp(ax[k].key, part))
				return ar_err_set(err, AR_EINVAL, "--matrix: %s given twice", part);
		a->n = 0;
		char *s2 = NULL;
		for (char *v = strtok_r(eq + 1, ",", &s2); v; v = strtok_r(NULL, ",", &s2)) {
			while (*v == ' ')
				v++;
			if (!*v)
				continue;
			if (a->n == 64)
				return ar_err_set(err, AR_EINVAL, "--matrix: too many values for %s", part);
			a->vals[a->n++] = v;
		}
		if (!a->n)
			return ar_err_set(err, AR_EINVAL, "--matrix: %s has no values", part);
	}
	if (!*nax)
		return ar_err_set(err, AR_EINVAL, "--matrix: no KEY=VALUES given");
	return 0;
}

static void print_matrix_text(const struct predict *pr)
{
	printf("%-52s %8s  %-24s %-34s %8s %8s %8s\n", "config", "ctx", "survives to", "fails at", "ttft@32k", "@64k",
	       "@128k");
	for (size_t i = 0; i < pr->n; i++) {
		const struct cfg_run *r = &pr->runs[i];
		char surv[48], fails[160], t[3][24];
		if (r->last_ok_turn >= 0)
			snprintf(surv, sizeof surv, "%" PRId64 " tok (turn %" PRId64 ")", r->last_ok_ctx, r->last_ok_turn);
		else
			snprintf(surv, sizeof surv, "-");
		if (r->failure) {
			const cJSON *f = r->failure;
			snprintf(fails, sizeof fails, "turn %d, %d tok: %s", (int)cJSON_GetObjectItem(f, "turn")->valuedouble,
				 (int)cJSON_GetObjectItem(f, "context_tokens")->valuedouble,
				 cJSON_GetObjectItem(f, "class")->valuestring);
		} else {
			snprintf(fails, sizeof fails, "-");
		}
		for (int k = 0; k < 3; k++) {
			if (r->seen_tier[k])
				fmt_ms(t[k], sizeof t[k], r->tier_ttft[k]);
			else
				snprintf(t[k], sizeof t[k], "-");
		}
		char name[200];
		snprintf(name, sizeof name, "%s %s %s %s %s", sim_id(r->sim, SIM_MODEL), sim_id(r->sim, SIM_QUANT),
			 sim_id(r->sim, SIM_KV), sim_id(r->sim, SIM_HW), sim_id(r->sim, SIM_ENGINE));
		printf("%-52s %8" PRId64 "  %-24s %-34s %8s %8s %8s\n", name, sim_context(r->sim), surv, fails, t[0], t[1], t[2]);
	}
}

static cJSON *config_json(const struct cfg_run *r)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "name", sim_describe(r->sim));
	char backend[700];
	snprintf(backend, sizeof backend, "sim:%s", r->spec);
	cJSON_AddStringToObject(c, "backend", backend);
	cJSON_AddStringToObject(c, "model", sim_id(r->sim, SIM_MODEL));
	cJSON_AddBoolToObject(c, "simulated", true);
	cJSON *prof = cJSON_Parse(sim_describe_json(r->sim));
	if (prof)
		cJSON_AddItemToObject(c, "profile", prof);
	cJSON_AddItemToObject(c, "requests", r->requests ? r->requests : cJSON_CreateArray());
	if (r->failure)
		cJSON_AddItemToObject(c, "failure", r->failure);
	else
		cJSON_AddNullToObject(c, "failure");
	return c;
}

static int predict_run(const struct sim_cfg *c, const char *trace)
{
	struct ar_err err = {0};
	struct sim_catalog *cat = NULL;
	struct predict pr = {0};
	struct axis ax[8];
	size_t nax = 0;
	char *mstore = NULL;
	int rc = EXIT_USAGE;
	size_t ncfg = 1;
	if (sim_catalog_new(&cat, NULL, &err) < 0)
		goto fail;
	/* the configurations */
	if (c->matrix) {
		if (parse_matrix(c->matrix, ax, &nax, &mstore, &err) < 0)
			goto fail;
		for (size_t k = 0; k < nax; k++) {
			ncfg *= ax[k].n;
			if (ncfg > 4096) {
				ar_err_set(&err, AR_EINVAL, "--matrix: more than 4096 combinations");
				goto fail;
			}
		}
	}
	pr.runs = calloc(ncfg, sizeof *pr.runs);
	if (!pr.runs) {
		ar_err_set(&err, AR_ENOMEM, "out of memory");
		goto fail;
	}
	pr.json = c->json;
	pr.text_rows = !c->json && !c->matrix;
	for (size_t i = 0; i < ncfg; i++) {
		struct buf spec = BUF_INIT;
		buf_puts(&spec, c->profile ? c->profile : "");
		size_t idx = i;
		for (size_t k = nax; k-- > 0;) {
			size_t v = idx % ax[k].n;
			idx /= ax[k].n;
			buf_printf(&spec, "%s%s=%s", spec.len ? "," : "", ax[k].key, ax[k].vals[v]);
		}
		/* matrix keys override the same keys of --profile: drop those from it */
		if (nax && c->profile) {
			struct buf merged = BUF_INIT;
			char *dup = strdup(c->profile);
			char *save = NULL;
			for (char *tok = dup ? strtok_r(dup, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
				bool over = false;
				for (size_t k = 0; k < nax; k++) {
					size_t kl = strlen(ax[k].key);
					over |= !strncmp(tok, ax[k].key, kl) && tok[kl] == '=';
				}
				if (!over)
					buf_printf(&merged, "%s%s", merged.len ? "," : "", tok);
			}
			free(dup);
			const char *tail = spec.data + strlen(c->profile);
			if (*tail == ',')
				tail++;
			buf_printf(&merged, "%s%s", merged.len && *tail ? "," : "", tail);
			buf_free(&spec);
			spec = merged;
		}
		pr.runs[i].spec = buf_detach(&spec);
		pr.runs[i].last_ok_turn = -1;
		if (!pr.runs[i].spec) {
			ar_err_set(&err, AR_ENOMEM, "out of memory");
			goto fail;
		}
		if (sim_new_in(&pr.runs[i].sim, cat, pr.runs[i].spec, &err) < 0)
			goto fail;
		if (c->json)
			pr.runs[i].requests = cJSON_CreateArray();
		pr.n++;
	}
	struct sim **sims = calloc(pr.n, sizeof *sims);
	if (!sims) {
		ar_err_set(&err, AR_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < pr.n; i++)
		sims[i] = pr.runs[i].sim;
	if (pr.text_rows) {
		const struct sim *s0 = pr.runs[0].sim;
		const struct sim_result *lf = sim_load_failure(s0);
		printf("%s\n", sim_describe(s0));
		if (lf)
			printf("memory: needs %.2f GiB to load, %.2f GiB usable; trace %s\n\n",
			       (double)lf->mem_peak_bytes / 1073741824.0, (double)sim_mem_budget(s0) / 1073741824.0, trace);
		else
			printf("memory: %.2f GiB at load of %.2f GiB usable; trace %s\n\n",
			       (double)sim_mem_bytes(s0) / 1073741824.0, (double)sim_mem_budget(s0) / 1073741824.0, trace);
		print_row_header();
	}
	struct sim_run_opts ro = {.nonce = c->nonce, .until_fail = !c->all, .max_line = c->max_line};
	int runrc = sim_run_trace(sims, pr.n, trace, &ro, on_request, &pr, &err);
	free(sims);
	if (runrc < 0)
		goto fail;
	if (c->json) {
		cJSON *root = cJSON_CreateObject();
		cJSON_AddNullToObject(root, "run_id");
		cJSON_AddStringToObject(root, "trace", trace);
		cJSON *cfgs = cJSON_AddArrayToObject(root, "configs");
		for (size_t i = 0; i < pr.n; i++) {
			cJSON_AddItemToArray(cfgs, config_json(&pr.runs[i]));
			pr.runs[i].requests = NULL;
			pr.runs[i].failure = NULL;
		}
		char *txt = cJSON_PrintUnformatted(root);
		cJSON_Delete(root);
		if (txt)
			printf("%s\n", txt);
		free(txt);
	} else if (c->matrix) {
		print_matrix_text(&pr);
	} else {
		const struct cfg_run *r = &pr.runs[0];
		printf("\n");
		if (r->failure) {
			const cJSON *f = r->failure;
			printf("failure point: session %s turn %d at %d context tokens: %s\n",
			       cJSON_GetObjectItem(f, "session")->valuestring, (int)cJSON_GetObjectItem(f, "turn")->valuedouble,
			       (int)cJSON_GetObjectItem(f, "context_tokens")->valuedouble,
			       cJSON_GetObjectItem(f, "class")->valuestring);
			printf("evidence: %s\n", cJSON_GetObjectItem(f, "evidence")->valuestring);
		} else {
			printf("no failure: %" PRId64 " requests ok, deepest %" PRId64 " context tokens\n", r->requests_n,
			       r->last_ok_ctx);
		}
	}
	rc = EXIT_OK;
	goto out;
fail:
	cli_error_err(&err);
out:
	for (size_t i = 0; i < ncfg && pr.runs; i++) {
		sim_free(pr.runs[i].sim);
		free(pr.runs[i].spec);
		cJSON_Delete(pr.runs[i].requests);
		cJSON_Delete(pr.runs[i].failure);
	}
	free(pr.runs);
	free(mstore);
	sim_catalog_free(cat);
	return rc;
}

/* ---- profiles ------------------------------------------------------------- */

static int profiles_run(const struct sim_cfg *c)
{
	struct ar_err err = {0};
	struct sim_catalog *cat = NULL;
	int rc = EXIT_USAGE;
	cJSON *root = c->json ? cJSON_CreateObject() : NULL;
	if (sim_catalog_new(&cat, NULL, &err) < 0)
		goto fail;
	for (int k = 0; k < SIM_NKINDS; k++) {
		const struct sim_profile_info *in;
		int n = sim_catalog_list(cat, (enum sim_kind)k, &in, &err);
		if (n < 0)
			goto fail;
		if (root) {
			cJSON *arr = cJSON_AddArrayToObject(root, sim_kind_dir((enum sim_kind)k));
			for (int i = 0; i < n; i++) {
				cJSON *o = cJSON_CreateObject();
				cJSON_AddStringToObject(o, "id", in[i].id);
				cJSON_AddStringToObject(o, "name", in[i].name);
				cJSON_AddStringToObject(o, "summary", in[i].summary);
				cJSON_AddBoolToObject(o, "estimated", in[i].estimated);
				cJSON_AddStringToObject(o, "file", in[i].path);
				cJSON_AddItemToArray(arr, o);
			}
			continue;
		}
		printf("%s%s (%s=ID):\n", k ? "\n" : "", sim_kind_dir((enum sim_kind)k), sim_kind_key((enum sim_kind)k));
		for (int i = 0; i < n; i++)
			printf("  %-22s %s -- %s%s\n", in[i].id, in[i].name, in[i].summary, in[i].estimated ? " (estimated)" : "");
	}
	if (root) {
		cJSON_AddStringToObject(root, "default", SIM_DEFAULT_SPEC);
		char *t = cJSON_PrintUnformatted(root);
		if (t)
			printf("%s\n", t);
		free(t);
	} else {
		printf("\ndefault: %s (ctx: the engine's default context)\n", SIM_DEFAULT_SPEC);
	}
	rc = EXIT_OK;
	goto out;
fail:
	cli_error_err(&err);
out:
	cJSON_Delete(root);
	sim_catalog_free(cat);
	return rc;
}

/* ---- calibrate ------------------------------------------------------------ */

static void print_rows(const struct sim_calib_row *rows, int n, bool with_config)
{
	printf("%-13s %-34s %-11s %10s %10s %8s\n", "figure", with_config ? "config" : "", "prompt", "measured", "model",
	       "error");
	for (int i = 0; i < n; i++) {
		const char *cfg = rows[i].config;
		const char *mdl = strstr(cfg, "model=");
		char shortc[64];
		const char *eng = strstr(cfg, "engine=");
		const char *qn = strstr(cfg, "quant=");
		snprintf(shortc, sizeof shortc, "%.*s %.*s %s", eng ? (int)strcspn(eng + 7, ",") : 0, eng ? eng + 7 : "",
			 qn ? (int)strcspn(qn + 6, ",") : 0, qn ? qn + 6 : "", mdl ? mdl + 6 : "");
		printf("%-13s %-34.34s %-11s %10.1f %10.1f %+7.1f%%\n", rows[i].what, with_config ? shortc : "",
		       rows[i].prompt, rows[i].published, rows[i].predicted, rows[i].error * 100);
	}
}

static int calibrate_run(const struct sim_cfg *c)
{
	struct ar_err err = {0};
	struct sim_catalog *cat = NULL;
	struct sim_calib_row *rows = NULL;
	struct buf yaml = BUF_INIT;
	int rc = EXIT_USAGE;
	if (sim_catalog_new(&cat, NULL, &err) < 0)
		goto fail;
	if (c->published || !c->n_pts) {
		int n = sim_calib_published(cat, &rows, &err);
		if (n < 0)
			goto fail;
		double worst = 0;
		for (int i = 0; i < n; i++)
			worst = fabs(rows[i].error) > worst ? fabs(rows[i].error) : worst;
		if (c->json) {
			cJSON *arr = cJSON_CreateArray();
			for (int i = 0; i < n; i++) {
				cJSON *o = cJSON_CreateObject();
				cJSON_AddStringToObject(o, "figure", rows[i].what);
				cJSON_AddStringToObject(o, "config", rows[i].config);
				cJSON_AddStringToObject(o, "prompt", rows[i].prompt);
				cJSON_AddNumberToObject(o, "published", rows[i].published);
				cJSON_AddNumberToObject(o, "model", r3(rows[i].predicted));
				cJSON_AddNumberToObject(o, "error", r3(rows[i].error));
				cJSON_AddItemToArray(arr, o);
			}
			char *t = cJSON_PrintUnformatted(arr);
			cJSON_Delete(arr);
			if (t)
				printf("%s\n", t);
			free(t);
		} else {
			print_rows(rows, n, true);
			printf("\nworst error %.1f%% (tolerance 25%%)\n", worst * 100);
		}
		rc = worst <= 0.25 ? EXIT_OK : EXIT_FAILED;
		goto out;
	}
	/* fit a hardware profile to the measured points */
	const char *spec = c->profile ? c->profile : "hw=cpu-2core,engine=llama-server,model=qwen2-tiny-random,quant=f16,kv=f16";
	struct sim *probe = NULL;
	if (sim_new_in(&probe, cat, spec, &err) < 0)
		goto fail;
	char id[128];
	snprintf(id, sizeof id, "%s", c->id ? c->id : sim_id(probe, SIM_HW));
	sim_free(probe);
	if (sim_calib_fit_hw(cat, spec, id, c->pts, c->n_pts, &yaml, &rows, &err) < 0)
		goto fail;
	if (c->out) {
		FILE *f = fopen(c->out, "w");
		if (!f || fwrite(yaml.data, 1, yaml.len, f) != yaml.len || fclose(f) != 0) {
			ar_err_set(&err, AR_EIO, "cannot write '%s': %s", c->out, strerror(errno));
			goto fail;
		}
		print_rows(rows, (int)c->n_pts, false);
	} else {
		fwrite(yaml.data, 1, yaml.len, stdout);
		for (size_t i = 0; i < c->n_pts; i++)
			fprintf(stderr, "%s %s:%" PRId64 "@%" PRId64 ": measured %.1f, fitted model %.1f (%+.1f%%)\n",
				rows[i].what, c->pts[i].kind == 'p' ? "pp" : "tg", c->pts[i].tokens, c->pts[i].depth,
				rows[i].published, rows[i].predicted, rows[i].error * 100);
	}
	rc = EXIT_OK;
	goto out;
fail:
	cli_error_err(&err);
out:
	free(rows);
	buf_free(&yaml);
	sim_catalog_free(cat);
	return rc;
}

/* ---- serve ---------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void log_line(void *ctx, const char *line)
{
	const struct sim_cfg *c = ctx;
	if (!c->quiet)
		fprintf(stderr, "%s\n", line);
}

static void on_ready(void *ctx, int port)
{
	const struct sim_cfg *c = ctx;
	if (!c->quiet)
		fprintf(stderr, "agentreplay sim serve: listening on http://%s:%d\n", c->host ? c->host : "127.0.0.1", port);
	if (c->port_file) {
		char tmp[4200];
		snprintf(tmp, sizeof tmp, "%s.tmp", c->port_file);
		FILE *f = fopen(tmp, "w");
		if (f) {
			fprintf(f, "%d\n", port);
			if (fclose(f) == 0)
				rename(tmp, c->port_file);
		}
	}
}

static int serve_run(struct sim_cfg *c)
{
	struct ar_err err = {0};
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct sim_serve_opts o = {
		.spec = c->profile,
		.host = c->host,
		.port = c->port,
		.time_scale = c->scale > 0 ? c->scale : 1,
		.rss_scale = c->rss,
		.rss_max = c->rss_max,
		.load_time = c->load_time,
		.log = log_line,
		.log_ctx = c,
		.ready = on_ready,
		.ready_ctx = c,
		.stop = &stop_flag,
	};
	int code = 0;
	if (sim_serve_run(&o, &code, &err) < 0) {
		cli_error_err(&err);
		return EXIT_USAGE;
	}
	if (code) {
		/* the modelled process died: die the same way */
		fflush(stdout);
		fflush(stderr);
		if (code == 134) {
			signal(SIGABRT, SIG_DFL);
			raise(SIGABRT);
		} else if (code == 137) {
			raise(SIGKILL);
		}
		_exit(code);
	}
	return EXIT_OK;
}

/* ---- dispatch ----------------------------------------------------------- */

static int sim_run(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
			cli_help(&cmd_sim, stdout);
			return EXIT_OK;
		}
		cli_error("sim: which one? predict, profiles, serve or calibrate (see 'agentreplay sim --help')");
		return EXIT_USAGE;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "predict") && strcmp(sub, "profiles") && strcmp(sub, "serve") && strcmp(sub, "calibrate")) {
		cli_error("sim: '%s' is not one of predict, profiles, serve, calibrate", sub);
		return EXIT_USAGE;
	}
	struct sim_cfg c = {0};
	c.port = 8080;
	int npos = 0;
	int p = cli_parse(&cmd_sim, argc - 1, argv + 1, sim_opt, &c, &npos);
	if (p != 0)
		return p > 0 ? EXIT_OK : EXIT_USAGE;
	char **pos = argv + 1;
	if (!strcmp(sub, "predict")) {
		if (npos > 1) {
			cli_error("sim predict: one trace at a time");
			return EXIT_USAGE;
		}
		return predict_run(&c, npos ? pos[0] : DEFAULT_TRACE);
	}
	if (npos) {
		cli_error("sim %s: unexpected argument '%s'", sub, pos[0]);
		return EXIT_USAGE;
	}
	if (!strcmp(sub, "profiles"))
		return profiles_run(&c);
	if (!strcmp(sub, "calibrate"))
		return calibrate_run(&c);
	return serve_run(&c);
}

const struct cli_cmd cmd_sim = {
	.name = "sim",
	.summary = "the simulated backend: predict, profiles, serve, calibrate",
	.usage = "sim predict [--profile SPEC] [TRACE] [--json] [--matrix LISTS] [--all]\n"
		 "       agentreplay sim profiles [--json]\n"
		 "       agentreplay sim serve [--profile SPEC] [--port N] [--time-scale X] [--rss-scale X]\n"
		 "       agentreplay sim calibrate [--published | --point P... [--profile SPEC] [-o FILE]]",
	.description =
		"A performance model of an inference server (hardware, model, quantization, KV-cache type,\n"
		"engine; profiles in replay/sim/profiles/, yours in $AGENTREPLAY_SIM_PROFILES or\n"
		"~/.config/agentreplay/profiles). predict runs a trace (default: the bundled example) in\n"
		"virtual time and prints each turn's cached tokens, warm and cold TTFT, prefill and decode\n"
		"rates, memory and the failure point; --matrix tells which combinations survive to which\n"
		"depth. serve puts the same model behind an HTTP server that streams like llama-server.\n"
		"calibrate --published compares the model with the published measurements; with --point\n"
		"it fits a hardware profile to a real server's rates, e.g.\n"
		"  agentreplay sim calibrate --profile hw=cpu-2core,model=qwen2-tiny-random,quant=f16 \\\n"
		"    --point pp:512@0=12400 --point pp:512@8192=1890 --point tg:128@0=328 --point tg:128@8192=258 \\\n"
		"    -o cpu-2core.yaml\n"
		"SPEC: model=ID,quant=ID,hw=ID,engine=ID,kv=ID,ctx=N,slots=N; omitted keys default to\n"
		"  " SIM_DEFAULT_SPEC "\n"
		"(ctx: the engine's default context). A value may be a path to a profile file.",
	.opts = sim_opts,
	.run = sim_run,
};
