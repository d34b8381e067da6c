/* gen_words: vocabulary, identifier spelling and prose for the generator.
 *
 * Everything the synthetic sessions say in English (user requests, the
 * assistant's short notes and long answers, comments, commit messages,
 * documentation pages) comes from the sentence templates here, filled from
 * a technical vocabulary with a seeded PRNG. The vocabulary is ordinary
 * software English so that real BPE tokenizers split it the way they split
 * real agent transcripts (the estimator was fitted on such text).
 *
 * Templates use slots `{name}`; gw_expand() replaces each from a lookup
 * callback, falling back to a random word for the generic slots
 * ({noun}, {verb}, {adj}, {num}). Nothing here allocates except into the
 * caller's struct buf.
 */
#ifndef AR_GEN_WORDS_H
#define AR_GEN_WORDS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "rng.h"

enum gw_case { GW_SNAKE, GW_CAMEL, GW_PASCAL, GW_UPPER, GW_KEBAB };

const char *gw_noun(struct rng *r);
const char *gw_verb(struct rng *r);
const char *gw_adj(struct rng *r);
/* Word lists by index, for reproducible symbol sets. */
size_t gw_n_nouns(void);
const char *gw_noun_at(size_t i);
size_t gw_n_verbs(void);
const char *gw_verb_at(size_t i);

/* Appends words (NULL-terminated list) joined in the given case. */
int gw_ident(struct buf *b, enum gw_case c, const char *const *words);
/* Writes an identifier into out (size n), NUL-terminated. */
void gw_ident_to(char *out, size_t n, enum gw_case c, const char *w1, const char *w2, const char *w3);

/* Slot lookup: appends the value of slot `name` (len n) to b and returns 1,
 * or returns 0 to let gw_expand use a generic word. */
typedef int (*gw_slot_fn)(void *ctx, const char *name, size_t n, struct buf *b);
/* Appends template t with its slots filled. -1 on the buffer's ceiling. */
int gw_expand(struct buf *b, const char *t, struct rng *r, gw_slot_fn fn, void *ctx);

/* Sentence banks (templates). */
enum gw_bank {
	GW_TASK,          /* a user's request that starts a task */
	GW_INTERJECT,     /* a user's note in the middle of a task */
	GW_BEFORE_READ,   /* the assistant's note before reading a file */
	GW_BEFORE_SEARCH, /* ... before a search */
	GW_BEFORE_LIST,
	GW_BEFORE_TEST,
	GW_BEFORE_BUILD,
	GW_BEFORE_EDIT,
	GW_BEFORE_WRITE,
	GW_BEFORE_SHELL,
	GW_BEFORE_WEB,
	GW_BEFORE_TASK,
	GW_BEFORE_TODO,
	GW_EXPLAIN,       /* sentences of an explanation (final answers, summaries, reports) */
	GW_DOC,           /* sentences of documentation prose */
	GW_COMMENT,       /* short code comments */
	GW_COMMIT,        /* commit subjects */
	GW_NBANKS
};
/* Appends one random sentence of the bank, expanded. */
int gw_sentence(struct buf *b, enum gw_bank bank, struct rng *r, gw_slot_fn fn, void *ctx);

#endif
