/* Any task as per-item scores, so dsk-eval ab can pair two checkpoints'
 * results item by item whatever the task's kind. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/json.h"
#include "eval/eval.h"
#include "eval/task_file.h"

int dsk_task_kind(const char *task, int *kind, dsk_err *err)
{
    struct stat st;
    if (stat(task, &st) != 0)
        return dsk_fail(err, EX_NOINPUT, "%s: no such task file or dataset", task);
    if (S_ISDIR(st.st_mode)) {
        *kind = DSK_TASK_PPL;
        return 0;
    }
    dsk_task_file tf;
    int rc = dsk_task_file_open(&tf, task, err);
    struct json_object *doc = NULL, *choices;
    if (!rc) {
        int got = dsk_task_file_next(&tf, &doc, err);
        rc = got < 0 ? err->code : got == 0 ? dsk_fail(err, EX_DATAERR, "%s: no items", task) : 0;
    }
    if (!rc)
        *kind = json_object_object_get_ex(doc, "choices", &choices) ? DSK_TASK_MC : DSK_TASK_GEN;
    json_object_put(doc);
    dsk_task_file_close(&tf);
    return rc;
}

int dsk_eval_task(dsk_loaded *l, const char *task, int split, int batch, long rows, const dsk_gen_opts *g,
                  dsk_task_scores *s, dsk_err *err)
{
    memset(s, 0, sizeof *s);
    int rc = dsk_task_kind(task, &s->kind, err);
    if (rc)
        return rc;
    if (s->kind == DSK_TASK_PPL) {
        dsk_ppl_result r;
        if ((rc = dsk_eval_ppl(l, task, split, batch, rows, &r, err)) == 0) {
            s->n_metrics = 1;
            s->metric[0] = "loss";
            s->value[0] = r.loss;
            s->item[0] = r.row_loss;
            s->n = r.rows;
            r.row_loss = NULL;
        }
        dsk_ppl_result_free(&r);
    } else if (s->kind == DSK_TASK_MC) {
        dsk_mc_opts o = {batch, NULL};
        dsk_mc_result r;
        if ((rc = dsk_eval_mc(l, task, &o, &r, err)) == 0) {
            s->n_metrics = 2;
            s->metric[0] = "acc";
            s->metric[1] = "acc_norm";
            s->higher_better[0] = s->higher_better[1] = 1;
            s->value[0] = r.acc;
            s->value[1] = r.acc_norm;
            s->item[0] = r.item_acc;
            s->item[1] = r.item_acc_norm;
            s->n = r.items;
            r.item_acc = r.item_acc_norm = NULL;
        }
        dsk_mc_result_free(&r);
    } else {
        dsk_gen_result r;
        if ((rc = dsk_eval_gen(l, task, g, &r, err)) == 0) {
            s->n_metrics = 1;
            s->metric[0] = "exact_match";
            s->higher_better[0] = 1;
            s->value[0] = r.accuracy;
            s->item[0] = r.item_correct;
            s->n = r.items;
            r.item_correct = NULL;
        }
        dsk_gen_result_free(&r);
    }
    return rc;
}

void dsk_task_scores_free(dsk_task_scores *s)
{
    free(s->item[0]);
    free(s->item[1]);
    memset(s, 0, sizeof *s);
}
