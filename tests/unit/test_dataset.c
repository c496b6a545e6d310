/* Datasets end to end: dsk_pack_run writes shards, the reader gets every
 * row back, the loader's order is a shuffled partition with an exact
 * cursor, verify catches damage, and the bytes do not depend on threads. */
#include <sys/stat.h>
#include <unistd.h>

#include "bpe/dskt.h"
#include "bpe/formats.h"
#include "core/tempdir.h"
#include "pack/dataset.h"
#include "pack/pack_run.h"
#include "pack/verify.h"
#include "train/batch.h"
#include "test.h"

#define N_DOCS 3000
#define EOT 256u

static char root[64];
static char path_buf[256];
static dsk_tokenizer tok;
static char fingerprint[33];

static const char *in_root(const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", root, name);
    return path_buf;
}

static uint32_t doc_len(int i) { return (uint32_t)((i * 37) % 300); }
static uint32_t doc_token(int i, uint32_t k) { return (uint32_t)((i * 131 + k * 7 + (k * k) % 13) % 256); }
static int doc_split(int i) { return i % 10 == 3 ? DSKT_VAL : i % 10 == 7 ? DSKT_TEST : DSKT_TRAIN; }

/* A byte-level tokenizer (256 bytes + <|endoftext|>) and a stream of documents. */
static void setup(void)
{
    snprintf(root, sizeof root, "/tmp/dsk-test-dataset.%ld", (long)getpid());
    mkdir(root, 0777);
    dsk_err err = {0};
    dsk_tokenizer_init(&tok);
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        dsk_tokenizer_add(&tok, (uint32_t)b, &c, 1, &err);
    }
    dsk_tokenizer_add_special(&tok, EOT, "<|endoftext|>", &err);
    dsk_tokenizer_set_pattern(&tok, dsk_bpe_named_pattern("gpt2"), &err);
    if (dsk_tokenizer_finish(&tok, &err))
        printf("# tokenizer: %s\n", err.msg);
    dsk_tokenizer_fingerprint(&tok, fingerprint);
    FILE *f = fopen(in_root("tokenizer.json"), "wb");
    dsk_bpe_write_json(&tok, f, &err);
    fclose(f);
    f = fopen(in_root("in.dskt"), "wb");
    dskt_writer w;
    dskt_writer_open(&w, f, tok.n_vocab, fingerprint, &err);
    uint32_t t[400];
    for (int i = 0; i < N_DOCS; i++) {
        dskt_record r = {.kind = DSKT_PLAIN, .split = doc_split(i), .tokens = t, .n_tokens = doc_len(i)};
        for (uint32_t k = 0; k < r.n_tokens; k++)
            t[k] = doc_token(i, k);
        dskt_write(&w, &r, &err);
    }
    dskt_writer_close(&w, &err);
    fclose(f);
}

