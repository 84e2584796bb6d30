/*
 * File transfers of sa-client (see ui_files.h).
 *
 * Ownership: the ui owns the list of transfers; each transfer owns its
 * sa_upload or sa_download, the folder descriptor of a /get and its
 * strings, and is freed when it ends (or with the ui).
 */
#include "ui_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "sa_download.h"
#include "sa_upload.h"

struct ui_transfer {
    struct ui_transfer *next;
    sa_upload *upload;     /* /send */
    sa_download *download; /* /get, once the lookup has answered */
    char *file_id;         /* /get: the file asked for */
    char *dir;             /* /get: the folder as typed */
    int dirfd;             /* /get; -1 otherwise */
    int64_t lookup_id;     /* /get: the `files` request finding the name; -1 once answered */
    int lookup_lost;       /* /get: that request went with a lost connection */
};

/* ---- the transport the transfers use: the ui's, minding the heartbeat ---- */

static int64_t xfer_request(void *ctx, const cJSON *msg)
{
    ui *u = ctx;
    int64_t id = u->transport.request(u->transport.ctx, msg);
    if (id >= 0)
        u->last_send_ms = ui_now_ms();
    return id;
}

static int xfer_send(void *ctx, const cJSON *msg)
{
    ui *u = ctx;
    int rc = u->transport.send(u->transport.ctx, msg);
    if (rc == 0)
        u->last_send_ms = ui_now_ms();
    return rc;
}

static size_t xfer_queued(void *ctx)
{
    ui *u = ctx;
    return u->transport.queued ? u->transport.queued(u->transport.ctx) : 0;
}

static sa_xfer_transport xfer_transport(ui *u)
{
    return (sa_xfer_transport){xfer_request, xfer_send, xfer_queued, u};
}

/* ---- the list ---------------------------------------------------------------- */

static void free_transfer(ui_transfer *t)
{
    sa_upload_free(t->upload);
    sa_download_free(t->download);
    if (t->dirfd >= 0)
        (void)close(t->dirfd); /* only read through */
    free(t->file_id);
    free(t->dir);
    free(t);
}

static void add_transfer(ui *u, ui_transfer *t)
{
    t->next = u->transfers;
    u->transfers = t;
    u->pump_wanted = 1;
}

static void remove_transfer(ui *u, ui_transfer *t)
{
    for (ui_transfer **p = &u->transfers; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            free_transfer(t);
            return;
        }
    }
}

int ui_files_active(const ui *u)
{
    return u->transfers != NULL;
}

void ui_files_free(ui *u)
{
    while (u->transfers) {
        ui_transfer *t = u->transfers;
        u->transfers = t->next;
        free_transfer(t);
    }
}

/* ---- notices ----------------------------------------------------------------- */

/* "! WHAT: LABEL: reason"; the label may come from the server. */
static void failure_notice(ui *u, const char *what, const char *label, const char *reason)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "! ");
    strbuf_add(&line, what);
    strbuf_add(&line, ": ");
    strbuf_add_untrusted(&line, label);
    strbuf_add(&line, ": ");
    strbuf_add_untrusted(&line, reason);
    ui_emit_notice(u, &line);
}

static void add_size(strbuf *line, uint64_t size)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%llu", (unsigned long long)size);
    strbuf_add(line, digits);
}

static void upload_done_notice(ui *u, const sa_upload *up)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "* sent ");
    strbuf_add_untrusted(&line, sa_upload_name(up));
    strbuf_add(&line, " (");
    add_size(&line, sa_upload_size(up));
    strbuf_add(&line, " bytes): ");
    strbuf_add_untrusted(&line, sa_upload_file_id(up));
    ui_emit_notice(u, &line);
}

static void download_done_notice(ui *u, const sa_download *d)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "* saved ");
    strbuf_add_untrusted(&line, sa_download_path(d));
    strbuf_add(&line, " (");
    strbuf_add(&line, sa_download_sha256(d));
    strbuf_add(&line, ")");
    ui_emit_notice(u, &line);
}

/* Ends a transfer that is done or failed. `error_shown`: the failure came
 * with an error reply that is shown anyway. Returns 1 when it ended. */
