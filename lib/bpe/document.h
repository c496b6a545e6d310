/* Documents to token records: plain text, chat transcripts with a loss
 * mask, and preference pairs.
 *
 * The chat template (dsk-bpe(1)) uses five special tokens:
 *
 *   <|system|>SYSTEM<|end|><|user|>USER<|end|><|assistant|>ANSWER<|end|>...<|endoftext|>
 *
 * The mask is 1 on each assistant turn's content and its <|end|> (so the
 * model learns to stop), 0 elsewhere.  A preference pair is the prompt
 * (its messages, or a string as one user turn, then <|assistant|>) followed
 * by the chosen and the rejected answers, each ending in <|end|>. */
#ifndef DSK_BPE_DOCUMENT_H
#define DSK_BPE_DOCUMENT_H

#include <json-c/json.h>

#include "bpe/dskt.h"
#include "bpe/tokenizer.h"

#define DSK_CHAT_JINJA                                                                           \
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"         \
    "{% if add_generation_prompt %}<|assistant|>{% else %}<|endoftext|>{% endif %}"

/* The specials every dsk-trained tokenizer has. */
extern const char *const dsk_bpe_default_specials[5];

/* Fills rec from a JSON document (plain with text in field, chat with
 * "messages", or preference with "prompt"/"chosen"/"rejected"), split
 * from its "split" field (train when absent).  Returns 0 or an error
 * whose message says what is wrong with the document. */
int dsk_bpe_encode_document(const dsk_tokenizer *t, dsk_bpe_encoder *e, struct json_object *doc, const char *field,
                            int allow_special, dskt_record *rec, dsk_err *err);

/* The texts of a document, in order, each to fn (which returns 0 or an
 * error), checked as dsk_bpe_encode_document checks them, without a
 * tokenizer: what dsk-bpe train counts. */
typedef int dsk_bpe_text_fn(void *ctx, const char *text, size_t len, dsk_err *err);
int dsk_bpe_document_texts(struct json_object *doc, const char *field, dsk_bpe_text_fn *fn, void *ctx, dsk_err *err);

/* What a model is given to answer: "messages" (the conversation so far)
 * or "prompt" (a string, as one user turn) through the template, then
 * <|assistant|> (add_generation_prompt).  rec gets a chat record with no
 * mask.  dsk-eval gen and dsk-serve build prompts this way. */
int dsk_bpe_encode_generation_prompt(const dsk_tokenizer *t, dsk_bpe_encoder *e, struct json_object *doc,
                                     dskt_record *rec, dsk_err *err);

/* Plain text as a plain record. */
int dsk_bpe_encode_text(const dsk_tokenizer *t, dsk_bpe_encoder *e, const char *text, size_t len, int allow_special,
                        int split, dskt_record *rec, dsk_err *err);

#endif
