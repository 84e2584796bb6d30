#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "engine_glue.h"
#include "host_services.h"
#include "log.h"
#include "net.h"
#include "timer.h"
#include "tls.h"

sa_server *sa_the_server;

#define SERVER_SECTION "server"
#define TLS_SECTION "tls"

/* The [server] section. Defaults are those of INTERFACE.md. */
static const sa_config_key server_keys[] = {
    {"engine", SA_CFG_NAME, "async", 0, 0, "sync (thread per client) | async (libev)"},
    {"listen", SA_CFG_STRING, "127.0.0.1:5050", 0, 0, "plain listeners, HOST:PORT ..."},
    {"tls_listen", SA_CFG_STRING, "", 0, 0, "TLS listeners (needs [tls])"},
    {"plugins", SA_CFG_STRING, "chat", 0, 0, "handler plugins, loaded in order"},
    {"plugin_dir", SA_CFG_STRING, "", 0, 0, "folders searched before the built-in one"},
    {"max_clients", SA_CFG_INT, "10000", 1, 10000000, "connections served at once"},
    {"max_per_address", SA_CFG_INT, "0", 0, 10000000,
     "connections from one address; 0 = no limit"},
    {"frame_timeout", SA_CFG_INT, "30", 1, 3600,
     "seconds a client may take to send one frame once it began"},
    {"max_frame", SA_CFG_INT, "1048576", 256, 67108864, "largest frame accepted, bytes"},
    {"hello_timeout", SA_CFG_INT, "10", 1, 3600, "seconds to wait for hello"},
    {"heartbeat_interval", SA_CFG_INT, "20", 1, 3600, "seconds of silence before a ping"},
    {"heartbeat_timeout", SA_CFG_INT, "40", 2, 7200, "seconds of silence before closing"},
    {"sendq_max", SA_CFG_INT, "4194304", 4096, INT64_C(1) << 40,
     "bytes queued to one client before it is dropped"},
    {"log_level", SA_CFG_STRING, "info", 0, 0, "error | warn | info | debug"},
    {"workers", SA_CFG_INT, "1", 1, 256,
     "event loops of the async engine (one per core); the sync engine ignores it"},
    {NULL, 0, NULL, 0, 0, NULL},
};

static const sa_config_key tls_keys[] = {
    {"cert", SA_CFG_PATH, "", 0, 0, "certificate chain (PEM), the server's first"},
    {"key", SA_CFG_PATH, "", 0, 0, "private key of the certificate (PEM)"},
    {"handshake_timeout", SA_CFG_INT, "10", 1, 3600,
     "seconds a TLS client has to complete the handshake"},
    {NULL, 0, NULL, 0, 0, NULL},
};

static const sa_config_key no_keys[] = {{NULL, 0, NULL, 0, 0, NULL}};

