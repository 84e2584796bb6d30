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

/* The TLS state of one connection accepted on a tls_listen listener. The
 * core makes it (open_tls) and owns it; the engine may use it until
 * core->closed for the connection returns. */
typedef struct sa_tls sa_tls;

enum sa_tls_state {
    SA_TLS_STATE_HANDSHAKE,   /* only handshake records may be written */
    SA_TLS_STATE_ESTABLISHED, /* frames may be encrypted and written */
    SA_TLS_STATE_FAILED       /* write nothing more (not even what is pending) and close */
};

/* Settings the core passes to the engine (from [server]). */
typedef struct sa_engine_config {
    const char *const *listen; /* "HOST:PORT" plain listeners, NULL-terminated */
    const char *const *tls_listen; /* "HOST:PORT" TLS listeners, NULL-terminated */
    size_t sendq_max;          /* bytes queued to one client before it is dropped */
    unsigned close_linger_ms;  /* how long a closing connection may flush */
    unsigned shutdown_linger_ms; /* how long shutdown waits for flushes */
    unsigned workers;          /* event loops (threads) to serve with, at least 1;
                                  an engine with a thread per client ignores it */
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

    /* ---- TLS (connections accepted on config->tls_listen) ----
     *
     * Such a connection is opened with open_tls instead of open, which also
     * hands back its sa_tls. The engine keeps doing the socket I/O:
     *   - listening: with listen_tls.
     *   - reading: the bytes read go to core->input as for a plain
     *     connection; the core runs the handshake and decrypts. Input may
     *     produce ciphertext to write (handshake records), and may complete
     *     the handshake, which lets queued frames go: after each input the
     *     engine looks at tls_output and tls_state again.
     *   - writing: frames are encrypted when they are written, not when they
     *     are queued (a drop at sendq_max still discards the frames not yet
     *     begun, and records leave in the order they were made): while
     *     tls_output has nothing and the state is ESTABLISHED, the engine
     *     passes the next bytes of its queue to tls_encrypt, then writes
     *     what tls_output hands out. Frames queued during the handshake wait.
     *   - only the code that writes the connection's socket calls tls_output
     *     and tls_output_done (one writer at a time); the other functions
     *     are safe from any thread, also while input runs.
     *   - FAILED: write nothing more and close (the core has already asked
     *     to close). A close during the handshake needs no flushing: nothing
     *     queued can be sent. Before shutting down the writing side of an
     *     ESTABLISHED connection call tls_close_notify and write its output. */
    sa_session *(*open_tls)(sa_conn *conn, const char *peer, sa_tls **tls);

    /* listen_tcp for a tls_listen entry; it logs "listening on HOST:PORT
     * (TLS)". */
    int (*listen_tls)(const char *hostport);

    /* enum sa_tls_state. */
    int (*tls_state)(sa_tls *t);

    /* Encrypts up to len bytes of plaintext into the ciphertext stream;
     * returns how many were taken (0 unless ESTABLISHED). A memory bound:
     * pass about 16 KiB at a time and write the output before more. */
    size_t (*tls_encrypt)(sa_tls *t, const unsigned char *plain, size_t len);

    /* Ciphertext waiting to be written: sets *bytes and returns its length,
     * 0 when there is none. The bytes stay valid until tls_output_done. */
    size_t (*tls_output)(sa_tls *t, const unsigned char **bytes);

    /* `written` bytes of what tls_output handed out went to the socket. */
    void (*tls_output_done)(sa_tls *t, size_t written);

    /* Adds the TLS close_notify alert to the ciphertext stream. */
    void (*tls_close_notify)(sa_tls *t);
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
