/*
 * sa-client: interactive line-oriented chat client. This file parses the
 * command line and hands over to one of the two drivers; everything the
 * user sees is made in ui.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers.h"

#ifndef SA_VERSION
#error "SA_VERSION must be defined by the build"
#endif

#define EXIT_USAGE 2

static const char usage_text[] =
    "Usage: sa-client [OPTION]...\n"
    "Interactive SyncAsync chat client: reads lines from stdin (a terminal or a\n"
    "pipe) and prints the conversation on stdout, one line per event.\n"
    "\n"
    "Options:\n"
    "  --host H         server host name or address (default 127.0.0.1)\n"
    "  --port P         server port (default 5050)\n"
    "  --name NAME      user name (default $USER)\n"
    "  --token TOKEN    authentication token (default $SA_TOKEN)\n"
    "  --mode sync|async  blocking client core with a receiving thread, or one\n"
    "                   event loop (default async); the output is the same\n"
    "  --retries N      reconnection attempts (default 10); accepted and checked,\n"
    "                   but reconnecting is not implemented yet: a connection\n"
    "                   lost after hello ends the program with exit status 1\n"
    "  --room ROOM      room to join and talk in when the server has rooms\n"
    "                   (default lobby)\n"
    "  --json           print every frame received as one JSON line instead;\n"
    "                   the client's own notices then go to stderr\n"
    "  --tls, --ca FILE, --insecure\n"
    "                   TLS: not supported by this build yet (exit status 2)\n"
    "  -h, --help       show this help and exit\n"
    "  --version        show the version and exit\n"
    "\n"
    "Input: a line not starting with / is a message to the current room (or to\n"
    "everyone when the server has no rooms); empty lines are ignored. Commands:\n"
    "  /join ROOM  /leave [ROOM]  /rooms  /who [ROOM]  /topic ROOM TEXT\n"
    "  /msg USER TEXT  /status online|away|busy [TEXT]  /users  /quit\n"
    "  /send PATH [USER], /files, /get FILE_ID [DIR]: not available yet\n"
    "End of input works like /quit: pending lines are sent and their replies\n"
    "awaited (at most 5 seconds) before the connection is closed.\n"
    "\n"
    "Output: [ROOM] <alice> text, [dm] <alice> text, * alice joined ROOM,\n"
    "* alice left ROOM, * alice is away (text), ! code: message for errors.\n"
    "Control characters in what the server sends are shown escaped.\n"
    "\n"
    "Exit status: 0 after /quit or end of input, 1 when the server cannot be\n"
    "reached, refuses hello or the connection is lost, 2 on bad usage.\n";

enum long_only_option {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_NAME,
    OPT_TOKEN,
    OPT_MODE,
    OPT_RETRIES,
    OPT_ROOM,
    OPT_JSON,
    OPT_VERSION,
    OPT_TLS,
    OPT_CA,
    OPT_INSECURE,
};

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"name", required_argument, NULL, OPT_NAME},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"mode", required_argument, NULL, OPT_MODE},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"room", required_argument, NULL, OPT_ROOM},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"tls", no_argument, NULL, OPT_TLS},
    {"ca", required_argument, NULL, OPT_CA},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {NULL, 0, NULL, 0},
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sa-client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'sa-client --help' for more information.\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* Whole decimal number in [min, max]; -1 when `text` is anything else. */
static long parse_number(const char *text, long min, long max)
{
    if (!*text || strspn(text, "0123456789") != strlen(text))
        return -1;
    errno = 0;
    long value = strtol(text, NULL, 10);
    if (errno != 0 || value < min || value > max)
        return -1;
    return value;
}

static const char *non_empty_env(const char *name)
{
    const char *value = getenv(name);
    return value && *value ? value : NULL;
}

/* Fills opt from argv. Returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, client_options *opt)
{
    *opt = (client_options){.host = "127.0.0.1", .port = "5050", .room = "lobby",
                            .retries = 10};
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_HOST:
            if (!*optarg)
                return usage_error("--host: must not be empty");
            opt->host = optarg;
            break;
        case OPT_PORT:
            if (parse_number(optarg, 1, 65535) < 0)
                return usage_error("--port: '%s' is not a port number (1-65535)", optarg);
            opt->port = optarg;
            break;
        case OPT_NAME:
            opt->name = optarg;
            break;
        case OPT_TOKEN:
            opt->token = optarg;
            break;
        case OPT_MODE:
            if (strcmp(optarg, "sync") == 0)
                opt->sync_mode = 1;
            else if (strcmp(optarg, "async") == 0)
                opt->sync_mode = 0;
            else
                return usage_error("--mode: '%s' is not sync or async", optarg);
            break;
        case OPT_RETRIES:
            opt->retries = parse_number(optarg, 0, INT_MAX);
            if (opt->retries < 0)
                return usage_error("--retries: '%s' is not a whole number >= 0", optarg);
            break;
        case OPT_ROOM:
            if (!*optarg)
                return usage_error("--room: must not be empty");
            opt->room = optarg;
            break;
        case OPT_JSON:
            opt->json = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return fflush(stdout) == 0 ? 0 : 1;
        case OPT_VERSION:
            puts("sa-client " SA_VERSION);
            return fflush(stdout) == 0 ? 0 : 1;
        case OPT_TLS:
            return usage_error("%s: TLS is not supported by this build yet", "--tls");
        case OPT_CA:
            return usage_error("%s: TLS is not supported by this build yet", "--ca");
        case OPT_INSECURE:
            return usage_error("%s: TLS is not supported by this build yet", "--insecure");
        default: /* getopt_long has said what is wrong */
            fputs("Try 'sa-client --help' for more information.\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!opt->name)
        opt->name = non_empty_env("USER");
    if (!opt->name)
        return usage_error("--name is required ($USER is not set)");
    if (!opt->token)
        opt->token = non_empty_env("SA_TOKEN");
    return -1;
}

/* A standard descriptor the parent left closed would be taken by the next
 * open() -- the socket -- and stdin would then alias it. /dev/null stands
 * in instead: a closed stdin reads as end of input. */
static int open_standard_fds(void)
{
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int opened = open("/dev/null", O_RDWR);
        if (opened != fd) {
            if (opened >= 0)
                (void)close(opened); /* releases the descriptor whatever it reports */
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (open_standard_fds() != 0)
        return 1; /* with no stderr to say why */
    client_options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;
    return opt.sync_mode ? run_sync(&opt) : run_async(&opt);
}
