#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int quiet;

void chaos_log_set_quiet(int on) { quiet = on; }

static void log_line(const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void log_line(const char *level, const char *fmt, va_list ap)
{
    struct timespec now;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    char *body = NULL;
    if (vasprintf(&body, fmt, ap) < 0)
        body = NULL;
    char *line = NULL;
    int len = asprintf(&line, "%s.%03ldZ %-5s [chaos] %s\n", stamp, now.tv_nsec / 1000000L,
                       level, body ? body : fmt);
    free(body);
    if (len < 0)
        return;
    /* One write per line: a reader never sees half a line. */
    ssize_t off = 0;
    while (off < len) {
        ssize_t n = write(STDERR_FILENO, line + off, (size_t)(len - off));
        if (n <= 0)
            break;
        off += n;
    }
    free(line);
}

void chaos_log_info(const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line("info", fmt, ap);
    va_end(ap);
}

void chaos_log_notice(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line("info", fmt, ap);
    va_end(ap);
}

void chaos_log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line("error", fmt, ap);
    va_end(ap);
}
