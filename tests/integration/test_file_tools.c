/* sa-send, sa-recv and sa-client's file commands (INTERFACE.md), run as
 * processes in both client modes against the engine named by argv[1], and
 * sa-recv against a hostile server (fake_server.c); the tools retrying
 * through resets (sa-chaos, chaos_proxy.h) and through a server killed and
 * restarted mid-upload. */
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
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "chaos_proxy.h"
#include "harness.h"

#ifndef SA_TEST_SA_SEND
#error "SA_TEST_SA_SEND (path of sa-send) must be defined by the build"
#endif
#ifndef SA_TEST_SA_RECV
#error "SA_TEST_SA_RECV (path of sa-recv) must be defined by the build"
#endif
#ifndef SA_TEST_SA_CLIENT
#error "SA_TEST_SA_CLIENT (path of sa-client) must be defined by the build"
#endif
#ifndef SA_TEST_FAKE_SERVER
#error "SA_TEST_FAKE_SERVER (path of sa_fake_file_server) must be defined by the build"
#endif

#define PLUGINS_ALL "server.plugins=chat rooms presence file"
/* A tool moving small files ends within this. */
#define TOOL_MS 20000
/* The 50 MiB transfers, generous for AddressSanitizer builds. */
#define BIG_MS 120000
#define BIG_SIZE ((size_t)50 << 20)
/* A transfer is interrupted once this much of it has been written. */
#define INTERRUPT_AT ((long long)4 << 20)

/* ---- paths and files --------------------------------------------------------- */

static const char *make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        h_fail("mkdir %s: %s", path, strerror(errno));
    return path;
}

/* A folder inside the test's temporary folder. */
static const char *temp_subdir(const char *name)
{
    return make_dir(h_fmt("%s/%s", h_tempdir(), name));
}

/* Creates or truncates path and writes len bytes. Returns 0, or -1 with
 * errno set. */
static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    const unsigned char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            close(fd);
            errno = err;
            return -1;
        }
        done += (size_t)n;
    }
    return close(fd);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    if (write_file(path, data, len) != 0)
        h_fail("cannot write %s: %s", path, strerror(errno));
}

/* SHA-256 (lower-case hex) of a file's bytes, or NULL when it cannot be
 * read. */
static const char *file_sha256(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 16);
    int ok = ctx && buf && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    ssize_t n;
    while (ok && (n = read(fd, buf, 1 << 16)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        ok = n > 0 && EVP_DigestUpdate(ctx, buf, (size_t)n) == 1;
    }
    unsigned char md[32];
    ok = ok && EVP_DigestFinal_ex(ctx, md, NULL) == 1;
    EVP_MD_CTX_free(ctx);
    free(buf);
    close(fd);
    if (!ok)
        return NULL;
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return h_fmt("%s", hex);
}

static const char *must_sha256(const char *path)
{
    const char *sha = file_sha256(path);
    if (!sha)
        h_fail("cannot read %s: %s", path, strerror(errno));
    return sha;
}

