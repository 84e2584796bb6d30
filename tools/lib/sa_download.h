/*
 * One file download (PROTOCOL.md §8, "Download"), as a state machine run
 * by a driver (see sa_xfer.h). It writes DIR/NAME.part (sa_part_file.h),
 * resuming one that exists (its bytes are hashed first, a block per pump,
 * and file_get asks for the rest), checks size and SHA-256 at file_end and
 * renames the file to its final name; a checksum mismatch deletes the
 * .part. NAME is the server's name made safe by sa_filename_sanitize.
 * After a lost connection, sa_download_start on the new one asks again
 * from the bytes already written.
 *
 * Ownership: the sa_download owns the .part descriptor (and its lock),
 * its buffers and strings; sa_download_free releases them and leaves an
 * unfinished .part in place for a later resume. The folder descriptor and
 * the transport are borrowed.
 */
#ifndef SA_DOWNLOAD_H
#define SA_DOWNLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sa_xfer.h"

typedef struct sa_download sa_download;

typedef struct sa_download_params {
    int dirfd;               /* the download folder; must outlive the download */
    const char *dir_display; /* the folder as the user named it, for the printed path */
    const char *file_id;
    /* From `files` or file_offer when known (NULL / 0 otherwise): with a
     * name, an existing .part is resumed; without, the name comes from
     * the file_get reply and the download starts from 0. */
    const char *offered_name;
    uint64_t offered_size;
    int force; /* replace an existing file of the final name */
} sa_download_params;

/* Copies what it needs from p. NULL with a message in err when out of
 * memory. */
sa_download *sa_download_new(const sa_download_params *p, char *err, size_t errlen);
void sa_download_free(sa_download *d);

/* Runs on a connection whose hello succeeded; `t` is copied, its ctx
 * borrowed until sa_download_stop or sa_download_free. */
void sa_download_start(sa_download *d, const sa_xfer_transport *t);
/* The connection is gone: nothing is sent until the next start. */
void sa_download_stop(sa_download *d);
enum sa_xfer_pump sa_download_pump(sa_download *d);
/* Takes a frame from the server; 1 when it was about this download. */
int sa_download_on_frame(sa_download *d, const cJSON *frame);

enum sa_xfer_state sa_download_state(const sa_download *d);
/* Why it failed ("code: message" for a server error), "" otherwise. */
const char *sa_download_error(const sa_download *d);
const char *sa_download_file_id(const sa_download *d);
/* The safe name (NULL until known), and once done the path written:
 * dir_display + "/" + the final name ("NAME (1)"...). */
const char *sa_download_name(const sa_download *d);
const char *sa_download_path(const sa_download *d);
const char *sa_download_sha256(const sa_download *d); /* the server's; "" until known */
/* 1 once the file_get reply came and data is arriving (or arrived). */
int sa_download_receiving(const sa_download *d);
uint64_t sa_download_size(const sa_download *d);
uint64_t sa_download_resumed_at(const sa_download *d);
uint64_t sa_download_received(const sa_download *d); /* bytes in the .part */

#endif
