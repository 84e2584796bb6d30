#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "file_name.h"

#define DATA_SUFFIX ".data"
#define META_SUFFIX ".meta"
#define TEMP_SUFFIX ".meta.tmp"
/* "<id>.meta.tmp" and a NUL. */
#define SPOOL_NAME_MAX (FILE_ID_LEN + sizeof TEMP_SUFFIX)
/* A .meta lists a room's members: 10 million of them at most (the rooms
 * plugin's ceiling), so anything larger is not one of ours. */
#define META_MAX_BYTES ((off_t)1 << 30)
#define MAX_SAFE_INTEGER 9007199254740992.0 /* 2^53 */

void spool_meta_clear(spool_meta *m)
{
    free(m->from);
    free(m->name);
    free(m->to);
    free(m->room);
    for (size_t i = 0; i < m->addressee_count; i++)
        free(m->addressees[i]);
    free(m->addressees);
    memset(m, 0, sizeof *m);
}

int spool_open(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int spool_new_id(char out[FILE_ID_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[FILE_ID_LEN / 2];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        errno = EIO;
        return -1;
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[FILE_ID_LEN] = '\0';
    return 0;
}

static int is_lower_hex(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return 0;
    return 1;
}

int spool_id_valid(const char *text)
{
    return strnlen(text, FILE_ID_LEN + 1) == FILE_ID_LEN && is_lower_hex(text, FILE_ID_LEN);
}

/* "<id><suffix>" into out (SPOOL_NAME_MAX bytes); the id is one of ours. */
static void spool_name(char out[SPOOL_NAME_MAX], const char *file_id, const char *suffix)
{
    snprintf(out, SPOOL_NAME_MAX, "%.*s%s", FILE_ID_LEN, file_id, suffix);
}

int spool_data_create(int dir, const char *file_id)
{
    char name[SPOOL_NAME_MAX];
    spool_name(name, file_id, DATA_SUFFIX);
    int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    return close(fd);
}

int spool_data_open(int dir, const char *file_id, int flags)
{
    char name[SPOOL_NAME_MAX];
    spool_name(name, file_id, DATA_SUFFIX);
    return openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC);
}

/* ---- numbers ------------------------------------------------------------ */

int spool_add_size(cJSON *obj, const char *key, uint64_t value)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%" PRIu64, value);
    return cJSON_AddRawToObject(obj, key, digits) ? 0 : -1;
}

int spool_get_size(const cJSON *obj, const char *key, uint64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(item))
        return -1;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= MAX_SAFE_INTEGER) || v != (double)(uint64_t)v)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* ---- writing a .meta -------------------------------------------------- */

