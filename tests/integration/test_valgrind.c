/* syncasyncd under valgrind memcheck, on the engine named by argv[1]: a
 * full chat and file scenario through the client library (auth, hello,
 * rooms, msg, dm, status, an upload and a download, an upload cut off
 * half-way, bad frames, a hello timeout, bye and plain disconnects, a
 * client over TLS and plaintext on the TLS port), then
 * SIGTERM. The daemon must exit 0: valgrind turns any memory error or any
 * definite, indirect or possible leak into exit status 99, and nothing is
 * suppressed (libev, cJSON, OpenSSL and the dlclose'd plugins leave no
 * noise; should a library ever need it, a suppressions file with a reason
 * per entry goes beside this file). Built only when valgrind is found and
 * the sanitizers are off (they cannot be combined). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "sa_download.h"
#include "sa_upload.h"

#ifndef SA_TEST_VALGRIND
#error "SA_TEST_VALGRIND (path of valgrind) must be defined by the build"
#endif
#ifndef SA_TEST_TLS_DIR
#error "SA_TEST_TLS_DIR (tests/fixtures/tls) must be defined by the build"
#endif

/* Everything runs tens of times slower under memcheck. */
#define SLOW_MS 30000
#define EXIT_MS 60000

static const char token[] = "memcheck-scenario-token";
/* printf '%s' memcheck-scenario-token | sha256sum */
#define TOKEN_SHA256 "0ec95e24fe13aeef99f8421086576e11f38b1670bd80f960b3189500c2a404aa"

/* Says hello as `name` with the token on c; fails unless it is ok. */
static sa_client *hello_with_token(sa_client *c, const char *name)
{
    cJSON *reply = NULL;
    if (sa_client_hello(c, name, token, &reply, SLOW_MS) != SA_CLIENT_OK)
        h_fail("hello as %s: %s", name, sa_client_error(c));
    h_keep(reply);
    if (strcmp(h_get_str(reply, "type"), "ok") != 0)
        h_fail("hello as %s refused: %s", name, h_json(reply));
    return c;
}

static sa_client *login_with_token(const h_daemon *d, const char *name)
{
    return hello_with_token(h_connect(d), name);
}

/* The next frame of `type` whose `key` is `want`, skipping events
 * (frames without "re") that the scenario does not look at: joins, leaves
 * and presence of the other users. */
static cJSON *expect_event(sa_client *c, const char *type, const char *key, const char *want)
{
    for (int skipped = 0; skipped < 20; skipped++) {
        cJSON *f = h_recv(c, SLOW_MS);
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(f, key);
        if (strcmp(h_get_str(f, "type"), type) == 0 && cJSON_IsString(value) &&
            strcmp(value->valuestring, want) == 0)
            return f;
        if (cJSON_GetObjectItemCaseSensitive(f, "re"))
            h_fail("expected %s, got the reply %s", type, h_json(f));
    }
    h_fail("no %s with %s %s among 20 frames", type, key, want);
}

/* The server must close the connection within SLOW_MS; events before the
 * end are skipped. */
static void expect_closed_after_events(sa_client *c)
{
    int64_t deadline = h_now_ms() + SLOW_MS;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        cJSON *f = NULL;
        int rc = sa_client_recv(c, &f, left > 0 ? (int)left : 0);
        if (rc == SA_CLIENT_CLOSED)
            return;
        if (rc != SA_CLIENT_OK)
            h_fail("waiting for the close: %s", sa_client_error(c));
        h_keep(f);
        if (cJSON_GetObjectItemCaseSensitive(f, "re"))
            h_fail("a reply instead of the close: %s", h_json(f));
    }
}

/* ---- transfers through the client library's state machines ---------------- */

static int64_t blocking_request(void *ctx, const cJSON *msg)
{
    return sa_client_send_request(ctx, msg);
}

static int blocking_send(void *ctx, const cJSON *msg)
{
    return sa_client_send(ctx, msg) == SA_CLIENT_OK ? 0 : -1;
}

typedef struct transfer_ops {
    enum sa_xfer_pump (*pump)(void *x);
    int (*on_frame)(void *x, const cJSON *frame);
    enum sa_xfer_state (*state)(const void *x);
    const char *(*error)(const void *x);
} transfer_ops;

