#include "ui.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "codec.h"
#include "sa_display.h"
#include "render.h"
#include "ui_files.h"

/* Requests in flight before input is paused: bounds what a fast pipe into
 * stdin can queue, the same way in both modes. */
#define UI_MAX_PENDING 64
/* What sending adds to a request's JSON: `,"id":` and up to 20 digits. */
#define UI_ID_ALLOWANCE 32

/* One request waiting for its reply; the ui's until the reply comes. */
struct ui_pending {
    struct ui_pending *next;
    int64_t id;
    int restore;     /* sent by a reconnect to restore rooms or status */
    char *room;      /* owned: the room a restoring join is for, else NULL */
};

/* A line typed while disconnected. */
struct ui_line {
    struct ui_line *next;
    size_t len;
    char text[]; /* len bytes and a NUL */
};

int64_t ui_now_ms(void)
{
    struct timespec ts;
    /* Cannot fail on Linux for a valid pointer; 0 would only fire the
     * heartbeat and deadlines early, never hang. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double wall_clock_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (double)ts.tv_sec * 1000 + (double)(ts.tv_nsec / 1000000);
}

void ui_init(ui *u, const client_options *opt, const ui_transport *transport)
{
    memset(u, 0, sizeof *u);
    u->opt = opt;
    u->transport = *transport;
    u->phase = UI_HELLO;
    u->hello_id = -1;
    u->initial_join_id = -1;
    u->max_frame = SA_DEFAULT_MAX_FRAME;
    line_reader_init(&u->input, SA_DEFAULT_MAX_FRAME);
    sa_reconnect_init(&u->reconnect, opt->common.retries);
}

static void pending_clear(ui *u)
{
    while (u->pending_head) {
        ui_pending *p = u->pending_head;
        u->pending_head = p->next;
        free(p->room);
        free(p);
    }
    u->pending_tail = NULL;
    u->pending_count = 0;
    u->restore_pending = 0;
}

static void offline_clear(ui *u)
{
    while (u->offline_head) {
        ui_line *l = u->offline_head;
        u->offline_head = l->next;
        free(l);
    }
    u->offline_tail = NULL;
    u->offline_count = u->offline_bytes = 0;
}

void ui_free(ui *u)
{
    pending_clear(u);
    offline_clear(u);
    free(u->current_room);
    u->current_room = NULL;
    for (size_t i = 0; i < u->room_count; i++)
        free(u->rooms[i]);
    free(u->rooms);
    u->rooms = NULL;
    u->room_count = u->room_cap = 0;
    free(u->status);
    free(u->status_text);
    u->status = u->status_text = NULL;
    ui_files_free(u);
    line_reader_free(&u->input);
}

/* ---- output ---------------------------------------------------------------- */

static void finish(ui *u, int status)
{
    if (u->phase == UI_DONE)
        return;
    u->phase = UI_DONE;
    u->exit_status = status;
}

/* Nobody can see the conversation any more: stop it. */
static void output_failed(ui *u)
{
    fprintf(stderr, "sa-client: cannot write output: %s\n", strerror(errno));
    finish(u, 1);
}

static void emit(ui *u, FILE *stream, strbuf *line)
{
    if (render_line(stream, line) != 0)
        output_failed(u);
}

/* Lines sa-client makes itself go with the conversation in text mode and
 * to stderr with --json, which keeps stdout to one JSON frame per line. */
static FILE *notice_stream(const ui *u)
{
    return u->opt->json ? stderr : stdout;
}

void ui_emit_notice(ui *u, strbuf *line)
{
    emit(u, notice_stream(u), line);
}

static void notice(ui *u, const char *text)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, text);
    ui_emit_notice(u, &line);
}

