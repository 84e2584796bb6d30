/*
 * --mode sync: the blocking client API with two threads.
 *   - The main thread sends hello, then reads stdin lines and sends them;
 *     it waits in poll() on stdin and on a wake pipe, with the ui's
 *     deadline (hello reply, quit, reconnect backoff) as timeout. It also
 *     runs the file transfers, a piece (ui_pump) between two looks at
 *     stdin: an upload's chunks are written with blocking sends, so a line
 *     typed meanwhile waits at most for one piece (about 1 MiB) to be
 *     written. And it owns the connection: when the ui has lost it, the
 *     main thread stops the receiving thread and closes it, and when the
 *     ui wants the next one it connects (blocking, up to
 *     SA_CLIENT_CONNECT_TIMEOUT_MS) and starts a new receiving thread.
 *   - The receiving thread loops in sa_client_recv, hands each frame to
 *     the ui and sends heartbeat pings when recv times out; it ends with
 *     its connection.
 * Every ui call happens under `lock`. A request is sent while the lock is
 * held, so its id is in the ui's pending list before the receiving thread
 * can process the reply. (Such a send blocks only while the socket buffer
 * is full, and the server keeps reading meanwhile, so the receiving thread
 * waits for the lock only briefly.) The receiving thread writes the wake pipe when
 * the ui's phase or its appetite for input changes.
 *
 * Ownership: run_sync owns the connection (NULL between two), the pipe,
 * the mutex and the stdin buffer; it joins the receiving thread before
 * closing the connection it serves.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers.h"
#include "sa_client.h"
#include "sa_reconnect.h"

typedef struct sync_run {
    sa_client *conn;      /* replaced by the main thread only, under lock */
    ui ui;
    pthread_mutex_t lock; /* guards ui and conn */
    int wake_pipe[2];     /* [0] main reads, [1] the receiving thread writes */
    pthread_t receiver;
    int receiver_running; /* the main thread's to look at */
} sync_run;

static int64_t transport_request(void *ctx, const cJSON *msg)
{
    sync_run *run = ctx;
    return run->conn ? sa_client_send_request(run->conn, msg) : -1;
}

static int transport_send(void *ctx, const cJSON *msg)
{
    sync_run *run = ctx;
    return run->conn && sa_client_send(run->conn, msg) == SA_CLIENT_OK ? 0 : -1;
}

static int transport_tune(void *ctx, int64_t silence_ms)
{
    sync_run *run = ctx;
    return run->conn ? sa_tune_socket(sa_client_fd(run->conn), silence_ms, 1) : 0;
}

static void wake_main(sync_run *run)
{
    static const char byte = 1;
    /* A full pipe (EAGAIN) already holds a wake-up for the main thread. */
    if (write(run->wake_pipe[1], &byte, 1) < 0 && errno != EAGAIN)
        fprintf(stderr, "sa-client: cannot wake the main thread: %s\n", strerror(errno));
}

static void drain_wake_pipe(sync_run *run)
{
    char bytes[64];
    while (read(run->wake_pipe[0], bytes, sizeof bytes) > 0)
        continue;
}

/* The state the main thread waits on; a change is worth a wake-up. */
static int main_thread_view(const ui *u)
{
    return (int)u->phase * 4 + ui_wants_input(u) * 2 + ui_wants_pump(u);
}

static void *receive_loop(void *arg)
{
    sync_run *run = arg;
    /* The main thread replaces run->conn only after joining this thread. */
    pthread_mutex_lock(&run->lock);
    sa_client *conn = run->conn;
    pthread_mutex_unlock(&run->lock);
    for (;;) {
        pthread_mutex_lock(&run->lock);
        int before = main_thread_view(&run->ui);
        int64_t timeout = ui_heartbeat(&run->ui, ui_now_ms());
        int over = !ui_connected(&run->ui);
        int changed = main_thread_view(&run->ui) != before;
        pthread_mutex_unlock(&run->lock);
        if (changed)
            wake_main(run);
        if (over)
            break;
        cJSON *frame = NULL;
        int status = sa_client_recv(conn, &frame, timeout > INT32_MAX ? INT32_MAX
                                                                      : (int)timeout);
        if (status == SA_CLIENT_TIMEOUT)
            continue;
        pthread_mutex_lock(&run->lock);
        before = main_thread_view(&run->ui);
        if (status == SA_CLIENT_OK)
            ui_on_frame(&run->ui, frame, ui_now_ms());
        else
            ui_on_connection_lost(&run->ui, sa_client_error(conn));
        changed = main_thread_view(&run->ui) != before;
        pthread_mutex_unlock(&run->lock);
        cJSON_Delete(frame);
        if (changed)
            wake_main(run);
        if (status != SA_CLIENT_OK)
            break;
    }
    return NULL;
}

/* With the lock held and run->conn set: starts its receiving thread, or
 * has the ui treat the connection as lost. */
static void start_receiver(sync_run *run)
{
    int rc = pthread_create(&run->receiver, NULL, receive_loop, run);
    if (rc == 0) {
        run->receiver_running = 1;
        return;
    }
    fprintf(stderr, "sa-client: cannot start the receiving thread: %s\n", strerror(rc));
    ui_on_connection_lost(&run->ui, "cannot start the receiving thread");
}

