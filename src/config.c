#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "buf.h"

#define CONFIG_MAX_DEPTH 64
#define CONFIG_MAX_BYTES (64u << 20)

struct line_slot {
	const cJSON *node;
	int line;
};

struct config_doc {
	char *name;
	cJSON *root;
	struct line_slot *lines;
	size_t cap, n;
};

static size_t ptr_hash(const void *p, size_t cap)
{
	uintptr_t x = (uintptr_t)p;
	x ^= x >> 17;
	x *= 0xed5ad4bbU;
	x ^= x >> 11;
	return (size_t)x & (cap - 1);
}

static int set_line(struct config_doc *d, const cJSON *node, int line)
{
	if ((d->n + 1) * 2 > d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 64;
		struct line_slot *ns = calloc(ncap, sizeof *ns);
		if (!ns)
			return -1;
		for (size_t i = 0; i < d->cap; i++) {
			if (!d->lines[i].node)
				continue;
			size_t j = ptr_hash(d->lines[i].node, ncap);
			while (ns[j].node)
				j = (j + 1) & (ncap - 1);
			ns[j] = d->lines[i];
		}
		free(d->lines);
		d->lines = ns;
		d->cap = ncap;
	}
	size_t j = ptr_hash(node, d->cap);
	while (d->lines[j].node && d->lines[j].node != node)
		j = (j + 1) & (d->cap - 1);
	if (!d->lines[j].node)
		d->n++;
	d->lines[j].node = node;
	d->lines[j].line = line;
	return 0;
}

int config_line(const struct config_doc *d, const cJSON *node)
{
	if (!d || !d->cap || !node)
		return 0;
	size_t j = ptr_hash(node, d->cap);
	while (d->lines[j].node) {
		if (d->lines[j].node == node)
			return d->lines[j].line;
		j = (j + 1) & (d->cap - 1);
	}
	return 0;
}

const cJSON *config_root(const struct config_doc *d) { return d->root; }
const char *config_name(const struct config_doc *d) { return d->name; }

void config_free(struct config_doc *d)
{
	if (!d)
		return;
	cJSON_Delete(d->root);
	free(d->lines);
	free(d->name);
	free(d);
}

/* YAML 1.2 core schema for a plain scalar. */
static cJSON *plain_scalar(const char *s, size_t n)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	static const char *const trues[] = {"true", "True", "TRUE"};
	static const char *const falses[] = {"false", "False", "FALSE"};
	for (size_t i = 0; i < 5; i++)
		if (!strcmp(s, nulls[i]))
			return cJSON_CreateNull();
	for (size_t i = 0; i < 3; i++) {
		if (!strcmp(s, trues[i]))
			return cJSON_CreateTrue();
		if (!strcmp(s, falses[i]))
			return cJSON_CreateFalse();
	}
	/* integers: [-+]?[0-9]+, 0x[0-9a-fA-F]+, 0o[0-7]+; floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
	const char *p = s;
	if (n > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'o')) {
		int base = p[1] == 'x' ? 16 : 8;
		errno = 0;
		char *end;
		unsigned long long v = strtoull(p + 2, &end, base);
		if (!*end && !errno && end != p + 2)
			return cJSON_CreateNumber((double)v);
		return cJSON_CreateString(s);
	}
	if (*p == '-' || *p == '+')
		p++;
	bool digits = false, dot = false, exp = false;
	for (const char *q = p; *q; q++) {
		if (*q >= '0' && *q <= '9')
			digits = true;
		else if (*q == '.' && !dot && !exp)
			dot = true;
		else if ((*q == 'e' || *q == 'E') && digits && !exp) {
			exp = true;
			if (q[1] == '-' || q[1] == '+')
				q++;
			if (!(q[1] >= '0' && q[1] <= '9'))
				return cJSON_CreateString(s);
		} else
			return cJSON_CreateString(s);
	}
	if (!digits)
		return cJSON_CreateString(s);
	errno = 0;
	double v = strtod(s, NULL);
	if (errno == ERANGE || !isfinite(v))
		return cJSON_CreateString(s);
	return cJSON_CreateNumber(v);
}

struct builder {
	struct config_doc *doc;
	yaml_parser_t parser;
	struct ar_err *err;
	int depth;
};

static int build_node(struct builder *b, yaml_event_t *ev, cJSON **out);

static int fail_at(struct builder *b, const yaml_mark_t *m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_at(struct builder *b, const yaml_mark_t *m, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return ar_err_set(b->err, AR_EFORMAT, "%s:%zu:%zu: %s", b->doc->name, m->line + 1, m->column + 1, msg);
}

static int next_event(struct builder *b, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&b->parser, ev)) {
		const char *what = b->parser.problem ? b->parser.problem : "syntax error";
		return ar_err_set(b->err, AR_EFORMAT, "%s:%zu:%zu: YAML syntax error: %s%s%s", b->doc->name,
				  b->parser.problem_mark.line + 1, b->parser.problem_mark.column + 1, what,
				  b->parser.context ? " " : "", b->parser.context ? b->parser.context : "");
	}
	return 0;
}

static int build_collection(struct builder *b, bool mapping, cJSON *into)
{
	for (;;) {
		yaml_event_t ev;
		if (next_event(b, &ev) < 0)
			return -1;
		if (ev.type == (mapping ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
			yaml_event_delete(&ev);
			return 0;
		}
		if (!mapping) {
			cJSON *item = NULL;
			int rc = build_node(b, &ev, &item);
			if (rc < 0)
				return -1;
			cJSON_AddItemToArray(into, item);
			continue;
		}
		/* mapping: key must be a scalar */
		if (ev.type != YAML_SCALAR_EVENT) {
			yaml_mark_t m = ev.start_mark;
			yaml_event_delete(&ev);
			return fail_at(b, &m, "a mapping key must be a plain string");
		}
		char *key = strdup((const char *)ev.data.scalar.value);
		yaml_mark_t km = ev.start_mark;
		yaml_event_delete(&ev);
		if (!key)
			return ar_err_set(b->err, AR_ENOMEM, "out of memory");
		if (cJSON_GetObjectItemCaseSensitive(into, key)) {
			int rc = fail_at(b, &km, "duplicate key '%s'", key);
			free(key);
			return rc;
		}
		yaml_event_t vev;
		cJSON *val = NULL;
		if (next_event(b, &vev) < 0 || build_node(b, &vev, &val) < 0) {
			free(key);
			return -1;
		}
		cJSON_AddItemToObject(into, key, val);
		free(key);
	}
}

