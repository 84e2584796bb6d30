/*
 * A hostile SyncAsync server for sa-recv's tests (test_file_tools.c): it
 * offers files under names that try to escape the download folder or
 * reach the terminal, and can send bytes that do not match their SHA-256.
 *
 *   sa_fake_file_server [--corrupt] (FILE_ID NAME PATH)...
 *
 * Serves each PATH's bytes as file FILE_ID called NAME. Listens on
 * 127.0.0.1 (a free port), prints "listening on 127.0.0.1:PORT" on stdout,
 * accepts ONE client and answers hello, ping, files and file_get (with
 * --corrupt, the first byte of every download is changed, while the
 * announced SHA-256 stays that of the real bytes). Exits 0 when the client
 * hangs up, 1 on any failure or after IDLE_MS without a client frame, 2 on
 * bad usage.
 *
 * Every test child must end by itself: every wait is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#define IDLE_MS 30000
#define MAX_FRAME (1u << 20)
#define CHUNK 65536

typedef struct fake_file {
    const char *file_id, *name; /* from argv */
    unsigned char *data;        /* owned; freed at exit */
    size_t size;
    char sha256[65];
} fake_file;

static int corrupt;
static fake_file *files;
static size_t n_files;

static int read_whole_file(const char *path, unsigned char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fake server: %s: %s\n", path, strerror(errno));
        return -1;
    }
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            unsigned char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return -1;
    }
    *data = buf;
    *size = len;
    return 0;
}

static int sha256_hex(const unsigned char *data, size_t len, char out[65])
{
    unsigned char md[32];
    if (EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL) != 1)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* ---- frames -------------------------------------------------------------------- */

/* Waits up to IDLE_MS for fd to become readable; returns 0, or -1. */
static int wait_readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n;
    while ((n = poll(&pfd, 1, IDLE_MS)) < 0 && errno == EINTR)
        ;
    return n == 1 ? 0 : -1;
}

/* Reads exactly len bytes. Returns 1, 0 at a clean EOF before the first
 * byte, -1 on error, timeout or EOF in the middle. */
static int read_exact(int fd, unsigned char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        if (wait_readable(fd) != 0)
            return -1;
        ssize_t n = read(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 && done == 0)
            return 0;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 1;
}

static int write_all(int fd, const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Sends msg as one frame and deletes it. Returns 0 or -1. */
static int send_frame(int fd, cJSON *msg)
{
    char *text = msg ? cJSON_PrintUnformatted(msg) : NULL;
    cJSON_Delete(msg);
    if (!text)
        return -1;
    size_t len = strlen(text);
    unsigned char header[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                               (unsigned char)(len >> 8), (unsigned char)len};
    int rc = write_all(fd, header, 4) == 0 && write_all(fd, text, len) == 0 ? 0 : -1;
    free(text);
    return rc;
}

/* A reply to `req` of the given type ("ok" or "error"), with re and id. */
static cJSON *reply_to(const cJSON *req, const char *type)
{
    cJSON *reply = cJSON_CreateObject();
    const cJSON *req_type = cJSON_GetObjectItemCaseSensitive(req, "type");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    if (!reply || !cJSON_AddStringToObject(reply, "type", type) ||
        (cJSON_IsString(req_type) && !cJSON_AddStringToObject(reply, "re", req_type->valuestring)) ||
        (id && !cJSON_AddItemToObject(reply, "id", cJSON_Duplicate(id, 1)))) {
        cJSON_Delete(reply);
        return NULL;
    }
    return reply;
}

static int send_error(int fd, const cJSON *req, const char *code)
{
    cJSON *err = reply_to(req, "error");
    if (!err || !cJSON_AddStringToObject(err, "code", code) ||
        !cJSON_AddStringToObject(err, "message", code)) {
        cJSON_Delete(err);
        return -1;
    }
    return send_frame(fd, err);
}

/* ---- requests -------------------------------------------------------------------- */

static int answer_hello(int fd, const cJSON *req)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
    cJSON *ok = reply_to(req, "ok");
    cJSON *heartbeat = cJSON_CreateObject();
    cJSON *features = cJSON_CreateArray();
    if (!ok || !heartbeat || !features ||
        !cJSON_AddStringToObject(ok, "name", cJSON_IsString(name) ? name->valuestring : "") ||
        !cJSON_AddStringToObject(ok, "session", "fake-session") ||
        !cJSON_AddStringToObject(ok, "server", "sa-fake-file-server/1.0") ||
        !cJSON_AddStringToObject(ok, "engine", "async") ||
        !cJSON_AddNumberToObject(ok, "proto", 1) ||
        !cJSON_AddNumberToObject(ok, "max_frame", MAX_FRAME) ||
        !cJSON_AddNumberToObject(heartbeat, "interval", 20) ||
        !cJSON_AddNumberToObject(heartbeat, "timeout", 40) ||
        !cJSON_AddItemToArray(features, cJSON_CreateString("file"))) {
        cJSON_Delete(ok);
        cJSON_Delete(heartbeat);
        cJSON_Delete(features);
        return -1;
    }
    cJSON_AddItemToObject(ok, "heartbeat", heartbeat);
    cJSON_AddItemToObject(ok, "features", features);
    return send_frame(fd, ok);
}

