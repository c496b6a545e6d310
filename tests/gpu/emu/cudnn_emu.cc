/* A stand-in for NVIDIA's cuDNN 9 (libcudnn.so.9) in the CPU emulation of
 * cuda/ (tests/gpu/emu), so that cuda/attention_cudnn.cu's graphs run in
 * `make check` without a GPU.  It gives the backend graph API's plain C
 * entry points (cudnnBackendCreateDescriptor, SetAttribute, GetAttribute,
 * Finalize, Execute, DestroyDescriptor; cudnnCreate, Destroy, SetStream,
 * GetVersion, GetErrorString, GetLastErrorString), with the signatures of
 * cudnn_graph.h, and interprets an operation graph on the host: no engine,
 * no fusion, every operation run in turn in double precision.
 *
 * What it models: tensors; pointwise, matmul, reduction and reshape
 * operations; operation graphs; heuristics (one engine configuration, the
 * interpreter), engines and their configurations; execution plans (256
 * bytes of workspace, which Execute requires and writes, so the caller's
 * workspace path runs); variant packs.  Other descriptor types are
 * refused when created (CUDNN_STATUS_NOT_SUPPORTED), as are the
 * attributes of modeled descriptors it does not emulate.
 *
 * Its point is to catch the caller's mistakes, so it checks what the real
 * library checks, with the status codes libcudnn 9.19 was seen to give
 * (its descriptor calls run without a GPU), and says why in the message
 * cudnnGetLastErrorString returns (kept until read, as 9.19's) and on
 * stderr ("cudnn emu: ..."):
 *   - SetAttribute: the attribute must belong to the descriptor's type
 *     (CUDNN_STATUS_BAD_PARAM), with its attribute type
 *     (CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE; BAD_PARAM where two types
 *     are taken) and element count (BAD_PARAM), enumerated values known,
 *     and the descriptor not yet finalized (BAD_PARAM); one only read is
 *     CUDNN_STATUS_NOT_SUPPORTED;
 *   - Finalize: descriptors given as values finalized, required attributes
 *     present, shapes consistent (BAD_PARAM; a matmul of mixed ranks
 *     NOT_SUPPORTED), and for the graph its producers and order;
 *   - GetAttribute of what Finalize makes (heuristics' results, workspace)
 *     before Finalize: CUDNN_STATUS_NOT_INITIALIZED;
 *   - a graph the interpreter cannot run (a pointwise mode, data type or
 *     reduction it does not emulate, a RESHAPE that is not a view):
 *     CUDNN_STATUS_NOT_SUPPORTED when its execution plan is finalized,
 *     with the reason (heuristics give one configuration regardless);
 *   - Execute: plan and variant pack finalized
 *     (CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED); the pack naming every
 *     non-virtual tensor of the graph exactly once and nothing else
 *     (BAD_PARAM); no NULL pointer, workspace included
 *     (CUDNN_STATUS_BAD_PARAM_NULL_POINTER); pointers aligned to their
 *     tensor's CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT and element
 *     (CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER); and, where a GPU would
 *     only race, no output sharing a byte with another tensor of the pack
 *     (CUDNN_STATUS_EXECUTION_FAILED).  A handle whose stream was never
 *     set is fine (the default stream), as is a graph without a handle.
 * Stricter than 9.19: an unknown enumerated value, or more than 8
 * dimensions, refused when set rather than at Finalize; and these, which
 * 9.19 takes at Finalize (to fail later or compute nonsense), refused
 * there: a tensor without a uid, with a dimension 0, both
 * virtual and by value, or by value but not a scalar; GEN_INDEX without
 * its axis; a pointwise input that does not broadcast to the output, or
 * one the mode does not take (9.19 ignores a B given to EXP); a virtual
 * tensor read but never produced; a non-virtual output whose strides give
 * two of its elements one address.
 *
 * Semantics chosen where the documentation is thin (and how sure):
 *   - BINARY_SELECT: y = t ? x : b, X (CUDNN_ATTR_OPERATION_POINTWISE_XDESC)
 *     where the mask T is true, B where it is false.  Sure: cudnn-frontend
 *     lowers its inputs IN_0, IN_1, IN_2 to XDESC, BDESC, TDESC
 *     (node/pointwise.h), and its causal mask is binary_select(scores,
 *     lowest, row >= col): the scores kept where the mask holds.
 *   - GEN_INDEX: y = the index, along CUDNN_ATTR_POINTWISE_AXIS, of the
 *     output element (X's shape is Y's: X is read only for its shape).
 *   - Broadcasting, pointwise: inputs have Y's rank, each dimension Y's or
 *     1.  Matmul: A [.., M, K], B [.., K, N], C [.., M, N] of one rank;
 *     in each batch dimension one of A's and B's divides the other and C's
 *     is the larger (9.19's rule), and the smaller is read in consecutive
 *     groups: C's index c reads index c / (C's / A's) of A, likewise of B.
 *     That is cuDNN's grouped-query attention, K and V with fewer heads
 *     than Q (cudnn-frontend's SDPA graphs: "b (hk g) ..."), and this
 *     project's kernels' grouping (head h reads key head h / (H / KV));
 *     the grouping itself is the frontend's word, not seen run.
 *     Reduction: each dimension of Y is X's (kept), 1 (reduced) or a
 *     divisor of X's (consecutive groups reduced: cudnn-frontend's backward
 *     reduces dK and dV over the query heads of a key head that way; 9.19
 *     refuses a Y dimension that does not divide X's).
 *   - RESHAPE: a view.  Y is X's memory seen through Y's dims and strides:
 *     Y's element at offset o is X's element at offset o, so a transpose
 *     is Y with X's dims and strides permuted alike: Y[.., j, i] =
 *     X[.., i, j].  Sure for that use (cudnn-frontend's backward makes
 *     P^T, dS^T and K from K^T exactly so); layouts that do not cover the
 *     same offsets are not emulated (9.19 finalizes them: what its engines
 *     make of them is not known here).  Types may differ (values
 *     converted, bf16 rounded).
 *   - uids: an operation's output is one tensor: every operation reading
 *     it describes it as its producer does (9.19 refuses otherwise).  A
 *     graph input may carry one uid in several descriptions (9.19 takes K
 *     [.., T, hd] and K^T [.., hd, T] under one uid): one pointer in the
 *     pack, each operation reading it through its own description.
 *   - Values: every operation reads its inputs as doubles, computes in
 *     double (matmuls accumulate in double) and writes its output in its
 *     tensor's type: bf16 and fp16 rounded to nearest even (through float),
 *     integers truncated toward zero and saturated, booleans nonzero.
 *     Virtual tensors are held in their own type (a virtual bf16 tensor is
 *     rounded, as on a GPU) at their declared strides, or densely when
 *     those give two elements one address (a virtual tensor's strides are
 *     immaterial to the engines: cudnn-frontend's own SDPA backward
 *     declares dO * O so; such a tensor cannot be RESHAPEd); booleans,
 *     one byte each, only virtual (cuDNN's memory layout for a boolean
 *     tensor is not emulated).  Virtual tensors start as 0xff bytes (NaN),
 *     and MAX and MIN, pointwise or reduction, propagate NaN (a GPU's
 *     fmaxf would drop it), so a read of an element never written shows.
 *   - Order: operations may be listed in any order; the graph runs them
 *     producers first, and refuses a cycle or a tensor produced twice (as
 *     9.19 does).
 *
 * "Device" memory is host memory here: Execute runs during the call, so
 * the work queued on the stream before it must have run by then (the
 * emulation's launches do); the stream is kept and otherwise ignored. */
#include <cudnn_graph.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

/* ---- errors: the status, and the message cudnnGetLastErrorString gives ---- */

static thread_local char last_error[1024];

