/*
 * Sessions: one per connection, created by the engine glue when the engine
 * accepts, reference-counted (the engine's connection holds one reference
 * until `closed`; plugins may hold more), and the registry of named
 * sessions (those that completed hello), unique by case-folded name.
 */
#ifndef SA_SESSION_H
#define SA_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <syncasync/engine.h>

#include "codec.h"

struct sa_session {
    atomic_int refs;

    /* Guards conn and gone: a send never reaches a connection the engine
     * has already freed. */
    pthread_mutex_t lock;
    sa_conn *conn;
    int gone;     /* the engine reported closed */
    int closing;  /* the core asked the engine to close */

    char *peer;     /* "ADDR:PORT" */
    char *name;     /* set by a successful hello; immutable after */
    char *name_key; /* lower-case name, the registry key */
    char id[33];    /* the "session" of the hello reply */
    sa_tls *tls;    /* owned; NULL on a plain connection */

    /* Lane state: touched only by the session's own lane (engine calls). */
    sa_decoder decoder;
    int64_t opened_ms;
    int64_t hello_wait_from_ms; /* hello_timeout counts from here: the open, or
                                   the end of the TLS handshake */
    int64_t last_rx_ms;
    int64_t last_ping_ms; /* when the server last pinged this silent client */
    int input_stopped;    /* a fatal frame error: ignore further input */
    int counted;          /* admitted: counts toward the connection limits */
    int64_t frame_started_ms; /* when the partial frame held began, 0 if none */
    uint64_t frames_received;

    /* Bit i: handler plugin i asked for on_writable (any thread sets). */
    atomic_uint_fast64_t writable_wanted;

    void **plugin_data; /* one slot per handler plugin */
    size_t plugin_slots;

    struct sa_session *registry_next; /* bucket chain, under the registry lock */
};

/* A new session with one reference (the connection's). NULL if no memory. */
sa_session *sa_session_new(sa_conn *conn, const char *peer, uint32_t max_frame,
                           size_t plugin_slots, int64_t now_ms);
void sa_session_ref(sa_session *s);
void sa_session_unref(sa_session *s); /* frees at zero */

/* Queues an encoded frame to the session; -1 when it is closed. */
int sa_session_send(sa_session *s, sa_frame *f);
/* Queues a bye (if reason != NULL) and asks the engine to close. */
void sa_session_close(sa_session *s, const char *reason);
/* {"type":"bye","reason":reason} (new reference), or NULL (no memory). */
sa_frame *sa_bye_frame(const char *reason);
/* Bytes queued to the session's connection, 0 once it is closing. */
size_t sa_session_queued(sa_session *s);
/* Records that plugin `index` wants on_writable and arms the engine.
 * Returns -1 when the session is closing. */
int sa_session_notify_writable(sa_session *s, size_t index, size_t low_water);

/* 1 once the session is closing or gone (safe from any thread). */
int sa_session_is_closing(sa_session *s);
/* The engine reported the connection gone: no more sends reach it. */
void sa_session_mark_gone(sa_session *s);

/* Registry. sa_registry_add returns 0, or -1 when the name is taken.
 * The session's name fields are set by it. */
int sa_registry_add(sa_session *s, const char *name);
void sa_registry_remove(sa_session *s);
sa_session *sa_registry_find(const char *name); /* new reference or NULL */
void sa_registry_foreach(int (*visit)(sa_session *s, void *arg), void *arg);


#endif
