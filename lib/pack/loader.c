/* Ordered, shuffled, partitioned, prefetched reading of one split. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pack/dataset.h"

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t dsk_permute(uint64_t i, uint64_t n, uint64_t seed, uint64_t epoch)
{
    if (n <= 1)
        return 0;
    unsigned bits = 64 - (unsigned)__builtin_clzll(n - 1);
    unsigned half = (bits + 1) / 2;
    uint64_t mask = (1ull << half) - 1;
    uint64_t key = splitmix64(seed ^ splitmix64(epoch + 0x51ED270B27A9ull));
    uint64_t x = i;
    do {  /* cycle-walk: the domain is at most 4n, so a few rounds at most on average */
        uint64_t left = x >> half, right = x & mask;
        for (int round = 0; round < 4; round++) {
            uint64_t f = splitmix64(right ^ (key + (uint64_t)round * 0x9E3779B97F4A7C15ull)) & mask;
            uint64_t t = right;
            right = left ^ f;
            left = t;
        }
        x = left << half | right;
    } while (x >= n);
    return x;
}

typedef struct slot {
    dsk_row row;
    uint64_t seq, index;
    int ready, rc;
    dsk_err err;
} slot;

struct dsk_loader {
    const dsk_dataset *ds;
    dsk_loader_opts o;
    uint64_t n, per_epoch;
    dsk_data_cursor start;
    uint64_t consumed;       /* rows returned since start */
    dsk_dataset_reader sync_reader;
    /* prefetch */
    slot *slots;
    unsigned ring;
    uint64_t next_seq;       /* next row a worker claims */
    int stop;
    int consumer_waiting;    /* wake-ups only for someone asleep: a row moves */
    unsigned workers_waiting; /* through the ring without a signal otherwise */
    pthread_t *threads;
    unsigned n_threads;
    pthread_mutex_t mu;
    pthread_cond_t ready_cv, space_cv;
};

/* The split index of the row at sequence number seq from the start. */
static uint64_t row_at(const dsk_loader *l, uint64_t seq)
{
    uint64_t abs = l->start.pos + seq;
    uint64_t epoch = l->start.epoch + abs / l->per_epoch, pos = abs % l->per_epoch;
    uint64_t k = pos * l->o.world + l->o.rank;
    return l->o.shuffle ? dsk_permute(k, l->n, l->o.seed, epoch) : k;
}

static void *prefetch_main(void *arg)
{
    dsk_loader *l = arg;
    dsk_dataset_reader reader;
    dsk_dataset_reader_init(&reader, l->ds);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_seq >= l->consumed + l->ring) {
            l->workers_waiting++;
            pthread_cond_wait(&l->space_cv, &l->mu);
            l->workers_waiting--;
        }
        if (l->stop)
            break;
        uint64_t seq = l->next_seq++;
        pthread_mutex_unlock(&l->mu);
        slot *s = &l->slots[seq % l->ring];
        uint64_t index = row_at(l, seq);
        dsk_err err = {0};
        int rc = dsk_dataset_read(&reader, l->o.split, index, &s->row, &err);
        pthread_mutex_lock(&l->mu);
        s->seq = seq;
        s->index = index;
        s->rc = rc;
        if (rc)
            s->err = err;
        s->ready = 1;
        if (l->consumer_waiting)
            pthread_cond_signal(&l->ready_cv);
        /* A row that failed ends the run where the consumer meets it;
         * reading on (a damaged shard, a fault) serves nothing. */
        if (rc)
            break;
    }
    pthread_mutex_unlock(&l->mu);
    dsk_dataset_reader_free(&reader);
    return NULL;
}

