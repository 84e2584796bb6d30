/*
 * What every client tool that reconnects does alike (INTERFACE.md
 * "--retries"): the backoff between attempts, the retry budget, and how it
 * notices a dead server from the heartbeat the hello reply announces.
 * Used by the file tools' runner (sa_runner*.c) and by sa-client.
 *
 * Backoff: 0.2 s before the first attempt after a connection was lost,
 * doubling up to 5 s while attempts fail; a successful hello starts it
 * over. Budget: --retries attempts in all, counted again from zero once a
 * session has stayed up SA_RECONNECT_STABLE_MS, so that a long-running
 * client survives any number of outages spread over time while a link
 * that keeps failing still ends the program.
 */
#ifndef SA_RECONNECT_H
#define SA_RECONNECT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#define SA_RECONNECT_FIRST_MS 200
#define SA_RECONNECT_MAX_MS 5000
#define SA_RECONNECT_STABLE_MS 60000

typedef struct sa_reconnect {
    long retries;          /* the budget (--retries) */
    long used;             /* attempts counted against it */
    long failed_in_a_row;  /* attempts since the last successful hello */
    int64_t up_since_ms;   /* of the current session; -1 when there is none */
} sa_reconnect;

void sa_reconnect_init(sa_reconnect *r, long retries);
/* A hello succeeded at now_ms. */
void sa_reconnect_connected(sa_reconnect *r, int64_t now_ms);
/* The session is lost or an attempt failed (`reason`: human text, the
 * whole first part of the message). Prints "PROGRAM: REASON; reconnecting
 * in X s (retry I of N)" on stderr and returns the milliseconds to wait,
 * or prints "PROGRAM: REASON; giving up after N retries" (just
 * "PROGRAM: REASON" with --retries 0) and returns -1. */
int64_t sa_reconnect_next(sa_reconnect *r, const char *program, const char *reason,
                          int64_t now_ms);

/* From a successful hello reply: the server's heartbeat interval (0: none)
 * and how long it may stay silent before it counts as gone (its timeout
 * plus an interval, since it answers our pings; 0: never judged). */
void sa_heartbeat_limits(const cJSON *hello_reply, int64_t *interval_ms, int64_t *silence_ms);

/* Output the server leaves unacknowledged for silence_ms ends the
 * connection (TCP_USER_TIMEOUT), and with `blocking` so does a send that
 * cannot move that long (SO_SNDTIMEO), since nothing looks at the
 * heartbeat while a blocking send waits. silence_ms <= 0: nothing to do.
 * Returns 0 or -1 with errno set. */
int sa_tune_socket(int fd, int64_t silence_ms, int blocking);

#endif
