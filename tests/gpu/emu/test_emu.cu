/* The CPU emulation of cuda/ checked on its own (tests/gpu/emu/run.sh
 * runs it first): kernels written for it here, compiled the way cuda/ is
 * (unchevron, then g++ with emu.h), must see what a GPU gives them
 * (indices, barriers, shuffles, dynamic shared memory) and be refused or
 * stopped where a GPU would refuse them or leave the result undefined.
 * Each stopping case runs in a child process, which must die saying why.
 * Prints TAP; exit status 1 on any failure. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int n_checks, n_failed;

static void check(int ok, const char *what)
{
    n_checks++;
    n_failed += !ok;
    printf("%s %d - %s\n", ok ? "ok" : "not ok", n_checks, what);
}

/* ---- kernels ---- */

/* Every thread of the grid writes its own flat index once. */
__global__ void k_index(int *out)
{
    unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned per_block = blockDim.x * blockDim.y * blockDim.z;
    out[block * per_block + thread] += (int)(block * per_block + thread) + 1;
}

/* Each thread reads its right neighbour's value through shared memory. */
__global__ void k_neighbour(int *out)
{
    __shared__ int sh[256];
    sh[threadIdx.x] = (int)(blockIdx.x * 1000 + threadIdx.x);
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = sh[(threadIdx.x + 1) % blockDim.x];
}

/* The sum of the lanes' numbers, by butterfly shuffles. */
__global__ void k_warp_sum(float *out)
{
    float v = (float)threadIdx.x;
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    out[threadIdx.x] = v;
}

/* Two block sums in a row through one shared array, the barrier between
 * them left out: warp 0 may read the second sum's partial where the
 * first's should be. */
