/* sim_serve: the simulated backend as an HTTP server (see sim_serve.h).
 *
 * Threads: libmicrohttpd runs one thread per connection; all model state
 * (the sim, the prefill queue, the decoding set, counters, the ballast) is
 * behind one mutex, held only for short computations, never while sleeping
 * or writing to a socket. A connection thread sleeps on a condition
 * variable (CLOCK_MONOTONIC) until its next token is due, so a stop or a
 * modelled process death wakes every stream at once.
 *
 * Modelled time: model_ms(now) = (now - t0) x time_scale. A request's
 * first token is due at the end of its prefill (prefills run one at a time,
 * in arrival order, after the request's handling overhead); each later
 * token is due one decode step after the previous one's due time, the step
 * computed when that token is written from the batch decoding at that
 * moment (plus one prefill chunk when a prefill runs beside it, as
 * llama-server batches them). Due times never move with lateness, so lag
 * does not accumulate; tokens already late are written together.
 */
#include "sim_serve.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "jsonh.h"
#include "sim.h"
#include "tokest.h"

#define MAX_BODY (64u << 20)
#define MAX_ACTIVE 512
#define PING_NS (30 * AR_NS_PER_S)
#define DEFAULT_MAX_TOKENS 512
#define CHUNK_BYTES (2u << 20)
#define LAG_BUCKETS 512

/* ---- lag histogram: log-linear over microseconds, nothing clamped -------- */

struct lagh {
	uint64_t b[LAG_BUCKETS];
	uint64_t n, over;
	double max_ms;
};

static int lag_bucket(double us)
{
	if (us < 1)
		return 0;
	/* 16 sub-buckets per power of two */
	int e = (int)floor(log2(us));
	int sub = (int)((us / pow(2, e) - 1) * 16);
	int i = 1 + e * 16 + sub;
	return i < LAG_BUCKETS ? i : -1;
}

static double lag_value(int i)
{
	if (i == 0)
		return 0.5;
	int e = (i - 1) / 16, sub = (i - 1) % 16;
	return pow(2, e) * (1 + (sub + 0.5) / 16);
}

static void lag_add(struct lagh *h, double ms)
{
	if (ms < 0)
		ms = 0;
	int i = lag_bucket(ms * 1000);
	if (i < 0)
		h->over++;
	else
		h->b[i]++;
	h->n++;
	if (ms > h->max_ms)
		h->max_ms = ms;
}

static double lag_quantile(const struct lagh *h, double q)
{
	if (!h->n)
		return 0;
	uint64_t want = (uint64_t)ceil(q * (double)h->n), acc = 0;
	for (int i = 0; i < LAG_BUCKETS; i++) {
		acc += h->b[i];
		if (acc >= want)
			return lag_value(i) / 1000;
	}
	return h->max_ms; /* in the overflow: counted, reported as the max seen */
}

/* ---- ballast: really allocated memory that follows the modelled memory -- */

struct ballast {
	void **chunk;
	size_t n, cap;
};

static void ballast_set(struct ballast *b, uint64_t bytes)
{
	size_t want = (size_t)((bytes + CHUNK_BYTES - 1) / CHUNK_BYTES);
	while (b->n > want)
		munmap(b->chunk[--b->n], CHUNK_BYTES);
	while (b->n < want) {
		if (b->n == b->cap) {
			size_t cap = b->cap ? b->cap * 2 : 64;
			void **nc = realloc(b->chunk, cap * sizeof *nc);
			if (!nc)
				return;
			b->chunk = nc;
			b->cap = cap;
		}
		void *p = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return;
		for (size_t off = 0; off < CHUNK_BYTES; off += 4096) /* touch every page */
			((volatile char *)p)[off] = 1;
		b->chunk[b->n++] = p;
	}
}

static void ballast_free(struct ballast *b)
{
	ballast_set(b, 0);
	free(b->chunk);
	memset(b, 0, sizeof *b);
}

/* ---- server state --------------------------------------------------------- */

enum kind { K_CHAT, K_OAI_COMPL, K_NATIVE };
enum phase { PH_WAIT, PH_TOKENS, PH_DONE, PH_CUT };

struct srv;

struct req {
	struct srv *s;
	struct buf body;
	bool too_big;
	/* a generation */
	enum kind kind;
	bool stream, include_usage, active, decoding;
	int slot;
	uint64_t task;
	char id[48];
	struct buf model_js; /* the model name as a JSON string */
	long created;
	int64_t prompt, cached, gen, produced;
	double first_due, next_due, last_due; /* model ms */
	double prompt_ms, overhead_ms;
	double decode_started; /* model ms of the first token */
	int64_t fail_at;       /* tokens before a stream error, -1 none */
	char *fail_body;       /* the SSE error event (with "data: ") */
	bool fail_exit;        /* the process dies after it */
	int fail_code;
	int die_code; /* the process dies once this stream's last bytes are out */
	enum phase phase;
	struct buf out;
	size_t out_off;
	uint64_t seed;
	ar_ns last_write;
	struct buf text; /* non-stream: the generated text */
};

struct srv {
	const struct sim_serve_opts *o;
	struct sim *sim;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct MHD_Daemon *d;
	int port;
	ar_ns t0;
	double scale;
	double prefill_free;  /* model ms when the prefill queue is free */
	double chunk_ms;      /* the running prefill's chunk time */
	int n_slots;
	struct req *slot[MAX_ACTIVE];
	int processing, deferred;
	int64_t n_decoding, dsum, kv_used;
	bool kv_checks;
	uint64_t tasks;
	volatile int exiting;
	int exit_code;
	struct lagh lag;
	struct ballast bal;
	uint64_t rss_max;
	int64_t n_tokens_max, n_decode_calls;
	double loaded_at; /* seconds since start when /health turns ok */
	char model_js[256];
};

static ar_ns now_ns(void) { return clock_now(); }

static double model_now(const struct srv *s) { return (double)(now_ns() - s->t0) / 1e6 * s->scale; }

static ar_ns real_at(const struct srv *s, double model_ms) { return s->t0 + (ar_ns)(model_ms / s->scale * 1e6); }

static void logf_(struct srv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct srv *s, const char *fmt, ...)
{
	if (!s->o->log)
		return;
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	s->o->log(s->o->log_ctx, line);
}

/* Logs a multi-line profile text one line at a time. */
static void log_lines(struct srv *s, const char *text)
{
	while (text && *text) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);
		logf_(s, "%.*s", (int)n, text);
		text = nl ? nl + 1 : NULL;
	}
}

static void die(struct srv *s, int code)
{
	if (!s->exiting) {
		s->exiting = 1;
		s->exit_code = code ? code : 1;
	}
	pthread_cond_broadcast(&s->cv);
}

/* Real bytes following the modelled memory of KV, state and the host cache
 * (not the weights: a sampler should see growth, not a 20 GB process). */
static void update_ballast(struct srv *s)
{
	if (!(s->o->rss_scale > 0))
		return;
	double want = (double)sim_kv_bytes(s->sim) * s->o->rss_scale;
	if (want > (double)s->rss_max)
		want = (double)s->rss_max;
	ballast_set(&s->bal, (uint64_t)want);
}

