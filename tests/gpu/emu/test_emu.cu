/* The CPU emulation of cuda/ checked on its own (tests/gpu/emu/run.sh
 * runs it first): kernels written for it here, compiled the way cuda/ is
 * (unchevron, then g++ with emu.h), must see what a GPU gives them
 * (indices, barriers, shuffles, dynamic shared memory, WMMA) and be refused or
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

#include <mma.h>   /* empty under g++: emu.h has nvcuda::wmma */

#include "mma_sync.cuh"   /* cuda/: ldmatrix and mma.sync, emu.h's under g++ */

using namespace nvcuda;

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

/* Lane l of warp w: whether every lane of its warp has l >= w (warp 0
 * all, warp 1 none: lane 0 is below 1). */
__global__ void k_warp_all(float *out)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    out[threadIdx.x] = (float)__all_sync(0xffffffffu, lane >= warp);
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

/* Dynamic shared memory of a two-word type: out[0] its address mod 128,
 * out[1] what was written there. */
__global__ void k_dynamic_bytes(int *out)
{
    extern __shared__ __align__(128) unsigned char raw[];
    raw[threadIdx.x] = (unsigned char)threadIdx.x;
    __syncthreads();
    if (threadIdx.x == 0) {
        out[0] = (int)((uintptr_t)raw % 128);
        out[1] = raw[blockDim.x - 1];
    }
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

/* Element (r, c) of a matrix with leading dimension ld. */
__host__ __device__ static size_t at(int r, int c, unsigned ld, bool row_major)
{
    return row_major ? (size_t)r * ld + c : (size_t)c * ld + r;
}

/* d = a * b + c by WMMA tiles: a M x K in layout LA, b K x N in LB, c
 * and d M x N (c loaded in c_layout, d stored in d_layout; ld_c and
 * ld_d their leading dimensions).  Block y takes a row of tiles, its
 * warp w the w-th tile of it; the k loop accumulates into the loaded c
 * (mma_sync's d and c the same fragment). */
template <typename T, typename LA, typename LB>
__global__ void k_wmma_gemm(const T *a, const T *b, const float *c, float *d, int m, int n, int k,
                            wmma::layout_t c_layout, wmma::layout_t d_layout)
{
    const bool a_row = std::is_same<LA, wmma::row_major>::value, b_row = std::is_same<LB, wmma::row_major>::value;
    int tm = blockIdx.y, tn = threadIdx.x / 32;
    unsigned lda = a_row ? k : m, ldb = b_row ? n : k;
    unsigned ldc = c_layout == wmma::mem_row_major ? n : m, ldd = d_layout == wmma::mem_row_major ? n : m;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LA> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LB> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(acc, c + at(tm * 16, tn * 16, ldc, c_layout == wmma::mem_row_major),
                           ldc, c_layout);
    for (int kt = 0; kt < k / 16; kt++) {
        wmma::load_matrix_sync(fa, a + at(tm * 16, kt * 16, lda, a_row), lda);
        wmma::load_matrix_sync(fb, b + at(kt * 16, tn * 16, ldb, b_row), ldb);
        wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(d + at(tm * 16, tn * 16, ldd, d_layout == wmma::mem_row_major), acc,
                            ldd, d_layout);
}

/* x[] used the one way it may be: the same on every element.  out gets
 * 3 c + 1; filled a fill_fragment's 0.25; unfilled a fragment never
 * filled; ids each lane's x[i] = 8 lane + i, to show the mapping. */
__global__ void k_wmma_elementwise(const float *c, float *out, float *filled, float *unfilled, float *ids)
{
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc, fill, never, id;
    wmma::load_matrix_sync(acc, c, 16, wmma::mem_row_major);
    for (int i = 0; i < acc.num_elements; i++)
        acc.x[i] = 3 * acc.x[i] + 1;
    wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
    wmma::fill_fragment(fill, 0.25f);
    wmma::store_matrix_sync(filled, fill, 16, wmma::mem_row_major);
    wmma::store_matrix_sync(unfilled, never, 16, wmma::mem_row_major);
    for (int i = 0; i < id.num_elements; i++)
        id.x[i] = (float)(8 * (threadIdx.x % 32) + i);
    wmma::store_matrix_sync(ids, id, 16, wmma::mem_row_major);
}

/* A bf16 matrix_a load of a 16 x 16 tile at a + shift, leading dimension
 * ldm (every lane the same unless lanes_differ: lanes 16 and up 16
 * elements further on). */
__global__ void k_wmma_load(const __nv_bfloat16 *a, int shift, unsigned ldm, int lanes_differ)
{
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    int lane = threadIdx.x % 32;
    wmma::load_matrix_sync(fa, a + shift + (lanes_differ && lane >= 16 ? 16 : 0), ldm);
}

/* Lanes 0-15 at a WMMA load, lanes 16-31 at a shuffle. */
__global__ void k_wmma_beside_shuffle(const __nv_bfloat16 *a, float *out)
{
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    if (threadIdx.x < 16)
        wmma::load_matrix_sync(fa, a, 16);
    else
        out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

/* An accumulator stored with ldm 6: not a multiple of 4 floats. */
__global__ void k_wmma_store_ldm(float *d)
{
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 1.0f);
    wmma::store_matrix_sync(d, acc, 6, wmma::mem_col_major);
}

/* ---- the stopping cases: a child each ---- */

/* Runs fn in a child with stderr to a pipe: 1 when the child died and its
 * stderr says `expect`. */
/* D [16][16] = A [16][32] B [32][16] + C, bf16 A and B, one warp,
 * through mma.sync's fragments as the PTX ISA lays them out
 * (mma_sync.cuh).  A is [16][32] row-major, B is given twice: bt as
 * [16 n][32 k] (Bᵀ row-major) and b as [32 k][16 n].  how 0 fills the
 * fragments by hand from global memory, register by register as the
 * layout says; 1 through ldmatrix from shared memory, B from bt; 2 the
 * same with B from b through ldmatrix.trans.  C and D row-major, by the
 * output layout. */
__global__ void k_mma_gemm(const __nv_bfloat16 *a, const __nv_bfloat16 *bt, const __nv_bfloat16 *b, const float *c,
                           float *d, int how)
{
    __shared__ __align__(16) __nv_bfloat16 as[16][40], bts[16][40], bs[32][24];
    const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    for (int i = lane; i < 16 * 32; i += 32) {
        as[i / 32][i % 32] = a[i];
        bts[i / 32][i % 32] = bt[i];
        bs[i / 16][i % 16] = b[i];
    }
    __syncthreads();
    auto pair = [](const __nv_bfloat16 *p) {
        return mma_pack_bf16(__bfloat162float(p[0]), __bfloat162float(p[1]));
    };
    float acc[2][4];
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < 4; i++)
            acc[n][i] = c[(g + 8 * (i >> 1)) * 16 + 8 * n + 2 * t + (i & 1)];
    for (int k0 = 0; k0 < 32; k0 += 16) {
        uint32_t fa[4], fb[4];   /* fb: b0, b1 of columns 0-7, then of 8-15 */
        if (how == 0) {
            fa[0] = pair(a + g * 32 + k0 + 2 * t);
            fa[1] = pair(a + (g + 8) * 32 + k0 + 2 * t);
            fa[2] = pair(a + g * 32 + k0 + 2 * t + 8);
            fa[3] = pair(a + (g + 8) * 32 + k0 + 2 * t + 8);
            for (int n = 0; n < 2; n++) {   /* b0 = B[2t, 2t+1][g]: Bᵀ's row g */
                fb[2 * n] = pair(bt + (8 * n + g) * 32 + k0 + 2 * t);
                fb[2 * n + 1] = pair(bt + (8 * n + g) * 32 + k0 + 2 * t + 8);
            }
        } else {
            mma_ldmatrix_x4(fa, &as[lane & 15][k0 + 8 * (lane >> 4)]);
            if (how == 1)
                mma_ldmatrix_x4(fb, &bts[(lane & 7) + 8 * (lane >> 4)][k0 + 8 * ((lane >> 3) & 1)]);
            else
                mma_ldmatrix_x4_trans(fb, &bs[k0 + (lane & 7) + 8 * ((lane >> 3) & 1)][8 * (lane >> 4)]);
        }
        mma_bf16_16816(acc[0], fa, fb[0], fb[1]);
        mma_bf16_16816(acc[1], fa, fb[2], fb[3]);
    }
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < 4; i++)
            d[(g + 8 * (i >> 1)) * 16 + 8 * n + 2 * t + (i & 1)] = acc[n][i];
}

