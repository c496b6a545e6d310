/* json_walk SCHEMA.json SEED COUNT [ordered]: COUNT random texts the JSON
 * automaton (text/json_prefix.h) accepts whole under the schema, one a
 * line, each written as a JSON string (the text may hold newlines), for
 * checking against an independent validator
 * (tests/cli/test_json_schema.sh).  SCHEMA.json "-": no schema, any JSON
 * value.  "ordered": objects' keys in the order of their properties
 * (dsk_json_schema_order_keys).
 *
 * Each text is a random walk: at every byte, one of the bytes the
 * automaton takes, drawn uniformly; past 64 bytes the walk prefers bytes
 * that close something (quotes, brackets, and digits' ends), so texts
 * finish.  A walk that reaches 20000 bytes is counted and retried (the
 * count goes to stderr); a state that takes no byte is an error: the
 * automaton must never walk into a value it cannot finish. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/rng.h"
#include "text/json_prefix.h"
#include "text/json_schema.h"

static void put_json_string(const char *p, size_t n)
{
    struct json_object *s = json_object_new_string_len(p, (int)n);
    dsk_buf b = {0};
    dsk_json_append(s, &b);
    fwrite(b.data, 1, b.len, stdout);
    putchar('\n');
    dsk_buf_free(&b);
    json_object_put(s);
}

int main(int argc, char **argv)
{
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "ordered") == 0)) {
        fprintf(stderr, "usage: json_walk SCHEMA.json|- SEED COUNT [ordered]\n");
        return EX_USAGE;
    }
    dsk_err err = {0};
    dsk_json_schema *schema = NULL;
    if (strcmp(argv[1], "-") != 0) {
        dsk_buf text = {0};
        if (dsk_read_file(argv[1], 1 << 24, &text, &err))
            dsk_die_err(&err);
        char msg[512];
        struct json_object *doc = dsk_json_parse(text.data, text.len, msg, sizeof msg);
        if (!doc) {
            fprintf(stderr, "json_walk: %s: %s\n", argv[1], msg);
            return EX_DATAERR;
        }
        if (!(schema = dsk_json_schema_compile(doc, msg, sizeof msg))) {
            fprintf(stderr, "json_walk: %s: %s\n", argv[1], msg);
            return EX_DATAERR;
        }
        json_object_put(doc);
        dsk_buf_free(&text);
        if (argc == 5)
            dsk_json_schema_order_keys(schema);
    }
    dsk_rng rng;
    dsk_rng_seed(&rng, strtoull(argv[2], NULL, 10));
    long count = atol(argv[3]), retries = 0;
    static const char closers[] = "\"}]0123456789el";
    dsk_buf out = {0};
    for (long made = 0; made < count;) {
        dsk_json_prefix s;
        if (schema)
            dsk_json_prefix_init_schema(&s, schema);
        else
            dsk_json_prefix_init(&s, 0);
        dsk_buf_clear(&out);
        int ok = 0;
        while (out.len < 20000) {
            if (dsk_json_prefix_complete(&s) && (out.len > 64 || dsk_rng_uniform(&rng) < 0.2)) {
                ok = 1;
                break;
            }
            unsigned char take[256];
            int n = 0, n_close = 0;
            unsigned char close[256];
            for (int c = 1; c < 256; c++) {
                dsk_json_prefix t;
                dsk_json_prefix_copy(&t, &s);
                if (dsk_json_prefix_feed(&t, (unsigned char)c)) {
                    take[n++] = (unsigned char)c;
                    if (strchr(closers, c))
                        close[n_close++] = (unsigned char)c;
                }
            }
            if (!n && dsk_json_prefix_complete(&s)) {   /* whole, and only the end may follow */
                ok = 1;
                break;
            }
            if (!n) {
                fprintf(stderr, "json_walk: a dead end: no byte can follow %.*s%s\n",
                        (int)(out.len > 400 ? 400 : out.len), out.data, out.len > 400 ? "..." : "");
                return EX_SOFTWARE;
            }
            unsigned char c = out.len > 64 && n_close && dsk_rng_uniform(&rng) < 0.9
                                  ? close[dsk_rng_next(&rng) % (uint64_t)n_close]
                                  : take[dsk_rng_next(&rng) % (uint64_t)n];
            if (!dsk_json_prefix_feed(&s, c)) {
                fprintf(stderr, "json_walk: the automaton refused a byte it had taken on a copy\n");
                return EX_SOFTWARE;
            }
            dsk_buf_addc(&out, (char)c);
        }
        if (!ok) {
            retries++;
            continue;
        }
        put_json_string(out.data, out.len);
        made++;
    }
    fprintf(stderr, "json_walk: %ld texts, %ld walks abandoned\n", count, retries);
    dsk_buf_free(&out);
    dsk_json_schema_free(schema);
    return 0;
}
