#include "bpe/formats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpe/dskt.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/reader.h"
#include "text/utf8.h"

/* ---- GPT-2 byte-level unicode ------------------------------------------------------ */

/* Printable Latin-1 bytes map to themselves; the other 68 bytes, in order,
 * to U+0100 onwards (GPT-2's bytes_to_unicode). */
uint32_t dsk_bpe_byte_to_unicode(uint8_t b)
{
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE))
        return b;
    uint32_t n = 0;
    for (uint32_t x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE)))
            n++;
    return 256 + n;
}

static uint32_t byte_map[256];
static int16_t unicode_map[512];  /* code point -> byte, -1 if none */

static void init_maps(void)
{
    static int done;
    if (done)
        return;
    for (int i = 0; i < 512; i++)
        unicode_map[i] = -1;
    for (int b = 0; b < 256; b++) {
        byte_map[b] = dsk_bpe_byte_to_unicode((uint8_t)b);
        unicode_map[byte_map[b]] = (int16_t)b;
    }
    done = 1;
}

void dsk_bpe_bytes_to_unicode(const char *bytes, size_t n, dsk_buf *out)
{
    init_maps();
    for (size_t i = 0; i < n; i++) {
        char enc[4];
        size_t l = dsk_utf8_encode(byte_map[(uint8_t)bytes[i]], enc);
        dsk_buf_add(out, enc, l);
    }
}

int dsk_bpe_unicode_to_bytes(const char *s, size_t n, dsk_buf *out)
{
    init_maps();
    size_t i = 0;
    while (i < n) {
        size_t l = dsk_utf8_seq_len((const uint8_t *)s + i, n - i);
        if (!l)
            return -1;
        size_t dl;
        uint32_t cp = dsk_utf8_decode((const uint8_t *)s + i, &dl);
        if (cp >= 512 || unicode_map[cp] < 0)
            return -1;
        dsk_buf_addc(out, (char)unicode_map[cp]);
        i += l;
    }
    return 0;
}

/* ---- tiktoken -------------------------------------------------------------------------- */

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 with padding; returns -1 on bad input. */
static int b64_decode(const char *s, size_t n, dsk_buf *out)
{
    if (n == 0 || n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_value(s[i + k])) < 0) {
                return -1;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        char b[3] = {(char)(x >> 16), (char)(x >> 8), (char)x};
        dsk_buf_add(out, b, 3 - (size_t)pad);
    }
    return 0;
}

int dsk_bpe_load_tiktoken(dsk_tokenizer *t, const char *path, dsk_err *err)
{
    dsk_reader r;
    int rc = dsk_reader_open(&r, path, 1 << 16, err);
    if (rc)
        return rc;
    const char *line;
    size_t len;
    dsk_buf bytes = {0};
    while ((rc = dsk_reader_next(&r, '\n', &line, &len, err)) == 1) {
        if (len == 0)
            continue;
        const char *sp = memchr(line, ' ', len);
        char *end;
        dsk_buf_clear(&bytes);
        unsigned long rank = 0;
        char num[16];
        size_t nl = sp ? len - (size_t)(sp - line) - 1 : 0;
        if (sp && nl > 0 && nl < sizeof num) {
            memcpy(num, sp + 1, nl);
            num[nl] = '\0';
            rank = strtoul(num, &end, 10);
        }
        if (!sp || nl == 0 || nl >= sizeof num || *end || b64_decode(line, (size_t)(sp - line), &bytes)) {
            rc = dsk_fail(err, EX_DATAERR, "%s:%llu: expected 'BASE64 RANK'", path, (unsigned long long)r.record_no);
            break;
        }
        if (rank >= DSK_BPE_MAX_VOCAB) {   /* before the cast to 32 bits */
            rc = dsk_fail(err, EX_DATAERR, "%s:%llu: rank %lu is over the limit of %u", path,
                          (unsigned long long)r.record_no, rank, DSK_BPE_MAX_VOCAB);
            break;
        }
        if ((rc = dsk_tokenizer_add(t, (uint32_t)rank, bytes.data, bytes.len, err))) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            dsk_fail(err, rc, "%s:%llu: %s", path, (unsigned long long)r.record_no, msg);
            break;
        }
    }
    dsk_buf_free(&bytes);
    dsk_reader_close(&r);
    return rc == 0 || rc == 1 ? 0 : rc;
}

