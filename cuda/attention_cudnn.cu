/* The flash attention through cuDNN (DSK_CUDA_ATTN=cudnn): its fused
 * scaled-dot-product attention engines, forward and backward, reached
 * through the backend graph API (C: no cudnn-frontend), libcudnn loaded
 * at run time as cuBLAS is (cudnn_load.cu).
 *
 * Why: cuDNN's attention is NVIDIA's own for each architecture (on
 * Hopper, warp-specialised kernels on the tensor memory accelerator),
 * what PyTorch's scaled_dot_product_attention runs on an H100; the
 * hand-written kernels here reach about 110 TFLOPS there.  The graph
 * these engines recognise is the attention written out as operations:
 *   S = (Q K^T) * scale, masked (key j after query i, or before its
 *   window, gets -inf), Stats = max + log(sum(exp(S - max))) per row,
 *   O = softmax(S) V
 * and, backward, the same S from Q, K and Stats, then dV = P^T dO,
 * dP = dO V^T, dS = P * (dP - rowsum(dO * O)) * scale, dQ = dS K,
 * dK = dS^T Q (graph_fwd, graph_bwd).  Stats is our log-sum-exp (lse:
 * natural log of the sum over the scaled scores), so either side can
 * pair with the other kernels'.
 *
 * What it runs: bf16 products (gemm_dtype bf16), a global or local
 * (sliding-window) layer, heads a multiple of 8 up to 128; the other
 * kernels take the rest.  Rows of one document each
 * (dsk_attn_shape.whole_rows) get the causal and window masks in the
 * form the frontend writes them, which the engines know and skip whole
 * tiles by; rows of several documents get one more mask, key j hidden
 * before the query's first visible key (a [B, 1, T, 1] tensor made from
 * pos), which an engine may or may not take.  q, k, v, dO and O are
 * rounded to bf16 first (as the default kernels do); O, dQ, dK and dV
 * come back in bf16 and are widened to the float32 the backend
 * interface holds.  A graph cuDNN refuses (no engine for it on this
 * device, or a library older than the graph needs) is said once on
 * stderr with cuDNN's reason, and that shape goes to the other kernels
 * from then on. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DSK_NO_CUDNN
/* Built without cuDNN's headers: DSK_CUDA_ATTN=cudnn cannot be chosen
 * (dsk_cudnn_load says why), and nothing here runs. */
#include "cuda_internal.cuh"

void dsk_cuda_dnn_destroy(dsk_cuda *cb) { (void)cb; }
long dsk_cuda_dnn_runs(const dsk_cuda *cb) { return (void)cb, 0; }
int dsk_cuda_attention_cudnn_fwd(dsk_cuda *, float *, float *, const float *, const float *, const float *,
                                 const int32_t *, const dsk_attn_shape *)
{
    return 0;
}
int dsk_cuda_attention_cudnn_bwd(dsk_cuda *, float *, float *, float *, const float *, const float *, const float *,
                                 const float *, const float *, const float *, const int32_t *, const dsk_attn_shape *)
{
    return 0;
}
#else
#include "cudnn_api.cuh"
#include "ops/attn_first.h"

/* ---- a graph under construction ----
 * Every call records the first failure (which call, cuDNN's status and
 * its last error message) and does nothing after it, so a builder reads
 * as the graph it builds, with one check at its end. */

enum { CG_MAX_DESCS = 256, CG_MAX_OPS = 64 };

typedef struct cg {
    cudnnBackendDescriptor_t all[CG_MAX_DESCS];   /* everything made, destroyed with the plan */
    int n_all;
    cudnnBackendDescriptor_t ops[CG_MAX_OPS];     /* the operations, in order */
    int n_ops;
    cudnnStatus_t st;
    char why[768];
    /* How the graph is written (the frontend has written it each way
     * against cuDNN 9; dnn_plan_for tries them in turn): the index
     * generators computing in int32 rather than float, the backward's
     * mask before the statistics' subtraction, not after, and (rows of
     * several documents) the document mask before the causal one. */
    int index_int32, mask_first, doc_first;
} cg;

static int cg_ok(const cg *g) { return g->st == CUDNN_STATUS_SUCCESS; }

static void cg_failed(cg *g, cudnnStatus_t st, const char *what)
{
    if (!cg_ok(g))
        return;
    g->st = st;
    char last[512] = "";
    if (dsk_cudnn.GetLastErrorString)
        dsk_cudnn.GetLastErrorString(last, sizeof last);
    snprintf(g->why, sizeof g->why, "%s: %s%s%s", what, dsk_cudnn.GetErrorString(st), *last ? ": " : "", last);
}

static cudnnBackendDescriptor_t cg_new(cg *g, cudnnBackendDescriptorType_t type, const char *what)
{
    if (!cg_ok(g))
        return NULL;
    if (g->n_all == CG_MAX_DESCS) {
        cg_failed(g, CUDNN_STATUS_INTERNAL_ERROR, "too many descriptors");
        return NULL;
    }
    cudnnBackendDescriptor_t d = NULL;
    cudnnStatus_t st = dsk_cudnn.CreateDescriptor(type, &d);
    if (st != CUDNN_STATUS_SUCCESS) {
        cg_failed(g, st, what);
        return NULL;
    }
    g->all[g->n_all++] = d;
    return d;
}

static void cg_set(cg *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                   cudnnBackendAttributeType_t type, int64_t count, const void *value, const char *what)
{
    if (!cg_ok(g))
        return;
    cudnnStatus_t st = dsk_cudnn.SetAttribute(d, name, type, count, value);
    if (st != CUDNN_STATUS_SUCCESS)
        cg_failed(g, st, what);
}

/* d's attribute `name`, one descriptor (an operation's operand, say). */
static void cg_link(cg *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t value,
                    const char *what)
{
    cg_set(g, d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value, what);
}

static void cg_finalize(cg *g, cudnnBackendDescriptor_t d, const char *what)
{
    if (!cg_ok(g))
        return;
    cudnnStatus_t st = dsk_cudnn.Finalize(d);
    if (st != CUDNN_STATUS_SUCCESS)
        cg_failed(g, st, what);
}

static void cg_free(cg *g)
{
    for (int i = g->n_all - 1; i >= 0; i--)
        dsk_cudnn.DestroyDescriptor(g->all[i]);
    g->n_all = g->n_ops = 0;
}

