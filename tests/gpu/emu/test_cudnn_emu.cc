/* The emulation's cuDNN stand-in (cudnn_emu.cc) checked on its own
 * (tests/gpu/emu/run.sh runs it after test_cublas_emu).  The emulated
 * backend's cuDNN attention (cuda/attention_cudnn.cu) runs on it, and its
 * strictness is what catches that file's mistakes there: a graph whose
 * shapes do not chain, a variant pack missing a tensor, a pointer less
 * aligned than its tensor said.  A stand-in that computed wrongly, or let
 * such a call through, would hide them, so it is tested here, not only
 * through the backend.
 *
 * The library is loaded by the backend's own loader (cudnn_load.cu,
 * through dsk_cuda_dlopen: the emulation's, build/emu/lib).
 * Checked: a matmul, a by-value scale and reductions against a host
 * computation (exact: k/8 values), batches in groups; the causal
 * attention forward graph as attention_cudnn.cu's graph_fwd first built
 * it (bf16 Q, K^T, V and O token-major, grouped-query heads, Stats)
 * against a double-precision reference; RESHAPE as a transposed view of a
 * virtual and of a non-virtual tensor, and K and K^T under one uid; a
 * reduction over groups of heads; a virtual tensor whose strides overlap
 * (as cudnn-frontend declares dO * O); the pointwise modes,
 * BINARY_SELECT's operand roles and GEN_INDEX; and the refusals:
 * attributes (type, count, owner, values, after finalize), tensors,
 * operations whose shapes do not chain, graphs (uids, producers, cycles),
 * what is not emulated (at the plan), and Execute (variant pack, NULL and
 * misaligned pointers, workspace, unfinalized plan, an output overlapping
 * an input), each with its status (libcudnn 9.19's, where it was seen)
 * and a message naming the fault.  Operands come from the
 * emulation's cudaMalloc (exactly their size), so ASan sees a read past one.
 *
 * Refusals say why on stderr ("cudnn emu: ..."): expected here.  Prints
 * TAP, a line per family of cases, what failed in "# FAIL" lines before
 * it, the number of checks at the end; exit status 1 on any failure. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dlfcn.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cudnn_api.cuh"

static constexpr cudnnStatus_t OK = CUDNN_STATUS_SUCCESS, BAD = CUDNN_STATUS_BAD_PARAM,
                               BAD_TYPE = CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE,
                               NOT_INIT = CUDNN_STATUS_NOT_INITIALIZED,
                               NULLP = CUDNN_STATUS_BAD_PARAM_NULL_POINTER,
                               MISALIGNED = CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER,
                               NOT_FINAL = CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED,
                               UNSUPPORTED = CUDNN_STATUS_NOT_SUPPORTED, FAILED = CUDNN_STATUS_EXECUTION_FAILED;

#include "tap.h"


/* ---- the library, loaded by the backend's own loader (cudnn_load.cu) ---- */

static dsk_cudnn_api &dnn = dsk_cudnn;   /* its table of entry points */

static cudnnHandle_t H;

static const char *name_of(cudnnStatus_t s) { return dnn.GetErrorString ? dnn.GetErrorString(s) : "?"; }

/* Whether the last error message contains `part`. */
static bool said(const char *part)
{
    char m[1024] = "";
    dnn.GetLastErrorString(m, sizeof m);
    return strstr(m, part) != NULL;
}

/* The status of `call` is `want`, and (when given) the message says `part`. */
#define EXPECT(call, want, part) expect_at((call), (want), (part), #call, __LINE__)
static int expect_at(cudnnStatus_t got, cudnnStatus_t want, const char *part, const char *call, int line)
{
    if (!check_at(got == want, line, "%s -> %s, want %s", call, name_of(got), name_of(want)))
        return 0;
    if (part && got != OK && !said(part)) {
        char m[1024] = "";
        dnn.GetLastErrorString(m, sizeof m);
        return check_at(0, line, "%s: the message \"%s\" does not say \"%s\"", call, m, part);
    }
    return 1;
}

/* ---- descriptors and memory, freed at the end of each family ---- */

static std::vector<cudnnBackendDescriptor_t> made;
static std::vector<void *> allocated;

static void cleanup(void)
{
    for (size_t i = made.size(); i-- > 0;)
        dnn.DestroyDescriptor(made[i]);
    made.clear();
    for (void *p : allocated)
        cudaFree(p);
    allocated.clear();
}

static cudnnBackendDescriptor_t create(cudnnBackendDescriptorType_t t)
{
    cudnnBackendDescriptor_t d = NULL;
    if (dnn.CreateDescriptor(t, &d) != OK || !d) {
        printf("Bail out! cannot create descriptor type %d\n", (int)t);
        exit(1);
    }
    made.push_back(d);
    return d;
}

/* Device memory as the backend gets it: the emulation's cudaMalloc
 * (256-byte aligned, exactly `bytes`, filled with 0xff: NaN as floats). */
static void *dev_bytes(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        printf("Bail out! cudaMalloc(%zu) failed\n", bytes);
        exit(1);
    }
    allocated.push_back(p);
    return p;
}
static float *dev_f(size_t n) { return (float *)dev_bytes(n * sizeof(float)); }

static uint64_t rng = 88172645463325252ull;   /* xorshift64: the same cases every run */
static double urand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
/* k/8 in [-1, 1]: exact in bf16, and sums of their products exact in float. */
static float small(void) { return (float)((int)(urand() * 17) - 8) / 8.0f; }

static uint16_t to_bf16(float f)   /* round to nearest even */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}
static float from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- building graphs ---- */

#define SET(d, name, type, n, p) CHECK(dnn.SetAttribute((d), (name), (type), (n), (p)) == OK, "set %s", #name)

static std::vector<int64_t> dense(const std::vector<int64_t> &dims)
{
    std::vector<int64_t> s(dims.size());
    int64_t m = 1;
    for (size_t k = dims.size(); k-- > 0;) {
        s[k] = m;
        m *= dims[k];
    }
    return s;
}

