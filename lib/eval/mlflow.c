#include "eval/mlflow.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/json.h"

#define CONNECT_TIMEOUT_MS 10000L
#define TOTAL_TIMEOUT_MS 30000L
/* A value added this long after the last flush triggers one. */
#define FLUSH_INTERVAL_S 15

struct dsk_mlflow {
    char *uri;      /* as given, less trailing slashes: for messages */
    char *api;      /* uri + "/api/2.0/mlflow/" */
    CURL *curl;     /* one handle, so the connection is reused */
    struct curl_slist *headers;
    char experiment_id[256];
    char run_id[256];
    dsk_mlflow_item *items;  /* the queue, in the order values were added */
    size_t n_items, cap_items;
    time_t last_flush;       /* CLOCK_MONOTONIC seconds */
    dsk_buf reply;           /* the body being received */
    int reply_too_large;
    char curl_error[CURL_ERROR_SIZE];
};

/* ---- small helpers ---- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static time_t monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* Server text goes into one-line diagnostics: control characters become
 * spaces and long text is cut, so a hostile or verbose server cannot flood
 * the terminal or smuggle escape sequences into it. */
static void clean_copy(char *dst, size_t cap, const char *src, size_t n)
{
    size_t j = 0, i = 0;
    for (; i < n && j + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[j++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    if (i < n && cap > 4) {  /* cut, at a UTF-8 character boundary: say so */
        j -= 3;
        while (j > 0 && ((unsigned char)dst[j] & 0xC0) == 0x80)
            j--;
        memcpy(dst + j, "...", 3);
        j += 3;
    }
    dst[j] = '\0';
}

static struct json_object *kv(const char *key, const char *value)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "key", json_object_new_string(key));
    json_object_object_add(o, "value", json_object_new_string(value));
    return o;
}

/* ---- runs/log-batch bodies ---- */

size_t dsk_mlflow_batch_body(const char *run_id, const dsk_mlflow_item *items, size_t n, dsk_buf *body)
{
    struct json_object *metrics = NULL, *params = NULL, *tags = NULL;
    size_t counts[3] = {0, 0, 0};
    const size_t limits[3] = {DSK_MLFLOW_BATCH_METRICS, DSK_MLFLOW_BATCH_PARAMS, DSK_MLFLOW_BATCH_TAGS};
    size_t taken = 0, bytes = 64 + strlen(run_id);
    for (; taken < n && taken < DSK_MLFLOW_BATCH_ITEMS; taken++) {
        const dsk_mlflow_item *it = &items[taken];
        if (counts[it->kind] == limits[it->kind])
            break;
        struct json_object *o;
        if (it->kind == DSK_MLFLOW_METRIC) {
            o = json_object_new_object();
            json_object_object_add(o, "key", json_object_new_string(it->key));
            /* json-c would print NaN and Infinity bare, which is not JSON;
             * protobuf's JSON mapping spells them as strings. */
            double v = it->number;
            json_object_object_add(o, "value",
                                   isnan(v)   ? json_object_new_string("NaN")
                                   : isinf(v) ? json_object_new_string(v > 0 ? "Infinity" : "-Infinity")
                                              : dsk_json_new_double(v));
            json_object_object_add(o, "timestamp", json_object_new_int64(it->timestamp));
            json_object_object_add(o, "step", json_object_new_int64(it->step));
        } else {
            o = kv(it->key, it->value);
        }
        size_t size;
        json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &size);
        if (taken > 0 && bytes + size + 1 > DSK_MLFLOW_BATCH_BYTES) {
            json_object_put(o);
            break;
        }
        bytes += size + 1;  /* and its comma */
        counts[it->kind]++;
        struct json_object **list = it->kind == DSK_MLFLOW_METRIC ? &metrics
                                    : it->kind == DSK_MLFLOW_PARAM ? &params
                                                                    : &tags;
        if (!*list)
            *list = json_object_new_array();
        json_object_array_add(*list, o);
    }
    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "run_id", json_object_new_string(run_id));
    if (metrics)
        json_object_object_add(req, "metrics", metrics);
    if (params)
        json_object_object_add(req, "params", params);
    if (tags)
        json_object_object_add(req, "tags", tags);
    dsk_buf_clear(body);
    dsk_json_append(req, body);
    json_object_put(req);
    return taken;
}

