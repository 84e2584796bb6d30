/*
 * Downloads: file_get and files (PROTOCOL.md §8), and the streaming of a
 * file's chunks at the pace the client reads them.
 *
 * Each session's downloads wait in a FIFO (its session data slot: owned by
 * this plugin, touched only in the session's lane, freed at disconnect
 * with the descriptors it holds). The head download sends chunks while
 * the session's queued output is under QUEUE_HIGH; then the plugin asks
 * the host for on_writable once the output has drained to QUEUE_LOW, and
 * carries on from there. The same code paces both engines: the async one
 * reports its queue, the sync one's writer thread drains it as the socket
 * takes it. A download therefore holds about QUEUE_HIGH plus one chunk of
 * memory however large the file, and a client that stops reading stalls
 * only its own downloads (never sendq_max).
 *
 * A file is opened only when its download reaches the head of the queue,
 * so a connection holds at most one descriptor. Complete files are never
 * deleted or changed, so nothing is locked while one is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk_data.h"
#include "file_plugin.h"
#include "store.h"

#define QUEUE_HIGH ((size_t)1 << 20)
#define QUEUE_LOW ((size_t)256 << 10)
/* Downloads one connection may have waiting at once. */
#define DOWNLOADS_QUEUED_MAX 64

typedef struct download {
    char file_id[FILE_ID_LEN + 1];
    char sha256[SHA256_HEX_LEN + 1];
    uint64_t offset; /* of the next chunk */
    uint64_t size;
    int fd; /* the .data, open once the download is at the head; else -1 */
    struct download *next;
} download;

typedef struct download_queue {
    download *head, *tail;
    size_t count;
} download_queue;

/* Scratch space of one pump: a chunk and its base64 text. */
typedef struct chunk_buffers {
    unsigned char *raw;
    char *text;
} chunk_buffers;

/* ---- the queue ----------------------------------------------------------------- */

static void pop_head(download_queue *q)
{
    download *d = q->head;
    q->head = d->next;
    if (!q->head)
        q->tail = NULL;
    q->count--;
    if (d->fd >= 0)
        (void)close(d->fd); /* read-only */
    free(d);
}

static download_queue *queue_of(sa_session *s, int create)
{
    const sa_host *host = file_plugin.host;
    download_queue *q = host->session_get_data(file_plugin.ctx, s);
    if (!q && create) {
        q = calloc(1, sizeof *q);
        if (q)
            host->session_set_data(file_plugin.ctx, s, q);
    }
    return q;
}

void download_on_disconnect(sa_plugin_ctx *ctx, sa_session *s)
{
    download_queue *q = file_plugin.host->session_get_data(ctx, s);
    if (!q)
        return;
    while (q->head)
        pop_head(q);
    free(q);
    file_plugin.host->session_set_data(ctx, s, NULL);
}

/* ---- streaming ------------------------------------------------------------------- */

enum step { STEP_DONE, STEP_SESSION_GONE };

/* The download cannot go on (the file cannot be read): the client hears
 * it as an error event naming the file, and the next download starts. */
static enum step fail_download(sa_session *s, download_queue *q, const char *what)
{
    const sa_host *host = file_plugin.host;
    download *d = q->head;
    host->log(file_plugin.ctx, SA_LOG_ERROR, "download of file %s at %llu: %s: %s", d->file_id,
              (unsigned long long)d->offset, what, strerror(errno));
    cJSON *event = cJSON_CreateObject();
    int sent = -1;
    if (event && cJSON_AddStringToObject(event, "type", "error") &&
        cJSON_AddStringToObject(event, "code", "internal") &&
        cJSON_AddStringToObject(event, "message", "the server could not read the file") &&
        cJSON_AddStringToObject(event, "file_id", d->file_id))
        sent = host->send_json(s, event);
    cJSON_Delete(event);
    pop_head(q);
    return sent == 0 ? STEP_DONE : STEP_SESSION_GONE;
}

