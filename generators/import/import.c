/* import: the parts every importer shares (see import.h) and the table. */
#include "import.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "jsonh.h"
#include "redact.h"
#include "tokest.h"
#include "trace_io.h"

/* ---- the table ------------------------------------------------------------- */

extern const struct importer imp_claude_code, imp_codex, imp_gemini_cli, imp_swe_agent, imp_mini_swe_agent,
	imp_openhands, imp_aider, imp_managed_agents, imp_mooncake, imp_weka, imp_openai_log;

/* Sniffing asks each in turn; the highest score wins (ties: the first). */
static const struct importer *const table[] = {
	&imp_claude_code, &imp_codex, &imp_gemini_cli, &imp_swe_agent, &imp_mini_swe_agent, &imp_openhands,
	&imp_aider, &imp_managed_agents, &imp_mooncake, &imp_weka, &imp_openai_log, NULL,
};

const struct importer *const *import_table(void)
{
	return table;
}

const struct importer *import_find(const char *name)
{
	for (size_t i = 0; table[i]; i++)
		if (!strcmp(table[i]->name, name))
			return table[i];
	return NULL;
}

const struct importer *import_sniff(const char *path, struct ar_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return ar_err_set(err, AR_EIO, "cannot open '%s': %s", path, strerror(errno)), NULL;
	char *head = malloc(IMP_SNIFF_BYTES + 1);
	if (!head) {
		fclose(f);
		return ar_err_set(err, AR_ENOMEM, "out of memory"), NULL;
	}
	size_t n = fread(head, 1, IMP_SNIFF_BYTES, f);
	fclose(f);
	head[n] = 0;
	const struct importer *best = NULL;
	int best_score = 0;
	for (size_t i = 0; table[i]; i++) {
		int s = table[i]->sniff(path, head, n);
		if (s > best_score) {
			best_score = s;
			best = table[i];
		}
	}
	free(head);
	if (!best) {
		char names[512] = "";
		for (size_t i = 0; table[i]; i++) {
			strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
			strncat(names, table[i]->name, sizeof names - strlen(names) - 1);
		}
		ar_err_set(err, AR_EFORMAT, "'%s': not a format agentreplay can import (tried %s)", path, names);
	}
	return best;
}

/* ---- report ---------------------------------------------------------------- */

