/*
 * file: file transfer through the server (PROTOCOL.md §8).
 *
 *   file_put {name, size, sha256, to? | room?} -> ok {file_id, offset, chunk_size}
 *   file_chunk {file_id, offset, data}          -> no reply when stored
 *   file_end {file_id}                          -> ok {file_id, size, sha256},
 *                                                  file_offer to the addressees
 *   file_get {file_id, offset?}                 -> ok {file_id, name, size, sha256, offset},
 *                                                  file_chunk events, file_end event
 *   files                                       -> ok {files: [...]}
 *
 * Sources: spool.c (the files on disk), store.c (the table of files and
 * its locks, the sweep), upload.c, download.c; file_name.c and base64.c
 * are the pure checks and codings.
 *
 * Where the protocol leaves room, this plugin:
 *   - answers `room` with not_member for any room the sender is not in,
 *     existing or not; bad_room for a malformed room name; no_such_room
 *     when no rooms plugin is loaded;
 *   - gives a room file to the members of the room at file_end (other
 *     than the sender); a later member does not get it; a sender who left
 *     the room by then gets not_member and may rejoin and end again;
 *   - lets a resumed upload (same sender, name, size, sha256) take the
 *     addressing of its latest file_put;
 *   - deletes an upload whose file_end finds a wrong size or digest (its
 *     file_id is then unknown), and answers a repeated file_end of a
 *     complete file with the same ok (offering nobody again);
 *   - refuses more than 1000 unfinished uploads per sender
 *     (quota_exceeded) and more than 64 downloads waiting on one
 *     connection (rate_limited);
 *   - reports a file that can no longer be read mid-download with an
 *     `error` event {code internal, file_id} instead of its file_end.
 * Names are the identity: a file is fetched by whoever is connected under
 * its sender's or an addressee's name (use the auth plugin to tie names
 * to tokens). Complete files stay in the spool until the operator deletes
 * them (both files of an id, with the server stopped).
 *
 * Disk work inside callbacks: file_put and file_end write the small record
 * with fsync; file_end also fsyncs the data, whose writeback was started
 * as it arrived (upload.c), so little is left to wait for; after a restart
 * an upload's stored bytes are read back once to rebuild its digest.
 *
 * Threading: the settings (file_plugin) are written by init only; the
 * table has its own locks (store.h); per-session download queues live in
 * their session's lane (download.c). The sweep runs on the host's timer
 * thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "file_plugin.h"
#include "spool.h"
#include "store.h"

#define CHUNK_SIZE_MIN 1024
#define CHUNK_SIZE_MAX 65536
#define PARTIAL_AGE_MIN 60
#define PARTIAL_AGE_MAX 31536000
#define SWEEP_PERIOD_MAX_S 3600

file_settings file_plugin = {.spool = -1};
static uint64_t sweep_timer;

/* ---- replies ------------------------------------------------------------- */

void file_reply_error(const sa_request *req, const char *code, const char *message,
                      const char *file_id, int64_t expected)
{
    cJSON *extra = NULL;
    if (file_id || expected >= 0) {
        extra = cJSON_CreateObject();
        /* Out of memory: the error goes without its extras. */
        if (extra &&
            ((file_id && !cJSON_AddStringToObject(extra, "file_id", file_id)) ||
             (expected >= 0 && spool_add_size(extra, "expected", (uint64_t)expected) != 0))) {
            cJSON_Delete(extra);
            extra = NULL;
        }
    }
    /* A failed reply means the session is gone: nobody is left to tell. */
    file_plugin.host->reply_error(req, code, message, extra);
    cJSON_Delete(extra);
}

void file_reply_ok(const sa_request *req, const cJSON *fields)
{
    if (fields)
        file_plugin.host->reply_ok(req, fields);
    else
        file_plugin.host->reply_error(req, "internal", "out of memory", NULL);
}

const char *file_request_id(const sa_request *req)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req->body, "file_id");
    if (!cJSON_IsString(id)) {
        file_reply_error(req, "bad_request", "file_id must be a string", NULL, -1);
        return NULL;
    }
    return id->valuestring;
}

/* ---- lifecycle --------------------------------------------------------------- */