/* ---- responses ------------------------------------------------------------ */

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *ctype, const char *body, bool close)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Server", "llama.cpp");
	MHD_add_response_header(r, "Access-Control-Allow-Origin", "");
	if (close)
		MHD_add_response_header(r, "Connection", "close");
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, int status, const char *body)
{
	return reply(c, status, "application/json; charset=utf-8", body, false);
}

static enum MHD_Result error_json(struct MHD_Connection *c, int status, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static enum MHD_Result error_json(struct MHD_Connection *c, int status, const char *type, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct buf b = BUF_INIT;
	buf_printf(&b, "{\"error\":{\"code\":%d,\"message\":", status);
	jsonh_put_string(&b, msg, strlen(msg));
	buf_printf(&b, ",\"type\":\"%s\"}}", type);
	enum MHD_Result r = reply_json(c, status, b.data ? b.data : "{}");
	buf_free(&b);
	return r;
}

/* ---- prompts from requests ------------------------------------------------- */

static const char *text_of(const cJSON *content, struct buf *tmp)
{
	if (cJSON_IsString(content))
		return content->valuestring;
	if (cJSON_IsArray(content)) { /* content parts: their text, concatenated */
		buf_reset(tmp);
		for (const cJSON *p = content->child; p; p = p->next) {
			const cJSON *t = cJSON_GetObjectItem(p, "text");
			if (cJSON_IsString(t))
				buf_puts(tmp, t->valuestring);
		}
		return tmp->data ? tmp->data : "";
	}
	return "";
}

/* Builds the prompt of a chat request. Returns NULL or an error message. */
static const char *chat_prompt(const cJSON *req, struct sim_prompt *p)
{
	const cJSON *msgs = cJSON_GetObjectItem(req, "messages");
	if (!cJSON_IsArray(msgs))
		return "Expected 'messages' to be an array";
	if (!cJSON_GetArraySize(msgs))
		return "'messages' must not be empty";
	const cJSON *tools = cJSON_GetObjectItem(req, "tools");
	struct buf tmp = BUF_INIT, tj = BUF_INIT;
	const char *err = NULL;
	sim_prompt_reset(p);
	bool tools_done = !(cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0);
	for (const cJSON *m = msgs->child; m; m = m->next) {
		if (!cJSON_IsObject(m)) {
			err = "each message must be an object";
			break;
		}
		const cJSON *role = cJSON_GetObjectItem(m, "role");
		if (!cJSON_IsString(role)) {
			err = "each message needs a 'role' string";
			break;
		}
		bool sys = !strcmp(role->valuestring, "system");
		if (!tools_done && (!sys || m != msgs->child)) {
			/* the tools follow the leading system message, as in the in-process prompt */
			jsonh_put(&tj, tools);
			sim_prompt_add_raw(p, tj.data, tj.len, -1);
			tools_done = true;
		}
		const char *text = text_of(cJSON_GetObjectItem(m, "content"), &tmp);
		const cJSON *tcid = cJSON_GetObjectItem(m, "tool_call_id"), *name = cJSON_GetObjectItem(m, "name");
		if (sim_prompt_add_message(p, role->valuestring, text, strlen(text),
					   cJSON_IsString(tcid) ? tcid->valuestring : NULL,
					   cJSON_IsString(name) ? name->valuestring : NULL) < 0) {
			err = "out of memory";
			break;
		}
		const cJSON *calls = cJSON_GetObjectItem(m, "tool_calls");
		for (const cJSON *tc = cJSON_IsArray(calls) ? calls->child : NULL; tc; tc = tc->next) {
			const cJSON *fn = cJSON_GetObjectItem(tc, "function");
			const cJSON *nm = cJSON_GetObjectItem(fn, "name"), *args = cJSON_GetObjectItem(fn, "arguments");
			sim_prompt_add_call(p, cJSON_IsString(nm) ? nm->valuestring : "", cJSON_IsString(args) ? args->valuestring : "");
		}
		if (sys && m == msgs->child && !tools_done) {
			jsonh_put(&tj, tools);
			sim_prompt_add_raw(p, tj.data, tj.len, -1);
			tools_done = true;
		}
	}
	sim_prompt_end(p);
	buf_free(&tmp);
	buf_free(&tj);
	return err;
}

/* A raw prompt: a string, token ids, or a list of strings. */
/* Raw prompt text in pieces, so prompts that share a text prefix share
 * cached pieces (a real server matches to the token; 256 bytes is ~64).
 * Pieces are also cut at ChatML message starts and after each message
 * header ("<|im_start|>assistant\n", what /apply-template ends a prompt
 * with), so the end of the previous prompt is a piece boundary: models whose
 * state cannot roll back reuse a prefix only up to there. */
static void add_raw_segment(struct sim_prompt *p, const char *text, size_t len)
{
	for (size_t off = 0; off < len; off += 256)
		sim_prompt_add_raw(p, text + off, len - off < 256 ? len - off : 256, -1);
}

static void add_raw_text(struct sim_prompt *p, const char *text)
{
	static const char mark[] = "<|im_start|>";
	const char *seg = text;
	for (const char *m = strstr(text, mark); m; m = strstr(m + 1, mark)) {
		if (m > seg)
			add_raw_segment(p, seg, (size_t)(m - seg));
		const char *nl = strchr(m, '\n');
		seg = nl ? nl + 1 : m + strlen(m);
		add_raw_segment(p, m, (size_t)(seg - m));
		m = seg - 1;
	}
	if (*seg)
		add_raw_segment(p, seg, strlen(seg));
}

/* A token id from a request: any JSON number, clamped into range first
 * (converting a double outside the integer type is undefined). */
static int64_t token_id(double d)
{
	if (!(d >= 0))
		return 0;
	return d > 9e15 ? INT64_C(9000000000000000) : (int64_t)d;
}

static const char *raw_prompt(const cJSON *v, struct sim_prompt *p)
{
	sim_prompt_reset(p);
	if (cJSON_IsString(v)) {
		/* in pieces, so prompts that share a text prefix share cached pieces
		 * (a real server matches to the token; 256 bytes is ~64 tokens) */
		add_raw_text(p, v->valuestring);
	} else if (cJSON_IsArray(v)) {
		int64_t ids[SIM_BLOCK_TOKENS];
		int n = 0;
		for (const cJSON *e = v->child; e; e = e->next) {
			if (cJSON_IsString(e)) {
				add_raw_text(p, e->valuestring);
				continue;
			}
			if (!cJSON_IsNumber(e))
				return "'prompt' must be a string, a list of token ids or of strings";
			ids[n++] = token_id(e->valuedouble);
			if (n == SIM_BLOCK_TOKENS) {
				sim_prompt_add_raw(p, (const char *)ids, sizeof ids, n);
				n = 0;
			}
		}
		if (n)
			sim_prompt_add_raw(p, (const char *)ids, (size_t)n * sizeof *ids, n);
	} else {
		return "'prompt' must be a string, a list of token ids or of strings";
	}
	sim_prompt_end(p);
	if (!p->n || p->tokens < 1)
		return "empty prompt";
	return NULL;
}

/* ---- generated text ---------------------------------------------------------- */

static const char *const words[] = {
	"the", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "as", "this", "be", "from",
	"or", "by", "not", "all", "can", "use", "each", "which", "how", "if", "will", "other", "about", "out",
	"then", "them", "so", "some", "would", "make", "like", "into", "time", "has", "look", "more", "write",
	"see", "number", "way", "could", "first", "been", "call", "find", "long", "down", "get", "made", "part",
	"over", "new", "take", "only", "work", "know", "place", "back", "give", "most", "very", "after", "thing",
	"just", "name", "good", "think", "say", "great", "where", "help", "much", "before", "line", "right",
	"mean", "old", "any", "same", "tell", "follow", "want", "show", "also", "around", "form", "small", "set",
	"put", "end", "does", "another", "well", "large", "must", "even", "such", "turn", "here", "why", "ask",
	"read", "need", "move", "try", "kind", "again", "change", "play", "point", "page", "answer", "found",
	"study", "still", "learn", "should", "every", "near", "add", "own", "below", "last", "keep", "never",
	"start", "light", "head", "under", "story", "left", "few", "while", "along", "might", "close", "next",
	"hard", "open", "begin", "always", "those", "both", "group", "often", "run", "until", "side", "state",
	"once", "book", "stop", "second", "later",
};
#define NWORDS (sizeof words / sizeof words[0])

static const char *word(uint64_t seed, int64_t i)
{
	uint64_t x = seed ^ ((uint64_t)i * 0x9e3779b97f4a7c15ULL);
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 29;
	return words[x % NWORDS];
}

/* ---- events ---------------------------------------------------------------- */

static void put_timings(struct buf *b, const struct req *q)
{
	int64_t pn = q->prompt - q->cached;
	double pms = q->prompt_ms > 0 ? q->prompt_ms : 1e-3;
	double dms = q->produced > 1 ? q->last_due - q->decode_started : 0;
	buf_printf(b,
		   "\"timings\":{\"cache_n\":%" PRId64 ",\"prompt_n\":%" PRId64 ",\"prompt_ms\":%.3f,"
		   "\"prompt_per_token_ms\":%.5f,\"prompt_per_second\":%.3f,\"predicted_n\":%" PRId64
		   ",\"predicted_ms\":%.3f,\"predicted_per_token_ms\":%.5f,\"predicted_per_second\":%.3f,"
		   "\"sim_time_scale\":%g}",
		   q->cached, pn, pms, pn ? pms / (double)pn : 0, pn ? (double)pn / pms * 1e3 : 0, q->produced, dms,
		   q->produced ? dms / (double)q->produced : 0, dms > 0 ? (double)q->produced / dms * 1e3 : 0,
		   q->s->scale);
}

static void put_usage(struct buf *b, const struct req *q)
{
	buf_printf(b,
		   "\"usage\":{\"completion_tokens\":%" PRId64 ",\"prompt_tokens\":%" PRId64 ",\"total_tokens\":%" PRId64
		   ",\"prompt_tokens_details\":{\"cached_tokens\":%" PRId64 "}}",
		   q->produced, q->prompt, q->prompt + q->produced, q->cached);
}

static void chunk_tail(struct buf *b, const struct req *q)
{
	buf_printf(b, "\"created\":%ld,\"id\":\"%s\",\"model\":%s,\"system_fingerprint\":\"b0-unknown\",\"object\":\"%s\"",
		   q->created, q->id, q->model_js.data, q->kind == K_CHAT ? "chat.completion.chunk" : "text_completion");
}

/* One token event (the role chunk first for the first chat token). */
static void token_event(struct req *q, int64_t i)
{
	struct buf *b = &q->out;
	const char *w = word(q->seed, i);
	if (q->kind == K_NATIVE) {
		buf_printf(b, "data: {\"index\":0,\"content\":\" %s\",\"tokens\":[],\"stop\":false,\"id_slot\":%d,\"tokens_predicted\":%" PRId64
			      ",\"tokens_evaluated\":%" PRId64 "}\n\n",
			   w, q->slot, i + 1, q->prompt);
		return;
	}
	if (q->kind == K_CHAT) {
		if (i == 0) {
			buf_puts(b, "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}],");
			chunk_tail(b, q);
			buf_puts(b, "}\n\n");
		}
		buf_printf(b, "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\" %s\"}}],", w);
	} else {
		buf_printf(b, "data: {\"choices\":[{\"text\":\" %s\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],", w);
	}
	chunk_tail(b, q);
	buf_puts(b, "}\n\n");
}

static void final_events(struct req *q)
{
	struct buf *b = &q->out;
	if (q->kind == K_NATIVE) {
		buf_printf(b, "data: {\"index\":0,\"content\":\"\",\"tokens\":[],\"id_slot\":%d,\"stop\":true,\"model\":%s,"
			      "\"tokens_predicted\":%" PRId64 ",\"tokens_evaluated\":%" PRId64
			      ",\"stop_type\":\"limit\",\"stopping_word\":\"\",\"tokens_cached\":%" PRId64 ",",
			   q->slot, q->model_js.data, q->produced, q->prompt, q->prompt + q->produced - 1);
		put_timings(b, q);
		buf_puts(b, "}\n\n");
		return;
	}
	if (q->kind == K_CHAT)
		buf_puts(b, "data: {\"choices\":[{\"finish_reason\":\"length\",\"index\":0,\"delta\":{}}],");
	else
		buf_puts(b, "data: {\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}],");
	chunk_tail(b, q);
	if (q->include_usage && q->kind == K_CHAT) {
		buf_puts(b, "}\n\ndata: {\"choices\":[],");
		chunk_tail(b, q);
		buf_putc(b, ',');
		put_usage(b, q);
		buf_putc(b, ',');
		put_timings(b, q);
	} else {
		buf_putc(b, ',');
		if (q->kind == K_OAI_COMPL) {
			put_usage(b, q);
			buf_putc(b, ',');
		}
		put_timings(b, q);
	}
	buf_puts(b, "}\n\ndata: [DONE]\n\n");
}

/* ---- scheduling (under the lock) --------------------------------------------- */

static void leave_decoding(struct srv *s, struct req *q)
{
	if (q->decoding) {
		q->decoding = false;
		s->n_decoding--;
		s->dsum -= q->prompt + q->produced;
	}
	if (q->active) {
		q->active = false;
		s->kv_used -= q->prompt + q->produced;
		if (q->slot >= 0 && q->slot < MAX_ACTIVE && s->slot[q->slot] == q)
			s->slot[q->slot] = NULL;
		s->processing--;
		pthread_cond_broadcast(&s->cv);
	}
}

/* The unified KV pool (llama-server) overflowing: every active stream fails. */
static void check_pool(struct srv *s)
{
	if (!s->kv_checks || s->kv_used <= sim_context(s->sim))
		return;
	struct sim_result fr;
	if (!sim_failure(s->sim, "kv_exhausted", s->kv_used, &fr))
		return;
	log_lines(s, fr.log);
	for (int i = 0; i < s->n_slots; i++) {
		struct req *q = s->slot[i];
		if (q && q->fail_at < 0) {
			q->fail_at = q->produced;
			free(q->fail_body);
			q->fail_body = strdup(fr.body);
			q->fail_exit = false;
		}
	}
	pthread_cond_broadcast(&s->cv);
}

/* Writes every event due by now into q->out. Returns true when something
 * was produced. */
static bool produce(struct srv *s, struct req *q)
{
	double now = model_now(s);
	bool any = false;
	ar_ns real = now_ns();
	while (q->phase == PH_WAIT || q->phase == PH_TOKENS) {
		if (q->fail_at >= 0 && q->produced >= q->fail_at) {
			double fdue = q->produced == 0 ? q->first_due : q->next_due;
			if (fdue > now)
				break;
			/* the error event ends the stream (no [DONE]); a dying process
			 * then cuts the connection */
			if (q->fail_body && *q->fail_body) {
				buf_puts(&q->out, q->fail_body);
				buf_puts(&q->out, "\n\n");
			}
			q->phase = q->fail_exit ? PH_CUT : PH_DONE;
			if (q->fail_exit)
				q->die_code = q->fail_code ? q->fail_code : 1;
			leave_decoding(s, q);
			return true;
		}
		if (q->produced >= q->gen) {
			final_events(q);
			q->phase = PH_DONE;
			leave_decoding(s, q);
			return true;
		}
		double due = q->produced == 0 ? q->first_due : q->next_due;
		if (due > now)
			break;
		lag_add(&s->lag, (double)(real - real_at(s, due)) / 1e6);
		token_event(q, q->produced);
		if (q->produced == 0) {
			q->phase = PH_TOKENS;
			q->decode_started = due;
			q->decoding = true;
			s->n_decoding++;
			s->dsum += q->prompt;
		}
		q->produced++;
		q->last_due = due;
		s->dsum++;
		s->kv_used++;
		s->n_decode_calls++;
		if (q->prompt + q->produced > s->n_tokens_max)
			s->n_tokens_max = q->prompt + q->produced;
		/* the next token: one step of the batch decoding now */
		double step = sim_decode_step_ms(s->sim, s->n_decoding > 0 ? s->n_decoding : 1, s->dsum);
		if (s->prefill_free > due)
			step += s->chunk_ms;
		q->next_due = due + step;
		any = true;
		check_pool(s);
	}
	return any;
}

/* ---- the streaming response ------------------------------------------------- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *bufp, size_t max)
{
	(void)pos;
	struct req *q = cls;
	struct srv *s = q->s;
	for (;;) {
		if (q->out_off < q->out.len) {
			size_t n = q->out.len - q->out_off;
			if (n > max)
				n = max;
			memcpy(bufp, q->out.data + q->out_off, n);
			q->out_off += n;
			if (q->out_off == q->out.len) {
				buf_reset(&q->out);
				q->out_off = 0;
			}
			q->last_write = now_ns();
			return (ssize_t)n;
		}
		if (q->phase == PH_DONE)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (q->phase == PH_CUT) {
			if (q->die_code) {
				pthread_mutex_lock(&s->mu);
				die(s, q->die_code);
				pthread_mutex_unlock(&s->mu);
				q->die_code = 0;
			}
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		pthread_mutex_lock(&s->mu);
		if (s->exiting) {
			q->phase = PH_CUT;
			leave_decoding(s, q);
			pthread_mutex_unlock(&s->mu);
			continue;
		}
		if (!produce(s, q)) {
			/* sleep until the next token is due (or a ping is due) */
			double due = q->produced == 0 ? q->first_due : q->next_due;
			ar_ns wake = real_at(s, due);
			if (q->last_write && wake > q->last_write + PING_NS)
				wake = q->last_write + PING_NS;
			struct timespec ts = {.tv_sec = (time_t)(wake / AR_NS_PER_S), .tv_nsec = (long)(wake % AR_NS_PER_S)};
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
			if (q->last_write && now_ns() >= q->last_write + PING_NS && q->phase == PH_WAIT && !s->exiting) {
				buf_puts(&q->out, ":\n\n"); /* llama-server's keep-alive during a long prefill */
			}
		}
		pthread_mutex_unlock(&s->mu);
	}
}

