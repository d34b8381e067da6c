/* redact: see redact.h. Rule file format: src/rules/redact.rules (top). */
#include "redact.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rulefile.h"

#define KIND_MAX 32
#define LINE_MAX_BYTES 8192

struct rrule {
	char kind[KIND_MAX];
	pcre2_code *re;
	uint32_t *groups; /* numbers of the groups named `secret` */
	size_t n_groups;
	size_t file; /* index of the file it came from (0 = first loaded) */
	char where[96]; /* FILE:LINE, for messages */
};

struct kstat {
	char kind[KIND_MAX];
	int64_t hits;
};

struct span {
	size_t lo, hi; /* [lo, hi) bytes */
	size_t rule;
};

struct redact {
	struct rrule *v;
	size_t n, cap;
	struct kstat *k;
	size_t nk;
	size_t *rule_kind; /* rule index -> kind index */
	pcre2_match_data *md;
	struct span *sp;
	size_t nsp, capsp;
	struct buf tmp; /* redact_json's synthesised "key": "value" */
};

static const char *builtin_path(void)
{
	return AR_SOURCE_DIR "/src/rules/redact.rules";
}

static void rule_clear(struct rrule *r)
{
	pcre2_code_free(r->re);
	free(r->groups);
	memset(r, 0, sizeof *r);
}

void redact_free(struct redact *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		rule_clear(&r->v[i]);
	free(r->v);
	free(r->k);
	free(r->rule_kind);
	pcre2_match_data_free(r->md);
	free(r->sp);
	buf_free(&r->tmp);
	free(r);
}

static bool kind_ok(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
			return false;
	return n > 0 && n < KIND_MAX;
}

/* Every group named `secret` (PCRE2_DUPNAMES lets a pattern have several,
 * one per alternative). */
static int secret_groups(struct rrule *rule)
{
	uint32_t count = 0, esize = 0;
	PCRE2_SPTR table = NULL;
	pcre2_pattern_info(rule->re, PCRE2_INFO_NAMECOUNT, &count);
	pcre2_pattern_info(rule->re, PCRE2_INFO_NAMEENTRYSIZE, &esize);
	pcre2_pattern_info(rule->re, PCRE2_INFO_NAMETABLE, &table);
	for (uint32_t i = 0; i < count; i++) {
		PCRE2_SPTR e = table + (size_t)i * esize;
		if (strcmp((const char *)e + 2, "secret"))
			continue;
		uint32_t *g = realloc(rule->groups, (rule->n_groups + 1) * sizeof *g);
		if (!g)
			return -1;
		rule->groups = g;
		g[rule->n_groups++] = (uint32_t)((e[0] << 8) | e[1]);
	}
	return 0;
}

/* Removes every rule of `kind` that came from a file before `file`. */
static void drop_kind(struct redact *r, const char *kind, size_t file)
{
	size_t j = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (r->v[i].file < file && !strcmp(r->v[i].kind, kind)) {
			rule_clear(&r->v[i]);
			continue;
		}
		r->v[j++] = r->v[i];
	}
	r->n = j;
}