void imp_report_free(struct imp_report *r)
{
	if (!r)
		return;
	free(r->err_rel);
	for (size_t i = 0; i < r->n_warn; i++)
		free(r->warnings[i]);
	memset(r, 0, sizeof *r);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median_of(const double *v, size_t n, bool absval)
{
	if (!n)
		return 0;
	double *c = malloc(n * sizeof *c);
	if (!c)
		return 0;
	for (size_t i = 0; i < n; i++)
		c[i] = absval ? fabs(v[i]) : v[i];
	qsort(c, n, sizeof *c, cmp_double);
	double m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	free(c);
	return m;
}

double imp_report_median_abs(const struct imp_report *r)
{
	return median_of(r->err_rel, r->n_err, true);
}

double imp_report_median(const struct imp_report *r)
{
	return median_of(r->err_rel, r->n_err, false);
}

/* ---- run state --------------------------------------------------------------- */

void imp_init(struct imp *im, const struct imp_opts *o, struct trace_writer *w, struct imp_report *rep)
{
	memset(im, 0, sizeof *im);
	im->o = o;
	im->w = w;
	im->rep = rep;
	convo_init(&im->cv, CONVO_COUNT_ONLY);
	strset_init(&im->issued);
	strset_init(&im->sids);
}

void imp_release(struct imp *im)
{
	convo_free(&im->cv);
	strset_free(&im->issued);
	strset_free(&im->sids);
	free(im->sid);
	im->sid = NULL;
}

static void vwarn(struct imp *im, uint64_t line, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static void vwarn(struct imp *im, uint64_t line, const char *fmt, va_list ap)
{
	struct imp_report *r = im->rep;
	if (r->n_warn >= IMP_MAX_WARN) {
		r->warn_more++;
		return;
	}
	struct buf b = BUF_INIT;
	if (line)
		buf_printf(&b, "%s:%llu: ", im->path ? im->path : "-", (unsigned long long)line);
	else
		buf_printf(&b, "%s: ", im->path ? im->path : "-");
	buf_vprintf(&b, fmt, ap);
	char *s = buf_detach(&b);
	if (s)
		r->warnings[r->n_warn++] = s;
}

void imp_warn(struct imp *im, uint64_t line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(im, line, fmt, ap);
	va_end(ap);
}

int imp_bad(struct imp *im, uint64_t line, struct ar_err *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char msg[AR_ERR_MSG_MAX];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (im->o->lenient) {
		imp_warn(im, line, "warning: %s", msg);
		return 0;
	}
	if (line)
		return ar_err_set(err, AR_EFORMAT, "%s:%llu: %s", im->path, (unsigned long long)line, msg);
	return ar_err_set(err, AR_EFORMAT, "%s: %s", im->path, msg);
}

void imp_drop(struct imp *im, const char *kind, int64_t n)
{
	struct imp_report *r = im->rep;
	for (size_t i = 0; i < r->n_drops; i++)
		if (!strcmp(r->drops[i].kind, kind)) {
			r->drops[i].n += n;
			return;
		}
	if (r->n_drops < IMP_MAX_DROPS) {
		snprintf(r->drops[r->n_drops].kind, sizeof r->drops[0].kind, "%s", kind);
		r->drops[r->n_drops++].n = n;
	}
}

/* ---- redaction --------------------------------------------------------------- */

/* Text from other tools' files may hold invalid UTF-8 (a cut multibyte
 * character, Latin-1 in a log) or NUL bytes: a trace never does (its strings
 * cannot hold U+0000). The line readers refuse invalid UTF-8 (or repair it
 * under --lenient); this is the net for everything read another way:
 * invalid bytes and NULs become U+FFFD, counted as dropped items. */
static int fix_utf8(struct imp *im, char **s, size_t *len, struct ar_err *err)
{
	size_t n = len ? *len : strlen(*s);
	size_t nuls = 0;
	for (const char *p = len ? memchr(*s, '\0', n) : NULL; p; p = memchr(p + 1, '\0', n - (size_t)(p + 1 - *s)))
		nuls++;
	if (!nuls && utf8_check(*s, n) == n)
		return 0;
	struct buf b = BUF_INIT;
	long k = utf8_repair(*s, n, &b); /* U+0000 is valid UTF-8: NULs are kept here */
	if (k >= 0 && nuls) {
		struct buf c = BUF_INIT;
		for (size_t i = 0; i < b.len && k >= 0; i++)
			if ((b.data[i] ? buf_putc(&c, b.data[i]) : buf_append(&c, "\xEF\xBF\xBD", 3)) < 0)
				k = -1;
		buf_free(&b);
		b = c;
	}
	char *d = k < 0 ? NULL : buf_detach(&b);
	buf_free(&b);
	if (!d)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	free(*s);
	*s = d;
	if (len)
		*len = strlen(d);
	if (k > 0)
		imp_drop(im, "invalid UTF-8 bytes (replaced by U+FFFD)", k);
	if (nuls)
		imp_drop(im, "NUL bytes (replaced by U+FFFD)", (int64_t)nuls);
	return 0;
}

/* v and its siblings, with everything under them (their strings hold no NUL) */
static int fix_utf8_json(struct imp *im, cJSON *v, struct ar_err *err)
{
	for (; v; v = v->next) {
		long k = jsonh_repair_utf8(v);
		if (k < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		if (k > 0)
			imp_drop(im, "invalid UTF-8 bytes (replaced by U+FFFD)", k);
	}
	return 0;
}

static int scrub(struct imp *im, char **s, size_t *len, struct ar_err *err)
{
	if (!*s)
		return 0;
	if (fix_utf8(im, s, len, err) < 0)
		return -1;
	if (!im->o->redact)
		return 0;
	size_t n = len ? *len : strlen(*s);
	struct buf b = BUF_INIT;
	int64_t hits = redact_text(im->o->redact, *s, n, &b, err);
	if (hits < 0) {
		buf_free(&b);
		return -1;
	}
	if (hits > 0) {
		char *d = buf_detach(&b);
		if (!d)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		free(*s);
		*s = d;
		if (len)
			*len = n; /* placeholders have the secret's length */
		im->rep->redactions += hits;
	}
	buf_free(&b);
	return 0;
}

static int scrub_json(struct imp *im, cJSON *v, struct ar_err *err)
{
	if (!v)
		return 0;
	if (v->child && fix_utf8_json(im, v->child, err) < 0)
		return -1;
	if (cJSON_IsString(v) && v->valuestring && fix_utf8(im, &v->valuestring, NULL, err) < 0)
		return -1;
	if (!im->o->redact)
		return 0;
	int64_t hits = redact_json(im->o->redact, v, err);
	if (hits < 0)
		return -1;
	im->rep->redactions += hits;
	return 0;
}

static int scrub_calls(struct imp *im, struct tr_tool_call *c, size_t n, struct ar_err *err)
{
	for (size_t i = 0; i < n; i++)
		if (scrub(im, &c[i].arguments, NULL, err) < 0 || scrub(im, &c[i].name, NULL, err) < 0)
			return -1;
	return 0;
}

/* Call ids and the ids tool results answer, made valid before they are
 * matched, so a result matches its call in the trace as it is written. */
static int fix_ids(struct imp *im, struct tr_tool_call *c, size_t n, struct ar_err *err)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].id && fix_utf8(im, &c[i].id, NULL, err) < 0)
			return -1;
	return 0;
}

static int fix_turn_ids(struct imp *im, struct tr_turn *t, struct ar_err *err)
{
	for (size_t k = 0; k < t->n_append; k++) {
		struct tr_message *m = &t->append[k];
		if (fix_ids(im, m->calls, m->n_calls, err) < 0 ||
		    (m->tool_call_id && fix_utf8(im, &m->tool_call_id, NULL, err) < 0))
			return -1;
	}
	return t->response ? fix_ids(im, t->response->calls, t->response->n_calls, err) : 0;
}

