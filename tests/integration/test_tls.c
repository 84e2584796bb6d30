/* TLS (INTERFACE.md: tls_listen, [tls], the tools' --tls --ca --insecure)
 * on the engine named by argv[1]: the client library in both modes,
 * sa-client, sa-send and sa-recv against a TLS listener with the test
 * certificates of tests/fixtures/tls (made by its make-certs), refused
 * certificates, and what the TLS listener does with clients that do not
 * speak TLS. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "harness.h"

#ifndef SA_TEST_TLS_DIR
#error "SA_TEST_TLS_DIR (tests/fixtures/tls) must be defined by the build"
#endif
#ifndef SA_TEST_SA_CLIENT
#error "SA_TEST_SA_CLIENT (path of sa-client) must be defined by the build"
#endif
#ifndef SA_TEST_SA_SEND
#error "SA_TEST_SA_SEND (path of sa-send) must be defined by the build"
#endif
#ifndef SA_TEST_SA_RECV
#error "SA_TEST_SA_RECV (path of sa-recv) must be defined by the build"
#endif
#ifndef SA_TEST_TIME_SCALE
#error "SA_TEST_TIME_SCALE must be defined by the build"
#endif

#define CA SA_TEST_TLS_DIR "/ca.pem"
#define WRONG_CA SA_TEST_TLS_DIR "/wrong-ca.pem"
/* A tool moving a few MiB, or failing, ends within this. */
#define TOOL_MS (20000 * SA_TEST_TIME_SCALE)
/* A refused or impossible TLS connection ends the tool within this. */
#define REFUSAL_MS (5000 * SA_TEST_TIME_SCALE)
/* Far longer than every wait below, so that they never explain a close;
 * the handshake timeout is 1 s only where that is tested, since a client
 * under AddressSanitizer on a loaded machine may need longer. */
#define HELLO_TIMEOUT_S 30
#define HANDSHAKE_TIMEOUT_S 20
#define TRANSFER_SIZE ((size_t)3 << 20)

static const sa_client_tls verified = {.ca_file = CA};

/* A daemon with a TLS listener on `tls_host` beside the plain one. */
static h_daemon *start_daemon_with(const char *tls_host, const char *plugins,
                                   int handshake_timeout_s)
{
    return h_daemon_startv(NULL, h_fmt("server.tls_listen=%s:0", tls_host),
                           "tls.cert=" SA_TEST_TLS_DIR "/server.pem",
                           "tls.key=" SA_TEST_TLS_DIR "/server.key",
                           h_fmt("tls.handshake_timeout=%d", handshake_timeout_s),
                           h_fmt("server.hello_timeout=%d", HELLO_TIMEOUT_S),
                           h_fmt("server.plugins=%s", plugins),
                           h_fmt("file.spool_dir=%s", h_tempdir()), NULL);
}

static h_daemon *start_tls_daemon(const char *tls_host, const char *plugins)
{
    return start_daemon_with(tls_host, plugins, HANDSHAKE_TIMEOUT_S);
}

/* Waits until `name` is (online = 1) or is not (0) a connected user,
 * asking through `probe` with a dm that fails with no_such_user. */
static void wait_user(sa_client *probe, const char *name, int online)
{
    const char *req = h_fmt("{\"type\":\"dm\",\"to\":\"%s\",\"text\":\"are you there\"}", name);
    int64_t deadline = h_now_ms() + 10000 * SA_TEST_TIME_SCALE;
    for (;;) {
        cJSON *reply = h_request(probe, req);
        if ((strcmp(h_get_str(reply, "type"), "ok") == 0) == online)
            return;
        if (h_now_ms() > deadline)
            h_fail("%s is still %s", name, online ? "offline" : "online");
        h_sleep_ms(50);
    }
}

static void expect_in(const char *text, const char *needle, const char *what)
{
    if (!strstr(text, needle))
        h_fail("%s should contain \"%s\"; it is:\n%s", what, needle, text);
}

static void expect_not_in(const char *text, const char *needle, const char *what)
{
    if (strstr(text, needle))
        h_fail("%s should not contain \"%s\"; it is:\n%s", what, needle, text);
}

/* ---- the libev client, driven from the test's own loop -------------------- */

