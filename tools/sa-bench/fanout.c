/*
 * fanout: S subscribers in one room (or dealt over --rooms), P senders,
 * M messages of B bytes. With --chat the senders are subscribers too.
 *
 * Each text starts "SENDER SEQ SENT_NS " (CLOCK_MONOTONIC nanoseconds;
 * with --rate the time the message was due, so that a sender held back by
 * its window does not hide the wait: no coordinated omission), padded to
 * B bytes. A receiver's latency sample is the time the kernel queued the
 * message on its socket (SO_TIMESTAMPNS) minus SENT_NS: one thread reads
 * every socket here, and a message that reached 1000 sockets at once would
 * otherwise look later on the last socket read than it was. The time this
 * process read it is measured too (read_*).
 *
 * With --rate, message g of the run (counted over all senders, sender
 * g % P) is due at g / rate seconds. A timerfd, armed with nanosecond
 * precision for the next one, wakes the loop when it is due: the schedule
 * holds to microseconds while the process sleeps in between, rather than
 * to the poll's milliseconds or by spinning on the CPU.
 *
 * Flow control is end to end: a sender has at most --window messages that
 * some live receiver has not got yet (and, where the protocol
 * answers publishes, at most --window unanswered). So the queues inside
 * the server stay bounded whichever side is slower, and the figure
 * measured is the throughput of the whole path. Every message is counted
 * per sender in a ring (`pending`: live receivers in the sender's room
 * that still owe it); a receiver that gets SEQ settles every message of
 * that sender up to SEQ (delivery is in order per sender; the ones skipped
 * are lost for it), so a lost message does not stall the window.
 *
 * Receivers are the subscribers (members 0..S-1) and, with --chat, the
 * senders (members S..S+P-1) too; a receiver's row of last_seq is its
 * member index.
 *
 * Ownership: everything hangs off the `fanout` struct on run_fanout's
 * stack and is freed before it returns.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "fleet.h"
#include "histogram.h"
#include "procstat.h"
#include "report.h"
#include "workloads.h"

typedef struct sender {
    fleet_member *member;
    uint64_t sent;     /* seq of the last message sent (seqs start at 1) */
    uint64_t answered; /* publishes acknowledged or rejected, in order */
    uint64_t oldest;   /* lowest seq some live receiver still owes; sent + 1 when none */
    uint32_t *pending; /* its part of fanout.ring: live receivers owing seq (at seq & mask) */
    bool gone;         /* its connection was lost */
} sender;

typedef struct fanout {
    const bench_options *opt;
    const bench_proto *proto;
    struct ev_loop *loop;
    fleet fleet;
    uint32_t subs, senders_count;
    uint32_t receivers_count; /* subs, plus the senders with --chat */
    sender *senders;    /* owned, [senders_count] */
    uint64_t *last_seq; /* owned, [receivers_count * senders_count]: highest seq each got */
    uint32_t *ring;     /* owned: every sender's pending ring, one block */
    uint64_t ring_mask;
    uint32_t *live_receivers; /* owned, [rooms]: receivers still connected, per room */
    char *text;         /* owned: scratch text of opt->text_bytes, padding in place */

    bench_histogram latency;      /* to the arrival on the socket */
    bench_histogram read_latency; /* to the read by this process */
    uint64_t expected;         /* deliveries owed to the receivers live at each send */
    uint64_t received;         /* deliveries to receivers */
    uint64_t skipped;          /* messages a receiver never got though a later one came */
    uint64_t rejected;         /* publishes the server refused */
    uint64_t anomalies;        /* deliveries that make no sense: unknown, duplicate, reordered */
    uint64_t sender_deliveries; /* without --chat: messages senders got anyway (SyncAsync) */
    uint64_t in_flight;        /* sum over senders of messages still owed */
    char first_reject[96];
    char first_anomaly[96];

    bool paced;
    double ns_per_msg;         /* --rate: between two messages of the run */
    uint64_t next_tick;        /* --rate: the next message of the run the timer is for */
    int timer_fd;              /* --rate: owned; -1 when not paced */
    uint64_t t_start, send_deadline, t_last_delivery, t_last_progress, t_send_end;
    bool sending_done, finished;
    ev_timer tick;
    ev_io pacer;               /* --rate: on timer_fd */
} fanout;

