/* PROTOCOL.md §8 (file transfer, plugin `file`) at the protocol level,
 * through the client library, on the engine named by argv[1]: uploads and
 * downloads of every edge size, who is offered and who may fetch a file,
 * resume across disconnects and server restarts (SIGTERM and SIGKILL),
 * every error of file_put / file_chunk / file_end / file_get, and bounded
 * server memory while a slow client downloads a large file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "harness.h"

#ifndef SA_TEST_SYNCASYNCD
#error "SA_TEST_SYNCASYNCD (path of syncasyncd) must be defined by the build"
#endif
#ifndef SA_TEST_DEFAULT_CONF
#error "SA_TEST_DEFAULT_CONF (the INI the harness starts syncasyncd with) must be defined by the build"
#endif

#define PLUGINS_ALL "server.plugins=chat rooms presence file"
#define DEFAULT_CHUNK 65536
/* Transfers of megabytes take longer than a single reply, above all when
 * the daemon runs under AddressSanitizer. */
#define TRANSFER_MS 60000

/* ---- what this file allocates per test -----------------------------------
 * The harness owns cJSON values, strings and the clients of its daemons;
 * byte buffers and the clients of a daemon started outside the harness
 * (see start_victim) are kept here and released, newest first, by
 * files_teardown before the harness's own teardown, so that a failing test
 * (which long-jumps out) leaks nothing. */

typedef struct kept_obj {
    void *ptr;
    void (*release)(void *ptr);
    struct kept_obj *next;
} kept_obj;

static kept_obj *kept_list;

static void *keep_obj(void *ptr, void (*release)(void *))
{
    if (!ptr)
        h_fail("out of memory");
    kept_obj *node = malloc(sizeof *node);
    if (!node) {
        release(ptr);
        h_fail("out of memory");
    }
    node->ptr = ptr;
    node->release = release;
    node->next = kept_list;
    kept_list = node;
    return ptr;
}

static void *keep_mem(void *ptr) { return keep_obj(ptr, free); }

static void release_client(void *ptr) { sa_client_close(ptr); }

/* Releases one kept object now. */
static void release_kept(void *ptr)
{
    for (kept_obj **at = &kept_list; *at; at = &(*at)->next) {
        if ((*at)->ptr == ptr) {
            kept_obj *node = *at;
            *at = node->next;
            node->release(node->ptr);
            free(node);
            return;
        }
    }
    h_fail("test bug: releasing an object that is not kept");
}

static int files_teardown(void **state)
{
    while (kept_list) {
        kept_obj *node = kept_list;
        kept_list = node->next;
        node->release(node->ptr);
        free(node);
    }
    return h_teardown(state);
}

#define FILE_TEST(fn) cmocka_unit_test_setup_teardown(fn, h_setup, files_teardown)

/* ---- test data ------------------------------------------------------------- */

/* Bytes to upload and their SHA-256 (lower-case hex). */
typedef struct blob {
    unsigned char *data; /* kept by keep_mem */
    size_t len;
    char sha256[65];
} blob;

static void hex_digest(const unsigned char *md, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        h_fail("EVP_Digest(sha256) failed");
    hex_digest(md, out);
}

/* xorshift64*: fast reproducible bytes, so that no two chunks are alike. */
static void fill_pseudo_random(unsigned char *out, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out[i] = (unsigned char)((x * 0x2545F4914F6CDD1Dull) >> 56);
    }
}

static blob make_blob(size_t len, uint64_t seed)
{
    blob b = {.len = len};
    b.data = keep_mem(malloc(len ? len : 1));
    fill_pseudo_random(b.data, len, seed);
    sha256_hex(b.data, len, b.sha256);
    return b;
}

/* ---- the daemon ------------------------------------------------------------ */

/* The spool folder of this test (made here, inside the test's temporary
 * folder, so that a restarted daemon can be pointed at the same one). */
static const char *spool_dir(void)
{
    const char *path = h_fmt("%s/spool", h_tempdir());
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        h_fail("mkdir %s: %s", path, strerror(errno));
    return path;
}

static const char *spool_override(void) { return h_fmt("file.spool_dir=%s", spool_dir()); }

/* Starts the daemon with every handler plugin, this test's spool folder
 * and then `extra` (NULL-terminated "section.key=value" overrides). */
static h_daemon *start_daemon_with(const char *const *extra)
{
    const char *overrides[16];
    size_t n = 0;
    overrides[n++] = PLUGINS_ALL;
    overrides[n++] = spool_override();
    for (size_t i = 0; extra && extra[i]; i++) {
        if (n + 1 >= sizeof overrides / sizeof *overrides)
            h_fail("test bug: too many overrides");
        overrides[n++] = extra[i];
    }
    overrides[n] = NULL;
    return h_daemon_start(NULL, overrides);
}

#define START_DAEMON(...) start_daemon_with((const char *const[]){__VA_ARGS__, NULL})

/* The pid of this test's own child process whose command line contains
 * `needle` (the spool override is unique to a test), or -1. */
static pid_t child_pid_with_arg(const char *needle)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        h_fail("opendir /proc: %s", strerror(errno));
    pid_t found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(proc)) != NULL) {
        char *end = NULL;
        long pid = strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int ppid = -1;
        /* "pid (comm) state ppid": comm may hold spaces, so skip to the last ')'. */
        char line[1024];
        if (fgets(line, sizeof line, f)) {
            char *close_paren = strrchr(line, ')');
            if (close_paren)
                sscanf(close_paren + 1, " %*c %d", &ppid);
        }
        fclose(f);
        if (ppid != getpid())
            continue;
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        f = fopen(path, "r");
        if (!f)
            continue;
        char args[8192];
        size_t got = fread(args, 1, sizeof args - 1, f);
        fclose(f);
        for (size_t i = 0; i < got; i++)
            if (args[i] == '\0')
                args[i] = ' ';
        args[got] = '\0';
        if (strstr(args, needle))
            found = (pid_t)pid;
    }
    closedir(proc);
    return found;
}

/* VmRSS of a process in KiB. */
static long rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        h_fail("cannot read %s: %s", path, strerror(errno));
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    if (kib < 0)
        h_fail("no VmRSS in %s", path);
    return kib;
}

/* A daemon started outside the harness's daemon list, so that it can be
 * killed with SIGKILL: the harness fails a test whose daemon does not exit
 * 0 at teardown. Its log goes to the child's stdout (sh joins stderr to
 * it); the harness kills the child at teardown. */
typedef struct victim {
    h_proc *proc;
    pid_t pid;
    const char *port;
} victim;

static victim start_victim(void)
{
    const char *spool = spool_override();
    const char *const argv[] = {"/bin/sh",
                                "-c",
                                "exec \"$0\" \"$@\" 2>&1",
                                SA_TEST_SYNCASYNCD,
                                "-c",
                                SA_TEST_DEFAULT_CONF,
                                "-o",
                                h_fmt("server.engine=%s", h_engine),
                                "-o",
                                "server.listen=127.0.0.1:0",
                                "-o",
                                PLUGINS_ALL,
                                "-o",
                                spool,
                                NULL};
    victim v;
    v.proc = h_spawn(argv);
    const char *line = h_proc_expect_line(v.proc, "listening on ", 30000);
    const char *colon = strrchr(line, ':');
    if (!colon || colon[1] < '0' || colon[1] > '9')
        h_fail("cannot read the port from \"%s\"", line);
    v.port = h_fmt("%d", atoi(colon + 1));
    v.pid = child_pid_with_arg(spool);
    if (v.pid < 0)
        h_fail("cannot find the pid of the daemon started with %s", spool);
    return v;
}

/* ---- clients ----------------------------------------------------------------- */

/* Connects to 127.0.0.1:port and says hello as `name`. Retried while the
 * name is taken: a name is free again only once the server has noticed
 * that its previous connection, closed by the test just before, is gone. */
static sa_client *login_port(const char *port, const char *name)
{
    int64_t deadline = h_now_ms() + H_REPLY_MS;
    for (;;) {
        char err[256] = "";
        sa_client *c = sa_client_connect("127.0.0.1", port, H_REPLY_MS, err, sizeof err);
        if (!c)
            h_fail("cannot connect to 127.0.0.1:%s: %s", port, err);
        keep_obj(c, release_client);
        cJSON *reply = NULL;
        int rc = sa_client_hello(c, name, NULL, &reply, H_REPLY_MS);
        if (rc != SA_CLIENT_OK)
            h_fail("hello as %s: status %d (%s)", name, rc, sa_client_error(c));
        h_keep(reply);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(reply, "type");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(reply, "code");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "ok") == 0)
            return c;
        if (!cJSON_IsString(code) || strcmp(code->valuestring, "name_taken") != 0 ||
            h_now_ms() > deadline)
            h_fail("hello as %s was refused: %s", name, h_json(reply));
        release_kept(c);
        h_sleep_ms(20);
    }
}

static sa_client *login(const h_daemon *d, const char *name)
{
    return login_port(h_daemon_port(d), name);
}

/* ---- frames ------------------------------------------------------------------ */

static int has_type(const cJSON *frame, const char *type)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(frame, "type");
    return cJSON_IsString(t) && strcmp(t->valuestring, type) == 0;
}

