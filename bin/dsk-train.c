/* dsk-train: train a model on a dataset.  See dsk-train(1) and
 * dsk-checkpoint(5). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/outfile.h"
#include "dist/comm.h"
#include "dist/memory.h"
#include "model/config.h"
#include "ops/blas_kernels.h"
#include "ops/half.h"
#include "text/utf8.h"
#include "train/checkpoint.h"
#include "train/train_run.h"
#include "train/run_dir.h"

static const char usage[] =
    "Usage: dsk-train --data DIR --out CKPT_DIR (--steps N | --tokens N | --epochs X) [OPTION]...\n"
    "       dsk-train --resume --out CKPT_DIR [OPTION]...\n"
    "       dsk-train --stage continue|sft|dpo --init CKPT --data DIR --out CKPT_DIR [--steps N | ...] [OPTION]...\n"
    "       dsk-train --show-config PRESET|FILE [--set KEY=VALUE]...\n"
    "       dsk-train --memory-table PRESET|FILE [--batch N] [--seq-len N] [--set KEY=VALUE]...\n"
    "       mpirun -np RANKS dsk-train [--zero 0|1|2|3] ... (data parallel; see dsk-train(1))\n"
    "Train a decoder-only transformer on a dsk-pack dataset; write checkpoints to CKPT_DIR.\n"
    "\n"
    "Model:\n"
    "  -c, --config PRESET|FILE  nano, nano-moe, tiny (default), tiny-moe, 125m, 1.3b, 7b,\n"
    "                            or a config.json\n"
    "      --set KEY=VALUE       override one config key (d_model, n_layers, n_heads, n_kv_heads,\n"
    "                            d_ff, seq_len, pattern, window, alpha, tie, theta; MoE: experts,\n"
    "                            shared_experts, top_k, d_ff_expert, first_dense_layers, router,\n"
    "                            router_noise, capacity_factor, balance, aux_coef, bias_rate, ...)\n"
    "      --show-config X       print the config.json of a preset or file (with --set applied)\n"
    "Data and run length:\n"
    "  -d, --data DIR            the dataset (dsk-pack output)\n"
    "  -b, --batch N             rows per micro-batch over all ranks (default 8; a multiple of the ranks)\n"
    "      --seq-len N           positions per row (default: the dataset's)\n"
    "      --grad-accum N        micro-batches per optimizer step (default 1)\n"
    "      --steps N             optimizer steps to run (in all, counting resumed ones)\n"
    "      --tokens N            or: tokens to train on (K, M, G suffixes)\n"
    "      --epochs X            or: passes over the training rows (sft and dpo: 1 when no length)\n"
    "      --no-doc-mask         attend across document boundaries inside a row\n"
    "Optimizer (AdamW, cosine schedule with linear warmup):\n"
    "      --lr X                peak learning rate (default 3e-4; sft 1e-4, dpo 1e-5)\n"
    "      --min-lr X            floor of the cosine (default 3e-5; sft, dpo and an --lr below\n"
    "                            3e-5: a tenth of --lr)\n"
    "      --warmup N            warmup steps (default 5000; sft and dpo 20)\n"
    "      --weight-decay X      decoupled, matrices only (default 0.1)\n"
    "      --beta1 X, --beta2 X  moments (default 0.9, 0.95)\n"
    "      --clip X              global gradient-norm clip, 0 for none (default 1.0)\n"
    "      --max-bad-steps N     stop after N non-finite steps in a row (default 5)\n"
    "Stages and checkpoints:\n"
    "  -o, --out DIR             the checkpoint directory (step-N/ subdirectories, latest)\n"
    "      --stage STAGE         pretrain (default); continue (domain adaptation), sft (loss on\n"
    "                            assistant tokens) or dpo (preference pairs), each from --init with\n"
    "                            a fresh optimizer\n"
    "      --init CKPT           the checkpoint a continue, sft or dpo stage starts from\n"
    "      --ref CKPT            dpo: the frozen reference model (default: --init)\n"
    "      --beta X              dpo: the loss's beta (default 0.1)\n"
    "      --rpo-alpha X         dpo: add X times the chosen answers' NLL per token (RPO; default 0)\n"
    "      --resume              continue the run in --out exactly where it stopped\n"
    "      --save-every N        checkpoint every N steps (default 500; also at the end and on SIGINT/SIGTERM)\n"
    "      --keep N              step directories kept (default 3, 0 keeps all)\n"
    "Monitoring:\n"
    "      --eval-every N        validation loss and bits/byte every N steps (default 100)\n"
    "      --eval-batches N      validation batches per evaluation (default 8)\n"
    "      --log FILE            JSON Lines metrics (appended to on --resume)\n"
    "      --log-every N         steps per metrics line (default 10)\n"
    "      --sample-every N      print a sample every N steps\n"
    "      --sample-tokens N     tokens per sample (default 48)\n"
    "      --prompt TEXT         what samples start from (default: <|endoftext|>)\n"
    "      --temperature X, --top-k N, --top-p X   sampling (default 0.8, 40, 0.95)\n"
    "      --min-p X             sampling: tokens under X times the likeliest's probability are cut (default 0)\n"
    "      --peak-tflops X       the device's peak, for the MFU estimate in the log\n"
    "Precision and memory:\n"
    "      --dtype fp32|bf16|fp16  the matrix products' operands (default fp32); accumulation, weights\n"
    "                            and optimizer state stay fp32\n"
    "      --loss-scale X        multiply the loss gradient by X: fp16's first dynamic scale (default\n"
    "                            65536), or a static one for bf16 and fp32 (default 1)\n"
    "      --loss-scale-window N\n"
    "                            fp16: good steps in a row before the scale doubles (default 1000)\n"
    "      --recompute           keep each layer's input only, recompute the layer in the backward\n"
    "Machine:\n"
    "      --device NAME         cuda[:N] or cpu (default: cuda when a GPU is present, else cpu);\n"
    "                            --backend is the same\n"
    "  -j, --threads N           threads per rank (default: the cores, shared by the machine's ranks)\n"
    "      --seed N              initialisation and data order (default 1234)\n"
    "  -q, --quiet               no progress, no summary\n"
    "  -h, --help                show this help and exit\n"
    "  -V, --version             show the version and exit\n"
    "Data parallel (processes started by mpirun or srun):\n"
    "      --zero N              ZeRO stage: 0 replicate all, 1 shard the optimizer state, 2 and the\n"
    "                            gradients, 3 and the parameters (default 0)\n"
    "      --dist-timeout SECS   stop when a collective waits this long for the other ranks (default 600,\n"
    "                            0 never)\n"
    "      --memory-table X      print the memory per rank of preset or config X at 1-64 ranks, ZeRO 0-3\n"
    "                            (--batch: rows per rank, default 1; --seq-len: default the model's)\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 69 a rank stopped answering, 70 training\n"
    "diverged, 73 cannot create, 74 I/O error, 130/143/138 interrupted by SIGINT/SIGTERM/SIGUSR1 (a checkpoint\n"
    "was saved).\n";

enum { OPT_REF = 200, OPT_BETA, OPT_RPO_ALPHA, OPT_EPOCHS, OPT_SET = 256, OPT_SHOW, OPT_SEQ, OPT_ACCUM, OPT_STEPS, OPT_TOKENS, OPT_NO_DOC, OPT_LR, OPT_MIN_LR, OPT_WARMUP,
       OPT_WD, OPT_B1, OPT_B2, OPT_CLIP, OPT_BAD, OPT_STAGE, OPT_INIT, OPT_RESUME, OPT_SAVE, OPT_KEEP, OPT_EVAL,
       OPT_EVAL_B, OPT_LOG, OPT_LOG_EVERY, OPT_SAMPLE, OPT_SAMPLE_T, OPT_PROMPT, OPT_TEMP, OPT_TOPK, OPT_TOPP, OPT_MINP,
       OPT_PEAK, OPT_BACKEND, OPT_SEED, OPT_ZERO, OPT_DIST_TIMEOUT, OPT_MEMORY_TABLE, OPT_DTYPE, OPT_LOSS_SCALE,
       OPT_LOSS_SCALE_WINDOW, OPT_RECOMPUTE };

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},        {"set", required_argument, NULL, OPT_SET},
    {"show-config", required_argument, NULL, OPT_SHOW}, {"data", required_argument, NULL, 'd'},
    {"batch", required_argument, NULL, 'b'},         {"seq-len", required_argument, NULL, OPT_SEQ},
    {"grad-accum", required_argument, NULL, OPT_ACCUM}, {"steps", required_argument, NULL, OPT_STEPS},
    {"tokens", required_argument, NULL, OPT_TOKENS}, {"no-doc-mask", no_argument, NULL, OPT_NO_DOC},
    {"lr", required_argument, NULL, OPT_LR},         {"min-lr", required_argument, NULL, OPT_MIN_LR},
    {"warmup", required_argument, NULL, OPT_WARMUP}, {"weight-decay", required_argument, NULL, OPT_WD},
    {"beta1", required_argument, NULL, OPT_B1},      {"beta2", required_argument, NULL, OPT_B2},
    {"clip", required_argument, NULL, OPT_CLIP},     {"max-bad-steps", required_argument, NULL, OPT_BAD},
    {"out", required_argument, NULL, 'o'},           {"stage", required_argument, NULL, OPT_STAGE},
    {"init", required_argument, NULL, OPT_INIT},     {"resume", no_argument, NULL, OPT_RESUME},
    {"ref", required_argument, NULL, OPT_REF},       {"beta", required_argument, NULL, OPT_BETA},
    {"rpo-alpha", required_argument, NULL, OPT_RPO_ALPHA},
    {"epochs", required_argument, NULL, OPT_EPOCHS},
    {"save-every", required_argument, NULL, OPT_SAVE}, {"keep", required_argument, NULL, OPT_KEEP},
    {"eval-every", required_argument, NULL, OPT_EVAL}, {"eval-batches", required_argument, NULL, OPT_EVAL_B},
    {"log", required_argument, NULL, OPT_LOG},       {"log-every", required_argument, NULL, OPT_LOG_EVERY},
    {"sample-every", required_argument, NULL, OPT_SAMPLE}, {"sample-tokens", required_argument, NULL, OPT_SAMPLE_T},
    {"prompt", required_argument, NULL, OPT_PROMPT}, {"temperature", required_argument, NULL, OPT_TEMP},
    {"top-k", required_argument, NULL, OPT_TOPK},    {"top-p", required_argument, NULL, OPT_TOPP},
    {"min-p", required_argument, NULL, OPT_MINP},
    {"peak-tflops", required_argument, NULL, OPT_PEAK}, {"backend", required_argument, NULL, OPT_BACKEND},
    {"device", required_argument, NULL, OPT_BACKEND},
    {"threads", required_argument, NULL, 'j'},       {"seed", required_argument, NULL, OPT_SEED},
    {"zero", required_argument, NULL, OPT_ZERO},     {"dist-timeout", required_argument, NULL, OPT_DIST_TIMEOUT},
    {"memory-table", required_argument, NULL, OPT_MEMORY_TABLE},
    {"dtype", required_argument, NULL, OPT_DTYPE},   {"loss-scale", required_argument, NULL, OPT_LOSS_SCALE},
    {"loss-scale-window", required_argument, NULL, OPT_LOSS_SCALE_WINDOW},
    {"recompute", no_argument, NULL, OPT_RECOMPUTE},
    {"quiet", no_argument, NULL, 'q'},               {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},             {NULL, 0, NULL, 0},
};

static const char *show_config, *memory_table;
static int lr_given, warmup_given, min_lr_given, batch_given, length_given, stage_given, init_given, ref_given,
    rpo_given;
/* The first option given that --show-config and --memory-table do not
 * take (they print and exit: a training option beside one did nothing). */