/* A tensor (dense strides unless given), finalized with status want. */
static cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t type, std::vector<int64_t> dims,
                                       std::vector<int64_t> strides = {}, bool virt = false, bool by_value = false,
                                       int64_t align = 16, cudnnStatus_t want = OK)
{
    if (strides.empty())
        strides = dense(dims);
    cudnnBackendDescriptor_t t = create(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    SET(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    SET(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, (int64_t)dims.size(), dims.data());
    SET(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, (int64_t)strides.size(), strides.data());
    SET(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    SET(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    SET(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt);
    if (by_value)
        SET(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
    EXPECT(dnn.Finalize(t), want, NULL);
    return t;
}
static cudnnBackendDescriptor_t virt(int64_t uid, cudnnDataType_t type, std::vector<int64_t> dims,
                                     std::vector<int64_t> strides = {})
{
    return tensor(uid, type, dims, strides, true);
}

/* y = mode(x[, b[, t]]): the operation, finalized with status want. */
static cudnnBackendDescriptor_t pointwise(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                                          cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t,
                                          cudnnBackendDescriptor_t y, int64_t axis = -1, cudnnStatus_t want = OK,
                                          cudnnDataType_t prec = CUDNN_DATA_FLOAT, float alpha1 = 1, float alpha2 = 1)
{
    cudnnBackendDescriptor_t pw = create(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    SET(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    SET(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (axis >= 0)
        SET(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    EXPECT(dnn.Finalize(pw), OK, NULL);
    cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (b)
        SET(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    if (t)
        SET(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t);
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    if (alpha1 != 1)
        SET(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &alpha1);
    if (alpha2 != 1)
        SET(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &alpha2);
    EXPECT(dnn.Finalize(op), want, NULL);
    return op;
}

static cudnnBackendDescriptor_t matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                                       cudnnBackendDescriptor_t c, cudnnStatus_t want = OK)
{
    cudnnBackendDescriptor_t mm = create(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    SET(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    EXPECT(dnn.Finalize(mm), OK, NULL);
    cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    SET(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a);
    SET(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    SET(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c);
    SET(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm);
    EXPECT(dnn.Finalize(op), want, NULL);
    return op;
}

static cudnnBackendDescriptor_t reduce(cudnnReduceTensorOp_t how, cudnnBackendDescriptor_t x,
                                       cudnnBackendDescriptor_t y, cudnnStatus_t want = OK)
{
    cudnnBackendDescriptor_t rd = create(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    SET(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &how);
    SET(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    EXPECT(dnn.Finalize(rd), OK, NULL);
    cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    SET(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SET(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd);
    EXPECT(dnn.Finalize(op), want, NULL);
    return op;
}

static cudnnBackendDescriptor_t reshape(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y,
                                        cudnnStatus_t want = OK)
{
    cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    SET(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    EXPECT(dnn.Finalize(op), want, NULL);
    return op;
}

/* The operation graph of ops, finalized with status want. */
static cudnnBackendDescriptor_t graph(std::vector<cudnnBackendDescriptor_t> ops, cudnnStatus_t want = OK,
                                      const char *part = NULL)
{
    cudnnBackendDescriptor_t g = create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    SET(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &H);
    SET(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, (int64_t)ops.size(), ops.data());
    EXPECT(dnn.Finalize(g), want, part);
    return g;
}

/* g's execution plan as attention_cudnn.cu's cg_plan makes it (heuristics
 * counted, then filled into configurations of the caller's), its plan
 * finalized with status want; NULL unless OK. */
static cudnnBackendDescriptor_t plan_of(cudnnBackendDescriptor_t g, int64_t *workspace, cudnnStatus_t want = OK,
                                        const char *part = NULL)
{
    cudnnBackendDescriptor_t heur = create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    SET(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g);
    SET(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    EXPECT(dnn.Finalize(heur), OK, NULL);
    int64_t n = -1, got = -1;
    EXPECT(dnn.GetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL), OK, NULL);
    CHECK(n == 1, "heuristics: %lld configurations, want 1", (long long)n);
    cudnnBackendDescriptor_t cfg = create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    EXPECT(dnn.GetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &cfg), OK,
           NULL);
    CHECK(got == 1, "heuristics filled %lld configurations, want 1", (long long)got);
    cudnnBackendDescriptor_t plan = create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    SET(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &H);
    SET(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
    if (!EXPECT(dnn.Finalize(plan), want, part) || want != OK)
        return NULL;
    int64_t k = 0;
    *workspace = -1;
    EXPECT(dnn.GetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &k, workspace), OK,
           NULL);
    CHECK(k == 1 && *workspace > 0, "workspace: %lld values, %lld bytes", (long long)k, (long long)*workspace);
    return plan;
}

/* Runs plan on the tensors uids[i] at ptrs[i], as cg_execute does. */
static cudnnStatus_t run(cudnnBackendDescriptor_t plan, std::vector<int64_t> uids, std::vector<void *> ptrs,
                         void *workspace, bool finalize = true)
{
    cudnnBackendDescriptor_t pack = create(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    SET(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, (int64_t)uids.size(), uids.data());
    SET(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, (int64_t)ptrs.size(), ptrs.data());
    SET(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
    if (finalize)
        EXPECT(dnn.Finalize(pack), OK, NULL);
    return dnn.Execute(H, plan, pack);
}

/* ---- the families ---- */

static void test_load(void)
{
    char why[512] = "";
    if (!CHECK(dsk_cudnn_load(why, sizeof why), "dsk_cudnn_load: %s", why))
        return;
    CHECK(dnn.GetVersion() >= 91600, "version %zu", dnn.GetVersion());
    CHECK(!strcmp(dnn.GetErrorString(BAD), "CUDNN_STATUS_BAD_PARAM"), "%s", dnn.GetErrorString(BAD));
    CHECK(dnn.Create(&H) == OK && H, "cudnnCreate");   /* no stream set: the default one */
}

/* C = A B (batched, B in bf16), D = C * s (s by value; D in a transposed
 * layout), R = the sum of D's rows, X = the max over D's rows and columns. */
static void test_matmul_scale_reduce(void)
{
    const int64_t NB = 2, M = 3, K = 4, N = 5;
    float *A = dev_f(NB * M * K), *D = dev_f(NB * M * N), *R = dev_f(NB * M), *X = dev_f(NB);
    uint16_t *B = (uint16_t *)dev_bytes(NB * K * N * 2);
    std::vector<float> a(NB * M * K), b(NB * K * N);
    for (auto &v : a)
        v = small();
    for (size_t i = 0; i < b.size(); i++) {
        b[i] = small();
        B[i] = to_bf16(b[i]);
    }
    memcpy(A, a.data(), a.size() * 4);
    float scale = 0.5f;
    cudnnBackendDescriptor_t tA = tensor(1, CUDNN_DATA_FLOAT, {NB, M, K}),
                             tB = tensor(2, CUDNN_DATA_BFLOAT16, {NB, K, N}),
                             tC = virt(100, CUDNN_DATA_FLOAT, {NB, M, N}),
                             tS = tensor(3, CUDNN_DATA_FLOAT, {1, 1, 1}, {}, false, true),
                             tD = tensor(4, CUDNN_DATA_FLOAT, {NB, M, N}, {M * N, 1, M}),   /* column-major rows */
        tR = tensor(5, CUDNN_DATA_FLOAT, {NB, M, 1}), tX = tensor(6, CUDNN_DATA_FLOAT, {NB, 1, 1});
    cudnnBackendDescriptor_t g = graph({reduce(CUDNN_REDUCE_TENSOR_MAX, tD, tX), matmul(tA, tB, tC),
                                        pointwise(CUDNN_POINTWISE_MUL, tC, tS, NULL, tD),
                                        reduce(CUDNN_REDUCE_TENSOR_ADD, tD, tR)});   /* out of order: sorted */
    int64_t ws = 0;
    cudnnBackendDescriptor_t plan = plan_of(g, &ws);
    if (!plan)
        return;
    void *w = dev_bytes((size_t)ws);
    EXPECT(run(plan, {1, 2, 3, 4, 5, 6}, {A, B, &scale, D, R, X}, w), OK, NULL);
    int bad = 0;
    for (int64_t z = 0; z < NB; z++) {
        float mx = -INFINITY;
        for (int64_t i = 0; i < M; i++) {
            float row = 0;
            for (int64_t j = 0; j < N; j++) {
                float s = 0;
                for (int64_t l = 0; l < K; l++)
                    s += a[(z * M + i) * K + l] * b[(z * K + l) * N + j];
                s *= scale;
                row += s;
                mx = fmaxf(mx, s);
                bad += D[z * M * N + j * M + i] != s;
            }
            bad += R[z * M + i] != row;
        }
        bad += X[z] != mx;
    }
    CHECK(bad == 0, "%d values differ from the host's", bad);

    /* Batches in groups, either side: C [4] over A [2] (A's batch c / 2)
     * and over B [4]; then C [4] over A [4] and B [2] (B's batch c / 2). */
    float *ga = dev_f(2 * 2), *gb = dev_f(4 * 2), *gc = dev_f(4), *gd = dev_f(4);
    for (int i = 0; i < 4; i++)
        ga[i] = small();
    for (int i = 0; i < 8; i++)
        gb[i] = small();
    cudnnBackendDescriptor_t a2 = tensor(7, CUDNN_DATA_FLOAT, {2, 1, 2}), b4 = tensor(8, CUDNN_DATA_FLOAT, {4, 2, 1}),
                             c4 = tensor(9, CUDNN_DATA_FLOAT, {4, 1, 1}), b4t = tensor(8, CUDNN_DATA_FLOAT, {4, 1, 2}),
                             a2t = tensor(7, CUDNN_DATA_FLOAT, {2, 2, 1}), d4 = tensor(10, CUDNN_DATA_FLOAT, {4, 1, 1});
    plan = plan_of(graph({matmul(a2, b4, c4), matmul(b4t, a2t, d4)}), &ws);
    if (plan && EXPECT(run(plan, {7, 8, 9, 10}, {ga, gb, gc, gd}, dev_bytes((size_t)ws)), OK, NULL)) {
        bad = 0;
        for (int c = 0; c < 4; c++) {
            float want = ga[(c / 2) * 2] * gb[c * 2] + ga[(c / 2) * 2 + 1] * gb[c * 2 + 1];
            bad += gc[c] != want || gd[c] != want;
        }
        CHECK(bad == 0, "grouped batches: %d values wrong", bad);
    }
}

/* attention_cudnn.cu's graph_fwd, as it builds it: Q, K^T, V and O bf16
 * token-major rows, grouped-query heads, the causal mask, Stats. */
static void test_attention(void)
{
    const int64_t B = 2, T = 7, Hq = 4, KV = 2, hd = 8, G = Hq / KV;
    enum { Q = 1, Kt, V, O, STATS, SCALE, NEG_INF };
    size_t nq = B * T * Hq * hd, nk = B * T * KV * hd;
    uint16_t *q = (uint16_t *)dev_bytes(nq * 2), *k = (uint16_t *)dev_bytes(nk * 2),
             *v = (uint16_t *)dev_bytes(nk * 2), *o = (uint16_t *)dev_bytes(nq * 2);
    float *stats = dev_f(B * Hq * T);
    for (size_t i = 0; i < nq; i++)
        q[i] = to_bf16((float)(urand() * 2 - 1));
    for (size_t i = 0; i < nk; i++) {
        k[i] = to_bf16((float)(urand() * 2 - 1));
        v[i] = to_bf16((float)(urand() * 2 - 1));
    }
    std::vector<int64_t> q_dims = {B, Hq, T, hd}, q_str = {T * Hq * hd, hd, Hq * hd, 1};
    std::vector<int64_t> k_dims = {B, KV, T, hd}, k_str = {T * KV * hd, hd, KV * hd, 1};
    std::vector<int64_t> kt_dims = {B, KV, hd, T}, kt_str = {T * KV * hd, hd, 1, KV * hd};
    std::vector<int64_t> s_dims = {B, Hq, T, T}, r_dims = {B, Hq, T, 1}, r_str = {Hq * T, T, 1, 1}, one = {1, 1, 1, 1};
    cudnnBackendDescriptor_t tq = tensor(Q, CUDNN_DATA_BFLOAT16, q_dims, q_str),
                             tkt = tensor(Kt, CUDNN_DATA_BFLOAT16, kt_dims, kt_str),
                             tv = tensor(V, CUDNN_DATA_BFLOAT16, k_dims, k_str),
                             to = tensor(O, CUDNN_DATA_BFLOAT16, q_dims, q_str),
                             tst = tensor(STATS, CUDNN_DATA_FLOAT, r_dims, r_str),
                             tsc = tensor(SCALE, CUDNN_DATA_FLOAT, one, one, false, true),
                             tni = tensor(NEG_INF, CUDNN_DATA_FLOAT, one, one, false, true);
    int64_t u = 100;
    std::vector<cudnnBackendDescriptor_t> ops;
    cudnnBackendDescriptor_t qk = virt(u++, CUDNN_DATA_FLOAT, s_dims), scaled = virt(u++, CUDNN_DATA_FLOAT, s_dims),
                             row = virt(u++, CUDNN_DATA_INT32, s_dims), col = virt(u++, CUDNN_DATA_INT32, s_dims),
                             keep = virt(u++, CUDNN_DATA_BOOLEAN, s_dims), S = virt(u++, CUDNN_DATA_FLOAT, s_dims);
    ops.push_back(matmul(tq, tkt, qk));
    ops.push_back(pointwise(CUDNN_POINTWISE_MUL, qk, tsc, NULL, scaled));
    ops.push_back(pointwise(CUDNN_POINTWISE_GEN_INDEX, scaled, NULL, NULL, row, 2));
    ops.push_back(pointwise(CUDNN_POINTWISE_GEN_INDEX, scaled, NULL, NULL, col, 3));
    ops.push_back(pointwise(CUDNN_POINTWISE_CMP_GE, row, col, NULL, keep));
    ops.push_back(pointwise(CUDNN_POINTWISE_BINARY_SELECT, scaled, tni, keep, S));
    cudnnBackendDescriptor_t mx = virt(u++, CUDNN_DATA_FLOAT, r_dims, r_str), sh = virt(u++, CUDNN_DATA_FLOAT, s_dims),
                             e = virt(u++, CUDNN_DATA_FLOAT, s_dims), sum = virt(u++, CUDNN_DATA_FLOAT, r_dims, r_str),
                             lg = virt(u++, CUDNN_DATA_FLOAT, r_dims, r_str), p = virt(u++, CUDNN_DATA_FLOAT, s_dims);
    ops.push_back(reduce(CUDNN_REDUCE_TENSOR_MAX, S, mx));
    ops.push_back(pointwise(CUDNN_POINTWISE_SUB, S, mx, NULL, sh));
    ops.push_back(pointwise(CUDNN_POINTWISE_EXP, sh, NULL, NULL, e));
    ops.push_back(reduce(CUDNN_REDUCE_TENSOR_ADD, e, sum));
    ops.push_back(pointwise(CUDNN_POINTWISE_LOG, sum, NULL, NULL, lg));
    ops.push_back(pointwise(CUDNN_POINTWISE_ADD, mx, lg, NULL, tst));
    ops.push_back(pointwise(CUDNN_POINTWISE_DIV, e, sum, NULL, p));
    ops.push_back(matmul(p, tv, to));
    int64_t ws = 0;
    cudnnBackendDescriptor_t plan = plan_of(graph(ops), &ws);
    if (!plan)
        return;
    float scale = 1 / sqrtf((float)hd), neg_inf = -INFINITY;
    EXPECT(run(plan, {Q, Kt, V, O, STATS, SCALE, NEG_INF}, {q, k, v, o, stats, &scale, &neg_inf},
               dev_bytes((size_t)ws)),
           OK, NULL);
    int bad = 0;
    double worst = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < T; i++) {
                int64_t kh = h / G;
                std::vector<double> s(i + 1);
                double m = -INFINITY, l = 0;
                for (int64_t j = 0; j <= i; j++) {
                    double d = 0;
                    for (int64_t c = 0; c < hd; c++)
                        d += (double)from_bf16(q[(b * T + i) * Hq * hd + h * hd + c]) *
                             from_bf16(k[(b * T + j) * KV * hd + kh * hd + c]);
                    s[j] = d * scale;
                    m = fmax(m, s[j]);
                }
                for (int64_t j = 0; j <= i; j++)
                    l += exp(s[j] - m);
                double lse = m + log(l), got = stats[(b * Hq + h) * T + i];
                bad += fabs(got - lse) > 1e-5 * (1 + fabs(lse));
                for (int64_t c = 0; c < hd; c++) {
                    double ref = 0;
                    for (int64_t j = 0; j <= i; j++)
                        ref += exp(s[j] - m) / l * from_bf16(v[(b * T + j) * KV * hd + kh * hd + c]);
                    double out = from_bf16(o[(b * T + i) * Hq * hd + h * hd + c]), err = fabs(out - ref);
                    worst = fmax(worst, err);
                    bad += err > fabs(ref) / 256 + 1e-6;
                }
            }
    CHECK(bad == 0, "%d values of O and Stats differ from the reference (worst O error %g)", bad, worst);
}

/* RESHAPE as a view: a virtual tensor transposed, and K [B, KV, T, hd]
 * seen from a non-virtual K^T (both as cudnn-frontend's backward makes
 * them); a "reshape" that is not a view of the same memory refused. */
static void test_reshape(void)
{
    float *x = dev_f(24), *y = dev_f(24);
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    cudnnBackendDescriptor_t tx = tensor(1, CUDNN_DATA_FLOAT, {1, 2, 3, 4}),
                             v = virt(100, CUDNN_DATA_FLOAT, {1, 2, 3, 4}),
                             vt = virt(101, CUDNN_DATA_FLOAT, {1, 2, 4, 3}, {24, 12, 1, 4}),
                             ty = tensor(2, CUDNN_DATA_FLOAT, {1, 2, 4, 3});
    int64_t ws;
    cudnnBackendDescriptor_t plan =
        plan_of(graph({pointwise(CUDNN_POINTWISE_IDENTITY, tx, NULL, NULL, v), reshape(v, vt),
                       pointwise(CUDNN_POINTWISE_IDENTITY, vt, NULL, NULL, ty)}),
                &ws);
    if (plan) {
        EXPECT(run(plan, {1, 2}, {x, y}, dev_bytes((size_t)ws)), OK, NULL);
        int bad = 0;
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int i = 0; i < 3; i++)
                    bad += y[h * 12 + j * 3 + i] != x[h * 12 + i * 4 + j];
        CHECK(bad == 0, "transposed view: %d values wrong", bad);
    }

    /* K^T [1, KV, hd, T] over token-major rows [T, KV * hd], in bf16, seen as K. */
    const int64_t KV = 2, T = 3, hd = 4;
    uint16_t *kmem = (uint16_t *)dev_bytes(T * KV * hd * 2);
    float *kout = dev_f(KV * T * hd);
    for (int i = 0; i < T * KV * hd; i++)
        kmem[i] = to_bf16((float)i);
    cudnnBackendDescriptor_t kt = tensor(3, CUDNN_DATA_BFLOAT16, {1, KV, hd, T}, {T * KV * hd, hd, 1, KV * hd}),
                             kv = virt(102, CUDNN_DATA_BFLOAT16, {1, KV, T, hd}, {T * KV * hd, hd, KV * hd, 1}),
                             ko = tensor(4, CUDNN_DATA_FLOAT, {1, KV, T, hd});
    plan = plan_of(graph({reshape(kt, kv), pointwise(CUDNN_POINTWISE_IDENTITY, kv, NULL, NULL, ko)}), &ws);
    if (plan) {
        EXPECT(run(plan, {3, 4}, {kmem, kout}, dev_bytes((size_t)ws)), OK, NULL);
        int bad = 0;
        for (int h = 0; h < KV; h++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < hd; c++)
                    bad += kout[(h * T + t) * hd + c] != (float)(t * KV * hd + h * hd + c);
        CHECK(bad == 0, "K from K^T: %d values wrong", bad);
    }

    /* Not a view of the same memory: finalized (as 9.19 does), but not run. */
    cudnnBackendDescriptor_t a = tensor(5, CUDNN_DATA_FLOAT, {2, 3}), b = virt(103, CUDNN_DATA_FLOAT, {6}, {2}),
                             bo = tensor(6, CUDNN_DATA_FLOAT, {6});
    plan_of(graph({reshape(a, b), pointwise(CUDNN_POINTWISE_IDENTITY, b, NULL, NULL, bo)}), &ws, UNSUPPORTED,
            "not a view");
    cudnnBackendDescriptor_t c = virt(104, CUDNN_DATA_FLOAT, {6}), co = tensor(7, CUDNN_DATA_FLOAT, {6});
    plan_of(graph({reshape(a, c), pointwise(CUDNN_POINTWISE_IDENTITY, c, NULL, NULL, co)}), &ws);   /* [2, 3] as [6] */
    reshape(a, virt(105, CUDNN_DATA_FLOAT, {7}), BAD);
    CHECK(said("has not the elements"), "a reshape of 6 elements to 7: the message");

    /* K [.., T, hd] and K^T [.., hd, T] under one uid, one pointer (as 9.19
     * takes them): S = Q K^T, then S K, each read through its description. */
    const int64_t Tq = 3, D = 2;
    float *qm = dev_f(Tq * D), *km = dev_f(Tq * D), *out = dev_f(Tq * D);
    for (int i = 0; i < Tq * D; i++)
        qm[i] = small(), km[i] = small();
    cudnnBackendDescriptor_t tq = tensor(20, CUDNN_DATA_FLOAT, {1, Tq, D}),
                             tk = tensor(21, CUDNN_DATA_FLOAT, {1, Tq, D}),
                             tkt = tensor(21, CUDNN_DATA_FLOAT, {1, D, Tq}, {Tq * D, 1, D}),
                             ts = virt(106, CUDNN_DATA_FLOAT, {1, Tq, Tq}),
                             to = tensor(22, CUDNN_DATA_FLOAT, {1, Tq, D});
    plan = plan_of(graph({matmul(tq, tkt, ts), matmul(ts, tk, to)}), &ws);
    if (plan && EXPECT(run(plan, {20, 21, 22}, {qm, km, out}, dev_bytes((size_t)ws)), OK, NULL)) {
        int bad = 0;
        for (int i = 0; i < Tq; i++)
            for (int c2 = 0; c2 < D; c2++) {
                float want = 0;
                for (int j = 0; j < Tq; j++) {
                    float sij = 0;
                    for (int e = 0; e < D; e++)
                        sij += qm[i * D + e] * km[j * D + e];
                    want += sij * km[j * D + c2];
                }
                bad += fabsf(out[i * D + c2] - want) > 1e-6f;
            }
        CHECK(bad == 0, "K and K^T under one uid: %d values wrong", bad);
    }
}

/* Reductions over groups of heads (grouped-query attention's dK, dV), and
 * the other operators, against the host's. */
static void test_grouped_reduction(void)
{
    float *x = dev_f(24), *y = dev_f(12), *m = dev_f(4), *n2 = dev_f(4);
    for (int i = 0; i < 24; i++)
        x[i] = small();
    cudnnBackendDescriptor_t tx = tensor(1, CUDNN_DATA_FLOAT, {1, 4, 2, 3}),
                             ty = tensor(2, CUDNN_DATA_FLOAT, {1, 2, 2, 3}),
                             tm = tensor(3, CUDNN_DATA_FLOAT, {1, 4, 1, 1}),
                             tn = tensor(4, CUDNN_DATA_FLOAT, {1, 4, 1, 1});
    int64_t ws;
    cudnnBackendDescriptor_t plan =
        plan_of(graph({reduce(CUDNN_REDUCE_TENSOR_ADD, tx, ty), reduce(CUDNN_REDUCE_TENSOR_MIN, tx, tm),
                       reduce(CUDNN_REDUCE_TENSOR_NORM2, tx, tn)}),
                &ws);
    if (!plan)
        return;
    EXPECT(run(plan, {1, 2, 3, 4}, {x, y, m, n2}, dev_bytes((size_t)ws)), OK, NULL);
    int bad = 0;
    for (int g = 0; g < 2; g++)
        for (int i = 0; i < 6; i++)
            bad += y[g * 6 + i] != x[(2 * g) * 6 + i] + x[(2 * g + 1) * 6 + i];
    for (int h = 0; h < 4; h++) {
        float lo = INFINITY;
        double ss = 0;
        for (int i = 0; i < 6; i++) {
            lo = fminf(lo, x[h * 6 + i]);
            ss += (double)x[h * 6 + i] * x[h * 6 + i];
        }
        bad += m[h] != lo;
        bad += fabs(n2[h] - sqrt(ss)) > 1e-6;
    }
    CHECK(bad == 0, "%d values differ", bad);
    cudnnBackendDescriptor_t t3 = tensor(5, CUDNN_DATA_FLOAT, {1, 3, 2, 3});
    reduce(CUDNN_REDUCE_TENSOR_ADD, tx, t3, BAD);   /* 3 does not divide 4 */
    CHECK(said("reduction"), "the message does not name the reduction");
}

/* One pointwise operation y = mode(x, b) on [2, 3] floats (b [1, 3]:
 * broadcast), against f; 0 when it matches. */
static int pointwise_case(cudnnPointwiseMode_t mode, int arity, double (*f)(double, double), bool positive,
                          float alpha1 = 1, float alpha2 = 1)
{
    float *x = dev_f(6), *b = dev_f(3), *y = dev_f(6);
    for (int i = 0; i < 6; i++)
        x[i] = positive ? fabsf(small()) + 0.25f : small();
    for (int i = 0; i < 3; i++)
        b[i] = positive ? fabsf(small()) + 0.25f : small();
    x[1] = b[1];   /* one equal pair, for the comparisons */
    cudnnBackendDescriptor_t tx = tensor(1, CUDNN_DATA_FLOAT, {2, 3}), tb = tensor(2, CUDNN_DATA_FLOAT, {1, 3}),
                             ty = tensor(3, CUDNN_DATA_FLOAT, {2, 3});
    int64_t ws;
    cudnnBackendDescriptor_t plan =
        plan_of(graph({pointwise(mode, tx, arity > 1 ? tb : NULL, NULL, ty, -1, OK, CUDNN_DATA_FLOAT, alpha1, alpha2)}),
                &ws);
    if (!plan)
        return 1;
    std::vector<int64_t> uids = {1, 3};
    std::vector<void *> ptrs = {x, y};
    if (arity > 1)
        uids.push_back(2), ptrs.push_back(b);
    if (!EXPECT(run(plan, uids, ptrs, dev_bytes((size_t)ws)), OK, NULL))
        return 1;
    int bad = 0;
    for (int i = 0; i < 6; i++) {
        double want = (float)f(alpha1 * (double)x[i], alpha2 * (double)b[i % 3]);
        bad += !(fabs(y[i] - want) <= 1e-6 * (1 + fabs(want)));
    }
    return bad;
}

static void test_pointwise(void)
{
    static const struct {
        cudnnPointwiseMode_t mode;
        const char *name;
        int arity;
        bool positive;
        double (*f)(double, double);
    } cases[] = {
        {CUDNN_POINTWISE_ADD, "ADD", 2, false, [](double x, double b) { return x + b; }},
        {CUDNN_POINTWISE_SUB, "SUB", 2, false, [](double x, double b) { return x - b; }},
        {CUDNN_POINTWISE_MUL, "MUL", 2, false, [](double x, double b) { return x * b; }},
        {CUDNN_POINTWISE_DIV, "DIV", 2, true, [](double x, double b) { return x / b; }},
        {CUDNN_POINTWISE_MAX, "MAX", 2, false, [](double x, double b) { return fmax(x, b); }},
        {CUDNN_POINTWISE_MIN, "MIN", 2, false, [](double x, double b) { return fmin(x, b); }},
        {CUDNN_POINTWISE_EXP, "EXP", 1, false, [](double x, double) { return exp(x); }},
        {CUDNN_POINTWISE_LOG, "LOG", 1, true, [](double x, double) { return log(x); }},
        {CUDNN_POINTWISE_NEG, "NEG", 1, false, [](double x, double) { return -x; }},
        {CUDNN_POINTWISE_IDENTITY, "IDENTITY", 1, false, [](double x, double) { return x; }},
        {CUDNN_POINTWISE_RECIPROCAL, "RECIPROCAL", 1, true, [](double x, double) { return 1 / x; }},
        {CUDNN_POINTWISE_SQRT, "SQRT", 1, true, [](double x, double) { return sqrt(x); }},
        {CUDNN_POINTWISE_RSQRT, "RSQRT", 1, true, [](double x, double) { return 1 / sqrt(x); }},
        {CUDNN_POINTWISE_ABS, "ABS", 1, false, [](double x, double) { return fabs(x); }},
        {CUDNN_POINTWISE_TANH_FWD, "TANH_FWD", 1, false, [](double x, double) { return tanh(x); }},
        {CUDNN_POINTWISE_SIGMOID_FWD, "SIGMOID_FWD", 1, false, [](double x, double) { return 1 / (1 + exp(-x)); }},
        {CUDNN_POINTWISE_CMP_EQ, "CMP_EQ", 2, false, [](double x, double b) { return (double)(x == b); }},
        {CUDNN_POINTWISE_CMP_NEQ, "CMP_NEQ", 2, false, [](double x, double b) { return (double)(x != b); }},
        {CUDNN_POINTWISE_CMP_GT, "CMP_GT", 2, false, [](double x, double b) { return (double)(x > b); }},
        {CUDNN_POINTWISE_CMP_GE, "CMP_GE", 2, false, [](double x, double b) { return (double)(x >= b); }},
        {CUDNN_POINTWISE_CMP_LT, "CMP_LT", 2, false, [](double x, double b) { return (double)(x < b); }},
        {CUDNN_POINTWISE_CMP_LE, "CMP_LE", 2, false, [](double x, double b) { return (double)(x <= b); }},
        {CUDNN_POINTWISE_LOGICAL_AND, "LOGICAL_AND", 2, false,
         [](double x, double b) { return (double)(x != 0 && b != 0); }},
        {CUDNN_POINTWISE_LOGICAL_OR, "LOGICAL_OR", 2, false,
         [](double x, double b) { return (double)(x != 0 || b != 0); }},
        {CUDNN_POINTWISE_LOGICAL_NOT, "LOGICAL_NOT", 1, false, [](double x, double) { return (double)(x == 0); }},
    };
    for (auto &c : cases) {
        int bad = pointwise_case(c.mode, c.arity, c.f, c.positive);
        CHECK(bad == 0, "pointwise %s: %d values wrong", c.name, bad);
        cleanup();
    }
    CHECK(pointwise_case(CUDNN_POINTWISE_ADD, 2, [](double x, double b) { return x + b; }, false, 2, 0.5f) == 0,
          "ADD with alpha1 2, alpha2 0.5");
    cleanup();

    /* BINARY_SELECT: X where the mask T holds, B elsewhere; T from a
     * comparison, virtual boolean; GEN_INDEX's index along its axis. */
    float *x = dev_f(6), *b = dev_f(6), *y = dev_f(6);
    int32_t *r0 = (int32_t *)dev_bytes(24), *r1 = (int32_t *)dev_bytes(24);
    for (int i = 0; i < 6; i++)
        x[i] = small(), b[i] = 100 + i;
    x[0] = 0.5f, x[1] = -0.5f;
    cudnnBackendDescriptor_t tx = tensor(1, CUDNN_DATA_FLOAT, {2, 3}), tb = tensor(2, CUDNN_DATA_FLOAT, {2, 3}),
                             zero = tensor(3, CUDNN_DATA_FLOAT, {1, 1}, {}, false, true),
                             mask = virt(100, CUDNN_DATA_BOOLEAN, {2, 3}), ty = tensor(4, CUDNN_DATA_FLOAT, {2, 3}),
                             i0 = tensor(5, CUDNN_DATA_INT32, {2, 3}), i1 = tensor(6, CUDNN_DATA_INT32, {2, 3});
    int64_t ws;
    cudnnBackendDescriptor_t plan = plan_of(graph({pointwise(CUDNN_POINTWISE_CMP_GT, tx, zero, NULL, mask),
                                                   pointwise(CUDNN_POINTWISE_BINARY_SELECT, tx, tb, mask, ty),
                                                   pointwise(CUDNN_POINTWISE_GEN_INDEX, tx, NULL, NULL, i0, 0),
                                                   pointwise(CUDNN_POINTWISE_GEN_INDEX, tx, NULL, NULL, i1, 1)}),
                                            &ws);
    float z = 0;
    if (plan && EXPECT(run(plan, {1, 2, 3, 4, 5, 6}, {x, b, &z, y, r0, r1}, dev_bytes((size_t)ws)), OK, NULL)) {
        int bad = 0;
        for (int i = 0; i < 6; i++) {
            bad += y[i] != (x[i] > 0 ? x[i] : b[i]);
            bad += r0[i] != i / 3 || r1[i] != i % 3;
        }
        CHECK(bad == 0, "BINARY_SELECT (t ? x : b) or GEN_INDEX: %d values wrong", bad);
    }
}

/* SetAttribute, GetAttribute, Create and Finalize refusals. */
static void test_attribute_refusals(void)
{
    cudnnBackendDescriptor_t t = create(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    int32_t dims32[2] = {2, 3};
    int64_t dims[2] = {2, 3}, strides[2] = {3, 1}, uid = 1, uids[2] = {1, 2}, align = 16;
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT, comp = CUDNN_DATA_FLOAT;
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT32, 2, dims32), BAD_TYPE,
           "CUDNN_TYPE_INT64");
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 2, uids), BAD, "1 element");
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp), BAD,
           "not an attribute of CUDNN_BACKEND_TENSOR_DESCRIPTOR");
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, NULL), BAD, "NULL");
    int bogus = 99;
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &bogus), BAD, "cudnnDataType_t");
    int64_t many[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 9, many), BAD, "1 to 8");
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32), OK, NULL);
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 2, dims), OK, NULL);
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 2, strides), OK, NULL);
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align), OK, NULL);
    EXPECT(dnn.Finalize(t), BAD, "CUDNN_ATTR_TENSOR_UNIQUE_ID");   /* no uid */
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid), OK, NULL);
    int64_t ws = 0, n = 0;
    EXPECT(dnn.GetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &n, &ws), OK, NULL);
    CHECK(n == 1 && ws == 1, "GetAttribute of the uid: %lld values, %lld", (long long)n, (long long)ws);
    EXPECT(dnn.Finalize(t), OK, NULL);
    EXPECT(dnn.Finalize(t), BAD, "already finalized");
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid), BAD, "already finalized");

    /* Tensors that do not finalize. */
    tensor(2, CUDNN_DATA_FLOAT, {2, 3}, {3, 1, 1}, false, false, 16, BAD);
    CHECK(said("2 dimensions but 3 strides"), "dims and strides of two ranks");
    tensor(3, CUDNN_DATA_FLOAT, {2, 0}, {}, false, false, 16, BAD);
    CHECK(said("positive"), "a dimension 0");
    tensor(4, CUDNN_DATA_FLOAT, {2, 3}, {}, false, false, 6, BAD);
    CHECK(said("multiple of its element"), "alignment 6 for floats");
    tensor(4, CUDNN_DATA_FLOAT, {2, 3}, {-3, 1}, false, false, 16, BAD);
    CHECK(said("strides not negative"), "a negative stride");
    tensor(5, CUDNN_DATA_FLOAT, {1}, {}, true, true, 16, BAD);
    CHECK(said("both virtual and by value"), "virtual and by value");
    tensor(6, CUDNN_DATA_FLOAT, {2}, {}, false, true, 16, BAD);
    CHECK(said("not a scalar"), "by value, 2 elements");

    /* Descriptors as values: of the type the attribute takes, and finalized
     * by the time theirs is. */
    cudnnBackendDescriptor_t loose = create(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    cudnnBackendDescriptor_t pw = create(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    EXPECT(dnn.SetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &loose), OK,
           NULL);
    cudnnPointwiseMode_t gen = CUDNN_POINTWISE_GEN_INDEX;
    EXPECT(dnn.SetAttribute(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &gen), OK, NULL);
    EXPECT(dnn.SetAttribute(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32), OK, NULL);
    EXPECT(dnn.Finalize(pw), BAD, "CUDNN_ATTR_POINTWISE_AXIS");   /* GEN_INDEX needs its axis */
    int64_t axis = 1;
    EXPECT(dnn.SetAttribute(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis), OK, NULL);
    EXPECT(dnn.Finalize(pw), OK, NULL);
    EXPECT(dnn.SetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw), BAD,
           "takes CUDNN_BACKEND_TENSOR_DESCRIPTOR");
    double alpha = 2;
    EXPECT(dnn.SetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_DOUBLE, 1, &alpha), OK, NULL);
    EXPECT(dnn.SetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_INT64, 1, &alpha), BAD,
           "CUDNN_TYPE_FLOAT or CUDNN_TYPE_DOUBLE");
    EXPECT(dnn.SetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw),
           OK, NULL);
    cudnnBackendDescriptor_t y8 = tensor(9, CUDNN_DATA_FLOAT, {2, 3});
    EXPECT(dnn.SetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y8), OK,
           NULL);
    EXPECT(dnn.Finalize(op), BAD, "CUDNN_BACKEND_TENSOR_DESCRIPTOR given as CUDNN_ATTR_OPERATION_POINTWISE_XDESC is "
                                  "not finalized");

    /* What is not emulated, and what can only be read. */
    cudnnBackendDescriptor_t conv = NULL;
    EXPECT(dnn.CreateDescriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &conv), UNSUPPORTED, "not emulated");
    CHECK(conv == NULL, "a descriptor made for a type refused");
    cudnnBackendDescriptor_t heur = create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR),
                             plan = create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    EXPECT(dnn.GetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL), NOT_INIT,
           "not finalized");
    EXPECT(dnn.SetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &ws), UNSUPPORTED,
           "can only be read");
    EXPECT(dnn.Finalize(plan), NOT_FINAL, "CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG");
    ws = 0;
    EXPECT(dnn.GetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, NULL, &ws), OK, NULL);
    CHECK(ws == 1, "GetAttribute without elementCount: %lld", (long long)ws);
    EXPECT(dnn.GetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, NULL, NULL), NULLP, "elementCount");
    /* The message is kept until read, and reading clears it. */
    EXPECT(dnn.SetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid), BAD, NULL);
    EXPECT(dnn.GetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &n, &ws), OK, NULL);
    CHECK(said("already finalized"), "the message, after a call that succeeded");
    CHECK(!said("already"), "the message, read twice");
    EXPECT(dnn.SetAttribute(NULL, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid), NULLP, "NULL");
    cudnnHandle_t none = NULL;
    cudnnBackendDescriptor_t g = create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    EXPECT(dnn.SetAttribute(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &none), BAD, "NULL handle");
    EXPECT(dnn.SetAttribute(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t), BAD,
           "operation descriptors");

    /* A destroyed descriptor still referenced (by the finalized operation
     * below) is kept for it, but is no longer the caller's to use. */
    cudnnBackendDescriptor_t x = tensor(7, CUDNN_DATA_FLOAT, {2, 3}), y = tensor(8, CUDNN_DATA_INT32, {2, 3});
    cudnnBackendDescriptor_t gi = pointwise(CUDNN_POINTWISE_GEN_INDEX, x, NULL, NULL, y, 1);
    made.erase(std::find(made.begin(), made.end(), x));
    EXPECT(dnn.DestroyDescriptor(x), OK, NULL);
    EXPECT(dnn.SetAttribute(x, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid), BAD, "not a live descriptor");
    int64_t w2;
    CHECK(plan_of(graph({gi}), &w2) != NULL, "a graph of an operation whose input the caller destroyed");
}

