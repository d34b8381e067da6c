/* fs_rx: the kernel's receive time of what libmicrohttpd reads (fs_rx.c). */
#ifndef FS_RX_H
#define FS_RX_H

#include <stdint.h>
#include <sys/types.h>

/* Keeps stamps for descriptors below max_fd. 0, or -1 out of memory. */
int fs_rx_init(int max_fd);
/* CLOCK_MONOTONIC ns when the newest bytes read from fd arrived on this host
 * (its kernel receive stamp); 0 when none was kept. */
int64_t fs_rx_last(int fd);
/* Forgets fd's stamp (a new connection may get the descriptor). */
void fs_rx_forget(int fd);

#endif
