#include "serve/lookup_draft.h"

#include <string.h>

int dsk_lookup_draft(const int32_t *text, int len, int ngram_max, int ngram_min, int k, int32_t *draft)
{
    if (k < 1 || ngram_min < 1)
        return 0;
    for (int n = ngram_max < len - 1 ? ngram_max : len - 1; n >= ngram_min; n--) {
        const int32_t *tail = text + len - n;
        /* The latest start j < len - n: what followed it begins at
         * j + n <= len - 1.  A match that close is a loop (the text
         * repeats with period len - from): the draft goes on around it,
         * reading its own tokens where the text ends. */
        for (int j = len - n - 1; j >= 0; j--) {
            if (text[j] != tail[0] || memcmp(text + j, tail, (size_t)n * sizeof *tail) != 0)
                continue;
            int from = j + n;
            for (int t = 0; t < k; t++)
                draft[t] = from + t < len ? text[from + t] : draft[from + t - len];
            return k;
        }
    }
    return 0;
}
