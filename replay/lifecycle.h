/* lifecycle: one managed inference server's whole life.
 *
 * lc_start() forks and execs the server (argv, never a shell unless argv
 * asks for one) in a process group of its own, with stdout and stderr
 * appended to a log file and PR_SET_PDEATHSIG so it does not outlive us if
 * we are killed. lc_wait_ready() polls the health URL with backoff (any 200)
 * and/or watches the log for the ready pattern, and notices an early exit.
 * lc_stop() sends the stop signal to the group, waits the grace period,
 * SIGKILLs the group, reaps the child and checks that the port is free again.
 *
 * Exit statuses are reported as written by lc_status_text() ("exit 1",
 * "signal 6 (Aborted)"). Nothing here prints; times are CLOCK_MONOTONIC.
 *
 * Ownership: lc_start() returns a server freed by lc_free() (NULL ok), which
 * kills a group still running. Strings in lc_spec are copied.
 */
#ifndef AR_LIFECYCLE_H
#define AR_LIFECYCLE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "clock.h"
#include "err.h"

struct lc_spec {
	char *const *argv; /* NULL-terminated; argv[0] looked up in PATH */
	char *const *env;  /* NAME=VALUE added to our environment; may be NULL */
	const char *cwd;   /* NULL: ours */
	const char *log_path;
	const char *health_url; /* NULL: none */
	const char *ready_regex; /* NULL: none */
	ar_ns start_timeout;
	int stop_signal;
	ar_ns grace;
	int port; /* checked free after stop; 0: none */
};

struct lc_server;

/* Picks a free TCP port on 127.0.0.1 (bind to port 0, read it, close). */
int lc_free_port(int *port, struct ar_err *err);
/* True when something accepts connections on 127.0.0.1:port. */
bool lc_port_in_use(int port);
/* Resolves argv0 like execvp: 0 when it names an executable file. */
int lc_find_program(const char *argv0, char *out, size_t n, struct ar_err *err);

int lc_start(struct lc_server **out, const struct lc_spec *spec, struct ar_err *err);
pid_t lc_pid(const struct lc_server *s);

/* Waits until ready. Returns 0 (ready; *ready_s = seconds since start), or -1
 * with err: AR_ENET when the process exited first (its status in the
 * message), AR_EBACKEND on the start timeout, AR_EINVAL for a bad ready
 * pattern. *stop set: returns -1 with AR_EINTERNAL "interrupted". */
int lc_wait_ready(struct lc_server *s, volatile sig_atomic_t *stop, double *ready_s, struct ar_err *err);

/* Reaps the process without blocking: true when it has exited (its status
 * is then kept for lc_exited()). wait_ms > 0: wait up to that long. */
bool lc_poll_exit(struct lc_server *s, int wait_ms);
/* After an exit: the wait status, as from waitpid. */
bool lc_exited(const struct lc_server *s, int *wstatus);
/* "exit 1", "signal 9 (Killed)". */
void lc_status_text(int wstatus, char *out, size_t n);

struct lc_stop_result {
	bool was_running;  /* it was alive when the stop began */
	bool killed;       /* the grace ran out: SIGKILL sent */
	int wstatus;       /* how it ended */
	double stop_s;     /* seconds the stop took */
	bool port_free;    /* the port accepts no connection afterwards */
};

/* Stops the group (signal, grace, SIGKILL), reaps the child, checks the port. */
int lc_stop(struct lc_server *s, struct lc_stop_result *r, struct ar_err *err);
void lc_free(struct lc_server *s);

/* The memory cgroup a process is in, to tell an OOM kill from any other
 * SIGKILL: the kernel's OOM killer counts its kills per memory cgroup (v1
 * memory.oom_control, v2 memory.events.local: "oom_kill N"), and a memory limit
 * (a container's, a systemd unit's, a test's) kills by SIGKILL with no line
 * in the server's log. */
struct lc_memcg {
	char path[512];     /* the group, as /proc/PID/cgroup names it */
	char file[1024];    /* the file holding "oom_kill N"; empty when none */
	long long limit;    /* bytes; -1 when unlimited or unknown */
	long long oom_kills; /* when read; -1 when unknown */
};
/* Fills m for pid (call it while the process lives). Returns false when no
 * memory cgroup with an oom_kill counter is found (m->file empty). */
bool lc_memcg_of(pid_t pid, struct lc_memcg *m);
/* The group's oom_kill counter now; -1 when it cannot be read. */
long long lc_memcg_oom_kills(const struct lc_memcg *m);

/* The last `lines` lines of a log file (at most n-1 bytes, the last ones). */
void lc_log_tail(const char *path, int lines, char *out, size_t n);

#endif
