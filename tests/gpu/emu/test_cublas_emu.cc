/* The emulation's cuBLAS and cuBLASLt stand-in (cublas_emu.cc) checked on
 * its own (tests/gpu/emu/run.sh runs it after test_emu).  The emulated
 * backend's products all run on it, and its strictness is what catches
 * the backend's mistakes there: a leading dimension too small, an operand
 * misaligned or overlapping an output, a cuBLASLt algorithm run on
 * pointers less aligned than its plan said.  A stand-in that computed
 * wrongly, or let such a call through, would hide them, so it is tested
 * here, not only through the backend.
 *
 * The libraries are loaded as the backend loads them (cuda/cublas_load.cu,
 * whose dsk_cuda_dlopen is emu_runtime.cc's: the stand-ins of build/emu/lib)
 * and called through its tables.  Checked: products for every transpose
 * against a double-precision reference; the row-major swap of
 * cuda_backend.cu's gemm; bf16 and fp16 operands widened exactly; C not
 * read when beta is 0 (it starts as NaN), A and B not read when alpha or
 * k is 0; grouped calls as gemm_grouped.cu makes them; cuBLASLt plans as
 * gemm_lt.cu makes them, with their alignment preferences; and each
 * refusal, with the status the real library gives.  Operands come from the
 * emulation's cudaMalloc (exactly their size), so ASan sees a read past
 * one.
 *
 * Refusals say why on stderr ("cublas emu: ..."): expected here.  Prints
 * TAP, a line per family of cases, what failed in "# FAIL" lines before
 * it, the number of checks at the end; exit status 1 on any failure. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.cuh"

static constexpr cublasStatus_t OK = CUBLAS_STATUS_SUCCESS, INVALID = CUBLAS_STATUS_INVALID_VALUE,
                                UNSUPPORTED = CUBLAS_STATUS_NOT_SUPPORTED, NO_INIT = CUBLAS_STATUS_NOT_INITIALIZED,
                                FAILED = CUBLAS_STATUS_EXECUTION_FAILED;

#include "tap.h"
#define EXPECT(call, want) expect_at((call), (want), #call, __LINE__)

static int expect_at(cublasStatus_t got, cublasStatus_t want, const char *call, int line)
{
    return check_at(got == want, line, "%s -> %s, want %s", call, dsk_cublas.GetStatusString(got),
                    dsk_cublas.GetStatusString(want));
}


/* ---- operands ---- */

static uint64_t rng = 88172645463325252ull;   /* xorshift64: the same cases every run */
static double urand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
static int irand(int lo, int hi) { return lo + (int)(urand() * (hi - lo + 1)); }
/* k/8 in [-1, 1]: exact in fp16 and bf16, and the products and sums of
 * these small cases exact in fp32, so those are compared bit for bit. */
static float small(void) { return (float)((int)(urand() * 17) - 8) / 8.0f; }

/* Device memory as the backend gets it: emu_runtime.cc's cudaMalloc
 * (256-byte aligned, exactly `bytes`, filled with 0xff: NaN as floats). */
static void *dev_bytes(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        printf("Bail out! cudaMalloc(%zu) failed\n", bytes);
        exit(1);
    }
    return p;
}
static float *dev(size_t n) { return (float *)dev_bytes(n * sizeof(float)); }
static void fill_nan(float *p, size_t n) { memset(p, 0xff, n * sizeof *p); }

static uint16_t to_bf16(float f)   /* exact for k/8 values: their low 16 bits are 0 */
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)(b >> 16);
}
static uint16_t to_f16(float f)   /* exact for k/8 values (normal range, 10 mantissa bits) */
{
    if (f == 0)
        return signbit(f) ? 0x8000 : 0;
    uint32_t b;
    memcpy(&b, &f, 4);
    uint32_t sign = (b >> 16) & 0x8000, exp = (b >> 23) & 0xff, man = b & 0x7fffff;
    return (uint16_t)(sign | (exp - 112) << 10 | man >> 13);
}
/* A device copy of x[n] in t (CUDA_R_16BF or CUDA_R_16F). */
static uint16_t *to_half(cudaDataType t, const float *x, size_t n)
{
    uint16_t *h = (uint16_t *)dev_bytes(n * 2);
    for (size_t i = 0; i < n; i++)
        h[i] = t == CUDA_R_16F ? to_f16(x[i]) : to_bf16(x[i]);
    return h;
}

/* Column-major C = alpha op(A) op(B) + beta C in double, as cuBLAS
 * defines it (C not read when beta is 0). */
static void ref_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                     int ldb, float beta, float *C, int ldc)
{
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int l = 0; l < k; l++)
                s += (double)(ta ? A[l + (size_t)i * lda] : A[i + (size_t)l * lda]) *
                     (tb ? B[j + (size_t)l * ldb] : B[l + (size_t)j * ldb]);
            double v = alpha * s;
            if (beta != 0)
                v += beta * C[i + (size_t)j * ldc];
            C[i + (size_t)j * ldc] = (float)v;
        }
}

/* Row-major C[M,N] = alpha op(A) op(B) + beta C, A [M,K] ([K,M] when ta),
 * B [K,N] ([N,K] when tb): what dsk_cuda_gemm computes.  Written out, not
 * through ref_gemm, so that it checks the swap rather than repeating it. */
static void ref_rowmajor(int ta, int tb, int M, int N, int K, float alpha, const float *A, const float *B, float beta,
                         float *C)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int l = 0; l < K; l++)
                s += (double)(ta ? A[l * M + i] : A[i * K + l]) * (tb ? B[j * K + l] : B[l * N + j]);
            C[i * N + j] = (float)(alpha * s + (beta != 0 ? beta * C[i * N + j] : 0));
        }
}

/* The largest difference over an m x n column-major block; infinite on a NaN. */
static double max_err(const float *got, const float *want, int m, int n, int ld)
{
    double e = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double d = fabs((double)got[i + (size_t)j * ld] - want[i + (size_t)j * ld]);
            if (d != d)
                return INFINITY;
            e = d > e ? d : e;
        }
    return e;
}

static cublasHandle_t H;
static cublasLtHandle_t LH;

/* ---- cuBLAS ---- */

