#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ar_strerror(enum ar_code code)
{
	switch (code) {
	case AR_OK: return "ok";
	case AR_EINVAL: return "invalid argument";
	case AR_EFORMAT: return "format error";
	case AR_EIO: return "i/o error";
	case AR_ENOMEM: return "out of memory";
	case AR_ELIMIT: return "limit exceeded";
	case AR_EUNSUPPORTED: return "unsupported";
	case AR_ENET: return "network error";
	case AR_EBACKEND: return "backend error";
	case AR_EINTERNAL: return "internal error";
	}
	return "unknown error";
}

int ar_err_set(struct ar_err *e, enum ar_code code, const char *fmt, ...)
{
	if (!e)
		return -1;
	/* formatted aside first: an argument may be e->msg itself */
	char msg[AR_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	e->code = code;
	memcpy(e->msg, msg, sizeof msg);
	return -1;
}

int ar_err_prefix(struct ar_err *e, const char *fmt, ...)
{
	if (!e)
		return -1;
	char pre[AR_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	char old[AR_ERR_MSG_MAX];
	memcpy(old, e->msg, sizeof old);
	size_t n = strlen(pre);
	if (n > sizeof e->msg - 3)
		n = sizeof e->msg - 3;
	memcpy(e->msg, pre, n);
	memcpy(e->msg + n, ": ", 3);
	size_t rest = sizeof e->msg - n - 3;
	size_t ol = strlen(old);
	if (ol > rest)
		ol = rest;
	memcpy(e->msg + n + 2, old, ol);
	e->msg[n + 2 + ol] = '\0';
	return -1;
}

void ar_err_clear(struct ar_err *e)
{
	if (!e)
		return;
	e->code = AR_OK;
	e->msg[0] = '\0';
}
