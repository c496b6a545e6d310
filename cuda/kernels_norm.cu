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

/* One block per chunk of DW_ROWS rows, in one pass over dout and x: each
 * row's dx = r (dy w) - x r^3 mean(dy w x), added into dx, and the chunk's
 * share of dw, part[chunk][c] = the sum over its rows, in order, of
 * dout x rstd (acc: C floats of dynamic shared memory, each thread its own
 * columns).  (The row is read twice, for the dot product and the update;
 * the second read finds it in cache.)  dx_h: dx's 16-bit copy, for the
 * products of the block before (see dsk_cuda_half_produce). */
__global__ void rmsnorm_bwd_kernel(float *dx, dsk_half_out dx_h, float *part, const float *dout, const float *x,
                                   const float *w, const float *rstd, int n, int C)
{
    extern __shared__ float acc[];
    __shared__ float sh[32];
    int lo = blockIdx.x * DW_ROWS, hi = lo + DW_ROWS < n ? lo + DW_ROWS : n;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        acc[c] = 0;
    for (int i = lo; i < hi; i++) {
        const float *xi = x + (size_t)i * C, *di = dout + (size_t)i * C;
        float *dxi = dx + (size_t)i * C;
        float r = rstd[i], dot = 0;
        for (int c = threadIdx.x; c < C; c += blockDim.x)
            dot += di[c] * w[c] * xi[c];
        dot = block_sum(dot, sh);
        float k = r * r * r * dot / C;
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float d = di[c], xv = xi[c], g = dxi[c] + (r * d * w[c] - k * xv);
            dxi[c] = g;
            dx_h.put((size_t)i * C + c, g);
            acc[c] += d * xv * r;
        }
    }
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        part[(size_t)blockIdx.x * C + c] = acc[c];
}

/* The same four columns a thread (dsk_vec4_ok): dw's sums in the same
 * order as above (a column's rows in order), dx's dot products in another. */
__global__ void rmsnorm_bwd_kernel4(float4 *dx, dsk_half_out dx_h, float4 *part, const float4 *dout, const float4 *x,
                                    const float4 *w, const float *rstd, int n, int C4)
{
    extern __shared__ float4 acc4[];
    __shared__ float sh[32];
    int lo = blockIdx.x * DW_ROWS, hi = lo + DW_ROWS < n ? lo + DW_ROWS : n;
    for (int c = threadIdx.x; c < C4; c += blockDim.x)
        acc4[c] = make_float4(0, 0, 0, 0);
    for (int i = lo; i < hi; i++) {
        const float4 *xi = x + (size_t)i * C4, *di = dout + (size_t)i * C4;
        float4 *dxi = dx + (size_t)i * C4;
        float r = rstd[i], dot = 0;
        for (int c = threadIdx.x; c < C4; c += blockDim.x) {
            const float4 d = di[c], wv = w[c], xv = xi[c];
            dot += d.x * wv.x * xv.x + d.y * wv.y * xv.y + d.z * wv.z * xv.z + d.w * wv.w * xv.w;
        }
        dot = block_sum(dot, sh);
        float k = r * r * r * dot / (4 * C4);
        for (int c = threadIdx.x; c < C4; c += blockDim.x) {
            const float4 d = di[c], xv = xi[c], wv = w[c], g0 = dxi[c];
            const float4 g = make_float4(g0.x + (r * d.x * wv.x - k * xv.x), g0.y + (r * d.y * wv.y - k * xv.y),
                                         g0.z + (r * d.z * wv.z - k * xv.z), g0.w + (r * d.w * wv.w - k * xv.w));
            dxi[c] = g;
            dx_h.put4(4 * ((size_t)i * C4 + c), g);
            float4 a = acc4[c];
            a.x += d.x * xv.x * r, a.y += d.y * xv.y * r, a.z += d.z * xv.z * r, a.w += d.w * xv.w * r;
            acc4[c] = a;
        }
    }
    for (int c = threadIdx.x; c < C4; c += blockDim.x)
        part[(size_t)blockIdx.x * C4 + c] = acc4[c];
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

void dsk_cuda_rmsnorm_bwd(dsk_backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rstd, int n, int C)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0 || C <= 0)
        return;
    int chunks = (n + DW_ROWS - 1) / DW_ROWS, threads = 128;
    /* The row's accumulators; with the kernel's own 32 floats (block_sum's)
     * past 48 KB a block must opt in. */
    size_t smem = (size_t)C * sizeof(float), fixed = 32 * sizeof(float);
    float *part = (float *)dsk_cuda_scratch(cb, (size_t)chunks * C * sizeof(float));
    dsk_half_out h;
    dsk_cuda_half_produce(cb, (size_t)n * C, dx, &h, NULL, NULL);
    const void *arrays[] = {dx, part, dout, x, w};
    const int vec = dsk_vec4_ok((size_t)C, arrays, 5, h, h);
    if (smem + fixed > 48 * 1024) {
        if (smem + fixed > (size_t)cb->smem_optin)
            dsk_die(EX_SOFTWARE, "cuda: rmsnorm_bwd: a row of %d floats is more than %d bytes of shared memory", C,
                    cb->smem_optin);
        if (vec)
            CUDA_CHECK(
                cudaFuncSetAttribute(rmsnorm_bwd_kernel4, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        else
            CUDA_CHECK(
                cudaFuncSetAttribute(rmsnorm_bwd_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    }
    if (vec)
        rmsnorm_bwd_kernel4<<<chunks, row_threads(C / 4), smem, cb->stream>>>(
            (float4 *)dx, h, (float4 *)part, (const float4 *)dout, (const float4 *)x, (const float4 *)w, rstd, n,
            C / 4);
    else
        rmsnorm_bwd_kernel<<<chunks, row_threads(C), smem, cb->stream>>>(dx, h, part, dout, x, w, rstd, n, C);
    LAUNCHED(cb, "rmsnorm_bwd");
    rmsnorm_bwd_dw_sum_kernel<<<(C + threads - 1) / threads, threads, 0, cb->stream>>>(dw, part, chunks, C);
    LAUNCHED(cb, "rmsnorm_bwd");
}
