/*
 * Unit tests of the client tools' reconnect policy (tools/lib/sa_reconnect.c):
 * the backoff, the --retries budget and when it starts over, and the
 * limits taken from a hello reply.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "sa_reconnect.h"

static int64_t next(sa_reconnect *r, int64_t now_ms)
{
    return sa_reconnect_next(r, "test", "lost", now_ms);
}

static void test_backoff_doubles_to_the_cap(void **state)
{
    (void)state;
    sa_reconnect r;
    sa_reconnect_init(&r, 100);
    sa_reconnect_connected(&r, 0);
    static const int64_t want[] = {200, 400, 800, 1600, 3200, 5000, 5000};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        assert_int_equal(next(&r, 1000), want[i]);
}

static void test_hello_starts_the_backoff_over(void **state)
{
    (void)state;
    sa_reconnect r;
    sa_reconnect_init(&r, 100);
    sa_reconnect_connected(&r, 0);
    assert_int_equal(next(&r, 10), 200);
    assert_int_equal(next(&r, 20), 400);
    sa_reconnect_connected(&r, 30);
    assert_int_equal(next(&r, 40), 200);
    assert_int_equal(r.used, 3); /* a short session does not refill the budget */
}

static void test_budget_runs_out(void **state)
{
    (void)state;
    sa_reconnect r;
    sa_reconnect_init(&r, 2);
    sa_reconnect_connected(&r, 0);
    assert_true(next(&r, 10) > 0);
    sa_reconnect_connected(&r, 20);
    assert_true(next(&r, 30) > 0);
    assert_int_equal(next(&r, 40), -1);

    sa_reconnect_init(&r, 0);
    sa_reconnect_connected(&r, 0);
    assert_int_equal(next(&r, 10), -1);
}

static void test_stable_session_refills_the_budget(void **state)
{
    (void)state;
    sa_reconnect r;
    sa_reconnect_init(&r, 1);
    sa_reconnect_connected(&r, 0);
    assert_true(next(&r, 10) > 0);
    sa_reconnect_connected(&r, 100);
    assert_true(next(&r, 100 + SA_RECONNECT_STABLE_MS) > 0);
    sa_reconnect_connected(&r, 200000);
    assert_int_equal(next(&r, 200000 + SA_RECONNECT_STABLE_MS - 1), -1);
}

static void test_heartbeat_limits(void **state)
{
    (void)state;
    int64_t interval, silence;
    cJSON *reply = cJSON_Parse("{\"type\":\"ok\",\"heartbeat\":{\"interval\":20,\"timeout\":40}}");
    assert_non_null(reply);
    sa_heartbeat_limits(reply, &interval, &silence);
    assert_int_equal(interval, 20000);
    assert_int_equal(silence, 60000);
    cJSON_Delete(reply);

    reply = cJSON_Parse("{\"type\":\"ok\",\"heartbeat\":{\"interval\":-1,\"timeout\":\"x\"}}");
    assert_non_null(reply);
    sa_heartbeat_limits(reply, &interval, &silence);
    assert_int_equal(interval, 0);
    assert_int_equal(silence, 0);
    cJSON_Delete(reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_to_the_cap),
        cmocka_unit_test(test_hello_starts_the_backoff_over),
        cmocka_unit_test(test_budget_runs_out),
        cmocka_unit_test(test_stable_session_refills_the_budget),
        cmocka_unit_test(test_heartbeat_limits),
    };
    return cmocka_run_group_tests_name("tool reconnect", tests, NULL, NULL);
}
