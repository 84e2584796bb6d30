#include "auth_lockout.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* One address's failures. Owned by the auth_lockout, which frees it (and
 * its address) when it is forgotten or at auth_lockout_free. */
typedef struct address_record {
    char *address;
    int64_t window_start_ms; /* first failure counted in `failures` */
    unsigned failures;
    int64_t locked_until_ms; /* locked while now < this */
    struct address_record *bucket_next;
    /* The recency list: newest (changed last) at the head. */
    struct address_record *newer, *older;
} address_record;

struct auth_lockout {
    pthread_mutex_t lock; /* guards everything below */
    unsigned max_failures;
    int64_t window_ms, lockout_ms;
    size_t capacity, count;
    address_record **buckets; /* bucket_mask + 1 chains */
    size_t bucket_mask;
    address_record *newest, *oldest;
};

static size_t hash_text(const char *text)
{
    size_t h = 1469598103934665603ull;
    for (; *text; text++)
        h = (h ^ (unsigned char)*text) * 1099511628211ull;
    return h;
}

auth_lockout *auth_lockout_new(unsigned max_failures, int64_t window_ms, int64_t lockout_ms,
                               size_t capacity)
{
    if (capacity == 0)
        return NULL;
    size_t buckets = 1;
    while (buckets < capacity)
        buckets *= 2;
    auth_lockout *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->buckets = calloc(buckets, sizeof *l->buckets);
    if (!l->buckets || pthread_mutex_init(&l->lock, NULL) != 0) {
        free(l->buckets);
        free(l);
        return NULL;
    }
    l->bucket_mask = buckets - 1;
    l->max_failures = max_failures;
    l->window_ms = window_ms;
    l->lockout_ms = lockout_ms;
    l->capacity = capacity;
    return l;
}

void auth_lockout_free(auth_lockout *l)
{
    if (!l)
        return;
    for (address_record *r = l->newest, *next; r; r = next) {
        next = r->older;
        free(r->address);
        free(r);
    }
    free(l->buckets);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* ---- the recency list and the hash chains (lock held) ------------------- */

static void unlink_recency(auth_lockout *l, address_record *r)
{
    if (r->newer)
        r->newer->older = r->older;
    else
        l->newest = r->older;
    if (r->older)
        r->older->newer = r->newer;
    else
        l->oldest = r->newer;
    r->newer = r->older = NULL;
}

static void push_newest(auth_lockout *l, address_record *r)
{
    r->older = l->newest;
    r->newer = NULL;
    if (l->newest)
        l->newest->newer = r;
    else
        l->oldest = r;
    l->newest = r;
}

static address_record **chain_slot(auth_lockout *l, const char *address)
{
    address_record **at = &l->buckets[hash_text(address) & l->bucket_mask];
    while (*at && strcmp((*at)->address, address) != 0)
        at = &(*at)->bucket_next;
    return at;
}

static void forget(auth_lockout *l, address_record *r)
{
    address_record **at = chain_slot(l, r->address);
    *at = r->bucket_next;
    unlink_recency(l, r);
    l->count--;
    free(r->address);
    free(r);
}

/* A record that no longer matters: not locked, and its window is over. */
static int record_stale(const auth_lockout *l, const address_record *r, int64_t now_ms)
{
    return now_ms >= r->locked_until_ms && now_ms - r->window_start_ms >= l->window_ms;
}

/* ---- the public operations ------------------------------------------------ */

int auth_lockout_is_locked(auth_lockout *l, const char *address, int64_t now_ms)
{
    pthread_mutex_lock(&l->lock);
    const address_record *r = *chain_slot(l, address);
    int locked = r && now_ms < r->locked_until_ms;
    pthread_mutex_unlock(&l->lock);
    return locked;
}

/* Lock held. A new record, made the newest; NULL when out of memory. */
static address_record *add_record(auth_lockout *l, const char *address, int64_t now_ms)
{
    while (l->oldest && record_stale(l, l->oldest, now_ms))
        forget(l, l->oldest);
    if (l->count == l->capacity)
        forget(l, l->oldest);
    address_record *r = calloc(1, sizeof *r);
    char *copy = strdup(address);
    if (!r || !copy) {
        free(r);
        free(copy);
        return NULL;
    }
    r->address = copy;
    r->window_start_ms = now_ms;
    address_record **at = chain_slot(l, address);
    *at = r;
    push_newest(l, r);
    l->count++;
    return r;
}

int auth_lockout_record_failure(auth_lockout *l, const char *address, int64_t now_ms)
{
    pthread_mutex_lock(&l->lock);
    address_record *r = *chain_slot(l, address);
    if (r) {
        unlink_recency(l, r);
        push_newest(l, r);
        if (record_stale(l, r, now_ms)) {
            r->failures = 0;
            r->window_start_ms = now_ms;
        }
    } else {
        r = add_record(l, address, now_ms);
        if (!r) {
            pthread_mutex_unlock(&l->lock);
            return -1;
        }
    }
    int started = 0;
    if (++r->failures >= l->max_failures) {
        r->locked_until_ms = now_ms + l->lockout_ms;
        r->failures = 0;
        /* The next window opens when the lockout ends. */
        r->window_start_ms = r->locked_until_ms;
        started = 1;
    }
    pthread_mutex_unlock(&l->lock);
    return started;
}
