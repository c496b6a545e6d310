/* A stand-in for NVIDIA's cuBLAS and cuBLASLt in the CPU emulation of
 * cuda/ (tests/gpu/emu), so that the CUDA backend's products run in
 * `make check` without a GPU.  Built once and installed twice, as
 * libcublas.so.13 and libcublasLt.so.13, it gives cuda/cublas_load.cu
 * the entry points it looks up (the names after cublas_v2.h's macros:
 * cublasCreate_v2, cublasSgemm_v2, ...), each with the signature of the
 * real headers.
 *
 * "Device" memory is host memory here: the products run during the call,
 * through the CPU BLAS (cblas_sgemm, column-major) in float32, so the
 * work queued on the stream before them must have run by then (the
 * stream is kept and otherwise ignored).  16-bit operands (fp16, bf16) are widened
 * exactly first; the fast compute types (TF32 and the like) are computed
 * in full fp32.  Only float32 outputs and scalars, and the host pointer
 * mode (cuBLAS's default), are emulated.
 *
 * Its point is to catch the caller's mistakes, so arguments are checked
 * as strictly as the real library documents, with its status codes
 * (NOT_INITIALIZED, INVALID_VALUE, NOT_SUPPORTED), and further where a
 * GPU would only misbehave later:
 *   - a matrix the product touches NULL: CUBLAS_STATUS_INVALID_VALUE;
 *   - an operand not aligned to its element, or an output sharing memory
 *     with an input or another output, of its own problem or, in a
 *     grouped call, of any other (a misaligned address or a race on a
 *     GPU): CUBLAS_STATUS_EXECUTION_FAILED;
 *   - a cuBLASLt algorithm run on pointers less aligned than the
 *     heuristic was told (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES):
 *     CUBLAS_STATUS_INVALID_VALUE.
 * Every refusal says why on stderr, in a line starting "cublas emu: ".
 * Operands are copied into dense float matrices by this file's code
 * (never handed to the BLAS in place), so a sanitizer build sees every
 * element a GPU would read; C is not read when beta is 0, nor A and B
 * when k or alpha is 0. */
#include <cblas.h>
#include <cublasLt.h>
#include <cublas_v2.h>

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- objects behind the opaque handles ---- */

/* Each object starts with its kind, checked on use: a layout passed as a
 * descriptor, or a destroyed object, is refused (or left to ASan). */
enum {
    KIND_BLAS = 0x424c4153,
    KIND_LT = 0x4c544c54,
    KIND_DESC = 0x44455343,
    KIND_LAYOUT = 0x4c41594f,
    KIND_PREF = 0x50524546,
    KIND_DEAD = 0x44454144,
};

struct cublasContext {   /* cublasHandle_t */
    uint32_t kind;
    cudaStream_t stream;
    cublasMath_t math;
};

struct cublasLtContext {   /* cublasLtHandle_t */
    uint32_t kind;
};

typedef struct lt_desc {   /* behind cublasLtMatmulDesc_t */
    uint32_t kind;
    cublasComputeType_t compute;
    cudaDataType_t scale;
    int32_t trans_a, trans_b;
} lt_desc;

typedef struct lt_layout {   /* behind cublasLtMatrixLayout_t: column-major */
    uint32_t kind;
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
} lt_layout;

typedef struct lt_pref {   /* behind cublasLtMatmulPreference_t */
    uint32_t kind;
    uint64_t max_workspace;
    uint32_t reduction_mask;
    uint32_t align[4];   /* minimum alignment of A, B, C, D in bytes */
} lt_pref;

/* The algorithm the heuristic returns, in cublasLtMatmulAlgo_t's data:
 * what it was chosen for, which cublasLtMatmul checks. */
enum { ALGO_MAGIC = 0, ALGO_ALIGN = 1 /* 4 words: A, B, C, D */, ALGO_TYPES = 5, ALGO_WORDS = 6 };
static const uint64_t algo_magic = 0x63626c61732d656dull;   /* "cblas-em" */
static_assert(sizeof(((cublasLtMatmulAlgo_t *)0)->data) >= ALGO_WORDS * sizeof(uint64_t), "algo data too small");

/* A matrix as stored: column-major, rows x cols, leading dimension ld. */
typedef struct mat {
    const void *p;
    cudaDataType_t type;
    int64_t rows, cols, ld;
} mat;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cublas emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const char *status_name(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN (not a cublasStatus_t)";
}

/* ---- types ---- */

static size_t type_size(cudaDataType_t t)
{
    switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_16F:
    case CUDA_R_16BF: return 2;
    default: return 0;   /* not emulated */
    }
}

static const char *type_name(cudaDataType_t t)
{
    switch (t) {
    case CUDA_R_32F: return "CUDA_R_32F";
    case CUDA_R_16F: return "CUDA_R_16F";
    case CUDA_R_16BF: return "CUDA_R_16BF";
    case CUDA_R_64F: return "CUDA_R_64F";
    default: return "a data type this emulator lacks";
    }
}

