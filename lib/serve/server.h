/* dsk-serve's HTTP side on libmicrohttpd: routes, authentication, body
 * limits, and the bridge from OpenAI requests to the continuous-batching
 * engine (lib/serve/engine.h), whole or streamed as server-sent events.
 * One thread per connection: a handler may wait for its tokens. */
#ifndef DSK_SERVE_SERVER_H
#define DSK_SERVE_SERVER_H

#include "eval/eval.h"

typedef struct dsk_server_opts {
    const char *host;          /* default 127.0.0.1 */
    int port;                  /* default 8080; 0: any free port (see dsk_server_port) */
    int max_batch;             /* sequences decoded together (default 8) */
    int max_queue;             /* waiting requests before 429 (default 64) */
    int max_rows;              /* rows per step, decode + prefill chunk (default 64) */
    int ctx;                   /* tokens per sequence (0: the model's) */
    size_t max_body;           /* request bytes (default 1 MiB) */
    int max_connections;       /* default 256 */
    int idle_timeout_s;        /* a connection silent this long is closed (default 60) */
    double timeout_s;          /* per request (default 300) */
    const char *api_key;       /* Bearer key, or NULL: none */
    const char *model_name;    /* what /v1/models lists (default: the checkpoint directory's name) */
    size_t kv_memory;          /* bytes for the key-value caches (0: --max-batch sequences of ctx) */
    int json_compact;          /* JSON answers (response_format) carry no whitespace outside strings */
    int speculate;             /* draft tokens by prompt lookup per step (0: none; engine.h) */
    int speculate_ngram;       /* the longest n-gram looked up (default 3) */
    int no_jump_forward;       /* 1: constrained answers draw every token (engine.h's jump_forward off) */
} dsk_server_opts;

typedef struct dsk_server dsk_server;

/* Listens at once: until dsk_server_ready, /health answers 503 (so a
 * readiness probe waits for the model) and the API 503 too. */
dsk_server *dsk_server_start(const dsk_server_opts *o, dsk_err *err);
/* The model is loaded: sizes the KV caches (kv_memory caps the batch),
 * starts the engine and turns /health to 200.  EX_USAGE when the budget
 * holds not one sequence. */
int dsk_server_ready(dsk_server *s, dsk_loaded *l, dsk_err *err);
/* Sequences decoded together and tokens each (after dsk_server_ready). */
void dsk_server_capacity(const dsk_server *s, int *slots, int *ctx, size_t *kv_bytes);
int dsk_server_port(const dsk_server *s);
/* Stops accepting, lets running requests finish for up to deadline_s
 * seconds, cancels the rest, and frees. */
void dsk_server_stop(dsk_server *s, double deadline_s);
/* Ends the wait of a stop (now or to come) for running requests at once:
 * they are cancelled as at the deadline (a second SIGTERM or SIGINT). */
void dsk_server_cut_grace(void);

#endif