/* ---- replies ---- */

void dsk_mlflow_reply_free(dsk_mlflow_reply *r)
{
    if (r->json)
        json_object_put(r->json);
    r->json = NULL;
}

static int status_code(long status, const char *error_code)
{
    if (status >= 502 && status <= 504)
        return EX_UNAVAILABLE;  /* a proxy without its backend, or an overloaded server */
    if (status == 401 || status == 403)
        return EX_NOPERM;
    if (status == 400 && strcmp(error_code, "INVALID_PARAMETER_VALUE") == 0)
        return EX_DATAERR;  /* a key or value the server will not store */
    return EX_PROTOCOL;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int dsk_mlflow_reply_parse(dsk_mlflow_reply *r, long status, const char *body, size_t len, const char *what,
                           dsk_err *err)
{
    r->status = status;
    r->json = NULL;
    r->error_code[0] = '\0';
    if (len > DSK_MLFLOW_MAX_REPLY)
        return dsk_fail(err, EX_PROTOCOL, "%s: reply of %zu bytes is larger than %u", what, len,
                        DSK_MLFLOW_MAX_REPLY);
    /* dsk_json_parse allows no newline around the value, and MLflow ends
     * some replies with one */
    while (len > 0 && is_space(body[len - 1]))
        len--;
    while (len > 0 && is_space(body[0]))
        body++, len--;
    char msg[160];
    struct json_object *o = NULL;
    if (len == 0)
        o = json_object_new_object();  /* some endpoints answer 200 with no body */
    else
        o = dsk_json_parse(body, len, msg, sizeof msg);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
        snprintf(msg, sizeof msg, "not a JSON object");
    }

    if (status >= 200 && status < 300) {
        if (!o) {
            char snippet[81];
            clean_copy(snippet, sizeof snippet, body, len);
            return dsk_fail(err, EX_PROTOCOL, "%s: not an MLflow reply (%s): \"%s\"", what, msg, snippet);
        }
        r->json = o;
        return 0;
    }

    /* An error: MLflow sends {"error_code": "...", "message": "..."}. */
    struct json_object *code = o ? dsk_json_get_string(o, "error_code") : NULL;
    struct json_object *message = o ? dsk_json_get_string(o, "message") : NULL;
    if (code)
        clean_copy(r->error_code, sizeof r->error_code, json_object_get_string(code),
                   (size_t)json_object_get_string_len(code));
    int rc = status_code(status, r->error_code);
    if (code) {
        char text[600] = "";
        if (message)
            clean_copy(text, sizeof text, json_object_get_string(message),
                       (size_t)json_object_get_string_len(message));
        json_object_put(o);
        return dsk_fail(err, rc, "%s: HTTP %ld %s: %s", what, status, r->error_code, text);
    }
    if (o)
        json_object_put(o);
    char snippet[81];
    clean_copy(snippet, sizeof snippet, body, len);
    return dsk_fail(err, rc, "%s: HTTP %ld, not an MLflow error reply: \"%s\"", what, status, snippet);
}

const char *dsk_mlflow_reply_id(const dsk_mlflow_reply *r, const char *path, const char *what, dsk_err *err)
{
    struct json_object *o = r->json;
    char name[64];
    for (const char *p = path; o;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof name) {
            o = NULL;
            break;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, name, &o))
            o = NULL;
        if (!p[n])
            break;
        p += n + 1;
    }
    if (!dsk_json_is(o, json_type_string))
        return dsk_fail(err, EX_PROTOCOL, "%s: reply has no string %s", what, path), NULL;
    const char *s = json_object_get_string(o);
    size_t n = (size_t)json_object_get_string_len(o);
    int ok = n >= 1 && n <= 255;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] > 0x20 && s[i] < 0x7f;
    if (!ok)
        return dsk_fail(err, EX_PROTOCOL, "%s: %s in the reply is not an id", what, path), NULL;
    return s;
}

