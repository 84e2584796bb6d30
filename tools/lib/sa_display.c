#include "sa_display.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h" /* sa_utf8_valid */

void strbuf_init(strbuf *sb)
{
    memset(sb, 0, sizeof *sb);
}

void strbuf_free(strbuf *sb)
{
    free(sb->data);
    strbuf_init(sb);
}

static int strbuf_reserve(strbuf *sb, size_t more)
{
    if (sb->failed)
        return -1;
    if (more < sb->cap - sb->len)
        return 0;
    if (more > SIZE_MAX / 2 - sb->len) {
        sb->failed = 1;
        return -1;
    }
    size_t cap = sb->cap ? sb->cap : 128;
    while (cap - sb->len <= more)
        cap *= 2;
    char *data = realloc(sb->data, cap);
    if (!data) {
        sb->failed = 1;
        return -1;
    }
    sb->data = data;
    sb->cap = cap;
    return 0;
}

void strbuf_add_len(strbuf *sb, const char *text, size_t len)
{
    if (strbuf_reserve(sb, len) != 0)
        return;
    memcpy(sb->data + sb->len, text, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

void strbuf_add(strbuf *sb, const char *text)
{
    strbuf_add_len(sb, text, strlen(text));
}

/* Length of the UTF-8 sequence that `lead` starts, 0 when it cannot start
 * one. Whether the sequence is well-formed is sa_utf8_valid's job. */
static size_t utf8_sequence_length(unsigned char lead)
{
    if (lead >= 0xC2 && lead <= 0xDF)
        return 2;
    if (lead >= 0xE0 && lead <= 0xEF)
        return 3;
    if (lead >= 0xF0 && lead <= 0xF4)
        return 4;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at s[0..avail), or 0. */
static size_t valid_sequence_at(const unsigned char *s, size_t avail)
{
    size_t n = utf8_sequence_length(s[0]);
    if (n == 0 || n > avail || !sa_utf8_valid(s, n))
        return 0;
    return n;
}

/* A two-byte sequence C2 80..C2 9F encodes a C1 control, U+0080..U+009F. */
static int is_c1_control(const unsigned char *s, size_t n)
{
    return n == 2 && s[0] == 0xC2 && s[1] <= 0x9F;
}

/* Appends `prefix` then `value` as two lowercase hex digits. */
static void add_escape(strbuf *sb, const char *prefix, unsigned char value)
{
    static const char hex[] = "0123456789abcdef";
    char digits[2] = {hex[value >> 4], hex[value & 15]};
    strbuf_add(sb, prefix);
    strbuf_add_len(sb, digits, sizeof digits);
}

void strbuf_add_untrusted(strbuf *sb, const char *text)
{
    if (!text) {
        strbuf_add(sb, "?");
        return;
    }
    const unsigned char *s = (const unsigned char *)text;
    size_t len = strlen(text);
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x20 || c == 0x7F) {
            add_escape(sb, "\\x", c);
            i++;
        } else if (c < 0x80) {
            size_t run = i;
            while (run < len && s[run] >= 0x20 && s[run] < 0x7F)
                run++;
            strbuf_add_len(sb, text + i, run - i);
            i = run;
        } else {
            size_t n = valid_sequence_at(s + i, len - i);
            if (n == 0) {
                add_escape(sb, "\\x", c);
                i++;
            } else if (is_c1_control(s + i, n)) {
                add_escape(sb, "\\u00", s[i + 1]);
                i += n;
            } else {
                strbuf_add_len(sb, text + i, n);
                i += n;
            }
        }
    }
}

void strbuf_add_json(strbuf *sb, const char *json)
{
    const unsigned char *s = (const unsigned char *)json;
    size_t len = strlen(json);
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c == 0x7F) {
            strbuf_add(sb, "\\u007f");
            i++;
        } else if (c < 0x80) {
            size_t run = i;
            while (run < len && s[run] < 0x7F)
                run++;
            strbuf_add_len(sb, json + i, run - i);
            i = run;
        } else {
            size_t n = valid_sequence_at(s + i, len - i);
            if (n == 0) {
                strbuf_add(sb, "\\ufffd");
                i++;
            } else if (is_c1_control(s + i, n)) {
                add_escape(sb, "\\u00", s[i + 1]);
                i += n;
            } else {
                strbuf_add_len(sb, json + i, n);
                i += n;
            }
        }
    }
}
