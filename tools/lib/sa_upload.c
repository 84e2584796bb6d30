#include "sa_upload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "chunk_data.h" /* plugins/file: chunks written as the server writes them */
#include "sa_filename.h"
#include "sa_sha256.h"

/* Bytes read from the file per system call while hashing. */
#define HASH_BLOCK 65536

enum upload_phase {
    PHASE_HASHING,  /* hashing the file, a step per pump */
    PHASE_NEED_PUT, /* hashed; file_put goes out at the next pump */
    PHASE_PUT_SENT, /* waiting for the file_put reply */
    PHASE_SENDING,  /* streaming chunks */
    PHASE_END_SENT, /* waiting for the file_end reply */
    PHASE_DONE,
    PHASE_FAILED
};

struct sa_upload {
    enum upload_phase phase;
    int fd; /* ours */
    char *path, *name, *to, *room; /* ours; to and room may be NULL */
    uint64_t size;
    sa_sha256 *hash; /* ours */
    uint64_t hashed;
    char sha256[SA_SHA256_HEX_LEN + 1];

    int online; /* a transport is set */
    sa_xfer_transport transport;
    uint32_t max_frame;
    int64_t put_id, end_id; /* of the current connection; -1: none */

    char *file_id;      /* ours; from the file_put reply */
    size_t chunk_bytes; /* file bytes per chunk */
    uint64_t resumed_at;
    uint64_t sent;

    unsigned char *data;  /* ours: HASH_BLOCK bytes, for hashing and chunks */
    char *encoded;        /* ours: the data member of one chunk (chunk_data.h) */
    char error[512];
};

static void fail(sa_upload *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(sa_upload *u, const char *fmt, ...)
{
    if (u->phase == PHASE_FAILED)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->error, sizeof u->error, fmt, ap);
    va_end(ap);
    u->phase = PHASE_FAILED;
}

static void fail_with_reply(sa_upload *u, const cJSON *error)
{
    char *text = sa_xfer_error_text(error); /* ours; freed below */
    fail(u, "%s", text ? text : "error reply (out of memory to show it)");
    free(text);
}

sa_upload *sa_upload_new(const char *path, const char *to, const char *room, char *err,
                         size_t errlen)
{
    sa_upload *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    u->fd = -1;
    u->put_id = u->end_id = -1;
    u->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (u->fd < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(u->fd, &st) != 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s", S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        goto fail;
    }
    u->size = (uint64_t)st.st_size;
    if ((double)u->size > SA_MAX_SAFE_INTEGER) {
        snprintf(err, errlen, "too large for the protocol");
        goto fail;
    }
    u->path = strdup(path);
    u->name = sa_filename_for_upload(path);
    u->to = to ? strdup(to) : NULL;
    u->room = room ? strdup(room) : NULL;
    u->hash = sa_sha256_new();
    u->data = malloc(HASH_BLOCK);
    u->encoded = malloc(chunk_data_text_size(SA_XFER_MAX_CHUNK));
    if (!u->path || !u->name || (to && !u->to) || (room && !u->room) || !u->hash || !u->data ||
        !u->encoded) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    u->phase = PHASE_HASHING;
    return u;
fail:
    sa_upload_free(u);
    return NULL;
}

void sa_upload_free(sa_upload *u)
{
    if (!u)
        return;
    if (u->fd >= 0)
        (void)close(u->fd); /* read-only: nothing to lose */
    free(u->path);
    free(u->name);
    free(u->to);
    free(u->room);
    sa_sha256_free(u->hash);
    free(u->file_id);
    free(u->data);
    free(u->encoded);
    free(u);
}

void sa_upload_start(sa_upload *u, const sa_xfer_transport *t, uint32_t max_frame)
{
    u->transport = *t;
    u->max_frame = max_frame;
    u->online = 1;
    u->put_id = u->end_id = -1;
    /* Whatever was in flight on the old connection is gone: ask the
     * server where it stands. */
    if (u->phase == PHASE_PUT_SENT || u->phase == PHASE_SENDING || u->phase == PHASE_END_SENT)
        u->phase = PHASE_NEED_PUT;
}

void sa_upload_stop(sa_upload *u)
{
    u->online = 0;
    u->put_id = u->end_id = -1;
}

