#define _GNU_SOURCE /* execvpe */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "lifecycle.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buf.h"
#include "http.h"
#include "utf8.h"

struct lc_server {
	pid_t pid;
	bool reaped;
	int wstatus;
	ar_ns t_start;
	char *log_path;
	char *health_url;
	char *ready_regex;
	ar_ns start_timeout, grace;
	int stop_signal;
	int port;
	off_t log_off;     /* how far the ready watcher has read */
	struct buf partial; /* an unfinished log line */
};

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int lc_free_port(int *port, struct ar_err *err)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ar_err_set(err, AR_EIO, "cannot make a socket: %s", strerror(errno));
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		int e = errno;
		close(fd);
		return ar_err_set(err, AR_EIO, "cannot find a free port on 127.0.0.1: %s", strerror(e));
	}
	*port = ntohs(a.sin_port);
	close(fd);
	return 0;
}

bool lc_port_in_use(int port)
{
	/* can a server bind it? (a connect could hang on a listener that never
	 * accepts, and would talk to whatever is there) SO_REUSEADDR: sockets in
	 * TIME_WAIT do not count, a listener does */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool used = bind(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno == EADDRINUSE;
	close(fd);
	return used;
}

int lc_find_program(const char *argv0, char *out, size_t n, struct ar_err *err)
{
	if (strchr(argv0, '/')) {
		if (access(argv0, X_OK) == 0) {
			snprintf(out, n, "%s", argv0);
			return 0;
		}
		return ar_err_set(err, AR_EIO, "cannot run '%s': %s", argv0, strerror(errno));
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		const char *c = strchr(p, ':');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		char cand[4096];
		snprintf(cand, sizeof cand, "%.*s/%s", (int)(len ? len : 1), len ? p : ".", argv0);
		struct stat st;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) {
			snprintf(out, n, "%s", cand);
			return 0;
		}
		p += len;
		if (*p == ':')
			p++;
	}
	return ar_err_set(err, AR_EIO, "program '%s' is not in PATH", argv0);
}

pid_t lc_pid(const struct lc_server *s) { return s->pid; }

/* Closing every descriptor from `lo` up in a forked child, except `keep`:
 * close_range(2) where the kernel has it, else a loop up to the limit
 * read before the fork (sysconf is not async-signal-safe). */
static long open_max = 1024;

static void close_from_prepare(void)
{
	long m = sysconf(_SC_OPEN_MAX);
	open_max = m > 0 && m < 65536 ? m : 65536;
}

static void close_from(int lo, int keep)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lo, (unsigned)keep - 1, 0u) == 0 &&
	    syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) == 0)
		return;
#endif
	for (long fd = lo; fd < open_max; fd++)
		if (fd != keep)
			close((int)fd);
}

