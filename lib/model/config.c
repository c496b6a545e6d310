/* config.json: presets, parsing, --set overrides, validation, output. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/json.h"
#include "model/config.h"
#include "ops/backend.h"

typedef struct preset {
    const char *name;
    int d, layers, heads, kv, ff, seq;
    const char *pattern;
    int window, tie;
    int experts, shared, top_k, ff_expert, first_dense;   /* 0 experts: dense */
} preset;

/* ff sizes are SwiGLU's ~8/3 d rounded to a multiple of 64 (Llama's rule).
 * The MoE presets' experts are a quarter of the dense FFN (fine-grained):
 * two routed and one shared active per token are 3/4 of its FLOPs. */
static const preset presets[] = {
    {"nano", 32, 2, 4, 2, 96, 64, "HG", 8, 1, 0, 0, 0, 0, 0},
    {"nano-moe", 32, 2, 4, 2, 96, 64, "HG", 8, 1, 4, 1, 2, 24, 1},
    {"tiny", 256, 6, 8, 4, 704, 256, "LHG", 32, 1, 0, 0, 0, 0, 0},
    {"tiny-moe", 256, 6, 8, 4, 704, 256, "LHG", 32, 1, 8, 1, 2, 176, 1},
    {"125m", 768, 12, 12, 12, 2048, 2048, "G", 256, 1, 0, 0, 0, 0, 0},
    {"1.3b", 2048, 24, 16, 16, 5504, 2048, "G", 512, 0, 0, 0, 0, 0, 0},
    {"7b", 4096, 32, 32, 32, 11008, 4096, "G", 1024, 0, 0, 0, 0, 0, 0},
};

const char *const dsk_config_preset_names[] = {"nano", "nano-moe", "tiny", "tiny-moe", "125m", "1.3b", "7b", NULL};

static void defaults(dsk_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->rope_theta = 10000.0;
    c->norm_eps = 1e-5;
    c->init_std = 0.02;
    c->window = 32;
    c->alpha_init = 0.7;
    c->bos_token_id = -1;
    c->eos_token_id = -1;
    strcpy(c->attn_pattern, "G");
    c->top_k = 2;
    c->router = DSK_ROUTER_SOFTMAX;
    c->router_noise = DSK_NOISE_NONE;
    c->noise_std = 0.1;
    c->gumbel_temp = 1.0;
    c->capacity_factor = 1.2;
    c->balance = DSK_BALANCE_AUX;
    c->aux_coef = 0.01;
    c->bias_rate = 0.001;
}

int dsk_config_preset(dsk_model_config *c, const char *name)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        const preset *p = &presets[i];
        if (strcmp(p->name, name))
            continue;
        defaults(c);
        c->d_model = p->d;
        c->n_layers = p->layers;
        c->n_heads = p->heads;
        c->n_kv_heads = p->kv;
        c->d_ff = p->ff;
        c->max_seq_len = p->seq;
        c->window = p->window;
        c->tie_embeddings = p->tie;
        snprintf(c->attn_pattern, sizeof c->attn_pattern, "%s", p->pattern);
        c->n_routed_experts = p->experts;
        c->n_shared_experts = p->shared;
        if (p->experts) {
            c->top_k = p->top_k;
            c->d_ff_expert = p->ff_expert;
            c->first_dense_layers = p->first_dense;
        }
        return 0;
    }
    return -1;
}

/* ---- one table of keys for parsing, --set and writing ---------------------------------------- */

enum { K_INT, K_DOUBLE, K_BOOL, K_PATTERN, K_ENUM };

typedef struct key {
    const char *json, *alias;
    int type;
    size_t off;
    int moe;                    /* written only for MoE models */
    const char *const *names;   /* K_ENUM: the values, by their index */
} key;

static const char *const router_names[] = {"softmax", "sigmoid", NULL};
static const char *const noise_names[] = {"none", "gaussian", "gumbel", NULL};
static const char *const balance_names[] = {"none", "aux", "bias", NULL};

