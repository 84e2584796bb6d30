/* sa-client's room and presence commands (INTERFACE.md, sa-client) in both
 * client modes against the engine named by argv[1], driven through pipes,
 * with the chat, rooms and presence plugins loaded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#ifndef SA_TEST_SA_CLIENT
#error "SA_TEST_SA_CLIENT (path of sa-client) must be defined by the build"
#endif

#define EXIT_MS 10000
/* A needle no line contains: h_proc_expect_no_line with it just reads. */
#define NO_SUCH_LINE "\x01"

static h_proc *start_client(const char *port, const char *mode, const char *name,
                            const char *room)
{
    const char *const argv[] = {SA_TEST_SA_CLIENT, "--host", "127.0.0.1", "--port", port,
                                "--name", name, "--mode", mode, "--room", room, NULL};
    return h_spawn(argv);
}

/* 1 when the child's stdout so far holds `line` as a whole line. */
static int printed(h_proc *p, const char *line)
{
    const char *out = h_proc_stdout(p);
    size_t len = strlen(line);
    for (const char *at = strstr(out, line); at; at = strstr(at + 1, line))
        if ((at == out || at[-1] == '\n') && at[len] == '\n')
            return 1;
    return 0;
}

/* Waits for `line` anywhere in the child's output, in whatever order it
 * comes relative to other lines. */
static void wait_printed(h_proc *p, const char *line)
{
    int64_t deadline = h_now_ms() + H_REPLY_MS;
    while (!printed(p, line)) {
        if (h_now_ms() > deadline)
            h_fail("sa-client did not print the line \"%s\" within %d ms; stdout:\n%s\n"
                   "stderr:\n%s",
                   line, H_REPLY_MS, h_proc_stdout(p), h_proc_stderr(p));
        h_proc_expect_no_line(p, NO_SUCH_LINE, 20);
    }
}

/* "a, b, c": the members of `room` in the order the server gives them. */
static const char *members_text(sa_client *probe, const char *room)
{
    cJSON *ok = h_request_ok(probe, h_fmt("{\"type\":\"who\",\"room\":\"%s\"}", room));
    const char *text = "";
    const cJSON *name;
    cJSON_ArrayForEach(name, cJSON_GetObjectItemCaseSensitive(ok, "members"))
    {
        if (!cJSON_IsString(name))
            h_fail("who: a member that is not a string: %s", h_json(ok));
        text = h_fmt("%s%s%s", text, *text ? ", " : "", name->valuestring);
    }
    return text;
}

/* The next line containing `needle` must be exactly `want`. */
static void expect_exact_line(h_proc *p, const char *needle, const char *want)
{
    const char *line = h_proc_expect_line(p, needle, H_REPLY_MS);
    if (strcmp(line, want) != 0)
        h_fail("sa-client printed \"%s\", expected \"%s\"", line, want);
}

static void expect_exit_0(h_proc *p, const char *who)
{
    int status = h_proc_wait(p, EXIT_MS);
    if (status != 0)
        h_fail("%s's sa-client exited with %d; stdout:\n%s\nstderr:\n%s", who, status,
               h_proc_stdout(p), h_proc_stderr(p));
}

