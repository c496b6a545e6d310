#include "bpe/document.h"

#include <string.h>

#include "core/json.h"
#include "text/messages.h"
#include "text/tool_calls.h"

const char *const dsk_bpe_default_specials[5] = {"<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>",
                                                 "<|end|>"};

/* Appends e->ids[from..] to rec with the given mask value. */
static void take_ids(dsk_bpe_encoder *e, size_t from, dskt_record *rec, uint8_t mask)
{
    size_t n = e->n_ids - from;
    if (n == 0)
        return;  /* an empty text; memcpy must not see a NULL buffer */
    if (rec->cap_tokens < rec->n_tokens + n) {
        rec->cap_tokens = (rec->n_tokens + n) * 2;
        rec->tokens = dsk_xrealloc(rec->tokens, rec->cap_tokens * sizeof *rec->tokens);
        rec->mask = dsk_xrealloc(rec->mask, rec->cap_tokens);
    }
    memcpy(rec->tokens + rec->n_tokens, e->ids + from, n * sizeof *e->ids);
    memset(rec->mask + rec->n_tokens, mask, n);
    rec->n_tokens += (uint32_t)n;
    e->n_ids = from;
}

static void add_id(dskt_record *rec, uint32_t id, uint8_t mask)
{
    if (rec->cap_tokens < rec->n_tokens + 1) {
        rec->cap_tokens = (rec->n_tokens + 1) * 2;
        rec->tokens = dsk_xrealloc(rec->tokens, rec->cap_tokens * sizeof *rec->tokens);
        rec->mask = dsk_xrealloc(rec->mask, rec->cap_tokens);
    }
    rec->tokens[rec->n_tokens] = id;
    rec->mask[rec->n_tokens++] = mask;
}

static int encode_into(const dsk_tokenizer *t, dsk_bpe_encoder *e, const char *s, size_t n, int allow_special,
                       dskt_record *rec, uint8_t mask, dsk_err *err)
{
    size_t from = e->n_ids;
    int rc = dsk_bpe_encode(t, e, s, n, allow_special, err);
    if (!rc)
        take_ids(e, from, rec, mask);
    return rc;
}

/* The record's split: train when it has none; another value than train,
 * val or test ("validation", "dev") is an error, not train, where held-out
 * text would be trained on. */
static int split_of(struct json_object *doc, int *split, dsk_err *err)
{
    struct json_object *s;
    *split = DSKT_TRAIN;
    if (!json_object_object_get_ex(doc, "split", &s) || dsk_json_is(s, json_type_null))
        return 0;
    const char *v = dsk_json_is(s, json_type_string) ? json_object_get_string(s) : NULL;
    if (v && strcmp(v, "train") == 0)
        return 0;
    if (v && (strcmp(v, "val") == 0 || strcmp(v, "test") == 0)) {
        *split = strcmp(v, "val") == 0 ? DSKT_VAL : DSKT_TEST;
        return 0;
    }
    return dsk_fail(err, EX_DATAERR, "\"split\": %.40s is not \"train\", \"val\" or \"test\"",
                    json_object_to_json_string_ext(s, JSON_C_TO_STRING_PLAIN));
}

int dsk_bpe_encode_text(const dsk_tokenizer *t, dsk_bpe_encoder *e, const char *text, size_t len, int allow_special,
                        int split, dskt_record *rec, dsk_err *err)
{
    rec->kind = DSKT_PLAIN;
    rec->split = split;
    rec->n_tokens = rec->n_prompt = rec->n_chosen = 0;
    e->n_ids = 0;
    return encode_into(t, e, text, len, allow_special, rec, 0, err);
}

/* The chat template's special ids, or an error naming the missing one. */
typedef struct chat_ids {
    uint32_t eot, system, user, assistant, end;
} chat_ids;

static int get_chat_ids(const dsk_tokenizer *t, chat_ids *c, dsk_err *err)
{
    uint32_t *dst[5] = {&c->eot, &c->system, &c->user, &c->assistant, &c->end};
    for (int i = 0; i < 5; i++) {
        *dst[i] = dsk_tokenizer_special(t, dsk_bpe_default_specials[i]);
        if (*dst[i] == DSK_BPE_NO_TOKEN)
            return dsk_fail(err, EX_DATAERR, "the tokenizer has no %s special token, which chat records need",
                            dsk_bpe_default_specials[i]);
    }
    return 0;
}

/* The shape of a document, checked alike when it is encoded and when its
 * text is counted to train a tokenizer. */

/* Message i as the template writes it, with the turn it goes in (a tool
 * result goes in a user turn); text is a buffer reused from message to
 * message. */
static int message_text(struct json_object *msgs, const char *field, size_t i, dsk_role *turn, dsk_buf *text,
                        dsk_err *err)
{
    dsk_message m;
    int rc = dsk_message_read(msgs, field, i, &m, err);
    if (!rc)
        rc = dsk_message_render(&m, text, err);
    *turn = m.role == DSK_ROLE_TOOL ? DSK_ROLE_USER : m.role;
    return rc;
}

