/* The CPU emulation of cuda/: what a .cu file of the backend sees in
 * place of nvcc's device side, when tests/gpu/emu/unchevron has rewritten
 * its kernel launches and g++ compiles it with this header included
 * first (the Makefile's emu rules).
 *
 * A launch runs its blocks one after another, in a shuffled order; a
 * block's threads are fibers (emu_runtime.cc) that switch only at
 * __syncthreads() and at warp collectives (shuffles, WMMA), in a
 * shuffled order each time.
 * "Device memory" is host memory, so AddressSanitizer sees every
 * kernel's out-of-bounds access, and the runtime checks what the real
 * one would refuse (launch limits, shared memory over its limit, copies
 * in the wrong direction) and what the hardware would leave undefined
 * (a barrier some threads never reach, a shuffle naming a lane that has
 * left).  WMMA (nvcuda::wmma, which <mma.h> leaves empty under g++) is
 * here too, its fragments' element-to-lane mapping deliberately
 * scrambled and its calls checked as the programming guide requires
 * (full warps, the same arguments in every lane, aligned pointers).  It
 * checks the kernels' logic, not the hardware's arithmetic: float
 * rounding is the host's, with no contraction into FMAs
 * (-ffp-contract=off), and a warp's lanes never run in lockstep. */
#ifndef DSK_EMU_H
#define DSK_EMU_H

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <tuple>
#include <type_traits>
#include <utility>

/* nvcc's execution-space keywords: all host code here.  __shared__
 * becomes a function-level static: one copy for the block (blocks run
 * one at a time). */
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __launch_bounds__(...)

/* The running thread's coordinates (set by the scheduler before it
 * switches to a fiber). */
extern __thread uint3 threadIdx, blockIdx, blockDim, gridDim;

/* ---- synchronization (emu_runtime.cc) ---- */

void __syncthreads(void);
/* The calling lane's slot in its warp's exchange buffer (8 bytes a lane),
 * after checking the mask names exactly the warp's lanes. */
unsigned char *dsk_emu_warp_slots(unsigned mask, const char *what);
/* The same for a collective that needs all 32 lanes (WMMA): it stops a
 * call from a warp of fewer. */
unsigned char *dsk_emu_full_warp_slots(const char *what);
/* Wait until every lane of the warp has arrived. */
void dsk_emu_warp_barrier(void);
/* Stops the program: "what" did what the hardware leaves undefined
 * (the message names the launch, block, warp and lane). */
void dsk_emu_abort(const char *what, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
/* The block's dynamic shared memory (the launch's third argument),
 * 128-byte aligned, filled with 0xff bytes (NaN as floats) when the
 * block starts. */
void *dsk_emu_dynamic_smem(void);

/* The running thread's lane in its warp. */
static inline int dsk_emu_lane(void)
{
    return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) & 31;
}

template <typename T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    static_assert(sizeof(T) <= 8, "a shuffle moves at most 8 bytes");
    unsigned char *slots = dsk_emu_warp_slots(mask, "__shfl_xor_sync");
    int lane = dsk_emu_lane();
    int src = lane ^ lane_mask;
    if (width < 32 && (src / width) != (lane / width))
        src = lane;   /* outside the lane's segment: its own value */
    memcpy(slots + 8 * lane, &v, sizeof v);
    dsk_emu_warp_barrier();
    T r;
    memcpy(&r, slots + 8 * src, sizeof r);
    dsk_emu_warp_barrier();   /* nobody overwrites a slot before every lane has read */
    return r;
}

/* Whether pred is non-zero on every lane of the warp (mask: all of them). */
static inline int __all_sync(unsigned mask, int pred)
{
    unsigned char *slots = dsk_emu_warp_slots(mask, "__all_sync");
    int lane = dsk_emu_lane(), all = 1;
    slots[8 * lane] = pred != 0;
    dsk_emu_warp_barrier();
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1)
            all &= slots[8 * l];
    dsk_emu_warp_barrier();   /* nobody overwrites a slot before every lane has read */
    return all;
}

/* Fibers switch only at barriers, so a read-modify-write is atomic. */
static inline int atomicMin(int *p, int v)
{
    int old = *p;
    if (v < old)
        *p = v;
    return old;
}

/* The device library's integer min and max. */
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

/* The rounding intrinsics: IEEE round-to-nearest on the host too. */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }

