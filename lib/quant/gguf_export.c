/* dsk checkpoint -> GGUF for llama.cpp (see dsk_gguf_export in gguf.h).
 *
 * A dense all-global dsk model is a Hugging Face Llama, and a mixture of
 * experts one (softmax router, shared experts) is a DeepSeek-MoE (V1,
 * llama.cpp's "deepseek" architecture), so the export does what
 * llama.cpp's own converter does for them: rename the tensors, stack each
 * layer's experts into one 3-D tensor per projection, permute the query
 * and key rows for llama.cpp's RoPE, and describe the tokenizer in
 * llama.cpp's terms. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpe/formats.h"
#include "bpe/tokenizer.h"
#include "core/fileio.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "quant/gguf.h"
#include "train/checkpoint.h"

/* llama.cpp's token types (tokenizer.ggml.token_type). */
enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_UNUSED = 5 };

/* ---- helpers, public for tests ---------------------------------------------------------------- */

const char *dsk_gguf_pre_tokenizer_name(const char *pattern)
{
    /* llama.cpp implements each pre-tokenizer by name, with its own copy of
     * the regex; these are the ones whose regex is exactly one dsk knows:
     * "gpt-2" is GPT-2's, "llama-bpe" (Llama 3) is cl100k's and "gpt-4o"
     * is o200k's. */
    static const struct {
        const char *dsk, *llama;
    } map[] = {{"gpt2", "gpt-2"}, {"cl100k", "llama-bpe"}, {"o200k", "gpt-4o"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *p = dsk_bpe_named_pattern(map[i].dsk);
        if (p && strcmp(p, pattern) == 0)
            return map[i].llama;
    }
    return NULL;
}

void dsk_gguf_permute_rope(float *out, const float *in, int n_heads, int head_dim, size_t cols)
{
    /* Hugging Face rotates the pair (i, i + hd/2) of each head; llama.cpp's
     * "normal" RoPE rotates the adjacent pair (2i, 2i+1), both by angle
     * pos * theta^(-2i/hd).  Moving the rows of W_q and W_k so that pair i
     * lands on rows 2i, 2i+1 makes q·k the same in both, since a dot
     * product does not care how its dimensions are ordered. */
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < half; i++) {
                size_t from = (size_t)h * head_dim + (size_t)s * half + i, to = (size_t)h * head_dim + 2 * (size_t)i + s;
                memcpy(out + to * cols, in + from * cols, cols * sizeof *out);
            }
}

int dsk_gguf_weight_type(int type, uint64_t row_len)
{
    /* llama.cpp's quantizer, meeting rows that are not whole blocks, falls
     * back to a format with smaller blocks (q4_K to q5_0 and so on) and
     * then to f16; dsk has no q5_0, so q4_K falls back to q8_0, the next
     * 32-value format it has, which is more precise rather than less. */
    if (type == DSK_GGUF_Q4_K && row_len % DSK_QK_K == 0)
        return type;
    if ((type == DSK_GGUF_Q4_K || type == DSK_GGUF_Q8_0) && row_len % DSK_QK8_0 == 0)
        return DSK_GGUF_Q8_0;
    if (type == DSK_GGUF_Q4_0 && row_len % DSK_QK4_0 == 0)
        return type;
    return type == DSK_GGUF_F32 ? DSK_GGUF_F32 : DSK_GGUF_F16;
}

/* ---- the export --------------------------------------------------------------------------------- */

enum { PERM_NONE, PERM_Q, PERM_K };

typedef struct plan_tensor {
    char hf[96], gguf[64];       /* hf: with n_src > 1, a pattern with %d for the expert */
    int n_dims;
    uint64_t ne[3];              /* ne[0] = columns (row length), ne[1] = rows, ne[2] = experts */
    int perm, type;
    int n_src;                   /* the safetensors tensors stacked in it: 1, or the experts */
    int tied;                    /* a second copy of a tensor planned before (output = embedding) */
    const dsk_st_tensor **src;
} plan_tensor;

typedef struct export_ctx {
    const char *dir;
    const char *arch;            /* "llama" or "deepseek" */
    dsk_model_config cfg;
    dsk_tokenizer tok;
    dsk_safetensors st;
    plan_tensor *t;
    size_t n_t, cap_t;
} export_ctx;

