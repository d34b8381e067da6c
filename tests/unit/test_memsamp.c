/* memsamp: the sampler on its own, against processes this test controls.
 *
 * - a forked child that maps and touches N MiB, or unmaps them, when told
 *   through a pipe (and acknowledges once done): the window queries see the
 *   peak inside a window, the end value after the memory is given back, the
 *   figures of a window that holds no sample (the sample before it stands
 *   in; nothing before the first sample is -1), and they agree exactly with
 *   the drained timeline;
 * - the child exiting mid-run (a zombie, then reaped): the fast thread sees
 *   it on its own, memsamp_pid_alive says so, a note names the PID;
 * - samples come at the configured interval (a generous count: at most one
 *   per elapsed interval, at least a third of that; no timing asserted
 *   beyond that), and a kick makes exactly one sample;
 * - the /metrics KV scrape against an in-test HTTP server (libmicrohttpd)
 *   answering HTML, a 503 "Loading model" JSON body, binary junk, real
 *   Prometheus text without a KV gauge (llama-server's), or real bodies of
 *   llama-server (with the older kv_cache_usage_ratio gauge), vLLM and
 *   SGLang: the KV figure is NaN with exactly one note for the bad ones, and
 *   the gauge's value with no note for the good ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "memsamp.h"
#include "procmem.h"

#define MiB ((int64_t)1 << 20)

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* ---- the child: 'a' maps and touches 32 MiB, 'f' unmaps them, 'q' exits ---- */

struct child {
	pid_t pid;
	int cmd, ack;
};

#define CHILD_BLOCK (32 * MiB)

static void child_main(int cmd, int ack)
{
	char *p = NULL;
	char c;
	while (read(cmd, &c, 1) == 1) {
		if (c == 'a' && !p) {
			p = mmap(NULL, CHILD_BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				_exit(3);
			memset(p, 0x5a, CHILD_BLOCK); /* resident, every page */
		} else if (c == 'f' && p) {
			munmap(p, CHILD_BLOCK);
			p = NULL;
		} else if (c == 'q') {
			_exit(0);
		}
		if (write(ack, &c, 1) != 1)
			_exit(4);
	}
	_exit(0);
}

/* Forks before any thread of this test exists (the sampler's are stopped
 * between tests), so the child may do anything. */
static void child_start(struct child *ch)
{
	int a[2], b[2];
	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		child_main(a[0], b[1]);
	}
	close(a[0]);
	close(b[1]);
	ch->pid = pid;
	ch->cmd = a[1];
	ch->ack = b[0];
}

/* Sends a command and waits for the child to have done it. */
static void child_do(struct child *ch, char c)
{
	assert_int_equal(write(ch->cmd, &c, 1), 1);
	char r;
	assert_int_equal(read(ch->ack, &r, 1), 1);
	assert_int_equal(r, c);
}

static void child_end(struct child *ch)
{
	if (ch->pid > 0) {
		kill(ch->pid, SIGKILL);
		waitpid(ch->pid, NULL, 0);
	}
	close(ch->cmd);
	close(ch->ack);
	ch->pid = 0;
}

static void start(struct memsamp **m, int64_t pid, ar_ns interval, const char *metrics_url)
{
	struct memsamp_opts o = {0};
	o.pid = pid;
	o.interval = interval;
	o.slow_interval = 20 * AR_NS_PER_MS;
	o.metrics_url = metrics_url;
	o.no_gpu = true;
	struct ar_err err = {0};
	int rc = memsamp_start(m, &o, &err);
	if (rc != 0)
		fail_msg("memsamp_start: %s", err.msg);
}

/* Waits until the sampler has taken at least n more samples than `since`. */
static void wait_samples(struct memsamp *m, uint64_t since, uint64_t n)
{
	for (int i = 0; i < 1000; i++) {
		struct memsamp_info in;
		memsamp_get_info(m, &in);
		if (in.samples >= since + n)
			return;
		sleep_ms(5);
	}
	fail_msg("the sampler took no samples for 5 s");
}

static uint64_t samples_now(struct memsamp *m)
{
	struct memsamp_info in;
	memsamp_get_info(m, &in);
	return in.samples;
}