static const char *string_field(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static int has_string(const cJSON *obj, const char *key, const char *value)
{
    const char *s = string_field(obj, key);
    return s && strcmp(s, value) == 0;
}

/* ---- requests ---------------------------------------------------------------- */

/* `room`: for a restoring join, copied (restore is then set). */
static void pending_add(ui *u, int64_t id, int restore, const char *room)
{
    ui_pending *p = malloc(sizeof *p);
    char *room_copy = room ? strdup(room) : NULL;
    if (!p || (room && !room_copy)) {
        /* Only the quit sequence and a reconnect's bookkeeping rely on
         * this list; they then end sooner or restore less. */
        fputs("sa-client: out of memory\n", stderr);
        free(p);
        free(room_copy);
        return;
    }
    p->next = NULL;
    p->id = id;
    p->restore = restore;
    p->room = room_copy;
    u->restore_pending += restore != 0;
    if (u->pending_tail)
        u->pending_tail->next = p;
    else
        u->pending_head = p;
    u->pending_tail = p;
    u->pending_count++;
}

/* Unlinks the request `id` and hands it to the caller (who frees it and
 * its room), or NULL when it is not waiting. */
static ui_pending *pending_take(ui *u, int64_t id)
{
    ui_pending *prev = NULL;
    for (ui_pending *p = u->pending_head; p; prev = p, p = p->next) {
        if (p->id != id)
            continue;
        if (prev)
            prev->next = p->next;
        else
            u->pending_head = p->next;
        if (u->pending_tail == p)
            u->pending_tail = prev;
        u->pending_count--;
        u->restore_pending -= p->restore != 0;
        return p;
    }
    return NULL;
}

/* 1 when the request, once its id is added, fits the server's max_frame. */
static int fits_in_frame(const ui *u, const cJSON *msg)
{
    char *text = cJSON_PrintUnformatted(msg); /* ours; freed below */
    if (!text)
        return 0;
    size_t len = strlen(text);
    free(text);
    return len <= u->max_frame && u->max_frame - len >= UI_ID_ALLOWANCE;
}

/* ui_send_request, marking the request as part of a reconnect's restore
 * (`restore`; `room`: the room a join is for). */
static int64_t send_request(ui *u, cJSON *msg, int64_t now_ms, int restore, const char *room)
{
    if (!msg) {
        fputs("sa-client: out of memory\n", stderr);
        return -1;
    }
    if (!fits_in_frame(u, msg)) {
        cJSON_Delete(msg);
        notice(u, "! usage: too long for one frame to this server");
        return -1;
    }
    int64_t id = u->transport.request(u->transport.ctx, msg);
    cJSON_Delete(msg);
    if (id < 0) {
        fputs("sa-client: could not send the request\n", stderr);
        return -1;
    }
    pending_add(u, id, restore, room);
    u->last_send_ms = now_ms;
    return id;
}

int64_t ui_send_request(ui *u, cJSON *msg, int64_t now_ms)
{
    return send_request(u, msg, now_ms, 0, NULL);
}

/* {"type":type, key1:value1, key2:value2}; a NULL key ends the pairs early,
 * a NULL value leaves its member out. */
static cJSON *make_request(const char *type, const char *key1, const char *value1,
                           const char *key2, const char *value2)
{
    cJSON *msg = cJSON_CreateObject();
    if (!msg || !cJSON_AddStringToObject(msg, "type", type) ||
        (key1 && value1 && !cJSON_AddStringToObject(msg, key1, value1)) ||
        (key2 && value2 && !cJSON_AddStringToObject(msg, key2, value2))) {
        cJSON_Delete(msg);
        return NULL;
    }
    return msg;
}

static void send_bye(ui *u)
{
    cJSON *bye = make_request("bye", "reason", "quit", NULL, NULL);
    /* Courtesy only: the connection closes right after either way. */
    if (bye && u->transport.send(u->transport.ctx, bye) != 0)
        fputs("sa-client: could not say bye\n", stderr);
    cJSON_Delete(bye);
}

static void finish_quit_if_done(ui *u)
{
    if (u->phase != UI_QUITTING || u->pending_count > 0 || ui_files_active(u))
        return;
    send_bye(u);
    finish(u, 0);
}

/* Lines typed while disconnected that a quit leaves unsent. */
static void drop_offline_lines(ui *u)
{
    if (u->offline_count == 0)
        return;
    char text[96];
    snprintf(text, sizeof text, "! not connected: %zu queued line%s not sent",
             u->offline_count, u->offline_count == 1 ? " was" : "s were");
    notice(u, text);
    offline_clear(u);
}

/* 1 while there is no session to send to: between connections, or
 * saying hello again. */
static int disconnected(const ui *u)
{
    return u->phase == UI_RECONNECTING || (u->phase == UI_HELLO && u->reconnecting);
}

static void begin_quit(ui *u, int64_t now_ms)
{
    if (disconnected(u)) {
        /* The user leaves now rather than after an outage of unknown length. */
        drop_offline_lines(u);
        ui_files_abandon(u);
        finish(u, 0);
        return;
    }
    if (u->phase != UI_READY)
        return;
    u->phase = UI_QUITTING;
    u->deadline_ms = now_ms + UI_QUIT_WAIT_MS;
    finish_quit_if_done(u);
}

/* ---- commands ---------------------------------------------------------------- */

/* Splits off the next space-separated word (NUL-terminating it in place);
 * NULL when none is left. */
static char *next_word(char **cursor)
{
    char *p = *cursor + strspn(*cursor, " \t");
    if (!*p) {
        *cursor = p;
        return NULL;
    }
    char *word = p;
    p += strcspn(p, " \t");
    if (*p)
        *p++ = '\0';
    *cursor = p;
    return word;
}

/* The rest of the line after leading blanks; NULL when it is empty. */
static char *rest_of_line(char **cursor)
{
    char *p = *cursor + strspn(*cursor, " \t");
    return *p ? p : NULL;
}

static int no_more_words(char **cursor)
{
    return rest_of_line(cursor) == NULL;
}

typedef void (*command_fn)(ui *u, char *args, int64_t now_ms);

static void cmd_join(ui *u, char *args, int64_t now_ms)
{
    char *room = next_word(&args);
    if (!room || !no_more_words(&args)) {
        notice(u, "! usage: /join ROOM");
        return;
    }
    ui_send_request(u, make_request("join", "room", room, NULL, NULL), now_ms);
}

static void cmd_leave(ui *u, char *args, int64_t now_ms)
{
    char *room = next_word(&args);
    if (!room)
        room = u->current_room;
    if (!room || !no_more_words(&args)) {
        notice(u, "! usage: /leave [ROOM]");
        return;
    }
    ui_send_request(u, make_request("leave", "room", room, NULL, NULL), now_ms);
}

static void cmd_rooms(ui *u, char *args, int64_t now_ms)
{
    if (!no_more_words(&args)) {
        notice(u, "! usage: /rooms");
        return;
    }
    ui_send_request(u, make_request("rooms", NULL, NULL, NULL, NULL), now_ms);
}

static void cmd_who(ui *u, char *args, int64_t now_ms)
{
    char *room = next_word(&args);
    if (!room)
        room = u->current_room;
    if (!room || !no_more_words(&args)) {
        notice(u, "! usage: /who [ROOM]");
        return;
    }
    ui_send_request(u, make_request("who", "room", room, NULL, NULL), now_ms);
}

static void cmd_topic(ui *u, char *args, int64_t now_ms)
{
    char *room = next_word(&args);
    char *topic = rest_of_line(&args);
    if (!room || !topic) {
        notice(u, "! usage: /topic ROOM TEXT");
        return;
    }
    ui_send_request(u, make_request("topic", "room", room, "topic", topic), now_ms);
}

static void cmd_msg(ui *u, char *args, int64_t now_ms)
{
    char *user = next_word(&args);
    char *text = rest_of_line(&args);
    if (!user || !text) {
        notice(u, "! usage: /msg USER TEXT");
        return;
    }
    ui_send_request(u, make_request("dm", "to", user, "text", text), now_ms);
}

static void cmd_status(ui *u, char *args, int64_t now_ms)
{
    char *status = next_word(&args);
    char *text = rest_of_line(&args);
    if (!status || (strcmp(status, "online") != 0 && strcmp(status, "away") != 0 &&
                    strcmp(status, "busy") != 0)) {
        notice(u, "! usage: /status online|away|busy [TEXT]");
        return;
    }
    if (ui_send_request(u, make_request("status", "status", status, "text", text), now_ms) < 0)
        return;
    /* Kept for a reconnect, which sets it again; when memory runs out,
     * the server's default (online) comes back instead. */
    free(u->status);
    free(u->status_text);
    u->status = strdup(status);
    u->status_text = text ? strdup(text) : NULL;
    if (!u->status || (text && !u->status_text)) {
        free(u->status);
        u->status = NULL;
        fputs("sa-client: out of memory\n", stderr);
    }
}

static void cmd_users(ui *u, char *args, int64_t now_ms)
{
    if (!no_more_words(&args)) {
        notice(u, "! usage: /users");
        return;
    }
    ui_send_request(u, make_request("users", NULL, NULL, NULL, NULL), now_ms);
}

static void cmd_send(ui *u, char *args, int64_t now_ms)
{
    char *path = next_word(&args);
    char *user = next_word(&args);
    if (!path || !no_more_words(&args)) {
        notice(u, "! usage: /send PATH [USER]");
        return;
    }
    ui_files_send(u, path, user, now_ms);
}

static void cmd_files(ui *u, char *args, int64_t now_ms)
{
    if (!no_more_words(&args)) {
        notice(u, "! usage: /files");
        return;
    }
    ui_files_list(u, now_ms);
}

static void cmd_get(ui *u, char *args, int64_t now_ms)
{
    char *file_id = next_word(&args);
    char *dir = next_word(&args);
    if (!file_id || !no_more_words(&args)) {
        notice(u, "! usage: /get FILE_ID [DIR]");
        return;
    }
    ui_files_get(u, file_id, dir, now_ms);
}

static void cmd_quit(ui *u, char *args, int64_t now_ms)
{
    (void)args; /* "/quit some words" quits too */
    begin_quit(u, now_ms);
}

static const struct command {
    const char *name;
    command_fn run;
} commands[] = {
    {"/join", cmd_join},   {"/leave", cmd_leave},         {"/rooms", cmd_rooms},
    {"/who", cmd_who},     {"/topic", cmd_topic},         {"/msg", cmd_msg},
    {"/status", cmd_status}, {"/users", cmd_users},       {"/send", cmd_send},
    {"/files", cmd_files},   {"/get", cmd_get},           {"/quit", cmd_quit},
};

static void run_command(ui *u, char *line, int64_t now_ms)
{
    char *cursor = line;
    char *name = next_word(&cursor);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0) {
            commands[i].run(u, cursor, now_ms);
            return;
        }
    }
    strbuf text;
    strbuf_init(&text);
    strbuf_add(&text, "! usage: unknown command ");
    strbuf_add_untrusted(&text, name);
    emit(u, notice_stream(u), &text);
}

