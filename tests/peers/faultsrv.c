/* ar-faultsrv: a scripted, fault-injecting LLM HTTP server for end-to-end
 * tests and measurement-fidelity benchmarks (tests/peers/README.md).
 *
 * It speaks the streaming wire formats of llama-server, vLLM, Ollama, OpenAI
 * and the Anthropic Messages API (fs_wire.c), emits exactly the number of
 * tokens asked for on an exact schedule (first token --ttft-ms after the
 * request was read, then one every --itl-ms), and breaks on request in the
 * ways real servers break (fs_fault.c: resets, stalls, error events, exits).
 *
 * Concurrency: libmicrohttpd in thread-per-connection mode. A streaming
 * response is a content-reader callback that runs on the connection's own
 * thread: it sleeps with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) to
 * the scheduled instant, hands one event to MHD and returns; MHD sends it as
 * its own chunk at once (TCP_NODELAY, no MSG_MORE on body chunks). The
 * CLOCK_MONOTONIC instant of that hand-over is what --log records, so a
 * client on the same host can compare its TTFT with t_first_token_ns -
 * t_recv_ns. Each connection costs one thread (256 KiB stack reserved) and
 * one descriptor; RLIMIT_NOFILE is raised to its hard limit at start and
 * --threads caps the connections (default 4096).
 *
 * State: one `struct fs_server` (config, counters, the one-entry prefix cache,
 * the log) passed to every callback; one `struct fs_req` per request, freed
 * when MHD reports the request completed. The only global is the pipe the
 * SIGTERM/SIGINT handler writes to.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "fs_fault.h"
#include "fs_rx.h"
#include "fs_wire.h"
#include "jsonh.h"
#include "rng.h"
#include "units.h"

#define FS_MAX_FAULTS 64
#define FS_BODY_MAX ((size_t)64 << 20)   /* request bodies above this get 413 */
#define FS_OUT_MAX ((size_t)64 << 20)    /* ceiling of one response's pending bytes */
#define FS_CONTENT_MAX ((size_t)4 << 20) /* non-streamed answers stop growing here */
#define FS_JSON_DEPTH_MAX 128            /* deeper request JSON is refused */
#define FS_LOG_TIMES 64                  /* token times kept per request for --log */
#define FS_SLICE_NS (50 * AR_NS_PER_MS)  /* longest uninterrupted sleep */
#define FS_STACK_SIZE ((size_t)256 << 10)
#define FS_HUGE_PIECE ((size_t)64 << 10)
#define FS_NO_LIMIT UINT64_MAX

struct fs_config {
	uint16_t port;
	const char *port_file;
	int64_t ttft_ns, itl_ns;
	struct fs_fault faults[FS_MAX_FAULTS];
	size_t n_faults;
	enum fs_flavor flavor;
	uint64_t ctx_limit; /* 0 = none */
	const char *log_path;
	uint64_t max_conns;
	uint64_t default_tokens;
	const char *model;
	bool verbose;
	bool arrival_stamps; /* t_recv = the kernel's receive time of the request (fs_rx.c) */
};

struct fs_server {
	struct fs_config cfg;
	struct MHD_Daemon *daemon;
	atomic_bool stopping;
	atomic_uint_fast64_t req_counter;
	uint64_t id_seed; /* makes response ids differ between runs */
	/* one-entry prefix cache: the previous request's prompt text */
	pthread_mutex_t cache_mu;
	char *prev_prompt;
	size_t prev_len;
	/* --log */
	pthread_mutex_t log_mu;
	FILE *log;
	/* /metrics (llama-server names) */
	atomic_uint_fast64_t m_prompt_tokens, m_cached_tokens, m_predicted, m_prompt_ns,
		m_predicted_ns, m_processing, m_requests, m_tokens_max;
};

enum route {
	RT_NOT_FOUND,
	RT_GEN, /* one of the generation endpoints (api says which) */
	RT_HEALTH,
	RT_MODELS,
	RT_TOKENIZE,
	RT_METRICS,
};

enum phase {
	PH_START,
	PH_PRE,    /* before the first token: progress chunks, pings */
	PH_TOKENS, /* one token per step */
	PH_PEG,    /* peg_error: silent until the answer would have ended */
	PH_TAIL,   /* finish chunk, usage, terminator */
	PH_GARBAGE,
	PH_HUGE_HEAD,
	PH_HUGE_BODY,
	PH_END,
};

enum step { ST_EMIT, ST_END, ST_FIN, ST_RST, ST_KILL, ST_ABORT };

struct fs_req {
	struct fs_server *srv;
	struct MHD_Connection *conn;
	int fd;
	enum route route;
	enum fs_api api;
	char path[64];
	struct buf body;
	bool body_too_big;
	uint64_t num;           /* generation request number, 1-based */
	struct fs_active act;
	struct fs_wire w;
	char model[256];
	/* plan */
	bool stream;
	uint64_t n_tokens;      /* to generate; FS_NO_LIMIT = endless */
	uint64_t n_reasoning;   /* the first n_reasoning tokens are reasoning */
	bool tool;              /* the rest is a tool call */
	enum fs_finish finish;
	ar_ns t_recv, t_first_sched;
	bool recv_kernel; /* t_recv is the kernel's receive stamp (--arrival-stamps) */
	uint64_t prog_i, prog_n; /* prompt_progress chunks sent / planned */
	uint64_t huge_left;
	struct rng rng;
	/* progress */
	enum phase phase;
	uint64_t emitted;       /* tokens generated so far */
	uint64_t visible;       /* token events written so far */
	ar_ns t_first_token, t_last_token, last_write, drip_last;
	ar_ns times[FS_LOG_TIMES];
	struct buf out;         /* bytes not yet handed to MHD */
	size_t out_off;
	uint64_t out_mark;      /* token whose event ends with `out`; 0 = none */
	int status;
	const char *outcome;
	bool counted;           /* counted in requests_processing */
};

/* ---- small utilities ---------------------------------------------------- */

