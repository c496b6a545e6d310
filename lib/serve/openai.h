/* The OpenAI-compatible API of dsk-serve, without the networking: request
 * bodies of POST /v1/chat/completions and /v1/completions parsed and
 * checked into a dsk_openai_request, errors as OpenAI's error object,
 * responses (whole, or streamed as server-sent events) and the model list
 * as JSON, and the stop-sequence logic that decides how much generated
 * text may be streamed.
 *
 * Everything here is pure: no sockets, no clocks, no randomness (the
 * caller passes ids and timestamps), so it is unit-tested and fuzzed on
 * its own.  Functions never exit; parse errors fill a dsk_openai_error. */
#ifndef DSK_SERVE_OPENAI_H
#define DSK_SERVE_OPENAI_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/json.h"
#include "model/logit_process.h"
#include "text/call_prefix.h"
#include "text/json_schema.h"

enum { DSK_OPENAI_CHAT = 1, DSK_OPENAI_COMPLETION = 2 };
enum { DSK_OPENAI_TEXT, DSK_OPENAI_JSON_OBJECT, DSK_OPENAI_JSON_SCHEMA };

#define DSK_OPENAI_MAX_STOP 4       /* OpenAI's limit on stop sequences */
#define DSK_OPENAI_MAX_IGNORED 16   /* ignored field names kept for the warning header */
#define DSK_OPENAI_MAX_LOGIT_BIAS 1024   /* tokens in one logit_bias */
#define DSK_OPENAI_MAX_TOP 20       /* alternatives per token (chat's top_logprobs limit) */

typedef struct dsk_openai_limits {
    size_t max_body;          /* request bytes; larger bodies get 413 */
    int max_n;                /* most choices per prompt (n) */
    int max_prompts;          /* most prompts in one completion request */
    int ctx_len;              /* model context in tokens; max_tokens above it is refused */
    int default_max_tokens;   /* when the request names none (clamped to the context later) */
    int max_messages;         /* most chat messages */
    size_t max_stop_len;      /* bytes per stop string */
} dsk_openai_limits;

/* 1 MiB bodies, n <= 8, 64 prompts, ctx 2048, 256 tokens by default,
 * 1024 messages, 256-byte stop strings. */
void dsk_openai_limits_default(dsk_openai_limits *lim);

/* OpenAI's error object, {"error":{"message","type","param","code"}};
 * empty param/code are written as null. */
typedef struct dsk_openai_error {
    int status;          /* HTTP status: 400, 413, ...; 0 when no error */
    char type[32];       /* "invalid_request_error" */
    char param[96];      /* the offending field, "messages[2].content" */
    char code[48];       /* "invalid_type", "invalid_value", "missing_required_parameter", ... */
    char message[512];   /* one line, valid UTF-8, no control characters */
} dsk_openai_error;

/* Appends the error object as compact JSON. */
void dsk_openai_error_json(const dsk_openai_error *e, dsk_buf *out);

/* Fills e with a 400 invalid_request_error (for the server's own checks)
 * and returns status. */
