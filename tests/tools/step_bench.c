/* step_bench: the time of a decoding step of many rows, as dsk-serve's
 * engine runs it (lib/model/decode_batch.h), on a checkpoint.
 *
 *   step_bench CKPT ROWS CONTEXT [STEPS [RUNS]]
 *
 * ROWS sequences (1..64) each read a prompt of CONTEXT tokens, then take
 * STEPS steps of one token each (default 100), all the rows in one step,
 * as ROWS concurrent streams do; their contexts grow from CONTEXT to
 * CONTEXT + STEPS.  The checkpoint is loaded and frozen as dsk-serve
 * loads it (DSK_NO_PACKED and DSK_NO_INT4 apply).  Prints one JSON line:
 * milliseconds per step, best and median of RUNS runs (default 5), and
 * the tokens per second of the best. */
#include <stdio.h>
#include <stdlib.h>

#include "core/progress.h"
#include "eval/eval.h"
#include "model/decode_batch.h"

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: step_bench CKPT ROWS CONTEXT [STEPS [RUNS]]\n");
        return 64;
    }
    int rows = atoi(argv[2]), ctx = atoi(argv[3]), steps = argc > 4 ? atoi(argv[4]) : 100;
    int runs = argc > 5 ? atoi(argv[5]) : 5;
    if (rows < 1 || rows > 64 || ctx < 1 || steps < 1 || runs < 1 || runs > 100) {
        fprintf(stderr, "step_bench: ROWS 1..64, CONTEXT, STEPS >= 1, RUNS 1..100\n");
        return 64;
    }
    dsk_err err = {0};
    dsk_loaded l;
    if (dsk_load_checkpoint(&l, argv[1], "cpu", 0, &err)) {
        fprintf(stderr, "step_bench: %s\n", err.msg);
        return err.code;
    }
    dsk_loaded_freeze(&l);
    int V = l.model->cfg.vocab_size, max_len = ctx + steps;
    if (max_len > l.model->cfg.max_seq_len) {
        fprintf(stderr, "step_bench: CONTEXT + STEPS = %d is past the model's %d positions\n", max_len,
                l.model->cfg.max_seq_len);
        return 64;
    }
    int slots[64];
    int32_t tok[64];
    double ms[100];
    for (int run = 0; run < runs; run++) {
        dsk_batch_decoder *d = dsk_batch_decoder_new(l.model, rows, max_len, 64);
        for (int s = 0; s < rows; s++)   /* each prompt in chunks of up to 64 rows */
            for (int p = 0; p < ctx; p += 64) {
                int n = ctx - p < 64 ? ctx - p : 64;
                for (int j = 0; j < n; j++)
                    slots[j] = s, tok[j] = (int32_t)(((p + j) * 7 + s * 13 + 1) % V);
                if (dsk_batch_decoder_step(d, slots, tok, n, NULL, &err)) {
                    fprintf(stderr, "step_bench: %s\n", err.msg);
                    return err.code;
                }
            }
        double t0 = dsk_now();
        for (int k = 0; k < steps; k++) {
            for (int s = 0; s < rows; s++)
                slots[s] = s, tok[s] = (int32_t)((k * 31 + s * 17 + 3) % V);
            if (dsk_batch_decoder_step(d, slots, tok, rows, NULL, &err)) {
                fprintf(stderr, "step_bench: %s\n", err.msg);
                return err.code;
            }
        }
        ms[run] = (dsk_now() - t0) / steps * 1e3;
        dsk_batch_decoder_free(d);
    }
    qsort(ms, (size_t)runs, sizeof *ms, by_value);
    printf("{\"rows\":%d,\"context\":%d,\"steps\":%d,\"runs\":%d,\"best_ms\":%.3f,\"median_ms\":%.3f,"
           "\"tokens_per_s\":%.1f}\n",
           rows, ctx, steps, runs, ms[0], ms[runs / 2], rows / ms[0] * 1e3);
    dsk_loaded_free(&l);
    return 0;
}