/* Builds the node that starts with event ev (consumed). */
static int build_node(struct builder *b, yaml_event_t *ev, cJSON **out)
{
	*out = NULL;
	yaml_mark_t m = ev->start_mark;
	int rc = 0;
	cJSON *node = NULL;
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		rc = fail_at(b, &m, "aliases (*%s) are not supported; write the value out",
			     (const char *)ev->data.alias.anchor);
		break;
	case YAML_SCALAR_EVENT: {
		if (ev->data.scalar.anchor) {
			rc = fail_at(b, &m, "anchors (&%s) are not supported", (const char *)ev->data.scalar.anchor);
			break;
		}
		const char *v = (const char *)ev->data.scalar.value;
		size_t n = ev->data.scalar.length;
		if (strlen(v) != n) {
			rc = fail_at(b, &m, "NUL in a scalar");
			break;
		}
		bool tagged_str = ev->data.scalar.tag && !strcmp((const char *)ev->data.scalar.tag, YAML_STR_TAG);
		if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tagged_str)
			node = plain_scalar(v, n);
		else
			node = cJSON_CreateString(v);
		break;
	}
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		bool mapping = ev->type == YAML_MAPPING_START_EVENT;
		const yaml_char_t *anchor = mapping ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
		if (anchor) {
			rc = fail_at(b, &m, "anchors (&%s) are not supported", (const char *)anchor);
			break;
		}
		if (++b->depth > CONFIG_MAX_DEPTH) {
			rc = fail_at(b, &m, "nested deeper than %d levels", CONFIG_MAX_DEPTH);
			break;
		}
		node = mapping ? cJSON_CreateObject() : cJSON_CreateArray();
		if (!node)
			break;
		if (set_line(b->doc, node, (int)m.line + 1) < 0 || build_collection(b, mapping, node) < 0) {
			cJSON_Delete(node);
			node = NULL;
			rc = -1;
		}
		b->depth--;
		yaml_event_delete(ev);
		*out = node;
		return rc < 0 ? -1 : (node ? 0 : ar_err_set(b->err, AR_ENOMEM, "out of memory"));
	}
	default:
		rc = fail_at(b, &m, "unexpected YAML event");
	}
	yaml_event_delete(ev);
	if (rc < 0)
		return -1;
	if (!node || set_line(b->doc, node, (int)m.line + 1) < 0) {
		cJSON_Delete(node);
		return ar_err_set(b->err, AR_ENOMEM, "out of memory");
	}
	*out = node;
	return 0;
}

