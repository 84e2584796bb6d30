/*
 * Locking rules. A connection's lock is never held while calling
 * core->input, core->timer, core->closed or core->bye_frame: those may send
 * to or close this or any other connection, which takes connection locks.
 * Under the lock the only core calls are frame_ref, frame_unref and log,
 * which never come back into the engine. Blocking calls (poll, recv,
 * sendmsg, join) are made with the lock released (write_through_locked's
 * send does not block); shutdown() and close() of
 * the socket are made with it held, so that no thread can shut down a
 * descriptor number the reader has already closed and the kernel reused.
 */
#include "sync_conn.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sync_time.h"

/* The core rejects JSON nested deeper than 64 levels, so nothing on a client
 * thread recurses deeply: 128 KiB is ample and keeps thousands of clients
 * cheap. AddressSanitizer surrounds every stack variable with red zones, so
 * an instrumented build gets more room. */
#if defined(__SANITIZE_ADDRESS__)
#define SYNC_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SYNC_UNDER_ASAN 1
#endif
#endif
#ifdef SYNC_UNDER_ASAN
#define CLIENT_STACK_SIZE (1024u * 1024u)
#else
#define CLIENT_STACK_SIZE (128u * 1024u)
#endif

#define RECV_BUFFER_SIZE (16u * 1024u)

/* What a connection's reader may write through to its own client in one
 * turn; see write_through_locked. */
#define LANE_WRITE_THROUGH_MAX (64u * 1024u)

/* Frames handed to the kernel in one sendmsg(). */
#define WRITE_BATCH 64

/* Plaintext a TLS connection's writer encrypts before writing it. */
#define TLS_ENCRYPT_BATCH (16u * 1024u)

/* How much unread input a closing connection discards before close(); see
 * discard_unread_input. */
#define CLOSE_DRAIN_MAX (256u * 1024u)

sa_conn *sync_conn_new(sa_engine *engine, const sa_engine_core *core, int fd)
{
    sa_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    int err = pthread_mutex_init(&c->lock, NULL);
    if (err != 0)
        goto fail_free;
    err = pthread_cond_init(&c->writer_wake, NULL);
    if (err != 0)
        goto fail_mutex;
    err = sync_cond_init_monotonic(&c->writer_gone);
    if (err != 0)
        goto fail_wake;
    /* Made up front, not on the first notify_writable: a reader blocked in
     * poll() could not learn of an eventfd another thread made later. The
     * cost is one descriptor per connection. */
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wake_fd < 0) {
        err = errno;
        goto fail_gone;
    }
    c->engine = engine;
    c->core = core;
    c->fd = fd;
    c->writable_mark = SIZE_MAX;
    frame_queue_init(&c->queue);
    return c;

fail_gone:
    pthread_cond_destroy(&c->writer_gone);
fail_wake:
    pthread_cond_destroy(&c->writer_wake);
fail_mutex:
    pthread_mutex_destroy(&c->lock);
fail_free:
    free(c);
    errno = err;
    return NULL;
}

