/*
 * One client connection on the loop: reading into the core, the queue of
 * outgoing frames, and the close sequence
 *     OPEN -> CLOSING (flush) -> LINGER (write side shut, session ended)
 *          -> FINISHED (socket closed).
 *
 * Re-entrancy: core->input and core->timer may call send and close on any
 * connection, this one included, and core->closed may send to others. So
 * send and close only queue, mark and arm; they never write, never call
 * back into the core and never finish a connection. Writing happens in the
 * loop's prepare watcher or on EV_WRITE, and a connection is finished only
 * from a watcher callback of its own (or by the loop's shutdown). While a
 * callback uses a connection it holds a pin, so a finish deep inside it
 * cannot free the memory under it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "async_internal.h"

/* Reads per readiness event: a client that streams cannot hold the loop. */
#define READS_PER_EVENT 4
/* Reads that drain a socket about to be closed during shutdown. */
#define SHUTDOWN_DISCARD_READS 16
/* Bounds of a core->timer delay; the lower one stops a 0 from spinning. */
#define TIMER_MIN_MS 1
#define TIMER_MAX_MS (24 * 3600 * 1000)

/* ---- loop bookkeeping ---------------------------------------------------- */

static void mark_dirty(sa_conn *c)
{
    if (c->dirty || c->state == CONN_FINISHED)
        return;
    c->dirty = true;
    c->dirty_next = c->loop->dirty;
    c->loop->dirty = c;
}

static void live_link(sa_conn *c)
{
    struct async_loop *loop = c->loop;
    c->live_prev = NULL;
    c->live_next = loop->live;
    if (loop->live)
        loop->live->live_prev = c;
    loop->live = c;
    loop->live_count++;
}

static void live_unlink(sa_conn *c)
{
    struct async_loop *loop = c->loop;
    if (c->live_prev)
        c->live_prev->live_next = c->live_next;
    else
        loop->live = c->live_next;
    if (c->live_next)
        c->live_next->live_prev = c->live_prev;
    c->live_prev = c->live_next = NULL;
    loop->live_count--;
}

/* Starts `io` with exactly the events the state calls for. */
static void update_io(sa_conn *c)
{
    unsigned char want = 0;
    if (c->state == CONN_OPEN || c->state == CONN_LINGER)
        want |= EV_READ;
    if (c->write_blocked && c->state != CONN_FINISHED)
        want |= EV_WRITE;
    if (want == c->io_events)
        return;
    struct ev_loop *ev = c->loop->ev;
    ev_io_stop(ev, &c->io);
    if (want) {
        ev_io_set(&c->io, c->fd, want);
        ev_io_start(ev, &c->io);
    }
    c->io_events = want;
}

static void arm_timer(sa_conn *c, int64_t ms)
{
    if (ms < TIMER_MIN_MS)
        ms = TIMER_MIN_MS;
    if (ms > TIMER_MAX_MS)
        ms = TIMER_MAX_MS;
    ev_timer_stop(c->loop->ev, &c->timer);
    ev_timer_set(&c->timer, (double)ms / 1000.0, 0.);
    ev_timer_start(c->loop->ev, &c->timer);
}

void conn_release_if_done(sa_conn *c)
{
    if (c->state == CONN_FINISHED && !c->dirty && c->pins == 0 &&
        atomic_load(&c->inbox_refs) == 0)
        free(c);
}

/* Other threads' frames for `c` posted before this call must go out before
 * what the loop thread queues now: act on them first. */
static void catch_up_inbox(sa_conn *c)
{
    if (atomic_load(&c->inbox_refs) > 0)
        inbox_drain(c->loop);
}

/* ---- finishing ----------------------------------------------------------- */

/* Tells the core the session is over: its last call, made exactly once. */
static void end_session(sa_conn *c)
{
    c->pins++;
    c->loop->core->closed(c->session);
    c->session = NULL;
    c->pins--;
}

