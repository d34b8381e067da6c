#include "memsamp.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpumem.h"
#include "http.h"
#include "procmem.h"
#include "prom.h"

#define LATE_N 4096
#define METRICS_MAX (8u << 20)
#define METRICS_TIMEOUT_MS 2000
#define METRICS_GIVE_UP 3 /* consecutive failures before the endpoint is left alone */

struct memsamp {
	struct memsamp_opts o;
	char *metrics_url;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* wakes the fast thread (kick, stop) */
	pthread_cond_t cv_slow;
	pthread_cond_t cv_done; /* a fast sample was stored (memsamp_settle waits on it) */
	pthread_t fast, slow;
	bool fast_started, slow_started;
	bool stop, kicked;
	/* ring */
	struct store_mem_sample *ring;
	size_t cap;
	uint64_t nw, nd, dropped;
	bool dropped_noted;
	/* latest slow figures, stamped on fast samples */
	int64_t pss;
	double kv;
	int64_t gpu_smi;
	/* the tree, as last scanned by the fast thread, for the slow one */
	int64_t *pids;
	size_t npids, cappids;
	/* state */
	bool alive;
	ar_ns gone_at;
	struct gpumem *gpu;
	int64_t host_total, host_avail_start, rss_start, gpu_total;
	bool kv_found;
	uint64_t samples, pss_samples;
	ar_ns late[LATE_N];
	uint64_t nlate;
	char notes[2048];
	size_t notes_len;
};

static void add_note_locked(struct memsamp *m, const char *msg)
{
	size_t l = strlen(msg);
	if (m->notes_len + l + 2 > sizeof m->notes)
		return;
	if (m->notes_len)
		m->notes[m->notes_len++] = '\n';
	memcpy(m->notes + m->notes_len, msg, l);
	m->notes_len += l;
	m->notes[m->notes_len] = '\0';
}

static void add_note(struct memsamp *m, const char *msg)
{
	pthread_mutex_lock(&m->mu);
	add_note_locked(m, msg);
	pthread_mutex_unlock(&m->mu);
}

static struct timespec ts_of(ar_ns t)
{
	struct timespec ts = {(time_t)(t / AR_NS_PER_S), (long)(t % AR_NS_PER_S)};
	return ts;
}

/* clock_now() runs on CLOCK_MONOTONIC, as do the condition variables; a
 * test clock source would not, so the waits use the monotonic clock itself. */
static ar_ns mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ar_ns)ts.tv_sec * AR_NS_PER_S + ts.tv_nsec;
}

/* ---- the fast thread ----------------------------------------------------------- */

static int take_sample(struct memsamp *m, struct procmem_tree *tr, ar_ns *next_rescan, ar_ns late)
{
	struct ar_err err = {0};
	ar_ns now = mono_now();
	if (now >= *next_rescan) {
		if (procmem_tree_scan(tr, &err) < 0 && !tr->n)
			tr->n = 0;
		*next_rescan = now + m->o.rescan_interval;
		pthread_mutex_lock(&m->mu);
		if (m->cappids < tr->n) {
			int64_t *p = realloc(m->pids, tr->n * sizeof *p);
			if (p) {
				m->pids = p;
				m->cappids = tr->n;
			}
		}
		if (m->cappids >= tr->n) {
			memcpy(m->pids, tr->pids, tr->n * sizeof *tr->pids);
			m->npids = tr->n;
		}
		pthread_mutex_unlock(&m->mu);
	}
	struct procmem_usage u;
	procmem_tree_sample(tr, false, &u);
	bool alive = u.root_alive || procmem_pid_alive(m->o.pid);
	int64_t gpu = -1, gtot = -1;
	if (gpumem_mode(m->gpu) == GPUMEM_NVML && tr->n)
		gpu = gpumem_sample(m->gpu, tr->pids, tr->n, &gtot);
	int64_t total, avail;
	procmem_host(&total, &avail);
	struct store_mem_sample s = {clock_now(), u.rss_bytes, -1, gpu, avail, NAN, u.procs};
	pthread_mutex_lock(&m->mu);
	s.pss_bytes = alive ? m->pss : -1;
	s.kv_usage = alive ? m->kv : NAN;
	if (gpumem_mode(m->gpu) == GPUMEM_SMI)
		s.gpu_bytes = alive ? m->gpu_smi : -1;
	if (gtot > 0)
		m->gpu_total = gtot;
	if (m->alive && !alive) {
		m->gone_at = s.t_ns;
		char msg[160];
		snprintf(msg, sizeof msg, "server process %lld exited", (long long)m->o.pid);
		add_note_locked(m, msg);
	}
	m->alive = alive;
	m->ring[m->nw % m->cap] = s;
	m->nw++;
	pthread_cond_broadcast(&m->cv_done);
	if (m->nw - m->nd > m->cap) {
		m->dropped += m->nw - m->nd - m->cap;
		m->nd = m->nw - m->cap;
		if (!m->dropped_noted) {
			add_note_locked(m, "memory samples were dropped: the timeline was not stored fast enough");
			m->dropped_noted = true;
		}
	}
	m->samples++;
	m->late[m->nlate++ % LATE_N] = late;
	pthread_mutex_unlock(&m->mu);
	return 0;
}