__attribute__((format(printf, 3, 4))) static void set_error(char *err, size_t errlen,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "FILE:LINE: [section] key" for messages about a value already parsed. */
static void where_in(const sa_config *cfg, const char *section, const char *key, char *buf,
                     size_t len)
{
    const sa_config_entry *e = sa_config_find(cfg, section, key);
    if (!e)
        snprintf(buf, len, "%s: [%s] %s", sa_config_path(cfg), section, key);
    else if (strcmp(e->origin, "-o") == 0)
        snprintf(buf, len, "-o %s.%s", section, key);
    else
        snprintf(buf, len, "%s:%d: [%s] %s", e->origin, e->line, section, key);
}

static void where(const sa_config *cfg, const char *key, char *buf, size_t len)
{
    where_in(cfg, SERVER_SECTION, key, buf, len);
}

static const sa_config_key *server_key(const char *name)
{
    return sa_config_key_find(server_keys, name);
}

static int64_t server_int(sa_config *cfg, const char *name)
{
    return sa_config_int(cfg, SERVER_SECTION, server_key(name));
}

static char **resolve_plugin_dirs(sa_config *cfg, const char *exe_dir)
{
    char **listed = sa_config_split_list(sa_config_string(cfg, SERVER_SECTION,
                                                          server_key("plugin_dir")));
    if (!listed)
        return NULL;
    size_t n = 0;
    while (listed[n])
        n++;
    char **dirs = calloc(n + 2, sizeof *dirs);
    if (!dirs) {
        free(listed);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = listed[i][0] == '/'
                     ? asprintf(&dirs[i], "%s", listed[i])
                     : asprintf(&dirs[i], "%s/%s", sa_config_base_dir(cfg), listed[i]);
        if (rc < 0)
            dirs[i] = NULL;
    }
    dirs[n] = sa_plugin_default_dir(exe_dir);
    free(listed);
    for (size_t i = 0; i <= n; i++) {
        if (!dirs[i]) {
            for (size_t j = 0; j <= n; j++)
                free(dirs[j]);
            free(dirs);
            return NULL;
        }
    }
    return dirs;
}

static int check_listeners(const sa_config *cfg, const char *key, char *const *list, char *err,
                           size_t errlen)
{
    for (size_t i = 0; list[i]; i++) {
        char *host, *port;
        if (sa_net_split_hostport(list[i], &host, &port) != 0) {
            char at[512];
            where(cfg, key, at, sizeof at);
            set_error(err, errlen, "%s: '%s' is not HOST:PORT", at, list[i]);
            return -1;
        }
        free(host);
        free(port);
    }
    return 0;
}

/* Made once, at setup, so that -t proves the certificate and key usable. */
static int make_tls_context(sa_server *srv, char *err, size_t errlen)
{
    sa_config *cfg = srv->cfg;
    char at[512];
    const char *cert = sa_config_string(cfg, TLS_SECTION, sa_config_key_find(tls_keys, "cert"));
    const char *key = sa_config_string(cfg, TLS_SECTION, sa_config_key_find(tls_keys, "key"));
    if (!cert[0] || !key[0]) {
        where(cfg, "tls_listen", at, sizeof at);
        set_error(err, errlen, "%s: TLS listeners need [tls] cert = FILE and key = FILE", at);
        return -1;
    }
    const char *bad_key = NULL;
    char why[768];
    srv->tls_ctx = sa_tls_context_new(cert, key, &bad_key, why, sizeof why);
    if (!srv->tls_ctx) {
        where_in(cfg, TLS_SECTION, bad_key, at, sizeof at);
        set_error(err, errlen, "%s: %s", at, why);
        return -1;
    }
    return 0;
}

static int read_settings(sa_server *srv, const char *exe_dir, char *err, size_t errlen)
{
    sa_config *cfg = srv->cfg;
    sa_server_settings *set = &srv->settings;
    char at[512];
    if (sa_config_check_section(cfg, SERVER_SECTION, server_keys, err, errlen) != 0 ||
        sa_config_check_section(cfg, TLS_SECTION, tls_keys, err, errlen) != 0)
        return -1;

    enum sa_log_level level;
    if (sa_log_level_parse(sa_config_string(cfg, SERVER_SECTION, server_key("log_level")),
                           &level) != 0) {
        where(cfg, "log_level", at, sizeof at);
        set_error(err, errlen, "%s: expected error, warn, info or debug", at);
        return -1;
    }
    sa_log_set_level(level);

    set->config_path = strdup(sa_config_path(cfg));
    set->engine = strdup(sa_config_string(cfg, SERVER_SECTION, server_key("engine")));
    set->listen = sa_config_split_list(sa_config_string(cfg, SERVER_SECTION, server_key("listen")));
    set->tls_listen =
        sa_config_split_list(sa_config_string(cfg, SERVER_SECTION, server_key("tls_listen")));
    set->plugins =
        sa_config_split_list(sa_config_string(cfg, SERVER_SECTION, server_key("plugins")));
    set->plugin_dirs = resolve_plugin_dirs(cfg, exe_dir);
    if (!set->config_path || !set->engine || !set->listen || !set->tls_listen || !set->plugins ||
        !set->plugin_dirs) {
        set_error(err, errlen, "out of memory");
        return -1;
    }
    if (!set->listen[0] && !set->tls_listen[0]) {
        where(cfg, "listen", at, sizeof at);
        set_error(err, errlen, "%s: no listener configured (listen and tls_listen are empty)", at);
        return -1;
    }
    if (check_listeners(cfg, "listen", set->listen, err, errlen) != 0 ||
        check_listeners(cfg, "tls_listen", set->tls_listen, err, errlen) != 0)
        return -1;
    if (set->tls_listen[0] && make_tls_context(srv, err, errlen) != 0)
        return -1;
    set->tls_handshake_timeout_ms =
        sa_config_int(cfg, TLS_SECTION, sa_config_key_find(tls_keys, "handshake_timeout")) * 1000;
    set->max_clients = server_int(cfg, "max_clients");
    set->max_per_address = server_int(cfg, "max_per_address");
    set->frame_timeout_ms = server_int(cfg, "frame_timeout") * 1000;
    set->max_frame = (uint32_t)server_int(cfg, "max_frame");
    set->hello_timeout_ms = server_int(cfg, "hello_timeout") * 1000;
    set->heartbeat_interval_ms = server_int(cfg, "heartbeat_interval") * 1000;
    set->heartbeat_timeout_ms = server_int(cfg, "heartbeat_timeout") * 1000;
    set->sendq_max = (size_t)server_int(cfg, "sendq_max");
    set->workers = (unsigned)server_int(cfg, "workers");
    if (set->heartbeat_timeout_ms <= set->heartbeat_interval_ms) {
        where(cfg, "heartbeat_timeout", at, sizeof at);
        set_error(err, errlen, "%s: must be longer than heartbeat_interval", at);
        return -1;
    }
    return 0;
}

static int names_contain(const char *const *names, const char *name)
{
    for (size_t i = 0; names && names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

/* Index of the loaded plugin providing `service`, or -1. */
static long provider_of(sa_plugin_ctx *loaded, size_t n, const char *service)
{
    for (size_t i = 0; i < n; i++)
        if (names_contain(loaded[i].loaded.desc->provides, service))
            return (long)i;
    return -1;
}

/* 1 when plugin a must start before plugin b. */
static int must_precede(sa_plugin_ctx *loaded, size_t n, size_t a, size_t b)
{
    const sa_plugin *pb = loaded[b].loaded.desc;
    const char *const *lists[] = {pb->requires, pb->uses};
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; lists[l] && lists[l][i]; i++)
            if (provider_of(loaded, n, lists[l][i]) == (long)a)
                return 1;
    return 0;
}

/* Orders plugins so that providers start before users, keeping the
 * configured order otherwise (Kahn's algorithm, lowest index first). */
static int order_plugins(sa_server *srv, sa_plugin_ctx *loaded, size_t n, char *err,
                         size_t errlen)
{
    for (size_t b = 0; b < n; b++) {
        const sa_plugin *p = loaded[b].loaded.desc;
        for (size_t i = 0; p->requires && p->requires[i]; i++)
            if (provider_of(loaded, n, p->requires[i]) < 0) {
                set_error(err, errlen,
                          "plugin %s requires the service '%s', which no plugin in "
                          "`plugins =` provides",
                          p->name, p->requires[i]);
                return -1;
            }
    }
    int *placed = calloc(n ? n : 1, sizeof *placed);
    if (!placed) {
        set_error(err, errlen, "out of memory");
        return -1;
    }
    for (size_t out = 0; out < n; out++) {
        size_t pick = n;
        for (size_t c = 0; c < n && pick == n; c++) {
            if (placed[c])
                continue;
            int ready = 1;
            for (size_t a = 0; a < n && ready; a++)
                if (a != c && !placed[a] && must_precede(loaded, n, a, c))
                    ready = 0;
            if (ready)
                pick = c;
        }
        if (pick == n) {
            set_error(err, errlen, "plugins depend on each other in a cycle");
            free(placed);
            return -1;
        }
        placed[pick] = 1;
        srv->handlers[out] = loaded[pick];
        srv->handlers[out].index = out;
    }
    free(placed);
    return 0;
}

static int load_plugins(sa_server *srv, char *err, size_t errlen)
{
    sa_server_settings *set = &srv->settings;
    char loader_err[768];
    if (sa_plugin_load(set->plugin_dirs, set->engine, SA_PLUGIN_ENGINE,
                       &srv->engine_plugin.loaded, loader_err, sizeof loader_err) != 0) {
        char at[512];
        where(srv->cfg, "engine", at, sizeof at);
        set_error(err, errlen, "%s: %s", at, loader_err);
        return -1;
    }
    size_t n = 0;
    while (set->plugins[n])
        n++;
    if (n > SA_MAX_HANDLER_PLUGINS) {
        char at[512];
        where(srv->cfg, "plugins", at, sizeof at);
        set_error(err, errlen, "%s: at most %d handler plugins", at, SA_MAX_HANDLER_PLUGINS);
        return -1;
    }
    sa_plugin_ctx *loaded = calloc(n ? n : 1, sizeof *loaded);
    srv->handlers = calloc(n ? n : 1, sizeof *srv->handlers);
    if (!loaded || !srv->handlers) {
        free(loaded);
        set_error(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t count = 0; count < n && rc == 0; count++) {
        const char *name = set->plugins[count];
        char at[512];
        where(srv->cfg, "plugins", at, sizeof at);
        for (size_t j = 0; j < count && rc == 0; j++)
            if (strcmp(set->plugins[j], name) == 0) {
                set_error(err, errlen, "%s: plugin '%s' is listed twice", at, name);
                rc = -1;
            }
        if (rc == 0 && sa_plugin_load(set->plugin_dirs, name, SA_PLUGIN_HANDLER,
                                      &loaded[count].loaded, loader_err, sizeof loader_err) != 0) {
            set_error(err, errlen, "%s: %s", at, loader_err);
            rc = -1;
        }
        if (rc != 0)
            break;
        const sa_config_key *keys = loaded[count].loaded.desc->config_keys;
        if (sa_config_check_section(srv->cfg, name, keys ? keys : no_keys, err, errlen) != 0)
            rc = -1;
    }
    if (rc == 0) {
        srv->handler_count = n;
        rc = order_plugins(srv, loaded, n, err, errlen);
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) /* entries never loaded are all zero */
            sa_plugin_unload(&loaded[i].loaded);
        srv->handler_count = 0;
    }
    free(loaded);
    return rc;
}

static char *features_json(const sa_server *srv)
{
    cJSON *names = cJSON_CreateArray();
    for (size_t i = 0; names && srv->settings.plugins[i]; i++)
        if (!cJSON_AddItemToArray(names, cJSON_CreateString(srv->settings.plugins[i]))) {
            cJSON_Delete(names);
            return NULL;
        }
    char *text = names ? cJSON_PrintUnformatted(names) : NULL;
    cJSON_Delete(names);
    return text;
}

sa_server *sa_server_setup(sa_config *cfg, const char *exe_dir, char *err, size_t errlen)
{
    sa_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        set_error(err, errlen, "out of memory");
        return NULL;
    }
    srv->cfg = cfg;
    sa_the_server = srv;
    if (read_settings(srv, exe_dir, err, errlen) != 0 || load_plugins(srv, err, errlen) != 0) {
        sa_server_teardown(srv);
        return NULL;
    }
    sa_log(SA_LOG_DEBUG, "core", "engine %s from %s", srv->settings.engine,
           srv->engine_plugin.loaded.path);
    for (size_t i = 0; i < srv->handler_count; i++)
        sa_log(SA_LOG_INFO, "core", "plugin %s %s from %s", srv->handlers[i].loaded.desc->name,
               srv->handlers[i].loaded.desc->version ? srv->handlers[i].loaded.desc->version : "",
               srv->handlers[i].loaded.path);
    srv->features_json = features_json(srv);
    if (asprintf(&srv->server_id, "syncasyncd/%s", SA_VERSION) < 0)
        srv->server_id = NULL;
    if (!srv->features_json || !srv->server_id) {
        set_error(err, errlen, "out of memory");
        sa_server_teardown(srv);
        return NULL;
    }
    return srv;
}

static int route_cmp(const void *a, const void *b)
{
    return strcmp(((const sa_route *)a)->type, ((const sa_route *)b)->type);
}

const sa_route *sa_server_route(const sa_server *srv, const char *type)
{
    sa_route key = {.type = type};
    return srv->route_count ? bsearch(&key, srv->routes, srv->route_count, sizeof key, route_cmp)
                            : NULL;
}

static void stop_plugins(sa_server *srv)
{
    for (size_t i = srv->handler_count; i-- > 0;) {
        sa_plugin_ctx *ctx = &srv->handlers[i];
        if (ctx->initialized && ctx->loaded.desc->stop)
            ctx->loaded.desc->stop(ctx);
        ctx->initialized = 0;
    }
}

/* Returns 0, 1 (a plugin failed) or 2 (plugins conflict: configuration). */
static int init_plugins(sa_server *srv)
{
    for (size_t i = 0; i < srv->handler_count; i++) {
        sa_plugin_ctx *ctx = &srv->handlers[i];
        sa_host_services_set_initializing(ctx);
        int rc = ctx->loaded.desc->init(ctx, sa_host_services());
        sa_host_services_set_initializing(NULL);
        if (rc == 0)
            ctx->initialized = 1;
        if (rc != 0 || sa_host_services_init_error()[0]) {
            if (sa_host_services_init_error()[0])
                sa_log(SA_LOG_ERROR, "core", "%s: %s", srv->settings.config_path,
                       sa_host_services_init_error());
            else
                sa_log(SA_LOG_ERROR, "core", "plugin %s failed to start",
                       ctx->loaded.desc->name);
            stop_plugins(srv);
            return sa_host_services_init_error()[0] ? 2 : 1;
        }
    }
    qsort(srv->routes, srv->route_count, sizeof *srv->routes, route_cmp);
    return 0;
}

typedef struct signal_watch {
    pthread_t thread;
    sigset_t set;
    const struct sa_engine_ops *ops;
    sa_engine *engine;
} signal_watch;

static void reload_plugins(const sa_server *srv)
{
    sa_log(SA_LOG_INFO, "core", "SIGHUP: reloading plugins' files");
    for (size_t i = 0; i < srv->handler_count; i++)
        if (srv->handlers[i].loaded.desc->on_reload)
            srv->handlers[i].loaded.desc->on_reload(&srv->handlers[i]);
}

/* Signals are blocked in every thread (main does it first) and taken here
 * with sigwait, so the handling may call anything, not only
 * async-signal-safe functions. SIGUSR1 only ends this thread. */
static void *signal_thread(void *arg)
{
    signal_watch *w = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&w->set, &sig) != 0)
            continue;
        if (sig == SIGUSR1)
            return NULL;
        if (sig == SIGHUP) {
            reload_plugins(sa_the_server);
            continue;
        }
        sa_log(SA_LOG_INFO, "core", "%s: shutting down", strsignal(sig));
        w->ops->stop(w->engine);
    }
}

