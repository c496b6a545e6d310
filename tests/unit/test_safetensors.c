#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "model/safetensors.h"
#include "test.h"

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char path[128];
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/dsk-st-XXXXXX");
        if (!mkdtemp(tmpdir))
            abort();
    }
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static int read_file(const char *path, dsk_buf *b)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char chunk[4096];
    size_t n;
    dsk_buf_clear(b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        dsk_buf_add(b, chunk, n);
    fclose(f);
    return 0;
}

static uint64_t le64(const void *p)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

TEST(dtype_names_and_sizes)
{
    static const char *names[] = {"F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"};
    static const size_t sizes[] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};
    for (int d = 0; d < DSK_ST_N_DTYPES; d++) {
        CHECK_STR(dsk_st_dtype_name(d), names[d]);
        CHECK(dsk_st_dtype_size(d) == sizes[d]);
    }
    CHECK(dsk_st_dtype_size(-1) == 0 && dsk_st_dtype_size(DSK_ST_N_DTYPES) == 0);
    CHECK_STR(dsk_st_dtype_name(99), "?");
}

TEST(round_trip_dtypes_shapes_metadata)
{
    float f32[2 * 3] = {1, -2, 3.5f, 4, 5, 6};
    double f64 = 3.141592653589793;  /* a 0-d scalar */
    uint16_t f16[4] = {0x3c00, 0x4000, 0xc000, 0x7c00};
    uint16_t bf16[2][2] = {{0x3f80, 0x4000}, {0x4040, 0xbf80}};
    int64_t i64[3] = {INT64_MIN, -1, INT64_MAX};
    int32_t i32[1][1][2] = {{{-7, 123456789}}};
    int16_t i16[3] = {-32768, 0, 32767};
    int8_t i8[5] = {-128, -1, 0, 1, 127};
    uint8_t u8[3] = {0, 128, 255};
    uint8_t bools[4] = {1, 0, 0, 1};
    const int64_t s23[] = {2, 3}, s4[] = {4}, s22[] = {2, 2}, s3[] = {3}, s112[] = {1, 1, 2}, s5[] = {5},
                  s04[] = {0, 4}, s8[] = {1, 1, 1, 1, 1, 1, 1, 4};
    struct {
        const char *name;
        int dtype, ndim;
        const int64_t *shape;
        const void *data;
        size_t nbytes;
    } in[] = {
        {"u8", DSK_ST_U8, 1, s3, u8, 3},  /* odd size first: the rest are unaligned */
        {"layers.0.w", DSK_ST_F32, 2, s23, f32, sizeof f32},
        {"scalar", DSK_ST_F64, 0, NULL, &f64, 8},
        {"empty", DSK_ST_F32, 2, s04, NULL, 0},
        {"f16", DSK_ST_F16, 1, s4, f16, 8},
        {"bf16", DSK_ST_BF16, 2, s22, bf16, 8},
        {"i64", DSK_ST_I64, 1, s3, i64, 24},
        {"i32", DSK_ST_I32, 3, s112, i32, 8},
        {"i16", DSK_ST_I16, 1, s3, i16, 6},
        {"i8", DSK_ST_I8, 1, s5, i8, 5},
        {"bool", DSK_ST_BOOL, 8, s8, bools, 4},
        {"名前 \"quoted\"\n", DSK_ST_U8, 1, s3, u8, 3},
    };
    size_t n = sizeof in / sizeof in[0];
    dsk_st_writer *w = dsk_st_writer_new();
    for (size_t i = 0; i < n; i++)
        dsk_st_writer_add(w, in[i].name, in[i].dtype, in[i].ndim, in[i].shape, in[i].data);
    dsk_st_writer_meta(w, "format", "pt");
    dsk_st_writer_meta(w, "note", "replaced");
    dsk_st_writer_meta(w, "config", "{\"dim\": 64, \"π\": \"x\"}");
    dsk_st_writer_meta(w, "note", "ünïcode\ttab");
    dsk_err err = {0};
    const char *path = tmp_path("round.safetensors");
    CHECK(dsk_st_writer_write(w, path, &err) == 0);
    dsk_st_writer_free(w);

    dsk_safetensors st;
    CHECK(dsk_st_open(&st, path, &err) == 0);
    CHECK_STR(st.path, path);
    CHECK(st.map != NULL && st.map_len > 8);
    uint64_t hlen = le64(st.map);
    CHECK((8 + hlen) % 8 == 0);  /* the data section starts 8-byte aligned */
    const uint8_t *data = (const uint8_t *)st.map + 8 + hlen;
    CHECK(((uintptr_t)data & 7) == 0);
    CHECK(st.n_tensors == n);
    uint64_t pos = 0;
    for (size_t i = 0; i < n && i < st.n_tensors; i++) {
        const dsk_st_tensor *t = &st.tensors[i];  /* file order is the order added */
        CHECK_STR(t->name, in[i].name);
        CHECK(dsk_st_find(&st, in[i].name) == t);
        CHECK(t->dtype == in[i].dtype);
        CHECK(t->ndim == in[i].ndim);
        uint64_t elems = 1;
        for (int d = 0; d < in[i].ndim && d < DSK_ST_MAX_DIMS; d++) {
            CHECK(t->shape[d] == in[i].shape[d]);
            elems *= (uint64_t)in[i].shape[d];
        }
        CHECK(t->n_elems == elems);
        CHECK(t->nbytes == in[i].nbytes);
        CHECK(t->nbytes == t->n_elems * dsk_st_dtype_size(t->dtype));
        CHECK((const uint8_t *)t->data == data + pos);
        if (in[i].nbytes)
            CHECK(memcmp(t->data, in[i].data, in[i].nbytes) == 0);
        pos += t->nbytes;
    }
    CHECK(8 + hlen + pos == st.map_len);
    const dsk_st_tensor *sc = dsk_st_find(&st, "scalar");
    CHECK(sc && sc->ndim == 0 && sc->n_elems == 1 && sc->nbytes == 8);
    double got;
    if (sc) {
        memcpy(&got, sc->data, 8);
        CHECK(got == f64);
    }
    const dsk_st_tensor *e = dsk_st_find(&st, "empty");
    CHECK(e && e->n_elems == 0 && e->nbytes == 0 && e->shape[0] == 0 && e->shape[1] == 4);
    CHECK(dsk_st_find(&st, "missing") == NULL);
    CHECK(st.n_meta == 3);
    CHECK_STR(dsk_st_meta(&st, "format"), "pt");
    CHECK_STR(dsk_st_meta(&st, "note"), "ünïcode\ttab");
    CHECK_STR(dsk_st_meta(&st, "config"), "{\"dim\": 64, \"π\": \"x\"}");
    CHECK(dsk_st_meta(&st, "absent") == NULL);
    if (st.n_meta == 3) {  /* header order: the order of first setting */
        CHECK_STR(st.meta_keys[0], "format");
        CHECK_STR(st.meta_keys[1], "note");
        CHECK_STR(st.meta_keys[2], "config");
    }
    dsk_st_close(&st);
    CHECK(st.map == NULL && st.tensors == NULL && st.path == NULL);
    dsk_st_close(&st);  /* twice is harmless */

    /* the same bytes parse the same from memory */
    dsk_buf b = {0};
    CHECK(read_file(path, &b) == 0);
    CHECK(dsk_st_parse(&st, b.data, b.len, "mem", &err) == 0);
    CHECK(st.map == NULL && st.n_tensors == n && st.n_meta == 3);
    CHECK_STR(st.path, "mem");
    dsk_st_close(&st);
    dsk_buf_free(&b);
    unlink(path);
}

