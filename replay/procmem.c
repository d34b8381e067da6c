#include "procmem.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __APPLE__
#include <libproc.h>
#include <mach/mach.h>
#include <sys/resource.h>
#include <sys/sysctl.h>
#endif

/* ---- parsers --------------------------------------------------------------- */

static bool parse_i64(const char **p, const char *end, int64_t *out)
{
	const char *s = *p;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	bool neg = false;
	if (s < end && *s == '-') {
		neg = true;
		s++;
	}
	if (s >= end || !isdigit((unsigned char)*s))
		return false;
	int64_t v = 0;
	while (s < end && isdigit((unsigned char)*s)) {
		int d = *s - '0';
		if (v > (INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	*out = neg ? -v : v;
	*p = s;
	return true;
}

int procmem_parse_stat(const char *buf, size_t len, int64_t *pid, int64_t *ppid, char *state)
{
	const char *end = buf + len, *p = buf;
	if (!parse_i64(&p, end, pid))
		return -1;
	/* the command is "(...)" and may contain anything: skip to the last ')' */
	const char *rp = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == ')')
			rp = q;
	if (!rp)
		return -1;
	p = rp + 1;
	while (p < end && *p == ' ')
		p++;
	if (p >= end || !isalpha((unsigned char)*p))
		return -1;
	*state = *p++;
	if (!parse_i64(&p, end, ppid))
		return -1;
	return 0;
}

int procmem_parse_statm(const char *buf, size_t len, int64_t page_size, int64_t *rss_bytes)
{
	const char *p = buf, *end = buf + len;
	int64_t size, resident;
	if (!parse_i64(&p, end, &size) || !parse_i64(&p, end, &resident) || resident < 0 || page_size <= 0 ||
	    resident > INT64_MAX / page_size)
		return -1;
	*rss_bytes = resident * page_size;
	return 0;
}

int procmem_parse_kb(const char *buf, size_t len, const char *key, int64_t *bytes)
{
	size_t kl = strlen(key);
	const char *end = buf + len, *line = buf;
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *le = nl ? nl : end;
		if ((size_t)(le - line) > kl && !memcmp(line, key, kl) && line[kl] == ':') {
			const char *p = line + kl + 1;
			int64_t v;
			if (!parse_i64(&p, le, &v) || v < 0)
				return -1;
			while (p < le && (*p == ' ' || *p == '\t'))
				p++;
			int64_t mul = 1;
			if (le - p >= 2 && (p[0] == 'k' || p[0] == 'K') && (p[1] == 'B' || p[1] == 'b'))
				mul = 1024;
			else if (p < le && *p != '\r')
				return -1; /* a unit we do not know */
			if (v > INT64_MAX / mul)
				return -1;
			*bytes = v * mul;
			return 0;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return -1;
}

static bool contains(const char *h, size_t hl, const char *n)
{
	size_t nl = strlen(n);
	for (size_t i = 0; i + nl <= hl; i++)
		if (!memcmp(h + i, n, nl))
			return true;
	return false;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int procmem_parse_net_tcp(const char *buf, size_t len, int port, uint64_t *inodes, size_t cap)
{
	const char *end = buf + len, *line = buf;
	const char *nl = memchr(buf, '\n', len);
	if (!nl)
		return len ? -1 : 0;
	/* header: "  sl  local_address rem_address   st tx_queue ... inode" */
	if (!contains(buf, (size_t)(nl - buf), "local_address") || !contains(buf, (size_t)(nl - buf), "inode"))
		return -1;
	int found = 0;
	for (line = nl + 1; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		const char *le = nl ? nl : end;
		/* fields separated by blanks */
		const char *f[12];
		size_t fl[12];
		int nf = 0;
		const char *p = line;
		while (p < le && nf < 12) {
			while (p < le && (*p == ' ' || *p == '\t'))
				p++;
			if (p >= le)
				break;
			f[nf] = p;
			while (p < le && *p != ' ' && *p != '\t')
				p++;
			fl[nf] = (size_t)(p - f[nf]);
			nf++;
		}
		if (nf >= 10) {
			/* f[1] local "ADDR:PORT" (hex), f[3] state, f[9] inode */
			const char *colon = memchr(f[1], ':', fl[1]);
			int lp = 0;
			bool ok = colon && (size_t)(f[1] + fl[1] - colon - 1) == 4;
			for (int k = 0; ok && k < 4; k++) {
				int h = hexval(colon[1 + k]);
				ok = h >= 0;
				lp = lp * 16 + h;
			}
			if (ok && lp == port && fl[3] == 2 && f[3][0] == '0' && (f[3][1] == 'A' || f[3][1] == 'a')) {
				const char *q = f[9];
				int64_t ino;
				if (parse_i64(&q, f[9] + fl[9], &ino) && ino > 0) {
					if ((size_t)found < cap)
						inodes[found] = (uint64_t)ino;
					found++;
				}
			}
		}
		if (!nl)
			break;
	}
	return found;
}

/* ---- readers ---------------------------------------------------------------- */

long procmem_read(const char *path, char *buf, size_t cap)
{
	if (cap < 2) {
		errno = EINVAL;
		return -1;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap - 1)
			break;
	}
	close(fd);
	buf[n] = '\0';
	return (long)n;
}

bool procmem_pid_alive(int64_t pid)
{
	if (pid <= 0)
		return false;
#ifdef __APPLE__
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
#else
	char path[64], b[512];
	snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
	long n = procmem_read(path, b, sizeof b);
	int64_t p, pp;
	char st;
	if (n <= 0 || procmem_parse_stat(b, (size_t)n, &p, &pp, &st) < 0)
		return false;
	return st != 'Z' && st != 'X';
#endif
}

void procmem_tree_init(struct procmem_tree *t, int64_t root)
{
	memset(t, 0, sizeof *t);
	t->root = root;
	long ps = sysconf(_SC_PAGESIZE);
	t->page_size = ps > 0 ? ps : 4096;
}

void procmem_tree_free(struct procmem_tree *t)
{
	if (!t)
		return;
	free(t->pids);
	free(t->scratch);
	t->pids = NULL;
	t->scratch = NULL;
	t->n = t->cap = t->scratch_cap = 0;
}

static int push_pid(int64_t **v, size_t *n, size_t *cap, int64_t x)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		int64_t *nv = realloc(*v, c * sizeof *nv);
		if (!nv)
			return -1;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = x;
	return 0;
}

static int ensure_scratch(struct procmem_tree *t, size_t want)
{
	if (t->scratch_cap >= want)
		return 0;
	char *s = realloc(t->scratch, want);
	if (!s)
		return -1;
	t->scratch = s;
	t->scratch_cap = want;
	return 0;
}

#ifndef __APPLE__
int procmem_tree_scan(struct procmem_tree *t, struct ar_err *err)
{
	int64_t *pp = NULL; /* pairs: pid, ppid */
	size_t npp = 0, cappp = 0;
	int rc = -1;
	t->n = 0;
	if (ensure_scratch(t, 8192) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	DIR *d = opendir("/proc");
	if (!d)
		return ar_err_set(err, AR_EIO, "cannot open /proc: %s", strerror(errno));
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		char path[300];
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		long n = procmem_read(path, t->scratch, 1024);
		int64_t pid, ppid;
		char st;
		if (n <= 0 || procmem_parse_stat(t->scratch, (size_t)n, &pid, &ppid, &st) < 0 || st == 'Z')
			continue; /* gone between readdir and read, or a zombie */
		if (push_pid(&pp, &npp, &cappp, pid) < 0 || push_pid(&pp, &npp, &cappp, ppid) < 0) {
			ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
	}
	/* breadth first from the root */
	bool root_found = false;
	for (size_t i = 0; i < npp; i += 2)
		if (pp[i] == t->root)
			root_found = true;
	if (root_found) {
		if (push_pid(&t->pids, &t->n, &t->cap, t->root) < 0) {
			ar_err_set(err, AR_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t head = 0; head < t->n; head++)
			for (size_t i = 0; i < npp; i += 2)
				if (pp[i + 1] == t->pids[head] && pp[i] != t->root &&
				    push_pid(&t->pids, &t->n, &t->cap, pp[i]) < 0) {
					ar_err_set(err, AR_ENOMEM, "out of memory");
					goto out;
				}
	}
	rc = (int)t->n;
out:
	closedir(d);
	free(pp);
	return rc;
}

void procmem_tree_sample(struct procmem_tree *t, bool want_pss, struct procmem_usage *u)
{
	u->rss_bytes = -1;
	u->pss_bytes = -1;
	u->procs = 0;
	u->root_alive = false;
	if (ensure_scratch(t, 8192) < 0)
		return;
	int64_t rss = 0, pss = 0;
	bool pss_ok = want_pss;
	for (size_t i = 0; i < t->n; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%lld/statm", (long long)t->pids[i]);
		long n = procmem_read(path, t->scratch, t->scratch_cap);
		int64_t r;
		if (n <= 0 || procmem_parse_statm(t->scratch, (size_t)n, t->page_size, &r) < 0)
			continue; /* exited since the scan (or a zombie: statm reads "0 0 ...") */
		if (i == 0)
			u->root_alive = r > 0 || procmem_pid_alive(t->pids[0]);
		rss += r;
		u->procs++;
		if (want_pss) {
			snprintf(path, sizeof path, "/proc/%lld/smaps_rollup", (long long)t->pids[i]);
			n = procmem_read(path, t->scratch, t->scratch_cap);
			int64_t p;
			if (n > 0 && procmem_parse_kb(t->scratch, (size_t)n, "Pss", &p) == 0)
				pss += p;
			else if (procmem_pid_alive(t->pids[i]))
				pss_ok = false; /* not readable (kernel without smaps_rollup, permissions) */
		}
	}
	if (u->procs) {
		u->rss_bytes = rss;
		if (pss_ok)
			u->pss_bytes = pss;
	}
}

int procmem_host(int64_t *total, int64_t *available)
{
	char b[8192];
	*total = *available = -1;
	long n = procmem_read("/proc/meminfo", b, sizeof b);
	if (n <= 0)
		return -1;
	int rc = 0;
	if (procmem_parse_kb(b, (size_t)n, "MemTotal", total) < 0)
		rc = -1;
	if (procmem_parse_kb(b, (size_t)n, "MemAvailable", available) < 0)
		rc = -1;
	return rc;
}

int procmem_find_listener(int port, int64_t *pid, struct ar_err *err)
{
	uint64_t inodes[16];
	size_t ni = 0;
	char *b = malloc(1 << 20);
	if (!b)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	for (size_t k = 0; k < 2; k++) {
		long n = procmem_read(tables[k], b, 1 << 20);
		if (n <= 0)
			continue;
		int f = procmem_parse_net_tcp(b, (size_t)n, port, inodes + ni, sizeof inodes / sizeof inodes[0] - ni);
		if (f > 0)
			ni += (size_t)f < sizeof inodes / sizeof inodes[0] - ni ? (size_t)f
									      : sizeof inodes / sizeof inodes[0] - ni;
	}
	free(b);
	if (!ni)
		return ar_err_set(err, AR_EINVAL, "no process listens on TCP port %d (per /proc/net/tcp{,6})", port);
	DIR *d = opendir("/proc");
	if (!d)
		return ar_err_set(err, AR_EIO, "cannot open /proc: %s", strerror(errno));
	struct dirent *de;
	int64_t found = -1;
	while (found < 0 && (de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		char path[300];
		snprintf(path, sizeof path, "/proc/%s/fd", de->d_name);
		DIR *fd = opendir(path);
		if (!fd)
			continue; /* another user's process, or gone */
		struct dirent *fe;
		while (found < 0 && (fe = readdir(fd))) {
			if (fe->d_name[0] == '.')
				continue;
			char lp[600], target[64];
			snprintf(lp, sizeof lp, "/proc/%s/fd/%s", de->d_name, fe->d_name);
			ssize_t tl = readlink(lp, target, sizeof target - 1);
			if (tl <= 8)
				continue;
			target[tl] = '\0';
			unsigned long long ino;
			if (sscanf(target, "socket:[%llu]", &ino) != 1)
				continue;
			for (size_t i = 0; i < ni; i++)
				if (inodes[i] == ino)
					found = strtoll(de->d_name, NULL, 10);
		}
		closedir(fd);
	}
	closedir(d);
	if (found < 0)
		return ar_err_set(err, AR_EINVAL,
				  "a socket listens on TCP port %d but its process is not visible to this user "
				  "(pass --server-pid)", port);
	*pid = found;
	return 0;
}

#else /* __APPLE__ */

int procmem_tree_scan(struct procmem_tree *t, struct ar_err *err)
{
	t->n = 0;
	if (!procmem_pid_alive(t->root))
		return 0;
	if (push_pid(&t->pids, &t->n, &t->cap, t->root) < 0)
		return ar_err_set(err, AR_ENOMEM, "out of memory");
	for (size_t head = 0; head < t->n && t->n < 4096; head++) {
		pid_t kids[512];
		int k = proc_listchildpids((pid_t)t->pids[head], kids, (int)sizeof kids);
		for (int i = 0; i < k && (size_t)i < sizeof kids / sizeof kids[0]; i++)
			if (push_pid(&t->pids, &t->n, &t->cap, kids[i]) < 0)
				return ar_err_set(err, AR_ENOMEM, "out of memory");
	}
	return (int)t->n;
}

void procmem_tree_sample(struct procmem_tree *t, bool want_pss, struct procmem_usage *u)
{
	(void)want_pss;
	u->rss_bytes = -1;
	u->pss_bytes = -1;
	u->procs = 0;
	u->root_alive = false;
	int64_t sum = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct rusage_info_v4 ri;
		if (proc_pid_rusage((pid_t)t->pids[i], RUSAGE_INFO_V4, (rusage_info_t *)&ri) != 0)
			continue;
		sum += (int64_t)ri.ri_phys_footprint; /* what Activity Monitor calls Memory */
		u->procs++;
		if (i == 0)
			u->root_alive = true;
	}
	if (u->procs)
		u->rss_bytes = sum;
}

int procmem_host(int64_t *total, int64_t *available)
{
	*total = *available = -1;
	uint64_t mem = 0;
	size_t len = sizeof mem;
	if (sysctlbyname("hw.memsize", &mem, &len, NULL, 0) == 0)
		*total = (int64_t)mem;
	vm_statistics64_data_t vs;
	mach_msg_type_number_t cnt = HOST_VM_INFO64_COUNT;
	if (host_statistics64(mach_host_self(), HOST_VM_INFO64, (host_info64_t)&vs, &cnt) != KERN_SUCCESS)
		return -1;
	vm_size_t page = 0;
	host_page_size(mach_host_self(), &page);
	/* free + inactive + purgeable: what can be had without swapping */
	*available = (int64_t)((uint64_t)(vs.free_count + vs.inactive_count + vs.purgeable_count) * page);
	return *total >= 0 ? 0 : -1;
}

int procmem_find_listener(int port, int64_t *pid, struct ar_err *err)
{
	(void)pid;
	return ar_err_set(err, AR_EINVAL, "finding the process on port %d is not supported on macOS (pass --server-pid)",
			  port);
}

#endif
