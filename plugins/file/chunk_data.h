/*
 * The "data" member of a file_chunk frame (PROTOCOL.md §8), shared by the
 * server's downloads and the client's uploads. Base64 text never needs
 * JSON escaping, so it is written once, quotes included, and handed to
 * cJSON as raw text that printing copies in one block: cJSON's string
 * printer would otherwise examine the ~87 KB of each chunk byte by byte.
 */
#ifndef SA_FILE_CHUNK_DATA_H
#define SA_FILE_CHUNK_DATA_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Bytes of the buffer chunk_data_json needs for `len` file bytes. */
size_t chunk_data_text_size(size_t len);

/* Writes the JSON string of the base64 of `len` bytes of `in` into `text`
 * (chunk_data_text_size(len) bytes) and returns an item that refers to it
 * without copying, to add as "data"; `text` must outlive the item's
 * printing. NULL when out of memory. */
cJSON *chunk_data_json(const unsigned char *in, size_t len, char *text);

#endif
