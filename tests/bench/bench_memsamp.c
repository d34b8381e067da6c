/* bench_memsamp: what the memory sampler costs. A tree of 20 sleeping
 * processes (this one + 19 children) is sampled at 10 Hz and 100 Hz for a
 * few seconds each; prints the sampler threads' CPU time as a share of one
 * core, the tick lateness (p50/p99/max), and, as the in-run reference, the
 * cost of one bare statm read of this process measured in the same
 * invocation (so the ratio cost-per-tick / reads-per-tick is comparable
 * across machines).
 * Usage: bench_memsamp [SECONDS]   (default 3 per rate) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "memsamp.h"
#include "procmem.h"

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 3.0;
	pid_t kids[19];
	for (int i = 0; i < 19; i++)
		if ((kids[i] = fork()) == 0) {
			pause();
			_exit(0);
		}
	usleep(200000);
	/* reference: one statm read + parse of this process */
	char b[256];
	int64_t rss;
	ar_ns t0 = clock_now();
	int n = 20000;
	for (int i = 0; i < n; i++) {
		long l = procmem_read("/proc/self/statm", b, sizeof b);
		if (l > 0)
			procmem_parse_statm(b, (size_t)l, 4096, &rss);
	}
	double ref_us = (double)(clock_now() - t0) / n / 1e3;
	printf("reference: one /proc/PID/statm read+parse %.2f us\n", ref_us);
	static const double hz[] = {10, 100};
	for (int k = 0; k < 2; k++) {
		struct memsamp *m;
		struct memsamp_opts o = {0};
		o.pid = getpid();
		o.interval = (ar_ns)(1e9 / hz[k]);
		struct ar_err err = {0};
		if (memsamp_start(&m, &o, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
		nanosleep(&ts, NULL);
		struct memsamp_info in;
		memsamp_get_info(m, &in);
		struct store_mem_sample last;
		memsamp_last(m, &last);
		memsamp_stop(m);
		double cpu_pct = (double)in.cpu_ns / (secs * 1e9) * 100;
		double per_tick_us = in.samples ? (double)in.cpu_ns / (double)in.samples / 1e3 : 0;
		printf("%5.0f Hz, %lld processes: %llu samples (%llu with PSS) in %.1f s; CPU %.3f%% of a core "
		       "(%.0f us per tick = %.1f x the reference per process read); lateness p50 %.2f ms, p99 %.2f ms, "
		       "max %.2f ms\n",
		       hz[k], (long long)last.procs, (unsigned long long)in.samples, (unsigned long long)in.pss_samples, secs,
		       cpu_pct, per_tick_us, per_tick_us / ref_us / (double)(last.procs ? last.procs : 1),
		       (double)in.late_p50 / 1e6, (double)in.late_p99 / 1e6, (double)in.late_max / 1e6);
	}
	for (int i = 0; i < 19; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	return 0;
}
