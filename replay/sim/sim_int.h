/* sim_int: the simulator's internal types, shared by its files only.
 *
 * Profiles (sim_profile.c) are loaded into the structs below with every
 * quantity in base SI units (bytes, bytes/s, FLOP/s, seconds, tokens), so
 * the model (sim_model.c) never converts. The prefix cache (sim_cache.c)
 * keeps sequences of chained block hashes.
 */
#ifndef AR_SIM_INT_H
#define AR_SIM_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "sim.h"

#define SIM_GIB 1073741824.0

enum sim_prec { PREC_FP16, PREC_BF16, PREC_INT8, PREC_FP8, PREC_FP4, PREC_N };
enum sim_class { CLS_DENSE, CLS_MOE, CLS_HYBRID, CLS_N };

struct sim_hw {
	char *id, *name, *source, *path;
	bool estimated;
	char kind[16]; /* cpu, gpu, apple */
	double memory;  /* bytes */
	double usable_fraction;
	double system_fraction; /* share of RAM processes may use in all (unified memory) */
	bool unified;
	double bandwidth;      /* bytes/s */
	double flops[PREC_N];  /* FLOP/s, 0 = not listed */
	double flops_eff[PREC_N]; /* share of that peak kernels reach (default 1) */
	double attention_flops; /* 0 = the fp16 rate */
	double decode_attention_flops; /* one query against the cache; 0 = attention_flops */
	double request_overhead; /* s */
	double layer_overhead;   /* s; < 0 = the engine's */
	double driver_overhead;  /* bytes (CUDA context) */
	double host_memory;      /* bytes of host RAM for a discrete GPU's host tier; 0 = unchecked */
};

struct sim_model {
	char *id, *name, *source, *path;
	bool estimated;
	enum sim_class kind; /* as declared */
	double params_total, params_active, params_embedding;
	int64_t layers, hidden, heads, kv_heads, head_dim, kv_layers, swa_layers, window, swa_kv_heads,
		swa_head_dim, linear_layers, experts, experts_active, vocab, max_context;
	double linear_state_bytes;
};

struct sim_quant {
	char *id, *name, *source, *path;
	bool estimated;
	double bits;
	enum sim_prec prec;
	double dequant_overhead;
};

struct sim_kv {
	char *id, *name, *source, *path;
	bool estimated;
	double bits;
	double prefill_overhead, decode_overhead;
};

enum sim_policy { POL_NONE, POL_SINGLE, POL_SLOTS, POL_RADIX };
enum sim_alloc { ALLOC_UPFRONT, ALLOC_DYNAMIC, ALLOC_PAGED };
enum sim_overflow { OVF_ERROR, OVF_TRUNCATE, OVF_NONE };
/* How a cached prefix of a model with non-trimmable state (linear
 * attention, sliding window) is reused. */
enum sim_state_reuse { REUSE_PREFIX, REUSE_SNAPSHOTS, REUSE_EXACT };
enum sim_fail_mode { FAIL_HTTP, FAIL_EXIT, FAIL_STREAM };

struct sim_failure_entry {
	char *name;
	enum sim_fail_mode mode;
	int status;
	char *body, *log;
	int exit_code;
};

struct sim_ctx_tier {
	double min_mem; /* bytes */
	int64_t context;
};

struct sim_engine {
	char *id, *name, *source, *path, *api;
	bool estimated;
	enum sim_policy policy;
	int64_t slots, block_tokens, checkpoints;
	double capacity_fraction;
	double host_cache;   /* bytes */
	double host_restore; /* bytes/s */
	bool ssd_cache;
	double ssd_read; /* bytes/s */
	enum sim_state_reuse state_reuse;
	enum sim_alloc alloc;
	double memory_fraction;
	double runtime_overhead; /* bytes */
	int64_t default_context;
	struct sim_ctx_tier *tiers;
	size_t n_tiers;
	enum sim_overflow overflow;
	bool context_fit;
	bool pool_fits_context; /* paged: refuse to start unless the pool holds one full-context request */
	int64_t kv_step; /* dynamic caches grow in steps of this many tokens */
	struct sim_failure_entry *failures;
	size_t n_failures;
	double eff_prefill[CLS_N], eff_decode[CLS_N], eff_attention, eff_decode_attention;
	double layer_overhead;   /* s */
	double request_overhead; /* s */
	double request_per_token; /* s */
	int64_t prefill_chunk;
};

struct sim_catalog;
/* Loads (cached) the profile id_or_path of kind k; the struct belongs to
 * the catalog. */
int sim_catalog_get(struct sim_catalog *c, enum sim_kind k, const char *id, const void **out, struct ar_err *err);
const char *sim_prec_name(enum sim_prec p);
const char *sim_class_name(enum sim_class c);
const char *sim_policy_name(enum sim_policy p);

/* ---- prefix cache (sim_cache.c) ------------------------------------------ */

struct sim_cache;

struct sim_cache_cfg {
	enum sim_policy policy;
	int64_t slots;
	int64_t engine_block; /* tokens: reuse rounds down to it */
	enum sim_state_reuse reuse; /* only when the model has non-trimmable state */
	bool stateful;
	int64_t checkpoints;
	int64_t capacity_tokens; /* device tier: total tokens of all cached sequences; 0 = unbounded */
	int64_t host_bytes;      /* host RAM tier capacity, 0 = none */
	bool ssd;
	/* bytes of one cached sequence of n tokens (KV + state) */
	int64_t (*seq_bytes)(const void *ctx, int64_t n);
	const void *ctx;
};

