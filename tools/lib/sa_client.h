/*
 * SyncAsync client library (static library sa_client), used by sa-client,
 * sa-send, sa-recv and the integration tests.
 *
 * One connection core (connect, frame encoding and decoding, request ids,
 * hello) with two front ends:
 *   - blocking (--mode sync): every call blocks up to a timeout;
 *   - libev (--mode async): frames are delivered to a callback from the
 *     caller's event loop.
 *
 * Ownership: a cJSON handed to a send function stays the caller's. A cJSON
 * returned to the caller (recv, request) is the caller's to cJSON_Delete.
 * A cJSON passed to a callback is valid during the callback only.
 *
 * Threads (blocking API). An sa_client may be shared by two threads in
 * exactly this pattern: ONE receiving thread calls sa_client_recv,
 * sa_client_request and sa_client_hello (they own the frame queue and the
 * decoder), while ANY other threads call sa_client_send,
 * sa_client_send_raw, sa_client_send_request and sa_client_shutdown
 * (writes are serialized by a mutex, so frames never interleave; pongs
 * sent inside recv take the same mutex). sa_client_error may be called by
 * any of them: it returns a copy of the client's last error text private
 * to the calling thread, valid until that thread calls sa_client_error
 * again. set_auto_pong may be called from any thread. To stop the
 * receiving thread, call sa_client_shutdown (its recv then returns
 * SA_CLIENT_CLOSED), join it, then sa_client_close.
 */
#ifndef SA_CLIENT_H
#define SA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct ev_loop;

enum sa_client_status {
    SA_CLIENT_OK = 0,
    SA_CLIENT_TIMEOUT = -1, /* nothing arrived in time */
    SA_CLIENT_CLOSED = -2,  /* the server closed the connection */
    SA_CLIENT_ERROR = -3,   /* I/O or protocol error; see sa_client_error() */
};

typedef struct sa_client sa_client;

/* How to secure a connection with TLS (1.2 at least). Unless `insecure`,
 * the server's certificate must chain to a CA of `ca_file` (NULL: the
 * system's trust store) and name the host connected to: the DNS name, or
 * the IP address when the host is an IP literal. A name is sent as SNI. */
typedef struct sa_client_tls {
    const char *ca_file;
    int insecure; /* skip every certificate check */
} sa_client_tls;

/* ---- blocking API ------------------------------------------------------ */

/* Connects to host:port (name or address, IPv4 or IPv6) within timeout_ms.
 * Returns NULL and writes a message into err on failure. */
sa_client *sa_client_connect(const char *host, const char *port, int timeout_ms, char *err,
                             size_t errlen);
/* The same over TLS when `tls` is not NULL: the handshake is done before
 * it returns, within the same timeout. When it fails because the server's
 * certificate was refused (untrusted, expired, for another host), err says
 * why and *cert_refused (when not NULL) is set: trying again cannot help. */
sa_client *sa_client_connect_tls(const char *host, const char *port, const sa_client_tls *tls,
                                 int timeout_ms, char *err, size_t errlen, int *cert_refused);
void sa_client_close(sa_client *c); /* closes the socket and frees */

/* Sends one frame holding `msg`. Blocks until written. */
int sa_client_send(sa_client *c, const cJSON *msg);
/* Sends raw bytes as they are (tests: split, merged and broken frames). */
int sa_client_send_raw(sa_client *c, const void *bytes, size_t len);
/* Sends `msg` with a fresh integer "id" added (msg is not modified) and
 * returns that id without waiting: the reply comes through sa_client_recv.
 * Returns -1 on failure (see sa_client_error). For a sending thread that
 * is not the receiving one. */
int64_t sa_client_send_request(sa_client *c, const cJSON *msg);
/* Shuts the socket down both ways, from any thread: a blocked or later
 * recv returns SA_CLIENT_CLOSED and sends fail. Does not free. */
void sa_client_shutdown(sa_client *c);

/* Next frame from the server (queued events first), waiting up to
 * timeout_ms (-1 = forever). *out is set on SA_CLIENT_OK. A frame that is
 * not JSON is SA_CLIENT_ERROR; the framing is intact, so the next call
 * goes on with the next frame. Once the stream has ended (closed, reset,
 * an undecodable frame header) every later call returns that status again,
 * after the frames that arrived before the end. */