/* Events the other plugins push to a user meanwhile (joins, presence...):
 * they do not concern these tests and are passed over. */
static int is_background(const cJSON *frame)
{
    static const char *const types[] = {"presence", "joined", "left", "message", "topic"};
    if (cJSON_GetObjectItemCaseSensitive(frame, "id"))
        return 0;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (has_type(frame, types[i]))
            return 1;
    return 0;
}

static const char *recv_status_text(sa_client *c, int rc)
{
    switch (rc) {
    case SA_CLIENT_TIMEOUT:
        return "nothing came in time";
    case SA_CLIENT_CLOSED:
        return "the server closed the connection";
    default:
        return h_fmt("error: %s", sa_client_error(c));
    }
}

/* The next frame that is not a background event, within timeout_ms; the
 * caller owns it (cJSON_Delete). */
static cJSON *next_frame(sa_client *c, int timeout_ms, const char *waiting_for)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        cJSON *frame = NULL;
        int rc = sa_client_recv(c, &frame, left > 0 ? (int)left : 0);
        if (rc != SA_CLIENT_OK)
            h_fail("waiting %d ms for %s: %s", timeout_ms, waiting_for, recv_status_text(c, rc));
        if (!is_background(frame))
            return frame;
        cJSON_Delete(frame);
    }
}

/* The same, kept by the harness, and it must be of `type`. */
static cJSON *expect_frame(sa_client *c, const char *type, int timeout_ms)
{
    cJSON *frame = h_keep(next_frame(c, timeout_ms, h_fmt("a \"%s\" frame", type)));
    if (!has_type(frame, type))
        h_fail("expected a \"%s\" frame, got %s", type, h_json(frame));
    return frame;
}

static void assert_num(const cJSON *frame, const char *key, double want)
{
    if (h_get_num(frame, key) != want)
        h_fail("expected \"%s\":%.0f in %s", key, want, h_json(frame));
}

static void assert_event(const cJSON *frame)
{
    h_assert_absent(frame, "id");
    h_assert_absent(frame, "re");
}

/* A ping answered: every frame this client sent before it has been
 * handled by the server (replies come in request order). */
static void barrier(sa_client *c)
{
    static int counter;
    const char *ts = h_fmt("barrier-%d", ++counter);
    h_send(c, h_fmt("{\"type\":\"ping\",\"ts\":\"%s\"}", ts));
    cJSON *pong = expect_frame(c, "pong", H_REPLY_MS);
    h_assert_str(pong, "ts", ts);
}

static cJSON *expect_offer(sa_client *c, const char *file_id, const char *from, const char *name,
                           const blob *b)
{
    cJSON *offer = expect_frame(c, "file_offer", H_REPLY_MS);
    h_assert_str(offer, "file_id", file_id);
    h_assert_str(offer, "from", from);
    h_assert_str(offer, "name", name);
    assert_num(offer, "size", (double)b->len);
    h_assert_str(offer, "sha256", b->sha256);
    assert_event(offer);
    return offer;
}

/* No file_offer may reach c within ms (other events may); ms == 0 looks
 * at what has already arrived. */
static void expect_no_offer(sa_client *c, int ms)
{
    int64_t deadline = h_now_ms() + ms;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        cJSON *frame = NULL;
        int rc = sa_client_recv(c, &frame, left > 0 ? (int)left : 0);
        if (rc == SA_CLIENT_TIMEOUT)
            return;
        if (rc != SA_CLIENT_OK)
            h_fail("expected no file_offer, got: %s", recv_status_text(c, rc));
        h_keep(frame);
        if (has_type(frame, "file_offer"))
            h_fail("unexpected file_offer: %s", h_json(frame));
    }
}

/* ---- requests ------------------------------------------------------------------ */

static cJSON *request_error_re(sa_client *c, const char *json, const char *code, const char *re)
{
    cJSON *reply = h_request_error(c, json, code);
    h_assert_str(reply, "re", re);
    return reply;
}

/* An error about a file names it. */
static cJSON *file_error(sa_client *c, const char *json, const char *code, const char *re,
                         const char *file_id)
{
    cJSON *reply = request_error_re(c, json, code, re);
    h_assert_str(reply, "file_id", file_id);
    return reply;
}

/* Sends `payload` (a JSON object text carrying "id":"<id>") as it is, for
 * what the test's own JSON parser would not keep (a \u0000 escape, 1e400),
 * and returns the reply carrying that id. */
static cJSON *raw_request(sa_client *c, const char *payload, const char *id)
{
    h_send_payload(c, payload, strlen(payload));
    cJSON *reply = h_keep(next_frame(c, H_REPLY_MS, h_fmt("the reply to %s", payload)));
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(reply, "id");
    if (!cJSON_IsString(got) || strcmp(got->valuestring, id) != 0)
        h_fail("expected the reply to %s (id \"%s\"), got %s", payload, id, h_json(reply));
    return reply;
}

static cJSON *raw_request_error(sa_client *c, const char *payload, const char *id,
                                const char *code, const char *re)
{
    cJSON *reply = raw_request(c, payload, id);
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(reply, "code");
    if (!has_type(reply, "error") || !cJSON_IsString(got) || strcmp(got->valuestring, code) != 0)
        h_fail("request %s: expected error %s, got %s", payload, code, h_json(reply));
    h_assert_str(reply, "re", re);
    return reply;
}

/* The file_put request text; `extra` is "" or more members (",\"to\":\"bob\""). */
static const char *put_json(const char *name, const blob *b, const char *extra)
{
    return h_fmt("{\"type\":\"file_put\",\"name\":\"%s\",\"size\":%zu,\"sha256\":\"%s\"%s}", name,
                 b->len, b->sha256, extra);
}

static cJSON *put_ok(sa_client *c, const char *name, const blob *b, const char *extra)
{
    const char *json = put_json(name, b, extra);
    cJSON *reply = h_request_ok(c, json);
    h_assert_str(reply, "re", "file_put");
    h_get_str(reply, "file_id");
    double offset = h_get_num(reply, "offset");
    double chunk = h_get_num(reply, "chunk_size");
    if (offset < 0 || offset > (double)b->len || chunk < 1 || chunk > DEFAULT_CHUNK)
        h_fail("file_put %s: bad offset or chunk_size in %s", json, h_json(reply));
    return reply;
}

/* A file_chunk of len bytes at offset (no reply is due). */
static void send_chunk(sa_client *c, const char *file_id, double offset, const void *data,
                       size_t len)
{
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    cJSON *msg = cJSON_CreateObject();
    int ok = b64 && msg;
    if (ok) {
        EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
        ok = cJSON_AddStringToObject(msg, "type", "file_chunk") &&
             cJSON_AddStringToObject(msg, "file_id", file_id) &&
             cJSON_AddNumberToObject(msg, "offset", offset) &&
             cJSON_AddStringToObject(msg, "data", b64);
    }
    free(b64);
    if (!ok) {
        cJSON_Delete(msg);
        h_fail("out of memory");
    }
    int rc = sa_client_send(c, msg);
    cJSON_Delete(msg);
    if (rc != 0)
        h_fail("sending a file_chunk at %.0f failed: %s", offset, sa_client_error(c));
}

/* Sends the first half of a file_chunk frame, as a client killed while
 * writing it would. */
static void send_partial_chunk(sa_client *c, const char *file_id, double offset,
                               const void *data, size_t len)
{
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    cJSON *msg = cJSON_CreateObject();
    char *text = NULL;
    if (b64 && msg) {
        EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
        if (cJSON_AddStringToObject(msg, "type", "file_chunk") &&
            cJSON_AddStringToObject(msg, "file_id", file_id) &&
            cJSON_AddNumberToObject(msg, "offset", offset) &&
            cJSON_AddStringToObject(msg, "data", b64))
            text = cJSON_PrintUnformatted(msg);
    }
    free(b64);
    cJSON_Delete(msg);
    if (!text)
        h_fail("out of memory");
    keep_mem(text);
    size_t payload = strlen(text);
    unsigned char header[4] = {(unsigned char)(payload >> 24), (unsigned char)(payload >> 16),
                               (unsigned char)(payload >> 8), (unsigned char)payload};
    h_send_raw(c, header, sizeof header);
    h_send_raw(c, text, payload / 2);
}

/* Sends b's bytes [from, to) in chunks of `chunk` bytes. */
static void send_range(sa_client *c, const char *file_id, const blob *b, size_t from, size_t to,
                       size_t chunk)
{
    for (size_t at = from; at < to; at += chunk)
        send_chunk(c, file_id, (double)at, b->data + at, to - at < chunk ? to - at : chunk);
}

static cJSON *end_ok(sa_client *c, const char *file_id, const blob *b)
{
    cJSON *reply =
        h_request_ok(c, h_fmt("{\"type\":\"file_end\",\"file_id\":\"%s\"}", file_id));
    h_assert_str(reply, "re", "file_end");
    h_assert_str(reply, "file_id", file_id);
    assert_num(reply, "size", (double)b->len);
    h_assert_str(reply, "sha256", b->sha256);
    return reply;
}

