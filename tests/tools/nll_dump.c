/* nll_dump CKPT TEXT CTX [MAX_TOKENS]: dsk's per-token negative
 * log-likelihood of a text, as JSON, for comparing against another
 * implementation on the same tokens (tests/bench/gguf_llamacpp.py):
 *
 *   {"ctx": N, "tokens": [ids], "nll": [per predicted token], "argmax": [ids]}
 *
 * The text is encoded as plain text (no special tokens) and cut into
 * independent windows of CTX tokens; in each, every token after the first
 * is predicted from those before it (positions restart at 0). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/fileio.h"
#include "eval/eval.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: nll_dump CKPT TEXT CTX [MAX_TOKENS]\n");
        return EX_USAGE;
    }
    dsk_err err = {0};
    dsk_loaded l;
    if (dsk_load_checkpoint(&l, argv[1], "cpu", 0, &err))
        dsk_die_err(&err);
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
    dsk_model *m = l.model;
    int V = m->cfg.vocab_size;
    m->head_rows = INT_MAX;   /* the whole batch's logits are read */
    dsk_model_alloc_batch(m, 1, ctx);
    int32_t *tok = dsk_xmalloc((size_t)ctx * 4), *tgt = dsk_xmalloc((size_t)ctx * 4), *pos = dsk_xmalloc((size_t)ctx * 4);
    float *logits = dsk_xmalloc((size_t)ctx * V * sizeof *logits);
    printf("{\"ctx\":%d,\"tokens\":[", ctx);
    for (size_t i = 0; i < n; i++)
        printf("%s%u", i ? "," : "", e.ids[i]);
    printf("],\"nll\":[");
    dsk_buf argmax = {0};
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
        if (dsk_model_set_batch(m, &b, &err))
            dsk_die_err(&err);
        dsk_model_forward(m, 0);
        m->be->download(m->be, logits, m->logits, (size_t)T * V * sizeof *logits);
        for (int t = 0; t + 1 < T; t++) {
            const float *row = logits + (size_t)t * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best])
                    best = v;
            printf("%s%.7g", first ? "" : ",", m->host_losses[t]);
            char num[16];
            snprintf(num, sizeof num, "%s%d", first ? "" : ",", best);
            dsk_buf_adds(&argmax, num);
            first = 0;
        }
    }
    printf("],\"argmax\":[%.*s]}\n", (int)argmax.len, argmax.data ? argmax.data : "");
    dsk_buf_free(&argmax);
    dsk_buf_free(&text);
    dsk_bpe_encoder_free(&e);
    free(tok), free(tgt), free(pos), free(logits);
    dsk_loaded_free(&l);
    return 0;
}