/* A 4-d tensor: dims and strides in elements. */
static cudnnBackendDescriptor_t cg_tensor(cg *g, int64_t uid, cudnnDataType_t type, const int64_t dims[4],
                                          const int64_t strides[4], bool is_virtual, bool by_value)
{
    cudnnBackendDescriptor_t t = cg_new(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
    int64_t align = 16;
    cg_set(g, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor data type");
    cg_set(g, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, "tensor dimensions");
    cg_set(g, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, "tensor strides");
    cg_set(g, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid");
    cg_set(g, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
    cg_set(g, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor virtual");
    if (by_value)
        cg_set(g, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "tensor by value");
    cg_finalize(g, t, "tensor");
    return t;
}

static void cg_op(cg *g, cudnnBackendDescriptor_t op, const char *what)
{
    cg_finalize(g, op, what);
    if (!cg_ok(g))
        return;
    if (g->n_ops == CG_MAX_OPS) {
        cg_failed(g, CUDNN_STATUS_INTERNAL_ERROR, "too many operations");
        return;
    }
    g->ops[g->n_ops++] = op;
}

/* y = mode(x[, b[, t]]) computed in prec; axis >= 0 for GEN_INDEX (the
 * index along that axis).  CMP_*: y = x OP b; BINARY_SELECT: y = t ? x :
 * b.  Both scales (alpha1, alpha2) 1, as the frontend sets them. */
static void cg_pointwise(cg *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec, cudnnBackendDescriptor_t x,
                         cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                         int64_t axis, const char *what)
{
    cudnnBackendDescriptor_t pw = cg_new(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, what);
    cg_set(g, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, what);
    cg_set(g, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, what);
    if (axis >= 0)
        cg_set(g, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, what);
    cg_finalize(g, pw, what);
    cudnnBackendDescriptor_t op = cg_new(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, what);
    float one = 1.0f;
    cg_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, what);
    if (b)
        cg_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, what);
    if (t)
        cg_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, what);
    cg_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, what);
    cg_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, what);
    cg_op(g, op, what);
}

/* y = x's elements under y's dimensions and strides (a transposed view). */
static void cg_reshape(cg *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y, const char *what)
{
    cudnnBackendDescriptor_t op = cg_new(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y, what);
    cg_op(g, op, what);
}

/* c = a b over the last two dimensions, batched over the first two. */
static void cg_matmul(cg *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c,
                      const char *what)
{
    cudnnBackendDescriptor_t mm = cg_new(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR, what);
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cg_set(g, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, what);
    cg_finalize(g, mm, what);
    cudnnBackendDescriptor_t op = cg_new(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, mm, what);
    cg_op(g, op, what);
}

/* y = the reduction of x over the dimensions where y's are 1. */
static void cg_reduce(cg *g, cudnnReduceTensorOp_t how, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y,
                      const char *what)
{
    cudnnBackendDescriptor_t rd = cg_new(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, what);
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cg_set(g, rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &how, what);
    cg_set(g, rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, what);
    cg_finalize(g, rd, what);
    cudnnBackendDescriptor_t op = cg_new(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, what);
    cg_link(g, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, rd, what);
    cg_op(g, op, what);
}

/* The most workspace a plan may ask for: more is a plan for another kind
 * of device budget than the attention's (the default kernels need none). */
static const int64_t DNN_MAX_WORKSPACE = (int64_t)1 << 30;

/* The graph's execution plan: the first engine configuration that
 * finalizes (with at most DNN_MAX_WORKSPACE of workspace), of heuristics
 * mode A's list and then the fallback list's; *workspace its bytes of
 * workspace.  NULL (and g's failure) when none. */
static cudnnBackendDescriptor_t cg_plan(cg *g, cudnnHandle_t handle, int64_t *workspace)
{
    cudnnBackendDescriptor_t graph = cg_new(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    cg_set(g, graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "operation graph handle");
    cg_set(g, graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->n_ops, g->ops,
           "operation graph ops");
    cg_finalize(g, graph, "operation graph");
    static const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    char refused[768] = "no engine configuration";
    for (int m = 0; m < 2 && cg_ok(g); m++) {
        cudnnBackendDescriptor_t heur = cg_new(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
        cg_link(g, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph, "heuristics graph");
        cg_set(g, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &modes[m], "heuristics mode");
        cg_finalize(g, heur, m ? "heuristics (fallback)" : "heuristics (mode A)");
        if (!cg_ok(g))
            break;
        int64_t n = 0;
        cudnnStatus_t st =
            dsk_cudnn.GetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL);
        if (st != CUDNN_STATUS_SUCCESS) {
            cg_failed(g, st, "heuristics results (count)");
            break;
        }
        if (n > 8)   /* the first few: the heuristics' best */
            n = 8;
        if (n <= 0)
            continue;
        cudnnBackendDescriptor_t cfgs[8];
        for (int64_t i = 0; i < n; i++)
            cfgs[i] = cg_new(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine configuration");
        int64_t got = 0;
        if (cg_ok(g)) {
            st = dsk_cudnn.GetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got,
                                        cfgs);
            if (st != CUDNN_STATUS_SUCCESS)
                cg_failed(g, st, "heuristics results");
        }
        for (int64_t i = 0; i < got && cg_ok(g); i++) {
            cudnnBackendDescriptor_t plan = cg_new(g, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
            if (!plan)
                break;
            /* Deprecated in 9 (the graph's handle is the one that counts):
             * set for older libraries, its refusal ignored. */
            if (dsk_cudnn.SetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle) !=
                CUDNN_STATUS_SUCCESS) {
                char stale[512];   /* its message, which would be taken for a later failure's */
                dsk_cudnn.GetLastErrorString(stale, sizeof stale);
            }
            cg_link(g, plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfgs[i], "plan engine configuration");
            if (!cg_ok(g))
                break;
            st = dsk_cudnn.Finalize(plan);
            if (st != CUDNN_STATUS_SUCCESS) {   /* this configuration cannot run it: the next */
                char last[512] = "";
                dsk_cudnn.GetLastErrorString(last, sizeof last);
                snprintf(refused, sizeof refused, "execution plan: %s%s%s", dsk_cudnn.GetErrorString(st),
                         *last ? ": " : "", last);
                continue;
            }
            int64_t ws = 0, k = 0;
            st = dsk_cudnn.GetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &k, &ws);
            if (st != CUDNN_STATUS_SUCCESS) {
                cg_failed(g, st, "plan workspace size");
                break;
            }
            if (ws > DNN_MAX_WORKSPACE) {   /* a deterministic engine's T x T buffers, say: the next */
                snprintf(refused, sizeof refused, "the plan wants %lld bytes of workspace (at most %lld taken)",
                         (long long)ws, (long long)DNN_MAX_WORKSPACE);
                continue;
            }
            *workspace = ws;
            return plan;
        }
    }
    if (cg_ok(g)) {
        g->st = CUDNN_STATUS_NOT_SUPPORTED;
        snprintf(g->why, sizeof g->why, "%s", refused);
    }
    return NULL;
}

