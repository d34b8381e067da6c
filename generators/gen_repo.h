/* gen_repo: the virtual repository a synthetic session works in, and what
 * the agent's tools print about it.
 *
 * A repository has a project name, a root directory, a main language and
 * modules; each module has a source file, a test file (and a header in C),
 * a main type and a set of function names. Files get their text on first
 * use, generated to a token budget (gen_code); edits change that text, so a
 * re-read shows the edit and `git diff` lists it. The tool outputs (grep
 * hits, listings, test runs with failures and stack traces, compiler errors,
 * diffs, documentation pages) all refer to these paths and symbols.
 *
 * Sizes: every output function takes a target in tokens of the core
 * estimator (src/tokest.h) and lands within a line of it (gen_fill).
 *
 * Ownership: gen_repo_new() returns a repository the caller frees with
 * gen_repo_free() (NULL is a no-op); it owns every file text. Output goes
 * into the caller's struct buf.
 */
#ifndef AR_GEN_REPO_H
#define AR_GEN_REPO_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "gen_code.h"
#include "rng.h"

enum gen_file_kind { GEN_FILE_SRC, GEN_FILE_TEST, GEN_FILE_HEADER, GEN_FILE_DOC, GEN_FILE_CONFIG };

struct gen_module {
	char name[32];
	char type[64];
	char fns[GEN_CODE_MAX_FNS][64];
	int n_fns;
	int src, test, header; /* file indexes, -1 when none */
};

struct gen_file {
	char *path; /* relative to the root */
	enum gen_lang lang;
	enum gen_file_kind kind;
	int module; /* -1 for project files */
	uint64_t seed;
	struct buf text;
	bool made;    /* text generated */
	bool seen;    /* the agent has read it */
	int edits;
	int64_t last_edit_line; /* 1-based, 0 none */
};

/* A recorded edit, for `git diff` and snippets. */
struct gen_edit {
	int file;
	int64_t line; /* 1-based first line of the change */
	char *old_text, *new_text;
};

struct gen_repo {
	char name[32];
	char root[128];
	char pkg[40]; /* import root: Python package, Go module path tail */
	enum gen_lang lang;
	struct gen_module *mods;
	int n_mods, cap_mods;
	struct gen_file *files;
	int n_files, cap_files;
	struct gen_edit *edits;
	int n_edits, cap_edits;
	struct rng r;
	/* outputs are measured as a whole (exact estimate) rather than line by
	 * line; the engine sets it for the one result that must land exactly */
	bool exact;
};

/* Line-number formats for file reads. */
enum gen_numbering {
	GEN_NUM_NONE,  /* raw text */
	GEN_NUM_ARROW, /* "     1→text" (Claude Code's Read) */
	GEN_NUM_TAB,   /* "     1\ttext" (cat -n) */
	GEN_NUM_NL,    /* "L1: text" (codex-style read tools) */
};

int gen_repo_new(struct gen_repo **out, uint64_t seed, enum gen_lang lang, const char *home, struct ar_err *err);
void gen_repo_free(struct gen_repo *repo);

#define GEN_PROB_NEW_ALWAYS 65536
/* A module index picked at random (an existing one, or a new one with
 * probability p_new / 65536). */
int gen_repo_module(struct gen_repo *repo, struct rng *r, int p_new);
/* A file to read: unseen source/test files first; `kind` -1 for any. */
int gen_repo_pick_unseen(struct gen_repo *repo, struct rng *r, int kind);
/* A file the agent has read (for edits), -1 when none. */
int gen_repo_pick_seen(struct gen_repo *repo, struct rng *r);
/* Adds a new file (e.g. a test file the agent writes); returns its index. */
int gen_repo_add_file(struct gen_repo *repo, int module, enum gen_file_kind kind, const char *path);

/* Makes sure file `f` has text: generated, when new, to about `tokens`
 * tokens of its numbered read form (`num`). Returns 0 or -1 (memory). */
int gen_repo_make(struct gen_repo *repo, int f, int64_t tokens, enum gen_numbering num);
/* Appends lines [from, from+count) of file f (1-based; count 0 = to the end)
 * in numbering format num. Returns the number of lines written, -1 on error. */
int64_t gen_repo_render(struct gen_repo *repo, int f, int64_t from, int64_t count, enum gen_numbering num,
			struct buf *b);