typedef struct async_peer {
    struct ev_loop *loop;
    sa_client_async *conn;
    cJSON *frames; /* every frame received, in order (kept by the harness) */
    const char *closed; /* on_close's reason, copied; NULL while open */
} async_peer;

static void peer_on_frame(sa_client_async *c, const cJSON *frame, void *arg)
{
    (void)c;
    async_peer *p = arg;
    cJSON *copy = cJSON_Duplicate(frame, 1);
    if (!copy || !cJSON_AddItemToArray(p->frames, copy)) {
        cJSON_Delete(copy);
        p->closed = "out of memory keeping a frame";
    }
}

static void peer_on_close(sa_client_async *c, const char *reason, void *arg)
{
    (void)c;
    async_peer *p = arg;
    p->closed = h_fmt("%s", reason);
}

static void wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs the loop until the peer has a frame of `type` (returned, the first
 * one not taken before) or the time is up. */
static const cJSON *peer_expect(async_peer *p, const char *type, int timeout_ms)
{
    ev_timer tick;
    ev_timer_init(&tick, wake, 0.02, 0.02);
    ev_timer_start(p->loop, &tick);
    int64_t deadline = h_now_ms() + timeout_ms;
    const cJSON *found = NULL;
    while (!found && !p->closed && h_now_ms() < deadline) {
        ev_run(p->loop, EVRUN_ONCE);
        cJSON *f;
        cJSON_ArrayForEach(f, p->frames)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(f, "type");
            if (!found && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "taken")) &&
                cJSON_IsString(t) && strcmp(t->valuestring, type) == 0 &&
                cJSON_AddTrueToObject(f, "taken"))
                found = f;
        }
    }
    ev_timer_stop(p->loop, &tick);
    if (!found)
        h_fail("the libev client got no \"%s\" within %d ms (%s); it got %s", type, timeout_ms,
               p->closed ? p->closed : "still open", h_json(p->frames));
    return found;
}

static void close_peer(void *arg)
{
    async_peer *p = arg;
    sa_client_async_close(p->conn);
    ev_loop_destroy(p->loop);
    free(p);
}

/* Connects a libev client with TLS to 127.0.0.1:port and says hello. */
static async_peer *peer_login(const char *port, const char *name)
{
    async_peer *p = calloc(1, sizeof *p);
    if (!p || !(p->loop = ev_loop_new(EVFLAG_AUTO))) {
        free(p);
        h_fail("cannot make an event loop");
    }
    p->frames = h_keep(cJSON_CreateArray());
    if (!p->frames) {
        ev_loop_destroy(p->loop);
        free(p);
        h_fail("out of memory");
    }
    const sa_client_async_callbacks cb = {peer_on_frame, peer_on_close};
    char err[256] = "";
    p->conn = sa_client_async_connect_tls(p->loop, "127.0.0.1", port, &verified, H_REPLY_MS, &cb,
                                          p, err, sizeof err);
    if (!p->conn) {
        ev_loop_destroy(p->loop);
        free(p);
        h_fail("libev client: cannot connect with TLS to port %s: %s", port, err);
    }
    h_own(p, close_peer);
    cJSON *hello = h_keep(cJSON_CreateObject());
    if (!cJSON_AddStringToObject(hello, "type", "hello") ||
        !cJSON_AddStringToObject(hello, "name", name) ||
        !cJSON_AddNumberToObject(hello, "proto", 1) || sa_client_async_request(p->conn, hello) < 0)
        h_fail("libev client: cannot queue hello");
    const cJSON *reply = peer_expect(p, "ok", H_REPLY_MS);
    h_assert_str(reply, "re", "hello");
    return p;
}

/* ---- tests ------------------------------------------------------------------- */