static void test_load(void)
{
    char why[512] = "";
    if (!CHECK(dsk_cublas_load(why, sizeof why), "dsk_cublas_load: %s", why) ||
        !CHECK(dsk_cublaslt_load(why, sizeof why), "dsk_cublaslt_load: %s", why))
        return;
    /* Optional to the loader (cuBLAS 12.5+), always in the stand-in. */
    CHECK(dsk_cublas.GemmGroupedBatchedEx != NULL, "no cublasGemmGroupedBatchedEx");
    CHECK(!strcmp(dsk_cublas.GetStatusString(OK), "CUBLAS_STATUS_SUCCESS"), "status string");
    EXPECT(dsk_cublas.Create(&H), OK);
    EXPECT(dsk_cublaslt.Create(&LH), OK);
}

static void test_sgemm(void)
{
    for (int iter = 0; iter < 60; iter++) {
        int ta = iter & 1, tb = (iter >> 1) & 1;
        int m = iter == 5 ? 1 : irand(1, 37), n = irand(1, 29), k = irand(1, 41);
        int lda = (ta ? k : m) + irand(0, 3), ldb = (tb ? n : k) + irand(0, 3), ldc = m + irand(0, 3);
        size_t na = (size_t)lda * (ta ? m : k), nb = (size_t)ldb * (tb ? k : n), nc = (size_t)ldc * n;
        float *A = dev(na), *B = dev(nb), *C = dev(nc), *W = (float *)malloc(nc * sizeof *W);
        for (size_t i = 0; i < na; i++)
            A[i] = (float)(urand() * 2 - 1);
        for (size_t i = 0; i < nb; i++)
            B[i] = (float)(urand() * 2 - 1);
        float alpha = iter % 3 == 0 ? 1.0f : 1.5f, beta = iter % 4 < 2 ? 0.0f : 0.75f;
        for (size_t i = 0; i < nc; i++)
            C[i] = beta == 0 ? NAN : (float)(urand() * 2 - 1);
        memcpy(W, C, nc * sizeof *W);
        ref_gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, W, ldc);
        /* CUBLAS_OP_C is CUBLAS_OP_T for real matrices. */
        EXPECT(dsk_cublas.Sgemm(H, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_C : CUBLAS_OP_N, m, n, k, &alpha, A,
                                lda, B, ldb, &beta, C, ldc),
               OK);
        double e = max_err(C, W, m, n, ldc);
        CHECK(e < 1e-4, "%c%c %dx%dx%d beta %g: error %g", ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, beta, e);
        /* The rows between m and ldc are not C's: untouched. */
        int kept = 1;
        for (int j = 0; j < n; j++)
            for (int i = m; i < ldc; i++)
                kept &= !memcmp(&C[i + (size_t)j * ldc], &W[i + (size_t)j * ldc], sizeof *C);
        CHECK(kept, "%dx%dx%d: written between m %d and ldc %d", m, n, k, m, ldc);
        cudaFree(A), cudaFree(B), cudaFree(C), free(W);
    }
}

/* dsk_cuda_gemm's call: row-major C[M,N] = op(A) op(B) is column-major
 * C^T = op(B)^T op(A)^T, so B goes first and the sizes swap.  fp32 through
 * Sgemm, bf16 and fp16 through GemmEx (float32 C and compute). */
