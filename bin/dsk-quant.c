/* dsk-quant: 4-bit weight quantization of a checkpoint.  See dsk-quant(1). */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/outfile.h"
#include "core/tempdir.h"
#include "core/split.h"
#include "eval/eval.h"
#include "ops/blas_kernels.h"
#include "quant/ggml_quant.h"
#include "quant/gguf.h"
#include "quant/quant.h"
#include "quant/quant_io.h"
#include "train/checkpoint.h"

static const char usage[] =
    "Usage: dsk-quant --method rtn|gptq|awq CKPT -o OUT [OPTIONS]\n"
    "       dsk-quant --gguf FILE [--gguf-type f32|f16|q8_0|q4_0|q4_k] CKPT\n"
    "Quantize a checkpoint's linear layers to 4 bits (the GPTQ checkpoint layout), or export it as GGUF.\n"
    "\n"
    "  -m, --method NAME     rtn (round to nearest), gptq or awq (both need --calib)\n"
    "  -o, --output DIR      the quantized checkpoint directory\n"
    "      --force           replace OUT if it is an earlier dsk-quant output (--gguf: replace FILE)\n"
    "      --bits N          4 (the only width supported)\n"
    "  -g, --group-size N    input columns per scale and zero point (default 128; must divide each layer's)\n"
    "      --sym             symmetric (zero point 8) instead of asymmetric\n"
    "      --calib DIR       a dataset (dsk-pack) made with the checkpoint's tokenizer\n"
    "      --calib-split S   train (default), val or test\n"
    "      --calib-rows N    calibration rows (default 128)\n"
    "      --calib-batch N   rows per forward pass (default 8)\n"
    "      --damp X          GPTQ: dampening, a fraction of the mean Hessian diagonal (default 0.01)\n"
    "      --act-order       GPTQ: quantize columns in order of decreasing activation energy\n"
    "      --block N         GPTQ: lazy-update block width (default 128)\n"
    "      --grid N          AWQ: scale exponents searched (default 20)\n"
    "      --no-clip         skip the clipping search (rtn, gptq: each group's range for its squared\n"
    "                        error; awq: the output error's): groups' ranges from their min and max\n"
    "      --eval DIR        perplexity on DIR's --eval-split before and after\n"
    "      --eval-split S    val (default), train or test\n"
    "      --eval-rows N     the first N rows only\n"
    "      --gguf FILE       write a GGUF v3 file for llama.cpp (all-global attention; MoE as deepseek)\n"
    "      --gguf-type T     f32, f16, q8_0, q4_0 or q4_k (default f16)\n"
    "  -q, --quiet           no per-layer report on stderr\n"
    "      --json            the summary as one JSON object on stdout\n"
    "  -j, --threads N       threads (default: all cores)\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 70 GPTQ's Hessian, 73 cannot create, 74 I/O\n"
    "error.\n";

enum {
    OPT_FORCE = 256, OPT_BITS, OPT_SYM, OPT_CALIB, OPT_CALIB_SPLIT, OPT_CALIB_ROWS, OPT_CALIB_BATCH, OPT_DAMP,
    OPT_ACT_ORDER, OPT_BLOCK, OPT_GRID, OPT_NO_CLIP, OPT_EVAL, OPT_EVAL_SPLIT, OPT_EVAL_ROWS, OPT_GGUF,
    OPT_GGUF_TYPE, OPT_JSON
};

static const struct option long_options[] = {
    {"method", required_argument, NULL, 'm'},          {"output", required_argument, NULL, 'o'},
    {"force", no_argument, NULL, OPT_FORCE},           {"bits", required_argument, NULL, OPT_BITS},
    {"group-size", required_argument, NULL, 'g'},      {"sym", no_argument, NULL, OPT_SYM},
    {"calib", required_argument, NULL, OPT_CALIB},     {"calib-split", required_argument, NULL, OPT_CALIB_SPLIT},
    {"calib-rows", required_argument, NULL, OPT_CALIB_ROWS}, {"calib-batch", required_argument, NULL, OPT_CALIB_BATCH},
    {"damp", required_argument, NULL, OPT_DAMP},       {"act-order", no_argument, NULL, OPT_ACT_ORDER},
    {"block", required_argument, NULL, OPT_BLOCK},     {"grid", required_argument, NULL, OPT_GRID},
    {"no-clip", no_argument, NULL, OPT_NO_CLIP},       {"eval", required_argument, NULL, OPT_EVAL},
    {"eval-split", required_argument, NULL, OPT_EVAL_SPLIT}, {"eval-rows", required_argument, NULL, OPT_EVAL_ROWS},
    {"gguf", required_argument, NULL, OPT_GGUF},       {"gguf-type", required_argument, NULL, OPT_GGUF_TYPE},
    {"quiet", no_argument, NULL, 'q'},                 {"json", no_argument, NULL, OPT_JSON},
    {"threads", required_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},               {NULL, 0, NULL, 0},
};