static void *fast_main(void *arg)
{
	struct memsamp *m = arg;
	struct procmem_tree tr;
	procmem_tree_init(&tr, m->o.pid);
	ar_ns next_rescan = 0;
	ar_ns next = mono_now() + m->o.interval;
	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		int rc = 0;
		while (!m->stop && !m->kicked && rc != ETIMEDOUT) {
			struct timespec ts = ts_of(next);
			rc = pthread_cond_timedwait(&m->cv, &m->mu, &ts);
		}
		if (m->stop)
			break;
		bool kicked = m->kicked;
		m->kicked = false;
		pthread_mutex_unlock(&m->mu);
		ar_ns now = mono_now();
		ar_ns late = kicked && now < next ? 0 : now - next;
		take_sample(m, &tr, &next_rescan, late);
		if (!kicked || mono_now() >= next) {
			next += m->o.interval;
			now = mono_now();
			if (next <= now) /* fell behind by whole ticks: skip them, never burst */
				next += ((now - next) / m->o.interval + 1) * m->o.interval;
		}
		pthread_mutex_lock(&m->mu);
	}
	pthread_mutex_unlock(&m->mu);
	procmem_tree_free(&tr);
	return NULL;
}

/* ---- the slow thread ---------------------------------------------------------- */

/* The KV usage gauges, in the order they are looked for. vLLM's "_perc"
 * gauges are 0..1 fractions like the others. */
static const char *const kv_gauges[] = {"llamacpp:kv_cache_usage_ratio", "vllm:gpu_cache_usage_perc",
					"vllm:kv_cache_usage_perc", "sglang:token_usage"};

/* The largest finite value of a gauge over its label sets (vLLM data
 * parallel has one per engine, each with its own KV pool: the fullest one
 * is the one that runs out; a sum of fractions would mean nothing), or NaN. */
static double gauge_max(const struct prom_set *ps, const char *name)
{
	double v = NAN;
	for (size_t i = 0, n = prom_count(ps); i < n; i++) {
		const struct prom_sample *s = prom_sample_at(ps, i);
		if (!strcmp(s->name, name) && isfinite(s->value) && (isnan(v) || s->value > v))
			v = s->value;
	}
	return v;
}

/* One /metrics scrape: the KV usage ratio, or NaN. A failure that may pass
 * (no connection, a timeout, 503 while the model loads) counts towards
 * METRICS_GIVE_UP consecutive ones; an answer that will not change (404,
 * 501 without --metrics, not Prometheus text, no KV gauge) gives up at
 * once. Giving up leaves one note saying why. */
static double scrape_kv(struct memsamp *m, int *fails, bool *gave_up)
{
	long status = 0;
	char *body = NULL;
	size_t len = 0;
	struct ar_err ferr = {0};
	int rc = hx_fetch(m->metrics_url, NULL, METRICS_TIMEOUT_MS, METRICS_MAX, &status, &body, &len, &ferr);
	double kv = NAN;
	char msg[600];
	msg[0] = '\0';
	if (rc < 0) {
		/* unreachable, timed out, or larger than METRICS_MAX */
		snprintf(msg, sizeof msg, "%s; backend KV usage not sampled", ferr.msg);
		(*fails)++;
	} else if (status != 200) {
		snprintf(msg, sizeof msg, "%s answers HTTP %ld; backend KV usage not sampled", m->metrics_url, status);
		if (status == 503)
			(*fails)++; /* loading the model */
		else
			*fails = METRICS_GIVE_UP; /* not enabled (llama-server without --metrics: 501) */
	} else {
		struct prom_set *ps = NULL;
		struct ar_err err = {0};
		if (prom_parse(body ? body : "", len, &ps, &err) < 0) {
			snprintf(msg, sizeof msg, "%s is not Prometheus text (%s); backend KV usage not sampled",
				 m->metrics_url, err.msg);
			*fails = METRICS_GIVE_UP;
		} else {
			for (size_t i = 0; i < sizeof kv_gauges / sizeof kv_gauges[0] && isnan(kv); i++)
				kv = gauge_max(ps, kv_gauges[i]);
			if (isnan(kv)) {
				/* metrics without a KV gauge (llama-server has none) */
				snprintf(msg, sizeof msg,
					 "%s has no KV-cache gauge (%s, %s, %s or %s); backend KV usage not sampled",
					 m->metrics_url, kv_gauges[0], kv_gauges[1], kv_gauges[2], kv_gauges[3]);
				*fails = METRICS_GIVE_UP;
			} else {
				*fails = 0;
			}
		}
		prom_set_free(ps);
	}
	free(body);
	if (*fails >= METRICS_GIVE_UP && !*gave_up) {
		*gave_up = true;
		add_note(m, msg);
	}
	return kv;
}

