/* rulefile: see rulefile.h. */
#include "rulefile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rulefile {
	FILE *f;
	char *path;
	char *line;
	size_t max_line;
	int lineno;
	const char *what;
};

int rulefile_open(struct rulefile **out, const char *path, size_t max_line, bool required, const char *what,
		  struct ar_err *err)
{
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		if (!required && errno == ENOENT)
			return 0;
		return ar_err_set(err, AR_EIO, "cannot open %s '%s': %s", what, path, strerror(errno));
	}
	struct rulefile *rf = calloc(1, sizeof *rf);
	if (!rf || !(rf->path = strdup(path)) || !(rf->line = malloc(max_line + 2))) {
		if (rf)
			free(rf->path);
		free(rf);
		fclose(f);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	rf->f = f;
	rf->max_line = max_line;
	rf->what = what;
	*out = rf;
	return 0;
}

int rulefile_next(struct rulefile *rf, char **line, struct ar_err *err)
{
	/* the buffer holds max_line bytes, its newline and the NUL */
	while (fgets(rf->line, (int)rf->max_line + 2, rf->f)) {
		rf->lineno++;
		size_t len = strlen(rf->line);
		if (len == rf->max_line + 1 && rf->line[len - 1] != '\n' && !feof(rf->f))
			return ar_err_set(err, AR_ELIMIT, "%s:%d: line longer than %zu bytes", rf->path, rf->lineno,
					  rf->max_line);
		while (len && (rf->line[len - 1] == '\n' || rf->line[len - 1] == '\r'))
			rf->line[--len] = '\0';
		char *p = rf->line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '#')
			continue;
		*line = p;
		return 1;
	}
	if (ferror(rf->f))
		return ar_err_set(err, AR_EIO, "cannot read %s '%s': %s", rf->what, rf->path, strerror(errno));
	return 0;
}

const char *rulefile_path(const struct rulefile *rf) { return rf->path; }

int rulefile_lineno(const struct rulefile *rf) { return rf->lineno; }

pcre2_code *rulefile_compile(const struct rulefile *rf, const char *pattern, uint32_t extra, const char *name,
			     struct ar_err *err)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
				       PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | extra, &ec, &eo, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof msg);
		if (name)
			ar_err_set(err, AR_EFORMAT, "%s:%d: bad pattern for '%s' at offset %zu: %s", rf->path,
				   rf->lineno, name, (size_t)eo, (const char *)msg);
		else
			ar_err_set(err, AR_EFORMAT, "%s:%d: bad pattern at offset %zu: %s", rf->path, rf->lineno,
				   (size_t)eo, (const char *)msg);
		return NULL;
	}
	return re;
}

void rulefile_close(struct rulefile *rf)
{
	if (!rf)
		return;
	fclose(rf->f);
	free(rf->line);
	free(rf->path);
	free(rf);
}
