/* record: see record.h.
 *
 * Threads: libmicrohttpd runs one thread per agent connection; each proxied
 * request gets a worker thread that runs the upstream transfer (libcurl
 * easy, handles pooled so upstream connections are reused). The worker's
 * write callback appends the bytes to the request's relay queue and wakes
 * the connection thread, whose content reader hands them to the agent; then
 * it feeds the recording accumulator. When the transfer ends the worker
 * builds the log object, redacts it, and writes the log line and the trace
 * turn under the recorder's lock. Back-pressure: the worker waits while the
 * relay queue holds more than RELAY_HIGH bytes the agent has not taken.
 *
 * The trace with interleaved sessions (see record.h "Writing"): FORMAT.md
 * requires each session's lines to be contiguous and parents first, so the
 * recorder keeps every session's serialised lines (struct rses) and writes
 * the file in session-number order, which the router guarantees puts a
 * parent before its children. The fast path (a turn of the newest session)
 * appends in place, as a single-conversation agent always does; any other
 * turn rewrites the file whole via a temporary file and rename(2), so the
 * file on disk is always a complete valid trace and a child's
 * spawned_at_turn (a turn its parent had when the child started) is always
 * below the parent's written turn count. Buffering a session until it goes
 * idle was rejected: a killed recorder would lose every turn of the open
 * sessions (a Claude Code main conversation stays open all along). */
#include "record.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "buf.h"
#include "jsonh.h"
#include "reqdiff.h"
#include "sse.h"
#include "trace_io.h"

#define RELAY_HIGH (4u << 20)
#define RESP_MAX (64u << 20) /* a non-streamed body kept for the record */
#define ACC_MAX (64u << 20)  /* accumulated content, tool arguments */
#define POOL_MAX 16

enum api_kind { API_NONE = -1, API_OPENAI = REQDIFF_OPENAI_CHAT, API_ANTHROPIC = REQDIFF_ANTHROPIC_MESSAGES };

struct tcall {
	char *id, *name;
	struct buf args;
};

/* What a response says, assembled from a stream or a body. */
struct acc {
	bool sse;
	struct sse_parser *sp;
	struct buf body;    /* non-streamed body */
	struct buf content; /* text */
	bool has_content;
	int64_t reasoning_chars;
	bool has_reasoning;
	struct tcall *calls;
	size_t n_calls;
	int *block_call; /* anthropic: content block index -> call index (-1) */
	size_t n_blocks;
	cJSON *usage;
	double t_first_ms; /* first token, ms after arrival; -1 none */
	bool text_block_seen;
	bool ended; /* the stream's end event came ([DONE], message_stop) */
};

struct rec;

struct xreq {
	struct rec *rec;
	char *uri; /* raw, with the query */
	char method[16];
	enum api_kind api;
	bool started;
	struct curl_slist *hdrs;
	struct buf body;
	bool too_big;
	double t_wall;   /* unix seconds at arrival */
	double t0_ms;    /* monotonic ms when the body was complete */
	pthread_t th;
	bool th_started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct buf q;       /* relay queue */
	bool headers_done;  /* status and headers known */
	bool done;          /* the upstream transfer ended */
	bool failed;        /* ended with a transfer error */
	bool client_gone;   /* the agent hung up */
	bool record_done;   /* the record is written (or there is none): the
			     * agent sees the end of its answer only then, so a
			     * call it saw complete is in the files even if the
			     * recorder is killed right after */
	long status;
	struct curl_slist *resp_hdrs; /* "Name: value" to pass on */
	char errmsg[CURL_ERROR_SIZE + 64];

	struct acc acc;
	double t_done_ms;
	/* worker thread only: the transfer's progress, and when it first saw the
	 * agent or the recorder going away (0: not yet) */
	curl_off_t dl_total, dl_now;
	double t_leaving_ms;
};

/* How long an answered call's transfer may still run once the agent hung
 * up or the recorder stops (its last bytes, the stream's closing chunk). */
#define ANSWERED_GRACE_MS 2000.0

/* Waits on x->cv (x->mu held) for at most 100 ms: the relay's two sides
 * re-check their conditions (closing, client gone) at least that often. */
static void wait_100ms(struct xreq *x)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts); /* pthread_cond_timedwait's clock */
	ts.tv_nsec += 100 * 1000 * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&x->cv, &x->mu, &ts);
}

/* A session of the trace: its lines so far (session line + turns), kept
 * to rewrite the file when another session's turn lands before its end. */
struct rses {
	char id[96];
	struct buf lines;
	double t0, last_t;
};

struct rec {
	const struct record_opts *o;
	struct record_stats *st;
	char upstream[2048];
	pthread_mutex_t mu; /* the writers, reqdiff, stats, pool */
	FILE *tf;  /* the trace, opened for appending */
	bool zst;  /* the trace is zstd (name ends in .zst) */
	FILE *log;
	struct reqdiff_router *router;
	struct rses *ses; /* by the router's session number */
	size_t n_ses, cap_ses;
	int64_t rewrites;
	char ses_base[64];
	CURL *pool[POOL_MAX];
	size_t n_pool;
	volatile int closing;
	bool io_failed;
	struct ar_err io_err;
};

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits on x->cv (x->mu held) for at most 100 ms: the relay's two sides
 * re-check their conditions (closing, client gone) at least that often. */
static void note(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct rec *r, const char *fmt, ...)
{
	if (!r->o->note)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	r->o->note(r->o->ctx, line);
}

/* ---- the accumulator ------------------------------------------------------- */

static void acc_free(struct acc *a)
{
	sse_parser_free(a->sp);
	buf_free(&a->body);
	buf_free(&a->content);
	for (size_t i = 0; i < a->n_calls; i++) {
		free(a->calls[i].id);
		free(a->calls[i].name);
		buf_free(&a->calls[i].args);
	}
	free(a->calls);
	free(a->block_call);
	cJSON_Delete(a->usage);
	memset(a, 0, sizeof *a);
}

