/* utf8: validation of UTF-8 text (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF). */
#ifndef AR_UTF8_H
#define AR_UTF8_H

#include <stddef.h>

/* Returns the byte offset of the first invalid sequence, or `n` when all of
 * s[0..n) is valid UTF-8. */
size_t utf8_check(const char *s, size_t n);

#endif
