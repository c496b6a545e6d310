/* libFuzzer target: a JSON document through the chat template, as
 * dsk-bpe encode, dsk-eval gen and dsk-serve read them: plain text (the
 * "text" field), "messages", a prompt/chosen/rejected preference, and a
 * generation prompt.  The first byte sets whether special tokens in plain
 * text are allowed.  What comes out must hold together (and dsk-bpe
 * train's walk of the texts must refuse the same documents): ids below the
 * vocabulary, a mask entry per id, the prompt and the chosen answer inside
 * the record, and plain text must decode back to itself. */
#include <string.h>

#include "bpe/document.h"
#include "bpe/tokenizer.h"
#include "core/json.h"
#include "text/utf8.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* The 256 bytes, a few merges, and the template's specials. */
static const dsk_tokenizer *tokenizer(void)
{
    static dsk_tokenizer t;
    static int ready;
    if (ready)
        return &t;
    dsk_err err;
    dsk_tokenizer_init(&t);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        dsk_tokenizer_add(&t, (uint32_t)b, &c, 1, &err);
    }
    static const char *const merges[] = {"th", "the", " the", "er", "in", "an", " a"};
    uint32_t id = 256;
    for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++)
        dsk_tokenizer_add(&t, id++, merges[i], strlen(merges[i]), &err);
    for (int i = 0; i < 5; i++)
        dsk_tokenizer_add_special(&t, id++, dsk_bpe_default_specials[i], &err);
    if (dsk_tokenizer_set_pattern(&t, dsk_bpe_named_pattern("gpt2"), &err) || dsk_tokenizer_finish(&t, &err))
        __builtin_trap();
    ready = 1;
    return &t;
}

static void check_record(const dsk_tokenizer *t, const dskt_record *rec)
{
    if (rec->n_prompt > rec->n_tokens || rec->n_prompt + rec->n_chosen > rec->n_tokens)
        __builtin_trap();
    for (uint32_t i = 0; i < rec->n_tokens; i++)
        if (rec->tokens[i] >= t->n_vocab || (rec->kind == DSKT_CHAT && rec->mask[i] > 1))
            __builtin_trap();
}

static int count_bytes(void *ctx, const char *text, size_t len, dsk_err *err)
{
    (void)text, (void)err;
    *(size_t *)ctx += len;
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    const dsk_tokenizer *t = tokenizer();
    int allow_special = data[0] & 1;
    char why[128];
    struct json_object *doc = dsk_json_parse((const char *)data + 1, size - 1, why, sizeof why);
    if (!dsk_json_is(doc, json_type_object)) {
        json_object_put(doc);
        return 0;
    }
    dsk_bpe_encoder e;
    dsk_bpe_encoder_init(&e, t);
    dskt_record rec = {0};
    dsk_err err;
    int encoded = dsk_bpe_encode_document(t, &e, doc, "text", allow_special, &rec, &err) == 0;
    /* What dsk-bpe train counts: the same documents refused, once the tools
     * have repaired a line's UTF-8 (they do before parsing it; a text that
     * is not UTF-8 is refused by encode alone). */
    int texts = dsk_bpe_document_texts(doc, "text", count_bytes, &(size_t){0}, &err) == 0;
    if (encoded ? !texts : texts && dsk_utf8_find_invalid((const char *)data + 1, size - 1) == size - 1)
        __builtin_trap();
    if (encoded) {
        check_record(t, &rec);
        struct json_object *text = dsk_json_get_string(doc, "text");
        if (text && !allow_special) {   /* plain text, specials as text: decodes back to itself */
            dsk_buf back = {0};
            const char *s = json_object_get_string(text);
            size_t n = (size_t)json_object_get_string_len(text);
            if (dsk_utf8_find_invalid(s, n) == n && dsk_bpe_decode(t, rec.tokens, rec.n_tokens, &back, &err) == 0 &&
                (back.len != n || memcmp(back.data ? back.data : "", s, n) != 0))
                __builtin_trap();
            dsk_buf_free(&back);
        }
    }
    if (dsk_bpe_encode_generation_prompt(t, &e, doc, &rec, &err) == 0)
        check_record(t, &rec);
    dskt_record_free(&rec);
    dsk_bpe_encoder_free(&e);
    json_object_put(doc);
    return 0;
}