void conn_finish(sa_conn *c)
{
    if (c->state == CONN_FINISHED)
        return;
    struct async_loop *loop = c->loop;
    bool session_ended = c->state == CONN_LINGER;
    c->state = CONN_FINISHED;
    atomic_store(&c->refusing, true);
    ev_io_stop(loop->ev, &c->io);
    c->io_events = 0;
    ev_timer_stop(loop->ev, &c->timer);
    if (close(c->fd) != 0)
        loop->core->log(SA_LOG_DEBUG, "close: %s", strerror(errno));
    c->fd = -1;
    outq_clear(c);
    live_unlink(c);
    if (!session_ended)
        end_session(c);
    conn_release_if_done(c);
    async_loop_conn_finished(loop);
}

/* Reads and throws away what the peer still sends after our bye. Returns
 * false when the connection should end now (EOF, error, or during
 * shutdown once the buffer is empty). */
static bool discard_input(sa_conn *c, int max_reads)
{
    struct async_loop *loop = c->loop;
    for (int i = 0; i < max_reads; i++) {
        ssize_t n = read(c->fd, loop->read_buf, loop->read_buf_size);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return !loop->stopping;
        return false;
    }
    return !loop->stopping;
}

/* Everything queued is written: shut the write side (the peer reads the
 * bye, then EOF) and end the session at once. The socket itself stays
 * open until the peer's own EOF (at most close_linger_ms), so that input
 * still in flight does not turn our close into a reset that could destroy
 * the bye before the peer reads it. */
static void shut_write(sa_conn *c)
{
    if (shutdown(c->fd, SHUT_WR) != 0) {
        conn_finish(c); /* the peer is already gone */
        return;
    }
    c->state = CONN_LINGER;
    end_session(c);
    if (!discard_input(c, c->loop->stopping ? SHUTDOWN_DISCARD_READS : READS_PER_EVENT)) {
        conn_finish(c);
        return;
    }
    update_io(c);
}

/* ---- writing ------------------------------------------------------------- */

/* flush() of a TLS connection: async_tls.c writes, this acts on the
 * outcome. */
static void flush_tls(sa_conn *c)
{
    if ((c->state == CONN_OPEN || c->state == CONN_CLOSING) && !c->write_blocked) {
        if (c->state == CONN_CLOSING)
            catch_up_inbox(c);
        switch (async_tls_flush(c)) {
        case ASYNC_TLS_IDLE:
            break;
        case ASYNC_TLS_BLOCKED:
            c->write_blocked = true;
            break;
        case ASYNC_TLS_DRAINED:
            shut_write(c);
            return;
        case ASYNC_TLS_ABORT:
            conn_finish(c);
            return;
        }
    }
    update_io(c);
}

/* Writes as much as the socket takes. May finish the connection. */
static void flush(sa_conn *c)
{
    if (c->tls) {
        flush_tls(c);
        return;
    }
    struct async_loop *loop = c->loop;
    while (c->state == CONN_OPEN || c->state == CONN_CLOSING) {
        if (c->write_blocked)
            break;
        if (c->out_count == 0) {
            if (c->state != CONN_CLOSING)
                break;
            catch_up_inbox(c);
            if (c->out_count > 0)
                continue;
            shut_write(c);
            return;
        }
        size_t total;
        int count = outq_gather(c, loop->iov, ASYNC_IOV_MAX, &total);
        struct msghdr msg = {.msg_iov = loop->iov, .msg_iovlen = (size_t)count};
        ssize_t sent = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->write_blocked = true;
                break;
            }
            loop->core->log(SA_LOG_DEBUG, "write: %s", strerror(errno));
            conn_finish(c);
            return;
        }
        outq_consume(c, (size_t)sent);
        /* A short write means the socket buffer is full: the next attempt
         * would only return EAGAIN. */
        if ((size_t)sent < total)
            c->write_blocked = true;
    }
    update_io(c);
}

