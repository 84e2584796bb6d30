/* The example plugin "echo" through the engine named by argv[1]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static void expect_echo(sa_client *c, const char *text, const char *want, int count)
{
    cJSON *ok = h_request_ok(c, h_fmt("{\"type\":\"echo\",\"text\":\"%s\"}", text));
    h_assert_str(ok, "re", "echo");
    h_assert_str(ok, "text", want);
    if (h_get_num(ok, "count") != count)
        h_fail("expected count %d, got %s", count, h_json(ok));
}

static int features_has(const cJSON *hello_ok, const char *name)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(hello_ok, "features"))
    {
        if (cJSON_IsString(item) && strcmp(item->valuestring, name) == 0)
            return 1;
    }
    return 0;
}

static cJSON *hello(sa_client *c, const char *name)
{
    cJSON *reply = NULL;
    if (sa_client_hello(c, name, NULL, &reply, H_REPLY_MS) != SA_CLIENT_OK)
        h_fail("hello %s failed: %s", name, sa_client_error(c));
    h_keep(reply);
    h_assert_str(reply, "type", "ok");
    return reply;
}

static void test_echo_counts_per_session(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat echo", "echo.prefix=echo:", NULL);
    sa_client *alice = h_connect(d);
    h_request_error(alice, "{\"type\":\"echo\",\"text\":\"early\"}", "not_authenticated");
    cJSON *ok = hello(alice, "alice");
    if (!features_has(ok, "chat") || !features_has(ok, "echo"))
        h_fail("features should list chat and echo: %s", h_json(ok));

    expect_echo(alice, "hi", "echo:hi", 1);
    expect_echo(alice, "again", "echo:again", 2);
    sa_client *bob = h_login(d, "bob");
    expect_echo(bob, "bob here", "echo:bob here", 1);
    expect_echo(alice, "", "echo:", 3);
    /* Chat still works beside it. */
    h_request_ok(alice, "{\"type\":\"msg\",\"text\":\"both\"}");
    h_assert_str(h_expect(bob, "message", H_REPLY_MS), "text", "both");
    /* Counts are per session, not per name. */
    h_client_close(bob);
    sa_client *bob2 = h_connect(d);
    int64_t deadline = h_now_ms() + 3000;
    for (;;) {
        cJSON *reply = NULL;
        if (sa_client_hello(bob2, "bob", NULL, &reply, H_REPLY_MS) != SA_CLIENT_OK)
            h_fail("hello failed: %s", sa_client_error(bob2));
        if (strcmp(h_get_str(h_keep(reply), "type"), "ok") == 0)
            break;
        if (h_now_ms() > deadline)
            h_fail("bob's name still taken 3 s after he left");
        h_sleep_ms(50);
    }
    expect_echo(bob2, "new", "echo:new", 1);
}

static void test_echo_alone_from_ini(void **state)
{
    (void)state;
    const char *ini = h_write_file("echo.ini", "[server]\n"
                                               "plugins = echo\n"
                                               "[echo]\n"
                                               "prefix = >\n");
    h_daemon *d = h_daemon_startv(ini, NULL);
    sa_client *c = h_connect(d);
    cJSON *ok = hello(c, "alice");
    if (features_has(ok, "chat") || !features_has(ok, "echo"))
        h_fail("features should be just echo: %s", h_json(ok));
    expect_echo(c, "x", ">x", 1);
    h_request_error(c, "{\"type\":\"msg\",\"text\":\"x\"}", "unknown_type");
    expect_echo(c, "y", ">y", 2);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_echo");
    const struct CMUnitTest tests[] = {
        H_TEST(test_echo_counts_per_session),
        H_TEST(test_echo_alone_from_ini),
    };
    char group[64];
    snprintf(group, sizeof group, "echo/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
