/*
 * The tokens file of the auth plugin, read into an immutable table.
 *
 * File format, one entry per line:
 *     NAME SHA256_HEX_OF_TOKEN
 * NAME is a user name (1 to 32 bytes of [A-Za-z0-9_.-], compared
 * case-insensitively) or "*" (any name); the hash is 64 hex digits, either
 * case. "#" starts a comment that runs to the end of the line; blank lines
 * are ignored. A name may appear on several lines (one token per device).
 *
 * A table never changes once loaded, so any number of threads may match
 * against it at once; replacing it is the caller's business (auth.c).
 */
#ifndef SA_AUTH_TOKENS_H
#define SA_AUTH_TOKENS_H

#include <stddef.h>

typedef struct auth_token_table auth_token_table;

/* Reads `path`. Returns a new table, owned by the caller (free it with
 * auth_tokens_free), or NULL and sets *error to a malloc'd message the
 * caller frees: "PATH:LINE: what is wrong" for a bad line, "PATH: why" when
 * the file cannot be read (*error is NULL when even that message could not
 * be made). Messages never quote a line's fields: an operator who pasted a
 * raw token in the wrong place must not see it copied into the log. */
auth_token_table *auth_tokens_load(const char *path, char **error);
void auth_tokens_free(auth_token_table *table);
size_t auth_tokens_count(const auth_token_table *table);

/* 1 when SHA-256(token) equals the hash of an entry whose NAME is `name`
 * (case-insensitively) or "*"; 0 otherwise, and when hashing fails. Every
 * entry's hash is compared, in constant time, whatever matches, so the
 * time taken says nothing about which entry (if any) matched. */
int auth_tokens_match(const auth_token_table *table, const char *name, const char *token,
                      size_t token_len);

#endif