#define F(field) offsetof(dsk_model_config, field)
static const key keys[] = {
    {"vocab_size", "vocab", K_INT, F(vocab_size), 0, NULL},
    {"hidden_size", "d_model", K_INT, F(d_model), 0, NULL},
    {"intermediate_size", "d_ff", K_INT, F(d_ff), 0, NULL},
    {"num_hidden_layers", "n_layers", K_INT, F(n_layers), 0, NULL},
    {"num_attention_heads", "n_heads", K_INT, F(n_heads), 0, NULL},
    {"num_key_value_heads", "n_kv_heads", K_INT, F(n_kv_heads), 0, NULL},
    {"max_position_embeddings", "seq_len", K_INT, F(max_seq_len), 0, NULL},
    {"rope_theta", "theta", K_DOUBLE, F(rope_theta), 0, NULL},
    {"rms_norm_eps", "eps", K_DOUBLE, F(norm_eps), 0, NULL},
    {"initializer_range", "init_std", K_DOUBLE, F(init_std), 0, NULL},
    {"tie_word_embeddings", "tie", K_BOOL, F(tie_embeddings), 0, NULL},
    {"bos_token_id", "bos", K_INT, F(bos_token_id), 0, NULL},
    {"eos_token_id", "eos", K_INT, F(eos_token_id), 0, NULL},
    {"dsk_attention_pattern", "pattern", K_PATTERN, F(attn_pattern), 0, NULL},
    {"dsk_sliding_window", "window", K_INT, F(window), 0, NULL},
    {"dsk_hybrid_alpha_init", "alpha", K_DOUBLE, F(alpha_init), 0, NULL},
    /* DeepSeek-V3's names where it has one. */
    {"n_routed_experts", "experts", K_INT, F(n_routed_experts), 1, NULL},
    {"n_shared_experts", "shared_experts", K_INT, F(n_shared_experts), 1, NULL},
    {"num_experts_per_tok", "top_k", K_INT, F(top_k), 1, NULL},
    {"moe_intermediate_size", "d_ff_expert", K_INT, F(d_ff_expert), 1, NULL},
    {"first_k_dense_replace", "first_dense_layers", K_INT, F(first_dense_layers), 1, NULL},
    {"scoring_func", "router", K_ENUM, F(router), 1, router_names},
    {"dsk_router_noise", "router_noise", K_ENUM, F(router_noise), 1, noise_names},
    {"dsk_noise_std", "noise_std", K_DOUBLE, F(noise_std), 1, NULL},
    {"dsk_gumbel_temperature", "gumbel_temp", K_DOUBLE, F(gumbel_temp), 1, NULL},
    {"dsk_capacity_factor", "capacity_factor", K_DOUBLE, F(capacity_factor), 1, NULL},
    {"dsk_balance", "balance", K_ENUM, F(balance), 1, balance_names},
    {"aux_loss_alpha", "aux_coef", K_DOUBLE, F(aux_coef), 1, NULL},
    {"dsk_seq_aux_alpha", "seq_aux_coef", K_DOUBLE, F(seq_aux_coef), 1, NULL},
    {"dsk_bias_update_rate", "bias_rate", K_DOUBLE, F(bias_rate), 1, NULL},
    {"dsk_router_z_loss", "z_loss", K_DOUBLE, F(z_loss_coef), 1, NULL},
};
#undef F
#define N_KEYS (sizeof keys / sizeof keys[0])

static const key *find_key(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].json, name) || !strcmp(keys[i].alias, name))
            return &keys[i];
    return NULL;
}

static int set_pattern(dsk_model_config *c, const char *s, dsk_err *err, const char *where)
{
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof c->attn_pattern)
        return dsk_fail(err, EX_DATAERR, "%s: attention pattern must be 1 to %zu letters", where,
                        sizeof c->attn_pattern - 1);
    for (size_t i = 0; i < n; i++)
        if (!strchr("GLH", s[i]))
            return dsk_fail(err, EX_DATAERR, "%s: attention pattern '%s': letters are G (global), L (local), "
                            "H (hybrid)", where, s);
    memcpy(c->attn_pattern, s, n + 1);
    return 0;
}

