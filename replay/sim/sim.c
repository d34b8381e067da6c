/* sim: the simulator's lifecycle and its per-request state machine.
 *
 * sim_new resolves the spec into profiles, derives the model's constants
 * (sim_model.c), sizes the context and the memory (up-front KV, paged pool
 * or growing sequences) and decides whether the configuration loads at all.
 * sim_request then runs one request in virtual time: process state (dead?),
 * context limit (error / truncate / none), prefix-cache lookup
 * (sim_cache.c), memory at the request's peak against the budget, timing,
 * and finally the cache and counters are updated.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"
#include "units.h"

/* ---- spec --------------------------------------------------------------- */

struct spec {
	char v[SIM_NKINDS][512];
	bool set[SIM_NKINDS];
	int64_t ctx, slots;
};

static int key_kind(const char *k)
{
	if (!strcmp(k, "hw") || !strcmp(k, "hardware"))
		return SIM_HW;
	if (!strcmp(k, "model"))
		return SIM_MODEL;
	if (!strcmp(k, "quant") || !strcmp(k, "quantization"))
		return SIM_QUANT;
	if (!strcmp(k, "kv") || !strcmp(k, "kv_cache"))
		return SIM_KV;
	if (!strcmp(k, "engine"))
		return SIM_ENGINE;
	return -1;
}

static void trim(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = 0;
	size_t i = 0;
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	memmove(s, s + i, n - i + 1);
}

static int parse_spec(struct sim_catalog *cat, const char *spec, struct spec *sp, struct ar_err *err)
{
	memset(sp, 0, sizeof *sp);
	sp->ctx = -1;
	sp->slots = -1;
	if (!spec)
		spec = "";
	if (!strncmp(spec, "sim:", 4))
		spec += 4;
	else if (!strcmp(spec, "sim"))
		spec = "";
	char *dup = strdup(spec);
	if (!dup)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	int rc = 0;
	char *save = NULL;
	for (char *tok = strtok_r(dup, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
		trim(tok);
		if (!*tok)
			continue;
		char *eq = strchr(tok, '=');
		if (eq) {
			*eq = 0;
			char *k = tok, *v = eq + 1;
			trim(k);
			trim(v);
			if (!*v) {
				rc = ar_err_set(err, AR_EINVAL, "sim spec: '%s' needs a value", k);
				break;
			}
			if (!strcmp(k, "ctx") || !strcmp(k, "context")) {
				uint64_t t;
				struct ar_err e2 = {0};
				if (units_parse_tokens(v, &t, &e2) < 0) {
					rc = ar_err_set(err, AR_EINVAL, "sim spec: ctx: %s", e2.msg);
				} else if (t < 16 || t > (1ULL << 32)) {
					rc = ar_err_set(err, AR_EINVAL, "sim spec: ctx: %s is out of range (16 to 4G tokens)", v);
				} else if (sp->ctx >= 0) {
					rc = ar_err_set(err, AR_EINVAL, "sim spec: ctx given twice");
				} else {
					sp->ctx = (int64_t)t;
				}
				continue;
			}
			if (!strcmp(k, "slots") || !strcmp(k, "np")) {
				uint64_t t;
				struct ar_err e2 = {0};
				if (units_parse_count(v, &t, &e2) < 0)
					rc = ar_err_set(err, AR_EINVAL, "sim spec: slots: %s", e2.msg);
				else if (t < 1 || t > 4096)
					rc = ar_err_set(err, AR_EINVAL, "sim spec: slots: %s is out of range (1 to 4096)", v);
				else
					sp->slots = (int64_t)t;
				continue;
			}
			int kk = key_kind(k);
			if (kk < 0) {
				rc = ar_err_set(err, AR_EINVAL,
						"sim spec: unknown key '%s' (keys: model, quant, hw, engine, kv, ctx, slots)", k);
				break;
			}
			if (sp->set[kk]) {
				rc = ar_err_set(err, AR_EINVAL, "sim spec: %s given twice", sim_kind_key((enum sim_kind)kk));
				break;
			}
			snprintf(sp->v[kk], sizeof sp->v[kk], "%s", v);
			sp->set[kk] = true;
			continue;
		}
		/* a bare id: whichever kind has it */
		int found = -1, nfound = 0;
		char kinds[128] = "";
		for (int k = 0; k < SIM_NKINDS; k++) {
			struct ar_err e2 = {0};
			if (sim_catalog_check(cat, (enum sim_kind)k, tok, &e2) == 0) {
				found = k;
				snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%s=%s", nfound ? " or " : "",
					 sim_kind_key((enum sim_kind)k), tok);
				nfound++;
			} else if (e2.code != AR_EINVAL) {
				rc = ar_err_set(err, e2.code, "%s", e2.msg); /* the file exists but is bad */
				break;
			}
		}
		if (rc)
			break;
		if (!nfound) {
			rc = ar_err_set(err, AR_EINVAL,
					"sim spec: '%s' is not a profile id of any kind (see 'agentreplay sim profiles'; "
					"or write key=value)",
					tok);
			break;
		}
		if (nfound > 1) {
			rc = ar_err_set(err, AR_EINVAL, "sim spec: '%s' is ambiguous: say %s", tok, kinds);
			break;
		}
		if (sp->set[found]) {
			rc = ar_err_set(err, AR_EINVAL, "sim spec: %s given twice", sim_kind_key((enum sim_kind)found));
			break;
		}
		snprintf(sp->v[found], sizeof sp->v[found], "%s", tok);
		sp->set[found] = true;
	}
	free(dup);
	if (rc)
		return -1;
	static const char *const defaults[SIM_NKINDS] = {SIM_DEFAULT_HW, SIM_DEFAULT_MODEL, SIM_DEFAULT_QUANT,
							 SIM_DEFAULT_KV, SIM_DEFAULT_ENGINE};
	for (int k = 0; k < SIM_NKINDS; k++)
		if (!sp->set[k])
			snprintf(sp->v[k], sizeof sp->v[k], "%s", defaults[k]);
	return 0;
}