/* ldmatrix with a lane's row not 16-byte aligned, or lanes that
 * disagree on .trans; mma.sync in a 16-lane warp. */
__global__ void k_ldmatrix_bad(int misaligned)
{
    __shared__ __align__(16) __nv_bfloat16 tile[32][24];
    const int lane = threadIdx.x & 31;
    for (int i = threadIdx.x; i < 32 * 24; i += blockDim.x)
        tile[i / 24][i % 24] = __float2bfloat16_rn(1.0f);
    __syncthreads();
    uint32_t r[4];
    if (misaligned)
        mma_ldmatrix_x4(r, &tile[lane][lane == 5 ? 1 : 0]);
    else if (lane < 16)
        mma_ldmatrix_x4(r, &tile[lane][0]);
    else
        mma_ldmatrix_x4_trans(r, &tile[lane][0]);
}
__global__ void k_mma_partial_warp(float *out)
{
    const uint32_t a[4] = {0, 0, 0, 0};
    float d[4] = {0, 0, 0, 0};
    mma_bf16_16816(d, a, 0, 0);
    out[threadIdx.x] = d[0];
}

/* cp.async: thread t copies 16 bytes (4 ints) of `in` to shared memory
 * (the second half of the threads: only src_bytes of them, the rest
 * zeroed), reads its word before waiting (into early), waits, meets the
 * block at a barrier, and reads its neighbour's chunk (into late). */
