/*
 * sa-send's job for the runner (sa_runner.h): uploads the files one after
 * the other, prints "FILE_ID SHA256 NAME" for each, and stops at the first
 * failure ("sa-send: FILE: reason" on stderr, exit status 1).
 */
#ifndef SA_SEND_JOB_H
#define SA_SEND_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "sa_progress.h"
#include "sa_runner.h"
#include "sa_upload.h"

typedef struct send_job {
    char *const *paths; /* borrowed (argv) */
    size_t count;
    size_t next;        /* index of the next file to open */
    const char *to, *room; /* borrowed; at most one set */
    sa_upload *upload;  /* ours: the file being sent; NULL between files */
    sa_xfer_transport transport;
    int online;
    uint32_t max_frame;
    sa_progress progress;
    int progress_started;
    int finished;
    int status;
} send_job;

extern const sa_job_ops send_job_ops;

void send_job_init(send_job *job, char *const *paths, size_t count, const char *to,
                   const char *room);
void send_job_free(send_job *job);

#endif