/* One block of hashing. */
static enum sa_xfer_pump hash_step(sa_upload *u)
{
    uint64_t left = u->size - u->hashed;
    uint64_t want = left < SA_XFER_STEP_BYTES ? left : SA_XFER_STEP_BYTES;
    int64_t got = sa_sha256_fd(u->hash, u->fd, u->hashed, want, u->data, HASH_BLOCK);
    if (got < 0) {
        fail(u, "cannot read: %s", strerror(errno));
        return SA_XFER_IDLE;
    }
    if ((uint64_t)got < want) {
        fail(u, "the file shrank while it was being read");
        return SA_XFER_IDLE;
    }
    u->hashed += (uint64_t)got;
    if (u->hashed < u->size)
        return SA_XFER_AGAIN;
    struct stat st;
    if (fstat(u->fd, &st) != 0 || (uint64_t)st.st_size != u->size) {
        fail(u, "the file changed size while it was being read");
        return SA_XFER_IDLE;
    }
    if (sa_sha256_final_hex(u->hash, u->sha256) != 0) {
        fail(u, "cannot compute SHA-256");
        return SA_XFER_IDLE;
    }
    u->phase = PHASE_NEED_PUT;
    return SA_XFER_AGAIN;
}

/* A whole number as exact JSON text (cJSON would print 2^50 as 1.1e+15). */
static int add_size(cJSON *obj, const char *key, uint64_t value)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%llu", (unsigned long long)value);
    return cJSON_AddRawToObject(obj, key, digits) != NULL;
}

static enum sa_xfer_pump send_put(sa_upload *u)
{
    cJSON *put = cJSON_CreateObject(); /* ours; deleted below */
    if (!put || !cJSON_AddStringToObject(put, "type", "file_put") ||
        !cJSON_AddStringToObject(put, "name", u->name) || !add_size(put, "size", u->size) ||
        !cJSON_AddStringToObject(put, "sha256", u->sha256) ||
        (u->to && !cJSON_AddStringToObject(put, "to", u->to)) ||
        (u->room && !cJSON_AddStringToObject(put, "room", u->room))) {
        cJSON_Delete(put);
        fail(u, "out of memory");
        return SA_XFER_IDLE;
    }
    int64_t id = u->transport.request(u->transport.ctx, put);
    cJSON_Delete(put);
    if (id < 0) {
        sa_upload_stop(u); /* the connection is going away */
        return SA_XFER_IDLE;
    }
    u->put_id = id;
    u->phase = PHASE_PUT_SENT;
    return SA_XFER_IDLE;
}

static enum sa_xfer_pump send_end(sa_upload *u)
{
    cJSON *end = cJSON_CreateObject(); /* ours; deleted below */
    if (!end || !cJSON_AddStringToObject(end, "type", "file_end") ||
        !cJSON_AddStringToObject(end, "file_id", u->file_id)) {
        cJSON_Delete(end);
        fail(u, "out of memory");
        return SA_XFER_IDLE;
    }
    int64_t id = u->transport.request(u->transport.ctx, end);
    cJSON_Delete(end);
    if (id < 0) {
        sa_upload_stop(u);
        return SA_XFER_IDLE;
    }
    u->end_id = id;
    u->phase = PHASE_END_SENT;
    return SA_XFER_IDLE;
}

/* Reads exactly `len` bytes at `offset`; -1 with the reason set. */
static int read_exactly(sa_upload *u, unsigned char *out, size_t len, uint64_t offset)
{
    size_t have = 0;
    while (have < len) {
        ssize_t got = pread(u->fd, out + have, len - have, (off_t)(offset + have));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            fail(u, "cannot read: %s", strerror(errno));
            return -1;
        }
        if (got == 0) {
            fail(u, "the file shrank while it was being sent");
            return -1;
        }
        have += (size_t)got;
    }
    return 0;
}

/* Sends the chunk of `len` bytes at u->sent. 0, or -1 when the upload
 * failed or the connection is going away. */
static int send_chunk(sa_upload *u, size_t len)
{
    if (read_exactly(u, u->data, len, u->sent) != 0)
        return -1;
    cJSON *chunk = cJSON_CreateObject();                     /* ours; deleted below */
    cJSON *data = chunk_data_json(u->data, len, u->encoded); /* chunk's once added */
    if (!chunk || !data || !cJSON_AddStringToObject(chunk, "type", "file_chunk") ||
        !cJSON_AddStringToObject(chunk, "file_id", u->file_id) ||
        !add_size(chunk, "offset", u->sent) || !cJSON_AddItemToObject(chunk, "data", data)) {
        if (!cJSON_GetObjectItemCaseSensitive(chunk, "data"))
            cJSON_Delete(data);
        cJSON_Delete(chunk);
        fail(u, "out of memory");
        return -1;
    }
    int rc = u->transport.send(u->transport.ctx, chunk);
    cJSON_Delete(chunk);
    if (rc != 0) {
        sa_upload_stop(u);
        return -1;
    }
    u->sent += len;
    return 0;
}

