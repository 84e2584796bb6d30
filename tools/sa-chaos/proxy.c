#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "flow.h"
#include "log.h"
#include "prng.h"

/* Out of descriptors: accepting resumes after this many seconds. */
#define ACCEPT_PAUSE 1.0
#define ACCEPTS_PER_TURN 64
/* "[v6 address]:port" */
#define ADDRESS_TEXT_MAX (INET6_ADDRSTRLEN + 8)

typedef struct chaos_pair chaos_pair;

struct chaos_proxy {
    struct ev_loop *loop;
    const chaos_config *cfg;
    int listen_fd;
    ev_io acceptor;
    ev_timer accept_pause;
    struct addrinfo *server_addrs; /* getaddrinfo's; freed with the proxy */
    chaos_pair *pairs;             /* every live connection, newest first */
    uint64_t next_index;
};

/* One client connection and its connection to the server. */
struct chaos_pair {
    chaos_pair *prev, *next;
    chaos_proxy *proxy;
    uint64_t index;
    int client_fd, server_fd; /* the pair's; -1 when not open */
    char client_text[ADDRESS_TEXT_MAX];
    const struct addrinfo *next_addr; /* server address to try next */
    ev_io connect_watcher;
    int connected;
    chaos_flow flows[2]; /* indexed by enum chaos_direction */
};

static void format_address(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host))
            snprintf(out, outlen, "[%s]:%u", host, (unsigned)ntohs(a6->sin6_port));
        else
            snprintf(out, outlen, "[?]:%u", (unsigned)ntohs(a6->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host))
            snprintf(out, outlen, "%s:%u", host, (unsigned)ntohs(a4->sin_port));
        else
            snprintf(out, outlen, "?:%u", (unsigned)ntohs(a4->sin_port));
    } else {
        snprintf(out, outlen, "?");
    }
}

/* Brackets around an IPv6 address in HOST:PORT text. */
static const char *open_bracket(const char *host) { return strchr(host, ':') ? "[" : ""; }
static const char *close_bracket(const char *host) { return strchr(host, ':') ? "]" : ""; }

static void set_nodelay(int fd)
{
    /* Every segment goes out as its own packet: tiny segments stay tiny. */
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        chaos_log_info("TCP_NODELAY: %s", strerror(errno));
}

/* Closes fd so that the peer gets a RST instead of an orderly end. */
static void close_with_reset(int fd)
{
    struct linger abortive = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
    close(fd);
}

static void log_summary(const chaos_pair *p, const char *how)
{
    if (!p->connected) {
        chaos_log_info("conn %llu %s", (unsigned long long)p->index, how);
        return;
    }
    const chaos_flow *up = &p->flows[CHAOS_UP], *down = &p->flows[CHAOS_DOWN];
    chaos_log_info("conn %llu %s: up %llu bytes in %llu segments (plan %08x, %llu swallowed), "
                   "down %llu bytes in %llu segments (plan %08x, %llu swallowed)",
                   (unsigned long long)p->index, how, (unsigned long long)up->forwarded,
                   (unsigned long long)up->segments, (unsigned)up->plan_fingerprint,
                   (unsigned long long)up->swallowed, (unsigned long long)down->forwarded,
                   (unsigned long long)down->segments, (unsigned)down->plan_fingerprint,
                   (unsigned long long)down->swallowed);
}

/* Ends the pair: `reset` closes both sockets with a RST. */
static void destroy_pair(chaos_pair *p, int reset, const char *how)
{
    log_summary(p, how);
    ev_io_stop(p->proxy->loop, &p->connect_watcher);
    if (p->connected) {
        chaos_flow_stop(&p->flows[CHAOS_UP]);
        chaos_flow_stop(&p->flows[CHAOS_DOWN]);
    }
    int fds[2] = {p->client_fd, p->server_fd};
    for (int i = 0; i < 2; i++) {
        if (fds[i] < 0)
            continue;
        if (reset)
            close_with_reset(fds[i]);
        else
            close(fds[i]);
    }
    if (p->prev)
        p->prev->next = p->next;
    else
        p->proxy->pairs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p);
}

