/* fs_rx: when the request really arrived.
 *
 * The server's "true TTFT" starts when the request is on this host, not when
 * a connection thread got round to reading it (that wake-up is the server's
 * latency too, and a client cannot see where one ends and the other begins).
 * libmicrohttpd reads sockets itself with recv(), which drops the kernel's
 * receive timestamps; this file defines recv() in the executable, which the
 * dynamic linker binds libmicrohttpd's calls to, and reads through recvmsg()
 * so that the SCM_TIMESTAMPNS stamp of sockets with SO_TIMESTAMPNS set (see
 * --arrival-stamps) is kept per descriptor. Sockets without the option, and
 * every other caller, get plain recv() behaviour.
 */
#include "fs_rx.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rxstamp.h"

static _Atomic int64_t *stamps; /* by fd: CLOCK_MONOTONIC ns of the newest bytes read, 0 none */
static int nstamps;

int fs_rx_init(int max_fd)
{
	if (max_fd <= 0)
		return -1;
	stamps = calloc((size_t)max_fd, sizeof *stamps);
	if (!stamps)
		return -1;
	nstamps = max_fd;
	return 0;
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	struct iovec iov;
	union rxstamp_ctl ctl;
	struct msghdr m;
	rxstamp_prepare(&m, &iov, buf, n, &ctl);
	bool keep = stamps && fd >= 0 && fd < nstamps;
	if (!keep) {
		m.msg_control = NULL;
		m.msg_controllen = 0;
	}
	ssize_t r = recvmsg(fd, &m, flags);
	if (r > 0 && keep) {
		ar_ns t = rxstamp_of(&m);
		if (t)
			atomic_store_explicit(&stamps[fd], t, memory_order_relaxed);
	}
	return r;
}

int64_t fs_rx_last(int fd)
{
	if (!stamps || fd < 0 || fd >= nstamps)
		return 0;
	return atomic_load_explicit(&stamps[fd], memory_order_relaxed);
}

void fs_rx_forget(int fd)
{
	if (stamps && fd >= 0 && fd < nstamps)
		atomic_store_explicit(&stamps[fd], 0, memory_order_relaxed);
}
