/*
 * Runs a file tool's job (sa-send, sa-recv) against the server, with the
 * blocking client (--mode sync) or the libev one (--mode async); the job
 * itself is the same state machine either way.
 *
 * The runner connects, says hello, hands the job a transport and every
 * frame, pumps it as it asks (sa_xfer.h), pings an idle server, and notices
 * a silent one. A connection lost after a successful hello is retried as
 * sa_reconnect.h says (backoff, the --retries budget; a name still taken
 * by our old connection counts as a failed attempt): the job is told
 * (on_lost) and gets a new transport (on_ready).
 * A first connection that fails, a server certificate refused (on any
 * attempt: --tls, sa_tool_tls), or any error reply to hello, ends the run
 * with exit status 1 at once.
 *
 * Messages go to stderr as "PROGRAM: ...". The job prints its own results.
 */
#ifndef SA_RUNNER_H
#define SA_RUNNER_H

#include <cjson/cJSON.h>

#include "sa_tool_options.h"
#include "sa_xfer.h"

typedef struct sa_job_ops {
    /* hello succeeded (again, after a reconnect). `t` is valid until
     * on_lost; `hello_reply` during the call only. */
    void (*on_ready)(void *job, const sa_xfer_transport *t, const cJSON *hello_reply);
    /* Every frame from the server except pongs (valid during the call). */
    void (*on_frame)(void *job, const cJSON *frame);
    /* One bounded piece of work (sa_xfer.h). */
    enum sa_xfer_pump (*pump)(void *job);
    /* The connection is gone; no transport until the next on_ready. */
    void (*on_lost)(void *job);
    /* 1 once the job is over, with its exit status in *status. Checked
     * after every call into the job. */
    int (*finished)(void *job, int *status);
    /* NULL: SIGINT and SIGTERM keep their default action. Otherwise the
     * first of them calls this (from the loop, not the signal handler) and
     * a second one ends the program the default way. */
    void (*on_interrupt)(void *job);
} sa_job_ops;

/* Runs `job` until it is finished or the connection is beyond saving.
 * `program` is the tool's name, for messages and for hello's "client".
 * Returns the exit status: the job's, or 1. */
int sa_run_job(const sa_tool_options *opt, const char *program, const sa_job_ops *ops,
               void *job);

/* The max_frame a hello reply announces (the protocol's default when it
 * announces none that makes sense). */
uint32_t sa_hello_max_frame(const cJSON *hello_reply);

#endif
