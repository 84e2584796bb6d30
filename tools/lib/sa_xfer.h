/*
 * What file uploads (sa_upload.h) and downloads (sa_download.h) share:
 * the way they send, the way a driver runs them, and their outcome.
 *
 * A transfer is a state machine with no I/O loop of its own. Its driver
 * (sa-send, sa-recv, sa-client; blocking or libev) gives it a transport
 * once the connection's hello has succeeded, hands it every frame from
 * the server, and calls its pump whenever it asked for that: the pump does
 * one bounded piece of work (hash a block, queue some chunks) and says
 * when it wants to run again. That keeps a libev loop responsive and lets
 * a blocking driver read between pieces.
 */
#ifndef SA_XFER_H
#define SA_XFER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* How a transfer sends. `request` adds a fresh id and returns it (or -1);
 * `send` returns 0 or -1. `queued` reports the bytes written to the
 * connection's queue and not yet to the socket (NULL: the sends block
 * until written, nothing queues). A failed send means the connection is
 * going away: the transfer then waits to be restarted or freed. */
typedef struct sa_xfer_transport {
    int64_t (*request)(void *ctx, const cJSON *msg);
    int (*send)(void *ctx, const cJSON *msg);
    size_t (*queued)(void *ctx);
    void *ctx;
} sa_xfer_transport;

/* What a pump call asks of its driver. */
enum sa_xfer_pump {
    SA_XFER_IDLE,    /* nothing to do until a frame arrives */
    SA_XFER_AGAIN,   /* more work is ready: pump again soon */
    SA_XFER_BLOCKED  /* the write queue is full: pump again once it drains */
};

enum sa_xfer_state {
    SA_XFER_ACTIVE,
    SA_XFER_DONE,
    SA_XFER_FAILED
};

/* Most bytes a transfer lets wait in a write queue. */
#define SA_XFER_QUEUE_LIMIT (1024u * 1024u)
/* Most file bytes one pump call hashes, reads or sends. */
#define SA_XFER_STEP_BYTES (1024u * 1024u)
/* The protocol's largest chunk. */
#define SA_XFER_MAX_CHUNK 65536u

/* obj[key] when it is a string, else NULL. */
const char *sa_xfer_string(const cJSON *obj, const char *key);
/* 1 when frame["type"] is `type`. */
int sa_xfer_is_type(const cJSON *frame, const char *type);
/* 1 when `frame` is an ok or error reply carrying the integer id `id`
 * (id < 0 never matches). */
int sa_xfer_is_reply_to(const cJSON *frame, int64_t id);
/* "code: message" from an error frame, with whatever the server wrote
 * made safe for a terminal (sa_display.h). malloc'd, NULL when out of
 * memory. */
char *sa_xfer_error_text(const cJSON *error);
/* How many file bytes one file_chunk for `file_id` may carry so that the
 * frame fits `max_frame`: at most `chunk_size` (and the protocol's 65536),
 * a multiple of 3 when less. 0 when not even 3 bytes fit. */
size_t sa_xfer_chunk_bytes(uint32_t max_frame, size_t chunk_size, const char *file_id);

#endif
