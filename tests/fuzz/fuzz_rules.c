/* Fuzz target: the failure-rule loader and matcher (replay/classify.c).
 * Rule files are user-extensible and the text they match comes from servers
 * (bodies, stream events, logs), so both sides are untrusted.
 *
 * Input: the first line is the text to match (any bytes, invalid UTF-8
 * included), the rest is a rule file. Checks beyond "no crash": a bad rule
 * file fails with a format error naming FILE:LINE; a good one matches the
 * text in every place without reading past it, and the evidence is a
 * NUL-terminated excerpt of printable bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[128];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/ar-fuzz-rules-XXXXXX");
		if (!mkdtemp(dir))
			abort();
		snprintf(path, sizeof path, "%s/generic.rules", dir);
	}
	const uint8_t *nl = memchr(data, '\n', size);
	size_t tn = nl ? (size_t)(nl - data) : size;
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (nl)
		fwrite(nl + 1, 1, size - tn - 1, f);
	fclose(f);

	/* the text, copied to an exact-size heap block so ASan sees overreads */
	char *text = malloc(tn ? tn : 1);
	if (!text)
		abort();
	memcpy(text, data, tn);

	struct rules *r = NULL;
	struct ar_err err = {AR_OK, ""};
	if (rules_load(&r, dir, NULL, &err) != 0) {
		if (r || (err.code != AR_EFORMAT && err.code != AR_ELIMIT) || !strstr(err.msg, "generic.rules:"))
			abort();
		free(text);
		return 0;
	}
	static const char *const places[] = {"body", "event", "log"};
	for (size_t i = 0; i < 3; i++) {
		char ev[64];
		memset(ev, 'x', sizeof ev);
		const char *cls = rules_match(r, places[i], text, tn, ev, sizeof ev);
		if (cls) {
			size_t len = strnlen(ev, sizeof ev);
			if (len == sizeof ev)
				abort();
			for (size_t k = 0; k < len; k++)
				if ((unsigned char)ev[k] < 0x20)
					abort();
		}
	}
	rules_free(r);
	free(text);
	return 0;
}
