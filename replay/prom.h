/* prom: a parser for the Prometheus text exposition format, version 0.0.4
 * (Content-Type text/plain; version=0.0.4), as served on /metrics by
 * llama-server (--metrics), vLLM and SGLang.
 *
 * What it is for: the memory sampler and the engine read a whole /metrics
 * body before and after a request and take differences of cumulative
 * counters (llamacpp:prompt_tokens_total, vllm:prefix_cache_hits_total, ...)
 * or the current value of gauges (vllm:kv_cache_usage_perc,
 * sglang:token_usage). Parsing is exact rather than grep-like so that a body
 * that is not metrics at all (an HTML error page from a proxy, a 501 JSON
 * body, binary junk, a cut-off line) is an error naming the line, never a
 * silent zero.
 *
 * Accepted: "# HELP name text" and "# TYPE name type" lines (checked for a
 * metric name, otherwise ignored), other '#' comments, blank lines, LF or
 * CRLF line ends, and samples
 *     name[{label="value",...}] value [timestamp_ms]
 * with names matching [a-zA-Z_:][a-zA-Z0-9_:]* (so "llamacpp:n_decode_total"
 * and "vllm:gpu_cache_usage_perc" are fine), label names [a-zA-Z_][a-zA-Z0-9_]*,
 * label values in double quotes with the escapes \\ \" \n (UTF-8), a
 * trailing comma in the label set, values as decimal floats ("1.56602e+06",
 * "2097152.0"), "NaN", "+Inf", "-Inf", and an optional integer timestamp in
 * milliseconds. Spaces and tabs separate the parts.
 *
 * Units: values are whatever the exporter says (seconds, tokens, a 0..1
 * fraction); this module does not convert them.
 *
 * Bounds: bodies over PROM_MAX_BODY and lines over PROM_MAX_LINE are refused
 * (AR_ELIMIT); memory is proportional to the body.
 *
 * Ownership: a struct prom_set owns every string and array reachable from
 * it; prom_set_free() releases them all.
 */
#ifndef AR_PROM_H
#define AR_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define PROM_MAX_BODY ((size_t)64 << 20)
#define PROM_MAX_LINE ((size_t)1 << 20)

struct prom_label {
	const char *name;
	const char *value; /* unescaped */
};

struct prom_sample {
	const char *name;
	const struct prom_label *labels; /* in body order */
	size_t n_labels;
	double value;
	bool has_timestamp;
	int64_t timestamp_ms; /* valid when has_timestamp */
	size_t line;          /* 1-based line of the body it came from */
};

struct prom_set;

/* Parses a whole /metrics body (len bytes, need not be NUL-terminated).
 * Returns 0 with *out set (the caller frees it with prom_set_free; an empty
 * body gives an empty set), or -1 with *out NULL and err set: AR_EFORMAT
 * "metrics line N: what is wrong (...)", AR_ELIMIT for an oversized body or
 * line, AR_ENOMEM. */
int prom_parse(const char *body, size_t len, struct prom_set **out, struct ar_err *err);
/* Releases the set; NULL is a no-op. */
void prom_set_free(struct prom_set *s);

/* Number of samples, and the i-th one (i < count) in body order. */
size_t prom_count(const struct prom_set *s);
const struct prom_sample *prom_sample_at(const struct prom_set *s, size_t i);

/* The value of the first sample (in body order) named `name` whose labels
 * include every pair of label_match: NULL or "" matches any label set,
 * otherwise "key=value[,key=value...]" (values compared exactly; may be
 * wrapped in double quotes; cannot contain ','). Returns true and sets *out
 * (may be NULL) when one matched. */
bool prom_get(const struct prom_set *s, const char *name, const char *label_match, double *out);

/* Sum of `name` over all its label sets (e.g. a counter per engine), or NaN
 * when no sample has that name. */
double prom_sum(const struct prom_set *s, const char *name);

#endif
