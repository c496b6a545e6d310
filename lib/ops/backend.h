/* The ops interface: everything the model's forward and backward passes
 * and the optimizer ask of a compute device.
 *
 * Model code never touches device memory directly: it allocates through
 * the backend, moves bytes with upload/download, and passes device
 * pointers to the ops.  On the CPU backend device memory happens to be
 * host memory; on CUDA it is not, so code that dereferences a pointer it
 * got from alloc() is a bug even when the CPU tests pass.
 *
 * Shapes: activations are row-major [rows, cols]; a linear layer's weight
 * is [out, in] as in PyTorch and Hugging Face, so y = x W^T.  Token ids
 * and positions are int32 device arrays.  All ops are synchronous from the
 * caller's point of view (a CUDA backend may queue them on one stream, as
 * long as download() waits). */
#ifndef DSK_OPS_BACKEND_H
#define DSK_OPS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* Attention kinds per layer (the config's pattern letters G, L, H). */
enum { DSK_ATTN_GLOBAL, DSK_ATTN_LOCAL, DSK_ATTN_HYBRID };
/* The precision of matrix products (--dtype). */
enum { DSK_DTYPE_FP32, DSK_DTYPE_BF16, DSK_DTYPE_FP16 };
/* How a mixture-of-experts router scores experts. */
enum { DSK_ROUTER_SOFTMAX, DSK_ROUTER_SIGMOID };

/* One attention call: q [B*T, H*hd], k and v [B*T, KV*hd] (after RoPE),
 * out [B*T, H*hd].  Query i of a row attends to keys j <= i of the same
 * document (j >= i - pos[i]); a local window also needs i - j < window.
 * A hybrid layer mixes the two: alpha*global + (1-alpha)*local, alpha a
 * one-element device array (a learnable scalar).
 *
 * Nothing T x T is kept between the passes (flash attention): the
 * forward saves, per part the layer uses (global, local), the
 * log-sum-exp of each query's scaled scores, lse [B, H, T] (row b, head
 * h, query i at (b*H + h)*T + i), and the backward recomputes the
 * probabilities from it.  A hybrid layer also saves each part's own
 * output, out_g and out_l [B*T, H*hd] (the backward's per-part row sums
 * dO . O and d alpha need them); the other kinds pass NULL there. */
typedef struct dsk_attn_shape {
    int B, T, H, KV, hd;
    int kind;
    int window;
    /* 1: every row is one document (pos[i] = i mod T), so no document
     * mask applies and kernels that cannot apply one (cuDNN's, cuda/)
     * may run; 0: unknown (the masks above, whatever pos says). */
    int whole_rows;
} dsk_attn_shape;

typedef struct dsk_backend dsk_backend;
/* The LM head's logits a chunk of rows may take, by default (the cpu's:
 * fewer, larger products gain it little, and a chunk's logits then stay
 * near the caches). */
#define DSK_LOGITS_BUDGET ((size_t)128 << 20)
/* The cuda backend's: one size on every device, so that the chunks, and
 * so the bits of the head's gradient, do not depend on the card (a run
 * resumed on another GPU goes on bit for bit). */
#define DSK_LOGITS_BUDGET_GPU ((size_t)1 << 30)

struct dsk_backend {
    const char *name;
    int threads;
    /* Bytes of logits the LM head's automatic chunk of rows may take
     * (dsk_model_logit_rows; 0: DSK_LOGITS_BUDGET).  A GPU asks for
     * more (DSK_LOGITS_BUDGET_GPU): each chunk adds the head's weight gradient in place (read
     * and written whole, 412 MB at 1.3b's vocabulary of 50K), and its
     * dX product has too few tiles of output to fill the device. */
    size_t logits_budget;
    /* Allocations are counted, not made (dist/memory.c's tables): the
     * model then makes no host buffers or tables of its own either. */
    int counts_only;

    /* ---- memory: device allocations are zeroed ---- */
    void *(*alloc)(dsk_backend *be, size_t bytes);
    void (*free)(dsk_backend *be, void *dev);
    void (*upload)(dsk_backend *be, void *dev, const void *host, size_t bytes);
    void (*download)(dsk_backend *be, void *host, const void *dev, size_t bytes);
    void (*copy)(dsk_backend *be, void *dst_dev, const void *src_dev, size_t bytes);
    void (*zero)(dsk_backend *be, void *dev, size_t bytes);

