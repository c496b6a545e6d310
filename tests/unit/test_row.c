#include <zdict.h>
#include <zstd.h>

#include "pack/row.h"
#include "test.h"

static dsk_row sample(uint32_t n, unsigned flags, uint32_t max_token)
{
    dsk_row r = {0};
    r.n_tokens = n;
    r.flags = flags;
    r.tokens = malloc((n + 1) * sizeof *r.tokens);
    r.mask = malloc(n + 1);
    r.boundaries = malloc((n + 1) * sizeof *r.boundaries);
    unsigned state = 17;
    for (uint32_t i = 0; i < n; i++) {
        state = state * 1103515245u + 12345u;
        r.tokens[i] = (state >> 8) % max_token;
        r.mask[i] = (uint8_t)((i / 5) % 2);
    }
    for (uint32_t i = 0; i < n; i += 97)
        r.boundaries[r.n_boundaries++] = i;
    if (flags & DSK_ROW_PAIR)
        r.split = n / 3;
    return r;
}

TEST(round_trip_every_kind)
{
    static const unsigned kinds[] = {0, DSK_ROW_MASK, DSK_ROW_BOUNDARIES, DSK_ROW_MASK | DSK_ROW_BOUNDARIES,
                                     DSK_ROW_PAIR | DSK_ROW_MASK};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (unsigned width = 2, level = 0; width <= 4; level = !level, width += 2 * !level) {
            dsk_row in = sample(1025, kinds[k], width == 2 ? 65536 : 200000), out = {0};
            dsk_buf v = {0};
            dsk_row_codec codec = {.level = (int)level * 3};  /* 0: stored raw */
            dsk_err err = {0};
            CHECK(dsk_row_encode(&codec, &in, width, &v, &err) == 0);
            CHECK(dsk_row_decode(&codec, v.data, v.len, 200000, &out, &err) == 0);
            CHECK(out.n_tokens == in.n_tokens && memcmp(out.tokens, in.tokens, in.n_tokens * 4) == 0);
            CHECK(out.flags == in.flags);
            CHECK(((unsigned char)v.data[1] & DSK_ROW_RAW) == (level ? 0 : DSK_ROW_RAW));
            if (!level)
                CHECK(v.len == DSK_ROW_HEADER_BYTES + in.n_tokens * width +
                                   ((in.flags & DSK_ROW_MASK) ? (in.n_tokens + 7) / 8 : 0) +
                                   ((in.flags & DSK_ROW_BOUNDARIES) ? in.n_boundaries * 4 : 0));
            if (in.flags & DSK_ROW_MASK)
                CHECK(memcmp(out.mask, in.mask, in.n_tokens) == 0);
            if (in.flags & DSK_ROW_BOUNDARIES)
                CHECK(out.n_boundaries == in.n_boundaries &&
                      memcmp(out.boundaries, in.boundaries, in.n_boundaries * 4) == 0);
            CHECK(out.split == ((in.flags & DSK_ROW_PAIR) ? in.split : 0));
            dsk_row_free(&out);
            free(in.tokens), free(in.mask), free(in.boundaries);
            dsk_buf_free(&v);
            dsk_row_codec_free(&codec);
        }
    }
}

TEST(damaged_rows_are_errors)
{
    dsk_row in = sample(300, DSK_ROW_BOUNDARIES, 1000), out = {0};
    dsk_buf v = {0};
    dsk_row_codec c = {.level = 3};
    dsk_err err = {0};
    CHECK(dsk_row_encode(&c, &in, 2, &v, &err) == 0);
    CHECK(dsk_row_decode(&c, v.data, v.len, 500, &out, &err) == EX_DATAERR);  /* tokens >= vocab */
    CHECK(strstr(err.msg, "not below the vocab size") != NULL);
    CHECK(dsk_row_decode(&c, v.data, 10, 1000, &out, &err) == EX_DATAERR);   /* short header */
    CHECK(dsk_row_decode(&c, v.data, v.len - 3, 1000, &out, &err) == EX_DATAERR);  /* cut frame */
    v.data[4] ^= 1;  /* token count no longer matches the payload */
    CHECK(dsk_row_decode(&c, v.data, v.len, 1000, &out, &err) == EX_DATAERR);
    v.data[4] ^= 1;
    v.data[1] |= DSK_ROW_DICT;  /* claims a dictionary the reader lacks */
    CHECK(dsk_row_decode(&c, v.data, v.len, 1000, &out, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "dictionary") != NULL);
    v.data[1] &= ~DSK_ROW_DICT;
    v.data[0] = 9;   /* unknown version */
    CHECK(dsk_row_decode(&c, v.data, v.len, 1000, &out, &err) == EX_DATAERR);
    dsk_row wide = sample(4, 0, 10);
    wide.tokens[0] = 70000;
    CHECK(dsk_row_encode(&c, &wide, 2, &v, &err) == EX_DATAERR);  /* does not fit 2 bytes */
    free(wide.tokens), free(wide.mask), free(wide.boundaries);
    free(in.tokens), free(in.mask), free(in.boundaries);
    dsk_row_free(&out);
    dsk_buf_free(&v);
    dsk_row_codec_free(&c);
}

