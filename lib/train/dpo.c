#include <math.h>

#include "train/dpo.h"

/* log(1 + e^x) without overflow. */
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

double dsk_dpo_loss(const double *logp, const double *ref_logp, const double *n_tokens, int pairs, double beta,
                    double alpha, double scale, double *coef, dsk_dpo_stats *st)
{
    double total = 0;
    *st = (dsk_dpo_stats){0};
    for (int i = 0; i < pairs; i++) {
        double rc = beta * (logp[2 * i] - ref_logp[2 * i]), rr = beta * (logp[2 * i + 1] - ref_logp[2 * i + 1]);
        double z = rc - rr;
        total += softplus(-z);
        /* d softplus(-z) / dz = -sigmoid(-z); dz / dlogp_c = beta, dz / dlogp_r = -beta. */
        double s = 1 / (1 + exp(z));
        coef[2 * i] = -scale * beta * s;
        coef[2 * i + 1] = scale * beta * s;
        if (alpha > 0 && n_tokens && n_tokens[2 * i] > 0) {   /* RPO: + alpha * (-logp_c / n_c) */
            total += alpha * -logp[2 * i] / n_tokens[2 * i];
            coef[2 * i] -= scale * alpha / n_tokens[2 * i];
        }
        st->chosen_reward += rc;
        st->rejected_reward += rr;
        st->margin += z;
        st->accuracy += z > 0;
    }
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
