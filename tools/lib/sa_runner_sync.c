/*
 * The runner's blocking driver (--mode sync): one thread, the blocking
 * client API. Between two pieces of the job's work it reads what the
 * server sent without waiting; when the job has nothing to do it waits
 * for frames in slices of SA_RUNNER_POLL_MS, so that signals and the
 * heartbeat are looked at in time.
 *
 * Ownership: the driver owns each connection it makes and closes it
 * before making the next one or returning.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sa_client.h"
#include "sa_client_core.h"
#include "sa_runner_internal.h"

typedef struct sync_link {
    sa_runner *runner;
    sa_client *conn;
} sync_link;

static int64_t transport_request(void *ctx, const cJSON *msg)
{
    sync_link *link = ctx;
    int64_t id = sa_client_send_request(link->conn, msg);
    if (id < 0) {
        link->runner->send_failed = 1;
        return -1;
    }
    link->runner->last_send_ms = sa_client_core_now_ms();
    return id;
}

static int transport_send(void *ctx, const cJSON *msg)
{
    sync_link *link = ctx;
    if (sa_client_send(link->conn, msg) != SA_CLIENT_OK) {
        link->runner->send_failed = 1;
        return -1;
    }
    link->runner->last_send_ms = sa_client_core_now_ms();
    return 0;
}

/* Sleeps ms milliseconds, or less when a signal the job takes arrives. */
static void nap(sa_runner *r, int64_t ms)
{
    int64_t deadline = sa_client_core_now_ms() + ms;
    for (;;) {
        int64_t left = deadline - sa_client_core_now_ms();
        if (left <= 0 || (sa_runner_interrupted && r->ops->on_interrupt))
            return;
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (long)(left % 1000) * 1000000};
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
            return;
    }
}

enum serve_end { SERVE_DONE, SERVE_LOST };

/* Serves one connection after its hello until the job is finished or the
 * connection is lost (why: in reason). */
static enum serve_end serve(sa_runner *r, sa_client *conn, int *status, char *reason,
                            size_t reasonlen)
{
    for (;;) {
        if (sa_runner_job_finished(r, status))
            return SERVE_DONE;
        enum sa_xfer_pump want = r->ops->pump(r->job);
        if (sa_runner_job_finished(r, status))
            return SERVE_DONE;
        if (r->send_failed) {
            snprintf(reason, reasonlen, "%s", sa_client_error(conn));
            return SERVE_LOST;
        }
        int64_t now = sa_client_core_now_ms();
        sa_runner_note_pump(r, want, now);
        sa_runner_note_backlog(r, sa_client_fd(conn), 0, now);
        int silent;
        if (sa_runner_ping_due(r, now, &silent)) {
            cJSON *ping = sa_runner_ping(r, now); /* ours; deleted below */
            if (!ping || sa_client_send(conn, ping) != SA_CLIENT_OK) {
                cJSON_Delete(ping);
                snprintf(reason, reasonlen, "cannot ping the server: %s", sa_client_error(conn));
                return SERVE_LOST;
            }
            cJSON_Delete(ping);
        }
        if (silent) {
            snprintf(reason, reasonlen, "no sign of life from the server for %lld s",
                     (long long)((now - r->last_alive_ms) / 1000));
            return SERVE_LOST;
        }
        int timeout = want == SA_XFER_AGAIN
                          ? 0
                          : (int)sa_runner_heartbeat_wait(r, now, SA_RUNNER_POLL_MS);
        cJSON *frame = NULL;
        int rc = sa_client_recv(conn, &frame, timeout);
        if (rc == SA_CLIENT_TIMEOUT)
            continue;
        if (rc != SA_CLIENT_OK) {
            snprintf(reason, reasonlen, "%s", r->bye_reason[0] ? r->bye_reason
                                                                : sa_client_error(conn));
            return SERVE_LOST;
        }
        if (sa_runner_on_frame(r, frame, sa_client_core_now_ms()))
            r->ops->on_frame(r->job, frame);
        cJSON_Delete(frame);
    }
}

/* Connects and says hello. Returns the connection and its hello reply
 * (*reply; the caller deletes it), or NULL with the reason in `reason`
 * and *fatal set when retrying makes no sense (said why already). */