static int add_file_fields(cJSON *obj, const fake_file *f)
{
    return cJSON_AddStringToObject(obj, "file_id", f->file_id) &&
           cJSON_AddStringToObject(obj, "name", f->name) &&
           cJSON_AddNumberToObject(obj, "size", (double)f->size) &&
           cJSON_AddStringToObject(obj, "sha256", f->sha256);
}

static int answer_files(int fd, const cJSON *req)
{
    cJSON *ok = reply_to(req, "ok");
    cJSON *list = ok ? cJSON_AddArrayToObject(ok, "files") : NULL;
    if (!list) {
        cJSON_Delete(ok);
        return -1;
    }
    for (size_t i = 0; i < n_files; i++) {
        cJSON *entry = cJSON_CreateObject();
        if (!entry || !cJSON_AddItemToArray(list, entry) || !add_file_fields(entry, &files[i]) ||
            !cJSON_AddStringToObject(entry, "from", "mallory")) {
            cJSON_Delete(ok);
            return -1;
        }
    }
    return send_frame(fd, ok);
}

static int send_chunk(int fd, const fake_file *f, size_t at, size_t len)
{
    unsigned char *bytes = malloc(len ? len : 1);
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    cJSON *chunk = cJSON_CreateObject();
    int ok = bytes && b64 && chunk;
    if (ok) {
        memcpy(bytes, f->data + at, len);
        if (corrupt && at == 0 && len > 0)
            bytes[0] ^= 0xff;
        EVP_EncodeBlock((unsigned char *)b64, bytes, (int)len);
        ok = cJSON_AddStringToObject(chunk, "type", "file_chunk") &&
             cJSON_AddStringToObject(chunk, "file_id", f->file_id) &&
             cJSON_AddNumberToObject(chunk, "offset", (double)at) &&
             cJSON_AddStringToObject(chunk, "data", b64);
    }
    free(bytes);
    free(b64);
    if (!ok) {
        cJSON_Delete(chunk);
        return -1;
    }
    return send_frame(fd, chunk);
}

static int answer_file_get(int fd, const cJSON *req)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "file_id");
    const cJSON *offset_item = cJSON_GetObjectItemCaseSensitive(req, "offset");
    const fake_file *f = NULL;
    for (size_t i = 0; cJSON_IsString(id) && i < n_files; i++)
        if (strcmp(files[i].file_id, id->valuestring) == 0)
            f = &files[i];
    if (!f)
        return send_error(fd, req, "no_such_file");
    double offset = cJSON_IsNumber(offset_item) ? offset_item->valuedouble : 0;
    if (offset < 0 || offset > (double)f->size || offset != (double)(size_t)offset)
        return send_error(fd, req, "bad_offset");
    cJSON *ok = reply_to(req, "ok");
    if (!ok || !add_file_fields(ok, f) || !cJSON_AddNumberToObject(ok, "offset", offset)) {
        cJSON_Delete(ok);
        return -1;
    }
    if (send_frame(fd, ok) != 0)
        return -1;
    for (size_t at = (size_t)offset; at < f->size; at += CHUNK)
        if (send_chunk(fd, f, at, f->size - at < CHUNK ? f->size - at : CHUNK) != 0)
            return -1;
    cJSON *end = cJSON_CreateObject();
    if (!end || !cJSON_AddStringToObject(end, "type", "file_end") ||
        !cJSON_AddStringToObject(end, "file_id", f->file_id) ||
        !cJSON_AddNumberToObject(end, "size", (double)f->size) ||
        !cJSON_AddStringToObject(end, "sha256", f->sha256)) {
        cJSON_Delete(end);
        return -1;
    }
    return send_frame(fd, end);
}

