/*
 * The async engine: one libev loop serves every client (non-blocking
 * sockets, writev gathering, per-connection timers). Other threads reach
 * a connection through the loop's inbox.
 *
 * Files: engine_async.c (descriptor and ops), async_loop.c (the loop and
 * shutdown), async_listen.c (accept), async_conn.c (a connection's I/O and
 * close), async_inbox.c (requests from other threads).
 */
#include <stdlib.h>

#include "async_internal.h"

/* The engine owns everything create() makes; destroy() frees it. */
static sa_engine *async_create(const sa_engine_core *core)
{
    sa_engine *e = calloc(1, sizeof *e);
    if (!e) {
        core->log(SA_LOG_ERROR, "out of memory");
        return NULL;
    }
    e->core = *core;
    if (async_loop_init(&e->loop, e, &e->core) != 0) {
        free(e);
        return NULL;
    }
    if (async_listen_start(e) != 0) {
        async_loop_free(&e->loop);
        free(e->listeners);
        free(e);
        return NULL;
    }
    return e;
}

static int async_run(sa_engine *e) { return async_loop_run(&e->loop); }

static void async_stop(sa_engine *e) { async_loop_request_stop(&e->loop); }

static void async_destroy(sa_engine *e)
{
    if (!e)
        return;
    async_listen_stop(e);
    async_loop_free(&e->loop);
    free(e->listeners);
    free(e);
}

static const struct sa_engine_ops async_engine_ops = {
    .create = async_create,
    .run = async_run,
    .stop = async_stop,
    .destroy = async_destroy,
    .send = conn_send,
    .close = conn_close,
    .queued = conn_queued,
    .notify_writable = conn_notify_writable,
};

static const sa_plugin async_engine_plugin = {
    .abi = SA_ABI_VERSION,
    .kind = SA_PLUGIN_ENGINE,
    .name = "async",
    .version = "1.0",
    .description = "libev event loop: one thread, non-blocking sockets",
    .config_keys = NULL,
    .init = NULL,
    .engine = &async_engine_ops,
};

SA_PLUGIN_DEFINE(async_engine_plugin)