/* Operations whose shapes do not chain, and graphs that do not hold together. */
static void test_graph_refusals(void)
{
    cudnnBackendDescriptor_t a = tensor(1, CUDNN_DATA_FLOAT, {2, 3, 4}), b = tensor(2, CUDNN_DATA_FLOAT, {2, 5, 6}),
                             c = tensor(3, CUDNN_DATA_FLOAT, {2, 3, 6});
    matmul(a, b, c, BAD);
    CHECK(said("[.., M, K]"), "matmul with K 4 and 5: the message");
    cudnnBackendDescriptor_t a3 = tensor(4, CUDNN_DATA_FLOAT, {3, 2, 2}), b2 = tensor(5, CUDNN_DATA_FLOAT, {2, 2, 2}),
                             c3 = tensor(6, CUDNN_DATA_FLOAT, {3, 2, 2});
    matmul(a3, b2, c3, BAD);   /* 2 does not divide 3 */
    CHECK(said("batch dimension 0"), "matmul batch 3 with 2: the message");
    cudnnBackendDescriptor_t a4 = tensor(7, CUDNN_DATA_FLOAT, {4, 2, 2}), c4 = tensor(8, CUDNN_DATA_FLOAT, {4, 2, 2});
    matmul(a4, b2, c4);   /* grouped: batch 4 of A and C over 2 of B */
    matmul(b2, a4, c4);   /* and of B and C over 2 of A */
    matmul(a4, b2, b2, BAD);   /* C's batch not the larger */
    CHECK(said("C's be the larger"), "matmul C batch 2 of A's 4: the message");
    cudnnBackendDescriptor_t r2 = tensor(9, CUDNN_DATA_FLOAT, {2, 2});
    matmul(r2, b2, c4, UNSUPPORTED);   /* ranks 2, 3, 3 */

    cudnnBackendDescriptor_t x = tensor(10, CUDNN_DATA_FLOAT, {2, 3}), y = tensor(11, CUDNN_DATA_FLOAT, {2, 3}),
                             z = tensor(12, CUDNN_DATA_FLOAT, {3, 2}), w = tensor(13, CUDNN_DATA_FLOAT, {2, 1, 3});
    pointwise(CUDNN_POINTWISE_EXP, x, y, NULL, z, -1, BAD);
    CHECK(said("takes X and Y"), "a unary mode given B");
    pointwise(CUDNN_POINTWISE_ADD, x, NULL, NULL, y, -1, BAD);
    CHECK(said("X, B and Y"), "a binary mode without B");
    pointwise(CUDNN_POINTWISE_ADD, x, z, NULL, y, -1, BAD);
    CHECK(said("does not broadcast"), "[3, 2] added to [2, 3]");
    pointwise(CUDNN_POINTWISE_ADD, x, w, NULL, y, -1, BAD);
    CHECK(said("does not broadcast"), "rank 3 added to rank 2");
    pointwise(CUDNN_POINTWISE_BINARY_SELECT, x, y, NULL, z, -1, BAD);
    CHECK(said("X, B, T and Y"), "BINARY_SELECT without its mask");

    /* One uid in two descriptions: a graph input may be (a view of the same
     * pointer), an operation's output may not. */
    cudnnBackendDescriptor_t x2 = tensor(10, CUDNN_DATA_FLOAT, {2, 3});
    cudnnBackendDescriptor_t xt = tensor(10, CUDNN_DATA_FLOAT, {3, 2}, {1, 3});
    cudnnBackendDescriptor_t v1 = virt(100, CUDNN_DATA_FLOAT, {2, 3}), v2 = virt(101, CUDNN_DATA_FLOAT, {3, 2});
    cudnnBackendDescriptor_t v1t = virt(100, CUDNN_DATA_FLOAT, {3, 2}, {1, 3});
    graph({pointwise(CUDNN_POINTWISE_ADD, x, x2, NULL, y)});
    graph({pointwise(CUDNN_POINTWISE_IDENTITY, x, NULL, NULL, v1),
           pointwise(CUDNN_POINTWISE_IDENTITY, xt, NULL, NULL, v2), pointwise(CUDNN_POINTWISE_ADD, v1, v1, NULL, y)});
    graph({pointwise(CUDNN_POINTWISE_IDENTITY, x, NULL, NULL, v1),
           pointwise(CUDNN_POINTWISE_IDENTITY, v1t, NULL, NULL, z)},
          BAD, "uid 100 is described two ways");
    /* A virtual tensor nothing produces; one produced twice; a cycle. */
    graph({pointwise(CUDNN_POINTWISE_IDENTITY, v1, NULL, NULL, y)}, BAD, "no operation produces it");
    graph({pointwise(CUDNN_POINTWISE_IDENTITY, x, NULL, NULL, v1), pointwise(CUDNN_POINTWISE_NEG, x, NULL, NULL, v1),
           pointwise(CUDNN_POINTWISE_IDENTITY, v1, NULL, NULL, y)},
          BAD, "is the output of operations");
    cudnnBackendDescriptor_t v3 = virt(102, CUDNN_DATA_FLOAT, {2, 3});
    graph({pointwise(CUDNN_POINTWISE_ADD, x, v3, NULL, v1), pointwise(CUDNN_POINTWISE_IDENTITY, v1, NULL, NULL, v3),
           pointwise(CUDNN_POINTWISE_IDENTITY, v1, NULL, NULL, y)},
          BAD, "cycle");
    /* A non-virtual output two of whose elements share an address. */
    cudnnBackendDescriptor_t o = tensor(14, CUDNN_DATA_FLOAT, {2, 3}, {1, 1});
    graph({pointwise(CUDNN_POINTWISE_IDENTITY, x, NULL, NULL, o)}, BAD, "two of its elements one address");

    /* A mode the interpreter does not run: refused at the plan, by name. */
    cudnnBackendDescriptor_t g = graph({pointwise(CUDNN_POINTWISE_GELU_FWD, x, NULL, NULL, y)});
    int64_t ws;
    plan_of(g, &ws, UNSUPPORTED, "CUDNN_POINTWISE_GELU_FWD");
    /* ...and a non-virtual boolean (its layout). */
    cudnnBackendDescriptor_t bo = tensor(15, CUDNN_DATA_BOOLEAN, {2, 3});
    plan_of(graph({pointwise(CUDNN_POINTWISE_CMP_GT, x, y, NULL, bo)}), &ws, UNSUPPORTED, "BOOLEAN");
}