/* ---- window queries ------------------------------------------------------------- */

static void test_windows(void **st)
{
	(void)st;
	struct child ch;
	child_start(&ch);
	struct memsamp *m = NULL;
	start(&m, ch.pid, 5 * AR_NS_PER_MS, NULL);
	struct memsamp_info in;
	memsamp_get_info(m, &in);
	assert_int_equal(in.pid, ch.pid);
	assert_true(in.rss_start > 0);
	assert_string_equal(in.gpu_mode, "none");

	ar_ns t0 = clock_now();
	wait_samples(m, samples_now(m), 4);
	ar_ns t_before = clock_now(); /* the child's baseline, sampled */
	child_do(&ch, 'a');
	ar_ns t_alloc = clock_now(); /* 32 MiB resident from here */
	wait_samples(m, samples_now(m), 4);
	ar_ns t_free_cmd = clock_now();
	child_do(&ch, 'f');
	ar_ns t_freed = clock_now();
	wait_samples(m, samples_now(m), 4);
	ar_ns t_end = clock_now();

	struct memsamp_window base, held, all, after;
	memsamp_window(m, t0, t_before, &base);
	memsamp_window(m, t_alloc, t_free_cmd, &held);
	memsamp_window(m, t0, t_end, &all);
	memsamp_window(m, t_freed, t_end, &after);
	assert_true(base.samples >= 4);
	assert_true(held.samples >= 4);
	assert_true(base.rss_peak > 0);
	/* the block is in every sample while it is held, and in no sample before */
	assert_true(held.rss_end - base.rss_peak >= CHILD_BLOCK - 2 * MiB);
	assert_true(held.rss_peak - base.rss_peak <= CHILD_BLOCK + 4 * MiB);
	/* the whole run: the peak is the held block, the end is after it went */
	assert_true(all.rss_peak >= held.rss_end);
	assert_true(all.rss_end < base.rss_peak + 4 * MiB);
	assert_true(all.rss_peak - all.rss_end >= CHILD_BLOCK - 2 * MiB);
	assert_int_equal(all.rss_end, after.rss_end);
	assert_true(after.rss_peak < base.rss_peak + 4 * MiB);
	/* PSS on the slow tick (the child shares its pages with this process
	 * after fork: at most its RSS); no GPU or KV figures: unknown, not zero */
	assert_true(all.pss_peak > 0 && all.pss_peak <= all.rss_peak);
	assert_int_equal(all.gpu_peak, -1);
	assert_true(isnan(all.kv_end));

	/* the same figures from the timeline itself */
	struct store_mem_sample *s = calloc(8192, sizeof *s);
	assert_non_null(s);
	uint64_t dropped = 1;
	size_t n = memsamp_drain(m, s, 8192, &dropped);
	assert_int_equal(dropped, 0);
	assert_true(n >= 12);
	for (size_t i = 1; i < n; i++)
		assert_true(s[i].t_ns >= s[i - 1].t_ns);
	int64_t peak = -1, end = -1, k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i].t_ns < t_alloc || s[i].t_ns > t_free_cmd)
			continue;
		peak = s[i].rss_bytes > peak ? s[i].rss_bytes : peak;
		end = s[i].rss_bytes;
		k++;
		assert_int_equal(s[i].procs, 1);
		assert_true(s[i].host_available_bytes > 0);
	}
	assert_int_equal(held.samples, k);
	assert_int_equal(held.rss_peak, peak);
	assert_int_equal(held.rss_end, end);

	/* a window between two samples holds none: the one before stands in */
	size_t gap = 0;
	for (size_t i = 1; i < n && !gap; i++)
		if (s[i].t_ns - s[i - 1].t_ns > 2 && s[i].t_ns > t_alloc && s[i - 1].t_ns > t_alloc)
			gap = i;
	assert_true(gap > 0);
	struct memsamp_window none;
	memsamp_window(m, s[gap - 1].t_ns + 1, s[gap].t_ns - 1, &none);
	assert_int_equal(none.samples, 0);
	assert_int_equal(none.rss_end, s[gap - 1].rss_bytes);
	assert_int_equal(none.rss_peak, s[gap - 1].rss_bytes);
	/* before the first sample there is nothing to stand in */
	memsamp_window(m, 0, s[0].t_ns - 1, &none);
	assert_int_equal(none.samples, 0);
	assert_int_equal(none.rss_peak, -1);
	assert_int_equal(none.rss_end, -1);
	assert_int_equal(none.host_drop_peak, -1);
	assert_true(isnan(none.kv_end));
	/* the drain moved them: nothing is handed out twice */
	struct store_mem_sample more[4];
	size_t n2 = memsamp_drain(m, more, 4, NULL);
	for (size_t i = 0; i < n2; i++)
		assert_true(more[i].t_ns >= s[n - 1].t_ns);
	free(s);
	memsamp_stop(m);
	child_end(&ch);
}