static void *slow_main(void *arg)
{
	struct memsamp *m = arg;
	int fails = 0;
	bool gave_up = !m->metrics_url;
	struct procmem_tree tr;
	procmem_tree_init(&tr, m->o.pid);
	ar_ns next = mono_now();
	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		/* copy the tree the fast thread saw */
		if (tr.cap < m->npids) {
			int64_t *p = realloc(tr.pids, m->npids * sizeof *p);
			if (p) {
				tr.pids = p;
				tr.cap = m->npids;
			}
		}
		tr.n = tr.cap >= m->npids ? m->npids : 0;
		if (tr.n)
			memcpy(tr.pids, m->pids, tr.n * sizeof *tr.pids);
		bool alive = m->alive;
		pthread_mutex_unlock(&m->mu);
		int64_t pss = -1, smi = -1;
		double kv = NAN;
		if (!m->o.no_pss && tr.n && alive) {
			struct procmem_usage u;
			procmem_tree_sample(&tr, true, &u);
			pss = u.pss_bytes;
		}
		if (gpumem_mode(m->gpu) == GPUMEM_SMI && tr.n && alive)
			smi = gpumem_sample(m->gpu, tr.pids, tr.n, NULL);
		if (!gave_up && alive)
			kv = scrape_kv(m, &fails, &gave_up);
		pthread_mutex_lock(&m->mu);
		m->pss = pss;
		if (pss >= 0)
			m->pss_samples++;
		m->gpu_smi = smi;
		m->kv = kv;
		if (!isnan(kv))
			m->kv_found = true;
		next += m->o.slow_interval;
		ar_ns now = mono_now();
		if (next <= now)
			next = now + m->o.slow_interval;
		int rc = 0;
		while (!m->stop && rc != ETIMEDOUT) {
			struct timespec ts = ts_of(next);
			rc = pthread_cond_timedwait(&m->cv_slow, &m->mu, &ts);
		}
	}
	pthread_mutex_unlock(&m->mu);
	procmem_tree_free(&tr);
	return NULL;
}

/* ---- API --------------------------------------------------------------------- */

static int cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
#ifndef __APPLE__
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
#endif
	int rc = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return rc;
}

