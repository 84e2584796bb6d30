/*
 * Shared by the file plugin's sources: its settings (written by init only,
 * read-only afterwards, so read without a lock), the request handlers each
 * source provides, and the reply helpers of file.c.
 */
#ifndef SA_FILE_PLUGIN_H
#define SA_FILE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <syncasync/plugin.h>
#include <syncasync/rooms.h>

typedef struct file_settings {
    const sa_host *host;
    sa_plugin_ctx *ctx;
    const sa_rooms_service *rooms; /* NULL when no rooms plugin is loaded */
    int spool;                     /* descriptor of the spool folder */
    size_t chunk_size;             /* most bytes one file_chunk carries */
    uint64_t max_size;             /* largest file accepted */
    uint64_t quota;                /* bytes per sender; 0 = no limit */
    int64_t partial_max_age_ms;    /* idle time after which an upload is swept */
} file_settings;

extern file_settings file_plugin;

/* upload.c: file_put, file_chunk, file_end. */
void upload_handle_put(sa_plugin_ctx *ctx, const sa_request *req);
void upload_handle_chunk(sa_plugin_ctx *ctx, const sa_request *req);
void upload_handle_end(sa_plugin_ctx *ctx, const sa_request *req);

/* download.c: file_get, files, and the paced streaming of downloads. */
void download_handle_get(sa_plugin_ctx *ctx, const sa_request *req);
void download_handle_files(sa_plugin_ctx *ctx, const sa_request *req);
void download_on_writable(sa_plugin_ctx *ctx, sa_session *s);
void download_on_disconnect(sa_plugin_ctx *ctx, sa_session *s);

/* file.c: replies. An error about a file carries its `file_id`
 * (file_id may be NULL when the request named none); `expected` >= 0
 * adds "expected" (for bad_offset). */
void file_reply_error(const sa_request *req, const char *code, const char *message,
                      const char *file_id, int64_t expected);
/* Replies `fields`, or internal when it is NULL (out of memory). */
void file_reply_ok(const sa_request *req, const cJSON *fields);
/* Reads the request's "file_id": returns it, or NULL after replying
 * bad_request. */
const char *file_request_id(const sa_request *req);

#endif
