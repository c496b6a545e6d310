/* RMSNorm forward and backward: the forward a block per row; the backward
 * a block per chunk of rows, the weight gradient's column sums per chunk,
 * then the chunks in order (no atomics: the same bits every run).  Rows
 * of a multiple of 4 floats go four a thread (16-byte loads and stores). */
#include "cuda_internal.cuh"

static int row_threads(int C)
{
    int t = 32;
    while (t < C && t < 512)
        t *= 2;
    return t;
}

/* out_h: out's 16-bit copy for the products that read it next (see
 * dsk_cuda_half_produce). */
__global__ void rmsnorm_fwd_kernel(float *out, dsk_half_out out_h, float *rstd, const float *x, const float *w, int C,
                                   float eps)
{
    __shared__ float sh[32];
    size_t row = blockIdx.x;
    const float *xi = x + row * C;
    float *oi = out + row * C;
    float ss = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        ss += xi[c] * xi[c];
    ss = block_sum(ss, sh);
    float r = 1.0f / sqrtf(ss / C + eps);
    if (threadIdx.x == 0)
        rstd[row] = r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float y = xi[c] * r * w[c];
        oi[c] = y;
        out_h.put(row * C + c, y);
    }
}

/* The same four columns a thread (16-byte loads and stores: C a multiple
 * of 4, the arrays aligned, dsk_vec4_ok); the sum of squares in another
 * order than above, so other bits than the one-float kernel's. */
__global__ void rmsnorm_fwd_kernel4(float4 *out, dsk_half_out out_h, float *rstd, const float4 *x, const float4 *w,
                                    int C4, float eps)
{
    __shared__ float sh[32];
    size_t row = blockIdx.x;
    const float4 *xi = x + row * C4;
    float4 *oi = out + row * C4;
    float ss = 0;
    for (int c = threadIdx.x; c < C4; c += blockDim.x) {
        const float4 v = xi[c];
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    ss = block_sum(ss, sh);
    float r = 1.0f / sqrtf(ss / (4 * C4) + eps);
    if (threadIdx.x == 0)
        rstd[row] = r;
    for (int c = threadIdx.x; c < C4; c += blockDim.x) {
        const float4 v = xi[c], wv = w[c];
        const float4 y = make_float4(v.x * r * wv.x, v.y * r * wv.y, v.z * r * wv.z, v.w * r * wv.w);
        oi[c] = y;
        out_h.put4(4 * (row * C4 + c), y);
    }
}

void dsk_cuda_rmsnorm_fwd(dsk_backend *be, float *out, float *rstd, const float *x, const float *w, int n, int C,
                          float eps)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0 || C <= 0)
        return;
    dsk_half_out h;
    dsk_cuda_half_produce(cb, (size_t)n * C, out, &h, NULL, NULL);
    const void *arrays[] = {out, x, w};
    if (dsk_vec4_ok((size_t)C, arrays, 3, h, h))
        rmsnorm_fwd_kernel4<<<n, row_threads(C / 4), 0, cb->stream>>>((float4 *)out, h, rstd, (const float4 *)x,
                                                                       (const float4 *)w, C / 4, eps);
    else
        rmsnorm_fwd_kernel<<<n, row_threads(C), 0, cb->stream>>>(out, h, rstd, x, w, C, eps);
    LAUNCHED(cb, "rmsnorm_fwd");
}

enum { DW_ROWS = 32 };

/* The backward's arithmetic on one column (float) or four (float4, lane
 * by lane in the same expressions), so that one kernel serves both. */
__device__ __forceinline__ float vec_dot3(float d, float w, float x) { return d * w * x; }
__device__ __forceinline__ float vec_dot3(float4 d, float4 w, float4 x)
{
    return d.x * w.x * x.x + d.y * w.y * x.y + d.z * w.z * x.z + d.w * w.w * x.w;
}
/* dx's gradient g0 plus r d w - k x. */
__device__ __forceinline__ float vec_grad(float g0, float r, float d, float w, float k, float x)
{
    return g0 + (r * d * w - k * x);
}
__device__ __forceinline__ float4 vec_grad(float4 g0, float r, float4 d, float4 w, float k, float4 x)
{
    return make_float4(vec_grad(g0.x, r, d.x, w.x, k, x.x), vec_grad(g0.y, r, d.y, w.y, k, x.y),
                       vec_grad(g0.z, r, d.z, w.z, k, x.z), vec_grad(g0.w, r, d.w, w.w, k, x.w));
}
/* dw's sum a plus d x r. */
__device__ __forceinline__ float vec_acc(float a, float d, float x, float r) { return a + d * x * r; }
__device__ __forceinline__ float4 vec_acc(float4 a, float4 d, float4 x, float r)
{
    return make_float4(vec_acc(a.x, d.x, x.x, r), vec_acc(a.y, d.y, x.y, r), vec_acc(a.z, d.z, x.z, r),
                       vec_acc(a.w, d.w, x.w, r));
}
/* Element (or group of four) i of dx into its 16-bit copy. */
__device__ __forceinline__ void vec_put(dsk_half_out h, size_t i, float v) { h.put(i, v); }
__device__ __forceinline__ void vec_put(dsk_half_out h, size_t i, float4 v) { h.put4(4 * i, v); }
template <typename V> __device__ __forceinline__ V vec_zero() { return V{}; }