/* A whole upload; returns the file_id. */
static const char *upload(sa_client *c, const char *name, const blob *b, const char *extra)
{
    cJSON *put = put_ok(c, name, b, extra);
    assert_num(put, "offset", 0);
    const char *file_id = h_get_str(put, "file_id");
    send_range(c, file_id, b, 0, b->len, (size_t)h_get_num(put, "chunk_size"));
    end_ok(c, file_id, b);
    return file_id;
}

/* ---- downloads ------------------------------------------------------------------ */

/* Decodes standard padded base64; returns the length or -1. */
static long decode_base64(const char *text, unsigned char **out)
{
    size_t len = strlen(text);
    *out = NULL;
    if (len % 4 != 0)
        return -1;
    unsigned char *bytes = malloc(len / 4 * 3 + 1);
    if (!bytes)
        h_fail("out of memory");
    int n = EVP_DecodeBlock(bytes, (const unsigned char *)text, (int)len);
    if (n < 0) {
        free(bytes);
        return -1;
    }
    /* EVP_DecodeBlock counts the bytes the '=' padding stands for. */
    if (len >= 1 && text[len - 1] == '=')
        n--;
    if (len >= 2 && text[len - 2] == '=')
        n--;
    *out = bytes;
    return n;
}

/* Receives a download's chunks after the ok of its file_get; hands each
 * chunk's bytes to on_bytes and checks the final file_end. */
typedef void (*bytes_fn)(void *arg, size_t offset, const unsigned char *bytes, size_t len);

static void receive_file(sa_client *c, const char *file_id, size_t size, const char *sha256,
                         size_t offset, bytes_fn on_bytes, void *arg, int timeout_ms)
{
    size_t at = offset;
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        cJSON *frame = next_frame(c, left > 0 ? (int)left : 0,
                                  h_fmt("file_chunk or file_end of %s at %zu", file_id, at));
        if (has_type(frame, "file_end")) {
            h_keep(frame);
            assert_event(frame);
            h_assert_str(frame, "file_id", file_id);
            assert_num(frame, "size", (double)size);
            h_assert_str(frame, "sha256", sha256);
            if (at != size)
                h_fail("file_end after %zu of %zu bytes", at, size);
            return;
        }
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(frame, "file_id");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(frame, "offset");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(frame, "data");
        if (!has_type(frame, "file_chunk") || !cJSON_IsString(id) ||
            strcmp(id->valuestring, file_id) != 0 || !cJSON_IsNumber(off) ||
            !cJSON_IsString(data) || cJSON_GetObjectItemCaseSensitive(frame, "id")) {
            h_keep(frame);
            h_fail("expected a file_chunk of %s at %zu, got %s", file_id, at, h_json(frame));
        }
        if (off->valuedouble != (double)at) {
            h_keep(frame);
            h_fail("expected the chunk at offset %zu, got %s", at, h_json(frame));
        }
        unsigned char *bytes = NULL;
        long n = decode_base64(data->valuestring, &bytes);
        cJSON_Delete(frame);
        if (n < 0)
            h_fail("the file_chunk at %zu is not valid base64", at);
        if (n == 0 && at < size) {
            free(bytes);
            h_fail("an empty file_chunk at %zu of %zu", at, size);
        }
        if (n > DEFAULT_CHUNK || at + (size_t)n > size) {
            free(bytes);
            h_fail("a file_chunk of %ld bytes at %zu (size %zu, at most %d a chunk)", n, at,
                   size, DEFAULT_CHUNK);
        }
        keep_mem(bytes); /* on_bytes may fail the test */
        on_bytes(arg, at, bytes, (size_t)n);
        release_kept(bytes);
        at += (size_t)n;
    }
}

static void compare_with_blob(void *arg, size_t offset, const unsigned char *bytes, size_t len)
{
    const blob *b = arg;
    if (memcmp(b->data + offset, bytes, len) != 0)
        h_fail("downloaded bytes at %zu..%zu differ from the uploaded ones", offset,
               offset + len);
}

/* file_get from offset: the reply, then every byte equal to b's. */
static void download_check(sa_client *c, const char *file_id, const char *name, const blob *b,
                           size_t offset)
{
    cJSON *reply = h_request_ok(
        c, h_fmt("{\"type\":\"file_get\",\"file_id\":\"%s\",\"offset\":%zu}", file_id, offset));
    h_assert_str(reply, "re", "file_get");
    h_assert_str(reply, "file_id", file_id);
    h_assert_str(reply, "name", name);
    assert_num(reply, "size", (double)b->len);
    h_assert_str(reply, "sha256", b->sha256);
    assert_num(reply, "offset", (double)offset);
    receive_file(c, file_id, b->len, b->sha256, offset, compare_with_blob, (void *)b,
                 TRANSFER_MS);
}

/* The entry of `files` for file_id, or NULL; every entry is checked. */
static const cJSON *files_entry(sa_client *c, const char *file_id)
{
    cJSON *reply = h_request_ok(c, "{\"type\":\"files\"}");
    h_assert_str(reply, "re", "files");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(reply, "files");
    if (!cJSON_IsArray(list))
        h_fail("files: no \"files\" array in %s", h_json(reply));
    const cJSON *found = NULL;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, list)
    {
        h_get_str(entry, "from");
        h_get_str(entry, "name");
        h_get_num(entry, "size");
        h_get_str(entry, "sha256");
        if (strcmp(h_get_str(entry, "file_id"), file_id) == 0) {
            if (found)
                h_fail("files lists %s twice: %s", file_id, h_json(reply));
            found = entry;
        }
    }
    return found;
}

static void expect_listed(sa_client *c, const char *file_id, const char *from, const char *name,
                          const blob *b)
{
    const cJSON *entry = files_entry(c, file_id);
    if (!entry)
        h_fail("files does not list %s", file_id);
    h_assert_str(entry, "from", from);
    h_assert_str(entry, "name", name);
    assert_num(entry, "size", (double)b->len);
    h_assert_str(entry, "sha256", b->sha256);
}

static void expect_unlisted(sa_client *c, const char *file_id)
{
    if (files_entry(c, file_id))
        h_fail("files lists %s, which this user may not fetch (or is not complete)", file_id);
}

static void expect_no_such_file(sa_client *c, const char *file_id)
{
    file_error(c, h_fmt("{\"type\":\"file_get\",\"file_id\":\"%s\",\"offset\":0}", file_id),
               "no_such_file", "file_get", file_id);
}

/* Bytes of regular files under the spool folder: what the server keeps. */
static long long spool_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        h_fail("opendir %s: %s", dir, strerror(errno));
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        const char *path = h_fmt("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue; /* removed meanwhile */
        if (S_ISDIR(st.st_mode))
            total += spool_bytes(path);
        else if (S_ISREG(st.st_mode))
            total += st.st_size;
    }
    closedir(d);
    return total;
}

#define TO_BOB ",\"to\":\"bob\""

/* ---- uploads and downloads ---------------------------------------------------- */

static void test_roundtrip_sizes(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    static const size_t sizes[] = {0, 1, DEFAULT_CHUNK, DEFAULT_CHUNK + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        blob b = make_blob(sizes[i], i + 1);
        const char *name = h_fmt("size-%zu.bin", sizes[i]);
        const char *file_id = upload(alice, name, &b, TO_BOB);
        expect_offer(bob, file_id, "alice", name, &b);
        download_check(bob, file_id, name, &b, 0);
        download_check(alice, file_id, name, &b, 0);
        expect_listed(bob, file_id, "alice", name, &b);
        expect_listed(alice, file_id, "alice", name, &b);
    }
    /* The sender is not an addressee of its own file. */
    expect_no_offer(alice, H_QUIET_MS);
}

static void test_room_members_get_offers(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    sa_client *carol = login(d, "carol");
    sa_client *dave = login(d, "dave");
    h_request_ok(alice, "{\"type\":\"join\",\"room\":\"proj\"}");
    h_request_ok(bob, "{\"type\":\"join\",\"room\":\"proj\"}");
    h_request_ok(carol, "{\"type\":\"join\",\"room\":\"proj\"}");

    blob b = make_blob(DEFAULT_CHUNK + 3, 11);
    const char *file_id = upload(alice, "plan.txt", &b, ",\"room\":\"proj\"");
    expect_offer(bob, file_id, "alice", "plan.txt", &b);
    expect_offer(carol, file_id, "alice", "plan.txt", &b);
    expect_no_offer(dave, H_QUIET_MS);
    expect_no_offer(alice, 0);

    download_check(bob, file_id, "plan.txt", &b, 0);
    download_check(carol, file_id, "plan.txt", &b, 0);
    expect_listed(carol, file_id, "alice", "plan.txt", &b);
    expect_no_such_file(dave, file_id);
    expect_unlisted(dave, file_id);
}

static void test_no_addressee_only_sender(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    blob b = make_blob(1000, 12);
    const char *file_id = upload(alice, "mine.bin", &b, "");
    expect_no_offer(bob, H_QUIET_MS);
    expect_no_offer(alice, 0);
    expect_no_such_file(bob, file_id);
    expect_unlisted(bob, file_id);
    expect_listed(alice, file_id, "alice", "mine.bin", &b);
    download_check(alice, file_id, "mine.bin", &b, 0);
}

