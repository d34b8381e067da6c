#include "fs_wire.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jsonh.h"
#include "rng.h"

/* llama-server v0.4.0 as built by tests/real/setup-llama.sh reports this. */
#define LLAMA_FINGERPRINT "b1-80fb11a"

static int put_str(struct buf *b, const char *s)
{
	return jsonh_put_string_raw(b, s ? s : "", s ? strlen(s) : 0);
}

static void rand_alnum(struct rng *r, char *out, size_t n)
{
	static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	for (size_t i = 0; i + 1 < n; i++)
		out[i] = set[rng_below(r, sizeof set - 1)];
	out[n - 1] = '\0';
}

void fs_wire_init(struct fs_wire *w, enum fs_api api, enum fs_flavor flavor, const char *model,
		  uint64_t seed)
{
	memset(w, 0, sizeof *w);
	w->api = api;
	w->flavor = flavor;
	w->model = model;
	w->created = (int64_t)time(NULL);
	w->open_block = -1;
	struct rng r;
	rng_seed(&r, seed * 0x9e3779b97f4a7c15ULL + 1);
	char rnd[33];
	rand_alnum(&r, rnd, sizeof rnd);
	switch (api) {
	case FS_API_ANTHROPIC:
		snprintf(w->id, sizeof w->id, "%s%s", flavor == FS_FLAVOR_LLAMA ? "chatcmpl-" : "msg_",
			 rnd);
		break;
	case FS_API_V1_COMPLETIONS:
		snprintf(w->id, sizeof w->id, "cmpl-%s", rnd);
		break;
	default:
		snprintf(w->id, sizeof w->id, "chatcmpl-%s", rnd);
	}
	rand_alnum(&r, rnd, 25);
	snprintf(w->tool_id, sizeof w->tool_id, "%s%s",
		 api == FS_API_ANTHROPIC && flavor != FS_FLAVOR_LLAMA ? "toolu_" : "call_", rnd);
}

bool fs_wire_tool_is_whole(const struct fs_wire *w)
{
	return w->api == FS_API_OLLAMA_CHAT || w->api == FS_API_OLLAMA_GENERATE ||
	       (w->api == FS_API_CHAT && w->flavor == FS_FLAVOR_OLLAMA);
}

bool fs_wire_is_sse(const struct fs_wire *w)
{
	return w->api != FS_API_OLLAMA_CHAT && w->api != FS_API_OLLAMA_GENERATE;
}

const char *fs_wire_stream_type(const struct fs_wire *w)
{
	return fs_wire_is_sse(w) ? "text/event-stream" : "application/x-ndjson";
}

void fs_wire_rfc3339(char *out, size_t n)
{
	struct timespec ts;
	struct tm tm;
	char date[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, n, "%s.%09ldZ", date, (long)ts.tv_nsec);
}

/* ---- shared pieces ---------------------------------------------------- */

