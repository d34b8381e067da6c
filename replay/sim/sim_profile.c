/* sim_profile: loading and checking the simulator's profile files.
 *
 * One YAML (or JSON) file per profile, in a folder per kind; units are in
 * the key names (replay/sim/profiles/README.md). Every problem is reported
 * as FILE:LINE: field: message, and an unknown id lists the known ones.
 * Loaded profiles are cached in the catalog, which owns them.
 */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "sim_int.h"

#ifndef AR_SOURCE_DIR
#define AR_SOURCE_DIR "."
#endif

static const char *const kind_dirs[SIM_NKINDS] = {"hardware", "models", "quant", "kv", "engines"};
static const char *const kind_keys[SIM_NKINDS] = {"hw", "model", "quant", "kv", "engine"};
static const char *const kind_nouns[SIM_NKINDS] = {"hardware", "model", "quantization", "kv cache type", "engine"};

const char *sim_kind_dir(enum sim_kind k) { return k < SIM_NKINDS ? kind_dirs[k] : "?"; }
const char *sim_kind_key(enum sim_kind k) { return k < SIM_NKINDS ? kind_keys[k] : "?"; }

static const char *const prec_names[PREC_N] = {"fp16", "bf16", "int8", "fp8", "fp4"};
const char *sim_prec_name(enum sim_prec p) { return p < PREC_N ? prec_names[p] : "?"; }
static const char *const class_names[CLS_N] = {"dense", "moe", "hybrid"};
const char *sim_class_name(enum sim_class c) { return c < CLS_N ? class_names[c] : "?"; }

/* ---- catalog ---------------------------------------------------------- */

struct entry {
	enum sim_kind kind;
	char *key;  /* id, or the path as given */
	char *path; /* file loaded */
	void *prof;
};

struct sim_catalog {
	char **dirs;
	size_t n_dirs;
	struct entry *e;
	size_t n, cap;
	struct sim_profile_info *info[SIM_NKINDS];
	size_t n_info[SIM_NKINDS];
};

static void free_common(char *id, char *name, char *source, char *path)
{
	free(id);
	free(name);
	free(source);
	free(path);
}

static void prof_free(enum sim_kind k, void *p)
{
	if (!p)
		return;
	switch (k) {
	case SIM_HW: {
		struct sim_hw *h = p;
		free_common(h->id, h->name, h->source, h->path);
		break;
	}
	case SIM_MODEL: {
		struct sim_model *m = p;
		free_common(m->id, m->name, m->source, m->path);
		break;
	}
	case SIM_QUANT: {
		struct sim_quant *q = p;
		free_common(q->id, q->name, q->source, q->path);
		break;
	}
	case SIM_KV: {
		struct sim_kv *v = p;
		free_common(v->id, v->name, v->source, v->path);
		break;
	}
	case SIM_ENGINE: {
		struct sim_engine *e = p;
		free_common(e->id, e->name, e->source, e->path);
		free(e->api);
		free(e->tiers);
		for (size_t i = 0; i < e->n_failures; i++) {
			free(e->failures[i].name);
			free(e->failures[i].body);
			free(e->failures[i].log);
		}
		free(e->failures);
		break;
	}
	default: break;
	}
	free(p);
}

static int add_dir(struct sim_catalog *c, const char *d, size_t n)
{
	if (!n)
		return 0;
	char **nd = realloc(c->dirs, (c->n_dirs + 1) * sizeof *nd);
	if (!nd)
		return -1;
	c->dirs = nd;
	if (!(c->dirs[c->n_dirs] = strndup(d, n)))
		return -1;
	c->n_dirs++;
	return 0;
}

static int add_path_list(struct sim_catalog *c, const char *list)
{
	while (list && *list) {
		const char *colon = strchr(list, ':');
		size_t n = colon ? (size_t)(colon - list) : strlen(list);
		if (add_dir(c, list, n) < 0)
			return -1;
		list = colon ? colon + 1 : NULL;
	}
	return 0;
}

int sim_catalog_new(struct sim_catalog **out, const char *dirs, struct ar_err *err)
{
	*out = NULL;
	struct sim_catalog *c = calloc(1, sizeof *c);
	if (!c)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	int rc = 0;
	if (dirs) {
		rc = add_path_list(c, dirs);
	} else {
		rc = add_path_list(c, getenv("AGENTREPLAY_SIM_PROFILES"));
		char tmp[4096];
		const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
		if (!rc && xdg && *xdg) {
			snprintf(tmp, sizeof tmp, "%s/agentreplay/profiles", xdg);
			rc = add_dir(c, tmp, strlen(tmp));
		} else if (!rc && home && *home) {
			snprintf(tmp, sizeof tmp, "%s/.config/agentreplay/profiles", home);
			rc = add_dir(c, tmp, strlen(tmp));
		}
		if (!rc)
			rc = add_dir(c, AR_SOURCE_DIR "/replay/sim/profiles", strlen(AR_SOURCE_DIR "/replay/sim/profiles"));
	}
	if (rc < 0) {
		sim_catalog_free(c);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	*out = c;
	return 0;
}

void sim_catalog_free(struct sim_catalog *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		prof_free(c->e[i].kind, c->e[i].prof);
		free(c->e[i].key);
		free(c->e[i].path);
	}
	free(c->e);
	for (size_t i = 0; i < c->n_dirs; i++)
		free(c->dirs[i]);
	free(c->dirs);
	for (int k = 0; k < SIM_NKINDS; k++)
		free(c->info[k]);
	free(c);
}

