/* fs_fault: the fault specs of ar-faultsrv.
 *
 * A spec is `NAME[@K][:ARG]`: the fault NAME applies to the K-th generation
 * request (1-based, counted over the generation endpoints only), or to every
 * request when `@K` is absent. ARG is a non-negative integer whose meaning
 * depends on the fault (milliseconds, tokens, megabytes, an HTTP status, an
 * exit code). Several specs may apply to one request; they combine.
 *
 * fs_fault_parse() turns one spec into a `struct fs_fault`;
 * fs_faults_select() folds the specs that apply to request K into a
 * `struct fs_active` (a bit set plus the argument of each fault). Nothing
 * here allocates; both structs are plain values.
 */
#ifndef AR_FS_FAULT_H
#define AR_FS_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum fs_fault_kind {
	FS_F_RESET_BEFORE_HEADERS,
	FS_F_RESET_MID_HEADERS,
	FS_F_RESET_MID_STREAM,
	FS_F_CLOSE_MID_STREAM,
	FS_F_STALL,
	FS_F_STALL_BEFORE_FIRST,
	FS_F_SLOW_DRIP,
	FS_F_SPLIT_EVERY_BYTE,
	FS_F_HTTP_STATUS,
	FS_F_OOM,
	FS_F_CTX_EXCEEDED_MIDSTREAM,
	FS_F_PEG_ERROR,
	FS_F_WRONG_CONTENT_TYPE,
	FS_F_HTML_404,
	FS_F_GARBAGE,
	FS_F_INVALID_UTF8,
	FS_F_NO_DONE,
	FS_F_ENDLESS,
	FS_F_HUGE_EVENT,
	FS_F_IGNORE_MAX_TOKENS,
	FS_F_STOP_EARLY,
	FS_F_NO_USAGE,
	FS_F_PING,
	FS_F_PROMPT_PROGRESS,
	FS_F_REASONING,
	FS_F_TOOL_CALL,
	FS_F_ROLE_FIRST,
	FS_F_EXIT,
	FS_F_KILL_AFTER,
	FS_F_COUNT
};

#define FS_SPEC_MAX 64

struct fs_fault {
	enum fs_fault_kind kind;
	uint64_t at;  /* 1-based request number; 0 = every request */
	uint64_t arg; /* the argument, or the fault's default */
	char spec[FS_SPEC_MAX]; /* the spec as given, for logs */
};

struct fs_active {
	uint64_t mask;             /* bit (1 << kind) for each active fault */
	uint64_t arg[FS_F_COUNT];  /* argument of each active fault */
	char desc[512];            /* the active specs joined by ',' ("" if none) */
};

/* Parses one spec. Returns 0, or -1 with `err` naming the spec and the
 * problem (unknown name, missing or bogus argument, K == 0). */
int fs_fault_parse(const char *spec, struct fs_fault *out, struct ar_err *err);

/* Fills `out` with the faults of `list` that apply to request `req`
 * (1-based). When two specs name the same fault, the later one wins. */
void fs_faults_select(const struct fs_fault *list, size_t n, uint64_t req,
		      struct fs_active *out);

static inline bool fs_has(const struct fs_active *a, enum fs_fault_kind k)
{
	return (a->mask >> k) & 1u;
}

/* The fault's name ("reset_mid_stream"); NULL for an out-of-range kind. */
const char *fs_fault_name(enum fs_fault_kind k);

/* One help line per fault ("  reset_mid_stream:N   RST after N tokens\n"...),
 * NUL-terminated, static storage. */
const char *fs_fault_help(void);

#endif
