/*
 * One file upload (PROTOCOL.md §8, "Upload"), as a state machine run by a
 * driver (see sa_xfer.h): hash the file (SHA-256, a block per pump), send
 * file_put, stream file_chunk frames from the offset the server reports
 * without waiting for replies (bounded by SA_XFER_QUEUE_LIMIT when the
 * transport queues), then file_end, and check the server's size and
 * SHA-256. After a lost connection, sa_upload_start on the new one sends
 * file_put again and the server's offset says where to go on.
 *
 * Ownership: the sa_upload owns its file descriptor, buffers and strings;
 * sa_upload_free releases them. It only borrows the transport.
 */
#ifndef SA_UPLOAD_H
#define SA_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sa_xfer.h"

typedef struct sa_upload sa_upload;

/* Opens `path` for reading; it must be a regular file. `to` and `room`
 * (at most one; NULL for none) address the upload and are copied. NULL
 * with a message in err when the file cannot be used or memory ran out. */
sa_upload *sa_upload_new(const char *path, const char *to, const char *room, char *err,
                         size_t errlen);
void sa_upload_free(sa_upload *u);

/* Runs on a connection whose hello succeeded; `t` is copied, its ctx
 * borrowed until sa_upload_stop or sa_upload_free. `max_frame` is the one
 * the hello reply announced. */
void sa_upload_start(sa_upload *u, const sa_xfer_transport *t, uint32_t max_frame);
/* The connection is gone: nothing is sent until the next start. */
void sa_upload_stop(sa_upload *u);
enum sa_xfer_pump sa_upload_pump(sa_upload *u);
/* Takes a frame from the server; 1 when it was about this upload. */
int sa_upload_on_frame(sa_upload *u, const cJSON *frame);

enum sa_xfer_state sa_upload_state(const sa_upload *u);
/* Why it failed ("code: message" for a server error), "" otherwise. */
const char *sa_upload_error(const sa_upload *u);
const char *sa_upload_path(const sa_upload *u);
const char *sa_upload_name(const sa_upload *u);    /* as sent with file_put */
const char *sa_upload_file_id(const sa_upload *u); /* NULL until the server named it */
const char *sa_upload_sha256(const sa_upload *u);  /* "" until hashed */
uint64_t sa_upload_size(const sa_upload *u);
/* 1 once file_put was answered and chunks are going out (or gone). */
int sa_upload_sending(const sa_upload *u);
/* Where the server's latest file_put reply said to begin. */
uint64_t sa_upload_resumed_at(const sa_upload *u);
/* Bytes sent so far, counted from the start of the file. */
uint64_t sa_upload_sent(const sa_upload *u);

#endif
