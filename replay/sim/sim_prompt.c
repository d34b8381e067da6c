/* sim_prompt: the materialised prompt as a chain of block hashes.
 *
 * A server reuses the longest cached prefix of a prompt's tokens. We have
 * no tokenizer, so the prompt is cut into blocks of about SIM_BLOCK_TOKENS
 * estimated tokens (src/tokest.h), never straddling a message, and each
 * block's hash covers its bytes and everything before it (a chain). Two
 * prompts then share exactly the blocks before their first difference:
 * a nonce at the start of the system prompt changes every block, compaction
 * (keep:0 + summary) keeps only the system and tools blocks, an edited
 * message keeps the blocks before the edit. Synthetic messages hash their
 * block ids (equal ids, equal text) and their filler by origin (turn,
 * index), as their expansion on the wire would.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonh.h"
#include "rng.h"
#include "sim_int.h"
#include "tokest.h"

#define SEED0 0x6a09e667f3bcc908ULL
#define MAX_BLOCKS (1u << 26) /* ~4G tokens: a ceiling, not a limit anyone meets */

static inline uint64_t rd64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

uint64_t sim_hash_bytes(const void *data, size_t n, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = sim_mix(seed, (uint64_t)n);
	while (n >= 16) {
		h = sim_mix(rd64(p) ^ h, rd64(p + 8));
		p += 16;
		n -= 16;
	}
	unsigned char tail[16] = {0};
	if (n)
		memcpy(tail, p, n);
	h = sim_mix(rd64(tail) ^ h, rd64(tail + 8) ^ (uint64_t)n);
	return sim_mix(h, 0x9e3779b97f4a7c15ULL);
}

static uint64_t hash_str(const char *s, uint64_t seed) { return sim_hash_bytes(s ? s : "", s ? strlen(s) : 0, seed); }

void sim_prompt_init(struct sim_prompt *p) { memset(p, 0, sizeof *p); }

void sim_prompt_free(struct sim_prompt *p)
{
	if (!p)
		return;
	free(p->hash);
	free(p->end);
	memset(p, 0, sizeof *p);
}

void sim_prompt_reset(struct sim_prompt *p)
{
	p->n = p->n_total = 0;
	p->tokens = p->total_tokens = 0;
	p->prefix_blocks = 0;
	p->prefix_tokens = 0;
	p->ended = false;
	p->pending_salt = 0;
}

static int grow(struct sim_prompt *p, size_t extra)
{
	if (p->n_total + extra <= p->cap)
		return 0;
	size_t cap = p->cap ? p->cap : 64;
	while (cap < p->n_total + extra)
		cap *= 2;
	if (cap > MAX_BLOCKS)
		return -1;
	uint64_t *h = realloc(p->hash, cap * sizeof *h);
	if (!h)
		return -1;
	p->hash = h;
	int64_t *e = realloc(p->end, cap * sizeof *e);
	if (!e)
		return -1;
	p->end = e;
	p->cap = cap;
	return 0;
}

/* Appends one block: its own content hash and token count. */
static int push(struct sim_prompt *p, uint64_t local, int64_t tokens)
{
	if (grow(p, 1) < 0)
		return -1;
	size_t i = p->n_total;
	uint64_t prev = i ? p->hash[i - 1] : SEED0;
	if (p->pending_salt) {
		local = sim_mix(local, p->pending_salt);
		p->pending_salt = 0;
	}
	uint64_t h = sim_mix(prev ^ local, (uint64_t)tokens * 0x9ddfea08eb382d69ULL + 1);
	p->hash[i] = h ? h : 1; /* 0 marks an empty slot in the radix table */
	p->end[i] = (i ? p->end[i - 1] : 0) + tokens;
	p->n_total++;
	p->total_tokens = p->end[i];
	if (!p->ended) {
		p->n = p->n_total;
		p->tokens = p->total_tokens;
	}
	return 0;
}

/* A text of `tokens` tokens cut into blocks of about SIM_BLOCK_TOKENS at
 * proportional byte offsets; `extra` tokens (framing) go to the first block,
 * `salt` (role, ids) into its hash. */
