#include "utf8.h"

#include <stdint.h>
#include <string.h>

#include "buf.h"

size_t utf8_check(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		/* fast path: 8 ASCII bytes at a time */
		if (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (!(w & 0x8080808080808080ULL)) {
				i += 8;
				continue;
			}
		}
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		unsigned lo = 0x80, hi = 0xBF;
		if (c >= 0xC2 && c <= 0xDF)
			len = 2;
		else if (c >= 0xE0 && c <= 0xEF) {
			len = 3;
			if (c == 0xE0)
				lo = 0xA0; /* overlong */
			if (c == 0xED)
				hi = 0x9F; /* surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4;
			if (c == 0xF0)
				lo = 0x90;
			if (c == 0xF4)
				hi = 0x8F;
		} else
			return i;
		if (i + len > n)
			return i;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k < len; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
		i += len;
	}
	return n;
}

long utf8_repair(const char *s, size_t n, struct buf *out)
{
	long fixed = 0;
	size_t i = 0;
	while (i < n) {
		size_t ok = utf8_check(s + i, n - i);
		if (buf_append(out, s + i, ok) < 0)
			return -1;
		i += ok;
		if (i < n) {
			if (buf_append(out, "\xEF\xBF\xBD", 3) < 0)
				return -1;
			fixed++;
			i++;
		}
	}
	return fixed;
}
