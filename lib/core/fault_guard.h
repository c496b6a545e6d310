/* Memory faults inside a marked region of code turned into an error return.
 *
 * LMDB trusts the file it maps: a damaged branch or leaf page (a flipped
 * byte a copy or a disk let through) can send a read outside the map, and
 * the process dies of SIGSEGV or SIGBUS with no word of which file was
 * bad.  Checking every page's MD5 before use would read the whole dataset
 * at start; instead the few calls that walk a shard's pages run inside a
 * region, and a fault there returns to the region's start:
 *
 *     dsk_fault_region fr;
 *     dsk_fault_enter(&fr);
 *     if (sigsetjmp(fr.jmp, 0)) {          // a fault came back here
 *         dsk_fault_leave(&fr);
 *         return report(fr.sig);
 *     }
 *     rc = mdb_get(...);
 *     dsk_fault_leave(&fr);
 *
 * Regions are per thread and nest.  A fault outside any region (a bug)
 * goes to the action that was there before (the default: a core dump, or
 * a sanitizer's report).  Nothing the region's code allocated is freed,
 * so a region must not be retried; it is for reporting the damage. */
#ifndef DSK_CORE_FAULT_GUARD_H
#define DSK_CORE_FAULT_GUARD_H

#include <setjmp.h>
#include <stddef.h>

/* For a function that reads memory a region guards on purpose (an
 * address that may be wild): AddressSanitizer would report the read
 * before it happens, where the region would catch its fault. */
#define DSK_NO_ASAN __attribute__((no_sanitize_address))

typedef struct dsk_fault_region {
    sigjmp_buf jmp;
    struct dsk_fault_region *outer;
    volatile int sig;   /* SIGSEGV or SIGBUS once a fault came back (or dsk_fault_escape's) */
    void *volatile addr;   /* the address that faulted (NULL from dsk_fault_escape) */
} dsk_fault_region;

/* Marks the region's start (installs the handlers on first use). */
void dsk_fault_enter(dsk_fault_region *r);
/* Marks its end; also to be called on the fault's path. */
void dsk_fault_leave(dsk_fault_region *r);

/* Leaves the innermost region of this thread as a fault would, with sig
 * for its cause: for a library's failure hook that must not return (LMDB's
 * assertion hook, which is followed by abort()).  Returns when the thread
 * is in no region. */
void dsk_fault_escape(int sig);

/* Where this process maps the file (dev, ino) at offset 0, as found by a
 * pointer p into that mapping, from /proc/self/maps: 0 with *start, -1
 * when p is in no mapping of that file, -2 when /proc/self/maps cannot be
 * read (a sandbox without /proc, no descriptor left). */
int dsk_mapping_of(const void *p, unsigned long long dev, unsigned long long ino, const void **start);

#endif
