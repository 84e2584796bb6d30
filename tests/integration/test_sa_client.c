/* sa-client in both client modes against the engine named by argv[1]
 * (the cross-mode matrix), driven through pipes. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#ifndef SA_TEST_SA_CLIENT
#error "SA_TEST_SA_CLIENT (path of sa-client) must be defined by the build"
#endif

#define EXIT_MS 10000

static h_proc *start_client(const char *port, const char *mode, const char *name)
{
    const char *const argv[] = {SA_TEST_SA_CLIENT, "--host", "127.0.0.1", "--port", port,
                                "--name", name, "--mode", mode, NULL};
    return h_spawn(argv);
}

/* Waits until `name` is a connected user, then until its sa-client shows a
 * dm from the probe: from then on it is reading the server. */
static void wait_ready(sa_client *probe, h_proc *p, const char *name)
{
    const char *req = h_fmt("{\"type\":\"dm\",\"to\":\"%s\",\"text\":\"ready-%s\"}", name, name);
    int64_t deadline = h_now_ms() + 10000;
    for (;;) {
        cJSON *reply = h_request(probe, req);
        if (strcmp(h_get_str(reply, "type"), "ok") == 0)
            break;
        h_assert_str(reply, "code", "no_such_user");
        if (h_now_ms() > deadline)
            h_fail("sa-client %s did not log in within 10 s; stdout:\n%s\nstderr:\n%s", name,
                   h_proc_stdout(p), h_proc_stderr(p));
        h_sleep_ms(50);
    }
    h_proc_expect_line(p, h_fmt("[dm] <probe> ready-%s", name), H_REPLY_MS);
}

static void chat_between_clients(const char *mode)
{
    h_daemon *d = h_daemon_startv(NULL, NULL);
    const char *port = h_daemon_port(d);
    sa_client *probe = h_login(d, "probe");

    h_proc *bob = start_client(port, mode, "bob");
    wait_ready(probe, bob, "bob");
    h_proc *alice = start_client(port, mode, "alice");
    wait_ready(probe, alice, "alice");

    h_proc_write_line(alice, "hello bob");
    h_proc_expect_line(bob, "<alice> hello bob", H_REPLY_MS);
    cJSON *m = h_expect(probe, "message", H_REPLY_MS);
    h_assert_str(m, "from", "alice");
    h_assert_str(m, "text", "hello bob");

    h_proc_write_line(alice, "/msg bob psst");
    h_proc_expect_line(bob, "[dm] <alice> psst", H_REPLY_MS);

    h_proc_write_line(alice, "/msg nobody x");
    h_proc_expect_line(alice, "! no_such_user: ", H_REPLY_MS);

    h_proc_write_line(bob, "hi alice");
    h_proc_expect_line(alice, "<bob> hi alice", H_REPLY_MS);
    h_assert_str(h_expect(probe, "message", H_REPLY_MS), "text", "hi alice");

    /* What others send never reaches the terminal raw. */
    h_request_ok(probe, "{\"type\":\"msg\",\"text\":\"evil \\u001b[2J\\u0007 end\"}");
    const char *line = h_proc_expect_line(bob, "<probe> evil", H_REPLY_MS);
    if (strchr(line, '\x1b') || strchr(line, '\x07'))
        h_fail("sa-client passed control characters through: \"%s\"", line);
    if (!strstr(line, "end"))
        h_fail("sa-client cut the message: \"%s\"", line);

    /* End of stdin is /quit: exit 0, and the user is gone. */
    h_proc_close_stdin(alice);
    int status = h_proc_wait(alice, EXIT_MS);
    if (status != 0)
        h_fail("alice's sa-client exited with %d at end of stdin; stdout:\n%s\nstderr:\n%s",
               status, h_proc_stdout(alice), h_proc_stderr(alice));
    int64_t deadline = h_now_ms() + 3000;
    while (strcmp(h_get_str(h_request(probe, "{\"type\":\"dm\",\"to\":\"alice\",\"text\":\"x\"}"),
                            "type"),
                  "ok") == 0) {
        if (h_now_ms() > deadline)
            h_fail("alice is still connected 3 s after her sa-client exited");
        h_sleep_ms(50);
    }
    h_proc_write_line(bob, "/quit");
    status = h_proc_wait(bob, EXIT_MS);
    if (status != 0)
        h_fail("bob's sa-client exited with %d after /quit; stderr:\n%s", status,
               h_proc_stderr(bob));
}

