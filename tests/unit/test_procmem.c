/* procmem: the /proc parsers on files captured from this kind of machine
 * (tests/data/proc/: a real llama-server's stat/statm/status/smaps_rollup,
 * /proc/meminfo, /proc/net/tcp{,6}, a process whose name holds ") ("), bad
 * input, and the readers on processes that exist, grow and vanish. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procmem.h"

static char fbuf[1 << 16];

static size_t load(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/proc/%s", AR_TEST_DATA, name);
	long n = procmem_read(path, fbuf, sizeof fbuf);
	assert_true(n > 0);
	return (size_t)n;
}

static void test_stat(void **st)
{
	(void)st;
	int64_t pid, ppid;
	char s;
	size_t n = load("llama-server.stat");
	assert_int_equal(procmem_parse_stat(fbuf, n, &pid, &ppid, &s), 0);
	assert_int_equal(pid, 31838);
	assert_int_equal(ppid, 31836);
	assert_int_equal(s, 'S');
	n = load("weird-comm.stat"); /* comm "a b) (c" */
	assert_int_equal(procmem_parse_stat(fbuf, n, &pid, &ppid, &s), 0);
	assert_int_equal(pid, 32143);
	assert_int_equal(ppid, 31836);
	assert_int_equal(s, 'S');
	static const char *const bad[] = {"", "123", "123 (foo", "123 (foo) ", "abc (x) S 1", "123 (x) S", "123 (x) 7 1",
					  "99999999999999999999 (x) S 1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(procmem_parse_stat(bad[i], strlen(bad[i]), &pid, &ppid, &s), -1);
}