static const char *compute_name(cublasComputeType_t c)
{
    switch (c) {
    case CUBLAS_COMPUTE_32F: return "CUBLAS_COMPUTE_32F";
    case CUBLAS_COMPUTE_32F_PEDANTIC: return "CUBLAS_COMPUTE_32F_PEDANTIC";
    case CUBLAS_COMPUTE_32F_FAST_TF32: return "CUBLAS_COMPUTE_32F_FAST_TF32";
    case CUBLAS_COMPUTE_32F_FAST_16F: return "CUBLAS_COMPUTE_32F_FAST_16F";
    case CUBLAS_COMPUTE_32F_FAST_16BF: return "CUBLAS_COMPUTE_32F_FAST_16BF";
    default: return "a compute type this emulator lacks";
    }
}

/* The float32 compute types; the fast ones (which may round float32
 * inputs down) only take float32 inputs. */
static int compute_ok(cublasComputeType_t c, cudaDataType_t in)
{
    if (c == CUBLAS_COMPUTE_32F || c == CUBLAS_COMPUTE_32F_PEDANTIC)
        return 1;
    return in == CUDA_R_32F &&
           (c == CUBLAS_COMPUTE_32F_FAST_TF32 || c == CUBLAS_COMPUTE_32F_FAST_16F || c == CUBLAS_COMPUTE_32F_FAST_16BF);
}

/* cublasGemmEx's and cublasLtMatmul's table, the part emulated: A and B
 * of one type (fp32, fp16, bf16), C (and D) float32, a float32 compute
 * type.  NOT_SUPPORTED, and why, otherwise. */
