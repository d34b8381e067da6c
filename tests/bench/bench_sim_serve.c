/* Benchmark of `sim serve`: N concurrent streaming clients (libcurl multi)
 * against the simulated server in the same process, at a time scale chosen
 * so the server must stream a target number of tokens per second.
 *
 * Reported: tokens received, the aggregate rate against the target, the
 * server's lag of token writes against their schedule (p50/p99/max, from
 * its /metrics), and the clients' own view: the p99 of inter-token gaps
 * relative to the modelled gap (1.0 = on schedule). Two runs: 2,000 tokens/s
 * in all over 100 clients (the goal), then 2,000 tokens/s to each client
 * (200,000/s in all) to show the headroom.
 *
 * Usage: bench_sim_serve [CLIENTS] [TOKENS_PER_CLIENT]
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "sim.h"
#include "sim_serve.h"

#define SPEC "model=qwen3-8b,quant=q4_k_m,hw=h100-80g,engine=vllm,ctx=8k"

struct client {
	char *buf;
	size_t len, cap;
	int64_t tokens;
	ar_ns last;
	double *gaps;
	size_t ngaps, capgaps;
	bool done;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
	struct client *c = ud;
	size_t len = sz * n;
	ar_ns now = clock_now();
	/* count token events (lines with a content delta); any chunk boundary */
	if (c->len + len + 1 > c->cap) {
		c->cap = (c->len + len + 1) * 2;
		c->buf = realloc(c->buf, c->cap);
	}
	memcpy(c->buf + c->len, p, len);
	c->len += len;
	c->buf[c->len] = 0;
	char *line = c->buf, *nl;
	while ((nl = strchr(line, '\n'))) {
		*nl = 0;
		if (!strncmp(line, "data: {", 7) && strstr(line, "\"delta\":{\"content\":\" ")) {
			if (c->tokens > 0) {
				if (c->ngaps == c->capgaps) {
					c->capgaps = c->capgaps ? c->capgaps * 2 : 1024;
					c->gaps = realloc(c->gaps, c->capgaps * sizeof *c->gaps);
				}
				c->gaps[c->ngaps++] = (double)(now - c->last) / 1e6;
			}
			c->tokens++;
			c->last = now;
		} else if (!strcmp(line, "data: [DONE]")) {
			c->done = true;
		}
		line = nl + 1;
	}
	size_t rest = c->len - (size_t)(line - c->buf);
	memmove(c->buf, line, rest);
	c->len = rest;
	return len;
}

static size_t to_buf(char *p, size_t sz, size_t n, void *ud)
{
	struct client *c = ud;
	size_t len = sz * n;
	if (c->len + len + 1 > c->cap) {
		c->cap = (c->len + len + 1) * 2;
		c->buf = realloc(c->buf, c->cap);
	}
	memcpy(c->buf + c->len, p, len);
	c->len += len;
	c->buf[c->len] = 0;
	return len;
}

struct server {
	struct sim_serve_opts o;
	volatile sig_atomic_t stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int port, code;
};

