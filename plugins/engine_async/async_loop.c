/*
 * One event loop: its watchers, the wakeup from other threads, the flush
 * before each poll, and the shutdown sequence of stop().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "async_internal.h"

/* One read buffer per loop serves all its connections: idle connections
 * cost no buffer at all. */
#define READ_BUF_SIZE (64 * 1024)

static void loop_begin_shutdown(struct async_loop *loop)
{
    loop->stopping = true;
    if (loop == &loop->engine->loops[0])
        async_listen_stop(loop->engine);
    /* Act on what other threads posted before stop, so their frames go out
     * ahead of the bye. */
    inbox_drain(loop);
    if (atomic_exchange(&loop->rescan_requested, false))
        conn_close_refusing(loop);
    /* conn_shutdown may finish a connection (and so unlink it), but never
     * another one: the saved `next` stays valid. */
    sa_conn *next;
    for (sa_conn *c = loop->live; c; c = next) {
        next = c->live_next;
        conn_shutdown(c);
    }
    if (loop->live_count == 0) {
        ev_break(loop->ev, EVBREAK_ALL);
        return;
    }
    ev_timer_set(&loop->shutdown_deadline, loop->core->config->shutdown_linger_ms / 1000.0, 0.);
    ev_timer_start(loop->ev, &loop->shutdown_deadline);
}

static void close_adopted(struct async_loop *loop, struct async_adopt *a)
{
    if (close(a->fd) != 0)
        loop->core->log(SA_LOG_DEBUG, "close: %s", strerror(errno));
    free(a);
}

/* Opens the connections the accepting loop dealt to this one. */
static void adopt_drain(struct async_loop *loop)
{
    pthread_mutex_lock(&loop->inbox_lock);
    struct async_adopt *batch = loop->adopt_head;
    loop->adopt_head = loop->adopt_tail = NULL;
    pthread_mutex_unlock(&loop->inbox_lock);
    struct async_adopt *next;
    for (struct async_adopt *a = batch; a; a = next) {
        next = a->next;
        if (loop->stopping) {
            close_adopted(loop, a);
            continue;
        }
        conn_open(loop, a->fd, a->peer, a->tls);
        free(a);
    }
}

void async_loop_adopt(struct async_loop *loop, int fd, const char *peer, bool tls)
{
    size_t peer_len = strlen(peer) + 1;
    struct async_adopt *a = malloc(sizeof *a + peer_len);
    if (!a) {
        loop->core->log(SA_LOG_ERROR, "%s: out of memory for a connection", peer);
        if (close(fd) != 0)
            loop->core->log(SA_LOG_DEBUG, "close: %s", strerror(errno));
        return;
    }
    a->next = NULL;
    a->fd = fd;
    a->tls = tls;
    memcpy(a->peer, peer, peer_len);
    pthread_mutex_lock(&loop->inbox_lock);
    if (loop->adopt_tail)
        loop->adopt_tail->next = a;
    else
        loop->adopt_head = a;
    loop->adopt_tail = a;
    pthread_mutex_unlock(&loop->inbox_lock);
    ev_async_send(loop->ev, &loop->wakeup);
}

static void loop_wakeup_cb(struct ev_loop *ev, ev_async *w, int revents)
{
    (void)ev;
    (void)revents;
    struct async_loop *loop = w->data;
    adopt_drain(loop);
    inbox_drain(loop);
    if (atomic_exchange(&loop->rescan_requested, false))
        conn_close_refusing(loop);
    if (atomic_load(&loop->stop_requested) && !loop->stopping)
        loop_begin_shutdown(loop);
}

static void loop_flush_cb(struct ev_loop *ev, ev_prepare *w, int revents)
{
    (void)revents;
    struct async_loop *loop = w->data;
    conn_flush_dirty(loop);
    /* What the flush itself marked dirty is flushed on the next turn,
     * which must come without waiting for an event. */
    if (loop->dirty)
        ev_idle_start(ev, &loop->no_wait);
    else
        ev_idle_stop(ev, &loop->no_wait);
}

static void loop_no_wait_cb(struct ev_loop *ev, ev_idle *w, int revents)
{
    (void)revents;
    ev_idle_stop(ev, w);
}

