/*
 * rooms: join, leave, rooms, who, topic (PROTOCOL.md §5), and the "rooms"
 * service other plugins send room messages through (syncasync/rooms.h).
 *
 * One read-write lock guards every room and every membership list: sends
 * to a room take it shared, so broadcasts to different rooms (and to the
 * same room) run in parallel under the thread-per-client engine; joins and
 * leaves take it exclusively. A broadcast costs O(members) and sends one
 * frame encoded once.
 *
 * Ownership: the room table owns the rooms; a room owns its name, topic
 * and member array, and holds a session reference per member (released on
 * leave or disconnect). Each session's data slot holds its joined-room list
 * (owned by the plugin, freed at disconnect).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <syncasync/plugin.h>
#include <syncasync/rooms.h>

#define TOPIC_MAX 512

typedef struct room {
    char name[SA_ROOM_NAME_MAX + 1]; /* as first created */
    char key[SA_ROOM_NAME_MAX + 1];  /* lower-case, for lookups */
    char *topic;
    sa_session **members;
    size_t member_count, member_cap;
    struct room *next; /* bucket chain */
} room;

/* The rooms a session is in (its data slot). */
typedef struct joined_rooms {
    room **rooms;
    size_t count, cap;
} joined_rooms;

static const sa_host *host;
static sa_plugin_ctx *self;
static pthread_rwlock_t rooms_lock = PTHREAD_RWLOCK_INITIALIZER;
static room **buckets;
static size_t bucket_count; /* power of two */
static size_t room_count;
static int64_t max_members;
static int64_t max_rooms_per_user;
static const char *auto_join;

static int room_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > SA_ROOM_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
            return 0;
    return 1;
}

static void fold(const char *name, char *key)
{
    size_t i = 0;
    for (; name[i]; i++)
        key[i] = (char)tolower((unsigned char)name[i]);
    key[i] = '\0';
}

static size_t hash_key(const char *key)
{
    size_t h = 1469598103934665603ull;
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ull;
    return h;
}

/* Lock held. */
static room **room_slot(const char *key)
{
    if (!bucket_count)
        return NULL;
    room **at = &buckets[hash_key(key) & (bucket_count - 1)];
    while (*at && strcmp((*at)->key, key) != 0)
        at = &(*at)->next;
    return at;
}

/* Lock held. A valid name is required. */
static room *room_find(const char *name)
{
    char key[SA_ROOM_NAME_MAX + 1];
    fold(name, key);
    room **at = room_slot(key);
    return at ? *at : NULL;
}

/* Lock held exclusively. */
static int table_grow(void)
{
    size_t fresh_count = bucket_count ? bucket_count * 2 : 64;
    room **fresh = calloc(fresh_count, sizeof *fresh);
    if (!fresh)
        return -1;
    for (size_t i = 0; i < bucket_count; i++) {
        for (room *r = buckets[i], *next; r; r = next) {
            next = r->next;
            room **b = &fresh[hash_key(r->key) & (fresh_count - 1)];
            r->next = *b;
            *b = r;
        }
    }
    free(buckets);
    buckets = fresh;
    bucket_count = fresh_count;
    return 0;
}

/* Lock held exclusively. */
static room *room_create(const char *name)
{
    if (room_count + 1 > bucket_count && table_grow() != 0)
        return NULL;
    room *r = calloc(1, sizeof *r);
    if (!r || !(r->topic = strdup(""))) {
        free(r);
        return NULL;
    }
    strcpy(r->name, name);
    fold(name, r->key);
    room **at = room_slot(r->key);
    *at = r;
    room_count++;
    return r;
}

/* Lock held exclusively; the room is empty. */
static void room_destroy(room *r)
{
    room **at = room_slot(r->key);
    if (at && *at == r)
        *at = r->next;
    room_count--;
    free(r->members);
    free(r->topic);
    free(r);
}

static long member_index(const room *r, const sa_session *s)
{
    for (size_t i = 0; i < r->member_count; i++)
        if (r->members[i] == s)
            return (long)i;
    return -1;
}

