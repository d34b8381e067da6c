/* fs_wire: the bytes ar-faultsrv puts on the wire, per API and server flavor.
 *
 * Every function appends to a `struct buf` (the caller owns it and its
 * ceiling) and returns 0, or -1 when the buffer refused the bytes. Shapes
 * follow what the real servers send, key order included where it is known:
 * llama-server v0.4.0 (captured with tests/real/setup-llama.sh's build), vLLM
 * (ChatCompletionStreamResponse, ErrorResponse {"error":{...}}), the OpenAI
 * API, Ollama (api.ChatResponse, NDJSON) and the Anthropic Messages API as
 * llama-server serves it.
 *
 * A `struct fs_wire` carries one response's identity (ids, model, prompt
 * figures) and the little state a stream needs (whether the role/message_start
 * preamble went out, which Anthropic content block is open). It holds no
 * pointers it owns; `model` is borrowed and must outlive it.
 */
#ifndef AR_FS_WIRE_H
#define AR_FS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum fs_api {
	FS_API_CHAT,             /* POST /v1/chat/completions (SSE or JSON) */
	FS_API_V1_COMPLETIONS,   /* POST /v1/completions */
	FS_API_LLAMA_COMPLETION, /* POST /completion (llama-server native) */
	FS_API_OLLAMA_CHAT,      /* POST /api/chat (NDJSON) */
	FS_API_OLLAMA_GENERATE,  /* POST /api/generate (NDJSON) */
	FS_API_ANTHROPIC,        /* POST /v1/messages (SSE or JSON) */
};

enum fs_flavor { FS_FLAVOR_LLAMA, FS_FLAVOR_VLLM, FS_FLAVOR_OLLAMA, FS_FLAVOR_OPENAI };

enum fs_part { FS_PART_CONTENT, FS_PART_REASONING, FS_PART_TOOL };

enum fs_finish { FS_FINISH_LENGTH, FS_FINISH_STOP, FS_FINISH_TOOL };

/* The tool every `tool_call` answer calls. */
#define FS_TOOL_NAME "read_file"

/* Server-side figures of one request, as the final events report them. */
struct fs_timings {
	uint64_t prompt_tokens; /* whole prompt */
	uint64_t cached_tokens; /* of which reused from the prefix cache */
	uint64_t predicted;     /* tokens generated */
	uint64_t reasoning;     /* of which reasoning tokens */
	double prompt_ms;       /* request received -> first token */
	double predicted_ms;    /* first token -> last token */
	double total_ms;        /* request received -> now */
};

struct fs_wire {
	enum fs_api api;
	enum fs_flavor flavor;
	const char *model;   /* borrowed */
	char id[64];         /* "chatcmpl-...", "cmpl-...", "msg_..." */
	char tool_id[48];
	int64_t created;     /* unix seconds */
	uint64_t prompt_tokens, cached_tokens;
	uint64_t n_predict;  /* as asked, for generation_settings */
	bool stream;
	bool include_usage;  /* stream_options.include_usage */
	bool no_usage;       /* fault: never send usage/timings */
	bool no_done;        /* fault: omit the stream terminator */
	/* stream state */
	bool preamble_sent;
	int open_block;      /* Anthropic: index of the open content block, -1 none */
	enum fs_part open_part;
	int next_block;
	bool tool_started;
};

/* Sets identity and defaults; `seed` makes the ids (deterministic per request). */
void fs_wire_init(struct fs_wire *w, enum fs_api api, enum fs_flavor flavor, const char *model,
		  uint64_t seed);

/* True when this API/flavor sends a tool call whole (Ollama) rather than as
 * argument deltas. */
bool fs_wire_tool_is_whole(const struct fs_wire *w);
/* True for SSE APIs (false for the NDJSON Ollama endpoints). */
bool fs_wire_is_sse(const struct fs_wire *w);
/* Content-Type of the stream. */
const char *fs_wire_stream_type(const struct fs_wire *w);

/* The role-only chunk / message_start, on its own (fault role_first). */
int fs_wire_preamble(struct fs_wire *w, struct buf *b);
/* One generated token: its event(s), preceded by the preamble when that has
 * not gone out yet (llama-server sends both in one write). `k` is the 1-based
 * index of the token in the answer. */
int fs_wire_token(struct fs_wire *w, struct buf *b, enum fs_part part, const char *text,
		  size_t len, uint64_t k);
/* A whole tool call (Ollama style); `args` is a JSON object text. */
int fs_wire_tool_whole(struct fs_wire *w, struct buf *b, const char *args);
/* llama-server `prompt_progress` chunk (return_progress). No-op for APIs
 * that have none. */
int fs_wire_progress(struct fs_wire *w, struct buf *b, uint64_t processed, uint64_t time_ms);
/* SSE keep-alive comment (nothing for NDJSON). */
int fs_wire_ping(struct fs_wire *w, struct buf *b);
/* Finish chunk, usage/timings, terminator — as flags on `w` allow. */
int fs_wire_finish(struct fs_wire *w, struct buf *b, enum fs_finish fin,
		   const struct fs_timings *t);
/* An error event inside a 200 stream, then what the flavor sends after it
 * (vLLM: [DONE]). `code` is the error's code (500), `type` llama's type name. */
int fs_wire_error_event(struct fs_wire *w, struct buf *b, int code, const char *msg,
			const char *type);
/* Non-streamed answer. `content`, `reasoning`, `tool_args` may be NULL/empty. */
int fs_wire_body(struct fs_wire *w, struct buf *b, const char *content, size_t content_len,
		 const char *reasoning, size_t reasoning_len, const char *tool_args,
		 enum fs_finish fin, const struct fs_timings *t);

/* An HTTP error answer, rendered in the shape of the flavor (and of the API:
 * the Ollama endpoints always answer in Ollama's shape, /v1/messages in Anthropic's unless llama). */
struct fs_httperr {
	int status;
	const char *msg;
	const char *llama_type;     /* llama-server "type" ("server_error") */
	const char *vllm_type;      /* vLLM "type" ("BadRequestError") */
	const char *openai_type;    /* OpenAI "type" ("invalid_request_error") */
	const char *openai_code;    /* OpenAI "code" string, NULL = null */
	const char *openai_param;   /* OpenAI "param", NULL = null */
	const char *anthropic_type; /* Anthropic error.type ("api_error") */
	const char *llama_extra;    /* raw members appended to llama's error object */
	bool llama_msg_first;       /* llama key order message,type,code (e.g. 503) */
};
int fs_wire_error_body(enum fs_api api, enum fs_flavor flavor, const struct fs_httperr *e,
		       struct buf *b);

/* RFC 3339 UTC time with nanoseconds, as Go prints it ("...T...123456789Z"). */
void fs_wire_rfc3339(char *out, size_t n);

#endif