static enum sa_xfer_pump send_step(sa_upload *u)
{
    uint64_t budget = SA_XFER_STEP_BYTES;
    while (u->sent < u->size) {
        if (u->transport.queued && u->transport.queued(u->transport.ctx) >= SA_XFER_QUEUE_LIMIT)
            return SA_XFER_BLOCKED;
        if (budget == 0)
            return SA_XFER_AGAIN;
        uint64_t left = u->size - u->sent;
        size_t len = left < u->chunk_bytes ? (size_t)left : u->chunk_bytes;
        if (send_chunk(u, len) != 0)
            return SA_XFER_IDLE;
        budget = budget > len ? budget - len : 0;
    }
    return send_end(u);
}

enum sa_xfer_pump sa_upload_pump(sa_upload *u)
{
    switch (u->phase) {
    case PHASE_HASHING:
        return hash_step(u);
    case PHASE_NEED_PUT:
        return u->online ? send_put(u) : SA_XFER_IDLE;
    case PHASE_SENDING:
        return u->online ? send_step(u) : SA_XFER_IDLE;
    default:
        return SA_XFER_IDLE;
    }
}

static void on_put_reply(sa_upload *u, const cJSON *reply)
{
    u->put_id = -1;
    if (!sa_xfer_is_type(reply, "ok")) {
        fail_with_reply(u, reply);
        return;
    }
    const char *file_id = sa_xfer_string(reply, "file_id");
    uint64_t offset, chunk_size = SA_XFER_MAX_CHUNK;
    if (!file_id || !*file_id || sa_json_get_size(reply, "offset", &offset) != 0 ||
        offset > u->size ||
        (cJSON_HasObjectItem(reply, "chunk_size") &&
         (sa_json_get_size(reply, "chunk_size", &chunk_size) != 0 || chunk_size == 0))) {
        fail(u, "the server's file_put reply makes no sense");
        return;
    }
    char *copy = strdup(file_id);
    if (!copy) {
        fail(u, "out of memory");
        return;
    }
    free(u->file_id);
    u->file_id = copy;
    u->chunk_bytes = sa_xfer_chunk_bytes(u->max_frame, (size_t)chunk_size, u->file_id);
    if (u->chunk_bytes == 0) {
        fail(u, "the server's max_frame is too small for file chunks");
        return;
    }
    u->resumed_at = u->sent = offset;
    u->phase = PHASE_SENDING;
}

static void on_end_reply(sa_upload *u, const cJSON *reply)
{
    u->end_id = -1;
    if (!sa_xfer_is_type(reply, "ok")) {
        fail_with_reply(u, reply);
        return;
    }
    uint64_t size;
    const char *sha256 = sa_xfer_string(reply, "sha256");
    if (sa_json_get_size(reply, "size", &size) != 0 || size != u->size || !sha256 ||
        strcasecmp(sha256, u->sha256) != 0) {
        fail(u, "the server's copy does not match (size or SHA-256)");
        return;
    }
    u->phase = PHASE_DONE;
}

int sa_upload_on_frame(sa_upload *u, const cJSON *frame)
{
    if (u->phase == PHASE_PUT_SENT && sa_xfer_is_reply_to(frame, u->put_id)) {
        on_put_reply(u, frame);
        return 1;
    }
    if (u->phase == PHASE_END_SENT && sa_xfer_is_reply_to(frame, u->end_id)) {
        on_end_reply(u, frame);
        return 1;
    }
    /* A refused chunk carries no id, only our file_id. */
    const char *file_id = sa_xfer_string(frame, "file_id");
    if ((u->phase == PHASE_SENDING || u->phase == PHASE_END_SENT) &&
        sa_xfer_is_type(frame, "error") && !cJSON_HasObjectItem(frame, "id") && file_id &&
        u->file_id && strcmp(file_id, u->file_id) == 0) {
        fail_with_reply(u, frame);
        return 1;
    }
    return 0;
}

enum sa_xfer_state sa_upload_state(const sa_upload *u)
{
    return u->phase == PHASE_DONE ? SA_XFER_DONE
           : u->phase == PHASE_FAILED ? SA_XFER_FAILED
                                      : SA_XFER_ACTIVE;
}

const char *sa_upload_error(const sa_upload *u)
{
    return u->error;
}

const char *sa_upload_path(const sa_upload *u)
{
    return u->path;
}

const char *sa_upload_name(const sa_upload *u)
{
    return u->name;
}

const char *sa_upload_file_id(const sa_upload *u)
{
    return u->file_id;
}

const char *sa_upload_sha256(const sa_upload *u)
{
    return u->sha256;
}

uint64_t sa_upload_size(const sa_upload *u)
{
    return u->size;
}

int sa_upload_sending(const sa_upload *u)
{
    return u->phase >= PHASE_SENDING && u->phase != PHASE_FAILED;
}

uint64_t sa_upload_resumed_at(const sa_upload *u)
{
    return u->resumed_at;
}

uint64_t sa_upload_sent(const sa_upload *u)
{
    return u->sent;
}
