/* reqdiff: a sequence of chat API requests -> agentreplay-trace/1 turns.
 *
 * An agent sends its whole conversation on every API call. A trace turn
 * states only what changed (FORMAT.md §5, §7): `keep` (how much of the
 * history survives) and `append` (the new messages). reqdiff keeps the
 * history the trace materialises so far (previous messages + the previous
 * response as an assistant message) and diffs each new request against it:
 *
 *   - the request extends that history: no keep, append = the new tail;
 *   - the agent rewrote history (compaction, edits, a dropped or changed
 *     assistant message): keep = number of leading messages still equal,
 *     append = everything after them;
 *   - the system prompt or the tool set changed: a new session starts (a
 *     trace session has one system prompt and one tool set), append = all.
 *
 * So the trace materialises exactly the prompts the agent sent (after the
 * normalisation below), whatever the agent did with its history.
 *
 * Normalisation (both APIs map to the trace's OpenAI-like messages):
 *   OpenAI chat: a leading system/developer message is the session's system
 *     prompt; later system/developer messages stay in the history as system
 *     messages; array content keeps its text parts (images etc. dropped and
 *     counted); assistant tool_calls, tool messages with tool_call_id.
 *   Anthropic messages: `system` (string or text blocks, joined with "\n")
 *     is the system prompt; text blocks are joined with "\n"; tool_use blocks
 *     become tool calls whose arguments are the compact JSON of `input`;
 *     tool_result blocks become tool messages (before any text of the same
 *     user message, which follows as a user message); thinking blocks and
 *     images are dropped (counted).
 *   Tools become {"type":"function","function":{name,description,parameters}};
 *   non-function tools and duplicate names are dropped (counted).
 * A tool result whose call was never issued in the session becomes a user
 * message (counted in `orphans`) so the trace stays valid.
 *
 * Ownership: reqdiff_new/free; reqdiff_req and reqdiff_turn own what they
 * hold and are released with their *_clear functions.
 */
#ifndef AR_REQDIFF_H
#define AR_REQDIFF_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "trace.h"

enum reqdiff_api { REQDIFF_OPENAI_CHAT, REQDIFF_ANTHROPIC_MESSAGES };

/* "openai-chat" / "anthropic-messages" (the request log's names). */
const char *reqdiff_api_name(enum reqdiff_api api);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int reqdiff_api_parse(const char *name, enum reqdiff_api *out);

/* One request, normalised. */
struct reqdiff_req {
	char *system; /* NULL = none */
	cJSON *tools; /* array of trace tool objects; NULL = none */
	char *model;  /* NULL = absent */
	struct tr_message *msgs;
	size_t n_msgs;
	int64_t dropped; /* content parts, blocks and tools that have no trace form */
};

/* Parses a request body. -1 with err (AR_EFORMAT) when it is not a request
 * of that API (no messages array, a message that is not an object, ...). */
int reqdiff_parse(enum reqdiff_api api, const cJSON *body, struct reqdiff_req *out, struct ar_err *err);
void reqdiff_req_clear(struct reqdiff_req *r);

struct reqdiff_turn {
	bool new_session; /* start a session with the request's system and tools first */
	int64_t keep;     /* -1: the history grows */
	struct tr_message *append;
	size_t n_append;
	int64_t orphans; /* tool results for unknown calls, turned into user messages */
	bool empty;      /* no system prompt and no messages: no turn can send this */
};
void reqdiff_turn_clear(struct reqdiff_turn *t);

struct reqdiff;

int reqdiff_new(struct reqdiff **out, struct ar_err *err);
void reqdiff_free(struct reqdiff *d);

/* Diffs the next request against the history. The first request starts a
 * session. An `empty` turn changes nothing (the caller skips it). Returns 0,
 * or -1 with err (out of memory). */
int reqdiff_next(struct reqdiff *d, const struct reqdiff_req *req, struct reqdiff_turn *out, struct ar_err *err);

/* The answer to the last request: its assistant message enters the history
 * (FORMAT.md §5.1). NULL = the request failed; nothing enters. -1 on
 * allocation failure. */
int reqdiff_answer(struct reqdiff *d, const struct tr_response *resp, struct ar_err *err);

/* Number of messages in the history after the last reqdiff_next. */
size_t reqdiff_history_len(const struct reqdiff *d);

