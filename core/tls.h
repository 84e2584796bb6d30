/*
 * TLS on the server, one implementation for both engines (PROTOCOL.md §10).
 *
 * The core makes one SSL_CTX at start. Each connection accepted on a
 * tls_listen listener gets an sa_tls: an SSL object over two memory BIOs,
 * so that the engines keep doing their own socket I/O, blocking or not.
 * Ciphertext read from the socket goes in through sa_tls_conn_feed and
 * sa_tls_conn_read (the core's input path); frames are encrypted at write
 * time by the code that writes the socket (sa_tls_conn_encrypt), which is
 * also the only code that drains the ciphertext stream (sa_tls_conn_output),
 * so handshake records and data records leave in the order they were made.
 *
 * Thread safety: the SSL object is guarded by the sa_tls's own mutex, so a
 * reader thread and a writer thread may use one sa_tls at once. The output
 * functions (sa_tls_conn_output, sa_tls_conn_output_done) belong to the one
 * writer of the connection.
 */
#ifndef SA_TLS_H
#define SA_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include <syncasync/engine.h>

/* The server's context: TLS 1.2 and 1.3 only, no renegotiation, no
 * session tickets, the certificate chain and its key (checked to match).
 * On failure returns NULL and writes the reason into err; *bad_key is
 * "cert" or "key", the setting to blame. */
SSL_CTX *sa_tls_context_new(const char *cert_path, const char *key_path, const char **bad_key,
                            char *err, size_t errlen);

/* A server-side connection state. NULL when out of memory. */
sa_tls *sa_tls_conn_new(SSL_CTX *ctx);
void sa_tls_conn_free(sa_tls *t);

enum sa_tls_read_status {
    SA_TLS_READ_DATA,  /* *got bytes of plaintext in buf */
    SA_TLS_READ_MORE,  /* everything fed is used up: read the socket again */
    SA_TLS_READ_EOF,   /* the peer closed the TLS stream (close_notify) */
    SA_TLS_READ_FAILED /* a fatal error (the reason is in `why`); the state is FAILED */
};

/* Adds ciphertext read from the socket. Returns 0, or -1 when out of memory
 * (the state is FAILED then). */
int sa_tls_conn_feed(sa_tls *t, const unsigned char *data, size_t len);

/* Runs the handshake and decrypts what was fed, at most cap bytes per call;
 * call until it returns something other than DATA. `why` (at least 128
 * bytes) receives the reason of a failure. */
enum sa_tls_read_status sa_tls_conn_read(sa_tls *t, unsigned char *buf, size_t cap, size_t *got,
                                         char *why, size_t whylen);

/* Gives up on the connection (e.g. the handshake took too long): nothing
 * more is encrypted or handed out, not even an alert. */
void sa_tls_conn_fail(sa_tls *t);

/* The functions of the same names in sa_engine_core (syncasync/engine.h). */
int sa_tls_conn_state(sa_tls *t);
size_t sa_tls_conn_encrypt(sa_tls *t, const unsigned char *plain, size_t len);
size_t sa_tls_conn_output(sa_tls *t, const unsigned char **bytes);
void sa_tls_conn_output_done(sa_tls *t, size_t written);
void sa_tls_conn_close_notify(sa_tls *t);

#endif
