#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("agentreplay: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void cli_error_err(const struct ar_err *err)
{
	cli_error("%s", err->msg[0] ? err->msg : ar_strerror(err->code));
}

void cli_help(const struct cli_cmd *cmd, FILE *out)
{
	fprintf(out, "usage: agentreplay %s\n\n%s\n", cmd->usage, cmd->summary);
	if (cmd->description && *cmd->description)
		fprintf(out, "\n%s\n", cmd->description);
	if (cmd->opts && cmd->opts[0].name) {
		fputs("\noptions:\n", out);
		for (const struct cli_opt *o = cmd->opts; o->name; o++) {
			char lhs[64];
			int n = 0;
			if (o->short_name)
				n = snprintf(lhs, sizeof lhs, "-%c, ", o->short_name);
			snprintf(lhs + n, sizeof lhs - (size_t)n, "--%s%s%s", o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
			fprintf(out, "  %-26s %s\n", lhs, o->help);
		}
	}
	fprintf(out, "  %-26s %s\n", "-h, --help", "show this help");
}

static const struct cli_opt *find_long(const struct cli_opt *opts, const char *name, size_t n)
{
	for (const struct cli_opt *o = opts; o && o->name; o++)
		if (strlen(o->name) == n && !strncmp(o->name, name, n))
			return o;
	return NULL;
}

static const struct cli_opt *find_short(const struct cli_opt *opts, char c)
{
	for (const struct cli_opt *o = opts; o && o->name; o++)
		if (o->short_name == c)
			return o;
	return NULL;
}

int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, cli_opt_fn fn, void *ctx, int *npos)
{
	int pos = 0;
	bool only_pos = false;
	struct ar_err err = {0};
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
			argv[pos++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			only_pos = true;
			continue;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			cli_help(cmd, stdout);
			return 1;
		}
		const struct cli_opt *o;
		const char *val = NULL;
		if (a[1] == '-') {
			const char *name = a + 2;
			const char *eq = strchr(name, '=');
			size_t n = eq ? (size_t)(eq - name) : strlen(name);
			o = find_long(cmd->opts, name, n);
			if (!o) {
				cli_error("%s: unknown option '--%.*s' (see 'agentreplay %s --help')", cmd->name,
					  (int)n, name, cmd->name);
				return -1;
			}
			if (eq) {
				if (!o->arg) {
					cli_error("%s: option '--%s' takes no value", cmd->name, o->name);
					return -1;
				}
				val = eq + 1;
			}
		} else {
			o = a[2] ? NULL : find_short(cmd->opts, a[1]);
			if (!o) {
				cli_error("%s: unknown option '%s' (see 'agentreplay %s --help')", cmd->name, a,
					  cmd->name);
				return -1;
			}
		}
		if (o->arg && !val) {
			if (i + 1 >= argc) {
				cli_error("%s: option '--%s' needs a value (%s)", cmd->name, o->name, o->arg);
				return -1;
			}
			val = argv[++i];
		}
		if (fn(ctx, o->id, val, &err) < 0) {
			cli_error("%s: --%s: %s", cmd->name, o->name, err.msg);
			return -1;
		}
	}
	*npos = pos;
	return 0;
}

int cli_finish(int rc)
{
	errno = 0;
	if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
		/* a closed pipe reader is not our failure */
		if (errno == EPIPE)
			return rc;
		fprintf(stderr, "agentreplay: cannot write standard output: %s\n",
			errno ? strerror(errno) : "write error");
		return rc ? rc : EXIT_USAGE;
	}
	return rc;
}