static int not_for_printing, table_only;   /* table_only: --batch or --seq-len, which the table takes */
static double dist_timeout = 600;

/* Applies the command line to o (over the defaults, or over what a
 * checkpoint remembered when resuming). */
static void parse(int argc, char **argv, dsk_train_opts *o)
{
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":c:d:b:o:j:qhV", long_options, NULL)) != -1) {
        if (opt != OPT_SET && opt != 'b' && opt != OPT_SEQ && opt != OPT_SHOW && opt != OPT_MEMORY_TABLE && opt != 'q' &&
            opt != 'h' && opt != 'V' && opt != '?' && opt != ':' && !not_for_printing)
            not_for_printing = opt;
        if ((opt == 'b' || opt == OPT_SEQ) && !table_only)
            table_only = opt;
        switch (opt) {
        case 'c': o->config = optarg; break;
        case OPT_SET:
            o->sets = realloc(o->sets, (size_t)(o->n_sets + 1) * sizeof *o->sets);
            o->sets[o->n_sets++] = optarg;
            break;
        case OPT_SHOW: show_config = optarg; break;
        case 'd': o->data = optarg; break;
        case 'b': o->batch = (int)dsk_parse_int("--batch", optarg, 1, 1 << 20), batch_given = 1; break;
        case OPT_SEQ: o->seq_len = (int)dsk_parse_int("--seq-len", optarg, 1, 1 << 20); break;
        case OPT_ACCUM: o->grad_accum = (int)dsk_parse_int("--grad-accum", optarg, 1, 1 << 20); break;
        case OPT_STEPS: o->steps = (long)dsk_parse_int("--steps", optarg, 1, 1LL << 40), length_given = 1; break;
        case OPT_TOKENS: o->tokens = dsk_parse_size("--tokens", optarg), length_given = 1; break;
        case OPT_NO_DOC: o->doc_mask = 0; break;
        case OPT_LR: o->adamw.lr = dsk_parse_double("--lr", optarg, 0, 10), lr_given = 1; break;
        case OPT_MIN_LR: o->adamw.min_lr = dsk_parse_double("--min-lr", optarg, 0, 10), min_lr_given = 1; break;
        case OPT_WARMUP:
            o->adamw.warmup = (long)dsk_parse_int("--warmup", optarg, 0, 1LL << 40);
            warmup_given = 1;
            break;
        case OPT_WD: o->adamw.weight_decay = dsk_parse_double("--weight-decay", optarg, 0, 10); break;
        case OPT_B1: o->adamw.beta1 = dsk_parse_double("--beta1", optarg, 0, 0.999999); break;
        case OPT_B2: o->adamw.beta2 = dsk_parse_double("--beta2", optarg, 0, 0.999999); break;
        case OPT_CLIP: o->adamw.clip = dsk_parse_double("--clip", optarg, 0, 1e9); break;
        case OPT_BAD: o->max_bad_steps = (int)dsk_parse_int("--max-bad-steps", optarg, 1, 1000000); break;
        case 'o': o->out = optarg; break;
        case OPT_STAGE:
            stage_given = 1;
            if (!strcmp(optarg, "pretrain"))
                o->stage = DSK_STAGE_PRETRAIN;
            else if (!strcmp(optarg, "continue"))
                o->stage = DSK_STAGE_CONTINUE;
            else if (!strcmp(optarg, "sft"))
                o->stage = DSK_STAGE_SFT;
            else if (!strcmp(optarg, "dpo"))
                o->stage = DSK_STAGE_DPO;
            else
                dsk_usage_error("--stage '%s': expected pretrain, continue, sft or dpo", optarg);
            break;
        case OPT_REF: o->ref = optarg, ref_given = 1; break;
        case OPT_BETA: o->beta = dsk_parse_double("--beta", optarg, 1e-6, 1e6); break;
        case OPT_RPO_ALPHA: o->rpo_alpha = dsk_parse_double("--rpo-alpha", optarg, 0, 1e6), rpo_given = 1; break;
        case OPT_EPOCHS: o->epochs = dsk_parse_double("--epochs", optarg, 1e-6, 1e9), length_given = 1; break;
        case OPT_INIT: o->init = optarg, init_given = 1; break;
        case OPT_RESUME: o->resume = 1; break;
        case OPT_SAVE: o->save_every = (long)dsk_parse_int("--save-every", optarg, 0, 1LL << 40); break;
        case OPT_KEEP: o->keep = (int)dsk_parse_int("--keep", optarg, 0, 1000000); break;
        case OPT_EVAL: o->eval_every = (long)dsk_parse_int("--eval-every", optarg, 0, 1LL << 40); break;
        case OPT_EVAL_B: o->eval_batches = (int)dsk_parse_int("--eval-batches", optarg, 0, 1000000); break;
        case OPT_LOG: o->log_path = optarg; break;
        case OPT_LOG_EVERY: o->log_every = (long)dsk_parse_int("--log-every", optarg, 1, 1LL << 40); break;
        case OPT_SAMPLE: o->sample_every = (long)dsk_parse_int("--sample-every", optarg, 0, 1LL << 40); break;
        case OPT_SAMPLE_T: o->sample_tokens = (int)dsk_parse_int("--sample-tokens", optarg, 1, 1 << 20); break;
        case OPT_PROMPT:
            if (dsk_utf8_find_invalid(optarg, strlen(optarg)) < strlen(optarg))
                dsk_usage_error("--prompt: invalid UTF-8 at byte %zu", dsk_utf8_find_invalid(optarg, strlen(optarg)));
            o->prompt = optarg;
            break;
        case OPT_TEMP: o->sampler.temperature = dsk_parse_double("--temperature", optarg, 0, 100); break;
        case OPT_TOPK: o->sampler.top_k = (int)dsk_parse_int("--top-k", optarg, 0, 1 << 24); break;
        case OPT_MINP: o->sampler.min_p = dsk_parse_double("--min-p", optarg, 0, 1); break;
        case OPT_TOPP:   /* 0 would keep nothing: refused, as Hugging Face's generate does */
            o->sampler.top_p = dsk_parse_double("--top-p", optarg, 0, 1);
            if (o->sampler.top_p <= 0)
                dsk_usage_error("--top-p: 0 keeps no token; give a share above 0, up to 1");
            break;
        case OPT_PEAK: o->peak_tflops = dsk_parse_double("--peak-tflops", optarg, 0, 1e6); break;
        case OPT_BACKEND: o->backend = optarg; break;
        case 'j': o->threads = (int)dsk_parse_int("--threads", optarg, 1, 4096); break;
        case OPT_SEED: o->seed = (uint64_t)dsk_parse_int("--seed", optarg, 0, 1LL << 62); break;
        case OPT_ZERO: o->zero = (int)dsk_parse_int("--zero", optarg, 0, 3); break;
        case OPT_DIST_TIMEOUT: dist_timeout = dsk_parse_double("--dist-timeout", optarg, 0, 1e7); break;
        case OPT_MEMORY_TABLE: memory_table = optarg; break;
        case OPT_DTYPE:
            if ((o->dtype = dsk_dtype_parse(optarg)) < 0)
                dsk_usage_error("--dtype '%s': expected fp32, bf16 or fp16", optarg);
            break;
        case OPT_LOSS_SCALE: o->loss_scale = dsk_parse_double("--loss-scale", optarg, 0x1p-24, 1e38); break;
        case OPT_LOSS_SCALE_WINDOW:
            o->loss_scale_window = (long)dsk_parse_int("--loss-scale-window", optarg, 1, 1LL << 40);
            break;
        case OPT_RECOMPUTE: o->recompute = 1; break;
        case 'q': o->quiet = 1; break;
        case 'h': fputs(usage, stdout); exit(0);
        case 'V': dsk_print_version(); exit(0);
        default: dsk_usage_bad_option(opt, argv, long_options);
        }
    }
    if (optind < argc)
        dsk_usage_error("unexpected argument '%s'", argv[optind]);
}