/* ---- admitting a generation -------------------------------------------------- */

static void req_free(struct req *q)
{
	if (!q)
		return;
	buf_free(&q->body);
	buf_free(&q->out);
	buf_free(&q->text);
	buf_free(&q->model_js);
	free(q->fail_body);
	free(q);
}

static enum MHD_Result generate(struct srv *s, struct MHD_Connection *c, struct req *q, struct sim_prompt *p,
				int64_t max_tokens)
{
	struct sim_result r;
	struct ar_err err = {0};
	pthread_mutex_lock(&s->mu);
	/* wait for a free slot (llama-server defers the task) */
	bool counted = false;
	while (!s->exiting) {
		int free_slot = -1;
		for (int i = 0; i < s->n_slots; i++)
			if (!s->slot[i]) {
				free_slot = i;
				break;
			}
		if (free_slot >= 0) {
			q->slot = free_slot;
			break;
		}
		if (!counted) {
			s->deferred++;
			counted = true;
		}
		pthread_cond_wait(&s->cv, &s->mu);
	}
	if (counted)
		s->deferred--;
	if (s->exiting) {
		pthread_mutex_unlock(&s->mu);
		return MHD_NO; /* the process is going down: drop the connection */
	}
	q->task = s->tasks++;
	double arrive = model_now(s);
	if (sim_request(s->sim, p, max_tokens, &r, &err) < 0) {
		pthread_mutex_unlock(&s->mu);
		return error_json(c, 400, "invalid_request_error", "%s", err.msg);
	}
	update_ballast(s);
	bool failing = strcmp(r.outcome, "ok") != 0;
	/* failures that happen inside a stream: an SSE error event after tokens,
	 * or the process dying mid-request (the connection is cut) */
	bool in_stream = failing && q->stream && (r.stream_error || (!r.http_status && r.process_exits));
	if (failing && !in_stream) {
		log_lines(s, r.log);
		if (r.process_exits)
			die(s, r.exit_code);
		if (!r.http_status) {
			pthread_mutex_unlock(&s->mu);
			return MHD_NO; /* no response: the connection is reset */
		}
		const char *body = r.body;
		if (!strncmp(body, "data: ", 6))
			body += 6;
		int status = r.http_status;
		if (status < 400)
			status = 500; /* a stream error asked for without streaming */
		char *copy = strdup(*body ? body : "{\"error\":{\"code\":500,\"message\":\"server error\",\"type\":\"server_error\"}}");
		pthread_mutex_unlock(&s->mu);
		logf_(s, "srv  log_server_r: request: POST %s 127.0.0.1 %d", q->kind == K_CHAT ? "/v1/chat/completions" : "/completion", status);
		enum MHD_Result ret = reply(c, status, "application/json; charset=utf-8", copy ? copy : "{}", !strcmp(r.outcome, "ctx_overflow"));
		free(copy);
		return ret;
	}
	/* a unified KV pool that this prompt overflows: the streams running
	 * fail with an error event, this request gets the error as its answer */
	if (s->kv_checks && s->kv_used + r.prompt_tokens > sim_context(s->sim) && s->processing > 0) {
		s->kv_used += r.prompt_tokens;
		check_pool(s);
		s->kv_used -= r.prompt_tokens;
		struct sim_result fr;
		sim_failure(s->sim, "kv_exhausted", r.prompt_tokens, &fr);
		const char *body = fr.body;
		if (!strncmp(body, "data: ", 6))
			body += 6;
		char *copy = strdup(body);
		pthread_mutex_unlock(&s->mu);
		enum MHD_Result ret = reply_json(c, 500, copy ? copy : "{}");
		free(copy);
		return ret;
	}
	/* schedule */
	q->active = true;
	s->slot[q->slot] = q;
	s->processing++;
	q->prompt = r.prompt_tokens;
	q->cached = r.cached_tokens;
	q->gen = r.completion_tokens > 0 ? r.completion_tokens : max_tokens;
	q->fail_at = -1;
	if (failing) {
		log_lines(s, r.log);
		q->fail_at = r.error_after_tokens;
		q->fail_body = strdup(r.body);
		q->fail_exit = r.process_exits;
		q->fail_code = r.exit_code;
		q->gen = r.error_after_tokens + 1;
	}
	q->overhead_ms = r.overhead_ms;
	double ready = arrive + sim_overhead_ms(s->sim, r.prompt_tokens);
	double pf = r.ttft_ms - sim_overhead_ms(s->sim, r.prompt_tokens);
	double start = ready > s->prefill_free ? ready : s->prefill_free;
	q->prompt_ms = pf;
	q->first_due = start + pf;
	s->prefill_free = q->first_due;
	int64_t chunks = (r.prompt_tokens - r.cached_tokens + 511) / 512;
	s->chunk_ms = chunks > 0 ? pf / (double)chunks : 0;
	s->kv_used += q->prompt;
	logf_(s, "slot launch_slot_: id %3d | task %" PRIu64 " | processing task", q->slot, q->task);
	logf_(s, "slot update_slots: id %3d | task %" PRIu64 " | new prompt, n_ctx_slot = %" PRId64 ", n_keep = 0, n_prompt_tokens = %" PRId64
		 ", n_past = %" PRId64,
	      q->slot, q->task, sim_context(s->sim), q->prompt, q->cached);
	check_pool(s);
	pthread_mutex_unlock(&s->mu);
	if (q->stream) {
		q->phase = PH_WAIT;
		q->last_write = now_ns();
		struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, q, NULL);
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, "Content-Type", "text/event-stream");
		MHD_add_response_header(resp, "Server", "llama.cpp");
		MHD_add_response_header(resp, "X-Accel-Buffering", "no");
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
		enum MHD_Result ret = MHD_queue_response(c, 200, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	/* not streamed: wait for the whole generation */
	pthread_mutex_lock(&s->mu);
	q->phase = PH_WAIT;
	while (!s->exiting && (q->phase == PH_WAIT || q->phase == PH_TOKENS)) {
		int64_t before = q->produced;
		if (!produce(s, q)) {
			double due = q->produced == 0 ? q->first_due : q->next_due;
			ar_ns wake = real_at(s, due);
			struct timespec ts = {.tv_sec = (time_t)(wake / AR_NS_PER_S), .tv_nsec = (long)(wake % AR_NS_PER_S)};
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		}
		for (int64_t i = before; i < q->produced; i++) {
			buf_putc(&q->text, ' ');
			buf_puts(&q->text, word(q->seed, i));
		}
		buf_reset(&q->out);
	}
	bool failed = q->fail_at >= 0 && q->produced >= q->fail_at && q->fail_body;
	bool cut = s->exiting || q->phase == PH_CUT;
	leave_decoding(s, q);
	pthread_mutex_unlock(&s->mu);
	if (cut)
		return MHD_NO;
	if (failed) {
		const char *body = q->fail_body;
		if (!strncmp(body, "data: ", 6))
			body += 6;
		return reply_json(c, 500, body);
	}
	struct buf b = BUF_INIT;
	const char *txt = q->text.data ? q->text.data : "";
	if (q->kind == K_NATIVE) {
		buf_puts(&b, "{\"index\":0,\"content\":");
		jsonh_put_string(&b, txt, strlen(txt));
		buf_printf(&b, ",\"tokens\":[],\"id_slot\":%d,\"stop\":true,\"model\":%s,\"tokens_predicted\":%" PRId64
			       ",\"tokens_evaluated\":%" PRId64 ",\"generation_settings\":{\"n_predict\":%" PRId64
			       "},\"prompt\":\"\",\"has_new_line\":false,\"truncated\":false,\"stop_type\":\"limit\",\"stopping_word\":\"\",\"tokens_cached\":%" PRId64 ",",
			   q->slot, q->model_js.data, q->produced, q->prompt, max_tokens, q->prompt + q->produced - 1);
		put_timings(&b, q);
		buf_putc(&b, '}');
	} else if (q->kind == K_CHAT) {
		buf_puts(&b, "{\"choices\":[{\"finish_reason\":\"length\",\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
		jsonh_put_string(&b, txt, strlen(txt));
		buf_printf(&b, "}}],\"created\":%ld,\"model\":%s,\"system_fingerprint\":\"b0-unknown\",\"object\":\"chat.completion\",",
			   q->created, q->model_js.data);
		put_usage(&b, q);
		buf_printf(&b, ",\"id\":\"%s\",", q->id);
		put_timings(&b, q);
		buf_putc(&b, '}');
	} else {
		buf_puts(&b, "{\"choices\":[{\"text\":");
		jsonh_put_string(&b, txt, strlen(txt));
		buf_printf(&b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}],\"created\":%ld,\"model\":%s,"
			       "\"system_fingerprint\":\"b0-unknown\",\"object\":\"text_completion\",",
			   q->created, q->model_js.data);
		put_usage(&b, q);
		buf_printf(&b, ",\"id\":\"%s\",", q->id);
		put_timings(&b, q);
		buf_putc(&b, '}');
	}
	enum MHD_Result ret = reply_json(c, 200, b.data);
	buf_free(&b);
	return ret;
}

