/*
 * The async engine: `workers` libev loops, each on a thread of its own,
 * serve the clients (non-blocking sockets, writev gathering, per-connection
 * timers). The first loop runs in the thread that calls run() and also
 * accepts; it deals new connections round-robin over the loops, and each
 * connection stays on its loop for its whole life (its lane). Other
 * threads, other loops included, reach a connection through its loop's
 * inbox.
 *
 * Files: engine_async.c (descriptor and ops), async_loop.c (a loop and
 * its shutdown), async_listen.c (accept), async_conn.c (a connection's I/O
 * and close), async_outq.c (its output queue), async_inbox.c (requests
 * from other threads).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "async_internal.h"

static void free_loops(sa_engine *e)
{
    for (size_t i = 0; i < e->loop_count; i++)
        async_loop_free(&e->loops[i]);
    free(e->loops);
    e->loops = NULL;
    e->loop_count = 0;
}

/* The engine owns everything create() makes; destroy() frees it. */
static sa_engine *async_create(const sa_engine_core *core)
{
    sa_engine *e = calloc(1, sizeof *e);
    size_t wanted = core->config->workers > 0 ? core->config->workers : 1;
    if (e)
        e->loops = calloc(wanted, sizeof *e->loops);
    if (!e || !e->loops) {
        core->log(SA_LOG_ERROR, "out of memory");
        free(e);
        return NULL;
    }
    e->core = *core;
    for (; e->loop_count < wanted; e->loop_count++) {
        if (async_loop_init(&e->loops[e->loop_count], e, &e->core) != 0) {
            free_loops(e);
            free(e);
            return NULL;
        }
    }
    if (async_listen_start(e) != 0) {
        free_loops(e);
        free(e->listeners);
        free(e);
        return NULL;
    }
    return e;
}

static void *worker_main(void *arg)
{
    async_loop_run(arg);
    return NULL;
}

static int async_run(sa_engine *e)
{
    size_t started = 1;
    for (; started < e->loop_count; started++) {
        int err = pthread_create(&e->loops[started].worker, NULL, worker_main, &e->loops[started]);
        if (err != 0) {
            e->core.log(SA_LOG_ERROR, "cannot start event loop %zu: %s", started, strerror(err));
            break;
        }
    }
    if (started < e->loop_count) {
        /* Serve with none rather than with fewer loops than configured:
         * connections were not dealt to the missing ones yet, so the
         * started ones stop at once. */
        for (size_t i = 0; i < e->loop_count; i++)
            async_loop_request_stop(&e->loops[i]);
    } else if (e->loop_count > 1) {
        e->core.log(SA_LOG_INFO, "serving with %zu event loops", e->loop_count);
    }
    async_loop_run(&e->loops[0]);
    for (size_t i = 1; i < started; i++)
        pthread_join(e->loops[i].worker, NULL);
    return started < e->loop_count ? -1 : 0;
}

static void async_stop(sa_engine *e)
{
    for (size_t i = 0; i < e->loop_count; i++)
        async_loop_request_stop(&e->loops[i]);
}

static void async_destroy(sa_engine *e)
{
    if (!e)
        return;
    async_listen_stop(e);
    free_loops(e);
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
    .description = "libev event loops (server.workers threads), non-blocking sockets",
    .config_keys = NULL,
    .init = NULL,
    .engine = &async_engine_ops,
};

SA_PLUGIN_DEFINE(async_engine_plugin)