/* Writes `size` random bytes to dir/name; returns the path. */
static const char *random_file(const char *dir, const char *name, size_t size)
{
    const char *path = h_fmt("%s/%s", dir, name);
    unsigned char *data = malloc(size ? size : 1);
    if (!data)
        h_fail("out of memory");
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t done = 0;
    while (fd >= 0 && done < size) {
        ssize_t n = read(fd, data + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    if (done != size) {
        free(data);
        h_fail("cannot read %zu bytes from /dev/urandom", size);
    }
    int rc = write_file(path, data, size);
    int err = errno;
    free(data);
    if (rc != 0)
        h_fail("cannot write %s: %s", path, strerror(err));
    return path;
}

static long long file_size(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int is_regular(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The entries of a folder ("." and ".." left out), one per line, sorted,
 * for messages and comparisons. */
static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *list_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        h_fail("opendir %s: %s", dir, strerror(errno));
    const char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == sizeof names / sizeof *names) {
            closedir(d);
            h_fail("more than %zu entries in %s", n, dir);
        }
        names[n++] = h_fmt("%s", e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, compare_names);
    const char *text = "";
    for (size_t i = 0; i < n; i++)
        text = h_fmt("%s%s\n", text, names[i]);
    return text;
}

/* Bytes of regular files under a folder (the server's spool). */
static long long tree_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* not made yet */
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        const char *path = h_fmt("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            total += tree_bytes(path);
        else if (S_ISREG(st.st_mode))
            total += st.st_size;
    }
    closedir(d);
    return total;
}

/* ---- processes ------------------------------------------------------------------ */

/* The pid of this test's own child whose command line contains `needle`,
 * or -1. */
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
        char line[1024];
        /* "pid (comm) state ppid": comm may hold spaces, so skip to the last ')'. */
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

/* 1 when the process has ended (it is a zombie the harness will reap, or
 * gone): read without reaping it, which is the harness's job. */
static int process_ended(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    char line[1024];
    char state = '?';
    if (fgets(line, sizeof line, f)) {
        char *close_paren = strrchr(line, ')');
        if (close_paren)
            sscanf(close_paren + 1, " %c", &state);
    }
    fclose(f);
    return state == 'Z' || state == 'X';
}

/* Waits until size_of(path) reaches `at` bytes while the process runs,
 * then kills it with SIGKILL. Fails when it ends first. */
static void kill_when_grown(h_proc *p, pid_t pid, long long (*size_of)(const char *),
                            const char *path, long long at, const char *what)
{
    int64_t deadline = h_now_ms() + BIG_MS;
    for (;;) {
        if (size_of(path) >= at)
            break;
        if (process_ended(pid)) {
            int status = h_proc_wait(p, 1000);
            h_fail("%s ended (status %d) before it could be interrupted; stdout:\n%s\nstderr:\n%s",
                   what, status, h_proc_stdout(p), h_proc_stderr(p));
        }
        if (h_now_ms() > deadline)
            h_fail("%s wrote fewer than %lld bytes in %d ms", what, at, BIG_MS);
        h_sleep_ms(2);
    }
    if (kill(pid, SIGKILL) != 0)
        h_fail("kill(%d, SIGKILL): %s", (int)pid, strerror(errno));
    int status = h_proc_wait(p, 5000);
    if (status != 128 + SIGKILL)
        h_fail("%s ended with status %d, not by SIGKILL (it finished too fast?)", what, status);
}

typedef struct tool_run {
    int status;
    const char *out, *err;
} tool_run;

#define MAX_TOOL_ARGS 40

/* The command line of a tool run (used only while it starts). */
typedef struct tool_args {
    const char *v[MAX_TOOL_ARGS];
} tool_args;

/* PROGRAM --host 127.0.0.1 --port PORT --name NAME --mode MODE, then
 * `args` (NULL-terminated). */
static tool_args tool_argv(const char *program, const char *port, const char *name,
                           const char *mode, const char *const *args)
{
    tool_args t;
    size_t a = 0;
    t.v[a++] = program;
    t.v[a++] = "--host";
    t.v[a++] = "127.0.0.1";
    t.v[a++] = "--port";
    t.v[a++] = port;
    t.v[a++] = "--name";
    t.v[a++] = name;
    t.v[a++] = "--mode";
    t.v[a++] = mode;
    for (size_t i = 0; args[i]; i++) {
        if (a + 1 >= MAX_TOOL_ARGS)
            h_fail("test bug: too many arguments");
        t.v[a++] = args[i];
    }
    t.v[a] = NULL;
    return t;
}

static tool_run run_tool(const char *program, const char *port, const char *name,
                         const char *mode, const char *const *args, int timeout_ms)
{
    tool_run r;
    tool_args argv = tool_argv(program, port, name, mode, args);
    r.status = h_run(argv.v, timeout_ms, &r.out, &r.err);
    return r;
}

#define SEND(port, name, mode, ...)                                                            \
    run_tool(SA_TEST_SA_SEND, port, name, mode, (const char *const[]){__VA_ARGS__, NULL},      \
             TOOL_MS)
#define RECV(port, name, mode, ...)                                                            \
    run_tool(SA_TEST_SA_RECV, port, name, mode, (const char *const[]){__VA_ARGS__, NULL},      \
             TOOL_MS)

static void expect_status(tool_run r, int want, const char *what)
{
    if (r.status != want)
        h_fail("%s: exit %d, expected %d; stdout:\n%s\nstderr:\n%s", what, r.status, want, r.out,
               r.err);
}

/* The n-th line (from 0) of text, or NULL. */
static const char *nth_line(const char *text, int n)
{
    for (int i = 0; i < n; i++) {
        const char *nl = strchr(text, '\n');
        if (!nl)
            return NULL;
        text = nl + 1;
    }
    if (!*text)
        return NULL;
    const char *nl = strchr(text, '\n');
    return h_fmt("%.*s", (int)(nl ? nl - text : (long)strlen(text)), text);
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static int is_sha256_hex(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* sa-send's "FILE_ID SHA256 NAME". */
typedef struct sent_file {
    const char *file_id, *sha256, *name;
} sent_file;

static sent_file parse_sent(const char *line)
{
    const char *space = line ? strchr(line, ' ') : NULL;
    if (!space || strlen(space + 1) < 66 || !is_sha256_hex(space + 1) || space[65] != ' ')
        h_fail("sa-send printed \"%s\", expected \"FILE_ID SHA256 NAME\"", line ? line : "");
    sent_file f;
    f.file_id = h_fmt("%.*s", (int)(space - line), line);
    f.sha256 = h_fmt("%.64s", space + 1);
    f.name = h_fmt("%s", space + 66);
    return f;
}

/* sa-recv's "SHA256 PATH". */
typedef struct received_file {
    const char *sha256, *path;
} received_file;

static received_file parse_received(const char *line)
{
    if (!line || strlen(line) < 66 || !is_sha256_hex(line) || line[64] != ' ')
        h_fail("sa-recv printed \"%s\", expected \"SHA256 PATH\"", line ? line : "");
    received_file f;
    f.sha256 = h_fmt("%.64s", line);
    f.path = h_fmt("%s", line + 65);
    return f;
}

/* Checks that a received file is the regular file dir/name (sa-recv
 * prints the folder as given, then '/', then the name) holding bytes with
 * the SHA-256 printed, and that this is `want_sha256`. */
static void check_received(received_file f, const char *dir, const char *name,
                           const char *want_sha256)
{
    const char *want_path = h_fmt("%s/%s", dir, name);
    if (strcmp(f.path, want_path) != 0)
        h_fail("sa-recv wrote \"%s\", expected \"%s\"; %s holds:\n%s", f.path, want_path, dir,
               list_dir(dir));
    if (!is_regular(want_path))
        h_fail("%s is not a regular file", want_path);
    const char *sha = must_sha256(want_path);
    if (strcmp(sha, f.sha256) != 0 || strcmp(sha, want_sha256) != 0)
        h_fail("%s: bytes hash to %s, sa-recv printed %s, expected %s", want_path, sha, f.sha256,
               want_sha256);
}

/* ---- the daemon and its users --------------------------------------------------------- */

static const char *spool_dir(void) { return h_fmt("%s/spool", h_tempdir()); }

static h_daemon *start_daemon(void)
{
    make_dir(spool_dir());
    return h_daemon_startv(NULL, PLUGINS_ALL, h_fmt("file.spool_dir=%s", spool_dir()), NULL);
}

static int user_online(sa_client *probe, const char *name)
{
    cJSON *reply = h_request_ok(probe, "{\"type\":\"users\"}");
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(reply, "users");
    const cJSON *u;
    cJSON_ArrayForEach(u, users)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(u, "name");
        if (cJSON_IsString(n) && strcasecmp(n->valuestring, name) == 0)
            return 1;
    }
    return 0;
}

/* Waits until `name` is connected (want 1) or gone (want 0): a tool may
 * log in under a name only once the server has let its last user go. */
static void wait_user(sa_client *probe, const char *name, int want)
{
    int64_t deadline = h_now_ms() + 10000;
    while (user_online(probe, name) != want) {
        if (h_now_ms() > deadline)
            h_fail("%s is still %s after 10 s", name, want ? "offline" : "online");
        h_sleep_ms(20);
    }
}

/* Skips events until a file_offer arrives; checks it. */
static void expect_offer(sa_client *c, const sent_file *f, const char *from)
{
    int64_t deadline = h_now_ms() + H_REPLY_MS;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        cJSON *frame = h_recv(c, left > 0 ? (int)left : 0);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(frame, "type");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "file_offer") != 0)
            continue;
        h_assert_str(frame, "file_id", f->file_id);
        h_assert_str(frame, "from", from);
        h_assert_str(frame, "name", f->name);
        h_assert_str(frame, "sha256", f->sha256);
        return;
    }
}

static const char *spawn_port_of(h_proc *server)
{
    const char *line = h_proc_expect_line(server, "listening on ", H_REPLY_MS);
    const char *colon = strrchr(line, ':');
    if (!colon || colon[1] < '0' || colon[1] > '9')
        h_fail("cannot read a port from \"%s\"", line);
    return h_fmt("%d", atoi(colon + 1));
}

/* The pid of a child just spawned with `needle` among its arguments (it
 * may not have reached exec yet). */