static int64_t max_tokens_of(const cJSON *j, int64_t dflt)
{
	static const char *const keys[] = {"max_completion_tokens", "max_tokens", "n_predict"};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		const cJSON *v = cJSON_GetObjectItem(j, keys[i]);
		if (cJSON_IsNumber(v) && v->valuedouble >= 1)
			return v->valuedouble > 1e9 ? 1000000000 : (int64_t)v->valuedouble;
	}
	return dflt;
}

static enum MHD_Result handle_generate(struct srv *s, struct MHD_Connection *c, struct req *q, enum kind kind)
{
	cJSON *j = cJSON_ParseWithLength(q->body.data ? q->body.data : "", q->body.len);
	if (!j) {
		const char *e = cJSON_GetErrorPtr();
		size_t at = e && q->body.data ? (size_t)(e - q->body.data) : 0;
		return error_json(c, 500, "server_error",
				  "[json.exception.parse_error.101] parse error at byte %zu: syntax error while parsing value",
				  at + 1);
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return error_json(c, 400, "invalid_request_error", "the request body must be a JSON object");
	}
	struct sim_prompt p;
	sim_prompt_init(&p);
	const char *perr = kind == K_CHAT ? chat_prompt(j, &p) : raw_prompt(cJSON_GetObjectItem(j, "prompt"), &p);
	enum MHD_Result ret;
	if (perr) {
		ret = error_json(c, 400, "invalid_request_error", "%s", perr);
		goto out;
	}
	q->kind = kind;
	const cJSON *st = cJSON_GetObjectItem(j, "stream");
	q->stream = cJSON_IsTrue(st);
	const cJSON *so = cJSON_GetObjectItem(j, "stream_options");
	q->include_usage = cJSON_IsTrue(cJSON_GetObjectItem(so, "include_usage"));
	const cJSON *mdl = cJSON_GetObjectItem(j, "model");
	if (cJSON_IsString(mdl) && *mdl->valuestring)
		jsonh_put_string(&q->model_js, mdl->valuestring, strlen(mdl->valuestring));
	else
		buf_puts(&q->model_js, s->model_js);
	q->created = (long)time(NULL);
	q->slot = -1;
	pthread_mutex_lock(&s->mu);
	uint64_t n = s->tasks;
	pthread_mutex_unlock(&s->mu);
	q->seed = (n + 1) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)q->created << 20) ^ (uint64_t)(now_ns() & 0xfffff);
	snprintf(q->id, sizeof q->id, "%s%016" PRIx64, kind == K_CHAT ? "chatcmpl-" : "cmpl-", q->seed);
	ret = generate(s, c, q, &p, max_tokens_of(j, DEFAULT_MAX_TOKENS));