static enum sa_xfer_pump upload_pump(void *x) { return sa_upload_pump(x); }
static int upload_on_frame(void *x, const cJSON *f) { return sa_upload_on_frame(x, f); }
static enum sa_xfer_state upload_state(const void *x) { return sa_upload_state(x); }
static const char *upload_error(const void *x) { return sa_upload_error(x); }
static const transfer_ops upload_ops = {upload_pump, upload_on_frame, upload_state, upload_error};

static enum sa_xfer_pump download_pump(void *x) { return sa_download_pump(x); }
static int download_on_frame(void *x, const cJSON *f) { return sa_download_on_frame(x, f); }
static enum sa_xfer_state download_state(const void *x) { return sa_download_state(x); }
static const char *download_error(const void *x) { return sa_download_error(x); }
static const transfer_ops download_ops = {download_pump, download_on_frame, download_state,
                                          download_error};

/* Runs the started transfer `x` on `c` until it ends, as a blocking driver
 * does. NULL when it is done, else why not (owned by the harness); the
 * caller still owns `x`. */
static const char *run_transfer(sa_client *c, const transfer_ops *ops, void *x)
{
    int64_t deadline = h_now_ms() + SLOW_MS;
    while (ops->state(x) == SA_XFER_ACTIVE) {
        if (ops->pump(x) == SA_XFER_AGAIN)
            continue;
        int64_t left = deadline - h_now_ms();
        if (left <= 0)
            return "no progress in time";
        cJSON *frame = NULL;
        int rc = sa_client_recv(c, &frame, (int)left);
        if (rc != SA_CLIENT_OK)
            return h_fmt("connection: %s", sa_client_error(c));
        ops->on_frame(x, frame); /* frames about other things are not ours */
        cJSON_Delete(frame);
    }
    return ops->state(x) == SA_XFER_DONE ? NULL : h_fmt("failed: %s", ops->error(x));
}

static const char *file_contents(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        h_fail("%s: %s", path, strerror(errno));
    static char data[1 << 18];
    *len = fread(data, 1, sizeof data, f);
    int bad = ferror(f) || !feof(f) || memchr(data, '\0', *len);
    fclose(f);
    if (bad)
        h_fail("%s: cannot read it whole as text", path);
    return h_fmt("%.*s", (int)*len, data);
}

/* alice uploads `path` to the room dev; returns the file_id. */
static const char *upload_to_dev(sa_client *alice, const char *path)
{
    char err[256];
    sa_upload *u = sa_upload_new(path, NULL, "dev", err, sizeof err);
    if (!u)
        h_fail("sa_upload_new: %s", err);
    const sa_xfer_transport t = {blocking_request, blocking_send, NULL, alice};
    sa_upload_start(u, &t, 1048576);
    const char *problem = run_transfer(alice, &upload_ops, u);
    const char *file_id = problem ? NULL : h_fmt("%s", sa_upload_file_id(u));
    sa_upload_free(u);
    if (problem)
        h_fail("upload of %s: %s", path, problem);
    return file_id;
}

/* bob downloads what `offer` offers into DIR; returns the path written. */
static const char *download_offer(sa_client *bob, const cJSON *offer, const char *dir)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        h_fail("%s: %s", dir, strerror(errno));
    const sa_download_params params = {
        .dirfd = dirfd,
        .dir_display = dir,
        .file_id = h_get_str(offer, "file_id"),
        .offered_name = h_get_str(offer, "name"),
        .offered_size = (uint64_t)h_get_num(offer, "size"),
    };
    char err[256];
    sa_download *dl = sa_download_new(&params, err, sizeof err);
    if (!dl) {
        close(dirfd);
        h_fail("sa_download_new: %s", err);
    }
    const sa_xfer_transport t = {blocking_request, blocking_send, NULL, bob};
    sa_download_start(dl, &t);
    const char *problem = run_transfer(bob, &download_ops, dl);
    const char *path = problem ? NULL : h_fmt("%s", sa_download_path(dl));
    sa_download_free(dl);
    close(dirfd);
    if (problem)
        h_fail("download of %s: %s", params.file_id, problem);
    return path;
}

/* ---- the scenario --------------------------------------------------------------- */