static void test_third_user_sees_nothing(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    sa_client *carol = login(d, "carol");
    blob b = make_blob(5000, 13);
    const char *file_id = upload(alice, "secret.txt", &b, TO_BOB);
    expect_offer(bob, file_id, "alice", "secret.txt", &b);
    expect_no_offer(carol, H_QUIET_MS);
    expect_no_such_file(carol, file_id);
    expect_unlisted(carol, file_id);
    /* Not even from an offset, and no file_end or chunk of someone else's file. */
    file_error(carol, h_fmt("{\"type\":\"file_get\",\"file_id\":\"%s\",\"offset\":10}", file_id),
               "no_such_file", "file_get", file_id);
    expect_listed(bob, file_id, "alice", "secret.txt", &b);
    download_check(bob, file_id, "secret.txt", &b, 0);
}

static void test_files_lists_complete_files_only(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    blob b = make_blob(2 * DEFAULT_CHUNK + 1, 14);
    cJSON *put = put_ok(alice, "half.bin", &b, TO_BOB);
    const char *file_id = h_get_str(put, "file_id");
    send_range(alice, file_id, &b, 0, DEFAULT_CHUNK, DEFAULT_CHUNK);
    barrier(alice);
    expect_no_offer(bob, H_QUIET_MS);
    expect_unlisted(bob, file_id);
    expect_unlisted(alice, file_id);
    expect_no_such_file(bob, file_id);

    send_range(alice, file_id, &b, DEFAULT_CHUNK, b.len, DEFAULT_CHUNK);
    end_ok(alice, file_id, &b);
    expect_offer(bob, file_id, "alice", "half.bin", &b);
    expect_listed(bob, file_id, "alice", "half.bin", &b);
    expect_listed(alice, file_id, "alice", "half.bin", &b);
}

static void test_download_resume_from_offset(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    blob b = make_blob(2 * DEFAULT_CHUNK + 5, 15);
    const char *file_id = upload(alice, "r.bin", &b, TO_BOB);
    expect_offer(bob, file_id, "alice", "r.bin", &b);
    const size_t offsets[] = {1, DEFAULT_CHUNK, DEFAULT_CHUNK + 3, b.len - 1, b.len};
    for (size_t i = 0; i < sizeof offsets / sizeof *offsets; i++)
        download_check(bob, file_id, "r.bin", &b, offsets[i]);
    file_error(bob,
               h_fmt("{\"type\":\"file_get\",\"file_id\":\"%s\",\"offset\":%zu}", file_id,
                     b.len + 1),
               "bad_offset", "file_get", file_id);
    /* The failed request leaves the connection usable. */
    download_check(bob, file_id, "r.bin", &b, 0);
}

/* ---- resume of uploads ------------------------------------------------------------- */

static void test_upload_resume_after_disconnect(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    blob b = make_blob(3 * DEFAULT_CHUNK + 100, 16);
    cJSON *put = put_ok(alice, "resume.bin", &b, TO_BOB);
    const char *file_id = h_get_str(put, "file_id");
    send_range(alice, file_id, &b, 0, 2 * DEFAULT_CHUNK, DEFAULT_CHUNK);
    barrier(alice);
    /* The client dies in the middle of the next chunk's frame. */
    send_partial_chunk(alice, file_id, 2 * DEFAULT_CHUNK, b.data + 2 * DEFAULT_CHUNK,
                       DEFAULT_CHUNK);
    release_kept(alice);

    /* Someone else's upload of the same bytes is not alice's. */
    cJSON *other = put_ok(bob, "resume.bin", &b, "");
    assert_num(other, "offset", 0);
    if (strcmp(h_get_str(other, "file_id"), file_id) == 0)
        h_fail("bob's file_put resumed alice's upload %s", file_id);

    alice = login(d, "alice");
    cJSON *again = put_ok(alice, "resume.bin", &b, TO_BOB);
    h_assert_str(again, "file_id", file_id);
    assert_num(again, "offset", 2 * DEFAULT_CHUNK);
    /* Other bytes under the same name and size are another upload. */
    blob changed = make_blob(b.len, 17);
    cJSON *fresh = put_ok(alice, "resume.bin", &changed, TO_BOB);
    assert_num(fresh, "offset", 0);
    if (strcmp(h_get_str(fresh, "file_id"), file_id) == 0)
        h_fail("a file_put with another sha256 resumed upload %s", file_id);

    send_range(alice, file_id, &b, 2 * DEFAULT_CHUNK, b.len, DEFAULT_CHUNK);
    end_ok(alice, file_id, &b);
    expect_offer(bob, file_id, "alice", "resume.bin", &b);
    download_check(bob, file_id, "resume.bin", &b, 0);
}

/* An upload interrupted by the server stopping (SIGTERM) or dying
 * (SIGKILL, with a chunk still on its way) resumes on a new server over
 * the same spool folder from what is on disk: whatever offset it reports,
 * the finished file must match. */
static void upload_resume_across_restart(int sig)
{
    blob b = make_blob(3 * DEFAULT_CHUNK + 100, 18);
    h_daemon *first = NULL;
    victim v = {0};
    const char *port;
    if (sig == SIGTERM) {
        first = START_DAEMON(NULL);
        port = h_daemon_port(first);
    } else {
        v = start_victim();
        port = v.port;
    }
    sa_client *alice = login_port(port, "alice");
    sa_client *bob = login_port(port, "bob");
    cJSON *put = put_ok(alice, "restart.bin", &b, TO_BOB);
    const char *file_id = h_get_str(put, "file_id");
    send_range(alice, file_id, &b, 0, 2 * DEFAULT_CHUNK, DEFAULT_CHUNK);
    barrier(alice);
    if (sig == SIGTERM) {
        h_daemon_stop(first);
    } else {
        /* Killed with one more chunk on its way. */
        send_chunk(alice, file_id, 2 * DEFAULT_CHUNK, b.data + 2 * DEFAULT_CHUNK, DEFAULT_CHUNK);
        if (kill(v.pid, SIGKILL) != 0)
            h_fail("kill(%d, SIGKILL): %s", (int)v.pid, strerror(errno));
        int status = h_proc_wait(v.proc, 5000);
        if (status != 128 + SIGKILL)
            h_fail("the killed daemon exited with %d", status);
    }
    release_kept(alice);
    release_kept(bob);

    h_daemon *second = START_DAEMON(NULL);
    bob = login(second, "bob");
    alice = login(second, "alice");
    cJSON *again = put_ok(alice, "restart.bin", &b, TO_BOB);
    h_assert_str(again, "file_id", file_id);
    double offset = h_get_num(again, "offset");
    if (sig == SIGTERM ? offset != 2 * DEFAULT_CHUNK : offset > 3 * DEFAULT_CHUNK)
        h_fail("after %s the upload resumes at %.0f, %s %d bytes were sent",
               sig == SIGTERM ? "SIGTERM" : "SIGKILL", offset,
               sig == SIGTERM ? "but all" : "but only", (sig == SIGTERM ? 2 : 3) * DEFAULT_CHUNK);
    send_range(alice, file_id, &b, (size_t)offset, b.len, DEFAULT_CHUNK);
    end_ok(alice, file_id, &b);
    expect_offer(bob, file_id, "alice", "restart.bin", &b);
    download_check(bob, file_id, "restart.bin", &b, 0);

    if (sig == SIGTERM) {
        /* A complete file outlives a restart as well. */
        h_daemon_stop(second);
        release_kept(alice);
        release_kept(bob);
        h_daemon *third = START_DAEMON(NULL);
        bob = login(third, "bob");
        expect_listed(bob, file_id, "alice", "restart.bin", &b);
        download_check(bob, file_id, "restart.bin", &b, 0);
    }
}

static void test_upload_resume_after_sigterm(void **state)
{
    (void)state;
    upload_resume_across_restart(SIGTERM);
}

static void test_upload_resume_after_sigkill(void **state)
{
    (void)state;
    upload_resume_across_restart(SIGKILL);
}

/* ---- failures of an upload ------------------------------------------------------- */

/* The error a bad file_chunk gets (it has no id; the error names the
 * request type and the file). `expected` < 0: not checked. */
static cJSON *expect_chunk_error(sa_client *c, const char *code, const char *file_id,
                                 double expected)
{
    cJSON *err = expect_frame(c, "error", H_REPLY_MS);
    h_assert_str(err, "code", code);
    h_assert_str(err, "re", "file_chunk");
    h_get_str(err, "message");
    if (file_id)
        h_assert_str(err, "file_id", file_id);
    if (expected >= 0)
        assert_num(err, "expected", expected);
    return err;
}

