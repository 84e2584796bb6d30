#include "dispatch.h"

#include <pthread.h>
#include <string.h>

#include "log.h"
#include "server.h"
#include "session.h"

static pthread_mutex_t hello_lock = PTHREAD_MUTEX_INITIALIZER;

enum sa_route_kind sa_dispatch_classify(const char *type, int after_hello, int plugin_handles)
{
    if (strcmp(type, "hello") == 0)
        return SA_ROUTE_HELLO;
    if (strcmp(type, "ping") == 0)
        return SA_ROUTE_PING;
    if (strcmp(type, "bye") == 0)
        return SA_ROUTE_BYE;
    if (!after_hello)
        return SA_ROUTE_NOT_AUTHENTICATED;
    if (strcmp(type, "pong") == 0)
        return SA_ROUTE_PONG;
    return plugin_handles ? SA_ROUTE_PLUGIN : SA_ROUTE_UNKNOWN;
}

static int send_and_release(sa_session *s, sa_frame *f)
{
    if (!f)
        return -1;
    int rc = sa_session_send(s, f);
    sa_frame_unref(f);
    return rc;
}

static const cJSON *request_id(const sa_request *req)
{
    const sa_request_private *priv = req->host_private;
    return priv ? priv->id : NULL;
}

int sa_reply_ok(const sa_request *req, const cJSON *fields)
{
    return send_and_release(req->session,
                            sa_reply_frame("ok", req->type, request_id(req), NULL, NULL, fields));
}

int sa_reply_error(const sa_request *req, const char *code, const char *message,
                   const cJSON *extra)
{
    return send_and_release(req->session, sa_reply_frame("error", req->type, request_id(req),
                                                         code, message, extra));
}

static void handle_ping(const sa_request *req)
{
    cJSON *pong = cJSON_CreateObject();
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(req->body, "ts");
    const cJSON *id = request_id(req);
    if (pong && cJSON_AddStringToObject(pong, "type", "pong") &&
        (!ts || cJSON_AddItemToObject(pong, "ts", sa_json_copy_exact(ts))) &&
        (!id || cJSON_AddItemToObject(pong, "id", sa_json_copy_exact(id))))
        send_and_release(req->session, sa_frame_from_json(pong));
    cJSON_Delete(pong);
}

static cJSON *hello_result(const sa_session *s)
{
    const sa_server *srv = sa_the_server;
    cJSON *r = cJSON_CreateObject();
    cJSON *heartbeat = cJSON_CreateObject();
    cJSON *features = cJSON_Parse(srv->features_json);
    if (!r || !heartbeat || !features ||
        !cJSON_AddNumberToObject(heartbeat, "interval",
                                 (double)(srv->settings.heartbeat_interval_ms / 1000)) ||
        !cJSON_AddNumberToObject(heartbeat, "timeout",
                                 (double)(srv->settings.heartbeat_timeout_ms / 1000)) ||
        !cJSON_AddStringToObject(r, "name", s->name) ||
        !cJSON_AddStringToObject(r, "session", s->id) ||
        !cJSON_AddStringToObject(r, "server", srv->server_id) ||
        !cJSON_AddStringToObject(r, "engine", srv->settings.engine) ||
        !cJSON_AddNumberToObject(r, "proto", 1) ||
        !cJSON_AddNumberToObject(r, "max_frame", srv->settings.max_frame)) {
        cJSON_Delete(r);
        cJSON_Delete(heartbeat);
        cJSON_Delete(features);
        return NULL;
    }
    cJSON_AddItemToObject(r, "heartbeat", heartbeat);
    cJSON_AddItemToObject(r, "features", features);
    return r;
}

/* Runs every plugin's hello check; returns 0 when all accept. */
static int hello_checks_pass(const sa_request *req)
{
    const sa_server *srv = sa_the_server;
    for (size_t i = 0; i < srv->handler_count; i++) {
        sa_plugin_ctx *ctx = &srv->handlers[i];
        const sa_plugin *p = ctx->loaded.desc;
        if (!p->on_hello_check)
            continue;
        const char *code = "auth_failed", *message = "refused";
        enum sa_hello_verdict v = p->on_hello_check(ctx, req, &code, &message);
        if (v == SA_HELLO_ACCEPT)
            continue;
        sa_reply_error(req, code, message, NULL);
        if (v == SA_HELLO_FATAL)
            sa_session_close(req->session, code);
        return -1;
    }
    return 0;
}