out:
	sim_prompt_free(&p);
	cJSON_Delete(j);
	return ret;
}

/* ---- the other endpoints ---------------------------------------------------- */

static enum MHD_Result handle_metrics(struct srv *s, struct MHD_Connection *c)
{
	struct sim_counters k;
	struct buf b = BUF_INIT;
	pthread_mutex_lock(&s->mu);
	sim_counters(s->sim, &k);
	int64_t kv_used = sim_cached_tokens(s->sim);
	if (kv_used < s->kv_used)
		kv_used = s->kv_used;
	int64_t cap = sim_pool_tokens(s->sim) > 0 ? sim_pool_tokens(s->sim) : sim_context(s->sim);
	double kv_ratio = cap > 0 ? (double)kv_used / (double)cap : 0;
	int64_t mem = sim_mem_bytes(s->sim), budget = sim_mem_budget(s->sim);
	int proc = s->processing, def = s->deferred;
	double p50 = lag_quantile(&s->lag, 0.5), p99 = lag_quantile(&s->lag, 0.99), lmax = s->lag.max_ms;
	uint64_t lagn = s->lag.n;
	int64_t ntmax = s->n_tokens_max, ndec = s->n_decode_calls;
	uint64_t ball = (uint64_t)s->bal.n * CHUNK_BYTES;
	pthread_mutex_unlock(&s->mu);
#define COUNTER(name, help, v) buf_printf(&b, "# HELP llamacpp:" name " " help "\n# TYPE llamacpp:" name " counter\nllamacpp:" name " %.17g\n", (double)(v))
#define GAUGE(name, help, v) buf_printf(&b, "# HELP llamacpp:" name " " help "\n# TYPE llamacpp:" name " gauge\nllamacpp:" name " %.17g\n", (double)(v))
	COUNTER("prompt_tokens_total", "Number of prompt tokens processed.", k.prompt_tokens);
	COUNTER("prompt_tokens_cached_total", "Number of prompt tokens served from the cache.", k.cached_tokens);
	COUNTER("prompt_seconds_total", "Prompt process time", k.prompt_seconds);
	COUNTER("tokens_predicted_total", "Number of generation tokens processed.", k.predicted_tokens);
	COUNTER("tokens_predicted_seconds_total", "Predict process time", k.predicted_seconds);
	COUNTER("n_decode_total", "Total number of llama_decode() calls", ndec);
	GAUGE("n_tokens_max", "Largest observed n_tokens.", ntmax);
	GAUGE("prompt_tokens_seconds", "Average prompt throughput in tokens/s.",
	      k.prompt_seconds > 0 ? (double)k.prompt_tokens / k.prompt_seconds : 0);
	GAUGE("predicted_tokens_seconds", "Average generation throughput in tokens/s.",
	      k.predicted_seconds > 0 ? (double)k.predicted_tokens / k.predicted_seconds : 0);
	GAUGE("requests_processing", "Number of requests processing.", proc);
	GAUGE("requests_deferred", "Number of requests deferred.", def);
	GAUGE("n_busy_slots_per_decode", "Average number of busy slots per llama_decode() call", proc);
	GAUGE("kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.", kv_ratio);
	GAUGE("kv_cache_tokens", "KV-cache tokens in use (cached sequences and active requests).", kv_used);
	buf_printf(&b, "# HELP agentreplay_sim_memory_bytes Modelled server memory.\n# TYPE agentreplay_sim_memory_bytes gauge\n"
		       "agentreplay_sim_memory_bytes %" PRId64 "\n",
		   mem);
	buf_printf(&b, "# HELP agentreplay_sim_memory_budget_bytes Usable memory of the modelled hardware.\n"
		       "# TYPE agentreplay_sim_memory_budget_bytes gauge\nagentreplay_sim_memory_budget_bytes %" PRId64 "\n",
		   budget);
	buf_printf(&b, "# HELP agentreplay_sim_rss_ballast_bytes Memory really allocated for --rss-scale.\n"
		       "# TYPE agentreplay_sim_rss_ballast_bytes gauge\nagentreplay_sim_rss_ballast_bytes %" PRIu64 "\n",
		   ball);
	buf_printf(&b, "# HELP agentreplay_sim_stream_lag_seconds Lateness of token writes against their schedule.\n"
		       "# TYPE agentreplay_sim_stream_lag_seconds summary\n"
		       "agentreplay_sim_stream_lag_seconds{quantile=\"0.5\"} %.6f\n"
		       "agentreplay_sim_stream_lag_seconds{quantile=\"0.99\"} %.6f\n"
		       "agentreplay_sim_stream_lag_seconds{quantile=\"1\"} %.6f\n"
		       "agentreplay_sim_stream_lag_seconds_count %" PRIu64 "\n",
		   p50 / 1e3, p99 / 1e3, lmax / 1e3, lagn);
	enum MHD_Result r = reply(c, 200, "text/plain; version=0.0.4", b.data, false);
	buf_free(&b);
	return r;
}

