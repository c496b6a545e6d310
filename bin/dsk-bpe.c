/* dsk-bpe: byte-level BPE tokenizers: import, encode, decode, info.
 * See dsk-bpe(1). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "bpe/document.h"
#include "bpe/dskt.h"
#include "bpe/encode_run.h"
#include "bpe/formats.h"
#include "bpe/train.h"
#include "core/cli.h"
#include "core/json.h"
#include "core/outfile.h"
#include "core/reader.h"
#include "text/records.h"
#include "text/utf8.h"

static const char usage[] =
    "Usage: dsk-bpe import (--tiktoken FILE --pattern NAME|REGEX [--special TOKEN=ID]... |\n"
    "                       --gpt2 ENCODER.JSON VOCAB.BPE) -o tokenizer.json\n"
    "       dsk-bpe train --vocab-size N [--pattern NAME|REGEX] [--special TOKEN]... [--min-frequency N]\n"
    "                     [--max-words N] [--counts counts.bin]... [--records MODE] -o tokenizer.json [FILE]...\n"
    "       dsk-bpe count [--pattern NAME|REGEX] [--max-words N] [--records MODE] -o counts.bin [FILE]...\n"
    "       dsk-bpe encode -t tokenizer.json [--ids] [--records MODE] [--field NAME] [--allow-special] [FILE]...\n"
    "       dsk-bpe decode -t tokenizer.json [--ids] [--raw] [FILE]\n"
    "       dsk-bpe info -t tokenizer.json\n"
    "Byte-level BPE tokenizers in Hugging Face tokenizer.json form.\n"
    "\n"
    "  -t, --tokenizer FILE  the tokenizer.json to use\n"
    "      --tiktoken FILE   import a tiktoken rank file (.tiktoken)\n"
    "      --gpt2            import GPT-2's encoder.json and vocab.bpe (two arguments)\n"
    "      --pattern P       pre-tokenizer: gpt2, cl100k, o200k or a regex (train, count: default\n"
    "                        cl100k; import --gpt2: gpt2; import --tiktoken: required)\n"
    "      --special T=ID    import: a special token and its id (repeatable)\n"
    "      --special TOKEN   train: a special token beyond the defaults (repeatable)\n"
    "      --vocab-size N    train: the vocabulary size, specials included\n"
    "      --min-frequency N train: stop merging below this pair count (default 2)\n"
    "      --max-words N     count/train: distinct pre-tokens kept in memory (default 20M)\n"
    "      --counts FILE     train: add the counts of a 'dsk-bpe count' run (repeatable)\n"
    "      --ids             encode: one line of space-separated ids per document, not .dskt;\n"
    "                        decode: read such lines\n"
    "      --records MODE    the input's records (encode, train, count): jsonl (default), lines,\n"
    "                        paragraphs, nul, regex:RE\n"
    "      --field NAME      JSONL field holding the text (default: text)\n"
    "      --max-record-bytes SIZE  train/count/encode: longest record accepted (default: 64M)\n"
    "      --allow-special   encode special-token text as the special token\n"
    "      --raw             decode to plain text instead of JSON Lines\n"
    "  -o, --output FILE     write to FILE (atomically) instead of stdout\n"
    "  -j, --threads N       encode: worker threads (default: all cores); same output for any N\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 73 cannot create, 74 I/O error.\n";

enum { OPT_TIKTOKEN = 256, OPT_GPT2, OPT_PATTERN, OPT_SPECIAL, OPT_IDS, OPT_RECORDS, OPT_FIELD, OPT_ALLOW_SPECIAL,
       OPT_RAW, OPT_VOCAB_SIZE, OPT_MIN_FREQUENCY, OPT_MAX_WORDS, OPT_COUNTS, OPT_MAX_RECORD };

static const struct option long_options[] = {
    {"tokenizer", required_argument, NULL, 't'}, {"tiktoken", required_argument, NULL, OPT_TIKTOKEN},
    {"gpt2", no_argument, NULL, OPT_GPT2},       {"pattern", required_argument, NULL, OPT_PATTERN},
    {"special", required_argument, NULL, OPT_SPECIAL}, {"ids", no_argument, NULL, OPT_IDS},
    {"records", required_argument, NULL, OPT_RECORDS}, {"field", required_argument, NULL, OPT_FIELD},
    {"allow-special", no_argument, NULL, OPT_ALLOW_SPECIAL}, {"raw", no_argument, NULL, OPT_RAW},
    {"vocab-size", required_argument, NULL, OPT_VOCAB_SIZE}, {"min-frequency", required_argument, NULL, OPT_MIN_FREQUENCY},
    {"max-words", required_argument, NULL, OPT_MAX_WORDS}, {"counts", required_argument, NULL, OPT_COUNTS},
    {"max-record-bytes", required_argument, NULL, OPT_MAX_RECORD},
    {"output", required_argument, NULL, 'o'},    {"threads", required_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
};

typedef struct args {
    const char *tokenizer, *tiktoken, *pattern, *output, *field;
    int gpt2, ids, allow_special, raw;
    char **specials;
    size_t n_specials;
    char **counts;
    size_t n_counts;
    uint32_t vocab_size;
    uint64_t min_frequency, max_words;
    int threads;
    size_t max_record;
    dsk_records_spec records;
} args;

static void load_tokenizer(dsk_tokenizer *t, const char *path)
{
    dsk_err err = {0};
    if (!path)
        dsk_usage_error("-t tokenizer.json is required");
    dsk_tokenizer_init(t);
    if (dsk_bpe_load_json(t, path, &err))
        dsk_die_err(&err);
}

/* tokenizer.json into out, opened for path, and made final; the JSON
 * writer's errors are named by the file they were writing. */
