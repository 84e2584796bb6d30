/*
 * Blocking front end of the client library (see sa_client.h for the
 * threading pattern it supports).
 *
 * The socket is non-blocking underneath: with TLS one session serves the
 * receiving thread and the sending ones, so each TLS (or socket) call
 * takes `io_lock` just for itself and every wait happens in poll()
 * outside it. Blocking is what the API promises, not what the socket does.
 *
 * Ownership: the sa_client owns its socket, TLS session and decoder
 * (through the core), the read buffer, every frame in the queue and a
 * matched reply not yet handed out; sa_client_close frees them all. A frame leaves the queue
 * owned by the caller of recv/request.
 */
#include "sa_client.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "sa_client_core.h"

#define SA_CLIENT_ERROR_MAX 256
#define SA_CLIENT_NOT_JSON "server sent a frame that is not a JSON object"

/* One received frame waiting for sa_client_recv. `frame` NULL stands for a
 * frame that was not a JSON object: recv reports it in its turn. */
typedef struct queued_frame {
    struct queued_frame *next;
    cJSON *frame; /* the queue's until recv hands it out */
} queued_frame;

struct sa_client {
    sa_client_core core;
    pthread_mutex_t send_lock; /* held for the whole of one write */
    pthread_mutex_t io_lock;   /* held for one core read or write call */
    atomic_int auto_pong;

    pthread_mutex_t error_lock; /* guards `error` */
    char error[SA_CLIENT_ERROR_MAX];

    /* Receiving thread only, from here on. */
    queued_frame *queue_head, *queue_tail;
    /* Once the stream has ended: SA_CLIENT_CLOSED or SA_CLIENT_ERROR, and
     * why. Reported after the frames queued before the end. */
    int end_status;
    char end_reason[SA_CLIENT_ERROR_MAX];
    /* sa_client_request waiting for the reply with this id; the decoder
     * callback puts that reply into `reply` instead of the queue. */
    int awaiting_reply;
    int64_t awaited_id;
    cJSON *reply;
    unsigned char *read_buffer; /* SA_CLIENT_READ_CHUNK bytes */
};

static void set_error(sa_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(sa_client *c, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&c->error_lock);
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&c->error_lock);
}

const char *sa_client_error(const sa_client *c)
{
    /* Each thread gets its own copy, so one thread's new error never
     * changes text another thread is reading. */
    static _Thread_local char copy[SA_CLIENT_ERROR_MAX];
    pthread_mutex_t *lock = (pthread_mutex_t *)&c->error_lock; /* logically const */
    pthread_mutex_lock(lock);
    memcpy(copy, c->error, sizeof copy);
    pthread_mutex_unlock(lock);
    return copy;
}

/* Records the end of the stream once; later ends keep the first reason. */
static void end_stream(sa_client *c, int status, const char *reason)
{
    if (c->end_status)
        return;
    c->end_status = status;
    snprintf(c->end_reason, sizeof c->end_reason, "%s", reason);
}

/* Waits until the socket is ready for what a core call asked (`want`, a
 * WANT result) or the deadline passes. Returns poll()'s result. */
static int wait_for(int fd, int want, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = want == SA_IO_WANT_WRITE ? POLLOUT : POLLIN};
    return poll(&pfd, 1, sa_client_core_remaining_ms(deadline));
}

/* The TLS handshake of a fresh connection, bounded by `deadline`. */
static int handshake(sa_client *c, int64_t deadline, char *err, size_t errlen, int *refused)
{
    for (;;) {
        int step = sa_client_core_handshake(&c->core, err, errlen, refused);
        if (step == SA_IO_DONE)
            return 0;
        if (step != SA_IO_WANT_READ && step != SA_IO_WANT_WRITE)
            return -1;
        int ready = wait_for(c->core.fd, step, deadline);
        if (ready < 0 && errno != EINTR) {
            snprintf(err, errlen, "TLS handshake: poll: %s", strerror(errno));
            return -1;
        }
        if (ready == 0) {
            snprintf(err, errlen, "TLS handshake timed out");
            return -1;
        }
    }
}

