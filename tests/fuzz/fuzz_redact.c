/* Fuzz target: the redaction rule loader and the redactor (src/redact.c) on
 * arbitrary bytes. Built with libFuzzer under clang (-DAR_FUZZ=ON); with any
 * compiler, fuzz_replay.c replays the corpus through the same entry point.
 *
 * Input: first byte is the mode.
 *   even: the rest is text, redacted with the shipped rules. Checks: the
 *         output has the input's length; a second pass finds nothing (the
 *         shipped rules leave placeholders alone); the text parsed as JSON
 *         and redacted in place still prints.
 *   odd:  the rest up to the first NUL byte is a rule file, after it the
 *         text. A rule file that loads must redact the text to the same
 *         length; one that does not must say where (FILE:LINE).
 * abort() when a check fails. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct redact *shipped;

static void check_text(struct redact *r, const char *text, size_t n, int twice)
{
	struct buf out = BUF_INIT, again = BUF_INIT;
	struct ar_err e;
	int64_t hits = redact_text(r, text, n, &out, &e);
	if (hits < 0) {
		if (e.code != AR_ELIMIT && e.code != AR_ENOMEM)
			abort();
		goto out;
	}
	if (out.len != n)
		abort(); /* placeholders keep the length */
	if (twice && redact_text(r, out.data ? out.data : "", out.len, &again, &e) > 0)
		abort(); /* a placeholder was redacted again */
out:
	buf_free(&out);
	buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	struct ar_err e;
	if (!(data[0] & 1)) {
		if (!shipped && redact_new(&shipped, NULL, 0, 0, &e) < 0)
			abort(); /* the shipped rules must load */
		check_text(shipped, p, n, 1);
		char *z = malloc(n + 1);
		if (!z)
			return 0;
		memcpy(z, p, n);
		z[n] = '\0';
		cJSON *j = cJSON_Parse(z);
		if (j) {
			if (redact_json(shipped, j, &e) >= 0) {
				char *s = cJSON_PrintUnformatted(j);
				if (!s)
					abort();
				free(s);
			}
			cJSON_Delete(j);
		}
		free(z);
		return 0;
	}
	const char *nul = memchr(p, 0, n);
	size_t rn = nul ? (size_t)(nul - p) : n;
	char path[] = "/tmp/ar-fuzz-redact-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, p, rn) != (ssize_t)rn) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	const char *files[] = {path};
	struct redact *r = NULL;
	if (redact_new(&r, files, 1, 1, &e) == 0) {
		const char *text = nul ? nul + 1 : "";
		check_text(r, text, nul ? n - rn - 1 : 0, 0);
		redact_free(r);
	} else if (e.code == AR_EFORMAT && !strstr(e.msg, path)) {
		abort(); /* a bad rule is reported with its file */
	}
	unlink(path);
	return 0;
}