/* ---- the process exiting mid-run ------------------------------------------------ */

static void test_pid_exits(void **st)
{
	(void)st;
	struct child ch;
	child_start(&ch);
	struct memsamp *m = NULL;
	start(&m, ch.pid, 5 * AR_NS_PER_MS, NULL);
	wait_samples(m, 0, 3);
	assert_true(memsamp_pid_alive(m));
	assert_int_equal(memsamp_pid_gone_at(m), 0);
	char notes[2048];
	assert_int_equal(memsamp_take_notes(m, notes, sizeof notes), 0);

	ar_ns t_quit = clock_now();
	char q = 'q';
	assert_int_equal(write(ch.cmd, &q, 1), 1);
	/* not reaped yet: a zombie is gone as far as a server goes; the fast
	 * thread must see it on its own */
	ar_ns gone = 0;
	for (int i = 0; i < 400 && !gone; i++) {
		sleep_ms(5);
		gone = memsamp_pid_gone_at(m);
	}
	assert_true(gone > 0);
	assert_true(gone >= t_quit);
	assert_false(memsamp_pid_alive(m));
	assert_int_equal(memsamp_pid_gone_at(m), gone); /* the first time it was seen gone */
	size_t l = memsamp_take_notes(m, notes, sizeof notes);
	assert_true(l > 0);
	char want[64];
	snprintf(want, sizeof want, "server process %lld exited", (long long)ch.pid);
	assert_non_null(strstr(notes, want));
	/* reaped: still gone, no second note, the sampler keeps going */
	int status;
	assert_int_equal(waitpid(ch.pid, &status, 0), ch.pid);
	ch.pid = 0;
	uint64_t n0 = samples_now(m);
	wait_samples(m, n0, 3);
	assert_false(memsamp_pid_alive(m));
	assert_int_equal(memsamp_take_notes(m, notes, sizeof notes), 0);
	/* the last figure while it ran is still there */
	struct memsamp_window w;
	memsamp_window(m, 0, gone - 1, &w);
	assert_true(w.rss_peak > 0);
	memsamp_stop(m);
	child_end(&ch);
}

static void test_start_bad_pid(void **st)
{
	(void)st;
	struct child ch;
	child_start(&ch);
	pid_t pid = ch.pid;
	child_end(&ch); /* killed and reaped: the PID names nothing now */
	struct memsamp *m = (struct memsamp *)1;
	struct memsamp_opts o = {0};
	o.pid = pid;
	o.interval = 10 * AR_NS_PER_MS;
	o.no_gpu = true;
	struct ar_err err = {0};
	assert_int_equal(memsamp_start(&m, &o, &err), -1);
	assert_null(m);
	assert_non_null(strstr(err.msg, "no such process"));
	o.pid = getpid();
	o.interval = 0;
	assert_int_equal(memsamp_start(&m, &o, &err), -1);
	assert_null(m);
	memsamp_stop(NULL);
}

/* ---- the interval --------------------------------------------------------------- */