static void ready(void *ctx, int port)
{
	struct server *s = ctx;
	pthread_mutex_lock(&s->mu);
	s->port = port;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void *serve(void *arg)
{
	struct server *s = arg;
	struct ar_err err = {0};
	if (sim_serve_run(&s->o, &s->code, &err) < 0) {
		fprintf(stderr, "serve: %s\n", err.msg);
		ready(s, -1);
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double metric(const char *text, const char *name)
{
	const char *p = strstr(text, name);
	return p ? atof(p + strlen(name)) : NAN;
}

/* One run: returns 0 when the server kept to its schedule. */
static int run(int nclients, int tokens, double target_total, const char *label)
{
	/* the modelled step with the whole batch decoding decides the scale */
	struct sim *probe = NULL;
	struct ar_err err = {0};
	if (sim_new(&probe, SPEC, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	double step_ms = sim_decode_step_ms(probe, nclients, (int64_t)nclients * (20 + tokens / 2));
	sim_free(probe);
	double model_rate = nclients * 1000.0 / step_ms; /* tokens/s in all, modelled */
	double scale = target_total / model_rate;
	struct server srv = {0};
	pthread_mutex_init(&srv.mu, NULL);
	pthread_cond_init(&srv.cv, NULL);
	srv.o.spec = SPEC;
	srv.o.time_scale = scale;
	srv.o.ready = ready;
	srv.o.ready_ctx = &srv;
	srv.o.stop = &srv.stop;
	pthread_t th;
	pthread_create(&th, NULL, serve, &srv);
	pthread_mutex_lock(&srv.mu);
	while (!srv.port)
		pthread_cond_wait(&srv.cv, &srv.mu);
	pthread_mutex_unlock(&srv.mu);
	if (srv.port < 0)
		return 2;
	char url[128], body[512];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", srv.port);
	CURLM *m = curl_multi_init();
	struct client *cl = calloc((size_t)nclients, sizeof *cl);
	CURL **h = calloc((size_t)nclients, sizeof *h);
	struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
	for (int i = 0; i < nclients; i++) {
		h[i] = curl_easy_init();
		snprintf(body, sizeof body,
			 "{\"messages\":[{\"role\":\"user\",\"content\":\"client %d asks for a long answer\"}],"
			 "\"max_tokens\":%d,\"stream\":true}",
			 i, tokens);
		curl_easy_setopt(h[i], CURLOPT_URL, url);
		curl_easy_setopt(h[i], CURLOPT_COPYPOSTFIELDS, body);
		curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &cl[i]);
		curl_multi_add_handle(m, h[i]);
	}
	ar_ns t0 = clock_now();
	int running = 1;
	while (running) {
		curl_multi_perform(m, &running);
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	double wall = (double)(clock_now() - t0) / 1e9;
	int64_t total = 0;
	int done = 0;
	size_t ng = 0;
	for (int i = 0; i < nclients; i++) {
		total += cl[i].tokens;
		done += cl[i].done;
		ng += cl[i].ngaps;
	}
	double *all = malloc((ng ? ng : 1) * sizeof *all);
	size_t k = 0;
	for (int i = 0; i < nclients; i++)
		for (size_t j = 0; j < cl[i].ngaps; j++)
			all[k++] = cl[i].gaps[j];
	qsort(all, ng, sizeof *all, cmp);
	double gap_p50 = ng ? all[ng / 2] : 0, gap_p99 = ng ? all[(size_t)(0.99 * (double)(ng - 1))] : 0;
	/* the server's own lag figures */
	CURL *mh = curl_easy_init();
	struct client mb = {0};
	char murl[128];
	snprintf(murl, sizeof murl, "http://127.0.0.1:%d/metrics", srv.port);
	curl_easy_setopt(mh, CURLOPT_URL, murl);
	curl_easy_setopt(mh, CURLOPT_WRITEFUNCTION, to_buf);
	curl_easy_setopt(mh, CURLOPT_WRITEDATA, &mb);
	curl_easy_perform(mh);
	curl_easy_cleanup(mh);
	double lag50 = metric(mb.buf ? mb.buf : "", "agentreplay_sim_stream_lag_seconds{quantile=\"0.5\"} ") * 1e3;
	double lag99 = metric(mb.buf ? mb.buf : "", "agentreplay_sim_stream_lag_seconds{quantile=\"0.99\"} ") * 1e3;
	double lagmax = metric(mb.buf ? mb.buf : "", "agentreplay_sim_stream_lag_seconds{quantile=\"1\"} ") * 1e3;
	double itl_real = step_ms / scale;
	printf("%s: %d clients x %d tokens, time scale %.3g: %" PRId64 " tokens in %.2f s = %.0f tokens/s "
	       "(target %.0f), %d/%d streams complete\n",
	       label, nclients, tokens, scale, total, wall, (double)total / wall, target_total, done, nclients);
	printf("%s: server lag behind schedule p50 %.2f ms, p99 %.2f ms, max %.2f ms; modelled token gap %.2f ms "
	       "(lag p99 = %.1f%% of it); client-seen gap p50 %.2f ms, p99 %.2f ms\n",
	       label, lag50, lag99, lagmax, itl_real, 100 * lag99 / itl_real, gap_p50, gap_p99);
	for (int i = 0; i < nclients; i++) {
		curl_multi_remove_handle(m, h[i]);
		curl_easy_cleanup(h[i]);
		free(cl[i].buf);
		free(cl[i].gaps);
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(hd);
	free(mb.buf);
	free(all);
	free(cl);
	free(h);
	srv.stop = 1;
	pthread_join(th, NULL);
	/* on schedule: every stream complete, the rate reached, lag p99 under a tenth of a token gap */
	return done == nclients && (double)total / wall > 0.9 * target_total * (tokens - 1.0) / tokens * 0.9 &&
			       lag99 < 0.1 * itl_real
		       ? 0
		       : 1;
}

int main(int argc, char **argv)
{
	int clients = argc > 1 ? atoi(argv[1]) : 100;
	int tokens = argc > 2 ? atoi(argv[2]) : 200;
	if (clients < 1 || clients > 1000 || tokens < 2 || tokens > 100000)
		return 2;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int a = run(clients, tokens, 2000, "2,000 tok/s in all");
	printf("goal (2,000 tokens/s to %d clients on schedule): %s\n", clients, a ? "MISSED" : "met");
	int b = run(clients, tokens * 10, 2000.0 * clients, "2,000 tok/s each");
	printf("headroom (2,000 tokens/s to each client): %s\n", b ? "falls behind" : "on schedule");
	curl_global_cleanup();
	return a;
}
