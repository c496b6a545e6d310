#include "core/outfile.h"
#include "core/tempdir.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TEMPS 64

/* Paths are written before the slot is published, so a signal handler that
 * sees a non-NULL pointer sees a complete string. */
static char *_Atomic temp_paths[MAX_TEMPS];
static unsigned temp_counter;

static int register_temp(char *path)
{
    for (int i = 0; i < MAX_TEMPS; i++) {
        char *expected = NULL;
        if (atomic_compare_exchange_strong(&temp_paths[i], &expected, path))
            return i;
    }
    return -1;
}

static void unregister_temp(int slot)
{
    if (slot >= 0)
        atomic_store(&temp_paths[slot], NULL);
}

void dsk_outfile_remove_all_temps(void)
{
    for (int i = 0; i < MAX_TEMPS; i++) {
        char *p = atomic_exchange(&temp_paths[i], NULL);
        if (p)
            unlink(p);
    }
    dsk_tempdir_remove_all();
}

static void remove_temps_at_exit(void) { dsk_outfile_remove_all_temps(); }

/* The descriptor a path names when it is one of this process's open
 * files by number (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N),
 * directly or through symbolic links; -1 when it is not. */
int dsk_named_fd(const char *path)
{
    static const char *const std_names[] = {"/dev/stdin", "/dev/stdout", "/dev/stderr"};
    static const char *const fd_dirs[] = {"/dev/fd/", "/proc/self/fd/"};
    char cur[4096], next[4096];
    snprintf(cur, sizeof cur, "%s", path);
    for (int hops = 0; hops < 16; hops++) {
        for (int i = 0; i < 3; i++)
            if (strcmp(cur, std_names[i]) == 0)
                return i;
        for (int i = 0; i < 2; i++) {
            size_t n = strlen(fd_dirs[i]);
            if (strncmp(cur, fd_dirs[i], n) == 0 && cur[n]) {
                char *end;
                long fd = strtol(cur + n, &end, 10);
                if (!*end && cur[n] >= '0' && cur[n] <= '9' && fd <= 1 << 20)
                    return (int)fd;
            }
        }
        struct stat lsb;
        ssize_t len;
        if (lstat(cur, &lsb) != 0 || !S_ISLNK(lsb.st_mode) || (len = readlink(cur, next, sizeof next - 1)) <= 0 ||
            (size_t)len >= sizeof next - 1)
            return -1;
        next[len] = '\0';
        if (next[0] == '/') {
            memcpy(cur, next, (size_t)len + 1);
        } else {   /* relative to the link's directory */
            char *slash = strrchr(cur, '/');
            size_t dir = slash ? (size_t)(slash - cur) + 1 : 0;
            if (dir + (size_t)len + 1 > sizeof cur)
                return -1;
            memcpy(cur + dir, next, (size_t)len + 1);
        }
    }
    return -1;
}