__global__ void k_cp_async(const int *in, int *early, int *late, int src_bytes)
{
    __shared__ __align__(16) int sh[64 * 4];
    const int t = threadIdx.x;
    sh[4 * t] = -1;
    __syncthreads();
    cp_async_16(&sh[4 * t], &in[4 * t], t < 32 ? 16 : src_bytes);
    cp_async_commit();
    early[t] = sh[4 * t];
    cp_async_wait<0>();
    __syncthreads();
    for (int i = 0; i < 4; i++)
        late[4 * t + i] = sh[4 * ((t + 1) % 64) + i];
}
/* Two groups: after wait<1> only the first has landed. */
__global__ void k_cp_async_groups(const int *in, int *out)
{
    __shared__ __align__(16) int sh[8];
    sh[0] = sh[4] = -1;
    cp_async_16(&sh[0], &in[0], 16);
    cp_async_commit();
    cp_async_16(&sh[4], &in[4], 16);
    cp_async_commit();
    cp_async_wait<1>();
    out[0] = sh[0];
    out[1] = sh[4];
    cp_async_wait<0>();
    out[2] = sh[4];
}
__global__ void k_cp_async_unwaited(const int *in)
{
    __shared__ __align__(16) int sh[4];
    cp_async_16(sh, in, 16);
    cp_async_commit();
}
__global__ void k_cp_async_misaligned(const int *in)
{
    __shared__ __align__(16) int sh[8];
    cp_async_16(&sh[1], in, 16);
    cp_async_commit();
    cp_async_wait<0>();
}

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

static void run_cp_async_unwaited(void)
{
    int *d = NULL;
    cudaMalloc((void **)&d, 16);
    k_cp_async_unwaited<<<1, 32>>>(d);
}

