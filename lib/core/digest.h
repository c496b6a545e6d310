/* File digests for MD5SUMS (OpenSSL's EVP MD5: what md5sum -c checks). */
#ifndef DSK_CORE_DIGEST_H
#define DSK_CORE_DIGEST_H

#include "core/err.h"

/* Writes the lowercase hex MD5 of the file at path into hex. */
int dsk_md5_file(const char *path, char hex[33], dsk_err *err);

#endif
