/* syncasyncd's command line, configuration errors and the loader's
 * refusals (INTERFACE.md), with server.engine set to argv[1]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#ifndef SA_TEST_SYNCASYNCD
#error "SA_TEST_SYNCASYNCD must be defined by the build"
#endif
#ifndef SA_TEST_DEFAULT_CONF
#error "SA_TEST_DEFAULT_CONF must be defined by the build"
#endif
#ifndef SA_TEST_FIXTURE_DIR
#error "SA_TEST_FIXTURE_DIR (folder of the fixture plugins) must be defined by the build"
#endif

#define RUN_MS 15000

typedef struct run_result {
    int status;
    const char *out; /* stdout and stderr together */
} run_result;

/* Runs syncasyncd with -o server.engine=<engine> -o
 * server.listen=127.0.0.1:0 (so that a run that does start harms nothing)
 * and then `args` (NULL-terminated). */
static run_result run_daemon(const char *const *args)
{
    const char *argv[40];
    size_t n = 0;
    argv[n++] = SA_TEST_SYNCASYNCD;
    argv[n++] = "-o";
    argv[n++] = h_fmt("server.engine=%s", h_engine);
    argv[n++] = "-o";
    argv[n++] = "server.listen=127.0.0.1:0";
    for (size_t i = 0; args[i]; i++) {
        if (n + 2 >= sizeof argv / sizeof *argv)
            h_fail("test bug: too many arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    const char *out = NULL, *err = NULL;
    run_result r;
    r.status = h_run(argv, RUN_MS, &out, &err);
    r.out = h_fmt("%s%s", out, err);
    return r;
}

#define RUN(...) run_daemon((const char *const[]){__VA_ARGS__, NULL})

static void expect_status(run_result r, int want, const char *what)
{
    if (r.status != want)
        h_fail("%s: expected exit status %d, got %d; output:\n%s", what, want, r.status, r.out);
}

static void expect_output(run_result r, const char *needle, const char *what)
{
    if (!strstr(r.out, needle))
        h_fail("%s: output should contain \"%s\"; it is:\n%s", what, needle, r.out);
}

static void expect_output_nocase(run_result r, const char *needle, const char *what)
{
    if (!strcasestr(r.out, needle))
        h_fail("%s: output should contain \"%s\" (any case); it is:\n%s", what, needle, r.out);
}

/* A configuration error at start and with -t: exit 2, and the output names
 * FILE:LINE and `key` when given. */
static void expect_config_error(const char *ini, int line, const char *key, const char *what)
{
    for (int check = 0; check < 2; check++) {
        run_result r = check ? RUN("-c", ini, "-t") : RUN("-c", ini);
        const char *label = h_fmt("%s%s", what, check ? " (-t)" : "");
        expect_status(r, 2, label);
        if (line > 0)
            expect_output(r, h_fmt("%s:%d", ini, line), label);
        if (key)
            expect_output(r, key, label);
    }
}

static void test_version_and_help(void **state)
{
    (void)state;
    const char *out = NULL, *err = NULL;
    int status = h_run((const char *const[]){SA_TEST_SYNCASYNCD, "--version", NULL}, RUN_MS, &out,
                       &err);
    if (status != 0 || !*out)
        h_fail("--version: status %d, stdout \"%s\", stderr \"%s\"", status, out, err);
    if (!strstr(out, "1.0"))
        h_fail("--version does not show the version 1.0: %s", out);
    status = h_run((const char *const[]){SA_TEST_SYNCASYNCD, "--help", NULL}, RUN_MS, &out, &err);
    if (status != 0 || !strstr(out, "-c") || !strstr(out, "-o") || !strstr(out, "-t"))
        h_fail("--help: status %d, stdout \"%s\", stderr \"%s\"", status, out, err);
}

static void test_check_default_config(void **state)
{
    (void)state;
    run_result r = RUN("-c", SA_TEST_DEFAULT_CONF, "-t");
    expect_status(r, 0, "-t on the default configuration");
    expect_output(r, "ok", "-t on the default configuration");
    /* From the build tree the source tree's INI is the default. */
    r = RUN("-t");
    expect_status(r, 0, "-t without -c");
    expect_output(r, "ok", "-t without -c");
    r = RUN("-c", SA_TEST_DEFAULT_CONF, "-o", "server.plugins=chat echo", "-t");
    expect_status(r, 0, "-t with chat and echo");
}

static void test_unknown_key(void **state)
{
    (void)state;
    const char *ini = h_write_file("unknown.ini", "[server]\n"
                                                  "engine = async\n"
                                                  "bogus_key = 1\n"
                                                  "plugins = chat\n");
    expect_config_error(ini, 3, "bogus_key", "unknown key in [server]");

    /* In a loaded plugin's section too; an unloaded plugin's section is
     * ignored. */
    ini = h_write_file("chat.ini", "[server]\n"
                                   "plugins = chat\n"
                                   "[chat]\n"
                                   "rate = 5\n"
                                   "colour = red\n");
    expect_config_error(ini, 5, "colour", "unknown key in [chat]");
    ini = h_write_file("unloaded.ini", "[server]\n"
                                       "plugins = chat\n"
                                       "[rooms]\n"
                                       "auto_join = lobby\n"
                                       "anything = goes\n"
                                       "[echo]\n"
                                       "whatever = 1\n");
    run_result r = RUN("-c", ini, "-t");
    expect_status(r, 0, "section of a plugin that is not loaded");

    r = RUN("-c", SA_TEST_DEFAULT_CONF, "-o", "server.bogus=1", "-t");
    expect_status(r, 2, "-o server.bogus=1");
    expect_output(r, "bogus", "-o server.bogus=1");
}

static void test_bad_values(void **state)
{
    (void)state;
    static const char *const lines[][2] = {
        {"max_clients = lots", "max_clients"},
        {"max_clients = 10abc", "max_clients"},
        {"max_clients = 99999999999999999999999999", "max_clients"},
        {"max_clients = -3", "max_clients"},
        {"hello_timeout = soon", "hello_timeout"},
        {"max_frame = 1.5", "max_frame"},
        {"log_level = loud", "log_level"},
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        const char *ini = h_write_file(h_fmt("bad%zu.ini", i),
                                       h_fmt("[server]\nplugins = chat\n%s\n", lines[i][0]));
        expect_config_error(ini, 3, lines[i][1], lines[i][0]);
    }
    const char *ini = h_write_file("badchat.ini", "[server]\n"
                                                  "plugins = chat\n"
                                                  "[chat]\n"
                                                  "rate = fast\n");
    expect_config_error(ini, 4, "rate", "[chat] rate = fast");

    run_result r = RUN("-c", SA_TEST_DEFAULT_CONF, "-o", "server.max_clients=lots", "-t");
    expect_status(r, 2, "-o server.max_clients=lots");
    expect_output(r, "max_clients", "-o server.max_clients=lots");
}

static void test_unknown_engine(void **state)
{
    (void)state;
    for (int check = 0; check < 2; check++) {
        run_result r = check ? RUN("-c", SA_TEST_DEFAULT_CONF, "-o", "server.engine=turbo", "-t")
                             : RUN("-c", SA_TEST_DEFAULT_CONF, "-o", "server.engine=turbo");
        expect_status(r, 2, "server.engine=turbo");
        expect_output(r, "turbo", "server.engine=turbo");
    }
    /* A handler is no engine. */
    run_result r = RUN("-c", SA_TEST_DEFAULT_CONF, "-o", "server.engine=chat", "-t");
    expect_status(r, 2, "server.engine=chat");
}

static void test_unknown_plugin(void **state)
{
    (void)state;
    for (int check = 0; check < 2; check++) {
        run_result r =
            check ? RUN("-c", SA_TEST_DEFAULT_CONF, "-o", "server.plugins=chat nosuchplugin", "-t")
                  : RUN("-c", SA_TEST_DEFAULT_CONF, "-o", "server.plugins=chat nosuchplugin");
        expect_status(r, 2, "plugins = chat nosuchplugin");
        expect_output(r, "nosuchplugin", "plugins = chat nosuchplugin");
    }
    /* An engine is no handler. */
    run_result r = RUN("-c", SA_TEST_DEFAULT_CONF, "-o", "server.plugins=chat engine_async", "-t");
    expect_status(r, 2, "plugins = chat engine_async");
}

static void test_missing_config_file(void **state)
{
    (void)state;
    const char *missing = h_fmt("%s/does-not-exist.ini", h_tempdir());
    run_result r = RUN("-c", missing);
    expect_status(r, 2, "missing -c file");
    expect_output(r, missing, "missing -c file");
    r = RUN("-c", missing, "-t");
    expect_status(r, 2, "missing -c file (-t)");
}

static void test_fixture_plugins(void **state)
{
    (void)state;
    const char *dir = h_fmt("server.plugin_dir=%s", SA_TEST_FIXTURE_DIR);
    for (int check = 0; check < 2; check++) {
        run_result r = check ? RUN("-o", dir, "-o", "server.plugins=chat badabi", "-t")
                             : RUN("-o", dir, "-o", "server.plugins=chat badabi");
        expect_status(r, 2, "plugin with the wrong ABI");
        expect_output_nocase(r, "ABI", "plugin with the wrong ABI");
        expect_output(r, "badabi", "plugin with the wrong ABI");

        r = check ? RUN("-o", dir, "-o", "server.plugins=chat noentry", "-t")
                  : RUN("-o", dir, "-o", "server.plugins=chat noentry");
        expect_status(r, 2, "plugin without an entry point");
        expect_output(r, "noentry", "plugin without an entry point");
    }
    /* The clash shows when the plugins register their requests (at start,
     * after -t's checks). */
    run_result r = RUN("-o", dir, "-o", "server.plugins=chat clash");
    expect_status(r, 2, "two plugins registering \"msg\"");
    expect_output(r, "msg", "two plugins registering \"msg\"");
    /* plugin_dir is searched first but the built-in plugins still load. */
    r = RUN("-o", dir, "-o", "server.plugins=chat echo", "-t");
    expect_status(r, 0, "plugin_dir with the built-in plugins");
}

static void test_port_in_use(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    run_result r = RUN("-c", SA_TEST_DEFAULT_CONF, "-o",
                       h_fmt("server.listen=127.0.0.1:%s", h_daemon_port(d)));
    expect_status(r, 1, "a second daemon on a port in use");
    expect_output(r, "plugin chat", "the plugin-load lines at the default level");
    /* -q governs setup too: only the error remains. */
    r = RUN("-q", "-c", SA_TEST_DEFAULT_CONF, "-o",
            h_fmt("server.listen=127.0.0.1:%s", h_daemon_port(d)));
    expect_status(r, 1, "a quiet second daemon on a port in use");
    expect_output(r, "error", "the error of a quiet daemon");
    if (strstr(r.out, "plugin chat"))
        h_fail("-q still logged the plugin-load lines:\n%s", r.out);
    /* The first one is unharmed. */
    sa_client *c = h_login(d, "alice");
    h_send(c, "{\"type\":\"ping\",\"ts\":1}");
    h_expect(c, "pong", H_REPLY_MS);
}

static void test_long_line(void **state)
{
    (void)state;
    char comment[301];
    comment[0] = ';';
    memset(comment + 1, 'x', 299);
    comment[300] = '\0';
    const char *ini = h_write_file("long.ini", h_fmt("[server]\n"
                                                     "plugins = chat\n"
                                                     "%s\n"
                                                     "max_clients = 5\n",
                                                     comment));
    expect_config_error(ini, 3, NULL, "a 300-byte line");
}

static void test_bad_usage(void **state)
{
    (void)state;
    run_result r = RUN("--no-such-option");
    expect_status(r, 2, "--no-such-option");
    r = RUN("-o", "no_equals_sign", "-t");
    expect_status(r, 2, "-o without =");
    r = RUN("-o", "nosection=1", "-t");
    expect_status(r, 2, "-o without a section");
    r = RUN("-c");
    expect_status(r, 2, "-c without a file");
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_cli");
    const struct CMUnitTest tests[] = {
        H_TEST(test_version_and_help), H_TEST(test_check_default_config),
        H_TEST(test_unknown_key),      H_TEST(test_bad_values),
        H_TEST(test_unknown_engine),   H_TEST(test_unknown_plugin),
        H_TEST(test_missing_config_file), H_TEST(test_fixture_plugins),
        H_TEST(test_port_in_use),      H_TEST(test_long_line),
        H_TEST(test_bad_usage),
    };
    char group[64];
    snprintf(group, sizeof group, "cli/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
