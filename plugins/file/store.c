#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_plugin.h"

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static file_entry **buckets;
static size_t bucket_count; /* a power of two, or 0 */
static size_t entry_count;

/* ---- entries -------------------------------------------------------------- */

file_entry *entry_new(spool_meta *meta)
{
    file_entry *e = calloc(1, sizeof *e);
    if (!e || pthread_mutex_init(&e->io_lock, NULL) != 0) {
        free(e);
        spool_meta_clear(meta);
        return NULL;
    }
    e->meta = *meta;
    memset(meta, 0, sizeof *meta);
    atomic_init(&e->active_ms, e->meta.updated_ms);
    e->refs = 1;
    return e;
}

static void entry_free(file_entry *e)
{
    spool_meta_clear(&e->meta);
    EVP_MD_CTX_free(e->md);
    pthread_mutex_destroy(&e->io_lock);
    free(e);
}

int entry_visible_to(const file_entry *e, const char *user)
{
    if (!e->meta.complete)
        return 0;
    if (strcasecmp(e->meta.from, user) == 0)
        return 1;
    for (size_t i = 0; i < e->meta.addressee_count; i++)
        if (strcasecmp(e->meta.addressees[i], user) == 0)
            return 1;
    return 0;
}

/* ---- the table -------------------------------------------------------------- */

void store_lock(void) { pthread_mutex_lock(&table_lock); }
void store_unlock(void) { pthread_mutex_unlock(&table_lock); }

static size_t hash_id(const char *id)
{
    size_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ull;
    return h;
}

/* Lock held. The link that points, or would point, at the entry `id`. */
static file_entry **slot_of(const char *id)
{
    file_entry **at = &buckets[hash_id(id) & (bucket_count - 1)];
    while (*at && strcmp((*at)->meta.file_id, id) != 0)
        at = &(*at)->next;
    return at;
}

/* Lock held. Keeps the load factor at most 1. */
static int table_grow(void)
{
    size_t fresh_count = bucket_count ? bucket_count * 2 : 64;
    file_entry **fresh = calloc(fresh_count, sizeof *fresh);
    if (!fresh)
        return -1;
    for (size_t i = 0; i < bucket_count; i++) {
        for (file_entry *e = buckets[i], *next; e; e = next) {
            next = e->next;
            file_entry **b = &fresh[hash_id(e->meta.file_id) & (fresh_count - 1)];
            e->next = *b;
            *b = e;
        }
    }
    free(buckets);
    buckets = fresh;
    bucket_count = fresh_count;
    return 0;
}

file_entry *store_find_locked(const char *file_id)
{
    return bucket_count ? *slot_of(file_id) : NULL;
}

void store_ref_locked(file_entry *e) { e->refs++; }

file_entry *store_get(const char *file_id)
{
    store_lock();
    file_entry *e = store_find_locked(file_id);
    if (e)
        store_ref_locked(e);
    store_unlock();
    return e;
}

void store_unref(file_entry *e)
{
    store_lock();
    int last = --e->refs == 0;
    store_unlock();
    if (last)
        entry_free(e);
}

int store_insert_locked(file_entry *e)
{
    if (entry_count + 1 > bucket_count && table_grow() != 0)
        return -1;
    file_entry **at = slot_of(e->meta.file_id);
    e->next = *at; /* NULL: ids are unique */
    *at = e;
    entry_count++;
    return 0;
}

void store_remove(file_entry *e)
{
    store_lock();
    file_entry **at = bucket_count ? slot_of(e->meta.file_id) : NULL;
    if (at && *at == e) {
        *at = e->next;
        e->next = NULL;
        entry_count--;
        e->refs--; /* the table's; the caller still holds one */
    }
    e->gone = 1;
    store_unlock();
}

void store_foreach_locked(int (*visit)(file_entry *e, void *arg), void *arg)
{
    for (size_t i = 0; i < bucket_count; i++)
        for (file_entry *e = buckets[i]; e; e = e->next)
            if (visit(e, arg))
                return;
}

