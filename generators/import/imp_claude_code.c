/* Claude Code session logs (~/.claude/projects/<project>/<session>.jsonl).
 *
 * The log is a tree (parentUuid) of lines, one per content block: an API
 * response is written as several assistant lines repeating message.id and
 * the same usage, tool results come back as user lines, and UI bookkeeping
 * (queue-operation, file-history-snapshot, ai-title, last-prompt, summary)
 * sits in between. The importer:
 *  - pass 1 reads every line's uuid, parent, kind and file offset (memory:
 *    about 100 bytes a line, never the text), finds the active branch from
 *    the last message line up to the root, and adds the tool results that
 *    hang off that branch beside it (parallel tool calls fork the tree);
 *  - pass 2 reads the kept lines back by offset and makes one turn per
 *    message.id (grouped, usage taken once, never summed; output_tokens the
 *    largest seen), with the user lines since the previous call as its
 *    append (tool_result blocks -> tool messages, text -> user, attachments
 *    -> user reminders); `<synthetic>` client lines are not requests;
 *    compact_boundary / isCompactSummary become keep + the summary;
 *  - sidechains (isSidechain lines, or the 2.1.x files
 *    <session>/subagents/agent-*.jsonl beside the log) become child sessions
 *    spawned at the parent turn that issued the Task/Agent call before them;
 *  - the system prompt and tool schemas are not in the log: turn 0 gets a
 *    synthetic system message sized so that turn 0's estimate equals the
 *    recorded prompt (input + cache_read + cache_creation).
 * Thinking text is kept as reasoning (never history); signature-only
 * thinking is counted as dropped (its size is in output_tokens). Claude 4.x
 * keeps the thinking in the context (the next prompt grows by the whole
 * output_tokens): that size rides into the next turn as a synthetic user
 * message (imp_hidden_reasoning), so replayed prompts have the recorded size. */
#include <ctype.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)path;
	(void)n;
	int s = 0;
	if (strstr(head, "\"parentUuid\""))
		s += 50;
	if (strstr(head, "\"sessionId\""))
		s += 20;
	if (strstr(head, "\"isSidechain\"") || strstr(head, "\"userType\""))
		s += 20;
	return s > 90 ? 90 : s;
}

enum { F_SIDE = 1, F_TOOLRES = 2, F_MSG = 4, F_KEEP = 8 };

struct node {
	uint64_t off;
	uint64_t line;
	uint64_t msgid; /* hash of message.id of assistant lines, else 0 */
	int64_t parent;
	int32_t group;
	uint8_t flags;
};

struct cc {
	struct imp *im;
	const char *path;
	struct node *nd;
	size_t n, cap;
	struct strset uuids;  /* uuid -> node index */
	struct strset agents; /* agentId -> group */
	int32_t ngroups;
	/* main-session turns, for spawned_at_turn */
	double *turn_t;
	bool *turn_task;
	size_t nturn, capturn;
};

