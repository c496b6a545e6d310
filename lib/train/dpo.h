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
 * pairs), and st.  Returns the loss summed over the pairs. */
double dsk_dpo_loss(const double *logp, const double *ref_logp, int pairs, double beta, double scale, double *coef,
                    dsk_dpo_stats *st);

#endif
