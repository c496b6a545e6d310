#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"
#include "core/outfile.h"
#include "text/utf8.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian and used in place: a little-endian host is required"
#endif

#define METADATA_KEY "__metadata__"

static const char *const dtype_names[DSK_ST_N_DTYPES] = {"F32", "F64", "F16", "BF16", "I64",
                                                         "I32", "I16", "I8",  "U8",   "BOOL"};
static const unsigned char dtype_sizes[DSK_ST_N_DTYPES] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};

size_t dsk_st_dtype_size(int dtype)
{
    return dtype >= 0 && dtype < DSK_ST_N_DTYPES ? dtype_sizes[dtype] : 0;
}

const char *dsk_st_dtype_name(int dtype)
{
    return dtype >= 0 && dtype < DSK_ST_N_DTYPES ? dtype_names[dtype] : "?";
}

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < DSK_ST_N_DTYPES; i++)
        if (strcmp(s, dtype_names[i]) == 0)
            return i;
    return -1;
}

/* Element and byte counts of a shape; 0 on overflow.  Like Hugging Face's
 * reader, the product is taken left to right and any overflow is refused,
 * even one that a later zero dimension would cancel. */
static int shape_sizes(int ndim, const int64_t *shape, int dtype, uint64_t *n_elems, uint64_t *nbytes)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, (uint64_t)shape[i], &n))
            return 0;
    if (__builtin_mul_overflow(n, (uint64_t)dsk_st_dtype_size(dtype), nbytes) || *nbytes > (uint64_t)INT64_MAX)
        return 0;
    *n_elems = n;
    return 1;
}

/* ---- reading ------------------------------------------------------------------ */

/* One key of a JSON object, as found in the header text. */
typedef struct st_key {
    char *name;       /* decoded */
    size_t value_at;  /* offset of the value in the scanned text */
    size_t index;     /* position in the object */
} st_key;

static void free_keys(st_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(keys[i].name);
    free(keys);
}

static int cmp_key_name(const void *a, const void *b)
{
    return strcmp(((const st_key *)a)->name, ((const st_key *)b)->name);
}

static int cmp_key_index(const void *a, const void *b)
{
    size_t x = ((const st_key *)a)->index, y = ((const st_key *)b)->index;
    return x < y ? -1 : x > y;
}

/* Decodes the JSON string literal s[0..n) (quotes included).  Returns NULL
 * if it is not a string or holds a NUL, which a C string cannot carry. */
static char *decode_key(const char *s, size_t n)
{
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return NULL;
    if (!memchr(s, '\\', n))
        return memchr(s + 1, '\0', n - 2) ? NULL : dsk_xstrndup(s + 1, n - 2);
    char msg[128];
    struct json_object *o = dsk_json_parse(s, n, msg, sizeof msg);
    char *r = NULL;
    if (dsk_json_is(o, json_type_string)) {
        size_t len = (size_t)json_object_get_string_len(o);
        const char *v = json_object_get_string(o);
        if (!memchr(v, '\0', len))
            r = dsk_xstrndup(v, len);
    }
    json_object_put(o);
    return r;
}

/* The keys of the JSON object at s[0] == '{', in order, from the text:
 * json-c keeps only the last of duplicate keys, so they are found here.
 * The text has already been parsed whole, so it is valid JSON; the scan
 * still stays within s[0..n).  Returns 0, or a message in why. */
