#include "recv_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "sa_client_core.h" /* sa_client_core_now_ms */
#include "sa_display.h"

void recv_job_init(recv_job *job, enum recv_mode mode, const char *wanted_id, int dirfd,
                   const char *dir, int force)
{
    memset(job, 0, sizeof *job);
    job->mode = mode;
    job->wanted_id = wanted_id;
    job->dirfd = dirfd;
    job->dir = dir;
    job->force = force;
    job->files_id = -1;
}

static void free_entry(recv_entry *e)
{
    free(e->file_id);
    free(e->name);
    free(e);
}

void recv_job_free(recv_job *job)
{
    while (job->queue_head) {
        recv_entry *e = job->queue_head;
        job->queue_head = e->next;
        free_entry(e);
    }
    job->queue_tail = NULL;
    sa_download_free(job->download);
    job->download = NULL;
}

static void finish(recv_job *job, int status)
{
    if (job->finished)
        return;
    job->finished = 1;
    job->status = status;
}

/* "sa-recv: LABEL: reason", the label escaped (it is the server's). */
static void fail(recv_job *job, const char *label, const char *reason)
{
    sa_progress_break(&job->progress);
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "sa-recv: ");
    strbuf_add_untrusted(&line, label);
    strbuf_add(&line, ": ");
    strbuf_add(&line, reason);
    fprintf(stderr, "%s\n", line.failed ? "sa-recv: out of memory" : line.data);
    strbuf_free(&line);
    finish(job, 1);
}

static int is_queued(const recv_job *job, const char *file_id)
{
    if (job->download && strcmp(sa_download_file_id(job->download), file_id) == 0)
        return 1;
    for (const recv_entry *e = job->queue_head; e; e = e->next) {
        if (strcmp(e->file_id, file_id) == 0)
            return 1;
    }
    return 0;
}

/* Queues a file from a `files` entry or a file_offer (`info` may be NULL
 * when nothing is known of it but its id). */
static void enqueue(recv_job *job, const char *file_id, const cJSON *info)
{
    if (is_queued(job, file_id))
        return;
    recv_entry *e = calloc(1, sizeof *e);
    const char *name = sa_xfer_string(info, "name");
    if (e) {
        e->file_id = strdup(file_id);
        e->name = name ? strdup(name) : NULL;
    }
    if (!e || !e->file_id || (name && !e->name)) {
        if (e)
            free_entry(e);
        fail(job, file_id, "out of memory");
        return;
    }
    if (!info || sa_json_get_size(info, "size", &e->size) != 0)
        e->size = 0;
    if (job->queue_tail)
        job->queue_tail->next = e;
    else
        job->queue_head = e;
    job->queue_tail = e;
}

static void request_files(recv_job *job)
{
    cJSON *files = cJSON_CreateObject(); /* ours; deleted below */
    if (!files || !cJSON_AddStringToObject(files, "type", "files")) {
        cJSON_Delete(files);
        fail(job, "files", "out of memory");
        return;
    }
    /* On failure the connection is going away; on_ready asks again. */
    job->files_id = job->transport.request(job->transport.ctx, files);
    cJSON_Delete(files);
}

static void on_files_reply(recv_job *job, const cJSON *reply)
{
    job->files_id = -1;
    if (!sa_xfer_is_type(reply, "ok")) {
        char *text = sa_xfer_error_text(reply); /* ours; freed below */
        fail(job, "files", text ? text : "error reply");
        free(text);
        return;
    }
    job->listed = 1;
    const cJSON *entry;
    const cJSON *found = NULL;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(reply, "files"))
    {
        const char *file_id = sa_xfer_string(entry, "file_id");
        if (!file_id || !*file_id)
            continue;
        if (job->mode == RECV_ALL)
            enqueue(job, file_id, entry);
        else if (!found && strcmp(file_id, job->wanted_id) == 0)
            found = entry;
    }
    /* Not listed: the server answers the file_get (no_such_file, mostly). */
    if (job->mode == RECV_ONE)
        enqueue(job, job->wanted_id, found);
}