TEST(exact_bytes_of_a_tiny_file)
{
    float a[2] = {1.0f, 2.0f};
    uint8_t s = 7;
    dsk_st_writer *w = dsk_st_writer_new();
    dsk_st_writer_add(w, "a", DSK_ST_F32, 1, (const int64_t[]){2}, a);
    dsk_st_writer_add(w, "s", DSK_ST_U8, 0, NULL, &s);
    dsk_st_writer_meta(w, "k", "v");
    dsk_err err = {0};
    const char *path = tmp_path("tiny.safetensors");
    CHECK(dsk_st_writer_write(w, path, &err) == 0);
    dsk_st_writer_free(w);
    static const char want_header[] =
        "{\"__metadata__\":{\"k\":\"v\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[8,9]}}"
        "      ";  /* 130 bytes of JSON, 6 spaces: 8 + 136 is a multiple of 8 */
    static const uint8_t want_len[8] = {136, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t want_data[9] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 7};
    CHECK(sizeof want_header - 1 == 136);
    dsk_buf b = {0};
    CHECK(read_file(path, &b) == 0);
    CHECK(b.len == 8 + 136 + 9);
    if (b.len == 8 + 136 + 9) {
        CHECK(memcmp(b.data, want_len, 8) == 0);
        CHECK(memcmp(b.data + 8, want_header, 136) == 0);
        CHECK(memcmp(b.data + 144, want_data, 9) == 0);
    }
    if (b.len > 8)
        printf("# header: %.*s\n", (int)(b.len - 8 - 9), b.data + 8);
    dsk_buf_free(&b);

    /* no tensors, no metadata: "{}" and 6 spaces */
    w = dsk_st_writer_new();
    CHECK(dsk_st_writer_write(w, path, &err) == 0);
    dsk_st_writer_free(w);
    CHECK(read_file(path, &b) == 0);
    CHECK(b.len == 16 && memcmp(b.data, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
    dsk_safetensors st;
    CHECK(dsk_st_open(&st, path, &err) == 0);
    CHECK(st.n_tensors == 0 && st.n_meta == 0);
    dsk_st_close(&st);
    dsk_buf_free(&b);
    unlink(path);
}

/* Hugging Face's writer orders the header differently (metadata first,
 * tensors by alignment then name) and the file has no padding rule beyond
 * the spaces; a hand-made file in that style, with tensors listed out of
 * offset order, still reads, sorted by offset. */
TEST(reads_foreign_layout_sorted_by_offset)
{
    static const char hdr[] = "{\"b\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                              "\"z\":{\"shape\":[0],\"data_offsets\":[4,4],\"dtype\":\"F64\",\"extra\":1},"
                              "\"a\":{\"data_offsets\":[0,4],\"shape\":[1],\"dtype\":\"F32\"},"
                              "\"__metadata__\":{\"x\":\"y\"}}";
    dsk_buf b = {0};
    uint64_t n = sizeof hdr - 1;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)(n >> (8 * i));
    dsk_buf_add(&b, len8, 8);
    dsk_buf_add(&b, hdr, n);
    dsk_buf_add(&b, "\1\2\3\4\5\6", 6);
    dsk_safetensors st;
    dsk_err err = {0};
    CHECK(dsk_st_parse(&st, b.data, b.len, "foreign", &err) == 0);
    CHECK(st.n_tensors == 3);
    if (st.n_tensors == 3) {
        CHECK_STR(st.tensors[0].name, "a");
        CHECK_STR(st.tensors[1].name, "z");
        CHECK_STR(st.tensors[2].name, "b");
        CHECK(memcmp(st.tensors[2].data, "\5\6", 2) == 0);
        CHECK(st.tensors[1].nbytes == 0);
    }
    CHECK_STR(dsk_st_meta(&st, "x"), "y");
    dsk_st_close(&st);
    dsk_buf_free(&b);
}

/* 8-byte length + header + data_len zero bytes, parsed as "bad.st". */
static int parse_made(const char *hdr, size_t hlen, uint64_t claimed_len, size_t data_len, dsk_err *err)
{
    dsk_buf b = {0};
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)(claimed_len >> (8 * i));
    dsk_buf_add(&b, len8, 8);
    dsk_buf_add(&b, hdr, hlen);
    dsk_buf_reserve(&b, data_len);
    memset(b.data + b.len, 0, data_len);
    b.len += data_len;
    dsk_safetensors st;
    err->code = 0;
    err->msg[0] = '\0';
    int rc = dsk_st_parse(&st, b.data, b.len, "bad.st", err);
    dsk_st_close(&st);
    dsk_buf_free(&b);
    return rc;
}

