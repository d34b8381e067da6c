/* rxstamp: the kernel's receive timestamp of socket data (SO_TIMESTAMPNS),
 * as a CLOCK_MONOTONIC time comparable with clock_now().
 *
 * Usage: setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) once;
 * then recvmsg() with rxstamp_prepare()'s msghdr; rxstamp_of() reads the
 * stamp out of it. The kernel stamps in CLOCK_REALTIME; the data's age on
 * that clock is applied to the monotonic one (both read together), and an
 * age that is negative or over a minute (the realtime clock was stepped)
 * gives no stamp. When no socket of the host wanted stamps before, the
 * kernel switches stamping on a moment (a work item) after the first asks:
 * data that arrives before then has none. Callers fall back to the clock.
 */
#ifndef AR_RXSTAMP_H
#define AR_RXSTAMP_H

#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"

union rxstamp_ctl {
	char buf[CMSG_SPACE(sizeof(struct timespec))];
	struct cmsghdr align;
};

/* A msghdr reading into buf[0..n) with ctl as its control buffer. */
void rxstamp_prepare(struct msghdr *m, struct iovec *iov, void *buf, size_t n, union rxstamp_ctl *ctl);
/* The stamp in m's control data after a recvmsg, or 0 when there is none. */
ar_ns rxstamp_of(struct msghdr *m);

#endif
