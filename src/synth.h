/* synth: deterministic text for token-only ("synthetic") messages.
 *
 * FORMAT.md section 6.2: block id h with block size b expands to B(h, b), a
 * text of b tokens that depends only on (h, b) — equal ids give equal text
 * (shared prefixes on a server), different ids differ from their first word.
 * The text is made of short common English words with a leading space, each
 * one token in the Llama-3, Qwen2 and GPT-4o vocabularies, so b words are b
 * real tokens. A filler of n tokens derives from (session id, turn, message
 * index) and is unique to that message.
 */
#ifndef AR_SYNTH_H
#define AR_SYNTH_H

#include <stdint.h>

#include "buf.h"
#include "trace.h"

/* Appends B(block, block_tokens) cut to `tokens` words (tokens <= block_tokens). */
int synth_block(struct buf *out, int64_t block, int64_t block_tokens, int64_t tokens);
/* Appends n tokens of filler keyed by (session, turn, index). */
int synth_filler(struct buf *out, const char *session, int64_t turn, int64_t index, int64_t n);
/* Appends the whole expansion of a synthetic message. */
int synth_expand(struct buf *out, const struct tr_synth *s, const char *session, int64_t turn, int64_t index);

#endif
