/* Unit tests: sweep config files (src/sweepcfg.c): expansion, keys, names,
 * excludes, placeholders, shards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "sweepcfg.h"

static struct sweep_plan *parse(const char *text, struct ar_err *err)
{
	struct sweep_plan *p = NULL;
	sweepcfg_parse(&p, text, strlen(text), "s.yaml", "/cfg", err);
	return p;
}

static const char *base =
	"backends:\n"
	"  a:\n"
	"    adapter: llama-server\n"
	"    command: [srv, -m, \"{model_path}\", --port, \"{port}\", -c, \"{ctx}\", --kv, \"{kv}\"]\n"
	"    env: {HOST: \"127.0.0.1:{port}\", X: \"{model}\"}\n"
	"  b:\n"
	"    command: [other, \"{model}\"]\n"
	"    health: \"http://127.0.0.1:{port}/ping\"\n"
	"models: [m1, {name: m2, path: /w/m2.gguf}]\n"
	"matrix:\n"
	"  ctx: [4096, 8192]\n"
	"  kv: [f16, q8_0]\n"
	"exclude:\n"
	"  - {backend: b, kv: q8_0}\n"
	"  - {model: m2, ctx: [8192], kv: f16}\n"
	"traces: [t.jsonl, \"gen:depth=8k\"]\n";

static void test_expand(void **state)
{
	(void)state;
	struct ar_err err = {0};
	struct sweep_plan *p = parse(base, &err);
	assert_non_null(p);
	/* 2 backends x 2 models x 2 x 2 = 16, minus b with q8_0 (4), minus m2/8192/f16 on a and b (2) */
	assert_int_equal(p->nitems, 16 - 4 - 2);
	assert_string_equal(p->items[0].key, "backend=a,model=m1,ctx=4096,kv=f16");
	assert_string_equal(p->items[0].name, "a/m1/ctx=4096/kv=f16");
	assert_string_equal(p->traces[0], "/cfg/t.jsonl");
	assert_string_equal(p->traces[1], "gen:depth=8k");
	for (size_t i = 0; i < p->nitems; i++) {
		assert_false(strstr(p->items[i].key, "backend=b") && strstr(p->items[i].key, "kv=q8_0"));
		assert_false(strstr(p->items[i].key, "model=m2,ctx=8192,kv=f16"));
	}
	/* argv: whole-element placeholders with the port given */
	const struct sweep_item *m2 = NULL;
	for (size_t i = 0; i < p->nitems; i++)
		if (!strcmp(p->items[i].key, "backend=a,model=m2,ctx=4096,kv=q8_0"))
			m2 = &p->items[i];
	assert_non_null(m2);
	char **av = NULL, **env = NULL;
	assert_int_equal(sweepcfg_argv(p, m2, 4321, &av, &err), 0);
	const char *want[] = {"srv", "-m", "/w/m2.gguf", "--port", "4321", "-c", "4096", "--kv", "q8_0", NULL};
	for (int i = 0; want[i]; i++)
		assert_string_equal(av[i], want[i]);
	assert_null(av[9]);
	assert_int_equal(sweepcfg_env(p, m2, 4321, &env, &err), 0);
	assert_string_equal(env[0], "HOST=127.0.0.1:4321");
	assert_string_equal(env[1], "X=m2");
	sweepcfg_strv_free(av);
	sweepcfg_strv_free(env);
	/* defaults */
	assert_true(p->m.until_fail);
	assert_int_equal(p->m.repeats, 3);
	assert_string_equal(p->backends[1].adapter, "openai");
	sweepcfg_free(p);
}

static void test_shards_partition(void **state)
{
	(void)state;
	struct ar_err err = {0};
	struct sweep_plan *p = parse(base, &err);
	assert_non_null(p);
	for (int n = 1; n <= 5; n++) {
		size_t total = 0;
		for (size_t k = 0; k < p->nitems; k++) {
			int hits = 0;
			for (int i = 1; i <= n; i++)
				hits += sweepcfg_in_shard(&p->items[k], i, n);
			assert_int_equal(hits, 1); /* every config in exactly one shard */
			total++;
		}
		assert_int_equal(total, p->nitems);
	}
	int i, n;
	assert_int_equal(sweepcfg_parse_shard("2/4", &i, &n, &err), 0);
	assert_int_equal(i, 2);
	assert_int_equal(n, 4);
	assert_int_equal(sweepcfg_parse_shard("0/4", &i, &n, &err), -1);
	assert_int_equal(sweepcfg_parse_shard("5/4", &i, &n, &err), -1);
	assert_int_equal(sweepcfg_parse_shard("1/", &i, &n, &err), -1);
	sweepcfg_free(p);
}

static void test_bad(void **state)
{
	(void)state;
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{"backends: {a: {command: [s, \"{nope}\"]}}\nmodels: [m]\ntraces: [t]\n", "s.yaml:1: backends.a.command[1]: unknown placeholder '{nope}'"},
		{"backends: {a: {command: [s, \"-p{port}\"]}}\nmodels: [m]\ntraces: [t]\n", "must be a whole element"},
		{"backends: {a: {command: [s]}}\nmodels: [m, m]\ntraces: [t]\n", "listed twice"},
		{"backends: {a: {command: [s]}}\nmodels: [m]\nmatrix: {c: []}\ntraces: [t]\n", "s.yaml:3: matrix.c: empty list"},
		{"backends: {a: {command: [s]}}\nmodels: [m]\nmatrix: {c: [1, 2]}\nname: x\ntraces: [t]\n", "get the same name"},
		{"backends: {a: {command: [s]}}\nmodels: [m]\nexclude: [{ctx: 1}]\ntraces: [t]\n", "not backend, model or a matrix key"},
		{"backends: {a: {command: [s], stop_signal: BOGUS}}\nmodels: [m]\ntraces: [t]\n", "stop_signal"},
		{"backends: {a: {command: [s]}}\nmodels: [m]\n", "traces: missing required field"},
		{"backends: {a: {command: [s]}}\nmodels: [m]\ntraces: [t]\nmeasure: {repeats: 0}\n", "repeats"},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct ar_err err = {0};
		struct sweep_plan *p = parse(cases[k].text, &err);
		if (p || !strstr(err.msg, cases[k].msg))
			fail_msg("case %zu: want '%s', got '%s'", k, cases[k].msg, err.msg);
	}
}

static void test_shell_quotes(void **state)
{
	(void)state;
	struct ar_err err = {0};
	struct sweep_plan *p = parse("backends: {a: {shell: true, command: \"run {model} --p {port}\"}}\n"
				     "models: [\"it's\"]\ntraces: [t]\n", &err);
	assert_non_null(p);
	char **av = NULL;
	assert_int_equal(sweepcfg_argv(p, &p->items[0], 80, &av, &err), 0);
	assert_string_equal(av[0], "/bin/sh");
	assert_string_equal(av[2], "run 'it'\\''s' --p '80'");
	sweepcfg_strv_free(av);
	/* same bytes, same hash; one byte more, another */
	char h1[17], h2[17];
	sweepcfg_hash("abc", 3, h1);
	sweepcfg_hash("abcd", 4, h2);
	assert_string_not_equal(h1, h2);
	sweepcfg_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_shards_partition),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_shell_quotes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
