/*
 * files: upload and download throughput of one file of random bytes, each
 * including its SHA-256 checks (PROTOCOL.md §8), with the client library's
 * own transfer state machines (sa_upload.h, sa_download.h) run by the same
 * runner as sa-send and sa-recv (sa_runner.h), so the figures are those a
 * user of the tools sees.
 *
 * Upload: sa_upload hashes the file, sends file_put and the chunks, and
 * checks the server's size and SHA-256 at file_end (the server hashed what
 * it stored). Download: sa_download writes NAME.part, hashes what it
 * writes and checks it against the server's SHA-256 at file_end; this
 * workload then also compares the two hashes and the sizes. The file and
 * the download live in a temporary folder removed at the end.
 *
 * Ownership: files_run owns the folder, the file and the two transfers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "report.h"
#include "sa_download.h"
#include "sa_runner.h"
#include "sa_upload.h"
#include "workloads.h"

#define FILE_NAME "sa-bench-files.bin"
#define WRITE_BLOCK (1024 * 1024)

/* One transfer (an upload or a download) as a runner job. */
typedef struct files_job {
    sa_upload *upload;     /* borrowed from files_run */
    sa_download *download; /* borrowed from files_run */
    int finished, status;
    char engine[16]; /* the hello reply's, for the summary */
} files_job;

static enum sa_xfer_state job_state(const files_job *job)
{
    return job->upload ? sa_upload_state(job->upload) : sa_download_state(job->download);
}

static void check_done(files_job *job)
{
    enum sa_xfer_state state = job_state(job);
    if (state == SA_XFER_ACTIVE)
        return;
    if (state == SA_XFER_FAILED)
        fprintf(stderr, "sa-bench: %s failed: %s\n", job->upload ? "upload" : "download",
                job->upload ? sa_upload_error(job->upload) : sa_download_error(job->download));
    job->finished = 1;
    job->status = state == SA_XFER_DONE ? 0 : 1;
}

static void on_ready(void *arg, const sa_xfer_transport *t, const cJSON *hello_reply)
{
    files_job *job = arg;
    const char *engine = sa_xfer_string(hello_reply, "engine");
    snprintf(job->engine, sizeof job->engine, "%s", engine ? engine : "");
    if (job->upload)
        sa_upload_start(job->upload, t, sa_hello_max_frame(hello_reply));
    else
        sa_download_start(job->download, t);
}

static void on_frame(void *arg, const cJSON *frame)
{
    files_job *job = arg;
    int mine = job->upload ? sa_upload_on_frame(job->upload, frame)
                           : sa_download_on_frame(job->download, frame);
    if (mine)
        check_done(job);
}

static enum sa_xfer_pump pump(void *arg)
{
    files_job *job = arg;
    enum sa_xfer_pump want =
        job->upload ? sa_upload_pump(job->upload) : sa_download_pump(job->download);
    check_done(job);
    return job->finished ? SA_XFER_IDLE : want;
}

static void on_lost(void *arg)
{
    files_job *job = arg;
    if (job->upload)
        sa_upload_stop(job->upload);
    else
        sa_download_stop(job->download);
}

static int finished(void *arg, int *status)
{
    files_job *job = arg;
    *status = job->status;
    return job->finished;
}

static const sa_job_ops files_job_ops = {
    .on_ready = on_ready,
    .on_frame = on_frame,
    .pump = pump,
    .on_lost = on_lost,
    .finished = finished,
    .on_interrupt = NULL,
};

/* Writes `bytes` pseudo-random bytes (xorshift64*, from `seed`) to a new
 * file at `path`. */