static int settle(ui *u, ui_transfer *t, int error_shown)
{
    enum sa_xfer_state state = t->upload     ? sa_upload_state(t->upload)
                               : t->download ? sa_download_state(t->download)
                                             : SA_XFER_ACTIVE;
    if (state == SA_XFER_ACTIVE)
        return 0;
    if (state == SA_XFER_DONE && t->upload)
        upload_done_notice(u, t->upload);
    else if (state == SA_XFER_DONE)
        download_done_notice(u, t->download);
    else if (!error_shown && t->upload)
        failure_notice(u, "send", sa_upload_path(t->upload), sa_upload_error(t->upload));
    else if (!error_shown)
        failure_notice(u, "get", t->file_id, sa_download_error(t->download));
    remove_transfer(u, t);
    return 1;
}

/* While quitting, a transfer that moves keeps the session open. */
static void note_progress(ui *u, int64_t now_ms)
{
    if (u->phase == UI_QUITTING && u->deadline_ms < now_ms + UI_TRANSFER_STALL_MS)
        u->deadline_ms = now_ms + UI_TRANSFER_STALL_MS;
}

/* ---- commands ---------------------------------------------------------------- */

void ui_files_send(ui *u, const char *path, const char *user, int64_t now_ms)
{
    const char *room = !user && u->rooms_enabled ? u->current_room : NULL;
    char err[256];
    ui_transfer *t = calloc(1, sizeof *t);
    if (!t) {
        failure_notice(u, "send", path, "out of memory");
        return;
    }
    t->dirfd = -1;
    t->lookup_id = -1;
    t->upload = sa_upload_new(path, user, room, err, sizeof err);
    if (!t->upload) {
        failure_notice(u, "send", path, err);
        free_transfer(t);
        return;
    }
    const sa_xfer_transport transport = xfer_transport(u);
    sa_upload_start(t->upload, &transport, u->max_frame);
    add_transfer(u, t);
    note_progress(u, now_ms);
}

void ui_files_list(ui *u, int64_t now_ms)
{
    cJSON *files = cJSON_CreateObject();
    if (files && !cJSON_AddStringToObject(files, "type", "files")) {
        cJSON_Delete(files);
        files = NULL;
    }
    ui_send_request(u, files, now_ms);
}

static int downloading(const ui *u, const char *file_id)
{
    for (const ui_transfer *t = u->transfers; t; t = t->next) {
        if (t->file_id && strcmp(t->file_id, file_id) == 0)
            return 1;
    }
    return 0;
}

/* The name (to resume its .part) comes from the list of files. Returns 0
 * or -1 when the request could not be sent. */
static int send_lookup(ui *u, ui_transfer *t)
{
    cJSON *files = cJSON_CreateObject(); /* ours; deleted below */
    if (files && cJSON_AddStringToObject(files, "type", "files"))
        t->lookup_id = xfer_request(u, files);
    cJSON_Delete(files);
    return t->lookup_id < 0 ? -1 : 0;
}

void ui_files_get(ui *u, const char *file_id, const char *dir, int64_t now_ms)
{
    if (downloading(u, file_id)) {
        failure_notice(u, "get", file_id, "already being downloaded");
        return;
    }
    ui_transfer *t = calloc(1, sizeof *t);
    if (!t || !(t->file_id = strdup(file_id)) || !(t->dir = strdup(dir ? dir : "."))) {
        failure_notice(u, "get", file_id, "out of memory");
        if (t)
            free_transfer(t);
        return;
    }
    t->lookup_id = -1;
    /* DIR is the user's choice: a symbolic link to a folder is fine. */
    t->dirfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->dirfd < 0) {
        failure_notice(u, "get", t->dir, strerror(errno));
        free_transfer(t);
        return;
    }
    if (send_lookup(u, t) != 0) {
        failure_notice(u, "get", file_id, "could not send the request");
        free_transfer(t);
        return;
    }
    add_transfer(u, t);
    note_progress(u, now_ms);
}

