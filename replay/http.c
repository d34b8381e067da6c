#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "rxstamp.h"

struct hx_xfer {
	struct hx_loop *loop;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	struct hx_callbacks cb;
	void *ud;
	struct hx_opts opts;
	struct hx_result res;
	ar_ns t_last_data;
	bool got_body;
	bool got_status;
	bool chunked;          /* Transfer-Encoding: chunked (framing bytes between body pieces) */
	int local_port;        /* of its connection (told by curl before the request is sent) */
	bool tls;              /* https: the socket's bytes are not the body's (see arrival) */
	bool abort_requested;
	struct hx_xfer *next, *prev;
};

/* The loop drives curl's event API (curl_multi_socket_action) from one
 * epoll set: curl tells us which sockets to watch (socket_cb) and when its
 * next timeout is (timer_cb); we hand back only the sockets that are ready.
 * Unlike curl_multi_perform, which visits every transfer on each call (and
 * polls each socket), the work per event is independent of how many
 * transfers are running: what 1,000 concurrent streams need. */
struct hx_loop {
	CURLM *multi;
	int epfd;
	struct hx_xfer *xfers; /* running */
	int running;
	int finished;         /* transfers finished since the last hx_poll began */
	ar_ns curl_deadline;  /* curl's timer, 0 = none */
	ar_ns next_check;     /* no transfer deadline can pass before this (0 = check) */
	int nsocks;
	/* Kernel receive stamps (see rx_peek): while curl reads the socket rx_fd,
	 * the rx_left bytes queued there before the read arrived at rx_t or
	 * earlier. rx_t = 0: no stamp, callbacks read the clock. */
	ar_ns rx_t;
	size_t rx_left;
	int rx_fd;
	int *port_of;          /* local TCP port of each watched socket, by fd (0 = unknown) */
	int stamp_fd;          /* holds the host's receive stamping on (see hx_loop_new) */
	int n_port_of;
	long long n_kernel, n_clock; /* how the response pieces were stamped */
	/* easy handles of finished transfers, for the next ones: a new handle
	 * costs allocations and a 64 KiB receive buffer per request */
	CURL **idle;
	int n_idle, cap_idle;
	char peek[65536];
};

static int global_inited;

/* Which connection a socket is: its local port, matched with the one curl
 * gives each transfer (prereq_cb), so that a receive stamp of one socket is
 * never given to a transfer on another. */
static void note_port(struct hx_loop *l, int fd)
{
	if (fd < 0)
		return;
	if (fd >= l->n_port_of) {
		int n = l->n_port_of ? l->n_port_of : 64;
		while (n <= fd)
			n *= 2;
		int *p = realloc(l->port_of, (size_t)n * sizeof *p);
		if (!p)
			return; /* no port known: its data gets clock stamps */
		memset(p + l->n_port_of, 0, (size_t)(n - l->n_port_of) * sizeof *p);
		l->port_of = p;
		l->n_port_of = n;
	}
	struct sockaddr_storage sa;
	socklen_t sl = sizeof sa;
	int port = 0;
	if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
		if (sa.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
		else if (sa.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
	}
	l->port_of[fd] = port;
}

/* curl: watch (or stop watching) socket s. sockp is our per-socket mark:
 * non-NULL once the socket is in the epoll set. */
static int socket_cb(CURL *e, curl_socket_t s, int what, void *ud, void *sockp)
{
	struct hx_loop *l = ud;
	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (sockp) {
			epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
			curl_multi_assign(l->multi, s, NULL);
			l->nsocks--;
		}
		return 0;
	}
	struct epoll_event ev;
	memset(&ev, 0, sizeof ev);
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
	ev.data.fd = s;
	if (sockp) {
		if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev) < 0 && errno == ENOENT)
			epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev);
	} else {
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev) < 0 && errno == EEXIST)
			epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev);
		curl_multi_assign(l->multi, s, (void *)1);
		l->nsocks++;
		note_port(l, s);
	}
	return 0;
}

/* Every connection asks the kernel to stamp what it receives (the time the
 * data reached this host's network stack, CLOCK_REALTIME). A kernel that
 * refuses leaves the callbacks reading the clock, as before. */
static int sockopt_cb(void *ud, curl_socket_t fd, curlsocktype purpose)
{
	(void)ud;
	if (purpose == CURLSOCKTYPE_IPCXN) {
		int on = 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
	}
	return CURL_SOCKOPT_OK;
}

