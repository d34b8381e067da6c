/* agentreplay record: a recording proxy between a live agent and its LLM API
 * (replay/record.h), writing agentreplay-trace/1 and a request log. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "record.h"
#include "redact.h"
#include "units.h"

enum { O_UPSTREAM = 1, O_LISTEN, O_OUT, O_LOG, O_NO_REDACT, O_RULES, O_PORT_FILE, O_QUIET, O_MAX_BODY };

static const struct cli_opt record_opts_tab[] = {
	{"upstream", 0, "URL", "the real API's origin, e.g. https://api.openai.com or http://127.0.0.1:8080 (required)",
	 O_UPSTREAM},
	{"listen", 0, "ADDR:PORT", "where the agent connects (default 127.0.0.1:8765; PORT 0 = any free port)", O_LISTEN},
	{"output", 'o', "FILE", "the trace to write (agentreplay-trace/1, written in place, .zst compresses) (required)",
	 O_OUT},
	{"log", 0, "FILE", "also append one JSON line per API call (the openai-log format) to FILE", O_LOG},
	{"no-redact", 0, NULL, "write secrets as they are (redaction is on by default)", O_NO_REDACT},
	{"redact-rules", 0, "FILE", "more redaction rules after the shipped ones (repeatable; see README)", O_RULES},
	{"port-file", 0, "FILE", "write the port to FILE once listening (for scripts)", O_PORT_FILE},
	{"max-body", 0, "SIZE", "largest request body accepted (default 64MiB)", O_MAX_BODY},
	{"quiet", 'q', NULL, "print nothing per call", O_QUIET},
	{0},
};

#define MAX_RULE_FILES 16

struct record_cfg {
	const char *upstream, *out, *log, *port_file;
	char host[64];
	int port;
	bool no_redact, quiet, started;
	const char *rules[MAX_RULE_FILES];
	size_t n_rules;
	uint64_t max_body;
};

static int parse_listen(struct record_cfg *c, const char *val, struct ar_err *err)
{
	const char *colon = strrchr(val, ':');
	const char *port = colon ? colon + 1 : val;
	if (colon) {
		size_t n = (size_t)(colon - val);
		if (n >= sizeof c->host)
			return ar_err_set(err, AR_EINVAL, "'%s': address too long", val);
		if (n) {
			memcpy(c->host, val, n);
			c->host[n] = '\0';
		}
	}
	char *end;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535)
		return ar_err_set(err, AR_EINVAL, "'%s': expected ADDR:PORT with PORT 0..65535", val);
	c->port = (int)p;
	return 0;
}

static int record_opt(void *ctx, int id, const char *val, struct ar_err *err)
{
	struct record_cfg *c = ctx;
	switch (id) {
	case O_UPSTREAM: c->upstream = val; break;
	case O_LISTEN: return parse_listen(c, val, err);
	case O_OUT: c->out = val; break;
	case O_LOG: c->log = val; break;
	case O_NO_REDACT: c->no_redact = true; break;
	case O_RULES:
		if (c->n_rules == MAX_RULE_FILES)
			return ar_err_set(err, AR_EINVAL, "at most %d --redact-rules files", MAX_RULE_FILES);
		c->rules[c->n_rules++] = val;
		break;
	case O_PORT_FILE: c->port_file = val; break;
	case O_QUIET: c->quiet = true; break;
	case O_MAX_BODY:
		if (units_parse_bytes(val, &c->max_body, err) < 0)
			return -1;
		if (c->max_body < 1024 || c->max_body > (1ull << 32))
			return ar_err_set(err, AR_EINVAL, "--max-body '%s' is out of range (1KiB to 4GiB)", val);
		break;
	}
	return 0;
}

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
	stop_flag = 1;
}

static void on_ready(void *ctx, int port)
{
	struct record_cfg *c = ctx;
	c->started = true;
	if (!c->quiet)
		fprintf(stderr,
			"agentreplay record: listening on http://%s:%d -> %s\n"
			"  point the agent's base URL here (OpenAI: http://%s:%d/v1, Anthropic: http://%s:%d);"
			" Ctrl-C ends the recording\n",
			c->host, port, c->upstream, c->host, port, c->host, port);
	if (c->port_file) {
		char tmp[4200];
		snprintf(tmp, sizeof tmp, "%s.tmp", c->port_file);
		FILE *f = fopen(tmp, "w");
		if (f) {
			fprintf(f, "%d\n", port);
			if (fclose(f) == 0)
				rename(tmp, c->port_file);
		}
	}
}

static void on_note(void *ctx, const char *line)
{
	const struct record_cfg *c = ctx;
	if (!c->quiet)
		fprintf(stderr, "%s\n", line);
}

static int record_main(int argc, char **argv);

const struct cli_cmd cmd_record = {
	.name = "record",
	.summary = "record a live agent through a proxy into a trace",
	.usage = "record --upstream URL [--listen 127.0.0.1:PORT] -o FILE [--log FILE] [--no-redact] "
		 "[--redact-rules FILE]",
	.description =
		"A transparent proxy for the OpenAI chat completions API (/v1/chat/completions) and the\n"
		"Anthropic messages API (/v1/messages), streamed or not; other paths (/v1/models, ...) are\n"
		"passed through. Point the agent's base URL at it: answers stream back as they arrive.\n"
		"Each API call becomes one turn of FILE (agentreplay-trace/1, flushed per turn, so a\n"
		"killed recorder leaves a valid trace): appended messages are the difference from the\n"
		"previous request (keep when the agent rewrote history; a new session when the system\n"
		"prompt or tools change), with the response, recorded usage and timings. Credentials in\n"
		"headers are forwarded upstream and never written; secrets in bodies are redacted with\n"
		"same-length placeholders (src/rules/redact.rules plus --redact-rules files). An\n"
		"unreachable upstream gets the agent a 502 and the proxy keeps running.\n"
		"Listens on 127.0.0.1 unless --listen says otherwise. Exit: 130 after Ctrl-C, 0 after\n"
		"SIGTERM, 2 for bad options or an output that cannot be written.",
	.opts = record_opts_tab,
	.run = record_main,
};

static int record_main(int argc, char **argv)
{
	struct record_cfg c = {0};
	snprintf(c.host, sizeof c.host, "127.0.0.1");
	c.port = 8765;
	int npos = 0;
	int pr = cli_parse(&cmd_record, argc, argv, record_opt, &c, &npos);
	if (pr != 0)
		return pr > 0 ? EXIT_OK : EXIT_USAGE;
	if (npos) {
		cli_error("record takes no positional arguments ('%s')", argv[0]);
		return EXIT_USAGE;
	}
	if (!c.upstream || !c.out) {
		cli_error("record needs --upstream URL and -o FILE (see 'agentreplay record --help')");
		return EXIT_USAGE;
	}
	struct ar_err err = {0};
	struct redact *rd = NULL;
	if (!c.no_redact && redact_new(&rd, c.rules, c.n_rules, 0, &err) < 0) {
		cli_error_err(&err);
		return EXIT_USAGE;
	}
	if (c.no_redact && c.n_rules) {
		cli_error("--no-redact and --redact-rules contradict each other");
		return EXIT_USAGE;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct record_opts o = {
		.upstream = c.upstream,
		.host = c.host,
		.port = c.port,
		.trace_path = c.out,
		.log_path = c.log,
		.redact = rd,
		.max_body = (size_t)c.max_body,
		.ready = on_ready,
		.note = on_note,
		.ctx = &c,
		.stop = &stop_flag,
	};
	struct record_stats st;
	int rc = record_run(&o, &st, &err);
	if (rc < 0)
		cli_error_err(&err);
	if (c.started && (!c.quiet || rc < 0)) {
		fprintf(stderr,
			"agentreplay record: %lld requests, %lld API calls recorded (%lld failed, %lld upstream "
			"unreachable), %lld turns in %lld sessions (%lld subagents) -> %s\n",
			(long long)st.requests, (long long)st.recorded, (long long)st.failed, (long long)st.refused,
			(long long)st.turns, (long long)st.sessions, (long long)st.children,
			st.sessions ? c.out : "nothing recorded, no trace written");
		if (st.unparsed || st.orphans || st.dropped)
			fprintf(stderr, "  %lld bodies not chat requests (logged only), %lld tool results for unknown calls "
					"(kept as user messages), %lld parts without a trace form (images, thinking, server "
					"tools) dropped\n",
				(long long)st.unparsed, (long long)st.orphans, (long long)st.dropped);
		if (st.not_utf8)
			fprintf(stderr, "  %lld bytes in bodies were not UTF-8 (replaced by U+FFFD in the log and trace)\n",
				(long long)st.not_utf8);
		if (rd) {
			fprintf(stderr, "  redacted %lld secrets", (long long)st.redacted);
			const char *sep = ": ";
			for (size_t i = 0; i < redact_n_kinds(rd); i++)
				if (redact_hits(rd, i)) {
					fprintf(stderr, "%s%s %lld", sep, redact_kind(rd, i), (long long)redact_hits(rd, i));
					sep = ", ";
				}
			fprintf(stderr, "\n");
		} else {
			fprintf(stderr, "  redaction off (--no-redact)\n");
		}
	}
	redact_free(rd);
	if (rc < 0)
		return EXIT_USAGE;
	return stop_sig == SIGINT ? EXIT_INTERRUPTED : EXIT_OK;
}
