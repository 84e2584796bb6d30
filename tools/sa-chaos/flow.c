#include "flow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

/* Reading stops while this much waits to be written: the proxy passes the
 * slow side's backpressure on instead of buffering without bound. */
#define QUEUE_LIMIT (1u << 20)
#define READ_SIZE 65536
/* Writes per callback, so that one connection sending byte by byte does
 * not starve the others. */
#define WRITES_PER_TURN 256
/* A write under --rate carries at most 1/RATE_SLICES s worth of bytes. */
#define RATE_SLICES 50
/* Timers are not exact to the last bit: a segment due this close to now
 * goes at once. */
#define DUE_SLACK 0.0005

struct chaos_chunk {
    chaos_chunk *next;
    ev_tstamp arrived;
    size_t len, offset; /* offset: bytes already written */
    unsigned char data[];
};

/* One program, one thread: every read lands here before it is queued. */
static unsigned char read_buffer[READ_SIZE];

const char *chaos_direction_name(enum chaos_direction direction)
{
    return direction == CHAOS_UP ? "up" : "down";
}

static const char *source_name(const chaos_flow *f)
{
    return f->direction == CHAOS_UP ? "client" : "server";
}

static void free_queue(chaos_flow *f)
{
    while (f->head) {
        chaos_chunk *c = f->head;
        f->head = c->next;
        free(c);
    }
    f->tail = NULL;
    f->queued = 0;
}

static void update_reading(chaos_flow *f)
{
    int want = !f->src_ended && (f->blackholed || f->queued < QUEUE_LIMIT);
    if (want && !f->reading)
        ev_io_start(f->loop, &f->reader);
    else if (!want && f->reading)
        ev_io_stop(f->loop, &f->reader);
    f->reading = want;
}

/* Stops the output and tells the owner, who may free the flow at once:
 * callers return right after, passing on the -1. */
static int end_flow(chaos_flow *f, enum chaos_flow_event event)
{
    ev_io_stop(f->loop, &f->writer);
    ev_timer_stop(f->loop, &f->release_timer);
    f->notify(f, event, f->owner);
    return -1;
}

/* The source ended and its last byte went through: pass the end on. */
static int finish(chaos_flow *f)
{
    f->done = 1;
    if (!f->blackholed && shutdown(f->dst_fd, SHUT_WR) != 0 && errno != ENOTCONN)
        return end_flow(f, CHAOS_FLOW_FAILED);
    return end_flow(f, CHAOS_FLOW_DONE);
}

static void start_blackhole(chaos_flow *f)
{
    chaos_log_info("conn %llu %s: black hole after %llu bytes",
                   (unsigned long long)f->conn_index, chaos_direction_name(f->direction),
                   (unsigned long long)f->forwarded);
    f->blackholed = 1;
    for (const chaos_chunk *c = f->head; c; c = c->next)
        f->swallowed += c->len - c->offset;
    free_queue(f);
    ev_io_stop(f->loop, &f->writer);
    ev_timer_stop(f->loop, &f->release_timer);
    update_reading(f);
}

static void fingerprint_add(chaos_flow *f, uint64_t value)
{
    for (int i = 0; i < 8; i++) {
        f->plan_fingerprint ^= (uint32_t)(value & 0xff);
        f->plan_fingerprint *= 16777619u; /* FNV-1a */
        value >>= 8;
    }
}

/* Draws the next segment, always in the same order (size, jitter, reset),
 * so that the plan depends only on the seed and on the byte stream. */