static int print_config(const dsk_train_opts *o)
{
    dsk_model_config c;
    dsk_err err = {0};
    if (dsk_config_resolve(&c, show_config, &err))
        dsk_die_err(&err);
    for (int i = 0; i < o->n_sets; i++)
        if (dsk_config_set(&c, o->sets[i], &err))
            dsk_die_err(&err);
    dsk_buf b = {0};
    dsk_config_write(&c, &b);
    fwrite(b.data, 1, b.len, stdout);
    dsk_buf_free(&b);
    return 0;
}

/* --memory-table: the config as --show-config resolves it, per rank. */
static int print_memory_table(const dsk_train_opts *o)
{
    dsk_model_config c;
    dsk_err err = {0};
    if (dsk_config_resolve(&c, memory_table, &err))
        dsk_die_err(&err);
    for (int i = 0; i < o->n_sets; i++)
        if (dsk_config_set(&c, o->sets[i], &err))
            dsk_die_err(&err);
    if (c.vocab_size == 0) {
        /* Presets take theirs from the dataset. */
        c.vocab_size = 32000;
        printf("(%s takes vocab_size from the dataset: 32000 assumed, as Llama's; --set vocab=N)\n",
               memory_table);
    }
    if (dsk_config_validate(&c, &err))
        dsk_die_err(&err);
    int T = o->seq_len > 0 ? o->seq_len : c.max_seq_len;
    if (T > c.max_seq_len)
        dsk_usage_error("--seq-len %d is longer than the model's max_position_embeddings %d", T, c.max_seq_len);
    dsk_mem_table(stdout, &c, memory_table, batch_given ? o->batch : 1, T);
    return 0;
}

