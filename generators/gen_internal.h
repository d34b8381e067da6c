/* gen_internal: what gen.c (the session engine) and gen_write.c (files,
 * tiers, tokenizer calibration, prompt dumps) share. Not installed API. */
#ifndef AR_GEN_INTERNAL_H
#define AR_GEN_INTERNAL_H

#include "gen.h"

/* Content kinds of the pieces of a prompt, for dumps and per-kind error
 * figures. */
enum gen_kind {
	GEN_K_SYSTEM,
	GEN_K_TOOLS,
	GEN_K_USER,      /* prose the user types */
	GEN_K_ASSISTANT, /* the assistant's visible text */
	GEN_K_ARGS,      /* tool-call arguments (JSON) */
	GEN_K_CODE_C,
	GEN_K_CODE_PYTHON,
	GEN_K_CODE_TS,
	GEN_K_CODE_GO,
	GEN_K_CODE_RUST,
	GEN_K_DOCS,      /* markdown, config files */
	GEN_K_GREP,
	GEN_K_LIST,
	GEN_K_TEST,
	GEN_K_BUILD,
	GEN_K_GIT,
	GEN_K_WEB,
	GEN_K_ACK,       /* short tool acknowledgements */
	GEN_K_REPORT,    /* subagent reports */
	GEN_K_SUMMARY,   /* compaction summaries */
	GEN_K_NOTES,     /* project notes, repository maps */
	GEN_NKINDS
};

const char *gen_kind_name(int k);

struct gen_piece {
	int kind;
	char *text;
	size_t n;
};

/* The final prompt, piece by piece, in prompt order. */
struct gen_prompt {
	struct gen_piece *p;
	size_t n, cap;
	int64_t framing; /* template tokens: 4 per message, 8 per tool call */
};

void gen_prompt_free(struct gen_prompt *pr);

/* The engine with an explicit estimator target (gen_write's tokenizer loop
 * aims the estimator at depth * depth / real). */
int gen_session_make_target(struct gen_session **out, const struct gen_opts *o, int64_t index, int64_t target,
			    struct ar_err *err);
/* A depth-tier session: kind 0 baseline (~23 tokens), 1 code (~750), 2..4
 * 32k/64k/128k as one request carrying a whole agent history. */
int gen_tier_make(struct gen_session **out, const struct gen_opts *o, int tier, int64_t target,
		  struct ar_err *err);

/* What a profile's turns add by nature (no depth target): the plan of a long
 * session is sampled and averaged. per_role[r] gets the average result
 * tokens of role r per turn (GEN_NROLES entries, may be NULL); the return
 * value is the average tokens a turn adds (result + reply). */
int64_t gen_natural_growth(const struct gen_profile *p, uint64_t seed, int64_t *per_role, int64_t *resp);

#endif