    /* ---- dense algebra ---- */
    /* The precision of gemm's products, DSK_DTYPE_*: the caller sets it
     * between ops.  bf16 and fp16 round both operands to that type and
     * accumulate in fp32 (tensor cores on CUDA); weights, activations and
     * results stay fp32 in memory.  fp16 overflows past 65504 to inf,
     * which a loss scale (lib/train/loss_scale.h) must catch. */
    int gemm_dtype;
    /* C[M,N] = alpha * op(A) op(B) + beta * C, row-major; op transposes
     * when the flag is set.  A is [M,K] (or [K,M] transposed), B [K,N]
     * (or [N,K] transposed). */
    void (*gemm)(dsk_backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 const float *B, float beta, float *C);
    /* C = alpha * op(A) op(B) + R, as gemm: a residual connection's
     * product, whose input R the backward still needs.  R may be C (gemm
     * with beta 1); else it must not overlap C.  The same bits as copying
     * R to C and gemm with beta 1 (the cpu does that; a GPU reads R in the
     * product's epilogue, sparing the copy's pass). */
    void (*gemm_add)(dsk_backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                     const float *B, const float *R, float *C);
    /* count independent products in one call, as a MoE layer's experts
     * need (each expert's block of rows against its own weights; a GPU
     * runs them as one grouped launch).  Group g: C[g] = alpha op(A[g])
     * op(B[g]) + beta C[g], shapes M[g], N[g], K[g] as in gemm, the
     * flags shared.  A group with M, N or K of 0 leaves its C as it is.
     * A, B, C, M, N and K are host arrays of count; the pointers in A, B
     * and C are device memory. */
    void (*gemm_grouped)(dsk_backend *be, int trans_a, int trans_b, int count, const int *M, const int *N,
                         const int *K, float alpha, const float *const *A, const float *const *B, float beta,
                         float *const *C);
    /* Optional (NULL when the backend has none): from now on, products
     * A·Wᵀ with few rows of A (decoding) read int4 (a prepared
     * dsk_q4_linear, lib/quant/int4.h, that W's values equal) instead of
     * the fp32 W, which is 8x less memory traffic.  W stays valid. */
    void (*register_int4)(dsk_backend *be, const float *W, const void *int4);
    /* Optional (NULL when the backend has none): the n weights W[i]
     * [N[i], K[i]] (a loaded checkpoint's matrices that products read,
     * in dsk-eval and dsk-serve) will not change until the backend is
     * destroyed.  The backend may keep copies of all or of none, laid
     * out for products A·Wᵀ of a few rows (cpu: gemm_packed.h's panels,
     * with AVX2 and FMA, for up to DSK_PACKED_MAX_ROWS rows, when they
     * total at most DSK_PACKED_BUDGET bytes). */
    void (*freeze_weights)(dsk_backend *be, int n, const float *const *W, const int *N, const int *K);
    void (*add)(dsk_backend *be, float *y, const float *x, size_t n);   /* y += x */
    void (*scale)(dsk_backend *be, float *x, size_t n, float s);
    /* Sum of squares of x in double precision (a host value). */
    double (*sumsq)(dsk_backend *be, const float *x, size_t n);

