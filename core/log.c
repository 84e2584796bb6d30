#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int current_level = SA_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sa_log_set_level(enum sa_log_level level) { atomic_store(&current_level, (int)level); }

enum sa_log_level sa_log_get_level(void) { return (enum sa_log_level)atomic_load(&current_level); }

int sa_log_level_parse(const char *text, enum sa_log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (enum sa_log_level)i;
            return 0;
        }
    }
    return -1;
}

void sa_logv(enum sa_log_level level, const char *component, const char *fmt, va_list ap)
{
    if ((int)level > atomic_load(&current_level))
        return;
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
    int len = asprintf(&line, "%s.%03ldZ %-5s [%s] %s\n", stamp, now.tv_nsec / 1000000L,
                       level_names[level], component, body ? body : fmt);
    free(body);
    if (len < 0)
        return;
    /* One write per line keeps lines from different threads whole. */
    ssize_t off = 0;
    while (off < len) {
        ssize_t n = write(STDERR_FILENO, line + off, (size_t)(len - off));
        if (n <= 0)
            break;
        off += n;
    }
    free(line);
}

void sa_log(enum sa_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sa_logv(level, component, fmt, ap);
    va_end(ap);
}
