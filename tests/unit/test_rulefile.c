/* rulefile: the shared rule-file reader (src/rulefile.c): what counts as a
 * rule line, line numbers, CRLF, the line-length ceiling, missing files and
 * pattern errors, each naming PATH:LINE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rulefile.h"

static char dir[] = "/tmp/ar-test-rulefile-XXXXXX";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **st)
{
	(void)st;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
	(void)st;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_lines(void **st)
{
	(void)st;
	char p[256];
	snprintf(p, sizeof p, "%s/a.rules", dir);
	write_file(p, "# a comment\n\n   \t\nfirst  one\r\n  second\tline\n\t# indented comment\nthird");
	struct rulefile *rf;
	struct ar_err err = {0};
	assert_int_equal(rulefile_open(&rf, p, 100, true, "rules", &err), 0);
	assert_non_null(rf);
	char *line;
	assert_int_equal(rulefile_next(rf, &line, &err), 1);
	assert_string_equal(line, "first  one"); /* CRLF gone */
	assert_int_equal(rulefile_lineno(rf), 4);
	assert_int_equal(rulefile_next(rf, &line, &err), 1);
	assert_string_equal(line, "second\tline"); /* leading blanks gone */
	assert_int_equal(rulefile_lineno(rf), 5);
	assert_int_equal(rulefile_next(rf, &line, &err), 1);
	assert_string_equal(line, "third"); /* no newline at the end */
	assert_int_equal(rulefile_lineno(rf), 7);
	assert_int_equal(rulefile_next(rf, &line, &err), 0);
	assert_string_equal(rulefile_path(rf), p);
	rulefile_close(rf);
}

static void test_too_long(void **st)
{
	(void)st;
	char p[256], want[320];
	snprintf(p, sizeof p, "%s/long.rules", dir);
	/* 10 bytes fit, 11 do not */
	write_file(p, "0123456789\nabcdefghijk\n");
	struct rulefile *rf;
	struct ar_err err = {0};
	assert_int_equal(rulefile_open(&rf, p, 10, true, "rules", &err), 0);
	char *line;
	assert_int_equal(rulefile_next(rf, &line, &err), 1);
	assert_string_equal(line, "0123456789");
	assert_int_equal(rulefile_next(rf, &line, &err), -1);
	snprintf(want, sizeof want, "%s:2: line longer than 10 bytes", p);
	assert_string_equal(err.msg, want);
	assert_int_equal(err.code, AR_ELIMIT);
	rulefile_close(rf);
}

static void test_missing(void **st)
{
	(void)st;
	char p[256];
	snprintf(p, sizeof p, "%s/none.rules", dir);
	struct rulefile *rf = (struct rulefile *)1;
	struct ar_err err = {0};
	assert_int_equal(rulefile_open(&rf, p, 100, false, "rules", &err), 0);
	assert_null(rf); /* optional and absent */
	assert_int_equal(rulefile_open(&rf, p, 100, true, "redaction rules", &err), -1);
	assert_non_null(strstr(err.msg, "cannot open redaction rules"));
	assert_non_null(strstr(err.msg, "No such file"));
}

static void test_compile(void **st)
{
	(void)st;
	char p[256], want[320];
	snprintf(p, sizeof p, "%s/re.rules", dir);
	write_file(p, "ok (?<secret>[a-z]+)\nbad (unclosed\n");
	struct rulefile *rf;
	struct ar_err err = {0};
	assert_int_equal(rulefile_open(&rf, p, 100, true, "rules", &err), 0);
	char *line;
	assert_int_equal(rulefile_next(rf, &line, &err), 1);
	pcre2_code *re = rulefile_compile(rf, line + 3, 0, "ok", &err);
	assert_non_null(re);
	/* invalid UTF-8 in the subject is scanned, not refused */
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	assert_true(pcre2_match(re, (PCRE2_SPTR) "\xff\xfe abc", 6, 0, 0, md, NULL) > 0);
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	assert_int_equal(rulefile_next(rf, &line, &err), 1);
	assert_null(rulefile_compile(rf, line + 4, 0, "bad", &err));
	snprintf(want, sizeof want, "%s:2: bad pattern for 'bad' at offset", p);
	assert_true(!strncmp(err.msg, want, strlen(want)));
	assert_null(rulefile_compile(rf, line + 4, 0, NULL, &err));
	snprintf(want, sizeof want, "%s:2: bad pattern at offset", p);
	assert_true(!strncmp(err.msg, want, strlen(want)));
	rulefile_close(rf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_compile),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