static int expect_bad(const char *hdr, size_t data_len, const char *needle, int line)
{
    dsk_err err;
    int rc = parse_made(hdr, strlen(hdr), strlen(hdr), data_len, &err);
    if (rc != EX_DATAERR || !strstr(err.msg, "bad.st: ") || !strstr(err.msg, needle)) {
        printf("#   line %d: rc %d, message \"%s\", wanted \"%s\"\n", line, rc, err.msg, needle);
        return 0;
    }
    return 1;
}
#define BAD(hdr, data_len, needle) CHECK(expect_bad(hdr, data_len, needle, __LINE__))

#define T1(fields) "{\"t\":{" fields "}}"
#define OK_FIELDS "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"

TEST(corrupt_files_are_data_errors)
{
    dsk_err err;
    /* the good one the others break */
    CHECK(parse_made(T1(OK_FIELDS), strlen(T1(OK_FIELDS)), strlen(T1(OK_FIELDS)), 8, &err) == 0);

    /* sizes */
    CHECK(parse_made("", 0, 0, 0, &err) == EX_DATAERR);
    dsk_safetensors st;
    CHECK(dsk_st_parse(&st, "\1\0\0", 3, "bad.st", &err) == EX_DATAERR && strstr(err.msg, "too short"));
    CHECK(parse_made("{}", 2, (100u << 20) + 1, 0, &err) == EX_DATAERR && strstr(err.msg, "over the limit"));
    CHECK(parse_made("{}", 2, UINT64_MAX, 0, &err) == EX_DATAERR && strstr(err.msg, "over the limit"));
    CHECK(parse_made("{}", 2, 3, 0, &err) == EX_DATAERR && strstr(err.msg, "past the end"));
    CHECK(parse_made("{}", 2, 0, 0, &err) == EX_DATAERR && strstr(err.msg, "not a JSON object"));

    /* the header itself */
    BAD("[1,2]", 0, "not a JSON object");
    BAD(" {}", 0, "not a JSON object");
    BAD("{\"t\":", 0, "not valid JSON");
    BAD("{} x", 0, "not valid JSON");
    BAD("{\"t\xff\":{}}", 0, "not valid UTF-8");
    CHECK(parse_made("{\"a\0\":1}", 8, 8, 0, &err) == EX_DATAERR && strstr(err.msg, "NUL"));
    BAD("{\"a\\u0000b\":" "{" OK_FIELDS "}}", 8, "NUL");
    BAD("{\"t\":[]}", 0, "not a JSON object");

    /* dtype */
    BAD(T1("\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,8]"), 8, "unknown dtype \"F8\"");
    BAD(T1("\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]"), 8, "unknown dtype");
    BAD(T1("\"shape\":[2],\"data_offsets\":[0,8]"), 8, "\"dtype\" must be a string");
    BAD(T1("\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]"), 8, "\"dtype\" must be a string");

    /* shape */
    BAD(T1("\"dtype\":\"F32\",\"data_offsets\":[0,8]"), 8, "\"shape\" must be a list");
    BAD(T1("\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]"), 8, "\"shape\" must be a list");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]"), 8, "dimension 0 is not an integer");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]"), 8, "dimension 1 is not an integer");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]"), 8, "dimension 0 is negative");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]"), 8, "9 dimensions");
    BAD(T1("\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]"), 0, "overflows");
    BAD(T1("\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]"), 0, "overflows");
    BAD(T1("\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,0]"), 0, "out of range");
    BAD(T1("\"dtype\":\"U8\",\"shape\":[9223372036854775807],\"data_offsets\":[0,0]"), 0, "out of range");

    /* data_offsets */
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2]"), 8, "\"data_offsets\" must be two non-negative integers");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]"), 8, "two non-negative");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]"), 8, "two non-negative");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]"), 8, "two non-negative");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]"), 8, "two non-negative");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"0\":8}"), 8, "two non-negative");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]"), 8, "begin after they end");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"), 7, "end past the data section (7 bytes)");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551615]"), 8, "below 2^63");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,9223372036854775808]"), 8, "below 2^63");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"), 8, "hold 8 bytes, but F32 of this shape takes 12");
    BAD(T1("\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]"), 0, "takes 4");
    BAD("{\"t\":7}", 0, "tensor \"t\": not a JSON object");

    /* coverage of the data section */
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6, "tensor \"b\": data_offsets [2, 6] overlap");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
        "\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}}", 4, "tensor \"e\"");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}", 10, "hole in the data section: bytes 4 to 6");
    BAD(T1("\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]"), 6, "bytes 0 to 2");
    BAD(T1(OK_FIELDS), 9, "the data section is 9 bytes, but the tensors end at offset 8");
    BAD("{}", 1, "the data section is 1 bytes");

    /* names */
    BAD("{\"t\":{" OK_FIELDS "},\"t\":{" OK_FIELDS "}}", 8, "duplicate tensor name \"t\"");
    BAD("{\"ab\":{" OK_FIELDS "},\"x\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,8]},\"a\\u0062\":{" OK_FIELDS
        "}}", 8, "duplicate tensor name \"ab\"");
    BAD("{\"__metadata__\":{},\"t\":{" OK_FIELDS "},\"__metadata__\":{}}", 8, "duplicate tensor name \"__metadata__\"");

    /* metadata */
    BAD("{\"__metadata__\":[]}", 0, "\"__metadata__\" must be an object of strings");
    BAD("{\"__metadata__\":\"x\"}", 0, "\"__metadata__\" must be an object");
    BAD("{\"__metadata__\":{\"a\":\"1\",\"n\":1}}", 0, "the value of \"n\" is not a string");
    BAD("{\"__metadata__\":{\"a\":null}}", 0, "the value of \"a\" is not a string");
    BAD("{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, "the value of \"a\" is not a string");
    BAD("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0, "duplicate key \"a\"");
    BAD("{\"__metadata__\":{\"a\":\"x\\u0000y\"}}", 0, "NUL");
    BAD("{\"__metadata__\":{\"a\\u0000\":\"x\"}}", 0, "NUL");
    {
        const char *h = "{\"__metadata__\":{\"a\":\"1\",\"b\":\"\"}}";
        CHECK(parse_made(h, strlen(h), strlen(h), 0, &err) == 0);
    }

    /* nesting json-c refuses is an error, not a crash */
    char deep[300];
    strcpy(deep, "{\"__metadata__\":");
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    BAD(deep, 0, "not valid JSON");
}