static double per(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static int put_timings(struct buf *b, const struct fs_timings *t)
{
	uint64_t prompt_n = t->prompt_tokens - t->cached_tokens;
	return buf_printf(b,
			  "{\"cache_n\":%llu,\"prompt_n\":%llu,\"prompt_ms\":%.3f,"
			  "\"prompt_per_token_ms\":%.6g,\"prompt_per_second\":%.6g,"
			  "\"predicted_n\":%llu,\"predicted_ms\":%.3f,"
			  "\"predicted_per_token_ms\":%.6g,\"predicted_per_second\":%.6g}",
			  (unsigned long long)t->cached_tokens, (unsigned long long)prompt_n,
			  t->prompt_ms, per(t->prompt_ms, (double)prompt_n),
			  per(1e3 * (double)prompt_n, t->prompt_ms), (unsigned long long)t->predicted,
			  t->predicted_ms, per(t->predicted_ms, (double)t->predicted),
			  per(1e3 * (double)t->predicted, t->predicted_ms));
}

/* usage object in the flavor's key order */
static int put_usage(struct buf *b, const struct fs_wire *w, const struct fs_timings *t)
{
	unsigned long long p = t->prompt_tokens, c = t->cached_tokens, n = t->predicted;
	switch (w->flavor) {
	case FS_FLAVOR_LLAMA:
		return buf_printf(b,
				  "{\"completion_tokens\":%llu,\"prompt_tokens\":%llu,\"total_tokens\":%llu,"
				  "\"prompt_tokens_details\":{\"cached_tokens\":%llu}}",
				  n, p, p + n, c);
	case FS_FLAVOR_VLLM:
		return buf_printf(b,
				  "{\"prompt_tokens\":%llu,\"total_tokens\":%llu,\"completion_tokens\":%llu,"
				  "\"prompt_tokens_details\":{\"cached_tokens\":%llu}}",
				  p, p + n, n, c);
	case FS_FLAVOR_OLLAMA:
		return buf_printf(b,
				  "{\"prompt_tokens\":%llu,\"completion_tokens\":%llu,\"total_tokens\":%llu}",
				  p, n, p + n);
	case FS_FLAVOR_OPENAI:
		return buf_printf(b,
				  "{\"prompt_tokens\":%llu,\"completion_tokens\":%llu,\"total_tokens\":%llu,"
				  "\"prompt_tokens_details\":{\"cached_tokens\":%llu,\"audio_tokens\":0},"
				  "\"completion_tokens_details\":{\"reasoning_tokens\":%llu,"
				  "\"audio_tokens\":0,\"accepted_prediction_tokens\":0,"
				  "\"rejected_prediction_tokens\":0}}",
				  p, n, p + n, c, (unsigned long long)t->reasoning);
	}
	return -1;
}

static const char *finish_chat(enum fs_finish f)
{
	return f == FS_FINISH_LENGTH ? "length" : f == FS_FINISH_STOP ? "stop" : "tool_calls";
}

static const char *finish_anthropic(enum fs_finish f)
{
	return f == FS_FINISH_LENGTH ? "max_tokens" : f == FS_FINISH_STOP ? "end_turn" : "tool_use";
}

/* ---- OpenAI-style chunks (chat and text completions) ------------------ */

/* Writes `data: {` and the members before "choices" (vLLM/OpenAI/Ollama) or
 * nothing (llama puts choices first). */
static int chunk_open(struct buf *b, const struct fs_wire *w, const char *object)
{
	int r = buf_puts(b, "data: {");
	if (w->flavor == FS_FLAVOR_LLAMA)
		return r;
	r |= buf_printf(b, "\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", w->id, object,
			(long long)w->created);
	r |= put_str(b, w->model);
	r |= buf_putc(b, ',');
	if (w->flavor == FS_FLAVOR_OPENAI)
		r |= buf_puts(b, "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_faultsrv\",");
	else if (w->flavor == FS_FLAVOR_OLLAMA)
		r |= buf_puts(b, "\"system_fingerprint\":\"fp_ollama\",");
	return r;
}

/* Members after "choices"; `extra` (raw JSON members, may be NULL) goes last. */
static int chunk_close(struct buf *b, const struct fs_wire *w, const char *object,
		       const char *extra)
{
	int r = 0;
	if (w->flavor == FS_FLAVOR_LLAMA) {
		r |= buf_printf(b, ",\"created\":%lld,\"id\":\"%s\",\"model\":", (long long)w->created,
				w->id);
		r |= put_str(b, w->model);
		r |= buf_printf(b, ",\"system_fingerprint\":\"" LLAMA_FINGERPRINT "\",\"object\":\"%s\"",
				object);
	} else if (w->flavor == FS_FLAVOR_OPENAI && w->include_usage && !extra) {
		r |= buf_puts(b, ",\"usage\":null");
	}
	if (extra)
		r |= buf_printf(b, ",%s", extra);
	return r | buf_puts(b, "}\n\n");
}

/* One chat chunk with one choice. `delta` is raw JSON; `finish` NULL = null. */
static int chat_chunk(struct buf *b, const struct fs_wire *w, const char *delta,
		      const char *finish, const char *extra)
{
	static const char obj[] = "chat.completion.chunk";
	int r = chunk_open(b, w, obj);
	char fin[32];
	snprintf(fin, sizeof fin, finish ? "\"%s\"" : "null", finish);
	switch (w->flavor) {
	case FS_FLAVOR_LLAMA:
		r |= buf_printf(b, "\"choices\":[{\"finish_reason\":%s,\"index\":0,\"delta\":%s}]", fin,
				delta);
		break;
	case FS_FLAVOR_VLLM:
		r |= buf_printf(b, "\"choices\":[{\"index\":0,\"delta\":%s,\"logprobs\":null,"
				   "\"finish_reason\":%s%s}]",
				delta, fin, finish ? ",\"stop_reason\":null" : "");
		break;
	case FS_FLAVOR_OPENAI:
		r |= buf_printf(b, "\"choices\":[{\"index\":0,\"delta\":%s,\"logprobs\":null,"
				   "\"finish_reason\":%s}]",
				delta, fin);
		break;
	case FS_FLAVOR_OLLAMA:
		r |= buf_printf(b, "\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]", delta,
				fin);
		break;
	}
	return r | chunk_close(b, w, obj, extra);
}

/* The chunk with "choices":[] that carries usage (and llama's timings). */
static int usage_chunk(struct buf *b, const struct fs_wire *w, const char *object,
		       const struct fs_timings *t)
{
	struct buf u = BUF_INIT;
	int r = buf_puts(&u, "\"usage\":");
	r |= put_usage(&u, w, t);
	if (w->flavor == FS_FLAVOR_LLAMA) {
		r |= buf_puts(&u, ",\"timings\":");
		r |= put_timings(&u, t);
	}
	if (r == 0) {
		r |= chunk_open(b, w, object);
		r |= buf_puts(b, "\"choices\":[]");
		/* OpenAI's usage chunk must not get a second "usage":null */
		struct fs_wire w2 = *w;
		w2.include_usage = false;
		r |= chunk_close(b, &w2, object, u.data);
	}
	buf_free(&u);
	return r;
}

static int text_chunk(struct buf *b, const struct fs_wire *w, const char *text, size_t len,
		      const char *finish, const char *extra)
{
	static const char obj[] = "text_completion";
	int r = chunk_open(b, w, obj);
	char fin[32];
	snprintf(fin, sizeof fin, finish ? "\"%s\"" : "null", finish);
	if (w->flavor == FS_FLAVOR_LLAMA) {
		r |= buf_puts(b, "\"choices\":[{\"text\":");
		r |= jsonh_put_string_raw(b, text, len);
		r |= buf_printf(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":%s}]", fin);
		/* llama puts "id" last for text completions */
		r |= buf_printf(b, ",\"created\":%lld,\"model\":", (long long)w->created);
		r |= put_str(b, w->model);
		r |= buf_printf(b, ",\"system_fingerprint\":\"" LLAMA_FINGERPRINT
				   "\",\"object\":\"%s\",\"id\":\"%s\"",
				obj, w->id);
		if (extra)
			r |= buf_printf(b, ",%s", extra);
		return r | buf_puts(b, "}\n\n");
	}
	r |= buf_puts(b, "\"choices\":[{\"index\":0,\"text\":");
	r |= jsonh_put_string_raw(b, text, len);
	r |= buf_printf(b, ",\"logprobs\":null,\"finish_reason\":%s%s}]", fin,
			w->flavor == FS_FLAVOR_VLLM ? ",\"stop_reason\":null" : "");
	return r | chunk_close(b, w, obj, extra);
}

/* ---- Anthropic SSE ----------------------------------------------------- */

static int sse_event(struct buf *b, const char *event)
{
	return buf_printf(b, "event: %s\ndata: ", event);
}

static int anthropic_close_block(struct fs_wire *w, struct buf *b)
{
	if (w->open_block < 0)
		return 0;
	int r = sse_event(b, "content_block_stop");
	r |= buf_printf(b, "{\"type\":\"content_block_stop\",\"index\":%d}\n\n", w->open_block);
	w->open_block = -1;
	return r;
}

static int anthropic_open_block(struct fs_wire *w, struct buf *b, enum fs_part part)
{
	int r = anthropic_close_block(w, b);
	w->open_block = w->next_block++;
	w->open_part = part;
	r |= sse_event(b, "content_block_start");
	r |= buf_printf(b, "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":",
			w->open_block);
	switch (part) {
	case FS_PART_CONTENT: r |= buf_puts(b, "{\"type\":\"text\",\"text\":\"\"}"); break;
	case FS_PART_REASONING:
		r |= buf_puts(b, "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}");
		break;
	case FS_PART_TOOL:
		r |= buf_printf(b,
				"{\"type\":\"tool_use\",\"id\":\"%s\",\"name\":\"" FS_TOOL_NAME
				"\",\"input\":{}}",
				w->tool_id);
		break;
	}
	return r | buf_puts(b, "}\n\n");
}

static int anthropic_usage(struct buf *b, const struct fs_wire *w, uint64_t out_tokens)
{
	return buf_printf(b,
			  "{\"cache_read_input_tokens\":%llu,\"input_tokens\":%llu,\"output_tokens\":%llu}",
			  (unsigned long long)w->cached_tokens,
			  (unsigned long long)(w->prompt_tokens - w->cached_tokens),
			  (unsigned long long)out_tokens);
}

/* ---- Ollama NDJSON ----------------------------------------------------- */

static int ollama_open(struct buf *b, const struct fs_wire *w)
{
	char ts[48];
	fs_wire_rfc3339(ts, sizeof ts);
	int r = buf_puts(b, "{\"model\":");
	r |= put_str(b, w->model);
	return r | buf_printf(b, ",\"created_at\":\"%s\",", ts);
}

static int ollama_metrics(struct buf *b, const struct fs_timings *t)
{
	/* Go time.Duration in ns; prompt_eval_count = cache_n + prompt_n */
	double load_ms = 0.25;
	return buf_printf(b,
			  ",\"total_duration\":%lld,\"load_duration\":%lld,\"prompt_eval_count\":%llu,"
			  "\"prompt_eval_duration\":%lld,\"eval_count\":%llu,\"eval_duration\":%lld",
			  (long long)(t->total_ms * 1e6), (long long)(load_ms * 1e6),
			  (unsigned long long)t->prompt_tokens, (long long)(t->prompt_ms * 1e6),
			  (unsigned long long)t->predicted, (long long)(t->predicted_ms * 1e6));
}

static int ollama_tool_calls(struct buf *b, const struct fs_wire *w, const char *args)
{
	return buf_printf(b,
			  "\"tool_calls\":[{\"id\":\"%s\",\"function\":{\"index\":0,\"name\":\"" FS_TOOL_NAME
			  "\",\"arguments\":%s}}]",
			  w->tool_id, args);
}

/* ---- stream events ----------------------------------------------------- */

int fs_wire_preamble(struct fs_wire *w, struct buf *b)
{
	int r = 0;
	w->preamble_sent = true;
	switch (w->api) {
	case FS_API_CHAT:
		switch (w->flavor) {
		case FS_FLAVOR_LLAMA:
			return chat_chunk(b, w, "{\"role\":\"assistant\",\"content\":null}", NULL, NULL);
		case FS_FLAVOR_VLLM:
			return chat_chunk(b, w, "{\"role\":\"assistant\",\"content\":\"\"}", NULL, NULL);
		case FS_FLAVOR_OPENAI:
			return chat_chunk(b, w,
					  "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}",
					  NULL, NULL);
		case FS_FLAVOR_OLLAMA:
			return 0; /* Ollama repeats the role in every delta instead */
		}
		return -1;
	case FS_API_ANTHROPIC:
		r |= sse_event(b, "message_start");
		r |= buf_printf(b, "{\"type\":\"message_start\",\"message\":{\"id\":\"%s\",\"type\":"
				   "\"message\",\"role\":\"assistant\",\"content\":[],\"model\":",
				w->id);
		r |= put_str(b, w->model);
		r |= buf_puts(b, ",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
		r |= anthropic_usage(b, w, 0);
		return r | buf_puts(b, "}}\n\n");
	default:
		return 0;
	}
}

int fs_wire_token(struct fs_wire *w, struct buf *b, enum fs_part part, const char *text,
		  size_t len, uint64_t k)
{
	int r = 0;
	struct buf d = BUF_INIT;
	if (!w->preamble_sent)
		r |= fs_wire_preamble(w, b);
	switch (w->api) {
	case FS_API_CHAT: {
		const char *role = w->flavor == FS_FLAVOR_OLLAMA ? "\"role\":\"assistant\"," : "";
		if (part == FS_PART_TOOL) {
			if (!w->tool_started && w->flavor == FS_FLAVOR_LLAMA) {
				/* llama-server: name first, arguments in the next delta */
				r |= buf_printf(&d, "{\"tool_calls\":[{\"index\":0,\"id\":\"%s\",\"type\":"
						    "\"function\",\"function\":{\"name\":\"" FS_TOOL_NAME
						    "\"}}]}",
						w->tool_id);
				r |= chat_chunk(b, w, d.data, NULL, NULL);
				buf_reset(&d);
			}
			if (!w->tool_started && w->flavor != FS_FLAVOR_LLAMA) {
				r |= buf_printf(&d, "{%s\"tool_calls\":[{\"index\":0,\"id\":\"%s\",\"type\":"
						    "\"function\",\"function\":{\"name\":\"" FS_TOOL_NAME
						    "\",\"arguments\":",
						role, w->tool_id);
			} else {
				r |= buf_printf(&d, "{%s\"tool_calls\":[{\"index\":0,\"function\":{"
						    "\"arguments\":",
						role);
			}
			r |= jsonh_put_string_raw(&d, text, len);
			r |= buf_puts(&d, "}}]}");
			w->tool_started = true;
		} else {
			const char *field = "content";
			if (part == FS_PART_REASONING)
				field = (w->flavor == FS_FLAVOR_VLLM || w->flavor == FS_FLAVOR_OLLAMA)
						? "reasoning"
						: "reasoning_content";
			r |= buf_printf(&d, "{%s\"%s\":", role, field);
			r |= jsonh_put_string_raw(&d, text, len);
			r |= buf_putc(&d, '}');
		}
		if (r == 0)
			r |= chat_chunk(b, w, d.data, NULL, NULL);
		break;
	}
	case FS_API_V1_COMPLETIONS:
		r |= text_chunk(b, w, text, len, NULL, NULL);
		break;
	case FS_API_LLAMA_COMPLETION:
		r |= buf_puts(b, "data: {\"index\":0,\"content\":");
		r |= jsonh_put_string_raw(b, text, len);
		r |= buf_printf(b, ",\"tokens\":[%llu],\"stop\":false,\"id_slot\":-1,"
				   "\"tokens_predicted\":%llu,\"tokens_evaluated\":%llu}\n\n",
				(unsigned long long)(1000 + (k * 7919) % 150000), (unsigned long long)k,
				(unsigned long long)w->prompt_tokens);
		break;
	case FS_API_OLLAMA_CHAT:
		r |= ollama_open(b, w);
		r |= buf_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":");
		if (part == FS_PART_REASONING) {
			r |= buf_puts(b, "\"\",\"thinking\":");
			r |= jsonh_put_string_raw(b, text, len);
		} else {
			r |= jsonh_put_string_raw(b, text, len);
		}
		r |= buf_puts(b, "},\"done\":false}\n");
		break;
	case FS_API_OLLAMA_GENERATE:
		r |= ollama_open(b, w);
		r |= buf_puts(b, "\"response\":");
		if (part == FS_PART_REASONING) {
			r |= buf_puts(b, "\"\",\"thinking\":");
			r |= jsonh_put_string_raw(b, text, len);
		} else {
			r |= jsonh_put_string_raw(b, text, len);
		}
		r |= buf_puts(b, ",\"done\":false}\n");
		break;
	case FS_API_ANTHROPIC:
		if (w->open_block < 0 || w->open_part != part)
			r |= anthropic_open_block(w, b, part);
		r |= sse_event(b, "content_block_delta");
		r |= buf_printf(b, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{",
				w->open_block);
		if (part == FS_PART_CONTENT)
			r |= buf_puts(b, "\"type\":\"text_delta\",\"text\":");
		else if (part == FS_PART_REASONING)
			r |= buf_puts(b, "\"type\":\"thinking_delta\",\"thinking\":");
		else
			r |= buf_puts(b, "\"type\":\"input_json_delta\",\"partial_json\":");
		r |= jsonh_put_string_raw(b, text, len);
		r |= buf_puts(b, "}}\n\n");
		break;
	}
	buf_free(&d);
	return r;
}

int fs_wire_tool_whole(struct fs_wire *w, struct buf *b, const char *args)
{
	int r = 0;
	struct buf d = BUF_INIT;
	switch (w->api) {
	case FS_API_OLLAMA_CHAT:
		r |= ollama_open(b, w);
		r |= buf_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":\"\",");
		r |= ollama_tool_calls(b, w, args);
		r |= buf_puts(b, "},\"done\":false}\n");
		break;
	case FS_API_CHAT:
		r |= buf_printf(&d, "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":"
				    "\"%s\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"" FS_TOOL_NAME
				    "\",\"arguments\":",
				w->tool_id);
		r |= put_str(&d, args);
		r |= buf_puts(&d, "}}]}");
		if (r == 0)
			r |= chat_chunk(b, w, d.data, NULL, NULL);
		break;
	default: /* /api/generate has no tool calls: the arguments come as text */
		r |= fs_wire_token(w, b, FS_PART_CONTENT, args, strlen(args), 1);
	}
	w->tool_started = true;
	buf_free(&d);
	return r;
}

int fs_wire_progress(struct fs_wire *w, struct buf *b, uint64_t processed, uint64_t time_ms)
{
	char extra[160];
	snprintf(extra, sizeof extra,
		 "\"prompt_progress\":{\"total\":%llu,\"cache\":%llu,\"processed\":%llu,\"time_ms\":%llu}",
		 (unsigned long long)w->prompt_tokens, (unsigned long long)w->cached_tokens,
		 (unsigned long long)processed, (unsigned long long)time_ms);
	switch (w->api) {
	case FS_API_CHAT:
		/* llama-server repeats the role-only delta on every progress chunk */
		return chat_chunk(b, w, "{\"role\":\"assistant\",\"content\":null}", NULL, extra);
	case FS_API_V1_COMPLETIONS:
		return text_chunk(b, w, "", 0, NULL, extra);
	case FS_API_LLAMA_COMPLETION:
		return buf_printf(b, "data: {\"index\":0,\"content\":\"\",\"tokens\":[],\"stop\":false,"
				     "\"id_slot\":-1,\"tokens_predicted\":0,\"tokens_evaluated\":%llu,%s}\n\n",
				  (unsigned long long)w->prompt_tokens, extra);
	default:
		return 0;
	}
}

int fs_wire_ping(struct fs_wire *w, struct buf *b)
{
	if (!fs_wire_is_sse(w))
		return 0;
	if (w->flavor == FS_FLAVOR_LLAMA)
		return buf_puts(b, ":\n\n"); /* what llama-server's sse_ping_interval sends */
	if (w->api == FS_API_ANTHROPIC)
		return buf_puts(b, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
	return buf_puts(b, ": ping\n\n");
}

int fs_wire_finish(struct fs_wire *w, struct buf *b, enum fs_finish fin,
		   const struct fs_timings *t)
{
	int r = 0;
	struct buf x = BUF_INIT;
	bool usage = !w->no_usage;
	switch (w->api) {
	case FS_API_CHAT:
	case FS_API_V1_COMPLETIONS: {
		bool chat = w->api == FS_API_CHAT;
		const char *obj = chat ? "chat.completion.chunk" : "text_completion";
		if (chat && !w->preamble_sent)
			r |= fs_wire_preamble(w, b);
		/* llama: timings ride on the finish chunk unless a usage chunk follows;
		 * its /v1/completions puts usage + timings on the finish chunk */
		if (usage && w->flavor == FS_FLAVOR_LLAMA) {
			if (!chat) {
				r |= buf_puts(&x, "\"usage\":");
				r |= put_usage(&x, w, t);
				r |= buf_puts(&x, ",\"timings\":");
				r |= put_timings(&x, t);
			} else if (!w->include_usage) {
				r |= buf_puts(&x, "\"timings\":");
				r |= put_timings(&x, t);
			}
		}
		const char *extra = x.len ? x.data : NULL;
		if (chat) {
			const char *delta = w->flavor == FS_FLAVOR_OLLAMA
						    ? "{\"role\":\"assistant\",\"content\":\"\"}"
						    : "{}";
			r |= chat_chunk(b, w, delta, finish_chat(fin), extra);
		} else {
			r |= text_chunk(b, w, "", 0, finish_chat(fin), extra);
		}
		if (usage && w->include_usage && (chat || w->flavor != FS_FLAVOR_LLAMA))
			r |= usage_chunk(b, w, obj, t);
		if (!w->no_done)
			r |= buf_puts(b, "data: [DONE]\n\n");
		break;
	}
	case FS_API_LLAMA_COMPLETION:
		if (w->no_done)
			break;
		r |= buf_puts(b, "data: {\"index\":0,\"content\":\"\",\"tokens\":[],\"id_slot\":0,"
				 "\"stop\":true,\"model\":");
		r |= put_str(b, w->model);
		r |= buf_printf(b,
				",\"tokens_predicted\":%llu,\"tokens_evaluated\":%llu,"
				"\"generation_settings\":{\"n_predict\":%llu,\"max_tokens\":%llu,"
				"\"stream\":true},\"prompt\":\"\",\"has_new_line\":false,\"truncated\":false,"
				"\"stop_type\":\"%s\",\"stopping_word\":\"\",\"tokens_cached\":%llu",
				(unsigned long long)t->predicted, (unsigned long long)t->prompt_tokens,
				(unsigned long long)w->n_predict, (unsigned long long)w->n_predict,
				fin == FS_FINISH_LENGTH ? "limit" : "eos",
				(unsigned long long)(t->prompt_tokens + t->predicted));
		if (usage) {
			r |= buf_puts(b, ",\"timings\":");
			r |= put_timings(b, t);
		}
		r |= buf_puts(b, "}\n\n");
		break;
	case FS_API_OLLAMA_CHAT:
	case FS_API_OLLAMA_GENERATE:
		if (w->no_done)
			break;
		r |= ollama_open(b, w);
		r |= buf_puts(b, w->api == FS_API_OLLAMA_CHAT
					 ? "\"message\":{\"role\":\"assistant\",\"content\":\"\"}"
					 : "\"response\":\"\"");
		r |= buf_printf(b, ",\"done\":true,\"done_reason\":\"%s\"",
				fin == FS_FINISH_LENGTH ? "length" : "stop");
		if (usage)
			r |= ollama_metrics(b, t);
		r |= buf_puts(b, "}\n");
		break;
	case FS_API_ANTHROPIC:
		if (!w->preamble_sent)
			r |= fs_wire_preamble(w, b);
		r |= anthropic_close_block(w, b);
		r |= sse_event(b, "message_delta");
		r |= buf_printf(b, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\","
				   "\"stop_sequence\":null}",
				finish_anthropic(fin));
		if (usage)
			r |= buf_printf(b, ",\"usage\":{\"output_tokens\":%llu}",
					(unsigned long long)t->predicted);
		r |= buf_puts(b, "}\n\n");
		if (!w->no_done) {
			r |= sse_event(b, "message_stop");
			r |= buf_puts(b, "{\"type\":\"message_stop\"}\n\n");
		}
		break;
	}
	buf_free(&x);
	return r;
}

int fs_wire_error_event(struct fs_wire *w, struct buf *b, int code, const char *msg,
			const char *type)
{
	int r = 0;
	switch (w->api) {
	case FS_API_OLLAMA_CHAT:
	case FS_API_OLLAMA_GENERATE:
		r |= buf_puts(b, "{\"error\":");
		r |= put_str(b, msg);
		return r | buf_puts(b, "}\n");
	case FS_API_ANTHROPIC:
		r |= sse_event(b, "error");
		if (w->flavor == FS_FLAVOR_LLAMA) {
			r |= buf_printf(b, "{\"code\":%d,\"message\":", code);
			r |= put_str(b, msg);
			return r | buf_printf(b, ",\"type\":\"%s\"}\n\n", type);
		}
		r |= buf_puts(b, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":");
		r |= put_str(b, msg);
		return r | buf_puts(b, "}}\n\n");
	default:
		break;
	}
	switch (w->flavor) {
	case FS_FLAVOR_LLAMA:
		r |= buf_printf(b, "data: {\"error\":{\"code\":%d,\"message\":", code);
		r |= put_str(b, msg);
		return r | buf_printf(b, ",\"type\":\"%s\"}}\n\n", type);
	case FS_FLAVOR_VLLM:
		/* vLLM json.dumps()es its streaming errors (spaces after ':' and ','),
		 * then still sends [DONE] */
		r |= buf_puts(b, "data: {\"error\": {\"message\": ");
		r |= put_str(b, msg);
		r |= buf_printf(b, ", \"type\": \"%s\", \"param\": null, \"code\": %d}}\n\n",
				code >= 500 ? "InternalServerError" : "BadRequestError", code);
		if (!w->no_done)
			r |= buf_puts(b, "data: [DONE]\n\n");
		return r;
	case FS_FLAVOR_OLLAMA:
	case FS_FLAVOR_OPENAI:
		r |= buf_puts(b, "data: {\"error\":{\"message\":");
		r |= put_str(b, msg);
		return r | buf_puts(b, ",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n");
	}
	return -1;
}

/* ---- non-streamed answers ---------------------------------------------- */

static int chat_message(struct buf *b, const struct fs_wire *w, const char *content, size_t clen,
			const char *reasoning, size_t rlen, const char *tool_args)
{
	int r = buf_puts(b, "{\"role\":\"assistant\",\"content\":");
	if (tool_args && !clen && w->flavor != FS_FLAVOR_OLLAMA)
		r |= buf_puts(b, "null");
	else
		r |= jsonh_put_string_raw(b, content, clen);
	if (rlen) {
		r |= buf_puts(b, w->flavor == FS_FLAVOR_VLLM || w->flavor == FS_FLAVOR_OLLAMA
					 ? ",\"reasoning\":"
					 : ",\"reasoning_content\":");
		r |= jsonh_put_string_raw(b, reasoning, rlen);
	}
	if (tool_args) {
		if (w->flavor == FS_FLAVOR_LLAMA)
			r |= buf_puts(b, ",\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"" FS_TOOL_NAME
					 "\",\"arguments\":");
		else
			r |= buf_printf(b, ",\"tool_calls\":[{\"id\":\"%s\",\"type\":\"function\","
					   "\"function\":{\"name\":\"" FS_TOOL_NAME "\",\"arguments\":",
					w->tool_id);
		r |= put_str(b, tool_args);
		if (w->flavor == FS_FLAVOR_LLAMA)
			r |= buf_printf(b, "},\"id\":\"%s\"}]", w->tool_id);
		else
			r |= buf_puts(b, "}}]");
	}
	return r | buf_putc(b, '}');
}

int fs_wire_body(struct fs_wire *w, struct buf *b, const char *content, size_t clen,
		 const char *reasoning, size_t rlen, const char *tool_args, enum fs_finish fin,
		 const struct fs_timings *t)
{
	int r = 0;
	bool usage = !w->no_usage;
	if (!content)
		content = "", clen = 0;
	if (!reasoning)
		reasoning = "", rlen = 0;
	switch (w->api) {
	case FS_API_CHAT:
		if (w->flavor == FS_FLAVOR_LLAMA) {
			r |= buf_printf(b, "{\"choices\":[{\"finish_reason\":\"%s\",\"index\":0,\"message\":",
					finish_chat(fin));
			r |= chat_message(b, w, content, clen, reasoning, rlen, tool_args);
			r |= buf_printf(b, "}],\"created\":%lld,\"model\":", (long long)w->created);
			r |= put_str(b, w->model);
			r |= buf_puts(b, ",\"system_fingerprint\":\"" LLAMA_FINGERPRINT
					 "\",\"object\":\"chat.completion\"");
			if (usage) {
				r |= buf_puts(b, ",\"usage\":");
				r |= put_usage(b, w, t);
			}
			r |= buf_printf(b, ",\"id\":\"%s\"", w->id);
			if (usage) {
				r |= buf_puts(b, ",\"timings\":");
				r |= put_timings(b, t);
			}
			return r | buf_putc(b, '}');
		}
		r |= buf_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,"
				   "\"model\":",
				w->id, (long long)w->created);
		r |= put_str(b, w->model);
		r |= buf_puts(b, ",\"choices\":[{\"index\":0,\"message\":");
		r |= chat_message(b, w, content, clen, reasoning, rlen, tool_args);
		r |= buf_printf(b, ",\"logprobs\":null,\"finish_reason\":\"%s\"}]", finish_chat(fin));
		if (usage) {
			r |= buf_puts(b, ",\"usage\":");
			r |= put_usage(b, w, t);
		}
		return r | buf_putc(b, '}');
	case FS_API_V1_COMPLETIONS:
		if (w->flavor == FS_FLAVOR_LLAMA) {
			r |= buf_puts(b, "{\"choices\":[{\"text\":");
			r |= jsonh_put_string_raw(b, content, clen);
			r |= buf_printf(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}],"
					   "\"created\":%lld,\"model\":",
					finish_chat(fin), (long long)w->created);
			r |= put_str(b, w->model);
			r |= buf_puts(b, ",\"system_fingerprint\":\"" LLAMA_FINGERPRINT
					 "\",\"object\":\"text_completion\"");
			if (usage) {
				r |= buf_puts(b, ",\"usage\":");
				r |= put_usage(b, w, t);
			}
			r |= buf_printf(b, ",\"id\":\"%s\"", w->id);
			if (usage) {
				r |= buf_puts(b, ",\"timings\":");
				r |= put_timings(b, t);
			}
			return r | buf_putc(b, '}');
		}
		r |= buf_printf(b, "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":%lld,"
				   "\"model\":",
				w->id, (long long)w->created);
		r |= put_str(b, w->model);
		r |= buf_puts(b, ",\"choices\":[{\"index\":0,\"text\":");
		r |= jsonh_put_string_raw(b, content, clen);
		r |= buf_printf(b, ",\"logprobs\":null,\"finish_reason\":\"%s\"}]", finish_chat(fin));
		if (usage) {
			r |= buf_puts(b, ",\"usage\":");
			r |= put_usage(b, w, t);
		}
		return r | buf_putc(b, '}');
	case FS_API_LLAMA_COMPLETION:
		r |= buf_puts(b, "{\"index\":0,\"content\":");
		r |= jsonh_put_string_raw(b, content, clen);
		r |= buf_puts(b, ",\"tokens\":[],\"id_slot\":0,\"stop\":true,\"model\":");
		r |= put_str(b, w->model);
		r |= buf_printf(b,
				",\"tokens_predicted\":%llu,\"tokens_evaluated\":%llu,"
				"\"generation_settings\":{\"n_predict\":%llu,\"max_tokens\":%llu,"
				"\"stream\":false},\"prompt\":\"\",\"has_new_line\":false,\"truncated\":false,"
				"\"stop_type\":\"%s\",\"stopping_word\":\"\",\"tokens_cached\":%llu",
				(unsigned long long)t->predicted, (unsigned long long)t->prompt_tokens,
				(unsigned long long)w->n_predict, (unsigned long long)w->n_predict,
				fin == FS_FINISH_LENGTH ? "limit" : "eos",
				(unsigned long long)(t->prompt_tokens + t->predicted));
		if (usage) {
			r |= buf_puts(b, ",\"timings\":");
			r |= put_timings(b, t);
		}
		return r | buf_putc(b, '}');
	case FS_API_OLLAMA_CHAT:
	case FS_API_OLLAMA_GENERATE:
		r |= ollama_open(b, w);
		if (w->api == FS_API_OLLAMA_CHAT) {
			r |= buf_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":");
			r |= jsonh_put_string_raw(b, content, clen);
			if (rlen) {
				r |= buf_puts(b, ",\"thinking\":");
				r |= jsonh_put_string_raw(b, reasoning, rlen);
			}
			if (tool_args) {
				r |= buf_putc(b, ',');
				r |= ollama_tool_calls(b, w, tool_args);
			}
			r |= buf_putc(b, '}');
		} else {
			r |= buf_puts(b, "\"response\":");
			if (tool_args)
				r |= put_str(b, tool_args);
			else
				r |= jsonh_put_string_raw(b, content, clen);
			if (rlen) {
				r |= buf_puts(b, ",\"thinking\":");
				r |= jsonh_put_string_raw(b, reasoning, rlen);
			}
		}
		r |= buf_printf(b, ",\"done\":true,\"done_reason\":\"%s\"",
				fin == FS_FINISH_LENGTH ? "length" : "stop");
		if (usage)
			r |= ollama_metrics(b, t);
		return r | buf_putc(b, '}');
	case FS_API_ANTHROPIC:
		r |= buf_printf(b, "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\","
				   "\"content\":[",
				w->id);
		if (rlen) {
			r |= buf_puts(b, "{\"type\":\"thinking\",\"thinking\":");
			r |= jsonh_put_string_raw(b, reasoning, rlen);
			r |= buf_puts(b, ",\"signature\":\"\"}");
		}
		if (tool_args) {
			r |= buf_printf(b, "%s{\"type\":\"tool_use\",\"id\":\"%s\",\"name\":\"" FS_TOOL_NAME
					   "\",\"input\":%s}",
					rlen ? "," : "", w->tool_id, tool_args);
		} else {
			r |= buf_puts(b, rlen ? ",{\"type\":\"text\",\"text\":" : "{\"type\":\"text\",\"text\":");
			r |= jsonh_put_string_raw(b, content, clen);
			r |= buf_putc(b, '}');
		}
		r |= buf_puts(b, "],\"model\":");
		r |= put_str(b, w->model);
		r |= buf_printf(b, ",\"stop_reason\":\"%s\",\"stop_sequence\":null", finish_anthropic(fin));
		if (usage) {
			r |= buf_puts(b, ",\"usage\":");
			r |= anthropic_usage(b, w, t->predicted);
		}
		return r | buf_putc(b, '}');
	}
	return -1;
}

