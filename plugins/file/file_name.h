/*
 * The display name of an uploaded file (PROTOCOL.md §8): a pure check,
 * kept apart so that unit tests and fuzz targets can reach it.
 */
#ifndef SA_FILE_NAME_H
#define SA_FILE_NAME_H

/* Longest name accepted, in bytes. */
#define FILE_NAME_MAX 255

/* Nonzero when `name` (a NUL-terminated string, valid UTF-8 as the host
 * checked) is 1 to FILE_NAME_MAX bytes, not "." or "..", and holds no
 * '/', '\\', control character (below 0x20) or DEL. */
int file_name_valid(const char *name);

#endif
