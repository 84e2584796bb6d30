/*
 * sa-floor: the least a server can do for `sa-bench --workload fanout`.
 *
 * BENCHMARK TOOL ONLY, not a server: it exists to measure the floor this
 * machine sets for paced fan-out latency (docs/benchmarks.md, "The floor"),
 * that is what the best possible server could achieve once the protocol's
 * own work is taken away. It speaks just enough of PROTOCOL.md (4-byte
 * big-endian length + JSON) for sa-bench: hello, join, msg (the "message"
 * event to every other member of the room, laid out as syncasyncd's chat
 * plugin lays it out, then ok re msg to the sender), ping. No auth, no
 * unique names, no joined/left/presence events, no heartbeat, no limits
 * beyond a frame of 1 MiB and 64 MiB queued per client. Fields are found
 * with memmem, not parsed: JSON that is not laid out as sa-bench writes it
 * gets an error or is misread, but never crashes the process; a client
 * that breaks the framing or falls too far behind is dropped.
 *
 * One thread, epoll, non-blocking sockets with TCP_NODELAY. By default
 * every delivery is its own write() to its recipient, at once (what the
 * kernel's loopback TCP send path costs per message). With --batch every
 * frame due to a socket during one epoll turn is gathered and leaves in
 * one write() at the end of the turn, as the async engine does.
 *
 *   sa-floor [--listen HOST:PORT] [--batch]     (default 127.0.0.1:7700)
 *
 * Ownership: the server struct owns every connection (its `all` list) and
 * every room; a room holds borrowed pointers to its members, a connection
 * borrowed pointers to its rooms. A connection dropped during an epoll turn
 * is only unlinked then and freed at the end of the turn, since later
 * events of the same turn may still name it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_HEADER 4
#define MAX_FRAME (1024u * 1024u)
#define MAX_QUEUED (64u * 1024u * 1024u)
#define READ_CHUNK (64u * 1024u)
#define MAX_ID_BYTES 66 /* a 64-byte string id and its quotes */
#define MAX_NAME 32
#define MAX_ROOM_NAME 64

typedef struct buffer {
    unsigned char *data; /* owned */
    size_t start, len, cap; /* bytes [start, start + len) are live */
} buffer;

struct room;

typedef struct conn {
    int fd;
    bool dead;        /* dropped this turn: unlinked, freed at the turn's end */
    bool dirty;       /* --batch: on the server's dirty list this turn */
    bool want_out;    /* EPOLLOUT is armed */
    char *name;       /* owned; NULL until hello */
    buffer in;        /* a frame that arrived in part */
    buffer out;       /* what the socket would not take yet (--batch: this turn's frames) */
    struct room **rooms; /* owned array of borrowed rooms */
    size_t room_count, room_cap;
    struct conn *next_all, *prev_all;
    struct conn *next_dead;
} conn;

typedef struct room {
    char *name; /* owned */
    conn **members; /* owned array of borrowed connections */
    size_t member_count, member_cap;
    struct room *next;
} room;

typedef struct server {
    int epfd, listen_fd;
    bool batch;
    conn *all;
    conn *dead;
    room *rooms;
    conn **dirty; /* owned array of borrowed connections, --batch */
    size_t dirty_count, dirty_cap;
    unsigned char *scratch; /* owned, READ_CHUNK: every read lands here first */
    buffer frame;           /* the frame being built */
    uint64_t msg_counter;
} server;

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* ---- buffers ------------------------------------------------------------- */

