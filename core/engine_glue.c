#include "engine_glue.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "admission.h"
#include "dispatch.h"
#include "log.h"
#include "net.h"
#include "server.h"
#include "session.h"
#include "timer.h"
#include "tls.h"

/* Plaintext taken out of TLS per step; a step ends where a record ends, and
 * the steps go on until everything fed is used up. */
#define TLS_PLAINTEXT_STEP (16u * 1024u)

static sa_session *glue_open(sa_conn *conn, const char *peer)
{
    const sa_server *srv = sa_the_server;
    sa_session *s = sa_session_new(conn, peer, srv->settings.max_frame, srv->handler_count,
                                   sa_monotonic_ms());
    if (!s) {
        sa_log(SA_LOG_ERROR, "core", "%s: out of memory for a new session", peer);
        return NULL;
    }
    char *address = sa_peer_address(peer);
    enum sa_admission verdict =
        address ? sa_admission_acquire(address, srv->settings.max_clients,
                                       srv->settings.max_per_address)
                : SA_ADMIT_SERVER_FULL;
    free(address);
    if (verdict != SA_ADMIT_OK) {
        sa_log(SA_LOG_WARN, "core", "%s: refused, %s reached", peer,
               verdict == SA_ADMIT_ADDRESS_FULL ? "max_per_address" : "max_clients");
        sa_session_close(s, "server_full");
        return s;
    }
    s->counted = 1;
    sa_log(SA_LOG_DEBUG, "core", "%s: connected", peer);
    return s;
}

static sa_session *glue_open_tls(sa_conn *conn, const char *peer, sa_tls **tls)
{
    sa_tls *t = sa_tls_conn_new(sa_the_server->tls_ctx);
    if (!t) {
        sa_log(SA_LOG_ERROR, "core", "%s: out of memory for a TLS connection", peer);
        return NULL;
    }
    sa_session *s = glue_open(conn, peer);
    if (!s) {
        sa_tls_conn_free(t);
        return NULL;
    }
    s->tls = t;
    *tls = t;
    return s;
}

/* A fatal framing error: say why, say bye, stop reading. */
static void frame_error(sa_session *s, const char *code, const char *message)
{
    sa_frame *err = sa_reply_frame("error", NULL, NULL, code, message, NULL);
    if (err) {
        sa_session_send(s, err);
        sa_frame_unref(err);
    }
    sa_session_close(s, code);
    s->input_stopped = 1;
}

static int on_frame(void *arg, const unsigned char *payload, size_t len)
{
    sa_session *s = arg;
    s->frames_received++;
    sa_dispatch_frame(s, payload, len);
    return sa_session_is_closing(s);
}

/* Closes without a bye: for a connection that cannot carry one. */
static int stop_silently(sa_session *s)
{
    sa_session_close(s, NULL);
    s->input_stopped = 1;
    return -1;
}

static int input_stopped(sa_session *s)
{
    if (s->input_stopped || sa_session_is_closing(s))
        s->input_stopped = 1;
    return s->input_stopped;
}

static int deliver_plaintext(sa_session *s, const unsigned char *data, size_t len)
{
    if (input_stopped(s))
        return -1;
    s->last_rx_ms = sa_monotonic_ms();
    int stopped = 0;
    uint64_t frames_before = s->frames_received;
    enum sa_decode_status st = sa_decoder_feed(&s->decoder, data, len, on_frame, s, &stopped);
    char message[96];
    switch (st) {
    case SA_DECODE_OK:
        break;
    case SA_DECODE_EMPTY:
        frame_error(s, "bad_frame", "a frame must not be empty");
        break;
    case SA_DECODE_TOO_LARGE:
        snprintf(message, sizeof message, "frame longer than max_frame (%" PRIu32 " bytes)",
                 sa_the_server->settings.max_frame);
        frame_error(s, "frame_too_large", message);
        break;
    case SA_DECODE_NOMEM:
        sa_log(SA_LOG_ERROR, "core", "%s: out of memory for a frame", s->peer);
        sa_session_close(s, NULL);
        s->input_stopped = 1;
        break;
    }
    if (stopped || sa_session_is_closing(s))
        s->input_stopped = 1;
    /* The frame held now began in this read if another one ended in it. */
    if (sa_decoder_idle(&s->decoder))
        s->frame_started_ms = 0;
    else if (!s->frame_started_ms || s->frames_received != frames_before)
        s->frame_started_ms = s->last_rx_ms;
    return s->input_stopped ? -1 : 0;
}

