/* PROTOCOL.md §4: ping/pong and the server's heartbeat, on the engine
 * named by argv[1]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static void test_ping_pong(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, NULL);
    sa_client *c = h_login(d, "alice");

    h_send(c, "{\"type\":\"ping\",\"ts\":12345,\"id\":7}");
    cJSON *pong = h_expect(c, "pong", H_REPLY_MS);
    if (h_get_num(pong, "ts") != 12345 || h_get_num(pong, "id") != 7)
        h_fail("expected pong ts 12345 id 7, got %s", h_json(pong));
    h_assert_absent(pong, "re");

    h_send(c, "{\"type\":\"ping\",\"ts\":\"t-2024\",\"id\":\"p\"}");
    pong = h_expect(c, "pong", H_REPLY_MS);
    h_assert_str(pong, "ts", "t-2024");
    h_assert_str(pong, "id", "p");
    h_assert_absent(pong, "re");

    /* Any ts comes back unchanged, whatever its JSON type. */
    static const char *const values[] = {"1712345678901", "-1.25", "{\"a\":[1,\"x\",null]}",
                                         "[]", "true", "null", "\"\""};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        h_send(c, h_fmt("{\"type\":\"ping\",\"ts\":%s}", values[i]));
        pong = h_expect(c, "pong", H_REPLY_MS);
        cJSON *want = h_keep(cJSON_Parse(values[i]));
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(pong, "ts");
        if (!got || !cJSON_Compare(got, want, 1))
            h_fail("ping ts %s came back as %s", values[i], h_json(pong));
        h_assert_absent(pong, "id");
        h_assert_absent(pong, "re");
    }

    /* 2^53 - 1 has 16 digits, more than cJSON prints by default. Sent as
     * text so that only the server's encoding is tested. */
    static const char big[] = "{\"type\":\"ping\",\"ts\":9007199254740991,\"id\":9007199254740991}";
    h_send_payload(c, big, sizeof big - 1);
    pong = h_expect(c, "pong", H_REPLY_MS);
    if (h_get_num(pong, "ts") != 9007199254740991.0 || h_get_num(pong, "id") != 9007199254740991.0)
        h_fail("ping ts/id 9007199254740991 came back as %s", h_json(pong));
}

/* Server pings carry a ts and are events (no id, no re). */
static void check_server_ping(const cJSON *ping)
{
    if (!cJSON_GetObjectItemCaseSensitive(ping, "ts"))
        h_fail("server ping without ts: %s", h_json(ping));
    h_assert_absent(ping, "re");
    h_assert_absent(ping, "id");
}

static void test_silent_client_is_pinged_then_dropped(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.heartbeat_interval=1",
                                  "server.heartbeat_timeout=3", NULL);
    sa_client *c = h_connect(d);
    sa_client_set_auto_pong(c, 0);
    cJSON *reply = NULL;
    if (sa_client_hello(c, "sleepy", NULL, &reply, H_REPLY_MS) != SA_CLIENT_OK)
        h_fail("hello failed: %s", sa_client_error(c));
    h_assert_str(h_keep(reply), "type", "ok");
    int64_t start = h_now_ms();

    cJSON *ping = h_expect(c, "ping", 2500);
    int64_t ping_at = h_now_ms() - start;
    check_server_ping(ping);
    if (ping_at < 700)
        h_fail("server pinged after %lld ms of silence; interval is 1 s", (long long)ping_at);

    /* Never answered: idle_timeout at ~3 s (more pings may come first). */
    for (int i = 0; i < 10; i++) {
        cJSON *f = h_recv(c, 4000);
        const char *type = h_get_str(f, "type");
        if (strcmp(type, "ping") == 0) {
            check_server_ping(f);
            continue;
        }
        h_assert_str(f, "type", "bye");
        h_assert_str(f, "reason", "idle_timeout");
        break;
    }
    int64_t bye_at = h_now_ms() - start;
    if (bye_at < 2500 || bye_at > 5000)
        h_fail("bye idle_timeout after %lld ms; expected ~3000", (long long)bye_at);
    h_expect_closed(c, H_REPLY_MS);
}

static void test_answering_client_stays(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.heartbeat_interval=1",
                                  "server.heartbeat_timeout=3", NULL);
    /* One answers through the library's auto-pong, one by hand. */
    sa_client *autopong = h_login(d, "auto");
    sa_client *manual = h_connect(d);
    sa_client_set_auto_pong(manual, 0);
    cJSON *reply = NULL;
    if (sa_client_hello(manual, "manual", NULL, &reply, H_REPLY_MS) != SA_CLIENT_OK)
        h_fail("hello failed: %s", sa_client_error(manual));
    h_assert_str(h_keep(reply), "type", "ok");

    int pings = 0;
    int64_t until = h_now_ms() + 5000;
    while (h_now_ms() < until) {
        cJSON *f = NULL;
        int rc = sa_client_recv(manual, &f, 100);
        if (rc == SA_CLIENT_OK) {
            h_keep(f);
            h_assert_str(f, "type", "ping");
            check_server_ping(f);
            cJSON *pong = h_keep(cJSON_CreateObject());
            cJSON_AddStringToObject(pong, "type", "pong");
            cJSON_AddItemToObject(pong, "ts",
                                  cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(f, "ts"), 1));
            if (sa_client_send(manual, pong) != 0)
                h_fail("sending pong failed: %s", sa_client_error(manual));
            pings++;
        } else if (rc != SA_CLIENT_TIMEOUT) {
            h_fail("the answering client lost its connection (status %d) after %d pings", rc,
                   pings);
        }
        /* Pings are answered inside recv; nothing else may come. */
        h_expect_silence(autopong, 100);
    }
    if (pings < 2)
        h_fail("only %d server pings in 5 s with interval 1", pings);
    h_request_ok(manual, "{\"type\":\"dm\",\"to\":\"auto\",\"text\":\"still here\"}");
    cJSON *m = h_expect(autopong, "message", H_REPLY_MS);
    h_assert_str(m, "text", "still here");
}

static void test_talking_client_is_not_pinged(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.heartbeat_interval=1",
                                  "server.heartbeat_timeout=3", NULL);
    sa_client *c = h_connect(d);
    sa_client_set_auto_pong(c, 0);
    cJSON *reply = NULL;
    if (sa_client_hello(c, "chatty", NULL, &reply, H_REPLY_MS) != SA_CLIENT_OK)
        h_fail("hello failed: %s", sa_client_error(c));
    h_keep(reply);
    /* Any frame counts as a sign of life: a ping of our own every 300 ms. */
    for (int i = 0; i < 15; i++) {
        h_send(c, h_fmt("{\"type\":\"ping\",\"ts\":%d}", i));
        cJSON *pong = h_expect(c, "pong", H_REPLY_MS);
        if (h_get_num(pong, "ts") != i)
            h_fail("pong out of order: %s", h_json(pong));
        h_expect_silence(c, 300);
    }
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_heartbeat");
    const struct CMUnitTest tests[] = {
        H_TEST(test_ping_pong),
        H_TEST(test_silent_client_is_pinged_then_dropped),
        H_TEST(test_answering_client_stays),
        H_TEST(test_talking_client_is_not_pinged),
    };
    char group[64];
    snprintf(group, sizeof group, "heartbeat/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
