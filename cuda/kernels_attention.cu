/* Attention: training forward and backward with the probabilities
 * materialized ([B, H, T, T], as the interface's backward wants), and a
 * fused decoding kernel.
 *
 * Training: the T x T products of every (row, head) are one batched
 * cuBLAS call each (pointer arrays built on the device; GQA maps query
 * head h to key head h / group), the masked softmax and its backward are
 * a block per query row.  The key/value gradients of a group's query
 * heads go in group passes, one query head of each group per pass, so
 * no two products of a call write the same slice and the sum keeps a
 * fixed order.  The products weighted by the hybrid alpha (which lives
 * on the device) read their scalars from device memory.
 *
 * Decoding: a block per (query, head), warps taking keys in turn with an
 * online softmax (global and local state side by side for hybrid
 * layers), merged across warps at the end: nothing T x T is stored. */
#include "cuda_internal.cuh"

/* c[0] scale, c[1] 0, c[2] 1, c[3] alpha, c[4] 1 - alpha (alpha: 1 global, 0 local). */
enum { C_SCALE, C_ZERO, C_ONE, C_A, C_1MA, N_CONSTS = 8 };

__global__ void attn_consts_kernel(float *c, const float *alpha, int kind, float scale)
{
    float a = kind == DSK_ATTN_GLOBAL ? 1.0f : kind == DSK_ATTN_LOCAL ? 0.0f : alpha[0];
    c[C_SCALE] = scale;
    c[C_ZERO] = 0;
    c[C_ONE] = 1;
    c[C_A] = a;
    c[C_1MA] = 1 - a;
}

/* Entry e of a batched call is (b, x): b = b0 + e / X, x = e % X, query
 * head h = x * hmul + hadd, key head h / group.  Each array's pointer:
 * base + (b - b_base) * sb + h * sh + (h / group) * skv. */
typedef struct ptr_spec {
    const float *base;
    long long sb, sh, skv;
    int b_base;
} ptr_spec;
enum { MAX_ARRAYS = 8 };
typedef struct ptr_job {
    ptr_spec spec[MAX_ARRAYS];
    const float **out[MAX_ARRAYS];
    int n_arrays, entries, b0, X, hmul, hadd, group;
} ptr_job;

__global__ void fill_ptrs_kernel(ptr_job job)
{
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= job.entries)
        return;
    int b = job.b0 + e / job.X, x = e % job.X, h = x * job.hmul + job.hadd, kvh = h / job.group;
    for (int a = 0; a < job.n_arrays; a++) {
        const ptr_spec *s = &job.spec[a];
        job.out[a][e] = s->base + (long long)(b - s->b_base) * s->sb + (long long)h * s->sh + (long long)kvh * s->skv;
    }
}

static ptr_spec spec(const float *base, long long sb, long long sh, long long skv, int b_base)
{
    ptr_spec s = {base, sb, sh, skv, b_base};
    return s;
}

static void fill_ptrs(dsk_cuda *cb, ptr_job *job)
{
    int threads = 128;
    fill_ptrs_kernel<<<(job->entries + threads - 1) / threads, threads, 0, cb->stream>>>(*job);
    LAUNCHED(cb, "attention (pointer arrays)");
}

/* Row-major batched C = alpha op(A) op(B) + beta C.  dev_scalars: alpha
 * and beta point to device memory (the hybrid weights), else to the host. */
static void gemm_batched(dsk_cuda *cb, int dev_scalars, int ta, int tb, int M, int N, int K, const float *alpha,
                         const float **A, int lda, const float **B, int ldb, const float *beta, const float **C,
                         int ldc, int count)
{
    CUBLAS_CHECK(dsk_cublas.SetPointerMode(cb->blas, dev_scalars ? CUBLAS_POINTER_MODE_DEVICE
                                                                 : CUBLAS_POINTER_MODE_HOST));
    CUBLAS_CHECK(dsk_cublas.SgemmBatched(cb->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N,
                                         M, K, alpha, B, ldb, A, lda, beta, (float *const *)C, ldc, count));
    if (dev_scalars)
        CUBLAS_CHECK(dsk_cublas.SetPointerMode(cb->blas, CUBLAS_POINTER_MODE_HOST));
    if (cb->sync_each)
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));
}

static int row_threads(int T)
{
    int t = 32;
    while (t < T && t < 256)
        t *= 2;
    return t;
}

/* Row (b, h, i): the raw scores (in probs_g, or probs_l for a local
 * layer) become the masked softmaxes, zeros outside [first, i]. Each
 * thread reads and writes only its own columns, so in place is safe. */