/* ---- HTTP ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
    dsk_mlflow *m = ctx;
    size_t n = size * nmemb;
    if (m->reply.len + n > DSK_MLFLOW_MAX_REPLY) {
        m->reply_too_large = 1;
        return 0;  /* ends the transfer with CURLE_WRITE_ERROR */
    }
    dsk_buf_add(&m->reply, p, n);
    return n;
}

/* One request: a GET when body is NULL, else a POST of JSON.  Fills r as
 * dsk_mlflow_reply_parse() does. */
static int call(dsk_mlflow *m, const char *endpoint, const dsk_buf *body, dsk_mlflow_reply *r, dsk_err *err)
{
    r->json = NULL;
    r->status = 0;
    r->error_code[0] = '\0';
    char what[512];
    snprintf(what, sizeof what, "%s: %s", m->uri, endpoint);
    dsk_buf url = {0};
    dsk_buf_printf(&url, "%s%s", m->api, endpoint);
    dsk_buf_clear(&m->reply);
    m->reply_too_large = 0;
    m->curl_error[0] = '\0';
    curl_easy_setopt(m->curl, CURLOPT_URL, url.data);
    if (body) {
        curl_easy_setopt(m->curl, CURLOPT_POSTFIELDS, body->data);
        curl_easy_setopt(m->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    } else {
        curl_easy_setopt(m->curl, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(m->curl);
    dsk_buf_free(&url);
    if (rc != CURLE_OK) {
        const char *why = m->curl_error[0] ? m->curl_error : curl_easy_strerror(rc);
        if (m->reply_too_large)
            return dsk_fail(err, EX_PROTOCOL, "%s: reply larger than %u bytes", what, DSK_MLFLOW_MAX_REPLY);
        switch (rc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
            return dsk_fail(err, EX_UNAVAILABLE, "%s: cannot reach the MLflow server: %s", what, why);
        default:
            return dsk_fail(err, EX_PROTOCOL, "%s: %s", what, why);
        }
    }
    curl_easy_getinfo(m->curl, CURLINFO_RESPONSE_CODE, &r->status);
    return dsk_mlflow_reply_parse(r, r->status, m->reply.data ? m->reply.data : "", m->reply.len, what, err);
}

/* POST a JSON object (taking it) and expect success. */
static int post(dsk_mlflow *m, const char *endpoint, struct json_object *req, dsk_mlflow_reply *r, dsk_err *err)
{
    dsk_buf body = {0};
    dsk_json_append(req, &body);
    json_object_put(req);
    int rc = call(m, endpoint, &body, r, err);
    dsk_buf_free(&body);
    return rc;
}

int dsk_mlflow_get(dsk_mlflow *m, const char *endpoint, struct json_object **out, dsk_err *err)
{
    dsk_mlflow_reply r;
    *out = NULL;
    int rc = call(m, endpoint, NULL, &r, err);
    if (rc == 0) {
        *out = r.json;
        r.json = NULL;
    }
    dsk_mlflow_reply_free(&r);
    return rc;
}

/* ---- the client ---- */

void dsk_mlflow_close(dsk_mlflow *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_items; i++) {
        free(m->items[i].key);
        free(m->items[i].value);
    }
    free(m->items);
    if (m->curl)
        curl_easy_cleanup(m->curl);
    curl_slist_free_all(m->headers);
    dsk_buf_free(&m->reply);
    free(m->uri);
    free(m->api);
    free(m);
}

/* The URI as messages show it: a password in it as "***". */
static char *shown_uri(const char *uri)
{
    const char *host = strstr(uri, "://");
    host = host ? host + 3 : uri;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    const char *colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
    if (!colon || (slash && slash < at))
        return dsk_xstrdup(uri);
    dsk_buf b = {0};
    dsk_buf_add(&b, uri, (size_t)(colon + 1 - uri));
    dsk_buf_adds(&b, "***");
    dsk_buf_adds(&b, at);
    return b.data;
}

int dsk_mlflow_check_uri(const char *uri, dsk_err *err)
{
    char *shown = shown_uri(uri);
    int rc = 0;
    size_t scheme = strncasecmp(uri, "http://", 7) == 0 ? 7 : strncasecmp(uri, "https://", 8) == 0 ? 8 : 0;
    if (!scheme)
        rc = dsk_fail(err, EX_USAGE, "MLflow tracking URI '%s' is not http:// or https://", shown);
    else if (!uri[scheme] || uri[scheme] == '/')
        rc = dsk_fail(err, EX_USAGE, "MLflow tracking URI '%s' has no host", shown);
    /* the API path is appended to the URI, so a query or fragment would swallow it */
    for (const char *p = uri; *p && !rc; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#')
            rc = dsk_fail(err, EX_USAGE, "MLflow tracking URI '%s' has a space, query or fragment", shown);
    if (!rc) {   /* the rest as libcurl will read it: a port, a bracketed address */
        CURLU *u = curl_url();
        CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, uri, 0) : CURLUE_OUT_OF_MEMORY;
        if (uc != CURLUE_OK)
#if LIBCURL_VERSION_NUM >= 0x075000
            rc = dsk_fail(err, EX_USAGE, "MLflow tracking URI '%s' is not a URL: %s", shown, curl_url_strerror(uc));
#else
            rc = dsk_fail(err, EX_USAGE, "MLflow tracking URI '%s' is not a URL", shown);
#endif
        curl_url_cleanup(u);
    }
    free(shown);
    return rc;
}

/* Sets up the handle; no network yet. */
dsk_mlflow *dsk_mlflow_connect(const char *uri, dsk_err *err)
{
    if (dsk_mlflow_check_uri(uri, err))
        return NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return dsk_fail(err, EX_SOFTWARE, "libcurl: %s", curl_easy_strerror(curl_init_rc)), NULL;
    dsk_mlflow *m = dsk_xcalloc(1, sizeof *m);
    size_t n = strlen(uri);
    while (n > 0 && uri[n - 1] == '/')
        n--;
    char *whole = dsk_xstrndup(uri, n);
    m->uri = shown_uri(whole);   /* for messages */
    dsk_buf api = {0};
    dsk_buf_printf(&api, "%s/api/2.0/mlflow/", whole);
    free(whole);
    m->api = api.data;
    m->last_flush = monotonic_s();
    m->curl = curl_easy_init();
    if (!m->curl) {
        dsk_mlflow_close(m);
        return dsk_fail(err, EX_SOFTWARE, "libcurl: cannot create a handle"), NULL;
    }
    CURL *c = m->curl;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  /* timeouts without SIGALRM: safe in threaded tools */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, m->curl_error);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  /* whatever this libcurl decodes */
    m->headers = curl_slist_append(NULL, "Content-Type: application/json");
    m->headers = curl_slist_append(m->headers, "Accept: application/json");
    const char *token = getenv("MLFLOW_TRACKING_TOKEN");
    const char *user = getenv("MLFLOW_TRACKING_USERNAME"), *password = getenv("MLFLOW_TRACKING_PASSWORD");
    if (token && *token) {
        dsk_buf h = {0};
        dsk_buf_printf(&h, "Authorization: Bearer %s", token);
        m->headers = curl_slist_append(m->headers, h.data);
        dsk_buf_free(&h);
    } else if (user && *user && password) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, password);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, m->headers);
    char agent[64];
    snprintf(agent, sizeof agent, "dsk (%s)", dsk_progname());
    curl_easy_setopt(c, CURLOPT_USERAGENT, agent);  /* copied by libcurl */
    return m;
}