/* Runs plan on the tensors uids[i] at ptrs[i] (a by-value tensor's
 * pointer is to its host value). */
static cudnnStatus_t cg_execute(cudnnHandle_t handle, cudnnBackendDescriptor_t plan, int n, const int64_t *uids,
                                void *const *ptrs, void *workspace)
{
    cudnnBackendDescriptor_t pack = NULL;
    cudnnStatus_t st = dsk_cudnn.CreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack);
    if (st == CUDNN_STATUS_SUCCESS)
        st = dsk_cudnn.SetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (st == CUDNN_STATUS_SUCCESS)
        st = dsk_cudnn.SetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (st == CUDNN_STATUS_SUCCESS)
        st = dsk_cudnn.SetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
    if (st == CUDNN_STATUS_SUCCESS)
        st = dsk_cudnn.Finalize(pack);
    if (st == CUDNN_STATUS_SUCCESS)
        st = dsk_cudnn.Execute(handle, plan, pack);
    if (pack)
        dsk_cudnn.DestroyDescriptor(pack);
    return st;
}

/* ---- the graphs ---- */

/* Tensors' unique ids (the variant pack names the graph's real ones by
 * them; the intermediate, virtual ones count up from UID_VIRTUAL). */
enum {
    UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS, UID_DO, UID_DQ, UID_DK, UID_DV,
    UID_SCALE, UID_ONE, UID_NEG_INF, UID_NEG_INF_WINDOW, UID_WINDOW,
    UID_SOFTMAX_SUM,   /* backward: rowsum(dO * O), float [B, H, T, 1] */
    UID_DQ_ACCUM,      /* backward: dQ accumulated in float, [B, H, T, hd] packed */
    UID_FIRST,         /* rows of several documents: each query's first visible key, float [B, 1, T, 1] */
    UID_VIRTUAL = 100
};

/* The shapes and strides of a layer's tensors, in elements: Q and O
 * [B, H, T, hd] and K and V [B, KV, T, hd] over token-major rows (the
 * layout the backend interface holds), K^T (and V^T) the [B, KV, hd, T]
 * view of K, the scores [B, H, T, T] and their transposed view, a row's
 * statistics [B, H, T, 1] packed (lse's layout: (b*H + h)*T + i), a
 * packed [B, H, T, hd] and a by-value scalar. */
typedef struct layout {
    int64_t q_dims[4], q_str[4], k_dims[4], k_str[4], kt_dims[4], kt_str[4], full_dims[4], full_str[4];
    int64_t s_dims[4], s_str[4], st_str[4], r_dims[4], r_str[4], f_dims[4], f_str[4], one[4];
} layout;

static void set4(int64_t to[4], int64_t a, int64_t b, int64_t c, int64_t d)
{
    to[0] = a, to[1] = b, to[2] = c, to[3] = d;
}

static layout layout_of(const dsk_attn_shape *s)
{
    layout L;
    int64_t B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd;
    set4(L.q_dims, B, H, T, hd);
    set4(L.q_str, T * H * hd, hd, H * hd, 1);
    set4(L.k_dims, B, KV, T, hd);
    set4(L.k_str, T * KV * hd, hd, KV * hd, 1);
    set4(L.kt_dims, B, KV, hd, T);
    set4(L.kt_str, T * KV * hd, hd, 1, KV * hd);
    set4(L.full_dims, B, H, T, hd);
    set4(L.full_str, H * T * hd, T * hd, hd, 1);
    set4(L.s_dims, B, H, T, T);
    set4(L.s_str, H * T * T, T * T, T, 1);
    set4(L.st_str, H * T * T, T * T, 1, T);
    set4(L.r_dims, B, H, T, 1);
    set4(L.r_str, H * T, T, 1, 1);
    set4(L.f_dims, B, 1, T, 1);
    set4(L.f_str, T, T, 1, 1);
    set4(L.one, 1, 1, 1, 1);
    return L;
}

static cudnnBackendDescriptor_t virt(cg *g, int64_t *uid, cudnnDataType_t type, const int64_t dims[4],
                                     const int64_t str[4])
{
    return cg_tensor(g, (*uid)++, type, dims, str, true, false);
}

static cudnnBackendDescriptor_t scalar(cg *g, int64_t uid, const layout *L)
{
    return cg_tensor(g, uid, CUDNN_DATA_FLOAT, L->one, L->one, false, true);
}

/* x with -inf where key j is after query i (the causal mask, as the
 * frontend writes it: GEN_INDEX of both axes, CMP_GE, BINARY_SELECT
 * y = keep ? x : -inf). */
static cudnnBackendDescriptor_t causal_mask(cg *g, int64_t *uid, const layout *L, cudnnBackendDescriptor_t x)
{
    const int64_t *D = L->s_dims, *S = L->s_str;
    const cudnnDataType_t ip = g->index_int32 ? CUDNN_DATA_INT32 : CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t row = virt(g, uid, CUDNN_DATA_INT32, D, S), col = virt(g, uid, CUDNN_DATA_INT32, D, S);
    cg_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, ip, x, NULL, NULL, row, 2, "query index");
    cg_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, ip, x, NULL, NULL, col, 3, "key index");
    cudnnBackendDescriptor_t keep = virt(g, uid, CUDNN_DATA_BOOLEAN, D, S);
    cg_pointwise(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL, keep, -1, "causal: i >= j");
    cudnnBackendDescriptor_t y = virt(g, uid, CUDNN_DATA_FLOAT, D, S);
    cg_pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, x, scalar(g, UID_NEG_INF, L), keep, y, -1,
                 "causal mask");
    return y;
}

/* x with -inf where key j is at or before i - window (kept: j + window >
 * i; the frontend's left bound of a sliding window). */
static cudnnBackendDescriptor_t window_mask(cg *g, int64_t *uid, const layout *L, cudnnBackendDescriptor_t x)
{
    const int64_t *D = L->s_dims, *S = L->s_str;
    const cudnnDataType_t ip = g->index_int32 ? CUDNN_DATA_INT32 : CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t row = virt(g, uid, CUDNN_DATA_INT32, D, S), col = virt(g, uid, CUDNN_DATA_INT32, D, S);
    cg_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, ip, x, NULL, NULL, row, 2, "query index");
    cg_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, ip, x, NULL, NULL, col, 3, "key index");
    cudnnBackendDescriptor_t reach = virt(g, uid, CUDNN_DATA_FLOAT, D, S);
    cg_pointwise(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, col, scalar(g, UID_WINDOW, L), NULL, reach, -1,
                 "j + window");
    cudnnBackendDescriptor_t near = virt(g, uid, CUDNN_DATA_BOOLEAN, D, S);
    cg_pointwise(g, CUDNN_POINTWISE_CMP_GT, CUDNN_DATA_BOOLEAN, reach, row, NULL, near, -1, "window: j + w > i");
    cudnnBackendDescriptor_t y = virt(g, uid, CUDNN_DATA_FLOAT, D, S);
    cg_pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, x, scalar(g, UID_NEG_INF_WINDOW, L), near, y,
                 -1, "window mask");
    return y;
}

