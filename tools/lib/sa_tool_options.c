#include "sa_tool_options.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sa_tls_client.h"

void sa_tool_options_init(sa_tool_options *o)
{
    *o = (sa_tool_options){.host = "127.0.0.1", .port = "5050", .retries = 10};
}

int sa_tool_usage_error(const sa_tool_info *info, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", info->program);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", info->program);
    va_end(ap);
    return SA_EXIT_USAGE;
}

long sa_tool_parse_number(const char *text, long min, long max)
{
    if (!*text || strspn(text, "0123456789") != strlen(text))
        return -1;
    errno = 0;
    long value = strtol(text, NULL, 10);
    if (errno != 0 || value < min || value > max)
        return -1;
    return value;
}

static int print_and_exit(const char *text)
{
    fputs(text, stdout);
    return fflush(stdout) == 0 ? 0 : SA_EXIT_FAILURE;
}

int sa_tool_options_handle(sa_tool_options *o, const sa_tool_info *info, int c, const char *arg)
{
    switch (c) {
    case SA_OPT_HOST:
        if (!*arg)
            return sa_tool_usage_error(info, "--host: must not be empty");
        o->host = arg;
        return SA_TOOL_CONTINUE;
    case SA_OPT_PORT:
        if (sa_tool_parse_number(arg, 1, 65535) < 0)
            return sa_tool_usage_error(info, "--port: '%s' is not a port number (1-65535)", arg);
        o->port = arg;
        return SA_TOOL_CONTINUE;
    case SA_OPT_NAME:
        o->name = arg;
        return SA_TOOL_CONTINUE;
    case SA_OPT_TOKEN:
        o->token = arg;
        return SA_TOOL_CONTINUE;
    case SA_OPT_MODE:
        if (strcmp(arg, "sync") == 0)
            o->sync_mode = 1;
        else if (strcmp(arg, "async") == 0)
            o->sync_mode = 0;
        else
            return sa_tool_usage_error(info, "--mode: '%s' is not sync or async", arg);
        return SA_TOOL_CONTINUE;
    case SA_OPT_RETRIES:
        o->retries = sa_tool_parse_number(arg, 0, INT_MAX);
        if (o->retries < 0)
            return sa_tool_usage_error(info, "--retries: '%s' is not a whole number >= 0", arg);
        return SA_TOOL_CONTINUE;
    case 'h':
        return print_and_exit(info->usage);
    case SA_OPT_VERSION: {
        char line[128];
        snprintf(line, sizeof line, "%s %s\n", info->program, info->version);
        return print_and_exit(line);
    }
    case SA_OPT_TLS:
        o->use_tls = 1;
        return SA_TOOL_CONTINUE;
    case SA_OPT_CA:
        if (!*arg)
            return sa_tool_usage_error(info, "--ca: must not be empty");
        o->tls.ca_file = arg;
        return SA_TOOL_CONTINUE;
    case SA_OPT_INSECURE:
        o->tls.insecure = 1;
        return SA_TOOL_CONTINUE;
    case '?':
    case ':': /* getopt_long has said what is wrong */
        fprintf(stderr, "Try '%s --help' for more information.\n", info->program);
        return SA_EXIT_USAGE;
    default:
        return SA_TOOL_NOT_MINE;
    }
}

static const char *non_empty_env(const char *name)
{
    const char *value = getenv(name);
    return value && *value ? value : NULL;
}

static int check_tls(const sa_tool_options *o, const sa_tool_info *info)
{
    if (!o->use_tls && (o->tls.ca_file || o->tls.insecure))
        return sa_tool_usage_error(info, "%s needs --tls", o->tls.ca_file ? "--ca" : "--insecure");
    if (o->tls.insecure) {
        fprintf(stderr, "%s: warning: --insecure: the server's certificate and name are not "
                        "checked; anyone on the way can read and change the traffic\n",
                info->program);
        return SA_TOOL_CONTINUE;
    }
    char err[512];
    if (o->tls.ca_file && sa_tls_client_check_ca_file(o->tls.ca_file, err, sizeof err) != 0)
        return sa_tool_usage_error(info, "--ca: %s", err);
    return SA_TOOL_CONTINUE;
}

int sa_tool_options_finish(sa_tool_options *o, const sa_tool_info *info)
{
    if (!o->name)
        o->name = non_empty_env("USER");
    if (!o->name)
        return sa_tool_usage_error(info, "--name is required ($USER is not set)");
    if (!o->token)
        o->token = non_empty_env("SA_TOKEN");
    return check_tls(o, info);
}

const sa_client_tls *sa_tool_tls(const sa_tool_options *o)
{
    return o->use_tls ? &o->tls : NULL;
}

int sa_tool_open_standard_fds(void)
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