/* ---- WMMA: nvcuda::wmma ----
 *
 * The 16x16x16 shape: matrix_a and matrix_b fragments of __nv_bfloat16
 * or __half, row_major or col_major, and accumulators of float.  Each
 * lane holds 8 elements of the 16x16 tile, in a mapping the hardware
 * leaves unspecified: here element i of lane l is the tile's row-major
 * position ((32 i + l) * MUL + ADD) % 256 (MUL odd: a permutation), MUL
 * and ADD different for matrix_a, matrix_b and the accumulator, so that
 * a kernel assuming some mapping (x[] by rows, or an accumulator's x[]
 * copied into a matrix_a fragment) gets a wrong answer here.  x[] is for
 * work the same on every element (scale them all).  A fragment starts
 * as NaN, as memory does here, so one used before it is filled shows.
 *
 * The _sync calls are warp-collective; the emulator stops one from a
 * warp of fewer than 32 lanes, lanes that disagree on the call or its
 * arguments, a pointer not 256-bit aligned, an ldm not a multiple of 16
 * bytes.  mma_sync adds in float, from C and k = 0..15 in order (the
 * products of bf16 or half are exact in float): the tensor cores' own
 * rounding is not emulated. */
namespace nvcuda {
namespace wmma {

struct matrix_a;
struct matrix_b;
struct accumulator;
struct row_major;
struct col_major;
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int m, int n, int k, typename T, typename Layout = void> class fragment;

}   // namespace wmma
}   // namespace nvcuda