/* The experiment's id, creating it when missing. */
static int find_experiment(dsk_mlflow *m, const char *name, dsk_err *err)
{
    char *escaped = curl_easy_escape(m->curl, name, 0);
    dsk_buf ep = {0};
    dsk_buf_printf(&ep, "experiments/get-by-name?experiment_name=%s", escaped ? escaped : "");
    curl_free(escaped);
    char what[512];
    snprintf(what, sizeof what, "%s: experiment '%s'", m->uri, name);
    dsk_mlflow_reply r;
    int rc = 0;
    /* Two tries: a run started elsewhere may create the experiment between
     * our get-by-name and create. */
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = call(m, ep.data, NULL, &r, err);
        if (rc == 0) {
            struct json_object *exp, *stage;
            if (json_object_object_get_ex(r.json, "experiment", &exp) &&
                (stage = dsk_json_get_string(exp, "lifecycle_stage")) &&
                strcmp(json_object_get_string(stage), "deleted") == 0)
                rc = dsk_fail(err, EX_CONFIG, "%s is deleted; restore it or use another name", what);
            const char *id = rc ? NULL : dsk_mlflow_reply_id(&r, "experiment.experiment_id", what, err);
            if (id)
                snprintf(m->experiment_id, sizeof m->experiment_id, "%s", id);
            else if (!rc)
                rc = EX_PROTOCOL;
            break;
        }
        if (strcmp(r.error_code, "RESOURCE_DOES_NOT_EXIST") != 0)
            break;
        dsk_mlflow_reply_free(&r);
        struct json_object *req = json_object_new_object();
        json_object_object_add(req, "name", json_object_new_string(name));
        rc = post(m, "experiments/create", req, &r, err);
        if (rc == 0) {
            const char *id = dsk_mlflow_reply_id(&r, "experiment_id", what, err);
            if (id)
                snprintf(m->experiment_id, sizeof m->experiment_id, "%s", id);
            else if (!rc)
                rc = EX_PROTOCOL;
            break;
        }
        if (strcmp(r.error_code, "RESOURCE_ALREADY_EXISTS") != 0)
            break;
        dsk_mlflow_reply_free(&r);
    }
    dsk_mlflow_reply_free(&r);
    dsk_buf_free(&ep);
    return rc;
}

