/* Unit test: the generated sessions checked in under traces/examples/
 * (gen-<style>-32k and -128k) still match what the generator makes from the
 * same arguments (seed 1; 10 and 25 turns).
 *
 * The uncompressed bytes are compared, not the .zst files: a different libzstd
 * may compress the same text differently. When the generator, a profile or
 * the core estimator changes on purpose, regenerate the files with
 * generators/make-examples.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "buf.h"
#include "gen.h"
#include "gen_profile.h"

static int read_all(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	char chunk[65536];
	size_t got;
	while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(out, chunk, got);
	fclose(f);
	return 0;
}

/* The decompressed text of a file (plain files pass through). */
static int text_of(const char *path, struct buf *out)
{
	struct buf raw = BUF_INIT;
	if (read_all(path, &raw) < 0)
		return -1;
	static const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
	if (raw.len < 4 || memcmp(raw.data, magic, 4)) {
		buf_append(out, raw.data, raw.len);
		buf_free(&raw);
		return 0;
	}
	ZSTD_DStream *z = ZSTD_createDStream();
	ZSTD_initDStream(z);
	ZSTD_inBuffer in = {raw.data, raw.len, 0};
	char tmp[1 << 16];
	int rc = 0;
	while (in.pos < in.size) {
		ZSTD_outBuffer o = {tmp, sizeof tmp, 0};
		size_t r = ZSTD_decompressStream(z, &o, &in);
		if (ZSTD_isError(r)) {
			rc = -1;
			break;
		}
		buf_append(out, tmp, o.pos);
	}
	ZSTD_freeDStream(z);
	buf_free(&raw);
	return rc;
}

static void test_examples_match(void **state)
{
	(void)state;
	static const char *const styles[] = {"claude-code", "codex", "aider", "generic"};
	static const struct {
		const char *name;
		int64_t depth, turns;
	} sizes[] = {{"32k", 32768, 10}, {"128k", 131072, 25}};
	char dir[] = "/tmp/ar-test-examples-XXXXXX";
	assert_non_null(mkdtemp(dir));
	for (int s = 0; s < 4; s++) {
		char path[4096];
		struct gen_profile *p = NULL;
		struct ar_err err = {0};
		assert_int_equal(gen_profile_path(styles[s], path, sizeof path, &err), 0);
		if (gen_profile_load(&p, path, &err) < 0)
			fail_msg("%s", err.msg);
		for (int k = 0; k < 2; k++) {
			char example[4096], fresh[4200];
			snprintf(example, sizeof example, "%s/traces/examples/gen-%s-%s.jsonl.zst", AR_SOURCE_DIR, styles[s],
				 sizes[k].name);
			snprintf(fresh, sizeof fresh, "%s/%s-%s.jsonl", dir, styles[s], sizes[k].name);
			struct gen_opts o;
			memset(&o, 0, sizeof o);
			o.profile = p;
			o.seed = 1;
			o.depth = sizes[k].depth;
			o.turns = sizes[k].turns;
			o.sessions = 1;
			if (gen_write(&o, fresh, NULL, &err) < 0)
				fail_msg("%s: %s", fresh, err.msg);
			struct buf want = BUF_INIT, got = BUF_INIT;
			if (text_of(example, &want) < 0)
				fail_msg("cannot read %s (run generators/make-examples.sh)", example);
			assert_int_equal(text_of(fresh, &got), 0);
			if (want.len != got.len || memcmp(want.data, got.data, want.len))
				fail_msg("%s no longer matches the generator (%zu vs %zu bytes); if the change is "
					 "intended, run generators/make-examples.sh",
					 example, want.len, got.len);
			buf_free(&want);
			buf_free(&got);
			unlink(fresh);
		}
		gen_profile_free(p);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_examples_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