static int scrub_turn(struct imp *im, struct tr_turn *t, struct ar_err *err)
{
	for (size_t k = 0; k < t->n_append; k++) {
		struct tr_message *m = &t->append[k];
		/* every string a turn line carries, ids and unknown fields too */
		if (scrub(im, &m->content, &m->content_len, err) < 0 || scrub_calls(im, m->calls, m->n_calls, err) < 0 ||
		    scrub(im, &m->name, NULL, err) < 0 || fix_utf8_json(im, m->extra, err) < 0)
			return -1;
	}
	if (t->response) {
		struct tr_response *r = t->response;
		if (scrub(im, &r->content, &r->content_len, err) < 0 || scrub(im, &r->reasoning, NULL, err) < 0 ||
		    scrub_calls(im, r->calls, r->n_calls, err) < 0 || (r->finish && fix_utf8(im, &r->finish, NULL, err) < 0) ||
		    fix_utf8_json(im, r->extra, err) < 0)
			return -1;
	}
	if (fix_utf8_json(im, t->extra, err) < 0)
		return -1;
	return scrub_json(im, t->recorded, err);
}

/* ---- writing ------------------------------------------------------------------ */

const char *imp_session_id(const struct imp *im)
{
	return im->sid;
}

int64_t imp_session_turns(const struct imp *im, const char *id)
{
	int64_t *v = strset_values(&im->sids, id);
	return v ? v[0] : -1;
}

