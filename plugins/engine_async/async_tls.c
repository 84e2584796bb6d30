/*
 * The flush of a TLS connection (engine.h, "TLS"). Frames are encrypted as
 * they are written, a record's worth at a time, and the ciphertext, with
 * the handshake records the core's input made, goes out with non-blocking
 * writes: nothing here waits, so a handshake never stalls the loop.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "async_internal.h"

/* Plaintext encrypted before its ciphertext is written: one full record. */
#define TLS_ENCRYPT_BATCH (16u * 1024u)

/* The queue's next bytes into the ciphertext stream. Encrypted bytes count
 * as written: a drop keeps a frame begun here, like one begun on the wire. */
static void encrypt_queued(sa_conn *c)
{
    const sa_engine_core *core = c->loop->core;
    struct iovec *iov = c->loop->iov;
    size_t total;
    int count = outq_gather(c, iov, ASYNC_IOV_MAX, &total);
    size_t done = 0;
    for (int i = 0; i < count && done < TLS_ENCRYPT_BATCH; i++) {
        size_t piece = iov[i].iov_len;
        if (piece > TLS_ENCRYPT_BATCH - done)
            piece = TLS_ENCRYPT_BATCH - done;
        size_t taken = core->tls_encrypt(c->tls, iov[i].iov_base, piece);
        done += taken;
        if (taken < piece) /* failed: the caller sees the state */
            break;
    }
    outq_consume(c, done);
}

enum async_tls_flush async_tls_flush(sa_conn *c)
{
    const sa_engine_core *core = c->loop->core;
    for (;;) {
        int state = core->tls_state(c->tls);
        /* Nothing queued can be sent without a handshake, and a failed
         * connection says nothing, not even an alert. */
        if (state == SA_TLS_STATE_FAILED ||
            (c->state == CONN_CLOSING && state == SA_TLS_STATE_HANDSHAKE))
            return ASYNC_TLS_ABORT;
        const unsigned char *out = NULL;
        size_t len = core->tls_output(c->tls, &out);
        if (len > 0) {
            ssize_t sent = send(c->fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return ASYNC_TLS_BLOCKED;
                core->log(SA_LOG_DEBUG, "write: %s", strerror(errno));
                return ASYNC_TLS_ABORT;
            }
            core->tls_output_done(c->tls, (size_t)sent);
            if ((size_t)sent < len)
                return ASYNC_TLS_BLOCKED;
            continue;
        }
        if (state == SA_TLS_STATE_HANDSHAKE)
            return ASYNC_TLS_IDLE;
        if (c->out_count > 0) {
            encrypt_queued(c);
            continue;
        }
        if (c->state != CONN_CLOSING)
            return ASYNC_TLS_IDLE;
        if (!c->tls_close_notified) {
            core->tls_close_notify(c->tls);
            c->tls_close_notified = true;
            continue;
        }
        return ASYNC_TLS_DRAINED;
    }
}
