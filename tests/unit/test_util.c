/* Unit tests: buf, units, utf8 (and jsonh_repair_utf8), strset, rng, err. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "jsonh.h"
#include "rng.h"
#include "strset.h"
#include "units.h"
#include "utf8.h"

static void test_buf_ceiling(void **state)
{
	struct buf b;
	buf_init(&b, 10);
	assert_int_equal(buf_puts(&b, "hello"), 0);
	assert_int_equal(buf_puts(&b, "world"), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(buf_putc(&b, '!'), -1); /* ceiling */
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "helloworld");
	buf_consume(&b, 5);
	assert_string_equal(b.data, "world");
	assert_int_equal(buf_printf(&b, "%d", 12345), 0);
	assert_string_equal(b.data, "world12345");
	assert_int_equal(buf_printf(&b, "x"), -1);
	char *d = buf_detach(&b);
	assert_string_equal(d, "world12345");
	free(d);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	buf_free(NULL);
}

static void test_units(void **state)
{
	uint64_t v;
	int64_t ns;
	double r;
	struct ar_err e = {0};
	assert_int_equal(units_parse_tokens("32k", &v, &e), 0);
	assert_int_equal(v, 32768);
	assert_int_equal(units_parse_tokens("128K", &v, &e), 0);
	assert_int_equal(v, 131072);
	assert_int_equal(units_parse_tokens("4096", &v, &e), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(units_parse_tokens("1.5k", &v, &e), 0);
	assert_int_equal(v, 1536);
	assert_int_equal(units_parse_tokens("32q", &v, &e), -1);
	assert_non_null(strstr(e.msg, "'q'"));
	assert_int_equal(units_parse_tokens("-5", &v, &e), -1);
	assert_int_equal(units_parse_tokens("", &v, &e), -1);
	assert_int_equal(units_parse_tokens("0.3", &v, &e), -1); /* not whole */
	assert_int_equal(units_parse_tokens("99999999999999999999999k", &v, &e), -1);
	assert_int_equal(units_parse_bytes("2GiB", &v, &e), 0);
	assert_int_equal(v, 2147483648ull);
	assert_int_equal(units_parse_bytes("2GB", &v, &e), 0);
	assert_int_equal(v, 2000000000ull);
	assert_int_equal(units_parse_bytes("512", &v, &e), 0);
	assert_int_equal(v, 512);
	assert_int_equal(units_parse_bytes("1.5MiB", &v, &e), 0);
	assert_int_equal(v, 1572864);
	assert_int_equal(units_parse_bytes("5 GB", &v, &e), -1);
	assert_int_equal(units_parse_bytes("5XB", &v, &e), -1);
	assert_int_equal(units_parse_duration_ns("250ms", &ns, &e), 0);
	assert_int_equal(ns, 250000000);
	assert_int_equal(units_parse_duration_ns("2", &ns, &e), 0);
	assert_int_equal(ns, 2000000000);
	assert_int_equal(units_parse_duration_ns("1.5m", &ns, &e), 0);
	assert_int_equal(ns, 90000000000ll);
	assert_int_equal(units_parse_duration_ns("10parsecs", &ns, &e), -1);
	assert_int_equal(units_parse_count("17", &v, &e), 0);
	assert_int_equal(v, 17);
	assert_int_equal(units_parse_count("17k", &v, &e), -1);
	assert_int_equal(units_parse_count("18446744073709551616", &v, &e), -1);
	assert_int_equal(units_parse_real("0.8", &r, &e), 0);
	assert_true(r == 0.8);
	assert_int_equal(units_parse_real("nan", &r, &e), -1);
	assert_int_equal(units_parse_real("0x10", &r, &e), -1);
	assert_int_equal(units_parse_real("1e400", &r, &e), -1);
}

static void test_utf8(void **state)
{
	const char ok[] = "plain ascii and \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end";
	assert_int_equal(utf8_check(ok, sizeof ok - 1), sizeof ok - 1);
	assert_int_equal(utf8_check("ab\xff", 3), 2);
	assert_int_equal(utf8_check("\xc0\xaf", 2), 0);          /* overlong '/' */
	assert_int_equal(utf8_check("x\xed\xa0\x80", 4), 1);      /* surrogate */
	assert_int_equal(utf8_check("\xf4\x90\x80\x80", 4), 0);   /* > U+10FFFF */
	assert_int_equal(utf8_check("abcdefgh\xe2\x82", 10), 8);  /* truncated */
	assert_int_equal(utf8_check("", 0), 0);
}

/* Keys and string values at any depth are repaired, one U+FFFD per bad
 * byte; numbers and valid strings are left as they are. The JSON writer
 * does the same to what it writes. */
static void test_json_repair(void **state)
{
	(void)state;
	cJSON *v = cJSON_Parse("{\"a\xff\":[\"caf\xe9\", 1, {\"k\":\"ok \xc3\xa9\", \"x\":\"\xc0\xaf\"}], \"n\":null}");
	assert_non_null(v);
	assert_int_equal(jsonh_repair_utf8(v), 4);
	char *out = cJSON_PrintUnformatted(v);
	assert_string_equal(out, "{\"a\xef\xbf\xbd\":[\"caf\xef\xbf\xbd\",1,{\"k\":\"ok \xc3\xa9\",\"x\":\"\xef\xbf\xbd\xef\xbf\xbd\"}],\"n\":null}");
	free(out);
	assert_int_equal(jsonh_repair_utf8(v), 0); /* nothing left to repair */
	cJSON_Delete(v);
	assert_int_equal(jsonh_repair_utf8(NULL), 0);
	/* the writer's own net: whatever bytes it is handed, it writes UTF-8 */
	struct buf b = BUF_INIT;
	const char in[] = "a\xff" "b\xc3\xa9 \xf0\x9f\x98\x80 \xed\xa0\x80 \xe2\x82";
	assert_int_equal(jsonh_put_string(&b, in, sizeof in - 1), 0);
	assert_int_equal(buf_putc(&b, '\0'), 0);
	assert_string_equal(b.data, "\"a\xef\xbf\xbd" "b\xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
				    "\xef\xbf\xbd\xef\xbf\xbd\"");
	buf_reset(&b);
	assert_int_equal(jsonh_put_string_raw(&b, "a\xff\n", 3), 0); /* a test server's way to send bad bytes */
	assert_int_equal(b.len, 6);
	assert_memory_equal(b.data, "\"a\xff\\n\"", 6);
	buf_free(&b);
}

static void test_strset(void **state)
{
	struct strset s;
	strset_init(&s);
	char key[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof key, "call_%d", i);
		assert_int_equal(strset_add(&s, key), 1);
	}
	assert_int_equal(strset_add(&s, "call_7"), 0);
	assert_true(strset_has(&s, "call_999"));
	assert_false(strset_has(&s, "call_1000"));
	assert_int_equal(s.n, 1000);
	strset_clear(&s);
	assert_false(strset_has(&s, "call_7"));
	strset_free(&s);
}

