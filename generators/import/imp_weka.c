/* WEKA / kv-cache-tester traces (callanjfox/kv-cache-tester traces/trace_NNNN.json):
 * anonymised real Claude Code sessions as one JSON document {id, models,
 * block_size (64), hash_id_scope ("local"), tool_tokens, system_tokens,
 * requests[]}. A request {t, type n|s, in, out, hash_ids (64-token blocks,
 * tail dropped: floor), stop, api_time, think_time} is one API call; a
 * request of type "subagent" holds its own requests and becomes a child
 * session spawned at the parent turn before it.
 *
 * Ids are local to the file, so they are offset by a hash of the trace id:
 * two different files never share a prefix by accident, and one file
 * replayed twice shares with itself. Where a request's ids leave the
 * previous ones mid-prefix, the turn keeps only what is still shared. */
#include <stdlib.h>
#include <string.h>

#include "import.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)path;
	(void)n;
	if (strstr(head, "\"hash_id_scope\"") || (strstr(head, "\"block_size\"") && strstr(head, "\"requests\"")))
		return 90;
	return 0;
}

static int64_t id_offset(const char *id)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (const char *p = id; *p; p++) {
		h ^= (unsigned char)*p;
		h *= UINT64_C(0x100000001b3);
	}
	return (int64_t)((h % (UINT64_C(1) << 12)) << 40) + (INT64_C(1) << 52) / 2;
}

static int session(struct imp *im, const char *path, const cJSON *obj, const char *id, const char *parent,
		   int64_t spawned, int64_t offset, struct ar_err *err);

/* parent turns before each request index; -1 when none */
static int requests(struct imp *im, const char *path, const cJSON *reqs, int64_t block, int64_t offset,
		    const char *sid, struct ar_err *err)
{
	struct imp_blocks bl;
	struct tr_turn t;
	int rc = -1;
	imp_blocks_init(&bl, block, false);
	bl.offset = offset;
	imp_turn_init(&t);
	for (const cJSON *r = reqs->child; r; r = r->next) {
		const char *type = imp_str(r, "type");
		if (type && !strcmp(type, "subagent"))
			continue; /* written after this session */
		int64_t in = imp_int(r, "in", -1), out = imp_int(r, "out", -1);
		int64_t *ids = NULL;
		size_t n = 0;
		int idr = imp_json_ids(cJSON_GetObjectItemCaseSensitive(r, "hash_ids"), &ids, &n);
		if (idr == -1)
			goto oom;
		if (in < 1 || idr == -2) {
			free(ids);
			if (imp_bad(im, 0, err, "session '%s': a request without %s", sid,
				    in < 1 ? "'in' tokens" : "a valid hash_ids list") < 0)
				goto out;
			continue;
		}
		int64_t cached = 0;
		int brc = imp_blocks_turn(&bl, &t, ids, n, in, &cached, err);
		free(ids);
		if (brc < 0)
			goto out;
		double tt = imp_num(r, "t", -1);
		if (tt >= 0) {
			t.t = tt;
			t.has_t = true;
		}
		struct tr_response *resp = imp_resp(&t);
		if (!resp)
			goto oom;
		resp->output_tokens = out >= 1 ? out : 1;
		const char *fin = imp_finish(imp_str(r, "stop"));
		if (fin && !(resp->finish = strdup(fin)))
			goto oom;
		imp_rec_num(&t, "prompt_tokens", (double)in);
		imp_rec_num(&t, "cached_tokens", (double)cached);
		if (out >= 0)
			imp_rec_num(&t, "output_tokens", (double)out);
		double api = imp_num(r, "api_time", -1);
		if (api >= 0)
			imp_rec_num(&t, "e2e_ms", api * 1000.0);
		imp_rec_str(&t, "model", imp_str(r, "model"));
		if (imp_turn(im, &t, 0, err) < 0)
			goto out;
		imp_turn_clear(&t);
	}
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	imp_turn_clear(&t);
	imp_blocks_free(&bl);
	(void)path;
	return rc;
}

static int session(struct imp *im, const char *path, const cJSON *obj, const char *id, const char *parent,
		   int64_t spawned, int64_t offset, struct ar_err *err)
{
	const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(obj, "requests");
	if (!cJSON_IsArray(reqs))
		return imp_bad(im, 0, err, "session '%s': requests: missing", id);
	struct tr_session *s = imp_session_new("weka", path, id);
	if (!s || !(s->meta = cJSON_CreateObject()))
		goto oom;
	imp_source_synth(s, "content");
	if (parent) {
		if (!(s->parent = strdup(parent)))
			goto oom;
		s->spawned_at_turn = spawned;
	}
	const cJSON *models = cJSON_GetObjectItemCaseSensitive(obj, "models");
	if (cJSON_IsString(cJSON_GetArrayItem(models, 0)) && !(s->model = strdup(cJSON_GetArrayItem(models, 0)->valuestring)))
		goto oom;
	static const char *const keep[] = {"system_tokens", "tool_tokens", "totals", "subagent_type", "agent_id",
					   "duration_ms", "total_tokens", "status"};
	for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, keep[k]);
		if (v)
			cJSON_AddItemToObject(s->meta, keep[k], cJSON_Duplicate(v, 1));
	}
	int64_t block = imp_int(obj, "block_size", 64);
	if (block < 1)
		block = 64;
	if (imp_session(im, s, err) < 0) {
		tr_session_free(s);
		return -1;
	}
	char *sid = strdup(imp_session_id(im));
	tr_session_free(s);
	if (!sid)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	int rc = requests(im, path, reqs, block, offset, sid, err);
	/* subagents: children spawned at the parent turn before them */
	int64_t turn = -1, k = 0;
	for (const cJSON *r = reqs->child; rc == 0 && r; r = r->next) {
		const char *type = imp_str(r, "type");
		if (!type || strcmp(type, "subagent")) {
			turn++;
			continue;
		}
		char cid[256];
		const char *aid = imp_str(r, "agent_id");
		snprintf(cid, sizeof cid, "%s/%s", sid, aid ? aid : "agent");
		k++;
		/* a subagent's ids are its own: another offset */
		rc = session(im, path, r, cid, sid, turn < 0 ? 0 : turn, offset + k * (INT64_C(1) << 32), err);
	}
	free(sid);
	return rc;
oom:
	tr_session_free(s);
	return ar_err_set(err, AR_ENOMEM, "out of memory");
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	cJSON *doc = NULL;
	if (imp_read_json(path, &doc, err) < 0)
		return -1;
	const char *id = imp_str(doc, "id");
	int rc = session(im, path, doc, id ? id : "weka", NULL, -1, id_offset(id ? id : path), err);
	cJSON_Delete(doc);
	return rc;
}

const struct importer imp_weka = {
	.name = "weka",
	.summary = "WEKA / kv-cache-tester trace (JSON: requests with in, out, hash_ids of 64 tokens)",
	.sniff = sniff,
	.convert = convert,
};
