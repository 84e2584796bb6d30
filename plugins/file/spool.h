/*
 * The spool folder on disk: for each file, "<file_id>.data" holds its bytes
 * and "<file_id>.meta" a small JSON record (struct spool_meta). Every
 * function works relative to the folder's descriptor, so no path is ever
 * built from a client's text: file ids are made here, 32 hex digits.
 *
 * A .meta is replaced atomically (a temporary "<file_id>.meta.tmp",
 * fsync, rename, fsync of the folder). A .data is created before its
 * .meta and removed after it, so a crash leaves at worst a .data without
 * a .meta (removed by spool_remove_strays at the next start) or a
 * leftover .meta.tmp (removed too).
 *
 * Functions returning int give 0, or -1 with errno set.
 */
#ifndef SA_FILE_SPOOL_H
#define SA_FILE_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define FILE_ID_LEN 32 /* hex digits */
#define SHA256_HEX_LEN 64

/* What a .meta records. Owns its strings and array (spool_meta_clear). */
typedef struct spool_meta {
    char file_id[FILE_ID_LEN + 1];
    char *from;        /* the sender's name as given at hello */
    char *name;        /* display name, checked by file_name_valid */
    uint64_t size;     /* declared size */
    char sha256[SHA256_HEX_LEN + 1]; /* declared digest, lower-case hex */
    char *to;          /* NULL, or the addressed user's name */
    char *room;        /* NULL, or the addressed room's name */
    char **addressees; /* lower-case names of who may fetch it besides the sender */
    size_t addressee_count;
    int complete;      /* 1 once file_end verified it */
    int64_t created_ms, updated_ms;
} spool_meta;

/* Frees what `m` owns and zeroes it. */
void spool_meta_clear(spool_meta *m);

/* Opens (creating it, mode 0700, when missing) the spool folder. Returns
 * the folder's descriptor (O_DIRECTORY | O_CLOEXEC) or -1. */
int spool_open(const char *path);

/* Fills `out` with a new random file id (FILE_ID_LEN hex digits). */
int spool_new_id(char out[FILE_ID_LEN + 1]);

/* 1 when `text` has the form of a file id. */
int spool_id_valid(const char *text);

/* Creates an empty "<id>.data" (mode 0600); fails when it exists. */
int spool_data_create(int dir, const char *file_id);

/* Opens "<id>.data" with `flags` (O_RDONLY or O_WRONLY; O_NOFOLLOW and
 * O_CLOEXEC are added). Returns the descriptor or -1. */
int spool_data_open(int dir, const char *file_id, int flags);

/* Writes "<id>.meta" atomically from `m`. */
int spool_meta_write(int dir, const spool_meta *m);

/* Reads "<id>.meta" into `out` (cleared first). Returns 0; -1 with errno
 * when it cannot be read; -2 when its content is not a valid record. */
int spool_meta_read(int dir, const char *file_id, spool_meta *out);

/* Removes "<id>.meta", then "<id>.data" (a missing one is no error). */
int spool_remove(int dir, const char *file_id);

/* Calls `visit` with the id of every "<id>.meta" in the folder. */
int spool_foreach_meta(int dir, void (*visit)(const char *file_id, void *arg), void *arg);

/* Removes leftover ".meta.tmp" files and every "<id>.data" without a
 * "<id>.meta"; `on_removed` (may be NULL) hears each name removed. */
int spool_remove_strays(int dir, void (*on_removed)(const char *name, void *arg), void *arg);

/* Adds `value` to `obj` as an exact JSON integer (cJSON's own number
 * printing rounds integers of 16 digits or more). Returns 0 or -1. */
int spool_add_size(cJSON *obj, const char *key, uint64_t value);

/* Reads a whole number in [0, 2^53] from obj[key]. Returns 0 or -1. */
int spool_get_size(const cJSON *obj, const char *key, uint64_t *out);

#endif