static int write_random_file(const char *path, uint64_t bytes, uint64_t seed)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    uint64_t *block = malloc(WRITE_BLOCK);
    if (fd < 0 || !block) {
        fprintf(stderr, "sa-bench: %s: %s\n", path, fd < 0 ? strerror(errno) : "out of memory");
        free(block);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    uint64_t x = seed | 1;
    int rc = 0;
    for (uint64_t done = 0; done < bytes && rc == 0;) {
        for (size_t i = 0; i < WRITE_BLOCK / sizeof *block; i++) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            block[i] = x * UINT64_C(2685821657736338717);
        }
        size_t want = bytes - done < WRITE_BLOCK ? (size_t)(bytes - done) : WRITE_BLOCK;
        for (size_t off = 0; off < want;) {
            ssize_t n = write(fd, (const char *)block + off, want - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                fprintf(stderr, "sa-bench: %s: %s\n", path, strerror(errno));
                rc = -1;
                break;
            }
            off += (size_t)n;
        }
        done += want;
    }
    free(block);
    if (close(fd) != 0 && rc == 0) {
        fprintf(stderr, "sa-bench: %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* Runs one transfer; its seconds in *seconds. Returns the exit status. */
static int run_transfer(const sa_tool_options *topt, files_job *job, double *seconds)
{
    uint64_t start = bench_now_ns();
    int status = sa_run_job(topt, "sa-bench", &files_job_ops, job);
    *seconds = (double)(bench_now_ns() - start) / 1e9;
    return status;
}

/* Everything a files run makes; all owned, released by files_run_cleanup. */
typedef struct files_run {
    char *dir;   /* the temporary folder; NULL until made */
    char *path;  /* the file uploaded, in dir */
    char *down;  /* the download folder, dir/down */
    int dirfd;   /* down, opened; -1 until then */
    sa_upload *upload;
    sa_download *download;
} files_run;

/* Removes `name` unless it is not there. */
static void remove_at(int dirfd, const char *name, int flags)
{
    if (unlinkat(dirfd, name, flags) != 0 && errno != ENOENT)
        fprintf(stderr, "sa-bench: cannot remove %s: %s\n", name, strerror(errno));
}

/* Frees the transfers and removes what they left: the download (or its
 * .part), the file, the folders. */
static void files_run_cleanup(files_run *r)
{
    if (r->dirfd >= 0) {
        const char *name = r->download ? sa_download_name(r->download) : NULL;
        char *part = NULL;
        if (name) {
            remove_at(r->dirfd, name, 0);
            if (asprintf(&part, "%s.part", name) >= 0)
                remove_at(r->dirfd, part, 0);
            else
                part = NULL;
        }
        free(part);
        close(r->dirfd);
    }
    sa_upload_free(r->upload);
    sa_download_free(r->download);
    if (r->path)
        remove_at(AT_FDCWD, r->path, 0);
    if (r->down)
        remove_at(AT_FDCWD, r->down, AT_REMOVEDIR);
    if (r->dir)
        remove_at(AT_FDCWD, r->dir, AT_REMOVEDIR);
    free(r->path);
    free(r->down);
    free(r->dir);
}

/* "DIR/NAME", or NULL when out of memory. */
static char *path_join(const char *dir, const char *name)
{
    char *out;
    return asprintf(&out, "%s/%s", dir, name) < 0 ? NULL : out;
}

static void report_transfer(cJSON *summary, const char *what, uint64_t bytes, double seconds)
{
    char key[64];
    snprintf(key, sizeof key, "%s_seconds", what);
    report_num(summary, key, seconds, 3);
    snprintf(key, sizeof key, "%s_mib_per_s", what);
    report_num(summary, key, seconds > 0 ? (double)bytes / 1048576.0 / seconds : 0, 1);
}

int run_files(const bench_options *opt, cJSON *summary)
{
    files_run r = {.dirfd = -1};
    uint64_t bytes = opt->file_mib * UINT64_C(1048576);
    int status = 1;
    const char *tmp = getenv("TMPDIR");
    char *pattern = path_join(tmp && *tmp ? tmp : "/tmp", "sa-bench.XXXXXX");
    if (!pattern || !mkdtemp(pattern)) {
        fprintf(stderr, "sa-bench: cannot make a temporary folder: %s\n",
                pattern ? strerror(errno) : "out of memory");
        free(pattern);
        return 1;
    }
    r.dir = pattern;
    char err[256];
    r.path = path_join(r.dir, FILE_NAME);
    char *down = path_join(r.dir, "down");
    if (!r.path || !down) {
        free(down);
        fprintf(stderr, "sa-bench: out of memory\n");
        goto out;
    }
    if (mkdir(down, 0700) != 0) {
        fprintf(stderr, "sa-bench: %s: %s\n", down, strerror(errno));
        free(down);
        goto out;
    }
    r.down = down;
    if ((r.dirfd = open(r.down, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "sa-bench: %s: %s\n", r.down, strerror(errno));
        goto out;
    }
    if (write_random_file(r.path, bytes, opt->seed) != 0)
        goto out;

    sa_tool_options topt;
    sa_tool_options_init(&topt);
    topt.host = opt->host;
    topt.port = opt->port;
    char name[32];
    snprintf(name, sizeof name, "bench%08x", (unsigned)(opt->seed & 0xffffffffu));
    topt.name = name;
    /* Only for the download's hello, which may come before the server has
     * closed the upload's connection (name_taken): a transfer that had to
     * reconnect is not a clean measurement, and says so on stderr. */
    topt.retries = 3;
    topt.sync_mode = opt->blocking_client;

    if (!(r.upload = sa_upload_new(r.path, NULL, NULL, err, sizeof err))) {
        fprintf(stderr, "sa-bench: %s\n", err);
        goto out;
    }
    files_job up = {.upload = r.upload};
    double up_seconds, down_seconds;
    if (run_transfer(&topt, &up, &up_seconds) != 0)
        goto out;

    sa_download_params params = {
        .dirfd = r.dirfd,
        .dir_display = r.down,
        .file_id = sa_upload_file_id(r.upload),
        .force = 1,
    };
    if (!(r.download = sa_download_new(&params, err, sizeof err))) {
        fprintf(stderr, "sa-bench: %s\n", err);
        goto out;
    }
    files_job dl = {.download = r.download};
    if (run_transfer(&topt, &dl, &down_seconds) != 0)
        goto out;
    if (sa_download_size(r.download) != bytes ||
        strcmp(sa_download_sha256(r.download), sa_upload_sha256(r.upload)) != 0) {
        fprintf(stderr, "sa-bench: the download (%llu bytes, SHA-256 %s) differs from the "
                        "upload (%llu bytes, %s)\n",
                (unsigned long long)sa_download_size(r.download), sa_download_sha256(r.download),
                (unsigned long long)bytes, sa_upload_sha256(r.upload));
        goto out;
    }
    report_str(summary, "engine", up.engine);
    report_num(summary, "file_mib", (double)opt->file_mib, 0);
    report_str(summary, "sha256", sa_upload_sha256(r.upload));
    report_transfer(summary, "upload", bytes, up_seconds);
    report_transfer(summary, "download", bytes, down_seconds);
    if (!opt->json)
        printf("files against syncasync: %llu MiB, SHA-256 %s verified both ways\n"
               "  upload   %.3f s  %.1f MiB/s\n  download %.3f s  %.1f MiB/s\n",
               (unsigned long long)opt->file_mib, sa_upload_sha256(r.upload), up_seconds,
               (double)bytes / 1048576.0 / up_seconds, down_seconds,
               (double)bytes / 1048576.0 / down_seconds);
    status = 0;
out:
    files_run_cleanup(&r);
    return status;
}
