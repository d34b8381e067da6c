/* sse: Server-Sent Events push parser (see sse.h for the rules it follows). */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

enum sse_state {
	SSE_OPEN,
	SSE_FAILED,   /* ceiling passed or out of memory */
	SSE_STOPPED,  /* the callback returned non-zero */
	SSE_FINISHED, /* sse_parser_finish was called */
};

struct sse_parser {
	size_t max;        /* ceiling on line.len + data.len + event.len */
	struct buf line;   /* an unterminated line carried over between feeds */
	struct buf data;   /* data of the event being assembled, lines joined by \n */
	struct buf event;  /* its event type */
	struct buf id;     /* last event id (kept across events) */
	size_t n_data;     /* data lines in the event being assembled */
	bool open;         /* a field line arrived since the last blank line */
	bool skip_lf;      /* the previous byte was a CR: an LF right after it is its pair */
	bool bom_done;     /* the BOM question is settled */
	unsigned bom_have; /* BOM bytes matched (and held) so far */
	char bom_held[3];
	uint64_t offset;     /* stream bytes consumed */
	uint64_t line_start; /* stream offset of the first byte of the line in progress */
	uint64_t n_events;
	enum sse_state state;
};

static const unsigned char utf8_bom[3] = {0xEF, 0xBB, 0xBF};

static const char *str_of(const struct buf *b)
{
	return b->data ? b->data : "";
}

/* Bytes held for the event being assembled. Invariant: <= p->max. */
static size_t held(const struct sse_parser *p)
{
	return p->line.len + p->data.len + p->event.len;
}

static int fail_limit(struct sse_parser *p, struct ar_err *err)
{
	p->state = SSE_FAILED;
	return ar_err_set(err, AR_ELIMIT, "SSE event larger than %zu bytes (line at stream byte %llu)", p->max,
			  (unsigned long long)p->line_start);
}

static int fail_nomem(struct sse_parser *p, struct ar_err *err)
{
	p->state = SSE_FAILED;
	return ar_err_set(err, AR_ENOMEM, "out of memory buffering an SSE event (line at stream byte %llu)",
			  (unsigned long long)p->line_start);
}

static int not_open(const struct sse_parser *p, struct ar_err *err)
{
	switch (p->state) {
	case SSE_FAILED:
		return ar_err_set(err, AR_EINVAL, "SSE parser already failed on this stream");
	case SSE_STOPPED:
		return ar_err_set(err, AR_EINVAL, "SSE parser was stopped by its callback");
	case SSE_FINISHED:
		return ar_err_set(err, AR_EINVAL, "SSE stream already finished (reset the parser for a new one)");
	case SSE_OPEN:
		break;
	}
	return ar_err_set(err, AR_EINTERNAL, "SSE parser in an unknown state");
}

struct sse_parser *sse_parser_new(size_t max_event_bytes)
{
	struct sse_parser *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->max = max_event_bytes ? max_event_bytes : SSE_DEFAULT_MAX_EVENT;
	/* Each buffer's own ceiling only backs up the shared budget checked here. */
	buf_init(&p->line, p->max);
	buf_init(&p->data, p->max);
	buf_init(&p->event, p->max);
	buf_init(&p->id, p->max);
	p->state = SSE_OPEN;
	return p;
}

void sse_parser_free(struct sse_parser *p)
{
	if (!p)
		return;
	buf_free(&p->line);
	buf_free(&p->data);
	buf_free(&p->event);
	buf_free(&p->id);
	free(p);
}

void sse_parser_reset(struct sse_parser *p)
{
	if (!p)
		return;
	buf_reset(&p->line);
	buf_reset(&p->data);
	buf_reset(&p->event);
	buf_reset(&p->id);
	p->n_data = 0;
	p->open = false;
	p->skip_lf = false;
	p->bom_done = false;
	p->bom_have = 0;
	p->offset = 0;
	p->line_start = 0;
	p->n_events = 0;
	p->state = SSE_OPEN;
}