static int pass1(struct cc *c, struct imp_lines *lr, struct ar_err *err)
{
	cJSON *o = NULL;
	int got;
	while ((got = imp_jsonl_next(c->im, lr, &o, err)) > 0) {
		const char *uuid = imp_str(o, "uuid");
		const char *type = imp_str(o, "type");
		if (!uuid || !type) {
			cJSON_Delete(o);
			continue;
		}
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 1024;
			struct node *p = realloc(c->nd, c->cap * sizeof *p);
			if (!p)
				goto oom;
			c->nd = p;
		}
		struct node *x = &c->nd[c->n];
		memset(x, 0, sizeof *x);
		x->off = lr->offset;
		x->line = lr->lineno;
		x->parent = -1;
		const char *pu = imp_str(o, "parentUuid");
		if (pu) {
			int64_t *v = strset_values(&c->uuids, pu);
			if (v)
				x->parent = v[0];
		}
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "isSidechain")))
			x->flags |= F_SIDE;
		if (!strcmp(type, "user") || !strcmp(type, "assistant") || !strcmp(type, "system") ||
		    !strcmp(type, "attachment"))
			x->flags |= F_MSG;
		if (!strcmp(type, "assistant")) {
			const char *mid = imp_str(cJSON_GetObjectItemCaseSensitive(o, "message"), "id");
			uint64_t h = UINT64_C(0xcbf29ce484222325);
			for (const char *q = mid ? mid : ""; *q; q++) {
				h ^= (unsigned char)*q;
				h *= UINT64_C(0x100000001b3);
			}
			x->msgid = mid ? h | 1 : 0;
		}
		if (!strcmp(type, "user")) {
			const cJSON *content = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "message"),
										 "content");
			for (const cJSON *b = cJSON_IsArray(content) ? content->child : NULL; b; b = b->next)
				if (imp_str(b, "type") && !strcmp(imp_str(b, "type"), "tool_result"))
					x->flags |= F_TOOLRES;
		}
		/* group: 0 main; sidechains by agentId, else by their root */
		if (x->flags & F_SIDE) {
			const char *aid = imp_str(o, "agentId");
			if (aid) {
				int a = strset_add(&c->agents, aid);
				if (a < 0)
					goto oom;
				if (a == 1)
					strset_values(&c->agents, aid)[0] = ++c->ngroups;
				x->group = (int32_t)strset_values(&c->agents, aid)[0];
			} else if (x->parent >= 0 && (c->nd[x->parent].flags & F_SIDE))
				x->group = c->nd[x->parent].group;
			else
				x->group = ++c->ngroups;
		}
		int a = strset_add(&c->uuids, uuid);
		if (a < 0)
			goto oom;
		strset_values(&c->uuids, uuid)[0] = (int64_t)c->n;
		c->n++;
		cJSON_Delete(o);
		o = NULL;
	}
	return got < 0 ? -1 : 0;
oom:
	cJSON_Delete(o);
	return ar_err_set(err, AR_ENOMEM, "out of memory");
}

/* Marks the active branch of each group: from its last message line up. */
static void mark(struct cc *c)
{
	for (int32_t g = 0; g <= c->ngroups; g++) {
		int64_t leaf = -1;
		for (size_t i = c->n; i-- > 0;)
			if (c->nd[i].group == g && (c->nd[i].flags & F_MSG)) {
				leaf = (int64_t)i;
				break;
			}
		for (int64_t i = leaf; i >= 0; i = c->nd[i].parent) {
			if (c->nd[i].flags & F_KEEP)
				break; /* a cycle in a corrupt log */
			c->nd[i].flags |= F_KEEP;
		}
	}
	/* parallel tool calls fork the tree: a call's later blocks and the tool
	 * results hang off its first blocks beside the branch. Parents come
	 * before children in the file, so one pass in file order follows them. */
	for (size_t i = 0; i < c->n; i++) {
		struct node *x = &c->nd[i];
		if ((x->flags & F_KEEP) || x->parent < 0)
			continue;
		const struct node *p = &c->nd[x->parent];
		if (!(p->flags & F_KEEP) || p->group != x->group)
			continue;
		if ((x->flags & F_TOOLRES) || (x->msgid && x->msgid == p->msgid))
			x->flags |= F_KEEP;
	}
}

struct build {
	struct tr_turn cur;     /* the call being assembled */
	struct tr_turn pending; /* input since the last call */
	char *cur_id;
	uint64_t cur_line;
	bool have_cur;
	bool synth_prefix; /* turn 0 got a synthetic system message */
	bool pending_compact;
	double t0;
	double pending_t; /* time of the first input line since the last call */
	struct imp_usage u;
	int64_t turns;
	bool is_main;
	bool thinking; /* the call being assembled had thinking blocks */
};