__global__ void attn_softmax_kernel(float *pg, float *pl, const int32_t *pos, int T, int H, int window, int use_g,
                                    int use_l)
{
    __shared__ float sh[32];
    size_t row = blockIdx.x;
    int i = (int)(row % T), b = (int)(row / T / H);
    int p = pos[(size_t)b * T + i];
    int fg = attn_first(i, p, 0, window), fl = attn_first(i, p, 1, window);
    float *S = (use_g ? pg : pl) + row * T;
    float mg = -INFINITY, ml = -INFINITY;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) {
        float s = S[j];
        if (j >= fg)
            mg = fmaxf(mg, s);
        if (j >= fl)
            ml = fmaxf(ml, s);
    }
    mg = block_max(mg, sh);
    ml = block_max(ml, sh);
    float sg = 0, sl = 0;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) {
        float s = S[j];
        if (j >= fg)
            sg += expf(s - mg);
        if (j >= fl)
            sl += expf(s - ml);
    }
    sg = block_sum(sg, sh);
    sl = block_sum(sl, sh);
    float ig = 1.0f / sg, il = 1.0f / sl;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        float s = j <= i ? S[j] : 0.0f;
        if (use_l)
            pl[row * T + j] = j >= fl && j <= i ? expf(s - ml) * il : 0.0f;
        if (use_g)
            pg[row * T + j] = j >= fg && j <= i ? expf(s - mg) * ig : 0.0f;
    }
}

void dsk_cuda_attention_fwd(dsk_backend *be, float *out, float *probs_g, float *probs_l, const float *q,
                            const float *k, const float *v, const int32_t *pos, const float *alpha,
                            const dsk_attn_shape *s)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    int B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd, group = H / KV;
    long long qs = (long long)H * hd, ks = (long long)KV * hd, TT = (long long)T * T;
    int use_g = s->kind != DSK_ATTN_LOCAL, use_l = s->kind != DSK_ATTN_GLOBAL;
    int BH = B * H;
    if (B <= 0 || T <= 0 || H <= 0)
        return;
    enum { Q, K, V, S, O, PG, PL, N_ARR };
    char *scr = (char *)dsk_cuda_scratch(cb, 256 + (size_t)N_ARR * BH * sizeof(float *));
    float *c = (float *)scr;
    const float **arr = (const float **)(scr + 256);
    attn_consts_kernel<<<1, 1, 0, cb->stream>>>(c, alpha, s->kind, 1.0f / sqrtf((float)hd));
    LAUNCHED(cb, "attention_fwd");

    ptr_job job = {};
    job.entries = BH, job.b0 = 0, job.X = H, job.hmul = 1, job.hadd = 0, job.group = group;
    const float *P0 = use_g ? probs_g : probs_l;
    ptr_spec specs[N_ARR] = {spec(q, T * qs, hd, 0, 0),  spec(k, T * ks, 0, hd, 0), spec(v, T * ks, 0, hd, 0),
                             spec(P0, H * TT, TT, 0, 0), spec(out, T * qs, hd, 0, 0), spec(probs_g, H * TT, TT, 0, 0),
                             spec(probs_l, H * TT, TT, 0, 0)};
    for (int a = 0; a < N_ARR; a++) {
        if ((a == PG && !use_g) || (a == PL && !use_l))
            continue;
        job.spec[job.n_arrays] = specs[a];
        job.out[job.n_arrays++] = arr + (size_t)a * BH;
    }
    fill_ptrs(cb, &job);
#define ARR(a) (arr + (size_t)(a) * BH)

    CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)B * T * qs * sizeof(float), cb->stream));
    const float scale = 1.0f / sqrtf((float)hd), zero = 0;
    /* S = scale Q Kᵀ */
    gemm_batched(cb, 0, 0, 1, T, T, hd, &scale, ARR(Q), (int)qs, ARR(K), (int)ks, &zero, ARR(S), T, BH);
    attn_softmax_kernel<<<(unsigned)((size_t)BH * T), row_threads(T), 0, cb->stream>>>(probs_g, probs_l, pos, T, H,
                                                                                        s->window, use_g, use_l);
    LAUNCHED(cb, "attention_fwd (softmax)");
    /* out = alpha Pg V + (1 - alpha) Pl V */
    if (use_g)
        gemm_batched(cb, 1, 0, 0, T, hd, T, c + C_A, ARR(PG), T, ARR(V), (int)ks, c + C_ONE, ARR(O), (int)qs, BH);
    if (use_l)
        gemm_batched(cb, 1, 0, 0, T, hd, T, c + C_1MA, ARR(PL), T, ARR(V), (int)ks, c + C_ONE, ARR(O), (int)qs, BH);