static int grow(void **array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t fresh_cap = *cap ? *cap * 2 : 4;
    while (fresh_cap < need)
        fresh_cap *= 2;
    void *fresh = realloc(*array, fresh_cap * elem);
    if (!fresh)
        return -1;
    *array = fresh;
    *cap = fresh_cap;
    return 0;
}

static joined_rooms *joined_of(sa_session *s, int create)
{
    joined_rooms *j = host->session_get_data(self, s);
    if (!j && create) {
        j = calloc(1, sizeof *j);
        if (j)
            host->session_set_data(self, s, j);
    }
    return j;
}

/* Sends `msg` to every member of r except `except`. Lock held. */
static void room_broadcast(room *r, sa_session *except, const cJSON *msg)
{
    sa_frame *f = host->frame_new(msg);
    if (!f)
        return;
    for (size_t i = 0; i < r->member_count; i++)
        if (r->members[i] != except)
            host->send_frame(r->members[i], f);
    host->frame_release(f);
}

static cJSON *event(const char *type, const room *r, const char *user)
{
    cJSON *e = cJSON_CreateObject();
    if (!e || !cJSON_AddStringToObject(e, "type", type) ||
        !cJSON_AddStringToObject(e, "room", r->name) ||
        (user && !cJSON_AddStringToObject(e, "user", user))) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

static cJSON *member_names(const room *r)
{
    cJSON *names = cJSON_CreateArray();
    for (size_t i = 0; names && i < r->member_count; i++)
        if (!cJSON_AddItemToArray(names,
                                  cJSON_CreateString(host->session_name(r->members[i])))) {
            cJSON_Delete(names);
            return NULL;
        }
    return names;
}

enum join_result { JOINED, ALREADY_MEMBER, JOIN_FULL, JOIN_TOO_MANY_ROOMS, JOIN_NOMEM };

/* Lock held exclusively. */
static enum join_result join_locked(sa_session *s, const char *name, room **out)
{
    room *r = room_find(name);
    if (r && member_index(r, s) >= 0) {
        *out = r;
        return ALREADY_MEMBER;
    }
    /* Checked before the room is created, so a refused join leaves no
     * empty room behind. */
    const joined_rooms *before = joined_of(s, 0);
    if (before && (int64_t)before->count >= max_rooms_per_user)
        return JOIN_TOO_MANY_ROOMS;
    int created = 0;
    if (!r) {
        if (!(r = room_create(name)))
            return JOIN_NOMEM;
        created = 1;
    }
    *out = r;
    if ((int64_t)r->member_count >= max_members)
        return JOIN_FULL;
    joined_rooms *j = joined_of(s, 1);
    if (!j || grow((void **)&r->members, &r->member_cap, r->member_count + 1, sizeof *r->members) ||
        grow((void **)&j->rooms, &j->cap, j->count + 1, sizeof *j->rooms)) {
        if (created)
            room_destroy(r);
        return JOIN_NOMEM;
    }
    cJSON *joined = event("joined", r, host->session_name(s));
    if (joined)
        room_broadcast(r, NULL, joined);
    cJSON_Delete(joined);
    host->session_ref(s);
    r->members[r->member_count++] = s;
    j->rooms[j->count++] = r;
    return JOINED;
}

/* Lock held exclusively; s is a member of r. */
static void leave_locked(sa_session *s, room *r, const char *reason)
{
    long at = member_index(r, s);
    r->members[at] = r->members[--r->member_count];
    joined_rooms *j = joined_of(s, 0);
    for (size_t i = 0; j && i < j->count; i++)
        if (j->rooms[i] == r) {
            j->rooms[i] = j->rooms[--j->count];
            break;
        }
    if (r->member_count == 0) {
        room_destroy(r);
    } else {
        cJSON *left = event("left", r, host->session_name(s));
        if (left && cJSON_AddStringToObject(left, "reason", reason))
            room_broadcast(r, NULL, left);
        cJSON_Delete(left);
    }
    host->session_unref(s);
}

/* Reads and checks the request's "room"; replies bad_room itself. */
static const char *room_field(const sa_request *req)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->body, "room");
    if (!cJSON_IsString(v) || !room_name_valid(v->valuestring)) {
        host->reply_error(req, "bad_room", "room must be 1 to 64 bytes of A-Z a-z 0-9 _ . -",
                          NULL);
        return NULL;
    }
    return v->valuestring;
}