/* x with -inf where key j is before query i's first visible key, the
 * FIRST tensor's value for the row (dsk_attn_first: its document's
 * start, or its window's, whichever is later; kept: j >= first).  No
 * frontend writes this one: it is a score modifier reading a per-row
 * tensor, which an engine may or may not take. */
static cudnnBackendDescriptor_t document_mask(cg *g, int64_t *uid, const layout *L, cudnnBackendDescriptor_t x)
{
    const int64_t *D = L->s_dims, *S = L->s_str;
    const cudnnDataType_t ip = g->index_int32 ? CUDNN_DATA_INT32 : CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t first = cg_tensor(g, UID_FIRST, CUDNN_DATA_FLOAT, L->f_dims, L->f_str, false, false);
    cudnnBackendDescriptor_t col = virt(g, uid, CUDNN_DATA_INT32, D, S);
    cg_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, ip, x, NULL, NULL, col, 3, "key index");
    cudnnBackendDescriptor_t inside = virt(g, uid, CUDNN_DATA_BOOLEAN, D, S);
    cg_pointwise(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, col, first, NULL, inside, -1, "document: j >= first");
    cudnnBackendDescriptor_t y = virt(g, uid, CUDNN_DATA_FLOAT, D, S);
    cg_pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, x, scalar(g, UID_NEG_INF_WINDOW, L), inside, y,
                 -1, "document mask");
    return y;
}

/* x masked for layer shape s: causal, then the window (one-document
 * rows) or the documents (which also say the window; before the causal
 * mask instead when g->doc_first, where the frontend puts a score
 * modifier). */
static cudnnBackendDescriptor_t mask(cg *g, int64_t *uid, const layout *L, const dsk_attn_shape *s,
                                     cudnnBackendDescriptor_t x)
{
    if (!s->whole_rows)
        return g->doc_first ? causal_mask(g, uid, L, document_mask(g, uid, L, x))
                            : document_mask(g, uid, L, causal_mask(g, uid, L, x));
    cudnnBackendDescriptor_t y = causal_mask(g, uid, L, x);
    return s->kind == DSK_ATTN_LOCAL ? window_mask(g, uid, L, y) : y;
}

/* The forward, as cuDNN's fused attention engines recognise it (the
 * cudnn-frontend's composite SDPA with its statistics, for 9.x):
 *   S = (Q K^T) * scale, masked; M = rowmax(S); E = exp(S - M);
 *   Z = rowsum(E); Stats = M + log Z; O = (E / Z) V  (E / Z in bf16). */
static int graph_fwd(cg *g, const dsk_attn_shape *s)
{
    layout L = layout_of(s);
    int64_t uid = UID_VIRTUAL;
    const int64_t *SD = L.s_dims, *SS = L.s_str, *RD = L.r_dims, *RS = L.r_str;
    const cudnnDataType_t F = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t q = cg_tensor(g, UID_Q, CUDNN_DATA_BFLOAT16, L.q_dims, L.q_str, false, false);
    cudnnBackendDescriptor_t kt = cg_tensor(g, UID_K, CUDNN_DATA_BFLOAT16, L.kt_dims, L.kt_str, false, false);
    cudnnBackendDescriptor_t v = cg_tensor(g, UID_V, CUDNN_DATA_BFLOAT16, L.k_dims, L.k_str, false, false);
    cudnnBackendDescriptor_t o = cg_tensor(g, UID_O, CUDNN_DATA_BFLOAT16, L.q_dims, L.q_str, false, false);
    cudnnBackendDescriptor_t stats = cg_tensor(g, UID_STATS, F, RD, RS, false, false);

    cudnnBackendDescriptor_t qk = virt(g, &uid, F, SD, SS), scaled = virt(g, &uid, F, SD, SS);
    cg_matmul(g, q, kt, qk, "Q K^T");
    cg_pointwise(g, CUDNN_POINTWISE_MUL, F, qk, scalar(g, UID_SCALE, &L), NULL, scaled, -1, "scores * scale");
    cudnnBackendDescriptor_t S = mask(g, &uid, &L, s, scaled);
    cudnnBackendDescriptor_t mx = virt(g, &uid, F, RD, RS), shifted = virt(g, &uid, F, SD, SS);
    cudnnBackendDescriptor_t e = virt(g, &uid, F, SD, SS), sum = virt(g, &uid, F, RD, RS);
    cudnnBackendDescriptor_t logsum = virt(g, &uid, F, RD, RS);
    cudnnBackendDescriptor_t p = virt(g, &uid, CUDNN_DATA_BFLOAT16, SD, SS);   /* bf16: P V's A operand */
    cg_reduce(g, CUDNN_REDUCE_TENSOR_MAX, S, mx, "row max");
    cg_pointwise(g, CUDNN_POINTWISE_SUB, F, S, mx, NULL, shifted, -1, "S - max");
    cg_pointwise(g, CUDNN_POINTWISE_EXP, F, shifted, NULL, NULL, e, -1, "exp");
    cg_reduce(g, CUDNN_REDUCE_TENSOR_ADD, e, sum, "row sum");
    cg_pointwise(g, CUDNN_POINTWISE_LOG, F, sum, NULL, NULL, logsum, -1, "log of the sum");
    cg_pointwise(g, CUDNN_POINTWISE_ADD, F, mx, logsum, NULL, stats, -1, "stats");
    cg_pointwise(g, CUDNN_POINTWISE_DIV, F, e, sum, NULL, p, -1, "P");
    cg_matmul(g, p, v, o, "P V");
    return cg_ok(g);
}

/* The backward (the frontend's composite SDPA backward, non-deterministic
 * dQ through a float accumulator):
 *   Dsum = rowsum(dO * O); P = exp(mask((Q K^T) * scale - Stats));
 *   dV = P^T dO; dP = dO V^T; dS = P * (dP - Dsum) * scale;
 *   dK = dS^T Q; dQ = dS K.
 * With grouped-query heads (KV < H) dV and dK come per query head and are
 * summed over each group (a reduction to KV heads). */
