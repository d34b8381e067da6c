#include "fs_fault.h"

#include <stdio.h>
#include <string.h>

#include "units.h"

enum arg_policy { ARG_NONE, ARG_REQUIRED, ARG_OPTIONAL };

struct fault_def {
	const char *name;
	enum arg_policy policy;
	uint64_t def;      /* default for ARG_OPTIONAL */
	uint64_t min, max; /* accepted range of ARG */
	const char *usage; /* "NAME[:ARG]" as shown in help */
	const char *help;
};

/* Indexed by enum fs_fault_kind. */
static const struct fault_def defs[FS_F_COUNT] = {
	[FS_F_RESET_BEFORE_HEADERS] = {"reset_before_headers", ARG_NONE, 0, 0, 0,
		"reset_before_headers", "RST (SO_LINGER 0) once the request is read, no byte sent"},
	[FS_F_RESET_MID_HEADERS] = {"reset_mid_headers", ARG_NONE, 0, 0, 0,
		"reset_mid_headers", "write a partial status line and headers, then RST"},
	[FS_F_RESET_MID_STREAM] = {"reset_mid_stream", ARG_OPTIONAL, 1, 0, UINT32_MAX,
		"reset_mid_stream:N", "RST after N tokens (default 1)"},
	[FS_F_CLOSE_MID_STREAM] = {"close_mid_stream", ARG_OPTIONAL, 1, 0, UINT32_MAX,
		"close_mid_stream:N", "clean FIN after N tokens: no final chunk, no [DONE] (default 1)"},
	[FS_F_STALL] = {"stall", ARG_REQUIRED, 0, 0, 86400000,
		"stall:MS", "pause MS ms after the first token"},
	[FS_F_STALL_BEFORE_FIRST] = {"stall_before_first", ARG_REQUIRED, 0, 0, 86400000,
		"stall_before_first:MS", "add MS ms before the first token"},
	[FS_F_SLOW_DRIP] = {"slow_drip", ARG_NONE, 0, 0, 0,
		"slow_drip", "write every event one byte per chunk, 1 ms apart"},
	[FS_F_SPLIT_EVERY_BYTE] = {"split_every_byte", ARG_NONE, 0, 0, 0,
		"split_every_byte", "write every byte as its own chunk, no delay"},
	[FS_F_HTTP_STATUS] = {"http_status", ARG_REQUIRED, 0, 100, 599,
		"http_status:CODE", "answer CODE with the flavor's body (429 adds Retry-After: 2)"},
	[FS_F_OOM] = {"oom", ARG_OPTIONAL, 3, 0, UINT32_MAX,
		"oom[:N]", "allocation failure after N tokens (default 3), the flavor's way"},
	[FS_F_CTX_EXCEEDED_MIDSTREAM] = {"ctx_exceeded_midstream", ARG_OPTIONAL, 5, 0, UINT32_MAX,
		"ctx_exceeded_midstream[:N]", "'Context size has been exceeded.' event after N tokens (default 5)"},
	[FS_F_PEG_ERROR] = {"peg_error", ARG_OPTIONAL, 3, 0, UINT32_MAX,
		"peg_error[:N]", "N deltas (default 3), silence, then the peg-native parse error event"},
	[FS_F_WRONG_CONTENT_TYPE] = {"wrong_content_type", ARG_NONE, 0, 0, 0,
		"wrong_content_type", "SSE bytes with Content-Type: text/html"},
	[FS_F_HTML_404] = {"html_404", ARG_NONE, 0, 0, 0,
		"html_404", "404 with an HTML page, as a static server would"},
	[FS_F_GARBAGE] = {"garbage", ARG_NONE, 0, 0, 0,
		"garbage", "200 text/event-stream carrying random non-SSE bytes"},
	[FS_F_INVALID_UTF8] = {"invalid_utf8", ARG_NONE, 0, 0, 0,
		"invalid_utf8", "every token carries invalid UTF-8 bytes"},
	[FS_F_NO_DONE] = {"no_done", ARG_NONE, 0, 0, 0,
		"no_done", "omit the stream terminator ([DONE], message_stop, done:true, stop:true)"},
	[FS_F_ENDLESS] = {"endless", ARG_NONE, 0, 0, 0,
		"endless", "stream tokens forever, ignoring max_tokens"},
	[FS_F_HUGE_EVENT] = {"huge_event", ARG_REQUIRED, 0, 1, 1u << 20,
		"huge_event:MB", "one data: line of MB MiB without a newline, generated on the fly"},
	[FS_F_IGNORE_MAX_TOKENS] = {"ignore_max_tokens", ARG_REQUIRED, 0, 0, UINT32_MAX,
		"ignore_max_tokens:N", "emit N tokens whatever was asked"},
	[FS_F_STOP_EARLY] = {"stop_early", ARG_REQUIRED, 0, 0, UINT32_MAX,
		"stop_early:N", "finish with reason 'stop' after N tokens"},
	[FS_F_NO_USAGE] = {"no_usage", ARG_NONE, 0, 0, 0,
		"no_usage", "never send usage or timings"},
	[FS_F_PING] = {"ping", ARG_REQUIRED, 0, 1, 86400000,
		"ping:MS", "SSE comment ping after every MS ms of silence"},
	[FS_F_PROMPT_PROGRESS] = {"prompt_progress", ARG_NONE, 0, 0, 0,
		"prompt_progress", "llama-server prompt_progress chunks before the first token"},
	[FS_F_REASONING] = {"reasoning", ARG_OPTIONAL, UINT64_MAX /* half */, 0, UINT32_MAX,
		"reasoning[:N]", "the first N tokens (default half) are reasoning"},
	[FS_F_TOOL_CALL] = {"tool_call", ARG_NONE, 0, 0, 0,
		"tool_call", "the answer is a tool call streamed as argument deltas"},
	[FS_F_ROLE_FIRST] = {"role_first", ARG_NONE, 0, 0, 0,
		"role_first", "send the role-only chunk at once, apart from the first token"},
	[FS_F_EXIT] = {"exit", ARG_REQUIRED, 0, 0, 255,
		"exit:CODE", "the process exits with CODE once the request is read"},
	[FS_F_KILL_AFTER] = {"kill_after", ARG_REQUIRED, 0, 0, UINT32_MAX,
		"kill_after:N", "the process SIGKILLs itself after N tokens"},
};

