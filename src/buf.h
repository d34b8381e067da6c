/* buf: a growable byte buffer with a ceiling.
 *
 * Every growable buffer in agentreplay has a maximum size (`max`, 0 = SIZE_MAX/2):
 * input from traces and servers is untrusted, and a 1 GB line must become a
 * classified error, not an out-of-memory of our own. The data is always
 * NUL-terminated (data[len] == 0) once anything was appended, so it can be
 * used as a C string when it holds text.
 *
 * Ownership: the buffer owns `data`; buf_free() releases it. A zeroed struct
 * (or BUF_INIT) is an empty buffer with no ceiling.
 */
#ifndef AR_BUF_H
#define AR_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* ceiling on len; 0 = no ceiling */
};

#define BUF_INIT {NULL, 0, 0, 0}

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* Sets len to 0, keeps the allocation. */
void buf_reset(struct buf *b);
/* Each returns 0, or -1 when the ceiling would be passed or memory runs out
 * (the buffer is unchanged then). */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Removes the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Hands the data to the caller (free() it); the buffer becomes empty. Never NULL
 * (an empty buffer yields ""), or NULL on allocation failure. */
char *buf_detach(struct buf *b);

#endif