static int load_file(struct redact *r, const char *path, size_t file, struct ar_err *err)
{
	struct rulefile *rf;
	if (rulefile_open(&rf, path, LINE_MAX_BYTES - 2, true, "redaction rules", err) < 0)
		return -1;
	/* kinds this file already defined (their earlier rules are gone) */
	char (*seen)[KIND_MAX] = NULL;
	size_t nseen = 0;
	int rc = 0;
	char *p;
	while ((rc = rulefile_next(rf, &p, err)) == 1) {
		int lineno = rulefile_lineno(rf);
		char *k = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		char kind[KIND_MAX];
		size_t klen = (size_t)(p - k);
		if (klen >= KIND_MAX || !*p) {
			rc = ar_err_set(err, AR_EFORMAT, "%s:%d: expected 'KIND  PATTERN'", path, lineno);
			goto out;
		}
		memcpy(kind, k, klen);
		kind[klen] = '\0';
		if (!kind_ok(kind)) {
			rc = ar_err_set(err, AR_EFORMAT, "%s:%d: bad kind '%s' (lower-case letters, digits, _)", path,
					lineno, kind);
			goto out;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p) {
			rc = ar_err_set(err, AR_EFORMAT, "%s:%d: kind '%s' has no pattern", path, lineno, kind);
			goto out;
		}
		bool known = false;
		for (size_t i = 0; i < nseen && !known; i++)
			known = !strcmp(seen[i], kind);
		if (!known) {
			void *ns = realloc(seen, (nseen + 1) * sizeof *seen);
			if (!ns) {
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
				goto out;
			}
			seen = ns;
			memcpy(seen[nseen++], kind, KIND_MAX);
			drop_kind(r, kind, file);
		}
		if (!strcmp(p, "-"))
			continue; /* the kind is switched off */
		pcre2_code *re = rulefile_compile(rf, p, PCRE2_DUPNAMES, kind, err);
		if (!re) {
			rc = -1;
			goto out;
		}
		(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 32;
			struct rrule *v = realloc(r->v, cap * sizeof *v);
			if (!v) {
				pcre2_code_free(re);
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
				goto out;
			}
			r->v = v;
			r->cap = cap;
		}
		struct rrule *nr = &r->v[r->n];
		memset(nr, 0, sizeof *nr);
		memcpy(nr->kind, kind, KIND_MAX);
		nr->re = re;
		nr->file = file;
		snprintf(nr->where, sizeof nr->where, "%s:%d", path, lineno);
		r->n++;
		if (secret_groups(nr) < 0) {
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
	}
out:
	free(seen);
	rulefile_close(rf);
	return rc < 0 ? -1 : 0;
}

/* Kind table in rule order, one entry per distinct kind. */
static int index_kinds(struct redact *r, struct ar_err *err)
{
	r->k = calloc(r->n ? r->n : 1, sizeof *r->k);
	r->rule_kind = calloc(r->n ? r->n : 1, sizeof *r->rule_kind);
	if (!r->k || !r->rule_kind)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	for (size_t i = 0; i < r->n; i++) {
		size_t j = 0;
		while (j < r->nk && strcmp(r->k[j].kind, r->v[i].kind))
			j++;
		if (j == r->nk)
			memcpy(r->k[r->nk++].kind, r->v[i].kind, KIND_MAX);
		r->rule_kind[i] = j;
	}
	return 0;
}

int redact_new(struct redact **out, const char *const *extra, size_t n, int no_builtin, struct ar_err *err)
{
	*out = NULL;
	struct redact *r = calloc(1, sizeof *r);
	if (!r)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	size_t file = 0;
	if (!no_builtin && load_file(r, builtin_path(), file++, err) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (load_file(r, extra[i], file++, err) < 0)
			goto fail;
	if (index_kinds(r, err) < 0)
		goto fail;
	r->md = pcre2_match_data_create(64, NULL);
	if (!r->md) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto fail;
	}
	*out = r;
	return 0;
fail:
	redact_free(r);
	return -1;
}

size_t redact_n_kinds(const struct redact *r)
{
	return r ? r->nk : 0;
}

const char *redact_kind(const struct redact *r, size_t i)
{
	return r && i < r->nk ? r->k[i].kind : NULL;
}

int64_t redact_hits(const struct redact *r, size_t i)
{
	return r && i < r->nk ? r->k[i].hits : 0;
}

/* A secret that already is a placeholder (from an earlier pass). */
static bool is_placeholder(const char *s, size_t n)
{
	if (n >= 10 && !memcmp(s, "[REDACTED:", 10))
		return true;
	for (size_t i = 0; i < n; i++)
		if (s[i] != '*')
			return false;
	return true;
}

static int push_span(struct redact *r, size_t lo, size_t hi, size_t rule)
{
	if (r->nsp == r->capsp) {
		size_t cap = r->capsp ? r->capsp * 2 : 16;
		struct span *v = realloc(r->sp, cap * sizeof *v);
		if (!v)
			return -1;
		r->sp = v;
		r->capsp = cap;
	}
	r->sp[r->nsp++] = (struct span){lo, hi, rule};
	return 0;
}

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->rule != y->rule)
		return x->rule < y->rule ? -1 : 1;
	return 0;
}

/* Fills r->sp with the secrets of text[0..n), sorted and merged: overlapping
 * spans become their union, attributed to the earliest rule among them. */