static int scan_keys(const char *s, size_t n, st_key **out, size_t *n_out, const char **why, char **bad)
{
    st_key *keys = NULL;
    size_t nk = 0, cap = 0;
    int depth = 0, expect_key = 0;
    *why = NULL;
    *bad = NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') {
            size_t start = i;
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            if (i >= n)
                break;
            if (depth == 1 && expect_key) {
                char *name = decode_key(s + start, i + 1 - start);
                if (!name) {
                    *why = "a key holds a NUL character";
                    break;
                }
                if (nk == cap) {
                    cap = cap ? 2 * cap : 16;
                    keys = dsk_xrealloc(keys, cap * sizeof *keys);
                }
                keys[nk] = (st_key){name, 0, nk};
                nk++;
                expect_key = 0;
            }
        } else if (c == '{' || c == '[') {
            if (++depth == 1)
                expect_key = 1;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                break;
        } else if (depth == 1 && c == ',') {
            expect_key = 1;
        } else if (depth == 1 && c == ':' && nk) {
            size_t v = i + 1;
            while (v < n && (s[v] == ' ' || s[v] == '\t' || s[v] == '\n' || s[v] == '\r'))
                v++;
            keys[nk - 1].value_at = v;
        }
    }
    if (!*why && nk > 1) {
        qsort(keys, nk, sizeof *keys, cmp_key_name);
        for (size_t i = 1; i < nk; i++)
            if (strcmp(keys[i - 1].name, keys[i].name) == 0) {
                *why = "duplicate key";
                *bad = dsk_xstrdup(keys[i].name);
                break;
            }
        qsort(keys, nk, sizeof *keys, cmp_key_index);
    }
    if (*why) {
        free_keys(keys, nk);
        return -1;
    }
    *out = keys;
    *n_out = nk;
    return 0;
}

/* Reads a JSON integer in [0, 2^63 - 1): 0, or -1 if it is not an integer,
 * -2 if negative, -3 if too large (json-c gives INT64_MAX for any larger
 * integer, so that value is refused too). */
static int get_nonneg(struct json_object *j, int64_t *v)
{
    if (!dsk_json_is(j, json_type_int))
        return -1;
    *v = json_object_get_int64(j);
    return *v < 0 ? -2 : *v == INT64_MAX ? -3 : 0;
}

typedef struct st_span {
    uint64_t begin, end;
    size_t index;  /* in tensors[] before sorting */
} st_span;

static int cmp_span(const void *a, const void *b)
{
    const st_span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int parse_tensor(dsk_st_tensor *t, struct json_object *o, uint64_t data_len, st_span *span, const char *name,
                        dsk_err *err)
{
    const char *tn = t->name;
    if (!dsk_json_is(o, json_type_object))
        return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": not a JSON object", name, tn);
    struct json_object *j = dsk_json_get_string(o, "dtype");
    if (!j)
        return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": \"dtype\" must be a string", name, tn);
    if ((t->dtype = dtype_from_name(json_object_get_string(j))) < 0)
        return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": unknown dtype \"%.32s\"", name, tn,
                        json_object_get_string(j));
    if (!json_object_object_get_ex(o, "shape", &j) || !dsk_json_is(j, json_type_array))
        return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": \"shape\" must be a list of integers", name, tn);
    size_t nd = json_object_array_length(j);
    if (nd > DSK_ST_MAX_DIMS)
        return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": %zu dimensions, more than %d", name, tn, nd,
                        DSK_ST_MAX_DIMS);
    t->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        struct json_object *d = json_object_array_get_idx(j, i);
        int r = get_nonneg(d, &t->shape[i]);
        if (r)
            return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": dimension %zu is %s", name, tn, i,
                            r == -1 ? "not an integer" : r == -2 ? "negative" : "out of range");
    }
    if (!shape_sizes(t->ndim, t->shape, t->dtype, &t->n_elems, &t->nbytes))
        return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": the element count of the shape overflows", name, tn);
    int64_t b, e;
    if (!json_object_object_get_ex(o, "data_offsets", &j) || !dsk_json_is(j, json_type_array) ||
        json_object_array_length(j) != 2 || get_nonneg(json_object_array_get_idx(j, 0), &b) ||
        get_nonneg(json_object_array_get_idx(j, 1), &e))
        return dsk_fail(err, EX_DATAERR,
                        "%s: tensor \"%s\": \"data_offsets\" must be two non-negative integers below 2^63", name, tn);
    if (b > e)
        return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": data_offsets [%" PRId64 ", %" PRId64 "] begin after they end",
                        name, tn, b, e);
    if ((uint64_t)e > data_len)
        return dsk_fail(err, EX_DATAERR,
                        "%s: tensor \"%s\": data_offsets [%" PRId64 ", %" PRId64 "] end past the data section (%" PRIu64
                        " bytes)",
                        name, tn, b, e, data_len);
    if ((uint64_t)(e - b) != t->nbytes)
        return dsk_fail(err, EX_DATAERR,
                        "%s: tensor \"%s\": data_offsets [%" PRId64 ", %" PRId64 "] hold %" PRIu64
                        " bytes, but %s of this shape takes %" PRIu64,
                        name, tn, b, e, (uint64_t)(e - b), dtype_names[t->dtype], t->nbytes);
    span->begin = (uint64_t)b;
    span->end = (uint64_t)e;
    return 0;
}

