/* units: one checked parser for numbers with units.
 *
 * Every number on the command line or in a config goes through here (never
 * atoi/strtol unchecked): overflow, trailing garbage, empty strings, signs
 * where none are allowed and unknown suffixes are errors naming the input.
 *
 *   tokens:   "4096", "32k" (x1024), "128K", "1m" (x1048576)
 *   bytes:    "512", "64KB" (1e3), "2GiB" (2^30), "1.5GB", "80G" (treated as GiB)
 *   duration: "250ms", "2s", "1.5m", "1h", "500us", "100ns"; a bare number is seconds
 *   count:    plain non-negative integer
 *   real:     a finite decimal number
 */
#ifndef AR_UNITS_H
#define AR_UNITS_H

#include <stdint.h>

#include "err.h"

int units_parse_count(const char *s, uint64_t *out, struct ar_err *err);
int units_parse_tokens(const char *s, uint64_t *out, struct ar_err *err);
int units_parse_bytes(const char *s, uint64_t *out, struct ar_err *err);
int units_parse_duration_ns(const char *s, int64_t *out, struct ar_err *err);
int units_parse_real(const char *s, double *out, struct ar_err *err);

#endif