static size_t key_len(const char *tok)
{
	const char *eq = strchr(tok, '=');
	return eq ? (size_t)(eq - tok) : 0;
}

char *sim_spec_merge(const char *base, const char *over)
{
	struct buf b = BUF_INIT;
	char *dup = strdup(base ? base : "");
	if (!dup)
		return NULL;
	if (!strncmp(dup, "sim:", 4))
		memmove(dup, dup + 4, strlen(dup + 4) + 1);
	char *save = NULL;
	for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		trim(tok);
		size_t kl = key_len(tok);
		bool replaced = false;
		for (const char *o = over; o && *o && kl;) {
			while (*o == ' ' || *o == ',')
				o++;
			size_t ol = key_len(o);
			if (ol == kl && !strncmp(o, tok, kl))
				replaced = true;
			const char *c = strchr(o, ',');
			o = c ? c + 1 : NULL;
		}
		if (!replaced && *tok)
			buf_printf(&b, "%s%s", b.len ? "," : "", tok);
	}
	free(dup);
	if (over && *over)
		buf_printf(&b, "%s%s", b.len ? "," : "", over);
	return buf_detach(&b);
}

/* ---- failures ------------------------------------------------------------ */

static const struct sim_failure_entry *find_failure(const struct sim_engine *e, const char *name)
{
	for (size_t i = 0; i < e->n_failures; i++)
		if (!strcmp(e->failures[i].name, name))
			return &e->failures[i];
	return NULL;
}

static void fmt_gib(char *b, size_t n, double bytes) { snprintf(b, n, "%.2f", bytes / SIM_GIB); }

struct fail_vals {
	int64_t n_prompt, max_tokens, n_ctx_new, n_keep, n_new;
	double alloc, needed, avail;
	int64_t max_len;
};

static bool has(const char *l, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = 0; i + k <= n; i++)
		if (!memcmp(l + i, needle, k))
			return true;
	return false;
}