static int collect(struct redact *r, const char *text, size_t n, struct ar_err *err)
{
	r->nsp = 0;
	for (size_t i = 0; i < r->n; i++) {
		const struct rrule *rule = &r->v[i];
		size_t off = 0;
		while (off <= n) {
			int rc = pcre2_match(rule->re, (PCRE2_SPTR)text, n, off, 0, r->md, NULL);
			if (rc == PCRE2_ERROR_NOMATCH)
				break;
			if (rc < 0) {
				/* fail closed: a rule that gave up may have missed a secret */
				PCRE2_UCHAR msg[256];
				pcre2_get_error_message(rc, msg, sizeof msg);
				return ar_err_set(err, AR_ELIMIT, "redaction rule '%s' (%s) failed on the input: %s",
						  rule->kind, rule->where, (const char *)msg);
			}
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
			size_t lo = ov[0], hi = ov[1];
			for (size_t g = 0; g < rule->n_groups; g++) {
				uint32_t gi = rule->groups[g];
				if ((int)gi < rc && ov[2 * gi] != PCRE2_UNSET) {
					lo = ov[2 * gi];
					hi = ov[2 * gi + 1];
					break;
				}
			}
			if (hi > lo && !is_placeholder(text + lo, hi - lo) && push_span(r, lo, hi, i) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			size_t next = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
			while (next < n && ((unsigned char)text[next] & 0xC0) == 0x80)
				next++; /* start on a character boundary */
			if (next <= off)
				next = off + 1;
			off = next;
		}
	}
	if (r->nsp < 2)
		return 0;
	qsort(r->sp, r->nsp, sizeof *r->sp, span_cmp);
	size_t j = 0;
	for (size_t i = 1; i < r->nsp; i++) {
		struct span *c = &r->sp[j];
		if (r->sp[i].lo < c->hi) {
			if (r->sp[i].hi > c->hi)
				c->hi = r->sp[i].hi;
			if (r->sp[i].rule < c->rule)
				c->rule = r->sp[i].rule;
		} else {
			r->sp[++j] = r->sp[i];
		}
	}
	r->nsp = j + 1;
	return 0;
}

/* Writes the placeholder for a secret of n bytes of `kind` to dst. */
static void placeholder(char *dst, size_t n, const char *kind)
{
	char ph[KIND_MAX + 16];
	int pl = snprintf(ph, sizeof ph, "[REDACTED:%s]", kind);
	if (pl < 0 || (size_t)pl > n) {
		memset(dst, '*', n);
		return;
	}
	memcpy(dst, ph, (size_t)pl);
	memset(dst + pl, '*', n - (size_t)pl);
}

/* Redacts p[lo..hi) of the n-byte text p in place, passes until nothing new
 * is found: a placeholder can complete another rule's match (a generic rule
 * blocked by a character that was part of a URL password), and redacting
 * the output again must find nothing. Matches may use the text outside
 * [lo, hi) as context; only bytes inside it change. Returns hits or -1. */
#define MAX_PASSES 4
static int64_t redact_inplace(struct redact *r, char *p, size_t n, size_t lo, size_t hi, struct ar_err *err)
{
	int64_t hits = 0;
	for (int pass = 0; pass < MAX_PASSES; pass++) {
		if (collect(r, p, n, err) < 0)
			return -1;
		int64_t got = 0;
		for (size_t i = 0; i < r->nsp; i++) {
			size_t a = r->sp[i].lo > lo ? r->sp[i].lo : lo;
			size_t b = r->sp[i].hi < hi ? r->sp[i].hi : hi;
			if (b <= a)
				continue;
			size_t k = r->rule_kind[r->sp[i].rule];
			placeholder(p + a, b - a, r->k[k].kind);
			r->k[k].hits++;
			got++;
		}
		hits += got;
		if (!got)
			break;
	}
	return hits;
}

int64_t redact_text(struct redact *r, const char *text, size_t n, struct buf *out, struct ar_err *err)
{
	size_t start = out->len;
	if (buf_append(out, text, n) < 0) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		return ar_err_set(err, AR_ELIMIT, "redacted text of %zu bytes does not fit its buffer", n);
	}
	int64_t hits = redact_inplace(r, out->data + start, n, 0, n, err);
	if (hits < 0) {
		out->len = start;
		out->data[start] = '\0';
	}
	return hits;
}

/* One string value; `key` is its object member name or NULL. The rules see
 * `"key": "value"` so context patterns (api_key = "...") work on JSON too;
 * only bytes inside the value are replaced. */
static int64_t redact_string(struct redact *r, const char *key, char *val, struct ar_err *err)
{
	size_t vlen = strlen(val);
	if (!key)
		return redact_inplace(r, val, vlen, 0, vlen, err);
	buf_reset(&r->tmp);
	if (buf_putc(&r->tmp, '"') < 0 || buf_puts(&r->tmp, key) < 0 || buf_puts(&r->tmp, "\": \"") < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	size_t vlo = r->tmp.len;
	if (buf_append(&r->tmp, val, vlen) < 0 || buf_putc(&r->tmp, '"') < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	int64_t hits = redact_inplace(r, r->tmp.data, r->tmp.len, vlo, vlo + vlen, err);
	if (hits > 0)
		memcpy(val, r->tmp.data + vlo, vlen);
	return hits;
}

static int64_t walk(struct redact *r, cJSON *node, const char *key, int depth, struct ar_err *err)
{
	if (depth > 10000)
		return ar_err_set(err, AR_ELIMIT, "JSON nested deeper than 10000 levels");
	if (cJSON_IsString(node)) {
		if (!node->valuestring)
			return 0;
		return redact_string(r, key, node->valuestring, err);
	}
	int64_t total = 0;
	if (cJSON_IsObject(node) || cJSON_IsArray(node)) {
		bool obj = cJSON_IsObject(node);
		for (cJSON *c = node->child; c; c = c->next) {
			int64_t h = walk(r, c, obj ? c->string : NULL, depth + 1, err);
			if (h < 0)
				return -1;
			total += h;
		}
	}
	return total;
}

int64_t redact_json(struct redact *r, cJSON *root, struct ar_err *err)
{
	if (!root)
		return 0;
	return walk(r, root, NULL, 0, err);
}