/* ---- the router: interleaved conversations ------------------------------
 *
 * One agent may run several conversations at once (Claude Code's Task
 * subagents beside the main conversation, Codex's parallel calls), so the
 * requests of one recording interleave. The router keeps one history per
 * conversation (a reqdiff each) and assigns every request to one of them:
 *
 *  1. extension: among the open conversations with the request's system
 *     prompt and tool set whose whole history (previous messages + previous
 *     response) is a prefix of the request's messages, the one with the
 *     longest history (ties: the most recently used). An empty history
 *     never extends anything.
 *  2. rewrite: else the conversation of that system prompt and tool set that
 *     shares the most leading messages (at least one) with the request; the
 *     turn gets `keep` (an edited or shortened history).
 *  3. else the request shares nothing with any history of its kind:
 *     a. a child of the conversation, of any system prompt, whose last
 *        response issued a subagent call (a tool named Task, task, agent,
 *        spawn_agent, dispatch_agent, subagent, ..., any case), most recent;
 *     b. else `keep:0` on the most recent conversation of its system prompt
 *        and tool set that awaits no tool result (a compaction, a /clear);
 *     c. else a child of the most recent conversation whose last response
 *        issued tool calls (it awaits their results while this runs);
 *     d. else a new top-level conversation.
 * A child session gets `parent` and `spawned_at_turn` = the parent's last
 * turn (the one whose response issued the call), FORMAT.md §4.4.
 *
 * Sessions are numbered 0, 1, 2, ... in creation order; a parent always has
 * a lower number than its children. At most max_open conversations stay
 * matchable; beyond that the least recently used one is closed (its history
 * freed; a later request that would have extended it starts a session). The
 * router is deterministic: the same requests and answers in the same order
 * give the same sessions, so an importer of the request log rebuilds what
 * the recorder wrote. */

struct reqdiff_route {
	int64_t session;         /* the session's number */
	int64_t parent;          /* a new child session: its parent's number; else -1 */
	int64_t spawned_at_turn; /* with parent: the parent's turn; else -1 */
	int64_t turn;            /* this turn's index i within its session */
	struct reqdiff_turn diff; /* diff.new_session: session is new; keep, append, ... */
};
void reqdiff_route_clear(struct reqdiff_route *r);

struct reqdiff_router;

/* max_open 0 = 256. */
int reqdiff_router_new(struct reqdiff_router **out, size_t max_open, struct ar_err *err);
void reqdiff_router_free(struct reqdiff_router *r);

/* Routes the next request (see above). An empty request (diff.empty)
 * changes nothing and belongs to no session (session -1). -1 with err (out
 * of memory). */
int reqdiff_router_next(struct reqdiff_router *r, const struct reqdiff_req *req, struct reqdiff_route *out,
			struct ar_err *err);

/* The answer to a request routed to `session` (NULL = it failed). Call it
 * once per routed request, in any order relative to other sessions' calls.
 * A closed or unknown session is ignored. -1 with err (out of memory). */
int reqdiff_router_answer(struct reqdiff_router *r, int64_t session, const struct tr_response *resp,
			  struct ar_err *err);

/* Number of sessions created so far (open or closed). */
int64_t reqdiff_router_sessions(const struct reqdiff_router *r);

/* True when a tool of that name starts a subagent (Task, agent, spawn_agent, ...). */
bool reqdiff_is_subagent_tool(const char *name);

/* The request log's `response` object -> the trace's response and recorded
 * figures. `resp` is {"status":int,"content":str|null,"tool_calls":[OpenAI
 * wire tool calls]|null,"reasoning_chars":int|null,"usage":{...}|null};
 * usage is normalised per API (Anthropic: prompt = input + cache_read +
 * cache_creation, cached = cache_read; OpenAI: prompt_tokens and
 * prompt_tokens_details.cached_tokens). *out_resp is NULL for a failed
 * request (status not 2xx). *out_recorded gets prompt/cached/output tokens,
 * ttft_ms/e2e_ms (pass < 0 when unknown) and model (NULL ok); NULL when
 * there is nothing to record. Both owned by the caller. -1 with err for a
 * malformed object. */
int reqdiff_log_response(enum reqdiff_api api, const cJSON *resp, double ttft_ms, double e2e_ms, const char *model,
			 struct tr_response **out_resp, cJSON **out_recorded, struct ar_err *err);

#endif
