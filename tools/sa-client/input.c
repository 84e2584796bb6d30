#include "input.h"

#include <stdlib.h>
#include <string.h>

void line_reader_init(line_reader *r, size_t limit)
{
    memset(r, 0, sizeof *r);
    r->limit = limit;
}

void line_reader_free(line_reader *r)
{
    free(r->partial);
    r->partial = NULL;
    r->len = r->cap = 0;
}

/* Appends to the partial line, or starts discarding past the limit. */
static int keep(line_reader *r, const char *data, size_t len)
{
    if (r->discarding)
        return 0;
    if (len > r->limit - r->len) {
        r->discarding = 1;
        r->len = 0;
        return 0;
    }
    if (r->len + len > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + len)
            cap *= 2;
        char *grown = realloc(r->partial, cap);
        if (!grown) {
            r->len = 0;
            r->discarding = 1;
            return -1;
        }
        r->partial = grown;
        r->cap = cap;
    }
    memcpy(r->partial + r->len, data, len);
    r->len += len;
    return 0;
}

static void deliver(line_reader *r, line_fn fn, void *arg)
{
    if (r->discarding) {
        fn(arg, "", 0, 1);
    } else {
        size_t len = r->len;
        if (len > 0 && r->partial[len - 1] == '\r')
            len--;
        fn(arg, len ? r->partial : "", len, 0);
    }
    r->len = 0;
    r->discarding = 0;
}

int line_reader_feed(line_reader *r, const char *data, size_t len, line_fn fn, void *arg)
{
    int rc = 0;
    while (len > 0) {
        const char *newline = memchr(data, '\n', len);
        size_t take = newline ? (size_t)(newline - data) : len;
        if (keep(r, data, take) != 0)
            rc = -1;
        if (!newline)
            break;
        deliver(r, fn, arg);
        data += take + 1;
        len -= take + 1;
    }
    return rc;
}

void line_reader_finish(line_reader *r, line_fn fn, void *arg)
{
    if (r->len > 0 || r->discarding)
        deliver(r, fn, arg);
}
