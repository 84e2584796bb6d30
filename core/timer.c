#include "timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* Timers are few (a handful per plugin), so a list sorted by due time is
 * simpler than a heap and just as fast. */
typedef struct sa_timer {
    uint64_t id;
    int64_t due_ms;
    uint64_t period_ms;
    sa_timer_fn fn;
    void *arg;
    struct sa_timer *next;
} sa_timer;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pthread_t thread;
    int running;
    int stopping;
    sa_timer *pending;     /* sorted by due_ms; owned here */
    uint64_t next_id;
    uint64_t firing_id;    /* timer whose callback runs now, 0 if none */
    int firing_cancelled;  /* timer_cancel was called for it meanwhile */
} timers = {.lock = PTHREAD_MUTEX_INITIALIZER};

int64_t sa_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sa_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void insert_sorted(sa_timer *t)
{
    sa_timer **at = &timers.pending;
    while (*at && (*at)->due_ms <= t->due_ms)
        at = &(*at)->next;
    t->next = *at;
    *at = t;
}

static void *timer_thread(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&timers.lock);
    while (!timers.stopping) {
        sa_timer *head = timers.pending;
        int64_t now = sa_monotonic_ms();
        if (!head) {
            pthread_cond_wait(&timers.changed, &timers.lock);
            continue;
        }
        if (head->due_ms > now) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            int64_t wait_ms = head->due_ms - now;
            until.tv_sec += wait_ms / 1000;
            until.tv_nsec += (wait_ms % 1000) * 1000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&timers.changed, &timers.lock, &until);
            continue;
        }
        timers.pending = head->next;
        timers.firing_id = head->id;
        timers.firing_cancelled = 0;
        pthread_mutex_unlock(&timers.lock);
        head->fn(head->arg);
        pthread_mutex_lock(&timers.lock);
        if (head->period_ms && !timers.firing_cancelled && !timers.stopping) {
            head->due_ms += (int64_t)head->period_ms;
            if (head->due_ms < sa_monotonic_ms())
                head->due_ms = sa_monotonic_ms();
            insert_sorted(head);
        } else {
            free(head);
        }
        timers.firing_id = 0;
        pthread_cond_broadcast(&timers.changed);
    }
    pthread_mutex_unlock(&timers.lock);
    return NULL;
}

int sa_timers_start(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&timers.changed, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return -1;
    timers.stopping = 0;
    if (pthread_create(&timers.thread, NULL, timer_thread, NULL) != 0) {
        pthread_cond_destroy(&timers.changed);
        return -1;
    }
    timers.running = 1;
    return 0;
}

void sa_timers_stop(void)
{
    if (!timers.running)
        return;
    pthread_mutex_lock(&timers.lock);
    timers.stopping = 1;
    pthread_cond_broadcast(&timers.changed);
    pthread_mutex_unlock(&timers.lock);
    pthread_join(timers.thread, NULL);
    while (timers.pending) {
        sa_timer *t = timers.pending;
        timers.pending = t->next;
        free(t);
    }
    pthread_cond_destroy(&timers.changed);
    timers.running = 0;
}

uint64_t sa_timer_add(uint64_t delay_ms, uint64_t period_ms, sa_timer_fn fn, void *arg)
{
    if (!fn)
        return 0;
    sa_timer *t = calloc(1, sizeof *t);
    if (!t)
        return 0;
    t->due_ms = sa_monotonic_ms() + (int64_t)delay_ms;
    t->period_ms = period_ms;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&timers.lock);
    uint64_t id = t->id = ++timers.next_id;
    insert_sorted(t);
    pthread_cond_broadcast(&timers.changed);
    pthread_mutex_unlock(&timers.lock);
    return id; /* t may already have fired and been freed */
}

void sa_timer_cancel(uint64_t id)
{
    pthread_mutex_lock(&timers.lock);
    for (sa_timer **at = &timers.pending; *at; at = &(*at)->next) {
        if ((*at)->id == id) {
            sa_timer *t = *at;
            *at = t->next;
            free(t);
            break;
        }
    }
    if (id != 0 && timers.firing_id == id) {
        /* The timer thread frees it once the callback returns. */
        timers.firing_cancelled = 1;
        if (!pthread_equal(pthread_self(), timers.thread)) {
            while (timers.firing_id == id)
                pthread_cond_wait(&timers.changed, &timers.lock);
        }
    }
    pthread_mutex_unlock(&timers.lock);
}