namespace dsk_emu_wmma {

using nvcuda::wmma::accumulator;
using nvcuda::wmma::col_major;
using nvcuda::wmma::matrix_a;
using nvcuda::wmma::matrix_b;
using nvcuda::wmma::row_major;

/* A parameter type that deduces nothing (C++20's type_identity). */
template <typename T> struct same {
    typedef T type;
};

/* The fragments emulated. */
template <typename Use, typename T, typename Layout> struct supported : std::false_type {};
template <typename Use, typename T> struct supported_ab
    : std::integral_constant<bool, (std::is_same<Use, matrix_a>::value || std::is_same<Use, matrix_b>::value) &&
                                       (std::is_same<T, __nv_bfloat16>::value || std::is_same<T, __half>::value)> {};
template <typename Use, typename T> struct supported<Use, T, row_major> : supported_ab<Use, T> {};
template <typename Use, typename T> struct supported<Use, T, col_major> : supported_ab<Use, T> {};
template <> struct supported<accumulator, float, void> : std::true_type {};

template <typename T> struct element_name;
template <> struct element_name<__nv_bfloat16> {
    static constexpr const char *value = "__nv_bfloat16";
};
template <> struct element_name<__half> {
    static constexpr const char *value = "__half";
};
template <> struct element_name<float> {
    static constexpr const char *value = "float";
};

static inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
static inline float to_float(__half v) { return __half2float(v); }

/* Where a use keeps the tile: element i of lane l is row-major position
 * ((32 i + l) * mul + add) % 256. */
template <typename Use> struct mapping;
template <> struct mapping<matrix_a> {
    static constexpr int mul = 37, add = 101;
};
template <> struct mapping<matrix_b> {
    static constexpr int mul = 53, add = 7;
};
template <> struct mapping<accumulator> {
    static constexpr int mul = 91, add = 166;
};

constexpr int position(int mul, int add, int lane, int i) { return ((32 * i + lane) * mul + add) & 255; }
/* The v with v * mul = 1 (mod 256): from a position back to its lane. */
constexpr int inverse(int mul)
{
    for (int v = 1; v < 256; v += 2)
        if (((v * mul) & 255) == 1)
            return v;
    return 0;
}
/* Each of the 256 positions in exactly one lane's element. */
constexpr bool is_permutation(int mul, int add)
{
    bool seen[256] = {};
    for (int lane = 0; lane < 32; lane++)
        for (int i = 0; i < 8; i++) {
            int p = position(mul, add, lane, i);
            if (seen[p])
                return false;
            seen[p] = true;
        }
    return inverse(mul) != 0;
}
static_assert(is_permutation(mapping<matrix_a>::mul, mapping<matrix_a>::add), "matrix_a's mapping");
static_assert(is_permutation(mapping<matrix_b>::mul, mapping<matrix_b>::add), "matrix_b's mapping");
static_assert(is_permutation(mapping<accumulator>::mul, mapping<accumulator>::add), "the accumulator's mapping");

template <typename Use> constexpr int position(int lane, int i)
{
    return position(mapping<Use>::mul, mapping<Use>::add, lane, i);
}
/* The lane and element that hold position p. */
template <typename Use> inline void holder(int p, int *lane, int *i)
{
    int j = ((p - mapping<Use>::add + 256) * inverse(mapping<Use>::mul)) & 255;
    *lane = j & 31;
    *i = j >> 5;
}

/* The tile's (r, c) in memory with leading dimension ldm. */
inline size_t offset(int r, int c, unsigned ldm, bool row_major)
{
    return row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r;
}

/* A lane's call, for the warp's other lanes to compare with theirs. */
struct call {
    const char *fn;   /* __PRETTY_FUNCTION__: the function and its fragments' types */
    const void *ptr;
    unsigned ldm;
    int layout;              /* a layout_t, or -1 when the call takes none */
    const void *a, *b, *c;   /* mma_sync's operands */
};

static inline const call *lane_call(const unsigned char *slots, int lane)
{
    const call *c;
    memcpy(&c, slots + 8 * lane, sizeof c);
    return c;
}

/* A call's fragment types: __PRETTY_FUNCTION__'s "[with ...]" part. */
static inline const char *types_of(const char *fn)
{
    const char *with = strchr(fn, '[');
    return with ? with : fn;
}

static inline const char *layout_name(int layout)
{
    return layout == -1 ? "" : layout == nvcuda::wmma::mem_row_major ? ", mem_row_major" : ", mem_col_major";
}

/* What the guide asks of every load's and store's memory operand. */
template <typename T> void check_memory(const char *what, const void *ptr, unsigned ldm)
{
    if ((uintptr_t)ptr % 32)
        dsk_emu_abort(what, "ptr %p is not 256-bit (32-byte) aligned", ptr);
    if ((size_t)ldm * sizeof(T) % 16)
        dsk_emu_abort(what, "ldm %u is not a multiple of %u (16 bytes of %s)", ldm, (unsigned)(16 / sizeof(T)),
                      element_name<T>::value);
}
static inline void check_layout(const char *what, int layout)
{
    if (layout != nvcuda::wmma::mem_row_major && layout != nvcuda::wmma::mem_col_major)
        dsk_emu_abort(what, "layout %d is neither mem_row_major nor mem_col_major", layout);
}

/* The warp meets: each lane puts a pointer to its call in its slot (the
 * fibers share memory), waits for all, and checks its call is lane 0's.
 * Until the lane's leave(), every lane's call stays readable there. */
static inline void meet(unsigned char *slots, const char *what, const call &mine)
{
    int lane = dsk_emu_lane();
    const call *p = &mine;
    memcpy(slots + 8 * lane, &p, sizeof p);
    dsk_emu_warp_barrier();
    const call *first = lane_call(slots, 0);
    if (strcmp(mine.fn, first->fn) != 0)
        dsk_emu_abort(what, "lane %d calls it %s, lane 0 %s: every lane of the warp must make the same call", lane,
                      types_of(mine.fn), types_of(first->fn));
    if (mine.ptr != first->ptr || mine.ldm != first->ldm || mine.layout != first->layout)
        dsk_emu_abort(what, "the warp's lanes disagree: lane %d passes ptr %p, ldm %u%s; lane 0 ptr %p, ldm %u%s: "
                      "every lane must pass the same", lane, mine.ptr, mine.ldm, layout_name(mine.layout),
                      first->ptr, first->ldm, layout_name(first->layout));
}
/* Nobody overwrites a slot (at the next collective) before every lane
 * has read it. */
static inline void leave(void) { dsk_emu_warp_barrier(); }

/* An accumulator's load or store (fn: its __PRETTY_FUNCTION__): the
 * checks and the warp's meeting, then move(offset in memory, x[i]) for
 * each of the lane's elements. */
template <typename Frag, typename Move>
void accumulator_access(const char *what, const char *fn, const float *ptr, unsigned ldm, int layout, Frag &f,
                        Move move)
{
    unsigned char *slots = dsk_emu_full_warp_slots(what);
    check_memory<float>(what, ptr, ldm);
    check_layout(what, layout);
    call mine = {fn, ptr, ldm, layout, NULL, NULL, NULL};
    meet(slots, what, mine);
    int lane = dsk_emu_lane();
    for (int i = 0; i < f.num_elements; i++) {
        int p = position<accumulator>(lane, i);
        move(offset(p >> 4, p & 15, ldm, layout == nvcuda::wmma::mem_row_major), f.x[i]);
    }
    leave();
}

}   // namespace dsk_emu_wmma

