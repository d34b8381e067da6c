/* sim_run: a trace file through one or more sims (sim predict, matrices,
 * benchmarks). Streaming: memory is bounded by one session's context. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"
#include "trace_io.h"

static void diag_to_err(const struct trace_reader *r, const struct trace_diag *d, struct ar_err *err)
{
	const char *path = trace_reader_path(r);
	unsigned long long line = (unsigned long long)trace_reader_line(r);
	if (!d->n) {
		ar_err_set(err, AR_EFORMAT, "%s:%llu: bad line", path, line);
		return;
	}
	const char *f = d->p[0].field;
	if (d->p[0].col > 0)
		ar_err_set(err, AR_EFORMAT, "%s:%llu:%ld: %s", path, line, d->p[0].col, d->p[0].msg);
	else
		ar_err_set(err, AR_EFORMAT, "%s:%llu: %s%s%s", path, line, f, *f ? ": " : "", d->p[0].msg);
}

int sim_run_trace(struct sim **sims, size_t n_sims, const char *path, const struct sim_run_opts *o, sim_run_fn fn,
		  void *ctx, struct ar_err *err)
{
	struct trace_reader_opts ro = {.max_line = o ? o->max_line : 0};
	struct trace_reader *r = NULL;
	struct tr_session *ses = NULL;
	struct convo c;
	struct sim_prompt p;
	bool *stopped = NULL;
	int rc = -1;
	convo_init(&c, false);
	sim_prompt_init(&p);
	if (!(stopped = calloc(n_sims ? n_sims : 1, sizeof *stopped))) {
		ar_err_set(err, AR_ENOMEM, "out of memory");
		goto out;
	}
	if (trace_reader_open(&r, path, &ro, err) < 0)
		goto out;
	const char *nonce = o && o->nonce ? o->nonce : "";
	size_t live = n_sims;
	for (;;) {
		struct trace_item it;
		struct trace_diag d;
		int k = trace_reader_next(r, &it, &d, err);
		if (k == TRACE_EOF)
			break;
		if (k == TRACE_FATAL)
			goto out;
		if (k == TRACE_BAD) {
			diag_to_err(r, &d, err);
			goto out;
		}
		if (k == TRACE_SKIPPED)
			continue;
		if (it.kind == TRACE_ITEM_SESSION) {
			tr_session_free(ses);
			ses = it.session;
			it.session = NULL;
			trace_item_clear(&it);
			convo_reset(&c, ses);
			continue;
		}
		const struct tr_turn *t = it.turn;
		if (!ses || convo_step(&c, t, err) < 0 || sim_prompt_build(&p, ses, &c, nonce, err) < 0) {
			if (!ses)
				ar_err_set(err, AR_EFORMAT, "%s: turn before any session", path);
			trace_item_clear(&it);
			goto out;
		}
		int64_t out_tokens = tr_response_output_tokens(t->response);
		for (size_t i = 0; i < n_sims; i++) {
			if (stopped[i])
				continue;
			struct sim_result res;
			if (sim_request(sims[i], &p, out_tokens, &res, err) < 0) {
				trace_item_clear(&it);
				goto out;
			}
			int stop = fn ? fn(ctx, i, ses, t, &p, &res) : 0;
			if (stop || (o && o->until_fail && strcmp(res.outcome, "ok"))) {
				stopped[i] = true;
				live--;
			}
		}
		trace_item_clear(&it);
		if (n_sims && !live)
			break;
	}
	rc = 0;
out:
	trace_reader_close(r);
	tr_session_free(ses);
	convo_free(&c);
	sim_prompt_free(&p);
	free(stopped);
	return rc;
}
