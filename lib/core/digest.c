#include "core/digest.h"
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

int dsk_md5_file(const char *path, char hex[33], dsk_err *err)
{
    int fd = dsk_open_read(path, 1, err);   /* a dataset's files: a FIFO would block */
    if (fd < 0)
        return err->code;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_md5(), NULL)) {
        close(fd);
        EVP_MD_CTX_free(ctx);
        return dsk_fail(err, EX_SOFTWARE, "OpenSSL: MD5 is not available");
    }
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = dsk_xmalloc(CHUNK);
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = dsk_fail(err, EX_IOERR, "%s: read error: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (!rc) {
        EVP_DigestFinal_ex(ctx, md, &md_len);
        for (unsigned i = 0; i < md_len && i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        hex[32] = '\0';
    }
    free(buf);
    close(fd);
    EVP_MD_CTX_free(ctx);
    return rc;
}
