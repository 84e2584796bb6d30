/* The auth plugin (token authentication at hello, PROTOCOL.md §3): the
 * tokens file, refusals, the lockout of an address that keeps guessing,
 * reloading on SIGHUP, sa-client's --token and SA_TOKEN, and the sa-token
 * script; with server.engine set to argv[1]. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
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
#include <openssl/evp.h>

#include "harness.h"

#ifndef SA_TEST_SYNCASYNCD
#error "SA_TEST_SYNCASYNCD must be defined by the build"
#endif
#ifndef SA_TEST_SA_CLIENT
#error "SA_TEST_SA_CLIENT (path of sa-client) must be defined by the build"
#endif
#ifndef SA_TEST_SA_TOKEN
#error "SA_TEST_SA_TOKEN (path of scripts/sa-token) must be defined by the build"
#endif

#define EXIT_MS 15000
#define LOCKOUT_MESSAGE "too many failed attempts; try again later"

static const char alice_token[] = "alice-0123456789abcdef0123456789abcdef";
static const char bob_token[] = "bob-fedcba9876543210fedcba9876543210";
static const char shared_token[] = "shared-00112233445566778899aabbccddeeff";
static const char dave_token[] = "dave-7766554433221100ffeeddccbbaa9988";

/* Lower-case hex SHA-256 of `token`, owned by the harness. */
static const char *sha256_hex(const char *token)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(token, strlen(token), digest, &len, EVP_sha256(), NULL) != 1 || len != 32)
        h_fail("SHA-256 failed");
    char hex[65];
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return h_fmt("%s", hex);
}

/* A tokens-file line for `name` and `token`. */
static const char *line_for(const char *name, const char *token)
{
    return h_fmt("%s %s\n", name, sha256_hex(token));
}

/* Starts the daemon with plugins "auth chat" and the given tokens file. */
static h_daemon *start_with_tokens(const char *tokens_path, const char *extra1,
                                   const char *extra2)
{
    return h_daemon_startv(NULL, "server.plugins=auth chat",
                           h_fmt("auth.tokens_file=%s", tokens_path), "server.log_level=debug",
                           extra1, extra2, NULL);
}

/* hello as name with token (NULL: none); returns the reply. */
static cJSON *hello(sa_client *c, const char *name, const char *token)
{
    cJSON *reply = NULL;
    int rc = sa_client_hello(c, name, token, &reply, H_REPLY_MS);
    if (rc != SA_CLIENT_OK)
        h_fail("hello as %s: status %d (%s)", name, rc, sa_client_error(c));
    return h_keep(reply);
}

static sa_client *login_ok(const h_daemon *d, const char *name, const char *token)
{
    sa_client *c = h_connect(d);
    cJSON *reply = hello(c, name, token);
    if (strcmp(h_get_str(reply, "type"), "ok") != 0)
        h_fail("hello as %s with a good token was refused: %s", name, h_json(reply));
    return c;
}

/* The reply must be error auth_failed with `message`, then bye auth_failed
 * and the connection closes. */
static void expect_refusal(sa_client *c, const cJSON *reply, const char *message)
{
    h_assert_str(reply, "type", "error");
    h_assert_str(reply, "re", "hello");
    h_assert_str(reply, "code", "auth_failed");
    h_assert_str(reply, "message", message);
    h_expect_bye_closed(c, "auth_failed", H_REPLY_MS);
}

static void login_refused(const h_daemon *d, const char *name, const char *token,
                          const char *message)
{
    sa_client *c = h_connect(d);
    expect_refusal(c, hello(c, name, token), message);
    h_client_close(c);
}

static int has_feature(const cJSON *reply, const char *feature)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(reply, "features"))
    {
        if (cJSON_IsString(item) && strcmp(item->valuestring, feature) == 0)
            return 1;
    }
    return 0;
}

