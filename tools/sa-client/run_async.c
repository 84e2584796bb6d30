/*
 * --mode async: one libev loop watches stdin, the socket (through the
 * library's libev front end) and two timers: the heartbeat, and the ui's
 * deadline (hello reply, quit). File transfers run in an idle watcher, a
 * piece at a time (ui_pump), so the chat never waits for them; an upload
 * that filled the write queue is resumed by the library's drain callback.
 * After every event, sync_watchers() makes the watchers match the ui; it
 * also closes a lost connection and makes the next one when the ui asks
 * (the connect itself blocks, up to SA_CLIENT_CONNECT_TIMEOUT_MS).
 *
 * Ownership: run_async owns the loop, the connection (NULL between two)
 * and the stdin buffer, and frees them before returning.
 */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers.h"
#include "sa_client.h"
#include "sa_reconnect.h"

typedef struct async_run {
    struct ev_loop *loop;
    sa_client_async *conn; /* NULL between connections */
    ui ui;
    ev_io stdin_watcher;
    ev_timer heartbeat_timer;
    ev_timer deadline_timer;
    ev_idle pump_idle; /* active while the ui wants ui_pump */
    int64_t armed_deadline_ms; /* what deadline_timer is set for; -1: stopped */
    int stdin_open;
    char *stdin_buffer; /* SA_CLIENT_STDIN_CHUNK bytes */
} async_run;

static int64_t transport_request(void *ctx, const cJSON *msg)
{
    async_run *run = ctx;
    return run->conn ? sa_client_async_request(run->conn, msg) : -1;
}

static int transport_send(void *ctx, const cJSON *msg)
{
    async_run *run = ctx;
    return run->conn ? sa_client_async_send(run->conn, msg) : -1;
}

static size_t transport_queued(void *ctx)
{
    async_run *run = ctx;
    return run->conn ? sa_client_async_queued(run->conn) : 0;
}

static int transport_tune(void *ctx, int64_t silence_ms)
{
    async_run *run = ctx;
    return run->conn ? sa_tune_socket(sa_client_async_fd(run->conn), silence_ms, 0) : 0;
}

static void on_frame(sa_client_async *conn, const cJSON *frame, void *arg);
static void on_close(sa_client_async *conn, const char *reason, void *arg);
static void on_drain(sa_client_async *conn, void *arg);

/* Connects and says hello, or tells the ui why not. Returns 0, or -1
 * when even the first connection failed (said why). */
static int open_connection(async_run *run)
{
    const sa_tool_options *common = &run->ui.opt->common;
    char err[512];
    const sa_client_async_callbacks callbacks = {.on_frame = on_frame, .on_close = on_close};
    run->conn = sa_client_async_connect_tls(run->loop, common->host, common->port,
                                            sa_tool_tls(common), SA_CLIENT_CONNECT_TIMEOUT_MS,
                                            &callbacks, run, err, sizeof err);
    if (!run->conn) {
        if (!run->ui.connected_once) {
            fprintf(stderr, "sa-client: %s\n", err);
            return -1;
        }
        ui_on_connect_failed(&run->ui, err, ui_now_ms());
        return 0;
    }
    sa_client_async_set_drain(run->conn, SA_XFER_QUEUE_LIMIT / 2, on_drain);
    ui_start(&run->ui, ui_now_ms());
    return 0;
}

/* Closes a connection the ui is done with, and makes the next one when it
 * is due. */
static void manage_connection(async_run *run)
{
    for (;;) {
        if (run->conn && !ui_connected(&run->ui)) {
            sa_client_async_close(run->conn); /* safe from the library's callbacks */
            run->conn = NULL;
        }
        if (!ui_wants_connect(&run->ui))
            return;
        (void)open_connection(run); /* not the first: the ui counts a failure */
    }
}

static void sync_watchers(async_run *run)
{
    ui *u = &run->ui;
    manage_connection(run);
    if (u->phase == UI_DONE) {
        ev_io_stop(run->loop, &run->stdin_watcher);
        ev_timer_stop(run->loop, &run->heartbeat_timer);
        ev_timer_stop(run->loop, &run->deadline_timer);
        ev_idle_stop(run->loop, &run->pump_idle);
        ev_break(run->loop, EVBREAK_ALL);
        return;
    }
    if (ui_wants_pump(u))
        ev_idle_start(run->loop, &run->pump_idle);
    else
        ev_idle_stop(run->loop, &run->pump_idle);
    if (run->stdin_open && ui_wants_input(u))
        ev_io_start(run->loop, &run->stdin_watcher);
    else
        ev_io_stop(run->loop, &run->stdin_watcher);
    if (!ev_is_active(&run->heartbeat_timer)) {
        enum ui_phase before = u->phase;
        int64_t delay = ui_heartbeat(u, ui_now_ms());
        if (delay >= 0) {
            ev_timer_set(&run->heartbeat_timer, (double)delay / 1000.0, 0.0);
            ev_timer_start(run->loop, &run->heartbeat_timer);
        } else if (u->phase != before) {
            /* The server fell silent: the connection is lost. */
            sync_watchers(run);
            return;
        }
    }
    int64_t deadline = ui_deadline(u);
    if (deadline != run->armed_deadline_ms) {
        ev_timer_stop(run->loop, &run->deadline_timer);
        run->armed_deadline_ms = deadline;
        if (deadline >= 0) {
            int64_t left = deadline - ui_now_ms();
            ev_timer_set(&run->deadline_timer, left > 0 ? (double)left / 1000.0 : 0.0, 0.0);
            ev_timer_start(run->loop, &run->deadline_timer);
        }
    }
}

