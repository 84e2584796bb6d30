#include "host_services.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "timer.h"

static sa_plugin_ctx *initializing;
static char init_error[512];

void sa_host_services_set_initializing(sa_plugin_ctx *ctx) { initializing = ctx; }

const char *sa_host_services_init_error(void) { return init_error; }

__attribute__((format(printf, 1, 2))) static void fail_init(const char *fmt, ...)
{
    if (init_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(init_error, sizeof init_error, fmt, ap);
    va_end(ap);
}

static const char *plugin_name(const sa_plugin_ctx *ctx) { return ctx->loaded.desc->name; }

__attribute__((format(printf, 3, 4))) static void host_log(sa_plugin_ctx *ctx,
                                                         enum sa_log_level level,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sa_logv(level, plugin_name(ctx), fmt, ap);
    va_end(ap);
}

static const sa_config_key *own_key(sa_plugin_ctx *ctx, const char *key)
{
    const sa_config_key *k = sa_config_key_find(ctx->loaded.desc->config_keys, key);
    if (!k)
        sa_log(SA_LOG_ERROR, plugin_name(ctx), "asked for undeclared config key '%s'", key);
    return k;
}

static const char *host_config_string(sa_plugin_ctx *ctx, const char *key)
{
    const sa_config_key *k = own_key(ctx, key);
    return k ? sa_config_string(sa_the_server->cfg, plugin_name(ctx), k) : "";
}

static int64_t host_config_int(sa_plugin_ctx *ctx, const char *key)
{
    const sa_config_key *k = own_key(ctx, key);
    return k ? sa_config_int(sa_the_server->cfg, plugin_name(ctx), k) : 0;
}

static int host_config_bool(sa_plugin_ctx *ctx, const char *key)
{
    const sa_config_key *k = own_key(ctx, key);
    return k ? sa_config_bool(sa_the_server->cfg, plugin_name(ctx), k) : 0;
}

static int host_register_request(sa_plugin_ctx *ctx, const char *type, sa_request_fn fn)
{
    sa_server *srv = sa_the_server;
    if (ctx != initializing || !type || !*type || !fn) {
        fail_init("plugin %s: register_request('%s') outside init or with bad arguments",
                  plugin_name(ctx), type ? type : "(null)");
        return -1;
    }
    const char *core_types[] = {"hello", "ping", "pong", "bye"};
    for (size_t i = 0; i < sizeof core_types / sizeof core_types[0]; i++)
        if (strcmp(type, core_types[i]) == 0) {
            fail_init("plugin %s: request type '%s' belongs to the core", plugin_name(ctx), type);
            return -1;
        }
    for (size_t i = 0; i < srv->route_count; i++)
        if (strcmp(srv->routes[i].type, type) == 0) {
            fail_init("request type '%s' is handled by both plugin %s and plugin %s", type,
                      plugin_name(srv->routes[i].ctx), plugin_name(ctx));
            return -1;
        }
    sa_route *grown = realloc(srv->routes, (srv->route_count + 1) * sizeof *grown);
    char *copy = strdup(type);
    if (!grown || !copy) {
        if (grown)
            srv->routes = grown;
        free(copy);
        fail_init("out of memory");
        return -1;
    }
    srv->routes = grown;
    srv->routes[srv->route_count++] = (sa_route){.type = copy, .ctx = ctx, .fn = fn};
    return 0;
}

static int host_send_json(sa_session *s, const cJSON *msg)
{
    sa_frame *f = sa_frame_from_json(msg);
    if (!f)
        return -1;
    int rc = sa_session_send(s, f);
    sa_frame_unref(f);
    return rc;
}

static int host_send_frame(sa_session *s, sa_frame *f) { return sa_session_send(s, f); }

static int host_session_notify_writable(sa_plugin_ctx *ctx, sa_session *s, size_t low_water)
{
    return sa_session_notify_writable(s, ctx->index, low_water);
}

static const char *host_session_name(sa_session *s) { return s->name; }

static const char *host_session_peer(sa_session *s) { return s->peer; }

static void host_session_set_data(sa_plugin_ctx *ctx, sa_session *s, void *data)
{
    if (ctx->index < s->plugin_slots)
        s->plugin_data[ctx->index] = data;
}

static void *host_session_get_data(sa_plugin_ctx *ctx, sa_session *s)
{
    return ctx->index < s->plugin_slots ? s->plugin_data[ctx->index] : NULL;
}

static int host_service_provide(sa_plugin_ctx *ctx, const char *name, const void *table)
{
    sa_server *srv = sa_the_server;
    if (ctx != initializing || !name || !table) {
        fail_init("plugin %s: service_provide outside init or with bad arguments",
                  plugin_name(ctx));
        return -1;
    }
    for (size_t i = 0; i < srv->service_count; i++)
        if (strcmp(srv->services[i].name, name) == 0) {
            fail_init("service '%s' is provided by both plugin %s and plugin %s", name,
                      plugin_name(srv->services[i].provider), plugin_name(ctx));
            return -1;
        }
    sa_service *grown = realloc(srv->services, (srv->service_count + 1) * sizeof *grown);
    char *copy = strdup(name);
    if (!grown || !copy) {
        if (grown)
            srv->services = grown;
        free(copy);
        fail_init("out of memory");
        return -1;
    }
    srv->services = grown;
    srv->services[srv->service_count++] = (sa_service){.name = copy, .table = table,
                                                       .provider = ctx};
    return 0;
}

/* Services are registered during the (single-threaded) init phase and only
 * read afterwards, so lookups need no lock. */
static const void *host_service_get(const char *name)
{
    const sa_server *srv = sa_the_server;
    for (size_t i = 0; i < srv->service_count; i++)
        if (strcmp(srv->services[i].name, name) == 0)
            return srv->services[i].table;
    return NULL;
}

static uint64_t host_timer_start(sa_plugin_ctx *ctx, uint64_t delay_ms, uint64_t period_ms,
                                 sa_timer_fn fn, void *arg)
{
    (void)ctx;
    return sa_timer_add(delay_ms, period_ms, fn, arg);
}

static const sa_host host_table = {
    .abi = SA_ABI_VERSION,
    .log = host_log,
    .config_string = host_config_string,
    .config_int = host_config_int,
    .config_bool = host_config_bool,
    .register_request = host_register_request,
    .reply_ok = sa_reply_ok,
    .reply_error = sa_reply_error,
    .send_json = host_send_json,
    .frame_new = sa_frame_from_json,
    .send_frame = host_send_frame,
    .frame_release = sa_frame_unref,
    .session_queued = sa_session_queued,
    .session_notify_writable = host_session_notify_writable,
    .session_close = sa_session_close,
    .session_ref = sa_session_ref,
    .session_unref = sa_session_unref,
    .session_find = sa_registry_find,
    .session_name = host_session_name,
    .session_peer = host_session_peer,
    .session_foreach = sa_registry_foreach,
    .session_set_data = host_session_set_data,
    .session_get_data = host_session_get_data,
    .service_provide = host_service_provide,
    .service_get = host_service_get,
    .timer_start = host_timer_start,
    .timer_cancel = sa_timer_cancel,
    .now_ms = sa_wall_ms,
    .json_get_size = sa_json_get_size,
};

const sa_host *sa_host_services(void) { return &host_table; }
