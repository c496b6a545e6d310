/* The CPU backend's kernels, compiled twice from one source
 * (cpu_kernels_impl.h): in float for the backend, and in double so the
 * finite-difference gradient checks in tests/unit/test_ops.c have the
 * precision to bite.  Arguments are as in backend.h. */
#ifndef DSK_OPS_CPU_KERNELS_H
#define DSK_OPS_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "ops/backend.h"

#define DSK_CPU_KERNELS(R, S)                                                                                   \
    void dsk_cpu_gemm_##S(int trans_a, int trans_b, int M, int N, int K, R alpha, const R *A, const R *B, R beta, \
                          R *C);                                                                                \
    void dsk_cpu_add_##S(R *y, const R *x, size_t n);                                                           \
    void dsk_cpu_scale_##S(R *x, size_t n, R s);                                                                \
    double dsk_cpu_sumsq_##S(const R *x, size_t n);                                                             \
    void dsk_cpu_embedding_fwd_##S(R *out, const R *table, const int32_t *tokens, int n, int C);                \
    void dsk_cpu_embedding_bwd_##S(R *dtable, const R *dout, const int32_t *tokens, int n, int C);              \
    void dsk_cpu_rmsnorm_fwd_##S(R *out, R *rstd, const R *x, const R *w, int n, int C, R eps);                 \
    void dsk_cpu_rmsnorm_bwd_##S(R *dx, R *dw, const R *dout, const R *x, const R *w, const R *rstd, int n,     \
                                 int C);                                                                        \
    void dsk_cpu_rope_table_##S(R *cos_sin, int max_pos, int hd, double theta);                                 \
    void dsk_cpu_rope_##S(R *x, const int32_t *pos, const R *cos_sin, int n, int heads, int hd, int inverse);   \
    void dsk_cpu_attention_fwd_##S(R *out, R *lse_g, R *lse_l, R *out_g, R *out_l, const R *q, const R *k,     \
                                   const R *v, const int32_t *pos, const R *alpha, const dsk_attn_shape *s);    \
    void dsk_cpu_attention_bwd_##S(R *dq, R *dk, R *dv, R *dalpha, const R *dout, const R *out, const R *q,     \
                                   const R *k, const R *v, const R *lse_g, const R *lse_l, const R *out_g,      \
                                   const R *out_l, const int32_t *pos, const R *alpha,                          \
                                   const dsk_attn_shape *s);                                                    \
    void dsk_cpu_attention_decode_##S(R *out, const R *q, const R *k_cache, const R *v_cache, size_t seq_stride, \
                                      const int32_t *seq, const int32_t *pos, int n, const R *alpha,           \
                                      const dsk_attn_shape *s);                                                 \
    void dsk_cpu_swiglu_fwd_##S(R *out, const R *g, const R *u, size_t n);                                      \
    void dsk_cpu_swiglu_bwd_##S(R *dg, R *du, const R *dout, const R *g, const R *u, size_t n);                 \
    void dsk_cpu_softmax_xent_##S(R *loss, R *logits, const int32_t *targets, const R *weight, int n, int V,    \
                                  R grad_scale);                                                                \
    void dsk_cpu_moe_route_##S(R *probs, int32_t *sel, R *gate, const R *logits, const R *bias, int n, int E, \
                               int k, int router);                                                              \
    void dsk_cpu_moe_gather_##S(R *xp, const R *x, const int32_t *row_token, int rows, int d);                  \
    void dsk_cpu_moe_combine_##S(R *out, const R *yp, const int32_t *slot_row, const R *gate, int n, int k,     \
                                 int d);                                                                        \
    void dsk_cpu_moe_combine_bwd_##S(R *dyp, R *dgate, const R *dout, const R *yp, const int32_t *slot_row,     \
                                     const R *gate, int n, int k, int d);                                       \
    void dsk_cpu_moe_scatter_add_##S(R *dx, const R *dxp, const int32_t *slot_row, int n, int k, int d);        \
    void dsk_cpu_moe_route_bwd_##S(R *dlogits, const R *dgate, const R *probs, const int32_t *sel,              \
                                   const R *gate, const R *logits, const R *aux_w, int rows_per, R z_coef, int n,\
                                   int E, int k, int router);                                                   \
    void dsk_cpu_adamw_##S(R *param, const R *grad, R grad_scale, R *m, R *v, size_t n, R lr, R beta1, R beta2, \
                           R eps, R weight_decay, R c1, R c2);

DSK_CPU_KERNELS(float, f32)
DSK_CPU_KERNELS(double, f64)

/* Type-independent: the expert-major layout of the kept (token, expert) pairs. */
int dsk_cpu_moe_dispatch(int32_t *slot_row, int32_t *row_token, int *offsets, long *select_counts,
                         const int32_t *sel, int n, int k, int E, int capacity);

#endif