static int parse_metadata(dsk_safetensors *st, struct json_object *m, const char *text, size_t n, const char *name,
                          dsk_err *err)
{
    if (!dsk_json_is(m, json_type_object))
        return dsk_fail(err, EX_DATAERR, "%s: \"%s\" must be an object of strings", name, METADATA_KEY);
    st_key *keys;
    size_t nk;
    const char *why;
    char *bad;
    if (scan_keys(text, n, &keys, &nk, &why, &bad) != 0) {
        int rc = dsk_fail(err, EX_DATAERR, "%s: \"%s\": %s%s%s%s", name, METADATA_KEY, why, bad ? " \"" : "",
                          bad ? bad : "", bad ? "\"" : "");
        free(bad);
        return rc;
    }
    int rc = 0;
    if (nk != (size_t)json_object_object_length(m))
        rc = dsk_fail(err, EX_DATAERR, "%s: \"%s\": the keys could not be read", name, METADATA_KEY);
    st->meta_keys = dsk_xcalloc(nk ? nk : 1, sizeof *st->meta_keys);
    st->meta_values = dsk_xcalloc(nk ? nk : 1, sizeof *st->meta_values);
    for (size_t i = 0; i < nk && !rc; i++) {
        struct json_object *v;
        if (!json_object_object_get_ex(m, keys[i].name, &v)) {
            rc = dsk_fail(err, EX_DATAERR, "%s: \"%s\": key \"%s\" could not be read", name, METADATA_KEY,
                          keys[i].name);
            break;
        }
        if (!dsk_json_is(v, json_type_string)) {
            rc = dsk_fail(err, EX_DATAERR, "%s: \"%s\": the value of \"%s\" is not a string", name, METADATA_KEY,
                          keys[i].name);
            break;
        }
        size_t len = (size_t)json_object_get_string_len(v);
        if (memchr(json_object_get_string(v), '\0', len)) {
            rc = dsk_fail(err, EX_DATAERR, "%s: \"%s\": the value of \"%s\" holds a NUL character", name,
                          METADATA_KEY, keys[i].name);
            break;
        }
        st->meta_keys[i] = keys[i].name;
        keys[i].name = NULL;
        st->meta_values[i] = dsk_xstrndup(json_object_get_string(v), len);
        st->n_meta = i + 1;
    }
    free_keys(keys, nk);
    return rc;
}

