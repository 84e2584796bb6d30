/*
 * The runner's libev driver (--mode async). Watchers:
 *   - the connection's own (the library's), delivering frames and ends;
 *   - `pump_idle`, active while the job asks to be pumped again; the
 *     library's drain callback restarts it when the write queue empties
 *     below the job's limit;
 *   - `tick`, a repeating timer for the heartbeat, the hello deadline and
 *     the reconnect backoff;
 *   - SIGINT/SIGTERM watchers, when the job takes interrupts.
 * After every event, settle() acts on what the job says (finished?) and
 * ends the loop when it is.
 *
 * Ownership: the driver owns the loop and the current connection and
 * frees both before sa_run_async returns.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sa_client.h"
#include "sa_client_core.h"
#include "sa_runner_internal.h"

/* How often the tick timer looks at the heartbeat and deadlines, seconds. */
#define TICK_S 0.1

enum async_phase {
    PHASE_WAITING, /* for the next connection attempt */
    PHASE_HELLO,   /* hello sent */
    PHASE_READY,   /* the job runs */
    PHASE_OVER     /* the run is over; exit_status says how */
};

typedef struct async_run {
    sa_runner *r;
    struct ev_loop *loop;
    sa_client_async *conn; /* ours; NULL between connections */
    enum async_phase phase;
    int exit_status;
    int64_t hello_id;
    int64_t deadline_ms; /* of the hello reply, or of the backoff wait */
    sa_xfer_transport transport;
    ev_idle pump_idle;
    ev_timer tick;
    ev_signal sigint_watcher, sigterm_watcher;
} async_run;

static void end_run(async_run *a, int status)
{
    a->phase = PHASE_OVER;
    a->exit_status = status;
    ev_break(a->loop, EVBREAK_ALL);
}

static int64_t transport_request(void *ctx, const cJSON *msg)
{
    async_run *a = ctx;
    int64_t id = a->conn ? sa_client_async_request(a->conn, msg) : -1;
    if (id < 0)
        a->r->send_failed = 1;
    else
        a->r->last_send_ms = sa_client_core_now_ms();
    return id;
}

static int transport_send(void *ctx, const cJSON *msg)
{
    async_run *a = ctx;
    if (!a->conn || sa_client_async_send(a->conn, msg) != 0) {
        a->r->send_failed = 1;
        return -1;
    }
    a->r->last_send_ms = sa_client_core_now_ms();
    return 0;
}

static size_t transport_queued(void *ctx)
{
    async_run *a = ctx;
    return a->conn ? sa_client_async_queued(a->conn) : 0;
}

static void close_connection(async_run *a)
{
    if (!a->conn)
        return;
    sa_client_async_close(a->conn); /* safe from the library's callbacks */
    a->conn = NULL;
}

/* The current connection is lost, or an attempt failed. */
static void lost(async_run *a, const char *reason)
{
    if (a->phase == PHASE_OVER)
        return; /* e.g. the close that follows a refused hello */
    int was_ready = a->phase == PHASE_READY;
    close_connection(a);
    ev_idle_stop(a->loop, &a->pump_idle);
    if (!a->r->connected_once && !a->r->name_wait) {
        fprintf(stderr, "%s: %s\n", a->r->program, reason);
        end_run(a, SA_EXIT_FAILURE);
        return;
    }
    if (was_ready)
        a->r->ops->on_lost(a->r->job);
    int status;
    if (sa_runner_job_finished(a->r, &status)) {
        end_run(a, status);
        return;
    }
    int64_t delay = sa_runner_next_attempt(a->r, reason);
    if (delay < 0) {
        end_run(a, SA_EXIT_FAILURE);
        return;
    }
    a->phase = PHASE_WAITING;
    a->deadline_ms = sa_client_core_now_ms() + delay;
}

/* After every call into the job. */
static void settle(async_run *a)
{
    if (a->phase != PHASE_READY)
        return;
    int status;
    if (sa_runner_job_finished(a->r, &status)) {
        end_run(a, status);
        return;
    }
    if (a->r->send_failed)
        lost(a, "cannot send to the server");
}

