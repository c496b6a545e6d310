#include <math.h>

#include "train/dpo.h"

/* log(1 + e^x) without overflow. */
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

double dsk_dpo_loss(const double *logp, const double *ref_logp, const double *n_tokens, int pairs, double beta,
                    double alpha, double scale, double *coef, dsk_dpo_stats *st)
{
    double total = 0, nll = 0, nll_tokens = 0;
    *st = (dsk_dpo_stats){0};
    for (int i = 0; alpha > 0 && n_tokens && i < pairs; i++)
        if (n_tokens[2 * i] > 0) {
            nll -= logp[2 * i];
            nll_tokens += n_tokens[2 * i];
        }
    for (int i = 0; i < pairs; i++) {
        double rc = beta * (logp[2 * i] - ref_logp[2 * i]), rr = beta * (logp[2 * i + 1] - ref_logp[2 * i + 1]);
        double z = rc - rr;
        total += softplus(-z);
        /* d softplus(-z) / dz = -sigmoid(-z); dz / dlogp_c = beta, dz / dlogp_r = -beta. */
        double s = 1 / (1 + exp(z));
        coef[2 * i] = -scale * beta * s;
        coef[2 * i + 1] = scale * beta * s;
        /* RPO: alpha times the chosen answers' NLL per token, over all of
         * them together (TRL's cross-entropy of the micro-batch's chosen
         * rows), added to each pair's loss: pairs * alpha * nll /
         * nll_tokens in the sum, so each chosen token weighs alike. */
        if (nll_tokens > 0 && n_tokens[2 * i] > 0)
            coef[2 * i] -= scale * pairs * alpha / nll_tokens;
        st->chosen_reward += rc;
        st->rejected_reward += rr;
        st->margin += z;
        st->accuracy += z > 0;
    }
    if (nll_tokens > 0)
        total += pairs * alpha * nll / nll_tokens;
    if (pairs > 0) {
        st->loss = total / pairs;
        st->chosen_reward /= pairs;
        st->rejected_reward /= pairs;
        st->margin /= pairs;
        st->accuracy /= pairs;
    }
    st->pairs = pairs;
    return total;
}