static void plan(export_ctx *x, const char *hf, const char *gguf, int n_dims, uint64_t rows, uint64_t cols, int perm)
{
    if (x->n_t == x->cap_t) {
        x->cap_t = x->cap_t ? 2 * x->cap_t : 64;
        x->t = dsk_xrealloc(x->t, x->cap_t * sizeof *x->t);
    }
    plan_tensor *t = &x->t[x->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->hf, sizeof t->hf, "%s", hf);
    snprintf(t->gguf, sizeof t->gguf, "%s", gguf);
    t->n_dims = n_dims;
    t->ne[0] = n_dims == 1 ? rows : cols;
    t->ne[1] = n_dims == 1 ? 1 : rows;
    t->ne[2] = 1;
    t->perm = perm;
    t->n_src = 1;
}

/* One 3-D tensor of the experts' [rows, cols] matrices, expert e's from
 * the tensor named by hf_pattern with e (llama.cpp's ffn_*_exps). */
static void plan_experts(export_ctx *x, const char *hf_pattern, const char *gguf, int experts, uint64_t rows,
                         uint64_t cols)
{
    plan(x, hf_pattern, gguf, 2, rows, cols, PERM_NONE);
    plan_tensor *t = &x->t[x->n_t - 1];
    t->n_dims = 3;
    t->ne[2] = (uint64_t)experts;
    t->n_src = experts;
}

static uint64_t plan_elems(const plan_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2]; }

/* A layer's mixture of experts under llama.cpp's deepseek names: the
 * router (ffn_gate_inp), the routed experts stacked, the shared experts
 * as one FFN of n_shared x d_ff_expert (as dsk keeps them). */
static void plan_moe(export_ctx *x, int l)
{
    const dsk_model_config *c = &x->cfg;
    uint64_t d = (uint64_t)c->d_model, Fe = (uint64_t)c->d_ff_expert, Fs = (uint64_t)c->n_shared_experts * Fe;
    int E = c->n_routed_experts;
    char hf[96], gg[64];
    snprintf(hf, sizeof hf, "model.layers.%d.mlp.gate.weight", l);
    snprintf(gg, sizeof gg, "blk.%d.ffn_gate_inp.weight", l);
    plan(x, hf, gg, 2, (uint64_t)E, d, PERM_NONE);
    static const char *const proj[] = {"gate", "up", "down"};
    for (int p = 0; p < 3; p++) {
        char pat[96];
        snprintf(pat, sizeof pat, "model.layers.%d.mlp.experts.%%d.%s_proj.weight", l, proj[p]);
        snprintf(gg, sizeof gg, "blk.%d.ffn_%s_exps.weight", l, proj[p]);
        plan_experts(x, pat, gg, E, p == 2 ? d : Fe, p == 2 ? Fe : d);
    }
    for (int p = 0; p < 3; p++) {
        snprintf(hf, sizeof hf, "model.layers.%d.mlp.shared_experts.%s_proj.weight", l, proj[p]);
        snprintf(gg, sizeof gg, "blk.%d.ffn_%s_shexp.weight", l, proj[p]);
        plan(x, hf, gg, 2, p == 2 ? d : Fs, p == 2 ? Fs : d, PERM_NONE);
    }
}