static enum MHD_Result handle_slots(struct srv *s, struct MHD_Connection *c)
{
	struct buf b = BUF_INIT;
	buf_putc(&b, '[');
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n_slots && i < 64; i++) {
		struct req *q = s->slot[i];
		buf_printf(&b,
			   "%s{\"id\":%d,\"n_ctx\":%" PRId64 ",\"speculative\":false,\"is_processing\":%s,\"id_task\":%" PRId64
			   ",\"n_prompt_tokens\":%" PRId64 ",\"n_prompt_tokens_processed\":%" PRId64
			   ",\"n_prompt_tokens_cache\":%" PRId64 ",\"params\":{\"n_predict\":%" PRId64
			   "},\"next_token\":[{\"has_next_token\":%s,\"has_new_line\":false,\"n_remain\":%" PRId64
			   ",\"n_decoded\":%" PRId64 "}]}",
			   i ? "," : "", i, sim_context(s->sim), q ? "true" : "false", q ? (int64_t)q->task : -1,
			   q ? q->prompt : 0, q ? q->prompt - q->cached : 0, q ? q->cached : 0, q ? q->gen : -1,
			   q ? "true" : "false", q ? q->gen - q->produced : -1, q ? q->produced : 0);
	}
	pthread_mutex_unlock(&s->mu);
	buf_putc(&b, ']');
	enum MHD_Result r = reply_json(c, 200, b.data);
	buf_free(&b);
	return r;
}

