/*
 * Internal to the sa_client library: the connection core shared by the
 * blocking front end (sa_client.c) and the libev one (sa_client_async.c).
 * It connects, holds the socket, the frame decoder and the request id
 * counter, and knows the few frames the library itself must understand
 * (ping, the hello reply). It does no I/O after connect: the front ends do.
 */
#ifndef SA_CLIENT_CORE_H
#define SA_CLIENT_CORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "codec.h"

/* Bytes one read() asks for; the decoder assembles frames of any size. */
#define SA_CLIENT_READ_CHUNK 65536

typedef struct sa_client_core {
    int fd;                 /* the core's; closed by sa_client_core_close */
    sa_decoder decoder;     /* its partial frame is freed by sa_client_core_close */
    atomic_int_fast64_t next_id; /* request ids; any thread may take one */
} sa_client_core;

/* Resolves host:port and connects to the first address that answers, all
 * within timeout_ms (< 0: no limit). On success the socket is non-blocking,
 * close-on-exec, TCP_NODELAY, and the decoder accepts frames up to the
 * protocol's default max_frame. Returns 0, or -1 with a message in err. */
int sa_client_core_connect(sa_client_core *core, const char *host, const char *port,
                           int timeout_ms, char *err, size_t errlen);
void sa_client_core_close(sa_client_core *core);

int64_t sa_client_core_next_id(sa_client_core *core);

/* A deep copy of `msg` with its "id" set to `id`; the caller deletes it.
 * NULL when out of memory or when msg is not an object. */
cJSON *sa_client_core_with_id(const cJSON *msg, int64_t id);

/* Parses a server frame; NULL unless it is a JSON object. Caller deletes. */
cJSON *sa_client_core_parse(const unsigned char *payload, size_t len);

/* Looks at every frame received. A successful hello reply announcing a
 * max_frame larger than the default raises the decoder's limit to it. */
void sa_client_core_observe(sa_client_core *core, const cJSON *frame);

int sa_client_core_is_ping(const cJSON *frame);
/* The pong answering `ping` (its ts and id echoed); caller deletes. */
cJSON *sa_client_core_pong_for(const cJSON *ping);

/* 1 when `frame` is an ok or error reply carrying the integer id `id`. */
int sa_client_core_is_reply_to(const cJSON *frame, int64_t id);

/* Human text for a decoder failure. */
const char *sa_client_core_decode_error(enum sa_decode_status status);

/* Monotonic milliseconds, for deadlines. */
int64_t sa_client_core_now_ms(void);

#endif
