/* sim_cache: the prefix-cache policies of inference engines.
 *
 *   none     nothing is reused.
 *   single   one slot keeps the last sequence (Ollama -np 1).
 *   slots    n slots each keep their last sequence (llama-server -np 4,
 *            mlx-lm's LRU of 10 prompt caches); a request takes the slot with
 *            the longest usable prefix, else an empty or the least recently
 *            used one. With a unified pool (capacity_tokens) the slots share
 *            its cells and idle slots are purged (LRU) to make room. A host
 *            RAM tier (llama-server --cache-ram) saves a slot's sequence
 *            before it is overwritten and restores it on a later prefix match.
 *   radix    a tree of blocks shared by all requests (vLLM, SGLang, oMLX),
 *            capacity in tokens, LRU eviction of leaves; with an SSD tier
 *            evicted blocks move there and are reloaded on a match.
 *
 * Sequences are chains of block hashes (sim_prompt.c), so the longest common
 * prefix of two sequences is a binary search. A model with state that cannot
 * be rolled back (linear attention, sliding window) reuses a prefix only up
 * to a snapshot: the end of an earlier prompt in that slot (the last
 * `checkpoints` of them) or the end of the cached sequence.
 *
 * Cost per request: O(slots x log blocks) to match, O(blocks) to record;
 * radix: O(log blocks) hash probes to match and O(new blocks) to insert.
 */
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"

#define MAX_CKPT 64

struct seq {
	uint64_t *hash;
	int64_t *end;
	size_t n, cap;
	int64_t tokens;
	uint64_t last;
	int64_t ckpt[MAX_CKPT];
	int n_ckpt;
	int64_t bytes; /* host entries: size */
};

/* radix node: one block, keyed by its chained hash */
struct rnode {
	uint64_t key;
	uint64_t parent; /* 0 = root */
	int64_t end;     /* tokens up to and including this block */
	uint64_t last;
	uint32_t kids_mem, kids_all;
	uint8_t tier; /* 1 = device memory, 2 = SSD */
	uint8_t snap;
	uint16_t gen; /* the slot is used only when key != 0 and gen == the table's */
};

struct hent {
	uint64_t last, key;
};

struct sim_cache {
	struct sim_cache_cfg cfg;
	uint64_t clock;
	struct seq *slots;
	int n_slots;
	struct seq *host;
	size_t n_host, cap_host;
	int64_t host_used;
	/* radix */
	struct rnode *tab;
	size_t tcap, tn;
	uint16_t gen; /* bumped by a clear: stale slots read as empty, no memset */
	int64_t mem_tokens;
	struct hent *heap;
	size_t hn, hcap;
};

static void seq_free(struct seq *s)
{
	free(s->hash);
	free(s->end);
	memset(s, 0, sizeof *s);
}

/* s := the first nblocks of p, of which the first `from` are already equal. */
static int seq_assign_from(struct seq *s, const struct sim_prompt *p, size_t from, size_t nblocks)
{
	if (nblocks > s->cap) {
		size_t cap = s->cap ? s->cap : 64;
		while (cap < nblocks)
			cap *= 2;
		uint64_t *h = realloc(s->hash, cap * sizeof *h);
		if (!h)
			return -1;
		s->hash = h;
		int64_t *e = realloc(s->end, cap * sizeof *e);
		if (!e)
			return -1;
		s->end = e;
		s->cap = cap;
	}
	if (from > s->n)
		from = s->n;
	if (from > nblocks)
		from = nblocks;
	if (nblocks > from) {
		memcpy(s->hash + from, p->hash + from, (nblocks - from) * sizeof *s->hash);
		memcpy(s->end + from, p->end + from, (nblocks - from) * sizeof *s->end);
	}
	s->n = nblocks;
	s->tokens = nblocks ? p->end[nblocks - 1] : 0;
	return 0;
}

static int seq_assign(struct seq *s, const struct sim_prompt *p, size_t nblocks)
{
	return seq_assign_from(s, p, 0, nblocks);
}

static int seq_copy(struct seq *d, const struct seq *s)
{
	struct sim_prompt tmp = {0};
	tmp.hash = s->hash;
	tmp.end = s->end;
	if (seq_assign(d, &tmp, s->n) < 0)
		return -1;
	memcpy(d->ckpt, s->ckpt, sizeof d->ckpt);
	d->n_ckpt = s->n_ckpt;
	return 0;
}

