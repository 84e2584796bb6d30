/*
 * Lean TCP connections for a load generator: one libev loop, many
 * connections, little memory per idle connection.
 *
 * Unlike the client library's sa_client_async (a 64 KiB read buffer per
 * connection, a blocking connect, every frame parsed into cJSON), a
 * bench_conn reads into one buffer shared by all connections, keeps only
 * the unfinished tail of a frame, connects without blocking from a chosen
 * 127.0.0.x source address, and hands raw frames to the workload, which
 * decides how much of each to look at.
 *
 * Ownership: the workload owns every bench_conn struct (usually in an
 * array) and must close it (bench_conn_close) before freeing it. A
 * bench_conn owns its socket, its output buffer and its partial-frame
 * carry; bench_conn_close frees all three. The bench_net owns the shared
 * read buffer and its watchers; bench_net_free releases them once every
 * connection is closed.
 */
#ifndef BENCH_CONN_H
#define BENCH_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct bench_net bench_net;
typedef struct bench_conn bench_conn;

/* Length of the complete frame at the start of buf: > 0 when it is all
 * there, 0 when more bytes are needed, -1 when the bytes cannot be a frame
 * (or announce one larger than the protocol driver allows). */
typedef ssize_t (*bench_frame_len_fn)(const unsigned char *buf, size_t len);

/* When the bytes of a frame came in, CLOCK_MONOTONIC nanoseconds. */
typedef struct bench_rx_time {
    uint64_t read_ns;    /* right after the read that completed the frame */
    /* When the kernel queued the newest of those bytes on the socket
     * (SO_TIMESTAMPNS, so not delayed by this process reading other
     * sockets first); read_ns when the kernel gave no timestamp. */
    uint64_t arrival_ns;
} bench_rx_time;

typedef struct bench_net_handlers {
    /* The TCP handshake finished. */
    void (*connected)(bench_conn *c);
    /* One complete frame; `frame` is valid during the call only. */
    void (*frame)(bench_conn *c, const unsigned char *frame, size_t len,
                  const bench_rx_time *when);
    /* The connection failed or the server closed it; the socket is already
     * closed. Not called for bench_conn_close. */
    void (*closed)(bench_conn *c, const char *reason);
} bench_net_handlers;

struct bench_net {
    struct ev_loop *loop; /* borrowed */
    bench_net_handlers handlers;
    bench_frame_len_fn frame_len;
    struct sockaddr_storage server;
    socklen_t server_len;
    unsigned sources;          /* bind to 127.0.0.1..N before connect; 0: do not bind */
    bool rx_timestamps;        /* ask the kernel for arrival times (set before opening) */
    int64_t realtime_offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC, for the timestamps */
    unsigned char *read_buf;   /* shared by every connection; owned */
    size_t read_cap;
    bench_conn *dirty;         /* connections with output to write */
    ev_prepare flusher;        /* writes the dirty ones before the loop polls */
    size_t open_count;         /* connections with a socket */
    uint64_t bytes_in, bytes_out;
};

struct bench_conn {
    bench_net *net;
    void *owner;               /* the workload's record; never touched here */
    ev_io io;
    int fd;                    /* owned; -1 when closed */
    bool connecting;           /* connect() still in progress */
    bool dirty;                /* on net->dirty */
    bool write_blocked;        /* waiting for EV_WRITE */
    unsigned char *out;        /* owned; bytes [out_off, out_len) not yet written */
    size_t out_off, out_len, out_cap;
    unsigned char *carry;      /* owned; the unfinished frame of the last read */
    size_t carry_len;
    bench_conn *dirty_next;
};

/* Resolves host:port (the first address) and prepares the shared state.
 * With sources > 0, every connection binds to a 127.0.0.x address first,
 * which needs an IPv4 server address. Returns 0, or -1 with a message in
 * err. */
int bench_net_init(bench_net *net, struct ev_loop *loop, const char *host, const char *port,
                   unsigned sources, bench_frame_len_fn frame_len,
                   const bench_net_handlers *handlers, char *err, size_t errlen);
void bench_net_free(bench_net *net);

/* Sets up a closed connection (every struct starts here). */
void bench_conn_init(bench_conn *c);

/* Starts a non-blocking connect for `c` (closed) from source number index % sources.
 * Returns 0 (handlers.connected or handlers.closed follows), or -1 with
 * errno set when no socket could be made (c stays closed). */
int bench_conn_open(bench_net *net, bench_conn *c, uint32_t index, void *owner);

/* Queues bytes for writing; they are written before the loop next polls.
 * Returns 0, or -1 when out of memory or the connection is closed. */
int bench_conn_write(bench_conn *c, const void *data, size_t len);
/* Room for `len` more bytes at the end of the output (NULL when out of
 * memory or closed); bench_conn_commit(c, n) then queues the first n. */
unsigned char *bench_conn_reserve(bench_conn *c, size_t len);
void bench_conn_commit(bench_conn *c, size_t len);

/* Closes the socket and frees the buffers; no callback. Idempotent. */
void bench_conn_close(bench_conn *c);

static inline bool bench_conn_is_open(const bench_conn *c)
{
    return c->fd >= 0;
}

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

#endif
