/*
 * libev front end of the client library.
 *
 * With TLS the handshake runs first, from the watchers; output queued
 * meanwhile waits for it. TLS may also need the socket readable to go on
 * writing or writable to go on reading (`write_wants_read`,
 * `read_wants_write`), and may hold received bytes the socket no longer
 * shows, so reading goes on while the core has some pending.
 *
 * Ownership: the sa_client_async owns its socket, TLS session and decoder
 * (through the core), the read buffer and one reference to every frame in
 * the write queue. sa_client_async_close frees it all; when close is called from
 * inside a callback, the object itself is freed when control returns to
 * the watcher callback that made that call (`callback_depth` reaches 0),
 * so nothing on the stack still points at freed memory.
 */
#include "sa_client.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sa_client_core.h"

typedef struct queued_output {
    struct queued_output *next;
    sa_frame *frame; /* one reference, the queue's */
} queued_output;

struct sa_client_async {
    sa_client_core core;
    struct ev_loop *loop;
    ev_io read_watcher;
    ev_io write_watcher;
    queued_output *out_head, *out_tail;
    size_t out_offset; /* bytes of out_head already written */
    size_t out_bytes;  /* queued and not yet written, out_offset deducted */
    void (*drain_fn)(sa_client_async *c, void *arg);
    size_t drain_low_water;
    sa_client_async_callbacks cb;
    void *arg;
    unsigned char *read_buffer; /* SA_CLIENT_READ_CHUNK bytes */
    unsigned callback_depth;    /* watcher callbacks of ours on the stack */
    int closed_by_caller;       /* sa_client_async_close was called */
    int ended;                  /* the connection is over; on_close was called */
    int handshaking;            /* TLS handshake not finished yet */
    int cert_refused;           /* it failed on the server's certificate */
    int write_wants_read;       /* flushing waits for the socket to be readable */
    int read_wants_write;       /* reading waits for the socket to be writable */
};

static void free_output(sa_client_async *c)
{
    while (c->out_head) {
        queued_output *q = c->out_head;
        c->out_head = q->next;
        sa_frame_unref(q->frame);
        free(q);
    }
    c->out_tail = NULL;
    c->out_offset = 0;
    c->out_bytes = 0;
}

static void stop_watchers(sa_client_async *c)
{
    ev_io_stop(c->loop, &c->read_watcher);
    ev_io_stop(c->loop, &c->write_watcher);
}

/* The connection ended on its own: tell the caller once. */
static void end_connection(sa_client_async *c, const char *reason)
{
    if (c->ended || c->closed_by_caller)
        return;
    c->ended = 1;
    stop_watchers(c);
    free_output(c);
    if (c->cb.on_close)
        c->cb.on_close(c, reason, c->arg);
}

/* Writes queued output until done or the socket is full. Returns 0, or -1
 * with the reason in err. */
static int flush_output(sa_client_async *c, char *err, size_t errlen)
{
    if (c->handshaking)
        return 0;
    while (c->out_head) {
        const sa_frame *f = c->out_head->frame;
        ssize_t n = sa_client_core_write(&c->core, f->bytes + c->out_offset,
                                         f->len - c->out_offset, err, errlen);
        if (n == SA_IO_WANT_WRITE)
            return 0;
        if (n == SA_IO_WANT_READ) {
            c->write_wants_read = 1;
            return 0;
        }
        if (n < 0) {
            if (n != SA_IO_FAILED)
                snprintf(err, errlen, "the server closed the connection");
            return -1;
        }
        c->out_offset += (size_t)n;
        c->out_bytes -= (size_t)n;
        if (c->out_offset == f->len) {
            queued_output *done = c->out_head;
            c->out_head = done->next;
            if (!c->out_head)
                c->out_tail = NULL;
            c->out_offset = 0;
            sa_frame_unref(done->frame);
            free(done);
        }
    }
    return 0;
}

/* The write watcher runs while there is something it can move on. The
 * handshake steers it itself. */
static void arm_write_watcher(sa_client_async *c)
{
    if (c->handshaking)
        return;
    int wanted = c->read_wants_write || (c->out_head && !c->write_wants_read);
    if (wanted)
        ev_io_start(c->loop, &c->write_watcher);
    else
        ev_io_stop(c->loop, &c->write_watcher);
}

static void destroy(sa_client_async *c)
{
    free_output(c);
    sa_client_core_close(&c->core);
    free(c->read_buffer);
    free(c);
}