/* A blank line: dispatch the event being assembled, if it has data. */
static int dispatch(struct sse_parser *p, sse_event_fn cb, void *ud)
{
	p->open = false;
	if (p->n_data == 0) {
		buf_reset(&p->event);
		return 0;
	}
	struct sse_event ev = {
		.event = str_of(&p->event),
		.data = str_of(&p->data),
		.data_len = p->data.len,
		.id = str_of(&p->id),
		.comment = false,
	};
	p->n_events++;
	int rc = cb ? cb(ud, &ev) : 0;
	buf_reset(&p->data);
	buf_reset(&p->event);
	p->n_data = 0;
	if (rc)
		p->state = SSE_STOPPED;
	return rc;
}

/* A ':' line: text is what follows the colon (n bytes). It must be followed
 * by a NUL: when it lies in the caller's chunk it is copied to p->line first
 * (which is empty then, and is reset by the caller after the line). */
static int comment(struct sse_parser *p, const char *line, size_t n, sse_event_fn cb, void *ud,
		   struct ar_err *err)
{
	if (!cb)
		return 0;
	const char *text = line + 1;
	if (line != p->line.data) {
		if (buf_append(&p->line, text, n) < 0)
			return fail_nomem(p, err);
		text = p->line.data;
	}
	struct sse_event ev = {.event = "", .data = text, .data_len = n, .id = str_of(&p->id), .comment = true};
	int rc = cb(ud, &ev);
	if (rc)
		p->state = SSE_STOPPED;
	return rc;
}

static bool field_is(const char *f, size_t n, const char *name)
{
	return strlen(name) == n && !memcmp(f, name, n);
}

/* One complete line (without its terminator). at_eof: the stream ended
 * without terminating it, so it may add to the open event but neither
 * dispatch nor deliver a comment. */
static int process_line(struct sse_parser *p, const char *line, size_t n, sse_event_fn cb, void *ud, bool at_eof,
			struct ar_err *err)
{
	if (n == 0)
		return at_eof ? 0 : dispatch(p, cb, ud);
	if (line[0] == ':')
		return at_eof ? 0 : comment(p, line, n - 1, cb, ud, err);
	p->open = true;
	const char *colon = memchr(line, ':', n);
	size_t flen = colon ? (size_t)(colon - line) : n;
	const char *v = colon ? colon + 1 : line + n;
	size_t vlen = colon ? n - flen - 1 : 0;
	if (vlen && *v == ' ') {
		v++;
		vlen--;
	}
	if (field_is(line, flen, "data")) {
		/* After this line the line buffer is released: what stays is data + event. */
		size_t need = vlen + (p->n_data ? 1 : 0);
		if (need > p->max - p->data.len - p->event.len)
			return fail_limit(p, err);
		if ((p->n_data && buf_putc(&p->data, '\n') < 0) || buf_append(&p->data, v, vlen) < 0)
			return fail_nomem(p, err);
		p->n_data++;
	} else if (field_is(line, flen, "event")) {
		if (vlen > p->max - p->data.len)
			return fail_limit(p, err);
		buf_reset(&p->event);
		if (buf_append(&p->event, v, vlen) < 0)
			return fail_nomem(p, err);
	} else if (field_is(line, flen, "id")) {
		if (!memchr(v, '\0', vlen)) {
			buf_reset(&p->id);
			if (buf_append(&p->id, v, vlen) < 0)
				return fail_nomem(p, err);
		}
	}
	/* "retry" (reconnection time) and unknown fields: ignored. */
	return 0;
}

/* Splits s[0..n) into lines, carrying an unterminated tail in p->line. A line
 * that lies whole inside s is parsed in place (no copy). */