/* ---- whole files as JSON ------------------------------------------------------------------ */

static struct json_object *load_json_file(const char *path, const char *what, dsk_err *err)
{
    dsk_reader r;
    if (dsk_reader_open(&r, path, (size_t)1 << 30, err))
        return NULL;
    dsk_buf all = {0};
    const char *chunk;
    size_t len;
    int rc;
    while ((rc = dsk_reader_next(&r, '\0', &chunk, &len, err)) == 1)
        dsk_buf_add(&all, chunk, len);
    dsk_reader_close(&r);
    if (rc != 0) {
        dsk_buf_free(&all);
        return NULL;
    }
    /* a JSON text may span lines: parse it whole */
    char msg[160];
    struct json_object *o = dsk_json_parse(all.data ? all.data : "", all.len, msg, sizeof msg);
    if (!o && all.len >= 4 && memcmp(all.data, DSKT_MAGIC, 4) == 0)
        dsk_fail(err, EX_DATAERR, "%s: a .dskt token stream, not %s", path, what);
    else if (!o)
        dsk_fail(err, EX_DATAERR, "%s: not %s (%s)", path, what, msg);
    dsk_buf_free(&all);
    return o;
}

/* ---- GPT-2 ------------------------------------------------------------------------------------ */

int dsk_bpe_load_gpt2(dsk_tokenizer *t, const char *encoder_json, const char *vocab_bpe, dsk_err *err)
{
    struct json_object *enc = load_json_file(encoder_json, "GPT-2's encoder.json", err);
    if (!enc)
        return err->code;
    if (!dsk_json_is(enc, json_type_object)) {
        json_object_put(enc);
        return dsk_fail(err, EX_DATAERR, "%s: expected an object of token -> id", encoder_json);
    }
    dsk_buf bytes = {0};
    int rc = 0;
    json_object_object_foreach(enc, key, val) {
        int64_t id = json_object_get_int64(val);
        if (!dsk_json_is(val, json_type_int) || id < 0 || id >= DSK_BPE_MAX_VOCAB) {
            rc = dsk_fail(err, EX_DATAERR, "%s: token '%s' has no valid id", encoder_json, key);
            break;
        }
        if (strcmp(key, "<|endoftext|>") == 0) {
            rc = dsk_tokenizer_add_special(t, (uint32_t)id, key, err);
        } else {
            dsk_buf_clear(&bytes);
            if (dsk_bpe_unicode_to_bytes(key, strlen(key), &bytes))
                rc = dsk_fail(err, EX_DATAERR, "%s: token '%s' is not in byte-level form", encoder_json, key);
            else
                rc = dsk_tokenizer_add(t, (uint32_t)id, bytes.data, bytes.len, err);
        }
        if (rc)
            break;
    }
    json_object_put(enc);
    /* vocab.bpe: each merge must make a token whose id is above both halves */
    dsk_reader r;
    if (!rc)
        rc = dsk_reader_open(&r, vocab_bpe, 1 << 16, err);
    if (!rc) {
        const char *line;
        size_t len;
        dsk_buf a = {0}, b = {0};
        while ((rc = dsk_reader_next(&r, '\n', &line, &len, err)) == 1) {
            if (r.record_no == 1 && len >= 8 && memcmp(line, "#version", 8) == 0)
                continue;
            if (len == 0)
                continue;
            const char *sp = memchr(line, ' ', len);
            dsk_buf_clear(&a);
            dsk_buf_clear(&b);
            if (!sp || dsk_bpe_unicode_to_bytes(line, (size_t)(sp - line), &a) ||
                dsk_bpe_unicode_to_bytes(sp + 1, len - (size_t)(sp - line) - 1, &b)) {
                rc = dsk_fail(err, EX_DATAERR, "%s:%llu: expected two byte-level tokens", vocab_bpe,
                              (unsigned long long)r.record_no);
                break;
            }
            uint32_t ia = dsk_tokenizer_lookup(t, a.data, a.len), ib = dsk_tokenizer_lookup(t, b.data, b.len);
            dsk_buf_add(&a, b.data, b.len);
            uint32_t im = dsk_tokenizer_lookup(t, a.data, a.len);
            if (ia == DSK_BPE_NO_TOKEN || ib == DSK_BPE_NO_TOKEN || im == DSK_BPE_NO_TOKEN || im <= ia || im <= ib) {
                rc = dsk_fail(err, EX_DATAERR, "%s:%llu: merge does not match encoder.json ids", vocab_bpe,
                              (unsigned long long)r.record_no);
                break;
            }
        }
        dsk_buf_free(&a);
        dsk_buf_free(&b);
        dsk_reader_close(&r);
        if (rc == 1)
            rc = 0;
    }
    dsk_buf_free(&bytes);
    return rc;
}