static void wait_for_log(h_daemon *d, const char *needle)
{
    int64_t deadline = h_now_ms() + H_REPLY_MS;
    while (!h_daemon_log_contains(d, needle)) {
        if (h_now_ms() > deadline)
            h_fail("the daemon did not log \"%s\" within %d ms", needle, H_REPLY_MS);
        h_sleep_ms(20);
    }
}

/* ---- accepting and refusing ------------------------------------------------ */

static void test_right_token(void **state)
{
    (void)state;
    /* tokens_file is a PATH: relative to the INI's folder. */
    h_write_file("tokens", line_for("alice", alice_token));
    const char *ini = h_write_file("auth.ini", "[server]\n"
                                               "plugins = auth chat\n"
                                               "[auth]\n"
                                               "tokens_file = tokens\n");
    h_daemon *d = h_daemon_startv(ini, NULL);
    sa_client *c = h_connect(d);
    cJSON *reply = hello(c, "alice", alice_token);
    h_assert_str(reply, "type", "ok");
    h_assert_str(reply, "name", "alice");
    if (!has_feature(reply, "auth") || !has_feature(reply, "chat"))
        h_fail("features should list auth and chat: %s", h_json(reply));
    h_request_ok(c, "{\"type\":\"msg\",\"text\":\"authenticated\"}");
}

static void test_wrong_or_missing_token(void **state)
{
    (void)state;
    h_daemon *d = start_with_tokens(h_write_file("tokens", line_for("alice", alice_token)),
                                    NULL, NULL);
    login_refused(d, "alice", "not-the-token", "invalid token");
    login_refused(d, "alice", NULL, "token required");
    login_refused(d, "alice", "", "invalid token");

    /* A token that is not a string is no token. */
    sa_client *c = h_connect(d);
    h_send(c, "{\"type\":\"hello\",\"id\":\"h\",\"name\":\"alice\",\"token\":12345}");
    cJSON *reply = h_expect_error(c, "auth_failed", H_REPLY_MS);
    h_assert_str(reply, "id", "h");
    expect_refusal(c, reply, "token required");

    /* Before hello nothing else passes, and a bad name is answered first
     * (the connection stays open for another try). */
    c = h_connect(d);
    h_request_error(c, "{\"type\":\"msg\",\"text\":\"x\"}", "not_authenticated");
    h_request_error(c, "{\"type\":\"hello\",\"name\":\"bad name\",\"token\":\"x\"}", "bad_name");
    h_assert_str(hello(c, "alice", alice_token), "type", "ok");
}

static void test_any_name_and_case(void **state)
{
    (void)state;
    /* Comments, blank lines, odd spacing, CRLF, upper-case hex. */
    char *upper = strdup(sha256_hex(alice_token));
    if (!upper)
        h_fail("out of memory");
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    const char *content = h_fmt("# the team\n"
                                "\n"
                                "   %s"
                                "Alice %s   # laptop\r\n"
                                "\t* %s",
                                line_for("bob", bob_token), upper, sha256_hex(shared_token));
    free(upper);
    const char *tokens = h_write_file("tokens", content);
    h_daemon *d = start_with_tokens(tokens, NULL, NULL);
    wait_for_log(d, h_fmt("loaded %s: 3 tokens", tokens));

    login_ok(d, "alice", alice_token);  /* the line says Alice */
    login_ok(d, "BOB", bob_token);      /* names compare case-insensitively */
    login_ok(d, "carol", shared_token); /* "*" takes any name */
    login_ok(d, "dave", shared_token);
    /* Another user's token is no good. */
    login_refused(d, "erin", alice_token, "invalid token");
}

static void test_other_users_token(void **state)
{
    (void)state;
    h_daemon *d = start_with_tokens(
        h_write_file("tokens", h_fmt("%s%s", line_for("alice", alice_token),
                                     line_for("bob", bob_token))),
        NULL, NULL);
    login_refused(d, "alice", bob_token, "invalid token");
    login_refused(d, "bob", alice_token, "invalid token");
    login_ok(d, "alice", alice_token);
    login_ok(d, "bob", bob_token);
}

/* ---- lockout ------------------------------------------------------------------- */