sa_client *sa_client_connect(const char *host, const char *port, int timeout_ms, char *err,
                             size_t errlen)
{
    return sa_client_connect_tls(host, port, NULL, timeout_ms, err, errlen, NULL);
}

sa_client *sa_client_connect_tls(const char *host, const char *port, const sa_client_tls *tls,
                                 int timeout_ms, char *err, size_t errlen, int *cert_refused)
{
    int refused = 0;
    int64_t deadline = timeout_ms < 0 ? -1 : sa_client_core_now_ms() + timeout_ms;
    sa_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    c->read_buffer = malloc(SA_CLIENT_READ_CHUNK);
    if (!c->read_buffer) {
        snprintf(err, errlen, "out of memory");
        goto fail_client;
    }
    if (pthread_mutex_init(&c->send_lock, NULL) != 0) {
        snprintf(err, errlen, "cannot create a mutex");
        goto fail_client;
    }
    if (pthread_mutex_init(&c->io_lock, NULL) != 0) {
        snprintf(err, errlen, "cannot create a mutex");
        goto fail_send_lock;
    }
    if (pthread_mutex_init(&c->error_lock, NULL) != 0) {
        snprintf(err, errlen, "cannot create a mutex");
        goto fail_io_lock;
    }
    if (sa_client_core_connect(&c->core, host, port, timeout_ms, err, errlen) != 0)
        goto fail_error_lock;
    if (tls) {
        char why[SA_CLIENT_ERROR_MAX];
        if (sa_client_core_start_tls(&c->core, tls, host, why, sizeof why) != 0 ||
            handshake(c, deadline, why, sizeof why, &refused) != 0) {
            snprintf(err, errlen, "TLS with %s failed: %s", c->core.endpoint, why);
            sa_client_core_close(&c->core);
            goto fail_error_lock;
        }
    }
    atomic_init(&c->auto_pong, 1);
    return c;

fail_error_lock:
    pthread_mutex_destroy(&c->error_lock);
fail_io_lock:
    pthread_mutex_destroy(&c->io_lock);
fail_send_lock:
    pthread_mutex_destroy(&c->send_lock);
fail_client:
    free(c->read_buffer);
    free(c);
out:
    if (cert_refused)
        *cert_refused = refused;
    return NULL;
}

void sa_client_close(sa_client *c)
{
    if (!c)
        return;
    sa_client_core_close(&c->core);
    while (c->queue_head) {
        queued_frame *q = c->queue_head;
        c->queue_head = q->next;
        cJSON_Delete(q->frame);
        free(q);
    }
    cJSON_Delete(c->reply);
    free(c->read_buffer);
    pthread_mutex_destroy(&c->error_lock);
    pthread_mutex_destroy(&c->io_lock);
    pthread_mutex_destroy(&c->send_lock);
    free(c);
}

void sa_client_shutdown(sa_client *c)
{
    /* ENOTCONN (the peer is already gone) leaves nothing to do. */
    (void)shutdown(c->core.fd, SHUT_RDWR);
}

void sa_client_set_auto_pong(sa_client *c, int on)
{
    atomic_store(&c->auto_pong, on ? 1 : 0);
}

int sa_client_fd(const sa_client *c)
{
    return c->core.fd;
}

/* ---- sending ------------------------------------------------------------- */

/* How long one write may wait for the socket: its SO_SNDTIMEO (set by
 * callers that must not block forever), else without limit. */
