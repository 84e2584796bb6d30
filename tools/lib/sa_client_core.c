#include "sa_client_core.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t sa_client_core_now_ms(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC does not fail on Linux for a valid pointer; 0 would
     * only make deadlines expire early, never hang. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sa_client_core_remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - sa_client_core_now_ms();
    if (left <= 0)
        return 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* "host:port", with brackets around an IPv6 literal, for messages. */
static void format_endpoint(char *out, size_t outlen, const char *host, const char *port)
{
    snprintf(out, outlen, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
}

/* Connects fd to one address before the deadline. Returns 0 or an errno. */
static int connect_one(int fd, const struct addrinfo *ai, int64_t deadline)
{
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return errno;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int ready = poll(&pfd, 1, sa_client_core_remaining_ms(deadline));
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0)
            return errno;
        if (ready == 0)
            return ETIMEDOUT;
        break;
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0)
        return errno;
    return so_error;
}

int sa_client_core_connect(sa_client_core *core, const char *host, const char *port,
                           int timeout_ms, char *err, size_t errlen)
{
    char endpoint[sizeof core->endpoint];
    format_endpoint(endpoint, sizeof endpoint, host, port);
    int64_t deadline = timeout_ms < 0 ? -1 : sa_client_core_now_ms() + timeout_ms;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG};
    /* getaddrinfo has no timeout of its own: the resolver's applies. */
    struct addrinfo *addrs = NULL; /* ours; freed below */
    int gai = getaddrinfo(host, port, &hints, &addrs);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", endpoint,
                 gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    int last_error = ECONNREFUSED;
    for (const struct addrinfo *ai = addrs; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            last_error = errno;
            continue;
        }
        int rc = connect_one(fd, ai, deadline);
        if (rc != 0) {
            last_error = rc;
            close(fd);
            fd = -1;
            if (rc == ETIMEDOUT)
                break; /* the deadline covers every address */
        }
    }
    freeaddrinfo(addrs);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", endpoint,
                 last_error == ETIMEDOUT ? "timed out" : strerror(last_error));
        return -1;
    }
    /* Frames are small and interactive: do not let Nagle hold them back. */
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        snprintf(err, errlen, "cannot set TCP_NODELAY on %s: %s", endpoint, strerror(errno));
        close(fd);
        return -1;
    }
    core->fd = fd;
    core->ssl = NULL;
    memcpy(core->endpoint, endpoint, sizeof endpoint);
    sa_decoder_init(&core->decoder, SA_DEFAULT_MAX_FRAME);
    atomic_init(&core->next_id, 1);
    return 0;
}

void sa_client_core_close_socket(sa_client_core *core)
{
    if (core->ssl) {
        if (core->fd >= 0)
            sa_tls_client_close_notify(core->ssl);
        SSL_free(core->ssl);
        core->ssl = NULL;
    }
    if (core->fd >= 0)
        (void)close(core->fd); /* releases the descriptor whatever it reports */
    core->fd = -1;
}

void sa_client_core_close(sa_client_core *core)
{
    sa_client_core_close_socket(core);
    sa_decoder_free(&core->decoder);
}

int sa_client_core_start_tls(sa_client_core *core, const sa_client_tls *tls, const char *host,
                             char *err, size_t errlen)
{
    core->ssl = sa_tls_client_new(tls, core->fd, host, err, errlen);
    return core->ssl ? 0 : -1;
}

int sa_client_core_handshake(sa_client_core *core, char *err, size_t errlen, int *refused)
{
    *refused = 0;
    return core->ssl ? sa_tls_client_handshake(core->ssl, err, errlen, refused) : SA_IO_DONE;
}

ssize_t sa_client_core_read(sa_client_core *core, void *buf, size_t len, char *err,
                            size_t errlen)
{
    if (core->ssl)
        return sa_tls_client_read(core->ssl, buf, len, err, errlen);
    ssize_t got = recv(core->fd, buf, len, MSG_DONTWAIT);
    if (got > 0)
        return got;
    if (got == 0)
        return SA_IO_CLOSED;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return SA_IO_WANT_READ;
    if (errno == ECONNRESET)
        return SA_IO_RESET;
    snprintf(err, errlen, "%s", strerror(errno));
    return SA_IO_FAILED;
}

