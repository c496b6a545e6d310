/* Prompt lookup: draft tokens for speculative decoding taken from the
 * sequence's own text (Saxena's "prompt lookup decoding"; vLLM's and
 * llama.cpp's n-gram speculation).  An answer that quotes its prompt (a
 * summary, an edit of code, fields pulled out of a document into JSON)
 * repeats runs of tokens it has already seen: where the text's last n
 * tokens occurred before, the tokens that followed them then are a guess
 * at what follows now.  The model checks the guess in one batched step
 * (serve/engine.c), so a wrong guess costs rows, never a different
 * answer. */
#ifndef DSK_SERVE_LOOKUP_DRAFT_H
#define DSK_SERVE_LOOKUP_DRAFT_H

#include <stdint.h>

/* The k tokens after the latest earlier occurrence of the last n tokens
 * of text[0..len), for the longest n from ngram_max down to ngram_min
 * that occurs, into draft; where the text ends first, the draft repeats
 * from the occurrence on (a loop goes on).  Returns k, or 0 when no
 * n-gram occurs earlier (or k < 1). */
int dsk_lookup_draft(const int32_t *text, int len, int ngram_max, int ngram_min, int k, int32_t *draft);

#endif
