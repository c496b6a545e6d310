/* dsk-serve: an OpenAI-compatible HTTP server for a checkpoint.  See dsk-serve(1). */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/outfile.h"
#include "eval/eval.h"
#include "ops/blas_kernels.h"
#include "serve/engine.h"
#include "serve/server.h"

/* SIGTERM and SIGINT, waited for by a thread of their own from the start:
 * while the checkpoint loads there is nothing to finish, and the process
 * ends at once (a large model's load must not outlast an orchestrator's
 * grace period); once serving, main is told and stops the server. */
typedef struct signal_watch {
    sigset_t set;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int serving, sig;
} signal_watch;

static const char *signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : "SIGINT"; }

/* After the first: another signal cuts the grace period short. */
static void *watch_second_signal(void *arg)
{
    signal_watch *w = arg;
    int sig = 0;
    sigwait(&w->set, &sig);
    fprintf(stderr, "dsk-serve: %s again: cancelling running requests\n", signal_name(sig));
    dsk_server_cut_grace();
    return NULL;
}

static void *watch_signals(void *arg)
{
    signal_watch *w = arg;
    int sig = 0;
    sigwait(&w->set, &sig);
    pthread_mutex_lock(&w->mu);
    if (!w->serving) {
        fprintf(stderr, "dsk-serve: %s while loading: stopped\n", signal_name(sig));
        _exit(0);   /* nothing written, nothing in flight: the kernel closes the socket */
    }
    w->sig = sig;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static const char usage[] =
    "Usage: dsk-serve CKPT [--host 127.0.0.1] [--port 8080] [OPTIONS]\n"
    "Serve a checkpoint (full precision or dsk-quant's 4-bit) over an OpenAI-compatible HTTP API:\n"
    "POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics, GET /.\n"
    "\n"
    "      --host ADDR       IPv4 address to listen on (default 127.0.0.1: this machine only)\n"
    "  -p, --port N          port (default 8080; 0: any free port, printed on stderr)\n"
    "      --max-batch N     sequences decoded together (default 8)\n"
    "      --max-queue N     sequences (a request's n choices) waiting before 429 (default 64)\n"
    "      --max-rows N      rows per batched step, decode plus prefill chunk (default 64)\n"
    "      --ctx N           tokens per sequence (default: the model's context)\n"
    "      --kv-memory SIZE  memory for the KV caches, e.g. 512M or 4G: fewer sequences if it\n"
    "                        holds fewer than --max-batch of --ctx tokens (default: no limit)\n"
    "      --max-body N      request bytes (default 1048576)\n"
    "      --timeout S       seconds per request (default 300)\n"
    "      --max-connections N  connections at once (default 256)\n"
    "      --idle-timeout S  close a connection silent this long (default 60)\n"
    "      --api-key KEY     require Authorization: Bearer KEY (or set DSK_API_KEY)\n"
    "      --model-name NAME what /v1/models lists (default: the checkpoint's step directory's name)\n"
    "      --json-compact    answers in JSON mode (response_format) carry no whitespace outside\n"
    "                        strings (default: up to 24 bytes in a row)\n"
    "      --speculate K     speculative decoding: draft up to K (0-7) tokens a step by looking the\n"
    "                        answer's last tokens up in its prompt and answer, checked by the\n"
    "                        model in one batched step (the same answers; default 0: off)\n"
    "      --speculate-ngram N  the longest run of last tokens looked up (default 3)\n"
    "      --no-jump-forward draw every token of JSON answers and tool calls, even where the\n"
    "                        grammar allows one byte only (default: such bytes are taken whole,\n"
    "                        encoded by the tokenizer, several a step)\n"
    "      --grace S         on SIGTERM, seconds to let running requests finish (default 10)\n"
    "      --device NAME     cuda[:N] or cpu (default: cuda when a GPU is present, else cpu)\n"
    "  -j, --threads N       threads (default: all cores)\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 after SIGTERM/SIGINT, 64 usage, 65 bad checkpoint, 66 missing input, 69 cannot listen.\n";

enum { OPT_HOST = 256, OPT_BATCH, OPT_QUEUE, OPT_ROWS, OPT_CTX, OPT_BODY, OPT_TIMEOUT, OPT_KEY, OPT_NAME, OPT_GRACE,
       OPT_DEVICE, OPT_KV, OPT_CONNS, OPT_IDLE, OPT_JSON_COMPACT, OPT_SPECULATE, OPT_SPEC_NGRAM, OPT_NO_JUMP };

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},       {"port", required_argument, NULL, 'p'},
    {"max-batch", required_argument, NULL, OPT_BATCH}, {"max-queue", required_argument, NULL, OPT_QUEUE},
    {"max-rows", required_argument, NULL, OPT_ROWS},   {"ctx", required_argument, NULL, OPT_CTX},
    {"max-body", required_argument, NULL, OPT_BODY},   {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"api-key", required_argument, NULL, OPT_KEY},     {"model-name", required_argument, NULL, OPT_NAME},
    {"grace", required_argument, NULL, OPT_GRACE},     {"device", required_argument, NULL, OPT_DEVICE},
    {"kv-memory", required_argument, NULL, OPT_KV},    {"threads", required_argument, NULL, 'j'},
    {"max-connections", required_argument, NULL, OPT_CONNS}, {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"json-compact", no_argument, NULL, OPT_JSON_COMPACT}, {"no-jump-forward", no_argument, NULL, OPT_NO_JUMP},
    {"speculate", required_argument, NULL, OPT_SPECULATE}, {"speculate-ngram", required_argument, NULL, OPT_SPEC_NGRAM},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},               {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    dsk_blas_choose_kernels(argv);   /* may start this program again, before anything else */
    dsk_set_progname(argv[0]);
    dsk_server_opts o = {0};
    o.port = 8080;
    o.api_key = getenv("DSK_API_KEY");
    const char *device = NULL;   /* dsk_backend_default() */
    double grace = 10;
    int threads = 0, opt;
    while ((opt = getopt_long(argc, argv, ":p:j:hV", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_HOST: o.host = optarg; break;
        case 'p': o.port = (int)dsk_parse_int("--port", optarg, 0, 65535); break;
        case OPT_BATCH: o.max_batch = (int)dsk_parse_int("--max-batch", optarg, 1, 1024); break;
        case OPT_QUEUE: o.max_queue = (int)dsk_parse_int("--max-queue", optarg, 1, 1 << 20); break;
        case OPT_ROWS: o.max_rows = (int)dsk_parse_int("--max-rows", optarg, 1, 1 << 16); break;
        case OPT_CTX: o.ctx = (int)dsk_parse_int("--ctx", optarg, 2, 1 << 24); break;
        case OPT_BODY: o.max_body = (size_t)dsk_parse_int("--max-body", optarg, 64, 1LL << 30); break;
        case OPT_TIMEOUT: o.timeout_s = dsk_parse_double("--timeout", optarg, 0.001, 1e6); break;
        case OPT_CONNS:   /* libmicrohttpd's select() takes descriptors below 1024 */
            o.max_connections = (int)dsk_parse_int("--max-connections", optarg, 1, 1000);
            break;
        case OPT_IDLE: o.idle_timeout_s = (int)dsk_parse_int("--idle-timeout", optarg, 1, 86400); break;
        case OPT_KEY: o.api_key = optarg; break;
        case OPT_NAME:
            if (!*optarg)
                dsk_usage_error("--model-name: an empty name lists no model a client can ask for");
            o.model_name = optarg;
            break;
        case OPT_GRACE: grace = dsk_parse_double("--grace", optarg, 0, 1e6); break;
        case OPT_DEVICE: device = optarg; break;
        case OPT_JSON_COMPACT: o.json_compact = 1; break;
        case OPT_NO_JUMP: o.no_jump_forward = 1; break;
        case OPT_SPECULATE: o.speculate = (int)dsk_parse_int("--speculate", optarg, 0, DSK_SPEC_MAX); break;
        case OPT_SPEC_NGRAM: o.speculate_ngram = (int)dsk_parse_int("--speculate-ngram", optarg, 1, 64); break;
        case OPT_KV: o.kv_memory = (size_t)dsk_parse_size("--kv-memory", optarg); break;
        case 'j': threads = (int)dsk_parse_int("--threads", optarg, 1, 4096); break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': dsk_print_version(); return 0;
        default: dsk_usage_bad_option(opt, argv, long_options);
        }
    }
    if (argc - optind != 1)
        dsk_usage_error("expected one checkpoint");
    if (o.api_key && !*o.api_key)
        dsk_usage_error("--api-key: empty");
    /* SIGTERM and SIGINT go to watch_signals (blocked here before any
     * thread starts, so in every thread); SIGPIPE from a client that went
     * away must not kill the server. */
    signal_watch w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    sigemptyset(&w.set);
    int watched = 0;
    static const int stop_signals[] = {SIGINT, SIGTERM};
    for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
        if (!dsk_signal_ignored(stop_signals[i])) {   /* dsk(7): one started ignored stays so */
            sigaddset(&w.set, stop_signals[i]);
            watched++;
        }
    pthread_sigmask(SIG_BLOCK, &w.set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t watcher;
    if (watched && pthread_create(&watcher, NULL, watch_signals, &w) != 0)
        dsk_die(EX_OSERR, "cannot start a thread");
    dsk_err err = {0};
    /* Listen first: /health says 503 while the checkpoint loads. */
    dsk_server *s = dsk_server_start(&o, &err);
    if (!s)
        dsk_die_err(&err);
    fprintf(stderr, "dsk-serve: loading %s on http://%s:%d/\n", argv[optind], o.host ? o.host : "127.0.0.1",
            dsk_server_port(s));
    const char *load_delay = getenv("DSK_SERVE_LOAD_DELAY_MS");   /* for tests: a slow load */
    double load_delay_ms = load_delay ? strtod(load_delay, NULL) : 0;
    if (load_delay_ms > 0 && load_delay_ms <= 600000)
        usleep((useconds_t)(load_delay_ms * 1000));
    dsk_loaded l;
    int rc = dsk_load_checkpoint(&l, argv[optind], device ? device : dsk_backend_default(), threads, &err);
    if (!rc) {
        dsk_loaded_freeze(&l);   /* served weights change no more */
        rc = dsk_server_ready(s, &l, &err);
    }
    pthread_mutex_lock(&w.mu);
    w.serving = !rc;
    pthread_mutex_unlock(&w.mu);
    if (rc) {
        dsk_server_stop(s, 0);
        dsk_die_err(&err);
    }
    int slots, ctx;
    size_t kv;
    dsk_server_capacity(s, &slots, &ctx, &kv);
    fprintf(stderr, "dsk-serve: ready: %s%s, %d sequences of up to %d tokens, KV cache %.1f MiB\n", l.dir,
            l.quantized ? " (4-bit)" : "", slots, ctx, kv / 1048576.0);
    pthread_mutex_lock(&w.mu);
    while (!w.sig)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_join(watcher, NULL);   /* w.sig set: there is a watcher */
    pthread_t second;
    if (pthread_create(&second, NULL, watch_second_signal, &w) == 0)
        pthread_detach(second);   /* (blocked in sigwait when the process ends) */
    fprintf(stderr, "dsk-serve: %s: finishing running requests (up to %.0f s; again to cancel them)\n",
            signal_name(w.sig), grace);
    dsk_server_stop(s, grace);
    dsk_loaded_free(&l);
    return 0;
}
