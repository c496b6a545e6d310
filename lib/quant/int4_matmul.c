/* int4 kernels: the runtime layout (dsk_q4_prepare) and y = x W^T
 * (dsk_q4_matmul), in portable C and in AVX2+FMA.
 *
 * Batch-1 decoding is memory-bound: an fp32 matrix-vector product reads 4
 * bytes per weight, this one about 0.56 (a nibble plus the per-group
 * scale and zero).  The kernels are built so that decoding costs less
 * than streaming: per group of columns they accumulate sum(q * x) in
 * float, then add scale * (acc - zero * sum(x)) to the output, so the
 * inner loop is "extract a code, convert, fused multiply-add" and the
 * scale and zero are touched once per group.
 *
 * The AVX2 inner loop works on 8 rows at once (one lane per output row):
 * the runtime layout gives, for 8 rows and 8 consecutive columns, eight
 * 32-bit words whose nibble c is column c's code.  Masking nibble c in
 * place leaves q * 16^c, which converts to float exactly; the matching
 * input was prescaled by 16^-c (exact too: a power of two), so
 * cvt(mask(word)) * x' is q * x with no shift.  Nibble 7 would turn into a
 * negative int32, so it is shifted down instead and its x is not scaled.
 * That is one AND, one convert and one FMA per 8 weights. */
#include "quant/int4.h"

#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- kernel choice -------------------------------------------------------------------------------- */

static int q4_forced = DSK_Q4_KERNEL_AUTO;

int dsk_q4_set_kernel(int kind)
{
    if (kind == DSK_Q4_KERNEL_AVX2 && !dsk_cpu_avx2_fma())
        return -1;
    if (kind != DSK_Q4_KERNEL_AUTO && kind != DSK_Q4_KERNEL_PORTABLE && kind != DSK_Q4_KERNEL_AVX2)
        return -1;
    q4_forced = kind;
    return 0;
}

static int use_avx2(void)
{
    if (q4_forced == DSK_Q4_KERNEL_AUTO)
        return dsk_cpu_avx2_fma();
    return q4_forced == DSK_Q4_KERNEL_AVX2;
}

const char *dsk_q4_kernel_name(void) { return use_avx2() ? "avx2" : "portable"; }

/* ---- runtime layout ----------------------------------------------------------------------------------- */

static void free_runtime(dsk_q4_linear *L)
{
    free(L->group_start);
    free(L->perm);
    free(L->panel_codes);
    free(L->panel_meta);
    L->group_start = L->perm = NULL;
    L->panel_codes = NULL;
    L->panel_meta = NULL;
    L->ngroups = L->kcols = 0;
}

void dsk_q4_free(dsk_q4_linear *L)
{
    if (L->owns_packed) {
        free(L->qweight);
        free(L->qzeros);
        free(L->scales);
        free(L->g_idx);
        L->qweight = L->qzeros = L->g_idx = NULL;
        L->scales = NULL;
        L->owns_packed = 0;
    }
    free_runtime(L);
}

static void *aligned_alloc64(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        dsk_die(EX_OSERR, "out of memory allocating %zu bytes", bytes);
    return p;
}