/* [{"role": "user", "content": text}]: a string prompt as messages. */
static struct json_object *user_turn(struct json_object *text)
{
    struct json_object *m = json_object_new_object(), *msgs = json_object_new_array();
    json_object_object_add(m, "role", json_object_new_string("user"));
    json_object_object_add(m, "content", json_object_get(text));
    json_object_array_add(msgs, m);
    return msgs;
}

/* A document's "tools", or NULL when it has none (or null, which json-c
 * reads as NULL). */
static struct json_object *tools_of(struct json_object *doc)
{
    struct json_object *tools = NULL;
    json_object_object_get_ex(doc, "tools", &tools);
    return tools;
}

/* An answer's text: a string, or one assistant message (TRL's
 * conversational form with the prompt apart) as the template writes it,
 * its tool calls too.  More messages are refused: taking one of them
 * would drop the others, or train a user turn as the answer. */
static int answer_text(struct json_object *a, const char *name, dsk_buf *text, dsk_err *err)
{
    dsk_buf_clear(text);
    if (dsk_json_is(a, json_type_string)) {
        dsk_buf_add(text, json_object_get_string(a), (size_t)json_object_get_string_len(a));
        return 0;
    }
    if (!dsk_json_is(a, json_type_array))
        return dsk_fail(err, EX_DATAERR, "\"%s\" must be a string or one assistant message", name);
    size_t n = json_object_array_length(a);
    struct json_object *m = n == 1 ? json_object_array_get_idx(a, 0) : NULL;
    struct json_object *role = dsk_json_is(m, json_type_object) ? dsk_json_get_string(m, "role") : NULL;
    if (!role || strcmp(json_object_get_string(role), "assistant") != 0)
        return dsk_fail(err, EX_DATAERR,
                        "\"%s\" must be a string or one assistant message, not %s (the turns before the answer "
                        "go in \"prompt\")", name, n == 0 ? "an empty list" : n > 1 ? "several messages"
                                                                               : "a message without the assistant role");
    dsk_role r;
    return message_text(a, name, 0, &r, text, err);
}

/* A document that is none of the three kinds. */
static int no_text(const char *field, dsk_err *err)
{
    return dsk_fail(err, EX_DATAERR, "no string \"%s\" field, no \"messages\", no prompt/chosen/rejected", field);
}

/* A preference record: all three fields, or 0 (not one). */
static int preference_fields(struct json_object *doc, struct json_object **prompt, struct json_object **chosen,
                             struct json_object **rejected)
{
    return json_object_object_get_ex(doc, "prompt", prompt) && json_object_object_get_ex(doc, "chosen", chosen) &&
           json_object_object_get_ex(doc, "rejected", rejected);
}

/* Messages through the template, after a system turn describing the
 * document's tools if it has some; the assistant turns masked in when
 * train_assistant. */
static int encode_messages(const dsk_tokenizer *t, dsk_bpe_encoder *e, const chat_ids *c, struct json_object *msgs,
                           const char *field, struct json_object *tools, int train_assistant, dskt_record *rec,
                           dsk_err *err)
{
    int rc = dsk_messages_check(msgs, field, err);
    dsk_buf text = {0};
    if (!rc && tools && !(rc = dsk_tools_render(tools, &text, err))) {
        add_id(rec, c->system, 0);
        rc = encode_into(t, e, text.data, text.len, 0, rec, 0, err);
        if (!rc)
            add_id(rec, c->end, 0);
    }
    for (size_t i = 0; !rc && i < json_object_array_length(msgs); i++) {
        dsk_role role;
        if ((rc = message_text(msgs, field, i, &role, &text, err)))
            break;
        uint32_t rid = role == DSK_ROLE_SYSTEM ? c->system : role == DSK_ROLE_USER ? c->user : c->assistant;
        uint8_t mask = (uint8_t)(train_assistant && rid == c->assistant);
        add_id(rec, rid, 0);
        rc = encode_into(t, e, text.data ? text.data : "", text.len, 0, rec, mask, err);
        if (!rc)
            add_id(rec, c->end, mask);
    }
    dsk_buf_free(&text);
    return rc;
}

static int encode_answer(const dsk_tokenizer *t, dsk_bpe_encoder *e, const chat_ids *c, struct json_object *a,
                         const char *name, dskt_record *rec, dsk_err *err)
{
    dsk_buf text = {0};
    int rc = answer_text(a, name, &text, err);
    if (!rc)
        rc = encode_into(t, e, text.data ? text.data : "", text.len, 0, rec, 1, err);
    if (!rc)
        add_id(rec, c->end, 1);
    dsk_buf_free(&text);
    return rc;
}

