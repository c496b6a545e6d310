/* pack_read: random-row reading from a dsk dataset against the same rows in
 * a flat memory-mapped token file (the nanoGPT / llm.c layout), for
 * tests/bench/pack_bench.sh.
 *
 * Usage: pack_read DIR [FLAT] [--rows N] [--runs N] [--seed N]
 *
 * Writes FLAT (default DIR.flat): every train row back to back, row_tokens
 * each, at 2 bytes a token (4 when the vocab is over 65536), and maps it.
 * Then, over the same seeded random order of N rows (dsk_permute), times
 * (median of --runs) nanoseconds a row for:
 *   flat     the mapped row widened into a uint32 buffer (what a training
 *            loop needs)
 *   raw      dsk_dataset_raw: the LMDB lookup alone, no decompression
 *   read     dsk_dataset_read on the calling thread (lookup + zstd + checks)
 *   loader   dsk_loader_next, shuffled, prefetch 64, with 1 decoding thread
 *            and with nproc-1 when that is over 1 (its own random order)
 * Both files are in the page cache when timed: the flat file is touched
 * once after it is written, and every shard page was read while writing it.
 * Prints "key value" lines. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/progress.h"
#include "pack/dataset.h"

static void die(const char *what, const dsk_err *err)
{
    fprintf(stderr, "pack_read: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

/* Keeps the compiler from dropping a row nobody reads. */
static inline void consume(const void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct bench {
    dsk_dataset ds;
    uint32_t L, width;
    uint64_t n_rows, n_sample;
    const uint8_t *flat;
    uint64_t *order;
    uint64_t seed;
} bench;

/* One timed pass of mode over the sampled rows: seconds and a checksum of
 * each row's first and last token (the same for flat and read). */
static double pass_flat(const bench *b, uint64_t *sum)
{
    uint32_t *buf = dsk_xmalloc((size_t)b->L * sizeof *buf);
    uint64_t s = 0;
    double t0 = dsk_now();
    for (uint64_t i = 0; i < b->n_sample; i++) {
        if (b->width == 2) {
            const uint16_t *p = (const uint16_t *)b->flat + b->order[i] * b->L;
            for (uint32_t k = 0; k < b->L; k++)
                buf[k] = p[k];
        } else {
            memcpy(buf, (const uint32_t *)b->flat + b->order[i] * b->L, (size_t)b->L * 4);
        }
        consume(buf);
        s += buf[0] + buf[b->L - 1];
    }
    double t = dsk_now() - t0;
    free(buf);
    *sum = s;
    return t;
}

static double pass_read(const bench *b, int raw_only, uint64_t *sum)
{
    dsk_dataset_reader r;
    dsk_dataset_reader_init(&r, &b->ds);
    dsk_row row = {0};
    dsk_err err = {0};
    uint64_t s = 0;
    double t0 = dsk_now();
    for (uint64_t i = 0; i < b->n_sample; i++) {
        if (raw_only) {
            const void *v;
            size_t len;
            if (dsk_dataset_raw(&r, 0, b->order[i], &v, &len, &err))
                die("dsk_dataset_raw", &err);
            consume(v);
            s += len;
        } else {
            if (dsk_dataset_read(&r, 0, b->order[i], &row, &err))
                die("dsk_dataset_read", &err);
            consume(row.tokens);
            s += row.tokens[0] + row.tokens[row.n_tokens - 1];
        }
    }
    double t = dsk_now() - t0;
    dsk_row_free(&row);
    dsk_dataset_reader_free(&r);
    *sum = s;
    return t;
}

static double pass_loader(const bench *b, unsigned threads, unsigned prefetch)
{
    dsk_loader_opts o = {.split = 0, .shuffle = 1, .seed = b->seed, .prefetch = prefetch, .threads = threads};
    dsk_loader *l;
    dsk_err err = {0};
    if (dsk_loader_open(&l, &b->ds, &o, NULL, &err))
        die("dsk_loader_open", &err);
    dsk_row row = {0};
    uint64_t index;
    for (unsigned i = 0; i < prefetch; i++)  /* let the ring fill once, untimed */
        if (dsk_loader_next(l, &row, &index, &err))
            die("dsk_loader_next", &err);
    double t0 = dsk_now();
    for (uint64_t i = 0; i < b->n_sample; i++) {
        if (dsk_loader_next(l, &row, &index, &err))
            die("dsk_loader_next", &err);
        consume(row.tokens);
    }
    double t = dsk_now() - t0;
    dsk_row_free(&row);
    dsk_loader_close(l);
    return t;
}

static uint64_t parse_u64(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !*s || *end) {
        fprintf(stderr, "pack_read: %s: '%s' is not a number\n", opt, s);
        exit(64);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *flat_path = NULL;
    uint64_t want = 50000, runs = 3, seed = 1234;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
            want = parse_u64("--rows", argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = parse_u64("--runs", argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = parse_u64("--seed", argv[++i]);
        else if (argv[i][0] == '-' || (dir && flat_path)) {
            fprintf(stderr, "Usage: pack_read DIR [FLAT] [--rows N] [--runs N] [--seed N]\n");
            return 64;
        } else if (!dir)
            dir = argv[i];
        else
            flat_path = argv[i];
    }
    if (!dir || !want || !runs || runs > 99) {
        fprintf(stderr, "Usage: pack_read DIR [FLAT] [--rows N] [--runs N (1-99)] [--seed N]\n");
        return 64;
    }
    char *flat_default = NULL;
    if (!flat_path) {
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        flat_default = dsk_xmalloc(n + 8);
        memcpy(flat_default, dir, n);
        strcpy(flat_default + n, ".flat");
        flat_path = flat_default;
    }

    bench b = {.seed = seed};
    dsk_err err = {0};
    if (dsk_dataset_open(&b.ds, dir, &err))
        die(dir, &err);
    const dsk_manifest *m = &b.ds.m;
    if (m->kind != DSK_KIND_PRETRAIN) {
        fprintf(stderr, "pack_read: %s: a %s dataset; this bench reads pretraining rows\n", dir, dsk_kind_name(m->kind));
        return 65;
    }
    b.L = m->row_tokens;
    b.width = m->vocab_size <= 65536 ? 2 : 4;
    b.n_rows = m->rows[0];
    if (!b.n_rows) {
        fprintf(stderr, "pack_read: %s: no train rows\n", dir);
        return 65;
    }

    /* (a) the flat file: every train row in order, read through the dataset
     * (which also brings every shard page into the page cache). */
    FILE *f = fopen(flat_path, "wb");
    if (!f)
        die(flat_path, NULL);
    dsk_dataset_reader r;
    dsk_dataset_reader_init(&r, &b.ds);
    dsk_row row = {0};
    uint8_t *out = dsk_xmalloc((size_t)b.L * b.width);
    uint64_t value_bytes = 0;  /* the stored values alone: what LMDB's pages add is the rest */
    double seq_secs = 0;
    for (uint64_t i = 0; i < b.n_rows; i++) {
        double t0 = dsk_now();
        if (dsk_dataset_read(&r, 0, i, &row, &err))
            die("dsk_dataset_read", &err);
        seq_secs += dsk_now() - t0;
        const void *v;
        size_t len;
        if (dsk_dataset_raw(&r, 0, i, &v, &len, &err))
            die("dsk_dataset_raw", &err);
        value_bytes += len;
        for (uint32_t k = 0; k < b.L; k++) {
            uint32_t t = row.tokens[k];
            if (b.width == 2)
                out[2 * k] = (uint8_t)t, out[2 * k + 1] = (uint8_t)(t >> 8);
            else
                for (int j = 0; j < 4; j++)
                    out[4 * k + j] = (uint8_t)(t >> (8 * j));
        }
        if (fwrite(out, b.width, b.L, f) != b.L)
            die(flat_path, NULL);
    }
    if (fclose(f) != 0)
        die(flat_path, NULL);
    free(out);
    dsk_row_free(&row);
    dsk_dataset_reader_free(&r);

    int fd = open(flat_path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die(flat_path, NULL);
    uint64_t flat_bytes = (uint64_t)st.st_size;
    if (flat_bytes != b.n_rows * b.L * b.width) {
        fprintf(stderr, "pack_read: %s: %llu bytes, expected %llu\n", flat_path, (unsigned long long)flat_bytes,
                (unsigned long long)(b.n_rows * b.L * b.width));
        return 1;
    }
    b.flat = mmap(NULL, flat_bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (b.flat == MAP_FAILED)
        die("mmap", NULL);
    close(fd);
    volatile uint8_t touch = 0;  /* page it in once: both sides read from the page cache */
    for (uint64_t off = 0; off < flat_bytes; off += 4096)
        touch += b.flat[off];
    (void)touch;

    /* (b) the same random rows for flat, raw and read. */
    b.n_sample = want;
    b.order = dsk_xmalloc(b.n_sample * sizeof *b.order);
    for (uint64_t i = 0; i < b.n_sample; i++)
        b.order[i] = dsk_permute(i % b.n_rows, b.n_rows, seed, i / b.n_rows);

    uint64_t dataset_bytes = 0, all_tokens = 0;
    for (size_t i = 0; i < m->n_shards; i++) {
        size_t n = strlen(dir) + strlen(m->shards[i].file) + 2;
        char *path = dsk_xmalloc(n);
        snprintf(path, n, "%s/%s", dir, m->shards[i].file);
        if (stat(path, &st) != 0)
            die(path, NULL);
        dataset_bytes += (uint64_t)st.st_size;
        free(path);
    }
    for (int s = 0; s < DSK_SPLITS; s++)
        all_tokens += m->rows[s] * m->row_tokens;

    double t_flat[99], t_raw[99], t_read[99], t_l1[99], t_ln[99];
    uint64_t sum_flat = 0, sum_read = 0, sum_raw = 0;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned many = nproc > 2 ? (unsigned)(nproc - 1) : 0;
    for (uint64_t k = 0; k < runs; k++) {  /* interleaved, so noise hits every mode alike */
        t_flat[k] = pass_flat(&b, &sum_flat) / (double)b.n_sample * 1e9;
        t_raw[k] = pass_read(&b, 1, &sum_raw) / (double)b.n_sample * 1e9;
        t_read[k] = pass_read(&b, 0, &sum_read) / (double)b.n_sample * 1e9;
        t_l1[k] = pass_loader(&b, 1, 64) / (double)b.n_sample * 1e9;
        if (many)
            t_ln[k] = pass_loader(&b, many, 64) / (double)b.n_sample * 1e9;
    }
    if (sum_flat != sum_read) {
        fprintf(stderr, "pack_read: the flat file and the dataset disagree on the sampled rows\n");
        return 1;
    }

    printf("dataset %s\n", dir);
    printf("flat_file %s\n", flat_path);
    printf("row_tokens %u\n", b.L);
    printf("token_bytes_flat %u\n", b.width);
    printf("token_bytes_dataset %u\n", m->token_bytes);
    printf("zstd_level %d\n", m->zstd_level);
    printf("dict_bytes %u\n", m->dict_bytes);
    printf("train_rows %llu\n", (unsigned long long)b.n_rows);
    printf("sampled_rows %llu\n", (unsigned long long)b.n_sample);
    printf("runs %llu\n", (unsigned long long)runs);
    printf("page_cache warm\n");
    printf("flat_bytes %llu\n", (unsigned long long)flat_bytes);
    printf("dataset_bytes %llu\n", (unsigned long long)dataset_bytes);
    printf("flat_bytes_per_token %.4f\n", (double)flat_bytes / (double)(b.n_rows * b.L));
    printf("dataset_bytes_per_token %.4f\n", (double)dataset_bytes / (double)all_tokens);
    printf("train_value_bytes_per_token %.4f\n", (double)value_bytes / (double)(b.n_rows * b.L));
    printf("dataset_smaller_pct %.2f\n",
           100.0 * (1.0 - ((double)dataset_bytes / (double)all_tokens) / ((double)flat_bytes / (double)(b.n_rows * b.L))));
    printf("sequential_read_ns_per_row %.1f\n", seq_secs / (double)b.n_rows * 1e9);
    printf("flat_ns_per_row %.1f\n", median(t_flat, (int)runs));
    printf("raw_ns_per_row %.1f\n", median(t_raw, (int)runs));
    printf("read_ns_per_row %.1f\n", median(t_read, (int)runs));
    printf("loader1_ns_per_row %.1f\n", median(t_l1, (int)runs));
    if (many) {
        printf("loaderN_threads %u\n", many);
        printf("loaderN_ns_per_row %.1f\n", median(t_ln, (int)runs));
    }
    munmap((void *)b.flat, flat_bytes);
    free(b.order);
    free(flat_default);
    dsk_dataset_close(&b.ds);
    return 0;
}