static int write_tokenizer(const dsk_tokenizer *t, dsk_outfile *out, const char *path, dsk_err *err)
{
    int rc = dsk_bpe_write_json(t, out->fp, err);
    if (rc) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return dsk_fail(err, rc, "%s: %s", strcmp(path, "-") ? path : "standard output", why);
    }
    return dsk_outfile_commit(out, err);
}

static int cmd_import(args *a, int argc, char **argv)
{
    dsk_tokenizer t;
    dsk_tokenizer_init(&t);
    dsk_err err = {0};
    int rc;
    if (!a->output)
        dsk_usage_error("import: -o tokenizer.json is required");
    if (a->gpt2) {
        if (argc != 2 || a->tiktoken)
            dsk_usage_error("import --gpt2 takes ENCODER.JSON VOCAB.BPE");
        rc = dsk_bpe_load_gpt2(&t, argv[0], argv[1], &err);
        if (!a->pattern)
            a->pattern = "gpt2";
    } else if (a->tiktoken) {
        if (argc)
            dsk_usage_error("import --tiktoken takes no other file");
        if (!a->pattern)
            dsk_usage_error("import --tiktoken needs --pattern (gpt2, cl100k, o200k or a regex)");
        rc = dsk_bpe_load_tiktoken(&t, a->tiktoken, &err);
    } else {
        dsk_usage_error("import needs --tiktoken FILE or --gpt2 ENCODER.JSON VOCAB.BPE");
    }
    for (size_t i = 0; !rc && i < a->n_specials; i++) {
        char *eq = strrchr(a->specials[i], '=');
        if (!eq || eq == a->specials[i])
            dsk_usage_error("--special: expected TOKEN=ID, got '%s'", a->specials[i]);
        *eq = '\0';
        uint32_t id = (uint32_t)dsk_parse_int("--special", eq + 1, 0, DSK_BPE_MAX_VOCAB - 1);
        rc = dsk_tokenizer_add_special(&t, id, a->specials[i], &err);
    }
    const char *named = a->pattern ? dsk_bpe_named_pattern(a->pattern) : NULL;
    if (!rc)
        rc = dsk_tokenizer_set_pattern(&t, named ? named : a->pattern, &err);
    if (!rc)
        rc = dsk_tokenizer_finish(&t, &err);
    dsk_outfile out;
    if (!rc)
        rc = dsk_outfile_open(&out, a->output, &err);
    if (!rc)
        rc = write_tokenizer(&t, &out, a->output, &err);
    dsk_tokenizer_free(&t);
    if (rc)
        dsk_die_err(&err);
    return 0;
}