static sa_client *open_session(sa_runner *r, cJSON **reply, int *fatal, char *reason,
                               size_t reasonlen)
{
    *fatal = 0;
    int refused = 0;
    sa_client *conn = sa_client_connect_tls(r->opt->host, r->opt->port, sa_tool_tls(r->opt),
                                            SA_RUNNER_CONNECT_TIMEOUT_MS, reason, reasonlen,
                                            &refused);
    if (!conn) {
        if (refused) {
            fprintf(stderr, "%s: %s\n", r->program, reason);
            *fatal = 1;
        }
        return NULL;
    }
    cJSON *hello = sa_runner_hello(r); /* ours; deleted below */
    if (!hello) {
        snprintf(reason, reasonlen, "out of memory");
        sa_client_close(conn);
        return NULL;
    }
    int rc = sa_client_request(conn, hello, reply, SA_RUNNER_HELLO_TIMEOUT_MS);
    cJSON_Delete(hello);
    if (rc != SA_CLIENT_OK) {
        snprintf(reason, reasonlen, "%s",
                 rc == SA_CLIENT_TIMEOUT ? "no reply to hello" : sa_client_error(conn));
        sa_client_close(conn);
        return NULL;
    }
    enum sa_runner_hello_outcome outcome =
        sa_runner_on_hello_reply(r, *reply, sa_client_core_now_ms());
    if (outcome != SA_RUNNER_HELLO_OK) {
        *fatal = outcome == SA_RUNNER_HELLO_FATAL;
        snprintf(reason, reasonlen, "the name is still taken (by our previous connection, closing?)");
        cJSON_Delete(*reply);
        *reply = NULL;
        sa_client_close(conn);
        return NULL;
    }
    if (sa_runner_tune_socket(r, sa_client_fd(conn), 1) != 0) {
        snprintf(reason, reasonlen, "cannot set socket timeouts: %s", strerror(errno));
        cJSON_Delete(*reply);
        *reply = NULL;
        sa_client_close(conn);
        return NULL;
    }
    return conn;
}

/* Says bye (a courtesy: the connection closes right after) and closes. */
static void close_politely(sa_client *conn)
{
    cJSON *bye = cJSON_CreateObject(); /* ours; deleted below */
    if (bye && cJSON_AddStringToObject(bye, "type", "bye") &&
        cJSON_AddStringToObject(bye, "reason", "quit"))
        (void)sa_client_send(conn, bye); /* the server may be gone already */
    cJSON_Delete(bye);
    sa_client_close(conn);
}

int sa_run_sync(sa_runner *r)
{
    if (sa_runner_catch_interrupts(r) != 0) {
        fprintf(stderr, "%s: cannot catch signals: %s\n", r->program, strerror(errno));
        return SA_EXIT_FAILURE;
    }
    sync_link link = {.runner = r};
    const sa_xfer_transport transport = {transport_request, transport_send, NULL, &link};
    char reason[512];
    for (;;) {
        cJSON *reply = NULL;
        int fatal;
        link.conn = open_session(r, &reply, &fatal, reason, sizeof reason);
        if (!link.conn) {
            if (fatal)
                return SA_EXIT_FAILURE;
            if (!r->connected_once && !r->name_wait) {
                fprintf(stderr, "%s: %s\n", r->program, reason);
                return SA_EXIT_FAILURE;
            }
        } else {
            r->send_failed = 0;
            r->bye_reason[0] = '\0';
            r->ops->on_ready(r->job, &transport, reply);
            cJSON_Delete(reply);
            int status;
            if (serve(r, link.conn, &status, reason, sizeof reason) == SERVE_DONE) {
                close_politely(link.conn);
                return status;
            }
            sa_client_close(link.conn);
            link.conn = NULL;
            r->ops->on_lost(r->job);
            if (sa_runner_job_finished(r, &status))
                return status;
        }
        int64_t delay = sa_runner_next_attempt(r, reason);
        if (delay < 0)
            return SA_EXIT_FAILURE;
        nap(r, delay);
        int status;
        if (sa_runner_job_finished(r, &status))
            return status;
    }
}