static const char *status_name(cudnnStatus_t s)
{
    switch (s) {
#define NAME(x) \
    case x: return #x;
        NAME(CUDNN_STATUS_SUCCESS)
        NAME(CUDNN_STATUS_NOT_INITIALIZED)
        NAME(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
        NAME(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH)
        NAME(CUDNN_STATUS_DEPRECATED)
        NAME(CUDNN_STATUS_LICENSE_ERROR)
        NAME(CUDNN_STATUS_RUNTIME_IN_PROGRESS)
        NAME(CUDNN_STATUS_RUNTIME_FP_OVERFLOW)
        NAME(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED)
        NAME(CUDNN_STATUS_BAD_PARAM)
        NAME(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
        NAME(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
        NAME(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED)
        NAME(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
        NAME(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
        NAME(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
        NAME(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
        NAME(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES)
        NAME(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE)
        NAME(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH)
        NAME(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE)
        NAME(CUDNN_STATUS_NOT_SUPPORTED)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE)
        NAME(CUDNN_STATUS_INTERNAL_ERROR)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED)
        NAME(CUDNN_STATUS_EXECUTION_FAILED)
        NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
        NAME(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS)
        NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
        NAME(CUDNN_STATUS_EXECUTION_FAILED_CURAND)
        NAME(CUDNN_STATUS_INVALID_VALUE)
#undef NAME
    }
    return "CUDNN_STATUS_UNKNOWN";
}

/* Records why a call is refused (the caller reads it through
 * cudnnGetLastErrorString), says it on stderr, and returns st. */
__attribute__((format(printf, 2, 3))) static cudnnStatus_t fail(cudnnStatus_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cudnn emu: %s: %s\n", status_name(st), last_error);
    return st;
}

/* ---- names, for the messages ---- */

static const char *desc_type_name(int t)
{
    static const char *const names[] = {
        "POINTWISE", "CONVOLUTION", "ENGINE", "ENGINECFG", "ENGINEHEUR", "EXECUTION_PLAN", "INTERMEDIATE_INFO",
        "KNOB_CHOICE", "KNOB_INFO", "LAYOUT_INFO", "OPERATION_CONVOLUTION_FORWARD",
        "OPERATION_CONVOLUTION_BACKWARD_FILTER", "OPERATION_CONVOLUTION_BACKWARD_DATA", "OPERATION_POINTWISE",
        "OPERATION_GEN_STATS", "OPERATIONGRAPH", "VARIANT_PACK", "TENSOR", "MATMUL", "OPERATION_MATMUL",
        "OPERATION_BN_FINALIZE_STATISTICS", "REDUCTION", "OPERATION_REDUCTION", "OPERATION_BN_BWD_WEIGHTS",
        "RESAMPLE", "OPERATION_RESAMPLE_FWD", "OPERATION_RESAMPLE_BWD", "OPERATION_CONCAT", "OPERATION_SIGNAL",
        "OPERATION_NORM_FORWARD", "OPERATION_NORM_BACKWARD", "OPERATION_RESHAPE", "RNG", "OPERATION_RNG",
        "KERNEL_CACHE", "OPERATION_PAGED_CACHE_LOAD", "OPERATION_BLOCK_SCALE_QUANTIZE",
        "OPERATION_BLOCK_SCALE_DEQUANTIZE", "DEVICEPROP", "OPERATION_EXPAND_BAND_MATRIX",
        "OPERATION_CONTRACT_BAND_MATRIX", "OPERATION_SDPA_FWD", "OPERATION_MOE_GROUPED_MATMUL",
        "OPERATION_SDPA_BWD",
    };
    static_assert(sizeof names / sizeof *names == CUDNN_BACKEND_OPERATION_SDPA_BWD_DESCRIPTOR + 1, "names");
    static thread_local char bufs[4][80];   /* a message may name several */
    static thread_local unsigned next;
    char *buf = bufs[next++ % 4];
    if (t >= 0 && t < (int)(sizeof names / sizeof *names))
        snprintf(buf, sizeof bufs[0], "CUDNN_BACKEND_%s_DESCRIPTOR", names[t]);
    else
        snprintf(buf, sizeof bufs[0], "descriptor type %d", t);
    return buf;
}

static const char *attr_type_name(int t)
{
    static const char *const names[] = {
        "CUDNN_TYPE_HANDLE", "CUDNN_TYPE_DATA_TYPE", "CUDNN_TYPE_BOOLEAN", "CUDNN_TYPE_INT64",
        "CUDNN_TYPE_FLOAT", "CUDNN_TYPE_DOUBLE", "CUDNN_TYPE_VOID_PTR", "CUDNN_TYPE_CONVOLUTION_MODE",
        "CUDNN_TYPE_HEUR_MODE", "CUDNN_TYPE_KNOB_TYPE", "CUDNN_TYPE_NAN_PROPOGATION", "CUDNN_TYPE_NUMERICAL_NOTE",
        "CUDNN_TYPE_LAYOUT_TYPE", "CUDNN_TYPE_ATTRIB_NAME", "CUDNN_TYPE_POINTWISE_MODE",
        "CUDNN_TYPE_BACKEND_DESCRIPTOR", "CUDNN_TYPE_GENSTATS_MODE", "CUDNN_TYPE_BN_FINALIZE_STATS_MODE",
        "CUDNN_TYPE_REDUCTION_OPERATOR_TYPE", "CUDNN_TYPE_BEHAVIOR_NOTE", "CUDNN_TYPE_TENSOR_REORDERING_MODE",
        "CUDNN_TYPE_RESAMPLE_MODE", "CUDNN_TYPE_PADDING_MODE", "CUDNN_TYPE_INT32", "CUDNN_TYPE_CHAR",
        "CUDNN_TYPE_SIGNAL_MODE", "CUDNN_TYPE_FRACTION", "CUDNN_TYPE_NORM_MODE", "CUDNN_TYPE_NORM_FWD_PHASE",
        "CUDNN_TYPE_RNG_DISTRIBUTION", "CUDNN_TYPE_MOE_GROUPED_MATMUL_MODE",
    };
    if (t >= 0 && t < (int)(sizeof names / sizeof *names))
        return names[t];
    return "an unknown attribute type";
}

/* The bytes of one element of an attribute of type t (0: unknown). */
static size_t attr_type_size(int t)
{
    switch (t) {
    case CUDNN_TYPE_HANDLE: return sizeof(cudnnHandle_t);
    case CUDNN_TYPE_BOOLEAN: return sizeof(bool);
    case CUDNN_TYPE_INT64: return sizeof(int64_t);
    case CUDNN_TYPE_FLOAT: return sizeof(float);
    case CUDNN_TYPE_DOUBLE: return sizeof(double);
    case CUDNN_TYPE_VOID_PTR: return sizeof(void *);
    case CUDNN_TYPE_BACKEND_DESCRIPTOR: return sizeof(cudnnBackendDescriptor_t);
    case CUDNN_TYPE_INT32: return sizeof(int32_t);
    case CUDNN_TYPE_CHAR: return sizeof(char);
    case CUDNN_TYPE_FRACTION: return sizeof(cudnnFraction_t);
    default: return t >= 0 && t <= CUDNN_TYPE_MOE_GROUPED_MATMUL_MODE ? sizeof(int) : 0;   /* the enumerations */
    }
}

/* ---- data types: which are emulated, their sizes, conversions ---- */

static const char *dtype_name(int t)
{
    switch (t) {
#define NAME(x) \
    case CUDNN_DATA_##x: return "CUDNN_DATA_" #x;
        NAME(FLOAT)
        NAME(DOUBLE)
        NAME(HALF)
        NAME(INT8)
        NAME(INT32)
        NAME(UINT8)
        NAME(BFLOAT16)
        NAME(INT64)
        NAME(BOOLEAN)
        NAME(FP8_E4M3)
        NAME(FP8_E5M2)
        NAME(FAST_FLOAT_FOR_FP8)
        NAME(FP8_E8M0)
        NAME(FP4_E2M1)
        NAME(INT4)
        NAME(UINT4)
        NAME(UINT32)
        NAME(COMPLEX_FP32)
        NAME(COMPLEX_FP64)
#undef NAME
    }
    static thread_local char buf[32];
    snprintf(buf, sizeof buf, "data type %d", t);
    return buf;
}

static bool dtype_known(int t) { return t >= CUDNN_DATA_FLOAT && t <= CUDNN_DATA_COMPLEX_FP64; }

/* Bytes of an element the interpreter reads and writes; 0: not emulated. */
static size_t dtype_size(int t)
{
    switch (t) {
    case CUDNN_DATA_FLOAT: return 4;
    case CUDNN_DATA_DOUBLE: return 8;
    case CUDNN_DATA_HALF: return 2;
    case CUDNN_DATA_BFLOAT16: return 2;
    case CUDNN_DATA_INT8: return 1;
    case CUDNN_DATA_UINT8: return 1;
    case CUDNN_DATA_INT32: return 4;
    case CUDNN_DATA_INT64: return 8;
    case CUDNN_DATA_BOOLEAN: return 1;   /* virtual tensors only */
    default: return 0;
    }
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bf16_to_float(uint16_t h) { return bits_float((uint32_t)h << 16); }
static uint16_t float_to_bf16(float f)   /* round to nearest even; NaN stays NaN */
{
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)
        return bits_float(sign | 0x7f800000u | man << 13);
    if (exp == 0) {   /* zero or subnormal: man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_float(sign | (exp + 112) << 23 | man << 13);
}
static uint16_t float_to_half(float f)   /* round to nearest even */
{
    uint32_t u = float_bits(f), sign = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00);
    if (a >= 0x477ff000u)   /* rounds to 65520 or more: infinity */
        return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) {   /* below 2^-14: subnormal, in units of 2^-24 */
        float v = bits_float(a) * 16777216.0f;
        return (uint16_t)(sign | (uint32_t)std::nearbyint(v));   /* the default mode: to nearest even */
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1);
    return (uint16_t)(sign | ((r >> 13) - (112u << 10)));
}

template <typename I> static I saturate(double v)
{
    if (std::isnan(v))
        return 0;
    double t = std::trunc(v);
    if (t <= (double)std::numeric_limits<I>::min())
        return std::numeric_limits<I>::min();
    if (t >= (double)std::numeric_limits<I>::max())
        return std::numeric_limits<I>::max();
    return (I)t;
}

static double load_as(int type, const unsigned char *p)
{
    switch (type) {
    case CUDNN_DATA_FLOAT: { float v; memcpy(&v, p, 4); return v; }
    case CUDNN_DATA_DOUBLE: { double v; memcpy(&v, p, 8); return v; }
    case CUDNN_DATA_HALF: { uint16_t v; memcpy(&v, p, 2); return half_to_float(v); }
    case CUDNN_DATA_BFLOAT16: { uint16_t v; memcpy(&v, p, 2); return bf16_to_float(v); }
    case CUDNN_DATA_INT8: return (int8_t)*p;
    case CUDNN_DATA_UINT8: return *p;
    case CUDNN_DATA_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case CUDNN_DATA_INT64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case CUDNN_DATA_BOOLEAN: return *p != 0;
    }
    abort();   /* the graph was checked to have emulated types only */
}

static void store_as(int type, unsigned char *p, double v)
{
    switch (type) {
    case CUDNN_DATA_FLOAT: { float f = (float)v; memcpy(p, &f, 4); return; }
    case CUDNN_DATA_DOUBLE: memcpy(p, &v, 8); return;
    case CUDNN_DATA_HALF: { uint16_t h = float_to_half((float)v); memcpy(p, &h, 2); return; }
    case CUDNN_DATA_BFLOAT16: { uint16_t h = float_to_bf16((float)v); memcpy(p, &h, 2); return; }
    case CUDNN_DATA_INT8: *p = (unsigned char)saturate<int8_t>(v); return;
    case CUDNN_DATA_UINT8: *p = saturate<uint8_t>(v); return;
    case CUDNN_DATA_INT32: { int32_t i = saturate<int32_t>(v); memcpy(p, &i, 4); return; }
    case CUDNN_DATA_INT64: { int64_t i = saturate<int64_t>(v); memcpy(p, &i, 8); return; }
    case CUDNN_DATA_BOOLEAN: *p = v != 0; return;
    }
    abort();
}

/* ---- pointwise modes: names, arity, which are emulated ---- */

enum Arity { ARITY_UNKNOWN = 0, UNARY = 1, BINARY = 2, TERNARY = 3, BACKWARD = 4 /* dy, x -> dx */ };

static const struct {
    cudnnPointwiseMode_t mode;
    const char *name;
    Arity arity;
    bool emulated;
} pw_modes[] = {
#define M(x, arity, emulated) {CUDNN_POINTWISE_##x, "CUDNN_POINTWISE_" #x, arity, emulated}
    M(ADD, BINARY, true), M(ADD_SQUARE, BINARY, false), M(DIV, BINARY, true), M(MAX, BINARY, true),
    M(MIN, BINARY, true), M(MOD, BINARY, true), M(MUL, BINARY, true), M(POW, BINARY, true), M(SUB, BINARY, true),
    M(ABS, UNARY, true), M(CEIL, UNARY, true), M(COS, UNARY, true), M(EXP, UNARY, true), M(FLOOR, UNARY, true),
    M(LOG, UNARY, true), M(NEG, UNARY, true), M(RSQRT, UNARY, true), M(SIN, UNARY, true), M(SQRT, UNARY, true),
    M(TAN, UNARY, true), M(ERF, UNARY, true), M(IDENTITY, UNARY, true), M(RECIPROCAL, UNARY, true),
    M(ATAN2, BINARY, false), M(RELU_FWD, UNARY, false), M(TANH_FWD, UNARY, true), M(SIGMOID_FWD, UNARY, true),
    M(ELU_FWD, UNARY, false), M(GELU_FWD, UNARY, false), M(SOFTPLUS_FWD, UNARY, false), M(SWISH_FWD, UNARY, false),
    M(GELU_APPROX_TANH_FWD, UNARY, false), M(RELU_BWD, BACKWARD, false), M(TANH_BWD, BACKWARD, false),
    M(SIGMOID_BWD, BACKWARD, false), M(ELU_BWD, BACKWARD, false), M(GELU_BWD, BACKWARD, false),
    M(SOFTPLUS_BWD, BACKWARD, false), M(SWISH_BWD, BACKWARD, false), M(GELU_APPROX_TANH_BWD, BACKWARD, false),
    M(CMP_EQ, BINARY, true), M(CMP_NEQ, BINARY, true), M(CMP_GT, BINARY, true), M(CMP_GE, BINARY, true),
    M(CMP_LT, BINARY, true), M(CMP_LE, BINARY, true), M(LOGICAL_AND, BINARY, true), M(LOGICAL_OR, BINARY, true),
    M(LOGICAL_NOT, UNARY, true), M(GEN_INDEX, UNARY, true), M(BINARY_SELECT, TERNARY, true),
#undef M
};

static int pw_index(int mode)
{
    for (size_t i = 0; i < sizeof pw_modes / sizeof *pw_modes; i++)
        if ((int)pw_modes[i].mode == mode)
            return (int)i;
    return -1;
}
static const char *pw_name(cudnnPointwiseMode_t m) { return pw_modes[pw_index(m)].name; }

static const char *reduce_name(int op)
{
    static const char *const names[] = {
        "CUDNN_REDUCE_TENSOR_ADD",  "CUDNN_REDUCE_TENSOR_MUL",   "CUDNN_REDUCE_TENSOR_MIN",
        "CUDNN_REDUCE_TENSOR_MAX",  "CUDNN_REDUCE_TENSOR_AMAX",  "CUDNN_REDUCE_TENSOR_AVG",
        "CUDNN_REDUCE_TENSOR_NORM1", "CUDNN_REDUCE_TENSOR_NORM2", "CUDNN_REDUCE_TENSOR_MUL_NO_ZEROS",
    };
    return op >= 0 && op <= CUDNN_REDUCE_TENSOR_MUL_NO_ZEROS ? names[op] : "an unknown reduction";
}

/* ---- objects behind the opaque handles ---- */

/* Each starts with its kind, checked on use: a handle passed as a
 * descriptor, or a destroyed one, is refused (or left to ASan once freed). */
enum : uint32_t { KIND_HANDLE = 0x444e4e48 /* "HNND" */, KIND_DESC = 0x444e4e44, KIND_DEAD = 0x44454144 };

struct cudnnContext {   /* cudnnHandle_t */
    uint32_t kind;
    cudaStream_t stream;
};

struct Desc;
typedef std::shared_ptr<Desc> Ref;

/* An attribute as set: its elements' bytes, and for descriptors the
 * descriptors themselves (kept alive while referenced, as the real
 * library's finalized descriptors do not depend on the caller's). */
struct Attr {
    int type;
    int64_t count;
    std::vector<unsigned char> bytes;
    std::vector<Ref> descs;
};

struct Tensor {
    int type;   /* cudnnDataType_t */
    int64_t uid, align;
    std::vector<int64_t> dims, strides;
    bool is_virtual, by_value;
    bool overlapping;              /* strides that give two elements one address */
    std::vector<int64_t> layout;   /* where the interpreter keeps the elements: the strides, but
                                      dense for a virtual tensor whose strides overlap */
};

enum OpKind { OP_POINTWISE, OP_MATMUL, OP_REDUCTION, OP_RESHAPE };

struct Op {
    OpKind kind;
    std::vector<Ref> in;   /* pointwise: X[, B[, T]] (backward modes: DY, X); matmul: A, B; else X */
    Ref out;
    cudnnPointwiseMode_t mode;   /* pointwise */
    int prec;                    /* pointwise math precision, matmul or reduction compute type */
    int64_t axis;                /* GEN_INDEX */
    double alpha1, alpha2;       /* pointwise: y = op(alpha1 x, alpha2 b) */
    int reduce;                  /* cudnnReduceTensorOp_t */
};

struct Graph {
    cudnnHandle_t handle;
    std::vector<Ref> order;     /* the operations, producers first */
    std::vector<Ref> tensors;   /* each uid's descriptions (one, but for a graph input perhaps several) */
    std::string unsupported;    /* why the interpreter cannot run it; "" when it can */
};

struct Desc : std::enable_shared_from_this<Desc> {
    uint32_t kind = KIND_DESC;
    int type;   /* cudnnBackendDescriptorType_t */
    bool finalized = false;
    std::map<int, Attr> attrs;
    Ref user;   /* the caller's reference, dropped by cudnnBackendDestroyDescriptor */

    /* What Finalize derived, by type. */
    Tensor tensor;           /* TENSOR */
    Op op;                   /* OPERATION_POINTWISE, _MATMUL, _REDUCTION, _RESHAPE */
    int mode = 0;            /* POINTWISE: the mode; REDUCTION: the operator */
    int comp = 0;            /* POINTWISE: math precision; MATMUL, REDUCTION: compute type */
    int64_t axis = -1;       /* POINTWISE: CUDNN_ATTR_POINTWISE_AXIS, -1 when unset */
    Graph graph;             /* OPERATIONGRAPH */
    Ref graph_desc;          /* ENGINE, ENGINEHEUR, EXECUTION_PLAN: their operation graph */
    int64_t workspace = 0;   /* EXECUTION_PLAN */
    std::vector<int64_t> uids;   /* VARIANT_PACK */
    std::vector<void *> ptrs;
    void *ws = nullptr;
};

/* The workspace every plan asks for: unused by the interpreter (it
 * allocates its own), but Execute requires it and writes it all, so the
 * caller's workspace path runs and ASan sees one too small. */
static const int64_t PLAN_WORKSPACE = 256;

static Desc *desc_of(cudnnBackendDescriptor_t p) { return (Desc *)p; }

/* ---- which attributes each descriptor type has ---- */

enum Access { SETTABLE, GET_ONLY, NOT_EMULATED };
enum { ANY_OPERATION = -2, NO_REF = -1 };
static const int64_t MANY = INT64_MAX;

struct Spec {
    int desc;   /* cudnnBackendDescriptorType_t */
    int name;   /* cudnnBackendAttributeName_t */
    const char *what;
    int type, alt;   /* the attribute type taken; alt: a second one (FLOAT or DOUBLE), else the same */
    int64_t min, max;   /* element counts */
    int ref;            /* CUDNN_TYPE_BACKEND_DESCRIPTOR: the descriptor type of the elements */
    Access access;
};

#define A(D, N, T, MIN, MAX, REF, ACC)                                                                         \
    {CUDNN_BACKEND_##D##_DESCRIPTOR, CUDNN_ATTR_##N, "CUDNN_ATTR_" #N, CUDNN_TYPE_##T, CUDNN_TYPE_##T, MIN, MAX, REF, \
     ACC}
#define A2(D, N, T, ALT, ACC)                                                                                     \
    {CUDNN_BACKEND_##D##_DESCRIPTOR, CUDNN_ATTR_##N, "CUDNN_ATTR_" #N, CUDNN_TYPE_##T, CUDNN_TYPE_##ALT, 1, 1, NO_REF, \
     ACC}
#define DESC(D, N, REF, MIN, MAX, ACC) \
    {CUDNN_BACKEND_##D##_DESCRIPTOR, CUDNN_ATTR_##N, "CUDNN_ATTR_" #N, CUDNN_TYPE_BACKEND_DESCRIPTOR, \
     CUDNN_TYPE_BACKEND_DESCRIPTOR, MIN, MAX, REF, ACC}
#define TENSOR_REF CUDNN_BACKEND_TENSOR_DESCRIPTOR
static const Spec specs[] = {
    A(POINTWISE, POINTWISE_MODE, POINTWISE_MODE, 1, 1, NO_REF, SETTABLE),
    A(POINTWISE, POINTWISE_MATH_PREC, DATA_TYPE, 1, 1, NO_REF, SETTABLE),
    A(POINTWISE, POINTWISE_NAN_PROPAGATION, NAN_PROPOGATION, 1, 1, NO_REF, SETTABLE),
    A2(POINTWISE, POINTWISE_RELU_LOWER_CLIP, DOUBLE, FLOAT, NOT_EMULATED),
    A2(POINTWISE, POINTWISE_RELU_UPPER_CLIP, DOUBLE, FLOAT, NOT_EMULATED),
    A2(POINTWISE, POINTWISE_RELU_LOWER_CLIP_SLOPE, DOUBLE, FLOAT, NOT_EMULATED),
    A2(POINTWISE, POINTWISE_ELU_ALPHA, DOUBLE, FLOAT, NOT_EMULATED),
    A2(POINTWISE, POINTWISE_SOFTPLUS_BETA, DOUBLE, FLOAT, NOT_EMULATED),
    A2(POINTWISE, POINTWISE_SWISH_BETA, DOUBLE, FLOAT, NOT_EMULATED),
    A(POINTWISE, POINTWISE_AXIS, INT64, 1, 1, NO_REF, SETTABLE),

    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, 1, 1, SETTABLE),
    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_XDESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_BDESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_YDESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_TDESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_DXDESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_POINTWISE, OPERATION_POINTWISE_DYDESC, TENSOR_REF, 1, 1, SETTABLE),
    A2(OPERATION_POINTWISE, OPERATION_POINTWISE_ALPHA1, FLOAT, DOUBLE, SETTABLE),
    A2(OPERATION_POINTWISE, OPERATION_POINTWISE_ALPHA2, FLOAT, DOUBLE, SETTABLE),

    A(MATMUL, MATMUL_COMP_TYPE, DATA_TYPE, 1, 1, NO_REF, SETTABLE),
    A2(MATMUL, MATMUL_PADDING_VALUE, DOUBLE, FLOAT, NOT_EMULATED),
    DESC(OPERATION_MATMUL, OPERATION_MATMUL_ADESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_MATMUL, OPERATION_MATMUL_BDESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_MATMUL, OPERATION_MATMUL_CDESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_MATMUL, OPERATION_MATMUL_DESC, CUDNN_BACKEND_MATMUL_DESCRIPTOR, 1, 1, SETTABLE),
    A(OPERATION_MATMUL, OPERATION_MATMUL_IRREGULARLY_STRIDED_BATCH_COUNT, INT64, 1, 1, NO_REF, NOT_EMULATED),
    DESC(OPERATION_MATMUL, OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, TENSOR_REF, 1, 1, NOT_EMULATED),
    DESC(OPERATION_MATMUL, OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, TENSOR_REF, 1, 1, NOT_EMULATED),
    DESC(OPERATION_MATMUL, OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, TENSOR_REF, 1, 1, NOT_EMULATED),

    A(REDUCTION, REDUCTION_OPERATOR, REDUCTION_OPERATOR_TYPE, 1, 1, NO_REF, SETTABLE),
    A(REDUCTION, REDUCTION_COMP_TYPE, DATA_TYPE, 1, 1, NO_REF, SETTABLE),
    A(REDUCTION, REDUCTION_IS_DETERMINISTIC, BOOLEAN, 1, 1, NO_REF, SETTABLE),
    DESC(OPERATION_REDUCTION, OPERATION_REDUCTION_XDESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_REDUCTION, OPERATION_REDUCTION_YDESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_REDUCTION, OPERATION_REDUCTION_DESC, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, 1, 1, SETTABLE),

    DESC(OPERATION_RESHAPE, OPERATION_RESHAPE_XDESC, TENSOR_REF, 1, 1, SETTABLE),
    DESC(OPERATION_RESHAPE, OPERATION_RESHAPE_YDESC, TENSOR_REF, 1, 1, SETTABLE),

    A(TENSOR, TENSOR_BYTE_ALIGNMENT, INT64, 1, 1, NO_REF, SETTABLE),
    A(TENSOR, TENSOR_DATA_TYPE, DATA_TYPE, 1, 1, NO_REF, SETTABLE),
    A(TENSOR, TENSOR_DIMENSIONS, INT64, 1, CUDNN_DIM_MAX, NO_REF, SETTABLE),
    A(TENSOR, TENSOR_STRIDES, INT64, 1, CUDNN_DIM_MAX, NO_REF, SETTABLE),
    A(TENSOR, TENSOR_VECTOR_COUNT, INT64, 1, 1, NO_REF, SETTABLE),
    A(TENSOR, TENSOR_VECTORIZED_DIMENSION, INT64, 1, 1, NO_REF, SETTABLE),
    A(TENSOR, TENSOR_UNIQUE_ID, INT64, 1, 1, NO_REF, SETTABLE),
    A(TENSOR, TENSOR_IS_VIRTUAL, BOOLEAN, 1, 1, NO_REF, SETTABLE),
    A(TENSOR, TENSOR_IS_BY_VALUE, BOOLEAN, 1, 1, NO_REF, SETTABLE),
    A(TENSOR, TENSOR_REORDERING_MODE, TENSOR_REORDERING_MODE, 1, 1, NO_REF, SETTABLE),
    DESC(TENSOR, TENSOR_RAGGED_OFFSET_DESC, TENSOR_REF, 1, 1, NOT_EMULATED),

    A(OPERATIONGRAPH, OPERATIONGRAPH_HANDLE, HANDLE, 1, 1, NO_REF, SETTABLE),
    DESC(OPERATIONGRAPH, OPERATIONGRAPH_OPS, ANY_OPERATION, 1, MANY, SETTABLE),
    A(OPERATIONGRAPH, OPERATIONGRAPH_ENGINE_GLOBAL_COUNT, INT64, 1, 1, NO_REF, GET_ONLY),
    A(OPERATIONGRAPH, OPERATIONGRAPH_IS_DYNAMIC_SHAPE_ENABLED, BOOLEAN, 1, 1, NO_REF, NOT_EMULATED),

    A(ENGINEHEUR, ENGINEHEUR_MODE, HEUR_MODE, 1, 1, NO_REF, SETTABLE),
    DESC(ENGINEHEUR, ENGINEHEUR_OPERATION_GRAPH, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, 1, 1, SETTABLE),
    DESC(ENGINEHEUR, ENGINEHEUR_RESULTS, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, 0, MANY, GET_ONLY),
    A(ENGINEHEUR, ENGINEHEUR_SM_COUNT_TARGET, INT32, 1, 1, NO_REF, SETTABLE),
    DESC(ENGINEHEUR, ENGINEHEUR_DEVICEPROP, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, 1, 1, NOT_EMULATED),

    DESC(ENGINE, ENGINE_OPERATION_GRAPH, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, 1, 1, SETTABLE),
    A(ENGINE, ENGINE_GLOBAL_INDEX, INT64, 1, 1, NO_REF, SETTABLE),
    A(ENGINE, ENGINE_SM_COUNT_TARGET, INT32, 1, 1, NO_REF, SETTABLE),
    DESC(ENGINE, ENGINE_KNOB_INFO, CUDNN_BACKEND_KNOB_INFO_DESCRIPTOR, 0, MANY, GET_ONLY),
    A(ENGINE, ENGINE_NUMERICAL_NOTE, NUMERICAL_NOTE, 0, MANY, NO_REF, GET_ONLY),
    A(ENGINE, ENGINE_BEHAVIOR_NOTE, BEHAVIOR_NOTE, 0, MANY, NO_REF, GET_ONLY),
    DESC(ENGINE, ENGINE_LAYOUT_INFO, CUDNN_BACKEND_LAYOUT_INFO_DESCRIPTOR, 0, MANY, GET_ONLY),

    DESC(ENGINECFG, ENGINECFG_ENGINE, CUDNN_BACKEND_ENGINE_DESCRIPTOR, 1, 1, SETTABLE),
    DESC(ENGINECFG, ENGINECFG_KNOB_CHOICES, CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, 0, MANY, NOT_EMULATED),
    DESC(ENGINECFG, ENGINECFG_INTERMEDIATE_INFO, CUDNN_BACKEND_INTERMEDIATE_INFO_DESCRIPTOR, 0, MANY, GET_ONLY),
    A(ENGINECFG, ENGINECFG_WORKSPACE_SIZE, INT64, 1, 1, NO_REF, GET_ONLY),
    A(ENGINECFG, ENGINECFG_SHARED_MEMORY_USED, INT64, 1, 1, NO_REF, GET_ONLY),

    A(EXECUTION_PLAN, EXECUTION_PLAN_HANDLE, HANDLE, 1, 1, NO_REF, SETTABLE),
    DESC(EXECUTION_PLAN, EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, 1, 1, SETTABLE),
    A(EXECUTION_PLAN, EXECUTION_PLAN_WORKSPACE_SIZE, INT64, 1, 1, NO_REF, GET_ONLY),
    A(EXECUTION_PLAN, EXECUTION_PLAN_COMPUTED_INTERMEDIATE_UIDS, INT64, 0, MANY, NO_REF, GET_ONLY),
    A(EXECUTION_PLAN, EXECUTION_PLAN_RUN_ONLY_INTERMEDIATE_UIDS, INT64, 0, MANY, NO_REF, NOT_EMULATED),
    A(EXECUTION_PLAN, EXECUTION_PLAN_JSON_REPRESENTATION, CHAR, 0, MANY, NO_REF, NOT_EMULATED),
    DESC(EXECUTION_PLAN, EXECUTION_PLAN_KERNEL_CACHE, CUDNN_BACKEND_KERNEL_CACHE_DESCRIPTOR, 1, 1, NOT_EMULATED),
    DESC(EXECUTION_PLAN, EXECUTION_PLAN_DEVICEPROP, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, 1, 1, NOT_EMULATED),

    A(VARIANT_PACK, VARIANT_PACK_UNIQUE_IDS, INT64, 0, MANY, NO_REF, SETTABLE),
    A(VARIANT_PACK, VARIANT_PACK_DATA_POINTERS, VOID_PTR, 0, MANY, NO_REF, SETTABLE),
    A(VARIANT_PACK, VARIANT_PACK_INTERMEDIATES, VOID_PTR, 0, MANY, NO_REF, NOT_EMULATED),
    A(VARIANT_PACK, VARIANT_PACK_WORKSPACE, VOID_PTR, 1, 1, NO_REF, SETTABLE),
};
#undef A
#undef A2
#undef DESC
#undef TENSOR_REF

static const Spec *spec_of(int desc, int name)
{
    for (const Spec &s : specs)
        if (s.desc == desc && s.name == name)
            return &s;
    return nullptr;
}

/* The name of attribute `name`, whichever descriptor type has it. */
static const char *attr_name(int name)
{
    for (const Spec &s : specs)
        if (s.name == name)
            return s.what;
    static thread_local char buf[48];
    snprintf(buf, sizeof buf, "attribute %d", name);
    return buf;
}

static bool is_operation(int type)
{
    return type == CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR || type == CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR ||
           type == CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR || type == CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR;
}

/* The descriptor types the emulation has: the others are refused when created. */
static bool is_modeled(int type)
{
    switch (type) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR:
    case CUDNN_BACKEND_POINTWISE_DESCRIPTOR:
    case CUDNN_BACKEND_MATMUL_DESCRIPTOR:
    case CUDNN_BACKEND_REDUCTION_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINE_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR:
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR:
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: return true;
    default: return is_operation(type);
    }
}

static bool handle_ok(cudnnHandle_t h) { return h && h->kind == KIND_HANDLE; }

/* ---- reading attributes that were set ---- */

static const Attr *get(const Desc *d, int name)
{
    auto it = d->attrs.find(name);
    return it == d->attrs.end() ? nullptr : &it->second;
}
static int64_t i64_at(const Attr *a, int64_t i)
{
    int64_t v;
    memcpy(&v, a->bytes.data() + i * 8, 8);
    return v;
}
static std::vector<int64_t> i64s(const Attr *a)
{
    std::vector<int64_t> v((size_t)a->count);
    if (a->count)
        memcpy(v.data(), a->bytes.data(), (size_t)a->count * 8);
    return v;
}
static int enum_of(const Attr *a)   /* a 4-byte enumeration */
{
    int v;
    memcpy(&v, a->bytes.data(), sizeof v);
    return v;
}
static bool bool_of(const Attr *a) { return a->bytes[0] != 0; }   /* as bytes: any nonzero byte is true */
static double real_of(const Attr *a)
{
    if (a->type == CUDNN_TYPE_FLOAT) {
        float f;
        memcpy(&f, a->bytes.data(), 4);
        return f;
    }
    double d;
    memcpy(&d, a->bytes.data(), 8);
    return d;
}
static void *ptr_at(const Attr *a, int64_t i)
{
    void *p;
    memcpy(&p, a->bytes.data() + i * sizeof p, sizeof p);
    return p;
}

/* ---- shapes ---- */

static int64_t elements(const std::vector<int64_t> &dims)
{
    int64_t n = 1;
    for (int64_t d : dims)
        n *= d;
    return n;
}

static std::string shape_str(const Tensor &t)
{
    std::string s = "[";
    for (size_t i = 0; i < t.dims.size(); i++)
        s += (i ? "," : "") + std::to_string(t.dims[i]);
    s += "] strides [";
    for (size_t i = 0; i < t.strides.size(); i++)
        s += (i ? "," : "") + std::to_string(t.strides[i]);
    return s + "]";
}

/* The index along a dimension of `to` elements that index i along one of
 * `from` reads: the same, 0 (broadcast), or i's group of from/to. */
static int64_t map_index(int64_t i, int64_t from, int64_t to) { return to == from ? i : to == 1 ? 0 : i / (from / to); }

/* Offset (in elements) of t's element at index idx of a shape t
 * broadcasts to (map_index for each dimension). */
static int64_t offset_of(const Tensor &t, const std::vector<int64_t> &idx, const std::vector<int64_t> &shape)
{
    int64_t off = 0;
    for (size_t k = 0; k < t.dims.size(); k++)
        off += map_index(idx[k], shape[k], t.dims[k]) * t.layout[k];
    return off;
}

/* One past the largest offset of t's elements. */
static int64_t span_of(const Tensor &t)
{
    int64_t s = 1;
    for (size_t k = 0; k < t.dims.size(); k++)
        s += (t.dims[k] - 1) * t.layout[k];
    return s;
}

/* Calls f(idx) for every index of dims, in row-major order. */
template <class F> static void each_index(const std::vector<int64_t> &dims, F f)
{
    std::vector<int64_t> idx(dims.size(), 0);
    for (int64_t n = elements(dims), i = 0; i < n; i++) {
        f(idx);
        for (size_t k = dims.size(); k-- > 0;) {
            if (++idx[k] < dims[k])
                break;
            idx[k] = 0;
        }
    }
}

/* A layout's (dim, stride) pairs with dims of 1 dropped, by stride, and
 * runs that are one block merged: two layouts with the same canonical
 * form cover the same offsets, and one whose pairs do not nest (a stride
 * below the extent of the pairs under it) lets two elements share one. */
static std::vector<std::pair<int64_t, int64_t>> canonical(const Tensor &t, bool *overlaps)
{
    std::vector<std::pair<int64_t, int64_t>> p;
    for (size_t k = 0; k < t.dims.size(); k++)
        if (t.dims[k] > 1)
            p.push_back({t.strides[k], t.dims[k]});
    std::sort(p.begin(), p.end());
    std::vector<std::pair<int64_t, int64_t>> out;
    bool overlap = !p.empty() && p[0].first == 0;
    for (auto &sd : p) {
        if (!out.empty()) {
            auto &last = out.back();
            if (sd.first < last.first * last.second)
                overlap = true;
            if (sd.first == last.first * last.second) {
                last.second *= sd.second;
                continue;
            }
        }
        out.push_back(sd);
    }
    if (overlaps)
        *overlaps = overlap;
    return out;
}

/* ---- entry points: library and handle ---- */

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }
size_t cudnnGetMaxDeviceVersion(void) { return CUDNN_MAX_DEVICE_VERSION; }
size_t cudnnGetCudartVersion(void) { return CUDART_VERSION; }
cudnnStatus_t cudnnGraphVersionCheck(void) { return CUDNN_STATUS_SUCCESS; }

cudnnStatus_t cudnnGetProperty(libraryPropertyType type, int *value)
{
    if (!value)
        return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "cudnnGetProperty: value is NULL");
    switch (type) {
    case MAJOR_VERSION: *value = CUDNN_MAJOR; return CUDNN_STATUS_SUCCESS;
    case MINOR_VERSION: *value = CUDNN_MINOR; return CUDNN_STATUS_SUCCESS;
    case PATCH_LEVEL: *value = CUDNN_PATCHLEVEL; return CUDNN_STATUS_SUCCESS;
    }
    return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetProperty: unknown property %d", (int)type);
}

