/* The training loop: data in, checkpoints, metrics and samples out. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpe/dskt.h"
#include "bpe/formats.h"
#include "bpe/tokenizer.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/outfile.h"
#include "core/progress.h"
#include "model/config.h"
#include "model/generate.h"
#include "pack/dataset.h"
#include "pack/pack.h"
#include "core/hash.h"
#include "dist/comm.h"
#include "dist/memory.h"
#include "dist/zero.h"
#include "ops/blas_kernels.h"
#include "ops/half.h"
#include "text/utf8.h"
#include "train/batch.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"
#include "train/dpo.h"
#include "train/loss_scale.h"
#include "train/train_run.h"

const char *const dsk_stage_names[] = {"pretrain", "continue", "sft", "dpo"};

void dsk_train_defaults(dsk_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->config = "tiny";
    o->backend = NULL;   /* dsk_backend_default(): cuda when a GPU is present */
    o->stage = DSK_STAGE_PRETRAIN;
    o->batch = 8;
    o->grad_accum = 1;
    o->doc_mask = 1;
    dsk_adamw_defaults(&o->adamw);
    o->seed = 1234;
    o->eval_every = 100;
    o->eval_batches = 8;
    o->save_every = 500;
    o->keep = 3;
    o->log_every = 10;
    o->sample_tokens = 48;
    o->max_bad_steps = 5;
    o->sampler.temperature = 0.8;
    o->sampler.top_k = 40;
    o->sampler.top_p = 0.95;
    o->beta = 0.1;
    o->loss_scale_window = 1000;
}

/* ---- options that travel in state.json ---------------------------------------------------------- */

enum { O_INT, O_LONG, O_U64, O_DOUBLE, O_STR, O_DTYPE };
typedef struct opt_key {
    const char *name;
    int type;
    size_t off;
    double lo, hi;   /* numbers: the range a saved value must be in (the command line's, and 0 where it means unset) */
} opt_key;

#define F(field) offsetof(dsk_train_opts, field)
#define BIG 1099511627776.0   /* 2^40: the command line's bound on step counts */
static const opt_key opt_keys[] = {
    {"data", O_STR, F(data), 0, 0},
    {"ref", O_STR, F(ref), 0, 0},
    {"init", O_STR, F(init), 0, 0},
    {"epochs", O_DOUBLE, F(epochs), 0, 1e9},
    {"beta", O_DOUBLE, F(beta), 1e-6, 1e6},
    {"rpo_alpha", O_DOUBLE, F(rpo_alpha), 0, 1e6},
    {"batch", O_INT, F(batch), 1, 1 << 20},
    {"seq_len", O_INT, F(seq_len), 0, 1 << 20},
    {"grad_accum", O_INT, F(grad_accum), 1, 1 << 20},
    {"doc_mask", O_INT, F(doc_mask), 0, 1},
    {"steps", O_LONG, F(steps), 0, BIG},
    {"tokens", O_U64, F(tokens), 0, 9.2e18},
    {"lr", O_DOUBLE, F(adamw.lr), 0, 10},
    {"min_lr", O_DOUBLE, F(adamw.min_lr), 0, 10},
    {"warmup", O_LONG, F(adamw.warmup), 0, BIG},
    {"beta1", O_DOUBLE, F(adamw.beta1), 0, 0.999999},
    {"beta2", O_DOUBLE, F(adamw.beta2), 0, 0.999999},
    {"adam_eps", O_DOUBLE, F(adamw.eps), 1e-30, 1},
    {"weight_decay", O_DOUBLE, F(adamw.weight_decay), 0, 10},
    {"clip", O_DOUBLE, F(adamw.clip), 0, 1e9},
    {"seed", O_U64, F(seed), 0, 4611686018427387904.0},
    {"eval_every", O_LONG, F(eval_every), 0, BIG},
    {"eval_batches", O_INT, F(eval_batches), 0, 1000000},
    {"save_every", O_LONG, F(save_every), 0, BIG},
    {"keep", O_INT, F(keep), 0, 1000000},
    {"sample_every", O_LONG, F(sample_every), 0, BIG},
    {"sample_tokens", O_INT, F(sample_tokens), 1, 1 << 20},
    {"temperature", O_DOUBLE, F(sampler.temperature), 0, 100},
    {"top_k", O_INT, F(sampler.top_k), 0, 1 << 24},
    {"top_p", O_DOUBLE, F(sampler.top_p), 0, 1},
    {"min_p", O_DOUBLE, F(sampler.min_p), 0, 1},
    {"max_bad_steps", O_INT, F(max_bad_steps), 1, 1000000},
    {"zero", O_INT, F(zero), 0, 3},
    {"dtype", O_DTYPE, F(dtype), 0, 0},
    {"loss_scale", O_DOUBLE, F(loss_scale), 0, 1e38},
    {"loss_scale_window", O_LONG, F(loss_scale_window), 1, BIG},
    {"recompute", O_INT, F(recompute), 0, 1},
};
#undef BIG
#undef F

struct json_object *dsk_train_opts_to_json(const dsk_train_opts *o)
{
    struct json_object *j = json_object_new_object();
    for (size_t i = 0; i < sizeof opt_keys / sizeof opt_keys[0]; i++) {
        const opt_key *k = &opt_keys[i];
        const void *f = (const char *)o + k->off;
        struct json_object *v = NULL;
        switch (k->type) {
        case O_INT: v = json_object_new_int(*(const int *)f); break;
        case O_LONG: v = json_object_new_int64(*(const long *)f); break;
        case O_U64: v = json_object_new_int64((int64_t) * (const uint64_t *)f); break;
        case O_DOUBLE: v = dsk_json_new_double(*(const double *)f); break;
        case O_DTYPE: v = json_object_new_string(dsk_dtype_name(*(const int *)f)); break;
        default:
            if (*(const char *const *)f)
                v = json_object_new_string(*(const char *const *)f);
        }
        if (v)
            json_object_object_add(j, k->name, v);
    }
    return j;
}

int dsk_train_opts_from_json(dsk_train_opts *o, struct json_object *j, dsk_err *err)
{
    for (size_t i = 0; i < sizeof opt_keys / sizeof opt_keys[0]; i++) {
        const opt_key *k = &opt_keys[i];
        struct json_object *v;
        if (!json_object_object_get_ex(j, k->name, &v))
            continue;
        void *f = (char *)o + k->off;
        int is_num = json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
        int is_str = k->type == O_STR || k->type == O_DTYPE;
        if (is_str ? !json_object_is_type(v, json_type_string) : !is_num)
            return dsk_fail(err, EX_DATAERR, "state.json: option \"%s\" has the wrong type", k->name);
        /* Edited by hand, perhaps (adam_eps is documented as editable):
         * what the command line would refuse is refused here too. */
        double num = is_num ? json_object_get_double(v) : 0;
        if (is_num && !(num >= k->lo && num <= k->hi))
            return dsk_fail(err, EX_DATAERR, "state.json: option \"%s\" is %s, outside %g to %g (a damaged checkpoint)",
                            k->name, json_object_to_json_string(v), k->lo, k->hi);
        switch (k->type) {
        case O_INT: *(int *)f = (int)json_object_get_int64(v); break;
        case O_LONG: *(long *)f = (long)json_object_get_int64(v); break;
        case O_U64: *(uint64_t *)f = (uint64_t)json_object_get_int64(v); break;
        case O_DOUBLE: *(double *)f = json_object_get_double(v); break;
        case O_DTYPE:
            if ((*(int *)f = dsk_dtype_parse(json_object_get_string(v))) < 0)
                return dsk_fail(err, EX_DATAERR, "state.json: option \"dtype\" is \"%s\"; expected fp32, bf16 or "
                                "fp16", json_object_get_string(v));
            break;
        default: {
            char **own = k->off == offsetof(dsk_train_opts, ref)    ? &o->owned_ref
                         : k->off == offsetof(dsk_train_opts, init) ? &o->owned_init
                                                                    : &o->owned;
            free(*own);
            *own = dsk_xstrdup(json_object_get_string(v));
            *(const char **)f = *own;
        }
        }
    }
    return 0;
}

/* ---- signals: finish the step, save, stop ---------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

/* The first signal asks for the step to finish and a checkpoint; a
 * second (any of the three) stops the run at once, as a fatal signal
 * does: temporaries removed (a checkpoint being written among them; the
 * last one saved stays whole), then the default action. */
static void on_stop(int sig)
{
    if (stop_signal) {
        dsk_outfile_remove_all_temps();
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
}

static void catch_stop_signals(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    static const int sigs[] = {SIGINT, SIGTERM, SIGUSR1};   /* SIGUSR1: what mpirun forwards to every rank */
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler != SIG_IGN)   /* an ignored one stays so */
            sigaction(sigs[i], &sa, NULL);
}

/* ---- the run's state ----------------------------------------------------------------------------------- */