int sa_server_run(sa_server *srv)
{
    if (sa_timers_start() != 0) {
        sa_log(SA_LOG_ERROR, "core", "cannot start the timer thread");
        return 1;
    }
    int rc = init_plugins(srv);
    if (rc != 0) {
        sa_timers_stop();
        return rc;
    }
    const struct sa_engine_ops *ops = srv->engine_plugin.loaded.desc->engine;
    srv->engine_config = (sa_engine_config){
        .listen = (const char *const *)srv->settings.listen,
        .tls_listen = (const char *const *)srv->settings.tls_listen,
        .sendq_max = srv->settings.sendq_max,
        .workers = srv->settings.workers,
        .close_linger_ms = 3000,
        .shutdown_linger_ms = 3000,
    };
    sa_engine_core core;
    sa_engine_glue_init(&core, &srv->engine_config);
    srv->engine = ops->create(&core);
    if (!srv->engine) {
        stop_plugins(srv);
        sa_timers_stop();
        return 1;
    }
    signal_watch watch = {.ops = ops, .engine = srv->engine};
    sigemptyset(&watch.set);
    sigaddset(&watch.set, SIGINT);
    sigaddset(&watch.set, SIGTERM);
    sigaddset(&watch.set, SIGHUP);
    sigaddset(&watch.set, SIGUSR1);
    if (pthread_create(&watch.thread, NULL, signal_thread, &watch) != 0) {
        sa_log(SA_LOG_ERROR, "core", "cannot start the signal thread");
        ops->destroy(srv->engine);
        srv->engine = NULL;
        stop_plugins(srv);
        sa_timers_stop();
        return 1;
    }
    sa_log(SA_LOG_INFO, "core", "syncasyncd %s ready: engine %s, plugins: %s", SA_VERSION,
           srv->settings.engine, srv->features_json);
    rc = ops->run(srv->engine) == 0 ? 0 : 1;
    pthread_kill(watch.thread, SIGUSR1);
    pthread_join(watch.thread, NULL);
    ops->destroy(srv->engine);
    srv->engine = NULL;
    stop_plugins(srv);
    sa_timers_stop();
    sa_log(SA_LOG_INFO, "core", "stopped");
    return rc;
}

void sa_server_teardown(sa_server *srv)
{
    if (!srv)
        return;
    for (size_t i = 0; i < srv->handler_count; i++)
        sa_plugin_unload(&srv->handlers[i].loaded);
    sa_plugin_unload(&srv->engine_plugin.loaded);
    for (size_t i = 0; i < srv->route_count; i++)
        free((char *)srv->routes[i].type);
    for (size_t i = 0; i < srv->service_count; i++)
        free(srv->services[i].name);
    free(srv->routes);
    free(srv->services);
    free(srv->handlers);
    if (srv->settings.plugin_dirs)
        for (size_t i = 0; srv->settings.plugin_dirs[i]; i++)
            free(srv->settings.plugin_dirs[i]);
    free(srv->settings.plugin_dirs);
    free(srv->settings.listen); /* sa_config_split_list: one allocation each */
    free(srv->settings.tls_listen);
    SSL_CTX_free(srv->tls_ctx);
    free(srv->settings.plugins);
    free(srv->settings.engine);
    free(srv->settings.config_path);
    free(srv->features_json);
    free(srv->server_id);
    if (sa_the_server == srv)
        sa_the_server = NULL;
    free(srv);
}