static void schedule_pump(async_run *a)
{
    if (a->phase == PHASE_READY)
        ev_idle_start(a->loop, &a->pump_idle);
}

static void on_pump(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)revents;
    async_run *a = w->data;
    if (a->phase != PHASE_READY) {
        ev_idle_stop(loop, w);
        return;
    }
    enum sa_xfer_pump want = a->r->ops->pump(a->r->job);
    sa_runner_note_pump(a->r, want, sa_client_core_now_ms());
    /* BLOCKED: the drain callback schedules the next pump. */
    if (want != SA_XFER_AGAIN)
        ev_idle_stop(loop, w);
    settle(a);
}

static void on_drain(sa_client_async *conn, void *arg)
{
    (void)conn;
    schedule_pump(arg);
}

static void on_hello_reply(async_run *a, const cJSON *reply)
{
    switch (sa_runner_on_hello_reply(a->r, reply, sa_client_core_now_ms())) {
    case SA_RUNNER_HELLO_OK:
        if (sa_runner_tune_socket(a->r, sa_client_async_fd(a->conn), 0) != 0) {
            lost(a, "cannot set the socket's user timeout");
            break;
        }
        a->phase = PHASE_READY;
        a->r->send_failed = 0;
        a->r->ops->on_ready(a->r->job, &a->transport, reply);
        schedule_pump(a);
        settle(a);
        break;
    case SA_RUNNER_HELLO_RETRY:
        lost(a, "the name is still taken (by our previous connection, closing?)");
        break;
    case SA_RUNNER_HELLO_FATAL:
        end_run(a, SA_EXIT_FAILURE);
        break;
    }
}

static void on_frame(sa_client_async *conn, const cJSON *frame, void *arg)
{
    (void)conn;
    async_run *a = arg;
    if (a->phase == PHASE_HELLO) {
        if (sa_xfer_is_reply_to(frame, a->hello_id))
            on_hello_reply(a, frame);
        return;
    }
    if (a->phase != PHASE_READY || !sa_runner_on_frame(a->r, frame, sa_client_core_now_ms()))
        return;
    a->r->ops->on_frame(a->r->job, frame);
    schedule_pump(a);
    settle(a);
}

static void on_close(sa_client_async *conn, const char *reason, void *arg)
{
    async_run *a = arg;
    if (sa_client_async_cert_refused(conn)) {
        /* Not retried: another attempt meets the same certificate. */
        fprintf(stderr, "%s: %s\n", a->r->program, reason);
        close_connection(a);
        end_run(a, SA_EXIT_FAILURE);
        return;
    }
    lost(a, a->r->bye_reason[0] ? a->r->bye_reason : reason);
}

/* Connects and sends hello; failures go through lost(). */
static void attempt(async_run *a)
{
    char err[512];
    const sa_client_async_callbacks callbacks = {.on_frame = on_frame, .on_close = on_close};
    a->r->bye_reason[0] = '\0';
    a->conn = sa_client_async_connect_tls(a->loop, a->r->opt->host, a->r->opt->port,
                                          sa_tool_tls(a->r->opt), SA_RUNNER_CONNECT_TIMEOUT_MS,
                                          &callbacks, a, err, sizeof err);
    if (!a->conn) {
        lost(a, err);
        return;
    }
    sa_client_async_set_drain(a->conn, SA_XFER_QUEUE_LIMIT / 2, on_drain);
    cJSON *hello = sa_runner_hello(a->r); /* ours; deleted below */
    a->hello_id = hello ? sa_client_async_request(a->conn, hello) : -1;
    cJSON_Delete(hello);
    if (a->hello_id < 0) {
        lost(a, "cannot send hello");
        return;
    }
    a->phase = PHASE_HELLO;
    a->deadline_ms = sa_client_core_now_ms() + SA_RUNNER_HELLO_TIMEOUT_MS;
}

