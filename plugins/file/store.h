/*
 * The table of every file the spool holds, complete or still uploading,
 * keyed by file_id; rebuilt from the .meta files at start.
 *
 * Locking. Two kinds of lock, always taken in this order:
 *   1. an entry's io_lock: its upload state (stored, hashed, md, gone), its
 *      .data and .meta files;
 *   2. the store lock (store_lock): the table, every entry's refs, and
 *      the mutable parts of its record (meta.complete, to, room,
 *      addressees, updated_ms).
 * The mutable parts of a record change only with both locks held, so
 * either lock is enough to read them. The rest of a record (file_id,
 * from, name, size, sha256, created_ms) never changes and is read freely
 * by whoever holds a reference. An entry leaves the table only with its
 * io_lock held, and `gone` is set at that moment: whoever then takes the
 * io_lock sees that the files are deleted.
 *
 * Ownership. An entry is freed when its last reference goes: the table
 * holds one while the entry is in it, and whoever got an entry from
 * store_get (or took one with store_ref_locked) holds one and gives it
 * back with store_unref.
 */
#ifndef SA_FILE_STORE_H
#define SA_FILE_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "spool.h"

typedef struct file_entry {
    spool_meta meta; /* the record (see above for its locking) */

    pthread_mutex_t io_lock;
    uint64_t stored;  /* bytes in the .data file */
    uint64_t hashed;  /* leading bytes of the .data that md has digested */
    EVP_MD_CTX *md;   /* SHA-256 of those bytes; NULL until needed and once complete */
    int gone;         /* out of the table, files deleted */

    /* Wall-clock ms of the upload's last activity, for the sweep; atomic
     * so that the sweep can read it without the io_lock. */
    atomic_int_fast64_t active_ms;

    unsigned refs;           /* store lock */
    struct file_entry *next; /* bucket chain, store lock */
} file_entry;

/* A new entry holding one reference (the caller's), taking over what
 * `meta` owns (meta is zeroed). NULL when out of memory (meta is then
 * cleared). */
file_entry *entry_new(spool_meta *meta);

/* Nonzero when `user` (a name as given at hello) may see and fetch the
 * entry: it is complete and `user` sent it or is an addressee. Store lock
 * (or io_lock) held. */
int entry_visible_to(const file_entry *e, const char *user);

/* Loads every record of the spool into the table and removes stray
 * files. Returns 0, or -1 after logging why. */
int store_load(void);

/* Empties the table, freeing every entry (at stop: no request runs). */
void store_clear(void);

void store_lock(void);
void store_unlock(void);

/* The entry with that id, with a reference the caller gives back; NULL
 * when there is none. Takes the store lock. */
file_entry *store_get(const char *file_id);
/* Store lock held: the entry with that id (no reference), or NULL. */
file_entry *store_find_locked(const char *file_id);
void store_ref_locked(file_entry *e);
/* Gives back a reference; frees the entry at the last one. Store lock
 * not held. */
void store_unref(file_entry *e);

/* Store lock held: adds the entry, whose reference the table now holds.
 * Returns 0, or -1 when out of memory (the caller keeps its reference). */
int store_insert_locked(file_entry *e);
/* Takes the store lock and removes the entry from the table, dropping the
 * table's reference; sets `gone`. The caller holds the entry's io_lock
 * and a reference of its own. Nothing is deleted on disk. */
void store_remove(file_entry *e);

/* Store lock held: calls visit for every entry until it returns nonzero. */
void store_foreach_locked(int (*visit)(file_entry *e, void *arg), void *arg);

/* Timer callback: deletes the unfinished uploads idle for longer than
 * partial_max_age. */
void store_sweep(void *arg);

#endif
