/* The model's architecture: what config.json holds (dsk-checkpoint(5)).
 *
 * Keys are Hugging Face Llama's (hidden_size, num_hidden_layers, ...), so
 * a dense all-global checkpoint loads in transformers' LlamaForCausalLM;
 * dsk's own additions carry a dsk_ prefix.  Presets give whole
 * configurations by name; `--set key=value` takes either the HF key or the
 * short alias (d_model, n_layers, n_heads, n_kv_heads, d_ff, seq_len,
 * pattern, window, ...). */
#ifndef DSK_MODEL_CONFIG_H
#define DSK_MODEL_CONFIG_H

#include "core/buf.h"
#include "core/err.h"
#include "ops/backend.h"

#define DSK_MAX_LAYERS 512

typedef struct dsk_model_config {
    int vocab_size;          /* 0 in a preset: taken from the dataset */
    int d_model, n_layers, n_heads, n_kv_heads, d_ff, max_seq_len;
    double rope_theta, norm_eps, init_std;
    int tie_embeddings;
    char attn_pattern[64];   /* G global, L local, H hybrid; tiled over the layers */
    int window;              /* local attention span, keys i-window+1 .. i */
    double alpha_init;       /* hybrid layers' alpha at initialisation */
    int bos_token_id, eos_token_id;   /* -1: none */

    /* Mixture of experts (DeepSeekMoE): layers from first_dense_layers on
     * replace the FFN by n_routed_experts experts of d_ff_expert (top_k
     * chosen per token) plus n_shared_experts always on.  0 experts: dense. */
    int n_routed_experts, n_shared_experts, top_k, d_ff_expert, first_dense_layers;
    int router;              /* DSK_ROUTER_* */
    int router_noise;        /* DSK_NOISE_*, training only */
    double noise_std, gumbel_temp;
    double capacity_factor;  /* tokens an expert takes: factor * n * top_k / experts; 0 = all */
    int balance;             /* DSK_BALANCE_* */
    double aux_coef, seq_aux_coef, bias_rate, z_loss_coef;
} dsk_model_config;

enum { DSK_NOISE_NONE, DSK_NOISE_GAUSSIAN, DSK_NOISE_GUMBEL };
enum { DSK_BALANCE_NONE, DSK_BALANCE_AUX, DSK_BALANCE_BIAS };

/* The preset names, NULL-terminated. */
extern const char *const dsk_config_preset_names[];
/* 0, or -1 when there is no preset of that name. */
int dsk_config_preset(dsk_model_config *c, const char *name);
/* A preset name or a config.json path, the file's keys read but the
 * whole not checked (dsk_config_validate, after --set). */
int dsk_config_resolve(dsk_model_config *c, const char *preset_or_file, dsk_err *err);
/* A checkpoint's config.json, read and checked. */
int dsk_config_load(dsk_model_config *c, const char *path, dsk_err *err);
int dsk_config_parse(dsk_model_config *c, const char *text, size_t len, const char *name, dsk_err *err);
/* "key=value" (EX_USAGE when the key is unknown or the value bad). */
int dsk_config_set(dsk_model_config *c, const char *assignment, dsk_err *err);
/* Every size positive and consistent (heads divide d_model, kv heads
 * divide heads, even head size, pattern letters valid); vocab_size may be
 * 0 (the dataset's), which dsk_model_create() does not accept. */
int dsk_config_validate(const dsk_model_config *c, dsk_err *err);
/* Appends config.json (pretty, trailing newline). */
void dsk_config_write(const dsk_model_config *c, dsk_buf *out);
/* DSK_ATTN_* of layer l. */
int dsk_config_layer_kind(const dsk_model_config *c, int l);
/* 1 when layer l's FFN is a mixture of experts. */
int dsk_config_layer_is_moe(const dsk_model_config *c, int l);
/* 1 when every layer is global and dense: the checkpoint is a plain Llama. */
int dsk_config_is_plain_llama(const dsk_model_config *c);
/* Number of parameters, and of multiply-adds per token in the forward
 * pass at sequence length T (for MFU and tokens/s estimates). */
size_t dsk_config_param_count(const dsk_model_config *c);
double dsk_config_flops_per_token(const dsk_model_config *c, int T);

#endif
