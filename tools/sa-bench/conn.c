#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Bytes one read asks for: large, so that a subscriber that fell behind
 * catches up with few system calls. */
#define READ_CHUNK (256u * 1024u)
/* An output buffer larger than this is freed once written, so that an
 * idle connection holds no buffer at all. */
#define OUT_KEEP_MAX (64u * 1024u)
/* Output a server does not read passes this only when it is stuck: the
 * senders are bounded by their window. */
#define OUT_MAX ((size_t)256 << 20)

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_events(bench_conn *c, int events)
{
    struct ev_loop *loop = c->net->loop;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(loop, &c->io);
}

static void unlink_dirty(bench_conn *c)
{
    if (!c->dirty)
        return;
    for (bench_conn **p = &c->net->dirty; *p; p = &(*p)->dirty_next) {
        if (*p == c) {
            *p = c->dirty_next;
            break;
        }
    }
    c->dirty = false;
    c->dirty_next = NULL;
}

void bench_conn_init(bench_conn *c)
{
    *c = (bench_conn){.fd = -1};
}

void bench_conn_close(bench_conn *c)
{
    if (c->fd < 0)
        return;
    ev_io_stop(c->net->loop, &c->io);
    close(c->fd);
    c->fd = -1;
    c->net->open_count--;
    unlink_dirty(c);
    free(c->out);
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
    free(c->carry);
    c->carry = NULL;
    c->carry_len = 0;
    c->connecting = false;
    c->write_blocked = false;
}

/* Closes and tells the workload. */
static void fail(bench_conn *c, const char *reason)
{
    bench_conn_close(c);
    c->net->handlers.closed(c, reason);
}

/* Writes what the socket takes. 0 when all is written or the rest waits
 * for EV_WRITE; -1 when the connection failed (already reported). */
static int flush(bench_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->net->bytes_out += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->write_blocked) {
                c->write_blocked = true;
                set_events(c, EV_READ | EV_WRITE);
            }
            return 0;
        }
        fail(c, n < 0 ? strerror(errno) : "send wrote nothing");
        return -1;
    }
    c->out_off = c->out_len = 0;
    if (c->out_cap > OUT_KEEP_MAX) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    if (c->write_blocked) {
        c->write_blocked = false;
        set_events(c, EV_READ);
    }
    return 0;
}

static void mark_dirty(bench_conn *c)
{
    if (c->dirty || c->write_blocked || c->connecting)
        return; /* a blocked or connecting one is flushed by its EV_WRITE */
    c->dirty = true;
    c->dirty_next = c->net->dirty;
    c->net->dirty = c;
}

unsigned char *bench_conn_reserve(bench_conn *c, size_t len)
{
    if (c->fd < 0)
        return NULL;
    size_t need = c->out_len + len;
    if (need < len || need > OUT_MAX)
        return NULL;
    if (need > c->out_cap) {
        if (c->out_off > 0) { /* reclaim the written head first */
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
            need = c->out_len + len;
        }
        if (need > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 256;
            while (cap < need)
                cap *= 2;
            unsigned char *grown = realloc(c->out, cap);
            if (!grown)
                return NULL;
            c->out = grown;
            c->out_cap = cap;
        }
    }
    return c->out + c->out_len;
}

void bench_conn_commit(bench_conn *c, size_t len)
{
    if (c->fd < 0 || len == 0)
        return;
    c->out_len += len;
    mark_dirty(c);
}

int bench_conn_write(bench_conn *c, const void *data, size_t len)
{
    unsigned char *room = bench_conn_reserve(c, len);
    if (!room)
        return -1;
    memcpy(room, data, len);
    bench_conn_commit(c, len);
    return 0;
}

/* Hands every complete frame of buf[0, total) to the workload and keeps
 * the unfinished rest as the carry. */
static void deliver(bench_conn *c, const unsigned char *buf, size_t total,
                    const bench_rx_time *when)
{
    bench_net *net = c->net;
    size_t pos = 0;
    while (pos < total) {
        ssize_t len = net->frame_len(buf + pos, total - pos);
        if (len < 0) {
            fail(c, "malformed frame from the server");
            return;
        }
        if (len == 0)
            break;
        net->handlers.frame(c, buf + pos, (size_t)len, when);
        if (c->fd < 0)
            return; /* the workload closed it */
        pos += (size_t)len;
    }
    if (pos < total) {
        c->carry = malloc(total - pos);
        if (!c->carry) {
            fail(c, "out of memory");
            return;
        }
        memcpy(c->carry, buf + pos, total - pos);
        c->carry_len = total - pos;
    }
}

/* The kernel's receive timestamp of a recvmsg, on the monotonic clock;
 * `fallback` when there is none. */
static uint64_t arrival_time(const bench_net *net, struct msghdr *msg, uint64_t fallback)
{
    if (!net->rx_timestamps)
        return fallback;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS)
            continue;
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(cm), sizeof ts);
        int64_t real = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        int64_t mono = real - net->realtime_offset_ns;
        /* Never later than the read itself (clock skew between the two). */
        return mono > 0 && (uint64_t)mono < fallback ? (uint64_t)mono : fallback;
    }
    return fallback;
}