void sync_conn_free(sa_conn *c)
{
    frame_queue_free(&c->queue, c->core->frame_unref);
    if (c->final_frame)
        c->core->frame_unref(c->final_frame);
    if (c->fd >= 0 && close(c->fd) != 0)
        c->core->log(SA_LOG_DEBUG, "closing a client socket: %s", strerror(errno));
    if (close(c->wake_fd) != 0)
        c->core->log(SA_LOG_DEBUG, "closing a reader's eventfd: %s", strerror(errno));
    pthread_cond_destroy(&c->writer_gone);
    pthread_cond_destroy(&c->writer_wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ---- state changes (lock held) -------------------------------------- */

/* ENOTCONN only means the peer is gone already, which the threads notice by
 * themselves. */
static void shutdown_locked(sa_conn *c, int how)
{
    if (c->fd >= 0 && shutdown(c->fd, how) != 0 && errno != ENOTCONN)
        c->core->log(SA_LOG_WARN, "shutdown of a client socket: %s", strerror(errno));
}

/* Refuses further frames and lets the writer flush what is queued. Returns
 * true when this call began the close. */
static bool begin_closing_locked(sa_conn *c)
{
    if (c->closing)
        return false;
    c->closing = true;
    pthread_cond_signal(&c->writer_wake);
    return true;
}

/* Shutting down the reading side makes the reader's poll() and recv()
 * return at once, so it takes the finish path. */
static void close_locked(sa_conn *c)
{
    if (begin_closing_locked(c))
        shutdown_locked(c, SHUT_RD);
}

/* ---- send / close (any thread) ---------------------------------------- */

/* The queue would pass sendq_max (PROTOCOL.md §3): discard the frames not
 * yet begun, keep the one in progress, say bye, close. */
static int drop_for_sendq(sa_conn *c)
{
    const sa_engine_core *core = c->core;
    sa_frame *bye = core->bye_frame("sendq_exceeded");
    pthread_mutex_lock(&c->lock);
    if (c->closing) { /* closed by another thread meanwhile */
        pthread_mutex_unlock(&c->lock);
        if (bye)
            core->frame_unref(bye);
        return -1;
    }
    /* While a write is in flight any frame of its batch may have begun: keep
     * the batch, and let the writer discard its unbegun frames once the write
     * returns and it knows how far it got. */
    size_t keep = c->in_flight;
    if (keep == 0 && c->head_written > 0)
        keep = 1;
    c->queued_bytes -= frame_queue_truncate(&c->queue, keep, core->frame_unref);
    c->trim_after_write = c->in_flight > 0;
    c->final_frame = bye;
    close_locked(c);
    pthread_mutex_unlock(&c->lock);
    core->log(SA_LOG_INFO, "dropping a client: more than %zu bytes queued to it",
              core->config->sendq_max);
    return -1;
}

static void *writer_main(void *arg);
static void *tls_writer_main(void *arg);
static int create_client_thread(pthread_t *thread, void *(*fn)(void *), sa_conn *c);

/* Lock held. A plain connection gets its writer thread only once a frame
 * has to wait (write_through_locked could not finish it) or the close
 * needs one: most connections never block, and an idle thread costs a
 * stack and a kernel task. Returns 0 when the writer runs. */
static int ensure_writer_locked(sa_conn *c)
{
    if (c->writer_started)
        return 0;
    int rc = create_client_thread(&c->writer, c->tls ? tls_writer_main : writer_main, c);
    if (rc != 0) {
        c->core->log(SA_LOG_ERROR, "cannot start a writer thread: %s", strerror(rc));
        return -1;
    }
    c->writer_started = true;
    return 0;
}

/* The connection whose reader runs on this thread (its lane), if any, and
 * what that lane may still write through in its current turn (one call
 * into the core). */
static __thread sa_conn *lane_conn;
static __thread size_t lane_write_budget;

/* Lock held. When nothing is queued or being written, the sending thread
 * hands the frame to the kernel itself, without waiting: waking the writer
 * costs a context switch per frame, which is what made this engine slow at
 * fanning out (docs/benchmarks.md). Whatever the socket does not take now
 * (full buffer, an error) is left to the writer, which blocks or reports
 * as before. A connection's own lane writes through at most
 * LANE_WRITE_THROUGH_MAX bytes a turn (its replies): a handler streaming
 * to its session (a download) paces itself on session_queued, which bytes
 * written through never reach, so without the cap the stream would hold
 * the lane for as long as the client kept up. Not on TLS: the writer
 * encrypts frames in order. Returns the bytes written. */
static size_t write_through_locked(sa_conn *c, const sa_frame *f)
{
    bool own_lane = c == lane_conn;
    if ((own_lane && f->len > lane_write_budget) || c->tls || c->fd < 0 || c->queue.count > 0 ||
        c->in_flight > 0)
        return 0;
    ssize_t sent = send(c->fd, f->bytes, f->len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent <= 0)
        return 0;
    if (own_lane)
        lane_write_budget -= (size_t)sent;
    return (size_t)sent;
}

int sync_conn_send(sa_conn *c, sa_frame *f)
{
    const sa_engine_core *core = c->core;
    size_t limit = core->config->sendq_max;
    pthread_mutex_lock(&c->lock);
    if (c->closing) {
        pthread_mutex_unlock(&c->lock);
        return -1;
    }
    /* The batch being written is in the kernel's hands already: counting it
     * would drop a client that reads as fast as we write. */
    size_t waiting = c->queued_bytes - c->in_flight_bytes;
    if (f->len > limit || waiting > limit - f->len) {
        pthread_mutex_unlock(&c->lock);
        return drop_for_sendq(c);
    }
    size_t written = write_through_locked(c, f);
    if (written == f->len) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    if (ensure_writer_locked(c) != 0 || frame_queue_push(&c->queue, f) != 0) {
        /* A client silently missing a frame is worse than losing it. */
        core->log(SA_LOG_ERROR, "cannot queue a frame: closing the client");
        close_locked(c);
        pthread_mutex_unlock(&c->lock);
        return -1;
    }
    core->frame_ref(f);
    c->queued_bytes += f->len - written;
    if (written > 0) /* the queue was empty: this frame is its head */
        c->head_written = written;
    pthread_cond_signal(&c->writer_wake);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void sync_conn_close(sa_conn *c)
{
    pthread_mutex_lock(&c->lock);
    close_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void sync_conn_force_shutdown(sa_conn *c)
{
    pthread_mutex_lock(&c->lock);
    begin_closing_locked(c);
    c->writer_abort = true;
    pthread_cond_signal(&c->writer_wake);
    shutdown_locked(c, SHUT_RDWR);
    pthread_mutex_unlock(&c->lock);
}

/* ---- writable notices ------------------------------------------------- */

/* Lock held. When the armed mark is reached, hands the notice to the
 * reader thread: core->writable must run in the connection's lane. */
static void check_writable_locked(sa_conn *c)
{
    if (c->writable_mark == SIZE_MAX || c->closing || c->queued_bytes > c->writable_mark)
        return;
    c->writable_mark = SIZE_MAX;
    c->writable_due = true;
    uint64_t one = 1;
    if (write(c->wake_fd, &one, sizeof one) != (ssize_t)sizeof one)
        c->core->log(SA_LOG_ERROR, "waking a reader thread: %s", strerror(errno));
}

size_t sync_conn_queued(sa_conn *c)
{
    pthread_mutex_lock(&c->lock);
    size_t queued = c->queued_bytes;
    pthread_mutex_unlock(&c->lock);
    return queued;
}

void sync_conn_notify_writable(sa_conn *c, size_t low_water)
{
    pthread_mutex_lock(&c->lock);
    if (!c->closing) {
        /* SIZE_MAX means "not armed": the highest real mark is one below. */
        c->writable_mark = low_water == SIZE_MAX ? SIZE_MAX - 1 : low_water;
        check_writable_locked(c);
    }
    pthread_mutex_unlock(&c->lock);
}

/* Reader thread: takes a due notice, if any. */
static bool take_writable(sa_conn *c)
{
    uint64_t count;
    if (read(c->wake_fd, &count, sizeof count) < 0 && errno != EAGAIN)
        c->core->log(SA_LOG_ERROR, "reading a reader's eventfd: %s", strerror(errno));
    pthread_mutex_lock(&c->lock);
    bool due = c->writable_due && !c->closing;
    c->writable_due = false;
    pthread_mutex_unlock(&c->lock);
    return due;
}

/* ---- writer thread ----------------------------------------------------- */

static size_t fill_batch_locked(const sa_conn *c, struct iovec *iov)
{
    size_t count = c->queue.count < WRITE_BATCH ? c->queue.count : WRITE_BATCH;
    for (size_t i = 0; i < count; i++) {
        const sa_frame *f = frame_queue_peek(&c->queue, i);
        size_t skip = i == 0 ? c->head_written : 0;
        iov[i].iov_base = (void *)(f->bytes + skip);
        iov[i].iov_len = f->len - skip;
    }
    return count;
}

static void consume_written_locked(sa_conn *c, size_t written)
{
    c->queued_bytes -= written;
    while (c->queue.count > 0) {
        const sa_frame *head = frame_queue_peek(&c->queue, 0);
        size_t left = head->len - c->head_written;
        if (written < left) {
            c->head_written += written;
            return;
        }
        written -= left;
        c->head_written = 0;
        c->core->frame_unref(frame_queue_pop(&c->queue));
    }
}

/* From now on a peer that stops reading can hold one write for at most
 * close_linger_ms; the reader's own linger wait is the firm bound. */
static void limit_write_time(sa_conn *c, int fd)
{
    unsigned ms = c->core->config->close_linger_ms;
    struct timeval limit = {.tv_sec = (time_t)(ms / 1000u),
                            .tv_usec = (suseconds_t)(ms % 1000u) * 1000};
    if (ms == 0)
        limit.tv_usec = 1000; /* zero would mean no limit at all */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) != 0)
        c->core->log(SA_LOG_WARN, "SO_SNDTIMEO on a client socket: %s", strerror(errno));
}

/* Lock held: the writer's last act. */
static void writer_exit_locked(sa_conn *c, int write_error)
{
    if (write_error) {
        /* The connection is dead: refuse frames, and wake the reader so it
         * takes the finish path. */
        begin_closing_locked(c);
        shutdown_locked(c, SHUT_RDWR);
    }
    c->writer_exited = true;
    pthread_cond_signal(&c->writer_gone);
}

static void *writer_main(void *arg)
{
    sa_conn *c = arg;
    struct iovec iov[WRITE_BATCH];
    bool write_time_limited = false;
    int write_error = 0;

    pthread_mutex_lock(&c->lock);
    /* Only the reader changes fd, and only after joining this thread. */
    int fd = c->fd;
    for (;;) {
        while (!c->writer_abort && !c->closing && c->queue.count == 0)
            pthread_cond_wait(&c->writer_wake, &c->lock);
        if (c->writer_abort)
            break;
        if (c->queue.count == 0 && c->final_frame) {
            if (frame_queue_push(&c->queue, c->final_frame) == 0)
                c->queued_bytes += c->final_frame->len;
            else
                c->core->frame_unref(c->final_frame);
            c->final_frame = NULL;
            continue;
        }
        if (c->queue.count == 0) { /* closing, and everything is written */
            shutdown_locked(c, SHUT_WR);
            break;
        }
        if (c->closing && !write_time_limited) {
            limit_write_time(c, fd);
            write_time_limited = true;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = fill_batch_locked(c, iov)};
        c->in_flight = msg.msg_iovlen;
        c->in_flight_bytes = 0;
        for (size_t i = 0; i < msg.msg_iovlen; i++)
            c->in_flight_bytes += iov[i].iov_len;
        pthread_mutex_unlock(&c->lock);
        ssize_t sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
        int send_errno = errno;
        pthread_mutex_lock(&c->lock);
        c->in_flight = 0;
        c->in_flight_bytes = 0;
        if (c->writer_abort)
            break;
        if (sent < 0) {
            if (send_errno == EINTR)
                continue;
            write_error = send_errno;
            break;
        }
        consume_written_locked(c, (size_t)sent);
        check_writable_locked(c);
        if (c->trim_after_write) {
            c->trim_after_write = false;
            c->queued_bytes -= frame_queue_truncate(&c->queue, c->head_written > 0 ? 1 : 0,
                                                    c->core->frame_unref);
        }
    }
    writer_exit_locked(c, write_error);
    pthread_mutex_unlock(&c->lock);
    if (write_error)
        c->core->log(SA_LOG_DEBUG, "writing to a client: %s", strerror(write_error));
    return NULL;
}

/* TLS: the next frames' bytes go into the ciphertext stream, at most
 * TLS_ENCRYPT_BATCH at a time so that a large frame is never held whole in
 * encrypted form. Encrypted bytes count as written: a drop at sendq_max
 * keeps a frame begun here, like one begun on the wire. */
static void encrypt_queued_locked(sa_conn *c)
{
    size_t done = 0;
    while (c->queue.count > 0 && done < TLS_ENCRYPT_BATCH) {
        const sa_frame *head = frame_queue_peek(&c->queue, 0);
        size_t piece = head->len - c->head_written;
        if (piece > TLS_ENCRYPT_BATCH - done)
            piece = TLS_ENCRYPT_BATCH - done;
        size_t taken = c->core->tls_encrypt(c->tls, head->bytes + c->head_written, piece);
        if (taken == 0) /* the connection failed: the caller sees the state */
            break;
        consume_written_locked(c, taken);
        done += taken;
    }
    check_writable_locked(c);
}

/* The writer of a TLS connection. Only this thread drains the ciphertext
 * stream, which the reader feeds with handshake records, so every record
 * reaches the socket in the order it was made. */
static void *tls_writer_main(void *arg)
{
    sa_conn *c = arg;
    const sa_engine_core *core = c->core;
    bool write_time_limited = false;
    bool close_notify_sent = false;
    int write_error = 0;

    pthread_mutex_lock(&c->lock);
    /* Only the reader changes fd, and only after joining this thread. */
    int fd = c->fd;
    while (!c->writer_abort) {
        int state = core->tls_state(c->tls);
        /* Nothing queued can be sent without a handshake, and a failed
         * connection says nothing, not even an alert. */
        if (state == SA_TLS_STATE_FAILED || (c->closing && state == SA_TLS_STATE_HANDSHAKE))
            break;
        const unsigned char *out = NULL;
        size_t out_len = core->tls_output(c->tls, &out);
        if (out_len == 0 && state == SA_TLS_STATE_ESTABLISHED) {
            if (c->queue.count == 0 && c->final_frame) {
                if (frame_queue_push(&c->queue, c->final_frame) == 0)
                    c->queued_bytes += c->final_frame->len;
                else
                    core->frame_unref(c->final_frame);
                c->final_frame = NULL;
                continue;
            }
            if (c->queue.count > 0) {
                encrypt_queued_locked(c);
                continue;
            }
            if (c->closing && !close_notify_sent) {
                core->tls_close_notify(c->tls);
                close_notify_sent = true;
                continue;
            }
            if (c->closing) { /* everything is written */
                shutdown_locked(c, SHUT_WR);
                break;
            }
        }
        if (out_len == 0) {
            pthread_cond_wait(&c->writer_wake, &c->lock);
            continue;
        }
        if (c->closing && !write_time_limited) {
            limit_write_time(c, fd);
            write_time_limited = true;
        }
        pthread_mutex_unlock(&c->lock);
        ssize_t sent = send(fd, out, out_len, MSG_NOSIGNAL);
        int send_errno = errno;
        pthread_mutex_lock(&c->lock);
        if (sent < 0) {
            if (send_errno == EINTR)
                continue;
            write_error = send_errno;
            break;
        }
        core->tls_output_done(c->tls, (size_t)sent);
    }
    writer_exit_locked(c, write_error);
    pthread_mutex_unlock(&c->lock);
    if (write_error)
        core->log(SA_LOG_DEBUG, "writing to a client: %s", strerror(write_error));
    return NULL;
}

/* ---- reader thread ----------------------------------------------------- */

static int create_client_thread(pthread_t *thread, void *(*fn)(void *), sa_conn *c)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_attr_setstacksize(&attr, CLIENT_STACK_SIZE);
    if (rc == 0)
        rc = pthread_create(thread, &attr, fn, c);
    pthread_attr_destroy(&attr);
    return rc;
}

static bool is_closing(sa_conn *c)
{
    pthread_mutex_lock(&c->lock);
    bool closing = c->closing;
    pthread_mutex_unlock(&c->lock);
    return closing;
}

static int64_t deadline_after(int64_t now, int64_t delay)
{
    if (delay < 0)
        delay = 0;
    return delay > INT64_MAX - now ? INT64_MAX : now + delay;
}

/* Feeds the core until the peer closes, the socket fails, or the connection
 * is closed (which shuts the reading side down and wakes poll). */
static void serve(sa_conn *c, unsigned char *buf)
{
    const sa_engine_core *core = c->core;
    lane_write_budget = LANE_WRITE_THROUGH_MAX;
    int64_t now = core->monotonic_ms();
    int64_t deadline = deadline_after(now, core->timer(c->session, now));
    for (;;) {
        lane_write_budget = LANE_WRITE_THROUGH_MAX;
        now = core->monotonic_ms();
        if (now >= deadline) {
            deadline = deadline_after(now, core->timer(c->session, now));
            continue;
        }
        int64_t wait_ms = deadline - now;
        struct pollfd watch[2] = {{.fd = c->fd, .events = POLLIN},
                                  {.fd = c->wake_fd, .events = POLLIN}};
        int ready = poll(watch, 2, wait_ms > INT_MAX ? INT_MAX : (int)wait_ms);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            core->log(SA_LOG_ERROR, "poll on a client socket: %s", strerror(errno));
            return;
        }
        if (watch[1].revents && take_writable(c))
            core->writable(c->session);
        if (!watch[0].revents)
            continue;
        /* Input still queued in the kernel after a close is not delivered. */
        if (is_closing(c))
            return;
        ssize_t got = recv(c->fd, buf, RECV_BUFFER_SIZE, 0);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            core->log(SA_LOG_DEBUG, "reading from a client: %s", strerror(errno));
            return;
        }
        if (got == 0)
            return;
        if (core->input(c->session, buf, (size_t)got) != 0)
            return;
        if (c->tls) {
            /* The input may have made handshake records, or completed the
             * handshake that queued frames wait for. */
            pthread_mutex_lock(&c->lock);
            pthread_cond_signal(&c->writer_wake);
            pthread_mutex_unlock(&c->lock);
        }
    }
}