static int pack(const char *dir, int threads, int dict, dsk_manifest *m, dsk_err *err)
{
    char in[256];
    snprintf(in, sizeof in, "%s/in.dskt", root);
    const char *inputs[] = {in};
    char tj[256];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", root);
    dsk_pack_run_opts o = {.dir = dir, .tokenizer = &tok, .tokenizer_path = tj,
                           .pack = {.mode = DSK_PACK_CONCAT, .row_len = 65, .eot = EOT},
                           .shard_size = 64 << 10, .zstd_level = 3, .dict = dict, .dict_sample = 64 << 10,
                           .threads = threads, .command = "test", .quiet = 1};
    return dsk_pack_run(&o, inputs, 1, m, err);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = calloc(1, 1 << 16);
    size_t n = fread(b, 1, (1 << 16) - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

TEST(pack_is_the_same_for_any_thread_count)
{
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/j1", root);
    snprintf(b, sizeof b, "%s/j3", root);
    dsk_manifest m1, m3;
    dsk_err err = {0};
    CHECK(pack(a, 1, 1, &m1, &err) == 0);
    CHECK(pack(b, 3, 1, &m3, &err) == 0);
    CHECK(m1.n_shards > 2 && m1.dict_bytes > 0);
    char *s1 = slurp(in_root("j1/MD5SUMS")), *s3 = slurp(in_root("j3/MD5SUMS"));
    CHECK(s1 && s3 && strcmp(s1, s3) == 0);
    free(s1), free(s3);
    CHECK(access(in_root("j1.tmp"), F_OK) != 0);
    dsk_manifest_free(&m1), dsk_manifest_free(&m3);
    dsk_manifest again;
    CHECK(pack(a, 1, 1, &again, &err) == EX_CANTCREAT);  /* exists, no --force */
    dsk_manifest_free(&again);
}

TEST(every_row_reads_back)
{
    for (int dict = 0; dict < 2; dict++) {
        char dir[128];
        snprintf(dir, sizeof dir, "%s/read%d", root, dict);
        dsk_manifest m;
        dsk_err err = {0};
        CHECK(pack(dir, 2, dict, &m, &err) == 0);
        dsk_manifest_free(&m);
        dsk_dataset ds;
        CHECK(dsk_dataset_open(&ds, dir, &err) == 0);
        CHECK((ds.m.dict_bytes > 0) == dict);
        CHECK(dsk_dataset_check_tokenizer(&ds, fingerprint, tok.n_vocab, &err) == 0);
        CHECK(dsk_dataset_check_tokenizer(&ds, "00000000000000000000000000000000", tok.n_vocab, &err) == EX_DATAERR);
        dsk_dataset_reader r;
        dsk_dataset_reader_init(&r, &ds);
        dsk_row row = {0};
        for (int split = 0; split < DSK_SPLITS; split++) {
            /* Walk the expected stream (EOT doc EOT doc ...) alongside the rows. */
            int doc = -1;
            uint32_t k = 0, at_eot = 0;
            int same = 1;
            uint64_t pad = 0;
            for (uint64_t i = 0; i < ds.m.rows[split]; i++) {
                CHECK(dsk_dataset_read(&r, split, i, &row, &err) == 0);
                for (uint32_t j = 0; j < row.n_tokens; j++) {
                    while (!at_eot && (doc < 0 || k == doc_len(doc))) {  /* the next document of this split */
                        do
                            doc++;
                        while (doc < N_DOCS && doc_split(doc) != split);
                        k = 0;
                        at_eot = 1;
                    }
                    if (doc >= N_DOCS) {
                        pad++;
                        same &= row.tokens[j] == EOT;
                    } else if (at_eot) {
                        same &= row.tokens[j] == EOT;
                        at_eot = 0;
                    } else {
                        same &= row.tokens[j] == doc_token(doc, k++);
                    }
                }
            }
            CHECK(same);
            CHECK(pad == ds.m.stats[split].padding && pad < 65);
        }
        CHECK(dsk_dataset_read(&r, 0, ds.m.rows[0], &row, &err) == EX_USAGE);
        dsk_row_free(&row);
        dsk_dataset_reader_free(&r);
        dsk_dataset_close(&ds);
    }
}

TEST(permutation_is_a_bijection)
{
    static const uint64_t sizes[] = {1, 2, 3, 10, 1000, 4097};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint64_t n = sizes[s];
        uint8_t *seen = calloc(n, 1);
        int ok = 1;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t j = dsk_permute(i, n, 42, 7);
            ok &= j < n && !seen[j];
            if (j < n)
                seen[j] = 1;
        }
        CHECK(ok);
        free(seen);
    }
    int moved = 0, differs = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        moved += dsk_permute(i, 1000, 1, 0) != i;
        differs += dsk_permute(i, 1000, 1, 0) != dsk_permute(i, 1000, 1, 1);
    }
    CHECK(moved > 900 && differs > 900);  /* shuffled, and differently each epoch */
}