static void on_readable(bench_conn *c)
{
    bench_net *net = c->net;
    size_t have = c->carry_len;
    if (net->read_cap < have + READ_CHUNK) {
        unsigned char *grown = realloc(net->read_buf, have + READ_CHUNK);
        if (!grown) {
            fail(c, "out of memory");
            return;
        }
        net->read_buf = grown;
        net->read_cap = have + READ_CHUNK;
    }
    if (have > 0)
        memcpy(net->read_buf, c->carry, have);
    struct iovec iov = {.iov_base = net->read_buf + have, .iov_len = net->read_cap - have};
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(struct timespec))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (net->rx_timestamps) {
        msg.msg_control = control.bytes;
        msg.msg_controllen = sizeof control.bytes;
    }
    ssize_t n = recvmsg(c->fd, &msg, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return; /* the carry is still held */
    if (n <= 0) {
        fail(c, n < 0               ? strerror(errno)
                : have > 0          ? "the server closed the connection in the middle of a frame"
                                    : "the server closed the connection");
        return;
    }
    net->bytes_in += (uint64_t)n;
    free(c->carry);
    c->carry = NULL;
    c->carry_len = 0;
    bench_rx_time when = {.read_ns = bench_now_ns()};
    when.arrival_ns = arrival_time(net, &msg, when.read_ns);
    deliver(c, net->read_buf, have + (size_t)n, &when);
}

static void on_connect_done(bench_conn *c)
{
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0)
        error = errno;
    if (error != 0) {
        fail(c, strerror(error));
        return;
    }
    c->connecting = false;
    /* Output queued while connecting goes out with the first EV_WRITE. */
    if (c->out_len > c->out_off) {
        c->write_blocked = true;
        set_events(c, EV_READ | EV_WRITE);
    } else {
        set_events(c, EV_READ);
    }
    c->net->handlers.connected(c);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    bench_conn *c = w->data;
    if (c->connecting) {
        on_connect_done(c);
        return;
    }
    if ((revents & EV_WRITE) && flush(c) != 0)
        return;
    if ((revents & EV_READ) && c->fd >= 0)
        on_readable(c);
}

/* Before the loop polls: write every connection that has new output, so
 * that what one loop iteration produced leaves in one send per socket. */
static void flusher_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    bench_net *net = w->data;
    while (net->dirty) {
        bench_conn *c = net->dirty;
        net->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->fd >= 0 && !c->write_blocked)
            flush(c);
    }
}

int bench_conn_open(bench_net *net, bench_conn *c, uint32_t index, void *owner)
{
    int fd = socket(net->server.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    /* Small frames must leave at once, as a real chat client's would. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        goto fail;
    if (net->rx_timestamps &&
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0)
        goto fail;
    if (net->sources > 0) {
        /* The port is then picked at connect time for the whole 4-tuple,
         * so each source address offers its full port range. */
        if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0)
            goto fail;
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl((127u << 24) | (1u + index % net->sources));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0)
            goto fail;
    }
    int rc = connect(fd, (struct sockaddr *)&net->server, net->server_len);
    if (rc != 0 && errno != EINPROGRESS)
        goto fail;
    bench_conn_init(c);
    c->net = net;
    c->owner = owner;
    c->fd = fd;
    c->connecting = true;
    ev_io_init(&c->io, io_cb, fd, EV_WRITE);
    c->io.data = c;
    ev_io_start(net->loop, &c->io);
    net->open_count++;
    return 0;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int bench_net_init(bench_net *net, struct ev_loop *loop, const char *host, const char *port,
                   unsigned sources, bench_frame_len_fn frame_len,
                   const bench_net_handlers *handlers, char *err, size_t errlen)
{
    *net = (bench_net){.loop = loop, .handlers = *handlers, .frame_len = frame_len,
                       .sources = sources};
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    hints.ai_family = sources > 0 ? AF_INET : AF_UNSPEC;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s:%s%s: %s", host, port,
                 sources > 0 ? " as IPv4 (needed by --sources)" : "", gai_strerror(rc));
        return -1;
    }
    memcpy(&net->server, res->ai_addr, res->ai_addrlen);
    net->server_len = res->ai_addrlen;
    freeaddrinfo(res);
    net->read_buf = malloc(READ_CHUNK);
    if (!net->read_buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    net->read_cap = READ_CHUNK;
    struct timespec real, mono;
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    net->realtime_offset_ns = ((int64_t)real.tv_sec - (int64_t)mono.tv_sec) * 1000000000 +
                              (real.tv_nsec - mono.tv_nsec);
    ev_prepare_init(&net->flusher, flusher_cb);
    net->flusher.data = net;
    ev_prepare_start(loop, &net->flusher);
    return 0;
}

void bench_net_free(bench_net *net)
{
    ev_prepare_stop(net->loop, &net->flusher);
    free(net->read_buf);
    net->read_buf = NULL;
    net->read_cap = 0;
    net->dirty = NULL;
}
