/* cli: the command line on top of the libraries.
 *
 * Only code under src/cli/ prints fatal messages and picks exit codes. Each
 * subcommand lives in its own file (cmd_*.c) and is listed in main.c's table;
 * its options are a table too, from which both the parser and --help are made.
 */
#ifndef AR_CLI_H
#define AR_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "err.h"

/* Exit codes (DESIGN.md section 9). */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,      /* the measured thing failed */
	EXIT_USAGE = 2,       /* usage or input error */
	EXIT_UNREACHABLE = 3, /* backend unreachable */
	EXIT_INTERRUPTED = 130,
};

struct cli_opt {
	const char *name;  /* long name without "--" */
	char short_name;   /* 0 when none */
	const char *arg;   /* metavar, or NULL for a flag */
	const char *help;
	int id;
};

struct cli_cmd {
	const char *name;
	const char *summary;
	const char *usage;          /* after "agentreplay " */
	const char *description;    /* paragraph(s) for --help */
	const struct cli_opt *opts; /* terminated by a zeroed entry */
	int (*run)(int argc, char **argv);
};

/* Called for each option found: id and its argument (NULL for flags).
 * Returns 0, or -1 with err set for a bad value. */
typedef int (*cli_opt_fn)(void *ctx, int id, const char *val, struct ar_err *err);

/* Parses argv[1..] (argv[0] is the subcommand name). Options may come before
 * or after positionals; "--" ends options; "--name=value" works. --help and -h
 * print the help of `cmd` and make it return 1 with *help = true. Positionals
 * are moved to the front of argv; their count goes to *npos.
 * Returns 0, 1 (help printed), or -1 (usage error printed to stderr). */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, cli_opt_fn fn, void *ctx, int *npos);
void cli_help(const struct cli_cmd *cmd, FILE *out);
/* Prints "agentreplay: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the error's message. */
void cli_error_err(const struct ar_err *err);
/* Closes stdout checking for write errors (a report cut by a full disk must
 * not exit 0). Returns rc, or EXIT_USAGE... when stdout failed. */
int cli_finish(int rc);

/* The subcommands. */
extern const struct cli_cmd cmd_trace;
extern const struct cli_cmd cmd_gen;
extern const struct cli_cmd cmd_sim;
extern const struct cli_cmd cmd_run;
extern const struct cli_cmd cmd_report;
extern const struct cli_cmd cmd_import;
extern const struct cli_cmd cmd_record;
extern const struct cli_cmd cmd_sweep;
extern const struct cli_cmd cmd_db;

#endif
