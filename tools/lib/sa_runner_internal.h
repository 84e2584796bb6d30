/*
 * Internal to the runner (sa_runner.c and its two drivers): the state
 * both drivers share and the decisions they make alike.
 */
#ifndef SA_RUNNER_INTERNAL_H
#define SA_RUNNER_INTERNAL_H

#include <signal.h>
#include <stdint.h>

#include "sa_reconnect.h"
#include "sa_runner.h"

/* How long connecting and the hello reply may take. */
#define SA_RUNNER_CONNECT_TIMEOUT_MS 10000
#define SA_RUNNER_HELLO_TIMEOUT_MS 10000
/* How often a blocking driver looks at signals while it waits. */
#define SA_RUNNER_POLL_MS 250
/* Output backlog that excuses a silent server (see sa_runner_note_backlog):
 * more than pings and small requests, less than one file chunk. */
#define SA_RUNNER_BACKLOG_BYTES 16384

/* How long after the start a hello refused with name_taken is retried
 * (within --retries): the server may still be closing this user's previous
 * connection. */
#define SA_RUNNER_NAME_GRACE_MS 2000

typedef struct sa_runner {
    const sa_tool_options *opt;
    const char *program;
    const sa_job_ops *ops;
    void *job;

    int connected_once;   /* a hello succeeded at least once */
    int64_t started_ms;   /* when the run began */
    int name_wait;        /* the last hello got name_taken to retry: retried even
                             before a first success */
    sa_reconnect reconnect; /* backoff and the --retries budget */
    int64_t heartbeat_ms; /* the server's interval; 0: no pings */
    int64_t silence_ms;   /* give up on a server with no sign of life this long; 0: never */
    int64_t last_send_ms, last_recv_ms, last_ping_ms;
    /* The last sign that the server is there: a frame from it, or our
     * streaming to it (see sa_runner_note_backlog, sa_runner_note_pump). */
    int64_t last_alive_ms;
    int send_failed;      /* a send of the current connection failed */
    char bye_reason[64];  /* from the server's bye on this connection */
    int interrupt_handled; /* the job's on_interrupt was called */
} sa_runner;

/* Set when SIGINT or SIGTERM arrived (only while the job takes
 * interrupts): by a signal handler in the blocking driver, by a libev
 * signal watcher in the other. */
extern volatile sig_atomic_t sa_runner_interrupted;

int sa_run_sync(sa_runner *r);
int sa_run_async(sa_runner *r);

/* The hello request (caller deletes), NULL when out of memory. */
cJSON *sa_runner_hello(const sa_runner *r);

enum sa_runner_hello_outcome {
    SA_RUNNER_HELLO_OK,
    SA_RUNNER_HELLO_RETRY, /* name_taken after a reconnect: our old session lingers */
    SA_RUNNER_HELLO_FATAL  /* said why already */
};
/* Judges the hello reply; on success takes the heartbeat from it. */
enum sa_runner_hello_outcome sa_runner_on_hello_reply(sa_runner *r, const cJSON *reply,
                                                      int64_t now_ms);

/* The connection is lost or could not be made again (`reason`: human
 * text). Returns the milliseconds to wait before the next attempt, or -1
 * when the retries are used up (having said so). */
int64_t sa_runner_next_attempt(sa_runner *r, const char *reason);

/* Notes a frame from the server; 1 when it is for the job (not a pong). */
int sa_runner_on_frame(sa_runner *r, const cJSON *frame, int64_t now_ms);

/* After every call into the job: 1 when it is finished (*status set). */
int sa_runner_job_finished(sa_runner *r, int *status);

/* Looks at our output not yet acknowledged by the server: `queued` bytes
 * in the client library's queue plus what the kernel holds for socket
 * `fd`. A backlog of SA_RUNNER_BACKLOG_BYTES or more excuses the server's
 * silence (a few pings do not: they go through at once). Output that stops
 * moving is the kernel's to notice (see sa_runner_tune_socket). */
void sa_runner_note_backlog(sa_runner *r, int fd, size_t queued, int64_t now_ms);

/* The job's pump did work (`want` is not SA_XFER_IDLE): while we stream
 * data the server has nothing to say but pongs, and those wait behind the
 * data wherever it is buffered on the way, so that counts as a sign of
 * life too. */
void sa_runner_note_pump(sa_runner *r, enum sa_xfer_pump want, int64_t now_ms);

/* After hello: sa_tune_socket with the server's silence limit. */
int sa_runner_tune_socket(const sa_runner *r, int fd, int blocking);

/* Heartbeat duties: 1 when a ping is due now, either because we have
 * been silent for an interval, or because the server has (during an
 * upload it has nothing to say: a ping makes it answer); sets *silent when
 * there has been no sign of life from the server for too long. */
int sa_runner_ping_due(const sa_runner *r, int64_t now_ms, int *silent);
/* The ping to send (caller deletes; NULL when out of memory); notes the
 * time as that of our last ping and of our last frame sent. */
cJSON *sa_runner_ping(sa_runner *r, int64_t now_ms);
/* Milliseconds until the heartbeat next needs a look (at most cap). */
int64_t sa_runner_heartbeat_wait(const sa_runner *r, int64_t now_ms, int64_t cap);

/* For the blocking driver: installs the handler behind
 * sa_runner_interrupted when the job takes interrupts. Returns 0 or -1. */
int sa_runner_catch_interrupts(const sa_runner *r);

#endif
