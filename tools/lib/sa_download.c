#include "sa_download.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h> /* sync_file_range */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "base64.h" /* plugins/file: the server's own codec */
#include "sa_filename.h"
#include "sa_part_file.h"
#include "sa_sha256.h"

/* Bytes read from a .part per system call while hashing it. */
#define HASH_BLOCK 65536
/* Each time the download fills this many bytes, their writeback to disk
 * is started (not waited for), so that the fdatasync before the rename has
 * little left to flush: the disk works while the rest arrives. */
#define WRITEBACK_STEP ((uint64_t)8 << 20)

enum download_phase {
    PHASE_PREPARING, /* opening and hashing an existing .part, a step per pump */
    PHASE_NEED_GET,  /* file_get goes out at the next pump */
    PHASE_GET_SENT,  /* waiting for the file_get reply */
    PHASE_RECEIVING, /* chunks arriving */
    PHASE_DONE,
    PHASE_FAILED
};

struct sa_download {
    enum download_phase phase;
    int dirfd; /* borrowed */
    char *dir_display, *file_id; /* ours */
    char *name;      /* ours: the safe name; NULL until known */
    char *part_name; /* ours: name + ".part" */
    uint64_t offered_size;
    int force;

    int fd;           /* ours: the .part, locked; -1 when not open */
    int created_part; /* this download created the .part */
    sa_sha256 *hash;  /* ours: of the bytes in the .part so far */
    uint64_t part_size; /* bytes of an existing .part still to hash */
    uint64_t written;   /* bytes in the .part (hashed) */

    int online;
    sa_xfer_transport transport;
    int64_t get_id; /* the latest file_get on this connection; -1: none */
    uint64_t asked_offset;

    uint64_t size;  /* from the file_get reply */
    char sha256[SA_SHA256_HEX_LEN + 1];
    uint64_t resumed_at;
    int receiving;
    char *path; /* ours: once done */

    unsigned char *buffer; /* ours: hashing blocks and decoded chunks */
    size_t buffer_cap;
    char error[512];
};

static void fail(sa_download *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Leaves the .part in place for a later resume, except one this run
 * created and wrote nothing to. */
static void fail(sa_download *d, const char *fmt, ...)
{
    if (d->phase == PHASE_FAILED)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->error, sizeof d->error, fmt, ap);
    va_end(ap);
    d->phase = PHASE_FAILED;
    if (d->fd >= 0) {
        if (d->created_part && d->written == 0)
            (void)unlinkat(d->dirfd, d->part_name, 0); /* tidying only */
        (void)close(d->fd); /* the data is written already; close only unlocks */
        d->fd = -1;
    }
}

static void fail_with_reply(sa_download *d, const cJSON *error)
{
    char *text = sa_xfer_error_text(error); /* ours; freed below */
    fail(d, "%s", text ? text : "error reply (out of memory to show it)");
    free(text);
}

static int ensure_buffer(sa_download *d, size_t cap)
{
    if (cap <= d->buffer_cap)
        return 0;
    unsigned char *grown = realloc(d->buffer, cap);
    if (!grown)
        return -1;
    d->buffer = grown;
    d->buffer_cap = cap;
    return 0;
}

/* Sets the safe name and its .part from what the server calls the file. */
static int set_name(sa_download *d, const char *offered)
{
    d->name = sa_filename_sanitize(offered, d->file_id);
    if (!d->name || asprintf(&d->part_name, "%s.part", d->name) < 0) {
        d->part_name = NULL;
        return -1;
    }
    return 0;
}

sa_download *sa_download_new(const sa_download_params *p, char *err, size_t errlen)
{
    sa_download *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->fd = -1;
    d->get_id = -1;
    d->dirfd = p->dirfd;
    d->offered_size = p->offered_size;
    d->force = p->force;
    d->dir_display = strdup(p->dir_display);
    d->file_id = strdup(p->file_id);
    d->hash = sa_sha256_new();
    if (!d->dir_display || !d->file_id || !d->hash || ensure_buffer(d, HASH_BLOCK) != 0 ||
        (p->offered_name && set_name(d, p->offered_name) != 0)) {
        snprintf(err, errlen, "out of memory");
        sa_download_free(d);
        return NULL;
    }
    d->phase = p->offered_name ? PHASE_PREPARING : PHASE_NEED_GET;
    return d;
}