static void room_commands(const char *mode)
{
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat rooms presence", NULL);
    const char *port = h_daemon_port(d);
    sa_client *probe = h_login(d, "probe"); /* in the lobby, never in dev */

    /* --room: joined at start, and the reply shown. */
    h_proc *bob = start_client(port, mode, "bob", "dev");
    expect_exact_line(bob, "* you joined dev", "* you joined dev (members: bob)");
    h_proc *alice = start_client(port, mode, "alice", "dev");
    const char *line = h_proc_expect_line(alice, "* you joined dev", H_REPLY_MS);
    const char *want = h_fmt("* you joined dev (members: %s)", members_text(probe, "dev"));
    if (strcmp(line, want) != 0)
        h_fail("sa-client printed \"%s\", expected \"%s\"", line, want);
    wait_printed(bob, "* alice joined dev");
    wait_printed(bob, "* alice joined lobby");
    wait_printed(bob, "* alice is online");

    /* A plain line goes to the current room, and only there. */
    h_proc_write_line(alice, "hello there");
    h_proc_expect_line(bob, "[dev] <alice> hello there", H_REPLY_MS);
    h_request_ok(probe, "{\"type\":\"msg\",\"room\":\"lobby\",\"text\":\"from the lobby\"}");
    h_proc_expect_line(bob, "[lobby] <probe> from the lobby", H_REPLY_MS);
    if (printed(bob, "[lobby] <alice> hello there") || printed(alice, "[dev] <alice> hello there"))
        h_fail("the message went to the wrong place; bob:\n%s\nalice:\n%s", h_proc_stdout(bob),
               h_proc_stdout(alice));

    /* /join makes the room current. */
    h_proc_write_line(alice, "/join x");
    expect_exact_line(alice, "* you joined x", "* you joined x (members: alice)");
    h_proc_write_line(bob, "/join x");
    h_proc_expect_line(alice, "* bob joined x", H_REPLY_MS);
    expect_exact_line(bob, "* you joined x",
                      h_fmt("* you joined x (members: %s)", members_text(probe, "x")));
    h_proc_write_line(bob, "now in x");
    h_proc_expect_line(alice, "[x] <bob> now in x", H_REPLY_MS);

    /* /who ROOM, in the server's order. */
    h_proc_write_line(alice, "/who dev");
    expect_exact_line(alice, "dev: ", h_fmt("dev: %s", members_text(probe, "dev")));

    /* /leave */
    h_proc_write_line(alice, "/leave x");
    expect_exact_line(alice, "* you left", "* you left x");
    h_proc_expect_line(bob, "* alice left x", H_REPLY_MS);

    /* /topic and /rooms ("NAME (N members)" and the topic when there is one). */
    h_proc_write_line(alice, "/topic dev the plan");
    h_proc_expect_line(bob, "* alice set the topic of dev: the plan", H_REPLY_MS);
    h_proc_write_line(alice, "/rooms");
    h_proc_write_line(alice, "/who x"); /* its line marks the end of the list */
    expect_exact_line(alice, "x: ", "x: bob");
    if (!printed(alice, "dev (2 members) the plan") || !printed(alice, "lobby (3 members)") ||
        !printed(alice, "x (1 members)"))
        h_fail("/rooms should list dev, lobby and x; stdout:\n%s", h_proc_stdout(alice));

    /* /status, as others see it. */
    h_proc_write_line(alice, "/status away lunch");
    h_proc_expect_line(bob, "* alice is away (lunch)", H_REPLY_MS);
    /* The probe shares the lobby: past the events of the logins, it hears
     * the same. */
    cJSON *p = h_recv(probe, H_REPLY_MS);
    while (strcmp(h_get_str(p, "type"), "presence") != 0 ||
           strcmp(h_get_str(p, "status"), "away") != 0)
        p = h_recv(probe, H_REPLY_MS);
    h_assert_str(p, "user", "alice");
    h_assert_str(p, "text", "lunch");

    /* /users: one line per user, "NAME STATUS" and " (TEXT)" when set. */
    h_proc_write_line(bob, "/users");
    h_proc_write_line(bob, "/who lobby");
    h_proc_expect_line(bob, "lobby: ", H_REPLY_MS);
    if (!printed(bob, "alice away (lunch)") || !printed(bob, "bob online") ||
        !printed(bob, "probe online"))
        h_fail("/users should print alice, bob and probe; stdout:\n%s", h_proc_stdout(bob));

    h_proc_write_line(alice, "/status busy");
    h_proc_expect_line(bob, "* alice is busy", H_REPLY_MS);
    if (printed(bob, "* alice is busy ()"))
        h_fail("an empty status text is shown: %s", h_proc_stdout(bob));

    /* Errors from the server. */
    h_proc_write_line(alice, "/leave nowhere");
    h_proc_expect_line(alice, "! no_such_room: ", H_REPLY_MS);
    h_proc_write_line(alice, "/join a/b");
    h_proc_expect_line(alice, "! bad_room: ", H_REPLY_MS);
    h_proc_write_line(alice, "/leave x");
    h_proc_expect_line(alice, "! not_member: ", H_REPLY_MS);

    /* End of stdin: exit 0; the others see her go. */
    h_proc_close_stdin(alice);
    expect_exit_0(alice, "alice");
    wait_printed(bob, "* alice is offline");
    wait_printed(bob, "* alice left dev");
    wait_printed(bob, "* alice left lobby");
    h_proc_close_stdin(bob);
    expect_exit_0(bob, "bob");
}

static void test_room_commands_mode_sync(void **state)
{
    (void)state;
    room_commands("sync");
}

static void test_room_commands_mode_async(void **state)
{
    (void)state;
    room_commands("async");
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_sa_client_rooms");
    const struct CMUnitTest tests[] = {
        H_TEST(test_room_commands_mode_sync),
        H_TEST(test_room_commands_mode_async),
    };
    char group[64];
    snprintf(group, sizeof group, "sa-client-rooms/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