static struct tcall *call_at(struct acc *a, size_t idx)
{
	if (idx > 1024)
		return NULL;
	if (idx >= a->n_calls) {
		struct tcall *v = realloc(a->calls, (idx + 1) * sizeof *v);
		if (!v)
			return NULL;
		memset(v + a->n_calls, 0, (idx + 1 - a->n_calls) * sizeof *v);
		for (size_t i = a->n_calls; i <= idx; i++)
			buf_init(&v[i].args, ACC_MAX);
		a->calls = v;
		a->n_calls = idx + 1;
	}
	return &a->calls[idx];
}

static void set_str(char **dst, const char *s)
{
	if (s && !*dst)
		*dst = jsonh_strdup(s);
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

static void first_token(struct xreq *x)
{
	if (x->acc.t_first_ms < 0)
		x->acc.t_first_ms = mono_ms() - x->t0_ms;
}

static void add_text(struct xreq *x, const char *s)
{
	if (!s)
		return;
	x->acc.has_content = true;
	if (*s) {
		buf_puts(&x->acc.content, s);
		first_token(x);
	}
}

static void add_reasoning(struct xreq *x, const char *s)
{
	if (!s || !*s)
		return;
	x->acc.has_reasoning = true;
	x->acc.reasoning_chars += (int64_t)strlen(s);
	first_token(x);
}

static void keep_usage(struct acc *a, const cJSON *u, bool merge)
{
	if (!cJSON_IsObject(u))
		return;
	if (!merge || !a->usage) {
		cJSON_Delete(a->usage);
		a->usage = cJSON_Duplicate(u, 1);
		return;
	}
	for (const cJSON *c = u->child; c; c = c->next) {
		cJSON *d = cJSON_Duplicate(c, 1);
		if (d && !cJSON_ReplaceItemInObjectCaseSensitive(a->usage, c->string, d) &&
		    !cJSON_AddItemToObject(a->usage, c->string, d))
			cJSON_Delete(d);
	}
}

/* OpenAI chat: a stream chunk or a whole completion. */
static void openai_msg(struct xreq *x, const cJSON *j, bool chunk)
{
	struct acc *a = &x->acc;
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
	if (cJSON_IsObject(u))
		keep_usage(a, u, false);
	const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(ch, chunk ? "delta" : "message");
	if (!cJSON_IsObject(m))
		return;
	add_text(x, jstr(m, "content"));
	add_reasoning(x, jstr(m, "reasoning_content"));
	add_reasoning(x, jstr(m, "reasoning"));
	const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
	int k = 0;
	for (const cJSON *tc = cJSON_IsArray(tcs) ? tcs->child : NULL; tc; tc = tc->next, k++) {
		const cJSON *ix = cJSON_GetObjectItemCaseSensitive(tc, "index");
		int64_t idx = k;
		if (chunk && ix && !(jsonh_int(ix, &idx) && idx >= 0))
			continue;
		struct tcall *c = call_at(a, (size_t)idx);
		if (!c)
			continue;
		first_token(x);
		const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
		set_str(&c->id, jstr(tc, "id"));
		set_str(&c->name, jstr(fn, "name"));
		const char *args = jstr(fn, "arguments");
		if (args)
			buf_puts(&c->args, args);
	}
}

static int *block_slot(struct acc *a, int64_t idx)
{
	if (idx < 0 || idx > 4096)
		return NULL;
	if ((size_t)idx >= a->n_blocks) {
		int *v = realloc(a->block_call, (size_t)(idx + 1) * sizeof *v);
		if (!v)
			return NULL;
		for (size_t i = a->n_blocks; i <= (size_t)idx; i++)
			v[i] = -1;
		a->block_call = v;
		a->n_blocks = (size_t)idx + 1;
	}
	return &a->block_call[idx];
}

/* Anthropic: a content block (start or a whole-body block). */
static void anthropic_block(struct xreq *x, const cJSON *b, int64_t idx, bool whole)
{
	struct acc *a = &x->acc;
	const char *type = jstr(b, "type");
	if (!type)
		return;
	if (!strcmp(type, "text")) {
		if (a->text_block_seen)
			buf_putc(&a->content, '\n'); /* blocks join with "\n", as reqdiff does */
		a->text_block_seen = true;
		add_text(x, jstr(b, "text"));
	} else if (!strcmp(type, "thinking")) {
		add_reasoning(x, jstr(b, "thinking"));
	} else if (!strcmp(type, "tool_use")) {
		struct tcall *c = call_at(a, a->n_calls);
		if (!c)
			return;
		first_token(x);
		set_str(&c->id, jstr(b, "id"));
		set_str(&c->name, jstr(b, "name"));
		int *slot = block_slot(a, idx);
		if (slot)
			*slot = (int)(a->n_calls - 1);
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(b, "input");
		/* a stream starts with input {} and sends the JSON as deltas */
		if (whole && in)
			jsonh_put(&c->args, in);
	}
}

static void anthropic_event(struct xreq *x, const cJSON *j)
{
	struct acc *a = &x->acc;
	const char *type = jstr(j, "type");
	if (!type)
		return;
	int64_t idx = -1;
	const cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index");
	if (ix)
		jsonh_int(ix, &idx);
	if (!strcmp(type, "message_start")) {
		keep_usage(a, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "message"), "usage"), false);
	} else if (!strcmp(type, "message_delta")) {
		keep_usage(a, cJSON_GetObjectItemCaseSensitive(j, "usage"), true);
	} else if (!strcmp(type, "content_block_start")) {
		anthropic_block(x, cJSON_GetObjectItemCaseSensitive(j, "content_block"), idx, false);
	} else if (!strcmp(type, "content_block_delta")) {
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "delta");
		const char *dt = jstr(d, "type");
		if (!dt)
			return;
		if (!strcmp(dt, "text_delta")) {
			add_text(x, jstr(d, "text"));
		} else if (!strcmp(dt, "thinking_delta")) {
			add_reasoning(x, jstr(d, "thinking"));
		} else if (!strcmp(dt, "input_json_delta")) {
			int *slot = block_slot(a, idx);
			const char *pj = jstr(d, "partial_json");
			if (slot && *slot >= 0 && pj)
				buf_puts(&a->calls[*slot].args, pj);
		}
	}
}