static pid_t wait_child_pid(const char *needle)
{
    int64_t deadline = h_now_ms() + 5000;
    for (;;) {
        pid_t pid = child_pid_with_arg(needle);
        if (pid > 0)
            return pid;
        if (h_now_ms() > deadline)
            h_fail("no child process with \"%s\" in its command line", needle);
        h_sleep_ms(1);
    }
}

/* The first len bytes of a file. */
static void copy_prefix(const char *from, const char *to, size_t len)
{
    unsigned char *data = malloc(len);
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    ssize_t got = data && fd >= 0 ? read(fd, data, len) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)len) {
        free(data);
        h_fail("cannot read %zu bytes of %s", len, from);
    }
    int rc = write_file(to, data, len);
    int err = errno;
    free(data);
    if (rc != 0)
        h_fail("cannot write %s: %s", to, strerror(err));
}

#define BOTH_MODES(fn)                                                                         \
    static void test_##fn##_sync(void **state)                                                 \
    {                                                                                          \
        (void)state;                                                                           \
        fn("sync");                                                                            \
    }                                                                                          \
    static void test_##fn##_async(void **state)                                                \
    {                                                                                          \
        (void)state;                                                                           \
        fn("async");                                                                           \
    }

/* ---- sa-send and sa-recv ------------------------------------------------------------ */

typedef struct local_file {
    const char *name;
    size_t size;
} local_file;

static void send_then_recv_sizes(const char *mode)
{
    h_daemon *d = start_daemon();
    const char *port = h_daemon_port(d);
    const char *src = temp_subdir("src");
    const char *dst = temp_subdir("dst");
    sa_client *probe = h_login(d, "probe");
    sa_client *bob = h_login(d, "bob");
    static const local_file files[] = {
        {"empty.bin", 0}, {"one.bin", 1}, {"chunk.bin", 65536}, {"chunk plus one.bin", 65537}};
    enum { N = sizeof files / sizeof *files };
    const char *path[N], *sha[N];
    for (int i = 0; i < N; i++) {
        path[i] = random_file(src, files[i].name, files[i].size);
        sha[i] = must_sha256(path[i]);
    }

    tool_run r = SEND(port, "alice", mode, "--to", "bob", path[0], path[1], path[2], path[3]);
    expect_status(r, 0, "sa-send of four files");
    if (count_lines(r.out) != N)
        h_fail("sa-send of four files printed:\n%s", r.out);
    sent_file sent[N];
    for (int i = 0; i < N; i++) {
        sent[i] = parse_sent(nth_line(r.out, i));
        if (strcmp(sent[i].name, files[i].name) != 0 || strcmp(sent[i].sha256, sha[i]) != 0)
            h_fail("sa-send line %d is \"%s\", expected the name %s and SHA-256 %s", i + 1,
                   nth_line(r.out, i), files[i].name, sha[i]);
        expect_offer(bob, &sent[i], "alice");
    }
    h_client_close(bob);
    wait_user(probe, "bob", 0);

    r = RECV(port, "bob", mode, "--all", "--dir", dst);
    expect_status(r, 0, "sa-recv --all");
    if (count_lines(r.out) != N)
        h_fail("sa-recv --all printed:\n%s", r.out);
    int seen[N] = {0};
    for (int line = 0; line < N; line++) {
        received_file got = parse_received(nth_line(r.out, line));
        int i = 0;
        while (i < N && strcmp(got.sha256, sha[i]) != 0)
            i++;
        if (i == N || seen[i]++)
            h_fail("sa-recv --all printed:\n%s", r.out);
        check_received(got, dst, files[i].name, sha[i]);
    }

    /* An existing file is never overwritten... */
    wait_user(probe, "bob", 0);
    r = RECV(port, "bob", mode, "--id", sent[1].file_id, "--dir", dst);
    expect_status(r, 0, "sa-recv --id of a file already there");
    check_received(parse_received(nth_line(r.out, 0)), dst, "one.bin (1)", sha[1]);
    if (strcmp(must_sha256(h_fmt("%s/one.bin", dst)), sha[1]) != 0)
        h_fail("sa-recv changed the existing one.bin");
    wait_user(probe, "bob", 0);
    r = RECV(port, "bob", mode, "--id", sent[1].file_id, "--dir", dst);
    expect_status(r, 0, "sa-recv --id of a file there twice");
    check_received(parse_received(nth_line(r.out, 0)), dst, "one.bin (2)", sha[1]);

    /* ...unless --force. */
    const char *one = h_fmt("%s/one.bin", dst);
    write_bytes(one, "changed", 7);
    wait_user(probe, "bob", 0);
    r = RECV(port, "bob", mode, "--id", sent[1].file_id, "--dir", dst, "--force");
    expect_status(r, 0, "sa-recv --force");
    check_received(parse_received(nth_line(r.out, 0)), dst, "one.bin", sha[1]);
    if (exists(h_fmt("%s/one.bin (3)", dst)))
        h_fail("sa-recv --force made one.bin (3) instead of replacing one.bin");
    const char *want = "chunk plus one.bin\nchunk.bin\nempty.bin\none.bin\none.bin (1)\n"
                       "one.bin (2)\n";
    if (strcmp(list_dir(dst), want) != 0)
        h_fail("%s holds:\n%sexpected:\n%s", dst, list_dir(dst), want);
}
BOTH_MODES(send_then_recv_sizes)

static void recv_wait_takes_offers(const char *mode)
{
    h_daemon *d = start_daemon();
    const char *port = h_daemon_port(d);
    const char *src = temp_subdir("src");
    const char *dst = temp_subdir("dst");
    sa_client *probe = h_login(d, "probe");
    tool_args argv = tool_argv(SA_TEST_SA_RECV, port, "bob", mode,
                               (const char *const[]){"--wait", "--dir", dst, NULL});
    h_proc *recv = h_spawn(argv.v);
    wait_user(probe, "bob", 1);

    const char *direct = random_file(src, "direct.txt", 1000);
    tool_run r = SEND(port, "alice", mode, "--to", "bob", direct);
    expect_status(r, 0, "sa-send --to bob");
    sent_file sent = parse_sent(nth_line(r.out, 0));
    const char *line = h_proc_expect_line(recv, sent.sha256, TOOL_MS);
    check_received(parse_received(line), dst, "direct.txt", must_sha256(direct));

    /* Through a room: bob (sa-recv) and probe are in the lobby, the
     * auto-join room. */
    const char *roomed = random_file(src, "roomed.txt", 70000);
    wait_user(probe, "alice", 0);
    r = SEND(port, "alice", mode, "--room", "lobby", roomed);
    expect_status(r, 0, "sa-send --room lobby");
    sent = parse_sent(nth_line(r.out, 0));
    expect_offer(probe, &sent, "alice");
    line = h_proc_expect_line(recv, sent.sha256, TOOL_MS);
    check_received(parse_received(line), dst, "roomed.txt", must_sha256(roomed));
}
BOTH_MODES(recv_wait_takes_offers)