static enum step send_end(sa_session *s, download_queue *q)
{
    const download *d = q->head;
    cJSON *event = cJSON_CreateObject();
    int sent = -1;
    if (event && cJSON_AddStringToObject(event, "type", "file_end") &&
        cJSON_AddStringToObject(event, "file_id", d->file_id) &&
        spool_add_size(event, "size", d->size) == 0 &&
        cJSON_AddStringToObject(event, "sha256", d->sha256))
        sent = file_plugin.host->send_json(s, event);
    else
        file_plugin.host->log(file_plugin.ctx, SA_LOG_ERROR, "out of memory ending download %s",
                              d->file_id);
    cJSON_Delete(event);
    pop_head(q);
    return sent == 0 ? STEP_DONE : STEP_SESSION_GONE;
}

/* Reads exactly `len` bytes at `offset`. */
static int pread_all(int fd, unsigned char *out, size_t len, uint64_t offset)
{
    while (len > 0) {
        ssize_t n = pread(fd, out, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* shorter than recorded */
            return -1;
        }
        out += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static enum step send_chunk(sa_session *s, download_queue *q, chunk_buffers *buf)
{
    download *d = q->head;
    if (d->fd < 0 && (d->fd = spool_data_open(file_plugin.spool, d->file_id, O_RDONLY)) < 0)
        return fail_download(s, q, "cannot open it");
    size_t len = file_plugin.chunk_size;
    if (d->size - d->offset < len)
        len = (size_t)(d->size - d->offset);
    if (pread_all(d->fd, buf->raw, len, d->offset) != 0)
        return fail_download(s, q, "cannot read it");
    cJSON *event = cJSON_CreateObject();
    cJSON *data = chunk_data_json(buf->raw, len, buf->text);
    int attached = event && data && cJSON_AddStringToObject(event, "type", "file_chunk") &&
                   cJSON_AddStringToObject(event, "file_id", d->file_id) &&
                   spool_add_size(event, "offset", d->offset) == 0 &&
                   cJSON_AddItemToObject(event, "data", data);
    int sent = attached ? file_plugin.host->send_json(s, event) : -1;
    if (!attached)
        cJSON_Delete(data);
    cJSON_Delete(event);
    if (!attached) {
        errno = ENOMEM;
        return fail_download(s, q, "out of memory");
    }
    if (sent != 0)
        return STEP_SESSION_GONE;
    d->offset += len;
    return STEP_DONE;
}

/* Sends what the session's output queue has room for, then asks to be
 * called again (on_writable) when it has drained. Session's lane. */
static void pump(sa_session *s, download_queue *q)
{
    const sa_host *host = file_plugin.host;
    chunk_buffers buf = {0};
    enum step step = STEP_DONE;
    while (q->head && step == STEP_DONE) {
        if (q->head->offset == q->head->size) {
            step = send_end(s, q);
            continue;
        }
        if (host->session_queued(s) >= QUEUE_HIGH) {
            /* -1: the session is closing, and on_disconnect is coming. */
            (void)host->session_notify_writable(file_plugin.ctx, s, QUEUE_LOW);
            break;
        }
        if (!buf.raw) {
            buf.raw = malloc(file_plugin.chunk_size);
            buf.text = malloc(chunk_data_text_size(file_plugin.chunk_size));
            if (!buf.raw || !buf.text) {
                errno = ENOMEM;
                step = fail_download(s, q, "no memory for a chunk");
                free(buf.raw);
                free(buf.text);
                buf = (chunk_buffers){0};
                continue;
            }
        }
        step = send_chunk(s, q, &buf);
    }
    free(buf.raw);
    free(buf.text);
}

void download_on_writable(sa_plugin_ctx *ctx, sa_session *s)
{
    (void)ctx;
    download_queue *q = queue_of(s, 0);
    if (q)
        pump(s, q);
}

/* ---- file_get -------------------------------------------------------------------- */

void download_handle_get(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const sa_host *host = file_plugin.host;
    const char *file_id = file_request_id(req);
    if (!file_id)
        return;
    uint64_t offset = 0;
    if (cJSON_HasObjectItem(req->body, "offset") &&
        host->json_get_size(req->body, "offset", &offset) != 0) {
        file_reply_error(req, "bad_request", "offset must be a whole number from 0 to 2^53",
                         file_id, -1);
        return;
    }
    download *d = calloc(1, sizeof *d);
    cJSON *result = cJSON_CreateObject();
    if (!d || !result) {
        free(d);
        cJSON_Delete(result);
        file_reply_error(req, "internal", "out of memory", file_id, -1);
        return;
    }
    /* Everything the download needs is copied now: the record is not
     * looked at again. */
    int found = 0, built = 0;
    store_lock();
    const file_entry *e = store_find_locked(file_id);
    if (e && entry_visible_to(e, host->session_name(req->session))) {
        found = 1;
        memcpy(d->file_id, e->meta.file_id, sizeof d->file_id);
        memcpy(d->sha256, e->meta.sha256, sizeof d->sha256);
        d->size = e->meta.size;
        built = cJSON_AddStringToObject(result, "file_id", e->meta.file_id) &&
                cJSON_AddStringToObject(result, "name", e->meta.name) &&
                spool_add_size(result, "size", e->meta.size) == 0 &&
                cJSON_AddStringToObject(result, "sha256", e->meta.sha256) &&
                spool_add_size(result, "offset", offset) == 0;
    }
    store_unlock();
    download_queue *q = found && built && offset <= d->size ? queue_of(req->session, 1) : NULL;
    if (!found)
        file_reply_error(req, "no_such_file", "no file you may fetch has that file_id", file_id,
                         -1);
    else if (!built)
        file_reply_error(req, "internal", "out of memory", file_id, -1);
    else if (offset > d->size)
        file_reply_error(req, "bad_offset", "offset is past the end of the file", file_id, -1);
    else if (!q)
        file_reply_error(req, "internal", "out of memory", file_id, -1);
    else if (q->count >= DOWNLOADS_QUEUED_MAX)
        file_reply_error(req, "rate_limited", "too many downloads waiting on this connection",
                         file_id, -1);
    else {
        d->offset = offset;
        d->fd = -1;
        if (q->tail)
            q->tail->next = d;
        else
            q->head = d;
        q->tail = d;
        q->count++;
        d = NULL; /* the queue's now */
        file_reply_ok(req, result);
        pump(req->session, q);
    }
    free(d);
    cJSON_Delete(result);
}

/* ---- files ------------------------------------------------------------------------- */

typedef struct visible_list {
    const char *user;
    const file_entry **entries;
    size_t count, cap;
    int failed;
} visible_list;

static int collect_visible(file_entry *e, void *arg)
{
    visible_list *list = arg;
    if (!entry_visible_to(e, list->user))
        return 0;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 32;
        const file_entry **grown = realloc(list->entries, cap * sizeof *grown);
        if (!grown) {
            list->failed = 1;
            return 1;
        }
        list->entries = grown;
        list->cap = cap;
    }
    list->entries[list->count++] = e;
    return 0;
}

/* Oldest first, so the list reads like a history. */
static int by_creation(const void *a, const void *b)
{
    const file_entry *x = *(const file_entry *const *)a, *y = *(const file_entry *const *)b;
    if (x->meta.created_ms != y->meta.created_ms)
        return x->meta.created_ms < y->meta.created_ms ? -1 : 1;
    return strcmp(x->meta.file_id, y->meta.file_id);
}

static cJSON *listing_item(const file_entry *e)
{
    cJSON *item = cJSON_CreateObject();
    if (!item || !cJSON_AddStringToObject(item, "file_id", e->meta.file_id) ||
        !cJSON_AddStringToObject(item, "from", e->meta.from) ||
        !cJSON_AddStringToObject(item, "name", e->meta.name) ||
        spool_add_size(item, "size", e->meta.size) != 0 ||
        !cJSON_AddStringToObject(item, "sha256", e->meta.sha256)) {
        cJSON_Delete(item);
        return NULL;
    }
    return item;
}

void download_handle_files(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    visible_list list = {.user = file_plugin.host->session_name(req->session)};
    cJSON *result = cJSON_CreateObject();
    cJSON *files = result ? cJSON_AddArrayToObject(result, "files") : NULL;
    int ok = files != NULL;
    store_lock();
    if (ok) {
        store_foreach_locked(collect_visible, &list);
        ok = !list.failed;
    }
    if (ok && list.count > 1)
        qsort(list.entries, list.count, sizeof *list.entries, by_creation);
    for (size_t i = 0; ok && i < list.count; i++)
        ok = cJSON_AddItemToArray(files, listing_item(list.entries[i]));
    store_unlock();
    free(list.entries);
    file_reply_ok(req, ok ? result : NULL);
    cJSON_Delete(result);
}