/* Renders entry fe into the result's body, log and evidence buffers. */
static void render_failure(struct sim *s, const struct sim_failure_entry *fe, const struct fail_vals *fv,
			   struct sim_result *r, struct buf *body, struct buf *log, struct buf *ev, char *name_out)
{
	char n_prompt[32], n_ctx[32], n_total[32], max_tokens[32], alloc_mib[32], alloc_mb[32], alloc_bytes[32],
		alloc_gib[32], total_gib[32], free_mib[32], used_gib[32], needed_gib[32], avail_gib[32], max_len[32],
		task[32], pid[32], port[32], limit[32], n_keep[32], n_new[32], n_ctx_new[32], memfrac[32], needed[48],
		model_path[300];
	snprintf(n_prompt, sizeof n_prompt, "%" PRId64, fv->n_prompt);
	snprintf(n_ctx, sizeof n_ctx, "%" PRId64, s->n_ctx);
	snprintf(n_total, sizeof n_total, "%" PRId64, fv->n_prompt + fv->max_tokens);
	snprintf(max_tokens, sizeof max_tokens, "%" PRId64, fv->max_tokens);
	snprintf(alloc_mib, sizeof alloc_mib, "%.2f", fv->alloc / 1048576.0);
	snprintf(alloc_mb, sizeof alloc_mb, "%.2f", fv->alloc / 1048576.0);
	snprintf(alloc_bytes, sizeof alloc_bytes, "%.0f", fv->alloc);
	fmt_gib(alloc_gib, sizeof alloc_gib, fv->alloc);
	fmt_gib(total_gib, sizeof total_gib, s->hw->memory);
	double used = s->static_bytes < s->budget ? s->static_bytes : s->budget;
	snprintf(free_mib, sizeof free_mib, "%.2f", (s->hw->memory - used) / 1048576.0 > 0 ? (s->hw->memory - used) / 1048576.0 : 0);
	fmt_gib(used_gib, sizeof used_gib, used);
	fmt_gib(needed_gib, sizeof needed_gib, fv->needed);
	fmt_gib(avail_gib, sizeof avail_gib, fv->avail > 0 ? fv->avail : 0);
	snprintf(max_len, sizeof max_len, "%" PRId64, fv->max_len);
	snprintf(task, sizeof task, "%" PRId64, s->task_id);
	snprintf(pid, sizeof pid, "%ld", s->pid);
	snprintf(port, sizeof port, "%d", s->port);
	snprintf(limit, sizeof limit, "%" PRId64, s->n_ctx);
	snprintf(n_keep, sizeof n_keep, "%" PRId64, fv->n_keep);
	snprintf(n_new, sizeof n_new, "%" PRId64, fv->n_new);
	snprintf(n_ctx_new, sizeof n_ctx_new, "%" PRId64, fv->n_ctx_new);
	snprintf(memfrac, sizeof memfrac, "%.2f", s->e->memory_fraction);
	snprintf(needed, sizeof needed, "%.2f GB", fv->needed / 1e9);
	snprintf(model_path, sizeof model_path, "/models/%s-%s.gguf", s->m->id, s->q->id);
	const char *vals[] = {"n_prompt", n_prompt, "n_ctx", n_ctx, "n_total", n_total, "max_tokens", max_tokens,
			      "alloc_mib", alloc_mib, "alloc_mb", alloc_mb, "alloc_bytes", alloc_bytes, "alloc_gib",
			      alloc_gib, "total_gib", total_gib, "free_mib", free_mib, "used_gib", used_gib,
			      "needed_gib", needed_gib, "avail_gib", avail_gib, "max_len", max_len, "task_id", task,
			      "pid", pid, "port", port, "limit", limit, "n_keep", n_keep, "n_new", n_new, "n_ctx_new",
			      n_ctx_new, "memory_fraction", memfrac, "needed", needed, "model_path", model_path,
			      "message", "", "llama_log", "", NULL};
	buf_reset(body);
	buf_reset(log);
	buf_reset(ev);
	sim_fill(log, fe->log, vals);
	/* {message} and {llama_log} are the other texts */
	const char *vals2[] = {"message", "out of memory", "llama_log", log->data ? log->data : "", NULL};
	struct buf tmp = BUF_INIT;
	sim_fill(&tmp, fe->body, vals);
	sim_fill(body, tmp.data ? tmp.data : "", vals2);
	buf_free(&tmp);
	/* evidence: the body, or the most telling log line */
	const char *src = body->len ? body->data : log->data ? log->data : "";
	if (!strncmp(src, "data: ", 6))
		src += 6;
	const char *nl = strchr(src, '\n');
	if (!body->len && log->len) {
		/* prefer a line that names the allocation failure */
		const char *best = NULL;
		for (const char *l = src; l && *l;) {
			const char *e2 = strchr(l, '\n');
			size_t ln = e2 ? (size_t)(e2 - l) : strlen(l);
			if (!best && (has(l, ln, "memory") || has(l, ln, "alloc") || has(l, ln, "Memory")))
				best = l;
			l = e2 ? e2 + 1 : NULL;
		}
		if (best) {
			src = best;
			nl = strchr(src, '\n');
		}
	}
	buf_append(ev, src, nl ? (size_t)(nl - src) : strlen(src));
	if (!ev->data)
		buf_puts(ev, "");
	snprintf(name_out, 64, "%s", fe->name);
	r->body = body->data ? body->data : "";
	r->log = log->data ? log->data : "";
	r->evidence = ev->data ? ev->data : "";
	r->failure = name_out;
	r->http_status = fe->mode == FAIL_EXIT ? 0 : fe->status;
	r->stream_error = fe->mode == FAIL_STREAM;
	r->process_exits = fe->mode == FAIL_EXIT || (fe->mode == FAIL_STREAM && fe->exit_code);
	r->exit_code = fe->exit_code;
}

bool sim_failure(struct sim *s, const char *entry, int64_t n_prompt, struct sim_result *out)
{
	const struct sim_failure_entry *fe = find_failure(s->e, entry);
	if (!fe)
		return false;
	struct fail_vals fv = {.n_prompt = n_prompt};
	render_failure(s, fe, &fv, out, &s->body, &s->log, &s->evidence, s->failure_name);
	return true;
}

/* Which entry reports running out of memory: at load or at run time, on a
 * CPU or a GPU. */
static const struct sim_failure_entry *oom_entry(const struct sim *s, bool runtime, bool weights)
{
	const struct sim_failure_entry *fe = NULL;
	bool cpu = !strcmp(s->hw->kind, "cpu");
	if (runtime)
		fe = find_failure(s->e, "oom_runtime");
	else if (weights)
		fe = find_failure(s->e, "oom_weights");
	if (!fe && cpu)
		fe = find_failure(s->e, "oom_cpu");
	if (!fe)
		fe = find_failure(s->e, "oom");
	return fe;
}

/* ---- lifecycle --------------------------------------------------------- */

static int64_t cache_seq_bytes(const void *ctx, int64_t n) { return sim_seq_bytes(ctx, n); }

static int64_t auto_context(const struct sim *s)
{
	int64_t c = s->e->default_context;
	if (s->e->n_tiers) {
		/* the tier whose minimum the device memory reaches (largest first) */
		double mem = s->hw->memory * s->hw->usable_fraction;
		int64_t best = -1;
		double best_min = -1;
		for (size_t i = 0; i < s->e->n_tiers; i++)
			if (mem >= s->e->tiers[i].min_mem && s->e->tiers[i].min_mem > best_min) {
				best_min = s->e->tiers[i].min_mem;
				best = s->e->tiers[i].context;
			}
		if (best > 0)
			c = best;
	}
	if (c <= 0 || c > s->m->max_context)
		c = s->m->max_context;
	return c;
}

