/* clock: monotonic time in nanoseconds, swappable for tests.
 *
 * Durations always come from CLOCK_MONOTONIC (never the wall clock, which
 * jumps). The wall clock is only used to label runs (clock_wall_iso8601).
 * Tests install a fake source with clock_set_source() to make timing
 * deterministic; pass NULL to restore the real clock.
 */
#ifndef AR_CLOCK_H
#define AR_CLOCK_H

#include <stddef.h>
#include <stdint.h>

typedef int64_t ar_ns; /* nanoseconds */

#define AR_NS_PER_MS 1000000LL
#define AR_NS_PER_S 1000000000LL

ar_ns clock_now(void);
void clock_set_source(ar_ns (*fn)(void));
static inline double clock_ms(ar_ns ns) { return (double)ns / 1e6; }
/* Writes the current UTC time as "2026-11-29T02:21:52Z" into out (>= 21 bytes). */
void clock_wall_iso8601(char *out, size_t n);

#endif