/* close() on a socket with unread input resets the connection, which
 * throws away output the peer has not received yet: the bye. Discarding
 * what has arrived lets close() end with a FIN instead. Bounded: a peer
 * that never stops sending gets the reset. */
static void discard_unread_input(sa_conn *c, unsigned char *buf)
{
    size_t discarded = 0;
    while (discarded < CLOSE_DRAIN_MAX) {
        ssize_t got = recv(c->fd, buf, RECV_BUFFER_SIZE, MSG_DONTWAIT);
        if (got <= 0)
            return;
        discarded += (size_t)got;
    }
}

/* Lets the writer flush for at most close_linger_ms, then makes it quit.
 * Without a writer, one is started only when something is left to write
 * (a bye after a drop); otherwise the reader ends the output itself. */
static void stop_writer(sa_conn *c)
{
    struct timespec deadline = sync_deadline_in_ms(c->core->config->close_linger_ms);
    pthread_mutex_lock(&c->lock);
    begin_closing_locked(c);
    if (!c->writer_started && (c->queue.count > 0 || c->final_frame))
        (void)ensure_writer_locked(c); /* on failure the bye is lost, the close goes on */
    if (!c->writer_started) {
        shutdown_locked(c, SHUT_WR);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    while (!c->writer_exited) {
        if (pthread_cond_timedwait(&c->writer_gone, &c->lock, &deadline) != 0)
            break;
    }
    if (!c->writer_exited) {
        /* Wakes the writer out of a blocked sendmsg() too. */
        c->writer_abort = true;
        pthread_cond_signal(&c->writer_wake);
        shutdown_locked(c, SHUT_RDWR);
    }
    pthread_mutex_unlock(&c->lock);
    int rc = pthread_join(c->writer, NULL);
    if (rc != 0)
        c->core->log(SA_LOG_ERROR, "joining a writer thread: %s", strerror(rc));
}

static void *reader_main(void *arg)
{
    sa_conn *c = arg;
    const sa_engine_core *core = c->core;
    lane_conn = c;
    unsigned char *buf = malloc(RECV_BUFFER_SIZE); /* this thread's; freed below */
    bool ready = buf != NULL;
    if (!buf)
        core->log(SA_LOG_ERROR, "out of memory for a client's read buffer");
    if (ready && c->tls) {
        /* The handshake's records are the TLS writer's to send. */
        pthread_mutex_lock(&c->lock);
        ready = ensure_writer_locked(c) == 0;
        pthread_mutex_unlock(&c->lock);
    }

    if (ready)
        serve(c, buf);
    /* A sender may have started a writer even when this thread could not
     * serve: it is joined here either way. */
    stop_writer(c);
    if (ready)
        discard_unread_input(c, buf);
    free(buf);

    core->closed(c->session);
    pthread_mutex_lock(&c->lock);
    if (close(c->fd) != 0)
        core->log(SA_LOG_DEBUG, "closing a client socket: %s", strerror(errno));
    c->fd = -1;
    pthread_mutex_unlock(&c->lock);
    /* The last touch: from here on the engine may free c. */
    sync_engine_conn_finished(c->engine, c);
    return NULL;
}

int sync_conn_start(sa_conn *c)
{
    return create_client_thread(&c->reader, reader_main, c);
}