static void test_checksum_mismatch_discards(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    const char *spool = spool_dir();
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");

    /* The bytes sent are not the ones announced. */
    blob sent = make_blob(DEFAULT_CHUNK + 10, 19);
    blob announced = make_blob(sent.len, 20);
    cJSON *put = put_ok(alice, "bad.bin", &announced, TO_BOB);
    const char *file_id = h_get_str(put, "file_id");
    send_range(alice, file_id, &sent, 0, sent.len, DEFAULT_CHUNK);
    file_error(alice, h_fmt("{\"type\":\"file_end\",\"file_id\":\"%s\"}", file_id),
               "checksum_mismatch", "file_end", file_id);
    expect_no_offer(bob, H_QUIET_MS);
    expect_unlisted(bob, file_id);
    expect_unlisted(alice, file_id);
    expect_no_such_file(bob, file_id);
    assert_num(put_ok(alice, "bad.bin", &announced, TO_BOB), "offset", 0);

    /* Fewer bytes than the size announced. */
    blob whole = make_blob(2 * DEFAULT_CHUNK, 21);
    put = put_ok(alice, "short.bin", &whole, TO_BOB);
    file_id = h_get_str(put, "file_id");
    send_range(alice, file_id, &whole, 0, DEFAULT_CHUNK, DEFAULT_CHUNK);
    file_error(alice, h_fmt("{\"type\":\"file_end\",\"file_id\":\"%s\"}", file_id),
               "checksum_mismatch", "file_end", file_id);
    expect_no_offer(bob, H_QUIET_MS);
    assert_num(put_ok(alice, "short.bin", &whole, TO_BOB), "offset", 0);

    long long kept = spool_bytes(spool);
    if (kept >= DEFAULT_CHUNK)
        h_fail("the spool still holds %lld bytes after both uploads were discarded", kept);
}

static void test_bad_offsets_store_nothing(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    blob b = make_blob(3 * DEFAULT_CHUNK, 22);
    blob junk = make_blob(DEFAULT_CHUNK + 1, 23);
    cJSON *put = put_ok(alice, "offsets.bin", &b, "");
    const char *file_id = h_get_str(put, "file_id");
    send_range(alice, file_id, &b, 0, DEFAULT_CHUNK, DEFAULT_CHUNK);

    send_chunk(alice, file_id, 2 * DEFAULT_CHUNK, junk.data, DEFAULT_CHUNK); /* a gap */
    expect_chunk_error(alice, "bad_offset", file_id, DEFAULT_CHUNK);
    send_chunk(alice, file_id, 0, junk.data, DEFAULT_CHUNK); /* over what is stored */
    expect_chunk_error(alice, "bad_offset", file_id, DEFAULT_CHUNK);
    send_chunk(alice, file_id, DEFAULT_CHUNK - 1, junk.data, 2); /* half over it */
    expect_chunk_error(alice, "bad_offset", file_id, DEFAULT_CHUNK);
    send_chunk(alice, file_id, (double)b.len, junk.data, 1); /* past the size */
    expect_chunk_error(alice, "bad_offset", file_id, DEFAULT_CHUNK);
    barrier(alice);
    assert_num(put_ok(alice, "offsets.bin", &b, ""), "offset", DEFAULT_CHUNK);

    /* A chunk at the right offset that would pass the declared size. */
    blob small = make_blob(100, 24);
    cJSON *small_put = put_ok(alice, "small.bin", &small, "");
    const char *small_id = h_get_str(small_put, "file_id");
    send_chunk(alice, small_id, 0, junk.data, 101);
    expect_chunk_error(alice, "bad_offset", small_id, 0);
    send_chunk(alice, small_id, 0, small.data, 100);
    send_chunk(alice, small_id, 100, junk.data, 1);
    expect_chunk_error(alice, "bad_offset", small_id, 100);
    end_ok(alice, small_id, &small);

    /* Nothing of the refused chunks was stored: the file completes intact. */
    send_range(alice, file_id, &b, DEFAULT_CHUNK, b.len, DEFAULT_CHUNK);
    end_ok(alice, file_id, &b);
    download_check(alice, file_id, "offsets.bin", &b, 0);
    download_check(alice, small_id, "small.bin", &small, 0);
}

static void test_bad_chunk_data(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    blob b = make_blob(2 * DEFAULT_CHUNK, 25);
    cJSON *put = put_ok(alice, "data.bin", &b, "");
    assert_num(put, "chunk_size", DEFAULT_CHUNK);
    const char *file_id = h_get_str(put, "file_id");

    static const char *const bad_data[] = {"\"***\"", "\"QUJD$A==\"", "\"QUJD\\u0000A==\"",
                                           "5", "null", "[\"QUJD\"]"};
    for (size_t i = 0; i < sizeof bad_data / sizeof *bad_data; i++) {
        const char *id = h_fmt("data%zu", i);
        raw_request_error(alice,
                          h_fmt("{\"type\":\"file_chunk\",\"id\":\"%s\",\"file_id\":\"%s\","
                                "\"offset\":0,\"data\":%s}",
                                id, file_id, bad_data[i]),
                          id, "bad_request", "file_chunk");
    }
    send_chunk(alice, file_id, 0, b.data, DEFAULT_CHUNK + 1); /* more than chunk_size */
    expect_chunk_error(alice, "bad_request", NULL, -1);
    h_send(alice, "{\"type\":\"file_chunk\",\"offset\":0,\"data\":\"QUJD\"}"); /* no file_id */
    expect_chunk_error(alice, "bad_request", NULL, -1);
    send_chunk(alice, "no-such-file-id", 0, b.data, 10);
    expect_chunk_error(alice, "no_such_file", "no-such-file-id", -1);

    /* Another user cannot write into or finish alice's upload. */
    send_chunk(bob, file_id, 0, b.data, 10);
    expect_chunk_error(bob, "no_such_file", file_id, -1);
    file_error(bob, h_fmt("{\"type\":\"file_end\",\"file_id\":\"%s\"}", file_id), "no_such_file",
               "file_end", file_id);
    file_error(alice, "{\"type\":\"file_end\",\"file_id\":\"no-such-file-id\"}", "no_such_file",
               "file_end", "no-such-file-id");

    barrier(alice);
    assert_num(put_ok(alice, "data.bin", &b, ""), "offset", 0);
    send_range(alice, file_id, &b, 0, b.len, DEFAULT_CHUNK);
    end_ok(alice, file_id, &b);
    download_check(alice, file_id, "data.bin", &b, 0);
}

static void test_chunk_size_setting(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON("file.chunk_size=1024");
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    blob b = make_blob(5000, 26);
    cJSON *put = put_ok(alice, "small-chunks.bin", &b, TO_BOB);
    assert_num(put, "chunk_size", 1024);
    const char *file_id = h_get_str(put, "file_id");
    send_chunk(alice, file_id, 0, b.data, 1025);
    expect_chunk_error(alice, "bad_request", NULL, -1);
    send_range(alice, file_id, &b, 0, b.len, 1024);
    end_ok(alice, file_id, &b);
    expect_offer(bob, file_id, "alice", "small-chunks.bin", &b);
    download_check(bob, file_id, "small-chunks.bin", &b, 0);
}

/* ---- file_put refusals -------------------------------------------------------------- */

static void test_bad_names(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    blob b = make_blob(10, 27);
    char *long_name = keep_mem(malloc(10001));
    memset(long_name, 'n', 10000);
    long_name[10000] = '\0';
    /* As JSON string contents. */
    const char *const bad[] = {"../x",      "a/b",       "a\\\\b",     "/abs",   "a\\u0001b",
                               "a\\nb",     "tab\\there", "a\\u001fb", "a\\u007fb", "esc\\u001b[31m",
                               "",          ".",         "..",         long_name,
                               h_fmt("%.256s", long_name)};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        request_error_re(alice, put_json(bad[i], &b, ""), "bad_name", "file_put");
    /* A \u0000 escape, which the test's own JSON parser would cut. */
    static const char *const with_nul[] = {"\\u0000", "a\\u0000b", "a.txt\\u0000/../x"};
    for (size_t i = 0; i < sizeof with_nul / sizeof *with_nul; i++) {
        const char *id = h_fmt("nul%zu", i);
        raw_request_error(alice,
                          h_fmt("{\"type\":\"file_put\",\"id\":\"%s\",\"name\":\"%s\","
                                "\"size\":%zu,\"sha256\":\"%s\"}",
                                id, with_nul[i], b.len, b.sha256),
                          id, "bad_name", "file_put");
    }
    /* What is allowed: 255 bytes, dots inside, spaces, UTF-8. */
    const char *const good[] = {h_fmt("%.255s", long_name), "..x", "a..b", "x.", "my file (1).txt",
                                "r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93.txt"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        blob g = make_blob(i + 1, 100 + i);
        const char *file_id = upload(alice, good[i], &g, "");
        download_check(alice, file_id, good[i], &g, 0);
    }
}

static void test_file_too_large(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON("file.max_size=1000");
    sa_client *alice = login(d, "alice");
    blob over = make_blob(1001, 28);
    request_error_re(alice, put_json("big.bin", &over, ""), "file_too_large", "file_put");
    blob at_limit = make_blob(1000, 29);
    const char *file_id = upload(alice, "limit.bin", &at_limit, "");
    download_check(alice, file_id, "limit.bin", &at_limit, 0);
}

static void test_quota(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON("file.quota=200000");
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    blob first = make_blob(150000, 30);
    cJSON *put = put_ok(alice, "first.bin", &first, ""); /* unfinished, yet it counts */
    const char *file_id = h_get_str(put, "file_id");
    blob second = make_blob(60000, 31);
    request_error_re(alice, put_json("second.bin", &second, ""), "quota_exceeded", "file_put");
    /* Resuming the unfinished upload does not count it twice. */
    h_assert_str(put_ok(alice, "first.bin", &first, ""), "file_id", file_id);
    /* The quota is per user. */
    put_ok(bob, "first.bin", &first, "");

    blob third = make_blob(40000, 32);
    upload(alice, "third.bin", &third, "");
    send_range(alice, file_id, &first, 0, first.len, DEFAULT_CHUNK);
    end_ok(alice, file_id, &first);
    /* Complete files count as well. */
    blob fourth = make_blob(20000, 33);
    request_error_re(alice, put_json("fourth.bin", &fourth, ""), "quota_exceeded", "file_put");
}