static double upfront_bytes(const struct sim *s, int64_t ctx)
{
	double w = (double)s->m->window;
	double per_seq_swa = s->swa_tok * ((double)ctx < w ? (double)ctx : w);
	return s->kv_tok * (double)ctx + ((double)s->slots) * (per_seq_swa + s->state);
}

static void set_load_failure(struct sim *s, const struct sim_failure_entry *fe, const struct fail_vals *fv)
{
	s->load_failed = true;
	struct sim_result *r = &s->load_fail;
	memset(r, 0, sizeof *r);
	r->outcome = "oom";
	r->finish = "";
	r->context_tokens = s->n_ctx;
	if (fe)
		render_failure(s, fe, fv, r, &s->lf_body, &s->lf_log, &s->lf_evidence, s->lf_failure_name);
	else {
		buf_reset(&s->lf_evidence);
		buf_printf(&s->lf_evidence, "out of memory loading the model (%.2f GiB needed, %.2f GiB usable)",
			   fv->needed / SIM_GIB, s->budget / SIM_GIB);
		r->evidence = s->lf_evidence.data;
		r->body = r->log = "";
		r->failure = "oom";
		r->process_exits = true;
		r->exit_code = 1;
	}
	r->mem_bytes = 0;
	r->mem_peak_bytes = (int64_t)(s->w_mem + s->overhead_bytes);
}

/* Sizes context and memory and decides whether the config loads. */
static void plan(struct sim *s)
{
	const struct sim_engine *e = s->e;
	s->budget = s->hw->memory * s->hw->usable_fraction;
	s->sys_budget = s->hw->unified ? s->hw->memory * s->hw->system_fraction : 0;
	s->host_budget = s->hw->unified ? 0 : s->hw->host_memory;
	s->kv_alloc = 0;
	s->pool_tokens = 0;
	s->load_failed = false;
	double base = s->w_mem + s->overhead_bytes;
	struct fail_vals fv = {0};
	if (base > s->budget) {
		fv.alloc = s->w_mem;
		fv.needed = base;
		fv.avail = s->budget - s->overhead_bytes;
		set_load_failure(s, oom_entry(s, false, true), &fv);
		s->static_bytes = base;
		return;
	}
	if (e->alloc == ALLOC_UPFRONT) {
		int64_t ctx = s->n_ctx;
		while (base + upfront_bytes(s, ctx) > s->budget && e->context_fit && !s->ctx_explicit && ctx / 2 >= 4096) {
			ctx /= 2;
			s->ctx_fitted = true;
		}
		s->n_ctx = ctx;
		s->kv_alloc = upfront_bytes(s, ctx);
		s->pool_tokens = ctx;
		if (base + s->kv_alloc > s->budget) {
			fv.alloc = s->kv_alloc;
			fv.needed = base + s->kv_alloc;
			fv.avail = s->budget - base;
			fv.n_ctx_new = ctx / 2;
			set_load_failure(s, oom_entry(s, false, false), &fv);
		}
	} else if (e->alloc == ALLOC_PAGED) {
		double pool = e->memory_fraction * s->hw->memory - base;
		double need = (double)sim_seq_bytes(s, s->n_ctx);
		s->kv_alloc = pool > 0 ? pool : 0;
		double per_tok = s->kv_tok > 0 ? s->kv_tok : 1;
		s->pool_tokens = (int64_t)(s->kv_alloc / per_tok * e->capacity_fraction);
		if (pool <= 0 || (pool < need && e->pool_fits_context)) {
			fv.alloc = pool <= 0 ? s->w_mem : need;
			fv.needed = need;
			fv.avail = pool;
			fv.max_len = pool > 0 ? (int64_t)((pool - s->state) / per_tok) : 0;
			set_load_failure(s, oom_entry(s, false, pool <= 0), &fv);
		}
	}
	s->static_bytes = base + s->kv_alloc;
}

static int build_cache(struct sim *s)
{
	struct sim_cache_cfg cc = {0};
	const struct sim_engine *e = s->e;
	cc.policy = e->policy;
	cc.slots = e->policy == POL_SLOTS ? (s->slots > 0 ? s->slots : e->slots) : 1;
	cc.engine_block = e->block_tokens;
	cc.reuse = e->state_reuse;
	cc.stateful = s->stateful;
	cc.checkpoints = e->state_reuse == REUSE_EXACT ? 1 : e->checkpoints;
	if (e->policy == POL_RADIX) {
		if (e->alloc == ALLOC_PAGED)
			cc.capacity_tokens = s->pool_tokens > 0 ? s->pool_tokens : 1;
		else {
			double room = s->budget - s->static_bytes;
			double per = s->kv_tok > 0 ? s->kv_tok : 1;
			cc.capacity_tokens = room > 0 ? (int64_t)(room / per * e->capacity_fraction) : 1;
		}
	} else if (e->alloc == ALLOC_UPFRONT) {
		cc.capacity_tokens = s->pool_tokens;
	}
	cc.host_bytes = (int64_t)e->host_cache;
	cc.ssd = e->ssd_cache;
	cc.seq_bytes = cache_seq_bytes;
	cc.ctx = s;
	sim_cache_free(s->cache);
	s->cache = NULL;
	return sim_cache_new(&s->cache, &cc);
}