static int buffer_reserve(buffer *b, size_t extra)
{
    if (b->start > 0 && b->start + b->len + extra > b->cap) {
        memmove(b->data, b->data + b->start, b->len);
        b->start = 0;
    }
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    unsigned char *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buffer_append(buffer *b, const void *bytes, size_t n)
{
    if (buffer_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->start + b->len, bytes, n);
    b->len += n;
    return 0;
}

static void buffer_consume(buffer *b, size_t n)
{
    b->start += n;
    b->len -= n;
    if (b->len == 0)
        b->start = 0;
}

/* Appends printf output; the buffer grows to fit. */
__attribute__((format(printf, 2, 3))) static int buffer_printf(buffer *b, const char *fmt, ...)
{
    for (;;) {
        size_t room_left = b->cap - b->start - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf((char *)b->data + b->start + b->len, room_left, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if ((size_t)n < room_left) {
            b->len += (size_t)n;
            return 0;
        }
        if (buffer_reserve(b, (size_t)n + 1) != 0)
            return -1;
    }
}

/* `array` (of *cap elements of `size` bytes, `count` in use) with room for
 * one more: itself, or moved by realloc with *cap doubled; NULL when out of
 * memory (`array` is left as it was). */
static void *grow_for_one(void *array, size_t *cap, size_t count, size_t size)
{
    if (count < *cap)
        return array;
    size_t new_cap = *cap ? *cap * 2 : 8;
    void *grown = realloc(array, new_cap * size);
    if (grown)
        *cap = new_cap;
    return grown;
}

/* ---- connections ----------------------------------------------------------- */

static void drop(server *srv, conn *c, const char *why);

static void set_events(server *srv, conn *c, bool want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0u), .data.ptr = c};
    if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        drop(srv, c, "epoll_ctl failed");
        return;
    }
    c->want_out = want_out;
}

static void room_remove_member(server *srv, room *r, const conn *c)
{
    for (size_t i = 0; i < r->member_count; i++) {
        if (r->members[i] == c) {
            r->members[i] = r->members[--r->member_count];
            break;
        }
    }
    if (r->member_count > 0)
        return;
    for (room **link = &srv->rooms; *link; link = &(*link)->next) {
        if (*link == r) {
            *link = r->next;
            break;
        }
    }
    free(r->name);
    free(r->members);
    free(r);
}

/* Unlinks `c` from everything; it is freed at the end of the turn. */
static void drop(server *srv, conn *c, const char *why)
{
    if (c->dead)
        return;
    if (why)
        fprintf(stderr, "sa-floor: dropping %s: %s\n", c->name ? c->name : "a client", why);
    c->dead = true;
    for (size_t i = 0; i < c->room_count; i++)
        room_remove_member(srv, c->rooms[i], c);
    c->room_count = 0;
    close(c->fd);
    c->fd = -1;
    if (c->prev_all)
        c->prev_all->next_all = c->next_all;
    else
        srv->all = c->next_all;
    if (c->next_all)
        c->next_all->prev_all = c->prev_all;
    c->next_dead = srv->dead;
    srv->dead = c;
}

static void free_conn(conn *c)
{
    free(c->name);
    free(c->in.data);
    free(c->out.data);
    free(c->rooms);
    free(c);
}

/* One write() of everything queued; what the socket does not take stays
 * queued under EPOLLOUT. */
static void flush(server *srv, conn *c)
{
    if (c->dead || c->out.len == 0)
        return;
    ssize_t n = write(c->fd, c->out.data + c->out.start, c->out.len);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        drop(srv, c, NULL);
        return;
    }
    if (n > 0)
        buffer_consume(&c->out, (size_t)n);
    set_events(srv, c, c->out.len > 0);
}

/* Plain: one write() now, unless earlier bytes still wait for EPOLLOUT.
 * --batch: queued for the write at the end of the turn. */
static void send_bytes(server *srv, conn *c, const unsigned char *bytes, size_t n)
{
    if (c->dead)
        return;
    if (!srv->batch && c->out.len == 0) {
        ssize_t done = write(c->fd, bytes, n);
        if (done < 0 && errno != EAGAIN && errno != EINTR) {
            drop(srv, c, NULL);
            return;
        }
        if (done > 0) {
            bytes += done;
            n -= (size_t)done;
        }
        if (n == 0)
            return;
    }
    if (c->out.len + n > MAX_QUEUED) {
        drop(srv, c, "too far behind");
        return;
    }
    if (buffer_append(&c->out, bytes, n) != 0) {
        drop(srv, c, "out of memory");
        return;
    }
    if (!srv->batch) {
        set_events(srv, c, true);
    } else if (!c->dirty) {
        conn **dirty = grow_for_one(srv->dirty, &srv->dirty_cap, srv->dirty_count, sizeof *dirty);
        if (!dirty) {
            drop(srv, c, "out of memory");
            return;
        }
        srv->dirty = dirty;
        srv->dirty[srv->dirty_count++] = c;
        c->dirty = true;
    }
}

