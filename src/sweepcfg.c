#include "sweepcfg.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "config.h"
#include "jsonh.h"
#include "units.h"

#define MAX_CONFIGS 100000
#define MAX_FILE (16u << 20)

void sweepcfg_hash(const void *data, size_t n, char out[17])
{
	uint64_t h = 1469598103934665603ull;
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

void sweepcfg_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void backend_free(struct sweep_backend *b)
{
	free(b->id);
	free(b->adapter);
	for (size_t i = 0; i < b->argc; i++)
		free(b->argv[i]);
	free(b->argv);
	free(b->argv_line);
	for (size_t i = 0; i < b->nenv; i++)
		free(b->env[i]);
	free(b->env);
	free(b->env_line);
	free(b->cwd);
	free(b->health);
	free(b->ready);
	free(b->url);
}

static void item_free(struct sweep_item *it)
{
	free(it->key);
	free(it->name);
	free(it->model);
	for (size_t i = 0; i < it->nvars; i++) {
		free(it->vars[i].name);
		free(it->vars[i].value);
	}
	free(it->vars);
	free(it->params_json);
}

void sweepcfg_free(struct sweep_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nbackends; i++)
		backend_free(&p->backends[i]);
	free(p->backends);
	for (size_t i = 0; i < p->ntraces; i++)
		free(p->traces[i]);
	free(p->traces);
	free(p->trace_line);
	for (size_t i = 0; i < p->nitems; i++)
		item_free(&p->items[i]);
	free(p->items);
	free(p->m.extra_json);
	free(p->path);
	free(p->dir);
	free(p);
}

/* ---- scalars ------------------------------------------------------------ */

/* A scalar as text: strings as they are, integers without a fraction,
 * booleans true/false. NULL for anything else. */
static char *scalar_text(const cJSON *v)
{
	char tmp[64];
	if (cJSON_IsString(v))
		return strdup(v->valuestring);
	if (cJSON_IsBool(v))
		return strdup(cJSON_IsTrue(v) ? "true" : "false");
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (d == (double)(long long)d && d > -9e15 && d < 9e15)
			snprintf(tmp, sizeof tmp, "%lld", (long long)d);
		else
			for (int prec = 15; prec <= 17; prec++) {
				/* the shortest text that reads back as the same number: 0.7, not 0.69999999999999996 */
				snprintf(tmp, sizeof tmp, "%.*g", prec, d);
				if (strtod(tmp, NULL) == d)
					break;
			}
		return strdup(tmp);
	}
	return NULL;
}

static int get_duration(const struct config_doc *d, const cJSON *obj, const char *field, int64_t *out,
			struct ar_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
	if (!v)
		return 0;
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble <= 0 || v->valuedouble > 30 * 86400.0)
			return config_error(d, v, field, err, "%g is out of range (seconds, more than 0)", v->valuedouble);
		*out = (int64_t)(v->valuedouble * 1e9);
		return 0;
	}
	if (!cJSON_IsString(v))
		return config_error(d, v, field, err, "expected a duration such as 30s or 500ms");
	struct ar_err e = {0};
	int64_t ns;
	if (units_parse_duration_ns(v->valuestring, &ns, &e) < 0)
		return config_error(d, v, field, err, "%s", e.msg);
	if (ns <= 0)
		return config_error(d, v, field, err, "'%s' must be more than 0", v->valuestring);
	*out = ns;
	return 0;
}

static int parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} sigs[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"KILL", SIGKILL}, {"HUP", SIGHUP},
		    {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if (!strcasecmp(s, sigs[i].name))
			return sigs[i].sig;
	return -1;
}

/* Refuses members not in `known` (typos would otherwise be silently ignored). */
static int check_members(const struct config_doc *d, const cJSON *obj, const char *where, const char *const *known,
			 struct ar_err *err)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, obj) {
		bool ok = false;
		for (const char *const *k = known; *k && !ok; k++)
			ok = !strcmp(*k, c->string);
		if (!ok) {
			char field[256];
			snprintf(field, sizeof field, "%s%s%s", where, *where ? "." : "", c->string);
			struct buf b = BUF_INIT;
			for (const char *const *k = known; *k; k++)
				buf_printf(&b, "%s%s", k == known ? "" : ", ", *k);
			int rc = config_error(d, c, field, err, "unknown field (known: %s)", b.data ? b.data : "");
			buf_free(&b);
			return rc;
		}
	}
	return 0;
}

/* ---- placeholders ------------------------------------------------------- */

static bool ident_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.'; }

/* Length of a "{name}" placeholder at s, 0 when s does not start one. */
static size_t placeholder_at(const char *s)
{
	if (*s != '{' || !(isalpha((unsigned char)s[1]) || s[1] == '_'))
		return 0;
	size_t i = 1;
	while (ident_char(s[i]))
		i++;
	return s[i] == '}' ? i + 1 : 0;
}

struct lookup {
	const struct sweep_item *it;
	const char *backend; /* during expansion, before the item exists */
	const struct sweep_var *vars;
	size_t nvars;
	int port; /* < 0: validation, {port} is known but has no value */
	const char *name;
};

static const char *lookup(const struct lookup *L, const char *name, size_t n, char *tmp, size_t tmpn)
{
	if (n == 4 && !strncmp(name, "port", 4)) {
		if (L->port < 0)
			snprintf(tmp, tmpn, "{port}"); /* validation and --dry-run */
		else
			snprintf(tmp, tmpn, "%d", L->port);
		return tmp;
	}
	if (n == 4 && !strncmp(name, "name", 4) && L->name)
		return L->name;
	for (size_t i = 0; i < L->nvars; i++)
		if (strlen(L->vars[i].name) == n && !strncmp(L->vars[i].name, name, n))
			return L->vars[i].value;
	return NULL;
}

static void known_names(const struct lookup *L, char *out, size_t n)
{
	size_t len = (size_t)snprintf(out, n, "port");
	if (L->name)
		len += (size_t)snprintf(out + len, n > len ? n - len : 0, ", name");
	for (size_t i = 0; i < L->nvars && len < n; i++)
		len += (size_t)snprintf(out + len, n - len, ", %s", L->vars[i].name);
}