static int push_text(struct sim_prompt *p, uint64_t salt, const char *text, size_t len, int64_t tokens, int64_t extra)
{
	if (tokens < 0)
		tokens = 0;
	int64_t nb = (tokens + SIM_BLOCK_TOKENS - 1) / SIM_BLOCK_TOKENS;
	if (nb < 1)
		nb = 1;
	if ((size_t)nb > len && len > 0)
		nb = (int64_t)len; /* never an empty byte range */
	for (int64_t j = 0; j < nb; j++) {
		size_t a = (size_t)((unsigned __int128)len * (unsigned)j / (unsigned long long)nb);
		size_t b = (size_t)((unsigned __int128)len * (unsigned)(j + 1) / (unsigned long long)nb);
		int64_t t = tokens * (j + 1) / nb - tokens * j / nb;
		uint64_t local = sim_hash_bytes(text ? text + a : "", text ? b - a : 0, j ? 0x51ed27 : salt);
		if (push(p, local, t + (j ? 0 : extra)) < 0)
			return -1;
	}
	return 0;
}

static uint64_t role_salt(const char *role, const char *tool_call_id, const char *name)
{
	return hash_str(name, hash_str(tool_call_id, hash_str(role, 0x726f6c65)));
}

int sim_prompt_add_message(struct sim_prompt *p, const char *role, const char *content, size_t n,
			   const char *tool_call_id, const char *name)
{
	int64_t t = content ? tokest_text(content, n) : 0;
	return push_text(p, role_salt(role, tool_call_id, name), content, content ? n : 0, t,
			 TR_MESSAGE_OVERHEAD_TOKENS);
}

int sim_prompt_add_call(struct sim_prompt *p, const char *name, const char *arguments)
{
	const char *a = arguments ? arguments : "";
	size_t an = strlen(a);
	int64_t t = tokest_text(name ? name : "", name ? strlen(name) : 0) + tokest_text(a, an);
	return push_text(p, hash_str(name, 0xca11), a, an, t, TR_TOOL_CALL_OVERHEAD_TOKENS);
}

int sim_prompt_add_raw(struct sim_prompt *p, const char *text, size_t n, int64_t tokens)
{
	if (tokens < 0)
		tokens = tokest_text(text, n);
	return push_text(p, 0x7261770a, text, n, tokens, 0);
}

void sim_prompt_end(struct sim_prompt *p)
{
	p->n = p->n_total;
	p->tokens = p->total_tokens;
	p->ended = true;
}

int sim_prompt_build_truncated(struct sim_prompt *d, const struct sim_prompt *p, size_t first)
{
	sim_prompt_reset(d);
	size_t keep = p->prefix_blocks < p->n ? p->prefix_blocks : p->n;
	if (grow(d, keep) < 0)
		return -1;
	/* the system and tools blocks are unchanged: same chain */
	if (keep) {
		memcpy(d->hash, p->hash, keep * sizeof *d->hash);
		memcpy(d->end, p->end, keep * sizeof *d->end);
		d->n = d->n_total = keep;
		d->tokens = d->total_tokens = p->end[keep - 1];
	}
	d->prefix_blocks = keep;
	d->prefix_tokens = d->tokens;
	for (size_t i = first > keep ? first : keep; i < p->n; i++) {
		int64_t t = p->end[i] - (i ? p->end[i - 1] : 0);
		if (push(d, sim_mix(p->hash[i], 0x7472756e63), t) < 0)
			return -1;
	}
	sim_prompt_end(d);
	return 0;
}