static void plan_model(export_ctx *x)
{
    const dsk_model_config *c = &x->cfg;
    uint64_t d = (uint64_t)c->d_model, hd = d / (uint64_t)c->n_heads, V = (uint64_t)c->vocab_size,
             qd = (uint64_t)c->n_heads * hd, kvd = (uint64_t)c->n_kv_heads * hd, ff = (uint64_t)c->d_ff;
    plan(x, "model.embed_tokens.weight", "token_embd.weight", 2, V, d, PERM_NONE);
    for (int l = 0; l < c->n_layers; l++) {
        static const struct {
            const char *hf, *gguf;
            int kind, perm;   /* kind: 0 norm [d], 1 q, 2 k/v, 3 o, 4 gate/up, 5 down */
        } per_layer[] = {
            {"input_layernorm.weight", "attn_norm.weight", 0, PERM_NONE},
            {"self_attn.q_proj.weight", "attn_q.weight", 1, PERM_Q},
            {"self_attn.k_proj.weight", "attn_k.weight", 2, PERM_K},
            {"self_attn.v_proj.weight", "attn_v.weight", 2, PERM_NONE},
            {"self_attn.o_proj.weight", "attn_output.weight", 3, PERM_NONE},
            {"post_attention_layernorm.weight", "ffn_norm.weight", 0, PERM_NONE},
            {"mlp.gate_proj.weight", "ffn_gate.weight", 4, PERM_NONE},
            {"mlp.up_proj.weight", "ffn_up.weight", 4, PERM_NONE},
            {"mlp.down_proj.weight", "ffn_down.weight", 5, PERM_NONE},
        };
        int moe = dsk_config_layer_is_moe(c, l);
        for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0] - (moe ? 3 : 0); i++) {
            char hf[96], gg[64];
            snprintf(hf, sizeof hf, "model.layers.%d.%s", l, per_layer[i].hf);
            snprintf(gg, sizeof gg, "blk.%d.%s", l, per_layer[i].gguf);
            uint64_t rows[] = {d, qd, kvd, d, ff, d}, cols[] = {0, d, d, qd, d, ff};
            int k = per_layer[i].kind;
            plan(x, hf, gg, k == 0 ? 1 : 2, rows[k], cols[k], per_layer[i].perm);
        }
        if (moe)
            plan_moe(x, l);
    }
    plan(x, "model.norm.weight", "output_norm.weight", 1, d, 0, PERM_NONE);
    /* llama's loader reuses token_embd when output is absent; deepseek's
     * requires output, so a tied embedding is written twice there. */
    if (!c->tie_embeddings)
        plan(x, "lm_head.weight", "output.weight", 2, V, d, PERM_NONE);
    else if (c->n_routed_experts > 0) {
        plan(x, "model.embed_tokens.weight", "output.weight", 2, V, d, PERM_NONE);
        x->t[x->n_t - 1].tied = 1;
    }
}

/* Every layer global, and dense (llama.cpp's "llama" architecture) or a
 * mixture of experts that llama.cpp's "deepseek" one (DeepSeek-MoE V1)
 * computes the same: a softmax router whose top-k probabilities weigh
 * the experts as they are (no renormalising, no selection bias), and
 * shared experts, which that architecture always adds. */
static int check_exportable(export_ctx *x, dsk_err *err)
{
    const dsk_model_config *c = &x->cfg;
    x->arch = c->n_routed_experts > 0 ? "deepseek" : "llama";
    for (int l = 0; l < c->n_layers; l++) {
        int k = dsk_config_layer_kind(c, l);
        if (k != DSK_ATTN_GLOBAL)
            return dsk_fail(err, EX_DATAERR,
                            "%s: dsk_attention_pattern \"%s\" gives layer %d %s attention, which llama.cpp's "
                            "%s architecture does not have; only all-global ('G') checkpoints export",
                            x->dir, c->attn_pattern, l, k == DSK_ATTN_LOCAL ? "local (L, sliding-window)" :
                            "hybrid (H, global + local mix)", x->arch);
    }
    if (c->n_routed_experts == 0)
        return 0;
    if (c->router != DSK_ROUTER_SOFTMAX)
        return dsk_fail(err, EX_DATAERR,
                        "%s: a sigmoid router (scoring_func) renormalises its top-k weights, which llama.cpp's "
                        "deepseek architecture does not do (its deepseek2 needs multi-head latent attention); "
                        "only softmax-routed mixtures of experts export", x->dir);
    if (c->balance == DSK_BALANCE_BIAS)
        return dsk_fail(err, EX_DATAERR,
                        "%s: experts chosen by score plus a balancing bias (dsk_balance bias) are not what llama.cpp's "
                        "deepseek architecture chooses; only aux-loss or unbalanced mixtures of experts export",
                        x->dir);
    if (c->n_routed_experts > 512)   /* LLAMA_MAX_EXPERTS: its loader refuses more */
        return dsk_fail(err, EX_DATAERR, "%s: %d routed experts; llama.cpp loads at most 512", x->dir,
                        c->n_routed_experts);
    if (c->n_shared_experts < 1)
        return dsk_fail(err, EX_DATAERR,
                        "%s: llama.cpp's deepseek architecture always adds shared experts, and this model has none "
                        "(n_shared_experts 0)", x->dir);
    return 0;
}

/* Expert e's tensor name from a plan's pattern ("...experts.%d.up_proj.weight"). */
static void expert_name(char *out, size_t n, const char *pattern, int e)
{
    const char *at = strstr(pattern, "%d");
    snprintf(out, n, "%.*s%d%s", (int)(at - pattern), pattern, e, at + 2);
}