int imp_session(struct imp *im, struct tr_session *s, struct ar_err *err)
{
	if (im->open && imp_session_end(im, err) < 0)
		return -1;
	/* every string the session line carries, whatever bytes the input had
	 * (ids and models are read from files too, not only texts) */
	if ((s->id && fix_utf8(im, &s->id, NULL, err) < 0) || (s->parent && fix_utf8(im, &s->parent, NULL, err) < 0) ||
	    (s->model && fix_utf8(im, &s->model, NULL, err) < 0) || fix_utf8_json(im, s->source, err) < 0 ||
	    fix_utf8_json(im, s->extra, err) < 0)
		return -1;
	/* unique id in the output */
	char *id = jsonh_strdup(s->id && *s->id ? s->id : "session");
	if (!id)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	for (int k = 2; strset_has(&im->sids, id); k++) {
		struct buf b = BUF_INIT;
		buf_printf(&b, "%s#%d", s->id && *s->id ? s->id : "session", k);
		free(id);
		id = buf_detach(&b);
		if (!id)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	free(s->id);
	s->id = id;
	if (s->parent) {
		int64_t pt = imp_session_turns(im, s->parent);
		if (pt <= 0) { /* no such parent, or it has no turns: a top-level session */
			free(s->parent);
			s->parent = NULL;
			s->spawned_at_turn = -1;
		} else {
			if (s->spawned_at_turn < 0)
				s->spawned_at_turn = 0;
			if (s->spawned_at_turn >= pt)
				s->spawned_at_turn = pt - 1;
		}
	}
	if (!s->format && !(s->format = jsonh_strdup(TRACE_FORMAT)))
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	if (scrub(im, &s->system, NULL, err) < 0 || scrub_json(im, s->tools, err) < 0 || scrub_json(im, s->meta, err) < 0)
		return -1;
	if (strset_add(&im->sids, id) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	if (im->w && trace_writer_session(im->w, s, err) < 0)
		return -1;
	free(im->sid);
	if (!(im->sid = jsonh_strdup(id)))
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	im->open = true;
	im->next_i = 0;
	im->last_t = 0;
	im->calibrated_turn0 = false;
	im->hidden_carry = 0;
	im->has_system = s->system && *s->system;
	convo_reset(&im->cv, s);
	strset_clear(&im->issued);
	im->rep->sessions++;
	if (s->parent)
		im->rep->subagents++;
	return 0;
}

int imp_session_end(struct imp *im, struct ar_err *err)
{
	if (!im->open)
		return 0;
	im->open = false;
	if (im->next_i == 0)
		return imp_bad(im, 0, err, "session '%s' has no model requests", im->sid);
	return 0;
}

static void remove_msg(struct tr_turn *t, size_t k)
{
	tr_message_clear(&t->append[k]);
	memmove(&t->append[k], &t->append[k + 1], (t->n_append - k - 1) * sizeof t->append[0]);
	t->n_append--;
}

static void add_err_sample(struct imp_report *r, double e)
{
	if (r->n_err == r->cap_err) {
		size_t cap = r->cap_err ? r->cap_err * 2 : 256;
		double *p = realloc(r->err_rel, cap * sizeof *p);
		if (!p)
			return;
		r->err_rel = p;
		r->cap_err = cap;
	}
	r->err_rel[r->n_err++] = e;
}

void imp_hidden_reasoning(struct imp *im, const struct tr_response *r)
{
	if (!r || r->output_tokens < 1)
		return;
	int64_t visible = tr_response_history_tokens(r) - TR_MESSAGE_OVERHEAD_TOKENS;
	int64_t hidden = r->output_tokens - (visible > 0 ? visible : 0);
	im->hidden_carry = hidden > 0 ? hidden : 0;
}

int imp_turn(struct imp *im, struct tr_turn *t, uint64_t line, struct ar_err *err)
{
	if (!im->open)
		return ar_err_set(err, AR_EINTERNAL, "import: turn outside a session");
	if (im->hidden_carry > 0 && t->keep < 0 && im->next_i > 0) {
		if (!imp_msg_synth(t, TR_USER, im->hidden_carry))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		im->rep->hidden_turns++;
		im->rep->hidden_tokens += im->hidden_carry;
	}
	im->hidden_carry = 0;
	t->i = im->next_i;
	if (!t->has_t || !isfinite(t->t) || t->t < im->last_t) {
		t->t = im->last_t;
		t->has_t = true;
	}
	if (t->keep >= 0) {
		size_t hist = im->cv.n + (im->cv.has_pending && im->cv.turns > 0 ? 1 : 0);
		if ((size_t)t->keep > hist)
			t->keep = (int64_t)hist;
	}
	if (fix_turn_ids(im, t, err) < 0)
		return -1;
	/* tool results must answer a call issued earlier */
	for (size_t k = 0; k < t->n_append;) {
		struct tr_message *m = &t->append[k];
		for (size_t c = 0; c < m->n_calls; c++)
			if (strset_add(&im->issued, m->calls[c].id) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
		if (m->role == TR_TOOL) {
			if (!m->tool_call_id || !strset_has(&im->issued, m->tool_call_id)) {
				if (imp_bad(im, line, err, "tool result for unknown call '%s'%s",
					    m->tool_call_id ? m->tool_call_id : "",
					    im->o->lenient ? ", dropped" : "") < 0)
					return -1;
				imp_drop(im, "tool result for unknown call", 1);
				remove_msg(t, k);
				continue;
			}
			im->rep->tool_results++;
		}
		k++;
	}
	if (scrub_turn(im, t, err) < 0)
		return -1;
	{
		size_t hist = im->cv.n + (im->cv.has_pending && im->cv.turns > 0 ? 1 : 0);
		if (t->keep >= 0)
			hist = (size_t)t->keep;
		if (hist + t->n_append == 0 && !im->has_system) {
			/* nothing to send: a trace reader rejects an empty prompt */
			if (!imp_msg(t, TR_USER, "", 0))
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			imp_drop(im, "empty prompt (an empty user message sent)", 1);
		}
	}
	if (convo_step(&im->cv, t, err) < 0)
		return -1;
	if (im->w && trace_writer_turn(im->w, t, err) < 0)
		return -1;
	if (t->response)
		for (size_t c = 0; c < t->response->n_calls; c++) {
			if (strset_add(&im->issued, t->response->calls[c].id) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			im->rep->tool_calls++;
		}
	for (size_t k = 0; k < t->n_append; k++)
		im->rep->tool_calls += (int64_t)t->append[k].n_calls;
	struct imp_report *r = im->rep;
	r->turns++;
	if (t->keep >= 0 && t->i > 0)
		r->compactions++;
	if (t->recorded) {
		int64_t p = -1, c = -1, o = -1;
		const cJSON *v;
		if ((v = cJSON_GetObjectItemCaseSensitive(t->recorded, "prompt_tokens")) && jsonh_int(v, &p) && p >= 0) {
			r->rec_prompt += p;
			r->rec_turns++;
			if (p > 0 && !(t->i == 0 && im->calibrated_turn0))
				add_err_sample(r, (double)(convo_tokens(&im->cv) - p) / (double)p);
		}
		if ((v = cJSON_GetObjectItemCaseSensitive(t->recorded, "cached_tokens")) && jsonh_int(v, &c) && c >= 0)
			r->rec_cached += c;
		if ((v = cJSON_GetObjectItemCaseSensitive(t->recorded, "output_tokens")) && jsonh_int(v, &o) && o >= 0)
			r->rec_output += o;
	}
	int64_t *sv = strset_values(&im->sids, im->sid);
	if (sv)
		sv[0] = t->i + 1;
	im->last_t = t->t;
	im->next_i++;
	return 0;
}

/* ---- building --------------------------------------------------------------------- */

struct tr_session *imp_session_new(const char *kind, const char *file, const char *id)
{
	struct tr_session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->spawned_at_turn = -1;
	s->format = jsonh_strdup(TRACE_FORMAT);
	s->id = jsonh_strdup(id ? id : "session");
	s->source = cJSON_CreateObject();
	if (!s->format || !s->id || !s->source) {
		tr_session_free(s);
		return NULL;
	}
	cJSON_AddStringToObject(s->source, "kind", kind);
	if (file)
		cJSON_AddStringToObject(s->source, "file", file);
	return s;
}

void imp_source_synth(struct tr_session *s, const char *what)
{
	cJSON *a = cJSON_GetObjectItemCaseSensitive(s->source, "synthesized");
	if (!a)
		a = cJSON_AddArrayToObject(s->source, "synthesized");
	if (!a)
		return;
	for (cJSON *c = a->child; c; c = c->next)
		if (cJSON_IsString(c) && !strcmp(c->valuestring, what))
			return;
	cJSON_AddItemToArray(a, cJSON_CreateString(what));
}

void imp_source_str(struct tr_session *s, const char *key, const char *v)
{
	if (!v)
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(s->source, key);
	cJSON_AddStringToObject(s->source, key, v);
}

void imp_turn_init(struct tr_turn *t)
{
	memset(t, 0, sizeof *t);
	t->keep = -1;
}

void imp_turn_clear(struct tr_turn *t)
{
	for (size_t k = 0; k < t->n_append; k++)
		tr_message_clear(&t->append[k]);
	free(t->append);
	tr_response_free(t->response);
	cJSON_Delete(t->recorded);
	cJSON_Delete(t->extra);
	imp_turn_init(t);
}

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		if (n)
			memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

struct tr_message *imp_msg(struct tr_turn *t, enum tr_role role, const char *content, size_t len)
{
	struct tr_message *a = realloc(t->append, (t->n_append + 1) * sizeof *a);
	if (!a)
		return NULL;
	t->append = a;
	struct tr_message *m = &a[t->n_append];
	memset(m, 0, sizeof *m);
	m->role = role;
	if (content) {
		if (!(m->content = dupn(content, len)))
			return NULL;
		m->content_len = len;
	}
	t->n_append++;
	return m;
}

struct tr_message *imp_msg_synth(struct tr_turn *t, enum tr_role role, int64_t tokens)
{
	struct tr_message *m = imp_msg(t, role, NULL, 0);
	if (!m)
		return NULL;
	if (!(m->synth = calloc(1, sizeof *m->synth)))
		return NULL;
	m->synth->tokens = tokens < 1 ? 1 : tokens;
	m->synth->block_tokens = -1;
	return m;
}

static int cat(char **dst, size_t *dlen, const char *s, size_t n)
{
	size_t old = *dst ? *dlen : 0;
	char *p = realloc(*dst, old + n + 1);
	if (!p)
		return -1;
	if (n)
		memcpy(p + old, s, n);
	p[old + n] = 0;
	*dst = p;
	*dlen = old + n;
	return 0;
}

int imp_msg_cat(struct tr_message *m, const char *s, size_t n)
{
	return cat(&m->content, &m->content_len, s, n);
}

static int add_call(struct tr_tool_call **calls, size_t *n, const char *id, const char *name, const char *args)
{
	struct tr_tool_call *c = realloc(*calls, (*n + 1) * sizeof *c);
	if (!c)
		return -1;
	*calls = c;
	struct tr_tool_call *x = &c[*n];
	x->id = jsonh_strdup(id && *id ? id : "call");
	x->name = jsonh_strdup(name && *name ? name : "tool");
	x->arguments = jsonh_strdup(args ? args : "{}");
	(*n)++;
	return x->id && x->name && x->arguments ? 0 : -1;
}

int imp_msg_call(struct tr_message *m, const char *id, const char *name, const char *args)
{
	return add_call(&m->calls, &m->n_calls, id, name, args);
}

struct tr_response *imp_resp(struct tr_turn *t)
{
	if (!t->response) {
		t->response = calloc(1, sizeof *t->response);
		if (t->response) {
			t->response->reasoning_tokens = -1;
			t->response->output_tokens = -1;
		}
	}
	return t->response;
}

int imp_resp_cat(struct tr_response *r, const char *s, size_t n)
{
	return cat(&r->content, &r->content_len, s, n);
}

int imp_resp_reason_cat(struct tr_response *r, const char *s, size_t n)
{
	size_t len = r->reasoning ? strlen(r->reasoning) : 0;
	return cat(&r->reasoning, &len, s, n);
}

int imp_resp_call(struct tr_response *r, const char *id, const char *name, const char *args)
{
	return add_call(&r->calls, &r->n_calls, id, name, args);
}

static cJSON *recorded(struct tr_turn *t)
{
	if (!t->recorded)
		t->recorded = cJSON_CreateObject();
	return t->recorded;
}

void imp_rec_num(struct tr_turn *t, const char *key, double v)
{
	cJSON *r = recorded(t);
	/* a figure that went backwards (a log whose clock did: a response
	 * stamped before its request) or a fractional token count is not a
	 * measurement: left unknown, as the trace format wants */
	size_t kl = strlen(key);
	bool tokens = kl > 7 && !strcmp(key + kl - 7, "_tokens");
	if (!r || !isfinite(v) || v < 0 || (tokens && v != floor(v)))
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(r, key);
	cJSON_AddNumberToObject(r, key, v);
}

void imp_rec_str(struct tr_turn *t, const char *key, const char *v)
{
	cJSON *r = recorded(t);
	if (!r || !v)
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(r, key);
	cJSON_AddStringToObject(r, key, v);
}

char *imp_json_text(const cJSON *v)
{
	if (!v)
		return NULL;
	if (cJSON_IsString(v))
		return jsonh_strdup(v->valuestring);
	struct buf b = BUF_INIT;
	if (jsonh_put(&b, v) < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_detach(&b);
}

char *imp_parts_text(struct imp *im, const cJSON *content)
{
	if (!content || cJSON_IsNull(content))
		return jsonh_strdup("");
	if (cJSON_IsString(content))
		return jsonh_strdup(content->valuestring);
	if (!cJSON_IsArray(content))
		return imp_json_text(content);
	struct buf b = BUF_INIT;
	for (const cJSON *p = content->child; p; p = p->next) {
		if (cJSON_IsString(p)) {
			buf_puts(&b, p->valuestring);
			continue;
		}
		const char *type = imp_str(p, "type");
		const char *text = imp_str(p, "text");
		if (text) {
			if (b.len)
				buf_putc(&b, '\n');
			buf_puts(&b, text);
		} else if (type && (strstr(type, "image") || !strcmp(type, "document"))) {
			imp_drop(im, "image", 1);
		} else if (type && !strcmp(type, "tool_result")) {
			/* nested (Anthropic): its own content */
			char *t = imp_parts_text(im, cJSON_GetObjectItemCaseSensitive(p, "content"));
			if (t) {
				if (b.len)
					buf_putc(&b, '\n');
				buf_puts(&b, t);
				free(t);
			}
		}
	}
	char *s = buf_detach(&b);
	return s;
}

/* Block ids of the synthesized prefixes: far above the ids of Mooncake/WEKA
 * traces, one range per format, so sessions of one agent share them. */
#define SYNTH_BLOCK_TOKENS 64
static int64_t synth_base(const char *kind)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (const char *p = kind; *p; p++) {
		h ^= (unsigned char)*p;
		h *= UINT64_C(0x100000001b3);
	}
	return (int64_t)((UINT64_C(1) << 44) + (h % 4096) * (UINT64_C(1) << 32));
}

int imp_synth_prefix(struct imp *im, struct tr_session *s, struct tr_turn *t0, const char *kind, int64_t tokens)
{
	(void)im;
	tokens -= TR_MESSAGE_OVERHEAD_TOKENS;
	if (tokens < 1)
		return 0;
	struct tr_message *m = imp_msg_synth(t0, TR_SYSTEM, tokens);
	if (!m)
		return -1;
	/* move it to the front */
	struct tr_message tmp = *m;
	memmove(&t0->append[1], &t0->append[0], (t0->n_append - 1) * sizeof tmp);
	t0->append[0] = tmp;
	struct tr_synth *sy = t0->append[0].synth;
	size_t nb = (size_t)(tokens / SYNTH_BLOCK_TOKENS);
	if (nb) {
		if (!(sy->blocks = malloc(nb * sizeof *sy->blocks)))
			return -1;
		int64_t base = synth_base(kind);
		for (size_t i = 0; i < nb; i++)
			sy->blocks[i] = base + (int64_t)i;
		sy->n_blocks = nb;
		sy->block_tokens = SYNTH_BLOCK_TOKENS;
	}
	if (s) {
		imp_source_synth(s, "system");
		imp_source_synth(s, "tools");
	}
	im->calibrated_turn0 = true;
	im->rep->synthesized_prefix++;
	return 0;
}

int imp_calibrate_turn0(struct imp *im, struct tr_turn *t0, const char *kind, int64_t prompt)
{
	if (prompt <= 0 || im->next_i != 0)
		return 0;
	int64_t h = im->cv.prefix_tokens;
	for (size_t k = 0; k < t0->n_append; k++)
		h += tr_message_tokens(&t0->append[k]);
	return imp_synth_prefix(im, NULL, t0, kind, prompt - h);
}

/* ---- usage --------------------------------------------------------------------- */

static int64_t getint(const cJSON *o, const char *k)
{
	int64_t v;
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!x || !jsonh_int(x, &v) || v < 0)
		return -1;
	return v;
}

void imp_usage_anthropic(const cJSON *u, struct imp_usage *o)
{
	o->prompt = o->cached = o->output = o->reasoning = o->cache_write = -1;
	if (!cJSON_IsObject(u))
		return;
	int64_t in = getint(u, "input_tokens"), cr = getint(u, "cache_read_input_tokens"),
		cw = getint(u, "cache_creation_input_tokens");
	if (in >= 0)
		o->prompt = in + (cr > 0 ? cr : 0) + (cw > 0 ? cw : 0);
	o->cached = cr >= 0 ? cr : (in >= 0 ? 0 : -1);
	o->cache_write = cw;
	o->output = getint(u, "output_tokens");
}

void imp_usage_openai(const cJSON *u, struct imp_usage *o)
{
	o->prompt = o->cached = o->output = o->reasoning = o->cache_write = -1;
	if (!cJSON_IsObject(u))
		return;
	o->prompt = getint(u, "prompt_tokens");
	if (o->prompt < 0 && getint(u, "input_tokens") >= 0) {
		imp_usage_anthropic(u, o);
		return;
	}
	o->output = getint(u, "completion_tokens");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details");
	o->cached = getint(d, "cached_tokens");
	if (o->cached < 0)
		o->cached = getint(u, "prompt_cache_hit_tokens"); /* DeepSeek */
	if (o->cached < 0)
		o->cached = getint(u, "cache_read_input_tokens");
	if (o->cached < 0 && o->prompt >= 0)
		o->cached = 0;
	const cJSON *cd = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens_details");
	o->reasoning = getint(cd, "reasoning_tokens");
	o->cache_write = getint(u, "cache_creation_input_tokens");
}

void imp_usage_record(struct tr_turn *t, const struct imp_usage *u)
{
	if (u->prompt >= 0)
		imp_rec_num(t, "prompt_tokens", (double)u->prompt);
	if (u->cached >= 0)
		imp_rec_num(t, "cached_tokens", (double)(u->prompt >= 0 && u->cached > u->prompt ? u->prompt : u->cached));
	if (u->output >= 0)
		imp_rec_num(t, "output_tokens", (double)u->output);
	if (u->cache_write > 0)
		imp_rec_num(t, "cache_creation_tokens", (double)u->cache_write);
	if (u->output >= 1) {
		struct tr_response *r = imp_resp(t);
		if (r)
			r->output_tokens = u->output;
	}
	if (u->reasoning > 0 && t->response && t->response->reasoning_tokens < 0 && !t->response->reasoning)
		t->response->reasoning_tokens = u->reasoning;
}

const char *imp_finish(const char *r)
{
	if (!r)
		return NULL;
	if (!strcmp(r, "end_turn") || !strcmp(r, "stop_sequence") || !strcmp(r, "stop") || !strcmp(r, "STOP"))
		return "stop";
	if (!strcmp(r, "max_tokens") || !strcmp(r, "length") || !strcmp(r, "MAX_TOKENS"))
		return "length";
	if (!strcmp(r, "tool_use") || !strcmp(r, "tool_calls") || !strcmp(r, "function_call"))
		return "tool_calls";
	return NULL;
}

/* ---- reading -------------------------------------------------------------------- */

int imp_lines_open(struct imp_lines *r, const char *path, size_t max, struct ar_err *err)
{
	memset(r, 0, sizeof *r);
	r->path = path;
	r->max = max ? max : IMP_MAX_LINE_DEFAULT;
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return ar_err_set(err, AR_EIO, "cannot read '%s': Is a directory", path);
	r->f = fopen(path, "rb");
	if (!r->f)
		return ar_err_set(err, AR_EIO, "cannot open '%s': %s", path, strerror(errno));
	buf_init(&r->line, 0);
	return 0;
}

void imp_lines_close(struct imp_lines *r)
{
	if (r->f)
		fclose(r->f);
	r->f = NULL;
	buf_free(&r->line);
}

/* refills the read buffer; 0 at end of file, -1 on a read error */
static int fill(struct imp_lines *r)
{
	r->rbase += r->rlen;
	r->rpos = r->rlen = 0;
	size_t got = fread(r->rbuf, 1, sizeof r->rbuf, r->f);
	if (got == 0)
		return ferror(r->f) ? -1 : 0;
	r->rlen = got;
	return 1;
}

int imp_lines_seek(struct imp_lines *r, uint64_t off, uint64_t lineno)
{
	if (off >= r->rbase && off <= r->rbase + r->rlen) {
		r->rpos = (size_t)(off - r->rbase); /* inside the buffer: no system call */
	} else {
		if (fseeko(r->f, (off_t)off, SEEK_SET) != 0)
			return -1;
		r->rbase = off;
		r->rpos = r->rlen = 0;
	}
	r->eof = false;
	r->next_off = off;
	r->lineno = lineno ? lineno - 1 : 0;
	return 0;
}

int imp_lines_next(struct imp_lines *r, const char **s, size_t *n, struct ar_err *err)
{
	if (r->eof)
		return 0;
	buf_reset(&r->line);
	r->offset = r->next_off;
	r->lineno++;
	bool too_long = false, got_any = false, ended = false;
	size_t total = 0;
	for (;;) {
		if (r->rpos == r->rlen) {
			int f = fill(r);
			if (f < 0)
				return ar_err_set(err, AR_EIO, "%s: read error: %s", r->path, strerror(errno));
			if (f == 0)
				break;
		}
		const char *p = r->rbuf + r->rpos;
		size_t avail = r->rlen - r->rpos;
		const char *nl = memchr(p, '\n', avail);
		size_t take = nl ? (size_t)(nl - p) : avail;
		got_any = true;
		total += take + (nl ? 1 : 0);
		if (!too_long) {
			if (r->line.len + take > r->max)
				too_long = true;
			else if (buf_append(&r->line, p, take) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
		r->rpos += take + (nl ? 1 : 0);
		if (nl) {
			ended = true;
			break;
		}
	}
	if (!ended) {
		r->eof = true;
		if (!got_any || (r->line.len == 0 && !too_long))
			return 0;
	}
	r->next_off = r->offset + total;
	if (too_long)
		return ar_err_set(err, AR_ELIMIT, "%s:%llu: line longer than %zu bytes", r->path,
				  (unsigned long long)r->lineno, r->max);
	if (r->line.len && r->line.data[r->line.len - 1] == '\r')
		r->line.data[--r->line.len] = 0;
	if (buf_putc(&r->line, 0) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	r->line.len--;
	*s = r->line.data;
	*n = r->line.len;
	return 1;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* line:col of offset off in s */
static void where(const char *s, size_t off, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (s[i] == '\n') {
			(*line)++;
			*col = 1;
		} else
			(*col)++;
	}
}

int imp_jsonl_next(struct imp *im, struct imp_lines *r, cJSON **out, struct ar_err *err)
{
	*out = NULL;
	for (;;) {
		const char *s;
		size_t n;
		int rc = imp_lines_next(r, &s, &n, err);
		if (rc <= 0)
			return rc;
		im->rep->lines++;
		if (blank(s, n))
			continue;
		size_t bad = utf8_check(s, n);
		struct buf fixed = BUF_INIT;
		if (bad < n) {
			if (!im->o->lenient)
				return ar_err_set(err, AR_EFORMAT,
						  "%s:%llu:%zu: invalid UTF-8 (--lenient replaces it with U+FFFD)", r->path,
						  (unsigned long long)r->lineno, bad + 1);
			long k = utf8_repair(s, n, &fixed);
			if (k < 0) {
				buf_free(&fixed);
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			}
			imp_warn(im, r->lineno, "warning: %ld invalid UTF-8 bytes replaced by U+FFFD", k);
			s = fixed.data;
			n = fixed.len;
		}
		const char *end = NULL;
		cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
		buf_free(&fixed);
		if (v && cJSON_IsObject(v)) {
			*out = v;
			return 1;
		}
		size_t col = v ? 1 : (end && end >= s ? (size_t)(end - s) + 1 : 1);
		cJSON_Delete(v);
		im->rep->bad_lines++;
		if (im->o->lenient) {
			imp_warn(im, r->lineno, "warning: %s, line skipped",
				  v ? "line is not a JSON object" : "invalid JSON");
			continue;
		}
		if (v)
			return ar_err_set(err, AR_EFORMAT, "%s:%llu: line is not a JSON object (--lenient skips it)",
					  r->path, (unsigned long long)r->lineno);
		return ar_err_set(err, AR_EFORMAT, "%s:%llu:%zu: invalid JSON (--lenient skips the line)", r->path,
				  (unsigned long long)r->lineno, col);
	}
}

int imp_read_file(const char *path, struct buf *out, struct ar_err *err)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return ar_err_set(err, AR_EIO, "cannot read '%s': Is a directory", path);
	FILE *f = fopen(path, "rb");
	if (!f)
		return ar_err_set(err, AR_EIO, "cannot open '%s': %s", path, strerror(errno));
	buf_init(out, IMP_MAX_DOC);
	char tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		if (buf_append(out, tmp, n) < 0) {
			fclose(f);
			return ar_err_set(err, AR_ELIMIT, "'%s' is larger than %u bytes", path, IMP_MAX_DOC);
		}
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return ar_err_set(err, AR_EIO, "%s: read error", path);
	if (buf_putc(out, 0) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	out->len--;
	return 0;
}

int imp_read_json(const char *path, cJSON **out, struct ar_err *err)
{
	struct buf b = BUF_INIT;
	*out = NULL;
	if (imp_read_file(path, &b, err) < 0) {
		buf_free(&b);
		return -1;
	}
	size_t bad = utf8_check(b.data ? b.data : "", b.len);
	if (bad < b.len) {
		size_t line, col;
		where(b.data, bad, &line, &col);
		ar_err_set(err, AR_EFORMAT, "%s:%zu:%zu: invalid UTF-8", path, line, col);
		buf_free(&b);
		return -1;
	}
	const char *end = NULL;
	cJSON *v = cJSON_ParseWithLengthOpts(b.data ? b.data : "", b.len, &end, 0);
	if (!v) {
		size_t line, col, off = end && b.data && end >= b.data ? (size_t)(end - b.data) : 0;
		where(b.data ? b.data : "", off, &line, &col);
		bool rest_blank = true; /* nothing but whitespace after the error: the file was cut */
		for (size_t i = off; b.data && i < b.len; i++)
			if (b.data[i] != ' ' && b.data[i] != '\n' && b.data[i] != '\r' && b.data[i] != '\t')
				rest_blank = false;
		ar_err_set(err, AR_EFORMAT, "%s:%zu:%zu: invalid JSON%s", path, line, col,
			   rest_blank ? " (the file ends early: truncated?)" : "");
		buf_free(&b);
		return -1;
	}
	buf_free(&b);
	*out = v;
	return 0;
}

int imp_iso8601(const char *s, double *out)
{
	if (!s)
		return -1;
	int Y, M, D, h, m;
	double sec;
	int n = 0;
	if (sscanf(s, "%4d-%2d-%2d%*1[T ]%2d:%2d:%lf%n", &Y, &M, &D, &h, &m, &sec, &n) < 6)
		return -1;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 24 || m > 59 || sec < 0 || sec >= 61)
		return -1;
	const char *z = s + n;
	double off = 0;
	if (*z == '+' || *z == '-') {
		int oh = 0, om = 0;
		if (sscanf(z + 1, "%2d:%2d", &oh, &om) < 1)
			return -1;
		off = (oh * 3600 + om * 60) * (*z == '-' ? -1 : 1);
	}
	/* days from civil (Howard Hinnant's algorithm), no timezone database */
	int y = Y - (M <= 2);
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (M + (M > 2 ? -3 : 9)) + 2) / 5 + D - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	long days = era * 146097 + doe - 719468;
	*out = (double)days * 86400.0 + h * 3600.0 + m * 60.0 + sec - off;
	return 0;
}

const char *imp_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

double imp_num(const cJSON *o, const char *key, double def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : def;
}

int64_t imp_int(const cJSON *o, const char *key, int64_t def)
{
	int64_t x;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return v && jsonh_int(v, &x) ? x : def;
}

/* ---- run ------------------------------------------------------------------------ */

int import_run(const struct importer *imp, const char *const *inputs, size_t n, const char *out,
	       const struct imp_opts *o, struct imp_report *rep, struct ar_err *err)
{
	struct trace_writer *w = NULL;
	struct imp im;
	int rc = -1;
	imp_init(&im, o, NULL, rep);
	if (out && trace_writer_open(&w, out, 0, err) < 0)
		goto out;
	im.w = w;
	for (size_t i = 0; i < n; i++) {
		const struct importer *use = imp;
		if (!use && !(use = import_sniff(inputs[i], err)))
			goto out;
		if (!rep->format[0] || !strcmp(rep->format, use->name))
			snprintf(rep->format, sizeof rep->format, "%s", use->name);
		else
			snprintf(rep->format, sizeof rep->format, "mixed");
		im.path = inputs[i];
		rep->files++;
		if (use->convert(&im, inputs[i], err) < 0)
			goto out;
		if (imp_session_end(&im, err) < 0)
			goto out;
	}
	if (rep->sessions == 0) {
		ar_err_set(err, AR_EFORMAT, "%s: no session found", n == 1 ? inputs[0] : "the inputs");
		goto out;
	}
	if (w) {
		struct trace_writer *tw = w;
		w = NULL;
		if (trace_writer_commit(tw, err) < 0)
			goto out;
	}
	rc = 0;
out:
	if (w) {
		if (out && !strcmp(out, "-"))
			trace_writer_commit(w, NULL);
		else
			trace_writer_abort(w);
	}
	imp_release(&im);
	return rc;
}
