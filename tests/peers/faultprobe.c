/* ar-faultprobe: a load and timing client for ar-faultsrv.
 *
 * Opens up to --conns connections at once (one request each, Connection:
 * close, all driven by one poll(2) loop so the client adds no thread jitter),
 * sends --requests streaming requests in total and, per request, takes
 * CLOCK_MONOTONIC stamps: request fully written, first response byte, first
 * and last token (a token is one occurrence of --marker in the body, by
 * default `"content":"`, which a role-only chunk with content null does not
 * match), and whether the terminator (--done, default `[DONE]`) arrived.
 *
 * It prints TTFB/TTFT/ITL percentiles and the TTFT error against
 * --expect-ttft-ms. Exit status: 0 when every request got HTTP 200, the
 * terminator and (with --expect-tokens) that many tokens; 1 otherwise; 2 on
 * usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "units.h"

struct probe_cfg {
	uint16_t port;
	const char *path;
	const char *marker;
	const char *done;
	uint64_t conns, requests, max_tokens, body_bytes;
	double expect_ttft_ms;
	bool have_expect;
	int64_t expect_tokens; /* -1 = do not check */
	double timeout_s;
	bool json;
	bool trace;     /* one line per request with raw CLOCK_MONOTONIC stamps */
	bool keepalive; /* requests follow each other on the same connections */
};

struct probe_conn {
	int fd;
	uint64_t idx;      /* request number, 0-based */
	struct buf req;
	size_t req_off;
	ar_ns t_start, t_sent, t_first_byte, t_first_token, t_last_token;
	ar_ns prev_token;
	uint64_t tokens;
	int status;
	bool done_seen;
	bool end_seen;     /* the chunked body's last chunk */
	bool header_done;
	char tail[128];    /* carry-over so a marker split across reads is found */
	size_t tail_len;
	size_t hdr_len;
	char hdr[1024];
};

struct probe_result {
	double ttfb_ms, ttft_ms;
	uint64_t tokens;
	int status;
	bool done_seen, failed;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(const double *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ar-faultprobe --port N [--path P] [--conns N] [--requests M]\n"
		   "                     [--max-tokens K] [--body-bytes B] [--expect-ttft-ms X]\n"
		   "                     [--expect-tokens K] [--marker S] [--done S] [--timeout-s S]\n"
		   "                     [--json] [--trace] [--keepalive]\n");
}

static int parse_args(int argc, char **argv, struct probe_cfg *c)
{
	memset(c, 0, sizeof *c);
	c->path = "/v1/chat/completions";
	c->marker = "\"content\":\"";
	c->done = "[DONE]";
	c->conns = 1;
	c->requests = 1;
	c->max_tokens = 8;
	c->body_bytes = 64;
	c->expect_tokens = -1;
	c->timeout_s = 60;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		struct ar_err e = {0};
		uint64_t v;
		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(a, "--json") == 0) {
			c->json = true;
			continue;
		}
		if (strcmp(a, "--trace") == 0) {
			c->trace = true;
			continue;
		}
		if (strcmp(a, "--keepalive") == 0) {
			c->keepalive = true;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "ar-faultprobe: missing value for '%s'\n", a);
			return -1;
		}
		const char *val = argv[++i];
		int bad = 0;
		if (strcmp(a, "--port") == 0) {
			bad = units_parse_count(val, &v, &e) < 0 || v == 0 || v > 65535;
			c->port = (uint16_t)v;
		} else if (strcmp(a, "--path") == 0) {
			c->path = val;
		} else if (strcmp(a, "--marker") == 0) {
			c->marker = val;
			bad = strlen(val) == 0 || strlen(val) >= 100;
		} else if (strcmp(a, "--done") == 0) {
			c->done = val;
			bad = strlen(val) >= 100;
		} else if (strcmp(a, "--conns") == 0) {
			bad = units_parse_count(val, &c->conns, &e) < 0 || c->conns == 0 || c->conns > 100000;
		} else if (strcmp(a, "--requests") == 0) {
			bad = units_parse_count(val, &c->requests, &e) < 0 || c->requests == 0;
		} else if (strcmp(a, "--max-tokens") == 0) {
			bad = units_parse_count(val, &c->max_tokens, &e) < 0;
		} else if (strcmp(a, "--body-bytes") == 0) {
			bad = units_parse_bytes(val, &c->body_bytes, &e) < 0 || c->body_bytes > (64u << 20);
		} else if (strcmp(a, "--expect-tokens") == 0) {
			bad = units_parse_count(val, &v, &e) < 0 || v > INT64_MAX;
			c->expect_tokens = (int64_t)v;
		} else if (strcmp(a, "--expect-ttft-ms") == 0) {
			bad = units_parse_real(val, &c->expect_ttft_ms, &e) < 0;
			c->have_expect = true;
		} else if (strcmp(a, "--timeout-s") == 0) {
			bad = units_parse_real(val, &c->timeout_s, &e) < 0 || c->timeout_s <= 0;
		} else {
			fprintf(stderr, "ar-faultprobe: unknown option '%s'\n", a);
			return -1;
		}
		if (bad) {
			fprintf(stderr, "ar-faultprobe: bad value '%s' for %s\n", val, a);
			return -1;
		}
	}
	if (!c->port) {
		fprintf(stderr, "ar-faultprobe: --port is required\n");
		return -1;
	}
	if (c->conns > c->requests)
		c->conns = c->requests;
	return 0;
}

