/* dsk-eval: measure a checkpoint.  See dsk-eval(1). */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cli.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/outfile.h"
#include "core/split.h"
#include "eval/ab.h"
#include "eval/eval.h"
#include "eval/mlflow.h"
#include "eval/plot.h"
#include "serve/engine.h"
#include "ops/blas_kernels.h"
#include "text/utf8.h"

static const char usage[] =
    "Usage: dsk-eval ppl CKPT --data DIR [--split val|train|test] [--batch N] [--rows N]\n"
    "       dsk-eval mc CKPT TASK.jsonl [--batch N] [--items FILE]\n"
    "       dsk-eval gen CKPT TASK.jsonl [--max-tokens N] [--batch N] [--speculate K] [--items FILE]\n"
    "       dsk-eval ab A B TASK... [--resamples N] [--confidence X] [--alpha X]\n"
    "       dsk-eval plot LOG.jsonl... -o FILE.svg [--metric KEY]... [--label NAME]... [--log-x]\n"
    "       dsk-eval plot --ab AB.json -o FILE.svg\n"
    "Measure a checkpoint (a step directory, or a run directory's latest).\n"
    "\n"
    "  ppl   loss, perplexity and bits per byte over a dataset split\n"
    "  mc    multiple choice by log-likelihood ({\"context\", \"choices\", \"gold\"}): acc and acc_norm\n"
    "  gen   answer each item of TASK.jsonl ({\"prompt\" or \"messages\", \"answer\" or \"regex\"}) through\n"
    "        the chat template and score exact matches\n"
    "  ab    the same items under checkpoints A and B: paired differences, bootstrap interval, p-value;\n"
    "        a TASK is a mc or gen file, or a dataset directory (per-row loss on --split)\n"
    "  plot  training and validation curves of dsk-train logs, or an A/B result, as SVG\n"
    "\n"
    "  -d, --data DIR        ppl: the dataset (made with the checkpoint's tokenizer)\n"
    "      --split NAME      ppl, ab: val (default), train or test\n"
    "  -b, --batch N         rows per forward pass; gen: answers decoded together (default 8)\n"
    "      --rows N          ppl, and ab's dataset tasks: the first N rows only\n"
    "      --max-tokens N    gen: the longest answer (default 32)\n"
    "      --temperature X   gen: 0 (default) is greedy; else sampled, with --top-k, --top-p, --seed\n"
    "      --top-k N, --top-p X, --min-p X, --seed N (each item its own generator, seeded from N)\n"
    "      --speculate K     gen: draft up to K (0-7) tokens a step by prompt lookup (the same draws)\n"
    "      --items FILE      mc, gen: each item's output and score as JSON Lines\n"
    "      --resamples N     ab: bootstrap resamples (default 10000)\n"
    "      --confidence X    ab: interval level (default 0.95)\n"
    "      --alpha X         ab: significance level of the verdict (default 0.05)\n"
    "  -o, --output FILE     plot: the SVG to write\n"
    "      --metric KEY      plot: a log key to draw (repeatable; default loss and val_loss)\n"
    "      --label NAME      plot: the legend name of the next log (repeatable; default its file name)\n"
    "      --title TEXT      plot: the title\n"
    "      --log-x           plot: logarithmic step axis\n"
    "      --ab FILE         plot: draw the JSON written by 'dsk-eval ab --json'\n"
    "      --json            one JSON object on stdout instead of the table\n"
    "      --log FILE        append the JSON result as one line to FILE\n"
    "      --mlflow URI      log parameters and metrics to an MLflow tracking server\n"
    "      --experiment NAME MLflow experiment (default dsk-eval), --run-name NAME\n"
    "      --device NAME     cuda[:N] or cpu (default: cuda when a GPU is present, else cpu);\n"
    "                        --backend is the same\n"
    "  -j, --threads N       threads (default: all cores)\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 69 tracking server unreachable, 73 cannot\n"
    "create, 74 I/O error, 76-78 the tracking server's reply, credentials or experiment.\n";

enum {
    OPT_SPLIT = 256, OPT_ROWS, OPT_MAXTOK, OPT_TEMP, OPT_TOPK, OPT_TOPP, OPT_MINP, OPT_SEED, OPT_ITEMS, OPT_JSON, OPT_BACKEND,
    OPT_RESAMPLES, OPT_CONF, OPT_ALPHA, OPT_METRIC, OPT_LABEL, OPT_TITLE, OPT_LOGX, OPT_AB, OPT_LOG, OPT_MLFLOW,
    OPT_EXPERIMENT, OPT_SPECULATE, OPT_RUN_NAME
};

