/* The tensor cores at the level below WMMA: PTX's ldmatrix and
 * mma.sync m16n8k16 with bf16 operands and fp32 sums (sm_80 on), for
 * kernels that need to know which lane holds which element of a
 * fragment (kernels_attention_mma.cu keeps a product's output in
 * registers and feeds it to the next product as an operand).  The PTX
 * ISA fixes the layouts ("Matrix Fragments for mma.m16n8k16"); with
 * g = lane / 4 and t = lane % 4:
 *
 *   A (16 x 16, row-major), 4 registers of two bf16 each:
 *     a0 = A[g][2t, 2t+1]   a1 = A[g+8][2t, 2t+1]
 *     a2 = A[g][2t+8, +9]   a3 = A[g+8][2t+8, +9]
 *   B (16 x 8, k x n), 2 registers:
 *     b0 = B[2t, 2t+1][g]   b1 = B[2t+8, 2t+9][g]
 *   C, D (16 x 8, fp32), 4 floats:
 *     c0, c1 = C[g][2t, 2t+1]   c2, c3 = C[g+8][2t, 2t+1]
 *
 * (the element of the lower index in the lower 16 bits).  So the C of
 * two products side by side (columns 0-7 and 8-15), packed to bf16, is
 * the A of the next product over those 16 columns: {c0c1, c2c3} of the
 * first and then of the second.
 *
 * ldmatrix .x4 loads four 8 x 8 tiles of 16-bit elements: lanes 8i to
 * 8i + 7 name the rows of tile i (16-byte aligned shared addresses), and
 * lane l gets register i = tile i's [g][2t, 2t+1], or with .trans its
 * [2t, 2t+1][g] (the tile transposed).
 *
 * cp.async (cp_async_16, _commit, _wait) copies tiles from global to
 * shared memory while the warps compute on the previous tile.
 *
 * Under the CPU emulation (tests/gpu/emu/emu.h) the same calls run the
 * emulator's versions of the instructions, which follow these layouts
 * (and perform a cp.async either at once or only at the wait that
 * covers it, block by block, so that a read before the wait sees the old
 * bytes and a copy into a tile other warps still read overwrites it, as
 * either may on the hardware). */
#ifndef DSK_MMA_SYNC_CUH
#define DSK_MMA_SYNC_CUH

#include <stdint.h>
#include <string.h>

#include <cuda_bf16.h>

/* Two floats rounded to bf16 (to nearest even), lo in the low half: a
 * register of an A or B fragment. */
__device__ __forceinline__ uint32_t mma_pack_bf16(float lo, float hi)
{
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    uint32_t r;
    memcpy(&r, &h, sizeof r);
    return r;
}

#ifdef DSK_EMU_H

__device__ __forceinline__ void mma_ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16 *row)
{
    dsk_emu_ldmatrix_x4(r, row, 0);
}
__device__ __forceinline__ void mma_ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16 *row)
{
    dsk_emu_ldmatrix_x4(r, row, 1);
}
/* d += A B. */
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    dsk_emu_mma_m16n8k16_bf16(d, a, b0, b1);
}

/* cp.async: the emulator performs each copy as it is issued or at the
 * wait that covers it (emu.h says which blocks do which). */
__device__ __forceinline__ void cp_async_16(void *smem, const void *gmem, int src_bytes)
{
    dsk_emu_cp_async_16(smem, gmem, src_bytes);
}
__device__ __forceinline__ void cp_async_commit(void) { dsk_emu_cp_async_commit(); }
template <int N> __device__ __forceinline__ void cp_async_wait(void) { dsk_emu_cp_async_wait(N); }

#else

/* cp.async.cg (sm_80 on): 16 bytes from global to shared memory without
 * passing through registers, of which the first src_bytes are read and
 * the rest zeroed (0: all zeros, gmem not read).  Both addresses 16-byte
 * aligned.  Copies are grouped by cp_async_commit; cp_async_wait<N>
 * returns when all but the newest N groups of this thread have landed
 * (other threads' copies: a barrier after the wait). */
__device__ __forceinline__ void cp_async_16(void *smem, const void *gmem, int src_bytes)
{
    unsigned at = (unsigned)__cvta_generic_to_shared(smem);
    size_t from = __cvta_generic_to_global(gmem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(at), "l"(from), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait(void)
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void mma_ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16 *row)
{
    unsigned at = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(at));
}
__device__ __forceinline__ void mma_ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16 *row)
{
    unsigned at = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(at));
}
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#endif

#endif