typedef struct run {
    const dsk_train_opts *o;
    dsk_err *err;
    /* Data parallelism: the ranks, this one, and its share of the state. */
    dsk_comm *comm;
    dsk_comm *nccl;           /* GPU ranks: NCCL around o->comm, and then comm too */
    int own_comm, rank, world;
    dsk_zero *zero;
    dsk_rng noise_rng;        /* several ranks: this rank's router noise this step */
    int quiet;                /* -q, or not rank 0 */
    dsk_dataset ds;
    int ds_open;
    dsk_tokenizer tok;
    int have_tok;
    char *tokenizer_path;
    dsk_backend *be;
    dsk_model *model;
    dsk_optimizer *opt;
    dsk_loader *loader;
    dsk_generator *gen;
    dsk_train_state st;
    int B, T;
    long total_steps;
    int32_t *tokens, *targets, *pos;
    float *weights;
    dsk_row row;
    FILE *log;
    int log_errno;            /* the first failed --log write's errno (glibc then drops the buffer) */
    int tty;
    double flops_per_token;
    long saved_step;          /* the step last saved, -1 before any */
    long empty_steps;         /* steps of this process whose batch had no target token */
    int warned_empty_eval;    /* said once that validation had no target token */
    dsk_loss_scale ls;        /* what the loss gradient is multiplied by (--dtype, --loss-scale) */
    double step_scale;        /* the scale the last step ran with (the log reports it) */
    long *bias_snapshot;      /* MoE: selections per layer and expert at the last step */
    int prompt_cut;           /* the samples' prompt was cut to fit (said once) */

    /* DPO: the frozen reference, per-row log-probabilities and gradient
     * coefficients, the loss weights scaled by them, and the statistics
     * since the last log line. */
    dsk_model *ref;
    char *ref_dir;
    uint64_t ref_hash;        /* of the reference's weights, checked at the end */
    double *logp, *ref_logp, *coef, *row_targets;   /* DPO: per row (row_targets: its target tokens) */
    float *grad_weights;
    dsk_dpo_stats dpo_window;
    int partial_line;         /* the log line being written is a skipped or empty step's */
    int dpo_batches;
} run;

/* Row b of the batch from a dataset row. */
static void fill_row(run *r, int b, const dsk_row *row)
{
    size_t at = (size_t)b * r->T;
    dsk_batch_fill_row(r->tokens + at, r->targets + at, r->pos + at, r->weights + at, r->T, row, r->o->doc_mask);
}

/* A preference row is two sequences: chosen, then rejected, split at row->split. */
static void fill_pair(run *r, int b, const dsk_row *row)
{
    for (int half = 0; half < 2; half++) {
        dsk_row view = {0};
        uint32_t off = half ? row->split : 0;
        view.tokens = row->tokens + off;
        view.mask = row->mask + off;
        view.n_tokens = half ? row->n_tokens - row->split : row->split;
        view.flags = DSK_ROW_MASK;
        fill_row(r, 2 * b + half, &view);
    }
}

static void blank_row(run *r, int b)
{
    size_t at = (size_t)b * r->T;
    dsk_batch_blank_row(r->tokens + at, r->targets + at, r->pos + at, r->weights + at, r->T);
}

static int set_batch(run *r)
{
    dsk_batch b = {r->B, r->T, r->tokens, r->targets, r->pos, r->weights};
    int rc = dsk_model_set_batch(r->model, &b, r->err);
    if (!rc && r->ref)
        rc = dsk_model_set_batch(r->ref, &b, r->err);
    return rc;
}

static int is_dpo(const run *r) { return r->o->stage == DSK_STAGE_DPO; }

/* ---- several ranks ------------------------------------------------------------------------------------- */

/* Every rank's status, agreed, at a point every rank reaches: all go on or
 * all stop.  The one rank that reports keeps its message; the others end
 * with the status and an empty message. */
static int agree(run *r, int rc)
{
    if (r->world == 1)
        return rc;
    int report;
    int all = dsk_comm_agree(r->comm, rc, rc && r->err->msg[0], &report);
    if (all && !report) {
        r->err->code = all;
        r->err->msg[0] = 0;
    }
    return all;
}

/* Every rank of a run must be the same run: the same options and model
 * (and step, resuming), and the same dataset by its MANIFEST.  A rank
 * started otherwise (an extra --seed, a stale copy of the data on one
 * node) trained apart silently, or crashed in a collective whose sizes
 * differed.  Ranks compare hashes with rank 0's; 64 for the options and
 * model, 65 for the dataset. */
static int check_same_setup(run *r, const dsk_model_config *cfg, const char *backend, int rc)
{
    if (r->world == 1 || (rc = agree(r, rc)) != 0)
        return rc;
    /* The options but the paths (the same data may lie elsewhere on
     * another node: the MANIFEST decides), and what else decides which
     * collectives a rank reaches: the backend it chose (a GPU's ranks
     * start NCCL), whether and how often it logs (the log's sums). */
    struct json_object *opts = dsk_train_opts_to_json(r->o);
    json_object_object_del(opts, "data");
    json_object_object_del(opts, "init");
    json_object_object_del(opts, "ref");
    json_object_object_add(opts, "backend", json_object_new_string(backend));
    json_object_object_add(opts, "log", json_object_new_boolean(r->o->log_path != NULL));
    json_object_object_add(opts, "log_every", json_object_new_int64(r->o->log_every));
    const char *text = json_object_to_json_string_ext(opts, JSON_C_TO_STRING_PLAIN);
    dsk_buf b = {0};
    dsk_config_write(cfg, &b);
    uint64_t mine[2] = {dsk_hash_combine(dsk_hash64(text, strlen(text)), dsk_hash64(b.data, b.len)), 0};
    mine[0] = dsk_hash_combine(mine[0], (uint64_t)r->st.step);
    json_object_put(opts);
    dsk_buf_clear(&b);
    char *manifest = dsk_path_join(r->o->data, "MANIFEST");
    dsk_err ignored;
    if (dsk_read_file(manifest, (size_t)1 << 30, &b, &ignored) == 0)
        mine[1] = dsk_hash64(b.data, b.len);
    free(manifest);
    dsk_buf_free(&b);
    uint64_t root[2] = {mine[0], mine[1]};
    r->comm->bcast(r->comm, root, sizeof root, 0);
    if (mine[0] != root[0])
        rc = dsk_fail(r->err, EX_USAGE, "its options, model or checkpoint step differ from rank 0's: every "
                      "rank of a run takes the same command line and checkpoint");
    else if (mine[1] != root[1])
        rc = dsk_fail(r->err, EX_DATAERR, "%s is not rank 0's dataset (its MANIFEST differs): every rank "
                      "needs the same dataset", r->o->data);
    return agree(r, rc);
}

/* Sums over the ranks, in place (nothing for one). */
static void sum_ranks(run *r, double *v, size_t n)
{
    if (r->world > 1)
        r->comm->allreduce(r->comm, v, n, DSK_COMM_F64, DSK_COMM_SUM);
}

/* DPO on the current batch: the reference's and the policy's sequence
 * log-probabilities, the loss over its first `pairs` pairs (the rest are
 * padding in an evaluation's last batch), and with scale != 0 the
 * policy's gradient (scale multiplies d loss_sum / d logits).  Returns the
 * loss summed over the pairs. */
/* to += from: the rewards, margin and accuracy (the means of a batch) */
static void add_dpo_stats(dsk_dpo_stats *to, const dsk_dpo_stats *from)
{
    to->chosen_reward += from->chosen_reward;
    to->rejected_reward += from->rejected_reward;
    to->margin += from->margin;
    to->accuracy += from->accuracy;
}

static double dpo_batch(run *r, int pairs, double scale, int train, dsk_dpo_stats *st)
{
    size_t n = (size_t)r->B * r->T;
    r->ref->moe_run.train = 0;
    dsk_model_forward(r->ref, 0);
    dsk_model_row_losses(r->ref, r->ref_logp);
    r->model->moe_run.train = train;
    dsk_model_forward(r->model, 0);
    dsk_model_row_losses(r->model, r->logp);
    for (int b = 0; b < r->B; b++) {   /* losses are minus log-probabilities */
        r->logp[b] = -r->logp[b];
        r->ref_logp[b] = -r->ref_logp[b];
    }
    /* each row's target tokens, for RPO's per-token NLL (only with it) */
    for (int b = 0; r->o->rpo_alpha > 0 && b < r->B; b++) {
        r->row_targets[b] = 0;
        for (int t = 0; t < r->T; t++) {
            size_t i = (size_t)b * r->T + t;
            r->row_targets[b] += r->targets[i] >= 0 && r->weights[i] != 0;
        }
    }
    double total = dsk_dpo_loss(r->logp, r->ref_logp, r->o->rpo_alpha > 0 ? r->row_targets : NULL, pairs,
                                r->o->beta, r->o->rpo_alpha, scale, r->coef, st);
    if (scale != 0) {
        /* d loss / d token loss = -coef (a token loss is minus its log-probability). */
        for (size_t i = 0; i < n; i++)
            r->grad_weights[i] = r->weights[i] * (float)-r->coef[i / (size_t)r->T];
        dsk_model_loss_grad(r->model, r->grad_weights);
    }
    return total;
}

/* ---- evaluation ------------------------------------------------------------------------------------------ */

typedef struct eval_result {
    double loss, bpb, targets;
    int ok;
    dsk_dpo_stats dpo;        /* DPO: over the evaluated pairs */
} eval_result;

/* The first eval_batches global batches of the val split, each rank
 * reading its share of every batch; the sums are over all ranks. */