/* ---- merges from ids ------------------------------------------------------------------------------ */

int dsk_bpe_merge_pair(const dsk_tokenizer *t, uint32_t id, uint32_t *left, uint32_t *right)
{
    size_t n;
    const uint8_t *p = (const uint8_t *)dsk_tokenizer_bytes(t, id, &n);
    if (n < 2 || t->is_special[id])
        return -1;
    /* BPE over the token's bytes with merges below id only */
    size_t small[64], parts = n;
    size_t *pos = n < sizeof small / sizeof small[0] ? small : dsk_xmalloc((n + 1) * sizeof *pos);
    for (size_t i = 0; i <= n; i++)
        pos[i] = i;
    while (parts > 2) {
        size_t best = 0;
        uint32_t best_rank = DSK_BPE_NO_TOKEN;
        for (size_t i = 0; i + 1 < parts; i++) {
            uint32_t r = dsk_tokenizer_lookup(t, p + pos[i], pos[i + 2] - pos[i]);
            if (r < id && r < best_rank) {
                best_rank = r;
                best = i;
            }
        }
        if (best_rank == DSK_BPE_NO_TOKEN)
            break;
        memmove(pos + best + 1, pos + best + 2, (parts - best - 1) * sizeof *pos);
        parts--;
    }
    int rc = -1;
    if (parts == 2) {
        *left = dsk_tokenizer_lookup(t, p, pos[1]);
        *right = dsk_tokenizer_lookup(t, p + pos[1], n - pos[1]);
        rc = *left == DSK_BPE_NO_TOKEN || *right == DSK_BPE_NO_TOKEN ? -1 : 0;
    }
    if (pos != small)
        free(pos);
    return rc;
}

/* ---- tokenizer.json -------------------------------------------------------------------------------- */

static struct json_object *unicode_string(const char *b, size_t n, dsk_buf *tmp)
{
    dsk_buf_clear(tmp);
    dsk_bpe_bytes_to_unicode(b, n, tmp);
    return json_object_new_string_len(tmp->data ? tmp->data : "", (int)tmp->len);
}

/* Two tokens with one key in model.vocab: a special token written as its
 * text, and a token whose byte-level form is that text.  json-c would
 * keep the second, and the file would not load. */
static int vocab_clash(const char *key, uint32_t id, struct json_object *other, dsk_err *err)
{
    return dsk_fail(err, EX_DATAERR,
                    "tokens %lld and %u are both '%.100s' in tokenizer.json's vocab (a special token's text is also "
                    "a learned or imported token's): give the special token a text that is no token's, such as "
                    "<|name|>", (long long)json_object_get_int64(other), id, key);
}