static int on_sse(void *ud, const struct sse_event *ev)
{
	struct xreq *x = ud;
	if (!ev->comment && ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6))
		x->acc.ended = true;
	if (ev->comment || x->acc.ended)
		return 0;
	cJSON *j = cJSON_ParseWithLength(ev->data, ev->data_len);
	if (!j)
		return 0;
	if (x->api == API_OPENAI) {
		openai_msg(x, j, true);
	} else {
		const char *type = jstr(j, "type");
		if (type && !strcmp(type, "message_stop"))
			x->acc.ended = true;
		anthropic_event(x, j);
	}
	cJSON_Delete(j);
	return 0;
}

static void acc_feed(struct xreq *x, const char *p, size_t n)
{
	struct acc *a = &x->acc;
	if (a->sse) {
		if (a->sp)
			sse_parser_feed(a->sp, p, n, on_sse, x, NULL); /* a parser error ends the record of the stream only */
		return;
	}
	if (buf_append(&a->body, p, n) < 0)
		buf_free(&a->body); /* too big to record: the agent still gets it */
}

static void acc_finish(struct xreq *x)
{
	struct acc *a = &x->acc;
	if (a->sse || !a->body.len)
		return;
	cJSON *j = cJSON_ParseWithLength(a->body.data, a->body.len);
	if (!j)
		return;
	if (x->api == API_OPENAI) {
		openai_msg(x, j, false);
	} else {
		keep_usage(a, cJSON_GetObjectItemCaseSensitive(j, "usage"), false);
		const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(j, "content");
		int64_t i = 0;
		for (const cJSON *b = cJSON_IsArray(blocks) ? blocks->child : NULL; b; b = b->next, i++)
			anthropic_block(x, b, i, true);
	}
	cJSON_Delete(j);
	a->t_first_ms = -1; /* not streamed: no time to first token */
}

/* The request log's response object. */
static cJSON *acc_response(struct xreq *x, long status)
{
	struct acc *a = &x->acc;
	cJSON *r = cJSON_CreateObject();
	if (!r)
		return NULL;
	cJSON_AddNumberToObject(r, "status", (double)status);
	if (a->has_content)
		cJSON_AddStringToObject(r, "content", a->content.data ? a->content.data : "");
	else
		cJSON_AddNullToObject(r, "content");
	cJSON *calls = NULL;
	for (size_t i = 0; i < a->n_calls; i++) {
		struct tcall *c = &a->calls[i];
		if (!c->id || !c->name)
			continue;
		const char *args = c->args.data ? c->args.data : "";
		struct buf norm = BUF_INIT;
		if (x->api == API_ANTHROPIC) {
			/* the compact form reqdiff gives the agent's echo of `input` */
			cJSON *in = cJSON_Parse(*args ? args : "{}");
			if (in && jsonh_put(&norm, in) == 0)
				args = norm.data;
			cJSON_Delete(in);
		}
		if (!calls)
			calls = cJSON_CreateArray();
		cJSON *o = cJSON_CreateObject(), *f = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", c->id);
		cJSON_AddStringToObject(o, "type", "function");
		cJSON_AddStringToObject(f, "name", c->name);
		cJSON_AddStringToObject(f, "arguments", args);
		cJSON_AddItemToObject(o, "function", f);
		cJSON_AddItemToArray(calls, o);
		buf_free(&norm);
	}
	if (calls)
		cJSON_AddItemToObject(r, "tool_calls", calls);
	else
		cJSON_AddNullToObject(r, "tool_calls");
	if (a->has_reasoning)
		cJSON_AddNumberToObject(r, "reasoning_chars", (double)a->reasoning_chars);
	else
		cJSON_AddNullToObject(r, "reasoning_chars");
	if (a->usage)
		cJSON_AddItemToObject(r, "usage", cJSON_Duplicate(a->usage, 1));
	else
		cJSON_AddNullToObject(r, "usage");
	return r;
}

/* ---- writing the record -------------------------------------------------- */

static void io_fail(struct rec *r, const struct ar_err *e)
{
	if (!r->io_failed) {
		r->io_failed = true;
		r->io_err = *e;
	}
}

static void ses_name(const struct rec *r, int64_t k, char *out, size_t n)
{
	if (k == 0)
		snprintf(out, n, "%s", r->ses_base);
	else
		snprintf(out, n, "%s-%lld", r->ses_base, (long long)(k + 1));
}

