/*
 * Listening sockets and accept. When the process runs out of descriptors,
 * accepting pauses briefly instead of spinning on a listener that stays
 * readable.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "async_internal.h"

/* Accepts per readiness event, so a connection storm still lets the loop
 * serve the clients it has. */
#define ACCEPTS_PER_EVENT 64
#define ACCEPT_PAUSE_SECONDS 0.1

void async_peer_text(const struct sockaddr *addr, socklen_t len, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
        unsigned port = ntohs(a6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) &&
            inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], host, sizeof host)) {
            snprintf(out, size, "%s:%u", host, port);
            return;
        }
        if (inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host)) {
            snprintf(out, size, "[%s]:%u", host, port);
            return;
        }
    } else if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)addr;
        if (inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host)) {
            snprintf(out, size, "%s:%u", host, (unsigned)ntohs(a4->sin_port));
            return;
        }
    }
    snprintf(out, size, "?");
}

static void listeners_set_active(sa_engine *e, bool active)
{
    for (size_t i = 0; i < e->listener_count; i++) {
        struct async_listener *l = &e->listeners[i];
        if (l->fd < 0)
            continue;
        if (active)
            ev_io_start(e->loops[0].ev, &l->io);
        else
            ev_io_stop(e->loops[0].ev, &l->io);
    }
}

static void pause_accepting(sa_engine *e, int err)
{
    if (!e->fd_exhaustion_logged) {
        e->core.log(SA_LOG_WARN, "accept: %s; pausing new connections", strerror(err));
        e->fd_exhaustion_logged = true;
    }
    listeners_set_active(e, false);
    ev_timer_set(&e->accept_pause, ACCEPT_PAUSE_SECONDS, 0.);
    ev_timer_start(e->loops[0].ev, &e->accept_pause);
}

static void accept_pause_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev;
    (void)revents;
    sa_engine *e = w->data;
    if (!e->loops[0].stopping)
        listeners_set_active(e, true);
}

static void accept_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)ev;
    (void)revents;
    sa_engine *e = w->data;
    struct async_listener *l = (struct async_listener *)w;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(l->fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED || err == EPROTO)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                pause_accepting(e, err);
                return;
            }
            e->core.log(SA_LOG_WARN, "accept: %s", strerror(err));
            return;
        }
        e->fd_exhaustion_logged = false;
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            e->core.log(SA_LOG_DEBUG, "TCP_NODELAY: %s", strerror(errno));
        char peer[ASYNC_PEER_TEXT_MAX];
        async_peer_text((struct sockaddr *)&addr, len, peer, sizeof peer);
        struct async_loop *target = &e->loops[e->next_loop];
        e->next_loop = (e->next_loop + 1) % e->loop_count;
        if (target == &e->loops[0])
            conn_open(target, fd, peer, l->tls);
        else
            async_loop_adopt(target, fd, peer, l->tls);
    }
}

int async_listen_start(sa_engine *e)
{
    const char *const *listen = e->core.config->listen;
    const char *const *tls_listen = e->core.config->tls_listen;
    size_t plain_count = 0, tls_count = 0;
    while (listen && listen[plain_count])
        plain_count++;
    while (tls_listen && tls_listen[tls_count])
        tls_count++;
    size_t count = plain_count + tls_count;
    ev_init(&e->accept_pause, accept_pause_cb);
    e->accept_pause.data = e;
    if (count == 0)
        return 0;
    e->listeners = calloc(count, sizeof *e->listeners);
    if (!e->listeners) {
        e->core.log(SA_LOG_ERROR, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        bool tls = i >= plain_count;
        int fd = tls ? e->core.listen_tls(tls_listen[i - plain_count])
                     : e->core.listen_tcp(listen[i]);
        if (fd < 0) {
            async_listen_stop(e);
            return -1;
        }
        struct async_listener *l = &e->listeners[e->listener_count++];
        l->fd = fd;
        l->tls = tls;
        ev_io_init(&l->io, accept_cb, fd, EV_READ);
        l->io.data = e;
        ev_io_start(e->loops[0].ev, &l->io);
    }
    return 0;
}

void async_listen_stop(sa_engine *e)
{
    if (e->loops[0].ev)
        ev_timer_stop(e->loops[0].ev, &e->accept_pause);
    for (size_t i = 0; i < e->listener_count; i++) {
        struct async_listener *l = &e->listeners[i];
        if (l->fd < 0)
            continue;
        if (e->loops[0].ev)
            ev_io_stop(e->loops[0].ev, &l->io);
        if (close(l->fd) != 0)
            e->core.log(SA_LOG_DEBUG, "close listener: %s", strerror(errno));
        l->fd = -1;
    }
}