static void send_text(ui *u, const char *text, int64_t now_ms)
{
    if (u->rooms_enabled && !u->current_room) {
        notice(u, "! usage: no current room (/join ROOM first)");
        return;
    }
    ui_send_request(u,
                    make_request("msg", "room", u->rooms_enabled ? u->current_room : NULL,
                                 "text", text),
                    now_ms);
}

struct line_context {
    ui *u;
    int64_t now_ms;
};

static int is_quit(const char *line, size_t len)
{
    return len >= 5 && memcmp(line, "/quit", 5) == 0 &&
           (len == 5 || line[5] == ' ' || line[5] == '\t');
}

/* Keeps a line typed while disconnected for after the reconnect. */
static void keep_offline(ui *u, const char *line, size_t len)
{
    if (u->offline_count >= UI_OFFLINE_MAX_LINES ||
        len > UI_OFFLINE_MAX_BYTES - u->offline_bytes) {
        notice(u, "! not connected: line dropped (the queue for after the reconnect is full)");
        return;
    }
    ui_line *l = malloc(sizeof *l + len + 1);
    if (!l) {
        notice(u, "! not connected: line dropped (out of memory)");
        return;
    }
    l->next = NULL;
    l->len = len;
    memcpy(l->text, line, len);
    l->text[len] = '\0';
    if (u->offline_count == 0)
        fprintf(stderr, "sa-client: not connected: what you type is sent after reconnecting "
                        "(at most %d lines)\n", UI_OFFLINE_MAX_LINES);
    if (u->offline_tail)
        u->offline_tail->next = l;
    else
        u->offline_head = l;
    u->offline_tail = l;
    u->offline_count++;
    u->offline_bytes += len;
}