/* Plain, blocking TLS and libev TLS clients chat on one server. */
static void test_chat_tls_and_plain(void **state)
{
    (void)state;
    h_daemon *d = start_tls_daemon("127.0.0.1", "chat");
    const char *tls_port = h_daemon_tls_port(d);
    if (strcmp(tls_port, h_daemon_port(d)) == 0)
        h_fail("the TLS listener has the plain one's port %s", tls_port);
    sa_client *plain = h_login(d, "plain");
    sa_client *blocking = h_login_tls(tls_port, "blocking", &verified);
    async_peer *evented = peer_login(tls_port, "evented");

    h_request_ok(blocking, "{\"type\":\"msg\",\"text\":\"from the blocking client\"}");
    const cJSON *m = peer_expect(evented, "message", H_REPLY_MS);
    h_assert_str(m, "from", "blocking");
    h_assert_str(m, "text", "from the blocking client");
    h_assert_str(h_expect(plain, "message", H_REPLY_MS), "text", "from the blocking client");

    cJSON *msg = h_keep(cJSON_Parse("{\"type\":\"msg\",\"text\":\"from the libev client\"}"));
    if (sa_client_async_request(evented->conn, msg) < 0)
        h_fail("libev client: cannot queue a msg");
    h_assert_str(peer_expect(evented, "ok", H_REPLY_MS), "re", "msg");
    m = h_expect(blocking, "message", H_REPLY_MS);
    h_assert_str(m, "from", "evented");
    h_assert_str(m, "text", "from the libev client");
    h_assert_str(h_expect(plain, "message", H_REPLY_MS), "from", "evented");

    h_request_ok(plain, "{\"type\":\"msg\",\"text\":\"from the plain client\"}");
    h_assert_str(h_expect(blocking, "message", H_REPLY_MS), "from", "plain");
    h_assert_str(peer_expect(evented, "message", H_REPLY_MS), "from", "plain");
}

/* sa-client --tls, verified, and --insecure with a CA that does not sign
 * the server's certificate. */
static void sa_client_chat(const char *mode)
{
    h_daemon *d = start_tls_daemon("127.0.0.1", "chat");
    const char *tls_port = h_daemon_tls_port(d);
    sa_client *probe = h_login(d, "probe");
    static const char *const verified_args[] = {"--tls", "--ca", CA, NULL};
    static const char *const insecure_args[] = {"--tls", "--ca", WRONG_CA, "--insecure", NULL};
    static const struct {
        const char *name;
        const char *const *tls_args;
    } runs[] = {{"verified", verified_args}, {"insecure", insecure_args}};
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        const char *argv[16] = {SA_TEST_SA_CLIENT, "--port", tls_port, "--name", runs[i].name,
                                "--mode", mode};
        size_t n = 7;
        for (const char *const *a = runs[i].tls_args; *a; a++)
            argv[n++] = *a;
        h_proc *p = h_spawn(argv);
        wait_user(probe, runs[i].name, 1);
        h_proc_expect_line(p, "<probe> are you there", H_REPLY_MS);
        h_proc_write_line(p, h_fmt("hello from %s", runs[i].name));
        cJSON *m = h_expect(probe, "message", H_REPLY_MS);
        h_assert_str(m, "from", runs[i].name);
        h_assert_str(m, "text", h_fmt("hello from %s", runs[i].name));
        h_proc_close_stdin(p);
        if (h_proc_wait(p, TOOL_MS) != 0)
            h_fail("sa-client %s ended with a failure; stderr:\n%s", runs[i].name,
                   h_proc_stderr(p));
        if (i == 1)
            expect_in(h_proc_stderr(p), "warning: --insecure", "sa-client --insecure's stderr");
        else
            expect_not_in(h_proc_stderr(p), "warning", "sa-client's stderr");
    }
}

static void test_sa_client_sync(void **state)
{
    (void)state;
    sa_client_chat("sync");
}

static void test_sa_client_async(void **state)
{
    (void)state;
    sa_client_chat("async");
}

static const char *sha256_hex(const unsigned char *data, size_t len)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return h_fmt("%s", hex);
}

/* A few MiB of printable pseudo-random text (h_write_file takes a
 * string); returns its SHA-256. */
static const char *write_transfer_file(const char *name)
{
    char *text = malloc(TRANSFER_SIZE + 1);
    if (!text)
        h_fail("out of memory");
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < TRANSFER_SIZE; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        text[i] = (char)(' ' + x % 95);
    }
    text[TRANSFER_SIZE] = '\0';
    h_write_file(name, text);
    const char *sha = sha256_hex((const unsigned char *)text, TRANSFER_SIZE);
    free(text);
    return sha;
}

