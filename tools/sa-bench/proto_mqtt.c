/*
 * MQTT 3.1.1 at QoS 0, by hand: CONNECT / SUBSCRIBE / PUBLISH / PINGREQ.
 *
 * QoS 0 publishes get no answer, so a sender's window closes only on
 * delivery. Clean sessions and keep-alive 0 (no keep-alive timer), so an
 * idle connection is left alone for as long as a run lasts.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

enum {
    MQTT_CONNECT = 1, MQTT_CONNACK = 2, MQTT_PUBLISH = 3, MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9, MQTT_PINGREQ = 12, MQTT_PINGRESP = 13
};

/* Largest packet accepted from the server. */
#define MQTT_PACKET_MAX (16u << 20)

static ssize_t mqtt_frame_len(const unsigned char *buf, size_t len)
{
    uint32_t remaining = 0;
    for (size_t i = 1; i <= 4; i++) {
        if (i >= len)
            return 0;
        remaining |= (uint32_t)(buf[i] & 0x7f) << (7 * (i - 1));
        if (!(buf[i] & 0x80)) {
            if (remaining > MQTT_PACKET_MAX)
                return -1;
            size_t total = 1 + i + remaining;
            return len >= total ? (ssize_t)total : 0;
        }
    }
    return -1; /* a fifth length byte */
}

/* Writes the fixed header of a packet with `remaining` bytes after it;
 * returns the bytes written (at most 5). */
static size_t fixed_header(unsigned char *out, unsigned char first, size_t remaining)
{
    size_t n = 0;
    out[n++] = first;
    do {
        unsigned char digit = remaining & 0x7f;
        remaining >>= 7;
        out[n++] = remaining ? (unsigned char)(digit | 0x80) : digit;
    } while (remaining);
    return n;
}

static unsigned char *put_string(unsigned char *p, const char *s, size_t len)
{
    *p++ = (unsigned char)(len >> 8);
    *p++ = (unsigned char)len;
    memcpy(p, s, len);
    return p + len;
}

static int mqtt_login(bench_conn *c, const char *name)
{
    size_t id_len = strlen(name);
    if (id_len > 65535)
        return -1;
    size_t remaining = 10 + 2 + id_len;
    unsigned char *out = bench_conn_reserve(c, 5 + remaining);
    if (!out)
        return -1;
    unsigned char *p = out + fixed_header(out, MQTT_CONNECT << 4, remaining);
    p = put_string(p, "MQTT", 4);
    *p++ = 4;    /* protocol level 3.1.1 */
    *p++ = 0x02; /* clean session */
    *p++ = 0;    /* keep-alive 0: none */
    *p++ = 0;
    p = put_string(p, name, id_len);
    bench_conn_commit(c, (size_t)(p - out));
    return 0;
}

static int mqtt_join(bench_conn *c, const char *room)
{
    size_t topic_len = strlen(room);
    size_t remaining = 2 + 2 + topic_len + 1;
    unsigned char *out = bench_conn_reserve(c, 5 + remaining);
    if (!out)
        return -1;
    unsigned char *p = out + fixed_header(out, MQTT_SUBSCRIBE << 4 | 0x02, remaining);
    *p++ = 0; /* packet id 1 */
    *p++ = 1;
    p = put_string(p, room, topic_len);
    *p++ = 0; /* QoS 0 */
    bench_conn_commit(c, (size_t)(p - out));
    return 0;
}

static int mqtt_publish(bench_conn *c, const char *room, uint64_t seq, const char *text,
                        size_t len)
{
    (void)seq;
    size_t topic_len = strlen(room);
    size_t remaining = 2 + topic_len + len;
    unsigned char *out = bench_conn_reserve(c, 5 + remaining);
    if (!out)
        return -1;
    unsigned char *p = out + fixed_header(out, MQTT_PUBLISH << 4, remaining);
    p = put_string(p, room, topic_len);
    memcpy(p, text, len);
    p += len;
    bench_conn_commit(c, (size_t)(p - out));
    return 0;
}

static int mqtt_ping(bench_conn *c, uint64_t token)
{
    (void)token;
    static const unsigned char pingreq[] = {MQTT_PINGREQ << 4, 0};
    return bench_conn_write(c, pingreq, sizeof pingreq);
}

static void mqtt_decode(bench_conn *c, const unsigned char *frame, size_t len, bench_event *ev)
{
    (void)c;
    *ev = (bench_event){.kind = BENCH_EV_NONE};
    size_t header = 2;
    while (frame[header - 1] & 0x80)
        header++; /* frame_len checked the length bytes */
    const unsigned char *body = frame + header;
    size_t body_len = len - header;
    switch (frame[0] >> 4) {
    case MQTT_CONNACK:
        if (body_len < 2) {
            snprintf(ev->detail, sizeof ev->detail, "a short CONNACK");
            ev->kind = BENCH_EV_MALFORMED;
        } else if (body[1] != 0) {
            snprintf(ev->detail, sizeof ev->detail, "CONNACK return code %u", body[1]);
            ev->kind = BENCH_EV_REJECTED;
        } else {
            ev->kind = BENCH_EV_READY;
        }
        return;
    case MQTT_SUBACK:
        if (body_len < 3 || body[body_len - 1] == 0x80) {
            snprintf(ev->detail, sizeof ev->detail, "SUBSCRIBE refused");
            ev->kind = BENCH_EV_REJECTED;
        } else {
            ev->kind = BENCH_EV_JOINED;
        }
        return;
    case MQTT_PINGRESP:
        ev->kind = BENCH_EV_PONG;
        return;
    case MQTT_PUBLISH: {
        size_t skip = 2;
        if (body_len >= 2)
            skip += (size_t)body[0] << 8 | body[1];
        if (((frame[0] >> 1) & 3) != 0)
            skip += 2; /* the packet id of QoS 1 and 2 */
        if (body_len < skip) {
            snprintf(ev->detail, sizeof ev->detail, "a short PUBLISH");
            ev->kind = BENCH_EV_MALFORMED;
            return;
        }
        ev->kind = BENCH_EV_DELIVERY;
        ev->text = body + skip;
        ev->text_len = body_len - skip;
        return;
    }
    default:
        return;
    }
}

const bench_proto bench_proto_mqtt = {
    .name = "mosquitto",
    .publisher_joins = false,
    .acks_publish = false,
    .frame_len = mqtt_frame_len,
    .login = mqtt_login,
    .join = mqtt_join,
    .publish = mqtt_publish,
    .ping = mqtt_ping,
    .decode = mqtt_decode,
};
