/*
 * The command-line options every client tool shares (INTERFACE.md "Client
 * tools (common options)"): --host --port --name --token --mode --retries,
 * --tls --ca --insecure, --help and --version. Each tool puts
 * SA_TOOL_COMMON_OPTIONS into its getopt_long table, numbers its own long
 * options from SA_OPT_FIRST_TOOL, and hands every getopt_long result to
 * sa_tool_options_handle first.
 */
#ifndef SA_TOOL_OPTIONS_H
#define SA_TOOL_OPTIONS_H

#include <getopt.h>

#include "sa_client.h"

#define SA_EXIT_FAILURE 1
#define SA_EXIT_USAGE 2

/* What the common options set. The strings point into argv or the
 * environment, which outlive the program's use of them. */
typedef struct sa_tool_options {
    const char *host;  /* default 127.0.0.1 */
    const char *port;  /* default 5050 */
    const char *name;  /* --name, else $USER */
    const char *token; /* --token, else $SA_TOKEN, else NULL */
    int sync_mode;     /* --mode sync; default async */
    long retries;      /* default 10 */
    int use_tls;       /* --tls */
    sa_client_tls tls; /* --ca, --insecure; used only with --tls */
} sa_tool_options;

/* How a tool introduces itself in messages, --help and --version. */
typedef struct sa_tool_info {
    const char *program; /* "sa-send" */
    const char *version; /* "1.0.0" */
    const char *usage;   /* the whole --help text */
} sa_tool_info;

enum sa_tool_option_id {
    SA_OPT_HOST = 0x100,
    SA_OPT_PORT,
    SA_OPT_NAME,
    SA_OPT_TOKEN,
    SA_OPT_MODE,
    SA_OPT_RETRIES,
    SA_OPT_VERSION,
    SA_OPT_TLS,
    SA_OPT_CA,
    SA_OPT_INSECURE,
    SA_OPT_FIRST_TOOL /* a tool's own long options are numbered from here */
};

#define SA_TOOL_COMMON_OPTIONS                                                                 \
    {"host", required_argument, NULL, SA_OPT_HOST},                                            \
        {"port", required_argument, NULL, SA_OPT_PORT},                                        \
        {"name", required_argument, NULL, SA_OPT_NAME},                                        \
        {"token", required_argument, NULL, SA_OPT_TOKEN},                                      \
        {"mode", required_argument, NULL, SA_OPT_MODE},                                        \
        {"retries", required_argument, NULL, SA_OPT_RETRIES},                                  \
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, SA_OPT_VERSION},      \
        {"tls", no_argument, NULL, SA_OPT_TLS}, {"ca", required_argument, NULL, SA_OPT_CA},    \
        {"insecure", no_argument, NULL, SA_OPT_INSECURE}

/* The --help lines of the TLS options, the same in every tool. */
#define SA_TOOL_TLS_USAGE                                                                      \
    "  --tls            connect with TLS; the server's certificate must be signed\n"          \
    "                   by a trusted CA and name --host (its DNS name or IP\n"                \
    "                   address), else the program ends at once (exit status 1)\n"          \
    "  --ca FILE        trust the CA certificates in FILE (PEM), not the system's\n"         \
    "                   (a FILE without one: exit status 2)\n"                              \
    "  --insecure       with --tls: check neither certificate nor name (warns)\n"

/* The short options string for getopt_long. */
#define SA_TOOL_SHORT_OPTIONS "h"

/* sa_tool_options_handle results besides an exit status (>= 0). */
#define SA_TOOL_CONTINUE (-1) /* handled; go on parsing */
#define SA_TOOL_NOT_MINE (-2) /* one of the tool's own options */

void sa_tool_options_init(sa_tool_options *o);
/* Handles getopt_long's result `c` (with `arg` = optarg) when it is a
 * common option, '?' or ':'. --help and --version print and return 0; a
 * bad value prints why and returns SA_EXIT_USAGE. */
int sa_tool_options_handle(sa_tool_options *o, const sa_tool_info *info, int c, const char *arg);
/* After the last option: fills --name from $USER and --token from
 * $SA_TOKEN, refuses --ca and --insecure without --tls and a --ca file
 * that holds no certificate, and warns on stderr that --insecure checks
 * nothing. Returns SA_TOOL_CONTINUE, or SA_EXIT_USAGE after saying why. */
int sa_tool_options_finish(sa_tool_options *o, const sa_tool_info *info);

/* The TLS settings to connect with, or NULL for plain TCP. */
const sa_client_tls *sa_tool_tls(const sa_tool_options *o);

/* Prints "PROGRAM: message" and the --help hint on stderr; returns
 * SA_EXIT_USAGE. */
int sa_tool_usage_error(const sa_tool_info *info, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A whole decimal number in [min, max], or -1 for anything else. */
long sa_tool_parse_number(const char *text, long min, long max);

/* Opens /dev/null on any of descriptors 0-2 the parent left closed, so
 * that a socket or file never takes their place. Returns 0 or -1. */
int sa_tool_open_standard_fds(void);

#endif
