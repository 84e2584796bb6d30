/*
 * sa-recv: downloads files offered through a SyncAsync server, checks
 * their SHA-256 and writes them safely into a folder. This file reads the
 * command line and opens the folder; recv_job.c does the downloads, the
 * runner (sa_runner.h) the connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "recv_job.h"
#include "sa_runner.h"
#include "sa_tool_options.h"

#ifndef SA_VERSION
#error "SA_VERSION must be defined by the build"
#endif

static const char usage_text[] =
    "Usage: sa-recv [OPTION]... [--dir DIR] [--id FILE_ID | --all | --wait] [--force]\n"
    "Downloads files offered to you through a SyncAsync server into DIR, checks\n"
    "each one's size and SHA-256, and prints one line per file on stdout:\n"
    "  SHA256 PATH\n"
    "\n"
    "Options:\n"
    "  --dir DIR        where the files go (default .); it must exist\n"
    "  --id FILE_ID     download that file\n"
    "  --all            download every file you may fetch (the default)\n"
    "  --wait           wait for offers and download each as it comes, until\n"
    "                   SIGINT or SIGTERM\n"
    "  --force          replace an existing file of the same name\n"
    "  --host H         server host name or address (default 127.0.0.1)\n"
    "  --port P         server port (default 5050)\n"
    "  --name NAME      user name (default $USER)\n"
    "  --token TOKEN    authentication token (default $SA_TOKEN)\n"
    "  --mode sync|async  blocking client core or event loop (default async)\n"
    "  --retries N      after a connection lost once hello succeeded, reconnect\n"
    "                   and resume, at most N attempts (default 10; counted\n"
    "                   again after 60 s connected; waits 0.2 s before the\n"
    "                   first attempt, doubling up to 5 s while they fail)\n"
    SA_TOOL_TLS_USAGE
    "  -h, --help       show this help and exit\n"
    "  --version        show the version and exit\n"
    "\n"
    "Each file is written to DIR/NAME.part, then renamed to DIR/NAME; an existing\n"
    "NAME is never replaced without --force: the file becomes \"NAME (1)\",\n"
    "\"NAME (2)\"... An existing NAME.part is resumed. A checksum mismatch deletes\n"
    "the .part. The server's name is not trusted: only its last path component\n"
    "counts (after '/' or '\\'), control characters are dropped, and when\n"
    "nothing usable is left the FILE_ID is the name. Nothing is written outside\n"
    "DIR and no symbolic link at NAME or NAME.part is ever followed (a .part that\n"
    "is a link is refused). A progress bar is drawn on stderr when it is a\n"
    "terminal. Files are fetched one at a time; the first failure stops sa-recv.\n"
    "SIGINT or SIGTERM lets the current file finish, then stops (a second one\n"
    "stops at once, keeping the .part for a later run).\n"
    "\n"
    "Exit status: 0 when every requested file was written (with --wait: when\n"
    "stopped by a signal); 1 when the server cannot be reached, refuses hello or\n"
    "a file, a checksum does not match, or the connection is lost beyond\n"
    "--retries; 2 on bad usage, including a DIR that is not a folder.\n";

static const sa_tool_info info = {"sa-recv", SA_VERSION, usage_text};

enum { OPT_DIR = SA_OPT_FIRST_TOOL, OPT_ID, OPT_ALL, OPT_WAIT, OPT_FORCE };

static const struct option long_options[] = {
    SA_TOOL_COMMON_OPTIONS,
    {"dir", required_argument, NULL, OPT_DIR},
    {"id", required_argument, NULL, OPT_ID},
    {"all", no_argument, NULL, OPT_ALL},
    {"wait", no_argument, NULL, OPT_WAIT},
    {"force", no_argument, NULL, OPT_FORCE},
    {NULL, 0, NULL, 0},
};

typedef struct recv_options {
    sa_tool_options common;
    const char *dir;
    const char *id;
    enum recv_mode mode;
    int modes_given;
    int force;
} recv_options;

/* Returns SA_TOOL_CONTINUE to go on, or the exit status. */
static int parse_options(int argc, char **argv, recv_options *opt)
{
    memset(opt, 0, sizeof *opt);
    sa_tool_options_init(&opt->common);
    opt->dir = ".";
    opt->mode = RECV_ALL;
    int c;
    while ((c = getopt_long(argc, argv, SA_TOOL_SHORT_OPTIONS, long_options, NULL)) != -1) {
        int rc = sa_tool_options_handle(&opt->common, &info, c, optarg);
        if (rc != SA_TOOL_NOT_MINE) {
            if (rc != SA_TOOL_CONTINUE)
                return rc;
            continue;
        }
        switch (c) {
        case OPT_DIR:
            if (!*optarg)
                return sa_tool_usage_error(&info, "--dir: must not be empty");
            opt->dir = optarg;
            break;
        case OPT_ID:
            if (!*optarg)
                return sa_tool_usage_error(&info, "--id: must not be empty");
            opt->id = optarg;
            opt->mode = RECV_ONE;
            opt->modes_given++;
            break;
        case OPT_ALL:
            opt->mode = RECV_ALL;
            opt->modes_given++;
            break;
        case OPT_WAIT:
            opt->mode = RECV_WAIT;
            opt->modes_given++;
            break;
        case OPT_FORCE:
            opt->force = 1;
            break;
        }
    }
    if (opt->modes_given > 1)
        return sa_tool_usage_error(&info, "--id, --all and --wait exclude each other");
    if (optind < argc)
        return sa_tool_usage_error(&info, "unexpected argument '%s'", argv[optind]);
    return sa_tool_options_finish(&opt->common, &info);
}

int main(int argc, char **argv)
{
    if (sa_tool_open_standard_fds() != 0)
        return SA_EXIT_FAILURE; /* with no stderr to say why */
    recv_options opt;
    int status = parse_options(argc, argv, &opt);
    if (status != SA_TOOL_CONTINUE)
        return status;
    /* The folder is the user's choice: a symbolic link to it is fine. */
    int dirfd = open(opt.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        fprintf(stderr, "sa-recv: --dir %s: %s\n", opt.dir, strerror(errno));
        return SA_EXIT_USAGE;
    }
    recv_job job;
    recv_job_init(&job, opt.mode, opt.id, dirfd, opt.dir, opt.force);
    status = sa_run_job(&opt.common, info.program, &recv_job_ops, &job);
    recv_job_free(&job);
    (void)close(dirfd); /* only read through */
    return status;
}