/* ---- frames ---------------------------------------------------------------- */

/* Starts srv->frame with a hole for the length. */
static void frame_begin(server *srv)
{
    srv->frame.start = 0;
    srv->frame.len = FRAME_HEADER;
}

/* Fills the length in; false when the frame could not be built. */
static bool frame_end(server *srv, int printf_rc)
{
    if (printf_rc != 0)
        return false;
    size_t n = srv->frame.len - FRAME_HEADER;
    unsigned char *p = srv->frame.data;
    p[0] = (unsigned char)(n >> 24);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
    return true;
}

static void send_frame(server *srv, conn *c)
{
    send_bytes(srv, c, srv->frame.data, srv->frame.len);
}

/* Sends the frame just built to `c`, or drops `c` when it could not be built. */
static void send_built(server *srv, conn *c, int printf_rc)
{
    if (frame_end(srv, printf_rc))
        send_frame(srv, c);
    else
        drop(srv, c, "out of memory");
}

typedef struct span {
    const char *p;
    int len; /* -1: absent */
} span;

/* Where the value of "key" starts (just after its colon), or NULL. */
static const char *find_value(const char *json, size_t len, const char *key)
{
    char pattern[32];
    int plen = snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = memmem(json, len, pattern, (size_t)plen);
    return at ? at + plen : NULL;
}

/* The string value of "key" (raw, escapes left as they are). */
static span string_field(const char *json, size_t len, const char *key)
{
    const char *v = find_value(json, len, key), *end = json + len;
    if (!v || v == end || *v != '"')
        return (span){NULL, -1};
    for (const char *q = ++v; q < end; q++) {
        if (*q == '\\') {
            q++;
        } else if (*q == '"') {
            return (span){v, (int)(q - v)}; /* a frame is at most MAX_FRAME bytes */
        }
    }
    return (span){NULL, -1};
}

/* The raw JSON of a number or string value of "key", at most MAX_ID_BYTES. */
static span raw_field(const char *json, size_t len, const char *key)
{
    const char *v = find_value(json, len, key), *end = json + len, *q = v;
    if (!v)
        return (span){NULL, -1};
    if (q < end && *q == '"') {
        for (q++; q < end && *q != '"' && *q != '\\'; q++)
            ;
        if (q == end || *q != '"')
            return (span){NULL, -1};
        q++;
    } else {
        while (q < end && (*q == '-' || (*q >= '0' && *q <= '9')))
            q++;
    }
    if (q == v || q - v > MAX_ID_BYTES)
        return (span){NULL, -1};
    return (span){v, (int)(q - v)};
}

