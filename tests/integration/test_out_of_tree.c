/* The plugin author's path (docs/plugins.md): install SyncAsync into a
 * prefix, build the example plugin out of tree with nothing but the
 * installed headers and `pkg-config syncasync-plugin`, enable it with
 * plugin_dir, and talk to it through the engine under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

/* Splits pkg-config's output into argv words (it prints one line). */
static size_t split_words(char *text, const char **words, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *w = strtok_r(text, " \t\n", &save); w && n < max;
         w = strtok_r(NULL, " \t\n", &save))
        words[n++] = w;
    return n;
}

static void test_example_plugin_out_of_tree(void **state)
{
    (void)state;
    const char *prefix = h_fmt("%s/prefix", h_tempdir());
    const char *out = NULL, *err = NULL;
    const char *install[] = {SA_TEST_CMAKE, "--install", SA_TEST_BUILD_DIR, "--prefix", prefix, NULL};
    if (h_run(install, 60000, &out, &err) != 0)
        h_fail("cmake --install failed: %s", err);

    /* pkg-config finds the installed .pc; libdir varies (lib, lib64, multiarch). */
    const char *find[] = {"/bin/sh", "-c",
                          h_fmt("dirname \"$(find '%s' -name syncasync-plugin.pc | head -n 1)\"",
                                prefix),
                          NULL};
    if (h_run(find, 10000, &out, &err) != 0 || !out[0])
        h_fail("no syncasync-plugin.pc under %s", prefix);
    char *pc_dir = strndup(out, strcspn(out, "\n"));
    const char *cflags_cmd[] = {"/usr/bin/env", h_fmt("PKG_CONFIG_PATH=%s", pc_dir), "pkg-config",
                                "--cflags", "syncasync-plugin", NULL};
    free(pc_dir);
    if (h_run(cflags_cmd, 10000, &out, &err) != 0)
        h_fail("pkg-config --cflags syncasync-plugin failed: %s", err);
    if (!strstr(out, prefix))
        h_fail("pkg-config points at '%s', not at the prefix %s", out, prefix);

    const char *plugin_dir = h_fmt("%s/oot", h_tempdir());
    const char *mkdir_cmd[] = {"/bin/mkdir", "-p", plugin_dir, NULL};
    h_run(mkdir_cmd, 5000, NULL, NULL);
    char *cflags = strdup(out);
    const char *cc[64] = {SA_TEST_CC, "-shared", "-Wall", "-Wextra", "-Werror", "-o",
                          h_fmt("%s/echo.so", plugin_dir), SA_TEST_ECHO_SOURCE};
    size_t n = 8;
    n += split_words(cflags, cc + n, 60 - n);
    cc[n] = NULL;
    int rc = h_run(cc, 60000, &out, &err);
    free(cflags);
    if (rc != 0)
        h_fail("out-of-tree build of echo.c failed: %s", err);

    const char *nm[] = {"/bin/sh", "-c", h_fmt("nm -D --defined-only '%s/echo.so' | grep ' T '",
                                          plugin_dir), NULL};
    if (h_run(nm, 10000, &out, &err) != 0 || !strstr(out, "syncasync_plugin_entry") ||
        strchr(strchr(out, '\n') + 1, 'T'))
        h_fail("the plugin must export exactly syncasync_plugin_entry, it exports:\n%s", out);

    h_daemon *d = h_daemon_startv(NULL, "server.plugins=chat echo",
                                  h_fmt("server.plugin_dir=%s", plugin_dir), "echo.prefix=oot:",
                                  NULL);
    if (!h_daemon_log_contains(d, h_fmt("plugin echo 1.0 from %s/echo.so", plugin_dir)) &&
        !h_daemon_log_contains(d, h_fmt("from %s/echo.so", plugin_dir)))
        h_fail("the daemon did not load the out-of-tree echo.so");
    sa_client *c = h_login(d, "author");
    cJSON *reply = h_request_ok(c, "{\"type\":\"echo\",\"text\":\"hi\"}");
    h_assert_str(reply, "text", "oot:hi");
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_out_of_tree");
    const struct CMUnitTest tests[] = {
        H_TEST(test_example_plugin_out_of_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