static void test_rowmajor(void)
{
    static const cudaDataType half[2] = {CUDA_R_16BF, CUDA_R_16F};
    for (int iter = 0; iter < 16; iter++) {
        int ta = iter & 1, tb = (iter >> 1) & 1;
        int M = irand(1, 20), N = irand(1, 20), K = irand(1, 20);
        float *A = dev((size_t)M * K), *B = dev((size_t)K * N), *C = dev((size_t)M * N);
        float *W = (float *)malloc((size_t)M * N * sizeof *W), alpha = 1, beta = 0;
        for (int i = 0; i < M * K; i++)
            A[i] = small();
        for (int i = 0; i < K * N; i++)
            B[i] = small();
        ref_rowmajor(ta, tb, M, N, K, alpha, A, B, beta, W);
        cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
        fill_nan(C, (size_t)M * N);
        EXPECT(dsk_cublas.Sgemm(H, op_b, op_a, N, M, K, &alpha, B, tb ? K : N, A, ta ? M : K, &beta, C, N), OK);
        CHECK(max_err(C, W, M * N, 1, 1) == 0, "fp32 %c%c %dx%dx%d", ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K);
        for (cudaDataType t : half) {
            uint16_t *a16 = to_half(t, A, (size_t)M * K), *b16 = to_half(t, B, (size_t)K * N);
            fill_nan(C, (size_t)M * N);
            EXPECT(dsk_cublas.GemmEx(H, op_b, op_a, N, M, K, &alpha, b16, t, tb ? K : N, a16, t, ta ? M : K, &beta, C,
                                     CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   OK);
            CHECK(max_err(C, W, M * N, 1, 1) == 0, "%s %c%c %dx%dx%d", t == CUDA_R_16F ? "fp16" : "bf16",
                  ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K);
            cudaFree(a16), cudaFree(b16);
        }
        cudaFree(A), cudaFree(B), cudaFree(C), free(W);
    }
}

/* 1x1x1 products x * 1.0: the widening of single 16-bit values. */
static void test_half_values(void)
{
    static const struct {
        cudaDataType t;
        uint16_t bits;
        float want;   /* NAN: any NaN */
    } cases[] = {
        {CUDA_R_16F, 0x0001, 0x1p-24f},  /* smallest subnormal */
        {CUDA_R_16F, 0x03ff, 1023 * 0x1p-24f},
        {CUDA_R_16F, 0x0400, 0x1p-14f},  /* smallest normal */
        {CUDA_R_16F, 0x7bff, 65504.0f},  /* largest */
        {CUDA_R_16F, 0x8001, -0x1p-24f},
        {CUDA_R_16F, 0x3c00, 1.0f},
        {CUDA_R_16F, 0xc000, -2.0f},
        {CUDA_R_16F, 0x7c00, INFINITY},
        {CUDA_R_16F, 0xfc00, -INFINITY},
        {CUDA_R_16F, 0x3555, 0.333251953125f},
        {CUDA_R_16F, 0x7e00, NAN},
        {CUDA_R_16BF, 0x0001, 0x1p-133f},   /* float's subnormals: bf16 is its top half */
        {CUDA_R_16BF, 0xff80, -INFINITY},
        {CUDA_R_16BF, 0x7fc0, NAN},
    };
    uint16_t *x = (uint16_t *)dev_bytes(2), *one = (uint16_t *)dev_bytes(2);
    float *c = dev(1), alpha = 1, beta = 0;
    for (const auto &h : cases) {
        x[0] = h.bits;
        one[0] = h.t == CUDA_R_16F ? 0x3c00 : 0x3f80;
        c[0] = 12345;
        EXPECT(dsk_cublas.GemmEx(H, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &alpha, x, h.t, 1, one, h.t, 1, &beta, c,
                                 CUDA_R_32F, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               OK);
        CHECK(isnan(h.want) ? isnan(c[0]) : c[0] == h.want, "%s 0x%04x -> %a, want %a",
              h.t == CUDA_R_16F ? "fp16" : "bf16", h.bits, c[0], h.want);
    }
    cudaFree(x), cudaFree(one), cudaFree(c);
}

/* alpha 0: A and B not read (NaN there); k 0: C = beta C; beta 0: C not read. */
static void test_scalars(void)
{
    float *A = dev(4), *B = dev(4), *C = dev(4), alpha = 0, beta = 2;
    fill_nan(A, 4), fill_nan(B, 4);   /* read, they would make C NaN */
    for (int i = 0; i < 4; i++)
        C[i] = (float)i;
    EXPECT(dsk_cublas.Sgemm(H, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &alpha, A, 2, B, 2, &beta, C, 2), OK);
    CHECK(C[0] == 0 && C[1] == 2 && C[2] == 4 && C[3] == 6, "alpha 0: %g %g %g %g", C[0], C[1], C[2], C[3]);
    alpha = 1;
    EXPECT(dsk_cublas.Sgemm(H, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 0, &alpha, A, 2, B, 1, &beta, C, 2), OK);
    CHECK(C[3] == 12, "k 0, beta 2: %g", C[3]);
    beta = 0;
    fill_nan(C, 4);
    EXPECT(dsk_cublas.Sgemm(H, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 0, &alpha, A, 2, B, 1, &beta, C, 2), OK);
    CHECK(C[0] == 0 && C[3] == 0, "k 0, beta 0 over NaN: %g %g", C[0], C[3]);
    cudaFree(A), cudaFree(B), cudaFree(C);
}

/* The arguments cuBLAS checks itself, with its statuses. */
static void test_sgemm_arguments(void)
{
    enum { ALL, NO_HANDLE, NO_ALPHA, NO_A, NO_MATRICES };
    static const struct {
        const char *why;
        int ops[2];   /* cublasOperation_t of A, B */
        int m, n, k, lda, ldb, ldc, nulls;
        cublasStatus_t want;
    } cases[] = {
        {"no handle", {0, 0}, 2, 2, 2, 2, 2, 2, NO_HANDLE, NO_INIT},
        {"m < 0", {0, 0}, -1, 2, 2, 2, 2, 2, ALL, INVALID},
        {"k < 0", {0, 0}, 2, 2, -2, 2, 2, 2, ALL, INVALID},
        {"lda < m", {0, 0}, 3, 2, 2, 2, 2, 3, ALL, INVALID},
        {"lda >= k with A transposed", {1, 0}, 3, 2, 2, 2, 2, 3, ALL, OK},
        {"lda < k with A transposed", {1, 0}, 2, 2, 3, 2, 3, 2, ALL, INVALID},
        {"ldb < k", {0, 0}, 2, 2, 3, 2, 2, 2, ALL, INVALID},
        {"ldb < n with B transposed", {0, 1}, 2, 3, 2, 2, 2, 2, ALL, INVALID},
        {"ldc < m", {0, 0}, 2, 2, 2, 2, 2, 1, ALL, INVALID},
        {"lda 0 for m 0", {0, 0}, 0, 0, 0, 0, 1, 1, ALL, INVALID},
        {"empty, NULL matrices", {0, 0}, 0, 0, 0, 1, 1, 1, NO_MATRICES, OK},
        {"CUBLAS_OP_CONJG", {CUBLAS_OP_CONJG, 0}, 2, 2, 2, 2, 2, 2, ALL, INVALID},
        {"alpha NULL", {0, 0}, 2, 2, 2, 2, 2, 2, NO_ALPHA, INVALID},
        {"A NULL", {0, 0}, 2, 2, 2, 2, 2, 2, NO_A, INVALID},
    };
    float *A = dev(64), *B = dev(64), *C = dev(64), alpha = 1, beta = 0;
    for (int i = 0; i < 64; i++)
        A[i] = B[i] = 1, C[i] = 0;
    for (const auto &c : cases) {
        int none = c.nulls == NO_MATRICES;
        cublasStatus_t s = dsk_cublas.Sgemm(
            c.nulls == NO_HANDLE ? NULL : H, (cublasOperation_t)c.ops[0], (cublasOperation_t)c.ops[1], c.m, c.n, c.k,
            c.nulls == NO_ALPHA ? NULL : &alpha, c.nulls == NO_A || none ? NULL : A, c.lda, none ? NULL : B, c.ldb,
            &beta, none ? NULL : C, c.ldc);
        CHECK(s == c.want, "%s: %s, want %s", c.why, dsk_cublas.GetStatusString(s), dsk_cublas.GetStatusString(c.want));
    }
    cudaFree(A), cudaFree(B), cudaFree(C);
}

/* What a GPU would only get wrong later: a misaligned element, an output
 * sharing memory with an input.  Operands in one buffer X (X[i] = i, the
 * B apart, all ones); a call taken must change nothing but its C, a call
 * refused nothing at all. */
static void test_sgemm_memory(void)
{
    static const struct {
        const char *why;
        int m, n, lda, ldc, a_byte, c_at;   /* A at (char *)X + a_byte, C at X + c_at; k 2 */
        cublasStatus_t want;
    } cases[] = {
        {"A misaligned by 2 bytes", 2, 2, 2, 2, 2, 32, FAILED},
        {"C overlapping A", 2, 2, 2, 2, 0, 3, FAILED},
        {"C's rows between A's (both ld 4)", 2, 2, 4, 4, 0, 2, OK},
        {"C's rows overlapping A's by one", 2, 2, 4, 4, 0, 1, FAILED},
        {"C past A's last column, inside its span", 2, 1, 4, 4, 0, 6, OK},
    };
    enum { LEN = 64 };
    float *X = dev(LEN), *B = dev(4), W[LEN], alpha = 1, beta = 0;
    for (int i = 0; i < 4; i++)
        B[i] = 1;
    for (const auto &c : cases) {
        for (int i = 0; i < LEN; i++)
            X[i] = W[i] = (float)i;
        const float *A = (const float *)((const char *)X + c.a_byte);
        if (c.want == OK)
            ref_gemm(0, 0, c.m, c.n, 2, alpha, W + c.a_byte / 4, c.lda, B, 2, beta, W + c.c_at, c.ldc);
        EXPECT(dsk_cublas.Sgemm(H, CUBLAS_OP_N, CUBLAS_OP_N, c.m, c.n, 2, &alpha, A, c.lda, B, 2, &beta, X + c.c_at,
                                c.ldc),
               c.want);
        CHECK(!memcmp(X, W, sizeof W), "%s: X not as it should be", c.why);
    }
    cudaFree(X), cudaFree(B);
}

/* GemmEx's types and algorithms, the math mode, streams, handles. */
static void test_blas_settings(void)
{
    static const struct {
        const char *why;
        cudaDataType a, b, c;
        cublasComputeType_t compute;
        int algo;
        cublasStatus_t want;
    } cases[] = {
        {"fp16 C", CUDA_R_16F, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT, UNSUPPORTED},
        {"bf16 with TF32", CUDA_R_16BF, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT,
         UNSUPPORTED},
        {"fp32 A, fp16 B", CUDA_R_32F, CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT, UNSUPPORTED},
        {"fp32 with TF32, tensor op", CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32,
         CUBLAS_GEMM_DEFAULT_TENSOR_OP, OK},
        {"fp64 compute", CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT, UNSUPPORTED},
        {"algorithm 50", CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, 50, INVALID},
    };
    float *A = dev(4), *B = dev(4), *C = dev(4), alpha = 1, beta = 0;
    for (int i = 0; i < 4; i++)
        A[i] = B[i] = 1;
    for (const auto &c : cases) {
        cublasStatus_t s = dsk_cublas.GemmEx(H, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &alpha, A, c.a, 2, B, c.b, 2, &beta,
                                             C, c.c, 2, c.compute, (cublasGemmAlgo_t)c.algo);
        CHECK(s == c.want, "GemmEx %s: %s, want %s", c.why, dsk_cublas.GetStatusString(s),
              dsk_cublas.GetStatusString(c.want));
    }
    static const struct {
        int mode;
        cublasStatus_t want;
    } modes[] = {
        {CUBLAS_TF32_TENSOR_OP_MATH, OK},
        {CUBLAS_PEDANTIC_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION, OK},
        {7, INVALID},
        {CUBLAS_DEFAULT_MATH, OK},
    };
    for (const auto &m : modes)
        CHECK(dsk_cublas.SetMathMode(H, (cublasMath_t)m.mode) == m.want, "math mode %#x", m.mode);
    EXPECT(dsk_cublas.SetMathMode(NULL, CUBLAS_DEFAULT_MATH), NO_INIT);
    EXPECT(dsk_cublas.SetStream(H, (cudaStream_t)0x1234), OK);   /* kept, never used */
    EXPECT(dsk_cublas.SetStream(NULL, NULL), NO_INIT);
    EXPECT(dsk_cublas.Create(NULL), INVALID);
    EXPECT(dsk_cublas.Destroy(NULL), NO_INIT);
    cudaFree(A), cudaFree(B), cudaFree(C);
}

/* ---- GemmGroupedBatchedEx, as gemm_grouped.cu calls it ---- */

enum { GROUPS = 4, PROBLEMS = 6, GROUPED_LEN = 4096 };

/* One grouped call's arguments: a case changes one and calls. */
typedef struct grouped_call {
    cublasHandle_t handle;
    cublasOperation_t opa[GROUPS], opb[GROUPS];
    int m[GROUPS], n[GROUPS], k[GROUPS], lda[GROUPS], ldb[GROUPS], ldc[GROUPS], size[GROUPS], count;
    float alpha[GROUPS], beta[GROUPS];
    const void *A[PROBLEMS], *B[PROBLEMS];
    void *C[PROBLEMS];
    cudaDataType type;
    cublasComputeType_t compute;
} grouped_call;

/* fp32 groups of 2, 0, 1 and 3 problems on the handle; the rest is the case's. */
static grouped_call grouped_base(void)
{
    static const int sizes[GROUPS] = {2, 0, 1, 3};
    grouped_call g;
    memset(&g, 0, sizeof g);
    g.handle = H, g.count = GROUPS, g.type = CUDA_R_32F, g.compute = CUBLAS_COMPUTE_32F;
    memcpy(g.size, sizes, sizeof sizes);
    return g;
}

static cublasStatus_t grouped(const grouped_call *g)
{
    return dsk_cublas.GemmGroupedBatchedEx(g->handle, g->opa, g->opb, g->m, g->n, g->k, g->alpha, g->A, g->type,
                                           g->lda, g->B, g->type, g->ldb, g->beta, g->C, CUDA_R_32F, g->ldc,
                                           g->count, g->size, g->compute);
}

/* The base's groups, every transpose, padded leading dimensions, beta 0
 * and not, the last group with k 0; each operand buffer holds its
 * problems one after another from an odd offset. */
static void test_grouped(void)
{
    grouped_call g = grouped_base();
    float *abuf = dev(GROUPED_LEN), *bbuf = dev(GROUPED_LEN), *cbuf = dev(GROUPED_LEN), *W[PROBLEMS];
    size_t ao = 1, bo = 3, co = 5;
    int p = 0;
    for (int i = 0; i < GROUPS; i++) {
        g.opa[i] = i & 1 ? CUBLAS_OP_T : CUBLAS_OP_N, g.opb[i] = i & 2 ? CUBLAS_OP_T : CUBLAS_OP_N;
        g.m[i] = irand(1, 12), g.n[i] = irand(1, 12), g.k[i] = i == 3 ? 0 : irand(1, 12);
        g.lda[i] = (g.opa[i] ? g.k[i] : g.m[i]) + 1, g.ldb[i] = (g.opb[i] ? g.n[i] : g.k[i]) + 2, g.ldc[i] = g.m[i];
        g.alpha[i] = 1.0f + (float)i, g.beta[i] = i == 0 ? 0.0f : 0.5f;
        for (int j = 0; j < g.size[i]; j++, p++) {
            size_t na = (size_t)g.lda[i] * (g.opa[i] ? g.m[i] : g.k[i]) + 1,
                   nb = (size_t)g.ldb[i] * (g.opb[i] ? g.k[i] : g.n[i]) + 1, nc = (size_t)g.ldc[i] * g.n[i];
            g.A[p] = abuf + ao, g.B[p] = bbuf + bo, g.C[p] = cbuf + co;
            for (size_t e = 0; e < na; e++)
                abuf[ao + e] = small();
            for (size_t e = 0; e < nb; e++)
                bbuf[bo + e] = small();
            for (size_t e = 0; e < nc; e++)
                cbuf[co + e] = g.beta[i] == 0 ? NAN : small();
            W[p] = (float *)malloc(nc * sizeof(float));
            memcpy(W[p], cbuf + co, nc * sizeof(float));
            ref_gemm(g.opa[i] != CUBLAS_OP_N, g.opb[i] != CUBLAS_OP_N, g.m[i], g.n[i], g.k[i], g.alpha[i], abuf + ao,
                     g.lda[i], bbuf + bo, g.ldb[i], g.beta[i], W[p], g.ldc[i]);
            ao += na, bo += nb, co += nc;
        }
    }
    EXPECT(grouped(&g), OK);
    p = 0;
    for (int i = 0; i < GROUPS; i++)
        for (int j = 0; j < g.size[i]; j++, p++) {
            double e = max_err((const float *)g.C[p], W[p], g.m[i], g.n[i], g.ldc[i]);
            CHECK(e == 0, "group %d, problem %d (%dx%dx%d): error %g", i, p, g.m[i], g.n[i], g.k[i], e);
        }
    for (int i = 0; i < PROBLEMS; i++)
        free(W[i]);
    cudaFree(abuf), cudaFree(bbuf), cudaFree(cbuf);
}

/* Refusals of the grouped call, each before any product runs. */
static void test_grouped_refusals(void)
{
    grouped_call g = grouped_base();
    enum { ONE = 8 };   /* floats per matrix: 2x2, ld 2, and room */
    float *buf = dev(3 * PROBLEMS * ONE), *snap = (float *)malloc(3 * PROBLEMS * ONE * sizeof(float));
    for (int i = 0; i < 3 * PROBLEMS * ONE; i++)
        buf[i] = small();
    for (int i = 0; i < GROUPS; i++) {
        g.opa[i] = g.opb[i] = CUBLAS_OP_N;
        g.m[i] = g.n[i] = g.k[i] = g.lda[i] = g.ldb[i] = g.ldc[i] = 2;
        g.alpha[i] = 1, g.beta[i] = 0.5f;
    }
    for (int p = 0; p < PROBLEMS; p++)
        g.A[p] = buf + p * ONE, g.B[p] = buf + (PROBLEMS + p) * ONE, g.C[p] = buf + (2 * PROBLEMS + p) * ONE;
    memcpy(snap, buf, 3 * PROBLEMS * ONE * sizeof(float));

    grouped_call c = g;
    c.ldc[3] = 0;
    EXPECT(grouped(&c), INVALID);
    c = g, c.size[1] = -1;
    EXPECT(grouped(&c), INVALID);
    c = g, c.count = -1;
    EXPECT(grouped(&c), INVALID);
    c = g, c.type = CUDA_R_16BF;
    EXPECT(grouped(&c), UNSUPPORTED);
    c = g, c.handle = NULL;
    EXPECT(grouped(&c), NO_INIT);
    /* The problems of a grouped call run at once on a GPU: an output on
     * another problem's input, or two problems writing one C, is a race. */
    c = g, c.C[5] = (void *)g.A[0];
    EXPECT(grouped(&c), FAILED);
    c = g, c.C[5] = g.C[0];
    EXPECT(grouped(&c), FAILED);
    CHECK(!memcmp(snap, buf, 3 * PROBLEMS * ONE * sizeof(float)), "a refused call changed memory");
    /* Taken: problems sharing an input, TF32, no groups at all. */
    c = g, c.A[1] = g.A[0];
    EXPECT(grouped(&c), OK);
    c = g, c.compute = CUBLAS_COMPUTE_32F_FAST_TF32;
    EXPECT(grouped(&c), OK);
    c = g, c.count = 0;
    EXPECT(grouped(&c), OK);
    cudaFree(buf), free(snap);
}

/* ---- cuBLASLt, as gemm_lt.cu uses it ---- */

/* gemm_lt.cu's plan: row-major C[M,N] = op(A) op(B) as cuBLASLt's
 * D (N x M, column-major) = op(our B) op(our A), C in place as D. */
typedef struct plan {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} plan;

/* One Matmul's arguments: a case changes one and calls. */
typedef struct lt_call {
    cublasLtHandle_t handle;
    cublasLtMatmulDesc_t op;
    const float *alpha, *beta;
    const void *A, *B, *C;
    void *D;
    cublasLtMatrixLayout_t a, b, c, d;
    const cublasLtMatmulAlgo_t *algo;
} lt_call;

static cublasStatus_t lt_matmul(const lt_call *x)
{
    return dsk_cublaslt.Matmul(x->handle, x->op, x->alpha, x->A, x->a, x->B, x->b, x->beta, x->C, x->c, x->D, x->d,
                               x->algo, NULL, 0, NULL);
}

/* The plan's call on our operands (swapped), C in place. */
static lt_call plan_call(const plan *p, const float *alpha, const void *A, const void *B, const float *beta, float *C)
{
    lt_call x = {LH, p->op, alpha, beta, B, A, C, C, p->a, p->b, p->c, p->c, &p->algo};
    return x;
}

/* The plan for a shape, its alignments promised to the heuristic as
 * gemm_lt.cu does (align_a is the Lt A's: our B's). */
static void make_plan(plan *p, int ta, int tb, int M, int N, int K, cudaDataType t, uint32_t align_a,
                      uint32_t align_b, uint32_t align_c, cublasComputeType_t compute)
{
    memset(p, 0, sizeof *p);
    int32_t op_a = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    uint64_t m = (uint64_t)M, n = (uint64_t)N, k = (uint64_t)K;
    EXPECT(dsk_cublaslt.MatmulDescCreate(&p->op, compute, CUDA_R_32F), OK);
    EXPECT(dsk_cublaslt.MatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a), OK);
    EXPECT(dsk_cublaslt.MatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b), OK);
    EXPECT(dsk_cublaslt.MatrixLayoutCreate(&p->a, t, tb ? k : n, tb ? n : k, (int64_t)(tb ? k : n)), OK);
    EXPECT(dsk_cublaslt.MatrixLayoutCreate(&p->b, t, ta ? m : k, ta ? k : m, (int64_t)(ta ? m : k)), OK);
    EXPECT(dsk_cublaslt.MatrixLayoutCreate(&p->c, CUDA_R_32F, n, m, (int64_t)n), OK);

    cublasLtMatmulPreference_t pref;
    EXPECT(dsk_cublaslt.MatmulPreferenceCreate(&pref), OK);
    uint64_t work = 32 << 20;
    uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    EXPECT(dsk_cublaslt.MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &work,
                                                     sizeof work),
           OK);
    EXPECT(dsk_cublaslt.MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                     sizeof schemes),
           OK);
    /* A, B, C, then D: D is C. */
    const uint32_t align[4] = {align_a, align_b, align_c, align_c};
    for (int i = 0; i < 4; i++) {
        cublasLtMatmulPreferenceAttributes_t attr =
            (cublasLtMatmulPreferenceAttributes_t)(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + i);
        EXPECT(dsk_cublaslt.MatmulPreferenceSetAttribute(pref, attr, &align[i], sizeof align[i]), OK);
    }
    cublasLtMatmulHeuristicResult_t r;
    memset(&r, 0, sizeof r);
    int found = -1;
    EXPECT(dsk_cublaslt.MatmulAlgoGetHeuristic(LH, p->op, p->a, p->b, p->c, p->c, pref, 1, &r, &found), OK);
    CHECK(found == 1 && r.state == OK && r.workspaceSize == 0, "heuristic: %d found, state %d, workspace %zu", found,
          (int)r.state, r.workspaceSize);
    p->algo = r.algo;
    EXPECT(dsk_cublaslt.MatmulPreferenceDestroy(pref), OK);
}

