#include "runtime/sha256.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/file_io.h"

static void to_hex(const unsigned char *d, unsigned n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = '\0';
}

bllm_status bllm_sha256_buf(const void *data, size_t n, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) || len != 32)
        return bllm_fail(BLLM_ERR_IO, "SHA-256 failed (OpenSSL)");
    to_hex(md, len, hex);
    return BLLM_OK;
}

bllm_status bllm_sha256_file(const char *path, char hex[65])
{
    FILE *f;
    bllm_status os = bllm_fopen_input(path, "file", &f);
    if (os)
        return os;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t cap = (size_t)1 << 20, n;
    unsigned char *buf = malloc(cap), md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    bllm_status st = BLLM_OK;
    if (!ctx || !buf || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
        st = bllm_fail(BLLM_ERR_NOMEM, "cannot start SHA-256");
    while (!st && (n = fread(buf, 1, cap, f)) > 0)
        if (!EVP_DigestUpdate(ctx, buf, n))
            st = bllm_fail(BLLM_ERR_IO, "SHA-256 failed (OpenSSL)");
    if (!st && ferror(f))
        st = bllm_fail(BLLM_ERR_IO, "read error on '%s'", path);
    if (!st && (!EVP_DigestFinal_ex(ctx, md, &len) || len != 32))
        st = bllm_fail(BLLM_ERR_IO, "SHA-256 failed (OpenSSL)");
    if (!st)
        to_hex(md, len, hex);
    free(buf);
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return st;
}