static h_daemon *start_under_memcheck(const char *log)
{
    const char *dir = h_tempdir();
    const char *tokens = h_write_file("tokens", "* " TOKEN_SHA256 "\n");
    const char *const wrapper[] = {
        SA_TEST_VALGRIND,
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect,possible",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--error-exitcode=99",
        h_fmt("--log-file=%s", log),
        NULL,
    };
    const char *const overrides[] = {
        "server.plugins=auth chat rooms presence file",
        h_fmt("auth.tokens_file=%s", tokens),
        h_fmt("file.spool_dir=%s/spool", dir),
        "server.tls_listen=127.0.0.1:0",
        "tls.cert=" SA_TEST_TLS_DIR "/server.pem",
        "tls.key=" SA_TEST_TLS_DIR "/server.key",
        "tls.handshake_timeout=30", /* the cryptography is slow under valgrind */
        NULL,
    };
    return h_daemon_start_wrapped(wrapper, NULL, overrides);
}

static void chat(sa_client *alice, sa_client *bob)
{
    h_request_ok(alice, "{\"type\":\"join\",\"room\":\"dev\"}");
    h_request_ok(bob, "{\"type\":\"join\",\"room\":\"dev\"}");
    expect_event(alice, "joined", "room", "dev");
    h_request_ok(alice, "{\"type\":\"topic\",\"room\":\"dev\",\"topic\":\"memcheck\"}");
    h_request_ok(alice, "{\"type\":\"rooms\"}");
    h_request_ok(alice, "{\"type\":\"who\",\"room\":\"dev\"}");
    h_request_ok(alice, "{\"type\":\"msg\",\"room\":\"dev\",\"text\":\"hello room\"}");
    expect_event(bob, "message", "text", "hello room");
    h_request_ok(alice, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"hello bob\"}");
    expect_event(bob, "message", "text", "hello bob");
    h_request_error(alice, "{\"type\":\"dm\",\"to\":\"nobody\",\"text\":\"x\"}", "no_such_user");
    h_request_ok(bob, "{\"type\":\"status\",\"status\":\"away\",\"text\":\"lunch\"}");
    expect_event(alice, "presence", "status", "away");
    h_request_ok(alice, "{\"type\":\"users\"}");
    h_request_ok(bob, "{\"type\":\"leave\",\"room\":\"lobby\"}");
}

static void files(sa_client *alice, sa_client *bob)
{
    /* Three chunks and a bit. */
    char *text = malloc(200001);
    if (!text)
        h_fail("out of memory");
    for (size_t i = 0; i < 200000; i++)
        text[i] = (char)('a' + (i * 7 + i / 13) % 26);
    text[200000] = '\0';
    const char *path = h_write_file("report.txt", text);
    free(text);

    const char *file_id = upload_to_dev(alice, path);
    cJSON *offer = expect_event(bob, "file_offer", "file_id", file_id);
    h_request_ok(bob, "{\"type\":\"files\"}");
    const char *down = h_fmt("%s/down", h_tempdir());
    if (mkdir(down, 0700) != 0)
        h_fail("mkdir %s: %s", down, strerror(errno));
    const char *saved = download_offer(bob, offer, down);
    size_t sent_len, saved_len;
    const char *sent = file_contents(path, &sent_len);
    const char *got = file_contents(saved, &saved_len);
    if (sent_len != saved_len || memcmp(sent, got, sent_len) != 0)
        h_fail("%s differs from %s", saved, path);
}

/* carol starts an upload and vanishes after one chunk. */
static void upload_cut_off(const h_daemon *d)
{
    sa_client *carol = login_with_token(d, "carol");
    cJSON *put = h_request_ok(carol, "{\"type\":\"file_put\",\"name\":\"half.bin\",\"size\":1000,"
                                     "\"sha256\":\"" TOKEN_SHA256 "\"}");
    h_send(carol, h_fmt("{\"type\":\"file_chunk\",\"file_id\":\"%s\",\"offset\":0,"
                        "\"data\":\"AAECAwQFBgcICQ==\"}",
                        h_get_str(put, "file_id")));
    h_request_ok(carol, "{\"type\":\"files\"}"); /* the chunk is stored by now */
    h_client_close(carol);
}

