#include "sa_tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* OpenSSL's own socket BIO writes with write(), so a peer that has gone
 * away would kill the program with SIGPIPE; this one sends with
 * MSG_NOSIGNAL, leaving the process's signal dispositions alone. Its
 * method table is made once and lives as long as the process, since
 * every connection's BIO refers to it. */
static BIO_METHOD *socket_method;
static pthread_once_t socket_method_once = PTHREAD_ONCE_INIT;

static int bio_fd(BIO *b)
{
    return (int)(intptr_t)BIO_get_data(b);
}

static int would_block(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

static int socket_write(BIO *b, const char *data, int len)
{
    BIO_clear_retry_flags(b);
    ssize_t n = send(bio_fd(b), data, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && would_block(errno))
        BIO_set_retry_write(b);
    return (int)n;
}

static int socket_read(BIO *b, char *data, int len)
{
    BIO_clear_retry_flags(b);
    ssize_t n = recv(bio_fd(b), data, (size_t)len, 0);
    if (n < 0 && would_block(errno))
        BIO_set_retry_read(b);
    return (int)n;
}

static long socket_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Nothing is buffered here, so a flush is always complete; every other
     * request is one a plain socket does not support either. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void make_socket_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sa_socket");
    if (!m)
        return;
    if (!BIO_meth_set_write(m, socket_write) || !BIO_meth_set_read(m, socket_read) ||
        !BIO_meth_set_ctrl(m, socket_ctrl)) {
        BIO_meth_free(m);
        return;
    }
    socket_method = m;
}

static BIO *socket_bio(int fd)
{
    if (pthread_once(&socket_method_once, make_socket_method) != 0 || !socket_method)
        return NULL;
    BIO *b = BIO_new(socket_method);
    if (!b)
        return NULL;
    BIO_set_data(b, (void *)(intptr_t)fd);
    BIO_set_init(b, 1);
    return b;
}

/* OpenSSL's reason for the last failure on this thread, or `fallback`. */
static const char *openssl_reason(const char *fallback)
{
    const char *reason = ERR_reason_error_string(ERR_peek_last_error());
    return reason ? reason : fallback;
}

static int is_ip_literal(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

static SSL_CTX *new_context(const sa_client_tls *tls, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", openssl_reason("out of memory"));
        return NULL;
    }
    /* The protocol frames its own messages, so a connection cut without
     * close_notify cannot pass off a truncated frame as whole: take it as
     * an ordinary close, as for TCP. Renegotiation is never needed. */
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        snprintf(err, errlen, "cannot require TLS 1.2: %s", openssl_reason("unknown error"));
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    /* Writes of any size go out in pieces as the socket takes them, and a
     * retried write may come from a buffer that has moved. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (tls->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (tls->ca_file ? !SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL)
                     : !SSL_CTX_set_default_verify_paths(ctx)) {
        snprintf(err, errlen, "cannot load the CA certificates from %s: %s",
                 tls->ca_file ? tls->ca_file : "the system's default store",
                 openssl_reason("unknown error"));
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL *sa_tls_client_new(const sa_client_tls *tls, int fd, const char *host, char *err,
                       size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = new_context(tls, err, errlen); /* ours until the SSL holds it */
    if (!ctx)
        return NULL;
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL keeps its own reference */
    if (!ssl) {
        snprintf(err, errlen, "cannot create a TLS session: %s", openssl_reason("out of memory"));
        return NULL;
    }
    int ip = is_ip_literal(host);
    /* SNI carries host names only (RFC 6066). */
    if (!ip && !SSL_set_tlsext_host_name(ssl, host)) {
        snprintf(err, errlen, "cannot use '%s' as TLS server name: %s", host,
                 openssl_reason("invalid name"));
        goto fail;
    }
    if (!tls->insecure &&
        (ip ? !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
            : !SSL_set1_host(ssl, host))) {
        snprintf(err, errlen, "cannot check the certificate against '%s': %s", host,
                 openssl_reason("invalid host"));
        goto fail;
    }
    BIO *bio = socket_bio(fd);
    if (!bio) {
        snprintf(err, errlen, "cannot create a TLS socket BIO: %s",
                 openssl_reason("out of memory"));
        goto fail;
    }
    SSL_set_bio(ssl, bio, bio); /* the SSL owns the BIO from here */
    SSL_set_connect_state(ssl);
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

/* Classifies a failed SSL call. Fatal ones also make the later
 * sa_tls_client_close_notify a no-op, as OpenSSL requires after them. */
static int classify(SSL *ssl, int rc, const char *what, char *err, size_t errlen)
{
    int e = errno;
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return SA_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return SA_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        SSL_set_quiet_shutdown(ssl, 1);
        return SA_IO_CLOSED;
    case SSL_ERROR_SYSCALL:
        SSL_set_quiet_shutdown(ssl, 1);
        if (ERR_peek_error() == 0) {
            if (e == 0 || e == EPIPE)
                return SA_IO_CLOSED;
            if (e == ECONNRESET)
                return SA_IO_RESET;
            snprintf(err, errlen, "%s: %s", what, strerror(e));
            return SA_IO_FAILED;
        }
        break;
    default:
        SSL_set_quiet_shutdown(ssl, 1);
        break;
    }
    snprintf(err, errlen, "%s: %s", what, openssl_reason("unknown error"));
    return SA_IO_FAILED;
}