static void sleep_abs(ar_ns t)
{
	struct timespec ts = {.tv_sec = (time_t)(t / AR_NS_PER_S), .tv_nsec = (long)(t % AR_NS_PER_S)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* True when the client closed or reset its side. */
static bool peer_gone(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return true;
	return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* Sleeps until `t` in slices, so that a stopping server or a vanished client
 * ends the wait. The last slice ends exactly at `t`. -1 when interrupted. */
static int wait_until(struct fs_req *q, ar_ns t)
{
	for (;;) {
		if (atomic_load(&q->srv->stopping))
			return -1;
		ar_ns now = clock_now();
		if (now >= t)
			return 0;
		if (t - now > 5 * AR_NS_PER_MS && q->fd >= 0 && peer_gone(q->fd))
			return -1;
		sleep_abs(t - now > FS_SLICE_NS ? now + FS_SLICE_NS : t);
	}
}

/* Waits (bounded) until the peer acknowledged every byte written, so a reset
 * that follows cannot discard data the client was meant to see. */
static void wait_drained(int fd)
{
	for (int i = 0; i < 500; i++) {
		int n = 0;
		if (ioctl(fd, SIOCOUTQ, &n) < 0 || n <= 0)
			return;
		sleep_abs(clock_now() + AR_NS_PER_MS);
	}
}

/* A TCP reset now: SO_LINGER 0 for the close MHD will do, and a disconnect
 * (connect to AF_UNSPEC) that sends the RST at once — MHD may shut down the
 * write side before closing, which would otherwise show the client a FIN. */
static void conn_reset(int fd)
{
	if (fd < 0)
		return;
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	struct sockaddr sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_family = AF_UNSPEC;
	(void)connect(fd, &sa, sizeof sa);
}

static void atomic_max(atomic_uint_fast64_t *a, uint64_t v)
{
	uint_fast64_t cur = atomic_load(a);
	while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

static const char *flavor_name(enum fs_flavor f)
{
	static const char *const names[] = {"llama", "vllm", "ollama", "openai"};
	return names[f];
}

/* ---- responses ---------------------------------------------------------- */

static void add_common_headers(struct fs_server *s, struct MHD_Response *r)
{
	switch (s->cfg.flavor) {
	case FS_FLAVOR_LLAMA:
		MHD_add_response_header(r, "Server", "llama.cpp");
		MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
		break;
	case FS_FLAVOR_VLLM: MHD_add_response_header(r, "Server", "uvicorn"); break;
	default: break;
	}
}

static const char *json_type(struct fs_server *s)
{
	return s->cfg.flavor == FS_FLAVOR_LLAMA || s->cfg.flavor == FS_FLAVOR_OLLAMA
		       ? "application/json; charset=utf-8"
		       : "application/json";
}

static enum MHD_Result send_bytes(struct fs_req *q, int status, const char *type, const char *data,
				  size_t len, const char *retry_after)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	add_common_headers(q->srv, r);
	if (type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (retry_after)
		MHD_add_response_header(r, "Retry-After", retry_after);
	enum MHD_Result ret = MHD_queue_response(q->conn, (unsigned)status, r);
	MHD_destroy_response(r);
	q->status = status;
	return ret;
}

static const char html_404[] = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
			       "<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n"
			       "</body>\r\n</html>\r\n";

static enum MHD_Result send_html_404(struct fs_req *q)
{
	q->outcome = "http_error";
	return send_bytes(q, 404, "text/html", html_404, sizeof html_404 - 1, NULL);
}

static enum MHD_Result send_error(struct fs_req *q, const struct fs_httperr *e)
{
	struct buf b = BUF_INIT;
	const char *retry = e->status == 429 ? "2" : NULL;
	enum MHD_Result ret = MHD_NO;
	q->outcome = "http_error";
	if (fs_wire_error_body(q->api, q->srv->cfg.flavor, e, &b) == 0)
		ret = send_bytes(q, e->status, json_type(q->srv), b.data, b.len, retry);
	buf_free(&b);
	return ret;
}

static const char *reason_phrase(int status)
{
	const char *p = MHD_get_reason_phrase_for((unsigned)status);
	return p && *p ? p : "Error";
}

/* The flavor's body for a plain HTTP error status (fault http_status). */
static void status_error(int status, struct fs_httperr *e, char *msgbuf, size_t n)
{
	memset(e, 0, sizeof *e);
	e->status = status;
	e->msg = reason_phrase(status);
	e->llama_type = status >= 500 ? "server_error" : "invalid_request_error";
	e->openai_type = status >= 500 ? "server_error" : "invalid_request_error";
	e->anthropic_type = status >= 500 ? "api_error" : "invalid_request_error";
	/* vLLM names the type after the HTTP status phrase, CamelCase */
	size_t j = 0;
	bool up = true;
	for (const char *p = e->msg; *p && j + 1 < n; p++) {
		if (*p == ' ' || *p == '-') {
			up = true;
			continue;
		}
		msgbuf[j++] = up ? (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p) : *p;
		up = false;
	}
	msgbuf[j] = '\0';
	e->vllm_type = msgbuf;
	switch (status) {
	case 401:
		e->llama_type = "authentication_error";
		e->msg = "Invalid API Key";
		e->anthropic_type = "authentication_error";
		break;
	case 404: e->llama_type = "not_found_error"; e->anthropic_type = "not_found_error"; break;
	case 429:
		e->msg = "Rate limit reached for requests. Please try again in 2s.";
		e->openai_type = "requests";
		e->openai_code = "rate_limit_exceeded";
		e->anthropic_type = "rate_limit_error";
		e->llama_type = "unavailable_error";
		break;
	case 500:
		e->msg = "Internal Server Error";
		e->vllm_type = "InternalServerError";
		break;
	case 501: e->llama_type = "not_supported_error"; break;
	case 503:
		/* llama-server while the model loads: message,type,code order */
		e->msg = "Loading model";
		e->llama_type = "unavailable_error";
		e->llama_msg_first = true;
		e->anthropic_type = "overloaded_error";
		break;
	case 529: e->msg = "Overloaded"; e->anthropic_type = "overloaded_error"; break;
	default: break;
	}
}

/* ---- request parsing ---------------------------------------------------- */

/* Appends the text of a message "content" (string, or parts with "text"). */
static int collect_content(const cJSON *c, struct buf *out)
{
	if (cJSON_IsString(c))
		return buf_puts(out, c->valuestring);
	if (!cJSON_IsArray(c))
		return 0;
	const cJSON *part;
	cJSON_ArrayForEach(part, c)
	{
		if (cJSON_IsString(part)) {
			if (buf_puts(out, part->valuestring) < 0)
				return -1;
			continue;
		}
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
		if (cJSON_IsString(t) && buf_puts(out, t->valuestring) < 0)
			return -1;
		const cJSON *inner = cJSON_GetObjectItemCaseSensitive(part, "content");
		if (inner && (cJSON_IsString(inner) || cJSON_IsArray(inner)) && !cJSON_IsArray(inner->child) &&
		    collect_content(inner, out) < 0)
			return -1;
	}
	return 0;
}

/* The prompt text: message contents (and tool-call arguments), the
 * Anthropic/Ollama "system", or "prompt" for the completion endpoints. */
static int collect_prompt(const cJSON *root, struct buf *out)
{
	if (collect_content(cJSON_GetObjectItemCaseSensitive(root, "system"), out) < 0 ||
	    collect_content(cJSON_GetObjectItemCaseSensitive(root, "prompt"), out) < 0)
		return -1;
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
	const cJSON *m;
	cJSON_ArrayForEach(m, msgs)
	{
		if (collect_content(cJSON_GetObjectItemCaseSensitive(m, "content"), out) < 0)
			return -1;
		const cJSON *tc;
		cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
		{
			const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
			const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
			if (cJSON_IsString(args) && buf_puts(out, args->valuestring) < 0)
				return -1;
		}
	}
	return 0;
}

static bool json_too_deep(const char *s, size_t n)
{
	int depth = 0;
	bool in_str = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > FS_JSON_DEPTH_MAX)
				return true;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return false;
}

static bool get_uint(const cJSON *v, uint64_t *out)
{
	int64_t i;
	if (!v || !jsonh_int(v, &i) || i < 0)
		return false;
	*out = (uint64_t)i;
	return true;
}

/* max_tokens as each API spells it; false when absent or negative. */
static bool requested_tokens(const cJSON *root, enum fs_api api, uint64_t *out)
{
	switch (api) {
	case FS_API_CHAT:
		return get_uint(cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens"), out) ||
		       get_uint(cJSON_GetObjectItemCaseSensitive(root, "max_tokens"), out) ||
		       get_uint(cJSON_GetObjectItemCaseSensitive(root, "n_predict"), out);
	case FS_API_V1_COMPLETIONS:
	case FS_API_ANTHROPIC:
		return get_uint(cJSON_GetObjectItemCaseSensitive(root, "max_tokens"), out) ||
		       get_uint(cJSON_GetObjectItemCaseSensitive(root, "n_predict"), out);
	case FS_API_LLAMA_COMPLETION:
		return get_uint(cJSON_GetObjectItemCaseSensitive(root, "n_predict"), out) ||
		       get_uint(cJSON_GetObjectItemCaseSensitive(root, "max_tokens"), out);
	case FS_API_OLLAMA_CHAT:
	case FS_API_OLLAMA_GENERATE: {
		const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "options");
		return get_uint(cJSON_GetObjectItemCaseSensitive(o, "num_predict"), out);
	}
	}
	return false;
}

/* Parses the request body; on failure *errpos is where parsing stopped
 * (cJSON's global error pointer is shared by all threads, so not that). */
static cJSON *parse_body(const struct fs_req *q, size_t *errpos)
{
	const char *end = NULL;
	*errpos = 0;
	if (!q->body.data)
		return NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(q->body.data, q->body.len, &end, false);
	if (!root)
		*errpos = end && end >= q->body.data && end <= q->body.data + q->body.len
				  ? (size_t)(end - q->body.data)
				  : q->body.len;
	return root;
}

/* llama-server's answer to a body that is not JSON. */
static enum MHD_Result send_parse_error(struct fs_req *q, size_t off)
{
	unsigned line = 1, col = 1;
	for (size_t i = 0; i < off; i++) {
		if (q->body.data[i] == '\n')
			line++, col = 1;
		else
			col++;
	}
	char msg[256];
	struct fs_httperr e = {0};
	if (q->api == FS_API_OLLAMA_CHAT || q->api == FS_API_OLLAMA_GENERATE) {
		snprintf(msg, sizeof msg, "invalid character at offset %zu", off);
		e.status = 400;
	} else {
		snprintf(msg, sizeof msg,
			 "[json.exception.parse_error.101] parse error at line %u, column %u: syntax "
			 "error while parsing value - unexpected input",
			 line, col);
		e.status = 500;
	}
	e.msg = msg;
	e.llama_type = "server_error";
	e.vllm_type = "BadRequestError";
	e.openai_type = "invalid_request_error";
	e.anthropic_type = "invalid_request_error";
	/* whatever the flavor, a parse error looks like llama-server's */
	struct buf b = BUF_INIT;
	enum MHD_Result ret = MHD_NO;
	enum fs_flavor fl = e.status == 500 ? FS_FLAVOR_LLAMA : FS_FLAVOR_OLLAMA;
	q->outcome = "http_error";
	if (fs_wire_error_body(q->api == FS_API_ANTHROPIC ? FS_API_CHAT : q->api, fl, &e, &b) == 0)
		ret = send_bytes(q, e.status, json_type(q->srv), b.data, b.len, NULL);
	buf_free(&b);
	return ret;
}

/* ---- prefix cache and context limit -------------------------------------- */

/* Returns the common-prefix length with the previous processed prompt and
 * makes `text` the new previous prompt. */
static size_t cache_exchange(struct fs_server *s, const char *text, size_t len)
{
	char *copy = malloc(len + 1);
	size_t common = 0;
	pthread_mutex_lock(&s->cache_mu);
	if (s->prev_prompt) {
		size_t lim = len < s->prev_len ? len : s->prev_len;
		while (common < lim && s->prev_prompt[common] == text[common])
			common++;
	}
	if (copy) {
		memcpy(copy, text, len);
		copy[len] = '\0';
		free(s->prev_prompt);
		s->prev_prompt = copy;
		s->prev_len = len;
	}
	pthread_mutex_unlock(&s->cache_mu);
	return common;
}

/* The flavor's refusal of a prompt over --ctx-limit; 0 when it fits (or the
 * flavor truncates instead, which then happened to *prompt). */
static int ctx_check(struct fs_req *q, uint64_t *prompt, uint64_t asked, bool asked_given,
		     bool truncate_ok, struct fs_httperr *e, char *msg, size_t msgn, char *extra,
		     size_t extran)
{
	uint64_t lim = q->srv->cfg.ctx_limit;
	unsigned long long p = *prompt, l = lim, m = asked;
	if (!lim)
		return 0;
	enum fs_flavor fl = q->srv->cfg.flavor;
	bool ollama = fl == FS_FLAVOR_OLLAMA || q->api == FS_API_OLLAMA_CHAT ||
		      q->api == FS_API_OLLAMA_GENERATE;
	memset(e, 0, sizeof *e);
	e->status = 400;
	e->msg = msg;
	if (ollama) {
		if (p <= l)
			return 0;
		if (!truncate_ok) {
			snprintf(msg, msgn, "the input length exceeds the context length");
			return -1;
		}
		/* Ollama keeps the request and cuts the prompt to the context
		 * (runner.go "truncating input prompt"), answering 200 */
		if (q->srv->cfg.verbose)
			fprintf(stderr,
				"level=WARN source=runner.go:131 msg=\"truncating input prompt\" "
				"limit=%llu prompt=%llu keep=5 new=%llu\n",
				l, p, l);
		*prompt = lim;
		return 0;
	}
	if (fl == FS_FLAVOR_VLLM && q->api != FS_API_ANTHROPIC) {
		/* vLLM (serving_engine._validate_input) counts the completion too */
		if (asked_given ? p + m <= l : p < l)
			return 0;
		if (asked_given)
			snprintf(msg, msgn,
				 "This model's maximum context length is %llu tokens. However, you "
				 "requested %llu tokens (%llu in the messages, %llu in the completion). "
				 "Please reduce the length of the messages or completion.",
				 l, p + m, p, m);
		else
			snprintf(msg, msgn,
				 "This model's maximum context length is %llu tokens. However, you "
				 "requested %llu tokens in the messages, Please reduce the length of the "
				 "messages.",
				 l, p);
		e->vllm_type = "BadRequestError";
		return -1;
	}
	if (p <= l)
		return 0;
	if (fl == FS_FLAVOR_LLAMA) {
		snprintf(msg, msgn,
			 "request (%llu tokens) exceeds the available context size (%llu tokens), try "
			 "increasing it",
			 p, l);
		snprintf(extra, extran, "\"n_prompt_tokens\":%llu,\"n_ctx\":%llu", p, l);
		e->llama_type = "exceed_context_size_error";
		e->llama_extra = extra;
		return -1;
	}
	if (q->api == FS_API_ANTHROPIC) {
		snprintf(msg, msgn, "prompt is too long: %llu tokens > %llu maximum", p, l);
		e->anthropic_type = "invalid_request_error";
		return -1;
	}
	snprintf(msg, msgn,
		 "This model's maximum context length is %llu tokens. However, your messages "
		 "resulted in %llu tokens. Please reduce the length of the messages.",
		 l, p);
	e->openai_type = "invalid_request_error";
	e->openai_param = "messages";
	e->openai_code = "context_length_exceeded";
	return -1;
}

/* ---- tokens ------------------------------------------------------------- */

static const char *const words[] = {
	" the",   " code", " test",  " file", " model", " token", " agent", " patch",
	" read",  " line", " value", " fix",  " build", " stack", " error", " cache",
	" queue", " byte", " turn",  " plan", " call",  " tool",  " diff",  " trace",
	" seed",  " loop", " node",  " edit", " path",  " run",   " step",  " time",
};
#define N_WORDS (sizeof words / sizeof words[0])

static const char *const bad_utf8[] = {
	"\xff", "\xc3\x28", "\xed\xa0\x80", "\xf8\x88\x80\x80\x80", "\xe2\x82", "\x80",
};

static const char tool_head[] = "{\"path\":\"src/main.c\",\"note\":\"";

/* The text of token k (1-based) into `t`. */
static int token_text(const struct fs_req *q, uint64_t k, enum fs_part part, struct buf *t)
{
	const char *word = words[(k * 7 + q->num * 3) % N_WORDS];
	int r = 0;
	buf_reset(t);
	if (part == FS_PART_TOOL) {
		uint64_t j = k - q->n_reasoning - 1; /* index among the tool tokens */
		uint64_t m = q->n_tokens - q->n_reasoning;
		if (j == 0)
			r |= buf_puts(t, tool_head);
		r |= buf_puts(t, word + (j == 0)); /* no leading space inside the string start */
		if (j + 1 == m)
			r |= buf_puts(t, "\"}");
		return r;
	}
	r |= buf_puts(t, word);
	if (fs_has(&q->act, FS_F_INVALID_UTF8))
		r |= buf_puts(t, bad_utf8[k % (sizeof bad_utf8 / sizeof bad_utf8[0])]);
	return r;
}

static enum fs_part token_part(const struct fs_req *q, uint64_t k)
{
	if (k <= q->n_reasoning)
		return FS_PART_REASONING;
	return q->tool ? FS_PART_TOOL : FS_PART_CONTENT;
}

/* Scheduled instant of token k (1-based). */
static ar_ns token_time(const struct fs_req *q, uint64_t k)
{
	if (k == 0)
		return q->t_recv;
	ar_ns t = q->t_first_sched + (ar_ns)(k - 1) * q->srv->cfg.itl_ns;
	if (k > 1 && fs_has(&q->act, FS_F_STALL))
		t += (ar_ns)q->act.arg[FS_F_STALL] * AR_NS_PER_MS;
	return t;
}

static void fill_timings(const struct fs_req *q, struct fs_timings *t)
{
	ar_ns now = clock_now();
	ar_ns first = q->t_first_token ? q->t_first_token : now;
	ar_ns last = q->t_last_token ? q->t_last_token : first;
	memset(t, 0, sizeof *t);
	t->prompt_tokens = q->w.prompt_tokens;
	t->cached_tokens = q->w.cached_tokens;
	t->predicted = q->emitted;
	t->reasoning = q->emitted < q->n_reasoning ? q->emitted : q->n_reasoning;
	t->prompt_ms = clock_ms(first - q->t_recv);
	t->predicted_ms = clock_ms(last - first);
	if (q->visible < q->emitted && q->emitted > 1) /* tokens held back (tool calls) */
		t->predicted_ms = clock_ms(token_time(q, q->emitted) - token_time(q, 1));
	t->total_ms = clock_ms(now - q->t_recv);
}

static void count_token(struct fs_req *q)
{
	q->emitted++;
	atomic_fetch_add(&q->srv->m_predicted, 1);
}

/* ---- the stream state machine -------------------------------------------- */

/* A mid-stream fault due now that `emitted` tokens are out, or -1. */
static int due_fault(const struct fs_req *q)
{
	static const enum fs_fault_kind order[] = {
		FS_F_RESET_MID_STREAM, FS_F_CLOSE_MID_STREAM, FS_F_KILL_AFTER,
		FS_F_OOM,              FS_F_CTX_EXCEEDED_MIDSTREAM, FS_F_PEG_ERROR,
	};
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		enum fs_fault_kind k = order[i];
		if (!fs_has(&q->act, k) || q->act.arg[k] != q->emitted)
			continue;
		if (k == FS_F_OOM && q->srv->cfg.flavor != FS_FLAVOR_LLAMA)
			continue; /* the others fail with HTTP 500 before streaming */
		return (int)k;
	}
	return -1;
}

/* Emits a ping when the silence before `next` would exceed the ping
 * interval. 1 = a ping is in `out`, 0 = none due, -1 = interrupted. */
static int ping_due(struct fs_req *q, ar_ns next)
{
	if (!fs_has(&q->act, FS_F_PING))
		return 0;
	ar_ns iv = (ar_ns)q->act.arg[FS_F_PING] * AR_NS_PER_MS;
	ar_ns at = q->last_write + iv;
	if (next <= at)
		return 0;
	if (wait_until(q, at) < 0)
		return -1;
	fs_wire_ping(&q->w, &q->out);
	return 1;
}

static enum step stream_step(struct fs_req *q)
{
	struct buf *o = &q->out;
	struct buf t = BUF_INIT;
	enum step st = ST_EMIT;
	int pr;
	for (;;) {
		switch (q->phase) {
		case PH_START:
			q->phase = PH_PRE;
			if (fs_has(&q->act, FS_F_HUGE_EVENT)) {
				q->phase = PH_HUGE_HEAD;
			} else if (fs_has(&q->act, FS_F_GARBAGE)) {
				q->phase = PH_GARBAGE;
			} else if (fs_has(&q->act, FS_F_ROLE_FIRST) && fs_wire_is_sse(&q->w)) {
				fs_wire_preamble(&q->w, o);
				if (o->len)
					goto out;
			}
			continue;
		case PH_PRE: {
			bool progress = q->prog_i < q->prog_n;
			ar_ns next = q->t_first_sched;
			if (progress)
				next = q->prog_n > 1 ? q->t_recv + (q->t_first_sched - q->t_recv) *
								   (ar_ns)q->prog_i / (ar_ns)(q->prog_n - 1)
						     : q->t_recv;
			if ((pr = ping_due(q, next)) != 0) {
				st = pr < 0 ? ST_ABORT : ST_EMIT;
				goto out;
			}
			if (!progress) {
				q->phase = PH_TOKENS;
				continue;
			}
			if (wait_until(q, next) < 0) {
				st = ST_ABORT;
				goto out;
			}
			uint64_t uncached = q->w.prompt_tokens - q->w.cached_tokens;
			uint64_t done = q->prog_n > 1 ? uncached * q->prog_i / (q->prog_n - 1) : uncached;
			fs_wire_progress(&q->w, o, q->w.cached_tokens + done,
					 (uint64_t)((clock_now() - q->t_recv) / AR_NS_PER_MS));
			q->prog_i++;
			goto out;
		}
		case PH_TOKENS: {
			int f = due_fault(q);
			if (f == FS_F_RESET_MID_STREAM) {
				st = ST_RST;
				goto out;
			}
			if (f == FS_F_CLOSE_MID_STREAM) {
				st = ST_FIN;
				goto out;
			}
			if (f == FS_F_KILL_AFTER) {
				st = ST_KILL;
				goto out;
			}
			if (f == FS_F_OOM || f == FS_F_CTX_EXCEEDED_MIDSTREAM) {
				fs_wire_error_event(&q->w, o, 500,
						    f == FS_F_OOM ? "got exception: std::bad_alloc"
								  : "Context size has been exceeded.",
						    "server_error");
				q->outcome = "error_event";
				q->phase = PH_END;
				goto out;
			}
			if (f == FS_F_PEG_ERROR) {
				q->phase = PH_PEG;
				continue;
			}
			if (q->emitted >= q->n_tokens) {
				q->phase = PH_TAIL;
				continue;
			}
			uint64_t k = q->emitted + 1;
			ar_ns at = token_time(q, k);
			if ((pr = ping_due(q, at)) != 0) {
				st = pr < 0 ? ST_ABORT : ST_EMIT;
				goto out;
			}
			/* format first, then sleep: only the hand-over follows the wake-up */
			enum fs_part part = token_part(q, k);
			if (part == FS_PART_TOOL && fs_wire_tool_is_whole(&q->w)) {
				if (k < q->n_tokens) {
					/* Ollama holds a tool call back until it parses */
					if (wait_until(q, at) < 0) {
						st = ST_ABORT;
						goto out;
					}
					count_token(q);
					continue;
				}
				struct buf args = BUF_INIT;
				for (uint64_t j = q->n_reasoning + 1; j <= q->n_tokens; j++) {
					token_text(q, j, FS_PART_TOOL, &t);
					buf_append(&args, t.data, t.len);
				}
				fs_wire_tool_whole(&q->w, o, args.data ? args.data : "{}");
				buf_free(&args);
			} else {
				token_text(q, k, part, &t);
				fs_wire_token(&q->w, o, part, t.data, t.len, k);
			}
			if (wait_until(q, at) < 0) {
				st = ST_ABORT;
				goto out;
			}
			count_token(q);
			q->out_mark = k;
			goto out;
		}
		case PH_PEG:
			/* llama-server keeps generating but stops delivering deltas; the
			 * parse error comes when the answer would have ended */
			if (wait_until(q, token_time(q, q->n_tokens == FS_NO_LIMIT ? q->emitted + 1
										: q->n_tokens)) < 0) {
				st = ST_ABORT;
				goto out;
			}
			fs_wire_error_event(&q->w, o, 500,
					    "The model produced output that does not match the expected "
					    "peg-native format",
					    "server_error");
			q->outcome = "error_event";
			q->phase = PH_END;
			goto out;
		case PH_TAIL: {
			struct fs_timings tm;
			if (q->emitted == 0 && wait_until(q, q->t_first_sched) < 0) {
				st = ST_ABORT; /* an empty answer still waits for the prefill */
				goto out;
			}
			fill_timings(q, &tm);
			fs_wire_finish(&q->w, o, q->finish, &tm);
			q->phase = PH_END;
			if (o->len)
				goto out;
			continue;
		}
		case PH_GARBAGE: {
			if (q->emitted >= (q->n_tokens ? q->n_tokens : 1)) {
				q->phase = PH_END;
				continue;
			}
			if (wait_until(q, token_time(q, q->emitted + 1)) < 0) {
				st = ST_ABORT;
				goto out;
			}
			size_t n = 16 + (size_t)rng_below(&q->rng, 48);
			for (size_t i = 0; i < n; i++) {
				char c;
				do
					c = (char)rng_below(&q->rng, 256);
				while (c == ':' || c == 'a'); /* no field lines, no "data" */
				buf_putc(o, c);
			}
			count_token(q);
			goto out;
		}
		case PH_HUGE_HEAD: {
			static const char head[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"";
			if (wait_until(q, q->t_first_sched) < 0) {
				st = ST_ABORT;
				goto out;
			}
			uint64_t total = q->act.arg[FS_F_HUGE_EVENT] << 20;
			buf_puts(o, head);
			q->huge_left = total > sizeof head - 1 ? total - (sizeof head - 1) : 0;
			q->phase = PH_HUGE_BODY;
			goto out;
		}
		case PH_HUGE_BODY: {
			if (!q->huge_left) {
				q->phase = PH_END;
				continue;
			}
			size_t n = q->huge_left < FS_HUGE_PIECE ? (size_t)q->huge_left : FS_HUGE_PIECE;
			if (buf_reserve(o, n) < 0) {
				st = ST_ABORT;
				goto out;
			}
			memset(o->data + o->len, 'x', n);
			o->len += n;
			o->data[o->len] = '\0';
			q->huge_left -= n;
			goto out;
		}
		case PH_END:
			st = ST_END;
			goto out;
		}
	}
out:
	buf_free(&t);
	return st;
}

static void record_token(struct fs_req *q, uint64_t k, ar_ns now)
{
	(void)k;
	if (!q->t_first_token)
		q->t_first_token = now;
	q->t_last_token = now;
	if (q->visible < FS_LOG_TIMES)
		q->times[q->visible] = now;
	q->visible++;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *dst, size_t max)
{
	struct fs_req *q = cls;
	(void)pos;
	bool byte_mode = fs_has(&q->act, FS_F_SLOW_DRIP) || fs_has(&q->act, FS_F_SPLIT_EVERY_BYTE);
	for (;;) {
		if (atomic_load(&q->srv->stopping)) {
			q->outcome = "shutdown";
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (q->out_off < q->out.len) {
			size_t n = q->out.len - q->out_off;
			if (n > max)
				n = max;
			if (byte_mode) {
				n = 1;
				if (fs_has(&q->act, FS_F_SLOW_DRIP) && q->out_off > 0) {
					if (wait_until(q, q->drip_last + AR_NS_PER_MS) < 0) {
						q->outcome = "client_gone";
						return MHD_CONTENT_READER_END_WITH_ERROR;
					}
				}
			}
			memcpy(dst, q->out.data + q->out_off, n);
			q->out_off += n;
			ar_ns now = clock_now();
			q->drip_last = now;
			if (q->out_off == q->out.len) {
				q->last_write = now;
				if (q->out_mark)
					record_token(q, q->out_mark, now);
			}
			return (ssize_t)n;
		}
		buf_reset(&q->out);
		q->out_off = 0;
		q->out_mark = 0;
		switch (stream_step(q)) {
		case ST_EMIT: continue;
		case ST_END:
			if (!q->outcome)
				q->outcome = "ok";
			return MHD_CONTENT_READER_END_OF_STREAM;
		case ST_FIN:
			shutdown(q->fd, SHUT_WR);
			q->outcome = "fin";
			return MHD_CONTENT_READER_END_WITH_ERROR;
		case ST_RST:
			wait_drained(q->fd);
			conn_reset(q->fd);
			q->outcome = "reset";
			return MHD_CONTENT_READER_END_WITH_ERROR;
		case ST_KILL:
			wait_drained(q->fd);
			raise(SIGKILL);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		case ST_ABORT:
			if (!q->outcome)
				q->outcome = atomic_load(&q->srv->stopping) ? "shutdown" : "client_gone";
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
}

/* ---- generation requests ------------------------------------------------- */

static enum MHD_Result start_stream(struct fs_req *q, bool as_stream)
{
	struct MHD_Response *r =
		MHD_create_response_from_callback(as_stream ? MHD_SIZE_UNKNOWN : q->out.len,
						  FS_HUGE_PIECE, stream_reader, q, NULL);
	if (!r)
		return MHD_NO;
	add_common_headers(q->srv, r);
	const char *type = as_stream ? fs_wire_stream_type(&q->w) : json_type(q->srv);
	if (fs_has(&q->act, FS_F_WRONG_CONTENT_TYPE))
		type = "text/html";
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (as_stream) {
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
		if (q->srv->cfg.flavor == FS_FLAVOR_LLAMA)
			MHD_add_response_header(r, "X-Accel-Buffering", "no");
	}
	q->last_write = clock_now();
	enum MHD_Result ret = MHD_queue_response(q->conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	q->status = 200;
	return ret;
}

/* A non-streamed answer: wait for the moment the whole answer exists (or a
 * fault fires), then send it in one response. */
static enum MHD_Result run_plain(struct fs_req *q)
{
	uint64_t n = q->n_tokens;
	int fault = -1;
	uint64_t at = n;
	static const enum fs_fault_kind mids[] = {FS_F_RESET_MID_STREAM, FS_F_CLOSE_MID_STREAM,
						  FS_F_KILL_AFTER, FS_F_OOM,
						  FS_F_CTX_EXCEEDED_MIDSTREAM};
	for (size_t i = 0; i < sizeof mids / sizeof mids[0]; i++) {
		enum fs_fault_kind k = mids[i];
		if (fs_has(&q->act, k) && q->act.arg[k] <= n && (fault < 0 || q->act.arg[k] < at)) {
			fault = (int)k;
			at = q->act.arg[k];
		}
	}
	if (n == FS_NO_LIMIT && fault < 0) {
		/* endless, not streamed: the answer never comes */
		while (wait_until(q, clock_now() + FS_SLICE_NS) == 0)
			;
		q->outcome = atomic_load(&q->srv->stopping) ? "shutdown" : "client_gone";
		return MHD_NO;
	}
	/* token N's instant; an empty answer still waits for the prefill */
	ar_ns when = at ? token_time(q, at) : fault >= 0 ? q->t_recv : q->t_first_sched;
	if (wait_until(q, when) < 0) {
		q->outcome = atomic_load(&q->srv->stopping) ? "shutdown" : "client_gone";
		return MHD_NO;
	}
	q->emitted = at;
	atomic_fetch_add(&q->srv->m_predicted, at);
	struct fs_httperr e = {0};
	switch (fault) {
	case FS_F_RESET_MID_STREAM:
		conn_reset(q->fd);
		q->outcome = "reset";
		return MHD_NO;
	case FS_F_CLOSE_MID_STREAM:
		shutdown(q->fd, SHUT_WR);
		q->outcome = "fin";
		return MHD_NO;
	case FS_F_KILL_AFTER: raise(SIGKILL); return MHD_NO;
	case FS_F_OOM:
	case FS_F_CTX_EXCEEDED_MIDSTREAM:
		e.status = 500;
		e.msg = fault == FS_F_OOM ? "got exception: std::bad_alloc" : "Context size has been exceeded.";
		e.llama_type = "server_error";
		e.vllm_type = "InternalServerError";
		e.openai_type = "server_error";
		e.anthropic_type = "api_error";
		return send_error(q, &e);
	default: break;
	}
	if (fs_has(&q->act, FS_F_PEG_ERROR)) {
		e.status = 500;
		e.msg = "The model produced output that does not match the expected peg-native format";
		e.llama_type = "server_error";
		e.vllm_type = "InternalServerError";
		e.openai_type = "server_error";
		e.anthropic_type = "api_error";
		return send_error(q, &e);
	}

	struct buf content = BUF_INIT, reasoning = BUF_INIT, tool = BUF_INIT, t = BUF_INIT;
	buf_init(&content, FS_CONTENT_MAX);
	buf_init(&reasoning, FS_CONTENT_MAX);
	buf_init(&tool, FS_CONTENT_MAX);
	/* every token is at least 4 bytes: past FS_CONTENT_MAX / 4 the text is full */
	for (uint64_t k = 1; k <= n && k <= FS_CONTENT_MAX / 4; k++) {
		enum fs_part part = token_part(q, k);
		struct buf *dst = part == FS_PART_CONTENT ? &content
				  : part == FS_PART_REASONING ? &reasoning
							      : &tool;
		token_text(q, k, part, &t);
		buf_append(dst, t.data, t.len);
	}
	ar_ns now = clock_now();
	record_token(q, 1, now);
	struct fs_timings tm;
	fill_timings(q, &tm);
	tm.prompt_ms = clock_ms(token_time(q, 1) - q->t_recv);
	tm.predicted_ms = n > 1 ? clock_ms(token_time(q, n) - token_time(q, 1)) : 0;
	buf_init(&q->out, FS_OUT_MAX);
	int rc = fs_wire_body(&q->w, &q->out, content.data, content.len, reasoning.data, reasoning.len,
			      q->tool ? (tool.data ? tool.data : "{}") : NULL, q->finish, &tm);
	buf_free(&content);
	buf_free(&reasoning);
	buf_free(&tool);
	buf_free(&t);
	if (rc < 0)
		return MHD_NO;
	q->outcome = "ok";
	if (fs_has(&q->act, FS_F_SLOW_DRIP) || fs_has(&q->act, FS_F_SPLIT_EVERY_BYTE)) {
		q->phase = PH_END;
		return start_stream(q, false);
	}
	const char *type = fs_has(&q->act, FS_F_WRONG_CONTENT_TYPE) ? "text/html" : json_type(q->srv);
	return send_bytes(q, 200, type, q->out.data, q->out.len, NULL);
}

/* Faults that answer before the request is even parsed. True when one did
 * (its result in *ret). */
static bool answer_at_once(struct fs_req *q, enum MHD_Result *ret)
{
	*ret = MHD_NO;
	if (fs_has(&q->act, FS_F_EXIT)) {
		fflush(NULL);
		_exit((int)q->act.arg[FS_F_EXIT]);
	}
	if (fs_has(&q->act, FS_F_RESET_BEFORE_HEADERS)) {
		conn_reset(q->fd);
		q->outcome = "reset";
		return true;
	}
	if (fs_has(&q->act, FS_F_RESET_MID_HEADERS)) {
		static const char partial[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-str";
		int one = 1;
		setsockopt(q->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		(void)send(q->fd, partial, sizeof partial - 1, MSG_NOSIGNAL);
		wait_drained(q->fd);
		conn_reset(q->fd);
		q->outcome = "reset";
		return true;
	}
	struct fs_httperr e;
	char vt[64];
	if (fs_has(&q->act, FS_F_HTML_404)) {
		*ret = send_html_404(q);
	} else if (fs_has(&q->act, FS_F_HTTP_STATUS)) {
		status_error((int)q->act.arg[FS_F_HTTP_STATUS], &e, vt, sizeof vt);
		*ret = send_error(q, &e);
	} else if (q->body_too_big) {
		status_error(413, &e, vt, sizeof vt);
		*ret = send_error(q, &e);
	} else {
		return false;
	}
	return true;
}

/* Turns what was asked (`asked` tokens) and the faults into the plan: how
 * many tokens, which are reasoning, whether a tool call, when the first. */
static void plan_answer(struct fs_req *q, uint64_t asked)
{
	const struct fs_config *cfg = &q->srv->cfg;
	const struct fs_active *a = &q->act;
	uint64_t ptok = q->w.prompt_tokens, n = asked;
	q->finish = FS_FINISH_LENGTH;
	if (fs_has(a, FS_F_IGNORE_MAX_TOKENS))
		n = a->arg[FS_F_IGNORE_MAX_TOKENS];
	if (fs_has(a, FS_F_STOP_EARLY) && a->arg[FS_F_STOP_EARLY] < n) {
		n = a->arg[FS_F_STOP_EARLY];
		q->finish = FS_FINISH_STOP;
	}
	/* llama-server stops at a full context (no context shift) */
	if (cfg->ctx_limit && cfg->flavor == FS_FLAVOR_LLAMA && ptok + n > cfg->ctx_limit) {
		n = cfg->ctx_limit > ptok ? cfg->ctx_limit - ptok : 0;
		q->finish = FS_FINISH_LENGTH;
	}
	if (fs_has(a, FS_F_ENDLESS))
		n = FS_NO_LIMIT;
	q->n_tokens = n;
	if (fs_has(a, FS_F_REASONING)) {
		uint64_t r = a->arg[FS_F_REASONING];
		q->n_reasoning = r == UINT64_MAX ? (n == FS_NO_LIMIT ? 8 : n / 2) : r;
		if (q->n_reasoning > n)
			q->n_reasoning = n;
	}
	if (fs_has(a, FS_F_TOOL_CALL) && n > 0 && n != FS_NO_LIMIT) {
		q->tool = true;
		if (q->n_reasoning >= n)
			q->n_reasoning = n - 1;
		if (q->finish == FS_FINISH_LENGTH)
			q->finish = FS_FINISH_TOOL;
	}
	q->t_first_sched = q->t_recv + cfg->ttft_ns;
	if (fs_has(a, FS_F_STALL_BEFORE_FIRST))
		q->t_first_sched += (ar_ns)a->arg[FS_F_STALL_BEFORE_FIRST] * AR_NS_PER_MS;
	if (fs_has(a, FS_F_PROMPT_PROGRESS)) /* one chunk at the start, one per n_batch (2048) */
		q->prog_n = 1 + (ptok - q->w.cached_tokens + 2047) / 2048;
}

/* oom / ctx_exceeded that come as HTTP 500 instead of a stream: after the
 * prefill, in the flavor's words. */
static enum MHD_Result send_early_500(struct fs_req *q)
{
	enum fs_flavor fl = q->srv->cfg.flavor;
	if (wait_until(q, q->t_first_sched) < 0) {
		q->outcome = "client_gone";
		return MHD_NO;
	}
	struct fs_httperr e = {.status = 500,
			       .llama_type = "server_error",
			       .vllm_type = "InternalServerError",
			       .openai_type = "server_error",
			       .anthropic_type = "api_error"};
	if (!fs_has(&q->act, FS_F_OOM))
		e.msg = "Context size has been exceeded.";
	else if (fl == FS_FLAVOR_VLLM)
		e.msg = "EngineCore encountered an issue. See stack trace (above) for the root cause.";
	else if (fl == FS_FLAVOR_OLLAMA || q->api == FS_API_OLLAMA_CHAT ||
		 q->api == FS_API_OLLAMA_GENERATE)
		e.msg = "llama runner process has terminated: cudaMalloc failed: out of memory";
	else if (fl == FS_FLAVOR_OPENAI)
		e.msg = "The server had an error while processing your request. Sorry about that!";
	else
		e.msg = "got exception: std::bad_alloc";
	return send_error(q, &e);
}

static enum MHD_Result handle_generation(struct fs_req *q)
{
	struct fs_server *s = q->srv;
	enum MHD_Result ret = MHD_NO;
	q->num = atomic_fetch_add(&s->req_counter, 1) + 1;
	fs_faults_select(s->cfg.faults, s->cfg.n_faults, q->num, &q->act);
	rng_seed(&q->rng, q->num);
	if (answer_at_once(q, &ret))
		return ret;

	/* parse */
	if (!q->body.data || json_too_deep(q->body.data, q->body.len)) {
		struct fs_httperr e = {.status = 400,
				       .msg = q->body.data ? "request JSON nests too deeply"
							   : "request body is empty",
				       .llama_type = "invalid_request_error",
				       .vllm_type = "BadRequestError",
				       .openai_type = "invalid_request_error",
				       .anthropic_type = "invalid_request_error"};
		if (!q->body.data) /* an empty body is a parse error for llama-server */
			return send_parse_error(q, 0);
		return send_error(q, &e);
	}
	size_t errpos;
	cJSON *root = parse_body(q, &errpos);
	if (!root)
		return send_parse_error(q, errpos);
	struct buf prompt = BUF_INIT;
	buf_init(&prompt, FS_BODY_MAX);
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
	bool needs_msgs = q->api == FS_API_CHAT || q->api == FS_API_ANTHROPIC ||
			  q->api == FS_API_OLLAMA_CHAT;
	if (!cJSON_IsObject(root) || (needs_msgs && !cJSON_IsArray(msgs))) {
		struct fs_httperr e = {.status = 400,
				       .msg = cJSON_IsObject(root) ? "Expected 'messages' to be an array"
								   : "Expected the request to be a JSON object",
				       .llama_type = "invalid_request_error",
				       .vllm_type = "BadRequestError",
				       .openai_type = "invalid_request_error",
				       .anthropic_type = "invalid_request_error"};
		ret = send_error(q, &e);
		goto out;
	}
	if (collect_prompt(root, &prompt) < 0) {
		struct fs_httperr e;
		char vt[64];
		status_error(413, &e, vt, sizeof vt);
		ret = send_error(q, &e);
		goto out;
	}

	/* plan */
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
	snprintf(q->model, sizeof q->model, "%s",
		 s->cfg.flavor != FS_FLAVOR_LLAMA && cJSON_IsString(model) && *model->valuestring
			 ? model->valuestring
			 : s->cfg.model);
	const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
	bool ollama_api = q->api == FS_API_OLLAMA_CHAT || q->api == FS_API_OLLAMA_GENERATE;
	q->stream = ollama_api ? !cJSON_IsFalse(stream) : cJSON_IsTrue(stream);
	uint64_t asked = s->cfg.default_tokens;
	bool asked_given = requested_tokens(root, q->api, &asked);
	if (asked > UINT32_MAX)
		asked = UINT32_MAX;
	const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
	const cJSON *trunc = cJSON_GetObjectItemCaseSensitive(root, "truncate");

	uint64_t ptok = prompt.len ? (prompt.len + 3) / 4 : 1;
	struct fs_httperr ce;
	char cmsg[512], cextra[128];
	if (ctx_check(q, &ptok, asked, asked_given, !cJSON_IsFalse(trunc), &ce, cmsg, sizeof cmsg,
		      cextra, sizeof cextra) < 0) {
		ret = send_error(q, &ce);
		goto out;
	}
	size_t common = cache_exchange(s, prompt.data ? prompt.data : "", prompt.len);
	uint64_t cached = common / 4;
	if (cached >= ptok)
		cached = ptok - 1; /* the last prompt token is always evaluated again */

	fs_wire_init(&q->w, q->api, s->cfg.flavor, q->model, q->num ^ s->id_seed);
	q->w.prompt_tokens = ptok;
	q->w.cached_tokens = cached;
	q->w.n_predict = asked;
	q->w.stream = q->stream;
	q->w.include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
	q->w.no_usage = fs_has(&q->act, FS_F_NO_USAGE);
	q->w.no_done = fs_has(&q->act, FS_F_NO_DONE);

	plan_answer(q, asked);
	uint64_t n = q->n_tokens;

	atomic_fetch_add(&s->m_prompt_tokens, ptok - cached);
	atomic_fetch_add(&s->m_cached_tokens, cached);
	atomic_fetch_add(&s->m_prompt_ns, (uint64_t)s->cfg.ttft_ns);
	atomic_fetch_add(&s->m_processing, 1);
	atomic_fetch_add(&s->m_requests, 1);
	atomic_max(&s->m_tokens_max, ptok + (n == FS_NO_LIMIT ? 0 : n));
	q->counted = true;

	/* failures that come instead of the answer, once the prompt is processed */
	if ((fs_has(&q->act, FS_F_OOM) &&
	     (s->cfg.flavor != FS_FLAVOR_LLAMA || q->act.arg[FS_F_OOM] == 0)) ||
	    (fs_has(&q->act, FS_F_CTX_EXCEEDED_MIDSTREAM) &&
	     q->act.arg[FS_F_CTX_EXCEEDED_MIDSTREAM] == 0)) {
		ret = send_early_500(q);
		goto out;
	}

	buf_init(&q->out, FS_OUT_MAX);
	bool as_stream = q->stream || fs_has(&q->act, FS_F_GARBAGE) || fs_has(&q->act, FS_F_HUGE_EVENT);
	if (as_stream) {
		q->w.stream = true;
		ret = start_stream(q, true);
	} else {
		ret = run_plain(q);
	}
out:
	cJSON_Delete(root);
	buf_free(&prompt);
	return ret;
}

/* ---- other endpoints ----------------------------------------------------- */

static enum MHD_Result handle_tokenize(struct fs_req *q)
{
	size_t errpos = 0;
	cJSON *root = q->body.data && !json_too_deep(q->body.data, q->body.len)
			      ? parse_body(q, &errpos)
			      : NULL;
	if (!root)
		return send_parse_error(q, errpos);
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
	bool pieces = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "with_pieces"));
	const char *s = cJSON_IsString(content) ? content->valuestring : "";
	size_t len = strlen(s);
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"tokens\":[");
	for (size_t i = 0; i < len; i += 4) {
		size_t m = len - i < 4 ? len - i : 4;
		uint64_t h = 1469598103934665603ULL;
		for (size_t j = 0; j < m; j++)
			h = (h ^ (unsigned char)s[i + j]) * 1099511628211ULL;
		unsigned long long id = h % 151643;
		if (pieces) {
			buf_printf(&b, "%s{\"id\":%llu,\"piece\":", i ? "," : "", id);
			jsonh_put_string_raw(&b, s + i, m);
			buf_putc(&b, '}');
		} else {
			buf_printf(&b, "%s%llu", i ? "," : "", id);
		}
	}
	buf_puts(&b, "]}");
	enum MHD_Result ret = b.data ? send_bytes(q, 200, json_type(q->srv), b.data, b.len, NULL) : MHD_NO;
	buf_free(&b);
	cJSON_Delete(root);
	return ret;
}

static enum MHD_Result handle_models(struct fs_req *q)
{
	struct fs_server *s = q->srv;
	struct buf b = BUF_INIT;
	long long now = (long long)time(NULL);
	unsigned long long ctx = s->cfg.ctx_limit ? s->cfg.ctx_limit : 131072;
	if (s->cfg.flavor == FS_FLAVOR_LLAMA) {
		buf_puts(&b, "{\"models\":[{\"name\":");
		jsonh_put_string_raw(&b, s->cfg.model, strlen(s->cfg.model));
		buf_puts(&b, ",\"model\":");
		jsonh_put_string_raw(&b, s->cfg.model, strlen(s->cfg.model));
		buf_puts(&b, ",\"type\":\"model\",\"capabilities\":[\"completion\"]}],\"object\":\"list\","
			     "\"data\":[{\"id\":");
		jsonh_put_string_raw(&b, s->cfg.model, strlen(s->cfg.model));
		buf_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"llamacpp\","
			       "\"meta\":{\"n_ctx\":%llu,\"n_ctx_train\":131072,\"n_vocab\":151936}}]}",
			   now, ctx);
	} else {
		static const char *const owner[] = {"llamacpp", "vllm", "library", "system"};
		buf_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":");
		jsonh_put_string_raw(&b, s->cfg.model, strlen(s->cfg.model));
		buf_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"%s\"", now,
			   owner[s->cfg.flavor]);
		if (s->cfg.flavor == FS_FLAVOR_VLLM)
			buf_printf(&b, ",\"max_model_len\":%llu", ctx);
		buf_puts(&b, "}]}");
	}
	enum MHD_Result ret = b.data ? send_bytes(q, 200, json_type(s), b.data, b.len, NULL) : MHD_NO;
	buf_free(&b);
	return ret;
}

static enum MHD_Result handle_metrics(struct fs_req *q)
{
	struct fs_server *s = q->srv;
	struct buf b = BUF_INIT;
	double prompt_s = (double)atomic_load(&s->m_prompt_ns) / 1e9;
	double pred_s = (double)atomic_load(&s->m_predicted_ns) / 1e9;
	unsigned long long pt = atomic_load(&s->m_prompt_tokens), ct = atomic_load(&s->m_cached_tokens),
			   pr = atomic_load(&s->m_predicted);
#define COUNTER(name, help, fmt, v)                                                              \
	buf_printf(&b, "# HELP llamacpp:" name " " help "\n# TYPE llamacpp:" name " counter\nllamacpp:" name \
		       " " fmt "\n",                                                              \
		   v)
#define GAUGE(name, help, fmt, v)                                                                \
	buf_printf(&b, "# HELP llamacpp:" name " " help "\n# TYPE llamacpp:" name " gauge\nllamacpp:" name \
		       " " fmt "\n",                                                              \
		   v)
	COUNTER("prompt_tokens_total", "Number of prompt tokens processed, excluding cached tokens",
		"%llu", pt);
	COUNTER("prompt_tokens_cached_total", "Number of prompt tokens reused from the cache", "%llu",
		ct);
	COUNTER("prompt_seconds_total", "Total time spent processing prompts", "%.6f", prompt_s);
	COUNTER("tokens_predicted_total", "Number of generation tokens processed", "%llu", pr);
	COUNTER("tokens_predicted_seconds_total", "Total time spent generating tokens", "%.6f", pred_s);
	COUNTER("n_decode_total", "Total number of llama_decode() calls", "%llu", pr);
	COUNTER("n_tokens_max", "Largest observed sequence length (prompt + generation)", "%llu",
		(unsigned long long)atomic_load(&s->m_tokens_max));
	GAUGE("prompt_tokens_seconds", "Average prompt throughput in tokens/s", "%.6g",
	      prompt_s > 0 ? (double)pt / prompt_s : 0.0);
	GAUGE("predicted_tokens_seconds", "Average generation throughput in tokens/s", "%.6g",
	      pred_s > 0 ? (double)pr / pred_s : 0.0);
	GAUGE("requests_processing", "Number of requests processing", "%llu",
	      (unsigned long long)atomic_load(&s->m_processing));
	GAUGE("requests_deferred", "Number of requests deferred", "%d", 0);
#undef COUNTER
#undef GAUGE
	enum MHD_Result ret =
		b.data ? send_bytes(q, 200, "text/plain; version=0.0.4", b.data, b.len, NULL) : MHD_NO;
	buf_free(&b);
	return ret;
}

/* ---- MHD callbacks ------------------------------------------------------- */

static enum route route_of(const char *method, const char *url, enum fs_api *api)
{
	static const struct {
		const char *path;
		enum fs_api api;
	} gen[] = {
		{"/v1/chat/completions", FS_API_CHAT},     {"/chat/completions", FS_API_CHAT},
		{"/v1/completions", FS_API_V1_COMPLETIONS}, {"/completions", FS_API_V1_COMPLETIONS},
		{"/completion", FS_API_LLAMA_COMPLETION},   {"/api/chat", FS_API_OLLAMA_CHAT},
		{"/api/generate", FS_API_OLLAMA_GENERATE},  {"/v1/messages", FS_API_ANTHROPIC},
	};
	*api = FS_API_CHAT;
	bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
	if (post)
		for (size_t i = 0; i < sizeof gen / sizeof gen[0]; i++)
			if (strcmp(url, gen[i].path) == 0) {
				*api = gen[i].api;
				return RT_GEN;
			}
	if (get && (strcmp(url, "/health") == 0 || strcmp(url, "/v1/health") == 0))
		return RT_HEALTH;
	if (get && (strcmp(url, "/v1/models") == 0 || strcmp(url, "/models") == 0))
		return RT_MODELS;
	if (get && strcmp(url, "/metrics") == 0)
		return RT_METRICS;
	if (post && strcmp(url, "/tokenize") == 0)
		return RT_TOKENIZE;
	return RT_NOT_FOUND;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct fs_server *s = cls;
	struct fs_req *q = *con_cls;
	(void)version;
	if (!q) {
		q = calloc(1, sizeof *q);
		if (!q)
			return MHD_NO;
		q->srv = s;
		q->conn = conn;
		q->fd = -1;
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci)
			q->fd = ci->connect_fd;
		q->route = route_of(method, url, &q->api);
		snprintf(q->path, sizeof q->path, "%s", url);
		buf_init(&q->body, FS_BODY_MAX);
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!q->body_too_big && buf_append(&q->body, upload, *upload_size) < 0)
			q->body_too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	q->t_recv = clock_now();
	if (s->cfg.arrival_stamps && q->fd >= 0) {
		/* the request's last bytes reached this host at k: the schedule and
		 * the log count from there, the thread's wake-up included */
		ar_ns k = fs_rx_last(q->fd);
		if (k > 0 && k <= q->t_recv && q->t_recv - k < AR_NS_PER_S) {
			q->t_recv = k;
			q->recv_kernel = true;
		}
	}
	switch (q->route) {
	case RT_GEN: return handle_generation(q);
	case RT_HEALTH: {
		static const char ok[] = "{\"status\":\"ok\"}";
		return send_bytes(q, 200, json_type(s), ok, sizeof ok - 1, NULL);
	}
	case RT_MODELS: return handle_models(q);
	case RT_TOKENIZE: return handle_tokenize(q);
	case RT_METRICS: return handle_metrics(q);
	case RT_NOT_FOUND: break;
	}
	return send_html_404(q);
}

static void write_log(struct fs_server *s, struct fs_req *q, enum MHD_RequestTerminationCode tc)
{
	struct buf b = BUF_INIT;
	const char *outcome = q->outcome;
	if (!outcome)
		outcome = tc == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "ok"
			  : tc == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
			  : tc == MHD_REQUEST_TERMINATED_CLIENT_ABORT   ? "client_gone"
									 : "error";
	buf_printf(&b, "{\"req\":%llu,\"path\":", (unsigned long long)q->num);
	jsonh_put_string_raw(&b, q->path, strlen(q->path));
	buf_printf(&b, ",\"stream\":%s,\"status\":%d,\"t_recv_ns\":%lld,\"t_recv_from\":\"%s\",\"t_first_token_ns\":",
		   q->stream ? "true" : "false", q->status, (long long)q->t_recv, q->recv_kernel ? "kernel" : "read");
	if (q->t_first_token)
		buf_printf(&b, "%lld", (long long)q->t_first_token);
	else
		buf_puts(&b, "null");
	buf_puts(&b, ",\"token_times_ns\":[");
	uint64_t nt = q->visible < FS_LOG_TIMES ? q->visible : FS_LOG_TIMES;
	for (uint64_t i = 0; i < nt; i++)
		buf_printf(&b, "%s%lld", i ? "," : "", (long long)q->times[i]);
	buf_printf(&b, "],\"tokens\":%llu,\"prompt_tokens\":%llu,\"cached_tokens\":%llu,\"fault\":",
		   (unsigned long long)q->emitted, (unsigned long long)q->w.prompt_tokens,
		   (unsigned long long)q->w.cached_tokens);
	if (q->act.desc[0])
		jsonh_put_string_raw(&b, q->act.desc, strlen(q->act.desc));
	else
		buf_puts(&b, "null");
	buf_printf(&b, ",\"outcome\":\"%s\"}\n", outcome);
	if (b.data) {
		pthread_mutex_lock(&s->log_mu);
		fwrite(b.data, 1, b.len, s->log);
		fflush(s->log);
		pthread_mutex_unlock(&s->log_mu);
	}
	buf_free(&b);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode tc)
{
	struct fs_server *s = cls;
	struct fs_req *q = *con_cls;
	(void)conn;
	if (!q)
		return;
	*con_cls = NULL;
	if (q->t_first_token && q->t_last_token > q->t_first_token)
		atomic_fetch_add(&s->m_predicted_ns, (uint64_t)(q->t_last_token - q->t_first_token));
	if (q->counted)
		atomic_fetch_sub(&s->m_processing, 1);
	if (s->log && q->route == RT_GEN && q->num)
		write_log(s, q, tc);
	buf_free(&q->body);
	buf_free(&q->out);
	free(q);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	const struct fs_server *s = cls;
	(void)socket_context;
	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci) {
		int one = 1;
		setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (s->cfg.arrival_stamps) {
			fs_rx_forget(ci->connect_fd);
			setsockopt(ci->connect_fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
		}
	}
}

/* ---- command line -------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ar-faultsrv [--port N|0] [--port-file F] [--ttft-ms X] [--itl-ms Y]\n"
		"                   [--fault SPEC]... [--flavor llama|vllm|ollama|openai]\n"
		"                   [--ctx-limit TOKENS] [--log FILE] [--threads N]\n"
		"                   [--default-tokens N] [--model NAME] [--arrival-stamps]\n"
		"                   [--verbose]\n"
		"\n"
		"A scripted, fault-injecting LLM server on 127.0.0.1 (tests/peers/README.md).\n"
		"  --port N           port to bind (0 = any free port; default 8080)\n"
		"  --port-file F      write the bound port to F once listening\n"
		"  --ttft-ms X        first token X ms after the request was read (default 50)\n"
		"  --arrival-stamps   ... after it arrived: the kernel's receive time of its last\n"
		"                     bytes, the connection thread's wake-up included (t_recv_ns)\n"
		"  --itl-ms Y         one token every Y ms after that (default 10)\n"
		"  --fault SPEC       NAME[@K][:ARG], K = 1-based generation request (repeatable)\n"
		"  --flavor F         wire shapes and errors of llama (default), vllm, ollama, openai\n"
		"  --ctx-limit N      refuse (or, ollama, truncate) prompts over N tokens (32k ok)\n"
		"  --log FILE         append one JSON line per generation request\n"
		"  --threads N        most concurrent connections, one thread each (default 4096)\n"
		"  --default-tokens N answer length when the request names none (default 16)\n"
		"  --model NAME       model name reported (default faultsrv-model)\n"
		"faults:\n%s",
		fs_fault_help());
}

static int parse_ms(const char *opt, const char *v, int64_t *out)
{
	double ms;
	struct ar_err e = {0};
	if (units_parse_real(v, &ms, &e) < 0 || ms < 0 || ms > 86400e3) {
		fprintf(stderr, "ar-faultsrv: %s: '%s' is not a duration in ms\n", opt, v);
		return -1;
	}
	*out = (int64_t)(ms * 1e6 + 0.5);
	return 0;
}

static int parse_args(int argc, char **argv, struct fs_config *c)
{
	memset(c, 0, sizeof *c);
	c->port = 8080;
	c->ttft_ns = 50 * AR_NS_PER_MS;
	c->itl_ns = 10 * AR_NS_PER_MS;
	c->flavor = FS_FLAVOR_LLAMA;
	c->max_conns = 4096;
	c->default_tokens = 16;
	c->model = "faultsrv-model";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		struct ar_err e = {0};
		uint64_t v;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(a, "--verbose") == 0) {
			c->verbose = true;
			continue;
		}
		if (strcmp(a, "--arrival-stamps") == 0) {
			c->arrival_stamps = true;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "ar-faultsrv: unknown option or missing value: '%s'\n", a);
			return -1;
		}
		const char *val = argv[++i];
		if (strcmp(a, "--port") == 0) {
			if (units_parse_count(val, &v, &e) < 0 || v > 65535) {
				fprintf(stderr, "ar-faultsrv: --port: '%s' is not a port\n", val);
				return -1;
			}
			c->port = (uint16_t)v;
		} else if (strcmp(a, "--port-file") == 0) {
			c->port_file = val;
		} else if (strcmp(a, "--ttft-ms") == 0) {
			if (parse_ms(a, val, &c->ttft_ns) < 0)
				return -1;
		} else if (strcmp(a, "--itl-ms") == 0) {
			if (parse_ms(a, val, &c->itl_ns) < 0)
				return -1;
		} else if (strcmp(a, "--fault") == 0) {
			if (c->n_faults == FS_MAX_FAULTS) {
				fprintf(stderr, "ar-faultsrv: more than %d --fault options\n", FS_MAX_FAULTS);
				return -1;
			}
			if (fs_fault_parse(val, &c->faults[c->n_faults], &e) < 0) {
				fprintf(stderr, "ar-faultsrv: %s\n", e.msg);
				return -1;
			}
			c->n_faults++;
		} else if (strcmp(a, "--flavor") == 0) {
			int f = -1;
			for (int k = 0; k < 4; k++)
				if (strcmp(val, flavor_name((enum fs_flavor)k)) == 0)
					f = k;
			if (f < 0) {
				fprintf(stderr, "ar-faultsrv: --flavor: unknown flavor '%s'\n", val);
				return -1;
			}
			c->flavor = (enum fs_flavor)f;
		} else if (strcmp(a, "--ctx-limit") == 0) {
			if (units_parse_tokens(val, &c->ctx_limit, &e) < 0) {
				fprintf(stderr, "ar-faultsrv: --ctx-limit: %s\n", e.msg);
				return -1;
			}
		} else if (strcmp(a, "--log") == 0) {
			c->log_path = val;
		} else if (strcmp(a, "--threads") == 0) {
			if (units_parse_count(val, &c->max_conns, &e) < 0 || c->max_conns == 0 ||
			    c->max_conns > 1000000) {
				fprintf(stderr, "ar-faultsrv: --threads: '%s' is not a count\n", val);
				return -1;
			}
		} else if (strcmp(a, "--default-tokens") == 0) {
			if (units_parse_count(val, &c->default_tokens, &e) < 0 ||
			    c->default_tokens > UINT32_MAX) {
				fprintf(stderr, "ar-faultsrv: --default-tokens: '%s' is not a count\n", val);
				return -1;
			}
		} else if (strcmp(a, "--model") == 0) {
			c->model = val;
		} else {
			fprintf(stderr, "ar-faultsrv: unknown option '%s'\n", a);
			return -1;
		}
	}
	return 0;
}

static int write_port_file(const char *path, unsigned port)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* The one piece of process-wide state: where a stop signal is announced. */
static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;
	(void)!write(stop_pipe[1], &c, 1);
	errno = saved;
}

int main(int argc, char **argv)
{
	struct fs_server s;
	memset(&s, 0, sizeof s);
	if (parse_args(argc, argv, &s.cfg) < 0) {
		fprintf(stderr, "try 'ar-faultsrv --help'\n");
		return 2;
	}
	int rc = 1;
	s.id_seed = rng_hash("faultsrv") ^ (uint64_t)getpid() ^ (uint64_t)time(NULL) << 20;
	pthread_mutex_init(&s.cache_mu, NULL);
	pthread_mutex_init(&s.log_mu, NULL);

	/* one descriptor per connection: take all the kernel allows */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	uint64_t max_conns = s.cfg.max_conns;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < max_conns + 32)
		max_conns = rl.rlim_cur > 64 ? rl.rlim_cur - 32 : 32;
	if (s.cfg.arrival_stamps &&
	    fs_rx_init(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (1u << 20)
			       ? (int)rl.rlim_cur
			       : 1 << 20) < 0) {
		fprintf(stderr, "ar-faultsrv: out of memory\n");
		return 1;
	}

	if (s.cfg.log_path) {
		s.log = fopen(s.cfg.log_path, "a");
		if (!s.log) {
			fprintf(stderr, "ar-faultsrv: cannot open log '%s': %s\n", s.cfg.log_path,
				strerror(errno));
			goto out;
		}
	}

	/* 1 ns timer slack (inherited by every connection thread): a sleeping
	 * stream wakes at its instant, not up to 50 us later */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

	/* SIGTERM/SIGINT: the handler writes to a pipe that main reads. MHD's
	 * threads start with both blocked (they inherit this mask), so the
	 * handler runs on main — or on any thread some library started. */
	if (pipe(stop_pipe) < 0) {
		fprintf(stderr, "ar-faultsrv: pipe: %s\n", strerror(errno));
		goto out;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons(s.cfg.port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD;
	if (s.cfg.verbose)
		flags |= MHD_USE_ERROR_LOG;
	s.daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &s,
				    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
				    MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conns,
				    MHD_OPTION_CONNECTION_TIMEOUT, 0u,
				    MHD_OPTION_THREAD_STACK_SIZE, FS_STACK_SIZE,
				    MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
				    MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s,
				    MHD_OPTION_NOTIFY_CONNECTION, on_connection, &s,
				    MHD_OPTION_END);
	if (!s.daemon) {
		fprintf(stderr, "ar-faultsrv: cannot listen on 127.0.0.1:%u\n", (unsigned)s.cfg.port);
		goto out;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s.daemon, MHD_DAEMON_INFO_BIND_PORT);
	unsigned port = di ? di->port : s.cfg.port;
	if (s.cfg.arrival_stamps) {
		/* on the listening socket too: accepted sockets inherit the option, so
		 * a request that arrives before the connection callback below ran is
		 * stamped as well */
		const union MHD_DaemonInfo *li = MHD_get_daemon_info(s.daemon, MHD_DAEMON_INFO_LISTEN_FD);
		int one = 1;
		if (li)
			setsockopt(li->listen_fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
	}
	if (s.cfg.port_file && write_port_file(s.cfg.port_file, port) < 0) {
		fprintf(stderr, "ar-faultsrv: cannot write port file '%s': %s\n", s.cfg.port_file,
			strerror(errno));
		goto out;
	}
	printf("listening on 127.0.0.1:%u\n", port);
	fflush(stdout);
	if (s.cfg.verbose)
		fprintf(stderr, "ar-faultsrv: flavor %s, ttft %.3f ms, itl %.3f ms, %zu fault(s), %llu conns\n",
			flavor_name(s.cfg.flavor), clock_ms(s.cfg.ttft_ns), clock_ms(s.cfg.itl_ns),
			s.cfg.n_faults, (unsigned long long)max_conns);

	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	char c;
	while (read(stop_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	rc = 0;
out:
	atomic_store(&s.stopping, true);
	if (s.daemon)
		MHD_stop_daemon(s.daemon);
	if (s.log && fclose(s.log) != 0)
		rc = 1;
	free(s.prev_prompt);
	pthread_mutex_destroy(&s.cache_mu);
	pthread_mutex_destroy(&s.log_mu);
	if (fclose(stdout) != 0)
		rc = 1;
	return rc;
}