namespace nvcuda {
namespace wmma {

template <typename Use, int m, int n, int k, typename T, typename Layout> class fragment {
    static_assert(m == 16 && n == 16 && k == 16, "the emulation has WMMA's 16x16x16 shape only");
    static_assert(dsk_emu_wmma::supported<Use, T, Layout>::value,
                  "the emulation's WMMA fragments: matrix_a and matrix_b of __nv_bfloat16 or __half, row_major or "
                  "col_major; accumulator of float, no layout");

  public:
    enum { num_elements = 8, num_storage_elements = 8 };
    typedef T element_type;
    typedef T storage_element_type;
    T x[num_elements];

    fragment() { memset((void *)x, 0xff, sizeof x); }   /* NaN: a fragment used before it is filled shows */
};

/* Not a collective: each lane fills its own elements. */
template <typename Use, int m, int n, int k, typename T, typename Layout>
inline void fill_fragment(fragment<Use, m, n, k, T, Layout> &f, const typename dsk_emu_wmma::same<T>::type &v)
{
    for (int i = 0; i < f.num_elements; i++)
        f.x[i] = v;
}

/* matrix_a (M x K) and matrix_b (K x N): (r, c) at ptr[r * ldm + c]
 * row_major, ptr[c * ldm + r] col_major. */
template <typename Use, typename T, typename Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout> &f, const typename dsk_emu_wmma::same<T>::type *ptr,
                      unsigned ldm)
{
    static_assert(!std::is_void<Layout>::value, "an accumulator's load_matrix_sync takes a layout_t");
    const char *what = "wmma::load_matrix_sync";
    unsigned char *slots = dsk_emu_full_warp_slots(what);
    dsk_emu_wmma::check_memory<T>(what, ptr, ldm);
    dsk_emu_wmma::call mine = {__PRETTY_FUNCTION__, ptr, ldm, -1, NULL, NULL, NULL};
    dsk_emu_wmma::meet(slots, what, mine);
    int lane = dsk_emu_lane();
    for (int i = 0; i < f.num_elements; i++) {
        int p = dsk_emu_wmma::position<Use>(lane, i);
        f.x[i] = ptr[dsk_emu_wmma::offset(p >> 4, p & 15, ldm, std::is_same<Layout, row_major>::value)];
    }
    dsk_emu_wmma::leave();
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *ptr, unsigned ldm,
                             layout_t layout)
{
    dsk_emu_wmma::accumulator_access("wmma::load_matrix_sync", __PRETTY_FUNCTION__, ptr, ldm, (int)layout, f,
                                     [&](size_t at, float &x) { x = ptr[at]; });
}

inline void store_matrix_sync(float *ptr, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm,
                              layout_t layout)
{
    dsk_emu_wmma::accumulator_access("wmma::store_matrix_sync", __PRETTY_FUNCTION__, ptr, ldm, (int)layout, f,
                                     [&](size_t at, const float &x) { ptr[at] = x; });
}

/* D = A * B + C; d may be c.  Each lane computes its own elements of D
 * from every lane's A, B (through the slots) and its own C. */
template <typename T, typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, T, LayoutA> &a,
              const fragment<matrix_b, 16, 16, 16, T, LayoutB> &b, const fragment<accumulator, 16, 16, 16, float> &c)
{
    typedef fragment<matrix_a, 16, 16, 16, T, LayoutA> frag_a;
    typedef fragment<matrix_b, 16, 16, 16, T, LayoutB> frag_b;
    const char *what = "wmma::mma_sync";
    unsigned char *slots = dsk_emu_full_warp_slots(what);
    dsk_emu_wmma::call mine = {__PRETTY_FUNCTION__, NULL, 0, -1, &a, &b, &c};
    dsk_emu_wmma::meet(slots, what, mine);   /* the same __PRETTY_FUNCTION__: the same fragment types */
    const frag_a *as[32];
    const frag_b *bs[32];
    for (int l = 0; l < 32; l++) {
        as[l] = (const frag_a *)dsk_emu_wmma::lane_call(slots, l)->a;
        bs[l] = (const frag_b *)dsk_emu_wmma::lane_call(slots, l)->b;
    }
    int lane = dsk_emu_lane();
    float out[8];
    for (int i = 0; i < 8; i++) {
        int p = dsk_emu_wmma::position<accumulator>(lane, i), row = p >> 4, col = p & 15;
        float sum = c.x[i];
        for (int kk = 0; kk < 16; kk++) {
            int la, ia, lb, ib;
            dsk_emu_wmma::holder<matrix_a>(row * 16 + kk, &la, &ia);
            dsk_emu_wmma::holder<matrix_b>(kk * 16 + col, &lb, &ib);
            sum += dsk_emu_wmma::to_float(as[la]->x[ia]) * dsk_emu_wmma::to_float(bs[lb]->x[ib]);
        }
        out[i] = sum;
    }
    dsk_emu_wmma::leave();   /* every lane has read c before d, which may be c, changes */
    memcpy(d.x, out, sizeof out);
}

}   // namespace wmma
}   // namespace nvcuda

