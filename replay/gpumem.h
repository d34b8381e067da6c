/* gpumem: GPU memory used by a set of processes, through NVML loaded at
 * run time, with nvidia-smi as a fallback.
 *
 * What it is for: the memory sampler asks, several times a second, how many
 * bytes of GPU memory the server's process tree holds. NVML
 * (libnvidia-ml.so.1) is opened with dlopen, so agentreplay neither links
 * nor needs it: on a machine without it the GPU column is simply empty
 * (GPUMEM_NONE), which is not an error. When the library is there but
 * fails (no driver loaded, no permission), the handle says why once
 * (gpumem_note) and the sampler tries `nvidia-smi
 * --query-compute-apps=pid,used_memory --format=csv,noheader,nounits`
 * (spawned with an argv, never a shell; bounded by a timeout) instead.
 *
 * Units: bytes. Ownership: gpumem_open returns a handle freed by
 * gpumem_free (NULL ok); it owns the library handle.
 */
#ifndef AR_GPUMEM_H
#define AR_GPUMEM_H

#include <stddef.h>
#include <stdint.h>

enum gpumem_mode { GPUMEM_NONE, GPUMEM_NVML, GPUMEM_SMI };

struct gpumem;

/* Opens NVML from lib (NULL: "libnvidia-ml.so.1"), else probes nvidia-smi
 * (smi: the program to run, NULL: "nvidia-smi"; "" skips the fallback).
 * Never fails for lack of a GPU: returns 0 with a handle whose mode may be
 * GPUMEM_NONE; -1 only when out of memory. */
int gpumem_open(struct gpumem **out, const char *lib, const char *smi);
void gpumem_free(struct gpumem *g);
enum gpumem_mode gpumem_mode(const struct gpumem *g);
/* Why NVML is not used although present ("" when it is, or absent). */
const char *gpumem_note(const struct gpumem *g);

/* Sum of the GPU memory used by the processes pids[0..n), across all
 * devices; *total (may be NULL) gets the total memory of the devices those
 * processes use (all devices when none does). Returns -1 when unavailable
 * (mode NONE, or the query failed this time). */
int64_t gpumem_sample(struct gpumem *g, const int64_t *pids, size_t n, int64_t *total);

/* Parses nvidia-smi's "pid, used_memory" CSV lines (MiB, no header, no
 * units): the sum over the lines whose pid is in pids. Lines that do not
 * parse ("[N/A]", "[Insufficient Permissions]") are skipped. Returns the
 * number of lines that parsed (0 for an empty list), -1 when no line
 * parsed in a non-empty text. */
int gpumem_parse_smi(const char *buf, size_t len, const int64_t *pids, size_t n, int64_t *sum);

#endif