/* Appends the session line of session k (a new one) to its buffer. */
static int session_line(struct rec *r, int64_t k, const struct reqdiff_req *req, const struct reqdiff_route *rt,
			struct ar_err *err)
{
	struct rses *rs = &r->ses[k];
	struct tr_session s = {0};
	char parent[96];
	s.format = (char *)TRACE_FORMAT;
	s.id = rs->id;
	s.spawned_at_turn = -1;
	if (rt->parent >= 0) {
		snprintf(parent, sizeof parent, "%s", r->ses[rt->parent].id);
		s.parent = parent;
		s.spawned_at_turn = rt->spawned_at_turn;
	}
	s.model = req->model;
	s.system = req->system;
	s.tools = req->tools;
	s.source = cJSON_CreateObject();
	/* the origin only: an upstream URL may carry credentials */
	char origin[256];
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, r->upstream, 0) == CURLUE_OK) {
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
		curl_url_get(u, CURLUPART_HOST, &host, 0);
		curl_url_get(u, CURLUPART_PORT, &port, 0);
	}
	snprintf(origin, sizeof origin, "%s://%s%s%s", scheme ? scheme : "?", host ? host : "?", port ? ":" : "",
		 port ? port : "");
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	int rc = 0;
	if (!s.source || !cJSON_AddStringToObject(s.source, "kind", "record") ||
	    !cJSON_AddStringToObject(s.source, "upstream", origin) || tr_session_write(&s, &rs->lines) < 0 ||
	    buf_putc(&rs->lines, '\n') < 0)
		rc = ar_err_set(err, AR_ENOMEM, "out of memory");
	cJSON_Delete(s.source);
	return rc;
}

static int trace_io_err(struct rec *r, struct ar_err *err)
{
	return ar_err_set(err, AR_EIO, "cannot write '%s': %s", r->o->trace_path, errno ? strerror(errno) : "write error");
}

/* Writes bytes as stored in the trace: plain, or one zstd frame. */
static int put_bytes(struct rec *r, FILE *f, const char *p, size_t n, struct ar_err *err)
{
	if (!n)
		return 0;
	errno = 0;
	if (!r->zst)
		return fwrite(p, 1, n, f) == n ? 0 : trace_io_err(r, err);
	size_t cap = ZSTD_compressBound(n);
	char *z = malloc(cap);
	if (!z)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	size_t zn = ZSTD_compress(z, cap, p, n, 3);
	int rc = 0;
	if (ZSTD_isError(zn))
		rc = ar_err_set(err, AR_EIO, "zstd compression failed: %s", ZSTD_getErrorName(zn));
	else if (fwrite(z, 1, zn, f) != zn)
		rc = trace_io_err(r, err);
	free(z);
	return rc;
}

/* The whole trace, session after session (parents have lower numbers, so
 * they come first), into a temporary file renamed over the trace: a killed
 * recorder leaves the old file or the new one, both valid. */
static int rewrite_trace(struct rec *r, struct ar_err *err)
{
	size_t n = strlen(r->o->trace_path) + 16;
	char *tmp = malloc(n);
	if (!tmp)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	snprintf(tmp, n, "%s.tmp.XXXXXX", r->o->trace_path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		ar_err_set(err, AR_EIO, "cannot create a file beside '%s': %s", r->o->trace_path, strerror(errno));
		free(tmp);
		return -1;
	}
	fchmod(fd, 0644);
	FILE *f = fdopen(fd, "wb");
	int rc = f ? 0 : ar_err_set(err, AR_ENOMEM, "out of memory");
	if (!f)
		close(fd);
	for (size_t k = 0; rc == 0 && k < r->n_ses; k++)
		rc = put_bytes(r, f, r->ses[k].lines.data, r->ses[k].lines.len, err);
	errno = 0;
	if (f && fclose(f) != 0 && rc == 0)
		rc = trace_io_err(r, err);
	if (rc == 0 && rename(tmp, r->o->trace_path) != 0)
		rc = ar_err_set(err, AR_EIO, "cannot rename '%s' to '%s': %s", tmp, r->o->trace_path, strerror(errno));
	if (rc != 0) {
		unlink(tmp);
		free(tmp);
		return rc;
	}
	free(tmp);
	if (r->tf)
		fclose(r->tf);
	if (!(r->tf = fopen(r->o->trace_path, "abe")))
		return ar_err_set(err, AR_EIO, "cannot open '%s': %s", r->o->trace_path, strerror(errno));
	r->rewrites++;
	return 0;
}

/* Session k got lines (the last `n` bytes of its buffer): the file's last
 * session is appended to in place; any other means a rewrite. */
static int persist(struct rec *r, int64_t k, size_t n, struct ar_err *err)
{
	if ((size_t)k + 1 != r->n_ses)
		return rewrite_trace(r, err);
	struct buf *b = &r->ses[k].lines;
	if (put_bytes(r, r->tf, b->data + b->len - n, n, err) < 0)
		return -1;
	errno = 0;
	if (fflush(r->tf) != 0)
		return trace_io_err(r, err);
	return 0;
}

static int ses_add(struct rec *r, int64_t k, double t_wall, struct ar_err *err)
{
	if ((size_t)k != r->n_ses)
		return ar_err_set(err, AR_EINTERNAL, "record: session %lld out of order", (long long)k);
	if (r->n_ses == r->cap_ses) {
		size_t cap = r->cap_ses ? r->cap_ses * 2 : 16;
		struct rses *v = realloc(r->ses, cap * sizeof *v);
		if (!v)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		r->ses = v;
		r->cap_ses = cap;
	}
	struct rses *rs = &r->ses[r->n_ses++];
	memset(rs, 0, sizeof *rs);
	buf_init(&rs->lines, 0);
	ses_name(r, k, rs->id, sizeof rs->id);
	rs->t0 = t_wall;
	return 0;
}

