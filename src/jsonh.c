#include "jsonh.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int jsonh_put_string(struct buf *b, const char *s, size_t n)
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

int jsonh_put(struct buf *b, const cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);
	if (!s)
		return -1;
	int rc = buf_puts(b, s);
	cJSON_free(s);
	return rc;
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
