/*
 * Internal to the sa_client library: the TLS side of a client connection
 * (OpenSSL). The connection core (sa_client_core.c) calls it, so the
 * blocking and the libev front ends share this one TLS code path; neither
 * calls OpenSSL itself.
 *
 * Every function here works on a non-blocking socket and never waits: a
 * step that needs the socket readable or writable says so and is called
 * again, with the same arguments, once it is.
 */
#ifndef SA_TLS_CLIENT_H
#define SA_TLS_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "sa_client.h"

/* What a TLS step needs before it can go on, or how it ended. Byte counts
 * are returned as they are (> 0); these are all negative. */
enum sa_io_result {
    SA_IO_DONE = 0,        /* handshake only: finished */
    SA_IO_WANT_READ = -1,  /* call again once the socket is readable */
    SA_IO_WANT_WRITE = -2, /* call again once the socket is writable */
    SA_IO_CLOSED = -3,     /* the peer closed the connection */
    SA_IO_RESET = -4,      /* the peer reset the connection */
    SA_IO_FAILED = -5      /* any other failure; said why */
};

/* The session for a connected socket `fd` to `host` (a name or an IP
 * literal, what the user typed), in client mode, before the handshake:
 * TLS 1.2 at least; unless tls->insecure, the peer's chain is checked
 * against tls->ca_file (NULL: the system's trust store) and the
 * certificate must name `host` (a DNS name, or an IP address for an IP
 * literal); a name is also sent as SNI. The SSL owns its context and the
 * socket stays the caller's. NULL with a message in err on failure. */
SSL *sa_tls_client_new(const sa_client_tls *tls, int fd, const char *host, char *err,
                       size_t errlen);

/* One step of the handshake: SA_IO_DONE, a WANT, or SA_IO_FAILED with
 * the reason in err and *refused set when it was the peer's certificate
 * that failed the checks (wrong CA, expired, not for `host`): trying
 * again cannot help then. */
int sa_tls_client_handshake(SSL *ssl, char *err, size_t errlen, int *refused);

/* Reads decrypted bytes, or writes `len` bytes (accepting a partial
 * write): the count, or a negative sa_io_result with err filled for
 * SA_IO_FAILED. A WANT is retried with the same buffer and length. */
ssize_t sa_tls_client_read(SSL *ssl, void *buf, size_t len, char *err, size_t errlen);
ssize_t sa_tls_client_write(SSL *ssl, const void *buf, size_t len, char *err, size_t errlen);

/* 1 when the session holds received bytes not yet read, which the
 * socket's readiness no longer shows. */
int sa_tls_client_has_pending(const SSL *ssl);

/* Sends close_notify without waiting, once a healthy session ends. */
void sa_tls_client_close_notify(SSL *ssl);

/* Loads a CA file the way a connection will (PEM, one certificate at
 * least). Returns 0, or -1 with a message in err. For the tools' option
 * checks, so that a bad --ca is found before connecting. */
int sa_tls_client_check_ca_file(const char *path, char *err, size_t errlen);

#endif