/* Called with r->mu held. Writes the log line and the trace turn. */
static void record_call(struct rec *r, struct xreq *x, long status)
{
	struct ar_err e = {0};
	cJSON *line = NULL, *request = NULL, *resp = NULL;
	struct reqdiff_req req = {0};
	struct reqdiff_route rt = {.session = -1, .parent = -1, .spawned_at_turn = -1, .turn = -1};
	struct tr_response *tresp = NULL;
	cJSON *recorded = NULL;
	bool routed = false;

	request = cJSON_ParseWithLength(x->body.data ? x->body.data : "", x->body.len);
	resp = acc_response(x, status);
	if (!resp)
		goto out;
	/* an agent or a server may send bytes that are not UTF-8 (cJSON keeps
	 * them): the log and the trace are UTF-8, so they become U+FFFD */
	long bad1 = request ? jsonh_repair_utf8(request) : 0, bad2 = jsonh_repair_utf8(resp);
	if (bad1 < 0 || bad2 < 0) {
		note(r, "record: call not recorded: out of memory");
		goto out;
	}
	r->st->not_utf8 += bad1 + bad2;
	int64_t hits = 0;
	if (r->o->redact) {
		int64_t h1 = request ? redact_json(r->o->redact, request, &e) : 0;
		int64_t h2 = redact_json(r->o->redact, resp, &e);
		if (h1 < 0 || h2 < 0) {
			/* fail closed: a body the rules could not scan is not written */
			note(r, "record: call not recorded: %s", e.msg);
			goto out;
		}
		hits = h1 + h2;
		r->st->redacted += hits;
	}
	double ttft = x->acc.t_first_ms >= 0 ? round(x->acc.t_first_ms * 1000) / 1000 : -1;
	double e2e = x->t_done_ms >= 0 ? round(x->t_done_ms * 1000) / 1000 : -1;
	r->st->recorded++;
	if (status < 200 || status >= 300)
		r->st->failed++;
	/* route first: the log line names the session */
	if (!request || reqdiff_parse((enum reqdiff_api)x->api, request, &req, &e) < 0) {
		r->st->unparsed++;
		note(r, "record: %s %s: not a chat request (%s); logged, not in the trace", x->method, x->uri,
		     request ? e.msg : "body is not JSON");
	} else if (reqdiff_log_response((enum reqdiff_api)x->api, resp, ttft, e2e, req.model, &tresp, &recorded, &e) < 0 ||
		   reqdiff_router_next(r->router, &req, &rt, &e) < 0) {
		note(r, "record: call not in the trace: %s", e.msg);
	} else if (rt.diff.empty) {
		note(r, "record: empty request (no system prompt, no messages): not in the trace");
	} else {
		r->st->dropped += req.dropped;
		routed = true;
		if (rt.diff.new_session && ses_add(r, rt.session, x->t_wall, &e) < 0) {
			io_fail(r, &e);
			goto out;
		}
	}
	if (r->log) {
		line = cJSON_CreateObject();
		cJSON_AddNumberToObject(line, "v", 1);
		cJSON_AddNumberToObject(line, "t", x->t_wall);
		cJSON_AddStringToObject(line, "api", reqdiff_api_name((enum reqdiff_api)x->api));
		if (request)
			cJSON_AddItemReferenceToObject(line, "request", request);
		else
			cJSON_AddNullToObject(line, "request");
		cJSON_AddItemReferenceToObject(line, "response", resp);
		if (ttft >= 0)
			cJSON_AddNumberToObject(line, "ttft_ms", round(ttft * 1000) / 1000);
		else
			cJSON_AddNullToObject(line, "ttft_ms");
		if (e2e >= 0)
			cJSON_AddNumberToObject(line, "e2e_ms", round(e2e * 1000) / 1000);
		else
			cJSON_AddNullToObject(line, "e2e_ms");
		if (routed) {
			cJSON_AddStringToObject(line, "session", r->ses[rt.session].id);
			if (rt.parent >= 0) {
				cJSON_AddStringToObject(line, "parent", r->ses[rt.parent].id);
				cJSON_AddNumberToObject(line, "spawned_at_turn", (double)rt.spawned_at_turn);
			}
		}
		struct buf b = BUF_INIT;
		if (jsonh_put(&b, line) < 0 || buf_putc(&b, '\n') < 0 || fwrite(b.data, 1, b.len, r->log) != b.len ||
		    fflush(r->log) != 0) {
			ar_err_set(&e, AR_EIO, "cannot write the request log '%s': %s", r->o->log_path, strerror(errno));
			io_fail(r, &e);
			buf_free(&b);
			goto out;
		}
		buf_free(&b);
	}
	if (!routed)
		goto out;
	struct rses *rs = &r->ses[rt.session];
	size_t before = rs->lines.len;
	if (rt.diff.new_session && session_line(r, rt.session, &req, &rt, &e) < 0) {
		io_fail(r, &e);
		goto out;
	}
	double t = x->t_wall - rs->t0;
	if (t < rs->last_t)
		t = rs->last_t; /* completion order may differ from arrival order */
	t = round(t * 1000) / 1000;
	rs->last_t = t;
	r->st->orphans += rt.diff.orphans;
	struct tr_turn tt = {.i = rt.turn, .t = t, .has_t = true, .keep = rt.diff.keep, .append = rt.diff.append,
			     .n_append = rt.diff.n_append, .response = tresp, .recorded = recorded};
	if (tr_turn_write(&tt, &rs->lines) < 0 || buf_putc(&rs->lines, '\n') < 0) {
		ar_err_set(&e, AR_ENOMEM, "out of memory serialising a turn");
		io_fail(r, &e);
		goto out;
	}
	if (persist(r, rt.session, rs->lines.len - before, &e) < 0) {
		io_fail(r, &e);
		goto out;
	}
	if (rt.diff.new_session)
		r->st->sessions++;
	if (rt.parent >= 0)
		r->st->children++;
	if (reqdiff_router_answer(r->router, rt.session, tresp, &e) < 0)
		goto out;
	r->st->turns++;
	note(r, "%s turn %lld: %s %ld, keep %lld, +%zu messages, %lld secrets redacted%s", rs->id, (long long)rt.turn,
	     reqdiff_api_name((enum reqdiff_api)x->api), status, (long long)rt.diff.keep, rt.diff.n_append,
	     (long long)hits, !rt.diff.new_session ? "" : rt.parent >= 0 ? " (new subagent session)" : " (new session)");
out:
	cJSON_Delete(line);
	cJSON_Delete(request);
	cJSON_Delete(resp);
	reqdiff_req_clear(&req);
	reqdiff_route_clear(&rt);
	tr_response_free(tresp);
	cJSON_Delete(recorded);
}

