/*
 * File names for the file tools. A name that comes from the server is
 * never trusted: it is cut down to something that can only ever name a
 * plain entry of the download folder. Pure functions.
 */
#ifndef SA_FILENAME_H
#define SA_FILENAME_H

#include <stddef.h>

/* Bytes kept of an offered name: with " (4294967295)" and ".part" added
 * it still fits NAME_MAX (255). */
#define SA_FILENAME_MAX 200
/* The protocol's limit on the name sent with file_put. */
#define SA_FILENAME_UPLOAD_MAX 255

/* The name a received file gets inside the download folder. From
 * `offered` only the last path component counts (after the last '/' or
 * '\\'); control characters (C0, DEL, C1) and bytes that are not valid
 * UTF-8 are dropped; it is cut to SA_FILENAME_MAX bytes at a character
 * boundary. When nothing usable remains (empty, "." or ".."), `file_id`
 * is treated the same way and used instead, and when that is unusable as
 * well, "file". `offered` and `file_id` may be NULL. Returns a malloc'd
 * string (the caller frees it), or NULL when out of memory. */
char *sa_filename_sanitize(const char *offered, const char *file_id);

/* The name to announce with file_put for the local file `path`: its last
 * component, cleaned the same way (at most SA_FILENAME_UPLOAD_MAX bytes),
 * or "file" when nothing usable remains. malloc'd, or NULL. */
char *sa_filename_for_upload(const char *path);

/* `name` itself for n == 0, else "name (n)". malloc'd, or NULL. */
char *sa_filename_variant(const char *name, unsigned n);

#endif