static void describe(struct sim *s)
{
	buf_reset(&s->desc);
	buf_printf(&s->desc, "%s %s kv=%s on %s via %s, ctx %" PRId64 "%s", s->m->id, s->q->id, s->kv->id, s->hw->id,
		   s->e->id, s->n_ctx, s->ctx_fitted ? " (fitted)" : "");
	if (s->load_failed)
		buf_printf(&s->desc, " [does not load: %s]", s->load_fail.evidence);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON *ids = cJSON_AddObjectToObject(o, "profiles");
	const char *paths[SIM_NKINDS] = {s->hw->path, s->m->path, s->q->path, s->kv->path, s->e->path};
	for (int k = 0; k < SIM_NKINDS; k++) {
		cJSON *p = cJSON_AddObjectToObject(ids, sim_kind_key((enum sim_kind)k));
		cJSON_AddStringToObject(p, "id", s->ids[k]);
		cJSON_AddStringToObject(p, "file", paths[k]);
	}
	cJSON_AddNumberToObject(o, "context_tokens", (double)s->n_ctx);
	cJSON_AddBoolToObject(o, "context_fitted", s->ctx_fitted);
	cJSON_AddNumberToObject(o, "slots", (double)s->slots);
	cJSON_AddNumberToObject(o, "weights_bytes", floor(s->w_mem));
	cJSON_AddNumberToObject(o, "kv_bytes_per_token", s->kv_tok);
	cJSON_AddNumberToObject(o, "state_bytes_per_sequence", s->state + s->swa_tok * (double)s->m->window);
	cJSON_AddNumberToObject(o, "kv_alloc_bytes", floor(s->kv_alloc));
	cJSON_AddNumberToObject(o, "load_bytes", floor(s->static_bytes));
	cJSON_AddNumberToObject(o, "budget_bytes", floor(s->budget));
	cJSON_AddNumberToObject(o, "decode_read_bytes_per_token", floor(s->w_decode));
	cJSON_AddStringToObject(o, "efficiency_class", sim_class_name(s->cls));
	cJSON_AddBoolToObject(o, "loads", !s->load_failed);
	char *t = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	buf_reset(&s->desc_json);
	if (t) {
		buf_puts(&s->desc_json, t);
		free(t);
	}
}

int sim_new_in(struct sim **out, struct sim_catalog *cat, const char *spec, struct ar_err *err)
{
	*out = NULL;
	struct sim *s = calloc(1, sizeof *s);
	struct spec sp;
	if (!s)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	s->pid = 1;
	if (!cat) {
		if (sim_catalog_new(&s->cat, NULL, err) < 0)
			goto fail;
		s->own_cat = true;
	} else {
		s->cat = cat;
	}
	if (parse_spec(s->cat, spec, &sp, err) < 0)
		goto fail;
	const void *p[SIM_NKINDS];
	for (int k = 0; k < SIM_NKINDS; k++) {
		if (sim_catalog_get(s->cat, (enum sim_kind)k, sp.v[k], &p[k], err) < 0)
			goto fail;
	}
	s->hw = p[SIM_HW];
	s->m = p[SIM_MODEL];
	s->q = p[SIM_QUANT];
	s->kv = p[SIM_KV];
	s->e = p[SIM_ENGINE];
	s->ids[SIM_HW][0] = 0;
	snprintf(s->ids[SIM_HW], sizeof s->ids[0], "%s", s->hw->id);
	snprintf(s->ids[SIM_MODEL], sizeof s->ids[0], "%s", s->m->id);
	snprintf(s->ids[SIM_QUANT], sizeof s->ids[0], "%s", s->q->id);
	snprintf(s->ids[SIM_KV], sizeof s->ids[0], "%s", s->kv->id);
	snprintf(s->ids[SIM_ENGINE], sizeof s->ids[0], "%s", s->e->id);
	sim_model_derive(s);
	s->slots = sp.slots > 0 ? sp.slots : (s->e->policy == POL_SLOTS || s->e->policy == POL_SINGLE) ? s->e->slots : 1;
	if (s->slots < 1)
		s->slots = 1;
	s->ctx_explicit = sp.ctx > 0;
	s->n_ctx = sp.ctx > 0 ? sp.ctx : auto_context(s);
	plan(s);
	if (build_cache(s) < 0) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto fail;
	}
	s->mem_now = s->load_failed ? 0 : (int64_t)s->static_bytes;
	describe(s);
	*out = s;
	return 0;
fail:
	sim_free(s);
	return -1;
}

int sim_new(struct sim **out, const char *spec, struct ar_err *err) { return sim_new_in(out, NULL, spec, err); }

