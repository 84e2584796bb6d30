/*
 * Standard base64 (RFC 4648 §4, with '=' padding), strict: pure functions,
 * kept apart so that unit tests and fuzz targets can reach them.
 */
#ifndef SA_FILE_BASE64_H
#define SA_FILE_BASE64_H

#include <stddef.h>

/* Bytes of text b64_encode writes for `len` bytes, without the NUL. */
size_t b64_encoded_len(size_t len);

/* Writes the base64 of `len` bytes of `in` to `out`, which holds
 * b64_encoded_len(len) + 1 bytes, and NUL-terminates it. */
void b64_encode(const unsigned char *in, size_t len, char *out);

/* Decodes `len` characters of `in` into `out` (room for `out_cap` bytes)
 * and sets *out_len. Returns 0, or -1 when the text is not canonical
 * base64 (a length that is not a multiple of 4, a character outside the
 * alphabet, whitespace, '=' other than one or two at the very end, or
 * padding bits that are not zero) or decodes to more than out_cap bytes;
 * `out` may then hold garbage. */
int b64_decode(const char *in, size_t len, unsigned char *out, size_t out_cap, size_t *out_len);

#endif