static int scan(struct sse_parser *p, const char *s, size_t n, sse_event_fn cb, void *ud, struct ar_err *err)
{
	size_t i = 0;
	if (n && p->skip_lf) {
		p->skip_lf = false;
		if (s[0] == '\n') {
			i = 1;
			p->offset++;
			p->line_start = p->offset;
		}
	}
	while (i < n) {
		size_t j = i;
		while (j < n && s[j] != '\n' && s[j] != '\r')
			j++;
		size_t frag = j - i;
		if (frag > p->max - held(p))
			return fail_limit(p, err);
		if (j == n) { /* no terminator yet: keep the tail for the next feed */
			if (buf_append(&p->line, s + i, frag) < 0)
				return fail_nomem(p, err);
			p->offset += frag;
			return 0;
		}
		const char *line = s + i;
		size_t len = frag;
		if (p->line.len) {
			if (buf_append(&p->line, s + i, frag) < 0)
				return fail_nomem(p, err);
			line = p->line.data;
			len = p->line.len;
		}
		size_t next = j + 1;
		if (s[j] == '\r') {
			if (next < n) {
				if (s[next] == '\n')
					next++;
			} else {
				p->skip_lf = true; /* the LF of a CRLF may come in the next chunk */
			}
		}
		p->offset += next - i;
		int rc = process_line(p, line, len, cb, ud, false, err);
		buf_reset(&p->line);
		p->line_start = p->offset;
		if (rc)
			return rc;
		i = next;
	}
	return 0;
}

int sse_parser_feed(struct sse_parser *p, const char *data, size_t len, sse_event_fn cb, void *ud,
		    struct ar_err *err)
{
	if (!p)
		return ar_err_set(err, AR_EINVAL, "no SSE parser");
	if (p->state != SSE_OPEN)
		return not_open(p, err);
	if (len && !data)
		return ar_err_set(err, AR_EINVAL, "SSE feed of %zu bytes from a NULL pointer", len);
	if (!p->bom_done) {
		size_t i = 0;
		while (i < len && p->bom_have < 3 && (unsigned char)data[i] == utf8_bom[p->bom_have])
			p->bom_held[p->bom_have++] = data[i++];
		if (p->bom_have == 3) {
			p->bom_done = true;
			p->bom_have = 0;
			p->offset = p->line_start = 3;
		} else if (i == len) {
			return 0; /* a BOM prefix so far: undecided */
		} else {
			/* not a BOM: what was held is ordinary stream content */
			p->bom_done = true;
			unsigned h = p->bom_have;
			p->bom_have = 0;
			int rc = scan(p, p->bom_held, h, cb, ud, err);
			if (rc)
				return rc;
		}
		data += i;
		len -= i;
	}
	return scan(p, data, len, cb, ud, err);
}

int sse_parser_finish(struct sse_parser *p, sse_event_fn cb, void *ud, bool *truncated, struct ar_err *err)
{
	if (truncated)
		*truncated = false;
	if (!p)
		return ar_err_set(err, AR_EINVAL, "no SSE parser");
	if (p->state != SSE_OPEN)
		return not_open(p, err);
	if (!p->bom_done) {
		p->bom_done = true;
		unsigned h = p->bom_have;
		p->bom_have = 0;
		int rc = scan(p, p->bom_held, h, cb, ud, err);
		if (rc)
			return rc;
	}
	if (p->line.len) {
		/* An unterminated last line: it may add to the open event (kept as
		 * evidence), but per the spec nothing is dispatched from it. */
		int rc = process_line(p, p->line.data, p->line.len, cb, ud, true, err);
		buf_reset(&p->line);
		if (rc)
			return rc;
	}
	p->state = SSE_FINISHED;
	if (truncated)
		*truncated = p->open;
	return 0;
}

const char *sse_parser_pending(const struct sse_parser *p, size_t *len)
{
	if (len)
		*len = p ? p->data.len : 0;
	return p ? str_of(&p->data) : "";
}

uint64_t sse_parser_events(const struct sse_parser *p)
{
	return p ? p->n_events : 0;
}

uint64_t sse_parser_offset(const struct sse_parser *p)
{
	return p ? p->offset : 0;
}

size_t sse_parser_footprint(const struct sse_parser *p)
{
	if (!p)
		return 0;
	return sizeof *p + p->line.cap + p->data.cap + p->event.cap + p->id.cap;
}