/* Messages of rank r > 0 say which rank speaks: "dsk-train[rank r]". */
static void name_rank(int rank)
{
    static char name[48];
    snprintf(name, sizeof name, "dsk-train[rank %d]", rank);
    dsk_set_progname(name);
}

int main(int argc, char **argv)
{
    dsk_blas_choose_kernels(argv);   /* may start this program again, before anything else */
    dsk_set_progname(argv[0]);
    dsk_signals_init();
    /* Launched ranks say which they are from the start; a usage error,
     * the same on every rank of one program, is rank 0's to print (with
     * several programs, mpirun A : B, each says its own). */
    int launched_rank = dsk_comm_launcher_rank();
    if (launched_rank > 0) {
        name_rank(launched_rank);
        dsk_usage_quiet(dsk_comm_launcher_apps() == 1);
    }
    dsk_train_opts o;
    dsk_train_defaults(&o);
    parse(argc, argv, &o);
    if (show_config && memory_table)
        dsk_usage_error("--show-config and --memory-table: one at a time");
    if ((show_config || memory_table) && (not_for_printing || (show_config && table_only)))
        dsk_usage_error("%s does nothing with %s, which prints and exits",
                        dsk_option_name(not_for_printing ? not_for_printing : table_only, long_options),
                        show_config ? "--show-config" : "--memory-table");
    if (show_config) {
        print_config(&o);
        free(o.sets);
        return 0;
    }
    if (memory_table) {
        print_memory_table(&o);
        free(o.sets);
        return 0;
    }
    if (!o.out)
        dsk_usage_error("--out DIR is required");
    dsk_err err = {0};
    if (o.resume) {
        /* What the run was started with, then this command line over it. */
        char *dir = dsk_run_dir_resume_from(o.out, 1, &err);   /* (the run says which, later) */
        dsk_train_state st;
        if (!dir || dsk_checkpoint_load_state(dir, &st, &err))
            dsk_die_err(&err);
        if (st.options && dsk_train_opts_from_json(&o, st.options, &err))
            dsk_die_err(&err);
        int stage = -1;
        for (int i = 0; i < 4; i++)
            if (!strcmp(st.stage, dsk_stage_names[i]))
                stage = i;
        if (stage < 0)
            dsk_die(EX_DATAERR, "%s: a damaged state.json: stage '%s' (expected pretrain, continue, sft or dpo)", dir,
                    st.stage);
        o.stage = stage;
        /* A resumed run is the run it was: a new stage or model is a new
         * run.  A dpo run may be given its reference again (moved, or
         * rotated away by --keep): a copy, checked by its weights. */
        if (init_given || (ref_given && stage != DSK_STAGE_DPO))
            dsk_usage_error("--resume carries on the run in %s as it was started: its %s is in the checkpoint "
                            "(a new stage is a new run: --stage S --init %s --out NEW)", o.out,
                            init_given ? "--init" : "--ref", o.out);
        /* A length given now, in whichever unit, replaces the saved one
         * (saved steps would otherwise win over new tokens or epochs). */
        if (length_given)
            o.steps = 0, o.tokens = 0, o.epochs = 0;
        dsk_train_state_free(&st);
        free(dir);
        free(o.sets);
        o.sets = NULL;
        o.n_sets = 0;
        parse(argc, argv, &o);
        if (stage_given && o.stage != stage)
            dsk_usage_error("--resume carries on the run in %s as it was started, a %s stage: a new stage is a new "
                            "run (--stage %s --init %s --out NEW)", o.out, dsk_stage_names[stage],
                            dsk_stage_names[o.stage], o.out);
    }
    if (!o.data)
        dsk_usage_error("--data DIR is required");
    if (o.stage != DSK_STAGE_PRETRAIN && !o.init && !o.resume)
        dsk_usage_error("--stage %s needs --init CKPT", dsk_stage_names[o.stage]);
    if (o.init && o.stage == DSK_STAGE_PRETRAIN && !o.resume)
        dsk_usage_error("--init is for --stage continue, sft or dpo (use --resume to carry on a run)");
    if (o.ref && o.stage != DSK_STAGE_DPO)
        dsk_usage_error("--ref is for --stage dpo");
    if (rpo_given && o.stage != DSK_STAGE_DPO)
        dsk_usage_error("--rpo-alpha is for --stage dpo");
    /* Post-training starts from a trained model: smaller steps, short warmup. */
    if (!o.resume && (o.stage == DSK_STAGE_SFT || o.stage == DSK_STAGE_DPO)) {
        if (!lr_given)
            o.adamw.lr = o.stage == DSK_STAGE_SFT ? 1e-4 : 1e-5;
        if (!min_lr_given)
            o.adamw.min_lr = o.adamw.lr / 10;
        if (!warmup_given)
            o.adamw.warmup = 20;
        if (o.steps == 0 && o.tokens == 0 && o.epochs == 0)
            o.epochs = 1;   /* one pass over the conversations or pairs */
    }
    /* The cosine's floor is at most its peak: a default floor over a low
     * --lr is a tenth of it, as in post-training; a given one is refused. */
    if (o.adamw.min_lr > o.adamw.lr) {
        if (min_lr_given)
            dsk_usage_error("--min-lr %g is above --lr %g: the learning rate would rise after the warmup",
                            o.adamw.min_lr, o.adamw.lr);
        o.adamw.min_lr = o.adamw.lr / 10;
    }
    /* The ranks, when a launcher started several: all get here alike. */
    dsk_comm *comm = dsk_comm_open(dist_timeout, &err);
    if (!comm)
        dsk_die_err(&err);
    if (comm->rank > 0)
        name_rank(comm->rank);
    o.comm = comm;
    int rc = dsk_train_run(&o, &err);
    /* Every rank has the same status; one holds the message.  It is out
     * before any rank exits (a launcher ends the job at the first
     * non-zero exit). */
    if (rc && rc < 128 && err.msg[0])
        dsk_warn("%s", err.msg);
    comm->barrier(comm);
    comm->close(comm);
    free(o.sets);
    free(o.owned);
    free(o.owned_ref);
    free(o.owned_init);
    if (rc && rc < 128)
        dsk_outfile_remove_all_temps();
    if (rc)
        dsk_failing();   /* reported: the status stands */
    return rc;
}
