#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/task_file.h"

int dsk_task_file_open(dsk_task_file *t, const char *path, dsk_err *err)
{
    memset(t, 0, sizeof *t);
    t->path = path;
    t->f = fopen(path, "rb");
    if (!t->f)
        return dsk_fail(err, EX_NOINPUT, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(t->f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(t->f);
        t->f = NULL;
        return dsk_fail(err, EX_NOINPUT, "%s: is a directory (a task file is JSON Lines; a dataset is a task for ab "
                        "only)", path);
    }
    return 0;
}

int dsk_task_file_next(dsk_task_file *t, struct json_object **doc, dsk_err *err)
{
    ssize_t len;
    *doc = NULL;
    while ((len = getline(&t->line, &t->cap, t->f)) > 0) {
        t->lineno++;
        if (strspn(t->line, " \t\r\n") == (size_t)len)   /* a blank line, CRLF or not */
            continue;
        char msg[256];
        struct json_object *o = dsk_json_parse(t->line, (size_t)len, msg, sizeof msg);
        if (!dsk_json_is(o, json_type_object)) {
            json_object_put(o);
            int parsed = o || strncmp(msg, "null,", 5) == 0;   /* JSON, of another type */
            return -dsk_fail(err, EX_DATAERR, "%s:%ld: %s%s", t->path, t->lineno, parsed ? "" : "not JSON: ",
                             o ? "not a JSON object" : msg);
        }
        *doc = o;
        return 1;
    }
    if (ferror(t->f))
        return -dsk_fail(err, EX_IOERR, "%s: read error", t->path);
    return 0;
}

void dsk_task_file_close(dsk_task_file *t)
{
    if (t->f)
        fclose(t->f);
    free(t->line);
    memset(t, 0, sizeof *t);
}
