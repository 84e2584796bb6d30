#include "send_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sa_client_core.h" /* sa_client_core_now_ms */
#include "sa_display.h"

void send_job_init(send_job *job, char *const *paths, size_t count, const char *to,
                   const char *room)
{
    memset(job, 0, sizeof *job);
    job->paths = paths;
    job->count = count;
    job->to = to;
    job->room = room;
}

void send_job_free(send_job *job)
{
    sa_upload_free(job->upload);
    job->upload = NULL;
}

static void finish(send_job *job, int status)
{
    job->finished = 1;
    job->status = status;
}

static void fail_file(send_job *job, const char *path, const char *reason)
{
    sa_progress_break(&job->progress);
    fprintf(stderr, "sa-send: %s: %s\n", path, reason);
    finish(job, 1);
}

/* Opens the next file, or finishes when none is left. */
static void open_next(send_job *job)
{
    if (job->next == job->count) {
        finish(job, 0);
        return;
    }
    const char *path = job->paths[job->next++];
    char err[256];
    job->upload = sa_upload_new(path, job->to, job->room, err, sizeof err);
    if (!job->upload) {
        fail_file(job, path, err);
        return;
    }
    job->progress_started = 0;
    if (job->online)
        sa_upload_start(job->upload, &job->transport, job->max_frame);
}

/* "FILE_ID SHA256 NAME"; the id is the server's, so shown escaped. */
static int print_result(const sa_upload *u)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add_untrusted(&line, sa_upload_file_id(u));
    strbuf_add(&line, " ");
    strbuf_add(&line, sa_upload_sha256(u));
    strbuf_add(&line, " ");
    strbuf_add(&line, sa_upload_name(u));
    int ok = !line.failed && printf("%s\n", line.data) >= 0 && fflush(stdout) == 0;
    strbuf_free(&line);
    return ok ? 0 : -1;
}

/* Acts on the state of the current upload after any event. */
static void advance(send_job *job)
{
    sa_upload *u = job->upload;
    if (!u)
        return;
    int64_t now = sa_client_core_now_ms();
    if (sa_upload_sending(u)) {
        if (!job->progress_started) {
            sa_progress_init(&job->progress, stderr, sa_upload_name(u), sa_upload_size(u),
                             sa_upload_resumed_at(u), now);
            job->progress_started = 1;
        }
        sa_progress_update(&job->progress, sa_upload_sent(u), now);
    }
    switch (sa_upload_state(u)) {
    case SA_XFER_ACTIVE:
        return;
    case SA_XFER_FAILED:
        fail_file(job, sa_upload_path(u), sa_upload_error(u));
        return;
    case SA_XFER_DONE:
        sa_progress_finish(&job->progress, sa_upload_size(u), now);
        if (print_result(u) != 0) {
            fprintf(stderr, "sa-send: cannot write to stdout\n");
            finish(job, 1);
            return;
        }
        sa_upload_free(u);
        job->upload = NULL;
        open_next(job);
        return;
    }
}

static void on_ready(void *arg, const sa_xfer_transport *t, const cJSON *hello_reply)
{
    send_job *job = arg;
    job->transport = *t;
    job->online = 1;
    job->max_frame = sa_hello_max_frame(hello_reply);
    if (job->upload)
        sa_upload_start(job->upload, &job->transport, job->max_frame);
    else if (!job->finished)
        open_next(job);
}

static void on_frame(void *arg, const cJSON *frame)
{
    send_job *job = arg;
    if (job->upload && sa_upload_on_frame(job->upload, frame))
        advance(job);
}

static enum sa_xfer_pump pump(void *arg)
{
    send_job *job = arg;
    if (!job->upload)
        return SA_XFER_IDLE;
    size_t opened = job->next;
    enum sa_xfer_pump want = sa_upload_pump(job->upload);
    advance(job);
    /* When that finished the file and opened the next one, start on it. */
    if (job->next != opened)
        return job->upload ? SA_XFER_AGAIN : SA_XFER_IDLE;
    return want;
}

static void on_lost(void *arg)
{
    send_job *job = arg;
    job->online = 0;
    sa_progress_break(&job->progress);
    job->progress_started = 0;
    if (job->upload)
        sa_upload_stop(job->upload);
}

static int finished(void *arg, int *status)
{
    send_job *job = arg;
    *status = job->status;
    return job->finished;
}

const sa_job_ops send_job_ops = {
    .on_ready = on_ready,
    .on_frame = on_frame,
    .pump = pump,
    .on_lost = on_lost,
    .finished = finished,
    .on_interrupt = NULL, /* interrupted: die; a new run resumes the upload */
};
