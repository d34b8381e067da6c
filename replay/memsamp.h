/* memsamp: the memory sampler — threads that watch a server's memory while
 * a replay runs.
 *
 * What it samples (each sample timestamped with clock_now()):
 *   - RSS of the server's whole process tree (the root PID and every
 *     descendant: vLLM and Ollama run workers), every tick;
 *   - PSS of that tree (shared pages counted once), from smaps_rollup: the
 *     kernel walks page tables for it, so it is read on the slow tick;
 *   - GPU memory of the tree's processes (gpumem.h: NVML, or nvidia-smi on
 *     the slow tick), empty when there is no GPU library;
 *   - host MemAvailable, and so its drop since the sampler started (on
 *     unified-memory machines GPU buffers are not charged to the process:
 *     this system-wide delta is what predicts the OOM there);
 *   - the backend's own KV-cache usage from /metrics (llama-server
 *     llamacpp:kv_cache_usage_ratio, vLLM vllm:gpu_cache_usage_perc /
 *     vllm:kv_cache_usage_perc, SGLang sglang:token_usage), on the slow
 *     tick, with a curl handle of its own.
 *
 * Threads: a fast thread samples every `interval` on absolute deadlines (a
 * late tick does not shift the next); a slow thread does the expensive
 * parts (PSS, /metrics, nvidia-smi) every `slow_interval` and the fast
 * thread stamps their latest values on its samples. Neither ever touches
 * the request loop: the engine only reads results (window queries, drains)
 * under the sampler's mutex, which is held for microseconds.
 *
 * Samples go into a ring (`ring` entries); window queries look at what is
 * still there, and drains hand the not-yet-stored samples to the engine
 * (which writes them with store_mem_samples_add on its own thread). When
 * the engine drains too slowly the oldest undrained samples are overwritten
 * and counted as dropped.
 *
 * Ownership: memsamp_start returns a handle; memsamp_stop joins the threads
 * and frees it (NULL ok). Strings in the options are copied.
 */
#ifndef AR_MEMSAMP_H
#define AR_MEMSAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "err.h"
#include "store.h"

struct memsamp_opts {
	int64_t pid;             /* root of the tree; required */
	ar_ns interval;          /* fast tick (RSS, GPU by NVML, MemAvailable); > 0 */
	ar_ns slow_interval;     /* PSS, /metrics, nvidia-smi; 0 = max(interval, 1 s) */
	ar_ns rescan_interval;   /* re-reading the tree from /proc; 0 = 1 s */
	const char *metrics_url; /* NULL: no KV figures */
	bool no_pss;             /* do not read smaps_rollup */
	bool no_gpu;             /* do not look for NVML or nvidia-smi */
	const char *nvml_lib;    /* NULL: libnvidia-ml.so.1 (tests load a fake) */
	const char *smi;         /* NULL: nvidia-smi; "" none */
	size_t ring;             /* samples kept; 0 = 65536 */
};

struct memsamp;

/* Reads the tree and host once (so the start figures are known when it
 * returns), then starts the threads. Fails with err (AR_EINVAL) when the
 * PID does not exist. */
int memsamp_start(struct memsamp **out, const struct memsamp_opts *o, struct ar_err *err);
/* Stops and joins the threads, frees everything. NULL is a no-op. */
void memsamp_stop(struct memsamp *m);

/* Asks for a sample now (wakes the fast thread; does not wait). */
void memsamp_kick(struct memsamp *m);
/* Asks for a sample and waits, at most timeout, until one taken at or after
 * t (clock_now() time) is stored. Returns that sample's time, or 0 when
 * none came in time (or the sampler is stopping). */
ar_ns memsamp_settle(struct memsamp *m, ar_ns t, ar_ns timeout);

/* Figures over [t0, t1] (clock_now() times). When no sample falls inside
 * (a request shorter than the interval), the nearest sample before t0
 * stands in. Fields are -1 / NaN when unknown. */
struct memsamp_window {
	int64_t samples;         /* inside the window */
	int64_t rss_peak, rss_end; /* tree RSS: max, and the last sample at or before t1 */
	int64_t pss_peak;
	int64_t gpu_peak;
	int64_t host_drop_peak;  /* max of (MemAvailable at start - MemAvailable) */
	double kv_end;           /* backend KV usage ratio at the last sample */
};
void memsamp_window(struct memsamp *m, ar_ns t0, ar_ns t1, struct memsamp_window *w);
/* The latest sample; false when there is none yet. */
bool memsamp_last(struct memsamp *m, struct store_mem_sample *out);

/* Moves up to cap samples not yet drained into out, oldest first; returns
 * how many. *dropped (may be NULL) gets the samples overwritten before
 * they could be drained, since the start. */
size_t memsamp_drain(struct memsamp *m, struct store_mem_sample *out, size_t cap, uint64_t *dropped);

/* Whether the root process still runs (checked on every tick and here). */
bool memsamp_pid_alive(struct memsamp *m);
/* When the fast thread first saw the root gone (clock_now()), or 0. */
ar_ns memsamp_pid_gone_at(struct memsamp *m);

struct memsamp_info {
	int64_t pid;
	int64_t host_total;      /* MemTotal, bytes (-1 unknown) */
	int64_t host_avail_start; /* MemAvailable when the sampler started */
	int64_t rss_start;       /* tree RSS when the sampler started */
	int64_t gpu_total;       /* memory of the GPUs the tree uses (-1: no GPU figures) */
	const char *gpu_mode;    /* "nvml", "nvidia-smi" or "none" */
	bool kv_metrics;         /* a KV gauge was found on /metrics */
	uint64_t samples;        /* taken so far */
	uint64_t pss_samples;
	/* tick lateness against the schedule, ns (the last 4096 ticks) */
	ar_ns late_p50, late_p99, late_max;
	/* CPU time of the sampler's threads so far, ns (-1 unknown) */
	int64_t cpu_ns;
};
void memsamp_get_info(struct memsamp *m, struct memsamp_info *out);

/* Notes for the user that came up since the last call (NVML present but
 * failing, a /metrics endpoint answering HTML, samples dropped), each at
 * most once: copied into buf, lines separated by '\n'; returns the length
 * (0 when none). */
size_t memsamp_take_notes(struct memsamp *m, char *buf, size_t n);

#endif
