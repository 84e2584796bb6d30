/*
 * One client connection of the sync engine: a blocking socket served by two
 * threads of its own.
 *
 * The READER thread is the connection's serial lane: it alone calls
 * core->timer, core->input, core->writable and core->closed for the
 * session (a writable mark reached on another thread wakes it through
 * wake_fd, which it polls beside the socket). It also owns
 * the finish path: it lets the writer flush (at most close_linger_ms), joins
 * it, calls core->closed, closes the socket and hands the connection back to
 * the engine, whose reaper joins the reader and frees the connection.
 *
 * A frame sent while nothing waits before it is written by the sending
 * thread itself, without blocking (most frames, when clients keep up).
 * What the socket does not take goes to the queue, which the WRITER thread
 * drains with blocking writes, so a slow client only ever blocks its own
 * writer. The writer is started when first needed: the first frame that
 * waits, a bye after a drop, or at once on a TLS connection. On a TLS connection it also encrypts the
 * frames as it writes them, and writes the handshake records the reader's
 * input produced (the reader wakes it after each input). send() and close() never block and may
 * be called from any thread.
 */
#ifndef SA_SYNC_CONN_H
#define SA_SYNC_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <syncasync/engine.h>

#include "frame_queue.h"

struct sa_conn {
    sa_engine *engine;          /* borrowed: outlives every connection */
    const sa_engine_core *core; /* borrowed */
    sa_session *session;        /* the core's; the last call on it is core->closed */
    sa_tls *tls;                /* the session's, set before the reader starts; NULL
                                   on a plain connection */
    pthread_t reader;           /* joined by the engine's reaper */
    pthread_t writer;           /* valid once writer_started; joined by the reader */
    int wake_fd;                /* owned eventfd, set at creation: wakes the reader
                                   when a writable mark is reached */

    pthread_mutex_t lock;       /* guards every field below */
    pthread_cond_t writer_wake; /* the queue grew, closing began, or abort */
    pthread_cond_t writer_gone; /* writer_exited became true */
    int fd;                     /* owned; closed by the reader, then -1 */
    frame_queue queue;          /* frames to write, oldest first, one reference each */
    size_t queued_bytes;        /* bytes of `queue` not yet written */
    size_t head_written;        /* bytes of the oldest frame already written */
    size_t in_flight;           /* frames the writer is writing with the lock released */
    size_t in_flight_bytes;     /* their bytes (part of queued_bytes) */
    sa_frame *final_frame;      /* owned: bye after a drop, written once the queue is empty */
    bool closing;               /* no more frames accepted; flush, then close */
    bool trim_after_write;      /* a drop happened mid-write: discard the unbegun frames */
    bool writer_abort;          /* the linger is over: the writer must quit now */
    bool writer_started;        /* `writer` runs or ran: joined by the reader */
    bool writer_exited;
    size_t writable_mark;       /* notify_writable's low water; SIZE_MAX = none */
    bool writable_due;          /* the mark was reached: the reader calls core->writable */

    sa_conn *prev, *next;       /* the engine's lists; guarded by the engine's lock */
};

/* A connection for an accepted socket, which it now owns. NULL with errno
 * set (out of memory or descriptors; the caller still owns fd then). Freed
 * by sync_conn_free. */
sa_conn *sync_conn_new(sa_engine *engine, const sa_engine_core *core, int fd);

/* Starts the reader thread, joinable. Returns 0,
 * or an error number when the thread could not be created. */
int sync_conn_start(sa_conn *c);

/* Frees the connection: its queue, its socket if still open. Call only once
 * no thread of its own runs any more (joined, or never started). */
void sync_conn_free(sa_conn *c);

/* The engine operations of the same names (syncasync/engine.h). */
int sync_conn_send(sa_conn *c, sa_frame *f);
void sync_conn_close(sa_conn *c);
size_t sync_conn_queued(sa_conn *c);
/* Arms one core->writable call, made by the reader thread (the lane). */
void sync_conn_notify_writable(sa_conn *c, size_t low_water);

/* Cuts the socket off in both directions so that both threads notice at
 * once, whatever they are blocked in (the end of the shutdown linger). */
void sync_conn_force_shutdown(sa_conn *c);

/* Provided by the engine: the reader calls it as its last act, after
 * core->closed, so the engine can join the reader and free the connection. */
void sync_engine_conn_finished(sa_engine *engine, sa_conn *c);

#endif