static void test_rng_portable(void **state)
{
	/* xoshiro256** seeded by splitmix64(0): fixed values, on every machine */
	struct rng r;
	rng_seed(&r, 0);
	uint64_t a = rng_next(&r), b = rng_next(&r);
	struct rng r2;
	rng_seed(&r2, 0);
	assert_true(a == rng_next(&r2));
	assert_true(b == rng_next(&r2));
	assert_true(a == 0x99ec5f36cb75f2b4ULL);
	for (int i = 0; i < 10000; i++) {
		assert_true(rng_below(&r, 7) < 7);
		double u = rng_unit(&r);
		assert_true(u >= 0 && u < 1);
	}
	struct rng f1 = rng_fork(&r, 1), f2 = rng_fork(&r, 2);
	assert_true(rng_next(&f1) != rng_next(&f2));
}

static void test_err(void **state)
{
	struct ar_err e = {0};
	assert_int_equal(ar_err_set(&e, AR_EIO, "cannot open '%s'", "x"), -1);
	ar_err_prefix(&e, "run %d", 3);
	assert_string_equal(e.msg, "run 3: cannot open 'x'");
	assert_int_equal(e.code, AR_EIO);
	assert_int_equal(ar_err_set(NULL, AR_EIO, "ignored"), -1);
	assert_string_equal(ar_strerror(AR_EFORMAT), "format error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_ceiling), cmocka_unit_test(test_units),
		cmocka_unit_test(test_utf8),        cmocka_unit_test(test_json_repair), cmocka_unit_test(test_strset),
		cmocka_unit_test(test_rng_portable), cmocka_unit_test(test_err),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
