/*
 * Protocol drivers: the same few operations (log in, join a room or
 * subscribe to a channel, publish, ping) and the same events, spoken as
 * the SyncAsync protocol (proto_sa.c), Redis RESP pub/sub (proto_redis.c)
 * or MQTT 3.1.1 at QoS 0 (proto_mqtt.c). The workloads only see this page.
 *
 * Every operation queues bytes on a bench_conn and returns 0, or -1 when
 * the connection is closed or out of memory.
 */
#ifndef BENCH_PROTO_H
#define BENCH_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

enum bench_event_kind {
    BENCH_EV_NONE,      /* nothing the workloads need (presence, joined...) */
    BENCH_EV_READY,     /* the login was accepted; detail: the server's engine, if it says */
    BENCH_EV_JOINED,    /* the join or subscription was accepted */
    BENCH_EV_DELIVERY,  /* a message from the room: text */
    BENCH_EV_ACK,       /* a publish was accepted (answers come in request order) */
    BENCH_EV_REJECTED,  /* a request failed; detail: the server's code or message */
    BENCH_EV_PONG,      /* the answer to a ping */
    BENCH_EV_BYE,       /* the server says it is closing; detail: why */
    BENCH_EV_MALFORMED, /* a frame the driver cannot make sense of; detail: what */
};

typedef struct bench_event {
    enum bench_event_kind kind;
    /* DELIVERY: the message text, pointing into the frame (valid as long
     * as the frame is). */
    const unsigned char *text;
    size_t text_len;
    char detail[80]; /* NUL-terminated; "" when there is nothing to say */
} bench_event;

typedef struct bench_proto {
    const char *name;
    /* Senders must join the room too (and then receive each other's
     * messages), as SyncAsync's msg requires; elsewhere publishers stay
     * outside the channel. */
    bool publisher_joins;
    /* Every publish gets an answer (ACK or REJECTED), in order. */
    bool acks_publish;
    bench_frame_len_fn frame_len;
    /* Queues the login as `name`. Returns 1 when the connection counts as
     * logged in at once (the protocol has no login), 0 when READY or
     * REJECTED will follow, -1 on failure. */
    int (*login)(bench_conn *c, const char *name);
    /* JOINED or REJECTED follows. */
    int (*join)(bench_conn *c, const char *room);
    /* `text` holds only characters that need no escaping in any protocol
     * (letters, digits, spaces). */
    int (*publish)(bench_conn *c, const char *room, uint64_t seq, const char *text, size_t len);
    /* PONG follows. */
    int (*ping)(bench_conn *c, uint64_t token);
    /* Reads one complete frame (as cut by frame_len) into *ev. May queue an
     * answer itself: a server's ping is answered here. */
    void (*decode)(bench_conn *c, const unsigned char *frame, size_t len, bench_event *ev);
} bench_proto;

extern const bench_proto bench_proto_syncasync;
extern const bench_proto bench_proto_redis;
extern const bench_proto bench_proto_mqtt;

#endif
