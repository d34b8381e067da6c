#include "jsonh.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

bool jsonh_int(const cJSON *v, int64_t *out)
{
	if (!cJSON_IsNumber(v))
		return false;
	double d = v->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < -9.2233720368547758e18 || d >= 9.2233720368547758e18)
		return false;
	if (out)
		*out = (int64_t)d;
	return true;
}

static int put_string(struct buf *b, const char *s, size_t n, bool repair)
{
	static const char hex[] = "0123456789abcdef";
	if (buf_reserve(b, n + 2) < 0 || buf_putc(b, '"') < 0)
		return -1;
	size_t run = 0; /* start of the current run of plain bytes */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[7];
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			if (c < 0x20) {
				u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
				u[4] = hex[c >> 4]; u[5] = hex[c & 15]; u[6] = 0;
				esc = u;
			} else if (c >= 0x80 && repair) {
				/* JSON text is UTF-8: a byte that does not start a valid
				 * sequence goes out as U+FFFD (the net under every writer) */
				size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
				if (len && len <= n - i && utf8_check(s + i, len) == len) {
					i += len - 1;
					continue;
				}
				esc = "\xEF\xBF\xBD";
			}
		}
		if (!esc)
			continue;
		if (buf_append(b, s + run, i - run) < 0 || buf_puts(b, esc) < 0)
			return -1;
		run = i + 1;
	}
	if (buf_append(b, s + run, n - run) < 0)
		return -1;
	return buf_putc(b, '"');
}

int jsonh_put_string(struct buf *b, const char *s, size_t n)
{
	return put_string(b, s, n, true);
}

int jsonh_put_string_raw(struct buf *b, const char *s, size_t n)
{
	return put_string(b, s, n, false);
}

int jsonh_put_number(struct buf *b, double v)
{
	/* FORMAT.md section 11: integral values below 2^53 as integers, else the
	 * shorter of %.15g / %.17g that reads back to the same double */
	if (!isfinite(v))
		return buf_puts(b, isnan(v) ? "null" : v > 0 ? "1e999" : "-1e999");
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		return buf_printf(b, "%lld", (long long)v + 0); /* -0 prints 0 */
	char tmp[40];
	snprintf(tmp, sizeof tmp, "%.15g", v);
	if (strtod(tmp, NULL) != v)
		snprintf(tmp, sizeof tmp, "%.17g", v);
	return buf_puts(b, tmp);
}

static int put_value(struct buf *b, const cJSON *v, int depth);

static int put_member(struct buf *b, const cJSON *c, bool *first, int depth)
{
	if ((!*first && buf_putc(b, ',') < 0) || jsonh_put_string(b, c->string, strlen(c->string)) < 0 ||
	    buf_putc(b, ':') < 0 || put_value(b, c, depth + 1) < 0)
		return -1;
	*first = false;
	return 0;
}

static int put_value(struct buf *b, const cJSON *v, int depth)
{
	if (depth > 2000)
		return -1;
	switch (v->type & 0xFF) {
	case cJSON_False: return buf_puts(b, "false");
	case cJSON_True: return buf_puts(b, "true");
	case cJSON_NULL: return buf_puts(b, "null");
	case cJSON_Number: return jsonh_put_number(b, v->valuedouble);
	case cJSON_String:
		return jsonh_put_string(b, v->valuestring, strlen(v->valuestring));
	case cJSON_Raw: return buf_puts(b, v->valuestring ? v->valuestring : "null");
	case cJSON_Array: {
		if (buf_putc(b, '[') < 0)
			return -1;
		for (const cJSON *c = v->child; c; c = c->next)
			if ((c != v->child && buf_putc(b, ',') < 0) || put_value(b, c, depth + 1) < 0)
				return -1;
		return buf_putc(b, ']');
	}
	case cJSON_Object: {
		bool first = true;
		if (buf_putc(b, '{') < 0)
			return -1;
		for (const cJSON *c = v->child; c; c = c->next)
			if (put_member(b, c, &first, depth) < 0)
				return -1;
		return buf_putc(b, '}');
	}
	}
	return buf_puts(b, "null");
}

int jsonh_put(struct buf *b, const cJSON *v)
{
	return put_value(b, v, 0);
}

int jsonh_put_ordered(struct buf *b, const cJSON *obj, const char *const *order, size_t n)
{
	if (!cJSON_IsObject(obj))
		return jsonh_put(b, obj);
	bool first = true;
	if (buf_putc(b, '{') < 0)
		return -1;
	for (size_t k = 0; k < n; k++)
		for (const cJSON *c = obj->child; c; c = c->next)
			if (c->string && !strcmp(c->string, order[k]) && put_member(b, c, &first, 0) < 0)
				return -1;
	for (const cJSON *c = obj->child; c; c = c->next) {
		size_t k;
		for (k = 0; k < n; k++)
			if (c->string && !strcmp(c->string, order[k]))
				break;
		if (k == n && put_member(b, c, &first, 0) < 0)
			return -1;
	}
	return buf_putc(b, '}');
}

int jsonh_count(const cJSON *v)
{
	return (cJSON_IsObject(v) || cJSON_IsArray(v)) ? cJSON_GetArraySize(v) : 0;
}

char *jsonh_strdup(const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

const char *jsonh_type(const cJSON *v)
{
	if (!v)
		return "missing";
	if (cJSON_IsString(v))
		return "string";
	if (cJSON_IsNumber(v))
		return "number";
	if (cJSON_IsObject(v))
		return "object";
	if (cJSON_IsArray(v))
		return "array";
	if (cJSON_IsBool(v))
		return "boolean";
	if (cJSON_IsNull(v))
		return "null";
	return "invalid";
}

/* One string, repaired in place when it needs it. */
static long repair_str(char **s)
{
	size_t n = strlen(*s);
	if (utf8_check(*s, n) == n)
		return 0;
	struct buf b = BUF_INIT;
	long k = utf8_repair(*s, n, &b);
	char *d = k < 0 ? NULL : buf_detach(&b);
	buf_free(&b);
	if (!d)
		return -1;
	free(*s);
	*s = d;
	return k;
}

long jsonh_repair_utf8(cJSON *v)
{
	long total = 0, k;
	if (!v)
		return 0;
	if (v->string && !(v->type & cJSON_StringIsConst)) { /* a constant key is ours, not the input's */
		if ((k = repair_str(&v->string)) < 0)
			return -1;
		total += k;
	}
	if (cJSON_IsString(v) && v->valuestring) {
		if ((k = repair_str(&v->valuestring)) < 0)
			return -1;
		total += k;
	}
	for (cJSON *c = v->child; c; c = c->next) {
		if ((k = jsonh_repair_utf8(c)) < 0)
			return -1;
		total += k;
	}
	return total;
}
