/* JSON mode and tool calls.  JSON mode (OpenAI's response_format {"type": "json_object"}): at each
 * step the model draws only among the tokens whose bytes keep its answer
 * the beginning of a JSON object (text/json_prefix.h), and the answer
 * ends when the object closes.
 *
 * Masking tries every token, but walks the vocabulary in byte order and
 * keeps the automaton's state for each byte of the current token: a token
 * starts from the state its shared beginning with the one before left,
 * and once a beginning fails, every token that shares it is refused
 * unread.  A step costs about one automaton step per node of the
 * vocabulary's byte trie that is still reachable. */
#ifndef DSK_SERVE_JSON_MODE_H
#define DSK_SERVE_JSON_MODE_H

#include <stdint.h>

#include "bpe/tokenizer.h"
#include "text/call_prefix.h"
#include "text/json_prefix.h"

typedef struct dsk_json_vocab dsk_json_vocab;

/* The tokens 0..n_vocab-1 of the model: those the tokenizer gives bytes
 * (not special tokens, not ids it lacks) are candidates. */
dsk_json_vocab *dsk_json_vocab_new(const dsk_tokenizer *tk, int n_vocab);
void dsk_json_vocab_free(dsk_json_vocab *v);

/* Sets the logit of every token that would break the JSON beginning s to
 * -INFINITY.  Returns how many tokens remain (0: none can follow). */
int dsk_json_vocab_mask(const dsk_json_vocab *v, const dsk_json_prefix *s, float *logits);

/* Feeds token tok's bytes to s: 1 if it keeps the text JSON, else 0 (a
 * special or unknown token never does). */
int dsk_json_vocab_feed(const dsk_json_vocab *v, dsk_json_prefix *s, int32_t tok);

/* The same for tool calls (text/call_prefix.h): every token that would
 * break a call is masked; in free text, only those whose '<' would begin
 * one wrongly.  Special tokens pass in free text only. */
int dsk_call_vocab_mask(const dsk_json_vocab *v, const dsk_call_prefix *s, float *logits);

/* Feeds token tok's bytes to s: 1 if the answer is still a beginning (a
 * special token: in free text only, leaving it as it is). */
int dsk_call_vocab_feed(const dsk_json_vocab *v, dsk_call_prefix *s, int32_t tok);

/* Jump-forward decoding: where the answer in state s can go on with one
 * byte only, and cannot end, that byte is forced, and so are the ones
 * after it until the model has a choice (or the answer may end).  Those
 * bytes as the tokenizer encodes them, up to cap tokens in out: the
 * tokens to take without a draw.  The last pre-token of them is left
 * out where the answer goes on after them (it may merge with what
 * follows: the model draws it), and so is an unfinished UTF-8 character;
 * a token the model lacks ends the run.  0 where the next byte is the
 * model's choice, or the forced bytes are one pre-token.  None from a
 * tokenizer that cannot encode every text (no pattern, or a byte
 * without a token). */
int dsk_json_vocab_forced(const dsk_json_vocab *v, const dsk_json_prefix *s, int32_t *out, int cap);
int dsk_call_vocab_forced(const dsk_json_vocab *v, const dsk_call_prefix *s, int32_t *out, int cap);

#endif
