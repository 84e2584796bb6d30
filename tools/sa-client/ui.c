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
/* Longest heartbeat interval taken from a server, in seconds. */
#define UI_MAX_HEARTBEAT_S 86400

/* One request waiting for its reply; the ui's until the reply comes. */
struct ui_pending {
    struct ui_pending *next;
    int64_t id;
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
}

void ui_free(ui *u)
{
    while (u->pending_head) {
        ui_pending *p = u->pending_head;
        u->pending_head = p->next;
        free(p);
    }
    u->pending_tail = NULL;
    free(u->current_room);
    u->current_room = NULL;
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

static void pending_add(ui *u, int64_t id)
{
    ui_pending *p = malloc(sizeof *p);
    if (!p) {
        /* Only the quit sequence relies on this list; it then ends sooner. */
        fputs("sa-client: out of memory\n", stderr);
        return;
    }
    p->next = NULL;
    p->id = id;
    if (u->pending_tail)
        u->pending_tail->next = p;
    else
        u->pending_head = p;
    u->pending_tail = p;
    u->pending_count++;
}

static void pending_remove(ui *u, int64_t id)
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
        free(p);
        return;
    }
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

int64_t ui_send_request(ui *u, cJSON *msg, int64_t now_ms)
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
    pending_add(u, id);
    u->last_send_ms = now_ms;
    return id;
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

static void begin_quit(ui *u, int64_t now_ms)
{
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
    ui_send_request(u, make_request("status", "status", status, "text", text), now_ms);
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

static void on_line(void *arg, const char *line, size_t len, int too_long)
{
    const struct line_context *ctx = arg;
    ui *u = ctx->u;
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
        run_command(u, copy, ctx->now_ms);
    else
        send_text(u, copy, ctx->now_ms);
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

/* ---- session ----------------------------------------------------------------- */

void ui_start(ui *u, int64_t now_ms)
{
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
        fputs("sa-client: could not send hello\n", stderr);
        finish(u, 1);
        return;
    }
    u->last_send_ms = now_ms;
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

static void on_hello_reply(ui *u, const cJSON *reply, int64_t now_ms)
{
    if (!has_string(reply, "type", "ok")) {
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
    const cJSON *interval = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(reply, "heartbeat"), "interval");
    if (cJSON_IsNumber(interval) && interval->valuedouble > 0 &&
        interval->valuedouble <= UI_MAX_HEARTBEAT_S)
        u->heartbeat_ms = (int64_t)(interval->valuedouble * 1000);
    u->rooms_enabled = has_feature(reply, "rooms");
    u->phase = UI_READY;
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

/* Keeps the current room in step with join and leave replies. */
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
    } else if (strcmp(re, "leave") == 0 && u->current_room &&
               strcasecmp(room, u->current_room) == 0) {
        free(u->current_room);
        u->current_room = NULL;
    }
}

void ui_on_frame(ui *u, const cJSON *frame, int64_t now_ms)
{
    if (u->phase == UI_DONE)
        return;
    if (u->opt->json && render_json(stdout, frame) != 0)
        output_failed(u);
    const char *type = string_field(frame, "type");
    if (!type)
        return;
    int64_t id;
    int is_reply = reply_id(frame, &id);
    if (u->phase == UI_HELLO && is_reply && id == u->hello_id) {
        on_hello_reply(u, frame, now_ms);
        return;
    }
    if (is_reply) {
        pending_remove(u, id);
        if (id == u->initial_join_id)
            u->initial_join_id = -1;
    }
    if (strcmp(type, "ok") == 0)
        track_ok(u, frame);
    int shown_by_transfer = ui_files_on_frame(u, frame, now_ms);
    if (!u->opt->json && !shown_by_transfer && render_frame(stdout, frame) != 0)
        output_failed(u);
    finish_quit_if_done(u);
}

void ui_on_connection_lost(ui *u, const char *reason)
{
    if (u->phase == UI_DONE)
        return;
    notice(u, "! connection lost");
    fprintf(stderr, "sa-client: %s\n", reason);
    finish(u, 1);
}

int64_t ui_heartbeat(ui *u, int64_t now_ms)
{
    if ((u->phase != UI_READY && u->phase != UI_QUITTING) || u->heartbeat_ms == 0)
        return -1;
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
    return due - now_ms;
}

int64_t ui_deadline(const ui *u)
{
    return u->phase == UI_HELLO || u->phase == UI_QUITTING ? u->deadline_ms : -1;
}

void ui_check_deadline(ui *u, int64_t now_ms)
{
    if (ui_deadline(u) < 0 || now_ms < u->deadline_ms)
        return;
    if (u->phase == UI_HELLO) {
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
    return u->phase == UI_READY && u->initial_join_id < 0 && u->pending_count < UI_MAX_PENDING;
}