static void free_plan(plan *p)
{
    EXPECT(dsk_cublaslt.MatmulDescDestroy(p->op), OK);
    for (cublasLtMatrixLayout_t l : {p->a, p->b, p->c})
        EXPECT(dsk_cublaslt.MatrixLayoutDestroy(l), OK);
}

/* 24 shapes: fp32 (half of them TF32), bf16, fp16; every transpose; beta
 * 0 over NaN and beta 1.  Each also: C one float off (4-byte aligned)
 * refused by the 256-byte plan, taken by a 4-byte one; and out of place,
 * D = C with alpha 0. */
static void test_lt(void)
{
    for (int iter = 0; iter < 24; iter++) {
        int ta = iter & 1, tb = (iter >> 1) & 1, kind = (iter >> 2) % 3;
        cudaDataType t = kind == 0 ? CUDA_R_32F : kind == 1 ? CUDA_R_16BF : CUDA_R_16F;
        const char *name = kind == 0 ? "fp32" : kind == 1 ? "bf16" : "fp16";
        int M = irand(1, 30), N = irand(1, 30), K = irand(1, 30);
        size_t mn = (size_t)M * N;
        float *A = dev((size_t)M * K), *B = dev((size_t)K * N), *C = dev(mn + 1), *D = dev(mn);
        float *W = (float *)malloc(mn * sizeof *W), alpha = 2, beta = iter >= 12 ? 1.0f : 0.0f, one = 1, zero = 0;
        for (int i = 0; i < M * K; i++)
            A[i] = small();
        for (int i = 0; i < K * N; i++)
            B[i] = small();
        for (size_t i = 0; i < mn; i++)
            C[i] = W[i] = beta != 0 ? small() : NAN;
        ref_rowmajor(ta, tb, M, N, K, alpha, A, B, beta, W);
        const void *a = A, *b = B;
        if (t != CUDA_R_32F)
            a = to_half(t, A, (size_t)M * K), b = to_half(t, B, (size_t)K * N);
        plan p;
        make_plan(&p, ta, tb, M, N, K, t, 256, 256, 256,
                  t == CUDA_R_32F && iter % 2 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
        lt_call x = plan_call(&p, &alpha, a, b, &beta, C);
        EXPECT(lt_matmul(&x), OK);
        CHECK(max_err(C, W, (int)mn, 1, 1) == 0, "%s %c%c %dx%dx%d beta %g", name, ta ? 'T' : 'N', tb ? 'T' : 'N', M,
              N, K, beta);
        if (beta == 0) {
            x = plan_call(&p, &alpha, a, b, &beta, C + 1);
            EXPECT(lt_matmul(&x), INVALID);
            plan q;
            make_plan(&q, ta, tb, M, N, K, t, 256, 256, 4, CUBLAS_COMPUTE_32F);
            fill_nan(C, mn + 1);
            x = plan_call(&q, &alpha, a, b, &beta, C + 1);
            EXPECT(lt_matmul(&x), OK);
            CHECK(max_err(C + 1, W, (int)mn, 1, 1) == 0, "%s %dx%dx%d, C 4-byte aligned", name, M, N, K);
            free_plan(&q);
        }
        for (size_t i = 0; i < mn; i++)
            C[i] = 1;
        x = plan_call(&p, &zero, a, b, &one, C);
        x.D = D;
        EXPECT(lt_matmul(&x), OK);
        CHECK(!memcmp(C, D, mn * sizeof *C), "%s %dx%dx%d: out of place, alpha 0 beta 1: D is not C", name, M, N, K);
        free_plan(&p);
        if (t != CUDA_R_32F)
            cudaFree((void *)a), cudaFree((void *)b);
        cudaFree(A), cudaFree(B), cudaFree(C), cudaFree(D), free(W);
    }
}

/* Descriptor and preference attributes: their types and sizes, and what
 * the stand-in does not emulate (device pointer mode, epilogues, ...). */
static void test_lt_attributes(void)
{
    static const int32_t op_t = CUBLAS_OP_T, op_7 = 7, host = CUBLASLT_POINTER_MODE_HOST,
                         device = CUBLASLT_POINTER_MODE_DEVICE;
    static const int64_t op_t64 = CUBLAS_OP_T, align64 = 4;
    static const uint32_t plain = CUBLASLT_EPILOGUE_DEFAULT, relu = CUBLASLT_EPILOGUE_RELU, align3 = 3, zero32 = 0;
    static const struct {
        const char *why;
        int attr;
        const void *value;
        size_t len;
        cublasStatus_t want;
    } descs[] = {
        {"TRANSA as int64", CUBLASLT_MATMUL_DESC_TRANSA, &op_t64, 8, INVALID},
        {"TRANSA NULL", CUBLASLT_MATMUL_DESC_TRANSA, NULL, 4, INVALID},
        {"TRANSB 7", CUBLASLT_MATMUL_DESC_TRANSB, &op_7, 4, INVALID},
        {"TRANSB T", CUBLASLT_MATMUL_DESC_TRANSB, &op_t, 4, OK},
        {"host pointer mode", CUBLASLT_MATMUL_DESC_POINTER_MODE, &host, 4, OK},
        {"device pointer mode", CUBLASLT_MATMUL_DESC_POINTER_MODE, &device, 4, UNSUPPORTED},
        {"default epilogue", CUBLASLT_MATMUL_DESC_EPILOGUE, &plain, 4, OK},
        {"ReLU epilogue", CUBLASLT_MATMUL_DESC_EPILOGUE, &relu, 4, UNSUPPORTED},
        {"fast accumulation", CUBLASLT_MATMUL_DESC_FAST_ACCUM, &host, 4, UNSUPPORTED},
    }, prefs[] = {
        {"alignment 3", CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align3, 4, INVALID},
        {"alignment as uint64", CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align64, 8, INVALID},
        {"workspace as uint32", CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &zero32, 4, INVALID},
        {"search mode", CUBLASLT_MATMUL_PREF_SEARCH_MODE, &zero32, 4, UNSUPPORTED},
    };
    cublasLtMatmulDesc_t op = NULL, refused = NULL;
    EXPECT(dsk_cublaslt.MatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), OK);
    EXPECT(dsk_cublaslt.MatmulDescCreate(&refused, CUBLAS_COMPUTE_64F, CUDA_R_64F), UNSUPPORTED);
    EXPECT(dsk_cublaslt.MatmulDescCreate(&refused, CUBLAS_COMPUTE_32F, CUDA_R_16F), UNSUPPORTED);
    CHECK(refused == NULL, "a refused descriptor was made");
    for (const auto &d : descs) {
        cublasStatus_t s = dsk_cublaslt.MatmulDescSetAttribute(op, (cublasLtMatmulDescAttributes_t)d.attr, d.value,
                                                               d.len);
        CHECK(s == d.want, "descriptor %s: %s", d.why, dsk_cublas.GetStatusString(s));
    }
    cublasLtMatmulPreference_t pref;
    EXPECT(dsk_cublaslt.MatmulPreferenceCreate(&pref), OK);
    for (const auto &d : prefs) {
        cublasStatus_t s = dsk_cublaslt.MatmulPreferenceSetAttribute(
            pref, (cublasLtMatmulPreferenceAttributes_t)d.attr, d.value, d.len);
        CHECK(s == d.want, "preference %s: %s", d.why, dsk_cublas.GetStatusString(s));
    }
    cublasLtMatrixLayout_t bad = NULL;
    EXPECT(dsk_cublaslt.MatrixLayoutCreate(&bad, CUDA_R_32F, 4, 3, 3), INVALID);   /* ld < rows */
    EXPECT(dsk_cublaslt.MatrixLayoutCreate(&bad, CUDA_R_32F, 4, 3, -1), INVALID);
    EXPECT(dsk_cublaslt.MatmulPreferenceDestroy(pref), OK);
    EXPECT(dsk_cublaslt.MatmulDescDestroy(op), OK);
    EXPECT(dsk_cublaslt.Create(NULL), INVALID);
    EXPECT(dsk_cublaslt.Destroy(NULL), NO_INIT);
}

