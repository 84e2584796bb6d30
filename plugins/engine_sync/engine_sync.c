/*
 * The sync engine: a thread per client with blocking sockets.
 *
 * run() is the accept loop and the reaper. Each accepted client gets a
 * reader thread (its serial lane) and, once a frame has to wait for the
 * socket, a writer thread (see sync_conn.h).
 * A reader that has finished puts its connection on the `finished` list and
 * wakes run(), which joins it and frees the connection, so no thread of this
 * plugin is left running once run() returns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <syncasync/engine.h>
#include <syncasync/plugin.h>

#include "sync_conn.h"
#include "sync_time.h"

/* Pause after accept() failed for want of descriptors or memory, so the
 * loop does not spin while the shortage lasts. */
#define ACCEPT_RETRY_MS 100

/* Room for "[" INET6 text "]:" port. */
#define PEER_TEXT_SIZE 64

struct sa_engine {
    const sa_engine_core *core;   /* borrowed */
    struct pollfd *watch;         /* owned: the listeners, then the wake pipe */
    size_t listener_count;
    size_t plain_listener_count;  /* the first ones; the TLS listeners follow */
    int wake_pipe[2];             /* owned; written by stop() and by finished readers */
    atomic_bool stop_requested;

    pthread_mutex_t lock;         /* guards the lists below */
    pthread_cond_t conn_finished; /* a connection moved from live to finished */
    sa_conn *live;                /* readers still running; doubly linked */
    size_t live_count;
    sa_conn *finished;            /* readers done: run() joins them, frees the conns */
};

static void wake_run(sa_engine *e)
{
    static const char byte = 1;
    /* A full pipe already guarantees run() wakes up. */
    if (write(e->wake_pipe[1], &byte, 1) < 0 && errno != EAGAIN)
        e->core->log(SA_LOG_ERROR, "writing the wake pipe: %s", strerror(errno));
}

static void drain_wake_pipe(sa_engine *e)
{
    char bytes[64];
    while (read(e->wake_pipe[0], bytes, sizeof bytes) > 0)
        continue;
}

static void sleep_ms(unsigned ms)
{
    struct timespec pause = {.tv_sec = (time_t)(ms / 1000u), .tv_nsec = (long)(ms % 1000u) * 1000000L};
    /* An interrupted pause is merely shorter: nothing to handle. */
    (void)nanosleep(&pause, NULL);
}

static void close_listeners(sa_engine *e)
{
    for (size_t i = 0; i < e->listener_count; i++) {
        if (e->watch[i].fd >= 0 && close(e->watch[i].fd) != 0)
            e->core->log(SA_LOG_WARN, "closing a listener: %s", strerror(errno));
        e->watch[i].fd = -1;
    }
}

/* ---- connection bookkeeping ------------------------------------------- */

static void add_live_locked(sa_engine *e, sa_conn *c)
{
    c->prev = NULL;
    c->next = e->live;
    if (e->live)
        e->live->prev = c;
    e->live = c;
    e->live_count++;
}

static void remove_live_locked(sa_engine *e, sa_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        e->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    e->live_count--;
}

void sync_engine_conn_finished(sa_engine *e, sa_conn *c)
{
    pthread_mutex_lock(&e->lock);
    remove_live_locked(e, c);
    c->prev = NULL;
    c->next = e->finished;
    e->finished = c;
    pthread_cond_broadcast(&e->conn_finished);
    wake_run(e);
    pthread_mutex_unlock(&e->lock);
}

/* Joins the readers that have finished and frees their connections. */
static void reap_finished(sa_engine *e)
{
    pthread_mutex_lock(&e->lock);
    sa_conn *done = e->finished;
    e->finished = NULL;
    pthread_mutex_unlock(&e->lock);
    while (done) {
        sa_conn *next = done->next;
        int rc = pthread_join(done->reader, NULL);
        if (rc != 0)
            e->core->log(SA_LOG_ERROR, "joining a reader thread: %s", strerror(rc));
        sync_conn_free(done);
        done = next;
    }
}

/* ---- accepting -------------------------------------------------------- */

