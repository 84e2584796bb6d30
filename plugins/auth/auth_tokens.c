#include "auth_tokens.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define TOKEN_HASH_BYTES 32
#define TOKEN_HASH_HEX (2 * TOKEN_HASH_BYTES)
#define USER_NAME_MAX 32
#define ANY_NAME "*"
#define FIELD_SEPARATORS " \t\r\n\v\f"

typedef struct token_entry {
    char name[USER_NAME_MAX + 1]; /* a user name or ANY_NAME */
    unsigned char hash[TOKEN_HASH_BYTES];
} token_entry;

/* The entries array is owned by the table. */
struct auth_token_table {
    token_entry *entries;
    size_t count, capacity;
};

__attribute__((format(printf, 2, 3))) static void set_error(char **error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(error, fmt, ap) < 0)
        *error = NULL;
    va_end(ap);
}

static int name_valid(const char *name)
{
    size_t len = strlen(name);
    return strcmp(name, ANY_NAME) == 0 ||
           (len >= 1 && len <= USER_NAME_MAX &&
            strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
                len);
}

static int hex_digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes exactly TOKEN_HASH_HEX hex digits. Returns 0, or -1. */
static int parse_hash(const char *hex, unsigned char out[TOKEN_HASH_BYTES])
{
    if (strlen(hex) != TOKEN_HASH_HEX)
        return -1;
    for (size_t i = 0; i < TOKEN_HASH_BYTES; i++) {
        int high = hex_digit_value(hex[2 * i]), low = hex_digit_value(hex[2 * i + 1]);
        if (high < 0 || low < 0)
            return -1;
        out[i] = (unsigned char)(high << 4 | low);
    }
    return 0;
}

static int table_append(auth_token_table *table, const token_entry *entry)
{
    if (table->count == table->capacity) {
        size_t capacity = table->capacity ? 2 * table->capacity : 16;
        token_entry *grown = reallocarray(table->entries, capacity, sizeof *grown);
        if (!grown)
            return -1;
        table->entries = grown;
        table->capacity = capacity;
    }
    table->entries[table->count++] = *entry;
    return 0;
}

/* Parses one line (modified in place) into *entry. Returns 1 for an
 * entry, 0 for a blank or comment line, or -1 after setting *error. */
static int parse_line(char *line, size_t len, const char *path, size_t line_no,
                      token_entry *entry, char **error)
{
    if (memchr(line, '\0', len)) {
        set_error(error, "%s:%zu: the line contains a NUL byte", path, line_no);
        return -1;
    }
    char *comment = strchr(line, '#');
    if (comment)
        *comment = '\0';
    char *rest = NULL;
    const char *name = strtok_r(line, FIELD_SEPARATORS, &rest);
    if (!name)
        return 0;
    const char *hex = strtok_r(NULL, FIELD_SEPARATORS, &rest);
    if (!hex || strtok_r(NULL, FIELD_SEPARATORS, &rest)) {
        set_error(error, "%s:%zu: expected two fields, \"NAME SHA256_HEX_OF_TOKEN\"", path,
                  line_no);
        return -1;
    }
    if (!name_valid(name)) {
        set_error(error,
                  "%s:%zu: NAME must be \"*\" or 1 to 32 bytes of A-Z a-z 0-9 _ . -", path,
                  line_no);
        return -1;
    }
    if (parse_hash(hex, entry->hash) != 0) {
        set_error(error,
                  "%s:%zu: the second field must be 64 hex digits, the SHA-256 of the token "
                  "(not the token itself)",
                  path, line_no);
        return -1;
    }
    memcpy(entry->name, name, strlen(name) + 1);
    return 1;
}

auth_token_table *auth_tokens_load(const char *path, char **error)
{
    *error = NULL;
    FILE *f = fopen(path, "re");
    if (!f) {
        set_error(error, "%s: cannot open the tokens file: %s", path, strerror(errno));
        return NULL;
    }
    auth_token_table *table = calloc(1, sizeof *table);
    char *line = NULL;
    size_t line_cap = 0, line_no = 0;
    int failed = !table;
    if (failed)
        set_error(error, "%s: out of memory", path);
    while (!failed) {
        errno = 0;
        ssize_t len = getline(&line, &line_cap, f);
        if (len < 0) {
            if (ferror(f) || errno == ENOMEM) {
                set_error(error, "%s: cannot read the tokens file: %s", path,
                          strerror(errno ? errno : EIO));
                failed = 1;
            }
            break;
        }
        line_no++;
        token_entry entry;
        int got = parse_line(line, (size_t)len, path, line_no, &entry, error);
        if (got < 0) {
            failed = 1;
        } else if (got > 0 && table_append(table, &entry) != 0) {
            set_error(error, "%s:%zu: out of memory", path, line_no);
            failed = 1;
        }
    }
    /* The line held a hash (or, by mistake, a token): wipe it. */
    if (line)
        OPENSSL_cleanse(line, line_cap);
    free(line);
    fclose(f);
    if (failed) {
        auth_tokens_free(table);
        return NULL;
    }
    return table;
}

void auth_tokens_free(auth_token_table *table)
{
    if (!table)
        return;
    free(table->entries);
    free(table);
}

size_t auth_tokens_count(const auth_token_table *table) { return table->count; }

int auth_tokens_match(const auth_token_table *table, const char *name, const char *token,
                      size_t token_len)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(token, token_len, digest, &digest_len, EVP_sha256(), NULL) != 1 ||
        digest_len != TOKEN_HASH_BYTES)
        return 0;
    int matched = 0;
    for (size_t i = 0; i < table->count; i++) {
        const token_entry *e = &table->entries[i];
        int name_fits = strcmp(e->name, ANY_NAME) == 0 || strcasecmp(e->name, name) == 0;
        int hash_equal = CRYPTO_memcmp(e->hash, digest, TOKEN_HASH_BYTES) == 0;
        matched |= name_fits & hash_equal;
    }
    OPENSSL_cleanse(digest, sizeof digest);
    return matched;
}
