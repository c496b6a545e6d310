#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/tempdir.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"

void dsk_train_state_free(dsk_train_state *st)
{
    if (st->options)
        json_object_put(st->options);
    if (st->lineage)
        json_object_put(st->lineage);
    st->options = st->lineage = NULL;
}

/* ---- writing ---------------------------------------------------------------------------- */

static float *download_all(const dsk_model *m, const float *dev)
{
    float *host = dsk_xmalloc(m->n_params * sizeof *host);
    m->be->download(m->be, host, dev, m->n_params * sizeof *host);
    return host;
}

static void add_tensors(dsk_st_writer *w, const dsk_model *m, const float *host, const char *suffix)
{
    for (size_t i = 0; i < m->n_tensors; i++) {
        const dsk_tensor_info *t = &m->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%s%s", t->name, suffix);
        dsk_st_writer_add(w, name, DSK_ST_F32, t->ndim, t->shape, host + t->offset);
    }
}

static void state_json(const dsk_train_state *st, const dsk_optimizer *opt, dsk_buf *out)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "format", json_object_new_string("dsk-checkpoint"));
    json_object_object_add(o, "version", json_object_new_int(1));
    json_object_object_add(o, "stage", json_object_new_string(st->stage));
    json_object_object_add(o, "step", json_object_new_int64(st->step));
    json_object_object_add(o, "tokens", json_object_new_int64((int64_t)st->tokens));
    json_object_object_add(o, "skipped_steps", json_object_new_int64(st->skipped));
    json_object_object_add(o, "bad_steps_in_row", json_object_new_int64(st->bad_in_row));
    json_object_object_add(o, "seed", json_object_new_int64((int64_t)st->seed));
    struct json_object *cur = json_object_new_object();
    json_object_object_add(cur, "epoch", json_object_new_int64((int64_t)st->cursor.epoch));
    json_object_object_add(cur, "pos", json_object_new_int64((int64_t)st->cursor.pos));
    json_object_object_add(o, "data_cursor", cur);
    json_object_object_add(o, "world_size", json_object_new_int(st->world > 0 ? st->world : 1));
    /* 64-bit state words as hex strings: JSON numbers lose them elsewhere. */
    struct json_object *rng = json_object_new_array();
    for (int i = 0; i < 4; i++) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, st->rng.s[i]);
        json_object_array_add(rng, json_object_new_string(hex));
    }
    json_object_object_add(o, "rng", rng);
    if (opt) {
        struct json_object *sched = json_object_new_object();
        json_object_object_add(sched, "optimizer_step", json_object_new_int64(opt->step));
        json_object_object_add(sched, "lr", dsk_json_new_double(dsk_lr_at(&opt->o, opt->step)));
        json_object_object_add(o, "schedule", sched);
    }
    json_object_object_add(o, "loss_scale", dsk_json_new_double(st->loss_scale > 0 ? st->loss_scale : 1.0));
    json_object_object_add(o, "loss_scale_good_steps", json_object_new_int64(st->loss_scale_good));
    json_object_object_add(o, "tokenizer_fingerprint", json_object_new_string(st->fingerprint));
    if (st->options)
        json_object_object_add(o, "options", json_object_get(st->options));
    if (st->lineage)
        json_object_object_add(o, "lineage", json_object_get(st->lineage));
    dsk_buf_adds(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    dsk_buf_addc(out, '\n');
    json_object_put(o);
}

/* Removes step directories beyond the newest keep, by step number; never
 * the one just saved, which latest points at. */
static void prune(const char *out, int keep, long saved)
{
    if (keep <= 0)
        return;
    size_t n;
    long *steps = dsk_run_dir_steps(out, &n);
    for (size_t i = 0; i + (size_t)keep < n; i++) {
        if (steps[i] == saved)
            continue;
        char name[32];
        snprintf(name, sizeof name, "step-%08ld", steps[i]);
        char *p = dsk_path_join(out, name);
        dsk_remove_flat_dir(p);
        free(p);
    }
    free(steps);
}

