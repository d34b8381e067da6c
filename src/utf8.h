/* utf8: validation of UTF-8 text (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF). */
#ifndef AR_UTF8_H
#define AR_UTF8_H

#include <stddef.h>

/* Returns the byte offset of the first invalid sequence, or `n` when all of
 * s[0..n) is valid UTF-8. */
size_t utf8_check(const char *s, size_t n);

struct buf;
/* Appends s[0..n) to out with every invalid byte replaced by U+FFFD (the
 * WHATWG "maximal subpart" rule simplified to one replacement per byte that
 * cannot start or continue a valid sequence). Returns the number of
 * replacements, or -1 when out cannot grow. */
long utf8_repair(const char *s, size_t n, struct buf *out);

#endif
