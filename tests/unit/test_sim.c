/* Unit tests: the simulated backend (replay/sim/): model arithmetic on
 * hand-computed cases, prefix-cache policies, nonces and compaction, OOM
 * at the right turn, configs that do not load, bad profiles and specs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"

static char dir[256];

static void put(const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Round numbers so every figure can be computed by hand. */
static const char *HW = "id: t\nname: test box\nkind: gpu\nmemory_gib: 10\nusable_fraction: 1.0\n"
			"unified_memory: false\nbandwidth_gbs: 100\ncompute_tflops:\n  fp16: 100\n"
			"request_overhead_ms: 0\nestimated: true\nsource: hand\n";
/* 1e9 params, 10 layers, head 1000 x 1000 = 1e6, KV 2 x 10 x 2 x 100 x 2 B = 8000 B/token */
static const char *MODEL = "id: m\nname: test model\nkind: dense\nparams_total_b: 1\nparams_active_b: 1\n"
			   "params_embedding_b: 0\nlayers: 10\nhidden_size: 1000\nattention_heads: 10\nkv_heads: 2\n"
			   "head_dim: 100\nkv_layers: 10\nvocab: 1000\nmax_context: 100000\nestimated: true\nsource: hand\n";
static const char *QUANT = "id: q8\nname: 8 bit\nbits_per_weight: 8\ncompute: fp16\nestimated: true\nsource: hand\n";
static const char *KV = "id: f16\nname: f16\nbits_per_element: 16\nestimated: true\nsource: hand\n";

static void engine(const char *id, const char *policy, const char *extra_cache, const char *alloc, const char *ovf,
		   const char *extra)
{
	char text[4096], rel[128];
	snprintf(text, sizeof text,
		 "id: %s\nname: test engine\napi: llama-server\ncache:\n  policy: %s\n%s"
		 "kv_alloc: %s\nruntime_overhead_gib: 0\ndefault_context: 0\ncontext_overflow: %s\n"
		 "failures:\n"
		 "  ctx_overflow:\n    status: 400\n    body: '{\"error\":\"request ({n_prompt} tokens) exceeds {n_ctx}\"}'\n"
		 "    log: 'E too long'\n"
		 "  oom:\n    mode: exit\n    status: 0\n    log: |\n      E failed to allocate {alloc_mib} MiB\n      E exiting\n"
		 "    exit_code: 1\n"
		 "efficiency:\n  prefill_compute: {dense: 1, moe: 1, hybrid: 1}\n"
		 "  decode_bandwidth: {dense: 1, moe: 1, hybrid: 1}\n"
		 "request_overhead_ms: 0\n%s"
		 "estimated: true\nsource: hand\n",
		 id, policy, extra_cache, alloc, ovf, extra);
	snprintf(rel, sizeof rel, "engines/%s.yaml", id);
	put(rel, text);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/ar-test-sim-XXXXXX");
	assert_non_null(mkdtemp(dir));
	const char *sub[] = {"hardware", "models", "quant", "kv", "engines"};
	for (int i = 0; i < 5; i++) {
		char p[512];
		snprintf(p, sizeof p, "%s/%s", dir, sub[i]);
		mkdir(p, 0755);
	}
	put("hardware/t.yaml", HW);
	put("models/m.yaml", MODEL);
	put("quant/q8.yaml", QUANT);
	put("kv/f16.yaml", KV);
	engine("slots", "slots", "  slots: 2\n", "upfront", "error", "");
	engine("none", "none", "", "upfront", "error", "");
	engine("radix", "radix", "  block_tokens: 16\n", "paged", "error", "memory_fraction: 1.0\n");
	engine("dyn", "slots", "  slots: 4\n", "dynamic", "none", "");
	engine("host", "slots", "  slots: 1\n  host_cache_gib: 1\n  host_restore_gbs: 1\n", "upfront", "error", "");
	engine("trunc", "single", "", "upfront", "truncate", "");
	/* a hybrid model: non-trimmable state */
	put("models/h.yaml", "id: h\nname: hybrid\nkind: hybrid\nparams_total_b: 1\nparams_active_b: 1\nlayers: 10\n"
			     "hidden_size: 1000\nattention_heads: 10\nkv_heads: 2\nhead_dim: 100\nkv_layers: 2\n"
			     "linear_layers: 8\nlinear_state_bytes: 1000000\nvocab: 1000\nmax_context: 100000\n"
			     "estimated: true\nsource: hand\n");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct sim *mk(struct sim_catalog **cat, const char *spec)
{
	struct ar_err err = {0};
	if (!*cat)
		assert_int_equal(sim_catalog_new(cat, dir, &err), 0);
	struct sim *s = NULL;
	char *full = sim_spec_merge("hw=t,model=m,quant=q8,kv=f16", spec);
	assert_non_null(full);
	if (sim_new_in(&s, *cat, full, &err) < 0)
		fail_msg("sim_new '%s': %s", full, err.msg);
	free(full);
	return s;
}

/* A prompt of messages (role, text) with given token counts via raw text. */
static void prompt_of(struct sim_prompt *p, const char *const *texts, size_t n)
{
	sim_prompt_reset(p);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sim_prompt_add_message(p, i ? "user" : "system", texts[i], strlen(texts[i]), NULL, NULL), 0);
	sim_prompt_end(p);
}

