/* The GPU checks' shared harness (harness.h says what it does). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

dsk_backend *REF, *DEV;
dsk_rng RNG;
int checks, failures;

static int self_check, self_check_asked;

int gh_start(int argc, char **argv)
{
    dsk_set_progname(argv[0]);
    int cpu_only = argc > 1 && !strcmp(argv[1], "--cpu");
    if (argc > 2 || (argc == 2 && !cpu_only)) {
        fprintf(stderr, "usage: %s [--cpu]\n", argv[0]);
        exit(64);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    return cpu_only;
}

int gh_count(int ok)
{
    checks++;
    failures += !ok;
    return ok;
}

float *gh_rnd(size_t n, float scale)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) {
        float v = (float)(0.1 + 0.9 * dsk_rng_uniform(&RNG));
        h[i] = (dsk_rng_uniform(&RNG) < 0.5 ? -v : v) * scale;
    }
    return h;
}

void *gh_upload(dsk_backend *be, const void *host, size_t bytes)
{
    void *d = be->alloc(be, bytes);
    be->upload(be, d, host, bytes);
    return d;
}

void *gh_poisoned(dsk_backend *be, size_t bytes)
{
    void *d = be->alloc(be, bytes);
    void *h = malloc(bytes ? bytes : 1);
    memset(h, 0xff, bytes);
    be->upload(be, d, h, bytes);
    free(h);
    return d;
}

void *gh_download(dsk_backend *be, const void *dev, size_t bytes)
{
    void *h = malloc(bytes ? bytes : 1);
    be->download(be, h, dev, bytes);
    return h;
}

static dsk_backend *open_cpu(void)
{
    dsk_err err = {0};
    dsk_backend *be = dsk_backend_new("cpu", 0, &err);
    if (!be)
        dsk_die_err(&err);
    return be;
}

void gh_open_ref(void)
{
    REF = open_cpu();
}

int gh_open_dev(int cpu_only, void (*absent)(double err))
{
    dsk_err err = {0};
    DEV = cpu_only ? NULL : dsk_backend_new("cuda", 0, &err);
    if (DEV)
        return 1;
    if (!cpu_only) {
        printf("# cuda backend: %s (exit code %d)\n", err.msg, err.code);
        int documented = err.code == EX_UNAVAILABLE &&
                         (!strncmp(err.msg, "no CUDA device: ", 16) || strstr(err.msg, "built without CUDA"));
        absent(documented ? 0 : 1);
    }
    self_check = 1;
    self_check_asked = cpu_only;
    DEV = open_cpu();
    return 0;
}

int gh_close(void)
{
    printf("%d checks, %d failed\n", checks, failures);
    if (self_check && !self_check_asked)
        printf("GPU half skipped: no CUDA device\n");
    REF->destroy(REF);
    DEV->destroy(DEV);
    return failures ? 1 : 0;
}
