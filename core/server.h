/*
 * The host's state: settings of [server], the loaded plugins in start
 * order, the request routes and the services. Built once by sa_server_setup
 * before anything runs, read-only while serving (so reads need no lock),
 * torn down by sa_server_teardown.
 */
#ifndef SA_SERVER_H
#define SA_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <syncasync/engine.h>

#include "config.h"
#include "plugin_loader.h"

/* Each session keeps one bit per handler plugin (writable_wanted). */
#define SA_MAX_HANDLER_PLUGINS 64

/* The host's record of one plugin (sa_plugin_ctx of the public API). */
struct sa_plugin_ctx {
    size_t index;            /* position in start order; slot in session data */
    sa_loaded_plugin loaded; /* the .so and its descriptor */
    int initialized;         /* init() succeeded: stop() is due */
};

typedef struct sa_route {
    const char *type; /* owned by the route table */
    sa_plugin_ctx *ctx;
    sa_request_fn fn;
} sa_route;

typedef struct sa_service {
    char *name;
    const void *table;
    sa_plugin_ctx *provider;
} sa_service;

typedef struct sa_server_settings {
    char *config_path;
    char *engine;
    char **listen;  /* NULL-terminated (sa_config_split_list) */
    char **tls_listen; /* NULL-terminated; empty when TLS is not used */
    char **plugins; /* NULL-terminated */
    char **plugin_dirs; /* search path: plugin_dir entries, then the default */
    int64_t max_clients;
    int64_t max_per_address; /* 0 = no limit */
    uint32_t max_frame;
    int64_t hello_timeout_ms;
    int64_t heartbeat_interval_ms;
    int64_t heartbeat_timeout_ms;
    int64_t frame_timeout_ms; /* a started frame must be complete by then */
    size_t sendq_max;
    unsigned workers; /* event loops an engine may run */
    int64_t tls_handshake_timeout_ms;
} sa_server_settings;

typedef struct sa_server {
    sa_config *cfg;
    sa_server_settings settings;
    struct ssl_ctx_st *tls_ctx; /* owned (SSL_CTX); NULL without tls_listen */

    sa_plugin_ctx engine_plugin;
    sa_plugin_ctx *handlers; /* in start order */
    size_t handler_count;

    sa_route *routes; /* sorted by type, for bsearch */
    size_t route_count;
    sa_service *services;
    size_t service_count;

    char *features_json; /* the hello reply's "features" array, encoded */
    char *server_id;     /* "syncasyncd/VERSION" */

    sa_engine_config engine_config;
    sa_engine *engine;
} sa_server;

/* The one server of this process (services need it without a context). */
extern sa_server *sa_the_server;

/* Reads [server], loads the engine and every handler plugin, checks every
 * plugin's section, orders them by their service dependencies. Nothing
 * runs yet. On error writes the message and returns NULL. exit_code is 2
 * for configuration problems. */
sa_server *sa_server_setup(sa_config *cfg, const char *exe_dir, char *err, size_t errlen);

/* Runs the plugins' init in order, creates the engine, serves until
 * SIGINT/SIGTERM, stops plugins in reverse order. Returns the process exit
 * status (0, or 1 on a runtime failure such as a port in use). */
int sa_server_run(sa_server *srv);

void sa_server_teardown(sa_server *srv);

/* Route lookup; NULL when no plugin handles `type`. */
const sa_route *sa_server_route(const sa_server *srv, const char *type);

#endif
