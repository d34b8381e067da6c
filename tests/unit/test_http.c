/* http: the streaming event loop (replay/http.c) against a scripted server
 * thread on 127.0.0.1 that writes each response piece at a known instant
 * (clock_now() just before its write).
 *
 * What is checked: requests, status, chunked body pieces and their order;
 * arrival stamps when the loop is late (the kernel's receive stamp, not the
 * time the loop got round to the bytes); that a stamp is never earlier than
 * the write it belongs to, also when more bytes arrive while the loop is
 * still handling earlier ones, and with two connections at once; keep-alive
 * reuse; the first-token timeout. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http.h"

#define MAXP 8

/* ---- the scripted server ---------------------------------------------- */

struct script {
	int npieces;
	int delay_ms[MAXP];   /* before each body piece, from the previous write */
	int requests;         /* requests to serve on one connection (keep-alive) */
	int conns;            /* connections to accept */
	/* filled by the server */
	int port;
	int lfd;
	ar_ns t_write[4][MAXP]; /* by connection (accept order), piece */
	ar_ns t_headers[4];
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static int read_request(int fd)
{
	char buf[8192];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (!end)
			continue;
		const char *cl = strcasestr(buf, "content-length:");
		size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
		if (n >= want)
			return 0;
	}
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL); /* the client may have gone */
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

struct conn_arg {
	struct script *sc;
	int fd, idx;
};