/* A plain socket from `source` (a loopback address) to the daemon. */
static int connect_from(const h_daemon *d, const char *source)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in from = {.sin_family = AF_INET};
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(h_daemon_port(d)))};
    inet_pton(AF_INET, source, &from.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&from, sizeof from) != 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        if (fd >= 0)
            close(fd);
        h_fail("cannot connect from %s", source);
    }
    struct timeval limit = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    return fd;
}

static int recv_all(int fd, void *into, size_t len)
{
    for (size_t have = 0; have < len;) {
        ssize_t n = recv(fd, (char *)into + have, len - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    return 0;
}

/* hello with a token over a plain socket from `source`; returns the reply. */
static cJSON *hello_from(const h_daemon *d, const char *source, const char *name,
                         const char *token)
{
    int fd = connect_from(d, source);
    const char *json =
        h_fmt("{\"type\":\"hello\",\"id\":1,\"name\":\"%s\",\"token\":\"%s\"}", name, token);
    uint32_t len = (uint32_t)strlen(json);
    unsigned char header[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                               (unsigned char)(len >> 8), (unsigned char)len};
    if (send(fd, header, 4, MSG_NOSIGNAL) != 4 ||
        send(fd, json, len, MSG_NOSIGNAL) != (ssize_t)len) {
        close(fd);
        h_fail("cannot send hello from %s", source);
    }
    char *payload = NULL;
    cJSON *reply = NULL;
    if (recv_all(fd, header, 4) == 0) {
        len = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 |
              (uint32_t)header[2] << 8 | header[3];
        payload = len <= 65536 ? malloc(len) : NULL;
        if (payload && recv_all(fd, payload, len) == 0)
            reply = cJSON_ParseWithLength(payload, len);
    }
    free(payload);
    close(fd);
    if (!reply)
        h_fail("no hello reply for a connection from %s", source);
    return h_keep(reply);
}

static void test_lockout(void **state)
{
    (void)state;
    h_daemon *d = start_with_tokens(h_write_file("tokens", line_for("alice", alice_token)),
                                    "auth.max_failures=3", "auth.lockout=2");
    login_refused(d, "alice", "guess-1", "invalid token");
    login_refused(d, "alice", NULL, "token required");
    login_refused(d, "mallory", "guess-3", "invalid token");
    int64_t locked_at = h_now_ms();
    wait_for_log(d, "127.0.0.1: too many failed hellos, refusing it for 2 s");

    /* Now even the right token is refused, at once. */
    login_refused(d, "alice", alice_token, LOCKOUT_MESSAGE);
    /* Another address is not affected. */
    cJSON *reply = hello_from(d, "127.0.0.2", "bob", bob_token);
    h_assert_str(reply, "code", "auth_failed");
    h_assert_str(reply, "message", "invalid token");
    reply = hello_from(d, "127.0.0.3", "alice", alice_token);
    h_assert_str(reply, "type", "ok");

    /* After the lockout, the right token works again. */
    int64_t deadline = locked_at + 8000;
    for (;;) {
        sa_client *c = h_connect(d);
        reply = hello(c, "alice", alice_token);
        if (strcmp(h_get_str(reply, "type"), "ok") == 0)
            break;
        expect_refusal(c, reply, LOCKOUT_MESSAGE);
        h_client_close(c);
        if (h_now_ms() > deadline)
            h_fail("still locked out 8 s after a 2 s lockout began");
        h_sleep_ms(100);
    }
    int64_t waited = h_now_ms() - locked_at;
    if (waited < 1500)
        h_fail("the 2 s lockout ended after %lld ms", (long long)waited);
}

/* ---- SIGHUP ---------------------------------------------------------------------- */

static void test_reload(void **state)
{
    (void)state;
    const char *tokens = h_write_file("tokens", line_for("alice", alice_token));
    h_daemon *d = start_with_tokens(tokens, NULL, NULL);
    sa_client *alice = login_ok(d, "alice", alice_token);

    /* Add bob and dave. */
    h_write_file("tokens", h_fmt("%s%s%s", line_for("alice", alice_token),
                                 line_for("bob", bob_token), line_for("dave", dave_token)));
    h_daemon_signal(d, SIGHUP);
    wait_for_log(d, h_fmt("reloaded %s: 3 tokens", tokens));
    login_ok(d, "bob", bob_token);

    /* A bad file (line 2) leaves the old table in force: dave, only in the
     * old table, still gets in; carol, only in the new one, does not. */
    h_write_file("tokens", h_fmt("%sbroken-line\n", line_for("carol", shared_token)));
    h_daemon_signal(d, SIGHUP);
    wait_for_log(d, h_fmt("%s:2: expected two fields", tokens));
    wait_for_log(d, "keeping the tokens loaded before");
    login_ok(d, "dave", dave_token);
    login_refused(d, "carol", shared_token, "invalid token");

    /* Taking bob out refuses him from then on; sessions already open stay. */
    h_write_file("tokens", line_for("alice", alice_token));
    h_daemon_signal(d, SIGHUP);
    wait_for_log(d, h_fmt("reloaded %s: 1 token", tokens));
    login_refused(d, "bob", bob_token, "invalid token");
    h_request_ok(alice, "{\"type\":\"msg\",\"text\":\"still here\"}");
}

/* Hellos while the table is swapped again and again (the sync engine
 * checks hellos on many threads at once; AddressSanitizer watches). */
static void test_reload_during_hellos(void **state)
{
    (void)state;
    const char *tokens = h_write_file("tokens", h_fmt("* %s\n", sha256_hex(shared_token)));
    h_daemon *d = start_with_tokens(tokens, NULL, NULL);
    for (int i = 0; i < 30; i++) {
        h_daemon_signal(d, SIGHUP);
        sa_client *c = login_ok(d, h_fmt("user%d", i), shared_token);
        h_request_ok(c, "{\"type\":\"msg\",\"text\":\"hi\"}");
    }
}

/* ---- a bad tokens file at start ------------------------------------------------ */

/* Runs the daemon with auth on `tokens_path`; it must exit 1 before
 * listening, with output containing `needle` and not `secret` (when
 * given). */
static void expect_start_failure(const char *tokens_path, const char *needle,
                                 const char *secret)
{
    const char *argv[] = {SA_TEST_SYNCASYNCD,
                          "-o",
                          h_fmt("server.engine=%s", h_engine),
                          "-o",
                          "server.listen=127.0.0.1:0",
                          "-o",
                          "server.plugins=auth chat",
                          "-o",
                          h_fmt("auth.tokens_file=%s", tokens_path),
                          NULL};
    const char *out = NULL, *err = NULL;
    int status = h_run(argv, EXIT_MS, &out, &err);
    const char *all = h_fmt("%s%s", out, err);
    if (status != 1)
        h_fail("tokens file %s: exit status %d, expected 1; output:\n%s", tokens_path, status,
               all);
    if (!strstr(all, needle))
        h_fail("tokens file %s: the output should contain \"%s\"; it is:\n%s", tokens_path,
               needle, all);
    if (secret && strstr(all, secret))
        h_fail("the output shows a line's field \"%s\":\n%s", secret, all);
    if (strstr(all, "listening on"))
        h_fail("the daemon listened with a bad tokens file:\n%s", all);
}

static void test_bad_file_at_start(void **state)
{
    (void)state;
    const char *hash = sha256_hex(alice_token);
    const struct {
        const char *content;
        int line;
        const char *secret; /* must not be shown */
    } cases[] = {
        {"alice\n", 1, NULL},
        {h_fmt("# ok\n\nalice %.63s\n", hash), 3, NULL},
        {h_fmt("alice %s0\n", hash), 1, NULL},
        {h_fmt("alice %.62sxy\n", hash), 1, NULL},
        {h_fmt("al!ce %s\n", hash), 1, NULL},
        {h_fmt("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa %s\n", hash), 1, NULL}, /* 33-byte name */
        {h_fmt("alice %s extra\n", hash), 1, NULL},
        {h_fmt("alice %s\n** %s\n", hash, hash), 2, NULL},
        {"alice my-raw-secret-token\n", 1, "my-raw-secret-token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = h_write_file(h_fmt("tokens%zu", i), cases[i].content);
        expect_start_failure(path, h_fmt("%s:%d: ", path, cases[i].line), cases[i].secret);
    }
    const char *missing = h_fmt("%s/no-such-tokens", h_tempdir());
    expect_start_failure(missing, missing, NULL);
    expect_start_failure(h_tempdir(), h_tempdir(), NULL); /* a folder */
}

/* ---- secrets stay out of the log ------------------------------------------------ */

static void test_token_never_logged(void **state)
{
    (void)state;
    const char *tokens = h_write_file("tokens", line_for("alice", alice_token));
    h_daemon *d = start_with_tokens(tokens, "auth.max_failures=2", NULL);
    login_ok(d, "alice", alice_token);
    login_refused(d, "bob", "wrong-secret-token", "invalid token");
    login_refused(d, "bob", NULL, "token required");
    login_refused(d, "bob", bob_token, LOCKOUT_MESSAGE);
    wait_for_log(d, "hello as bob refused, address locked out");
    /* An operator who pasted a raw token where its hash belongs. */
    h_write_file("tokens", "alice raw-secret-in-the-file\n");
    h_daemon_signal(d, SIGHUP);
    wait_for_log(d, h_fmt("%s:1: ", tokens));

    const char *secrets[] = {alice_token,        sha256_hex(alice_token),
                             "wrong-secret-token", sha256_hex("wrong-secret-token"),
                             bob_token,          sha256_hex(bob_token),
                             "raw-secret-in-the-file"};
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
        if (h_daemon_log_contains(d, secrets[i]))
            h_fail("the daemon's log contains the secret \"%s\"", secrets[i]);
    /* What it does log: who tried, from where. */
    if (!h_daemon_log_contains(d, "127.0.0.1:") ||
        !h_daemon_log_contains(d, "hello as bob refused, wrong token") ||
        !h_daemon_log_contains(d, "alice authenticated"))
        h_fail("the log should name the peer and the user of each attempt");
}

/* ---- client tools ---------------------------------------------------------------- */

/* Runs sa-client through env(1), with SA_TOKEN set to env_token (or
 * unset when NULL), and --token when `token` is not NULL. */
static h_proc *start_client(const h_daemon *d, const char *mode, const char *name,
                            const char *env_token, const char *token, int json)
{
    const char *argv[24];
    size_t n = 0;
    argv[n++] = "/usr/bin/env";
    if (env_token)
        argv[n++] = h_fmt("SA_TOKEN=%s", env_token);
    else
        argv[n++] = "-uSA_TOKEN";
    argv[n++] = SA_TEST_SA_CLIENT;
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = h_daemon_port(d);
    argv[n++] = "--name";
    argv[n++] = name;
    argv[n++] = "--mode";
    argv[n++] = mode;
    if (token) {
        argv[n++] = "--token";
        argv[n++] = token;
    }
    if (json)
        argv[n++] = "--json";
    argv[n] = NULL;
    return h_spawn(argv);
}

static void client_accepted(const h_daemon *d, const char *mode, const char *name,
                            const char *env_token, const char *token)
{
    h_proc *p = start_client(d, mode, name, env_token, token, 1);
    const char *line = h_proc_expect_line(p, "\"re\":\"hello\"", EXIT_MS);
    if (!strstr(line, "\"type\":\"ok\"") || !strstr(line, "\"auth\""))
        h_fail("sa-client %s (--mode %s): hello reply %s", name, mode, line);
    h_proc_close_stdin(p);
    int status = h_proc_wait(p, EXIT_MS);
    if (status != 0)
        h_fail("sa-client %s (--mode %s): exit %d, expected 0; stderr:\n%s", name, mode, status,
               h_proc_stderr(p));
}

static void client_refused(const h_daemon *d, const char *mode, const char *name,
                           const char *env_token, const char *token, const char *message)
{
    h_proc *p = start_client(d, mode, name, env_token, token, 0);
    int status = h_proc_wait(p, EXIT_MS);
    if (status != 1)
        h_fail("sa-client %s (--mode %s) with a bad token: exit %d, expected 1; stdout:\n%s\n"
               "stderr:\n%s",
               name, mode, status, h_proc_stdout(p), h_proc_stderr(p));
    const char *want = h_fmt("! auth_failed: %s", message);
    if (!strstr(h_proc_stdout(p), want))
        h_fail("sa-client %s (--mode %s): stdout should show \"%s\":\n%s", name, mode, want,
               h_proc_stdout(p));
}

static void test_sa_client_token(void **state)
{
    (void)state;
    const char *tokens = h_write_file("tokens", h_fmt("%s%s", line_for("alice", alice_token),
                                                      line_for("bob", bob_token)));
    h_daemon *d = start_with_tokens(tokens, "auth.max_failures=1000", NULL);
    static const char *const modes[] = {"sync", "async"};
    for (size_t i = 0; i < 2; i++) {
        const char *mode = modes[i];
        client_accepted(d, mode, "alice", NULL, alice_token);
        client_accepted(d, mode, "bob", bob_token, NULL);
        /* --token wins over SA_TOKEN. */
        client_accepted(d, mode, "alice", "wrong", alice_token);
        client_refused(d, mode, "alice", NULL, "wrong", "invalid token");
        client_refused(d, mode, "alice", bob_token, NULL, "invalid token");
        client_refused(d, mode, "alice", NULL, NULL, "token required");
    }
}

static void test_sa_token_script(void **state)
{
    (void)state;
    const char *lines = "";
    const char *tokens_for[2];
    static const char *const names[] = {"carol", "*"};
    for (size_t i = 0; i < 2; i++) {
        const char *out = NULL, *err = NULL;
        int status =
            h_run((const char *const[]){SA_TEST_SA_TOKEN, names[i], NULL}, EXIT_MS, &out, &err);
        const char *token = strstr(out, "token: ");
        const char *line = strstr(out, "\nline:  ");
        if (status != 0 || !token || !line)
            h_fail("sa-token %s: exit %d; stdout:\n%s\nstderr:\n%s", names[i], status, out, err);
        token += strlen("token: ");
        line += strlen("\nline:  ");
        tokens_for[i] = h_fmt("%.*s", (int)strcspn(token, "\n"), token);
        if (strlen(tokens_for[i]) < 32)
            h_fail("sa-token made a short token: \"%s\"", tokens_for[i]);
        lines = h_fmt("%s%s", lines, line);
    }
    h_daemon *d = start_with_tokens(h_write_file("tokens", lines), NULL, NULL);
    login_ok(d, "carol", tokens_for[0]);
    login_ok(d, "anyone", tokens_for[1]);
    login_refused(d, "dave", tokens_for[0], "invalid token");

    const char *out = NULL, *err = NULL;
    int status = h_run((const char *const[]){SA_TEST_SA_TOKEN, "bad name", NULL}, EXIT_MS, &out,
                       &err);
    if (status != 2)
        h_fail("sa-token 'bad name': exit %d, expected 2", status);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_auth");
    const struct CMUnitTest tests[] = {
        H_TEST(test_right_token),         H_TEST(test_wrong_or_missing_token),
        H_TEST(test_any_name_and_case),   H_TEST(test_other_users_token),
        H_TEST(test_lockout),             H_TEST(test_reload),
        H_TEST(test_reload_during_hellos), H_TEST(test_bad_file_at_start),
        H_TEST(test_token_never_logged),  H_TEST(test_sa_client_token),
        H_TEST(test_sa_token_script),
    };
    char group[64];
    snprintf(group, sizeof group, "auth/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