static bool valid_name(span s, int max)
{
    if (s.len < 1 || s.len > max)
        return false;
    for (int i = 0; i < s.len; i++) {
        char ch = s.p[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

/* The `"id":X,` part of a reply, or nothing when the request had none. */
#define ID_FMT "%s%.*s%s"
#define ID_ARGS(id) (id).len > 0 ? "\"id\":" : "", (id).len > 0 ? (id).len : 0, \
                    (id).len > 0 ? (id).p : "", (id).len > 0 ? "," : ""

static void reply_error(server *srv, conn *c, span re, span id, const char *code)
{
    frame_begin(srv);
    int rc = buffer_printf(&srv->frame,
                           "{\"type\":\"error\",\"re\":\"%.*s\"," ID_FMT
                           "\"code\":\"%s\",\"message\":\"%s\"}",
                           re.len, re.p, ID_ARGS(id), code, code);
    send_built(srv, c, rc);
}

/* ---- requests -------------------------------------------------------------- */

static void handle_hello(server *srv, conn *c, const char *json, size_t len, span re, span id)
{
    if (c->name) {
        reply_error(srv, c, re, id, "bad_request");
        return;
    }
    span name = string_field(json, len, "name");
    if (!valid_name(name, MAX_NAME)) {
        reply_error(srv, c, re, id, "bad_name");
        return;
    }
    c->name = strndup(name.p, (size_t)name.len);
    if (!c->name) {
        drop(srv, c, "out of memory");
        return;
    }
    frame_begin(srv);
    int rc = buffer_printf(&srv->frame,
                           "{\"type\":\"ok\",\"re\":\"hello\"," ID_FMT "\"name\":\"%s\","
                           "\"session\":\"%d\",\"server\":\"sa-floor/1.0\",\"engine\":\"%s\","
                           "\"proto\":1,\"max_frame\":%u,"
                           "\"heartbeat\":{\"interval\":20,\"timeout\":40},"
                           "\"features\":[\"chat\",\"rooms\"]}",
                           ID_ARGS(id), c->name, c->fd, srv->batch ? "floor-batch" : "floor",
                           MAX_FRAME);
    send_built(srv, c, rc);
}

static room *find_room(server *srv, span name)
{
    for (room *r = srv->rooms; r; r = r->next)
        if (strncasecmp(r->name, name.p, (size_t)name.len) == 0 && r->name[name.len] == '\0')
            return r;
    return NULL;
}

static bool is_member(const conn *c, const room *r)
{
    for (size_t i = 0; i < c->room_count; i++)
        if (c->rooms[i] == r)
            return true;
    return false;
}

/* Adds `c` to `r`; -1 when out of memory. */
static int add_member(room *r, conn *c)
{
    conn **members = grow_for_one(r->members, &r->member_cap, r->member_count, sizeof *members);
    if (!members)
        return -1;
    r->members = members;
    room **rooms = grow_for_one(c->rooms, &c->room_cap, c->room_count, sizeof *rooms);
    if (!rooms)
        return -1;
    c->rooms = rooms;
    r->members[r->member_count++] = c;
    c->rooms[c->room_count++] = r;
    return 0;
}

static void handle_join(server *srv, conn *c, const char *json, size_t len, span re, span id)
{
    span name = string_field(json, len, "room");
    if (!valid_name(name, MAX_ROOM_NAME)) {
        reply_error(srv, c, re, id, "bad_room");
        return;
    }
    room *r = find_room(srv, name);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r || !(r->name = strndup(name.p, (size_t)name.len))) {
            free(r);
            drop(srv, c, "out of memory");
            return;
        }
        r->next = srv->rooms;
        srv->rooms = r;
    }
    if (!is_member(c, r) && add_member(r, c) != 0) {
        if (r->member_count == 0)
            room_remove_member(srv, r, c); /* frees the room just made */
        drop(srv, c, "out of memory");
        return;
    }
    frame_begin(srv);
    int rc = buffer_printf(&srv->frame,
                           "{\"type\":\"ok\",\"re\":\"join\"," ID_FMT
                           "\"room\":\"%s\",\"members\":[],\"topic\":\"\"}",
                           ID_ARGS(id), r->name);
    send_built(srv, c, rc);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void handle_msg(server *srv, conn *c, const char *json, size_t len, span re, span id)
{
    span room_name = string_field(json, len, "room");
    span text = string_field(json, len, "text");
    if (text.len < 0 || room_name.len < 0) {
        reply_error(srv, c, re, id, "bad_request");
        return;
    }
    room *r = valid_name(room_name, MAX_ROOM_NAME) ? find_room(srv, room_name) : NULL;
    if (!r || !is_member(c, r)) {
        reply_error(srv, c, re, id, r ? "not_member" : "no_such_room");
        return;
    }
    int64_t ts = now_ms();
    uint64_t msg_id = ++srv->msg_counter;
    frame_begin(srv);
    int rc = buffer_printf(&srv->frame,
                           "{\"type\":\"message\",\"room\":\"%s\",\"from\":\"%s\","
                           "\"text\":\"%.*s\",\"ts\":%lld,\"msg_id\":\"floor-%llu\"}",
                           r->name, c->name, text.len, text.p, (long long)ts,
                           (unsigned long long)msg_id);
    if (!frame_end(srv, rc)) {
        drop(srv, c, "out of memory");
        return;
    }
    /* A member dropped by a failed write leaves the array (swapped with
     * the last), so the index only moves on when the slot kept its member. */
    for (size_t i = 0; i < r->member_count;) {
        conn *m = r->members[i];
        if (m != c)
            send_frame(srv, m);
        if (i < r->member_count && r->members[i] == m)
            i++;
    }
    frame_begin(srv);
    rc = buffer_printf(&srv->frame,
                       "{\"type\":\"ok\",\"re\":\"msg\"," ID_FMT
                       "\"msg_id\":\"floor-%llu\",\"ts\":%lld}",
                       ID_ARGS(id), (unsigned long long)msg_id, (long long)ts);
    send_built(srv, c, rc);
}

static void handle_ping(server *srv, conn *c, const char *json, size_t len, span id)
{
    span ts = raw_field(json, len, "ts");
    frame_begin(srv);
    int rc = buffer_printf(&srv->frame, "{\"type\":\"pong\"," ID_FMT "\"ts\":%.*s}", ID_ARGS(id),
                           ts.len > 0 ? ts.len : 1, ts.len > 0 ? ts.p : "0");
    send_built(srv, c, rc);
}

static void handle_frame(server *srv, conn *c, const char *json, size_t len)
{
    span type = string_field(json, len, "type");
    span id = raw_field(json, len, "id");
    if (type.len < 1 || type.len > 32) {
        reply_error(srv, c, (span){"", 0}, id, "bad_request");
        return;
    }
#define IS(word) (type.len == (int)sizeof(word) - 1 && memcmp(type.p, word, sizeof(word) - 1) == 0)
    if (IS("ping"))
        handle_ping(srv, c, json, len, id);
    else if (IS("hello"))
        handle_hello(srv, c, json, len, type, id);
    else if (!c->name)
        reply_error(srv, c, type, id, "not_authenticated");
    else if (IS("msg"))
        handle_msg(srv, c, json, len, type, id);
    else if (IS("join"))
        handle_join(srv, c, json, len, type, id);
    else
        reply_error(srv, c, type, id, "unknown_type");
#undef IS
}

/* Handles every complete frame of bytes[0..n); returns how many bytes
 * were used, or -1 when the framing is broken (the client was dropped). */
static ssize_t handle_frames(server *srv, conn *c, const unsigned char *bytes, size_t n)
{
    size_t used = 0;
    while (!c->dead && n - used >= FRAME_HEADER) {
        const unsigned char *p = bytes + used;
        uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (len == 0 || len > MAX_FRAME) {
            drop(srv, c, "bad frame length");
            return -1;
        }
        if (n - used - FRAME_HEADER < len)
            break;
        handle_frame(srv, c, (const char *)p + FRAME_HEADER, len);
        used += FRAME_HEADER + len;
    }
    return c->dead ? -1 : (ssize_t)used;
}

/* One read per readiness: frames are handled straight from the scratch
 * buffer unless part of one is already waiting in c->in. */
static void on_readable(server *srv, conn *c)
{
    ssize_t n = read(c->fd, srv->scratch, READ_CHUNK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(srv, c, NULL);
        return;
    }
    if (n < 0)
        return;
    const unsigned char *bytes = srv->scratch;
    size_t len = (size_t)n;
    if (c->in.len > 0) {
        if (buffer_append(&c->in, srv->scratch, len) != 0) {
            drop(srv, c, "out of memory");
            return;
        }
        bytes = c->in.data + c->in.start;
        len = c->in.len;
    }
    ssize_t used = handle_frames(srv, c, bytes, len);
    if (used < 0)
        return;
    if (c->in.len > 0) {
        buffer_consume(&c->in, (size_t)used);
    } else if ((size_t)used < len && buffer_append(&c->in, bytes + used, len - (size_t)used) != 0) {
        drop(srv, c, "out of memory");
    }
}

static void accept_all(server *srv)
{
    for (;;) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "sa-floor: accept: %s\n", strerror(errno));
            return;
        }
        int one = 1;
        conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (!c || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
            epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            fprintf(stderr, "sa-floor: cannot take a connection: %s\n", strerror(errno));
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->next_all = srv->all;
        if (srv->all)
            srv->all->prev_all = c;
        srv->all = c;
    }
}