static void bad_input(const h_daemon *d)
{
    sa_client *mallory = h_connect(d);
    cJSON *reply = NULL;
    if (sa_client_hello(mallory, "mallory", "wrong", &reply, SLOW_MS) != SA_CLIENT_OK)
        h_fail("hello as mallory: %s", sa_client_error(mallory));
    h_assert_str(h_keep(reply), "code", "auth_failed");
    h_expect_bye_closed(mallory, "auth_failed", SLOW_MS);

    sa_client *eve = login_with_token(d, "eve");
    static const char not_json[] = "{\"type\":";
    h_send_payload(eve, not_json, sizeof not_json - 1);
    h_expect_error(eve, "bad_json", SLOW_MS);
    static const unsigned char huge[4] = {0x7f, 0xff, 0xff, 0xff};
    h_send_raw(eve, huge, sizeof huge);
    h_expect_error(eve, "frame_too_large", SLOW_MS);
    h_expect_bye_closed(eve, "frame_too_large", SLOW_MS);
}

static void release_client(void *c) { sa_client_close(c); }

/* tina chats over TLS and stays connected; plaintext on the TLS port gets
 * no frame. Returns tina. */
static sa_client *over_tls(h_daemon *d, sa_client *alice)
{
    const char *port = h_daemon_tls_port(d);
    static const sa_client_tls verified = {.ca_file = SA_TEST_TLS_DIR "/ca.pem"};
    char err[256];
    sa_client *tina = sa_client_connect_tls("127.0.0.1", port, &verified, SLOW_MS, err,
                                            sizeof err, NULL);
    if (!tina)
        h_fail("cannot connect with TLS: %s", err);
    hello_with_token(h_own(tina, release_client), "tina");
    h_request_ok(tina, "{\"type\":\"msg\",\"room\":\"lobby\",\"text\":\"sealed\"}");
    expect_event(alice, "message", "text", "sealed");

    sa_client *plain = sa_client_connect("127.0.0.1", port, SLOW_MS, err, sizeof err);
    if (!plain)
        h_fail("cannot connect to the TLS port: %s", err);
    h_own(plain, release_client);
    h_send(plain, "{\"type\":\"hello\",\"name\":\"plain\"}");
    cJSON *frame = NULL;
    int rc = sa_client_recv(plain, &frame, SLOW_MS);
    if (rc == SA_CLIENT_OK)
        h_fail("plaintext on the TLS port got a frame: %s", h_json(h_keep(frame)));
    if (rc == SA_CLIENT_TIMEOUT)
        h_fail("plaintext on the TLS port was not closed");
    return tina;
}

/* The log goes to stderr whole: a failure message is cut short. */
static void fail_with_log(const char *log, const char *why)
{
    size_t len = 0;
    fprintf(stderr, "---- valgrind log ----\n%s\n----\n",
            access(log, R_OK) == 0 ? file_contents(log, &len) : "(none)");
    h_fail("%s (valgrind's log above)", why);
}

static void test_memcheck_scenario(void **state)
{
    (void)state;
    const char *log = h_fmt("%s/valgrind.log", h_tempdir());
    h_daemon *d = start_under_memcheck(log);
    /* Never says hello: closed after the default hello_timeout (10 s, which
     * a TLS handshake and hello under valgrind on a busy machine need). */
    sa_client *lurker = h_connect(d);
    sa_client *alice = login_with_token(d, "alice");
    sa_client *bob = login_with_token(d, "bob");

    chat(alice, bob);
    files(alice, bob);
    sa_client *tina = over_tls(d, alice);
    upload_cut_off(d);
    bad_input(d);
    h_expect_bye_closed(lurker, "hello_timeout", SLOW_MS);
    h_send(bob, "{\"type\":\"bye\"}");
    expect_closed_after_events(bob);
    sa_client *dave = login_with_token(d, "dave");
    h_client_close(dave); /* without a word */

    /* alice and tina are still connected: shutdown says bye to them. */
    h_daemon_signal(d, SIGTERM);
    expect_event(alice, "bye", "reason", "shutdown");
    expect_closed_after_events(alice);
    expect_event(tina, "bye", "reason", "shutdown");
    expect_closed_after_events(tina);
    int status = h_daemon_wait(d, EXIT_MS);
    if (status != 0)
        fail_with_log(log, h_fmt("syncasyncd under memcheck exited with status %d", status));
    size_t len = 0;
    if (!strstr(file_contents(log, &len), "ERROR SUMMARY: 0 errors from 0 contexts"))
        fail_with_log(log, "valgrind did not report 0 errors");
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_valgrind");
    const struct CMUnitTest tests[] = {
        H_TEST(test_memcheck_scenario),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
