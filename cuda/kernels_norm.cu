/* RMSNorm forward and backward: a block per row; the weight gradient's
 * column sums in fixed row chunks, then the chunks in order. */
#include "cuda_internal.cuh"

static int row_threads(int C)
{
    int t = 32;
    while (t < C && t < 512)
        t *= 2;
    return t;
}

__global__ void rmsnorm_fwd_kernel(float *out, float *rstd, const float *x, const float *w, int C, float eps)
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
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        oi[c] = xi[c] * r * w[c];
}

void dsk_cuda_rmsnorm_fwd(dsk_backend *be, float *out, float *rstd, const float *x, const float *w, int n, int C,
                          float eps)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0 || C <= 0)
        return;
    rmsnorm_fwd_kernel<<<n, row_threads(C), 0, cb->stream>>>(out, rstd, x, w, C, eps);
    LAUNCHED(cb, "rmsnorm_fwd");
}

/* dx = r (dy w) - x r^3 mean(dy w x), added into dx. */
__global__ void rmsnorm_bwd_dx_kernel(float *dx, const float *dout, const float *x, const float *w, const float *rstd,
                                      int C)
{
    __shared__ float sh[32];
    size_t row = blockIdx.x;
    const float *xi = x + row * C, *di = dout + row * C;
    float *dxi = dx + row * C;
    float r = rstd[row], dot = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        dot += di[c] * w[c] * xi[c];
    dot = block_sum(dot, sh);
    float k = r * r * r * dot / C;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        dxi[c] += r * di[c] * w[c] - k * xi[c];
}

enum { DW_ROWS = 64 };

/* part[chunk][c] = sum over the chunk's rows of dout * x * rstd. */
__global__ void rmsnorm_bwd_dw_part_kernel(float *part, const float *dout, const float *x, const float *rstd, int n,
                                           int C, int rows)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (c >= C)
        return;
    int lo = chunk * rows, hi = lo + rows < n ? lo + rows : n;
    float s = 0;
    for (int i = lo; i < hi; i++)
        s += dout[(size_t)i * C + c] * x[(size_t)i * C + c] * rstd[i];
    part[(size_t)chunk * C + c] = s;
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
    rmsnorm_bwd_dx_kernel<<<n, row_threads(C), 0, cb->stream>>>(dx, dout, x, w, rstd, C);
    LAUNCHED(cb, "rmsnorm_bwd");
    int rows = DW_ROWS;
    while ((n + rows - 1) / rows > 65535)   /* the grid's y limit */
        rows *= 2;
    int chunks = (n + rows - 1) / rows, threads = 128;
    float *part = (float *)dsk_cuda_scratch(cb, (size_t)chunks * C * sizeof(float));
    dim3 grid((C + threads - 1) / threads, chunks);
    rmsnorm_bwd_dw_part_kernel<<<grid, threads, 0, cb->stream>>>(part, dout, x, rstd, n, C, rows);
    LAUNCHED(cb, "rmsnorm_bwd");
    rmsnorm_bwd_dw_sum_kernel<<<(C + threads - 1) / threads, threads, 0, cb->stream>>>(dw, part, chunks, C);
    LAUNCHED(cb, "rmsnorm_bwd");
}
