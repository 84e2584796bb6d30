/*
 * presence: online/offline at hello and disconnect, `status` away/busy/
 * online with a text, and `users` (PROTOCOL.md §7).
 *
 * The audience of a change is every user who shares a room with the user
 * (through the rooms service, each peer once however many rooms they
 * share), or every connected user when the rooms plugin is not loaded.
 *
 * Ownership: each session's data slot holds its presence record, created
 * at hello and freed at disconnect. `users` reads other sessions' records,
 * so every record is read and written under presence_lock.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <syncasync/plugin.h>
#include <syncasync/rooms.h>

#define STATUS_TEXT_MAX 256

typedef struct presence {
    const char *status; /* one of the static status names */
    char *text;         /* owned; "" when none */
} presence;

static const sa_host *host;
static sa_plugin_ctx *self;
static const sa_rooms_service *rooms; /* NULL when rooms is not loaded */
static pthread_mutex_t presence_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const statuses[] = {"online", "away", "busy"};

typedef struct audience {
    sa_session *except;
    sa_frame *frame;
} audience;

static int send_to_peer(sa_session *s, void *arg)
{
    const audience *a = arg;
    if (s != a->except)
        host->send_frame(s, a->frame);
    return 0;
}

/* Tells everyone who can see `s` its new status. */
static void announce(sa_session *s, const char *status, const char *text)
{
    cJSON *e = cJSON_CreateObject();
    if (e && cJSON_AddStringToObject(e, "type", "presence") &&
        cJSON_AddStringToObject(e, "user", host->session_name(s)) &&
        cJSON_AddStringToObject(e, "status", status) &&
        (!text || cJSON_AddStringToObject(e, "text", text))) {
        audience a = {.except = s, .frame = host->frame_new(e)};
        if (a.frame) {
            if (rooms)
                rooms->foreach_peer(s, send_to_peer, &a);
            else
                host->session_foreach(send_to_peer, &a);
            host->frame_release(a.frame);
        }
    }
    cJSON_Delete(e);
}

static void on_hello(sa_plugin_ctx *ctx, sa_session *s)
{
    presence *p = calloc(1, sizeof *p);
    if (!p || !(p->text = strdup(""))) {
        free(p);
        host->log(ctx, SA_LOG_WARN, "out of memory for %s's presence", host->session_name(s));
        return;
    }
    p->status = statuses[0];
    pthread_mutex_lock(&presence_lock);
    host->session_set_data(self, s, p);
    pthread_mutex_unlock(&presence_lock);
    announce(s, "online", NULL);
}

static void on_disconnect(sa_plugin_ctx *ctx, sa_session *s)
{
    (void)ctx;
    announce(s, "offline", NULL);
    pthread_mutex_lock(&presence_lock);
    presence *p = host->session_get_data(self, s);
    host->session_set_data(self, s, NULL);
    pthread_mutex_unlock(&presence_lock);
    if (p)
        free(p->text);
    free(p);
}

static void on_status(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(req->body, "status");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(req->body, "text");
    const char *name = NULL;
    for (size_t i = 0; cJSON_IsString(status) && i < sizeof statuses / sizeof *statuses; i++)
        if (strcmp(status->valuestring, statuses[i]) == 0)
            name = statuses[i];
    if (!name) {
        host->reply_error(req, "bad_status", "status must be online, away or busy", NULL);
        return;
    }
    if (text && (!cJSON_IsString(text) || strlen(text->valuestring) > STATUS_TEXT_MAX)) {
        host->reply_error(req, "bad_request", "text must be a string of at most 256 bytes", NULL);
        return;
    }
    char *copy = strdup(text ? text->valuestring : "");
    if (!copy) {
        host->reply_error(req, "internal", "out of memory", NULL);
        return;
    }
    pthread_mutex_lock(&presence_lock);
    presence *p = host->session_get_data(self, req->session);
    if (p) {
        free(p->text);
        p->text = copy;
        p->status = name;
        copy = NULL;
    }
    pthread_mutex_unlock(&presence_lock);
    free(copy);
    host->reply_ok(req, NULL);
    announce(req->session, name, text ? text->valuestring : "");
}

static int add_user(sa_session *s, void *arg)
{
    cJSON *list = arg;
    cJSON *item = cJSON_CreateObject();
    const presence *p = host->session_get_data(self, s);
    if (!item || !cJSON_AddItemToArray(list, item)) {
        cJSON_Delete(item);
        return 1;
    }
    cJSON_AddStringToObject(item, "name", host->session_name(s));
    cJSON_AddStringToObject(item, "status", p ? p->status : statuses[0]);
    cJSON_AddStringToObject(item, "text", p ? p->text : "");
    return 0;
}

static void on_users(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    cJSON *result = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(result, "users");
    if (!list) {
        cJSON_Delete(result);
        host->reply_error(req, "internal", "out of memory", NULL);
        return;
    }
    pthread_mutex_lock(&presence_lock);
    host->session_foreach(add_user, list);
    pthread_mutex_unlock(&presence_lock);
    host->reply_ok(req, result);
    cJSON_Delete(result);
}

static int presence_init(sa_plugin_ctx *ctx, const sa_host *h)
{
    host = h;
    self = ctx;
    rooms = host->service_get(SA_ROOMS_SERVICE);
    if (host->register_request(ctx, "status", on_status) ||
        host->register_request(ctx, "users", on_users))
        return -1;
    return 0;
}

static const char *const uses[] = {SA_ROOMS_SERVICE, NULL};

static const sa_plugin presence_plugin = {
    .abi = SA_ABI_VERSION,
    .kind = SA_PLUGIN_HANDLER,
    .name = "presence",
    .version = "1.0",
    .description = "presence: online/offline, status, users",
    .uses = uses,
    .init = presence_init,
    .on_hello = on_hello,
    .on_disconnect = on_disconnect,
};

SA_PLUGIN_DEFINE(presence_plugin)
