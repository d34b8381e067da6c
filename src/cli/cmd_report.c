/* agentreplay report: render the results store as tables, CSV/JSON or HTML. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"
#include "store.h"
#include "units.h"

enum { O_FORMAT = 1, O_OUT, O_RUN, O_FILTER };

static const struct cli_opt report_opts_tbl[] = {
	{"format", 0, "FMT", "text (default), md, csv, json or html", O_FORMAT},
	{"output", 'o', "FILE", "write here (replaced only when the report is complete) instead of stdout", O_OUT},
	{"run", 0, "ID", "only this run (default: every run in the store)", O_RUN},
	{"filter", 0, "EXPR", "only the requests matching EXPR (see below)", O_FILTER},
	{0},
};

struct report_cli {
	struct report_opts o;
	const char *out;
};

static int report_opt(void *ctx, int id, const char *val, struct ar_err *err)
{
	struct report_cli *c = ctx;
	uint64_t v;
	switch (id) {
	case O_FORMAT: return report_format_parse(val, &c->o.format, err);
	case O_OUT: c->out = val; break;
	case O_RUN:
		if (units_parse_count(val, &v, err) < 0)
			return ar_err_prefix(err, "--run");
		if (v > INT64_MAX)
			return ar_err_set(err, AR_EINVAL, "--run: '%s' is out of range", val);
		c->o.run_id = (int64_t)v;
		break;
	case O_FILTER:
		if (report_filter_check(val, err) < 0)
			return -1;
		c->o.filter = val;
		break;
	}
	return 0;
}

static int report_run(int argc, char **argv)
{
	struct report_cli c;
	memset(&c, 0, sizeof c);
	c.o.format = REPORT_TEXT;
	c.o.run_id = -1;
	int npos = 0;
	int p = cli_parse(&cmd_report, argc, argv, report_opt, &c, &npos);
	if (p != 0)
		return p > 0 ? EXIT_OK : EXIT_USAGE;
	if (npos != 1) {
		cli_error("report: needs exactly one store (agentreplay report DB)");
		return EXIT_USAGE;
	}
	const char *db = argv[0];
	c.o.source = db;

	struct ar_err err = {0};
	struct store *st = NULL;
	FILE *f = stdout;
	char *tmp = NULL;
	int rc = EXIT_USAGE;
	/* the output first: an unwritable path fails before any work, and the
	 * report goes to a temporary file renamed over FILE only when complete */
	if (c.out && strcmp(c.out, "-")) {
		size_t n = strlen(c.out) + 16;
		tmp = malloc(n);
		if (!tmp) {
			cli_error("out of memory");
			goto out;
		}
		snprintf(tmp, n, "%s.tmpXXXXXX", c.out);
		int fd = mkstemp(tmp);
		mode_t um = umask(0);
		umask(um);
		if (fd >= 0)
			fchmod(fd, 0666 & ~um); /* mkstemp's 0600 is not what -o promises */
		if (fd < 0 || !(f = fdopen(fd, "w"))) {
			cli_error("report: cannot write '%s': %s", c.out, strerror(errno));
			if (fd >= 0) {
				close(fd);
				unlink(tmp);
			}
			free(tmp);
			tmp = NULL;
			f = stdout;
			goto out;
		}
	}
	if (store_open(&st, db, STORE_READONLY, &err) < 0) {
		cli_error_err(&err);
		goto out;
	}
	if (report_write(store_db(st), &c.o, f, &err) < 0) {
		cli_error_err(&err);
				goto out;
	}
	if (tmp) {
		FILE *g = f;
		f = stdout;
		if (fclose(g) != 0) {
			cli_error("report: cannot write '%s': %s", c.out, strerror(errno));
			rc = EXIT_USAGE;
			goto out;
		}
		if (rename(tmp, c.out) < 0) {
			cli_error("report: cannot write '%s': %s", c.out, strerror(errno));
			rc = EXIT_USAGE;
			goto out;
		}
		free(tmp);
		tmp = NULL;
	}
	rc = EXIT_OK;
out:
	if (f != stdout)
		fclose(f);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	store_close(st);
	return rc;
}

const struct cli_cmd cmd_report = {
	.name = "report",
	.summary = "Render a results store: summary tables, CSV/JSON of every request, or an HTML page.",
	.usage = "report DB [--format text|md|csv|json|html] [-o FILE] [--run ID] [--filter EXPR]",
	.description =
		"  text, md  per config: warm TTFT at baseline/32k/64k/128k and the 32k/baseline ratio, cold vs\n"
		"            warm TTFT per tier, decode rate per tier, peak memory, failure point; then the best\n"
		"            config for each goal (median and min-max over repeats). [sim] marks simulated rows.\n"
		"  csv, json every request row with every figure; column names are stable (README, Reports)\n"
		"  html      one self-contained page (works from file://): charts of TTFT and decode rate vs\n"
		"            depth, cold vs warm per tier, memory vs turn with the budget and failures, a\n"
		"            survival matrix, and the sortable, filterable table of requests\n"
		"\n"
		"Tiers: baseline is the shallowest turn; 32k/64k/128k is the turn whose context depth is nearest\n"
		"32768/65536/131072 tokens within +-25% (cold and warm chosen separately); none: empty cell.\n"
		"\n"
		"--filter EXPR keeps the requests matching every condition of EXPR, a comma-separated list of\n"
		"COLUMN OP VALUE, OP one of = != < <= > >= and ~ (contains, case-insensitive); COLUMN is a\n"
		"csv/json column name; numbers compare as numbers; tier=32k keeps that tier's requests\n"
		"(tier= those of no tier). Example:\n"
		"  --filter 'cache=warm,context_tokens_est>=16000,config~llama'\n"
		"\n"
		"exit: 0 ok, 2 not a store, a store of a newer schema, no such run, bad filter or unwritable\n"
		"output.",
	.opts = report_opts_tbl,
	.run = report_run,
};