int config_parse(struct config_doc **out, const char *text, size_t n, const char *name, struct ar_err *err)
{
	*out = NULL;
	struct config_doc *d = calloc(1, sizeof *d);
	if (!d || !(d->name = strdup(name))) {
		free(d);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	struct builder b = {d, {0}, err, 0};
	if (!yaml_parser_initialize(&b.parser)) {
		config_free(d);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, n);
	int rc = -1;
	yaml_event_t ev;
	/* stream start, document start */
	if (next_event(&b, &ev) < 0)
		goto out;
	yaml_event_delete(&ev);
	if (next_event(&b, &ev) < 0)
		goto out;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		ar_err_set(err, AR_EFORMAT, "%s: empty document", name);
		goto out;
	}
	yaml_event_delete(&ev);
	if (next_event(&b, &ev) < 0 || build_node(&b, &ev, &d->root) < 0)
		goto out;
	if (next_event(&b, &ev) < 0) /* document end */
		goto out;
	yaml_event_delete(&ev);
	if (next_event(&b, &ev) < 0)
		goto out;
	if (ev.type != YAML_STREAM_END_EVENT) {
		yaml_mark_t m = ev.start_mark;
		yaml_event_delete(&ev);
		fail_at(&b, &m, "more than one document in the file");
		goto out;
	}
	yaml_event_delete(&ev);
	rc = 0;
out:
	yaml_parser_delete(&b.parser);
	if (rc < 0) {
		config_free(d);
		return -1;
	}
	*out = d;
	return 0;
}

int config_load(struct config_doc **out, const char *path, struct ar_err *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return ar_err_set(err, AR_EIO, "cannot open '%s': %s", path, strerror(errno));
	struct buf b;
	buf_init(&b, CONFIG_MAX_BYTES);
	char chunk[65536];
	size_t got;
	int rc = 0;
	while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_append(&b, chunk, got) < 0) {
			rc = ar_err_set(err, AR_ELIMIT, "'%s' is larger than 64 MiB", path);
			break;
		}
	if (!rc && ferror(f))
		rc = ar_err_set(err, AR_EIO, "cannot read '%s': %s", path, strerror(errno ? errno : EIO));
	fclose(f);
	if (!rc)
		rc = config_parse(out, b.data ? b.data : "", b.len, path, err);
	buf_free(&b);
	return rc;
}

int config_error(const struct config_doc *d, const cJSON *node, const char *field, struct ar_err *err,
		 const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	int line = config_line(d, node);
	if (line)
		return ar_err_set(err, AR_EFORMAT, "%s:%d: %s: %s", d->name, line, field, msg);
	return ar_err_set(err, AR_EFORMAT, "%s: %s: %s", d->name, field, msg);
}

static const cJSON *member(const struct config_doc *d, const cJSON *obj, const char *field, int required,
			   struct ar_err *err, int *rc)
{
	*rc = 0;
	const cJSON *v = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, field) : NULL;
	if (!v && required)
		*rc = config_error(d, obj, field, err, "missing required field");
	return v;
}

int config_get_str(const struct config_doc *d, const cJSON *obj, const char *field, int required,
		   const char **out, struct ar_err *err)
{
	int rc;
	const cJSON *v = member(d, obj, field, required, err, &rc);
	if (!v)
		return rc;
	if (!cJSON_IsString(v))
		return config_error(d, v, field, err, "expected a string");
	*out = v->valuestring;
	return 0;
}

int config_get_num(const struct config_doc *d, const cJSON *obj, const char *field, int required,
		   double min, double max, double *out, struct ar_err *err)
{
	int rc;
	const cJSON *v = member(d, obj, field, required, err, &rc);
	if (!v)
		return rc;
	if (!cJSON_IsNumber(v))
		return config_error(d, v, field, err, "expected a number, got %s",
				    cJSON_IsString(v) ? v->valuestring : "something else");
	if (!(v->valuedouble >= min && v->valuedouble <= max))
		return config_error(d, v, field, err, "%g is out of range (%g to %g)", v->valuedouble, min, max);
	*out = v->valuedouble;
	return 0;
}

int config_get_int(const struct config_doc *d, const cJSON *obj, const char *field, int required,
		   int64_t min, int64_t max, int64_t *out, struct ar_err *err)
{
	double x;
	if (config_get_num(d, obj, field, required, (double)min, (double)max, &x, err) < 0)
		return -1;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
	if (!v)
		return 0;
	if (x != floor(x))
		return config_error(d, v, field, err, "expected a whole number, got %g", x);
	*out = (int64_t)x;
	return 0;
}

int config_get_bool(const struct config_doc *d, const cJSON *obj, const char *field, int required,
		    bool *out, struct ar_err *err)
{
	int rc;
	const cJSON *v = member(d, obj, field, required, err, &rc);
	if (!v)
		return rc;
	if (!cJSON_IsBool(v))
		return config_error(d, v, field, err, "expected true or false");
	*out = cJSON_IsTrue(v);
	return 0;
}