/* Every watcher callback brackets its work with these two, so that a close
 * requested meanwhile frees the object only once nothing uses it. */
static void enter_callback(sa_client_async *c)
{
    c->callback_depth++;
}

static void leave_callback(sa_client_async *c)
{
    if (--c->callback_depth == 0 && c->closed_by_caller)
        destroy(c);
}

static int enqueue_frame(sa_client_async *c, sa_frame *frame)
{
    queued_output *q = malloc(sizeof *q);
    if (!q)
        return -1;
    q->next = NULL;
    q->frame = frame;
    if (c->out_tail)
        c->out_tail->next = q;
    else
        c->out_head = q;
    c->out_tail = q;
    c->out_bytes += frame->len;
    arm_write_watcher(c);
    return 0;
}

int sa_client_async_send(sa_client_async *c, const cJSON *msg)
{
    if (c->ended || c->closed_by_caller)
        return -1;
    sa_frame *frame = sa_frame_from_json(msg); /* ours until queued */
    if (!frame)
        return -1;
    if (enqueue_frame(c, frame) != 0) {
        sa_frame_unref(frame);
        return -1;
    }
    return 0;
}

int64_t sa_client_async_request(sa_client_async *c, const cJSON *msg)
{
    int64_t id = sa_client_core_next_id(&c->core);
    cJSON *copy = sa_client_core_with_id(msg, id); /* ours; deleted below */
    if (!copy)
        return -1;
    int rc = sa_client_async_send(c, copy);
    cJSON_Delete(copy);
    return rc == 0 ? id : -1;
}

/* Decoder callback: one complete frame. Returns nonzero to stop decoding
 * once the connection is over or the caller closed it. */
static int on_payload(void *arg, const unsigned char *payload, size_t len)
{
    sa_client_async *c = arg;
    if (c->ended || c->closed_by_caller)
        return 1;
    cJSON *frame = sa_client_core_parse(payload, len); /* ours; deleted below */
    if (!frame) {
        end_connection(c, "server sent a frame that is not a JSON object");
        return 1;
    }
    sa_client_core_observe(&c->core, frame);
    if (sa_client_core_is_ping(frame)) {
        cJSON *pong = sa_client_core_pong_for(frame); /* ours; deleted below */
        int rc = pong ? sa_client_async_send(c, pong) : -1;
        cJSON_Delete(pong);
        cJSON_Delete(frame);
        if (rc != 0)
            end_connection(c, "cannot answer the server's ping (out of memory)");
        return c->ended;
    }
    if (c->cb.on_frame)
        c->cb.on_frame(c, frame, c->arg);
    cJSON_Delete(frame);
    return c->ended || c->closed_by_caller;
}

/* Reads and decodes what has arrived, until the socket has no more or the
 * connection is over. */
static void read_input(sa_client_async *c)
{
    char why[256];
    do {
        ssize_t got = sa_client_core_read(&c->core, c->read_buffer, SA_CLIENT_READ_CHUNK, why,
                                          sizeof why);
        if (got == SA_IO_WANT_READ)
            return;
        if (got == SA_IO_WANT_WRITE) {
            c->read_wants_write = 1;
            arm_write_watcher(c);
            return;
        }
        if (got == SA_IO_CLOSED) {
            end_connection(c, "the server closed the connection");
        } else if (got == SA_IO_RESET) {
            end_connection(c, "the server reset the connection");
        } else if (got < 0) {
            end_connection(c, why);
        } else {
            enum sa_decode_status status = sa_decoder_feed(&c->core.decoder, c->read_buffer,
                                                           (size_t)got, on_payload, c, NULL);
            if (status != SA_DECODE_OK)
                end_connection(c, sa_client_core_decode_error(status));
        }
    } while (!c->ended && !c->closed_by_caller && sa_client_core_has_pending(&c->core));
}

/* Writes what it can; a failure ends the connection. */
static void write_output(sa_client_async *c)
{
    char why[256];
    if (flush_output(c, why, sizeof why) != 0) {
        end_connection(c, why);
        return;
    }
    arm_write_watcher(c);
    if (c->drain_fn && !c->handshaking && c->out_bytes <= c->drain_low_water)
        c->drain_fn(c, c->arg);
}

/* One step of the TLS handshake; when it is done, the output queued
 * meanwhile goes out and whatever came with the handshake is read. */
