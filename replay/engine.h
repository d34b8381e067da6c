/* engine: turn-by-turn replay of traces against one backend configuration.
 *
 * Protocol (DESIGN.md sections 4 and 9): validate every trace first (nothing
 * is sent for a trace with problems); check the backend answers; send
 * `warmup` requests (not stored); then `repeats` full replays, each with its
 * own nonce at the very start of the prompt so no repeat inherits another's
 * cache. The warm pass is the natural replay (each turn's prefix was cached
 * by the previous turn); after a session's warm pass, the cold pass re-sends
 * the selected turns' full prompts with fresh nonces (--cold tiers: the
 * first turn and the turns that first cross 32k/64k/128k; deepest: the first
 * turn and the session's deepest one; every; none), so it
 * never disturbs the warm pass's cache.
 *
 * Concurrency (concurrency > 1, or a pace or an arrival other than "all"):
 * every (session, repeat) of the traces is one replay instance with its own
 * history and nonce; up to `concurrency` instances are in flight at once on
 * one event loop, each turn by turn (warm pass, then its cold pass), started
 * by `arrival` and paced by `pace` x the trace's `t`. When the traces hold
 * fewer instances than `concurrency`, each session is replayed more times
 * (repeat = copy index, each with its own nonce) and a note says so. Rows
 * carry sent_ns and in_flight; /metrics deltas are not used (they would mix
 * sessions). Subagent sessions are replayed as independent sessions.
 *
 * Every finished request is measured (section 4), classified (section 5),
 * committed to the store before the next one of its session starts (rows of
 * concurrent sessions that finish together share one transaction), and
 * handed to the observer. replay/ never formats human text: the CLI renders what the
 * observer receives.
 */
#ifndef AR_ENGINE_H
#define AR_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "arrival.h"
#include "clock.h"
#include "err.h"
#include "store.h"
#include "trace_io.h"

enum cold_mode { COLD_TIERS, COLD_EVERY, COLD_DEEPEST, COLD_NONE };

struct engine_cfg {
	const char *backend; /* sim, or an adapter name: openai, llama-server, ollama, anthropic */
	const char *url;     /* base URL, e.g. http://127.0.0.1:8080 (not for sim) */
	const char *sim_spec; /* sim: key=value profile spec, NULL for the default */
	const char *model;
	const char *const *traces;
	size_t n_traces;
	int repeats;
	int warmup;
	enum cold_mode cold;
	bool history_generated;
	bool until_fail;
	double slo_ttft_ms;    /* 0 = none */
	double slo_decode_tps; /* 0 = none */
	ar_ns ttft_timeout;
	ar_ns stall_timeout;
	bool plain;      /* no ignore_eos/min_tokens */
	bool token_ids;  /* llama-server: send token ids, tokenized before the clock starts */
	int max_tokens_field; /* openai: 0 max_tokens, 1 max_completion_tokens, 2 both */
	bool cold_erase;      /* llama-server: also erase every slot before each cold request */
	int64_t num_ctx; /* ollama */
	const char *rules_dir;
	const char *extra_json; /* members merged into every request body: a JSON object's inside, e.g. "\"grammar\":\"...\"" */
	struct trace_reader_opts ropts;
	volatile sig_atomic_t *stop; /* set by a signal handler: finish the row in flight, then stop */
	/* concurrency (zero-initialised = one session at a time, no pacing) */
	int concurrency;        /* sessions in flight at most; 0 or 1 = one */
	struct arrival arrival; /* when sessions start */
	double pace;            /* x the trace's recorded gaps `t`; 0 = send at once; < 0 = default (1 under
				 * arrival trace, else 0) */
	uint64_t seed;          /* Poisson arrivals */
	/* Managed servers (sweep, replay/sweep.c): called for every request that
	 * is not ok, after classification and before the row is stored and the
	 * failure point taken from it. It may replace row->outcome and
	 * row->evidence (strings it owns, valid until its next call), e.g. `crash`
	 * with the server's exit status, `oom` from the server's log. NULL: none. */
	void (*on_failure)(void *ud, struct store_request *row);
	void *on_failure_ud;
	/* memory (memsamp.h): the server's PID (<= 0: none, nothing sampled;
	 * the in-process sim reports modelled memory instead), the sampling
	 * interval in seconds (0 = off) and the budget the OOM projection uses
	 * (0 = auto: host memory available at the start, or the GPU's total) */
	int64_t server_pid;
	double mem_interval_s;
	int64_t mem_budget;
};

/* One measured request, as stored. */
struct engine_request {
	struct store_request row;
	int64_t session_turns; /* turns in this request's session */
	const char *trace;     /* file */
};

struct engine_progress {
	int repeat, repeats;
	const char *session;
	int64_t turn, turns;
	int64_t context_tokens;
	const char *cache;
	bool warmup;
};

struct engine_obs {
	void *ud;
	void (*on_request)(void *ud, const struct engine_request *r);
	void (*on_progress)(void *ud, const struct engine_progress *p);
	void (*on_note)(void *ud, const char *msg); /* warnings for the user */
};

struct engine_failure {
	bool found;
	char session[128];
	int64_t turn;
	int64_t context_tokens;
	char cls[24];
	char evidence[600];
	int64_t mem_bytes; /* -1 when unknown */
};

/* The fitted memory model (memfit.h), when the server's memory was sampled. */
struct engine_mem {
	bool sampled;          /* a sampler ran */
	bool fitted;           /* enough points at distinct depths for a line */
	char source[16];       /* "rss", "host_drop" or "gpu" */
	double baseline_bytes;
	double bytes_per_token;
	double r2;             /* NaN when unknown */
	int64_t budget_bytes;  /* -1 unknown */
	int64_t oom_tokens;    /* projected depth where memory crosses the budget; -1 none */
	int64_t oom_turn;      /* projected turn; -1 none */
	int64_t points, turns; /* requests in the fit; distinct turns */
	int64_t samples;       /* timeline samples stored */
	char gpu_mode[16];     /* "nvml", "nvidia-smi", "none" */
};

struct engine_summary {
	int64_t requests;
	int64_t failed; /* requests whose outcome is not ok */
	bool interrupted;
	struct engine_failure failure;
	struct engine_mem mem;
};

/* Runs the configuration. Returns 0 when the replay ran (whatever the
 * backend did: failures are results), -1 with err set otherwise:
 * AR_EFORMAT for a trace with problems (nothing sent), AR_ENET when the
 * backend cannot be reached, AR_EBACKEND when it answers but not as the API
 * should (wrong endpoint, HTML), AR_EIO for the store. */
int engine_run(const struct engine_cfg *cfg, struct store *st, int64_t run_id, int64_t config_id,
	       const struct engine_obs *obs, struct engine_summary *sum, struct ar_err *err);

#endif