static int cmd_encode(args *a, int argc, char **argv)
{
    dsk_tokenizer t;
    load_tokenizer(&t, a->tokenizer);
    if (!a->ids && !a->output && isatty(STDOUT_FILENO))
        dsk_usage_error("encode: refusing to write a binary token stream to a terminal (use -o, a pipe, or --ids)");
    dsk_outfile out;
    dsk_err err = {0};
    if (dsk_outfile_open(&out, a->output, &err))
        dsk_die_err(&err);
    dsk_bpe_encode_opts o = {&t, &a->records, a->field, a->allow_special, a->ids, a->threads, a->max_record};
    (void)argc;
    int rc = dsk_bpe_encode_run(&o, (const char *const *)argv, out.fp, &err);
    dsk_tokenizer_free(&t);
    if (!rc)
        rc = dsk_outfile_commit(&out, &err);
    if (rc)
        dsk_die_err(&err);
    return 0;
}

/* Adds key: the text of ids[0..n) (repaired, should ids split a character). */
static int add_text(struct json_object *o, const char *key, const dsk_tokenizer *t, const uint32_t *ids, size_t n,
                    dsk_err *err)
{
    dsk_buf raw = {0}, valid = {0};
    int rc = dsk_bpe_decode(t, ids, n, &raw, err);
    if (!rc) {
        dsk_utf8_repair(raw.data ? raw.data : "", raw.len, &valid);
        json_object_object_add(o, key, json_object_new_string_len(valid.data ? valid.data : "", (int)valid.len));
    }
    dsk_buf_free(&raw);
    dsk_buf_free(&valid);
    return rc;
}

static int decode_stream(args *a, const dsk_tokenizer *t, const char *path, FILE *out)
{
    static const char *const splits[] = {"train", "val", "test"};
    dsk_err err = {0};
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!in)
        dsk_die(EX_NOINPUT, "%s: cannot open: %s", path, strerror(errno));
    dskt_reader r;
    int rc = dskt_reader_open(&r, in, strcmp(path, "-") == 0 ? "(stdin)" : path, &err);
    char want[33], got[33];
    dsk_tokenizer_fingerprint(t, want);
    dskt_fingerprint_hex(r.h.fingerprint, got);
    if (!rc && strcmp(want, got) != 0)
        rc = dsk_fail(&err, EX_DATAERR, "%s: made with tokenizer %s, not this one (%s)", path, got, want);
    dskt_record rec = {0};
    dsk_buf line = {0};
    while (!rc && (rc = dskt_read(&r, &rec, &err)) == 1) {
        rc = 0;
        if (a->raw) {
            dsk_buf_clear(&line);
            rc = dsk_bpe_decode(t, rec.tokens, rec.n_tokens, &line, &err);
            fwrite(line.data ? line.data : "", 1, line.len, out);
            continue;
        }
        struct json_object *o = json_object_new_object();
        if (rec.kind == DSKT_PREFERENCE) {
            rc = add_text(o, "prompt", t, rec.tokens, rec.n_prompt, &err);
            if (!rc)
                rc = add_text(o, "chosen", t, rec.tokens + rec.n_prompt, rec.n_chosen, &err);
            if (!rc)
                rc = add_text(o, "rejected", t, rec.tokens + rec.n_prompt + rec.n_chosen,
                              rec.n_tokens - rec.n_prompt - rec.n_chosen, &err);
        } else {
            rc = add_text(o, "text", t, rec.tokens, rec.n_tokens, &err);
        }
        json_object_object_add(o, "split", json_object_new_string(splits[rec.split]));
        if (rec.kind == DSKT_CHAT) {
            uint32_t trained = 0;
            for (uint32_t i = 0; i < rec.n_tokens; i++)
                trained += rec.mask[i];
            json_object_object_add(o, "kind", json_object_new_string("chat"));
            json_object_object_add(o, "trained_tokens", json_object_new_int64(trained));
        }
        dsk_buf_clear(&line);
        dsk_json_append(o, &line);
        dsk_buf_addc(&line, '\n');
        fwrite(line.data, 1, line.len, out);
        json_object_put(o);
    }
    dskt_record_free(&rec);
    dsk_buf_free(&line);
    dskt_reader_close(&r);
    if (in != stdin)
        fclose(in);
    if (rc)
        dsk_die_err(&err);
    return 0;
}