static void handle_line(ui *u, const char *line, size_t len, int too_long, int64_t now_ms);

static void on_line(void *arg, const char *line, size_t len, int too_long)
{
    const struct line_context *ctx = arg;
    ui *u = ctx->u;
    if (disconnected(u) && !too_long && len > 0 && !is_quit(line, len)) {
        keep_offline(u, line, len);
        return;
    }
    handle_line(u, line, len, too_long, ctx->now_ms);
}

static void handle_line(ui *u, const char *line, size_t len, int too_long, int64_t now_ms)
{
    if (is_quit(line, len) && disconnected(u)) {
        begin_quit(u, now_ms);
        return;
    }
    /* After /quit the rest of the input is not read. */
    if (u->phase != UI_READY)
        return;
    if (too_long) {
        notice(u, "! usage: line too long for one frame to this server");
        return;
    }
    if (len == 0)
        return;
    if (memchr(line, '\0', len)) {
        notice(u, "! usage: the line contains a NUL byte");
        return;
    }
    if (!sa_utf8_valid((const unsigned char *)line, len)) {
        notice(u, "! usage: the line is not valid UTF-8");
        return;
    }
    char *copy = strndup(line, len); /* ours; freed below */
    if (!copy) {
        fputs("sa-client: out of memory\n", stderr);
        return;
    }
    if (copy[0] == '/')
        run_command(u, copy, now_ms);
    else
        send_text(u, copy, now_ms);
    free(copy);
}