int dsk_config_set(dsk_model_config *c, const char *assignment, dsk_err *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return dsk_fail(err, EX_USAGE, "--set '%s': expected KEY=VALUE", assignment);
    char name[64];
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof name)
        n = sizeof name - 1;
    memcpy(name, assignment, n);
    name[n] = 0;
    const key *k = find_key(name);
    if (!k)
        return dsk_fail(err, EX_USAGE, "--set: unknown config key '%s'", name);
    const char *v = eq + 1;
    char *end;
    void *field = (char *)c + k->off;
    switch (k->type) {
    case K_INT: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || x < -1 || x > 1000000000)
            return dsk_fail(err, EX_USAGE, "--set %s: '%s' is not an integer in range", name, v);
        *(int *)field = (int)x;
        return 0;
    }
    case K_DOUBLE: {
        double x = strtod(v, &end);
        if (!*v || *end || !isfinite(x))
            return dsk_fail(err, EX_USAGE, "--set %s: '%s' is not a number", name, v);
        *(double *)field = x + 0.0;   /* -0 is 0 (see the JSON reader) */
        return 0;
    }
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1"))
            *(int *)field = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0"))
            *(int *)field = 0;
        else
            return dsk_fail(err, EX_USAGE, "--set %s: '%s' is not true or false", name, v);
        return 0;
    case K_ENUM:
        for (int i = 0; k->names[i]; i++)
            if (!strcmp(k->names[i], v)) {
                *(int *)field = i;
                return 0;
            }
        return dsk_fail(err, EX_USAGE, "--set %s: '%s' is not one of the values (see dsk-train(1))", name, v);
    default:
        return set_pattern(c, v, err, "--set pattern") ? (err->code = EX_USAGE) : 0;
    }
}

/* The keys of text into c, without dsk_config_validate's checks of the
 * whole. */
static int config_read(dsk_model_config *c, const char *text, size_t len, const char *name, dsk_err *err)
{
    char msg[256];
    struct json_object *root = dsk_json_parse(text, len, msg, sizeof msg);
    if (!root)
        return dsk_fail(err, EX_DATAERR, "%s: %s", name, msg);
    if (!dsk_json_is(root, json_type_object)) {
        json_object_put(root);
        return dsk_fail(err, EX_DATAERR, "%s: not a JSON object", name);
    }
    defaults(c);
    int rc = 0;
    for (size_t i = 0; i < N_KEYS && !rc; i++) {
        const key *k = &keys[i];
        struct json_object *v;
        if (!json_object_object_get_ex(root, k->json, &v) || json_object_is_type(v, json_type_null))
            continue;
        void *field = (char *)c + k->off;
        /* A list of end tokens (Llama 3.x Instruct's [128001, 128008,
         * 128009]): its first, the one dsk stops at among them. */
        if ((k->off == offsetof(dsk_model_config, eos_token_id) || k->off == offsetof(dsk_model_config, bos_token_id)) &&
            json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0)
            v = json_object_array_get_idx(v, 0);
        switch (k->type) {
        case K_INT:
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < -1 ||
                json_object_get_int64(v) > 1000000000)
                rc = dsk_fail(err, EX_DATAERR, "%s: \"%s\" must be an integer in range", name, k->json);
            else
                *(int *)field = (int)json_object_get_int64(v);
            break;
        case K_DOUBLE:
            if ((!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) ||
                !isfinite(json_object_get_double(v)))
                rc = dsk_fail(err, EX_DATAERR, "%s: \"%s\" must be a finite number", name, k->json);
            else   /* + 0.0: -0 would be written "-0" and read back as +0 (an integer) */
                *(double *)field = json_object_get_double(v) + 0.0;
            break;
        case K_BOOL:
            if (!json_object_is_type(v, json_type_boolean))
                rc = dsk_fail(err, EX_DATAERR, "%s: \"%s\" must be true or false", name, k->json);
            else
                *(int *)field = json_object_get_boolean(v);
            break;
        case K_ENUM: {
            int found = -1;
            for (int e = 0; json_object_is_type(v, json_type_string) && k->names[e]; e++)
                if (!strcmp(k->names[e], json_object_get_string(v)))
                    found = e;
            if (found < 0)
                rc = dsk_fail(err, EX_DATAERR, "%s: \"%s\" has an unknown value", name, k->json);
            else
                *(int *)field = found;
            break;
        }
        default:
            if (!json_object_is_type(v, json_type_string))
                rc = dsk_fail(err, EX_DATAERR, "%s: \"%s\" must be a string", name, k->json);
            else
                rc = set_pattern(c, json_object_get_string(v), err, name);
        }
    }
    /* A Hugging Face config without dsk keys: plain Llama, all global. */
    struct json_object *v;
    if (!rc && json_object_object_get_ex(root, "hidden_act", &v) &&
        (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "silu")))
        rc = dsk_fail(err, EX_DATAERR, "%s: \"hidden_act\" must be \"silu\" (SwiGLU)", name);
    json_object_put(root);
    return rc;
}

