/* Mooncake FAST'25 request traces (kvcache-ai/Mooncake FAST25-release/traces):
 * JSONL, one request per line: {timestamp (ms from trace start),
 * input_length, output_length, hash_ids (512-token prefix blocks, the tail
 * block partial: ceil; ids global across the file)}.
 *
 * There are no session ids. A request whose ids start with all the complete
 * blocks of an earlier request continues that request's conversation (prefix
 * chaining; the longest such match wins); any other request starts a
 * session. Sessions are written in order of their first request, each with
 * its arrival time in meta.arrival_s and t counted from it. Content is
 * synthetic: equal ids expand to equal text, so the shared system prefix
 * (id 0) is shared on the server across sessions, as in the source. */
#include <stdlib.h>
#include <string.h>

#include "import.h"

static int sniff(const char *path, const char *head, size_t n)
{
	(void)path;
	(void)n;
	if (strstr(head, "\"hash_ids\"") && strstr(head, "\"input_length\"") && strstr(head, "\"timestamp\""))
		return 90;
	return 0;
}

struct req {
	double ts;
	int64_t in, out;
	int64_t *ids;
	size_t n;
	uint64_t line;
	size_t next; /* next request of the session, or SIZE_MAX */
};

static uint64_t prefix_hash(uint64_t h, int64_t id)
{
	for (int i = 0; i < 8; i++) {
		h ^= (uint64_t)(id >> (8 * i)) & 0xff;
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static void key_of(char *k, size_t n, uint64_t h, size_t len)
{
	snprintf(k, n, "%016llx/%zu", (unsigned long long)h, len);
}

static int convert(struct imp *im, const char *path, struct ar_err *err)
{
	struct imp_lines lr;
	struct req *rq = NULL;
	size_t nrq = 0, cap = 0;
	size_t *first = NULL, nfirst = 0; /* first request of each session */
	size_t *last = NULL;              /* last request of each session */
	struct strset open; /* full-prefix hash of each session's last request -> session */
	struct imp_blocks bl;
	struct tr_turn t;
	cJSON *o = NULL;
	int rc = -1;
	strset_init(&open);
	imp_blocks_init(&bl, 512, true);
	imp_turn_init(&t);
	if (imp_lines_open(&lr, path, im->o->max_line, err) < 0)
		return -1;
	int got;
	while ((got = imp_jsonl_next(im, &lr, &o, err)) > 0) {
		struct req r = {0};
		r.line = lr.lineno;
		r.next = SIZE_MAX;
		r.ts = imp_num(o, "timestamp", -1);
		r.in = imp_int(o, "input_length", -1);
		r.out = imp_int(o, "output_length", -1);
		int idr = imp_json_ids(cJSON_GetObjectItemCaseSensitive(o, "hash_ids"), &r.ids, &r.n);
		cJSON_Delete(o);
		o = NULL;
		if (idr == -1)
			goto oom;
		if (r.ts < 0 || r.in < 1 || idr == -2) {
			free(r.ids);
			if (imp_bad(im, lr.lineno, err, "%s", r.ts < 0 ? "timestamp: missing or negative"
							      : r.in < 1 ? "input_length: missing or below 1"
									 : "hash_ids: not a list of block ids") < 0)
				goto out;
			im->rep->bad_lines++;
			continue;
		}
		if (nrq == cap) {
			cap = cap ? cap * 2 : 1024;
			struct req *p = realloc(rq, cap * sizeof *p);
			if (!p) {
				free(r.ids);
				goto oom;
			}
			rq = p;
		}
		rq[nrq] = r;
		/* chain: the longest prefix of ours that is some session's full prefix */
		uint64_t h = UINT64_C(0xcbf29ce484222325);
		size_t sess = SIZE_MAX;
		char key[48], best_key[48] = "";
		for (size_t k = 0; k < r.n; k++) {
			h = prefix_hash(h, r.ids[k]);
			key_of(key, sizeof key, h, k + 1);
			int64_t *v = strset_values(&open, key);
			if (v && v[0] >= 0) {
				sess = (size_t)v[0];
				snprintf(best_key, sizeof best_key, "%s", key);
			}
		}
		if (sess != SIZE_MAX) {
			rq[last[sess]].next = nrq;
			last[sess] = nrq;
			strset_values(&open, best_key)[0] = -1; /* continued: closed at that length */
		} else {
			size_t *f = realloc(first, (nfirst + 1) * sizeof *f);
			if (!f)
				goto oom;
			first = f;
			size_t *l = realloc(last, (nfirst + 1) * sizeof *l);
			if (!l)
				goto oom;
			last = l;
			first[nfirst] = last[nfirst] = nrq;
			sess = nfirst++;
		}
		/* register this request's full blocks as the session's open prefix */
		size_t full = r.n;
		if (full && r.in % 512)
			full--;
		if (full >= 1) {
			h = UINT64_C(0xcbf29ce484222325);
			for (size_t k = 0; k < full; k++)
				h = prefix_hash(h, r.ids[k]);
			key_of(key, sizeof key, h, full);
			if (strset_add(&open, key) < 0)
				goto oom;
			strset_values(&open, key)[0] = (int64_t)sess;
		}
		nrq++;
	}
	if (got < 0)
		goto out;
	for (size_t s = 0; s < nfirst; s++) {
		char id[64];
		snprintf(id, sizeof id, "mooncake-%zu", s + 1);
		struct tr_session *ss = imp_session_new("mooncake", path, id);
		if (!ss || !(ss->meta = cJSON_CreateObject()))
			goto oom_s;
		cJSON_AddNumberToObject(ss->meta, "arrival_s", rq[first[s]].ts / 1000.0);
		imp_source_synth(ss, "content");
		int r0 = imp_session(im, ss, err);
		tr_session_free(ss);
		if (r0 < 0)
			goto out;
		imp_blocks_reset(&bl);
		double t0 = rq[first[s]].ts;
		for (size_t k = first[s]; k != SIZE_MAX; k = rq[k].next) {
			int64_t cached = 0;
			if (imp_blocks_turn(&bl, &t, rq[k].ids, rq[k].n, rq[k].in, &cached, err) < 0)
				goto out;
			t.t = (rq[k].ts - t0) / 1000.0;
			t.has_t = true;
			struct tr_response *r = imp_resp(&t);
			if (!r)
				goto oom;
			r->output_tokens = rq[k].out >= 1 ? rq[k].out : 1;
			imp_rec_num(&t, "prompt_tokens", (double)rq[k].in);
			imp_rec_num(&t, "cached_tokens", (double)cached);
			if (rq[k].out >= 0)
				imp_rec_num(&t, "output_tokens", (double)rq[k].out);
			if (imp_turn(im, &t, rq[k].line, err) < 0)
				goto out;
			imp_turn_clear(&t);
		}
		continue;
	oom_s:
		tr_session_free(ss);
		goto oom;
	}
	rc = 0;
	goto out;
oom:
	ar_err_set(err, AR_ENOMEM, "out of memory");
out:
	cJSON_Delete(o);
	imp_lines_close(&lr);
	for (size_t i = 0; i < nrq; i++)
		free(rq[i].ids);
	free(rq);
	free(first);
	free(last);
	strset_free(&open);
	imp_blocks_free(&bl);
	imp_turn_clear(&t);
	return rc;
}

const struct importer imp_mooncake = {
	.name = "mooncake",
	.summary = "Mooncake request trace (JSONL: timestamp, input_length, output_length, hash_ids)",
	.sniff = sniff,
	.convert = convert,
};