static void raw(struct sim_prompt *p, const char *tag, int64_t tokens)
{
	sim_prompt_reset(p);
	assert_int_equal(sim_prompt_add_raw(p, tag, strlen(tag), tokens), 0);
	sim_prompt_end(p);
}

/* ---- arithmetic ------------------------------------------------------------ */

static void test_arithmetic(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct sim *s = mk(&cat, "engine=none,ctx=1000");
	/* decode: 1e9 bytes of weights at 100 GB/s = 10 ms; plus 8000 B/token of KV */
	assert_float_equal(sim_decode_step_ms(s, 1, 0), 10.0, 1e-9);
	assert_float_equal(sim_decode_step_ms(s, 1, 1000), 10.08, 1e-9);
	/* prefill 512 at depth 0: compute 2(1e9 - 1e6) x 512 / 1e14 = 10.22976 ms,
	 * attention 4 x 10 x 100 x 10 x 512 x 513 / 2 / 1e14 = 0.052531 ms; memory
	 * (1e9 + 8000 x 512) / 1e11 = 10.04096 ms; max + head (2e6 / 1e14) */
	double want = 10.22976 + 0.0525312 + 0.00002;
	assert_float_equal(sim_prefill_ms(s, 512, 0), want, 1e-6);
	/* bytes */
	assert_int_equal(sim_seq_bytes(s, 1000), 8000000);
	/* memory at load: weights 1e9 + the whole context's KV up front (8e6) */
	assert_int_equal(sim_mem_bytes(s), 1000000000 + 8000000);
	assert_int_equal(sim_kv_alloc_bytes(s), 8000000);
	/* a request: cold TTFT = prefill of the prompt; decode of 3 tokens = 2 steps */
	struct sim_prompt p;
	sim_prompt_init(&p);
	raw(&p, "a", 512);
	struct sim_result r;
	struct ar_err err;
	assert_int_equal(sim_request(s, &p, 3, &r, &err), 0);
	assert_string_equal(r.outcome, "ok");
	assert_int_equal(r.prompt_tokens, 512);
	assert_int_equal(r.cached_tokens, 0);
	assert_float_equal(r.ttft_ms, want, 1e-6);
	assert_float_equal(r.ttft_cold_ms, want, 1e-6);
	assert_float_equal(r.decode_ms, (10 + 513 * 0.00008) + (10 + 514 * 0.00008), 1e-9);
	assert_float_equal(r.decode_tps, 2 / (r.decode_ms / 1e3), 1e-9);
	assert_int_equal(r.completion_tokens, 3);
	sim_prompt_free(&p);
	sim_free(s);
	sim_catalog_free(cat);
}

static void test_attention_grows_with_depth(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct sim *s = mk(&cat, "engine=none,ctx=100000");
	/* the same 512 tokens cost more at depth: the attention term */
	double a = sim_prefill_ms(s, 512, 0), b = sim_prefill_ms(s, 512, 65536);
	double extra = 4.0 * 10 * 100 * 10 * 512 * 65536 / 1e14 * 1e3;
	assert_float_equal(b - a, extra, 1e-6);
	/* chunking: 4096 tokens = 8 chunks summed, closed form equals the loop */
	double sum = 0;
	for (int i = 0; i < 8; i++)
		sum += sim_prefill_ms(s, 512, 512 * i) - 2e6 / 1e14 * 1e3;
	assert_float_equal(sim_prefill_ms(s, 4096, 0), sum + 2e6 / 1e14 * 1e3, 1e-6);
	sim_free(s);
	sim_catalog_free(cat);
}