void sim_free(struct sim *s)
{
	if (!s)
		return;
	sim_cache_free(s->cache);
	struct buf *bufs[] = {&s->body, &s->log, &s->evidence, &s->desc, &s->desc_json, &s->lf_body, &s->lf_log,
			      &s->lf_evidence};
	for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
		buf_free(bufs[i]);
	if (s->own_cat)
		sim_catalog_free(s->cat);
	free(s);
}

void sim_reset_cache(struct sim *s)
{
	sim_cache_clear(s->cache);
	if (!s->dead && !s->load_failed)
		s->mem_now = (int64_t)s->static_bytes;
}

void sim_restart(struct sim *s)
{
	sim_cache_clear(s->cache);
	s->dead = false;
	s->load_reported = false;
	s->mem_now = s->load_failed ? 0 : (int64_t)s->static_bytes;
}

const char *sim_describe(const struct sim *s) { return s->desc.data ? s->desc.data : ""; }
const char *sim_describe_json(const struct sim *s) { return s->desc_json.data ? s->desc_json.data : "{}"; }
const char *sim_id(const struct sim *s, enum sim_kind k) { return k < SIM_NKINDS ? s->ids[k] : ""; }
int64_t sim_context(const struct sim *s) { return s->n_ctx; }
int64_t sim_mem_bytes(const struct sim *s) { return s->mem_now; }
int64_t sim_mem_budget(const struct sim *s) { return (int64_t)s->budget; }
int64_t sim_kv_bytes(const struct sim *s)
{
	int64_t fixed = (int64_t)(s->w_mem + s->overhead_bytes);
	return s->mem_now > fixed ? s->mem_now - fixed : 0;
}
const struct sim_result *sim_load_failure(const struct sim *s) { return s->load_failed ? &s->load_fail : NULL; }
bool sim_dead(const struct sim *s) { return s->dead; }
int64_t sim_kv_alloc_bytes(const struct sim *s) { return (int64_t)s->kv_alloc; }
int sim_slots(const struct sim *s) { return (int)s->slots; }
int64_t sim_cached_tokens(const struct sim *s) { return sim_cache_device_tokens(s->cache); }
int64_t sim_pool_tokens(const struct sim *s) { return s->pool_tokens; }
const char *sim_api(const struct sim *s) { return s->e->api; }
void sim_counters(const struct sim *s, struct sim_counters *out) { *out = s->ctr; }

void sim_set_process(struct sim *s, long pid, int port)
{
	s->pid = pid;
	s->port = port;
}

double sim_overhead_ms(const struct sim *s, int64_t n)
{
	return (s->hw->request_overhead + s->e->request_overhead + s->e->request_per_token * (double)n) * 1e3;
}

/* ---- requests ------------------------------------------------------------ */

static void result_init(const struct sim *s, struct sim_result *r, int64_t prompt)
{
	memset(r, 0, sizeof *r);
	r->prompt_tokens = prompt;
	r->context_tokens = s->n_ctx;
	r->outcome = "ok";
	r->finish = "length";
	r->http_status = 200;
	r->evidence = r->body = r->log = r->failure = "";
	r->mem_bytes = r->mem_peak_bytes = s->mem_now;
}

/* Dynamic engines hold the in-flight sequence in steps of kv_step tokens. */
static int64_t dyn_seq_bytes(const struct sim *s, int64_t tokens)
{
	int64_t st = s->e->kv_step > 1 ? s->e->kv_step : 1;
	int64_t t = (tokens + st - 1) / st * st;
	return sim_seq_bytes(s, t);
}

