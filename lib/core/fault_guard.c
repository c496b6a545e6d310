#include "core/fault_guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local dsk_fault_region *innermost;
static struct sigaction previous_segv, previous_bus;
static pthread_once_t installed = PTHREAD_ONCE_INIT;

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
    dsk_fault_region *r = innermost;
    /* si_code > 0: the kernel's, for this thread's own access; a SIGSEGV
     * sent with kill() is not a fault of the region. */
    if (r && si && si->si_code > 0) {
        r->sig = sig;
        innermost = r->outer;
        siglongjmp(r->jmp, 1);
    }
    struct sigaction *prev = sig == SIGBUS ? &previous_bus : &previous_segv;
    if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction) {
        prev->sa_sigaction(sig, si, ctx);
        return;
    }
    if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    /* The default action: returning re-runs the faulting access, which now
     * ends the process as it would have; a sent signal is raised again. */
    signal(sig, SIG_DFL);
    if (!si || si->si_code <= 0)
        raise(sig);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    /* SA_NODEFER: the handler leaves by siglongjmp without restoring the
     * signal mask (sigsetjmp(.., 0) is cheap), so the signal must not be
     * blocked while it runs. */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
    sigaction(SIGBUS, &sa, &previous_bus);
}

void dsk_fault_escape(int sig)
{
    dsk_fault_region *r = innermost;
    if (!r)
        return;
    r->sig = sig;
    innermost = r->outer;
    siglongjmp(r->jmp, 1);
}

void dsk_fault_enter(dsk_fault_region *r)
{
    pthread_once(&installed, install);
    r->sig = 0;
    r->outer = innermost;
    innermost = r;
}

void dsk_fault_leave(dsk_fault_region *r)
{
    if (innermost == r)
        innermost = r->outer;
}

int dsk_mapping_of(const void *p, const void **start, size_t *len)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int rc = -1;
    uintptr_t at = (uintptr_t)p;
    while (rc && getline(&line, &cap, f) > 0) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= at && at < hi) {
            *start = (const void *)lo;
            *len = hi - lo;
            rc = 0;
        }
    }
    free(line);
    fclose(f);
    return rc;
}
