/* sim: the simulated inference backend (DESIGN.md section 8).
 *
 * A performance model of one inference server configuration — hardware,
 * model, weight quantization, KV-cache type, engine (the profiles under
 * replay/sim/profiles/) and a context size — answering, per request and in
 * virtual time (nothing sleeps): how many prompt tokens were served from the
 * prefix cache, the TTFT given that cache state and as if nothing were
 * cached, prefill and decode rates, server memory after the request and at
 * its peak, and whether it failed the way the engine fails (context
 * overflow, out of memory at load or at run time, a dead process).
 *
 * The model in brief (replay/sim/README.md has the full equations):
 *   memory   = weights + KV/state of the live sequences (or the whole
 *              context when the engine allocates it up front, or a paged
 *              pool) + runtime overhead + host prompt-cache tier;
 *              over the usable budget -> oom (at load: turn 0)
 *   prefill  = per chunk max(compute, memory) where compute = linear FLOPs
 *              of the uncached tokens at the quant's precision + attention
 *              FLOPs growing with the context, memory = weights touched +
 *              KV read; plus per-layer and per-request overheads
 *   decode   = per token max(compute, (active weights + KV at depth) /
 *              bandwidth) + per-layer overhead
 *   reuse    = the engine's cache policy (none, single, slots, radix with
 *              LRU, host RAM and SSD tiers) applied to the materialised
 *              prompt hashed in blocks, so nonces, compaction and rewrites
 *              miss exactly where a server's prefix match would.
 *
 * Spec strings ("sim:SPEC" without the "sim:"): comma-separated key=value
 * pairs, keys model, quant, hw (or hardware), engine, kv, ctx (context size,
 * "32k"), slots (parallel sequences). A value is a profile id or a path to a
 * profile file (anything with a '/' or ending in .yaml/.yml/.json). A bare
 * word without '=' is looked up in every kind. Omitted keys take
 * SIM_DEFAULT_SPEC; ctx defaults to the engine's default context.
 *
 * Thread safety: a struct sim is used by one thread at a time; a catalog may
 * be shared only under the caller's lock.
 * Ownership: every *_new has its *_free (NULL is a no-op); strings returned
 * by a sim stay valid until the next call on it or its free.
 */
#ifndef AR_SIM_H
#define AR_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "convo.h"
#include "err.h"
#include "trace.h"

/* The default configuration: a realistic local setup (a 64 GB Apple laptop
 * running llama.cpp's llama-server with a 4-bit MoE coding model and its
 * full 256k context). */
#define SIM_DEFAULT_MODEL "qwen3.6-35b-a3b"
#define SIM_DEFAULT_QUANT "q4_k_m"
#define SIM_DEFAULT_HW "m3-max-64g"
#define SIM_DEFAULT_ENGINE "llama-server"
#define SIM_DEFAULT_KV "f16"
#define SIM_DEFAULT_SPEC                                                                                   \
	"model=" SIM_DEFAULT_MODEL ",quant=" SIM_DEFAULT_QUANT ",hw=" SIM_DEFAULT_HW ",engine=" SIM_DEFAULT_ENGINE \
	",kv=" SIM_DEFAULT_KV

/* Tokens per prompt hash block. Blocks never straddle messages. */
#define SIM_BLOCK_TOKENS 64

/* ---- profiles ----------------------------------------------------------- */

enum sim_kind { SIM_HW, SIM_MODEL, SIM_QUANT, SIM_KV, SIM_ENGINE, SIM_NKINDS };

/* "hardware", "models", "quant", "kv", "engines" (the folder names) and the
 * spec keys "hw", "model", "quant", "kv", "engine". */
const char *sim_kind_dir(enum sim_kind k);
const char *sim_kind_key(enum sim_kind k);

/* A catalog loads and caches profiles from a search path: the directories
 * of $AGENTREPLAY_SIM_PROFILES (colon-separated), then
 * $XDG_CONFIG_HOME/agentreplay/profiles (or ~/.config/...), then the profiles
 * shipped with the source (replay/sim/profiles). Each directory holds the
 * kind folders; the first file named <id>.yaml (or .yml/.json) wins. */
struct sim_catalog;

/* dirs: a colon-separated search path replacing the default one, or NULL. */
int sim_catalog_new(struct sim_catalog **out, const char *dirs, struct ar_err *err);
void sim_catalog_free(struct sim_catalog *c);

