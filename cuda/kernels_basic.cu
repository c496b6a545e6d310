/* Element-wise ops, the deterministic sum of squares, the embedding and
 * RoPE: the CPU kernels' math (lib/ops/cpu_kernels_impl.h) per element. */
#include "cuda_internal.cuh"

enum { THREADS = 256 };

__global__ void add_kernel(float *y, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

void dsk_cuda_add(dsk_backend *be, float *y, const float *x, size_t n)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (!n)
        return;
    add_kernel<<<dsk_cuda_blocks(cb, n, THREADS), THREADS, 0, cb->stream>>>(y, x, n);
    LAUNCHED(cb, "add");
    dsk_cuda_weights_stale(cb, y, n * sizeof(float));
}

__global__ void scale_kernel(float *x, size_t n, float s)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

void dsk_cuda_scale(dsk_backend *be, float *x, size_t n, float s)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (!n)
        return;
    scale_kernel<<<dsk_cuda_blocks(cb, n, THREADS), THREADS, 0, cb->stream>>>(x, n, s);
    LAUNCHED(cb, "scale");
    dsk_cuda_weights_stale(cb, x, n * sizeof(float));
}

/* ---- sum of squares: fixed chunks, each reduced by one block in a fixed
 * tree, then the chunks' sums by one block: the same bits on every run
 * (the grid depends on n only). ---- */

enum { SUMSQ_CHUNK = 1 << 16, SUMSQ_FINAL = 1024 };

__global__ void sumsq_chunks_kernel(double *part, const float *x, size_t n)
{
    __shared__ double sh[32];
    size_t lo = (size_t)blockIdx.x * SUMSQ_CHUNK, hi = lo + SUMSQ_CHUNK < n ? lo + SUMSQ_CHUNK : n;
    double s = 0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        double v = x[i];
        s += v * v;
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

__global__ void sumsq_final_kernel(double *out, const double *part, size_t nparts)
{
    __shared__ double sh[32];
    double s = 0;
    for (size_t i = threadIdx.x; i < nparts; i += blockDim.x)
        s += part[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        out[0] = s;
}

double dsk_cuda_sumsq(dsk_backend *be, const float *x, size_t n)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (!n)
        return 0;
    size_t nparts = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *part = (double *)dsk_cuda_scratch(cb, (nparts + 1) * sizeof(double));
    sumsq_chunks_kernel<<<(unsigned)nparts, THREADS, 0, cb->stream>>>(part + 1, x, n);
    LAUNCHED(cb, "sumsq");
    sumsq_final_kernel<<<1, SUMSQ_FINAL, 0, cb->stream>>>(part, part + 1, nparts);
    LAUNCHED(cb, "sumsq");
    CUDA_CHECK(cudaMemcpyAsync(cb->host_sum, part, sizeof(double), cudaMemcpyDeviceToHost, cb->stream));
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));
    return *cb->host_sum;
}

/* ---- embedding ---- */

__global__ void embedding_fwd_kernel(float *out, const float *table, const int32_t *tokens, int n, int C)
{
    size_t total = (size_t)n * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / C, c = i % C;
        out[i] = table[(size_t)tokens[t] * C + c];
    }
}

void dsk_cuda_embedding_fwd(dsk_backend *be, float *out, const float *table, const int32_t *tokens, int n, int C)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0 || C <= 0)
        return;
    embedding_fwd_kernel<<<dsk_cuda_blocks(cb, (size_t)n * C, THREADS), THREADS, 0, cb->stream>>>(out, table, tokens,
                                                                                                   n, C);
    LAUNCHED(cb, "embedding_fwd");
}

/* The tokens' gradients added onto their rows, deterministically: each
 * table row has one writer, which adds its tokens' rows in token order
 * (the CPU's order, so the same bits as the cpu backend).  Block (x, p)
 * takes columns [256 x, 256 x + 256) of the rows of tokens t with
 * t % parts == p (parts a power of two), so that the work spreads over
 * parts x column blocks rather than one walk over all n tokens per
 * column (which took 1.8% of a 1.3b step on an H200).  The tokens go by
 * in chunks of EMB_CHUNK: the block picks out its partition's, in order
 * (a block-wide prefix sum of the matches), then every thread adds
 * those rows for its column. */
