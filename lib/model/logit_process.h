/* What a request can do to the logits before the sampler sees them, as
 * the OpenAI API and vLLM define it: a bias on chosen tokens, and
 * penalties on the tokens already in the sequence.
 *
 *   logit_bias          logit[t] += bias (OpenAI: -100 bans, +100 forces)
 *   repetition_penalty  every token of the prompt or the output so far:
 *                       logit / r when positive, logit * r when not
 *                       (Keskar et al. 2019, as Hugging Face and vLLM)
 *   frequency_penalty   logit[t] -= f * (times t was generated)
 *   presence_penalty    logit[t] -= p once t was generated at all
 *
 * applied in that order, to the raw logits, before temperature (vLLM's
 * order).  Frequency and presence count the generated tokens only, as
 * OpenAI's formula does; repetition counts the prompt too.
 * A dsk_token_counts keeps one sequence's counts: a dense array over the
 * vocabulary for O(1) updates, and the list of tokens seen so that
 * applying and clearing cost the tokens seen, not the vocabulary. */
#ifndef DSK_MODEL_LOGIT_PROCESS_H
#define DSK_MODEL_LOGIT_PROCESS_H

#include <stdint.h>

typedef struct dsk_logit_bias {
    int32_t token;
    float bias;
} dsk_logit_bias;

typedef struct dsk_penalties {
    double repetition;   /* > 0; 1 (or 0, unset) is none */
    double frequency;    /* 0: none */
    double presence;     /* 0: none */
} dsk_penalties;

typedef struct dsk_token_counts {
    int vocab;
    int32_t *count;      /* [vocab]: times generated, plus DSK_IN_PROMPT when in the prompt */
    int32_t *seen;       /* the tokens whose count is nonzero, each once */
    int n_seen, cap_seen;
} dsk_token_counts;

/* Whether the penalties change anything (and so need counting). */
int dsk_penalties_active(const dsk_penalties *p);

/* vocab tokens, nothing counted; the array is allocated at the first add. */
void dsk_token_counts_init(dsk_token_counts *c, int vocab);
void dsk_token_counts_free(dsk_token_counts *c);
/* Forgets every count (the cost of the tokens seen). */
void dsk_token_counts_clear(dsk_token_counts *c);
/* Counts tok (0 <= tok < vocab) as part of the prompt or as generated. */
void dsk_token_counts_add(dsk_token_counts *c, int32_t tok, int in_prompt);

/* Applies bias[0..n_bias) (tokens out of range are skipped) and the
 * penalties over counts (may be NULL when none are active) to logits[vocab]. */
void dsk_logits_process(float *logits, int vocab, const dsk_logit_bias *bias, int n_bias, const dsk_penalties *p,
                        const dsk_token_counts *counts);

#endif