/* Where each option applies: a given option that the mode or method does
 * not use is a usage error, not silently ignored.  (RTN reads --calib
 * only to report its error in the measure GPTQ and AWQ use.) */
enum { FOR_RTN = 1, FOR_GPTQ = 2, FOR_AWQ = 4, FOR_GGUF = 8, FOR_QUANT = FOR_RTN | FOR_GPTQ | FOR_AWQ };

static const dsk_option_scope option_scope[] = {
    {'o', "-o", FOR_QUANT},
    {OPT_BITS, "--bits", FOR_QUANT},
    {OPT_FORCE, "--force", FOR_QUANT | FOR_GGUF},
    {'g', "--group-size", FOR_QUANT},
    {OPT_SYM, "--sym", FOR_QUANT},
    {OPT_CALIB, "--calib", FOR_QUANT},
    {OPT_CALIB_SPLIT, "--calib-split", FOR_QUANT},
    {OPT_CALIB_ROWS, "--calib-rows", FOR_QUANT},
    {OPT_CALIB_BATCH, "--calib-batch", FOR_QUANT},
    {OPT_DAMP, "--damp", FOR_GPTQ},
    {OPT_ACT_ORDER, "--act-order", FOR_GPTQ},
    {OPT_BLOCK, "--block", FOR_GPTQ},
    {OPT_GRID, "--grid", FOR_AWQ},
    {OPT_NO_CLIP, "--no-clip", FOR_QUANT},
    {OPT_EVAL, "--eval", FOR_QUANT},
    {OPT_EVAL_SPLIT, "--eval-split", FOR_QUANT},
    {OPT_EVAL_ROWS, "--eval-rows", FOR_QUANT},
    {OPT_JSON, "--json", FOR_QUANT},
    {OPT_GGUF_TYPE, "--gguf-type", FOR_GGUF},
};

static void check_scope(const unsigned char *given, unsigned mode, const char *mode_name)
{
    dsk_check_option_scope(option_scope, sizeof option_scope / sizeof *option_scope, given, mode, mode_name);
}

static int parse_split(const char *opt, const char *v)
{
    int s = dsk_split_parse(v);
    if (s < 0)
        dsk_usage_error("%s '%s': expected train, val or test", opt, v);
    return s;
}

/* --gguf FILE: a FILE that exists is replaced only with --force, and
 * never when it is one of the exported checkpoint's own files (a typo
 * away: cp ckpt/latest/model.safetensors). */
static void check_gguf_target(const char *path, const char *ckpt_dir, int force)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT)
            dsk_die(EX_CANTCREAT, "%s: %s", path, strerror(errno));
        return;
    }
    if (S_ISDIR(st.st_mode))
        dsk_die(EX_CANTCREAT, "%s is a directory", path);
    /* The file the export would replace: a link's target, followed as
     * the output follows it (a link there is kept, the file replaced). */
    char *target = realpath(path, NULL);
    char *copy = target ? target : dsk_xstrdup(path);
    char *parent = realpath(dirname(copy), NULL), *own = realpath(ckpt_dir, NULL);
    int inside = parent && own && strcmp(parent, own) == 0;
    free(parent), free(own), free(copy);
    if (inside)
        dsk_die(EX_CANTCREAT, "%s is a file of the checkpoint being exported", path);
    if (!force)
        dsk_die(EX_CANTCREAT, "%s already exists (--force replaces it)", path);
}

/* An earlier output of dsk-quant: a directory with its quant.json. */
static void ppl(dsk_loaded *l, const char *data, int split, long rows, dsk_ppl_result *r)
{
    dsk_err err = {0};
    if (dsk_eval_ppl(l, data, split, 8, rows, r, &err))
        dsk_die_err(&err);
}