enum { SUB_WHOLE, SUB_TEXT, SUB_SHELL };

/* Substitutes placeholders of tmpl. what/line label errors. */
static int subst(const struct lookup *L, const char *tmpl, int mode, const char *file, int line, const char *what,
		 char **out, struct ar_err *err)
{
	struct buf b = BUF_INIT;
	char tmp[32], names[512];
	size_t len = strlen(tmpl);
	size_t ph = placeholder_at(tmpl);
	if (mode == SUB_WHOLE) {
		if (ph == len) {
			const char *v = lookup(L, tmpl + 1, len - 2, tmp, sizeof tmp);
			if (!v)
				goto unknown;
			*out = strdup(v);
			return *out ? 0 : ar_err_set(err, AR_ENOMEM, "out of memory");
		}
		for (const char *s = tmpl; *s; s++) {
			size_t k = placeholder_at(s);
			if (k) {
				ar_err_set(err, AR_EFORMAT,
					   "%s:%d: %s: placeholder '%.*s' must be a whole element ('%s' is one word; "
					   "write the option and the placeholder as two elements)",
					   file, line, what, (int)k, s, tmpl);
				return -1;
			}
		}
		*out = strdup(tmpl);
		return *out ? 0 : ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	for (const char *s = tmpl; *s;) {
		size_t k = placeholder_at(s);
		if (!k) {
			buf_putc(&b, *s++);
			continue;
		}
		const char *v = lookup(L, s + 1, k - 2, tmp, sizeof tmp);
		if (!v) {
			tmpl = s;
			len = k;
			buf_free(&b);
			goto unknown;
		}
		if (mode == SUB_SHELL) {
			buf_putc(&b, '\'');
			for (const char *q = v; *q; q++)
				if (*q == '\'')
					buf_puts(&b, "'\\''");
				else
					buf_putc(&b, *q);
			buf_putc(&b, '\'');
		} else {
			buf_puts(&b, v);
		}
		s += k;
	}
	*out = buf_detach(&b);
	return *out ? 0 : ar_err_set(err, AR_ENOMEM, "out of memory");
unknown:
	known_names(L, names, sizeof names);
	return ar_err_set(err, AR_EFORMAT, "%s:%d: %s: unknown placeholder '%.*s' (known: %s)", file, line, what,
			  (int)len, tmpl, names);
}

static struct lookup item_lookup(const struct sweep_item *it, int port)
{
	struct lookup L = {it, NULL, it->vars, it->nvars, port, it->name};
	return L;
}

int sweepcfg_argv(const struct sweep_plan *p, const struct sweep_item *it, int port, char ***out, struct ar_err *err)
{
	const struct sweep_backend *b = &p->backends[it->backend];
	struct lookup L = item_lookup(it, port);
	size_t n = b->shell ? 3 : b->argc;
	char **v = calloc(n + 1, sizeof *v);
	if (!v)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	if (b->shell) {
		if (!(v[0] = strdup("/bin/sh")) || !(v[1] = strdup("-c")))
			goto nomem;
		char what[160];
		snprintf(what, sizeof what, "backends.%s.command", b->id);
		if (subst(&L, b->argv[0], SUB_SHELL, p->path, b->argv_line[0], what, &v[2], err) < 0)
			goto fail;
	} else {
		for (size_t i = 0; i < b->argc; i++) {
			char what[160];
			snprintf(what, sizeof what, "backends.%s.command[%zu]", b->id, i);
			if (subst(&L, b->argv[i], SUB_WHOLE, p->path, b->argv_line[i], what, &v[i], err) < 0)
				goto fail;
		}
	}
	*out = v;
	return 0;
nomem:
	ar_err_set(err, AR_ENOMEM, "out of memory");
fail:
	sweepcfg_strv_free(v);
	return -1;
}

int sweepcfg_env(const struct sweep_plan *p, const struct sweep_item *it, int port, char ***out, struct ar_err *err)
{
	const struct sweep_backend *b = &p->backends[it->backend];
	struct lookup L = item_lookup(it, port);
	char **v = calloc(b->nenv + 1, sizeof *v);
	if (!v)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	for (size_t i = 0; i < b->nenv; i++) {
		const char *eq = strchr(b->env[i], '=');
		char what[200], *val = NULL;
		snprintf(what, sizeof what, "backends.%s.env.%.*s", b->id, (int)(eq - b->env[i]), b->env[i]);
		if (subst(&L, eq + 1, SUB_TEXT, p->path, b->env_line[i], what, &val, err) < 0) {
			sweepcfg_strv_free(v);
			return -1;
		}
		struct buf e = BUF_INIT;
		buf_printf(&e, "%.*s=%s", (int)(eq - b->env[i]), b->env[i], val);
		free(val);
		if (!(v[i] = buf_detach(&e))) {
			sweepcfg_strv_free(v);
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
	}
	*out = v;
	return 0;
}

int sweepcfg_text(const struct sweep_plan *p, const struct sweep_item *it, int port, const char *tmpl, char **out,
		  struct ar_err *err)
{
	struct lookup L = item_lookup(it, port);
	const struct sweep_backend *b = &p->backends[it->backend];
	return subst(&L, tmpl, SUB_TEXT, p->path, b->line, "backend text", out, err);
}

/* ---- shards ------------------------------------------------------------- */

int sweepcfg_parse_shard(const char *s, int *i, int *n, struct ar_err *err)
{
	char *end;
	errno = 0;
	long a = strtol(s, &end, 10);
	if (end == s || *end != '/' || errno)
		goto bad;
	const char *s2 = end + 1;
	long b = strtol(s2, &end, 10);
	if (end == s2 || *end || errno || b < 1 || b > 100000 || a < 1 || a > b)
		goto bad;
	*i = (int)a;
	*n = (int)b;
	return 0;
bad:
	return ar_err_set(err, AR_EINVAL, "'%s' is not a shard I/N with 1 <= I <= N (e.g. 2/4)", s);
}

bool sweepcfg_in_shard(const struct sweep_item *it, int i, int n)
{
	return n <= 1 || (int)(it->rank % (size_t)n) == i - 1;
}

/* ---- loading ------------------------------------------------------------ */

static int strdup_to(char **dst, const char *s, struct ar_err *err)
{
	if (!s)
		return 0;
	if (!(*dst = strdup(s)))
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	return 0;
}

static int parse_backend(const struct config_doc *d, const cJSON *j, struct sweep_backend *b, struct ar_err *err)
{
	static const char *const known[] = {"adapter", "command", "env", "cwd", "health", "ready", "url", "port",
					    "start_timeout", "stop_signal", "grace", "shell", NULL};
	char where[160];
	snprintf(where, sizeof where, "backends.%s", j->string);
	b->line = config_line(d, j);
	b->start_timeout_ns = 300 * 1000000000ll;
	b->grace_ns = 10 * 1000000000ll;
	b->stop_signal = SIGTERM;
	if (!(b->id = strdup(j->string)))
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	if (!cJSON_IsObject(j))
		return config_error(d, j, where, err, "expected an object (adapter, command, health, ...)");
	if (check_members(d, j, where, known, err) < 0)
		return -1;
	const char *s = NULL;
	char f[200];
	snprintf(f, sizeof f, "%s.adapter", where);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "adapter");
	s = "openai";
	if (v && !cJSON_IsString(v))
		return config_error(d, v, f, err, "expected a string");
	if (v)
		s = v->valuestring;
	if (strcmp(s, "openai") && strcmp(s, "llama-server") && strcmp(s, "ollama") && strcmp(s, "anthropic"))
		return config_error(d, v, f, err, "'%s' is not openai, llama-server, ollama or anthropic", s);
	if (strdup_to(&b->adapter, s, err) < 0)
		return -1;
	v = cJSON_GetObjectItemCaseSensitive(j, "shell");
	if (v && !cJSON_IsBool(v)) {
		snprintf(f, sizeof f, "%s.shell", where);
		return config_error(d, v, f, err, "expected true or false");
	}
	b->shell = v && cJSON_IsTrue(v);
	snprintf(f, sizeof f, "%s.command", where);
	v = cJSON_GetObjectItemCaseSensitive(j, "command");
	if (!v)
		return config_error(d, j, f, err, "missing required field (the server's argv, e.g. [llama-server, --port, \"{port}\"])");
	if (b->shell) {
		if (!cJSON_IsString(v) || !*v->valuestring)
			return config_error(d, v, f, err, "with shell: true, expected one command string");
		b->argv = calloc(1, sizeof *b->argv);
		b->argv_line = calloc(1, sizeof *b->argv_line);
		if (!b->argv || !b->argv_line || !(b->argv[0] = strdup(v->valuestring)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		b->argv_line[0] = config_line(d, v);
		b->argc = 1;
	} else {
		if (cJSON_IsString(v))
			return config_error(d, v, f, err,
					    "expected a list of arguments (no shell is used; 'shell: true' runs a string with /bin/sh)");
		int n = cJSON_GetArraySize(v);
		if (!cJSON_IsArray(v) || n == 0)
			return config_error(d, v, f, err, "expected a non-empty list of arguments");
		b->argv = calloc((size_t)n, sizeof *b->argv);
		b->argv_line = calloc((size_t)n, sizeof *b->argv_line);
		if (!b->argv || !b->argv_line)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		const cJSON *a;
		cJSON_ArrayForEach(a, v) {
			char *t = scalar_text(a);
			if (!t) {
				snprintf(f, sizeof f, "%s.command[%zu]", where, b->argc);
				return config_error(d, a, f, err, "expected a string or number");
			}
			b->argv_line[b->argc] = config_line(d, a) ? config_line(d, a) : config_line(d, v);
			b->argv[b->argc++] = t;
		}
		if (!*b->argv[0]) {
			snprintf(f, sizeof f, "%s.command[0]", where);
			return config_error(d, v, f, err, "the program is empty");
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(j, "env");
	if (v) {
		snprintf(f, sizeof f, "%s.env", where);
		if (!cJSON_IsObject(v))
			return config_error(d, v, f, err, "expected an object NAME: value");
		int n = cJSON_GetArraySize(v);
		b->env = calloc((size_t)n + 1, sizeof *b->env);
		b->env_line = calloc((size_t)n + 1, sizeof *b->env_line);
		if (!b->env || !b->env_line)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		const cJSON *e;
		cJSON_ArrayForEach(e, v) {
			char *t = scalar_text(e);
			snprintf(f, sizeof f, "%s.env.%s", where, e->string);
			if (!t)
				return config_error(d, e, f, err, "expected a string or number");
			if (!*e->string || strchr(e->string, '=')) {
				free(t);
				return config_error(d, e, f, err, "not a valid environment variable name");
			}
			struct buf kv = BUF_INIT;
			buf_printf(&kv, "%s=%s", e->string, t);
			free(t);
			b->env_line[b->nenv] = config_line(d, e);
			if (!(b->env[b->nenv++] = buf_detach(&kv)))
				return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
	}
	snprintf(f, sizeof f, "%s.cwd", where);
	s = NULL;
	if (config_get_str(d, j, "cwd", CONFIG_OPTIONAL, &s, err) < 0 || strdup_to(&b->cwd, s, err) < 0)
		return -1;
	s = NULL;
	if (config_get_str(d, j, "health", CONFIG_OPTIONAL, &s, err) < 0 || strdup_to(&b->health, s, err) < 0)
		return -1;
	s = NULL;
	if (config_get_str(d, j, "ready", CONFIG_OPTIONAL, &s, err) < 0 || strdup_to(&b->ready, s, err) < 0)
		return -1;
	s = "http://127.0.0.1:{port}";
	if (config_get_str(d, j, "url", CONFIG_OPTIONAL, &s, err) < 0 || strdup_to(&b->url, s, err) < 0)
		return -1;
	if (strncmp(b->url, "http://", 7) && strncmp(b->url, "https://", 8)) {
		snprintf(f, sizeof f, "%s.url", where);
		return config_error(d, cJSON_GetObjectItemCaseSensitive(j, "url"), f, err, "'%s' is not an http:// URL", b->url);
	}
	if (!b->health && !b->ready) {
		if (!(b->health = strdup(!strcmp(b->adapter, "ollama") ? "/api/version"
					 : !strcmp(b->adapter, "llama-server") ? "/health" : "/v1/models")))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	int64_t port = 0;
	if (config_get_int(d, j, "port", CONFIG_OPTIONAL, 0, 65535, &port, err) < 0)
		return -1;
	b->port = (int)port;
	if (get_duration(d, j, "start_timeout", &b->start_timeout_ns, err) < 0 ||
	    get_duration(d, j, "grace", &b->grace_ns, err) < 0)
		return -1;
	v = cJSON_GetObjectItemCaseSensitive(j, "stop_signal");
	if (v) {
		snprintf(f, sizeof f, "%s.stop_signal", where);
		int sig = cJSON_IsString(v) ? parse_signal(v->valuestring) : -1;
		if (cJSON_IsNumber(v) && v->valueint > 0 && v->valueint < 65)
			sig = v->valueint;
		if (sig < 0)
			return config_error(d, v, f, err, "expected a signal name (TERM, INT, QUIT, HUP, KILL, USR1, USR2) or number");
		b->stop_signal = sig;
	}
	return 0;
}

static int parse_measure(const struct config_doc *d, const cJSON *j, struct sweep_measure *m, struct ar_err *err)
{
	static const char *const known[] = {"repeats", "warmup", "cold", "until_fail", "bisect", "slo", "ttft_timeout",
					    "stall_timeout", "history", "plain_openai", "max_tokens_field", "extra",
					    "mem_interval", "mem_budget", "concurrency", "arrival", "pace", "seed", NULL};
	if (!j)
		return 0;
	if (!cJSON_IsObject(j))
		return config_error(d, j, "measure", err, "expected an object (repeats, warmup, cold, until_fail, ...)");
	if (check_members(d, j, "measure", known, err) < 0)
		return -1;
	int64_t v;
	if ((v = m->repeats, config_get_int(d, j, "repeats", CONFIG_OPTIONAL, 1, 1000, &v, err)) < 0)
		return -1;
	m->repeats = (int)v;
	v = m->warmup;
	if (config_get_int(d, j, "warmup", CONFIG_OPTIONAL, 0, 100, &v, err) < 0)
		return -1;
	m->warmup = (int)v;
	const char *s = NULL;
	if (config_get_str(d, j, "cold", CONFIG_OPTIONAL, &s, err) < 0)
		return -1;
	if (s) {
		if (strcmp(s, "tiers") && strcmp(s, "deepest") && strcmp(s, "every") && strcmp(s, "none"))
			return config_error(d, cJSON_GetObjectItemCaseSensitive(j, "cold"), "measure.cold", err,
					    "'%s' is not tiers, deepest, every or none", s);
		snprintf(m->cold, sizeof m->cold, "%s", s);
	}
	if (config_get_bool(d, j, "until_fail", CONFIG_OPTIONAL, &m->until_fail, err) < 0 ||
	    config_get_bool(d, j, "bisect", CONFIG_OPTIONAL, &m->bisect, err) < 0 ||
	    config_get_bool(d, j, "plain_openai", CONFIG_OPTIONAL, &m->plain, err) < 0)
		return -1;
	s = NULL;
	if (config_get_str(d, j, "history", CONFIG_OPTIONAL, &s, err) < 0)
		return -1;
	if (s) {
		if (strcmp(s, "recorded") && strcmp(s, "generated"))
			return config_error(d, cJSON_GetObjectItemCaseSensitive(j, "history"), "measure.history", err,
					    "'%s' is not recorded or generated", s);
		m->history_generated = !strcmp(s, "generated");
	}
	s = NULL;
	if (config_get_str(d, j, "max_tokens_field", CONFIG_OPTIONAL, &s, err) < 0)
		return -1;
	if (s) {
		if (!strcmp(s, "max_tokens"))
			m->max_tokens_field = 0;
		else if (!strcmp(s, "max_completion_tokens"))
			m->max_tokens_field = 1;
		else if (!strcmp(s, "both"))
			m->max_tokens_field = 2;
		else
			return config_error(d, cJSON_GetObjectItemCaseSensitive(j, "max_tokens_field"),
					    "measure.max_tokens_field", err, "'%s' is not max_tokens, max_completion_tokens or both", s);
	}
	if (get_duration(d, j, "ttft_timeout", &m->ttft_timeout_ns, err) < 0 ||
	    get_duration(d, j, "stall_timeout", &m->stall_timeout_ns, err) < 0)
		return -1;
	const cJSON *slo = cJSON_GetObjectItemCaseSensitive(j, "slo");
	if (slo) {
		static const char *const sk[] = {"ttft_ms", "decode_tps", NULL};
		if (!cJSON_IsObject(slo))
			return config_error(d, slo, "measure.slo", err, "expected an object {ttft_ms: N, decode_tps: N}");
		if (check_members(d, slo, "measure.slo", sk, err) < 0 ||
		    config_get_num(d, slo, "ttft_ms", CONFIG_OPTIONAL, 0.001, 1e9, &m->slo_ttft_ms, err) < 0 ||
		    config_get_num(d, slo, "decode_tps", CONFIG_OPTIONAL, 0.001, 1e9, &m->slo_decode_tps, err) < 0)
			return -1;
	}
	const cJSON *mi = cJSON_GetObjectItemCaseSensitive(j, "mem_interval");
	if (mi && !(cJSON_IsNumber(mi) && mi->valuedouble == 0) && !(cJSON_IsString(mi) && !strcmp(mi->valuestring, "off"))) {
		int64_t ns = 0;
		if (get_duration(d, j, "mem_interval", &ns, err) < 0)
			return -1;
		m->mem_interval_s = (double)ns / 1e9;
	} else if (mi) {
		m->mem_interval_s = 0;
	}
	const cJSON *mb = cJSON_GetObjectItemCaseSensitive(j, "mem_budget");
	if (mb) {
		uint64_t bytes = 0;
		struct ar_err e2 = {0};
		if (cJSON_IsNumber(mb) && mb->valuedouble >= 1 && mb->valuedouble < 9e18)
			bytes = (uint64_t)mb->valuedouble;
		else if (!cJSON_IsString(mb) || units_parse_bytes(mb->valuestring, &bytes, &e2) < 0 || !bytes)
			return config_error(d, mb, "measure.mem_budget", err, "expected a size such as 24GiB%s%s",
					    e2.msg[0] ? ": " : "", e2.msg);
		m->mem_budget = (int64_t)bytes;
	}
	v = m->concurrency;
	if (config_get_int(d, j, "concurrency", CONFIG_OPTIONAL, 1, 100000, &v, err) < 0)
		return -1;
	m->concurrency = (int)v;
	s = NULL;
	if (config_get_str(d, j, "arrival", CONFIG_OPTIONAL, &s, err) < 0)
		return -1;
	if (s) {
		if (strlen(s) >= sizeof m->arrival)
			return config_error(d, cJSON_GetObjectItemCaseSensitive(j, "arrival"), "measure.arrival", err,
					    "too long (all, stagger:DURATION, poisson:RATE or trace)");
		snprintf(m->arrival, sizeof m->arrival, "%s", s);
	}
	if (config_get_num(d, j, "pace", CONFIG_OPTIONAL, 0, 1e6, &m->pace, err) < 0)
		return -1;
	v = (int64_t)m->seed;
	if (config_get_int(d, j, "seed", CONFIG_OPTIONAL, 0, INT64_MAX, &v, err) < 0)
		return -1;
	m->seed = (uint64_t)v;
	const cJSON *extra = cJSON_GetObjectItemCaseSensitive(j, "extra");
	if (extra) {
		if (!cJSON_IsObject(extra))
			return config_error(d, extra, "measure.extra", err, "expected an object of request-body members");
		struct buf b = BUF_INIT;
		if (jsonh_put(&b, extra) < 0 || b.len < 2) {
			buf_free(&b);
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
		b.data[b.len - 1] = '\0';
		m->extra_json = strdup(b.data + 1);
		buf_free(&b);
		if (!m->extra_json)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	return 0;
}

/* One dimension of the cross product: a name and its values. */
struct dim {
	const char *name;
	const cJSON *node;
	char **vals;
	const cJSON **val_nodes;
	size_t n;
};

struct model {
	char *name;
	struct sweep_var *vars; /* model_path and other members */
	size_t nvars;
	const cJSON *node;
};

static void dims_free(struct dim *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < d[i].n; k++)
			free(d[i].vals[k]);
		free(d[i].vals);
		free(d[i].val_nodes);
	}
	free(d);
}

static void models_free(struct model *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].name);
		for (size_t k = 0; k < m[i].nvars; k++) {
			free(m[i].vars[k].name);
			free(m[i].vars[k].value);
		}
		free(m[i].vars);
	}
	free(m);
}

static int add_var(struct sweep_var **v, size_t *n, const char *name, const char *value)
{
	struct sweep_var *p = realloc(*v, (*n + 1) * sizeof *p);
	if (!p)
		return -1;
	*v = p;
	p[*n].name = strdup(name);
	p[*n].value = strdup(value);
	if (!p[*n].name || !p[*n].value) {
		free(p[*n].name);
		free(p[*n].value);
		return -1;
	}
	(*n)++;
	return 0;
}

static int parse_models(const struct config_doc *d, const cJSON *j, struct model **out, size_t *nout,
			struct ar_err *err)
{
	if (!j)
		return config_error(d, config_root(d), "models", err, "missing required field (a list of model names)");
	int n = cJSON_GetArraySize(j);
	if (!cJSON_IsArray(j) || n == 0)
		return config_error(d, j, "models", err, "expected a non-empty list of model names or objects {name, path, ...}");
	struct model *m = calloc((size_t)n, sizeof *m);
	if (!m)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	size_t k = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		char f[64];
		snprintf(f, sizeof f, "models[%zu]", k);
		struct model *mm = &m[k++];
		mm->node = e;
		const char *path = NULL;
		if (cJSON_IsString(e)) {
			mm->name = strdup(e->valuestring);
		} else if (cJSON_IsObject(e)) {
			const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
			if (!cJSON_IsString(nm)) {
				config_error(d, e, f, err, "a model object needs a string 'name'");
				goto fail;
			}
			mm->name = strdup(nm->valuestring);
			const cJSON *c;
			cJSON_ArrayForEach(c, e) {
				if (!strcmp(c->string, "name"))
					continue;
				char *t = scalar_text(c);
				if (!t) {
					char f2[200];
					snprintf(f2, sizeof f2, "%s.%s", f, c->string);
					config_error(d, c, f2, err, "expected a string or number");
					goto fail;
				}
				const char *vn = !strcmp(c->string, "path") ? "model_path" : c->string;
				if (!strcmp(vn, "model") || !strcmp(vn, "backend") || !strcmp(vn, "port") || !strcmp(vn, "name")) {
					free(t);
					char f2[200];
					snprintf(f2, sizeof f2, "%s.%s", f, c->string);
					config_error(d, c, f2, err, "'%s' is a reserved placeholder name", c->string);
					goto fail;
				}
				if (!strcmp(vn, "model_path"))
					path = c->valuestring;
				int r = add_var(&mm->vars, &mm->nvars, vn, t);
				free(t);
				if (r < 0)
					goto nomem;
			}
		} else {
			config_error(d, e, f, err, "expected a model name or an object {name, path, ...}");
			goto fail;
		}
		if (!mm->name)
			goto nomem;
		if (!*mm->name) {
			config_error(d, e, f, err, "the model name is empty");
			goto fail;
		}
		if (!path && add_var(&mm->vars, &mm->nvars, "model_path", mm->name) < 0)
			goto nomem;
		for (size_t i = 0; i + 1 < k; i++)
			if (!strcmp(m[i].name, mm->name)) {
				config_error(d, e, f, err, "model '%s' is listed twice (line %d)", mm->name, config_line(d, m[i].node));
				goto fail;
			}
	}
	*out = m;
	*nout = k;
	return 0;
nomem:
	ar_err_set(err, AR_ENOMEM, "out of memory");
fail:
	models_free(m, k);
	return -1;
}

static int parse_matrix(const struct config_doc *d, const cJSON *j, struct dim **out, size_t *nout, struct ar_err *err)
{
	*out = NULL;
	*nout = 0;
	if (!j)
		return 0;
	if (!cJSON_IsObject(j))
		return config_error(d, j, "matrix", err, "expected an object of lists, e.g. {ctx: [32768, 131072]}");
	int n = cJSON_GetArraySize(j);
	struct dim *dims = calloc((size_t)n + 1, sizeof *dims);
	if (!dims)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	size_t k = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		char f[200];
		snprintf(f, sizeof f, "matrix.%s", e->string);
		struct dim *dm = &dims[k++];
		dm->name = e->string;
		dm->node = e;
		static const char *const reserved[] = {"backend", "model", "model_path", "port", "name", NULL};
		for (const char *const *r = reserved; *r; r++)
			if (!strcmp(*r, e->string)) {
				config_error(d, e, f, err, "'%s' is a reserved placeholder name", e->string);
				goto fail;
			}
		for (const char *s = e->string; *s; s++)
			if (!ident_char(*s) || (s == e->string && !(isalpha((unsigned char)*s) || *s == '_'))) {
				config_error(d, e, f, err, "a matrix key must be a name of letters, digits, '_', '-', '.'");
				goto fail;
			}
		const cJSON *list = e;
		int m = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 1;
		if (cJSON_IsArray(e) && m == 0) {
			config_error(d, e, f, err, "empty list: the matrix would have no configs");
			goto fail;
		}
		dm->vals = calloc((size_t)m, sizeof *dm->vals);
		dm->val_nodes = calloc((size_t)m, sizeof *dm->val_nodes);
		if (!dm->vals || !dm->val_nodes)
			goto nomem;
		const cJSON *v;
		if (!cJSON_IsArray(e)) {
			/* a single value is a list of one */
			if (!(dm->vals[0] = scalar_text(e))) {
				config_error(d, e, f, err, "expected a list of strings or numbers");
				goto fail;
			}
			dm->val_nodes[0] = e;
			dm->n = 1;
			continue;
		}
		cJSON_ArrayForEach(v, list) {
			char *t = scalar_text(v);
			if (!t) {
				config_error(d, v, f, err, "expected strings or numbers");
				goto fail;
			}
			for (size_t i = 0; i < dm->n; i++)
				if (!strcmp(dm->vals[i], t)) {
					config_error(d, v, f, err, "value '%s' is listed twice", t);
					free(t);
					goto fail;
				}
			dm->val_nodes[dm->n] = v;
			dm->vals[dm->n++] = t;
		}
	}
	*out = dims;
	*nout = k;
	return 0;
nomem:
	ar_err_set(err, AR_ENOMEM, "out of memory");
fail:
	dims_free(dims, k);
	return -1;
}

/* Is the combination excluded by a rule? vars holds backend, model and the
 * matrix values. */
static bool excluded(const cJSON *rules, const struct sweep_var *vars, size_t nvars)
{
	const cJSON *r;
	cJSON_ArrayForEach(r, rules) {
		bool all = true;
		const cJSON *c;
		cJSON_ArrayForEach(c, r) {
			const char *have = NULL;
			for (size_t i = 0; i < nvars; i++)
				if (!strcmp(vars[i].name, c->string))
					have = vars[i].value;
			bool any = false;
			if (have) {
				const cJSON *v;
				if (cJSON_IsArray(c)) {
					cJSON_ArrayForEach(v, c) {
						char *t = scalar_text(v);
						any = any || (t && !strcmp(t, have));
						free(t);
					}
				} else {
					char *t = scalar_text(c);
					any = t && !strcmp(t, have);
					free(t);
				}
			}
			if (!any) {
				all = false;
				break;
			}
		}
		if (all)
			return true;
	}
	return false;
}

static int check_exclude(const struct config_doc *d, const cJSON *ex, const struct dim *dims, size_t ndims,
			 struct ar_err *err)
{
	if (!ex)
		return 0;
	if (!cJSON_IsArray(ex))
		return config_error(d, ex, "exclude", err, "expected a list of rules such as {backend: x, ctx: 131072}");
	const cJSON *r;
	size_t k = 0;
	cJSON_ArrayForEach(r, ex) {
		char f[64];
		snprintf(f, sizeof f, "exclude[%zu]", k++);
		if (!cJSON_IsObject(r) || !cJSON_GetArraySize(r))
			return config_error(d, r, f, err, "expected a non-empty object such as {backend: x, ctx: 131072}");
		const cJSON *c;
		cJSON_ArrayForEach(c, r) {
			bool ok = !strcmp(c->string, "backend") || !strcmp(c->string, "model");
			for (size_t i = 0; i < ndims && !ok; i++)
				ok = !strcmp(dims[i].name, c->string);
			if (!ok) {
				char f2[200];
				snprintf(f2, sizeof f2, "%s.%s", f, c->string);
				return config_error(d, c, f2, err, "not backend, model or a matrix key");
			}
		}
	}
	return 0;
}

static int cmp_rank(const void *a, const void *b)
{
	const struct sweep_item *const *x = a, *const *y = b;
	return strcmp((*x)->key, (*y)->key);
}

static int expand(const struct config_doc *d, struct sweep_plan *p, const struct model *models, size_t nmodels,
		  const struct dim *dims, size_t ndims, const cJSON *exclude, const cJSON *name_node,
		  struct ar_err *err)
{
	size_t total = p->nbackends * nmodels;
	for (size_t i = 0; i < ndims; i++) {
		if (total > MAX_CONFIGS / (dims[i].n ? dims[i].n : 1))
			return config_error(d, dims[i].node, "matrix", err, "more than %d configs", MAX_CONFIGS);
		total *= dims[i].n;
	}
	p->items = calloc(total ? total : 1, sizeof *p->items);
	size_t *idx = calloc(ndims + 1, sizeof *idx);
	if (!p->items || !idx) {
		free(idx);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	int rc = -1;
	for (size_t c = 0; c < total; c++) {
		size_t rest = c;
		for (size_t i = ndims; i-- > 0;) {
			idx[i] = rest % dims[i].n;
			rest /= dims[i].n;
		}
		size_t mi = rest % nmodels, bi = rest / nmodels;
		struct sweep_item it = {0};
		it.backend = bi;
		const struct model *m = &models[mi];
		if (add_var(&it.vars, &it.nvars, "backend", p->backends[bi].id) < 0 ||
		    add_var(&it.vars, &it.nvars, "model", m->name) < 0)
			goto nomem_it;
		for (size_t i = 0; i < m->nvars; i++)
			if (add_var(&it.vars, &it.nvars, m->vars[i].name, m->vars[i].value) < 0)
				goto nomem_it;
		for (size_t i = 0; i < ndims; i++)
			if (add_var(&it.vars, &it.nvars, dims[i].name, dims[i].vals[idx[i]]) < 0)
				goto nomem_it;
		if (excluded(exclude, it.vars, it.nvars)) {
			item_free(&it);
			continue;
		}
		if (!(it.model = strdup(m->name)))
			goto nomem_it;
		struct buf key = BUF_INIT, dflt = BUF_INIT;
		buf_printf(&key, "backend=%s,model=%s", p->backends[bi].id, m->name);
		buf_printf(&dflt, "%s/%s", p->backends[bi].id, m->name);
		cJSON *params = cJSON_CreateObject();
		cJSON_AddStringToObject(params, "backend_id", p->backends[bi].id);
		cJSON_AddStringToObject(params, "adapter", p->backends[bi].adapter);
		cJSON *mx = cJSON_AddObjectToObject(params, "matrix");
		for (size_t i = 0; i < ndims; i++) {
			buf_printf(&key, ",%s=%s", dims[i].name, dims[i].vals[idx[i]]);
			buf_printf(&dflt, "/%s", dims[i].vals[idx[i]]);
			cJSON_AddItemToObject(mx, dims[i].name, cJSON_Duplicate(dims[i].val_nodes[idx[i]], 1));
		}
		it.key = buf_detach(&key);
		buf_free(&dflt);
		dflt = (struct buf)BUF_INIT;
		buf_printf(&dflt, "%s/%s", p->backends[bi].id, m->name);
		for (size_t i = 0; i < ndims; i++)
			buf_printf(&dflt, "/%s=%s", dims[i].name, dims[i].vals[idx[i]]);
		char *pj = cJSON_PrintUnformatted(params);
		cJSON_Delete(params);
		it.params_json = pj ? strdup(pj) : NULL;
		cJSON_free(pj);
		if (name_node) {
			struct lookup L = {NULL, NULL, it.vars, it.nvars, -1, NULL};
			if (subst(&L, name_node->valuestring, SUB_TEXT, p->path, config_line(d, name_node), "name", &it.name,
				  err) < 0) {
				buf_free(&dflt);
				item_free(&it);
				goto out;
			}
			buf_free(&dflt);
		} else {
			it.name = buf_detach(&dflt);
		}
		if (!it.key || !it.name || !it.params_json)
			goto nomem_it;
		p->items[p->nitems++] = it;
		continue;
nomem_it:
		item_free(&it);
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	if (!p->nitems) {
		config_error(d, exclude, "exclude", err, "every combination is excluded: the sweep has no configs");
		goto out;
	}
	/* names must tell configs apart (results are reported by name) */
	for (size_t i = 0; i < p->nitems; i++)
		for (size_t k = i + 1; k < p->nitems; k++)
			if (!strcmp(p->items[i].name, p->items[k].name)) {
				config_error(d, name_node, "name", err,
					     "configs '%s' and '%s' get the same name '%s' (put the keys that differ in "
					     "the name template)",
					     p->items[i].key, p->items[k].key, p->items[i].name);
				goto out;
			}
	/* ranks in key order, for shards */
	struct sweep_item **order = malloc(p->nitems * sizeof *order);
	if (!order) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < p->nitems; i++)
		order[i] = &p->items[i];
	qsort(order, p->nitems, sizeof *order, cmp_rank);
	for (size_t i = 0; i < p->nitems; i++)
		order[i]->rank = i;
	free(order);
	/* every placeholder of every config must be known */
	for (size_t i = 0; i < p->nitems; i++) {
		const struct sweep_backend *b = &p->backends[p->items[i].backend];
		char **v = NULL;
		if (sweepcfg_argv(p, &p->items[i], -1, &v, err) < 0)
			goto out;
		sweepcfg_strv_free(v);
		if (sweepcfg_env(p, &p->items[i], -1, &v, err) < 0)
			goto out;
		sweepcfg_strv_free(v);
		const char *texts[] = {b->url, b->health, b->cwd};
		for (size_t t = 0; t < 3; t++) {
			char *s = NULL;
			if (texts[t] && sweepcfg_text(p, &p->items[i], -1, texts[t], &s, err) < 0)
				goto out;
			free(s);
		}
	}
	rc = 0;
out:
	free(idx);
	return rc;
}

static int parse_traces(const struct config_doc *d, const cJSON *j, struct sweep_plan *p, struct ar_err *err)
{
	if (!j)
		return config_error(d, config_root(d), "traces", err,
				    "missing required field (trace files, or gen: specs such as \"gen:depth=32k,turns=10\")");
	int n = cJSON_GetArraySize(j);
	if (cJSON_IsString(j))
		n = 1;
	else if (!cJSON_IsArray(j) || n == 0)
		return config_error(d, j, "traces", err, "expected a non-empty list of trace files or gen: specs");
	p->traces = calloc((size_t)n, sizeof *p->traces);
	p->trace_line = calloc((size_t)n, sizeof *p->trace_line);
	if (!p->traces || !p->trace_line)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	const cJSON *e;
	const cJSON *one[1] = {j};
	for (int k = 0; k < n; k++) {
		e = cJSON_IsString(j) ? one[0] : cJSON_GetArrayItem(j, k);
		char f[64];
		snprintf(f, sizeof f, "traces[%d]", k);
		if (!cJSON_IsString(e) || !*e->valuestring)
			return config_error(d, e, f, err, "expected a file path or a gen: spec");
		const char *s = e->valuestring;
		struct buf b = BUF_INIT;
		if (!strncmp(s, "gen:", 4) || s[0] == '/' || !p->dir)
			buf_puts(&b, s);
		else
			buf_printf(&b, "%s/%s", p->dir, s);
		p->trace_line[p->ntraces] = config_line(d, e);
		if (!(p->traces[p->ntraces++] = buf_detach(&b)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	return 0;
}

int sweepcfg_parse(struct sweep_plan **out, const char *text, size_t n, const char *name, const char *dir,
		   struct ar_err *err)
{
	*out = NULL;
	struct config_doc *d = NULL;
	struct model *models = NULL;
	size_t nmodels = 0, ndims = 0;
	struct dim *dims = NULL;
	struct sweep_plan *p = calloc(1, sizeof *p);
	if (!p)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	p->m.repeats = 3;
	p->m.warmup = 1;
	snprintf(p->m.cold, sizeof p->m.cold, "tiers");
	p->m.until_fail = true;
	p->m.ttft_timeout_ns = 600 * 1000000000ll;
	p->m.stall_timeout_ns = 60 * 1000000000ll;
	p->m.mem_interval_s = 0.1;
	p->m.pace = -1;
	p->m.seed = 1;
	sweepcfg_hash(text, n, p->hash);
	if (!(p->path = strdup(name)) || (dir && !(p->dir = strdup(dir)))) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto fail;
	}
	if (config_parse(&d, text, n, name, err) < 0)
		goto fail;
	const cJSON *root = config_root(d);
	if (!cJSON_IsObject(root)) {
		ar_err_set(err, AR_EFORMAT, "%s: expected a mapping with backends, models, matrix, traces", name);
		goto fail;
	}
	static const char *const known[] = {"name", "backends", "models", "matrix", "exclude", "traces", "measure",
					    "description", NULL};
	if (check_members(d, root, "", known, err) < 0)
		goto fail;
	const cJSON *bk = cJSON_GetObjectItemCaseSensitive(root, "backends");
	if (!bk) {
		config_error(d, root, "backends", err, "missing required field (how to start each server)");
		goto fail;
	}
	if (!cJSON_IsObject(bk) || !cJSON_GetArraySize(bk)) {
		config_error(d, bk, "backends", err, "expected a non-empty mapping NAME: {adapter, command, ...}");
		goto fail;
	}
	p->backends = calloc((size_t)cJSON_GetArraySize(bk), sizeof *p->backends);
	if (!p->backends) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto fail;
	}
	const cJSON *b;
	cJSON_ArrayForEach(b, bk) {
		if (parse_backend(d, b, &p->backends[p->nbackends++], err) < 0)
			goto fail;
	}
	if (parse_models(d, cJSON_GetObjectItemCaseSensitive(root, "models"), &models, &nmodels, err) < 0 ||
	    parse_matrix(d, cJSON_GetObjectItemCaseSensitive(root, "matrix"), &dims, &ndims, err) < 0)
		goto fail;
	/* a model member and a matrix key of the same name would be ambiguous */
	for (size_t i = 0; i < ndims; i++)
		for (size_t k = 0; k < nmodels; k++)
			for (size_t v = 0; v < models[k].nvars; v++)
				if (!strcmp(models[k].vars[v].name, dims[i].name)) {
					char f[200];
					snprintf(f, sizeof f, "matrix.%s", dims[i].name);
					config_error(d, dims[i].node, f, err, "'%s' is also a member of model '%s'",
						     dims[i].name, models[k].name);
					goto fail;
				}
	const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "exclude");
	if (check_exclude(d, ex, dims, ndims, err) < 0)
		goto fail;
	if (parse_traces(d, cJSON_GetObjectItemCaseSensitive(root, "traces"), p, err) < 0 ||
	    parse_measure(d, cJSON_GetObjectItemCaseSensitive(root, "measure"), &p->m, err) < 0)
		goto fail;
	const cJSON *nm = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (nm && (!cJSON_IsString(nm) || !*nm->valuestring)) {
		config_error(d, nm, "name", err, "expected a name template such as \"{backend}-{model}-{ctx}\"");
		goto fail;
	}
	if (expand(d, p, models, nmodels, dims, ndims, ex, nm, err) < 0)
		goto fail;
	models_free(models, nmodels);
	dims_free(dims, ndims);
	config_free(d);
	*out = p;
	return 0;
fail:
	models_free(models, nmodels);
	dims_free(dims, ndims);
	config_free(d);
	sweepcfg_free(p);
	return -1;
}

int sweepcfg_load(struct sweep_plan **out, const char *path, struct ar_err *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return ar_err_set(err, AR_EIO, "cannot open sweep config '%s': %s", path, strerror(errno));
	struct buf b;
	buf_init(&b, MAX_FILE);
	char chunk[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_append(&b, chunk, n) < 0) {
			rc = ar_err_set(err, AR_ELIMIT, "sweep config '%s' is larger than 16 MiB", path);
			break;
		}
	if (!rc && ferror(f))
		rc = ar_err_set(err, AR_EIO, "cannot read sweep config '%s': %s", path, strerror(errno));
	fclose(f);
	if (rc == 0) {
		char *dir = strdup(path);
		char *slash = dir ? strrchr(dir, '/') : NULL;
		if (slash)
			*slash = '\0';
		rc = sweepcfg_parse(out, b.data ? b.data : "", b.len, path, slash ? (*dir ? dir : "/") : ".", err);
		free(dir);
	}
	buf_free(&b);
	return rc;
}