/* splitmix64: the padding letters derive from the seed. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Reads a decimal ending in ' ' at text[*pos]; advances past the space. */
static int parse_field(const unsigned char *text, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    size_t start = *pos, i = *pos;
    for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
        if (i - start >= 19)
            return -1;
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (i == start || i >= len || text[i] != ' ')
        return -1;
    *pos = i + 1;
    *out = v;
    return 0;
}

/* Keeps the first problem of a kind for the report. */
__attribute__((format(printf, 3, 4))) static void note(char *slot, size_t size,
                                                      const char *fmt, ...)
{
    if (slot[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot, size, fmt, ap);
    va_end(ap);
}

static void finish(fanout *fo)
{
    if (fo->finished)
        return;
    fo->finished = true;
    ev_break(fo->loop, EVBREAK_ONE);
}

static void sending_over(fanout *fo, uint64_t now)
{
    if (fo->sending_done)
        return;
    fo->sending_done = true;
    fo->t_send_end = now;
    if (fo->paced)
        ev_io_stop(fo->loop, &fo->pacer);
    if (fo->in_flight == 0)
        finish(fo);
}

/* Moves s->oldest past every message nobody owes any more. */
static void advance(fanout *fo, sender *s)
{
    while (s->oldest <= s->sent && s->pending[s->oldest & fo->ring_mask] == 0) {
        s->oldest++;
        fo->in_flight--;
    }
    if (fo->sending_done && fo->in_flight == 0)
        finish(fo);
}

static bool window_open(const fanout *fo, const sender *s)
{
    uint64_t window = fo->opt->window;
    if (s->gone || s->sent >= fo->opt->messages)
        return false;
    if (s->sent + 1 - s->oldest >= window)
        return false;
    return !fo->proto->acks_publish || s->sent - s->answered < window;
}

static void send_one(fanout *fo, sender *s, uint64_t stamp_ns)
{
    uint64_t seq = s->sent + 1;
    char header[64];
    int n = snprintf(header, sizeof header, "%u %llu %llu ", (unsigned)(s - fo->senders),
                     (unsigned long long)seq, (unsigned long long)stamp_ns);
    /* -B is at least 48 and the header at most 6 + 13 + 20 + 3 bytes. */
    memcpy(fo->text, header, (size_t)n);
    const char *room = fo->fleet.room_names[s->member->room];
    if (fo->proto->publish(&s->member->conn, room, seq, fo->text, fo->opt->text_bytes) != 0) {
        fleet_lose(&fo->fleet, s->member, "cannot queue a message");
        return;
    }
    /* With --chat the sender is a live receiver of its room, but not of
     * its own message. */
    uint32_t owed = fo->live_receivers[s->member->room] - (fo->opt->chat ? 1u : 0u);
    s->sent = seq;
    fo->t_last_progress = bench_now_ns();
    s->pending[seq & fo->ring_mask] = owed;
    fo->expected += owed;
    fo->in_flight++;
    advance(fo, s);
}

/* When message `k` (0-based) of sender `s` is due, with --rate. */
static uint64_t due_ns(const fanout *fo, const sender *s, uint64_t k)
{
    uint64_t g = k * fo->senders_count + (uint64_t)(s - fo->senders);
    return fo->t_start + (uint64_t)((double)g * fo->ns_per_msg);
}

/* Sends while the window is open: flat out everything, with --rate what
 * is due by now (stamped with when it was due). */
static void fill(fanout *fo, sender *s, uint64_t now)
{
    if (fo->sending_done)
        return;
    if (now >= fo->send_deadline) {
        sending_over(fo, now);
        return;
    }
    while (window_open(fo, s)) {
        if (!fo->paced) {
            send_one(fo, s, now);
            continue;
        }
        uint64_t due = due_ns(fo, s, s->sent);
        if (due > now)
            break;
        send_one(fo, s, due);
    }
}

/* True when every sender has sent all it will. */
static bool all_sent(const fanout *fo)
{
    for (uint32_t p = 0; p < fo->senders_count; p++) {
        const sender *s = &fo->senders[p];
        if (!s->gone && s->sent < fo->opt->messages)
            return false;
    }
    return true;
}

/* A message reached receiver `m`. */
static void on_delivery(fanout *fo, const fleet_member *m, const bench_event *ev,
                        const bench_rx_time *when)
{
    uint64_t now = when->read_ns;
    size_t pos = 0;
    uint64_t p, seq, stamp;
    if (parse_field(ev->text, ev->text_len, &pos, &p) != 0 ||
        parse_field(ev->text, ev->text_len, &pos, &seq) != 0 ||
        parse_field(ev->text, ev->text_len, &pos, &stamp) != 0 || p >= fo->senders_count) {
        fo->anomalies++;
        note(fo->first_anomaly, sizeof fo->first_anomaly, "a text not sent by this run");
        return;
    }
    sender *s = &fo->senders[p];
    if (s->member->room != m->room || s->member == m) {
        fo->anomalies++;
        note(fo->first_anomaly, sizeof fo->first_anomaly, "sender %llu's message reached %s",
             (unsigned long long)p, s->member == m ? "itself" : "another room");
        return;
    }
    uint64_t *last = &fo->last_seq[(size_t)m->index * fo->senders_count + p];
    if (seq == 0 || seq > s->sent || seq <= *last || *last + 1 < s->oldest) {
        fo->anomalies++;
        note(fo->first_anomaly, sizeof fo->first_anomaly, "%s: sender %llu seq %llu",
             seq <= *last ? "duplicate or out of order" : "not sent (yet)",
             (unsigned long long)p, (unsigned long long)seq);
        return;
    }
    fo->skipped += seq - *last - 1;
    for (uint64_t x = *last + 1; x <= seq; x++)
        s->pending[x & fo->ring_mask]--;
    *last = seq;
    fo->received++;
    hist_record(&fo->latency, when->arrival_ns > stamp ? when->arrival_ns - stamp : 0);
    hist_record(&fo->read_latency, now > stamp ? now - stamp : 0);
    fo->t_last_delivery = now;
    fo->t_last_progress = now;
    advance(fo, s);
    fill(fo, s, now);
}

static void on_event(fleet *f, fleet_member *m, const bench_event *ev,
                     const bench_rx_time *when)
{
    fanout *fo = f->workload;
    uint64_t now = when->read_ns;
    if (fo->finished)
        return;
    bool is_sender = m->index >= fo->subs;
    sender *s = is_sender ? &fo->senders[m->index - fo->subs] : NULL;
    switch (ev->kind) {
    case BENCH_EV_DELIVERY:
        if (m->index < fo->receivers_count)
            on_delivery(fo, m, ev, when);
        else
            fo->sender_deliveries++;
        return;
    case BENCH_EV_REJECTED:
        if (!is_sender) {
            fo->anomalies++;
            note(fo->first_anomaly, sizeof fo->first_anomaly, "subscriber got an error: %s",
                 ev->detail);
            return;
        }
        fo->rejected++;
        note(fo->first_reject, sizeof fo->first_reject, "%s", ev->detail);
        __attribute__((fallthrough)); /* a rejected publish is answered too */
    case BENCH_EV_ACK:
        if (!is_sender || s->answered >= s->sent) {
            fo->anomalies++;
            note(fo->first_anomaly, sizeof fo->first_anomaly, "an answer nobody asked for");
            return;
        }
        s->answered++;
        fo->t_last_progress = now;
        fill(fo, s, now);
        return;
    default:
        return;
    }
}

/* A receiver gone settles everything it still owed; a sender gone sends
 * no more. With --chat a sender is both. */
static void on_lost(fleet *f, fleet_member *m, const char *reason)
{
    (void)reason;
    fanout *fo = f->workload;
    uint64_t now = bench_now_ns();
    if (m->index >= fo->subs) {
        fo->senders[m->index - fo->subs].gone = true;
        if (!fo->sending_done && all_sent(fo))
            sending_over(fo, now);
    }
    if (m->index >= fo->receivers_count)
        return;
    fo->live_receivers[m->room]--;
    for (uint32_t p = 0; p < fo->senders_count; p++) {
        sender *s = &fo->senders[p];
        if (s->member->room != m->room || s->member == m)
            continue;
        uint64_t *last = &fo->last_seq[(size_t)m->index * fo->senders_count + p];
        for (uint64_t x = *last + 1; x <= s->sent; x++)
            s->pending[x & fo->ring_mask]--;
        *last = s->sent;
        advance(fo, s);
        fill(fo, s, now);
    }
}

/* Arms the timer for message `next_tick` of the run. */
static void arm_pacer(fanout *fo)
{
    uint64_t due = fo->t_start + (uint64_t)((double)fo->next_tick * fo->ns_per_msg);
    struct itimerspec when = {.it_value = {.tv_sec = (time_t)(due / 1000000000u),
                                           .tv_nsec = (long)(due % 1000000000u)}};
    if (timerfd_settime(fo->timer_fd, TFD_TIMER_ABSTIME, &when, NULL) != 0) {
        fprintf(stderr, "sa-bench: timerfd_settime: %s\n", strerror(errno));
        sending_over(fo, bench_now_ns());
    }
}

/* --rate: the timer went off; every sender with a message due by now
 * sends it (a sender whose window is shut catches up when it opens). */
static void pacer_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    fanout *fo = w->data;
    uint64_t expirations;
    if (read(fo->timer_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        fprintf(stderr, "sa-bench: reading the timer: %s\n", strerror(errno));
    uint64_t now = bench_now_ns();
    uint64_t due_by_now = (uint64_t)((double)(now - fo->t_start) / fo->ns_per_msg) + 1;
    uint64_t total = fo->opt->messages * fo->senders_count;
    if (due_by_now > total)
        due_by_now = total;
    /* Each sender once: fill sends all that sender has due. */
    uint64_t last = fo->next_tick + fo->senders_count < due_by_now
                        ? fo->next_tick + fo->senders_count
                        : due_by_now;
    for (uint64_t g = fo->next_tick; g < last && !fo->sending_done; g++)
        fill(fo, &fo->senders[g % fo->senders_count], now);
    fo->next_tick = due_by_now > fo->next_tick ? due_by_now : fo->next_tick;
    if (fo->sending_done)
        return;
    if (all_sent(fo)) {
        sending_over(fo, now);
        return;
    }
    if (fo->next_tick >= total) {
        /* Only senders held back by their window are left: they catch up
         * as it opens. */
        ev_io_stop(loop, w);
        return;
    }
    arm_pacer(fo);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    fanout *fo = w->data;
    uint64_t now = bench_now_ns();
    if (!fo->sending_done && (now >= fo->send_deadline || all_sent(fo)))
        sending_over(fo, now);
    /* Nothing moved for --drain seconds, or --drain seconds passed since
     * the last message went out: what is missing by then is lost. */
    uint64_t drain_ns = (uint64_t)(fo->opt->drain * 1e9);
    if (now - fo->t_last_progress > drain_ns ||
        (fo->sending_done && now - fo->t_send_end > drain_ns))
        finish(fo);
}

static void print_report(const fanout *fo, double seconds, double rate, double server_cpu,
                         double bench_cpu)
{
    const bench_options *opt = fo->opt;
    printf("fanout against %s%s%s: S=%u P=%u B=%u in %u room%s%s, %s, window %u\n",
           bench_target_name(opt->target), fo->fleet.engine[0] ? " engine " : "",
           fo->fleet.engine, opt->subscribers, opt->senders, opt->text_bytes, opt->rooms,
           opt->rooms == 1 ? "" : "s", opt->chat ? " (chat: senders receive)" : "",
           fo->paced ? "paced" : "flat out", opt->window);
    uint64_t sent = 0;
    for (uint32_t p = 0; p < fo->senders_count; p++)
        sent += fo->senders[p].sent;
    printf("  messages sent %llu, deliveries %llu of %llu expected (%llu lost) in %.3f s\n",
           (unsigned long long)sent, (unsigned long long)fo->received,
           (unsigned long long)fo->expected, (unsigned long long)(fo->expected - fo->received),
           seconds);
    printf("  %.0f deliveries/s; latency us: p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", rate,
           hist_percentile(&fo->latency, 50) / 1e3, hist_percentile(&fo->latency, 99) / 1e3,
           hist_percentile(&fo->latency, 99.9) / 1e3, fo->latency.max / 1e3);
    printf("  read by sa-bench after us: p50 %.1f  p99 %.1f  max %.1f\n",
           hist_percentile(&fo->read_latency, 50) / 1e3,
           hist_percentile(&fo->read_latency, 99) / 1e3, fo->read_latency.max / 1e3);
    if (server_cpu >= 0)
        printf("  server CPU %.0f %% of one core; sa-bench %.0f %%\n", server_cpu, bench_cpu);
    if (fo->rejected)
        printf("  %llu publishes rejected (first: %s)\n", (unsigned long long)fo->rejected,
               fo->first_reject);
    if (fo->anomalies)
        printf("  %llu strange deliveries (first: %s)\n", (unsigned long long)fo->anomalies,
               fo->first_anomaly);
    if (fo->fleet.lost)
        printf("  %u connections lost (first: %s)\n", fo->fleet.lost, fo->fleet.first_loss);
}

static void add_results(const fanout *fo, cJSON *summary, double seconds, double rate,
                        double server_cpu, double bench_cpu)
{
    const bench_options *opt = fo->opt;
    uint64_t sent = 0;
    for (uint32_t p = 0; p < fo->senders_count; p++)
        sent += fo->senders[p].sent;
    report_num(summary, "S", opt->subscribers, 0);
    report_num(summary, "P", opt->senders, 0);
    report_num(summary, "M", (double)opt->messages, 0);
    report_num(summary, "B", opt->text_bytes, 0);
    report_num(summary, "rate", opt->rate, 3);
    report_num(summary, "window", opt->window, 0);
    report_num(summary, "rooms", opt->rooms, 0);
    cJSON_AddBoolToObject(summary, "chat", opt->chat);
    report_num(summary, "sent", (double)sent, 0);
    report_num(summary, "expected", (double)fo->expected, 0);
    report_num(summary, "received", (double)fo->received, 0);
    report_num(summary, "lost", (double)(fo->expected - fo->received), 0);
    report_num(summary, "skipped", (double)fo->skipped, 0);
    report_num(summary, "rejected", (double)fo->rejected, 0);
    report_num(summary, "anomalies", (double)fo->anomalies, 0);
    report_num(summary, "lost_connections", fo->fleet.lost, 0);
    report_num(summary, "sender_deliveries", (double)fo->sender_deliveries, 0);
    report_num(summary, "seconds", seconds, 6);
    report_num(summary, "send_seconds", (fo->t_send_end - fo->t_start) / 1e9, 6);
    report_num(summary, "deliveries_per_s", rate, 0);
    report_num(summary, "msgs_per_s", seconds > 0 ? (double)sent / seconds : 0, 0);
    report_num(summary, "p50_us", hist_percentile(&fo->latency, 50) / 1e3, 3);
    report_num(summary, "p99_us", hist_percentile(&fo->latency, 99) / 1e3, 3);
    report_num(summary, "p999_us", hist_percentile(&fo->latency, 99.9) / 1e3, 3);
    report_num(summary, "max_us", fo->latency.max / 1e3, 3);
    report_num(summary, "mean_us", hist_mean(&fo->latency) / 1e3, 3);
    report_num(summary, "read_p50_us", hist_percentile(&fo->read_latency, 50) / 1e3, 3);
    report_num(summary, "read_p99_us", hist_percentile(&fo->read_latency, 99) / 1e3, 3);
    report_num(summary, "read_max_us", fo->read_latency.max / 1e3, 3);
    if (server_cpu >= 0)
        report_num(summary, "server_cpu_pct", server_cpu, 1);
    report_num(summary, "bench_cpu_pct", bench_cpu, 1);
    if (fo->fleet.lost)
        report_str(summary, "first_error", fo->fleet.first_loss);
}

/* Sets the senders and the rings up once everyone is in the room. */
static int prepare(fanout *fo)
{
    const bench_options *opt = fo->opt;
    uint64_t ring = 1;
    while (ring < opt->window)
        ring <<= 1;
    fo->ring_mask = ring - 1;
    fo->senders = calloc(fo->senders_count, sizeof *fo->senders);
    fo->ring = calloc((size_t)fo->senders_count * ring, sizeof *fo->ring);
    fo->last_seq =
        calloc((size_t)fo->receivers_count * fo->senders_count + 1, sizeof *fo->last_seq);
    fo->live_receivers = calloc(opt->rooms, sizeof *fo->live_receivers);
    fo->text = malloc(opt->text_bytes);
    if (!fo->senders || !fo->ring || !fo->last_seq || !fo->live_receivers || !fo->text)
        return -1;
    if (fo->paced) {
        fo->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (fo->timer_fd < 0)
            return -1;
        /* The default 50 us of slack would blur a 100 us schedule. */
        prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    }
    uint64_t state = opt->seed;
    for (uint32_t i = 0; i < opt->text_bytes; i++)
        fo->text[i] = (char)('a' + next_random(&state) % 26);
    for (uint32_t p = 0; p < fo->senders_count; p++) {
        sender *s = &fo->senders[p];
        s->member = &fo->fleet.members[fo->subs + p];
        s->oldest = 1;
        s->pending = fo->ring + (size_t)p * ring;
    }
    for (uint32_t i = 0; i < fo->receivers_count; i++)
        fo->live_receivers[fo->fleet.members[i].room]++;
    return 0;
}

static void free_fanout(fanout *fo)
{
    free(fo->senders);
    free(fo->ring);
    free(fo->last_seq);
    free(fo->live_receivers);
    free(fo->text);
    if (fo->timer_fd >= 0)
        close(fo->timer_fd);
    fleet_free(&fo->fleet);
}

/* Runs the loop from the first message to the end of the drain. */
static void run_messages(fanout *fo)
{
    uint64_t now = bench_now_ns();
    fo->t_start = fo->t_last_progress = fo->t_last_delivery = now;
    fo->send_deadline = now + (uint64_t)(fo->opt->duration * 1e9);
    ev_timer_init(&fo->tick, tick_cb, 0.01, 0.01);
    fo->tick.data = fo;
    ev_timer_start(fo->loop, &fo->tick);
    if (fo->paced) {
        fo->ns_per_msg = 1e9 / fo->opt->rate;
        ev_io_init(&fo->pacer, pacer_cb, fo->timer_fd, EV_READ);
        fo->pacer.data = fo;
        ev_io_start(fo->loop, &fo->pacer);
        fo->next_tick = 0;
        arm_pacer(fo);
    } else {
        for (uint32_t p = 0; p < fo->senders_count; p++)
            fill(fo, &fo->senders[p], now);
    }
    if (!fo->finished)
        ev_run(fo->loop, 0);
    ev_timer_stop(fo->loop, &fo->tick);
    if (fo->paced)
        ev_io_stop(fo->loop, &fo->pacer);
    if (!fo->sending_done) {
        fo->sending_done = true;
        fo->t_send_end = bench_now_ns();
    }
}

int run_fanout(const bench_options *opt, const bench_proto *proto, struct ev_loop *loop,
               cJSON *summary)
{
    fanout fo = {.opt = opt, .proto = proto, .loop = loop, .subs = opt->subscribers,
                 .senders_count = opt->senders, .paced = opt->rate > 0};
    fo.receivers_count = opt->chat ? opt->subscribers + opt->senders : opt->subscribers;
    hist_init(&fo.latency);
    hist_init(&fo.read_latency);
    fo.timer_fd = -1;
    if ((uint64_t)fo.receivers_count * opt->senders > 100000000u) {
        fprintf(stderr, "sa-bench: receivers x senders above 10^8 is more than this tool keeps track of\n");
        report_str(summary, "error", "receivers x senders too large");
        return 1;
    }
    char err[256];
    uint32_t count = opt->subscribers + opt->senders;
    if (fleet_init(&fo.fleet, opt, proto, loop, count, opt->rooms, opt->sources, err,
                   sizeof err) != 0) {
        fprintf(stderr, "sa-bench: %s\n", err);
        report_str(summary, "error", err);
        return 1;
    }
    fo.fleet.net.rx_timestamps = true;
    for (uint32_t i = 0; i < count; i++) {
        fleet_member *m = &fo.fleet.members[i];
        bool is_sender = i >= fo.subs;
        m->room = (is_sender ? i - fo.subs : i) % opt->rooms;
        m->joins = !is_sender || proto->publisher_joins || opt->chat;
    }
    uint64_t setup_start = bench_now_ns();
    uint32_t ready = fleet_setup(&fo.fleet);
    double setup_seconds = (bench_now_ns() - setup_start) / 1e9;
    report_num(summary, "setup_seconds", setup_seconds, 3);
    if (fo.fleet.engine[0])
        report_str(summary, "engine", fo.fleet.engine);
    if (ready < count || fo.fleet.lost > 0) {
        const char *why = fo.fleet.first_error[0] ? fo.fleet.first_error : fo.fleet.first_loss;
        fprintf(stderr, "sa-bench: %u of %u connections set up; %s\n",
                ready - fo.fleet.lost, count, why);
        report_str(summary, "error", why);
        free_fanout(&fo);
        return 1;
    }
    if (prepare(&fo) != 0) {
        fprintf(stderr, "sa-bench: out of memory or timers\n");
        report_str(summary, "error", "out of memory or timers");
        free_fanout(&fo);
        return 1;
    }
    if (!opt->json)
        fprintf(stderr, "sa-bench: %u connections set up in %.2f s; sending\n", count,
                setup_seconds);
    fo.fleet.workload = &fo;
    fo.fleet.on_event = on_event;
    fo.fleet.on_lost = on_lost;

    double server_cpu0 = opt->server_pid ? proc_cpu_seconds(opt->server_pid) : -1;
    double bench_cpu0 = self_cpu_seconds();
    run_messages(&fo);
    double wall = (bench_now_ns() - fo.t_start) / 1e9;
    double server_cpu = -1;
    if (server_cpu0 >= 0) {
        double cpu1 = proc_cpu_seconds(opt->server_pid);
        if (cpu1 >= 0 && wall > 0)
            server_cpu = (cpu1 - server_cpu0) / wall * 100;
    }
    double bench_cpu = wall > 0 ? (self_cpu_seconds() - bench_cpu0) / wall * 100 : 0;

    /* Throughput over the time deliveries took: first send to last delivery. */
    double seconds = fo.received ? (fo.t_last_delivery - fo.t_start) / 1e9
                                 : (fo.t_send_end - fo.t_start) / 1e9;
    double rate = seconds > 0 ? (double)fo.received / seconds : 0;
    add_results(&fo, summary, seconds, rate, server_cpu, bench_cpu);
    if (!opt->json)
        print_report(&fo, seconds, rate, server_cpu, bench_cpu);
    free_fanout(&fo);
    return 0;
}