static int graph_bwd(cg *g, const dsk_attn_shape *s)
{
    layout L = layout_of(s);
    int64_t uid = UID_VIRTUAL;
    const int64_t *SD = L.s_dims, *SS = L.s_str, *RD = L.r_dims, *RS = L.r_str;
    const cudnnDataType_t F = CUDNN_DATA_FLOAT, BF = CUDNN_DATA_BFLOAT16;
    const int grouped = s->KV != s->H;
    cudnnBackendDescriptor_t q = cg_tensor(g, UID_Q, BF, L.q_dims, L.q_str, false, false);
    cudnnBackendDescriptor_t kt = cg_tensor(g, UID_K, BF, L.kt_dims, L.kt_str, false, false);
    cudnnBackendDescriptor_t vt = cg_tensor(g, UID_V, BF, L.kt_dims, L.kt_str, false, false);
    cudnnBackendDescriptor_t o = cg_tensor(g, UID_O, BF, L.q_dims, L.q_str, false, false);
    cudnnBackendDescriptor_t dO = cg_tensor(g, UID_DO, BF, L.q_dims, L.q_str, false, false);
    cudnnBackendDescriptor_t stats = cg_tensor(g, UID_STATS, F, RD, RS, false, false);
    cudnnBackendDescriptor_t dq = cg_tensor(g, UID_DQ, BF, L.q_dims, L.q_str, false, false);
    cudnnBackendDescriptor_t dk = cg_tensor(g, UID_DK, BF, L.k_dims, L.k_str, false, false);
    cudnnBackendDescriptor_t dv = cg_tensor(g, UID_DV, BF, L.k_dims, L.k_str, false, false);
    cudnnBackendDescriptor_t dsum = cg_tensor(g, UID_SOFTMAX_SUM, F, RD, RS, false, false);
    cudnnBackendDescriptor_t dq_acc = cg_tensor(g, UID_DQ_ACCUM, F, L.full_dims, L.full_str, false, false);
    cudnnBackendDescriptor_t scale = scalar(g, UID_SCALE, &L);

    /* Dsum = rowsum(dO * O) (times 1: where the frontend's dropout scale goes) */
    int64_t dodo_str[4] = {L.q_dims[1] * L.q_dims[2] * L.q_dims[3], L.q_dims[2] * L.q_dims[3], L.q_str[2], 1};
    cudnnBackendDescriptor_t do_o = virt(g, &uid, F, L.q_dims, dodo_str), rowsum = virt(g, &uid, F, RD, RS);
    cg_pointwise(g, CUDNN_POINTWISE_MUL, F, dO, o, NULL, do_o, -1, "dO * O");
    cg_reduce(g, CUDNN_REDUCE_TENSOR_ADD, do_o, rowsum, "rowsum(dO * O)");
    cg_pointwise(g, CUDNN_POINTWISE_MUL, F, rowsum, scalar(g, UID_ONE, &L), NULL, dsum, -1, "Dsum");

    /* P from the scores and the forward's statistics */
    cudnnBackendDescriptor_t qk = virt(g, &uid, F, SD, SS), scaled = virt(g, &uid, F, SD, SS);
    cg_matmul(g, q, kt, qk, "Q K^T");
    cg_pointwise(g, CUDNN_POINTWISE_MUL, F, qk, scale, NULL, scaled, -1, "scores * scale");
    cudnnBackendDescriptor_t logits;   /* S - Stats, masked */
    if (g->mask_first) {
        cudnnBackendDescriptor_t masked = mask(g, &uid, &L, s, scaled);
        logits = virt(g, &uid, F, SD, SS);
        cg_pointwise(g, CUDNN_POINTWISE_SUB, F, masked, stats, NULL, logits, -1, "S - Stats");
    } else {
        cudnnBackendDescriptor_t centred = virt(g, &uid, F, SD, SS);
        cg_pointwise(g, CUDNN_POINTWISE_SUB, F, scaled, stats, NULL, centred, -1, "S - Stats");
        logits = mask(g, &uid, &L, s, centred);
    }
    cudnnBackendDescriptor_t p = virt(g, &uid, F, SD, SS);
    cg_pointwise(g, CUDNN_POINTWISE_EXP, F, logits, NULL, NULL, p, -1, "P");

    /* dV = P^T dO */
    cudnnBackendDescriptor_t pt = virt(g, &uid, BF, SD, L.st_str);
    cg_reshape(g, p, pt, "P^T");
    if (grouped) {
        cudnnBackendDescriptor_t dv_full = virt(g, &uid, BF, L.full_dims, L.full_str);
        cg_matmul(g, pt, dO, dv_full, "P^T dO");
        cg_reduce(g, CUDNN_REDUCE_TENSOR_ADD, dv_full, dv, "dV over each group");
    } else {
        cg_matmul(g, pt, dO, dv, "P^T dO");
    }

    /* dS = P * (dO V^T - Dsum) * scale */
    cudnnBackendDescriptor_t dp = virt(g, &uid, F, SD, SS), dp_c = virt(g, &uid, F, SD, SS);
    cudnnBackendDescriptor_t dp_p = virt(g, &uid, F, SD, SS), ds = virt(g, &uid, F, SD, SS);
    cg_matmul(g, dO, vt, dp, "dO V^T");
    cg_pointwise(g, CUDNN_POINTWISE_SUB, F, dp, dsum, NULL, dp_c, -1, "dP - Dsum");
    cg_pointwise(g, CUDNN_POINTWISE_MUL, F, dp_c, p, NULL, dp_p, -1, "(dP - Dsum) * P");
    cg_pointwise(g, CUDNN_POINTWISE_MUL, F, dp_p, scale, NULL, ds, -1, "dS");

    /* dK = dS^T Q */
    cudnnBackendDescriptor_t dst = virt(g, &uid, BF, SD, L.st_str);
    cg_reshape(g, ds, dst, "dS^T");
    if (grouped) {
        cudnnBackendDescriptor_t dk_full = virt(g, &uid, BF, L.full_dims, L.full_str);
        cg_matmul(g, dst, q, dk_full, "dS^T Q");
        cg_reduce(g, CUDNN_REDUCE_TENSOR_ADD, dk_full, dk, "dK over each group");
    } else {
        cg_matmul(g, dst, q, dk, "dS^T Q");
    }

    /* dQ = dS K, through the float accumulator */
    cudnnBackendDescriptor_t k_view = virt(g, &uid, F, L.k_dims, L.k_str);
    cg_reshape(g, kt, k_view, "K from K^T");
    cg_matmul(g, ds, k_view, dq_acc, "dS K");
    cg_pointwise(g, CUDNN_POINTWISE_IDENTITY, F, dq_acc, NULL, NULL, dq, -1, "dQ");
    return cg_ok(g);
}

/* ---- the backend's cuDNN state: a handle, plans by shape, room ---- */

