/* dsk-clean: clean, filter, deduplicate and split documents.  See dsk-clean(1). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clean/clean.h"
#include "core/cli.h"
#include "core/fileio.h"
#include "core/outfile.h"

static const char usage[] =
    "Usage: dsk-clean [OPTION]... [FILE]...\n"
    "Clean, filter, deduplicate and split documents; JSON Lines out on stdout.\n"
    "With no FILE, or when FILE is -, read standard input.  zstd input is detected.\n"
    "\n"
    "Input:\n"
    "      --records MODE      jsonl (default), lines, paragraphs, nul or regex:PATTERN\n"
    "      --field NAME        JSONL field holding the text (default: text)\n"
    "      --utf8 MODE         invalid UTF-8: replace (default), drop or fail\n"
    "      --on-error MODE     malformed records: fail (default) or skip (counted)\n"
    "      --max-record-bytes SIZE  longest record accepted (default: 64M)\n"
    "Normalization:\n"
    "      --normalize FORM    nfc (default), nfkc or none\n"
    "      --whitespace MODE   normalize (default) or keep\n"
    "Rules (PCRE2, UTF-8, multiline):\n"
    "      --drop RE           drop documents matching RE\n"
    "      --keep RE           keep only documents matching some --keep RE\n"
    "      --replace RE=TEXT   replace every match ($1, ${name} in TEXT)\n"
    "      --rules FILE        lines 'drop RE', 'keep RE', 'replace RE=TEXT'\n"
    "Quality filters:\n"
    "      --filters LIST      gopher-repetition, gopher-quality, c4, fineweb, all, none;\n"
    "                          '-c4' or '+c4' edit the default (all)\n"
    "      --set NAME=VALUE    tune a filter threshold (see --list-params)\n"
    "      --min-chars N, --max-chars N  document length limits in characters\n"
    "      --list-params       print every tunable parameter and exit\n"
    "Deduplication and split:\n"
    "      --dedup LIST        exact, minhash, exact,minhash or none (default: exact)\n"
    "      --minhash N,B,R     shingle words, bands, rows (default: 5,14,8)\n"
    "      --dedup-db PATH     keep the dedup index in an LMDB file shared across runs\n"
    "      --dedup-memory SIZE in-memory index budget (default: 4G)\n"
    "      --split T:V:E       train:val:test weights (default: 98:1:1)\n"
    "      --seed N            key of the split hash (default: 0)\n"
    "Output:\n"
    "  -o, --output FILE       write documents to FILE (atomically) instead of stdout\n"
    "      --stats FILE        write counts per rule as JSON\n"
    "      --rejects FILE      write each dropped document with \"rejected_by\"\n"
    "  -j, --threads N         worker threads (default: all cores)\n"
    "  -q, --quiet             no summary or progress on stderr\n"
    "  -h, --help              show this help and exit\n"
    "  -V, --version           show the version and exit\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 70 over --dedup-memory, 73 cannot create,\n"
    "74 I/O error.\n"
    "See dsk-clean(1) for the rules and their defaults.\n";

enum {
    OPT_RECORDS = 256, OPT_FIELD, OPT_UTF8, OPT_ON_ERROR, OPT_MAX_RECORD, OPT_NORMALIZE, OPT_WHITESPACE,
    OPT_DROP, OPT_KEEP, OPT_REPLACE, OPT_RULES, OPT_FILTERS, OPT_SET, OPT_MIN_CHARS, OPT_MAX_CHARS,
    OPT_LIST_PARAMS, OPT_DEDUP, OPT_MINHASH, OPT_DEDUP_DB, OPT_DEDUP_MEMORY, OPT_SPLIT, OPT_SEED, OPT_STATS,
    OPT_REJECTS,
};

static const struct option long_options[] = {
    {"records", required_argument, NULL, OPT_RECORDS},
    {"field", required_argument, NULL, OPT_FIELD},
    {"utf8", required_argument, NULL, OPT_UTF8},
    {"on-error", required_argument, NULL, OPT_ON_ERROR},
    {"max-record-bytes", required_argument, NULL, OPT_MAX_RECORD},
    {"normalize", required_argument, NULL, OPT_NORMALIZE},
    {"whitespace", required_argument, NULL, OPT_WHITESPACE},
    {"drop", required_argument, NULL, OPT_DROP},
    {"keep", required_argument, NULL, OPT_KEEP},
    {"replace", required_argument, NULL, OPT_REPLACE},
    {"rules", required_argument, NULL, OPT_RULES},
    {"filters", required_argument, NULL, OPT_FILTERS},
    {"set", required_argument, NULL, OPT_SET},
    {"min-chars", required_argument, NULL, OPT_MIN_CHARS},
    {"max-chars", required_argument, NULL, OPT_MAX_CHARS},
    {"list-params", no_argument, NULL, OPT_LIST_PARAMS},
    {"dedup", required_argument, NULL, OPT_DEDUP},
    {"minhash", required_argument, NULL, OPT_MINHASH},
    {"dedup-db", required_argument, NULL, OPT_DEDUP_DB},
    {"dedup-memory", required_argument, NULL, OPT_DEDUP_MEMORY},
    {"split", required_argument, NULL, OPT_SPLIT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"stats", required_argument, NULL, OPT_STATS},
    {"rejects", required_argument, NULL, OPT_REJECTS},
    {"output", required_argument, NULL, 'o'},
    {"threads", required_argument, NULL, 'j'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static int pick(const char *option, const char *value, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(value, names[i]) == 0)
            return i;
    dsk_usage_error("%s: unknown value '%s'", option, value);
}

static void parse_split(const char *arg, double split[3])
{
    char *end;
    const char *p = arg;
    for (int i = 0; i < 3; i++) {
        split[i] = strtod(p, &end);
        if (end == p || split[i] < 0 || split[i] != split[i] || (i < 2 && *end != ':') || (i == 2 && *end))
            dsk_usage_error("--split: expected TRAIN:VAL:TEST weights such as 98:1:1, got '%s'", arg);
        p = end + 1;
    }
    if (split[0] + split[1] + split[2] <= 0)
        dsk_usage_error("--split: the weights must not all be zero");
}

static void parse_minhash(const char *arg, dsk_clean_config *c)
{
    int n, b, r;
    char extra;
    if (sscanf(arg, "%d,%d,%d%c", &n, &b, &r, &extra) != 3 || n < 1 || n > 64 || b < 1 || b > 64 || r < 1 ||
        r > 32)
        dsk_usage_error("--minhash: expected NGRAM,BANDS,ROWS (1-64, 1-64, 1-32), got '%s'", arg);
    c->minhash_ngram = n;
    c->minhash_bands = b;
    c->minhash_rows = r;
}

/* The outputs made final, before the dedup database keeps the run. */
typedef struct outputs {
    dsk_outfile *out, *rejects, *stats;
} outputs;