void ui_on_input(ui *u, const char *data, size_t len, int64_t now_ms)
{
    struct line_context ctx = {u, now_ms};
    if (line_reader_feed(&u->input, data, len, on_line, &ctx) != 0)
        fputs("sa-client: out of memory\n", stderr);
}

void ui_on_input_end(ui *u, int64_t now_ms)
{
    struct line_context ctx = {u, now_ms};
    line_reader_finish(&u->input, on_line, &ctx);
    begin_quit(u, now_ms);
}

/* ---- rooms to restore --------------------------------------------------------- */

static size_t room_index(const ui *u, const char *room)
{
    for (size_t i = 0; i < u->room_count; i++) {
        if (strcasecmp(u->rooms[i], room) == 0)
            return i;
    }
    return u->room_count;
}

static void room_add(ui *u, const char *room)
{
    if (room_index(u, room) < u->room_count)
        return;
    if (u->room_count == u->room_cap) {
        size_t cap = u->room_cap ? u->room_cap * 2 : 8;
        char **grown = realloc(u->rooms, cap * sizeof *grown);
        if (!grown) {
            fputs("sa-client: out of memory (a reconnect will not rejoin a room)\n", stderr);
            return;
        }
        u->rooms = grown;
        u->room_cap = cap;
    }
    char *copy = strdup(room);
    if (!copy) {
        fputs("sa-client: out of memory (a reconnect will not rejoin a room)\n", stderr);
        return;
    }
    u->rooms[u->room_count++] = copy;
}

/* Out of `room`, which is then not current either. */
static void room_remove(ui *u, const char *room)
{
    if (u->current_room && strcasecmp(u->current_room, room) == 0) {
        free(u->current_room);
        u->current_room = NULL;
    }
    size_t i = room_index(u, room);
    if (i == u->room_count)
        return;
    free(u->rooms[i]);
    u->rooms[i] = u->rooms[--u->room_count];
}

/* ---- session ----------------------------------------------------------------- */

/* Waits for the next attempt, or gives up (status 1) when the retries are
 * used up. `reason` is the first part of the stderr line. */
static void retry_later(ui *u, const char *reason, int64_t now_ms)
{
    int64_t delay = sa_reconnect_next(&u->reconnect, "sa-client", reason, now_ms);
    if (delay < 0) {
        drop_offline_lines(u);
        notice(u, "! connection lost");
        finish(u, 1);
        return;
    }
    u->phase = UI_RECONNECTING;
    u->connect_due = 0;
    u->deadline_ms = now_ms + delay;
}

