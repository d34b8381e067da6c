/* rxstamp: the kernel's receive stamp of TCP data on loopback, read after
 * the data waited in the socket: it is the arrival time (between the write
 * and the read, near the write), not the read time; none without the
 * socket option; a control buffer without the stamp gives 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "rxstamp.h"

static void tcp_pair(int *a, int *b)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(l, 1), 0);
	socklen_t sl = sizeof sa;
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
	*a = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(*a, (struct sockaddr *)&sa, sizeof sa), 0);
	*b = accept(l, NULL, NULL);
	assert_true(*b >= 0);
	close(l);
}

static ar_ns wait_read(int fd, int stamp, ar_ns *t_write)
{
	int a, b;
	tcp_pair(&a, &b);
	int one = 1;
	if (stamp) {
		assert_int_equal(setsockopt(b, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one), 0);
		usleep(50 * 1000); /* the kernel switches stamping on a moment after the first ask */
	}
	(void)fd;
	*t_write = clock_now();
	assert_int_equal(write(a, "hello", 5), 5);
	usleep(50 * 1000); /* the data waits */
	char buf[16];
	struct iovec iov;
	union rxstamp_ctl ctl;
	struct msghdr m;
	rxstamp_prepare(&m, &iov, buf, sizeof buf, &ctl);
	assert_int_equal(recvmsg(b, &m, 0), 5);
	assert_memory_equal(buf, "hello", 5);
	ar_ns t = rxstamp_of(&m);
	close(a);
	close(b);
	return t;
}

static void test_stamp_is_arrival(void **st)
{
	(void)st;
	ar_ns t_write;
	ar_ns t = wait_read(0, 1, &t_write);
	ar_ns t_read = clock_now();
	assert_true(t > 0);
	/* a realtime-to-monotonic conversion is good to microseconds; allow 1 ms */
	assert_true(t >= t_write - AR_NS_PER_MS);
	assert_true(t < t_write + 25 * AR_NS_PER_MS); /* not the read, 50 ms later */
	assert_true(t_read - t >= 45 * AR_NS_PER_MS);
}

static void test_no_option_no_stamp(void **st)
{
	(void)st;
	ar_ns t_write;
	assert_int_equal(wait_read(0, 0, &t_write), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stamp_is_arrival),
		cmocka_unit_test(test_no_option_no_stamp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
