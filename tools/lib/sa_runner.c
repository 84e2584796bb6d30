#include "sa_runner_internal.h"

#include <linux/sockios.h> /* SIOCOUTQ */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "codec.h"
#include "sa_client_core.h"
#include "sa_display.h"

volatile sig_atomic_t sa_runner_interrupted;

int sa_run_job(const sa_tool_options *opt, const char *program, const sa_job_ops *ops,
               void *job)
{
    sa_codec_keep_heap();
    sa_runner r = {.opt = opt, .program = program, .ops = ops, .job = job,
                   .started_ms = sa_client_core_now_ms()};
    sa_reconnect_init(&r.reconnect, opt->retries);
    return opt->sync_mode ? sa_run_sync(&r) : sa_run_async(&r);
}

uint32_t sa_hello_max_frame(const cJSON *hello_reply)
{
    const cJSON *max_frame = cJSON_GetObjectItemCaseSensitive(hello_reply, "max_frame");
    if (cJSON_IsNumber(max_frame) && max_frame->valuedouble >= 256 &&
        max_frame->valuedouble <= (double)UINT32_MAX)
        return (uint32_t)max_frame->valuedouble;
    return SA_DEFAULT_MAX_FRAME;
}

cJSON *sa_runner_hello(const sa_runner *r)
{
    char client[64];
    snprintf(client, sizeof client, "%s/1.0", r->program);
    cJSON *hello = cJSON_CreateObject();
    if (!hello || !cJSON_AddStringToObject(hello, "type", "hello") ||
        !cJSON_AddStringToObject(hello, "name", r->opt->name) ||
        (r->opt->token && !cJSON_AddStringToObject(hello, "token", r->opt->token)) ||
        !cJSON_AddStringToObject(hello, "client", client) ||
        !cJSON_AddNumberToObject(hello, "proto", 1)) {
        cJSON_Delete(hello);
        return NULL;
    }
    return hello;
}

enum sa_runner_hello_outcome sa_runner_on_hello_reply(sa_runner *r, const cJSON *reply,
                                                      int64_t now_ms)
{
    const char *type = sa_xfer_string(reply, "type");
    if (type && strcmp(type, "ok") == 0) {
        sa_heartbeat_limits(reply, &r->heartbeat_ms, &r->silence_ms);
        sa_reconnect_connected(&r->reconnect, now_ms);
        r->last_send_ms = r->last_recv_ms = r->last_ping_ms = r->last_alive_ms = now_ms;
        r->connected_once = 1;
        r->name_wait = 0;
        return SA_RUNNER_HELLO_OK;
    }
    /* After a lost connection the server may not have noticed yet; and at
     * the start the name may be held by this user's previous run, whose
     * connection the server has not finished closing (sa-send, then at
     * once sa-recv). Past the grace it is someone else's. */
    const char *code = sa_xfer_string(reply, "code");
    if (code && strcmp(code, "name_taken") == 0 &&
        (r->connected_once || now_ms - r->started_ms < SA_RUNNER_NAME_GRACE_MS)) {
        r->name_wait = 1;
        return SA_RUNNER_HELLO_RETRY;
    }
    r->name_wait = 0;
    char *text = sa_xfer_error_text(reply); /* ours; freed below */
    fprintf(stderr, "%s: hello refused: %s\n", r->program, text ? text : "(out of memory)");
    free(text);
    return SA_RUNNER_HELLO_FATAL;
}

int64_t sa_runner_next_attempt(sa_runner *r, const char *reason)
{
    return sa_reconnect_next(&r->reconnect, r->program, reason, sa_client_core_now_ms());
}

void sa_runner_note_backlog(sa_runner *r, int fd, size_t queued, int64_t now_ms)
{
    int in_kernel = 0;
    /* Unknown (an error) counts as none: only the frames then tell. */
    if (ioctl(fd, SIOCOUTQ, &in_kernel) != 0 || in_kernel < 0)
        in_kernel = 0;
    if (queued + (size_t)in_kernel >= SA_RUNNER_BACKLOG_BYTES)
        r->last_alive_ms = now_ms;
}