TEST(open_errors)
{
    dsk_safetensors st;
    dsk_err err = {0};
    CHECK(dsk_st_open(&st, tmp_path("does-not-exist"), &err) == EX_NOINPUT);
    CHECK(strstr(err.msg, "does-not-exist") != NULL);
    CHECK(dsk_st_open(&st, "/tmp", &err) == EX_NOINPUT);
    const char *path = tmp_path("short.safetensors");
    FILE *f = fopen(path, "wb");
    fputs("\4\0\0", f);
    fclose(f);
    CHECK(dsk_st_open(&st, path, &err) == EX_DATAERR && strstr(err.msg, "too short") && strstr(err.msg, path));
    dsk_st_close(&st);
    f = fopen(path, "wb");  /* empty */
    fclose(f);
    CHECK(dsk_st_open(&st, path, &err) == EX_DATAERR);
    f = fopen(path, "wb");
    fwrite("\2\0\0\0\0\0\0\0[]", 1, 10, f);
    fclose(f);
    CHECK(dsk_st_open(&st, path, &err) == EX_DATAERR && strstr(err.msg, path));
    CHECK(st.map == NULL && st.tensors == NULL);
    dsk_st_close(&st);
    unlink(path);
}

TEST(writer_refuses_bad_tensors)
{
    static const float x[4] = {0};
    const int64_t s4[] = {4}, neg[] = {-1}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    struct {
        const char *name;
        int dtype, ndim;
        const int64_t *shape;
        const void *data;
        const char *needle;
    } bad[] = {
        {"__metadata__", DSK_ST_F32, 1, s4, x, "not allowed"},
        {"bad\xff", DSK_ST_F32, 1, s4, x, "not allowed"},
        {"t", 42, 1, s4, x, "unknown dtype 42"},
        {"t", DSK_ST_F32, 9, nine, x, "9 dimensions"},
        {"t", DSK_ST_F32, -1, NULL, x, "-1 dimensions"},
        {"t", DSK_ST_F32, 1, neg, x, "negative dimension"},
        {"t", DSK_ST_F32, 1, s4, NULL, "no data for 16 bytes"},
    };
    const char *path = tmp_path("refused.safetensors");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dsk_st_writer *w = dsk_st_writer_new();
        dsk_st_writer_add(w, "ok", DSK_ST_F32, 1, s4, x);
        dsk_st_writer_add(w, bad[i].name, bad[i].dtype, bad[i].ndim, bad[i].shape, bad[i].data);
        dsk_err err = {0};
        CHECK(dsk_st_writer_write(w, path, &err) == EX_DATAERR);
        if (!strstr(err.msg, bad[i].needle))
            printf("#   case %zu: \"%s\"\n", i, err.msg);
        CHECK(strstr(err.msg, bad[i].needle) != NULL);
        CHECK(access(path, F_OK) != 0);  /* nothing written */
        dsk_st_writer_free(w);
    }
    dsk_st_writer *w = dsk_st_writer_new();
    dsk_st_writer_add(w, "a", DSK_ST_F32, 1, s4, x);
    dsk_st_writer_add(w, "b", DSK_ST_F32, 1, s4, x);
    dsk_st_writer_add(w, "a", DSK_ST_I32, 1, s4, x);
    dsk_err err = {0};
    CHECK(dsk_st_writer_write(w, path, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "duplicate tensor name \"a\"") != NULL);
    CHECK(access(path, F_OK) != 0);
    dsk_st_writer_free(w);
    w = dsk_st_writer_new();
    dsk_st_writer_meta(w, "k", "bad\xc3");
    CHECK(dsk_st_writer_write(w, path, &err) == EX_DATAERR && strstr(err.msg, "UTF-8"));
    dsk_st_writer_free(w);
    w = dsk_st_writer_new();
    CHECK(dsk_st_writer_write(w, tmp_path("no-such-dir/x.safetensors"), &err) == EX_CANTCREAT);
    dsk_st_writer_free(w);
    dsk_st_writer_free(NULL);
}