/* Without the lock: stops the receiving thread and closes the connection. */
static void drop_connection(sync_run *run)
{
    if (run->receiver_running) {
        /* Unblocks the receiving thread's recv if it is still waiting. */
        sa_client_shutdown(run->conn);
        int rc = pthread_join(run->receiver, NULL);
        if (rc != 0)
            fprintf(stderr, "sa-client: cannot join the receiving thread: %s\n", strerror(rc));
        run->receiver_running = 0;
    }
    pthread_mutex_lock(&run->lock);
    sa_client *conn = run->conn;
    run->conn = NULL;
    pthread_mutex_unlock(&run->lock);
    if (conn)
        sa_client_close(conn);
}

/* Connects for the ui (the lock is not held meanwhile: no receiving
 * thread runs) and says hello. Returns 0, or -1 when even the first
 * connection failed (said why). */
static int open_connection(sync_run *run)
{
    const sa_tool_options *common = &run->ui.opt->common;
    char err[512];
    int refused = 0;
    sa_client *conn = sa_client_connect_tls(common->host, common->port, sa_tool_tls(common),
                                            SA_CLIENT_CONNECT_TIMEOUT_MS, err, sizeof err,
                                            &refused);
    pthread_mutex_lock(&run->lock);
    if (!conn && !run->ui.connected_once) {
        pthread_mutex_unlock(&run->lock);
        fprintf(stderr, "sa-client: %s\n", err);
        return -1;
    }
    if (!conn && refused) {
        ui_on_fatal(&run->ui, err); /* another attempt meets the same certificate */
    } else if (!conn) {
        ui_on_connect_failed(&run->ui, err, ui_now_ms());
    } else {
        run->conn = conn;
        ui_start(&run->ui, ui_now_ms());
        if (ui_connected(&run->ui))
            start_receiver(run);
    }
    pthread_mutex_unlock(&run->lock);
    return 0;
}

/* Serves stdin and the connection's comings and goings until the ui is
 * done. */
static void main_loop(sync_run *run, char *buffer)
{
    int stdin_open = 1;
    for (;;) {
        pthread_mutex_lock(&run->lock);
        enum ui_phase phase = run->ui.phase;
        int lost = !ui_connected(&run->ui) && run->conn != NULL;
        int reconnect = ui_wants_connect(&run->ui);
        int read_stdin = stdin_open && ui_wants_input(&run->ui);
        int pump = ui_wants_pump(&run->ui);
        int64_t deadline = ui_deadline(&run->ui);
        pthread_mutex_unlock(&run->lock);
        if (phase == UI_DONE)
            return;
        if (lost) {
            drop_connection(run);
            continue;
        }
        if (reconnect) {
            (void)open_connection(run); /* not the first: the ui counts a failure */
            continue;
        }

        int timeout = -1;
        if (pump) {
            timeout = 0;
        } else if (deadline >= 0) {
            int64_t left = deadline - ui_now_ms();
            timeout = left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd fds[2] = {{.fd = run->wake_pipe[0], .events = POLLIN},
                                {.fd = read_stdin ? STDIN_FILENO : -1, .events = POLLIN}};
        int ready = poll(fds, 2, timeout);
        if (ready < 0 && errno != EINTR) {
            fprintf(stderr, "sa-client: poll: %s\n", strerror(errno));
            pthread_mutex_lock(&run->lock);
            ui_on_fatal(&run->ui, "cannot wait for input");
            pthread_mutex_unlock(&run->lock);
            return;
        }
        if (ready > 0 && fds[0].revents)
            drain_wake_pipe(run);
        if (ready > 0 && fds[1].revents) {
            ssize_t got = read(STDIN_FILENO, buffer, SA_CLIENT_STDIN_CHUNK);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                fprintf(stderr, "sa-client: cannot read stdin: %s\n", strerror(errno));
            pthread_mutex_lock(&run->lock);
            if (got > 0) {
                ui_on_input(&run->ui, buffer, (size_t)got, ui_now_ms());
            } else {
                stdin_open = 0;
                ui_on_input_end(&run->ui, ui_now_ms());
            }
            pthread_mutex_unlock(&run->lock);
        }
        pthread_mutex_lock(&run->lock);
        if (pump && ui_wants_pump(&run->ui))
            ui_pump(&run->ui, ui_now_ms());
        ui_check_deadline(&run->ui, ui_now_ms());
        pthread_mutex_unlock(&run->lock);
    }
}

int run_sync(const client_options *opt)
{
    sync_run run;
    memset(&run, 0, sizeof run);
    char *buffer = malloc(SA_CLIENT_STDIN_CHUNK); /* ours; freed below */
    if (!buffer) {
        fputs("sa-client: out of memory\n", stderr);
        return 1;
    }
    if (pipe2(run.wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        fprintf(stderr, "sa-client: cannot create a pipe: %s\n", strerror(errno));
        free(buffer);
        return 1;
    }
    int rc = pthread_mutex_init(&run.lock, NULL);
    if (rc != 0) {
        fprintf(stderr, "sa-client: cannot create a mutex: %s\n", strerror(rc));
        (void)close(run.wake_pipe[0]);
        (void)close(run.wake_pipe[1]);
        free(buffer);
        return 1;
    }
    const ui_transport transport = {transport_request, transport_send, NULL, transport_tune,
                                    &run};
    ui_init(&run.ui, opt, &transport);
    if (open_connection(&run) == 0)
        main_loop(&run, buffer);
    else
        run.ui.exit_status = 1;
    drop_connection(&run);
    int status = run.ui.exit_status;
    ui_free(&run.ui);
    pthread_mutex_destroy(&run.lock);
    free(buffer);
    (void)close(run.wake_pipe[0]); /* releases the descriptor whatever it reports */
    (void)close(run.wake_pipe[1]);
    return status;
}