int dsk_bpe_write_json(const dsk_tokenizer *t, FILE *f, dsk_err *err)
{
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "version", json_object_new_string("1.0"));
    json_object_object_add(root, "truncation", NULL);
    json_object_object_add(root, "padding", NULL);
    struct json_object *added = json_object_new_array();
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        if (!t->is_special[id])
            continue;
        size_t len;
        const char *b = dsk_tokenizer_bytes(t, id, &len);
        struct json_object *a = json_object_new_object();
        json_object_object_add(a, "id", json_object_new_int64(id));
        json_object_object_add(a, "content", json_object_new_string_len(b, (int)len));
        json_object_object_add(a, "single_word", json_object_new_boolean(0));
        json_object_object_add(a, "lstrip", json_object_new_boolean(0));
        json_object_object_add(a, "rstrip", json_object_new_boolean(0));
        json_object_object_add(a, "normalized", json_object_new_boolean(0));
        json_object_object_add(a, "special", json_object_new_boolean(1));
        json_object_array_add(added, a);
    }
    json_object_object_add(root, "added_tokens", added);
    json_object_object_add(root, "normalizer", NULL);

    struct json_object *split = json_object_new_object(), *pattern = json_object_new_object();
    json_object_object_add(split, "type", json_object_new_string("Split"));
    json_object_object_add(pattern, "Regex", json_object_new_string(t->pattern));
    json_object_object_add(split, "pattern", pattern);
    json_object_object_add(split, "behavior", json_object_new_string("Isolated"));
    json_object_object_add(split, "invert", json_object_new_boolean(0));
    struct json_object *bl = json_object_new_object();
    json_object_object_add(bl, "type", json_object_new_string("ByteLevel"));
    json_object_object_add(bl, "add_prefix_space", json_object_new_boolean(0));
    json_object_object_add(bl, "trim_offsets", json_object_new_boolean(1));
    json_object_object_add(bl, "use_regex", json_object_new_boolean(0));
    struct json_object *seq = json_object_new_object(), *list = json_object_new_array();
    json_object_array_add(list, split);
    json_object_array_add(list, bl);
    json_object_object_add(seq, "type", json_object_new_string("Sequence"));
    json_object_object_add(seq, "pretokenizers", list);
    json_object_object_add(root, "pre_tokenizer", seq);
    json_object_object_add(root, "post_processor", NULL);
    struct json_object *dec = json_object_new_object();
    json_object_object_add(dec, "type", json_object_new_string("ByteLevel"));
    json_object_object_add(dec, "add_prefix_space", json_object_new_boolean(1));
    json_object_object_add(dec, "trim_offsets", json_object_new_boolean(1));
    json_object_object_add(dec, "use_regex", json_object_new_boolean(1));
    json_object_object_add(root, "decoder", dec);

    struct json_object *model = json_object_new_object(), *vocab = json_object_new_object(),
                       *merges = json_object_new_array();
    json_object_object_add(model, "type", json_object_new_string("BPE"));
    json_object_object_add(model, "dropout", NULL);
    json_object_object_add(model, "unk_token", NULL);
    json_object_object_add(model, "continuing_subword_prefix", NULL);
    json_object_object_add(model, "end_of_word_suffix", NULL);
    json_object_object_add(model, "fuse_unk", json_object_new_boolean(0));
    json_object_object_add(model, "byte_fallback", json_object_new_boolean(0));
    /* a pre-token that is a token is that token, as in tiktoken */
    json_object_object_add(model, "ignore_merges", json_object_new_boolean(1));
    dsk_buf tmp = {0};
    int rc = 0;
    for (uint32_t id = 0; id < t->n_vocab && !rc; id++) {
        size_t len;
        const char *b = dsk_tokenizer_bytes(t, id, &len);
        if (len && t->is_special[id]) {
            /* In the vocab too, as its text, like Hugging Face's GPT-2:
             * the tokenizers library numbers an added token by the vocab's
             * id for its text, else after the vocab's size, which is not
             * its id when ids have a gap (cl100k's 100256). */
            char *text = dsk_xstrndup(b, len);
            struct json_object *other;
            if (json_object_object_get_ex(vocab, text, &other))
                rc = vocab_clash(text, id, other, err);
            else
                json_object_object_add(vocab, text, json_object_new_int64(id));
            free(text);
            continue;
        }
        if (!len)
            continue;
        struct json_object *k = unicode_string(b, len, &tmp), *other;
        if (json_object_object_get_ex(vocab, json_object_get_string(k), &other))
            rc = vocab_clash(json_object_get_string(k), id, other, err);
        else
            json_object_object_add(vocab, json_object_get_string(k), json_object_new_int64(id));
        json_object_put(k);
        if (rc)
            break;
        if (len < 2)
            continue;
        uint32_t l, r;
        if (dsk_bpe_merge_pair(t, id, &l, &r)) {
            rc = dsk_fail(err, EX_DATAERR, "token %u cannot be made by merging lower tokens", id);
            break;
        }
        size_t ll, rl;
        const char *lb = dsk_tokenizer_bytes(t, l, &ll), *rb = dsk_tokenizer_bytes(t, r, &rl);
        struct json_object *pair = json_object_new_array();
        json_object_array_add(pair, unicode_string(lb, ll, &tmp));
        json_object_array_add(pair, unicode_string(rb, rl, &tmp));
        json_object_array_add(merges, pair);
    }
    dsk_buf_free(&tmp);
    json_object_object_add(model, "vocab", vocab);
    json_object_object_add(model, "merges", merges);
    json_object_object_add(root, "model", model);
    if (!rc) {
        size_t len;
        const char *s = json_object_to_json_string_length(
            root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (fwrite(s, 1, len, f) != len || fputc('\n', f) == EOF)
            rc = dsk_fail(err, EX_IOERR, "write error: %s", strerror(errno));
    }
    json_object_put(root);
    return rc;
}