/* Many tensors: the offset sort and the duplicate scan on a larger header. */
TEST(many_tensors)
{
    enum { N = 2000 };
    static int32_t vals[N];
    dsk_st_writer *w = dsk_st_writer_new();
    char name[32];
    for (int i = 0; i < N; i++) {
        vals[i] = i * 7;
        snprintf(name, sizeof name, "model.layers.%d.weight", (i * 7919) % N);
        dsk_st_writer_add(w, name, DSK_ST_I32, 1, (const int64_t[]){1}, &vals[i]);
    }
    const char *path = tmp_path("many.safetensors");
    dsk_err err = {0};
    CHECK(dsk_st_writer_write(w, path, &err) == 0);
    dsk_st_writer_free(w);
    dsk_safetensors st;
    CHECK(dsk_st_open(&st, path, &err) == 0);
    CHECK(st.n_tensors == N);
    int ok = 1;
    for (size_t i = 0; i < st.n_tensors; i++) {
        int32_t v;
        memcpy(&v, st.tensors[i].data, 4);
        snprintf(name, sizeof name, "model.layers.%d.weight", (int)((i * 7919) % N));
        ok &= v == (int32_t)i * 7 && strcmp(st.tensors[i].name, name) == 0;
    }
    CHECK(ok);
    CHECK(dsk_st_find(&st, "model.layers.1999.weight") != NULL);
    dsk_st_close(&st);
    unlink(path);
    rmdir(tmpdir);
}

RUN_TESTS(T(dtype_names_and_sizes), T(round_trip_dtypes_shapes_metadata), T(exact_bytes_of_a_tiny_file),
          T(reads_foreign_layout_sorted_by_offset), T(corrupt_files_are_data_errors), T(open_errors),
          T(writer_refuses_bad_tensors), T(many_tensors))
