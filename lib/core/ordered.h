/* An ordered parallel pipeline: batches are produced in order on the
 * calling thread, worked on by a pool of threads in any order, and
 * committed on the calling thread in exactly the order they were produced.
 * Output therefore does not depend on the thread count.
 *
 * With threads <= 1 everything runs on the calling thread, with the same
 * produce/work/commit sequence. */
#ifndef DSK_CORE_ORDERED_H
#define DSK_CORE_ORDERED_H

typedef struct dsk_ordered_ops {
    void *ctx;
    /* Fill batch; return 1 if it holds work, 0 at end of input, or a
     * negative value to stop (the error is the caller's to report). */
    int (*produce)(void *ctx, void *batch);
    void (*work)(void *ctx, void *batch, int worker);
    /* Return 0 to go on, non-zero to stop the pipeline early. */
    int (*commit)(void *ctx, void *batch);
} dsk_ordered_ops;

/* batches: an array of n_batches pointers, each owned by the caller and
 * reused; n_batches >= 1 bounds the memory in flight.  Returns 0 when all
 * input was committed, or the first non-zero produce/commit result. */
int dsk_ordered_run(const dsk_ordered_ops *ops, void **batches, int n_batches, int threads);

#endif
