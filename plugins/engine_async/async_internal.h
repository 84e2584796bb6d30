/*
 * Internal state of the async engine.
 *
 * Each libev loop (struct async_loop) serves the connections dealt to it,
 * on a thread of its own. All the state below belongs to the loop's
 * thread, except:
 *   - the inbox (inbox_*) and the adoption list (adopt_*), guarded by
 *     inbox_lock: other threads post their send/close requests there, the
 *     accepting loop the connections it deals to this one, and they wake
 *     the loop with ev_async;
 *   - stop_requested and rescan_requested, atomics set by any thread;
 *   - a connection's atomics (refusing, queued, inbox_refs, writable_mark),
 *     which other threads read and update in send/close/notify_writable.
 *
 * Ownership:
 *   - the engine owns its listeners (fds closed at shutdown or destroy) and
 *     its loop;
 *   - the loop owns every connection on its live list; a finished
 *     connection is freed by conn_release_if_done once nothing refers to it
 *     any more (not pinned by a callback on the stack, not on the dirty
 *     list, no inbox entry naming it);
 *   - a connection owns its socket and its output ring with one frame
 *     reference per queued frame; rings are recycled through the loop's
 *     spare lists;
 *   - an inbox entry owns the frame reference it carries and counts in its
 *     connection's inbox_refs.
 */
#ifndef SA_ENGINE_ASYNC_INTERNAL_H
#define SA_ENGINE_ASYNC_INTERNAL_H

#include <ev.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <syncasync/engine.h>

/* A connection's queued frames (async_outq.c): a power-of-two ring of
 * references, the first at sa_conn.out_head. */
struct out_ring {
    struct out_ring *next_spare; /* on the loop's spare list */
    unsigned cls;                /* capacity class: 16 << cls slots */
    sa_frame *slots[];           /* one reference each */
};
#define OUTQ_RING_CLASSES 12 /* spare lists for 16 .. 32768 slots */

enum conn_state {
    CONN_OPEN = 0, /* reading requests, writing replies */
    CONN_CLOSING,  /* no longer reading; flushing the queue, then shutdown */
    CONN_LINGER,   /* write side shut, core->closed called; discarding input
                      until the peer's EOF, then the socket closes */
    CONN_FINISHED  /* socket closed, core->closed called; awaiting free */
};

struct async_loop;

struct sa_conn {
    struct async_loop *loop; /* borrowed: outlives the connection */
    sa_session *session;     /* the core's; NULL once core->closed returned */
    sa_tls *tls;             /* the session's (open_tls); NULL on a plain connection */
    ev_io io;                /* read and write readiness, one watcher for both */
    ev_timer timer;          /* core->timer while open; the close linger after */
    struct out_ring *out;    /* queued frames; NULL when none */
    size_t out_head, out_count; /* first slot, frames queued */
    size_t out_done;         /* bytes of the first frame already written */
    sa_conn *dirty_next;     /* the loop's list of connections to flush */
    sa_conn *live_prev, *live_next; /* the loop's list of unfinished connections */
    atomic_size_t queued;    /* bytes of queued frames, inbox ones included */
    atomic_uint inbox_refs;  /* inbox entries naming this connection */
    atomic_bool refusing;    /* send() now fails: closing, dropped or gone */
    atomic_size_t writable_mark; /* notify_writable's low water; SIZE_MAX = none */
    int fd;                  /* owned; -1 once finished */
    unsigned char state;     /* enum conn_state */
    unsigned char pins;      /* loop callbacks on the stack that use it */
    unsigned char io_events; /* the events `io` is started with (0 = stopped) */
    bool dirty : 1;          /* on the dirty list */
    bool write_blocked : 1;  /* the socket buffer is full: wait for EV_WRITE */
    bool dropped : 1;        /* passed sendq_max: later frames are discarded */
    bool tls_close_notified : 1; /* close_notify is in the TLS output */
};

enum inbox_op { INBOX_SEND, INBOX_CLOSE, INBOX_DROP, INBOX_NOTIFY };

/* An accepted socket handed to another loop, which opens the connection. */
struct async_adopt {
    struct async_adopt *next;
    int fd; /* owned until conn_open takes it */
    bool tls; /* accepted on a tls_listen listener */
    char peer[];
};

struct inbox_entry {
    struct inbox_entry *next;
    sa_conn *conn;   /* counted in conn->inbox_refs */
    sa_frame *frame; /* INBOX_SEND only: one reference */
    enum inbox_op op;
};

struct async_loop {
    sa_engine *engine; /* borrowed: the engine owns the loop */
    const sa_engine_core *core;
    struct ev_loop *ev;
    pthread_t thread;  /* the thread inside run() */
    pthread_t worker;  /* the handle run() joins, for every loop but the first */
    bool thread_known; /* set by run() before any connection exists */
    bool stopping;     /* shutdown began: no accepts, finish when flushed */

    ev_async wakeup;            /* inbox posts, stop requests */
    ev_prepare flusher;         /* writes every dirty connection before polling */
    ev_idle no_wait;            /* active while connections wait to be flushed:
                                   the next poll must not block */
    ev_timer shutdown_deadline; /* force-finishes what shutdown_linger left */

    unsigned char *read_buf; /* shared by every connection of the loop */
    size_t read_buf_size;
    struct iovec *iov; /* writev gather array, ASYNC_IOV_MAX entries */
    unsigned char *stage; /* small frames are copied here to be written */