static void test_chat_client_mode_sync(void **state)
{
    (void)state;
    chat_between_clients("sync");
}

static void test_chat_client_mode_async(void **state)
{
    (void)state;
    chat_between_clients("async");
}

static void bad_name_exits_1(const char *mode)
{
    h_daemon *d = h_daemon_startv(NULL, NULL);
    h_proc *p = start_client(h_daemon_port(d), mode, "bad name");
    int status = h_proc_wait(p, EXIT_MS);
    if (status != 1)
        h_fail("--name 'bad name' (--mode %s): exit %d, expected 1; stdout:\n%s\nstderr:\n%s",
               mode, status, h_proc_stdout(p), h_proc_stderr(p));
    if (!strstr(h_proc_stdout(p), "! bad_name"))
        h_fail("--name 'bad name' (--mode %s): stdout should show \"! bad_name\":\n%s\n"
               "stderr:\n%s",
               mode, h_proc_stdout(p), h_proc_stderr(p));
}

static void test_bad_name_mode_sync(void **state)
{
    (void)state;
    bad_name_exits_1("sync");
}

static void test_bad_name_mode_async(void **state)
{
    (void)state;
    bad_name_exits_1("async");
}

/* A port with nothing listening: a socket bound to it but not listening
 * (connections are refused, and nobody else can take the port meanwhile). */
static void test_no_server(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        h_fail("cannot reserve a port: %s", strerror(err));
    }
    const char *port = h_fmt("%u", (unsigned)ntohs(addr.sin_port));
    static const char *const modes[] = {"sync", "async"};
    int status[2];
    const char *out[2];
    for (int i = 0; i < 2; i++) {
        h_proc *p = start_client(port, modes[i], "alice");
        status[i] = h_proc_wait(p, EXIT_MS);
        out[i] = h_fmt("stdout:\n%s\nstderr:\n%s", h_proc_stdout(p), h_proc_stderr(p));
    }
    close(fd);
    for (int i = 0; i < 2; i++)
        if (status[i] != 1)
            h_fail("--mode %s with nothing listening: exit %d, expected 1; %s", modes[i],
                   status[i], out[i]);
}

static void test_bad_options(void **state)
{
    (void)state;
    static const char *const bad[][3] = {
        {"--no-such-option", NULL, NULL},
        {"--mode", "fast", NULL},
        {"--port", "seventy", NULL},
        {"--port", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *argv[] = {SA_TEST_SA_CLIENT, "--name", "alice", bad[i][0], bad[i][1], NULL};
        const char *out = NULL, *err = NULL;
        int status = h_run(argv, EXIT_MS, &out, &err);
        if (status != 2)
            h_fail("sa-client %s %s: exit %d, expected 2; stdout:\n%s\nstderr:\n%s", bad[i][0],
                   bad[i][1] ? bad[i][1] : "", status, out, err);
    }
    const char *out = NULL, *err = NULL;
    int status = h_run((const char *const[]){SA_TEST_SA_CLIENT, "--help", NULL}, EXIT_MS, &out,
                       &err);
    if (status != 0 || !strstr(out, "--mode"))
        h_fail("sa-client --help: exit %d; stdout:\n%s", status, out);
    status = h_run((const char *const[]){SA_TEST_SA_CLIENT, "--version", NULL}, EXIT_MS, &out,
                   &err);
    if (status != 0 || !*out)
        h_fail("sa-client --version: exit %d; stdout:\n%s", status, out);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_sa_client");
    const struct CMUnitTest tests[] = {
        H_TEST(test_chat_client_mode_sync), H_TEST(test_chat_client_mode_async),
        H_TEST(test_bad_name_mode_sync),    H_TEST(test_bad_name_mode_async),
        H_TEST(test_no_server),             H_TEST(test_bad_options),
    };
    char group[64];
    snprintf(group, sizeof group, "sa-client/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