    /* ---- layers ---- */
    void (*embedding_fwd)(dsk_backend *be, float *out, const float *table, const int32_t *tokens, int n, int C);
    /* dtable[tokens[i]] += dout[i] */
    void (*embedding_bwd)(dsk_backend *be, float *dtable, const float *dout, const int32_t *tokens, int n, int C);
    /* out = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps), per row. */
    void (*rmsnorm_fwd)(dsk_backend *be, float *out, float *rstd, const float *x, const float *w, int n, int C,
                        float eps);
    /* dx += d/dx, dw += d/dw. */
    void (*rmsnorm_bwd)(dsk_backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                        const float *rstd, int n, int C);
    /* Rotate heads in place (Hugging Face rotate-half): x is [n, heads*hd],
     * row i at position pos[i]; cos_sin is the [max_pos, hd/2, 2] table
     * from dsk_rope_table(). inverse rotates back (the backward pass). */
    void (*rope)(dsk_backend *be, float *x, const int32_t *pos, const float *cos_sin, int n, int heads, int hd,
                 int inverse);
    void (*attention_fwd)(dsk_backend *be, float *out, float *lse_g, float *lse_l, float *out_g, float *out_l,
                          const float *q, const float *k, const float *v, const int32_t *pos, const float *alpha,
                          const dsk_attn_shape *s);
    /* dq, dk, dv are overwritten; dalpha (hybrid only) accumulates.  out,
     * lse_* and out_* are what the forward wrote. */
    void (*attention_bwd)(dsk_backend *be, float *dq, float *dk, float *dv, float *dalpha, const float *dout,
                          const float *out, const float *q, const float *k, const float *v, const float *lse_g,
                          const float *lse_l, const float *out_g, const float *out_l, const int32_t *pos,
                          const float *alpha, const dsk_attn_shape *s);
    /* Decoding: n queries, each against the cached keys and values of
     * its own sequence.  Row i: q [H*hd] at position pos[i], in sequence
     * seq[i], whose keys are k_cache + seq[i]*seq_stride, [pos[i]+1, KV*hd]
     * (and values alike); out [n, H*hd].  seq and pos are backend memory.
     * (Generation: one document per sequence, so only the window limits
     * what a query sees.) */
    void (*attention_decode)(dsk_backend *be, float *out, const float *q, const float *k_cache,
                             const float *v_cache, size_t seq_stride, const int32_t *seq, const int32_t *pos, int n,
                             const float *alpha, const dsk_attn_shape *s);
    /* out = silu(g) * u */
    void (*swiglu_fwd)(dsk_backend *be, float *out, const float *g, const float *u, size_t n);
    void (*swiglu_bwd)(dsk_backend *be, float *dg, float *du, const float *dout, const float *g, const float *u,
                       size_t n);
    /* Per row: loss[i] = weight[i] * (logsumexp(logits[i]) - logits[i][target[i]]).
     * With grad_scale != 0 the logits are overwritten by their gradient
     * grad_scale * weight[i] * (softmax - onehot). */
    void (*softmax_xent)(dsk_backend *be, float *loss, float *logits, const int32_t *targets, const float *weight,
                         int n, int V, float grad_scale);