static void reply_room(const sa_request *req, const room *r, int with_members, int with_topic)
{
    cJSON *result = cJSON_CreateObject();
    cJSON *names = with_members ? member_names(r) : NULL;
    if (!result || !cJSON_AddStringToObject(result, "room", r->name) ||
        (with_members && !names) ||
        (with_topic && !cJSON_AddStringToObject(result, "topic", r->topic))) {
        cJSON_Delete(result);
        cJSON_Delete(names);
        host->reply_error(req, "internal", "out of memory", NULL);
        return;
    }
    if (names)
        cJSON_AddItemToObject(result, "members", names);
    host->reply_ok(req, result);
    cJSON_Delete(result);
}

static void on_join(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const char *name = room_field(req);
    if (!name)
        return;
    room *r = NULL;
    pthread_rwlock_wrlock(&rooms_lock);
    switch (join_locked(req->session, name, &r)) {
    case JOINED:
    case ALREADY_MEMBER:
        reply_room(req, r, 1, 1);
        break;
    case JOIN_FULL:
        host->reply_error(req, "room_full", "the room has reached max_members", NULL);
        break;
    case JOIN_TOO_MANY_ROOMS:
        host->reply_error(req, "too_many_rooms",
                          "you are in max_rooms_per_user rooms already; leave one first", NULL);
        break;
    case JOIN_NOMEM:
        host->reply_error(req, "internal", "out of memory", NULL);
        break;
    }
    pthread_rwlock_unlock(&rooms_lock);
}

/* The room the request names, checked for membership; replies the error
 * itself and returns NULL. Lock held. */
static room *member_room(const sa_request *req, const char *name)
{
    room *r = room_find(name);
    if (!r) {
        host->reply_error(req, "no_such_room", "no such room", NULL);
        return NULL;
    }
    if (member_index(r, req->session) < 0) {
        host->reply_error(req, "not_member", "you are not in that room", NULL);
        return NULL;
    }
    return r;
}

static void on_leave(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const char *name = room_field(req);
    if (!name)
        return;
    pthread_rwlock_wrlock(&rooms_lock);
    room *r = member_room(req, name);
    if (r) {
        cJSON *result = cJSON_CreateObject();
        if (result && cJSON_AddStringToObject(result, "room", r->name)) {
            leave_locked(req->session, r, "leave");
            host->reply_ok(req, result);
        } else {
            host->reply_error(req, "internal", "out of memory", NULL);
        }
        cJSON_Delete(result);
    }
    pthread_rwlock_unlock(&rooms_lock);
}

static void on_rooms(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    cJSON *result = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(result, "rooms");
    int ok = list != NULL;
    pthread_rwlock_rdlock(&rooms_lock);
    for (size_t b = 0; ok && b < bucket_count; b++) {
        for (const room *r = buckets[b]; ok && r; r = r->next) {
            cJSON *item = cJSON_CreateObject();
            ok = item && cJSON_AddItemToArray(list, item) &&
                 cJSON_AddStringToObject(item, "name", r->name) &&
                 cJSON_AddNumberToObject(item, "members", (double)r->member_count) &&
                 cJSON_AddStringToObject(item, "topic", r->topic);
        }
    }
    pthread_rwlock_unlock(&rooms_lock);
    if (ok)
        host->reply_ok(req, result);
    else
        host->reply_error(req, "internal", "out of memory", NULL);
    cJSON_Delete(result);
}