static int cmd_decode(args *a, int argc, char **argv)
{
    if (argc > 1)
        dsk_usage_error("decode takes at most one FILE");
    dsk_tokenizer t;
    load_tokenizer(&t, a->tokenizer);
    dsk_outfile out;
    dsk_err err = {0};
    if (dsk_outfile_open(&out, a->output, &err))
        dsk_die_err(&err);
    if (!a->ids) {
        decode_stream(a, &t, argc ? argv[0] : "-", out.fp);
        dsk_tokenizer_free(&t);
        if (dsk_outfile_commit(&out, &err))
            dsk_die_err(&err);
        return 0;
    }
    dsk_reader r;
    int rc = dsk_reader_open(&r, argc ? argv[0] : "-", (size_t)1 << 30, &err);
    uint32_t *ids = NULL;
    size_t cap = 0;
    dsk_buf text = {0};
    const char *line;
    size_t len;
    while (!rc && (rc = dsk_reader_next(&r, '\n', &line, &len, &err)) == 1) {
        size_t n = 0;
        rc = 0;
        /* ids separated by spaces or tabs; a CRLF line's CR is white space too */
        for (size_t i = 0; i < len;) {
            while (i < len && (line[i] == ' ' || line[i] == '\t' || (line[i] == '\r' && i + 1 == len)))
                i++;
            if (i == len)
                break;
            uint64_t v = 0;
            size_t start = i;
            while (i < len && line[i] >= '0' && line[i] <= '9') {   /* every digit; the value saturates */
                v = v < DSK_BPE_MAX_VOCAB ? v * 10 + (uint64_t)(line[i] - '0') : v;
                i++;
            }
            int ends = i == len || line[i] == ' ' || line[i] == '\t' || (line[i] == '\r' && i + 1 == len);
            if (i == start || !ends) {
                size_t bad = i == start ? i : start, w = 0;
                while (bad + w < len && w < 20 && line[bad + w] != ' ' && line[bad + w] != '\t')
                    w++;
                if (r.record_no == 1 && len >= 4 && !memcmp(line, "DSKT", 4)) {
                    rc = dsk_fail(&err, EX_DATAERR, "%s: a .dskt stream, not text ids: decode it without --ids", r.name);
                    break;
                }
                dsk_buf shown = {0};
                dsk_utf8_repair(line + bad, w, &shown);
                rc = dsk_fail(&err, EX_DATAERR, "%s:%llu: column %zu: '%.*s' is not a token id", r.name,
                              (unsigned long long)r.record_no, bad + 1, (int)shown.len, shown.data ? shown.data : "");
                dsk_buf_free(&shown);
                break;
            }
            if (v >= t.n_vocab) {
                rc = dsk_fail(&err, EX_DATAERR, "%s:%llu: column %zu: token id %.*s is not below the vocab size %u",
                              r.name, (unsigned long long)r.record_no, start + 1, (int)(i - start), line + start,
                              t.n_vocab);
                break;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                ids = dsk_xrealloc(ids, cap * sizeof *ids);
            }
            ids[n++] = (uint32_t)v;
        }
        if (rc)
            break;
        dsk_buf_clear(&text);
        if (a->raw) {
            rc = dsk_bpe_decode(&t, ids, n, &text, &err);
        } else {  /* the same JSON line as a decoded .dskt record */
            struct json_object *o = json_object_new_object();
            if ((rc = add_text(o, "text", &t, ids, n, &err)) == 0) {
                dsk_json_append(o, &text);
                dsk_buf_addc(&text, '\n');
            }
            json_object_put(o);
        }
        if (rc) {
            char msg[sizeof err.msg];
            snprintf(msg, sizeof msg, "%s", err.msg);
            dsk_fail(&err, rc, "%s:%llu: %s", r.name, (unsigned long long)r.record_no, msg);
            break;
        }
        fwrite(text.data ? text.data : "", 1, text.len, out.fp);
    }
    if (rc == 1 || rc == 0)
        rc = dsk_outfile_commit(&out, &err);
    dsk_reader_close(&r);
    free(ids);
    dsk_buf_free(&text);
    dsk_tokenizer_free(&t);
    if (rc)
        dsk_die_err(&err);
    return 0;
}

