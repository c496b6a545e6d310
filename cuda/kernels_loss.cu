/* Softmax cross-entropy, a block per row: loss[i] = weight[i] *
 * (logsumexp(z) - z[target]), and with grad_scale != 0 the logits
 * replaced by grad_scale * weight[i] * (softmax - onehot), and that
 * gradient's 16-bit copy written beside it (g_h), for the LM head's two
 * products after it (dsk_cuda_half_produce). */
#include "cuda_internal.cuh"

__global__ void softmax_xent_kernel(float *loss, float *logits, dsk_half_out g_h, const int32_t *targets,
                                    const float *weight, int V, float grad_scale)
{
    __shared__ float sh[32];
    __shared__ float zt_sh;
    size_t row = blockIdx.x;
    float *z = logits + row * V;
    int t = targets[row];
    float w = t < 0 || t >= V ? 0.0f : weight ? weight[row] : 1.0f;
    if (threadIdx.x == 0)
        zt_sh = w != 0 ? z[t] : 0.0f;      /* read before the gradient overwrites it */
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < V; c += blockDim.x)
        mx = fmaxf(mx, z[c]);
    mx = block_max(mx, sh);                /* its barriers also publish zt_sh */
    float sum = 0;
    if (grad_scale != 0) {
        for (int c = threadIdx.x; c < V; c += blockDim.x) {
            float e = expf(z[c] - mx);
            z[c] = e;
            sum += e;
        }
    } else {
        for (int c = threadIdx.x; c < V; c += blockDim.x)
            sum += expf(z[c] - mx);
    }
    sum = block_sum(sum, sh);
    if (threadIdx.x == 0)
        loss[row] = w == 0 ? 0.0f : w * (mx + logf(sum) - zt_sh);
    if (grad_scale != 0) {
        float k = grad_scale * w / sum;
        for (int c = threadIdx.x; c < V; c += blockDim.x) {
            float g = z[c] * k;
            z[c] = g;
            g_h.put(row * V + c, g);
        }
        __syncthreads();
        if (threadIdx.x == 0 && w != 0) {
            z[t] -= grad_scale * w;
            g_h.put(row * V + t, z[t]);
        }
    }
}

void dsk_cuda_softmax_xent(dsk_backend *be, float *loss, float *logits, const int32_t *targets, const float *weight,
                           int n, int V, float grad_scale)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0 || V <= 0)
        return;
    int threads = V >= 8192 ? 1024 : V >= 1024 ? 256 : 64;
    /* It writes loss and logits alone: only their copies are forgotten (the
     * table installs it without its forget-all), so the LM head weight's
     * copy lasts from one chunk of rows to the next. */
    dsk_cuda_half_written(cb, loss, (size_t)n * sizeof *loss);
    size_t len = (size_t)n * V;
    dsk_cuda_half_written(cb, logits, len * sizeof *logits);
    dsk_half_out h = {NULL, 0};
    if (grad_scale != 0)
        dsk_cuda_half_produce(cb, len, logits, &h, NULL, NULL);
    softmax_xent_kernel<<<n, threads, 0, cb->stream>>>(loss, logits, h, targets, weight, V, grad_scale);
    LAUNCHED(cb, "softmax_xent");
}
