/* Unit tests: YAML/JSON config loading (src/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static struct config_doc *load(const char *text, struct ar_err *err)
{
	struct config_doc *d = NULL;
	config_parse(&d, text, strlen(text), "t.yaml", err);
	return d;
}

static void test_scalars_and_lines(void **state)
{
	struct ar_err err = {0};
	struct config_doc *d = load("# a profile\n"
				    "id: m3-max-64g\n"
				    "memory_gib: 64\n"
				    "bandwidth_gbs: 4.0e2\n"
				    "unified: true\n"
				    "note: ~\n"
				    "quoted: \"64\"\n"
				    "hex: 0x10\n"
				    "version: 1.2.3\n"
				    "list:\n  - a\n  - 2\n"
				    "nested: {x: 1, y: [1, 2]}\n", &err);
	assert_non_null(d);
	const cJSON *r = config_root(d);
	assert_string_equal(cJSON_GetObjectItem(r, "id")->valuestring, "m3-max-64g");
	assert_true(cJSON_GetObjectItem(r, "memory_gib")->valuedouble == 64);
	assert_true(cJSON_GetObjectItem(r, "bandwidth_gbs")->valuedouble == 400);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "unified")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "note")));
	assert_true(cJSON_IsString(cJSON_GetObjectItem(r, "quoted")));
	assert_true(cJSON_GetObjectItem(r, "hex")->valuedouble == 16);
	assert_string_equal(cJSON_GetObjectItem(r, "version")->valuestring, "1.2.3");
	assert_int_equal(config_line(d, cJSON_GetObjectItem(r, "memory_gib")), 3);
	assert_int_equal(config_line(d, cJSON_GetObjectItem(r, "list")), 11);
	double bw;
	int64_t mem;
	const char *s;
	bool b;
	assert_int_equal(config_get_num(d, r, "bandwidth_gbs", CONFIG_REQUIRED, 0, 1e6, &bw, &err), 0);
	assert_int_equal(config_get_int(d, r, "memory_gib", CONFIG_REQUIRED, 1, 4096, &mem, &err), 0);
	assert_int_equal(mem, 64);
	assert_int_equal(config_get_bool(d, r, "unified", CONFIG_REQUIRED, &b, &err), 0);
	assert_int_equal(config_get_str(d, r, "id", CONFIG_REQUIRED, &s, &err), 0);
	/* errors name file, line and field */
	assert_int_equal(config_get_num(d, r, "memory_gib", CONFIG_REQUIRED, 0, 10, &bw, &err), -1);
	assert_string_equal(err.msg, "t.yaml:3: memory_gib: 64 is out of range (0 to 10)");
	assert_int_equal(config_get_num(d, r, "id", CONFIG_REQUIRED, 0, 10, &bw, &err), -1);
	assert_string_equal(err.msg, "t.yaml:2: id: expected a number, got m3-max-64g");
	assert_int_equal(config_get_str(d, r, "missing", CONFIG_REQUIRED, &s, &err), -1);
	assert_string_equal(err.msg, "t.yaml:2: missing: missing required field");
	s = "unchanged";
	assert_int_equal(config_get_str(d, r, "missing", CONFIG_OPTIONAL, &s, &err), 0);
	assert_string_equal(s, "unchanged");
	config_free(d);
}

static void test_json_is_yaml(void **state)
{
	struct ar_err err = {0};
	struct config_doc *d = load("{\"a\": [1, 2.5, \"x\", null, false], \"b\": {\"c\": -3}}", &err);
	assert_non_null(d);
	const cJSON *a = cJSON_GetObjectItem(config_root(d), "a");
	assert_int_equal(cJSON_GetArraySize(a), 5);
	assert_true(cJSON_GetArrayItem(a, 1)->valuedouble == 2.5);
	config_free(d);
}

static void test_errors(void **state)
{
	struct ar_err err = {0};
	assert_null(load("a: 1\nb: [1, 2\nc: 3\n", &err));
	assert_non_null(strstr(err.msg, "t.yaml:"));
	assert_non_null(strstr(err.msg, "YAML syntax error"));
	assert_null(load("a: 1\na: 2\n", &err));
	assert_string_equal(err.msg, "t.yaml:2:1: duplicate key 'a'");
	assert_null(load("base: &b {x: 1}\nother: *b\n", &err));
	assert_non_null(strstr(err.msg, "anchors (&b) are not supported"));
	assert_null(load("", &err));
	assert_non_null(strstr(err.msg, "empty document"));
	assert_null(load("a: 1\n---\nb: 2\n", &err));
	assert_non_null(strstr(err.msg, "more than one document"));
	char deep[400] = "";
	for (int i = 0; i < 100; i++)
		strcat(deep, "[");
	assert_null(load(deep, &err));
	struct config_doc *d = NULL;
	assert_int_equal(config_load(&d, "/nonexistent.yaml", &err), -1);
	assert_non_null(strstr(err.msg, "cannot open '/nonexistent.yaml'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars_and_lines),
		cmocka_unit_test(test_json_is_yaml),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