enum { DNN_PLANS = 24 };

typedef struct dnn_plan {
    dsk_attn_shape s;
    int backward;
    int refused;                      /* cuDNN could not run it: the other kernels do */
    cudnnBackendDescriptor_t plan;
    cg graph;                         /* the descriptors the plan was made from */
    int64_t workspace;
    unsigned long long used;
} dnn_plan;

struct dsk_cuda_dnn {
    cudnnHandle_t handle;
    dnn_plan plans[DNN_PLANS];
    int n_plans;
    unsigned long long clock;
    void *room;          /* the bf16 copies and the backward's float buffers (dnn_room) */
    size_t room_len;     /* bytes */
    long runs;           /* forward and backward calls cuDNN ran */
};

static void dnn_plan_free(dnn_plan *p)
{
    cg_free(&p->graph);   /* the plan is among its descriptors */
    memset(p, 0, sizeof *p);
}

void dsk_cuda_dnn_destroy(dsk_cuda *cb)
{
    dsk_cuda_dnn *d = cb->dnn;
    if (!d)
        return;
    for (int i = 0; i < d->n_plans; i++)
        dnn_plan_free(&d->plans[i]);
    if (d->room)
        CUDA_CHECK(cudaFree(d->room));
    if (d->handle)
        dsk_cudnn.Destroy(d->handle);
    free(d);
    cb->dnn = NULL;
}

/* The backend's cuDNN state, made at its first use; NULL when no handle
 * can be made on the device (said once: the default kernels run every
 * shape). */
static dsk_cuda_dnn *dnn_state(dsk_cuda *cb)
{
    if (cb->dnn)
        return cb->dnn->handle ? cb->dnn : NULL;
    char why[512];
    if (!dsk_cudnn_load(why, sizeof why))
        dsk_die(EX_UNAVAILABLE, "cuda: DSK_CUDA_ATTN=cudnn: %s", why);
    dsk_cuda_dnn *d = (dsk_cuda_dnn *)calloc(1, sizeof *d);
    if (!d)
        dsk_die(EX_OSERR, "cuda: out of memory");
    cb->dnn = d;
    cudnnStatus_t st = dsk_cudnn.Create(&d->handle);
    if (st == CUDNN_STATUS_SUCCESS && (st = dsk_cudnn.SetStream(d->handle, cb->stream)) != CUDNN_STATUS_SUCCESS) {
        dsk_cudnn.Destroy(d->handle);
        d->handle = NULL;
    }
    if (st != CUDNN_STATUS_SUCCESS) {
        d->handle = NULL;
        fprintf(stderr, "cuda: DSK_CUDA_ATTN=cudnn: cudnnCreate on device %d: %s; the default kernels run the "
                "attention\n", cb->device, dsk_cudnn.GetErrorString(st));
        return NULL;
    }
    return d;
}

long dsk_cuda_dnn_runs(const dsk_cuda *cb) { return cb->dnn ? cb->dnn->runs : 0; }

/* Whether cuDNN's graphs express layer shape s (its plan may still be
 * refused on a device): bf16 products, a global or local layer, heads a
 * multiple of 8 up to 128 (Ampere's backward takes no more), a window of
 * at least 1. */
static int dnn_takes(const dsk_cuda *cb, const dsk_attn_shape *s)
{
    return cb->attn_kernels == DSK_CUDA_ATTN_CUDNN && cb->be.gemm_dtype == DSK_DTYPE_BF16 &&
           s->kind != DSK_ATTN_HYBRID && (s->kind == DSK_ATTN_GLOBAL || s->window >= 1) && s->hd % 8 == 0 &&
           s->hd <= 128 && s->KV > 0 && s->H % s->KV == 0;
}

static int same_shape(const dsk_attn_shape *a, const dsk_attn_shape *b)
{
    /* (in rows of several documents the window is in the FIRST tensor's
     * values, not the graph) */
    return a->B == b->B && a->T == b->T && a->H == b->H && a->KV == b->KV && a->hd == b->hd && a->kind == b->kind &&
           a->whole_rows == b->whole_rows && (a->kind == DSK_ATTN_GLOBAL || !a->whole_rows || a->window == b->window);
}

/* The plan for shape s (made now if new), or NULL when cuDNN refused it
 * (said once, on stderr). */
static dnn_plan *dnn_plan_for(dsk_cuda *cb, dsk_cuda_dnn *d, const dsk_attn_shape *s, int backward)
{
    for (int i = 0; i < d->n_plans; i++) {
        dnn_plan *p = &d->plans[i];
        if (p->backward == backward && same_shape(&p->s, s)) {
            p->used = ++d->clock;
            return p->refused ? NULL : p;
        }
    }
    dnn_plan *p;
    if (d->n_plans < DNN_PLANS) {
        p = &d->plans[d->n_plans++];
    } else {   /* the least recently used goes */
        p = &d->plans[0];
        for (int i = 1; i < DNN_PLANS; i++)
            if (d->plans[i].used < p->used)
                p = &d->plans[i];
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));   /* a queued run may use it */
        dnn_plan_free(p);
    }
    p->s = *s;
    p->backward = backward;
    p->used = ++d->clock;
    /* The ways of writing the graph (index_int32, mask_first, doc_first),
     * the current frontend's first; those that do not apply to the shape
     * are passed over.  A refusal says each way's reason. */
    static const int ways[][3] = {{0, 0, 0}, {0, 1, 1}, {0, 0, 1}, {1, 0, 0}, {0, 1, 0}, {1, 1, 0}};
    char why[2048] = "", way[32];
    size_t at = 0;
    for (size_t w = 0; w < sizeof ways / sizeof *ways && !p->plan; w++) {
        if ((ways[w][1] && !backward) || (ways[w][2] && s->whole_rows))
            continue;
        cg_free(&p->graph);
        memset(&p->graph, 0, sizeof p->graph);
        p->graph.index_int32 = ways[w][0];
        p->graph.mask_first = ways[w][1];
        p->graph.doc_first = ways[w][2];
        if (backward)
            graph_bwd(&p->graph, s);
        else
            graph_fwd(&p->graph, s);
        p->plan = cg_ok(&p->graph) ? cg_plan(&p->graph, d->handle, &p->workspace) : NULL;
        snprintf(way, sizeof way, "%s%s%s", ways[w][0] ? "i" : "f", ways[w][1] ? "m" : "s", ways[w][2] ? "d" : "c");
        if (!p->plan && at < sizeof why)
            at += (size_t)snprintf(why + at, sizeof why - at, "%s%s: %s", at ? "; " : "", way, p->graph.why);
        if (p->plan && cb->verbose && at)
            fprintf(stderr, "cuda: cuDNN took the %s graph written as %s, after %s\n",
                    backward ? "backward" : "forward", way, why);
    }
    if (!p->plan) {
        /* each way as three letters: indices in f(loat) or i(nt32); the
         * backward's mask after the s(ubtraction) of Stats or before it
         * (m); documents masked after the c(ausal) mask or before it (d) */
        fprintf(stderr,
                "cuda: DSK_CUDA_ATTN=cudnn: cuDNN %zu.%zu.%zu has no %s plan for batch %d x %d, %d/%d heads of %d%s%s "
                "(each way the graph was written: %s); the default kernels run it\n",
                dsk_cudnn.GetVersion() / 10000, dsk_cudnn.GetVersion() / 100 % 100, dsk_cudnn.GetVersion() % 100,
                backward ? "backward" : "forward", s->B, s->T, s->H, s->KV, s->hd,
                s->kind == DSK_ATTN_LOCAL ? ", sliding window" : "", s->whole_rows ? "" : ", several documents a row",
                why);
        cg_free(&p->graph);
        p->refused = 1;
        return NULL;
    }
    if (cb->verbose)
        fprintf(stderr, "cuda: cuDNN %s plan for batch %d x %d, %d/%d heads of %d: %lld bytes of workspace\n",
                backward ? "backward" : "forward", s->B, s->T, s->H, s->KV, s->hd, (long long)p->workspace);
    return p;
}

