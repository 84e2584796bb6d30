/*
 * chat: text messages between connected users (PROTOCOL.md §6).
 *
 *   msg {text, room?} -> "message" event to the room's other members, or to
 *                       every other connected user when rooms is not loaded
 *   dm  {to, text}  -> "message" event to one user
 *
 * Both reply ok {msg_id, ts} once the event is queued to every addressee,
 * and share one per-user token bucket (config [chat] rate).
 *
 * Rooms: when a plugin provides the "rooms" service (syncasync/rooms.h),
 * msg needs a "room" the sender is in and goes to that room's other
 * members; without it, msg goes to everyone and a msg naming a room gets
 * no_such_room (a message meant for a room is never broadcast).
 *
 * State and threading:
 *   - `chat` below is written by init() only and read-only afterwards,
 *     except `next_msg_seq`, which is atomic.
 *   - Each session's token bucket is malloc'd by this plugin in that
 *     session's first msg/dm, stored with session_set_data, and freed by
 *     this plugin in on_disconnect. Only the owning session's lane reads or
 *     writes it: sending to another session goes through the host and never
 *     touches that session's bucket. Hence no lock.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <syncasync/plugin.h>
#include <syncasync/rooms.h>

#define CHAT_MAX_TEXT_LIMIT 1048576
#define CHAT_MAX_RATE 1000000
/* Base-36 text of a uint64_t is at most 13 digits. */
#define BASE36_MAX_DIGITS 13

static struct {
    const sa_host *host;
    sa_plugin_ctx *ctx;
    const sa_rooms_service *rooms; /* NULL when no rooms plugin is loaded */
    size_t max_text; /* bytes */
    double rate;     /* messages per second; 0 = no limit */
    /* msg_id prefix: the start time, so ids stay unique across restarts. */
    char id_prefix[BASE36_MAX_DIGITS + 1];
    atomic_uint_fast64_t next_msg_seq;
} chat;

/* One session's token bucket: holds at most `rate` tokens (the burst),
 * gains `rate` tokens per second, and each msg/dm spends one. */
typedef struct rate_bucket {
    double tokens;
    double refilled_at; /* CLOCK_MONOTONIC seconds of the last refill */
} rate_bucket;

/* ---- small helpers ------------------------------------------------------ */

/* Seconds on CLOCK_MONOTONIC, which wall-clock changes do not disturb. */
static int monotonic_seconds(double *out)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return -1;
    *out = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    return 0;
}

/* Writes `value` in base 36 to out (at least BASE36_MAX_DIGITS + 1 bytes). */
static void format_base36(uint64_t value, char *out)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    char reversed[BASE36_MAX_DIGITS];
    size_t n = 0;
    do {
        reversed[n++] = digits[value % 36];
        value /= 36;
    } while (value);
    for (size_t i = 0; i < n; i++)
        out[i] = reversed[n - 1 - i];
    out[n] = '\0';
}

/* Fills `out` with "<start ms>-<sequence>", both base 36. */
static void new_msg_id(char out[2 * BASE36_MAX_DIGITS + 2])
{
    uint64_t seq = atomic_fetch_add(&chat.next_msg_seq, 1);
    size_t prefix_len = strlen(chat.id_prefix);
    memcpy(out, chat.id_prefix, prefix_len);
    out[prefix_len] = '-';
    format_base36(seq, out + prefix_len + 1);
}

/* Replies bad_request naming the field. */
static void reply_bad_field(const sa_request *req, const char *message)
{
    chat.host->reply_error(req, "bad_request", message, NULL);
}

/* Reads the request's "text". Returns it, or NULL after replying. */
static const char *request_text(const sa_request *req)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(req->body, "text");
    if (!cJSON_IsString(text)) {
        reply_bad_field(req, "text must be a string");
        return NULL;
    }
    /* The host rejects \u0000 escapes, so strlen is the true byte length. */
    if (strlen(text->valuestring) > chat.max_text) {
        char *message = NULL;
        if (asprintf(&message, "text is longer than %zu bytes", chat.max_text) < 0)
            message = NULL;
        chat.host->reply_error(req, "text_too_long", message ? message : "text is too long",
                               NULL);
        free(message);
        return NULL;
    }
    return text->valuestring;
}

/* Spends one token of the sender's bucket. Returns 0, or -1 after replying
 * rate_limited (or internal when the bucket cannot be made). */
