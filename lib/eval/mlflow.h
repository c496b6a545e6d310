/* A client for an MLflow tracking server, over its REST API (libcurl).
 *
 * One dsk_mlflow is one run: dsk_mlflow_start() finds or creates the
 * experiment and creates the run; params, metrics and tags are queued and
 * sent with runs/log-batch, in chunks within MLflow's per-request limits;
 * dsk_mlflow_finish() sends what is left, marks the run FINISHED or FAILED
 * and frees the client.
 *
 * The queue is flushed when it holds a full batch or when a value is added
 * 15 s or more after the last flush, so a dashboard follows a long run; a
 * call that adds a value may therefore block on the network (at most 10 s
 * to connect and 30 s per request).  A batch the server refuses, or that
 * cannot be sent, is dropped and reported; what was queued after it stays
 * queued.
 *
 * Errors: EX_USAGE for a URI that is not http:// or https://,
 * EX_UNAVAILABLE when the server cannot be reached (the message names the
 * URI) or answers 502-504, EX_DATAERR when it refuses a value (HTTP 400),
 * EX_NOPERM for HTTP 401/403, EX_CONFIG for an experiment that was
 * deleted (MLflow keeps its name), EX_PROTOCOL for any other unexpected
 * reply.  MLflow's error_code and message are in the dsk_err message.
 *
 * A dsk_mlflow is for one thread at a time; separate clients may run in
 * separate threads.
 *
 * Authentication, as MLflow's own client reads it: MLFLOW_TRACKING_TOKEN
 * (a bearer token), else MLFLOW_TRACKING_USERNAME and
 * MLFLOW_TRACKING_PASSWORD (HTTP basic). */
#ifndef DSK_EVAL_MLFLOW_H
#define DSK_EVAL_MLFLOW_H

#include <json-c/json.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct dsk_mlflow dsk_mlflow;

/* uri: "http://host:port" (a path prefix and trailing slashes are fine).
 * experiment: its name; created when missing.  run_name may be NULL (the
 * server picks one).  Returns NULL and fills err on failure. */
dsk_mlflow *dsk_mlflow_start(const char *uri, const char *experiment, const char *run_name, dsk_err *err);

/* Queue a value for the run; 0 or an error code (see above; the value
 * itself stays queued unless its batch failed). */
int dsk_mlflow_param(dsk_mlflow *m, const char *key, const char *value, dsk_err *err);
int dsk_mlflow_tag(dsk_mlflow *m, const char *key, const char *value, dsk_err *err);
/* Timestamped now.  MLflow stores NaN and clamps +-Inf to +-DBL_MAX. */
int dsk_mlflow_metric(dsk_mlflow *m, const char *key, double value, long step, dsk_err *err);

/* Send everything queued now. */
int dsk_mlflow_flush(dsk_mlflow *m, dsk_err *err);

/* Flush, set the run's end time and status (FINISHED if ok and every
 * queued value was logged, else FAILED),
 * and free m, whatever fails.  Returns the first error.  m may be NULL;
 * a client from dsk_mlflow_connect() is just freed. */
int dsk_mlflow_finish(dsk_mlflow *m, int ok, dsk_err *err);

const char *dsk_mlflow_run_id(const dsk_mlflow *m);
const char *dsk_mlflow_experiment_id(const dsk_mlflow *m);

/* A client without a run, for reading the server with dsk_mlflow_get();
 * no network until then.  Free it with dsk_mlflow_close(). */
dsk_mlflow *dsk_mlflow_connect(const char *uri, dsk_err *err);
/* EX_USAGE unless uri is an http:// or https:// URI with a host and no
 * query, fragment or space: checked before any work, no network. */
int dsk_mlflow_check_uri(const char *uri, dsk_err *err);

/* Frees m without flushing or ending its run (the server shows it RUNNING:
 * for a client from dsk_mlflow_connect, or after fork).  m may be NULL. */
void dsk_mlflow_close(dsk_mlflow *m);

/* GET api/2.0/mlflow/<endpoint> (query included, already URL-encoded) and
 * return its JSON object in *out (the caller puts it).  For checks such as
 * reading a run back with "runs/get?run_id=...". */
int dsk_mlflow_get(dsk_mlflow *m, const char *endpoint, struct json_object **out, dsk_err *err);

/* ---- the pieces below the client, exposed for tests and fuzzing ---- */

/* MLflow's runs/log-batch limits per request (see its REST API page); the
 * byte budget keeps a body well under the 1 MB some servers enforce. */
enum {
    DSK_MLFLOW_BATCH_METRICS = 1000,
    DSK_MLFLOW_BATCH_PARAMS = 100,
    DSK_MLFLOW_BATCH_TAGS = 100,
    DSK_MLFLOW_BATCH_ITEMS = 1000,
    DSK_MLFLOW_BATCH_BYTES = 512 * 1024,
};

typedef enum { DSK_MLFLOW_METRIC, DSK_MLFLOW_PARAM, DSK_MLFLOW_TAG } dsk_mlflow_kind;

/* One queued value. */
typedef struct dsk_mlflow_item {
    dsk_mlflow_kind kind;
    char *key;
    char *value;          /* params and tags */
    double number;        /* metrics */
    long step;            /* metrics */
    long long timestamp;  /* metrics: milliseconds since the epoch */
} dsk_mlflow_item;

/* Writes the runs/log-batch body for the longest prefix of items[0..n)
 * that fits one request, and returns its length (at least 1 when n > 0:
 * an item too large alone still goes alone, for the server to judge).
 * Non-finite metric values are written as "NaN", "Infinity", "-Infinity",
 * the protobuf JSON spelling MLflow's server reads. */
size_t dsk_mlflow_batch_body(const char *run_id, const dsk_mlflow_item *items, size_t n, dsk_buf *body);

/* A server reply. */
typedef struct dsk_mlflow_reply {
    long status;              /* HTTP status */
    struct json_object *json; /* the body, when it is a JSON object */
    char error_code[64];      /* MLflow's error_code when it sent one, else "" */
} dsk_mlflow_reply;

/* Bodies larger than this are refused (a bounded read from the network). */
#define DSK_MLFLOW_MAX_REPLY (16u << 20)

/* Parses a reply to request `what` (a name for messages, such as
 * "http://host:5000: runs/create").  Returns 0 for a 2xx reply whose body
 * is a JSON object (an empty body counts as {}); otherwise fills err and
 * still sets r->status and r->error_code, so a caller can accept an
 * expected error such as RESOURCE_DOES_NOT_EXIST.  Free r with
 * dsk_mlflow_reply_free() either way. */
int dsk_mlflow_reply_parse(dsk_mlflow_reply *r, long status, const char *body, size_t len, const char *what,
                           dsk_err *err);
void dsk_mlflow_reply_free(dsk_mlflow_reply *r);

/* The string at a dotted path in r->json ("run.info.run_id"), checked to be
 * an id: 1 to 255 printable ASCII characters, no spaces.  NULL and
 * EX_PROTOCOL otherwise.  Valid until r is freed. */
const char *dsk_mlflow_reply_id(const dsk_mlflow_reply *r, const char *path, const char *what, dsk_err *err);

#endif