void ui_start(ui *u, int64_t now_ms)
{
    u->phase = UI_HELLO;
    u->connect_due = 0;
    cJSON *hello =
        make_request("hello", "name", u->opt->common.name, "token", u->opt->common.token);
    if (!hello || !cJSON_AddStringToObject(hello, "client", "sa-client/1.0") ||
        !cJSON_AddNumberToObject(hello, "proto", 1)) {
        cJSON_Delete(hello);
        fputs("sa-client: out of memory\n", stderr);
        finish(u, 1);
        return;
    }
    u->hello_id = u->transport.request(u->transport.ctx, hello);
    cJSON_Delete(hello);
    if (u->hello_id < 0) {
        if (u->reconnecting) {
            retry_later(u, "cannot reconnect: could not send hello", now_ms);
            return;
        }
        fputs("sa-client: could not send hello\n", stderr);
        finish(u, 1);
        return;
    }
    u->last_send_ms = u->last_alive_ms = now_ms;
    u->deadline_ms = now_ms + UI_HELLO_WAIT_MS;
}

/* The integer id of an ok/error reply; 0 when the frame is not one. */
static int reply_id(const cJSON *frame, int64_t *id)
{
    if (!has_string(frame, "type", "ok") && !has_string(frame, "type", "error"))
        return 0;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(frame, "id");
    if (!cJSON_IsNumber(item) || item->valuedouble < -SA_MAX_SAFE_INTEGER ||
        item->valuedouble > SA_MAX_SAFE_INTEGER)
        return 0;
    *id = (int64_t)item->valuedouble;
    return (double)*id == item->valuedouble;
}

static int has_feature(const cJSON *hello_reply, const char *feature)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(hello_reply, "features"))
    {
        if (cJSON_IsString(item) && strcmp(item->valuestring, feature) == 0)
            return 1;
    }
    return 0;
}

/* The session is back as it was: say so, and let the transfers and the
 * lines typed meanwhile go on. */
static void restored(ui *u, int64_t now_ms)
{
    u->reconnecting = 0;
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "sa-client: reconnected");
    if (u->room_count > 0) {
        strbuf_add(&line, "; back in ");
        for (size_t i = 0; i < u->room_count; i++) {
            if (i > 0)
                strbuf_add(&line, ", ");
            strbuf_add_untrusted(&line, u->rooms[i]);
        }
    }
    if (u->current_room) {
        strbuf_add(&line, " (current room ");
        strbuf_add_untrusted(&line, u->current_room);
        strbuf_add(&line, ")");
    }
    emit(u, stderr, &line);
    ui_files_resume(u);
    ui_line *lines = u->offline_head;
    u->offline_head = u->offline_tail = NULL;
    u->offline_count = u->offline_bytes = 0;
    while (lines) {
        ui_line *l = lines;
        lines = l->next;
        handle_line(u, l->text, l->len, 0, now_ms);
        free(l);
    }
}

/* After a reconnect's hello: join the rooms again (the current one last,
 * which the server does not care about but a reader of the log does) and
 * set the status again; input waits for their replies. */
static void restore(ui *u, int64_t now_ms)
{
    if (u->rooms_enabled) {
        for (size_t i = 0; i < u->room_count; i++) {
            if (u->current_room && strcasecmp(u->rooms[i], u->current_room) == 0)
                continue;
            send_request(u, make_request("join", "room", u->rooms[i], NULL, NULL), now_ms, 1,
                         u->rooms[i]);
        }
        if (u->current_room)
            send_request(u, make_request("join", "room", u->current_room, NULL, NULL), now_ms,
                         1, u->current_room);
    }
    if (u->status)
        send_request(u, make_request("status", "status", u->status, "text", u->status_text),
                     now_ms, 1, NULL);
    if (u->restore_pending == 0)
        restored(u, now_ms);
}

