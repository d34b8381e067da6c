/* sim_serve: the simulated backend behind a real HTTP server.
 *
 * libmicrohttpd, one thread per connection. Speaks what llama.cpp's
 * llama-server speaks (shared/REAL-BACKEND.md): OpenAI chat completions
 * with SSE (role chunk sent with the first token, one event per token,
 * finish chunk with timings, a usage chunk when stream_options.include_usage,
 * data: [DONE]), non-streamed responses with usage and timings,
 * /v1/completions, native /completion (cache_n, timings), /tokenize,
 * /detokenize, /health (503 while loading), /metrics (Prometheus text: the
 * llamacpp: counters and gauges plus a KV-usage gauge and the stream lag of
 * this server), /slots, /v1/models, and the cache reset endpoint
 * POST /slots/reset (sim only).
 *
 * Timing: each request is scheduled in modelled time: it queues for the
 * prefill (one prefill at a time, as llama-server serializes them), its
 * first token arrives at the end of its prefill, later tokens at the decode
 * step time of the batch running at that moment. Modelled durations are
 * divided by time_scale (100 = a hundred times faster) and tokens are
 * written when due (a connection thread sleeps until then); lateness of
 * each write against its schedule is recorded (/metrics, lag_stats).
 *
 * Failures follow the engine profile: HTTP errors with the profile's real
 * bodies, SSE error events after tokens (no [DONE]), log lines through the
 * log callback, and process exit: the server stops, open streams are cut
 * without their final chunk, and sim_serve_run returns the exit code the
 * caller must die with. Concurrency is modelled too: requests beyond the
 * slots wait; on a unified KV pool (llama-server) streams whose contexts
 * together exceed it fail with the profile's kv_exhausted error.
 *
 * Memory: with rss_scale > 0 the server really allocates and touches
 * rss_scale bytes per modelled byte of KV, state and host-cache (never more
 * than rss_max), in 2 MiB chunks, freeing them as the model frees, so a
 * memory sampler sees the modelled growth.
 */
#ifndef AR_SIM_SERVE_H
#define AR_SIM_SERVE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define SIM_SERVE_MIN_SCALE 0.01
#define SIM_SERVE_MAX_SCALE 100000.0
#define SIM_SERVE_MAX_RSS_SCALE 1.0
#define SIM_SERVE_DEFAULT_RSS_MAX (1ull << 30)

struct sim_serve_opts {
	const char *spec;
	const char *host;  /* bind address; NULL = 127.0.0.1 */
	int port;          /* 0 = any free port */
	double time_scale; /* modelled seconds per real second; 1 = real time */
	double rss_scale;  /* 0 = off */
	uint64_t rss_max;  /* ceiling of the allocated ballast, bytes; 0 = default */
	double load_time;  /* modelled seconds /health answers 503 "Loading model" */
	/* server log lines (llama-server style); the CLI prints them to stderr */
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
	/* called once the socket listens */
	void (*ready)(void *ctx, int port);
	void *ready_ctx;
	volatile sig_atomic_t *stop; /* set to stop (a signal handler) */
};

struct sim_lag_stats {
	uint64_t events;
	double p50_ms, p99_ms, max_ms;
};

/* Runs the server until *stop is set or the modelled process dies.
 * Returns 0 with *exit_code: 0 after a stop, else the code of the modelled
 * death (134 = abort, 137 = killed, 1 = exit at load). -1 with err: a bad
 * spec or options, or the socket cannot be bound. */
int sim_serve_run(const struct sim_serve_opts *o, int *exit_code, struct ar_err *err);

#endif