static void test_rss_pss(void **st)
{
	(void)st;
	int64_t statm_rss, vmrss, pss, rss;
	size_t n = load("llama-server.statm");
	assert_int_equal(procmem_parse_statm(fbuf, n, 4096, &statm_rss), 0);
	assert_int_equal(statm_rss, 27046LL * 4096);
	n = load("llama-server.status");
	assert_int_equal(procmem_parse_kb(fbuf, n, "VmRSS", &vmrss), 0);
	assert_int_equal(vmrss, statm_rss); /* the same moment, two files: the same figure */
	n = load("llama-server.smaps_rollup");
	assert_int_equal(procmem_parse_kb(fbuf, n, "Pss", &pss), 0);
	assert_int_equal(pss, 81085LL * 1024);
	assert_int_equal(procmem_parse_kb(fbuf, n, "Rss", &rss), 0);
	assert_true(pss <= rss);
	/* "Pss_Anon" must not be taken for "Pss" */
	assert_int_equal(procmem_parse_kb("Pss_Anon: 5 kB\nPss: 7 kB\n", 25, "Pss", &pss), 0);
	assert_int_equal(pss, 7 * 1024);
	static const char *const bad[] = {"", "VmRSS:", "VmRSS: abc kB", "VmRSS: 12 MB", "VmRSS: -5 kB",
					  "VmRS: 5 kB", "VmRSS: 99999999999999999999 kB", "VmRSS: 9999999999999999 kB"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(procmem_parse_kb(bad[i], strlen(bad[i]), "VmRSS", &rss), -1);
	assert_int_equal(procmem_parse_statm("12", 2, 4096, &rss), -1);
	assert_int_equal(procmem_parse_statm("x y", 3, 4096, &rss), -1);
}

static void test_meminfo(void **st)
{
	(void)st;
	int64_t total, avail;
	size_t n = load("meminfo");
	assert_int_equal(procmem_parse_kb(fbuf, n, "MemTotal", &total), 0);
	assert_int_equal(procmem_parse_kb(fbuf, n, "MemAvailable", &avail), 0);
	assert_int_equal(total, 24684092LL * 1024);
	assert_int_equal(avail, 23747588LL * 1024);
	/* the live one */
	assert_int_equal(procmem_host(&total, &avail), 0);
	assert_true(total > 0 && avail > 0 && avail <= total);
}

static void test_net_tcp(void **st)
{
	(void)st;
	uint64_t ino[4];
	size_t n = load("net_tcp");
	assert_int_equal(procmem_parse_net_tcp(fbuf, n, 18931, ino, 4), 1); /* llama-server; TIME_WAIT lines do not count */
	assert_int_equal(ino[0], 831960);
	assert_int_equal(procmem_parse_net_tcp(fbuf, n, 2024, ino, 4), 1);
	assert_int_equal(ino[0], 1649);
	assert_int_equal(procmem_parse_net_tcp(fbuf, n, 0x89AC, ino, 4), 0); /* only a client end there */
	n = load("net_tcp6");
	assert_int_equal(procmem_parse_net_tcp(fbuf, n, 18931, ino, 4), 0);
	assert_int_equal(procmem_parse_net_tcp("<html>\n<body>", 13, 80, ino, 4), -1);
	assert_int_equal(procmem_parse_net_tcp("", 0, 80, ino, 4), 0);
	/* cut lines and junk after a good header are skipped */
	const char *t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
			"   0: 0100007F:1F90 00000000:0000 0A\n   1: 0100007F:1F9Z 00000000:0000 0A 0 0 0 0 0 77\n";
	assert_int_equal(procmem_parse_net_tcp(t, strlen(t), 8080, ino, 4), 0);
}

static void test_vanishing(void **st)
{
	(void)st;
	char b[64];
	errno = 0;
	assert_int_equal(procmem_read("/proc/2147483646/statm", b, sizeof b), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(procmem_pid_alive(2147483646));
	/* a process that exits between the scan and the sample */
	pid_t c = fork();
	if (c == 0) {
		pause();
		_exit(0);
	}
	struct procmem_tree t;
	procmem_tree_init(&t, c);
	assert_int_equal(procmem_tree_scan(&t, NULL), 1);
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	struct procmem_usage u;
	procmem_tree_sample(&t, true, &u);
	assert_int_equal(u.procs, 0);
	assert_int_equal(u.rss_bytes, -1);
	assert_false(u.root_alive);
	assert_int_equal(procmem_tree_scan(&t, NULL), 0);
	procmem_tree_free(&t);
}

/* A tree: this process -> child A (holds 48 MiB) -> grandchild B; and child C. */
static void test_tree(void **st)
{
	(void)st;
	int ready[2], hold[2]; /* A -> us: ready; us -> B: EOF releases it */
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	pid_t a = fork();
	if (a == 0) {
		close(ready[0]);
		close(hold[1]);
		size_t n = 48u << 20;
		char *m = malloc(n);
		if (!m)
			_exit(1);
		memset(m, 1, n);
		if (fork() == 0) {
			char x;
			close(ready[1]);
			(void)!read(hold[0], &x, 1);
			_exit(0);
		}
		(void)!write(ready[1], "r", 1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	char x;
	assert_int_equal(read(ready[0], &x, 1), 1);
	close(ready[0]);
	pid_t c = fork();
	if (c == 0) {
		pause();
		_exit(0);
	}
	usleep(100000);
	struct procmem_tree t;
	procmem_tree_init(&t, getpid());
	assert_int_equal(procmem_tree_scan(&t, NULL), 4);
	struct procmem_usage u;
	procmem_tree_sample(&t, true, &u);
	assert_int_equal(u.procs, 4);
	assert_true(u.root_alive);
	assert_true(u.rss_bytes >= (48 << 20));
	assert_true(u.pss_bytes > 0 && u.pss_bytes <= u.rss_bytes);
	/* the subtree of A alone: A and B */
	struct procmem_tree ta;
	procmem_tree_init(&ta, a);
	assert_int_equal(procmem_tree_scan(&ta, NULL), 2);
	procmem_tree_free(&ta);
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
	close(hold[1]); /* B reads EOF and exits (reaped by init) */
	procmem_tree_free(&t);
}

static void test_find_listener(void **st)
{
	(void)st;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(s, 1), 0);
	socklen_t sl = sizeof sa;
	getsockname(s, (struct sockaddr *)&sa, &sl);
	int64_t pid = 0;
	struct ar_err err = {0};
	assert_int_equal(procmem_find_listener(ntohs(sa.sin_port), &pid, &err), 0);
	assert_int_equal(pid, getpid());
	close(s);
	assert_int_equal(procmem_find_listener(ntohs(sa.sin_port), &pid, &err), -1);
	assert_non_null(strstr(err.msg, "no process listens"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stat),	     cmocka_unit_test(test_rss_pss),   cmocka_unit_test(test_meminfo),
		cmocka_unit_test(test_net_tcp),      cmocka_unit_test(test_vanishing), cmocka_unit_test(test_tree),
		cmocka_unit_test(test_find_listener),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
