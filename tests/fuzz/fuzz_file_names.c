/*
 * Fuzzes file names on both sides of a transfer. The input, split at its
 * first NUL, is a name and (when there is a NUL) a file_id.
 *   - The file plugin's file_name_valid (plugins/file/file_name.h) must
 *     match the rule of PROTOCOL.md §8, restated below.
 *   - The client tools' names (tools/lib/sa_filename.h) must be safe: the
 *     name a download is saved under and the name an upload announces are
 *     never empty, ".", "..", never hold a path separator or a control
 *     character, are valid UTF-8, within their length limit, and so are
 *     always names the server accepts.
 * Strings are heap blocks of their exact size, so over-reads show.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h" /* sa_utf8_valid */
#include "file_name.h"
#include "fuzz_target.h"
#include "sa_filename.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_file_names: %s\n", what);
    abort();
}

static char *copy_string(const char *s, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        fail("out of memory");
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

/* PROTOCOL.md §8, written out plainly. */
static int protocol_allows(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 255 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7F || c == '/' || c == '\\')
            return 0;
    }
    return 1;
}

/* A name the tools made: checks it against `max` and the server's rule. */
static void check_tool_name(const char *name, size_t max)
{
    if (!name)
        fail("out of memory");
    size_t len = strlen(name);
    if (len > max)
        fail("a tool name is longer than its limit");
    if (!sa_utf8_valid((const unsigned char *)name, len))
        fail("a tool name is not valid UTF-8");
    for (size_t i = 0; i + 1 < len; i++)
        if ((unsigned char)name[i] == 0xC2 && (unsigned char)name[i + 1] <= 0x9F)
            fail("a tool name holds a C1 control character");
    if (!file_name_valid(name))
        fail("a tool name is one the file plugin refuses");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t name_len = strnlen(text, size);
    char *name = copy_string(text, name_len);
    char *file_id = name_len < size ? copy_string(text + name_len + 1, size - name_len - 1)
                                    : NULL;

    if (!file_name_valid(name) != !protocol_allows(name))
        fail("file_name_valid differs from the protocol's rule");

    char *saved = sa_filename_sanitize(name, file_id);
    check_tool_name(saved, SA_FILENAME_MAX);
    char *announced = sa_filename_for_upload(name);
    check_tool_name(announced, SA_FILENAME_UPLOAD_MAX);

    unsigned n = size ? data[size - 1] : 0;
    char *variant = sa_filename_variant(saved, n);
    if (!variant)
        fail("out of memory");
    char *expected = NULL;
    if (n == 0)
        expected = copy_string(saved, strlen(saved));
    else if (asprintf(&expected, "%s (%u)", saved, n) < 0)
        fail("out of memory");
    if (strcmp(variant, expected) != 0)
        fail("sa_filename_variant is not NAME (N)");

    free(expected);
    free(variant);
    free(announced);
    free(saved);
    free(file_id);
    free(name);
    return 0;
}