int dsk_checkpoint_save(const char *out, const dsk_model *m, const dsk_optimizer *opt, const dsk_train_state *st,
                        const char *tokenizer, int keep, dsk_err *err)
{
    float *host = download_all(m, m->params), *host_m = NULL, *host_v = NULL;
    if (opt) {
        host_m = download_all(m, opt->m);
        host_v = download_all(m, opt->v);
    }
    int rc = dsk_checkpoint_save_host(out, m, host, opt, host_m, host_v, st, tokenizer, keep, err);
    free(host);
    free(host_m);
    free(host_v);
    return rc;
}

int dsk_checkpoint_save_host(const char *out, const dsk_model *m, const float *params, const dsk_optimizer *opt,
                             const float *opt_m, const float *opt_v, const dsk_train_state *st, const char *tokenizer,
                             int keep, dsk_err *err)
{
    if (mkdir(out, 0777) != 0 && errno != EEXIST)
        return dsk_fail(err, EX_CANTCREAT, "%s: %s", out, strerror(errno));
    char name[32];
    snprintf(name, sizeof name, "step-%08ld", st->step);
    char *target = dsk_path_join(out, name);
    dsk_tempdir dir;
    int rc = dsk_tempdir_create(&dir, target, NULL, NULL, err);   /* an existing step directory: "already exists" */
    if (rc) {
        free(target);
        return rc;
    }
    dsk_buf text = {0};
    dsk_config_write(&m->cfg, &text);
    char *p = dsk_tempdir_file(&dir, "config.json");
    rc = dsk_write_file(p, &text, err);
    free(p);

    if (!rc) {
        dsk_st_writer *w = dsk_st_writer_new();
        dsk_st_writer_meta(w, "format", "pt");
        add_tensors(w, m, params, "");
        p = dsk_tempdir_file(&dir, "model.safetensors");
        rc = dsk_st_writer_write(w, p, err);
        free(p);
        dsk_st_writer_free(w);
    }
    if (!rc && opt) {
        dsk_st_writer *w = dsk_st_writer_new();
        char step[32];
        snprintf(step, sizeof step, "%ld", opt->step);
        dsk_st_writer_meta(w, "optimizer", "adamw");
        dsk_st_writer_meta(w, "step", step);
        add_tensors(w, m, opt_m, ".exp_avg");
        add_tensors(w, m, opt_v, ".exp_avg_sq");
        p = dsk_tempdir_file(&dir, "optimizer.safetensors");
        rc = dsk_st_writer_write(w, p, err);
        free(p);
        dsk_st_writer_free(w);
    }
    if (!rc) {
        dsk_buf_clear(&text);
        state_json(st, opt, &text);
        p = dsk_tempdir_file(&dir, "state.json");
        rc = dsk_write_file(p, &text, err);
        free(p);
    }
    if (!rc && tokenizer) {
        p = dsk_tempdir_file(&dir, "tokenizer.json");
        rc = dsk_copy_file(tokenizer, p, err);
        free(p);
    }
    dsk_buf_free(&text);
    if (rc) {
        dsk_tempdir_abort(&dir);
        free(target);
        return rc;
    }
    rc = dsk_tempdir_commit(&dir, err);
    if (!rc) {
        char *link_tmp = dsk_path_join(out, "latest.tmp");
        char *link = dsk_path_join(out, "latest");
        unlink(link_tmp);
        if (symlink(name, link_tmp) != 0 || rename(link_tmp, link) != 0)
            rc = dsk_fail(err, EX_IOERR, "%s: cannot point at %s: %s", link, name, strerror(errno));
        free(link_tmp);
        free(link);
        prune(out, keep, st->step);
    }
    free(target);
    return rc;
}

/* ---- reading ---------------------------------------------------------------------------- */