/* sa-send to a user logged in with TLS, then sa-recv as that user; the
 * async run names the host "localhost" (checked against the certificate's
 * DNS name and sent as SNI), the sync one 127.0.0.1 (its IP address). */
static void file_transfer(const char *mode)
{
    h_daemon *d = start_tls_daemon("127.0.0.1", "chat presence file");
    const char *tls_port = h_daemon_tls_port(d);
    const char *host = strcmp(mode, "async") == 0 ? "localhost" : "127.0.0.1";
    sa_client *probe = h_login(d, "probe");
    sa_client *bob = h_login_tls(tls_port, "bob", &verified);
    const char *sha = write_transfer_file("big.txt");
    const char *path = h_fmt("%s/big.txt", h_tempdir());

    const char *out = NULL, *err = NULL;
    int status = h_run((const char *const[]){SA_TEST_SA_SEND, "--host", host, "--port", tls_port,
                                             "--name", "alice", "--mode", mode, "--tls", "--ca",
                                             CA, "--to", "bob", path, NULL},
                       TOOL_MS, &out, &err);
    if (status != 0)
        h_fail("sa-send --tls exited %d; stderr:\n%s", status, err);
    char file_id[128], sent_sha[128];
    if (sscanf(out, "%127s %127s big.txt", file_id, sent_sha) != 2 || strcmp(sent_sha, sha) != 0)
        h_fail("sa-send printed \"%s\", expected a file id, %s and big.txt", out, sha);
    /* Presence events come and go before it. */
    int64_t deadline = h_now_ms() + H_REPLY_MS;
    cJSON *offer;
    do {
        if (h_now_ms() > deadline)
            h_fail("bob got no file_offer");
        offer = h_recv(bob, H_REPLY_MS);
    } while (strcmp(h_get_str(offer, "type"), "file_offer") != 0);
    h_assert_str(offer, "file_id", file_id);
    h_client_close(bob);
    wait_user(probe, "bob", 0);

    const char *dir = h_fmt("%s/received", h_tempdir());
    if (mkdir(dir, 0700) != 0)
        h_fail("mkdir %s: %s", dir, strerror(errno));
    status = h_run((const char *const[]){SA_TEST_SA_RECV, "--host", host, "--port", tls_port,
                                         "--name", "bob", "--mode", mode, "--tls", "--ca", CA,
                                         "--id", file_id, "--dir", dir, NULL},
                   TOOL_MS, &out, &err);
    if (status != 0)
        h_fail("sa-recv --tls exited %d; stderr:\n%s", status, err);
    const char *want = h_fmt("%s %s/big.txt\n", sha, dir);
    if (strcmp(out, want) != 0)
        h_fail("sa-recv printed \"%s\", expected \"%s\"", out, want);
    const char *argv[] = {"/usr/bin/sha256sum", h_fmt("%s/big.txt", dir), NULL};
    status = h_run(argv, TOOL_MS, &out, &err);
    if (status != 0 || strncmp(out, sha, strlen(sha)) != 0)
        h_fail("the received file's SHA-256 is \"%s\" (%s), expected %s", out, err, sha);
}

static void test_file_transfer_sync(void **state)
{
    (void)state;
    file_transfer("sync");
}

static void test_file_transfer_async(void **state)
{
    (void)state;
    file_transfer("async");
}

/* Runs a tool that must give up at once with exit status 1 and `why` on
 * stderr, without retrying. */
static void expect_refusal(const char *const *argv, const char *why)
{
    const char *out = NULL, *err = NULL;
    int64_t start = h_now_ms();
    int status = h_run(argv, REFUSAL_MS, &out, &err);
    const char *what = h_fmt("the stderr of %s (stdout: \"%s\")", argv[0], out);
    if (status != 1)
        h_fail("%s exited %d, expected 1; stderr:\n%s", argv[0], status, err);
    expect_in(err, why, what);
    expect_not_in(err, "reconnecting", what);
    if (h_now_ms() - start > REFUSAL_MS / 2)
        h_fail("%s took %lld ms to give up", argv[0], (long long)(h_now_ms() - start));
}

/* Certificates refused: signed by another CA; not for the address
 * connected to (the listener is on 127.0.0.2, the certificate names
 * 127.0.0.1 and localhost). */