int dsk_q4_prepare(dsk_q4_linear *L, dsk_err *err)
{
    /* Drop any earlier layout first: a layer that fails validation must
     * not keep serving matmuls from stale data. */
    free_runtime(L);
    int rc = dsk_q4_check(L, err);
    if (rc)
        return rc;
    int rows = L->rows, cols = L->cols, G = L->group_size, ngroups = cols / G;
    const int32_t *g_idx = L->g_idx;
    const uint32_t *qw = (const uint32_t *)L->qweight, *qz = (const uint32_t *)L->qzeros;

    /* Column order: by group, each group's run padded to a multiple of 8.
     * The identity when g_idx is i / G and G is a multiple of 8, which is
     * the common case and lets the codes be copied word by word. */
    int32_t *count = dsk_xcalloc((size_t)ngroups, sizeof *count);
    int identity = G % 8 == 0;
    for (int i = 0; i < cols; i++) {
        int g = g_idx ? g_idx[i] : i / G;
        count[g]++;
        if (g != i / G)
            identity = 0;
    }
    int32_t *gs = dsk_xmalloc(((size_t)ngroups + 1) * sizeof *gs);
    gs[0] = 0;
    for (int g = 0; g < ngroups; g++)
        gs[g + 1] = gs[g] + (count[g] + 7) / 8 * 8;
    int kcols = gs[ngroups];
    int32_t *perm = NULL;
    if (!identity) {
        perm = dsk_xmalloc((size_t)kcols * sizeof *perm);
        for (int k = 0; k < kcols; k++)
            perm[k] = -1;
        for (int g = 0; g < ngroups; g++)
            count[g] = gs[g]; /* now: the next free slot of group g */
        for (int i = 0; i < cols; i++)
            perm[count[g_idx ? g_idx[i] : i / G]++] = i;
    }
    free(count);

    size_t kw = (size_t)kcols / 8; /* words per row */
    uint32_t *codes = aligned_alloc64((size_t)rows * kw * sizeof *codes);
    float *meta = aligned_alloc64((size_t)rows * ngroups * 2 * sizeof *meta);
    int npanels = (rows + DSK_Q4_PANEL - 1) / DSK_Q4_PANEL;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < npanels; p++) {
        int r0 = p * DSK_Q4_PANEL, h = rows - r0 < DSK_Q4_PANEL ? rows - r0 : DSK_Q4_PANEL;
        uint32_t *pc = codes + (size_t)r0 * kw;
        for (size_t o = 0; o < kw; o++)
            for (int r = 0; r < h; r++) {
                int j = r0 + r;
                uint32_t w = 0;
                if (!perm) {
                    w = qw[o * rows + j];
                } else {
                    for (int c = 0; c < 8; c++) {
                        int i = perm[8 * o + c];
                        if (i >= 0)
                            w |= ((qw[(size_t)(i / 8) * rows + j] >> (4 * (i % 8))) & 15) << (4 * c);
                    }
                }
                pc[o * h + r] = w;
            }
        float *pm = meta + (size_t)r0 * ngroups * 2;
        for (int g = 0; g < ngroups; g++)
            for (int r = 0; r < h; r++) {
                size_t k = (size_t)g * rows + r0 + r;
                pm[(size_t)g * 2 * h + r] = dsk_f16_to_f32(L->scales[k]);
                pm[(size_t)g * 2 * h + h + r] = (float)(((qz[k / 8] >> (4 * ((r0 + r) % 8))) & 15) + 1);
            }
    }
    L->ngroups = ngroups;
    L->kcols = kcols;
    L->group_start = gs;
    L->perm = perm;
    L->panel_codes = codes;
    L->panel_meta = meta;
    return 0;
}

/* ---- inputs ------------------------------------------------------------------------------------------- */

enum { Q4_BATCH_TILE = 8 }; /* rows of x sharing one decoded block */

/* The rows of x are taken Q4_BATCH_TILE at a time; a tile of nb rows
 * starting at row b0 sits at xs + b0 * kcols, interleaved: column k of
 * its row t at [k * nb + t], so the kernels reach all of a column's
 * values from one pointer.  Columns are in runtime order (0 in padding)
 * and, for the AVX2 kernels, prescaled by 16^-(k%8).  xsum [n][ngroups]:
 * each group's sum of inputs, for the zero-point term. */
static void build_inputs(const dsk_q4_linear *L, const float *x, int n, int prescale, float *xs, float *xsum)
{
    static const float xscale[8] = {1, 0x1p-4f, 0x1p-8f, 0x1p-12f, 0x1p-16f, 0x1p-20f, 0x1p-24f, 1};
    int cols = L->cols, kcols = L->kcols, ngroups = L->ngroups;
    const int32_t *perm = L->perm, *gs = L->group_start;
#pragma omp parallel for schedule(static) if ((long)n * kcols >= (1L << 16))
    for (int b = 0; b < n; b++) {
        int b0 = b / Q4_BATCH_TILE * Q4_BATCH_TILE, t = b - b0;
        int nb = n - b0 < Q4_BATCH_TILE ? n - b0 : Q4_BATCH_TILE;
        const float *xr = x + (size_t)b * cols;
        float *xo = xs + (size_t)b0 * kcols + t;
        for (int g = 0; g < ngroups; g++) {
            double s = 0;
            for (int k = gs[g]; k < gs[g + 1]; k++) {
                float v = perm ? (perm[k] >= 0 ? xr[perm[k]] : 0.0f) : xr[k];
                s += v;
                xo[(size_t)k * nb] = prescale ? v * xscale[k & 7] : v;
            }
            xsum[(size_t)b * ngroups + g] = (float)s;
        }
    }
}