/* ---- the upstream transfer ---------------------------------------------- */

static CURL *pool_get(struct rec *r)
{
	CURL *c = NULL;
	pthread_mutex_lock(&r->mu);
	if (r->n_pool)
		c = r->pool[--r->n_pool];
	pthread_mutex_unlock(&r->mu);
	if (c)
		curl_easy_reset(c); /* keeps its live connection */
	else
		c = curl_easy_init();
	return c;
}

static void pool_put(struct rec *r, CURL *c)
{
	pthread_mutex_lock(&r->mu);
	if (r->n_pool < POOL_MAX) {
		r->pool[r->n_pool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&r->mu);
	if (c)
		curl_easy_cleanup(c);
}

static bool hop_by_hop(const char *name, size_t n)
{
	static const char *const h[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
					"trailer", "upgrade", "content-length", "host", "accept-encoding", "expect"};
	for (size_t i = 0; i < sizeof h / sizeof h[0]; i++)
		if (strlen(h[i]) == n && !strncasecmp(name, h[i], n))
			return true;
	return false;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
	struct xreq *x = ud;
	size_t n = sz * nm;
	if (n >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* a status line: a new response (after 1xx) starts */
		const char *sp = memchr(p, ' ', n);
		long st = sp ? strtol(sp + 1, NULL, 10) : 0;
		pthread_mutex_lock(&x->mu);
		x->status = st;
		curl_slist_free_all(x->resp_hdrs);
		x->resp_hdrs = NULL;
		pthread_mutex_unlock(&x->mu);
		return n;
	}
	size_t len = n;
	while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	if (len == 0) {
		if (x->status >= 200) {
			pthread_mutex_lock(&x->mu);
			x->headers_done = true;
			pthread_cond_broadcast(&x->cv);
			pthread_mutex_unlock(&x->mu);
		}
		return n;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon || hop_by_hop(p, (size_t)(colon - p)))
		return n;
	char line[8192];
	if (len >= sizeof line)
		return n;
	memcpy(line, p, len);
	line[len] = '\0';
	if (!strncasecmp(line, "content-type:", 13)) {
		const char *v = line + 13;
		while (*v == ' ')
			v++;
		x->acc.sse = !strncasecmp(v, "text/event-stream", 17);
	}
	pthread_mutex_lock(&x->mu);
	struct curl_slist *l = curl_slist_append(x->resp_hdrs, line);
	if (l)
		x->resp_hdrs = l;
	pthread_mutex_unlock(&x->mu);
	return n;
}

/* Whether the upstream's answer is all here: its Content-Length reached, or
 * the stream's end event seen. The agent may have all of it and go, or the
 * recorder be stopped, before the transfer's last formalities: such a call
 * is still recorded. */
static bool answered(const struct xreq *x)
{
	return x->acc.ended || (x->dl_total > 0 && x->dl_now >= x->dl_total);
}

/* Whether the transfer is to be cut: the agent hung up or the recorder
 * stops, and the answer is not all here (or its grace is over). */
static bool cut(struct xreq *x, bool leaving)
{
	if (!leaving)
		return false;
	double now = mono_ms();
	if (x->t_leaving_ms == 0)
		x->t_leaving_ms = now;
	return !answered(x) || now - x->t_leaving_ms > ANSWERED_GRACE_MS;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
	struct xreq *x = ud;
	size_t n = sz * nm;
	pthread_mutex_lock(&x->mu);
	if (!x->headers_done) { /* a body without the blank line seen: be safe */
		x->headers_done = true;
	}
	while (x->q.len > RELAY_HIGH && !x->client_gone && !x->rec->closing) {
		wait_100ms(x);
	}
	bool gone = x->client_gone || x->rec->closing;
	if (!gone && buf_append(&x->q, p, n) < 0)
		gone = true;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	if (gone && cut(x, true))
		return 0; /* aborts the transfer */
	if (x->api != API_NONE)
		acc_feed(x, p, n);
	return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct xreq *x = ud;
	x->dl_total = dltotal;
	x->dl_now = dlnow;
	pthread_mutex_lock(&x->mu);
	bool leaving = x->client_gone || x->rec->closing;
	pthread_mutex_unlock(&x->mu);
	return cut(x, leaving);
}

static void *worker(void *arg)
{
	struct xreq *x = arg;
	struct rec *r = x->rec;
	char url[4096 + 2048];
	snprintf(url, sizeof url, "%s%s", r->upstream, x->uri);
	char cerr[CURL_ERROR_SIZE] = "";
	CURL *c = pool_get(r);
	CURLcode rc = CURLE_OUT_OF_MEMORY;
	if (c) {
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
		curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
		if (!strcmp(x->method, "GET")) {
			curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		} else if (!strcmp(x->method, "HEAD")) {
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		} else {
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, x->method);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body.data ? x->body.data : "");
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
		}
		rc = curl_easy_perform(c);
		long st = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
		pool_put(r, c);
		if (st && !x->status)
			x->status = st;
	}
	x->t_done_ms = mono_ms() - x->t0_ms;
	pthread_mutex_lock(&x->mu);
	x->done = true;
	x->failed = rc != CURLE_OK;
	if (x->failed)
		snprintf(x->errmsg, sizeof x->errmsg, "%s", *cerr ? cerr : curl_easy_strerror(rc));
	bool before_headers = !x->headers_done;
	bool gone = x->client_gone;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);

	/* cut by the recorder's stop: no record, unless the answer was all here */
	if (x->api != API_NONE && !(r->closing && x->failed && !answered(x))) {
		long status = x->status;
		if (x->failed && before_headers)
			status = 502;
		else if (gone && !answered(x))
			status = 499;
		if (x->acc.sse && x->acc.sp)
			sse_parser_finish(x->acc.sp, on_sse, x, &(bool){false}, NULL);
		acc_finish(x);
		pthread_mutex_lock(&r->mu);
		if (!r->io_failed)
			record_call(r, x, status);
		pthread_mutex_unlock(&r->mu);
	}
	pthread_mutex_lock(&x->mu);
	x->record_done = true;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