/* A name still held when sa-send starts (as by this user's previous run,
 * whose connection the server is closing) is waited for, within the
 * tools' grace; a name held for good is refused. */
static void name_held_at_start(const char *mode)
{
    h_daemon *d = start_daemon();
    const char *port = h_daemon_port(d);
    const char *src = temp_subdir("src");
    const char *note = random_file(src, "note.txt", 1000);
    sa_client *holder = h_login(d, "carol");
    tool_args argv = tool_argv(SA_TEST_SA_SEND, port, "carol", mode,
                               (const char *const[]){note, NULL});
    h_proc *send = h_spawn(argv.v);
    h_proc_expect_stderr(send, "the name is still taken", 1, H_REPLY_MS);
    h_client_close(holder);
    int status = h_proc_wait(send, TOOL_MS);
    if (status != 0)
        h_fail("sa-send exited with %d once the name was free; stderr:\n%s", status,
               h_proc_stderr(send));

    /* Held past the grace: the hello's refusal is final. */
    h_login(d, "dave");
    tool_run r = SEND(port, "dave", mode, note);
    expect_status(r, 1, "sa-send as a name held for good");
    if (!strstr(r.err, "name_taken"))
        h_fail("sa-send did not say name_taken:\n%s", r.err);
}
BOTH_MODES(name_held_at_start)

/* 50 MiB: sa-send killed on the way and run again resumes the upload
 * (the same file_id), sa-recv killed on the way and run again finishes the
 * download, and the file arrives intact. */
static void big_file_interrupted(const char *mode)
{
    h_daemon *d = start_daemon();
    const char *port = h_daemon_port(d);
    const char *src = temp_subdir("src");
    const char *dst = temp_subdir("dst");
    sa_client *probe = h_login(d, "probe");
    sa_client *bob = h_login(d, "bob");
    int64_t t0 = h_now_ms();
    const char *big = random_file(src, "big.bin", BIG_SIZE);
    const char *sha = must_sha256(big);

    int64_t t1 = h_now_ms();
    tool_args argv = tool_argv(SA_TEST_SA_SEND, port, "alice", mode,
                               (const char *const[]){"--to", "bob", big, NULL});
    h_proc *send = h_spawn(argv.v);
    kill_when_grown(send, wait_child_pid(big), tree_bytes, spool_dir(), INTERRUPT_AT,
                    "sa-send");
    wait_user(probe, "alice", 0);
    /* What the server kept is alice's unfinished upload. */
    sa_client *alice = h_login(d, "alice");
    cJSON *put = h_request_ok(
        alice, h_fmt("{\"type\":\"file_put\",\"name\":\"big.bin\",\"size\":%zu,\"sha256\":\"%s\","
                     "\"to\":\"bob\"}",
                     BIG_SIZE, sha));
    const char *file_id = h_get_str(put, "file_id");
    double offset = h_get_num(put, "offset");
    if (offset <= 0 || offset >= (double)BIG_SIZE)
        h_fail("after sa-send was killed the upload resumes at %.0f", offset);
    h_client_close(alice);
    wait_user(probe, "alice", 0);

    int64_t t2 = h_now_ms();
    tool_run r = run_tool(SA_TEST_SA_SEND, port, "alice", mode,
                          (const char *const[]){"--to", "bob", big, NULL}, BIG_MS);
    expect_status(r, 0, "sa-send resuming 50 MiB");
    sent_file sent = parse_sent(nth_line(r.out, 0));
    if (strcmp(sent.file_id, file_id) != 0 || strcmp(sent.sha256, sha) != 0 ||
        strcmp(sent.name, "big.bin") != 0)
        h_fail("sa-send printed \"%s\", expected \"%s %s big.bin\" (the resumed upload)",
               nth_line(r.out, 0), file_id, sha);
    expect_offer(bob, &sent, "alice");
    h_client_close(bob);
    wait_user(probe, "bob", 0);

    int64_t t3 = h_now_ms();
    argv = tool_argv(SA_TEST_SA_RECV, port, "bob", mode,
                     (const char *const[]){"--id", file_id, "--dir", dst, NULL});
    h_proc *recv = h_spawn(argv.v);
    kill_when_grown(recv, wait_child_pid(dst), file_size, h_fmt("%s/big.bin.part", dst),
                    INTERRUPT_AT, "sa-recv");
    wait_user(probe, "bob", 0);
    int64_t t4 = h_now_ms();
    r = run_tool(SA_TEST_SA_RECV, port, "bob", mode,
                 (const char *const[]){"--id", file_id, "--dir", dst, NULL}, BIG_MS);
    expect_status(r, 0, "sa-recv resuming 50 MiB");
    check_received(parse_received(nth_line(r.out, 0)), dst, "big.bin", sha);
    if (exists(h_fmt("%s/big.bin.part", dst)))
        h_fail("big.bin.part is still there after the download");
    int64_t t5 = h_now_ms();
    fprintf(stderr,
            "[%s engine, --mode %s] 50 MiB: make %.1f s, first send %.1f s, resumed send "
            "%.1f s, first recv %.1f s, resumed recv %.1f s\n",
            h_engine, mode, (double)(t1 - t0) / 1000, (double)(t2 - t1) / 1000,
            (double)(t3 - t2) / 1000, (double)(t4 - t3) / 1000, (double)(t5 - t4) / 1000);
}
BOTH_MODES(big_file_interrupted)

/* sa-recv goes on from a NAME.part it finds: good bytes make the file, bad
 * ones fail the checksum, and then the .part is deleted and it exits 1. */
static void recv_resumes_part(const char *mode)
{
    h_daemon *d = start_daemon();
    const char *port = h_daemon_port(d);
    const char *src = temp_subdir("src");
    sa_client *probe = h_login(d, "probe");
    const char *file = random_file(src, "resume.bin", 300000);
    const char *sha = must_sha256(file);
    tool_run r = SEND(port, "alice", mode, file);
    expect_status(r, 0, "sa-send");
    sent_file sent = parse_sent(nth_line(r.out, 0));

    const char *good = temp_subdir("good");
    copy_prefix(file, h_fmt("%s/resume.bin.part", good), 100000);
    wait_user(probe, "alice", 0);
    r = RECV(port, "alice", mode, "--id", sent.file_id, "--dir", good);
    expect_status(r, 0, "sa-recv with a good .part");
    check_received(parse_received(nth_line(r.out, 0)), good, "resume.bin", sha);
    if (strcmp(list_dir(good), "resume.bin\n") != 0)
        h_fail("%s holds:\n%s", good, list_dir(good));

    const char *bad = temp_subdir("bad");
    const char *other = random_file(src, "other.bin", 100000);
    copy_prefix(other, h_fmt("%s/resume.bin.part", bad), 100000);
    wait_user(probe, "alice", 0);
    r = RECV(port, "alice", mode, "--id", sent.file_id, "--dir", bad);
    expect_status(r, 1, "sa-recv resuming a .part of other bytes");
    if (strcmp(list_dir(bad), "") != 0)
        h_fail("after a checksum mismatch %s still holds:\n%s", bad, list_dir(bad));
}
BOTH_MODES(recv_resumes_part)

