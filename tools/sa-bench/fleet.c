#include "fleet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void note_error(char *slot, size_t size, uint32_t index, const char *what,
                       const char *reason)
{
    if (slot[0] == '\0')
        snprintf(slot, size, "connection %u: %s%s%s", index, what, *reason ? ": " : "", reason);
}

/* Starts members until opt->concurrency are in progress. */
static void start_more(fleet *f);

/* A member's setup ended, one way or the other. */
static void setup_finished(fleet *f, fleet_member *m, bool ok, const char *what,
                           const char *reason)
{
    f->in_setup--;
    if (ok) {
        m->state = MEMBER_READY;
        f->ready++;
    } else {
        m->state = MEMBER_FAILED;
        f->failed++;
        bench_conn_close(&m->conn);
        note_error(f->first_error, sizeof f->first_error, m->index, what, reason);
    }
    if (f->ready + f->failed == f->count) {
        f->setup_done = true;
        ev_break(f->loop, EVBREAK_ONE);
        return;
    }
    if (!f->starting)
        start_more(f);
}

/* The login went through: join, or done. */
static void logged_in(fleet *f, fleet_member *m)
{
    if (!m->joins) {
        setup_finished(f, m, true, "", "");
        return;
    }
    m->state = MEMBER_JOINING;
    if (f->proto->join(&m->conn, f->room_names[m->room]) != 0)
        setup_finished(f, m, false, "join", "cannot queue the request");
}

static void on_connected(bench_conn *c)
{
    fleet_member *m = c->owner;
    fleet *f = m->fleet;
    char name[48];
    snprintf(name, sizeof name, "%s%u", f->name_prefix, m->index);
    int rc = f->proto->login(c, name);
    if (rc < 0) {
        setup_finished(f, m, false, "login", "cannot queue the request");
    } else if (rc == 1) {
        logged_in(f, m);
    } else {
        m->state = MEMBER_LOGGING_IN;
    }
}

/* An event during setup. */
static void setup_event(fleet *f, fleet_member *m, const bench_event *ev)
{
    const char *what = m->state == MEMBER_JOINING ? "join" : "login";
    switch (ev->kind) {
    case BENCH_EV_READY:
        if (m->state != MEMBER_LOGGING_IN)
            return;
        if (f->engine[0] == '\0' && ev->detail[0] != '\0')
            snprintf(f->engine, sizeof f->engine, "%.15s", ev->detail);
        logged_in(f, m);
        return;
    case BENCH_EV_JOINED:
        if (m->state == MEMBER_JOINING)
            setup_finished(f, m, true, "", "");
        return;
    case BENCH_EV_REJECTED:
        setup_finished(f, m, false, what, ev->detail);
        return;
    case BENCH_EV_BYE:
        setup_finished(f, m, false, "server said bye", ev->detail);
        return;
    case BENCH_EV_MALFORMED:
        setup_finished(f, m, false, "malformed reply", ev->detail);
        return;
    default:
        return; /* events of the room, pings answered by the driver */
    }
}

void fleet_lose(fleet *f, fleet_member *m, const char *reason)
{
    if (m->state != MEMBER_READY)
        return;
    bench_conn_close(&m->conn);
    m->state = MEMBER_FAILED;
    f->lost++;
    note_error(f->first_loss, sizeof f->first_loss, m->index, "lost", reason);
    if (f->on_lost)
        f->on_lost(f, m, reason);
}

static void on_frame(bench_conn *c, const unsigned char *frame, size_t len,
                     const bench_rx_time *when)
{
    fleet_member *m = c->owner;
    fleet *f = m->fleet;
    bench_event ev;
    f->proto->decode(c, frame, len, &ev);
    if (m->state != MEMBER_READY) {
        if (ev.kind != BENCH_EV_NONE)
            setup_event(f, m, &ev);
        return;
    }
    if (ev.kind == BENCH_EV_BYE) {
        char reason[128];
        snprintf(reason, sizeof reason, "server said bye: %s", ev.detail);
        fleet_lose(f, m, reason);
        return;
    }
    if (ev.kind != BENCH_EV_NONE && f->on_event)
        f->on_event(f, m, &ev, when);
}

static void on_closed(bench_conn *c, const char *reason)
{
    fleet_member *m = c->owner;
    fleet *f = m->fleet;
    if (m->state == MEMBER_READY) {
        /* bench_conn already closed the socket; fleet_lose's close is a no-op. */
        fleet_lose(f, m, reason);
    } else if (m->state != MEMBER_FAILED && m->state != MEMBER_IDLE) {
        const char *what = m->state == MEMBER_CONNECTING ? "connect" : "setup";
        setup_finished(f, m, false, what, reason);
    }
}

