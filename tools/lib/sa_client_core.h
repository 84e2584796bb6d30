/*
 * Internal to the sa_client library: the connection core shared by the
 * blocking front end (sa_client.c) and the libev one (sa_client_async.c).
 * It connects, holds the socket, the frame decoder and the request id
 * counter, and knows the few frames the library itself must understand
 * (ping, the hello reply). After connect the front ends decide when to
 * read and write; the core's read and write hide whether the bytes go
 * through TLS (sa_tls_client.c) or straight to the socket.
 */
#ifndef SA_CLIENT_CORE_H
#define SA_CLIENT_CORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "sa_client.h"
#include "sa_tls_client.h"

/* Bytes one read() asks for; the decoder assembles frames of any size. */
#define SA_CLIENT_READ_CHUNK 65536

typedef struct sa_client_core {
    int fd;                 /* the core's; closed by sa_client_core_close */
    SSL *ssl;               /* the core's; NULL for plain TCP */
    char endpoint[320];     /* "host:port" as connected to, for messages */
    sa_decoder decoder;     /* its partial frame is freed by sa_client_core_close */
    atomic_int_fast64_t next_id; /* request ids; any thread may take one */
} sa_client_core;

/* Resolves host:port and connects to the first address that answers, all
 * within timeout_ms (< 0: no limit). On success the socket is non-blocking,
 * close-on-exec, TCP_NODELAY, and the decoder accepts frames up to the
 * protocol's default max_frame. Returns 0, or -1 with a message in err. */
int sa_client_core_connect(sa_client_core *core, const char *host, const char *port,
                           int timeout_ms, char *err, size_t errlen);
/* Ends the connection: sends TLS close_notify when the session is
 * healthy (without waiting), frees the TLS session, closes the socket.
 * The decoder stays. Safe to call again. */
void sa_client_core_close_socket(sa_client_core *core);
/* sa_client_core_close_socket, and frees the decoder's partial frame. */
void sa_client_core_close(sa_client_core *core);

/* After connect, when the connection is to use TLS: sets up the session
 * (see sa_tls_client_new); `host` is what the certificate must name. The
 * handshake is then driven by sa_client_core_handshake. Returns 0, or -1
 * with a message in err. */
int sa_client_core_start_tls(sa_client_core *core, const sa_client_tls *tls, const char *host,
                             char *err, size_t errlen);
/* One handshake step (sa_tls_client_handshake); SA_IO_DONE at once for plain
 * TCP. */
int sa_client_core_handshake(sa_client_core *core, char *err, size_t errlen, int *refused);

/* Reads into buf / writes from buf, never blocking: a byte count (> 0),
 * or a negative enum sa_io_result (for plain TCP too), with the reason
 * in err for SA_IO_FAILED. A WANT (EAGAIN, EINTR) is retried with the
 * same buffer and length once the socket is ready. Each call must not
 * run at the same time as another read or write of the same core. */
ssize_t sa_client_core_read(sa_client_core *core, void *buf, size_t len, char *err,
                            size_t errlen);
ssize_t sa_client_core_write(sa_client_core *core, const void *buf, size_t len, char *err,
                             size_t errlen);
/* 1 when TLS holds received bytes that the socket no longer shows as
 * readable: read again before waiting for the socket. */
int sa_client_core_has_pending(const sa_client_core *core);

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
/* Milliseconds left before `deadline` for poll(): -1 when there is none. */
int sa_client_core_remaining_ms(int64_t deadline);

#endif
