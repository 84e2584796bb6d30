/*
 * Redis pub/sub over RESP2, by hand: SUBSCRIBE / PUBLISH / PING.
 *
 * A subscriber receives [ "message", channel, text ] arrays; a publisher
 * gets one integer (the number of receivers) per PUBLISH, in order. Redis
 * has no login: a connection is logged in once it is connected.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

/* Bounds on what the driver accepts from the server. */
#define RESP_LINE_MAX 65536u
#define RESP_BULK_MAX (16u << 20)
#define RESP_ARRAY_MAX 1024
#define RESP_DEPTH_MAX 4

/* Reads the decimal after the type byte of a header line ending at crlf.
 * 0, or -1 when it is not a number in [-1, max]. */
static int header_number(const unsigned char *line, const unsigned char *crlf, long long max,
                         long long *out)
{
    const unsigned char *p = line + 1;
    int negative = 0;
    if (p < crlf && *p == '-') {
        negative = 1;
        p++;
    }
    if (p == crlf)
        return -1;
    long long v = 0;
    for (; p < crlf; p++) {
        if (*p < '0' || *p > '9' || v > max)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (negative)
        v = -v;
    if (v < -1 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The "\r\n" ending the line at buf, or NULL when it has not arrived;
 * *bad is set when no line can be that long. */
static const unsigned char *find_crlf(const unsigned char *buf, size_t len, int *bad)
{
    size_t scan = len < RESP_LINE_MAX ? len : RESP_LINE_MAX;
    for (const unsigned char *p = buf; (p = memchr(p, '\r', scan - (size_t)(p - buf)));) {
        if ((size_t)(p - buf) + 1 >= len)
            return NULL; /* the '\n' has not arrived */
        if (p[1] == '\n')
            return p;
        p++;
    }
    *bad = len >= RESP_LINE_MAX;
    return NULL;
}

/* Length of the RESP value at buf: > 0 complete, 0 incomplete, -1 bad. */
static ssize_t value_len(const unsigned char *buf, size_t len, int depth)
{
    if (len == 0)
        return 0;
    int bad = 0;
    const unsigned char *crlf = find_crlf(buf, len, &bad);
    if (!crlf)
        return bad ? -1 : 0;
    size_t line = (size_t)(crlf - buf) + 2;
    long long n;
    switch (buf[0]) {
    case '+':
    case '-':
    case ':':
        return (ssize_t)line;
    case '$':
        if (header_number(buf, crlf, RESP_BULK_MAX, &n) != 0)
            return -1;
        if (n < 0)
            return (ssize_t)line;
        if (len < line + (size_t)n + 2)
            return 0;
        if (buf[line + (size_t)n] != '\r' || buf[line + (size_t)n + 1] != '\n')
            return -1;
        return (ssize_t)(line + (size_t)n + 2);
    case '*': {
        if (depth >= RESP_DEPTH_MAX || header_number(buf, crlf, RESP_ARRAY_MAX, &n) != 0)
            return -1;
        size_t pos = line;
        for (long long i = 0; i < n; i++) {
            ssize_t item = value_len(buf + pos, len - pos, depth + 1);
            if (item <= 0)
                return item;
            pos += (size_t)item;
        }
        return (ssize_t)pos;
    }
    default:
        return -1;
    }
}

static ssize_t redis_frame_len(const unsigned char *buf, size_t len)
{
    return value_len(buf, len, 0);
}

/* The contents of the bulk string at buf (a complete value): 0, or -1
 * when it is not a bulk string. *used is the value's length. */
static int bulk_at(const unsigned char *buf, size_t len, const unsigned char **data,
                   size_t *data_len, size_t *used)
{
    ssize_t total = value_len(buf, len, 1);
    if (total <= 0 || buf[0] != '$')
        return -1;
    const unsigned char *crlf = memchr(buf, '\r', (size_t)total);
    size_t header = (size_t)(crlf - buf) + 2;
    if ((size_t)total < header + 2)
        return -1; /* a nil bulk */
    *data = buf + header;
    *data_len = (size_t)total - header - 2;
    *used = (size_t)total;
    return 0;
}

static bool bulk_is(const unsigned char *data, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(data, word, len) == 0;
}

/* A RESP array of bulk strings, written straight into the output. */
static int put_command(bench_conn *c, int argc, const char *const *argv, const size_t *lens)
{
    size_t total = 16;
    for (int i = 0; i < argc; i++)
        total += 32 + lens[i];
    unsigned char *out = bench_conn_reserve(c, total);
    if (!out)
        return -1;
    char *p = (char *)out;
    p += sprintf(p, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        p += sprintf(p, "$%zu\r\n", lens[i]);
        memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    bench_conn_commit(c, (size_t)(p - (char *)out));
    return 0;
}

static int redis_login(bench_conn *c, const char *name)
{
    (void)c;
    (void)name;
    return 1;
}

static int redis_join(bench_conn *c, const char *room)
{
    const char *argv[] = {"SUBSCRIBE", room};
    const size_t lens[] = {9, strlen(room)};
    return put_command(c, 2, argv, lens);
}

static int redis_publish(bench_conn *c, const char *room, uint64_t seq, const char *text,
                         size_t len)
{
    (void)seq;
    const char *argv[] = {"PUBLISH", room, text};
    const size_t lens[] = {7, strlen(room), len};
    return put_command(c, 3, argv, lens);
}

static int redis_ping(bench_conn *c, uint64_t token)
{
    (void)token;
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    return bench_conn_write(c, ping, sizeof ping - 1);
}

static void redis_decode(bench_conn *c, const unsigned char *frame, size_t len, bench_event *ev)
{
    (void)c;
    *ev = (bench_event){.kind = BENCH_EV_NONE};
    const unsigned char *crlf = memchr(frame, '\r', len);
    size_t line = (size_t)(crlf - frame); /* frame_len saw the "\r\n" */
    switch (frame[0]) {
    case ':':
        ev->kind = BENCH_EV_ACK;
        return;
    case '+':
        if (line == 5 && memcmp(frame, "+PONG", 5) == 0)
            ev->kind = BENCH_EV_PONG;
        return;
    case '-':
        ev->kind = BENCH_EV_REJECTED;
        snprintf(ev->detail, sizeof ev->detail, "%.*s", (int)(line - 1), frame + 1);
        return;
    case '*':
        break;
    default:
        return;
    }
    const unsigned char *kind, *channel, *text;
    size_t kind_len, channel_len, text_len, used;
    size_t pos = line + 2;
    if (bulk_at(frame + pos, len - pos, &kind, &kind_len, &used) != 0)
        return;
    pos += used;
    if (bulk_is(kind, kind_len, "pong")) {
        ev->kind = BENCH_EV_PONG;
        return;
    }
    if (bulk_is(kind, kind_len, "subscribe")) {
        ev->kind = BENCH_EV_JOINED;
        return;
    }
    if (!bulk_is(kind, kind_len, "message"))
        return;
    if (bulk_at(frame + pos, len - pos, &channel, &channel_len, &used) != 0 ||
        bulk_at(frame + pos + used, len - pos - used, &text, &text_len, &used) != 0) {
        snprintf(ev->detail, sizeof ev->detail, "a message without channel and text");
        ev->kind = BENCH_EV_MALFORMED;
        return;
    }
    ev->kind = BENCH_EV_DELIVERY;
    ev->text = text;
    ev->text_len = text_len;
}

const bench_proto bench_proto_redis = {
    .name = "redis",
    .publisher_joins = false,
    .acks_publish = true,
    .frame_len = redis_frame_len,
    .login = redis_login,
    .join = redis_join,
    .publish = redis_publish,
    .ping = redis_ping,
    .decode = redis_decode,
};