enum { EMB_THREADS = 256, EMB_PER_THREAD = 4, EMB_CHUNK = EMB_THREADS * EMB_PER_THREAD };

__global__ void __launch_bounds__(EMB_THREADS)
    embedding_bwd_kernel(float *dtable, const float *dout, const int32_t *tokens, int n, int C, int parts)
{
    __shared__ int32_t at_sh[EMB_CHUNK], tok_sh[EMB_CHUNK];   /* the partition's tokens of the chunk, in order */
    __shared__ int scan[EMB_THREADS];
    const int tid = threadIdx.x, c = blockIdx.x * EMB_THREADS + tid, p = (int)blockIdx.y;
    for (int i0 = 0; i0 < n; i0 += EMB_CHUNK) {
        /* Thread tid looks at positions i0 + 4 tid .. + 3 (in order across threads). */
        int32_t mine[EMB_PER_THREAD];
        int count = 0;
        for (int e = 0; e < EMB_PER_THREAD; e++) {
            const int i = i0 + EMB_PER_THREAD * tid + e;
            mine[e] = i < n && (tokens[i] & (parts - 1)) == p ? tokens[i] : -1;
            count += mine[e] >= 0;
        }
        int total;
        int at = block_prefix_sum(count, scan, &total) - count;
        for (int e = 0; e < EMB_PER_THREAD; e++)
            if (mine[e] >= 0) {
                at_sh[at] = i0 + EMB_PER_THREAD * tid + e;
                tok_sh[at++] = mine[e];
            }
        __syncthreads();
        if (c < C)
            for (int x = 0; x < total; x++)
                dtable[(size_t)tok_sh[x] * C + c] += dout[(size_t)at_sh[x] * C + c];
        __syncthreads();   /* the lists are the next chunk's */
    }
}

void dsk_cuda_embedding_bwd(dsk_backend *be, float *dtable, const float *dout, const int32_t *tokens, int n, int C)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0 || C <= 0)
        return;
    /* About two blocks an SM (any count gives the same bits). */
    const int col_blocks = (C + EMB_THREADS - 1) / EMB_THREADS;
    int parts = 1;
    while (parts < 256 && parts * col_blocks < 2 * cb->sm_count)
        parts *= 2;
    embedding_bwd_kernel<<<dim3(col_blocks, parts), EMB_THREADS, 0, cb->stream>>>(dtable, dout, tokens, n, C, parts);
    LAUNCHED(cb, "embedding_bwd");
}

/* ---- RoPE (rotate-half: the pair is x[i], x[i + hd/2]) ---- */

/* x_h: x's 16-bit copy for the products that read it next (see
 * dsk_cuda_half_produce). */
__global__ void rope_kernel(float *x, dsk_half_out x_h, const int32_t *pos, const float *cos_sin, int n, int heads,
                            int hd, int inverse)
{
    int half = hd / 2;
    size_t total = (size_t)n * heads * half;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(idx % half);
        size_t th = idx / half;          /* t * heads + h */
        size_t t = th / heads;
        const float *cs = cos_sin + ((size_t)pos[t] * half + i) * 2;
        float c = cs[0], s = inverse ? -cs[1] : cs[1];
        float *v = x + th * hd;
        float a = v[i], b = v[i + half];
        /* Unfused, as the CPU rounds it. */
        float ra = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)), rb = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
        v[i] = ra;
        v[i + half] = rb;
        x_h.put(th * hd + i, ra);
        x_h.put(th * hd + i + half, rb);
    }
}

/* The same, four pairs a thread (i a multiple of 4: 16-byte loads and
 * stores of both halves and of the cosines and sines), where half is a
 * multiple of 4 and the arrays allow (dsk_vec4_ok): the same bits, and
 * a quarter of the index arithmetic (64-bit divisions) of the kernel
 * above. */