struct sim_profile_info {
	char id[96];
	const char *path; /* the file it came from (catalog-owned) */
	const char *name;
	char summary[200]; /* one line: key figures */
	bool estimated;
};
/* Every id of kind k on the search path, sorted, each loaded and checked.
 * Returns the count (>= 0) and a catalog-owned array in *out, or -1 with
 * err set for the first profile that does not load. */
int sim_catalog_list(struct sim_catalog *c, enum sim_kind k, const struct sim_profile_info **out,
		     struct ar_err *err);
/* Checks one profile (id or path) loads: 0, or -1 with a FILE:LINE: message
 * or "unknown model 'x' (known: a, b, ...)". */
int sim_catalog_check(struct sim_catalog *c, enum sim_kind k, const char *id, struct ar_err *err);

/* ---- the simulator ------------------------------------------------------ */

struct sim;

/* A materialised prompt hashed in blocks: hash[i] identifies blocks 0..i
 * (a chain), end[i] is the prompt token count at the end of block i.
 * Blocks n..n_total-1 are the continuation: the assistant message this
 * turn's response becomes in the next turn's history, which a server has
 * in its cache after generating it. Owned by the caller: init, then build
 * as often as needed, then free. */
struct sim_prompt {
	uint64_t *hash;
	int64_t *end;
	size_t n;       /* blocks of the prompt */
	size_t n_total; /* blocks including the continuation */
	size_t cap;
	int64_t tokens;       /* prompt tokens (FORMAT.md 8.2 context tokens) */
	int64_t total_tokens; /* including the continuation */
	size_t prefix_blocks; /* blocks of system + tools */
	int64_t prefix_tokens;
	bool ended;           /* sim_prompt_end was called */
	uint64_t pending_salt; /* nonce of a prompt without system text, mixed into the next block */
};

void sim_prompt_init(struct sim_prompt *p);
void sim_prompt_free(struct sim_prompt *p);
/* Builds the prompt of the turn last applied to c (which must keep full
 * messages, not CONVO_COUNT_ONLY): the system prompt with the nonce at its
 * very start (the nonce is hashed, never counted), the tools, and each
 * history message's text; synthetic messages hash by their block ids
 * (filler by its origin), so equal ids share prefixes. -1 with err on
 * allocation failure or a count-only convo. */
int sim_prompt_build(struct sim_prompt *p, const struct tr_session *ses, const struct convo *c, const char *nonce,
		     struct ar_err *err);

/* Incremental building, for prompts that come as text (sim serve). Token
 * counts follow FORMAT.md 8.2 (4 per message + est(content) + calls). */
void sim_prompt_reset(struct sim_prompt *p);
int sim_prompt_add_message(struct sim_prompt *p, const char *role, const char *content, size_t n,
			   const char *tool_call_id, const char *name);
int sim_prompt_add_call(struct sim_prompt *p, const char *name, const char *arguments);
int sim_prompt_add_raw(struct sim_prompt *p, const char *text, size_t n, int64_t tokens); /* tools JSON, raw prompts */
/* Marks the end of the prompt: later additions are the continuation. */
void sim_prompt_end(struct sim_prompt *p);

/* What one request did. Times in milliseconds of modelled server time. */
struct sim_result {
	int64_t prompt_tokens;     /* as the server counts them (after truncation) */
	int64_t cached_tokens;     /* served from the cache (any tier) */
	int64_t restored_tokens;   /* of those, restored from the host RAM or SSD tier */
	int64_t truncated_tokens;  /* dropped by a truncating engine (ollama) */
	int64_t completion_tokens; /* generated (fewer than asked when the context fills) */
	double ttft_ms;            /* given the cache state */
	double ttft_cold_ms;       /* as if nothing were cached */
	double prefill_ms;         /* prefill of the uncached tokens */
	double overhead_ms;        /* request handling, cache save/restore inside the TTFT */
	double prefill_tps;        /* (prompt - cached) / ttft */
	double decode_tps;         /* (completion - 1) / decode time */
	double itl_ms;             /* mean inter-token gap */
	double itl_p50_ms, itl_p99_ms;
	double decode_ms; /* first to last token */
	double e2e_ms;
	int64_t mem_bytes;      /* server memory after the request */
	int64_t mem_peak_bytes; /* during it */
	int64_t context_tokens; /* the context size in force */
	const char *outcome;    /* ok, ctx_overflow, oom, crash, timeout, http_error, protocol_error, slo */
	const char *finish;     /* "length" or "" on failure */
	int http_status;        /* 200, 4xx/5xx, or 0 when no response (process dead) */
	const char *evidence;   /* one line: body or log excerpt; "" when ok */
	const char *body;       /* the HTTP error body ("" when none); sim-owned */
	const char *log;        /* server log lines of this request ("" when none) */
	bool stream_error;      /* the failure arrives as an SSE error event after status 200 */
	int64_t error_after_tokens; /* tokens streamed before a stream error */
	bool process_exits;     /* the server process dies with this request */
	int exit_code;          /* its exit code when it dies */
	const char *failure;    /* the engine profile's failure entry used ("" when ok) */
};