/* ---- caches ------------------------------------------------------------------ */

static void test_slots_prefix_reuse(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct sim *s = mk(&cat, "engine=slots,ctx=50000");
	struct sim_prompt p;
	struct sim_result r;
	struct ar_err err;
	sim_prompt_init(&p);
	const char *t1[] = {"You are a coding agent.", "Fix the failing test in src/ring.c, it crashes."};
	prompt_of(&p, t1, 2);
	int64_t first = p.tokens;
	assert_int_equal(sim_request(s, &p, 8, &r, &err), 0);
	assert_int_equal(r.cached_tokens, 0);
	/* the same prompt again: all but the last token */
	assert_int_equal(sim_request(s, &p, 8, &r, &err), 0);
	assert_int_equal(r.cached_tokens, first - 1);
	assert_true(r.prefill_ms <= sim_prefill_ms(s, first, 0));
	/* an extension: the whole earlier prompt */
	const char *t2[] = {"You are a coding agent.", "Fix the failing test in src/ring.c, it crashes.",
			    "Here is the output of make test: 3 failures."};
	prompt_of(&p, t2, 3);
	assert_int_equal(sim_request(s, &p, 8, &r, &err), 0);
	assert_int_equal(r.cached_tokens, first);
	/* an unshared prompt takes the other slot; the first is still there */
	const char *t3[] = {"You are a reviewer.", "Review this."};
	prompt_of(&p, t3, 2);
	assert_int_equal(sim_request(s, &p, 8, &r, &err), 0);
	assert_int_equal(r.cached_tokens, 0);
	prompt_of(&p, t2, 3);
	assert_int_equal(sim_request(s, &p, 8, &r, &err), 0);
	assert_int_equal(r.cached_tokens, p.tokens - 1);
	/* reset */
	sim_reset_cache(s);
	assert_int_equal(sim_request(s, &p, 8, &r, &err), 0);
	assert_int_equal(r.cached_tokens, 0);
	sim_prompt_free(&p);
	sim_free(s);
	sim_catalog_free(cat);
}

static void test_none_and_radix(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct sim_prompt p;
	struct sim_result r;
	struct ar_err err;
	sim_prompt_init(&p);
	const char *t[] = {"system text of some length for the test", "a user message"};
	prompt_of(&p, t, 2);
	struct sim *s = mk(&cat, "engine=none,ctx=50000");
	sim_request(s, &p, 4, &r, &err);
	sim_request(s, &p, 4, &r, &err);
	assert_int_equal(r.cached_tokens, 0);
	sim_free(s);
	/* radix: reuse rounds down to the engine's 16-token blocks */
	s = mk(&cat, "engine=radix,ctx=50000");
	raw(&p, "x", 1000);
	sim_request(s, &p, 4, &r, &err);
	sim_request(s, &p, 4, &r, &err);
	assert_int_equal(r.cached_tokens, 992); /* 999 rounded down to 16 */
	sim_free(s);
	sim_prompt_free(&p);
	sim_catalog_free(cat);
}

static void test_radix_lru_eviction(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct sim_prompt a, b, c;
	struct sim_result r;
	struct ar_err err;
	sim_prompt_init(&a);
	sim_prompt_init(&b);
	sim_prompt_init(&c);
	/* pool: 10 GiB - 1e9 weights = ~9.74e9 B / 8000 B = ~1.2M tokens; use 3 x 500k */
	struct sim *s = mk(&cat, "engine=radix,ctx=600000");
	raw(&a, "A", 500000);
	raw(&b, "B", 500000);
	raw(&c, "C", 500000);
	sim_request(s, &a, 1, &r, &err);
	sim_request(s, &b, 1, &r, &err);
	sim_request(s, &a, 1, &r, &err); /* a is now more recent than b */
	assert_true(r.cached_tokens > 490000);
	sim_request(s, &c, 1, &r, &err); /* evicts b, the least recently used */
	sim_request(s, &a, 1, &r, &err);
	assert_true(r.cached_tokens > 490000);
	sim_request(s, &b, 1, &r, &err);
	assert_int_equal(r.cached_tokens, 0);
	sim_prompt_free(&a);
	sim_prompt_free(&b);
	sim_prompt_free(&c);
	sim_free(s);
	sim_catalog_free(cat);
}