/* ---- ldmatrix and mma.sync (cuda/mma_sync.cuh's inline PTX) ----
 *
 * The layouts the PTX ISA fixes (mma_sync.cuh says them), exactly: a
 * kernel that gets a lane's elements wrong gets a wrong answer here as
 * on the hardware.  Both are warp collectives: the emulator stops a call
 * from fewer than 32 lanes, lanes that disagree on .trans, and a row
 * address not 16-byte aligned.  mma adds in float, from C and k = 0..15
 * in order, as the WMMA emulation does. */

/* A bf16's bits as the float it is. */
static inline float dsk_emu_bf16_bits(uint32_t bits16)
{
    uint32_t u = bits16 << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: r[i] from the 8 x 8
 * tile whose rows lanes 8i .. 8i + 7 name. */
inline void dsk_emu_ldmatrix_x4(uint32_t (&r)[4], const void *row, int trans)
{
    const char *what = "ldmatrix.x4";   /* one name with or without .trans: the check below says which differs */
    unsigned char *slots = dsk_emu_full_warp_slots(what);
    int lane = dsk_emu_lane();
    if ((uintptr_t)row % 16)
        dsk_emu_abort(what, "lane %d's row address %p is not 16-byte aligned", lane, row);
    uintptr_t mine = (uintptr_t)row | (trans ? 1 : 0);   /* aligned: bit 0 is free for .trans */
    memcpy(slots + 8 * lane, &mine, sizeof mine);
    dsk_emu_warp_barrier();
    const uint16_t *rows[32];
    for (int l = 0; l < 32; l++) {
        uintptr_t p;
        memcpy(&p, slots + 8 * l, sizeof p);
        if ((int)(p & 1) != (trans ? 1 : 0))
            dsk_emu_abort(what, "lane %d calls it with%s .trans, lane %d with%s", lane, trans ? "" : "out", l,
                          trans ? "out" : "");
        rows[l] = (const uint16_t *)(p & ~(uintptr_t)1);
    }
    int g = lane >> 2, t = lane & 3;
    uint32_t out[4];
    for (int m = 0; m < 4; m++) {
        uint16_t lo, hi;
        if (trans) {
            lo = rows[8 * m + 2 * t][g];
            hi = rows[8 * m + 2 * t + 1][g];
        } else {
            lo = rows[8 * m + g][2 * t];
            hi = rows[8 * m + g][2 * t + 1];
        }
        out[m] = (uint32_t)lo | (uint32_t)hi << 16;
    }
    dsk_emu_warp_barrier();   /* every lane has read the addresses */
    memcpy(r, out, sizeof out);
}

/* ---- cp.async (cuda/mma_sync.cuh's) ----
 * Half the blocks, drawn at random (DSK_EMU_CP_ASYNC=eager or deferred
 * for all), perform each copy as it is issued: a prefetch into a tile
 * that other warps still read (a missing barrier) overwrites it under
 * them.  In the others each thread's copies wait in its open group until
 * cp.async.commit_group closes it, and cp.async.wait_group N performs (in
 * order) every group but the newest N.  Until then the destination keeps
 * its old bytes, so a kernel that reads a tile before waiting for it, or
 * before the barrier after every thread's wait, reads stale bytes (0xff
 * at first: NaN) and gets a wrong answer here.  The emulator stops a copy whose addresses
 * are not 16-byte aligned or whose source size is not 0 to 16, and a
 * thread that ends with copies never waited for. */
void dsk_emu_cp_async_16(void *smem, const void *gmem, int src_bytes);
void dsk_emu_cp_async_commit(void);
void dsk_emu_cp_async_wait(int newest_pending);

/* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, d = A B + d. */
inline void dsk_emu_mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    struct operands {
        uint32_t a[4], b[2];
    } mine = {{a[0], a[1], a[2], a[3]}, {b0, b1}};
    unsigned char *slots = dsk_emu_full_warp_slots("mma.sync.m16n8k16");
    int lane = dsk_emu_lane();
    const operands *p = &mine;
    memcpy(slots + 8 * lane, &p, sizeof p);
    dsk_emu_warp_barrier();
    const operands *all[32];
    for (int l = 0; l < 32; l++)
        memcpy(&all[l], slots + 8 * l, sizeof all[l]);
    /* A[r][k]: lane 4 (r % 8) + (k % 8) / 2, register (r >= 8) + 2 (k >= 8),
     * half k % 2; B[k][n]: lane 4 n + (k % 8) / 2, register k >= 8. */
    auto A = [&](int r, int k) {
        uint32_t w = all[4 * (r & 7) + ((k & 7) >> 1)]->a[(r >> 3) + 2 * (k >> 3)];
        return dsk_emu_bf16_bits((w >> (16 * (k & 1))) & 0xffff);
    };
    auto B = [&](int k, int n) {
        uint32_t w = all[4 * n + ((k & 7) >> 1)]->b[k >> 3];
        return dsk_emu_bf16_bits((w >> (16 * (k & 1))) & 0xffff);
    };
    int g = lane >> 2, t = lane & 3;
    float out[4];
    for (int i = 0; i < 4; i++) {
        int r = g + 8 * (i >> 1), n = 2 * t + (i & 1);
        float sum = d[i];
        for (int k = 0; k < 16; k++)
            sum += A(r, k) * B(k, n);
        out[i] = sum;
    }
    dsk_emu_warp_barrier();   /* every lane has read the operands */
    memcpy(d, out, sizeof out);
}

