#include "convo.h"

#include <stdlib.h>
#include <string.h>

void convo_init(struct convo *c, bool count_only)
{
	memset(c, 0, sizeof *c);
	c->count_only = count_only;
}

static void truncate_to(struct convo *c, size_t keep)
{
	while (c->n > keep) {
		c->n--;
		c->history_tokens -= c->tokens[c->n];
		if (c->msgs)
			tr_message_clear(&c->msgs[c->n]);
	}
}

void convo_free(struct convo *c)
{
	if (!c)
		return;
	truncate_to(c, 0);
	free(c->msgs);
	free(c->tokens);
	free(c->origin);
	tr_response_free(c->pending_copy);
	memset(c, 0, sizeof *c);
}

void convo_reset(struct convo *c, const struct tr_session *s)
{
	truncate_to(c, 0);
	c->history_tokens = 0;
	c->prefix_tokens = s ? tr_session_prefix_tokens(s) : 0;
	c->turns = 0;
	tr_response_free(c->pending_copy);
	c->pending_copy = NULL;
	c->has_pending = false;
}

static int grow(struct convo *c, size_t extra)
{
	if (c->n + extra <= c->cap)
		return 0;
	size_t cap = c->cap ? c->cap : 16;
	while (cap < c->n + extra)
		cap *= 2;
	int64_t *t = realloc(c->tokens, cap * sizeof *t);
	if (!t)
		return -1;
	c->tokens = t;
	t = realloc(c->origin, cap * sizeof *t);
	if (!t)
		return -1;
	c->origin = t;
	if (!c->count_only) {
		struct tr_message *m = realloc(c->msgs, cap * sizeof *m);
		if (!m)
			return -1;
		c->msgs = m;
	}
	c->cap = cap;
	return 0;
}

/* The assistant message a response becomes. */
static int response_message(struct tr_message *m, const struct tr_response *r)
{
	struct tr_message src = {0};
	src.role = TR_ASSISTANT;
	src.content = r->content ? r->content : (char *)"";
	src.content_len = r->content ? r->content_len : 0;
	src.calls = r->calls;
	src.n_calls = r->n_calls;
	return tr_message_copy(m, &src);
}

static struct tr_response *response_clone(const struct tr_response *r)
{
	struct tr_response *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->reasoning_tokens = -1;
	d->output_tokens = r->output_tokens;
	if (r->content) {
		if (!(d->content = malloc(r->content_len + 1)))
			goto fail;
		memcpy(d->content, r->content, r->content_len + 1);
		d->content_len = r->content_len;
	}
	if (r->n_calls) {
		struct tr_message tmp;
		struct tr_message src = {0};
		src.calls = r->calls;
		src.n_calls = r->n_calls;
		if (tr_message_copy(&tmp, &src) < 0)
			goto fail;
		d->calls = tmp.calls;
		d->n_calls = tmp.n_calls;
	}
	return d;
fail:
	tr_response_free(d);
	return NULL;
}

int convo_set_generated(struct convo *c, const char *text, size_t n)
{
	if (!c->has_pending || c->count_only || !c->pending_copy)
		return 0;
	char *p = malloc(n + 1);
	if (!p)
		return -1;
	memcpy(p, text, n);
	p[n] = '\0';
	free(c->pending_copy->content);
	c->pending_copy->content = p;
	c->pending_copy->content_len = n;
	struct tr_response tmp = *c->pending_copy;
	c->pending_tokens = tr_response_history_tokens(&tmp);
	return 0;
}

int convo_step(struct convo *c, const struct tr_turn *t, struct ar_err *err)
{
	if (c->turns > 0 && c->has_pending) {
		if (grow(c, 1) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		if (!c->count_only && response_message(&c->msgs[c->n], c->pending_copy) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		c->tokens[c->n] = c->pending_tokens;
		c->origin[c->n] = -1;
		c->history_tokens += c->pending_tokens;
		c->n++;
	}
	tr_response_free(c->pending_copy);
	c->pending_copy = NULL;
	c->has_pending = false;
	if (t->keep >= 0) {
		if ((size_t)t->keep > c->n)
			return ar_err_set(err, AR_EFORMAT, "turn %lld: keep %lld is more than the %zu messages of history",
					  (long long)t->i, (long long)t->keep, c->n);
		truncate_to(c, (size_t)t->keep);
	}
	if (grow(c, t->n_append) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	for (size_t k = 0; k < t->n_append; k++) {
		if (!c->count_only && tr_message_copy(&c->msgs[c->n], &t->append[k]) < 0)
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		c->tokens[c->n] = tr_message_tokens(&t->append[k]);
		c->origin[c->n] = (t->i << 20) | (int64_t)(k & 0xFFFFF);
		c->history_tokens += c->tokens[c->n];
		c->n++;
	}
	if (t->response) {
		c->has_pending = true;
		c->pending_tokens = tr_response_history_tokens(t->response);
		if (!c->count_only && !(c->pending_copy = response_clone(t->response)))
			return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	c->turns++;
	return 0;
}
