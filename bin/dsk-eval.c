/* dsk-eval: measure a checkpoint.  See dsk-eval(1). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/json.h"
#include "core/outfile.h"
#include "core/split.h"
#include "eval/eval.h"

static const char usage[] =
    "Usage: dsk-eval ppl CKPT --data DIR [--split val|train|test] [--batch N] [--rows N] [--json]\n"
    "       dsk-eval gen CKPT TASK.jsonl [--max-tokens N] [--items FILE] [--json]\n"
    "Measure a checkpoint (a step directory, or a run directory's latest).\n"
    "\n"
    "  ppl   loss, perplexity and bits per byte over a dataset split\n"
    "  gen   answer each item of TASK.jsonl ({\"prompt\" or \"messages\", \"answer\" or \"regex\"}) through\n"
    "        the chat template and score exact matches\n"
    "\n"
    "  -d, --data DIR        ppl: the dataset (made with the checkpoint's tokenizer)\n"
    "      --split NAME      ppl: val (default), train or test\n"
    "  -b, --batch N         ppl: rows per forward pass (default 8)\n"
    "      --rows N          ppl: the first N rows only\n"
    "      --max-tokens N    gen: the longest answer (default 32)\n"
    "      --temperature X   gen: 0 (default) is greedy; else sampled, with --top-k, --top-p, --seed\n"
    "      --top-k N, --top-p X, --seed N\n"
    "      --items FILE      gen: each item's output and score as JSON Lines\n"
    "      --json            one JSON object on stdout instead of the table\n"
    "      --backend NAME    cpu (default)\n"
    "  -j, --threads N       threads (default: all cores)\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 74 I/O error.\n";

enum { OPT_SPLIT = 256, OPT_ROWS, OPT_MAXTOK, OPT_TEMP, OPT_TOPK, OPT_TOPP, OPT_SEED, OPT_ITEMS, OPT_JSON, OPT_BACKEND };

static const struct option long_options[] = {
    {"data", required_argument, NULL, 'd'},          {"split", required_argument, NULL, OPT_SPLIT},
    {"batch", required_argument, NULL, 'b'},         {"rows", required_argument, NULL, OPT_ROWS},
    {"max-tokens", required_argument, NULL, OPT_MAXTOK}, {"temperature", required_argument, NULL, OPT_TEMP},
    {"top-k", required_argument, NULL, OPT_TOPK},    {"top-p", required_argument, NULL, OPT_TOPP},
    {"seed", required_argument, NULL, OPT_SEED},     {"items", required_argument, NULL, OPT_ITEMS},
    {"json", no_argument, NULL, OPT_JSON},           {"backend", required_argument, NULL, OPT_BACKEND},
    {"threads", required_argument, NULL, 'j'},       {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},             {NULL, 0, NULL, 0},
};

/* A JSON string literal of s (paths may hold quotes or backslashes). */
static const char *jstr(const char *s, dsk_buf *b)
{
    struct json_object *o = json_object_new_string(s);
    dsk_buf_clear(b);
    dsk_json_append(o, b);
    dsk_buf_addc(b, 0);
    json_object_put(o);
    return b->data;
}

