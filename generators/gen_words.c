#include "gen_words.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const nouns[] = {
	"cache",   "entry",    "buffer",  "queue",   "session", "token",   "request", "response", "header",
	"record",  "index",    "segment", "block",   "page",    "node",    "edge",    "route",    "handler",
	"worker",  "task",     "job",     "event",   "stream",  "frame",   "packet",  "channel",  "client",
	"server",  "config",   "option",  "schema",  "field",   "column",  "table",   "row",      "query",
	"filter",  "parser",   "writer",  "reader",  "encoder", "decoder", "hash",    "digest",   "key",
	"value",   "slot",     "bucket",  "pool",    "chunk",   "span",    "range",   "offset",   "limit",
	"cursor",  "snapshot", "ledger",  "account", "user",    "profile", "policy",  "rule",     "metric",
	"counter", "timer",    "deadline", "lock",   "batch",   "shard",   "replica", "journal",  "manifest",
	"artifact", "bundle",  "package", "module",  "target",  "asset",   "store",   "state",    "message",
	"payload", "result",   "error",   "status",  "path",    "name",    "size",    "count",    "item",
	"list",    "map",      "set",     "tree",    "graph",   "window",  "view",    "layout",   "theme",
	"plugin",  "command",  "context", "scope",   "version", "release", "build",   "report",   "sample",
};

static const char *const verbs[] = {
	"get",     "set",     "add",      "remove",  "insert",  "delete",   "find",    "lookup",   "load",
	"store",   "save",    "read",     "write",   "open",    "close",    "parse",   "format",   "encode",
	"decode",  "validate", "check",   "apply",   "build",   "create",   "init",    "reset",    "clear",
	"flush",   "sync",    "merge",    "split",   "resolve", "register", "dispatch", "handle",  "process",
	"compute", "update",  "refresh",  "acquire", "release", "push",     "pop",     "peek",     "drain",
	"scan",    "match",   "emit",     "collect", "render",  "normalize", "compare", "copy",    "clone",
	"allocate", "free",   "start",    "stop",    "schedule", "cancel",  "retry",   "evict",    "expire",
	"track",   "measure", "convert",  "serialize", "restore", "attach", "detach",  "prepare",  "finish",
};

static const char *const adjs[] = {
	"max",     "min",    "next",   "prev",    "last",    "first",  "total",   "pending", "active",
	"stale",   "dirty",  "raw",    "default", "current", "new",    "old",     "local",   "remote",
	"empty",   "full",   "closed", "partial", "shared",  "cached", "expired", "invalid", "unknown",
	"initial", "final",  "nested", "ordered", "unique",
};

#define N(a) (sizeof a / sizeof a[0])

const char *gw_noun(struct rng *r) { return nouns[rng_below(r, N(nouns))]; }
const char *gw_verb(struct rng *r) { return verbs[rng_below(r, N(verbs))]; }
const char *gw_adj(struct rng *r) { return adjs[rng_below(r, N(adjs))]; }
size_t gw_n_nouns(void) { return N(nouns); }
const char *gw_noun_at(size_t i) { return nouns[i % N(nouns)]; }
size_t gw_n_verbs(void) { return N(verbs); }
const char *gw_verb_at(size_t i) { return verbs[i % N(verbs)]; }

int gw_ident(struct buf *b, enum gw_case c, const char *const *words)
{
	size_t i = 0;
	for (size_t j = 0; words[j]; j++) {
		const char *w = words[j];
		if (!*w)
			continue;
		if (i++ > 0) {
			if (c == GW_SNAKE || c == GW_UPPER) {
				if (buf_putc(b, '_') < 0)
					return -1;
			} else if (c == GW_KEBAB && buf_putc(b, '-') < 0) {
				return -1;
			}
		}
		for (size_t k = 0; w[k]; k++) {
			char ch = w[k];
			if (c == GW_UPPER)
				ch = (char)toupper((unsigned char)ch);
			else if (k == 0 && (c == GW_PASCAL || (c == GW_CAMEL && i > 1)))
				ch = (char)toupper((unsigned char)ch);
			if (buf_putc(b, ch) < 0)
				return -1;
		}
	}
	return 0;
}

