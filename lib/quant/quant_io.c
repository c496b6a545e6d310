/* Quantized checkpoints: writing one (the GPTQ safetensors layout and a
 * quantization_config in config.json), and loading one into a model. */
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/tempdir.h"
#include "model/safetensors.h"
#include "quant/int4.h"
#include "quant/quant_io.h"

static const char *const method_names[] = {"rtn", "gptq", "awq"};

/* "model.layers.0.self_attn.q_proj.weight" -> "model.layers.0.self_attn.q_proj.SUFFIX" */
static void sibling(char *out, size_t cap, const char *name, const char *suffix)
{
    size_t n = strlen(name) - strlen(".weight");
    snprintf(out, cap, "%.*s.%s", (int)n, name, suffix);
}

static int write_config(const char *src, const char *dst, const dsk_quant_opts *o, dsk_err *err)
{
    dsk_buf text = {0};
    int rc = dsk_read_file(src, 1 << 20, &text, err);
    if (rc)
        return rc;
    char msg[256];
    struct json_object *root = dsk_json_parse(text.data, text.len, msg, sizeof msg);
    dsk_buf_free(&text);
    if (!dsk_json_is(root, json_type_object)) {
        json_object_put(root);
        return dsk_fail(err, EX_DATAERR, "%s: %s", src, root ? "not a JSON object" : msg);
    }
    /* As AutoGPTQ / transformers write it, plus what dsk made it with. */
    struct json_object *q = json_object_new_object();
    json_object_object_add(q, "quant_method", json_object_new_string("gptq"));
    json_object_object_add(q, "bits", json_object_new_int(4));
    json_object_object_add(q, "group_size", json_object_new_int(o->group_size));
    json_object_object_add(q, "desc_act", json_object_new_boolean(o->method == DSK_QUANT_GPTQ && o->act_order));
    json_object_object_add(q, "sym", json_object_new_boolean(o->sym));
    json_object_object_add(q, "damp_percent", dsk_json_new_double(o->damp));
    json_object_object_add(q, "true_sequential", json_object_new_boolean(1));
    json_object_object_add(q, "checkpoint_format", json_object_new_string("gptq"));
    json_object_object_add(q, "dsk_method", json_object_new_string(method_names[o->method]));
    json_object_object_add(root, "quantization_config", q);
    dsk_buf out = {0};
    dsk_buf_adds(&out, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    dsk_buf_addc(&out, '\n');
    json_object_put(root);
    rc = dsk_write_file(dst, &out, err);
    dsk_buf_free(&out);
    return rc;
}

static int write_report(const char *path, const dsk_model *m, const dsk_quantized *q, const dsk_quant_opts *o,
                        dsk_err *err)
{
    struct json_object *r = json_object_new_object(), *layers = json_object_new_array();
    json_object_object_add(r, "method", json_object_new_string(method_names[o->method]));
    json_object_object_add(r, "bits", json_object_new_int(4));
    json_object_object_add(r, "group_size", json_object_new_int(o->group_size));
    json_object_object_add(r, "calibration_tokens", json_object_new_int64(q->calib_tokens));
    for (int i = 0; i < q->n; i++) {
        const dsk_quant_layer *L = &q->layer[i];
        struct json_object *l = json_object_new_object();
        json_object_object_add(l, "name", json_object_new_string(m->tensors[L->tensor].name));
        json_object_object_add(l, "rows", json_object_new_int(L->q.rows));
        json_object_object_add(l, "cols", json_object_new_int(L->q.cols));
        json_object_object_add(l, "error", dsk_json_new_double(L->err));
        json_object_object_add(l, "rtn_error", dsk_json_new_double(L->rtn_err));
        if (L->alpha >= 0)
            json_object_object_add(l, "awq_alpha", dsk_json_new_double(L->alpha));
        json_object_array_add(layers, l);
    }
    json_object_object_add(r, "error_measure", json_object_new_string(
        q->calib_tokens ? "relative output error on the calibration inputs: tr(E H E^T) / tr(W H W^T)"
                        : "relative squared weight error"));
    json_object_object_add(r, "layers", layers);
    dsk_buf out = {0};
    dsk_buf_adds(&out, json_object_to_json_string_ext(r, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    dsk_buf_addc(&out, '\n');
    json_object_put(r);
    int rc = dsk_write_file(path, &out, err);
    dsk_buf_free(&out);
    return rc;
}

/* The source's state.json with a "quantize" stage added to its lineage,
 * so a quantized checkpoint says where it came from. */
static int write_state(const char *src_dir, const char *out, const char *dst, const dsk_quant_opts *o, dsk_err *err)
{
    char *src = dsk_path_join(src_dir, "state.json");
    dsk_buf text = {0};
    int rc = dsk_read_file(src, 1 << 24, &text, err);
    struct json_object *root = NULL, *lineage;
    if (!rc) {
        char msg[256];
        root = dsk_json_parse(text.data, text.len, msg, sizeof msg);
        if (!dsk_json_is(root, json_type_object))
            rc = dsk_fail(err, EX_DATAERR, "%s: %s", src, root ? "not a JSON object" : msg);
    }
    if (!rc) {
        if (!json_object_object_get_ex(root, "lineage", &lineage) || !dsk_json_is(lineage, json_type_array)) {
            lineage = json_object_new_array();
            json_object_object_add(root, "lineage", lineage);
        }
        struct json_object *st = json_object_new_object();
        json_object_object_add(st, "stage", json_object_new_string("quantize"));
        json_object_object_add(st, "method", json_object_new_string(method_names[o->method]));
        json_object_object_add(st, "group_size", json_object_new_int(o->group_size));
        if (o->calib)
            json_object_object_add(st, "data", json_object_new_string(o->calib));
        json_object_object_add(st, "init", json_object_new_string(src_dir));
        json_object_object_add(st, "out", json_object_new_string(out));
        json_object_array_add(lineage, st);
        dsk_buf b = {0};
        dsk_buf_adds(&b, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        dsk_buf_addc(&b, '\n');
        rc = dsk_write_file(dst, &b, err);
        dsk_buf_free(&b);
    }
    json_object_put(root);
    dsk_buf_free(&text);
    free(src);
    return rc;
}

int dsk_quant_save(const char *src_dir, const char *out, int replace, const dsk_model *m, const dsk_quantized *q,
                   const dsk_quant_opts *o, dsk_err *err)
{
    dsk_tempdir td;
    int rc = dsk_tempdir_create(&td, out, replace ? "quant.json" : NULL, DSK_QUANT_EXISTS_HINT, err);
    if (rc)
        return rc;
    float *host = dsk_xmalloc(m->n_params * sizeof *host);
    m->be->download(m->be, host, m->params, m->n_params * sizeof *host);
    dsk_q4_linear *packed = dsk_xcalloc((size_t)q->n, sizeof *packed);
    dsk_st_writer *w = dsk_st_writer_new();
    dsk_st_writer_meta(w, "format", "pt");
    dsk_st_writer_meta(w, "quantizer", "dsk-quant");
    char names[4][128];
    for (size_t i = 0; i < m->n_tensors && !rc; i++) {
        const dsk_tensor_info *t = &m->tensors[i];
        int k = -1;
        for (int j = 0; j < q->n; j++)
            if (q->layer[j].tensor == (int)i)
                k = j;
        if (k < 0) {
            dsk_st_writer_add(w, t->name, DSK_ST_F32, t->ndim, t->shape, host + t->offset);
            continue;
        }
        const dsk_qmat *Q = &q->layer[k].q;
        dsk_q4_linear *L = &packed[k];
        L->rows = Q->rows;
        L->cols = Q->cols;
        L->group_size = Q->group_size;
        if ((rc = dsk_q4_pack(L, Q->codes, Q->zeros, Q->scales, Q->g_idx, err))) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            dsk_fail(err, rc, "%s: %s", t->name, why);
            break;
        }
        sibling(names[0], sizeof names[0], t->name, "qweight");
        sibling(names[1], sizeof names[1], t->name, "qzeros");
        sibling(names[2], sizeof names[2], t->name, "scales");
        sibling(names[3], sizeof names[3], t->name, "g_idx");
        int64_t qw[2] = {Q->cols / 8, Q->rows}, qz[2] = {Q->n_groups, Q->rows / 8}, sc[2] = {Q->n_groups, Q->rows},
                gi[1] = {Q->cols};
        dsk_st_writer_add(w, names[0], DSK_ST_I32, 2, qw, L->qweight);
        dsk_st_writer_add(w, names[1], DSK_ST_I32, 2, qz, L->qzeros);
        dsk_st_writer_add(w, names[2], DSK_ST_F16, 2, sc, L->scales);
        dsk_st_writer_add(w, names[3], DSK_ST_I32, 1, gi, L->g_idx);
    }
    char *p;
    if (!rc) {
        p = dsk_tempdir_file(&td, "model.safetensors");
        rc = dsk_st_writer_write(w, p, err);
        free(p);
    }
    dsk_st_writer_free(w);
    for (int j = 0; j < q->n; j++)
        dsk_q4_free(&packed[j]);
    free(packed);
    free(host);
    if (!rc) {
        char *src = dsk_path_join(src_dir, "config.json");
        p = dsk_tempdir_file(&td, "config.json");
        rc = write_config(src, p, o, err);
        free(src), free(p);
    }
    if (!rc) {
        char *src = dsk_path_join(src_dir, "tokenizer.json");
        p = dsk_tempdir_file(&td, "tokenizer.json");
        rc = dsk_copy_file(src, p, err);
        free(src), free(p);
    }
    if (!rc) {
        p = dsk_tempdir_file(&td, "state.json");
        rc = write_state(src_dir, out, p, o, err);
        free(p);
    }
    if (!rc) {
        p = dsk_tempdir_file(&td, "quant.json");
        rc = write_report(p, m, q, o, err);
        free(p);
    }
    if (!rc)
        rc = dsk_tempdir_commit(&td, err);
    else
        dsk_tempdir_abort(&td);
    return rc;
}

int dsk_quant_is_quantized(const char *dir, int *group_size, dsk_err *err)
{
    char *path = dsk_path_join(dir, "config.json");
    dsk_buf text = {0};
    int rc = dsk_read_file(path, 1 << 20, &text, err);
    if (rc) {
        free(path);
        return -rc;
    }
    char msg[256];
    struct json_object *root = dsk_json_parse(text.data, text.len, msg, sizeof msg), *q, *v;
    dsk_buf_free(&text);
    int result = 0;
    if (dsk_json_is(root, json_type_object) && json_object_object_get_ex(root, "quantization_config", &q)) {
        const char *method = dsk_json_get_string(q, "quant_method")
                                 ? json_object_get_string(dsk_json_get_string(q, "quant_method")) : "";
        int bits = json_object_object_get_ex(q, "bits", &v) ? json_object_get_int(v) : 0;
        const char *fmt = dsk_json_get_string(q, "checkpoint_format")
                              ? json_object_get_string(dsk_json_get_string(q, "checkpoint_format")) : "gptq";
        if (strcmp(method, "gptq") || bits != 4 || strcmp(fmt, "gptq"))
            result = -dsk_fail(err, EX_DATAERR, "%s: quantization_config: only 4-bit GPTQ-layout checkpoints "
                               "(checkpoint_format gptq) are supported, not %s/%d bits/%s", path, method, bits, fmt);
        else {
            result = 1;
            *group_size = json_object_object_get_ex(q, "group_size", &v) ? json_object_get_int(v) : 128;
        }
    }
    json_object_put(root);
    free(path);
    return result;
}

int dsk_quant_load_weights(const char *dir, dsk_model *m, dsk_q4_linear *layers, dsk_err *err)
{
    char *path = dsk_path_join(dir, "model.safetensors");
    dsk_safetensors st;
    int rc = dsk_st_open(&st, path, err);
    if (rc) {
        free(path);
        return rc;
    }
    int group = 128;
    if (dsk_quant_is_quantized(dir, &group, err) < 0) {
        dsk_st_close(&st);
        free(path);
        return err->code;
    }
    float *host = dsk_xmalloc(m->n_params * sizeof *host);
    size_t used = 0;
    for (size_t i = 0; i < m->n_tensors && !rc; i++) {
        const dsk_tensor_info *t = &m->tensors[i];
        const dsk_st_tensor *s = dsk_st_find(&st, t->name);
        if (s) {
            int same = s->dtype == DSK_ST_F32 && s->ndim == t->ndim;
            for (int d = 0; same && d < t->ndim; d++)
                same = s->shape[d] == t->shape[d];
            if (!same)
                rc = dsk_fail(err, EX_DATAERR, "%s: %s has the wrong dtype or shape for this model", path, t->name);
            else
                memcpy(host + t->offset, s->data, t->numel * sizeof(float));
            used++;
            continue;
        }
        char nm[4][128];
        sibling(nm[0], sizeof nm[0], t->name, "qweight");
        sibling(nm[1], sizeof nm[1], t->name, "qzeros");
        sibling(nm[2], sizeof nm[2], t->name, "scales");
        sibling(nm[3], sizeof nm[3], t->name, "g_idx");
        const dsk_st_tensor *qt[4];
        for (int k = 0; k < 4; k++)
            qt[k] = dsk_quant_is_linear(t->name, t->ndim) ? dsk_st_find(&st, nm[k]) : NULL;
        if (!qt[0] || !qt[1] || !qt[2]) {
            rc = dsk_fail(err, EX_DATAERR, "%s: no tensor %s (nor its qweight, qzeros and scales)", path, t->name);
            break;
        }
        int rows = (int)t->shape[0], cols = (int)t->shape[1];
        int G = group > 0 ? group : cols, ng = cols / (G > 0 ? G : 1);
        int ok = qt[0]->dtype == DSK_ST_I32 && qt[0]->ndim == 2 && qt[0]->shape[0] == cols / 8 &&
                 qt[0]->shape[1] == rows && qt[1]->dtype == DSK_ST_I32 && qt[1]->ndim == 2 &&
                 qt[1]->shape[0] == ng && qt[1]->shape[1] == rows / 8 && qt[2]->dtype == DSK_ST_F16 &&
                 qt[2]->ndim == 2 && qt[2]->shape[0] == ng && qt[2]->shape[1] == rows &&
                 (!qt[3] || (qt[3]->dtype == DSK_ST_I32 && qt[3]->ndim == 1 && qt[3]->shape[0] == cols));
        if (!ok) {
            rc = dsk_fail(err, EX_DATAERR, "%s: the quantized tensors of %s do not have the GPTQ shapes for a %d x %d "
                          "layer with group size %d", path, t->name, rows, cols, G);
            break;
        }
        /* The arrays are used in place only if aligned; else copied. */
        dsk_q4_linear L = {0};
        L.rows = rows;
        L.cols = cols;
        L.group_size = G;
        void *copies[4] = {0};
        void **fields[4] = {(void **)&L.qweight, (void **)&L.qzeros, (void **)&L.scales, (void **)&L.g_idx};
        for (int k = 0; k < 4; k++) {
            if (!qt[k])
                continue;
            copies[k] = dsk_xmalloc(qt[k]->nbytes ? qt[k]->nbytes : 1);
            memcpy(copies[k], qt[k]->data, qt[k]->nbytes);
            *fields[k] = copies[k];
        }
        L.owns_packed = 1;
        if ((rc = dsk_q4_check(&L, err)) == 0) {
            dsk_q4_dequantize(&L, host + t->offset);
            if (layers)
                layers[i] = L;
            else
                dsk_q4_free(&L);
        } else {
            char tmp[sizeof err->msg];
            memcpy(tmp, err->msg, sizeof tmp);
            dsk_fail(err, rc, "%s: %s: %.900s", path, t->name, tmp);
            dsk_q4_free(&L);
        }
        used += 3 + (qt[3] != NULL);
    }
    if (!rc && used != st.n_tensors)
        rc = dsk_fail(err, EX_DATAERR, "%s: %zu tensors, this model uses %zu of them (a different architecture?)",
                      path, st.n_tensors, used);
    if (!rc)
        m->be->upload(m->be, m->params, host, m->n_params * sizeof *host);
    free(host);
    dsk_st_close(&st);
    free(path);
    return rc;
}
