/* agentreplay db: operations on results stores (merge). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "storemerge.h"

static const struct cli_opt db_opts[] = {{0}};

static int db_opt(void *ctx, int id, const char *val, struct ar_err *err)
{
	(void)ctx;
	(void)id;
	(void)val;
	(void)err;
	return 0;
}

static int db_main(int argc, char **argv)
{
	int npos = 0;
	int p = cli_parse(&cmd_db, argc, argv, db_opt, NULL, &npos);
	if (p != 0)
		return p > 0 ? EXIT_OK : EXIT_USAGE;
	if (npos < 1 || strcmp(argv[0], "merge")) {
		cli_error("db: which one? merge (see 'agentreplay db --help')");
		return EXIT_USAGE;
	}
	if (npos < 3) {
		cli_error("db merge: OUT and at least one IN store, please");
		return EXIT_USAGE;
	}
	struct ar_err err = {0};
	struct store_merge_report rep;
	if (store_merge(argv[1], (const char *const *)argv + 2, (size_t)npos - 2, &rep, &err) < 0) {
		cli_error("db merge: %s", err.msg);
		return err.code == AR_EIO ? EXIT_FAILED : EXIT_USAGE;
	}
	fprintf(stderr,
		"agentreplay: db merge: wrote '%s' from %d store%s: %lld runs, %lld configs, %lld requests, %lld "
		"events, %lld memory samples\n",
		argv[1], npos - 2, npos - 2 == 1 ? "" : "s", (long long)rep.runs, (long long)rep.configs,
		(long long)rep.requests, (long long)rep.events, (long long)rep.mem_samples);
	return EXIT_OK;
}

const struct cli_cmd cmd_db = {
	.name = "db",
	.summary = "Results store operations: merge the stores of several machines (sweep shards).",
	.usage = "db merge OUT IN...",
	.description =
		"merge writes a new store OUT with every run, config, request, event and memory sample of the\n"
		"INs (ids renumbered). Refused: an OUT that exists, an IN of another schema version, a config\n"
		"key present in two INs (overlapping shards, an IN given twice), INs whose sweeps come from\n"
		"different config files. Nothing is written when anything is refused.",
	.opts = db_opts,
	.run = db_main,
};