static int take_token(const sa_request *req)
{
    double now;
    /* A clock that cannot be read must not silence anyone: let it pass. */
    if (chat.rate == 0 || monotonic_seconds(&now) != 0)
        return 0;
    rate_bucket *bucket = chat.host->session_get_data(chat.ctx, req->session);
    if (!bucket) {
        bucket = malloc(sizeof *bucket);
        if (!bucket) {
            chat.host->reply_error(req, "internal", "out of memory", NULL);
            return -1;
        }
        *bucket = (rate_bucket){.tokens = chat.rate, .refilled_at = now};
        chat.host->session_set_data(chat.ctx, req->session, bucket);
    }
    bucket->tokens += (now - bucket->refilled_at) * chat.rate;
    if (bucket->tokens > chat.rate)
        bucket->tokens = chat.rate;
    bucket->refilled_at = now;
    if (bucket->tokens < 1) {
        char *message = NULL;
        if (asprintf(&message, "more than %.0f messages per second", chat.rate) < 0)
            message = NULL;
        chat.host->reply_error(req, "rate_limited", message ? message : "too many messages",
                               NULL);
        free(message);
        return -1;
    }
    bucket->tokens -= 1;
    return 0;
}

/* Builds a "message" event with `room` or `to` (both NULL for a broadcast
 * without rooms). The caller owns the result (cJSON_Delete). NULL when out
 * of memory. */
static cJSON *message_event(const char *room, const char *to, const char *from,
                            const char *text, int64_t ts, const char *msg_id)
{
    cJSON *event = cJSON_CreateObject();
    if (!event || !cJSON_AddStringToObject(event, "type", "message") ||
        (room && !cJSON_AddStringToObject(event, "room", room)) ||
        (to && !cJSON_AddStringToObject(event, "to", to)) ||
        !cJSON_AddStringToObject(event, "from", from) ||
        !cJSON_AddStringToObject(event, "text", text) ||
        !cJSON_AddNumberToObject(event, "ts", (double)ts) ||
        !cJSON_AddStringToObject(event, "msg_id", msg_id)) {
        cJSON_Delete(event);
        return NULL;
    }
    return event;
}

/* Replies ok {msg_id, ts}. Reply failures are not checked here or
 * elsewhere: they mean the sender is gone, and nobody is left to tell. */
static void reply_sent(const sa_request *req, const char *msg_id, int64_t ts)
{
    cJSON *result = cJSON_CreateObject();
    if (!result || !cJSON_AddStringToObject(result, "msg_id", msg_id) ||
        !cJSON_AddNumberToObject(result, "ts", (double)ts))
        chat.host->reply_error(req, "internal", "out of memory", NULL);
    else
        chat.host->reply_ok(req, result);
    cJSON_Delete(result);
}

/* ---- msg ---------------------------------------------------------------- */

/* Replies the error code the rooms service gave. */
static void reply_room_error(const sa_request *req, const char *code)
{
    const char *message = strcmp(code, "bad_room") == 0
                              ? "room must be 1 to 64 bytes of A-Z a-z 0-9 _ . -"
                          : strcmp(code, "no_such_room") == 0 ? "no such room"
                                                              : "you are not in that room";
    chat.host->reply_error(req, code, message, NULL);
}

typedef struct broadcast {
    sa_session *sender;
    sa_frame *frame;
} broadcast;

/* Runs under the host's registry lock: only sends. A failed send means
 * that session is closing, which is no concern of the sender's. */
static int send_to_other(sa_session *s, void *arg)
{
    const broadcast *b = arg;
    if (s != b->sender)
        chat.host->send_frame(s, b->frame);
    return 0;
}

static void handle_msg(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const char *text = request_text(req);
    if (!text)
        return;
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(req->body, "room");
    char room_name[SA_ROOM_NAME_MAX + 1] = "";
    if (chat.rooms) {
        if (!room) {
            reply_bad_field(req, "msg needs the room to send to");
            return;
        }
        const char *code = cJSON_IsString(room)
                               ? chat.rooms->check_member(room->valuestring, req->session,
                                                          room_name)
                               : "bad_room";
        if (code) {
            reply_room_error(req, code);
            return;
        }
    } else if (room) {
        if (!cJSON_IsString(room))
            reply_bad_field(req, "room must be a string");
        else
            chat.host->reply_error(req, "no_such_room", "rooms are not enabled on this server",
                                   NULL);
        return;
    }
    if (take_token(req) != 0)
        return;

    char msg_id[2 * BASE36_MAX_DIGITS + 2];
    new_msg_id(msg_id);
    int64_t ts = chat.host->now_ms();
    cJSON *event = message_event(chat.rooms ? room_name : NULL, NULL,
                                 chat.host->session_name(req->session), text, ts, msg_id);
    sa_frame *frame = event ? chat.host->frame_new(event) : NULL;
    cJSON_Delete(event);
    if (!frame) {
        chat.host->reply_error(req, "internal", "out of memory", NULL);
        return;
    }
    if (chat.rooms) {
        /* Re-checked under the rooms lock: nothing is sent when the sender
         * is no longer a member. */
        const char *code = chat.rooms->send_to_room(room_name, req->session, frame);
        chat.host->frame_release(frame);
        if (code)
            reply_room_error(req, code);
        else
            reply_sent(req, msg_id, ts);
        return;
    }
    broadcast b = {.sender = req->session, .frame = frame};
    chat.host->session_foreach(send_to_other, &b);
    chat.host->frame_release(frame);
    reply_sent(req, msg_id, ts);
}