static void test_interval(void **st)
{
	(void)st;
	const ar_ns iv = 20 * AR_NS_PER_MS;
	struct child ch;
	child_start(&ch);
	struct memsamp *m = NULL;
	ar_ns t0 = clock_now();
	start(&m, ch.pid, iv, NULL);
	sleep_ms(600);
	struct memsamp_info in;
	memsamp_get_info(m, &in);
	ar_ns t1 = clock_now();
	double ticks = (double)(t1 - t0) / (double)iv;
	/* ticks fall on absolute deadlines and a late one never bursts: never
	 * more than one per interval elapsed; a loaded machine may skip some */
	if (!((double)in.samples <= ticks + 1.0 && (double)in.samples >= ticks / 3.0))
		fail_msg("%llu samples in %.0f intervals of 20 ms", (unsigned long long)in.samples, ticks);
	assert_true(in.late_p50 >= 0 && in.late_p99 >= in.late_p50 && in.late_max >= in.late_p99);
	assert_true(in.cpu_ns >= 0);
	/* the timeline, in order */
	struct store_mem_sample s[128];
	size_t n = memsamp_drain(m, s, 128, NULL);
	assert_true(n >= 2);
	for (size_t i = 1; i < n; i++)
		assert_true(s[i].t_ns > s[i - 1].t_ns);
	memsamp_stop(m);
	child_end(&ch);
}

static void test_kick(void **st)
{
	(void)st;
	/* an interval so long no tick comes: only kicks make samples */
	struct memsamp *m = NULL;
	start(&m, getpid(), 3600 * AR_NS_PER_S, NULL);
	assert_int_equal(samples_now(m), 0);
	struct store_mem_sample last;
	assert_false(memsamp_last(m, &last));
	for (int k = 1; k <= 3; k++) {
		memsamp_kick(m);
		wait_samples(m, 0, (uint64_t)k);
		/* kicks are not queued: one at a time */
		sleep_ms(20);
		assert_int_equal(samples_now(m), k);
	}
	assert_true(memsamp_last(m, &last));
	assert_true(last.rss_bytes > 0);
	memsamp_stop(m);
}

/* A request shorter than the interval: no sample inside its window, so the one
 * before it stands in (the growth would land on the next request); settling
 * takes one at its end that shows the growth. */
static void test_settle(void **st)
{
	(void)st;
	struct child ch;
	child_start(&ch);
	struct memsamp *m = NULL;
	start(&m, ch.pid, 3600 * AR_NS_PER_S, NULL); /* no ticks: kicks only */
	memsamp_kick(m);
	wait_samples(m, 0, 1);
	ar_ns t0 = clock_now();
	child_do(&ch, 'a');
	ar_ns t1 = clock_now();
	struct memsamp_window w;
	memsamp_window(m, t0, t1, &w);
	assert_int_equal(w.samples, 0);
	int64_t before = w.rss_end; /* the stand-in from before t0 */
	assert_true(before > 0);
	ar_ns ts = memsamp_settle(m, t1, AR_NS_PER_S);
	assert_true(ts >= t1);
	memsamp_window(m, t0, ts, &w);
	assert_int_equal(w.samples, 1);
	assert_true(w.rss_end - before >= CHILD_BLOCK - 2 * MiB);
	/* a time no sample can reach within the timeout: 0 */
	assert_int_equal(memsamp_settle(m, clock_now() + 3600 * AR_NS_PER_S, 20 * AR_NS_PER_MS), 0);
	memsamp_stop(m);
	child_end(&ch);
}

/* ---- the /metrics KV scrape ----------------------------------------------------- */

struct body {
	const char *path;
	unsigned status;
	const char *type;
	char *data;
	size_t len;
	int hits;
};