/* The pre-tokenizer as dsk-bpe runs it: one regex, then the byte-level
 * mapping.  Hugging Face writes it as a Split (its regex, "Isolated") and
 * a ByteLevel without a regex of its own, or a ByteLevel whose use_regex
 * is GPT-2's pattern.  Anything that would change the ids (another
 * pre-tokenizer, a Split that removes or merges, add_prefix_space) is
 * refused, not ignored.  Sets *pattern (owned by the JSON); 0 or -1 with
 * why. */
static int read_pre_tokenizer(struct json_object *pre, const char **pattern, int *mapped, char *why, size_t n)
{
    struct json_object *type = pre ? dsk_json_get_string(pre, "type") : NULL;
    const char *t = type ? json_object_get_string(type) : "";
    if (!strcmp(t, "Sequence")) {
        struct json_object *list = json_object_object_get(pre, "pretokenizers");
        for (size_t i = 0; dsk_json_is(list, json_type_array) && i < json_object_array_length(list); i++)
            if (read_pre_tokenizer(json_object_array_get_idx(list, i), pattern, mapped, why, n))
                return -1;
        return 0;
    }
    const char *regex = NULL;
    if (*mapped)   /* after the byte-level mapping, a regex sees other text than dsk-bpe's */
        return snprintf(why, n, "a %s pre-tokenizer after the ByteLevel one", *t ? t : "typeless"), -1;
    if (!strcmp(t, "Split")) {
        struct json_object *pat = json_object_object_get(pre, "pattern");
        struct json_object *re = pat ? dsk_json_get_string(pat, "Regex") : NULL;
        struct json_object *behavior = dsk_json_get_string(pre, "behavior"), *invert = json_object_object_get(pre, "invert");
        if (!re)
            return snprintf(why, n, "a Split pre-tokenizer without a Regex pattern"), -1;
        if ((behavior && strcmp(json_object_get_string(behavior), "Isolated") != 0) ||
            (invert && json_object_get_boolean(invert)))
            return snprintf(why, n, "a Split pre-tokenizer with behavior %s%s (dsk-bpe keeps each match: Isolated)",
                            behavior ? json_object_get_string(behavior) : "Isolated",
                            invert && json_object_get_boolean(invert) ? ", inverted" : ""), -1;
        regex = json_object_get_string(re);
    } else if (!strcmp(t, "ByteLevel")) {
        struct json_object *prefix = json_object_object_get(pre, "add_prefix_space");
        struct json_object *use_regex = json_object_object_get(pre, "use_regex");
        if (prefix && json_object_get_boolean(prefix))
            return snprintf(why, n, "a ByteLevel pre-tokenizer with add_prefix_space"), -1;
        if (!use_regex || json_object_get_boolean(use_regex))   /* the library's default: GPT-2's pattern */
            regex = dsk_bpe_named_pattern("gpt2");
        *mapped = 1;
    } else {
        return snprintf(why, n, "a %s pre-tokenizer", *t ? t : "typeless"), -1;
    }
    if (regex && *pattern)
        return snprintf(why, n, "two regex pre-tokenizers, one after the other"), -1;
    if (regex)
        *pattern = regex;
    return 0;
}