static void test_addressing_errors(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    h_request_ok(bob, "{\"type\":\"join\",\"room\":\"secret\"}");
    blob b = make_blob(10, 34);
    request_error_re(alice, put_json("x.bin", &b, ",\"to\":\"nobody\""), "no_such_user",
                     "file_put");
    request_error_re(alice, put_json("x.bin", &b, ",\"room\":\"secret\""), "not_member",
                     "file_put");
    request_error_re(alice, put_json("x.bin", &b, ",\"room\":\"nowhere\""), "not_member",
                     "file_put");
    expect_no_offer(bob, H_QUIET_MS);
}

static void test_bad_numbers(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    blob b = make_blob(100, 35);
    const char *file_id = upload(alice, "n.bin", &b, "");
    cJSON *put = put_ok(alice, "open.bin", &b, "");
    const char *open_id = h_get_str(put, "file_id");

    static const char *const bad[] = {"-1", "1.5", "1e400", "-1e400", "1e300", "\"10\"",
                                      "null", "true", "[1]", "{}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *id = h_fmt("size%zu", i);
        raw_request_error(alice,
                          h_fmt("{\"type\":\"file_put\",\"id\":\"%s\",\"name\":\"n%zu.bin\","
                                "\"size\":%s,\"sha256\":\"%s\"}",
                                id, i, bad[i], b.sha256),
                          id, "bad_request", "file_put");
        id = h_fmt("get%zu", i);
        raw_request_error(alice,
                          h_fmt("{\"type\":\"file_get\",\"id\":\"%s\",\"file_id\":\"%s\","
                                "\"offset\":%s}",
                                id, file_id, bad[i]),
                          id, "bad_request", "file_get");
        id = h_fmt("chunk%zu", i);
        raw_request_error(alice,
                          h_fmt("{\"type\":\"file_chunk\",\"id\":\"%s\",\"file_id\":\"%s\","
                                "\"offset\":%s,\"data\":\"QUJD\"}",
                                id, open_id, bad[i]),
                          id, "bad_request", "file_chunk");
    }
    /* No size at all, and no usable sha256. */
    request_error_re(alice,
                     h_fmt("{\"type\":\"file_put\",\"name\":\"n.bin\",\"sha256\":\"%s\"}",
                           b.sha256),
                     "bad_request", "file_put");
    static const char *const bad_sha[] = {"\"\"", "\"abc\"", "5",
                                          "\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\""};
    for (size_t i = 0; i < sizeof bad_sha / sizeof *bad_sha; i++)
        request_error_re(alice,
                         h_fmt("{\"type\":\"file_put\",\"name\":\"s.bin\",\"size\":1,"
                               "\"sha256\":%s}",
                               bad_sha[i]),
                         "bad_request", "file_put");
    /* Nothing was stored by the refused chunks. */
    barrier(alice);
    assert_num(put_ok(alice, "open.bin", &b, ""), "offset", 0);
}

static void test_get_errors(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    expect_no_such_file(alice, "no-such-file-id");
    request_error_re(alice, "{\"type\":\"file_get\",\"offset\":0}", "bad_request", "file_get");
    blob b = make_blob(10, 36);
    const char *file_id = upload(alice, "g.bin", &b, "");
    file_error(alice, h_fmt("{\"type\":\"file_get\",\"file_id\":\"%s\",\"offset\":11}", file_id),
               "bad_offset", "file_get", file_id);
    download_check(alice, file_id, "g.bin", &b, 0);
}

/* Requests the protocol leaves to the server's judgement get an error (of
 * any code) or an ok, each with its id, and the server stays well. */
static void test_odd_requests(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    login(d, "bob");
    h_request_ok(alice, "{\"type\":\"join\",\"room\":\"proj\"}");
    blob b = make_blob(100, 46);
    const char *file_id = upload(alice, "done.bin", &b, "");
    const char *const odd[] = {
        put_json("a.bin", &b, ",\"to\":5"),
        put_json("a.bin", &b, ",\"to\":\"\""),
        put_json("a.bin", &b, ",\"room\":[]"),
        put_json("a.bin", &b, ",\"room\":\"bad room!\""),
        put_json("a.bin", &b, ",\"to\":\"alice\""),
        put_json("a.bin", &b, ",\"to\":\"bob\",\"room\":\"proj\""),
        "{\"type\":\"file_put\",\"name\":5,\"size\":1,\"sha256\":\"x\"}",
        "{\"type\":\"file_put\"}",
        "{\"type\":\"file_end\"}",
        "{\"type\":\"file_end\",\"file_id\":7}",
        "{\"type\":\"file_get\",\"file_id\":[\"x\"],\"offset\":0}",
        h_fmt("{\"type\":\"file_end\",\"file_id\":\"%s\"}", file_id),
        h_fmt("{\"type\":\"file_chunk\",\"file_id\":\"%s\",\"offset\":100,\"data\":\"QQ==\"}",
              file_id),
        h_fmt("{\"type\":\"file_chunk\",\"file_id\":\"%s\",\"offset\":0,\"data\":\"QQ==\"}",
              file_id),
        "{\"type\":\"files\",\"extra\":[1,2,3]}",
    };
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        cJSON *reply = h_request(alice, odd[i]);
        if (!has_type(reply, "ok") && !has_type(reply, "error"))
            h_fail("request %s: got %s", odd[i], h_json(reply));
    }
    download_check(alice, file_id, "done.bin", &b, 0);
    blob after = make_blob(DEFAULT_CHUNK + 1, 47);
    const char *later = upload(alice, "after.bin", &after, "");
    download_check(alice, later, "after.bin", &after, 0);
}

/* A file_id is the server's name, never a path: ids that try to leave
 * the spool folder name no file, and nothing outside it is read or
 * written. */
static void test_file_id_is_not_a_path(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    blob b = make_blob(100, 48);
    upload(alice, "real.bin", &b, "");
    /* Files beside and above the spool, under names a careless server
     * could make from a file_id. */
    static const char *const planted[] = {"outside", "outside.data", "outside.part",
                                          "outside.meta", "outside.json"};
    for (size_t i = 0; i < sizeof planted / sizeof *planted; i++)
        h_write_file(planted[i], "not the server's");
    static const char *const ids[] = {"../outside", "../outside.data", "..", ".", "",
                                      "/etc/passwd", "../../../../../../etc/passwd",
                                      "spool/../outside", "%2e%2e/outside"};
    for (const char *const *id = ids; id < ids + sizeof ids / sizeof *ids; id++) {
        expect_no_such_file(alice, *id);
        send_chunk(alice, *id, 0, b.data, 10);
        expect_chunk_error(alice, "no_such_file", *id, -1);
        const char *end = h_fmt("{\"type\":\"file_end\",\"file_id\":\"%s\"}", *id);
        file_error(alice, end, "no_such_file", "file_end", *id);
    }
    for (size_t i = 0; i < sizeof planted / sizeof *planted; i++) {
        const char *path = h_fmt("%s/%s", h_tempdir(), planted[i]);
        FILE *f = fopen(path, "r");
        char text[64] = "";
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f)
            fclose(f);
        text[n] = '\0';
        if (strcmp(text, "not the server's") != 0)
            h_fail("%s was changed: \"%s\"", path, text);
    }
}

/* ---- more than one download, and interrupted downloads ------------------------------ */

/* One download among several running on a connection. */
typedef struct pending_download {
    const char *file_id;
    const blob *b;
    size_t at;
    int replied, ended;
} pending_download;

static pending_download *pending_for(pending_download *p, size_t n, const cJSON *frame)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(frame, "file_id");
    for (size_t i = 0; cJSON_IsString(id) && i < n; i++)
        if (strcmp(p[i].file_id, id->valuestring) == 0)
            return &p[i];
    h_fail("a frame about no file being downloaded: %s", h_json(frame));
}

/* Two file_get requests sent at once: both replies, every chunk of both
 * (in whatever order the server interleaves them), both file_ends. */
/* A spool the server makes is its user's alone (0700), and so is every
 * file in it (0600), whatever the umask. */
static void test_spool_is_private(void **state)
{
    (void)state;
    const char *fresh = h_fmt("%s/fresh-spool", h_tempdir());
    mode_t umask_before = umask(0);
    h_daemon *d = START_DAEMON(h_fmt("file.spool_dir=%s", fresh));
    umask(umask_before);
    sa_client *alice = login(d, "alice");
    blob done = make_blob(1000, 60), half = make_blob(1000, 61);
    upload(alice, "done.bin", &done, "");
    const char *file_id = h_get_str(put_ok(alice, "half.bin", &half, ""), "file_id");
    send_range(alice, file_id, &half, 0, 500, DEFAULT_CHUNK);
    barrier(alice);

    struct stat st;
    if (stat(fresh, &st) != 0)
        h_fail("the spool %s was not made: %s", fresh, strerror(errno));
    if ((st.st_mode & 07777) != 0700)
        h_fail("the spool %s was made with mode %o, not 0700", fresh, st.st_mode & 07777);
    DIR *dir = opendir(fresh);
    if (!dir)
        h_fail("opendir %s: %s", fresh, strerror(errno));
    int files = 0;
    const char *open_to_others = NULL;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        files++;
        if (lstat(h_fmt("%s/%s", fresh, e->d_name), &st) == 0 && (st.st_mode & 077))
            open_to_others = h_fmt("%s (mode %o)", e->d_name, st.st_mode & 07777);
    }
    closedir(dir);
    if (open_to_others)
        h_fail("spool file %s is open to others", open_to_others);
    if (files < 3)
        h_fail("expected the files of two uploads in the spool, found %d", files);
}

