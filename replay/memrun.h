/* memrun: what the engine does with memory during one configuration's
 * replay — the glue between engine.c and the sampler (memsamp.h) and fit
 * (memfit.h), kept out of engine.c so the request loop stays readable.
 *
 * Lifecycle: memrun_start when the backend answers (starts the sampler on
 * the server PID), memrun_request_begin/end around every request (fills the
 * stored row's memory fields from the sampler's window and remembers the
 * point for the fit), memrun_flush after each stored request (the timeline
 * into the store, in batches), memrun_finish at the end (the fit and the
 * OOM projection into the store and the summary; stops the sampler).
 *
 * Ownership: memrun_start returns a handle freed by memrun_finish or
 * memrun_free (NULL ok).
 */
#ifndef AR_MEMRUN_H
#define AR_MEMRUN_H

#include "engine.h"

struct memrun;

/* Starts sampling cfg->server_pid every cfg->mem_interval_s; metrics_url
 * (may be NULL) is scraped for the backend's KV usage. *out is NULL (and 0
 * returned) when there is nothing to sample (no PID, interval 0). Fails
 * with err when the PID does not exist. */
int memrun_start(struct memrun **out, const struct engine_cfg *cfg, const char *metrics_url, struct ar_err *err);

/* Around one request: begin wakes the sampler (a sample at the start);
 * end fills row->mem_peak_bytes, mem_end_bytes, gpu_peak_bytes,
 * host_drop_bytes and kv_usage from the samples of [t0, t1]. */
void memrun_request_begin(struct memrun *m);
/* settle: when no sample fell inside [t0, t1], take one now and count it as
 * the request's end (one request at a time; a concurrent loop must not wait) */
void memrun_request_end(struct memrun *m, ar_ns t0, ar_ns t1, bool settle, struct store_request *row);
/* After the request is classified: a request that failed while the server
 * process is gone is the crash it is. Rewrites *cls and the evidence
 * buffer (n bytes) when so. */
void memrun_check_crash(struct memrun *m, const char **cls, char *evidence, size_t n);
/* The point of a stored request for the fit (ok and slo requests only). */
void memrun_add_point(struct memrun *m, const struct store_request *row);

/* Writes the samples taken since the last flush. */
int memrun_flush(struct memrun *m, struct store *st, int64_t config_id, struct ar_err *err);
/* Notes for the user (at most once each), '\n'-separated; "" when none. */
size_t memrun_notes(struct memrun *m, char *buf, size_t n);

/* Stops the sampler, stores the last samples and the fitted model
 * (store_config_set_mem), fills *out, and frees m. */
int memrun_finish(struct memrun *m, struct store *st, int64_t config_id, struct engine_mem *out, struct ar_err *err);
void memrun_free(struct memrun *m);

/* The memory model as stored in configs.mem_json:
 * {"source":"rss"|"host_drop"|"gpu","baseline_bytes":int,"bytes_per_token":num,
 *  "budget_bytes":int|null,"projected_oom_tokens":int|null,"projected_oom_turn":int|null,
 *  "points":int,"r2":num|null}
 * Returns a malloc'ed string (NULL when out of memory). */
char *memrun_json(const struct engine_mem *m);

#endif