static void test_host_tier(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct sim_prompt a, b;
	struct sim_result r;
	struct ar_err err;
	sim_prompt_init(&a);
	sim_prompt_init(&b);
	struct sim *s = mk(&cat, "engine=host,ctx=50000");
	raw(&a, "A", 10000);
	raw(&b, "B", 10000);
	sim_request(s, &a, 1, &r, &err);
	int64_t mem0 = r.mem_bytes;
	sim_request(s, &b, 1, &r, &err); /* one slot: a is saved to host RAM first */
	assert_int_equal(r.cached_tokens, 0);
	/* saving a's 10000 tokens x 8000 B at 1 GB/s = 80 ms inside the TTFT */
	assert_float_equal(r.overhead_ms, 80.0, 1e-6); /* 10000 tokens x 8000 B at 1 GB/s */
	assert_int_equal(r.mem_bytes - mem0, 80000000);
	sim_request(s, &a, 1, &r, &err); /* restored from RAM */
	assert_int_equal(r.cached_tokens, 9999);
	assert_int_equal(r.restored_tokens, 9999);
	assert_true(r.ttft_ms < r.ttft_cold_ms);
	sim_prompt_free(&a);
	sim_prompt_free(&b);
	sim_free(s);
	sim_catalog_free(cat);
}

static void test_hybrid_snapshots(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct sim_prompt p;
	struct sim_result r;
	struct ar_err err;
	sim_prompt_init(&p);
	struct sim *s = mk(&cat, "engine=slots,ctx=50000,model=h");
	const char *t1[] = {"system prompt here", "message one with some words", "message two with more words"};
	const char *t2[] = {"system prompt here", "message one with some words", "a rewritten second message"};
	prompt_of(&p, t1, 3);
	sim_request(s, &p, 1, &r, &err);
	/* the rewrite shares a prefix, but the recurrent state cannot go back to
	 * it: no snapshot there, so nothing is reused */
	prompt_of(&p, t2, 3);
	sim_request(s, &p, 1, &r, &err);
	assert_int_equal(r.cached_tokens, 0);
	sim_free(s);
	/* the same with a dense model reuses the shared prefix */
	s = mk(&cat, "engine=slots,ctx=50000");
	prompt_of(&p, t1, 3);
	sim_request(s, &p, 1, &r, &err);
	prompt_of(&p, t2, 3);
	sim_request(s, &p, 1, &r, &err);
	assert_true(r.cached_tokens > 0);
	sim_free(s);
	sim_prompt_free(&p);
	sim_catalog_free(cat);
}

/* ---- traces: nonce, compaction, OOM turn ------------------------------------- */

struct collect {
	struct sim_result r[64];
	int64_t ctx[64];
	char evidence[64][256];
	int n;
};

static int on_req(void *ctx, size_t i, const struct tr_session *ses, const struct tr_turn *t, const struct sim_prompt *p,
		  const struct sim_result *r)
{
	(void)i;
	(void)ses;
	(void)t;
	struct collect *c = ctx;
	if (c->n < 64) {
		c->r[c->n] = *r;
		c->ctx[c->n] = p->tokens;
		snprintf(c->evidence[c->n], sizeof c->evidence[0], "%s", r->evidence);
		c->n++;
	}
	return 0;
}

static void write_trace(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static const char *TRACE =
	"{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"s\",\"system\":\"You are a careful coding agent. Read before you edit.\"}\n"
	"{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":20000}}],\"response\":{\"content\":\"ok\",\"output_tokens\":10}}\n"
	"{\"type\":\"turn\",\"i\":1,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":20000}}],\"response\":{\"content\":\"ok\",\"output_tokens\":10}}\n"
	"{\"type\":\"turn\",\"i\":2,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":20000}}],\"response\":{\"content\":\"ok\",\"output_tokens\":10}}\n"
	"{\"type\":\"turn\",\"i\":3,\"keep\":0,\"append\":[{\"role\":\"user\",\"content\":\"Summary: we fixed the ring buffer.\"}],\"response\":{\"content\":\"ok\",\"output_tokens\":10}}\n"
	"{\"type\":\"turn\",\"i\":4,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":20000,\"blocks\":[1,2,3,4,5],\"block_tokens\":4000}}],\"response\":{\"content\":\"ok\",\"output_tokens\":10}}\n";