#undef ARR
}

/* Row (b, h, i) of the chunk: dP (in place) becomes dS, the gradient of
 * the scores: alpha Pg (dP - rowdot_g) + (1 - alpha) Pl (dP - rowdot_l)
 * on each part's keys; the row's share of d out / d alpha into da_part. */
__global__ void attn_softmax_bwd_kernel(float *dP, float *da_part, const float *pg, const float *pl,
                                        const int32_t *pos, const float *c, int b0, int T, int H, int window,
                                        int use_g, int use_l)
{
    __shared__ double shd[32];
    __shared__ float sh[32];
    size_t r = blockIdx.x, grow = (size_t)b0 * H * T + r;
    int i = (int)(r % T), b = b0 + (int)(r / T / H);
    int p = pos[(size_t)b * T + i];
    int fg = attn_first(i, p, 0, window), fl = attn_first(i, p, 1, window);
    float *d = dP + r * T;
    const float *G = use_g ? pg + grow * T : NULL, *L = use_l ? pl + grow * T : NULL;
    float dot_g = 0, dot_l = 0;
    double da = 0;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) {
        float dj = d[j];
        if (use_g && j >= fg)
            dot_g += G[j] * dj;
        if (use_l && j >= fl)
            dot_l += L[j] * dj;
        if (use_g && use_l)
            da += (double)((G[j] - L[j]) * dj);
    }
    dot_g = block_sum(dot_g, sh);
    dot_l = block_sum(dot_l, sh);
    if (use_g && use_l)
        da = block_sum(da, shd);
    float a = c[C_A], b1 = c[C_1MA];
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        float dj = d[j], val = 0;
        if (use_g && j >= fg && j <= i)
            val += a * G[j] * (dj - dot_g);
        if (use_l && j >= fl && j <= i)
            val += b1 * L[j] * (dj - dot_l);
        d[j] = val;
    }
    if (use_g && use_l && threadIdx.x == 0)
        da_part[grow] = (float)da;
}

