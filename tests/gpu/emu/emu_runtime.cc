/* The CPU emulation's runtime (emu.h says what the emulation is): kernel
 * launches on fibers, and the CUDA runtime calls the backend makes, with
 * the real headers' signatures.
 *
 * A launch runs its blocks one at a time in a shuffled order.  A block's
 * threads are fibers (Boost.Context: a switch costs nanoseconds, where
 * ucontext's costs a system call) on stacks from a pool; each runs until
 * it reaches a barrier (__syncthreads, or a warp collective: a shuffle, a
 * WMMA call) or returns, in a shuffled order (run_block says how warps
 * take turns).  When every lane of a warp waits at the same collective,
 * the warp goes on; when every live thread waits at __syncthreads, the
 * block does; when neither can happen the threads disagree about which
 * barrier comes next, which the hardware leaves undefined: the emulator
 * says so and aborts.
 *
 * DSK_EMU_SEED picks the shuffles (default 1), DSK_EMU_SMS the
 * multiprocessors reported (default 2: grid-stride loops go round more
 * than once), DSK_EMU_DEVICES the devices (default 1), DSK_EMU_MEMORY_MB
 * the device memory (default 16384), or DSK_EMU_MEMORY_KB to the KiB;
 * DSK_EMU_PEAK_FILE a file the most device memory ever allocated at once
 * is written to (in bytes) when the program ends (tests/gpu/emu/oom_check.sh
 * sizes its device with it). */
#include "emu.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <boost/context/fiber.hpp>

#include <deque>
#include <map>
#include <mutex>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

__thread uint3 threadIdx, blockIdx, blockDim, gridDim;

/* ---- settings ---- */

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "emu: %s=%s: expected an integer from %ld to %ld\n", name, s, lo, hi);
        exit(64);
    }
    return v;
}

/* "emu: LEAD" and the message, a line on stderr: what every complaint
 * below says before it aborts, refuses or fails. */