static int cmd_info(args *a)
{
    dsk_tokenizer t;
    load_tokenizer(&t, a->tokenizer);
    char fp[33];
    dsk_tokenizer_fingerprint(&t, fp);
    uint32_t used = 0;
    for (uint32_t i = 0; i < t.n_vocab; i++)
        used += t.tok[i] != 0;
    printf("vocab_size: %u\n", t.n_vocab);
    printf("tokens: %u (%zu special)\n", used, t.n_specials);
    printf("fingerprint: %s\n", fp);
    printf("pattern: %s\n", t.pattern);
    for (uint32_t i = 0; i < t.n_vocab; i++)
        if (t.is_special[i]) {
            size_t len;
            const char *b = dsk_tokenizer_bytes(&t, i, &len);
            printf("special: %u %.*s\n", i, (int)len, b);
        }
    dsk_tokenizer_free(&t);
    return 0;
}

typedef struct count_ctx {
    dsk_bpe_counts *c;
    const void *re;
    void *match_data;
} count_ctx;

static int count_text(void *ctx, const char *text, size_t len, dsk_err *err)
{
    count_ctx *k = ctx;
    return dsk_bpe_counts_add_text(k->c, k->re, k->match_data, text, len, err);
}

/* Counts the pre-tokens of every text in the inputs: a document's text
 * field, or its preference texts, and each message's content.  A record
 * encode would refuse (none of them, a preference without all three, an
 * empty "messages", an unknown split) is an error here too: a mistyped
 * --field must not train a tokenizer on nothing. */
static void count_inputs(args *a, char **argv, const dsk_tokenizer *pat, dsk_bpe_counts *c)
{
    dsk_err err = {0};
    dsk_bpe_encoder enc;  /* for its match data */
    dsk_bpe_encoder_init(&enc, pat);
    dsk_buf repaired = {0};
    dsk_record_source src;
    dsk_record_source_init(&src, (const char *const *)argv, &a->records, a->max_record);
    const char *text;
    size_t len, input;
    uint64_t line_no;
    int rc;
    while ((rc = dsk_record_source_next(&src, &text, &len, &line_no, &input, &err)) == 1) {
        rc = 0;
        if (dsk_utf8_find_invalid(text, len) < len) {
            dsk_buf_clear(&repaired);
            dsk_utf8_repair(text, len, &repaired);
            text = repaired.data;
            len = repaired.len;
        }
        if (a->records.mode != DSK_REC_JSONL) {
            rc = dsk_bpe_counts_add_text(c, pat->re, enc.match_data, text, len, &err);
        } else {
            char why[160];
            struct json_object *doc = dsk_json_parse(text, len, why, sizeof why);
            if (!dsk_json_is(doc, json_type_object)) {
                rc = dsk_fail(&err, EX_DATAERR, "%s:%llu: %s", src.reader.name, (unsigned long long)line_no,
                              doc ? "a document must be a JSON object" : why);
            } else {
                count_ctx k = {c, pat->re, enc.match_data};
                rc = dsk_bpe_document_texts(doc, a->field, count_text, &k, &err);
                if (rc) {
                    char msg[sizeof err.msg];
                    snprintf(msg, sizeof msg, "%s", err.msg);
                    rc = dsk_fail(&err, rc, "%s:%llu: %s", src.reader.name, (unsigned long long)line_no, msg);
                }
            }
            if (doc)
                json_object_put(doc);
        }
        if (rc)
            break;
    }
    dsk_record_source_free(&src);
    dsk_buf_free(&repaired);
    dsk_bpe_encoder_free(&enc);
    if (rc)
        dsk_die_err(&err);
}