const char *fs_fault_name(enum fs_fault_kind k)
{
	return (unsigned)k < FS_F_COUNT ? defs[k].name : NULL;
}

const char *fs_fault_help(void)
{
	static char text[4096];
	if (!text[0]) {
		size_t off = 0;
		for (int k = 0; k < FS_F_COUNT && off < sizeof text; k++) {
			int n = snprintf(text + off, sizeof text - off, "  %-28s %s\n", defs[k].usage,
					 defs[k].help);
			if (n < 0)
				break;
			off += (size_t)n;
		}
	}
	return text;
}

int fs_fault_parse(const char *spec, struct fs_fault *out, struct ar_err *err)
{
	char name[FS_SPEC_MAX];
	struct ar_err sub = {0};
	size_t len = strlen(spec);
	if (len == 0 || len >= FS_SPEC_MAX)
		return ar_err_set(err, AR_EINVAL, "fault spec '%s': %s", spec,
				  len ? "too long" : "empty");
	memcpy(name, spec, len + 1);

	char *arg = strchr(name, ':');
	if (arg)
		*arg++ = '\0';
	char *at = strchr(name, '@');
	if (at)
		*at++ = '\0';

	int kind = -1;
	for (int k = 0; k < FS_F_COUNT; k++)
		if (strcmp(defs[k].name, name) == 0)
			kind = k;
	if (kind < 0)
		return ar_err_set(err, AR_EINVAL, "fault spec '%s': unknown fault '%s'", spec, name);
	const struct fault_def *d = &defs[kind];

	memset(out, 0, sizeof *out);
	out->kind = (enum fs_fault_kind)kind;
	memcpy(out->spec, spec, len + 1);
	if (at) {
		if (units_parse_count(at, &out->at, &sub) < 0 || out->at == 0)
			return ar_err_set(err, AR_EINVAL,
					  "fault spec '%s': request number '%s' must be 1 or more",
					  spec, at);
	}
	if (arg) {
		if (d->policy == ARG_NONE)
			return ar_err_set(err, AR_EINVAL, "fault spec '%s': '%s' takes no argument",
					  spec, d->name);
		if (units_parse_count(arg, &out->arg, &sub) < 0)
			return ar_err_set(err, AR_EINVAL, "fault spec '%s': %s", spec, sub.msg);
		if (out->arg < d->min || out->arg > d->max)
			return ar_err_set(err, AR_EINVAL,
					  "fault spec '%s': argument %llu is outside %llu..%llu", spec,
					  (unsigned long long)out->arg, (unsigned long long)d->min,
					  (unsigned long long)d->max);
	} else if (d->policy == ARG_REQUIRED) {
		return ar_err_set(err, AR_EINVAL, "fault spec '%s': missing argument (%s)", spec,
				  d->usage);
	} else {
		out->arg = d->def;
	}
	return 0;
}

void fs_faults_select(const struct fs_fault *list, size_t n, uint64_t req, struct fs_active *out)
{
	memset(out, 0, sizeof *out);
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		const struct fs_fault *f = &list[i];
		if (f->at != 0 && f->at != req)
			continue;
		out->mask |= (uint64_t)1 << f->kind;
		out->arg[f->kind] = f->arg;
		int w = snprintf(out->desc + off, sizeof out->desc - off, "%s%s", off ? "," : "",
				 f->spec);
		if (w > 0 && (size_t)w < sizeof out->desc - off)
			off += (size_t)w;
	}
}
