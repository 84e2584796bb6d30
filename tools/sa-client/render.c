#include "render.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h" /* SA_MAX_SAFE_INTEGER */

int render_line(FILE *out, strbuf *line)
{
    int ok;
    if (line->failed) {
        /* The line is lost, not the output: carry on. */
        ok = fputs("sa-client: out of memory\n", stderr) >= 0;
    } else {
        ok = fwrite(line->data ? line->data : "", 1, line->len, out) == line->len &&
             fputc('\n', out) != EOF;
    }
    if (fflush(out) != 0)
        ok = 0;
    strbuf_free(line);
    return ok ? 0 : -1;
}

static const char *string_field(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Appends "a, b, c" from an array of names. */
static void add_name_list(strbuf *line, const cJSON *names)
{
    const char *separator = "";
    const cJSON *name;
    cJSON_ArrayForEach(name, names)
    {
        if (!cJSON_IsString(name))
            continue;
        strbuf_add(line, separator);
        strbuf_add_untrusted(line, name->valuestring);
        separator = ", ";
    }
}

static void add_count(strbuf *line, const cJSON *count)
{
    char digits[32];
    if (cJSON_IsNumber(count) && count->valuedouble >= 0 &&
        count->valuedouble <= SA_MAX_SAFE_INTEGER) {
        snprintf(digits, sizeof digits, "%lld", (long long)count->valuedouble);
        strbuf_add(line, digits);
    } else {
        strbuf_add(line, "?");
    }
}

/* " (text)" when text is non-empty. */
static void add_optional_text(strbuf *line, const char *text)
{
    if (!text || !*text)
        return;
    strbuf_add(line, " (");
    strbuf_add_untrusted(line, text);
    strbuf_add(line, ")");
}

static int render_error_reply(FILE *out, const cJSON *frame)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "! ");
    strbuf_add_untrusted(&line, string_field(frame, "code"));
    strbuf_add(&line, ": ");
    strbuf_add_untrusted(&line, string_field(frame, "message"));
    return render_line(out, &line);
}

static int render_message(FILE *out, const cJSON *frame)
{
    strbuf line;
    strbuf_init(&line);
    const char *room = string_field(frame, "room");
    if (room) {
        strbuf_add(&line, "[");
        strbuf_add_untrusted(&line, room);
        strbuf_add(&line, "] ");
    } else if (cJSON_HasObjectItem(frame, "to")) {
        strbuf_add(&line, "[dm] ");
    }
    strbuf_add(&line, "<");
    strbuf_add_untrusted(&line, string_field(frame, "from"));
    strbuf_add(&line, "> ");
    strbuf_add_untrusted(&line, string_field(frame, "text"));
    return render_line(out, &line);
}

/* "* USER VERB ROOM" for joined and left. */
static int render_membership(FILE *out, const cJSON *frame, const char *verb)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "* ");
    strbuf_add_untrusted(&line, string_field(frame, "user"));
    strbuf_add(&line, verb);
    strbuf_add_untrusted(&line, string_field(frame, "room"));
    return render_line(out, &line);
}

static int render_presence(FILE *out, const cJSON *frame)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "* ");
    strbuf_add_untrusted(&line, string_field(frame, "user"));
    strbuf_add(&line, " is ");
    strbuf_add_untrusted(&line, string_field(frame, "status"));
    add_optional_text(&line, string_field(frame, "text"));
    return render_line(out, &line);
}

static int render_topic(FILE *out, const cJSON *frame)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "* ");
    strbuf_add_untrusted(&line, string_field(frame, "by"));
    strbuf_add(&line, " set the topic of ");
    strbuf_add_untrusted(&line, string_field(frame, "room"));
    strbuf_add(&line, ": ");
    strbuf_add_untrusted(&line, string_field(frame, "topic"));
    return render_line(out, &line);
}

static int render_bye(FILE *out, const cJSON *frame)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "* server closed the connection: ");
    strbuf_add_untrusted(&line, string_field(frame, "reason"));
    return render_line(out, &line);
}

static int render_join_ok(FILE *out, const cJSON *frame)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "* you joined ");
    strbuf_add_untrusted(&line, string_field(frame, "room"));
    strbuf_add(&line, " (members: ");
    add_name_list(&line, cJSON_GetObjectItemCaseSensitive(frame, "members"));
    strbuf_add(&line, ")");
    return render_line(out, &line);
}

static int render_leave_ok(FILE *out, const cJSON *frame)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "* you left ");
    strbuf_add_untrusted(&line, string_field(frame, "room"));
    return render_line(out, &line);
}