static int flush(struct cc *c, struct build *b, struct ar_err *err)
{
	if (!b->have_cur)
		return 0;
	struct tr_turn *t = &b->cur;
	imp_usage_record(t, &b->u);
	if (b->turns == 0 && b->u.prompt > 0) {
		/* the system prompt + tool schemas are not in the log: their size is
		 * what turn 0's recorded prompt has beyond what turn 0 appends */
		int64_t h = 0;
		for (size_t k = 0; k < t->n_append; k++)
			h += tr_message_tokens(&t->append[k]);
		size_t before = t->n_append;
		if (imp_synth_prefix(c->im, NULL, t, b->is_main ? "claude-code" : "claude-code/subagent", b->u.prompt - h) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		b->synth_prefix = t->n_append > before;
	}
	if (b->is_main) {
		bool task = false;
		for (size_t k = 0; t->response && k < t->response->n_calls; k++)
			if (!strcmp(t->response->calls[k].name, "Task") || !strcmp(t->response->calls[k].name, "Agent"))
				task = true;
		if (c->nturn == c->capturn) {
			c->capturn = c->capturn ? c->capturn * 2 : 256;
			double *tt = realloc(c->turn_t, c->capturn * sizeof *tt);
			if (!tt)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			c->turn_t = tt;
			bool *tk = realloc(c->turn_task, c->capturn * sizeof *tk);
			if (!tk)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			c->turn_task = tk;
		}
		c->turn_t[c->nturn] = b->t0 + t->t;
		c->turn_task[c->nturn++] = task;
	}
	if (imp_turn(c->im, t, b->cur_line, err) < 0)
		return -1;
	if (b->thinking) /* Claude keeps the whole thinking in the context */
		imp_hidden_reasoning(c->im, t->response);
	b->thinking = false;
	imp_turn_clear(t);
	b->have_cur = false;
	b->turns++;
	return 0;
}

static int user_line(struct cc *c, struct build *b, const cJSON *o, struct ar_err *err)
{
	struct tr_turn *t = &b->pending;
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "message");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "isCompactSummary"))) {
		b->pending_compact = true;
		/* what came before the summary is gone with the old context */
		for (size_t k = 0; k < t->n_append; k++)
			tr_message_clear(&t->append[k]);
		t->n_append = 0;
	}
	if (cJSON_IsString(content)) {
		if (!imp_msg(t, TR_USER, content->valuestring, strlen(content->valuestring)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		return 0;
	}
	struct tr_message *text = NULL;
	for (const cJSON *blk = cJSON_IsArray(content) ? content->child : NULL; blk; blk = blk->next) {
		const char *type = imp_str(blk, "type");
		if (!type)
			continue;
		if (!strcmp(type, "tool_result")) {
			char *s = imp_parts_text(c->im, cJSON_GetObjectItemCaseSensitive(blk, "content"));
			struct tr_message *m = s ? imp_msg(t, TR_TOOL, s, strlen(s)) : NULL;
			free(s);
			const char *id = imp_str(blk, "tool_use_id");
			if (!m || !(m->tool_call_id = strdup(id ? id : "")))
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			text = NULL;
		} else if (!strcmp(type, "text")) {
			const char *s = imp_str(blk, "text");
			if (!text && !(text = imp_msg(t, TR_USER, "", 0)))
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			if (text->content_len && imp_msg_cat(text, "\n", 1) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			if (s && imp_msg_cat(text, s, strlen(s)) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
		} else if (strstr(type, "image") || !strcmp(type, "document")) {
			imp_drop(c->im, "image", 1);
		}
	}
	return 0;
}

static int assistant_line(struct cc *c, struct build *b, const cJSON *o, uint64_t line, struct ar_err *err)
{
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "message");
	const char *model = imp_str(msg, "model");
	if (model && !strcmp(model, "<synthetic>")) {
		imp_drop(c->im, "client-written <synthetic> assistant line", 1);
		return 0;
	}
	const char *id = imp_str(msg, "id");
	if (!id)
		id = imp_str(o, "requestId");
	if (!id)
		id = imp_str(o, "uuid");
	if (!b->have_cur || !b->cur_id || strcmp(b->cur_id, id)) {
		if (flush(c, b, err) < 0)
			return -1;
		free(b->cur_id);
		if (!(b->cur_id = strdup(id)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		/* the new call's input: what came since the previous one */
		b->cur = b->pending;
		imp_turn_init(&b->pending);
		b->have_cur = true;
		b->cur_line = line;
		double ts;
		if (imp_iso8601(imp_str(o, "timestamp"), &ts) == 0) {
			double at = b->pending_t >= 0 ? b->pending_t : ts;
			if (b->t0 < 0)
				b->t0 = at;
			b->cur.t = at - b->t0;
			b->cur.has_t = true;
		}
		b->pending_t = -1;
		if (b->pending_compact) {
			b->cur.keep = b->synth_prefix ? 1 : 0;
			b->pending_compact = false;
		}
		if (!imp_resp(&b->cur))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		imp_usage_anthropic(cJSON_GetObjectItemCaseSensitive(msg, "usage"), &b->u);
		imp_rec_str(&b->cur, "model", model);
	} else {
		/* same call: usage repeats (never summed); streaming snapshots grow output */
		struct imp_usage u;
		imp_usage_anthropic(cJSON_GetObjectItemCaseSensitive(msg, "usage"), &u);
		if (u.output > b->u.output)
			b->u.output = u.output;
		if (b->u.prompt < 0)
			b->u = u;
	}
	struct tr_response *r = b->cur.response;
	const char *stop = imp_finish(imp_str(msg, "stop_reason"));
	if (stop) {
		free(r->finish);
		if (!(r->finish = strdup(stop)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	if (cJSON_IsString(content) && imp_resp_cat(r, content->valuestring, strlen(content->valuestring)) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	for (const cJSON *blk = cJSON_IsArray(content) ? content->child : NULL; blk; blk = blk->next) {
		const char *type = imp_str(blk, "type");
		if (!type)
			continue;
		if (!strcmp(type, "text")) {
			const char *s = imp_str(blk, "text");
			if (r->content_len && imp_resp_cat(r, "\n", 1) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
			if (s && imp_resp_cat(r, s, strlen(s)) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
		} else if (!strcmp(type, "tool_use")) {
			char *args = imp_json_text(cJSON_GetObjectItemCaseSensitive(blk, "input"));
			int rc = imp_resp_call(r, imp_str(blk, "id"), imp_str(blk, "name"), args ? args : "{}");
			free(args);
			if (rc < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
		} else if (!strcmp(type, "thinking")) {
			const char *s = imp_str(blk, "thinking");
			b->thinking = true;
			if (s && *s) {
				if (imp_resp_reason_cat(r, s, strlen(s)) < 0)
					return ar_err_set(err, AR_ENOMEM, "out of memory");
			} else
				imp_drop(c->im, "thinking without text (size in output_tokens)", 1);
		} else if (!strcmp(type, "redacted_thinking")) {
			b->thinking = true;
			imp_drop(c->im, "encrypted reasoning (size in output_tokens)", 1);
		}
	}
	return 0;
}

static int attachment_line(struct cc *c, struct build *b, const cJSON *o, struct ar_err *err)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "attachment");
	if (!a)
		return 0;
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(a, "content");
	char *s = imp_json_text(body ? body : a);
	if (!s)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	struct tr_message *m = imp_msg(&b->pending, TR_USER, "<system-reminder>\n", 18);
	int rc = m && imp_msg_cat(m, s, strlen(s)) == 0 && imp_msg_cat(m, "\n</system-reminder>", 19) == 0 ? 0 : -1;
	free(s);
	(void)c;
	return rc < 0 ? ar_err_set(err, AR_ENOMEM, "out of memory") : 0;
}

/* The input's first ISO timestamp among the kept lines of group g. */
static int emit_group(struct cc *c, struct imp_lines *lr, int32_t g, const char *parent, struct ar_err *err)
{
	struct build b;
	memset(&b, 0, sizeof b);
	imp_turn_init(&b.cur);
	imp_turn_init(&b.pending);
	b.t0 = -1;
	b.pending_t = -1;
	b.is_main = parent == NULL;
	struct tr_session *s = NULL;
	cJSON *o = NULL;
	int rc = -1;
	bool opened = false;
	for (size_t i = 0; i < c->n; i++) {
		struct node *x = &c->nd[i];
		if (x->group != g || !(x->flags & F_KEEP))
			continue;
		if (imp_lines_seek(lr, x->off, x->line) < 0) {
			ar_err_set(err, AR_EIO, "%s: cannot seek (claude-code needs a regular file)", c->path);
			goto out;
		}
		const char *p;
		size_t n;
		if (imp_lines_next(lr, &p, &n, err) <= 0) {
			if (!err->msg[0])
				ar_err_set(err, AR_EIO, "%s:%llu: the file changed while it was read", c->path,
					   (unsigned long long)x->line);
			goto out;
		}
		if (!(o = cJSON_ParseWithLength(p, n)))
			goto oom;
		if (!opened) {
			const char *sid = imp_str(o, "sessionId");
			const char *aid = imp_str(o, "agentId");
			char id[256];
			if (parent)
				snprintf(id, sizeof id, "%s/%s", parent, aid ? aid : "sidechain");
			else
				snprintf(id, sizeof id, "%s", sid ? sid : "claude-code");
			if (!(s = imp_session_new("claude-code", c->path, id)))
				goto oom;
			imp_source_str(s, "version", imp_str(o, "version"));
			imp_source_synth(s, "system");
			imp_source_synth(s, "tools");
			if (parent) {
				if (!(s->parent = strdup(parent)))
					goto oom;
				double ts = 0;
				int64_t k = 0;
				if (imp_iso8601(imp_str(o, "timestamp"), &ts) == 0) {
					/* the latest parent turn at or before the start that called Task/Agent */
					int64_t any = -1, task = -1;
					for (size_t j = 0; j < c->nturn; j++)
						if (c->turn_t[j] <= ts) {
							any = (int64_t)j;
							if (c->turn_task[j])
								task = (int64_t)j;
						}
					k = task >= 0 ? task : any >= 0 ? any : 0;
				}
				s->spawned_at_turn = k;
			}
			opened = true;
			/* the session line waits for the model name of the first call */
		}
		const char *type = imp_str(o, "type");
		double ts;
		bool input = false;
		if (!strcmp(type, "assistant")) {
			if (s) {
				const char *model = imp_str(cJSON_GetObjectItemCaseSensitive(o, "message"), "model");
				if (model && strcmp(model, "<synthetic>") && !(s->model = strdup(model)))
					goto oom;
				if (imp_session(c->im, s, err) < 0)
					goto out;
				tr_session_free(s);
				s = NULL;
			}
			if (assistant_line(c, &b, o, x->line, err) < 0)
				goto out;
			/* turn 0: size the missing system prompt + tools from its recorded prompt */
		} else if (!strcmp(type, "user")) {
			if (user_line(c, &b, o, err) < 0)
				goto out;
			input = true;
		} else if (!strcmp(type, "attachment")) {
			if (attachment_line(c, &b, o, err) < 0)
				goto out;
			input = true;
		} else if (!strcmp(type, "system")) {
			const char *sub = imp_str(o, "subtype");
			if (sub && !strcmp(sub, "compact_boundary"))
				b.pending_compact = true;
		}
		if (input && b.pending_t < 0 && imp_iso8601(imp_str(o, "timestamp"), &ts) == 0)
			b.pending_t = ts;
		cJSON_Delete(o);
		o = NULL;
	}
	if (s) { /* no call at all: an empty session */
		if (imp_session(c->im, s, err) < 0)
			goto out;
	}
	if (flush(c, &b, err) < 0)
		goto out;
	if (b.pending.n_append)
		imp_drop(c->im, "input after the last call", (int64_t)b.pending.n_append);
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	cJSON_Delete(o);
	tr_session_free(s);
	imp_turn_clear(&b.cur);
	imp_turn_clear(&b.pending);
	free(b.cur_id);
	return rc;
}

static int one_file(struct imp *im, const char *path, const char *parent, struct cc *keep_turns, char **main_sid,
		    struct ar_err *err);

/* Whether a sidechain file belongs to session sid (its lines name it). */
static bool same_session(const char *path, const char *sid)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	char head[8192];
	size_t n = fread(head, 1, sizeof head - 1, f);
	fclose(f);
	head[n] = 0;
	char want[300];
	snprintf(want, sizeof want, "\"sessionId\":\"%s\"", sid);
	return strstr(head, want) != NULL;
}

/* Whether a session id may name a folder and a file pattern: Claude Code's
 * are UUIDs. The id comes from the log, so "..", "a/b" or "*" must not steer
 * where the importer looks for subagent files. */
static bool plain_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 200 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	struct cc c;
	memset(&c, 0, sizeof c);
	char *sid = NULL;
	int rc = one_file(im, path, NULL, &c, &sid, err);
	if (rc == 0 && sid && plain_name(sid)) {
		const char *slash = strrchr(path, '/');
		size_t dl = slash ? (size_t)(slash - path + 1) : 0;
		size_t need = dl + strlen(sid) + 40;
		char *pat = malloc(need);
		if (!pat)
			rc = ar_err_set(err, AR_ENOMEM, "out of memory");
		for (int layout = 0; rc == 0 && pat && layout < 2; layout++) {
			/* 2.1.x: <dir>/<session>/subagents/agent-*.jsonl; 2.0.x:
			 * <dir>/agent-*.jsonl of any session (those of this one are
			 * picked by their sessionId) */
			if (layout == 0)
				snprintf(pat, need, "%.*s%s/subagents/agent-*.jsonl", (int)dl, path, sid);
			else
				snprintf(pat, need, "%.*sagent-*.jsonl", (int)dl, path);
			glob_t g;
			if (glob(pat, 0, NULL, &g) != 0)
				continue;
			char *main_id = strdup(sid);
			for (size_t i = 0; rc == 0 && main_id && i < g.gl_pathc; i++) {
				if (!strcmp(g.gl_pathv[i], path) || (layout == 1 && !same_session(g.gl_pathv[i], sid)))
					continue;
				const char *saved = im->path;
				im->path = g.gl_pathv[i];
				rc = one_file(im, g.gl_pathv[i], main_id, &c, NULL, err);
				im->path = saved;
			}
			if (!main_id)
				rc = ar_err_set(err, AR_ENOMEM, "out of memory");
			free(main_id);
			globfree(&g);
		}
		free(pat);
	}
	free(sid);
	free(c.turn_t);
	free(c.turn_task);
	return rc;
}

/* Converts one log file; for the main file, *main_sid gets the output id of
 * its main session and keep_turns the main session's turn times. */
static int one_file(struct imp *im, const char *path, const char *parent, struct cc *keep, char **main_sid,
		    struct ar_err *err)
{
	struct imp_lines lr;
	struct cc c;
	memset(&c, 0, sizeof c);
	c.im = im;
	c.path = path;
	strset_init(&c.uuids);
	strset_init(&c.agents);
	if (parent) { /* the parent's turn times, for spawned_at_turn */
		c.turn_t = keep->turn_t;
		c.turn_task = keep->turn_task;
		c.nturn = keep->nturn;
		c.capturn = keep->capturn;
	}
	int rc = -1;
	if (imp_lines_open(&lr, path, im->o->max_line, err) < 0)
		goto out;
	if (pass1(&c, &lr, err) < 0)
		goto out;
	mark(&c);
	int32_t first_group = parent ? 1 : 0;
	bool any_main = false;
	for (size_t i = 0; i < c.n; i++)
		if (c.nd[i].group == 0)
			any_main = true;
	if (!parent && !any_main && c.ngroups) {
		/* a lone subagent file: its sidechain is the session */
		first_group = 1;
	}
	if (!parent && first_group == 0) {
		if (emit_group(&c, &lr, 0, NULL, err) < 0)
			goto out;
		if (main_sid && !(*main_sid = strdup(imp_session_id(im) ? imp_session_id(im) : "")))
			goto oom;
	}
	if (c.n == 0) {
		/* nothing but bookkeeping: an empty session */
		struct tr_session *s = imp_session_new("claude-code", path, "claude-code");
		if (!s)
			goto oom;
		int r0 = imp_session(im, s, err);
		tr_session_free(s);
		if (r0 < 0)
			goto out;
	}
	{
		char *psid = NULL;
		if (parent)
			psid = strdup(parent);
		else if (first_group == 0 && imp_session_id(im))
			psid = strdup(imp_session_id(im));
		for (int32_t g = 1; g <= c.ngroups; g++) {
			if (emit_group(&c, &lr, g, psid, err) < 0) {
				free(psid);
				goto out;
			}
		}
		free(psid);
	}
	if (!parent) {
		keep->turn_t = c.turn_t;
		keep->turn_task = c.turn_task;
		keep->nturn = c.nturn;
		keep->capturn = c.capturn;
	} else {
		keep->turn_t = c.turn_t;
		keep->turn_task = c.turn_task;
	}
	c.turn_t = NULL;
	c.turn_task = NULL;
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	if (c.turn_t && !parent) {
		free(c.turn_t);
		free(c.turn_task);
	}
	imp_lines_close(&lr);
	free(c.nd);
	strset_free(&c.uuids);
	strset_free(&c.agents);
	return rc;
}

const struct importer imp_claude_code = {
	.name = "claude-code",
	.summary = "Claude Code session log (~/.claude/projects/*/*.jsonl, subagents beside it)",
	.sniff = sniff,
	.convert = convert,
};