/* The JSON text of `m`; the caller frees it. NULL when out of memory. */
static char *meta_text(const spool_meta *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *list = o ? cJSON_AddArrayToObject(o, "addressees") : NULL;
    int ok = list && cJSON_AddStringToObject(o, "file_id", m->file_id) &&
             cJSON_AddStringToObject(o, "from", m->from) &&
             cJSON_AddStringToObject(o, "name", m->name) &&
             spool_add_size(o, "size", m->size) == 0 &&
             cJSON_AddStringToObject(o, "sha256", m->sha256) &&
             (!m->to || cJSON_AddStringToObject(o, "to", m->to)) &&
             (!m->room || cJSON_AddStringToObject(o, "room", m->room)) &&
             cJSON_AddBoolToObject(o, "complete", m->complete) &&
             spool_add_size(o, "created", m->created_ms > 0 ? (uint64_t)m->created_ms : 0) == 0 &&
             spool_add_size(o, "updated", m->updated_ms > 0 ? (uint64_t)m->updated_ms : 0) == 0;
    for (size_t i = 0; ok && i < m->addressee_count; i++)
        ok = cJSON_AddItemToArray(list, cJSON_CreateString(m->addressees[i]));
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int spool_meta_write(int dir, const spool_meta *m)
{
    char *text = meta_text(m);
    if (!text) {
        errno = ENOMEM;
        return -1;
    }
    char temp[SPOOL_NAME_MAX], final[SPOOL_NAME_MAX];
    spool_name(temp, m->file_id, TEMP_SUFFIX);
    spool_name(final, m->file_id, META_SUFFIX);
    int fd = openat(dir, temp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = -1;
    if (fd >= 0) {
        rc = write_all(fd, text, strlen(text)) == 0 && fsync(fd) == 0 ? 0 : -1;
        int saved = errno;
        if (close(fd) != 0 && rc == 0)
            saved = errno, rc = -1;
        /* The rename is what publishes the record; the folder's fsync makes
         * the rename itself survive a crash. */
        if (rc == 0 && (renameat(dir, temp, dir, final) != 0 || fsync(dir) != 0)) {
            saved = errno;
            rc = -1;
        }
        if (rc != 0)
            (void)unlinkat(dir, temp, 0); /* best effort: spool_remove_strays retries */
        errno = saved;
    }
    free(text);
    return rc;
}

/* ---- reading a .meta ---------------------------------------------------- */

/* The whole file, NUL-terminated; the caller frees it. -1 on error. */
static int read_small_file(int dir, const char *name, char **out, size_t *out_len)
{
    int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    char *buf = NULL;
    size_t have = 0;
    int rc = -1;
    if (fstat(fd, &st) != 0)
        goto done;
    if (!S_ISREG(st.st_mode) || st.st_size > META_MAX_BYTES) {
        errno = EFBIG;
        goto done;
    }
    size_t want = (size_t)st.st_size;
    buf = malloc(want + 1);
    if (!buf)
        goto done;
    while (have < want) {
        ssize_t n = read(fd, buf + have, want - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* shrank while read */
            goto done;
        }
        have += (size_t)n;
    }
    buf[have] = '\0';
    rc = 0;
done:;
    int saved = errno;
    (void)close(fd); /* read-only: nothing to lose */
    if (rc == 0) {
        *out = buf;
        *out_len = have;
    } else {
        free(buf);
    }
    errno = saved;
    return rc;
}

/* A copy of obj[key] when it is a string (NULL otherwise or out of memory;
 * *bad is set in either case). */
static char *copy_string(const cJSON *obj, const char *key, int *bad)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    char *copy = cJSON_IsString(item) ? strdup(item->valuestring) : NULL;
    if (!copy)
        *bad = 1;
    return copy;
}

static int parse_meta(const cJSON *o, const char *file_id, spool_meta *m)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "file_id");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(o, "sha256");
    const cJSON *complete = cJSON_GetObjectItemCaseSensitive(o, "complete");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "addressees");
    uint64_t created, updated;
    if (!cJSON_IsString(id) || strcmp(id->valuestring, file_id) != 0 || !cJSON_IsString(sha) ||
        strlen(sha->valuestring) != SHA256_HEX_LEN ||
        !is_lower_hex(sha->valuestring, SHA256_HEX_LEN) || !cJSON_IsBool(complete) ||
        !cJSON_IsArray(list) || spool_get_size(o, "size", &m->size) != 0 ||
        spool_get_size(o, "created", &created) != 0 || spool_get_size(o, "updated", &updated) != 0)
        return -1;
    memcpy(m->file_id, file_id, FILE_ID_LEN + 1);
    memcpy(m->sha256, sha->valuestring, SHA256_HEX_LEN + 1);
    m->complete = cJSON_IsTrue(complete);
    m->created_ms = (int64_t)created;
    m->updated_ms = (int64_t)updated;
    int bad = 0;
    m->from = copy_string(o, "from", &bad);
    m->name = copy_string(o, "name", &bad);
    if (cJSON_HasObjectItem(o, "to"))
        m->to = copy_string(o, "to", &bad);
    if (cJSON_HasObjectItem(o, "room"))
        m->room = copy_string(o, "room", &bad);
    if (bad || !m->from[0] || !file_name_valid(m->name) || (m->to && m->room))
        return -1;
    int count = cJSON_GetArraySize(list);
    m->addressees = count > 0 ? calloc((size_t)count, sizeof *m->addressees) : NULL;
    if (count > 0 && !m->addressees)
        return -1;
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        if (!cJSON_IsString(item))
            return -1;
        if (!(m->addressees[m->addressee_count] = strdup(item->valuestring)))
            return -1;
        m->addressee_count++;
    }
    return 0;
}

