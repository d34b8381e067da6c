#include "memrun.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "memfit.h"
#include "memsamp.h"

#define FLUSH_BATCH 512

struct mpoint {
	double x;
	int64_t turn;
	int64_t rss, gpu, drop;
};

#define MEMRUN_SETTLE_NS (200 * AR_NS_PER_MS) /* at most this long for an end-of-request sample */

struct memrun {
	struct memsamp *ms;
	int64_t pid;
	int64_t budget; /* --mem-budget, 0 auto */
	struct mpoint *p;
	size_t n, cap;
	struct store_mem_sample *batch;
	int64_t stored;
};

int memrun_start(struct memrun **out, const struct engine_cfg *cfg, const char *metrics_url, struct ar_err *err)
{
	*out = NULL;
	if (cfg->server_pid <= 0 || !(cfg->mem_interval_s > 0))
		return 0;
	struct memrun *m = calloc(1, sizeof *m);
	if (!m || !(m->batch = malloc(FLUSH_BATCH * sizeof *m->batch))) {
		free(m);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	m->pid = cfg->server_pid;
	m->budget = cfg->mem_budget;
	struct memsamp_opts o = {0};
	o.pid = cfg->server_pid;
	o.interval = (ar_ns)(cfg->mem_interval_s * 1e9);
	if (o.interval < AR_NS_PER_MS)
		o.interval = AR_NS_PER_MS;
	o.metrics_url = metrics_url;
	o.nvml_lib = getenv("AGENTREPLAY_NVML_LIB"); /* tests: a fake NVML */
	if (memsamp_start(&m->ms, &o, err) < 0) {
		memrun_free(m);
		return -1;
	}
	*out = m;
	return 0;
}

void memrun_free(struct memrun *m)
{
	if (!m)
		return;
	memsamp_stop(m->ms);
	free(m->p);
	free(m->batch);
	free(m);
}

void memrun_request_begin(struct memrun *m)
{
	if (m)
		memsamp_kick(m->ms);
}

void memrun_request_end(struct memrun *m, ar_ns t0, ar_ns t1, bool settle, struct store_request *row)
{
	if (!m)
		return;
	struct memsamp_window w;
	memsamp_window(m->ms, t0, t1, &w);
	if (settle && w.samples == 0) {
		/* shorter than the interval: no sample inside, and the one before
		 * it would stand in; take one now, as the request's end */
		ar_ns ts = memsamp_settle(m->ms, t1, MEMRUN_SETTLE_NS);
		if (ts)
			memsamp_window(m->ms, t0, ts, &w);
	}
	row->mem_peak_bytes = w.rss_peak;
	row->mem_end_bytes = w.rss_end;
	row->gpu_peak_bytes = w.gpu_peak;
	row->host_drop_bytes = w.host_drop_peak;
	row->kv_usage = w.kv_end;
}

void memrun_check_crash(struct memrun *m, const char **cls, char *evidence, size_t n)
{
	if (!m || !strcmp(*cls, "ok") || !strcmp(*cls, "oom") || !strcmp(*cls, "ctx_overflow") ||
	    !strcmp(*cls, "slo"))
		return;
	/* a dying server cuts its streams a moment before it is gone: give it
	 * that moment (only after a failed request; the loop has nothing in
	 * flight of this request any more) */
	bool alive = memsamp_pid_alive(m->ms);
	for (int i = 0; alive && i < 25; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
		alive = memsamp_pid_alive(m->ms);
	}
	if (alive)
		return;
	char old[512];
	snprintf(old, sizeof old, "%s", evidence);
	struct memsamp_info in;
	memsamp_get_info(m->ms, &in);
	struct store_mem_sample last;
	char rss[64] = "";
	/* the last figure seen while it ran */
	if (memsamp_last(m->ms, &last)) {
		struct memsamp_window w;
		ar_ns gone = memsamp_pid_gone_at(m->ms);
		memsamp_window(m->ms, 0, gone ? gone : last.t_ns, &w);
		if (w.rss_end > 0)
			snprintf(rss, sizeof rss, " (last RSS %.1f MiB)", (double)w.rss_end / 1048576.0);
	}
	snprintf(evidence, n, "server process %lld exited%s%s%s", (long long)m->pid, rss, old[0] ? ": " : "", old);
	*cls = "crash";
}

void memrun_add_point(struct memrun *m, const struct store_request *row)
{
	if (!m || (strcmp(row->outcome, "ok") && strcmp(row->outcome, "slo")))
		return;
	int64_t prompt = row->prompt_tokens >= 0 ? row->prompt_tokens : row->context_tokens_est;
	if (prompt < 0)
		return;
	if (m->n == m->cap) {
		size_t c = m->cap ? m->cap * 2 : 64;
		struct mpoint *p = realloc(m->p, c * sizeof *p);
		if (!p)
			return;
		m->p = p;
		m->cap = c;
	}
	/* the tokens the server holds at the end of the request */
	struct mpoint *q = &m->p[m->n++];
	q->x = (double)prompt + (double)(row->completion_tokens > 0 ? row->completion_tokens : 0);
	q->turn = row->turn;
	q->rss = row->mem_peak_bytes;
	q->gpu = row->gpu_peak_bytes;
	q->drop = row->host_drop_bytes;
}

int memrun_flush(struct memrun *m, struct store *st, int64_t config_id, struct ar_err *err)
{
	if (!m)
		return 0;
	for (;;) {
		size_t k = memsamp_drain(m->ms, m->batch, FLUSH_BATCH, NULL);
		if (!k)
			return 0;
		if (store_mem_samples_add(st, config_id, m->batch, k, err) < 0)
			return -1;
		m->stored += (int64_t)k;
		if (k < FLUSH_BATCH)
			return 0;
	}
}

size_t memrun_notes(struct memrun *m, char *buf, size_t n)
{
	if (n)
		buf[0] = '\0';
	return m ? memsamp_take_notes(m->ms, buf, n) : 0;
}

static int fit_of(const struct memrun *m, int which, struct memfit *f, bool *any)
{
	struct memfit_point *v = malloc((m->n ? m->n : 1) * sizeof *v);
	if (!v)
		return -1;
	size_t k = 0;
	*any = false;
	for (size_t i = 0; i < m->n; i++) {
		int64_t y = which == 0 ? m->p[i].rss : which == 1 ? m->p[i].gpu : m->p[i].drop;
		if (y < 0)
			continue;
		if (y > 0)
			*any = true;
		v[k].x = m->p[i].x;
		v[k].y = (double)y;
		k++;
	}
	int rc = memfit_fit(v, k, f);
	free(v);
	return rc;
}

int memrun_finish(struct memrun *m, struct store *st, int64_t config_id, struct engine_mem *out, struct ar_err *err)
{
	memset(out, 0, sizeof *out);
	out->r2 = NAN;
	out->budget_bytes = out->oom_tokens = out->oom_turn = -1;
	if (!m)
		return 0;
	int rc = -1;
	struct memsamp_info in;
	memsamp_get_info(m->ms, &in);
	out->sampled = true;
	snprintf(out->gpu_mode, sizeof out->gpu_mode, "%s", in.gpu_mode);
	if (memrun_flush(m, st, config_id, err) < 0)
		goto out;
	memsamp_stop(m->ms);
	m->ms = NULL;
	struct memfit fr, fg, fd;
	bool any_r, any_g, any_d;
	if (fit_of(m, 0, &fr, &any_r) < 0 || fit_of(m, 1, &fg, &any_g) < 0 || fit_of(m, 2, &fd, &any_d) < 0) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	/* which memory predicts the OOM: the GPU's when the tree holds GPU memory
	 * that grows; the host's drop when the process's own RSS does not grow
	 * but the machine's available memory falls (unified memory, buffers not
	 * charged to the process); else the tree's RSS */
	const struct memfit *f = &fr;
	const char *src = "rss";
	int64_t budget = -1;
	if (any_g && fg.ok && fg.slope > 0 && (!fr.ok || fg.slope >= fr.slope)) {
		f = &fg;
		src = "gpu";
		budget = in.gpu_total;
	} else if (any_d && fd.ok && fd.slope > 0 && fd.r2 >= 0.5 && (!fr.ok || fr.slope < 0.1 * fd.slope)) {
		f = &fd;
		src = "host_drop";
		budget = in.host_avail_start;
	} else if (in.rss_start >= 0 && in.host_avail_start >= 0)
		budget = in.rss_start + in.host_avail_start; /* the tree may grow by what was available */
	if (m->budget > 0)
		budget = m->budget;
	snprintf(out->source, sizeof out->source, "%s", src);
	out->fitted = f->ok;
	out->points = (int64_t)f->points;
	out->budget_bytes = budget;
	if (f->ok) {
		out->baseline_bytes = f->baseline;
		out->bytes_per_token = f->slope;
		out->r2 = f->r2;
		if (budget > 0)
			out->oom_tokens = memfit_oom_tokens(f, (double)budget);
	}
	/* turns: one depth per turn (the deepest seen), for the turn projection */
	int64_t *turns = malloc((m->n ? m->n : 1) * sizeof *turns);
	double *depth = malloc((m->n ? m->n : 1) * sizeof *depth);
	size_t nt = 0;
	if (!turns || !depth) {
		free(turns);
		free(depth);
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->n; i++) {
		size_t j = 0;
		while (j < nt && turns[j] != m->p[i].turn)
			j++;
		if (j == nt) {
			turns[nt] = m->p[i].turn;
			depth[nt++] = m->p[i].x;
		} else if (m->p[i].x > depth[j])
			depth[j] = m->p[i].x;
	}
	out->turns = (int64_t)nt;
	if (out->oom_tokens >= 0 && nt)
		out->oom_turn = memfit_project_turn(turns, depth, nt, (double)out->oom_tokens);
	free(turns);
	free(depth);
	if (out->fitted) {
		char *js = memrun_json(out);
		if (!js) {
			ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
		int r = store_config_set_mem(st, config_id, js, err);
		free(js);
		if (r < 0)
			goto out;
	}
	rc = 0;
out:
	out->samples = m->stored;
	memrun_free(m);
	return rc;
}

char *memrun_json(const struct engine_mem *m)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "{\"source\":\"%s\",\"baseline_bytes\":%lld,\"bytes_per_token\":%.3f,", m->source,
		   (long long)llround(m->baseline_bytes), m->bytes_per_token);
	if (m->budget_bytes > 0)
		buf_printf(&b, "\"budget_bytes\":%lld,", (long long)m->budget_bytes);
	else
		buf_puts(&b, "\"budget_bytes\":null,");
	if (m->oom_tokens >= 0)
		buf_printf(&b, "\"projected_oom_tokens\":%lld,", (long long)m->oom_tokens);
	else
		buf_puts(&b, "\"projected_oom_tokens\":null,");
	if (m->oom_turn >= 0)
		buf_printf(&b, "\"projected_oom_turn\":%lld,", (long long)m->oom_turn);
	else
		buf_puts(&b, "\"projected_oom_turn\":null,");
	buf_printf(&b, "\"points\":%lld,", (long long)m->points);
	if (isfinite(m->r2))
		buf_printf(&b, "\"r2\":%.4f}", m->r2);
	else
		buf_puts(&b, "\"r2\":null}");
	return buf_detach(&b);
}
