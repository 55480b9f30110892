#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/hash.h"

struct pl_sha256 {
    EVP_MD_CTX *ctx;
};

int pl_sha256_begin(pl_sha256 **out)
{
    pl_sha256 *h = pl_malloc(sizeof *h, "sha256 context");
    if (!h)
        return PL_ERR;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || !EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return pl_fail("sha256: cannot create an OpenSSL digest context");
    }
    *out = h;
    return PL_OK;
}

int pl_sha256_update(pl_sha256 *h, const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    /* EVP takes size_t, but feed it bounded chunks so a multi-GB mapping is read progressively */
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < ((size_t)64 << 20) ? n - done : ((size_t)64 << 20);
        if (!EVP_DigestUpdate(h->ctx, p + done, chunk))
            return pl_fail("sha256 failed");
        done += chunk;
    }
    return PL_OK;
}

int pl_sha256_end(pl_sha256 *h, char out[65])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int ok = EVP_DigestFinal_ex(h->ctx, digest, &len) && len == 32;
    EVP_MD_CTX_free(h->ctx);
    free(h);
    if (!ok)
        return pl_fail("sha256 failed");
    for (unsigned int i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    out[64] = '\0';
    return PL_OK;
}

int pl_sha256_hex(const void *bytes, size_t n, char out[65])
{
    pl_sha256 *h;
    if (pl_sha256_begin(&h) != PL_OK)
        return PL_ERR;
    if (pl_sha256_update(h, bytes, n) != PL_OK) {
        char ignored[65];
        pl_sha256_end(h, ignored);
        return pl_fail("sha256 failed");
    }
    return pl_sha256_end(h, out);
}

int pl_sha256_file(const char *path, const char *what, char out[65])
{
    void *map;
    size_t size;
    if (pl_map_file(path, what, &map, &size) != PL_OK)
        return PL_ERR;
    int rc = pl_sha256_hex(map, size, out);
    pl_unmap_file(map, size);
    return rc;
}
