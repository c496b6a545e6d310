/* Direct preference optimisation (Rafailov et al. 2023): the loss
 * -log sigmoid(beta [(log pi_c - log ref_c) - (log pi_r - log ref_r)])
 * over pairs of sequences, chosen and rejected, where log pi is the sum
 * of a sequence's completion-token log-probabilities under the policy
 * and ref under the frozen reference model. */
#ifndef DSK_TRAIN_DPO_H
#define DSK_TRAIN_DPO_H

typedef struct dsk_dpo_stats {
    double loss;              /* mean over pairs */
    double chosen_reward;     /* mean beta (log pi_c - log ref_c) */
    double rejected_reward;   /* mean beta (log pi_r - log ref_r) */
    double margin;            /* mean chosen - rejected reward */
    double accuracy;          /* fraction of pairs with a positive margin */
    long pairs;
} dsk_dpo_stats;

/* Rows 2i (chosen) and 2i+1 (rejected) of logp and ref_logp are pair i.
 * Fills coef[row] = scale * d loss / d logp[row] (the loss summed over
 * pairs), and st.  Returns the loss summed over the pairs.
 * alpha > 0 adds RPO's term (Pang et al. 2024) as TRL's rpo_alpha does:
 * alpha times the negative log-likelihood per token of the pairs' chosen
 * answers together (their summed NLL over their summed tokens, n_tokens
 * [row] a row's target tokens; a row without any adds nothing) to each
 * pair's loss, which keeps the chosen answers likely while the margin
 * widens. */
double dsk_dpo_loss(const double *logp, const double *ref_logp, const double *n_tokens, int pairs, double beta,
                    double alpha, double scale, double *coef, dsk_dpo_stats *st);

#endif