static void continue_handshake(sa_client_async *c)
{
    char why[256];
    int refused = 0;
    int step = sa_client_core_handshake(&c->core, why, sizeof why, &refused);
    if (step == SA_IO_WANT_READ) {
        ev_io_stop(c->loop, &c->write_watcher);
        return;
    }
    if (step == SA_IO_WANT_WRITE) {
        ev_io_start(c->loop, &c->write_watcher);
        return;
    }
    if (step != SA_IO_DONE) {
        char reason[sizeof why + sizeof c->core.endpoint + 32];
        snprintf(reason, sizeof reason, "TLS with %s failed: %s", c->core.endpoint, why);
        c->cert_refused = refused;
        end_connection(c, reason);
        return;
    }
    c->handshaking = 0;
    write_output(c);
    if (!c->ended && !c->closed_by_caller)
        read_input(c);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    sa_client_async *c = w->data;
    enter_callback(c);
    if (c->handshaking) {
        continue_handshake(c);
    } else {
        if (c->write_wants_read) {
            c->write_wants_read = 0;
            write_output(c);
        }
        if (!c->ended && !c->closed_by_caller)
            read_input(c);
    }
    leave_callback(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    sa_client_async *c = w->data;
    enter_callback(c);
    if (c->handshaking) {
        continue_handshake(c);
    } else {
        if (c->read_wants_write) {
            c->read_wants_write = 0;
            read_input(c);
        }
        if (!c->ended && !c->closed_by_caller)
            write_output(c);
    }
    leave_callback(c);
}

sa_client_async *sa_client_async_connect(struct ev_loop *loop, const char *host,
                                         const char *port, int timeout_ms,
                                         const sa_client_async_callbacks *cb, void *arg,
                                         char *err, size_t errlen)
{
    return sa_client_async_connect_tls(loop, host, port, NULL, timeout_ms, cb, arg, err, errlen);
}

sa_client_async *sa_client_async_connect_tls(struct ev_loop *loop, const char *host,
                                             const char *port, const sa_client_tls *tls,
                                             int timeout_ms,
                                             const sa_client_async_callbacks *cb, void *arg,
                                             char *err, size_t errlen)
{
    sa_client_async *c = calloc(1, sizeof *c);
    if (!c || !(c->read_buffer = malloc(SA_CLIENT_READ_CHUNK))) {
        snprintf(err, errlen, "out of memory");
        free(c);
        return NULL;
    }
    if (sa_client_core_connect(&c->core, host, port, timeout_ms, err, errlen) != 0) {
        free(c->read_buffer);
        free(c);
        return NULL;
    }
    if (tls) {
        char why[256];
        if (sa_client_core_start_tls(&c->core, tls, host, why, sizeof why) != 0) {
            snprintf(err, errlen, "TLS with %s failed: %s", c->core.endpoint, why);
            sa_client_core_close(&c->core);
            free(c->read_buffer);
            free(c);
            return NULL;
        }
        c->handshaking = 1;
    }
    c->loop = loop;
    c->cb = *cb;
    c->arg = arg;
    ev_io_init(&c->read_watcher, on_readable, c->core.fd, EV_READ);
    ev_io_init(&c->write_watcher, on_writable, c->core.fd, EV_WRITE);
    c->read_watcher.data = c;
    c->write_watcher.data = c;
    ev_io_start(loop, &c->read_watcher);
    /* The client speaks first in TLS: the watcher sends the ClientHello. */
    if (c->handshaking)
        ev_io_start(loop, &c->write_watcher);
    return c;
}

int sa_client_async_cert_refused(const sa_client_async *c)
{
    return c->cert_refused;
}

size_t sa_client_async_queued(const sa_client_async *c)
{
    return c->out_bytes;
}

int sa_client_async_fd(const sa_client_async *c)
{
    return c->core.fd;
}

void sa_client_async_set_drain(sa_client_async *c, size_t low_water,
                               void (*fn)(sa_client_async *c, void *arg))
{
    c->drain_fn = fn;
    c->drain_low_water = low_water;
}

void sa_client_async_close(sa_client_async *c)
{
    if (!c || c->closed_by_caller)
        return;
    stop_watchers(c);
    /* Best effort by contract: whatever the socket does not take now, or an
     * error, goes away with the connection. */
    char ignored[256];
    if (!c->ended)
        (void)flush_output(c, ignored, sizeof ignored);
    free_output(c);
    /* The socket closes now; the decoder and read buffer may still be in
     * use by a callback further up the stack, so they go with `c`. */
    sa_client_core_close_socket(&c->core);
    c->closed_by_caller = 1;
    if (c->callback_depth == 0)
        destroy(c);
}
