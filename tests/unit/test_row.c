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
        for (unsigned width = 2; width <= 4; width += 2) {
            dsk_row in = sample(1025, kinds[k], width == 2 ? 65536 : 200000), out = {0};
            dsk_buf v = {0}, scratch = {0};
            dsk_err err = {0};
            CHECK(dsk_row_encode(&in, width, 3, NULL, &v, &err) == 0);
            CHECK(dsk_row_decode(v.data, v.len, 200000, NULL, &out, &scratch, &err) == 0);
            CHECK(out.n_tokens == in.n_tokens && memcmp(out.tokens, in.tokens, in.n_tokens * 4) == 0);
            CHECK(out.flags == in.flags);
            if (in.flags & DSK_ROW_MASK)
                CHECK(memcmp(out.mask, in.mask, in.n_tokens) == 0);
            if (in.flags & DSK_ROW_BOUNDARIES)
                CHECK(out.n_boundaries == in.n_boundaries &&
                      memcmp(out.boundaries, in.boundaries, in.n_boundaries * 4) == 0);
            CHECK(out.split == ((in.flags & DSK_ROW_PAIR) ? in.split : 0));
            dsk_row_free(&out);
            free(in.tokens), free(in.mask), free(in.boundaries);
            dsk_buf_free(&v);
            dsk_buf_free(&scratch);
        }
    }
}

TEST(damaged_rows_are_errors)
{
    dsk_row in = sample(300, DSK_ROW_BOUNDARIES, 1000), out = {0};
    dsk_buf v = {0}, scratch = {0};
    dsk_err err = {0};
    CHECK(dsk_row_encode(&in, 2, 3, NULL, &v, &err) == 0);
    CHECK(dsk_row_decode(v.data, v.len, 500, NULL, &out, &scratch, &err) == EX_DATAERR);  /* tokens >= vocab */
    CHECK(strstr(err.msg, "not below the vocab size") != NULL);
    CHECK(dsk_row_decode(v.data, 10, 1000, NULL, &out, &scratch, &err) == EX_DATAERR);   /* short header */
    CHECK(dsk_row_decode(v.data, v.len - 3, 1000, NULL, &out, &scratch, &err) == EX_DATAERR);  /* cut frame */
    v.data[4] ^= 1;  /* token count no longer matches the payload */
    CHECK(dsk_row_decode(v.data, v.len, 1000, NULL, &out, &scratch, &err) == EX_DATAERR);
    v.data[4] ^= 1;
    v.data[0] = 9;   /* unknown version */
    CHECK(dsk_row_decode(v.data, v.len, 1000, NULL, &out, &scratch, &err) == EX_DATAERR);
    dsk_row wide = sample(4, 0, 10);
    wide.tokens[0] = 70000;
    CHECK(dsk_row_encode(&wide, 2, 3, NULL, &v, &err) == EX_DATAERR);  /* does not fit 2 bytes */
    free(wide.tokens), free(wide.mask), free(wide.boundaries);
    free(in.tokens), free(in.mask), free(in.boundaries);
    dsk_row_free(&out);
    dsk_buf_free(&v);
    dsk_buf_free(&scratch);
}

TEST(rows_compress)
{
    dsk_row in = sample(4097, 0, 64), out = {0};  /* few distinct tokens: compressible */
    dsk_buf v = {0}, scratch = {0};
    dsk_err err = {0};
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_DCtx *d = ZSTD_createDCtx();
    CHECK(dsk_row_encode(&in, 2, 3, c, &v, &err) == 0);
    CHECK(v.len < 4097 * 2);
    CHECK(dsk_row_decode(v.data, v.len, 64, d, &out, &scratch, &err) == 0);
    CHECK(out.n_tokens == 4097 && out.mask[100] == 1);  /* no mask stored: every token trains */
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
    free(in.tokens), free(in.mask), free(in.boundaries);
    dsk_row_free(&out);
    dsk_buf_free(&v);
    dsk_buf_free(&scratch);
}

RUN_TESTS(T(round_trip_every_kind), T(damaged_rows_are_errors), T(rows_compress))