static void on_who(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const char *name = room_field(req);
    if (!name)
        return;
    pthread_rwlock_rdlock(&rooms_lock);
    room *r = room_find(name);
    if (r)
        reply_room(req, r, 1, 0);
    else
        host->reply_error(req, "no_such_room", "no such room", NULL);
    pthread_rwlock_unlock(&rooms_lock);
}

static void on_topic(sa_plugin_ctx *ctx, const sa_request *req)
{
    (void)ctx;
    const char *name = room_field(req);
    if (!name)
        return;
    const cJSON *topic = cJSON_GetObjectItemCaseSensitive(req->body, "topic");
    if (!cJSON_IsString(topic) || strlen(topic->valuestring) > TOPIC_MAX) {
        host->reply_error(req, "bad_request", "topic must be a string of at most 512 bytes",
                          NULL);
        return;
    }
    char *copy = strdup(topic->valuestring);
    if (!copy) {
        host->reply_error(req, "internal", "out of memory", NULL);
        return;
    }
    pthread_rwlock_wrlock(&rooms_lock);
    room *r = member_room(req, name);
    if (r) {
        free(r->topic);
        r->topic = copy;
        copy = NULL;
        cJSON *e = event("topic", r, NULL);
        if (e && cJSON_AddStringToObject(e, "topic", r->topic) &&
            cJSON_AddStringToObject(e, "by", host->session_name(req->session)))
            room_broadcast(r, req->session, e);
        cJSON_Delete(e);
        reply_room(req, r, 0, 1);
    }
    pthread_rwlock_unlock(&rooms_lock);
    free(copy);
}

static void on_hello(sa_plugin_ctx *ctx, sa_session *s)
{
    if (!auto_join[0])
        return;
    room *r = NULL;
    pthread_rwlock_wrlock(&rooms_lock);
    enum join_result result = join_locked(s, auto_join, &r);
    pthread_rwlock_unlock(&rooms_lock);
    if (result == JOIN_FULL || result == JOIN_TOO_MANY_ROOMS || result == JOIN_NOMEM)
        host->log(ctx, SA_LOG_WARN, "%s could not auto-join %s: %s", host->session_name(s),
                  auto_join,
                  result == JOIN_FULL             ? "room full"
                  : result == JOIN_TOO_MANY_ROOMS ? "in max_rooms_per_user rooms already"
                                                  : "out of memory");
}

static void on_disconnect(sa_plugin_ctx *ctx, sa_session *s)
{
    (void)ctx;
    pthread_rwlock_wrlock(&rooms_lock);
    joined_rooms *j = joined_of(s, 0);
    while (j && j->count)
        leave_locked(s, j->rooms[j->count - 1], "quit");
    host->session_set_data(self, s, NULL);
    pthread_rwlock_unlock(&rooms_lock);
    if (j)
        free(j->rooms);
    free(j);
}

/* ---- the service ---------------------------------------------------------- */

static const char *check_member_locked(const char *name, sa_session *sender, room **out)
{
    if (!name || !room_name_valid(name))
        return "bad_room";
    room *r = room_find(name);
    if (!r)
        return "no_such_room";
    if (member_index(r, sender) < 0)
        return "not_member";
    *out = r;
    return NULL;
}

static const char *service_check_member(const char *name, sa_session *sender, char *canonical)
{
    room *r = NULL;
    pthread_rwlock_rdlock(&rooms_lock);
    const char *code = check_member_locked(name, sender, &r);
    if (!code)
        strcpy(canonical, r->name);
    pthread_rwlock_unlock(&rooms_lock);
    return code;
}

static const char *service_send_to_room(const char *name, sa_session *sender, sa_frame *frame)
{
    room *r = NULL;
    pthread_rwlock_rdlock(&rooms_lock);
    const char *code = check_member_locked(name, sender, &r);
    for (size_t i = 0; !code && i < r->member_count; i++)
        if (r->members[i] != sender)
            host->send_frame(r->members[i], frame);
    pthread_rwlock_unlock(&rooms_lock);
    return code;
}

