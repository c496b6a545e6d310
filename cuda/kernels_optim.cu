/* AdamW, PyTorch's operation order as in the CPU kernel, each operation
 * rounded on its own (no fused multiply-add): the same bits as the CPU.
 * With registered weights, also each new value's 16-bit copy. */
#include "cuda_internal.cuh"

__global__ void adamw_kernel(float *param, const float *grad, float grad_scale, float *m, float *v, size_t n,
                             float one_m_b1, float beta2, float one_m_b2, float eps, float step_size, float c2_sqrt,
                             float decay, dsk_half_out param_h)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = __fmul_rn(grad[i], grad_scale);
        float p = __fmul_rn(param[i], decay);
        float mi = m[i], vi = v[i];
        mi = __fadd_rn(mi, __fmul_rn(__fsub_rn(g, mi), one_m_b1));
        vi = __fadd_rn(__fmul_rn(vi, beta2), __fmul_rn(__fmul_rn(one_m_b2, g), g));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), c2_sqrt), eps);
        p = __fsub_rn(p, __fmul_rn(step_size, __fdiv_rn(mi, denom)));
        m[i] = mi;
        v[i] = vi;
        param[i] = p;
        param_h.put(i, p);
    }
}

void dsk_cuda_adamw(dsk_backend *be, float *param, const float *grad, float grad_scale, float *m, float *v,
                    size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, float c1, float c2)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (!n)
        return;
    /* The scalars in float on the host, as the CPU kernel computes them. */
    volatile float step_size = lr / c1, c2_sqrt = sqrtf(c2), decay = 1 - lr * weight_decay;
    volatile float one_m_b1 = 1 - beta1, one_m_b2 = 1 - beta2;
    int threads = 256;
    /* Registered weights keep their 16-bit copy current (weights_copy.cu). */
    dsk_half_out param_h = dsk_cuda_weights_out(cb, param, n);
    adamw_kernel<<<dsk_cuda_blocks(cb, n, threads), threads, 0, cb->stream>>>(
        param, grad, grad_scale, m, v, n, one_m_b1, beta2, one_m_b2, eps, step_size, c2_sqrt, decay, param_h);
    LAUNCHED(cb, "adamw");
}