static int parse_header(dsk_safetensors *st, struct json_object *root, const char *hdr, size_t hlen, uint64_t data_len,
                        const uint8_t *data, const char *name, dsk_err *err)
{
    st_key *keys;
    size_t nk;
    const char *why;
    char *bad;
    if (scan_keys(hdr, hlen, &keys, &nk, &why, &bad) != 0) {
        int rc = bad && strcmp(why, "duplicate key") == 0
                     ? dsk_fail(err, EX_DATAERR, "%s: duplicate tensor name \"%s\" in the header", name, bad)
                     : dsk_fail(err, EX_DATAERR, "%s: header: %s", name, why);
        free(bad);
        return rc;
    }
    if (nk != (size_t)json_object_object_length(root)) {
        free_keys(keys, nk);
        return dsk_fail(err, EX_DATAERR, "%s: header: the keys could not be read", name);
    }
    int rc = 0;
    st_span *spans = dsk_xcalloc(nk ? nk : 1, sizeof *spans);
    dsk_st_tensor *ts = dsk_xcalloc(nk ? nk : 1, sizeof *ts);
    size_t nt = 0;
    for (size_t i = 0; i < nk && !rc; i++) {
        struct json_object *v;
        if (!json_object_object_get_ex(root, keys[i].name, &v)) {
            rc = dsk_fail(err, EX_DATAERR, "%s: header: key \"%s\" could not be read", name, keys[i].name);
            break;
        }
        if (strcmp(keys[i].name, METADATA_KEY) == 0) {
            size_t at = keys[i].value_at;
            rc = parse_metadata(st, v, hdr + at, at < hlen ? hlen - at : 0, name, err);
            continue;
        }
        dsk_st_tensor *t = &ts[nt];
        t->name = keys[i].name;
        keys[i].name = NULL;
        spans[nt].index = nt;
        nt++;
        rc = parse_tensor(t, v, data_len, &spans[nt - 1], name, err);
    }
    free_keys(keys, nk);
    if (!rc) {
        /* The tensors must cover the data section in order, without holes or overlaps. */
        qsort(spans, nt, sizeof *spans, cmp_span);
        uint64_t pos = 0;
        for (size_t i = 0; i < nt && !rc; i++) {
            const char *tn = ts[spans[i].index].name;
            if (spans[i].begin < pos)
                rc = dsk_fail(err, EX_DATAERR,
                              "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                              "] overlap the tensor before it, which ends at %" PRIu64,
                              name, tn, spans[i].begin, spans[i].end, pos);
            else if (spans[i].begin > pos)
                rc = dsk_fail(err, EX_DATAERR,
                              "%s: hole in the data section: bytes %" PRIu64 " to %" PRIu64
                              " belong to no tensor (before tensor \"%s\")",
                              name, pos, spans[i].begin, tn);
            else
                pos = spans[i].end;
        }
        if (!rc && pos != data_len)
            rc = dsk_fail(err, EX_DATAERR,
                          "%s: the data section is %" PRIu64 " bytes, but the tensors end at offset %" PRIu64, name,
                          data_len, pos);
    }
    if (!rc) {
        st->tensors = dsk_xcalloc(nt ? nt : 1, sizeof *st->tensors);
        for (size_t i = 0; i < nt; i++) {
            st->tensors[i] = ts[spans[i].index];
            st->tensors[i].data = data + spans[i].begin;
        }
        st->n_tensors = nt;
    } else {
        for (size_t i = 0; i < nt; i++)
            free(ts[i].name);
    }
    free(ts);
    free(spans);
    return rc;
}