static int build_request(const struct probe_cfg *c, uint64_t idx, struct buf *b)
{
	struct buf body = BUF_INIT;
	int r = buf_printf(&body,
			   "{\"model\":\"probe\",\"stream\":true,\"max_tokens\":%llu,"
			   "\"n_predict\":%llu,\"options\":{\"num_predict\":%llu},"
			   "\"messages\":[{\"role\":\"user\",\"content\":\"probe %llu ",
			   (unsigned long long)c->max_tokens, (unsigned long long)c->max_tokens,
			   (unsigned long long)c->max_tokens, (unsigned long long)idx);
	for (uint64_t i = 0; i < c->body_bytes && r == 0; i++)
		r |= buf_putc(&body, (char)('a' + (i * 7 + idx) % 26));
	r |= buf_puts(&body, "\"}]}");
	r |= buf_printf(b,
			"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
			"Accept: text/event-stream\r\nConnection: %s\r\nContent-Length: %zu\r\n\r\n",
			c->path, (unsigned)c->port, c->keepalive ? "keep-alive" : "close", body.len);
	r |= buf_append(b, body.data, body.len);
	buf_free(&body);
	return r;
}

/* Resets `pc` for request `idx`, keeping its descriptor. */
static int request_start(const struct probe_cfg *c, struct probe_conn *pc, uint64_t idx)
{
	int fd = pc->fd;
	buf_free(&pc->req);
	memset(pc, 0, sizeof *pc);
	pc->fd = fd;
	pc->idx = idx;
	pc->t_start = clock_now();
	return build_request(c, idx, &pc->req);
}

