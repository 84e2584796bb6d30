#include "session.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "tls.h"

static const struct sa_engine_ops *engine_ops(void)
{
    return sa_the_server->engine_plugin.loaded.desc->engine;
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char raw[32];
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, raw, bytes);
        got = n > 0 ? (size_t)n : 0;
        close(fd);
    }
    /* Session ids label sessions, they are not secrets: a weaker fill is
     * acceptable should /dev/urandom fail. */
    for (size_t i = got; i < bytes; i++)
        raw[i] = (unsigned char)rand();
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[2 * bytes] = '\0';
}

sa_session *sa_session_new(sa_conn *conn, const char *peer, uint32_t max_frame,
                           size_t plugin_slots, int64_t now_ms)
{
    sa_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->peer = strdup(peer ? peer : "?");
    s->plugin_data = plugin_slots ? calloc(plugin_slots, sizeof *s->plugin_data) : NULL;
    if (!s->peer || (plugin_slots && !s->plugin_data) || pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s->peer);
        free(s->plugin_data);
        free(s);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    atomic_init(&s->writable_wanted, 0);
    s->conn = conn;
    s->plugin_slots = plugin_slots;
    sa_decoder_init(&s->decoder, max_frame);
    s->opened_ms = now_ms;
    s->hello_wait_from_ms = now_ms;
    s->last_rx_ms = now_ms;
    random_hex(s->id, 16);
    return s;
}

void sa_session_ref(sa_session *s) { atomic_fetch_add(&s->refs, 1); }

void sa_session_unref(sa_session *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    sa_decoder_free(&s->decoder);
    sa_tls_conn_free(s->tls);
    pthread_mutex_destroy(&s->lock);
    free(s->peer);
    free(s->name);
    free(s->name_key);
    free(s->plugin_data);
    free(s);
}

int sa_session_send(sa_session *s, sa_frame *f)
{
    int rc = -1;
    pthread_mutex_lock(&s->lock);
    if (!s->gone && !s->closing) {
        rc = engine_ops()->send(s->conn, f);
        if (rc != 0)
            s->closing = 1; /* the engine dropped it (sendq_max) */
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void sa_session_close(sa_session *s, const char *reason)
{
    pthread_mutex_lock(&s->lock);
    if (!s->gone && !s->closing) {
        sa_frame *bye = reason ? sa_bye_frame(reason) : NULL;
        if (bye) {
            engine_ops()->send(s->conn, bye);
            sa_frame_unref(bye);
        }
        s->closing = 1;
        engine_ops()->close(s->conn);
    }
    pthread_mutex_unlock(&s->lock);
}

sa_frame *sa_bye_frame(const char *reason)
{
    cJSON *msg = cJSON_CreateObject();
    sa_frame *bye = NULL;
    if (msg && cJSON_AddStringToObject(msg, "type", "bye") &&
        cJSON_AddStringToObject(msg, "reason", reason))
        bye = sa_frame_from_json(msg);
    cJSON_Delete(msg);
    return bye;
}

size_t sa_session_queued(sa_session *s)
{
    size_t queued = 0;
    pthread_mutex_lock(&s->lock);
    if (!s->gone && !s->closing)
        queued = engine_ops()->queued(s->conn);
    pthread_mutex_unlock(&s->lock);
    return queued;
}

int sa_session_notify_writable(sa_session *s, size_t index, size_t low_water)
{
    int rc = -1;
    pthread_mutex_lock(&s->lock);
    if (!s->gone && !s->closing) {
        atomic_fetch_or(&s->writable_wanted, UINT64_C(1) << index);
        engine_ops()->notify_writable(s->conn, low_water);
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sa_session_is_closing(sa_session *s)
{
    pthread_mutex_lock(&s->lock);
    int closing = s->gone || s->closing;
    pthread_mutex_unlock(&s->lock);
    return closing;
}

void sa_session_mark_gone(sa_session *s)
{
    pthread_mutex_lock(&s->lock);
    s->gone = 1;
    s->conn = NULL;
    pthread_mutex_unlock(&s->lock);
}

/* ---- registry ----------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    sa_session **buckets;
    size_t bucket_count; /* power of two */
    size_t count;
} registry = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t name_hash(const char *key)
{
    size_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ull;
    return h;
}

static char *fold_name(const char *name)
{
    char *key = strdup(name);
    if (key)
        for (char *p = key; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return key;
}

/* Called with the lock held. Keeps the load factor at most 1. */
static int registry_grow(void)
{
    size_t new_count = registry.bucket_count ? registry.bucket_count * 2 : 64;
    sa_session **fresh = calloc(new_count, sizeof *fresh);
    if (!fresh)
        return -1;
    for (size_t i = 0; i < registry.bucket_count; i++) {
        sa_session *s = registry.buckets[i];
        while (s) {
            sa_session *next = s->registry_next;
            size_t b = name_hash(s->name_key) & (new_count - 1);
            s->registry_next = fresh[b];
            fresh[b] = s;
            s = next;
        }
    }
    free(registry.buckets);
    registry.buckets = fresh;
    registry.bucket_count = new_count;
    return 0;
}

static sa_session **registry_slot(const char *key)
{
    if (!registry.bucket_count)
        return NULL;
    sa_session **at = &registry.buckets[name_hash(key) & (registry.bucket_count - 1)];
    while (*at && strcmp((*at)->name_key, key) != 0)
        at = &(*at)->registry_next;
    return at;
}

int sa_registry_add(sa_session *s, const char *name)
{
    char *key = fold_name(name);
    char *copy = strdup(name);
    if (!key || !copy) {
        free(key);
        free(copy);
        return -1;
    }
    pthread_mutex_lock(&registry.lock);
    sa_session **at = registry_slot(key);
    if (at && *at) {
        pthread_mutex_unlock(&registry.lock);
        free(key);
        free(copy);
        return -1;
    }
    if (registry.count + 1 > registry.bucket_count && registry_grow() != 0) {
        pthread_mutex_unlock(&registry.lock);
        free(key);
        free(copy);
        return -1;
    }
    s->name = copy;
    s->name_key = key;
    at = registry_slot(key);
    s->registry_next = NULL;
    *at = s;
    registry.count++;
    sa_session_ref(s);
    pthread_mutex_unlock(&registry.lock);
    return 0;
}

void sa_registry_remove(sa_session *s)
{
    if (!s->name_key)
        return;
    pthread_mutex_lock(&registry.lock);
    sa_session **at = registry_slot(s->name_key);
    int found = at && *at == s;
    if (found) {
        *at = s->registry_next;
        registry.count--;
    }
    pthread_mutex_unlock(&registry.lock);
    if (found)
        sa_session_unref(s);
}

sa_session *sa_registry_find(const char *name)
{
    char *key = fold_name(name);
    if (!key)
        return NULL;
    pthread_mutex_lock(&registry.lock);
    sa_session **at = registry_slot(key);
    sa_session *s = at ? *at : NULL;
    if (s)
        sa_session_ref(s);
    pthread_mutex_unlock(&registry.lock);
    free(key);
    return s;
}

void sa_registry_foreach(int (*visit)(sa_session *s, void *arg), void *arg)
{
    pthread_mutex_lock(&registry.lock);
    for (size_t i = 0; i < registry.bucket_count; i++)
        for (sa_session *s = registry.buckets[i]; s; s = s->registry_next)
            if (visit(s, arg))
                goto done;
done:
    pthread_mutex_unlock(&registry.lock);
}