static int64_t send_deadline(const sa_client *c)
{
    struct timeval tv = {0};
    socklen_t len = sizeof tv;
    if (getsockopt(c->core.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) != 0 ||
        (tv.tv_sec == 0 && tv.tv_usec == 0))
        return -1;
    return sa_client_core_now_ms() + (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int sa_client_send_raw(sa_client *c, const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    int status = SA_CLIENT_OK;
    char why[SA_CLIENT_ERROR_MAX];
    pthread_mutex_lock(&c->send_lock);
    int64_t deadline = send_deadline(c);
    while (len > 0) {
        pthread_mutex_lock(&c->io_lock);
        ssize_t n = sa_client_core_write(&c->core, p, len, why, sizeof why);
        pthread_mutex_unlock(&c->io_lock);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            deadline = send_deadline(c); /* the limit is on standing still */
            continue;
        }
        if (n == SA_IO_WANT_READ || n == SA_IO_WANT_WRITE) {
            int ready = wait_for(c->core.fd, (int)n, deadline);
            if (ready >= 0 || errno == EINTR) {
                if (ready != 0)
                    continue;
                snprintf(why, sizeof why, "timed out");
            } else {
                snprintf(why, sizeof why, "poll: %s", strerror(errno));
            }
            n = SA_IO_FAILED;
        }
        if (n == SA_IO_CLOSED || n == SA_IO_RESET) {
            status = SA_CLIENT_CLOSED;
            set_error(c, "the server closed the connection");
        } else {
            status = SA_CLIENT_ERROR;
            set_error(c, "send failed: %s", why);
        }
        break;
    }
    pthread_mutex_unlock(&c->send_lock);
    return status;
}

int sa_client_send(sa_client *c, const cJSON *msg)
{
    sa_frame *frame = sa_frame_from_json(msg); /* ours; released below */
    if (!frame) {
        set_error(c, "cannot encode the frame (out of memory or too large)");
        return SA_CLIENT_ERROR;
    }
    int status = sa_client_send_raw(c, frame->bytes, frame->len);
    sa_frame_unref(frame);
    return status;
}

/* Sends a copy of `msg` carrying `id`. */
static int send_with_id(sa_client *c, const cJSON *msg, int64_t id)
{
    cJSON *copy = sa_client_core_with_id(msg, id); /* ours; deleted below */
    if (!copy) {
        set_error(c, "cannot build the request (not an object, or out of memory)");
        return SA_CLIENT_ERROR;
    }
    int status = sa_client_send(c, copy);
    cJSON_Delete(copy);
    return status;
}

int64_t sa_client_send_request(sa_client *c, const cJSON *msg)
{
    int64_t id = sa_client_core_next_id(&c->core);
    return send_with_id(c, msg, id) == SA_CLIENT_OK ? id : -1;
}

/* ---- receiving (receiving thread only) ----------------------------------- */

static int enqueue(sa_client *c, cJSON *frame)
{
    queued_frame *q = malloc(sizeof *q);
    if (!q)
        return -1;
    q->next = NULL;
    q->frame = frame;
    if (c->queue_tail)
        c->queue_tail->next = q;
    else
        c->queue_head = q;
    c->queue_tail = q;
    return 0;
}

/* Decoder callback: routes one complete frame. */
static int on_payload(void *arg, const unsigned char *payload, size_t len)
{
    sa_client *c = arg;
    cJSON *frame = sa_client_core_parse(payload, len); /* ours until queued */
    if (frame) {
        sa_client_core_observe(&c->core, frame);
        if (sa_client_core_is_ping(frame) && atomic_load(&c->auto_pong)) {
            cJSON *pong = sa_client_core_pong_for(frame); /* ours; deleted below */
            cJSON_Delete(frame);
            if (!pong) {
                end_stream(c, SA_CLIENT_ERROR, "out of memory");
                return 1;
            }
            int status = sa_client_send(c, pong);
            cJSON_Delete(pong);
            if (status != SA_CLIENT_OK) {
                end_stream(c, status, "cannot answer the server's ping");
                return 1;
            }
            return 0;
        }
        if (c->awaiting_reply && !c->reply && sa_client_core_is_reply_to(frame, c->awaited_id)) {
            c->reply = frame;
            return 0;
        }
    }
    if (enqueue(c, frame) != 0) {
        cJSON_Delete(frame);
        end_stream(c, SA_CLIENT_ERROR, "out of memory");
        return 1;
    }
    return 0;
}

/* Reads what has arrived, waiting for it until `deadline` (-1: none), and
 * decodes it. Returns SA_CLIENT_OK when it made progress (or was
 * interrupted), SA_CLIENT_TIMEOUT, or the end status once the stream has
 * ended. Reading comes first: TLS may hold bytes the socket no longer
 * shows. */
static int pump(sa_client *c, int64_t deadline)
{
    char why[SA_CLIENT_ERROR_MAX];
    ssize_t got;
    for (;;) {
        pthread_mutex_lock(&c->io_lock);
        got = sa_client_core_read(&c->core, c->read_buffer, SA_CLIENT_READ_CHUNK, why, sizeof why);
        pthread_mutex_unlock(&c->io_lock);
        if (got > 0)
            break;
        if (got == SA_IO_WANT_READ || got == SA_IO_WANT_WRITE) {
            int ready = wait_for(c->core.fd, (int)got, deadline);
            if (ready < 0 && errno == EINTR)
                return SA_CLIENT_OK;
            if (ready == 0)
                return SA_CLIENT_TIMEOUT;
            if (ready > 0)
                continue;
            snprintf(why, sizeof why, "%s", strerror(errno));
        }
        if (got == SA_IO_CLOSED)
            end_stream(c, SA_CLIENT_CLOSED, "the server closed the connection");
        else if (got == SA_IO_RESET)
            end_stream(c, SA_CLIENT_CLOSED, "the server reset the connection");
        else
            end_stream(c, SA_CLIENT_ERROR, why);
        return c->end_status;
    }
    enum sa_decode_status status =
        sa_decoder_feed(&c->core.decoder, c->read_buffer, (size_t)got, on_payload, c, NULL);
    if (status != SA_DECODE_OK)
        end_stream(c, SA_CLIENT_ERROR, sa_client_core_decode_error(status));
    return SA_CLIENT_OK;
}

static int64_t deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : sa_client_core_now_ms() + timeout_ms;
}

