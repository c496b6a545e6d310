/* The backend's matrix products through cuBLASLt.
 *
 * cublasLtMatmul runs a plan made beforehand: the operation's
 * descriptor, the matrices' layouts and an algorithm the library's
 * heuristic picks for them.  Making one costs tens of microseconds, so
 * the plans are kept per shape (the transposes, M, N, K, the operands'
 * type and the pointers' alignment) in a small cache, 4-way set
 * associative with the least recently used plan out: a training step
 * meets a few dozen dense shapes again and again.
 *
 * The MoE experts' products are ragged: their rows change every step.
 * Planned per exact shape, nearly every one of them would query the
 * heuristic (16 experts x 8 products a layer at moe-1.3b, each tens of
 * microseconds of host time while the GPU waits), and they would push
 * the dense shapes' plans out of the cache.  gemm_grouped asks for
 * ragged products: the plan is the one of the shape rounded up to a
 * quarter octave in each dimension (ragged_dim), run on layouts of the
 * product's own shape, so that a few dozen plans serve every step.  A
 * shape whose rounded plan refuses it gets a plan of its own.
 *
 * Determinism: a shape always runs the heuristic's first algorithm
 * (the heuristic is a model, not a timing, so a plan made again after
 * eviction is the same plan), and split-K is only allowed with its
 * partial sums reduced out of place in a separate step (reduction
 * schemes COMPUTE_TYPE and OUTPUT_TYPE), never added into the output
 * under counters (INPLACE): the same shape gives the same bits.
 *
 * Row-major memory is column-major transposed: C[M,N] = op(A) op(B) is,
 * for cuBLASLt, Cᵀ (N x M) = op(B)ᵀ op(A)ᵀ, so its "A" is our B and its
 * "B" our A, each described as the column-major matrix its row-major
 * memory is (the same swap cuda_backend.cu gives cuBLAS).  Scalars are
 * float32 host values (pointer mode host, the default); the output is
 * float32 in place (C and D the same matrix). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.cuh"

/* Split-K's workspace, and the room some Hopper kernels want (NVIDIA
 * suggests 32 MiB there). */
#define LT_WORKSPACE ((size_t)32 << 20)
#define LT_SETS 128
#define LT_WAYS 4

typedef struct lt_key {
    int ta, tb, M, N, K;
    int type;                        /* cudaDataType of A and B */
    int align_a, align_b, align_c;   /* bytes (up to 16) of cuBLASLt's A (our B), B (our A), C */
} lt_key;                            /* ints only: no padding, memcmp compares it */

typedef struct lt_plan {
    lt_key key;
    unsigned long long last_use;     /* 0: an empty slot */
    int use_lt;                      /* 0: no algorithm for the shape, cuBLAS does it */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

struct dsk_cuda_lt {
    cublasLtHandle_t handle;
    void *work;                      /* device, 256-byte aligned as cudaMalloc's are */
    size_t work_len;
    void *side_work[DSK_CUDA_SIDE_STREAMS];   /* the side streams' own, work_len each (made on demand) */
    unsigned long long tick;
    int said;                        /* verbose: a shape's fallback was told */
    long plans_made;                 /* heuristic queries, for the tests */
    lt_plan plans[LT_SETS][LT_WAYS];
};

/* The largest power of two (up to 16) the address is a multiple of: the
 * heuristic assumes 256 unless told, and an algorithm picked for aligned
 * operands may not run on an expert's block inside a buffer.  Capped at
 * 16 bytes (what the tensor-core kernels' vector loads need), so that
 * an operand 256-aligned and one 16-aligned run the same algorithm, the
 * same bits: a weight's 16-bit copy sits at its offset in the weights'
 * copy (16-byte aligned or not used, weights_copy.cu), a fresh
 * conversion at the start of a cudaMalloc'ed buffer.  On an H200 the two
 * together made training with the copies and without
 * (DSK_CUDA_HALF_CACHE=0) give the same weights bit for bit. */
static int align_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    a &= ~a + 1;
    return a == 0 || a > 16 ? 16 : (int)a;
}