void gw_ident_to(char *out, size_t n, enum gw_case c, const char *w1, const char *w2, const char *w3)
{
	/* the same spelling as gw_ident, into a fixed array (no allocation) */
	const char *w[] = {w1 ? w1 : "", w2 ? w2 : "", w3 ? w3 : ""};
	size_t o = 0;
	int i = 0;
	if (!n)
		return;
	for (int j = 0; j < 3; j++) {
		if (!*w[j])
			continue;
		if (i++ > 0 && o + 1 < n) {
			if (c == GW_SNAKE || c == GW_UPPER)
				out[o++] = '_';
			else if (c == GW_KEBAB)
				out[o++] = '-';
		}
		for (size_t k = 0; w[j][k] && o + 1 < n; k++) {
			char ch = w[j][k];
			if (c == GW_UPPER)
				ch = (char)toupper((unsigned char)ch);
			else if (k == 0 && (c == GW_PASCAL || (c == GW_CAMEL && i > 1)))
				ch = (char)toupper((unsigned char)ch);
			out[o++] = ch;
		}
	}
	out[o] = 0;
}

/* ---- sentence banks ----------------------------------------------------- */

static const char *const bank_task[] = {
	"The {test} test started failing after my last change to {path}. Can you find out why and fix it?",
	"`{fn}` in {path} returns the wrong {noun} when the {noun2} is empty. Please fix it and add a regression test.",
	"Add an optional `{flag}` parameter to `{fn}` so callers can skip the {noun} check. Keep the current behaviour as the default.",
	"Refactor {path}: `{fn}` has grown too long. Move the {noun} handling into its own function and make sure the tests still pass.",
	"We see intermittent failures of {test} in CI. I suspect a race in `{fn}`. Can you investigate and fix it?",
	"`{cmd}` fails with \"{errmsg}\" on a clean checkout. Please figure out what is wrong and fix it.",
	"Update the {noun} handling in {path} to use the new `{type}` API, then run the tests.",
	"`{fn}` got much slower on large inputs since the last release. Find the hot path and make it fast again without changing its output.",
	"Please review {path} for error-handling problems (unchecked results, leaks on early returns) and fix the ones you find.",
	"Implement `{fn}` in {path}. It should walk every {noun} in the {noun2}, skip the {adj} ones and return how many it kept. Add tests.",
	"The {noun} limit is hard-coded to {num} in {path}. Make it configurable through the existing config file and document the new option.",
	"I want `{fn}` to return an error instead of panicking when the {noun} is missing. Change it and update the callers.",
	"There is a memory leak somewhere around `{fn}`; the {noun} count keeps growing in long runs. Please track it down.",
	"Write unit tests for {path}. Cover the edge cases: an empty {noun}, a full {noun2} and an {adj} {noun}.",
	"Rename `{type}` to something clearer across the code base and fix everything that breaks.",
	"Can you explain how the {noun} flows from `{fn}` to `{fn2}`, then fix the off-by-one I think is in there?",
	"The build is broken on main: `{cmd}` reports errors in {path}. Please get it green again.",
	"Add logging to `{fn}` so we can see which {noun} triggers the {adj} path, at debug level only.",
};

static const char *const bank_interject[] = {
	"Actually, please don't change the public signature of `{fn}`; other services depend on it.",
	"Also make sure this works when the {noun} is empty.",
	"Quick note: CI runs the tests with {flag} enabled, so keep that in mind.",
	"Keep the change minimal please, we are about to cut a release.",
	"Can you also add a short comment explaining why the {noun} check is needed?",
	"Wait, before you continue: the {noun2} can be shared between threads, so be careful with locking.",
	"FYI the failing case in production had about {num} {noun}s, if that helps.",
	"Don't bother with {path2}, that code is going away next sprint.",
};