int memsamp_start(struct memsamp **out, const struct memsamp_opts *o, struct ar_err *err)
{
	*out = NULL;
	if (o->pid <= 0)
		return ar_err_set(err, AR_EINVAL, "memory sampler: no server PID");
	if (o->interval <= 0)
		return ar_err_set(err, AR_EINVAL, "memory sampler: the interval must be positive");
	if (!procmem_pid_alive(o->pid))
		return ar_err_set(err, AR_EINVAL, "server PID %lld: no such process", (long long)o->pid);
	struct memsamp *m = calloc(1, sizeof *m);
	if (!m)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	m->o = *o;
	if (!m->o.slow_interval)
		m->o.slow_interval = o->interval > AR_NS_PER_S ? o->interval : AR_NS_PER_S;
	if (!m->o.rescan_interval)
		m->o.rescan_interval = AR_NS_PER_S;
	m->cap = o->ring ? o->ring : 65536;
	m->pss = -1;
	m->gpu_smi = -1;
	m->kv = NAN;
	m->gpu_total = -1;
	m->alive = true;
	pthread_mutex_init(&m->mu, NULL);
	cond_init_mono(&m->cv);
	cond_init_mono(&m->cv_slow);
	cond_init_mono(&m->cv_done);
	if (o->metrics_url && !(m->metrics_url = strdup(o->metrics_url)))
		goto nomem;
	m->o.metrics_url = m->metrics_url;
	m->o.nvml_lib = m->o.smi = NULL; /* not kept */
	if (!(m->ring = malloc(m->cap * sizeof *m->ring)))
		goto nomem;
	if (!o->no_gpu) {
		if (gpumem_open(&m->gpu, o->nvml_lib, o->smi) < 0)
			goto nomem;
		if (gpumem_note(m->gpu)[0])
			add_note(m, gpumem_note(m->gpu));
	}
	/* the start figures */
	struct procmem_tree tr;
	procmem_tree_init(&tr, o->pid);
	struct ar_err e2 = {0};
	if (procmem_tree_scan(&tr, &e2) < 0) {
		procmem_tree_free(&tr);
		ar_err_set(err, e2.code, "%s", e2.msg);
		goto fail;
	}
	struct procmem_usage u;
	procmem_tree_sample(&tr, false, &u);
	m->rss_start = u.rss_bytes;
	if (m->gpu && gpumem_mode(m->gpu) != GPUMEM_NONE)
		gpumem_sample(m->gpu, tr.pids, tr.n, &m->gpu_total);
	procmem_tree_free(&tr);
	procmem_host(&m->host_total, &m->host_avail_start);
	if (pthread_create(&m->fast, NULL, fast_main, m) != 0) {
		ar_err_set(err, AR_EINTERNAL, "memory sampler: cannot start a thread: %s", strerror(errno));
		goto fail;
	}
	m->fast_started = true;
	if (pthread_create(&m->slow, NULL, slow_main, m) != 0) {
		ar_err_set(err, AR_EINTERNAL, "memory sampler: cannot start a thread: %s", strerror(errno));
		goto fail;
	}
	m->slow_started = true;
	*out = m;
	return 0;
nomem:
	ar_err_set(err, AR_ENOMEM, "out of memory");
fail:
	memsamp_stop(m);
	return -1;
}

void memsamp_stop(struct memsamp *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_cond_broadcast(&m->cv);
	pthread_cond_broadcast(&m->cv_slow);
	pthread_mutex_unlock(&m->mu);
	if (m->fast_started)
		pthread_join(m->fast, NULL);
	if (m->slow_started)
		pthread_join(m->slow, NULL);
	gpumem_free(m->gpu);
	pthread_cond_destroy(&m->cv);
	pthread_cond_destroy(&m->cv_slow);
	pthread_cond_destroy(&m->cv_done);
	pthread_mutex_destroy(&m->mu);
	free(m->ring);
	free(m->pids);
	free(m->metrics_url);
	free(m);
}