static int run(struct sim *s, const struct sim_prompt *p, int64_t out_tokens, struct sim_result *r, bool commit,
	       struct ar_err *err)
{
	if (!p || !r || out_tokens < 1)
		return ar_err_set(err, AR_EINVAL, "sim_request: needs a prompt and output_tokens >= 1");
	if (!p->n || p->tokens < 1)
		return ar_err_set(err, AR_EINVAL, "sim_request: the prompt is empty");
	s->task_id++;
	result_init(s, r, p->tokens);
	if (s->load_failed && !s->dead) {
		bool dies = s->load_fail.process_exits;
		*r = s->load_fail;
		r->prompt_tokens = p->tokens;
		if (commit && dies && s->load_reported)
			goto dead;
		if (commit)
			s->load_reported = true;
		if (commit && dies)
			s->dead = true;
		return 0;
	}
	if (s->dead) {
	dead:
		s->dead = true;
		r->outcome = "crash";
		r->finish = "";
		r->http_status = 0;
		r->evidence = "connection refused: the server process is not running";
		r->failure = "";
		r->mem_bytes = r->mem_peak_bytes = 0;
		return 0;
	}
	const struct sim_engine *e = s->e;
	int64_t prompt = p->tokens;
	struct sim_prompt trunc_p = {0};
	const struct sim_prompt *use = p;
	struct fail_vals fv = {.n_prompt = prompt, .max_tokens = out_tokens};
	int rc = 0;
	/* context limit */
	if (prompt > s->n_ctx && e->overflow != OVF_NONE) {
		if (e->overflow == OVF_TRUNCATE && p->prefix_tokens + 1 < s->n_ctx) {
			/* drop the oldest history blocks, keep system + tools and the newest
			 * (ollama chatPrompt); the kept tail follows a new prefix */
			int64_t room = s->n_ctx - p->prefix_tokens;
			size_t first = p->prefix_blocks;
			while (first < p->n && p->end[p->n - 1] - p->end[first > 0 ? first - 1 : 0] > room)
				first++;
			if (sim_prompt_build_truncated(&trunc_p, p, first) < 0) {
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
				goto out;
			}
			use = &trunc_p;
			r->truncated_tokens = prompt - trunc_p.tokens;
			prompt = trunc_p.tokens;
			r->prompt_tokens = prompt;
			fv.n_keep = p->prefix_tokens;
			fv.n_new = prompt;
			const struct sim_failure_entry *fe = find_failure(e, "ctx_overflow");
			if (fe) {
				buf_reset(&s->log);
				struct sim_result tmp;
				render_failure(s, fe, &fv, &tmp, &s->body, &s->log, &s->evidence, s->failure_name);
				r->log = s->log.data ? s->log.data : "";
				r->evidence = r->log; /* a warning: the request still succeeds */
			}
		} else {
			const struct sim_failure_entry *fe = find_failure(e, "ctx_overflow");
			r->outcome = "ctx_overflow";
			r->finish = "";
			if (fe && (fe->status || fe->body[0] || fe->log[0]))
				render_failure(s, fe, &fv, r, &s->body, &s->log, &s->evidence, s->failure_name);
			else {
				r->http_status = 400;
				buf_reset(&s->evidence);
				buf_printf(&s->evidence, "prompt of %" PRId64 " tokens exceeds the context of %" PRId64, prompt,
					   s->n_ctx);
				r->evidence = s->evidence.data;
			}
			r->ttft_cold_ms = 0;
			goto out;
		}
	}
	/* output length: engines that check prompt + max_tokens reject it, the
	 * others stop when the context is full */
	int64_t gen = out_tokens;
	if (e->overflow != OVF_NONE && prompt + gen > s->n_ctx) {
		const struct sim_failure_entry *fe = find_failure(e, "output_overflow");
		if (fe) {
			r->outcome = "ctx_overflow";
			r->finish = "";
			render_failure(s, fe, &fv, r, &s->body, &s->log, &s->evidence, s->failure_name);
			goto out;
		}
		gen = s->n_ctx - prompt;
		if (gen < 1)
			gen = 1;
	}
	/* the cache */
	struct sim_lookup lk;
	sim_cache_lookup(s->cache, use, prompt + gen, &lk);
	int64_t cached = lk.reuse < prompt - 1 ? lk.reuse : prompt - 1;
	if (cached < 0)
		cached = 0;
	if (e->policy == POL_RADIX && e->block_tokens > 1)
		cached = cached / e->block_tokens * e->block_tokens;
	int64_t restored = lk.restored < cached ? lk.restored : cached;
	r->cached_tokens = cached;
	r->restored_tokens = restored;
	/* memory at the peak of the request */
	double host_now = (double)sim_cache_host_bytes(s->cache);
	double host_peak = host_now + (double)lk.save_bytes;
	if (e->host_cache > 0 && host_peak > e->host_cache)
		host_peak = e->host_cache > host_now ? e->host_cache : host_now;
	double dev_peak = s->static_bytes, dev_after = s->static_bytes;
	int64_t oom_at = -1; /* token position where a growing sequence runs out */
	if (e->alloc == ALLOC_DYNAMIC) {
		double seq = (double)dyn_seq_bytes(s, prompt + gen);
		if (e->policy == POL_RADIX) {
			/* the request's new blocks join the shared tree */
			int64_t tot = sim_cache_device_tokens(s->cache) - lk.evict_tokens + (prompt + gen - lk.reuse);
			dev_peak = s->static_bytes + (double)dyn_seq_bytes(s, tot);
			dev_after = dev_peak;
		} else if (e->policy == POL_NONE) {
			dev_peak = s->static_bytes + seq;
			dev_after = s->static_bytes;
		} else {
			/* the chosen slot's sequence is replaced by this one */
			double others = (double)sim_cache_device_bytes(s->cache);
			int64_t st = lk.slot >= 0 ? sim_cache_slot_tokens(s->cache, lk.slot) : 0;
			if (st > 0)
				others -= (double)sim_seq_bytes(s, st);
			dev_peak = s->static_bytes + (others > 0 ? others : 0) + seq;
			dev_after = dev_peak;
		}
		if (dev_peak > s->budget) {
			/* the sequence grows until the allocation fails */
			double room = s->budget - (dev_peak - seq);
			int64_t lo = 0, hi = prompt + gen;
			while (lo < hi) {
				int64_t mid = lo + (hi - lo + 1) / 2;
				if ((double)dyn_seq_bytes(s, mid) <= room)
					lo = mid;
				else
					hi = mid - 1;
			}
			oom_at = lo;
		}
	}
	double mem_peak = dev_peak + host_peak;
	bool host_oom = (s->sys_budget > 0 && dev_peak + host_peak > s->sys_budget) ||
			(s->host_budget > 0 && host_peak > s->host_budget);
	if (oom_at < 0 && host_oom)
		oom_at = 0; /* the save to the host tier at the start of the request */
	/* timing */
	double ovh = sim_overhead_ms(s, prompt);
	double restore = 0, save = 0;
	if (e->host_restore > 0) {
		restore += (double)lk.restore_bytes_host / e->host_restore * 1e3;
		save = (double)lk.save_bytes / e->host_restore * 1e3;
	}
	if (e->ssd_read > 0)
		restore += (double)lk.restore_bytes_ssd / e->ssd_read * 1e3;
	r->prefill_ms = sim_prefill_ms(s, prompt - cached, cached);
	r->overhead_ms = ovh + restore + save;
	r->ttft_ms = r->overhead_ms + r->prefill_ms;
	r->ttft_cold_ms = ovh + sim_prefill_ms(s, prompt, 0);
	r->completion_tokens = gen;
	double p50, p99;
	r->decode_ms = sim_decode_ms(s, prompt, gen, &p50, &p99);
	r->itl_p50_ms = p50;
	r->itl_p99_ms = p99;
	r->itl_ms = gen > 1 ? r->decode_ms / (double)(gen - 1) : 0;
	r->decode_tps = gen > 1 && r->decode_ms > 0 ? (double)(gen - 1) / (r->decode_ms / 1e3) : 0;
	r->prefill_tps = r->ttft_ms > 0 ? (double)(prompt - cached) / (r->ttft_ms / 1e3) : 0;
	r->e2e_ms = r->ttft_ms + r->decode_ms;
	r->mem_peak_bytes = (int64_t)mem_peak;
	r->mem_bytes = (int64_t)mem_peak;
	if (oom_at >= 0) {
		const struct sim_failure_entry *fe = oom_entry(s, true, false);
		fv.alloc = oom_at > 0 ? (double)dyn_seq_bytes(s, oom_at + 1) - (double)dyn_seq_bytes(s, oom_at) : (double)lk.save_bytes;
		if (fv.alloc <= 0)
			fv.alloc = (double)(s->e->kv_step > 1 ? s->e->kv_step : 1) * s->kv_tok;
		fv.needed = mem_peak;
		fv.avail = s->budget;
		r->outcome = "oom";
		r->finish = "";
		if (fe)
			render_failure(s, fe, &fv, r, &s->body, &s->log, &s->evidence, s->failure_name);
		else {
			buf_reset(&s->evidence);
			buf_printf(&s->evidence, "out of memory: %.2f GiB needed, %.2f GiB usable", mem_peak / SIM_GIB,
				   s->budget / SIM_GIB);
			r->evidence = s->evidence.data;
			r->http_status = 500;
		}
		/* how far it got */
		if (oom_at <= prompt) {
			r->completion_tokens = 0;
			r->error_after_tokens = 0;
			r->ttft_ms = r->overhead_ms + sim_prefill_ms(s, oom_at > cached ? oom_at - cached : 0, cached);
			r->decode_ms = 0;
			r->e2e_ms = r->ttft_ms;
			r->decode_tps = r->itl_ms = r->itl_p50_ms = r->itl_p99_ms = 0;
			r->prefill_tps = 0;
		} else {
			int64_t done = oom_at - prompt;
			r->completion_tokens = done;
			r->error_after_tokens = done;
			r->decode_ms = sim_decode_ms(s, prompt, done, &p50, &p99);
			r->e2e_ms = r->ttft_ms + r->decode_ms;
		}
		if (commit) {
			if (r->process_exits) {
				s->dead = true;
				s->mem_now = 0;
				r->mem_bytes = 0;
			}
			s->ctr.requests++;
		}
		goto out;
	}
	if (commit) {
		if (sim_cache_commit(s->cache, use, &lk, gen) < 0) {
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
		if (e->alloc == ALLOC_DYNAMIC)
			dev_after = s->static_bytes + (double)sim_cache_device_bytes(s->cache);
		s->mem_now = (int64_t)(dev_after + (double)sim_cache_host_bytes(s->cache));
		r->mem_bytes = s->mem_now;
		if (r->mem_bytes > r->mem_peak_bytes)
			r->mem_peak_bytes = r->mem_bytes;
		s->ctr.requests++;
		s->ctr.prompt_tokens += prompt - cached;
		s->ctr.cached_tokens += cached;
		s->ctr.predicted_tokens += gen;
		s->ctr.decode_calls += gen;
		s->ctr.prompt_seconds += r->ttft_ms / 1e3;
		s->ctr.predicted_seconds += r->decode_ms / 1e3;
	}
out:
	sim_prompt_free(&trunc_p);
	return rc;
}

int sim_request(struct sim *s, const struct sim_prompt *p, int64_t output_tokens, struct sim_result *out,
		struct ar_err *err)
{
	return run(s, p, output_tokens, out, true, err);
}

int sim_peek(struct sim *s, const struct sim_prompt *p, int64_t output_tokens, struct sim_result *out,
	     struct ar_err *err)
{
	int64_t task = s->task_id;
	int rc = run(s, p, output_tokens, out, false, err);
	s->task_id = task;
	return rc;
}