/* ---- kernel launches ---- */

/* nvcc's overload that takes the kernel itself. */
template <typename T> cudaError_t cudaFuncSetAttribute(T *kernel, enum cudaFuncAttribute attr, int value)
{
    return cudaFuncSetAttribute((const void *)kernel, attr, value);
}

/* Runs body(ctx) once per thread of the grid: what a launch does.  On a
 * configuration the hardware refuses, nothing runs and the error waits
 * for cudaGetLastError(), as on a GPU. */
void dsk_emu_run(const char *site, const void *kernel, dim3 grid, dim3 block, size_t smem, void (*body)(void *),
                 void *ctx);

template <typename... P> struct dsk_emu_launcher {
    const char *site;   /* "cuda/FILE.cu:LINE" of the launch */
    void (*kernel)(P...);
    dim3 grid, block;
    size_t smem;

    template <typename... A> void operator()(A &&...args) const
    {
        /* The arguments converted once, as the launch does; each thread
         * then gets its own copies. */
        std::tuple<P...> params(std::forward<A>(args)...);
        struct call {
            void (*kernel)(P...);
            std::tuple<P...> *params;
            static void run(void *self)
            {
                call *c = (call *)self;
                std::apply(c->kernel, *c->params);
            }
        } c = {kernel, &params};
        dsk_emu_run(site, (const void *)kernel, grid, block, smem, call::run, &c);
    }
};

/* What unchevron writes for kernel<<<grid, block, smem, stream>>>(...). */
template <typename... P>
dsk_emu_launcher<P...> dsk_emu_launch(const char *site, void (*kernel)(P...), dim3 grid, dim3 block,
                                      size_t smem = 0, cudaStream_t stream = 0)
{
    (void)stream;   /* one stream of work: each launch runs to its end */
    return dsk_emu_launcher<P...>{site, kernel, grid, block, smem};
}

#endif
