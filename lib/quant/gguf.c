/* GGUF container: the validating reader and the streaming writer (see
 * gguf.h for the layout). */
#include "quant/gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/outfile.h"

size_t dsk_gguf_vtype_size(int type)
{
    switch (type) {
    case DSK_GGUF_UINT8: case DSK_GGUF_INT8: case DSK_GGUF_BOOL: return 1;
    case DSK_GGUF_UINT16: case DSK_GGUF_INT16: return 2;
    case DSK_GGUF_UINT32: case DSK_GGUF_INT32: case DSK_GGUF_FLOAT32: return 4;
    case DSK_GGUF_UINT64: case DSK_GGUF_INT64: case DSK_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static uint64_t le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *p;
    size_t len, pos;
    dsk_err *err;
} cursor;

static int bad(cursor *c, const char *what) { return dsk_fail(c->err, EX_DATAERR, "gguf: %s at offset %zu", what, c->pos); }

static size_t left(const cursor *c) { return c->len - c->pos; }

static int get(cursor *c, size_t n, uint64_t *v, const char *what)
{
    *v = 0;   /* set on failure too: callers test the return code, the compiler cannot tell */
    if (left(c) < n)
        return bad(c, what);
    *v = le(c->p + c->pos, n);
    c->pos += n;
    return 0;
}

static int get_str(cursor *c, dsk_gguf_str *s, const char *what)
{
    uint64_t n;
    s->p = NULL;
    s->n = 0;
    if (get(c, 8, &n, what))
        return c->err->code;
    if (n > left(c)) {
        c->pos -= 8;
        return bad(c, "string longer than the file");
    }
    s->p = (const char *)c->p + c->pos;
    s->n = n;
    c->pos += n;
    return 0;
}

/* A key or tensor name as a C string: no NUL inside, not empty. */
static int get_name(cursor *c, char **out, size_t max, const char *what)
{
    size_t at = c->pos;
    dsk_gguf_str s;
    if (get_str(c, &s, what))
        return c->err->code;
    if (s.n == 0 || s.n > max || memchr(s.p, 0, s.n)) {
        c->pos = at;
        char msg[96];
        snprintf(msg, sizeof msg, "%s empty, over %zu bytes or holding NUL", what, max);
        return bad(c, msg);
    }
    *out = dsk_xstrndup(s.p, s.n);
    return 0;
}

static void set_scalar(dsk_gguf_kv *kv, int type, uint64_t raw)
{
    switch (type) {
    case DSK_GGUF_INT8: kv->i = (int8_t)raw; break;
    case DSK_GGUF_INT16: kv->i = (int16_t)raw; break;
    case DSK_GGUF_INT32: kv->i = (int32_t)raw; break;
    case DSK_GGUF_INT64: kv->i = (int64_t)raw; break;
    case DSK_GGUF_FLOAT32: {
        uint32_t b = (uint32_t)raw;
        float f;
        memcpy(&f, &b, sizeof f);
        kv->f = f;
        break;
    }
    case DSK_GGUF_FLOAT64: memcpy(&kv->f, &raw, sizeof kv->f); break;
    default: kv->u = raw; break;
    }
}

static int read_value(cursor *c, dsk_gguf_kv *kv)
{
    uint64_t t;
    if (get(c, 4, &t, "truncated value type"))
        return c->err->code;
    if (t >= DSK_GGUF_N_VTYPES) {
        c->pos -= 4;
        return bad(c, "unknown value type");
    }
    kv->type = (int)t;
    if (t == DSK_GGUF_STRING)
        return get_str(c, &kv->str, "truncated string value");
    if (t != DSK_GGUF_ARRAY) {
        uint64_t raw;
        if (get(c, dsk_gguf_vtype_size((int)t), &raw, "truncated value"))
            return c->err->code;
        if (t == DSK_GGUF_BOOL && raw > 1) {
            c->pos -= 1;
            return bad(c, "bool value neither 0 nor 1");
        }
        set_scalar(kv, (int)t, raw);
        return 0;
    }
    uint64_t et, n;
    if (get(c, 4, &et, "truncated array type") || get(c, 8, &n, "truncated array length"))
        return c->err->code;
    if (et >= DSK_GGUF_N_VTYPES || et == DSK_GGUF_ARRAY) {
        c->pos -= 12;
        return bad(c, "array of an unknown type or of arrays");
    }
    kv->arr_type = (int)et;
    kv->arr_n = n;
    if (et == DSK_GGUF_STRING) {
        if (n > left(c) / 8) {   /* every string takes at least its 8-byte length */
            c->pos -= 8;
            return bad(c, "array longer than the file");
        }
        kv->arr_str = dsk_xmalloc((n ? n : 1) * sizeof *kv->arr_str);
        for (uint64_t i = 0; i < n; i++)
            if (get_str(c, &kv->arr_str[i], "truncated string in array"))
                return c->err->code;
        return 0;
    }
    size_t es = dsk_gguf_vtype_size((int)et);
    if (n > left(c) / es) {
        c->pos -= 8;
        return bad(c, "array longer than the file");
    }
    kv->arr_data = c->p + c->pos;
    if (et == DSK_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (kv->arr_data[i] > 1) {
                c->pos += i;
                return bad(c, "bool value neither 0 nor 1");
            }
    c->pos += n * es;
    return 0;
}

static int read_tensor_info(cursor *c, dsk_gguf_tensor *t)
{
    if (get_name(c, &t->name, DSK_GGUF_MAX_NAME, "tensor name"))
        return c->err->code;
    uint64_t nd, v;
    if (get(c, 4, &nd, "truncated tensor dimension count"))
        return c->err->code;
    if (nd < 1 || nd > DSK_GGUF_MAX_DIMS) {
        c->pos -= 4;
        return bad(c, "tensor dimension count not 1 to 4");
    }
    t->n_dims = (int)nd;
    t->n_elems = 1;
    for (int d = 0; d < DSK_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (int d = 0; d < t->n_dims; d++) {
        if (get(c, 8, &v, "truncated tensor dimension"))
            return c->err->code;
        if (v < 1 || v > INT64_MAX || t->n_elems > INT64_MAX / v) {
            c->pos -= 8;
            return bad(c, "tensor dimension zero or too large");
        }
        t->ne[d] = v;
        t->n_elems *= v;
    }
    if (get(c, 4, &v, "truncated tensor type"))
        return c->err->code;
    t->type = (int)v;
    if (v > INT32_MAX || !dsk_ggml_type_name(t->type)) {
        c->pos -= 4;
        return bad(c, "tensor type not f32, f16, q4_0, q8_0 or q4_K");
    }
    if (t->ne[0] % dsk_ggml_block_len(t->type) || dsk_ggml_nbytes(t->type, t->n_elems, &t->nbytes)) {
        c->pos -= 4;
        return bad(c, "tensor rows not a whole number of blocks");
    }
    return get(c, 8, &t->offset, "truncated tensor offset");
}

static int cmp_str_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The first name that occurs twice, or NULL. */
static const char *duplicate(char **names, size_t n)
{
    qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

static int cmp_offset(const void *a, const void *b)
{
    const dsk_gguf_tensor *x = *(const dsk_gguf_tensor *const *)a, *y = *(const dsk_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* After the tensor infos: general.alignment, uniqueness, and the data
 * section's extent. */
static int check_file(cursor *c, dsk_gguf_file *f)
{
    const dsk_gguf_kv *al = dsk_gguf_find_kv(f, "general.alignment");
    f->alignment = DSK_GGUF_DEFAULT_ALIGNMENT;
    if (al) {
        if (al->type != DSK_GGUF_UINT32 || al->u == 0 || (al->u & (al->u - 1)))
            return dsk_fail(c->err, EX_DATAERR, "gguf: general.alignment is not a u32 power of two");
        f->alignment = (uint32_t)al->u;
    }
    size_t n = f->n_kv > f->n_tensors ? f->n_kv : f->n_tensors;
    char **names = dsk_xmalloc((n ? n : 1) * sizeof *names);
    for (size_t i = 0; i < f->n_kv; i++)
        names[i] = f->kv[i].key;
    const char *dup = duplicate(names, f->n_kv);
    int rc = dup ? dsk_fail(c->err, EX_DATAERR, "gguf: key %s appears twice", dup) : 0;
    for (size_t i = 0; i < f->n_tensors; i++)
        names[i] = f->tensors[i].name;
    if (!rc && (dup = duplicate(names, f->n_tensors)))
        rc = dsk_fail(c->err, EX_DATAERR, "gguf: tensor %s appears twice", dup);
    free(names);
    if (rc)
        return rc;

    uint64_t a = f->alignment, pad = (a - c->pos % a) % a;
    f->data_offset = (uint64_t)c->pos + pad;
    if (f->n_tensors == 0)
        return 0;
    if (f->data_offset > c->len)
        return bad(c, "data section past the end of the file");
    uint64_t data_len = c->len - f->data_offset;
    dsk_gguf_tensor **by_off = dsk_xmalloc(f->n_tensors * sizeof *by_off);
    for (size_t i = 0; i < f->n_tensors; i++)
        by_off[i] = &f->tensors[i];
    qsort(by_off, f->n_tensors, sizeof *by_off, cmp_offset);
    uint64_t end = 0;
    for (size_t i = 0; i < f->n_tensors && !rc; i++) {
        dsk_gguf_tensor *t = by_off[i];
        if (t->offset % a || t->offset < end || t->offset > data_len || t->nbytes > data_len - t->offset)
            rc = dsk_fail(c->err, EX_DATAERR,
                          "gguf: tensor %s: offset %" PRIu64 " (%" PRIu64 " bytes) unaligned, overlapping "
                          "or past the %" PRIu64 "-byte data section", t->name, t->offset, t->nbytes, data_len);
        else {
            t->data = c->p + f->data_offset + t->offset;
            end = t->offset + t->nbytes;
        }
    }
    free(by_off);
    return rc;
}

int dsk_gguf_read(const void *data, size_t len, dsk_gguf_file *f, dsk_err *err)
{
    memset(f, 0, sizeof *f);
    cursor c = {data, len, 0, err};
    uint64_t version, n_tensors, n_kv;
    if (len < 4 || memcmp(data, DSK_GGUF_MAGIC, 4))
        return dsk_fail(err, EX_DATAERR, "gguf: not a GGUF file (no GGUF magic)");
    c.pos = 4;
    if (get(&c, 4, &version, "truncated header"))
        return err->code;
    if (version != 2 && version != 3)
        return dsk_fail(err, EX_DATAERR, "gguf: version %" PRIu64 ", only 2 and 3 are read", version);
    f->version = (uint32_t)version;
    if (get(&c, 8, &n_tensors, "truncated header") || get(&c, 8, &n_kv, "truncated header"))
        return err->code;
    /* Bound the counts by what the rest could hold before allocating: a KV
     * takes at least 13 bytes (key of 1, type, 1-byte value), a tensor
     * info at least 33. */
    if (n_kv > left(&c) / 13 || n_tensors > left(&c) / 33)
        return bad(&c, "more keys or tensors than the file could hold");
    /* The arrays grow as entries parse, so a count that the file's size
     * allows but its contents do not costs no more memory than the file. */
    int rc = 0;
    size_t cap = 0;
    for (uint64_t i = 0; i < n_kv && !rc; i++) {
        if (f->n_kv == cap) {
            cap = cap ? 2 * cap : 64;
            f->kv = dsk_xrealloc(f->kv, cap * sizeof *f->kv);
        }
        dsk_gguf_kv *kv = &f->kv[f->n_kv++];
        memset(kv, 0, sizeof *kv);
        rc = get_name(&c, &kv->key, 65535, "key");
        if (!rc)
            rc = read_value(&c, kv);
    }
    cap = 0;
    for (uint64_t i = 0; i < n_tensors && !rc; i++) {
        if (f->n_tensors == cap) {
            cap = cap ? 2 * cap : 64;
            f->tensors = dsk_xrealloc(f->tensors, cap * sizeof *f->tensors);
        }
        dsk_gguf_tensor *t = &f->tensors[f->n_tensors++];
        memset(t, 0, sizeof *t);
        rc = read_tensor_info(&c, t);
    }
    if (!rc)
        rc = check_file(&c, f);
    if (rc)
        dsk_gguf_free(f);
    return rc;
}

void dsk_gguf_free(dsk_gguf_file *f)
{
    for (size_t i = 0; i < f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].arr_str);
    }
    free(f->kv);
    for (size_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

const dsk_gguf_kv *dsk_gguf_find_kv(const dsk_gguf_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0)
            return &f->kv[i];
    return NULL;
}

const dsk_gguf_tensor *dsk_gguf_find_tensor(const dsk_gguf_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

int dsk_gguf_get_u64(const dsk_gguf_file *f, const char *key, uint64_t *v)
{
    const dsk_gguf_kv *kv = dsk_gguf_find_kv(f, key);
    if (!kv)
        return -1;
    switch (kv->type) {
    case DSK_GGUF_UINT8: case DSK_GGUF_UINT16: case DSK_GGUF_UINT32: case DSK_GGUF_UINT64:
        *v = kv->u;
        return 0;
    case DSK_GGUF_INT8: case DSK_GGUF_INT16: case DSK_GGUF_INT32: case DSK_GGUF_INT64:
        if (kv->i < 0)
            return -1;
        *v = (uint64_t)kv->i;
        return 0;
    default:
        return -1;
    }
}

int dsk_gguf_get_f64(const dsk_gguf_file *f, const char *key, double *v)
{
    const dsk_gguf_kv *kv = dsk_gguf_find_kv(f, key);
    if (!kv || (kv->type != DSK_GGUF_FLOAT32 && kv->type != DSK_GGUF_FLOAT64))
        return -1;
    *v = kv->f;
    return 0;
}

int dsk_gguf_get_str(const dsk_gguf_file *f, const char *key, dsk_gguf_str *s)
{
    const dsk_gguf_kv *kv = dsk_gguf_find_kv(f, key);
    if (!kv || kv->type != DSK_GGUF_STRING)
        return -1;
    *s = kv->str;
    return 0;
}

int dsk_gguf_str_is(dsk_gguf_str s, const char *text)
{
    return strlen(text) == s.n && memcmp(s.p, text, s.n) == 0;
}

int64_t dsk_gguf_arr_int(const dsk_gguf_kv *kv, uint64_t i)
{
    size_t es = dsk_gguf_vtype_size(kv->arr_type);
    uint64_t raw = le(kv->arr_data + i * es, es);
    switch (kv->arr_type) {
    case DSK_GGUF_INT8: return (int8_t)raw;
    case DSK_GGUF_INT16: return (int16_t)raw;
    case DSK_GGUF_INT32: return (int32_t)raw;
    default: return (int64_t)raw;
    }
}

double dsk_gguf_arr_float(const dsk_gguf_kv *kv, uint64_t i)
{
    size_t es = dsk_gguf_vtype_size(kv->arr_type);
    uint64_t raw = le(kv->arr_data + i * es, es);
    if (kv->arr_type == DSK_GGUF_FLOAT32) {
        uint32_t b = (uint32_t)raw;
        float v;
        memcpy(&v, &b, sizeof v);
        return v;
    }
    double v;
    memcpy(&v, &raw, sizeof v);
    return v;
}

int dsk_gguf_dequantize(const dsk_gguf_tensor *t, float *out, dsk_err *err)
{
    uint64_t nb;
    if (!t->data || dsk_ggml_nbytes(t->type, t->n_elems, &nb) || nb != t->nbytes)
        return dsk_fail(err, EX_DATAERR, "gguf: tensor %s: no data or an inconsistent size", t->name);
    dsk_ggml_dequantize(t->type, t->data, out, t->n_elems);
    return 0;
}

/* ---- writing -------------------------------------------------------------------------------- */

typedef struct wtensor {
    char *name;
    int type, n_dims;
    uint64_t ne[DSK_GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
    int bad;                     /* shape, type or name invalid: reported by begin() */
} wtensor;

struct dsk_gguf_writer {
    dsk_buf kv;                  /* the serialized key-value pairs */
    size_t n_kv;
    char **keys;
    wtensor *tensors;
    size_t n_tensors, cap_tensors;
    uint64_t data_size;          /* of the data section, with padding */
    dsk_outfile out;
    int open;
    size_t next;                 /* tensor whose data comes next */
};

static void put_le(dsk_buf *b, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    dsk_buf_add(b, tmp, n);
}

static void put_str(dsk_buf *b, const char *s, size_t n)
{
    put_le(b, n, 8);
    dsk_buf_add(b, s, n);
}

dsk_gguf_writer *dsk_gguf_writer_new(void) { return dsk_xcalloc(1, sizeof(dsk_gguf_writer)); }

void dsk_gguf_writer_free(dsk_gguf_writer *w)
{
    if (!w)
        return;
    if (w->open)
        dsk_outfile_abort(&w->out);
    dsk_buf_free(&w->kv);
    for (size_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    free(w->keys);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w);
}

static void key(dsk_gguf_writer *w, const char *k, int type)
{
    w->keys = dsk_xrealloc(w->keys, (w->n_kv + 1) * sizeof *w->keys);
    w->keys[w->n_kv++] = dsk_xstrdup(k);
    put_str(&w->kv, k, strlen(k));
    put_le(&w->kv, (uint64_t)type, 4);
}

void dsk_gguf_add_u32(dsk_gguf_writer *w, const char *k, uint32_t v)
{
    key(w, k, DSK_GGUF_UINT32);
    put_le(&w->kv, v, 4);
}

void dsk_gguf_add_i32(dsk_gguf_writer *w, const char *k, int32_t v)
{
    key(w, k, DSK_GGUF_INT32);
    put_le(&w->kv, (uint32_t)v, 4);
}

void dsk_gguf_add_u64(dsk_gguf_writer *w, const char *k, uint64_t v)
{
    key(w, k, DSK_GGUF_UINT64);
    put_le(&w->kv, v, 8);
}

void dsk_gguf_add_f32(dsk_gguf_writer *w, const char *k, float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    key(w, k, DSK_GGUF_FLOAT32);
    put_le(&w->kv, b, 4);
}

void dsk_gguf_add_bool(dsk_gguf_writer *w, const char *k, int v)
{
    key(w, k, DSK_GGUF_BOOL);
    put_le(&w->kv, v != 0, 1);
}

void dsk_gguf_add_str(dsk_gguf_writer *w, const char *k, const char *v)
{
    key(w, k, DSK_GGUF_STRING);
    put_str(&w->kv, v, strlen(v));
}

void dsk_gguf_add_str_array(dsk_gguf_writer *w, const char *k, const char *const *strs, const size_t *lens, size_t n)
{
    key(w, k, DSK_GGUF_ARRAY);
    put_le(&w->kv, DSK_GGUF_STRING, 4);
    put_le(&w->kv, n, 8);
    for (size_t i = 0; i < n; i++)
        put_str(&w->kv, strs[i], lens[i]);
}

void dsk_gguf_add_array(dsk_gguf_writer *w, const char *k, int elem_type, const void *v, size_t n)
{
    size_t es = dsk_gguf_vtype_size(elem_type);
    key(w, k, DSK_GGUF_ARRAY);
    put_le(&w->kv, (uint64_t)elem_type, 4);
    put_le(&w->kv, n, 8);
    dsk_buf_add(&w->kv, v, n * es);   /* the host is little-endian */
}

void dsk_gguf_add_i32_array(dsk_gguf_writer *w, const char *k, const int32_t *v, size_t n)
{
    dsk_gguf_add_array(w, k, DSK_GGUF_INT32, v, n);
}

void dsk_gguf_add_tensor(dsk_gguf_writer *w, const char *name, int type, int n_dims, const uint64_t *ne)
{
    if (w->n_tensors == w->cap_tensors) {
        w->cap_tensors = w->cap_tensors ? 2 * w->cap_tensors : 64;
        w->tensors = dsk_xrealloc(w->tensors, w->cap_tensors * sizeof *w->tensors);
    }
    wtensor *t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = dsk_xstrdup(name);
    t->type = type;
    t->n_dims = n_dims;
    uint64_t n = 1;
    t->bad = n_dims < 1 || n_dims > DSK_GGUF_MAX_DIMS || !*name || strlen(name) > DSK_GGUF_MAX_NAME;
    for (int d = 0; d < n_dims && !t->bad; d++) {
        t->ne[d] = ne[d];
        t->bad = ne[d] < 1 || ne[d] > INT64_MAX || n > INT64_MAX / ne[d];
        n *= ne[d];
    }
    if (!t->bad)
        t->bad = !dsk_ggml_type_name(type) || ne[0] % dsk_ggml_block_len(type) || dsk_ggml_nbytes(type, n, &t->nbytes);
    t->offset = w->data_size;
    if (!t->bad)
        w->data_size += (t->nbytes + DSK_GGUF_DEFAULT_ALIGNMENT - 1) / DSK_GGUF_DEFAULT_ALIGNMENT *
                        DSK_GGUF_DEFAULT_ALIGNMENT;
}

static int write_bytes(dsk_gguf_writer *w, const void *p, size_t n, dsk_err *err)
{
    if (n && fwrite(p, 1, n, w->out.fp) != n)
        return dsk_fail(err, EX_IOERR, "%s: write failed: %s", w->out.path ? w->out.path : "stdout", strerror(errno));
    return 0;
}

static int write_padding(dsk_gguf_writer *w, uint64_t n, dsk_err *err)
{
    static const uint8_t zeros[DSK_GGUF_DEFAULT_ALIGNMENT];
    return write_bytes(w, zeros, (size_t)n, err);
}

int dsk_gguf_writer_begin(dsk_gguf_writer *w, const char *path, dsk_err *err)
{
    char **names = dsk_xmalloc((w->n_kv + w->n_tensors + 1) * sizeof *names);
    for (size_t i = 0; i < w->n_kv; i++)
        names[i] = w->keys[i];
    const char *dup = duplicate(names, w->n_kv);
    int rc = dup ? dsk_fail(err, EX_SOFTWARE, "gguf: key %s added twice", dup) : 0;
    for (size_t i = 0; i < w->n_tensors; i++)
        names[i] = w->tensors[i].name;
    if (!rc && (dup = duplicate(names, w->n_tensors)))
        rc = dsk_fail(err, EX_SOFTWARE, "gguf: tensor %s added twice", dup);
    free(names);
    for (size_t i = 0; i < w->n_tensors && !rc; i++)
        if (w->tensors[i].bad)
            rc = dsk_fail(err, EX_SOFTWARE, "gguf: tensor %s: bad name, shape or type for its type %d",
                          w->tensors[i].name, w->tensors[i].type);
    if (rc)
        return rc;

    dsk_buf h = {0};
    dsk_buf_add(&h, DSK_GGUF_MAGIC, 4);
    put_le(&h, DSK_GGUF_VERSION, 4);
    put_le(&h, w->n_tensors, 8);
    put_le(&h, w->n_kv, 8);
    dsk_buf_add(&h, w->kv.data, w->kv.len);
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        put_str(&h, t->name, strlen(t->name));
        put_le(&h, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++)
            put_le(&h, t->ne[d], 8);
        put_le(&h, (uint64_t)t->type, 4);
        put_le(&h, t->offset, 8);
    }
    while (h.len % DSK_GGUF_DEFAULT_ALIGNMENT)
        dsk_buf_addc(&h, 0);
    rc = dsk_outfile_open(&w->out, path, err);
    if (!rc) {
        w->open = 1;
        rc = write_bytes(w, h.data, h.len, err);
    }
    dsk_buf_free(&h);
    return rc;
}

int dsk_gguf_writer_data(dsk_gguf_writer *w, const void *data, size_t nbytes, dsk_err *err)
{
    if (!w->open || w->next >= w->n_tensors)
        return dsk_fail(err, EX_SOFTWARE, "gguf: tensor data with no tensor declared for it");
    const wtensor *t = &w->tensors[w->next];
    if (nbytes != t->nbytes)
        return dsk_fail(err, EX_SOFTWARE, "gguf: tensor %s: %zu bytes of data, its shape needs %" PRIu64, t->name,
                        nbytes, t->nbytes);
    w->next++;
    /* every tensor, the last one too, is padded: readers may map the data
     * section as whole aligned slots */
    int rc = write_bytes(w, data, nbytes, err);
    return rc ? rc : write_padding(w, (DSK_GGUF_DEFAULT_ALIGNMENT - nbytes % DSK_GGUF_DEFAULT_ALIGNMENT) %
                                          DSK_GGUF_DEFAULT_ALIGNMENT, err);
}

int dsk_gguf_writer_finish(dsk_gguf_writer *w, dsk_err *err)
{
    if (!w->open)
        return dsk_fail(err, EX_SOFTWARE, "gguf: finish before begin");
    if (w->next != w->n_tensors)
        return dsk_fail(err, EX_SOFTWARE, "gguf: %zu of %zu tensors written", w->next, w->n_tensors);
    w->open = 0;
    return dsk_outfile_commit(&w->out, err);
}