int dsk_loader_open(dsk_loader **out, const dsk_dataset *ds, const dsk_loader_opts *o, const dsk_data_cursor *at,
                    dsk_err *err)
{
    *out = NULL;
    dsk_loader_opts opts = *o;
    if (!opts.world)
        opts.world = 1;
    if (opts.split < 0 || opts.split >= DSK_SPLITS)
        return dsk_fail(err, EX_USAGE, "no split %d", opts.split);
    if (opts.rank >= opts.world)
        return dsk_fail(err, EX_USAGE, "rank %u is not below the world size %u", opts.rank, opts.world);
    uint64_t n = ds->m.rows[opts.split];
    if (n < opts.world)
        return dsk_fail(err, EX_DATAERR, "%s: %llu %s rows cannot be shared by %u ranks", ds->dir,
                        (unsigned long long)n, dsk_split_names[opts.split], opts.world);
    dsk_loader *l = dsk_xcalloc(1, sizeof *l);
    l->ds = ds;
    l->o = opts;
    l->n = n;
    l->per_epoch = n / opts.world;
    if (at) {
        l->start = *at;
        if (l->start.pos >= l->per_epoch) {
            int rc = dsk_fail(err, EX_DATAERR, "cursor position %llu is past the epoch's %llu rows",
                              (unsigned long long)at->pos, (unsigned long long)l->per_epoch);
            free(l);
            return rc;
        }
    }
    dsk_dataset_reader_init(&l->sync_reader, ds);
    if (opts.prefetch) {
        l->ring = opts.prefetch;
        l->slots = dsk_xcalloc(l->ring, sizeof *l->slots);
        l->n_threads = opts.threads ? opts.threads : 1;
        l->threads = dsk_xcalloc(l->n_threads, sizeof *l->threads);
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->ready_cv, NULL);
        pthread_cond_init(&l->space_cv, NULL);
        for (unsigned t = 0; t < l->n_threads; t++)
            if (pthread_create(&l->threads[t], NULL, prefetch_main, l) != 0)
                dsk_die(EX_OSERR, "cannot start a prefetch thread");
    }
    *out = l;
    return 0;
}

int dsk_loader_next(dsk_loader *l, dsk_row *row, uint64_t *index, dsk_err *err)
{
    if (!l->ring) {
        uint64_t i = row_at(l, l->consumed);
        int rc = dsk_dataset_read(&l->sync_reader, l->o.split, i, row, err);
        if (!rc) {
            l->consumed++;
            if (index)
                *index = i;
        }
        return rc;
    }
    pthread_mutex_lock(&l->mu);
    slot *s = &l->slots[l->consumed % l->ring];
    while (!s->ready || s->seq != l->consumed) {
        l->consumer_waiting = 1;
        pthread_cond_wait(&l->ready_cv, &l->mu);
        l->consumer_waiting = 0;
    }
    int rc = s->rc;
    if (rc) {
        *err = s->err;
    } else {
        dsk_row t = *row;  /* swap buffers: no copy */
        *row = s->row;
        s->row = t;
        if (index)
            *index = s->index;
        s->ready = 0;
        l->consumed++;
        if (l->workers_waiting)  /* one slot freed: one worker can use it */
            pthread_cond_signal(&l->space_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

dsk_data_cursor dsk_loader_cursor(const dsk_loader *l)
{
    uint64_t abs = l->start.pos + l->consumed;
    return (dsk_data_cursor){l->start.epoch + abs / l->per_epoch, abs % l->per_epoch};
}

uint64_t dsk_loader_epoch_rows(const dsk_loader *l) { return l->per_epoch; }

void dsk_loader_close(dsk_loader *l)
{
    if (!l)
        return;
    if (l->ring) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->space_cv);
        pthread_mutex_unlock(&l->mu);
        for (unsigned t = 0; t < l->n_threads; t++)
            pthread_join(l->threads[t], NULL);
        for (unsigned i = 0; i < l->ring; i++)
            dsk_row_free(&l->slots[i].row);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->ready_cv);
        pthread_cond_destroy(&l->space_cv);
        free(l->slots);
        free(l->threads);
    }
    dsk_dataset_reader_free(&l->sync_reader);
    free(l);
}