/* Before curl reads a readable socket: how many bytes wait on it and when
 * the newest of them arrived, from a MSG_PEEK of the whole queue (which
 * consumes nothing). A timestamp taken in a callback is late by however long
 * this loop was busy elsewhere (with 1,000 streams, most of the error); the
 * kernel's is not. The queue's newest arrival bounds every byte in it from
 * above, so a stamp is never early; it is exact when one write of the server
 * waits, which is the case whenever the loop keeps up with the token rate. */
static void rx_peek(struct hx_loop *l, int fd)
{
	struct iovec iov;
	union rxstamp_ctl ctl;
	struct msghdr m;
	rxstamp_prepare(&m, &iov, l->peek, sizeof l->peek, &ctl);
	l->rx_t = 0;
	/* Only a queue with bytes in it is peeked: a peek of an empty one would
	 * take the socket's pending error (a reset) and curl would then read a
	 * clean end of stream instead. With bytes queued a read never reports
	 * the error. */
	int queued = 0;
	if (ioctl(fd, SIOCINQ, &queued) < 0 || queued <= 0)
		return;
	ssize_t n = recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0)
		return;
	ar_ns t = rxstamp_of(&m);
	if (!t)
		return;
	l->rx_t = t;
	l->rx_left = (size_t)n;
	l->rx_fd = fd;
}

/* The arrival time of raw_len more bytes that curl read from x's socket:
 * the kernel's stamp while they can be among the bytes peeked, else now.
 * raw_len must not undercount what curl read to deliver them (framing
 * included), or a byte read after the peek could get the earlier stamp. */
static ar_ns arrival(struct hx_xfer *x, size_t raw_len)
{
	ar_ns now = clock_now();
	struct hx_loop *l = x->loop;
	if (l->rx_t && !x->tls) {
		int port = l->rx_fd < l->n_port_of ? l->port_of[l->rx_fd] : 0;
		if (raw_len <= l->rx_left && port && port == x->local_port && l->rx_t <= now) {
			l->rx_left -= raw_len;
			l->n_kernel++;
			return l->rx_t;
		}
		l->rx_t = 0; /* past the peeked bytes: the rest of this read is newer */
	}
	l->n_clock++;
	return now;
}

void hx_loop_stamps(const struct hx_loop *l, long long *kernel, long long *clock)
{
	*kernel = l->n_kernel;
	*clock = l->n_clock;
}

static int timer_cb(CURLM *m, long timeout_ms, void *ud)
{
	struct hx_loop *l = ud;
	(void)m;
	l->curl_deadline = timeout_ms < 0 ? 0 : clock_now() + (ar_ns)timeout_ms * AR_NS_PER_MS;
	if (timeout_ms == 0)
		l->curl_deadline = 1; /* now: "call socket_action(TIMEOUT) as soon as possible" */
	return 0;
}

int hx_loop_new(struct hx_loop **out, struct ar_err *err)
{
	*out = NULL;
	if (!global_inited) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return ar_err_set(err, AR_EINTERNAL, "libcurl failed to initialise");
		global_inited = 1;
	}
	struct hx_loop *l = calloc(1, sizeof *l);
	if (!l || !(l->multi = curl_multi_init())) {
		free(l);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	/* The kernel switches receive stamping on a moment after the first socket
	 * asks for it (and off a moment after the last one goes): a socket that
	 * asks now and lives as long as the loop means the first response is
	 * stamped too */
	l->stamp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (l->stamp_fd >= 0) {
		int on = 1;
		(void)setsockopt(l->stamp_fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
	}
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int e = errno;
		curl_multi_cleanup(l->multi);
		if (l->stamp_fd >= 0)
			close(l->stamp_fd);
		free(l);
		return ar_err_set(err, AR_EIO, "epoll_create1: %s", strerror(e));
	}
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
	/* one connection per concurrent session: no per-host or total cap below
	 * what hx_loop_set_max_conns asks for, and a keep-alive pool as big */
	curl_multi_setopt(l->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
	curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, 4096L);
	*out = l;
	return 0;
}

void hx_loop_set_max_conns(struct hx_loop *l, long n)
{
	curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, n > 4096 ? n : 4096L);
}

#define HX_MAX_IDLE 65536

static void xfer_free(struct hx_xfer *x)
{
	if (!x)
		return;
	if (x->easy) {
		struct hx_loop *l = x->loop;
		curl_multi_remove_handle(l->multi, x->easy);
		if (l->n_idle == l->cap_idle && l->cap_idle < HX_MAX_IDLE) {
			int cap = l->cap_idle ? 2 * l->cap_idle : 64;
			CURL **p = realloc(l->idle, (size_t)cap * sizeof *p);
			if (p) {
				l->idle = p;
				l->cap_idle = cap;
			}
		}
		if (l->n_idle < l->cap_idle)
			l->idle[l->n_idle++] = x->easy;
		else
			curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->headers);
	free(x->body);
	free(x);
}