/* What the cache offers a prompt. */
struct sim_lookup {
	int64_t reuse;       /* tokens usable from the cache (before the last-token rule) */
	int64_t restored;    /* of those, tokens restored from the host or SSD tier */
	int64_t restore_bytes_host, restore_bytes_ssd;
	int64_t save_bytes;  /* bytes saved to the host tier before the request starts */
	int64_t evict_tokens; /* device-tier tokens dropped to make room */
	int slot;            /* slot taken (slots policy) */
	size_t keep_blocks;  /* leading blocks the slot (or tree) already holds */
	size_t match_mem;    /* radix: blocks present in device memory */
	int host_entry;      /* host entry restored from, -1 none */
};

int sim_cache_new(struct sim_cache **out, const struct sim_cache_cfg *cfg);
void sim_cache_free(struct sim_cache *c);
void sim_cache_clear(struct sim_cache *c);
/* Decides reuse for prompt p that will grow to `need` tokens (prompt +
 * output) without changing anything. */
void sim_cache_lookup(const struct sim_cache *c, const struct sim_prompt *p, int64_t need, struct sim_lookup *l);
/* Applies a lookup: host saves/restores, evictions, then records the
 * sequence (prompt blocks plus up to `cont_tokens` of the continuation). */
int sim_cache_commit(struct sim_cache *c, const struct sim_prompt *p, const struct sim_lookup *l,
		     int64_t cont_tokens);
/* Device-tier tokens held by cached sequences (dynamic memory), host bytes. */
int64_t sim_cache_device_tokens(const struct sim_cache *c);
int64_t sim_cache_device_seqs(const struct sim_cache *c);
int64_t sim_cache_device_bytes(const struct sim_cache *c);
int64_t sim_cache_host_bytes(const struct sim_cache *c);
/* Per-slot state for /slots: tokens cached in slot i (slots policy), -1 past the end. */
int64_t sim_cache_slot_tokens(const struct sim_cache *c, int i);

/* ---- the simulator ---------------------------------------------------------- */

struct sim {
	struct sim_catalog *cat;
	bool own_cat;
	const struct sim_hw *hw;
	const struct sim_model *m;
	const struct sim_quant *q;
	const struct sim_kv *kv;
	const struct sim_engine *e;
	char ids[SIM_NKINDS][200];
	int64_t n_ctx;
	bool ctx_explicit, ctx_fitted;
	int64_t slots;
	enum sim_class cls;
	bool stateful; /* state that cannot be rolled back (linear attention, sliding window) */

	/* derived (sim_model.c): bytes, FLOP, FLOP/s, bytes/s, seconds */
	double w_mem;        /* weights in memory */
	double w_dense;      /* weights read by every forward pass (no experts, no lookups) */
	double w_expert;     /* one expert, all layers */
	double w_decode;     /* weights read per decode token */
	double f_body;       /* linear FLOPs per prompt token (no output head) */
	double f_head;       /* FLOPs of the output head for one token */
	double f_att, f_swa; /* attention FLOPs per (query, key) pair, all full / sliding layers */
	double kv_tok, swa_tok, state;
	double c_lin, c_att, c_attd, bw;
	double e_pf, e_att, e_attd, e_bw;
	double t_layer; /* per layer per forward pass */
	double overhead_bytes;
	double kv_alloc;     /* up-front KV / paged pool bytes */
	double static_bytes; /* weights + overhead + kv_alloc */
	double budget;       /* device memory usable */
	double sys_budget;   /* device + host (unified memory), 0 = unchecked */
	double host_budget;  /* host tier limit on discrete GPUs, 0 = unchecked */
	int64_t pool_tokens; /* paged / unified pool capacity in tokens, 0 = none */

	struct sim_cache *cache;
	bool dead, load_failed, load_reported;
	struct sim_result load_fail;
	struct buf body, log, evidence, desc, desc_json, lf_body, lf_log, lf_evidence;
	char failure_name[64], lf_failure_name[64];
	struct sim_counters ctr;
	long pid;
	int port;
	int64_t task_id;
	int64_t mem_now;
};

/* sim_model.c */
void sim_model_derive(struct sim *s);
double sim_attn_flops(const struct sim *s, int64_t m, int64_t d);
double sim_weights_touched(const struct sim *s, int64_t m);
/* Fills a template: {placeholders} from vals (NULL-terminated name/value pairs). */
int sim_fill(struct buf *out, const char *tmpl, const char *const *vals);

/* ---- prompt hashing (sim_prompt.c) ---------------------------------------- */

uint64_t sim_hash_bytes(const void *p, size_t n, uint64_t seed);
static inline uint64_t sim_mix(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)(a ^ 0x2d358dccaa6c78a5ULL) * (b ^ 0x8bb84b93962eacc9ULL);
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Longest common prefix of two prompts' block chains, in blocks
 * (binary search: hashes are chained). */
/* d := the system/tools blocks of p followed by p's blocks from `first` on
 * (re-chained: they now follow a different prefix). */
int sim_prompt_build_truncated(struct sim_prompt *d, const struct sim_prompt *p, size_t first);
size_t sim_prompt_lcp(const uint64_t *a, size_t na, const uint64_t *b, size_t nb);

#endif