static const char *pattern_of(const char *name_or_regex)
{
    const char *p = name_or_regex ? name_or_regex : "cl100k";
    const char *named = dsk_bpe_named_pattern(p);
    return named ? named : p;
}

static void report_pruning(const dsk_bpe_counts *c)
{
    if (c->pruned_words)
        dsk_warn("memory bound: pruned %llu rare pre-tokens (%llu occurrences); kept counts are low by at most %llu",
                 (unsigned long long)c->pruned_words, (unsigned long long)c->pruned_occurrences,
                 (unsigned long long)c->prune_error);
}

static int cmd_count(args *a, int argc, char **argv)
{
    if (!a->output)
        dsk_usage_error("count: -o counts.bin is required");
    dsk_tokenizer pat;  /* only its regex */
    dsk_tokenizer_init(&pat);
    dsk_err err = {0};
    const char *pattern = pattern_of(a->pattern);
    if (dsk_tokenizer_set_pattern(&pat, pattern, &err))
        dsk_usage_error("--pattern: %s", err.msg);
    dsk_bpe_counts c;
    dsk_bpe_counts_init(&c, (size_t)a->max_words);
    (void)argc;
    count_inputs(a, argv, &pat, &c);
    if (c.n == 0)   /* as train: counts of nothing are a mistake upstream */
        dsk_die(EX_DATAERR, "the inputs hold no text to count");
    report_pruning(&c);
    dsk_outfile out;
    int rc = dsk_outfile_open(&out, a->output, &err);
    if (!rc && !(rc = dsk_bpe_counts_write(&c, pattern, out.fp, &err)))
        rc = dsk_outfile_commit(&out, &err);
    dsk_bpe_counts_free(&c);
    dsk_tokenizer_free(&pat);
    if (rc)
        dsk_die_err(&err);
    return 0;
}

static int cmd_train(args *a, int argc, char **argv)
{
    if (!a->output)
        dsk_usage_error("train: -o tokenizer.json is required");
    if (!a->vocab_size)
        dsk_usage_error("train: --vocab-size is required");
    /* the defaults first, then --special tokens not already there */
    const char **specials = dsk_xcalloc(5 + a->n_specials, sizeof *specials);
    size_t n = 0;
    for (int i = 0; i < 5; i++)
        specials[n++] = dsk_bpe_default_specials[i];
    for (size_t i = 0; i < a->n_specials; i++) {
        int dup = 0;
        for (size_t k = 0; k < n; k++)
            dup |= strcmp(specials[k], a->specials[i]) == 0;
        if (!dup)
            specials[n++] = a->specials[i];
    }
    if (a->vocab_size < 256 + n)
        dsk_usage_error("--vocab-size %u leaves no room: 256 bytes and %zu special tokens come first (at least %zu)",
                        a->vocab_size, n, 256 + n);
    dsk_err err = {0};
    dsk_bpe_counts c;
    dsk_bpe_counts_init(&c, (size_t)a->max_words);
    const char *pattern = a->pattern ? pattern_of(a->pattern) : NULL;
    char *from_counts = NULL;
    for (size_t i = 0; i < a->n_counts; i++) {
        char *p = NULL;
        if (dsk_bpe_counts_read(&c, a->counts[i], &p, &err)) {
            free(p);
            dsk_die_err(&err);
        }
        if (from_counts && strcmp(from_counts, p) != 0)
            dsk_die(EX_DATAERR, "%s: counted with another pattern than %s", a->counts[i], a->counts[0]);
        free(from_counts);
        from_counts = p;
    }
    if (from_counts && pattern && strcmp(pattern, from_counts) != 0)
        dsk_die(EX_USAGE, "--pattern differs from the pattern the counts were made with");
    if (!pattern)
        pattern = from_counts ? from_counts : pattern_of(NULL);
    dsk_tokenizer pat;
    dsk_tokenizer_init(&pat);
    if (dsk_tokenizer_set_pattern(&pat, pattern, &err))
        dsk_usage_error("--pattern: %s", err.msg);
    if (argc > 0 || !a->n_counts)
        count_inputs(a, argv, &pat, &c);
    if (c.n == 0)   /* no text at all (an empty input, stdin left unset by a script): no tokenizer */
        dsk_die(EX_DATAERR, "the inputs hold no text to train on");
    report_pruning(&c);
    dsk_bpe_train_opts o = {a->vocab_size, a->min_frequency, specials, n, pattern, 1};
    dsk_tokenizer t;
    int rc = dsk_bpe_train(&c, &o, &t, &err);
    dsk_outfile out;
    if (!rc)
        rc = dsk_outfile_open(&out, a->output, &err);
    if (!rc)
        rc = write_tokenizer(&t, &out, a->output, &err);
    if (!rc && t.n_vocab < a->vocab_size)
        dsk_warn("stopped at %u tokens: no pair is left with a count of at least %llu", t.n_vocab,
                 (unsigned long long)a->min_frequency);
    free(specials);
    free(from_counts);
    dsk_tokenizer_free(&t);
    dsk_tokenizer_free(&pat);
    dsk_bpe_counts_free(&c);
    if (rc)
        dsk_die_err(&err);
    return 0;
}

