/*
 * One direction of a proxied connection: reads its source socket, queues
 * what it read, and writes it to the destination socket as the faults of
 * that direction say (segments, delays, rate, resets, black hole).
 *
 * Ownership: the flow owns its queue of chunks and its watchers; the two
 * sockets belong to the connection pair (proxy.c), which closes them. The
 * flow reports how it ends through `notify`, always as the last thing it
 * does in a libev callback, so the pair may free the flow from there.
 */
#ifndef CHAOS_FLOW_H
#define CHAOS_FLOW_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "prng.h"

enum chaos_flow_event {
    /* The source ended and everything it sent went through (the end of
     * stream passed on with shutdown), or into the black hole. */
    CHAOS_FLOW_DONE,
    /* A reset fault fired: both connections must be reset now. */
    CHAOS_FLOW_RESET,
    /* A socket failed or was reset by its peer, or memory ran out: both
     * connections must be reset, so each side sees what a direct
     * connection would have shown. */
    CHAOS_FLOW_FAILED,
};

typedef struct chaos_flow chaos_flow;
typedef void chaos_flow_notify(chaos_flow *flow, enum chaos_flow_event event, void *owner);

typedef struct chaos_chunk chaos_chunk; /* bytes of one read, queued */

struct chaos_flow {
    struct ev_loop *loop;
    const chaos_faults *faults; /* the config's */
    enum chaos_direction direction;
    uint64_t conn_index; /* for the log */
    int src_fd, dst_fd;  /* the pair's */
    ev_io reader, writer;
    ev_timer release_timer;
    chaos_prng prng;
    chaos_chunk *head, *tail;
    size_t queued; /* memory held by the queue, chunk headers included */

    /* The segment being sent: planned when its first byte is due. */
    uint64_t segment_left; /* bytes of it still to send */
    double segment_jitter;
    int segment_resets; /* the segment is a reset instead */

    ev_tstamp last_due;   /* bytes never overtake each other */
    ev_tstamp rate_ready; /* earliest next write under --rate */

    uint64_t forwarded; /* bytes written to the destination */
    uint64_t swallowed; /* bytes read into the black hole */
    uint64_t segments;  /* segments planned */
    uint32_t plan_fingerprint; /* hash of every planned segment (size, jitter, reset) */

    int reading, src_ended, blackholed, done;
    chaos_flow_notify *notify;
    void *owner;
};

/* Prepares the flow; nothing runs until chaos_flow_start. */
void chaos_flow_init(chaos_flow *flow, struct ev_loop *loop, const chaos_faults *faults,
                     enum chaos_direction direction, uint64_t conn_index, uint64_t seed,
                     int src_fd, int dst_fd, chaos_flow_notify *notify, void *owner);
/* Starts reading. A fault due at byte 0 (reset or black hole after 0
 * bytes) fires here: returns -1 when it notified the owner (who may have
 * freed the flow), else 0. */
int chaos_flow_start(chaos_flow *flow);
/* Stops every watcher and frees the queue (the flow may then be freed). */
void chaos_flow_stop(chaos_flow *flow);

/* "up" or "down". */
const char *chaos_direction_name(enum chaos_direction direction);

#endif
