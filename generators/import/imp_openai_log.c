/* openai-log: the recording proxy's own request log. JSONL, one object per
 * API call:
 *   {"v":1, "t": unix seconds the request arrived, "api": "openai-chat" |
 *    "anthropic-messages", "request": the body as the agent sent it,
 *    "response": {"status", "content", "tool_calls", "reasoning_chars",
 *    "usage"}, "ttft_ms", "e2e_ms", "session": optional id}
 * Each session's requests are diffed against the history so far
 * (src/reqdiff.h, the recorder's own code): new messages become the append,
 * a rewritten history becomes keep + the rest, a changed system prompt or
 * tool set starts a new session. Lines of interleaved sessions are read back by
 * offset, session after session, so memory stays bounded by one request. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "jsonh.h"
#include "reqdiff.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)path;
	(void)n;
	if (strstr(head, "\"api\":\"openai-chat\"") || strstr(head, "\"api\":\"anthropic-messages\"") ||
	    strstr(head, "\"api\": \"openai-chat\"") || strstr(head, "\"api\": \"anthropic-messages\""))
		return 95;
	if (strstr(head, "\"request\"") && strstr(head, "\"messages\"") && strstr(head, "\"response\""))
		return 30;
	return 0;
}

struct sess {
	char *name;
	char *parent;            /* the recorder's routing: a subagent's parent session, or NULL */
	int64_t spawned_at_turn; /* -1 unless a subagent */
	int64_t turns1;          /* turns written under this session's own id (its first part) */
	uint64_t *off, *line;
	size_t n, cap;
};

