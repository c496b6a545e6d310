/* dsk-pack: token streams to a dataset of LMDB shards; verify, info, cat.
 * See dsk-pack(1) and dsk-dataset(5). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpe/formats.h"
#include "bpe/tokenizer.h"
#include "core/cli.h"
#include "core/json.h"
#include "core/outfile.h"
#include "pack/dataset.h"
#include "pack/pack_run.h"
#include "pack/verify.h"
#include "text/utf8.h"

static const char usage[] =
    "Usage: dsk-pack -o DIR -t tokenizer.json --seq-len N [OPTION]... [FILE.dskt]...\n"
    "       dsk-pack verify DIR [-q]\n"
    "       dsk-pack info DIR\n"
    "       dsk-pack cat DIR [--split NAME] [--start N] [--count N] [--decode | --json] [-t tokenizer.json]\n"
    "Pack .dskt token streams (stdin when no FILE) into a dataset directory of LMDB shards.\n"
    "\n"
    "  -o, --output DIR      the dataset directory to create\n"
    "  -t, --tokenizer FILE  the tokenizer.json the streams were made with (copied into DIR)\n"
    "      --seq-len N       tokens the model sees per row; rows hold N+1\n"
    "      --pack MODE       concat (default) or bestfit; chat records: one a row, or bestfit\n"
    "      --crop-long       bestfit: crop documents longer than a row instead of cutting them\n"
    "      --window N        bestfit: tokens buffered per placement round (default 16M)\n"
    "      --shard-size SIZE about how big a shard grows (default 1G)\n"
    "      --zstd-level N    row compression level, 1 to 19 (default 3); 0 stores rows uncompressed\n"
    "      --no-dict         do not train a zstd dictionary on the first rows\n"
    "      --dict-sample SIZE  row bytes the dictionary is trained on (default 4M)\n"
    "      --force           replace DIR if it is a dataset\n"
    "  -j, --threads N       compression threads (default: all cores); same output for any N\n"
    "  -q, --quiet           no progress and no summary\n"
    "      --split NAME      cat: train (default), val or test\n"
    "      --start N         cat: first row (default 0)\n"
    "      --count N         cat: rows to print (default: all)\n"
    "      --decode          cat: print text (JSON Lines) instead of ids\n"
    "      --json            cat: print tokens, mask and boundaries as JSON Lines\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 70 internal error, 73 cannot create,\n"
    "74 I/O error.\n";

enum { OPT_SEQ_LEN = 256, OPT_PACK, OPT_CROP_LONG, OPT_WINDOW, OPT_SHARD_SIZE, OPT_ZSTD_LEVEL, OPT_NO_DICT,
       OPT_DICT_SAMPLE, OPT_FORCE, OPT_SPLIT, OPT_START, OPT_COUNT, OPT_DECODE, OPT_JSON };

static const struct option long_options[] = {
    {"output", required_argument, NULL, 'o'},          {"tokenizer", required_argument, NULL, 't'},
    {"seq-len", required_argument, NULL, OPT_SEQ_LEN}, {"pack", required_argument, NULL, OPT_PACK},
    {"crop-long", no_argument, NULL, OPT_CROP_LONG},   {"window", required_argument, NULL, OPT_WINDOW},
    {"shard-size", required_argument, NULL, OPT_SHARD_SIZE},
    {"zstd-level", required_argument, NULL, OPT_ZSTD_LEVEL},
    {"no-dict", no_argument, NULL, OPT_NO_DICT},       {"dict-sample", required_argument, NULL, OPT_DICT_SAMPLE},
    {"force", no_argument, NULL, OPT_FORCE},           {"threads", required_argument, NULL, 'j'},
    {"quiet", no_argument, NULL, 'q'},                 {"split", required_argument, NULL, OPT_SPLIT},
    {"start", required_argument, NULL, OPT_START},     {"count", required_argument, NULL, OPT_COUNT},
    {"decode", no_argument, NULL, OPT_DECODE},         {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},                  {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

typedef struct args {
    const char *output, *tokenizer;
    uint32_t seq_len;
    int pack_mode, crop_long, force, quiet, threads, dict, decode, json, zstd_level;
    uint64_t window, shard_size, dict_sample, start, count;
    int split;
} args;

static void load_tokenizer(dsk_tokenizer *t, const char *path)
{
    dsk_err err = {0};
    dsk_tokenizer_init(t);
    if (dsk_bpe_load_json(t, path, &err))
        dsk_die_err(&err);
}

/* The command line, shell-quoted, for the MANIFEST. */
static char *command_line(int argc, char **argv)
{
    dsk_buf b = {0};
    for (int i = 0; i < argc; i++) {
        if (i)
            dsk_buf_addc(&b, ' ');
        if (argv[i][0] && strspn(argv[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%") ==
                              strlen(argv[i])) {
            dsk_buf_adds(&b, argv[i]);
            continue;
        }
        dsk_buf_addc(&b, '\'');
        for (const char *p = argv[i]; *p; p++)
            if (*p == '\'')
                dsk_buf_adds(&b, "'\\''");
            else
                dsk_buf_addc(&b, *p);
        dsk_buf_addc(&b, '\'');
    }
    /* JSON is UTF-8: a file name that is not (Latin-1 on disk) gets U+FFFD */
    dsk_buf text = {0};
    dsk_utf8_repair(b.data ? b.data : "", b.len, &text);
    dsk_buf_free(&b);
    dsk_buf_addc(&text, '\0');
    return text.data;
}

static double percent(uint64_t part, uint64_t whole) { return whole ? 100.0 * (double)part / (double)whole : 0.0; }

static int cmd_pack(args *a, int n_files, char **files, char *command)
{
    for (int i = 1; !a->output && i < n_files; i++)   /* "dsk-pack data verify": the command comes first */
        if (!strcmp(files[i], "verify") || !strcmp(files[i], "info") || !strcmp(files[i], "cat"))
            dsk_usage_error("'%s' after '%s': the command comes first (dsk-pack %s %s)", files[i], files[0], files[i],
                            files[0]);
    if (!a->output)
        dsk_usage_error("-o DIR is required");
    if (!a->tokenizer)
        dsk_usage_error("-t tokenizer.json is required");
    if (!a->seq_len)
        dsk_usage_error("--seq-len N is required");
    if (!n_files && isatty(STDIN_FILENO))
        dsk_usage_error("no FILE and stdin is a terminal: give .dskt files or pipe 'dsk-bpe encode' in");
    /* --force replaces DIR whole: an input inside it would be gone after
     * the run that reads it (the tokenizer is copied in: it stays) */
    char *dir = a->force ? realpath(a->output, NULL) : NULL;
    size_t n = dir ? strlen(dir) : 0;
    for (int i = 0; dir && i < n_files; i++) {
        const char *in = files[i];
        char *at = strcmp(in, "-") ? realpath(in, NULL) : NULL;
        int inside = at && strncmp(at, dir, n) == 0 && at[n] == '/';
        free(at);
        if (inside)
            dsk_usage_error("%s is inside %s, which --force replaces", in, a->output);
    }
    free(dir);
    dsk_tokenizer t;
    load_tokenizer(&t, a->tokenizer);
    uint32_t eot = dsk_tokenizer_special(&t, "<|endoftext|>");
    if (eot == DSK_BPE_NO_TOKEN)
        dsk_die(EX_DATAERR, "%s: no <|endoftext|> special token, which separates and pads rows", a->tokenizer);
    dsk_pack_run_opts o = {
        .dir = a->output, .force = a->force, .tokenizer = &t, .tokenizer_path = a->tokenizer,
        .pack = {.mode = a->pack_mode, .row_len = a->seq_len + 1, .eot = eot, .crop_long = a->crop_long,
                 .window_tokens = a->window},
        .shard_size = a->shard_size, .zstd_level = a->zstd_level, .dict = a->dict, .dict_sample = a->dict_sample,
        .threads = a->threads, .command = command, .quiet = a->quiet,
    };
    dsk_manifest m;
    dsk_err err = {0};
    int rc = dsk_pack_run(&o, (const char *const *)files, (size_t)n_files, &m, &err);
    dsk_tokenizer_free(&t);
    if (rc) {
        dsk_manifest_free(&m);
        dsk_die_err(&err);
    }
    if (!a->quiet) {
        uint64_t bytes = 0, rows = 0;
        for (size_t i = 0; i < m.n_shards; i++)
            bytes += m.shards[i].bytes;
        fprintf(stderr, "%s: %s: %s, %s packing, %u tokens a row, %zu shard%s, %.1f MiB, zstd dictionary %u bytes\n",
                dsk_progname(), a->output, dsk_kind_name(m.kind), dsk_pack_mode_name(m.kind, m.pack_mode),
                m.row_tokens, m.n_shards, m.n_shards == 1 ? "" : "s", (double)bytes / (1 << 20), m.dict_bytes);
        for (int s = 0; s < DSK_SPLITS; s++) {
            const dsk_pack_stats *st = &m.stats[s];
            rows += st->rows;
            if (!st->rows)
                continue;
            fprintf(stderr,
                    "  %-5s %llu documents, %llu tokens -> %llu rows; padding %.2f%%, cropped %.2f%%, "
                    "%llu documents cut\n",
                    dsk_split_names[s], (unsigned long long)st->documents, (unsigned long long)st->document_tokens,
                    (unsigned long long)st->rows, percent(st->padding, st->row_tokens),
                    percent(st->cropped, st->document_tokens), (unsigned long long)st->cut_documents);
        }
        uint64_t tokens = m.stats[0].row_tokens + m.stats[1].row_tokens + m.stats[2].row_tokens;
        fprintf(stderr, "  %.3f bytes a token on disk (%llu rows)\n", tokens ? (double)bytes / (double)tokens : 0.0,
                (unsigned long long)rows);
    }
    dsk_manifest_free(&m);
    return 0;
}

static const char *one_dir(int n_files, char **files, const char *cmd)
{
    if (n_files != 1)
        dsk_usage_error("%s takes one dataset directory", cmd);
    return files[0];
}

static int cmd_verify(args *a, int n_files, char **files)
{
    const char *dir = one_dir(n_files, files, "verify");
    dsk_verify_report rep;
    dsk_err err = {0};
    if (dsk_dataset_verify(dir, &rep, &err))
        dsk_die_err(&err);
    if (!a->quiet)
        printf("%s: OK: %llu files match MD5SUMS; %llu shard%s, %llu rows, %llu tokens checked\n", dir,
               (unsigned long long)rep.files, (unsigned long long)rep.shards, rep.shards == 1 ? "" : "s",
               (unsigned long long)rep.rows, (unsigned long long)rep.tokens);
    return 0;
}

static int cmd_info(int n_files, char **files)
{
    const char *dir = one_dir(n_files, files, "info");
    dsk_manifest m;
    dsk_err err = {0};
    if (dsk_manifest_load(&m, dir, &err))
        dsk_die_err(&err);
    dsk_buf b = {0};
    dsk_manifest_write(&m, &b);
    fwrite(b.data, 1, b.len, stdout);
    dsk_buf_free(&b);
    dsk_manifest_free(&m);
    return 0;
}

static void print_text(const dsk_tokenizer *t, const char *key, const uint32_t *ids, size_t n, dsk_buf *line)
{
    dsk_buf raw = {0}, text = {0};
    dsk_err err = {0};
    if (dsk_bpe_decode(t, ids, n, &raw, &err))
        dsk_die_err(&err);
    /* A row edge can cut a character: JSON gets U+FFFD for each invalid
     * part, as dsk-bpe decode writes it. */
    dsk_utf8_repair(raw.data ? raw.data : "", raw.len, &text);
    struct json_object *s = json_object_new_string_len(text.data ? text.data : "", (int)text.len);
    dsk_buf_printf(line, ", \"%s\": ", key);
    dsk_json_append(s, line);
    json_object_put(s);
    dsk_buf_free(&raw);
    dsk_buf_free(&text);
}

static void print_u32_list(dsk_buf *line, const char *key, const uint32_t *v, const uint8_t *m, size_t n)
{
    dsk_buf_printf(line, ", \"%s\": [", key);
    for (size_t i = 0; i < n; i++)
        dsk_buf_printf(line, i ? ",%u" : "%u", v ? v[i] : m[i]);
    dsk_buf_addc(line, ']');
}

static int cmd_cat(args *a, int n_files, char **files)
{
    const char *dir = one_dir(n_files, files, "cat");
    dsk_dataset ds;
    dsk_err err = {0};
    if (dsk_dataset_open(&ds, dir, &err))
        dsk_die_err(&err);
    dsk_tokenizer t;
    int have_tok = 0;
    if (a->decode) {
        char *path = NULL;
        if (!a->tokenizer) {
            path = dsk_xmalloc(strlen(dir) + 32);
            sprintf(path, "%s/tokenizer.json", dir);
        }
        load_tokenizer(&t, a->tokenizer ? a->tokenizer : path);
        free(path);
        char fp[33];
        dsk_tokenizer_fingerprint(&t, fp);
        if (dsk_dataset_check_tokenizer(&ds, fp, t.n_vocab, &err))
            dsk_die_err(&err);
        have_tok = 1;
    }
    uint64_t rows = ds.m.rows[a->split];
    uint64_t end = a->count && a->start + a->count < rows ? a->start + a->count : rows;
    if (a->start > rows)
        dsk_die(EX_USAGE, "%s: --start %llu is past the %llu %s rows", dir, (unsigned long long)a->start,
                (unsigned long long)rows, dsk_split_names[a->split]);
    dsk_dataset_reader r;
    dsk_dataset_reader_init(&r, &ds);
    dsk_row row = {0};
    dsk_buf line = {0};
    for (uint64_t i = a->start; i < end; i++) {
        if (dsk_dataset_read(&r, a->split, i, &row, &err))
            dsk_die_err(&err);
        dsk_buf_clear(&line);
        if (a->decode || a->json) {
            dsk_buf_printf(&line, "{\"split\": \"%s\", \"row\": %llu", dsk_split_names[a->split], (unsigned long long)i);
            if (a->decode && (row.flags & DSK_ROW_PAIR)) {
                print_text(&t, "chosen", row.tokens, row.split, &line);
                print_text(&t, "rejected", row.tokens + row.split, row.n_tokens - row.split, &line);
            } else if (a->decode) {
                print_text(&t, "text", row.tokens, row.n_tokens, &line);
            } else {
                print_u32_list(&line, "tokens", row.tokens, NULL, row.n_tokens);
                print_u32_list(&line, "mask", NULL, row.mask, row.n_tokens);
                print_u32_list(&line, "boundaries", row.boundaries, NULL, row.n_boundaries);
                if (row.flags & DSK_ROW_PAIR)
                    dsk_buf_printf(&line, ", \"pair_split\": %u", row.split);
            }
            dsk_buf_adds(&line, "}\n");
        } else {
            for (uint32_t k = 0; k < row.n_tokens; k++)
                dsk_buf_printf(&line, k ? " %u" : "%u", row.tokens[k]);
            dsk_buf_addc(&line, '\n');
        }
        if (fwrite(line.data, 1, line.len, stdout) != line.len)
            break;
    }
    if (fflush(stdout) != 0 || ferror(stdout))
        dsk_die(EX_IOERR, "standard output: write error");
    dsk_buf_free(&line);
    dsk_row_free(&row);
    dsk_dataset_reader_free(&r);
    if (have_tok)
        dsk_tokenizer_free(&t);
    dsk_dataset_close(&ds);
    return 0;
}

static const char *option_name(int val) { return dsk_option_name(val, long_options); }

int main(int argc, char **argv)
{
    dsk_set_progname(argv[0]);
    dsk_signals_init();
    char *command = command_line(argc, argv);
    args a = {.pack_mode = DSK_PACK_CONCAT, .threads = dsk_default_threads(), .dict = 1, .zstd_level = 3,
              .shard_size = 1ull << 30, .dict_sample = 4u << 20, .window = 16u << 20};
    /* The first option of each kind given: one of cat's, or of packing's,
     * or of bestfit's alone, where it would do nothing, is a usage error. */
    int cat_only = 0, pack_only = 0, bestfit_only = 0, tokenizer_given = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":o:t:j:qhV", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_SPLIT: case OPT_START: case OPT_COUNT: case OPT_DECODE: case OPT_JSON:
            cat_only = cat_only ? cat_only : opt;
            break;
        case OPT_CROP_LONG: case OPT_WINDOW:
            bestfit_only = bestfit_only ? bestfit_only : opt;
            /* fall through - packing's too */
        case 'o': case 'j': case OPT_SEQ_LEN: case OPT_PACK: case OPT_SHARD_SIZE: case OPT_ZSTD_LEVEL:
        case OPT_NO_DICT: case OPT_DICT_SAMPLE: case OPT_FORCE:
            pack_only = pack_only ? pack_only : opt;
            break;
        case 't':
            tokenizer_given = 1;
            break;
        }
        switch (opt) {
        case 'o': a.output = optarg; break;
        case 't': a.tokenizer = optarg; break;
        case 'j': a.threads = (int)dsk_parse_int("--threads", optarg, 1, 256); break;
        case 'q': a.quiet = 1; break;
        case OPT_SEQ_LEN: a.seq_len = (uint32_t)dsk_parse_int("--seq-len", optarg, 1, DSK_ROW_MAX_TOKENS / 2 - 1); break;
        case OPT_PACK:
            if (strcmp(optarg, "concat") == 0)
                a.pack_mode = DSK_PACK_CONCAT;
            else if (strcmp(optarg, "bestfit") == 0)
                a.pack_mode = DSK_PACK_BESTFIT;
            else
                dsk_usage_error("--pack: '%s' is not concat or bestfit", optarg);
            break;
        case OPT_CROP_LONG: a.crop_long = 1; break;
        case OPT_WINDOW:
            a.window = dsk_parse_size("--window", optarg);
            if (!a.window)
                dsk_usage_error("--window: at least 1 token");
            break;
        case OPT_SHARD_SIZE:
            a.shard_size = dsk_parse_size("--shard-size", optarg);
            /* LMDB maps a whole shard: past the address space's room it fails late, as ENOMEM */
            if (a.shard_size < (64u << 10) || a.shard_size > (16ull << 40))
                dsk_usage_error("--shard-size: 64K to 16T");
            break;
        case OPT_ZSTD_LEVEL: a.zstd_level = (int)dsk_parse_int("--zstd-level", optarg, 0, 19); break;
        case OPT_NO_DICT: a.dict = 0; break;
        case OPT_DICT_SAMPLE: a.dict_sample = dsk_parse_size("--dict-sample", optarg); break;
        case OPT_FORCE: a.force = 1; break;
        case OPT_SPLIT:
            if ((a.split = dsk_split_parse(optarg)) < 0)
                dsk_usage_error("--split: '%s' is not train, val or test", optarg);
            break;
        case OPT_START: a.start = (uint64_t)dsk_parse_int("--start", optarg, 0, INT64_MAX); break;
        case OPT_COUNT: a.count = (uint64_t)dsk_parse_int("--count", optarg, 1, INT64_MAX); break;
        case OPT_DECODE: a.decode = 1; break;
        case OPT_JSON: a.json = 1; break;
        case 'h': fputs(usage, stdout); free(command); return 0;
        case 'V': dsk_print_version(); free(command); return 0;
        default: dsk_usage_bad_option(opt, argv, long_options);
        }
    }
    if (a.decode && a.json)
        dsk_usage_error("--decode and --json do not go together");
    int rest = argc - optind;
    char **files = argv + optind;
    const char *cmd = rest ? files[0] : "";
    int rc;
    int packing = strcmp(cmd, "verify") && strcmp(cmd, "info") && strcmp(cmd, "cat");
    if (packing && cat_only)
        dsk_usage_error("%s is for dsk-pack cat", option_name(cat_only));
    if (!packing && pack_only)
        dsk_usage_error("%s is for packing, not dsk-pack %s", option_name(pack_only), cmd);
    if (packing && bestfit_only && a.pack_mode != DSK_PACK_BESTFIT)
        dsk_usage_error("%s is for --pack bestfit", option_name(bestfit_only));
    /* verify checks a dataset against itself (its MANIFEST, MD5SUMS and
     * its own tokenizer.json); only cat --decode reads a tokenizer */
    if (!packing && tokenizer_given && !(strcmp(cmd, "cat") == 0 && a.decode))
        dsk_usage_error("-t is for packing and dsk-pack cat --decode, not dsk-pack %s%s", cmd,
                        strcmp(cmd, "cat") == 0 ? " without --decode" : "");
    if (!packing && cat_only && strcmp(cmd, "cat") != 0)
        dsk_usage_error("%s is for dsk-pack cat, not dsk-pack %s", option_name(cat_only), cmd);
    if (a.quiet && (strcmp(cmd, "info") == 0 || strcmp(cmd, "cat") == 0))   /* they print nothing else */
        dsk_usage_error("-q is for packing and dsk-pack verify, not dsk-pack %s", cmd);
    if (strcmp(cmd, "verify") == 0)
        rc = cmd_verify(&a, rest - 1, files + 1);
    else if (strcmp(cmd, "info") == 0)
        rc = cmd_info(rest - 1, files + 1);
    else if (strcmp(cmd, "cat") == 0)
        rc = cmd_cat(&a, rest - 1, files + 1);
    else
        rc = cmd_pack(&a, rest, files, command);
    free(command);
    if (rc)
        dsk_failing();   /* reported: the status stands */
    return rc;
}
