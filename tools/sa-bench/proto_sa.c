/*
 * The SyncAsync protocol (PROTOCOL.md): 4-byte big-endian length + JSON.
 *
 * The server prints its frames with cJSON in the order the members were
 * added, so the frames of the hot path (message events, msg replies, and
 * the joined/left/presence floods of a large room) are recognised by their
 * first bytes and read without parsing; everything else goes through cJSON.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "proto.h"

#define CLIENT_NAME "sa-bench/" SA_VERSION

static ssize_t sa_frame_len(const unsigned char *buf, size_t len)
{
    if (len < SA_FRAME_HEADER)
        return 0;
    uint32_t n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    if (n == 0 || n > SA_DEFAULT_MAX_FRAME)
        return -1;
    return len - SA_FRAME_HEADER >= n ? (ssize_t)(SA_FRAME_HEADER + n) : 0;
}

/* Formats one frame straight into the output: `json_max` bounds the JSON
 * text, which is printf'd after a 4-byte hole for its length. */
__attribute__((format(printf, 3, 4))) static int put_frame(bench_conn *c, size_t json_max,
                                                           const char *fmt, ...)
{
    unsigned char *out = bench_conn_reserve(c, SA_FRAME_HEADER + json_max + 1);
    if (!out)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)out + SA_FRAME_HEADER, json_max + 1, fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t)n > json_max)
        return -1;
    out[0] = (unsigned char)(n >> 24);
    out[1] = (unsigned char)(n >> 16);
    out[2] = (unsigned char)(n >> 8);
    out[3] = (unsigned char)n;
    bench_conn_commit(c, SA_FRAME_HEADER + (size_t)n);
    return 0;
}

static int sa_login(bench_conn *c, const char *name)
{
    int rc = put_frame(c, 128 + strlen(name),
                       "{\"type\":\"hello\",\"id\":\"hello\",\"name\":\"%s\",\"client\":\"%s\","
                       "\"proto\":1}",
                       name, CLIENT_NAME);
    return rc == 0 ? 0 : -1;
}

static int sa_join(bench_conn *c, const char *room)
{
    return put_frame(c, 64 + strlen(room), "{\"type\":\"join\",\"id\":\"join\",\"room\":\"%s\"}",
                     room);
}

static int sa_publish(bench_conn *c, const char *room, uint64_t seq, const char *text,
                      size_t len)
{
    return put_frame(c, 96 + strlen(room) + len,
                     "{\"type\":\"msg\",\"id\":%llu,\"room\":\"%s\",\"text\":\"%.*s\"}",
                     (unsigned long long)seq, room, (int)len, text);
}

static int sa_ping(bench_conn *c, uint64_t token)
{
    return put_frame(c, 64, "{\"type\":\"ping\",\"id\":\"ping\",\"ts\":%llu}",
                     (unsigned long long)token);
}

static bool starts_with(const unsigned char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static void set_detail(bench_event *ev, enum bench_event_kind kind, const char *a, const char *b)
{
    ev->kind = kind;
    snprintf(ev->detail, sizeof ev->detail, "%s%s%s", a, *a && *b ? ": " : "", b);
}

static const char *string_member(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Answers a server ping with its ts and id echoed exactly. */
static void answer_ping(bench_conn *c, const cJSON *ping)
{
    cJSON *pong = cJSON_CreateObject();
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(ping, "ts");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(ping, "id");
    if (pong && cJSON_AddStringToObject(pong, "type", "pong") &&
        (!ts || cJSON_AddItemToObject(pong, "ts", sa_json_copy_exact(ts))) &&
        (!id || cJSON_AddItemToObject(pong, "id", sa_json_copy_exact(id)))) {
        sa_frame *f = sa_frame_from_json(pong);
        if (f)
            bench_conn_write(c, f->bytes, f->len);
        sa_frame_unref(f);
    }
    cJSON_Delete(pong);
}

/* Every frame off the hot path. */
static void decode_slow(bench_conn *c, const unsigned char *payload, size_t len,
                        bench_event *ev)
{
    cJSON *root = cJSON_ParseWithLength((const char *)payload, len);
    const char *type = cJSON_IsObject(root) ? string_member(root, "type") : NULL;
    if (!type) {
        set_detail(ev, BENCH_EV_MALFORMED, "a frame that is not a JSON object with a type", "");
        cJSON_Delete(root);
        return;
    }
    const char *re = string_member(root, "re");
    re = re ? re : "";
    if (strcmp(type, "ok") == 0) {
        if (strcmp(re, "hello") == 0) {
            const char *engine = string_member(root, "engine");
            set_detail(ev, BENCH_EV_READY, engine ? engine : "", "");
        } else if (strcmp(re, "join") == 0) {
            ev->kind = BENCH_EV_JOINED;
        } else if (strcmp(re, "msg") == 0) {
            ev->kind = BENCH_EV_ACK;
        }
    } else if (strcmp(type, "error") == 0) {
        const char *code = string_member(root, "code");
        set_detail(ev, BENCH_EV_REJECTED, re, code ? code : "error");
    } else if (strcmp(type, "pong") == 0) {
        ev->kind = BENCH_EV_PONG;
    } else if (strcmp(type, "ping") == 0) {
        answer_ping(c, root);
    } else if (strcmp(type, "bye") == 0) {
        const char *reason = string_member(root, "reason");
        set_detail(ev, BENCH_EV_BYE, reason ? reason : "", "");
    } else if (strcmp(type, "message") == 0) {
        set_detail(ev, BENCH_EV_MALFORMED, "a message event without a plain text", "");
    }
    cJSON_Delete(root);
}

static void sa_decode(bench_conn *c, const unsigned char *frame, size_t len, bench_event *ev)
{
    *ev = (bench_event){.kind = BENCH_EV_NONE};
    const unsigned char *p = frame + SA_FRAME_HEADER;
    size_t n = len - SA_FRAME_HEADER;
    if (starts_with(p, n, "{\"type\":\"message\",")) {
        static const char key[] = "\"text\":\"";
        const unsigned char *at = memmem(p, n, key, sizeof key - 1);
        if (at) {
            const unsigned char *text = at + sizeof key - 1;
            const unsigned char *end = memchr(text, '"', n - (size_t)(text - p));
            if (end) {
                ev->kind = BENCH_EV_DELIVERY;
                ev->text = text;
                ev->text_len = (size_t)(end - text);
                return;
            }
        }
    } else if (starts_with(p, n, "{\"type\":\"ok\",\"re\":\"msg\",")) {
        ev->kind = BENCH_EV_ACK;
        return;
    } else if (starts_with(p, n, "{\"type\":\"joined\",") ||
               starts_with(p, n, "{\"type\":\"left\",") ||
               starts_with(p, n, "{\"type\":\"presence\",") ||
               starts_with(p, n, "{\"type\":\"topic\",")) {
        return;
    }
    decode_slow(c, p, n, ev);
}

const bench_proto bench_proto_syncasync = {
    .name = "syncasync",
    .publisher_joins = true,
    .acks_publish = true,
    .frame_len = sa_frame_len,
    .login = sa_login,
    .join = sa_join,
    .publish = sa_publish,
    .ping = sa_ping,
    .decode = sa_decode,
};