static int commit_outputs(void *arg, const dsk_clean_stats *st, dsk_err *err)
{
    outputs *o = arg;
    int rc = dsk_outfile_commit(o->out, err);
    if (!rc && o->rejects)
        rc = dsk_outfile_commit(o->rejects, err);
    if (!rc && o->stats) {
        dsk_clean_stats_write_json(st, o->stats->fp);
        rc = dsk_outfile_commit(o->stats, err);
    }
    return rc;
}

int main(int argc, char **argv)
{
    dsk_set_progname(argv[0]);
    dsk_signals_init();
    dsk_clean_config c;
    dsk_clean_config_default(&c);
    c.threads = dsk_default_threads();
    const char *output = NULL, *stats_path = NULL, *rejects_path = NULL;
    int list_params = 0;
    dsk_err err = {0};
    char msg[512];
    int opt;
    while ((opt = getopt_long(argc, argv, ":o:j:qhV", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_RECORDS:
            dsk_records_spec_free(&c.records);
            if (dsk_records_spec_parse(&c.records, optarg, &err))
                dsk_usage_error("%s", err.msg);
            break;
        case OPT_FIELD: c.field = optarg; break;
        case OPT_UTF8: {
            static const char *const m[] = {"fail", "replace", "drop"};
            c.utf8 = (dsk_utf8_mode)pick("--utf8", optarg, m, 3);
            break;
        }
        case OPT_ON_ERROR: {
            static const char *const m[] = {"fail", "skip"};
            c.skip_errors = pick("--on-error", optarg, m, 2);
            break;
        }
        case OPT_MAX_RECORD:
            c.max_record = (size_t)dsk_parse_size("--max-record-bytes", optarg);
            if (c.max_record == 0)
                dsk_usage_error("--max-record-bytes: at least 1 byte");
            break;
        case OPT_NORMALIZE: {
            static const char *const m[] = {"none", "nfc", "nfkc"};
            c.normalize.form = (dsk_norm_form)pick("--normalize", optarg, m, 3);
            break;
        }
        case OPT_WHITESPACE: {
            static const char *const m[] = {"keep", "normalize"};
            c.normalize.tidy_whitespace = pick("--whitespace", optarg, m, 2);
            break;
        }
        case OPT_DROP:
        case OPT_KEEP:
        case OPT_REPLACE: {
            dsk_rule_kind k = opt == OPT_DROP ? DSK_RULE_DROP : opt == OPT_KEEP ? DSK_RULE_KEEP : DSK_RULE_REPLACE;
            const char *name = opt == OPT_DROP ? "--drop" : opt == OPT_KEEP ? "--keep" : "--replace";
            if (dsk_rules_add(&c.rules, k, optarg, name, &err))
                dsk_usage_error("%s", err.msg);
            break;
        }
        case OPT_RULES:
            if (dsk_rules_load_file(&c.rules, optarg, &err))
                err.code == EX_USAGE ? dsk_usage_error("%s", err.msg) : dsk_die_err(&err);
            break;
        case OPT_FILTERS:
            if (dsk_parse_filter_list(optarg, &c.filters, &err))
                dsk_usage_error("%s", err.msg);
            break;
        case OPT_SET:
            if (dsk_filter_params_set(&c.params, optarg, msg, sizeof msg))
                dsk_usage_error("--set: %s", msg);
            break;
        case OPT_MIN_CHARS: c.params.min_chars = (double)dsk_parse_int("--min-chars", optarg, 0, 1LL << 40); break;
        case OPT_MAX_CHARS: c.params.max_chars = (double)dsk_parse_int("--max-chars", optarg, 0, 1LL << 40); break;
        case OPT_LIST_PARAMS: list_params = 1; break;
        case OPT_DEDUP:
            if (dsk_parse_dedup_list(optarg, &c.dedup, &err))
                dsk_usage_error("%s", err.msg);
            break;
        case OPT_MINHASH: parse_minhash(optarg, &c); break;
        case OPT_DEDUP_DB: c.dedup_db = optarg; break;
        case OPT_DEDUP_MEMORY: c.dedup_memory = dsk_parse_size("--dedup-memory", optarg); break;
        case OPT_SPLIT: parse_split(optarg, c.split); break;
        case OPT_SEED: c.seed = (uint64_t)dsk_parse_int("--seed", optarg, 0, INT64_MAX); break;
        case OPT_STATS: stats_path = optarg; break;
        case OPT_REJECTS: rejects_path = optarg; break;
        case 'o': output = optarg; break;
        case 'j': c.threads = (int)dsk_parse_int("--threads", optarg, 1, 256); break;
        case 'q': c.quiet = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': dsk_print_version(); return 0;
        default: dsk_usage_bad_option(opt, argv, long_options);
        }
    }
    if (list_params) {
        dsk_filter_params_print(&c.params, stdout);
        return 0;
    }
    if (c.records.mode != DSK_REC_JSONL && strcmp(c.field, "text") != 0)
        dsk_usage_error("--field applies to JSONL input only");
    if (c.params.max_chars > 0 && c.params.min_chars > c.params.max_chars)
        dsk_usage_error("--min-chars %.0f is over --max-chars %.0f: every document would be dropped",
                        c.params.min_chars, c.params.max_chars);
    /* "-" is standard output: the documents' place, unless -o sends them elsewhere */
    int out_std = !output || strcmp(output, "-") == 0, stats_std = stats_path && strcmp(stats_path, "-") == 0,
        rejects_std = rejects_path && strcmp(rejects_path, "-") == 0;
    if (out_std && (stats_std || rejects_std))
        dsk_usage_error("--%s - would write into the documents on standard output (give -o FILE, or another path)",
                        stats_std ? "stats" : "rejects");
    if (stats_std && rejects_std)
        dsk_usage_error("--stats - and --rejects -: one standard output for two files");
    /* one file for two outputs: the last one made would replace the other */
    const char *paths[3] = {out_std ? NULL : output, rejects_std ? NULL : rejects_path, stats_std ? NULL : stats_path};
    static const char *const names[3] = {"-o", "--rejects", "--stats"};
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (paths[i] && paths[j] && dsk_same_target(paths[i], paths[j]))
                dsk_usage_error("%s and %s name one file, %s: one would replace the other", names[i], names[j],
                                paths[j]);

    /* All three opened before any work: a path that cannot be written
     * fails the run before the others are made. */
    dsk_outfile out, rejects, stats;
    int rc = dsk_outfile_open(&out, output, &err);
    if (!rc && rejects_path)
        rc = dsk_outfile_open(&rejects, rejects_path, &err);
    if (!rc && stats_path)
        rc = dsk_outfile_open(&stats, stats_path, &err);
    if (rc)
        dsk_die_err(&err);

    dsk_clean_stats *st = NULL;
    outputs o = {&out, rejects_path ? &rejects : NULL, stats_path ? &stats : NULL};
    rc = dsk_clean_run(&c, (const char *const *)argv + optind, out.fp, rejects_path ? rejects.fp : NULL, &st,
                       commit_outputs, &o, &err);
    if (rc) {
        dsk_clean_stats_free(st);
        dsk_clean_config_free(&c);
        dsk_die_err(&err);  /* removes any uncommitted temporaries */
    }
    if (!c.quiet)
        dsk_clean_stats_print_summary(st, stderr);
    dsk_clean_stats_free(st);
    dsk_clean_config_free(&c);
    return 0;
}