void sa_download_free(sa_download *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        (void)close(d->fd); /* every byte was written with pwrite; closing unlocks */
    free(d->dir_display);
    free(d->file_id);
    free(d->name);
    free(d->part_name);
    sa_sha256_free(d->hash);
    free(d->path);
    free(d->buffer);
    free(d);
}

void sa_download_start(sa_download *d, const sa_xfer_transport *t)
{
    d->transport = *t;
    d->online = 1;
    d->get_id = -1;
    /* What was in flight on the old connection is gone: ask again from
     * the bytes already written (and hashed). */
    if (d->phase == PHASE_GET_SENT || d->phase == PHASE_RECEIVING)
        d->phase = PHASE_NEED_GET;
}

void sa_download_stop(sa_download *d)
{
    d->online = 0;
    d->get_id = -1;
}

/* Opens the .part (by now the name is known) and notes what it holds. */
static int open_part(sa_download *d)
{
    char err[512];
    d->fd = sa_part_open(d->dirfd, d->part_name, &d->created_part, err, sizeof err);
    if (d->fd < 0) {
        fail(d, "%s", err);
        return -1;
    }
    struct stat st;
    if (fstat(d->fd, &st) != 0) {
        fail(d, "%s: %s", d->part_name, strerror(errno));
        return -1;
    }
    d->part_size = (uint64_t)st.st_size;
    d->written = 0;
    if (sa_sha256_reset(d->hash) != 0) {
        fail(d, "cannot compute SHA-256");
        return -1;
    }
    return 0;
}

/* Empties the .part: the server sends the file from its start. */
static int truncate_part(sa_download *d)
{
    if (ftruncate(d->fd, 0) != 0) {
        fail(d, "%s: %s", d->part_name, strerror(errno));
        return -1;
    }
    d->part_size = 0;
    d->written = 0;
    if (sa_sha256_reset(d->hash) != 0) {
        fail(d, "cannot compute SHA-256");
        return -1;
    }
    return 0;
}

/* One step of taking up an existing .part. */
static enum sa_xfer_pump prepare_step(sa_download *d)
{
    if (d->fd < 0) {
        if (open_part(d) != 0)
            return SA_XFER_IDLE;
        /* Longer than the file: not a piece of it. */
        if (d->offered_size > 0 && d->part_size > d->offered_size && truncate_part(d) != 0)
            return SA_XFER_IDLE;
    }
    uint64_t left = d->part_size - d->written;
    uint64_t want = left < SA_XFER_STEP_BYTES ? left : SA_XFER_STEP_BYTES;
    int64_t got = sa_sha256_fd(d->hash, d->fd, d->written, want, d->buffer, HASH_BLOCK);
    if (got < 0) {
        fail(d, "%s: cannot read: %s", d->part_name, strerror(errno));
        return SA_XFER_IDLE;
    }
    d->written += (uint64_t)got;
    if ((uint64_t)got < want) /* it shrank meanwhile: resume from what is there */
        d->part_size = d->written;
    if (d->written < d->part_size)
        return SA_XFER_AGAIN;
    d->phase = PHASE_NEED_GET;
    return SA_XFER_AGAIN;
}

static enum sa_xfer_pump send_get(sa_download *d)
{
    char offset[24];
    snprintf(offset, sizeof offset, "%llu", (unsigned long long)d->written);
    cJSON *get = cJSON_CreateObject(); /* ours; deleted below */
    if (!get || !cJSON_AddStringToObject(get, "type", "file_get") ||
        !cJSON_AddStringToObject(get, "file_id", d->file_id) ||
        !cJSON_AddRawToObject(get, "offset", offset)) {
        cJSON_Delete(get);
        fail(d, "out of memory");
        return SA_XFER_IDLE;
    }
    int64_t id = d->transport.request(d->transport.ctx, get);
    cJSON_Delete(get);
    if (id < 0) {
        sa_download_stop(d); /* the connection is going away */
        return SA_XFER_IDLE;
    }
    d->get_id = id;
    d->asked_offset = d->written;
    d->phase = PHASE_GET_SENT;
    return SA_XFER_IDLE;
}

