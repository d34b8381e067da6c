#include "clock.h"

#include <stdio.h>
#include <time.h>

static ar_ns real_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ar_ns)ts.tv_sec * AR_NS_PER_S + ts.tv_nsec;
}

static ar_ns (*now_fn)(void) = real_now;

ar_ns clock_now(void)
{
	return now_fn();
}

void clock_set_source(ar_ns (*fn)(void))
{
	now_fn = fn ? fn : real_now;
}

void clock_wall_iso8601(char *out, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
