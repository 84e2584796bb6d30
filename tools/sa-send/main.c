/*
 * sa-send: uploads files through a SyncAsync server to a user, a room, or
 * just the server. This file reads the command line and checks the files;
 * send_job.c does the uploads, the runner (sa_runner.h) the connection.
 */
#include <stdio.h>
#include <string.h>

#include "sa_runner.h"
#include "sa_tool_options.h"
#include "sa_upload.h"
#include "send_job.h"

#ifndef SA_VERSION
#error "SA_VERSION must be defined by the build"
#endif

static const char usage_text[] =
    "Usage: sa-send [OPTION]... [--to USER | --room ROOM] FILE...\n"
    "Uploads each FILE through a SyncAsync server, resuming an unfinished upload\n"
    "of the same file automatically, and prints one line per file on stdout:\n"
    "  FILE_ID SHA256 NAME\n"
    "\n"
    "Options:\n"
    "  --to USER        offer the files to USER (a connected user)\n"
    "  --room ROOM      offer the files to every other member of ROOM (one must\n"
    "                   be in it); with neither, only the sender may fetch them\n"
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
    "NAME is the file's base name (control characters dropped). A progress bar\n"
    "(bytes, rate, ETA) is drawn on stderr when stderr is a terminal.\n"
    "Every FILE is checked before connecting. The files are sent in order; the\n"
    "first failure stops sa-send (the files before it are delivered).\n"
    "\n"
    "Exit status: 0 when every file was delivered; 1 when the server cannot be\n"
    "reached, refuses hello or a file (\"sa-send: FILE: code: message\"), or the\n"
    "connection is lost beyond --retries; 2 on bad usage, including a FILE that\n"
    "is missing, unreadable or not a regular file.\n";

static const sa_tool_info info = {"sa-send", SA_VERSION, usage_text};

enum { OPT_TO = SA_OPT_FIRST_TOOL, OPT_ROOM };

static const struct option long_options[] = {
    SA_TOOL_COMMON_OPTIONS,
    {"to", required_argument, NULL, OPT_TO},
    {"room", required_argument, NULL, OPT_ROOM},
    {NULL, 0, NULL, 0},
};

typedef struct send_options {
    sa_tool_options common;
    const char *to, *room;
} send_options;

/* Returns SA_TOOL_CONTINUE to go on, or the exit status. */
static int parse_options(int argc, char **argv, send_options *opt)
{
    memset(opt, 0, sizeof *opt);
    sa_tool_options_init(&opt->common);
    int c;
    while ((c = getopt_long(argc, argv, SA_TOOL_SHORT_OPTIONS, long_options, NULL)) != -1) {
        int rc = sa_tool_options_handle(&opt->common, &info, c, optarg);
        if (rc != SA_TOOL_NOT_MINE) {
            if (rc != SA_TOOL_CONTINUE)
                return rc;
            continue;
        }
        if (!*optarg)
            return sa_tool_usage_error(&info, "--%s: must not be empty",
                                       c == OPT_TO ? "to" : "room");
        if (c == OPT_TO)
            opt->to = optarg;
        else
            opt->room = optarg;
    }
    if (opt->to && opt->room)
        return sa_tool_usage_error(&info, "--to and --room exclude each other");
    if (optind == argc)
        return sa_tool_usage_error(&info, "no FILE to send");
    return sa_tool_options_finish(&opt->common, &info);
}

/* Every file must be there and readable before anything is sent. */
static int check_files(char *const *paths, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        char err[256];
        sa_upload *u = sa_upload_new(paths[i], NULL, NULL, err, sizeof err);
        if (!u) {
            fprintf(stderr, "sa-send: %s: %s\n", paths[i], err);
            return SA_EXIT_USAGE;
        }
        sa_upload_free(u);
    }
    return SA_TOOL_CONTINUE;
}

int main(int argc, char **argv)
{
    if (sa_tool_open_standard_fds() != 0)
        return SA_EXIT_FAILURE; /* with no stderr to say why */
    send_options opt;
    int status = parse_options(argc, argv, &opt);
    if (status != SA_TOOL_CONTINUE)
        return status;
    char *const *paths = argv + optind;
    size_t count = (size_t)(argc - optind);
    status = check_files(paths, count);
    if (status != SA_TOOL_CONTINUE)
        return status;
    send_job job;
    send_job_init(&job, paths, count, opt.to, opt.room);
    status = sa_run_job(&opt.common, info.program, &send_job_ops, &job);
    send_job_free(&job);
    return status;
}