/* Loads the profiles named by spec through catalog cat (NULL: a private
 * catalog with the default search path) and prepares the model. A config
 * that cannot load on its hardware (weights or up-front KV over the memory
 * budget) is NOT an error here: the sim is created and its first request
 * reports the failure at turn 0 (sim_load_failure tells it up front).
 * Returns 0, or -1 with err: unknown key or id (listing the known ones),
 * bad profile file (FILE:LINE: field: message), bad ctx value. */
int sim_new(struct sim **out, const char *spec, struct ar_err *err);
int sim_new_in(struct sim **out, struct sim_catalog *cat, const char *spec, struct ar_err *err);
void sim_free(struct sim *s);

/* Runs one request: the prompt p, asking for output_tokens (>= 1).
 * Advances the sim's cache and memory state. Returns 0 with out filled
 * (out->outcome says whether the request succeeded), or -1 with err for a
 * bad argument. */
int sim_request(struct sim *s, const struct sim_prompt *p, int64_t output_tokens, struct sim_result *out,
		struct ar_err *err);
/* Like sim_request without changing any state (what would happen now). */
int sim_peek(struct sim *s, const struct sim_prompt *p, int64_t output_tokens, struct sim_result *out,
	     struct ar_err *err);
/* Empties every cache tier (a server's cache-reset endpoint / restart of a
 * live process keeps it alive; a dead process stays dead). */
void sim_reset_cache(struct sim *s);
/* Restarts the modelled server: caches emptied, memory back to load state,
 * a dead process alive again (if it loads at all). */
void sim_restart(struct sim *s);

/* One line describing the resolved configuration, for provenance, e.g.
 * "qwen3.6-35b-a3b q4_k_m kv=f16 on m3-max-64g via llama-server, ctx 262144". */
const char *sim_describe(const struct sim *s);
/* The resolved configuration as a JSON object text: ids, files, context,
 * memory budget and load-time memory, derived figures. Sim-owned. */
const char *sim_describe_json(const struct sim *s);
/* Resolved ids (spec keys), e.g. sim_id(s, SIM_MODEL). */
const char *sim_id(const struct sim *s, enum sim_kind k);
int64_t sim_context(const struct sim *s);
/* Memory now, and the usable budget, in bytes. */
int64_t sim_mem_bytes(const struct sim *s);
int64_t sim_mem_budget(const struct sim *s);
/* Of sim_mem_bytes: what is not weights or fixed overhead (KV allocation,
 * growing sequences, host cache tier). */
int64_t sim_kv_bytes(const struct sim *s);
/* When the config fails at load: the failure result (outcome oom, log
 * lines, exit code). NULL when it loads. */
const struct sim_result *sim_load_failure(const struct sim *s);
/* A process-level failure happened: later requests see a dead server. */
bool sim_dead(const struct sim *s);

/* Placeholders filled into evidence texts: {pid} and {port} (serve). */
void sim_set_process(struct sim *s, long pid, int port);

/* Cumulative counters (llama-server /metrics semantics). */
struct sim_counters {
	int64_t requests, prompt_tokens, cached_tokens, predicted_tokens, decode_calls;
	double prompt_seconds, predicted_seconds;
};
void sim_counters(const struct sim *s, struct sim_counters *out);

/* ---- lower-level model access (serve mode, tests, calibration) ---------- */

/* Prefill time of n tokens starting at depth d (ms), excluding overheads. */
double sim_prefill_ms(const struct sim *s, int64_t n, int64_t d);
/* Time of one decode step for a batch of b sequences whose contexts sum to
 * dsum tokens (ms), including per-layer overhead. b = 1: one sequence. */
double sim_decode_step_ms(const struct sim *s, int64_t b, int64_t dsum);
/* Decode time (ms) of a request that generates g tokens after a prompt of
 * p tokens: the g - 1 steps after the first token (which the prefill makes),
 * and the step times at the middle and near the end (ITL p50, p99). */