dsk_mlflow *dsk_mlflow_start(const char *uri, const char *experiment, const char *run_name, dsk_err *err)
{
    if (!experiment || !*experiment)
        return dsk_fail(err, EX_USAGE, "MLflow: an experiment name is required"), NULL;
    dsk_mlflow *m = dsk_mlflow_connect(uri, err);
    if (!m)
        return NULL;
    if (find_experiment(m, experiment, err)) {
        dsk_mlflow_close(m);
        return NULL;
    }
    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "experiment_id", json_object_new_string(m->experiment_id));
    if (run_name && *run_name)
        json_object_object_add(req, "run_name", json_object_new_string(run_name));
    json_object_object_add(req, "start_time", json_object_new_int64(now_ms()));
    /* the tags MLflow's own client sets, which its UI shows */
    struct json_object *tags = json_object_new_array();
    json_object_array_add(tags, kv("mlflow.source.name", dsk_progname()));
    json_object_array_add(tags, kv("mlflow.source.type", "LOCAL"));
    const char *user = getenv("USER");
    if (user && *user)
        json_object_array_add(tags, kv("mlflow.user", user));
    json_object_object_add(req, "tags", tags);
    dsk_mlflow_reply r;
    int rc = post(m, "runs/create", req, &r, err);
    char what[512];
    snprintf(what, sizeof what, "%s: runs/create", m->uri);
    const char *id = rc ? NULL : dsk_mlflow_reply_id(&r, "run.info.run_id", what, err);
    if (id)
        snprintf(m->run_id, sizeof m->run_id, "%s", id);
    dsk_mlflow_reply_free(&r);
    if (!id) {
        dsk_mlflow_close(m);
        return NULL;
    }
    return m;
}

const char *dsk_mlflow_run_id(const dsk_mlflow *m) { return m->run_id; }
const char *dsk_mlflow_experiment_id(const dsk_mlflow *m) { return m->experiment_id; }

