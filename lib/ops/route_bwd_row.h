/* The router's backward for one token, written once for the CPU kernels
 * (cpu_kernels_impl.h, in float and double) and the CUDA kernel
 * (cuda/kernels_moe.cu): the same per-element math on both sides, as
 * backend.h's moe_route_bwd describes it.
 *
 * A template, not a header to include anywhere: define ROUTE_REAL (the
 * element type), ROUTE_ROW (the function's name) and ROUTE_QUALIFIER
 * (static inline, or __device__ __forceinline__), with exp and log
 * resolving to ROUTE_REAL's (<tgmath.h> in C, the overloads in CUDA). */
#if !defined(ROUTE_REAL) || !defined(ROUTE_ROW) || !defined(ROUTE_QUALIFIER)
#error "define ROUTE_REAL, ROUTE_ROW and ROUTE_QUALIFIER before including route_bwd_row.h"
#endif

/* dz [E]: d loss / d logits of the token, from dg [k] (the gradient of
 * its gates), p [E] (probabilities or sigmoid scores), st [k] (the chosen
 * experts), g [k] (their gates), aw [E] (the balancing losses' d loss /
 * d p, or NULL) and z [E] (the logits, read when z_coef != 0). */
ROUTE_QUALIFIER void ROUTE_ROW(ROUTE_REAL *dz, const ROUTE_REAL *dg, const ROUTE_REAL *p, const int32_t *st,
                               const ROUTE_REAL *g, const ROUTE_REAL *aw, const ROUTE_REAL *z, ROUTE_REAL z_coef,
                               int E, int k, int router)
{
    /* dp: the gradient with respect to the probabilities (softmax) or
     * the sigmoid scores, before their own backward. */
    for (int e = 0; e < E; e++)
        dz[e] = 0;
    if (router == DSK_ROUTER_SOFTMAX) {
        for (int s = 0; s < k; s++)
            dz[st[s]] += dg[s];
        if (aw)
            for (int e = 0; e < E; e++)
                dz[e] += aw[e];
        /* softmax backward: dz = p (dp - sum p dp) */
        ROUTE_REAL dot = 0;
        for (int e = 0; e < E; e++)
            dot += p[e] * dz[e];
        for (int e = 0; e < E; e++)
            dz[e] = p[e] * (dz[e] - dot);
    } else {
        /* gate_s = p_s / S over the chosen: dp_s = (dg_s - sum_r gate_r dg_r) / S. */
        ROUTE_REAL S = 0, gdot = 0;
        for (int s = 0; s < k; s++) {
            S += p[st[s]];
            gdot += g[s] * dg[s];
        }
        for (int s = 0; s < k; s++)
            dz[st[s]] += (dg[s] - gdot) / S;
        if (aw) {
            /* The balance loss sees p / sum_all p. */
            ROUTE_REAL all = 0, wdot = 0;
            for (int e = 0; e < E; e++)
                all += p[e];
            for (int e = 0; e < E; e++)
                wdot += aw[e] * p[e] / all;
            for (int e = 0; e < E; e++)
                dz[e] += (aw[e] - wdot) / all;
        }
        for (int e = 0; e < E; e++)
            dz[e] *= p[e] * (1 - p[e]);
    }
    if (z_coef != 0) {
        /* The z-loss z_coef * lse^2: its gradient 2 z_coef lse softmax(z). */
        ROUTE_REAL mx = -INFINITY, sum = 0;
        for (int e = 0; e < E; e++)
            mx = z[e] > mx ? z[e] : mx;
        for (int e = 0; e < E; e++)
            sum += exp(z[e] - mx);
        ROUTE_REAL lse = mx + log(sum);
        for (int e = 0; e < E; e++)
            dz[e] += 2 * z_coef * lse * exp(z[e] - lse);
    }
}
