/* record: a transparent recording proxy between a live agent and its LLM API.
 *
 * The agent's base URL points at the proxy; every request is forwarded to
 * the upstream (path and query kept, so --upstream is the server's origin,
 * e.g. https://api.openai.com or http://127.0.0.1:8080) and the answer is
 * streamed back as its bytes arrive (the reply to the agent starts when the
 * upstream's headers arrive; each body chunk is handed to the agent's
 * connection at once, never buffered whole). Request headers are forwarded
 * except hop-by-hop ones and Accept-Encoding (so the body can be read);
 * credentials (Authorization, x-api-key, api-key, ...) go upstream and
 * nowhere else: no header is ever written to a file.
 *
 * Recorded: POST .../chat/completions (OpenAI chat) and POST .../messages
 * (Anthropic messages), streamed (SSE) or not. Every other path is passed
 * through unrecorded. For each recorded call, after its answer is complete:
 *   - one JSON line in the request log (when log_path is set), format v1:
 *     {"v":1,"t":UNIX_SECONDS,"api":"openai-chat"|"anthropic-messages",
 *      "request":BODY,"response":{"status":INT,"content":STR|null,
 *      "tool_calls":[OpenAI wire tool calls]|null,"reasoning_chars":INT|null,
 *      "usage":{...as the server reported}|null},"ttft_ms":NUM|null,
 *      "e2e_ms":NUM|null}
 *     (t = when the request arrived; ttft_ms = first content/reasoning/tool
 *     token of a stream, null when not streamed; e2e_ms = request arrival to
 *     the upstream's last byte; status 502 when the upstream could not be
 *     reached, 499 when the agent hung up first);
 *   - one turn of the trace (agentreplay-trace/1), derived from that same
 *     log object through the reqdiff router (src/reqdiff.h): each call goes
 *     to the conversation whose history it extends, so an agent's parallel
 *     conversations (Task subagents beside the main conversation, parallel
 *     calls) stay separate sessions, and a conversation that starts while
 *     another awaits a (subagent) tool result is its child (`parent`,
 *     `spawned_at_turn`); new sessions also when the system prompt or tools
 *     change; keep + append, response, recorded usage and timings. The log
 *     line carries "session" (the trace session id) and, on a child's first
 *     call, "parent" and "spawned_at_turn", so `import openai-log` rebuilds
 *     the same sessions.
 *   Writing (FORMAT.md §3: a session's lines are contiguous, parents come
 *   before children): sessions are in the file in creation order (a parent
 *   is created before its children, and a child's spawned_at_turn is a turn
 *   the parent already has). A turn of the last session in the file is
 *   appended in place and flushed (a zstd frame per turn for .zst); a turn
 *   of any other session makes the recorder rewrite the whole trace from
 *   the sessions' lines it keeps in memory, into a temporary file renamed
 *   over the trace. Either way every turn is in the file as soon as it is
 *   recorded, and a killed recorder leaves a valid file (the old one or
 *   the new one). Cost: memory and, for interleaved turns, I/O of the size
 *   of the trace (deltas, not prompts) per turn.
 * Both are redacted (src/redact.h) unless redact is NULL.
 *
 * An upstream that cannot be reached gets the agent a 502 with a JSON error
 * body; the proxy keeps serving. Requests are recorded in the order their
 * answers complete (one conversation's calls are sequential, so its order is
 * kept). A run that recorded nothing removes the (empty) trace
 * file. The agent sees the end of each answer only once its record is
 * written, so every call the agent saw complete is in the files even when
 * the recorder is killed right after.
 */
#ifndef AR_RECORD_H
#define AR_RECORD_H

#include <signal.h>
#include <stdint.h>

#include "err.h"
#include "redact.h"

struct record_opts {
	const char *upstream;   /* origin URL, http(s)://host[:port][/prefix] */
	const char *host;       /* listen address (IPv4 literal); NULL = 127.0.0.1 */
	int port;               /* 0 = any free port */
	const char *trace_path; /* output trace ("-" not allowed) */
	const char *log_path;   /* request log (appended), or NULL */
	struct redact *redact;  /* NULL = no redaction */
	size_t max_body;        /* request body ceiling, bytes; 0 = 64 MiB */
	/* called once the socket listens (the CLI prints the URL) */
	void (*ready)(void *ctx, int port);
	/* one line per recorded call or problem (the CLI prints them unless -q) */
	void (*note)(void *ctx, const char *line);
	void *ctx;
	volatile sig_atomic_t *stop; /* set by a signal handler to stop */
};

struct record_stats {
	int64_t requests;  /* every request proxied */
	int64_t recorded;  /* API calls logged */
	int64_t turns;     /* trace turns written */
	int64_t sessions;  /* trace sessions written */
	int64_t children;  /* ... of them subagent sessions (with a parent) */
	int64_t rewrites;  /* times the trace file was rewritten whole (interleaved sessions) */
	int64_t failed;    /* recorded calls without a 2xx answer */
	int64_t refused;   /* 502: upstream unreachable */
	int64_t orphans;   /* tool results for unknown calls (became user messages) */
	int64_t dropped;   /* content parts / tools without a trace form */
	int64_t unparsed;  /* recorded calls whose body is not a chat request (logged only) */
	int64_t redacted;  /* secrets replaced */
	int64_t not_utf8;  /* bytes in bodies that were not UTF-8 (replaced by U+FFFD) */
};

/* Runs until *stop is set: in-flight requests are cut, the record of any
 * call already answered is written, the trace is closed. Returns 0, or -1
 * with err (bad options, port in use, output not writable); an output that
 * fails mid-run stops the proxy with -1 and the trace so far kept. */
int record_run(const struct record_opts *o, struct record_stats *st, struct ar_err *err);

#endif