static int answer_ping(int fd, const cJSON *req)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(req, "ts");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    cJSON *pong = cJSON_CreateObject();
    if (!pong || !cJSON_AddStringToObject(pong, "type", "pong") ||
        (ts && !cJSON_AddItemToObject(pong, "ts", cJSON_Duplicate(ts, 1))) ||
        (id && !cJSON_AddItemToObject(pong, "id", cJSON_Duplicate(id, 1)))) {
        cJSON_Delete(pong);
        return -1;
    }
    return send_frame(fd, pong);
}

/* Answers one request. Returns 0 to go on, 1 when the client said bye,
 * -1 on failure. */
static int answer(int fd, const cJSON *req)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(req, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    if (strcmp(t, "hello") == 0)
        return answer_hello(fd, req);
    if (strcmp(t, "ping") == 0)
        return answer_ping(fd, req);
    if (strcmp(t, "pong") == 0)
        return 0;
    if (strcmp(t, "files") == 0)
        return answer_files(fd, req);
    if (strcmp(t, "file_get") == 0)
        return answer_file_get(fd, req);
    if (strcmp(t, "bye") == 0)
        return 1;
    return send_error(fd, req, "unknown_type");
}

/* Serves the client until it hangs up (0) or something fails (-1). */
static int serve(int fd)
{
    for (;;) {
        unsigned char header[4];
        int got = read_exact(fd, header, 4);
        if (got == 0)
            return 0;
        if (got < 0)
            return -1;
        uint32_t len = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 |
                       (uint32_t)header[2] << 8 | header[3];
        if (len == 0 || len > MAX_FRAME)
            return -1;
        char *payload = malloc(len);
        if (!payload)
            return -1;
        if (read_exact(fd, (unsigned char *)payload, len) != 1) {
            free(payload);
            return -1;
        }
        cJSON *req = cJSON_ParseWithLength(payload, len);
        free(payload);
        if (!req)
            return -1;
        int rc = answer(fd, req);
        cJSON_Delete(req);
        if (rc != 0)
            return rc > 0 ? 0 : -1;
    }
}

static int listen_loopback(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        fprintf(stderr, "fake server: cannot listen: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (printf("listening on 127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port)) < 0 ||
        fflush(stdout) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void free_files(void)
{
    for (size_t i = 0; i < n_files; i++)
        free(files[i].data);
    free(files);
}

int main(int argc, char **argv)
{
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--corrupt") == 0) {
        corrupt = 1;
        first = 2;
    }
    if (argc - first < 3 || (argc - first) % 3 != 0) {
        fprintf(stderr, "usage: %s [--corrupt] (FILE_ID NAME PATH)...\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    n_files = (size_t)(argc - first) / 3;
    files = calloc(n_files, sizeof *files);
    if (!files)
        return 1;
    for (size_t i = 0; i < n_files; i++) {
        fake_file *f = &files[i];
        f->file_id = argv[first + 3 * (int)i];
        f->name = argv[first + 3 * (int)i + 1];
        if (read_whole_file(argv[first + 3 * (int)i + 2], &f->data, &f->size) != 0 ||
            sha256_hex(f->data, f->size, f->sha256) != 0) {
            free_files();
            return 1;
        }
    }
    int status = 1;
    int listener = listen_loopback();
    if (listener >= 0 && wait_readable(listener) == 0) {
        int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (client >= 0) {
            status = serve(client) == 0 ? 0 : 1;
            close(client);
        }
    }
    if (listener >= 0)
        close(listener);
    free_files();
    return status;
}
