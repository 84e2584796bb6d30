/* The server's side of TLS (PROTOCOL.md §10, README [tls]): the settings
 * checked at start and with -t, and the listener driven by a bare OpenSSL
 * client, so that nothing here depends on the client library. The
 * certificates are made by the test itself. Run with server.engine set to
 * argv[1]. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "codec.h"
#include "harness.h"

#ifndef SA_TEST_SYNCASYNCD
#error "SA_TEST_SYNCASYNCD must be defined by the build"
#endif

#define RUN_MS 15000
/* A receive that should succeed at once, or end at once. */
#define TLS_IO_MS 5000

/* ---- certificates ------------------------------------------------------ */

/* Writes NAME.pem (self-signed, for 127.0.0.1) and NAME.key into the test's
 * folder; returns the folder-relative base name's full path prefix. */
static const char *make_cert(const char *name)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    if (!key || !cert)
        h_fail("cannot make a key or certificate");
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME *subject = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1",
                               -1, -1, 0);
    X509_set_issuer_name(cert, subject);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
    if (!san || !X509_add_ext(cert, san, -1) || !X509_sign(cert, key, EVP_sha256()))
        h_fail("cannot sign a test certificate");
    X509_EXTENSION_free(san);
    const char *base = h_fmt("%s/%s", h_tempdir(), name);
    FILE *pem = fopen(h_fmt("%s.pem", base), "w");
    FILE *pkey = fopen(h_fmt("%s.key", base), "w");
    if (!pem || !pkey || !PEM_write_X509(pem, cert) ||
        !PEM_write_PrivateKey(pkey, key, NULL, NULL, 0, NULL, NULL))
        h_fail("cannot write %s.pem / %s.key", base, base);
    fclose(pem);
    fclose(pkey);
    X509_free(cert);
    EVP_PKEY_free(key);
    return base;
}

/* An INI with a TLS listener on port 0 and the given [tls] lines. */
static const char *tls_ini(const char *name, const char *server_extra, const char *tls_section)
{
    return h_write_file(name, h_fmt("[server]\n"
                                    "plugins = chat echo\n"
                                    "tls_listen = 127.0.0.1:0\n"
                                    "%s"
                                    "%s",
                                    server_extra, tls_section));
}

/* ---- a bare TLS client -------------------------------------------------- */

typedef struct tls_client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} tls_client;

static tls_client *open_tcp(const char *port)
{
    tls_client *c = calloc(1, sizeof *c);
    if (!c)
        h_fail("out of memory");
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval limit = {.tv_sec = TLS_IO_MS / 1000};
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) != 0)
        h_fail("cannot connect to 127.0.0.1:%s", port);
    return c;
}

static void close_client(tls_client *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    free(c);
}

/* Handshakes with the server, trusting `ca` and checking the name
 * 127.0.0.1, with the protocol versions limited to [min, max]. Returns 1
 * when it succeeded. */
static int tls_handshake(tls_client *c, const char *ca, int min_version, int max_version)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx || SSL_CTX_load_verify_locations(c->ctx, ca, NULL) != 1)
        h_fail("cannot load the CA %s", ca);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    /* Below the default security level: TLS 1.1 must be offered at all. */
    SSL_CTX_set_security_level(c->ctx, 0);
    SSL_CTX_set_min_proto_version(c->ctx, min_version);
    SSL_CTX_set_max_proto_version(c->ctx, max_version);
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) || !SSL_set1_host(c->ssl, "127.0.0.1"))
        h_fail("cannot set up a TLS client");
    int ok = SSL_connect(c->ssl) == 1;
    ERR_clear_error();
    return ok;
}

static tls_client *tls_connect(const char *port, const char *ca, int version)
{
    tls_client *c = open_tcp(port);
    if (!tls_handshake(c, ca, version, version))
        h_fail("the TLS handshake with port %s failed", port);
    return c;
}

static void tls_send(tls_client *c, const char *json)
{
    sa_frame *frame = sa_frame_from_text(json, strlen(json));
    if (!frame)
        h_fail("out of memory");
    int ok = SSL_write(c->ssl, frame->bytes, (int)frame->len) == (int)frame->len;
    sa_frame_unref(frame);
    if (!ok)
        h_fail("writing a frame over TLS failed");
}

