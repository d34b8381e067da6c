/* tokest: the core token estimator.
 *
 * Used everywhere a token count is needed and no real tokenizer was asked
 * for (trace stats, gen depth targeting, replay's context sizes). It mimics
 * how byte-level BPE tokenizers of the Llama-3, Qwen2 and GPT-4o families
 * work: text is cut into pre-tokenizer pieces (letter runs with their leading
 * space, digit runs, punctuation runs, whitespace and newline runs, non-ASCII
 * characters), and each piece costs a fitted number of tokens that depends on
 * its class and length. The weights were fitted by least squares to real
 * token counts of those three tokenizers on prose, source code in five
 * languages, JSON, shell output, diffs and markdown (tests/data/tokcal/, the
 * fit: tests/real/fit-tokest.py); the fit's errors are checked by
 * tests/unit/test_tokest.c.
 *
 * Cost: one pass over the bytes, no allocation.
 */
#ifndef AR_TOKEST_H
#define AR_TOKEST_H

#include <stddef.h>
#include <stdint.h>

enum tokest_feature {
	TOKEST_W1,          /* letter runs of 1-3 letters (with their leading space or mark) */
	TOKEST_W2,          /* letter runs of 4-7 letters */
	TOKEST_W3,          /* letter runs of 8 letters or more */
	TOKEST_W_MARK,      /* letter runs joined to the mark before them (".io", "/src", "_id"): rarer pieces */
	TOKEST_CASE_SPLIT,  /* lower->upper transitions inside a run (camelCase) */
	TOKEST_DIGIT,       /* digit runs, each costing sqrt(groups of 3 x digits): the geometric
			     * middle of Llama-3/GPT-4o (groups of up to 3) and Qwen2 (one per digit) */
	TOKEST_PUNCT_RUN,   /* runs of punctuation */
	TOKEST_SPACE_RUN,   /* runs of 2+ blanks (indentation, alignment) */
	TOKEST_MB2,         /* 2-byte UTF-8 characters (Latin extensions, Greek, Cyrillic) */
	TOKEST_MB3,         /* 3-byte UTF-8 characters (CJK, symbols) */
	TOKEST_MB4,         /* 4-byte UTF-8 characters (emoji) */
	TOKEST_NFEATURES
};

/* Counts the features of s[0..n). out has TOKEST_NFEATURES entries. */
void tokest_features(const char *s, size_t n, double *out);
/* Estimated tokens of s[0..n): the weighted feature sum, rounded; 0 for "". */
int64_t tokest_text(const char *s, size_t n);
/* Name of a feature, for the fitting tool. */
const char *tokest_feature_name(enum tokest_feature f);

#endif
