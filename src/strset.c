#include "strset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

void strset_init(struct strset *s)
{
	s->slots = NULL;
	s->cap = s->n = 0;
}

void strset_clear(struct strset *s)
{
	for (size_t i = 0; i < s->cap; i++) {
		free(s->slots[i].key);
		s->slots[i].key = NULL;
	}
	s->n = 0;
}

void strset_free(struct strset *s)
{
	if (!s)
		return;
	strset_clear(s);
	free(s->slots);
	strset_init(s);
}

static size_t find(const struct strset_slot *slots, size_t cap, const char *key)
{
	size_t i = (size_t)hash(key) & (cap - 1);
	while (slots[i].key && strcmp(slots[i].key, key))
		i = (i + 1) & (cap - 1);
	return i;
}

bool strset_has(const struct strset *s, const char *key)
{
	if (!s->cap)
		return false;
	return s->slots[find(s->slots, s->cap, key)].key != NULL;
}

int64_t *strset_values(const struct strset *s, const char *key)
{
	if (!s->cap)
		return NULL;
	struct strset_slot *sl = &s->slots[find(s->slots, s->cap, key)];
	return sl->key ? sl->v : NULL;
}

int strset_add(struct strset *s, const char *key)
{
	if ((s->n + 1) * 4 > s->cap * 3) {
		size_t ncap = s->cap ? s->cap * 2 : 16;
		struct strset_slot *ns = calloc(ncap, sizeof *ns);
		if (!ns)
			return -1;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i].key)
				ns[find(ns, ncap, s->slots[i].key)] = s->slots[i];
		free(s->slots);
		s->slots = ns;
		s->cap = ncap;
	}
	size_t i = find(s->slots, s->cap, key);
	if (s->slots[i].key)
		return 0;
	char *dup = strdup(key);
	if (!dup)
		return -1;
	s->slots[i].key = dup;
	s->slots[i].v[0] = s->slots[i].v[1] = 0;
	s->n++;
	return 1;
}