/* The error of a config named by name, if its message does not name it. */
static int named(int rc, const char *name, dsk_err *err)
{
    if (rc && !strstr(err->msg, name)) {
        char tmp[sizeof err->msg];
        memcpy(tmp, err->msg, sizeof tmp);
        dsk_fail(err, rc, "%s: %.900s", name, tmp);
    }
    return rc;
}

int dsk_config_parse(dsk_model_config *c, const char *text, size_t len, const char *name, dsk_err *err)
{
    int rc = config_read(c, text, len, name, err);
    if (!rc)
        rc = dsk_config_validate(c, err);
    return named(rc, name, err);
}

/* path's config, checked whole when check (a checkpoint's), or not (a
 * --config file, which --set may change before the checks). */
static int load(dsk_model_config *c, const char *path, int check, dsk_err *err)
{
    dsk_buf b = {0};
    int rc = dsk_read_file(path, 1 << 20, &b, err);   /* never blocks on a FIFO */
    if (!rc)
        rc = check ? dsk_config_parse(c, b.data ? b.data : "", b.len, path, err)
                   : named(config_read(c, b.data ? b.data : "", b.len, path, err), path, err);
    dsk_buf_free(&b);
    return rc;
}

int dsk_config_load(dsk_model_config *c, const char *path, dsk_err *err) { return load(c, path, 1, err); }

int dsk_config_resolve(dsk_model_config *c, const char *preset_or_file, dsk_err *err)
{
    if (dsk_config_preset(c, preset_or_file) == 0)
        return 0;
    if (!strchr(preset_or_file, '/') && !strstr(preset_or_file, ".json"))
        return dsk_fail(err, EX_USAGE, "--config '%s': no such preset (nano, nano-moe, tiny, tiny-moe, 125m, 1.3b, 7b) or file",
                        preset_or_file);
    return load(c, preset_or_file, 0, err);
}

