/* gen: the synthetic coding-agent session generator behind `agentreplay gen`.
 *
 * One call makes sessions that look, to an inference server, like a coding
 * agent at work: the style's system prompt and tool schemas, then turns in
 * which the agent reads files, searches, runs tests and builds, edits,
 * answers, gets interrupted, compacts its context, delegates to subagents,
 * with the context climbing to a chosen depth. The final prompt of each
 * session lands at `depth` tokens of the core estimator (src/tokest.h) within
 * a few tokens (the contract is +-2%), or, with a tokenizer, at `depth` real
 * tokens of that model within +-1%.
 *
 * How the depth is hit: the turns are planned first (which action each
 * response takes, natural sizes of every result from the profile's
 * distributions, reply lengths); then each turn is generated in order, with
 * the exact running context (tr_message_tokens, the same arithmetic as
 * convo.c) and each stretchable result (file reads, test logs, grep hits,
 * ...) sized to its share of what is left; the last one of a segment takes
 * the exact remainder. A compaction splits the session into two segments.
 *
 * Determinism: all randomness comes from src/rng.h seeded by (seed, session
 * index) with forked streams per purpose, all sampling is integer arithmetic
 * (gen_dist.h), and times are whole milliseconds, so the same arguments give
 * byte-identical output everywhere. A tokenizer only changes the depth the
 * estimator aims for.
 *
 * Ownership: gen_session_make() returns a session the caller frees with
 * gen_session_free(). gen_write() owns everything it makes. The profile and
 * the tokenizer are borrowed. Library code never prints.
 */
#ifndef AR_GEN_H
#define AR_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "gen_profile.h"
#include "trace.h"

/* An exact token counter (a model's tokenizer). count() returns the number
 * of tokens of text[0..n), or -1 with err set. */
struct gen_tokenizer {
	int64_t (*count)(void *ud, const char *text, size_t n, struct ar_err *err);
	void *ud;
	const char *label; /* recorded in the trace's meta (e.g. the URL); may be NULL */
};

struct gen_opts {
	const struct gen_profile *profile;
	uint64_t seed;
	int64_t depth;        /* tokens of the final prompt */
	int64_t turns;        /* 0: from the profile's growth per turn */
	int64_t sessions;     /* sessions in the file (>= 1) */
	int32_t compact_permille; /* 0: no compaction; else the fraction of context_limit */
	int64_t context_limit;    /* 0: none */
	bool tiers;           /* the depth-tier workload instead */
	const struct gen_tokenizer *tokenizer; /* NULL: the core estimator */
	const char *dump_dir; /* write the final prompt's text there (tests) */
};

#define GEN_MAX_TURNS 10000
#define GEN_MAX_SESSIONS 100000
#define GEN_MAX_DEPTH (64LL << 20)

/* A generated session with its subagent sessions. */
struct gen_session {
	struct tr_session *session;
	struct tr_turn *turns; /* n_turns, owned */
	size_t n_turns;
	int64_t final_tokens;  /* context of the last turn, by the estimator */
	int64_t real_tokens;   /* by the tokenizer, -1 without one */
	int64_t depth_target;  /* what the estimator aimed for */
	struct gen_session **children; /* subagents, written after the parent */
	size_t n_children;
	struct gen_prompt *prompt; /* the final prompt's pieces (for dumps, counts) */
};

/* What gen_write produced. */
struct gen_report {
	int64_t sessions;     /* top-level sessions */
	int64_t subagents;
	int64_t turns;        /* of top-level sessions */
	int64_t min_final, max_final; /* estimator, top-level sessions */
	int64_t min_real, max_real;   /* tokenizer, -1 without one */
	int64_t depth;
};

/* Checks the options (usage errors are AR_EINVAL with a message naming the
 * option). Profile-dependent checks (prefix size, turns) happen when a
 * session is made. */
int gen_check(const struct gen_opts *o, struct ar_err *err);
/* Session number `index` (0-based) of the file. */
int gen_session_make(struct gen_session **out, const struct gen_opts *o, int64_t index, struct ar_err *err);
void gen_session_free(struct gen_session *s);
/* Writes all sessions to path ("-" = standard output; ".zst" compresses)
 * through the core's trace_writer: on any error nothing is left behind. */
int gen_write(const struct gen_opts *o, const char *path, struct gen_report *rep, struct ar_err *err);
/* Writes the final prompt of s into dir: prompt.txt (everything, as a
 * tokenizer would see the text), one <kind>.txt per content kind, and
 * estimates.tsv (kind, estimated tokens, bytes; plus framing and depth). */
int gen_dump_prompt(const struct gen_session *s, const char *dir, struct ar_err *err);
/* The final prompt's text (system, tool schemas, messages) as one string and
 * its chat-template framing in tokens (4 per message, 8 per tool call, as
 * FORMAT.md section 8.2). The caller frees *text. */
int gen_prompt_text(const struct gen_session *s, char **text, size_t *n, int64_t *framing, struct ar_err *err);

#endif