/* A stream on a copy of descriptor fd_no; NULL with errno set. */
static FILE *dup_stream(int fd_no, const char *mode)
{
    int fd = fcntl(fd_no, F_DUPFD_CLOEXEC, 3);
    FILE *f = fd < 0 ? NULL : fdopen(fd, mode);
    if (!f && fd >= 0) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

FILE *dsk_fopen_log(const char *path, const char *mode)
{
    int fd_no = dsk_named_fd(path);
    if (fd_no >= 0)
        return dup_stream(fd_no, mode[0] == 'r' ? "r" : "w");
    if (mode[0] != 'a')
        return fopen(path, mode);
    /* Appending: a last line without its newline (a writer killed in the
     * middle of it, a file written by hand) is ended first, so that the
     * lines appended are whole JSON Lines, not glued to it. */
    FILE *f = fopen(path, "a+");
    struct stat sb;
    char last;
    if (f && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
        pread(fileno(f), &last, 1, sb.st_size - 1) == 1 && last != '\n')
        fputc('\n', f);
    return f;
}

int dsk_outfile_open(dsk_outfile *f, const char *path, dsk_err *err)
{
    memset(f, 0, sizeof *f);
    f->slot = -1;
    if (!path || strcmp(path, "-") == 0) {
        f->fp = stdout;
        return 0;
    }
    /* One of this process's descriptors by name (-o /dev/stdout,
     * --stats /dev/stderr): written to it, as to stdout, whatever it is;
     * a temporary renamed there would replace the link, or a file the
     * shell opened (for appending, perhaps) with a new one. */
    int fd_no = dsk_named_fd(path);
    if (fd_no >= 0) {
        if (!(f->fp = dup_stream(fd_no, "wb")))
            return dsk_fail(err, EX_CANTCREAT, "%s: cannot open: %s", path, strerror(errno));
        f->path = dsk_xstrdup(path);
        return 0;
    }
    struct stat sb;
    int exists = stat(path, &sb) == 0;
    if (exists && S_ISDIR(sb.st_mode))   /* said now: the rename at the end would fail */
        return dsk_fail(err, EX_CANTCREAT, "%s: is a directory", path);
    if (exists && !S_ISREG(sb.st_mode)) {
        /* A device or a pipe (/dev/null, /dev/stdout, a FIFO): written in
         * place, as a stream; a temporary renamed over it would replace
         * the node itself. */
        if (!(f->fp = fopen(path, "wb")))
            return dsk_fail(err, EX_CANTCREAT, "%s: cannot open: %s", path, strerror(errno));
        f->path = dsk_xstrdup(path);
        return 0;
    }
    static int atexit_done;
    if (!atexit_done) {
        atexit(remove_temps_at_exit);
        atexit_done = 1;
    }
    /* A symbolic link to a file: the file is replaced and the link kept. */
    struct stat lsb;
    char *real = exists && lstat(path, &lsb) == 0 && S_ISLNK(lsb.st_mode) ? realpath(path, NULL) : NULL;
    if (real)
        path = real;
    size_t n = strlen(path) + 64;
    f->tmp_path = dsk_xmalloc(n);
    snprintf(f->tmp_path, n, "%s.tmp.%ld.%u", path, (long)getpid(), temp_counter++);
    f->slot = register_temp(f->tmp_path);
    if (f->slot < 0) {
        free(f->tmp_path);
        f->tmp_path = NULL;
        int rc = dsk_fail(err, EX_SOFTWARE, "%s: too many open output files", path);
        free(real);
        return rc;
    }
    int fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 || !(f->fp = fdopen(fd, "wb"))) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        dsk_outfile_abort(f);
        int rc = dsk_fail(err, EX_CANTCREAT, "%s: cannot create: %s", path, strerror(e));
        free(real);
        return rc;
    }
    f->path = dsk_xstrdup(path);
    free(real);
    return 0;
}

int dsk_outfile_commit(dsk_outfile *f, dsk_err *err)
{
    if (!f->tmp_path && !f->path) {  /* stdout */
        if (fflush(f->fp) != 0 || ferror(f->fp))
            return dsk_fail(err, EX_IOERR, "standard output: write error: %s", strerror(errno));
        return 0;
    }
    /* A temporary is synced and renamed into place; a device or a pipe,
     * written in place, only closed. */
    int failed = fflush(f->fp) != 0 || ferror(f->fp) || (f->tmp_path && fsync(fileno(f->fp)) != 0);
    int e = errno;
    if (fclose(f->fp) != 0 && !failed) {
        failed = 1;
        e = errno;
    }
    f->fp = NULL;
    if (!failed && f->tmp_path && rename(f->tmp_path, f->path) != 0) {
        failed = 1;
        e = errno;
    }
    int code = 0;
    if (failed)
        code = dsk_fail(err, EX_IOERR, "%s: write error: %s", f->path, strerror(e));
    if (f->tmp_path) {
        if (failed)
            unlink(f->tmp_path);
        unregister_temp(f->slot);
    }
    free(f->tmp_path);
    free(f->path);
    f->tmp_path = f->path = NULL;
    return code;
}

void dsk_outfile_abort(dsk_outfile *f)
{
    if (!f->tmp_path && !f->path)   /* stdout */
        return;
    if (f->fp)
        fclose(f->fp);
    f->fp = NULL;
    if (f->tmp_path) {   /* a device or a pipe has nothing to remove */
        unlink(f->tmp_path);
        unregister_temp(f->slot);
    }
    free(f->tmp_path);
    free(f->path);
    f->tmp_path = f->path = NULL;
}

static void on_fatal_signal(int sig)
{
    dsk_outfile_remove_all_temps();
    signal(sig, SIG_DFL);
    raise(sig);
}

int dsk_signal_ignored(int sig)
{
    struct sigaction old;
    return sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN;
}

void dsk_signals_init(void)
{
    /* Every signal whose default is to end the process: Slurm's --signal
     * sends SIGUSR1, a CPU limit SIGXCPU (dsk-train handles SIGUSR1 itself). */
    static const int sigs[] = {SIGINT,  SIGTERM, SIGHUP,    SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM,
                               SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO,
#ifdef SIGPWR
                               SIGPWR,
#endif
#ifdef SIGSTKFLT
                               SIGSTKFLT,
#endif
    };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        int sig = sigs[i];
        if (dsk_signal_ignored(sig))   /* a trap '' USR1 too */
            continue;
        sigaction(sig, &sa, NULL);
    }
}