/* A virtual tensor whose strides overlap, as cudnn-frontend's SDPA
 * backward declares dO * O ([b, h, s, d] with strides {h s d, s d, h d,
 * 1}): its strides are immaterial, the values right; it cannot be
 * reshaped (no view to take). */
static void test_overlapping_virtual(void)
{
    const int64_t B = 1, Hh = 2, S = 3, D = 4;
    float *x = dev_f(B * Hh * S * D), *b = dev_f(B * Hh * S * D), *r = dev_f(B * Hh * S);
    for (int i = 0; i < B * Hh * S * D; i++)
        x[i] = small(), b[i] = small();
    std::vector<int64_t> dims = {B, Hh, S, D}, str = {Hh * S * D, S * D, Hh * D, 1};
    cudnnBackendDescriptor_t tx = tensor(1, CUDNN_DATA_FLOAT, dims), tb = tensor(2, CUDNN_DATA_FLOAT, dims),
                             prod = virt(100, CUDNN_DATA_FLOAT, dims, str),
                             tr = tensor(3, CUDNN_DATA_FLOAT, {B, Hh, S, 1});
    int64_t ws;
    cudnnBackendDescriptor_t plan =
        plan_of(graph({pointwise(CUDNN_POINTWISE_MUL, tx, tb, NULL, prod), reduce(CUDNN_REDUCE_TENSOR_ADD, prod, tr)}),
                &ws);
    if (plan && EXPECT(run(plan, {1, 2, 3}, {x, b, r}, dev_bytes((size_t)ws)), OK, NULL)) {
        int bad = 0;
        for (int i = 0; i < B * Hh * S; i++) {
            float sum = 0;
            for (int d = 0; d < D; d++)
                sum += x[i * D + d] * b[i * D + d];
            bad += r[i] != sum;
        }
        CHECK(bad == 0, "rowsum(x * b) through an overlapping virtual: %d values wrong", bad);
    }
    cudnnBackendDescriptor_t flat = virt(101, CUDNN_DATA_FLOAT, {B * Hh * S * D}), y = tensor(4, CUDNN_DATA_FLOAT,
                                                                                              {B * Hh * S * D});
    plan_of(graph({pointwise(CUDNN_POINTWISE_MUL, tx, tb, NULL, prod), reshape(prod, flat),
                   pointwise(CUDNN_POINTWISE_IDENTITY, flat, NULL, NULL, y)}),
            &ws, UNSUPPORTED, "no view");
}