/* "ADDR:PORT", or "[ADDR]:PORT" for IPv6. */
static void format_peer(const struct sockaddr_storage *addr, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
        if (inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host)) {
            snprintf(out, size, "[%s]:%u", host, (unsigned)ntohs(a6->sin6_port));
            return;
        }
    } else if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)addr;
        if (inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host)) {
            snprintf(out, size, "%s:%u", host, (unsigned)ntohs(a4->sin_port));
            return;
        }
    }
    snprintf(out, size, "unknown");
}

static void report_accept_error(sa_engine *e, int err)
{
    switch (err) {
    case EINTR:
    case EAGAIN:
    case ECONNABORTED: /* the client gave up while queued */
    case EPROTO:
    case EPERM: /* refused by a firewall rule */
        return;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        e->core->log(SA_LOG_WARN, "accept: %s; pausing %d ms", strerror(err), ACCEPT_RETRY_MS);
        break;
    default:
        e->core->log(SA_LOG_ERROR, "accept: %s; pausing %d ms", strerror(err), ACCEPT_RETRY_MS);
        break;
    }
    sleep_ms(ACCEPT_RETRY_MS);
}

static void accept_client(sa_engine *e, int listener, bool tls)
{
    const sa_engine_core *core = e->core;
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof addr;
    int fd = accept4(listener, (struct sockaddr *)&addr, &addr_len, SOCK_CLOEXEC);
    if (fd < 0) {
        report_accept_error(e, errno);
        return;
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        core->log(SA_LOG_WARN, "TCP_NODELAY on a client socket: %s", strerror(errno));
    char peer[PEER_TEXT_SIZE];
    format_peer(&addr, peer, sizeof peer);

    sa_conn *c = sync_conn_new(e, core, fd);
    if (!c) {
        core->log(SA_LOG_ERROR, "cannot accept %s: %s", peer, strerror(errno));
        close(fd);
        return;
    }
    c->session = tls ? core->open_tls(c, peer, &c->tls) : core->open(c, peer);
    if (!c->session) {
        sync_conn_free(c); /* closes fd */
        return;
    }
    /* Listed before the reader starts: it unlists itself when done. */
    pthread_mutex_lock(&e->lock);
    add_live_locked(e, c);
    pthread_mutex_unlock(&e->lock);
    int rc = sync_conn_start(c);
    if (rc != 0) {
        core->log(SA_LOG_ERROR, "cannot start a thread for %s: %s", peer, strerror(rc));
        pthread_mutex_lock(&e->lock);
        remove_live_locked(e, c);
        pthread_mutex_unlock(&e->lock);
        core->closed(c->session);
        sync_conn_free(c);
    }
}

/* ---- engine operations ------------------------------------------------ */

static void sync_destroy(sa_engine *e)
{
    reap_finished(e);
    close_listeners(e);
    for (int i = 0; i < 2; i++) {
        if (e->wake_pipe[i] >= 0)
            close(e->wake_pipe[i]);
    }
    free(e->watch);
    pthread_cond_destroy(&e->conn_finished);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

static sa_engine *sync_create(const sa_engine_core *core)
{
    const char *const *listen = core->config->listen;
    const char *const *tls_listen = core->config->tls_listen;
    size_t plain_count = 0, tls_count = 0;
    while (listen && listen[plain_count])
        plain_count++;
    while (tls_listen && tls_listen[tls_count])
        tls_count++;
    size_t listen_count = plain_count + tls_count;

    sa_engine *e = calloc(1, sizeof *e);
    if (!e) {
        core->log(SA_LOG_ERROR, "out of memory creating the sync engine");
        return NULL;
    }
    e->core = core;
    e->wake_pipe[0] = e->wake_pipe[1] = -1;
    atomic_init(&e->stop_requested, false);
    if (pthread_mutex_init(&e->lock, NULL) != 0) {
        core->log(SA_LOG_ERROR, "cannot create the sync engine's lock");
        free(e);
        return NULL;
    }
    if (sync_cond_init_monotonic(&e->conn_finished) != 0) {
        core->log(SA_LOG_ERROR, "cannot create the sync engine's condition variable");
        pthread_mutex_destroy(&e->lock);
        free(e);
        return NULL;
    }
    /* From here on sync_destroy cleans up whatever exists. */
    e->watch = calloc(listen_count + 1, sizeof *e->watch);
    if (!e->watch) {
        core->log(SA_LOG_ERROR, "out of memory creating the sync engine");
        sync_destroy(e);
        return NULL;
    }
    if (pipe2(e->wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        core->log(SA_LOG_ERROR, "cannot create the wake pipe: %s", strerror(errno));
        e->wake_pipe[0] = e->wake_pipe[1] = -1;
        sync_destroy(e);
        return NULL;
    }
    e->plain_listener_count = plain_count;
    for (size_t i = 0; i < listen_count; i++) {
        int fd = i < plain_count ? core->listen_tcp(listen[i])
                                 : core->listen_tls(tls_listen[i - plain_count]);
        if (fd < 0) {
            sync_destroy(e);
            return NULL;
        }
        /* Listeners stay non-blocking: a client that resets between poll()
         * and accept() must not block the loop. */
        e->watch[i] = (struct pollfd){.fd = fd, .events = POLLIN};
        e->listener_count = i + 1;
    }
    e->watch[listen_count] = (struct pollfd){.fd = e->wake_pipe[0], .events = POLLIN};
    return e;
}

/* Says bye to every client, lets them flush for at most shutdown_linger_ms,
 * cuts off the rest, and waits until every client thread has exited. */
static void shutdown_clients(sa_engine *e)
{
    const sa_engine_core *core = e->core;
    close_listeners(e);
    sa_frame *bye = core->bye_frame("shutdown"); /* ours; each send takes its own reference */
    if (!bye)
        core->log(SA_LOG_WARN, "out of memory: closing clients without bye");

    pthread_mutex_lock(&e->lock);
    if (e->live_count > 0)
        core->log(SA_LOG_INFO, "closing %zu connections", e->live_count);
    for (sa_conn *c = e->live; c; c = c->next) {
        if (bye)
            sync_conn_send(c, bye);
        sync_conn_close(c);
    }
    struct timespec deadline = sync_deadline_in_ms(core->config->shutdown_linger_ms);
    while (e->live) {
        if (pthread_cond_timedwait(&e->conn_finished, &e->lock, &deadline) != 0)
            break;
    }
    for (sa_conn *c = e->live; c; c = c->next)
        sync_conn_force_shutdown(c);
    /* Not bounded by a clock, but short: with both directions shut down
     * every reader and writer returns at once. */
    while (e->live)
        pthread_cond_wait(&e->conn_finished, &e->lock);
    pthread_mutex_unlock(&e->lock);

    if (bye)
        core->frame_unref(bye);
    reap_finished(e);
}

static int sync_run(sa_engine *e)
{
    size_t watch_count = e->listener_count + 1;
    const struct pollfd *wake = &e->watch[e->listener_count];
    while (!atomic_load(&e->stop_requested)) {
        if (poll(e->watch, watch_count, -1) < 0) {
            if (errno != EINTR) {
                e->core->log(SA_LOG_ERROR, "poll: %s", strerror(errno));
                sleep_ms(ACCEPT_RETRY_MS);
            }
            continue;
        }
        if (wake->revents) {
            drain_wake_pipe(e);
            reap_finished(e);
            if (atomic_load(&e->stop_requested))
                break;
        }
        for (size_t i = 0; i < e->listener_count; i++) {
            if (e->watch[i].revents)
                accept_client(e, e->watch[i].fd, i >= e->plain_listener_count);
        }
    }
    shutdown_clients(e);
    return 0;
}

static void sync_stop(sa_engine *e)
{
    atomic_store(&e->stop_requested, true);
    wake_run(e);
}

static const struct sa_engine_ops sync_engine_ops = {
    .create = sync_create,
    .run = sync_run,
    .stop = sync_stop,
    .destroy = sync_destroy,
    .send = sync_conn_send,
    .close = sync_conn_close,
    .queued = sync_conn_queued,
    .notify_writable = sync_conn_notify_writable,
};

static const sa_plugin sync_engine_plugin = {
    .abi = SA_ABI_VERSION,
    .kind = SA_PLUGIN_ENGINE,
    .name = "sync",
    .version = "1.0",
    .description = "thread per client, blocking sockets",
    .config_keys = NULL,
    .init = NULL,
    .engine = &sync_engine_ops,
};

SA_PLUGIN_DEFINE(sync_engine_plugin)