static const char *const bank_read[] = {
	"Let me look at {path} first.",
	"I'll read the implementation of `{fn}` in {path}.",
	"Let me check how {path} handles the {noun}.",
	"I need to see the rest of {path} before changing anything.",
	"Now let me read the test file to see what it expects.",
	"Let me open {path} to understand the {noun} handling.",
};
static const char *const bank_search[] = {
	"Let me find where `{fn}` is called.",
	"I'll search the code base for uses of `{fn}`.",
	"Let me search for other places that touch the {noun}.",
	"Searching for the definition of `{type}`.",
};
static const char *const bank_list[] = {
	"Let me get an overview of the repository layout.",
	"I'll list the files under the source directory.",
	"Let me see which test files exist.",
};
static const char *const bank_test[] = {
	"Let me run the tests to reproduce the failure.",
	"Running the test suite to confirm the fix.",
	"Now I'll run the tests again.",
	"Let me run just the {noun} tests first.",
	"Let me check that everything still passes.",
};
static const char *const bank_build[] = {
	"Let me build the project to see the errors.",
	"I'll run the type checker to see what breaks.",
	"Let me compile to check the change.",
};
static const char *const bank_edit[] = {
	"I'll fix the bounds check in `{fn}`.",
	"Now I'll update `{fn}` to handle the empty {noun}.",
	"The problem is in `{fn}`: it uses the {adj} {noun}. Let me fix that.",
	"I'll apply the same fix to the other call site.",
	"Let me update the test to cover this case.",
	"I'll make the {noun} limit a parameter instead of a constant.",
};
static const char *const bank_write[] = {
	"I'll add a new test file for this.",
	"Let me create a small helper module for the {noun} logic.",
	"I'll write the new implementation to {path}.",
};
static const char *const bank_shell[] = {
	"Let me check the git status.",
	"Let me look at what changed recently.",
	"Let me see the diff so far.",
	"I'll check the recent commits that touched {path}.",
};
static const char *const bank_web[] = {
	"Let me check the documentation for this API.",
	"I'll look up how the library handles {noun}s.",
};
static const char *const bank_task_agent[] = {
	"This needs a broader search; I'll delegate the exploration to a subagent.",
	"I'll use an agent to map out every place that touches the {noun}.",
};
static const char *const bank_todo[] = {
	"Let me plan this out.",
	"I'll track the steps in the todo list.",
};

static const char *const bank_explain[] = {
	"`{fn}` read `{var}` before checking whether the {noun} was still valid, so a stale {noun} could be returned.",
	"The loop in `{fn}` stopped one element early when the {noun2} was full, so the last {noun} was never visited.",
	"I kept the public API unchanged; only the internal {noun} handling moved.",
	"Callers that pass an empty {noun} now get an error instead of a silent no-op.",
	"The new test fails on the old code and passes with the fix.",
	"There is a similar pattern in `{fn2}`, but it already handles this case correctly.",
	"I did not touch {path2}; its behaviour is covered by the existing tests.",
	"If you want, I can also add a benchmark for `{fn}` to catch regressions like this earlier.",
	"The {noun} is now released on every early return, which removes the leak.",
	"`{fn2}` assumed the {noun2} was sorted, which stopped being true after the last change to {path}.",
	"The root cause is that `{fn}` compared the {noun} size against the {adj} limit instead of the current one.",
	"I replaced the hard-coded value {num} with the configured limit and added a check at start-up.",
	"Both call sites now go through `{fn}`, so the validation happens in one place.",
	"The error message now names the {noun} that failed, which should make the next incident easier to debug.",
	"All {num} tests pass, and the type checker reports no new warnings.",
	"One thing to watch: the {noun2} cache is still unbounded, which is a separate issue.",
	"The change is limited to {path} and its test file.",
	"I ran the full suite twice to make sure the failure is not flaky.",
	"The {adj} {noun} path was never exercised by the tests, which is why this slipped through.",
	"`{type}` now owns the {noun} and frees it in its destructor, so callers no longer have to.",
};

static const char *const bank_doc[] = {
	"The {noun} API lets you {verb} a {noun2} without blocking the caller.",
	"Each {noun} is identified by a key that stays stable across restarts.",
	"When the {noun2} is full, the oldest {noun} is evicted first.",
	"Options are read once at start-up; changing them requires a restart.",
	"Errors are returned to the caller and never logged by the library itself.",
	"All functions are safe to call from several threads at once, unless noted otherwise.",
	"Use the {adj} mode only for debugging, because it disables the {noun} cache.",
	"The default limit is {num} {noun}s, which is enough for most workloads.",
	"A {noun} that fails validation is rejected with a descriptive error.",
	"See the examples below for the common cases.",
	"Timeouts are measured from the moment the {noun} is queued, not from when it starts.",
	"Setting the limit to zero disables the check entirely.",
};