int dsk_openai_fail(dsk_openai_error *e, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* One prompt of a completion request: text, or token ids (text NULL). */
typedef struct dsk_openai_prompt {
    char *text;                /* as sent (may hold NUL bytes), not templated */
    size_t len;
    int32_t *ids;              /* each >= 0; the vocabulary is checked by the server */
    int n_ids;
} dsk_openai_prompt;

typedef struct dsk_openai_request {
    int kind;                  /* DSK_OPENAI_CHAT or DSK_OPENAI_COMPLETION */
    char *model;               /* as sent ("" when absent); any value is accepted */

    /* chat: {"messages":[{"role","content"},...]} with every content a
     * string (text parts joined) and "developer" read as "system": the
     * document dsk_bpe_encode_generation_prompt takes.  NULL for completions. */
    struct json_object *chat;
    /* completion: "prompt" as a string, an array of token ids, or an
     * array of either (1..lim->max_prompts); n choices for each.  NULL for chat. */
    dsk_openai_prompt *prompts;
    int n_prompts;
    int echo;                  /* completion: the answer begins with the prompt (and its logprobs) */

    int max_tokens;            /* >= 1; 0 only with echo (score the prompt, generate nothing) */
    int max_tokens_given;      /* 1 when the request set max_tokens or max_completion_tokens */
    double temperature;        /* [0, 2], default 1; 0 is greedy */
    double top_p;              /* (0, 1], default 1 */
    int top_k;                 /* >= 0, default 0 (all): an extension vLLM and llama.cpp accept */
    double min_p;              /* [0, 1], default 0: vLLM's and llama.cpp's extension */
    double repetition_penalty; /* (0, 100], default 1 (none): vLLM's extension */
    dsk_logit_bias *logit_bias;   /* token ids as sent (>= 0; the server checks the vocabulary), bias in [-100, 100] */
    int n_logit_bias;
    char *stop[DSK_OPENAI_MAX_STOP];  /* non-empty, no NUL bytes */
    int n_stop;
    int has_seed;
    int64_t seed;
    int n;                     /* choices, 1..limits.max_n */
    int stream;
    int include_usage;         /* stream_options.include_usage */
    int logprobs;              /* chat: 0/1; completion: 0..5 alternatives (any value asks for logprobs) */
    int want_logprobs;         /* chat: logprobs true; completion: logprobs present and not null */
    int top_logprobs;          /* chat: 0..20 alternatives per token; completion: copy of logprobs */
    char *user;                /* as sent, or NULL */
    int ignore_eos;            /* vLLM's extension: generate max_tokens whatever the model's end tokens */
    int json_mode;             /* response_format: DSK_OPENAI_TEXT, _JSON_OBJECT (one object) or _JSON_SCHEMA */
    /* chat with tools, unless tool_choice is "none" or a JSON
     * response_format is asked for: the tools compiled, whose calls an
     * answer's are held to (text/call_prefix.h): tools_mode
     * DSK_CALLS_AUTO (text, perhaps calls after it) or DSK_CALLS_REQUIRED
     * (tool_choice "required" or a function: a call at once), tools_only
     * the tool a named tool_choice calls (else -1).  The tools are in
     * req->chat's "tools" (described in the prompt) whenever tool_choice
     * is not "none". */
    struct dsk_call_tools *call_tools;
    int tools_mode, tools_only;
    int parallel_tool_calls;   /* default 1: calls may follow calls (0 for a named tool_choice) */
    struct dsk_json_schema *json_schema;   /* _JSON_SCHEMA: compiled (owned; any value when none was sent) */
    double frequency_penalty, presence_penalty;   /* [-2, 2], default 0 */

    /* Fields accepted without effect: unknown fields (OpenAI ignores them
     * too); the first DSK_OPENAI_MAX_IGNORED names, each cut to 64 bytes.
     * n_ignored counts all of them. */
    char *ignored[DSK_OPENAI_MAX_IGNORED];
    int n_ignored;
} dsk_openai_request;

/* Parses body[0..len) for kind.  Returns 0, or e->status (413 when the
 * body is over lim->max_body, 400 for anything else wrong) with e filled
 * and req left empty.  dsk_openai_request_free releases req either way. */
int dsk_openai_parse(const char *body, size_t len, int kind, const dsk_openai_limits *lim, dsk_openai_request *req,
                     dsk_openai_error *e);
void dsk_openai_request_free(dsk_openai_request *req);

/* Once a prompt is tokenized (each, for several): refuses (400, code
 * "context_length_exceeded") a prompt that leaves no room in the context,
 * or an explicit max_tokens that does not fit after it; a default
 * max_tokens is lowered to fit instead.  With max_tokens 0 (echo) the
 * prompt may fill the context.  Returns 0 or e->status. */
int dsk_openai_fit_context(dsk_openai_request *req, int prompt_tokens, const dsk_openai_limits *lim,
                           dsk_openai_error *e);

/* The value of a "Warning" response header listing req->ignored, such as
 * `299 dsk "ignored fields: foo, frequency_penalty"`, or nothing when
 * none was ignored.  Names are reduced to printable ASCII. */
void dsk_openai_warning_header(const dsk_openai_request *req, dsk_buf *out);

/* ---- responses ------------------------------------------------------------ */

enum { DSK_FINISH_NONE = 0, DSK_FINISH_STOP, DSK_FINISH_LENGTH };

typedef struct dsk_openai_top_logprob {
    const char *token;   /* the token's bytes (perhaps part of a UTF-8 character) */
    size_t len;
    double logprob;
} dsk_openai_top_logprob;

typedef struct dsk_openai_token_logprob {
    const char *token;
    size_t len;
    double logprob;
    const dsk_openai_top_logprob *top;   /* the most likely alternatives, best first */
    int n_top;
    size_t text_offset;   /* completions: where the token begins in the choice's text, in characters as written */
    int null_logprob;     /* an echoed prompt's first token: logprob and alternatives are null */
} dsk_openai_token_logprob;

typedef struct dsk_openai_choice {
    int index;
    const char *text;    /* the generated text, after the prompt with echo (invalid UTF-8 is written as U+FFFD) */
    size_t len;
    int finish_reason;   /* DSK_FINISH_*; NONE is written as null */
    /* NULL: "logprobs": null. */
    const dsk_openai_token_logprob *logprobs;
    int n_logprobs;
    /* chat with tools: the calls the answer made (an array of {"name",
     * "arguments"}, the arguments a string of JSON, perhaps cut short where
     * the answer was), text being what came before them ("content": null
     * when empty), finish_reason "tool_calls" where it would be "stop";
     * NULL: none. */
    struct json_object *calls;
} dsk_openai_choice;

typedef struct dsk_openai_usage {
    int prompt_tokens, completion_tokens;
} dsk_openai_usage;

/* What every object of one response shares. */
typedef struct dsk_openai_meta {
    int kind;                 /* DSK_OPENAI_CHAT or DSK_OPENAI_COMPLETION */
    const char *id;           /* see dsk_openai_make_id */
    const char *model;
    long long created;        /* Unix seconds, the same in every chunk */
    int include_usage;        /* streams: chunks carry "usage": null, then the usage chunk */
} dsk_openai_meta;

/* "chatcmpl-" or "cmpl-" and the 16 hex digits of rnd. */
void dsk_openai_make_id(int kind, uint64_t rnd, char out[40]);

/* A whole chat.completion or text_completion object. */
void dsk_openai_response_json(const dsk_openai_meta *m, const dsk_openai_choice *choices, int n,
                              const dsk_openai_usage *u, dsk_buf *out);

/* Server-sent events, each "data: {json}\n\n".  A chat stream sends, per
 * choice, dsk_openai_sse_role first, then dsk_openai_sse_chunk with text
 * (finish_reason NONE) as it comes, then one with finish_reason set (its
 * text may be empty); then dsk_openai_sse_usage when m->include_usage,
 * and dsk_openai_sse_done.  Completion streams skip the role event. */
/* A chat choice's calls go out between its text and its final chunk
 * (whose calls, if set, only make its finish reason "tool_calls"), by
 * dsk_openai_sse_call: call k first with name set (its index, id, type,
 * name and arguments as far as they go), then (name NULL) more of its
 * arguments as they come. */
void dsk_openai_sse_call(const dsk_openai_meta *m, int index, int k, const char *name, const char *args,
                         size_t len, dsk_buf *out);
void dsk_openai_sse_role(const dsk_openai_meta *m, int index, dsk_buf *out);
void dsk_openai_sse_chunk(const dsk_openai_meta *m, const dsk_openai_choice *c, dsk_buf *out);
void dsk_openai_sse_usage(const dsk_openai_meta *m, const dsk_openai_usage *u, dsk_buf *out);
void dsk_openai_sse_done(dsk_buf *out);
/* An error in the middle of a stream, where the status line is already
 * sent: "data: {"error":...}\n\n" (what OpenAI and vLLM do). */
void dsk_openai_sse_error(const dsk_openai_error *e, dsk_buf *out);

/* GET /v1/models: {"object":"list","data":[{"id","object":"model","created","owned_by"}]}. */
void dsk_openai_models_json(const char *const *ids, int n, long long created, const char *owned_by, dsk_buf *out);
/* GET /v1/models/{id}: the one model object. */
void dsk_openai_model_json(const char *id, long long created, const char *owned_by, dsk_buf *out);

/* ---- stop sequences ------------------------------------------------------- */

typedef struct dsk_openai_stop_result {
    int matched;   /* 1: a stop string is complete; the text ends at `safe` */
    int which;     /* index of the stop string matched, -1 if none */
    size_t safe;   /* bytes of text that are final and may be sent */
} dsk_openai_stop_result;

/* text[0..len) is everything generated so far, decoded.  Generation stops
 * as soon as any stop string is complete; when one token completes several
 * at once, the text is cut where the earliest one starts (the stop string
 * itself is never sent).  Otherwise `safe` excludes the longest suffix
 * that is the beginning of some stop string (it may still become one) and
 * an incomplete UTF-8 character at the end.
 *
 * from is where to start looking: 0, or the `safe` of the previous call on
 * the same growing text (a stop string completed now cannot start before
 * it).  When generation ends otherwise (length, end of text), all of the
 * text is final. */
void dsk_openai_stop_check(const char *text, size_t len, size_t from, char *const *stops, int n_stops,
                           dsk_openai_stop_result *r);

#endif
