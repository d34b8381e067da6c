/* http: streaming HTTP requests on one libcurl multi event loop.
 *
 * Every request to a backend goes through here. One loop (struct hx_loop)
 * drives any number of transfers; concurrency is just more transfers. Each
 * transfer reports, with CLOCK_MONOTONIC timestamps:
 *   t_sent        the request is on the wire (CURLOPT_PREREQFUNCTION: after
 *                 connect, right before the request is written)
 *   on_status     the first response byte (status line)
 *   on_body       each body chunk as it arrives, with its arrival time
 * Arrival times are the kernel's receive stamps where it gives them
 * (SO_TIMESTAMPNS, read with a MSG_PEEK before curl reads): the time the
 * bytes reached this host, not the later time this loop got round to them.
 * Where it cannot (no stamp, bytes read after the peek, or https, whose
 * decrypted bytes cannot be matched to the peeked ones) the callback reads
 * the clock. A stamp is never earlier than the bytes' arrival.
 *   on_done       the end: curl's result, HTTP status, connect time
 * Connections are kept alive and reused across requests to the same host, so
 * connect time is measured apart from TTFT (connect_ms is 0 on reuse).
 *
 * Timeouts: a transfer with no first body byte by first_timeout_ns after it
 * was sent, or silent for stall_timeout_ns after some data, is aborted and
 * reported with timed_out set (and which one).
 *
 * Ownership: hx_loop owns its transfers; hx_start copies the URL, headers and
 * body. Callbacks must not call hx_loop_free.
 */
#ifndef AR_HTTP_H
#define AR_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "clock.h"
#include "err.h"

struct hx_loop;
struct hx_xfer;

struct hx_result {
	int curl_code;         /* CURLcode; 0 = the transfer completed */
	char curl_error[256];  /* curl's message when curl_code != 0 */
	long status;           /* HTTP status, 0 when none arrived */
	ar_ns t_start;         /* hx_start called */
	ar_ns t_sent;          /* request written (0 if never connected) */
	ar_ns t_first_byte;    /* first response byte (0 if none) */
	ar_ns t_done;
	double connect_ms;     /* TCP connect time; 0 on a reused connection */
	bool reused;           /* the connection was reused */
	bool timed_out;
	bool timed_out_first;  /* no first body byte in time (vs. a stall) */
	bool aborted;          /* stopped by a callback or hx_abort_all */
	char content_type[128];
};

struct hx_callbacks {
	/* Each returns 0 to go on, non-zero to abort the transfer. */
	int (*on_status)(void *ud, long status, ar_ns t);
	int (*on_body)(void *ud, const char *data, size_t n, ar_ns t);
	void (*on_done)(void *ud, const struct hx_result *r);
};

struct hx_opts {
	ar_ns first_timeout_ns; /* 0 = none */
	ar_ns stall_timeout_ns; /* 0 = none */
	ar_ns connect_timeout_ns;
};

int hx_loop_new(struct hx_loop **out, struct ar_err *err);
void hx_loop_free(struct hx_loop *l);
/* Starts a POST (body != NULL) or GET. headers: NULL-terminated list of
 * "Name: value" strings. Returns the transfer or NULL with err set. */
struct hx_xfer *hx_start(struct hx_loop *l, const char *url, const char *const *headers, const char *body,
			 size_t body_len, const struct hx_opts *o, const struct hx_callbacks *cb, void *ud,
			 struct ar_err *err);
/* Runs the loop until every transfer is done or `until` (monotonic ns, 0 =
 * no limit) passes. Returns the number of transfers still running, or -1. */
int hx_run(struct hx_loop *l, ar_ns until, struct ar_err *err);
/* Runs the loop until at least one transfer has finished (its on_done ran),
 * none is running, or `until` (0 = no limit) passes; an `until` already past
 * still gets one pass over the ready sockets (a poll that does not wait).
 * Returns the number of transfers that finished in this call, or -1. Callbacks may call hx_start
 * (it takes effect on the next call). The work per event does not depend on
 * the number of running transfers. */
int hx_poll(struct hx_loop *l, ar_ns until, struct ar_err *err);
int hx_running(const struct hx_loop *l);
/* Sockets being watched (open connections with a transfer or in the pool). */
int hx_loop_sockets(const struct hx_loop *l);
/* Keep-alive pool size: at least n connections (one per concurrent session);
 * never below the default of 4096. */
void hx_loop_set_max_conns(struct hx_loop *l, long n);
/* How many response pieces (header lines, body chunks) got the kernel's
 * receive stamp and how many the clock at callback time. */
void hx_loop_stamps(const struct hx_loop *l, long long *kernel, long long *clock);
/* Aborts every running transfer (their on_done reports aborted). */
void hx_abort_all(struct hx_loop *l);

/* A blocking GET/POST for small control requests (/health, /metrics,
 * /tokenize, /slots): fills body (ceiling max_bytes) and *status. */
int hx_fetch(const char *url, const char *post_body, long timeout_ms, size_t max_bytes, long *status,
	     char **body, size_t *body_len, struct ar_err *err);

#endif