/* The room: the forward's parts first (bf16 q and o, nq values each, k
 * and v, nk each, the queries' first visible keys, B*T floats), then the
 * backward's (bf16 dO and dq, dk and dv, float Dsum, nl, and the dQ
 * accumulator, nq), each 256-byte aligned: a forward alone takes only
 * its own. */
enum { P_Q, P_O, P_K, P_V, P_FIRST, P_DO, P_DQ, P_DK, P_DV, P_DSUM, P_DQ_ACC, P_PARTS, P_FORWARD = P_DO };
typedef struct dnn_parts {
    void *at[P_PARTS];
} dnn_parts;

static size_t align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

static dnn_parts dnn_room(dsk_cuda *cb, dsk_cuda_dnn *d, const dsk_attn_shape *s, int backward)
{
    size_t nq = (size_t)s->B * s->T * s->H * s->hd, nk = (size_t)s->B * s->T * s->KV * s->hd;
    size_t nl = (size_t)s->B * s->H * s->T;
    size_t len[P_PARTS] = {nq * 2, nq * 2, nk * 2, nk * 2, (size_t)s->B * s->T * 4,
                           nq * 2, nq * 2, nk * 2, nk * 2, nl * 4, nq * 4};
    size_t off[P_PARTS], bytes = 0;
    for (int i = 0; i < P_PARTS; i++) {
        off[i] = bytes;
        if (backward || i < P_FORWARD)
            bytes += align256(len[i]);
    }
    if (bytes > d->room_len) {
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));   /* queued runs may read the old room */
        if (d->room)
            CUDA_CHECK(cudaFree(d->room));
        d->room = NULL;
        d->room_len = 0;
        if (dsk_cuda_malloc(cb, &d->room, bytes) != cudaSuccess) {
            (void)cudaGetLastError();
            dsk_die(EX_OSERR, "cuda: out of device memory allocating %zu bytes for cuDNN's attention on device %d",
                    bytes, cb->device);
        }
        d->room_len = bytes;
    }
    dnn_parts parts;
    for (int i = 0; i < P_PARTS; i++)
        parts.at[i] = backward || i < P_FORWARD ? (char *)d->room + off[i] : NULL;
    return parts;
}

/* out[i] = in[i] widened, and its copy for the products (the same bf16). */
__global__ void k_widen_bf16(float *__restrict__ out, const __nv_bfloat16 *__restrict__ in, size_t n,
                             dsk_half_out h)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = __bfloat162float(in[i]);
        out[i] = x;
        h.put(i, x);
    }
}

static void widen(dsk_cuda *cb, float *out, const void *in, size_t n, dsk_half_out h, const char *what)
{
    k_widen_bf16<<<dsk_cuda_blocks(cb, n, 256), 256, 0, cb->stream>>>(out, (const __nv_bfloat16 *)in, n, h);
    LAUNCHED(cb, what);
}

/* Each query's first visible key (rows of several documents), as float
 * (exact below 2^24: rows are far shorter). */
__global__ void k_first_keys(float *__restrict__ first, const int32_t *__restrict__ pos, int n, int T, int local,
                             int window)
{
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < n; r += gridDim.x * blockDim.x)
        first[r] = (float)dsk_attn_first(r % T, pos[r], local, window);
}

static void first_keys(dsk_cuda *cb, float *first, const int32_t *pos, const dsk_attn_shape *s)
{
    int n = s->B * s->T;
    k_first_keys<<<dsk_cuda_blocks(cb, (size_t)n, 256), 256, 0, cb->stream>>>(first, pos, n, s->T,
                                                                               s->kind == DSK_ATTN_LOCAL, s->window);
    LAUNCHED(cb, "attention (cudnn: first keys)");
}

/* The host values of the graphs' by-value scalars, for one call. */
typedef struct dnn_scalars {   /* each as aligned as the graphs' tensors say (16 bytes) */
    alignas(16) float scale;
    alignas(16) float one;
    alignas(16) float neg_inf;
    alignas(16) float neg_inf_window;
    alignas(16) float window;
} dnn_scalars;

static dnn_scalars scalars_of(const dsk_attn_shape *s)
{
    dnn_scalars v;
    v.scale = 1.0f / sqrtf((float)s->hd);
    v.one = 1.0f;
    v.neg_inf = v.neg_inf_window = -INFINITY;
    v.window = (float)s->window;
    return v;
}

/* The variant pack's entries: n real tensors, then the scalars a graph of
 * shape s holds. */
typedef struct dnn_pack {
    int64_t uid[24];
    void *ptr[24];
    int n;
} dnn_pack;

static void pack_add(dnn_pack *k, int64_t uid, const void *p)
{
    k->uid[k->n] = uid;
    k->ptr[k->n++] = (void *)p;
}

/* The masks' inputs: in rows of several documents the queries' first
 * visible keys (made now, into the room), and the scalars the graph of
 * shape s holds. */