static void start_more(fleet *f)
{
    /* A synchronous failure ends in setup_finished, which must not recurse
     * back here: this loop picks up the freed slot. */
    f->starting = true;
    while (f->in_setup < f->opt->concurrency && f->next_to_start < f->count &&
           !f->setup_done) {
        fleet_member *m = &f->members[f->next_to_start++];
        f->in_setup++;
        m->state = MEMBER_CONNECTING;
        if (bench_conn_open(&f->net, &m->conn, m->index, m) != 0)
            setup_finished(f, m, false, "connect", strerror(errno));
    }
    f->starting = false;
}

static void setup_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

/* opt->room when there is one room, else opt->room followed by 0, 1... */
static int make_room_names(fleet *f, uint32_t rooms)
{
    f->room_names = calloc(rooms, sizeof *f->room_names);
    if (!f->room_names)
        return -1;
    f->room_count = rooms;
    for (uint32_t r = 0; r < rooms; r++) {
        int rc = rooms == 1 ? asprintf(&f->room_names[r], "%s", f->opt->room)
                            : asprintf(&f->room_names[r], "%s%u", f->opt->room, r);
        if (rc < 0) {
            f->room_names[r] = NULL;
            return -1;
        }
    }
    return 0;
}

static void free_room_names(fleet *f)
{
    for (uint32_t r = 0; r < f->room_count; r++)
        free(f->room_names[r]);
    free(f->room_names);
    f->room_names = NULL;
    f->room_count = 0;
}

int fleet_init(fleet *f, const bench_options *opt, const bench_proto *proto,
               struct ev_loop *loop, uint32_t count, uint32_t rooms, unsigned sources,
               char *err, size_t errlen)
{
    *f = (fleet){.opt = opt, .proto = proto, .loop = loop, .count = count};
    static const bench_net_handlers handlers = {
        .connected = on_connected, .frame = on_frame, .closed = on_closed};
    if (bench_net_init(&f->net, loop, opt->host, opt->port, sources, proto->frame_len,
                       &handlers, err, errlen) != 0)
        return -1;
    f->members = calloc(count ? count : 1, sizeof *f->members);
    if (!f->members || make_room_names(f, rooms ? rooms : 1) != 0) {
        snprintf(err, errlen, "out of memory for %u connections", count);
        free(f->members);
        f->members = NULL;
        free_room_names(f);
        bench_net_free(&f->net);
        return -1;
    }
    for (uint32_t i = 0; i < count; i++) {
        bench_conn_init(&f->members[i].conn);
        f->members[i].fleet = f;
        f->members[i].index = i;
    }
    /* Base 36 of the seed: unique names across runs sharing one server. */
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    uint64_t tag = opt->seed;
    char *p = f->name_prefix;
    *p++ = 'b';
    for (int i = 0; i < 6; i++, tag /= 36)
        *p++ = digits[tag % 36];
    *p++ = '_';
    *p = '\0';
    return 0;
}

uint32_t fleet_setup(fleet *f)
{
    if (f->count == 0) {
        f->setup_done = true;
        return 0;
    }
    ev_timer_init(&f->setup_deadline, setup_deadline_cb, f->opt->setup_timeout, 0);
    ev_timer_start(f->loop, &f->setup_deadline);
    start_more(f);
    if (!f->setup_done)
        ev_run(f->loop, 0);
    ev_timer_stop(f->loop, &f->setup_deadline);
    if (!f->setup_done) {
        for (uint32_t i = 0; i < f->count; i++) {
            fleet_member *m = &f->members[i];
            if (m->state != MEMBER_READY && m->state != MEMBER_FAILED) {
                if (m->state != MEMBER_IDLE)
                    f->in_setup--;
                m->state = MEMBER_FAILED;
                f->failed++;
                bench_conn_close(&m->conn);
            }
        }
        char why[64];
        snprintf(why, sizeof why, "not set up within %g s", f->opt->setup_timeout);
        if (f->first_error[0] == '\0')
            snprintf(f->first_error, sizeof f->first_error, "%s", why);
        f->setup_done = true;
    }
    return f->ready;
}

void fleet_free(fleet *f)
{
    for (uint32_t i = 0; i < f->count; i++)
        bench_conn_close(&f->members[i].conn);
    free(f->members);
    f->members = NULL;
    free_room_names(f);
    bench_net_free(&f->net);
}