static void plan_segment(chaos_flow *f)
{
    const chaos_faults *ft = f->faults;
    if (ft->segment)
        f->segment_left = 1 + chaos_prng_below(&f->prng, ft->segment);
    else
        f->segment_left = f->head->len - f->head->offset;
    f->segment_jitter = ft->jitter > 0 ? chaos_prng_unit(&f->prng) * ft->jitter : 0.0;
    f->segment_resets = ft->reset_prob > 0 && chaos_prng_unit(&f->prng) < ft->reset_prob;
    f->segments++;
    fingerprint_add(f, f->segment_left);
    fingerprint_add(f, (uint64_t)(f->segment_jitter * 1e6));
    fingerprint_add(f, (uint64_t)f->segment_resets);
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* How many bytes the next write may carry (at least 1). */
static size_t write_limit(const chaos_flow *f)
{
    const chaos_faults *ft = f->faults;
    uint64_t len = min_u64(f->head->len - f->head->offset, f->segment_left);
    if (ft->reset_after != CHAOS_NEVER)
        len = min_u64(len, ft->reset_after - f->forwarded);
    if (ft->blackhole_after != CHAOS_NEVER)
        len = min_u64(len, ft->blackhole_after - f->forwarded);
    if (ft->rate)
        len = min_u64(len, ft->rate / RATE_SLICES ? ft->rate / RATE_SLICES : 1);
    return (size_t)len;
}

/* Bookkeeping after `n` bytes of the head chunk were written. */
static void account_written(chaos_flow *f, size_t n)
{
    chaos_chunk *c = f->head;
    c->offset += n;
    f->segment_left -= n;
    f->forwarded += n;
    if (f->faults->rate) {
        ev_tstamp now = ev_now(f->loop);
        f->rate_ready = (f->rate_ready > now ? f->rate_ready : now) +
                        (double)n / (double)f->faults->rate;
    }
    if (c->offset == c->len) {
        f->head = c->next;
        if (!f->head)
            f->tail = NULL;
        f->queued -= sizeof *c + c->len;
        free(c);
    }
}

/* Writes whatever is due. Returns 0, or -1 once it notified the owner
 * (the flow may be gone). */
static int pump(chaos_flow *f)
{
    const chaos_faults *ft = f->faults;
    ev_io_stop(f->loop, &f->writer);
    ev_timer_stop(f->loop, &f->release_timer);
    for (int writes = 0; f->head && !f->blackholed; writes++) {
        if (f->segment_left == 0)
            plan_segment(f);
        ev_tstamp due = f->head->arrived + ft->delay + f->segment_jitter;
        if (due < f->last_due)
            due = f->last_due;
        if (due < f->rate_ready)
            due = f->rate_ready;
        ev_tstamp now = ev_now(f->loop);
        if (due > now + DUE_SLACK) {
            ev_timer_set(&f->release_timer, due - now, 0.0);
            ev_timer_start(f->loop, &f->release_timer);
            break;
        }
        f->last_due = due;
        if (f->segment_resets) {
            chaos_log_info("conn %llu %s: random reset after %llu bytes (segment %llu)",
                           (unsigned long long)f->conn_index,
                           chaos_direction_name(f->direction),
                           (unsigned long long)f->forwarded, (unsigned long long)f->segments);
            return end_flow(f, CHAOS_FLOW_RESET);
        }
        if (writes == WRITES_PER_TURN) {
            ev_io_start(f->loop, &f->writer); /* fires again on the next loop turn */
            break;
        }
        ssize_t n = send(f->dst_fd, f->head->data + f->head->offset, write_limit(f),
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(f->loop, &f->writer);
            break;
        }
        if (n < 0) {
            chaos_log_info("conn %llu %s: cannot write to the %s: %s",
                           (unsigned long long)f->conn_index, chaos_direction_name(f->direction),
                           f->direction == CHAOS_UP ? "server" : "client", strerror(errno));
            return end_flow(f, CHAOS_FLOW_FAILED);
        }
        account_written(f, (size_t)n);
        if (f->forwarded == ft->reset_after) {
            chaos_log_info("conn %llu %s: reset after %llu bytes",
                           (unsigned long long)f->conn_index, chaos_direction_name(f->direction),
                           (unsigned long long)f->forwarded);
            return end_flow(f, CHAOS_FLOW_RESET);
        }
        if (f->forwarded == ft->blackhole_after)
            start_blackhole(f);
    }
    update_reading(f);
    if (f->src_ended && !f->head)
        return finish(f);
    return 0;
}

static int queue_bytes(chaos_flow *f, const unsigned char *bytes, size_t len)
{
    chaos_chunk *c = malloc(sizeof *c + len);
    if (!c)
        return -1;
    c->next = NULL;
    c->arrived = ev_now(f->loop);
    c->len = len;
    c->offset = 0;
    memcpy(c->data, bytes, len);
    if (f->tail)
        f->tail->next = c;
    else
        f->head = c;
    f->tail = c;
    f->queued += sizeof *c + len;
    return 0;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    chaos_flow *f = w->data;
    ssize_t n = read(f->src_fd, read_buffer, sizeof read_buffer);
    if (n > 0) {
        if (f->blackholed) {
            f->swallowed += (uint64_t)n;
            return;
        }
        if (queue_bytes(f, read_buffer, (size_t)n) != 0) {
            chaos_log_error("conn %llu %s: out of memory", (unsigned long long)f->conn_index,
                            chaos_direction_name(f->direction));
            end_flow(f, CHAOS_FLOW_FAILED);
            return;
        }
        pump(f);
        return;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n < 0) {
        chaos_log_info("conn %llu %s: %s: %s", (unsigned long long)f->conn_index,
                       chaos_direction_name(f->direction), source_name(f),
                       errno == ECONNRESET ? "connection reset" : strerror(errno));
        end_flow(f, CHAOS_FLOW_FAILED);
        return;
    }
    f->src_ended = 1;
    update_reading(f);
    if (f->blackholed || !f->head)
        finish(f);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    pump(w->data);
}

static void on_release_time(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pump(w->data);
}

void chaos_flow_init(chaos_flow *f, struct ev_loop *loop, const chaos_faults *faults,
                     enum chaos_direction direction, uint64_t conn_index, uint64_t seed,
                     int src_fd, int dst_fd, chaos_flow_notify *notify, void *owner)
{
    *f = (chaos_flow){.loop = loop, .faults = faults, .direction = direction,
                      .conn_index = conn_index, .src_fd = src_fd, .dst_fd = dst_fd,
                      .plan_fingerprint = 2166136261u, .notify = notify, .owner = owner};
    chaos_prng_seed(&f->prng, seed);
    ev_io_init(&f->reader, on_readable, src_fd, EV_READ);
    ev_io_init(&f->writer, on_writable, dst_fd, EV_WRITE);
    ev_timer_init(&f->release_timer, on_release_time, 0.0, 0.0);
    f->reader.data = f;
    f->writer.data = f;
    f->release_timer.data = f;
}

int chaos_flow_start(chaos_flow *f)
{
    if (f->faults->reset_after == 0) {
        chaos_log_info("conn %llu %s: reset after 0 bytes", (unsigned long long)f->conn_index,
                       chaos_direction_name(f->direction));
        return end_flow(f, CHAOS_FLOW_RESET);
    }
    if (f->faults->blackhole_after == 0)
        start_blackhole(f);
    update_reading(f);
    return 0;
}

void chaos_flow_stop(chaos_flow *f)
{
    ev_io_stop(f->loop, &f->reader);
    ev_io_stop(f->loop, &f->writer);
    ev_timer_stop(f->loop, &f->release_timer);
    f->reading = 0;
    free_queue(f);
}
