/* Fuzz target: the YAML/JSON config loader (src/config.c) on arbitrary
 * bytes: sweep configs, generator profiles and simulator profiles all come
 * through it, and users paste them from anywhere.
 *
 * Checks beyond "no crash": a failure is a format/limit error whose message
 * starts with the document's name (FILE:LINE:COL: ...); a document that
 * loads has a line number for every node that is within the text, and the
 * typed getters either succeed or fail with a message naming the field. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t lines_in(const uint8_t *data, size_t size)
{
	/* YAML line breaks: LF, CR, CRLF (counted twice: a bound is enough),
	 * NEL (C2 85), LS and PS (E2 80 A8/A9) */
	size_t n = 1;
	for (size_t i = 0; i < size; i++)
		n += data[i] == '\n' || data[i] == '\r' || (data[i] == 0x85 && i && data[i - 1] == 0xC2) ||
		     ((data[i] == 0xA8 || data[i] == 0xA9) && i > 1 && data[i - 1] == 0x80 && data[i - 2] == 0xE2);
	return n;
}

static void walk(const struct config_doc *d, const cJSON *node, size_t max_line, int depth)
{
	if (depth > 200)
		return;
	int line = config_line(d, node);
	/* an implicit empty value is marked where the text ends: one line past it at most */
	if (line < 0 || (size_t)line > max_line + 1)
		abort();
	struct ar_err err;
	const cJSON *c;
	cJSON_ArrayForEach(c, node)
	{
		if (cJSON_IsObject(node) && c->string) {
			const char *s;
			double x;
			int64_t i;
			bool b;
			/* each getter succeeds or names the field */
			if (config_get_str(d, node, c->string, CONFIG_REQUIRED, &s, &err) < 0 && !strstr(err.msg, c->string))
				abort();
			if (config_get_num(d, node, c->string, CONFIG_REQUIRED, -1e9, 1e9, &x, &err) < 0 &&
			    !strstr(err.msg, c->string))
				abort();
			if (config_get_int(d, node, c->string, CONFIG_REQUIRED, -1000, 1000, &i, &err) < 0 &&
			    !strstr(err.msg, c->string))
				abort();
			if (config_get_bool(d, node, c->string, CONFIG_REQUIRED, &b, &err) < 0 && !strstr(err.msg, c->string))
				abort();
		}
		walk(d, c, max_line, depth + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_doc *d = NULL;
	struct ar_err err = {AR_OK, ""};
	if (config_parse(&d, (const char *)data, size, "fuzz.yaml", &err) != 0) {
		if (d || (err.code != AR_EFORMAT && err.code != AR_ELIMIT && err.code != AR_ENOMEM) ||
		    strncmp(err.msg, "fuzz.yaml", 9))
			abort();
		return 0;
	}
	walk(d, config_root(d), lines_in(data, size), 0);
	config_free(d);
	return 0;
}
