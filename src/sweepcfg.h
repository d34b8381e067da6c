/* sweepcfg: the sweep config file (`agentreplay sweep CONFIG.yaml`).
 *
 * A YAML (or JSON) document, loaded with config.h so every problem is
 * reported as FILE:LINE: FIELD: message:
 *
 *   name: "{backend}-{model}-c{ctx}-{kv}"  # optional name template
 *   backends:                               # how to start each server
 *     llama:
 *       adapter: llama-server               # openai, llama-server, ollama, anthropic
 *       command: [llama-server, -m, "{model_path}", --port, "{port}", -c, "{ctx}"]
 *       env: {LLAMA_ARG_THREADS: "8"}
 *       cwd: /srv
 *       health: /health                     # path under url, or a full URL
 *       ready: "server is listening"        # PCRE2 pattern for a log line
 *       url: "http://127.0.0.1:{port}"      # default
 *       port: 0                             # 0 (default): a free port per start
 *       start_timeout: 300s
 *       stop_signal: TERM
 *       grace: 10s
 *       shell: false                        # true: command is one string for /bin/sh -c
 *   models: [qwen3-8b, {name: q32, path: /m/q32.gguf, hf: Qwen/Qwen3-32B}]
 *   matrix: {ctx: [32768, 131072], kv: [f16, q8_0]}
 *   exclude: [{backend: llama, kv: f16, ctx: 131072}]
 *   traces: [session.jsonl, "gen:style=claude-code,depth=32k,turns=10,seed=1"]
 *   measure: {repeats: 3, warmup: 1, cold: tiers, until_fail: true, bisect: false,
 *             slo: {ttft_ms: 10000}, ttft_timeout: 600s, stall_timeout: 60s}
 *
 * The configs are the cross product backends x models x matrix lists, minus
 * the `exclude` rules (a rule removes a config when every key it names
 * matches; a rule value may be a list). Each config has a stable `key`
 * ("backend=llama,model=qwen3-8b,ctx=32768,kv=f16": matrix keys in file
 * order), which resume, shards and merge rely on, and a unique name.
 *
 * Placeholders: {backend}, {model}, {model_path} (the model's `path`, else
 * its name), every other member of a model object, {port}, {name}, and every
 * matrix key. In `command` a placeholder must be a whole element ("--port",
 * "{port}"; never "--port={port}"), so no value is ever split or re-parsed;
 * in `env` values, `url`, `health` and `name` they may sit inside the text
 * (nothing parses those); with `shell: true` they are substituted
 * single-quoted. An unknown placeholder is an error naming FILE:LINE.
 *
 * Ownership: sweepcfg_load() returns a plan freed by sweepcfg_free() (NULL
 * ok); every string in it belongs to the plan. Vectors returned by
 * sweepcfg_argv()/sweepcfg_env() are freed by sweepcfg_strv_free().
 */
#ifndef AR_SWEEPCFG_H
#define AR_SWEEPCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct sweep_backend {
	char *id;      /* its key under `backends` */
	int line;      /* where it is defined */
	char *adapter; /* openai, llama-server, ollama, anthropic */
	char **argv;   /* command template (shell: the one string in argv[0]) */
	int *argv_line;
	size_t argc;
	bool shell;
	char **env; /* NAME=VALUE templates */
	int *env_line;
	size_t nenv;
	char *cwd;    /* NULL: the current directory */
	char *health; /* template, NULL when none */
	char *ready;  /* PCRE2 pattern, NULL when none */
	char *url;    /* template */
	int port;     /* 0: pick a free one at every start */
	int64_t start_timeout_ns, grace_ns;
	int stop_signal;
};

struct sweep_var {
	char *name, *value;
};

struct sweep_item {
	char *key, *name;
	size_t backend;       /* index into plan->backends */
	char *model;          /* sent in requests */
	struct sweep_var *vars; /* every placeholder but {port}, {name} */
	size_t nvars;
	char *params_json;    /* matrix values and the backend id, for the store */
	size_t rank;          /* position in key order: shards use it */
};

struct sweep_measure {
	int repeats, warmup;
	char cold[16]; /* tiers, deepest, every, none */
	bool until_fail, bisect, history_generated, plain;
	double slo_ttft_ms, slo_decode_tps; /* 0 = none */
	int64_t ttft_timeout_ns, stall_timeout_ns;
	int max_tokens_field;
	char *extra_json; /* members of `extra` without braces, or NULL */
	/* memory sampling of the managed server (default every 100 ms; 0 = off) */
	double mem_interval_s;
	int64_t mem_budget; /* bytes; 0 = auto */
	/* many sessions at once (run --concurrency): the arrival spec is checked
	 * by the replay layer (arrival_parse) when the sweep starts */
	int concurrency;   /* 0/1 = one session at a time */
	char arrival[64];  /* "" = all at once */
	double pace;       /* < 0 = default */
	uint64_t seed;
};

struct sweep_plan {
	char *path;
	char *dir;     /* of the config file: relative trace paths start there */
	char hash[17]; /* FNV-1a 64 of the file's bytes, hex */
	struct sweep_backend *backends;
	size_t nbackends;
	char **traces; /* as written: a path (made relative to dir) or "gen:..." */
	int *trace_line;
	size_t ntraces;
	struct sweep_measure m;
	struct sweep_item *items;
	size_t nitems;
};

int sweepcfg_load(struct sweep_plan **out, const char *path, struct ar_err *err);
/* The same from text; `name` labels errors and dir resolves trace paths. */
int sweepcfg_parse(struct sweep_plan **out, const char *text, size_t n, const char *name, const char *dir,
		   struct ar_err *err);
void sweepcfg_free(struct sweep_plan *p);

/* The command of item with `port` substituted: a NULL-terminated vector
 * (shell: {"/bin/sh", "-c", CMD, NULL}). */
int sweepcfg_argv(const struct sweep_plan *p, const struct sweep_item *it, int port, char ***out, struct ar_err *err);
/* The backend's env entries, NAME=VALUE, NULL-terminated. */
int sweepcfg_env(const struct sweep_plan *p, const struct sweep_item *it, int port, char ***out, struct ar_err *err);
/* A text template (url, health) with placeholders substituted inside it. */
int sweepcfg_text(const struct sweep_plan *p, const struct sweep_item *it, int port, const char *tmpl, char **out,
		  struct ar_err *err);
void sweepcfg_strv_free(char **v);

/* Shards: "I/N" with 1 <= I <= N. Config of rank r belongs to shard
 * (r mod N) + 1, so every shard gets an equal share and the split depends on
 * the keys only. */
int sweepcfg_parse_shard(const char *s, int *i, int *n, struct ar_err *err);
bool sweepcfg_in_shard(const struct sweep_item *it, int i, int n);

/* FNV-1a 64 of bytes as 16 hex digits + NUL. */
void sweepcfg_hash(const void *data, size_t n, char out[17]);

#endif
