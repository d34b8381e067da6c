/* strset: a set of strings (open addressing, FNV-1a), e.g. the tool-call ids
 * issued so far in a session, with two optional integer values per key (e.g.
 * a session's line and turn count). The set owns copies of its strings. */
#ifndef AR_STRSET_H
#define AR_STRSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strset_slot {
	char *key;
	int64_t v[2];
};

struct strset {
	struct strset_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t n;
};

void strset_init(struct strset *s);
void strset_free(struct strset *s);
void strset_clear(struct strset *s);
/* Returns 1 when added, 0 when already present, -1 on allocation failure. */
int strset_add(struct strset *s, const char *key);
bool strset_has(const struct strset *s, const char *key);
/* The values of key (NULL when absent); writable. */
int64_t *strset_values(const struct strset *s, const char *key);

#endif
