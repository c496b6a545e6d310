/* AdamW, PyTorch's operation order as in the CPU kernel, each operation
 * rounded on its own (no fused multiply-add): the same bits as the CPU.
 * With registered weights, also each new value's 16-bit copy. */
#include "cuda_internal.cuh"

struct adamw_consts {
    float grad_scale, one_m_b1, beta2, one_m_b2, eps, step_size, c2_sqrt, decay;
};

/* One parameter: p, m, v updated in place from gradient g. */
__device__ __forceinline__ void adamw1(float &p, float &mi, float &vi, float gr, const adamw_consts &k)
{
    float g = __fmul_rn(gr, k.grad_scale);
    p = __fmul_rn(p, k.decay);
    mi = __fadd_rn(mi, __fmul_rn(__fsub_rn(g, mi), k.one_m_b1));
    vi = __fadd_rn(__fmul_rn(vi, k.beta2), __fmul_rn(__fmul_rn(k.one_m_b2, g), g));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), k.c2_sqrt), k.eps);
    p = __fsub_rn(p, __fmul_rn(k.step_size, __fdiv_rn(mi, denom)));
}

__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n, adamw_consts k,
                             dsk_half_out param_h)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float p = param[i], mi = m[i], vi = v[i];
        adamw1(p, mi, vi, grad[i], k);
        m[i] = mi;
        v[i] = vi;
        param[i] = p;
        param_h.put(i, p);
    }
}

/* Four parameters a thread (16-byte loads and stores, where dsk_vec4_ok
 * allows): the same bits. */
__global__ void adamw_kernel4(float4 *param, const float4 *grad, float4 *m, float4 *v, size_t n4, adamw_consts k,
                              dsk_half_out param_h)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        float4 p = param[i], mi = m[i], vi = v[i];
        const float4 g = grad[i];
        adamw1(p.x, mi.x, vi.x, g.x, k);
        adamw1(p.y, mi.y, vi.y, g.y, k);
        adamw1(p.z, mi.z, vi.z, g.z, k);
        adamw1(p.w, mi.w, vi.w, g.w, k);
        m[i] = mi;
        v[i] = vi;
        param[i] = p;
        param_h.put4(4 * i, p);
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
    const adamw_consts k = {grad_scale, one_m_b1, beta2, one_m_b2, eps, step_size, c2_sqrt, decay};
    const void *arrays[] = {param, grad, m, v};
    if (dsk_vec4_ok(n, arrays, 4, param_h, param_h))
        adamw_kernel4<<<dsk_cuda_blocks(cb, n / 4, threads), threads, 0, cb->stream>>>(
            (float4 *)param, (const float4 *)grad, (float4 *)m, (float4 *)v, n / 4, k, param_h);
    else
        adamw_kernel<<<dsk_cuda_blocks(cb, n, threads), threads, 0, cb->stream>>>(param, grad, m, v, n, k, param_h);
    LAUNCHED(cb, "adamw");
}
