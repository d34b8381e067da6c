/* gen_code: plausible source code in C, Python, TypeScript, Go and Rust.
 *
 * A small grammar per language (file header and imports, a type, functions
 * built from statement, condition and expression templates with nested
 * blocks, test functions) filled with the module's own identifiers, so that
 * the file an agent reads, the grep hits, the stack traces and the edits in
 * a session all name the same functions and types.
 *
 * Output is produced one line at a time so a caller can stop at a token
 * budget: gen_code_line() appends the next line (with its '\n'). Lines are
 * generated a unit (header, type, function) at a time into an internal
 * queue.
 *
 * Ownership: gen_code_new() copies what it needs from the context; the
 * caller frees the generator with gen_code_free() (NULL is a no-op).
 */
#ifndef AR_GEN_CODE_H
#define AR_GEN_CODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "rng.h"

enum gen_lang { GEN_LANG_C, GEN_LANG_PYTHON, GEN_LANG_TS, GEN_LANG_GO, GEN_LANG_RUST, GEN_LANG_N };

/* "c", "python", "typescript", "go", "rust" */
const char *gen_lang_name(enum gen_lang l);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int gen_lang_parse(const char *name, enum gen_lang *out);
/* File name extension without the dot ("c", "py", "ts", "go", "rs"). */
const char *gen_lang_ext(enum gen_lang l);
/* Markdown fence tag ("c", "python", "typescript", "go", "rust"). */
const char *gen_lang_fence(enum gen_lang l);

#define GEN_CODE_MAX_FNS 16

/* What a file is about. Strings are copied. */
struct gen_code_ctx {
	enum gen_lang lang;
	const char *project; /* "tilecache" */
	const char *module;  /* "eviction" (snake case) */
	const char *type;    /* the module's main type, in the language's case */
	const char *fns[GEN_CODE_MAX_FNS]; /* the module's functions, in the language's case */
	int n_fns;
	const char *other_module; /* another module, for imports and calls */
	const char *other_type;
	bool test;   /* a test file of the module */
	bool header; /* a C header (declarations only) */
};

struct gen_code;

int gen_code_new(struct gen_code **out, const struct gen_code_ctx *ctx, uint64_t seed);
void gen_code_free(struct gen_code *g);
/* Appends the next line, '\n' included. Returns 0, or -1 on the buffer's
 * ceiling / out of memory. */
int gen_code_line(struct gen_code *g, struct buf *b);
/* Appends one statement-like line at the given indent depth (for snippets,
 * grep hits, edits). No '\n'. */
int gen_code_statement(struct gen_code *g, struct buf *b, int depth);
/* The indentation of one level ("\t", "    ", "  "). */
const char *gen_code_indent(enum gen_lang l);

#endif
