/* convo: the conversation history a trace materialises, turn by turn.
 *
 * FORMAT.md's rule for turn k: (k > 0) add turn k-1's response as an
 * assistant message, then apply `keep` (truncate the history to its first
 * `keep` messages), then add `append`. The prompt of turn k is the session's
 * system prompt + tool schemas + this history.
 *
 * A convo can keep full copies of the messages (replay needs them to build
 * requests) or only their token estimates (stats, gen: CONVO_COUNT_ONLY).
 * Memory is bounded by the context, not by the trace.
 */
#ifndef AR_CONVO_H
#define AR_CONVO_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "trace.h"

struct convo {
	bool count_only;
	struct tr_message *msgs; /* NULL when count_only */
	int64_t *tokens;         /* estimate per message */
	int64_t *origin;         /* (turn << 20) | index in that turn's append; -1 for responses */
	size_t n, cap;
	int64_t prefix_tokens;  /* system + tools */
	int64_t history_tokens; /* sum of tokens[] */
	int64_t turns;          /* turns applied since the last reset */
	struct tr_response *pending_copy;  /* owned copy when !count_only */
	bool has_pending;
	int64_t pending_tokens;
};

#define CONVO_COUNT_ONLY true
#define CONVO_ORIGIN_TURN(o) ((o) >> 20)
#define CONVO_ORIGIN_INDEX(o) ((o) & 0xFFFFF)

void convo_init(struct convo *c, bool count_only);
void convo_free(struct convo *c);
/* Starts a new session: empties the history, takes the session's prefix size. */
void convo_reset(struct convo *c, const struct tr_session *s);
/* Applies turn t (see above). The turn's response becomes pending until the
 * next step. Returns 0, or -1 with err set (keep too large, out of memory). */
int convo_step(struct convo *c, const struct tr_turn *t, struct ar_err *err);
/* --history generated: the backend's own text replaces the content of the
 * last turn's response before it enters the history (its tool calls stay, so
 * the trace's tool results still pair with them). -1 on allocation failure. */
int convo_set_generated(struct convo *c, const char *text, size_t n);
/* Context tokens of the prompt the last stepped turn sends. */
static inline int64_t convo_tokens(const struct convo *c) { return c->prefix_tokens + c->history_tokens; }

#endif
