#include "core/lmdb_file.h"
#include "core/fileio.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A meta page of LMDB 0.9's data format on a 64-bit build: the page
 * header (page number, pad, flags, lower/upper), then MDB_meta: magic,
 * version, address, map size, two MDB_db (the free list's, whose pad
 * holds the page size, and the main one's), the last page, the txn id. */
enum {
    META_FLAGS = 10, META_MAGIC = 16, META_VERSION = 20, FREE_PAD = 40, FREE_ROOT = 80, MAIN_ROOT = 128,
    LAST_PAGE = 136, META_BYTES = 152,
    P_META = 0x08,
};
#define LMDB_MAGIC 0xBEEFC0DEu
#define NO_PAGE UINT64_MAX   /* P_INVALID: an empty tree's root */

/* LMDB writes its meta pages in the machine's byte order. */
static uint64_t u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, sizeof v); return v; }
static uint32_t u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, sizeof v); return v; }
static uint16_t u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, sizeof v); return v; }

/* The roots must lie in the file; the last page need not (a page freed in
 * the transaction that made it is never written, and LMDB maps past the
 * end of a file that is shorter). */
static int meta_ok(const uint8_t *m, uint64_t pgno, uint64_t psize, uint64_t pages)
{
    uint64_t last = u64(m + LAST_PAGE), free_root = u64(m + FREE_ROOT), main_root = u64(m + MAIN_ROOT);
    return u64(m) == pgno && (u16(m + META_FLAGS) & P_META) && u32(m + META_MAGIC) == LMDB_MAGIC &&
           u32(m + META_VERSION) == 1 && u32(m + FREE_PAD) == psize && last >= 1 &&
           (free_root == NO_PAGE || (free_root > 1 && free_root <= last && free_root < pages)) &&
           (main_root == NO_PAGE || (main_root > 1 && main_root <= last && main_root < pages));
}

int dsk_lmdb_file_check(const char *path, int allow_empty, dsk_err *err)
{
    int fd = dsk_open_read(path, 1, err);   /* a regular file; a FIFO does not block the open */
    if (fd < 0)
        return err->code;
    struct stat sb;
    int rc = 0;
    uint8_t m0[META_BYTES], m1[META_BYTES];
    if (fstat(fd, &sb) != 0) {
        rc = dsk_fail(err, EX_IOERR, "%s: cannot stat: %s", path, strerror(errno));
    } else if (sb.st_size == 0 && !allow_empty) {
        rc = dsk_fail(err, EX_DATAERR, "%s: empty, not an LMDB file", path);
    } else if (sb.st_size > 0) {
        uint64_t psize = 0;
        if (pread(fd, m0, sizeof m0, 0) == (ssize_t)sizeof m0)
            psize = u32(m0 + FREE_PAD);
        int ok = psize >= 512 && psize <= 65536 && (psize & (psize - 1)) == 0 &&
                 (uint64_t)sb.st_size >= 2 * psize &&
                 pread(fd, m1, sizeof m1, (off_t)psize) == (ssize_t)sizeof m1;
        uint64_t pages = ok ? (uint64_t)sb.st_size / psize : 0;
        if (!ok || !meta_ok(m0, 0, psize, pages) || !meta_ok(m1, 1, psize, pages))
            rc = dsk_fail(err, EX_DATAERR, "%s: damaged or cut short (%lld bytes): its LMDB meta pages do not fit "
                          "the file", path, (long long)sb.st_size);
    }
    close(fd);
    return rc;
}
