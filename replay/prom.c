/* prom: Prometheus text exposition format 0.0.4 parser (see prom.h). */
#include "prom.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "utf8.h"

struct prom_set {
	struct prom_sample *samples;
	size_t n;
	struct prom_label *labels;
	char *pool; /* every string, NUL-separated */
};

/* While parsing, strings live in a growing pool, so samples refer to them by
 * offset; prom_parse turns offsets into pointers once the pool is final. */
struct raw_label {
	size_t name, value;
};

struct raw_sample {
	size_t name;
	size_t first_label, n_labels;
	double value;
	bool has_ts;
	int64_t ts;
	size_t line;
};

struct parse {
	struct buf pool;
	struct buf samples; /* struct raw_sample[] */
	struct buf labels;  /* struct raw_label[] */
	size_t line_no;
	const char *line; /* the line being parsed, and its length */
	size_t line_len;
	struct ar_err *err;
};

/* Writes up to 48 bytes of s[0..n) as a quoted excerpt, non-printable bytes
 * as \xNN, so an error can show what the body held (an HTML page, binary). */
static void excerpt(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	const size_t lim = 48;
	for (size_t i = 0; i < n && i < lim && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	if (n > lim && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static int bad(struct parse *ps, const char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "metrics line N: <what> at column C (line: "...")". */
static int bad(struct parse *ps, const char *at, const char *fmt, ...)
{
	char what[256], ex[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	excerpt(ex, sizeof ex, ps->line, ps->line_len);
	return ar_err_set(ps->err, AR_EFORMAT, "metrics line %zu: %s at column %zu (line: \"%s\")", ps->line_no, what,
			  (size_t)(at - ps->line) + 1, ex);
}

static int nomem(struct parse *ps)
{
	return ar_err_set(ps->err, AR_ENOMEM, "out of memory parsing metrics line %zu", ps->line_no);
}

/* Describes the byte at p (or the end of the line) for messages. */
static const char *what_is(const char *p, const char *end, char *tmp, size_t cap)
{
	if (p >= end)
		return "the end of the line";
	unsigned char c = (unsigned char)*p;
	if (c >= 0x20 && c < 0x7f)
		snprintf(tmp, cap, "'%c'", c);
	else
		snprintf(tmp, cap, "byte 0x%02x", c);
	return tmp;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && is_blank(*p))
		p++;
	return p;
}

static bool name_start(char c, bool colon_ok)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
}

static bool name_char(char c, bool colon_ok)
{
	return name_start(c, colon_ok) || (c >= '0' && c <= '9');
}

/* Length of the metric (colon_ok) or label name at p; 0 when there is none. */
static size_t name_len(const char *p, const char *end, bool colon_ok)
{
	if (p >= end || !name_start(*p, colon_ok))
		return 0;
	const char *q = p + 1;
	while (q < end && name_char(*q, colon_ok))
		q++;
	return (size_t)(q - p);
}

/* Adds s[0..n) plus a NUL to the pool; *off receives its offset. */
static int intern(struct parse *ps, const char *s, size_t n, size_t *off)
{
	*off = ps->pool.len;
	if (buf_append(&ps->pool, s, n) < 0 || buf_putc(&ps->pool, '\0') < 0)
		return nomem(ps);
	return 0;
}

/* "# HELP name text" / "# TYPE name type"; anything else after '#' is a
 * comment. p points just past the '#'. */
static int comment_line(struct parse *ps, const char *p, const char *end)
{
	p = skip_blanks(p, end);
	const char *kw = p;
	while (p < end && !is_blank(*p))
		p++;
	size_t kwl = (size_t)(p - kw);
	bool help = kwl == 4 && !memcmp(kw, "HELP", 4);
	bool type = kwl == 4 && !memcmp(kw, "TYPE", 4);
	if (!help && !type)
		return 0;
	p = skip_blanks(p, end);
	size_t nl = name_len(p, end, true);
	char tmp[32];
	if (!nl)
		return bad(ps, p, "'# %s' needs a metric name, got %s", help ? "HELP" : "TYPE",
			   what_is(p, end, tmp, sizeof tmp));
	p += nl;
	if (help) /* the docstring is free text */
		return 0;
	if (p < end && !is_blank(*p))
		return bad(ps, p, "unexpected %s in the metric name of '# TYPE'", what_is(p, end, tmp, sizeof tmp));
	p = skip_blanks(p, end);
	const char *t = p;
	while (p < end && *p >= 'a' && *p <= 'z')
		p++;
	if (p == t)
		return bad(ps, p, "'# TYPE' needs a type (counter, gauge, histogram, summary, untyped), got %s",
			   what_is(p, end, tmp, sizeof tmp));
	p = skip_blanks(p, end);
	if (p < end)
		return bad(ps, p, "unexpected %s after the type in '# TYPE'", what_is(p, end, tmp, sizeof tmp));
	return 0;
}

/* A label value: p points just past the opening quote. On success *pp points
 * past the closing quote and *off is the unescaped value in the pool. */
static int label_value(struct parse *ps, const char **pp, const char *end, size_t *off)
{
	const char *p = *pp;
	*off = ps->pool.len;
	for (;;) {
		const char *q = p;
		while (q < end && *q != '"' && *q != '\\')
			q++;
		if (buf_append(&ps->pool, p, (size_t)(q - p)) < 0)
			return nomem(ps);
		if (q >= end)
			return bad(ps, q, "unterminated label value (no closing '\"')");
		if (*q == '"') {
			p = q + 1;
			break;
		}
		if (q + 1 >= end)
			return bad(ps, q, "unterminated label value (line ends in an escape)");
		char c = q[1];
		if (c == '\\' || c == '"') {
			if (buf_putc(&ps->pool, c) < 0)
				return nomem(ps);
		} else if (c == 'n') {
			if (buf_putc(&ps->pool, '\n') < 0)
				return nomem(ps);
		} else {
			char tmp[32];
			return bad(ps, q, "invalid escape '\\' + %s in a label value (only \\\\, \\\" and \\n)",
				   what_is(q + 1, end, tmp, sizeof tmp));
		}
		p = q + 2;
	}
	size_t vlen = ps->pool.len - *off;
	size_t badat = utf8_check(ps->pool.data ? ps->pool.data + *off : "", vlen);
	if (badat != vlen)
		return bad(ps, *pp, "label value is not valid UTF-8 (byte %zu of the value)", badat + 1);
	if (buf_putc(&ps->pool, '\0') < 0)
		return nomem(ps);
	*pp = p;
	return 0;
}

/* {name="value",...}: p points at '{'. */
static int label_set(struct parse *ps, const char **pp, const char *end, struct raw_sample *s)
{
	const char *p = *pp + 1;
	char tmp[32];
	s->first_label = ps->labels.len / sizeof(struct raw_label);
	for (;;) {
		p = skip_blanks(p, end);
		if (p < end && *p == '}') {
			p++;
			break;
		}
		size_t nl = name_len(p, end, false);
		if (!nl)
			return bad(ps, p, "expected a label name or '}', got %s", what_is(p, end, tmp, sizeof tmp));
		struct raw_label l;
		const char *lname = p;
		if (intern(ps, p, nl, &l.name) < 0)
			return -1;
		p = skip_blanks(p + nl, end);
		if (p >= end || *p != '=')
			return bad(ps, p, "expected '=' after label name '%.*s', got %s", (int)nl, lname,
				   what_is(p, end, tmp, sizeof tmp));
		p = skip_blanks(p + 1, end);
		if (p >= end || *p != '"')
			return bad(ps, p, "expected '\"' to open the value of label '%.*s', got %s", (int)nl, lname,
				   what_is(p, end, tmp, sizeof tmp));
		p++;
		if (label_value(ps, &p, end, &l.value) < 0)
			return -1;
		/* duplicate label names make a sample ambiguous */
		const struct raw_label *prev = (const struct raw_label *)(void *)ps->labels.data;
		for (size_t k = s->first_label; k < s->first_label + s->n_labels; k++)
			if (!strcmp(ps->pool.data + prev[k].name, ps->pool.data + l.name))
				return bad(ps, lname, "duplicate label name '%.*s'", (int)nl, lname);
		if (buf_append(&ps->labels, &l, sizeof l) < 0)
			return nomem(ps);
		s->n_labels++;
		p = skip_blanks(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}') {
			p++;
			break;
		}
		return bad(ps, p, "expected ',' or '}' after the value of label '%.*s', got %s", (int)nl, lname,
			   what_is(p, end, tmp, sizeof tmp));
	}
	*pp = p;
	return 0;
}

static bool ieq(const char *s, size_t n, const char *lit)
{
	if (strlen(lit) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lit[i])
			return false;
	}
	return true;
}

/* A sample value: a decimal float (what Go's ParseFloat and Python's repr
 * print, without hex), NaN, or +/-Inf in any letter case. */
static int parse_value(struct parse *ps, const char *tok, size_t n, double *out)
{
	const char *body = tok;
	size_t bn = n;
	if (bn && (*body == '+' || *body == '-')) {
		body++;
		bn--;
	}
	if (ieq(body, bn, "inf") || ieq(body, bn, "infinity")) {
		*out = *tok == '-' ? -INFINITY : INFINITY;
		return 0;
	}
	if (ieq(tok, n, "nan")) {
		*out = NAN;
		return 0;
	}
	bool digit = false, other = false;
	for (size_t i = 0; i < n; i++) {
		char c = tok[i];
		if (c >= '0' && c <= '9')
			digit = true;
		else if (c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-')
			other = true; /* hex, words, junk: strtod would take some, the format does not */
	}
	char tmp[128];
	if (!digit || other || n >= sizeof tmp)
		return bad(ps, tok, "bad sample value '%.*s'", (int)(n > 40 ? 40 : n), tok);
	memcpy(tmp, tok, n);
	tmp[n] = '\0';
	char *e;
	errno = 0;
	double v = strtod(tmp, &e);
	if (e != tmp + n)
		return bad(ps, tok, "bad sample value '%s'", tmp);
	/* ERANGE: overflow gives +/-HUGE_VAL (= Inf), underflow a tiny number:
	 * both are what the exporter meant as closely as a double can say. */
	*out = v;
	return 0;
}

static int parse_timestamp(struct parse *ps, const char *tok, size_t n, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (n && tok[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == n)
		return bad(ps, tok, "bad timestamp '%.*s' (expected integer milliseconds)", (int)(n > 40 ? 40 : n), tok);
	uint64_t v = 0;
	for (; i < n; i++) {
		if (tok[i] < '0' || tok[i] > '9')
			return bad(ps, tok, "bad timestamp '%.*s' (expected integer milliseconds)",
				   (int)(n > 40 ? 40 : n), tok);
		unsigned d = (unsigned)(tok[i] - '0');
		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return bad(ps, tok, "timestamp '%.*s' out of range", (int)(n > 40 ? 40 : n), tok);
		v = v * 10 + d;
	}
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

static int sample_line(struct parse *ps, const char *p, const char *end)
{
	char tmp[32];
	struct raw_sample s = {0};
	s.line = ps->line_no;
	size_t nl = name_len(p, end, true);
	if (!nl)
		return bad(ps, p, "expected a metric name, got %s", what_is(p, end, tmp, sizeof tmp));
	const char *name = p;
	if (intern(ps, p, nl, &s.name) < 0)
		return -1;
	p += nl;
	if (p < end && !is_blank(*p) && *p != '{')
		return bad(ps, p, "unexpected %s in metric name '%.*s'", what_is(p, end, tmp, sizeof tmp), (int)nl, name);
	p = skip_blanks(p, end); /* "name {a=\"b\"} 1" is allowed, as Prometheus' own parser does */
	if (p < end && *p == '{' && label_set(ps, &p, end, &s) < 0)
		return -1;
	p = skip_blanks(p, end);
	const char *tok = p;
	while (p < end && !is_blank(*p))
		p++;
	if (p == tok)
		return bad(ps, p, "missing the value of '%.*s'", (int)nl, name);
	if (parse_value(ps, tok, (size_t)(p - tok), &s.value) < 0)
		return -1;
	p = skip_blanks(p, end);
	if (p < end) {
		tok = p;
		while (p < end && !is_blank(*p))
			p++;
		if (parse_timestamp(ps, tok, (size_t)(p - tok), &s.ts) < 0)
			return -1;
		s.has_ts = true;
		p = skip_blanks(p, end);
		if (p < end)
			return bad(ps, p, "unexpected %s after the timestamp", what_is(p, end, tmp, sizeof tmp));
	}
	if (buf_append(&ps->samples, &s, sizeof s) < 0)
		return nomem(ps);
	return 0;
}

static int parse_line(struct parse *ps)
{
	const char *p = ps->line, *end = ps->line + ps->line_len;
	if (ps->line_len > PROM_MAX_LINE)
		return ar_err_set(ps->err, AR_ELIMIT, "metrics line %zu: longer than %zu bytes", ps->line_no,
				  PROM_MAX_LINE);
	const char *nul = memchr(p, '\0', ps->line_len);
	if (nul)
		return bad(ps, nul, "NUL byte (not a text body)");
	p = skip_blanks(p, end);
	if (p == end)
		return 0;
	if (*p == '#')
		return comment_line(ps, p + 1, end);
	return sample_line(ps, p, end);
}

/* Turns the offsets of a finished parse into a prom_set. */
static struct prom_set *build(struct parse *ps)
{
	size_t ns = ps->samples.len / sizeof(struct raw_sample);
	size_t nl = ps->labels.len / sizeof(struct raw_label);
	struct prom_set *set = calloc(1, sizeof *set);
	if (!set)
		return NULL;
	set->samples = calloc(ns ? ns : 1, sizeof *set->samples);
	set->labels = calloc(nl ? nl : 1, sizeof *set->labels);
	set->pool = buf_detach(&ps->pool);
	if (!set->samples || !set->labels || !set->pool) {
		prom_set_free(set);
		return NULL;
	}
	const struct raw_label *rl = (const struct raw_label *)(void *)ps->labels.data;
	for (size_t i = 0; i < nl; i++) {
		set->labels[i].name = set->pool + rl[i].name;
		set->labels[i].value = set->pool + rl[i].value;
	}
	const struct raw_sample *rs = (const struct raw_sample *)(void *)ps->samples.data;
	for (size_t i = 0; i < ns; i++) {
		struct prom_sample *o = &set->samples[i];
		o->name = set->pool + rs[i].name;
		o->labels = set->labels + rs[i].first_label;
		o->n_labels = rs[i].n_labels;
		o->value = rs[i].value;
		o->has_timestamp = rs[i].has_ts;
		o->timestamp_ms = rs[i].has_ts ? rs[i].ts : 0;
		o->line = rs[i].line;
	}
	set->n = ns;
	return set;
}

int prom_parse(const char *body, size_t len, struct prom_set **out, struct ar_err *err)
{
	*out = NULL;
	if (len > PROM_MAX_BODY)
		return ar_err_set(err, AR_ELIMIT, "metrics body of %zu bytes is over the %zu-byte limit", len,
				  PROM_MAX_BODY);
	if (len && !body)
		return ar_err_set(err, AR_EINVAL, "metrics body of %zu bytes at a NULL pointer", len);
	struct parse ps = {.err = err};
	/* Ceilings that follow from the body: every string is at most the body's
	 * bytes plus one NUL each; a sample takes >= 3 bytes, a label >= 4. */
	buf_init(&ps.pool, 2 * len + 64);
	buf_init(&ps.samples, (len / 3 + 1) * sizeof(struct raw_sample));
	buf_init(&ps.labels, (len / 4 + 1) * sizeof(struct raw_label));
	int rc = 0;
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(body + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (body + i)) : len - i;
		ps.line_no++;
		ps.line = body + i;
		ps.line_len = n;
		if (n && ps.line[n - 1] == '\r')
			ps.line_len--;
		if ((rc = parse_line(&ps)) < 0)
			goto out;
		i += n + (nl ? 1 : 0);
	}
	*out = build(&ps);
	if (!*out)
		rc = ar_err_set(err, AR_ENOMEM, "out of memory storing %zu metrics samples",
				ps.samples.len / sizeof(struct raw_sample));
out:
	buf_free(&ps.pool);
	buf_free(&ps.samples);
	buf_free(&ps.labels);
	return rc;
}

void prom_set_free(struct prom_set *s)
{
	if (!s)
		return;
	free(s->samples);
	free(s->labels);
	free(s->pool);
	free(s);
}

size_t prom_count(const struct prom_set *s)
{
	return s ? s->n : 0;
}

const struct prom_sample *prom_sample_at(const struct prom_set *s, size_t i)
{
	return s && i < s->n ? &s->samples[i] : NULL;
}

static const char *trim(const char *b, const char **e)
{
	while (b < *e && is_blank(*b))
		b++;
	while (*e > b && is_blank((*e)[-1]))
		(*e)--;
	return b;
}

/* Does sample s carry every key=value pair of m? */
static bool labels_match(const struct prom_sample *s, const char *m)
{
	const char *p = m;
	while (*p) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(end - p));
		if (!eq)
			return false;
		const char *ke = eq;
		const char *k = trim(p, &ke);
		const char *ve = end;
		const char *v = trim(eq + 1, &ve);
		if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
			v++;
			ve--;
		}
		size_t kl = (size_t)(ke - k), vl = (size_t)(ve - v);
		bool found = false;
		for (size_t i = 0; i < s->n_labels && !found; i++)
			found = strlen(s->labels[i].name) == kl && !memcmp(s->labels[i].name, k, kl) &&
				strlen(s->labels[i].value) == vl && !memcmp(s->labels[i].value, v, vl);
		if (!found)
			return false;
		p = *end ? end + 1 : end;
	}
	return true;
}

bool prom_get(const struct prom_set *s, const char *name, const char *label_match, double *out)
{
	if (!s || !name)
		return false;
	for (size_t i = 0; i < s->n; i++) {
		const struct prom_sample *x = &s->samples[i];
		if (strcmp(x->name, name))
			continue;
		if (label_match && *label_match && !labels_match(x, label_match))
			continue;
		if (out)
			*out = x->value;
		return true;
	}
	return false;
}

double prom_sum(const struct prom_set *s, const char *name)
{
	double sum = 0;
	bool any = false;
	if (s && name)
		for (size_t i = 0; i < s->n; i++)
			if (!strcmp(s->samples[i].name, name)) {
				sum += s->samples[i].value;
				any = true;
			}
	return any ? sum : NAN;
}