static int conn_open(const struct probe_cfg *c, struct probe_conn *pc, uint64_t idx)
{
	pc->fd = -1;
	if (request_start(c, pc, idx) < 0)
		return -1;
	pc->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (pc->fd < 0)
		return -1;
	int one = 1;
	setsockopt(pc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(c->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(pc->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
		return -1;
	return 0;
}

/* Scans newly read body bytes for markers and the terminator. The last
 * bytes of each read are carried over so a marker split across reads is
 * found; a match counts only when it reaches into the new bytes. */
static void scan(const struct probe_cfg *c, struct probe_conn *pc, const char *data, size_t n,
		 ar_ns now)
{
	static _Thread_local char win[128 + 65536];
	size_t ml = strlen(c->marker), dl = strlen(c->done);
	size_t keep = (ml > dl ? ml : dl) > 7 ? (ml > dl ? ml : dl) - 1 : 6;
	while (n) {
		size_t tl = pc->tail_len;
		size_t take = n < 65536 ? n : 65536;
		memcpy(win, pc->tail, tl);
		memcpy(win + tl, data, take);
		data += take;
		n -= take;
		size_t wl = tl + take;
		for (size_t i = 0; i + ml <= wl; i++) {
			if (i + ml > tl && memcmp(win + i, c->marker, ml) == 0) {
				if (!pc->t_first_token)
					pc->t_first_token = now;
				pc->t_last_token = now;
				pc->tokens++;
			}
		}
		for (size_t i = 0; dl && !pc->done_seen && i + dl <= wl; i++)
			if (i + dl > tl && memcmp(win + i, c->done, dl) == 0)
				pc->done_seen = true;
		static const char last_chunk[] = "\r\n0\r\n\r\n";
		for (size_t i = 0; !pc->end_seen && i + sizeof last_chunk - 1 <= wl; i++)
			if (memcmp(win + i, last_chunk, sizeof last_chunk - 1) == 0)
				pc->end_seen = true;
		size_t k = keep < wl ? keep : wl;
		memcpy(pc->tail, win + wl - k, k);
		pc->tail_len = k;
	}
}

static void on_bytes(const struct probe_cfg *c, struct probe_conn *pc, const char *data, size_t n,
		     ar_ns now)
{
	if (!pc->t_first_byte)
		pc->t_first_byte = now;
	if (!pc->header_done) {
		size_t room = sizeof pc->hdr - 1 - pc->hdr_len;
		size_t take = n < room ? n : room;
		memcpy(pc->hdr + pc->hdr_len, data, take);
		pc->hdr_len += take;
		pc->hdr[pc->hdr_len] = '\0';
		char *end = strstr(pc->hdr, "\r\n\r\n");
		if (!end) {
			if (pc->hdr_len == sizeof pc->hdr - 1)
				pc->header_done = true; /* give up on headers */
			return;
		}
		pc->header_done = true;
		sscanf(pc->hdr, "HTTP/1.%*d %d", &pc->status);
		size_t used = (size_t)(end + 4 - pc->hdr) - (pc->hdr_len - take);
		scan(c, pc, data + used, n - used, now);
		return;
	}
	scan(c, pc, data, n, now);
}

int main(int argc, char **argv)
{
	struct probe_cfg c;
	if (parse_args(argc, argv, &c) < 0) {
		usage(stderr);
		return 2;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct probe_conn *pcs = calloc(c.conns, sizeof *pcs);
	struct pollfd *pfd = calloc(c.conns, sizeof *pfd);
	struct probe_result *res = calloc(c.requests, sizeof *res);
	double *v1 = calloc(c.requests, sizeof *v1), *v2 = calloc(c.requests, sizeof *v2);
	double *itl = NULL;
	size_t n_itl = 0, cap_itl = 0;
	if (!pcs || !pfd || !res || !v1 || !v2) {
		fprintf(stderr, "ar-faultprobe: out of memory\n");
		return 1;
	}
	uint64_t next = 0, finished = 0;
	for (uint64_t i = 0; i < c.conns; i++) {
		pcs[i].fd = -1;
		if (conn_open(&c, &pcs[i], next++) < 0) {
			fprintf(stderr, "ar-faultprobe: connect: %s\n", strerror(errno));
			return 1;
		}
	}
	ar_ns deadline = clock_now() + (ar_ns)(c.timeout_s * 1e9);
	char *rbuf = malloc(1 << 16);
	while (finished < c.requests) {
		size_t np = 0;
		for (uint64_t i = 0; i < c.conns; i++) {
			if (pcs[i].fd < 0)
				continue;
			pfd[np].fd = pcs[i].fd;
			pfd[np].events = pcs[i].req_off < pcs[i].req.len ? POLLOUT : POLLIN;
			pfd[np].revents = 0;
			np++;
		}
		ar_ns now = clock_now();
		if (now > deadline) {
			fprintf(stderr, "ar-faultprobe: timeout with %llu request(s) open\n",
				(unsigned long long)(c.requests - finished));
			break;
		}
		int timeout_ms = (int)((deadline - now) / AR_NS_PER_MS) + 1;
		if (poll(pfd, np, timeout_ms) < 0 && errno != EINTR)
			break;
		size_t pi = 0;
		for (uint64_t i = 0; i < c.conns; i++) {
			struct probe_conn *pc = &pcs[i];
			if (pc->fd < 0)
				continue;
			short re = pfd[pi++].revents;
			if (!re)
				continue;
			bool closed = false;
			if (pc->req_off < pc->req.len) {
				ssize_t w = send(pc->fd, pc->req.data + pc->req_off, pc->req.len - pc->req_off,
						 MSG_NOSIGNAL);
				if (w > 0) {
					pc->req_off += (size_t)w;
					if (pc->req_off == pc->req.len)
						pc->t_sent = clock_now();
				} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
					closed = true;
				}
			} else {
				for (;;) {
					ssize_t r = recv(pc->fd, rbuf, 1 << 16, 0);
					ar_ns t = clock_now();
					if (r > 0) {
						uint64_t before = pc->tokens;
						ar_ns prev = pc->t_last_token;
						on_bytes(&c, pc, rbuf, (size_t)r, t);
						if (pc->tokens > before && before > 0 && prev) {
							if (n_itl == cap_itl) {
								cap_itl = cap_itl ? cap_itl * 2 : 1024;
								itl = realloc(itl, cap_itl * sizeof *itl);
							}
							if (itl)
								itl[n_itl++] = clock_ms(t - prev);
						}
						continue;
					}
					if (r == 0 || (errno != EAGAIN && errno != EINTR))
						closed = true;
					break;
				}
			}
			if (!closed && !(c.keepalive && pc->end_seen))
				continue;
			struct probe_result *pr = &res[pc->idx];
			pr->status = pc->status;
			pr->tokens = pc->tokens;
			pr->done_seen = pc->done_seen;
			pr->ttfb_ms = pc->t_first_byte ? clock_ms(pc->t_first_byte - pc->t_sent) : -1;
			pr->ttft_ms = pc->t_first_token ? clock_ms(pc->t_first_token - pc->t_sent) : -1;
			pr->failed = pc->status != 200 || (c.done[0] && !pc->done_seen) || !pc->t_first_token ||
				     (c.expect_tokens >= 0 && (int64_t)pc->tokens != c.expect_tokens);
			if (c.trace)
				fprintf(stderr,
					"trace req=%llu status=%d tokens=%llu done=%d t_start=%lld t_sent=%lld "
					"t_first_byte=%lld t_first_token=%lld t_last_token=%lld\n",
					(unsigned long long)pc->idx, pc->status, (unsigned long long)pc->tokens,
					pc->done_seen, (long long)pc->t_start, (long long)pc->t_sent,
					(long long)pc->t_first_byte, (long long)pc->t_first_token,
					(long long)pc->t_last_token);
			finished++;
			if (!closed && next < c.requests) {
				/* keep-alive: the next request on the same connection */
				if (request_start(&c, pc, next++) == 0)
					continue;
				closed = true;
			}
			close(pc->fd);
			pc->fd = -1;
			buf_free(&pc->req);
			if (next < c.requests && conn_open(&c, pc, next++) < 0) {
				fprintf(stderr, "ar-faultprobe: connect: %s\n", strerror(errno));
				if (pc->fd >= 0)
					close(pc->fd);
				pc->fd = -1;
			}
		}
	}
	free(rbuf);

	size_t nok = 0, nfail = 0, nt = 0;
	for (uint64_t i = 0; i < c.requests; i++) {
		if (i >= finished && !res[i].status && !res[i].tokens) {
			nfail++;
			continue;
		}
		if (res[i].failed)
			nfail++;
		else
			nok++;
		if (res[i].ttft_ms >= 0) {
			v1[nt] = res[i].ttft_ms;
			v2[nt] = res[i].ttfb_ms;
			nt++;
		}
	}
	nfail = c.requests - nok;
	qsort(v1, nt, sizeof *v1, cmp_double);
	qsort(v2, nt, sizeof *v2, cmp_double);
	if (itl)
		qsort(itl, n_itl, sizeof *itl, cmp_double);
	double *err = calloc(nt ? nt : 1, sizeof *err);
	for (size_t i = 0; i < nt; i++)
		err[i] = v1[i] - c.expect_ttft_ms;
	/* |error| percentiles */
	for (size_t i = 0; i < nt; i++)
		err[i] = err[i] < 0 ? -err[i] : err[i];
	qsort(err, nt, sizeof *err, cmp_double);
	if (c.json) {
		printf("{\"requests\":%llu,\"ok\":%zu,\"failed\":%zu,\"conns\":%llu,"
		       "\"ttft_ms\":{\"min\":%.3f,\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
		       "\"ttfb_ms\":{\"p50\":%.3f,\"p99\":%.3f},"
		       "\"itl_ms\":{\"n\":%zu,\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}",
		       (unsigned long long)c.requests, nok, nfail, (unsigned long long)c.conns,
		       pct(v1, nt, 0), pct(v1, nt, 50), pct(v1, nt, 99), pct(v1, nt, 100), pct(v2, nt, 50),
		       pct(v2, nt, 99), n_itl, pct(itl, n_itl, 50), pct(itl, n_itl, 99),
		       pct(itl, n_itl, 100));
		if (c.have_expect)
			printf(",\"ttft_abs_err_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}",
			       pct(err, nt, 50), pct(err, nt, 99), pct(err, nt, 100));
		printf("}\n");
	} else {
		printf("requests %llu  ok %zu  failed %zu  (concurrency %llu)\n",
		       (unsigned long long)c.requests, nok, nfail, (unsigned long long)c.conns);
		printf("ttft ms  min %.3f  p50 %.3f  p99 %.3f  max %.3f\n", pct(v1, nt, 0),
		       pct(v1, nt, 50), pct(v1, nt, 99), pct(v1, nt, 100));
		printf("ttfb ms  p50 %.3f  p99 %.3f\n", pct(v2, nt, 50), pct(v2, nt, 99));
		printf("itl ms   n %zu  p50 %.3f  p99 %.3f  max %.3f\n", n_itl, pct(itl, n_itl, 50),
		       pct(itl, n_itl, 99), pct(itl, n_itl, 100));
		if (c.have_expect)
			printf("|ttft - %.3f| ms  p50 %.3f  p99 %.3f  max %.3f\n", c.expect_ttft_ms,
			       pct(err, nt, 50), pct(err, nt, 99), pct(err, nt, 100));
	}
	free(err);
	free(itl);
	free(v1);
	free(v2);
	free(res);
	free(pfd);
	for (uint64_t i = 0; i < c.conns; i++) {
		if (pcs[i].fd >= 0)
			close(pcs[i].fd);
		buf_free(&pcs[i].req);
	}
	free(pcs);
	if (fclose(stdout) != 0)
		return 1;
	return nfail ? 1 : 0;
}