/* One block per chunk of DW_ROWS rows, in one pass over dout and x: each
 * row's dx = r (dy w) - x r^3 mean(dy w x), added into dx, and the chunk's
 * share of dw, part[chunk][c] = the sum over its rows, in order, of
 * dout x rstd (acc: C floats of dynamic shared memory, each thread its own
 * columns).  (The row is read twice, for the dot product and the update;
 * the second read finds it in cache.)  dx_h: dx's 16-bit copy, for the
 * products of the block before (see dsk_cuda_half_produce).  V float: a
 * column a thread (Cv = C); float4: four (Cv = C / 4, dsk_vec4_ok), dw's
 * sums in the same order, the dot products in another. */
template <typename V>
__global__ void rmsnorm_bwd_kernel(V *dx, dsk_half_out dx_h, V *part, const V *dout, const V *x, const V *w,
                                   const float *rstd, int n, int Cv)
{
    extern __shared__ float4 acc_room[];   /* float4: aligned for either width */
    V *acc = (V *)acc_room;
    __shared__ float sh[32];
    const int C = Cv * (int)(sizeof(V) / sizeof(float));
    int lo = blockIdx.x * DW_ROWS, hi = lo + DW_ROWS < n ? lo + DW_ROWS : n;
    for (int c = threadIdx.x; c < Cv; c += blockDim.x)
        acc[c] = vec_zero<V>();
    for (int i = lo; i < hi; i++) {
        const V *xi = x + (size_t)i * Cv, *di = dout + (size_t)i * Cv;
        V *dxi = dx + (size_t)i * Cv;
        float r = rstd[i], dot = 0;
        for (int c = threadIdx.x; c < Cv; c += blockDim.x)
            dot += vec_dot3(di[c], w[c], xi[c]);
        dot = block_sum(dot, sh);
        float k = r * r * r * dot / C;
        for (int c = threadIdx.x; c < Cv; c += blockDim.x) {
            const V d = di[c], xv = xi[c], g = vec_grad(dxi[c], r, d, w[c], k, xv);
            dxi[c] = g;
            vec_put(dx_h, (size_t)i * Cv + c, g);
            acc[c] = vec_acc(acc[c], d, xv, r);
        }
    }
    for (int c = threadIdx.x; c < Cv; c += blockDim.x)
        part[(size_t)blockIdx.x * Cv + c] = acc[c];
}

__global__ void rmsnorm_bwd_dw_sum_kernel(float *dw, const float *part, int chunks, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    float s = 0;
    for (int k = 0; k < chunks; k++)
        s += part[(size_t)k * C + c];
    dw[c] += s;
}

/* rmsnorm_bwd_kernel<V>: the row's accumulators, C floats of dynamic
 * shared memory; with the kernel's own 32 floats (block_sum's) past 48
 * KB a block must opt in. */
template <typename V>
static void rmsnorm_bwd_launch(dsk_cuda *cb, int chunks, int threads, V *dx, dsk_half_out h, V *part, const V *dout,
                               const V *x, const V *w, const float *rstd, int n, int Cv)
{
    const int C = Cv * (int)(sizeof(V) / sizeof(float));
    const size_t smem = (size_t)C * sizeof(float), fixed = 32 * sizeof(float);
    if (smem + fixed > 48 * 1024) {
        if (smem + fixed > (size_t)cb->smem_optin)
            dsk_die(EX_SOFTWARE, "cuda: rmsnorm_bwd: a row of %d floats is more than %d bytes of shared memory", C,
                    cb->smem_optin);
        CUDA_CHECK(
            cudaFuncSetAttribute(rmsnorm_bwd_kernel<V>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    }
    rmsnorm_bwd_kernel<V><<<chunks, threads, smem, cb->stream>>>(dx, h, part, dout, x, w, rstd, n, Cv);
}

void dsk_cuda_rmsnorm_bwd(dsk_backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rstd, int n, int C)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0 || C <= 0)
        return;
    int chunks = (n + DW_ROWS - 1) / DW_ROWS, threads = 128;
    float *part = (float *)dsk_cuda_scratch(cb, (size_t)chunks * C * sizeof(float));
    dsk_half_out h;
    dsk_cuda_half_produce(cb, (size_t)n * C, dx, &h, NULL, NULL);
    const void *arrays[] = {dx, part, dout, x, w};
    const int vec = dsk_vec4_ok((size_t)C, arrays, 5, h, h);
    if (vec)
        rmsnorm_bwd_launch(cb, chunks, row_threads(C / 4), (float4 *)dx, h, (float4 *)part, (const float4 *)dout,
                           (const float4 *)x, (const float4 *)w, rstd, n, C / 4);
    else
        rmsnorm_bwd_launch(cb, chunks, row_threads(C), dx, h, part, dout, x, w, rstd, n, C);
    LAUNCHED(cb, "rmsnorm_bwd");
    rmsnorm_bwd_dw_sum_kernel<<<(C + threads - 1) / threads, threads, 0, cb->stream>>>(dw, part, chunks, C);
    LAUNCHED(cb, "rmsnorm_bwd");
}
