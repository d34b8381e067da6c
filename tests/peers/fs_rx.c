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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

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
	struct iovec iov = {buf, n};
	union {
		char b[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} c;
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	if (stamps && fd >= 0 && fd < nstamps) {
		m.msg_control = c.b;
		m.msg_controllen = sizeof c.b;
	}
	ssize_t r = recvmsg(fd, &m, flags);
	if (r <= 0 || !m.msg_control)
		return r;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS ||
		    cm->cmsg_len < CMSG_LEN(sizeof(struct timespec)))
			continue;
		struct timespec ts, rt, mono;
		memcpy(&ts, CMSG_DATA(cm), sizeof ts);
		/* the data's age on the realtime clock, applied to the monotonic one */
		clock_gettime(CLOCK_REALTIME, &rt);
		clock_gettime(CLOCK_MONOTONIC, &mono);
		int64_t age = ((int64_t)rt.tv_sec - ts.tv_sec) * 1000000000LL + (rt.tv_nsec - ts.tv_nsec);
		if (age >= 0 && age < 60 * 1000000000LL)
			atomic_store_explicit(&stamps[fd],
					      (int64_t)mono.tv_sec * 1000000000LL + mono.tv_nsec - age,
					      memory_order_relaxed);
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