int dsk_bpe_encode_document(const dsk_tokenizer *t, dsk_bpe_encoder *e, struct json_object *doc, const char *field,
                            int allow_special, dskt_record *rec, dsk_err *err)
{
    rec->n_tokens = rec->n_prompt = rec->n_chosen = 0;
    int rc = split_of(doc, &rec->split, err);
    if (rc)
        return rc;
    e->n_ids = 0;
    struct json_object *text = dsk_json_get_string(doc, field);
    if (text) {
        rec->kind = DSKT_PLAIN;
        return encode_into(t, e, json_object_get_string(text), (size_t)json_object_get_string_len(text),
                           allow_special, rec, 0, err);
    }
    chat_ids c;
    struct json_object *msgs;
    if (json_object_object_get_ex(doc, "messages", &msgs)) {
        rec->kind = DSKT_CHAT;
        rc = get_chat_ids(t, &c, err);
        if (!rc)
            rc = encode_messages(t, e, &c, msgs, "messages", tools_of(doc), 1, rec, err);
        if (!rc)
            add_id(rec, c.eot, 0);
        return rc;
    }
    struct json_object *prompt, *chosen, *rejected;
    if (preference_fields(doc, &prompt, &chosen, &rejected)) {
        rec->kind = DSKT_PREFERENCE;
        rc = get_chat_ids(t, &c, err);
        if (rc)
            return rc;
        /* a string prompt is one user turn */
        struct json_object *turns = dsk_json_is(prompt, json_type_string) ? user_turn(prompt) : json_object_get(prompt);
        rc = encode_messages(t, e, &c, turns, "prompt", tools_of(doc), 0, rec, err);
        json_object_put(turns);
        if (rc)
            return rc;
        add_id(rec, c.assistant, 0);
        rec->n_prompt = rec->n_tokens;
        if ((rc = encode_answer(t, e, &c, chosen, "chosen", rec, err)))
            return rc;
        rec->n_chosen = rec->n_tokens - rec->n_prompt;
        return encode_answer(t, e, &c, rejected, "rejected", rec, err);
    }
    return no_text(field, err);
}

static int text_of(struct json_object *s, dsk_bpe_text_fn *fn, void *ctx, dsk_err *err)
{
    return fn(ctx, json_object_get_string(s), (size_t)json_object_get_string_len(s), err);
}

static int messages_texts(struct json_object *msgs, const char *field, struct json_object *tools,
                          dsk_bpe_text_fn *fn, void *ctx, dsk_err *err)
{
    int rc = dsk_messages_check(msgs, field, err);
    dsk_buf text = {0};
    if (!rc && tools && !(rc = dsk_tools_render(tools, &text, err)))
        rc = fn(ctx, text.data, text.len, err);
    for (size_t i = 0; !rc && i < json_object_array_length(msgs); i++) {
        dsk_role role;
        rc = message_text(msgs, field, i, &role, &text, err);
        if (!rc)
            rc = fn(ctx, text.data ? text.data : "", text.len, err);
    }
    dsk_buf_free(&text);
    return rc;
}

int dsk_bpe_document_texts(struct json_object *doc, const char *field, dsk_bpe_text_fn *fn, void *ctx, dsk_err *err)
{
    int split;
    int rc = split_of(doc, &split, err);
    if (rc)
        return rc;
    struct json_object *text = dsk_json_get_string(doc, field), *msgs, *prompt, *chosen, *rejected;
    if (text)
        return text_of(text, fn, ctx, err);
    if (json_object_object_get_ex(doc, "messages", &msgs))
        return messages_texts(msgs, "messages", tools_of(doc), fn, ctx, err);
    if (preference_fields(doc, &prompt, &chosen, &rejected)) {
        struct json_object *turns = dsk_json_is(prompt, json_type_string) ? user_turn(prompt) : json_object_get(prompt);
        rc = messages_texts(turns, "prompt", tools_of(doc), fn, ctx, err);
        json_object_put(turns);
        dsk_buf answer = {0};
        if (!rc && !(rc = answer_text(chosen, "chosen", &answer, err)))
            rc = fn(ctx, answer.data ? answer.data : "", answer.len, err);
        if (!rc && !(rc = answer_text(rejected, "rejected", &answer, err)))
            rc = fn(ctx, answer.data ? answer.data : "", answer.len, err);
        dsk_buf_free(&answer);
        return rc;
    }
    return no_text(field, err);
}

int dsk_bpe_encode_generation_prompt(const dsk_tokenizer *t, dsk_bpe_encoder *e, struct json_object *doc,
                                     dskt_record *rec, dsk_err *err)
{
    rec->n_tokens = rec->n_prompt = rec->n_chosen = 0;
    rec->kind = DSKT_CHAT;
    rec->split = DSKT_TRAIN;   /* a task item's prompt: its split, if any, means nothing here */
    e->n_ids = 0;
    chat_ids c;
    int rc = get_chat_ids(t, &c, err);
    if (rc)
        return rc;
    struct json_object *msgs, *prompt = dsk_json_get_string(doc, "prompt");
    if (prompt) {   /* one user turn */
        msgs = user_turn(prompt);
        rc = encode_messages(t, e, &c, msgs, "prompt", tools_of(doc), 0, rec, err);
        json_object_put(msgs);
    } else if (json_object_object_get_ex(doc, "messages", &msgs)) {
        rc = encode_messages(t, e, &c, msgs, "messages", tools_of(doc), 0, rec, err);
    } else {
        rc = dsk_fail(err, EX_DATAERR, "no string \"prompt\" and no \"messages\"");
    }
    if (!rc)
        add_id(rec, c.assistant, 0);
    rec->n_prompt = rec->n_tokens;
    return rc;
}