static void force_finish_all(struct async_loop *loop)
{
    while (loop->live)
        conn_finish(loop->live);
}

static void loop_shutdown_deadline_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)revents;
    struct async_loop *loop = w->data;
    if (loop->live_count > 0)
        loop->core->log(SA_LOG_WARN, "shutdown: closing %zu connection(s) that did not drain",
                        loop->live_count);
    force_finish_all(loop);
    ev_break(ev, EVBREAK_ALL);
}

int async_loop_init(struct async_loop *loop, sa_engine *engine, const sa_engine_core *core)
{
    *loop = (struct async_loop){.engine = engine, .core = core};
    atomic_init(&loop->stop_requested, false);
    atomic_init(&loop->rescan_requested, false);
    if (pthread_mutex_init(&loop->inbox_lock, NULL) != 0) {
        core->log(SA_LOG_ERROR, "cannot create a mutex");
        return -1;
    }
    loop->read_buf_size = READ_BUF_SIZE;
    loop->read_buf = malloc(loop->read_buf_size);
    loop->iov = calloc(ASYNC_IOV_MAX, sizeof *loop->iov);
    loop->stage = malloc(ASYNC_STAGE_SIZE);
    /* The host takes signals in a thread of its own: libev must leave the
     * signal mask alone. */
    loop->ev = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!loop->read_buf || !loop->iov || !loop->stage || !loop->ev) {
        core->log(SA_LOG_ERROR, "%s", loop->ev ? "out of memory" : "cannot create the event loop");
        async_loop_free(loop);
        return -1;
    }
    ev_async_init(&loop->wakeup, loop_wakeup_cb);
    loop->wakeup.data = loop;
    ev_async_start(loop->ev, &loop->wakeup);
    ev_prepare_init(&loop->flusher, loop_flush_cb);
    loop->flusher.data = loop;
    ev_prepare_start(loop->ev, &loop->flusher);
    ev_idle_init(&loop->no_wait, loop_no_wait_cb);
    ev_init(&loop->shutdown_deadline, loop_shutdown_deadline_cb);
    loop->shutdown_deadline.data = loop;
    return 0;
}

int async_loop_run(struct async_loop *loop)
{
    loop->thread = pthread_self();
    loop->thread_known = true;
    ev_run(loop->ev, 0);
    /* ev_run only returns through ev_break at the end of a shutdown, which
     * has finished every connection; this covers any path that did not. */
    force_finish_all(loop);
    return 0;
}

void async_loop_request_stop(struct async_loop *loop)
{
    atomic_store(&loop->stop_requested, true);
    ev_async_send(loop->ev, &loop->wakeup);
}

bool async_loop_is_current(const struct async_loop *loop)
{
    return loop->thread_known && pthread_equal(loop->thread, pthread_self());
}

void async_loop_conn_finished(struct async_loop *loop)
{
    if (loop->stopping && loop->live_count == 0)
        ev_break(loop->ev, EVBREAK_ALL);
}

void async_loop_free(struct async_loop *loop)
{
    if (loop->ev) {
        ev_async_stop(loop->ev, &loop->wakeup);
        ev_prepare_stop(loop->ev, &loop->flusher);
        ev_idle_stop(loop->ev, &loop->no_wait);
        ev_timer_stop(loop->ev, &loop->shutdown_deadline);
        /* Entries still posted hold the last references to some finished
         * connections; releasing them frees those. */
        inbox_discard(loop);
        struct async_adopt *a;
        while ((a = loop->adopt_head)) {
            loop->adopt_head = a->next;
            close_adopted(loop, a);
        }
        loop->adopt_tail = NULL;
        force_finish_all(loop);
        sa_conn *c;
        while ((c = loop->dirty)) {
            loop->dirty = c->dirty_next;
            c->dirty = false;
            conn_release_if_done(c);
        }
        ev_loop_destroy(loop->ev);
        loop->ev = NULL;
    }
    inbox_free_spares(loop);
    outq_free_spares(loop);
    free(loop->read_buf);
    free(loop->iov);
    free(loop->stage);
    loop->read_buf = NULL;
    loop->iov = NULL;
    loop->stage = NULL;
    pthread_mutex_destroy(&loop->inbox_lock);
}