double sim_decode_ms(const struct sim *s, int64_t p, int64_t g, double *p50, double *p99);
/* Fixed request overhead for a prompt of n tokens (ms). */
double sim_overhead_ms(const struct sim *s, int64_t n);
/* KV + state bytes of one sequence of n tokens. */
int64_t sim_seq_bytes(const struct sim *s, int64_t n);
/* Bytes of the up-front/pool KV allocation (0 for dynamic engines). */
int64_t sim_kv_alloc_bytes(const struct sim *s);
/* Tokens held by the device tier of the prefix cache, and the pool size in
 * tokens (unified or paged KV; 0 when the engine grows sequences). */
int64_t sim_cached_tokens(const struct sim *s);
int64_t sim_pool_tokens(const struct sim *s);
/* Parallel sequences (slots) the engine serves. */
int sim_slots(const struct sim *s);
/* The engine profile's API family: "llama-server", "openai", "ollama". */
const char *sim_api(const struct sim *s);
/* Fills a failure entry of the engine ("ctx_overflow", "kv_exhausted", ...)
 * into out with placeholders from n_prompt; false when the engine lacks it. */
bool sim_failure(struct sim *s, const char *entry, int64_t n_prompt, struct sim_result *out);

/* Merges spec `over` onto `base`: keys of over replace those of base.
 * Returns a malloc'ed string or NULL on allocation failure. */
char *sim_spec_merge(const char *base, const char *over);

/* ---- runs over traces (sim predict) -------------------------------------- */

/* Called for each modelled request of a trace: the session, turn index and
 * the context tokens of the prompt. Return nonzero to stop. */
typedef int (*sim_run_fn)(void *ctx, size_t sim_index, const struct tr_session *ses, const struct tr_turn *turn,
			  const struct sim_prompt *p, const struct sim_result *r);

struct sim_run_opts {
	const char *nonce;  /* "" when NULL */
	bool until_fail;    /* stop at the first non-ok request (default in predict) */
	size_t max_line;    /* reader line limit, 0 = default */
};
/* Replays every session of a trace file through the sims: one request per
 * turn each, all sims fed the same prompts, sessions one after another in
 * file order (the in-process model has no concurrency, so a subagent runs
 * after its parent's turns rather than beside them). Sims keep their cache
 * across sessions, as a server would. Returns 0, or -1 with err for a trace
 * that does not read (FILE:LINE: field: message). */
int sim_run_trace(struct sim **sims, size_t n_sims, const char *path, const struct sim_run_opts *o,
		  sim_run_fn fn, void *ctx, struct ar_err *err);

/* ---- calibration (sim_calib.c) ------------------------------------------- */

/* One published measurement and the model's prediction of it. */
struct sim_calib_row {
	const char *what;   /* "decode tok/s", "warm TTFT ms", ... */
	const char *config; /* spec */
	const char *prompt; /* "short (23)", "32k", ... */
	double published, predicted, error; /* error = predicted/published - 1 */
};
/* Predicts every point of shared/calibration/README.md with the profiles
 * of catalog cat. Returns the row count and a malloc'ed array (free()),
 * or -1 with err. */
int sim_calib_published(struct sim_catalog *cat, struct sim_calib_row **rows, struct ar_err *err);

/* A measurement of a real llama-server for fitting a hardware profile:
 * prefill of `tokens` tokens starting at `depth` (kind 'p'), or decode of
 * `tokens` tokens after `depth` tokens of context (kind 'd'), in tokens/s. */
struct sim_calib_point {
	char kind; /* 'p' or 'd' */
	int64_t tokens, depth;
	double tps;
	char spec[256]; /* spec keys that differ for this point (another model), "" */
};
/* Parses "pp:512@8192=1890" / "tg:128@0=328", optionally followed by spec
 * overrides for that point: "pp:512@0=2570,model=qwen2-small-random". */
int sim_calib_point_parse(const char *s, struct sim_calib_point *pt, struct ar_err *err);
/* Fits the hardware profile of `spec` (compute rate, attention rate,
 * bandwidth, per-layer overhead) so the model reproduces the points, and
 * writes a complete hardware profile YAML with id `id` to yaml (the fit's
 * errors in its notes). rows (may be NULL) receives the per-point errors
 * after the fit: a malloc'ed array of n rows. */
int sim_calib_fit_hw(struct sim_catalog *cat, const char *spec, const char *id, const struct sim_calib_point *pts,
		     size_t n, struct buf *yaml, struct sim_calib_row **rows, struct ar_err *err);

#endif