static uint32_t key_hash(const lt_key *k)
{
    const unsigned char *b = (const unsigned char *)k;
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < sizeof *k; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static void plan_free(lt_plan *p)
{
    if (p->op)
        CUBLAS_CHECK(dsk_cublaslt.MatmulDescDestroy(p->op));
    if (p->a)
        CUBLAS_CHECK(dsk_cublaslt.MatrixLayoutDestroy(p->a));
    if (p->b)
        CUBLAS_CHECK(dsk_cublaslt.MatrixLayoutDestroy(p->b));
    if (p->c)
        CUBLAS_CHECK(dsk_cublaslt.MatrixLayoutDestroy(p->c));
    p->op = NULL;
    p->a = p->b = p->c = NULL;
    p->use_lt = 0;
}

static const char *type_name(int t)
{
    return t == CUDA_R_16BF ? "bf16" : t == CUDA_R_16F ? "fp16" : "fp32";
}

/* Says once (DSK_CUDA_VERBOSE=1) that a shape goes through cuBLAS. */
static void say_fallback(dsk_cuda *cb, const lt_key *k, const char *why)
{
    if (!cb->verbose || cb->lt->said)
        return;
    cb->lt->said = 1;
    fprintf(stderr, "cuda: cuBLASLt: %s for gemm %dx%dx%d %c%c %s: cuBLAS does it (said once)\n", why, k->M, k->N,
            k->K, k->ta ? 'T' : 'N', k->tb ? 'T' : 'N', type_name(k->type));
}

/* The layouts of row-major C[M,N] = op(A) op(B) as cuBLASLt sees it.
 * Our B: [K,N] row-major is column-major N x K (leading dimension N),
 * transposed [N,K] is K x N (K).  Our A likewise with M.  C: N x M. */
static void layouts_make(int ta, int tb, int M, int N, int K, cudaDataType t, cublasLtMatrixLayout_t *a,
                         cublasLtMatrixLayout_t *b, cublasLtMatrixLayout_t *c)
{
    uint64_t m = (uint64_t)M, n = (uint64_t)N, k = (uint64_t)K;
    CUBLAS_CHECK(dsk_cublaslt.MatrixLayoutCreate(a, t, tb ? k : n, tb ? n : k, (int64_t)(tb ? k : n)));
    CUBLAS_CHECK(dsk_cublaslt.MatrixLayoutCreate(b, t, ta ? m : k, ta ? k : m, (int64_t)(ta ? m : k)));
    CUBLAS_CHECK(dsk_cublaslt.MatrixLayoutCreate(c, CUDA_R_32F, n, m, (int64_t)n));
}

static void plan_make(dsk_cuda *cb, lt_plan *p)
{
    dsk_cuda_lt *lt = cb->lt;
    const lt_key *k = &p->key;
    cudaDataType t = (cudaDataType)k->type;
    /* bf16 / fp16 operands accumulate in float32 on tensor cores; fp32
     * ones stay fp32 unless DSK_CUDA_TF32=1 (cuBLASLt ignores cuBLAS's
     * math mode: the compute type says it). */
    cublasComputeType_t compute = t == CUDA_R_32F && cb->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    CUBLAS_CHECK(dsk_cublaslt.MatmulDescCreate(&p->op, compute, CUDA_R_32F));
    int32_t op_a = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = k->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(dsk_cublaslt.MatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
    CUBLAS_CHECK(dsk_cublaslt.MatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
    layouts_make(k->ta, k->tb, k->M, k->N, k->K, t, &p->a, &p->b, &p->c);

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(dsk_cublaslt.MatmulPreferenceCreate(&pref));
    uint64_t work = lt->work_len;
    uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    uint32_t al_a = (uint32_t)k->align_a, al_b = (uint32_t)k->align_b, al_c = (uint32_t)k->align_c;
    const struct {
        cublasLtMatmulPreferenceAttributes_t attr;
        const void *value;
        size_t len;
    } prefs[] = {
        {CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &work, sizeof work},
        {CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof schemes},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c},   /* D: our C, C: its addend */
    };
    for (size_t i = 0; i < sizeof prefs / sizeof *prefs; i++)
        CUBLAS_CHECK(dsk_cublaslt.MatmulPreferenceSetAttribute(pref, prefs[i].attr, prefs[i].value, prefs[i].len));
    cublasLtMatmulHeuristicResult_t r;
    memset(&r, 0, sizeof r);
    int found = 0;
    cublasStatus_t s = dsk_cublaslt.MatmulAlgoGetHeuristic(lt->handle, p->op, p->a, p->b, p->c, p->c, pref, 1, &r,
                                                           &found);
    CUBLAS_CHECK(dsk_cublaslt.MatmulPreferenceDestroy(pref));
    if (s != CUBLAS_STATUS_SUCCESS || found < 1 || r.state != CUBLAS_STATUS_SUCCESS) {
        plan_free(p);
        char why[160];
        snprintf(why, sizeof why, "no algorithm (%s)",
                 dsk_cublas.GetStatusString(s != CUBLAS_STATUS_SUCCESS ? s : r.state));
        say_fallback(cb, k, why);
        return;
    }
    p->algo = r.algo;
    p->use_lt = 1;
}

/* The shape's plan, made on a miss in place of its set's least recently
 * used one.  Descriptors are host memory that cublasLtMatmul reads when
 * it queues the product, so an evicted plan can go at once. */
static lt_plan *plan_for(dsk_cuda *cb, const lt_key *k)
{
    dsk_cuda_lt *lt = cb->lt;
    lt_plan *set = lt->plans[key_hash(k) % LT_SETS], *victim = &set[0];
    for (int w = 0; w < LT_WAYS; w++) {
        lt_plan *p = &set[w];
        if (p->last_use && !memcmp(&p->key, k, sizeof *k)) {
            p->last_use = ++lt->tick;
            return p;
        }
        if (p->last_use < victim->last_use)
            victim = p;
    }
    dsk_cuda_prof_scope timed(cb, "cuBLASLt plan made");
    plan_free(victim);
    victim->key = *k;
    plan_make(cb, victim);
    lt->plans_made++;
    victim->last_use = ++lt->tick;
    return victim;
}

/* A ragged product's dimension, rounded up to a quarter octave: 1900
 * and 2000 rows both plan as 2048, 1700 as 1792 (at most 25% more than
 * the product has, so the algorithm picked suits it).  Up to 64: as it is. */
static int ragged_dim(int x)
{
    if (x <= 64)
        return x;
    int grain = 1 << (31 - __builtin_clz((unsigned)x) - 2);
    return (int)(((long long)x + grain - 1) / grain * grain);
}

int dsk_cuda_lt_side_work(dsk_cuda *cb, int n)
{
    dsk_cuda_lt *lt = cb->lt;
    if (!lt || n > DSK_CUDA_SIDE_STREAMS)
        return 0;
    for (int i = 0; i < n; i++)
        if (!lt->side_work[i] && lt->work_len && cudaMalloc(&lt->side_work[i], lt->work_len) != cudaSuccess) {
            (void)cudaGetLastError();
            lt->side_work[i] = NULL;
            return 0;
        }
    return 1;
}

int dsk_cuda_lt_gemm(dsk_cuda *cb, int side, int ta, int tb, int M, int N, int K, float alpha, const void *A,
                     const void *B, cudaDataType t, float beta, const float *Cin, float *C, int ragged)
{
    dsk_cuda_lt *lt = cb->lt;
    cudaStream_t stream = side < 0 ? cb->stream : cb->side[side];
    void *work = side < 0 ? lt->work : lt->side_work[side];
    int align_c = align_of(C) < align_of(Cin) ? align_of(C) : align_of(Cin);
    lt_key k = {ta != 0, tb != 0, M, N, K, (int)t, align_of(B), align_of(A), align_c};
    if (ragged) {
        k.M = ragged_dim(M), k.N = ragged_dim(N), k.K = ragged_dim(K);
        ragged = k.M != M || k.N != N || k.K != K;
    }
    lt_plan *p = plan_for(cb, &k);
    if (!p->use_lt)
        return ragged ? dsk_cuda_lt_gemm(cb, side, ta, tb, M, N, K, alpha, A, B, t, beta, Cin, C, 0) : 0;
    if (ragged) {
        /* The plan's algorithm on layouts of the product's own shape
         * (destroyed at once: cublasLtMatmul reads them when it queues
         * the product). */
        cublasLtMatrixLayout_t la, lb, lc;
        layouts_make(ta, tb, M, N, K, t, &la, &lb, &lc);
        cublasStatus_t s = dsk_cublaslt.Matmul(lt->handle, p->op, &alpha, B, la, A, lb, &beta, Cin, lc, C, lc,
                                               &p->algo, work, lt->work_len, stream);
        CUBLAS_CHECK(dsk_cublaslt.MatrixLayoutDestroy(la));
        CUBLAS_CHECK(dsk_cublaslt.MatrixLayoutDestroy(lb));
        CUBLAS_CHECK(dsk_cublaslt.MatrixLayoutDestroy(lc));
        if (s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_INVALID_VALUE)
            return dsk_cuda_lt_gemm(cb, side, ta, tb, M, N, K, alpha, A, B, t, beta, Cin, C, 0);   /* a plan of its own */
        CUBLAS_CHECK(s);
        return 1;
    }
    cublasStatus_t s = dsk_cublaslt.Matmul(lt->handle, p->op, &alpha, B, p->a, A, p->b, &beta, Cin, p->c, C, p->c,
                                           &p->algo, work, lt->work_len, stream);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_INVALID_VALUE) {
        /* Refused before anything was queued: this shape goes to cuBLAS from now on. */
        plan_free(p);
        char why[160];
        snprintf(why, sizeof why, "cublasLtMatmul refused (%s)", dsk_cublas.GetStatusString(s));
        say_fallback(cb, &k, why);
        return 0;
    }
    CUBLAS_CHECK(s);
    return 1;
}

extern "C" long dsk_cuda_lt_plans_made(dsk_backend *be)
{
    if (!be || strcmp(be->name, "cuda") || !dsk_cuda_of(be)->lt)
        return -1;
    return dsk_cuda_of(be)->lt->plans_made;
}

dsk_cuda_lt *dsk_cuda_lt_new(dsk_cuda *cb)
{
    char why[512];
    if (!dsk_cublaslt_load(why, sizeof why)) {
        if (cb->verbose)
            fprintf(stderr, "cuda: %s: products through cuBLAS\n", why);
        return NULL;
    }
    dsk_cuda_lt *lt = (dsk_cuda_lt *)dsk_xcalloc(1, sizeof *lt);
    cublasStatus_t s = dsk_cublaslt.Create(&lt->handle);
    if (s != CUBLAS_STATUS_SUCCESS) {
        if (cb->verbose)
            fprintf(stderr, "cuda: cublasLtCreate on device %d: %s: products through cuBLAS\n", cb->device,
                    dsk_cublas.GetStatusString(s));
        free(lt);
        return NULL;
    }
    /* Without room for a workspace the heuristic picks among the
     * algorithms that need none. */
    if (cudaMalloc(&lt->work, LT_WORKSPACE) == cudaSuccess) {
        lt->work_len = LT_WORKSPACE;
    } else {
        (void)cudaGetLastError();
        lt->work = NULL;
    }
    return lt;
}

void dsk_cuda_lt_destroy(dsk_cuda_lt *lt)
{
    if (!lt)
        return;
    for (int s = 0; s < LT_SETS; s++)
        for (int w = 0; w < LT_WAYS; w++)
            plan_free(&lt->plans[s][w]);
    if (lt->work)
        CUDA_CHECK(cudaFree(lt->work));
    for (int i = 0; i < DSK_CUDA_SIDE_STREAMS; i++)
        if (lt->side_work[i])
            CUDA_CHECK(cudaFree(lt->side_work[i]));
    CUBLAS_CHECK(dsk_cublaslt.Destroy(lt->handle));
    free(lt);
}