static void tls_read_exactly(tls_client *c, unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        int n = SSL_read(c->ssl, buf + got, (int)(len - got));
        if (n <= 0)
            h_fail("the TLS connection ended after %zu of %zu bytes", got, len);
        got += (size_t)n;
    }
}

/* The next frame (parsed; the harness frees it). */
static cJSON *tls_recv(tls_client *c)
{
    unsigned char head[4];
    tls_read_exactly(c, head, 4);
    size_t len = (size_t)head[0] << 24 | (size_t)head[1] << 16 | (size_t)head[2] << 8 | head[3];
    char *payload = malloc(len + 1);
    if (!payload)
        h_fail("out of memory for a %zu-byte frame", len);
    tls_read_exactly(c, (unsigned char *)payload, len);
    payload[len] = '\0';
    cJSON *frame = cJSON_Parse(payload);
    free(payload);
    if (!frame)
        h_fail("a frame over TLS is not JSON");
    return h_keep(frame);
}

static cJSON *tls_expect(tls_client *c, const char *type)
{
    cJSON *frame = tls_recv(c);
    h_assert_str(frame, "type", type);
    return frame;
}

/* Reads plain bytes until EOF; fails on data or when it takes longer than
 * within_ms. */
static void expect_eof_without_data(int fd, int within_ms, const char *what)
{
    int64_t start = h_now_ms();
    unsigned char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    int64_t took = h_now_ms() - start;
    if (n > 0)
        h_fail("%s: the server sent %zd bytes (first 0x%02x)", what, n, buf[0]);
    if (n < 0)
        h_fail("%s: the server did not close the connection (waited %lld ms)", what,
               (long long)took);
    if (took > within_ms)
        h_fail("%s: closed only after %lld ms", what, (long long)took);
}

/* ---- configuration ----------------------------------------------------- */

static void expect_config_error(const char *ini, const char *const *extra, const char *needle1,
                                const char *needle2, const char *what)
{
    for (int check = 0; check < 2; check++) {
        const char *argv[16];
        size_t n = 0;
        argv[n++] = SA_TEST_SYNCASYNCD;
        argv[n++] = "-o";
        argv[n++] = h_fmt("server.engine=%s", h_engine);
        argv[n++] = "-c";
        argv[n++] = ini;
        for (size_t i = 0; extra && extra[i]; i++)
            argv[n++] = extra[i];
        if (check)
            argv[n++] = "-t";
        argv[n] = NULL;
        const char *out = NULL, *err = NULL;
        int status = h_run(argv, RUN_MS, &out, &err);
        const char *all = h_fmt("%s%s", out, err);
        if (status != 2 || !strstr(all, needle1) || (needle2 && !strstr(all, needle2)))
            h_fail("%s%s: expected exit 2 naming \"%s\" and \"%s\"; status %d, output:\n%s", what,
                   check ? " (-t)" : "", needle1, needle2 ? needle2 : "", status, all);
    }
}

static void test_tls_settings(void **state)
{
    (void)state;
    const char *srv = make_cert("server");
    const char *other = make_cert("other");
    const char *good = h_fmt("[tls]\ncert = %s.pem\nkey = %s.key\n", srv, srv);

    const char *argv[] = {SA_TEST_SYNCASYNCD, "-o", h_fmt("server.engine=%s", h_engine), "-c",
                          tls_ini("good.ini", "", good), "-t", NULL};
    const char *out = NULL, *err = NULL;
    int status = h_run(argv, RUN_MS, &out, &err);
    if (status != 0)
        h_fail("-t with a usable certificate: status %d\n%s%s", status, out, err);

    const char *ini = tls_ini("nocert.ini", "", "[tls]\ncert = missing.pem\nkey = missing.key\n");
    expect_config_error(ini, NULL, h_fmt("%s:5: [tls] cert", ini), "missing.pem",
                        "a certificate file that does not exist");

    ini = tls_ini("mismatch.ini", "", h_fmt("[tls]\ncert = %s.pem\nkey = %s.key\n", srv, other));
    expect_config_error(ini, NULL, h_fmt("%s:6: [tls] key", ini), "other.key",
                        "a key that is not the certificate's");

    ini = tls_ini("garbage.ini", "", h_fmt("[tls]\ncert = %s\nkey = %s.key\n", ini, srv));
    expect_config_error(ini, NULL, h_fmt("%s:5: [tls] cert", ini), NULL,
                        "a certificate file that is no PEM");

    ini = tls_ini("notls.ini", "", "");
    expect_config_error(ini, NULL, h_fmt("%s:3: [server] tls_listen", ini), "[tls]",
                        "tls_listen without a [tls] section");

    ini = tls_ini("badhost.ini", "", good);
    expect_config_error(ini, (const char *const[]){"-o", "server.tls_listen=nowhere", NULL},
                        "-o server.tls_listen", "nowhere", "tls_listen that is not HOST:PORT");

    static const char *const bad_timeouts[] = {"0", "3601", "soon"};
    for (size_t i = 0; i < sizeof bad_timeouts / sizeof *bad_timeouts; i++) {
        ini = tls_ini(h_fmt("timeout%zu.ini", i), "",
                      h_fmt("%shandshake_timeout = %s\n", good, bad_timeouts[i]));
        expect_config_error(ini, NULL, h_fmt("%s:7: [tls] handshake_timeout", ini), NULL,
                            h_fmt("handshake_timeout = %s", bad_timeouts[i]));
    }
    ini = tls_ini("unknown.ini", "", h_fmt("%sciphers = ALL\n", good));
    expect_config_error(ini, NULL, h_fmt("%s:7", ini), "ciphers", "an unknown key in [tls]");
}

