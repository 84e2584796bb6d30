/*
 * sa-recv's job for the runner (sa_runner.h): finds the files to fetch
 * (one by id, all that `files` lists, or each file_offer as it comes),
 * downloads them one at a time (sa_download.h), prints "SHA256 PATH" for
 * each, and stops at the first failure ("sa-recv: FILE_ID: reason" on
 * stderr, exit status 1). SIGINT or SIGTERM lets the current file finish,
 * then ends the run: exit status 0 when nothing requested is left undone
 * (always, with --wait), else 1; a second signal ends it at once.
 */
#ifndef SA_RECV_JOB_H
#define SA_RECV_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "sa_download.h"
#include "sa_progress.h"
#include "sa_runner.h"

enum recv_mode {
    RECV_ONE,  /* --id FILE_ID */
    RECV_ALL,  /* --all */
    RECV_WAIT  /* --wait */
};

/* A file to fetch, with what is known of it beforehand. */
typedef struct recv_entry {
    struct recv_entry *next;
    char *file_id; /* ours */
    char *name;    /* ours; NULL when not known */
    uint64_t size;
} recv_entry;

typedef struct recv_job {
    enum recv_mode mode;
    const char *wanted_id; /* RECV_ONE; borrowed */
    int dirfd;             /* borrowed: the download folder */
    const char *dir;       /* borrowed: as given, for printed paths */
    int force;
    recv_entry *queue_head, *queue_tail; /* ours */
    int listed;            /* the `files` reply came (RECV_ONE, RECV_ALL) */
    int64_t files_id;      /* the pending `files` request; -1: none */
    sa_download *download; /* ours: the file being fetched */
    unsigned long started; /* downloads begun so far */
    sa_xfer_transport transport;
    int online;
    sa_progress progress;
    int progress_started;
    int interrupted;
    int finished;
    int status;
} recv_job;

extern const sa_job_ops recv_job_ops;

void recv_job_init(recv_job *job, enum recv_mode mode, const char *wanted_id, int dirfd,
                   const char *dir, int force);
void recv_job_free(recv_job *job);

#endif