int main(int argc, char **argv)
{
    dsk_blas_choose_kernels(argv);   /* may start this program again, before anything else */
    dsk_set_progname(argv[0]);
    dsk_signals_init();
    dsk_quant_opts o = {0};
    o.method = -1;
    o.group_size = 128;
    o.damp = 0.01;
    o.block = 128;
    o.grid = 20;
    o.clip = 1;
    o.calib_rows = 128;
    o.calib_batch = 8;
    const char *out = NULL, *eval = NULL, *gguf = NULL, *gguf_type = "f16";
    int force = 0, quiet = 0, json = 0, threads = 0, eval_split = 1;
    long eval_rows = 0;
    int opt;
    unsigned char given[OPT_JSON + 1] = {0};
    while ((opt = getopt_long(argc, argv, ":m:o:g:qj:hV", long_options, NULL)) != -1) {
        if (opt > 0 && opt <= OPT_JSON)
            given[opt] = 1;
        switch (opt) {
        case 'm':
            o.method = !strcmp(optarg, "rtn") ? DSK_QUANT_RTN : !strcmp(optarg, "gptq") ? DSK_QUANT_GPTQ
                       : !strcmp(optarg, "awq") ? DSK_QUANT_AWQ : -2;
            if (o.method == -2)
                dsk_usage_error("--method '%s': expected rtn, gptq or awq", optarg);
            break;
        case 'o': out = optarg; break;
        case OPT_FORCE: force = 1; break;
        case OPT_BITS:
            if (dsk_parse_int("--bits", optarg, 1, 64) != 4)
                dsk_usage_error("--bits %s: only 4-bit quantization is supported", optarg);
            break;
        case 'g': o.group_size = (int)dsk_parse_int("--group-size", optarg, 8, 1 << 20); break;
        case OPT_SYM: o.sym = 1; break;
        case OPT_CALIB: o.calib = optarg; break;
        case OPT_CALIB_SPLIT: o.calib_split = parse_split("--calib-split", optarg); break;
        case OPT_CALIB_ROWS: o.calib_rows = (long)dsk_parse_int("--calib-rows", optarg, 1, 1 << 24); break;
        case OPT_CALIB_BATCH: o.calib_batch = (int)dsk_parse_int("--calib-batch", optarg, 1, 4096); break;
        case OPT_DAMP: o.damp = dsk_parse_double("--damp", optarg, 1e-6, 10); break;
        case OPT_ACT_ORDER: o.act_order = 1; break;
        case OPT_BLOCK: o.block = (int)dsk_parse_int("--block", optarg, 8, 1 << 16); break;
        case OPT_GRID: o.grid = (int)dsk_parse_int("--grid", optarg, 1, 1000); break;
        case OPT_NO_CLIP: o.clip = 0; break;
        case OPT_EVAL: eval = optarg; break;
        case OPT_EVAL_SPLIT: eval_split = parse_split("--eval-split", optarg); break;
        case OPT_EVAL_ROWS: eval_rows = (long)dsk_parse_int("--eval-rows", optarg, 1, 1LL << 40); break;
        case OPT_GGUF: gguf = optarg; break;
        case OPT_GGUF_TYPE: gguf_type = optarg; break;
        case 'q': quiet = 1; break;
        case OPT_JSON: json = 1; break;
        case 'j': threads = (int)dsk_parse_int("--threads", optarg, 1, 4096); break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': dsk_print_version(); return 0;
        default: dsk_usage_bad_option(opt, argv, long_options);
        }
    }
    if (argc - optind != 1)
        dsk_usage_error("expected one checkpoint");
    const char *ckpt = argv[optind];
    dsk_err err = {0};
    if (gguf) {
        if (o.method >= 0)
            dsk_usage_error("--gguf exports the checkpoint as it is; it takes no --method");
        check_scope(given, FOR_GGUF, "--gguf (it exports the checkpoint as it is)");
        if (!*gguf)
            dsk_usage_error("--gguf: an empty file name");
        int type = dsk_ggml_type_from_name(gguf_type);
        if (type < 0)
            dsk_usage_error("--gguf-type '%s': expected f32, f16, q8_0, q4_0 or q4_k", gguf_type);
        char *dir = dsk_checkpoint_resolve(ckpt, &err);
        if (!dir)
            dsk_die_err(&err);
        check_gguf_target(gguf, dir, force);
        if (dsk_gguf_export(dir, gguf, type, &err))
            dsk_die_err(&err);
        if (!quiet)
            fprintf(stderr, "dsk-quant: wrote %s (%s)\n", gguf, gguf_type);
        free(dir);
        return 0;
    }
    if (o.method < 0)
        dsk_usage_error("--method rtn|gptq|awq is required");
    static const char *const method_names[] = {"--method rtn", "--method gptq", "--method awq"};
    check_scope(given, 1u << o.method, method_names[o.method]);
    if (!out)
        dsk_usage_error("-o OUT is required");
    if (o.method != DSK_QUANT_RTN && !o.calib)
        dsk_usage_error("--method %s needs --calib DIR", o.method == DSK_QUANT_GPTQ ? "gptq" : "awq");
    /* the options of a dataset that is not given would do nothing */
    static const int calib_opts[] = {OPT_CALIB_SPLIT, OPT_CALIB_ROWS, OPT_CALIB_BATCH};
    for (size_t i = 0; i < sizeof calib_opts / sizeof *calib_opts; i++)
        if (given[calib_opts[i]] && !o.calib)
            dsk_usage_error("%s without --calib DIR", dsk_option_name(calib_opts[i], long_options));
    if ((given[OPT_EVAL_SPLIT] || given[OPT_EVAL_ROWS]) && !eval)
        dsk_usage_error("%s without --eval DIR",
                        dsk_option_name(given[OPT_EVAL_SPLIT] ? OPT_EVAL_SPLIT : OPT_EVAL_ROWS, long_options));
    o.progress = quiet ? NULL : stderr;

    dsk_loaded l;
    if (dsk_load_checkpoint(&l, ckpt, "cpu", threads, &err))
        dsk_die_err(&err);
    if (l.quantized)
        dsk_die(EX_DATAERR, "%s is already quantized", l.dir);
    o.calib_tokenizer = l.fingerprint;
    /* --force replaces an earlier output of dsk-quant only (its quant.json,
     * files and no directory); anything else is refused now, not after
     * the quantization's minutes. */
    if (dsk_tempdir_check(out, force ? "quant.json" : NULL, DSK_QUANT_EXISTS_HINT, &err))
        dsk_die_err(&err);
    dsk_ppl_result before = {0}, after = {0};
    if (eval)
        ppl(&l, eval, eval_split, eval_rows, &before);
    dsk_quantized q;
    if (dsk_quantize_model(l.model, &o, &q, &err))
        dsk_die_err(&err);
    if (dsk_quant_save(l.dir, out, force, l.model, &q, &o, &err))
        dsk_die_err(&err);
    /* The model now holds the dequantized weights: what OUT computes. */
    if (eval)
        ppl(&l, eval, eval_split, eval_rows, &after);
    double err_sum = 0, rtn_sum = 0;
    for (int i = 0; i < q.n; i++)
        err_sum += q.layer[i].err, rtn_sum += q.layer[i].rtn_err;
    static const char *const names[] = {"rtn", "gptq", "awq"};
    if (json) {
        /* Through json-c: paths may hold quotes and control characters. */
        struct json_object *j = json_object_new_object();
        json_object_object_add(j, "checkpoint", json_object_new_string(l.dir));
        json_object_object_add(j, "output", json_object_new_string(out));
        json_object_object_add(j, "method", json_object_new_string(names[o.method]));
        json_object_object_add(j, "group_size", json_object_new_int(o.group_size));
        json_object_object_add(j, "layers", json_object_new_int(q.n));
        json_object_object_add(j, "mean_error", dsk_json_new_double(err_sum / q.n));
        json_object_object_add(j, "mean_rtn_error", dsk_json_new_double(rtn_sum / q.n));
        if (eval) {
            json_object_object_add(j, "ppl_before", dsk_json_new_double(before.ppl));
            json_object_object_add(j, "ppl_after", dsk_json_new_double(after.ppl));
            json_object_object_add(j, "loss_before", dsk_json_new_double(before.loss));
            json_object_object_add(j, "loss_after", dsk_json_new_double(after.loss));
        }
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
    } else {
        printf("%s: %d layers quantized by %s (4 bits, group %d): mean error %.3e (rtn %.3e)\n", out, q.n,
               names[o.method], o.group_size, err_sum / q.n, rtn_sum / q.n);
        if (eval)
            printf("perplexity on %s (%s): %.4f -> %.4f (%+.2f%%)\n", eval, dsk_split_names[eval_split], before.ppl,
                   after.ppl, 100 * (after.ppl / before.ppl - 1));
    }
    dsk_ppl_result_free(&before);
    dsk_ppl_result_free(&after);
    dsk_quantized_free(&q);
    dsk_loaded_free(&l);
    return 0;
}