/* Symbolic links planted at NAME or NAME.part, pointing outside the
 * download folder: their targets are never written or created. */
static void recv_ignores_symlinks(const char *mode)
{
    h_daemon *d = start_daemon();
    const char *port = h_daemon_port(d);
    const char *src = temp_subdir("src");
    const char *outside = temp_subdir("outside");
    sa_client *probe = h_login(d, "probe");
    const char *file = random_file(src, "victim.txt", 5000);
    const char *sha = must_sha256(file);
    tool_run r = SEND(port, "alice", mode, file);
    expect_status(r, 0, "sa-send");
    const char *file_id = parse_sent(nth_line(r.out, 0)).file_id;
    const char *target1 = h_write_file("outside/target1", "original-1");
    const char *target2 = h_write_file("outside/target2", "original-2");
    const char *sha_target1 = must_sha256(target1), *sha_target2 = must_sha256(target2);

    /* At NAME: the file gets another name. */
    const char *d1 = temp_subdir("d1");
    if (symlink(target1, h_fmt("%s/victim.txt", d1)) != 0)
        h_fail("symlink: %s", strerror(errno));
    wait_user(probe, "alice", 0);
    r = RECV(port, "alice", mode, "--id", file_id, "--dir", d1);
    expect_status(r, 0, "sa-recv with a symbolic link at NAME");
    check_received(parse_received(nth_line(r.out, 0)), d1, "victim.txt (1)", sha);

    /* A dangling one at NAME: its target is not created. */
    const char *d2 = temp_subdir("d2");
    const char *not_created = h_fmt("%s/created-through-name", outside);
    if (symlink(not_created, h_fmt("%s/victim.txt", d2)) != 0)
        h_fail("symlink: %s", strerror(errno));
    wait_user(probe, "alice", 0);
    r = RECV(port, "alice", mode, "--id", file_id, "--dir", d2);
    expect_status(r, 0, "sa-recv with a dangling symbolic link at NAME");
    check_received(parse_received(nth_line(r.out, 0)), d2, "victim.txt (1)", sha);

    /* At NAME.part, to an existing file and dangling: sa-recv may refuse
     * (exit 1) or work around it (exit 0, the file inside the folder). */
    const char *d3 = temp_subdir("d3");
    if (symlink(target2, h_fmt("%s/victim.txt.part", d3)) != 0)
        h_fail("symlink: %s", strerror(errno));
    const char *d4 = temp_subdir("d4");
    const char *part_not_created = h_fmt("%s/created-through-part", outside);
    if (symlink(part_not_created, h_fmt("%s/victim.txt.part", d4)) != 0)
        h_fail("symlink: %s", strerror(errno));
    const char *const part_dirs[] = {d3, d4};
    for (int i = 0; i < 2; i++) {
        wait_user(probe, "alice", 0);
        r = RECV(port, "alice", mode, "--id", file_id, "--dir", part_dirs[i]);
        if (r.status != 0 && r.status != 1)
            expect_status(r, 1, "sa-recv with a symbolic link at NAME.part");
        if (r.status == 0) {
            received_file got = parse_received(nth_line(r.out, 0));
            if (strncmp(got.path, part_dirs[i], strlen(part_dirs[i])) != 0 ||
                got.path[strlen(part_dirs[i])] != '/' ||
                strchr(got.path + strlen(part_dirs[i]) + 1, '/') || !is_regular(got.path) ||
                strcmp(must_sha256(got.path), sha) != 0)
                h_fail("sa-recv with a symbolic link at NAME.part printed \"%s\"",
                       nth_line(r.out, 0));
        }
    }

    /* --force replaces the link at NAME, never its target. */
    wait_user(probe, "alice", 0);
    r = RECV(port, "alice", mode, "--id", file_id, "--dir", d1, "--force");
    expect_status(r, 0, "sa-recv --force with a symbolic link at NAME");
    check_received(parse_received(nth_line(r.out, 0)), d1, "victim.txt", sha);

    if (strcmp(must_sha256(target1), sha_target1) != 0 ||
        strcmp(must_sha256(target2), sha_target2) != 0)
        h_fail("sa-recv wrote through a symbolic link to a file outside its folder");
    if (strcmp(list_dir(outside), "target1\ntarget2\n") != 0)
        h_fail("sa-recv created files outside its folder:\n%s", list_dir(outside));
}
BOTH_MODES(recv_ignores_symlinks)

/* ---- a hostile server ----------------------------------------------------------------- */

typedef struct hostile_name {
    const char *file_id, *offered, *expected;
} hostile_name;

