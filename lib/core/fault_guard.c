#include "core/fault_guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

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
        r->addr = si->si_addr;
        innermost = r->outer;
        siglongjmp(r->jmp, 1);
    }
    /* Not ours: the action that was there before takes over, with its own
     * flags and mask (SA_RESETHAND, SA_ONSTACK, SIG_IGN).  Returning re-runs
     * the faulting access, which now goes to it; a sent signal is raised
     * again. */
    sigaction(sig, sig == SIGBUS ? &previous_bus : &previous_segv, NULL);
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
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;   /* ONSTACK: a sanitizer's stack-overflow report */
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
    r->addr = NULL;
    innermost = r->outer;
    siglongjmp(r->jmp, 1);
}

void dsk_fault_enter(dsk_fault_region *r)
{
    pthread_once(&installed, install);
    r->sig = 0;
    r->addr = NULL;
    r->outer = innermost;
    innermost = r;
}

void dsk_fault_leave(dsk_fault_region *r)
{
    if (innermost == r)
        innermost = r->outer;
}

int dsk_mapping_of(const void *p, unsigned long long dev, unsigned long long ino, const void **start)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -2;
    char *line = NULL;
    size_t cap = 0;
    int rc = -1;
    uintptr_t at = (uintptr_t)p;
    /* "lo-hi perms offset major:minor inode path"; a mapping split in
     * parts (madvise, mlock) is found by any part: start = lo - offset. */
    while (rc && getline(&line, &cap, f) > 0) {
        unsigned long lo, hi;
        unsigned long long off, inode;
        unsigned maj, mnr;
        if (sscanf(line, "%lx-%lx %*s %llx %x:%x %llu", &lo, &hi, &off, &maj, &mnr, &inode) == 6 && lo <= at &&
            at < hi && inode == ino && makedev(maj, mnr) == dev && off <= lo) {
            *start = (const void *)(lo - (uintptr_t)off);
            rc = 0;
        }
    }
    free(line);
    fclose(f);
    return rc;
}