    sa_conn *dirty; /* connections with output to write (or a close to do) */
    sa_conn *live;  /* every connection not yet finished */
    size_t live_count;
    struct out_ring *spare_rings[OUTQ_RING_CLASSES];
    size_t spare_ring_count[OUTQ_RING_CLASSES];

    atomic_bool stop_requested;
    atomic_bool rescan_requested; /* a refusing connection could not post */

    pthread_mutex_t inbox_lock; /* guards the six fields below */
    struct inbox_entry *inbox_head, *inbox_tail;
    struct async_adopt *adopt_head, *adopt_tail;
    struct inbox_entry *spare_entries;
    size_t spare_entry_count;
};

#define ASYNC_IOV_MAX IOV_MAX /* frames gathered per writev */
#define ASYNC_STAGE_SIZE (64 * 1024)
#define ASYNC_PEER_TEXT_MAX 64

/* ---- async_loop.c ---- */
int async_loop_init(struct async_loop *loop, sa_engine *engine, const sa_engine_core *core);
int async_loop_run(struct async_loop *loop);
void async_loop_request_stop(struct async_loop *loop);
/* From the accepting loop: `loop` opens the connection on `fd` in its own
 * thread (or closes it when out of memory or shutting down). */
void async_loop_adopt(struct async_loop *loop, int fd, const char *peer, bool tls);
void async_loop_free(struct async_loop *loop);
bool async_loop_is_current(const struct async_loop *loop);
/* Called by conn_finish: ends run() once shutdown has finished the last. */
void async_loop_conn_finished(struct async_loop *loop);

/* ---- async_conn.c ---- */
/* Takes over `fd` (closed on failure) and asks the core to open a session,
 * a TLS one when `tls`. */
void conn_open(struct async_loop *loop, int fd, const char *peer, bool tls);
/* The engine ops send and close, callable from any thread. */
int conn_send(sa_conn *c, sa_frame *f);
void conn_close(sa_conn *c);
size_t conn_queued(sa_conn *c);
void conn_notify_writable(sa_conn *c, size_t low_water);
/* Loop thread only. */
void conn_flush_dirty(struct async_loop *loop);
void conn_deliver(sa_conn *c, sa_frame *f); /* an inbox send: takes over f's reference */
void conn_mark_dirty(sa_conn *c); /* have the flusher look at it (writable marks) */
void conn_begin_close(sa_conn *c);
void conn_drop(sa_conn *c);
void conn_shutdown(sa_conn *c); /* bye shutdown + close, for stop() */
void conn_finish(sa_conn *c);
void conn_release_if_done(sa_conn *c);
void conn_close_refusing(struct async_loop *loop); /* the rescan fallback */

/* ---- async_outq.c ---- */
/* Loop thread only. The caller has counted f->len in c->queued and keeps
 * its reference to f. Returns -1 when out of memory (nothing queued). */
int outq_append(sa_conn *c, sa_frame *f);
/* Fills at most `max` iovecs with the queued bytes, in order. */
int outq_gather(const sa_conn *c, struct iovec *iov, int max, size_t *total);
/* `written` bytes went out: releases what they completed. */
void outq_consume(sa_conn *c, size_t written);
void outq_clear(sa_conn *c);
/* For a drop: keeps only the rest of a frame already partly written. */
void outq_keep_frame_in_progress(sa_conn *c);
void outq_free_spares(struct async_loop *loop);

/* ---- async_tls.c ---- */
enum async_tls_flush {
    ASYNC_TLS_IDLE,    /* nothing more can be written now */
    ASYNC_TLS_BLOCKED, /* the socket buffer is full: wait for EV_WRITE */
    ASYNC_TLS_DRAINED, /* closing, and everything is written, close_notify too */
    ASYNC_TLS_ABORT    /* failed, or closing before the handshake: finish now */
};
/* Encrypts queued frames and writes the connection's ciphertext, as much
 * as the socket takes (loop thread; the connection is OPEN or CLOSING). */
enum async_tls_flush async_tls_flush(sa_conn *c);

/* ---- async_inbox.c ---- */
/* From a thread other than the loop's. Takes over `frame`'s reference on
 * success; returns -1 when out of memory (the caller keeps the reference). */
int inbox_post(struct async_loop *loop, sa_conn *c, enum inbox_op op, sa_frame *frame);
/* Loop thread: carries out every posted request. */
void inbox_drain(struct async_loop *loop);
/* After run(): releases every entry without acting on it. */
void inbox_discard(struct async_loop *loop);
void inbox_free_spares(struct async_loop *loop);

/* ---- async_listen.c ---- */
/* Opens every config->listen entry; -1 after logging (nothing left open). */
int async_listen_start(sa_engine *e);
/* Stops accepting and closes the listening sockets; idempotent. */
void async_listen_stop(sa_engine *e);
/* "ADDR:PORT", or "[ADDR]:PORT" for IPv6, into out[ASYNC_PEER_TEXT_MAX]. */
void async_peer_text(const struct sockaddr *addr, socklen_t len, char *out, size_t size);

/* ---- engine_async.c ---- */
struct async_listener {
    ev_io io;
    int fd;   /* owned; -1 once closed */
    bool tls; /* a tls_listen entry */
};

struct sa_engine {
    sa_engine_core core; /* a copy: create()'s argument need not outlive it */
    struct async_listener *listeners; /* owned array */
    size_t listener_count;
    ev_timer accept_pause; /* resumes accepting after EMFILE/ENFILE */
    bool fd_exhaustion_logged;
    struct async_loop *loops; /* config->workers of them; loops[0] accepts */
    size_t loop_count;
    size_t next_loop; /* round-robin: the loop that gets the next connection */
};

#endif