__global__ void attn_dalpha_kernel(float *dalpha, const float *part, size_t n)
{
    __shared__ double sh[32];
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        s += part[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        dalpha[0] += (float)s;
}

void dsk_cuda_attention_bwd(dsk_backend *be, float *dq, float *dk, float *dv, float *dalpha, const float *dout,
                            const float *q, const float *k, const float *v, const float *probs_g,
                            const float *probs_l, const int32_t *pos, const float *alpha, const dsk_attn_shape *s)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    int B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd, group = H / KV;
    long long qs = (long long)H * hd, ks = (long long)KV * hd, TT = (long long)T * T;
    int use_g = s->kind != DSK_ATTN_LOCAL, use_l = s->kind != DSK_ATTN_GLOBAL;
    if (B <= 0 || T <= 0 || H <= 0)
        return;
    /* dP for a chunk of batch rows at a time: at most ~256 MiB of scratch. */
    size_t per_b = (size_t)H * TT * sizeof(float);
    int Bc = (int)((256u << 20) / (per_b ? per_b : 1));
    Bc = Bc < 1 ? 1 : Bc > B ? B : Bc;
    size_t da_len = use_g && use_l ? (size_t)B * H * T : 0;
    enum { DO, V_, DP, K_, DQ, N1 };
    enum { DS, Q_, DK, PG, PL, DO2, DV, N2 };
    size_t n_ptrs = (size_t)(N1 + N2) * Bc * H;
    size_t off_da = 256, off_dp = off_da + ((da_len * sizeof(float) + 255) & ~(size_t)255);
    size_t off_ptr = off_dp + (((size_t)Bc * per_b + 255) & ~(size_t)255);
    char *scr = (char *)dsk_cuda_scratch(cb, off_ptr + n_ptrs * sizeof(float *));
    float *c = (float *)scr, *da_part = (float *)(scr + off_da), *dP = (float *)(scr + off_dp);
    const float **arr1 = (const float **)(scr + off_ptr), **arr2 = arr1 + (size_t)N1 * Bc * H;
    attn_consts_kernel<<<1, 1, 0, cb->stream>>>(c, alpha, s->kind, 1.0f / sqrtf((float)hd));
    LAUNCHED(cb, "attention_bwd");
    CUDA_CHECK(cudaMemsetAsync(dq, 0, (size_t)B * T * qs * sizeof(float), cb->stream));
    CUDA_CHECK(cudaMemsetAsync(dk, 0, (size_t)B * T * ks * sizeof(float), cb->stream));
    CUDA_CHECK(cudaMemsetAsync(dv, 0, (size_t)B * T * ks * sizeof(float), cb->stream));
    const float scale = 1.0f / sqrtf((float)hd), zero = 0, one = 1;
    for (int b0 = 0; b0 < B; b0 += Bc) {
        int nb = B - b0 < Bc ? B - b0 : Bc, E1 = nb * H, E2 = nb * KV;
        size_t stride1 = (size_t)Bc * H;
#define A1(a) (arr1 + (size_t)(a) * stride1)
#define A2(a) (arr2 + (size_t)(a) * stride1)
        ptr_job job = {};
        job.entries = E1, job.b0 = b0, job.X = H, job.hmul = 1, job.hadd = 0, job.group = group;
        job.n_arrays = N1;
        job.spec[DO] = spec(dout, T * qs, hd, 0, 0);
        job.spec[V_] = spec(v, T * ks, 0, hd, 0);
        job.spec[DP] = spec(dP, H * TT, TT, 0, b0);
        job.spec[K_] = spec(k, T * ks, 0, hd, 0);
        job.spec[DQ] = spec(dq, T * qs, hd, 0, 0);
        for (int a = 0; a < N1; a++)
            job.out[a] = A1(a);
        fill_ptrs(cb, &job);
        /* dP = dO Vᵀ, the gradient of the mixed probabilities */
        gemm_batched(cb, 0, 0, 1, T, T, hd, &one, A1(DO), (int)qs, A1(V_), (int)ks, &zero, A1(DP), T, E1);
        attn_softmax_bwd_kernel<<<(unsigned)((size_t)E1 * T), row_threads(T), 0, cb->stream>>>(
            dP, da_part, probs_g, probs_l, pos, c, b0, T, H, s->window, use_g, use_l);
        LAUNCHED(cb, "attention_bwd (softmax)");
        /* dQ = scale dS K */
        gemm_batched(cb, 0, 0, 0, T, hd, T, &scale, A1(DP), T, A1(K_), (int)ks, &one, A1(DQ), (int)qs, E1);
        for (int g = 0; g < group; g++) {
            ptr_job j2 = {};
            j2.entries = E2, j2.b0 = b0, j2.X = KV, j2.hmul = group, j2.hadd = g, j2.group = group;
            j2.n_arrays = N2;
            j2.spec[DS] = spec(dP, H * TT, TT, 0, b0);
            j2.spec[Q_] = spec(q, T * qs, hd, 0, 0);
            j2.spec[DK] = spec(dk, T * ks, 0, hd, 0);
            j2.spec[PG] = spec(use_g ? probs_g : probs_l, H * TT, TT, 0, 0);
            j2.spec[PL] = spec(use_l ? probs_l : probs_g, H * TT, TT, 0, 0);
            j2.spec[DO2] = spec(dout, T * qs, hd, 0, 0);
            j2.spec[DV] = spec(dv, T * ks, 0, hd, 0);
            for (int a = 0; a < N2; a++)
                j2.out[a] = A2(a);
            fill_ptrs(cb, &j2);
            /* dK += scale dSᵀ Q;  dV += alpha Pgᵀ dO + (1 - alpha) Plᵀ dO */
            gemm_batched(cb, 0, 1, 0, T, hd, T, &scale, A2(DS), T, A2(Q_), (int)qs, &one, A2(DK), (int)ks, E2);
            if (use_g)
                gemm_batched(cb, 1, 1, 0, T, hd, T, c + C_A, A2(PG), T, A2(DO2), (int)qs, c + C_ONE, A2(DV), (int)ks,
                             E2);
            if (use_l)
                gemm_batched(cb, 1, 1, 0, T, hd, T, c + C_1MA, A2(PL), T, A2(DO2), (int)qs, c + C_ONE, A2(DV),
                             (int)ks, E2);
        }
#undef A1
#undef A2
    }
    if (use_g && use_l && dalpha) {
        attn_dalpha_kernel<<<1, 1024, 0, cb->stream>>>(dalpha, da_part, da_len);
        LAUNCHED(cb, "attention_bwd (dalpha)");
    }
}

/* ---- decoding ---- */

enum { DEC_WARPS = 8 };