static int render_rooms_ok(FILE *out, const cJSON *frame)
{
    int status = 0;
    const cJSON *room;
    cJSON_ArrayForEach(room, cJSON_GetObjectItemCaseSensitive(frame, "rooms"))
    {
        if (!cJSON_IsObject(room))
            continue;
        strbuf line;
        strbuf_init(&line);
        strbuf_add_untrusted(&line, string_field(room, "name"));
        strbuf_add(&line, " (");
        add_count(&line, cJSON_GetObjectItemCaseSensitive(room, "members"));
        strbuf_add(&line, " members)");
        const char *topic = string_field(room, "topic");
        if (topic && *topic) {
            strbuf_add(&line, " ");
            strbuf_add_untrusted(&line, topic);
        }
        if (render_line(out, &line) != 0)
            status = -1;
    }
    return status;
}

static int render_who_ok(FILE *out, const cJSON *frame)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add_untrusted(&line, string_field(frame, "room"));
    strbuf_add(&line, ": ");
    add_name_list(&line, cJSON_GetObjectItemCaseSensitive(frame, "members"));
    return render_line(out, &line);
}

static int render_users_ok(FILE *out, const cJSON *frame)
{
    int status = 0;
    const cJSON *user;
    cJSON_ArrayForEach(user, cJSON_GetObjectItemCaseSensitive(frame, "users"))
    {
        if (!cJSON_IsObject(user))
            continue;
        strbuf line;
        strbuf_init(&line);
        strbuf_add_untrusted(&line, string_field(user, "name"));
        strbuf_add(&line, " ");
        strbuf_add_untrusted(&line, string_field(user, "status"));
        add_optional_text(&line, string_field(user, "text"));
        if (render_line(out, &line) != 0)
            status = -1;
    }
    return status;
}

/* "FILE_ID NAME SIZE from SENDER", one line per file. */
static int render_files_ok(FILE *out, const cJSON *frame)
{
    int status = 0;
    const cJSON *file;
    cJSON_ArrayForEach(file, cJSON_GetObjectItemCaseSensitive(frame, "files"))
    {
        if (!cJSON_IsObject(file))
            continue;
        strbuf line;
        strbuf_init(&line);
        strbuf_add_untrusted(&line, string_field(file, "file_id"));
        strbuf_add(&line, " ");
        strbuf_add_untrusted(&line, string_field(file, "name"));
        strbuf_add(&line, " ");
        add_count(&line, cJSON_GetObjectItemCaseSensitive(file, "size"));
        strbuf_add(&line, " from ");
        strbuf_add_untrusted(&line, string_field(file, "from"));
        if (render_line(out, &line) != 0)
            status = -1;
    }
    return status;
}

/* "* alice offers NAME (SIZE bytes): FILE_ID" */
static int render_file_offer(FILE *out, const cJSON *frame)
{
    strbuf line;
    strbuf_init(&line);
    strbuf_add(&line, "* ");
    strbuf_add_untrusted(&line, string_field(frame, "from"));
    strbuf_add(&line, " offers ");
    strbuf_add_untrusted(&line, string_field(frame, "name"));
    strbuf_add(&line, " (");
    add_count(&line, cJSON_GetObjectItemCaseSensitive(frame, "size"));
    strbuf_add(&line, " bytes): ");
    strbuf_add_untrusted(&line, string_field(frame, "file_id"));
    return render_line(out, &line);
}

static int render_ok(FILE *out, const cJSON *frame)
{
    const char *re = string_field(frame, "re");
    if (!re)
        return 0;
    if (strcmp(re, "join") == 0)
        return render_join_ok(out, frame);
    if (strcmp(re, "leave") == 0)
        return render_leave_ok(out, frame);
    if (strcmp(re, "rooms") == 0)
        return render_rooms_ok(out, frame);
    if (strcmp(re, "who") == 0)
        return render_who_ok(out, frame);
    if (strcmp(re, "users") == 0)
        return render_users_ok(out, frame);
    if (strcmp(re, "files") == 0)
        return render_files_ok(out, frame);
    return 0; /* hello, msg, dm, topic, status, file_*: nothing to show */
}

int render_frame(FILE *out, const cJSON *frame)
{
    const char *type = string_field(frame, "type");
    if (!type)
        return 0;
    if (strcmp(type, "message") == 0)
        return render_message(out, frame);
    if (strcmp(type, "joined") == 0)
        return render_membership(out, frame, " joined ");
    if (strcmp(type, "left") == 0)
        return render_membership(out, frame, " left ");
    if (strcmp(type, "presence") == 0)
        return render_presence(out, frame);
    if (strcmp(type, "topic") == 0)
        return render_topic(out, frame);
    if (strcmp(type, "error") == 0)
        return render_error_reply(out, frame);
    if (strcmp(type, "ok") == 0)
        return render_ok(out, frame);
    if (strcmp(type, "bye") == 0)
        return render_bye(out, frame);
    if (strcmp(type, "file_offer") == 0)
        return render_file_offer(out, frame);
    return 0; /* clients ignore event types they do not know */
}

int render_json(FILE *out, const cJSON *frame)
{
    char *text = cJSON_PrintUnformatted(frame); /* ours; freed below */
    strbuf line;
    strbuf_init(&line);
    if (text)
        strbuf_add_json(&line, text);
    else
        line.failed = 1;
    free(text);
    return render_line(out, &line);
}