static const struct option long_options[] = {
    {"data", required_argument, NULL, 'd'},             {"split", required_argument, NULL, OPT_SPLIT},
    {"batch", required_argument, NULL, 'b'},            {"rows", required_argument, NULL, OPT_ROWS},
    {"max-tokens", required_argument, NULL, OPT_MAXTOK}, {"temperature", required_argument, NULL, OPT_TEMP},
    {"top-k", required_argument, NULL, OPT_TOPK},       {"top-p", required_argument, NULL, OPT_TOPP},
    {"min-p", required_argument, NULL, OPT_MINP},
    {"seed", required_argument, NULL, OPT_SEED},        {"items", required_argument, NULL, OPT_ITEMS},
    {"speculate", required_argument, NULL, OPT_SPECULATE},
    {"resamples", required_argument, NULL, OPT_RESAMPLES}, {"confidence", required_argument, NULL, OPT_CONF},
    {"alpha", required_argument, NULL, OPT_ALPHA},      {"output", required_argument, NULL, 'o'},
    {"metric", required_argument, NULL, OPT_METRIC},    {"label", required_argument, NULL, OPT_LABEL},
    {"title", required_argument, NULL, OPT_TITLE},      {"log-x", no_argument, NULL, OPT_LOGX},
    {"ab", required_argument, NULL, OPT_AB},            {"json", no_argument, NULL, OPT_JSON},
    {"log", required_argument, NULL, OPT_LOG},          {"mlflow", required_argument, NULL, OPT_MLFLOW},
    {"experiment", required_argument, NULL, OPT_EXPERIMENT}, {"run-name", required_argument, NULL, OPT_RUN_NAME},
    {"backend", required_argument, NULL, OPT_BACKEND},  {"device", required_argument, NULL, OPT_BACKEND},  {"threads", required_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},                   {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

typedef struct eval_cli {
    const char *data, *items, *backend, *output, *title, *ab_file, *log, *mlflow, *experiment, *run_name;
    int split, batch, json, threads, log_x;
    long rows;
    dsk_gen_opts gen;
    dsk_ab_opts ab;
    double alpha;
    const char *metrics[16], *labels[64];
    int n_metrics, n_labels;
} eval_cli;

/* Where each option applies: one that the command does not use is a
 * usage error, not silently ignored (--items on ppl wrote nothing). */
enum {
    FOR_PPL = 1, FOR_MC = 2, FOR_GEN = 4, FOR_AB = 8, FOR_PLOT = 16, FOR_PLOT_AB = 32,
    FOR_SCORING = FOR_PPL | FOR_MC | FOR_GEN | FOR_AB, FOR_PLOTS = FOR_PLOT | FOR_PLOT_AB
};

static const dsk_option_scope option_scope[] = {
    {'d', "--data", FOR_PPL},
    {OPT_SPLIT, "--split", FOR_PPL | FOR_AB},
    {'b', "--batch", FOR_PPL | FOR_MC | FOR_GEN | FOR_AB},
    {OPT_ROWS, "--rows", FOR_PPL | FOR_AB},
    {OPT_MAXTOK, "--max-tokens", FOR_GEN | FOR_AB},
    {OPT_TEMP, "--temperature", FOR_GEN | FOR_AB},
    {OPT_TOPK, "--top-k", FOR_GEN | FOR_AB},
    {OPT_TOPP, "--top-p", FOR_GEN | FOR_AB},
    {OPT_MINP, "--min-p", FOR_GEN | FOR_AB},
    {OPT_SEED, "--seed", FOR_GEN | FOR_AB},
    {OPT_SPECULATE, "--speculate", FOR_GEN | FOR_AB},
    {OPT_ITEMS, "--items", FOR_MC | FOR_GEN},
    {OPT_RESAMPLES, "--resamples", FOR_AB},
    {OPT_CONF, "--confidence", FOR_AB},
    {OPT_ALPHA, "--alpha", FOR_AB},
    {'o', "--output", FOR_PLOTS},
    {OPT_METRIC, "--metric", FOR_PLOT},
    {OPT_LABEL, "--label", FOR_PLOT},
    {OPT_TITLE, "--title", FOR_PLOTS},
    {OPT_LOGX, "--log-x", FOR_PLOT},
    {OPT_AB, "--ab", FOR_PLOTS},
    {OPT_JSON, "--json", FOR_SCORING},
    {OPT_LOG, "--log", FOR_SCORING},
    {OPT_MLFLOW, "--mlflow", FOR_SCORING},
    {OPT_EXPERIMENT, "--experiment", FOR_SCORING},
    {OPT_RUN_NAME, "--run-name", FOR_SCORING},
    {OPT_BACKEND, "--device", FOR_SCORING},
    {'j', "--threads", FOR_SCORING},
};

static void check_scope(const unsigned char *given, unsigned cmd, const char *cmd_name)
{
    dsk_check_option_scope(option_scope, sizeof option_scope / sizeof *option_scope, given, cmd, cmd_name);
}

/* decoding: gen decodes token by token, and freezes the weights for it
 * (dsk_loaded_freeze; ab does so before its gen tasks); ppl and mc read
 * whole rows, and do not pay for the panels. */
static void load(dsk_loaded *l, const char *path, const eval_cli *c, int decoding)
{
    dsk_err err = {0};
    if (dsk_load_checkpoint(l, path, c->backend ? c->backend : dsk_backend_default(), c->threads, &err))
        dsk_die_err(&err);
    if (decoding)
        dsk_loaded_freeze(l);
}

/* A string of the result: a path, say, which need not be UTF-8 (JSON must
 * be: invalid bytes become U+FFFD, as a model's text does). */
static void add_str(struct json_object *o, const char *k, const char *v)
{
    dsk_buf text = {0};
    dsk_utf8_repair(v, strlen(v), &text);
    json_object_object_add(o, k, json_object_new_string_len(text.data ? text.data : "", (int)text.len));
    dsk_buf_free(&text);
}

static void add_num(struct json_object *o, const char *k, double v)
{
    json_object_object_add(o, k, isfinite(v) ? dsk_json_new_double(v) : NULL);
}

/* ---- the commands: each returns its result as a JSON object and prints its table ---- */

static struct json_object *cmd_ppl(const eval_cli *c, const char *ckpt)
{
    dsk_loaded l;
    dsk_err err = {0};
    load(&l, ckpt, c, 0);
    dsk_ppl_result r;
    if (dsk_eval_ppl(&l, c->data, c->split, c->batch, c->rows, &r, &err))
        dsk_die_err(&err);
    struct json_object *o = json_object_new_object();
    add_str(o, "command", "ppl");
    add_str(o, "checkpoint", l.dir);
    add_str(o, "data", c->data);
    add_str(o, "split", dsk_split_names[c->split]);
    json_object_object_add(o, "rows", json_object_new_int64(r.rows));
    json_object_object_add(o, "windows", json_object_new_int(r.windows));
    add_num(o, "tokens", r.tokens);
    add_num(o, "bytes", r.bytes);
    add_num(o, "loss", r.loss);
    add_num(o, "ppl", r.ppl);
    add_num(o, "bpb", r.bpb);
    char windows[96] = "";
    if (r.windows > 1)
        snprintf(windows, sizeof windows, " (each in %d windows of the model's %d positions)", r.windows,
                 l.model->cfg.max_seq_len);
    if (!c->json)
        printf("%s on %s (%s): %ld rows%s, %.0f tokens, %.0f bytes: loss %.4f, perplexity %.2f, %.4f bits/byte\n",
               l.dir, c->data, dsk_split_names[c->split], r.rows, windows, r.tokens, r.bytes, r.loss, r.ppl, r.bpb);
    dsk_ppl_result_free(&r);
    dsk_loaded_free(&l);
    return o;
}

static FILE *open_items(const eval_cli *c, dsk_outfile *f)
{
    dsk_err err = {0};
    if (!c->items)
        return NULL;
    if (dsk_outfile_open(f, c->items, &err))
        dsk_die_err(&err);
    return f->fp;
}

static void commit_items(const eval_cli *c, dsk_outfile *f)
{
    dsk_err err = {0};
    if (c->items && dsk_outfile_commit(f, &err))
        dsk_die_err(&err);
}

static struct json_object *cmd_mc(const eval_cli *c, const char *ckpt, const char *task)
{
    dsk_loaded l;
    dsk_err err = {0};
    load(&l, ckpt, c, 0);
    dsk_outfile f = {0};
    dsk_mc_opts mo = {c->batch, open_items(c, &f)};
    dsk_mc_result r;
    if (dsk_eval_mc(&l, task, &mo, &r, &err))
        dsk_die_err(&err);
    commit_items(c, &f);
    struct json_object *o = json_object_new_object();
    add_str(o, "command", "mc");
    add_str(o, "checkpoint", l.dir);
    add_str(o, "task", task);
    json_object_object_add(o, "items", json_object_new_int64(r.items));
    add_num(o, "acc", r.acc);
    add_num(o, "acc_norm", r.acc_norm);
    if (!c->json)
        printf("%s on %s: %ld items, acc %.4f, acc_norm %.4f\n", l.dir, task, r.items, r.acc, r.acc_norm);
    dsk_mc_result_free(&r);
    dsk_loaded_free(&l);
    return o;
}

static struct json_object *cmd_gen(const eval_cli *c, const char *ckpt, const char *task)
{
    dsk_loaded l;
    dsk_err err = {0};
    load(&l, ckpt, c, 1);
    dsk_outfile f = {0};
    dsk_gen_opts g = c->gen;
    g.items = open_items(c, &f);
    dsk_gen_result r;
    if (dsk_eval_gen(&l, task, &g, &r, &err))
        dsk_die_err(&err);
    commit_items(c, &f);
    struct json_object *o = json_object_new_object();
    add_str(o, "command", "gen");
    add_str(o, "checkpoint", l.dir);
    add_str(o, "task", task);
    json_object_object_add(o, "items", json_object_new_int64(r.items));
    json_object_object_add(o, "correct", json_object_new_int64(r.correct));
    add_num(o, "exact_match", r.accuracy);
    if (!c->json)
        printf("%s on %s: exact match %ld/%ld = %.3f\n", l.dir, task, r.correct, r.items, r.accuracy);
    dsk_gen_result_free(&r);
    dsk_loaded_free(&l);
    return o;
}

/* The weights are frozen for decoding (see load) only after the tasks
 * that read whole rows are scored, so that ab's ppl and mc figures are
 * the ones ppl and mc give. */
static void score_all(const eval_cli *c, const char *ckpt, char *const *tasks, const int *kinds, int n,
                      dsk_task_scores *s, char **dir)
{
    dsk_loaded l;
    dsk_err err = {0};
    load(&l, ckpt, c, 0);
    int frozen = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int t = 0; t < n; t++) {
            if ((kinds[t] == DSK_TASK_GEN) != pass)
                continue;
            if (pass && !frozen++)
                dsk_loaded_freeze(&l);
            if (dsk_eval_task(&l, tasks[t], c->split, c->batch, c->rows, &c->gen, &s[t], &err))
                dsk_die_err(&err);
        }
    *dir = dsk_xstrdup(l.dir);
    dsk_loaded_free(&l);
}

/* ab scores A whole before B is loaded: what would fail under B (its
 * files, a dataset of another tokenizer) is found first, not after A's
 * hours. */
static void ab_preflight(const char *which, const char *ckpt, char *const *tasks, const int *kinds, int n,
                         int max_tokens)
{
    dsk_loaded l;
    dsk_model_config cfg;
    dsk_err err = {0};
    int rc = dsk_load_checkpoint_meta(&l, ckpt, &cfg, &err);
    /* every item of every task, as the scoring will read it; a bad item
     * is named by its file and line, whichever checkpoint read it */
    int item_fault = 0;
    for (int t = 0; t < n && !rc; t++) {
        rc = kinds[t] == DSK_TASK_PPL ? dsk_eval_ppl_check(&l, cfg.vocab_size, tasks[t], &err)
             : kinds[t] == DSK_TASK_MC ? dsk_eval_mc_check(&l, tasks[t], &err)
                                       : dsk_eval_gen_check(&l, tasks[t], max_tokens, &err);
        item_fault = rc && kinds[t] != DSK_TASK_PPL;
    }
    dsk_loaded_free(&l);
    if (rc && item_fault)
        dsk_die(rc, "%s", err.msg);
    if (rc)
        dsk_die(rc, "checkpoint %s (%s): %s", which, ckpt, err.msg);
}

static struct json_object *cmd_ab(const eval_cli *c, const char *a, const char *b, char *const *tasks, int n)
{
    dsk_err err = {0};
    int *kinds = dsk_xmalloc((size_t)n * sizeof *kinds);
    for (int t = 0; t < n; t++)   /* the tasks themselves first: their faults are no checkpoint's */
        if (dsk_task_kind(tasks[t], &kinds[t], &err))
            dsk_die_err(&err);
    ab_preflight("A", a, tasks, kinds, n, c->gen.max_tokens);
    ab_preflight("B", b, tasks, kinds, n, c->gen.max_tokens);
    /* One checkpoint at a time, so two large models need not fit together. */
    dsk_task_scores *sa = dsk_xcalloc((size_t)n, sizeof *sa), *sb = dsk_xcalloc((size_t)n, sizeof *sb);
    char *dir_a, *dir_b;
    score_all(c, a, tasks, kinds, n, sa, &dir_a);
    score_all(c, b, tasks, kinds, n, sb, &dir_b);
    free(kinds);
    double conf = c->ab.confidence;
    struct json_object *o = json_object_new_object(), *rows = json_object_new_array();
    add_str(o, "command", "ab");
    add_str(o, "a", dir_a);
    add_str(o, "b", dir_b);
    add_num(o, "confidence", conf);
    add_num(o, "alpha", c->alpha);
    json_object_object_add(o, "resamples", json_object_new_int(c->ab.resamples));
    if (!c->json)
        printf("A: %s\nB: %s\n%-28s %-12s %6s %9s %9s %9s  %-22s %7s\n", dir_a, dir_b, "task", "metric", "n", "A", "B",
               "B-A", "CI", "p");
    dsk_buf verdicts = {0};
    for (int t = 0; t < n; t++) {
        if (sa[t].n != sb[t].n)
            dsk_die(EX_DATAERR, "%s: %ld items under A but %ld under B", tasks[t], sa[t].n, sb[t].n);
        for (int k = 0; k < sa[t].n_metrics; k++) {
            dsk_ab_summary s = {0};
            s.higher_better = sa[t].higher_better[k];
            dsk_ab_bootstrap(sa[t].item[k], sb[t].item[k], sa[t].n, &c->ab, &s);
            dsk_buf v = {0};
            dsk_ab_verdict(&s, conf, c->alpha, &v);
            dsk_buf_addc(&v, 0);
            struct json_object *r = json_object_new_object();
            add_str(r, "task", tasks[t]);
            add_str(r, "metric", sa[t].metric[k]);
            json_object_object_add(r, "higher_is_better", json_object_new_boolean(s.higher_better));
            json_object_object_add(r, "n", json_object_new_int64(s.n));
            add_num(r, "a", sa[t].value[k]);
            add_num(r, "b", sb[t].value[k]);
            add_num(r, "mean_a", s.mean_a);
            add_num(r, "mean_b", s.mean_b);
            add_num(r, "diff", s.diff);
            add_num(r, "lo", s.lo);
            add_num(r, "hi", s.hi);
            add_num(r, "p", s.p);
            add_str(r, "verdict", v.data);
            json_object_array_add(rows, r);
            if (!c->json) {
                char ci[64], p[32];
                snprintf(ci, sizeof ci, "[%+.4f, %+.4f]", s.lo, s.hi);
                dsk_ab_p_fixed(s.p, c->alpha, p, sizeof p);
                printf("%-28.28s %-12s %6ld %9.4f %9.4f %+9.4f  %-22s %7s\n", tasks[t], sa[t].metric[k], s.n,
                       s.mean_a, s.mean_b, s.diff, ci, p);
                dsk_buf_adds(&verdicts, "  ");
                dsk_buf_adds(&verdicts, tasks[t]);
                dsk_buf_adds(&verdicts, " ");
                dsk_buf_adds(&verdicts, sa[t].metric[k]);
                dsk_buf_adds(&verdicts, ": ");
                dsk_buf_adds(&verdicts, v.data);
                dsk_buf_addc(&verdicts, '\n');
            }
            dsk_buf_free(&v);
        }
        dsk_task_scores_free(&sa[t]);
        dsk_task_scores_free(&sb[t]);
    }
    if (!c->json && verdicts.len)
        fwrite(verdicts.data, 1, verdicts.len, stdout);
    json_object_object_add(o, "results", rows);
    dsk_buf_free(&verdicts);
    free(sa), free(sb), free(dir_a), free(dir_b);
    return o;
}

static void write_svg(const char *path, const dsk_buf *svg)
{
    dsk_err err = {0};
    dsk_outfile f = {0};
    if (dsk_outfile_open(&f, path, &err))
        dsk_die_err(&err);
    if (fwrite(svg->data, 1, svg->len, f.fp) != svg->len)
        dsk_die(EX_IOERR, "%s: write error", path);
    if (dsk_outfile_commit(&f, &err))
        dsk_die_err(&err);
}

static int cmd_plot(const eval_cli *c, char *const *logs, int n)
{
    dsk_err err = {0};
    dsk_plot_opts po = {0};
    po.title = c->title;
    po.log_x = c->log_x;
    po.metrics = c->n_metrics ? c->metrics : NULL;
    po.n_metrics = c->n_metrics;
    dsk_buf svg = {0};
    int rc;
    if (c->ab_file) {
        rc = dsk_plot_ab_file(c->ab_file, &po, &svg, &err);
    } else {
        if (c->n_labels && c->n_labels != n)
            dsk_usage_error("%d --label for %d logs", c->n_labels, n);
        rc = dsk_plot_curves((const char *const *)logs, c->n_labels ? c->labels : NULL, n, &po, &svg, &err);
    }
    if (rc)
        dsk_die_err(&err);
    write_svg(c->output, &svg);
    dsk_buf_free(&svg);
    return 0;
}

/* ---- tracking: the JSON result as a line in a log and as MLflow metrics ---- */

static void append_log(const char *path, struct json_object *o)
{
    json_object_object_add(o, "time", json_object_new_int64((int64_t)time(NULL)));
    struct stat st;
    int existed = stat(path, &st) == 0;
    FILE *f = dsk_fopen_log(path, "ab");
    if (!f)
        dsk_die(EX_CANTCREAT, "%s: cannot open for appending: %s", path, strerror(errno));
    /* A line that cannot be written whole (a full disk) is taken back: the
     * log keeps whole lines, and one this run created goes. */
    off_t before = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
    dsk_buf b = {0};
    dsk_json_append(o, &b);
    dsk_buf_addc(&b, '\n');
    errno = 0;
    int ok = fwrite(b.data, 1, b.len, f) == b.len;
    ok = fflush(f) == 0 && ok;
    int why = errno;
    if (!ok && before >= 0 && ftruncate(fileno(f), before) == 0 && !existed)
        unlink(path);
    if (fclose(f) != 0 && ok) {
        ok = 0;
        why = errno;
    }
    if (!ok)
        dsk_die(EX_IOERR, "%s: cannot write: %s", path, why ? strerror(why) : "write error");
    dsk_buf_free(&b);
}

/* Strings become parameters, numbers metrics; ab rows become metrics
 * named TASK/METRIC/{a,b,diff,lo,hi,p}. */
/* The base name of task (trailing '/' left out) in [*b, *b + *len). */
static void task_base(const char *task, const char **b, int *len)
{
    size_t tl = strlen(task);
    while (tl > 1 && task[tl - 1] == '/')
        tl--;
    const char *base = task + tl;
    while (base > task && base[-1] != '/')
        base--;
    *b = base;
    *len = (int)(task + tl - base);
}

/* The name TASK/METRIC/ of an ab row in the MLflow run: the task's file
 * name, or, when another task of the rows has the same, its whole path
 * (its parts, without empty or "." ones); MLflow keys may hold '/' but
 * must not read as other paths (absolute, or with ".."). */
static void ab_row_name(struct json_object *rows, size_t i, char *name, size_t cap)
{
    const char *task = json_object_get_string(json_object_object_get(json_object_array_get_idx(rows, i), "task"));
    const char *base;
    int len;
    task_base(task, &base, &len);
    char whole[400];
    for (size_t j = 0; j < json_object_array_length(rows); j++) {
        const char *other = json_object_get_string(json_object_object_get(json_object_array_get_idx(rows, j), "task"));
        const char *ob;
        int ol;
        task_base(other, &ob, &ol);
        if (strcmp(other, task) != 0 && ol == len && memcmp(ob, base, (size_t)len) == 0) {
            /* The path's parts without empty or "." ones: MLflow refuses
             * a key that its normpath would change ("x//t", "x/./t"). */
            size_t w = 0;
            for (const char *p = task; *p && w + 2 < sizeof whole;) {
                size_t part = strcspn(p, "/");
                if (part && !(part == 1 && *p == '.')) {
                    if (w)
                        whole[w++] = '/';
                    size_t take = part < sizeof whole - 1 - w ? part : sizeof whole - 1 - w;
                    memcpy(whole + w, p, take);
                    w += take;
                }
                p += part + (p[part] == '/');
            }
            whole[w] = '\0';
            base = whole;
            len = (int)w;
            break;
        }
    }
    char sub[512];
    snprintf(sub, sizeof sub, "%.*s/%s/", len, base,
             json_object_get_string(json_object_object_get(json_object_array_get_idx(rows, i), "metric")));
    /* One '_' for each character MLflow refuses (a UTF-8 character's
     * continuation bytes are dropped, not each made a '_' of its own). */
    size_t q = 0;
    for (const char *p = sub; *p && q + 1 < cap; p++) {
        if (((unsigned char)*p & 0xC0) == 0x80)
            continue;
        int keep = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. /", *p) &&
                   !(*p == '.' && p[1] == '.');
        name[q++] = keep ? *p : '_';
    }
    name[q] = '\0';
}

static int mlflow_object(dsk_mlflow *ml, const char *prefix, struct json_object *o, dsk_err *err)
{
    int rc = 0;
    json_object_object_foreach(o, key, val)
    {
        char name[512];
        snprintf(name, sizeof name, "%s%s", prefix, key);
        if (dsk_json_is(val, json_type_string) && !*prefix)
            rc = dsk_mlflow_param(ml, name, json_object_get_string(val), err);
        else if (dsk_json_is(val, json_type_double) || dsk_json_is(val, json_type_int))
            rc = dsk_mlflow_metric(ml, name, json_object_get_double(val), 0, err);
        else if (dsk_json_is(val, json_type_array))
            for (size_t i = 0; !rc && i < json_object_array_length(val); i++) {
                char sub[512];
                ab_row_name(val, i, sub, sizeof sub);
                rc = mlflow_object(ml, sub, json_object_array_get_idx(val, i), err);
            }
        if (rc)
            break;
    }
    return rc;
}

static void log_mlflow(const eval_cli *c, struct json_object *o)
{
    dsk_err err = {0};
    dsk_mlflow *ml = dsk_mlflow_start(c->mlflow, c->experiment, c->run_name, &err);
    if (!ml)
        dsk_die_err(&err);
    int rc = mlflow_object(ml, "", o, &err);
    dsk_err fin = {0};
    if (dsk_mlflow_finish(ml, rc == 0, &fin) && !rc)
        err = fin, rc = fin.code;
    if (rc)
        dsk_die_err(&err);
}

int main(int argc, char **argv)
{
    dsk_blas_choose_kernels(argv);   /* may start this program again, before anything else */
    dsk_set_progname(argv[0]);
    dsk_signals_init();
    eval_cli c = {0};
    c.backend = NULL;   /* dsk_backend_default() */
    c.split = 1;
    c.batch = 8;
    c.experiment = "dsk-eval";
    c.gen = (dsk_gen_opts){32, {0, 0, 1, 0}, 1, NULL, 8, 0};
    c.ab = (dsk_ab_opts){10000, 0.95, 1};
    c.alpha = 0.05;
    int opt;
    unsigned char given[OPT_RUN_NAME + 1] = {0};
    while ((opt = getopt_long(argc, argv, ":d:b:j:o:hV", long_options, NULL)) != -1) {
        if (opt > 0 && opt <= OPT_RUN_NAME)
            given[opt] = 1;
        switch (opt) {
        case 'd': c.data = optarg; break;
        case OPT_SPLIT:
            c.split = dsk_split_parse(optarg);
            if (c.split < 0)
                dsk_usage_error("--split '%s': expected train, val or test", optarg);
            break;
        case 'b': c.batch = c.gen.batch = (int)dsk_parse_int("--batch", optarg, 1, 1 << 16); break;
        case OPT_SPECULATE: c.gen.speculate = (int)dsk_parse_int("--speculate", optarg, 0, DSK_SPEC_MAX); break;
        case OPT_ROWS: c.rows = (long)dsk_parse_int("--rows", optarg, 1, 1LL << 40); break;
        case OPT_MAXTOK: c.gen.max_tokens = (int)dsk_parse_int("--max-tokens", optarg, 1, 1 << 20); break;
        case OPT_TEMP: c.gen.sampler.temperature = dsk_parse_double("--temperature", optarg, 0, 100); break;
        case OPT_TOPK: c.gen.sampler.top_k = (int)dsk_parse_int("--top-k", optarg, 0, 1 << 24); break;
        case OPT_TOPP:   /* 0 would keep nothing: refused, as Hugging Face's generate does */
            c.gen.sampler.top_p = dsk_parse_double("--top-p", optarg, 0, 1);
            if (c.gen.sampler.top_p <= 0)
                dsk_usage_error("--top-p: 0 keeps no token; give a share above 0, up to 1");
            break;
        case OPT_MINP: c.gen.sampler.min_p = dsk_parse_double("--min-p", optarg, 0, 1); break;
        case OPT_SEED:
            c.gen.seed = c.ab.seed = (unsigned long long)dsk_parse_int("--seed", optarg, 0, 1LL << 62);
            break;
        case OPT_ITEMS: c.items = optarg; break;
        case OPT_RESAMPLES: c.ab.resamples = (int)dsk_parse_int("--resamples", optarg, 100, 10000000); break;
        case OPT_CONF: c.ab.confidence = dsk_parse_double("--confidence", optarg, 0.5, 0.9999); break;
        case OPT_ALPHA: c.alpha = dsk_parse_double("--alpha", optarg, 1e-6, 0.5); break;
        case 'o': c.output = optarg; break;
        case OPT_METRIC:
            if (c.n_metrics == 16)
                dsk_usage_error("at most 16 --metric");
            c.metrics[c.n_metrics++] = optarg;
            break;
        case OPT_LABEL:
            if (c.n_labels == 64)
                dsk_usage_error("at most 64 --label");
            c.labels[c.n_labels++] = optarg;
            break;
        case OPT_TITLE: c.title = optarg; break;
        case OPT_LOGX: c.log_x = 1; break;
        case OPT_AB: c.ab_file = optarg; break;
        case OPT_JSON: c.json = 1; break;
        case OPT_LOG: c.log = optarg; break;
        case OPT_MLFLOW: c.mlflow = optarg; break;
        case OPT_EXPERIMENT: c.experiment = optarg; break;
        case OPT_RUN_NAME: c.run_name = optarg; break;
        case OPT_BACKEND: c.backend = optarg; break;
        case 'j': c.threads = (int)dsk_parse_int("--threads", optarg, 1, 4096); break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': dsk_print_version(); return 0;
        default: dsk_usage_bad_option(opt, argv, long_options);
        }
    }
    dsk_err uri_err = {0};
    if (c.mlflow && dsk_mlflow_check_uri(c.mlflow, &uri_err))   /* before the evaluation's minutes */
        dsk_usage_error("--mlflow: %s", uri_err.msg);
    int rest = argc - optind;
    char **args = argv + optind + 1;
    const char *cmd = rest > 0 ? argv[optind] : "";
    struct json_object *result = NULL;
    static const char *const cmd_names[] = {"ppl", "mc", "gen", "ab", "plot"};
    for (int k = 0; k < 5; k++)
        if (!strcmp(cmd, cmd_names[k]))
            check_scope(given, k == 4 && c.ab_file ? FOR_PLOT_AB : 1u << k,
                        k == 4 && c.ab_file ? "plot --ab" : cmd_names[k]);
    /* an output that is one of the inputs would be replaced before it is read whole */
    if ((!strcmp(cmd, "mc") || !strcmp(cmd, "gen")) && rest == 3 && c.items && dsk_same_file(c.items, args[1]))
        dsk_usage_error("--items %s is the task file: it would be replaced", c.items);
    for (int i = 0; !strcmp(cmd, "plot") && c.output && i < rest - 1; i++)
        if (dsk_same_file(c.output, args[i]))
            dsk_usage_error("-o %s is one of the logs plotted: it would be replaced", c.output);
    if (!strcmp(cmd, "plot") && c.output && c.ab_file && dsk_same_file(c.output, c.ab_file))
        dsk_usage_error("-o %s is the --ab file plotted: it would be replaced", c.output);
    if ((given[OPT_EXPERIMENT] || given[OPT_RUN_NAME]) && !c.mlflow)
        dsk_usage_error("%s names an MLflow run: it needs --mlflow", given[OPT_EXPERIMENT] ? "--experiment" : "--run-name");
    if (!strcmp(cmd, "ppl")) {
        if (rest != 2 || !c.data)
            dsk_usage_error("usage: dsk-eval ppl CKPT --data DIR");
        result = cmd_ppl(&c, args[0]);
    } else if (!strcmp(cmd, "mc")) {
        if (rest != 3)
            dsk_usage_error("usage: dsk-eval mc CKPT TASK.jsonl");
        result = cmd_mc(&c, args[0], args[1]);
    } else if (!strcmp(cmd, "gen")) {
        if (rest != 3)
            dsk_usage_error("usage: dsk-eval gen CKPT TASK.jsonl");
        result = cmd_gen(&c, args[0], args[1]);
    } else if (!strcmp(cmd, "ab")) {
        if (rest < 4)
            dsk_usage_error("usage: dsk-eval ab A B TASK...");
        result = cmd_ab(&c, args[0], args[1], args + 2, rest - 3);
    } else if (!strcmp(cmd, "plot")) {
        if (!c.output)
            dsk_usage_error("plot needs -o FILE.svg");
        if (c.ab_file ? rest != 1 : rest < 2)
            dsk_usage_error(c.ab_file ? "plot --ab takes no logs" : "usage: dsk-eval plot LOG.jsonl... -o FILE.svg");
        return cmd_plot(&c, args, rest - 1);
    } else {
        dsk_usage_error("expected a command: ppl, mc, gen, ab or plot");
    }
    if (c.json) {
        dsk_buf b = {0};
        dsk_json_append(result, &b);
        printf("%.*s\n", (int)b.len, b.data);
        dsk_buf_free(&b);
    }
    /* The log first: a result is kept even when the MLflow server is
     * down (69); a bad URI was refused before the evaluation. */
    if (c.log)
        append_log(c.log, result);
    if (c.mlflow)
        log_mlflow(&c, result);
    json_object_put(result);
    if (fflush(stdout) != 0)
        dsk_die(EX_IOERR, "stdout: write error");
    return 0;
}
