/* storemerge: `agentreplay db merge OUT IN...` — one store from several
 * (the shards of a sweep run on several machines).
 *
 * OUT must not exist; it is written as OUT.tmp and renamed when complete, so
 * a failed merge leaves nothing. Every input must have this agentreplay's
 * schema version (older stores: open them once with a newer agentreplay to
 * upgrade; newer ones: use a newer agentreplay). Refused: a config key live
 * (not superseded) in two inputs (the same config measured twice, e.g. an
 * input given twice or overlapping shards), and inputs whose sweeps come
 * from different config files (different config hashes). Row ids are
 * renumbered; every reference (config -> run, request/event/memory sample ->
 * config) follows.
 */
#ifndef AR_STOREMERGE_H
#define AR_STOREMERGE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct store_merge_report {
	int64_t runs, configs, requests, events, mem_samples;
};

int store_merge(const char *out, const char *const *in, size_t n, struct store_merge_report *rep, struct ar_err *err);

#endif