/* A stored (level 0) row is checked as strictly as a compressed one. */
TEST(damaged_raw_rows_are_errors)
{
    dsk_row in = sample(300, DSK_ROW_MASK | DSK_ROW_BOUNDARIES, 1000), out = {0};
    dsk_buf v = {0};
    dsk_row_codec c = {.level = 0};
    dsk_err err = {0};
    CHECK(dsk_row_encode(&c, &in, 2, &v, &err) == 0);
    CHECK(dsk_row_decode(&c, v.data, v.len, 1000, &out, &err) == 0);
    CHECK(memcmp(out.mask, in.mask, 300) == 0 && out.n_boundaries == in.n_boundaries);
    CHECK(dsk_row_decode(&c, v.data, v.len - 1, 1000, &out, &err) == EX_DATAERR);  /* cut payload */
    CHECK(strstr(err.msg, "header says") != NULL);
    dsk_buf_add(&v, "x", 1);  /* a byte too many */
    CHECK(dsk_row_decode(&c, v.data, v.len, 1000, &out, &err) == EX_DATAERR);
    v.len--;
    v.data[1] |= DSK_ROW_DICT;  /* raw and a dictionary cannot both hold */
    CHECK(dsk_row_decode(&c, v.data, v.len, 1000, &out, &err) == EX_DATAERR);
    v.data[1] &= ~DSK_ROW_DICT;
    v.data[1] |= 32;  /* an unknown flag */
    CHECK(dsk_row_decode(&c, v.data, v.len, 1000, &out, &err) == EX_DATAERR);
    v.data[1] &= ~32;
    v.data[DSK_ROW_HEADER_BYTES] = 0xff, v.data[DSK_ROW_HEADER_BYTES + 1] = 0x03;  /* token 1023 */
    CHECK(dsk_row_decode(&c, v.data, v.len, 1000, &out, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "not below the vocab size") != NULL);
    free(in.tokens), free(in.mask), free(in.boundaries);
    dsk_row_free(&out);
    dsk_buf_free(&v);
    dsk_row_codec_free(&c);
}

TEST(rows_compress)
{
    dsk_row in = sample(4097, 0, 64), out = {0};  /* few distinct tokens: compressible */
    dsk_buf v = {0};
    dsk_row_codec c = {.level = 3};
    dsk_err err = {0};
    CHECK(dsk_row_encode(&c, &in, 2, &v, &err) == 0);
    CHECK(v.len < 4097 * 2);
    CHECK(dsk_row_decode(&c, v.data, v.len, 64, &out, &err) == 0);
    CHECK(out.n_tokens == 4097 && out.mask[100] == 1);  /* no mask stored: every token trains */
    free(in.tokens), free(in.mask), free(in.boundaries);
    dsk_row_free(&out);
    dsk_buf_free(&v);
    dsk_row_codec_free(&c);
}

/* Rows that share phrases compress smaller with a dictionary trained on
 * their kin, and decode only with it. */
TEST(dictionary_rows)
{
    enum { ROWS = 400, N = 257 };
    dsk_buf samples = {0}, v = {0};
    size_t sizes[ROWS];
    dsk_err err = {0};
    dsk_row rows[ROWS];
    unsigned state = 5;
    for (int r = 0; r < ROWS; r++) {
        rows[r] = sample(N, 0, 3000);
        for (uint32_t i = 0; i < N; i++) {  /* phrases of 8 tokens from a small set */
            if (i % 8 == 0)
                state = state * 1103515245u + 12345u;
            rows[r].tokens[i] = ((state >> 8) % 50) * 8 + i % 8;
        }
        size_t before = samples.len;
        CHECK(dsk_row_payload(&rows[r], 2, &samples, &err) == 0);
        sizes[r] = samples.len - before;
    }
    char dict[8192];
    size_t dn = ZDICT_trainFromBuffer(dict, sizeof dict, samples.data, sizes, ROWS);
    CHECK(!ZDICT_isError(dn));
    ZSTD_CDict *cd = ZSTD_createCDict(dict, dn, 3);
    ZSTD_DDict *dd = ZSTD_createDDict(dict, dn);
    dsk_row_codec plain = {.level = 3}, with = {.level = 3, .cdict = cd, .ddict = dd};
    dsk_row out = {0};
    size_t plain_bytes = 0, dict_bytes = 0;
    for (int r = 0; r < ROWS; r++) {
        dsk_buf_clear(&v);
        CHECK(dsk_row_encode(&plain, &rows[r], 2, &v, &err) == 0);
        plain_bytes += v.len;
        dsk_buf_clear(&v);
        CHECK(dsk_row_encode(&with, &rows[r], 2, &v, &err) == 0);
        dict_bytes += v.len;
        CHECK(dsk_row_decode(&with, v.data, v.len, 3000, &out, &err) == 0);
        CHECK(out.n_tokens == N && memcmp(out.tokens, rows[r].tokens, N * 4) == 0);
        CHECK(out.flags == 0);
        if (r == 0)
            CHECK(dsk_row_decode(&plain, v.data, v.len, 3000, &out, &err) == EX_DATAERR);
    }
    CHECK(dict_bytes < plain_bytes * 3 / 4);
    for (int r = 0; r < ROWS; r++)
        free(rows[r].tokens), free(rows[r].mask), free(rows[r].boundaries);
    ZSTD_freeCDict(cd);
    ZSTD_freeDDict(dd);
    dsk_row_codec_free(&plain);
    dsk_row_codec_free(&with);
    dsk_row_free(&out);
    dsk_buf_free(&v);
    dsk_buf_free(&samples);
}

RUN_TESTS(T(round_trip_every_kind), T(damaged_rows_are_errors), T(damaged_raw_rows_are_errors), T(rows_compress),
          T(dictionary_rows))
