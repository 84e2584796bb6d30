#include "base64.h"

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_encoded_len(size_t len) { return (len + 2) / 3 * 4; }

void b64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t i = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = '=';
    }
    *out = '\0';
}

/* The 6-bit value of an alphabet character, or -1. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int b64_decode(const char *in, size_t len, unsigned char *out, size_t out_cap, size_t *out_len)
{
    if (len % 4 != 0)
        return -1;
    size_t padding = 0;
    if (len >= 4 && in[len - 1] == '=')
        padding = in[len - 2] == '=' ? 2 : 1;
    size_t decoded = len / 4 * 3 - padding;
    if (decoded > out_cap)
        return -1;
    size_t written = 0;
    for (size_t i = 0; i < len; i += 4) {
        /* Only the last group may be padded; sextet() refuses '=' anywhere
         * else, since it is not in the alphabet. */
        size_t data_chars = i + 4 == len ? 4 - padding : 4;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int bits = 0;
            if (k < data_chars) {
                bits = sextet((unsigned char)in[i + k]);
                if (bits < 0)
                    return -1;
            }
            v = v << 6 | (uint32_t)bits;
        }
        /* Canonical form: the bits the padding leaves over are zero, so
         * that each byte string has exactly one accepted text. */
        if ((data_chars == 2 && (v & 0xFFFF)) || (data_chars == 3 && (v & 0xFF)))
            return -1;
        out[written++] = (unsigned char)(v >> 16);
        if (data_chars >= 3)
            out[written++] = (unsigned char)(v >> 8);
        if (data_chars == 4)
            out[written++] = (unsigned char)v;
    }
    *out_len = written;
    return 0;
}