/* ---- portable kernel ---------------------------------------------------------------------------------- */

enum { Q4_TILE_OCTETS = 32 }; /* 8 rows x 256 columns decoded at a time (8 KiB) */

/* Four floats / words: GCC and Clang map these onto the target's 16-byte
 * SIMD registers (SSE2 on baseline x86-64, NEON on arm64), or scalar
 * code; an 8-row block is two of them. */
typedef float q4_v4f __attribute__((vector_size(16)));
typedef uint32_t q4_v4u __attribute__((vector_size(16)));
typedef int32_t q4_v4i __attribute__((vector_size(16))); /* signed converts in one instruction */

/* One panel of h rows: codes and meta as in int4.h, x in runtime order
 * (unscaled), y [n][rows] already offset to the panel's first row.
 *
 * Per 8 rows and group, the codes are decoded to floats a tile at a time,
 * then every row of x in the batch tile runs over the decoded tile, with
 * two partial sums so that consecutive adds do not wait on each other. */
static void panel_portable(const dsk_q4_linear *L, const uint32_t *codes, const float *meta, int h, const float *xp,
                           const float *xsum, int n, float *y)
{
    int kcols = L->kcols, ngroups = L->ngroups, rows = L->rows;
    const int32_t *gs = L->group_start;
    /* tile[2 (8 (o - t0) + c) + half]: column 8o + c of rows 4 half .. 4 half + 3 */
    q4_v4f tile[Q4_TILE_OCTETS * 16];
    for (int sp = 0; sp < h; sp += 8)
        for (int b0 = 0; b0 < n; b0 += Q4_BATCH_TILE) {
            int nb = n - b0 < Q4_BATCH_TILE ? n - b0 : Q4_BATCH_TILE;
            for (int g = 0; g < ngroups; g++) {
                q4_v4f acc[Q4_BATCH_TILE][2];
                memset(acc, 0, sizeof acc);
                for (int t0 = gs[g] / 8; t0 < gs[g + 1] / 8; t0 += Q4_TILE_OCTETS) {
                    int len = gs[g + 1] / 8 - t0 < Q4_TILE_OCTETS ? gs[g + 1] / 8 - t0 : Q4_TILE_OCTETS;
                    for (int o = 0; o < len; o++) {
                        q4_v4u lo, hi;
                        const uint32_t *w = codes + (size_t)(t0 + o) * h + sp;
                        memcpy(&lo, w, sizeof lo);
                        memcpy(&hi, w + 4, sizeof hi);
                        for (int c = 0; c < 8; c++) {
                            uint32_t sh = (uint32_t)(4 * c);
                            tile[2 * (8 * o + c)] = __builtin_convertvector((q4_v4i)((lo >> sh) & 15u), q4_v4f);
                            tile[2 * (8 * o + c) + 1] = __builtin_convertvector((q4_v4i)((hi >> sh) & 15u), q4_v4f);
                        }
                    }
                    const float *xt = xp + (size_t)b0 * kcols + (size_t)8 * t0 * nb;
                    for (int k = 0; k < nb; k++) {
                        const float *xk = xt + k;
                        q4_v4f a0 = {0}, a1 = {0}, b0v = {0}, b1v = {0};
                        for (int i = 0; i < 8 * len; i += 2) {
                            a0 += tile[2 * i] * xk[(size_t)i * nb];
                            a1 += tile[2 * i + 1] * xk[(size_t)i * nb];
                            b0v += tile[2 * i + 2] * xk[(size_t)(i + 1) * nb];
                            b1v += tile[2 * i + 3] * xk[(size_t)(i + 1) * nb];
                        }
                        acc[k][0] += a0 + b0v;
                        acc[k][1] += a1 + b1v;
                    }
                }
                const float *s = meta + (size_t)g * 2 * h + sp, *z = s + h;
                for (int k = 0; k < nb; k++) {
                    float sx = xsum[(size_t)(b0 + k) * ngroups + g];
                    float *yk = y + (size_t)(b0 + k) * rows + sp;
                    for (int r = 0; r < 8; r++)
                        yk[r] += s[r] * (acc[k][r / 4][r % 4] - z[r] * sx);
                }
            }
        }
}

/* ---- AVX2 + FMA kernels ------------------------------------------------------------------------------- */
#if defined(__x86_64__)
#define Q4_AVX2 __attribute__((target("avx2,fma")))
#define Q4_INLINE static inline __attribute__((always_inline))

