/*
 * Fuzzes request dispatch without a network, like tests/unit/test_dispatch.c:
 * sa_the_server is set up by hand with a fake engine that keeps every frame
 * the core sends, and one fake handler plugin. The input is one request
 * payload, dispatched twice: on a new session (before hello), then on a
 * session that completed hello. Every frame sent must be a well-formed
 * reply (length header, UTF-8 JSON object with a known type); then each
 * is released and both sessions are freed, so that leaks show.
 *
 * The fake plugin handles "echo" (ok, echoing the request's members) and
 * "fail" (error, with the members as extra fields), and refuses the hello
 * names "refused" (may retry) and "fatal" (closed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "fuzz_target.h"
#include "log.h"
#include "server.h"
#include "session.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_dispatch: %s\n", what);
    abort();
}

/* ---- the fake engine ------------------------------------------------ */

/* Frames "sent", each holding a reference that release_sent() drops. The
 * array is reused from one input to the next and lives as long as the
 * process. */
static sa_frame **sent;
static size_t sent_count, sent_cap;
static int close_requested;

static int fake_send(sa_conn *c, sa_frame *f)
{
    (void)c;
    if (sent_count == sent_cap) {
        size_t cap = sent_cap ? sent_cap * 2 : 8;
        sa_frame **grown = realloc(sent, cap * sizeof *grown);
        if (!grown)
            return -1;
        sent = grown;
        sent_cap = cap;
    }
    sa_frame_ref(f); /* an engine keeps its own reference (engine.h) */
    sent[sent_count++] = f;
    return 0;
}

static void fake_close(sa_conn *c)
{
    (void)c;
    close_requested = 1;
}

static const struct sa_engine_ops fake_engine_ops = {.send = fake_send, .close = fake_close};
static const sa_plugin fake_engine = {.abi = SA_ABI_VERSION, .kind = SA_PLUGIN_ENGINE,
                                      .name = "fake", .engine = &fake_engine_ops};

/* ---- the fake handler plugin ------------------------------------------ */

static void echo_request(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    sa_reply_ok(req, req->body);
}

static void fail_request(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    sa_reply_error(req, "internal", "failed on purpose", req->body);
}

static enum sa_hello_verdict check_hello(sa_plugin_ctx *ctx, const sa_request *hello,
                                         const char **code, const char **message)
{
    (void)ctx;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(hello->body, "name");
    const char *text = cJSON_IsString(name) ? name->valuestring : "";
    *code = "auth_failed";
    *message = "this name is refused";
    if (strcmp(text, "fatal") == 0)
        return SA_HELLO_FATAL;
    return strcmp(text, "refused") == 0 ? SA_HELLO_REFUSE : SA_HELLO_ACCEPT;
}

static const sa_plugin fake_handler = {.abi = SA_ABI_VERSION, .kind = SA_PLUGIN_HANDLER,
                                       .name = "fuzz", .on_hello_check = check_hello};

static sa_plugin_ctx handlers[] = {{.index = 0, .loaded = {.desc = &fake_handler}}};
/* Sorted by type: the server looks routes up with bsearch. */
static sa_route routes[] = {{.type = "echo", .ctx = &handlers[0], .fn = echo_request},
                            {.type = "fail", .ctx = &handlers[0], .fn = fail_request}};
static sa_server server;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    server.engine_plugin.loaded.desc = &fake_engine;
    server.settings.engine = "fake";
    server.settings.max_frame = 1024;
    server.settings.heartbeat_interval_ms = 20000;
    server.settings.heartbeat_timeout_ms = 40000;
    server.features_json = "[\"echo\",\"fail\"]";
    server.server_id = "syncasyncd/fuzz";
    server.handlers = handlers;
    server.handler_count = sizeof handlers / sizeof handlers[0];
    server.routes = routes;
    server.route_count = sizeof routes / sizeof routes[0];
    sa_the_server = &server;
    sa_log_set_level(SA_LOG_ERROR); /* a debug line per request would drown the output */
    return 0;
}

/* ---- checks ----------------------------------------------------------- */

static const char *string_member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static uint32_t read_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Returns the frame's "type" (a static string) after checking the frame. */
static const char *check_frame(const sa_frame *f)
{
    if (f->len <= SA_FRAME_HEADER || read_be32(f->bytes) != f->len - SA_FRAME_HEADER)
        fail("a frame's length header does not match its payload");
    const unsigned char *payload = f->bytes + SA_FRAME_HEADER;
    size_t len = f->len - SA_FRAME_HEADER;
    if (!sa_utf8_valid(payload, len))
        fail("a frame sent is not UTF-8");
    cJSON *msg = cJSON_ParseWithLength((const char *)payload, len); /* ours; deleted below */
    if (!cJSON_IsObject(msg))
        fail("a frame sent is not a JSON object");
    static const char *const known[] = {"ok", "error", "pong", "bye"};
    const char *type = string_member(msg, "type"), *result = NULL;
    for (size_t i = 0; type && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(type, known[i]) == 0)
            result = known[i];
    if (!result)
        fail("a frame sent has no known type");
    if (strcmp(result, "error") == 0 &&
        (!string_member(msg, "code") || !string_member(msg, "message")))
        fail("an error reply lacks its code or message");
    cJSON_Delete(msg);
    return result;
}

/* Checks every frame sent since the last call, then releases them.
 * Returns how many were "ok" replies. */
static size_t release_sent(void)
{
    size_t ok = 0;
    for (size_t i = 0; i < sent_count; i++) {
        ok += strcmp(check_frame(sent[i]), "ok") == 0;
        sa_frame_unref(sent[i]);
    }
    sent_count = 0;
    return ok;
}

/* ---- the two sessions ------------------------------------------------- */

static sa_session *new_session(void)
{
    /* The conn is never dereferenced: the fake engine ignores it. */
    sa_session *s = sa_session_new((sa_conn *)&server, "127.0.0.1:1", server.settings.max_frame,
                                   server.handler_count, 0);
    if (!s)
        fail("out of memory");
    close_requested = 0;
    return s;
}

/* What the engine does when a connection is gone. */
static void end_session(sa_session *s)
{
    sa_session_mark_gone(s);
    if (s->name)
        sa_dispatch_departure(s);
    sa_session_unref(s);
    release_sent();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sa_session *before = new_session();
    sa_dispatch_frame(before, data, size);
    release_sent();
    end_session(before);

    static const char hello[] = "{\"type\":\"hello\",\"id\":1,\"name\":\"fuzzer\"}";
    sa_session *after = new_session();
    sa_dispatch_frame(after, (const unsigned char *)hello, sizeof hello - 1);
    if (release_sent() != 1 || !after->name || close_requested)
        fail("the fixed hello was not accepted");
    sa_dispatch_frame(after, data, size);
    release_sent();
    end_session(after);
    return 0;
}
