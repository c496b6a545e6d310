/* Prometheus metrics for dsk-serve: a registry of counters, gauges and
 * histograms with labels, safe to update from any thread (one mutex), and
 * rendered as the text exposition format 0.0.4 for GET /metrics.
 *
 * Names follow vLLM's with a "dsk:" prefix, so dashboards written for
 * vllm:* carry over by renaming.  dsk_metrics_new defines the standard
 * families (the DSK_M_* names below); more can be defined before or while
 * serving.  Functions return 0, or -1 for a misuse (unknown family, wrong
 * type, bad label set, a negative counter increment, too many series) and
 * change nothing then: a metrics slip must never take the server down. */
#ifndef DSK_SERVE_METRICS_H
#define DSK_SERVE_METRICS_H

#include "core/buf.h"

#define DSK_M_REQUESTS          "dsk:requests_total"                 /* {endpoint,status} every HTTP answer */
#define DSK_M_REQUEST_SUCCESS   "dsk:request_success_total"          /* {finished_reason} stop|length|abort */
#define DSK_M_PROMPT_TOKENS     "dsk:prompt_tokens_total"
#define DSK_M_GENERATION_TOKENS "dsk:generation_tokens_total"
#define DSK_M_RUNNING           "dsk:num_requests_running"
#define DSK_M_WAITING           "dsk:num_requests_waiting"
#define DSK_M_KV_USAGE          "dsk:kv_cache_usage_perc"            /* 0..1, as vLLM */
#define DSK_M_PREFIX_QUERIES    "dsk:prefix_cache_queries_total"     /* tokens, as vLLM v1 */
#define DSK_M_PREFIX_HITS       "dsk:prefix_cache_hits_total"
#define DSK_M_SPEC_DRAFTED      "dsk:spec_decode_num_draft_tokens_total"     /* as vLLM v1 */
#define DSK_M_SPEC_ACCEPTED     "dsk:spec_decode_num_accepted_tokens_total"
#define DSK_M_JUMP_TOKENS       "dsk:jump_forward_tokens_total"
#define DSK_M_TTFT              "dsk:time_to_first_token_seconds"
#define DSK_M_TPOT              "dsk:time_per_output_token_seconds"
#define DSK_M_E2E               "dsk:e2e_request_latency_seconds"

#define DSK_METRICS_MAX_SERIES 256   /* per family: bounds label cardinality */

typedef enum { DSK_METRIC_COUNTER, DSK_METRIC_GAUGE, DSK_METRIC_HISTOGRAM } dsk_metric_type;

typedef struct dsk_metrics dsk_metrics;

dsk_metrics *dsk_metrics_new(void);   /* with the standard families */
void dsk_metrics_free(dsk_metrics *m);

/* Defines a family.  name matches [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* (not "le", not starting "__"), label_names is
 * NULL-terminated (or NULL for none); a histogram needs its finite upper
 * bounds, strictly increasing (+Inf is implied).  A family without labels
 * starts with one series at 0, so it is exported before its first use. */
int dsk_metrics_define(dsk_metrics *m, const char *name, dsk_metric_type type, const char *help,
                       const char *const *label_names, const double *buckets, int n_buckets);

/* labels: the values, in the order of the family's label names (NULL when
 * it has none).  Values may be any bytes; they are escaped on output. */
int dsk_metrics_inc(dsk_metrics *m, const char *name, const char *const *labels, double v);  /* counter, gauge */
/* gauge; or counter, to a value not below its own (one mirrored from a
 * total kept elsewhere) */
int dsk_metrics_set(dsk_metrics *m, const char *name, const char *const *labels, double v);
int dsk_metrics_observe(dsk_metrics *m, const char *name, const char *const *labels, double v);  /* histogram */

/* Appends every family, in definition order, with # HELP and # TYPE
 * lines; series in order of first use; histograms as cumulative
 * _bucket{le=...} (ending le="+Inf"), _sum and _count. */
void dsk_metrics_render(dsk_metrics *m, dsk_buf *out);

/* The Content-Type for the rendered text. */
#define DSK_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