const char *cudnnGetErrorString(cudnnStatus_t status) { return status_name(status); }

/* The message stays until read, and reading it clears it (as 9.19's). */
void cudnnGetLastErrorString(char *message, size_t max_size)
{
    if (message && max_size)
        snprintf(message, max_size, "%s", last_error);
    last_error[0] = 0;
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle)
{
    if (!handle)
        return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "cudnnCreate: handle is NULL");
    *handle = new cudnnContext{KIND_HANDLE, nullptr};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle)
{
    if (!handle_ok(handle))
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnDestroy: %s", handle ? "not a live handle" : "handle is NULL");
    handle->kind = KIND_DEAD;
    delete handle;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream)
{
    if (!handle_ok(handle))
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetStream: %s", handle ? "not a live handle" : "handle is NULL");
    handle->stream = stream;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t *stream)
{
    if (!handle_ok(handle) || !stream)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetStream: %s", !stream ? "stream is NULL" : "not a live handle");
    *stream = handle->stream;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- entry points: descriptors ---- */

/* The live descriptor behind p, or NULL (and the reason recorded). */
static Desc *live(cudnnBackendDescriptor_t p, const char *call, cudnnStatus_t *st)
{
    Desc *d = desc_of(p);
    if (!d) {
        *st = fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "%s: the descriptor is NULL", call);
        return nullptr;
    }
    if (d->kind != KIND_DESC || !d->user) {
        *st = fail(CUDNN_STATUS_BAD_PARAM, "%s: %p is not a live descriptor (destroyed, or not one)", call, p);
        return nullptr;
    }
    return d;
}

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t type, cudnnBackendDescriptor_t *descriptor)
{
    if (!descriptor)
        return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "cudnnBackendCreateDescriptor: descriptor is NULL");
    *descriptor = nullptr;
    if (!is_modeled(type))
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "cudnnBackendCreateDescriptor: %s is not emulated",
                    desc_type_name(type));
    Ref d = std::make_shared<Desc>();
    d->type = type;
    d->user = d;   /* the caller's reference, until cudnnBackendDestroyDescriptor */
    *descriptor = d.get();
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t descriptor)
{
    cudnnStatus_t st;
    Desc *d = live(descriptor, "cudnnBackendDestroyDescriptor", &st);
    if (!d)
        return st;
    Ref keep = std::move(d->user);   /* freed now unless another descriptor refers to it */
    return CUDNN_STATUS_SUCCESS;
}

