/* Logging to stderr: one line per event, with time, level and component.
 * Safe from any thread: each line is written with a single write(2). */
#ifndef SA_LOG_H
#define SA_LOG_H

#include <stdarg.h>

#include <syncasync/plugin.h> /* enum sa_log_level */

void sa_log_set_level(enum sa_log_level level);
enum sa_log_level sa_log_get_level(void);
/* Parses error|warn|info|debug; returns 0, or -1 for anything else. */
int sa_log_level_parse(const char *text, enum sa_log_level *out);

void sa_log(enum sa_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sa_logv(enum sa_log_level level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
