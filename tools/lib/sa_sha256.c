#include "sa_sha256.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sa_sha256 {
    EVP_MD_CTX *ctx; /* ours; freed by sa_sha256_free */
};

sa_sha256 *sa_sha256_new(void)
{
    sa_sha256 *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || sa_sha256_reset(h) != 0) {
        sa_sha256_free(h);
        return NULL;
    }
    return h;
}

void sa_sha256_free(sa_sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

int sa_sha256_reset(sa_sha256 *h)
{
    return EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

int sa_sha256_update(sa_sha256 *h, const void *data, size_t len)
{
    return EVP_DigestUpdate(h->ctx, data, len) == 1 ? 0 : -1;
}

int sa_sha256_final_hex(sa_sha256 *h, char *hex)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_DigestFinal_ex(h->ctx, digest, &digest_len) != 1 || digest_len * 2 != SA_SHA256_HEX_LEN)
        return -1;
    static const char digits[] = "0123456789abcdef";
    for (unsigned int i = 0; i < digest_len; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[SA_SHA256_HEX_LEN] = '\0';
    return 0;
}

int64_t sa_sha256_fd(sa_sha256 *h, int fd, uint64_t offset, uint64_t len, unsigned char *buffer,
                     size_t block)
{
    uint64_t done = 0;
    while (done < len) {
        size_t want = len - done < block ? (size_t)(len - done) : block;
        ssize_t got = pread(fd, buffer, want, (off_t)(offset + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        if (sa_sha256_update(h, buffer, (size_t)got) != 0) {
            errno = EIO;
            return -1;
        }
        done += (uint64_t)got;
    }
    return (int64_t)done;
}

int sa_sha256_hex_valid(const char *text)
{
    return text && strlen(text) == SA_SHA256_HEX_LEN &&
           strspn(text, "0123456789abcdefABCDEF") == SA_SHA256_HEX_LEN;
}