static void test_trace_nonce_compaction(void **state)
{
	(void)state;
	char path[300];
	snprintf(path, sizeof path, "%s/t.jsonl", dir);
	write_trace(path, TRACE);
	struct sim_catalog *cat = NULL;
	struct sim *s = mk(&cat, "engine=slots,ctx=100000");
	struct collect c = {0};
	struct ar_err err = {0};
	struct sim_run_opts o = {.nonce = "n1"};
	if (sim_run_trace(&s, 1, path, &o, on_req, &c, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(c.n, 5);
	assert_int_equal(c.r[0].cached_tokens, 0);
	/* turn 1 reuses turn 0's prompt and its answer */
	assert_int_equal(c.r[1].cached_tokens, c.ctx[0] + 4 + 1);
	assert_int_equal(c.r[2].cached_tokens, c.ctx[1] + 4 + 1);
	/* compaction: only the system prompt survives */
	int64_t sys = c.ctx[3] - (4 + 9);
	assert_true(c.r[3].cached_tokens >= sys - 4 && c.r[3].cached_tokens <= sys + 4);
	assert_true(c.r[3].cached_tokens < 100);
	/* a new nonce: nothing matches any more */
	c.n = 0;
	o.nonce = "n2";
	assert_int_equal(sim_run_trace(&s, 1, path, &o, on_req, &c, &err), 0);
	assert_int_equal(c.r[0].cached_tokens, 0);
	/* the first nonce again: its slot went on to the compacted context, so
	 * only the system prompt is still shared (as llama-server's slots do) */
	c.n = 0;
	o.nonce = "n1";
	assert_int_equal(sim_run_trace(&s, 1, path, &o, on_req, &c, &err), 0);
	assert_true(c.r[0].cached_tokens > 0 && c.r[0].cached_tokens < 100);
	/* with a cache reset in between, nothing */
	sim_reset_cache(s);
	c.n = 0;
	assert_int_equal(sim_run_trace(&s, 1, path, &o, on_req, &c, &err), 0);
	assert_int_equal(c.r[0].cached_tokens, 0);
	sim_free(s);
	sim_catalog_free(cat);
}

static void test_synthetic_blocks_share(void **state)
{
	(void)state;
	/* two sessions with the same block ids share the prefix; filler does not */
	char path[300];
	snprintf(path, sizeof path, "%s/b.jsonl", dir);
	write_trace(path,
		    "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"a\"}\n"
		    "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":3000,\"blocks\":[7,8,9],\"block_tokens\":1000}}]}\n"
		    "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"b\"}\n"
		    "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":3500,\"blocks\":[7,8,9],\"block_tokens\":1000}}]}\n"
		    "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"c\"}\n"
		    "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":3000}}]}\n"
		    "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"d\"}\n"
		    "{\"type\":\"turn\",\"i\":0,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":3000}}]}\n");
	struct sim_catalog *cat = NULL;
	struct sim *s = mk(&cat, "engine=radix,ctx=100000");
	struct collect c = {0};
	struct ar_err err = {0};
	assert_int_equal(sim_run_trace(&s, 1, path, NULL, on_req, &c, &err), 0);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.r[1].prompt_tokens, 3504);
	assert_int_equal(c.r[1].cached_tokens, 3504 / 16 * 16 > 3000 ? 3000 / 16 * 16 : 0); /* 4 + 3000 shared -> 3004 -> 3000 */
	assert_int_equal(c.r[3].cached_tokens, 0); /* filler is unique to its session */
	sim_free(s);
	sim_catalog_free(cat);
}

