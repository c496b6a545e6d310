/* libFuzzer target: an MLflow server's reply on arbitrary bytes.  The first
 * byte picks the HTTP status, the second the id path looked up, the rest is
 * the body.  Whatever the server sends, the client parses or fails cleanly,
 * and what reaches a diagnostic is one line without control characters. */
#include <string.h>

#include "eval/mlflow.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void check_clean(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        __builtin_trap();  /* not terminated */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static const long statuses[] = {200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503, 0, 999};
    static const char *paths[] = {"experiment.experiment_id", "experiment_id", "run.info.run_id", "run", "",
                                  "a.b.c.d.e.f.g.h"};
    if (size < 2)
        return 0;
    long status = statuses[data[0] % (sizeof statuses / sizeof *statuses)];
    const char *path = paths[data[1] % (sizeof paths / sizeof *paths)];
    dsk_mlflow_reply r;
    dsk_err err = {0};
    int rc = dsk_mlflow_reply_parse(&r, status, (const char *)data + 2, size - 2, "fuzz", &err);
    if ((rc == 0) != (r.json != NULL) || (rc == 0 && (status < 200 || status > 299)))
        __builtin_trap();
    check_clean(r.error_code, sizeof r.error_code);
    if (rc) {
        check_clean(err.msg, sizeof err.msg);
    } else {
        const char *id = dsk_mlflow_reply_id(&r, path, "fuzz", &err);
        if (id) {
            size_t n = strlen(id);
            if (n < 1 || n > 255)
                __builtin_trap();
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
                    __builtin_trap();
        }
    }
    dsk_mlflow_reply_free(&r);
    return 0;
}