/* ---- the listener ------------------------------------------------------- */

/* A daemon serving TLS only (its one "listening on" line is the TLS one),
 * with the given extra overrides (NULL-terminated). */
static h_daemon *start_tls_daemon(const char *base, const char *const *extra)
{
    const char *ini = tls_ini("tls.ini", "listen =\n",
                              h_fmt("[tls]\ncert = %s.pem\nkey = %s.key\n", base, base));
    const char *overrides[16];
    size_t n = 0;
    overrides[n++] = "server.listen=";
    for (size_t i = 0; extra && extra[i]; i++)
        overrides[n++] = extra[i];
    overrides[n] = NULL;
    return h_daemon_start(ini, overrides);
}

static void test_tls_chat_both_versions(void **state)
{
    (void)state;
    const char *base = make_cert("server");
    const char *ca = h_fmt("%s.pem", base);
    h_daemon *d = start_tls_daemon(base, (const char *const[]){"chat.rate=0", NULL});
    const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (size_t v = 0; v < 2; v++) {
        tls_client *alice = tls_connect(h_daemon_port(d), ca, versions[v]);
        tls_client *bob = tls_connect(h_daemon_port(d), ca, versions[v]);
        tls_send(alice, "{\"type\":\"hello\",\"proto\":1,\"name\":\"alice\"}");
        h_assert_str(tls_expect(alice, "ok"), "name", "alice");
        tls_send(bob, "{\"type\":\"hello\",\"proto\":1,\"name\":\"bob\"}");
        h_assert_str(tls_expect(bob, "ok"), "name", "bob");
        /* Several records per frame and many frames back to back. */
        char *text = malloc(16001);
        if (!text)
            h_fail("out of memory");
        memset(text, 'x', 16000);
        text[16000] = '\0';
        for (int i = 0; i < 20; i++)
            tls_send(alice, h_fmt("{\"type\":\"msg\",\"id\":%d,\"text\":\"%d%s\"}", i + 1, i,
                                  text));
        for (int i = 0; i < 20; i++) {
            cJSON *msg = tls_expect(bob, "message");
            if (strncmp(h_get_str(msg, "text"), h_fmt("%dxxx", i), strlen(h_fmt("%dxxx", i))) != 0)
                h_fail("message %d arrived out of order or damaged", i);
        }
        tls_send(bob, h_fmt("{\"type\":\"echo\",\"id\":1,\"text\":\"%s%s%s%s\"}", text, text,
                            text, text));
        if (strlen(h_get_str(tls_expect(bob, "ok"), "text")) < 64000)
            h_fail("the echo of 64000 bytes came back short");
        free(text);
        tls_send(bob, "{\"type\":\"ping\",\"ts\":7}");
        tls_expect(bob, "pong");
        tls_send(alice, "{\"type\":\"bye\"}");
        close_client(alice);
        close_client(bob);
    }
}