static void unlink_xfer(struct hx_loop *l, struct hx_xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		l->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->next = x->prev = NULL;
	l->running--;
}

void hx_loop_free(struct hx_loop *l)
{
	if (!l)
		return;
	while (l->xfers) {
		struct hx_xfer *x = l->xfers;
		unlink_xfer(l, x);
		xfer_free(x);
	}
	curl_multi_cleanup(l->multi);
	for (int i = 0; i < l->n_idle; i++)
		curl_easy_cleanup(l->idle[i]);
	free(l->idle);
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->stamp_fd >= 0)
		close(l->stamp_fd);
	free(l->port_of);
	free(l);
}

int hx_running(const struct hx_loop *l) { return l->running; }

int hx_loop_sockets(const struct hx_loop *l) { return l->nsocks; }

static int prereq_cb(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
		     int conn_local_port)
{
	struct hx_xfer *x = ud;
	x->local_port = conn_local_port;
	x->res.t_sent = clock_now();
	return CURL_PREREQFUNC_OK;
}

static size_t header_cb(char *data, size_t size, size_t n, void *ud)
{
	struct hx_xfer *x = ud;
	size_t len = size * n;
	ar_ns t = arrival(x, len); /* header lines come as read */
	if (!x->res.t_first_byte)
		x->res.t_first_byte = t;
	/* status lines reset the state: a 100 Continue or a redirect comes first */
	if (len > 5 && !strncmp(data, "HTTP/", 5)) {
		const char *sp = memchr(data, ' ', len);
		x->res.status = sp ? strtol(sp + 1, NULL, 10) : 0;
		x->res.content_type[0] = '\0';
		x->got_status = false;
		x->chunked = false;
	} else if (len > 18 && !strncasecmp(data, "transfer-encoding:", 18)) {
		for (size_t i = 18; i + 7 <= len; i++)
			if (!strncasecmp(data + i, "chunked", 7))
				x->chunked = true;
	} else if (len > 13 && !strncasecmp(data, "content-type:", 13)) {
		size_t i = 13;
		while (i < len && (data[i] == ' ' || data[i] == '\t'))
			i++;
		size_t m = len - i;
		while (m && (data[i + m - 1] == '\r' || data[i + m - 1] == '\n'))
			m--;
		if (m >= sizeof x->res.content_type)
			m = sizeof x->res.content_type - 1;
		memcpy(x->res.content_type, data + i, m);
		x->res.content_type[m] = '\0';
	} else if (len <= 2 && x->res.status >= 200 && !x->got_status) {
		/* end of the final header block */
		x->got_status = true;
		if (x->cb.on_status && x->cb.on_status(x->ud, x->res.status, t)) {
			x->abort_requested = true;
			return 0;
		}
	}
	return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud)
{
	struct hx_xfer *x = ud;
	size_t len = size * n;
	/* first: the arrival time of these bytes. A chunked body came with at
	 * most hex digits + CRLF + CRLF of framing per piece (more than that, as
	 * a chunk may come in several pieces: never less, so never early) */
	size_t raw = len;
	if (x->chunked) {
		raw += 4;
		for (size_t v = len; v; v >>= 4)
			raw++;
	}
	ar_ns t = arrival(x, raw);
	x->t_last_data = t;
	if (!x->got_body && x->opts.stall_timeout_ns > 0) {
		/* from the first-token deadline to the (maybe earlier) stall one */
		struct hx_loop *l = x->loop;
		if (l->next_check && t + x->opts.stall_timeout_ns < l->next_check)
			l->next_check = t + x->opts.stall_timeout_ns;
	}
	x->got_body = true;
	if (x->cb.on_body && x->cb.on_body(x->ud, data, len, t)) {
		x->abort_requested = true;
		return 0; /* makes curl stop with CURLE_WRITE_ERROR */
	}
	return len;
}