static void say(const char *lead, const char *fmt, va_list ap)
{
    fprintf(stderr, "emu: %s", lead);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

[[noreturn]] static void emu_abort(const char *site, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emu_abort(const char *site, const char *fmt, ...)
{
    char lead[256];
    snprintf(lead, sizeof lead, "%s: ", site);
    va_list ap;
    va_start(ap, fmt);
    say(lead, fmt, ap);
    va_end(ap);
    abort();
}

/* xorshift64*: the shuffles, the same for the same DSK_EMU_SEED. */
static __thread uint64_t rng_state;
static uint64_t rng_next(void)
{
    if (!rng_state)
        rng_state = 0x9e3779b97f4a7c15ull * (uint64_t)env_long("DSK_EMU_SEED", 1, 0, LONG_MAX) + 1;
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
/* v[0..n) in a random order (Fisher-Yates). */
static void shuffle(unsigned *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next() % i);
        unsigned t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

/* ---- fibers ---- */

enum fiber_state { RUNNABLE, AT_SYNCTHREADS, AT_WARP, FINISHED };

/* A cp.async not yet performed (emu.h). */
typedef struct cp_copy {
    void *dst;
    const void *src;
    int src_bytes;
} cp_copy;

/* One thread of the running block.  Fiber i serves thread i of every
 * block, launch after launch: made once, it returns to the scheduler
 * after each body and waits there for the next (making a fiber for each
 * thread of each block cost more than most kernels' work). */
typedef struct fiber {
    boost::context::fiber self;   /* where the thread goes on from */
    boost::context::fiber sink;   /* the scheduler, while the thread runs */
    fiber_state state;
    const char *collective;   /* the warp collective it is in or last was: "__shfl_xor_sync", ... */
    uint3 tid;
    char *stack;   /* its lowest usable byte */
    std::vector<cp_copy> cp_open;                 /* cp.async copies since the last commit */
    std::deque<std::vector<cp_copy>> cp_groups;   /* committed groups, oldest first */
} fiber;

/* A block being run: its threads and what they share. */
typedef struct block_run {
    const char *site;
    void (*body)(void *);
    void *ctx;
    fiber *fibers;   /* the pool's first `threads` */
    unsigned threads, live, current;
    std::vector<uint64_t> warp_slots;   /* 32 a warp */
    void *dynamic_smem;
    size_t dynamic_smem_len;
    int cp_eager;   /* this block performs cp.async copies when issued (else at their wait) */
} block_run;

static __thread block_run *running;   /* the block whose threads run now */

enum { STACK_BYTES = 64 << 10, MAX_THREADS = 1024 };
static __thread fiber *pool;          /* MAX_THREADS, made as needed; never freed (pools) */
static __thread unsigned pool_made;
static __thread char *stack_pool;     /* MAX_THREADS stacks, each above a guard page */
#if EMU_ASAN
static __thread const void *scheduler_bottom;   /* the host thread's stack, for ASan's switches */
static __thread size_t scheduler_size;
#endif

static char *stack_of(unsigned i)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), each = STACK_BYTES + page;
    if (!stack_pool) {
        void *p = mmap(NULL, each * MAX_THREADS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (p == MAP_FAILED) {
            perror("emu: mmap of the fiber stacks");
            abort();
        }
        stack_pool = (char *)p;
        for (unsigned t = 0; t < MAX_THREADS; t++)   /* an overflow faults instead of writing a neighbour */
            mprotect(stack_pool + t * each, page, PROT_NONE);
    }
    return stack_pool + i * each + page;
}

/* Into fiber i, back when it waits or finishes. */
static void resume(block_run *b, unsigned i)
{
    fiber *f = &b->fibers[i];
    b->current = i;
    threadIdx = f->tid;
#if EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, f->stack, STACK_BYTES);
#endif
    f->self = std::move(f->self).resume();
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* From the running fiber back to the scheduler, leaving it in state s. */
static void suspend(fiber_state s)
{
    block_run *b = running;
    fiber *f = &b->fibers[b->current];
    f->state = s;
#if EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, scheduler_bottom, scheduler_size);
#endif
    f->sink = std::move(f->sink).resume();
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* The stack allocator Boost.Context asks: fiber i's stack from the pool
 * (stack_of), which keeps it. */
typedef struct pool_stack {
    char *base;
    boost::context::stack_context allocate()
    {
        boost::context::stack_context sc;
        sc.sp = base + STACK_BYTES;   /* stacks grow down */
        sc.size = STACK_BYTES;
        return sc;
    }
    void deallocate(boost::context::stack_context &) {}
} pool_stack;

/* A fiber's life: a thread of one block after another. */
static boost::context::fiber fiber_main(boost::context::fiber &&scheduler)
{
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &scheduler_bottom, &scheduler_size);
#endif
    running->fibers[running->current].sink = std::move(scheduler);
    for (;;) {
        block_run *b = running;
        b->body(b->ctx);
        fiber *f = &b->fibers[b->current];
        if (!f->cp_open.empty() || !f->cp_groups.empty())
            emu_abort(b->site, "thread (%u,%u,%u) of block (%u,%u,%u) ends with cp.async copies never waited for",
                      f->tid.x, f->tid.y, f->tid.z, blockIdx.x, blockIdx.y, blockIdx.z);
        b->live--;
        suspend(FINISHED);   /* resumed as the same thread of the next block */
    }
}

/* Every host thread's pool, kept from a global: a thread that launches
 * kernels and exits (dsk-serve's engine thread) leaves its pool, whose
 * fibers are suspended in the scheduler and cannot be destroyed, reachable
 * rather than leaked in LeakSanitizer's eyes. */
static std::mutex pools_mu;
static std::vector<fiber *> *pools;

/* The block's first n fibers, each ready to start its thread. */
static fiber *fibers_for(unsigned n)
{
    if (!pool) {
        pool = new fiber[MAX_THREADS];
        std::lock_guard<std::mutex> hold(pools_mu);
        if (!pools)
            pools = new std::vector<fiber *>;
        pools->push_back(pool);
    }
    for (; pool_made < n; pool_made++) {
        fiber *f = &pool[pool_made];
        f->stack = stack_of(pool_made);
        f->self = boost::context::fiber(std::allocator_arg, pool_stack{f->stack}, fiber_main);
    }
    for (unsigned i = 0; i < n; i++) {
        pool[i].state = RUNNABLE;
        pool[i].collective = "no warp collective";
    }
    return pool;
}

/* ---- barriers ---- */

static unsigned lane_count(const block_run *b, unsigned warp)
{
    unsigned n = b->threads - warp * 32;
    return n < 32 ? n : 32;
}

void __syncthreads(void)
{
    if (!running)
        emu_abort("__syncthreads", "called outside a kernel");
    suspend(AT_SYNCTHREADS);
}

unsigned char *dsk_emu_warp_slots(unsigned mask, const char *what)
{
    block_run *b = running;
    if (!b)
        emu_abort(what, "called outside a kernel");
    unsigned warp = b->current / 32, lanes = lane_count(b, warp);
    unsigned want = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    if (mask != want)
        emu_abort(b->site, "%s with mask %#x in a warp of %u lanes (block of %u threads): the mask must name "
                  "exactly the lanes that take part", what, mask, lanes, b->threads);
    b->fibers[b->current].collective = what;   /* release_warp checks the lanes meet at the same one */
    return (unsigned char *)&b->warp_slots[warp * 32];
}

unsigned char *dsk_emu_full_warp_slots(const char *what)
{
    block_run *b = running;
    if (!b)
        emu_abort(what, "called outside a kernel");
    unsigned warp = b->current / 32, lanes = lane_count(b, warp);
    if (lanes != 32)
        emu_abort(b->site, "%s in warp %u of %u lanes (block of %u threads): it needs a full warp of 32 lanes", what,
                  warp, lanes, b->threads);
    return dsk_emu_warp_slots(0xffffffffu, what);
}

void dsk_emu_abort(const char *what, const char *fmt, ...)
{
    block_run *b = running;
    if (!b)
        emu_abort(what, "called outside a kernel");
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emu_abort(b->site, "block (%u,%u,%u), warp %u, lane %u: %s: %s", blockIdx.x, blockIdx.y, blockIdx.z,
              b->current / 32, b->current % 32, what, msg);
}

void dsk_emu_warp_barrier(void) { suspend(AT_WARP); }

/* ---- cp.async ---- */

static fiber *cp_thread(const char *what)
{
    if (!running)
        emu_abort(what, "called outside a kernel");
    return &running->fibers[running->current];
}

static void cp_perform(const cp_copy &c)
{
    if (!c.dst)
        return;   /* an eager block's record of a copy already done */
    memcpy(c.dst, c.src, (size_t)c.src_bytes);
    memset((char *)c.dst + c.src_bytes, 0, (size_t)(16 - c.src_bytes));
}

/* Half the blocks (chosen at random as the block starts) perform each
 * copy when it is issued: a copy into a tile that other warps still read
 * (a missing barrier) then overwrites it under them.  The other half
 * perform it at the wait: a read before the wait sees the old bytes. */
void dsk_emu_cp_async_16(void *smem, const void *gmem, int src_bytes)
{
    const char *what = "cp.async.cg.shared.global 16";
    fiber *f = cp_thread(what);
    if ((uintptr_t)smem % 16 || (uintptr_t)gmem % 16 || src_bytes < 0 || src_bytes > 16)
        emu_abort(running->site, "%s: shared %p, global %p (both must be 16-byte aligned), source size %d (0 to 16)",
                  what, smem, gmem, src_bytes);
    if (running->cp_eager) {
        cp_perform(cp_copy{smem, gmem, src_bytes});
        f->cp_open.push_back(cp_copy{NULL, NULL, 0});   /* still to be waited for */
    } else {
        f->cp_open.push_back(cp_copy{smem, gmem, src_bytes});
    }
}

void dsk_emu_cp_async_commit(void)
{
    fiber *f = cp_thread("cp.async.commit_group");
    f->cp_groups.push_back(std::move(f->cp_open));
    f->cp_open.clear();
}

void dsk_emu_cp_async_wait(int newest_pending)
{
    fiber *f = cp_thread("cp.async.wait_group");
    while (f->cp_groups.size() > (size_t)(newest_pending > 0 ? newest_pending : 0)) {
        for (const cp_copy &c : f->cp_groups.front())
            cp_perform(c);
        f->cp_groups.pop_front();
    }
}

void *dsk_emu_dynamic_smem(void)
{
    block_run *b = running;
    if (!b)
        emu_abort("extern __shared__", "used outside a kernel");
    if (!b->dynamic_smem_len)
        emu_abort(b->site, "the kernel uses dynamic shared memory, and the launch gave it none");
    return b->dynamic_smem;
}

/* Warp w goes on from its collective when all its lanes wait there: 1 when
 * released, 0 when not all wait, -1 (and why) when some wait for lanes
 * that have returned or all wait but at different collectives (a shuffle
 * and a WMMA call: each would read the other's slots as its own). */
static int release_warp(block_run *b, unsigned w, char *why, size_t why_len)
{
    unsigned first = w * 32, lanes = lane_count(b, w), waiting = 0, finished = 0;
    const char *at = NULL;
    for (unsigned l = 0; l < lanes; l++) {
        if (b->fibers[first + l].state == AT_WARP) {
            waiting++;
            at = b->fibers[first + l].collective;
        }
        finished += b->fibers[first + l].state == FINISHED;
    }
    if (waiting && finished) {
        snprintf(why, why_len, "warp %u: %u lanes wait at %s, which %u lanes, already returned, never reach", w,
                 waiting, at, finished);
        return -1;
    }
    if (waiting < lanes)
        return 0;
    const char *what = b->fibers[first].collective;
    for (unsigned l = 1; l < lanes; l++) {
        const char *other = b->fibers[first + l].collective;
        if (other != what && strcmp(other, what) != 0) {
            snprintf(why, why_len, "warp %u: its lanes wait at different warp collectives: lane 0 at %s, lane %u at %s",
                     w, what, l, other);
            return -1;
        }
    }
    for (unsigned l = 0; l < lanes; l++)
        b->fibers[first + l].state = RUNNABLE;
    return 1;
}

/* Releases whoever can go on: 1, or 0 when nobody can (with the reason). */
static int release(block_run *b, char *why, size_t why_len)
{
    int released = 0;
    for (unsigned w = 0; w < (b->threads + 31) / 32; w++) {
        int r = release_warp(b, w, why, why_len);
        if (r < 0)
            return 0;
        released |= r;
    }
    if (released)
        return 1;
    unsigned at_sync = 0, at_warp = 0;
    for (unsigned i = 0; i < b->threads; i++) {
        at_sync += b->fibers[i].state == AT_SYNCTHREADS;
        at_warp += b->fibers[i].state == AT_WARP;
    }
    if (at_sync == b->live) {
        /* Threads that returned count as arrived, as on the hardware. */
        for (unsigned i = 0; i < b->threads; i++)
            if (b->fibers[i].state == AT_SYNCTHREADS)
                b->fibers[i].state = RUNNABLE;
        return 1;
    }
    snprintf(why, why_len, "%u threads wait at __syncthreads while %u wait at a warp collective their warp does "
             "not all reach (%u threads, %u returned)", at_sync, at_warp, b->threads,
             b->threads - b->live);
    return 0;
}

/* Runs the runnable threads among order[0..n) once each, in a new
 * shuffled order, each until it waits or returns. */
static void run_each(block_run *b, unsigned *order, unsigned n)
{
    shuffle(order, n);
    for (unsigned i = 0; i < n; i++)
        if (b->fibers[order[i]].state == RUNNABLE)
            resume(b, order[i]);
}

/* Runs a block to its end.  Half the blocks (picked at random) run their
 * warps in step, a collective at a time; the other half, between two
 * __syncthreads, run one warp at a time, each as far as it goes before
 * the next starts (in a shuffled order), so that shared memory one warp
 * writes and another reads without a barrier between shows. */
static void run_block(block_run *b, uint3 block_idx)
{
    blockIdx = block_idx;
    unsigned n = b->threads, warps = (n + 31) / 32;
    b->fibers = fibers_for(n);
    for (unsigned i = 0; i < n; i++)
        b->fibers[i].tid = make_uint3(i % blockDim.x, i / blockDim.x % blockDim.y, i / (blockDim.x * blockDim.y));
    b->live = n;
    /* DSK_EMU_CP_ASYNC=eager or deferred for every block (test_emu.cu);
     * otherwise each block's own draw. */
    const char *cp = getenv("DSK_EMU_CP_ASYNC");
    b->cp_eager = cp && !strcmp(cp, "eager") ? 1 : cp && !strcmp(cp, "deferred") ? 0 : (int)(rng_next() & 1);
    if (b->dynamic_smem_len)
        memset(b->dynamic_smem, 0xff, b->dynamic_smem_len);   /* NaN: a read before a write shows */
    std::vector<unsigned> order(n), warp_order(warps);
    for (unsigned i = 0; i < n; i++)
        order[i] = i;
    for (unsigned w = 0; w < warps; w++)
        warp_order[w] = w;
    int warp_ahead = (int)(rng_next() & 1);
    char why[256];
    for (;;) {
        if (warp_ahead) {
            shuffle(warp_order.data(), warps);
            for (unsigned w : warp_order) {
                unsigned *lanes = &order[w * 32], count = lane_count(b, w);
                do
                    run_each(b, lanes, count);
                while (release_warp(b, w, why, sizeof why) > 0);
            }
        } else {
            run_each(b, order.data(), n);
        }
        if (!b->live)
            break;
        if (!release(b, why, sizeof why))
            emu_abort(b->site, "block (%u,%u,%u): the threads disagree about the next barrier: %s", block_idx.x,
                      block_idx.y, block_idx.z, why);
    }
}

/* ---- launches ---- */

static std::mutex table_lock;   /* the tables below, for host threads that launch side by side */
static std::map<const void *, int> max_dynamic_smem;   /* cudaFuncSetAttribute's, per kernel */
static __thread cudaError_t last_error = cudaSuccess;

enum { DEFAULT_DYNAMIC_SMEM = 48 << 10, OPTIN_DYNAMIC_SMEM = 227 << 10 };   /* an H100's */

static int refuse(const char *site, cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(const char *site, cudaError_t e, const char *fmt, ...)
{
    char lead[256];
    snprintf(lead, sizeof lead, "%s: launch refused: ", site);
    va_list ap;
    va_start(ap, fmt);
    say(lead, fmt, ap);
    va_end(ap);
    last_error = e;
    return 0;
}

static int launch_ok(const char *site, const void *kernel, dim3 g, dim3 b, size_t smem)
{
    unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    if (!b.x || !b.y || !b.z || threads > MAX_THREADS || b.z > 64)
        return refuse(site, cudaErrorInvalidConfiguration, "block (%u,%u,%u): 1 to 1024 threads, z at most 64", b.x,
                      b.y, b.z);
    if (!g.x || !g.y || !g.z || g.x > 2147483647u || g.y > 65535 || g.z > 65535)
        return refuse(site, cudaErrorInvalidConfiguration, "grid (%u,%u,%u): x 1 to 2^31-1, y and z 1 to 65535",
                      g.x, g.y, g.z);
    int limit = DEFAULT_DYNAMIC_SMEM;
    {
        std::lock_guard<std::mutex> hold(table_lock);
        auto it = max_dynamic_smem.find(kernel);
        if (it != max_dynamic_smem.end())
            limit = it->second;
    }
    if (smem > (size_t)limit)
        return refuse(site, cudaErrorInvalidValue, "%zu bytes of dynamic shared memory, over the kernel's %d (%s)",
                      smem, limit, limit == DEFAULT_DYNAMIC_SMEM ? "the default: cudaFuncSetAttribute raises it"
                                                                 : "cudaFuncSetAttribute's");
    return 1;
}

void dsk_emu_run(const char *site, const void *kernel, dim3 grid, dim3 block, size_t smem, void (*body)(void *),
                 void *ctx)
{
    if (running)
        emu_abort(site, "a launch from inside a kernel");
    if (!launch_ok(site, kernel, grid, block, smem))
        return;
    block_run b;
    b.site = site;
    b.body = body;
    b.ctx = ctx;
    b.threads = block.x * block.y * block.z;
    b.warp_slots.assign((b.threads + 31) / 32 * 32, 0);
    b.dynamic_smem_len = smem;
    /* 128-byte aligned, as kernels ask with __align__ (WMMA's pointers
     * must be 32-byte aligned); exactly smem bytes, for ASan. */
    b.dynamic_smem = NULL;
    if (smem && posix_memalign(&b.dynamic_smem, 128, smem) != 0)
        emu_abort(site, "no memory for %zu bytes of dynamic shared memory", smem);
    blockDim = make_uint3(block.x, block.y, block.z);
    gridDim = make_uint3(grid.x, grid.y, grid.z);
    running = &b;
    size_t blocks = (size_t)grid.x * grid.y * grid.z;
    /* Blocks in a shuffled order, as the hardware gives no order (at most
     * 2^32 of them here: a test's grids are far smaller). */
    if (blocks > 0xffffffffu)
        emu_abort(site, "%zu blocks: more than the emulator runs", blocks);
    std::vector<unsigned> order(blocks);
    for (size_t i = 0; i < blocks; i++)
        order[i] = (unsigned)i;
    shuffle(order.data(), blocks);
    for (unsigned i : order)
        run_block(&b, make_uint3(i % grid.x, i / grid.x % grid.y, (unsigned)(i / ((size_t)grid.x * grid.y))));
    running = NULL;
    free(b.dynamic_smem);
}

/* ---- the runtime API the backend calls ---- */

typedef struct allocation {
    size_t bytes;
    int pinned;   /* cudaMallocHost: host memory */
} allocation;
static std::map<uintptr_t, allocation> allocations;
static size_t device_bytes_used;

static size_t device_bytes_peak;
static size_t device_memory(void)
{
    if (getenv("DSK_EMU_MEMORY_KB"))
        return (size_t)env_long("DSK_EMU_MEMORY_KB", 16 << 20, 1, 1L << 40) << 10;
    return (size_t)env_long("DSK_EMU_MEMORY_MB", 16384, 1, 1 << 30) << 20;
}

static void write_peak(void)
{
    const char *path = getenv("DSK_EMU_PEAK_FILE");
    FILE *f = path && *path ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f, "%zu\n", device_bytes_peak);
        fclose(f);
    }
}
__attribute__((constructor)) static void at_start(void) { atexit(write_peak); }

/* 1 when [p, p + n) lies in one allocation of that kind (pinned or device). */
static int inside(const void *p, size_t n, int pinned)
{
    std::lock_guard<std::mutex> hold(table_lock);
    uintptr_t a = (uintptr_t)p;
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin())
        return 0;
    --it;
    return it->second.pinned == pinned && a >= it->first && a - it->first + n <= it->second.bytes;
}

static cudaError_t fail(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cudaError_t fail(cudaError_t e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("", fmt, ap);
    va_end(ap);
    last_error = e;
    return e;
}

static cudaError_t alloc(void **p, size_t bytes, int pinned)
{
    if (!p)
        return fail(cudaErrorInvalidValue, "cudaMalloc: a NULL pointer for the result");
    size_t len = bytes ? bytes : 1;
    std::lock_guard<std::mutex> hold(table_lock);
    if (!pinned && (len > device_memory() || device_bytes_used > device_memory() - len)) {
        last_error = cudaErrorMemoryAllocation;   /* quietly: callers report it */
        return cudaErrorMemoryAllocation;
    }
    /* Exactly len bytes (cudaMalloc's alignment, not its rounding), so
     * ASan sees a kernel's first byte past the end. */
    void *m = NULL;
    if (posix_memalign(&m, 256, len) != 0)
        return last_error = cudaErrorMemoryAllocation;
    memset(m, 0xff, len);   /* cudaMalloc's memory is not zeroed: NaN shows what reads it unwritten */
    allocations[(uintptr_t)m] = allocation{len, pinned};
    if (!pinned) {
        device_bytes_used += len;
        if (device_bytes_used > device_bytes_peak)
            device_bytes_peak = device_bytes_used;
    }
    *p = m;
    return cudaSuccess;
}

static cudaError_t release_alloc(void *p, int pinned, const char *what)
{
    if (!p)
        return cudaSuccess;
    std::lock_guard<std::mutex> hold(table_lock);
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end() || it->second.pinned != pinned) {
        fprintf(stderr, "emu: %s(%p): not a pointer from %s\n", what, p, pinned ? "cudaMallocHost" : "cudaMalloc");
        return last_error = cudaErrorInvalidValue;
    }
    if (!pinned)
        device_bytes_used -= it->second.bytes;
    allocations.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) { return alloc(p, bytes, 0); }
cudaError_t cudaFree(void *p) { return release_alloc(p, 0, "cudaFree"); }
cudaError_t cudaMallocHost(void **p, size_t bytes) { return alloc(p, bytes, 1); }
cudaError_t cudaFreeHost(void *p) { return release_alloc(p, 1, "cudaFreeHost"); }

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind, cudaStream_t stream)
{
    (void)stream;
    if (!n)
        return cudaSuccess;
    int dst_dev = inside(dst, n, 0), src_dev = inside(src, n, 0);
    int ok = kind == cudaMemcpyHostToDevice   ? dst_dev && !src_dev
             : kind == cudaMemcpyDeviceToHost ? src_dev && !dst_dev
             : kind == cudaMemcpyDeviceToDevice ? src_dev && dst_dev
             : kind == cudaMemcpyDefault ? 1
                                         : 0;
    if (!ok)
        return fail(cudaErrorInvalidValue, "cudaMemcpyAsync kind %d of %zu bytes: destination %s, source %s", (int)kind,
                    n, dst_dev ? "in device memory" : "not (wholly) in one device allocation",
                    src_dev ? "in device memory" : "not (wholly) in one device allocation");
    memmove(dst, src, n);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t stream)
{
    (void)stream;
    if (!n)
        return cudaSuccess;
    if (!inside(p, n, 0))
        return fail(cudaErrorInvalidValue, "cudaMemsetAsync of %zu bytes at %p: not inside one device allocation", n,
                    p);
    memset(p, value, n);
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    (void)flags;
    *s = (cudaStream_t)malloc(16);   /* something to tell streams apart; the work never waits */
    return *s ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    free((void *)s);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
    return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s)
{
    (void)s;
    return cudaSuccess;
}