static void test_tls_plaintext_and_old_versions_refused(void **state)
{
    (void)state;
    const char *base = make_cert("server");
    h_daemon *d = start_tls_daemon(base, NULL);

    /* A plaintext hello gets nothing, not even an alert, and the
     * connection closes at once. */
    tls_client *plain = open_tcp(h_daemon_port(d));
    static const char hello[] = "\0\0\0\x2c{\"type\":\"hello\",\"proto\":1,\"name\":\"plain\"}";
    if (send(plain->fd, hello, sizeof hello - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof hello - 1))
        h_fail("cannot send a plaintext hello");
    expect_eof_without_data(plain->fd, TLS_IO_MS, "a plaintext hello on the TLS port");
    close_client(plain);

    /* TLS 1.1 and older are refused. */
    tls_client *old = open_tcp(h_daemon_port(d));
    if (tls_handshake(old, h_fmt("%s.pem", base), TLS1_VERSION, TLS1_1_VERSION))
        h_fail("the server accepted a TLS 1.1 handshake");
    close_client(old);

    /* A client that does not trust the certificate gives up; the server
     * carries on serving others. */
    const char *stranger = make_cert("stranger");
    tls_client *wary = open_tcp(h_daemon_port(d));
    if (tls_handshake(wary, h_fmt("%s.pem", stranger), TLS1_2_VERSION, TLS1_3_VERSION))
        h_fail("a client trusting another CA completed the handshake");
    close_client(wary);
    tls_client *ok = tls_connect(h_daemon_port(d), h_fmt("%s.pem", base), TLS1_3_VERSION);
    tls_send(ok, "{\"type\":\"hello\",\"proto\":1,\"name\":\"carol\"}");
    tls_expect(ok, "ok");
    close_client(ok);
    if (!h_daemon_log_contains(d, "TLS failed"))
        h_fail("the daemon did not log the failed handshakes");
}

static void test_tls_handshake_timeout(void **state)
{
    (void)state;
    const char *base = make_cert("server");
    h_daemon *d = start_tls_daemon(base, (const char *const[]){"tls.handshake_timeout=1", NULL});
    /* Silent: closed after about a second, with nothing said. */
    tls_client *silent = open_tcp(h_daemon_port(d));
    int64_t start = h_now_ms();
    expect_eof_without_data(silent->fd, TLS_IO_MS, "a silent client");
    if (h_now_ms() - start < 800)
        h_fail("a silent client was closed after %lld ms, before handshake_timeout",
               (long long)(h_now_ms() - start));
    close_client(silent);
    /* A completed handshake is not subject to it: the client stays. */
    tls_client *c = tls_connect(h_daemon_port(d), h_fmt("%s.pem", base), TLS1_3_VERSION);
    h_sleep_ms(1500);
    tls_send(c, "{\"type\":\"hello\",\"proto\":1,\"name\":\"slow\"}");
    tls_expect(c, "ok");
    close_client(c);
    if (!h_daemon_log_contains(d, "no TLS handshake within"))
        h_fail("the daemon did not log the handshake timeout");
}

static void test_tls_admission_applies(void **state)
{
    (void)state;
    const char *base = make_cert("server");
    const char *ca = h_fmt("%s.pem", base);
    h_daemon *d = start_tls_daemon(base, (const char *const[]){"server.max_clients=1", NULL});
    tls_client *first = tls_connect(h_daemon_port(d), ca, TLS1_3_VERSION);
    tls_send(first, "{\"type\":\"hello\",\"proto\":1,\"name\":\"first\"}");
    tls_expect(first, "ok");
    /* Over the limit before any handshake: closed without a word. */
    tls_client *second = open_tcp(h_daemon_port(d));
    if (tls_handshake(second, ca, TLS1_2_VERSION, TLS1_3_VERSION))
        h_fail("a connection over max_clients completed the TLS handshake");
    close_client(second);
    tls_send(first, "{\"type\":\"ping\",\"ts\":1}");
    tls_expect(first, "pong");
    close_client(first);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_tls_server");
    const struct CMUnitTest tests[] = {
        H_TEST(test_tls_settings),
        H_TEST(test_tls_chat_both_versions),
        H_TEST(test_tls_plaintext_and_old_versions_refused),
        H_TEST(test_tls_handshake_timeout),
        H_TEST(test_tls_admission_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
