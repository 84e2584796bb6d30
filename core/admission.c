#include "admission.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Per-address counts: a chained hash table that grows with the number of
 * distinct addresses connected; an entry goes when its count reaches 0. */
typedef struct address_count {
    char *address;
    int64_t count;
    struct address_count *next;
} address_count;

static struct {
    pthread_mutex_t lock;
    int64_t total;
    address_count **buckets;
    size_t bucket_count; /* power of two */
    size_t entries;
} admission = {.lock = PTHREAD_MUTEX_INITIALIZER};

char *sa_peer_address(const char *peer)
{
    if (peer[0] == '[') {
        const char *close = strchr(peer, ']');
        return close ? strndup(peer + 1, (size_t)(close - peer - 1)) : strdup(peer);
    }
    const char *colon = strrchr(peer, ':');
    return colon ? strndup(peer, (size_t)(colon - peer)) : strdup(peer);
}

static size_t hash_text(const char *text)
{
    size_t h = 1469598103934665603ull;
    for (; *text; text++)
        h = (h ^ (unsigned char)*text) * 1099511628211ull;
    return h;
}

/* Lock held. */
static address_count **slot_of(const char *address)
{
    if (!admission.bucket_count)
        return NULL;
    address_count **at = &admission.buckets[hash_text(address) & (admission.bucket_count - 1)];
    while (*at && strcmp((*at)->address, address) != 0)
        at = &(*at)->next;
    return at;
}

/* Lock held. */
static int grow(void)
{
    size_t fresh_count = admission.bucket_count ? admission.bucket_count * 2 : 64;
    address_count **fresh = calloc(fresh_count, sizeof *fresh);
    if (!fresh)
        return -1;
    for (size_t i = 0; i < admission.bucket_count; i++) {
        for (address_count *e = admission.buckets[i], *next; e; e = next) {
            next = e->next;
            address_count **b = &fresh[hash_text(e->address) & (fresh_count - 1)];
            e->next = *b;
            *b = e;
        }
    }
    free(admission.buckets);
    admission.buckets = fresh;
    admission.bucket_count = fresh_count;
    return 0;
}

enum sa_admission sa_admission_acquire(const char *address, int64_t max_clients,
                                       int64_t max_per_address)
{
    enum sa_admission verdict = SA_ADMIT_SERVER_FULL;
    pthread_mutex_lock(&admission.lock);
    if (admission.total >= max_clients)
        goto out;
    if (max_per_address > 0) {
        if (admission.entries + 1 > admission.bucket_count && grow() != 0)
            goto out;
        address_count **at = slot_of(address);
        if (!*at) {
            address_count *e = calloc(1, sizeof *e);
            if (!e || !(e->address = strdup(address))) {
                free(e);
                goto out;
            }
            *at = e;
            admission.entries++;
        }
        if ((*at)->count >= max_per_address) {
            verdict = SA_ADMIT_ADDRESS_FULL;
            goto out;
        }
        (*at)->count++;
    }
    admission.total++;
    verdict = SA_ADMIT_OK;
out:
    pthread_mutex_unlock(&admission.lock);
    return verdict;
}

void sa_admission_release(const char *address)
{
    pthread_mutex_lock(&admission.lock);
    admission.total--;
    address_count **at = slot_of(address);
    if (at && *at && --(*at)->count <= 0) {
        address_count *e = *at;
        *at = e->next;
        admission.entries--;
        free(e->address);
        free(e);
    }
    pthread_mutex_unlock(&admission.lock);
}