/* The heuristic and Matmul on D (4x5) = A (4x3) B (3x5), column-major,
 * all ones: shapes that do not fit, types, algorithms, C and D. */
static void test_lt_refusals(void)
{
    cublasLtMatmulDesc_t op;
    EXPECT(dsk_cublaslt.MatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), OK);
    enum { A43, B35, B45, C45, D45_LD8, A43_BF16, LAYOUTS };
    static const struct {
        cudaDataType t;
        int rows, cols, ld;
    } shapes[LAYOUTS] = {
        {CUDA_R_32F, 4, 3, 4}, {CUDA_R_32F, 3, 5, 3}, {CUDA_R_32F, 4, 5, 4},
        {CUDA_R_32F, 4, 5, 4}, {CUDA_R_32F, 4, 5, 8}, {CUDA_R_16BF, 4, 3, 4},
    };
    cublasLtMatrixLayout_t l[LAYOUTS];
    for (int i = 0; i < LAYOUTS; i++)
        EXPECT(dsk_cublaslt.MatrixLayoutCreate(&l[i], shapes[i].t, (uint64_t)shapes[i].rows,
                                               (uint64_t)shapes[i].cols, shapes[i].ld),
               OK);
    cublasLtMatmulPreference_t pref;
    EXPECT(dsk_cublaslt.MatmulPreferenceCreate(&pref), OK);

    cublasLtMatmulHeuristicResult_t r[2];
    memset(r, 0, sizeof r);
    int n = -1;
    EXPECT(dsk_cublaslt.MatmulAlgoGetHeuristic(LH, op, l[A43], l[B45], l[C45], l[C45], pref, 1, r, &n), INVALID);
    CHECK(n == 0, "inconsistent shapes: %d algorithms", n);
    EXPECT(dsk_cublaslt.MatmulAlgoGetHeuristic(LH, op, l[A43], l[B35], l[C45], l[C45], pref, 0, r, &n), INVALID);
    EXPECT(dsk_cublaslt.MatmulAlgoGetHeuristic(NULL, op, l[A43], l[B35], l[C45], l[C45], pref, 1, r, &n), NO_INIT);
    /* A layout passed as the descriptor: the objects' kinds are checked. */
    EXPECT(dsk_cublaslt.MatmulAlgoGetHeuristic(LH, (cublasLtMatmulDesc_t)l[A43], l[A43], l[B35], l[C45], l[C45], pref,
                                               1, r, &n),
           INVALID);
    EXPECT(dsk_cublaslt.MatmulAlgoGetHeuristic(LH, op, l[A43_BF16], l[B35], l[C45], l[C45], pref, 1, r, &n),
           UNSUPPORTED);
    EXPECT(dsk_cublaslt.MatmulAlgoGetHeuristic(LH, op, l[A43], l[B35], l[C45], l[C45], pref, 2, r, &n), OK);
    CHECK(n == 1, "consistent shapes: %d algorithms", n);
    /* A promised 2-byte alignment: no fp32 algorithm can take that. */
    uint32_t two = 2;
    EXPECT(dsk_cublaslt.MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &two,
                                                     sizeof two),
           OK);
    EXPECT(dsk_cublaslt.MatmulAlgoGetHeuristic(LH, op, l[A43], l[B35], l[C45], l[C45], pref, 1, r + 1, &n),
           UNSUPPORTED);
    CHECK(n == 0, "2-byte alignment: %d algorithms", n);

    float *A = dev(12), *B = dev(15), *C = dev(20), *D = dev(40), alpha = 1, beta = 0;
    for (int i = 0; i < 12; i++)
        A[i] = 1;
    for (int i = 0; i < 15; i++)
        B[i] = 1;
    const lt_call ok = {LH, op, &alpha, &beta, A, B, C, C, l[A43], l[B35], l[C45], l[C45], &r[0].algo};
    EXPECT(lt_matmul(&ok), OK);
    CHECK(C[0] == 3 && C[19] == 3, "ones: %g %g, want 3", C[0], C[19]);
    cublasLtMatmulAlgo_t junk;
    memset(&junk, 0, sizeof junk);
    lt_call x = ok;
    x.b = l[B45];
    EXPECT(lt_matmul(&x), INVALID);
    x = ok, x.a = l[A43_BF16];
    EXPECT(lt_matmul(&x), UNSUPPORTED);
    x = ok, x.algo = &junk;   /* not from the heuristic */
    EXPECT(lt_matmul(&x), INVALID);
    x = ok, x.alpha = NULL;
    EXPECT(lt_matmul(&x), INVALID);
    x = ok, x.handle = NULL;
    EXPECT(lt_matmul(&x), NO_INIT);
    x = ok, x.algo = NULL;   /* the library picks */
    EXPECT(lt_matmul(&x), OK);
    /* In place, D's layout must be C's. */
    x = ok, x.algo = NULL, x.C = D, x.D = D, x.d = l[D45_LD8];
    EXPECT(lt_matmul(&x), INVALID);
    /* Out of place: C and D must not overlap; rows interleaved are fine. */
    beta = 1;
    for (int i = 0; i < 40; i++)
        D[i] = 0;
    x = ok, x.algo = NULL, x.C = D, x.D = D + 1;
    EXPECT(lt_matmul(&x), FAILED);
    x = ok, x.algo = NULL, x.C = D, x.c = l[D45_LD8], x.D = D + 4, x.d = l[D45_LD8];
    EXPECT(lt_matmul(&x), OK);
    CHECK(D[4] == 3 && D[4 + 8 * 4 + 3] == 3 && D[0] == 0, "interleaved C and D: %g %g %g", D[4], D[4 + 8 * 4 + 3],
          D[0]);

    for (int i = 0; i < LAYOUTS; i++)
        EXPECT(dsk_cublaslt.MatrixLayoutDestroy(l[i]), OK);
    EXPECT(dsk_cublaslt.MatmulPreferenceDestroy(pref), OK);
    EXPECT(dsk_cublaslt.MatmulDescDestroy(op), OK);
    cudaFree(A), cudaFree(B), cudaFree(C), cudaFree(D);
}