static void recv_from_hostile_server(const char *mode)
{
    static const hostile_name names[] = {
        {"f1", "../../x", "x"},         {"f2", "/etc/passwd", "passwd"},
        {"f3", "a/../../b", "b"},       {"f4", "..", "f4"},
        {"f5", "\x1b[31mred", "[31mred"}, {"f6", "", "f6"},
    };
    enum { N = sizeof names / sizeof *names };
    const char *passwd_before = must_sha256("/etc/passwd");
    const char *top = temp_subdir("top");
    const char *mid = make_dir(h_fmt("%s/mid", top));
    const char *dst = make_dir(h_fmt("%s/dst", mid));
    const char *src = temp_subdir("src");
    const char *argv[3 + 3 * N];
    const char *sha[N];
    size_t a = 0;
    argv[a++] = SA_TEST_FAKE_SERVER;
    for (int i = 0; i < N; i++) {
        const char *path = random_file(src, names[i].file_id, 1000 + 70000 * (size_t)i);
        sha[i] = must_sha256(path);
        argv[a++] = names[i].file_id;
        argv[a++] = names[i].offered;
        argv[a++] = path;
    }
    argv[a] = NULL;
    h_proc *server = h_spawn(argv);
    const char *port = spawn_port_of(server);

    tool_run r = RECV(port, "bob", mode, "--all", "--dir", dst);
    expect_status(r, 0, "sa-recv --all from the hostile server");
    if (count_lines(r.out) != N)
        h_fail("sa-recv --all from the hostile server printed:\n%s\nstderr:\n%s", r.out, r.err);
    for (int line = 0; line < N; line++) {
        received_file got = parse_received(nth_line(r.out, line));
        int i = 0;
        while (i < N && strcmp(got.sha256, sha[i]) != 0)
            i++;
        if (i == N)
            h_fail("sa-recv printed an unknown file: %s", nth_line(r.out, line));
        check_received(got, dst, names[i].expected, sha[i]);
    }
    const char *want = "[31mred\nb\nf4\nf6\npasswd\nx\n";
    if (strcmp(list_dir(dst), want) != 0)
        h_fail("%s holds:\n%sexpected:\n%s", dst, list_dir(dst), want);
    if (strcmp(list_dir(mid), "dst\n") != 0 || strcmp(list_dir(top), "mid\n") != 0)
        h_fail("sa-recv wrote outside its folder: %s holds\n%s%s holds\n%s", mid, list_dir(mid),
               top, list_dir(top));
    if (strcmp(must_sha256("/etc/passwd"), passwd_before) != 0 ||
        exists("/etc/passwd (1)") || exists("/etc/passwd.part"))
        h_fail("sa-recv wrote next to /etc/passwd");
    if (strchr(r.out, '\x1b') || strchr(r.err, '\x1b'))
        h_fail("sa-recv passed an escape character from the server to the terminal");
    int status = h_proc_wait(server, H_REPLY_MS);
    if (status != 0)
        h_fail("the fake server ended with %d; its stderr:\n%s", status, h_proc_stderr(server));
}
BOTH_MODES(recv_from_hostile_server)

static void recv_checksum_mismatch(const char *mode)
{
    const char *src = temp_subdir("src");
    const char *dst = temp_subdir("dst");
    const char *path = random_file(src, "doc", 200000);
    const char *const argv[] = {SA_TEST_FAKE_SERVER, "--corrupt", "f1", "doc.txt", path, NULL};
    h_proc *server = h_spawn(argv);
    const char *port = spawn_port_of(server);
    tool_run r = RECV(port, "bob", mode, "--id", "f1", "--dir", dst);
    expect_status(r, 1, "sa-recv of bytes that do not match their SHA-256");
    if (strcmp(list_dir(dst), "") != 0)
        h_fail("after a checksum mismatch %s holds:\n%s", dst, list_dir(dst));
}
BOTH_MODES(recv_checksum_mismatch)

/* An error reply ends a tool at once with exit 1. */
static void tools_fail_on_errors(const char *mode)
{
    h_daemon *d = start_daemon();
    const char *port = h_daemon_port(d);
    const char *file = random_file(temp_subdir("src"), "x.bin", 10);
    const char *dst = temp_subdir("dst");
    expect_status(SEND(port, "alice", mode, "--to", "nobody", file), 1, "sa-send --to nobody");
    sa_client *probe = h_login(d, "probe");
    wait_user(probe, "alice", 0);
    expect_status(SEND(port, "alice", mode, "--room", "nowhere", file), 1,
                  "sa-send --room nowhere");
    expect_status(RECV(port, "bob", mode, "--id", "no-such-file", "--dir", dst), 1,
                  "sa-recv --id no-such-file");
    if (strcmp(list_dir(dst), "") != 0)
        h_fail("a failed sa-recv left in %s:\n%s", dst, list_dir(dst));
}
BOTH_MODES(tools_fail_on_errors)

/* ---- sa-client's /send, /files and /get ------------------------------------------ */

static h_proc *start_sa_client(const char *port, const char *name, const char *mode)
{
    tool_args argv =
        tool_argv(SA_TEST_SA_CLIENT, port, name, mode, (const char *const[]){NULL});
    return h_spawn(argv.v);
}

/* "PREFIX...: FILE_ID" (sa-client's "* sent" and "offers" lines): the
 * FILE_ID after the last ": ". */
static const char *file_id_after_colon(const char *line)
{
    const char *colon = strstr(line, "): ");
    if (!colon || !colon[3])
        h_fail("no \"(SIZE bytes): FILE_ID\" in \"%s\"", line);
    return h_fmt("%s", colon + 3);
}

static void sa_client_file_commands(const char *mode)
{
    h_daemon *d = start_daemon();
    const char *port = h_daemon_port(d);
    const char *src = temp_subdir("src");
    const char *dst = temp_subdir("dst");
    sa_client *probe = h_login(d, "probe");
    h_proc *alice = start_sa_client(port, "alice", mode);
    h_proc *bob = start_sa_client(port, "bob", mode);
    wait_user(probe, "alice", 1);
    wait_user(probe, "bob", 1);
    const char *note = random_file(src, "note.txt", 70000);
    const char *sha = must_sha256(note);

    h_proc_write_line(alice, h_fmt("/send %s bob", note));
    const char *file_id =
        file_id_after_colon(h_proc_expect_line(alice, "* sent note.txt (70000 bytes): ", TOOL_MS));
    h_proc_expect_line(bob, h_fmt("* alice offers note.txt (70000 bytes): %s", file_id),
                       H_REPLY_MS);
    h_proc_write_line(bob, "/files");
    h_proc_expect_line(bob, h_fmt("%s note.txt 70000 from alice", file_id), H_REPLY_MS);
    h_proc_write_line(bob, h_fmt("/get %s %s", file_id, dst));
    h_proc_expect_line(bob, h_fmt("* saved %s/note.txt (%s)", dst, sha), TOOL_MS);
    if (strcmp(must_sha256(h_fmt("%s/note.txt", dst)), sha) != 0)
        h_fail("sa-client /get saved other bytes");
    /* Never overwriting, as sa-recv. */
    h_proc_write_line(bob, h_fmt("/get %s %s", file_id, dst));
    h_proc_expect_line(bob, h_fmt("* saved %s/note.txt (1) (%s)", dst, sha), TOOL_MS);

    /* Without a user: to the current room, the lobby. */
    h_proc_write_line(alice, h_fmt("/send %s", note));
    const char *room_id =
        file_id_after_colon(h_proc_expect_line(alice, "* sent note.txt (70000 bytes): ", TOOL_MS));
    h_proc_expect_line(bob, h_fmt("* alice offers note.txt (70000 bytes): %s", room_id),
                       H_REPLY_MS);
    sent_file offered = {.file_id = room_id, .sha256 = sha, .name = "note.txt"};
    expect_offer(probe, &offered, "alice");

    /* An error is shown, and the client goes on. */
    h_proc_write_line(bob, h_fmt("/get no-such-file %s", dst));
    h_proc_expect_line(bob, "no_such_file", H_REPLY_MS);
    h_proc_write_line(alice, "/quit");
    h_proc_write_line(bob, "/quit");
    int status = h_proc_wait(alice, TOOL_MS);
    if (status != 0)
        h_fail("alice's sa-client exited with %d", status);
    status = h_proc_wait(bob, TOOL_MS);
    if (status != 0)
        h_fail("bob's sa-client exited with %d", status);
    if (strcmp(list_dir(dst), "note.txt\nnote.txt (1)\n") != 0)
        h_fail("%s holds:\n%s", dst, list_dir(dst));
}
BOTH_MODES(sa_client_file_commands)