static void refused_certificates(const char *mode)
{
    h_daemon *d = start_tls_daemon("127.0.0.1", "chat file");
    const char *port = h_daemon_tls_port(d);
    expect_refusal((const char *const[]){SA_TEST_SA_RECV, "--port", port, "--name", "bob",
                                         "--mode", mode, "--tls", "--ca", WRONG_CA, "--all",
                                         "--dir", h_tempdir(), NULL},
                   "certificate verify failed: unable to get local issuer certificate");
    expect_refusal((const char *const[]){SA_TEST_SA_CLIENT, "--port", port, "--name", "bob",
                                         "--mode", mode, "--tls", NULL},
                   "certificate verify failed");
    h_daemon_stop(d);

    d = start_tls_daemon("127.0.0.2", "chat file");
    port = h_daemon_tls_port(d);
    expect_refusal((const char *const[]){SA_TEST_SA_SEND, "--host", "127.0.0.2", "--port", port,
                                         "--name", "bob", "--mode", mode, "--tls", "--ca", CA,
                                         CA /* any regular file to send */, NULL},
                   "certificate verify failed: IP address mismatch");
    expect_refusal((const char *const[]){SA_TEST_SA_CLIENT, "--host", "127.0.0.2", "--port",
                                         port, "--name", "bob", "--mode", mode, "--tls", "--ca",
                                         CA, NULL},
                   "certificate verify failed: IP address mismatch");
}

static void test_refused_certificates_sync(void **state)
{
    (void)state;
    refused_certificates("sync");
}

static void test_refused_certificates_async(void **state)
{
    (void)state;
    refused_certificates("async");
}

/* The library says which failures are the certificate's. */
static void test_library_reports_refusal(void **state)
{
    (void)state;
    h_daemon *d = start_tls_daemon("127.0.0.1", "chat");
    const char *port = h_daemon_tls_port(d);
    char err[256] = "";
    int refused = 0;
    const sa_client_tls wrong = {.ca_file = WRONG_CA};
    sa_client *c =
        sa_client_connect_tls("127.0.0.1", port, &wrong, H_REPLY_MS, err, sizeof err, &refused);
    if (c || !refused)
        h_fail("a certificate from another CA: connected %d, refused %d (%s)", c != NULL,
               refused, err);
    expect_in(err, "certificate verify failed", "the error");

    c = sa_client_connect_tls("127.0.0.1", h_daemon_port(d), &verified, H_REPLY_MS, err,
                              sizeof err, &refused);
    if (c || refused)
        h_fail("TLS to the plain port: connected %d, refused %d (%s)", c != NULL, refused, err);
}

/* A TLS client on the plain port ends quickly with exit status 1. */
static void tls_on_plain_port(const char *mode)
{
    h_daemon *d = start_tls_daemon("127.0.0.1", "chat file");
    const char *out = NULL, *err = NULL;
    int64_t start = h_now_ms();
    int status = h_run((const char *const[]){SA_TEST_SA_RECV, "--port", h_daemon_port(d),
                                             "--name", "bob", "--mode", mode, "--tls", "--ca",
                                             CA, "--all", "--dir", h_tempdir(), NULL},
                       REFUSAL_MS, &out, &err);
    if (status != 1)
        h_fail("sa-recv --tls on the plain port exited %d, expected 1; stderr:\n%s", status, err);
    expect_in(err, "TLS", "sa-recv's stderr");
    if (h_now_ms() - start > REFUSAL_MS / 2)
        h_fail("sa-recv took %lld ms to give up", (long long)(h_now_ms() - start));
}

static void test_tls_on_plain_port_sync(void **state)
{
    (void)state;
    tls_on_plain_port("sync");
}

static void test_tls_on_plain_port_async(void **state)
{
    (void)state;
    tls_on_plain_port("async");
}

/* A TCP connection to 127.0.0.1:port, not speaking TLS. */
static int raw_connect(const char *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        h_fail("cannot connect to 127.0.0.1:%s: %s", port, strerror(e));
    }
    return fd;
}

/* Reads until the server closes fd (EOF or reset); fails after
 * timeout_ms. Returns the milliseconds it took and what came in *first
 * (the first byte received, or -1 for none). */
