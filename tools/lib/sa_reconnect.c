#include "sa_reconnect.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>

/* Longest heartbeat setting taken from a server, in seconds. */
#define MAX_HEARTBEAT_S 86400

void sa_reconnect_init(sa_reconnect *r, long retries)
{
    *r = (sa_reconnect){.retries = retries, .up_since_ms = -1};
}

void sa_reconnect_connected(sa_reconnect *r, int64_t now_ms)
{
    r->failed_in_a_row = 0;
    r->up_since_ms = now_ms;
}

int64_t sa_reconnect_next(sa_reconnect *r, const char *program, const char *reason,
                          int64_t now_ms)
{
    if (r->up_since_ms >= 0 && now_ms - r->up_since_ms >= SA_RECONNECT_STABLE_MS)
        r->used = 0;
    r->up_since_ms = -1;
    if (r->used >= r->retries) {
        if (r->retries > 0)
            fprintf(stderr, "%s: %s; giving up after %ld retries\n", program, reason, r->used);
        else
            fprintf(stderr, "%s: %s\n", program, reason);
        return -1;
    }
    int64_t delay = SA_RECONNECT_FIRST_MS;
    for (long i = 0; i < r->failed_in_a_row && delay < SA_RECONNECT_MAX_MS; i++)
        delay *= 2;
    if (delay > SA_RECONNECT_MAX_MS)
        delay = SA_RECONNECT_MAX_MS;
    r->used++;
    r->failed_in_a_row++;
    fprintf(stderr, "%s: %s; reconnecting in %.1f s (retry %ld of %ld)\n", program, reason,
            (double)delay / 1000.0, r->used, r->retries);
    return delay;
}

/* Seconds as a whole number of milliseconds, 0 when absent or absurd. */
static int64_t seconds_field(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(item) || item->valuedouble <= 0 || item->valuedouble > MAX_HEARTBEAT_S)
        return 0;
    return (int64_t)(item->valuedouble * 1000);
}

void sa_heartbeat_limits(const cJSON *hello_reply, int64_t *interval_ms, int64_t *silence_ms)
{
    const cJSON *heartbeat = cJSON_GetObjectItemCaseSensitive(hello_reply, "heartbeat");
    *interval_ms = seconds_field(heartbeat, "interval");
    *silence_ms = seconds_field(heartbeat, "timeout");
    if (*silence_ms > 0)
        *silence_ms += *interval_ms > 0 ? *interval_ms : *silence_ms;
}

int sa_tune_socket(int fd, int64_t silence_ms, int blocking)
{
    if (silence_ms <= 0)
        return 0;
    unsigned int user_timeout = silence_ms > UINT32_MAX ? UINT32_MAX : (unsigned int)silence_ms;
    if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout) != 0)
        return -1;
    if (!blocking)
        return 0;
    struct timeval tv = {.tv_sec = silence_ms / 1000,
                         .tv_usec = (suseconds_t)(silence_ms % 1000) * 1000};
    return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}
