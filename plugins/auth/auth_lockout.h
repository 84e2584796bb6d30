/*
 * Failed hellos per client address, and the lockouts they lead to.
 *
 * After `max_failures` failed hellos from one address within `window_ms`,
 * that address is locked out for `lockout_ms`: the caller refuses it at
 * once, without looking at the token. When the lockout starts the count
 * starts over, so an address gets at most `max_failures` guesses per
 * lockout period. Successes do not clear the count: otherwise a client
 * holding one valid token could guess at others' without limit by
 * interleaving good hellos.
 *
 * Memory is bounded: at most `capacity` addresses are remembered; past
 * that, the address whose record changed longest ago is forgotten. A
 * record that is neither locked nor inside its window is forgotten too.
 *
 * Times are the caller's monotonic milliseconds. Every function is safe
 * from any thread (one mutex inside).
 */
#ifndef SA_AUTH_LOCKOUT_H
#define SA_AUTH_LOCKOUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct auth_lockout auth_lockout;

/* NULL when out of memory or when capacity is 0. The caller owns the
 * result and frees it with auth_lockout_free. */
auth_lockout *auth_lockout_new(unsigned max_failures, int64_t window_ms, int64_t lockout_ms,
                               size_t capacity);
void auth_lockout_free(auth_lockout *lockout);

/* 1 while `address` is locked out at `now_ms`, else 0. */
int auth_lockout_is_locked(auth_lockout *lockout, const char *address, int64_t now_ms);

/* Counts one failed hello from `address`. Returns 1 when this failure
 * started a lockout, 0 when it did not, -1 when it could not be counted
 * (out of memory). */
int auth_lockout_record_failure(auth_lockout *lockout, const char *address, int64_t now_ms);

#endif