int spool_meta_read(int dir, const char *file_id, spool_meta *out)
{
    memset(out, 0, sizeof *out);
    char name[SPOOL_NAME_MAX];
    spool_name(name, file_id, META_SUFFIX);
    char *text = NULL;
    size_t len = 0;
    if (read_small_file(dir, name, &text, &len) != 0)
        return -1;
    cJSON *o = cJSON_ParseWithLength(text, len);
    free(text);
    int rc = cJSON_IsObject(o) && parse_meta(o, file_id, out) == 0 ? 0 : -2;
    cJSON_Delete(o);
    if (rc != 0)
        spool_meta_clear(out);
    return rc;
}

/* ---- removing ----------------------------------------------------------- */

static int unlink_if_present(int dir, const char *name)
{
    return unlinkat(dir, name, 0) == 0 || errno == ENOENT ? 0 : -1;
}

int spool_remove(int dir, const char *file_id)
{
    char meta[SPOOL_NAME_MAX], data[SPOOL_NAME_MAX];
    spool_name(meta, file_id, META_SUFFIX);
    spool_name(data, file_id, DATA_SUFFIX);
    return unlink_if_present(dir, meta) == 0 && unlink_if_present(dir, data) == 0 ? 0 : -1;
}

/* ---- scanning ----------------------------------------------------------- */

/* When `name` is "<id><suffix>", copies the id to `id` and returns 1. */
static int split_name(const char *name, const char *suffix, char id[FILE_ID_LEN + 1])
{
    size_t len = strlen(name), suffix_len = strlen(suffix);
    if (len != FILE_ID_LEN + suffix_len || strcmp(name + FILE_ID_LEN, suffix) != 0 ||
        !is_lower_hex(name, FILE_ID_LEN))
        return 0;
    memcpy(id, name, FILE_ID_LEN);
    id[FILE_ID_LEN] = '\0';
    return 1;
}

/* Calls visit(name) for every entry of the folder. */
static int foreach_entry(int dir, void (*visit)(int dir, const char *name, void *arg), void *arg)
{
    int fd = dup(dir);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        int saved = errno;
        (void)close(fd);
        errno = saved;
        return -1;
    }
    rewinddir(d); /* the duplicate shares the original's position */
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        visit(dir, e->d_name, arg);
        errno = 0;
    }
    int rc = errno ? -1 : 0;
    int saved = errno;
    (void)closedir(d);
    errno = saved;
    return rc;
}

typedef struct meta_visit {
    void (*visit)(const char *file_id, void *arg);
    void *arg;
} meta_visit;

static void visit_meta(int dir, const char *name, void *arg)
{
    (void)dir;
    const meta_visit *v = arg;
    char id[FILE_ID_LEN + 1];
    if (split_name(name, META_SUFFIX, id))
        v->visit(id, v->arg);
}

int spool_foreach_meta(int dir, void (*visit)(const char *file_id, void *arg), void *arg)
{
    meta_visit v = {visit, arg};
    return foreach_entry(dir, visit_meta, &v);
}

typedef struct stray_visit {
    void (*on_removed)(const char *name, void *arg);
    void *arg;
    int failed; /* errno of the first failed unlink, or 0 */
} stray_visit;

static void visit_stray(int dir, const char *name, void *arg)
{
    stray_visit *v = arg;
    char id[FILE_ID_LEN + 1], meta[SPOOL_NAME_MAX];
    struct stat st;
    int stray = split_name(name, TEMP_SUFFIX, id);
    if (!stray && split_name(name, DATA_SUFFIX, id)) {
        spool_name(meta, id, META_SUFFIX);
        stray = fstatat(dir, meta, &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT;
    }
    if (!stray)
        return;
    if (unlinkat(dir, name, 0) == 0) {
        if (v->on_removed)
            v->on_removed(name, v->arg);
    } else if (errno != ENOENT && !v->failed) {
        v->failed = errno;
    }
}

int spool_remove_strays(int dir, void (*on_removed)(const char *name, void *arg), void *arg)
{
    stray_visit v = {on_removed, arg, 0};
    if (foreach_entry(dir, visit_stray, &v) != 0)
        return -1;
    if (v.failed) {
        errno = v.failed;
        return -1;
    }
    return 0;
}