/* Where each option applies: one given to a command that does not use it
 * is a usage error (encode --pattern would not change the tokenizer's). */
enum { FOR_IMPORT = 1, FOR_TRAIN = 2, FOR_COUNT = 4, FOR_ENCODE = 8, FOR_DECODE = 16, FOR_INFO = 32 };
static const dsk_option_scope option_scope[] = {
    {'t', "-t", FOR_ENCODE | FOR_DECODE | FOR_INFO},
    {'o', "-o", FOR_IMPORT | FOR_TRAIN | FOR_COUNT | FOR_ENCODE | FOR_DECODE},
    {'j', "-j", FOR_ENCODE},
    {OPT_TIKTOKEN, "--tiktoken", FOR_IMPORT},
    {OPT_GPT2, "--gpt2", FOR_IMPORT},
    {OPT_PATTERN, "--pattern", FOR_IMPORT | FOR_TRAIN | FOR_COUNT},
    {OPT_SPECIAL, "--special", FOR_IMPORT | FOR_TRAIN},
    {OPT_IDS, "--ids", FOR_ENCODE | FOR_DECODE},
    {OPT_RECORDS, "--records", FOR_TRAIN | FOR_COUNT | FOR_ENCODE},
    {OPT_FIELD, "--field", FOR_TRAIN | FOR_COUNT | FOR_ENCODE},
    {OPT_ALLOW_SPECIAL, "--allow-special", FOR_ENCODE},
    {OPT_RAW, "--raw", FOR_DECODE},
    {OPT_VOCAB_SIZE, "--vocab-size", FOR_TRAIN},
    {OPT_MIN_FREQUENCY, "--min-frequency", FOR_TRAIN},
    {OPT_MAX_WORDS, "--max-words", FOR_TRAIN | FOR_COUNT},
    {OPT_COUNTS, "--counts", FOR_TRAIN},
    {OPT_MAX_RECORD, "--max-record-bytes", FOR_TRAIN | FOR_COUNT | FOR_ENCODE},
};