static int64_t wait_closed(int fd, int timeout_ms, int *first)
{
    int64_t start = h_now_ms(), deadline = start + timeout_ms;
    *first = -1;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0)
            h_fail("the server kept the connection open for %d ms", timeout_ms);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        unsigned char buf[512];
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return h_now_ms() - start;
        if (*first < 0)
            *first = buf[0];
    }
}

/* A client speaking the plain protocol to the TLS port gets no frame (at
 * most a TLS alert) and is closed at once; a client saying nothing is
 * closed after handshake_timeout (1 s), long before hello_timeout. */
static void test_non_tls_clients_on_tls_port(void **state)
{
    (void)state;
    enum { TLS_ALERT = 0x15 };
    h_daemon *d = start_daemon_with("127.0.0.1", "chat", 1);
    const char *port = h_daemon_tls_port(d);

    int fd = raw_connect(port);
    static const char hello[] = "{\"type\":\"hello\",\"name\":\"plain\",\"proto\":1}";
    unsigned char frame[4 + sizeof hello - 1] = {0, 0, 0, sizeof hello - 1};
    memcpy(frame + 4, hello, sizeof hello - 1);
    if (write(fd, frame, sizeof frame) != (ssize_t)sizeof frame) {
        close(fd);
        h_fail("cannot write the plain hello");
    }
    int first;
    int64_t took = wait_closed(fd, 3000 * SA_TEST_TIME_SCALE, &first);
    close(fd);
    if (first >= 0 && first != TLS_ALERT)
        h_fail("the plain client got bytes starting with 0x%02x, not a TLS alert", first);

    fd = raw_connect(port);
    took = wait_closed(fd, 5000 * SA_TEST_TIME_SCALE, &first);
    close(fd);
    if (took < 800 || first >= 0)
        h_fail("a silent client was closed after %lld ms (handshake_timeout is 1 s), having "
               "received %s",
               (long long)took, first >= 0 ? "bytes" : "nothing");
}

/* Option mistakes are bad usage (exit 2), found before connecting. */
static void test_usage_errors(void **state)
{
    (void)state;
    static const char *const tools[] = {SA_TEST_SA_CLIENT, SA_TEST_SA_SEND, SA_TEST_SA_RECV};
    static const struct {
        const char *args[4];
        const char *why;
    } cases[] = {
        {{"--ca", CA}, "--ca needs --tls"},
        {{"--insecure"}, "--insecure needs --tls"},
        {{"--tls", "--ca", SA_TEST_TLS_DIR "/missing.pem"}, "cannot open"},
        {{"--tls", "--ca", SA_TEST_TLS_DIR "/make-certs"}, "holds no usable PEM certificate"},
    };
    for (size_t t = 0; t < sizeof tools / sizeof *tools; t++) {
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            /* Port 1: nothing listens there, should a tool try. */
            const char *argv[12] = {tools[t], "--port", "1", "--name", "bob"};
            size_t n = 5;
            for (size_t a = 0; a < 4 && cases[i].args[a]; a++)
                argv[n++] = cases[i].args[a];
            if (strcmp(tools[t], SA_TEST_SA_SEND) == 0)
                argv[n++] = CA; /* a file to send */
            const char *err = NULL;
            int status = h_run(argv, TOOL_MS, NULL, &err);
            if (status != 2)
                h_fail("%s %s ... exited %d, expected 2; stderr:\n%s", tools[t],
                       cases[i].args[0], status, err);
            expect_in(err, cases[i].why, "the usage error");
        }
    }
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_tls");
    const struct CMUnitTest tests[] = {
        H_TEST(test_chat_tls_and_plain),
        H_TEST(test_sa_client_sync),
        H_TEST(test_sa_client_async),
        H_TEST(test_file_transfer_sync),
        H_TEST(test_file_transfer_async),
        H_TEST(test_refused_certificates_sync),
        H_TEST(test_refused_certificates_async),
        H_TEST(test_library_reports_refusal),
        H_TEST(test_tls_on_plain_port_sync),
        H_TEST(test_tls_on_plain_port_async),
        H_TEST(test_non_tls_clients_on_tls_port),
        H_TEST(test_usage_errors),
    };
    char group[64];
    snprintf(group, sizeof group, "tls/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