static enum MHD_Result handle_tokenize(struct MHD_Connection *c, struct req *q, bool detok)
{
	cJSON *j = cJSON_ParseWithLength(q->body.data ? q->body.data : "", q->body.len);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return error_json(c, 500, "server_error", "[json.exception.parse_error.101] parse error: syntax error");
	}
	struct buf b = BUF_INIT;
	if (detok) {
		const cJSON *t = cJSON_GetObjectItem(j, "tokens");
		buf_puts(&b, "{\"content\":\"");
		for (const cJSON *e = cJSON_IsArray(t) ? t->child : NULL; e; e = e->next)
			buf_printf(&b, " %s", word((uint64_t)token_id(e->valuedouble), 0));
		buf_puts(&b, "\"}");
	} else {
		const cJSON *ct = cJSON_GetObjectItem(j, "content");
		const char *txt = cJSON_IsString(ct) ? ct->valuestring : "";
		bool pieces = cJSON_IsTrue(cJSON_GetObjectItem(j, "with_pieces"));
		size_t len = strlen(txt);
		int64_t n = tokest_text(txt, len);
		buf_puts(&b, "{\"tokens\":[");
		for (int64_t i = 0; i < n; i++) {
			size_t a = (size_t)((double)len * (double)i / (double)n), e = (size_t)((double)len * (double)(i + 1) / (double)n);
			/* a deterministic id per piece of text (no real vocabulary here) */
			uint64_t h = 1469598103934665603ULL;
			for (size_t k = a; k < e; k++)
				h = (h ^ (unsigned char)txt[k]) * 1099511628211ULL;
			unsigned id = (unsigned)(h % 151643);
			if (pieces) {
				buf_printf(&b, "%s{\"id\":%u,\"piece\":", i ? "," : "", id);
				jsonh_put_string(&b, txt + a, e - a);
				buf_putc(&b, '}');
			} else {
				buf_printf(&b, "%s%u", i ? "," : "", id);
			}
		}
		buf_puts(&b, "]}");
	}
	cJSON_Delete(j);
	enum MHD_Result r = reply_json(c, 200, b.data);
	buf_free(&b);
	return r;
}

/* POST /apply-template: llama-server renders messages with the model's chat
 * template and returns the prompt text ({"prompt": ...}); the native
 * /completion path of the replay engine sends that text back. Rendered as
 * ChatML (Qwen's template): tools after the system message, tool calls as
 * <tool_call> JSON, tool results as user turns wrapped in <tool_response>. */
static enum MHD_Result handle_apply_template(struct MHD_Connection *c, struct req *q)
{
	cJSON *j = cJSON_ParseWithLength(q->body.data ? q->body.data : "", q->body.len);
	const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
	if (!cJSON_IsArray(msgs) || !cJSON_GetArraySize(msgs)) {
		cJSON_Delete(j);
		return error_json(c, 400, "invalid_request_error", "'messages' is required and must be a non-empty array");
	}
	const cJSON *tools = cJSON_GetObjectItem(j, "tools");
	bool have_tools = cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0;
	struct buf p = BUF_INIT, tmp = BUF_INIT;
	for (const cJSON *m = msgs->child; m; m = m->next) {
		const cJSON *role = cJSON_GetObjectItem(m, "role");
		const char *r = cJSON_IsString(role) ? role->valuestring : "user";
		bool sys = !strcmp(r, "system");
		if (have_tools && (m != msgs->child || !sys)) {
			buf_puts(&p, "<|im_start|>system\n# Tools\n<tools>\n");
			jsonh_put(&p, tools);
			buf_puts(&p, "\n</tools><|im_end|>\n");
			have_tools = false;
		}
		const char *text = text_of(cJSON_GetObjectItem(m, "content"), &tmp);
		if (!strcmp(r, "tool"))
			buf_printf(&p, "<|im_start|>user\n<tool_response>\n%s\n</tool_response><|im_end|>\n", text);
		else
			buf_printf(&p, "<|im_start|>%s\n%s", r, text);
		const cJSON *calls = cJSON_GetObjectItem(m, "tool_calls");
		for (const cJSON *tc = cJSON_IsArray(calls) ? calls->child : NULL; tc; tc = tc->next) {
			const cJSON *fn = cJSON_GetObjectItem(tc, "function");
			const cJSON *nm = cJSON_GetObjectItem(fn, "name"), *args = cJSON_GetObjectItem(fn, "arguments");
			buf_printf(&p, "\n<tool_call>\n{\"name\": \"%s\", \"arguments\": %s}\n</tool_call>",
				   cJSON_IsString(nm) ? nm->valuestring : "", cJSON_IsString(args) ? args->valuestring : "{}");
		}
		if (strcmp(r, "tool"))
			buf_puts(&p, "<|im_end|>\n");
		if (sys && m == msgs->child && have_tools) {
			buf_puts(&p, "<|im_start|>system\n# Tools\n<tools>\n");
			jsonh_put(&p, tools);
			buf_puts(&p, "\n</tools><|im_end|>\n");
			have_tools = false;
		}
	}
	buf_puts(&p, "<|im_start|>assistant\n");
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"prompt\":");
	jsonh_put_string(&b, p.data, p.len);
	buf_putc(&b, '}');
	cJSON_Delete(j);
	enum MHD_Result res = reply_json(c, 200, b.data);
	buf_free(&b);
	buf_free(&p);
	buf_free(&tmp);
	return res;
}