__global__ void rope_kernel4(float *x, dsk_half_out x_h, const int32_t *pos, const float *cos_sin, int n, int heads,
                             int hd, int inverse)
{
    const int half = hd / 2, quads = half / 4;
    const size_t total = (size_t)n * heads * quads;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const int i = 4 * (int)(idx % quads);
        const size_t th = idx / quads, t = th / heads;   /* th: t * heads + h */
        const float4 *cs = (const float4 *)(cos_sin + ((size_t)pos[t] * half + i) * 2);
        const float4 cs0 = cs[0], cs1 = cs[1];   /* (cos, sin) of pairs i, i + 1; then i + 2, i + 3 */
        const float c[4] = {cs0.x, cs0.z, cs1.x, cs1.z};
        float sn[4] = {cs0.y, cs0.w, cs1.y, cs1.w};
        float *v = x + th * hd;
        const float4 a4 = *(const float4 *)(v + i), b4 = *(const float4 *)(v + i + half);
        const float a[4] = {a4.x, a4.y, a4.z, a4.w}, b[4] = {b4.x, b4.y, b4.z, b4.w};
        float ra[4], rb[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float s = inverse ? -sn[e] : sn[e];
            ra[e] = __fsub_rn(__fmul_rn(a[e], c[e]), __fmul_rn(b[e], s));
            rb[e] = __fadd_rn(__fmul_rn(b[e], c[e]), __fmul_rn(a[e], s));
        }
        const float4 ra4 = make_float4(ra[0], ra[1], ra[2], ra[3]), rb4 = make_float4(rb[0], rb[1], rb[2], rb[3]);
        *(float4 *)(v + i) = ra4;
        *(float4 *)(v + i + half) = rb4;
        x_h.put4(th * hd + i, ra4);
        x_h.put4(th * hd + i + half, rb4);
    }
}

/* RoPE writes x and nothing else, so it forgets only the 16-bit copies
 * that x overlaps (the table installs it without its forget-all): the
 * backward's two inverse rotations, of dq and then of dk, keep each
 * other's copies for the products after them.  And the inverse rotation
 * (the backward's, whose outputs feed products) writes x's copy as it
 * writes x (dsk_cuda_half_produce; hd even, as RoPE's pairs need). */
void dsk_cuda_rope(dsk_backend *be, float *x, const int32_t *pos, const float *cos_sin, int n, int heads, int hd,
                   int inverse)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    size_t total = (size_t)n * heads * (hd / 2), len = (size_t)n * heads * hd;
    dsk_cuda_half_written(cb, x, len * sizeof(float));
    if (!total)
        return;
    dsk_half_out h = {NULL, 0};
    if (inverse && hd % 2 == 0)
        dsk_cuda_half_produce(cb, len, x, &h, NULL, NULL);
    const void *arrays[] = {x, cos_sin};
    if (hd % 8 == 0 && dsk_vec4_ok(len, arrays, 2, h, h))
        rope_kernel4<<<dsk_cuda_blocks(cb, total / 4, THREADS), THREADS, 0, cb->stream>>>(x, h, pos, cos_sin, n,
                                                                                         heads, hd, inverse);
    else
        rope_kernel<<<dsk_cuda_blocks(cb, total, THREADS), THREADS, 0, cb->stream>>>(x, h, pos, cos_sin, n, heads, hd,
                                                                                     inverse);
    LAUNCHED(cb, "rope");
}

/* ---- SwiGLU ---- */

/* The SwiGLU kernels also write their outputs' 16-bit copies for the
 * products that read them next (see dsk_cuda_half_produce).  Each has a
 * version four floats a thread (16-byte loads and stores), where the
 * arrays allow (dsk_vec4_ok): the same math per element, the same bits;
 * on an H200 the one-float kernels moved 55-65% of the memory's peak. */