int main(int argc, char **argv)
{
    dsk_set_progname(argv[0]);
    dsk_signals_init();
    const char *data = NULL, *items = NULL, *backend = "cpu";
    int split = 1, batch = 8, json = 0, threads = 0;
    long rows = 0;
    dsk_gen_opts g = {32, {0, 0, 1}, 1, NULL};
    int opt;
    while ((opt = getopt_long(argc, argv, "d:b:j:hV", long_options, NULL)) != -1) {
        switch (opt) {
        case 'd': data = optarg; break;
        case OPT_SPLIT:
            split = dsk_split_parse(optarg);
            if (split < 0)
                dsk_usage_error("--split '%s': expected train, val or test", optarg);
            break;
        case 'b': batch = (int)dsk_parse_int("--batch", optarg, 1, 1 << 16); break;
        case OPT_ROWS: rows = (long)dsk_parse_int("--rows", optarg, 1, 1LL << 40); break;
        case OPT_MAXTOK: g.max_tokens = (int)dsk_parse_int("--max-tokens", optarg, 1, 1 << 20); break;
        case OPT_TEMP: g.sampler.temperature = dsk_parse_double("--temperature", optarg, 0, 100); break;
        case OPT_TOPK: g.sampler.top_k = (int)dsk_parse_int("--top-k", optarg, 0, 1 << 24); break;
        case OPT_TOPP: g.sampler.top_p = dsk_parse_double("--top-p", optarg, 0, 1); break;
        case OPT_SEED: g.seed = (unsigned long long)dsk_parse_int("--seed", optarg, 0, 1LL << 62); break;
        case OPT_ITEMS: items = optarg; break;
        case OPT_JSON: json = 1; break;
        case OPT_BACKEND: backend = optarg; break;
        case 'j': threads = (int)dsk_parse_int("--threads", optarg, 1, 4096); break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': dsk_print_version(); return 0;
        default: dsk_usage_error("unknown option");
        }
    }
    int rest = argc - optind;
    const char *cmd = rest > 0 ? argv[optind] : NULL;
    if (!cmd || (strcmp(cmd, "ppl") && strcmp(cmd, "gen")))
        dsk_usage_error("expected a command: ppl or gen");
    if (!strcmp(cmd, "ppl") && (rest != 2 || !data))
        dsk_usage_error("usage: dsk-eval ppl CKPT --data DIR");
    if (!strcmp(cmd, "gen") && rest != 3)
        dsk_usage_error("usage: dsk-eval gen CKPT TASK.jsonl");
    dsk_err err = {0};
    dsk_loaded l;
    if (dsk_load_checkpoint(&l, argv[optind + 1], backend, threads, &err))
        dsk_die_err(&err);
    if (!strcmp(cmd, "ppl")) {
        dsk_ppl_result r;
        if (dsk_eval_ppl(&l, data, split, batch, rows, &r, &err))
            dsk_die_err(&err);
        dsk_buf jb = {0};
        if (json)
            printf("{\"checkpoint\":%s,\"split\":\"%s\",\"rows\":%ld,\"tokens\":%.0f,\"bytes\":%.0f,\"loss\":%.6f,"
                   "\"ppl\":%.4f,\"bpb\":%.6f}\n", jstr(l.dir, &jb), dsk_split_names[split], r.rows, r.tokens, r.bytes, r.loss,
                   r.ppl, r.bpb);
        else
            printf("%s on %s (%s): %ld rows, %.0f tokens, %.0f bytes: loss %.4f, perplexity %.2f, %.4f bits/byte\n",
                   l.dir, data, dsk_split_names[split], r.rows, r.tokens, r.bytes, r.loss, r.ppl, r.bpb);
        dsk_buf_free(&jb);
    } else {
        dsk_outfile f = {0};
        if (items && dsk_outfile_open(&f, items, &err))
            dsk_die_err(&err);
        g.items = items ? f.fp : NULL;
        dsk_gen_result r;
        if (dsk_eval_gen(&l, argv[optind + 2], &g, &r, &err))
            dsk_die_err(&err);
        if (items && dsk_outfile_commit(&f, &err))
            dsk_die_err(&err);
        if (json) {
            dsk_buf a = {0}, b = {0};
            printf("{\"checkpoint\":%s,\"task\":%s,\"items\":%ld,\"correct\":%ld,\"exact_match\":%.4f}\n",
                   jstr(l.dir, &a), jstr(argv[optind + 2], &b), r.items, r.correct, r.accuracy);
            dsk_buf_free(&a);
            dsk_buf_free(&b);
        }
        if (!json)
            printf("%s on %s: exact match %ld/%ld = %.3f\n", l.dir, argv[optind + 2], r.correct, r.items, r.accuracy);
    }
    dsk_loaded_free(&l);
    return 0;
}
