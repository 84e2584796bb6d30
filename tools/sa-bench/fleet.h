/*
 * A fleet: the N connections of a workload, set up through a protocol
 * driver (connect, log in, optionally join its room) with at most
 * --concurrency of them in progress at once, then handed to the workload,
 * which gets every later event through on_event and every lost
 * connection through on_lost.
 *
 * Ownership: the fleet owns its members array and, through it, every
 * connection, and the room names; fleet_free closes the connections and
 * frees both. It borrows the options, the driver and the loop.
 */
#ifndef BENCH_FLEET_H
#define BENCH_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "options.h"
#include "proto.h"

enum member_state {
    MEMBER_IDLE,       /* not started */
    MEMBER_CONNECTING, /* TCP handshake */
    MEMBER_LOGGING_IN, /* waiting for READY */
    MEMBER_JOINING,    /* waiting for JOINED */
    MEMBER_READY,      /* set up; the workload's from now on */
    MEMBER_FAILED,     /* setup failed, or the connection was lost later */
};

typedef struct fleet fleet;

typedef struct fleet_member {
    bench_conn conn;
    fleet *fleet;
    uint32_t index;
    uint32_t room; /* index into fleet.room_names */
    uint8_t state; /* enum member_state */
    bool joins;    /* joins its room after the login */
} fleet_member;

struct fleet {
    const bench_options *opt;
    const bench_proto *proto;
    struct ev_loop *loop;
    bench_net net;
    fleet_member *members; /* owned */
    uint32_t count;
    char **room_names;      /* owned: opt->room alone, or opt->room + "0", "1"... */
    uint32_t room_count;
    uint32_t next_to_start; /* members below have been started */
    uint32_t in_setup, ready, failed;
    bool setup_done;
    bool starting;          /* inside start_more */
    char name_prefix[16];   /* of every login name, from the seed */
    char engine[16];        /* the server's engine when it says (syncasync) */
    char first_error[160];  /* the first setup failure, for the report */
    ev_timer setup_deadline;

    /* The workload's, once setup is done. */
    void *workload;
    void (*on_event)(fleet *f, fleet_member *m, const bench_event *ev,
                     const bench_rx_time *when);
    void (*on_lost)(fleet *f, fleet_member *m, const char *reason);
    uint32_t lost;          /* connections lost after setup */
    char first_loss[160];
};

/* Prepares `count` members (all in room 0, joining none) and `rooms` room
 * names, connecting from `sources` addresses, and resolves the server. 0,
 * or -1 with a message in err. */
int fleet_init(fleet *f, const bench_options *opt, const bench_proto *proto,
               struct ev_loop *loop, uint32_t count, uint32_t rooms, unsigned sources,
               char *err, size_t errlen);
/* Sets every member up (running the loop) within opt->setup_timeout.
 * Returns the number of members READY; the others are FAILED, with the
 * first reason in first_error. */
uint32_t fleet_setup(fleet *f);
/* Closes every connection and frees the members. */
void fleet_free(fleet *f);

/* Marks a READY member lost: closes it, counts it, calls on_lost. */
void fleet_lose(fleet *f, fleet_member *m, const char *reason);

#endif