static int evaluate(run *r, eval_result *res)
{
    memset(res, 0, sizeof *res);
    uint64_t rows = r->ds.m.rows[DSKT_VAL];
    if (rows == 0 || r->o->eval_batches <= 0)
        return 0;
    dsk_dataset_reader rd;
    dsk_dataset_reader_init(&rd, &r->ds);
    int per_row = is_dpo(r) ? 2 : 1, rows_per_batch = r->B / per_row;
    uint64_t global_batch = (uint64_t)rows_per_batch * r->world;
    uint64_t want = (uint64_t)r->o->eval_batches * global_batch, next = 0;
    if (want > rows)
        want = rows;
    /* nats, bytes, targets; DPO: loss, rewards, margin, accuracy, pairs */
    double sum[9] = {0};
    int rc = 0;
    while (next < want && !rc) {
        int filled = 0;
        uint64_t first = next + (uint64_t)r->rank * rows_per_batch;
        for (int b = 0; b < rows_per_batch; b++) {
            if (first + b < want) {
                rc = dsk_dataset_read(&rd, DSKT_VAL, first + b, &r->row, r->err);
                if (rc)
                    break;
                if (per_row == 2)
                    fill_pair(r, b, &r->row);
                else
                    fill_row(r, b, &r->row);
                filled++;
            } else {
                for (int h = 0; h < per_row; h++)
                    blank_row(r, per_row * b + h);
            }
        }
        next += global_batch;
        if (!rc)
            rc = set_batch(r);
        if ((rc = agree(r, rc)))
            break;
        if (per_row == 2) {
            dsk_dpo_stats st;
            dpo_batch(r, filled, 0, 0, &st);
            sum[3] += st.loss * filled;
            sum[4] += st.chosen_reward * filled;
            sum[5] += st.rejected_reward * filled;
            sum[6] += st.margin * filled;
            sum[7] += st.accuracy * filled;
            sum[8] += filled;
        } else {
            r->model->moe_run.train = 0;
            dsk_model_forward(r->model, 0);
        }
        sum[0] += r->model->loss_sum;
        sum[2] += r->model->n_targets;
        if (r->have_tok)
            for (size_t i = 0; i < (size_t)r->B * r->T; i++)
                if (r->targets[i] >= 0 && r->weights[i] != 0)
                    sum[1] += dsk_tokenizer_text_bytes(&r->tok, (uint32_t)r->targets[i]);
    }
    dsk_dataset_reader_free(&rd);
    if (rc)
        return rc;
    sum_ranks(r, sum, 9);
    double nats = sum[0], bytes = sum[1], count = sum[2];
    res->ok = count > 0;
    res->loss = count > 0 ? nats / count : 0;
    if (sum[8] > 0) {
        res->dpo.pairs = (long)sum[8];
        res->dpo.loss = sum[3] / sum[8];
        res->dpo.chosen_reward = sum[4] / sum[8];
        res->dpo.rejected_reward = sum[5] / sum[8];
        res->dpo.margin = sum[6] / sum[8];
        res->dpo.accuracy = sum[7] / sum[8];
    }
    res->bpb = bytes > 0 ? nats / log(2.0) / bytes : 0;
    res->targets = count;
    return 0;
}

/* ---- samples --------------------------------------------------------------------------------------------- */

/* Rank 0 samples; at ZeRO-3 from a whole copy of the weights gathered
 * for the purpose, as the sharded model has none.  Every rank then goes
 * on with rank 0's random state. */
static void sample_from(run *r, dsk_generator *gen);

static void sample(run *r)
{
    if (r->o->zero == 3) {
        dsk_model *whole = NULL;
        float *host = NULL;
        if (r->rank == 0) {
            whole = dsk_model_create(&r->model->cfg, r->be);
            host = dsk_xmalloc(whole->n_params * sizeof *host);
        }
        dsk_zero_gather_params(r->zero, host);
        if (r->rank == 0) {
            r->be->upload(r->be, whole->params, host, whole->n_params * sizeof *host);
            dsk_generator *gen = dsk_generator_new(whole, 0);
            sample_from(r, gen);
            dsk_generator_free(gen);
            dsk_model_free(whole);
            free(host);
        }
    } else if (r->rank == 0) {
        if (!r->gen)
            r->gen = dsk_generator_new(r->model, 0);
        sample_from(r, r->gen);
    }
    if (r->world > 1)
        r->comm->bcast(r->comm, &r->st.rng, sizeof r->st.rng, 0);
}