static void file_stop(sa_plugin_ctx *ctx)
{
    (void)ctx;
    if (sweep_timer)
        file_plugin.host->timer_cancel(sweep_timer);
    sweep_timer = 0;
    /* Every session has disconnected: no request uses the table. */
    store_clear();
    if (file_plugin.spool >= 0)
        (void)close(file_plugin.spool); /* a folder opened read-only */
    file_plugin.spool = -1;
}

static int file_init(sa_plugin_ctx *ctx, const sa_host *host)
{
    const char *spool_dir = host->config_string(ctx, "spool_dir");
    int spool = spool_open(spool_dir);
    if (spool < 0) {
        host->log(ctx, SA_LOG_ERROR, "cannot open the spool folder %s: %s", spool_dir,
                  strerror(errno));
        return -1;
    }
    file_plugin = (file_settings){
        .host = host,
        .ctx = ctx,
        .rooms = host->service_get(SA_ROOMS_SERVICE),
        .spool = spool,
        .chunk_size = (size_t)host->config_int(ctx, "chunk_size"),
        .max_size = (uint64_t)host->config_int(ctx, "max_size"),
        .quota = (uint64_t)host->config_int(ctx, "quota"),
        .partial_max_age_ms = host->config_int(ctx, "partial_max_age") * 1000,
    };
    if (store_load() != 0) {
        file_stop(ctx);
        return -1;
    }
    if (host->register_request(ctx, "file_put", upload_handle_put) != 0 ||
        host->register_request(ctx, "file_chunk", upload_handle_chunk) != 0 ||
        host->register_request(ctx, "file_end", upload_handle_end) != 0 ||
        host->register_request(ctx, "file_get", download_handle_get) != 0 ||
        host->register_request(ctx, "files", download_handle_files) != 0) {
        file_stop(ctx);
        return -1;
    }
    /* At once (leftovers of the last run), then every quarter of the age
     * (at most hourly): an upload goes at most 25% past its age. */
    int64_t period_s = host->config_int(ctx, "partial_max_age") / 4;
    if (period_s > SWEEP_PERIOD_MAX_S)
        period_s = SWEEP_PERIOD_MAX_S;
    sweep_timer = host->timer_start(ctx, 0, (uint64_t)period_s * 1000, store_sweep, NULL);
    if (!sweep_timer) {
        host->log(ctx, SA_LOG_ERROR, "cannot start the sweep of unfinished uploads");
        file_stop(ctx);
        return -1;
    }
    host->log(ctx, SA_LOG_INFO,
              "spool %s, max_size %llu, quota %llu, chunk_size %zu, partial_max_age %llds",
              spool_dir, (unsigned long long)file_plugin.max_size,
              (unsigned long long)file_plugin.quota, file_plugin.chunk_size,
              (long long)(file_plugin.partial_max_age_ms / 1000));
    return 0;
}

static const sa_config_key file_config[] = {
    {"spool_dir", SA_CFG_PATH, "spool", 0, 0,
     "folder of the stored files (made, mode 0700, when missing)"},
    {"max_size", SA_CFG_INT, "4294967296", 0, INT64_C(1) << 53, "largest file, in bytes"},
    {"quota", SA_CFG_INT, "0", 0, INT64_C(1) << 53,
     "bytes of files (complete and unfinished) per sender; 0 = no limit"},
    {"partial_max_age", SA_CFG_INT, "86400", PARTIAL_AGE_MIN, PARTIAL_AGE_MAX,
     "seconds an unfinished upload may sit idle before it is deleted"},
    {"chunk_size", SA_CFG_INT, "65536", CHUNK_SIZE_MIN, CHUNK_SIZE_MAX,
     "most bytes a file_chunk carries, both ways"},
    {NULL, 0, NULL, 0, 0, NULL},
};

static const char *const file_uses[] = {SA_ROOMS_SERVICE, NULL};

static const sa_plugin file_plugin_desc = {
    .abi = SA_ABI_VERSION,
    .kind = SA_PLUGIN_HANDLER,
    .name = "file",
    .version = "1.0",
    .description = "file transfer through the server's spool",
    .config_keys = file_config,
    .uses = file_uses,
    .init = file_init,
    .stop = file_stop,
    .on_disconnect = download_on_disconnect,
    .on_writable = download_on_writable,
};

SA_PLUGIN_DEFINE(file_plugin_desc)