static void on_hello_reply(ui *u, const cJSON *reply, int64_t now_ms)
{
    if (!has_string(reply, "type", "ok")) {
        if (u->reconnecting && has_string(reply, "code", "name_taken")) {
            /* Our lost session keeps the name until the server notices
             * it is gone. */
            retry_later(u, "cannot reconnect: the name is still taken by the lost connection",
                        now_ms);
            return;
        }
        if (!u->opt->json && render_frame(stdout, reply) != 0)
            output_failed(u);
        finish(u, 1);
        return;
    }
    const cJSON *max_frame = cJSON_GetObjectItemCaseSensitive(reply, "max_frame");
    if (cJSON_IsNumber(max_frame) && max_frame->valuedouble >= UI_ID_ALLOWANCE * 2 &&
        max_frame->valuedouble <= (double)UINT32_MAX)
        u->max_frame = (uint32_t)max_frame->valuedouble;
    u->input.limit = u->max_frame;
    sa_heartbeat_limits(reply, &u->heartbeat_ms, &u->silence_ms);
    if (u->transport.tune && u->transport.tune(u->transport.ctx, u->silence_ms) != 0)
        fprintf(stderr, "sa-client: cannot set socket timeouts: %s\n", strerror(errno));
    sa_reconnect_connected(&u->reconnect, now_ms);
    u->rooms_enabled = has_feature(reply, "rooms");
    u->phase = UI_READY;
    if (u->connected_once) {
        restore(u, now_ms);
        return;
    }
    u->connected_once = 1;
    if (u->rooms_enabled) {
        u->current_room = strdup(u->opt->room);
        if (!u->current_room) {
            fputs("sa-client: out of memory\n", stderr);
            finish(u, 1);
            return;
        }
        /* Input waits for this reply, so that the first line of output
         * says where the user is, in both modes alike. */
        u->initial_join_id =
            ui_send_request(u, make_request("join", "room", u->opt->room, NULL, NULL), now_ms);
    }
}

/* Keeps the current room and the rooms to restore in step with join and
 * leave replies. */
static void track_ok(ui *u, const cJSON *reply)
{
    const char *re = string_field(reply, "re");
    const char *room = string_field(reply, "room");
    if (!u->rooms_enabled || !re || !room)
        return;
    if (strcmp(re, "join") == 0) {
        char *copy = strdup(room);
        if (!copy) {
            fputs("sa-client: out of memory\n", stderr);
            return;
        }
        free(u->current_room);
        u->current_room = copy;
        room_add(u, room);
    } else if (strcmp(re, "leave") == 0) {
        room_remove(u, room);
    }
}

/* A reply to one of a reconnect's restoring requests. A refused join
 * (shown as any error) leaves that room out. */
static void on_restore_reply(ui *u, const ui_pending *p, const cJSON *reply)
{
    if (p->room && !has_string(reply, "type", "ok"))
        room_remove(u, p->room);
}

void ui_on_frame(ui *u, const cJSON *frame, int64_t now_ms)
{
    if (u->phase == UI_DONE || u->phase == UI_RECONNECTING)
        return;
    u->last_alive_ms = now_ms;
    if (u->opt->json && render_json(stdout, frame) != 0)
        output_failed(u);
    const char *type = string_field(frame, "type");
    if (!type)
        return;
    int64_t id;
    int is_reply = reply_id(frame, &id);
    if (u->phase == UI_HELLO) {
        if (is_reply && id == u->hello_id)
            on_hello_reply(u, frame, now_ms);
        return;
    }
    int restore_reply = 0;
    if (is_reply) {
        ui_pending *p = pending_take(u, id);
        if (id == u->initial_join_id)
            u->initial_join_id = -1;
        if (p && p->restore) {
            restore_reply = 1;
            on_restore_reply(u, p, frame);
        }
        if (p)
            free(p->room);
        free(p);
    }
    if (strcmp(type, "ok") == 0 && !restore_reply)
        track_ok(u, frame);
    int shown_by_transfer = ui_files_on_frame(u, frame, now_ms);
    if (!u->opt->json && !shown_by_transfer && render_frame(stdout, frame) != 0)
        output_failed(u);
    if (restore_reply && u->reconnecting && u->restore_pending == 0)
        restored(u, now_ms);
    finish_quit_if_done(u);
}