    /* ---- mixture of experts ----
     * A layer routes n tokens over E experts, k each: moe_route picks them,
     * moe_dispatch lays the kept (token, expert) pairs out expert by
     * expert (so each expert is one matrix product over a contiguous
     * block, the layout a grouped GEMM wants), moe_gather copies token
     * rows into that order and moe_combine adds the experts' outputs back,
     * weighted by the gates. */
    /* probs [n, E] = softmax or sigmoid (DSK_ROUTER_*) of logits; sel [n, k]
     * the experts with the largest probs + bias (bias: selection only, may
     * be NULL), best first, ties to the lower index; gate [n, k] their
     * weights: the probabilities (softmax) or the probabilities normalised
     * over the k chosen (sigmoid). */
    void (*moe_route)(dsk_backend *be, float *probs, int32_t *sel, float *gate, const float *logits,
                      const float *bias, int n, int E, int k, int router);
    /* Kept pairs in token order, at most capacity per expert (the rest are
     * dropped: slot_row -1).  slot_row [n, k]: the pair's row in the
     * expert-major layout; row_token [n*k]: each row's token; offsets, a
     * HOST array of E+1: expert e's rows are [offsets[e], offsets[e+1]).
     * select_counts (host, E, may be NULL) adds each expert's selections
     * before dropping.  Returns the rows kept. */
    int (*moe_dispatch)(dsk_backend *be, int32_t *slot_row, int32_t *row_token, int *offsets, long *select_counts,
                        const int32_t *sel, int n, int k, int E, int capacity);
    void (*moe_gather)(dsk_backend *be, float *xp, const float *x, const int32_t *row_token, int rows, int d);
    /* out[t] += sum over t's kept slots of gate * yp[row]. */
    void (*moe_combine)(dsk_backend *be, float *out, const float *yp, const int32_t *slot_row, const float *gate,
                        int n, int k, int d);
    /* dyp[row] = gate * dout[t]; dgate[t, s] = dout[t] . yp[row] (0 when dropped). */
    void (*moe_combine_bwd)(dsk_backend *be, float *dyp, float *dgate, const float *dout, const float *yp,
                            const int32_t *slot_row, const float *gate, int n, int k, int d);
    /* dx[t] += sum over t's kept slots of dxp[row]. */
    void (*moe_scatter_add)(dsk_backend *be, float *dx, const float *dxp, const int32_t *slot_row, int n, int k,
                            int d);
    /* What a training forward's balancing losses need of its routing,
     * reduced where the routing is (so that a GPU hands back R*E sums,
     * not n*E probabilities).  The tokens go in groups of rows_per (a
     * sequence each; the last may be shorter), R = ceil(n / rows_per)
     * groups.  For group r and expert e: q_sum[r*E + e] = the sum over
     * r's tokens of q = probs[t, e] / (the sum of probs' row t), and
     * sel_count[r*E + e] = how many of r's tokens selected e (sel [n, k]).
     * sums[0] = the entropy, -sum of q log q over all tokens and experts;
     * sums[1] = the sum over tokens of logsumexp(logits' row)^2.  q_sum,
     * sel_count and sums are HOST arrays, overwritten. */
    void (*moe_balance_stats)(dsk_backend *be, double *q_sum, long *sel_count, double *sums, const float *probs,
                              const int32_t *sel, const float *logits, int rows_per, int n, int E, int k);
    /* dlogits [n, E] from dgate, plus the balancing losses' gradients:
     * aux_w [n / rows_per, E] (NULL: none) is d loss / d p for the tokens
     * of each sequence, where p is the router's probability (softmax) or
     * the normalised sigmoid score; z_coef adds z_coef * lse(logits)^2 per
     * token.  Overwrites dlogits. */
    void (*moe_route_bwd)(dsk_backend *be, float *dlogits, const float *dgate, const float *probs,
                          const int32_t *sel, const float *gate, const float *logits, const float *aux_w,
                          int rows_per, float z_coef, int n, int E, int k, int router);

    /* ---- optimizer ---- */
    /* One AdamW step over n values with gradient grad_scale * grad (the
     * clipping factor, folded in to save a pass over memory): m, v
     * moments; lr already scheduled; bias corrections c1 = 1 - beta1^t,
     * c2 = 1 - beta2^t. */
    void (*adamw)(dsk_backend *be, float *param, const float *grad, float grad_scale, float *m, float *v, size_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, float c1, float c2);
    /* Optional (NULL when the backend has nothing to keep): w [n] holds a
     * model's weights, which from now until w is freed change only
     * through adamw and upload, or by writes announced with
     * weights_written (a ZeRO all-gather).  The backend may then keep
     * them in the form its products read (cuda: a bf16 / fp16 copy,
     * updated by adamw as it writes the floats, instead of a conversion
     * for every product that reads a weight). */
    void (*register_weights)(dsk_backend *be, const float *w, size_t n);
    void (*weights_written)(dsk_backend *be, const float *w, size_t n);

    void (*destroy)(dsk_backend *be);
    void *impl;
};

/* threads <= 0: the default (OpenMP's). */
dsk_backend *dsk_backend_cpu(int threads);
/* By name (lib/ops/backend_open.c): "cpu", or "cuda" / "cuda:N" (device
 * N) in a build with CUDA (cuda/cuda_backend.h).  NULL with err filled
 * when it cannot be had: EX_USAGE for an unknown name, EX_UNAVAILABLE
 * for "cuda" in a build without CUDA or on a machine without a device
 * ("no CUDA device: ..."). */
struct dsk_err;
dsk_backend *dsk_backend_new(const char *name, int threads, struct dsk_err *err);
/* The same with the message only (err_len bytes into err). */
dsk_backend *dsk_backend_open(const char *name, int threads, char *err, size_t err_len);
/* "cuda" when this build has CUDA and a device is present, else "cpu":
 * the default for the tools' --device. */
const char *dsk_backend_default(void);

/* Host-side RoPE table [max_pos, hd/2, 2] of (cos, sin) for Hugging Face's
 * rotate-half convention: frequency i is theta^(-2i/hd). */
void dsk_rope_table(float *cos_sin, int max_pos, int hd, double theta);

#endif