/* ---- dm ----------------------------------------------------------------- */

static void handle_dm(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(req->body, "to");
    if (!cJSON_IsString(to)) {
        reply_bad_field(req, "to must be a string");
        return;
    }
    const char *text = request_text(req);
    if (!text)
        return;
    /* A dm to someone absent still spends a token: probing names is
     * traffic like any other. */
    if (take_token(req) != 0)
        return;

    sa_session *target = chat.host->session_find(to->valuestring);
    if (!target) {
        char *message = NULL;
        if (asprintf(&message, "no user named %s", to->valuestring) < 0)
            message = NULL;
        chat.host->reply_error(req, "no_such_user", message ? message : "no such user", NULL);
        free(message);
        return;
    }
    char msg_id[2 * BASE36_MAX_DIGITS + 2];
    new_msg_id(msg_id);
    int64_t ts = chat.host->now_ms();
    cJSON *event = message_event(NULL, chat.host->session_name(target),
                                 chat.host->session_name(req->session), text, ts, msg_id);
    if (!event) {
        chat.host->reply_error(req, "internal", "out of memory", NULL);
    } else {
        /* A target that is just leaving makes this a no-op; the sender
         * still gets ok, as if it had left a moment later. */
        chat.host->send_json(target, event);
        reply_sent(req, msg_id, ts);
    }
    cJSON_Delete(event);
    chat.host->session_unref(target);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void chat_disconnect(sa_plugin_ctx *ctx, sa_session *s)
{
    free(chat.host->session_get_data(ctx, s));
    chat.host->session_set_data(ctx, s, NULL);
}

static int chat_init(sa_plugin_ctx *ctx, const sa_host *host)
{
    chat.host = host;
    chat.ctx = ctx;
    chat.rooms = host->service_get(SA_ROOMS_SERVICE);
    chat.max_text = (size_t)host->config_int(ctx, "max_text");
    chat.rate = (double)host->config_int(ctx, "rate");
    int64_t start_ms = host->now_ms();
    format_base36(start_ms > 0 ? (uint64_t)start_ms : 0, chat.id_prefix);
    atomic_init(&chat.next_msg_seq, 1);
    if (host->register_request(ctx, "msg", handle_msg) != 0 ||
        host->register_request(ctx, "dm", handle_dm) != 0)
        return -1;
    if (chat.rate == 0)
        host->log(ctx, SA_LOG_INFO, "max_text %zu bytes, no rate limit", chat.max_text);
    else
        host->log(ctx, SA_LOG_INFO, "max_text %zu bytes, rate %.0f messages/s per user",
                  chat.max_text, chat.rate);
    return 0;
}

static const sa_config_key chat_config[] = {
    {"max_text", SA_CFG_INT, "16384", 1, CHAT_MAX_TEXT_LIMIT,
     "longest message text, in bytes"},
    {"rate", SA_CFG_INT, "50", 0, CHAT_MAX_RATE,
     "messages per second per user, burst = rate; 0 = no limit"},
    {NULL, 0, NULL, 0, 0, NULL},
};

static const char *const chat_uses[] = {SA_ROOMS_SERVICE, NULL};

static const sa_plugin chat_plugin = {
    .abi = SA_ABI_VERSION,
    .kind = SA_PLUGIN_HANDLER,
    .name = "chat",
    .version = "1.0",
    .description = "text messages to everyone (msg) and to one user (dm)",
    .config_keys = chat_config,
    .uses = chat_uses,
    .init = chat_init,
    .on_disconnect = chat_disconnect,
};

SA_PLUGIN_DEFINE(chat_plugin)