void ui_on_connection_lost(ui *u, const char *reason)
{
    if (u->phase == UI_DONE || u->phase == UI_RECONNECTING)
        return;
    int64_t now_ms = ui_now_ms();
    /* After /quit or the end of input the session is not brought back:
     * nobody is there to go on with it. */
    if (!u->connected_once || u->phase == UI_QUITTING) {
        notice(u, "! connection lost");
        fprintf(stderr, "sa-client: %s\n", reason);
        finish(u, 1);
        return;
    }
    int was_hello = u->phase == UI_HELLO;
    size_t unanswered = u->pending_count - u->restore_pending;
    if (!was_hello && unanswered > 0)
        fprintf(stderr,
                "sa-client: %zu request%s sent before the connection was lost got no reply; "
                "%s may not have arrived\n",
                unanswered, unanswered == 1 ? "" : "s", unanswered == 1 ? "it" : "they");
    pending_clear(u);
    u->initial_join_id = -1;
    if (!was_hello)
        ui_files_on_lost(u);
    u->reconnecting = 1;
    char text[512];
    snprintf(text, sizeof text, "%s: %s", was_hello ? "cannot reconnect" : "connection lost",
             reason);
    retry_later(u, text, now_ms);
}

void ui_on_fatal(ui *u, const char *reason)
{
    if (u->phase == UI_DONE)
        return;
    drop_offline_lines(u);
    notice(u, "! connection lost");
    fprintf(stderr, "sa-client: %s\n", reason);
    finish(u, 1);
}

void ui_on_connect_failed(ui *u, const char *reason, int64_t now_ms)
{
    char text[512];
    snprintf(text, sizeof text, "cannot reconnect: %s", reason);
    retry_later(u, text, now_ms);
}

int ui_wants_connect(const ui *u)
{
    return u->phase == UI_RECONNECTING && u->connect_due;
}

int ui_connected(const ui *u)
{
    return u->phase == UI_HELLO || u->phase == UI_READY || u->phase == UI_QUITTING;
}

int64_t ui_heartbeat(ui *u, int64_t now_ms)
{
    if ((u->phase != UI_READY && u->phase != UI_QUITTING) || u->heartbeat_ms == 0)
        return -1;
    if (u->silence_ms > 0 && now_ms - u->last_alive_ms >= u->silence_ms) {
        char reason[96];
        snprintf(reason, sizeof reason, "no sign of life from the server for %lld s",
                 (long long)((now_ms - u->last_alive_ms) / 1000));
        ui_on_connection_lost(u, reason);
        return -1;
    }
    int64_t due = u->last_send_ms + u->heartbeat_ms;
    if (now_ms >= due) {
        cJSON *ping = cJSON_CreateObject();
        if (!ping || !cJSON_AddStringToObject(ping, "type", "ping") ||
            !cJSON_AddNumberToObject(ping, "ts", wall_clock_ms()) ||
            u->transport.send(u->transport.ctx, ping) != 0)
            fputs("sa-client: could not send a ping\n", stderr);
        cJSON_Delete(ping);
        u->last_send_ms = now_ms;
        due = now_ms + u->heartbeat_ms;
    }
    if (u->silence_ms > 0 && u->last_alive_ms + u->silence_ms < due)
        due = u->last_alive_ms + u->silence_ms;
    return due - now_ms;
}

int64_t ui_deadline(const ui *u)
{
    if (u->phase == UI_RECONNECTING)
        return u->connect_due ? -1 : u->deadline_ms;
    return u->phase == UI_HELLO || u->phase == UI_QUITTING ? u->deadline_ms : -1;
}

void ui_check_deadline(ui *u, int64_t now_ms)
{
    if (ui_deadline(u) < 0 || now_ms < u->deadline_ms)
        return;
    if (u->phase == UI_RECONNECTING) {
        u->connect_due = 1;
    } else if (u->phase == UI_HELLO && u->reconnecting) {
        retry_later(u, "cannot reconnect: no reply to hello", now_ms);
    } else if (u->phase == UI_HELLO) {
        /* E.g. a port that is not a SyncAsync server, or a TLS one. */
        fprintf(stderr, "sa-client: no reply to hello within %d s\n", UI_HELLO_WAIT_MS / 1000);
        finish(u, 1);
    } else {
        ui_files_abandon(u);
        send_bye(u);
        finish(u, 0);
    }
}

int ui_wants_input(const ui *u)
{
    if (disconnected(u))
        return 1;
    return u->phase == UI_READY && u->initial_join_id < 0 && u->restore_pending == 0 &&
           u->pending_count < UI_MAX_PENDING;
}