int dsk_mlflow_flush(dsk_mlflow *m, dsk_err *err)
{
    m->last_flush = monotonic_s();
    size_t done = 0;
    int rc = 0;
    dsk_buf body = {0};
    while (done < m->n_items) {
        size_t n = dsk_mlflow_batch_body(m->run_id, m->items + done, m->n_items - done, &body);
        dsk_mlflow_reply r;
        rc = call(m, "runs/log-batch", &body, &r, err);
        dsk_mlflow_reply_free(&r);
        done += n;  /* sent, or dropped: retrying a refused batch would fail again */
        if (rc) {
            size_t len = strlen(err->msg);
            snprintf(err->msg + len, sizeof err->msg - len, " (%zu value%s not logged)", n, n == 1 ? "" : "s");
            break;
        }
    }
    dsk_buf_free(&body);
    for (size_t i = 0; i < done; i++) {
        free(m->items[i].key);
        free(m->items[i].value);
    }
    if (done) {  /* items is NULL while nothing was ever queued */
        memmove(m->items, m->items + done, (m->n_items - done) * sizeof *m->items);
        m->n_items -= done;
    }
    return rc;
}

static int enqueue(dsk_mlflow *m, dsk_mlflow_item it, dsk_err *err)
{
    if (!m->run_id[0])
        return dsk_fail(err, EX_USAGE, "%s: no run to log to (a client from dsk_mlflow_connect)", m->uri);
    if (!it.key || !*it.key)
        return dsk_fail(err, EX_USAGE, "%s: an MLflow key must not be empty", m->uri);
    if (m->n_items == m->cap_items) {
        m->cap_items = m->cap_items ? 2 * m->cap_items : 64;
        m->items = dsk_xrealloc(m->items, m->cap_items * sizeof *m->items);
    }
    it.key = dsk_xstrdup(it.key);
    if (it.value)
        it.value = dsk_xstrdup(it.value);
    m->items[m->n_items++] = it;
    if (m->n_items >= DSK_MLFLOW_BATCH_ITEMS || monotonic_s() - m->last_flush >= FLUSH_INTERVAL_S)
        return dsk_mlflow_flush(m, err);
    return 0;
}

int dsk_mlflow_param(dsk_mlflow *m, const char *key, const char *value, dsk_err *err)
{
    return enqueue(m, (dsk_mlflow_item){.kind = DSK_MLFLOW_PARAM, .key = (char *)key, .value = (char *)(value ? value : "")},
                   err);
}

int dsk_mlflow_tag(dsk_mlflow *m, const char *key, const char *value, dsk_err *err)
{
    return enqueue(m, (dsk_mlflow_item){.kind = DSK_MLFLOW_TAG, .key = (char *)key, .value = (char *)(value ? value : "")},
                   err);
}

int dsk_mlflow_metric(dsk_mlflow *m, const char *key, double value, long step, dsk_err *err)
{
    return enqueue(m,
                   (dsk_mlflow_item){.kind = DSK_MLFLOW_METRIC, .key = (char *)key, .number = value, .step = step,
                                     .timestamp = now_ms()},
                   err);
}

int dsk_mlflow_finish(dsk_mlflow *m, int ok, dsk_err *err)
{
    if (!m)
        return 0;
    if (!m->run_id[0]) {
        dsk_mlflow_close(m);
        return 0;
    }
    int rc = dsk_mlflow_flush(m, err);
    ok = ok && !rc;   /* values the server refused: the run is not complete */
    dsk_err update_err;
    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "run_id", json_object_new_string(m->run_id));
    json_object_object_add(req, "status", json_object_new_string(ok ? "FINISHED" : "FAILED"));
    json_object_object_add(req, "end_time", json_object_new_int64(now_ms()));
    dsk_mlflow_reply r;
    int urc = post(m, "runs/update", req, &r, &update_err);
    dsk_mlflow_reply_free(&r);
    if (urc && !rc) {
        *err = update_err;
        rc = urc;
    }
    dsk_mlflow_close(m);
    return rc;
}