/* ---- the agent side (libmicrohttpd) ---------------------------------------- */

static void xreq_free(struct xreq *x)
{
	if (!x)
		return;
	free(x->uri);
	curl_slist_free_all(x->hdrs);
	curl_slist_free_all(x->resp_hdrs);
	buf_free(&x->body);
	buf_free(&x->q);
	acc_free(&x->acc);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	free(x);
}

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *con)
{
	struct rec *r = cls;
	struct xreq *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	x->rec = r;
	x->uri = jsonh_strdup(uri ? uri : "/");
	x->api = API_NONE;
	x->acc.t_first_ms = -1;
	x->t_done_ms = -1;
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	buf_init(&x->body, r->o->max_body ? r->o->max_body : (64u << 20));
	return x;
}

static enum MHD_Result add_hdr(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct xreq *x = cls;
	if (!key || hop_by_hop(key, strlen(key)))
		return MHD_YES;
	char line[8192];
	int n = snprintf(line, sizeof line, "%s: %s", key, value ? value : "");
	if (n < 0 || (size_t)n >= sizeof line)
		return MHD_YES;
	struct curl_slist *l = curl_slist_append(x->hdrs, line);
	if (l)
		x->hdrs = l;
	return MHD_YES;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, const char *type, const char *msg)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(e, "type", type);
	cJSON_AddStringToObject(e, "message", msg);
	cJSON_AddStringToObject(e, "source", "agentreplay record");
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	struct MHD_Response *r = MHD_create_response_from_buffer(s ? strlen(s) : 0, s ? s : (void *)"",
								 s ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static ssize_t relay(void *cls, uint64_t pos, char *out, size_t max)
{
	struct xreq *x = cls;
	pthread_mutex_lock(&x->mu);
	while (!x->q.len && !x->record_done && !x->rec->closing) {
		wait_100ms(x);
	}
	ssize_t n;
	if (x->q.len) {
		size_t k = x->q.len < max ? x->q.len : max;
		memcpy(out, x->q.data, k);
		buf_consume(&x->q, k);
		n = (ssize_t)k;
		pthread_cond_broadcast(&x->cv); /* room for the worker */
	} else if (x->record_done && !x->failed) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		n = MHD_CONTENT_READER_END_WITH_ERROR; /* upstream cut, or the recorder stops */
	}
	pthread_mutex_unlock(&x->mu);
	return n;
}

static enum api_kind classify(const char *method, const char *uri)
{
	if (strcmp(method, "POST"))
		return API_NONE;
	size_t n = strcspn(uri, "?");
	if (n >= 17 && !strncmp(uri + n - 17, "/chat/completions", 17))
		return API_OPENAI;
	if (n >= 9 && !strncmp(uri + n - 9, "/messages", 9))
		return API_ANTHROPIC;
	return API_NONE;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				 const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct rec *r = cls;
	struct xreq *x = *con_cls;
	if (!x)
		return MHD_NO;
	if (!x->started) {
		x->started = true;
		snprintf(x->method, sizeof x->method, "%s", method);
		x->api = classify(method, x->uri);
		x->t_wall = wall_s();
		MHD_get_connection_values(c, MHD_HEADER_KIND, add_hdr, x);
		struct curl_slist *l = curl_slist_append(x->hdrs, "Expect:");
		if (l)
			x->hdrs = l;
		pthread_mutex_lock(&r->mu);
		r->st->requests++;
		pthread_mutex_unlock(&r->mu);
		return MHD_YES;
	}
	if (*upload_size) {
		if (!x->too_big && buf_append(&x->body, upload, *upload_size) < 0)
			x->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (x->th_started)
		return MHD_NO; /* called again after the response was queued */
	if (x->too_big)
		return reply_json(c, MHD_HTTP_CONTENT_TOO_LARGE, "request_too_large",
				  "agentreplay record: the request body is larger than its ceiling");
	if (x->api != API_NONE && !(x->acc.sp = sse_parser_new(0)))
		return MHD_NO;
	buf_init(&x->acc.body, RESP_MAX);
	buf_init(&x->acc.content, ACC_MAX);
	x->t0_ms = mono_ms();
	if (pthread_create(&x->th, NULL, worker, x) != 0)
		return reply_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "proxy_error", "cannot start a thread");
	x->th_started = true;
	pthread_mutex_lock(&x->mu);
	while (!x->headers_done && !x->done)
		pthread_cond_wait(&x->cv, &x->mu);
	bool refused = !x->headers_done;
	long status = x->status;
	char msg[sizeof x->errmsg + 2100];
	if (refused)
		snprintf(msg, sizeof msg, "cannot reach the upstream '%s': %s", r->upstream, x->errmsg);
	pthread_mutex_unlock(&x->mu);
	if (refused) {
		pthread_mutex_lock(&r->mu);
		r->st->refused++;
		pthread_mutex_unlock(&r->mu);
		note(r, "record: %s %s: %s", x->method, x->uri, msg);
		return reply_json(c, MHD_HTTP_BAD_GATEWAY, "upstream_unreachable", msg);
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, relay, x, NULL);
	if (!resp)
		return MHD_NO;
	pthread_mutex_lock(&x->mu);
	for (struct curl_slist *h = x->resp_hdrs; h; h = h->next) {
		char *colon = strchr(h->data, ':');
		if (!colon)
			continue;
		*colon = '\0';
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		MHD_add_response_header(resp, h->data, v);
		*colon = ':';
	}
	pthread_mutex_unlock(&x->mu);
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)(status ? status : 502), resp);
	MHD_destroy_response(resp);
	return ret;
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct xreq *x = *con_cls;
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		x->client_gone = true;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	if (x->th_started)
		pthread_join(x->th, NULL); /* the worker writes its record first */
	xreq_free(x);
	*con_cls = NULL;
}

