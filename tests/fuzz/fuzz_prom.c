/* Fuzz target: the Prometheus text parser (replay/prom.c) on arbitrary
 * bytes. Built with libFuzzer under clang (-DAR_FUZZ=ON); fuzz_replay.c
 * replays the corpus in ctest with any compiler.
 *
 * Checks beyond "no crash": a failure is an error naming the line; a body
 * that parses is written back out in canonical form, which must parse to
 * the same samples (names, labels, values bit for bit or both NaN,
 * timestamps), and whose canonical form is stable. abort() when not. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "prom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void write_set(const struct prom_set *s, struct buf *b)
{
	for (size_t i = 0; i < prom_count(s); i++) {
		const struct prom_sample *x = prom_sample_at(s, i);
		buf_puts(b, x->name);
		if (x->n_labels) {
			buf_putc(b, '{');
			for (size_t k = 0; k < x->n_labels; k++) {
				buf_printf(b, "%s%s=\"", k ? "," : "", x->labels[k].name);
				for (const char *v = x->labels[k].value; *v; v++) {
					if (*v == '\\' || *v == '"')
						buf_putc(b, '\\');
					if (*v == '\n')
						buf_puts(b, "\\n");
					else
						buf_putc(b, *v);
				}
				buf_putc(b, '"');
			}
			buf_putc(b, '}');
		}
		if (isnan(x->value))
			buf_puts(b, " NaN");
		else if (isinf(x->value))
			buf_puts(b, x->value > 0 ? " +Inf" : " -Inf");
		else
			buf_printf(b, " %.17g", x->value);
		if (x->has_timestamp)
			buf_printf(b, " %lld", (long long)x->timestamp_ms);
		buf_putc(b, '\n');
	}
}

static int same_value(double a, double b)
{
	if (isnan(a) || isnan(b))
		return isnan(a) && isnan(b);
	return memcmp(&a, &b, sizeof a) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct prom_set *s = NULL;
	struct ar_err err = {AR_OK, ""};
	if (prom_parse((const char *)data, size, &s, &err) != 0) {
		if (s || (err.code != AR_EFORMAT && err.code != AR_ELIMIT) || strncmp(err.msg, "metrics ", 8))
			abort();
		return 0;
	}
	struct buf a = BUF_INIT, b = BUF_INIT;
	write_set(s, &a);
	struct prom_set *s2 = NULL;
	if (prom_parse(a.data ? a.data : "", a.len, &s2, &err) != 0)
		abort(); /* the canonical form of a valid body must be valid */
	if (prom_count(s2) != prom_count(s))
		abort();
	for (size_t i = 0; i < prom_count(s); i++) {
		const struct prom_sample *x = prom_sample_at(s, i), *y = prom_sample_at(s2, i);
		if (strcmp(x->name, y->name) || x->n_labels != y->n_labels || !same_value(x->value, y->value) ||
		    x->has_timestamp != y->has_timestamp || x->timestamp_ms != y->timestamp_ms)
			abort();
		for (size_t k = 0; k < x->n_labels; k++)
			if (strcmp(x->labels[k].name, y->labels[k].name) || strcmp(x->labels[k].value, y->labels[k].value))
				abort();
		double v;
		if (!prom_get(s, x->name, NULL, &v))
			abort();
	}
	write_set(s2, &b);
	if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len)))
		abort(); /* canonical form is stable */
	prom_set_free(s);
	prom_set_free(s2);
	buf_free(&a);
	buf_free(&b);
	return 0;
}