static cublasStatus_t types_ok(const char *fn, cudaDataType_t a, cudaDataType_t b, cudaDataType_t c,
                               cublasComputeType_t compute)
{
    if (a != b || !type_size(a) || c != CUDA_R_32F || !compute_ok(compute, a)) {
        say("%s: A %s, B %s, C %s with %s (%d): not supported (emulated: A and B both CUDA_R_32F, CUDA_R_16F or "
            "CUDA_R_16BF, C CUDA_R_32F, compute CUBLAS_COMPUTE_32F[_PEDANTIC], or a _FAST one for CUDA_R_32F inputs)",
            fn, type_name(a), type_name(b), type_name(c), compute_name(compute), (int)compute);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* IEEE half to float, exactly: subnormals, infinities and NaNs included. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13;   /* inf, or NaN keeping its payload */
    } else if (exp) {
        bits = sign | (exp + 112) << 23 | man << 13;   /* rebias 15 -> 127 */
    } else {
        float f = (float)man * 0x1p-24f;   /* zero or subnormal: man * 2^-24, exact */
        memcpy(&bits, &f, sizeof bits);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* bf16 is the top half of a float32. */
static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The matrix widened to a dense float one (leading dimension rows), or
 * NULL when out of memory.  Reads each element once, in this file's code. */
static float *dense(const mat *x)
{
    size_t rows = (size_t)x->rows, cols = (size_t)x->cols, ld = (size_t)x->ld;
    float *d = (float *)malloc(rows * cols * sizeof *d);
    if (!d)
        return NULL;
    const char *src = (const char *)x->p;
    size_t es = type_size(x->type);
    for (size_t j = 0; j < cols; j++) {
        const char *col = src + j * ld * es;
        float *out = d + j * rows;
        if (x->type == CUDA_R_32F) {
            memcpy(out, col, rows * sizeof *out);
            continue;
        }
        for (size_t i = 0; i < rows; i++) {
            uint16_t h;
            memcpy(&h, col + 2 * i, sizeof h);
            out[i] = x->type == CUDA_R_16BF ? bf16_to_float(h) : half_to_float(h);
        }
    }
    return d;
}

/* ---- memory checks ---- */

static int empty(const mat *x) { return x->rows == 0 || x->cols == 0; }

/* The largest power of two (up to 4096) that divides the address. */
static unsigned align_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    a &= ~a + 1;
    return a == 0 || a > 4096 ? 4096u : (unsigned)a;
}

/* Whether x and y share a byte: column by column, so that blocks of one
 * matrix interleaved with another (columns of a wider one) do not count. */
static int overlap(const mat *x, const mat *y)
{
    if (empty(x) || empty(y))
        return 0;
    uintptr_t xs = (uintptr_t)x->ld * type_size(x->type), xl = (uintptr_t)x->rows * type_size(x->type);
    uintptr_t ys = (uintptr_t)y->ld * type_size(y->type), yl = (uintptr_t)y->rows * type_size(y->type);
    uintptr_t x0 = (uintptr_t)x->p, y0 = (uintptr_t)y->p;
    uintptr_t x1 = x0 + (uintptr_t)(x->cols - 1) * xs + xl, y1 = y0 + (uintptr_t)(y->cols - 1) * ys + yl;
    if (x1 <= y0 || y1 <= x0)
        return 0;
    for (uintptr_t j = 0; j < (uintptr_t)x->cols; j++) {
        uintptr_t a = x0 + j * xs, b = a + xl;   /* x's column j: [a, b) */
        /* y's first column that ends past a; ys >= yl > 0 as ld >= rows > 0 */
        uintptr_t i = a < y0 + yl ? 0 : (a - y0 - yl) / ys + 1;
        if (i < (uintptr_t)y->cols && y0 + i * ys < b)
            return 1;
    }
    return 0;
}

/* An operand the product touches: non-NULL (INVALID_VALUE) and aligned
 * to its element (EXECUTION_FAILED: a misaligned address on a GPU). */
static cublasStatus_t pointer_ok(const char *fn, const char *name, const mat *x)
{
    if (empty(x))
        return CUBLAS_STATUS_SUCCESS;
    if (!x->p) {
        say("%s: %s is NULL for a %lld x %lld matrix", fn, name, (long long)x->rows, (long long)x->cols);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    size_t es = type_size(x->type);
    if ((uintptr_t)x->p % es) {
        say("%s: %s at %p is not aligned to its %zu-byte elements (a misaligned address on a GPU)", fn, name, x->p,
            es);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* The pointers of D = alpha op(A) op(B) + beta C, before anything is
 * computed.  reads_ab: the product is formed (k > 0, alpha != 0);
 * reads_c: beta != 0.  D may be C itself (the same pointer and ld). */
static cublasStatus_t memory_ok(const char *fn, int reads_ab, int reads_c, const mat *A, const mat *B, const mat *C,
                                const mat *D)
{
    const char *out = C == D ? "C" : "D";   /* cuBLAS's output is C */
    cublasStatus_t s = pointer_ok(fn, out, D);
    if (!s && reads_ab)
        s = pointer_ok(fn, "A", A);
    if (!s && reads_ab)
        s = pointer_ok(fn, "B", B);
    if (!s && reads_c)
        s = pointer_ok(fn, "C", C);
    if (s)
        return s;
    const char *race = NULL;
    if (reads_ab && overlap(D, A))
        race = "A";
    else if (reads_ab && overlap(D, B))
        race = "B";
    else if (reads_c && !(C->p == D->p && C->ld == D->ld) && overlap(D, C))
        race = "C (not the same matrix)";
    if (race) {
        say("%s: the output %s (%p) shares memory with %s (%p): a race on a GPU", fn, out, D->p, race,
            race[0] == 'A' ? A->p : race[0] == 'B' ? B->p : C->p);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- the product ---- */

/* D = alpha op(A) op(B) + beta C, the arguments checked (memory_ok
 * included): op(A) m x k, op(B) k x n, C and D m x n.  The product goes
 * to a temporary, then D is written column by column: D may be C (in
 * place), and C is not read when beta is 0 (so NaNs there stay out). */
static cublasStatus_t compute(const char *fn, int ta, int tb, int m, int n, int k, float alpha, const mat *A,
                              const mat *B, float beta, const mat *C, const mat *D)
{
    if (m == 0 || n == 0)
        return CUBLAS_STATUS_SUCCESS;
    float *t = NULL;
    if (k > 0 && alpha != 0) {
        float *a = dense(A), *b = dense(B);
        t = (float *)calloc((size_t)m * (size_t)n, sizeof *t);
        if (!a || !b || !t) {
            free(a);
            free(b);
            free(t);
            say("%s: out of host memory for a %d x %d x %d product", fn, m, n, k);
            return CUBLAS_STATUS_ALLOC_FAILED;
        }
        cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a,
                    (int)A->rows, b, (int)B->rows, 0.0f, t, m);
        free(a);
        free(b);
    }
    const float *c = (const float *)C->p;
    float *d = (float *)D->p;
    for (size_t j = 0; j < (size_t)n; j++)
        for (size_t i = 0; i < (size_t)m; i++) {
            float v = t ? alpha * t[i + j * (size_t)m] : 0.0f;
            if (beta != 0)
                v += beta * c[i + j * (size_t)C->ld];
            d[i + j * (size_t)D->ld] = v;
        }
    free(t);
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuBLAS ---- */

static cublasStatus_t handle_ok(const char *fn, cublasHandle_t h)
{
    if (!h || h->kind != KIND_BLAS) {
        say("%s: %s handle (cublasCreate makes one)", fn, h ? "not a live cuBLAS" : "NULL");
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

static int op_ok(int op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

/* The BLAS argument checks of cublas<t>gemm, cublasGemmEx and each
 * problem of cublasGemmGroupedBatchedEx: INVALID_VALUE, and why. */
static cublasStatus_t gemm_args_ok(const char *fn, int transa, int transb, int m, int n, int k, int lda, int ldb,
                                   int ldc)
{
    int a_rows = transa == CUBLAS_OP_N ? m : k, b_rows = transb == CUBLAS_OP_N ? k : n;
    const char *why = NULL;
    char buf[160];
    if (!op_ok(transa) || !op_ok(transb)) {
        snprintf(buf, sizeof buf, "transa %d, transb %d (CUBLAS_OP_N, _T or _C)", transa, transb);
        why = buf;
    } else if (m < 0 || n < 0 || k < 0) {
        snprintf(buf, sizeof buf, "m %d, n %d, k %d: negative", m, n, k);
        why = buf;
    } else if (lda < (a_rows > 1 ? a_rows : 1)) {
        snprintf(buf, sizeof buf, "lda %d < max(1, %d), A's rows (%s)", lda, a_rows, transa == CUBLAS_OP_N ? "m" : "k");
        why = buf;
    } else if (ldb < (b_rows > 1 ? b_rows : 1)) {
        snprintf(buf, sizeof buf, "ldb %d < max(1, %d), B's rows (%s)", ldb, b_rows, transb == CUBLAS_OP_N ? "k" : "n");
        why = buf;
    } else if (ldc < (m > 1 ? m : 1)) {
        snprintf(buf, sizeof buf, "ldc %d < max(1, m = %d)", ldc, m);
        why = buf;
    }
    if (why) {
        say("%s: %s", fn, why);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* One problem of the cuBLAS API as the matrices it touches. */
typedef struct problem {
    int ta, tb, m, n, k;
    float alpha, beta;
    mat A, B, C;   /* C is also the output */
} problem;

static problem make_problem(int transa, int transb, int m, int n, int k, float alpha, const void *A,
                            cudaDataType_t at, int lda, const void *B, cudaDataType_t bt, int ldb, float beta, void *C,
                            cudaDataType_t ct, int ldc)
{
    problem p;
    p.ta = transa != CUBLAS_OP_N;
    p.tb = transb != CUBLAS_OP_N;
    p.m = m, p.n = n, p.k = k;
    p.alpha = alpha, p.beta = beta;
    p.A = {A, at, p.ta ? k : m, p.ta ? m : k, lda};
    p.B = {B, bt, p.tb ? n : k, p.tb ? k : n, ldb};
    p.C = {C, ct, m, n, ldc};
    return p;
}

static int reads_ab(const problem *p) { return p->m > 0 && p->n > 0 && p->k > 0 && p->alpha != 0; }

static cublasStatus_t problem_memory_ok(const char *fn, const problem *p)
{
    if (p->m == 0 || p->n == 0)
        return CUBLAS_STATUS_SUCCESS;
    return memory_ok(fn, reads_ab(p), p->beta != 0, &p->A, &p->B, &p->C, &p->C);
}

static cublasStatus_t problem_run(const char *fn, const problem *p)
{
    return compute(fn, p->ta, p->tb, p->m, p->n, p->k, p->alpha, &p->A, &p->B, p->beta, &p->C, &p->C);
}

/* cublasSgemm and cublasGemmEx after their own checks. */
static cublasStatus_t gemm(const char *fn, cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                           int m, int n, int k, const float *alpha, const void *A, cudaDataType_t at, int lda,
                           const void *B, cudaDataType_t bt, int ldb, const float *beta, void *C, cudaDataType_t ct,
                           int ldc, cublasComputeType_t compute_type)
{
    cublasStatus_t s = handle_ok(fn, handle);
    if (s)
        return s;
    s = gemm_args_ok(fn, transa, transb, m, n, k, lda, ldb, ldc);
    if (s)
        return s;
    if (!alpha || !beta) {
        say("%s: alpha or beta is NULL", fn);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    s = types_ok(fn, at, bt, ct, compute_type);
    if (s)
        return s;
    problem p = make_problem(transa, transb, m, n, k, *alpha, A, at, lda, B, bt, ldb, *beta, C, ct, ldc);
    s = problem_memory_ok(fn, &p);
    return s ? s : problem_run(fn, &p);
}

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    if (!handle) {
        say("cublasCreate: handle is NULL");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    cublasHandle_t h = (cublasHandle_t)calloc(1, sizeof *h);
    if (!h)
        return CUBLAS_STATUS_ALLOC_FAILED;
    h->kind = KIND_BLAS;
    h->stream = NULL;
    h->math = CUBLAS_DEFAULT_MATH;
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
{
    cublasStatus_t s = handle_ok("cublasDestroy", handle);
    if (s)
        return s;
    handle->kind = KIND_DEAD;
    free(handle);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId)
{
    cublasStatus_t s = handle_ok("cublasSetStream", handle);
    if (s)
        return s;
    handle->stream = streamId;   /* kept, unused: every product runs during its call */
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    cublasStatus_t s = handle_ok("cublasSetMathMode", handle);
    if (s)
        return s;
    /* A mode, optionally with the flag that disallows reduced-precision
     * reductions.  The products are fp32 whatever it says. */
    int base = (int)mode & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TENSOR_OP_MATH && base != CUBLAS_PEDANTIC_MATH &&
        base != CUBLAS_TF32_TENSOR_OP_MATH && base != CUBLAS_FP32_EMULATED_BF16X9_MATH &&
        base != CUBLAS_FP64_EMULATED_FIXEDPOINT_MATH) {
        say("cublasSetMathMode: %d is not a cublasMath_t", (int)mode);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status) { return status_name(status); }

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                              const float *beta, float *C, int ldc)
{
    return gemm("cublasSgemm", handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta,
                C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    const char *fn = "cublasGemmEx";
    cublasStatus_t s = handle_ok(fn, handle);
    if (s)
        return s;
    /* The algorithm is a hint; any value of the enum is taken. */
    if (!((algo >= CUBLAS_GEMM_DEFAULT && algo <= CUBLAS_GEMM_ALGO23) ||
          (algo >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && algo <= CUBLAS_GEMM_ALGO15_TENSOR_OP) ||
          algo == CUBLAS_GEMM_AUTOTUNE)) {
        say("%s: algo %d is not a cublasGemmAlgo_t", fn, (int)algo);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    /* Scalars are of the scale type, float for the float32 compute
     * types (the only ones types_ok lets through). */
    return gemm(fn, handle, transa, transb, m, n, k, (const float *)alpha, A, Atype, lda, B, Btype, ldb,
                (const float *)beta, C, Ctype, ldc, computeType);
}

cublasStatus_t cublasGemmGroupedBatchedEx(cublasHandle_t handle, const cublasOperation_t transa_array[],
                                          const cublasOperation_t transb_array[], const int m_array[],
                                          const int n_array[], const int k_array[], const void *alpha_array,
                                          const void *const Aarray[], cudaDataType_t Atype, const int lda_array[],
                                          const void *const Barray[], cudaDataType_t Btype, const int ldb_array[],
                                          const void *beta_array, void *const Carray[], cudaDataType_t Ctype,
                                          const int ldc_array[], int group_count, const int group_size[],
                                          cublasComputeType_t computeType)
{
    const char *fn = "cublasGemmGroupedBatchedEx";
    cublasStatus_t s = handle_ok(fn, handle);
    if (s)
        return s;
    if (group_count < 0) {
        say("%s: group_count %d < 0", fn, group_count);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (group_count == 0)
        return CUBLAS_STATUS_SUCCESS;
    if (!transa_array || !transb_array || !m_array || !n_array || !k_array || !alpha_array || !lda_array ||
        !ldb_array || !beta_array || !ldc_array || !group_size) {
        say("%s: a per-group array is NULL", fn);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    /* The documented table: A, B and C of one type with a float32
     * compute type, CUBLAS_COMPUTE_32F_FAST_TF32 for fp32 only.  16-bit
     * outputs (cuBLAS takes them) are not emulated. */
    if (Atype != Btype || Atype != Ctype || !type_size(Atype) ||
        !(computeType == CUBLAS_COMPUTE_32F || (computeType == CUBLAS_COMPUTE_32F_FAST_TF32 && Atype == CUDA_R_32F))) {
        say("%s: A %s, B %s, C %s with %s (%d): not supported (cuBLAS wants A, B and C of one type with "
            "CUBLAS_COMPUTE_32F, or CUDA_R_32F with CUBLAS_COMPUTE_32F_FAST_TF32)",
            fn, type_name(Atype), type_name(Btype), type_name(Ctype), compute_name(computeType), (int)computeType);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (Ctype != CUDA_R_32F) {
        say("%s: %s outputs: supported by cuBLAS, not by this emulator (float32 outputs only)", fn, type_name(Ctype));
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const float *alpha = (const float *)alpha_array, *beta = (const float *)beta_array;
    size_t total = 0;
    for (int g = 0; g < group_count; g++) {
        char where[96];
        snprintf(where, sizeof where, "%s, group %d", fn, g);
        if (group_size[g] < 0) {
            say("%s: group_size %d < 0", where, group_size[g]);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
        s = gemm_args_ok(where, transa_array[g], transb_array[g], m_array[g], n_array[g], k_array[g], lda_array[g],
                         ldb_array[g], ldc_array[g]);
        if (s)
            return s;
        total += (size_t)group_size[g];
    }
    if (total && (!Aarray || !Barray || !Carray)) {
        say("%s: Aarray, Barray or Carray is NULL for %zu problems", fn, total);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    problem *ps = (problem *)malloc((total ? total : 1) * sizeof *ps);
    if (!ps)
        return CUBLAS_STATUS_ALLOC_FAILED;
    size_t i = 0;
    for (int g = 0; g < group_count; g++)
        for (int j = 0; j < group_size[g]; j++, i++)
            ps[i] = make_problem(transa_array[g], transb_array[g], m_array[g], n_array[g], k_array[g], alpha[g],
                                 Aarray[i], Atype, lda_array[g], Barray[i], Btype, ldb_array[g], beta[g], Carray[i],
                                 Ctype, ldc_array[g]);
    /* Every problem's memory checked before the first is computed, so a
     * refusal leaves every C as it was; on a GPU the problems run at once,
     * so one's output must not meet another's operands either. */
    s = CUBLAS_STATUS_SUCCESS;
    for (i = 0; i < total && !s; i++) {
        char where[128];
        snprintf(where, sizeof where, "%s, problem %zu", fn, i);
        s = problem_memory_ok(where, &ps[i]);
        for (size_t j = 0; j < total && !s; j++) {
            const problem *p = &ps[i], *q = &ps[j];
            if (j == i || p->m == 0 || p->n == 0)
                continue;
            const char *race = reads_ab(q) && overlap(&p->C, &q->A)   ? "A"
                               : reads_ab(q) && overlap(&p->C, &q->B) ? "B"
                               : q->m && q->n && overlap(&p->C, &q->C) ? "C"
                                                                        : NULL;
            if (race) {
                say("%s: its output C (%p) shares memory with problem %zu's %s: a race on a GPU", where, p->C.p, j,
                    race);
                s = CUBLAS_STATUS_EXECUTION_FAILED;
            }
        }
    }
    for (i = 0; i < total && !s; i++) {
        char where[128];
        snprintf(where, sizeof where, "%s, problem %zu", fn, i);
        s = problem_run(where, &ps[i]);
    }
    free(ps);
    return s;
}

}   // extern "C"

/* ---- cuBLASLt ---- */

static cublasStatus_t lt_handle_ok(const char *fn, cublasLtHandle_t h)
{
    if (!h || h->kind != KIND_LT) {
        say("%s: %s handle (cublasLtCreate makes one)", fn, h ? "not a live cuBLASLt" : "NULL");
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* The object behind an opaque pointer, or NULL (and why) when it is not
 * a live one of that kind. */
template <typename T> static T *object(const char *fn, const char *what, const void *p, uint32_t kind)
{
    T *o = (T *)const_cast<void *>(p);
    if (!o || o->kind != kind) {
        say("%s: %s is %s", fn, what, o ? "not a live one of its kind" : "NULL");
        return NULL;
    }
    return o;
}

static lt_desc *desc_of(const char *fn, cublasLtMatmulDesc_t d)
{
    return object<lt_desc>(fn, "the matmul descriptor", d, KIND_DESC);
}

static lt_layout *layout_of(const char *fn, const char *what, cublasLtMatrixLayout_t l)
{
    return object<lt_layout>(fn, what, l, KIND_LAYOUT);
}

static lt_pref *pref_of(const char *fn, cublasLtMatmulPreference_t p)
{
    return object<lt_pref>(fn, "the preference", p, KIND_PREF);
}

/* An attribute's value into *value (want bytes): 1, or 0 when buf is
 * NULL or sizeInBytes is not its type's size. */
static int attr_read(const char *fn, int attr, const void *buf, size_t size, void *value, size_t want)
{
    if (!buf || size != want) {
        say("%s: attribute %d: %s (its type has %zu bytes, %zu given)", fn, attr, buf ? "wrong size" : "buf is NULL",
            want, size);
        return 0;
    }
    memcpy(value, buf, want);
    return 1;
}

/* A matmul as cuBLASLt's descriptors give it. */
typedef struct lt_problem {
    int ta, tb, m, n, k;
    cublasComputeType_t compute;
    mat A, B, C, D;
} lt_problem;

/* The descriptor and layouts of D = alpha op(A) op(B) + beta C: live
 * objects (INVALID_VALUE), emulated types (NOT_SUPPORTED), shapes that
 * agree with the transposes (INVALID_VALUE).  Pointers are filled in by
 * the caller. */
static cublasStatus_t lt_problem_of(const char *fn, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t Adesc,
                                    cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc,
                                    cublasLtMatrixLayout_t Ddesc, lt_problem *p)
{
    lt_desc *d = desc_of(fn, op);
    lt_layout *a = layout_of(fn, "Adesc", Adesc), *b = layout_of(fn, "Bdesc", Bdesc);
    lt_layout *c = layout_of(fn, "Cdesc", Cdesc), *o = layout_of(fn, "Ddesc", Ddesc);
    if (!d || !a || !b || !c || !o)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (d->scale != CUDA_R_32F) {
        say("%s: scale type %s: not supported (emulated: CUDA_R_32F)", fn, type_name(d->scale));
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    cublasStatus_t s = types_ok(fn, a->type, b->type, c->type, d->compute);
    if (s)
        return s;
    if (o->type != c->type) {
        say("%s: D is %s, C %s: not supported (emulated: both CUDA_R_32F)", fn, type_name(o->type),
            type_name(c->type));
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    p->ta = d->trans_a != CUBLAS_OP_N;
    p->tb = d->trans_b != CUBLAS_OP_N;
    p->compute = d->compute;
    uint64_t m = o->rows, n = o->cols, k = p->ta ? a->rows : a->cols;
    uint64_t a_m = p->ta ? a->cols : a->rows, b_k = p->tb ? b->cols : b->rows, b_n = p->tb ? b->rows : b->cols;
    if (a_m != m || b_k != k || b_n != n || c->rows != m || c->cols != n) {
        say("%s: shapes disagree: op(A) %llu x %llu (transa %c), op(B) %llu x %llu (transb %c), C %llu x %llu, "
            "D %llu x %llu",
            fn, (unsigned long long)a_m, (unsigned long long)k, p->ta ? 'T' : 'N', (unsigned long long)b_k,
            (unsigned long long)b_n, p->tb ? 'T' : 'N', (unsigned long long)c->rows,
            (unsigned long long)c->cols, (unsigned long long)m, (unsigned long long)n);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const lt_layout *all[4] = {a, b, c, o};
    for (int i = 0; i < 4; i++)
        if (all[i]->rows > INT_MAX || all[i]->cols > INT_MAX || all[i]->ld > INT_MAX) {
            say("%s: a %llu x %llu matrix (ld %lld): too large for this emulator", fn,
                (unsigned long long)all[i]->rows, (unsigned long long)all[i]->cols, (long long)all[i]->ld);
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
    p->m = (int)m, p->n = (int)n, p->k = (int)k;
    p->A = {NULL, a->type, (int64_t)a->rows, (int64_t)a->cols, a->ld};
    p->B = {NULL, b->type, (int64_t)b->rows, (int64_t)b->cols, b->ld};
    p->C = {NULL, c->type, (int64_t)c->rows, (int64_t)c->cols, c->ld};
    p->D = {NULL, o->type, (int64_t)o->rows, (int64_t)o->cols, o->ld};
    return CUBLAS_STATUS_SUCCESS;
}

static uint64_t algo_types(const lt_problem *p)
{
    return (uint64_t)p->A.type | (uint64_t)p->C.type << 16 | (uint64_t)p->compute << 32;
}

static const char *const operand_names[4] = {"A", "B", "C", "D"};

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle)
{
    if (!lightHandle) {
        say("cublasLtCreate: lightHandle is NULL");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    cublasLtHandle_t h = (cublasLtHandle_t)calloc(1, sizeof *h);
    if (!h)
        return CUBLAS_STATUS_ALLOC_FAILED;
    h->kind = KIND_LT;
    *lightHandle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle)
{
    cublasStatus_t s = lt_handle_ok("cublasLtDestroy", lightHandle);
    if (s)
        return s;
    lightHandle->kind = KIND_DEAD;
    free(lightHandle);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType)
{
    const char *fn = "cublasLtMatmulDescCreate";
    if (!matmulDesc) {
        say("%s: matmulDesc is NULL", fn);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!compute_ok(computeType, CUDA_R_32F) || scaleType != CUDA_R_32F) {
        say("%s: %s (%d) with scale type %s: not supported (emulated: the float32 compute types with CUDA_R_32F)", fn,
            compute_name(computeType), (int)computeType, type_name(scaleType));
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    lt_desc *d = (lt_desc *)calloc(1, sizeof *d);
    if (!d)
        return CUBLAS_STATUS_ALLOC_FAILED;
    d->kind = KIND_DESC;
    d->compute = computeType;
    d->scale = scaleType;
    d->trans_a = d->trans_b = CUBLAS_OP_N;
    *matmulDesc = (cublasLtMatmulDesc_t)d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc)
{
    if (!matmulDesc)
        return CUBLAS_STATUS_SUCCESS;
    lt_desc *d = desc_of("cublasLtMatmulDescDestroy", matmulDesc);
    if (!d)
        return CUBLAS_STATUS_INVALID_VALUE;
    d->kind = KIND_DEAD;
    free(d);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t sizeInBytes)
{
    const char *fn = "cublasLtMatmulDescSetAttribute";
    lt_desc *d = desc_of(fn, matmulDesc);
    if (!d)
        return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB: {
        int32_t v;
        if (!attr_read(fn, attr, buf, sizeInBytes, &v, sizeof v))
            return CUBLAS_STATUS_INVALID_VALUE;
        if (!op_ok(v)) {
            say("%s: %s %d is not CUBLAS_OP_N, _T or _C", fn, attr == CUBLASLT_MATMUL_DESC_TRANSA ? "TRANSA" : "TRANSB",
                (int)v);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
        *(attr == CUBLASLT_MATMUL_DESC_TRANSA ? &d->trans_a : &d->trans_b) = v;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: {
        int32_t v;
        if (!attr_read(fn, attr, buf, sizeInBytes, &v, sizeof v))
            return CUBLAS_STATUS_INVALID_VALUE;
        if (v != CUBLASLT_POINTER_MODE_HOST) {
            say("%s: pointer mode %d: not supported (emulated: CUBLASLT_POINTER_MODE_HOST)", fn, (int)v);
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_EPILOGUE: {
        uint32_t v;
        if (!attr_read(fn, attr, buf, sizeInBytes, &v, sizeof v))
            return CUBLAS_STATUS_INVALID_VALUE;
        if (v != CUBLASLT_EPILOGUE_DEFAULT) {
            say("%s: epilogue %u: not supported (emulated: CUBLASLT_EPILOGUE_DEFAULT)", fn, (unsigned)v);
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
        return CUBLAS_STATUS_SUCCESS;
    }
    default:
        say("unsupported matmul desc attribute %d", (int)attr);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld)
{
    const char *fn = "cublasLtMatrixLayoutCreate";
    if (!matLayout) {
        say("%s: matLayout is NULL", fn);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    /* Column-major (the default order): the columns must not overlap. */
    if (ld < 0 || (uint64_t)ld < rows) {
        say("%s: ld %lld < rows %llu", fn, (long long)ld, (unsigned long long)rows);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    lt_layout *l = (lt_layout *)calloc(1, sizeof *l);
    if (!l)
        return CUBLAS_STATUS_ALLOC_FAILED;
    l->kind = KIND_LAYOUT;
    l->type = type;   /* any type: the heuristic and the matmul say what they take */
    l->rows = rows;
    l->cols = cols;
    l->ld = ld;
    *matLayout = (cublasLtMatrixLayout_t)l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout)
{
    if (!matLayout)
        return CUBLAS_STATUS_SUCCESS;
    lt_layout *l = layout_of("cublasLtMatrixLayoutDestroy", "matLayout", matLayout);
    if (!l)
        return CUBLAS_STATUS_INVALID_VALUE;
    l->kind = KIND_DEAD;
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref)
{
    if (!pref) {
        say("cublasLtMatmulPreferenceCreate: pref is NULL");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    lt_pref *p = (lt_pref *)calloc(1, sizeof *p);
    if (!p)
        return CUBLAS_STATUS_ALLOC_FAILED;
    p->kind = KIND_PREF;
    p->max_workspace = 0;                              /* documented defaults */
    p->reduction_mask = CUBLASLT_REDUCTION_SCHEME_MASK;
    for (int i = 0; i < 4; i++)
        p->align[i] = 256;
    *pref = (cublasLtMatmulPreference_t)p;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref)
{
    if (!pref)
        return CUBLAS_STATUS_SUCCESS;
    lt_pref *p = pref_of("cublasLtMatmulPreferenceDestroy", pref);
    if (!p)
        return CUBLAS_STATUS_INVALID_VALUE;
    p->kind = KIND_DEAD;
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t sizeInBytes)
{
    const char *fn = "cublasLtMatmulPreferenceSetAttribute";
    lt_pref *p = pref_of(fn, pref);
    if (!p)
        return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        /* The algorithms here need none. */
        if (!attr_read(fn, attr, buf, sizeInBytes, &p->max_workspace, sizeof p->max_workspace))
            return CUBLAS_STATUS_INVALID_VALUE;
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK:
        /* No split-K here: any mask does. */
        if (!attr_read(fn, attr, buf, sizeInBytes, &p->reduction_mask, sizeof p->reduction_mask))
            return CUBLAS_STATUS_INVALID_VALUE;
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: {
        uint32_t v;
        if (!attr_read(fn, attr, buf, sizeInBytes, &v, sizeof v))
            return CUBLAS_STATUS_INVALID_VALUE;
        int i = attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES;
        /* An alignment is a power of two: anything else is a caller's slip. */
        if (v == 0 || (v & (v - 1))) {
            say("%s: minimum alignment of %s %u bytes: not a power of two", fn, operand_names[i], (unsigned)v);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
        p->align[i] = v;
        return CUBLAS_STATUS_SUCCESS;
    }
    default:
        say("unsupported matmul preference attribute %d", (int)attr);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int *returnAlgoCount)
{
    const char *fn = "cublasLtMatmulAlgoGetHeuristic";
    if (returnAlgoCount)
        *returnAlgoCount = 0;
    cublasStatus_t s = lt_handle_ok(fn, lightHandle);
    if (s)
        return s;
    if (requestedAlgoCount <= 0 || !heuristicResultsArray || !returnAlgoCount) {
        say("%s: requestedAlgoCount %d (must be > 0), heuristicResultsArray %p, returnAlgoCount %p", fn,
            requestedAlgoCount, (void *)heuristicResultsArray, (void *)returnAlgoCount);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    lt_pref *pref = pref_of(fn, preference);
    if (!pref)
        return CUBLAS_STATUS_INVALID_VALUE;
    lt_problem p;
    s = lt_problem_of(fn, operationDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (s)
        return s;
    /* No kernel reads elements at addresses that are not multiples of
     * their size: a smaller minimum alignment leaves no algorithm. */
    const mat *ops[4] = {&p.A, &p.B, &p.C, &p.D};
    for (int i = 0; i < 4; i++)
        if (pref->align[i] < type_size(ops[i]->type)) {
            say("%s: minimum alignment of %s %u bytes, less than its %zu-byte elements: no algorithm", fn,
                operand_names[i], (unsigned)pref->align[i], type_size(ops[i]->type));
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
    /* One algorithm, needing no workspace, valid for pointers aligned as
     * the preference says (recorded for cublasLtMatmul to check). */
    cublasLtMatmulHeuristicResult_t *r = &heuristicResultsArray[0];
    memset(r, 0, sizeof *r);
    r->algo.data[ALGO_MAGIC] = algo_magic;
    for (int i = 0; i < 4; i++)
        r->algo.data[ALGO_ALIGN + i] = pref->align[i];
    r->algo.data[ALGO_TYPES] = algo_types(&p);
    r->workspaceSize = 0;
    r->state = CUBLAS_STATUS_SUCCESS;
    r->wavesCount = 1.0f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
                              const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspaceSizeInBytes, cudaStream_t stream)
{
    const char *fn = "cublasLtMatmul";
    (void)workspace, (void)workspaceSizeInBytes, (void)stream;   /* no workspace needed; runs during the call */
    cublasStatus_t s = lt_handle_ok(fn, lightHandle);
    if (s)
        return s;
    lt_problem p;
    s = lt_problem_of(fn, computeDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (s)
        return s;
    if (!alpha || !beta) {
        say("%s: alpha or beta is NULL", fn);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    p.A.p = A, p.B.p = B, p.C.p = C, p.D.p = D;
    /* In place only with the same layout. */
    if (C && C == D && p.C.ld != p.D.ld) {
        say("%s: C is D (in place) with ldc %lld != ldd %lld", fn, (long long)p.C.ld, (long long)p.D.ld);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    /* The algorithm's promises: made by the heuristic for these types,
     * and for pointers at least as aligned as it was told.  Without one,
     * cuBLASLt runs its own heuristic, which sees the pointers. */
    if (algo) {
        if (algo->data[ALGO_MAGIC] != algo_magic) {
            say("%s: algo is not one cublasLtMatmulAlgoGetHeuristic returned", fn);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
        if (algo->data[ALGO_TYPES] != algo_types(&p)) {
            say("%s: algo was chosen for other types (A, compute, C) than these", fn);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
        const mat *ops[4] = {&p.A, &p.B, &p.C, &p.D};
        for (int i = 0; i < 4; i++) {
            uint64_t want = algo->data[ALGO_ALIGN + i];
            if (ops[i]->p && (uintptr_t)ops[i]->p % want) {
                say("%s: %s at %p is only %u-byte aligned; the algorithm was chosen for %llu-byte aligned %s "
                    "(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%s_BYTES)",
                    fn, operand_names[i], ops[i]->p, align_of(ops[i]->p), (unsigned long long)want,
                    operand_names[i], operand_names[i]);
                return CUBLAS_STATUS_INVALID_VALUE;
            }
        }
    }
    float a, b;
    memcpy(&a, alpha, sizeof a);   /* scale type CUDA_R_32F, host pointer mode */
    memcpy(&b, beta, sizeof b);
    int reads = p.m > 0 && p.n > 0 && p.k > 0 && a != 0;
    if (p.m > 0 && p.n > 0) {
        s = memory_ok(fn, reads, b != 0, &p.A, &p.B, &p.C, &p.D);
        if (s)
            return s;
    }
    return compute(fn, p.ta, p.tb, p.m, p.n, p.k, a, &p.A, &p.B, b, &p.C, &p.D);
}

}   // extern "C"