struct hx_xfer *hx_start(struct hx_loop *l, const char *url, const char *const *headers, const char *body,
			 size_t body_len, const struct hx_opts *o, const struct hx_callbacks *cb, void *ud,
			 struct ar_err *err)
{
	struct hx_xfer *x = calloc(1, sizeof *x);
	if (!x) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		return NULL;
	}
	x->loop = l;
	x->cb = *cb;
	x->ud = ud;
	/* TLS: what curl delivers is decrypted records, whose sizes do not
	 * match the peeked bytes, and the TLS library may hold bytes read
	 * earlier; the byte budget cannot prove a stamp is not early, so these
	 * transfers read the clock */
	x->tls = !strncasecmp(url, "https:", 6);
	if (o)
		x->opts = *o;
	/* a handle of an earlier transfer has every option below set already;
	 * those that differ per request are set again */
	x->easy = l->n_idle ? l->idle[--l->n_idle] : curl_easy_init();
	if (!x->easy)
		goto oom;
	for (const char *const *h = headers; h && *h; h++) {
		struct curl_slist *nl = curl_slist_append(x->headers, *h);
		if (!nl)
			goto oom;
		x->headers = nl;
	}
	/* no "Expect: 100-continue" round trip inside our TTFT */
	struct curl_slist *nl = curl_slist_append(x->headers, "Expect:");
	if (!nl)
		goto oom;
	x->headers = nl;
	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
	curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
	/* never let curl decode or buffer: we want bytes as they arrive */
	curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 65536L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "agentreplay/" AR_VERSION);
	/* 0: curl's default */
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 x->opts.connect_timeout_ns > 0 ? (long)(x->opts.connect_timeout_ns / AR_NS_PER_MS) : 0L);
	if (body) {
		if (!(x->body = malloc(body_len ? body_len : 1)))
			goto oom;
		memcpy(x->body, body, body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	x->res.t_start = clock_now();
	CURLMcode mc = curl_multi_add_handle(l->multi, e);
	if (mc != CURLM_OK) {
		ar_err_set(err, AR_EINTERNAL, "cannot start a request to %s: %s", url, curl_multi_strerror(mc));
		xfer_free(x);
		return NULL;
	}
	x->next = l->xfers;
	if (l->xfers)
		l->xfers->prev = x;
	l->xfers = x;
	l->running++;
	/* a new first-token deadline may come before the ones already known */
	if (x->opts.first_timeout_ns > 0 && l->next_check &&
	    x->res.t_start + x->opts.first_timeout_ns < l->next_check)
		l->next_check = x->res.t_start + x->opts.first_timeout_ns;
	return x;
oom:
	xfer_free(x);
	ar_err_set(err, AR_ENOMEM, "out of memory");
	return NULL;
}

static void finish(struct hx_loop *l, struct hx_xfer *x, CURLcode code)
{
	struct hx_result *r = &x->res;
	r->t_done = clock_now();
	r->curl_code = (int)code;
	if (code != CURLE_OK && !r->curl_error[0])
		snprintf(r->curl_error, sizeof r->curl_error, "%s", curl_easy_strerror(code));
	if (x->abort_requested && !r->timed_out)
		r->aborted = true;
	curl_off_t connect_us = 0, num = 0;
	curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
	curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &num);
	r->reused = num == 0;
	r->connect_ms = r->reused ? 0 : (double)connect_us / 1000.0;
	long status = 0;
	if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status)
		r->status = status;
	unlink_xfer(l, x);
	l->finished++;
	if (x->cb.on_done)
		x->cb.on_done(x->ud, r);
	xfer_free(x);
}

static void drain(struct hx_loop *l)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(l->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct hx_xfer *x = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x)
			finish(l, x, m->data.result);
	}
}

/* Aborts transfers past their deadlines and returns the nearest one. A scan
 * visits every transfer, so it runs only when the earliest deadline found
 * by the last scan may have passed: deadlines only move later (data
 * arrived) and hx_start lowers next_check for a new transfer, so the
 * earliest known one is a lower bound. Amortised, no work per event. */
static ar_ns check_deadlines(struct hx_loop *l, ar_ns now)
{
	if (l->next_check && now < l->next_check)
		return l->next_check;
	ar_ns next = 0;
	struct hx_xfer *x = l->xfers;
	while (x) {
		struct hx_xfer *nx = x->next;
		ar_ns dl = 0;
		bool first = false;
		if (!x->got_body && x->opts.first_timeout_ns > 0) {
			ar_ns base = x->res.t_sent ? x->res.t_sent : x->res.t_start;
			dl = base + x->opts.first_timeout_ns;
			first = true;
		} else if (x->got_body && x->opts.stall_timeout_ns > 0) {
			dl = x->t_last_data + x->opts.stall_timeout_ns;
		}
		if (dl && now >= dl) {
			x->res.timed_out = true;
			x->res.timed_out_first = first;
			snprintf(x->res.curl_error, sizeof x->res.curl_error, "%s",
				 first ? "no first token before the TTFT timeout" : "stream stalled past the stall timeout");
			finish(l, x, CURLE_OPERATION_TIMEDOUT);
		} else if (dl && (!next || dl < next)) {
			next = dl;
		}
		x = nx;
	}
	l->next_check = next;
	return next;
}

