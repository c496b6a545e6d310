#include "core/json.h"

#include <pthread.h>
#include <stdio.h>

/* A tokener per thread, reused (creating one allocates its parse stack),
 * and freed when its thread exits. */
static pthread_key_t tokener_key;
static pthread_once_t tokener_once = PTHREAD_ONCE_INIT;

static void free_tokener(void *t) { json_tokener_free(t); }
static void make_key(void) { pthread_key_create(&tokener_key, free_tokener); }

static struct json_tokener *thread_tokener(void)
{
    pthread_once(&tokener_once, make_key);
    struct json_tokener *t = pthread_getspecific(tokener_key);
    if (!t) {
        t = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
        json_tokener_set_flags(t, JSON_TOKENER_STRICT);
        pthread_setspecific(tokener_key, t);
    }
    return t;
}

struct json_object *dsk_json_parse(const char *s, size_t n, char *msg, size_t msg_len)
{
    struct json_tokener *tokener = thread_tokener();
    json_tokener_reset(tokener);
    size_t start = 0;
    while (start < n && (s[start] == ' ' || s[start] == '\t' || s[start] == '\r'))
        start++;
    struct json_object *o = json_tokener_parse_ex(tokener, s + start, (int)(n - start));
    enum json_tokener_error e = json_tokener_get_error(tokener);
    size_t end = start + json_tokener_get_parse_end(tokener);
    if (!o || e != json_tokener_success) {
        if (o)
            json_object_put(o);
        if (e == json_tokener_continue)
            snprintf(msg, msg_len, "unexpected end of line at column %zu", n + 1);
        else
            snprintf(msg, msg_len, "%s at column %zu", json_tokener_error_desc(e), end + 1);
        return NULL;
    }
    while (end < n && (s[end] == ' ' || s[end] == '\t' || s[end] == '\r'))
        end++;
    if (end < n) {
        json_object_put(o);
        snprintf(msg, msg_len, "unexpected text after the value at column %zu", end + 1);
        return NULL;
    }
    return o;
}

void dsk_json_append(struct json_object *o, dsk_buf *out)
{
    size_t len;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    dsk_buf_add(out, s, len);
}

struct json_object *dsk_json_get_string(struct json_object *obj, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return v;
}