__device__ __forceinline__ float swiglu1(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* dg, du of one element. */
__device__ __forceinline__ void swiglu1_bwd(float d, float g, float u, float &dg, float &du)
{
    float sig = 1.0f / (1.0f + expf(-g)), silu = g * sig;
    du = d * silu;
    dg = d * u * sig * (1.0f + g * (1.0f - sig));
}

__global__ void swiglu_fwd_kernel(float *out, dsk_half_out out_h, const float *g, const float *u, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float y = swiglu1(g[i], u[i]);
        out[i] = y;
        out_h.put(i, y);
    }
}

__global__ void swiglu_fwd_kernel4(float4 *out, dsk_half_out out_h, const float4 *g, const float4 *u, size_t n4)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        const float4 gv = g[i], uv = u[i];
        const float4 y = make_float4(swiglu1(gv.x, uv.x), swiglu1(gv.y, uv.y), swiglu1(gv.z, uv.z),
                                     swiglu1(gv.w, uv.w));
        out[i] = y;
        out_h.put4(4 * i, y);
    }
}

__global__ void swiglu_bwd_kernel(float *dg, float *du, dsk_half_out dg_h, dsk_half_out du_h, const float *dout,
                                  const float *g, const float *u, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float dgi, dui;
        swiglu1_bwd(dout[i], g[i], u[i], dgi, dui);
        du[i] = dui;
        dg[i] = dgi;
        du_h.put(i, dui);
        dg_h.put(i, dgi);
    }
}

__global__ void swiglu_bwd_kernel4(float4 *dg, float4 *du, dsk_half_out dg_h, dsk_half_out du_h, const float4 *dout,
                                   const float4 *g, const float4 *u, size_t n4)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        const float4 d = dout[i], gv = g[i], uv = u[i];
        float4 a, b;   /* dg, du */
        swiglu1_bwd(d.x, gv.x, uv.x, a.x, b.x);
        swiglu1_bwd(d.y, gv.y, uv.y, a.y, b.y);
        swiglu1_bwd(d.z, gv.z, uv.z, a.z, b.z);
        swiglu1_bwd(d.w, gv.w, uv.w, a.w, b.w);
        du[i] = b;   /* du first: where dg and du are one array, dg stays (as above) */
        dg[i] = a;
        du_h.put4(4 * i, b);
        dg_h.put4(4 * i, a);
    }
}

void dsk_cuda_swiglu_fwd(dsk_backend *be, float *out, const float *g, const float *u, size_t n)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (!n)
        return;
    dsk_half_out h;
    dsk_cuda_half_produce(cb, n, out, &h, NULL, NULL);
    const void *arrays[] = {out, g, u};
    if (dsk_vec4_ok(n, arrays, 3, h, h))
        swiglu_fwd_kernel4<<<dsk_cuda_blocks(cb, n / 4, THREADS), THREADS, 0, cb->stream>>>(
            (float4 *)out, h, (const float4 *)g, (const float4 *)u, n / 4);
    else
        swiglu_fwd_kernel<<<dsk_cuda_blocks(cb, n, THREADS), THREADS, 0, cb->stream>>>(out, h, g, u, n);
    LAUNCHED(cb, "swiglu_fwd");
}

void dsk_cuda_swiglu_bwd(dsk_backend *be, float *dg, float *du, const float *dout, const float *g, const float *u,
                         size_t n)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (!n)
        return;
    dsk_half_out hg = {NULL, 0}, hu = {NULL, 0};
    if (dg != du)
        dsk_cuda_half_produce(cb, n, dg, &hg, du, &hu);
    const void *arrays[] = {dg, du, dout, g, u};
    if (dsk_vec4_ok(n, arrays, 5, hg, hu))
        swiglu_bwd_kernel4<<<dsk_cuda_blocks(cb, n / 4, THREADS), THREADS, 0, cb->stream>>>(
            (float4 *)dg, (float4 *)du, hg, hu, (const float4 *)dout, (const float4 *)g, (const float4 *)u, n / 4);
    else
        swiglu_bwd_kernel<<<dsk_cuda_blocks(cb, n, THREADS), THREADS, 0, cb->stream>>>(dg, du, hg, hu, dout, g, u,
                                                                                     n);
    LAUNCHED(cb, "swiglu_bwd");
}