#define HX_MAX_EVENTS 256

int hx_poll(struct hx_loop *l, ar_ns until, struct ar_err *err)
{
	l->finished = 0;
	bool polled = false; /* one pass over the sockets even when `until` has passed */
	for (;;) {
		int still = 0;
		CURLMcode mc;
		ar_ns now = clock_now();
		if (l->curl_deadline && now >= l->curl_deadline) {
			l->curl_deadline = 0;
			mc = curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &still);
			if (mc != CURLM_OK)
				return ar_err_set(err, AR_EINTERNAL, "libcurl: %s", curl_multi_strerror(mc));
			drain(l);
			now = clock_now();
		}
		ar_ns next = l->running ? check_deadlines(l, now) : 0;
		if (l->finished || !l->running)
			return l->finished;
		if (until && now >= until && polled)
			return 0;
		ar_ns wait = 1000 * AR_NS_PER_MS;
		if (until && until - now < wait)
			wait = until > now ? until - now : 0;
		if (next && next - now < wait)
			wait = next > now ? next - now : 0;
		if (l->curl_deadline)
			wait = l->curl_deadline > now ? (l->curl_deadline - now < wait ? l->curl_deadline - now : wait) : 0;
		int ms = (int)((wait + AR_NS_PER_MS - 1) / AR_NS_PER_MS);
		struct epoll_event evs[HX_MAX_EVENTS];
		int n = epoll_wait(l->epfd, evs, HX_MAX_EVENTS, ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ar_err_set(err, AR_EIO, "epoll_wait: %s", strerror(errno));
		}
		polled = true;
		for (int i = 0; i < n; i++) {
			if (evs[i].events & EPOLLIN)
				rx_peek(l, evs[i].data.fd);
			int mask = (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP) ? CURL_CSELECT_IN : 0) |
				   (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
				   (evs[i].events & EPOLLERR ? CURL_CSELECT_ERR : 0);
			mc = curl_multi_socket_action(l->multi, evs[i].data.fd, mask, &still);
			l->rx_t = 0;
			if (mc != CURLM_OK)
				return ar_err_set(err, AR_EINTERNAL, "libcurl: %s", curl_multi_strerror(mc));
			drain(l);
		}
	}
}

int hx_run(struct hx_loop *l, ar_ns until, struct ar_err *err)
{
	while (l->running) {
		if (hx_poll(l, until, err) < 0)
			return -1;
		if (until && clock_now() >= until)
			break;
	}
	return l->running;
}

void hx_abort_all(struct hx_loop *l)
{
	while (l->xfers) {
		struct hx_xfer *x = l->xfers;
		x->abort_requested = true;
		snprintf(x->res.curl_error, sizeof x->res.curl_error, "%s", "aborted");
		finish(l, x, CURLE_ABORTED_BY_CALLBACK);
	}
}

/* ---- small blocking requests ------------------------------------------- */

struct fetch_ctx {
	struct buf b;
	bool too_big;
};

static size_t fetch_write(char *data, size_t size, size_t n, void *ud)
{
	struct fetch_ctx *c = ud;
	if (buf_append(&c->b, data, size * n) < 0) {
		c->too_big = true;
		return 0;
	}
	return size * n;
}

int hx_fetch(const char *url, const char *post_body, long timeout_ms, size_t max_bytes, long *status,
	     char **body, size_t *body_len, struct ar_err *err)
{
	*status = 0;
	*body = NULL;
	*body_len = 0;
	if (!global_inited) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		global_inited = 1;
	}
	CURL *e = curl_easy_init();
	if (!e)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	struct fetch_ctx c;
	buf_init(&c.b, max_bytes);
	c.too_big = false;
	struct curl_slist *h = NULL;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "agentreplay/" AR_VERSION);
	if (post_body) {
		h = curl_slist_append(NULL, "Content-Type: application/json");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, post_body);
	}
	CURLcode rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	int ret = 0;
	if (c.too_big)
		ret = ar_err_set(err, AR_ELIMIT, "%s: response larger than %zu bytes", url, max_bytes);
	else if (rc != CURLE_OK)
		ret = ar_err_set(err, AR_ENET, "%s: %s", url, curl_easy_strerror(rc));
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	if (ret == 0) {
		*body_len = c.b.len;
		*body = buf_detach(&c.b);
	}
	buf_free(&c.b);
	return ret;
}
