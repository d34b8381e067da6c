/* A stand-in for libnvidia-ml.so.1 (the few entry points gpumem.c uses), so
 * tests can exercise NVML present-and-working and present-but-failing
 * without a GPU. FAKE_NVML=fail: nvmlInit_v2 answers NVML_ERROR_DRIVER_NOT_LOADED;
 * otherwise one 80 GiB device on which the calling process and PID 1 hold
 * 1 GiB and 2 GiB. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mem { unsigned long long total, free, used; };
struct proc { unsigned int pid; unsigned long long used; unsigned int gi, ci; };

int nvmlInit_v2(void);
int nvmlShutdown(void);
const char *nvmlErrorString(int r);
int nvmlDeviceGetCount_v2(unsigned *n);
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **d);
int nvmlDeviceGetMemoryInfo(void *d, struct mem *m);
int nvmlDeviceGetComputeRunningProcesses_v3(void *d, unsigned *n, struct proc *p);

int nvmlInit_v2(void) { const char *m = getenv("FAKE_NVML"); return m && !strcmp(m, "fail") ? 9 : 0; }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int r) { return r == 9 ? "Driver Not Loaded" : "Unknown Error"; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **d) { *d = (void *)(unsigned long)(i + 1); return 0; }
int nvmlDeviceGetMemoryInfo(void *d, struct mem *m)
{
	(void)d;
	m->total = 80ull << 30;
	m->used = 3ull << 30;
	m->free = m->total - m->used;
	return 0;
}
int nvmlDeviceGetComputeRunningProcesses_v3(void *d, unsigned *n, struct proc *p)
{
	(void)d;
	if (*n < 2) {
		*n = 2;
		return 7;
	}
	*n = 2;
	p[0] = (struct proc){(unsigned)getpid(), 1ull << 30, 0, 0};
	p[1] = (struct proc){1, 2ull << 30, 0, 0};
	return 0;
}
