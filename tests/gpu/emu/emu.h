/* The CPU emulation of cuda/: what a .cu file of the backend sees in
 * place of nvcc's device side, when tests/gpu/emu/unchevron has rewritten
 * its kernel launches and g++ compiles it with this header included
 * first (the Makefile's emu rules).
 *
 * A launch runs its blocks one after another, in a shuffled order; a
 * block's threads are fibers (emu_runtime.cc) that switch only at
 * __syncthreads() and at warp shuffles, in a shuffled order each time.
 * "Device memory" is host memory, so AddressSanitizer sees every
 * kernel's out-of-bounds access, and the runtime checks what the real
 * one would refuse (launch limits, shared memory over its limit, copies
 * in the wrong direction) and what the hardware would leave undefined
 * (a barrier some threads never reach, a shuffle naming a lane that has
 * left).  It checks the kernels' logic, not the hardware's arithmetic:
 * float rounding is the host's, with no contraction into FMAs
 * (-ffp-contract=off), and a warp's lanes never run in lockstep. */
#ifndef DSK_EMU_H
#define DSK_EMU_H

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <tuple>
#include <utility>

/* nvcc's execution-space keywords: all host code here.  __shared__
 * becomes a function-level static: one copy for the block (blocks run
 * one at a time). */
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __launch_bounds__(...)

/* The running thread's coordinates (set by the scheduler before it
 * switches to a fiber). */
extern __thread uint3 threadIdx, blockIdx, blockDim, gridDim;

/* ---- synchronization (emu_runtime.cc) ---- */

void __syncthreads(void);
/* The calling lane's slot in its warp's exchange buffer (8 bytes a lane),
 * after checking the mask names exactly the warp's lanes. */
unsigned char *dsk_emu_warp_slots(unsigned mask, const char *what);
/* Wait until every lane of the warp has arrived. */
void dsk_emu_warp_barrier(void);
/* The block's dynamic shared memory (the launch's third argument),
 * filled with 0xff bytes (NaN as floats) when the block starts. */
void *dsk_emu_dynamic_smem(void);

template <typename T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    static_assert(sizeof(T) <= 8, "a shuffle moves at most 8 bytes");
    unsigned char *slots = dsk_emu_warp_slots(mask, "__shfl_xor_sync");
    int lane = (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) & 31;
    int src = lane ^ lane_mask;
    if (width < 32 && (src / width) != (lane / width))
        src = lane;   /* outside the lane's segment: its own value */
    memcpy(slots + 8 * lane, &v, sizeof v);
    dsk_emu_warp_barrier();
    T r;
    memcpy(&r, slots + 8 * src, sizeof r);
    dsk_emu_warp_barrier();   /* nobody overwrites a slot before every lane has read */
    return r;
}

/* Fibers switch only at barriers, so a read-modify-write is atomic. */
static inline int atomicMin(int *p, int v)
{
    int old = *p;
    if (v < old)
        *p = v;
    return old;
}

/* The device library's integer min and max. */
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

/* The rounding intrinsics: IEEE round-to-nearest on the host too. */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }

/* ---- kernel launches ---- */

/* nvcc's overload that takes the kernel itself. */
template <typename T> cudaError_t cudaFuncSetAttribute(T *kernel, enum cudaFuncAttribute attr, int value)
{
    return cudaFuncSetAttribute((const void *)kernel, attr, value);
}

/* Runs body(ctx) once per thread of the grid: what a launch does.  On a
 * configuration the hardware refuses, nothing runs and the error waits
 * for cudaGetLastError(), as on a GPU. */
void dsk_emu_run(const char *site, const void *kernel, dim3 grid, dim3 block, size_t smem, void (*body)(void *),
                 void *ctx);

template <typename... P> struct dsk_emu_launcher {
    const char *site;   /* "cuda/FILE.cu:LINE" of the launch */
    void (*kernel)(P...);
    dim3 grid, block;
    size_t smem;

    template <typename... A> void operator()(A &&...args) const
    {
        /* The arguments converted once, as the launch does; each thread
         * then gets its own copies. */
        std::tuple<P...> params(std::forward<A>(args)...);
        struct call {
            void (*kernel)(P...);
            std::tuple<P...> *params;
            static void run(void *self)
            {
                call *c = (call *)self;
                std::apply(c->kernel, *c->params);
            }
        } c = {kernel, &params};
        dsk_emu_run(site, (const void *)kernel, grid, block, smem, call::run, &c);
    }
};

/* What unchevron writes for kernel<<<grid, block, smem, stream>>>(...). */
template <typename... P>
dsk_emu_launcher<P...> dsk_emu_launch(const char *site, void (*kernel)(P...), dim3 grid, dim3 block,
                                      size_t smem = 0, cudaStream_t stream = 0)
{
    (void)stream;   /* one stream of work: each launch runs to its end */
    return dsk_emu_launcher<P...>{site, kernel, grid, block, smem};
}

#endif
