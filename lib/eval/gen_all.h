/* Many answers at once: every prompt through the continuous-batching
 * engine (serve/engine.h), so that the matrix products of a step serve
 * several answers and a long prompt is read in chunks beside the others.
 * What dsk-eval's generation tasks run on. */
#ifndef DSK_EVAL_GEN_ALL_H
#define DSK_EVAL_GEN_ALL_H

#include <stddef.h>
#include <stdint.h>

#include "model/generate.h"
#include "model/model.h"

typedef struct dsk_gen_job {
    const int32_t *prompt;
    int n_prompt;
    int32_t *out;          /* the answer's tokens, the stop token that ended it included (dsk_gen_jobs_free) */
    int n_out, cap;
} dsk_gen_job;

enum { DSK_GEN_MAX_SLOTS = 256 };   /* each slot has its KV cache and the vocabulary's scratch */

typedef struct dsk_gen_all_opts {
    int max_tokens;
    dsk_sampler_opts sampler;
    unsigned long long seed;   /* job i draws from a generator seeded from (seed, i) */
    int32_t stop[2];           /* tokens that end an answer, -1: none */
    int slots;                 /* answers decoded together (at most DSK_GEN_MAX_SLOTS) */
    int speculate;             /* draft tokens by prompt lookup a step (0: none; serve/engine.h) */
} dsk_gen_all_opts;

/* Fills each job's out and n_out (freed by dsk_gen_jobs_free; on an
 * error, already).  Every prompt with max_tokens after it must fit the
 * model's positions.  A job's answer is drawn as decoding it
 * alone would draw it, whatever the others, slots and speculate: the
 * same tokens where each row's logits have the bits they have alone (on
 * the cpu backend with AVX2, steps of up to 8 rows; see man dsk-serve). */
int dsk_generate_all(dsk_model *m, dsk_gen_job *jobs, size_t n, const dsk_gen_all_opts *o, dsk_err *err);
void dsk_gen_jobs_free(dsk_gen_job *jobs, size_t n);

#endif