ssize_t sa_client_core_write(sa_client_core *core, const void *buf, size_t len, char *err,
                             size_t errlen)
{
    if (core->ssl)
        return sa_tls_client_write(core->ssl, buf, len, err, errlen);
    ssize_t sent = send(core->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent >= 0)
        return sent;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return SA_IO_WANT_WRITE;
    if (errno == EPIPE)
        return SA_IO_CLOSED;
    if (errno == ECONNRESET)
        return SA_IO_RESET;
    snprintf(err, errlen, "send failed: %s", strerror(errno));
    return SA_IO_FAILED;
}

int sa_client_core_has_pending(const sa_client_core *core)
{
    return core->ssl && sa_tls_client_has_pending(core->ssl);
}

int64_t sa_client_core_next_id(sa_client_core *core)
{
    return atomic_fetch_add(&core->next_id, 1);
}

cJSON *sa_client_core_with_id(const cJSON *msg, int64_t id)
{
    if (!cJSON_IsObject(msg))
        return NULL;
    cJSON *copy = cJSON_Duplicate(msg, 1);
    if (!copy)
        return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "id");
    if (!cJSON_AddNumberToObject(copy, "id", (double)id)) {
        cJSON_Delete(copy);
        return NULL;
    }
    return copy;
}

cJSON *sa_client_core_parse(const unsigned char *payload, size_t len)
{
    cJSON *frame = sa_json_parse(payload, len);
    if (frame && !cJSON_IsObject(frame)) {
        cJSON_Delete(frame);
        return NULL;
    }
    return frame;
}

static int has_string(const cJSON *obj, const char *key, const char *value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) && strcmp(item->valuestring, value) == 0;
}

void sa_client_core_observe(sa_client_core *core, const cJSON *frame)
{
    if (!has_string(frame, "type", "ok") || !has_string(frame, "re", "hello"))
        return;
    const cJSON *max_frame = cJSON_GetObjectItemCaseSensitive(frame, "max_frame");
    /* Only ever raised: the limit is there to bound memory, and every
     * server may send frames up to the default. */
    if (cJSON_IsNumber(max_frame) && max_frame->valuedouble > core->decoder.max_frame &&
        max_frame->valuedouble <= (double)UINT32_MAX)
        core->decoder.max_frame = (uint32_t)max_frame->valuedouble;
}

int sa_client_core_is_ping(const cJSON *frame)
{
    return has_string(frame, "type", "ping");
}

cJSON *sa_client_core_pong_for(const cJSON *ping)
{
    cJSON *pong = cJSON_CreateObject();
    if (!pong || !cJSON_AddStringToObject(pong, "type", "pong"))
        goto fail;
    static const char *const echoed[] = {"ts", "id"};
    for (size_t i = 0; i < sizeof echoed / sizeof echoed[0]; i++) {
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(ping, echoed[i]);
        if (!value)
            continue;
        cJSON *copy = cJSON_Duplicate(value, 1);
        if (!copy)
            goto fail;
        if (!cJSON_AddItemToObject(pong, echoed[i], copy)) {
            cJSON_Delete(copy);
            goto fail;
        }
    }
    return pong;
fail:
    cJSON_Delete(pong);
    return NULL;
}

int sa_client_core_is_reply_to(const cJSON *frame, int64_t id)
{
    if (!has_string(frame, "type", "ok") && !has_string(frame, "type", "error"))
        return 0;
    const cJSON *reply_id = cJSON_GetObjectItemCaseSensitive(frame, "id");
    return cJSON_IsNumber(reply_id) && reply_id->valuedouble == (double)id;
}

const char *sa_client_core_decode_error(enum sa_decode_status status)
{
    switch (status) {
    case SA_DECODE_OK:
        break;
    case SA_DECODE_EMPTY:
        return "server sent an empty frame";
    case SA_DECODE_TOO_LARGE:
        return "server sent a frame larger than max_frame";
    case SA_DECODE_NOMEM:
        return "out of memory for a frame from the server";
    }
    return "frame decoding failed";
}
