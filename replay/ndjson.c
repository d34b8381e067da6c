/* ndjson: newline-delimited JSON line splitter (see ndjson.h). */
#include "ndjson.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

enum ndjson_state {
	NDJSON_OPEN,
	NDJSON_FAILED,
	NDJSON_STOPPED,
	NDJSON_FINISHED,
};

struct ndjson_parser {
	size_t max;          /* ceiling on a line, terminator excluded */
	struct buf line;     /* the line in progress (may end in the CR of a CRLF) */
	uint64_t lines_done; /* lines completed so far, blank ones included */
	uint64_t offset;     /* stream bytes consumed */
	enum ndjson_state state;
};

static int not_open(const struct ndjson_parser *p, struct ar_err *err)
{
	switch (p->state) {
	case NDJSON_FAILED:
		return ar_err_set(err, AR_EINVAL, "NDJSON parser already failed on this stream");
	case NDJSON_STOPPED:
		return ar_err_set(err, AR_EINVAL, "NDJSON parser was stopped by its callback");
	case NDJSON_FINISHED:
		return ar_err_set(err, AR_EINVAL, "NDJSON stream already finished (reset the parser for a new one)");
	case NDJSON_OPEN:
		break;
	}
	return ar_err_set(err, AR_EINTERNAL, "NDJSON parser in an unknown state");
}

static int fail_limit(struct ndjson_parser *p, struct ar_err *err)
{
	p->state = NDJSON_FAILED;
	return ar_err_set(err, AR_ELIMIT, "NDJSON line larger than %zu bytes (line %llu)", p->max,
			  (unsigned long long)(p->lines_done + 1));
}

static int fail_nomem(struct ndjson_parser *p, struct ar_err *err)
{
	p->state = NDJSON_FAILED;
	return ar_err_set(err, AR_ENOMEM, "out of memory buffering NDJSON line %llu",
			  (unsigned long long)(p->lines_done + 1));
}

struct ndjson_parser *ndjson_parser_new(size_t max_line)
{
	struct ndjson_parser *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->max = max_line ? max_line : NDJSON_DEFAULT_MAX_LINE;
	if (p->max > SIZE_MAX / 4)
		p->max = SIZE_MAX / 4;
	buf_init(&p->line, p->max + 1); /* + the CR of a CRLF split from its LF */
	p->state = NDJSON_OPEN;
	return p;
}

void ndjson_parser_free(struct ndjson_parser *p)
{
	if (!p)
		return;
	buf_free(&p->line);
	free(p);
}

void ndjson_parser_reset(struct ndjson_parser *p)
{
	if (!p)
		return;
	buf_reset(&p->line);
	p->lines_done = 0;
	p->offset = 0;
	p->state = NDJSON_OPEN;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* Hands the completed line in p->line to the callback (CR of a CRLF, or a CR
 * at the end of the stream, removed) and starts the next one. */
static int deliver(struct ndjson_parser *p, ndjson_line_fn cb, void *ud, struct ar_err *err)
{
	if (p->line.len && p->line.data[p->line.len - 1] == '\r') {
		p->line.len--;
		p->line.data[p->line.len] = '\0';
	}
	if (p->line.len > p->max) /* cannot happen: appends are checked; kept as a guard */
		return fail_limit(p, err);
	int rc = 0;
	if (cb && !blank(p->line.data ? p->line.data : "", p->line.len))
		rc = cb(ud, p->line.data, p->line.len);
	buf_reset(&p->line);
	p->lines_done++;
	if (rc)
		p->state = NDJSON_STOPPED;
	return rc;
}

int ndjson_parser_feed(struct ndjson_parser *p, const char *data, size_t len, ndjson_line_fn cb, void *ud,
		       struct ar_err *err)
{
	if (!p)
		return ar_err_set(err, AR_EINVAL, "no NDJSON parser");
	if (p->state != NDJSON_OPEN)
		return not_open(p, err);
	if (len && !data)
		return ar_err_set(err, AR_EINVAL, "NDJSON feed of %zu bytes from a NULL pointer", len);
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(data + i, '\n', len - i);
		size_t frag = nl ? (size_t)(nl - (data + i)) : len - i;
		/* The line may reach max + 1 bytes only while its last byte is a
		 * CR that the next byte (an LF) will turn into a terminator. */
		size_t total = p->line.len + frag;
		if (total > p->max) {
			char last = frag ? data[i + frag - 1] : p->line.data[p->line.len - 1];
			if (total > p->max + 1 || last != '\r')
				return fail_limit(p, err);
		}
		if (buf_append(&p->line, data + i, frag) < 0)
			return fail_nomem(p, err);
		if (!nl) {
			p->offset += frag;
			return 0;
		}
		p->offset += frag + 1;
		i += frag + 1;
		int rc = deliver(p, cb, ud, err);
		if (rc)
			return rc;
	}
	return 0;
}

int ndjson_parser_finish(struct ndjson_parser *p, ndjson_line_fn cb, void *ud, bool *unterminated,
			 struct ar_err *err)
{
	if (unterminated)
		*unterminated = false;
	if (!p)
		return ar_err_set(err, AR_EINVAL, "no NDJSON parser");
	if (p->state != NDJSON_OPEN)
		return not_open(p, err);
	p->state = NDJSON_FINISHED;
	if (p->line.len == 0)
		return 0;
	bool real = !blank(p->line.data, p->line.len);
	int rc = deliver(p, cb, ud, err); /* a stop leaves the state NDJSON_STOPPED */
	if (unterminated)
		*unterminated = real;
	return rc;
}

uint64_t ndjson_parser_line(const struct ndjson_parser *p)
{
	return p ? p->lines_done + 1 : 0;
}

uint64_t ndjson_parser_offset(const struct ndjson_parser *p)
{
	return p ? p->offset : 0;
}

size_t ndjson_parser_footprint(const struct ndjson_parser *p)
{
	return p ? sizeof *p + p->line.cap : 0;
}
