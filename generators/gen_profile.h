/* gen_profile: a style profile of `agentreplay gen`, loaded from YAML.
 *
 * A profile is everything that makes a Claude Code session look different
 * from a Codex or an Aider one: the system prompt and tool schemas (and how
 * large they are), how each agent action (read a file, search, run tests,
 * edit, ...) is spelled as a tool call and what its result looks like, and
 * the distributions of sizes, output lengths and times. The engine (gen.c)
 * holds no style-specific text; generators/styles/<name>.yaml are the
 * shipped profiles and users copy and edit them (generators/README.md
 * documents every field and where the numbers come from).
 *
 * Lookup: gen_profile_path() maps `--style NAME` to
 * AR_SOURCE_DIR/generators/styles/NAME.yaml; a NAME containing '/' or ending
 * in .yaml/.yml/.json is a path to the user's own file.
 *
 * Ownership: gen_profile_load() returns a profile the caller frees with
 * gen_profile_free() (NULL is a no-op). Every string and the tool array are
 * owned by the profile.
 */
#ifndef AR_GEN_PROFILE_H
#define AR_GEN_PROFILE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "gen_code.h"
#include "gen_dist.h"
#include "gen_repo.h"

/* What an agent does in one turn (the response's action). */
enum gen_role {
	GEN_ROLE_READ,   /* read a file */
	GEN_ROLE_SEARCH, /* grep */
	GEN_ROLE_LIST,   /* glob / ls */
	GEN_ROLE_TEST,   /* run the tests */
	GEN_ROLE_BUILD,  /* compile / type-check */
	GEN_ROLE_SHELL,  /* git status / diff / log */
	GEN_ROLE_EDIT,   /* change a file in place */
	GEN_ROLE_WRITE,  /* write a new file */
	GEN_ROLE_TODO,   /* update a plan / todo list */
	GEN_ROLE_TASK,   /* delegate to a subagent */
	GEN_ROLE_WEB,    /* fetch a documentation page */
	GEN_NROLES,
};

const char *gen_role_name(enum gen_role r);
/* Result sizes of these roles stretch to fill the depth budget. */
bool gen_role_elastic(enum gen_role r);

struct gen_role_def {
	bool present;
	char *tool;       /* tool name (mode tools) */
	char *args;       /* tool call arguments: JSON text template */
	char *args_range; /* read: arguments with offset/limit */
	char *result;     /* result template ({body}, {path}, ...) */
	char *ask;        /* mode chat: the assistant's text */
	int64_t weight;   /* relative frequency among the roles of a task phase */
	struct gen_dist size;    /* natural size of the result, tokens */
	struct gen_dist args_tokens; /* edit: new text; write: file text (tokens) */
	struct gen_dist tool_ms; /* time the tool runs */
	int64_t max_tokens;      /* a result is never stretched beyond this */
	enum gen_numbering numbering;       /* whole-file reads, edit snippets */
	enum gen_numbering range_numbering; /* reads of a line range */
	enum gen_grep_format grep;
};

enum gen_notes_at { GEN_NOTES_NONE, GEN_NOTES_SYSTEM, GEN_NOTES_FIRST_USER };

struct gen_profile {
	char *path; /* the file it came from */
	char *name;
	char *description;
	char *model;
	bool chat; /* mode chat (no tools; edits in assistant text) */
	char *home;
	char *call_id_prefix;
	int call_id_len;
	int64_t lang_weight[GEN_LANG_N];

	/* prefix */
	char *system;
	char *environment;
	int64_t system_tokens; /* the system prompt is padded with project notes up to this */
	enum gen_notes_at notes_at;
	struct gen_dist notes_tokens;
	char **first_user; /* templates of turn 0's user messages before the task */
	int n_first_user;
	char *task_template; /* "{task}" */
	cJSON *tools;        /* array in trace form ({"type":"function","function":{...}}) */
	int64_t tools_tokens;
	char **tool_notes;
	int n_tool_notes;

	struct gen_role_def roles[GEN_NROLES];

	/* session shape */
	int64_t growth_per_turn;
	struct gen_dist calls_per_task;
	struct gen_dist task_tokens;
	struct gen_dist interject_tokens;
	gen_prob interject, reread, test_fail_first, test_fail_again, paste;

	/* outputs (tokens) */
	struct gen_dist out_call, out_final, text_call, text_final;
	bool reasoning;

	/* timing (ms) */
	struct gen_dist api_ms, think_ms;
	int64_t decode_tps;

	/* compaction */
	char *compact_prompt;
	char *compact_continue;
	struct gen_dist summary_tokens;

	/* subagents */
	char *sub_system;
	char **sub_tools;
	int n_sub_tools;
	struct gen_dist sub_calls;

	/* mode chat */
	char *map_intro, *map_ack, *files_intro, *files_ack, *added, *followup;
	struct gen_dist map_tokens;
	struct gen_dist chat_files; /* files in the chat at the start */
};

/* Resolves --style: a name or a path. Writes the path to out. */
int gen_profile_path(const char *style, char *out, size_t n, struct ar_err *err);
int gen_profile_load(struct gen_profile **out, const char *path, struct ar_err *err);
void gen_profile_free(struct gen_profile *p);
/* Names of the shipped styles, NULL-terminated. */
const char *const *gen_profile_builtin(void);

#endif