static void test_oom_at_the_right_turn(void **state)
{
	(void)state;
	/* dynamic KV: budget 10 GiB - 1e9 weights = 9.737e9 B = 1,217,129 tokens of 8000 B.
	 * 25 turns of +60,000 tokens: the sequence of turn k holds ~60,000 (k + 1)
	 * tokens; it first exceeds the room at turn 20 (1.26M) */
	char path[300];
	snprintf(path, sizeof path, "%s/oom.jsonl", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"type\":\"session\",\"format\":\"agentreplay-trace/1\",\"id\":\"s\"}\n");
	for (int i = 0; i < 25; i++)
		fprintf(f, "{\"type\":\"turn\",\"i\":%d,\"append\":[{\"role\":\"user\",\"synthetic\":{\"tokens\":60000}}],\"response\":{\"output_tokens\":1}}\n", i);
	fclose(f);
	struct sim_catalog *cat = NULL;
	struct sim *s = mk(&cat, "engine=dyn");
	struct collect c = {0};
	struct ar_err err = {0};
	struct sim_run_opts o = {.until_fail = true};
	assert_int_equal(sim_run_trace(&s, 1, path, &o, on_req, &c, &err), 0);
	double room = (10.0 * 1073741824.0 - 1e9) / 8000;
	int want = -1;
	for (int k = 0; k < 25 && want < 0; k++)
		if (c.ctx[k] + 1 > room || k == c.n - 1)
			want = k;
	assert_int_equal(c.n - 1, want);
	assert_int_equal(c.n - 1, 20);
	assert_string_equal(c.r[c.n - 1].outcome, "oom");
	assert_true(c.r[c.n - 1].process_exits);
	assert_non_null(strstr(c.evidence[c.n - 1], "failed to allocate"));
	/* the process is gone: the next request is a crash */
	struct sim_prompt p;
	struct sim_result r;
	sim_prompt_init(&p);
	raw(&p, "x", 10);
	sim_request(s, &p, 1, &r, &err);
	assert_string_equal(r.outcome, "crash");
	assert_int_equal(r.http_status, 0);
	sim_prompt_free(&p);
	sim_free(s);
	sim_catalog_free(cat);
}

static void test_does_not_fit_at_zero_context(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct ar_err err = {0};
	assert_int_equal(sim_catalog_new(&cat, dir, &err), 0);
	/* 20 GiB of weights on a 10 GiB box: created, fails at turn 0 */
	put("models/big.yaml", "id: big\nname: big\nkind: dense\nparams_total_b: 20\nparams_active_b: 20\nlayers: 10\n"
			       "hidden_size: 1000\nattention_heads: 10\nkv_heads: 2\nhead_dim: 100\nkv_layers: 10\n"
			       "vocab: 1000\nmax_context: 1000\nestimated: true\nsource: hand\n");
	struct sim *s = NULL;
	assert_int_equal(sim_new_in(&s, cat, "hw=t,model=big,quant=q8,kv=f16,engine=slots", &err), 0);
	assert_non_null(sim_load_failure(s));
	struct sim_prompt p;
	struct sim_result r;
	sim_prompt_init(&p);
	raw(&p, "x", 10);
	assert_int_equal(sim_request(s, &p, 1, &r, &err), 0);
	assert_string_equal(r.outcome, "oom");
	assert_int_equal(r.http_status, 0);
	assert_true(r.process_exits);
	assert_non_null(strstr(r.evidence, "failed to allocate"));
	assert_int_equal(sim_request(s, &p, 1, &r, &err), 0);
	assert_string_equal(r.outcome, "crash");
	sim_prompt_free(&p);
	sim_free(s);
	/* up-front KV that does not fit: the whole context on a 10 GiB box */
	assert_int_equal(sim_new_in(&s, cat, "hw=t,model=m,quant=q8,kv=f16,engine=slots,ctx=2000000", &err), 0);
	assert_non_null(sim_load_failure(s));
	sim_free(s);
	sim_catalog_free(cat);
}

static void test_ctx_overflow_and_truncate(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct sim *s = mk(&cat, "engine=slots,ctx=1000");
	struct sim_prompt p;
	struct sim_result r;
	struct ar_err err;
	sim_prompt_init(&p);
	raw(&p, "x", 1500);
	assert_int_equal(sim_request(s, &p, 1, &r, &err), 0);
	assert_string_equal(r.outcome, "ctx_overflow");
	assert_int_equal(r.http_status, 400);
	assert_string_equal(r.evidence, "{\"error\":\"request (1500 tokens) exceeds 1000\"}");
	/* the prompt fits, prompt + output does not: generation stops at the context */
	raw(&p, "y", 990);
	assert_int_equal(sim_request(s, &p, 50, &r, &err), 0);
	assert_string_equal(r.outcome, "ok");
	assert_int_equal(r.completion_tokens, 10);
	sim_free(s);
	/* a truncating engine keeps system + newest and succeeds */
	s = mk(&cat, "engine=trunc,ctx=1000");
	sim_prompt_reset(&p);
	sim_prompt_add_raw(&p, "sys", 3, 100);
	sim_prompt_add_raw(&p, "old", 3, 600);
	sim_prompt_add_raw(&p, "new", 3, 600);
	sim_prompt_end(&p);
	p.prefix_blocks = 2; /* 100 tokens: two 64-token blocks */
	p.prefix_tokens = p.end[1];
	assert_int_equal(sim_request(s, &p, 1, &r, &err), 0);
	assert_string_equal(r.outcome, "ok");
	assert_true(r.prompt_tokens <= 1000);
	assert_true(r.truncated_tokens >= 300);
	sim_prompt_free(&p);
	sim_free(s);
	sim_catalog_free(cat);
}