static void test_two_downloads_at_once(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    blob a = make_blob(3 * DEFAULT_CHUNK + 1, 40);
    blob b = make_blob(2 * DEFAULT_CHUNK, 41);
    pending_download p[2] = {{.file_id = upload(alice, "a.bin", &a, ""), .b = &a},
                             {.file_id = upload(alice, "b.bin", &b, ""), .b = &b}};
    for (int i = 0; i < 2; i++)
        h_send(alice, h_fmt("{\"type\":\"file_get\",\"id\":\"get%d\",\"file_id\":\"%s\","
                            "\"offset\":0}",
                            i, p[i].file_id));
    while (!p[0].ended || !p[1].ended) {
        cJSON *frame = h_keep(next_frame(alice, TRANSFER_MS, "the two downloads"));
        pending_download *at = pending_for(p, 2, frame);
        if (has_type(frame, "ok")) {
            h_assert_str(frame, "id", at == &p[0] ? "get0" : "get1");
            assert_num(frame, "size", (double)at->b->len);
            at->replied = 1;
        } else if (has_type(frame, "file_chunk")) {
            if (!at->replied)
                h_fail("a chunk before the ok of its file_get: %s", h_json(frame));
            assert_num(frame, "offset", (double)at->at);
            unsigned char *bytes = NULL;
            long n = decode_base64(h_get_str(frame, "data"), &bytes);
            if (n < 0)
                h_fail("not base64: %s", h_json(frame));
            keep_mem(bytes);
            if (at->at + (size_t)n > at->b->len || memcmp(at->b->data + at->at, bytes, (size_t)n))
                h_fail("wrong bytes at %zu of %s", at->at, at->file_id);
            at->at += (size_t)n;
            release_kept(bytes);
        } else if (has_type(frame, "file_end")) {
            if (at->at != at->b->len)
                h_fail("file_end of %s after %zu of %zu bytes", at->file_id, at->at, at->b->len);
            h_assert_str(frame, "sha256", at->b->sha256);
            at->ended = 1;
        } else {
            h_fail("unexpected during two downloads: %s", h_json(frame));
        }
    }
}

/* A client that hangs up in the middle of a download, comes back and asks
 * for the rest from the bytes it has. */
/* At most 64 downloads wait on one connection; more file_gets get
 * rate_limited, and the queue goes away with the connection. */
static void test_downloads_waiting_limit(void **state)
{
    (void)state;
    enum { GETS = 70, WAITING_MAX = 64 };
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    /* Far more than the plugin's 1 MiB of queued output and the socket
     * buffers (a few MiB) hold while alice reads nothing, so the first
     * download is still running when the last file_get is handled. */
    blob big = make_blob((size_t)16 << 20, 70);
    const char *file_id = upload(alice, "big.bin", &big, "");
    int small_buffer = 65536;
    if (setsockopt(sa_client_fd(alice), SOL_SOCKET, SO_RCVBUF, &small_buffer,
                   sizeof small_buffer) != 0)
        h_fail("SO_RCVBUF: %s", strerror(errno));
    for (int i = 0; i < GETS; i++)
        h_send(alice, h_fmt("{\"type\":\"file_get\",\"id\":%d,\"file_id\":\"%s\"}", i, file_id));
    /* Reading at once would let the thread-per-client engine finish the
     * first download before it handles the next file_get (its writer keeps
     * up, so the plugin never waits): give the server time to take them
     * all while nothing drains. */
    h_sleep_ms(500);
    /* The stream is in the order the server acted, so the downloads it had
     * waiting at reply k are the oks before it less the file_ends before
     * it: whatever the timing, that decides ok or rate_limited. */
    int waiting = 0, limited = 0;
    for (int replies = 0; replies < GETS;) {
        cJSON *frame = next_frame(alice, TRANSFER_MS, "the file_get replies");
        int chunk = has_type(frame, "file_chunk"), end = has_type(frame, "file_end");
        if (chunk || end) {
            waiting -= end;
            cJSON_Delete(frame);
            continue;
        }
        h_keep(frame);
        if (h_get_num(frame, "id") != replies)
            h_fail("reply %d out of order: %s", replies, h_json(frame));
        if (waiting < WAITING_MAX) {
            h_assert_str(frame, "type", "ok");
            waiting++;
        } else {
            h_assert_str(frame, "code", "rate_limited");
            h_assert_str(frame, "file_id", file_id);
            limited++;
        }
        replies++;
    }
    if (!limited)
        h_fail("%d file_gets, none rate_limited: the downloads ended too soon", GETS);
    h_client_close(alice);
    sa_client *bob = login(d, "bob");
    h_request_ok(bob, "{\"type\":\"files\"}");
}

static void test_download_interrupted_and_resumed(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    blob b = make_blob(64 * DEFAULT_CHUNK + 17, 42);
    const char *file_id = upload(alice, "long.bin", &b, TO_BOB);
    expect_offer(bob, file_id, "alice", "long.bin", &b);
    h_request_ok(bob, h_fmt("{\"type\":\"file_get\",\"file_id\":\"%s\",\"offset\":0}", file_id));
    size_t got = 0;
    for (int i = 0; i < 5; i++) {
        cJSON *chunk = expect_frame(bob, "file_chunk", H_REPLY_MS);
        assert_num(chunk, "offset", (double)got);
        unsigned char *bytes = NULL;
        long n = decode_base64(h_get_str(chunk, "data"), &bytes);
        keep_mem(bytes);
        if (n <= 0 || memcmp(b.data + got, bytes, (size_t)n) != 0)
            h_fail("wrong bytes at %zu", got);
        got += (size_t)n;
    }
    release_kept(bob);
    bob = login(d, "bob");
    download_check(bob, file_id, "long.bin", &b, got);
    /* The server is none the worse for it. */
    download_check(bob, file_id, "long.bin", &b, 0);
}

/* ---- names and sizes ------------------------------------------------------------------ */

/* User names are compared case-insensitively (PROTOCOL.md §3), so they
 * are as addressees and senders too. */
static void test_names_case_insensitive(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON(NULL);
    sa_client *alice = login(d, "alice");
    sa_client *bob = login(d, "bob");
    blob b = make_blob(DEFAULT_CHUNK + 2, 43);
    const char *file_id = upload(alice, "case.bin", &b, ",\"to\":\"BOB\"");
    expect_offer(bob, file_id, "alice", "case.bin", &b);
    expect_listed(bob, file_id, "alice", "case.bin", &b);
    download_check(bob, file_id, "case.bin", &b, 0);

    blob half = make_blob(2 * DEFAULT_CHUNK, 44);
    cJSON *put = put_ok(alice, "half.bin", &half, "");
    const char *half_id = h_get_str(put, "file_id");
    send_range(alice, half_id, &half, 0, DEFAULT_CHUNK, DEFAULT_CHUNK);
    barrier(alice);
    release_kept(alice);
    sa_client *again = login(d, "ALICE");
    cJSON *resumed = put_ok(again, "half.bin", &half, "");
    h_assert_str(resumed, "file_id", half_id);
    assert_num(resumed, "offset", DEFAULT_CHUNK);
    download_check(again, file_id, "case.bin", &b, 0);
}

/* Sizes past 2^31 and 2^32 are numbers like any other (PROTOCOL.md §2:
 * files larger than 2 GiB must work). */
static void test_large_declared_sizes(void **state)
{
    (void)state;
    h_daemon *d = START_DAEMON("file.max_size=9007199254740992");
    sa_client *alice = login(d, "alice");
    blob b = make_blob(1, 45);
    blob huge = b;
    huge.len = (size_t)3 << 30; /* declared only; no byte of it is sent */
    cJSON *put = put_ok(alice, "huge.bin", &huge, "");
    assert_num(put, "offset", 0);
    const char *huge_id = h_get_str(put, "file_id");
    /* A chunk far ahead, at offsets an int or a double's cast would wrap. */
    send_chunk(alice, huge_id, 2147483648.0, b.data, 1);
    expect_chunk_error(alice, "bad_offset", huge_id, 0);
    send_chunk(alice, huge_id, 4294967296.0 + 1, b.data, 1);
    expect_chunk_error(alice, "bad_offset", huge_id, 0);
    barrier(alice);
    h_assert_str(put_ok(alice, "huge.bin", &huge, ""), "file_id", huge_id);

    huge.len = (size_t)1 << 53; /* the largest size the protocol allows */
    put_ok(alice, "limit.bin", &huge, "");
    raw_request_error(alice,
                      h_fmt("{\"type\":\"file_put\",\"id\":\"over\",\"name\":\"over.bin\","
                            "\"size\":9007199254740994,\"sha256\":\"%s\"}",
                            b.sha256),
                      "over", "bad_request", "file_put");

    const char *small_id = upload(alice, "one.bin", &b, "");
    file_error(alice,
               h_fmt("{\"type\":\"file_get\",\"file_id\":\"%s\",\"offset\":4294967297}",
                     small_id),
               "bad_offset", "file_get", small_id);
}