/* Every planned tensor present with its shape, and nothing else (an extra
 * tensor would mean a model this export does not understand). */
static int check_tensors(export_ctx *x, dsk_err *err)
{
    size_t wanted = 0;
    for (size_t i = 0; i < x->n_t; i++) {
        plan_tensor *t = &x->t[i];
        t->src = dsk_xcalloc((size_t)t->n_src, sizeof *t->src);
        for (int e = 0; e < t->n_src; e++, wanted += !t->tied) {
            char name[128];
            if (t->n_src > 1)
                expert_name(name, sizeof name, t->hf, e);
            else
                snprintf(name, sizeof name, "%s", t->hf);
            const dsk_st_tensor *s = t->src[e] = dsk_st_find(&x->st, name);
            if (!s) {
                int quantized = dsk_st_find(&x->st, "model.layers.0.self_attn.q_proj.qweight") != NULL;
                return dsk_fail(err, EX_DATAERR, "%s/model.safetensors: no tensor %s%s", x->dir, name,
                                quantized ? " (an int4 GPTQ checkpoint: export the float checkpoint it was made from)"
                                          : "");
            }
            int dt = s->dtype, nd = t->n_dims == 1 ? 1 : 2;
            int ok = (dt == DSK_ST_F32 || dt == DSK_ST_F16 || dt == DSK_ST_BF16) && s->ndim == nd &&
                     (uint64_t)s->shape[0] == (nd == 1 ? t->ne[0] : t->ne[1]) &&
                     (nd == 1 || (uint64_t)s->shape[1] == t->ne[0]);
            if (!ok) {
                char want[64];
                if (nd == 1)
                    snprintf(want, sizeof want, "[%" PRIu64 "]", t->ne[0]);
                else
                    snprintf(want, sizeof want, "[%" PRIu64 ", %" PRIu64 "]", t->ne[1], t->ne[0]);
                return dsk_fail(err, EX_DATAERR, "%s/model.safetensors: %s is %s with %d dimensions, config.json "
                                "needs a float %s", x->dir, name, dsk_st_dtype_name(dt), s->ndim, want);
            }
        }
    }
    if (x->st.n_tensors != wanted)
        return dsk_fail(err, EX_DATAERR, "%s/model.safetensors: %zu tensors, a %s of this config.json has %zu", x->dir,
                        x->st.n_tensors, x->cfg.n_routed_experts > 0 ? "DeepSeek-MoE" : "dense Llama", wanted);
    return 0;
}

/* The tensor as floats, its sources one after another (safetensors data
 * may be unaligned: copied), all finite. */
static int load_floats(const export_ctx *x, const plan_tensor *t, float *out, dsk_err *err)
{
    for (int e = 0; e < t->n_src; e++) {
        const dsk_st_tensor *s = t->src[e];
        const uint8_t *p = s->data;
        if (s->dtype == DSK_ST_F32)
            memcpy(out, p, s->n_elems * sizeof *out);
        else
            for (uint64_t i = 0; i < s->n_elems; i++) {
                uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
                if (s->dtype == DSK_ST_F16)
                    out[i] = dsk_ggml_fp16_to_fp32(h);
                else {
                    uint32_t b = (uint32_t)h << 16;
                    memcpy(&out[i], &b, sizeof b);
                }
            }
        for (uint64_t i = 0; i < s->n_elems; i++)
            if (!isfinite(out[i]))
                return dsk_fail(err, EX_DATAERR, "%s/model.safetensors: %s holds a non-finite value at element %" PRIu64,
                                x->dir, s->name, i);
        out += s->n_elems;
    }
    return 0;
}

