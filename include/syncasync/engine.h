/*
 * SyncAsync engine plugin API: for authors of transport engines.
 *
 * An engine owns the sockets, accept, reads and writes, per-connection
 * timers and the threads or loop that drive them. It knows nothing of the
 * protocol: it hands the bytes it reads to the core and writes the frames
 * the core gives it. The core owns sessions, framing, dispatch and the
 * handler plugins.
 *
 * Lanes: for one connection, the engine calls core->input, core->timer and
 * core->closed one at a time, never concurrently, in the order events
 * happened (the connection's serial lane). Different connections may be
 * served concurrently.
 *
 * Re-entrancy: the core calls ops->send and ops->close while holding the
 * session's lock, which core->closed also takes. So send and close must
 * never call core->closed (or input/timer) synchronously: a close that
 * could complete at once is finished later from the engine's own context
 * (next loop iteration, or the connection's reader thread). In exchange
 * the core never calls send or close for a connection after core->closed
 * for it has returned, so the engine may free it then.
 *
 * An engine plugin's descriptor (syncasync/plugin.h) has kind
 * SA_PLUGIN_ENGINE, init == NULL and `engine` pointing at its sa_engine_ops.
 */
#ifndef SYNCASYNC_ENGINE_H
#define SYNCASYNC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <syncasync/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sa_conn sa_conn;     /* the engine's connection object */
typedef struct sa_engine sa_engine; /* the engine's own state */

/* The bytes of an encoded frame: 4-byte big-endian length, then JSON.
 * Immutable and shared by reference count (core->frame_ref/unref). */
struct sa_frame {
    const unsigned char *bytes;
    size_t len;
};

/* Settings the core passes to the engine (from [server]). */
typedef struct sa_engine_config {
    const char *const *listen; /* "HOST:PORT" plain listeners, NULL-terminated */
    size_t sendq_max;          /* bytes queued to one client before it is dropped */
    unsigned close_linger_ms;  /* how long a closing connection may flush */
    unsigned shutdown_linger_ms; /* how long shutdown waits for flushes */
} sa_engine_config;

/* What the core offers an engine. Every function is safe from any thread. */
typedef struct sa_engine_core {
    const sa_engine_config *config;

    void (*log)(enum sa_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

    /* Creates a listening TCP socket (non-blocking, SO_REUSEADDR, backlog
     * SOMAXCONN) for "HOST:PORT" and logs "listening on HOST:PORT" with the
     * port actually bound. Returns the fd, or -1 after logging why. */
    int (*listen_tcp)(const char *hostport);

    /* A connection was accepted. `peer` is its "ADDR:PORT" text. Returns
     * the session to pass back below, or NULL (out of memory): close the
     * socket. The core may, from within open, already send a frame and
     * call close (e.g. server_full). */
    sa_session *(*open)(sa_conn *conn, const char *peer);

    /* Bytes read from the connection. Returns 0 to keep reading, -1 when
     * the core has closed the connection (stop reading; keep flushing). */
    int (*input)(sa_session *s, const unsigned char *data, size_t len);

    /* The connection's timer fired at `now_ms` (monotonic milliseconds).
     * Returns the delay in milliseconds after which to call it again. Call
     * it first right after open. */
    int64_t (*timer)(sa_session *s, int64_t now_ms);

    /* The connection is gone (peer closed, error, or the engine finished a
     * close). The last call for this session: after it returns, the engine
     * frees the connection and the core drops its reference. */
    void (*closed)(sa_session *s);

    /* The connection's queued output fell to the low-water mark given to
     * ops->notify_writable. Called in the connection's lane (like input),
     * never from inside send/close/notify_writable. */
    void (*writable)(sa_session *s);

    /* A `bye` frame with the given reason (new reference). */
    sa_frame *(*bye_frame)(const char *reason);

    void (*frame_ref)(sa_frame *f);
    void (*frame_unref)(sa_frame *f);

    /* Monotonic milliseconds (the clock of `timer`). */
    int64_t (*monotonic_ms)(void);
} sa_engine_core;

struct sa_engine_ops {
    /* Sets up listeners; returns NULL after logging why (e.g. a port in
     * use), and the host exits with status 1. */
    sa_engine *(*create)(const sa_engine_core *core);

    /* Serves until stop(); then says `bye` `shutdown` to every connection,
     * lets their queued output drain (at most shutdown_linger_ms), calls
     * core->closed for each, and returns 0. */
    int (*run)(sa_engine *e);

    /* Asks run() to finish. Safe from any thread. */
    void (*stop)(sa_engine *e);

    /* Frees what create() made; run() has returned. */
    void (*destroy)(sa_engine *e);

    /* Queues a frame (the engine takes its own reference). Never blocks.
     * When the queued bytes would pass config->sendq_max, the connection
     * is dropped instead: frames not yet begun are discarded, the one in
     * progress is finished, `bye` `sendq_exceeded` is written, then the
     * connection closes (after at most close_linger_ms). Returns 0 when
     * queued, -1 when the connection is closing or was dropped. */
    int (*send)(sa_conn *c, sa_frame *f);

    /* Stop reading; close once everything queued is written (or after
     * close_linger_ms). Safe from any thread; a second call is a no-op. */
    void (*close)(sa_conn *c);

    /* Bytes queued and not yet written (any thread). */
    size_t (*queued)(sa_conn *c);

    /* Arms one core->writable call for when the queued bytes are at most
     * `low_water` (at once, i.e. on the lane's next turn, if they already
     * are). A second call before it fires replaces the mark. Any thread;
     * no call after the connection began closing. */
    void (*notify_writable)(sa_conn *c, size_t low_water);
};

#ifdef __cplusplus
}
#endif

#endif