/* Execute's refusals, on y = x + b (and y = identity(v), v = x + b); the
 * output untouched by each. */
static void test_execute_refusals(void)
{
    float *x = dev_f(6), *b = dev_f(6), *y = dev_f(6);
    for (int i = 0; i < 6; i++)
        x[i] = small(), b[i] = small();
    cudnnBackendDescriptor_t tx = tensor(1, CUDNN_DATA_FLOAT, {2, 3}), tb = tensor(2, CUDNN_DATA_FLOAT, {2, 3}),
                             ty = tensor(3, CUDNN_DATA_FLOAT, {2, 3}), tv = virt(100, CUDNN_DATA_FLOAT, {2, 3});
    int64_t ws;
    cudnnBackendDescriptor_t plan = plan_of(graph({pointwise(CUDNN_POINTWISE_ADD, tx, tb, NULL, tv),
                                                   pointwise(CUDNN_POINTWISE_IDENTITY, tv, NULL, NULL, ty)}),
                                            &ws);
    if (!plan)
        return;
    void *w = dev_bytes((size_t)ws);
    EXPECT(run(plan, {1, 2}, {x, b}, w), BAD, "no pointer for tensor uid 3");
    EXPECT(run(plan, {1, 2, 3, 100}, {x, b, y, y}, w), BAD, "uid 100 is virtual");
    EXPECT(run(plan, {1, 2, 3, 2}, {x, b, y, b}, w), BAD, "uid 2 is given twice");
    EXPECT(run(plan, {1, 2, 3, 7}, {x, b, y, y}, w), BAD, "uid 7 is not a tensor");
    EXPECT(run(plan, {1, 2, 3}, {x, NULL, y}, w), NULLP, "uid 2 is NULL");
    EXPECT(run(plan, {1, 2, 3}, {x, b + 1, y}, w), MISALIGNED, "CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT");
    EXPECT(run(plan, {1, 2, 3}, {x, b, y}, NULL), NULLP, "workspace");
    EXPECT(run(plan, {1, 2, 3}, {x, b, y}, w, false), NOT_FINAL, "variant pack is not finalized");
    EXPECT(run(plan, {1, 2, 3}, {x, b, x}, w), FAILED, "shares memory");
    int untouched = 0;
    for (int i = 0; i < 6; i++)
        untouched += isnan(y[i]);
    CHECK(untouched == 6, "refused runs wrote %d elements of the output", 6 - untouched);

    cudnnBackendDescriptor_t cfg_less = create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    EXPECT(run(cfg_less, {1, 2, 3}, {x, b, y}, w), NOT_FINAL, "execution plan is not finalized");
    EXPECT(dnn.SetStream(H, (cudaStream_t)0), OK, NULL);
    EXPECT(run(plan, {1, 2, 3}, {x, b, y}, w), OK, NULL);
    int bad = 0;
    for (int i = 0; i < 6; i++)
        bad += y[i] != x[i] + b[i];
    CHECK(bad == 0, "after the refusals: %d values wrong", bad);

    /* Interleaved in one buffer, sharing no byte: fine. */
    float *buf = dev_f(12);
    for (int i = 0; i < 12; i++)
        buf[i] = (float)i;
    cudnnBackendDescriptor_t even = tensor(4, CUDNN_DATA_FLOAT, {6}, {2}, false, false, 4),
                             odd = tensor(5, CUDNN_DATA_FLOAT, {6}, {2}, false, false, 4);
    plan = plan_of(graph({pointwise(CUDNN_POINTWISE_NEG, even, NULL, NULL, odd)}), &ws);
    if (plan && EXPECT(run(plan, {4, 5}, {buf, buf + 1}, w), OK, NULL)) {
        bad = 0;
        for (int i = 0; i < 6; i++)
            bad += buf[2 * i] != 2 * i || buf[2 * i + 1] != -2 * i;
        CHECK(bad == 0, "interleaved: %d values wrong", bad);
    }
}