int sa_client_recv(sa_client *c, cJSON **out, int timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        if (c->queue_head) {
            queued_frame *q = c->queue_head;
            c->queue_head = q->next;
            if (!c->queue_head)
                c->queue_tail = NULL;
            cJSON *frame = q->frame;
            free(q);
            if (!frame) {
                set_error(c, SA_CLIENT_NOT_JSON);
                return SA_CLIENT_ERROR;
            }
            *out = frame;
            return SA_CLIENT_OK;
        }
        if (c->end_status) {
            set_error(c, "%s", c->end_reason);
            return c->end_status;
        }
        if (pump(c, deadline) == SA_CLIENT_TIMEOUT) {
            set_error(c, "nothing arrived within %d ms", timeout_ms);
            return SA_CLIENT_TIMEOUT;
        }
    }
}

int sa_client_request(sa_client *c, const cJSON *req, cJSON **reply, int timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms);
    int64_t id = sa_client_core_next_id(&c->core);
    /* Listen for the id before sending: the reply may come in the same
     * read as frames queued earlier. */
    c->awaiting_reply = 1;
    c->awaited_id = id;
    int status = send_with_id(c, req, id);
    while (status == SA_CLIENT_OK && !c->reply) {
        if (c->end_status) {
            set_error(c, "%s", c->end_reason);
            status = c->end_status;
        } else if (pump(c, deadline) == SA_CLIENT_TIMEOUT) {
            set_error(c, "no reply within %d ms", timeout_ms);
            status = SA_CLIENT_TIMEOUT;
        }
    }
    /* A reply arriving after a timeout is queued like any other frame. */
    c->awaiting_reply = 0;
    if (status == SA_CLIENT_OK) {
        *reply = c->reply;
        c->reply = NULL;
    }
    return status;
}

int sa_client_hello(sa_client *c, const char *name, const char *token, cJSON **reply,
                    int timeout_ms)
{
    cJSON *hello = cJSON_CreateObject(); /* ours; deleted below */
    if (!hello || !cJSON_AddStringToObject(hello, "type", "hello") ||
        !cJSON_AddStringToObject(hello, "name", name) ||
        (token && !cJSON_AddStringToObject(hello, "token", token)) ||
        !cJSON_AddStringToObject(hello, "client", "sa_client/1.0") ||
        !cJSON_AddNumberToObject(hello, "proto", 1)) {
        cJSON_Delete(hello);
        set_error(c, "out of memory");
        return SA_CLIENT_ERROR;
    }
    int status = sa_client_request(c, hello, reply, timeout_ms);
    cJSON_Delete(hello);
    return status;
}
