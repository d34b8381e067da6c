/* Aider's .aider.llm.history: the exact prompt of every LLM request as text.
 *   TO LLM <time>          a request follows: messages separated by
 *   -------                "-------" lines, each line prefixed by its role
 *   SYSTEM ... / USER ...  (SYSTEM, USER, ASSISTANT)
 *   LLM RESPONSE <time>    the answer follows, as ASSISTANT lines
 * Aider re-sends the whole prompt (repo map, file contents) each time and
 * edits it between requests, so each request is diffed against the history
 * so far with the recorder's reqdiff (keep + the changed tail; a changed
 * system prompt starts a new session). The file has no token usage: output
 * lengths are estimated from the answer text (source.synthesized). */
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "reqdiff.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)n;
	if (!strncmp(head, "TO LLM ", 7) || strstr(head, "\nTO LLM "))
		return 90;
	const char *b = strrchr(path, '/');
	if (!strcmp(b ? b + 1 : path, ".aider.llm.history"))
		return 50;
	return 0;
}

struct parse {
	cJSON *msgs; /* the request being read */
	struct buf cur;
	const char *role;
	struct buf answer;
	int mode; /* 0 none, 1 request, 2 response */
	double req_t, resp_t;
};

static int end_msg(struct parse *p)
{
	if (!p->role)
		return 0;
	cJSON *m = cJSON_CreateObject();
	if (!m)
		return -1;
	cJSON_AddStringToObject(m, "role", p->role);
	cJSON_AddStringToObject(m, "content", p->cur.data ? p->cur.data : "");
	cJSON_AddItemToArray(p->msgs, m);
	buf_reset(&p->cur);
	p->role = NULL;
	return 0;
}

static const char *role_of(const char *s, size_t n, size_t *skip)
{
	static const struct {
		const char *tag, *role;
	} r[] = {{"SYSTEM", "system"}, {"USER", "user"}, {"ASSISTANT", "assistant"}};
	for (size_t i = 0; i < 3; i++) {
		size_t l = strlen(r[i].tag);
		if (n >= l && !memcmp(s, r[i].tag, l) && (n == l || s[l] == ' ')) {
			*skip = n == l ? l : l + 1;
			return r[i].role;
		}
	}
	return NULL;
}

struct state {
	struct reqdiff *rd;
	int part;
	double t0;
	int64_t turns;
};