static void on_flow_event(chaos_flow *flow, enum chaos_flow_event event, void *owner)
{
    (void)flow;
    chaos_pair *p = owner;
    switch (event) {
    case CHAOS_FLOW_DONE:
        if (p->flows[CHAOS_UP].done && p->flows[CHAOS_DOWN].done)
            destroy_pair(p, 0, "closed");
        break;
    case CHAOS_FLOW_RESET:
        destroy_pair(p, 1, "reset (fault)");
        break;
    case CHAOS_FLOW_FAILED:
        destroy_pair(p, 1, "reset (a side failed)");
        break;
    }
}

static void start_flows(chaos_pair *p)
{
    const chaos_config *cfg = p->proxy->cfg;
    set_nodelay(p->server_fd);
    /* One generator per connection, seed + index; each direction takes its
     * own stream from it, so one direction's timing never shifts the
     * other's draws. */
    chaos_prng conn;
    chaos_prng_seed(&conn, cfg->seed + p->index);
    uint64_t up_seed = chaos_prng_next(&conn);
    uint64_t down_seed = chaos_prng_next(&conn);
    chaos_flow_init(&p->flows[CHAOS_UP], p->proxy->loop, &cfg->faults[CHAOS_UP], CHAOS_UP,
                    p->index, up_seed, p->client_fd, p->server_fd, on_flow_event, p);
    chaos_flow_init(&p->flows[CHAOS_DOWN], p->proxy->loop, &cfg->faults[CHAOS_DOWN], CHAOS_DOWN,
                    p->index, down_seed, p->server_fd, p->client_fd, on_flow_event, p);
    p->connected = 1;
    chaos_log_info("conn %llu from %s: connected to the server", (unsigned long long)p->index,
                   p->client_text);
    if (chaos_flow_start(&p->flows[CHAOS_UP]) != 0)
        return; /* a fault at byte 0 ended the pair */
    chaos_flow_start(&p->flows[CHAOS_DOWN]);
}

static void try_connect(chaos_pair *p, int last_error);

static void on_connect_done(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    chaos_pair *p = w->data;
    ev_io_stop(loop, w);
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(p->server_fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0)
        error = errno;
    if (error == 0) {
        start_flows(p);
        return;
    }
    close(p->server_fd);
    p->server_fd = -1;
    try_connect(p, error);
}

/* Connects to the next server address that takes a connection; resets
 * the client when none is left (last_error: why the previous one failed,
 * or 0). */
static void try_connect(chaos_pair *p, int last_error)
{
    while (p->next_addr) {
        const struct addrinfo *ai = p->next_addr;
        p->next_addr = ai->ai_next;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            last_error = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            p->server_fd = fd;
            ev_io_set(&p->connect_watcher, fd, EV_WRITE);
            ev_io_start(p->proxy->loop, &p->connect_watcher);
            return;
        }
        last_error = errno;
        close(fd);
    }
    const chaos_config *cfg = p->proxy->cfg;
    char *how = NULL;
    int rc = asprintf(&how, "reset: cannot connect to %s%s%s:%s%s%s",
                      open_bracket(cfg->connect_host), cfg->connect_host,
                      close_bracket(cfg->connect_host), cfg->connect_port,
                      last_error ? ": " : "", last_error ? strerror(last_error) : "");
    destroy_pair(p, 1, rc < 0 ? "reset: cannot connect to the server" : how);
    if (rc >= 0)
        free(how);
}

static void start_pair(chaos_proxy *proxy, int client_fd, const struct sockaddr *from)
{
    chaos_pair *p = calloc(1, sizeof *p);
    if (!p) {
        chaos_log_error("out of memory: refusing a connection");
        close_with_reset(client_fd);
        return;
    }
    p->proxy = proxy;
    p->index = proxy->next_index++;
    p->client_fd = client_fd;
    p->server_fd = -1;
    format_address(from, p->client_text, sizeof p->client_text);
    ev_init(&p->connect_watcher, on_connect_done);
    p->connect_watcher.data = p;
    p->next = proxy->pairs;
    if (proxy->pairs)
        proxy->pairs->prev = p;
    proxy->pairs = p;
    set_nodelay(client_fd);
    p->next_addr = proxy->server_addrs;
    try_connect(p, 0);
}

