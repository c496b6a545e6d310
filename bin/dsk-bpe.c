/* dsk-bpe: byte-level BPE tokenizers: import, encode, decode, info.
 * See dsk-bpe(1). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe/formats.h"
#include "core/cli.h"
#include "core/json.h"
#include "core/outfile.h"
#include "core/reader.h"
#include "text/records.h"
#include "text/utf8.h"

static const char usage[] =
    "Usage: dsk-bpe import (--tiktoken FILE --pattern NAME|REGEX [--special TOKEN=ID]... |\n"
    "                       --gpt2 ENCODER.JSON VOCAB.BPE) -o tokenizer.json\n"
    "       dsk-bpe encode -t tokenizer.json --ids [--records MODE] [--field NAME] [--allow-special] [FILE]...\n"
    "       dsk-bpe decode -t tokenizer.json --ids [--raw] [FILE]\n"
    "       dsk-bpe info -t tokenizer.json\n"
    "Byte-level BPE tokenizers in Hugging Face tokenizer.json form.\n"
    "\n"
    "  -t, --tokenizer FILE  the tokenizer.json to use\n"
    "      --tiktoken FILE   import a tiktoken rank file (.tiktoken)\n"
    "      --gpt2            import GPT-2's encoder.json and vocab.bpe (two arguments)\n"
    "      --pattern P       pre-tokenizer: gpt2, cl100k, o200k or a regex\n"
    "      --special T=ID    a special token and its id (repeatable)\n"
    "      --ids             encode: one line of space-separated ids per document;\n"
    "                        decode: read such lines\n"
    "      --records MODE    encode input: jsonl (default), lines, paragraphs, nul, regex:RE\n"
    "      --field NAME      JSONL field holding the text (default: text)\n"
    "      --allow-special   encode special-token text as the special token\n"
    "      --raw             decode to plain text instead of JSON Lines\n"
    "  -o, --output FILE     write to FILE (atomically) instead of stdout\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 74 I/O error.\n";

enum { OPT_TIKTOKEN = 256, OPT_GPT2, OPT_PATTERN, OPT_SPECIAL, OPT_IDS, OPT_RECORDS, OPT_FIELD, OPT_ALLOW_SPECIAL,
       OPT_RAW };

static const struct option long_options[] = {
    {"tokenizer", required_argument, NULL, 't'}, {"tiktoken", required_argument, NULL, OPT_TIKTOKEN},
    {"gpt2", no_argument, NULL, OPT_GPT2},       {"pattern", required_argument, NULL, OPT_PATTERN},
    {"special", required_argument, NULL, OPT_SPECIAL}, {"ids", no_argument, NULL, OPT_IDS},
    {"records", required_argument, NULL, OPT_RECORDS}, {"field", required_argument, NULL, OPT_FIELD},
    {"allow-special", no_argument, NULL, OPT_ALLOW_SPECIAL}, {"raw", no_argument, NULL, OPT_RAW},
    {"output", required_argument, NULL, 'o'},    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
};

typedef struct args {
    const char *tokenizer, *tiktoken, *pattern, *output, *field;
    int gpt2, ids, allow_special, raw;
    char **specials;
    size_t n_specials;
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
    if (!rc && (rc = dsk_bpe_write_json(&t, out.fp, &err)) == 0)
        rc = dsk_outfile_commit(&out, &err);
    dsk_tokenizer_free(&t);
    if (rc)
        dsk_die_err(&err);
    return 0;
}

static int cmd_encode(args *a, int argc, char **argv)
{
    if (!a->ids)
        dsk_usage_error("encode: only --ids output exists so far (the .dskt stream is not written yet)");
    dsk_tokenizer t;
    load_tokenizer(&t, a->tokenizer);
    dsk_bpe_encoder enc;
    dsk_bpe_encoder_init(&enc, &t);
    dsk_outfile out;
    dsk_err err = {0};
    if (dsk_outfile_open(&out, a->output, &err))
        dsk_die_err(&err);
    static char *stdin_only[] = {"-", NULL};
    if (argc == 0) {
        argv = stdin_only;
        argc = 1;
    }
    dsk_buf line = {0}, repaired = {0};
    int rc = 0;
    for (int f = 0; f < argc && !rc; f++) {
        dsk_reader r;
        if ((rc = dsk_reader_open(&r, argv[f], (size_t)64 << 20, &err)))
            break;
        dsk_records rs;
        dsk_records_init(&rs, &a->records, &r);
        const char *rec;
        size_t len;
        uint64_t line_no;
        while ((rc = dsk_records_next(&rs, &rec, &len, &line_no, &err)) == 1) {
            const char *text = rec;
            size_t tlen = len;
            struct json_object *obj = NULL;
            if (dsk_utf8_find_invalid(rec, len) < len) {
                dsk_buf_clear(&repaired);
                dsk_utf8_repair(rec, len, &repaired);
                text = repaired.data;
                tlen = repaired.len;
            }
            if (a->records.mode == DSK_REC_JSONL) {
                char why[160];
                obj = dsk_json_parse(text, tlen, why, sizeof why);
                struct json_object *field = obj ? dsk_json_get_string(obj, a->field) : NULL;
                if (!field) {
                    rc = dsk_fail(&err, EX_DATAERR, "%s:%llu: %s", r.name, (unsigned long long)line_no,
                                  obj ? "no string text field" : why);
                    if (obj)
                        json_object_put(obj);
                    break;
                }
                text = json_object_get_string(field);
                tlen = (size_t)json_object_get_string_len(field);
            }
            enc.n_ids = 0;
            rc = dsk_bpe_encode(&t, &enc, text, tlen, a->allow_special, &err);
            if (obj)
                json_object_put(obj);
            if (rc)
                break;
            /* ids as decimals; by hand, as printf dominated the profile */
            dsk_buf_clear(&line);
            dsk_buf_reserve(&line, enc.n_ids * 9 + 1);
            char *o = line.data;
            for (size_t i = 0; i < enc.n_ids; i++) {
                char digits[10];
                int k = 0;
                uint32_t v = enc.ids[i];
                do
                    digits[k++] = (char)('0' + v % 10);
                while ((v /= 10) != 0);
                if (i)
                    *o++ = ' ';
                while (k)
                    *o++ = digits[--k];
            }
            *o++ = '\n';
            line.len = (size_t)(o - line.data);
            fwrite(line.data, 1, line.len, out.fp);
        }
        if (rc == 1)
            rc = 0;
        dsk_records_free(&rs);
        dsk_reader_close(&r);
    }
    dsk_buf_free(&line);
    dsk_buf_free(&repaired);
    dsk_bpe_encoder_free(&enc);
    dsk_tokenizer_free(&t);
    if (!rc)
        rc = dsk_outfile_commit(&out, &err);
    if (rc)
        dsk_die_err(&err);
    return 0;
}