static void sample_from(run *r, dsk_generator *gen)
{
    const dsk_model_config *c = &r->model->cfg;
    int32_t prompt[256];
    int n_prompt = 0;
    if (r->have_tok && r->o->prompt && *r->o->prompt) {
        dsk_bpe_encoder enc;
        dsk_bpe_encoder_init(&enc, &r->tok);
        dsk_err e = {0};
        if (dsk_bpe_encode(&r->tok, &enc, r->o->prompt, strlen(r->o->prompt), 1, &e) == 0) {
            /* A long prompt keeps its end, with room for the sample (at
             * least half the model's positions). */
            size_t want = (size_t)r->o->sample_tokens < (size_t)c->max_seq_len / 2 ? (size_t)r->o->sample_tokens
                                                                                    : (size_t)c->max_seq_len / 2;
            size_t keep = (size_t)c->max_seq_len - want;
            if (keep > 255)
                keep = 255;
            size_t from = enc.n_ids > keep ? enc.n_ids - keep : 0;
            if (from && !r->prompt_cut) {
                dsk_warn("--prompt is %zu tokens: the samples continue its last %zu (the model has %d positions)",
                         enc.n_ids, enc.n_ids - from, c->max_seq_len);
                r->prompt_cut = 1;
            }
            for (size_t i = from; i < enc.n_ids; i++)
                prompt[n_prompt++] = (int32_t)enc.ids[i];
        }
        dsk_bpe_encoder_free(&enc);
    }
    if (n_prompt == 0)
        prompt[n_prompt++] = (int32_t)(r->ds.m.eot < (uint32_t)c->vocab_size ? r->ds.m.eot : 0);
    int max_new = r->o->sample_tokens;
    if (max_new > c->max_seq_len - n_prompt)
        max_new = c->max_seq_len - n_prompt;
    if (max_new <= 0)
        return;
    int32_t *out = dsk_xmalloc((size_t)max_new * sizeof *out);
    dsk_err e = {0};
    int n = dsk_generate(gen, prompt, n_prompt, max_new, &r->o->sampler, &r->st.rng, (int32_t)r->ds.m.eot, -1, out, &e);
    dsk_buf text = {0};
    if (n > 0 && r->have_tok) {
        uint32_t *ids = dsk_xmalloc((size_t)(n_prompt + n) * sizeof *ids);
        for (int i = 0; i < n_prompt; i++)
            ids[i] = (uint32_t)prompt[i];
        for (int i = 0; i < n; i++)
            ids[n_prompt + i] = (uint32_t)out[i];
        dsk_bpe_decode(&r->tok, ids, (size_t)(n_prompt + n), &text, &e);
        free(ids);
    } else {
        for (int i = 0; i < n; i++)
            dsk_buf_printf(&text, "%s%d", i ? " " : "", out[i]);
    }
    /* Byte-level tokens can end mid-character: the log is JSON text, so
     * broken sequences become U+FFFD, as dsk-serve sends them. */
    dsk_buf shown = {0};
    dsk_utf8_repair(text.data ? text.data : "", text.len, &shown);
    dsk_buf_addc(&shown, 0);
    if (!r->quiet)
        fprintf(stderr, "%ssample at step %ld: %s\n", r->tty ? "\r\033[K" : "", r->st.step, shown.data);
    if (r->log) {
        struct json_object *j = json_object_new_object();
        json_object_object_add(j, "step", json_object_new_int64(r->st.step));
        json_object_object_add(j, "sample", json_object_new_string_len(shown.data, (int)shown.len - 1));
        fprintf(r->log, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
    }
    dsk_buf_free(&shown);
    dsk_buf_free(&text);
    free(out);
}

/* ---- setup ----------------------------------------------------------------------------------------------- */

static int load_tokenizer(run *r)
{
    if (!r->ds.m.tokenizer)
        return 0;
    r->tokenizer_path = dsk_path_join(r->ds.dir, r->ds.m.tokenizer);
    dsk_tokenizer_init(&r->tok);
    int rc = dsk_bpe_load_json_regular(&r->tok, r->tokenizer_path, r->err);
    if (rc)
        return rc;
    r->have_tok = 1;
    /* the dataset's own: another one here would go into every checkpoint */
    char fp[33];
    dsk_tokenizer_fingerprint(&r->tok, fp);
    if (strcmp(fp, r->ds.m.fingerprint) != 0 || r->tok.n_vocab != r->ds.m.vocab_size)
        return dsk_fail(r->err, EX_DATAERR, "%s: tokenizer %s of %u tokens, but the dataset was made with %s of %u",
                        r->tokenizer_path, fp, r->tok.n_vocab, r->ds.m.fingerprint, r->ds.m.vocab_size);
    return 0;
}

/* ceil(x), but an x within rounding of a whole number is that number:
 * --epochs 0.07 of 100 rows is 7 steps (0.07 * 100 is 7.000000000000001). */
static double ceil_exact(double x)
{
    double k = nearbyint(x);
    return fabs(x - k) <= 1e-9 * fmax(1, fabs(x)) ? k : ceil(x);
}

static int setup_model(run *r, dsk_model_config *cfg, char **resume_dir)
{
    const dsk_train_opts *o = r->o;
    dsk_err *err = r->err;
    int rc;
    const char *from = o->resume ? o->out : o->stage != DSK_STAGE_PRETRAIN ? o->init : NULL;
    if (from) {
        *resume_dir = o->resume ? dsk_run_dir_resume_from(from, r->quiet, err) : dsk_checkpoint_resolve(from, err);
        if (!*resume_dir)
            return err->code;
        char *path = dsk_path_join(*resume_dir, "config.json");
        rc = dsk_config_load(cfg, path, err);
        free(path);
        if (rc)
            return rc;
        if (o->n_sets)
            return dsk_fail(err, EX_USAGE, "--set changes the architecture; it cannot apply to %s", *resume_dir);
    } else {
        if ((rc = dsk_config_resolve(cfg, o->config, err)))
            return rc;
        for (int i = 0; i < o->n_sets; i++)
            if ((rc = dsk_config_set(cfg, o->sets[i], err)))
                return rc;
    }
    if (!o->resume && o->stage == DSK_STAGE_PRETRAIN) {
        if (cfg->vocab_size == 0)
            cfg->vocab_size = (int)r->ds.m.vocab_size;
        if (cfg->eos_token_id < 0 && r->ds.m.eot < r->ds.m.vocab_size)
            cfg->eos_token_id = (int)r->ds.m.eot;
    }
    if (cfg->vocab_size < 2)
        return dsk_fail(err, EX_DATAERR, "%s: vocab_size %d", from ? from : o->config, cfg->vocab_size);
    /* Before the config's own checks: a vocabulary too small for the
     * dataset is the first thing to say, not the token ids it leaves out. */
    if ((uint32_t)cfg->vocab_size < r->ds.m.vocab_size)
        return dsk_fail(err, EX_DATAERR, "%s: the dataset's vocabulary (%u) is larger than the model's (%d)", o->data,
                        r->ds.m.vocab_size, cfg->vocab_size);
    if (!o->resume && o->stage == DSK_STAGE_PRETRAIN && (rc = dsk_config_validate(cfg, err)))
        return rc;
    if (r->T > cfg->max_seq_len && from)   /* a checkpoint's architecture is fixed */
        return dsk_fail(err, EX_USAGE, "--seq-len %d is longer than %s's max_position_embeddings %d (give --seq-len "
                        "%d or less)", r->T, from, cfg->max_seq_len, cfg->max_seq_len);
    if (r->T > cfg->max_seq_len)
        return dsk_fail(err, EX_USAGE, "--seq-len %d is longer than the model's max_position_embeddings %d "
                        "(use --set seq_len=%d)", r->T, cfg->max_seq_len, r->T);
    return 0;
}

static int open_log(run *r)
{
    if (!r->o->log_path)
        return 0;
    r->log = dsk_fopen_log(r->o->log_path, r->o->resume ? "a" : "w");
    if (!r->log)
        return dsk_fail(r->err, EX_CANTCREAT, "%s: %s", r->o->log_path, strerror(errno));
    setvbuf(r->log, NULL, _IOLBF, 0);
    return 0;
}

/* Saves the current step unless it is saved already (the end of a run or
 * a signal right after a periodic save): a step directory is written once. */
static int save(run *r)
{
    if (r->saved_step == r->st.step)
        return 0;
    r->st.world = r->world;
    r->st.loss_scale = r->ls.scale;
    r->st.loss_scale_good = r->ls.good;
    int rc = dsk_zero_save(r->zero, r->o->out, &r->st, r->tokenizer_path, r->o->keep, r->err);
    if (!rc)
        r->saved_step = r->st.step;
    return rc;
}

/* ---- mixture of experts ------------------------------------------------------------------------------------ */

/* DeepSeek-V3's balancing: after each step, each MoE layer's selection
 * bias moves toward the experts that were chosen less than average in
 * this step (the selections since the previous step's snapshot). */
static void update_router_bias(run *r)
{
    const dsk_model_config *c = &r->model->cfg;
    if (c->n_routed_experts == 0 || c->balance != DSK_BALANCE_BIAS)
        return;
    int E = c->n_routed_experts;
    double *delta = dsk_xmalloc((size_t)E * sizeof *delta);
    long *count = dsk_xmalloc((size_t)E * sizeof *count);
    for (int l = 0; l < c->n_layers; l++) {
        if (!dsk_config_layer_is_moe(c, l))
            continue;
        dsk_moe_stats *s = &r->model->moe_stats[l];
        long *before = r->bias_snapshot + (size_t)l * E;
        for (int e = 0; e < E; e++) {
            delta[e] = (double)(s->selected[e] - before[e]);
            before[e] = s->selected[e];
        }
        sum_ranks(r, delta, (size_t)E);   /* the selections of the global batch */
        dsk_moe_stats step = {0};
        for (int e = 0; e < E; e++) {
            count[e] = (long)delta[e];
            step.assignments += count[e];
        }
        step.selected = count;
        /* The biases are weights: a sharded model brings them in and keeps the change. */
        int unit = dsk_model_layer_unit(l);
        dsk_model_acquire(r->model, unit, DSK_UNIT_PARAMS);
        dsk_moe_update_bias(r->model->be, c, r->model->w.layer[l].moe.bias, &step);
        dsk_model_release(r->model, unit, DSK_UNIT_PARAMS | DSK_UNIT_WRITEBACK);
    }
    free(delta);
    free(count);
}

/* Several ranks: the routing statistics since the last log line, summed
 * over the ranks into every rank's (which are reset after the line). */
static void reduce_moe_stats(run *r)
{
    const dsk_model_config *c = &r->model->cfg;
    if (c->n_routed_experts == 0 || r->world == 1)
        return;
    int E = c->n_routed_experts;
    double *v = dsk_xmalloc(((size_t)E + 7) * sizeof *v);
    for (int l = 0; l < c->n_layers; l++) {
        if (!dsk_config_layer_is_moe(c, l))
            continue;
        dsk_moe_stats *s = &r->model->moe_stats[l];
        for (int e = 0; e < E; e++)
            v[e] = (double)s->selected[e];
        double *x = v + E;
        x[0] = (double)s->assignments, x[1] = (double)s->dropped, x[2] = (double)s->tokens;
        x[3] = (double)s->forwards, x[4] = s->aux_loss, x[5] = s->z_loss, x[6] = s->entropy;
        sum_ranks(r, v, (size_t)E + 7);
        for (int e = 0; e < E; e++)
            s->selected[e] = (long)v[e];
        s->assignments = (long)x[0], s->dropped = (long)x[1], s->tokens = (long)x[2], s->forwards = (long)x[3];
        s->aux_loss = x[4], s->z_loss = x[5], s->entropy = x[6];
    }
    free(v);
}

/* ,"moe":[{per layer}] for a log line: load fractions per expert since the
 * last line, their coefficient of variation, the dropped fraction, the
 * balancing losses and the router's entropy (nats, mean per token). */
static void log_moe(run *r)
{
    const dsk_model_config *c = &r->model->cfg;
    if (c->n_routed_experts == 0)
        return;
    int E = c->n_routed_experts;
    fputs(",\"moe\":[", r->log);
    int first = 1;
    for (int l = 0; l < c->n_layers; l++) {
        if (!dsk_config_layer_is_moe(c, l))
            continue;
        dsk_moe_stats *s = &r->model->moe_stats[l];
        double total = (double)s->assignments, mean = total / E, var = 0;
        fprintf(r->log, "%s{\"layer\":%d,\"load\":[", first ? "" : ",", l);
        for (int e = 0; e < E; e++) {
            fprintf(r->log, "%s%.4f", e ? "," : "", total > 0 ? (double)s->selected[e] / total : 0.0);
            var += ((double)s->selected[e] - mean) * ((double)s->selected[e] - mean) / E;
        }
        double f = s->forwards > 0 ? 1.0 / (double)s->forwards : 0;
        fprintf(r->log, "],\"cv\":%.4f,\"dropped\":%.4f,\"aux_loss\":%.6g,\"z_loss\":%.6g,\"entropy\":%.4f}",
                mean > 0 ? sqrt(var) / mean : 0.0, total > 0 ? (double)s->dropped / total : 0.0, s->aux_loss * f,
                s->z_loss * f, s->tokens > 0 ? s->entropy / (double)s->tokens : 0.0);
        first = 0;
    }
    fputc(']', r->log);
}

/* After a log line: the statistics, and the bias snapshot with them, count from zero again. */
static void reset_moe_stats(run *r)
{
    const dsk_model_config *c = &r->model->cfg;
    if (c->n_routed_experts == 0)
        return;
    int E = c->n_routed_experts;
    for (int l = 0; l < c->n_layers; l++) {
        if (!dsk_config_layer_is_moe(c, l))
            continue;
        memset(r->bias_snapshot + (size_t)l * E, 0, (size_t)E * sizeof *r->bias_snapshot);
        dsk_moe_stats_reset(&r->model->moe_stats[l], c);
    }
}

/* A JSON number, or null when it is not finite (JSON has no NaN). */
static void log_num(FILE *f, const char *key, double v, const char *fmt)
{
    fprintf(f, ",\"%s\":", key);
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs("null", f);
}

/* After a --log line: the reason of its write's failure, kept (the line
 * buffer writes at its newline; a later call would change errno). */
static void log_written(run *r)
{
    if (r->log && ferror(r->log) && !r->log_errno)
        r->log_errno = errno ? errno : EIO;
}

static void log_step(run *r, double loss, const dsk_step_report *rep, double tok_s, double elapsed)
{
    FILE *f = r->log;
    double gflops = 3 * r->flops_per_token * tok_s / 1e9;
    fprintf(f, "{\"step\":%ld", r->st.step);
    log_num(f, "loss", loss, "%.6f");
    log_num(f, "lr", rep->lr, "%.6g");
    log_num(f, "grad_norm", rep->grad_norm, "%.6g");
    fprintf(f, ",\"tokens\":%llu,\"tokens_per_s\":%.1f,\"gflops\":%.2f", (unsigned long long)r->st.tokens, tok_s,
            gflops);
    if (r->o->peak_tflops > 0)
        fprintf(f, ",\"mfu\":%.4f", gflops / (r->o->peak_tflops * 1e3));
    fprintf(f, ",\"skipped\":%ld,\"elapsed_s\":%.2f", r->st.skipped, elapsed);
    if (r->ls.dynamic || r->step_scale != 1)
        fprintf(f, ",\"loss_scale\":%.9g", r->step_scale);
    if (r->dpo_batches && !r->partial_line) {
        double k = 1.0 / r->dpo_batches;
        dsk_dpo_stats *d = &r->dpo_window;
        fprintf(f, ",\"chosen_reward\":%.6f,\"rejected_reward\":%.6f,\"margin\":%.6f,\"accuracy\":%.4f",
                d->chosen_reward * k, d->rejected_reward * k, d->margin * k, d->accuracy * k);
    }
    if (!r->partial_line)
        log_moe(r);
    fputs("}\n", f);
    log_written(r);
}

/* Every rank, at a log line: the window's DPO and routing statistics
 * over all ranks before rank 0 writes them, then counted afresh.  A
 * skipped or empty step's line between regular ones (regular 0) has
 * neither: the window goes on past it. */
static void log_window(run *r, double loss, const dsk_step_report *rep, double tok_s, double elapsed, int regular)
{
    if (!regular) {
        r->partial_line = 1;
        if (r->log)
            log_step(r, loss, rep, tok_s, elapsed);
        r->partial_line = 0;
        return;
    }
    if (r->world > 1 && r->dpo_batches) {
        /* Each rank's are means over its pairs, and all ranks have as many. */
        double v[4] = {r->dpo_window.chosen_reward, r->dpo_window.rejected_reward, r->dpo_window.margin,
                       r->dpo_window.accuracy};
        sum_ranks(r, v, 4);
        r->dpo_window.chosen_reward = v[0] / r->world, r->dpo_window.rejected_reward = v[1] / r->world;
        r->dpo_window.margin = v[2] / r->world, r->dpo_window.accuracy = v[3] / r->world;
    }
    reduce_moe_stats(r);
    if (r->log)
        log_step(r, loss, rep, tok_s, elapsed);
    memset(&r->dpo_window, 0, sizeof r->dpo_window);
    r->dpo_batches = 0;
    reset_moe_stats(r);
}

static void progress_line(run *r, double loss, double tok_s, double elapsed)
{
    if (!r->tty || r->quiet)
        return;
    double eta = tok_s > 0 ? (double)(r->total_steps - r->st.step) * r->B * r->world * r->T * r->o->grad_accum / tok_s
                           : 0;
    int width = 24, done = (int)((double)width * (double)r->st.step / (double)r->total_steps);
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < done ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r\033[K[%s] step %ld/%ld  loss %.4f  %.0f tok/s  ETA %.0fs", bar, r->st.step, r->total_steps,
            loss, tok_s, eta);
    if (r->ls.dynamic)
        fprintf(stderr, "  scale %g", r->ls.scale);
}

static void log_eval(run *r, const eval_result *e)
{
    if (!e->ok) {
        if (r->rank == 0 && r->o->eval_batches > 0 && r->ds.m.rows[DSKT_VAL] > 0 && !r->warned_empty_eval++)
            dsk_warn("step %ld: the validation rows have no target tokens: no validation loss", r->st.step);
        return;
    }
    if (!r->quiet)
        fprintf(stderr, "%sstep %ld: val loss %.4f, %.4f bits/byte\n", r->tty ? "\r\033[K" : "", r->st.step, e->loss,
                e->bpb);
    if (e->dpo.pairs && !r->quiet)
        fprintf(stderr, "step %ld: val DPO loss %.4f, preference accuracy %.3f, margin %.4f\n", r->st.step,
                e->dpo.loss, e->dpo.accuracy, e->dpo.margin);
    if (r->log) {
        /* a diverged model's losses are not finite: null, as JSON has no NaN */
        fprintf(r->log, "{\"step\":%ld", r->st.step);
        log_num(r->log, "val_loss", e->loss, "%.6f");
        log_num(r->log, "val_bpb", e->bpb, "%.6f");
        fprintf(r->log, ",\"val_tokens\":%.0f", e->targets);
        if (e->dpo.pairs) {
            log_num(r->log, "val_dpo_loss", e->dpo.loss, "%.6f");
            log_num(r->log, "val_chosen_reward", e->dpo.chosen_reward, "%.6f");
            log_num(r->log, "val_rejected_reward", e->dpo.rejected_reward, "%.6f");
            log_num(r->log, "val_margin", e->dpo.margin, "%.6f");
            log_num(r->log, "val_accuracy", e->dpo.accuracy, "%.4f");
            fprintf(r->log, ",\"val_pairs\":%ld", e->dpo.pairs);
        }
        fputs("}\n", r->log);
        log_written(r);
    }
}

/* ---- the loop -------------------------------------------------------------------------------------------- */

/* A --log write that failed (a full disk, a quota): EX_IOERR naming the
 * file, else 0.  Rank 0 alone writes the log. */
static int log_failed(run *r)
{
    if (!r->log)
        return 0;
    errno = 0;
    if (fflush(r->log) == 0 && !ferror(r->log))
        return 0;
    int e = r->log_errno ? r->log_errno : errno;
    return dsk_fail(r->err, EX_IOERR, "%s: cannot write the log: %s", r->o->log_path, e ? strerror(e) : "a write failed");
}

static int train(run *r)
{
    const dsk_train_opts *o = r->o;
    dsk_err *err = r->err;
    int rc = 0;
    long bad_in_row = r->st.bad_in_row;   /* (saved: a resumed run counts on) */
    double t_start = dsk_now(), t_window = t_start;
    uint64_t tokens_window = 0, tokens_run = 0;
    double loss_window = 0;
    int n_window = 0;
    catch_stop_signals();
    while (r->st.step < r->total_steps) {
        dsk_zero_zero_grad(r->zero);
        double loss = 0;   /* this rank's part of the step's loss */
        double step_targets = 0;   /* over all ranks (DPO: of both answers of every pair) */
        uint64_t step_tokens = 0;
        dsk_dpo_stats step_dpo = {0};   /* DPO: summed over the micro-batches, logged if the step is not empty */
        int step_dpo_batches = 0;
        const dsk_model_config *mc = &r->model->cfg;
        if (r->world > 1 && mc->n_routed_experts > 0 && mc->router_noise != DSK_NOISE_NONE) {
            /* Each rank its own router noise; the shared state moves on
             * alike.  (Only for noise: a model without any keeps the state
             * of one process, whose samples then are the same.) */
            dsk_rng_seed(&r->noise_rng, dsk_rng_next(&r->st.rng) ^ (0x9e3779b97f4a7c15ull * (uint64_t)(r->rank + 1)));
        }
        for (int a = 0; a < o->grad_accum && !rc; a++) {
            int dpo = is_dpo(r);
            for (int b = 0; b < r->B / (dpo ? 2 : 1) && !rc; b++) {
                uint64_t index;
                rc = dsk_loader_next(r->loader, &r->row, &index, err);
                if (!rc && dpo)
                    fill_pair(r, b, &r->row);
                else if (!rc)
                    fill_row(r, b, &r->row);
            }
            if (!rc)
                rc = set_batch(r);
            if ((rc = agree(r, rc)))
                break;
            r->model->moe_run.train = 1;
            r->model->moe_run.rng = r->world > 1 ? &r->noise_rng : &r->st.rng;
            /* Each rank's balancing losses are over its own rows: their mean over the ranks. */
            /* Every gradient the loss starts is multiplied by the loss
             * scale (1 unless --dtype fp16 or --loss-scale); the
             * optimizer divides it out (dsk_optimizer's loss_scale). */
            r->model->moe_run.aux_grad_scale = (float)(r->ls.scale / (o->grad_accum * r->world));
            if (dpo) {
                /* The mean over the step's pairs, on all ranks. */
                int pairs = r->B / 2, global_pairs = pairs * r->world;
                dsk_dpo_stats st;
                loss += dpo_batch(r, pairs, r->ls.scale / ((double)global_pairs * o->grad_accum), 1, &st) /
                        global_pairs / o->grad_accum;
                add_dpo_stats(&step_dpo, &st);
                step_dpo_batches++;
                /* Pairs whose answers --seq-len cut off have no log-probability
                 * to compare: a step of only such pairs is empty, as below. */
                double n = r->model->n_targets;
                sum_ranks(r, &n, 1);
                step_targets += n;
            } else {
                /* The mean over the global batch's targets: every rank
                 * divides by their count over all ranks. */
                double n = r->model->n_targets;
                sum_ranks(r, &n, 1);
                step_targets += n;
                n = n > 0 ? n : 1;
                dsk_model_forward(r->model, (float)(r->ls.scale / (n * o->grad_accum)));
                loss += r->model->loss_sum / n / o->grad_accum;
            }
            dsk_model_backward(r->model);
            step_tokens += (uint64_t)r->B * r->T * r->world;
        }
        if (rc)
            return rc;
        sum_ranks(r, &loss, 1);
        dsk_step_report rep = {0};
        r->step_scale = r->ls.scale;
        /* A batch without a target token (SFT rows or DPO pairs whose
         * answers --seq-len cut off, all masked) has no loss to learn
         * from: no update, not even weight decay, its loss logged as null,
         * not 0, and its DPO statistics left out. */
        int empty = step_targets == 0;
        if (empty) {
            rep.lr = dsk_lr_at(&r->opt->o, r->opt->step);
            loss = NAN;
            if (r->rank == 0 && r->empty_steps++ == 0)
                dsk_warn("step %ld: the batch has no target tokens (are the answers cut off by --seq-len, or all "
                         "masked?); the step changes nothing", r->st.step + 1);
        } else if (isfinite(loss)) {
            r->opt->loss_scale = r->ls.scale;
            rep = dsk_zero_step(r->zero);
            if (!rep.skipped)
                update_router_bias(r);
        } else {
            rep.skipped = 1;
            rep.grad_norm = NAN;
            rep.lr = dsk_lr_at(&r->opt->o, r->opt->step);
        }
        /* Every rank decides alike: the loss and the gradient norm are
         * global (summed over the ranks before they are tested). */
        int scaler = empty ? DSK_LS_KEPT
                           : dsk_loss_scale_update(&r->ls, !isfinite(loss) ? DSK_STEP_LOSS_NONFINITE
                                                           : rep.skipped    ? DSK_STEP_GRAD_NONFINITE
                                                                            : DSK_STEP_GOOD);
        /* The window's DPO statistics cover the steps its loss does: the
         * good ones. */
        if (!empty && !rep.skipped && step_dpo_batches) {
            add_dpo_stats(&r->dpo_window, &step_dpo);
            r->dpo_batches += step_dpo_batches;
        }
        r->st.step++;
        r->st.tokens += step_tokens;
        r->st.cursor = dsk_loader_cursor(r->loader);
        r->st.cursor.pos *= (uint64_t)r->world;   /* saved as the position over all ranks */
        double now = dsk_now();
        tokens_window += step_tokens;
        if (rep.skipped) {
            r->st.skipped++;
            /* An fp16 overflow that halving the scale answers is routine. */
            bad_in_row += scaler == DSK_LS_BAD;
        } else if (!empty) {
            bad_in_row = 0;
        }
        r->st.bad_in_row = bad_in_row;
        if (!rep.skipped && !empty) {
            loss_window += loss;
            n_window++;
        }
        int regular = r->st.step % o->log_every == 0 || r->st.step == r->total_steps;
        if (o->log_path && (regular || rep.skipped || empty)) {
            double dt = now - t_window;
            /* A regular line has the mean loss of the good steps since the
             * last regular line (the step's own when there were none); a
             * skipped or empty step between them gets a line of its own,
             * and the window goes on past it. */
            log_window(r, regular && n_window ? loss_window / n_window : loss, &rep,
                       dt > 0 ? (double)tokens_window / dt : 0, now - t_start, regular);
            if (regular) {
                t_window = now;
                tokens_window = 0;
                loss_window = 0;
                n_window = 0;
            }
        }
        if (rep.skipped) {
            if (r->rank == 0 && scaler == DSK_LS_BACKED_OFF)
                dsk_warn("step %ld: gradient overflow at loss scale %g; step skipped, loss scale now %g", r->st.step,
                         r->step_scale, r->ls.scale);
            else if (r->rank == 0)
                dsk_warn("step %ld: non-finite %s (%g%s); step skipped (%d in a row)", r->st.step,
                         isfinite(loss) ? "gradient" : "loss", isfinite(loss) ? rep.grad_norm : loss,
                         r->ls.dynamic && isfinite(loss) ? ", loss scale below 1" : "", (int)bad_in_row);
            if (bad_in_row >= o->max_bad_steps && (o->resume || r->saved_step >= 0))
                return dsk_fail(err, EX_SOFTWARE, "%d steps in a row had a non-finite loss or gradient; stopping "
                                "(the last checkpoint in %s is intact; lower --lr or check the data)", (int)bad_in_row,
                                o->out);
            if (bad_in_row >= o->max_bad_steps)
                return dsk_fail(err, EX_SOFTWARE, "%d steps in a row had a non-finite loss or gradient; stopping "
                                "(no checkpoint saved; lower --lr or check the data)", (int)bad_in_row);
        }
        tokens_run += step_tokens;
        progress_line(r, loss, (double)tokens_run / fmax(1e-9, now - t_start), now - t_start);
        if (o->eval_every > 0 && r->st.step % o->eval_every == 0 && r->st.step < r->total_steps) {
            eval_result e;
            if ((rc = evaluate(r, &e)))
                return rc;
            log_eval(r, &e);
        }
        if (o->sample_every > 0 && r->st.step % o->sample_every == 0)
            sample(r);
        if (o->save_every > 0 && r->st.step % o->save_every == 0 && r->st.step < r->total_steps &&
            (rc = save(r)))
            return rc;
        /* A signal to any rank, or a log rank 0 could not write, stops
         * every rank after the same step, with a checkpoint. */
        int64_t stop[2] = {stop_signal, log_failed(r) != 0};
        if (r->world > 1)
            r->comm->allreduce(r->comm, stop, 2, DSK_COMM_I64, DSK_COMM_MAX);
        if (stop[0] || stop[1]) {
            /* The steps since the last line, which a later line would have
             * averaged: their own line, so that no step's loss is lost. */
            if (!stop[1] && o->log_path && !regular && !rep.skipped && !empty && n_window > 0) {   /* (a line of its own yet) */
                double dt = now - t_window;
                log_window(r, loss_window / n_window, &rep, dt > 0 ? (double)tokens_window / dt : 0, now - t_start,
                           1);
            }
            if (r->tty && !r->quiet)
                fputc('\n', stderr);
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            if ((rc = save(r)))
                return rc;
            if (stop[1]) {   /* rank 0 has the message; the others stop with its status */
                if (r->rank == 0)
                    dsk_fail(err, EX_IOERR, "%s; saved %s/latest at step %ld (continue with --resume)", why, o->out,
                             r->st.step);
                return EX_IOERR;
            }
            if (!r->quiet)
                fprintf(stderr, "%s: interrupted at step %ld; saved %s/latest (continue with --resume)\n",
                        dsk_progname(), r->st.step, o->out);
            return 128 + (int)stop[0];
        }
    }
    if (r->tty && !r->quiet)
        fputc('\n', stderr);
    eval_result e;
    if ((rc = evaluate(r, &e)))
        return rc;
    log_eval(r, &e);
    if ((rc = save(r)))
        return rc;
    if (log_failed(r))   /* (rank 0; the final agreement stops the others with it) */
        return EX_IOERR;
    if (r->empty_steps && r->rank == 0)
        dsk_warn("%ld of this run's steps had no target tokens and changed nothing", r->empty_steps);
    if (!r->quiet)
        fprintf(stderr, "%s: %ld steps, %llu tokens in %.1fs; saved %s/latest\n", dsk_progname(), r->st.step,
                (unsigned long long)r->st.tokens, dsk_now() - t_start, o->out);
    return 0;
}

static uint64_t ref_weights_hash(run *r)
{
    size_t bytes = r->ref->n_params * sizeof(float);
    float *host = dsk_xmalloc(bytes);
    r->ref->be->download(r->ref->be, host, r->ref->params, bytes);
    uint64_t h = dsk_hash64(host, bytes);
    free(host);
    return h;
}

/* One line of a written config.json, trimmed of its indent and comma. */
static void config_line(const char *p, const char *end, char *out, size_t n)
{
    while (p < end && *p == ' ')
        p++;
    const char *e = p;
    while (e < end && *e != '\n')
        e++;
    if (e > p && e[-1] == ',')
        e--;
    snprintf(out, n, "%.*s", (int)(e - p), p);
}

/* The reference is built from the trained model's config: its own
 * config.json must be that one (the two written alike and compared
 * whole), else its weights would be read into a model of another shape,
 * or compute another function.  The first line that differs is named. */
static int check_ref_config(const char *ref_dir, const dsk_model_config *cfg, dsk_err *err)
{
    dsk_model_config ref_cfg;
    char *p = dsk_path_join(ref_dir, "config.json");
    int rc = dsk_config_load(&ref_cfg, p, err);
    free(p);
    if (rc)
        return rc;
    dsk_buf a = {0}, b = {0};
    dsk_config_write(cfg, &a);
    dsk_config_write(&ref_cfg, &b);
    size_t k = 0, line = 0;
    while (k < a.len && k < b.len && a.data[k] == b.data[k])
        if (a.data[k++] == '\n')
            line = k;
    if (k < a.len || k < b.len) {
        char ours[160], theirs[160];
        config_line(a.data + line, a.data + a.len, ours, sizeof ours);
        config_line(b.data + line, b.data + b.len, theirs, sizeof theirs);
        rc = dsk_fail(err, EX_DATAERR,
                      "%s: the reference model's config.json is not the trained model's (%s, where the trained "
                      "model has %s): --ref must have --init's architecture", ref_dir, theirs, ours);
    }
    dsk_buf_free(&a);
    dsk_buf_free(&b);
    return rc;
}

/* The reference's weights hash as state.json's lineage records it. */
static void ref_hash_hex(const run *r, char hex[17])
{
    snprintf(hex, 17, "%016llx", (unsigned long long)r->ref_hash);
}

/* Resuming a dpo stage: the reference loaded now must have the weights
 * the stage started with (its lineage entry's ref_weights; checkpoints
 * from before it was recorded are taken as they are). */
static int check_ref_weights(run *r, dsk_err *err)
{
    size_t n = r->st.lineage ? json_object_array_length(r->st.lineage) : 0;
    struct json_object *last = n ? json_object_array_get_idx(r->st.lineage, n - 1) : NULL, *v;
    if (!last || !json_object_object_get_ex(last, "ref_weights", &v) || !json_object_is_type(v, json_type_string))
        return 0;
    char mine[17];
    ref_hash_hex(r, mine);
    if (strcmp(json_object_get_string(v), mine) != 0)
        return dsk_fail(err, EX_DATAERR, "%s is not the reference model this dpo run started with (its weights differ)",
                        r->ref_dir);
    return 0;
}

/* state.json's lineage: the stages that led here, each with its data and
 * the checkpoints it started from, so pretrain -> continue -> SFT -> DPO
 * can be traced from the last checkpoint alone. */
static void add_lineage(run *r, const char *from_dir)
{
    const dsk_train_opts *o = r->o;
    if (!r->st.lineage)
        r->st.lineage = json_object_new_array();
    struct json_object *e = json_object_new_object();
    json_object_object_add(e, "stage", json_object_new_string(dsk_stage_names[o->stage]));
    char *abs = realpath(o->data, NULL);
    json_object_object_add(e, "data", json_object_new_string(abs ? abs : o->data));
    free(abs);
    json_object_object_add(e, "dataset_tokenizer", json_object_new_string(r->ds.m.fingerprint));
    if (from_dir) {
        abs = realpath(from_dir, NULL);   /* latest resolved to its step directory */
        json_object_object_add(e, "init", json_object_new_string(abs ? abs : from_dir));
        free(abs);
    }
    if (r->ref_dir) {
        abs = realpath(r->ref_dir, NULL);
        json_object_object_add(e, "ref", json_object_new_string(abs ? abs : r->ref_dir));
        free(abs);
        char hex[17];   /* so that a copy of it can stand in when resuming */
        ref_hash_hex(r, hex);
        json_object_object_add(e, "ref_weights", json_object_new_string(hex));
    }
    json_object_object_add(e, "out", json_object_new_string(o->out));
    json_object_array_add(r->st.lineage, e);
}

/* Where this rank's reading starts: the saved position is over all ranks
 * (whatever their number then), this rank's is that / ranks.  A position
 * past the rows this world size reads in an epoch (the remainder it
 * leaves out) starts the next epoch. */
static int rank_cursor(run *r, dsk_data_cursor *at)
{
    *at = r->st.cursor;
    if (at->pos % (uint64_t)r->world)
        return dsk_fail(r->err, EX_USAGE, "the checkpoint is at row %llu of the data order (epoch %llu), which %d ranks "
                        "cannot share evenly: resume on a number of ranks that divides it",
                        (unsigned long long)at->pos, (unsigned long long)at->epoch, r->world);
    at->pos /= (uint64_t)r->world;
    if (at->pos >= r->ds.m.rows[DSKT_TRAIN] / (uint64_t)r->world) {
        at->epoch++;
        at->pos = 0;
    }
    return 0;
}

/* What each rank holds, as allocated (dsk_mem_plan). */
static void print_memory(run *r)
{
    dsk_mem_plan p;
    size_t peak_p, peak_g;
    dsk_zero_memory(r->zero, &p, &peak_p, &peak_g);
    p.acts = dsk_mem_activations(&r->model->cfg, r->B, r->T, r->model->recompute, r->model->be->logits_budget);
    char v[7][32];
    dsk_buf params = {0}, grads = {0};
    dsk_buf_printf(&params, "%s", dsk_mem_human(p.params, v[0], sizeof v[0]));
    if (p.params_held)
        dsk_buf_printf(&params, " (shard) + %s gathered at most", dsk_mem_human(p.params_held, v[1], sizeof v[1]));
    dsk_buf_printf(&grads, "%s", dsk_mem_human(p.grads, v[2], sizeof v[2]));
    if (p.grads_held)
        dsk_buf_printf(&grads, " (shard) + %s per unit at most", dsk_mem_human(p.grads_held, v[3], sizeof v[3]));
    if (p.grads_landing)
        dsk_buf_printf(&grads, " + %s reduce-scatter buffer", dsk_mem_human(p.grads_landing, v[4], sizeof v[4]));
    dsk_buf_addc(&params, 0);
    dsk_buf_addc(&grads, 0);
    fprintf(stderr, "%s: %d rank%s (%s), ZeRO-%d; memory per rank: parameters %s, gradients %s, optimizer state "
            "%s%s, activations %s; %s in all\n", dsk_progname(), r->world, r->world > 1 ? "s" : "", r->comm->name,
            r->o->zero, params.data, grads.data, dsk_mem_human(p.optim, v[5], sizeof v[5]),
            r->o->zero >= 1 ? " (shard)" : "", dsk_mem_human(p.acts, v[6], sizeof v[6]),
            dsk_mem_human(dsk_mem_plan_total(&p), v[0], sizeof v[0]));
    if (r->ref)
        fprintf(stderr, "%s: and the DPO reference model, whole on every rank: %s and its activations %s\n",
                dsk_progname(), dsk_mem_human(r->ref->n_params * sizeof(float), v[1], sizeof v[1]),
                dsk_mem_human(dsk_mem_activations(&r->ref->cfg, r->B, r->T, 1, r->ref->be->logits_budget), v[2],
                              sizeof v[2]));
    dsk_buf_free(&params);
    dsk_buf_free(&grads);
}

int dsk_train_run(const dsk_train_opts *o, dsk_err *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.err = err;
    r.saved_step = -1;
    const char *backend = o->backend ? o->backend : dsk_backend_default();
    r.comm = o->comm;
    if (!r.comm) {
        r.comm = dsk_comm_single();
        r.own_comm = 1;
    }
    r.rank = r.comm->rank;
    r.world = r.comm->size;
    r.quiet = o->quiet || r.rank != 0;   /* one rank speaks for the run */
    r.tty = r.rank == 0 && isatty(2);
    char *from_dir = NULL;
    dsk_model_config cfg;
    /* A new run never writes into another run's directory: its step
     * numbers would mix with the old ones and --keep would prune the new.
     * Checked now, and OUT locked, rather than at the first save. */
    dsk_run_lock lock = {.fd = -1};
    struct stat out_sb;
    int rc = 0;
    if (stat(o->out, &out_sb) == 0 && !S_ISDIR(out_sb.st_mode))   /* before the lock's mkdir/open */
        rc = dsk_run_dir_check(o->out, -1, err);
    if (!rc && r.rank == 0)
        rc = dsk_run_lock_take(&lock, o->out, err);
    if (!rc && !o->resume)   /* under the lock: no run can finish into it between the check and the lock */
        rc = dsk_run_dir_check(o->out, -1, err);
    if (!rc && (o->zero < 0 || o->zero > 3))
        rc = dsk_fail(err, EX_USAGE, "--zero %d: the ZeRO stage is 0, 1, 2 or 3", o->zero);
    if (!rc && o->batch % r.world)
        rc = dsk_fail(err, EX_USAGE, "--batch %d cannot be shared evenly by %d ranks: it is the global batch, each "
                      "rank taking batch / ranks rows (give a multiple of %d)", o->batch, r.world, r.world);
    if (!rc)
        rc = dsk_dataset_open(&r.ds, o->data, err);
    if (!rc)
        r.ds_open = 1;
    static const char *const kind_names[] = {"unknown", "pretraining", "conversation (SFT)", "preference (DPO)"};
    int want_kind = o->stage == DSK_STAGE_SFT ? DSK_KIND_SFT : o->stage == DSK_STAGE_DPO ? DSK_KIND_DPO : -1;
    if (!rc && want_kind < 0 && r.ds.m.kind == DSK_KIND_DPO)
        rc = dsk_fail(err, EX_DATAERR, "%s: a preference (DPO) dataset; stages pretrain and continue need token "
                      "rows", o->data);
    if (!rc && want_kind >= 0 && r.ds.m.kind != want_kind)
        rc = dsk_fail(err, EX_DATAERR, "%s: a %s dataset; --stage %s needs %s rows (dsk-pack of %s records)", o->data,
                      kind_names[r.ds.m.kind & 3], dsk_stage_names[o->stage], kind_names[want_kind],
                      want_kind == DSK_KIND_SFT ? "chat" : "preference");
    if (!rc && r.ds.m.rows[DSKT_TRAIN] < (uint64_t)o->batch)
        rc = dsk_fail(err, EX_DATAERR, "%s: %llu training rows, fewer than one batch (%d)", o->data,
                      (unsigned long long)r.ds.m.rows[DSKT_TRAIN], o->batch);
    if (!rc) {
        /* This rank's share of the global batch; DPO: chosen and rejected rows. */
        r.B = (o->stage == DSK_STAGE_DPO ? 2 * o->batch : o->batch) / r.world;
        r.T = o->seq_len > 0 ? o->seq_len : (int)r.ds.m.seq_len;
        if ((uint32_t)r.T > r.ds.m.seq_len)
            rc = dsk_fail(err, EX_USAGE, "--seq-len %d: the dataset's rows hold %u positions", r.T, r.ds.m.seq_len);
    }
    if (!rc)
        rc = load_tokenizer(&r);
    if (!rc)
        rc = setup_model(&r, &cfg, &from_dir);
    char our_fp[33] = "";
    if (!rc && r.have_tok)
        dsk_tokenizer_fingerprint(&r.tok, our_fp);
    if (!rc && from_dir) {
        dsk_train_state prev;
        rc = dsk_checkpoint_load_state(from_dir, &prev, err);
        if (!rc && prev.fingerprint[0] && strcmp(prev.fingerprint, r.ds.m.fingerprint))
            rc = dsk_fail(err, EX_DATAERR, "%s: trained with tokenizer %s, but %s was made with %s", from_dir,
                          prev.fingerprint, o->data, r.ds.m.fingerprint);
        if (!rc && o->resume) {
            r.st = prev;
            rc = dsk_run_dir_check(o->out, r.st.step, err);
        } else if (!rc) {
            /* A new stage from a checkpoint: its lineage, then this run. */
            r.st.lineage = prev.lineage ? json_object_get(prev.lineage) : NULL;
            dsk_train_state_free(&prev);
        } else {
            dsk_train_state_free(&prev);
        }
    }
    rc = check_same_setup(&r, &cfg, backend, rc);
    if (!rc) {
        /* Ranks sharing a machine share its cores; GPU ranks each take
         * a device of their own (the local rank's). */
        int threads = o->threads > 0 ? o->threads : dsk_comm_default_threads(r.comm);
        if (!(r.be = dsk_comm_backend_new(r.comm, backend, threads, err)))   /* 64 unknown, 69 no device */
            rc = err->code;
        else if (o->dtype < DSK_DTYPE_FP32 || o->dtype > DSK_DTYPE_FP16)
            rc = dsk_fail(err, EX_USAGE, "dtype %d: expected fp32, bf16 or fp16", o->dtype);
        else   /* every product of the run: training, evaluation, samples, DPO's reference */
            r.be->gemm_dtype = o->dtype;
    }
    /* GPU ranks: NCCL between their devices, around the MPI communicator,
     * once every rank has its device (NCCL's start-up waits for all). */
    if (r.world > 1 && strcmp(backend, "cpu") != 0 && !(rc = agree(&r, rc))) {
        if ((r.nccl = dsk_comm_nccl_open(r.comm, r.be, r.comm->timeout_s, err)))
            r.comm = r.nccl;
        else
            rc = err->code;
    }
    if (!rc) {
        r.zero = dsk_zero_new(r.comm, o->zero, r.be);
        r.model = dsk_zero_model(r.zero, &cfg);
        r.model->recompute = o->recompute;   /* read by dsk_model_alloc_batch */
        r.flops_per_token = dsk_config_flops_per_token(&cfg, r.T);
        dsk_model_alloc_batch(r.model, r.B, r.T);
        size_t n = (size_t)r.B * r.T;
        r.tokens = dsk_xmalloc(n * sizeof *r.tokens);
        r.targets = dsk_xmalloc(n * sizeof *r.targets);
        r.pos = dsk_xmalloc(n * sizeof *r.pos);
        r.weights = dsk_xmalloc(n * sizeof *r.weights);
        if (from_dir)
            rc = dsk_zero_load_weights(r.zero, from_dir, err);
        else
            dsk_zero_init_weights(r.zero, o->seed);
    }
    if (!rc && o->stage == DSK_STAGE_DPO) {
        /* The frozen reference: --ref, or the checkpoint the stage started from. */
        const char *ref = o->ref ? o->ref : o->init;
        r.ref_dir = ref ? dsk_checkpoint_resolve(ref, err) : NULL;
        if (!ref)
            rc = dsk_fail(err, EX_USAGE, "--stage dpo needs --init (or --ref) for the reference model");
        else if (!r.ref_dir && o->resume) {
            char why[sizeof err->msg];   /* dsk_fail writes over err->msg */
            snprintf(why, sizeof why, "%s", err->msg);
            rc = dsk_fail(err, err->code, "the run's reference model: %s (moved, or rotated away by --keep? "
                          "--resume -o %s --ref DIR names a copy of it)", why, o->out);
        }
        else if (!r.ref_dir)
            rc = err->code;
        if (!rc)
            rc = check_ref_config(r.ref_dir, &cfg, err);
        if (!rc) {
            r.ref = dsk_model_create(&cfg, r.be);
            /* Forward passes only: one shared set of layer buffers is all it needs. */
            r.ref->recompute = 1;
            dsk_model_alloc_batch(r.ref, r.B, r.T);
            rc = dsk_checkpoint_load_weights(r.ref_dir, r.ref, err);
        }
        if (!rc) {
            r.ref_hash = ref_weights_hash(&r);
            if (o->resume)
                rc = check_ref_weights(&r, err);
        }
        if (!rc) {
            r.logp = dsk_xcalloc((size_t)r.B, sizeof *r.logp);
            r.ref_logp = dsk_xcalloc((size_t)r.B, sizeof *r.ref_logp);
            r.coef = dsk_xcalloc((size_t)r.B, sizeof *r.coef);
            r.row_targets = dsk_xcalloc((size_t)r.B, sizeof *r.row_targets);
            r.grad_weights = dsk_xmalloc((size_t)r.B * r.T * sizeof *r.grad_weights);
        }
    }
    if (!rc && cfg.n_routed_experts > 0)
        r.bias_snapshot = dsk_xcalloc((size_t)cfg.n_layers * cfg.n_routed_experts, sizeof *r.bias_snapshot);
    if (!rc) {
        uint64_t per_step = (uint64_t)r.B * r.world * r.T * (uint64_t)o->grad_accum;
        double rows_per_step = (double)o->batch * o->grad_accum;
        /* Past the limit, not past a long: a count over 2^41 is reported as 2^41. */
        uint64_t token_steps = o->tokens / per_step + (o->tokens % per_step != 0);
        r.total_steps = o->steps > 0    ? o->steps
                        : o->tokens > 0 ? (long)(token_steps < (1ull << 41) ? token_steps : 1ull << 41)
                                        : (long)fmin(ceil_exact(o->epochs * (double)r.ds.m.rows[DSKT_TRAIN] / rows_per_step),
                                                         (double)(1L << 41));
        if (r.total_steps <= 0)
            rc = dsk_fail(err, EX_USAGE, "give the run's length with --steps N, --tokens N or --epochs X");
        else if (r.total_steps > 1L << 40)
            rc = dsk_fail(err, EX_USAGE, "%s make %ld steps of %llu tokens, over the limit of 2^40 steps",
                          o->tokens > 0 ? "--tokens" : "--epochs", r.total_steps, (unsigned long long)per_step);
    }
    if (!rc) {
        dsk_adamw_opts ao = o->adamw;
        ao.total_steps = r.total_steps;
        r.opt = dsk_zero_optimizer(r.zero, &ao);
        if (o->resume)
            rc = dsk_zero_load_optimizer(r.zero, from_dir, err);
    }
    if (!rc) {
        dsk_loss_scale_init(&r.ls, o->dtype, o->loss_scale, o->loss_scale_window);
        r.step_scale = r.ls.scale;
        /* --resume of an fp16 run: the dynamic scale goes on where it
         * was (r.st.options are still the saved run's here). */
        struct json_object *was;
        if (o->resume && r.ls.dynamic && r.st.loss_scale > 0 && r.st.options &&
            json_object_object_get_ex(r.st.options, "dtype", &was) && json_object_is_type(was, json_type_string) &&
            dsk_dtype_parse(json_object_get_string(was)) == DSK_DTYPE_FP16) {
            r.ls.scale = r.st.loss_scale;
            r.ls.good = r.st.loss_scale_good;
        }
    }
    if (!rc && !o->resume) {
        r.st.seed = o->seed;
        dsk_rng_seed(&r.st.rng, o->seed ^ 0x5eed5eed5eedull);
        snprintf(r.st.fingerprint, sizeof r.st.fingerprint, "%s", r.ds.m.fingerprint);
    }
    if (!rc) {
        snprintf(r.st.stage, sizeof r.st.stage, "%s", dsk_stage_names[o->stage]);
        if (r.st.options)
            json_object_put(r.st.options);
        r.st.options = dsk_train_opts_to_json(o);
        /* Paths made absolute, so --resume works from any directory,
         * and checkpoints as the step directories they resolved to: a
         * run directory's latest moves on, and a resumed stage must
         * start from, and compare with, what it did at first. */
        const char *init_at = o->init && !o->resume ? from_dir : o->init;
        const char *ref_at = o->ref && r.ref_dir ? r.ref_dir : o->ref;
        const char *paths[] = {"data", o->data, "init", init_at, "ref", ref_at};
        for (int i = 0; i < 6; i += 2) {
            char *abs = paths[i + 1] ? realpath(paths[i + 1], NULL) : NULL;
            if (abs) {
                json_object_object_add(r.st.options, paths[i], json_object_new_string(abs));
                free(abs);
            }
        }
        if (!o->resume)
            add_lineage(&r, from_dir);
        dsk_loader_opts lo = {.split = DSKT_TRAIN, .shuffle = 1, .seed = r.st.seed, .rank = (unsigned)r.rank,
                              .world = (unsigned)r.world, .prefetch = (unsigned)(2 * r.B), .threads = 1};
        dsk_data_cursor at;
        rc = rank_cursor(&r, &at);
        if (!rc)
            rc = dsk_loader_open(&r.loader, &r.ds, &lo, &at, err);
    }
    if (!rc && r.rank == 0)
        rc = open_log(&r);
    int cpu = r.be && !strcmp(r.be->name, "cpu");
    if (!rc && !r.quiet)
        fprintf(stderr, "%s: %s model, %zu parameters, %s backend%s%s%s with %d threads; %ld steps of %d x %d tokens; "
                "products in %s%s\n", dsk_progname(),
                o->resume ? "resuming a" : o->stage == DSK_STAGE_PRETRAIN ? "a new" : "continuing a",
                r.model->n_params, r.be->name, cpu ? " (OpenBLAS " : "", cpu ? dsk_blas_kernels() : "",
                cpu ? " kernels)" : "", r.be->threads, r.total_steps, r.B * r.world * o->grad_accum, r.T,
                dsk_dtype_name(o->dtype), o->recompute ? "; recomputing activations" : "");
    if (!rc && !r.quiet && (r.world > 1 || o->zero > 0))
        print_memory(&r);
    if (!rc && o->resume && r.st.step >= r.total_steps)
        rc = dsk_fail(err, EX_USAGE, "%s is at step %ld already; raise --steps to train further", from_dir, r.st.step);
    /* Every rank set up, or all stop here. */
    if (!(rc = agree(&r, rc)))
        rc = train(&r);
    if ((rc == 0 || rc > 128) && r.ref && ref_weights_hash(&r) != r.ref_hash)
        rc = dsk_fail(err, EX_SOFTWARE, "the reference model's weights changed during DPO (a bug)");
    rc = agree(&r, rc);

    if (r.log)
        fclose(r.log);
    if (r.loader)
        dsk_loader_close(r.loader);
    dsk_generator_free(r.gen);
    dsk_zero_free(r.zero);
    dsk_model_free(r.model);
    dsk_model_free(r.ref);
    free(r.ref_dir);
    free(r.logp);
    free(r.ref_logp);
    free(r.coef);
    free(r.row_targets);
    free(r.grad_weights);
    if (r.nccl)   /* before its backend; the MPI communicator it wraps stays open */
        r.nccl->close(r.nccl);
    if (r.be)
        r.be->destroy(r.be);
    dsk_row_free(&r.row);
    free(r.tokens);
    free(r.targets);
    free(r.pos);
    free(r.weights);
    free(r.bias_snapshot);
    free(r.tokenizer_path);
    free(from_dir);
    dsk_run_lock_release(&lock);
    if (r.have_tok)
        dsk_tokenizer_free(&r.tok);
    dsk_train_state_free(&r.st);
    if (r.ds_open)
        dsk_dataset_close(&r.ds);
    if (r.own_comm)
        r.comm->close(r.comm);
    return rc;
}