enum sa_xfer_pump sa_download_pump(sa_download *d)
{
    switch (d->phase) {
    case PHASE_PREPARING:
        return prepare_step(d);
    case PHASE_NEED_GET:
        return d->online ? send_get(d) : SA_XFER_IDLE;
    default:
        return SA_XFER_IDLE;
    }
}

static void on_get_reply(sa_download *d, const cJSON *reply)
{
    if (!sa_xfer_is_type(reply, "ok")) {
        fail_with_reply(d, reply);
        return;
    }
    uint64_t size, offset;
    const char *sha256 = sa_xfer_string(reply, "sha256");
    if (sa_json_get_size(reply, "size", &size) != 0 || !sa_sha256_hex_valid(sha256) ||
        sa_json_get_size(reply, "offset", &offset) != 0 || offset != d->asked_offset ||
        offset > size) {
        fail(d, "the server's file_get reply makes no sense");
        return;
    }
    if (!d->name) {
        /* Asked from 0 without knowing the name: the .part starts empty. */
        if (set_name(d, sa_xfer_string(reply, "name")) != 0) {
            fail(d, "out of memory");
            return;
        }
        if (open_part(d) != 0 || truncate_part(d) != 0)
            return;
    }
    if (d->receiving && (size != d->size || strcasecmp(sha256, d->sha256) != 0)) {
        fail(d, "the file changed on the server while it was being downloaded");
        return;
    }
    if (!d->receiving)
        d->resumed_at = offset;
    d->size = size;
    for (size_t i = 0; i <= SA_SHA256_HEX_LEN; i++)
        d->sha256[i] = (char)tolower((unsigned char)sha256[i]);
    d->receiving = 1;
    d->phase = PHASE_RECEIVING;
}