static struct body bodies[16];
static size_t nbodies;
static pthread_mutex_t hits_mu = PTHREAD_MUTEX_INITIALIZER;

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_len, void **ptr)
{
	(void)cls, (void)method, (void)version, (void)upload, (void)upload_len, (void)ptr;
	for (size_t i = 0; i < nbodies; i++) {
		if (strcmp(url, bodies[i].path))
			continue;
		pthread_mutex_lock(&hits_mu);
		bodies[i].hits++;
		pthread_mutex_unlock(&hits_mu);
		struct MHD_Response *r =
			MHD_create_response_from_buffer(bodies[i].len, bodies[i].data, MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(r, "Content-Type", bodies[i].type);
		enum MHD_Result ret = MHD_queue_response(c, bodies[i].status, r);
		MHD_destroy_response(r);
		return ret;
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(9, (void *)"not found", MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_queue_response(c, 404, r);
	MHD_destroy_response(r);
	return ret;
}

static int hits_of(const struct body *b)
{
	pthread_mutex_lock(&hits_mu);
	int h = b->hits;
	pthread_mutex_unlock(&hits_mu);
	return h;
}

static char *slurp(const char *rel, size_t *len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", AR_TEST_DATA, rel);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	char *d = malloc(1 << 20);
	assert_non_null(d);
	*len = fread(d, 1, (1 << 20) - 1, f);
	d[*len] = '\0';
	fclose(f);
	return d;
}

static struct body *add_body(const char *path, unsigned status, const char *type, char *data, size_t len)
{
	struct body *b = &bodies[nbodies++];
	*b = (struct body){path, status, type, data, len, 0};
	return b;
}

/* The notes of one sampler over its whole life, counted by line. */
static int count_lines(const char *s)
{
	if (!*s)
		return 0;
	int n = 1;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Runs a sampler on this process against url until the scrape has had its
 * say (a KV figure, or the endpoint given up on) and some slow ticks more;
 * returns the KV figure of the whole run and every note it left. */
static double scrape(const char *url, struct body *b, char *notes, size_t n)
{
	struct memsamp *m = NULL;
	start(&m, getpid(), 5 * AR_NS_PER_MS, url);
	notes[0] = '\0';
	size_t used = 0;
	double kv = NAN;
	int settled = -1;
	for (int i = 0; i < 600; i++) {
		sleep_ms(10);
		char part[1024];
		size_t l = memsamp_take_notes(m, part, sizeof part);
		if (l) {
			snprintf(notes + used, n - used, "%s%s", used ? "\n" : "", part);
			used = strlen(notes);
		}
		struct memsamp_window w;
		memsamp_window(m, 0, clock_now(), &w);
		kv = w.kv_end;
		/* settled: a figure, or a note and no figure; then ten more
		 * slow ticks' worth of scrapes for a second note to show up */
		if (settled < 0 && (isfinite(kv) || used))
			settled = hits_of(b);
		if (settled >= 0 && (hits_of(b) >= settled + 10 || (used && i > 30 && hits_of(b) == settled)))
			break;
	}
	/* whatever the fast thread stamped on the last samples */
	struct memsamp_window w;
	memsamp_kick(m);
	sleep_ms(20);
	memsamp_window(m, 0, clock_now(), &w);
	kv = w.kv_end;
	char part[1024];
	if (memsamp_take_notes(m, part, sizeof part)) {
		snprintf(notes + used, n - used, "%s%s", used ? "\n" : "", part);
		used = strlen(notes);
	}
	struct memsamp_info in;
	memsamp_get_info(m, &in);
	if (isfinite(kv))
		assert_true(in.kv_metrics);
	/* every stored sample carries the same kind of figure */
	struct store_mem_sample s[4096];
	size_t k = memsamp_drain(m, s, 4096, NULL);
	for (size_t i = 0; i < k; i++)
		if (!isnan(s[i].kv_usage))
			assert_true(isfinite(kv) && s[i].kv_usage == kv);
	memsamp_stop(m);
	return kv;
}

static void test_metrics_kv(void **st)
{
	(void)st;
	nbodies = 0;
	size_t len;
	/* garbage */
	static char html[] = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
			     "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n";
	add_body("/html", 200, "text/html", html, sizeof html - 1);
	/* llama-server while it loads the model (every endpoint but /health) */
	static char loading[] = "{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}";
	add_body("/loading", 503, "application/json; charset=utf-8", loading, sizeof loading - 1);
	static char junk[256];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 151u + 7u);
	add_body("/junk", 200, "text/plain; version=0.0.4", junk, sizeof junk);
	/* real llama-server text: counters and gauges, no KV gauge */
	char *lm = slurp("proc/llama-server.metrics", &len);
	add_body("/nokv", 200, "text/plain; version=0.0.4", lm, len);
	/* the same with the gauge older llama-servers export */
	char *lk = slurp("proc/llama-server.metrics", &len);
	static const char gauge[] = "# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.\n"
				    "# TYPE llamacpp:kv_cache_usage_ratio gauge\nllamacpp:kv_cache_usage_ratio 0.3125\n";
	memcpy(lk + len, gauge, sizeof gauge);
	add_body("/llama", 200, "text/plain; version=0.0.4", lk, len + sizeof gauge - 1);
	char *vm = slurp("streams/vllm-metrics.txt", &len);
	add_body("/vllm", 200, "text/plain; version=0.0.4; charset=utf-8", vm, len);
	/* vLLM data parallel: one gauge per engine; the fullest pool counts */
	char *vdp = slurp("streams/vllm-metrics.txt", &len);
	static const char eng1[] = "vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"llama-vllm-single\"} 0.75\n"
				   "vllm:gpu_cache_usage_perc{engine=\"1\",model_name=\"llama-vllm-single\"} 0.75\n";
	memcpy(vdp + len, eng1, sizeof eng1);
	add_body("/vllm-dp", 200, "text/plain; version=0.0.4; charset=utf-8", vdp, len + sizeof eng1 - 1);
	char *sg = slurp("streams/sglang-metrics.txt", &len);
	add_body("/sglang", 200, "text/plain; version=0.0.4", sg, len);

	struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_req, NULL,
						MHD_OPTION_END);
	assert_non_null(d);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(di);
	int port = di->port;

	static const struct {
		const char *path;
		double kv;          /* NaN: none */
		const char *note;   /* what the one note says */
	} cases[] = {
		{"/html", NAN, "is not Prometheus text"},
		{"/loading", NAN, "answers HTTP 503"},
		{"/junk", NAN, "is not Prometheus text"},
		{"/nokv", NAN, "has no KV-cache gauge"},
		{"/missing", NAN, "answers HTTP 404"},
		{"/llama", 0.3125, NULL},
		{"/vllm", 0.4219, NULL},
		{"/vllm-dp", 0.75, NULL},
		{"/sglang", 0.28, NULL},
	};
	static struct body nobody;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char url[128];
		snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, cases[i].path);
		struct body *b = &nobody;
		for (size_t j = 0; j < nbodies; j++)
			if (!strcmp(bodies[j].path, cases[i].path))
				b = &bodies[j];
		char notes[4096];
		double kv = scrape(url, b, notes, sizeof notes);
		print_message("%-9s kv %g, %d hits, notes: %s\n", cases[i].path, kv, hits_of(b), notes);
		if (isnan(cases[i].kv)) {
			assert_true(isnan(kv));
			assert_int_equal(count_lines(notes), 1);
			assert_non_null(strstr(notes, url));
			assert_non_null(strstr(notes, cases[i].note));
			assert_non_null(strstr(notes, "backend KV usage not sampled"));
		} else {
			assert_true(fabs(kv - cases[i].kv) < 1e-9);
			assert_string_equal(notes, "");
		}
	}
	/* a 503 is retried (the model may finish loading), anything else is not */
	assert_true(bodies[1].hits >= 3);
	assert_int_equal(bodies[0].hits, 1);
	assert_int_equal(bodies[2].hits, 1);
	assert_int_equal(bodies[3].hits, 1);
	MHD_stop_daemon(d);

	/* nothing listening: given up after a few tries, one note naming the URL */
	char url[128];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
	char notes[4096];
	double kv = scrape(url, &nobody, notes, sizeof notes);
	assert_true(isnan(kv));
	assert_int_equal(count_lines(notes), 1);
	assert_non_null(strstr(notes, url));
	free(lm);
	free(lk);
	free(vm);
	free(vdp);
	free(sg);
	nbodies = 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_windows),
		cmocka_unit_test(test_pid_exits),
		cmocka_unit_test(test_start_bad_pid),
		cmocka_unit_test(test_interval),
		cmocka_unit_test(test_settle),
		cmocka_unit_test(test_kick),
		cmocka_unit_test(test_metrics_kv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