__global__ void attn_decode_kernel(float *out, const float *q, const float *k_cache, const float *v_cache,
                                   size_t seq_stride, const int32_t *seq, const int32_t *pos, int H, int KV, int hd,
                                   int use_g, int use_l, int window, const float *c, float scale)
{
    extern __shared__ float sm[];
    __shared__ float m_sh[2][DEC_WARPS], l_sh[2][DEC_WARPS];
    float *qv = sm, *acc = sm + hd;   /* acc [2][DEC_WARPS][hd] */
    int r = blockIdx.x / H, h = blockIdx.x % H, group = H / KV;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int i = pos[r];
    size_t ks = (size_t)KV * hd;
    const float *kb = k_cache + (size_t)seq[r] * seq_stride + (size_t)(h / group) * hd;
    const float *vb = v_cache + (size_t)seq[r] * seq_stride + (size_t)(h / group) * hd;
    const float *qh = q + ((size_t)r * H + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x)
        qv[d] = qh[d];
    for (int d = threadIdx.x; d < 2 * DEC_WARPS * hd; d += blockDim.x)
        acc[d] = 0;
    __syncthreads();
    int fl = attn_first(i, i, 1, window), first = use_g ? 0 : fl;
    float mg = -INFINITY, lg = 0, ml = -INFINITY, ll = 0;
    float *ag = acc + (size_t)w * hd, *al = acc + (size_t)(DEC_WARPS + w) * hd;
    for (int j = first + w; j <= i; j += DEC_WARPS) {
        const float *kj = kb + (size_t)j * ks, *vj = vb + (size_t)j * ks;
        float sc = 0;
        for (int d = lane; d < hd; d += 32)
            sc += qv[d] * kj[d];
        sc = warp_sum(sc) * scale;
        if (use_g) {
            float mn = fmaxf(mg, sc), corr = expf(mg - mn), p = expf(sc - mn);
            lg = lg * corr + p;
            for (int d = lane; d < hd; d += 32)
                ag[d] = ag[d] * corr + p * vj[d];
            mg = mn;
        }
        if (use_l && j >= fl) {
            float mn = fmaxf(ml, sc), corr = expf(ml - mn), p = expf(sc - mn);
            ll = ll * corr + p;
            for (int d = lane; d < hd; d += 32)
                al[d] = al[d] * corr + p * vj[d];
            ml = mn;
        }
    }
    if (lane == 0) {
        m_sh[0][w] = mg;
        l_sh[0][w] = lg;
        m_sh[1][w] = ml;
        l_sh[1][w] = ll;
    }
    __syncthreads();
    float wgt[2] = {c[C_A], c[C_1MA]};
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0;
        for (int part = 0; part < 2; part++) {
            if (part == 0 ? !use_g : !use_l)
                continue;
            float M = -INFINITY, L = 0, num = 0;
            for (int x = 0; x < DEC_WARPS; x++)
                M = fmaxf(M, m_sh[part][x]);
            for (int x = 0; x < DEC_WARPS; x++) {
                float f = expf(m_sh[part][x] - M);   /* 0 for a warp that saw no key */
                L += l_sh[part][x] * f;
                num += acc[(size_t)(part * DEC_WARPS + x) * hd + d] * f;
            }
            o += wgt[part] * (num / L);
        }
        out[((size_t)r * H + h) * hd + d] = o;
    }
}

void dsk_cuda_attention_decode(dsk_backend *be, float *out, const float *q, const float *k_cache,
                               const float *v_cache, size_t seq_stride, const int32_t *seq, const int32_t *pos, int n,
                               const float *alpha, const dsk_attn_shape *s)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    int H = s->H, hd = s->hd;
    if (n <= 0 || H <= 0)
        return;
    size_t smem = (size_t)(1 + 2 * DEC_WARPS) * hd * sizeof(float);
    if (smem > 48 * 1024)
        dsk_die(EX_SOFTWARE, "cuda: attention_decode: head size %d is over this kernel's %d", hd,
                (int)(48 * 1024 / sizeof(float) / (1 + 2 * DEC_WARPS)));
    float *c = (float *)dsk_cuda_scratch(cb, 256);
    attn_consts_kernel<<<1, 1, 0, cb->stream>>>(c, alpha, s->kind, 1.0f / sqrtf((float)hd));
    LAUNCHED(cb, "attention_decode");
    attn_decode_kernel<<<(unsigned)((size_t)n * H), 32 * DEC_WARPS, smem, cb->stream>>>(
        out, q, k_cache, v_cache, seq_stride, seq, pos, H, s->KV, hd, s->kind != DSK_ATTN_LOCAL,
        s->kind != DSK_ATTN_GLOBAL, s->window, c, 1.0f / sqrtf((float)hd));
    LAUNCHED(cb, "attention_decode");
}