int fs_wire_error_body(enum fs_api api, enum fs_flavor flavor, const struct fs_httperr *e,
		       struct buf *b)
{
	int r = 0;
	if (api == FS_API_OLLAMA_CHAT || api == FS_API_OLLAMA_GENERATE)
		flavor = FS_FLAVOR_OLLAMA;
	if (api == FS_API_ANTHROPIC && flavor != FS_FLAVOR_LLAMA) {
		r |= buf_printf(b, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":",
				e->anthropic_type ? e->anthropic_type : "api_error");
		r |= put_str(b, e->msg);
		return r | buf_puts(b, "}}");
	}
	switch (flavor) {
	case FS_FLAVOR_LLAMA:
		if (e->llama_msg_first) {
			r |= buf_puts(b, "{\"error\":{\"message\":");
			r |= put_str(b, e->msg);
			r |= buf_printf(b, ",\"type\":\"%s\",\"code\":%d", e->llama_type, e->status);
		} else {
			r |= buf_printf(b, "{\"error\":{\"code\":%d,\"message\":", e->status);
			r |= put_str(b, e->msg);
			r |= buf_printf(b, ",\"type\":\"%s\"", e->llama_type);
		}
		if (e->llama_extra)
			r |= buf_printf(b, ",%s", e->llama_extra);
		return r | buf_puts(b, "}}");
	case FS_FLAVOR_VLLM:
		r |= buf_puts(b, "{\"error\":{\"message\":");
		r |= put_str(b, e->msg);
		return r | buf_printf(b, ",\"type\":\"%s\",\"param\":null,\"code\":%d}}", e->vllm_type,
				      e->status);
	case FS_FLAVOR_OLLAMA:
		r |= buf_puts(b, "{\"error\":");
		r |= put_str(b, e->msg);
		return r | buf_putc(b, '}');
	case FS_FLAVOR_OPENAI:
		r |= buf_puts(b, "{\"error\":{\"message\":");
		r |= put_str(b, e->msg);
		r |= buf_printf(b, ",\"type\":\"%s\",\"param\":", e->openai_type);
		r |= e->openai_param ? put_str(b, e->openai_param) : buf_puts(b, "null");
		r |= buf_puts(b, ",\"code\":");
		r |= e->openai_code ? put_str(b, e->openai_code) : buf_puts(b, "null");
		return r | buf_puts(b, "}}");
	}
	return -1;
}
