#include "sa_filename.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h" /* sa_utf8_valid */

/* Length of the UTF-8 sequence `lead` starts; 0 when it cannot start one. */
static size_t sequence_length(unsigned char lead)
{
    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF)
        return 2;
    if (lead >= 0xE0 && lead <= 0xEF)
        return 3;
    if (lead >= 0xF0 && lead <= 0xF4)
        return 4;
    return 0;
}

static int is_control(const unsigned char *s, size_t n)
{
    if (n == 1)
        return s[0] < 0x20 || s[0] == 0x7F;
    return n == 2 && s[0] == 0xC2 && s[1] <= 0x9F; /* U+0080..U+009F */
}

/* The last component of `text` (after '/' or '\\') without control
 * characters and invalid bytes, at most `max` bytes, in a new string;
 * NULL when out of memory. */
static char *clean_component(const char *text, size_t max)
{
    const char *start = text;
    for (const char *p = text; *p; p++) {
        if (*p == '/' || *p == '\\')
            start = p + 1;
    }
    size_t len = strlen(start);
    char *out = malloc((len < max ? len : max) + 1);
    if (!out)
        return NULL;
    const unsigned char *s = (const unsigned char *)start;
    size_t kept = 0;
    size_t i = 0;
    while (i < len) {
        size_t n = sequence_length(s[i]);
        if (n == 0 || n > len - i || !sa_utf8_valid(s + i, n)) {
            i++; /* a stray byte: dropped, and the next one looked at */
            continue;
        }
        if (!is_control(s + i, n)) {
            if (n > max - kept)
                break;
            memcpy(out + kept, s + i, n);
            kept += n;
        }
        i += n;
    }
    out[kept] = '\0';
    return out;
}

static int usable(const char *name)
{
    return *name && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* The cleaned form of each candidate in turn, the first usable one. */
static char *first_usable(const char *const *candidates, size_t count, size_t max)
{
    for (size_t i = 0; i < count; i++) {
        if (!candidates[i])
            continue;
        char *name = clean_component(candidates[i], max);
        if (!name || usable(name))
            return name;
        free(name);
    }
    return strdup("file");
}

char *sa_filename_sanitize(const char *offered, const char *file_id)
{
    const char *const candidates[] = {offered, file_id};
    return first_usable(candidates, 2, SA_FILENAME_MAX);
}

char *sa_filename_for_upload(const char *path)
{
    /* "dir/name/" names "name": trailing slashes do not make an empty
     * last component. */
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    char *trimmed = strndup(path, len);
    if (!trimmed)
        return NULL;
    const char *const candidates[] = {trimmed};
    char *name = first_usable(candidates, 1, SA_FILENAME_UPLOAD_MAX);
    free(trimmed);
    return name;
}

char *sa_filename_variant(const char *name, unsigned n)
{
    if (n == 0)
        return strdup(name);
    char *out = NULL;
    if (asprintf(&out, "%s (%u)", name, n) < 0)
        return NULL;
    return out;
}
