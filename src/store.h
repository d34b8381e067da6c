/* store: the results store, one SQLite file in WAL mode.
 *
 * Tables (schema in store.c, versioned with PRAGMA user_version and applied
 * by ordered migrations): runs (host, tool version, command line), configs
 * (backend, model, parameters, failure point), requests (one row per
 * measured request with every figure of DESIGN.md section 4), events (server
 * and run events with log excerpts) and mem_samples (memory timeline).
 *
 * Durability: each finished request is committed in its own transaction
 * before the next request starts, so killing the process loses at most the
 * request in flight. A store written by a newer agentreplay (higher schema
 * version) is refused with a message saying so.
 *
 * Ownership: store_open returns a handle freed by store_close (NULL ok).
 * Strings passed in are copied by SQLite; nothing is retained.
 */
#ifndef AR_STORE_H
#define AR_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define STORE_SCHEMA_VERSION 3

struct store;

enum { STORE_READONLY = 1 };

/* Opens (creating when needed and not READONLY) the store at path and brings
 * its schema up to date. Fails (before any measurement is made) when the
 * path is not writable, is not a store, or has a newer schema. */
int store_open(struct store **out, const char *path, int flags, struct ar_err *err);
void store_close(struct store *s);
int store_schema_version(const struct store *s);

/* A run: one invocation of run/sweep. host_json describes the machine. */
int store_run_begin(struct store *s, const char *command_line, const char *host_json, int64_t *run_id,
		    struct ar_err *err);
int store_run_end(struct store *s, int64_t run_id, const char *status, struct ar_err *err);

struct store_config {
	const char *name;
	const char *backend; /* adapter: sim, openai, llama-server, ollama, anthropic */
	const char *url;
	const char *model;
	bool simulated;
	const char *params_json; /* everything else that defines the config */
	const char *trace_json;  /* trace file(s), session ids, seeds: provenance */
	const char *key;         /* sweeps: the config's stable identity (resume, merge); NULL for run */
};
int store_config_add(struct store *s, int64_t run_id, const struct store_config *c, int64_t *config_id,
		     struct ar_err *err);
/* Records the config's final status ("ok", "failed", "interrupted", ...) and
 * its failure point as JSON (or NULL). */
int store_config_finish(struct store *s, int64_t config_id, const char *status, const char *failure_json,
			struct ar_err *err);

/* One measured request. Doubles are NaN and integers -1 when not known. */
struct store_request {
	const char *session;
	int64_t turn;
	int64_t repeat; /* 0-based; warmup requests are not stored */
	const char *cache; /* "warm" or "cold" */
	int64_t context_tokens_est; /* our estimate of the materialised prompt */
	int64_t requested_tokens;   /* what we asked the backend to generate */
	int64_t prompt_tokens;
	int64_t cached_tokens;
	const char *cached_source; /* "usage", "timings", "metrics", "none" */
	int64_t completion_tokens;
	const char *completion_source; /* "usage" or "counted" */
	double connect_ms, ttfb_ms, ttft_ms, decode_tps, prefill_tps;
	double itl_p50_ms, itl_p90_ms, itl_p99_ms, e2e_ms;
	int64_t mem_peak_bytes, mem_end_bytes;
	int http_status;
	const char *outcome;  /* failure taxonomy: ok, ctx_overflow, oom, crash, timeout, http_error, protocol_error, slo */
	const char *evidence; /* log line / body excerpt, or NULL */
	const char *flags;    /* comma-separated notes: usage_missing, max_tokens_ignored, stopped_early, ... */
	const char *server_json; /* what the server reported (timings, usage), verbatim-ish */
	const char *wall_time;   /* ISO-8601 when sent */
	/* memory (-1/NaN when not sampled) */
	int64_t gpu_peak_bytes;  /* peak GPU memory of the server's processes during the request */
	int64_t host_drop_bytes; /* peak drop of host MemAvailable since the server started */
	double kv_usage;         /* backend's own KV-cache usage ratio (metrics) at the end */
	/* concurrency */
	int64_t sent_ns;  /* when sent, ns since the config's replay began */
	int64_t in_flight; /* requests in flight when this one was sent, itself included */
	int64_t due_ns;    /* when it was due (its session's arrival or paced time, or the end of
			    * the session's previous request), same clock as sent_ns; -1: one
			    * session at a time, nothing scheduled. sent_ns - due_ns is how far the
			    * client fell behind its own schedule */
};
int store_request_add(struct store *s, int64_t config_id, const struct store_request *r, struct ar_err *err);
/* Several rows in one transaction (requests of concurrent sessions that
 * finished together): store_tx_begin, store_request_add..., store_tx_commit
 * (which rolls back when the commit fails). Not nested. */
int store_tx_begin(struct store *s, struct ar_err *err);
int store_tx_commit(struct store *s, struct ar_err *err);

int store_event_add(struct store *s, int64_t run_id, int64_t config_id, const char *kind, const char *detail,
		    struct ar_err *err);

/* Sweeps: the config file and shard a run executes. */
int store_run_set_sweep(struct store *s, int64_t run_id, const char *config_path, const char *config_hash,
			const char *shard, struct ar_err *err);
/* A managed or attached server: its log file (or NULL) and PID (or -1). */
int store_config_set_server(struct store *s, int64_t config_id, const char *log_path, int64_t server_pid,
			    struct ar_err *err);
/* The fitted memory model and OOM projection of a config, as JSON. */
int store_config_set_mem(struct store *s, int64_t config_id, const char *mem_json, struct ar_err *err);

/* One memory sample (integers -1 and kv_usage NaN when not known). */
struct store_mem_sample {
	int64_t t_ns; /* clock_now() */
	int64_t rss_bytes, pss_bytes, gpu_bytes, host_available_bytes;
	double kv_usage;
	int64_t procs; /* processes in the server's tree */
};
/* Appends samples in one transaction. */
int store_mem_samples_add(struct store *s, int64_t config_id, const struct store_mem_sample *v, size_t n,
			  struct ar_err *err);

/* The raw handle, for readers (reports) that run their own queries. */
struct sqlite3 *store_db(struct store *s);

#endif
