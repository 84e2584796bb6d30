#include "procstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static long long rss_from(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    long long kib = -1;
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            char *end = NULL;
            long long v = strtoll(line + 6, &end, 10);
            if (end != line + 6 && v >= 0)
                kib = v;
            break;
        }
    }
    free(line);
    fclose(f);
    return kib;
}

long long proc_rss_kib(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    return rss_from(path);
}

long long self_rss_kib(void)
{
    return rss_from("/proc/self/status");
}

double proc_cpu_seconds(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    double seconds = -1;
    if (getline(&line, &cap, f) > 0) {
        /* The command name may hold spaces and parentheses: fields are
         * counted from the last ')'. utime and stime are fields 14 and 15,
         * i.e. the 12th and 13th after the state (field 3). */
        char *p = strrchr(line, ')');
        unsigned long long utime = 0, stime = 0;
        if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                        &stime) == 2) {
            long ticks = sysconf(_SC_CLK_TCK);
            if (ticks > 0)
                seconds = (double)(utime + stime) / (double)ticks;
        }
    }
    free(line);
    fclose(f);
    return seconds;
}

double self_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
