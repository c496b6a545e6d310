/* Task files: JSON Lines of objects, one item a line, blank lines
 * skipped; what dsk-eval's mc and gen read, with FILE:LINE in messages. */
#ifndef DSK_EVAL_TASK_FILE_H
#define DSK_EVAL_TASK_FILE_H

#include <stdio.h>

#include "core/err.h"
#include "core/json.h"

typedef struct dsk_task_file {
    FILE *f;
    const char *path;
    char *line;
    size_t cap;
    long lineno;
} dsk_task_file;

int dsk_task_file_open(dsk_task_file *t, const char *path, dsk_err *err);
/* 1 with the next item in *doc (the caller puts it), 0 at the end, or an
 * error code (a line that is not a JSON object, a read error). */
int dsk_task_file_next(dsk_task_file *t, struct json_object **doc, dsk_err *err);
void dsk_task_file_close(dsk_task_file *t);

#endif