/* Events: work runs when it is queued, so an event's time is the host's
 * clock when it is recorded. */
struct emu_event {
    double ms;
    int recorded;
};
static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}
cudaError_t cudaEventCreate(cudaEvent_t *e)
{
    emu_event *ev = (emu_event *)calloc(1, sizeof *ev);
    *e = (cudaEvent_t)ev;
    return ev ? cudaSuccess : fail(cudaErrorMemoryAllocation, "cudaEventCreate: out of memory");
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    (void)flags;
    return cudaEventCreate(e);
}
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    free((void *)e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream)
{
    (void)stream;
    if (!e)
        return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: no event");
    ((emu_event *)e)->ms = now_ms();
    ((emu_event *)e)->recorded = 1;
    return cudaSuccess;
}
/* Work already ran when it was queued: a stream waiting for an event
 * needs no waiting, but the event must have been recorded. */
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t e, unsigned flags)
{
    (void)stream, (void)flags;
    if (!e)
        return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: no event");
    if (!((emu_event *)e)->recorded)
        return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: an event never recorded");
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: no event");
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!start || !end)
        return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: no event");
    const emu_event *a = (const emu_event *)start, *b = (const emu_event *)end;
    if (!a->recorded || !b->recorded)
        return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event never recorded");
    *ms = (float)(b->ms - a->ms);
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    default: return "unknown error (emulated)";
    }
}

