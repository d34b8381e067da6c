/* import: turns of token-only traces (Mooncake, WEKA): a request is its input
 * length plus the block hash ids of its prompt. Each turn appends one
 * synthetic user message holding the blocks the previous request did not
 * already have; when a request's ids leave the previous ones mid-prefix (a
 * rewritten reminder, an edited file), the turn keeps only the history
 * messages whose full blocks are still shared, and appends from there. The
 * appended size makes the estimate of the whole prompt equal the recorded
 * input length. */
#include <stdlib.h>
#include <string.h>

#include "import.h"

void imp_blocks_init(struct imp_blocks *b, int64_t block_tokens, bool ceil_tail)
{
	memset(b, 0, sizeof *b);
	b->block = block_tokens;
	b->ceil = ceil_tail;
}

void imp_blocks_free(struct imp_blocks *b)
{
	free(b->prev);
	free(b->full_end);
	free(b->tok);
	memset(b, 0, sizeof *b);
}

void imp_blocks_reset(struct imp_blocks *b)
{
	b->n_prev = 0;
	b->n_msg = 0;
}

int imp_blocks_turn(struct imp_blocks *b, struct tr_turn *t, const int64_t *ids, size_t n, int64_t in_tokens,
		    int64_t *cached, struct ar_err *err)
{
	/* blocks of the previous request that are complete (their text is whole) */
	size_t full_prev = b->n_prev;
	if (b->ceil && full_prev && b->prev_in % b->block)
		full_prev--;
	size_t c = 0;
	while (c < n && c < full_prev && ids[c] == b->prev[c])
		c++;
	/* messages surviving: every full block of theirs is in the common prefix */
	size_t keep_msgs = 0;
	while (keep_msgs < b->n_msg && b->full_end[keep_msgs] <= c)
		keep_msgs++;
	int64_t hist_tokens = 0;
	for (size_t j = 0; j < keep_msgs; j++)
		hist_tokens += b->tok[j] + 2 * TR_MESSAGE_OVERHEAD_TOKENS; /* the message and its response */
	if (keep_msgs < b->n_msg)
		t->keep = (int64_t)keep_msgs * 2;
	size_t start = keep_msgs ? b->full_end[keep_msgs - 1] : 0;
	if (start > n)
		start = n;
	int64_t tokens = in_tokens - hist_tokens - TR_MESSAGE_OVERHEAD_TOKENS;
	if (tokens < 1)
		tokens = 1;
	struct tr_message *m = imp_msg_synth(t, TR_USER, tokens);
	if (!m)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	size_t nb = n - start;
	size_t maxb = (size_t)((tokens + b->block - 1) / b->block);
	if (nb > maxb)
		nb = maxb;
	if (nb) {
		if (!(m->synth->blocks = malloc(nb * sizeof(int64_t))))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		for (size_t i = 0; i < nb; i++)
			m->synth->blocks[i] = ids[start + i] + b->offset;
		m->synth->n_blocks = nb;
		m->synth->block_tokens = b->block;
	}
	/* bookkeeping for the next request */
	if (keep_msgs + 1 > b->cap_msg) {
		size_t cap = b->cap_msg ? b->cap_msg * 2 : 16;
		while (cap < keep_msgs + 1)
			cap *= 2;
		size_t *fe = realloc(b->full_end, cap * sizeof *fe);
		if (!fe)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		b->full_end = fe;
		int64_t *tk = realloc(b->tok, cap * sizeof *tk);
		if (!tk)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		b->tok = tk;
		b->cap_msg = cap;
	}
	size_t full_now = start + nb;
	if (b->ceil && nb && nb == n - start && in_tokens % b->block)
		full_now--; /* the tail block is cut: not shareable by the next request */
	b->full_end[keep_msgs] = full_now;
	b->tok[keep_msgs] = tokens;
	b->n_msg = keep_msgs + 1;
	if (n > b->cap_prev) {
		int64_t *p = realloc(b->prev, n * sizeof *p);
		if (!p)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		b->prev = p;
		b->cap_prev = n;
	}
	if (n)
		memcpy(b->prev, ids, n * sizeof *ids);
	b->n_prev = n;
	b->prev_in = in_tokens;
	if (cached) {
		*cached = (int64_t)c * b->block;
		if (*cached > in_tokens)
			*cached = in_tokens;
	}
	return 0;
}

int imp_json_ids(const cJSON *arr, int64_t **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!cJSON_IsArray(arr))
		return 0;
	size_t k = (size_t)cJSON_GetArraySize(arr), i = 0;
	if (!k)
		return 0;
	int64_t *v = malloc(k * sizeof *v);
	if (!v)
		return -1;
	for (const cJSON *c = arr->child; c; c = c->next) {
		/* range first: converting a double outside int64_t is undefined */
		if (cJSON_IsNumber(c) && c->valuedouble >= 0 && c->valuedouble < (double)(INT64_C(1) << 40) &&
		    (double)(int64_t)c->valuedouble == c->valuedouble)
			v[i++] = (int64_t)c->valuedouble;
		else {
			free(v);
			return -2; /* not a list of block ids */
		}
	}
	*out = v;
	*n = i;
	return 0;
}
