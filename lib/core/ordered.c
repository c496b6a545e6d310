#include "core/ordered.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/err.h"

enum { SLOT_FREE, SLOT_QUEUED, SLOT_WORKING, SLOT_DONE };

typedef struct pool {
    const dsk_ordered_ops *ops;
    void **batches;
    int n;
    int *state;
    long next_to_work;      /* lowest queued sequence not yet taken */
    long produced;
    int stopping;
    pthread_mutex_t mu;
    pthread_cond_t work_ready, work_done;
} pool;

typedef struct worker_arg {
    pool *p;
    int id;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    pool *p = wa->p;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && p->next_to_work >= p->produced)
            pthread_cond_wait(&p->work_ready, &p->mu);
        if (p->next_to_work >= p->produced && p->stopping)
            break;
        int slot = (int)(p->next_to_work % p->n);
        p->next_to_work++;
        p->state[slot] = SLOT_WORKING;
        pthread_mutex_unlock(&p->mu);
        p->ops->work(p->ops->ctx, p->batches[slot], wa->id);
        pthread_mutex_lock(&p->mu);
        p->state[slot] = SLOT_DONE;
        pthread_cond_broadcast(&p->work_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int run_inline(const dsk_ordered_ops *ops, void *batch)
{
    for (;;) {
        int rc = ops->produce(ops->ctx, batch);
        if (rc <= 0)
            return rc < 0 ? rc : 0;
        ops->work(ops->ctx, batch, 0);
        if ((rc = ops->commit(ops->ctx, batch)) != 0)
            return rc;
    }
}

int dsk_ordered_run(const dsk_ordered_ops *ops, void **batches, int n_batches, int threads)
{
    if (threads <= 1 || n_batches < 2)
        return run_inline(ops, batches[0]);

    pool p = {.ops = ops, .batches = batches, .n = n_batches};
    p.state = dsk_xcalloc((size_t)n_batches, sizeof *p.state);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.work_ready, NULL);
    pthread_cond_init(&p.work_done, NULL);
    pthread_t *tids = dsk_xcalloc((size_t)threads, sizeof *tids);
    worker_arg *args = dsk_xcalloc((size_t)threads, sizeof *args);
    for (int i = 0; i < threads; i++) {
        args[i] = (worker_arg){&p, i};
        if (pthread_create(&tids[i], NULL, worker_main, &args[i]) != 0)
            dsk_die(EX_OSERR, "cannot start worker thread");
    }

    long committed = 0;
    int eof = 0, result = 0;
    while (!result && (!eof || committed < p.produced)) {
        int head = (int)(committed % n_batches);
        pthread_mutex_lock(&p.mu);
        int head_done = committed < p.produced && p.state[head] == SLOT_DONE;
        int can_produce = !eof && p.produced - committed < n_batches;
        if (!head_done && !can_produce) {
            while (p.state[head] != SLOT_DONE)
                pthread_cond_wait(&p.work_done, &p.mu);
            head_done = 1;
        }
        pthread_mutex_unlock(&p.mu);

        if (head_done) {
            result = ops->commit(ops->ctx, batches[head]);
            pthread_mutex_lock(&p.mu);
            p.state[head] = SLOT_FREE;
            pthread_mutex_unlock(&p.mu);
            committed++;
            continue;
        }
        int slot = (int)(p.produced % n_batches);
        int rc = ops->produce(ops->ctx, batches[slot]);
        if (rc < 0) {
            result = rc;
        } else if (rc == 0) {
            eof = 1;
        } else {
            pthread_mutex_lock(&p.mu);
            p.state[slot] = SLOT_QUEUED;
            p.produced++;
            pthread_cond_signal(&p.work_ready);
            pthread_mutex_unlock(&p.mu);
        }
    }

    /* Let workers finish what they hold (their batches are then dropped). */
    pthread_mutex_lock(&p.mu);
    p.stopping = 1;
    if (result)
        p.next_to_work = p.produced;
    pthread_cond_broadcast(&p.work_ready);
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);

    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.work_ready);
    pthread_cond_destroy(&p.work_done);
    free(tids);
    free(args);
    free(p.state);
    return result;
}