char *dsk_checkpoint_resolve(const char *path, dsk_err *err)
{
    struct stat sb;
    char *cfg = dsk_path_join(path, "config.json");
    int direct = stat(cfg, &sb) == 0;
    free(cfg);
    if (direct)
        return dsk_xstrdup(path);
    char *latest = dsk_path_join(path, "latest");
    cfg = dsk_path_join(latest, "config.json");
    int via_latest = stat(cfg, &sb) == 0;
    free(cfg);
    char target[4096];   /* what latest names, when it is a link */
    ssize_t n = readlink(latest, target, sizeof target - 1);
    int linked = n > 0 && (size_t)n < sizeof target - 1;
    target[linked ? n : 0] = '\0';
    if (via_latest) {
        /* The step directory latest names now, not latest itself: every
         * file is then read from the one step, even if a running
         * dsk-train moves latest on meanwhile, and what is reported (the
         * "checkpoint" of dsk-eval's results, dsk-serve's ready line)
         * says which step it was. */
        if (!linked)
            return latest;   /* a directory, not a link (a copied run) */
        free(latest);
        return target[0] == '/' ? dsk_xstrdup(target) : dsk_path_join(path, target);
    }
    int dangling = linked && stat(latest, &sb) != 0;
    free(latest);
    if (stat(path, &sb) != 0)
        dsk_fail(err, EX_NOINPUT, "%s: no such checkpoint", path);
    else if (dangling)   /* its step directory removed or moved */
        dsk_fail(err, EX_NOINPUT, "%s: latest points at %s, which does not exist", path, target);
    else
        dsk_fail(err, EX_NOINPUT, "%s: not a checkpoint (no config.json, no latest/)", path);
    return NULL;
}

/* "2048,512": a shape for messages (cut short past len). */
static void shape_text(const int64_t *shape, int ndim, char *buf, size_t len)
{
    buf[0] = 0;
    for (int d = 0; d < ndim; d++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%" PRId64, d ? "," : "", shape[d]);
}

int dsk_checkpoint_read_tensors(const char *dir, const char *file, const dsk_model *m, const char *suffix,
                                size_t file_tensors, dsk_tensor_sink put, void *ctx, dsk_err *err)
{
    char *path = dsk_path_join(dir, file);
    dsk_safetensors st;
    int rc = dsk_st_open(&st, path, err);
    if (rc) {
        free(path);
        return rc;
    }
    for (size_t i = 0; i < m->n_tensors && !rc; i++) {
        const dsk_tensor_info *t = &m->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%s%s", t->name, suffix);
        const dsk_st_tensor *s = dsk_st_find(&st, name);
        if (!s) {
            size_t len = strlen(name);
            char qname[160];
            snprintf(qname, sizeof qname, "%.*s.qweight", (int)(len > 7 ? len - 7 : len), name);
            if (len > 7 && !strcmp(name + len - 7, ".weight") && dsk_st_find(&st, qname))
                rc = dsk_fail(err, EX_DATAERR, "%s: 4-bit weights made by dsk-quant, where full-precision "
                              "ones are needed (to train, or with a config.json that has no quantization_config); "
                              "use the full-precision checkpoint it was made from", path);
            else
                rc = dsk_fail(err, EX_DATAERR, "%s: no tensor %s (the checkpoint's shape does not match this model)",
                              path, name);
            break;
        }
        int same = s->dtype == DSK_ST_F32 && s->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = s->shape[d] == t->shape[d];
        if (!same) {
            char have[64], need[64];
            shape_text(s->shape, s->ndim, have, sizeof have);
            shape_text(t->shape, t->ndim, need, sizeof need);
            rc = dsk_fail(err, EX_DATAERR, "%s: %s is %s[%s] in the file, the model needs F32[%s] (config.json and "
                          "the weights disagree?)", path, name, dsk_st_dtype_name(s->dtype), have, need);
            break;
        }
        /* A run never saves a NaN or inf (its guard skips such steps), nor
         * a negative second moment: one is damage, which would otherwise
         * come out as NaN losses, scores or weights. */
        int squares = strcmp(suffix, ".exp_avg_sq") == 0;
        for (size_t e = 0; e < t->numel && !rc; e++) {
            float v;
            memcpy(&v, (const char *)s->data + e * sizeof v, sizeof v);   /* the data need not be aligned */
            if (!isfinite(v) || (squares && v < 0))
                rc = dsk_fail(err, EX_DATAERR, "%s: %s holds a %s value at element %zu (a damaged checkpoint)", path,
                              name, isfinite(v) ? "negative" : "non-finite", e);
        }
    }
    if (!rc && st.n_tensors != file_tensors)
        rc = dsk_fail(err, EX_DATAERR, "%s: %zu tensors, this model needs %zu (a different architecture?)", path,
                      st.n_tensors, file_tensors);
    /* Handed over only once all are checked: nothing half-loaded. */
    for (size_t i = 0; i < m->n_tensors && !rc; i++) {
        const dsk_tensor_info *t = &m->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%s%s", t->name, suffix);
        put(ctx, t->offset, dsk_st_find(&st, name)->data, t->numel);
    }
    dsk_st_close(&st);
    free(path);
    return rc;
}

static void put_host(void *ctx, size_t offset, const void *v, size_t n)
{
    memcpy((float *)ctx + offset, v, n * sizeof(float));
}

/* Loads the tensors named NAME+suffix into dev; the file must hold
 * file_tensors tensors in all (no strays from another architecture). */
static int load_tensors(const char *dir, const char *file, const dsk_model *m, float *dev, const char *suffix,
                        size_t file_tensors, dsk_err *err)
{
    float *host = dsk_xmalloc(m->n_params * sizeof *host);
    int rc = dsk_checkpoint_read_tensors(dir, file, m, suffix, file_tensors, put_host, host, err);
    if (!rc)
        m->be->upload(m->be, dev, host, m->n_params * sizeof *host);
    free(host);
    return rc;
}

int dsk_checkpoint_load_weights(const char *dir, dsk_model *m, dsk_err *err)
{
    return load_tensors(dir, "model.safetensors", m, m->params, "", m->n_tensors, err);
}

int dsk_checkpoint_optimizer_step(const char *dir, long *step_out, dsk_err *err)
{
    char *path = dsk_path_join(dir, "optimizer.safetensors");
    dsk_safetensors st;
    int rc = dsk_st_open(&st, path, err);
    if (!rc) {
        const char *step = dsk_st_meta(&st, "step");
        char *end;
        long s = step ? strtol(step, &end, 10) : -1;
        if (!step || !*step || *end || s < 0)
            rc = dsk_fail(err, EX_DATAERR, "%s: no optimizer step in the metadata", path);
        else if (s > 1L << 40)   /* no run is longer (dsk-train's limit): a damaged file */
            rc = dsk_fail(err, EX_DATAERR, "%s: optimizer step %s is over the limit of 2^40 steps (a damaged "
                          "checkpoint)", path, step);
        else
            *step_out = s;
        dsk_st_close(&st);
    }
    free(path);
    return rc;
}

int dsk_checkpoint_load_optimizer(const char *dir, dsk_optimizer *opt, dsk_err *err)
{
    size_t n = 2 * opt->model->n_tensors;
    int rc = load_tensors(dir, "optimizer.safetensors", opt->model, opt->m, ".exp_avg", n, err);
    if (!rc)
        rc = load_tensors(dir, "optimizer.safetensors", opt->model, opt->v, ".exp_avg_sq", n, err);
    if (!rc)
        rc = dsk_checkpoint_optimizer_step(dir, &opt->step, err);
    return rc;
}

static int get_i64(struct json_object *o, const char *key, int64_t *v)
{
    struct json_object *x;
    if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_int))
        return -1;
    *v = json_object_get_int64(x);
    return *v < 0 ? -1 : 0;
}