static int devices(void) { return (int)env_long("DSK_EMU_DEVICES", 1, 0, 64); }

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = devices();
    return *n ? cudaSuccess : cudaErrorNoDevice;
}

cudaError_t cudaSetDevice(int d)
{
    return d >= 0 && d < devices() ? cudaSuccess : fail(cudaErrorInvalidDevice, "cudaSetDevice(%d)", d);
}

cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr attr, int d)
{
    if (d < 0 || d >= devices())
        return fail(cudaErrorInvalidDevice, "cudaDeviceGetAttribute on device %d", d);
    switch (attr) {
    case cudaDevAttrMultiProcessorCount: *v = (int)env_long("DSK_EMU_SMS", 2, 1, 1024); return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = OPTIN_DYNAMIC_SMEM; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; return cudaSuccess;
    default: return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute %d is not emulated", (int)attr);
    }
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute %d is not emulated", (int)attr);
    if (value < 0 || value > OPTIN_DYNAMIC_SMEM)
        return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: %d bytes of dynamic shared memory (at most %d)",
                    value, OPTIN_DYNAMIC_SMEM);
    std::lock_guard<std::mutex> hold(table_lock);
    max_dynamic_smem[func] = value;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    std::lock_guard<std::mutex> hold(table_lock);
    *total = device_memory();
    *free_bytes = *total - device_bytes_used;
    return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p)
{
    memset(a, 0, sizeof *a);
    if (inside(p, 1, 0)) {
        a->type = cudaMemoryTypeDevice;
        a->devicePointer = (void *)p;
    } else if (inside(p, 1, 1)) {
        a->type = cudaMemoryTypeHost;
        a->hostPointer = (void *)p;
    } else {
        a->type = cudaMemoryTypeUnregistered;
    }
    return cudaSuccess;
}

/* ---- the libraries cuda/ opens ---- */

/* In place of cuda/dlopen_lib.cu: the emulation's stand-ins
 * (cublas_emu.cc, built as libcublas and libcublasLt in DSK_EMU_LIBDIR),
 * by their full path, never the toolkit's libraries, which would take
 * these host pointers for device memory. */
void *dsk_cuda_dlopen(const char *soname, char *why, size_t why_len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", DSK_EMU_LIBDIR, soname);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h && why) {
        const char *e = dlerror();
        snprintf(why, why_len, "cannot load %s: %s", path, e ? e : "not found");
    }
    return h;
}