int dsk_config_validate(const dsk_model_config *c, dsk_err *err)
{
    /* 0 is "the dataset's", filled in before a model is built. */
    if (c->vocab_size == 1 || c->vocab_size < 0 || c->vocab_size > (1 << 24))
        return dsk_fail(err, EX_DATAERR, "vocab_size %d: must be 2 to 16777216 (or 0: the dataset's)",
                        c->vocab_size);
    if (c->d_model < 2 || c->n_layers < 1 || c->n_layers > DSK_MAX_LAYERS || c->n_heads < 1 ||
        c->n_kv_heads < 1 || c->d_ff < 1 || c->max_seq_len < 1)
        return dsk_fail(err, EX_DATAERR, "sizes must be positive (and at most %d layers)", DSK_MAX_LAYERS);
    if (c->d_model > 65536 || c->d_ff > 262144 || c->max_seq_len > 1048576)
        return dsk_fail(err, EX_DATAERR, "a size is beyond the limits (d_model 65536, d_ff 262144, "
                        "seq_len 1048576)");
    if (c->d_model % c->n_heads)
        return dsk_fail(err, EX_DATAERR, "hidden_size %d is not a multiple of num_attention_heads %d",
                        c->d_model, c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return dsk_fail(err, EX_DATAERR, "num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        c->n_heads, c->n_kv_heads);
    if ((c->d_model / c->n_heads) % 2)
        return dsk_fail(err, EX_DATAERR, "head size %d must be even (RoPE rotates pairs)", c->d_model / c->n_heads);
    if (c->window < 1)
        return dsk_fail(err, EX_DATAERR, "dsk_sliding_window must be at least 1");
    if (!(c->rope_theta > 0) || !(c->norm_eps > 0) || !(c->init_std > 0) || !isfinite(c->rope_theta) ||
        !isfinite(c->norm_eps) || !isfinite(c->init_std) || !isfinite(c->alpha_init))
        return dsk_fail(err, EX_DATAERR, "rope_theta, rms_norm_eps and initializer_range must be positive and "
                        "finite, dsk_hybrid_alpha_init finite");
    if (c->n_routed_experts < 0 || c->n_routed_experts > 4096 ||
        (c->n_routed_experts > 0 && (c->n_shared_experts < 0 || c->n_shared_experts > 64)))
        return dsk_fail(err, EX_DATAERR, "n_routed_experts must be 0 to 4096, n_shared_experts 0 to 64");
    if (c->n_routed_experts > 0) {
        if (c->top_k < 1 || c->top_k > c->n_routed_experts)
            return dsk_fail(err, EX_DATAERR, "num_experts_per_tok %d: must be 1 to n_routed_experts (%d)", c->top_k,
                            c->n_routed_experts);
        if (c->d_ff_expert < 1 || c->d_ff_expert > 262144)
            return dsk_fail(err, EX_DATAERR, "moe_intermediate_size must be 1 to 262144 with experts");
        if (c->first_dense_layers < 0 || c->first_dense_layers > c->n_layers)
            return dsk_fail(err, EX_DATAERR, "first_k_dense_replace must be 0 to num_hidden_layers");
        if (!(c->capacity_factor >= 0) || !isfinite(c->capacity_factor) || !(c->noise_std >= 0) ||
            !isfinite(c->noise_std) || !(c->gumbel_temp > 0) || !isfinite(c->gumbel_temp) || !(c->aux_coef >= 0) ||
            !isfinite(c->aux_coef) || !(c->seq_aux_coef >= 0) || !isfinite(c->seq_aux_coef) ||
            !(c->bias_rate >= 0) || !isfinite(c->bias_rate) || !(c->z_loss_coef >= 0) || !isfinite(c->z_loss_coef))
            return dsk_fail(err, EX_DATAERR, "MoE coefficients must be finite and not negative (gumbel temperature "
                            "positive)");
    }
    if (c->vocab_size && (c->bos_token_id >= c->vocab_size || c->eos_token_id >= c->vocab_size))
        return dsk_fail(err, EX_DATAERR, "bos/eos token id beyond vocab_size");
    return 0;
}

int dsk_config_layer_kind(const dsk_model_config *c, int l)
{
    size_t n = strlen(c->attn_pattern);
    char k = n ? c->attn_pattern[(size_t)l % n] : 'G';
    return k == 'L' ? DSK_ATTN_LOCAL : k == 'H' ? DSK_ATTN_HYBRID : DSK_ATTN_GLOBAL;
}

int dsk_config_layer_is_moe(const dsk_model_config *c, int l)
{
    return c->n_routed_experts > 0 && l >= c->first_dense_layers;
}

int dsk_config_is_plain_llama(const dsk_model_config *c)
{
    if (c->n_routed_experts > 0)
        return 0;
    for (int l = 0; l < c->n_layers; l++)
        if (dsk_config_layer_kind(c, l) != DSK_ATTN_GLOBAL)
            return 0;
    return 1;
}

void dsk_config_write(const dsk_model_config *c, dsk_buf *out)
{
    /* A mixture of experts is not a Llama: say so, so transformers refuses
     * it instead of loading random MLPs. */
    int moe = c->n_routed_experts > 0;
    dsk_buf_printf(out, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
                        "  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"mlp_bias\": false,\n"
                        "  \"torch_dtype\": \"float32\"",
                   moe ? "DskMoeForCausalLM" : "LlamaForCausalLM", moe ? "dsk_moe" : "llama");
    for (size_t i = 0; i < N_KEYS; i++) {
        const key *k = &keys[i];
        const void *field = (const char *)c + k->off;
        if (k->moe && c->n_routed_experts == 0)
            continue;
        dsk_buf_printf(out, ",\n  \"%s\": ", k->json);
        if ((k->off == offsetof(dsk_model_config, bos_token_id) ||
             k->off == offsetof(dsk_model_config, eos_token_id)) && *(const int *)field < 0) {
            dsk_buf_adds(out, "null");
            continue;
        }
        switch (k->type) {
        case K_INT: dsk_buf_printf(out, "%d", *(const int *)field); break;
        case K_DOUBLE: {   /* the fewest digits that read back: 1e-05, not 1.0000000000000001e-05 */
            char text[40];
            dsk_json_double_text(*(const double *)field, text, sizeof text);
            dsk_buf_adds(out, text);
            break;
        }
        case K_BOOL: dsk_buf_adds(out, *(const int *)field ? "true" : "false"); break;
        case K_ENUM: dsk_buf_printf(out, "\"%s\"", k->names[*(const int *)field]); break;
        default: dsk_buf_printf(out, "\"%s\"", (const char *)field);
        }
    }
    dsk_buf_adds(out, "\n}\n");
}

/* Parameters of layer l's feed-forward block, all or only those one
 * token uses (the routed experts it is sent to). */
static double ffn_params(const dsk_model_config *c, int l, int active)
{
    double d = c->d_model;
    if (!dsk_config_layer_is_moe(c, l))
        return 3 * d * c->d_ff;
    double experts = active ? c->top_k : c->n_routed_experts;
    return d * c->n_routed_experts + (c->balance == DSK_BALANCE_BIAS && !active ? c->n_routed_experts : 0) +
           3 * d * c->d_ff_expert * (experts + c->n_shared_experts);
}

size_t dsk_config_param_count(const dsk_model_config *c)
{
    size_t d = (size_t)c->d_model, hd = d / (size_t)c->n_heads, kv = (size_t)c->n_kv_heads * hd;
    size_t n = (size_t)c->vocab_size * d * (c->tie_embeddings ? 1 : 2) + d;
    for (int l = 0; l < c->n_layers; l++)
        n += 2 * d + d * d * 2 + 2 * d * kv + (size_t)ffn_params(c, l, 0) +
             (dsk_config_layer_kind(c, l) == DSK_ATTN_HYBRID);
    return n;
}

double dsk_config_flops_per_token(const dsk_model_config *c, int T)
{
    /* Forward: 2 flops per weight of every matrix product a token goes
     * through (the embedding lookup is free, the LM head is not; MoE
     * layers count the router and the experts the token is sent to), plus
     * QK^T and PV over the keys each query sees on average. */
    double d = c->d_model, hd = d / c->n_heads, kv = c->n_kv_heads * hd;
    double mat = (double)c->vocab_size * d, attn = 0;
    for (int l = 0; l < c->n_layers; l++) {
        mat += 2 * d * d + 2 * d * kv + ffn_params(c, l, 1);
        int kind = dsk_config_layer_kind(c, l);
        double seen_g = (T + 1) / 2.0, seen_l = c->window < T ? c->window : seen_g;
        double seen = kind == DSK_ATTN_GLOBAL ? seen_g : kind == DSK_ATTN_LOCAL ? seen_l : seen_g + seen_l;
        attn += 2 * 2 * d * seen;
    }
    return 2 * mat + attn;
}
