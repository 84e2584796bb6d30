#include "base64.h"

#include <stdint.h>
#include <string.h>

/* The tables below are built by the preprocessor, so that they are
 * constant data shared by every thread, with no start-up step. */

/* The alphabet character of a 6-bit value. */
#define B64_CHAR(v)                                                                                \
    ((v) < 26 ? 'A' + (v) : (v) < 52 ? 'a' + (v) - 26 : (v) < 62 ? '0' + (v) - 52 : (v) == 62 ? '+' : '/')

/* Two alphabet characters for each 12-bit value: one lookup per two output
 * characters instead of one per character. */
#define B64_PAIR(v) {(char)B64_CHAR((v) >> 6), (char)B64_CHAR((v) & 63)}
#define B64_PAIRS4(v) B64_PAIR(v), B64_PAIR((v) + 1), B64_PAIR((v) + 2), B64_PAIR((v) + 3)
#define B64_PAIRS16(v) B64_PAIRS4(v), B64_PAIRS4((v) + 4), B64_PAIRS4((v) + 8), B64_PAIRS4((v) + 12)
#define B64_PAIRS64(v)                                                                             \
    B64_PAIRS16(v), B64_PAIRS16((v) + 16), B64_PAIRS16((v) + 32), B64_PAIRS16((v) + 48)
#define B64_PAIRS256(v)                                                                            \
    B64_PAIRS64(v), B64_PAIRS64((v) + 64), B64_PAIRS64((v) + 128), B64_PAIRS64((v) + 192)
#define B64_PAIRS1024(v)                                                                           \
    B64_PAIRS256(v), B64_PAIRS256((v) + 256), B64_PAIRS256((v) + 512), B64_PAIRS256((v) + 768)

static const char pairs[4096][2] = {B64_PAIRS1024(0), B64_PAIRS1024(1024), B64_PAIRS1024(2048),
                                    B64_PAIRS1024(3072)};

/* A character that is not in the alphabet decodes to this bit, which no
 * valid group sets: the OR of a group's four lookups shows whether any of
 * its characters was bad, with one test. */
#define B64_BAD 0x1000000u

/* The 6-bit value of character c, or B64_BAD. */
#define B64_SEXTET(c)                                                                              \
    ((c) >= 'A' && (c) <= 'Z'   ? (uint32_t)((c) - 'A')                                            \
     : (c) >= 'a' && (c) <= 'z' ? (uint32_t)((c) - 'a' + 26)                                       \
     : (c) >= '0' && (c) <= '9' ? (uint32_t)((c) - '0' + 52)                                       \
     : (c) == '+'               ? 62u                                                              \
     : (c) == '/'               ? 63u                                                              \
                                : B64_BAD)

/* One table per position in a group, each value already shifted to its
 * place, so that a group decodes to the OR of four lookups. */
#define B64_AT(c, shift) (B64_SEXTET(c) == B64_BAD ? B64_BAD : B64_SEXTET(c) << (shift))
#define B64_AT4(c, s) B64_AT(c, s), B64_AT((c) + 1, s), B64_AT((c) + 2, s), B64_AT((c) + 3, s)
#define B64_AT16(c, s) B64_AT4(c, s), B64_AT4((c) + 4, s), B64_AT4((c) + 8, s), B64_AT4((c) + 12, s)
#define B64_AT64(c, s)                                                                             \
    B64_AT16(c, s), B64_AT16((c) + 16, s), B64_AT16((c) + 32, s), B64_AT16((c) + 48, s)
#define B64_TABLE(s) {B64_AT64(0, s), B64_AT64(64, s), B64_AT64(128, s), B64_AT64(192, s)}

static const uint32_t at0[256] = B64_TABLE(18);
static const uint32_t at1[256] = B64_TABLE(12);
static const uint32_t at2[256] = B64_TABLE(6);
static const uint32_t at3[256] = B64_TABLE(0);

size_t b64_encoded_len(size_t len) { return (len + 2) / 3 * 4; }

void b64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t i = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        memcpy(out, pairs[v >> 12], 2);
        memcpy(out + 2, pairs[v & 0xFFF], 2);
        out += 4;
    }
    if (len - i == 1) {
        const char *hi = pairs[(uint32_t)in[i] << 4];
        *out++ = hi[0];
        *out++ = hi[1];
        *out++ = '=';
        *out++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        const char *hi = pairs[v >> 12], *lo = pairs[v & 0xFFF];
        *out++ = hi[0];
        *out++ = hi[1];
        *out++ = lo[0];
        *out++ = '=';
    }
    *out = '\0';
}

int b64_decode(const char *in, size_t len, unsigned char *out, size_t out_cap, size_t *out_len)
{
    if (len % 4 != 0)
        return -1;
    if (len == 0) {
        *out_len = 0;
        return 0;
    }
    const unsigned char *text = (const unsigned char *)in;
    size_t padding = 0;
    if (text[len - 1] == '=')
        padding = text[len - 2] == '=' ? 2 : 1;
    size_t decoded = len / 4 * 3 - padding;
    if (decoded > out_cap)
        return -1;
    /* Every group but the last has four alphabet characters; '=' is not in
     * the alphabet, so it is refused there like any other bad character. */
    size_t full_groups = len / 4 - (padding ? 1 : 0);
    unsigned char *o = out;
    /* A bad character is looked for once at the end, not in every group:
     * the loop then has no branch but its own (what was written by then
     * is not the caller's to use). */
    uint32_t seen = 0;
    for (size_t g = 0; g < full_groups; g++, text += 4, o += 3) {
        uint32_t v = at0[text[0]] | at1[text[1]] | at2[text[2]] | at3[text[3]];
        seen |= v;
        o[0] = (unsigned char)(v >> 16);
        o[1] = (unsigned char)(v >> 8);
        o[2] = (unsigned char)v;
    }
    if (seen & B64_BAD)
        return -1;
    if (padding) {
        uint32_t v = at0[text[0]] | at1[text[1]] | (padding == 1 ? at2[text[2]] : 0);
        /* Canonical form: the bits the padding leaves over are zero, so
         * that each byte string has exactly one accepted text. */
        if (v & B64_BAD || (padding == 2 && (v & 0xFFFF)) || (padding == 1 && (v & 0xFF)))
            return -1;
        *o++ = (unsigned char)(v >> 16);
        if (padding == 1)
            *o++ = (unsigned char)(v >> 8);
    }
    *out_len = (size_t)(o - out);
    return 0;
}
