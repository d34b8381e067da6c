/* import: other tools' session logs and request traces -> agentreplay-trace/1.
 *
 * One importer per file (imp_<format>.c), each a `struct importer` table entry
 * (name, sniff, convert) listed once in import.c's table; adding a format
 * touches nothing else. What the importers share lives here:
 *
 *  - reading: JSONL line by line with line numbers, CRLF folded, a ceiling on
 *    the line length (never the whole file in memory), --lenient handling of
 *    bad lines (a warning naming FILE:LINE, the line skipped; strict mode stops
 *    with the same message as an error); whole-document JSON with a size cap;
 *  - writing: imp_session()/imp_turn() take a session or turn built by the
 *    importer, make it valid (turn index, non-decreasing t, tool results that
 *    answer a call issued earlier, keep within the history), redact every
 *    string unless redaction is off, write it with the core's temp+rename trace
 *    writer, and account for it in the report (turns, tool calls, recorded
 *    tokens, estimated-vs-recorded prompt size per turn);
 *  - synthesis of what a format lacks (system prompt, tool schemas) to the size
 *    the source recorded, deterministically (imp_synth_prefix);
 *  - usage normalisation to total prompt tokens + cached tokens (imp_usage_*).
 *
 * Units: tokens are integers; `t` is seconds since the session's first
 * request; times in the sources are parsed with imp_iso8601().
 *
 * Ownership: importers own the sessions/turns they build (imp_turn_clear,
 * tr_session_free); imp_session/imp_turn borrow them and may modify them
 * (redaction in place, renumbering). The report owns its arrays
 * (imp_report_free). Nothing here prints: warnings go into the report.
 */
#ifndef AR_IMPORT_H
#define AR_IMPORT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "convo.h"
#include "err.h"
#include "strset.h"
#include "trace.h"

struct redact;
struct trace_writer;

#define IMP_MAX_LINE_DEFAULT (64u << 20) /* bytes of one input line */
#define IMP_MAX_DOC (512u << 20)        /* bytes of a whole-document input (JSON, text) */
#define IMP_SNIFF_BYTES 65536
#define IMP_MAX_WARN 50
#define IMP_MAX_DROPS 24

struct imp_opts {
	bool lenient;          /* bad lines/items: warn and go on instead of failing */
	struct redact *redact; /* NULL: no redaction (--no-redact) */
	size_t max_line;       /* 0 = IMP_MAX_LINE_DEFAULT */
};

struct imp_drop {
	char kind[64];
	int64_t n;
};

/* What an import did. Filled by the core as the importer emits. */
struct imp_report {
	char format[32];
	int64_t files, sessions, subagents, turns, compactions;
	int64_t tool_calls, tool_results;
	int64_t lines, bad_lines;
	int64_t rec_turns; /* turns with a recorded prompt size */
	int64_t rec_prompt, rec_cached, rec_output;
	int64_t redactions;
	int64_t synthesized_prefix; /* sessions whose system/tools were synthesized */
	int64_t hidden_turns, hidden_tokens; /* hidden reasoning carried into history */
	struct imp_drop drops[IMP_MAX_DROPS];
	size_t n_drops;
	double *err_rel; /* per turn: (estimate - recorded) / recorded */
	size_t n_err, cap_err;
	char *warnings[IMP_MAX_WARN];
	size_t n_warn;
	int64_t warn_more; /* warnings beyond IMP_MAX_WARN, counted only */
};

void imp_report_free(struct imp_report *r);
/* Median of |err_rel| and of err_rel (signed); 0 when there are none. */
double imp_report_median_abs(const struct imp_report *r);
double imp_report_median(const struct imp_report *r);

