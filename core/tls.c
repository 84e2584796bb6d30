#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

/* Ciphertext handed to the writer at once: a full record (16 KiB of
 * plaintext) and its overhead, so a large frame goes out a record per
 * write without holding much memory per connection. */
#define OUTPUT_CHUNK (17u * 1024u)

struct sa_tls {
    pthread_mutex_t lock; /* guards ssl and its BIOs */
    SSL *ssl;             /* owned; owns rbio and wbio */
    BIO *rbio;            /* ciphertext read from the socket, not yet used */
    BIO *wbio;            /* ciphertext made, not yet handed to the writer */
    atomic_int state;     /* enum sa_tls_state */

    /* The writer's side only: ciphertext taken out of wbio, so that a
     * pointer into it stays valid while the reader adds to wbio. */
    unsigned char *out; /* owned; NULL when nothing is held */
    size_t out_len;
    size_t out_pos; /* bytes of `out` already written */
};

/* The first error of OpenSSL's thread-local queue, which is emptied so
 * that it cannot be mistaken for a later call's. */
static void take_openssl_error(char *buf, size_t len)
{
    unsigned long code = ERR_get_error();
    if (code)
        ERR_error_string_n(code, buf, len);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
}

/* A clearer message than OpenSSL's for the common case of a path that
 * cannot be opened. */
static int check_readable(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

SSL_CTX *sa_tls_context_new(const char *cert_path, const char *key_path, const char **bad_key,
                            char *err, size_t errlen)
{
    char why[256];
    *bad_key = "cert";
    if (check_readable(cert_path, err, errlen) != 0)
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        take_openssl_error(why, sizeof why);
        snprintf(err, errlen, "cannot make a TLS context: %s", why);
        return NULL;
    }
    /* No tickets and no cache: resumption would keep per-client state for
     * a gain that clients of a chat server, connected for long, never see. */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_num_tickets(ctx, 0) != 1) {
        take_openssl_error(why, sizeof why);
        snprintf(err, errlen, "cannot set up the TLS context: %s", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Idle connections then hold no record buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        take_openssl_error(why, sizeof why);
        snprintf(err, errlen, "cannot load the certificate chain '%s': %s", cert_path, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    *bad_key = "key";
    if (check_readable(key_path, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        take_openssl_error(why, sizeof why);
        snprintf(err, errlen, "cannot load the private key '%s': %s", key_path, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        take_openssl_error(why, sizeof why);
        snprintf(err, errlen, "the private key '%s' does not match the certificate '%s': %s",
                 key_path, cert_path, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

sa_tls *sa_tls_conn_new(SSL_CTX *ctx)
{
    sa_tls *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return NULL;
    }
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        ERR_clear_error();
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
    }
    /* An empty memory BIO means "no data yet", not end of file. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    atomic_init(&t->state, SA_TLS_STATE_HANDSHAKE);
    return t;
}

void sa_tls_conn_free(sa_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t->out);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* Lock held. Whatever the failed connection still had to say, an alert
 * included, is thrown away: a client that spoke anything but TLS gets
 * nothing back. */
static void fail_locked(sa_tls *t)
{
    atomic_store(&t->state, SA_TLS_STATE_FAILED);
    (void)BIO_reset(t->wbio);
    ERR_clear_error();
}

int sa_tls_conn_feed(sa_tls *t, const unsigned char *data, size_t len)
{
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    if (atomic_load(&t->state) != SA_TLS_STATE_FAILED) {
        size_t written = 0;
        if (len > 0 && (BIO_write_ex(t->rbio, data, len, &written) != 1 || written != len)) {
            fail_locked(t);
            rc = -1;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

enum sa_tls_read_status sa_tls_conn_read(sa_tls *t, unsigned char *buf, size_t cap, size_t *got,
                                         char *why, size_t whylen)
{
    *got = 0;
    pthread_mutex_lock(&t->lock);
    if (atomic_load(&t->state) == SA_TLS_STATE_FAILED) {
        pthread_mutex_unlock(&t->lock);
        snprintf(why, whylen, "the connection failed earlier");
        return SA_TLS_READ_FAILED;
    }
    /* SSL_read runs the handshake first (accept state). */
    int rc = SSL_read_ex(t->ssl, buf, cap, got);
    if (atomic_load(&t->state) == SA_TLS_STATE_HANDSHAKE && SSL_is_init_finished(t->ssl))
        atomic_store(&t->state, SA_TLS_STATE_ESTABLISHED);
    enum sa_tls_read_status status = SA_TLS_READ_DATA;
    if (rc != 1) {
        switch (SSL_get_error(t->ssl, rc)) {
        case SSL_ERROR_WANT_READ:
            status = SA_TLS_READ_MORE;
            ERR_clear_error();
            break;
        case SSL_ERROR_ZERO_RETURN:
            status = SA_TLS_READ_EOF;
            ERR_clear_error();
            break;
        default:
            take_openssl_error(why, whylen);
            fail_locked(t);
            status = SA_TLS_READ_FAILED;
            break;
        }
        *got = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return status;
}

void sa_tls_conn_fail(sa_tls *t)
{
    pthread_mutex_lock(&t->lock);
    fail_locked(t);
    pthread_mutex_unlock(&t->lock);
}

int sa_tls_conn_state(sa_tls *t) { return atomic_load(&t->state); }

size_t sa_tls_conn_encrypt(sa_tls *t, const unsigned char *plain, size_t len)
{
    size_t written = 0;
    pthread_mutex_lock(&t->lock);
    if (atomic_load(&t->state) == SA_TLS_STATE_ESTABLISHED && len > 0 &&
        SSL_write_ex(t->ssl, plain, len, &written) != 1) {
        /* Into a memory BIO only a broken connection fails. */
        fail_locked(t);
        written = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return written;
}

size_t sa_tls_conn_output(sa_tls *t, const unsigned char **bytes)
{
    *bytes = NULL;
    if (atomic_load(&t->state) == SA_TLS_STATE_FAILED)
        return 0;
    if (t->out_pos < t->out_len) {
        *bytes = t->out + t->out_pos;
        return t->out_len - t->out_pos;
    }
    pthread_mutex_lock(&t->lock);
    size_t pending = BIO_ctrl_pending(t->wbio);
    size_t take = pending < OUTPUT_CHUNK ? pending : OUTPUT_CHUNK;
    size_t got = 0;
    if (take > 0) {
        t->out = malloc(take);
        if (!t->out || BIO_read_ex(t->wbio, t->out, take, &got) != 1 || got != take) {
            /* A gap in the record stream would be fatal anyway. */
            free(t->out);
            t->out = NULL;
            fail_locked(t);
            got = 0;
        }
    }
    pthread_mutex_unlock(&t->lock);
    t->out_len = got;
    t->out_pos = 0;
    *bytes = t->out;
    return got;
}

void sa_tls_conn_output_done(sa_tls *t, size_t written)
{
    t->out_pos += written;
    if (t->out_pos >= t->out_len) {
        /* Not kept: an idle connection should hold no buffer. */
        free(t->out);
        t->out = NULL;
        t->out_len = t->out_pos = 0;
    }
}

void sa_tls_conn_close_notify(sa_tls *t)
{
    pthread_mutex_lock(&t->lock);
    /* 0 means "sent, the peer's not yet seen": all we want. */
    if (atomic_load(&t->state) == SA_TLS_STATE_ESTABLISHED && SSL_shutdown(t->ssl) < 0)
        ERR_clear_error();
    pthread_mutex_unlock(&t->lock);
}