int dsk_bpe_load_json_regular(dsk_tokenizer *t, const char *path, dsk_err *err)
{
    int fd = dsk_open_read(path, 1, err);
    if (fd < 0)
        return err->code;
    close(fd);
    return dsk_bpe_load_json(t, path, err);
}

/* Whether added_tokens lists this text with this id. */
static int listed_as_added(struct json_object *added, const char *text, int64_t id)
{
    for (size_t i = 0; dsk_json_is(added, json_type_array) && i < json_object_array_length(added); i++) {
        struct json_object *a = json_object_array_get_idx(added, i);
        struct json_object *content = dsk_json_get_string(a, "content"), *aid = json_object_object_get(a, "id");
        if (content && dsk_json_is(aid, json_type_int) && json_object_get_int64(aid) == id &&
            strcmp(json_object_get_string(content), text) == 0)
            return 1;
    }
    return 0;
}

/* dsk-bpe merges by the merged token's id, each token made from the two
 * that running BPE on its bytes with the lower ids gives: the file's
 * merges must be those, one for every token of two or more bytes, or
 * Hugging Face's tokenizers, which apply the file's list, would give
 * other ids (a merge left out, a token split otherwise). */
static int check_merges(const dsk_tokenizer *t, const char *path, const uint32_t *merge_id, const size_t *merge_left,
                        size_t n_merges, dsk_err *err)
{
    size_t multi = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        size_t len;
        dsk_tokenizer_bytes(t, id, &len);
        multi += len >= 2 && !t->is_special[id];
    }
    if (multi != n_merges)
        return dsk_fail(err, EX_DATAERR, "%s: %zu merges for %zu tokens of two or more bytes: every such token needs "
                        "its merge, and only those", path, n_merges, multi);
    for (size_t i = 0; i < n_merges; i++) {
        uint32_t l, r;
        size_t ll, want;
        if (dsk_bpe_merge_pair(t, merge_id[i], &l, &r) == 0) {
            dsk_tokenizer_bytes(t, l, &ll);
            want = ll;
        } else {
            want = 0;
        }
        if (want != merge_left[i])
            return dsk_fail(err, EX_DATAERR, "%s: merges[%zu] makes token %u of other halves than merging by id order "
                            "does (the left %zu bytes, not %zu): dsk-bpe's ids would differ from the file's", path, i,
                            merge_id[i], merge_left[i], want);
    }
    return 0;
}

