/*
 * Uploads: file_put, file_chunk, file_end (PROTOCOL.md §8).
 *
 * The SHA-256 of an upload is computed as its chunks arrive: each chunk is
 * written to the .data file with pwrite at the offset stored so far, then
 * fed to the entry's EVP context. After a server restart (or a write that
 * failed in a way that left the context behind) the context no longer
 * covers the stored bytes; it then catches up by reading them back from
 * the .data file, a bounded amount (CATCH_UP_PER_CHUNK) in each chunk's
 * turn and whatever is left at file_end. That is the one case where bytes
 * are read twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base64.h"
#include "file_name.h"
#include "file_plugin.h"
#include "store.h"

/* Unfinished uploads one sender may have at once (each costs an entry and
 * two files even when empty). */
#define UPLOADS_OPEN_MAX 1000
/* Bytes of catch-up hashing done in one chunk's turn: a few milliseconds,
 * so a restarted upload never stalls the engine for long. */
#define CATCH_UP_PER_CHUNK ((uint64_t)8 << 16)
#define READ_BLOCK ((size_t)1 << 16)
/* Each time an upload fills this many bytes, their writeback to disk is
 * started (not waited for), so that file_end's fsync has little left to
 * flush: a long fsync would stall every client of the async engine. */
#define WRITEBACK_STEP ((uint64_t)8 << 20)

/* ---- hashing ------------------------------------------------------------- */