static void test_destroy(void)
{
    CHECK(dnn.Destroy(H) == OK, "cudnnDestroy");
    EXPECT(dnn.Destroy(NULL), BAD, "NULL");
}

int main(void)
{
    static const struct {
        void (*run)(void);
        const char *what;
    } families[] = {
        {test_load, "dsk_cudnn_load opens the stand-in; its version; a handle, no stream set"},
        {test_matmul_scale_reduce, "matmul (bf16 B, batched), a by-value scale, ADD and MAX reductions, a "
                                   "transposed output; operations listed out of order; batches in groups of A or "
                                   "B; exact"},
        {test_attention, "attention_cudnn.cu's forward graph: causal, 4 query heads on 2 key heads, bf16 "
                         "token-major Q, K^T, V, O, and Stats, against a double reference"},
        {test_reshape, "RESHAPE: a transposed view of a virtual tensor, K from a non-virtual K^T, not a view refused "
                       "at the plan; K and K^T under one uid"},
        {test_grouped_reduction, "reductions over groups of heads, MIN and NORM2; a group size that does not divide "
                                 "refused"},
        {test_pointwise, "pointwise modes against the host's, broadcast B, alphas; BINARY_SELECT is t ? x : b; "
                         "GEN_INDEX"},
        {test_attribute_refusals, "attribute refusals (type, count, owner, value, NULL, after finalize), tensors "
                                  "that do not finalize, descriptors as values, a destroyed one still referenced"},
        {test_graph_refusals, "operations whose shapes do not chain; graphs: uids, producers, a cycle, a "
                              "non-virtual output overlapping itself; a mode not emulated refused at the plan"},
        {test_overlapping_virtual, "a virtual tensor whose strides overlap (cudnn-frontend's dO * O): kept dense, "
                                   "right; not reshaped"},
        {test_execute_refusals, "Execute refusals: variant pack (missing, virtual, twice, unknown), NULL, "
                                "misaligned, no workspace, not finalized, an output on an input; interleaved fine"},
        {test_destroy, "handle destroyed"},
    };
    for (const auto &f : families) {
        f.run();
        cleanup();
        tap(f.what);
        if (f.run == test_load && n_failed) {
            printf("Bail out! the stand-in cannot be loaded\n");
            return 1;
        }
    }
    printf("# %d checks, %d failed\n1..%d\n", n_checks, n_checks_failed, n_tests);
    return n_failed != 0;
}