/* ---- typed reads with dotted field paths ------------------------------ */

struct ld {
	const struct config_doc *d;
	struct ar_err *err;
	char path[128]; /* prefix of field names, e.g. "cache." */
};

enum { OPT = 0, REQ = 1 };
enum { ANY = 0, NONNEG = 1, POS = 2 };

static int fail(struct ld *L, const cJSON *node, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct ld *L, const cJSON *node, const char *key, const char *fmt, ...)
{
	char msg[512], field[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(field, sizeof field, "%s%s", L->path, key);
	return config_error(L->d, node, field, L->err, "%s", msg);
}

static const cJSON *member(struct ld *L, const cJSON *obj, const char *key, int req, int *rc)
{
	*rc = 0;
	const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
	if (!v || cJSON_IsNull(v)) {
		if (req)
			*rc = fail(L, obj, key, "missing required field");
		return NULL;
	}
	return v;
}

static const char *describe(const cJSON *v, char *buf, size_t n)
{
	if (cJSON_IsString(v))
		snprintf(buf, n, "string '%.60s'", v->valuestring);
	else if (cJSON_IsBool(v))
		snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
	else
		snprintf(buf, n, "%s", cJSON_IsObject(v) ? "a mapping" : cJSON_IsArray(v) ? "a list" : "something else");
	return buf;
}

static int get_num(struct ld *L, const cJSON *obj, const char *key, int req, int sign, double max, double *out)
{
	int rc;
	const cJSON *v = member(L, obj, key, req, &rc);
	if (!v)
		return rc;
	char b[96];
	if (!cJSON_IsNumber(v))
		return fail(L, v, key, "expected a number, got %s", describe(v, b, sizeof b));
	double x = v->valuedouble;
	if (!isfinite(x))
		return fail(L, v, key, "expected a finite number");
	if (sign == POS && !(x > 0))
		return fail(L, v, key, "must be positive, got %g", x);
	if (sign == NONNEG && x < 0)
		return fail(L, v, key, "must not be negative, got %g", x);
	if (x > max)
		return fail(L, v, key, "%g is too large (at most %g)", x, max);
	*out = x;
	return 0;
}

static int get_int(struct ld *L, const cJSON *obj, const char *key, int req, int sign, int64_t max, int64_t *out)
{
	double x;
	int rc;
	const cJSON *v = member(L, obj, key, req, &rc);
	if (!v)
		return rc;
	if (get_num(L, obj, key, req, sign, (double)max, &x) < 0)
		return -1;
	if (x != floor(x))
		return fail(L, v, key, "expected an integer, got %g", x);
	*out = (int64_t)x;
	return 0;
}

static int get_bool(struct ld *L, const cJSON *obj, const char *key, int req, bool *out)
{
	int rc;
	const cJSON *v = member(L, obj, key, req, &rc);
	if (!v)
		return rc;
	char b[96];
	if (!cJSON_IsBool(v))
		return fail(L, v, key, "expected true or false, got %s", describe(v, b, sizeof b));
	*out = cJSON_IsTrue(v);
	return 0;
}

static int get_str(struct ld *L, const cJSON *obj, const char *key, int req, const char **out)
{
	int rc;
	const cJSON *v = member(L, obj, key, req, &rc);
	if (!v)
		return rc;
	char b[96];
	if (cJSON_IsNumber(v))
		return fail(L, v, key, "expected a string, got the number %g", v->valuedouble);
	if (!cJSON_IsString(v))
		return fail(L, v, key, "expected a string, got %s", describe(v, b, sizeof b));
	*out = v->valuestring;
	return 0;
}

static int dup_str(struct ld *L, const cJSON *obj, const char *key, int req, char **out)
{
	const char *s = NULL;
	if (get_str(L, obj, key, req, &s) < 0)
		return -1;
	if (!s)
		return 0;
	if (!(*out = strdup(s)))
		return ar_err_set(L->err, AR_ENOMEM, "out of memory");
	return 0;
}

/* One of names[] (n of them): the index in *out. */
static int get_enum(struct ld *L, const cJSON *obj, const char *key, int req, const char *const *names, int n,
		    int *out)
{
	const char *s = NULL;
	if (get_str(L, obj, key, req, &s) < 0)
		return -1;
	if (!s)
		return 0;
	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
	char list[256] = "";
	for (int i = 0; i < n; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
	return fail(L, cJSON_GetObjectItemCaseSensitive(obj, key), key, "unknown value '%s' (one of: %s)", s, list);
}

static const cJSON *get_obj(struct ld *L, const cJSON *obj, const char *key, int req, int *rc)
{
	const cJSON *v = member(L, obj, key, req, rc);
	if (!v)
		return NULL;
	char b[96];
	if (!cJSON_IsObject(v)) {
		*rc = fail(L, v, key, "expected a mapping, got %s", describe(v, b, sizeof b));
		return NULL;
	}
	return v;
}

/* Common head: id (matching the file name when loaded by id), name, source, estimated. */
static int common(struct ld *L, const cJSON *r, const char *want_id, char **id, char **name, char **source,
		  bool *estimated)
{
	if (dup_str(L, r, "id", REQ, id) < 0)
		return -1;
	if (want_id && strcmp(*id, want_id))
		return fail(L, cJSON_GetObjectItemCaseSensitive(r, "id"), "id",
			    "'%s' does not match the file name '%s'", *id, want_id);
	if (!**id)
		return fail(L, cJSON_GetObjectItemCaseSensitive(r, "id"), "id", "must not be empty");
	if (dup_str(L, r, "name", REQ, name) < 0 || dup_str(L, r, "source", REQ, source) < 0)
		return -1;
	*estimated = false;
	return get_bool(L, r, "estimated", OPT, estimated);
}

/* ---- each kind --------------------------------------------------------- */

static int load_hw(struct ld *L, const cJSON *r, const char *want, struct sim_hw *h)
{
	static const char *const kinds[] = {"cpu", "gpu", "apple"};
	if (common(L, r, want, &h->id, &h->name, &h->source, &h->estimated) < 0)
		return -1;
	int kind = 0;
	double gib = 0, bw = 0, x;
	if (get_enum(L, r, "kind", REQ, kinds, 3, &kind) < 0)
		return -1;
	snprintf(h->kind, sizeof h->kind, "%s", kinds[kind]);
	if (get_num(L, r, "memory_gib", REQ, POS, 1e6, &gib) < 0 ||
	    get_num(L, r, "usable_fraction", REQ, POS, 1, &h->usable_fraction) < 0 ||
	    get_num(L, r, "bandwidth_gbs", REQ, POS, 1e6, &bw) < 0)
		return -1;
	h->memory = gib * SIM_GIB;
	h->bandwidth = bw * 1e9;
	h->unified = kind != 1;
	if (get_bool(L, r, "unified_memory", OPT, &h->unified) < 0)
		return -1;
	h->system_fraction = kind == 0 ? h->usable_fraction : 0.92;
	if (get_num(L, r, "system_fraction", OPT, POS, 1, &h->system_fraction) < 0)
		return -1;
	if (h->system_fraction < h->usable_fraction)
		h->system_fraction = h->usable_fraction;
	int rc;
	const cJSON *ct = get_obj(L, r, "compute_tflops", REQ, &rc);
	if (!ct)
		return -1;
	snprintf(L->path, sizeof L->path, "compute_tflops.");
	for (int p = 0; p < PREC_N; p++) {
		x = 0;
		if (get_num(L, ct, prec_names[p], OPT, NONNEG, 1e6, &x) < 0)
			return -1;
		h->flops[p] = x * 1e12;
	}
	for (const cJSON *c = ct->child; c; c = c->next) {
		bool known = !strcmp(c->string, "fp32");
		for (int p = 0; p < PREC_N; p++)
			known |= !strcmp(c->string, prec_names[p]);
		if (!known)
			return fail(L, c, c->string, "unknown precision (fp16, bf16, int8, fp8, fp4)");
	}
	L->path[0] = 0;
	for (int p = 0; p < PREC_N; p++)
		h->flops_eff[p] = 1;
	const cJSON *ce = get_obj(L, r, "compute_efficiency", OPT, &rc);
	if (rc < 0)
		return -1;
	if (ce) {
		snprintf(L->path, sizeof L->path, "compute_efficiency.");
		for (int p = 0; p < PREC_N; p++)
			if (get_num(L, ce, prec_names[p], OPT, POS, 1, &h->flops_eff[p]) < 0)
				return -1;
		L->path[0] = 0;
	}
	if (!(h->flops[PREC_FP16] > 0) && !(h->flops[PREC_BF16] > 0))
		return fail(L, ct, "compute_tflops", "needs fp16 or bf16 (the rate attention runs at)");
	if (!(h->flops[PREC_FP16] > 0))
		h->flops[PREC_FP16] = h->flops[PREC_BF16];
	if (!(h->flops[PREC_BF16] > 0))
		h->flops[PREC_BF16] = h->flops[PREC_FP16];
	x = 0;
	if (get_num(L, r, "attention_tflops", OPT, POS, 1e6, &x) < 0)
		return -1;
	h->attention_flops = x * 1e12;
	x = 0;
	if (get_num(L, r, "decode_attention_tflops", OPT, POS, 1e6, &x) < 0)
		return -1;
	h->decode_attention_flops = x * 1e12;
	x = 0;
	if (get_num(L, r, "request_overhead_ms", OPT, NONNEG, 1e6, &x) < 0)
		return -1;
	h->request_overhead = x / 1e3;
	x = -1;
	if (get_num(L, r, "layer_overhead_us", OPT, NONNEG, 1e6, &x) < 0)
		return -1;
	h->layer_overhead = x < 0 ? -1 : x / 1e6;
	x = 0;
	if (get_num(L, r, "driver_overhead_gib", OPT, NONNEG, 1e4, &x) < 0)
		return -1;
	h->driver_overhead = x * SIM_GIB;
	x = 0;
	if (get_num(L, r, "host_memory_gib", OPT, NONNEG, 1e6, &x) < 0)
		return -1;
	h->host_memory = x * SIM_GIB;
	return 0;
}

static int load_model(struct ld *L, const cJSON *r, const char *want, struct sim_model *m)
{
	static const char *const kinds[] = {"dense", "moe", "hybrid"};
	if (common(L, r, want, &m->id, &m->name, &m->source, &m->estimated) < 0)
		return -1;
	int kind = 0;
	if (get_enum(L, r, "kind", REQ, kinds, 3, &kind) < 0)
		return -1;
	m->kind = (enum sim_class)kind;
	double tot, act, emb = 0;
	const int64_t BIG = 1LL << 40;
	if (get_num(L, r, "params_total_b", REQ, POS, 1e5, &tot) < 0 ||
	    get_num(L, r, "params_active_b", REQ, POS, 1e5, &act) < 0 ||
	    get_num(L, r, "params_embedding_b", OPT, NONNEG, 1e5, &emb) < 0)
		return -1;
	if (act > tot * (1 + 1e-9))
		return fail(L, cJSON_GetObjectItemCaseSensitive(r, "params_active_b"), "params_active_b",
			    "%g is more than params_total_b %g", act, tot);
	if (emb >= act)
		return fail(L, cJSON_GetObjectItemCaseSensitive(r, "params_embedding_b"), "params_embedding_b",
			    "%g must be less than params_active_b %g", emb, act);
	m->params_total = tot * 1e9;
	m->params_active = act * 1e9;
	m->params_embedding = emb * 1e9;
	if (get_int(L, r, "layers", REQ, POS, 100000, &m->layers) < 0 ||
	    get_int(L, r, "hidden_size", REQ, POS, BIG, &m->hidden) < 0 ||
	    get_int(L, r, "attention_heads", REQ, POS, 100000, &m->heads) < 0 ||
	    get_int(L, r, "kv_heads", REQ, NONNEG, 100000, &m->kv_heads) < 0 ||
	    get_int(L, r, "head_dim", REQ, POS, 100000, &m->head_dim) < 0 ||
	    get_int(L, r, "kv_layers", REQ, NONNEG, 100000, &m->kv_layers) < 0)
		return -1;
	m->swa_layers = m->window = m->linear_layers = m->experts = m->experts_active = 0;
	m->linear_state_bytes = 0;
	if (get_int(L, r, "swa_layers", OPT, NONNEG, 100000, &m->swa_layers) < 0 ||
	    get_int(L, r, "sliding_window", OPT, NONNEG, BIG, &m->window) < 0 ||
	    get_int(L, r, "linear_layers", OPT, NONNEG, 100000, &m->linear_layers) < 0 ||
	    get_num(L, r, "linear_state_bytes", OPT, NONNEG, 1e12, &m->linear_state_bytes) < 0 ||
	    get_int(L, r, "experts", OPT, NONNEG, 100000, &m->experts) < 0 ||
	    get_int(L, r, "experts_active", OPT, NONNEG, 100000, &m->experts_active) < 0 ||
	    get_int(L, r, "vocab", REQ, POS, BIG, &m->vocab) < 0 ||
	    get_int(L, r, "max_context", REQ, POS, BIG, &m->max_context) < 0)
		return -1;
	m->swa_kv_heads = m->kv_heads;
	m->swa_head_dim = m->head_dim;
	if (get_int(L, r, "swa_kv_heads", OPT, POS, 100000, &m->swa_kv_heads) < 0 ||
	    get_int(L, r, "swa_head_dim", OPT, POS, 100000, &m->swa_head_dim) < 0)
		return -1;
	if (m->kv_layers + m->swa_layers + m->linear_layers > m->layers)
		return fail(L, cJSON_GetObjectItemCaseSensitive(r, "layers"), "layers",
			    "kv_layers + swa_layers + linear_layers (%lld) exceed layers (%lld)",
			    (long long)(m->kv_layers + m->swa_layers + m->linear_layers), (long long)m->layers);
	if ((m->kv_layers || m->swa_layers) && !m->kv_heads)
		return fail(L, cJSON_GetObjectItemCaseSensitive(r, "kv_heads"), "kv_heads",
			    "must be positive when the model has attention layers");
	if (m->swa_layers && !m->window)
		return fail(L, r, "sliding_window", "missing (or 0) although swa_layers is %lld", (long long)m->swa_layers);
	if (m->linear_layers && !(m->linear_state_bytes > 0))
		return fail(L, r, "linear_state_bytes", "missing (or 0) although linear_layers is %lld",
			    (long long)m->linear_layers);
	if (m->experts_active > m->experts)
		return fail(L, cJSON_GetObjectItemCaseSensitive(r, "experts_active"), "experts_active",
			    "%lld is more than experts (%lld)", (long long)m->experts_active, (long long)m->experts);
	if (m->experts && !m->experts_active)
		return fail(L, r, "experts_active", "missing (or 0) although experts is %lld", (long long)m->experts);
	return 0;
}

static int load_quant(struct ld *L, const cJSON *r, const char *want, struct sim_quant *q)
{
	if (common(L, r, want, &q->id, &q->name, &q->source, &q->estimated) < 0)
		return -1;
	int p = PREC_FP16;
	q->dequant_overhead = 0;
	if (get_num(L, r, "bits_per_weight", REQ, POS, 64, &q->bits) < 0 ||
	    get_enum(L, r, "compute", REQ, prec_names, PREC_N, &p) < 0 ||
	    get_num(L, r, "dequant_overhead", OPT, NONNEG, 10, &q->dequant_overhead) < 0)
		return -1;
	q->prec = (enum sim_prec)p;
	return 0;
}

static int load_kv(struct ld *L, const cJSON *r, const char *want, struct sim_kv *v)
{
	if (common(L, r, want, &v->id, &v->name, &v->source, &v->estimated) < 0)
		return -1;
	v->prefill_overhead = v->decode_overhead = 0;
	if (get_num(L, r, "bits_per_element", REQ, POS, 64, &v->bits) < 0 ||
	    get_num(L, r, "prefill_overhead", OPT, NONNEG, 10, &v->prefill_overhead) < 0 ||
	    get_num(L, r, "decode_overhead", OPT, NONNEG, 10, &v->decode_overhead) < 0)
		return -1;
	return 0;
}

static int load_by_class(struct ld *L, const cJSON *obj, const char *key, double *out)
{
	int rc;
	const cJSON *o = get_obj(L, obj, key, REQ, &rc);
	if (!o)
		return -1;
	char save[sizeof L->path];
	memcpy(save, L->path, sizeof save);
	snprintf(L->path + strlen(L->path), sizeof L->path - strlen(L->path), "%s.", key);
	for (int c = 0; c < CLS_N; c++)
		if (get_num(L, o, class_names[c], REQ, POS, 1, &out[c]) < 0)
			return -1;
	memcpy(L->path, save, sizeof save);
	return 0;
}

static int load_failures(struct ld *L, const cJSON *r, struct sim_engine *e)
{
	static const char *const modes[] = {"http", "exit", "stream_error"};
	int rc;
	const cJSON *f = get_obj(L, r, "failures", REQ, &rc);
	if (!f)
		return -1;
	size_t n = (size_t)cJSON_GetArraySize(f);
	if (!(e->failures = calloc(n ? n : 1, sizeof *e->failures)))
		return ar_err_set(L->err, AR_ENOMEM, "out of memory");
	for (const cJSON *c = f->child; c; c = c->next) {
		struct sim_failure_entry *fe = &e->failures[e->n_failures++];
		char b[96];
		if (!(fe->name = strdup(c->string)))
			return ar_err_set(L->err, AR_ENOMEM, "out of memory");
		snprintf(L->path, sizeof L->path, "failures.");
		if (!cJSON_IsObject(c))
			return fail(L, c, c->string, "expected a mapping, got %s", describe(c, b, sizeof b));
		snprintf(L->path, sizeof L->path, "failures.%s.", c->string);
		int mode = FAIL_HTTP;
		int64_t status = 0, code = 0;
		if (get_enum(L, c, "mode", OPT, modes, 3, &mode) < 0 || get_int(L, c, "status", REQ, NONNEG, 599, &status) < 0 ||
		    dup_str(L, c, "body", OPT, &fe->body) < 0 || dup_str(L, c, "log", OPT, &fe->log) < 0 ||
		    get_int(L, c, "exit_code", OPT, NONNEG, 255, &code) < 0)
			return -1;
		fe->mode = (enum sim_fail_mode)mode;
		fe->status = (int)status;
		fe->exit_code = (int)code;
		if ((!fe->body && !(fe->body = strdup(""))) || (!fe->log && !(fe->log = strdup(""))))
			return ar_err_set(L->err, AR_ENOMEM, "out of memory");
		/* a trailing newline of a YAML block scalar is not part of the text */
		size_t ln = strlen(fe->log);
		while (ln && fe->log[ln - 1] == '\n')
			fe->log[--ln] = 0;
		ln = strlen(fe->body);
		while (ln && fe->body[ln - 1] == '\n')
			fe->body[--ln] = 0;
		if (fe->mode == FAIL_HTTP && fe->status && fe->status < 400)
			return fail(L, cJSON_GetObjectItemCaseSensitive(c, "status"), "status",
				    "an http failure needs a 4xx or 5xx status, got %d", fe->status);
	}
	L->path[0] = 0;
	for (const char *need = "ctx_overflow"; need; need = strcmp(need, "oom") ? "oom" : NULL) {
		if (!cJSON_GetObjectItemCaseSensitive(f, need)) {
			snprintf(L->path, sizeof L->path, "failures.");
			return fail(L, f, need, "missing required entry");
		}
	}
	L->path[0] = 0;
	return 0;
}

static int load_engine(struct ld *L, const cJSON *r, const char *want, struct sim_engine *e)
{
	static const char *const pols[] = {"none", "single", "slots", "radix"};
	static const char *const allocs[] = {"upfront", "dynamic", "paged"};
	static const char *const ovfs[] = {"error", "truncate", "none"};
	static const char *const reuses[] = {"prefix", "snapshots", "exact"};
	if (common(L, r, want, &e->id, &e->name, &e->source, &e->estimated) < 0)
		return -1;
	if (dup_str(L, r, "api", REQ, &e->api) < 0)
		return -1;
	int rc;
	const cJSON *c = get_obj(L, r, "cache", REQ, &rc);
	if (!c)
		return -1;
	snprintf(L->path, sizeof L->path, "cache.");
	int pol = 0;
	double hc = 0, hr = 0, sr = 0;
	e->slots = 0;
	e->block_tokens = 1;
	e->capacity_fraction = 1;
	if (get_enum(L, c, "policy", REQ, pols, 4, &pol) < 0 || get_int(L, c, "slots", OPT, NONNEG, 4096, &e->slots) < 0 ||
	    get_int(L, c, "block_tokens", OPT, POS, 1 << 20, &e->block_tokens) < 0 ||
	    get_num(L, c, "capacity_fraction", OPT, POS, 1, &e->capacity_fraction) < 0 ||
	    get_num(L, c, "host_cache_gib", OPT, NONNEG, 1e6, &hc) < 0 ||
	    get_num(L, c, "host_restore_gbs", OPT, NONNEG, 1e6, &hr) < 0 ||
	    get_bool(L, c, "ssd_cache", OPT, &e->ssd_cache) < 0 || get_num(L, c, "ssd_read_gbs", OPT, NONNEG, 1e6, &sr) < 0)
		return -1;
	e->policy = (enum sim_policy)pol;
	if ((e->policy == POL_SLOTS) && e->slots < 1)
		return fail(L, c, "slots", "must be at least 1 for policy slots");
	if (e->policy == POL_SINGLE)
		e->slots = 1;
	if (hc > 0 && !(hr > 0))
		return fail(L, c, "host_restore_gbs", "must be positive when host_cache_gib is set");
	if (e->ssd_cache && !(sr > 0))
		return fail(L, c, "ssd_read_gbs", "must be positive when ssd_cache is true");
	e->host_cache = hc * SIM_GIB;
	e->host_restore = hr * 1e9;
	e->ssd_read = sr * 1e9;
	int reuse = e->policy == POL_RADIX ? REUSE_PREFIX : REUSE_SNAPSHOTS;
	e->checkpoints = e->policy == POL_RADIX ? 0 : 8;
	if (get_enum(L, c, "state_reuse", OPT, reuses, 3, &reuse) < 0 ||
	    get_int(L, c, "checkpoints", OPT, NONNEG, 1024, &e->checkpoints) < 0)
		return -1;
	e->state_reuse = (enum sim_state_reuse)reuse;
	L->path[0] = 0;
	int alloc = 0, ovf = 0;
	e->memory_fraction = 1;
	e->kv_step = 1;
	e->pool_fits_context = true;
	double ro = 0;
	if (get_enum(L, r, "kv_alloc", REQ, allocs, 3, &alloc) < 0 ||
	    get_num(L, r, "memory_fraction", OPT, POS, 1, &e->memory_fraction) < 0 ||
	    get_num(L, r, "runtime_overhead_gib", REQ, NONNEG, 1e4, &ro) < 0 ||
	    get_int(L, r, "default_context", REQ, NONNEG, 1LL << 40, &e->default_context) < 0 ||
	    get_enum(L, r, "context_overflow", REQ, ovfs, 3, &ovf) < 0 ||
	    get_bool(L, r, "context_fit", OPT, &e->context_fit) < 0 ||
	    get_bool(L, r, "pool_fits_context", OPT, &e->pool_fits_context) < 0 ||
	    get_int(L, r, "kv_step_tokens", OPT, POS, 1 << 20, &e->kv_step) < 0)
		return -1;
	e->alloc = (enum sim_alloc)alloc;
	e->overflow = (enum sim_overflow)ovf;
	e->runtime_overhead = ro * SIM_GIB;
	const cJSON *tiers = cJSON_GetObjectItemCaseSensitive(r, "default_context_by_memory");
	if (tiers && !cJSON_IsNull(tiers)) {
		char b[96];
		if (!cJSON_IsArray(tiers))
			return fail(L, tiers, "default_context_by_memory", "expected a list, got %s", describe(tiers, b, sizeof b));
		size_t n = (size_t)cJSON_GetArraySize(tiers);
		if (!(e->tiers = calloc(n ? n : 1, sizeof *e->tiers)))
			return ar_err_set(L->err, AR_ENOMEM, "out of memory");
		size_t k = 0;
		for (const cJSON *t = tiers->child; t; t = t->next, k++) {
			snprintf(L->path, sizeof L->path, "default_context_by_memory[%zu].", k);
			if (!cJSON_IsObject(t))
				return fail(L, t, "", "expected a mapping, got %s", describe(t, b, sizeof b));
			double mg;
			if (get_num(L, t, "min_gib", REQ, NONNEG, 1e6, &mg) < 0 ||
			    get_int(L, t, "context", REQ, POS, 1LL << 40, &e->tiers[k].context) < 0)
				return -1;
			e->tiers[k].min_mem = mg * SIM_GIB;
		}
		e->n_tiers = n;
		L->path[0] = 0;
	}
	if (load_failures(L, r, e) < 0)
		return -1;
	const cJSON *ef = get_obj(L, r, "efficiency", REQ, &rc);
	if (!ef)
		return -1;
	snprintf(L->path, sizeof L->path, "efficiency.");
	if (load_by_class(L, ef, "prefill_compute", e->eff_prefill) < 0 ||
	    load_by_class(L, ef, "decode_bandwidth", e->eff_decode) < 0)
		return -1;
	e->eff_attention = e->eff_prefill[CLS_DENSE];
	e->eff_decode_attention = -1;
	double lo = 0;
	if (get_num(L, ef, "attention_compute", OPT, POS, 1, &e->eff_attention) < 0 ||
	    get_num(L, ef, "decode_attention", OPT, POS, 1, &e->eff_decode_attention) < 0 ||
	    get_num(L, ef, "layer_overhead_us", OPT, NONNEG, 1e6, &lo) < 0)
		return -1;
	e->layer_overhead = lo / 1e6;
	if (e->eff_decode_attention < 0)
		e->eff_decode_attention = e->eff_attention;
	L->path[0] = 0;
	double rq = 0, rpt = 0;
	e->prefill_chunk = 512;
	if (get_num(L, r, "request_overhead_ms", REQ, NONNEG, 1e6, &rq) < 0 ||
	    get_num(L, r, "request_us_per_token", OPT, NONNEG, 1e6, &rpt) < 0 ||
	    get_int(L, r, "prefill_chunk_tokens", OPT, POS, 1 << 24, &e->prefill_chunk) < 0)
		return -1;
	e->request_overhead = rq / 1e3;
	e->request_per_token = rpt / 1e6;
	return 0;
}

/* ---- files ------------------------------------------------------------- */

static bool is_path(const char *s)
{
	size_t n = strlen(s);
	return strchr(s, '/') || (n > 5 && !strcmp(s + n - 5, ".yaml")) || (n > 4 && !strcmp(s + n - 4, ".yml")) ||
	       (n > 5 && !strcmp(s + n - 5, ".json"));
}

static bool valid_id(const char *s)
{
	if (!*s || strlen(s) > 90)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-+", *s))
			return false;
	return true;
}

static bool file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* All ids of kind k on the search path, sorted, unique; malloc'ed. */
static int collect_ids(const struct sim_catalog *c, enum sim_kind k, char ***out, size_t *n)
{
	char **ids = NULL;
	size_t cnt = 0, cap = 0;
	for (size_t d = 0; d < c->n_dirs; d++) {
		char dir[4096];
		snprintf(dir, sizeof dir, "%s/%s", c->dirs[d], kind_dirs[k]);
		DIR *dp = opendir(dir);
		if (!dp)
			continue;
		struct dirent *de;
		while ((de = readdir(dp))) {
			const char *nm = de->d_name;
			size_t ln = strlen(nm);
			size_t stem = ln > 5 && !strcmp(nm + ln - 5, ".yaml")   ? ln - 5
				      : ln > 4 && !strcmp(nm + ln - 4, ".yml")  ? ln - 4
				      : ln > 5 && !strcmp(nm + ln - 5, ".json") ? ln - 5
										: 0;
			if (!stem || nm[0] == '.')
				continue;
			if (cnt == cap) {
				cap = cap ? cap * 2 : 32;
				char **ni = realloc(ids, cap * sizeof *ni);
				if (!ni)
					goto oom;
				ids = ni;
			}
			if (!(ids[cnt] = strndup(nm, stem)))
				goto oom;
			cnt++;
		}
		closedir(dp);
		continue;
	oom:
		closedir(dp);
		for (size_t i = 0; i < cnt; i++)
			free(ids[i]);
		free(ids);
		return -1;
	}
	if (cnt)
		qsort(ids, cnt, sizeof *ids, cmp_str);
	size_t u = 0;
	for (size_t i = 0; i < cnt; i++) {
		if (u && !strcmp(ids[u - 1], ids[i])) {
			free(ids[i]);
			continue;
		}
		ids[u++] = ids[i];
	}
	*out = ids;
	*n = u;
	return 0;
}

static int unknown_id(const struct sim_catalog *c, enum sim_kind k, const char *id, struct ar_err *err)
{
	char **ids = NULL;
	size_t n = 0;
	if (collect_ids(c, k, &ids, &n) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	char list[AR_ERR_MSG_MAX] = "";
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", ids[i]);
		if (w > 0 && (size_t)w < sizeof list - used)
			used += (size_t)w;
		free(ids[i]);
	}
	free(ids);
	if (!n)
		return ar_err_set(err, AR_EINVAL, "unknown %s '%s' (no %s profiles found on the search path)",
				  kind_nouns[k], id, kind_dirs[k]);
	return ar_err_set(err, AR_EINVAL, "unknown %s '%s' (known: %s)", kind_nouns[k], id, list);
}

static int load_file(enum sim_kind k, const char *path, const char *want_id, void **out, struct ar_err *err)
{
	struct config_doc *d = NULL;
	void *p = NULL;
	int rc = -1;
	*out = NULL;
	if (config_load(&d, path, err) < 0)
		goto out;
	const cJSON *r = config_root(d);
	struct ld L = {.d = d, .err = err};
	if (!cJSON_IsObject(r)) {
		ar_err_set(err, AR_EFORMAT, "%s: a profile must be a mapping of fields", path);
		goto out;
	}
	static const size_t sizes[SIM_NKINDS] = {sizeof(struct sim_hw), sizeof(struct sim_model),
						 sizeof(struct sim_quant), sizeof(struct sim_kv),
						 sizeof(struct sim_engine)};
	if (!(p = calloc(1, sizes[k]))) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	char **ppath = NULL;
	switch (k) {
	case SIM_HW:
		rc = load_hw(&L, r, want_id, p);
		ppath = &((struct sim_hw *)p)->path;
		break;
	case SIM_MODEL:
		rc = load_model(&L, r, want_id, p);
		ppath = &((struct sim_model *)p)->path;
		break;
	case SIM_QUANT:
		rc = load_quant(&L, r, want_id, p);
		ppath = &((struct sim_quant *)p)->path;
		break;
	case SIM_KV:
		rc = load_kv(&L, r, want_id, p);
		ppath = &((struct sim_kv *)p)->path;
		break;
	case SIM_ENGINE:
		rc = load_engine(&L, r, want_id, p);
		ppath = &((struct sim_engine *)p)->path;
		break;
	default: rc = ar_err_set(err, AR_EINTERNAL, "bad profile kind");
	}
	if (rc == 0 && !(*ppath = strdup(path)))
		rc = ar_err_set(err, AR_ENOMEM, "out of memory");
	if (rc == 0) {
		*out = p;
		p = NULL;
	}
out:
	prof_free(k, p);
	config_free(d);
	return rc;
}

int sim_catalog_get(struct sim_catalog *c, enum sim_kind k, const char *id, const void **out, struct ar_err *err)
{
	*out = NULL;
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].kind == k && !strcmp(c->e[i].key, id)) {
			*out = c->e[i].prof;
			return 0;
		}
	char path[4096] = "";
	const char *want = NULL;
	if (is_path(id)) {
		snprintf(path, sizeof path, "%s", id);
		if (!file_exists(path))
			return ar_err_set(err, AR_EIO, "cannot open %s profile '%s': no such file", kind_nouns[k], id);
	} else {
		if (!valid_id(id))
			return unknown_id(c, k, id, err);
		static const char *const exts[] = {".yaml", ".yml", ".json"};
		for (size_t d = 0; d < c->n_dirs && !*path; d++)
			for (int x = 0; x < 3 && !*path; x++) {
				snprintf(path, sizeof path, "%s/%s/%s%s", c->dirs[d], kind_dirs[k], id, exts[x]);
				if (!file_exists(path))
					path[0] = 0;
			}
		if (!*path)
			return unknown_id(c, k, id, err);
		want = id;
	}
	void *p = NULL;
	if (load_file(k, path, want, &p, err) < 0)
		return -1;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct entry *ne = realloc(c->e, cap * sizeof *ne);
		if (!ne) {
			prof_free(k, p);
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
		c->e = ne;
		c->cap = cap;
	}
	struct entry *e = &c->e[c->n];
	e->kind = k;
	e->prof = p;
	e->key = strdup(id);
	e->path = strdup(path);
	if (!e->key || !e->path) {
		free(e->key);
		free(e->path);
		prof_free(k, p);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	c->n++;
	*out = p;
	return 0;
}

int sim_catalog_check(struct sim_catalog *c, enum sim_kind k, const char *id, struct ar_err *err)
{
	const void *p;
	return sim_catalog_get(c, k, id, &p, err);
}

const char *sim_policy_name(enum sim_policy p)
{
	static const char *const n[] = {"none", "single slot", "slots", "radix (LRU)"};
	return p <= POL_RADIX ? n[p] : "?";
}

static void summarize(enum sim_kind k, const void *p, struct sim_profile_info *in)
{
	char *s = in->summary;
	size_t n = sizeof in->summary;
	switch (k) {
	case SIM_HW: {
		const struct sim_hw *h = p;
		snprintf(s, n, "%.0f GiB (%.0f%% usable), %.0f GB/s, %.1f TFLOP/s fp16", h->memory / SIM_GIB,
			 h->usable_fraction * 100, h->bandwidth / 1e9, h->flops[PREC_FP16] / 1e12);
		in->name = h->name;
		in->estimated = h->estimated;
		break;
	}
	case SIM_MODEL: {
		const struct sim_model *m = p;
		double kvt = 2.0 * (double)(m->kv_layers * m->kv_heads * m->head_dim) * 2;
		if (m->experts)
			snprintf(s, n, "%s, %.1fB total / %.1fB active, %lld layers, %.0f KiB KV/token (f16), ctx %lldk",
				 class_names[m->kind], m->params_total / 1e9, m->params_active / 1e9, (long long)m->layers,
				 kvt / 1024, (long long)(m->max_context / 1024));
		else
			snprintf(s, n, "%s, %.2fB params, %lld layers, %.0f KiB KV/token (f16), ctx %lldk",
				 class_names[m->kind], m->params_total / 1e9, (long long)m->layers, kvt / 1024,
				 (long long)(m->max_context / 1024));
		in->name = m->name;
		in->estimated = m->estimated;
		break;
	}
	case SIM_QUANT: {
		const struct sim_quant *q = p;
		snprintf(s, n, "%.3g bits/weight, computes at %s", q->bits, prec_names[q->prec]);
		in->name = q->name;
		in->estimated = q->estimated;
		break;
	}
	case SIM_KV: {
		const struct sim_kv *v = p;
		snprintf(s, n, "%.4g bits/element", v->bits);
		in->name = v->name;
		in->estimated = v->estimated;
		break;
	}
	case SIM_ENGINE: {
		const struct sim_engine *e = p;
		static const char *const allocs[] = {"KV up front", "KV grows", "paged KV pool"};
		char pol[64];
		if (e->policy == POL_SLOTS)
			snprintf(pol, sizeof pol, "%lld slots", (long long)e->slots);
		else
			snprintf(pol, sizeof pol, "%s", sim_policy_name(e->policy));
		snprintf(s, n, "prefix cache: %s%s%s, %s", pol, e->host_cache > 0 ? " + host RAM tier" : "",
			 e->ssd_cache ? " + SSD tier" : "", allocs[e->alloc]);
		in->name = e->name;
		in->estimated = e->estimated;
		break;
	}
	default: break;
	}
}

int sim_catalog_list(struct sim_catalog *c, enum sim_kind k, const struct sim_profile_info **out, struct ar_err *err)
{
	*out = NULL;
	char **ids = NULL;
	size_t n = 0;
	if (collect_ids(c, k, &ids, &n) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	free(c->info[k]);
	c->info[k] = calloc(n ? n : 1, sizeof *c->info[k]);
	c->n_info[k] = 0;
	int rc = 0;
	if (!c->info[k])
		rc = ar_err_set(err, AR_ENOMEM, "out of memory");
	for (size_t i = 0; i < n && !rc; i++) {
		const void *p;
		if (sim_catalog_get(c, k, ids[i], &p, err) < 0) {
			rc = -1;
			break;
		}
		struct sim_profile_info *in = &c->info[k][c->n_info[k]++];
		snprintf(in->id, sizeof in->id, "%s", ids[i]);
		for (size_t j = 0; j < c->n; j++)
			if (c->e[j].prof == p)
				in->path = c->e[j].path;
		summarize(k, p, in);
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	if (rc < 0)
		return -1;
	*out = c->info[k];
	return (int)c->n_info[k];
}
