#include <math.h>
#include <stdlib.h>

#include "train/optim.h"

void dsk_adamw_defaults(dsk_adamw_opts *o)
{
    o->lr = 3e-4;
    o->min_lr = 3e-5;
    o->warmup = 5000;
    o->total_steps = 0;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-8;
    o->weight_decay = 0.1;
    o->clip = 1.0;
}

dsk_optimizer *dsk_optimizer_create_n(dsk_model *model, const dsk_adamw_opts *o, size_t n_state)
{
    dsk_optimizer *opt = dsk_xcalloc(1, sizeof *opt);
    opt->o = *o;
    opt->model = model;
    opt->n_state = n_state;
    opt->loss_scale = 1.0;
    opt->m = model->be->alloc(model->be, n_state * sizeof(float));
    opt->v = model->be->alloc(model->be, n_state * sizeof(float));
    return opt;
}

dsk_optimizer *dsk_optimizer_create(dsk_model *model, const dsk_adamw_opts *o)
{
    return dsk_optimizer_create_n(model, o, model->n_params);
}

void dsk_optimizer_free(dsk_optimizer *opt)
{
    if (!opt)
        return;
    opt->model->be->free(opt->model->be, opt->m);
    opt->model->be->free(opt->model->be, opt->v);
    free(opt);
}

double dsk_lr_at(const dsk_adamw_opts *o, long step)
{
    if (o->warmup > 0 && step < o->warmup)
        return o->lr * (double)(step + 1) / (double)o->warmup;
    if (o->total_steps <= o->warmup)
        return o->lr;
    double progress = (double)(step - o->warmup) / (double)(o->total_steps - o->warmup);
    if (progress > 1)
        progress = 1;
    return o->min_lr + 0.5 * (o->lr - o->min_lr) * (1 + cos(M_PI * progress));
}

dsk_step_report dsk_optimizer_begin(dsk_optimizer *opt, double grad_sumsq, dsk_step_plan *plan)
{
    dsk_step_report r = {0};
    double unscale = opt->loss_scale > 0 ? 1.0 / opt->loss_scale : 1.0;
    r.grad_norm = sqrt(grad_sumsq) * unscale;
    r.lr = dsk_lr_at(&opt->o, opt->step);
    if (!isfinite(r.grad_norm)) {
        r.skipped = 1;
        return r;
    }
    /* As torch.nn.utils.clip_grad_norm_: scale by clip / (norm + 1e-6) when below 1. */
    double coef = opt->o.clip > 0 ? opt->o.clip / (r.grad_norm + 1e-6) : 1.0;
    plan->grad_scale = (float)((coef < 1.0 ? coef : 1.0) * unscale);
    opt->step++;
    plan->lr = (float)r.lr;
    plan->c1 = (float)(1 - pow(opt->o.beta1, (double)opt->step));
    plan->c2 = (float)(1 - pow(opt->o.beta2, (double)opt->step));
    return r;
}

void dsk_optimizer_update(dsk_optimizer *opt, const dsk_step_plan *plan, size_t lo, size_t hi, float *param,
                          const float *grad, size_t state_at)
{
    dsk_model *m = opt->model;
    dsk_backend *be = m->be;
    /* One call per run of adjacent tensors that decay alike (the
     * tensors tile the parameter vector in order): a layer's four
     * attention matrices are one launch, not four. */
    for (size_t i = 0; i < m->n_tensors;) {
        const dsk_tensor_info *t = &m->tensors[i];
        size_t j = i + 1;
        while (j < m->n_tensors && m->tensors[j].decay == t->decay &&
               m->tensors[j].offset == m->tensors[j - 1].offset + m->tensors[j - 1].numel)
            j++;
        size_t end = m->tensors[j - 1].offset + m->tensors[j - 1].numel;
        size_t a = t->offset > lo ? t->offset : lo, b = end < hi ? end : hi;
        i = j;
        if (a >= b)
            continue;
        size_t at = a - lo;
        be->adamw(be, param + at, grad + at, plan->grad_scale, opt->m + state_at + at, opt->v + state_at + at, b - a,
                  plan->lr, (float)opt->o.beta1, (float)opt->o.beta2, (float)opt->o.eps,
                  t->decay ? (float)opt->o.weight_decay : 0.0f, plan->c1, plan->c2);
    }
}

dsk_step_report dsk_optimizer_step(dsk_optimizer *opt)
{
    dsk_model *m = opt->model;
    dsk_step_plan plan;
    dsk_step_report r = dsk_optimizer_begin(opt, m->be->sumsq(m->be, m->grads, m->n_params), &plan);
    if (!r.skipped)
        dsk_optimizer_update(opt, &plan, 0, m->n_params, m->params, m->grads, 0);
    return r;
}
