/*
 * Building output lines safely (sa-client, sa-send, sa-recv): a growable
 * string, and escaping of text that came from the network so that it can
 * never drive the terminal.
 */
#ifndef SA_DISPLAY_H
#define SA_DISPLAY_H

#include <stddef.h>

/* A growable NUL-terminated string. `data` is owned by the strbuf and freed
 * by strbuf_free. After an allocation failure `failed` is set and further
 * appends do nothing. */
typedef struct strbuf {
    char *data;
    size_t len, cap;
    int failed;
} strbuf;

void strbuf_init(strbuf *sb);
void strbuf_free(strbuf *sb);
void strbuf_add(strbuf *sb, const char *text); /* trusted (local) text */
void strbuf_add_len(strbuf *sb, const char *text, size_t len);

/* Appends untrusted text: bytes below 0x20 and 0x7F become \xNN, C1
 * controls (U+0080..U+009F) become \u00NN, bytes that are not valid UTF-8
 * become \xNN; valid UTF-8 otherwise passes through. NULL appends "?". */
void strbuf_add_untrusted(strbuf *sb, const char *text);

/* Appends JSON text (as cJSON prints it) made safe for a terminal while
 * staying valid JSON: raw DEL and C1 controls become \u00NN escapes and
 * bytes that are not valid UTF-8 become \ufffd. cJSON already escapes the
 * other control characters. */
void strbuf_add_json(strbuf *sb, const char *json);

#endif