static const char *service_foreach_member(const char *name, sa_session *member,
                                          sa_session_visit_fn visit, void *arg)
{
    room *r = NULL;
    pthread_rwlock_rdlock(&rooms_lock);
    const char *code = check_member_locked(name, member, &r);
    for (size_t i = 0; !code && i < r->member_count; i++)
        if (r->members[i] != member && visit(r->members[i], arg))
            break;
    pthread_rwlock_unlock(&rooms_lock);
    return code;
}

static int compare_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (sa_session *const *)a, y = (uintptr_t) * (sa_session *const *)b;
    return x < y ? -1 : x > y;
}

static void service_foreach_peer(sa_session *s, sa_session_visit_fn visit, void *arg)
{
    pthread_rwlock_rdlock(&rooms_lock);
    joined_rooms *j = joined_of(s, 0);
    size_t total = 0;
    for (size_t i = 0; j && i < j->count; i++)
        total += j->rooms[i]->member_count;
    sa_session **peers = total ? malloc(total * sizeof *peers) : NULL;
    size_t n = 0;
    for (size_t i = 0; peers && i < j->count; i++)
        for (size_t m = 0; m < j->rooms[i]->member_count; m++)
            if (j->rooms[i]->members[m] != s)
                peers[n++] = j->rooms[i]->members[m];
    if (n)
        qsort(peers, n, sizeof *peers, compare_ptr);
    for (size_t i = 0; i < n; i++)
        if ((i == 0 || peers[i] != peers[i - 1]) && visit(peers[i], arg))
            break;
    pthread_rwlock_unlock(&rooms_lock);
    free(peers);
}

static const sa_rooms_service service = {
    .send_to_room = service_send_to_room,
    .check_member = service_check_member,
    .foreach_peer = service_foreach_peer,
    .foreach_member = service_foreach_member,
};

/* ---- plugin ----------------------------------------------------------------- */

static int rooms_init(sa_plugin_ctx *ctx, const sa_host *h)
{
    host = h;
    self = ctx;
    auto_join = host->config_string(ctx, "auto_join");
    max_members = host->config_int(ctx, "max_members");
    max_rooms_per_user = host->config_int(ctx, "max_rooms_per_user");
    if (host->register_request(ctx, "join", on_join) || host->register_request(ctx, "leave", on_leave) ||
        host->register_request(ctx, "rooms", on_rooms) || host->register_request(ctx, "who", on_who) ||
        host->register_request(ctx, "topic", on_topic) ||
        host->service_provide(ctx, SA_ROOMS_SERVICE, &service))
        return -1;
    return 0;
}

static void rooms_stop(sa_plugin_ctx *ctx)
{
    (void)ctx;
    /* Every session has disconnected (and left its rooms) before stop. */
    pthread_rwlock_wrlock(&rooms_lock);
    free(buckets);
    buckets = NULL;
    bucket_count = 0;
    pthread_rwlock_unlock(&rooms_lock);
}

static const sa_config_key rooms_keys[] = {
    {"auto_join", SA_CFG_NAME, "lobby", 0, 0, "room joined at hello; empty = none"},
    {"max_members", SA_CFG_INT, "10000", 1, 10000000, "members per room"},
    {"max_rooms_per_user", SA_CFG_INT, "100", 1, 100000, "rooms one user may be in at once"},
    {NULL, 0, NULL, 0, 0, NULL},
};

static const char *const provides[] = {SA_ROOMS_SERVICE, NULL};

static const sa_plugin rooms_plugin = {
    .abi = SA_ABI_VERSION,
    .kind = SA_PLUGIN_HANDLER,
    .name = "rooms",
    .version = "1.0",
    .description = "rooms: join, leave, rooms, who, topic",
    .config_keys = rooms_keys,
    .provides = provides,
    .init = rooms_init,
    .stop = rooms_stop,
    .on_hello = on_hello,
    .on_disconnect = on_disconnect,
};

SA_PLUGIN_DEFINE(rooms_plugin)