/* Calls core->writable once the queue is down to an armed mark. From a
 * watcher callback only (the connection's lane), never inside send, close
 * or notify_writable. */
static void check_writable(sa_conn *c)
{
    size_t mark = atomic_load(&c->writable_mark);
    if (mark == SIZE_MAX || c->state != CONN_OPEN || atomic_load(&c->queued) > mark)
        return;
    /* Fails when another thread re-armed meanwhile: its notice, already
     * posted, has the new mark checked. */
    if (atomic_compare_exchange_strong(&c->writable_mark, &mark, SIZE_MAX))
        c->loop->core->writable(c->session);
}

void conn_flush_dirty(struct async_loop *loop)
{
    /* Only the connections dirty now: one that a callback below marks
     * again (a handler re-arming from on_writable with nothing to send)
     * waits for the next loop turn, so it cannot hold the loop. */
    sa_conn *batch = loop->dirty;
    loop->dirty = NULL;
    sa_conn *c;
    while ((c = batch)) {
        batch = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = false;
        c->pins++;
        flush(c);
        check_writable(c);
        c->pins--;
        conn_release_if_done(c);
    }
}

void conn_mark_dirty(sa_conn *c)
{
    if (c->state == CONN_OPEN)
        mark_dirty(c);
}

size_t conn_queued(sa_conn *c) { return atomic_load(&c->queued); }

void conn_notify_writable(sa_conn *c, size_t low_water)
{
    if (atomic_load(&c->refusing))
        return;
    /* SIZE_MAX means "not armed": the highest real mark is one below. */
    atomic_store(&c->writable_mark, low_water == SIZE_MAX ? SIZE_MAX - 1 : low_water);
    if (async_loop_is_current(c->loop))
        mark_dirty(c);
    else if (inbox_post(c->loop, c, INBOX_NOTIFY, NULL) != 0)
        c->loop->core->log(SA_LOG_ERROR, "out of memory: a writable notice is delayed until "
                                         "the connection's next write");
}

/* ---- closing ------------------------------------------------------------- */

void conn_begin_close(sa_conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    c->state = CONN_CLOSING;
    atomic_store(&c->refusing, true);
    update_io(c);
    arm_timer(c, c->loop->core->config->close_linger_ms);
    mark_dirty(c);
}

static void log_drop(sa_conn *c)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    char peer[ASYNC_PEER_TEXT_MAX] = "?";
    if (getpeername(c->fd, (struct sockaddr *)&addr, &len) == 0)
        async_peer_text((struct sockaddr *)&addr, len, peer, sizeof peer);
    c->loop->core->log(SA_LOG_WARN, "%s: output passed sendq_max (%zu bytes), dropping", peer,
                       c->loop->core->config->sendq_max);
}

/* Queues `f` (the caller keeps its reference); the caller has counted its
 * bytes in c->queued. Returns -1 when out of memory. */
static int append(sa_conn *c, sa_frame *f)
{
    if (outq_append(c, f) != 0)
        return -1;
    mark_dirty(c);
    return 0;
}

/* Queues a bye the engine says on its own (it is not held to sendq_max). */
static void append_bye(sa_conn *c, const char *reason)
{
    const sa_engine_core *core = c->loop->core;
    sa_frame *bye = core->bye_frame(reason);
    if (!bye)
        return; /* out of memory: the connection still closes, without a bye */
    atomic_fetch_add(&c->queued, bye->len);
    if (append(c, bye) != 0)
        atomic_fetch_sub(&c->queued, bye->len);
    core->frame_unref(bye);
}

void conn_drop(sa_conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    c->dropped = true;
    atomic_store(&c->refusing, true);
    log_drop(c);
    /* A frame partly written must be completed, or the peer's framing
     * breaks; the ones not begun go. */
    outq_keep_frame_in_progress(c);
    append_bye(c, "sendq_exceeded");
    conn_begin_close(c);
}