int sim_cache_new(struct sim_cache **out, const struct sim_cache_cfg *cfg)
{
	*out = NULL;
	struct sim_cache *c = calloc(1, sizeof *c);
	if (!c)
		return -1;
	c->cfg = *cfg;
	if (c->cfg.engine_block < 1)
		c->cfg.engine_block = 1;
	if (c->cfg.checkpoints > MAX_CKPT)
		c->cfg.checkpoints = MAX_CKPT;
	if (cfg->policy == POL_SINGLE || cfg->policy == POL_SLOTS) {
		c->n_slots = cfg->policy == POL_SINGLE ? 1 : (int)(cfg->slots < 1 ? 1 : cfg->slots);
		if (!(c->slots = calloc((size_t)c->n_slots, sizeof *c->slots))) {
			free(c);
			return -1;
		}
	}
	*out = c;
	return 0;
}

static void host_clear(struct sim_cache *c)
{
	for (size_t i = 0; i < c->n_host; i++)
		seq_free(&c->host[i]);
	c->n_host = 0;
	c->host_used = 0;
}

void sim_cache_clear(struct sim_cache *c)
{
	for (int i = 0; i < c->n_slots; i++) {
		c->slots[i].n = 0;
		c->slots[i].tokens = 0;
		c->slots[i].n_ckpt = 0;
		c->slots[i].last = 0;
	}
	host_clear(c);
	/* keep the table's memory (a reset between sessions is common): a new
	 * generation makes every slot read as empty; memset when it wraps */
	if (c->tab && c->tn && !++c->gen)
		memset(c->tab, 0, c->tcap * sizeof *c->tab);
	c->tn = 0;
	c->mem_tokens = 0;
	c->hn = 0;
}

void sim_cache_free(struct sim_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_slots; i++)
		seq_free(&c->slots[i]);
	free(c->slots);
	host_clear(c);
	free(c->host);
	free(c->tab);
	free(c->heap);
	free(c);
}

static int64_t seq_bytes(const struct sim_cache *c, int64_t n) { return c->cfg.seq_bytes(c->cfg.ctx, n); }

/* Tokens of seq s usable as the prefix of prompt p. */
static int64_t usable(const struct sim_cache *c, const struct seq *s, const struct sim_prompt *p, size_t *lcp_blocks)
{
	if (lcp_blocks)
		*lcp_blocks = 0;
	if (!s->n)
		return 0;
	size_t k = sim_prompt_lcp(p->hash, p->n, s->hash, s->n);
	if (lcp_blocks)
		*lcp_blocks = k;
	if (!k)
		return 0;
	int64_t lcp = p->end[k - 1];
	if (!c->cfg.stateful || c->cfg.reuse == REUSE_PREFIX)
		return lcp;
	/* snapshot positions: the end of the sequence and earlier prompt ends */
	int64_t best = s->tokens <= lcp ? s->tokens : 0;
	for (int i = 0; i < s->n_ckpt; i++)
		if (s->ckpt[i] <= lcp && s->ckpt[i] > best)
			best = s->ckpt[i];
	return best;
}

/* ---- radix table -------------------------------------------------------- */

/* The key of slot i, 0 when the slot is empty or stale. */
static inline uint64_t kat(const struct sim_cache *c, size_t i) { return c->tab[i].gen == c->gen ? c->tab[i].key : 0; }

static size_t slot_of(uint64_t key, size_t cap) { return (size_t)(key * 0x9e3779b97f4a7c15ULL >> 7) & (cap - 1); }

static struct rnode *rfind(const struct sim_cache *c, uint64_t key)
{
	if (!c->tcap || !key)
		return NULL;
	size_t i = slot_of(key, c->tcap);
	uint64_t k;
	while ((k = kat(c, i))) {
		if (k == key)
			return &c->tab[i];
		i = (i + 1) & (c->tcap - 1);
	}
	return NULL;
}