/* ---- retries: resets and a crashed server ------------------------------------------- */

/* 20 MiB, reset every ~1 MiB of file: its base64 takes 4/3 of that on
 * the wire, plus the frames' JSON. */
#define RESET_SIZE ((size_t)20 << 20)
#define RESET_EVERY "1400000"
#define RESET_RETRIES "200"

/* How many times `needle` occurs in `text`. */
static int occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *at = strstr(text, needle); at; at = strstr(at + 1, needle))
        n++;
    return n;
}

/* Waits for a tool started with h_spawn; fails unless it exits 0. */
static tool_run finish_tool(h_proc *p, const char *what)
{
    tool_run r;
    r.status = h_proc_wait(p, BIG_MS);
    r.out = h_proc_stdout(p);
    r.err = h_proc_stderr(p);
    expect_status(r, 0, what);
    return r;
}

/* At the same time: alice's sa-send through a proxy that resets every
 * connection after ~1 MiB up, and bob's sa-recv (of a file he put there
 * directly) through one that resets after ~1 MiB down. Both reconnect and
 * resume until their 20 MiB are across, and the hashes match. */
static void transfer_through_resets(const char *mode)
{
    h_daemon *d = start_daemon();
    const char *src = temp_subdir("src");
    const char *dst = temp_subdir("dst");
    const char *up_path = random_file(src, "up.bin", RESET_SIZE);
    const char *up_sha = must_sha256(up_path);
    const char *down_path = random_file(src, "down.bin", RESET_SIZE);
    const char *down_sha = must_sha256(down_path);
    tool_run r = run_tool(SA_TEST_SA_SEND, h_daemon_port(d), "bob", mode,
                          (const char *const[]){down_path, NULL}, BIG_MS);
    expect_status(r, 0, "sa-send without faults");
    sent_file down_file = parse_sent(nth_line(r.out, 0));

    proxy *up = proxy_start(h_daemon_port(d), "71",
                            (const char *const[]){"--up-reset-after", RESET_EVERY, NULL});
    proxy *down = proxy_start(h_daemon_port(d), "72",
                              (const char *const[]){"--down-reset-after", RESET_EVERY, NULL});
    tool_args argv = tool_argv(SA_TEST_SA_SEND, up->port, "alice", mode,
                               (const char *const[]){"--retries", RESET_RETRIES, up_path, NULL});
    h_proc *send = h_spawn(argv.v);
    argv = tool_argv(SA_TEST_SA_RECV, down->port, "bob", mode,
                     (const char *const[]){"--retries", RESET_RETRIES, "--id", down_file.file_id,
                                           "--dir", dst, NULL});
    h_proc *recv = h_spawn(argv.v);

    tool_run sent = finish_tool(send, "sa-send through resets");
    if (strcmp(parse_sent(nth_line(sent.out, 0)).sha256, up_sha) != 0)
        h_fail("sa-send printed \"%s\", the file hashes to %s", nth_line(sent.out, 0), up_sha);
    tool_run received = finish_tool(recv, "sa-recv through resets");
    check_received(parse_received(nth_line(received.out, 0)), dst, "down.bin", down_sha);
    proxy_stop(up);
    proxy_stop(down);
    int send_retries = occurrences(sent.err, "reconnecting in");
    int recv_retries = occurrences(received.err, "reconnecting in");
    if (send_retries < 10 || recv_retries < 10)
        h_fail("20 MiB with a reset every ~1 MiB, but sa-send reconnected %d times and sa-recv "
               "%d; sa-send's stderr:\n%s\nsa-recv's:\n%s",
               send_retries, recv_retries, sent.err, received.err);
    /* The uploaded file is whole on the server too. */
    r = RECV(h_daemon_port(d), "alice", mode, "--id",
             parse_sent(nth_line(sent.out, 0)).file_id, "--dir", dst);
    expect_status(r, 0, "sa-recv of the file uploaded through resets");
    check_received(parse_received(nth_line(r.out, 0)), dst, "up.bin", up_sha);
    fprintf(stderr, "[%s engine, --mode %s] 20 MiB each way through resets: sa-send %d "
                    "reconnects, sa-recv %d\n",
            h_engine, mode, send_retries, recv_retries);
}
BOTH_MODES(transfer_through_resets)

/* 160 KiB each way through a link capped at 64 KB/s in both directions:
 * slow, but nothing is lost and no connection given up. */
#define CAPPED_SIZE ((size_t)160 << 10)
#define CAPPED_RATE "65536"

static void transfer_through_rate_cap(const char *mode)
{
    h_daemon *d = start_daemon();
    const char *src = temp_subdir("src");
    const char *dst = temp_subdir("dst");
    const char *up_path = random_file(src, "up.bin", CAPPED_SIZE);
    const char *down_path = random_file(src, "down.bin", CAPPED_SIZE);
    tool_run r = SEND(h_daemon_port(d), "bob", mode, down_path);
    expect_status(r, 0, "sa-send without faults");
    sent_file down_file = parse_sent(nth_line(r.out, 0));

    proxy *p = proxy_start(h_daemon_port(d), "73",
                           (const char *const[]){"--rate", CAPPED_RATE, NULL});
    int64_t start = h_now_ms();
    tool_args argv = tool_argv(SA_TEST_SA_SEND, p->port, "alice", mode,
                               (const char *const[]){"--retries", "0", up_path, NULL});
    h_proc *send = h_spawn(argv.v);
    argv = tool_argv(SA_TEST_SA_RECV, p->port, "bob", mode,
                     (const char *const[]){"--retries", "0", "--id", down_file.file_id, "--dir",
                                           dst, NULL});
    h_proc *recv = h_spawn(argv.v);
    tool_run sent = finish_tool(send, "sa-send through a capped link");
    if (strcmp(parse_sent(nth_line(sent.out, 0)).sha256, must_sha256(up_path)) != 0)
        h_fail("sa-send printed \"%s\" for %s", nth_line(sent.out, 0), up_path);
    tool_run received = finish_tool(recv, "sa-recv through a capped link");
    check_received(parse_received(nth_line(received.out, 0)), dst, "down.bin",
                   must_sha256(down_path));
    int64_t took = h_now_ms() - start;
    proxy_stop(p);
    /* 4/3 of the file (base64) at 64 KB/s: at least 3 s each way, in parallel. */
    if (took < 3000)
        h_fail("160 KiB each way through 64 KB/s took only %lld ms: no cap?", (long long)took);
}
BOTH_MODES(transfer_through_rate_cap)