/* ---- bad input ------------------------------------------------------------------ */

static void expect_err(const char *spec, const char *want)
{
	struct sim_catalog *cat = NULL;
	struct ar_err err = {0};
	assert_int_equal(sim_catalog_new(&cat, dir, &err), 0);
	struct sim *s = NULL;
	assert_int_equal(sim_new_in(&s, cat, spec, &err), -1);
	assert_null(s);
	if (!strstr(err.msg, want))
		fail_msg("spec '%s': got '%s', want '%s'", spec, err.msg, want);
	sim_catalog_free(cat);
}

static void test_bad_profiles(void **state)
{
	(void)state;
	put("hardware/neg.yaml", "id: neg\nname: n\nkind: gpu\nmemory_gib: -3\nusable_fraction: 1\nbandwidth_gbs: 1\n"
				 "compute_tflops: {fp16: 1}\nsource: x\n");
	put("hardware/miss.yaml", "id: miss\nname: n\nkind: gpu\nusable_fraction: 1\nbandwidth_gbs: 1\n"
				  "compute_tflops: {fp16: 1}\nsource: x\n");
	put("hardware/type.yaml", "id: type\nname: n\nkind: gpu\nmemory_gib: 8\nusable_fraction: 1\nbandwidth_gbs: fast\n"
				  "compute_tflops: {fp16: 1}\nsource: x\n");
	put("hardware/wrongid.yaml", "id: other\nname: n\nkind: gpu\nmemory_gib: 8\nusable_fraction: 1\nbandwidth_gbs: 1\n"
				     "compute_tflops: {fp16: 1}\nsource: x\n");
	put("hardware/nofp.yaml", "id: nofp\nname: n\nkind: gpu\nmemory_gib: 8\nusable_fraction: 1\nbandwidth_gbs: 1\n"
				  "compute_tflops: {int8: 1}\nsource: x\n");
	put("hardware/broken.yaml", "id: broken\nname: [unclosed\n");
	put("engines/badeff.yaml", "id: badeff\nname: e\napi: openai\ncache: {policy: none}\nkv_alloc: dynamic\n"
				   "runtime_overhead_gib: 0\ndefault_context: 0\ncontext_overflow: error\n"
				   "failures:\n  ctx_overflow: {status: 400}\n  oom: {status: 500}\n"
				   "efficiency:\n  prefill_compute: {dense: 1, moe: 1, hybrid: 1}\n"
				   "  decode_bandwidth: {dense: 1, moe: -0.5, hybrid: 1}\n"
				   "request_overhead_ms: 0\nsource: x\n");
	put("engines/nooom.yaml", "id: nooom\nname: e\napi: openai\ncache: {policy: lru}\nkv_alloc: dynamic\n"
				  "runtime_overhead_gib: 0\ndefault_context: 0\ncontext_overflow: error\n"
				  "failures:\n  ctx_overflow: {status: 400}\n"
				  "efficiency: {}\nrequest_overhead_ms: 0\nsource: x\n");
	expect_err("hw=neg,model=m,quant=q8,kv=f16,engine=none", "neg.yaml:4: memory_gib: must be positive, got -3");
	expect_err("hw=miss,model=m,quant=q8,kv=f16,engine=none", "miss.yaml:1: memory_gib: missing required field");
	expect_err("hw=type,model=m,quant=q8,kv=f16,engine=none",
		   "type.yaml:6: bandwidth_gbs: expected a number, got string 'fast'");
	expect_err("hw=wrongid,model=m,quant=q8,kv=f16,engine=none",
		   "wrongid.yaml:1: id: 'other' does not match the file name 'wrongid'");
	expect_err("hw=nofp,model=m,quant=q8,kv=f16,engine=none", "compute_tflops: needs fp16 or bf16");
	expect_err("hw=broken,model=m,quant=q8,kv=f16,engine=none", "broken.yaml:");
	expect_err("hw=t,model=m,quant=q8,kv=f16,engine=badeff",
		   "badeff.yaml:14: efficiency.decode_bandwidth.moe: must be positive, got -0.5");
	expect_err("hw=t,model=m,quant=q8,kv=f16,engine=nooom", "cache.policy: unknown value 'lru' (one of: none, single, slots, radix)");
	expect_err("hw=t,model=nosuch,quant=q8,kv=f16,engine=none", "unknown model 'nosuch' (known: big, h, m)");
	expect_err("hw=t,model=m,quant=q8,kv=f16,engine=none,color=red", "unknown key 'color'");
	expect_err("hw=t,model=m,quant=q8,kv=f16,engine=none,ctx=12q", "ctx:");
	expect_err("hw=t,model=m,quant=q8,kv=f16,engine=none,ctx=0", "out of range");
	expect_err("hw=t,hw=t,model=m", "hw given twice");
	expect_err("model=/nonexistent/x.yaml,hw=t", "cannot open model profile '/nonexistent/x.yaml'");
	expect_err("frobnicate,hw=t", "'frobnicate' is not a profile id of any kind");
}

