#include "gpumem.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"

extern char **environ;

/* The NVML ABI we use (nvml.h, stable since CUDA 5; the _v2/_v3 entry points
 * since driver 450/510). */
typedef int nvml_ret;
typedef void *nvml_dev;
struct nvml_mem {
	unsigned long long total, free, used;
};
struct nvml_proc_v1 {
	unsigned int pid;
	unsigned long long used;
};
struct nvml_proc_v2 {
	unsigned int pid;
	unsigned long long used;
	unsigned int gpu_instance, compute_instance;
};
#define NVML_SUCCESS 0
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_VALUE_NOT_AVAILABLE (~0ULL)
#define MAX_DEV 64
#define MAX_PROCS 1024
#define SMI_TIMEOUT_MS 5000

struct gpumem {
	enum gpumem_mode mode;
	char note[256];
	void *lib;
	nvml_ret (*shutdown)(void);
	nvml_ret (*mem_info)(nvml_dev, struct nvml_mem *);
	nvml_ret (*procs_v2)(nvml_dev, unsigned int *, struct nvml_proc_v2 *); /* _v3 or _v2 */
	nvml_ret (*procs_v1)(nvml_dev, unsigned int *, struct nvml_proc_v1 *);
	const char *(*err_str)(nvml_ret);
	nvml_dev dev[MAX_DEV];
	unsigned ndev;
	char smi[256];
	void *procbuf; /* MAX_PROCS of the larger struct */
};

static const char *nv_err(struct gpumem *g, nvml_ret r)
{
	static char b[32];
	const char *s = g->err_str ? g->err_str(r) : NULL;
	if (s)
		return s;
	snprintf(b, sizeof b, "error %d", r);
	return b;
}

static int open_nvml(struct gpumem *g, const char *path)
{
	g->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!g->lib)
		return -1; /* absent: not an error */
	nvml_ret (*init)(void) = (nvml_ret(*)(void))dlsym(g->lib, "nvmlInit_v2");
	if (!init)
		init = (nvml_ret(*)(void))dlsym(g->lib, "nvmlInit");
	nvml_ret (*count)(unsigned *) = (nvml_ret(*)(unsigned *))dlsym(g->lib, "nvmlDeviceGetCount_v2");
	if (!count)
		count = (nvml_ret(*)(unsigned *))dlsym(g->lib, "nvmlDeviceGetCount");
	nvml_ret (*handle)(unsigned, nvml_dev *) =
		(nvml_ret(*)(unsigned, nvml_dev *))dlsym(g->lib, "nvmlDeviceGetHandleByIndex_v2");
	if (!handle)
		handle = (nvml_ret(*)(unsigned, nvml_dev *))dlsym(g->lib, "nvmlDeviceGetHandleByIndex");
	g->shutdown = (nvml_ret(*)(void))dlsym(g->lib, "nvmlShutdown");
	g->mem_info = (nvml_ret(*)(nvml_dev, struct nvml_mem *))dlsym(g->lib, "nvmlDeviceGetMemoryInfo");
	g->err_str = (const char *(*)(nvml_ret))dlsym(g->lib, "nvmlErrorString");
	g->procs_v2 = (nvml_ret(*)(nvml_dev, unsigned *, struct nvml_proc_v2 *))dlsym(
		g->lib, "nvmlDeviceGetComputeRunningProcesses_v3");
	if (!g->procs_v2)
		g->procs_v2 = (nvml_ret(*)(nvml_dev, unsigned *, struct nvml_proc_v2 *))dlsym(
			g->lib, "nvmlDeviceGetComputeRunningProcesses_v2");
	if (!g->procs_v2)
		g->procs_v1 = (nvml_ret(*)(nvml_dev, unsigned *, struct nvml_proc_v1 *))dlsym(
			g->lib, "nvmlDeviceGetComputeRunningProcesses");
	if (!init || !count || !handle || !g->mem_info || (!g->procs_v2 && !g->procs_v1)) {
		snprintf(g->note, sizeof g->note, "NVML (%s) lacks the functions agentreplay uses; GPU memory not sampled",
			 path);
		goto fail;
	}
	nvml_ret r = init();
	if (r != NVML_SUCCESS) {
		snprintf(g->note, sizeof g->note, "NVML (%s) failed to initialise: %s; GPU memory not sampled by NVML", path,
			 nv_err(g, r));
		g->shutdown = NULL; /* nothing to shut down */
		goto fail;
	}
	unsigned n = 0;
	if ((r = count(&n)) != NVML_SUCCESS) {
		snprintf(g->note, sizeof g->note, "NVML device count failed: %s; GPU memory not sampled by NVML",
			 nv_err(g, r));
		goto fail;
	}
	if (n > MAX_DEV)
		n = MAX_DEV;
	for (unsigned i = 0; i < n; i++)
		if ((r = handle(i, &g->dev[g->ndev])) == NVML_SUCCESS)
			g->ndev++;
	if (!g->ndev) {
		if (n)
			snprintf(g->note, sizeof g->note, "NVML sees %u device(s) but opens none: %s", n, nv_err(g, r));
		goto fail;
	}
	g->mode = GPUMEM_NVML;
	return 0;
fail:
	if (g->shutdown)
		g->shutdown();
	dlclose(g->lib);
	g->lib = NULL;
	g->shutdown = NULL;
	return -1;
}

/* Runs argv with stdout into a buffer (at most cap-1 bytes), bounded by a
 * timeout. Returns the length, or -1 (not found, failed, timed out). */