int sa_client_recv(sa_client *c, cJSON **out, int timeout_ms);

/* Sends `req` with a fresh integer "id" added (req is not modified: a copy
 * is sent) and waits for the reply carrying that id. Frames that arrive
 * meanwhile (events, pings answered automatically) are queued for
 * sa_client_recv. On SA_CLIENT_OK *reply is the "ok" or "error" frame. */
int sa_client_request(sa_client *c, const cJSON *req, cJSON **reply, int timeout_ms);

/* hello with name and token (token may be NULL). On SA_CLIENT_OK *reply is
 * the reply (ok or error); check its "type". */
int sa_client_hello(sa_client *c, const char *name, const char *token, cJSON **reply,
                    int timeout_ms);

/* When set (default on), a server "ping" is answered with "pong" inside
 * recv/request and not returned to the caller. */
void sa_client_set_auto_pong(sa_client *c, int on);

int sa_client_fd(const sa_client *c);
const char *sa_client_error(const sa_client *c); /* last error text */

/* ---- libev API ---------------------------------------------------------- */

typedef struct sa_client_async sa_client_async;

typedef struct sa_client_async_callbacks {
    /* Every frame from the server (after auto-pong: a server "ping" is
     * answered with "pong" by the library and not passed on). */
    void (*on_frame)(sa_client_async *c, const cJSON *frame, void *arg);
    /* The connection ended; `reason` is human text. No further calls. Not
     * called for a close the caller asked for with sa_client_async_close.
     * The object stays allocated: call sa_client_async_close (from here or
     * later) to free it. A frame that is not a JSON object ends the
     * connection. */
    void (*on_close)(sa_client_async *c, const char *reason, void *arg);
} sa_client_async_callbacks;

/* Connects (blocking, up to timeout_ms) and then serves the socket from
 * `loop`. Returns NULL with a message in err on failure. */
sa_client_async *sa_client_async_connect(struct ev_loop *loop, const char *host,
                                         const char *port, int timeout_ms,
                                         const sa_client_async_callbacks *cb, void *arg,
                                         char *err, size_t errlen);
/* The same over TLS when `tls` is not NULL. Only the TCP connect blocks:
 * the handshake runs from the loop, and frames sent meanwhile wait in the
 * write queue until it is done. A failed handshake ends the connection
 * through on_close with the reason (for a certificate, see
 * sa_client_async_cert_refused); the caller's own deadline (that of the
 * hello reply) bounds how long it may take. */
sa_client_async *sa_client_async_connect_tls(struct ev_loop *loop, const char *host,
                                             const char *port, const sa_client_tls *tls,
                                             int timeout_ms,
                                             const sa_client_async_callbacks *cb, void *arg,
                                             char *err, size_t errlen);
/* 1 when the connection ended because the server's certificate was
 * refused (in on_close and after): trying again cannot help. */
int sa_client_async_cert_refused(const sa_client_async *c);
/* Queues `msg` for writing (never blocks). Returns 0 or -1. */
int sa_client_async_send(sa_client_async *c, const cJSON *msg);
/* Queues `msg` with a fresh integer id added; returns the id, or -1. */
int64_t sa_client_async_request(sa_client_async *c, const cJSON *msg);
/* Bytes queued for writing that the socket has not taken yet. */
size_t sa_client_async_queued(const sa_client_async *c);
/* The socket, for socket options and queries (not for reading or writing). */
int sa_client_async_fd(const sa_client_async *c);
/* Asks for fn(c, arg) (arg: the one given at connect) after every write
 * to the socket that leaves at most `low_water` bytes queued, the write
 * that empties the queue included, so that a bulk sender (a file upload)
 * can keep the queue bounded and refill it as the socket drains. fn may
 * send and may close. A NULL fn turns this off. */
void sa_client_async_set_drain(sa_client_async *c, size_t low_water,
                               void (*fn)(sa_client_async *c, void *arg));
/* Stops the watchers, closes the socket and frees. Safe from callbacks
 * (the memory is then freed when the callback returns into the library).
 * Output still queued is written only as far as the socket takes it at
 * once, without blocking. */
void sa_client_async_close(sa_client_async *c);

#endif