static int rgrow_for(struct sim_cache *c, size_t extra)
{
	/* load at most 1/2: linear probing stays at ~2.5 probes for a miss */
	if ((c->tn + extra) * 2 < c->tcap)
		return 0;
	size_t ncap = c->tcap ? c->tcap * 2 : 1024;
	while ((c->tn + extra) * 2 >= ncap)
		ncap *= 2;
	struct rnode *nt = calloc(ncap, sizeof *nt);
	if (!nt)
		return -1;
	for (size_t i = 0; i < c->tcap; i++) {
		if (!kat(c, i))
			continue;
		size_t j = slot_of(c->tab[i].key, ncap);
		while (nt[j].key)
			j = (j + 1) & (ncap - 1);
		nt[j] = c->tab[i];
	}
	free(c->tab);
	c->tab = nt;
	c->tcap = ncap;
	return 0;
}

/* Finds key or inserts it (*fresh tells which). */
static struct rnode *rinsert(struct sim_cache *c, uint64_t key, bool *fresh)
{
	if ((c->tn + 1) * 2 >= c->tcap && rgrow_for(c, 1) < 0)
		return NULL;
	size_t i = slot_of(key, c->tcap);
	uint64_t k;
	while ((k = kat(c, i)) && k != key)
		i = (i + 1) & (c->tcap - 1);
	*fresh = !k;
	if (*fresh) {
		memset(&c->tab[i], 0, sizeof c->tab[i]);
		c->tab[i].key = key;
		c->tab[i].gen = c->gen;
		c->tn++;
	}
	return &c->tab[i];
}

/* Backward-shift deletion keeps linear probing correct without tombstones. */
static void rdelete(struct sim_cache *c, struct rnode *n)
{
	size_t i = (size_t)(n - c->tab), mask = c->tcap - 1;
	c->tab[i].key = 0;
	c->tn--;
	size_t j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (!kat(c, j))
			break;
		size_t h = slot_of(c->tab[j].key, c->tcap);
		/* can the entry at j move to the hole at i? (h not cyclically in (i, j]) */
		if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
			c->tab[i] = c->tab[j];
			c->tab[j].key = 0;
			i = j;
		}
	}
}

static void hpush(struct sim_cache *c, uint64_t last, uint64_t key)
{
	if (c->hn == c->hcap) {
		size_t cap = c->hcap ? c->hcap * 2 : 256;
		struct hent *nh = realloc(c->heap, cap * sizeof *nh);
		if (!nh)
			return; /* eviction then scans lazily less well; never wrong */
		c->heap = nh;
		c->hcap = cap;
	}
	size_t i = c->hn++;
	c->heap[i].last = last;
	c->heap[i].key = key;
	while (i) {
		size_t p = (i - 1) / 2;
		if (c->heap[p].last <= c->heap[i].last)
			break;
		struct hent t = c->heap[p];
		c->heap[p] = c->heap[i];
		c->heap[i] = t;
		i = p;
	}
}

static struct hent hpop(struct sim_cache *c)
{
	struct hent top = c->heap[0];
	c->heap[0] = c->heap[--c->hn];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < c->hn && c->heap[l].last < c->heap[m].last)
			m = l;
		if (r < c->hn && c->heap[r].last < c->heap[m].last)
			m = r;
		if (m == i)
			break;
		struct hent t = c->heap[m];
		c->heap[m] = c->heap[i];
		c->heap[i] = t;
		i = m;
	}
	return top;
}

/* Rebuilds the heap from the device-tier leaves when stale entries pile up. */
static void hrebuild(struct sim_cache *c)
{
	c->hn = 0;
	for (size_t i = 0; i < c->tcap; i++)
		if (kat(c, i) && c->tab[i].tier == 1 && !c->tab[i].kids_mem)
			hpush(c, c->tab[i].last, c->tab[i].key);
}

/* Largest k such that blocks 0..k-1 of p are present (tier >= min_tier... any
 * tier when any, else device memory only). Presence is prefix-closed. */
