/*
 * How sa-client shows what the server sends: the text form of each frame
 * (INTERFACE.md "sa-client") or, with --json, the frame itself. Every
 * string from the network goes through strbuf_add_untrusted (or
 * strbuf_add_json), so it cannot drive the terminal.
 *
 * Each function writes whole lines and flushes them, so that even a pipe
 * sees each line at once. They return 0, or -1 when writing failed.
 */
#ifndef SA_CLIENT_RENDER_H
#define SA_CLIENT_RENDER_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "sa_display.h"

/* Writes `line` and a newline, then frees the line's text. */
int render_line(FILE *out, strbuf *line);
/* The text form; frames with nothing to show (unknown events, most ok
 * replies, pongs) write nothing. */
int render_frame(FILE *out, const cJSON *frame);
/* The frame as one JSON line. */
int render_json(FILE *out, const cJSON *frame);

#endif