static int tls_input(sa_session *s, const unsigned char *data, size_t len)
{
    if (input_stopped(s))
        return -1;
    if (sa_tls_conn_feed(s->tls, data, len) != 0) {
        sa_log(SA_LOG_ERROR, "core", "%s: out of memory for TLS input", s->peer);
        return stop_silently(s);
    }
    unsigned char plain[TLS_PLAINTEXT_STEP];
    char why[256];
    int handshaking = sa_tls_conn_state(s->tls) == SA_TLS_STATE_HANDSHAKE;
    for (;;) {
        size_t got = 0;
        enum sa_tls_read_status status =
            sa_tls_conn_read(s->tls, plain, sizeof plain, &got, why, sizeof why);
        /* handshake_timeout bounded the handshake; hello_timeout starts
         * now, so that a slow handshake does not eat into it. */
        if (handshaking && sa_tls_conn_state(s->tls) == SA_TLS_STATE_ESTABLISHED) {
            s->hello_wait_from_ms = sa_monotonic_ms();
            handshaking = 0;
        }
        switch (status) {
        case SA_TLS_READ_DATA:
            if (deliver_plaintext(s, plain, got) != 0)
                return -1;
            break;
        case SA_TLS_READ_MORE:
            return 0;
        case SA_TLS_READ_EOF:
            sa_log(SA_LOG_DEBUG, "core", "%s: the client ended its TLS stream", s->peer);
            return stop_silently(s);
        case SA_TLS_READ_FAILED:
            sa_log(SA_LOG_INFO, "core", "%s: TLS failed, closing: %s", s->peer, why);
            return stop_silently(s);
        }
    }
}

static int glue_input(sa_session *s, const unsigned char *data, size_t len)
{
    return s->tls ? tls_input(s, data, len) : deliver_plaintext(s, data, len);
}

static void send_server_ping(sa_session *s)
{
    cJSON *ping = cJSON_CreateObject();
    if (ping && cJSON_AddStringToObject(ping, "type", "ping") &&
        cJSON_AddNumberToObject(ping, "ts", (double)sa_wall_ms())) {
        sa_frame *f = sa_frame_from_json(ping);
        if (f) {
            sa_session_send(s, f);
            sa_frame_unref(f);
        }
    }
    cJSON_Delete(ping);
}

