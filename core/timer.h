/* The host's timer thread, behind the timer_start/timer_cancel services.
 * Callbacks run on that one thread, one at a time. */
#ifndef SA_TIMER_H
#define SA_TIMER_H

#include <stdint.h>

#include <syncasync/plugin.h> /* sa_timer_fn */

int sa_timers_start(void);  /* 0, or -1 when the thread cannot start */
void sa_timers_stop(void);  /* cancels everything and joins the thread */

/* Returns an id > 0, or 0 on failure. period_ms 0 = fire once. */
uint64_t sa_timer_add(uint64_t delay_ms, uint64_t period_ms, sa_timer_fn fn, void *arg);
/* After it returns the callback is not running (unless called from that
 * very callback) and will not run again. Unknown ids are ignored. */
void sa_timer_cancel(uint64_t id);

int64_t sa_monotonic_ms(void);
int64_t sa_wall_ms(void); /* milliseconds since the Unix epoch */

#endif
