/* procmem: memory of a process tree and of the host, from Linux /proc.
 *
 * What it is for: the memory sampler (memsamp.h) reads, many times a
 * second, the resident memory of an inference server and of every process
 * it spawned (vLLM and Ollama run workers), the proportional set size of
 * that tree (shared pages counted once), and the host's MemAvailable.
 *
 * Every parser takes a buffer (a whole /proc file as read), so unit tests
 * feed captured real files; the readers around them treat a file that
 * vanishes between open and read (a process exiting) as "gone", never as
 * an error of the run. Units: bytes everywhere (the kernel's "kB" is KiB).
 *
 * macOS: procmem_tree_sample and procmem_host are implemented with
 * proc_pid_rusage (phys_footprint) and host_statistics64 under __APPLE__;
 * there the tree is the root and its direct children (proc_listchildpids)
 * and PSS is not available (-1).
 *
 * Ownership: struct procmem_tree is owned by the caller (procmem_tree_init /
 * procmem_tree_free); nothing else allocates.
 */
#ifndef AR_PROCMEM_H
#define AR_PROCMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* ---- parsers of whole /proc files (len bytes, need not be NUL-terminated) ---- */

/* /proc/PID/stat: the PID, parent PID and state letter. The command name
 * is in parentheses and may itself contain spaces and ')': the fields
 * after it start at the last ')'. Returns 0, or -1 when malformed. */
int procmem_parse_stat(const char *buf, size_t len, int64_t *pid, int64_t *ppid, char *state);
/* /proc/PID/statm: resident pages (second field) times page_size. */
int procmem_parse_statm(const char *buf, size_t len, int64_t page_size, int64_t *rss_bytes);
/* "Key:   N kB" lines as in /proc/PID/status (VmRSS), /proc/PID/smaps_rollup
 * (Pss, Rss) and /proc/meminfo (MemTotal, MemAvailable): the value of key
 * in bytes. Returns 0, or -1 when the key is missing or its value malformed. */
int procmem_parse_kb(const char *buf, size_t len, const char *key, int64_t *bytes);
/* /proc/net/tcp or tcp6: the socket inodes listening (state 0A) on port,
 * up to cap of them into inodes. Returns how many were found (may exceed
 * cap: only cap are stored), or -1 when the header is not a tcp table. */
int procmem_parse_net_tcp(const char *buf, size_t len, int port, uint64_t *inodes, size_t cap);

/* ---- readers ------------------------------------------------------------------ */

/* Reads a whole (pseudo-)file into buf (cap bytes, NUL-terminated, so at
 * most cap-1 of content). Returns the length, or -1 with errno set when it
 * cannot be opened or read (ENOENT/ESRCH: the process is gone). */
long procmem_read(const char *path, char *buf, size_t cap);

/* Whether the process exists and is not a zombie. */
bool procmem_pid_alive(int64_t pid);

/* The process tree of a root PID: the root and every descendant. */
struct procmem_tree {
	int64_t root;
	int64_t *pids; /* root first */
	size_t n, cap;
	char *scratch; /* read buffer */
	size_t scratch_cap;
	int64_t page_size;
};

void procmem_tree_init(struct procmem_tree *t, int64_t root);
void procmem_tree_free(struct procmem_tree *t);
/* Rescans /proc for the descendants of the root (every /proc/N/stat: a few
 * hundred reads, so callers refresh it about once a second, not every
 * sample). Returns the number of processes (0 when the root is gone), or
 * -1 with err set (out of memory, /proc unreadable). */
int procmem_tree_scan(struct procmem_tree *t, struct ar_err *err);

struct procmem_usage {
	int64_t rss_bytes; /* sum over the live processes of the tree; -1 when none is alive */
	int64_t pss_bytes; /* sum of Pss; -1 when not read or not available */
	int64_t procs;     /* processes whose figures were read */
	bool root_alive;
};
/* Reads RSS (statm) of every process of the last scan, and PSS
 * (smaps_rollup, costly: the kernel walks the page tables) when want_pss.
 * Processes that exited since the scan are skipped. */
void procmem_tree_sample(struct procmem_tree *t, bool want_pss, struct procmem_usage *u);

/* Host memory: MemTotal and MemAvailable in bytes (-1 when unknown). */
int procmem_host(int64_t *total, int64_t *available);

/* The PID of the process listening on 127.0.0.1/[::]/any port `port` (TCP),
 * found through /proc/net/tcp{,6} and the socket links in /proc/PID/fd.
 * Returns 0 with *pid set, or -1 with err set (nothing listening there, or
 * the owner is not visible to this user). */
int procmem_find_listener(int port, int64_t *pid, struct ar_err *err);

#endif