void conn_shutdown(sa_conn *c)
{
    c->pins++;
    if (c->state == CONN_OPEN) {
        /* Already refusing: the core's own bye and close are on their way
         * from another thread; one bye is enough. */
        if (!atomic_exchange(&c->refusing, true))
            append_bye(c, "shutdown");
        conn_begin_close(c);
    } else if (c->state == CONN_LINGER) {
        if (!discard_input(c, SHUTDOWN_DISCARD_READS))
            conn_finish(c);
    }
    c->pins--;
    conn_release_if_done(c);
}

void conn_close_refusing(struct async_loop *loop)
{
    for (sa_conn *c = loop->live; c; c = c->live_next)
        if (c->state == CONN_OPEN && atomic_load(&c->refusing))
            conn_begin_close(c);
}

/* ---- the engine ops send and close ---------------------------------------- */

/* Counts `f` against sendq_max. False when it does not fit. */
static bool reserve(sa_conn *c, const sa_frame *f)
{
    size_t before = atomic_fetch_add(&c->queued, f->len);
    if (before + f->len <= c->loop->core->config->sendq_max)
        return true;
    atomic_fetch_sub(&c->queued, f->len);
    return false;
}

/* From another thread, when an inbox entry cannot be allocated: the loop
 * closes every refusing open connection at its next wakeup. */
static void request_rescan(struct async_loop *loop)
{
    atomic_store(&loop->rescan_requested, true);
    ev_async_send(loop->ev, &loop->wakeup);
}

static int send_from_loop(sa_conn *c, sa_frame *f)
{
    catch_up_inbox(c);
    if (atomic_load(&c->refusing))
        return -1;
    if (!reserve(c, f)) {
        conn_drop(c);
        return -1;
    }
    if (append(c, f) != 0) {
        atomic_fetch_sub(&c->queued, f->len);
        c->loop->core->log(SA_LOG_ERROR, "out of memory queueing a frame: closing the connection");
        conn_begin_close(c);
        return -1;
    }
    return 0;
}

static int send_from_elsewhere(sa_conn *c, sa_frame *f)
{
    struct async_loop *loop = c->loop;
    if (!reserve(c, f)) {
        if (!atomic_exchange(&c->refusing, true) && inbox_post(loop, c, INBOX_DROP, NULL) != 0)
            request_rescan(loop);
        return -1;
    }
    loop->core->frame_ref(f);
    if (inbox_post(loop, c, INBOX_SEND, f) != 0) {
        loop->core->frame_unref(f);
        atomic_fetch_sub(&c->queued, f->len);
        atomic_store(&c->refusing, true);
        request_rescan(loop);
        return -1;
    }
    return 0;
}

int conn_send(sa_conn *c, sa_frame *f)
{
    if (atomic_load(&c->refusing))
        return -1;
    if (async_loop_is_current(c->loop))
        return send_from_loop(c, f);
    return send_from_elsewhere(c, f);
}

void conn_close(sa_conn *c)
{
    if (atomic_exchange(&c->refusing, true))
        return; /* already closing, dropped, or a close is on its way */
    if (async_loop_is_current(c->loop)) {
        catch_up_inbox(c);
        conn_begin_close(c);
    } else if (inbox_post(c->loop, c, INBOX_CLOSE, NULL) != 0) {
        request_rescan(c->loop);
    }
}

void conn_deliver(sa_conn *c, sa_frame *f)
{
    /* Frames posted before a drop, or after the write side was shut, are
     * not sent; a close (not a drop) still lets earlier sends through. */
    bool accepted = (c->state == CONN_OPEN || c->state == CONN_CLOSING) && !c->dropped;
    bool queued = accepted && append(c, f) == 0;
    if (accepted && !queued) {
        c->loop->core->log(SA_LOG_ERROR, "out of memory queueing a frame: closing the connection");
        conn_begin_close(c);
    }
    if (!queued)
        atomic_fetch_sub(&c->queued, f->len);
    c->loop->core->frame_unref(f);
}

/* ---- reading and timers ---------------------------------------------------- */

