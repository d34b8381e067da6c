/* rxstamp: see rxstamp.h. */
#include "rxstamp.h"

#include <string.h>

void rxstamp_prepare(struct msghdr *m, struct iovec *iov, void *buf, size_t n, union rxstamp_ctl *ctl)
{
	memset(m, 0, sizeof *m);
	iov->iov_base = buf;
	iov->iov_len = n;
	m->msg_iov = iov;
	m->msg_iovlen = 1;
	m->msg_control = ctl->buf;
	m->msg_controllen = sizeof ctl->buf;
}

ar_ns rxstamp_of(struct msghdr *m)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS ||
		    cm->cmsg_len < CMSG_LEN(sizeof(struct timespec)))
			continue;
		struct timespec ts, rt;
		memcpy(&ts, CMSG_DATA(cm), sizeof ts);
		clock_gettime(CLOCK_REALTIME, &rt);
		ar_ns now = clock_now();
		ar_ns age = ((ar_ns)rt.tv_sec - (ar_ns)ts.tv_sec) * AR_NS_PER_S + ((ar_ns)rt.tv_nsec - (ar_ns)ts.tv_nsec);
		if (age < 0 || age > 60 * AR_NS_PER_S)
			return 0;
		return now - age;
	}
	return 0;
}