static int open_session(struct imp *im, const char *path, const struct sess *s, int part, const struct reqdiff_req *req,
			enum reqdiff_api api, struct ar_err *err)
{
	char id[300];
	if (part > 1)
		snprintf(id, sizeof id, "%s/%d", s->name, part);
	else
		snprintf(id, sizeof id, "%s", s->name);
	struct tr_session *ss = imp_session_new("openai-log", path, id);
	if (!ss)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	imp_source_str(ss, "api", reqdiff_api_name(api));
	if (part == 1 && s->parent && s->spawned_at_turn >= 0) {
		if (!(ss->parent = strdup(s->parent))) {
			tr_session_free(ss);
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
		ss->spawned_at_turn = s->spawned_at_turn;
	}
	if ((req->system && !(ss->system = strdup(req->system))) || (req->model && !(ss->model = strdup(req->model))) ||
	    (req->tools && !(ss->tools = cJSON_Duplicate(req->tools, 1)))) {
		tr_session_free(ss);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	int rc = imp_session(im, ss, err);
	tr_session_free(ss);
	return rc;
}

static int one_session(struct imp *im, struct imp_lines *lr, struct sess *s, struct ar_err *err)
{
	struct reqdiff *rd = NULL;
	struct reqdiff_req req;
	struct reqdiff_turn dt;
	struct tr_turn t;
	cJSON *o = NULL;
	int rc = -1, part = 0;
	double t0 = -1;
	memset(&req, 0, sizeof req);
	memset(&dt, 0, sizeof dt);
	imp_turn_init(&t);
	if (reqdiff_new(&rd, err) < 0)
		return -1;
	for (size_t i = 0; i < s->n; i++) {
		if (imp_lines_seek(lr, s->off[i], s->line[i]) < 0) {
			ar_err_set(err, AR_EIO, "%s: cannot seek (openai-log needs a regular file)", lr->path);
			goto out;
		}
		const char *p;
		size_t n;
		if (imp_lines_next(lr, &p, &n, err) <= 0)
			goto out;
		if (!(o = cJSON_ParseWithLength(p, n)))
			goto oom;
		enum reqdiff_api api = REQDIFF_OPENAI_CHAT;
		const char *apiname = imp_str(o, "api");
		if (apiname && reqdiff_api_parse(apiname, &api) < 0) {
			if (imp_bad(im, s->line[i], err, "api: unknown API '%s'", apiname) < 0)
				goto out;
			goto next;
		}
		const cJSON *body = cJSON_GetObjectItemCaseSensitive(o, "request");
		const cJSON *resp = cJSON_GetObjectItemCaseSensitive(o, "response");
		struct ar_err perr = {0};
		if (reqdiff_parse(api, body, &req, &perr) < 0) {
			if (imp_bad(im, s->line[i], err, "request: %s", perr.msg) < 0)
				goto out;
			goto next;
		}
		if (reqdiff_next(rd, &req, &dt, err) < 0)
			goto out;
		if (dt.empty) {
			imp_drop(im, "empty request", 1);
			goto next;
		}
		if (dt.new_session) {
			if (open_session(im, lr->path, s, ++part, &req, api, err) < 0)
				goto out;
			t0 = -1;
		}
		if (dt.orphans)
			imp_drop(im, "tool result for unknown call (kept as user text)", dt.orphans);
		if (req.dropped)
			imp_drop(im, "content part without a trace form (image, thinking, ...)", req.dropped);
		t.keep = dt.keep;
		t.append = dt.append;
		t.n_append = dt.n_append;
		dt.append = NULL;
		dt.n_append = 0;
		double at = imp_num(o, "t", -1);
		if (at >= 0) {
			if (t0 < 0)
				t0 = at;
			/* milliseconds, as the recorder writes t (the log's unix
			 * seconds carry float noise beyond that) */
			t.t = round((at - t0) * 1000.0) / 1000.0;
			t.has_t = true;
		}
		struct tr_response *r = NULL;
		cJSON *rec = NULL;
		struct ar_err rerr = {0};
		if (reqdiff_log_response(api, resp, imp_num(o, "ttft_ms", -1), imp_num(o, "e2e_ms", -1), req.model, &r,
					 &rec, &rerr) < 0) {
			if (imp_bad(im, s->line[i], err, "response: %s", rerr.msg) < 0)
				goto out;
			r = NULL;
			rec = NULL;
		}
		t.response = r;
		t.recorded = rec;
		if (!r)
			imp_drop(im, "failed request (turn without response)", 1);
		if (imp_turn(im, &t, s->line[i], err) < 0)
			goto out;
		if (part == 1)
			s->turns1++;
		if (reqdiff_answer(rd, t.response, err) < 0)
			goto out;
		imp_turn_clear(&t);
	next:
		reqdiff_req_clear(&req);
		reqdiff_turn_clear(&dt);
		cJSON_Delete(o);
		o = NULL;
	}
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	imp_turn_clear(&t);
	reqdiff_req_clear(&req);
	reqdiff_turn_clear(&dt);
	cJSON_Delete(o);
	reqdiff_free(rd);
	return rc;
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	struct imp_lines lr;
	struct sess *ss = NULL;
	size_t nss = 0;
	struct strset names;
	cJSON *o = NULL;
	int rc = -1, got;
	strset_init(&names);
	if (imp_lines_open(&lr, path, im->o->max_line, err) < 0)
		return -1;
	while ((got = imp_jsonl_next(im, &lr, &o, err)) > 0) {
		const char *name = imp_str(o, "session");
		if (!name)
			name = "session";
		if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "request"))) {
			cJSON_Delete(o);
			o = NULL;
			if (imp_bad(im, lr.lineno, err, "request: missing") < 0)
				goto out;
			continue;
		}
		int a = strset_add(&names, name);
		if (a < 0)
			goto oom;
		int64_t *v = strset_values(&names, name);
		if (a == 1) {
			struct sess *p = realloc(ss, (nss + 1) * sizeof *p);
			if (!p)
				goto oom;
			ss = p;
			memset(&ss[nss], 0, sizeof ss[nss]);
			ss[nss].spawned_at_turn = -1;
			if (!(ss[nss].name = strdup(name)))
				goto oom;
			/* the recorder names a subagent's parent on its first call */
			const char *par = imp_str(o, "parent");
			const cJSON *sat = cJSON_GetObjectItemCaseSensitive(o, "spawned_at_turn");
			if (par && cJSON_IsNumber(sat) && sat->valuedouble >= 0 && sat->valuedouble < 1e15 &&
			    strset_values(&names, par)) {
				if (!(ss[nss].parent = strdup(par)))
					goto oom;
				ss[nss].spawned_at_turn = (int64_t)sat->valuedouble;
			}
			v[0] = (int64_t)nss++;
		}
		struct sess *s = &ss[v[0]];
		if (s->n == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 64;
			uint64_t *a1 = realloc(s->off, s->cap * sizeof *a1);
			if (!a1)
				goto oom;
			s->off = a1;
			uint64_t *a2 = realloc(s->line, s->cap * sizeof *a2);
			if (!a2)
				goto oom;
			s->line = a2;
		}
		s->off[s->n] = lr.offset;
		s->line[s->n++] = lr.lineno;
		cJSON_Delete(o);
		o = NULL;
	}
	if (got < 0)
		goto out;
	for (size_t i = 0; i < nss; i++) {
		if (ss[i].parent) {
			/* parents come first (the log's order); a link the parent's
			 * written turns cannot honour is dropped, not written invalid */
			int64_t *pv = strset_values(&names, ss[i].parent);
			if (!pv || ss[pv[0]].turns1 <= ss[i].spawned_at_turn) {
				imp_warn(im, ss[i].line[0], "session '%s': parent '%s' has no turn %lld; imported as a top-level session",
					 ss[i].name, ss[i].parent, (long long)ss[i].spawned_at_turn);
				free(ss[i].parent);
				ss[i].parent = NULL;
			}
		}
		if (one_session(im, &lr, &ss[i], err) < 0)
			goto out;
	}
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	cJSON_Delete(o);
	imp_lines_close(&lr);
	for (size_t i = 0; i < nss; i++) {
		free(ss[i].name);
		free(ss[i].parent);
		free(ss[i].off);
		free(ss[i].line);
	}
	free(ss);
	strset_free(&names);
	return rc;
}

const struct importer imp_openai_log = {
	.name = "openai-log",
	.summary = "agentreplay record's request log (JSONL: request, response, usage, timings)",
	.sniff = sniff,
	.convert = convert,
};
