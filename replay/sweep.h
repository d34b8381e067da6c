/* sweep: runs the configs of a sweep plan (src/sweepcfg.h), each against a
 * server it starts and stops itself (replay/lifecycle.h), through the
 * ordinary engine_run().
 *
 * Per config: a free port (or the backend's fixed one, refused when
 * something already listens there), the server started with its log in
 * log_dir, ready (health and/or log pattern), the replay, the server stopped
 * and its port checked free. Events go to the store: started, ready (after N
 * s), start_failed, crashed (status/signal + log tail), probe (bisect), stopped.
 *
 * Failures across the lifecycle: the engine's on_failure hook reclassifies a
 * request that failed while the server died (`crash`, with its exit status
 * and the last log lines) or whose server log shows an OOM rule of
 * replay/rules (`oom`, even when HTTP saw only a reset). A server that never
 * becomes ready gives the config status `start_failed` with a failure point
 * of phase "start", and the sweep moves on.
 *
 * Bisect (measure.bisect): after a failure point, single-request probes of
 * generated prompts (token-only `synthetic` messages, expanded by the core's
 * synth module) between the deepest ok context and the failing one narrow
 * the failing depth to 2048 tokens; a fresh server is started for a probe
 * whenever the last one died. Probes are recorded as events, never as
 * request rows; the result goes into failure_json.bisect.
 *
 * Resume: config rows carry the config key. With resume, a config whose
 * latest row is complete (ok, failed, start_failed) is skipped; a partial
 * one (running, interrupted, error: the sweep was killed or stopped) gets
 * status `superseded`, loses its request rows and memory samples (its events
 * stay, as history) and is run again, so no report counts a request twice.
 * sweep_prepare() refuses a store holding another config file's sweep.
 *
 * Status of a config: ok, failed (a failure point), start_failed,
 * interrupted, error (the replay could not run), superseded.
 */
#ifndef AR_SWEEP_H
#define AR_SWEEP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine.h"
#include "store.h"
#include "sweepcfg.h"

struct sweep_obs {
	void *ud;
	/* what: "skip" (complete in the store), "start", "done"; detail: the
	 * status when done */
	void (*on_config)(void *ud, size_t i, size_t n, const struct sweep_item *it, const char *what,
			  const char *detail);
	/* a lifecycle event as stored (kind, detail) */
	void (*on_event)(void *ud, const struct sweep_item *it, const char *kind, const char *detail);
	const struct engine_obs *engine; /* forwarded to engine_run, may be NULL */
};

struct sweep_opts {
	const struct sweep_plan *plan;
	const char *const *traces; /* resolved trace files (gen: specs already written) */
	size_t ntraces;
	const char *log_dir; /* server logs and probe traces; must exist */
	const char *rules_dir; /* NULL: the shipped rules */
	bool resume;
	int shard_i, shard_n; /* 1-based; n <= 1: all */
	volatile sig_atomic_t *stop;
	const struct sweep_obs *obs;
};

struct sweep_summary {
	size_t selected; /* configs of this shard */
	size_t skipped;  /* complete in the store already */
	size_t ok, failed, start_failed, errors;
	bool interrupted;
};

/* Checks the store against the plan: refuses (AR_EINVAL) a store that holds
 * a sweep of a different config file hash, or results of this sweep when
 * resume is false. */
int sweep_prepare(struct store *st, const struct sweep_plan *plan, const char *db_path, bool resume,
		  struct ar_err *err);

/* Runs the selected configs. Returns 0 when the sweep ran (failures of
 * configs are results), -1 with err for the store or an interruption-free
 * internal error. */
int sweep_run(struct store *st, int64_t run_id, const struct sweep_opts *o, struct sweep_summary *sum,
	      struct ar_err *err);

#endif