/* Column c of an 8x8 block of codes, times 16^c (see the top comment). */
Q4_INLINE Q4_AVX2 __m256 q4_column(__m256i block, int c)
{
    if (c == 7)
        return _mm256_cvtepi32_ps(_mm256_srli_epi32(block, 28));
    return _mm256_cvtepi32_ps(_mm256_and_si256(block, _mm256_set1_epi32(0xf << (4 * c))));
}

/* Batch 1, V*8 rows (V = 4 for a full panel): one block load per 8 rows
 * and one broadcast of x per column, shared by the V row blocks. */
Q4_INLINE Q4_AVX2 void matvec_avx2(const uint32_t *codes, const float *meta, int h, const int32_t *gs, int ngroups,
                                   const float *xs, const float *xsum, float *y, const int V)
{
    for (int g = 0; g < ngroups; g++) {
        __m256 acc[4];
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            acc[v] = _mm256_setzero_ps();
        for (int o = gs[g] / 8; o < gs[g + 1] / 8; o++) {
            const uint32_t *w = codes + (size_t)o * h;
            const float *xo = xs + 8 * o;
            __m256i blk[4];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                blk[v] = _mm256_loadu_si256((const __m256i *)(w + 8 * v));
#define Q4_MV_STEP(c)                                                                \
    do {                                                                             \
        __m256 xv = _mm256_broadcast_ss(xo + (c));                                   \
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[v] =                 \
            _mm256_fmadd_ps(q4_column(blk[v], (c)), xv, acc[v]);                     \
    } while (0)
            Q4_MV_STEP(0);
            Q4_MV_STEP(1);
            Q4_MV_STEP(2);
            Q4_MV_STEP(3);
            Q4_MV_STEP(4);
            Q4_MV_STEP(5);
            Q4_MV_STEP(6);
            Q4_MV_STEP(7);
#undef Q4_MV_STEP
        }
        __m256 sx = _mm256_set1_ps(xsum[g]);
        const float *m = meta + (size_t)g * 2 * h;
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            __m256 s = _mm256_loadu_ps(m + 8 * v), z = _mm256_loadu_ps(m + h + 8 * v);
            __m256 t = _mm256_fnmadd_ps(z, sx, acc[v]); /* acc - zero * sum(x) */
            _mm256_storeu_ps(y + 8 * v, _mm256_fmadd_ps(s, t, _mm256_loadu_ps(y + 8 * v)));
        }
    }
}

/* NB rows of x (1..8, one interleaved tile) against 8 rows of W: each
 * block of codes is decoded once and used NB times. */
Q4_INLINE Q4_AVX2 void batch_avx2(const uint32_t *codes, const float *meta, int h, const int32_t *gs, int ngroups,
                                  const float *xs, const float *xsum, float *y, int rows, const int NB)
{
    for (int g = 0; g < ngroups; g++) {
        __m256 acc[Q4_BATCH_TILE];
#pragma GCC unroll 8
        for (int k = 0; k < NB; k++)
            acc[k] = _mm256_setzero_ps();
        for (int o = gs[g] / 8; o < gs[g + 1] / 8; o++) {
            __m256i blk = _mm256_loadu_si256((const __m256i *)(codes + (size_t)o * h));
            const float *xo = xs + (size_t)8 * o * NB;
#define Q4_MM_STEP(c)                                                                          \
    do {                                                                                       \
        __m256 wv = q4_column(blk, (c));                                                       \
        _Pragma("GCC unroll 8") for (int k = 0; k < NB; k++) acc[k] =                          \
            _mm256_fmadd_ps(wv, _mm256_broadcast_ss(xo + (c) * NB + k), acc[k]);               \
    } while (0)
            Q4_MM_STEP(0);
            Q4_MM_STEP(1);
            Q4_MM_STEP(2);
            Q4_MM_STEP(3);
            Q4_MM_STEP(4);
            Q4_MM_STEP(5);
            Q4_MM_STEP(6);
            Q4_MM_STEP(7);
#undef Q4_MM_STEP
        }
        const float *m = meta + (size_t)g * 2 * h;
        __m256 s = _mm256_loadu_ps(m), z = _mm256_loadu_ps(m + h);
#pragma GCC unroll 8
        for (int k = 0; k < NB; k++) {
            float *yk = y + (size_t)k * rows;
            __m256 t = _mm256_fnmadd_ps(z, _mm256_set1_ps(xsum[(size_t)k * ngroups + g]), acc[k]);
            _mm256_storeu_ps(yk, _mm256_fmadd_ps(s, t, _mm256_loadu_ps(yk)));
        }
    }
}

