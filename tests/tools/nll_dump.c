/* nll_dump CKPT TEXT CTX [MAX_TOKENS] [--kl REF_CKPT]: dsk's per-token
 * negative log-likelihood of a text, as JSON, for comparing against another
 * implementation on the same tokens (tests/bench/gguf_llamacpp.py):
 *
 *   {"ctx": N, "tokens": [ids], "nll": [per predicted token], "argmax": [ids]}
 *
 * With --kl, also "kl": per predicted token, KL(REF || CKPT) in nats, the
 * divergence of CKPT's next-token distribution from REF's (a quantized
 * model against its float one: always >= 0, and far less noisy than the
 * change in perplexity), and "ref_argmax": REF's top tokens.
 *
 * The text is encoded as plain text (no special tokens) and cut into
 * independent windows of CTX tokens; in each, every token after the first
 * is predicted from those before it (positions restart at 0). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "eval/eval.h"

/* The log of the softmax's denominator of a row of V logits. */
static double log_z(const float *row, int V)
{
    float m = row[0];
    for (int v = 1; v < V; v++)
        m = row[v] > m ? row[v] : m;
    double z = 0;
    for (int v = 0; v < V; v++)
        z += expf(row[v] - m);
    return m + log(z);
}

/* KL(softmax(ref) || softmax(row)) = sum p (ref - row) - log Zref + log Zrow */
static double kl_of(const float *ref, const float *row, int V)
{
    double lzr = log_z(ref, V), lzq = log_z(row, V), d = 0;
    for (int v = 0; v < V; v++)
        d += expf((float)(ref[v] - lzr)) * (double)(ref[v] - row[v]);
    return d - lzr + lzq;
}

static int argmax_of(const float *row, int V)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        if (row[v] > row[best])
            best = v;
    return best;
}

/* Runs one window through a model; its logits land in logits. */
static void forward_window(dsk_model *m, const dsk_batch *b, float *logits, int V)
{
    dsk_err err = {0};
    if (dsk_model_set_batch(m, b, &err))
        dsk_die_err(&err);
    dsk_model_forward(m, 0);
    m->be->download(m->be, logits, m->logits, (size_t)b->T * V * sizeof *logits);
}

int main(int argc, char **argv)
{
    const char *ref_path = NULL;
    if (argc >= 6 && strcmp(argv[argc - 2], "--kl") == 0) {
        ref_path = argv[argc - 1];
        argc -= 2;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: nll_dump CKPT TEXT CTX [MAX_TOKENS] [--kl REF_CKPT]\n");
        return EX_USAGE;
    }
    dsk_err err = {0};
    dsk_loaded l, ref;
    if (dsk_load_checkpoint(&l, argv[1], "cpu", 0, &err))
        dsk_die_err(&err);
    if (ref_path && dsk_load_checkpoint(&ref, ref_path, "cpu", 0, &err))
        dsk_die_err(&err);
    if (ref_path && ref.model->cfg.vocab_size != l.model->cfg.vocab_size)
        dsk_die(EX_USAGE, "%s and %s have different vocabularies", ref_path, argv[1]);
    dsk_buf text = {0};
    if (dsk_read_file(argv[2], 1 << 26, &text, &err))
        dsk_die_err(&err);
    int ctx = atoi(argv[3]);
    long max_tokens = argc > 4 ? atol(argv[4]) : 1L << 40;
    if (ctx < 2 || ctx > l.model->cfg.max_seq_len)
        dsk_die(EX_USAGE, "CTX must be 2..%d", l.model->cfg.max_seq_len);
    dsk_bpe_encoder e;
    dsk_bpe_encoder_init(&e, &l.tok);
    if (dsk_bpe_encode(&l.tok, &e, text.data, text.len, 0, &err))
        dsk_die_err(&err);
    size_t n = e.n_ids < (size_t)max_tokens ? e.n_ids : (size_t)max_tokens;
    dsk_model *m = l.model, *rm = ref_path ? ref.model : NULL;
    int V = m->cfg.vocab_size;
    m->head_rows = INT_MAX;   /* the whole batch's logits are read */
    dsk_model_alloc_batch(m, 1, ctx);
    if (rm) {
        rm->head_rows = INT_MAX;
        dsk_model_alloc_batch(rm, 1, ctx);
    }
    int32_t *tok = dsk_xmalloc((size_t)ctx * 4), *tgt = dsk_xmalloc((size_t)ctx * 4), *pos = dsk_xmalloc((size_t)ctx * 4);
    float *logits = dsk_xmalloc((size_t)ctx * V * sizeof *logits);
    float *ref_logits = rm ? dsk_xmalloc((size_t)ctx * V * sizeof *ref_logits) : NULL;
    printf("{\"ctx\":%d,\"tokens\":[", ctx);
    for (size_t i = 0; i < n; i++)
        printf("%s%u", i ? "," : "", e.ids[i]);
    printf("],\"nll\":[");
    dsk_buf argmax = {0}, kl = {0}, ref_argmax = {0};
    int first = 1;
    for (size_t s = 0; s + 1 < n; s += (size_t)ctx) {
        int T = (int)(n - s < (size_t)ctx ? n - s : (size_t)ctx);
        if (T < 2)
            break;
        for (int t = 0; t < T; t++) {
            tok[t] = (int32_t)e.ids[s + t];
            tgt[t] = t + 1 < T ? (int32_t)e.ids[s + t + 1] : -1;
            pos[t] = t;
        }
        dsk_batch b = {1, T, tok, tgt, pos, NULL};
        forward_window(m, &b, logits, V);
        if (rm)
            forward_window(rm, &b, ref_logits, V);
        for (int t = 0; t + 1 < T; t++) {
            const float *row = logits + (size_t)t * V;
            printf("%s%.7g", first ? "" : ",", m->host_losses[t]);
            dsk_buf_printf(&argmax, "%s%d", first ? "" : ",", argmax_of(row, V));
            if (rm) {
                const float *rrow = ref_logits + (size_t)t * V;
                double d = kl_of(rrow, row, V);
                dsk_buf_printf(&kl, "%s%.7g", first ? "" : ",", d > 0 ? d : 0);
                dsk_buf_printf(&ref_argmax, "%s%d", first ? "" : ",", argmax_of(rrow, V));
            }
            first = 0;
        }
    }
    if (rm)
        printf("],\"kl\":[%.*s],\"ref_argmax\":[%.*s", (int)kl.len, kl.data ? kl.data : "", (int)ref_argmax.len,
               ref_argmax.data ? ref_argmax.data : "");
    printf("],\"argmax\":[%.*s]}\n", (int)argmax.len, argmax.data ? argmax.data : "");
    dsk_buf_free(&argmax);
    dsk_buf_free(&kl);
    dsk_buf_free(&ref_argmax);
    dsk_buf_free(&text);
    dsk_bpe_encoder_free(&e);
    free(tok), free(tgt), free(pos), free(logits), free(ref_logits);
    dsk_loaded_free(&l);
    if (ref_path)
        dsk_loaded_free(&ref);
    return 0;
}