/* ---- memory ------------------------------------------------------------------------- */

#define BIG_SIZE ((size_t)200 << 20)
#define RSS_MARGIN_KIB (64L * 1024)

typedef struct rss_watch {
    pid_t pid;
    long baseline, peak; /* KiB */
    size_t chunks;       /* chunks seen; RSS is read every RSS_EVERY of them */
} rss_watch;

#define RSS_EVERY 32

static void rss_sample(rss_watch *w)
{
    long kib = rss_kib(w->pid);
    if (kib > w->peak)
        w->peak = kib;
}

static void release_md(void *ctx) { EVP_MD_CTX_free(ctx); }

typedef struct stream_hash {
    EVP_MD_CTX *ctx;
    rss_watch *watch;
} stream_hash;

static void hash_downloaded(void *arg, size_t offset, const unsigned char *bytes, size_t len)
{
    (void)offset;
    stream_hash *h = arg;
    if (EVP_DigestUpdate(h->ctx, bytes, len) != 1)
        h_fail("EVP_DigestUpdate failed");
    if (++h->watch->chunks % RSS_EVERY == 0)
        rss_sample(h->watch);
}

/* The k-th chunk of the big file. */
static void big_chunk(unsigned char *out, size_t k, size_t *len)
{
    size_t at = k * DEFAULT_CHUNK;
    *len = BIG_SIZE - at < DEFAULT_CHUNK ? BIG_SIZE - at : DEFAULT_CHUNK;
    fill_pseudo_random(out, *len, 1000 + k);
}

/* Starts the daemon with AddressSanitizer's quarantine of freed memory
 * made small: by default it holds up to 256 MiB of freed blocks, which
 * would count against the server here though the server freed them. */
static h_daemon *start_daemon_small_quarantine(void)
{
#ifdef __SANITIZE_ADDRESS__
    const char *old = getenv("ASAN_OPTIONS");
    char *saved = old ? strdup(old) : NULL;
    if (old && !saved)
        h_fail("out of memory");
    if (saved)
        keep_mem(saved);
    if (setenv("ASAN_OPTIONS",
               h_fmt("%s%squarantine_size_mb=8", saved ? saved : "", saved ? ":" : ""), 1) != 0)
        h_fail("setenv: %s", strerror(errno));
    h_daemon *d = START_DAEMON(NULL);
    if (saved ? setenv("ASAN_OPTIONS", saved, 1) : unsetenv("ASAN_OPTIONS"))
        h_fail("cannot restore ASAN_OPTIONS: %s", strerror(errno));
    return d;
#else
    return START_DAEMON(NULL);
#endif
}

/* A 200 MiB upload, then its download by a client that first reads
 * nothing for a while and then drains it: the server's resident memory
 * stays within RSS_MARGIN_KIB of what it was before. */
static void test_large_download_bounded_memory(void **state)
{
    (void)state;
    h_daemon *d = start_daemon_small_quarantine();
    rss_watch watch = {.pid = child_pid_with_arg(spool_override())};
    if (watch.pid < 0)
        h_fail("cannot find the daemon's pid");
    sa_client *alice = login(d, "alice");
    watch.baseline = watch.peak = rss_kib(watch.pid);
    int64_t started = h_now_ms();

    unsigned char *chunk = keep_mem(malloc(DEFAULT_CHUNK));
    EVP_MD_CTX *ctx = keep_obj(EVP_MD_CTX_new(), release_md);
    size_t n_chunks = (BIG_SIZE + DEFAULT_CHUNK - 1) / DEFAULT_CHUNK;
    unsigned char md[32];
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        h_fail("EVP_DigestInit_ex failed");
    for (size_t k = 0; k < n_chunks; k++) {
        size_t len;
        big_chunk(chunk, k, &len);
        if (EVP_DigestUpdate(ctx, chunk, len) != 1)
            h_fail("EVP_DigestUpdate failed");
    }
    if (EVP_DigestFinal_ex(ctx, md, NULL) != 1)
        h_fail("EVP_DigestFinal_ex failed");
    blob big = {.len = BIG_SIZE};
    hex_digest(md, big.sha256);

    cJSON *put = put_ok(alice, "big.bin", &big, "");
    const char *file_id = h_get_str(put, "file_id");
    for (size_t k = 0; k < n_chunks; k++) {
        size_t len;
        big_chunk(chunk, k, &len);
        send_chunk(alice, file_id, (double)k * DEFAULT_CHUNK, chunk, len);
        if (k % RSS_EVERY == 0)
            rss_sample(&watch);
    }
    /* Its reply waits for the chunks still in the socket buffers, which
     * a slow (sanitized, loaded) server takes a while to work through. */
    cJSON *end_req = h_keep(cJSON_CreateObject());
    if (!cJSON_AddStringToObject(end_req, "type", "file_end") ||
        !cJSON_AddStringToObject(end_req, "file_id", file_id))
        h_fail("out of memory");
    cJSON *end = NULL;
    int rc = sa_client_request(alice, end_req, &end, TRANSFER_MS);
    if (rc != SA_CLIENT_OK)
        h_fail("file_end of the 200 MiB upload: %s", recv_status_text(alice, rc));
    h_keep(end);
    if (!has_type(end, "ok"))
        h_fail("file_end of the 200 MiB upload: %s", h_json(end));
    long after_upload = watch.peak;
    int64_t uploaded = h_now_ms();

    cJSON *reply = h_request_ok(
        alice, h_fmt("{\"type\":\"file_get\",\"file_id\":\"%s\",\"offset\":0}", file_id));
    assert_num(reply, "size", (double)BIG_SIZE);
    /* Not reading: a server that does not pace itself fills its memory (or
     * drops this client for sendq_exceeded) now. */
    for (int i = 0; i < 10; i++) {
        h_sleep_ms(200);
        rss_sample(&watch);
    }
    stream_hash hash = {.ctx = ctx, .watch = &watch};
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        h_fail("EVP_DigestInit_ex failed");
    receive_file(alice, file_id, BIG_SIZE, big.sha256, 0, hash_downloaded, &hash, 4 * TRANSFER_MS);
    if (EVP_DigestFinal_ex(ctx, md, NULL) != 1)
        h_fail("EVP_DigestFinal_ex failed");
    char got[65];
    hex_digest(md, got);
    if (strcmp(got, big.sha256) != 0)
        h_fail("the downloaded 200 MiB hash to %s, expected %s", got, big.sha256);
    rss_sample(&watch);
    fprintf(stderr,
            "[%s] daemon VmRSS: baseline %ld KiB, peak %ld KiB during the upload, %ld KiB "
            "overall; upload %.1f s, download %.1f s\n",
            h_engine, watch.baseline, after_upload, watch.peak,
            (double)(uploaded - started) / 1000, (double)(h_now_ms() - uploaded) / 1000);
    if (watch.peak - watch.baseline > RSS_MARGIN_KIB)
        h_fail("the daemon's VmRSS grew from %ld KiB to %ld KiB (more than %ld KiB) while "
               "moving a 200 MiB file",
               watch.baseline, watch.peak, RSS_MARGIN_KIB);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_files");
    const struct CMUnitTest tests[] = {
        FILE_TEST(test_roundtrip_sizes),
        FILE_TEST(test_room_members_get_offers),
        FILE_TEST(test_no_addressee_only_sender),
        FILE_TEST(test_third_user_sees_nothing),
        FILE_TEST(test_files_lists_complete_files_only),
        FILE_TEST(test_download_resume_from_offset),
        FILE_TEST(test_upload_resume_after_disconnect),
        FILE_TEST(test_upload_resume_after_sigterm),
        FILE_TEST(test_upload_resume_after_sigkill),
        FILE_TEST(test_checksum_mismatch_discards),
        FILE_TEST(test_bad_offsets_store_nothing),
        FILE_TEST(test_bad_chunk_data),
        FILE_TEST(test_chunk_size_setting),
        FILE_TEST(test_bad_names),
        FILE_TEST(test_file_too_large),
        FILE_TEST(test_quota),
        FILE_TEST(test_addressing_errors),
        FILE_TEST(test_bad_numbers),
        FILE_TEST(test_get_errors),
        FILE_TEST(test_odd_requests),
        FILE_TEST(test_file_id_is_not_a_path),
        FILE_TEST(test_spool_is_private),
        FILE_TEST(test_two_downloads_at_once),
        FILE_TEST(test_downloads_waiting_limit),
        FILE_TEST(test_download_interrupted_and_resumed),
        FILE_TEST(test_names_case_insensitive),
        FILE_TEST(test_large_declared_sizes),
        FILE_TEST(test_large_download_bounded_memory),
    };
    char group[64];
    snprintf(group, sizeof group, "files/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
