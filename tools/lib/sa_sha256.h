/*
 * Streaming SHA-256 (OpenSSL EVP) for the file tools: the digest of a file
 * is built piece by piece while it is read, sent or received.
 */
#ifndef SA_SHA256_H
#define SA_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SA_SHA256_HEX_LEN 64

/* Opaque; made by sa_sha256_new, freed by sa_sha256_free (NULL is fine). */
typedef struct sa_sha256 sa_sha256;

sa_sha256 *sa_sha256_new(void); /* NULL when out of memory */
void sa_sha256_free(sa_sha256 *h);
/* Starts over, as if new. Returns 0 or -1. */
int sa_sha256_reset(sa_sha256 *h);
int sa_sha256_update(sa_sha256 *h, const void *data, size_t len); /* 0 or -1 */
/* Writes the lowercase hex digest and a NUL (SA_SHA256_HEX_LEN + 1 bytes)
 * into hex. The hash must be reset before it is used again. 0 or -1. */
int sa_sha256_final_hex(sa_sha256 *h, char *hex);

/* Hashes `len` bytes of fd from `offset` (pread: the file position does
 * not move) in blocks of at most `block` bytes taken from `buffer`.
 * Returns the bytes hashed (less than len only at end of file), or -1
 * with errno set (EIO when the hash itself failed). */
int64_t sa_sha256_fd(sa_sha256 *h, int fd, uint64_t offset, uint64_t len, unsigned char *buffer,
                     size_t block);

/* 1 when `text` is exactly 64 hex digits (either case). */
int sa_sha256_hex_valid(const char *text);

#endif