static void add_hparams(const export_ctx *x, dsk_gguf_writer *w, int type)
{
    const dsk_model_config *c = &x->cfg;
    static const int ftype[] = {[DSK_GGUF_F32] = DSK_GGUF_FTYPE_ALL_F32, [DSK_GGUF_F16] = DSK_GGUF_FTYPE_MOSTLY_F16,
                                [DSK_GGUF_Q4_0] = DSK_GGUF_FTYPE_MOSTLY_Q4_0,
                                [DSK_GGUF_Q8_0] = DSK_GGUF_FTYPE_MOSTLY_Q8_0,
                                [DSK_GGUF_Q4_K] = DSK_GGUF_FTYPE_MOSTLY_Q4_K_S};
    dsk_gguf_add_str(w, "general.architecture", x->arch);
    dsk_gguf_add_str(w, "general.name", "dsk");
    dsk_gguf_add_u32(w, "general.file_type", (uint32_t)ftype[type]);
    if (type != DSK_GGUF_F32 && type != DSK_GGUF_F16)
        dsk_gguf_add_u32(w, "general.quantization_version", 2);
    /* The architecture's keys: "llama.vocab_size", "deepseek.vocab_size", ... */
    char key[96];
#define KEY(k) (snprintf(key, sizeof key, "%s.%s", x->arch, k), key)
    dsk_gguf_add_u32(w, KEY("vocab_size"), (uint32_t)c->vocab_size);
    dsk_gguf_add_u32(w, KEY("context_length"), (uint32_t)c->max_seq_len);
    dsk_gguf_add_u32(w, KEY("embedding_length"), (uint32_t)c->d_model);
    dsk_gguf_add_u32(w, KEY("block_count"), (uint32_t)c->n_layers);
    dsk_gguf_add_u32(w, KEY("feed_forward_length"), (uint32_t)c->d_ff);
    dsk_gguf_add_u32(w, KEY("attention.head_count"), (uint32_t)c->n_heads);
    dsk_gguf_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    dsk_gguf_add_f32(w, KEY("rope.freq_base"), (float)c->rope_theta);
    dsk_gguf_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->norm_eps);
    dsk_gguf_add_u32(w, KEY("rope.dimension_count"), (uint32_t)(c->d_model / c->n_heads));
    if (c->n_routed_experts > 0) {
        dsk_gguf_add_u32(w, KEY("leading_dense_block_count"), (uint32_t)c->first_dense_layers);
        dsk_gguf_add_u32(w, KEY("expert_feed_forward_length"), (uint32_t)c->d_ff_expert);
        dsk_gguf_add_u32(w, KEY("expert_count"), (uint32_t)c->n_routed_experts);
        dsk_gguf_add_u32(w, KEY("expert_used_count"), (uint32_t)c->top_k);
        dsk_gguf_add_u32(w, KEY("expert_shared_count"), (uint32_t)c->n_shared_experts);
        dsk_gguf_add_f32(w, KEY("expert_weights_scale"), 1.0f);   /* dsk weighs experts by the probabilities */
    }
#undef KEY
}

/* tokenizer.ggml.*: tokens in GPT-2's byte-level unicode form (specials as
 * their text), one per embedding row (ids the tokenizer does not use
 * become "[PADn]", unused); merges in id order, which is dsk's merge
 * priority. */