/* --batch: the one write per connection of this turn. */
static void flush_dirty(server *srv)
{
    for (size_t i = 0; i < srv->dirty_count; i++) {
        conn *c = srv->dirty[i];
        c->dirty = false;
        flush(srv, c);
    }
    srv->dirty_count = 0;
}

static void bury_dead(server *srv)
{
    while (srv->dead) {
        conn *c = srv->dead;
        srv->dead = c->next_dead;
        free_conn(c);
    }
}

static int run(server *srv)
{
    struct epoll_event events[256];
    while (!stop_requested) {
        int n = epoll_wait(srv->epfd, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("sa-floor: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn *c = events[i].data.ptr;
            if (!c) {
                accept_all(srv);
                continue;
            }
            if (c->dead)
                continue;
            if (events[i].events & EPOLLOUT)
                flush(srv, c);
            if (!c->dead && events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(srv, c);
        }
        flush_dirty(srv);
        bury_dead(srv);
    }
    return 0;
}

/* ---- setup ----------------------------------------------------------------- */

static int open_listener(const char *spec)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || colon[1] == '\0') {
        fprintf(stderr, "sa-floor: --listen wants HOST:PORT, not %s\n", spec);
        return -1;
    }
    char *host = strndup(spec, (size_t)(colon - spec));
    if (!host)
        return -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    free(host);
    if (rc != 0) {
        fprintf(stderr, "sa-floor: %s: %s\n", spec, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        fprintf(stderr, "sa-floor: cannot listen on %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void free_server(server *srv)
{
    while (srv->all)
        drop(srv, srv->all, NULL);
    bury_dead(srv);
    free(srv->dirty);
    free(srv->scratch);
    free(srv->frame.data);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->epfd >= 0)
        close(srv->epfd);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"batch", no_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen_spec = "127.0.0.1:7700";
    server srv = {.epfd = -1, .listen_fd = -1};
    int opt;
    while ((opt = getopt_long(argc, argv, "l:bh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen_spec = optarg;
            break;
        case 'b':
            srv.batch = true;
            break;
        case 'h':
            printf("usage: sa-floor [--listen HOST:PORT] [--batch]\n"
                   "A do-nothing fan-out server for sa-bench (benchmark tool only).\n");
            return 0;
        default:
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sa-floor: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    struct sigaction stop = {.sa_handler = on_stop_signal};
    struct sigaction ignore = {.sa_handler = SIG_IGN};
    if (sigaction(SIGINT, &stop, NULL) != 0 || sigaction(SIGTERM, &stop, NULL) != 0 ||
        sigaction(SIGPIPE, &ignore, NULL) != 0) {
        perror("sa-floor: sigaction");
        return 1;
    }
    srv.scratch = malloc(READ_CHUNK);
    srv.listen_fd = open_listener(listen_spec);
    srv.epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (!srv.scratch || srv.listen_fd < 0 || srv.epfd < 0 ||
        buffer_reserve(&srv.frame, 4096) != 0 ||
        epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.listen_fd, &ev) != 0) {
        if (srv.listen_fd >= 0)
            perror("sa-floor: setup");
        free_server(&srv);
        return 1;
    }
    fprintf(stderr, "sa-floor: listening on %s%s\n", listen_spec, srv.batch ? " (--batch)" : "");
    int rc = run(&srv);
    free_server(&srv);
    return rc;
}
