#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Parses the leading decimal number of s (digits, optional fraction) into *v
 * and points *rest at what follows. Rejects signs, blanks, hex, inf/nan. */
static int lead_number(const char *s, double *v, const char **rest, int allow_frac)
{
	const char *p = s;
	if (!isdigit((unsigned char)*p) && !(allow_frac && *p == '.'))
		return -1;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '.') {
		if (!allow_frac)
			return -1;
		p++;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (p == s || (p == s + 1 && *s == '.'))
		return -1;
	char tmp[64];
	size_t n = (size_t)(p - s);
	if (n >= sizeof tmp)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	char *end;
	*v = strtod(tmp, &end);
	if (errno || *end || !isfinite(*v))
		return -1;
	*rest = p;
	return 0;
}

static int scaled(const char *what, const char *s, double v, double mult, uint64_t *out,
		  struct ar_err *err)
{
	double r = v * mult;
	if (!(r < 18446744073709551615.0))
		return ar_err_set(err, AR_EINVAL, "%s '%s' is too large", what, s);
	if (r != floor(r))
		return ar_err_set(err, AR_EINVAL, "%s '%s' is not a whole number", what, s);
	*out = (uint64_t)r;
	return 0;
}

int units_parse_count(const char *s, uint64_t *out, struct ar_err *err)
{
	if (!s || !*s)
		return ar_err_set(err, AR_EINVAL, "empty number");
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char)*p))
			return ar_err_set(err, AR_EINVAL, "'%s' is not a non-negative integer", s);
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE || *end)
		return ar_err_set(err, AR_EINVAL, "number '%s' is too large", s);
	*out = v;
	return 0;
}

int units_parse_tokens(const char *s, uint64_t *out, struct ar_err *err)
{
	double v;
	const char *rest;
	if (!s || lead_number(s, &v, &rest, 1) < 0)
		return ar_err_set(err, AR_EINVAL, "'%s' is not a token count (e.g. 4096, 32k)",
				  s ? s : "");
	double mult = 1;
	if (!*rest)
		mult = 1;
	else if (!strcasecmp(rest, "k"))
		mult = 1024;
	else if (!strcasecmp(rest, "m"))
		mult = 1024.0 * 1024;
	else
		return ar_err_set(err, AR_EINVAL, "unknown suffix '%s' in token count '%s' (use k or m)",
				  rest, s);
	return scaled("token count", s, v, mult, out, err);
}

int units_parse_bytes(const char *s, uint64_t *out, struct ar_err *err)
{
	static const struct {
		const char *suf;
		double mult;
	} sufs[] = {
		{"", 1}, {"b", 1},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
		{"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0},
		/* bare k/m/g/t: binary, as memory sizes are usually meant */
		{"k", 1024.0}, {"m", 1048576.0}, {"g", 1073741824.0}, {"t", 1099511627776.0},
	};
	double v;
	const char *rest;
	if (!s || lead_number(s, &v, &rest, 1) < 0)
		return ar_err_set(err, AR_EINVAL, "'%s' is not a size (e.g. 512MiB, 2GB)", s ? s : "");
	for (size_t i = 0; i < sizeof sufs / sizeof sufs[0]; i++)
		if (!strcasecmp(rest, sufs[i].suf))
			return scaled("size", s, floor(v * sufs[i].mult), 1, out, err);
	return ar_err_set(err, AR_EINVAL, "unknown unit '%s' in size '%s' (use B, KB, MiB, GB, GiB, ...)",
			  rest, s);
}

int units_parse_duration_ns(const char *s, int64_t *out, struct ar_err *err)
{
	static const struct {
		const char *suf;
		double mult;
	} sufs[] = {
		{"", 1e9}, {"s", 1e9}, {"ms", 1e6}, {"us", 1e3}, {"ns", 1}, {"m", 60e9}, {"h", 3600e9},
	};
	double v;
	const char *rest;
	if (!s || lead_number(s, &v, &rest, 1) < 0)
		return ar_err_set(err, AR_EINVAL, "'%s' is not a duration (e.g. 250ms, 2s, 5m)",
				  s ? s : "");
	for (size_t i = 0; i < sizeof sufs / sizeof sufs[0]; i++) {
		if (strcmp(rest, sufs[i].suf))
			continue;
		double r = v * sufs[i].mult;
		if (!(r < 9.2e18))
			return ar_err_set(err, AR_EINVAL, "duration '%s' is too large", s);
		*out = (int64_t)llround(r);
		return 0;
	}
	return ar_err_set(err, AR_EINVAL, "unknown unit '%s' in duration '%s' (use ns, us, ms, s, m, h)",
			  rest, s);
}

int units_parse_real(const char *s, double *out, struct ar_err *err)
{
	if (!s || !*s)
		return ar_err_set(err, AR_EINVAL, "empty number");
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || isspace((unsigned char)*s))
		return ar_err_set(err, AR_EINVAL, "'%s' is not a number", s);
	/* strtod accepts hex and inf/nan spellings; a config should not */
	for (const char *p = s; *p; p++)
		if (*p == 'x' || *p == 'X' || *p == 'n' || *p == 'N')
			return ar_err_set(err, AR_EINVAL, "'%s' is not a decimal number", s);
	*out = v;
	return 0;
}