/* Whether the elements of a SetAttribute are values the attribute takes. */
static cudnnStatus_t check_values(const Desc *d, const Spec *s, int64_t n, const void *elements)
{
    const char *what = s->what;
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *e = (const unsigned char *)elements + i * (int64_t)attr_type_size(s->type);
        int v = 0;
        if (attr_type_size(s->type) == sizeof(int))
            memcpy(&v, e, sizeof v);
        switch (s->type) {
        case CUDNN_TYPE_DATA_TYPE:
            if (!dtype_known(v))
                return fail(CUDNN_STATUS_BAD_PARAM, "%s of %s: %d is not a cudnnDataType_t", what,
                            desc_type_name(d->type), v);
            break;
        case CUDNN_TYPE_POINTWISE_MODE:
            if (pw_index(v) < 0)
                return fail(CUDNN_STATUS_BAD_PARAM, "%s: %d is not a cudnnPointwiseMode_t", what, v);
            break;
        case CUDNN_TYPE_HEUR_MODE:
            if (v < 0 || v >= CUDNN_HEUR_MODES_COUNT)
                return fail(CUDNN_STATUS_BAD_PARAM, "%s: %d is not a cudnnBackendHeurMode_t", what, v);
            break;
        case CUDNN_TYPE_REDUCTION_OPERATOR_TYPE:
            if (v < 0 || v > CUDNN_REDUCE_TENSOR_MUL_NO_ZEROS)
                return fail(CUDNN_STATUS_BAD_PARAM, "%s: %d is not a cudnnReduceTensorOp_t", what, v);
            break;
        case CUDNN_TYPE_TENSOR_REORDERING_MODE:
            if (v < 0 || v > CUDNN_TENSOR_REORDERING_F8_128x4)
                return fail(CUDNN_STATUS_BAD_PARAM, "%s: %d is not a cudnnBackendTensorReordering_t", what, v);
            break;
        case CUDNN_TYPE_HANDLE: {
            cudnnHandle_t h;
            memcpy(&h, e, sizeof h);
            if (!handle_ok(h))
                return fail(CUDNN_STATUS_BAD_PARAM, "%s: %s", what, h ? "not a live cudnnHandle_t" : "NULL handle");
            break;
        }
        case CUDNN_TYPE_BACKEND_DESCRIPTOR: {
            cudnnBackendDescriptor_t p;
            memcpy(&p, e, sizeof p);
            Desc *r = desc_of(p);
            if (!r)
                return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "%s of %s: element %lld is NULL", what,
                            desc_type_name(d->type), (long long)i);
            if (r->kind != KIND_DESC || !r->user)
                return fail(CUDNN_STATUS_BAD_PARAM, "%s: element %lld (%p) is not a live descriptor", what,
                            (long long)i, p);
            if (s->ref == ANY_OPERATION ? !is_operation(r->type) : r->type != s->ref)
                return fail(CUDNN_STATUS_BAD_PARAM, "%s takes %s, not %s", what,
                            s->ref == ANY_OPERATION ? "operation descriptors" : desc_type_name(s->ref),
                            desc_type_name(r->type));
            break;   /* finalized or not: Finalize checks (as 9.19 does) */
        }
        default: break;
        }
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t descriptor, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t count, const void *elements)
{
    cudnnStatus_t st;
    Desc *d = live(descriptor, "cudnnBackendSetAttribute", &st);
    if (!d)
        return st;
    const Spec *s = spec_of(d->type, name);
    if (!s)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s is not an attribute of %s", attr_name(name), desc_type_name(d->type));
    if (d->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM, "setting %s: the %s is already finalized", s->what,
                    desc_type_name(d->type));
    if (s->access == GET_ONLY)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "%s of %s can only be read", s->what, desc_type_name(d->type));
    if (s->access == NOT_EMULATED)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "%s of %s is not emulated", s->what, desc_type_name(d->type));
    if (type != s->type && type != s->alt) {   /* 9.19's codes: BAD_PARAM where two types are taken */
        if (s->alt != s->type)
            return fail(CUDNN_STATUS_BAD_PARAM, "%s takes %s or %s, not %s", s->what, attr_type_name(s->type),
                        attr_type_name(s->alt), attr_type_name(type));
        return fail(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE, "%s takes %s, not %s", s->what, attr_type_name(s->type),
                    attr_type_name(type));
    }
    if (count < s->min || count > s->max) {
        if (s->min == s->max)
            return fail(CUDNN_STATUS_BAD_PARAM, "%s takes %lld element%s, not %lld", s->what, (long long)s->min,
                        s->min == 1 ? "" : "s", (long long)count);
        if (s->max == MANY)
            return fail(CUDNN_STATUS_BAD_PARAM, "%s takes %lld or more elements, not %lld", s->what,
                        (long long)s->min, (long long)count);
        return fail(CUDNN_STATUS_BAD_PARAM, "%s takes %lld to %lld elements, not %lld", s->what, (long long)s->min,
                    (long long)s->max, (long long)count);
    }
    if (count > 0 && !elements)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: %lld element%s at NULL", s->what, (long long)count,
                    count == 1 ? "" : "s");
    if ((st = check_values(d, s, count, elements)) != CUDNN_STATUS_SUCCESS)
        return st;
    Attr a;
    a.type = type;
    a.count = count;
    size_t bytes = (size_t)count * attr_type_size(type);
    a.bytes.assign((const unsigned char *)elements, (const unsigned char *)elements + bytes);
    if (type == CUDNN_TYPE_BACKEND_DESCRIPTOR)
        for (int64_t i = 0; i < count; i++)
            a.descs.push_back(desc_of(ptr_at(&a, i))->shared_from_this());
    d->attrs[name] = std::move(a);
    return CUDNN_STATUS_SUCCESS;
}

