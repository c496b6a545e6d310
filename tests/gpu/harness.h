/* The harness the GPU checks share (tests/gpu/test_cuda_*.c, linked
 * with harness.c): the two backends, the random inputs, device buffers
 * and the count of checks, and the CPU half of a run without a device.
 *
 * REF is the cpu backend, the reference; DEV the backend under test:
 * "cuda", or where there is no CUDA device (or with --cpu) a second cpu
 * backend, so that the harness itself still runs (its self-check).  A
 * program starts (gh_start, or with its own options), seeds RNG, opens
 * the backends (gh_open_ref, gh_open_dev), runs its checks (printing
 * each its own way, counting them with gh_count) and ends with
 * `return gh_close();`.  compare.h's get() and rel_err() come with it. */
#ifndef DSK_TESTS_GPU_HARNESS_H
#define DSK_TESTS_GPU_HARNESS_H

#include <stddef.h>

#include "core/rng.h"
#include "ops/backend.h"

#include "compare.h"

extern dsk_backend *REF, *DEV;
extern dsk_rng RNG;
extern int checks, failures;

/* The start of a program whose one option is --cpu: its name for
 * messages, stdout line-buffered; returns 1 with --cpu, 0 without (any
 * other argument: the usage on stderr and exit status 64). */
int gh_start(int argc, char **argv);

/* Counts a check, a failure when !ok; returns ok. */
int gh_count(int ok);

/* n values in +-[0.1, 1] * scale, never zero, from RNG (the caller frees them). */
float *gh_rnd(size_t n, float scale);

/* A new buffer on be holding host's bytes. */
void *gh_upload(dsk_backend *be, const void *host, size_t bytes);

/* A new buffer on be filled with 0xff bytes (NaN as floats, -1 as
 * ints): an output element an op forgets to write shows up. */
void *gh_poisoned(dsk_backend *be, size_t bytes);

/* bytes of be's memory in a new host buffer (the caller frees it). */
void *gh_download(dsk_backend *be, const void *dev, size_t bytes);

/* Opens REF, the cpu backend (or dies). */
void gh_open_ref(void);

/* Opens DEV: "cuda" unless cpu_only; returns 1 when it is cuda.  Else
 * DEV is a second cpu backend (the self-check) and it returns 0; without
 * cpu_only it has printed why "cuda" failed ("# cuda backend: <why>
 * (exit code N)") and called absent(err) for the program to record the
 * check that this is the documented failure (exit code 69 and "no CUDA
 * device: ...", or a build without CUDA): err 0 when it is, 1 when not. */
int gh_open_dev(int cpu_only, void (*absent)(double err));

/* The end of a run: prints "<checks> checks, <failures> failed", and
 * "GPU half skipped: no CUDA device" after a self-check that was not
 * asked for with cpu_only (tests/gpu/run.sh looks for that line); closes
 * both backends; returns the exit status, 1 when a check failed. */
int gh_close(void);

#endif