static void on_accept_pause_over(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    chaos_proxy *proxy = w->data;
    ev_io_start(loop, &proxy->acceptor);
}

static void on_acceptable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    chaos_proxy *proxy = w->data;
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        struct sockaddr_storage from;
        socklen_t len = sizeof from;
        int fd = accept4(proxy->listen_fd, (struct sockaddr *)&from, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            start_pair(proxy, fd, (struct sockaddr *)&from);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        chaos_log_error("accept: %s; accepting again in %.0f s", strerror(errno),
                        ACCEPT_PAUSE);
        /* The listener stays readable: without a pause this would spin. */
        ev_io_stop(loop, &proxy->acceptor);
        ev_timer_set(&proxy->accept_pause, ACCEPT_PAUSE, 0.0);
        ev_timer_start(loop, &proxy->accept_pause);
        return;
    }
}

static struct addrinfo *resolve(const char *host, const char *port, int passive)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        chaos_log_error("cannot resolve %s: %s", host, gai_strerror(rc));
        return NULL;
    }
    return res;
}

/* Binds the first address of --listen that works; logs why when none. */
static int open_listener(const chaos_config *cfg)
{
    struct addrinfo *res = resolve(cfg->listen_host, cfg->listen_port, 1);
    if (!res)
        return -1;
    int fd = -1;
    int last_error = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            last_error = errno;
            continue;
        }
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            last_error = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        chaos_log_error("cannot listen on %s%s%s:%s: %s", open_bracket(cfg->listen_host),
                        cfg->listen_host, close_bracket(cfg->listen_host), cfg->listen_port,
                        strerror(last_error));
    return fd;
}

chaos_proxy *chaos_proxy_open(struct ev_loop *loop, const chaos_config *cfg)
{
    chaos_proxy *proxy = calloc(1, sizeof *proxy);
    if (!proxy) {
        chaos_log_error("out of memory");
        return NULL;
    }
    proxy->loop = loop;
    proxy->cfg = cfg;
    proxy->listen_fd = -1;
    proxy->server_addrs = resolve(cfg->connect_host, cfg->connect_port, 0);
    if (proxy->server_addrs)
        proxy->listen_fd = open_listener(cfg);
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    if (proxy->listen_fd >= 0 &&
        getsockname(proxy->listen_fd, (struct sockaddr *)&bound, &len) != 0) {
        chaos_log_error("getsockname: %s", strerror(errno));
        close(proxy->listen_fd);
        proxy->listen_fd = -1;
    }
    if (proxy->listen_fd < 0) {
        if (proxy->server_addrs)
            freeaddrinfo(proxy->server_addrs);
        free(proxy);
        return NULL;
    }
    ev_io_init(&proxy->acceptor, on_acceptable, proxy->listen_fd, EV_READ);
    proxy->acceptor.data = proxy;
    ev_timer_init(&proxy->accept_pause, on_accept_pause_over, ACCEPT_PAUSE, 0.0);
    proxy->accept_pause.data = proxy;
    ev_io_start(loop, &proxy->acceptor);

    char text[ADDRESS_TEXT_MAX];
    format_address((struct sockaddr *)&bound, text, sizeof text);
    chaos_log_notice("listening on %s (forwarding to %s%s%s:%s, seed %llu)", text,
                     open_bracket(cfg->connect_host), cfg->connect_host,
                     close_bracket(cfg->connect_host), cfg->connect_port,
                     (unsigned long long)cfg->seed);
    return proxy;
}

void chaos_proxy_close(chaos_proxy *proxy)
{
    if (!proxy)
        return;
    ev_io_stop(proxy->loop, &proxy->acceptor);
    ev_timer_stop(proxy->loop, &proxy->accept_pause);
    while (proxy->pairs)
        destroy_pair(proxy->pairs, 0, "closed (the proxy is stopping)");
    close(proxy->listen_fd);
    freeaddrinfo(proxy->server_addrs);
    free(proxy);
}
