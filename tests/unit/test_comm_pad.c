/* The padding arithmetic of equal-count collectives (dsk_comm_pad_plan),
 * which the NCCL communicator (cuda/comm_nccl.cu) uses to do the even
 * split's reduce-scatter and allgather: checked here by running those
 * collectives by hand over simulated ranks in host memory, exactly as the
 * NCCL code arranges its buffers (NCCL itself runs on GPU machines only:
 * tests/gpu/test_nccl.sh). */
#include "dist/comm.h"
#include "test.h"

enum { MAX_N = 40, MAX_RANKS = 9 };

/* A value no collective may leave in a result: what padding starts as. */
static const float GARBAGE = -1e30f;

TEST(plan_invariants)
{
    for (int size = 1; size <= MAX_RANKS; size++)
        for (size_t n = 0; n <= MAX_N; n++) {
            size_t covered = 0;
            for (int r = 0; r < size; r++) {
                dsk_comm_pad p;
                dsk_comm_pad_plan(n, size, r, &p);
                CHECK(p.chunk == dsk_comm_chunk(n, size));
                CHECK(p.padded == p.chunk * (size_t)size && p.padded >= n);
                CHECK(n == 0 || p.padded - n < (size_t)size);   /* less than one value a rank */
                CHECK(p.exact == (p.padded == n));
                CHECK(p.at == (size_t)r * p.chunk && p.at + p.chunk <= p.padded);
                size_t lo, hi;
                dsk_comm_part(n, size, r, &lo, &hi);
                CHECK(p.lo == lo && p.hi == hi && hi - lo <= p.chunk);
                if (hi > lo)
                    CHECK(p.lo == p.at);   /* a part starts its chunk */
                else
                    CHECK(p.at >= n || n == 0);   /* an empty part's chunk is all padding */
                covered += hi - lo;
            }
            CHECK(covered == n);
        }
    dsk_comm_pad p;
    dsk_comm_pad_plan(10, 4, 3, &p);   /* chunks of 3: the last part is [9, 10) */
    CHECK(p.chunk == 3 && p.padded == 12 && p.at == 9 && p.lo == 9 && p.hi == 10 && !p.exact);
    dsk_comm_pad_plan(8, 4, 1, &p);
    CHECK(p.chunk == 2 && p.padded == 8 && p.exact);
}

/* Allgather of n values over size ranks: each rank starts with its part
 * only, and every rank must end with all n. */
static int allgather_by_hand(size_t n, int size)
{
    static float buf[MAX_RANKS][MAX_N], scratch[MAX_RANKS][MAX_N + MAX_RANKS], gathered[MAX_N + MAX_RANKS];
    float *work[MAX_RANKS];
    dsk_comm_pad p[MAX_RANKS];
    for (int r = 0; r < size; r++) {
        dsk_comm_pad_plan(n, size, r, &p[r]);
        for (size_t i = 0; i < n; i++)
            buf[r][i] = i >= p[r].lo && i < p[r].hi ? (float)i : GARBAGE;
        /* As comm_nccl.cu: the buffer itself, or its part copied into its
         * chunk of the padded scratch. */
        work[r] = buf[r];
        if (!p[r].exact) {
            work[r] = scratch[r];
            for (size_t i = 0; i < p[r].padded; i++)
                work[r][i] = GARBAGE;
            for (size_t i = p[r].lo; i < p[r].hi; i++)
                work[r][p[r].at + (i - p[r].lo)] = buf[r][i];
        }
    }
    /* ncclAllGather(work + at, work, chunk): rank k's chunk lands at k * chunk everywhere. */
    size_t chunk = p[0].chunk, padded = p[0].padded;
    for (int k = 0; k < size; k++)
        for (size_t j = 0; j < chunk; j++)
            gathered[(size_t)k * chunk + j] = work[k][p[k].at + j];
    int bad = 0;
    for (int r = 0; r < size; r++) {
        for (size_t i = 0; i < padded; i++)
            work[r][i] = gathered[i];
        if (!p[r].exact)
            for (size_t i = 0; i < n; i++)
                buf[r][i] = work[r][i];
        for (size_t i = 0; i < n; i++)
            bad += buf[r][i] != (float)i;
    }
    return bad;
}

/* Reduce-scatter: each rank's part of the sum over ranks of their n values. */
static int reduce_scatter_by_hand(size_t n, int size)
{
    static float in[MAX_RANKS][MAX_N], scratch[MAX_RANKS][MAX_N + MAX_RANKS], part[MAX_RANKS][MAX_N];
    const float *send[MAX_RANKS];
    dsk_comm_pad p[MAX_RANKS];
    for (int r = 0; r < size; r++) {
        dsk_comm_pad_plan(n, size, r, &p[r]);
        for (size_t i = 0; i < n; i++)
            in[r][i] = (float)((r + 1) * 100 + (int)i);
        send[r] = in[r];
        if (!p[r].exact) {   /* the values, then zeros to the padded length */
            for (size_t i = 0; i < p[r].padded; i++)
                scratch[r][i] = i < n ? in[r][i] : 0;
            send[r] = scratch[r];
        }
        for (size_t i = 0; i < n; i++)
            part[r][i] = GARBAGE;
    }
    int bad = 0;
    for (int r = 0; r < size; r++) {
        /* ncclReduceScatter(send, recv, chunk): rank r gets the sum of every
         * rank's [at, at + chunk); exact: straight into part, else into
         * its chunk of the scratch, then hi - lo values into part. */
        float chunk_sum[MAX_N + MAX_RANKS];
        for (size_t j = 0; j < p[r].chunk; j++) {
            chunk_sum[j] = 0;
            for (int k = 0; k < size; k++)
                chunk_sum[j] += send[k][p[r].at + j];
        }
        size_t keep = p[r].exact ? p[r].chunk : p[r].hi - p[r].lo;
        for (size_t j = 0; j < keep; j++)
            part[r][j] = chunk_sum[j];
        /* The padding added nothing: what lies beyond n sums to zero. */
        for (size_t j = p[r].hi - p[r].lo; j < p[r].chunk; j++)
            bad += !p[r].exact && chunk_sum[j] != 0;
        for (size_t i = p[r].lo; i < p[r].hi; i++) {
            float want = 0;
            for (int k = 0; k < size; k++)
                want += in[k][i];
            bad += part[r][i - p[r].lo] != want;
        }
    }
    return bad;
}

TEST(allgather_over_padding)
{
    for (int size = 1; size <= MAX_RANKS; size++)
        for (size_t n = 1; n <= MAX_N; n++) {
            int bad = allgather_by_hand(n, size);
            if (bad)
                printf("#   allgather of %zu values over %d ranks: %d wrong\n", n, size, bad);
            CHECK(bad == 0);
        }
}

TEST(reduce_scatter_over_padding)
{
    for (int size = 1; size <= MAX_RANKS; size++)
        for (size_t n = 1; n <= MAX_N; n++) {
            int bad = reduce_scatter_by_hand(n, size);
            if (bad)
                printf("#   reduce-scatter of %zu values over %d ranks: %d wrong\n", n, size, bad);
            CHECK(bad == 0);
        }
}

RUN_TESTS(T(plan_invariants), T(allgather_over_padding), T(reduce_scatter_over_padding))