static void heartbeat(async_run *a, int64_t now)
{
    sa_runner_note_backlog(a->r, sa_client_async_fd(a->conn), sa_client_async_queued(a->conn),
                           now);
    int silent;
    if (sa_runner_ping_due(a->r, now, &silent)) {
        cJSON *ping = sa_runner_ping(a->r, now); /* ours; deleted below */
        if (!ping || sa_client_async_send(a->conn, ping) != 0) {
            cJSON_Delete(ping);
            lost(a, "cannot ping the server");
            return;
        }
        cJSON_Delete(ping);
    }
    if (silent) {
        char reason[96];
        snprintf(reason, sizeof reason, "no sign of life from the server for %lld s",
                 (long long)((now - a->r->last_alive_ms) / 1000));
        lost(a, reason);
    }
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    async_run *a = w->data;
    int64_t now = sa_client_core_now_ms();
    switch (a->phase) {
    case PHASE_WAITING:
        if (now >= a->deadline_ms)
            attempt(a);
        break;
    case PHASE_HELLO:
        if (now >= a->deadline_ms)
            lost(a, "no reply to hello");
        break;
    case PHASE_READY:
        heartbeat(a, now);
        break;
    case PHASE_OVER:
        break;
    }
    if (a->phase == PHASE_WAITING) {
        /* A signal may have finished the job while it waits. */
        int status;
        if (sa_runner_job_finished(a->r, &status))
            end_run(a, status);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    async_run *a = w->data;
    sa_runner_interrupted = 1;
    /* With no watcher left libev restores the default action: a second
     * signal ends the program. */
    ev_signal_stop(loop, &a->sigint_watcher);
    ev_signal_stop(loop, &a->sigterm_watcher);
    if (a->phase == PHASE_READY) {
        schedule_pump(a);
        settle(a);
    } else if (a->phase == PHASE_WAITING) {
        int status;
        if (sa_runner_job_finished(a->r, &status))
            end_run(a, status);
    }
}

int sa_run_async(sa_runner *r)
{
    async_run a;
    memset(&a, 0, sizeof a);
    a.r = r;
    a.phase = PHASE_WAITING;
    a.exit_status = SA_EXIT_FAILURE;
    a.transport = (sa_xfer_transport){transport_request, transport_send, transport_queued, &a};
    a.loop = ev_loop_new(EVFLAG_AUTO);
    if (!a.loop) {
        fprintf(stderr, "%s: cannot create an event loop\n", r->program);
        return SA_EXIT_FAILURE;
    }
    ev_idle_init(&a.pump_idle, on_pump);
    a.pump_idle.data = &a;
    ev_timer_init(&a.tick, on_tick, TICK_S, TICK_S);
    a.tick.data = &a;
    ev_timer_start(a.loop, &a.tick);
    if (r->ops->on_interrupt) {
        ev_signal_init(&a.sigint_watcher, on_signal, SIGINT);
        ev_signal_init(&a.sigterm_watcher, on_signal, SIGTERM);
        a.sigint_watcher.data = a.sigterm_watcher.data = &a;
        ev_signal_start(a.loop, &a.sigint_watcher);
        ev_signal_start(a.loop, &a.sigterm_watcher);
    }
    attempt(&a);
    if (a.phase != PHASE_OVER)
        ev_run(a.loop, 0);

    if (a.conn && a.phase == PHASE_OVER && a.exit_status == 0) {
        cJSON *bye = cJSON_CreateObject(); /* ours; deleted below */
        /* A courtesy, written as far as the socket takes it at close. */
        if (bye && cJSON_AddStringToObject(bye, "type", "bye") &&
            cJSON_AddStringToObject(bye, "reason", "quit"))
            (void)sa_client_async_send(a.conn, bye);
        cJSON_Delete(bye);
    }
    close_connection(&a);
    ev_idle_stop(a.loop, &a.pump_idle);
    ev_timer_stop(a.loop, &a.tick);
    if (r->ops->on_interrupt) {
        ev_signal_stop(a.loop, &a.sigint_watcher);
        ev_signal_stop(a.loop, &a.sigterm_watcher);
    }
    ev_loop_destroy(a.loop);
    return a.exit_status;
}
