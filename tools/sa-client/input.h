/*
 * Splits the bytes read from stdin into lines, the same way in both modes.
 * A line longer than the reader's limit is not kept in memory: its bytes
 * are dropped as they come and it is reported once, as too long, when its
 * end arrives.
 */
#ifndef SA_CLIENT_INPUT_H
#define SA_CLIENT_INPUT_H

#include <stddef.h>

/* `line` (without "\n" or "\r\n") is valid during the call only; when
 * too_long is set it is empty. */
typedef void (*line_fn)(void *arg, const char *line, size_t len, int too_long);

typedef struct line_reader {
    char *partial; /* the reader's: bytes of the line not yet ended */
    size_t len, cap;
    size_t limit;   /* longest line kept, in bytes */
    int discarding; /* the current line passed the limit */
} line_reader;

void line_reader_init(line_reader *r, size_t limit);
void line_reader_free(line_reader *r);
/* Calls fn for each line completed by data. Returns 0, or -1 when out of
 * memory (the partial line is then dropped). */
int line_reader_feed(line_reader *r, const char *data, size_t len, line_fn fn, void *arg);
/* End of input: a last line without a newline is still a line. */
void line_reader_finish(line_reader *r, line_fn fn, void *arg);

#endif