int lc_start(struct lc_server **out, const struct lc_spec *spec, struct ar_err *err)
{
	*out = NULL;
	struct lc_server *s = calloc(1, sizeof *s);
	if (!s)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	s->pid = -1;
	buf_init(&s->partial, 64u << 10);
	if (!(s->log_path = strdup(spec->log_path)) || (spec->health_url && !(s->health_url = strdup(spec->health_url))) ||
	    (spec->ready_regex && !(s->ready_regex = strdup(spec->ready_regex)))) {
		lc_free(s);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	s->start_timeout = spec->start_timeout;
	s->grace = spec->grace;
	s->stop_signal = spec->stop_signal ? spec->stop_signal : SIGTERM;
	s->port = spec->port;
	int logfd = open(spec->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0) {
		ar_err_set(err, AR_EIO, "cannot open server log '%s': %s", spec->log_path, strerror(errno));
		lc_free(s);
		return -1;
	}
	struct stat st;
	s->log_off = fstat(logfd, &st) == 0 ? st.st_size : 0;
	/* the child reports an exec failure through this pipe */
	int pfd[2];
	if (pipe(pfd) < 0 || fcntl(pfd[0], F_SETFD, FD_CLOEXEC) < 0 || fcntl(pfd[1], F_SETFD, FD_CLOEXEC) < 0) {
		ar_err_set(err, AR_EIO, "pipe: %s", strerror(errno));
		close(logfd);
		lc_free(s);
		return -1;
	}
	/* the environment is built here: after fork only async-signal-safe calls */
	extern char **environ;
	size_t ne = 0, na = 0;
	for (char **e = environ; e && *e; e++)
		ne++;
	for (char *const *e = spec->env; e && *e; e++)
		na++;
	char **envp = calloc(ne + na + 1, sizeof *envp);
	if (!envp) {
		close(logfd);
		lc_free(s);
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	size_t k = 0;
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t nl = eq ? (size_t)(eq - *e) + 1 : strlen(*e);
		bool overridden = false;
		for (char *const *a = spec->env; a && *a && !overridden; a++)
			overridden = !strncmp(*a, *e, nl);
		if (!overridden)
			envp[k++] = *e;
	}
	for (char *const *a = spec->env; a && *a; a++)
		envp[k++] = *a;
	envp[k] = NULL;
	pid_t parent = getpid();
	close_from_prepare();
	s->t_start = clock_now();
	pid_t pid = fork();
	if (pid < 0) {
		ar_err_set(err, AR_EIO, "fork: %s", strerror(errno));
		free(envp);
		close(logfd);
		close(pfd[0]);
		close(pfd[1]);
		lc_free(s);
		return -1;
	}
	if (pid == 0) {
		/* child: only async-signal-safe calls from here on */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0) {
			dup2(nul, 0);
			close(nul);
		}
		dup2(logfd, 1);
		dup2(logfd, 2);
		/* nothing of ours (the store, traces, sockets to other servers) leaks
		 * into the server, whatever was opened without O_CLOEXEC */
		close_from(3, pfd[1]);
		if (spec->cwd && chdir(spec->cwd) < 0) {
			int e = errno;
			(void)!write(pfd[1], &e, sizeof e);
			_exit(127);
		}
		execvpe(spec->argv[0], spec->argv, envp);
		int e = errno;
		(void)!write(pfd[1], &e, sizeof e);
		_exit(127);
	}
	setpgid(pid, pid); /* also from here: no race with the first kill */
	free(envp);
	close(logfd);
	close(pfd[1]);
	s->pid = pid;
	int child_errno = 0;
	ssize_t r;
	while ((r = read(pfd[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR)
		;
	close(pfd[0]);
	if (r == (ssize_t)sizeof child_errno) {
		waitpid(pid, &s->wstatus, 0);
		s->reaped = true;
		ar_err_set(err, AR_EIO, "cannot start '%s'%s%s: %s", spec->argv[0], spec->cwd ? " in " : "",
			   spec->cwd ? spec->cwd : "", strerror(child_errno));
		lc_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

bool lc_poll_exit(struct lc_server *s, int wait_ms)
{
	if (s->reaped)
		return true;
	if (s->pid <= 0)
		return true;
	ar_ns deadline = clock_now() + (ar_ns)wait_ms * 1000000;
	for (;;) {
		pid_t r = waitpid(s->pid, &s->wstatus, WNOHANG);
		if (r == s->pid || (r < 0 && errno == ECHILD)) {
			s->reaped = true;
			return true;
		}
		if (clock_now() >= deadline)
			return false;
		sleep_ms(10);
	}
}

bool lc_exited(const struct lc_server *s, int *wstatus)
{
	if (s->reaped && wstatus)
		*wstatus = s->wstatus;
	return s->reaped;
}

void lc_status_text(int w, char *out, size_t n)
{
	if (WIFEXITED(w))
		snprintf(out, n, "exit %d", WEXITSTATUS(w));
	else if (WIFSIGNALED(w))
		snprintf(out, n, "signal %d (%s)%s", WTERMSIG(w), strsignal(WTERMSIG(w)), WCOREDUMP(w) ? ", core dumped" : "");
	else
		snprintf(out, n, "status 0x%x", w);
}

/* Reads new log lines; true when one matches re. */
static bool log_scan(struct lc_server *s, pcre2_code *re, pcre2_match_data *md)
{
	int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool hit = false;
	char chunk[16384];
	for (;;) {
		ssize_t n = pread(fd, chunk, sizeof chunk, s->log_off);
		if (n <= 0)
			break;
		s->log_off += n;
		for (ssize_t i = 0; i < n && !hit; i++) {
			if (chunk[i] != '\n') {
				if (s->partial.len + 1 < s->partial.max)
					buf_putc(&s->partial, chunk[i]);
				continue;
			}
			const char *t = s->partial.data ? s->partial.data : "";
			size_t len = s->partial.len;
			/* PCRE2 runs in UTF mode: match only the valid prefix of the line */
			len = utf8_check(t, len);
			hit = pcre2_match(re, (PCRE2_SPTR)t, len, 0, 0, md, NULL) >= 0;
			buf_reset(&s->partial);
		}
		if (hit)
			break;
	}
	close(fd);
	return hit;
}

int lc_wait_ready(struct lc_server *s, volatile sig_atomic_t *stop, double *ready_s, struct ar_err *err)
{
	pcre2_code *re = NULL;
	pcre2_match_data *md = NULL;
	int rc = -1;
	if (s->ready_regex) {
		int ec;
		PCRE2_SIZE eo;
		re = pcre2_compile((PCRE2_SPTR)s->ready_regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
		if (!re) {
			PCRE2_UCHAR msg[256];
			pcre2_get_error_message(ec, msg, sizeof msg);
			return ar_err_set(err, AR_EINVAL, "ready pattern '%s': %s at offset %zu", s->ready_regex,
					  (const char *)msg, (size_t)eo);
		}
		if (!(md = pcre2_match_data_create(1, NULL))) {
			pcre2_code_free(re);
			return ar_err_set(err, AR_ENOMEM, "out of memory");
		}
	}
	bool log_ok = !re, health_ok = !s->health_url;
	long wait = 50;
	ar_ns deadline = s->t_start + s->start_timeout;
	long last_status = -1;
	char last_err[256] = "";
	for (;;) {
		if (!log_ok)
			log_ok = log_scan(s, re, md);
		if (log_ok && !health_ok) {
			long status = 0;
			char *body = NULL;
			size_t len;
			struct ar_err e = {0};
			if (hx_fetch(s->health_url, NULL, 2000, 64u << 10, &status, &body, &len, &e) == 0) {
				last_status = status;
				health_ok = status == 200;
			} else {
				snprintf(last_err, sizeof last_err, "%s", e.msg);
			}
			free(body);
		}
		if (log_ok && health_ok) {
			*ready_s = (double)(clock_now() - s->t_start) / 1e9;
			rc = 0;
			break;
		}
		if (lc_poll_exit(s, 0)) {
			char st[96];
			lc_status_text(s->wstatus, st, sizeof st);
			ar_err_set(err, AR_ENET, "the server exited before it was ready (%s)", st);
			break;
		}
		if (stop && *stop) {
			ar_err_set(err, AR_EINTERNAL, "interrupted");
			break;
		}
		if (clock_now() >= deadline) {
			if (!log_ok)
				ar_err_set(err, AR_EBACKEND, "the server was not ready after %.0f s: no log line matched '%s'",
					   (double)s->start_timeout / 1e9, s->ready_regex);
			else if (last_status >= 0)
				ar_err_set(err, AR_EBACKEND, "the server was not ready after %.0f s: %s answered HTTP %ld",
					   (double)s->start_timeout / 1e9, s->health_url, last_status);
			else
				ar_err_set(err, AR_EBACKEND, "the server was not ready after %.0f s: %s never answered (%s)",
					   (double)s->start_timeout / 1e9, s->health_url, last_err);
			break;
		}
		ar_ns left = deadline - clock_now();
		long ms = wait < left / 1000000 ? wait : (long)(left / 1000000) + 1;
		sleep_ms(ms);
		if (wait < 1000)
			wait = wait * 3 / 2;
	}
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	return rc;
}

int lc_stop(struct lc_server *s, struct lc_stop_result *r, struct ar_err *err)
{
	memset(r, 0, sizeof *r);
	ar_ns t0 = clock_now();
	r->was_running = !lc_poll_exit(s, 0);
	if (s->pid > 0) {
		/* the whole group: a wrapper's children too, even when the leader is gone */
		if (kill(-s->pid, s->stop_signal) < 0 && errno != ESRCH && r->was_running)
			kill(s->pid, s->stop_signal);
		ar_ns deadline = clock_now() + s->grace;
		bool gone = false;
		while (!gone) {
			lc_poll_exit(s, 0);
			gone = s->reaped && kill(-s->pid, 0) < 0;
			if (gone || clock_now() >= deadline)
				break;
			sleep_ms(20);
		}
		if (!gone) {
			r->killed = true;
			kill(-s->pid, SIGKILL);
			if (!s->reaped)
				kill(s->pid, SIGKILL);
			lc_poll_exit(s, 10000);
			/* the group's other members die with the KILL; give the kernel a moment */
			for (int i = 0; i < 100 && kill(-s->pid, 0) == 0; i++)
				sleep_ms(10);
		}
	}
	r->wstatus = s->wstatus;
	r->stop_s = (double)(clock_now() - t0) / 1e9;
	r->port_free = true;
	if (s->port > 0) {
		/* a socket in TIME_WAIT is free for us; one that accepts is not */
		for (int i = 0; i < 50 && (r->port_free = !lc_port_in_use(s->port)) == false; i++)
			sleep_ms(20);
	}
	if (!s->reaped)
		return ar_err_set(err, AR_EINTERNAL, "server pid %d did not exit after SIGKILL", (int)s->pid);
	return 0;
}

void lc_free(struct lc_server *s)
{
	if (!s)
		return;
	if (s->pid > 0 && !s->reaped) {
		kill(-s->pid, SIGKILL);
		kill(s->pid, SIGKILL);
		lc_poll_exit(s, 5000);
	}
	free(s->log_path);
	free(s->health_url);
	free(s->ready_regex);
	buf_free(&s->partial);
	free(s);
}

void lc_log_tail(const char *path, int lines, char *out, size_t n)
{
	out[0] = '\0';
	if (n < 2)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return;
	}
	size_t want = n - 1;
	off_t off = st.st_size > (off_t)want ? st.st_size - (off_t)want : 0;
	ssize_t got = pread(fd, out, want, off);
	close(fd);
	if (got <= 0) {
		out[0] = '\0';
		return;
	}
	size_t len = (size_t)got;
	while (len && out[len - 1] == '\n')
		len--;
	out[len] = '\0';
	/* keep the last `lines` lines */
	size_t start = len;
	int seen = 0;
	while (start > 0) {
		if (out[start - 1] == '\n' && ++seen == lines)
			break;
		start--;
	}
	if (start)
		memmove(out, out + start, len - start + 1);
	/* control bytes out (the store holds text) */
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t')
			*p = '?';
}

/* The mount point of the cgroup hierarchy: v1 with the memory controller, or v2. */
static bool cgroup_mount(bool v2, char *out, size_t n)
{
	FILE *f = fopen("/proc/mounts", "re");
	if (!f)
		return false;
	char line[1024];
	bool found = false;
	while (!found && fgets(line, sizeof line, f)) {
		char dev[256], mnt[512], type[64], opts[512];
		if (sscanf(line, "%255s %511s %63s %511s", dev, mnt, type, opts) != 4)
			continue;
		if (v2 ? !strcmp(type, "cgroup2") : !strcmp(type, "cgroup") && strstr(opts, "memory")) {
			/* "memory" as a whole option, not a part of another one */
			if (!v2) {
				bool whole = false;
				for (char *tok = strtok(opts, ","); tok && !whole; tok = strtok(NULL, ","))
					whole = !strcmp(tok, "memory");
				if (!whole)
					continue;
			}
			snprintf(out, n, "%s", mnt);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* The value of "key N" in a cgroup file; -1 when absent or unreadable. */
static long long cgroup_value(const char *file, const char *key)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return -1;
	char line[256];
	long long v = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f)) {
		if (!key[0]) {
			v = strncmp(line, "max", 3) ? strtoll(line, NULL, 10) : -1;
			break;
		}
		if (!strncmp(line, key, kl) && line[kl] == ' ') {
			v = strtoll(line + kl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

bool lc_memcg_of(pid_t pid, struct lc_memcg *m)
{
	memset(m, 0, sizeof *m);
	m->limit = m->oom_kills = -1;
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(p, "re");
	if (!f)
		return false;
	char line[1024], v1[512] = "", v2[512] = "";
	bool have_v1 = false, have_v2 = false;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		/* ID:CONTROLLERS:PATH */
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctl = c1 + 1, *path = c2 + 1;
		if (!strcmp(line, "0") && !*ctl) {
			snprintf(v2, sizeof v2, "%s", path);
			have_v2 = true;
			continue;
		}
		char tmp[256];
		snprintf(tmp, sizeof tmp, "%s", ctl);
		for (char *tok = strtok(tmp, ","); tok; tok = strtok(NULL, ","))
			if (!strcmp(tok, "memory")) {
				snprintf(v1, sizeof v1, "%s", path);
				have_v1 = true;
			}
	}
	fclose(f);
	char mnt[512];
	/* a path outside our cgroup namespace reads "/.." and is not ours to look at */
	if (have_v1 && !strstr(v1, "/..") && cgroup_mount(false, mnt, sizeof mnt)) {
		snprintf(m->file, sizeof m->file, "%s%s/memory.oom_control", mnt, strcmp(v1, "/") ? v1 : "");
		if (access(m->file, R_OK) == 0 && cgroup_value(m->file, "oom_kill") >= 0) {
			char lf[1100];
			snprintf(lf, sizeof lf, "%s%s/memory.limit_in_bytes", mnt, strcmp(v1, "/") ? v1 : "");
			long long l = cgroup_value(lf, "");
			m->limit = l > 0 && l < (1LL << 60) ? l : -1; /* "unlimited" reads as 2^63 rounded to a page */
			snprintf(m->path, sizeof m->path, "%s", v1);
			m->oom_kills = cgroup_value(m->file, "oom_kill");
			return true;
		}
	}
	if (have_v2 && !strstr(v2, "/..") && cgroup_mount(true, mnt, sizeof mnt)) {
		/* .local: kills of this group's own processes, not of its children's */
		snprintf(m->file, sizeof m->file, "%s%s/memory.events.local", mnt, strcmp(v2, "/") ? v2 : "");
		if (access(m->file, R_OK) != 0)
			snprintf(m->file, sizeof m->file, "%s%s/memory.events", mnt, strcmp(v2, "/") ? v2 : "");
		if (access(m->file, R_OK) == 0 && cgroup_value(m->file, "oom_kill") >= 0) {
			char lf[1100];
			snprintf(lf, sizeof lf, "%s%s/memory.max", mnt, strcmp(v2, "/") ? v2 : "");
			m->limit = cgroup_value(lf, "");
			snprintf(m->path, sizeof m->path, "%s", v2);
			m->oom_kills = cgroup_value(m->file, "oom_kill");
			return true;
		}
	}
	m->file[0] = '\0';
	return false;
}

long long lc_memcg_oom_kills(const struct lc_memcg *m)
{
	return m->file[0] ? cgroup_value(m->file, "oom_kill") : -1;
}