/* ---- Finalize: each descriptor type's checks ---- */

static cudnnStatus_t missing(const Desc *d, const char *attr)
{
    return fail(CUDNN_STATUS_BAD_PARAM, "finalizing %s: %s is not set", desc_type_name(d->type), attr);
}
#define NEED(a, name)            \
    const Attr *a = get(d, name); \
    if (!a)                       \
        return missing(d, #name);

static cudnnStatus_t finalize_tensor(Desc *d)
{
    NEED(type, CUDNN_ATTR_TENSOR_DATA_TYPE)
    NEED(dims, CUDNN_ATTR_TENSOR_DIMENSIONS)
    NEED(strides, CUDNN_ATTR_TENSOR_STRIDES)
    NEED(uid, CUDNN_ATTR_TENSOR_UNIQUE_ID)
    NEED(align, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT)
    Tensor &t = d->tensor;
    t.type = enum_of(type);
    t.dims = i64s(dims);
    t.strides = i64s(strides);
    t.uid = i64_at(uid, 0);
    t.align = i64_at(align, 0);
    const Attr *v = get(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL), *bv = get(d, CUDNN_ATTR_TENSOR_IS_BY_VALUE);
    t.is_virtual = v && bool_of(v);
    t.by_value = bv && bool_of(bv);
    long long u = (long long)t.uid;
    if (t.dims.size() != t.strides.size())
        return fail(CUDNN_STATUS_BAD_PARAM, "tensor uid %lld: %zu dimensions but %zu strides", u, t.dims.size(),
                    t.strides.size());
    for (size_t k = 0; k < t.dims.size(); k++)
        if (t.dims[k] <= 0 || t.strides[k] < 0)
            return fail(CUDNN_STATUS_BAD_PARAM,
                        "tensor uid %lld %s: dimensions must be positive, strides not negative", u,
                        shape_str(t).c_str());
    size_t es = dtype_size(t.type);
    if (t.align <= 0 || (es && t.align % (int64_t)es))
        return fail(CUDNN_STATUS_BAD_PARAM, "tensor uid %lld: byte alignment %lld is not a positive multiple of "
                    "its element's %zu bytes", u, (long long)t.align, es);
    if (t.is_virtual && t.by_value)
        return fail(CUDNN_STATUS_BAD_PARAM, "tensor uid %lld is both virtual and by value", u);
    if (t.by_value && elements(t.dims) != 1)
        return fail(CUDNN_STATUS_BAD_PARAM, "tensor uid %lld is by value but not a scalar: %s", u,
                    shape_str(t).c_str());
    /* A virtual tensor's strides are immaterial to the engines (cudnn-frontend's
     * own SDPA backward declares dO * O [b, h, s, d] with strides {h s d, s d,
     * h d, 1}, which overlap): such a one is kept dense. */
    canonical(t, &t.overlapping);
    t.layout = t.strides;
    if (t.is_virtual && t.overlapping)
        for (size_t k = t.dims.size(), m = 1; k-- > 0; m *= (size_t)t.dims[k])
            t.layout[k] = (int64_t)m;
    const Attr *vc = get(d, CUDNN_ATTR_TENSOR_VECTOR_COUNT), *re = get(d, CUDNN_ATTR_TENSOR_REORDERING_MODE);
    if (vc && i64_at(vc, 0) != 1)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "tensor uid %lld: vector count %lld is not emulated (only 1)", u,
                    (long long)i64_at(vc, 0));
    if (re && enum_of(re) != CUDNN_TENSOR_REORDERING_NONE)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "tensor uid %lld: reordering mode %d is not emulated", u,
                    enum_of(re));
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_pointwise(Desc *d)
{
    NEED(mode, CUDNN_ATTR_POINTWISE_MODE)
    const Attr *prec = get(d, CUDNN_ATTR_POINTWISE_MATH_PREC);
    d->mode = enum_of(mode);
    d->comp = prec ? enum_of(prec) : CUDNN_DATA_FLOAT;   /* optional in 9.19 */
    const Attr *axis = get(d, CUDNN_ATTR_POINTWISE_AXIS);
    d->axis = axis ? i64_at(axis, 0) : -1;
    if (d->mode == CUDNN_POINTWISE_GEN_INDEX && d->axis < 0)
        return fail(CUDNN_STATUS_BAD_PARAM, "CUDNN_POINTWISE_GEN_INDEX needs CUDNN_ATTR_POINTWISE_AXIS%s",
                    axis ? " not negative" : "");
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_compute_type(Desc *d, int attr, const char *name)
{
    const Attr *c = get(d, attr);
    if (!c)
        return missing(d, name);
    d->comp = enum_of(c);
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_reduction(Desc *d)
{
    NEED(op, CUDNN_ATTR_REDUCTION_OPERATOR)
    d->mode = enum_of(op);
    return finalize_compute_type(d, CUDNN_ATTR_REDUCTION_COMP_TYPE, "CUDNN_ATTR_REDUCTION_COMP_TYPE");
}

static const Tensor &tensor_of(const Ref &r) { return r->tensor; }

/* Whether input x broadcasts to y: y's rank, each dimension y's or 1. */
static bool broadcasts(const Tensor &x, const Tensor &y)
{
    if (x.dims.size() != y.dims.size())
        return false;
    for (size_t k = 0; k < x.dims.size(); k++)
        if (x.dims[k] != y.dims[k] && x.dims[k] != 1)
            return false;
    return true;
}

static cudnnStatus_t finalize_op_pointwise(Desc *d)
{
    NEED(pw, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR)
    Op &op = d->op;
    op.kind = OP_POINTWISE;
    const Desc *p = pw->descs[0].get();
    op.mode = (cudnnPointwiseMode_t)p->mode;
    op.prec = p->comp;
    op.axis = p->axis;
    const Attr *a1 = get(d, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1), *a2 = get(d, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2);
    op.alpha1 = a1 ? real_of(a1) : 1;
    op.alpha2 = a2 ? real_of(a2) : 1;
    const char *mode = pw_name(op.mode);
    Arity arity = pw_modes[pw_index(op.mode)].arity;
    const Attr *x = get(d, CUDNN_ATTR_OPERATION_POINTWISE_XDESC), *b = get(d, CUDNN_ATTR_OPERATION_POINTWISE_BDESC),
               *t = get(d, CUDNN_ATTR_OPERATION_POINTWISE_TDESC), *y = get(d, CUDNN_ATTR_OPERATION_POINTWISE_YDESC),
               *dx = get(d, CUDNN_ATTR_OPERATION_POINTWISE_DXDESC), *dy = get(d, CUDNN_ATTR_OPERATION_POINTWISE_DYDESC);
    static const char *const needs[] = {"", "X and Y", "X, B and Y", "X, B, T and Y", "DY, X and DX"};
    bool ok = arity == BACKWARD ? dy && x && dx && !b && !t && !y
                                : x && y && !dx && !dy && (b != nullptr) == (arity >= BINARY) &&
                                      (t != nullptr) == (arity == TERNARY);
    if (!ok)
        return fail(CUDNN_STATUS_BAD_PARAM, "pointwise %s takes %s descriptors, and only those; given:%s%s%s%s%s%s",
                    mode, needs[arity], x ? " X" : "", b ? " B" : "", t ? " T" : "", y ? " Y" : "", dx ? " DX" : "",
                    dy ? " DY" : "");
    op.in.clear();
    if (arity == BACKWARD) {
        op.in = {dy->descs[0], x->descs[0]};
        op.out = dx->descs[0];
    } else {
        op.in.push_back(x->descs[0]);
        if (b)
            op.in.push_back(b->descs[0]);
        if (t)
            op.in.push_back(t->descs[0]);
        op.out = y->descs[0];
    }
    static const char *const roles[] = {"X", "B", "T"};
    const Tensor &out = tensor_of(op.out);
    for (size_t i = 0; i < op.in.size(); i++)
        if (!broadcasts(tensor_of(op.in[i]), out))
            return fail(CUDNN_STATUS_BAD_PARAM,
                        "pointwise %s: %s (uid %lld) %s does not broadcast to the output (uid %lld) %s "
                        "(same rank, each dimension the output's or 1)",
                        mode, arity == BACKWARD ? (i ? "X" : "DY") : roles[i], (long long)tensor_of(op.in[i]).uid,
                        shape_str(tensor_of(op.in[i])).c_str(), (long long)out.uid, shape_str(out).c_str());
    if (op.mode == CUDNN_POINTWISE_GEN_INDEX && op.axis >= (int64_t)out.dims.size())
        return fail(CUDNN_STATUS_BAD_PARAM, "pointwise GEN_INDEX: axis %lld of a %zu-dimensional output",
                    (long long)op.axis, out.dims.size());
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_op_matmul(Desc *d)
{
    NEED(a, CUDNN_ATTR_OPERATION_MATMUL_ADESC)
    NEED(b, CUDNN_ATTR_OPERATION_MATMUL_BDESC)
    NEED(c, CUDNN_ATTR_OPERATION_MATMUL_CDESC)
    NEED(mm, CUDNN_ATTR_OPERATION_MATMUL_DESC)
    Op &op = d->op;
    op.kind = OP_MATMUL;
    op.in = {a->descs[0], b->descs[0]};
    op.out = c->descs[0];
    op.prec = mm->descs[0]->comp;
    const Tensor &A = tensor_of(op.in[0]), &B = tensor_of(op.in[1]), &C = tensor_of(op.out);
    size_t r = C.dims.size();
    std::string shapes = "A (uid " + std::to_string(A.uid) + ") " + shape_str(A) + ", B (uid " +
                         std::to_string(B.uid) + ") " + shape_str(B) + ", C (uid " + std::to_string(C.uid) + ") " +
                         shape_str(C);
    if (A.dims.size() != r || B.dims.size() != r || r < 2)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "matmul: A, B and C need one rank, 2 or more: %s", shapes.c_str());
    int64_t M = C.dims[r - 2], N = C.dims[r - 1], K = A.dims[r - 1];
    if (A.dims[r - 2] != M || B.dims[r - 2] != K || B.dims[r - 1] != N)
        return fail(CUDNN_STATUS_BAD_PARAM, "matmul: A [.., M, K] times B [.., K, N] is C [.., M, N]: %s",
                    shapes.c_str());
    for (size_t k = 0; k + 2 < r; k++) {   /* 9.19's rule */
        int64_t dc = C.dims[k], da = A.dims[k], db = B.dims[k];
        if ((da % db && db % da) || dc != std::max(da, db))
            return fail(CUDNN_STATUS_BAD_PARAM,
                        "matmul: batch dimension %zu: one of A's and B's must divide the other (the smaller read "
                        "in groups), and C's be the larger: %s",
                        k, shapes.c_str());
    }
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_op_reduction(Desc *d)
{
    NEED(x, CUDNN_ATTR_OPERATION_REDUCTION_XDESC)
    NEED(y, CUDNN_ATTR_OPERATION_REDUCTION_YDESC)
    NEED(rd, CUDNN_ATTR_OPERATION_REDUCTION_DESC)
    Op &op = d->op;
    op.kind = OP_REDUCTION;
    op.in = {x->descs[0]};
    op.out = y->descs[0];
    op.reduce = rd->descs[0]->mode;
    op.prec = rd->descs[0]->comp;
    const Tensor &X = tensor_of(op.in[0]), &Y = tensor_of(op.out);
    bool ok = X.dims.size() == Y.dims.size();
    for (size_t k = 0; ok && k < X.dims.size(); k++)
        ok = Y.dims[k] == X.dims[k] || Y.dims[k] == 1 || X.dims[k] % Y.dims[k] == 0;
    if (!ok)
        return fail(CUDNN_STATUS_BAD_PARAM,
                    "reduction: Y (uid %lld) %s from X (uid %lld) %s: same rank, each dimension X's (kept), 1 "
                    "(reduced) or a divisor of X's (reduced in groups)",
                    (long long)Y.uid, shape_str(Y).c_str(), (long long)X.uid, shape_str(X).c_str());
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_op_reshape(Desc *d)
{
    NEED(x, CUDNN_ATTR_OPERATION_RESHAPE_XDESC)
    NEED(y, CUDNN_ATTR_OPERATION_RESHAPE_YDESC)
    Op &op = d->op;
    op.kind = OP_RESHAPE;
    op.in = {x->descs[0]};
    op.out = y->descs[0];
    const Tensor &X = tensor_of(op.in[0]), &Y = tensor_of(op.out);
    if (elements(X.dims) != elements(Y.dims))
        return fail(CUDNN_STATUS_BAD_PARAM, "reshape: Y (uid %lld) %s has not the elements of X (uid %lld) %s",
                    (long long)Y.uid, shape_str(Y).c_str(), (long long)X.uid, shape_str(X).c_str());
    return CUDNN_STATUS_SUCCESS;   /* whether Y views X's memory: the plan's question (unsupported) */
}

/* Whether two descriptors with one uid describe the same tensor. */
static bool same_tensor(const Tensor &a, const Tensor &b)
{
    return a.type == b.type && a.dims == b.dims && a.strides == b.strides && a.is_virtual == b.is_virtual &&
           a.by_value == b.by_value && a.align == b.align;
}

/* What the interpreter cannot run in graph g ("" when it can run all). */
static std::string unsupported(const Graph &g)
{
    for (const Ref &r : g.tensors) {
        const Tensor &t = r->tensor;
        if (!dtype_size(t.type))
            return "tensor uid " + std::to_string(t.uid) + ": " + dtype_name(t.type) + " is not emulated";
        if (t.type == CUDNN_DATA_BOOLEAN && !t.is_virtual)
            return "tensor uid " + std::to_string(t.uid) +
                   ": a non-virtual CUDNN_DATA_BOOLEAN tensor is not emulated (cuDNN's memory layout for it)";
    }
    for (const Ref &r : g.order) {
        const Op &op = r->op;
        switch (op.kind) {
        case OP_POINTWISE:
            if (!pw_modes[pw_index(op.mode)].emulated)
                return std::string("pointwise mode ") + pw_name(op.mode) + " is not emulated";
            if (op.prec != CUDNN_DATA_FLOAT && op.prec != CUDNN_DATA_DOUBLE && op.prec != CUDNN_DATA_INT32 &&
                op.prec != CUDNN_DATA_BOOLEAN)
                return std::string("pointwise math precision ") + dtype_name(op.prec) + " is not emulated";
            break;
        case OP_MATMUL:
            if (op.prec != CUDNN_DATA_FLOAT)
                return std::string("matmul compute type ") + dtype_name(op.prec) +
                       " is not emulated (only CUDNN_DATA_FLOAT)";
            break;
        case OP_REDUCTION:
            if (op.reduce == CUDNN_REDUCE_TENSOR_MUL_NO_ZEROS)
                return std::string("reduction ") + reduce_name(op.reduce) + " is not emulated";
            if (op.prec != CUDNN_DATA_FLOAT)
                return std::string("reduction compute type ") + dtype_name(op.prec) +
                       " is not emulated (only CUDNN_DATA_FLOAT)";
            break;
        case OP_RESHAPE: {
            const Tensor &X = op.in[0]->tensor, &Y = op.out->tensor;
            std::string what = "reshape of uid " + std::to_string(X.uid) + " " + shape_str(X) + " to uid " +
                               std::to_string(Y.uid) + " " + shape_str(Y);
            if (X.overlapping || Y.overlapping)
                return what + ": a tensor whose strides overlap has no view to take (its strides are not its memory)";
            if (canonical(X, nullptr) != canonical(Y, nullptr))
                return what + ": not a view of the same memory (the emulation's RESHAPE is a view: a transpose "
                              "permutes dims and strides alike)";
            break;
        }
        }
    }
    return "";
}

static cudnnStatus_t finalize_graph(Desc *d)
{
    NEED(ops, CUDNN_ATTR_OPERATIONGRAPH_OPS)
    Graph g;   /* the handle: optional in 9.19 */
    const Attr *handle = get(d, CUDNN_ATTR_OPERATIONGRAPH_HANDLE);
    g.handle = nullptr;
    if (handle)
        memcpy(&g.handle, handle->bytes.data(), sizeof g.handle);
    const std::vector<Ref> &list = ops->descs;
    /* The tensors: each uid's descriptions (distinct ones), and which
     * operation produces each uid. */
    std::map<int64_t, std::vector<Ref>> forms;
    std::map<int64_t, size_t> producer;
    for (size_t i = 0; i < list.size(); i++) {
        const Op &op = list[i]->op;
        std::vector<Ref> all = op.in;
        all.push_back(op.out);
        for (const Ref &r : all) {
            std::vector<Ref> &f = forms[r->tensor.uid];
            if (std::none_of(f.begin(), f.end(), [&](const Ref &o) { return same_tensor(o->tensor, r->tensor); }))
                f.push_back(r);
        }
        const Tensor &out = op.out->tensor;
        for (const Ref &r : op.in)
            if (r->tensor.uid == out.uid)
                return fail(CUDNN_STATUS_BAD_PARAM, "operation graph: operation %zu reads its own output (uid %lld)",
                            i, (long long)out.uid);
        if (out.by_value)
            return fail(CUDNN_STATUS_BAD_PARAM, "operation graph: operation %zu writes by-value tensor uid %lld", i,
                        (long long)out.uid);
        if (producer.count(out.uid))
            return fail(CUDNN_STATUS_BAD_PARAM, "operation graph: uid %lld is the output of operations %zu and %zu",
                        (long long)out.uid, producer[out.uid], i);
        producer[out.uid] = i;
        if (out.overlapping && !out.is_virtual)
            return fail(CUDNN_STATUS_BAD_PARAM,
                        "operation graph: the strides of output uid %lld %s give two of its elements one address",
                        (long long)out.uid, shape_str(out).c_str());
    }
    /* One uid in several descriptions: only a graph input (9.19 takes K and
     * K^T under one uid, one pointer); an operation's output is read as its
     * producer describes it (9.19 refuses the rest: "linkEdges"). */
    for (auto &kv : forms) {
        const Tensor &t = kv.second[0]->tensor;
        if (t.is_virtual && !producer.count(kv.first))
            return fail(CUDNN_STATUS_BAD_PARAM, "operation graph: virtual tensor uid %lld is read but no operation "
                        "produces it", (long long)kv.first);
        for (size_t j = 1; j < kv.second.size(); j++) {
            const Tensor &u = kv.second[j]->tensor;
            if (producer.count(kv.first) || t.is_virtual != u.is_virtual || t.by_value != u.by_value)
                return fail(CUDNN_STATUS_BAD_PARAM,
                            "operation graph: uid %lld is described two ways, %s %s%s%s and %s %s%s%s; only a graph "
                            "input may be (a view of an operation's output needs a RESHAPE)",
                            (long long)kv.first, dtype_name(t.type), shape_str(t).c_str(),
                            t.is_virtual ? " virtual" : "", t.by_value ? " by value" : "", dtype_name(u.type),
                            shape_str(u).c_str(), u.is_virtual ? " virtual" : "", u.by_value ? " by value" : "");
        }
    }
    /* Producers first (Kahn's algorithm over the operations). */
    std::vector<int> waiting(list.size(), 0);
    std::vector<std::vector<size_t>> consumers(list.size());
    for (size_t i = 0; i < list.size(); i++)
        for (const Ref &r : list[i]->op.in) {
            auto p = producer.find(r->tensor.uid);
            if (p != producer.end()) {
                waiting[i]++;
                consumers[p->second].push_back(i);
            }
        }
    std::vector<size_t> ready;
    for (size_t i = 0; i < list.size(); i++)
        if (!waiting[i])
            ready.push_back(i);
    for (size_t k = 0; k < ready.size(); k++)
        for (size_t c : consumers[ready[k]])
            if (--waiting[c] == 0)
                ready.push_back(c);
    if (ready.size() != list.size())
        return fail(CUDNN_STATUS_BAD_PARAM, "operation graph: its operations form a cycle (%zu of %zu cannot run)",
                    list.size() - ready.size(), list.size());
    for (size_t i : ready)
        g.order.push_back(list[i]);
    for (auto &kv : forms)
        g.tensors.insert(g.tensors.end(), kv.second.begin(), kv.second.end());
    g.unsupported = unsupported(g);
    d->graph = std::move(g);
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_engine(Desc *d)
{
    NEED(graph, CUDNN_ATTR_ENGINE_OPERATION_GRAPH)
    NEED(index, CUDNN_ATTR_ENGINE_GLOBAL_INDEX)
    if (i64_at(index, 0) != 0)
        return fail(CUDNN_STATUS_BAD_PARAM, "engine global index %lld: the emulation has one engine, index 0",
                    (long long)i64_at(index, 0));
    d->graph_desc = graph->descs[0];
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_enginecfg(Desc *d)
{
    NEED(engine, CUDNN_ATTR_ENGINECFG_ENGINE)
    d->graph_desc = engine->descs[0]->graph_desc;
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_heur(Desc *d)
{
    NEED(graph, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH)
    NEED(mode, CUDNN_ATTR_ENGINEHEUR_MODE)
    d->graph_desc = graph->descs[0];
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_plan(Desc *d)
{
    const Attr *cfg = get(d, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG);
    if (!cfg)   /* 9.19's code */
        return fail(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED, "finalizing %s: CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG is "
                    "not set", desc_type_name(d->type));
    NEED(handle, CUDNN_ATTR_EXECUTION_PLAN_HANDLE)
    d->graph_desc = cfg->descs[0]->graph_desc;
    const std::string &why = d->graph_desc->graph.unsupported;
    if (!why.empty())
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "execution plan: the emulation cannot run this graph: %s", why.c_str());
    d->workspace = PLAN_WORKSPACE;
    return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t finalize_pack(Desc *d)
{
    NEED(uids, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS)
    NEED(ptrs, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS)
    if (uids->count != ptrs->count)
        return fail(CUDNN_STATUS_BAD_PARAM, "variant pack: %lld unique ids but %lld data pointers",
                    (long long)uids->count, (long long)ptrs->count);
    d->uids = i64s(uids);
    d->ptrs.resize((size_t)ptrs->count);
    for (int64_t i = 0; i < ptrs->count; i++)
        d->ptrs[(size_t)i] = ptr_at(ptrs, i);
    const Attr *ws = get(d, CUDNN_ATTR_VARIANT_PACK_WORKSPACE);
    d->ws = ws ? ptr_at(ws, 0) : nullptr;
    return CUDNN_STATUS_SUCCESS;
}
#undef NEED

cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t descriptor)
{
    cudnnStatus_t st;
    Desc *d = live(descriptor, "cudnnBackendFinalize", &st);
    if (!d)
        return st;
    if (d->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnBackendFinalize: the %s is already finalized",
                    desc_type_name(d->type));
    for (auto &kv : d->attrs)   /* descriptors given as values: finalized by now */
        for (const Ref &r : kv.second.descs)
            if (!r->finalized)
                return fail(CUDNN_STATUS_BAD_PARAM, "finalizing %s: the %s given as %s is not finalized",
                            desc_type_name(d->type), desc_type_name(r->type), attr_name(kv.first));
    switch (d->type) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR: st = finalize_tensor(d); break;
    case CUDNN_BACKEND_POINTWISE_DESCRIPTOR: st = finalize_pointwise(d); break;
    case CUDNN_BACKEND_MATMUL_DESCRIPTOR:
        st = finalize_compute_type(d, CUDNN_ATTR_MATMUL_COMP_TYPE, "CUDNN_ATTR_MATMUL_COMP_TYPE");
        break;
    case CUDNN_BACKEND_REDUCTION_DESCRIPTOR: st = finalize_reduction(d); break;
    case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR: st = finalize_op_pointwise(d); break;
    case CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR: st = finalize_op_matmul(d); break;
    case CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR: st = finalize_op_reduction(d); break;
    case CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR: st = finalize_op_reshape(d); break;
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR: st = finalize_graph(d); break;
    case CUDNN_BACKEND_ENGINE_DESCRIPTOR: st = finalize_engine(d); break;
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR: st = finalize_enginecfg(d); break;
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR: st = finalize_heur(d); break;
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR: st = finalize_plan(d); break;
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: st = finalize_pack(d); break;
    default: st = fail(CUDNN_STATUS_NOT_SUPPORTED, "finalizing %s is not emulated", desc_type_name(d->type));
    }
    if (st == CUDNN_STATUS_SUCCESS)
        d->finalized = true;
    return st;
}

/* ---- GetAttribute ---- */

/* Copies n int64 values out as GetAttribute does: the count alone when
 * elements is NULL, else as many as requested and the number written. */
static cudnnStatus_t give_i64(const int64_t *v, int64_t n, int64_t requested, int64_t *count, void *elements)
{
    if (!elements) {
        *count = n;
        return CUDNN_STATUS_SUCCESS;
    }
    int64_t k = std::min(n, requested);
    if (k > 0)
        memcpy(elements, v, (size_t)k * sizeof *v);
    *count = k;
    return CUDNN_STATUS_SUCCESS;
}

/* CUDNN_ATTR_ENGINEHEUR_RESULTS: one configuration, of the interpreter,
 * made in the first of the caller's (created, not finalized) descriptors;
 * none when DSK_CUDNN_EMU_ENGINES=0 (a test hook: a library that has no
 * engine for any graph, as a GPU's may not for one, so that the caller's
 * fallback runs). */
static cudnnStatus_t heur_results(Desc *heur, int64_t requested, int64_t *count, void *elements)
{
    const char *engines = getenv("DSK_CUDNN_EMU_ENGINES");
    if (engines && !strcmp(engines, "0")) {
        *count = 0;
        return CUDNN_STATUS_SUCCESS;
    }
    if (!elements) {
        *count = 1;
        return CUDNN_STATUS_SUCCESS;
    }
    *count = 0;
    if (requested < 1)
        return CUDNN_STATUS_SUCCESS;
    cudnnBackendDescriptor_t p;
    memcpy(&p, elements, sizeof p);
    Desc *cfg = desc_of(p);
    if (!cfg || cfg->kind != KIND_DESC || !cfg->user || cfg->type != CUDNN_BACKEND_ENGINECFG_DESCRIPTOR)
        return fail(CUDNN_STATUS_BAD_PARAM, "CUDNN_ATTR_ENGINEHEUR_RESULTS: element 0 (%p) is not a live %s", p,
                    desc_type_name(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    if (cfg->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM, "CUDNN_ATTR_ENGINEHEUR_RESULTS: element 0 is already finalized");
    Ref engine = std::make_shared<Desc>();   /* the library's own: no caller reference */
    engine->type = CUDNN_BACKEND_ENGINE_DESCRIPTOR;
    engine->graph_desc = heur->graph_desc;
    engine->finalized = true;
    Attr a;
    a.type = CUDNN_TYPE_BACKEND_DESCRIPTOR;
    a.count = 1;
    Desc *raw = engine.get();
    a.bytes.assign((unsigned char *)&raw, (unsigned char *)&raw + sizeof raw);
    a.descs.push_back(engine);
    cfg->attrs[CUDNN_ATTR_ENGINECFG_ENGINE] = std::move(a);
    cfg->graph_desc = heur->graph_desc;
    cfg->finalized = true;
    *count = 1;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const descriptor, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t requested, int64_t *count,
                                       void *elements)
{
    cudnnStatus_t st;
    Desc *d = live(descriptor, "cudnnBackendGetAttribute", &st);
    if (!d)
        return st;
    const Spec *s = spec_of(d->type, name);
    if (!s)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s is not an attribute of %s", attr_name(name), desc_type_name(d->type));
    if (type != s->type && type != s->alt)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s is of %s, not %s", s->what, attr_type_name(s->type),
                    attr_type_name(type));
    int64_t unused;
    if (!count && !elements)
        return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "getting %s: elementCount and arrayOfElements are NULL",
                    s->what);
    if (!count)   /* 9.19 takes a NULL elementCount with elements to fill */
        count = &unused;
    if (requested < 0)
        return fail(CUDNN_STATUS_BAD_PARAM, "getting %s: requestedElementCount %lld", s->what, (long long)requested);
    if (s->access == GET_ONLY && !d->finalized)   /* 9.19's code */
        return fail(CUDNN_STATUS_NOT_INITIALIZED, "getting %s: the %s is not finalized", s->what,
                    desc_type_name(d->type));
    int64_t v;
    switch (name) {
    case CUDNN_ATTR_ENGINEHEUR_RESULTS: return heur_results(d, requested, count, elements);
    case CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE:
        v = d->workspace;
        return give_i64(&v, 1, requested, count, elements);
    case CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE:
        v = PLAN_WORKSPACE;
        return give_i64(&v, 1, requested, count, elements);
    case CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT:
        v = 1;
        return give_i64(&v, 1, requested, count, elements);
    case CUDNN_ATTR_ENGINECFG_SHARED_MEMORY_USED:
        v = 0;
        return give_i64(&v, 1, requested, count, elements);
    default: break;
    }
    if (s->access == GET_ONLY) {   /* notes, knobs, layouts, intermediates: none */
        *count = 0;
        return CUDNN_STATUS_SUCCESS;
    }
    if (s->type == CUDNN_TYPE_BACKEND_DESCRIPTOR)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "getting %s: copying descriptors out is not emulated", s->what);
    const Attr *a = get(d, name);
    if (!a)
        return fail(CUDNN_STATUS_BAD_PARAM, "getting %s of %s: it was never set", s->what, desc_type_name(d->type));
    if (type != a->type)
        return fail(CUDNN_STATUS_BAD_PARAM, "getting %s as %s: it was set as %s", s->what, attr_type_name(type),
                    attr_type_name(a->type));
    if (!elements) {
        *count = a->count;
        return CUDNN_STATUS_SUCCESS;
    }
    int64_t k = std::min(a->count, requested);
    if (k > 0)
        memcpy(elements, a->bytes.data(), (size_t)k * attr_type_size(a->type));
    *count = k;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- the interpreter ---- */

/* A tensor at run time: its description and where its elements are. */
struct Bound {
    const Tensor *t;
    unsigned char *base;
    size_t esize;
    double at(int64_t off) const { return load_as(t->type, base + off * (int64_t)esize); }
    void put(int64_t off, double v) const { store_as(t->type, base + off * (int64_t)esize, v); }
};

static double pointwise_value(const Op &op, double x, double b, double t, int64_t index)
{
    x *= op.alpha1;
    b *= op.alpha2;
    if (op.prec == CUDNN_DATA_INT32) {   /* integer operands */
        x = std::trunc(x);
        b = std::trunc(b);
    }
    switch (op.mode) {
    case CUDNN_POINTWISE_ADD: return x + b;
    case CUDNN_POINTWISE_SUB: return x - b;
    case CUDNN_POINTWISE_MUL: return x * b;
    case CUDNN_POINTWISE_DIV:
        if (op.prec == CUDNN_DATA_INT32)
            return b == 0 ? 0 : std::trunc(x / b);
        return x / b;
    case CUDNN_POINTWISE_MAX: return std::isnan(x) || std::isnan(b) ? NAN : std::max(x, b);
    case CUDNN_POINTWISE_MIN: return std::isnan(x) || std::isnan(b) ? NAN : std::min(x, b);
    case CUDNN_POINTWISE_MOD: return std::fmod(x, b);
    case CUDNN_POINTWISE_POW: return std::pow(x, b);
    case CUDNN_POINTWISE_ABS: return std::fabs(x);
    case CUDNN_POINTWISE_CEIL: return std::ceil(x);
    case CUDNN_POINTWISE_FLOOR: return std::floor(x);
    case CUDNN_POINTWISE_COS: return std::cos(x);
    case CUDNN_POINTWISE_SIN: return std::sin(x);
    case CUDNN_POINTWISE_TAN: return std::tan(x);
    case CUDNN_POINTWISE_EXP: return std::exp(x);
    case CUDNN_POINTWISE_LOG: return std::log(x);
    case CUDNN_POINTWISE_NEG: return -x;
    case CUDNN_POINTWISE_SQRT: return std::sqrt(x);
    case CUDNN_POINTWISE_RSQRT: return 1 / std::sqrt(x);
    case CUDNN_POINTWISE_RECIPROCAL: return 1 / x;
    case CUDNN_POINTWISE_ERF: return std::erf(x);
    case CUDNN_POINTWISE_IDENTITY: return x;
    case CUDNN_POINTWISE_TANH_FWD: return std::tanh(x);
    case CUDNN_POINTWISE_SIGMOID_FWD: return 1 / (1 + std::exp(-x));
    case CUDNN_POINTWISE_CMP_EQ: return x == b;
    case CUDNN_POINTWISE_CMP_NEQ: return x != b;
    case CUDNN_POINTWISE_CMP_GT: return x > b;
    case CUDNN_POINTWISE_CMP_GE: return x >= b;
    case CUDNN_POINTWISE_CMP_LT: return x < b;
    case CUDNN_POINTWISE_CMP_LE: return x <= b;
    case CUDNN_POINTWISE_LOGICAL_AND: return x != 0 && b != 0;
    case CUDNN_POINTWISE_LOGICAL_OR: return x != 0 || b != 0;
    case CUDNN_POINTWISE_LOGICAL_NOT: return x == 0;
    case CUDNN_POINTWISE_GEN_INDEX: return (double)index;
    case CUDNN_POINTWISE_BINARY_SELECT: return t != 0 ? x : b;   /* X where the mask T holds, else B */
    default: abort();   /* refused when the plan was made */
    }
}

static void run_pointwise(const Op &op, const std::vector<Bound> &in, const Bound &out)
{
    const std::vector<int64_t> &shape = out.t->dims;
    bool gen = op.mode == CUDNN_POINTWISE_GEN_INDEX;
    each_index(shape, [&](const std::vector<int64_t> &idx) {
        double v[3] = {0, 0, 0};
        if (!gen)   /* GEN_INDEX reads only X's shape */
            for (size_t i = 0; i < in.size() && i < 3; i++)
                v[i] = in[i].at(offset_of(*in[i].t, idx, shape));
        out.put(offset_of(*out.t, idx, shape), pointwise_value(op, v[0], v[1], v[2], gen ? idx[(size_t)op.axis] : 0));
    });
}

static void run_matmul(const Bound &A, const Bound &B, const Bound &C)
{
    const std::vector<int64_t> &cd = C.t->dims;
    size_t r = cd.size();
    int64_t M = cd[r - 2], N = cd[r - 1], K = A.t->dims[r - 1];
    std::vector<int64_t> batch(cd.begin(), cd.end() - 2);
    std::vector<double> a((size_t)(M * K)), b((size_t)(K * N));
    each_index(batch, [&](const std::vector<int64_t> &bi) {
        int64_t oa = 0, ob = 0, oc = 0;
        for (size_t k = 0; k + 2 < r; k++) {
            oa += map_index(bi[k], cd[k], A.t->dims[k]) * A.t->layout[k];
            ob += map_index(bi[k], cd[k], B.t->dims[k]) * B.t->layout[k];
            oc += bi[k] * C.t->layout[k];
        }
        const int64_t *sa = &A.t->layout[r - 2], *sb = &B.t->layout[r - 2], *sc = &C.t->layout[r - 2];
        for (int64_t i = 0; i < M; i++)
            for (int64_t l = 0; l < K; l++)
                a[(size_t)(i * K + l)] = A.at(oa + i * sa[0] + l * sa[1]);
        for (int64_t l = 0; l < K; l++)
            for (int64_t j = 0; j < N; j++)
                b[(size_t)(l * N + j)] = B.at(ob + l * sb[0] + j * sb[1]);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t l = 0; l < K; l++)
                    s += a[(size_t)(i * K + l)] * b[(size_t)(l * N + j)];
                C.put(oc + i * sc[0] + j * sc[1], s);
            }
    });
}

static void run_reduction(const Op &op, const Bound &X, const Bound &Y)
{
    const std::vector<int64_t> &xd = X.t->dims, &yd = Y.t->dims;
    int how = op.reduce;
    double init = how == CUDNN_REDUCE_TENSOR_MUL ? 1
                  : how == CUDNN_REDUCE_TENSOR_MIN ? INFINITY
                  : how == CUDNN_REDUCE_TENSOR_MAX ? -INFINITY
                                                   : 0;
    std::vector<double> acc((size_t)elements(yd), init);
    each_index(xd, [&](const std::vector<int64_t> &idx) {
        int64_t lin = 0;   /* Y's element, row-major */
        for (size_t k = 0; k < xd.size(); k++)
            lin = lin * yd[k] + map_index(idx[k], xd[k], yd[k]);
        double v = X.at(offset_of(*X.t, idx, xd)), &s = acc[(size_t)lin];
        switch (how) {
        case CUDNN_REDUCE_TENSOR_ADD:
        case CUDNN_REDUCE_TENSOR_AVG: s += v; break;
        case CUDNN_REDUCE_TENSOR_MUL: s *= v; break;
        case CUDNN_REDUCE_TENSOR_MIN: s = std::isnan(v) || v < s ? v : s; break;   /* NaN sticks */
        case CUDNN_REDUCE_TENSOR_MAX: s = std::isnan(v) || v > s ? v : s; break;
        case CUDNN_REDUCE_TENSOR_AMAX: s = std::isnan(v) || std::fabs(v) > s ? std::fabs(v) : s; break;
        case CUDNN_REDUCE_TENSOR_NORM1: s += std::fabs(v); break;
        case CUDNN_REDUCE_TENSOR_NORM2: s += v * v; break;
        }
    });
    double group = (double)(elements(xd) / elements(yd));
    size_t lin = 0;
    each_index(yd, [&](const std::vector<int64_t> &idx) {
        double s = acc[lin++];
        if (how == CUDNN_REDUCE_TENSOR_AVG)
            s /= group;
        if (how == CUDNN_REDUCE_TENSOR_NORM2)
            s = std::sqrt(s);
        Y.put(offset_of(*Y.t, idx, yd), s);
    });
}

/* A view: Y's element at offset o is X's at offset o (the layouts cover
 * the same offsets: checked at Finalize). */
static void run_reshape(const Bound &X, const Bound &Y)
{
    std::vector<double> mem((size_t)span_of(*X.t), NAN);
    each_index(X.t->dims, [&](const std::vector<int64_t> &idx) {
        int64_t o = offset_of(*X.t, idx, X.t->dims);
        mem[(size_t)o] = X.at(o);
    });
    each_index(Y.t->dims, [&](const std::vector<int64_t> &idx) {
        int64_t o = offset_of(*Y.t, idx, Y.t->dims);
        Y.put(o, mem[(size_t)o]);
    });
}

/* Bytes [lo, hi) that tensor t at p spans. */
static void byte_range(const Tensor &t, const void *p, uintptr_t *lo, uintptr_t *hi)
{
    *lo = (uintptr_t)p;
    *hi = *lo + (uintptr_t)((span_of(t) - 1) * (int64_t)dtype_size(t.type) + (int64_t)dtype_size(t.type));
}

/* Whether output o at po shares a byte with tensor u at pu (exactly:
 * interleaved tensors that share none are fine). */
static bool shares_bytes(const Tensor &o, const void *po, const Tensor &u, const void *pu)
{
    uintptr_t olo, ohi, ulo, uhi;
    byte_range(o, po, &olo, &ohi);
    byte_range(u, pu, &ulo, &uhi);
    uintptr_t lo = std::max(olo, ulo), hi = std::min(ohi, uhi);
    if (lo >= hi)
        return false;
    std::vector<bool> mine(hi - lo, false);
    size_t os = dtype_size(o.type), us = dtype_size(u.type);
    each_index(o.dims, [&](const std::vector<int64_t> &idx) {
        uintptr_t a = olo + (uintptr_t)(offset_of(o, idx, o.dims) * (int64_t)os);
        for (size_t k = 0; k < os; k++)
            if (a + k >= lo && a + k < hi)
                mine[a + k - lo] = true;
    });
    bool shared = false;
    each_index(u.dims, [&](const std::vector<int64_t> &idx) {
        uintptr_t a = ulo + (uintptr_t)(offset_of(u, idx, u.dims) * (int64_t)us);
        for (size_t k = 0; k < us; k++)
            if (a + k >= lo && a + k < hi && mine[a + k - lo])
                shared = true;
    });
    return shared;
}

cudnnStatus_t cudnnBackendExecute(cudnnHandle_t handle, cudnnBackendDescriptor_t plan_p,
                                  cudnnBackendDescriptor_t pack_p)
{
    if (!handle_ok(handle))
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnBackendExecute: %s", handle ? "not a live handle" : "handle is NULL");
    cudnnStatus_t st;
    Desc *plan = live(plan_p, "cudnnBackendExecute (plan)", &st);
    if (!plan)
        return st;
    Desc *pack = live(pack_p, "cudnnBackendExecute (variant pack)", &st);
    if (!pack)
        return st;
    if (plan->type != CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR || pack->type != CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnBackendExecute takes an execution plan and a variant pack, not "
                    "%s and %s", desc_type_name(plan->type), desc_type_name(pack->type));
    if (!plan->finalized || !pack->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED, "cudnnBackendExecute: the %s is not finalized",
                    !plan->finalized ? "execution plan" : "variant pack");
    const Graph &g = plan->graph_desc->graph;

    /* The variant pack: each non-virtual uid once, nothing else. */
    std::map<int64_t, std::vector<const Tensor *>> forms;   /* each uid's descriptions */
    for (const Ref &r : g.tensors)
        forms[r->tensor.uid].push_back(&r->tensor);
    std::map<int64_t, void *> given;
    for (size_t i = 0; i < pack->uids.size(); i++) {
        int64_t uid = pack->uids[i];
        auto f = forms.find(uid);
        if (f == forms.end())
            return fail(CUDNN_STATUS_BAD_PARAM, "variant pack: uid %lld is not a tensor of the plan's graph",
                        (long long)uid);
        if (f->second[0]->is_virtual)
            return fail(CUDNN_STATUS_BAD_PARAM, "variant pack: uid %lld is virtual: the graph holds it, not the pack",
                        (long long)uid);
        if (given.count(uid))
            return fail(CUDNN_STATUS_BAD_PARAM, "variant pack: uid %lld is given twice", (long long)uid);
        given[uid] = pack->ptrs[i];
    }
    for (auto &kv : forms) {
        if (kv.second[0]->is_virtual)
            continue;
        auto p = given.find(kv.first);
        if (p == given.end())
            return fail(CUDNN_STATUS_BAD_PARAM, "variant pack: no pointer for tensor uid %lld %s%s",
                        (long long)kv.first, shape_str(*kv.second[0]).c_str(),
                        kv.second[0]->by_value ? " (by value)" : "");
        uintptr_t a = (uintptr_t)p->second;
        if (!a)
            return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "variant pack: the pointer for uid %lld is NULL",
                        (long long)kv.first);
        for (const Tensor *t : kv.second) {   /* each description's alignment */
            uintptr_t es = dtype_size(t->type);
            if (a % es || (!t->by_value && a % (uintptr_t)t->align))
                return fail(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER,
                            "variant pack: uid %lld at %p is not aligned to %lld bytes (its %s)", (long long)kv.first,
                            p->second, (long long)(a % es ? (int64_t)es : t->align),
                            a % es ? "element" : "CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT");
        }
    }
    if (plan->workspace > 0 && !pack->ws)
        return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER,
                    "variant pack: no workspace, and the plan needs %lld bytes "
                    "(CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)",
                    (long long)plan->workspace);

    /* An output sharing memory with another tensor would race on a GPU
     * (inputs may share: K and K^T). */
    for (const Ref &r : g.order) {
        const Tensor &o = r->op.out->tensor;
        if (o.is_virtual)
            continue;
        void *po = given.at(o.uid);
        for (auto &kv : given)
            for (const Tensor *u : forms.at(kv.first)) {
                if (u->uid == o.uid || u->by_value)
                    continue;
                if (shares_bytes(o, po, *u, kv.second))
                    return fail(CUDNN_STATUS_EXECUTION_FAILED,
                                "output uid %lld at %p shares memory with uid %lld at %p (a race on a GPU)",
                                (long long)o.uid, po, (long long)u->uid, kv.second);
            }
    }

    if (plan->workspace > 0)
        memset(pack->ws, 0xa5, (size_t)plan->workspace);   /* ASan sees a workspace too small */

    /* Where each uid is: the pack's pointer, or for a virtual tensor a
     * buffer of its own (at its layout, as NaN); each operation then
     * reads and writes through its own descriptions of its tensors. */
    std::map<int64_t, unsigned char *> base;
    std::vector<std::vector<unsigned char>> buffers;
    for (auto &kv : forms) {
        const Tensor &t = *kv.second[0];
        if (t.is_virtual) {
            buffers.emplace_back((size_t)span_of(t) * dtype_size(t.type), (unsigned char)0xff);
            base[kv.first] = buffers.back().data();
        } else {
            base[kv.first] = (unsigned char *)given.at(kv.first);
        }
    }
    auto bind = [&](const Ref &r) {
        const Tensor &t = r->tensor;
        return Bound{&t, base.at(t.uid), dtype_size(t.type)};
    };
    for (const Ref &r : g.order) {
        const Op &op = r->op;
        std::vector<Bound> in;
        for (const Ref &t : op.in)
            in.push_back(bind(t));
        Bound out = bind(op.out);
        switch (op.kind) {
        case OP_POINTWISE: run_pointwise(op, in, out); break;
        case OP_MATMUL: run_matmul(in[0], in[1], out); break;
        case OP_REDUCTION: run_reduction(op, in[0], out); break;
        case OP_RESHAPE: run_reshape(in[0], out); break;
        }
    }
    return CUDNN_STATUS_SUCCESS;
}