static long run_capture(char *const argv[], char *buf, size_t cap)
{
	int pfd[2];
	if (pipe(pfd) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	posix_spawn_file_actions_addclose(&fa, pfd[1]);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		return -1;
	}
	size_t n = 0;
	bool timed_out = false;
	ar_ns deadline = clock_now() + SMI_TIMEOUT_MS * AR_NS_PER_MS;
	for (;;) {
		ar_ns left = deadline - clock_now();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd p = {pfd[0], POLLIN, 0};
		int pr = poll(&p, 1, (int)(left / AR_NS_PER_MS) + 1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			timed_out = pr == 0;
			break;
		}
		char tmp[4096];
		ssize_t r = read(pfd[0], tmp, sizeof tmp);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t take = (size_t)r < cap - 1 - n ? (size_t)r : cap - 1 - n;
		memcpy(buf + n, tmp, take);
		n += take;
	}
	close(pfd[0]);
	if (timed_out)
		kill(pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	buf[n] = '\0';
	if (timed_out || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return (long)n;
}

static long smi_query(struct gpumem *g, char *buf, size_t cap)
{
	char *argv[] = {g->smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits", NULL};
	return run_capture(argv, buf, cap);
}

int gpumem_open(struct gpumem **out, const char *lib, const char *smi)
{
	struct gpumem *g = calloc(1, sizeof *g);
	*out = NULL;
	if (!g || !(g->procbuf = malloc(MAX_PROCS * sizeof(struct nvml_proc_v2)))) {
		free(g);
		return -1;
	}
	g->mode = GPUMEM_NONE;
	if (open_nvml(g, lib ? lib : "libnvidia-ml.so.1") < 0) {
		snprintf(g->smi, sizeof g->smi, "%s", smi ? smi : "nvidia-smi");
		char b[256];
		if (g->smi[0] && smi_query(g, b, sizeof b) >= 0)
			g->mode = GPUMEM_SMI;
	}
	*out = g;
	return 0;
}

void gpumem_free(struct gpumem *g)
{
	if (!g)
		return;
	if (g->lib) {
		if (g->shutdown)
			g->shutdown();
		dlclose(g->lib);
	}
	free(g->procbuf);
	free(g);
}

enum gpumem_mode gpumem_mode(const struct gpumem *g) { return g ? g->mode : GPUMEM_NONE; }
const char *gpumem_note(const struct gpumem *g) { return g ? g->note : ""; }

static bool has_pid(const int64_t *pids, size_t n, int64_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

int gpumem_parse_smi(const char *buf, size_t len, const int64_t *pids, size_t n, int64_t *sum)
{
	const char *end = buf + len, *line = buf;
	int parsed = 0, lines = 0;
	*sum = 0;
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *le = nl ? nl : end;
		char tmp[128];
		size_t ll = (size_t)(le - line);
		if (ll && ll < sizeof tmp) {
			memcpy(tmp, line, ll);
			tmp[ll] = '\0';
			long long pid;
			double mib;
			char extra;
			bool blank = true;
			for (size_t i = 0; i < ll; i++)
				if (!isspace((unsigned char)tmp[i]))
					blank = false;
			if (!blank) {
				lines++;
				if (sscanf(tmp, " %lld , %lf %c", &pid, &mib, &extra) == 2 && pid > 0 && mib >= 0 &&
				    mib < 1e9) {
					parsed++;
					if (has_pid(pids, n, pid))
						*sum += (int64_t)(mib * 1048576.0);
				}
			}
		} else if (ll)
			lines++;
		if (!nl)
			break;
		line = nl + 1;
	}
	return lines && !parsed ? -1 : parsed;
}

int64_t gpumem_sample(struct gpumem *g, const int64_t *pids, size_t n, int64_t *total)
{
	if (total)
		*total = -1;
	if (!g || g->mode == GPUMEM_NONE)
		return -1;
	if (g->mode == GPUMEM_SMI) {
		char b[16384];
		int64_t sum;
		long len = smi_query(g, b, sizeof b);
		if (len < 0 || gpumem_parse_smi(b, (size_t)len, pids, n, &sum) < 0)
			return -1;
		return sum;
	}
	int64_t sum = 0, tot_used = 0, tot_all = 0;
	bool any_ok = false;
	for (unsigned d = 0; d < g->ndev; d++) {
		struct nvml_mem mi;
		bool mine = false;
		unsigned cnt = MAX_PROCS;
		nvml_ret r;
		if (g->procs_v2) {
			struct nvml_proc_v2 *pv = g->procbuf;
			r = g->procs_v2(g->dev[d], &cnt, pv);
			if (r == NVML_SUCCESS) {
				for (unsigned i = 0; i < cnt && i < MAX_PROCS; i++)
					if (has_pid(pids, n, pv[i].pid) && pv[i].used != NVML_VALUE_NOT_AVAILABLE) {
						sum += (int64_t)pv[i].used;
						mine = true;
					}
			}
		} else {
			struct nvml_proc_v1 *pv = g->procbuf;
			r = g->procs_v1(g->dev[d], &cnt, pv);
			if (r == NVML_SUCCESS) {
				for (unsigned i = 0; i < cnt && i < MAX_PROCS; i++)
					if (has_pid(pids, n, pv[i].pid) && pv[i].used != NVML_VALUE_NOT_AVAILABLE) {
						sum += (int64_t)pv[i].used;
						mine = true;
					}
			}
		}
		if (r != NVML_SUCCESS && r != NVML_ERROR_INSUFFICIENT_SIZE)
			continue;
		any_ok = true;
		if (g->mem_info(g->dev[d], &mi) == NVML_SUCCESS) {
			tot_all += (int64_t)mi.total;
			if (mine)
				tot_used += (int64_t)mi.total;
		}
	}
	if (!any_ok)
		return -1;
	if (total)
		*total = tot_used ? tot_used : tot_all;
	return sum;
}