static void test_spec_merge_and_describe(void **state)
{
	(void)state;
	char *m = sim_spec_merge("model=a,quant=b,hw=c", "quant=x,kv=y");
	assert_string_equal(m, "model=a,hw=c,quant=x,kv=y");
	free(m);
	struct sim_catalog *cat = NULL;
	struct sim *s = mk(&cat, "engine=slots,ctx=32k");
	assert_string_equal(sim_describe(s), "m q8 kv=f16 on t via slots, ctx 32768");
	assert_non_null(strstr(sim_describe_json(s), "\"kv_bytes_per_token\":8000"));
	assert_string_equal(sim_id(s, SIM_ENGINE), "slots");
	sim_free(s);
	sim_catalog_free(cat);
}

static void test_shipped_profiles_load(void **state)
{
	(void)state;
	struct sim_catalog *cat = NULL;
	struct ar_err err = {0};
	assert_int_equal(sim_catalog_new(&cat, AR_SOURCE_DIR "/replay/sim/profiles", &err), 0);
	for (int k = 0; k < SIM_NKINDS; k++) {
		const struct sim_profile_info *in;
		int n = sim_catalog_list(cat, (enum sim_kind)k, &in, &err);
		if (n < 0)
			fail_msg("%s", err.msg);
		assert_true(n >= 7);
	}
	/* the default spec works and loads */
	struct sim *s = NULL;
	assert_int_equal(sim_new_in(&s, cat, "", &err), 0);
	assert_null(sim_load_failure(s));
	assert_string_equal(sim_id(s, SIM_MODEL), SIM_DEFAULT_MODEL);
	sim_free(s);
	/* a bare id finds its kind; an id of two kinds is ambiguous */
	assert_int_equal(sim_new_in(&s, cat, "rtx-4090,qwen3-8b", &err), 0);
	assert_string_equal(sim_id(s, SIM_HW), "rtx-4090");
	sim_free(s);
	assert_int_equal(sim_new_in(&s, cat, "q8_0", &err), -1);
	assert_non_null(strstr(err.msg, "ambiguous: say quant=q8_0 or kv=q8_0"));
	sim_catalog_free(cat);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arithmetic),
		cmocka_unit_test(test_attention_grows_with_depth),
		cmocka_unit_test(test_slots_prefix_reuse),
		cmocka_unit_test(test_none_and_radix),
		cmocka_unit_test(test_radix_lru_eviction),
		cmocka_unit_test(test_host_tier),
		cmocka_unit_test(test_hybrid_snapshots),
		cmocka_unit_test(test_trace_nonce_compaction),
		cmocka_unit_test(test_synthetic_blocks_share),
		cmocka_unit_test(test_oom_at_the_right_turn),
		cmocka_unit_test(test_does_not_fit_at_zero_context),
		cmocka_unit_test(test_ctx_overflow_and_truncate),
		cmocka_unit_test(test_bad_profiles),
		cmocka_unit_test(test_spec_merge_and_describe),
		cmocka_unit_test(test_shipped_profiles_load),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