/* Starts on the next queued file, if any and if allowed. */
static void start_next(recv_job *job)
{
    if (job->download || job->finished || job->interrupted || !job->queue_head)
        return;
    recv_entry *e = job->queue_head;
    job->queue_head = e->next;
    if (!job->queue_head)
        job->queue_tail = NULL;
    const sa_download_params params = {
        .dirfd = job->dirfd,
        .dir_display = job->dir,
        .file_id = e->file_id,
        .offered_name = e->name,
        .offered_size = e->size,
        .force = job->force,
    };
    char err[256];
    job->download = sa_download_new(&params, err, sizeof err);
    if (!job->download)
        fail(job, e->file_id, err);
    else if (job->online)
        sa_download_start(job->download, &job->transport);
    job->progress_started = 0;
    job->started++;
    free_entry(e);
}

static int print_result(const sa_download *d)
{
    return printf("%s %s\n", sa_download_sha256(d), sa_download_path(d)) >= 0 &&
                   fflush(stdout) == 0
               ? 0
               : -1;
}

/* Acts on the state of the current download after any event. */
static void advance(recv_job *job)
{
    sa_download *d = job->download;
    if (d) {
        int64_t now = sa_client_core_now_ms();
        if (sa_download_receiving(d)) {
            if (!job->progress_started) {
                sa_progress_init(&job->progress, stderr, sa_download_name(d),
                                 sa_download_size(d), sa_download_resumed_at(d), now);
                job->progress_started = 1;
            }
            sa_progress_update(&job->progress, sa_download_received(d), now);
        }
        switch (sa_download_state(d)) {
        case SA_XFER_ACTIVE:
            return;
        case SA_XFER_FAILED:
            fail(job, sa_download_file_id(d), sa_download_error(d));
            return;
        case SA_XFER_DONE:
            sa_progress_finish(&job->progress, sa_download_size(d), now);
            if (print_result(d) != 0) {
                fprintf(stderr, "sa-recv: cannot write to stdout\n");
                finish(job, 1);
                return;
            }
            sa_download_free(d);
            job->download = NULL;
            break;
        }
    }
    start_next(job);
}

static void on_ready(void *arg, const sa_xfer_transport *t, const cJSON *hello_reply)
{
    (void)hello_reply;
    recv_job *job = arg;
    job->transport = *t;
    job->online = 1;
    if (job->mode != RECV_WAIT && !job->listed)
        request_files(job);
    if (job->download)
        sa_download_start(job->download, &job->transport);
}

static void on_frame(void *arg, const cJSON *frame)
{
    recv_job *job = arg;
    if (job->finished)
        return;
    if (sa_xfer_is_reply_to(frame, job->files_id)) {
        on_files_reply(job, frame);
    } else if (job->mode == RECV_WAIT && sa_xfer_is_type(frame, "file_offer")) {
        const char *file_id = sa_xfer_string(frame, "file_id");
        if (file_id && *file_id)
            enqueue(job, file_id, frame);
    } else if (!job->download || !sa_download_on_frame(job->download, frame)) {
        return;
    }
    advance(job);
}

static enum sa_xfer_pump pump(void *arg)
{
    recv_job *job = arg;
    if (job->finished || !job->download)
        return SA_XFER_IDLE;
    unsigned long started = job->started;
    enum sa_xfer_pump want = sa_download_pump(job->download);
    advance(job);
    /* When that finished the file and began the next one, go on with it. */
    if (job->started != started)
        return job->download ? SA_XFER_AGAIN : SA_XFER_IDLE;
    return want;
}

static void on_lost(void *arg)
{
    recv_job *job = arg;
    job->online = 0;
    job->files_id = -1;
    sa_progress_break(&job->progress);
    job->progress_started = 0;
    if (job->download)
        sa_download_stop(job->download);
}

static int finished(void *arg, int *status)
{
    recv_job *job = arg;
    if (!job->finished) {
        if (job->interrupted && !job->download)
            finish(job, job->mode == RECV_WAIT || (job->listed && !job->queue_head) ? 0 : 1);
        else if (job->mode != RECV_WAIT && job->listed && !job->download && !job->queue_head)
            finish(job, 0);
    }
    *status = job->status;
    return job->finished;
}

static void on_interrupt(void *arg)
{
    recv_job *job = arg;
    job->interrupted = 1;
    if (job->download) {
        sa_progress_break(&job->progress);
        fprintf(stderr, "sa-recv: stopping after the current file (interrupt again to stop "
                        "now; a new run resumes it)\n");
    }
}

const sa_job_ops recv_job_ops = {
    .on_ready = on_ready,
    .on_frame = on_frame,
    .pump = pump,
    .on_lost = on_lost,
    .finished = finished,
    .on_interrupt = on_interrupt,
};
