/* agentreplay: entry point and the git-style subcommand table. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_cmd *const commands[] = {
	&cmd_run,
	&cmd_trace,
	&cmd_gen,
	&cmd_sim,
	&cmd_report,
	&cmd_import,
	&cmd_record,
	&cmd_sweep,
	&cmd_db,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const struct cli_cmd *find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i]->name, name))
			return commands[i];
	return NULL;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: agentreplay [--version] [--help] COMMAND [ARGS]\n"
		"\n"
		"Replay multi-turn coding-agent sessions against LLM inference servers and measure\n"
		"what short-prompt benchmarks hide: cold vs warm TTFT at depth, prefill and decode\n"
		"rates, memory growth, and the turn where a configuration fails.\n"
		"\n"
		"commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(out, "\n'agentreplay help COMMAND' or 'agentreplay COMMAND --help' describes one.\n"
		     "Exit codes: 0 ok, 1 the measured thing failed, 2 usage or input error,\n"
		     "3 backend unreachable, 130 interrupted.\n");
}

int main(int argc, char **argv)
{
	/* a closed pipe (agentreplay ... | head) must not kill us mid-write */
	signal(SIGPIPE, SIG_IGN);
	/* a file-size limit (ulimit -f) must give write errors we report, not a silent death */
	signal(SIGXFSZ, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *a = argv[1];
	if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
		usage(stdout);
		return cli_finish(EXIT_OK);
	}
	if (!strcmp(a, "--version") || !strcmp(a, "version")) {
		printf("agentreplay %s\n", AR_VERSION);
		return cli_finish(EXIT_OK);
	}
	if (!strcmp(a, "help")) {
		if (argc < 3) {
			usage(stdout);
			return cli_finish(EXIT_OK);
		}
		const struct cli_cmd *c = find(argv[2]);
		if (!c) {
			cli_error("no such command '%s'", argv[2]);
			return EXIT_USAGE;
		}
		cli_help(c, stdout);
		return cli_finish(EXIT_OK);
	}
	const struct cli_cmd *c = find(a);
	if (!c) {
		cli_error("'%s' is not a command (see 'agentreplay --help')", a);
		return EXIT_USAGE;
	}
	return cli_finish(c->run(argc - 1, argv + 1));
}
