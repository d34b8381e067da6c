/* adapter: how one backend API is spoken — a small table of functions.
 *
 * An adapter builds the request body of a turn from the materialised
 * conversation (src/convo.h) and reads the backend's stream one event at a
 * time (an SSE event or an NDJSON line), filling a struct stream_acc with
 * what the measurement needs: when generated tokens arrived, the server's
 * usage and timings, the generated text, the end marker, error events.
 *
 * A "generated token" event is one that carries non-empty generated text of
 * any kind: content, reasoning (reasoning_content on llama.cpp, reasoning on
 * vLLM/SGLang/mlx-lm, thinking on Anthropic/Ollama) or tool-call arguments.
 * Role-only chunks, empty deltas, prompt_progress chunks and SSE comments
 * never are (DESIGN.md section 4: TTFT is taken at the first such event).
 *
 * Adapters: openai (/v1/chat/completions), llama-server (the same plus
 * cache_prompt, timings, /health, /slots, /tokenize), ollama (/api/chat
 * NDJSON), anthropic (/v1/messages SSE).
 */
#ifndef AR_ADAPTER_H
#define AR_ADAPTER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "clock.h"
#include "convo.h"
#include "err.h"
#include "trace.h"

struct req_ctx {
	const struct tr_session *session;
	const struct convo *convo; /* full messages (not count-only) */
	const char *nonce;         /* put at the very start of the prompt; may be "" */
	const char *model;
	int64_t max_tokens;
	int64_t num_ctx;  /* ollama options.num_ctx (0 = leave to the server) */
	bool plain;       /* send only standard fields (no ignore_eos/min_tokens) */
	bool no_stream;   /* non-streaming request (not used for measurement) */
	const char *base_url; /* for adapters that ask the server first (llama-server's /apply-template) */
	bool token_ids;       /* llama-server: send the prompt as token ids (tokenized before the clock starts) */
	int max_tokens_field; /* openai: 0 max_tokens, 1 max_completion_tokens, 2 both */
};

/* What the stream told us. Integers are -1 until known. */
struct stream_acc {
	ar_ns t_first_token;
	ar_ns t_last_token;
	int64_t token_events;  /* events that carried generated text */
	ar_ns *token_times;    /* arrival time of each token event (first 1M) */
	size_t n_times, cap_times;
	int64_t usage_prompt, usage_cached, usage_completion;
	const char *cached_source; /* "usage", "timings" */
	cJSON *server;             /* what the server reported: timings, usage, durations */
	struct buf text;           /* generated content (ceiling 4 MiB) */
	bool done;                 /* the end marker: [DONE], message_stop, done:true */
	bool finish_seen;
	char finish_reason[32];
	struct buf error;          /* an error event's text (evidence) */
	bool bad_event;            /* an event that is not what the API sends */
	char bad_event_msg[160];
	bool invalid_utf8;
};

void stream_acc_init(struct stream_acc *a);
void stream_acc_free(struct stream_acc *a);
/* Records one generated-token event at time t. */
int stream_acc_token(struct stream_acc *a, ar_ns t);

enum adapter_wire { WIRE_SSE, WIRE_NDJSON };

struct adapter {
	const char *name;
	const char *family; /* failure-rule family: llama, vllm, ollama, openai, anthropic */
	const char *path;   /* request path appended to the base URL */
	enum adapter_wire wire;
	bool llama_extras;  /* cache_prompt, timings, /slots, /tokenize */
	int (*build)(const struct adapter *ad, const struct req_ctx *r, struct buf *body, struct ar_err *err);
	/* One SSE event (event name may be "") or NDJSON line. Never fails the
	 * transfer: malformed input sets a->bad_event. */
	void (*event)(struct stream_acc *a, const char *event, const char *data, size_t n, ar_ns t);
};

extern const struct adapter adapter_openai, adapter_llama, adapter_ollama, adapter_anthropic;

/* Looks an adapter up by name (openai, llama-server, ollama, anthropic). */
const struct adapter *adapter_find(const char *name);
/* Comma-separated adapter names, for messages. */
const char *adapter_names(void);

/* The OpenAI "messages" array of the conversation (used by llama-server's
 * /apply-template too). */
int adapter_openai_messages(const struct req_ctx *r, struct buf *b);

/* Shared by the adapters: one event's JSON object, or NULL when the event
 * is malformed (bad_event set) or an error event (kept in a->error); the
 * caller deletes it. */
cJSON *adapter_event_json(struct stream_acc *a, const char *data, size_t n);
/* Appends generated text (checking its UTF-8) to a->text. */
void adapter_note_text(struct stream_acc *a, const char *s);

/* Shared by the adapters: message text of a convo entry (content, or the
 * expansion of synthetic blocks), appended to out. */
int adapter_message_text(const struct req_ctx *r, size_t idx, struct buf *out);

#endif