/* Every .meta of the spool has its .data, holding no more than the
 * declared size, exactly it once complete. Returns how many are complete. */
static int check_spool(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        h_fail("opendir %s: %s", dir, strerror(errno));
    int complete = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".meta") != 0)
            continue;
        const char *meta_path = h_fmt("%s/%s", dir, e->d_name);
        const char *data_path = h_fmt("%s/%.*s.data", dir, (int)(len - 5), e->d_name);
        FILE *f = fopen(meta_path, "r");
        char text[8192];
        size_t got = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f)
            fclose(f);
        text[got] = '\0';
        cJSON *meta = h_keep(cJSON_Parse(text));
        if (!meta)
            h_fail("%s is not JSON: %s", meta_path, text);
        double size = h_get_num(meta, "size");
        int is_complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "complete"));
        long long stored = file_size(data_path);
        if (stored < 0 || (double)stored > size || (is_complete && (double)stored != size))
            h_fail("spool inconsistent: %s says size %.0f%s, %s holds %lld bytes", meta_path,
                   size, is_complete ? " (complete)" : "", data_path, stored);
        complete += is_complete;
    }
    closedir(d);
    return complete;
}

/* The server dies (SIGKILL) while sa-send uploads; the spool holds what
 * its .meta files say; a new server on the same port and spool comes up,
 * and sa-send, retrying, resumes there and finishes with the right file. */
static void server_killed_mid_upload(const char *mode)
{
    make_dir(spool_dir());
    const char *spool = h_fmt("file.spool_dir=%s", spool_dir());
    h_daemon *first = h_daemon_startv(NULL, PLUGINS_ALL, spool, NULL);
    const char *port = h_fmt("%s", h_daemon_port(first));
    const char *src = temp_subdir("src");
    const char *dst = temp_subdir("dst");
    const char *path = random_file(src, "crash.bin", RESET_SIZE);
    const char *sha = must_sha256(path);

    tool_args argv = tool_argv(SA_TEST_SA_SEND, port, "alice", mode,
                               (const char *const[]){"--retries", "20", path, NULL});
    h_proc *send = h_spawn(argv.v);
    pid_t send_pid = wait_child_pid(path);
    int64_t deadline = h_now_ms() + BIG_MS;
    while (tree_bytes(spool_dir()) < INTERRUPT_AT) {
        if (process_ended(send_pid))
            h_fail("sa-send ended (status %d) before the server could be killed; stderr:\n%s",
                   h_proc_wait(send, 1000), h_proc_stderr(send));
        if (h_now_ms() > deadline)
            h_fail("the spool did not reach %lld bytes in %d ms", INTERRUPT_AT, BIG_MS);
        h_sleep_ms(2);
    }
    h_daemon_kill(first);
    long long at_kill = tree_bytes(spool_dir());
    if (check_spool(spool_dir()) != 0)
        h_fail("the upload was complete before the server was killed");

    h_daemon *second = h_daemon_startv(NULL, PLUGINS_ALL, spool,
                                       h_fmt("server.listen=127.0.0.1:%s", port), NULL);
    int status = h_proc_wait(send, BIG_MS);
    if (status != 0)
        h_fail("sa-send exited with %d after the server came back; stderr:\n%s", status,
               h_proc_stderr(send));
    if (!strstr(h_proc_stderr(send), "reconnecting in"))
        h_fail("sa-send did not say it reconnects; stderr:\n%s", h_proc_stderr(send));
    sent_file sent = parse_sent(nth_line(h_proc_stdout(send), 0));
    if (strcmp(sent.sha256, sha) != 0)
        h_fail("sa-send printed %s, the file hashes to %s", sent.sha256, sha);
    if (check_spool(spool_dir()) != 1)
        h_fail("after the upload the spool holds no complete file:\n%s", list_dir(spool_dir()));

    tool_run r = RECV(h_daemon_port(second), "alice", mode, "--id", sent.file_id, "--dir", dst);
    expect_status(r, 0, "sa-recv after the restart");
    check_received(parse_received(nth_line(r.out, 0)), dst, "crash.bin", sha);
    fprintf(stderr, "[%s engine, --mode %s] server killed with %lld bytes spooled; sa-send "
                    "resumed and finished\n",
            h_engine, mode, at_kill);
}
BOTH_MODES(server_killed_mid_upload)

static int proxy_teardown(void **state)
{
    int failed = proxy_stop_all();
    int rc = h_teardown(state);
    return failed ? -1 : rc;
}

#define PROXY_TEST(fn) cmocka_unit_test_setup_teardown(fn, h_setup, proxy_teardown)

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_file_tools");
    const struct CMUnitTest tests[] = {
        H_TEST(test_send_then_recv_sizes_sync),
        H_TEST(test_send_then_recv_sizes_async),
        H_TEST(test_recv_wait_takes_offers_sync),
        H_TEST(test_recv_wait_takes_offers_async),
        H_TEST(test_name_held_at_start_sync),
        H_TEST(test_name_held_at_start_async),
        H_TEST(test_big_file_interrupted_sync),
        H_TEST(test_big_file_interrupted_async),
        H_TEST(test_recv_resumes_part_sync),
        H_TEST(test_recv_resumes_part_async),
        H_TEST(test_recv_ignores_symlinks_sync),
        H_TEST(test_recv_ignores_symlinks_async),
        H_TEST(test_recv_from_hostile_server_sync),
        H_TEST(test_recv_from_hostile_server_async),
        H_TEST(test_recv_checksum_mismatch_sync),
        H_TEST(test_recv_checksum_mismatch_async),
        H_TEST(test_tools_fail_on_errors_sync),
        H_TEST(test_tools_fail_on_errors_async),
        H_TEST(test_sa_client_file_commands_sync),
        H_TEST(test_sa_client_file_commands_async),
        PROXY_TEST(test_transfer_through_resets_sync),
        PROXY_TEST(test_transfer_through_resets_async),
        PROXY_TEST(test_transfer_through_rate_cap_sync),
        PROXY_TEST(test_transfer_through_rate_cap_async),
        H_TEST(test_server_killed_mid_upload_sync),
        H_TEST(test_server_killed_mid_upload_async),
    };
    char group[64];
    snprintf(group, sizeof group, "file tools/%s", h_engine);
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