static int add_tokenizer(const export_ctx *x, dsk_gguf_writer *w, const char *pre, dsk_err *err)
{
    const dsk_tokenizer *t = &x->tok;
    size_t V = (size_t)x->cfg.vocab_size;
    dsk_buf pool = {0};
    size_t *off = dsk_xmalloc(V * sizeof *off), *len = dsk_xmalloc(V * sizeof *len);
    int32_t *types = dsk_xmalloc(V * sizeof *types);
    size_t n_merges = 0, *moff = dsk_xmalloc(V * sizeof *moff), *mlen = dsk_xmalloc(V * sizeof *mlen);
    dsk_buf mpool = {0};
    int rc = 0;
    for (size_t id = 0; id < V && !rc; id++) {
        size_t n = 0;
        const char *b = id < t->n_vocab ? dsk_tokenizer_bytes(t, (uint32_t)id, &n) : NULL;
        off[id] = pool.len;
        if (!n) {
            dsk_buf_printf(&pool, "[PAD%zu]", id);
            types[id] = TOKEN_UNUSED;
        } else if (t->is_special[id]) {
            dsk_buf_add(&pool, b, n);
            types[id] = TOKEN_CONTROL;
        } else {
            dsk_bpe_bytes_to_unicode(b, n, &pool);
            types[id] = TOKEN_NORMAL;
        }
        len[id] = pool.len - off[id];
        if (types[id] != TOKEN_NORMAL || n < 2)
            continue;
        uint32_t l, r;
        if (dsk_bpe_merge_pair(t, (uint32_t)id, &l, &r)) {
            rc = dsk_fail(err, EX_DATAERR, "%s/tokenizer.json: token %zu cannot be made by merging lower tokens",
                          x->dir, id);
            break;
        }
        size_t ll, rl;
        const char *lb = dsk_tokenizer_bytes(t, l, &ll), *rb = dsk_tokenizer_bytes(t, r, &rl);
        moff[n_merges] = mpool.len;
        dsk_bpe_bytes_to_unicode(lb, ll, &mpool);
        dsk_buf_addc(&mpool, ' ');
        dsk_bpe_bytes_to_unicode(rb, rl, &mpool);
        mlen[n_merges] = mpool.len - moff[n_merges];
        n_merges++;
    }
    if (!rc) {
        const char **strs = dsk_xmalloc((V > n_merges ? V : n_merges) * sizeof *strs + sizeof *strs);
        for (size_t i = 0; i < V; i++)
            strs[i] = pool.data + off[i];
        dsk_gguf_add_str(w, "tokenizer.ggml.model", "gpt2");
        dsk_gguf_add_str(w, "tokenizer.ggml.pre", pre);
        dsk_gguf_add_str_array(w, "tokenizer.ggml.tokens", strs, len, V);
        dsk_gguf_add_i32_array(w, "tokenizer.ggml.token_type", types, V);
        for (size_t i = 0; i < n_merges; i++)
            strs[i] = mpool.data + moff[i];
        dsk_gguf_add_str_array(w, "tokenizer.ggml.merges", strs, mlen, n_merges);
        free(strs);
        /* dsk never prepends a BOS; without one, <|endoftext|> serves as
         * both, as in GPT-2.  add_bos_token must be said: llama.cpp adds a
         * BOS by default for the llama-bpe pre-tokenizer. */
        /* The configuration's end, else the tokenizer's <|endoftext|>: a
         * file without one would have llama.cpp take its own default id. */
        uint32_t eot = dsk_tokenizer_special(t, "<|endoftext|>");
        int eos = x->cfg.eos_token_id >= 0 ? x->cfg.eos_token_id : eot != DSK_BPE_NO_TOKEN ? (int)eot : -1;
        int bos = x->cfg.bos_token_id >= 0 ? x->cfg.bos_token_id : eos;
        if (bos >= 0)
            dsk_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
        if (eos >= 0)
            dsk_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
        dsk_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", 0);
        dsk_gguf_add_bool(w, "tokenizer.ggml.add_eos_token", 0);
    }
    dsk_buf_free(&pool);
    dsk_buf_free(&mpool);
    free(off);
    free(len);
    free(types);
    free(moff);
    free(mlen);
    return rc;
}

static int write_tensors(export_ctx *x, dsk_gguf_writer *w, dsk_err *err)
{
    size_t max = 0, max_perm = 0;   /* (the permuted ones are q and k, not the stacked experts) */
    for (size_t i = 0; i < x->n_t; i++) {
        size_t n = (size_t)plan_elems(&x->t[i]);
        max = n > max ? n : max;
        if (x->t[i].perm != PERM_NONE && n > max_perm)
            max_perm = n;
    }
    float *a = dsk_xmalloc(max * sizeof *a), *b = dsk_xmalloc((max_perm ? max_perm : 1) * sizeof *b);
    uint8_t *q = dsk_xmalloc(max * sizeof(float));   /* no encoding is larger than f32 */
    int rc = 0;
    int hd = x->cfg.d_model / x->cfg.n_heads;
    for (size_t i = 0; i < x->n_t && !rc; i++) {
        const plan_tensor *t = &x->t[i];
        size_t n = (size_t)plan_elems(t);
        if ((rc = load_floats(x, t, a, err)))
            break;
        const float *src = a;
        if (t->perm != PERM_NONE) {
            dsk_gguf_permute_rope(b, a, t->perm == PERM_Q ? x->cfg.n_heads : x->cfg.n_kv_heads, hd, t->ne[0]);
            src = b;
        }
        /* A weight the type cannot hold would become inf (f16) or be
         * clipped by a saturated scale: refused, not written wrong. */
        float amax = 0;
        size_t at = 0;
        for (size_t k = 0; k < n; k++)
            if (fabsf(src[k]) > amax)
                amax = fabsf(src[k]), at = k;
        if (amax > dsk_ggml_max_abs(t->type)) {
            /* the source tensor that holds it (an expert of a stack) */
            const dsk_st_tensor *from = t->src[(size_t)t->n_src > 1 ? at / t->src[0]->n_elems : 0];
            rc = dsk_fail(err, EX_DATAERR, "%s: a weight of magnitude %g is beyond what %s holds (%g at most); "
                          "export it as f32", from->name, (double)amax, dsk_ggml_type_name(t->type),
                          dsk_ggml_max_abs(t->type));
            break;
        }
        uint64_t nbytes;
        dsk_ggml_nbytes(t->type, n, &nbytes);
        dsk_ggml_quantize(t->type, src, q, n);
        rc = dsk_gguf_writer_data(w, q, (size_t)nbytes, err);
    }
    free(a);
    free(b);
    free(q);
    return rc;
}