__global__ void k_racy_sums(float *out)
{
    __shared__ float sh[32];
    float total = 0;
    for (int round = 0; round < 2; round++) {
        float v = (float)(round + 1);
        for (int o = 16; o > 0; o >>= 1)
            v += __shfl_xor_sync(0xffffffffu, v, o);
        if ((threadIdx.x & 31) == 0)
            sh[threadIdx.x >> 5] = v;
        __syncthreads();
        v = (threadIdx.x & 31) < (blockDim.x >> 5) ? sh[threadIdx.x & 31] : 0.0f;
        for (int o = 16; o > 0; o >>= 1)
            v += __shfl_xor_sync(0xffffffffu, v, o);
        total += v;
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = total;   /* 32*4*1 + 32*4*2 = 384 with 4 warps */
}

/* Reads its dynamic shared memory before writing it. */
__global__ void k_dynamic_unwritten(float *out)
{
    extern __shared__ float dyn[];
    out[threadIdx.x] = dyn[threadIdx.x];
}

/* Writes the last float of dynamic shared memory (n floats). */
__global__ void k_dynamic_last(float *out, int n)
{
    extern __shared__ float dyn[];
    dyn[n - 1] = 7;
    __syncthreads();
    out[0] = dyn[n - 1];
}

/* Half the warp waits at __syncthreads, the other half at a shuffle
 * that needs the whole warp. */
__global__ void k_divergent(float *out)
{
    if (threadIdx.x < 16)
        __syncthreads();
    else
        out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

/* Lanes 16 and up return before the warp's shuffle. */
__global__ void k_shuffle_after_return(float *out)
{
    if (threadIdx.x >= 16)
        return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

/* One element past the end of out. */
__global__ void k_past_end(float *out, int n) { out[n + threadIdx.x] = 1; }

/* ---- the stopping cases: a child each ---- */

/* Runs fn in a child with stderr to a pipe: 1 when the child died and its
 * stderr says `expect`. */
static int dies_saying(void (*fn)(void), const char *expect)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn();
        _exit(0);   /* it should not get here */
    }
    close(fds[1]);
    static char text[65536];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof text - 1 && (r = read(fds[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)r;
    text[len] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int died = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!died || !strstr(text, expect))
        fprintf(stderr, "# child %s; its stderr:\n%s\n", died ? "died" : "exited 0", text);
    return died && strstr(text, expect) != NULL;
}

static float *device_floats(size_t n)
{
    float *p = NULL;
    if (cudaMalloc((void **)&p, n * sizeof *p) != cudaSuccess)
        abort();
    return p;
}

static void run_divergent(void)
{
    float *d = device_floats(32);
    k_divergent<<<1, 32>>>(d);
}
static void run_shuffle_after_return(void)
{
    float *d = device_floats(32);
    k_shuffle_after_return<<<1, 32>>>(d);
}
static void run_partial_warp_mask(void)
{
    float *d = device_floats(32);
    k_warp_sum<<<1, 20>>>(d);   /* a full mask in a warp of 20 lanes */
}
static void run_past_end(void)
{
    float *d = device_floats(8);
    k_past_end<<<1, 1>>>(d, 8);
}

/* ---- the checks ---- */

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Indices over a 3-D grid of 3-D blocks: each element once. */
    {
        dim3 grid(3, 2, 2), block(5, 4, 3);
        size_t n = 3 * 2 * 2 * 5 * 4 * 3;
        int *d = NULL, *h = (int *)malloc(n * sizeof *h);
        cudaMalloc((void **)&d, n * sizeof *d);
        cudaMemsetAsync(d, 0, n * sizeof *d, 0);
        k_index<<<grid, block>>>(d);
        cudaMemcpyAsync(h, d, n * sizeof *h, cudaMemcpyDeviceToHost, 0);
        int ok = cudaGetLastError() == cudaSuccess;
        for (size_t i = 0; i < n; i++)
            ok &= h[i] == (int)i + 1;
        check(ok, "3-D grid of 3-D blocks: every thread once, with its own indices");
        cudaFree(d);
        free(h);
    }
    /* Shared memory and __syncthreads. */
    {
        int *d = NULL, h[4 * 256];
        cudaMalloc((void **)&d, sizeof h);
        k_neighbour<<<4, 256>>>(d);
        cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, 0);
        int ok = 1;
        for (int b = 0; b < 4; b++)
            for (int t = 0; t < 256; t++)
                ok &= h[b * 256 + t] == b * 1000 + (t + 1) % 256;
        check(ok, "__syncthreads: every thread sees its neighbour's write");
        cudaFree(d);
    }
    /* Warp shuffles. */
    {
        float *d = device_floats(32), h[32];
        k_warp_sum<<<1, 32>>>(d);
        cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, 0);
        int ok = 1;
        for (int i = 0; i < 32; i++)
            ok &= h[i] == 496.0f;
        check(ok, "__shfl_xor_sync: the butterfly sum reaches every lane");
        cudaFree(d);
    }
    /* A missing barrier shows in some block (half the blocks run one warp
     * at a time: all 64 in step has odds of 2^-64). */
    {
        float *d = device_floats(64), h[64];
        k_racy_sums<<<64, 128>>>(d);
        cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, 0);
        int wrong = 0;
        for (int i = 0; i < 64; i++)
            wrong += h[i] != 384.0f;
        check(wrong > 0, "two block sums without the barrier between them: some blocks get it wrong");
        cudaFree(d);
    }
    /* Dynamic shared memory: poisoned at each block's start, its limit
     * the default 48 KiB until cudaFuncSetAttribute raises it. */
    {
        float *d = device_floats(32), h[32];
        k_dynamic_unwritten<<<1, 32, 32 * sizeof(float)>>>(d);
        cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, 0);
        int ok = 1;
        for (int i = 0; i < 32; i++)
            ok &= isnan(h[i]);
        check(ok, "dynamic shared memory read before written: NaN");

        int n = 64 << 10 >> 2;   /* 64 KiB of floats */
        h[0] = 0;
        cudaMemsetAsync(d, 0, sizeof(float), 0);
        k_dynamic_last<<<1, 32, 64 << 10>>>(d, n);
        cudaError_t e = cudaGetLastError();
        cudaMemcpyAsync(h, d, sizeof(float), cudaMemcpyDeviceToHost, 0);
        check(e == cudaErrorInvalidValue && h[0] == 0, "64 KiB of dynamic shared memory without the attribute: refused");
        cudaFuncSetAttribute(k_dynamic_last, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10);
        k_dynamic_last<<<1, 32, 64 << 10>>>(d, n);
        e = cudaGetLastError();
        cudaMemcpyAsync(h, d, sizeof(float), cudaMemcpyDeviceToHost, 0);
        check(e == cudaSuccess && h[0] == 7, "64 KiB with cudaFuncSetAttribute: runs");
        check(cudaFuncSetAttribute(k_dynamic_last, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 << 10) ==
                  cudaErrorInvalidValue,
              "cudaFuncSetAttribute past the opt-in limit: refused");
        cudaFree(d);
    }
    /* Launch configurations the hardware refuses. */
    {
        float *d = device_floats(2048);
        k_past_end<<<1, 1025>>>(d, 0);
        check(cudaGetLastError() == cudaErrorInvalidConfiguration, "1025 threads a block: refused");
        k_past_end<<<dim3(1, 65536), 1>>>(d, 0);
        check(cudaGetLastError() == cudaErrorInvalidConfiguration, "grid y 65536: refused");
        check(cudaGetLastError() == cudaSuccess, "cudaGetLastError clears the error");
        cudaFree(d);
    }
    /* Copies must go where their kind says. */
    {
        float *d = device_floats(4), h[4] = {1, 2, 3, 4}, h2[4];
        check(cudaMemcpyAsync(h2, h, sizeof h, cudaMemcpyHostToDevice, 0) == cudaErrorInvalidValue,
              "a host-to-device copy into host memory: refused");
        check(cudaMemcpyAsync(d, h, 5 * sizeof(float), cudaMemcpyHostToDevice, 0) == cudaErrorInvalidValue,
              "a copy past the end of a device allocation: refused");
        check(cudaMemcpyAsync(d, h, sizeof h, cudaMemcpyHostToDevice, 0) == cudaSuccess, "a right copy: done");
        (void)cudaGetLastError();
        check(cudaFree(h) == cudaErrorInvalidValue, "cudaFree of a host pointer: refused");
        (void)cudaGetLastError();
        cudaFree(d);
    }
    /* What a GPU leaves undefined: the emulator stops there. */
    check(dies_saying(run_divergent, "disagree about the next barrier"),
          "__syncthreads in half a warp, a shuffle in the other: stopped");
    check(dies_saying(run_shuffle_after_return, "already returned"), "a shuffle with lanes that returned: stopped");
    check(dies_saying(run_partial_warp_mask, "the mask must name"), "a full mask in a 20-lane warp: stopped");
    check(dies_saying(run_past_end, "heap-buffer-overflow"), "a kernel writing past its buffer: ASan stops it");

    printf("1..%d\n", n_checks);
    return n_failed ? 1 : 0;
}