static const char *const bank_comment[] = {
	"keep the oldest {noun} at the head",
	"the caller owns the returned {noun}",
	"the lock must be held here",
	"TODO: handle partial writes",
	"fast path: nothing to {verb}",
	"reuse the {noun} buffer to avoid an allocation",
	"{noun} may be empty after a reset",
	"bounded by the {adj} limit",
	"must run before the first {noun} is queued",
	"release the {noun} on every early return",
	"see the {noun2} tests for the edge cases",
	"matches the behaviour of the old {noun} code",
};

static const char *const bank_commit[] = {
	"fix off-by-one in {fn}",
	"handle empty {noun} in {fn}",
	"make the {noun} limit configurable",
	"add tests for {fn}",
	"refactor {noun} handling",
	"release {noun} on early return",
};

static const struct {
	const char *const *s;
	size_t n;
} banks[GW_NBANKS] = {
	[GW_TASK] = {bank_task, N(bank_task)},
	[GW_INTERJECT] = {bank_interject, N(bank_interject)},
	[GW_BEFORE_READ] = {bank_read, N(bank_read)},
	[GW_BEFORE_SEARCH] = {bank_search, N(bank_search)},
	[GW_BEFORE_LIST] = {bank_list, N(bank_list)},
	[GW_BEFORE_TEST] = {bank_test, N(bank_test)},
	[GW_BEFORE_BUILD] = {bank_build, N(bank_build)},
	[GW_BEFORE_EDIT] = {bank_edit, N(bank_edit)},
	[GW_BEFORE_WRITE] = {bank_write, N(bank_write)},
	[GW_BEFORE_SHELL] = {bank_shell, N(bank_shell)},
	[GW_BEFORE_WEB] = {bank_web, N(bank_web)},
	[GW_BEFORE_TASK] = {bank_task_agent, N(bank_task_agent)},
	[GW_BEFORE_TODO] = {bank_todo, N(bank_todo)},
	[GW_EXPLAIN] = {bank_explain, N(bank_explain)},
	[GW_DOC] = {bank_doc, N(bank_doc)},
	[GW_COMMENT] = {bank_comment, N(bank_comment)},
	[GW_COMMIT] = {bank_commit, N(bank_commit)},
};

int gw_sentence(struct buf *b, enum gw_bank bank, struct rng *r, gw_slot_fn fn, void *ctx)
{
	if ((unsigned)bank >= GW_NBANKS)
		return -1;
	return gw_expand(b, banks[bank].s[rng_below(r, banks[bank].n)], r, fn, ctx);
}

static int generic(struct buf *b, const char *name, size_t n, struct rng *r)
{
	if ((n == 4 && !memcmp(name, "noun", 4)) || (n == 5 && !memcmp(name, "noun2", 5)))
		return buf_puts(b, gw_noun(r));
	if (n == 4 && !memcmp(name, "verb", 4))
		return buf_puts(b, gw_verb(r));
	if (n == 3 && !memcmp(name, "adj", 3))
		return buf_puts(b, gw_adj(r));
	if (n == 3 && !memcmp(name, "num", 3))
		return buf_printf(b, "%u", (unsigned)(2 + rng_below(r, 250)));
	if (n == 3 && !memcmp(name, "var", 3)) {
		char id[64];
		gw_ident_to(id, sizeof id, GW_SNAKE, gw_adj(r), gw_noun(r), NULL);
		return buf_puts(b, id);
	}
	/* unknown slot: a noun keeps the text readable */
	return buf_puts(b, gw_noun(r));
}

int gw_expand(struct buf *b, const char *t, struct rng *r, gw_slot_fn fn, void *ctx)
{
	const char *p = t;
	while (*p) {
		const char *open = strchr(p, '{');
		if (!open)
			return buf_puts(b, p);
		const char *close = strchr(open, '}');
		if (!close)
			return buf_puts(b, p);
		size_t n = (size_t)(close - open - 1);
		bool slot = n > 0 && n < 24;
		for (size_t i = 1; slot && i <= n; i++)
			if (!(islower((unsigned char)open[i]) || isdigit((unsigned char)open[i]) || open[i] == '_'))
				slot = false;
		if (buf_append(b, p, (size_t)(open - p)) < 0)
			return -1;
		if (!slot) {
			if (buf_putc(b, '{') < 0)
				return -1;
			p = open + 1;
			continue;
		}
		int got = fn ? fn(ctx, open + 1, n, b) : 0;
		if (got < 0)
			return -1;
		if (!got && generic(b, open + 1, n, r) < 0)
			return -1;
		p = close + 1;
	}
	return 0;
}
