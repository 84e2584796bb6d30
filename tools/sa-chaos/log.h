/* sa-chaos logging: one line per event on stderr, in syncasyncd's format
 * ("TIME LEVEL [chaos] text"), so the two logs read side by side. */
#ifndef CHAOS_LOG_H
#define CHAOS_LOG_H

/* Quiet: errors and the "listening on" line only. */
void chaos_log_set_quiet(int quiet);

/* Connections, faults injected, summaries. */
void chaos_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Always shown. */
void chaos_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Shown even when quiet: the line tools wait for. */
void chaos_log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