static void *serve_conn(void *p)
{
	struct conn_arg *a = p;
	struct script *sc = a->sc;
	int one = 1;
	setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	for (int r = 0; r < sc->requests; r++) {
		if (read_request(a->fd) < 0)
			break;
		static const char hdr[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
					  "Transfer-Encoding: chunked\r\n\r\n";
		sc->t_headers[a->idx] = clock_now();
		write_all(a->fd, hdr, sizeof hdr - 1);
		for (int i = 0; i < sc->npieces; i++) {
			sleep_ms(sc->delay_ms[i]);
			char piece[128];
			int len = snprintf(piece + 8, sizeof piece - 8, "data: {\"piece\":%d,\"conn\":%d}\n\n", i, a->idx);
			int h = snprintf(piece, 8, "%x\r\n", len);
			memmove(piece + h, piece + 8, (size_t)len);
			memcpy(piece + h + len, "\r\n", 2);
			sc->t_write[a->idx][i] = clock_now();
			write_all(a->fd, piece, (size_t)(h + len + 2));
		}
		write_all(a->fd, "0\r\n\r\n", 5);
	}
	sleep_ms(50); /* let the client see the end before the close */
	close(a->fd);
	return NULL;
}

static void *server_main(void *p)
{
	struct script *sc = p;
	pthread_t th[4];
	struct conn_arg args[4];
	int n = 0;
	for (; n < sc->conns && n < 4; n++) {
		int fd = accept(sc->lfd, NULL, NULL);
		if (fd < 0)
			break;
		args[n] = (struct conn_arg){sc, fd, n};
		pthread_create(&th[n], NULL, serve_conn, &args[n]);
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	return NULL;
}

static pthread_t server_start(struct script *sc)
{
	sc->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(sc->lfd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(sc->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(sc->lfd, 8), 0);
	socklen_t sl = sizeof a;
	getsockname(sc->lfd, (struct sockaddr *)&a, &sl);
	sc->port = ntohs(a.sin_port);
	pthread_t th;
	pthread_create(&th, NULL, server_main, sc);
	return th;
}

/* ---- the client side ---------------------------------------------------- */

struct got {
	long status;
	int n;              /* body pieces */
	int piece[64];      /* piece number, in order of arrival */
	int conn[64];
	ar_ns t[64];
	int done;
	struct hx_result res;
	int sleep_in_body_ms; /* the callback is slow (once, on the first piece) */
};

static int on_status(void *ud, long status, ar_ns t)
{
	(void)t;
	((struct got *)ud)->status = status;
	return 0;
}

/* One write of the server is one chunk: curl hands each to on_body (maybe
 * several in one read); the piece number is parsed from it. */
static int on_body(void *ud, const char *data, size_t n, ar_ns t)
{
	struct got *g = ud;
	const char *p = data, *end = data + n;
	while (p < end && g->n < 64) {
		const char *q = memmem(p, (size_t)(end - p), "\"piece\":", 8);
		if (!q)
			break;
		g->piece[g->n] = atoi(q + 8);
		const char *c = memmem(q, (size_t)(end - q), "\"conn\":", 7);
		g->conn[g->n] = c ? atoi(c + 7) : -1;
		g->t[g->n] = t;
		g->n++;
		p = q + 8;
	}
	if (g->sleep_in_body_ms) {
		sleep_ms(g->sleep_in_body_ms);
		g->sleep_in_body_ms = 0;
	}
	return 0;
}

static void on_done(void *ud, const struct hx_result *r)
{
	struct got *g = ud;
	g->res = *r;
	g->done = 1;
}

static const struct hx_callbacks CB = {on_status, on_body, on_done};

static struct hx_xfer *start(struct hx_loop *l, int port, struct got *g, const struct hx_opts *o)
{
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", port);
	static const char *const hdrs[] = {"Content-Type: application/json", NULL};
	static const char body[] = "{\"stream\":true}";
	struct ar_err err = {0};
	struct hx_xfer *x = hx_start(l, url, hdrs, body, sizeof body - 1, o, &CB, g, &err);
	assert_non_null(x);
	return x;
}

/* Polls until g has a status (headers read). */
static void until_status(struct hx_loop *l, struct got *g)
{
	struct ar_err err = {0};
	ar_ns deadline = clock_now() + 5 * AR_NS_PER_S;
	while (!g->status && !g->done && clock_now() < deadline)
		assert_true(hx_poll(l, clock_now() + 5 * AR_NS_PER_MS, &err) >= 0);
	assert_int_equal(g->status, 200);
}

static void run_all(struct hx_loop *l)
{
	struct ar_err err = {0};
	assert_int_equal(hx_run(l, clock_now() + 10 * AR_NS_PER_S, &err), 0);
}

/* A scripted server and a loop to talk to it; done() joins and frees both. */
static struct hx_loop *setup(struct script *sc, pthread_t *th)
{
	*th = server_start(sc);
	struct hx_loop *l;
	struct ar_err err = {0};
	assert_int_equal(hx_loop_new(&l, &err), 0);
	return l;
}

static void done(struct hx_loop *l, struct script *sc, pthread_t th)
{
	hx_loop_free(l);
	pthread_join(th, NULL);
	close(sc->lfd);
}

/* Every piece stamped no earlier than its write; in order; all there. */
static void check_never_early(const struct got *g, const struct script *sc)
{
	assert_int_equal(g->n, sc->npieces);
	for (int i = 0; i < g->n; i++) {
		assert_int_equal(g->piece[i], i);
		int c = g->conn[i];
		assert_true(c >= 0 && c < 4);
		if (g->t[i] < sc->t_write[c][i])
			fail_msg("piece %d stamped %lld ns before the server wrote it", i,
				 (long long)(sc->t_write[c][i] - g->t[i]));
	}
}

static void test_stream(void **st)
{
	(void)st;
	struct script sc = {.npieces = 4, .delay_ms = {5, 5, 5, 5}, .requests = 1, .conns = 1};
	pthread_t th;
	struct hx_loop *l = setup(&sc, &th);
	struct got g = {0};
	start(l, sc.port, &g, NULL);
	run_all(l);
	assert_true(g.done);
	assert_int_equal(g.res.curl_code, 0);
	assert_int_equal(g.res.status, 200);
	assert_string_equal(g.res.content_type, "text/event-stream");
	assert_true(g.res.t_sent > 0 && g.res.t_first_byte >= g.res.t_sent && g.res.t_done >= g.res.t_first_byte);
	check_never_early(&g, &sc);
	long long kern, clk;
	hx_loop_stamps(l, &kern, &clk);
	assert_true(kern + clk >= 4);
	done(l, &sc, th);
}

/* The loop is busy elsewhere for 150 ms while the first piece arrives 10 ms
 * in: its stamp is the kernel's, close to the write, not 140 ms late. */
static void test_late_loop_gets_kernel_stamp(void **st)
{
	(void)st;
	struct script sc = {.npieces = 2, .delay_ms = {10, 300}, .requests = 1, .conns = 1};
	pthread_t th;
	struct hx_loop *l = setup(&sc, &th);
	struct got g = {0};
	start(l, sc.port, &g, NULL);
	until_status(l, &g);
	sleep_ms(150); /* busy: the first piece waits in the socket */
	run_all(l);
	check_never_early(&g, &sc);
	ar_ns late = g.t[0] - sc.t_write[0][0];
	if (late > 40 * AR_NS_PER_MS)
		fail_msg("first piece stamped %.1f ms after its write: the loop's lateness, not its arrival",
			 (double)late / 1e6);
	long long kern, clk;
	hx_loop_stamps(l, &kern, &clk);
	assert_true(kern >= 2);
	done(l, &sc, th);
}

/* The callback for piece 0 takes 60 ms; piece 1 arrives 20 ms into it and
 * may be read in the same pass of curl: it must not inherit piece 0's stamp.
 * Pieces 2 and 3 arrive together while the loop is late: both get the newer
 * arrival (never the older). */
static void test_never_early(void **st)
{
	(void)st;
	struct script sc = {.npieces = 4, .delay_ms = {10, 20, 100, 1}, .requests = 1, .conns = 1};
	pthread_t th;
	struct hx_loop *l = setup(&sc, &th);
	struct got g = {.sleep_in_body_ms = 60};
	start(l, sc.port, &g, NULL);
	until_status(l, &g);
	struct ar_err e2 = {0};
	while (g.n < 2 && !g.done)
		assert_true(hx_poll(l, clock_now() + 5 * AR_NS_PER_MS, &e2) >= 0);
	sleep_ms(150); /* pieces 2 and 3 queue up */
	run_all(l);
	check_never_early(&g, &sc);
	assert_true(g.t[1] >= sc.t_write[0][1]);
	done(l, &sc, th);
}

/* Two connections at once, each loop pass late: every stamp belongs to its
 * own connection's write (a stamp of one socket never goes to the other). */
static void test_two_connections(void **st)
{
	(void)st;
	struct script sc = {.npieces = 3, .delay_ms = {10, 40, 40}, .requests = 1, .conns = 2};
	pthread_t th;
	struct hx_loop *l = setup(&sc, &th);
	struct got g1 = {0}, g2 = {0};
	start(l, sc.port, &g1, NULL);
	start(l, sc.port, &g2, NULL);
	struct ar_err e2 = {0};
	while ((!g1.done || !g2.done)) {
		assert_true(hx_poll(l, clock_now() + 5 * AR_NS_PER_MS, &e2) >= 0);
		sleep_ms(15);
	}
	check_never_early(&g1, &sc);
	check_never_early(&g2, &sc);
	assert_true(g1.conn[0] != g2.conn[0]);
	done(l, &sc, th);
}

/* Keep-alive: the second request goes on the same connection. */
static void test_reuse(void **st)
{
	(void)st;
	struct script sc = {.npieces = 2, .delay_ms = {2, 2}, .requests = 2, .conns = 1};
	pthread_t th;
	struct hx_loop *l = setup(&sc, &th);
	struct got g1 = {0}, g2 = {0};
	start(l, sc.port, &g1, NULL);
	run_all(l);
	start(l, sc.port, &g2, NULL);
	run_all(l);
	assert_false(g1.res.reused);
	assert_true(g2.res.reused);
	assert_true(g1.res.connect_ms > 0);
	assert_true(g2.res.connect_ms == 0);
	assert_int_equal(g2.n, 2);
	done(l, &sc, th);
}

/* No first body byte within the timeout: aborted and reported as such. */
static void test_first_timeout(void **st)
{
	(void)st;
	struct script sc = {.npieces = 1, .delay_ms = {400}, .requests = 1, .conns = 1};
	pthread_t th;
	struct hx_loop *l = setup(&sc, &th);
	struct got g = {0};
	struct hx_opts o = {.first_timeout_ns = 100 * AR_NS_PER_MS};
	start(l, sc.port, &g, &o);
	run_all(l);
	assert_true(g.done);
	assert_true(g.res.timed_out);
	assert_true(g.res.timed_out_first);
	assert_int_equal(g.n, 0);
	done(l, &sc, th);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_late_loop_gets_kernel_stamp),
		cmocka_unit_test(test_never_early),
		cmocka_unit_test(test_two_connections),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_first_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