static void read_input(sa_conn *c)
{
    struct async_loop *loop = c->loop;
    for (int i = 0; i < READS_PER_EVENT && c->state == CONN_OPEN; i++) {
        ssize_t n = read(c->fd, loop->read_buf, loop->read_buf_size);
        if (n > 0) {
            if (loop->core->input(c->session, loop->read_buf, (size_t)n) != 0) {
                /* The core has closed it (this only makes sure). */
                conn_begin_close(c);
                return;
            }
            /* Input may have made handshake records, or finished the
             * handshake that queued frames wait for. */
            if (c->tls)
                mark_dirty(c);
            if ((size_t)n < loop->read_buf_size)
                return; /* drained: a further read would say EAGAIN */
            continue;
        }
        if (n == 0) {
            /* The peer is done sending, but may still read: what is
             * queued for it goes out first (a half-closed client gets its
             * replies), bounded by close_linger_ms. */
            conn_begin_close(c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        loop->core->log(SA_LOG_DEBUG, "read: %s", strerror(errno));
        conn_finish(c);
        return;
    }
}

static void conn_io_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)ev;
    sa_conn *c = w->data;
    c->pins++;
    if (revents & EV_WRITE) {
        c->write_blocked = false;
        flush(c);
        check_writable(c);
    }
    if (revents & EV_READ) {
        if (c->state == CONN_OPEN)
            read_input(c);
        else if (c->state == CONN_LINGER && !discard_input(c, READS_PER_EVENT))
            conn_finish(c);
    }
    c->pins--;
    conn_release_if_done(c);
}

static void conn_timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev;
    (void)revents;
    sa_conn *c = w->data;
    if (c->state != CONN_OPEN) {
        /* close_linger_ms ran out before the flush or the peer's EOF. */
        conn_finish(c);
        return;
    }
    const sa_engine_core *core = c->loop->core;
    c->pins++;
    int64_t delay = core->timer(c->session, core->monotonic_ms());
    if (c->state == CONN_OPEN)
        arm_timer(c, delay);
    c->pins--;
    conn_release_if_done(c);
}

void conn_open(struct async_loop *loop, int fd, const char *peer, bool tls)
{
    const sa_engine_core *core = loop->core;
    sa_conn *c = calloc(1, sizeof *c);
    if (!c) {
        core->log(SA_LOG_ERROR, "%s: out of memory for a connection", peer);
        if (close(fd) != 0)
            core->log(SA_LOG_DEBUG, "close: %s", strerror(errno));
        return;
    }
    c->loop = loop;
    c->fd = fd;
    atomic_init(&c->queued, 0);
    atomic_init(&c->inbox_refs, 0);
    atomic_init(&c->refusing, false);
    atomic_init(&c->writable_mark, SIZE_MAX);
    ev_io_init(&c->io, conn_io_cb, fd, 0);
    c->io.data = c;
    ev_init(&c->timer, conn_timer_cb);
    c->timer.data = c;
    live_link(c);
    c->pins++;
    /* open may already send and close (server_full): the watchers above
     * are ready for that. */
    c->session = tls ? core->open_tls(c, peer, &c->tls) : core->open(c, peer);
    if (!c->session) {
        /* No session: the core keeps nothing of `c`, and closed() is not
         * owed. Dispose of it as a finished connection. */
        c->state = CONN_FINISHED;
        ev_io_stop(loop->ev, &c->io);
        ev_timer_stop(loop->ev, &c->timer);
        if (close(fd) != 0)
            core->log(SA_LOG_DEBUG, "close: %s", strerror(errno));
        outq_clear(c);
        live_unlink(c);
    } else if (c->state == CONN_OPEN) {
        int64_t delay = core->timer(c->session, core->monotonic_ms());
        if (c->state == CONN_OPEN) {
            arm_timer(c, delay);
            update_io(c);
        }
    }
    c->pins--;
    conn_release_if_done(c);
}