/* ---- routing ------------------------------------------------------------------ */

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				 const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)version;
	struct srv *s = cls;
	struct req *q = *con_cls;
	if (!q) {
		if (!(q = calloc(1, sizeof *q)))
			return MHD_NO;
		q->s = s;
		buf_init(&q->body, MAX_BODY);
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!q->too_big && buf_append(&q->body, upload, *upload_size) < 0)
			q->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (s->exiting)
		return MHD_NO;
	if (q->too_big)
		return error_json(c, 413, "invalid_request_error", "request body larger than %u bytes", MAX_BODY);
	bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
	double since = (double)(now_ns() - s->t0) / 1e9;
	bool loading = since < s->loaded_at;
	if (get && (!strcmp(url, "/health") || !strcmp(url, "/v1/health"))) {
		if (loading)
			return reply_json(c, 503, "{\"error\":{\"message\":\"Loading model\",\"type\":\"unavailable_error\",\"code\":503}}");
		return reply_json(c, 200, "{\"status\":\"ok\"}");
	}
	if (loading)
		return reply_json(c, 503, "{\"error\":{\"message\":\"Loading model\",\"type\":\"unavailable_error\",\"code\":503}}");
	if (get && !strcmp(url, "/metrics"))
		return handle_metrics(s, c);
	if (get && !strcmp(url, "/slots"))
		return handle_slots(s, c);
	if (get && (!strcmp(url, "/v1/models") || !strcmp(url, "/models"))) {
		char b[1024];
		snprintf(b, sizeof b,
			 "{\"object\":\"list\",\"data\":[{\"id\":%s,\"object\":\"model\",\"created\":%ld,\"owned_by\":\"llamacpp\","
			 "\"meta\":{\"n_ctx_train\":%" PRId64 ",\"simulated\":true}}]}",
			 s->model_js, (long)time(NULL), sim_context(s->sim));
		return reply_json(c, 200, b);
	}
	if (get && !strcmp(url, "/props")) {
		char b[2048];
		snprintf(b, sizeof b,
			 "{\"default_generation_settings\":{\"n_ctx\":%" PRId64 "},\"total_slots\":%d,\"model_path\":%s,"
			 "\"build_info\":\"b0-unknown\",\"simulated\":true,\"sim\":",
			 sim_context(s->sim), s->n_slots, s->model_js);
		struct buf bb = BUF_INIT;
		buf_puts(&bb, b);
		buf_puts(&bb, sim_describe_json(s->sim));
		buf_putc(&bb, '}');
		enum MHD_Result r = reply_json(c, 200, bb.data);
		buf_free(&bb);
		return r;
	}
	if (post && (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions")))
		return handle_generate(s, c, q, K_CHAT);
	if (post && (!strcmp(url, "/v1/completions") || !strcmp(url, "/completions")))
		return handle_generate(s, c, q, K_OAI_COMPL);
	if (post && !strcmp(url, "/completion"))
		return handle_generate(s, c, q, K_NATIVE);
	if (post && !strcmp(url, "/tokenize"))
		return handle_tokenize(c, q, false);
	if (post && !strcmp(url, "/apply-template"))
		return handle_apply_template(c, q);
	if (post && !strcmp(url, "/detokenize"))
		return handle_tokenize(c, q, true);
	if (post && !strncmp(url, "/slots", 6)) {
		const char *action = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "action");
		if (action && !strcmp(action, "erase")) {
			pthread_mutex_lock(&s->mu);
			sim_reset_cache(s->sim);
			update_ballast(s);
			pthread_mutex_unlock(&s->mu);
			return reply_json(c, 200, "{\"n_erased\":0}");
		}
		return error_json(c, 400, "invalid_request_error", "Invalid action");
	}
	if (!get && !post)
		return error_json(c, 405, "invalid_request_error", "Method not allowed");
	return error_json(c, 404, "not_found_error", "File Not Found");
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode tc)
{
	(void)c;
	(void)tc;
	struct srv *s = cls;
	struct req *q = *con_cls;
	if (!q)
		return;
	pthread_mutex_lock(&s->mu);
	if (q->active || q->decoding) {
		if (q->produced < q->gen && !s->exiting)
			logf_(s, "srv  cancel_tasks: cancel task, id_task = %" PRIu64, q->task);
		leave_decoding(s, q);
	}
	if (q->task || q->prompt)
		logf_(s, "slot      release: id %3d | task %" PRIu64 " | stop processing: n_past = %" PRId64 ", truncated = 0",
		      q->slot, q->task, q->prompt + q->produced);
	update_ballast(s);
	pthread_mutex_unlock(&s->mu);
	req_free(q);
	*con_cls = NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int listen_on(const char *host, int port, int *bound, struct ar_err *err)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return ar_err_set(err, AR_EINVAL, "cannot listen on '%s': not an IPv4 address", host);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ar_err_set(err, AR_EIO, "socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 512) < 0) {
		int e = errno;
		close(fd);
		return ar_err_set(err, AR_EIO, "cannot listen on %s:%d: %s", host, port, strerror(e));
	}
	socklen_t al = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &al);
	*bound = ntohs(a.sin_port);
	return fd;
}

int sim_serve_run(const struct sim_serve_opts *o, int *exit_code, struct ar_err *err)
{
	*exit_code = 0;
	if (!(o->time_scale >= SIM_SERVE_MIN_SCALE && o->time_scale <= SIM_SERVE_MAX_SCALE))
		return ar_err_set(err, AR_EINVAL, "time scale %g is absurd (use %g to %g)", o->time_scale, SIM_SERVE_MIN_SCALE,
				  SIM_SERVE_MAX_SCALE);
	if (!(o->rss_scale >= 0 && o->rss_scale <= SIM_SERVE_MAX_RSS_SCALE))
		return ar_err_set(err, AR_EINVAL, "rss scale %g is out of range (0 to %g)", o->rss_scale,
				  SIM_SERVE_MAX_RSS_SCALE);
	struct srv *s = calloc(1, sizeof *s);
	if (!s)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	int rc = -1, fd = -1;
	bool mu_ok = false, cv_ok = false;
	s->o = o;
	s->scale = o->time_scale;
	s->rss_max = o->rss_max ? o->rss_max : SIM_SERVE_DEFAULT_RSS_MAX;
	if (sim_new(&s->sim, o->spec, err) < 0)
		goto out;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto oom;
	mu_ok = true;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&s->cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		goto oom;
	}
	pthread_condattr_destroy(&ca);
	cv_ok = true;
	{
		struct buf mj = BUF_INIT;
		const char *mid = sim_id(s->sim, SIM_MODEL);
		jsonh_put_string(&mj, mid, strlen(mid));
		snprintf(s->model_js, sizeof s->model_js, "%s", mj.data ? mj.data : "\"sim\"");
		buf_free(&mj);
	}
	struct sim_result lf;
	s->kv_checks = sim_failure(s->sim, "kv_exhausted", 0, &lf);
	s->n_slots = sim_slots(s->sim);
	if (strcmp(sim_api(s->sim), "llama-server") && strcmp(sim_api(s->sim), "ollama"))
		s->n_slots = s->n_slots > 1 ? s->n_slots : 256; /* batching engines: vLLM's max_num_seqs */
	if (s->n_slots > MAX_ACTIVE)
		s->n_slots = MAX_ACTIVE;
	logf_(s, "main: agentreplay sim serve: %s", sim_describe(s->sim));
	logf_(s, "srv    load_model: loading model '/models/%s-%s.gguf'", sim_id(s->sim, SIM_MODEL), sim_id(s->sim, SIM_QUANT));
	const struct sim_result *load = sim_load_failure(s->sim);
	if (load && load->process_exits) {
		/* the real server dies while loading, before it listens */
		log_lines(s, load->log);
		*exit_code = load->exit_code ? load->exit_code : 1;
		rc = 0;
		goto out;
	}
	fd = listen_on(o->host ? o->host : "127.0.0.1", o->port, &s->port, err);
	if (fd < 0)
		goto out;
	sim_set_process(s->sim, (long)getpid(), s->port);
	s->t0 = now_ns();
	s->loaded_at = o->load_time / s->scale;
	pthread_mutex_lock(&s->mu);
	update_ballast(s);
	pthread_mutex_unlock(&s->mu);
	s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, access_cb, s,
				MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_CONNECTION_LIMIT, (unsigned)2048,
				MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024), MHD_OPTION_END);
	if (!s->d) {
		ar_err_set(err, AR_EIO, "cannot start the HTTP server on port %d", s->port);
		goto out;
	}
	fd = -1; /* the daemon owns it */
	if (load)
		log_lines(s, load->log); /* it stays up and fails every request */
	logf_(s, "main: model loaded");
	logf_(s, "main: server is listening on http://%s:%d - starting the main loop", o->host ? o->host : "127.0.0.1", s->port);
	logf_(s, "srv  update_slots: all slots are idle");
	if (o->ready)
		o->ready(o->ready_ctx, s->port);
	while (!(o->stop && *o->stop) && !s->exiting) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&s->mu);
	if (!s->exiting) {
		s->exiting = 1; /* a stop: wake the streams so they end */
		s->exit_code = 0;
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	MHD_stop_daemon(s->d);
	s->d = NULL;
	*exit_code = s->exit_code;
	if (*exit_code)
		logf_(s, "srv    operator(): the modelled server process exits (code %d)", *exit_code);
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	if (s->d)
		MHD_stop_daemon(s->d);
	if (fd >= 0)
		close(fd);
	ballast_free(&s->bal);
	sim_free(s->sim);
	if (cv_ok)
		pthread_cond_destroy(&s->cv);
	if (mu_ok)
		pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}