static int emit(struct imp *im, const char *path, struct state *st, struct parse *p, uint64_t line, struct ar_err *err)
{
	cJSON *body = cJSON_CreateObject();
	struct reqdiff_req req;
	struct reqdiff_turn dt;
	struct tr_turn t;
	int rc = -1;
	memset(&req, 0, sizeof req);
	memset(&dt, 0, sizeof dt);
	imp_turn_init(&t);
	if (!body)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	cJSON_AddItemToObject(body, "messages", p->msgs);
	p->msgs = NULL;
	struct ar_err perr = {0};
	if (reqdiff_parse(REQDIFF_OPENAI_CHAT, body, &req, &perr) < 0) {
		rc = imp_bad(im, line, err, "request: %s", perr.msg);
		goto out;
	}
	if (reqdiff_next(st->rd, &req, &dt, err) < 0)
		goto out;
	if (dt.empty) {
		rc = 0;
		goto out;
	}
	if (dt.new_session) {
		char id[64];
		snprintf(id, sizeof id, st->part ? "aider/%d" : "aider", st->part + 1);
		st->part++;
		struct tr_session *s = imp_session_new("aider", path, id);
		if (!s || (req.system && !(s->system = strdup(req.system)))) {
			tr_session_free(s);
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
		imp_source_synth(s, "output_tokens");
		int r0 = imp_session(im, s, err);
		tr_session_free(s);
		if (r0 < 0)
			goto out;
	}
	t.keep = dt.keep;
	t.append = dt.append;
	t.n_append = dt.n_append;
	dt.append = NULL;
	dt.n_append = 0;
	if (p->req_t >= 0) {
		if (st->t0 < 0)
			st->t0 = p->req_t;
		t.t = p->req_t - st->t0;
		t.has_t = true;
	}
	if (p->mode == 2) {
		struct tr_response *r = imp_resp(&t);
		if (!r || imp_resp_cat(r, p->answer.data ? p->answer.data : "", p->answer.len) < 0) {
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
		if (p->resp_t >= 0 && p->req_t >= 0)
			imp_rec_num(&t, "e2e_ms", (p->resp_t - p->req_t) * 1000.0);
	} else
		imp_drop(im, "request without a response (turn without response)", 1);
	if (imp_turn(im, &t, line, err) < 0)
		goto out;
	if (reqdiff_answer(st->rd, t.response, err) < 0)
		goto out;
	st->turns++;
	rc = 0;
out:
	cJSON_Delete(body);
	reqdiff_req_clear(&req);
	reqdiff_turn_clear(&dt);
	imp_turn_clear(&t);
	return rc;
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	struct imp_lines lr;
	struct parse p;
	struct state st = {NULL, 0, -1, 0};
	int rc = -1, got;
	uint64_t req_line = 0;
	memset(&p, 0, sizeof p);
	p.req_t = p.resp_t = -1;
	if (reqdiff_new(&st.rd, err) < 0)
		return -1;
	if (imp_lines_open(&lr, path, im->o->max_line, err) < 0) {
		reqdiff_free(st.rd);
		return -1;
	}
	const char *s;
	size_t n;
	while ((got = imp_lines_next(&lr, &s, &n, err)) > 0) {
		im->rep->lines++;
		if (n >= 7 && !memcmp(s, "TO LLM ", 7)) {
			if (p.mode && (end_msg(&p) < 0 || emit(im, path, &st, &p, req_line, err) < 0))
				goto out;
			cJSON_Delete(p.msgs);
			if (!(p.msgs = cJSON_CreateArray()))
				goto oom;
			p.mode = 1;
			p.role = NULL;
			buf_reset(&p.cur);
			buf_reset(&p.answer);
			char ts[64];
			snprintf(ts, sizeof ts, "%.*s", (int)(n - 7 < 63 ? n - 7 : 63), s + 7);
			p.req_t = imp_iso8601(ts, &p.req_t) == 0 ? p.req_t : -1;
			p.resp_t = -1;
			req_line = lr.lineno;
			continue;
		}
		if (n >= 13 && !memcmp(s, "LLM RESPONSE ", 13) && p.mode == 1) {
			if (end_msg(&p) < 0)
				goto oom;
			p.mode = 2;
			char ts[64];
			snprintf(ts, sizeof ts, "%.*s", (int)(n - 13 < 63 ? n - 13 : 63), s + 13);
			p.resp_t = imp_iso8601(ts, &p.resp_t) == 0 ? p.resp_t : -1;
			continue;
		}
		if (p.mode == 0) {
			if (n && imp_bad(im, lr.lineno, err, "text before the first 'TO LLM' line") < 0)
				goto out;
			continue;
		}
		if (n == 7 && !memcmp(s, "-------", 7)) {
			if (p.mode == 1 && end_msg(&p) < 0)
				goto oom;
			continue;
		}
		size_t skip = 0;
		const char *role = role_of(s, n, &skip);
		if (!role) { /* a line without a role: part of the message it is in */
			role = p.mode == 2 ? "assistant" : p.role;
			skip = 0;
			if (!role) {
				imp_drop(im, "line outside a message", 1);
				continue;
			}
		}
		struct buf *b = p.mode == 2 ? &p.answer : &p.cur;
		if (p.mode == 1 && p.role && strcmp(p.role, role) && end_msg(&p) < 0)
			goto oom;
		if (p.mode == 1)
			p.role = role;
		if (b->len && buf_putc(b, '\n') < 0)
			goto oom;
		if (buf_append(b, s + skip, n - skip) < 0)
			goto oom;
	}
	if (got < 0)
		goto out;
	if (p.mode && (end_msg(&p) < 0 || emit(im, path, &st, &p, req_line, err) < 0))
		goto out;
	if (!st.part) { /* no request at all */
		struct tr_session *s0 = imp_session_new("aider", path, "aider");
		if (!s0)
			goto oom;
		int r0 = imp_session(im, s0, err);
		tr_session_free(s0);
		if (r0 < 0)
			goto out;
	}
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	cJSON_Delete(p.msgs);
	buf_free(&p.cur);
	buf_free(&p.answer);
	imp_lines_close(&lr);
	reqdiff_free(st.rd);
	return rc;
}

const struct importer imp_aider = {
	.name = "aider",
	.summary = "Aider LLM history (.aider.llm.history: every prompt as sent)",
	.sniff = sniff,
	.convert = convert,
};