static void on_frame(sa_client_async *conn, const cJSON *frame, void *arg)
{
    (void)conn;
    async_run *run = arg;
    ui_on_frame(&run->ui, frame, ui_now_ms());
    sync_watchers(run);
}

static void on_close(sa_client_async *conn, const char *reason, void *arg)
{
    async_run *run = arg;
    if (sa_client_async_cert_refused(conn))
        ui_on_fatal(&run->ui, reason); /* another attempt meets the same certificate */
    else
        ui_on_connection_lost(&run->ui, reason);
    sync_watchers(run);
}

static void on_drain(sa_client_async *conn, void *arg)
{
    (void)conn;
    async_run *run = arg;
    ui_on_drain(&run->ui);
    sync_watchers(run);
}

static void on_pump(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)revents;
    async_run *run = w->data;
    ui_pump(&run->ui, ui_now_ms());
    sync_watchers(run);
}

static void on_stdin(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    async_run *run = w->data;
    ssize_t got = read(STDIN_FILENO, run->stdin_buffer, SA_CLIENT_STDIN_CHUNK);
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (got > 0) {
        ui_on_input(&run->ui, run->stdin_buffer, (size_t)got, ui_now_ms());
    } else {
        if (got < 0)
            fprintf(stderr, "sa-client: cannot read stdin: %s\n", strerror(errno));
        run->stdin_open = 0;
        ui_on_input_end(&run->ui, ui_now_ms());
    }
    sync_watchers(run);
}

static void on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    async_run *run = w->data;
    /* Stopped already (one-shot); sync_watchers re-arms it for the delay
     * ui_heartbeat reports, sending a ping first when one is due. */
    sync_watchers(run);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    async_run *run = w->data;
    /* libev counts from the loop's cached time, so the timer may fire a
     * little before the ui's deadline: forget it so that sync_watchers
     * arms it again for whatever remains. */
    run->armed_deadline_ms = -1;
    ui_check_deadline(&run->ui, ui_now_ms());
    sync_watchers(run);
}

int run_async(const client_options *opt)
{
    async_run run;
    memset(&run, 0, sizeof run);
    run.stdin_open = 1;
    run.stdin_buffer = malloc(SA_CLIENT_STDIN_CHUNK);
    run.loop = ev_loop_new(EVFLAG_AUTO);
    if (!run.stdin_buffer || !run.loop) {
        fputs(run.loop ? "sa-client: out of memory\n" : "sa-client: cannot create an event loop\n",
              stderr);
        free(run.stdin_buffer);
        if (run.loop)
            ev_loop_destroy(run.loop);
        return 1;
    }
    const ui_transport transport = {transport_request, transport_send, transport_queued,
                                    transport_tune, &run};
    ui_init(&run.ui, opt, &transport);
    ev_io_init(&run.stdin_watcher, on_stdin, STDIN_FILENO, EV_READ);
    ev_init(&run.heartbeat_timer, on_heartbeat);
    ev_init(&run.deadline_timer, on_deadline);
    ev_idle_init(&run.pump_idle, on_pump);
    run.armed_deadline_ms = -1;
    run.stdin_watcher.data = &run;
    run.heartbeat_timer.data = &run;
    run.deadline_timer.data = &run;
    run.pump_idle.data = &run;

    if (open_connection(&run) != 0) {
        ui_free(&run.ui);
        free(run.stdin_buffer);
        ev_loop_destroy(run.loop);
        return 1;
    }
    sync_watchers(&run);
    if (run.ui.phase != UI_DONE)
        ev_run(run.loop, 0);

    int status = run.ui.exit_status;
    if (run.conn)
        sa_client_async_close(run.conn);
    ui_free(&run.ui);
    free(run.stdin_buffer);
    ev_loop_destroy(run.loop);
    return status;
}
