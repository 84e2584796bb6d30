/* Output pacing (session_queued / session_notify_writable / on_writable),
 * through the pacer fixture plugin: a stream far larger than sendq_max
 * reaches a fast and a slow reader whole and in order, and neither is
 * dropped, which shows the queue stays bounded on both engines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define BLOB_SIZE 50000

static h_daemon *start(void)
{
    return h_daemon_startv(NULL, "server.plugins=chat pacer",
                           h_fmt("server.plugin_dir=%s", SA_TEST_FIXTURE_DIR),
                           "server.sendq_max=1048576", NULL);
}

/* Reads `count` blobs, checking order and size, then pace_done; sleeps
 * `pause_ms` after each of the first `slow_count` frames. */
static void receive_stream(sa_client *c, int count, int pause_ms, int slow_count)
{
    for (int i = 0; i < count; i++) {
        cJSON *blob = h_expect(c, "blob", H_REPLY_MS);
        if ((int)h_get_num(blob, "seq") != i)
            h_fail("blob %d arrived as number %.0f", i, h_get_num(blob, "seq"));
        if (strlen(h_get_str(blob, "data")) != BLOB_SIZE)
            h_fail("blob %d has %zu bytes of data", i, strlen(h_get_str(blob, "data")));
        if (i < slow_count)
            h_sleep_ms(pause_ms);
    }
    h_expect(c, "pace_done", H_REPLY_MS);
}

static void test_fast_reader_gets_everything(void **state)
{
    (void)state;
    h_daemon *d = start();
    sa_client *c = h_login(d, "fast");
    h_request_ok(c, h_fmt("{\"type\":\"pace\",\"count\":600,\"size\":%d}", BLOB_SIZE));
    receive_stream(c, 600, 0, 0);
    /* The connection is still fine. */
    h_request_ok(c, "{\"type\":\"msg\",\"text\":\"after the stream\"}");
}

static void test_slow_reader_is_not_dropped(void **state)
{
    (void)state;
    h_daemon *d = start();
    sa_client *slow = h_login(d, "slow");
    sa_client *other = h_login(d, "other");
    /* 30 MB through a 1 MiB sendq: only pacing keeps this client alive. */
    h_request_ok(slow, h_fmt("{\"type\":\"pace\",\"count\":600,\"size\":%d}", BLOB_SIZE));
    /* Meanwhile the rest of the server is served as usual. */
    h_request_ok(other, "{\"type\":\"dm\",\"to\":\"other\",\"text\":\"fine\"}");
    h_expect(other, "message", H_REPLY_MS);
    receive_stream(slow, 600, 5, 100);
    h_request_ok(slow, "{\"type\":\"msg\",\"text\":\"still connected\"}");
    h_expect(other, "message", H_REPLY_MS);
}

static void test_disconnect_mid_stream(void **state)
{
    (void)state;
    h_daemon *d = start();
    sa_client *c = h_login(d, "quitter");
    h_request_ok(c, h_fmt("{\"type\":\"pace\",\"count\":5000,\"size\":%d}", BLOB_SIZE));
    h_expect(c, "blob", H_REPLY_MS);
    h_client_close(c);
    /* The stream's state is released; the daemon keeps serving (and exits
     * cleanly at teardown, leak-free under ASan). */
    sa_client *next = h_login(d, "next");
    h_request_ok(next, "{\"type\":\"msg\",\"text\":\"hello\"}");
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_pacing");
    const struct CMUnitTest tests[] = {
        H_TEST(test_fast_reader_gets_everything),
        H_TEST(test_slow_reader_is_not_dropped),
        H_TEST(test_disconnect_mid_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