static Q4_AVX2 void panel_avx2(const dsk_q4_linear *L, const uint32_t *codes, const float *meta, int h,
                               const float *xs, const float *xsum, int n, float *y)
{
    int kcols = L->kcols, ngroups = L->ngroups, rows = L->rows;
    const int32_t *gs = L->group_start;
    if (n == 1) {
        if (h == 32) {
            matvec_avx2(codes, meta, h, gs, ngroups, xs, xsum, y, 4);
        } else {
            for (int sp = 0; sp < h; sp += 8)
                matvec_avx2(codes + sp, meta + sp, h, gs, ngroups, xs, xsum, y + sp, 1);
        }
        return;
    }
    for (int sp = 0; sp < h; sp += 8)
        for (int b0 = 0; b0 < n; b0 += Q4_BATCH_TILE) {
            const uint32_t *c = codes + sp;
            const float *m = meta + sp, *xb = xs + (size_t)b0 * kcols, *sb = xsum + (size_t)b0 * ngroups;
            float *yb = y + (size_t)b0 * rows + sp;
            /* A constant NB per call lets the compiler keep acc[] in registers. */
            switch (n - b0 < Q4_BATCH_TILE ? n - b0 : Q4_BATCH_TILE) {
            case 1: batch_avx2(c, m, h, gs, ngroups, xb, sb, yb, rows, 1); break;
            case 2: batch_avx2(c, m, h, gs, ngroups, xb, sb, yb, rows, 2); break;
            case 3: batch_avx2(c, m, h, gs, ngroups, xb, sb, yb, rows, 3); break;
            case 4: batch_avx2(c, m, h, gs, ngroups, xb, sb, yb, rows, 4); break;
            case 5: batch_avx2(c, m, h, gs, ngroups, xb, sb, yb, rows, 5); break;
            case 6: batch_avx2(c, m, h, gs, ngroups, xb, sb, yb, rows, 6); break;
            case 7: batch_avx2(c, m, h, gs, ngroups, xb, sb, yb, rows, 7); break;
            default: batch_avx2(c, m, h, gs, ngroups, xb, sb, yb, rows, 8); break;
            }
        }
}
#endif

/* ---- entry point ---------------------------------------------------------------------------------------- */

void dsk_q4_matmul(const dsk_q4_linear *L, const float *x, int n, float *y)
{
    if (!L->panel_codes)
        dsk_die(EX_SOFTWARE, "dsk_q4_matmul: int4 layer %dx%d was not prepared", L->rows, L->cols);
    if (n <= 0)
        return;
    int avx2 = use_avx2();
    int rows = L->rows, kcols = L->kcols, ngroups = L->ngroups;
    float *xs = dsk_xmalloc((size_t)n * kcols * sizeof *xs);
    float *xsum = dsk_xmalloc((size_t)n * ngroups * sizeof *xsum);
    build_inputs(L, x, n, avx2, xs, xsum);

    int npanels = (rows + DSK_Q4_PANEL - 1) / DSK_Q4_PANEL;
    size_t kw = (size_t)kcols / 8;
    /* Threads only pay off past a few hundred thousand weights. */
#pragma omp parallel for schedule(dynamic) if ((double)rows * kcols * n >= (double)(1 << 18))
    for (int p = 0; p < npanels; p++) {
        int r0 = p * DSK_Q4_PANEL, h = rows - r0 < DSK_Q4_PANEL ? rows - r0 : DSK_Q4_PANEL;
        const uint32_t *codes = L->panel_codes + (size_t)r0 * kw;
        const float *meta = L->panel_meta + (size_t)r0 * ngroups * 2;
        for (int b = 0; b < n; b++)
            memset(y + (size_t)b * rows + r0, 0, (size_t)h * sizeof *y);
#if defined(__x86_64__)
        if (avx2) {
            panel_avx2(L, codes, meta, h, xs, xsum, n, y + r0);
            continue;
        }
#endif
        panel_portable(L, codes, meta, h, xs, xsum, n, y + r0);
    }
    free(xs);
    free(xsum);
}