int64_t gen_repo_lines(const struct gen_repo *repo, int f);
/* Picks the line range [from, from+count) of an existing file whose numbered
 * form is about `tokens` tokens; count 0 when the whole file is smaller. */
void gen_repo_range(struct gen_repo *repo, int f, int64_t tokens, enum gen_numbering num, struct rng *r,
		    int64_t *from, int64_t *count);

/* Edits file f (made): replaces 1-3 lines with 1-6 new ones. On return
 * *old_text / *new_text (owned by the repository's edit list) are the exact
 * strings; *line is the first changed line. Returns the edit index or -1. */
int gen_repo_edit(struct gen_repo *repo, int f, struct rng *r, int64_t new_tokens, const char **old_text,
		  const char **new_text, int64_t *line);
/* Appends a numbered snippet (+-4 lines) around the last edit of f. */
int gen_repo_snippet(struct gen_repo *repo, int f, enum gen_numbering num, struct buf *b);

/* Tool outputs, each about `tokens` tokens (see the file comment). */
enum gen_grep_format { GEN_GREP_LINES, GEN_GREP_FILES };
int gen_repo_grep(struct gen_repo *repo, struct rng *r, const char *symbol, enum gen_grep_format fmt,
		  int64_t tokens, struct buf *b);
int gen_repo_listing(struct gen_repo *repo, struct rng *r, bool long_format, int64_t tokens, struct buf *b);
/* A test run of module m: failing (with failures and stack traces) or
 * passing; `cmd_out` receives the command line that runs it. */
int gen_repo_test_run(struct gen_repo *repo, struct rng *r, int m, bool fail, int64_t tokens, struct buf *b,
		      struct buf *cmd_out);
int gen_repo_build(struct gen_repo *repo, struct rng *r, int m, bool fail, int64_t tokens, struct buf *b,
		   struct buf *cmd_out);
/* The command lines that run module m's tests (m < 0: all) and the build. */
int gen_repo_test_cmd(struct gen_repo *repo, int m, struct buf *b);
const char *gen_repo_build_cmd(const struct gen_repo *repo);
/* git status / diff / log, about `tokens`. */
int gen_repo_git(struct gen_repo *repo, struct rng *r, int64_t tokens, struct buf *b, struct buf *cmd_out);
/* A documentation page (markdown) about a library API. */
int gen_repo_doc_page(struct gen_repo *repo, struct rng *r, int64_t tokens, struct buf *b, struct buf *url_out);
/* Prose paragraphs (explanations) of about `tokens`, naming repo symbols. */
int gen_repo_prose(struct gen_repo *repo, struct rng *r, int bank, int64_t tokens, struct buf *b);
/* Project notes (CLAUDE.md / AGENTS.md style) of about `tokens`. */
int gen_repo_notes(struct gen_repo *repo, struct rng *r, int64_t tokens, struct buf *b);
/* Aider-style repository map of about `tokens`. */
int gen_repo_map(struct gen_repo *repo, struct rng *r, int64_t tokens, struct buf *b);
/* A new source file's text of about `tokens` (for write tools). */
int gen_repo_new_text(struct gen_repo *repo, struct rng *r, int m, bool test, int64_t tokens, struct buf *b);

/* Slot lookup for gw_expand over this repository: {fn}, {fn2}, {type},
 * {path}, {path2}, {test}, {test_path}, {cmd}, {module}, {flag}, {errmsg},
 * {lib}, {line}. ctx must point to a struct gen_repo_slots. */
struct gen_repo_slots {
	struct gen_repo *repo;
	struct rng *r;
	int module; /* the module the text is about */
	int file;   /* a file the text is about, -1 none */
};
int gen_repo_slot(void *ctx, const char *name, size_t n, struct buf *b);

/* Appends lines produced by `next` until the estimate of what was appended
 * reaches `tokens`. With `exact`, the whole text is then measured and
 * trimmed or extended to the line boundary closest to `tokens`; without, the
 * sum of per-line estimates decides (one pass less over the text; rounding
 * makes it drift by a fraction of a token per line). Returns the number of
 * lines kept, or -1. */
typedef int (*gen_line_fn)(void *ctx, struct buf *b);
int64_t gen_fill(struct buf *b, int64_t tokens, gen_line_fn next, void *ctx, int64_t max_lines, bool exact);

#endif