/* The state of one import run (all input files into one output). */
struct imp {
	const struct imp_opts *o;
	struct trace_writer *w;
	struct imp_report *rep;
	const char *path; /* the input being converted, as named by the user */
	/* the session being written */
	char *sid;
	bool open;
	bool calibrated_turn0; /* turn 0's size was calibrated: no error sample */
	int64_t hidden_carry;  /* hidden reasoning of the last turn that stays in context */
	bool has_system;
	int64_t next_i;
	double last_t;
	struct convo cv;
	struct strset issued;
	struct strset sids; /* session ids written so far (value[0]: turn count) */
};

/* Sets up / releases the run state; w may be NULL (count only, e.g. tests). */
void imp_init(struct imp *im, const struct imp_opts *o, struct trace_writer *w, struct imp_report *rep);
void imp_release(struct imp *im);

/* Records a warning "PATH:LINE: MSG" (line 0: "PATH: MSG"). */
void imp_warn(struct imp *im, uint64_t line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Counts one dropped item of a kind ("image", "encrypted reasoning", ...). */
void imp_drop(struct imp *im, const char *kind, int64_t n);
/* A problem with the input: under --lenient a warning (returns 0, go on),
 * otherwise the error "PATH:LINE: MSG" (returns -1). */
int imp_bad(struct imp *im, uint64_t line, struct ar_err *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Writes a session line; its id is made unique in the output ("x", "x#2").
 * A child (parent set) must name a session already written, and its
 * spawned_at_turn is clamped into the parent's turns. */
int imp_session(struct imp *im, struct tr_session *s, struct ar_err *err);
/* Writes one turn of the open session: i is set, t made non-decreasing, tool
 * results for calls never issued are an error (dropped with a warning under
 * --lenient), keep is checked. `line` names the input line for messages. */
int imp_turn(struct imp *im, struct tr_turn *t, uint64_t line, struct ar_err *err);
/* Ends the open session. A session with no turns is an error ("no model
 * requests"), written anyway with a warning under --lenient. */
int imp_session_end(struct imp *im, struct ar_err *err);
/* The id actually written for the last session (after uniquing). */
const char *imp_session_id(const struct imp *im);
/* Turns written so far in the session with that (output) id; -1 if unknown. */
int64_t imp_session_turns(const struct imp *im, const char *id);

/* Hidden reasoning that the model keeps in its context (Claude 4.x thinking:
 * the next prompt grows by the whole output, not by the visible text). Call
 * after imp_turn for a turn whose response had hidden reasoning: the part of
 * its recorded output_tokens not accounted for by the visible content and
 * tool calls is appended to the next turn (after its tool results) as a
 * synthetic user message of that many tokens, so the replayed prompt has the
 * recorded size. Dropped when the next turn compacts. */
void imp_hidden_reasoning(struct imp *im, const struct tr_response *r);

/* ---- building sessions and turns ---------------------------------------- */

struct tr_session *imp_session_new(const char *kind, const char *file, const char *id);
/* Adds a string to source.synthesized (once). */
void imp_source_synth(struct tr_session *s, const char *what);
/* Sets source.<key> to a string / integer. */
void imp_source_str(struct tr_session *s, const char *key, const char *v);
void imp_turn_init(struct tr_turn *t);
void imp_turn_clear(struct tr_turn *t); /* frees contents and re-inits */
/* Appends a message; content is copied (NULL: none). Returns it, or NULL. */
struct tr_message *imp_msg(struct tr_turn *t, enum tr_role role, const char *content, size_t len);
struct tr_message *imp_msg_synth(struct tr_turn *t, enum tr_role role, int64_t tokens);
/* Appends to the content of m (creating it). */
int imp_msg_cat(struct tr_message *m, const char *s, size_t n);
int imp_msg_call(struct tr_message *m, const char *id, const char *name, const char *args);
struct tr_response *imp_resp(struct tr_turn *t);
int imp_resp_cat(struct tr_response *r, const char *s, size_t n);
int imp_resp_reason_cat(struct tr_response *r, const char *s, size_t n);
int imp_resp_call(struct tr_response *r, const char *id, const char *name, const char *args);
/* Sets a recorded.<key> number (creating recorded). */
void imp_rec_num(struct tr_turn *t, const char *key, double v);
void imp_rec_str(struct tr_turn *t, const char *key, const char *v);
/* Text of a cJSON value: a string's bytes, otherwise its compact JSON.
 * Returns malloc'ed text (caller frees) or NULL. */
char *imp_json_text(const cJSON *v);
/* Concatenates the "text" of a content array of parts (Anthropic/OpenAI
 * shape) or returns the string itself; counts images into drops. */
char *imp_parts_text(struct imp *im, const cJSON *content);

/* Deterministic synthesis of a missing system prompt + tool schemas: turn 0
 * of a session gets, first in its append, a system message of `tokens`
 * synthetic tokens made of fixed blocks keyed by `kind` (the same for every
 * session of that format, so such sessions share that prefix on a server the
 * way real ones of one agent do). The recorded prompt of turn 0 minus the
 * estimate of what turn 0 appends is what to pass. Nothing when tokens < 1. */
int imp_synth_prefix(struct imp *im, struct tr_session *s, struct tr_turn *t0, const char *kind, int64_t tokens);

/* OpenAI chat shapes: a tool_calls array into m's calls (or r's when m is
 * NULL); a chat message (role, content string or parts, tool_calls,
 * tool_call_id; developer -> system) appended to t. */
int imp_openai_calls(const cJSON *calls, struct tr_message *m, struct tr_response *r);
int imp_openai_message(struct imp *im, struct tr_turn *t, const cJSON *msg, uint64_t line, struct ar_err *err);

/* Token-only traces (Mooncake 512/ceil, WEKA 64/floor): per-session state
 * of the block ids of the previous request and of each appended message. */
struct imp_blocks {
	int64_t block;  /* tokens per block */
	bool ceil;      /* the tail block is partial (Mooncake) vs dropped (WEKA) */
	int64_t offset; /* added to every id (WEKA: ids local to a file) */
	int64_t *prev;
	size_t n_prev, cap_prev;
	int64_t prev_in;
	size_t *full_end; /* per history message (one per turn): full blocks up to its end */
	int64_t *tok;     /* its synthetic tokens */
	size_t n_msg, cap_msg;
};
void imp_blocks_init(struct imp_blocks *b, int64_t block_tokens, bool ceil_tail);
void imp_blocks_free(struct imp_blocks *b);
void imp_blocks_reset(struct imp_blocks *b);
/* Fills t (keep, one synthetic user message) for a request of in_tokens with
 * block ids ids[0..n); *cached (if not NULL) = the prefix shared with the
 * previous request, in tokens. Each turn must then get a response. */
int imp_blocks_turn(struct imp_blocks *b, struct tr_turn *t, const int64_t *ids, size_t n, int64_t in_tokens,
		    int64_t *cached, struct ar_err *err);
/* A JSON array of non-negative integer ids -> malloc'ed array (NULL, 0 when
 * empty). -1 out of memory, -2 not such an array. */
int imp_json_ids(const cJSON *arr, int64_t **out, size_t *n);

/* The same for a session already written (system known, tools missing):
 * sizes the synthetic message from `prompt` (turn 0's recorded prompt)
 * minus the system prompt and turn 0's append. Only on turn 0. The caller
 * names what it stands for in source.synthesized before writing the session. */
int imp_calibrate_turn0(struct imp *im, struct tr_turn *t0, const char *kind, int64_t prompt);

/* ---- usage --------------------------------------------------------------- */

struct imp_usage {
	int64_t prompt;   /* total prompt tokens including cached; -1 unknown */
	int64_t cached;   /* -1 unknown */
	int64_t output;   /* incl. reasoning; -1 unknown */
	int64_t reasoning; /* -1 unknown */
	int64_t cache_write; /* Anthropic cache_creation; -1 unknown */
};
/* Anthropic: input + cache_read + cache_creation. */
void imp_usage_anthropic(const cJSON *u, struct imp_usage *out);
/* OpenAI/DeepSeek/LiteLLM: prompt_tokens includes cached. Also reads the
 * Anthropic names when they are all there is (LiteLLM passes them through). */
void imp_usage_openai(const cJSON *u, struct imp_usage *out);
/* Writes the known figures into recorded. */
void imp_usage_record(struct tr_turn *t, const struct imp_usage *u);
/* end_turn/stop_sequence/stop -> stop, max_tokens/length -> length,
 * tool_use/tool_calls/function_call -> tool_calls; else NULL. */
const char *imp_finish(const char *reason);

/* ---- reading --------------------------------------------------------------- */

struct imp_lines {
	FILE *f;
	const char *path;
	struct buf line;
	uint64_t lineno;
	uint64_t offset; /* byte offset of the current line's start */
	uint64_t next_off;
	size_t max;
	bool eof;
	char rbuf[65536];
	size_t rpos, rlen;
	uint64_t rbase; /* file offset of rbuf[0] */
};
int imp_lines_open(struct imp_lines *r, const char *path, size_t max, struct ar_err *err);
/* Next line (CR before LF removed): 1 with *s and *n set; 0 at end; -1 error
 * (read error, or a line over the ceiling: "PATH:LINE: line longer than N
 * bytes"). Blank lines are returned too (callers skip them). */
int imp_lines_next(struct imp_lines *r, const char **s, size_t *n, struct ar_err *err);
void imp_lines_close(struct imp_lines *r);
/* Goes to byte offset off, which starts line number lineno (both from an
 * earlier pass). -1 when the input cannot seek. */
int imp_lines_seek(struct imp_lines *r, uint64_t off, uint64_t lineno);

/* Next JSON object of a JSONL file, skipping blank lines. 1: *out (caller
 * cJSON_Delete), 0: end, -1: error. A line that is not a JSON object is an
 * error "PATH:LINE: invalid JSON ..." unless --lenient (warning, skipped). */
int imp_jsonl_next(struct imp *im, struct imp_lines *r, cJSON **out, struct ar_err *err);

/* Reads a whole file (at most IMP_MAX_DOC bytes). */
int imp_read_file(const char *path, struct buf *out, struct ar_err *err);
/* Parses a whole-document JSON file; errors name LINE:COL. */
int imp_read_json(const char *path, cJSON **out, struct ar_err *err);

/* "2026-06-16T16:29:02.518Z" (and "+hh:mm" offsets, no fraction, a space for
 * T) -> Unix seconds. Returns 0, or -1 when it is not such a time. */
int imp_iso8601(const char *s, double *out);

/* JSON helpers: the member's string, or NULL; number, or def. */
const char *imp_str(const cJSON *o, const char *key);
double imp_num(const cJSON *o, const char *key, double def);
int64_t imp_int(const cJSON *o, const char *key, int64_t def);

/* ---- the importer table ---------------------------------------------------- */

struct importer {
	const char *name;
	const char *summary;
	/* How sure (0..100) that the file is this format, from its name and its
	 * first bytes (head[0..n), n <= IMP_SNIFF_BYTES, maybe cut mid-line, and
	 * head[n] == '\0': sniffers may use string functions). */
	int (*sniff)(const char *path, const char *head, size_t n);
	/* Converts one input file: emits sessions/turns through im. */
	int (*convert)(struct imp *im, const char *path, struct ar_err *err);
};

/* NULL-terminated table of every importer. */
const struct importer *const *import_table(void);
const struct importer *import_find(const char *name);
/* Sniffs path: the best importer, or NULL with err listing what was tried. */
const struct importer *import_sniff(const char *path, struct ar_err *err);

/* Convenience for the CLI and tests: converts every input with `imp` (or the
 * sniffed importer of each when NULL) and writes to out ("-" stdout) through
 * the trace writer; nothing is left at out on failure. */
int import_run(const struct importer *imp, const char *const *inputs, size_t n, const char *out,
	       const struct imp_opts *o, struct imp_report *rep, struct ar_err *err);

#endif
