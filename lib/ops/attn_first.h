/* Which keys an attention query sees, for the CPU kernels and the CUDA
 * kernels alike (backend.h describes the masks). */
#ifndef DSK_OPS_ATTN_FIRST_H
#define DSK_OPS_ATTN_FIRST_H

#ifdef __CUDACC__
#define DSK_ATTN_FIRST_QUALIFIER __host__ __device__ __forceinline__
#else
#define DSK_ATTN_FIRST_QUALIFIER static inline
#endif

/* Query i at position pos_i of its document sees keys [first, i]: its
 * document's, and for a local (sliding-window) part only the last
 * window of them. */
DSK_ATTN_FIRST_QUALIFIER int dsk_attn_first(int i, int pos_i, int local, int window)
{
    int first = i - pos_i;
    if (first < 0)
        first = 0;
    if (local && i - window + 1 > first)
        first = i - window + 1;
    return first;
}

#endif