/* Writes all of buffer[0, len) at d->written. */
static int write_part(sa_download *d, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(d->fd, d->buffer + done, len - done, (off_t)(d->written + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail(d, "%s: cannot write: %s", d->part_name, strerror(errno));
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

static void on_chunk(sa_download *d, const cJSON *chunk)
{
    uint64_t offset;
    const char *data = sa_xfer_string(chunk, "data");
    if (sa_json_get_size(chunk, "offset", &offset) != 0 || offset != d->written || !data) {
        fail(d, "the server sent a chunk out of order");
        return;
    }
    size_t len = strlen(data);
    size_t decoded = 0;
    if (ensure_buffer(d, len / 4 * 3 + 1) != 0) {
        fail(d, "out of memory");
        return;
    }
    if (b64_decode(data, len, d->buffer, d->buffer_cap, &decoded) != 0) {
        fail(d, "the server sent a chunk that is not base64");
        return;
    }
    if (decoded > d->size - d->written) {
        fail(d, "the server sent more than the file's size");
        return;
    }
    if (write_part(d, decoded) != 0)
        return;
    uint64_t filled = (d->written + decoded) / WRITEBACK_STEP;
    if (filled != d->written / WRITEBACK_STEP)
        /* Advisory: when it fails, the fdatasync at the end does the work. */
        (void)sync_file_range(d->fd, (off_t)((filled - 1) * WRITEBACK_STEP),
                              (off_t)WRITEBACK_STEP, SYNC_FILE_RANGE_WRITE);
    if (sa_sha256_update(d->hash, d->buffer, decoded) != 0) {
        fail(d, "cannot compute SHA-256");
        return;
    }
    d->written += decoded;
}

static void on_end(sa_download *d, const cJSON *end)
{
    uint64_t size;
    const char *sha256 = sa_xfer_string(end, "sha256");
    if ((cJSON_HasObjectItem(end, "size") &&
         (sa_json_get_size(end, "size", &size) != 0 || size != d->size)) ||
        (sha256 && strcasecmp(sha256, d->sha256) != 0)) {
        fail(d, "the server's file_end does not match its file_get reply");
        return;
    }
    if (d->written != d->size) {
        fail(d, "the server ended the file after %llu of %llu bytes",
             (unsigned long long)d->written, (unsigned long long)d->size);
        return;
    }
    char got[SA_SHA256_HEX_LEN + 1];
    if (sa_sha256_final_hex(d->hash, got) != 0) {
        fail(d, "cannot compute SHA-256");
        return;
    }
    if (strcmp(got, d->sha256) != 0) {
        /* Nothing of it can be trusted: start afresh next time. */
        if (unlinkat(d->dirfd, d->part_name, 0) != 0)
            fail(d, "checksum_mismatch: got %s, expected %s (and cannot delete %s: %s)", got,
                 d->sha256, d->part_name, strerror(errno));
        else
            fail(d, "checksum_mismatch: got %s, expected %s; %s deleted", got, d->sha256,
                 d->part_name);
        return;
    }
    if (fdatasync(d->fd) != 0) {
        fail(d, "%s: cannot write: %s", d->part_name, strerror(errno));
        return;
    }
    char err[512];
    char *final = sa_part_commit(d->dirfd, d->part_name, d->name, d->force, err, sizeof err);
    if (!final) {
        fail(d, "%s", err);
        return;
    }
    size_t dir_len = strlen(d->dir_display);
    int slash = dir_len > 0 && d->dir_display[dir_len - 1] == '/';
    int rc = asprintf(&d->path, "%s%s%s", d->dir_display, slash ? "" : "/", final);
    free(final);
    if (rc < 0) {
        d->path = NULL;
        fail(d, "out of memory");
        return;
    }
    (void)close(d->fd); /* synced above; closing only unlocks */
    d->fd = -1;
    d->phase = PHASE_DONE;
}

int sa_download_on_frame(sa_download *d, const cJSON *frame)
{
    /* get_id stays set while receiving: the server may still refuse the
     * file_get it is answering, with an error carrying its id. */
    if (sa_xfer_is_reply_to(frame, d->get_id)) {
        if (d->phase == PHASE_GET_SENT)
            on_get_reply(d, frame);
        else if (d->phase == PHASE_RECEIVING && sa_xfer_is_type(frame, "error"))
            fail_with_reply(d, frame);
        else
            return 0;
        return 1;
    }
    const char *file_id = sa_xfer_string(frame, "file_id");
    if (d->phase != PHASE_RECEIVING || !file_id || strcmp(file_id, d->file_id) != 0)
        return 0;
    if (sa_xfer_is_type(frame, "file_chunk"))
        on_chunk(d, frame);
    else if (sa_xfer_is_type(frame, "file_end"))
        on_end(d, frame);
    else if (sa_xfer_is_type(frame, "error") && !cJSON_HasObjectItem(frame, "id"))
        fail_with_reply(d, frame);
    else
        return 0;
    return 1;
}

enum sa_xfer_state sa_download_state(const sa_download *d)
{
    return d->phase == PHASE_DONE ? SA_XFER_DONE
           : d->phase == PHASE_FAILED ? SA_XFER_FAILED
                                      : SA_XFER_ACTIVE;
}

const char *sa_download_error(const sa_download *d)
{
    return d->error;
}

const char *sa_download_file_id(const sa_download *d)
{
    return d->file_id;
}

const char *sa_download_name(const sa_download *d)
{
    return d->name;
}

const char *sa_download_path(const sa_download *d)
{
    return d->path;
}

const char *sa_download_sha256(const sa_download *d)
{
    return d->sha256;
}

int sa_download_receiving(const sa_download *d)
{
    return d->receiving;
}

uint64_t sa_download_size(const sa_download *d)
{
    return d->size;
}

uint64_t sa_download_resumed_at(const sa_download *d)
{
    return d->resumed_at;
}

uint64_t sa_download_received(const sa_download *d)
{
    return d->written;
}
