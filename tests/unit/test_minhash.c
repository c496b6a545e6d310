#include "clean/minhash.h"
#include "core/buf.h"
#include "test.h"

/* Two documents of distinct words whose word sets have a known Jaccard
 * similarity; with 1-word shingles the shingle sets are the word sets. */
static void make_pair(int shared, int only_a, int only_b, unsigned salt, dsk_buf *a, dsk_buf *b)
{
    dsk_buf_clear(a);
    dsk_buf_clear(b);
    for (int i = 0; i < shared; i++) {
        dsk_buf_printf(a, "s%ux%d ", salt, i);
        dsk_buf_printf(b, "s%ux%d ", salt, i);
    }
    for (int i = 0; i < only_a; i++)
        dsk_buf_printf(a, "a%ux%d ", salt, i);
    for (int i = 0; i < only_b; i++)
        dsk_buf_printf(b, "b%ux%d ", salt, i);
}

static double estimate(const dsk_minhash *mh, const dsk_buf *a, const dsk_buf *b, int *lsh_hit)
{
    uint32_t sa[14 * 8], sb[14 * 8];
    uint64_t ka[14], kb[14];
    uint64_t *scratch = NULL;
    size_t cap = 0;
    dsk_text_view va = {0}, vb = {0};
    dsk_text_view_build(&va, a->data, a->len);
    dsk_text_view_build(&vb, b->data, b->len);
    dsk_minhash_signature(mh, &va, sa, &scratch, &cap);
    dsk_minhash_signature(mh, &vb, sb, &scratch, &cap);
    dsk_minhash_band_keys(mh, sa, ka);
    dsk_minhash_band_keys(mh, sb, kb);
    *lsh_hit = 0;
    for (int i = 0; i < 14; i++)
        *lsh_hit |= ka[i] == kb[i];
    free(scratch);
    dsk_text_view_free(&va);
    dsk_text_view_free(&vb);
    return dsk_minhash_similarity(mh, sa, sb);
}

TEST(estimates_known_jaccard)
{
    dsk_minhash mh;
    CHECK(dsk_minhash_init(&mh, 1, 14, 8) == 0);
    dsk_buf a = {0}, b = {0};
    /* (shared, only_a, only_b) -> J = shared / (shared + only_a + only_b) */
    static const int cases[][3] = {{160, 20, 20}, {100, 50, 50}, {40, 80, 80}, {200, 0, 0}, {0, 100, 100}};
    static const double want[] = {0.8, 0.5, 0.2, 1.0, 0.0};
    for (size_t c = 0; c < 5; c++) {
        double sum = 0;
        for (unsigned salt = 0; salt < 30; salt++) {
            make_pair(cases[c][0], cases[c][1], cases[c][2], salt, &a, &b);
            int hit;
            double est = estimate(&mh, &a, &b, &hit);
            CHECK_NEAR(est, want[c], 0.2);  /* one signature: 112 hashes */
            sum += est;
        }
        CHECK_NEAR(sum / 30, want[c], 0.03);  /* the mean is unbiased */
    }
    dsk_buf_free(&a);
    dsk_buf_free(&b);
    dsk_minhash_free(&mh);
}

TEST(lsh_bands_find_near_duplicates_only)
{
    dsk_minhash mh;
    dsk_minhash_init(&mh, 1, 14, 8);
    dsk_buf a = {0}, b = {0};
    int near_hits = 0, far_hits = 0;
    for (unsigned salt = 0; salt < 50; salt++) {
        int hit;
        make_pair(180, 10, 10, salt, &a, &b); /* J = 0.9: P(candidate) = 0.9999 */
        estimate(&mh, &a, &b, &hit);
        near_hits += hit;
        make_pair(60, 70, 70, salt, &a, &b);  /* J = 0.3: P(candidate) = 0.0009 */
        estimate(&mh, &a, &b, &hit);
        far_hits += hit;
    }
    CHECK(near_hits >= 49);
    CHECK(far_hits <= 2);
    dsk_buf_free(&a);
    dsk_buf_free(&b);
    dsk_minhash_free(&mh);
}

TEST(shingles_ignore_case_and_punctuation)
{
    dsk_minhash mh;
    dsk_minhash_init(&mh, 5, 14, 8);
    dsk_buf a = {0}, b = {0};
    dsk_buf_adds(&a, "The quick brown fox jumps over the lazy dog, again and again, every single day.");
    dsk_buf_adds(&b, "the Quick brown fox jumps over the lazy dog again and again every single day");
    int hit;
    CHECK(estimate(&mh, &a, &b, &hit) == 1.0);
    CHECK(hit);
    dsk_buf_free(&a);
    dsk_buf_free(&b);
    dsk_minhash_free(&mh);
}

/* The AVX2 minima and the portable loop give the same bits, for a count
 * of functions that is a multiple of 8 and for one that is not (the
 * trailing 7 go through the portable loop).  Where the CPU has no AVX2
 * both runs take the portable loop. */
TEST(simd_and_portable_signatures_agree)
{
    static const int shapes[][3] = {{5, 14, 8}, {3, 3, 5}, {1, 1, 1}};
    dsk_buf a = {0}, b = {0};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        dsk_minhash mh;
        CHECK(dsk_minhash_init(&mh, shapes[k][0], shapes[k][1], shapes[k][2]) == 0);
        size_t nh = (size_t)shapes[k][1] * (size_t)shapes[k][2];
        uint32_t *fast = malloc(nh * sizeof *fast), *plain = malloc(nh * sizeof *plain);
        uint64_t *scratch = NULL;
        size_t cap = 0;
        dsk_text_view v = {0};
        for (unsigned salt = 0; salt < 20; salt++) {
            make_pair(3 + (int)salt * 7, (int)salt, 1, salt, &a, &b);
            dsk_text_view_build(&v, a.data, a.len);
            dsk_minhash_set_simd(1);
            dsk_minhash_signature(&mh, &v, fast, &scratch, &cap);
            dsk_minhash_set_simd(0);
            dsk_minhash_signature(&mh, &v, plain, &scratch, &cap);
            CHECK(memcmp(fast, plain, nh * sizeof *fast) == 0);
            int some_below_max = 0;
            for (size_t i = 0; i < nh; i++)
                some_below_max |= plain[i] != UINT32_MAX;
            CHECK(some_below_max);
        }
        dsk_minhash_set_simd(1);
        free(fast);
        free(plain);
        free(scratch);
        dsk_text_view_free(&v);
        dsk_minhash_free(&mh);
    }
    dsk_buf_free(&a);
    dsk_buf_free(&b);
}

TEST(bad_settings_are_refused)
{
    dsk_minhash mh;
    CHECK(dsk_minhash_init(&mh, 0, 14, 8) == -1);
    CHECK(dsk_minhash_init(&mh, 5, 0, 8) == -1);
    CHECK(dsk_minhash_init(&mh, 5, 14, 33) == -1);
}

RUN_TESTS(T(estimates_known_jaccard), T(lsh_bands_find_near_duplicates_only), T(shingles_ignore_case_and_punctuation),
          T(simd_and_portable_signatures_agree),
          T(bad_settings_are_refused))