static int64_t glue_timer(sa_session *s, int64_t now)
{
    const sa_server_settings *set = &sa_the_server->settings;
    const int64_t recheck_ms = 1000;
    if (sa_session_is_closing(s))
        return recheck_ms;
    if (s->frame_started_ms && now - s->frame_started_ms >= set->frame_timeout_ms) {
        sa_log(SA_LOG_INFO, "core", "%s: a frame took longer than %" PRId64 " ms, closing",
               s->peer, set->frame_timeout_ms);
        sa_session_close(s, "idle_timeout");
        return recheck_ms;
    }
    /* The engine re-arms the timer only when it fires, so a frame begun
     * after this call is noticed at the next one: waking at least every
     * frame_timeout bounds a stalled frame's life to twice that. */
    int64_t frame_deadline = s->frame_started_ms
                                 ? s->frame_started_ms + set->frame_timeout_ms - now
                                 : set->frame_timeout_ms;
    if (!s->name) {
        int64_t deadline = s->hello_wait_from_ms + set->hello_timeout_ms;
        if (s->tls && sa_tls_conn_state(s->tls) == SA_TLS_STATE_HANDSHAKE) {
            int64_t handshake_deadline = s->opened_ms + set->tls_handshake_timeout_ms;
            if (now >= handshake_deadline) {
                sa_log(SA_LOG_INFO, "core", "%s: no TLS handshake within %" PRId64 " ms, closing",
                       s->peer, set->tls_handshake_timeout_ms);
                sa_tls_conn_fail(s->tls);
                sa_session_close(s, NULL);
                return recheck_ms;
            }
            if (handshake_deadline < deadline)
                deadline = handshake_deadline;
        }
        if (now >= deadline) {
            sa_log(SA_LOG_DEBUG, "core", "%s: no hello in time", s->peer);
            sa_session_close(s, "hello_timeout");
            return recheck_ms;
        }
        /* Not later than one heartbeat interval: the timer is only re-armed
         * when it fires, and after hello the heartbeat needs it. */
        int64_t left = deadline - now;
        if (left > set->heartbeat_interval_ms)
            left = set->heartbeat_interval_ms;
        return left < frame_deadline ? left : frame_deadline;
    }
    int64_t silent = now - s->last_rx_ms;
    if (silent >= set->heartbeat_timeout_ms) {
        sa_log(SA_LOG_INFO, "core", "%s (%s): silent for %" PRId64 " ms, closing", s->peer,
               s->name, silent);
        sa_session_close(s, "idle_timeout");
        return recheck_ms;
    }
    int64_t next = s->last_rx_ms + set->heartbeat_timeout_ms;
    if (s->last_ping_ms <= s->last_rx_ms) {
        int64_t ping_at = s->last_rx_ms + set->heartbeat_interval_ms;
        if (now >= ping_at) {
            send_server_ping(s);
            s->last_ping_ms = now;
        } else if (ping_at < next) {
            next = ping_at;
        }
    }
    int64_t delay = next > now ? next - now : 1;
    return delay < frame_deadline ? delay : frame_deadline;
}

static void glue_closed(sa_session *s)
{
    sa_session_mark_gone(s);
    if (s->name) {
        sa_dispatch_departure(s);
        sa_log(SA_LOG_DEBUG, "core", "%s (%s): disconnected", s->peer, s->name);
    } else {
        sa_log(SA_LOG_DEBUG, "core", "%s: disconnected", s->peer);
    }
    char *address = s->counted ? sa_peer_address(s->peer) : NULL;
    if (address)
        sa_admission_release(address);
    else if (s->counted)
        sa_log(SA_LOG_ERROR, "core", "%s: out of memory releasing its admission", s->peer);
    free(address);
    sa_session_unref(s);
}

static void glue_writable(sa_session *s)
{
    uint64_t wanted = atomic_exchange(&s->writable_wanted, 0);
    const sa_server *srv = sa_the_server;
    for (size_t i = 0; wanted && i < srv->handler_count; i++)
        if ((wanted & (UINT64_C(1) << i)) && srv->handlers[i].loaded.desc->on_writable)
            srv->handlers[i].loaded.desc->on_writable(&srv->handlers[i], s);
}

__attribute__((format(printf, 2, 3))) static void glue_log(enum sa_log_level level,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sa_logv(level, sa_the_server->settings.engine, fmt, ap);
    va_end(ap);
}

void sa_engine_glue_init(sa_engine_core *core, const sa_engine_config *config)
{
    *core = (sa_engine_core){
        .config = config,
        .log = glue_log,
        .listen_tcp = sa_net_listen_tcp,
        .open = glue_open,
        .input = glue_input,
        .timer = glue_timer,
        .closed = glue_closed,
        .writable = glue_writable,
        .bye_frame = sa_bye_frame,
        .frame_ref = sa_frame_ref,
        .frame_unref = sa_frame_unref,
        .monotonic_ms = sa_monotonic_ms,
        .listen_tls = sa_net_listen_tls,
        .open_tls = glue_open_tls,
        .tls_state = sa_tls_conn_state,
        .tls_encrypt = sa_tls_conn_encrypt,
        .tls_output = sa_tls_conn_output,
        .tls_output_done = sa_tls_conn_output_done,
        .tls_close_notify = sa_tls_conn_close_notify,
    };
}
