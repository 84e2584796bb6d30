/*
 * sa-client: interactive line-oriented chat client. This file parses the
 * command line and hands over to one of the two drivers; everything the
 * user sees is made in ui.c.
 */
#include <stdio.h>
#include <string.h>

#include "drivers.h"
#include "sa_tool_options.h"

#ifndef SA_VERSION
#error "SA_VERSION must be defined by the build"
#endif

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
    "  --retries N      after a connection lost once hello succeeded, reconnect\n"
    "                   (rejoining the rooms, setting the status again), at\n"
    "                   most N attempts (default 10; counted again after 60 s\n"
    "                   connected; waits 0.2 s, doubling up to 5 s)\n"
    "  --room ROOM      room to join and talk in when the server has rooms\n"
    "                   (default lobby)\n"
    "  --json           print every frame received as one JSON line instead;\n"
    "                   the client's own notices then go to stderr\n"
    SA_TOOL_TLS_USAGE
    "  -h, --help       show this help and exit\n"
    "  --version        show the version and exit\n"
    "\n"
    "Input: a line not starting with / is a message to the current room (or to\n"
    "everyone when the server has no rooms); empty lines are ignored. Commands:\n"
    "  /join ROOM  /leave [ROOM]  /rooms  /who [ROOM]  /topic ROOM TEXT\n"
    "  /msg USER TEXT  /status online|away|busy [TEXT]  /users  /quit\n"
    "  /send PATH [USER]  upload a file to USER, else to the current room (with\n"
    "                   no rooms: to nobody but yourself); PATH has no spaces\n"
    "  /files           list the files you may fetch: FILE_ID NAME SIZE from SENDER\n"
    "  /get FILE_ID [DIR]  download a file into DIR (default .), as sa-recv does:\n"
    "                   NAME.part first, size and SHA-256 checked, never replacing\n"
    "                   a file (\"NAME (1)\"...), resuming an existing NAME.part\n"
    "Transfers run while the chat goes on. End of input works like /quit:\n"
    "pending lines are sent and their replies awaited (at most 5 seconds), and\n"
    "running transfers finish (as long as they make progress) before the\n"
    "connection is closed.\n"
    "While disconnected, up to 100 lines typed are kept and sent once the\n"
    "session is back; /quit then ends at once. Reconnecting is reported on\n"
    "stderr (sa-client: connection lost: ...; sa-client: reconnected; ...).\n"
    "\n"
    "Output: [ROOM] <alice> text, [dm] <alice> text, * alice joined ROOM,\n"
    "* alice left ROOM, * alice is away (text), ! code: message for errors,\n"
    "* alice offers NAME (SIZE bytes): FILE_ID, * sent NAME (SIZE bytes): FILE_ID,\n"
    "* saved PATH (SHA256).\n"
    "Control characters in what the server sends are shown escaped.\n"
    "\n"
    "Exit status: 0 after /quit or end of input, 1 when the server cannot be\n"
    "reached, refuses hello or the connection is lost beyond --retries, 2 on\n"
    "bad usage.\n";

static const sa_tool_info info = {"sa-client", SA_VERSION, usage_text};

enum { OPT_ROOM = SA_OPT_FIRST_TOOL, OPT_JSON };

static const struct option long_options[] = {
    SA_TOOL_COMMON_OPTIONS,
    {"room", required_argument, NULL, OPT_ROOM},
    {"json", no_argument, NULL, OPT_JSON},
    {NULL, 0, NULL, 0},
};

/* Fills opt from argv. Returns SA_TOOL_CONTINUE to go on, or the exit
 * status. */
static int parse_options(int argc, char **argv, client_options *opt)
{
    memset(opt, 0, sizeof *opt);
    sa_tool_options_init(&opt->common);
    opt->room = "lobby";
    int c;
    while ((c = getopt_long(argc, argv, SA_TOOL_SHORT_OPTIONS, long_options, NULL)) != -1) {
        int rc = sa_tool_options_handle(&opt->common, &info, c, optarg);
        if (rc != SA_TOOL_NOT_MINE) {
            if (rc != SA_TOOL_CONTINUE)
                return rc;
            continue;
        }
        if (c == OPT_ROOM) {
            if (!*optarg)
                return sa_tool_usage_error(&info, "--room: must not be empty");
            opt->room = optarg;
        } else {
            opt->json = 1;
        }
    }
    if (optind < argc)
        return sa_tool_usage_error(&info, "unexpected argument '%s'", argv[optind]);
    return sa_tool_options_finish(&opt->common, &info);
}

int main(int argc, char **argv)
{
    if (sa_tool_open_standard_fds() != 0)
        return 1; /* with no stderr to say why */
    client_options opt;
    int status = parse_options(argc, argv, &opt);
    if (status != SA_TOOL_CONTINUE)
        return status;
    return opt.common.sync_mode ? run_sync(&opt) : run_async(&opt);
}