static void pack_masks(dsk_cuda *cb, dnn_pack *k, dnn_scalars *v, const dnn_parts *r, const int32_t *pos,
                       const dsk_attn_shape *s, int backward)
{
    if (!s->whole_rows) {
        first_keys(cb, (float *)r->at[P_FIRST], pos, s);
        pack_add(k, UID_FIRST, r->at[P_FIRST]);
    }
    pack_add(k, UID_SCALE, &v->scale);
    pack_add(k, UID_NEG_INF, &v->neg_inf);
    if (backward)
        pack_add(k, UID_ONE, &v->one);
    if (!s->whole_rows) {
        pack_add(k, UID_NEG_INF_WINDOW, &v->neg_inf_window);
    } else if (s->kind == DSK_ATTN_LOCAL) {
        pack_add(k, UID_NEG_INF_WINDOW, &v->neg_inf_window);
        pack_add(k, UID_WINDOW, &v->window);
    }
}

/* A call's start: the plan for shape s (NULL, nothing done, when cuDNN
 * does not take it or refused it) with *d the state and *r the room,
 * allocated (with the plan's workspace) before the caller places its
 * 16-bit copies, which an allocation may give back. */
static dnn_plan *dnn_begin(dsk_cuda *cb, const dsk_attn_shape *s, int backward, dsk_cuda_dnn **d, dnn_parts *r)
{
    if (!dnn_takes(cb, s))
        return NULL;
    *d = dnn_state(cb);
    dnn_plan *p = *d ? dnn_plan_for(cb, *d, s, backward) : NULL;
    if (!p)
        return NULL;
    *r = dnn_room(cb, *d, s, backward);
    if (p->workspace > 0)
        (void)dsk_cuda_scratch(cb, (size_t)p->workspace);
    return p;
}

static void dnn_execute(dsk_cuda *cb, dsk_cuda_dnn *d, dnn_plan *p, const dnn_pack *k, const char *what)
{
    void *ws = p->workspace > 0 ? dsk_cuda_scratch(cb, (size_t)p->workspace) : NULL;
    cudnnStatus_t st = cg_execute(d->handle, p->plan, k->n, k->uid, k->ptr, ws);
    if (st != CUDNN_STATUS_SUCCESS) {
        char last[512] = "";
        dsk_cudnn.GetLastErrorString(last, sizeof last);
        char msg[768];
        snprintf(msg, sizeof msg, "%s%s%s", dsk_cudnn.GetErrorString(st), *last ? ": " : "", last);
        dsk_cuda_fail(EX_SOFTWARE, __FILE__, __LINE__, what, msg);
    }
    d->runs++;
    if (cb->sync_each)
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));
}

int dsk_cuda_attention_cudnn_fwd(dsk_cuda *cb, float *out, float *lse, const float *q, const float *k,
                                 const float *v, const int32_t *pos, const dsk_attn_shape *s)
{
    dsk_cuda_dnn *d;
    dnn_parts r;
    dnn_plan *p = dnn_begin(cb, s, 0, &d, &r);
    if (!p)
        return 0;
    size_t nq = (size_t)s->B * s->T * s->H * s->hd, nk = (size_t)s->B * s->T * s->KV * s->hd;
    /* The output goes on to the output projection: its 16-bit copy with it. */
    dsk_half_out out_h;
    dsk_cuda_half_produce(cb, nq, out, &out_h, NULL, NULL);
    dsk_cuda_prof_scope timed(cb, "cudnn fused attention");
    dsk_cuda_round_bf16(cb, r.at[P_Q], q, nq, r.at[P_K], k, nk);
    dsk_cuda_round_bf16(cb, r.at[P_V], v, nk, NULL, NULL, 0);
    dnn_scalars sc = scalars_of(s);
    dnn_pack pack = {{0}, {0}, 0};
    pack_add(&pack, UID_Q, r.at[P_Q]);
    pack_add(&pack, UID_K, r.at[P_K]);
    pack_add(&pack, UID_V, r.at[P_V]);
    pack_add(&pack, UID_O, r.at[P_O]);
    pack_add(&pack, UID_STATS, lse);
    pack_masks(cb, &pack, &sc, &r, pos, s, 0);
    dnn_execute(cb, d, p, &pack, "cuDNN attention forward");
    widen(cb, out, r.at[P_O], nq, out_h, "attention_fwd (cudnn: O to float)");
    return 1;
}

int dsk_cuda_attention_cudnn_bwd(dsk_cuda *cb, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                 const float *q, const float *k, const float *v, const float *lse,
                                 const int32_t *pos, const dsk_attn_shape *s)
{
    if (s->T < 2)   /* cuDNN's backward refuses one-token rows */
        return 0;
    dsk_cuda_dnn *d;
    dnn_parts r;
    dnn_plan *p = dnn_begin(cb, s, 1, &d, &r);
    if (!p)
        return 0;
    size_t nq = (size_t)s->B * s->T * s->H * s->hd, nk = (size_t)s->B * s->T * s->KV * s->hd;
    /* dV goes on to its two products: its 16-bit copy with it. */
    dsk_half_out dv_h, none = {NULL, 1};
    dsk_cuda_half_produce(cb, nk, dv, &dv_h, NULL, NULL);
    dsk_cuda_prof_scope timed(cb, "cudnn fused attention");
    dsk_cuda_round_bf16(cb, r.at[P_Q], q, nq, r.at[P_K], k, nk);
    dsk_cuda_round_bf16(cb, r.at[P_V], v, nk, r.at[P_O], out, nq);
    dsk_cuda_round_bf16(cb, r.at[P_DO], dout, nq, NULL, NULL, 0);
    dnn_scalars sc = scalars_of(s);
    dnn_pack pack = {{0}, {0}, 0};
    pack_add(&pack, UID_Q, r.at[P_Q]);
    pack_add(&pack, UID_K, r.at[P_K]);
    pack_add(&pack, UID_V, r.at[P_V]);
    pack_add(&pack, UID_O, r.at[P_O]);
    pack_add(&pack, UID_DO, r.at[P_DO]);
    pack_add(&pack, UID_STATS, lse);
    pack_add(&pack, UID_DQ, r.at[P_DQ]);
    pack_add(&pack, UID_DK, r.at[P_DK]);
    pack_add(&pack, UID_DV, r.at[P_DV]);
    pack_add(&pack, UID_SOFTMAX_SUM, r.at[P_DSUM]);
    pack_add(&pack, UID_DQ_ACCUM, r.at[P_DQ_ACC]);
    pack_masks(cb, &pack, &sc, &r, pos, s, 1);
    dnn_execute(cb, d, p, &pack, "cuDNN attention backward");
    widen(cb, dq, r.at[P_DQ], nq, none, "attention_bwd (cudnn: dQ to float)");
    widen(cb, dk, r.at[P_DK], nk, none, "attention_bwd (cudnn: dK to float)");
    widen(cb, dv, r.at[P_DV], nk, dv_h, "attention_bwd (cudnn: dV to float)");
    return 1;
}
#endif /* DSK_NO_CUDNN */
