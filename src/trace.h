/* trace: the in-memory model of agentreplay-trace/1 and its line codec.
 *
 * traces/FORMAT.md is the normative spec; this module implements its per-line
 * rules (types, ranges, required fields). Rules that span lines (turn order,
 * tool-call ids issued earlier, keep within the history) live in trace_io's
 * reader, which owns the per-session state.
 *
 * Model: a session (id, source, model, system, tools, meta, parent), then its
 * turns (index, t, keep, append[], response, recorded); a message has a role,
 * content or synthetic token blocks, tool calls, tool_call_id and name.
 * Unknown fields are kept (`extra`, a cJSON object in original order) so that
 * `trace cat` round-trips them.
 *
 * Ownership: every struct owns its strings and cJSON members; the *_free and
 * *_clear functions release them, and accept NULL. Absent optional strings are
 * NULL; absent optional integers are -1.
 */
#ifndef AR_TRACE_H
#define AR_TRACE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define TRACE_FORMAT "agentreplay-trace/1"

enum tr_role { TR_SYSTEM, TR_USER, TR_ASSISTANT, TR_TOOL };

struct tr_tool_call {
	char *id;
	char *name;
	char *arguments; /* a JSON text, verbatim */
};

/* Token-only content: `tokens` tokens, the first blocks×block_tokens of which
 * expand from block ids (equal ids → equal text). */
struct tr_synth {
	int64_t tokens;
	int64_t *blocks;
	size_t n_blocks;
	int64_t block_tokens; /* -1 when there are no blocks */
};

struct tr_message {
	enum tr_role role;
	char *content;          /* NULL when absent */
	size_t content_len;     /* bytes of content */
	struct tr_synth *synth; /* NULL when absent */
	struct tr_tool_call *calls;
	size_t n_calls;
	char *tool_call_id;
	char *name;
	cJSON *extra; /* unknown fields (object) or NULL */
};

struct tr_response {
	char *content;
	size_t content_len;
	char *reasoning;
	int64_t reasoning_tokens; /* -1 absent */
	struct tr_tool_call *calls;
	size_t n_calls;
	int64_t output_tokens; /* -1 absent: see tr_response_output_tokens() */
	char *finish;
	cJSON *extra;
};

struct tr_turn {
	int64_t i;
	double t;
	bool has_t;
	int64_t keep; /* -1 absent */
	struct tr_message *append;
	size_t n_append;
	struct tr_response *response; /* NULL absent */
	cJSON *recorded;              /* object or NULL; known fields type-checked */
	cJSON *extra;
};

struct tr_session {
	char *format;
	char *id;
	char *parent;            /* NULL unless a subagent */
	int64_t spawned_at_turn; /* -1 unless a subagent */
	cJSON *source;           /* object or NULL */
	char *model;
	char *system; /* NULL = "" */
	cJSON *tools; /* array or NULL */
	cJSON *meta;  /* object or NULL */
	cJSON *extra;
};

enum trace_item_kind { TRACE_ITEM_NONE, TRACE_ITEM_SESSION, TRACE_ITEM_TURN };

struct trace_item {
	enum trace_item_kind kind;
	struct tr_session *session; /* kind == SESSION, owned by the item */
	struct tr_turn *turn;       /* kind == TURN, owned by the item */
};

/* Problems found on one line: field path (e.g. "append[2].tool_call_id") and
 * what is wrong. At most TRACE_DIAG_MAX kept; the rest counted. */
#define TRACE_DIAG_MAX 16
struct trace_diag {
	size_t n;
	size_t dropped;
	bool unknown_type; /* the only problem is an unknown "type" (--lenient skips it) */
	bool warning;      /* the entries are warnings (a skipped line) */
	enum trace_item_kind line_kind; /* what the line's "type" said, even when it has problems */
	struct {
		char field[112]; /* "" for a problem of the whole line */
		char msg[400];
		long col;        /* 1-based byte column for byte-level problems, else 0 */
	} p[TRACE_DIAG_MAX];
};

void trace_diag_clear(struct trace_diag *d);
void trace_diag_add(struct trace_diag *d, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Parses one line (not NUL-terminated; no line end) into `item`.
 * Returns 0 on success; -1 when the line has problems (all recorded in `diag`,
 * item left empty). The caller frees the item with trace_item_clear(). */
int trace_parse_line(const char *line, size_t len, struct trace_item *item, struct trace_diag *diag);
void trace_item_clear(struct trace_item *item);

void tr_session_free(struct tr_session *s);
void tr_turn_free(struct tr_turn *t);
void tr_response_free(struct tr_response *r);
void tr_message_clear(struct tr_message *m);
void tr_tool_calls_free(struct tr_tool_call *calls, size_t n);
/* Deep copy; returns 0 or -1 on allocation failure (dst cleared then). */
int tr_message_copy(struct tr_message *dst, const struct tr_message *src);

const char *tr_role_name(enum tr_role r);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int tr_role_parse(const char *name, enum tr_role *out);

/* Serialises to canonical compact JSON (FORMAT.md "normal form"), appending
 * to b without a line end. -1 on allocation failure or ceiling. */
int tr_session_write(const struct tr_session *s, struct buf *b);
int tr_turn_write(const struct tr_turn *t, struct buf *b);

/* Token estimates (src/tokest.h) of the trace's pieces. */
#define TR_MESSAGE_OVERHEAD_TOKENS 4 /* chat template framing per message */
#define TR_TOOL_CALL_OVERHEAD_TOKENS 8
int64_t tr_message_tokens(const struct tr_message *m);
int64_t tr_calls_tokens(const struct tr_tool_call *calls, size_t n);
/* The assistant message a response becomes in history. */
int64_t tr_response_history_tokens(const struct tr_response *r);
/* What replay asks the backend to generate: output_tokens when given, else
 * the estimate of content + tool calls + reasoning (or reasoning_tokens),
 * minimum 1. A NULL response asks for 1 token. */
int64_t tr_response_output_tokens(const struct tr_response *r);
/* Tokens of the system prompt plus the tool schemas, as sent. */
int64_t tr_session_prefix_tokens(const struct tr_session *s);

#endif
