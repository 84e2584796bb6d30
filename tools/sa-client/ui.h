/*
 * sa-client's session logic, shared by both modes: the hello exchange,
 * command parsing, output formatting, request bookkeeping, heartbeat and
 * the quit sequence. The drivers (run_sync.c, run_async.c) only move bytes
 * and time into it and act on its phase.
 *
 * Not thread-safe: a driver calling it from several threads serializes the
 * calls itself (run_sync.c holds one mutex around every call).
 */
#ifndef SA_CLIENT_UI_H
#define SA_CLIENT_UI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "input.h"
#include "sa_reconnect.h"
#include "sa_tool_options.h"
#include "sa_xfer.h"

/* Command-line settings; the strings belong to the caller (argv/environ)
 * and outlive the ui. */
typedef struct client_options {
    sa_tool_options common; /* host, port, name, token, mode, retries */
    const char *room;
    int json;
} client_options;

/* How the ui sends. Both return failure only when the frame could not be
 * queued or written; the driver learns of a broken connection from its
 * receiving side and reports it through ui_on_connection_lost. `queued`
 * reports the bytes waiting in the driver's write queue (NULL when sends
 * block until written), so that file uploads keep that queue bounded.
 * `tune` applies the server's silence limit to the socket once hello
 * succeeded (sa_tune_socket); 0 or -1 with errno set. */
typedef struct ui_transport {
    int64_t (*request)(void *ctx, const cJSON *msg); /* adds a fresh id; the id or -1 */
    int (*send)(void *ctx, const cJSON *msg);        /* 0 or -1 */
    size_t (*queued)(void *ctx);
    int (*tune)(void *ctx, int64_t silence_ms);
    void *ctx;
} ui_transport;

enum ui_phase {
    UI_HELLO,        /* hello sent, waiting for its reply */
    UI_READY,        /* reading input */
    UI_QUITTING,     /* input ended: waiting (bounded) for the last replies */
    UI_RECONNECTING, /* no connection: the driver closes the old one, waits for
                      * ui_wants_connect, connects and calls ui_start */
    UI_DONE          /* the driver closes the connection and exits with exit_status */
};

/* How long the hello reply may take, how long the quit sequence waits for
 * outstanding replies, and how long it waits for a file transfer that
 * makes no progress. */
#define UI_HELLO_WAIT_MS 10000
#define UI_QUIT_WAIT_MS 5000
#define UI_TRANSFER_STALL_MS 30000

typedef struct ui_pending ui_pending;
typedef struct ui_transfer ui_transfer; /* ui_files.c */
typedef struct ui_line ui_line;         /* typed while disconnected */

/* Lines kept while disconnected, to be sent once reconnected; more are
 * refused with a notice. */
#define UI_OFFLINE_MAX_LINES 100
#define UI_OFFLINE_MAX_BYTES (1024u * 1024u)

typedef struct ui {
    const client_options *opt;
    ui_transport transport;
    enum ui_phase phase;
    int exit_status;
    int64_t hello_id;
    int64_t initial_join_id; /* the join of --room until its reply; else -1 */
    int rooms_enabled;     /* the server has the rooms plugin */
    char *current_room;    /* owned; NULL when there is none */
    uint32_t max_frame;    /* from the hello reply */
    int64_t heartbeat_ms;  /* 0: no client pings */
    int64_t silence_ms;    /* a server silent this long is gone; 0: never judged */
    int64_t last_send_ms;  /* monotonic time of our last frame */
    int64_t last_alive_ms; /* of the server's last frame, or of upload progress */
    int64_t deadline_ms;   /* of the hello, quit or backoff wait; see ui_deadline */
    ui_pending *pending_head, *pending_tail; /* owned: requests awaiting a reply */
    size_t pending_count;
    size_t restore_pending; /* of them, rejoins and status sent after a reconnect */

    /* What a reconnect restores (owned): the rooms joined (current_room
     * among them once its join was answered) and the status last set. */
    char **rooms;
    size_t room_count, room_cap;
    char *status, *status_text; /* NULL until /status; status_text may stay NULL */
    sa_reconnect reconnect;
    int connected_once; /* a hello succeeded */
    int reconnecting;   /* from a lost connection until the rooms are back */
    int connect_due;    /* the backoff is over: the driver connects now */
    ui_line *offline_head, *offline_tail; /* owned: lines typed meanwhile */
    size_t offline_count, offline_bytes;

    ui_transfer *transfers; /* owned: running /send and /get */
    int pump_wanted;        /* a transfer has work for ui_pump */
    line_reader input;
} ui;

int64_t ui_now_ms(void); /* monotonic milliseconds */

void ui_init(ui *u, const client_options *opt, const ui_transport *transport);
void ui_free(ui *u);

/* Sends hello. */
void ui_start(ui *u, int64_t now_ms);
/* One frame from the server. */
void ui_on_frame(ui *u, const cJSON *frame, int64_t now_ms);
/* Bytes from stdin; only while ui_wants_input. */
void ui_on_input(ui *u, const char *data, size_t len, int64_t now_ms);
/* End of stdin: the same as /quit. */
void ui_on_input_end(ui *u, int64_t now_ms);
/* The connection is gone (`reason` is human text). After a successful
 * hello, with retries left, the ui goes to UI_RECONNECTING (saying so on
 * stderr); otherwise it is done with status 1. */
void ui_on_connection_lost(ui *u, const char *reason);
/* A failure that another attempt cannot cure (a refused certificate):
 * done with status 1. */
void ui_on_fatal(ui *u, const char *reason);
/* In UI_RECONNECTING: 1 once the driver should connect (and then call
 * ui_start, or ui_on_connect_failed when connecting failed). */
int ui_wants_connect(const ui *u);
void ui_on_connect_failed(ui *u, const char *reason, int64_t now_ms);
/* 1 while the driver should hold a connection (hello, ready, quitting). */
int ui_connected(const ui *u);
/* Sends a ping when the connection has been idle for the heartbeat
 * interval, and treats a server silent for too long as a lost connection.
 * Returns the milliseconds until it should be called again, or -1 when no
 * heartbeat is running. */
int64_t ui_heartbeat(ui *u, int64_t now_ms);
/* The monotonic time by which the phase must end (waiting for the hello
 * reply, for the last replies when quitting, or for the next connection
 * attempt), or -1 when none. */
int64_t ui_deadline(const ui *u);
/* Acts on a passed deadline: no hello reply ends the session with status
 * 1 (a failed attempt when reconnecting); the quit sequence ends with
 * status 0 whatever is still missing; a backoff makes ui_wants_connect
 * true. */
void ui_check_deadline(ui *u, int64_t now_ms);

/* 1 when the driver should read stdin now: the session is ready, the
 * initial join (if any) and the rooms of a reconnect have their replies,
 * and not too many requests are waiting for replies; or the connection is
 * being re-established (lines are then kept for later). */
int ui_wants_input(const ui *u);

/* File transfers run in pieces between other events (sa_xfer.h). When
 * ui_wants_pump says so, the driver calls ui_pump as soon as it is idle;
 * after SA_XFER_BLOCKED it calls ui_on_drain once its write queue has
 * drained below SA_XFER_QUEUE_LIMIT / 2 (that asks for a pump again). */
int ui_wants_pump(const ui *u);
enum sa_xfer_pump ui_pump(ui *u, int64_t now_ms);
void ui_on_drain(ui *u);

#endif