/* ---- the run ------------------------------------------------------------- */

static int check_upstream(struct rec *r, const char *up, struct ar_err *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL;
	int rc = 0;
	if (!u || curl_url_set(u, CURLUPART_URL, up, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
		rc = ar_err_set(err, AR_EINVAL, "--upstream '%s' is not an http(s) URL", up);
	} else if (strchr(up, '?') || strchr(up, '#')) {
		rc = ar_err_set(err, AR_EINVAL, "--upstream '%s': give the origin (and path prefix) without a query", up);
	} else if (strlen(up) >= sizeof r->upstream) {
		rc = ar_err_set(err, AR_EINVAL, "--upstream is too long");
	} else {
		snprintf(r->upstream, sizeof r->upstream, "%s", up);
		size_t n = strlen(r->upstream);
		while (n && r->upstream[n - 1] == '/')
			r->upstream[--n] = '\0';
	}
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

int record_run(const struct record_opts *o, struct record_stats *st, struct ar_err *err)
{
	memset(st, 0, sizeof *st);
	struct rec *r = calloc(1, sizeof *r);
	if (!r)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	r->o = o;
	r->st = st;
	pthread_mutex_init(&r->mu, NULL);
	struct MHD_Daemon *d = NULL;
	int rc = -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		ar_err_set(err, AR_EINTERNAL, "curl_global_init failed");
		goto out;
	}
	if (!o->upstream || check_upstream(r, o->upstream, err) < 0)
		goto out;
	if (!o->trace_path || !strcmp(o->trace_path, "-")) {
		ar_err_set(err, AR_EINVAL, "record needs an output file (-o FILE)");
		goto out;
	}
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)o->port);
	if (inet_pton(AF_INET, o->host ? o->host : "127.0.0.1", &sa.sin_addr) != 1) {
		ar_err_set(err, AR_EINVAL, "listen address '%s' is not an IPv4 address", o->host);
		goto out;
	}
	if (o->log_path && !(r->log = fopen(o->log_path, "ae"))) {
		ar_err_set(err, AR_EIO, "cannot open the request log '%s': %s", o->log_path, strerror(errno));
		goto out;
	}
	if (reqdiff_router_new(&r->router, 0, err) < 0)
		goto out;
	{
		size_t pl = strlen(o->trace_path);
		r->zst = pl >= 4 && !strcmp(o->trace_path + pl - 4, ".zst");
	}
	if (!(r->tf = fopen(o->trace_path, "wbe"))) {
		ar_err_set(err, AR_EIO, "cannot create '%s': %s", o->trace_path, strerror(errno));
		goto out;
	}
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(r->ses_base, sizeof r->ses_base, "rec-%Y%m%dT%H%M%SZ", &tm);
	d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
			     NULL, NULL, access_cb, r, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
			     MHD_OPTION_URI_LOG_CALLBACK, uri_cb, r, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, r,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)3600, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
			     MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024), MHD_OPTION_END);
	if (!d) {
		ar_err_set(err, AR_EIO, "cannot listen on %s:%d: %s", o->host ? o->host : "127.0.0.1", o->port,
			   errno ? strerror(errno) : "libmicrohttpd failed to start");
		goto out;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	if (o->ready)
		o->ready(o->ctx, info ? (int)info->port : o->port);
	for (;;) {
		if (o->stop && *o->stop)
			break;
		pthread_mutex_lock(&r->mu);
		bool failed = r->io_failed;
		pthread_mutex_unlock(&r->mu);
		if (failed)
			break;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	/* stop: no new connections, cut what is in flight; workers that already
	 * have their answer write their record before the daemon returns */
	MHD_quiesce_daemon(d);
	r->closing = 1;
	MHD_stop_daemon(d);
	d = NULL;
	if (r->io_failed) {
		*err = r->io_err;
		goto out;
	}
	rc = 0;
out:
	if (d) {
		r->closing = 1;
		MHD_stop_daemon(d);
	}
	if (r->tf) {
		errno = 0;
		if (fclose(r->tf) != 0 && rc == 0)
			rc = ar_err_set(err, AR_EIO, "cannot write '%s': %s", o->trace_path,
					errno ? strerror(errno) : "write error");
		if (st->sessions == 0)
			unlink(o->trace_path); /* an empty file is not a trace */
	}
	st->rewrites = r->rewrites;
	if (r->log && fclose(r->log) != 0 && rc == 0)
		rc = ar_err_set(err, AR_EIO, "cannot write the request log '%s': %s", o->log_path, strerror(errno));
	for (size_t i = 0; i < r->n_pool; i++)
		curl_easy_cleanup(r->pool[i]);
	reqdiff_router_free(r->router);
	for (size_t k = 0; k < r->n_ses; k++)
		buf_free(&r->ses[k].lines);
	free(r->ses);
	pthread_mutex_destroy(&r->mu);
	free(r);
	return rc;
}