int dsk_bpe_load_json(dsk_tokenizer *t, const char *path, dsk_err *err)
{
    struct json_object *root = load_json_file(path, "a tokenizer.json", err);
    if (!root)
        return err->code;
    int rc = 0;
    struct json_object *model = json_object_object_get(root, "model");
    struct json_object *type = model ? dsk_json_get_string(model, "type") : NULL;
    struct json_object *vocab = model ? json_object_object_get(model, "vocab") : NULL;
    if (!type || strcmp(json_object_get_string(type), "BPE") != 0 || !dsk_json_is(vocab, json_type_object)) {
        json_object_put(root);
        return dsk_fail(err, EX_DATAERR, "%s: not a byte-level BPE tokenizer.json (model.type BPE with a vocab)", path);
    }
    /* The model's options that change the ids, refused rather than ignored
     * (dsk-bpe runs byte-level BPE with none of them). */
    struct json_object *x;
    if ((x = json_object_object_get(model, "dropout")) && !dsk_json_is(x, json_type_null) &&
        json_object_get_double(x) != 0)
        rc = dsk_fail(err, EX_DATAERR, "%s: BPE dropout %g, which dsk-bpe does not apply (its ids would differ)", path,
                      json_object_get_double(x));
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2 && !rc; k++)
        if ((x = json_object_object_get(model, affixes[k])) && dsk_json_is(x, json_type_string) &&
            json_object_get_string_len(x) > 0)
            rc = dsk_fail(err, EX_DATAERR, "%s: model.%s \"%.40s\", which dsk-bpe does not apply (its ids would differ)",
                          path, affixes[k], json_object_get_string(x));
    if (!rc && (x = json_object_object_get(model, "byte_fallback")) && json_object_get_boolean(x))
        rc = dsk_fail(err, EX_DATAERR, "%s: byte_fallback, a SentencePiece-style BPE, not byte-level", path);
    if (rc) {
        json_object_put(root);
        return rc;
    }
    dsk_buf bytes = {0};
    struct json_object *added = json_object_object_get(root, "added_tokens");
    json_object_object_foreach(vocab, key, val) {
        int64_t id = json_object_get_int64(val);
        dsk_buf_clear(&bytes);
        if (listed_as_added(added, key, id))
            continue;   /* a special token in both lists (GPT-2's <|endoftext|>): defined below */
        if (!dsk_json_is(val, json_type_int) || id < 0 || id >= DSK_BPE_MAX_VOCAB)
            rc = dsk_fail(err, EX_DATAERR, "%s: vocab entry '%s' has no valid id", path, key);
        else if (dsk_bpe_unicode_to_bytes(key, strlen(key), &bytes))
            rc = dsk_fail(err, EX_DATAERR, "%s: vocab entry '%s' is not byte-level", path, key);
        else if ((rc = dsk_tokenizer_add(t, (uint32_t)id, bytes.data, bytes.len, err))) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            dsk_fail(err, rc, "%s: %s", path, msg);
        }
        if (rc)
            break;
    }
    dsk_buf_free(&bytes);
    for (size_t i = 0; !rc && dsk_json_is(added, json_type_array) && i < json_object_array_length(added); i++) {
        struct json_object *a = json_object_array_get_idx(added, i);
        struct json_object *content = dsk_json_get_string(a, "content"), *id = json_object_object_get(a, "id");
        static const char *const strip[] = {"lstrip", "rstrip", "single_word"};
        struct json_object *flag = NULL;
        for (int k = 0; k < 3 && !flag; k++)
            if ((flag = json_object_object_get(a, strip[k])) && !json_object_get_boolean(flag))
                flag = NULL;
        if (!content || !dsk_json_is(id, json_type_int) || json_object_get_int64(id) < 0 ||
            json_object_get_int64(id) >= DSK_BPE_MAX_VOCAB)
            rc = dsk_fail(err, EX_DATAERR, "%s: added_tokens[%zu] needs content and an id below %u", path, i,
                          DSK_BPE_MAX_VOCAB);
        else if (flag)   /* the token would take the spaces around it, or match only whole words */
            rc = dsk_fail(err, EX_DATAERR, "%s: added_tokens[%zu] (%.40s) has lstrip, rstrip or single_word, which "
                          "dsk-bpe does not apply (its ids would differ)", path, i, json_object_get_string(content));
        else
            rc = dsk_tokenizer_add_special(t, (uint32_t)json_object_get_int64(id), json_object_get_string(content), err);
    }
    /* encoding ranks pairs by the merged token's id: the merges must come in id order */
    struct json_object *merges = json_object_object_get(model, "merges");
    dsk_buf a = {0}, b = {0};
    uint32_t last = 0;
    size_t n_merges = dsk_json_is(merges, json_type_array) ? json_object_array_length(merges) : 0;
    uint32_t *merge_id = dsk_xmalloc((n_merges ? n_merges : 1) * sizeof *merge_id);
    size_t *merge_left = dsk_xmalloc((n_merges ? n_merges : 1) * sizeof *merge_left);
    for (size_t i = 0; !rc && dsk_json_is(merges, json_type_array) && i < json_object_array_length(merges); i++) {
        struct json_object *m = json_object_array_get_idx(merges, i);
        const char *ls = NULL, *rs = NULL, *sp = NULL;
        size_t ll = 0, rl = 0;
        if (dsk_json_is(m, json_type_array) && json_object_array_length(m) == 2) {
            ls = json_object_get_string(json_object_array_get_idx(m, 0));
            rs = json_object_get_string(json_object_array_get_idx(m, 1));
            ll = ls ? strlen(ls) : 0;
            rl = rs ? strlen(rs) : 0;
        } else if (dsk_json_is(m, json_type_string) && (sp = strchr(json_object_get_string(m), ' '))) {
            ls = json_object_get_string(m);  /* the older "a b" form */
            ll = (size_t)(sp - ls);
            rs = sp + 1;
            rl = strlen(rs);
        }
        dsk_buf_clear(&a);
        dsk_buf_clear(&b);
        if (!ls || !rs || dsk_bpe_unicode_to_bytes(ls, ll, &a) || dsk_bpe_unicode_to_bytes(rs, rl, &b)) {
            rc = dsk_fail(err, EX_DATAERR, "%s: merges[%zu] is not a pair of byte-level tokens", path, i);
            break;
        }
        merge_left[i] = a.len;
        dsk_buf_add(&a, b.data, b.len);
        uint32_t id = dsk_tokenizer_lookup(t, a.data, a.len);
        merge_id[i] = id;
        if (id == DSK_BPE_NO_TOKEN || (i > 0 && id <= last))
            rc = dsk_fail(err, EX_DATAERR, "%s: merges[%zu] %s; dsk-bpe needs merges in the order of their ids",
                          path, i, id == DSK_BPE_NO_TOKEN ? "makes no token in the vocab" : "is out of id order");
        last = id;
    }
    dsk_buf_free(&a);
    dsk_buf_free(&b);
    const char *pattern = NULL;
    char why[200];
    struct json_object *normalizer = json_object_object_get(root, "normalizer");
    struct json_object *norm_type = normalizer ? dsk_json_get_string(normalizer, "type") : NULL;
    if (!rc && normalizer)
        rc = dsk_fail(err, EX_DATAERR, "%s: a %s normalizer, which dsk-bpe does not apply (its ids would differ)", path,
                      norm_type ? json_object_get_string(norm_type) : "typeless");
    int mapped = 0;
    if (!rc && read_pre_tokenizer(json_object_object_get(root, "pre_tokenizer"), &pattern, &mapped, why, sizeof why))
        rc = dsk_fail(err, EX_DATAERR, "%s: %s, which dsk-bpe does not apply (its ids would differ)", path, why);
    if (!rc && !pattern)
        rc = dsk_fail(err, EX_DATAERR, "%s: no pre-tokenizer regex (a Split with a Regex, or a ByteLevel with use_regex)",
                      path);
    if (!rc)
        rc = dsk_tokenizer_set_pattern(t, pattern, err);
    json_object_put(root);
    if (!rc)
        rc = dsk_tokenizer_finish(t, err);
    if (!rc)
        rc = check_merges(t, path, merge_id, merge_left, n_merges, err);
    free(merge_id);
    free(merge_left);
    return rc;
}