static void test_destroy(void)
{
    EXPECT(dsk_cublaslt.Destroy(LH), OK);
    EXPECT(dsk_cublas.Destroy(H), OK);
}

int main(void)
{
    static const struct {
        void (*run)(void);
        const char *what;
    } families[] = {
        {test_load, "dsk_cublas_load and dsk_cublaslt_load open the stand-ins; handles made"},
        {test_sgemm, "Sgemm: 60 random shapes, all transposes, padded leading dimensions, beta 0 over NaN, "
                     "against a double reference; padding untouched"},
        {test_rowmajor, "row-major swap as dsk_cuda_gemm does it: Sgemm, and GemmEx bf16 and fp16, 16 shapes, exact"},
        {test_half_values, "GemmEx widens fp16 and bf16 exactly: subnormals, extremes, infinities, NaN"},
        {test_scalars, "alpha 0 reads neither A nor B, k 0 scales C, beta 0 does not read C"},
        {test_sgemm_arguments, "Sgemm refuses a missing handle, negative sizes, short leading dimensions, "
                               "bad ops, NULL alpha or matrices"},
        {test_sgemm_memory, "Sgemm fails misaligned operands and C overlapping A at execution, "
                            "takes C interleaved with A, and writes nothing else"},
        {test_blas_settings, "GemmEx types, compute types and algorithms; math modes, streams, NULL handles"},
        {test_grouped, "GemmGroupedBatchedEx: groups of 2, 0, 1 and 3 problems, all transposes, k 0, exact"},
        {test_grouped_refusals, "GemmGroupedBatchedEx refusals (sizes, types, handle, outputs overlapping another "
                                "problem's operands), memory untouched; shared inputs taken"},
        {test_lt, "cuBLASLt: 24 plans as gemm_lt.cu makes them (fp32, TF32, bf16, fp16, all transposes, beta 0 "
                  "and 1), exact; C below the plan's alignment refused; out of place"},
        {test_lt_attributes, "cuBLASLt descriptor, preference and layout attributes: sizes, values, what is not "
                             "emulated"},
        {test_lt_refusals, "cuBLASLt heuristic and Matmul refusals: shapes, types, alignment, algorithm, handle, "
                           "C and D layouts and overlap"},
        {test_destroy, "handles destroyed"},
    };
    for (const auto &f : families) {
        f.run();
        tap(f.what);
        if (f.run == test_load && n_failed) {
            printf("Bail out! the stand-ins cannot be loaded\n");
            return 1;
        }
    }
    printf("# %d checks, %d failed\n1..%d\n", n_checks, n_checks_failed, n_tests);
    return n_failed != 0;
}
