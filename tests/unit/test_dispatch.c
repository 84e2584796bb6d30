/* Request dispatch without a network: a fake engine captures every frame
 * the core sends, so the envelope errors, the pre-hello rules, the hello
 * handshake and routing can be checked frame by frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dispatch.h"
#include "server.h"
#include "session.h"

#define MAX_CAPTURED 16

static cJSON *captured[MAX_CAPTURED];
static size_t captured_count;
static int close_requested;

static int fake_send(sa_conn *c, sa_frame *f)
{
    (void)c;
    assert_true(f->len >= 4);
    assert_true(captured_count < MAX_CAPTURED);
    captured[captured_count++] = cJSON_ParseWithLength((const char *)f->bytes + 4, f->len - 4);
    return 0;
}

static void fake_close(sa_conn *c)
{
    (void)c;
    close_requested = 1;
}

static const struct sa_engine_ops fake_ops = {.send = fake_send, .close = fake_close};
static const sa_plugin fake_engine = {.abi = SA_ABI_VERSION, .kind = SA_PLUGIN_ENGINE,
                                      .name = "fake", .engine = &fake_ops};

static int echo_calls;
static void echo_handler(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    echo_calls++;
    sa_reply_ok(req, NULL);
}

static sa_route routes[] = {{.type = "echo", .fn = echo_handler}};
static sa_server server;
static sa_session *session;

static int setup(void **state)
{
    (void)state;
    memset(&server, 0, sizeof server);
    server.engine_plugin.loaded.desc = &fake_engine;
    server.settings.engine = "fake";
    server.settings.max_frame = 1024;
    server.settings.heartbeat_interval_ms = 20000;
    server.settings.heartbeat_timeout_ms = 40000;
    server.features_json = "[\"echo\"]";
    server.server_id = "syncasyncd/test";
    server.routes = routes;
    server.route_count = 1;
    sa_the_server = &server;
    session = sa_session_new((sa_conn *)&server, "127.0.0.1:1", 1024, 0, 0);
    assert_non_null(session);
    captured_count = 0;
    close_requested = 0;
    echo_calls = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sa_registry_remove(session);
    sa_session_unref(session);
    for (size_t i = 0; i < captured_count; i++)
        cJSON_Delete(captured[i]);
    sa_the_server = NULL;
    return 0;
}

static void feed(const char *json) { sa_dispatch_frame(session, (const unsigned char *)json, strlen(json)); }

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void assert_error(size_t index, const char *code, const char *re)
{
    assert_true(index < captured_count);
    assert_string_equal(str(captured[index], "type"), "error");
    assert_string_equal(str(captured[index], "code"), code);
    if (re)
        assert_string_equal(str(captured[index], "re"), re);
    else
        assert_null(cJSON_GetObjectItemCaseSensitive(captured[index], "re"));
    assert_non_null(str(captured[index], "message"));
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(sa_dispatch_classify("hello", 0, 0), SA_ROUTE_HELLO);
    assert_int_equal(sa_dispatch_classify("ping", 0, 0), SA_ROUTE_PING);
    assert_int_equal(sa_dispatch_classify("msg", 0, 1), SA_ROUTE_NOT_AUTHENTICATED);
    assert_int_equal(sa_dispatch_classify("nope", 0, 0), SA_ROUTE_NOT_AUTHENTICATED);
    assert_int_equal(sa_dispatch_classify("pong", 0, 0), SA_ROUTE_NOT_AUTHENTICATED);
    assert_int_equal(sa_dispatch_classify("msg", 1, 1), SA_ROUTE_PLUGIN);
    assert_int_equal(sa_dispatch_classify("nope", 1, 0), SA_ROUTE_UNKNOWN);
    assert_int_equal(sa_dispatch_classify("pong", 1, 0), SA_ROUTE_PONG);
    assert_int_equal(sa_dispatch_classify("bye", 1, 0), SA_ROUTE_BYE);
}

static void test_envelope_errors_echo_re_and_id(void **state)
{
    (void)state;
    feed("not json");
    feed("[1]");
    feed("{\"id\":5}");
    feed("{\"type\":\"echo\",\"id\":\"x\"}");
    assert_int_equal(captured_count, 4);
    assert_error(0, "bad_json", NULL);
    assert_error(1, "bad_request", NULL);
    assert_error(2, "bad_request", NULL);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(captured[2], "id")->valuedouble, 5);
    assert_error(3, "not_authenticated", "echo");
    assert_string_equal(str(captured[3], "id"), "x");
    assert_int_equal(echo_calls, 0);
}

static void test_ping_before_hello(void **state)
{
    (void)state;
    feed("{\"type\":\"ping\",\"ts\":\"abc\",\"id\":3}");
    assert_int_equal(captured_count, 1);
    assert_string_equal(str(captured[0], "type"), "pong");
    assert_string_equal(str(captured[0], "ts"), "abc");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(captured[0], "id")->valuedouble, 3);
    assert_null(cJSON_GetObjectItemCaseSensitive(captured[0], "re"));
}

static void test_hello_then_routing(void **state)
{
    (void)state;
    feed("{\"type\":\"hello\",\"id\":1,\"name\":\"a b\"}");
    assert_error(0, "bad_name", "hello");
    feed("{\"type\":\"hello\",\"id\":2,\"name\":\"Alice\",\"proto\":1}");
    assert_int_equal(captured_count, 2);
    const cJSON *ok = captured[1];
    assert_string_equal(str(ok, "type"), "ok");
    assert_string_equal(str(ok, "re"), "hello");
    assert_string_equal(str(ok, "name"), "Alice");
    assert_string_equal(str(ok, "engine"), "fake");
    assert_int_equal(strlen(str(ok, "session")), 32);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(ok, "max_frame")->valuedouble, 1024);
    const cJSON *hb = cJSON_GetObjectItemCaseSensitive(ok, "heartbeat");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(hb, "interval")->valuedouble, 20);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(hb, "timeout")->valuedouble, 40);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ok, "features"), 0)
                            ->valuestring, "echo");

    feed("{\"type\":\"hello\",\"name\":\"x\"}");
    assert_error(2, "bad_request", "hello");
    feed("{\"type\":\"echo\",\"id\":9}");
    assert_int_equal(echo_calls, 1);
    assert_string_equal(str(captured[3], "type"), "ok");
    assert_string_equal(str(captured[3], "re"), "echo");
    feed("{\"type\":\"nope\"}");
    assert_error(4, "unknown_type", "nope");
    feed("{\"type\":\"pong\"}");
    assert_int_equal(captured_count, 5);
    assert_false(close_requested);
    feed("{\"type\":\"bye\"}");
    assert_true(close_requested);
}

static void test_name_taken_is_case_insensitive(void **state)
{
    (void)state;
    sa_session *other = sa_session_new((sa_conn *)&server, "127.0.0.1:2", 1024, 0, 0);
    assert_non_null(other);
    assert_int_equal(sa_registry_add(other, "bob"), 0);
    feed("{\"type\":\"hello\",\"name\":\"BOB\"}");
    assert_error(0, "name_taken", "hello");
    sa_session *found = sa_registry_find("Bob");
    assert_ptr_equal(found, other);
    sa_session_unref(found);
    feed("{\"type\":\"hello\",\"name\":\"bobby\"}");
    assert_string_equal(str(captured[1], "type"), "ok");
    sa_registry_remove(other);
    sa_session_unref(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test_setup_teardown(test_envelope_errors_echo_re_and_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_before_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_then_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_taken_is_case_insensitive, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