void store_clear(void)
{
    store_lock();
    for (size_t i = 0; i < bucket_count; i++) {
        for (file_entry *e = buckets[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    free(buckets);
    buckets = NULL;
    bucket_count = entry_count = 0;
    store_unlock();
}

/* ---- loading at start ------------------------------------------------------ */

typedef struct load_state {
    size_t loaded, complete;
    int failed; /* out of memory: init fails */
} load_state;

static void log_removed_stray(const char *name, void *arg)
{
    (void)arg;
    file_plugin.host->log(file_plugin.ctx, SA_LOG_INFO, "removed stray spool file %s", name);
}

/* An unfinished upload that cannot be resumed is deleted: its sender can
 * only start again. */
static void drop_unfinished(const spool_meta *m, const char *why)
{
    const sa_host *host = file_plugin.host;
    host->log(file_plugin.ctx, SA_LOG_WARN, "unfinished upload %s: %s; deleting it", m->file_id,
              why);
    if (spool_remove(file_plugin.spool, m->file_id) != 0)
        host->log(file_plugin.ctx, SA_LOG_ERROR, "cannot delete upload %s: %s", m->file_id,
                  strerror(errno));
}

/* Checks a record against its .data and sets *stored and *mtime_ms.
 * Returns NULL, or why the record is unusable. */
static const char *check_data(const spool_meta *m, uint64_t *stored, int64_t *mtime_ms)
{
    int fd = spool_data_open(file_plugin.spool, m->file_id, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? "its data file is missing" : "its data file cannot be opened";
    struct stat st;
    int rc = fstat(fd, &st);
    (void)close(fd); /* read-only */
    if (rc != 0 || !S_ISREG(st.st_mode))
        return "its data file cannot be read";
    *stored = (uint64_t)st.st_size;
    *mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    if (m->complete ? *stored != m->size : *stored > m->size)
        return m->complete ? "its data file is not of the recorded size"
                           : "its data file is longer than the declared size";
    return NULL;
}

static void load_one(const char *file_id, void *arg)
{
    load_state *state = arg;
    const sa_host *host = file_plugin.host;
    spool_meta m;
    int rc = spool_meta_read(file_plugin.spool, file_id, &m);
    if (rc != 0) {
        /* Left in place for the operator: nothing else touches it. */
        host->log(file_plugin.ctx, SA_LOG_WARN, "spool record %s.meta is %s; ignoring it", file_id,
                  rc == -2 ? "not valid" : strerror(errno));
        return;
    }
    uint64_t stored = 0;
    int64_t mtime_ms = 0;
    const char *why = check_data(&m, &stored, &mtime_ms);
    if (why) {
        if (m.complete)
            host->log(file_plugin.ctx, SA_LOG_WARN, "file %s: %s; ignoring it", file_id, why);
        else
            drop_unfinished(&m, why);
        spool_meta_clear(&m);
        return;
    }
    int complete = m.complete;
    file_entry *e = entry_new(&m);
    if (!e) {
        state->failed = 1;
        return;
    }
    e->stored = stored;
    /* hashed stays 0: the first chunk or file_end after the restart
     * digests the stored bytes again (see upload.c). */
    if (mtime_ms > e->meta.updated_ms)
        atomic_store(&e->active_ms, mtime_ms);
    store_lock();
    rc = store_insert_locked(e);
    store_unlock();
    if (rc != 0) {
        entry_free(e);
        state->failed = 1;
        return;
    }
    state->loaded++;
    state->complete += complete != 0;
}

int store_load(void)
{
    const sa_host *host = file_plugin.host;
    if (spool_remove_strays(file_plugin.spool, log_removed_stray, NULL) != 0)
        host->log(file_plugin.ctx, SA_LOG_WARN, "cannot remove every stray spool file: %s",
                  strerror(errno));
    load_state state = {0};
    if (spool_foreach_meta(file_plugin.spool, load_one, &state) != 0) {
        host->log(file_plugin.ctx, SA_LOG_ERROR, "cannot list the spool folder: %s",
                  strerror(errno));
        return -1;
    }
    if (state.failed) {
        host->log(file_plugin.ctx, SA_LOG_ERROR, "out of memory loading the spool");
        return -1;
    }
    host->log(file_plugin.ctx, SA_LOG_INFO,
              "spool holds %zu complete files and %zu unfinished uploads", state.complete,
              state.loaded - state.complete);
    return 0;
}

/* ---- the sweep ------------------------------------------------------------ */

typedef struct sweep_list {
    int64_t cutoff_ms;
    file_entry **entries; /* referenced */
    size_t count, cap;
} sweep_list;

static int is_stale(file_entry *e, int64_t cutoff_ms)
{
    return !e->meta.complete && atomic_load(&e->active_ms) < cutoff_ms;
}

/* Store lock held: collects (and references) the stale uploads. */
static int collect_stale(file_entry *e, void *arg)
{
    sweep_list *list = arg;
    if (!is_stale(e, list->cutoff_ms))
        return 0;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        file_entry **grown = realloc(list->entries, cap * sizeof *grown);
        if (!grown)
            return 1; /* the next sweep takes the rest */
        list->entries = grown;
        list->cap = cap;
    }
    store_ref_locked(e);
    list->entries[list->count++] = e;
    return 0;
}

void store_sweep(void *arg)
{
    (void)arg;
    const sa_host *host = file_plugin.host;
    sweep_list list = {.cutoff_ms = host->now_ms() - file_plugin.partial_max_age_ms};
    store_lock();
    store_foreach_locked(collect_stale, &list);
    store_unlock();
    for (size_t i = 0; i < list.count; i++) {
        file_entry *e = list.entries[i];
        /* Decided again under the io_lock: a chunk or file_end may have
         * come in since. */
        pthread_mutex_lock(&e->io_lock);
        if (!e->gone && is_stale(e, list.cutoff_ms)) {
            store_remove(e);
            if (spool_remove(file_plugin.spool, e->meta.file_id) != 0)
                host->log(file_plugin.ctx, SA_LOG_ERROR, "cannot delete upload %s: %s",
                          e->meta.file_id, strerror(errno));
            else
                host->log(file_plugin.ctx, SA_LOG_INFO,
                          "deleted upload %s (%s from %s): idle for longer than partial_max_age",
                          e->meta.file_id, e->meta.name, e->meta.from);
        }
        pthread_mutex_unlock(&e->io_lock);
        store_unref(e);
    }
    free(list.entries);
}