TEST(loader_partitions_and_resumes)
{
    dsk_dataset ds;
    dsk_err err = {0};
    CHECK(dsk_dataset_open(&ds, in_root("read1"), &err) == 0);
    uint64_t n = ds.m.rows[0];
    uint8_t *seen = calloc(n, 1);
    dsk_row row = {0};
    uint64_t idx;
    int disjoint = 1;
    for (unsigned rank = 0; rank < 3; rank++) {
        dsk_loader_opts o = {.split = 0, .shuffle = 1, .seed = 9, .rank = rank, .world = 3, .prefetch = 8, .threads = 2};
        dsk_loader *l;
        CHECK(dsk_loader_open(&l, &ds, &o, NULL, &err) == 0);
        CHECK(dsk_loader_epoch_rows(l) == n / 3);
        for (uint64_t i = 0; i < n / 3; i++) {
            CHECK(dsk_loader_next(l, &row, &idx, &err) == 0);
            disjoint &= idx < n && !seen[idx];
            seen[idx] = 1;
        }
        dsk_data_cursor c = dsk_loader_cursor(l);
        CHECK(c.epoch == 1 && c.pos == 0);
        dsk_loader_close(l);
    }
    CHECK(disjoint);
    /* Prefetched and synchronous loaders agree; a loader opened at a saved cursor continues exactly. */
    dsk_loader_opts sync = {.split = 0, .shuffle = 1, .seed = 5}, pre = sync;
    pre.prefetch = 16, pre.threads = 3;
    dsk_loader *a, *b;
    CHECK(dsk_loader_open(&a, &ds, &sync, NULL, &err) == 0);
    CHECK(dsk_loader_open(&b, &ds, &pre, NULL, &err) == 0);
    uint64_t *order = calloc(2 * n + 10, sizeof *order);
    int agree = 1;
    dsk_row row2 = {0};
    for (uint64_t i = 0; i < n + n / 2; i++) {  /* across an epoch boundary */
        uint64_t ib;
        CHECK(dsk_loader_next(a, &row, &order[i], &err) == 0);
        CHECK(dsk_loader_next(b, &row2, &ib, &err) == 0);
        agree &= order[i] == ib && memcmp(row.tokens, row2.tokens, row.n_tokens * 4) == 0;
    }
    CHECK(agree);
    dsk_loader_close(b);
    dsk_data_cursor at = {0, 0};
    for (uint64_t i = 0; i < 100; i++)
        dsk_loader_next(a, &row, &idx, &err);
    at = dsk_loader_cursor(a);
    uint64_t want[50];
    for (int i = 0; i < 50; i++)
        dsk_loader_next(a, &row, &want[i], &err);
    dsk_loader_close(a);
    CHECK(at.epoch == 1);
    CHECK(dsk_loader_open(&b, &ds, &pre, &at, &err) == 0);
    int resumed = 1;
    for (int i = 0; i < 50; i++) {
        CHECK(dsk_loader_next(b, &row, &idx, &err) == 0);
        resumed &= idx == want[i];
    }
    CHECK(resumed);
    dsk_loader_close(b);
    dsk_loader_opts bad = {.split = 0, .rank = 3, .world = 3};
    CHECK(dsk_loader_open(&b, &ds, &bad, NULL, &err) == EX_USAGE);
    free(order);
    free(seen);
    dsk_row_free(&row);
    dsk_row_free(&row2);
    dsk_dataset_close(&ds);
}