static int parse(dsk_safetensors *st, const uint8_t *buf, size_t len, const char *name, dsk_err *err)
{
    if (len < 8)
        return dsk_fail(err, EX_DATAERR, "%s: %zu bytes, too short for a safetensors file (8-byte header length)",
                        name, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[i];
    if (n > DSK_ST_MAX_HEADER)
        return dsk_fail(err, EX_DATAERR, "%s: header length %" PRIu64 " is over the limit of %u bytes", name, n,
                        DSK_ST_MAX_HEADER);
    if (n > len - 8)
        return dsk_fail(err, EX_DATAERR, "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                        name, n, len);
    const char *hdr = (const char *)buf + 8;
    size_t hlen = (size_t)n;
    if (hlen == 0 || hdr[0] != '{')
        return dsk_fail(err, EX_DATAERR, "%s: the header is not a JSON object (it must start with '{')", name);
    size_t bad = dsk_utf8_find_invalid(hdr, hlen);
    if (bad < hlen)
        return dsk_fail(err, EX_DATAERR, "%s: the header is not valid UTF-8 at byte %zu", name, 8 + bad);
    if (memchr(hdr, '\0', hlen))
        return dsk_fail(err, EX_DATAERR, "%s: the header holds a NUL byte", name);
    char msg[256];
    struct json_object *root = dsk_json_parse(hdr, hlen, msg, sizeof msg);
    if (!root)
        return dsk_fail(err, EX_DATAERR, "%s: the header is not valid JSON: %s", name, msg);
    int rc = dsk_json_is(root, json_type_object)
                 ? parse_header(st, root, hdr, hlen, len - 8 - hlen, buf + 8 + hlen, name, err)
                 : dsk_fail(err, EX_DATAERR, "%s: the header is not a JSON object", name);
    json_object_put(root);
    return rc;
}

int dsk_st_parse(dsk_safetensors *st, const void *buf, size_t len, const char *name, dsk_err *err)
{
    memset(st, 0, sizeof *st);
    if (!name)
        name = "(buffer)";
    st->path = dsk_xstrdup(name);
    int rc = parse(st, buf, len, name, err);
    if (rc)
        dsk_st_close(st);
    return rc;
}

int dsk_st_open(dsk_safetensors *st, const char *path, dsk_err *err)
{
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);   /* a FIFO must not block the open */
    if (fd < 0)
        return dsk_fail(err, errno == ENOENT || errno == EACCES ? EX_NOINPUT : EX_IOERR, "%s: cannot open: %s", path,
                        strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return dsk_fail(err, EX_IOERR, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return dsk_fail(err, EX_NOINPUT, "%s: %s", path, S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return dsk_fail(err, EX_DATAERR, "%s: too large to map", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {  /* nothing to map; parse says why */
        close(fd);
        static const uint8_t none[8];
        return dsk_st_parse(st, none, size, path, err);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return dsk_fail(err, EX_IOERR, "%s: cannot map: %s", path, strerror(e));
    int rc = dsk_st_parse(st, map, size, path, err);
    if (rc) {
        munmap(map, size);
        return rc;
    }
    st->map = map;
    st->map_len = size;
    return 0;
}

const dsk_st_tensor *dsk_st_find(const dsk_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

const char *dsk_st_meta(const dsk_safetensors *st, const char *key)
{
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

void dsk_st_close(dsk_safetensors *st)
{
    if (st->map)
        munmap(st->map, st->map_len);
    for (size_t i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->path);
    memset(st, 0, sizeof *st);
}

/* ---- writing ---------------------------------------------------------------------- */

typedef struct st_wtensor {
    char *name;
    int dtype, ndim;
    int64_t shape[DSK_ST_MAX_DIMS];
    const void *data;
} st_wtensor;

struct dsk_st_writer {
    st_wtensor *t;
    size_t n, cap;
    char **meta_keys, **meta_values;
    size_t n_meta, cap_meta;
};

dsk_st_writer *dsk_st_writer_new(void)
{
    return dsk_xcalloc(1, sizeof(dsk_st_writer));
}

void dsk_st_writer_add(dsk_st_writer *w, const char *name, int dtype, int ndim, const int64_t *shape, const void *data)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->t = dsk_xrealloc(w->t, w->cap * sizeof *w->t);
    }
    st_wtensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = dsk_xstrdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim && i < DSK_ST_MAX_DIMS; i++)
        t->shape[i] = shape[i];
    t->data = data;
}

void dsk_st_writer_meta(dsk_st_writer *w, const char *key, const char *value)
{
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_values[i]);
            w->meta_values[i] = dsk_xstrdup(value);
            return;
        }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 8;
        w->meta_keys = dsk_xrealloc(w->meta_keys, w->cap_meta * sizeof *w->meta_keys);
        w->meta_values = dsk_xrealloc(w->meta_values, w->cap_meta * sizeof *w->meta_values);
    }
    w->meta_keys[w->n_meta] = dsk_xstrdup(key);
    w->meta_values[w->n_meta++] = dsk_xstrdup(value);
}

void dsk_st_writer_free(dsk_st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->t[i].name);
    free(w->t);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->meta_keys);
    free(w->meta_values);
    free(w);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int valid_utf8(const char *s)
{
    size_t n = strlen(s);
    return dsk_utf8_find_invalid(s, n) == n;
}

/* Checks the tensors and metadata and computes each tensor's size. */
static int check_writer(const dsk_st_writer *w, const char *out, uint64_t *sizes, dsk_err *err)
{
    uint64_t total = 0;
    for (size_t i = 0; i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        uint64_t n_elems;
        if (!valid_utf8(t->name) || strcmp(t->name, METADATA_KEY) == 0)
            return dsk_fail(err, EX_DATAERR, "%s: tensor %zu: the name \"%s\" is not allowed", out, i, t->name);
        if (t->dtype < 0 || t->dtype >= DSK_ST_N_DTYPES)
            return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": unknown dtype %d", out, t->name, t->dtype);
        if (t->ndim < 0 || t->ndim > DSK_ST_MAX_DIMS)
            return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": %d dimensions (0 to %d allowed)", out, t->name,
                            t->ndim, DSK_ST_MAX_DIMS);
        if (!shape_sizes(t->ndim, t->shape, t->dtype, &n_elems, &sizes[i]))
            return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": a negative dimension or an overflowing size", out,
                            t->name);
        if (sizes[i] && !t->data)
            return dsk_fail(err, EX_DATAERR, "%s: tensor \"%s\": no data for %" PRIu64 " bytes", out, t->name,
                            sizes[i]);
        if (__builtin_add_overflow(total, sizes[i], &total) || total > (uint64_t)INT64_MAX)
            return dsk_fail(err, EX_DATAERR, "%s: the tensors are too large together", out);
    }
    if (w->n > 1) {
        const char **names = dsk_xmalloc(w->n * sizeof *names);
        for (size_t i = 0; i < w->n; i++)
            names[i] = w->t[i].name;
        qsort(names, w->n, sizeof *names, cmp_str_ptr);
        int rc = 0;
        for (size_t i = 1; i < w->n && !rc; i++)
            if (strcmp(names[i - 1], names[i]) == 0)
                rc = dsk_fail(err, EX_DATAERR, "%s: duplicate tensor name \"%s\"", out, names[i]);
        free(names);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < w->n_meta; i++)
        if (!valid_utf8(w->meta_keys[i]) || !valid_utf8(w->meta_values[i]))
            return dsk_fail(err, EX_DATAERR, "%s: metadata entry %zu is not valid UTF-8", out, i);
    return 0;
}

