/*
 * Configuration: the INI file (read with inih), -o overrides, and checking
 * sections against key schemas (sa_config_key, syncasync/plugin.h).
 *
 * Every error names where the value came from: "FILE:LINE: [section] key:
 * what is wrong", or "-o section.key: what is wrong" for an override.
 */
#ifndef SA_CONFIG_H
#define SA_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <syncasync/plugin.h>

typedef struct sa_config sa_config;

/* One setting as read. Owned by the sa_config. */
typedef struct sa_config_entry {
    char *section; /* lower-case */
    char *key;     /* lower-case */
    char *value;   /* trimmed, inline comment removed */
    const char *origin; /* file path, or "-o" */
    int line;           /* line in the file, or the override's position */
} sa_config_entry;

/* Reads `path`. Returns NULL and writes a message into err (errlen bytes)
 * when the file cannot be read or has a syntax error (including a line
 * longer than inih's limit). */
sa_config *sa_config_load(const char *path, char *err, size_t errlen);
/* An empty configuration whose relative paths resolve against `base_dir`
 * (for tests and for a host started without a file). */
sa_config *sa_config_new(const char *base_dir);
void sa_config_free(sa_config *cfg);

/* Applies "section.key=value". Returns 0, or -1 with a message. */
int sa_config_override(sa_config *cfg, const char *assignment, int position, char *err,
                       size_t errlen);

/* The last value set for section.key (file, then overrides), or NULL. */
const sa_config_entry *sa_config_find(const sa_config *cfg, const char *section,
                                      const char *key);

/* Checks every entry of `section` against `keys` (ending with {NULL}):
 * unknown keys and values that do not parse as their type are errors.
 * Returns 0, or -1 with the message of the first error. */
int sa_config_check_section(const sa_config *cfg, const char *section,
                            const sa_config_key *keys, char *err, size_t errlen);

/* Typed getters: the value set, else the key's default. Call only for keys
 * of a section that passed sa_config_check_section. The returned string
 * is owned by cfg. PATH values are resolved against the INI's folder. */
const char *sa_config_string(sa_config *cfg, const char *section, const sa_config_key *key);
int64_t sa_config_int(const sa_config *cfg, const char *section, const sa_config_key *key);
int sa_config_bool(const sa_config *cfg, const char *section, const sa_config_key *key);

/* Looks a key up in a schema array; NULL when absent. */
const sa_config_key *sa_config_key_find(const sa_config_key *keys, const char *name);

/* The folder relative paths resolve against; the loaded file's path. */
const char *sa_config_base_dir(const sa_config *cfg);
const char *sa_config_path(const sa_config *cfg);

/* Splits a space/comma separated list value into a NULL-terminated array
 * of strings (one allocation, free with free()). */
char **sa_config_split_list(const char *value);

#endif