static int export_open(export_ctx *x, dsk_err *err)
{
    char *p = dsk_path_join(x->dir, "config.json");
    int rc = dsk_config_load(&x->cfg, p, err);
    free(p);
    if (!rc)
        rc = check_exportable(x, err);
    if (!rc && x->cfg.vocab_size < 1)
        rc = dsk_fail(err, EX_DATAERR, "%s/config.json: no vocab_size", x->dir);
    if (!rc) {
        p = dsk_path_join(x->dir, "tokenizer.json");
        rc = dsk_bpe_load_json_regular(&x->tok, p, err);
        free(p);
    }
    if (!rc && x->tok.n_vocab > (uint32_t)x->cfg.vocab_size)
        rc = dsk_fail(err, EX_DATAERR, "%s: tokenizer.json has %u ids, config.json's vocab_size is %d", x->dir,
                      x->tok.n_vocab, x->cfg.vocab_size);
    if (!rc) {
        p = dsk_path_join(x->dir, "model.safetensors");
        rc = dsk_st_open(&x->st, p, err);
        free(p);
    }
    if (!rc) {
        plan_model(x);
        rc = check_tensors(x, err);
    }
    return rc;
}

int dsk_gguf_export(const char *ckpt_dir, const char *out_path, int type, dsk_err *err)
{
    if (!dsk_ggml_type_name(type))
        return dsk_fail(err, EX_USAGE, "GGUF type %d is not one of f32, f16, q8_0, q4_0, q4_K", type);
    export_ctx x;
    memset(&x, 0, sizeof x);
    dsk_tokenizer_init(&x.tok);
    char *dir = dsk_checkpoint_resolve(ckpt_dir, err);
    if (!dir)
        return err->code;
    x.dir = dir;
    int rc = export_open(&x, err);
    const char *pre = NULL;
    if (!rc && !(pre = dsk_gguf_pre_tokenizer_name(x.tok.pattern)))
        rc = dsk_fail(err, EX_DATAERR, "%s/tokenizer.json: llama.cpp has no pre-tokenizer with this regex (it has "
                      "GPT-2's, cl100k's and o200k's): %s", dir, x.tok.pattern);
    dsk_gguf_writer *w = dsk_gguf_writer_new();
    if (!rc) {
        add_hparams(&x, w, type);
        rc = add_tokenizer(&x, w, pre, err);
    }
    for (size_t i = 0; i < x.n_t && !rc; i++) {
        plan_tensor *t = &x.t[i];
        /* Norms stay f32, and the router too, as llama.cpp's converter and
         * quantizer keep it: the experts a token goes to turn on it. */
        int keep_f32 = t->n_dims == 1 || strstr(t->gguf, "ffn_gate_inp") != NULL;
        t->type = keep_f32 ? DSK_GGUF_F32 : dsk_gguf_weight_type(type, t->ne[0]);
        dsk_gguf_add_tensor(w, t->gguf, t->type, t->n_dims, t->ne);
    }
    if (!rc)
        rc = dsk_gguf_writer_begin(w, out_path, err);
    if (!rc)
        rc = write_tensors(&x, w, err);
    if (!rc)
        rc = dsk_gguf_writer_finish(w, err);
    dsk_gguf_writer_free(w);   /* removes the temporary when unfinished */
    dsk_st_close(&x.st);
    dsk_tokenizer_free(&x.tok);
    for (size_t i = 0; i < x.n_t; i++)
        free(x.t[i].src);
    free(x.t);
    free(dir);
    return rc;
}