void memsamp_kick(struct memsamp *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->kicked = true;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

ar_ns memsamp_settle(struct memsamp *m, ar_ns t, ar_ns timeout)
{
	if (!m)
		return 0;
	struct timespec dl = ts_of(mono_now() + timeout);
	ar_ns got = 0;
	pthread_mutex_lock(&m->mu);
	m->kicked = true;
	pthread_cond_signal(&m->cv);
	for (;;) {
		if (m->nw && m->ring[(m->nw - 1) % m->cap].t_ns >= t) {
			got = m->ring[(m->nw - 1) % m->cap].t_ns;
			break;
		}
		if (m->stop || !m->fast_started || pthread_cond_timedwait(&m->cv_done, &m->mu, &dl) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&m->mu);
	return got;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static void window_add(struct memsamp *m, const struct store_mem_sample *s, struct memsamp_window *w, bool end)
{
	w->rss_peak = max64(w->rss_peak, s->rss_bytes);
	w->pss_peak = max64(w->pss_peak, s->pss_bytes);
	w->gpu_peak = max64(w->gpu_peak, s->gpu_bytes);
	if (s->host_available_bytes >= 0 && m->host_avail_start >= 0)
		w->host_drop_peak = max64(w->host_drop_peak, m->host_avail_start - s->host_available_bytes);
	if (end) {
		w->rss_end = s->rss_bytes;
		w->kv_end = s->kv_usage;
	}
}

void memsamp_window(struct memsamp *m, ar_ns t0, ar_ns t1, struct memsamp_window *w)
{
	w->samples = 0;
	w->rss_peak = w->rss_end = w->pss_peak = w->gpu_peak = w->host_drop_peak = -1;
	w->kv_end = NAN;
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	uint64_t first = m->nw > m->cap ? m->nw - m->cap : 0;
	bool have_end = false;
	for (uint64_t i = m->nw; i > first; i--) {
		const struct store_mem_sample *s = &m->ring[(i - 1) % m->cap];
		if (s->t_ns > t1)
			continue;
		if (s->t_ns < t0) {
			if (!w->samples) /* nothing inside: the state the request started from */
				window_add(m, s, w, true);
			break;
		}
		window_add(m, s, w, !have_end);
		have_end = true;
		w->samples++;
	}
	pthread_mutex_unlock(&m->mu);
}

bool memsamp_last(struct memsamp *m, struct store_mem_sample *out)
{
	if (!m)
		return false;
	pthread_mutex_lock(&m->mu);
	bool ok = m->nw > 0;
	if (ok)
		*out = m->ring[(m->nw - 1) % m->cap];
	pthread_mutex_unlock(&m->mu);
	return ok;
}

size_t memsamp_drain(struct memsamp *m, struct store_mem_sample *out, size_t cap, uint64_t *dropped)
{
	if (!m)
		return 0;
	pthread_mutex_lock(&m->mu);
	size_t k = 0;
	while (m->nd < m->nw && k < cap)
		out[k++] = m->ring[m->nd++ % m->cap];
	if (dropped)
		*dropped = m->dropped;
	pthread_mutex_unlock(&m->mu);
	return k;
}

bool memsamp_pid_alive(struct memsamp *m)
{
	if (!m)
		return false;
	bool alive = procmem_pid_alive(m->o.pid);
	pthread_mutex_lock(&m->mu);
	if (!alive && m->alive) {
		m->alive = false;
		m->gone_at = clock_now();
	}
	pthread_mutex_unlock(&m->mu);
	return alive;
}

ar_ns memsamp_pid_gone_at(struct memsamp *m)
{
	if (!m)
		return 0;
	pthread_mutex_lock(&m->mu);
	ar_ns t = m->gone_at;
	pthread_mutex_unlock(&m->mu);
	return t;
}

static int cmp_ns(const void *a, const void *b)
{
	ar_ns x = *(const ar_ns *)a, y = *(const ar_ns *)b;
	return x < y ? -1 : x > y;
}

static int64_t thread_cpu(pthread_t t)
{
#ifdef __APPLE__
	(void)t;
	return -1;
#else
	clockid_t cid;
	struct timespec ts;
	if (pthread_getcpuclockid(t, &cid) != 0 || clock_gettime(cid, &ts) != 0)
		return -1;
	return (int64_t)ts.tv_sec * AR_NS_PER_S + ts.tv_nsec;
#endif
}

void memsamp_get_info(struct memsamp *m, struct memsamp_info *out)
{
	memset(out, 0, sizeof *out);
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	out->pid = m->o.pid;
	out->host_total = m->host_total;
	out->host_avail_start = m->host_avail_start;
	out->rss_start = m->rss_start;
	out->gpu_total = m->gpu_total;
	enum gpumem_mode gm = gpumem_mode(m->gpu);
	out->gpu_mode = gm == GPUMEM_NVML ? "nvml" : gm == GPUMEM_SMI ? "nvidia-smi" : "none";
	out->kv_metrics = m->kv_found;
	out->samples = m->samples;
	out->pss_samples = m->pss_samples;
	size_t n = m->nlate < LATE_N ? (size_t)m->nlate : LATE_N;
	ar_ns lt[LATE_N];
	memcpy(lt, m->late, n * sizeof *lt);
	pthread_mutex_unlock(&m->mu);
	if (n) {
		qsort(lt, n, sizeof *lt, cmp_ns);
		out->late_p50 = lt[(n - 1) / 2];
		out->late_p99 = lt[(size_t)ceil(0.99 * (double)n) - 1];
		out->late_max = lt[n - 1];
	}
	int64_t a = m->fast_started ? thread_cpu(m->fast) : 0, b = m->slow_started ? thread_cpu(m->slow) : 0;
	out->cpu_ns = a < 0 || b < 0 ? -1 : a + b;
}

size_t memsamp_take_notes(struct memsamp *m, char *buf, size_t n)
{
	if (!m || !n)
		return 0;
	pthread_mutex_lock(&m->mu);
	size_t l = m->notes_len < n - 1 ? m->notes_len : n - 1;
	memcpy(buf, m->notes, l);
	buf[l] = '\0';
	m->notes_len = 0;
	m->notes[0] = '\0';
	pthread_mutex_unlock(&m->mu);
	return l;
}