static size_t radix_match(const struct sim_cache *c, const struct sim_prompt *p, bool any)
{
	size_t lo = 0, hi = p->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		const struct rnode *n = rfind(c, p->hash[mid - 1]);
		if (n && (any || n->tier == 1))
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static int64_t radix_usable(const struct sim_cache *c, const struct sim_prompt *p, size_t k)
{
	if (!k)
		return 0;
	if (!c->cfg.stateful || c->cfg.reuse == REUSE_PREFIX)
		return p->end[k - 1];
	for (size_t i = k; i > 0; i--) {
		const struct rnode *n = rfind(c, p->hash[i - 1]);
		if (n && n->snap)
			return p->end[i - 1];
	}
	return 0;
}

/* ---- lookup / commit ---------------------------------------------------- */

void sim_cache_lookup(const struct sim_cache *c, const struct sim_prompt *p, int64_t need, struct sim_lookup *l)
{
	memset(l, 0, sizeof *l);
	l->slot = -1;
	l->host_entry = -1;
	if (c->cfg.policy == POL_NONE)
		return;
	if (c->cfg.policy == POL_RADIX) {
		size_t km = radix_match(c, p, false);
		size_t ka = c->cfg.ssd ? radix_match(c, p, true) : km;
		l->match_mem = km;
		l->keep_blocks = ka;
		int64_t use = radix_usable(c, p, ka);
		int64_t mem = km ? p->end[km - 1] : 0;
		l->reuse = use;
		if (use > mem) {
			l->restored = use - mem;
			l->restore_bytes_ssd = seq_bytes(c, use) - seq_bytes(c, mem);
		}
		int64_t add = need - use;
		if (c->cfg.capacity_tokens > 0 && c->mem_tokens + add > c->cfg.capacity_tokens)
			l->evict_tokens = c->mem_tokens + add - c->cfg.capacity_tokens;
		return;
	}
	/* slots */
	int best = -1, empty = -1, lru = -1;
	int64_t best_use = 0;
	for (int i = 0; i < c->n_slots; i++) {
		const struct seq *s = &c->slots[i];
		if (!s->n) {
			if (empty < 0)
				empty = i;
			continue;
		}
		if (lru < 0 || s->last < c->slots[lru].last)
			lru = i;
		size_t kb;
		int64_t u = usable(c, s, p, &kb);
		if (u > best_use || (u == best_use && u > 0 && s->last > c->slots[best].last)) {
			best_use = u;
			best = i;
		}
	}
	int slot = best >= 0 ? best : empty >= 0 ? empty : lru >= 0 ? lru : 0;
	l->slot = slot;
	l->reuse = best_use;
	if (c->slots[slot].n)
		l->keep_blocks = sim_prompt_lcp(p->hash, p->n, c->slots[slot].hash, c->slots[slot].n);
	if (c->cfg.host_bytes > 0) {
		int64_t hbest = best_use;
		for (size_t i = 0; i < c->n_host; i++) {
			int64_t u = usable(c, &c->host[i], p, NULL);
			if (u > hbest) {
				hbest = u;
				l->host_entry = (int)i;
			}
		}
		if (l->host_entry >= 0) {
			l->reuse = hbest;
			l->restored = hbest;
			l->restore_bytes_host = seq_bytes(c, hbest);
		}
	}
	/* the slot's sequence is overwritten unless the prompt extends it */
	const struct seq *s = &c->slots[slot];
	bool extends = s->n && l->host_entry < 0 && best_use >= s->tokens;
	if (s->n && !extends && c->cfg.host_bytes > 0) {
		int64_t b = seq_bytes(c, s->tokens);
		bool have = false;
		for (size_t i = 0; i < c->n_host && !have; i++)
			have = c->host[i].n == s->n && c->host[i].hash[s->n - 1] == s->hash[s->n - 1];
		if (!have && b <= c->cfg.host_bytes)
			l->save_bytes = b;
	}
	/* a unified pool: the other slots' cells plus this request must fit */
	if (c->cfg.capacity_tokens > 0) {
		int64_t others = 0;
		for (int i = 0; i < c->n_slots; i++)
			if (i != slot)
				others += c->slots[i].tokens;
		if (others + need > c->cfg.capacity_tokens)
			l->evict_tokens = others + need - c->cfg.capacity_tokens;
	}
}

static void host_evict_lru(struct sim_cache *c)
{
	size_t v = 0;
	for (size_t i = 1; i < c->n_host; i++)
		if (c->host[i].last < c->host[v].last)
			v = i;
	c->host_used -= c->host[v].bytes;
	seq_free(&c->host[v]);
	c->host[v] = c->host[--c->n_host];
}

static int host_save(struct sim_cache *c, const struct seq *s, int64_t bytes)
{
	while (c->n_host && c->host_used + bytes > c->cfg.host_bytes)
		host_evict_lru(c);
	if (c->n_host == c->cap_host) {
		size_t cap = c->cap_host ? c->cap_host * 2 : 8;
		struct seq *nh = realloc(c->host, cap * sizeof *nh);
		if (!nh)
			return -1;
		c->host = nh;
		c->cap_host = cap;
	}
	struct seq *d = &c->host[c->n_host];
	memset(d, 0, sizeof *d);
	if (seq_copy(d, s) < 0) {
		seq_free(d);
		return -1;
	}
	d->bytes = bytes;
	d->last = ++c->clock;
	c->n_host++;
	c->host_used += bytes;
	return 0;
}

static void add_ckpt(struct sim_cache *c, struct seq *s, int64_t pos)
{
	int max = (int)(c->cfg.checkpoints > 0 ? c->cfg.checkpoints : 0);
	if (!max)
		return;
	for (int i = 0; i < s->n_ckpt; i++)
		if (s->ckpt[i] == pos)
			return;
	if (s->n_ckpt == max) {
		memmove(s->ckpt, s->ckpt + 1, (size_t)(max - 1) * sizeof *s->ckpt);
		s->n_ckpt--;
	}
	s->ckpt[s->n_ckpt++] = pos;
}

/* Blocks of p to record: the prompt plus the continuation blocks generated. */
static size_t record_blocks(const struct sim_prompt *p, int64_t cont_tokens)
{
	size_t n = p->n;
	while (n < p->n_total && p->end[n] <= p->tokens + cont_tokens)
		n++;
	return n;
}

/* Drops SSD-tier leaves when the table grows past a sane size (the tier is
 * modelled as large, not infinite). */
#define SSD_MAX_NODES (1u << 22)
static void ssd_trim(struct sim_cache *c)
{
	for (size_t i = 0; i < c->tcap && c->tn > SSD_MAX_NODES / 2;) {
		struct rnode *n = &c->tab[i];
		if (kat(c, i) && n->tier == 2 && !n->kids_all) {
			uint64_t pk = n->parent;
			rdelete(c, n);
			struct rnode *par = pk ? rfind(c, pk) : NULL;
			if (par)
				par->kids_all--;
			continue; /* slot i now holds a shifted entry (or is empty) */
		}
		i++;
	}
}

static void radix_evict(struct sim_cache *c, int64_t target, uint64_t now)
{
	if (c->hn > 4 * c->tn + 1024)
		hrebuild(c);
	while (c->mem_tokens > target && c->hn) {
		struct hent h = hpop(c);
		struct rnode *n = rfind(c, h.key);
		if (!n || n->tier != 1 || n->kids_mem || n->last != h.last)
			continue;
		if (h.last >= now) { /* only the current request's blocks are left */
			hpush(c, h.last, h.key);
			break;
		}
		uint64_t pk = n->parent, last = n->last;
		struct rnode *par = pk ? rfind(c, pk) : NULL;
		c->mem_tokens -= n->end - (par ? par->end : 0);
		if (c->cfg.ssd)
			n->tier = 2;
		else
			rdelete(c, n); /* entries may shift: find the parent again */
		if (pk && (par = rfind(c, pk))) {
			par->kids_mem--;
			if (!c->cfg.ssd)
				par->kids_all--;
			if (par->last < last)
				par->last = last;
			if (!par->kids_mem && par->tier == 1)
				hpush(c, par->last, par->key);
		}
	}
	if (c->cfg.ssd && c->tn > SSD_MAX_NODES)
		ssd_trim(c);
}

int sim_cache_commit(struct sim_cache *c, const struct sim_prompt *p, const struct sim_lookup *l, int64_t cont_tokens)
{
	uint64_t now = ++c->clock;
	size_t nrec = record_blocks(p, cont_tokens);
	if (c->cfg.policy == POL_NONE)
		return 0;
	if (c->cfg.policy == POL_RADIX) {
		/* restore SSD blocks along the path, stamp, insert the new ones;
		 * the blocks before the device-tier match are there already */
		size_t from = l->match_mem < nrec ? l->match_mem : nrec;
		/* room first, so node pointers stay valid through the loop */
		if (rgrow_for(c, nrec - from) < 0)
			return -1;
		struct rnode *pn = from ? rfind(c, p->hash[from - 1]) : NULL;
		for (size_t i = from; i < nrec; i++) {
			/* the table is bigger than the caches: fetch a few blocks ahead */
			if (i + 8 < nrec)
				__builtin_prefetch(&c->tab[slot_of(p->hash[i + 8], c->tcap)]);
			int64_t t = p->end[i] - (i ? p->end[i - 1] : 0);
			bool fresh;
			struct rnode *n = rinsert(c, p->hash[i], &fresh);
			if (!n)
				return -1;
			if (fresh) {
				n->parent = pn ? pn->key : 0;
				n->end = p->end[i];
				n->tier = 1;
				c->mem_tokens += t;
				if (pn) {
					pn->kids_all++;
					pn->kids_mem++;
				}
			} else if (n->tier == 2) {
				n->tier = 1;
				c->mem_tokens += t;
				if (pn)
					pn->kids_mem++;
			}
			pn = n;
		}
		if (nrec) {
			struct rnode *deep = rfind(c, p->hash[nrec - 1]);
			if (deep) {
				deep->last = now;
				if (!deep->kids_mem)
					hpush(c, now, deep->key);
			}
			if (p->n) {
				struct rnode *pe = rfind(c, p->hash[p->n - 1]);
				if (pe)
					pe->snap = 1;
			}
		}
		if (c->cfg.capacity_tokens > 0 && c->mem_tokens > c->cfg.capacity_tokens)
			radix_evict(c, c->cfg.capacity_tokens, now);
		return 0;
	}
	/* slots */
	if (l->slot < 0 || l->slot >= c->n_slots)
		return 0;
	struct seq *s = &c->slots[l->slot];
	if (l->host_entry >= 0 && (size_t)l->host_entry < c->n_host)
		c->host[l->host_entry].last = now;
	if (l->save_bytes > 0 && host_save(c, s, l->save_bytes) < 0)
		return -1;
	if (l->evict_tokens > 0) {
		int64_t freed = 0;
		while (freed < l->evict_tokens) {
			int v = -1;
			for (int i = 0; i < c->n_slots; i++)
				if (i != l->slot && c->slots[i].n && (v < 0 || c->slots[i].last < c->slots[v].last))
					v = i;
			if (v < 0)
				break;
			freed += c->slots[v].tokens;
			c->slots[v].n = 0;
			c->slots[v].tokens = 0;
			c->slots[v].n_ckpt = 0;
		}
	}
	/* snapshots still valid: those within the reused prefix */
	int64_t keep[MAX_CKPT];
	int nk = 0;
	const struct seq *src = l->host_entry >= 0 && (size_t)l->host_entry < c->n_host ? &c->host[l->host_entry] : s;
	for (int i = 0; i < src->n_ckpt; i++)
		if (src->ckpt[i] <= l->reuse)
			keep[nk++] = src->ckpt[i];
	if (src->tokens <= l->reuse && src->tokens > 0 && nk < MAX_CKPT)
		keep[nk++] = src->tokens;
	size_t from = l->host_entry >= 0 ? 0 : l->keep_blocks;
	if (seq_assign_from(s, p, from, nrec) < 0)
		return -1;
	s->n_ckpt = 0;
	for (int i = 0; i < nk; i++)
		add_ckpt(c, s, keep[i]);
	add_ckpt(c, s, p->tokens);
	s->last = now;
	return 0;
}

int64_t sim_cache_device_tokens(const struct sim_cache *c)
{
	if (c->cfg.policy == POL_RADIX)
		return c->mem_tokens;
	int64_t t = 0;
	for (int i = 0; i < c->n_slots; i++)
		t += c->slots[i].tokens;
	return t;
}

int64_t sim_cache_device_seqs(const struct sim_cache *c)
{
	if (c->cfg.policy == POL_RADIX)
		return c->mem_tokens > 0;
	int64_t n = 0;
	for (int i = 0; i < c->n_slots; i++)
		n += c->slots[i].n > 0;
	return n;
}

int64_t sim_cache_device_bytes(const struct sim_cache *c)
{
	if (c->cfg.policy == POL_RADIX)
		return c->mem_tokens ? seq_bytes(c, c->mem_tokens) : 0;
	int64_t b = 0;
	for (int i = 0; i < c->n_slots; i++)
		if (c->slots[i].n)
			b += seq_bytes(c, c->slots[i].tokens);
	return b;
}

int64_t sim_cache_host_bytes(const struct sim_cache *c) { return c->host_used; }

int64_t sim_cache_slot_tokens(const struct sim_cache *c, int i)
{
	if (i < 0 || i >= c->n_slots)
		return -1;
	return c->slots[i].tokens;
}