TEST(verify_catches_damage)
{
    dsk_verify_report rep;
    dsk_err err = {0};
    CHECK(dsk_dataset_verify(in_root("read1"), &rep, &err) == 0);
    CHECK(rep.rows > 0 && rep.files >= 4);
    /* one flipped byte in a shard */
    FILE *f = fopen(in_root("read1/shard-00001.mdb"), "r+b");
    CHECK(f != NULL);
    fseek(f, 9000, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 9000, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    CHECK(dsk_dataset_verify(in_root("read1"), &rep, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "MD5 mismatch") != NULL);
    /* no MD5SUMS: incomplete */
    unlink(in_root("read0/MD5SUMS"));
    CHECK(dsk_dataset_verify(in_root("read0"), &rep, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "incomplete") != NULL);
}

TEST(manifest_rejects_lies)
{
    char *text = slurp(in_root("j1/MANIFEST"));
    dsk_manifest m;
    dsk_err err = {0};
    CHECK(text && dsk_manifest_parse(&m, text, strlen(text), "M", &err) == 0);
    dsk_manifest_free(&m);
    char *p = strstr(text, "shard-00000.mdb");
    memcpy(p, "../../etc/pass", 14);  /* a path outside the directory */
    CHECK(dsk_manifest_parse(&m, text, strlen(text), "M", &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "shard-NNNNN.mdb") != NULL);
    free(text);
    text = slurp(in_root("j1/MANIFEST"));
    p = strstr(text, "\"seq_len\": 64");
    p[12] = '5';  /* seq_len 65 no longer fits row_tokens 65 */
    CHECK(dsk_manifest_parse(&m, text, strlen(text), "M", &err) == EX_DATAERR);
    free(text);
    CHECK(dsk_manifest_parse(&m, "{", 1, "M", &err) == EX_DATAERR);
}

static void teardown(void)
{
    static const char *const dirs[] = {"j1", "j3", "read0", "read1"};
    for (size_t i = 0; i < 4; i++)
        dsk_remove_flat_dir(in_root(dirs[i]));
    dsk_remove_flat_dir(root);
    dsk_tokenizer_free(&tok);
}

/* A row as batch rows: whole, and in windows (dsk-eval's rows longer than
 * the model): positions restart at documents and at the window's start,
 * and the window past the row's end is padding. */
TEST(batch_rows_and_windows)
{
    uint32_t tokens[10] = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, boundaries[2] = {0, 3};
    uint8_t mask[10] = {1, 1, 1, 1, 0, 1, 1, 1, 1, 1};
    dsk_row row = {.tokens = tokens, .mask = mask, .boundaries = boundaries, .n_tokens = 10, .n_boundaries = 2,
                   .flags = DSK_ROW_MASK | DSK_ROW_BOUNDARIES};
    int32_t ids[4], tgt[4], pos[4];
    float w[4];
    dsk_batch_fill_row(ids, tgt, pos, w, 4, &row, 1);
    CHECK(ids[0] == 10 && ids[3] == 13 && tgt[0] == 11 && tgt[3] == 14);
    CHECK(pos[0] == 0 && pos[2] == 2 && pos[3] == 0);   /* the second document from token 3 */
    CHECK(w[0] == 1 && w[3] == 0);                      /* the mask of the target */
    dsk_batch_fill_row(ids, tgt, pos, w, 4, &row, 0);
    CHECK(pos[3] == 3);                                 /* no document masks: the row's positions */
    dsk_batch_fill_window(ids, tgt, pos, w, 4, &row, 4, 1);
    /* Document 2 began at token 3, before the window: seen from the window's start. */
    CHECK(ids[0] == 14 && tgt[3] == 18 && pos[0] == 0 && pos[3] == 3);
    CHECK(w[0] == 1 && w[3] == 1);
    dsk_batch_fill_window(ids, tgt, pos, w, 4, &row, 8, 1);   /* one target left (19), then padding */
    CHECK(ids[0] == 18 && tgt[0] == 19 && pos[0] == 0 && w[0] == 1);
    CHECK(tgt[1] == -1 && w[1] == 0 && tgt[3] == -1 && w[3] == 0);
}

int main(void)
{
    static const test_case cases[] = {T(pack_is_the_same_for_any_thread_count), T(every_row_reads_back),
                                      T(permutation_is_a_bijection), T(loader_partitions_and_resumes),
                                      T(verify_catches_damage), T(manifest_rejects_lies),
                                      T(batch_rows_and_windows)};
    setup();
    int rc = run_tests(cases, sizeof cases / sizeof cases[0]);
    teardown();
    return rc;
}