size_t sim_prompt_lcp(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
	size_t lo = 0, hi = na < nb ? na : nb;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		if (a[mid - 1] == b[mid - 1])
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* A synthetic message: each block id as the text B(id, b) would be, cut
 * into SIM_BLOCK_TOKENS pieces; then the filler, keyed by the origin. */
static int push_synth(struct sim_prompt *p, uint64_t salt, const struct tr_synth *sy, const char *session,
		      int64_t origin, int64_t extra)
{
	int64_t left = sy->tokens;
	bool first = true;
	for (size_t k = 0; k < sy->n_blocks && left > 0; k++) {
		int64_t take = left < sy->block_tokens ? left : sy->block_tokens;
		uint64_t id = sim_mix((uint64_t)sy->blocks[k] + 0x5eed, (uint64_t)sy->block_tokens);
		for (int64_t off = 0, piece = 0; off < take; off += SIM_BLOCK_TOKENS, piece++) {
			int64_t t = take - off < SIM_BLOCK_TOKENS ? take - off : SIM_BLOCK_TOKENS;
			/* a cut block differs from the whole one only where it is cut */
			uint64_t local = sim_mix(id ^ (uint64_t)piece, (uint64_t)t);
			if (first)
				local = sim_mix(local, salt);
			if (push(p, local, t + (first ? extra : 0)) < 0)
				return -1;
			first = false;
		}
		left -= take;
	}
	if (left > 0) {
		uint64_t f = sim_mix(hash_str(session, 0xf111e5), (uint64_t)origin);
		for (int64_t off = 0, piece = 0; off < left; off += SIM_BLOCK_TOKENS, piece++) {
			int64_t t = left - off < SIM_BLOCK_TOKENS ? left - off : SIM_BLOCK_TOKENS;
			uint64_t local = sim_mix(f ^ (uint64_t)piece, (uint64_t)t);
			if (first)
				local = sim_mix(local, salt);
			if (push(p, local, t + (first ? extra : 0)) < 0)
				return -1;
			first = false;
		}
	}
	if (first) /* tokens 0 cannot happen (FORMAT: >= 1); keep the framing anyway */
		return push(p, salt, extra);
	return 0;
}

static int push_message(struct sim_prompt *p, const struct tr_message *m, int64_t tokens, const char *session,
			int64_t origin)
{
	uint64_t salt = role_salt(tr_role_name(m->role), m->tool_call_id, m->name);
	int64_t calls = tr_calls_tokens(m->calls, m->n_calls);
	int64_t body = tokens - calls - TR_MESSAGE_OVERHEAD_TOKENS;
	int rc;
	if (m->synth)
		rc = push_synth(p, salt, m->synth, session, origin, TR_MESSAGE_OVERHEAD_TOKENS);
	else
		rc = push_text(p, salt, m->content, m->content ? m->content_len : 0, body, TR_MESSAGE_OVERHEAD_TOKENS);
	if (rc < 0)
		return -1;
	for (size_t k = 0; k < m->n_calls; k++) {
		const struct tr_tool_call *tc = &m->calls[k];
		const char *a = tc->arguments ? tc->arguments : "";
		size_t an = strlen(a);
		int64_t t = tokest_text(tc->name, strlen(tc->name)) + tokest_text(a, an);
		if (push_text(p, hash_str(tc->id, hash_str(tc->name, 0xca11)), a, an, t, TR_TOOL_CALL_OVERHEAD_TOKENS) < 0)
			return -1;
	}
	return 0;
}

int sim_prompt_build(struct sim_prompt *p, const struct tr_session *ses, const struct convo *c, const char *nonce,
		     struct ar_err *err)
{
	struct buf tools = BUF_INIT;
	int rc = -1;
	if (c->count_only || (c->n && !c->msgs))
		return ar_err_set(err, AR_EINVAL, "sim: the prompt needs the conversation's messages, not only counts");
	sim_prompt_reset(p);
	if (!nonce)
		nonce = "";
	const char *sys = ses->system ? ses->system : "";
	if (*sys) {
		size_t sl = strlen(sys), nl = strlen(nonce);
		/* the nonce is the very first thing the server sees; it is hashed with
		 * the first block and never counted */
		p->pending_salt = nl ? sim_hash_bytes(nonce, nl, 0x6e6f6e6365) : 0;
		if (push_text(p, role_salt("system", NULL, NULL), sys, sl, tokest_text(sys, sl), TR_MESSAGE_OVERHEAD_TOKENS) < 0)
			goto oom;
	} else if (*nonce) {
		p->pending_salt = sim_hash_bytes(nonce, strlen(nonce), 0x6e6f6e6365);
	}
	if (ses->tools && cJSON_GetArraySize(ses->tools) > 0) {
		if (jsonh_put(&tools, ses->tools) < 0)
			goto oom;
		if (push_text(p, 0x746f6f6c73, tools.data, tools.len, tokest_text(tools.data, tools.len), 0) < 0)
			goto oom;
	}
	p->prefix_blocks = p->n_total;
	p->prefix_tokens = p->total_tokens;
	for (size_t i = 0; i < c->n; i++) {
		int64_t origin = c->origin ? c->origin[i] : -1;
		if (push_message(p, &c->msgs[i], c->tokens[i], ses->id, origin) < 0)
			goto oom;
	}
	sim_prompt_end(p);
	if (c->has_pending && c->pending_copy) {
		const struct tr_response *r = c->pending_copy;
		struct tr_message am = {0};
		am.role = TR_ASSISTANT;
		am.content = r->content ? r->content : (char *)"";
		am.content_len = r->content ? r->content_len : 0;
		am.calls = r->calls;
		am.n_calls = r->n_calls;
		if (push_message(p, &am, c->pending_tokens, ses->id, -1) < 0)
			goto oom;
	}
	rc = 0;
	goto out;
oom:
	rc = ar_err_set(err, AR_ENOMEM, "sim: out of memory hashing the prompt");
out:
	buf_free(&tools);
	return rc;
}