static void run_cp_async_misaligned(void)
{
    int *d = NULL;
    cudaMalloc((void **)&d, 16);
    k_cp_async_misaligned<<<1, 1>>>(d);
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

static __nv_bfloat16 *device_bf16(size_t n)
{
    __nv_bfloat16 *p = NULL;
    if (cudaMalloc((void **)&p, n * sizeof *p) != cudaSuccess)
        abort();
    return p;
}
static void run_wmma_misaligned(void) { k_wmma_load<<<1, 32>>>(device_bf16(16 * 32), 8, 16, 0); }
static void run_wmma_ldm(void) { k_wmma_load<<<1, 32>>>(device_bf16(16 * 32), 0, 12, 0); }
static void run_wmma_lanes_differ(void) { k_wmma_load<<<1, 32>>>(device_bf16(16 * 32), 0, 32, 1); }
static void run_wmma_partial_warp(void) { k_wmma_load<<<1, 48>>>(device_bf16(16 * 16), 0, 16, 0); }
static void run_wmma_beside_shuffle(void) { k_wmma_beside_shuffle<<<1, 32>>>(device_bf16(16 * 16), device_floats(32)); }
static void run_wmma_store_ldm(void) { k_wmma_store_ldm<<<1, 32>>>(device_floats(16 * 16)); }
static void run_ldmatrix_misaligned(void) { k_ldmatrix_bad<<<1, 32>>>(1); }
static void run_ldmatrix_trans_differs(void) { k_ldmatrix_bad<<<1, 32>>>(0); }
static void run_mma_partial_warp(void) { k_mma_partial_warp<<<1, 48>>>(device_floats(48)); }

/* Small multiples of 1/4: every product and sum exact in float. */
static float exact_value(size_t i, int salt) { return (float)((int)((i * 7 + (size_t)salt * 13) % 9) - 4) * 0.25f; }

/* k_wmma_gemm on an m x n x k product, in every combination of c's and
 * d's layouts, against the host's: 1 when all agree exactly. */
template <typename T, typename LA, typename LB> static int wmma_gemm_ok(int m, int n, int k)
{
    const bool a_row = std::is_same<LA, wmma::row_major>::value, b_row = std::is_same<LB, wmma::row_major>::value;
    size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
    T *ha = (T *)malloc(na * sizeof *ha), *hb = (T *)malloc(nb * sizeof *hb), *da, *db;
    float *hc = (float *)malloc(nc * sizeof *hc), *hd = (float *)malloc(nc * sizeof *hd), *dc, *dd;
    float *want = (float *)malloc(nc * sizeof *want);
    for (size_t i = 0; i < na; i++)
        ha[i] = T(exact_value(i, 1));
    for (size_t i = 0; i < nb; i++)
        hb[i] = T(exact_value(i, 2));
    for (size_t i = 0; i < nc; i++)
        hc[i] = exact_value(i, 3) * 8;
    cudaMalloc((void **)&da, na * sizeof *da);
    cudaMalloc((void **)&db, nb * sizeof *db);
    cudaMalloc((void **)&dc, nc * sizeof *dc);
    cudaMalloc((void **)&dd, nc * sizeof *dd);
    cudaMemcpyAsync(da, ha, na * sizeof *ha, cudaMemcpyHostToDevice, 0);
    cudaMemcpyAsync(db, hb, nb * sizeof *hb, cudaMemcpyHostToDevice, 0);
    cudaMemcpyAsync(dc, hc, nc * sizeof *hc, cudaMemcpyHostToDevice, 0);
    int ok = 1;
    for (int layouts = 0; layouts < 4; layouts++) {
        wmma::layout_t lc = layouts & 1 ? wmma::mem_col_major : wmma::mem_row_major;
        wmma::layout_t ld = layouts & 2 ? wmma::mem_col_major : wmma::mem_row_major;
        bool c_row = lc == wmma::mem_row_major, d_row = ld == wmma::mem_row_major;
        for (int r = 0; r < m; r++)
            for (int col = 0; col < n; col++) {
                float sum = hc[at(r, col, c_row ? n : m, c_row)];
                for (int kk = 0; kk < k; kk++)
                    sum += (float)ha[at(r, kk, a_row ? k : m, a_row)] *
                           (float)hb[at(kk, col, b_row ? n : k, b_row)];
                want[at(r, col, d_row ? n : m, d_row)] = sum;
            }
        cudaMemsetAsync(dd, 0xff, nc * sizeof *dd, 0);
        k_wmma_gemm<T, LA, LB><<<dim3(1, m / 16), 32 * (n / 16)>>>(da, db, dc, dd, m, n, k, lc, ld);
        cudaMemcpyAsync(hd, dd, nc * sizeof *hd, cudaMemcpyDeviceToHost, 0);
        ok &= cudaGetLastError() == cudaSuccess;
        for (size_t i = 0; i < nc; i++)
            ok &= hd[i] == want[i];
    }
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
    cudaFree(dd);
    free(ha);
    free(hb);
    free(hc);
    free(hd);
    free(want);
    return ok;
}

/* k_mma_gemm, each way of filling the fragments, against the host's
 * product: 1 when all three agree exactly. */
static int mma_gemm_ok(void)
{
    __nv_bfloat16 ha[16 * 32], hbt[16 * 32], hb[32 * 16], *da, *dbt, *db;
    float hc[256], hd[256], want[256], *dc, *dd;
    for (int i = 0; i < 16 * 32; i++) {
        ha[i] = __float2bfloat16_rn(exact_value((size_t)i, 1));
        hb[i] = __float2bfloat16_rn(exact_value((size_t)i * 5, 2));   /* b[k][n] at k * 16 + n */
    }
    for (int n = 0; n < 16; n++)
        for (int k = 0; k < 32; k++)
            hbt[n * 32 + k] = hb[k * 16 + n];
    for (int i = 0; i < 256; i++)
        hc[i] = exact_value((size_t)i, 3) * 8;
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 16; n++) {
            float sum = hc[r * 16 + n];
            for (int k = 0; k < 32; k++)
                sum += __bfloat162float(ha[r * 32 + k]) * __bfloat162float(hb[k * 16 + n]);
            want[r * 16 + n] = sum;
        }
    cudaMalloc((void **)&da, sizeof ha);
    cudaMalloc((void **)&dbt, sizeof hbt);
    cudaMalloc((void **)&db, sizeof hb);
    cudaMalloc((void **)&dc, sizeof hc);
    cudaMalloc((void **)&dd, sizeof hd);
    cudaMemcpyAsync(da, ha, sizeof ha, cudaMemcpyHostToDevice, 0);
    cudaMemcpyAsync(dbt, hbt, sizeof hbt, cudaMemcpyHostToDevice, 0);
    cudaMemcpyAsync(db, hb, sizeof hb, cudaMemcpyHostToDevice, 0);
    cudaMemcpyAsync(dc, hc, sizeof hc, cudaMemcpyHostToDevice, 0);
    int ok = 1;
    for (int how = 0; how < 3; how++) {
        cudaMemsetAsync(dd, 0xff, sizeof hd, 0);
        k_mma_gemm<<<1, 32>>>(da, dbt, db, dc, dd, how);
        cudaMemcpyAsync(hd, dd, sizeof hd, cudaMemcpyDeviceToHost, 0);
        ok &= cudaGetLastError() == cudaSuccess;
        for (int i = 0; i < 256; i++)
            ok &= hd[i] == want[i];
    }
    cudaFree(da);
    cudaFree(dbt);
    cudaFree(db);
    cudaFree(dc);
    cudaFree(dd);
    return ok;
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
        float a[64];
        float *d2 = device_floats(64);
        k_warp_all<<<1, 64>>>(d2);
        cudaMemcpyAsync(a, d2, sizeof a, cudaMemcpyDeviceToHost, 0);
        ok = 1;
        for (int i = 0; i < 64; i++)
            ok &= a[i] == (i < 32 ? 1.0f : 0.0f);
        check(ok, "__all_sync: one lane's 0 makes every lane's answer 0");
        cudaFree(d2);
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
        int *di = NULL, hi[2] = {-1, -1};
        cudaMalloc((void **)&di, sizeof hi);
        k_dynamic_bytes<<<1, 64, 64>>>(di);
        cudaMemcpyAsync(hi, di, sizeof hi, cudaMemcpyDeviceToHost, 0);
        check(hi[0] == 0 && hi[1] == 63, "extern __shared__ __align__(128) unsigned char[]: 128-byte aligned, usable");
        cudaFree(di);
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
    /* WMMA: products in every layout of a, b, c and d, bf16 and half. */
    check(wmma_gemm_ok<__nv_bfloat16, wmma::row_major, wmma::row_major>(32, 48, 64),
          "wmma bf16 32x48x64, a row_major, b row_major, c and d in both layouts: the host's product");
    check(wmma_gemm_ok<__nv_bfloat16, wmma::row_major, wmma::col_major>(32, 48, 64),
          "wmma bf16 32x48x64, a row_major, b col_major: the host's product");
    check(wmma_gemm_ok<__nv_bfloat16, wmma::col_major, wmma::row_major>(32, 48, 64),
          "wmma bf16 32x48x64, a col_major, b row_major: the host's product");
    check(wmma_gemm_ok<__nv_bfloat16, wmma::col_major, wmma::col_major>(32, 48, 64),
          "wmma bf16 32x48x64, a col_major, b col_major: the host's product");
    check(wmma_gemm_ok<__half, wmma::row_major, wmma::col_major>(16, 32, 32),
          "wmma half 16x32x32, a row_major, b col_major: the host's product");
    /* mma.sync and ldmatrix: the PTX ISA's layouts. */
    check(mma_gemm_ok(), "mma.sync m16n8k16 bf16 16x16x32, fragments by hand, by ldmatrix and by ldmatrix.trans: "
                         "the host's product");
    /* WMMA: x[] element by element, fill_fragment, and the mapping. */
    {
        float *dc = device_floats(256), *dout = device_floats(256), *dfilled = device_floats(256);
        float *dunfilled = device_floats(256), *dids = device_floats(256);
        float hc[256], hout[256], hfilled[256], hunfilled[256], hids[256];
        for (int i = 0; i < 256; i++)
            hc[i] = (float)(i - 100) * 0.5f;
        cudaMemcpyAsync(dc, hc, sizeof hc, cudaMemcpyHostToDevice, 0);
        k_wmma_elementwise<<<1, 32>>>(dc, dout, dfilled, dunfilled, dids);
        cudaMemcpyAsync(hout, dout, sizeof hout, cudaMemcpyDeviceToHost, 0);
        cudaMemcpyAsync(hfilled, dfilled, sizeof hfilled, cudaMemcpyDeviceToHost, 0);
        cudaMemcpyAsync(hunfilled, dunfilled, sizeof hunfilled, cudaMemcpyDeviceToHost, 0);
        cudaMemcpyAsync(hids, dids, sizeof hids, cudaMemcpyDeviceToHost, 0);
        int scaled = cudaGetLastError() == cudaSuccess, filled = 1, unfilled = 1, each_once = 1, in_order = 1;
        int seen[256] = {0};
        for (int i = 0; i < 256; i++) {
            scaled &= hout[i] == 3 * hc[i] + 1;
            filled &= hfilled[i] == 0.25f;
            unfilled &= isnan(hunfilled[i]);
            int id = (int)hids[i];
            each_once &= id >= 0 && id < 256 && (float)id == hids[i] && !seen[id]++;
            in_order &= id == i;
        }
        check(scaled, "wmma accumulator x[] scaled element by element, then stored: 3 c + 1 everywhere");
        check(filled, "wmma fill_fragment then store: the value everywhere");
        check(unfilled, "wmma a fragment stored before it is filled: NaN");
        check(each_once && !in_order, "wmma lanes' x[] hold the tile once each, not in row-major order");
        cudaFree(dc);
        cudaFree(dout);
        cudaFree(dfilled);
        cudaFree(dunfilled);
        cudaFree(dids);
    }
    /* cp.async: copies land at the wait that covers them; the rest of a
     * short copy is zeroed. */
    {
        int h_in[256], h_early[64], h_late[256], *din = NULL, *dearly = NULL, *dlate = NULL;
        for (int i = 0; i < 256; i++)
            h_in[i] = 1000 + i;
        cudaMalloc((void **)&din, sizeof h_in);
        cudaMalloc((void **)&dearly, sizeof h_early);
        cudaMalloc((void **)&dlate, sizeof h_late);
        cudaMemcpyAsync(din, h_in, sizeof h_in, cudaMemcpyHostToDevice, 0);
        setenv("DSK_EMU_CP_ASYNC", "deferred", 1);
        k_cp_async<<<1, 64>>>(din, dearly, dlate, 8);
        cudaMemcpyAsync(h_early, dearly, sizeof h_early, cudaMemcpyDeviceToHost, 0);
        cudaMemcpyAsync(h_late, dlate, sizeof h_late, cudaMemcpyDeviceToHost, 0);
        int early_old = cudaGetLastError() == cudaSuccess, late_ok = 1;
        for (int t = 0; t < 64; t++) {
            early_old &= h_early[t] == -1;
            int from = (t + 1) % 64;
            for (int i = 0; i < 4; i++)
                late_ok &= h_late[4 * t + i] == (from < 32 || i < 2 ? 1000 + 4 * from + i : 0);
        }
        check(early_old, "cp.async: shared memory read before the wait: the old value");
        check(late_ok, "cp.async: after the wait and a barrier, every thread's copy (a short one zero-filled)");
        int h_g[3] = {0, 0, 0};
        k_cp_async_groups<<<1, 1>>>(din, dearly);
        cudaMemcpyAsync(h_g, dearly, sizeof h_g, cudaMemcpyDeviceToHost, 0);
        check(h_g[0] == 1000 && h_g[1] == -1 && h_g[2] == 1004,
              "cp.async.wait_group 1 of two groups: the first landed, the newest not until wait_group 0");
        setenv("DSK_EMU_CP_ASYNC", "eager", 1);
        k_cp_async<<<1, 64>>>(din, dearly, dlate, 8);
        cudaMemcpyAsync(h_early, dearly, sizeof h_early, cudaMemcpyDeviceToHost, 0);
        cudaMemcpyAsync(h_late, dlate, sizeof h_late, cudaMemcpyDeviceToHost, 0);
        int early_new = cudaGetLastError() == cudaSuccess;
        late_ok = 1;
        for (int t = 0; t < 64; t++) {
            early_new &= h_early[t] == 1000 + 4 * t;
            int from = (t + 1) % 64;
            for (int i = 0; i < 4; i++)
                late_ok &= h_late[4 * t + i] == (from < 32 || i < 2 ? 1000 + 4 * from + i : 0);
        }
        check(early_new && late_ok, "cp.async in an eager block: the copy lands as it is issued");
        unsetenv("DSK_EMU_CP_ASYNC");
        cudaFree(din);
        cudaFree(dearly);
        cudaFree(dlate);
    }
    /* What a GPU leaves undefined: the emulator stops there. */
    check(dies_saying(run_divergent, "disagree about the next barrier"),
          "__syncthreads in half a warp, a shuffle in the other: stopped");
    check(dies_saying(run_shuffle_after_return, "already returned"), "a shuffle with lanes that returned: stopped");
    check(dies_saying(run_partial_warp_mask, "the mask must name"), "a full mask in a 20-lane warp: stopped");
    check(dies_saying(run_past_end, "heap-buffer-overflow"), "a kernel writing past its buffer: ASan stops it");
    check(dies_saying(run_wmma_misaligned, "wmma::load_matrix_sync: ptr 0x"),
          "wmma::load_matrix_sync from a pointer not 32-byte aligned: stopped");
    check(dies_saying(run_wmma_ldm, "ldm 12 is not a multiple of 8"), "wmma::load_matrix_sync of bf16 with ldm 12: stopped");
    check(dies_saying(run_wmma_lanes_differ, "the warp's lanes disagree"),
          "wmma::load_matrix_sync with lanes passing different pointers: stopped");
    check(dies_saying(run_wmma_partial_warp, "it needs a full warp of 32 lanes"),
          "wmma::load_matrix_sync in a 16-lane warp (a block of 48): stopped");
    check(dies_saying(run_wmma_beside_shuffle, "different warp collectives"),
          "half a warp at wmma::load_matrix_sync, the other half at a shuffle: stopped");
    check(dies_saying(run_wmma_store_ldm, "wmma::store_matrix_sync: ldm 6 is not a multiple of 4"),
          "wmma::store_matrix_sync of float with ldm 6: stopped");
    check(dies_saying(run_ldmatrix_misaligned, "lane 5's row address"),
          "ldmatrix with a row address not 16-byte aligned: stopped");
    check(dies_saying(run_ldmatrix_trans_differs, " .trans, lane "),
          "ldmatrix with lanes that disagree on .trans: stopped");
    check(dies_saying(run_mma_partial_warp, "it needs a full warp of 32 lanes"),
          "mma.sync in a 16-lane warp (a block of 48): stopped");
    check(dies_saying(run_cp_async_unwaited, "cp.async copies never waited for"),
          "a thread that ends with cp.async copies not waited for: stopped");
    check(dies_saying(run_cp_async_misaligned, "must be 16-byte aligned"),
          "cp.async to a shared address not 16-byte aligned: stopped");

    printf("1..%d\n", n_checks);
    return n_failed ? 1 : 0;
}