void sa_runner_note_pump(sa_runner *r, enum sa_xfer_pump want, int64_t now_ms)
{
    if (want != SA_XFER_IDLE)
        r->last_alive_ms = now_ms;
}

int sa_runner_tune_socket(const sa_runner *r, int fd, int blocking)
{
    return sa_tune_socket(fd, r->silence_ms, blocking);
}

int sa_runner_on_frame(sa_runner *r, const cJSON *frame, int64_t now_ms)
{
    r->last_recv_ms = r->last_alive_ms = now_ms;
    if (sa_xfer_is_type(frame, "pong"))
        return 0;
    if (sa_xfer_is_type(frame, "bye")) {
        /* Shown when the connection then ends; only the server's word. */
        strbuf reason;
        strbuf_init(&reason);
        strbuf_add(&reason, "the server said bye: ");
        strbuf_add_untrusted(&reason, sa_xfer_string(frame, "reason"));
        snprintf(r->bye_reason, sizeof r->bye_reason, "%s",
                 reason.failed ? "the server said bye" : reason.data);
        strbuf_free(&reason);
    }
    return 1;
}

int sa_runner_job_finished(sa_runner *r, int *status)
{
    if (sa_runner_interrupted && !r->interrupt_handled && r->ops->on_interrupt) {
        r->interrupt_handled = 1;
        r->ops->on_interrupt(r->job);
    }
    return r->ops->finished(r->job, status);
}

int sa_runner_ping_due(const sa_runner *r, int64_t now_ms, int *silent)
{
    *silent = r->silence_ms > 0 && now_ms - r->last_alive_ms >= r->silence_ms;
    if (r->heartbeat_ms == 0)
        return 0;
    return now_ms - r->last_send_ms >= r->heartbeat_ms ||
           (now_ms - r->last_recv_ms >= r->heartbeat_ms &&
            now_ms - r->last_ping_ms >= r->heartbeat_ms);
}

cJSON *sa_runner_ping(sa_runner *r, int64_t now_ms)
{
    struct timespec ts;
    double now = 0;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
        now = (double)ts.tv_sec * 1000 + (double)(ts.tv_nsec / 1000000);
    cJSON *ping = cJSON_CreateObject();
    if (!ping || !cJSON_AddStringToObject(ping, "type", "ping") ||
        !cJSON_AddNumberToObject(ping, "ts", now)) {
        cJSON_Delete(ping);
        return NULL;
    }
    r->last_ping_ms = r->last_send_ms = now_ms;
    return ping;
}

/* The earlier of `wait` and the time until `due`. */
static int64_t sooner(int64_t wait, int64_t due)
{
    return due < wait ? due : wait;
}

int64_t sa_runner_heartbeat_wait(const sa_runner *r, int64_t now_ms, int64_t cap)
{
    int64_t wait = cap;
    if (r->heartbeat_ms > 0) {
        wait = sooner(wait, r->last_send_ms + r->heartbeat_ms - now_ms);
        int64_t heard = r->last_recv_ms > r->last_ping_ms ? r->last_recv_ms : r->last_ping_ms;
        wait = sooner(wait, heard + r->heartbeat_ms - now_ms);
    }
    if (r->silence_ms > 0)
        wait = sooner(wait, r->last_alive_ms + r->silence_ms - now_ms);
    return wait < 0 ? 0 : wait;
}

static void on_interrupt_signal(int signo)
{
    (void)signo;
    sa_runner_interrupted = 1;
}

int sa_runner_catch_interrupts(const sa_runner *r)
{
    if (!r->ops->on_interrupt)
        return 0;
    /* SA_RESETHAND: the second signal takes the default action and ends
     * the program; no SA_RESTART, so a blocking wait returns early. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt_signal;
    sa.sa_flags = SA_RESETHAND;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    return 0;
}