int dsk_st_writer_write(dsk_st_writer *w, const char *path, dsk_err *err)
{
    const char *out = path && strcmp(path, "-") != 0 ? path : "standard output";
    uint64_t *sizes = dsk_xcalloc(w->n ? w->n : 1, sizeof *sizes);
    int rc = check_writer(w, out, sizes, err);
    if (rc) {
        free(sizes);
        return rc;
    }
    struct json_object *root = json_object_new_object();
    if (w->n_meta) {
        struct json_object *m = json_object_new_object();
        for (size_t i = 0; i < w->n_meta; i++)
            json_object_object_add(m, w->meta_keys[i], json_object_new_string(w->meta_values[i]));
        json_object_object_add(root, METADATA_KEY, m);
    }
    uint64_t pos = 0;
    for (size_t i = 0; i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        struct json_object *o = json_object_new_object(), *shape = json_object_new_array(),
                           *offsets = json_object_new_array();
        json_object_object_add(o, "dtype", json_object_new_string(dtype_names[t->dtype]));
        for (int d = 0; d < t->ndim; d++)
            json_object_array_add(shape, json_object_new_int64(t->shape[d]));
        json_object_object_add(o, "shape", shape);
        json_object_array_add(offsets, json_object_new_int64((int64_t)pos));
        pos += sizes[i];
        json_object_array_add(offsets, json_object_new_int64((int64_t)pos));
        json_object_object_add(o, "data_offsets", offsets);
        json_object_object_add(root, t->name, o);
    }
    dsk_buf hdr = {0};
    dsk_json_append(root, &hdr);
    json_object_put(root);
    while ((8 + hdr.len) % 8)
        dsk_buf_addc(&hdr, ' ');
    if (hdr.len > DSK_ST_MAX_HEADER) {
        dsk_buf_free(&hdr);
        free(sizes);
        return dsk_fail(err, EX_DATAERR, "%s: the header would be %zu bytes, over the limit of %u", out, hdr.len,
                        DSK_ST_MAX_HEADER);
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)hdr.len >> (8 * i));
    dsk_outfile f;
    if ((rc = dsk_outfile_open(&f, path, err)) != 0) {
        dsk_buf_free(&hdr);
        free(sizes);
        return rc;
    }
    int ok = fwrite(len8, 1, 8, f.fp) == 8 && fwrite(hdr.data, 1, hdr.len, f.fp) == hdr.len;
    for (size_t i = 0; i < w->n && ok; i++)
        ok = sizes[i] == 0 || fwrite(w->t[i].data, 1, (size_t)sizes[i], f.fp) == sizes[i];
    int e = errno;
    dsk_buf_free(&hdr);
    free(sizes);
    if (!ok) {
        dsk_outfile_abort(&f);
        return dsk_fail(err, EX_IOERR, "%s: write error: %s", out, strerror(e));
    }
    return dsk_outfile_commit(&f, err);
}