static void handle_hello(const sa_request *req)
{
    sa_session *s = req->session;
    if (s->name) {
        sa_reply_error(req, "bad_request", "hello was already accepted on this connection", NULL);
        return;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(req->body, "name");
    if (!cJSON_IsString(name) || !sa_name_valid(name->valuestring, 32)) {
        sa_reply_error(req, "bad_name", "name must be 1 to 32 bytes of A-Z a-z 0-9 _ . -", NULL);
        return;
    }
    const cJSON *proto = cJSON_GetObjectItemCaseSensitive(req->body, "proto");
    if (proto && !(cJSON_IsNumber(proto) && proto->valuedouble == 1)) {
        sa_reply_error(req, "bad_request", "this server speaks protocol version 1", NULL);
        return;
    }
    if (hello_checks_pass(req) != 0)
        return;
    /* Arrivals and departures are serialized (hello_lock): once a client
     * has its hello reply, the plugins have finished announcing it, so a
     * user who arrives next sees it settled (in its rooms, online), and a
     * name is free again only once its owner's departure was announced. */
    pthread_mutex_lock(&hello_lock);
    if (sa_registry_add(s, name->valuestring) != 0) {
        pthread_mutex_unlock(&hello_lock);
        sa_reply_error(req, "name_taken", "that name is in use", NULL);
        return;
    }
    cJSON *result = hello_result(s);
    if (!result || sa_reply_ok(req, result) != 0) {
        pthread_mutex_unlock(&hello_lock);
        cJSON_Delete(result);
        sa_log(SA_LOG_WARN, "core", "%s: hello reply could not be sent", s->peer);
        sa_session_close(s, NULL);
        return;
    }
    cJSON_Delete(result);
    sa_log(SA_LOG_DEBUG, "core", "%s: hello as %s", s->peer, s->name);
    const sa_server *srv = sa_the_server;
    for (size_t i = 0; i < srv->handler_count; i++)
        if (srv->handlers[i].loaded.desc->on_hello)
            srv->handlers[i].loaded.desc->on_hello(&srv->handlers[i], s);
    pthread_mutex_unlock(&hello_lock);
}

void sa_dispatch_frame(sa_session *s, const unsigned char *payload, size_t len)
{
    sa_envelope env;
    sa_request_private priv = {0};
    int valid = sa_envelope_parse(payload, len, &env) == 0;
    priv.id = env.id;
    sa_request req = {.session = s, .type = env.type, .body = env.root, .host_private = &priv};
    if (!valid) {
        sa_reply_error(&req, env.error, env.message, NULL);
        sa_envelope_free(&env);
        return;
    }
    const sa_route *route = sa_server_route(sa_the_server, env.type);
    switch (sa_dispatch_classify(env.type, s->name != NULL, route != NULL)) {
    case SA_ROUTE_HELLO:
        handle_hello(&req);
        break;
    case SA_ROUTE_PING:
        handle_ping(&req);
        break;
    case SA_ROUTE_PONG:
        break;
    case SA_ROUTE_BYE:
        sa_session_close(s, NULL);
        break;
    case SA_ROUTE_PLUGIN:
        route->fn(route->ctx, &req);
        break;
    case SA_ROUTE_UNKNOWN:
        sa_reply_error(&req, "unknown_type", "no plugin on this server handles this type", NULL);
        break;
    case SA_ROUTE_NOT_AUTHENTICATED:
        sa_reply_error(&req, "not_authenticated", "say hello first", NULL);
        break;
    }
    sa_envelope_free(&env);
}

void sa_dispatch_departure(sa_session *s)
{
    const sa_server *srv = sa_the_server;
    pthread_mutex_lock(&hello_lock);
    sa_registry_remove(s);
    /* Reverse start order: a plugin leaves before those it builds on. */
    for (size_t i = srv->handler_count; i-- > 0;)
        if (srv->handlers[i].loaded.desc->on_disconnect)
            srv->handlers[i].loaded.desc->on_disconnect(&srv->handlers[i], s);
    pthread_mutex_unlock(&hello_lock);
}