static int cmd_decode(args *a, int argc, char **argv)
{
    if (!a->ids)
        dsk_usage_error("decode: only --ids input exists so far (the .dskt stream is not read yet)");
    if (argc > 1)
        dsk_usage_error("decode takes at most one FILE");
    dsk_tokenizer t;
    load_tokenizer(&t, a->tokenizer);
    dsk_outfile out;
    dsk_err err = {0};
    if (dsk_outfile_open(&out, a->output, &err))
        dsk_die_err(&err);
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
        for (size_t i = 0; i < len;) {
            while (i < len && line[i] == ' ')
                i++;
            if (i == len)
                break;
            uint64_t v = 0;
            size_t start = i;
            while (i < len && line[i] >= '0' && line[i] <= '9' && v < DSK_BPE_MAX_VOCAB)
                v = v * 10 + (uint64_t)(line[i++] - '0');
            if (i == start || (i < len && line[i] != ' ') || v >= t.n_vocab) {
                rc = dsk_fail(&err, EX_DATAERR, "%s:%llu: expected token ids below %u", r.name,
                              (unsigned long long)r.record_no, t.n_vocab);
                break;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                ids = dsk_xrealloc(ids, cap * sizeof *ids);
            }
            ids[n++] = (uint32_t)v;
        }
        dsk_buf_clear(&text);
        if (!rc && (rc = dsk_bpe_decode(&t, ids, n, &text, &err)) != 0) {
            char msg[sizeof err.msg];
            snprintf(msg, sizeof msg, "%s", err.msg);
            dsk_fail(&err, rc, "%s:%llu: %s", r.name, (unsigned long long)r.record_no, msg);
        }
        if (rc)
            break;
        if (a->raw) {
            fwrite(text.data ? text.data : "", 1, text.len, out.fp);
        } else {
            /* JSON needs valid UTF-8: ids that split a character are shown repaired */
            dsk_buf valid = {0};
            dsk_utf8_repair(text.data ? text.data : "", text.len, &valid);
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "text", json_object_new_string_len(valid.data ? valid.data : "", (int)valid.len));
            dsk_buf_clear(&valid);
            dsk_json_append(o, &valid);
            dsk_buf_addc(&valid, '\n');
            fwrite(valid.data, 1, valid.len, out.fp);
            json_object_put(o);
            dsk_buf_free(&valid);
        }
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

int main(int argc, char **argv)
{
    dsk_set_progname(argv[0]);
    dsk_signals_init();
    args a = {.field = "text"};
    a.records.mode = DSK_REC_JSONL;
    dsk_err err = {0};
    int opt;
    while ((opt = getopt_long(argc, argv, "t:o:hV", long_options, NULL)) != -1) {
        switch (opt) {
        case 't': a.tokenizer = optarg; break;
        case 'o': a.output = optarg; break;
        case OPT_TIKTOKEN: a.tiktoken = optarg; break;
        case OPT_GPT2: a.gpt2 = 1; break;
        case OPT_PATTERN: a.pattern = optarg; break;
        case OPT_SPECIAL:
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
        case 'h': fputs(usage, stdout); return 0;
        case 'V': dsk_print_version(); return 0;
        default: dsk_usage_error("unknown option");
        }
    }
    if (optind >= argc)
        dsk_usage_error("a command is required: import, encode, decode or info");
    const char *cmd = argv[optind++];
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
    else
        dsk_usage_error("unknown command '%s' (import, encode, decode, info)", cmd);
    free(a.specials);
    dsk_records_spec_free(&a.records);
    return rc;
}