int dsk_train_state_parse(dsk_train_state *st, const char *text, size_t len, const char *path, dsk_err *err)
{
    int rc = 0;
    char msg[256];
    struct json_object *o = dsk_json_parse(text, len, msg, sizeof msg);
    if (!o || !json_object_is_type(o, json_type_object))
        rc = dsk_fail(err, EX_DATAERR, "%s: %s", path, o ? "not a JSON object" : msg);
    memset(st, 0, sizeof *st);
    struct json_object *fmt, *ver;
    if (!rc && (!json_object_object_get_ex(o, "format", &fmt) || !json_object_is_type(fmt, json_type_string) ||
                strcmp(json_object_get_string(fmt), "dsk-checkpoint") ||
                !json_object_object_get_ex(o, "version", &ver) || !json_object_is_type(ver, json_type_int)))
        rc = dsk_fail(err, EX_DATAERR, "%s: not a dsk checkpoint state (\"format\": \"dsk-checkpoint\" missing)", path);
    if (!rc && json_object_get_int64(ver) != 1)
        rc = dsk_fail(err, EX_DATAERR, "%s: state version %lld; this dsk reads version 1", path,
                      (long long)json_object_get_int64(ver));
    int64_t step, tokens, skipped, seed, epoch, pos;
    struct json_object *cur = NULL, *rng = NULL, *x;
    if (!rc && (get_i64(o, "step", &step) || get_i64(o, "tokens", &tokens) || get_i64(o, "skipped_steps", &skipped) ||
                get_i64(o, "seed", &seed) || !json_object_object_get_ex(o, "data_cursor", &cur) ||
                get_i64(cur, "epoch", &epoch) || get_i64(cur, "pos", &pos) ||
                !json_object_object_get_ex(o, "rng", &rng) || !json_object_is_type(rng, json_type_array) ||
                json_object_array_length(rng) != 4))
        rc = dsk_fail(err, EX_DATAERR, "%s: missing or invalid step, tokens, skipped_steps, seed, data_cursor "
                      "or rng", path);
    if (!rc) {
        st->step = step;
        st->tokens = (uint64_t)tokens;
        st->skipped = skipped;
        st->seed = (uint64_t)seed;
        st->cursor.epoch = (uint64_t)epoch;
        st->cursor.pos = (uint64_t)pos;
        for (int i = 0; i < 4 && !rc; i++) {
            struct json_object *h = json_object_array_get_idx(rng, (size_t)i);
            const char *s = json_object_is_type(h, json_type_string) ? json_object_get_string(h) : "";
            char *end;
            st->rng.s[i] = strtoull(s, &end, 16);
            if (strlen(s) != 16 || *end)
                rc = dsk_fail(err, EX_DATAERR, "%s: rng[%d] is not 16 hex digits", path, i);
        }
        st->world = 1;
        if (json_object_object_get_ex(o, "world_size", &x) && json_object_is_type(x, json_type_int) &&
            json_object_get_int64(x) >= 1 && json_object_get_int64(x) <= 1 << 24)
            st->world = (int)json_object_get_int64(x);
        /* Optional (older checkpoints have 1.0 or nothing); else in
         * --loss-scale's range (1e-45 trained an all-NaN model). */
        if (json_object_object_get_ex(o, "loss_scale", &x)) {
            double v = json_object_is_type(x, json_type_double) || json_object_is_type(x, json_type_int)
                           ? json_object_get_double(x) : NAN;
            if (!(v >= 0x1p-24 && v <= 1e38))
                rc = dsk_fail(err, EX_DATAERR, "%s: \"loss_scale\" %g is not in [2^-24, 1e38] (a damaged checkpoint)",
                              path, v);
            else
                st->loss_scale = v;
        }
        if (json_object_object_get_ex(o, "loss_scale_good_steps", &x) && json_object_is_type(x, json_type_int) &&
            json_object_get_int64(x) >= 0)
            st->loss_scale_good = (long)json_object_get_int64(x);
        /* Optional (older checkpoints: 0), at most the steps skipped. */
        if (json_object_object_get_ex(o, "bad_steps_in_row", &x) && json_object_is_type(x, json_type_int) &&
            json_object_get_int64(x) >= 0 && json_object_get_int64(x) <= skipped)
            st->bad_in_row = (long)json_object_get_int64(x);
        if (json_object_object_get_ex(o, "stage", &x) && json_object_is_type(x, json_type_string))
            snprintf(st->stage, sizeof st->stage, "%s", json_object_get_string(x));
        if (json_object_object_get_ex(o, "tokenizer_fingerprint", &x) && json_object_is_type(x, json_type_string))
            snprintf(st->fingerprint, sizeof st->fingerprint, "%s", json_object_get_string(x));
        if (json_object_object_get_ex(o, "options", &x) && json_object_is_type(x, json_type_object))
            st->options = json_object_get(x);
        if (json_object_object_get_ex(o, "lineage", &x) && json_object_is_type(x, json_type_array))
            st->lineage = json_object_get(x);
    }
    if (o)
        json_object_put(o);
    if (rc)
        dsk_train_state_free(st);
    return rc;
}

int dsk_checkpoint_load_state(const char *dir, dsk_train_state *st, dsk_err *err)
{
    char *path = dsk_path_join(dir, "state.json");
    dsk_buf b = {0};
    memset(st, 0, sizeof *st);
    int rc = dsk_read_file(path, 16 << 20, &b, err);
    if (!rc)
        rc = dsk_train_state_parse(st, b.data ? b.data : "", b.len, path, err);
    dsk_buf_free(&b);
    free(path);
    return rc;
}