int main(int argc, char **argv)
{
    dsk_set_progname(argv[0]);
    dsk_signals_init();
    args a = {.field = "text", .min_frequency = 2, .max_words = 20000000, .threads = dsk_default_threads(),
              .max_record = (size_t)64 << 20};
    a.records.mode = DSK_REC_JSONL;
    dsk_err err = {0};
    int opt;
    unsigned char given[OPT_MAX_RECORD + 1] = {0};
    while ((opt = getopt_long(argc, argv, ":t:o:j:hV", long_options, NULL)) != -1) {
        if (opt > 0 && opt <= OPT_MAX_RECORD)
            given[opt] = 1;
        switch (opt) {
        case 't': a.tokenizer = optarg; break;
        case 'o': a.output = optarg; break;
        case 'j': a.threads = (int)dsk_parse_int("--threads", optarg, 1, 256); break;
        case OPT_TIKTOKEN: a.tiktoken = optarg; break;
        case OPT_GPT2: a.gpt2 = 1; break;
        case OPT_PATTERN: a.pattern = optarg; break;
        case OPT_SPECIAL:
            if (dsk_utf8_find_invalid(optarg, strlen(optarg)) < strlen(optarg))
                dsk_usage_error("--special: not UTF-8 text");
            if (!optarg[0])
                dsk_usage_error("--special: an empty token");
            a.specials = dsk_xrealloc(a.specials, (a.n_specials + 1) * sizeof *a.specials);
            a.specials[a.n_specials++] = optarg;
            break;
        case OPT_IDS: a.ids = 1; break;
        case OPT_RECORDS:
            if (dsk_records_spec_parse(&a.records, optarg, &err))
                dsk_usage_error("%s", err.msg);
            break;
        case OPT_FIELD: a.field = optarg; break;
        case OPT_ALLOW_SPECIAL: a.allow_special = 1; break;
        case OPT_RAW: a.raw = 1; break;
        case OPT_VOCAB_SIZE: a.vocab_size = (uint32_t)dsk_parse_int("--vocab-size", optarg, 256, DSK_BPE_MAX_VOCAB); break;
        case OPT_MIN_FREQUENCY: a.min_frequency = (uint64_t)dsk_parse_int("--min-frequency", optarg, 1, INT64_MAX); break;
        case OPT_MAX_WORDS: a.max_words = (uint64_t)dsk_parse_int("--max-words", optarg, 1024, 1LL << 31); break;
        case OPT_MAX_RECORD:
            a.max_record = (size_t)dsk_parse_size("--max-record-bytes", optarg);
            if (a.max_record == 0)
                dsk_usage_error("--max-record-bytes: at least 1 byte");
            break;
        case OPT_COUNTS:
            a.counts = dsk_xrealloc(a.counts, (a.n_counts + 1) * sizeof *a.counts);
            a.counts[a.n_counts++] = optarg;
            break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': dsk_print_version(); return 0;
        default: dsk_usage_bad_option(opt, argv, long_options);
        }
    }
    if (optind >= argc)
        dsk_usage_error("a command is required: import, train, count, encode, decode or info");
    const char *cmd = argv[optind++];
    static const char *const cmd_names[] = {"import", "train", "count", "encode", "decode", "info"};
    for (int k = 0; k < 6; k++)
        if (strcmp(cmd, cmd_names[k]) == 0) {
            char what[32];
            snprintf(what, sizeof what, "dsk-bpe %s", cmd);
            dsk_check_option_scope(option_scope, sizeof option_scope / sizeof *option_scope, given, 1u << k, what);
        }
    int rest = argc - optind;
    char **files = argv + optind;
    int rc;
    if (strcmp(cmd, "import") == 0)
        rc = cmd_import(&a, rest, files);
    else if (strcmp(cmd, "encode") == 0)
        rc = cmd_encode(&a, rest, files);
    else if (strcmp(cmd, "decode") == 0)
        rc = cmd_decode(&a, rest, files);
    else if (strcmp(cmd, "info") == 0)
        rc = cmd_info(&a);
    else if (strcmp(cmd, "train") == 0)
        rc = cmd_train(&a, rest, files);
    else if (strcmp(cmd, "count") == 0)
        rc = cmd_count(&a, rest, files);
    else
        dsk_usage_error("unknown command '%s' (import, train, count, encode, decode, info)", cmd);
    free(a.specials);
    free(a.counts);
    dsk_records_spec_free(&a.records);
    if (rc)
        dsk_failing();   /* reported: the status stands */
    return rc;
}