/* The `files` reply a /get waited for: start the download. */
static void on_lookup_reply(ui *u, ui_transfer *t, const cJSON *reply)
{
    t->lookup_id = -1;
    if (!sa_xfer_is_type(reply, "ok")) {
        char *text = sa_xfer_error_text(reply); /* ours; freed below */
        failure_notice(u, "get", t->file_id, text ? text : "error reply");
        free(text);
        remove_transfer(u, t);
        return;
    }
    const cJSON *entry, *found = NULL;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(reply, "files"))
    {
        const char *file_id = sa_xfer_string(entry, "file_id");
        if (file_id && strcmp(file_id, t->file_id) == 0) {
            found = entry;
            break;
        }
    }
    /* Not listed: the file_get gets the server's answer (no_such_file). */
    uint64_t size = 0;
    if (found && sa_json_get_size(found, "size", &size) != 0)
        size = 0;
    const sa_download_params params = {
        .dirfd = t->dirfd,
        .dir_display = t->dir,
        .file_id = t->file_id,
        .offered_name = found ? sa_xfer_string(found, "name") : NULL,
        .offered_size = size,
        .force = 0,
    };
    char err[256];
    t->download = sa_download_new(&params, err, sizeof err);
    if (!t->download) {
        failure_notice(u, "get", t->file_id, err);
        remove_transfer(u, t);
        return;
    }
    const sa_xfer_transport transport = xfer_transport(u);
    sa_download_start(t->download, &transport);
}

int ui_files_on_frame(ui *u, const cJSON *frame, int64_t now_ms)
{
    for (ui_transfer *t = u->transfers; t; t = t->next) {
        if (sa_xfer_is_reply_to(frame, t->lookup_id)) {
            on_lookup_reply(u, t, frame);
            u->pump_wanted = 1;
            note_progress(u, now_ms);
            return 1;
        }
        int taken = t->upload     ? sa_upload_on_frame(t->upload, frame)
                    : t->download ? sa_download_on_frame(t->download, frame)
                                  : 0;
        if (!taken)
            continue;
        int is_error = sa_xfer_is_type(frame, "error");
        u->pump_wanted = 1;
        note_progress(u, now_ms);
        settle(u, t, is_error);
        return !is_error;
    }
    return 0;
}

void ui_files_on_lost(ui *u)
{
    for (ui_transfer *t = u->transfers; t; t = t->next) {
        if (t->upload)
            sa_upload_stop(t->upload);
        else if (t->download)
            sa_download_stop(t->download);
        else if (t->lookup_id >= 0)
            t->lookup_lost = 1;
        t->lookup_id = -1;
    }
    u->pump_wanted = 0;
}

void ui_files_resume(ui *u)
{
    const sa_xfer_transport transport = xfer_transport(u);
    ui_transfer *next;
    for (ui_transfer *t = u->transfers; t; t = next) {
        next = t->next; /* a failed lookup frees t */
        if (t->upload) {
            sa_upload_start(t->upload, &transport, u->max_frame);
        } else if (t->download) {
            sa_download_start(t->download, &transport);
        } else if (t->lookup_lost) {
            t->lookup_lost = 0;
            if (send_lookup(u, t) != 0) {
                failure_notice(u, "get", t->file_id, "could not send the request");
                remove_transfer(u, t);
            }
        }
    }
    u->pump_wanted = u->transfers != NULL;
}

int ui_wants_pump(const ui *u)
{
    return u->pump_wanted && u->transfers && (u->phase == UI_READY || u->phase == UI_QUITTING);
}

void ui_on_drain(ui *u)
{
    u->pump_wanted = 1;
}

enum sa_xfer_pump ui_pump(ui *u, int64_t now_ms)
{
    enum sa_xfer_pump result = SA_XFER_IDLE;
    ui_transfer *next;
    for (ui_transfer *t = u->transfers; t; t = next) {
        next = t->next; /* settle may free t */
        enum sa_xfer_pump want = t->upload     ? sa_upload_pump(t->upload)
                                 : t->download ? sa_download_pump(t->download)
                                               : SA_XFER_IDLE;
        settle(u, t, 0);
        if (want == SA_XFER_AGAIN || (want == SA_XFER_BLOCKED && result == SA_XFER_IDLE))
            result = want;
    }
    if (result != SA_XFER_IDLE) {
        note_progress(u, now_ms);
        /* While we stream data the server has nothing to say but pongs,
         * and those wait behind the data: progress is a sign of life. */
        u->last_alive_ms = now_ms;
    }
    u->pump_wanted = result == SA_XFER_AGAIN;
    return result;
}

void ui_files_abandon(ui *u)
{
    for (const ui_transfer *t = u->transfers; t; t = t->next) {
        if (t->upload)
            failure_notice(u, "send", sa_upload_path(t->upload), "unfinished at quit");
        else
            failure_notice(u, "get", t->file_id, "unfinished at quit (the .part is kept)");
    }
    ui_files_free(u);
}