/* io_lock held. Makes sure e->md exists; a new one covers no bytes. */
static int ensure_md(file_entry *e)
{
    if (e->md)
        return 0;
    e->md = EVP_MD_CTX_new();
    if (!e->md || EVP_DigestInit_ex(e->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(e->md);
        e->md = NULL;
        return -1;
    }
    e->hashed = 0;
    return 0;
}

/* io_lock held. Starts the digest over (the catch-up redoes it). */
static void reset_md(file_entry *e)
{
    EVP_MD_CTX_free(e->md);
    e->md = NULL;
    e->hashed = 0;
}

/* io_lock held. Digests up to `budget` stored bytes the context has not
 * seen yet. Returns 0, or -1 (errno set) when they cannot be read. */
static int catch_up(file_entry *e, uint64_t budget)
{
    if (ensure_md(e) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (e->hashed >= e->stored || budget == 0)
        return 0;
    int fd = spool_data_open(file_plugin.spool, e->meta.file_id, O_RDONLY);
    if (fd < 0)
        return -1;
    unsigned char *block = malloc(READ_BLOCK);
    int rc = block ? 0 : -1;
    if (!block)
        errno = ENOMEM;
    while (rc == 0 && e->hashed < e->stored && budget > 0) {
        uint64_t want = e->stored - e->hashed;
        if (want > budget)
            want = budget;
        if (want > READ_BLOCK)
            want = READ_BLOCK;
        ssize_t n = pread(fd, block, (size_t)want, (off_t)e->hashed);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* shorter than what was stored */
            rc = -1;
        } else if (EVP_DigestUpdate(e->md, block, (size_t)n) != 1) {
            errno = EIO;
            rc = -1;
        } else {
            e->hashed += (uint64_t)n;
            budget -= (uint64_t)n;
        }
    }
    int saved = errno;
    free(block);
    (void)close(fd); /* read-only */
    errno = saved;
    return rc;
}

/* io_lock held. The lower-case hex SHA-256 of the digested bytes, without
 * disturbing the context. */
static int current_digest(const file_entry *e, char out[SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    int ok = copy && EVP_MD_CTX_copy_ex(copy, e->md) == 1 &&
             EVP_DigestFinal_ex(copy, md, &len) == 1 && len == SHA256_HEX_LEN / 2;
    EVP_MD_CTX_free(copy);
    if (!ok)
        return -1;
    for (unsigned int i = 0; i < len; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[SHA256_HEX_LEN] = '\0';
    return 0;
}

/* ---- small helpers --------------------------------------------------------- */

static char *lower_dup(const char *text)
{
    char *copy = strdup(text);
    for (char *p = copy; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return copy;
}

/* Frees an array of `count` names; NULL is fine. */
static void free_names(char **names, size_t count)
{
    for (size_t i = 0; names && i < count; i++)
        free(names[i]);
    free(names);
}

static void reply_internal(const sa_request *req, const char *file_id, const char *what)
{
    file_plugin.host->log(file_plugin.ctx, SA_LOG_ERROR, "%s%s%s: %s", what,
                          file_id ? " of file " : "", file_id ? file_id : "", strerror(errno));
    file_reply_error(req, "internal", "the server could not store the file", file_id, -1);
}

/* The request's entry if it is an unfinished upload of the requester's
 * (or, with complete_too, a complete file of theirs), with its io_lock
 * held and a reference; NULL after replying no_such_file. */
static file_entry *own_upload(const sa_request *req, const char *file_id, int complete_too)
{
    file_entry *e = store_get(file_id);
    const char *me = file_plugin.host->session_name(req->session);
    if (e && strcasecmp(e->meta.from, me) == 0) {
        pthread_mutex_lock(&e->io_lock);
        if (!e->gone && (complete_too || !e->meta.complete))
            return e;
        pthread_mutex_unlock(&e->io_lock);
    }
    if (e)
        store_unref(e);
    file_reply_error(req, "no_such_file", "no upload of yours has that file_id", file_id, -1);
    return NULL;
}

static void release(file_entry *e)
{
    pthread_mutex_unlock(&e->io_lock);
    store_unref(e);
}

/* ---- file_put: reading the request ----------------------------------------- */

/* Who a file is for, as file_put names it. Owns its strings. */
typedef struct addressing {
    char *to;   /* the addressed user's name as they gave it, or NULL */
    char *room; /* the room's name as first created, or NULL */
} addressing;

static void addressing_clear(addressing *a)
{
    free(a->to);
    free(a->room);
    a->to = a->room = NULL;
}

static int parse_sha256(const cJSON *body, char out[SHA256_HEX_LEN + 1])
{
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(body, "sha256");
    if (!cJSON_IsString(sha) || strlen(sha->valuestring) != SHA256_HEX_LEN)
        return -1;
    for (size_t i = 0; i < SHA256_HEX_LEN; i++) {
        char c = sha->valuestring[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
        out[i] = c;
    }
    out[SHA256_HEX_LEN] = '\0';
    return 0;
}

/* Reads "to" or "room". Returns 0, or -1 after replying. */
static int parse_addressing(const sa_request *req, addressing *out)
{
    const sa_host *host = file_plugin.host;
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(req->body, "to");
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(req->body, "room");
    *out = (addressing){0};
    if ((to && !cJSON_IsString(to)) || (room && !cJSON_IsString(room)) || (to && room)) {
        file_reply_error(req, "bad_request", to && room ? "give to or room, not both"
                                                        : "to and room must be strings",
                         NULL, -1);
        return -1;
    }
    if (to) {
        sa_session *target = host->session_find(to->valuestring);
        if (!target) {
            file_reply_error(req, "no_such_user", "no user of that name is connected", NULL, -1);
            return -1;
        }
        out->to = strdup(host->session_name(target));
        host->session_unref(target);
    } else if (room) {
        if (!file_plugin.rooms) {
            file_reply_error(req, "no_such_room", "rooms are not enabled on this server", NULL,
                             -1);
            return -1;
        }
        char canonical[SA_ROOM_NAME_MAX + 1];
        const char *code =
            file_plugin.rooms->check_member(room->valuestring, req->session, canonical);
        if (code) {
            int bad = strcmp(code, "bad_room") == 0;
            /* PROTOCOL.md §8: a room the sender is not in, existing or not. */
            file_reply_error(req, bad ? "bad_room" : "not_member",
                             bad ? "room must be 1 to 64 bytes of A-Z a-z 0-9 _ . -"
                                 : "you are not in that room",
                             NULL, -1);
            return -1;
        }
        out->room = strdup(canonical);
    } else {
        return 0;
    }
    if (!out->to && !out->room) {
        file_reply_error(req, "internal", "out of memory", NULL, -1);
        return -1;
    }
    return 0;
}

/* ---- file_put: finding or making the upload ---------------------------------- */

typedef struct put_search {
    const char *sender, *name, *sha256;
    uint64_t size;
    file_entry *resume; /* referenced */
    uint64_t used;      /* bytes of the sender's files, saturating */
    size_t open;        /* the sender's unfinished uploads */
} put_search;

static int search_visit(file_entry *e, void *arg)
{
    put_search *s = arg;
    if (strcasecmp(e->meta.from, s->sender) != 0)
        return 0;
    s->used = e->meta.size > UINT64_MAX - s->used ? UINT64_MAX : s->used + e->meta.size;
    if (e->meta.complete)
        return 0;
    s->open++;
    if (!s->resume && e->meta.size == s->size && strcmp(e->meta.name, s->name) == 0 &&
        strcmp(e->meta.sha256, s->sha256) == 0) {
        store_ref_locked(e);
        s->resume = e;
    }
    return 0;
}

/* The lower-case addressee list a record starts with: the `to` user. */
static int initial_addressees(const addressing *a, char ***out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (!a->to)
        return 0;
    char **names = malloc(sizeof *names);
    if (!names || !(names[0] = lower_dup(a->to))) {
        free(names);
        return -1;
    }
    *out = names;
    *count = 1;
    return 0;
}

/* A new upload's entry, in the table, referenced, io_lock held, its files
 * made; NULL after replying. Takes a's strings. */
static file_entry *start_upload(const sa_request *req, const char *name, uint64_t size,
                                const char *sha256, addressing *a)
{
    const sa_host *host = file_plugin.host;
    int64_t now = host->now_ms();
    spool_meta m = {.size = size, .created_ms = now, .updated_ms = now};
    memcpy(m.sha256, sha256, SHA256_HEX_LEN + 1);
    if (spool_new_id(m.file_id) != 0) {
        reply_internal(req, NULL, "making a file id");
        return NULL;
    }
    m.from = strdup(host->session_name(req->session));
    m.name = strdup(name);
    if (!m.from || !m.name || initial_addressees(a, &m.addressees, &m.addressee_count) != 0) {
        spool_meta_clear(&m);
        file_reply_error(req, "internal", "out of memory", NULL, -1);
        return NULL;
    }
    m.to = a->to;
    m.room = a->room;
    a->to = a->room = NULL; /* the record owns them now */
    file_entry *e = entry_new(&m);
    if (!e) {
        file_reply_error(req, "internal", "out of memory", NULL, -1);
        return NULL;
    }
    store_lock();
    int rc = store_insert_locked(e);
    if (rc == 0)
        store_ref_locked(e); /* the table holds one reference, this call the other */
    store_unlock();
    if (rc != 0) {
        store_unref(e);
        file_reply_error(req, "internal", "out of memory", NULL, -1);
        return NULL;
    }
    /* Nobody else knows the new id yet, and the sweep leaves a fresh
     * upload alone: the files can be made after the insertion. */
    pthread_mutex_lock(&e->io_lock);
    int made = ensure_md(e) == 0;
    if (!made)
        errno = ENOMEM;
    else
        made = spool_data_create(file_plugin.spool, e->meta.file_id) == 0 &&
               spool_meta_write(file_plugin.spool, &e->meta) == 0;
    if (made)
        return e;
    int saved = errno;
    store_remove(e);
    (void)spool_remove(file_plugin.spool, e->meta.file_id); /* whatever was made */
    errno = saved;
    reply_internal(req, NULL, "creating an upload");
    release(e);
    return NULL;
}

static int same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcasecmp(a, b) == 0);
}

/* io_lock held. A resumed upload takes the addressing of its latest
 * file_put: that is what its sender means now. Returns 0 or -1 (errno). */
static int readdress(file_entry *e, addressing *a)
{
    if (same_text(e->meta.to, a->to) && same_text(e->meta.room, a->room))
        return 0;
    spool_meta next = e->meta; /* shares every string but these three */
    next.to = a->to;
    next.room = a->room;
    next.updated_ms = file_plugin.host->now_ms();
    if (initial_addressees(a, &next.addressees, &next.addressee_count) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (spool_meta_write(file_plugin.spool, &next) != 0) {
        int saved = errno;
        free_names(next.addressees, next.addressee_count);
        errno = saved;
        return -1;
    }
    store_lock();
    char *old_to = e->meta.to, *old_room = e->meta.room;
    char **old_names = e->meta.addressees;
    size_t old_count = e->meta.addressee_count;
    e->meta = next;
    store_unlock();
    a->to = a->room = NULL; /* the record owns them now */
    free(old_to);
    free(old_room);
    free_names(old_names, old_count);
    return 0;
}

void upload_handle_put(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const sa_host *host = file_plugin.host;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(req->body, "name");
    uint64_t size = 0;
    char sha256[SHA256_HEX_LEN + 1];
    if (!cJSON_IsString(name)) {
        file_reply_error(req, "bad_request", "name must be a string", NULL, -1);
        return;
    }
    if (!file_name_valid(name->valuestring)) {
        file_reply_error(req, "bad_name",
                         "name must be 1 to 255 bytes, not . or .., without / \\ or control "
                         "characters",
                         NULL, -1);
        return;
    }
    if (host->json_get_size(req->body, "size", &size) != 0) {
        file_reply_error(req, "bad_request", "size must be a whole number from 0 to 2^53", NULL,
                         -1);
        return;
    }
    if (parse_sha256(req->body, sha256) != 0) {
        file_reply_error(req, "bad_request", "sha256 must be 64 hex digits", NULL, -1);
        return;
    }
    addressing a;
    if (parse_addressing(req, &a) != 0)
        return;
    if (size > file_plugin.max_size) {
        char message[96];
        snprintf(message, sizeof message, "files may have at most %llu bytes",
                 (unsigned long long)file_plugin.max_size);
        file_reply_error(req, "file_too_large", message, NULL, -1);
        addressing_clear(&a);
        return;
    }

    put_search search = {.sender = host->session_name(req->session),
                         .name = name->valuestring,
                         .sha256 = sha256,
                         .size = size};
    store_lock();
    store_foreach_locked(search_visit, &search);
    store_unlock();
    file_entry *e = search.resume;
    if (e) {
        pthread_mutex_lock(&e->io_lock);
        if (e->gone) { /* swept meanwhile: start afresh */
            release(e);
            e = NULL;
        } else if (readdress(e, &a) != 0) {
            reply_internal(req, e->meta.file_id, "readdressing upload");
            release(e);
            addressing_clear(&a);
            return;
        }
    }
    if (!e) {
        if (file_plugin.quota && (search.used > file_plugin.quota ||
                                  size > file_plugin.quota - search.used)) {
            char message[128];
            snprintf(message, sizeof message,
                     "your files would take more than your quota of %llu bytes",
                     (unsigned long long)file_plugin.quota);
            file_reply_error(req, "quota_exceeded", message, NULL, -1);
            addressing_clear(&a);
            return;
        }
        if (search.open >= UPLOADS_OPEN_MAX) {
            file_reply_error(req, "quota_exceeded", "too many unfinished uploads", NULL, -1);
            addressing_clear(&a);
            return;
        }
        e = start_upload(req, name->valuestring, size, sha256, &a);
        if (!e) {
            addressing_clear(&a);
            return;
        }
    }
    addressing_clear(&a);
    atomic_store(&e->active_ms, host->now_ms());
    cJSON *result = cJSON_CreateObject();
    if (result && (!cJSON_AddStringToObject(result, "file_id", e->meta.file_id) ||
                   spool_add_size(result, "offset", e->stored) != 0 ||
                   spool_add_size(result, "chunk_size", file_plugin.chunk_size) != 0)) {
        cJSON_Delete(result);
        result = NULL;
    }
    release(e);
    file_reply_ok(req, result);
    cJSON_Delete(result);
}

/* ---- file_chunk -------------------------------------------------------------- */

static int pwrite_all(int fd, const unsigned char *data, size_t len, uint64_t offset)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, data, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

/* io_lock held. Stores `len` bytes at e->stored and digests them. Returns
 * 0, or -1 (errno set) with nothing counted as stored. */
static int append_chunk(file_entry *e, const unsigned char *data, size_t len)
{
    if (len == 0)
        return 0;
    /* Bytes from before a restart are digested first, a few at a time. */
    if (catch_up(e, CATCH_UP_PER_CHUNK) != 0)
        return -1;
    int fd = spool_data_open(file_plugin.spool, e->meta.file_id, O_WRONLY);
    if (fd < 0)
        return -1;
    if (pwrite_all(fd, data, len, e->stored) != 0) {
        int saved = errno;
        /* Part of it may have landed: cut it off, so that the file stays
         * what `stored` says (and what a restart would report). */
        if (ftruncate(fd, (off_t)e->stored) != 0)
            file_plugin.host->log(file_plugin.ctx, SA_LOG_ERROR,
                                  "cannot cut file %s back to %llu bytes: %s", e->meta.file_id,
                                  (unsigned long long)e->stored, strerror(errno));
        (void)close(fd); /* the write already failed */
        errno = saved;
        return -1;
    }
    uint64_t filled = (e->stored + len) / WRITEBACK_STEP;
    if (filled != e->stored / WRITEBACK_STEP)
        /* Advisory: when it fails, file_end's fsync does the work. */
        (void)sync_file_range(fd, (off_t)((filled - 1) * WRITEBACK_STEP), (off_t)WRITEBACK_STEP,
                              SYNC_FILE_RANGE_WRITE);
    if (close(fd) != 0)
        return -1;
    if (e->hashed == e->stored) {
        if (EVP_DigestUpdate(e->md, data, len) == 1)
            e->hashed += len;
        else
            reset_md(e); /* file_end digests the file from disk instead */
    }
    e->stored += len;
    return 0;
}

void upload_handle_chunk(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const char *file_id = file_request_id(req);
    if (!file_id)
        return;
    uint64_t offset;
    if (file_plugin.host->json_get_size(req->body, "offset", &offset) != 0) {
        file_reply_error(req, "bad_request", "offset must be a whole number from 0 to 2^53",
                         file_id, -1);
        return;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(req->body, "data");
    if (!cJSON_IsString(data)) {
        file_reply_error(req, "bad_request", "data must be a base64 string", file_id, -1);
        return;
    }
    size_t text_len = strlen(data->valuestring);
    /* The decoded size never passes 3/4 of the text: no more is needed. */
    size_t cap = text_len / 4 * 3;
    if (cap > file_plugin.chunk_size)
        cap = file_plugin.chunk_size;
    unsigned char *bytes = malloc(cap ? cap : 1);
    size_t len = 0;
    if (!bytes) {
        file_reply_error(req, "internal", "out of memory", file_id, -1);
        return;
    }
    if (b64_decode(data->valuestring, text_len, bytes, cap, &len) != 0) {
        char message[128];
        snprintf(message, sizeof message,
                 "data must be standard padded base64 of at most %zu bytes",
                 file_plugin.chunk_size);
        file_reply_error(req, "bad_request", message, file_id, -1);
        free(bytes);
        return;
    }
    file_entry *e = own_upload(req, file_id, 0);
    if (!e) {
        free(bytes);
        return;
    }
    atomic_store(&e->active_ms, file_plugin.host->now_ms());
    if (offset != e->stored || len > e->meta.size - e->stored) {
        file_reply_error(req, "bad_offset",
                         offset != e->stored ? "offset must be the number of bytes stored"
                                             : "the chunk goes past the declared size",
                         file_id, (int64_t)e->stored);
    } else if (append_chunk(e, bytes, len) != 0) {
        reply_internal(req, file_id, "writing a chunk");
    }
    release(e);
    free(bytes);
}

/* ---- file_end ------------------------------------------------------------------ */

/* The other members of a room, collected under the rooms lock. */
typedef struct member_list {
    sa_session **sessions; /* referenced */
    char **names;          /* lower-case */
    size_t count, cap;
    int failed; /* out of memory */
} member_list;

static int collect_member(sa_session *s, void *arg)
{
    member_list *list = arg;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        sa_session **sessions = realloc(list->sessions, cap * sizeof *sessions);
        if (sessions)
            list->sessions = sessions;
        char **names = sessions ? realloc(list->names, cap * sizeof *names) : NULL;
        if (names)
            list->names = names;
        if (!sessions || !names) {
            list->failed = 1;
            return 1;
        }
        list->cap = cap;
    }
    char *name = lower_dup(file_plugin.host->session_name(s));
    if (!name) {
        list->failed = 1;
        return 1;
    }
    file_plugin.host->session_ref(s);
    list->sessions[list->count] = s;
    list->names[list->count++] = name;
    return 0;
}

static void member_list_clear(member_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        file_plugin.host->session_unref(list->sessions[i]);
    free(list->sessions);
    free_names(list->names, list->count);
    *list = (member_list){0};
}

/* io_lock held. For a room upload, the room's other members, who become
 * its addressees. Returns 0, or -1 after replying. */
static int room_members(const sa_request *req, const file_entry *e, member_list *list)
{
    *list = (member_list){0};
    if (!e->meta.room)
        return 0;
    if (!file_plugin.rooms) {
        file_reply_error(req, "no_such_room", "rooms are not enabled on this server",
                         e->meta.file_id, -1);
        return -1;
    }
    const char *code = file_plugin.rooms->foreach_member(e->meta.room, req->session,
                                                         collect_member, list);
    if (code || list->failed) {
        member_list_clear(list);
        if (code)
            file_reply_error(req, "not_member",
                             "you are no longer in the file's room: join it and end again",
                             e->meta.file_id, -1);
        else
            file_reply_error(req, "internal", "out of memory", e->meta.file_id, -1);
        return -1;
    }
    return 0;
}

/* io_lock held. Makes the .data exactly `size` bytes and durable before
 * the record says complete. */
static int settle_data(const file_entry *e)
{
    int fd = spool_data_open(file_plugin.spool, e->meta.file_id, O_WRONLY);
    if (fd < 0)
        return -1;
    int rc = ftruncate(fd, (off_t)e->meta.size) == 0 && fsync(fd) == 0 ? 0 : -1;
    int saved = errno;
    if (close(fd) != 0 && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

/* io_lock held. Records the upload as complete, for `list`'s members
 * when it went to a room. Returns 0 or -1 (errno set). */
static int mark_complete(file_entry *e, member_list *list)
{
    if (settle_data(e) != 0)
        return -1;
    spool_meta next = e->meta; /* shares every string but the addressees */
    next.complete = 1;
    next.updated_ms = file_plugin.host->now_ms();
    if (e->meta.room) {
        next.addressees = list->names;
        next.addressee_count = list->count;
    }
    if (spool_meta_write(file_plugin.spool, &next) != 0)
        return -1;
    store_lock();
    char **old_names = e->meta.addressees;
    size_t old_count = e->meta.addressee_count;
    e->meta = next;
    store_unlock();
    if (e->meta.room) {
        free_names(old_names, old_count);
        list->names = NULL; /* the record owns them now */
    }
    EVP_MD_CTX_free(e->md); /* a complete file is never written again */
    e->md = NULL;
    return 0;
}

static cJSON *file_summary(const file_entry *e, const char *type)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || (type && !cJSON_AddStringToObject(o, "type", type)) ||
        !cJSON_AddStringToObject(o, "file_id", e->meta.file_id) ||
        (type && (!cJSON_AddStringToObject(o, "from", e->meta.from) ||
                  !cJSON_AddStringToObject(o, "name", e->meta.name))) ||
        spool_add_size(o, "size", e->meta.size) != 0 ||
        !cJSON_AddStringToObject(o, "sha256", e->meta.sha256)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Sends file_offer to the addressees who are connected: the `to` user, or
 * the room members collected at file_end. */
static void send_offers(const file_entry *e, sa_session *sender, const member_list *list)
{
    const sa_host *host = file_plugin.host;
    cJSON *offer = file_summary(e, "file_offer");
    sa_frame *frame = offer ? host->frame_new(offer) : NULL;
    cJSON_Delete(offer);
    if (!frame) {
        host->log(file_plugin.ctx, SA_LOG_ERROR, "out of memory offering file %s",
                  e->meta.file_id);
        return;
    }
    if (e->meta.to) {
        sa_session *target = host->session_find(e->meta.to);
        if (target) {
            if (target != sender)
                host->send_frame(target, frame);
            host->session_unref(target);
        }
    }
    for (size_t i = 0; i < list->count; i++)
        host->send_frame(list->sessions[i], frame);
    host->frame_release(frame);
}

/* io_lock held. Deletes an upload whose bytes are not the announced ones. */
static void discard(file_entry *e)
{
    store_remove(e);
    if (spool_remove(file_plugin.spool, e->meta.file_id) != 0)
        file_plugin.host->log(file_plugin.ctx, SA_LOG_ERROR, "cannot delete upload %s: %s",
                              e->meta.file_id, strerror(errno));
}

void upload_handle_end(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const char *file_id = file_request_id(req);
    if (!file_id)
        return;
    file_entry *e = own_upload(req, file_id, 1);
    if (!e)
        return;
    if (e->meta.complete) {
        /* A repeated file_end (its ok was lost with a connection) gets the
         * same answer, and offers nobody again. */
        cJSON *result = file_summary(e, NULL);
        release(e);
        file_reply_ok(req, result);
        cJSON_Delete(result);
        return;
    }
    atomic_store(&e->active_ms, file_plugin.host->now_ms());
    char digest[SHA256_HEX_LEN + 1];
    if (catch_up(e, UINT64_MAX) != 0 || current_digest(e, digest) != 0) {
        reply_internal(req, file_id, "digesting an upload");
        release(e);
        return;
    }
    if (e->stored != e->meta.size || strcmp(digest, e->meta.sha256) != 0) {
        char message[160];
        if (e->stored != e->meta.size)
            snprintf(message, sizeof message,
                     "%llu of %llu bytes were received; the upload is discarded",
                     (unsigned long long)e->stored, (unsigned long long)e->meta.size);
        else
            snprintf(message, sizeof message,
                     "the bytes received hash to %s; the upload is discarded", digest);
        discard(e);
        release(e);
        file_reply_error(req, "checksum_mismatch", message, file_id, -1);
        return;
    }
    member_list members;
    if (room_members(req, e, &members) != 0) {
        release(e);
        return;
    }
    if (mark_complete(e, &members) != 0) {
        reply_internal(req, file_id, "completing an upload");
        member_list_clear(&members);
        release(e);
        return;
    }
    /* Complete: the record no longer changes, so it is read unlocked. */
    pthread_mutex_unlock(&e->io_lock);
    cJSON *result = file_summary(e, NULL);
    file_reply_ok(req, result);
    cJSON_Delete(result);
    send_offers(e, req->session, &members);
    member_list_clear(&members);
    store_unref(e);
}