int sa_tls_client_handshake(SSL *ssl, char *err, size_t errlen, int *refused)
{
    *refused = 0;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(ssl);
    if (rc == 1)
        return SA_IO_DONE;
    int wrong_version = ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_WRONG_VERSION_NUMBER;
    int result = classify(ssl, rc, "TLS handshake failed", err, errlen);
    if (result == SA_IO_FAILED) {
        long verdict = SSL_get_verify_result(ssl);
        if (verdict != X509_V_OK) {
            *refused = 1;
            snprintf(err, errlen, "certificate verify failed: %s",
                     X509_verify_cert_error_string(verdict));
        } else if (wrong_version) {
            /* What a server that does not speak TLS answers looks like. */
            snprintf(err, errlen, "TLS handshake failed: the server does not speak TLS "
                                  "(wrong version number); is this its TLS port?");
        }
    } else if (result == SA_IO_CLOSED || result == SA_IO_RESET) {
        snprintf(err, errlen, "the server %s the connection during the TLS handshake",
                 result == SA_IO_CLOSED ? "closed" : "reset");
        result = SA_IO_FAILED;
    }
    return result;
}

ssize_t sa_tls_client_read(SSL *ssl, void *buf, size_t len, char *err, size_t errlen)
{
    ERR_clear_error();
    errno = 0;
    size_t got = 0;
    int rc = SSL_read_ex(ssl, buf, len, &got);
    if (rc == 1)
        return (ssize_t)got;
    return classify(ssl, rc, "TLS read failed", err, errlen);
}

ssize_t sa_tls_client_write(SSL *ssl, const void *buf, size_t len, char *err, size_t errlen)
{
    ERR_clear_error();
    errno = 0;
    size_t done = 0;
    int rc = SSL_write_ex(ssl, buf, len, &done);
    if (rc == 1)
        return (ssize_t)done;
    return classify(ssl, rc, "TLS write failed", err, errlen);
}

int sa_tls_client_has_pending(const SSL *ssl)
{
    return SSL_pending(ssl) > 0 || SSL_has_pending(ssl);
}

void sa_tls_client_close_notify(SSL *ssl)
{
    if (!SSL_is_init_finished(ssl))
        return;
    ERR_clear_error();
    /* Best effort: a full socket or a peer already gone just means the
     * close_notify is not sent; the connection ends either way. */
    (void)SSL_shutdown(ssl);
    ERR_clear_error();
}

int sa_tls_client_check_ca_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r"); /* ours; closed below */
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    (void)fclose(f); /* opened for reading only: nothing to lose */
    ERR_clear_error();
    X509_STORE *store = X509_STORE_new(); /* ours; freed below */
    if (!store) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int ok = X509_STORE_load_file(store, path);
    X509_STORE_free(store);
    if (!ok) {
        snprintf(err, errlen, "%s holds no usable PEM certificate: %s", path,
                 openssl_reason("no certificate found"));
        ERR_clear_error();
        return -1;
    }
    return 0;
}
