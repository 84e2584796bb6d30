#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef SA_TEST_SYNCASYNCD
#error "SA_TEST_SYNCASYNCD (path of syncasyncd) must be defined by the build"
#endif
#ifndef SA_TEST_DEFAULT_CONF
#error "SA_TEST_DEFAULT_CONF (path of conf/syncasync.ini) must be defined by the build"
#endif
/* Sanitizer builds run the daemon several times slower. */
#ifndef SA_TEST_TIME_SCALE
#define SA_TEST_TIME_SCALE 1
#endif

#define DAEMON_READY_MS (10000 * SA_TEST_TIME_SCALE)
#define STOP_GRACE_MS 5000
#define LOG_CAP (16u << 20) /* a daemon's log kept in memory, at most */
#define LOG_TAIL 4000       /* bytes of each log shown with a failure */

const char *h_engine;

/* ---- what the harness owns ---------------------------------------------
 * One list of everything handed out during a test, released newest first
 * by h_teardown (clients and children before the daemons they talk to). */

typedef struct owned {
    void *ptr;
    void (*release)(void *ptr);
    struct owned *next;
} owned;

static owned *owned_list;
static char *temp_dir;
/* Set when something in teardown went wrong (teardown must not long-jump). */
static int teardown_failed;
/* The text of the last h_fail, freed by the next one or by teardown (the
 * failure long-jumps past any other place that could free it). */
static char *failure_message;

struct h_daemon {
    pid_t pid;
    int reaped, status;
    char port[16];
    int log_fd; /* read end of the daemon's stdout+stderr */
    pthread_t drainer;
    int drainer_running;
    pthread_mutex_t lock; /* guards log and log_len */
    char *log;
    size_t log_len, log_cap;
    int killed; /* by h_daemon_kill: its exit status is no failure */
};

typedef struct buf {
    char *data; /* NUL-terminated */
    size_t len, cap;
} buf;

struct h_proc {
    pid_t pid;
    int reaped, status;
    int in_fd, out_fd, err_fd; /* -1 once closed */
    buf out, err;
    size_t scanned; /* bytes of `out` already matched against */
};

/* ---- small utilities ------------------------------------------------------ */

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t h_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - h_now_ms();
    return left > 0 ? (int)left : 0;
}

static int buf_append(buf *b, const char *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return -1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

static const char *buf_text(const buf *b) { return b->data ? b->data : ""; }

int h_exit_status(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return -1;
}

/* ---- failure ----------------------------------------------------------------- */

static void release_daemon(void *ptr);

static void print_daemon_tail(h_daemon *d)
{
    pthread_mutex_lock(&d->lock);
    size_t from = d->log_len > LOG_TAIL ? d->log_len - LOG_TAIL : 0;
    fprintf(stderr, "---- syncasyncd (pid %d, port %s) log%s ----\n%.*s\n----\n", (int)d->pid,
            d->port[0] ? d->port : "?", from ? " tail" : "", (int)(d->log_len - from),
            d->log ? d->log + from : "");
    pthread_mutex_unlock(&d->lock);
}

static void print_daemon_tails(void)
{
    for (owned *o = owned_list; o; o = o->next)
        if (o->release == release_daemon)
            print_daemon_tail(o->ptr);
}

void h_fail(const char *fmt, ...)
{
    free(failure_message);
    failure_message = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&failure_message, fmt, ap);
    va_end(ap);
    print_daemon_tails();
    fail_msg("[%s engine] %s", h_engine ? h_engine : "?", n < 0 ? fmt : failure_message);
    abort(); /* _fail long-jumps out of the test; cmocka does not declare it noreturn */
}

/* ---- ownership ------------------------------------------------------------- */

static void *own(void *ptr, void (*release)(void *))
{
    owned *node = malloc(sizeof *node);
    if (!node) {
        release(ptr);
        h_fail("out of memory");
    }
    node->ptr = ptr;
    node->release = release;
    node->next = owned_list;
    owned_list = node;
    return ptr;
}

/* Releases one owned object now. */
static void release_owned(void *ptr)
{
    for (owned **at = &owned_list; *at; at = &(*at)->next) {
        if ((*at)->ptr == ptr) {
            owned *node = *at;
            *at = node->next;
            node->release(node->ptr);
            free(node);
            return;
        }
    }
}

static void release_json(void *ptr) { cJSON_Delete(ptr); }
static void release_client(void *ptr) { sa_client_close(ptr); }

cJSON *h_keep(cJSON *json) { return json ? own(json, release_json) : NULL; }

void *h_own(void *ptr, void (*release)(void *ptr)) { return own(ptr, release); }

static char *keep_string(char *s)
{
    if (!s)
        h_fail("out of memory");
    return own(s, free);
}

const char *h_fmt(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return keep_string(n < 0 ? NULL : s);
}

/* ---- setup / teardown -------------------------------------------------------- */

void h_init(int argc, char **argv, const char *program)
{
    if (argc != 2 || (strcmp(argv[1], "sync") != 0 && strcmp(argv[1], "async") != 0)) {
        fprintf(stderr, "usage: %s sync|async\n", program);
        exit(2);
    }
    h_engine = argv[1];
    /* A peer that went away must be an error return, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    /* Runs only the tests whose name matches (cmocka's * and ?), to try
     * one test while developing. */
    const char *filter = getenv("SA_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
}

int h_setup(void **state)
{
    (void)state;
    teardown_failed = 0;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "harness: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

int h_teardown(void **state)
{
    (void)state;
    while (owned_list) {
        owned *node = owned_list;
        owned_list = node->next;
        node->release(node->ptr);
        free(node);
    }
    free(failure_message);
    failure_message = NULL;
    if (temp_dir) {
        nftw(temp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(temp_dir);
        temp_dir = NULL;
    }
    return teardown_failed ? -1 : 0;
}

/* ---- files --------------------------------------------------------------------- */

const char *h_tempdir(void)
{
    if (temp_dir)
        return temp_dir;
    const char *base = getenv("TMPDIR");
    char *tmpl = NULL;
    if (asprintf(&tmpl, "%s/sa-it-XXXXXX", base && *base ? base : "/tmp") < 0)
        h_fail("out of memory");
    if (!mkdtemp(tmpl)) {
        int err = errno;
        free(tmpl);
        h_fail("mkdtemp: %s", strerror(err));
    }
    temp_dir = tmpl;
    return temp_dir;
}

const char *h_write_file(const char *name, const char *content)
{
    const char *path = h_fmt("%s/%s", h_tempdir(), name);
    FILE *f = fopen(path, "w");
    if (!f)
        h_fail("cannot create %s: %s", path, strerror(errno));
    size_t len = strlen(content);
    int ok = fwrite(content, 1, len, f) == len;
    if (fclose(f) != 0 || !ok)
        h_fail("cannot write %s", path);
    return path;
}

/* ---- children ------------------------------------------------------------------- */

/* Forks and execs argv with the given fds as stdin/stdout/stderr; returns
 * the pid, or -1 (errno set) when fork fails. Every other descriptor is
 * closed in the child, so a child never holds another child's pipe or a
 * test client's socket open. */
static pid_t spawn(const char *const *argv, int in_fd, int out_fd, int err_fd)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
            _exit(127);
        if (close_range(3, ~0u, 0) != 0)
            _exit(127); /* a child holding others' pipes open would hang the tests */
        signal(SIGPIPE, SIG_DFL); /* the test ignores it; the child must not inherit that */
        execv(argv[0], (char *const *)argv);
        static const char msg[] = "harness: exec failed\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(127);
    }
    return pid;
}

static void make_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        h_fail("pipe: %s", strerror(errno));
}

static int open_devnull(int flags)
{
    int fd = open("/dev/null", flags | O_CLOEXEC);
    if (fd < 0)
        h_fail("/dev/null: %s", strerror(errno));
    return fd;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Reads what is available from *fd into b; closes *fd at EOF or error.
 * Returns 1 when bytes were read. */
static int drain_fd(int *fd, buf *b)
{
    char chunk[4096];
    ssize_t n = read(*fd, chunk, sizeof chunk);
    if (n > 0) {
        if (buf_append(b, chunk, (size_t)n) != 0)
            h_fail("out of memory");
        return 1;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    close_fd(fd);
    return 0;
}

/* Waits up to `ms` for output on the process's pipes and reads it. */
static void proc_pump(h_proc *p, int ms)
{
    struct pollfd pfd[2];
    int n = 0;
    if (p->out_fd >= 0)
        pfd[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
    if (p->err_fd >= 0)
        pfd[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
    if (n == 0) {
        h_sleep_ms(ms < 10 ? ms : 10);
        return;
    }
    if (poll(pfd, (nfds_t)n, ms) <= 0)
        return;
    for (int i = 0; i < n; i++) {
        if (!pfd[i].revents)
            continue;
        if (pfd[i].fd == p->out_fd)
            drain_fd(&p->out_fd, &p->out);
        else
            drain_fd(&p->err_fd, &p->err);
    }
}

static int proc_try_reap(h_proc *p)
{
    if (p->reaped)
        return 1;
    int wstatus;
    pid_t r = waitpid(p->pid, &wstatus, WNOHANG);
    if (r == p->pid) {
        p->reaped = 1;
        p->status = h_exit_status(wstatus);
    }
    return p->reaped;
}

static void release_proc(void *ptr)
{
    h_proc *p = ptr;
    close_fd(&p->in_fd);
    if (!proc_try_reap(p)) {
        kill(p->pid, SIGKILL);
        int wstatus;
        while (waitpid(p->pid, &wstatus, 0) < 0 && errno == EINTR)
            ;
    }
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    free(p->out.data);
    free(p->err.data);
    free(p);
}

static void close_fd_pair(int fds[2])
{
    close_fd(&fds[0]);
    close_fd(&fds[1]);
}

/* Starts argv with child_in as its stdin (closed here) and pipes from its
 * stdout and stderr; parent_in (or -1) is the write end of its stdin that
 * the harness keeps. */
static h_proc *proc_start(const char *const *argv, int child_in, int parent_in)
{
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    h_proc *p = calloc(1, sizeof *p);
    int ok = p && pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0;
    if (ok)
        p->pid = spawn(argv, child_in, out[1], err[1]);
    int saved = errno;
    close(child_in);
    close_fd(&out[1]);
    close_fd(&err[1]);
    if (!ok || p->pid < 0) {
        close_fd_pair(out);
        close_fd_pair(err);
        close_fd(&parent_in);
        free(p);
        h_fail("cannot start %s: %s", argv[0], strerror(saved));
    }
    p->in_fd = parent_in;
    p->out_fd = out[0];
    p->err_fd = err[0];
    return own(p, release_proc);
}

h_proc *h_spawn(const char *const *argv)
{
    int in[2];
    make_pipe(in);
    return proc_start(argv, in[0], in[1]);
}

void h_proc_write_line(h_proc *p, const char *line)
{
    size_t len = strlen(line);
    char *copy = malloc(len + 1);
    if (!copy)
        h_fail("out of memory");
    memcpy(copy, line, len);
    copy[len] = '\n';
    size_t done = 0;
    while (p->in_fd >= 0 && done < len + 1) {
        ssize_t n = write(p->in_fd, copy + done, len + 1 - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    free(copy);
    if (done != len + 1)
        h_fail("cannot write \"%s\" to the child's stdin: %s", line, strerror(errno));
}

void h_proc_close_stdin(h_proc *p) { close_fd(&p->in_fd); }

/* The next unscanned complete line of p's stdout containing needle, or
 * NULL; lines scanned without a match are passed over. */
static const char *scan_lines(h_proc *p, const char *needle)
{
    while (p->scanned < p->out.len) {
        char *start = p->out.data + p->scanned;
        char *nl = memchr(start, '\n', p->out.len - p->scanned);
        if (!nl)
            return NULL;
        size_t len = (size_t)(nl - start);
        p->scanned += len + 1;
        char *line = strndup(start, len);
        if (!line)
            h_fail("out of memory");
        if (strstr(line, needle))
            return keep_string(line);
        free(line);
    }
    return NULL;
}

const char *h_proc_expect_line(h_proc *p, const char *needle, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        const char *line = scan_lines(p, needle);
        if (line)
            return line;
        if (p->out_fd < 0)
            h_fail("child %d closed its stdout without printing a line containing \"%s\"; "
                   "stdout:\n%s\nstderr:\n%s",
                   (int)p->pid, needle, buf_text(&p->out), buf_text(&p->err));
        int left = remaining_ms(deadline);
        if (left == 0)
            h_fail("no line containing \"%s\" from child %d within %d ms; stdout:\n%s\n"
                   "stderr:\n%s",
                   needle, (int)p->pid, timeout_ms, buf_text(&p->out), buf_text(&p->err));
        proc_pump(p, left);
    }
}

static int count_occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *at = strstr(text, needle); at; at = strstr(at + 1, needle))
        n++;
    return n;
}

void h_proc_expect_stderr(h_proc *p, const char *needle, int count, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    while (count_occurrences(buf_text(&p->err), needle) < count) {
        int left = remaining_ms(deadline);
        if (left == 0 || p->err_fd < 0)
            h_fail("child %d did not write \"%s\" %d time(s) to stderr within %d ms; "
                   "stdout:\n%s\nstderr:\n%s",
                   (int)p->pid, needle, count, timeout_ms, buf_text(&p->out), buf_text(&p->err));
        proc_pump(p, left);
    }
}

void h_proc_expect_no_line(h_proc *p, const char *needle, int ms)
{
    int64_t deadline = h_now_ms() + ms;
    for (;;) {
        const char *line = scan_lines(p, needle);
        if (line)
            h_fail("child %d printed \"%s\", which it should not have", (int)p->pid, line);
        int left = remaining_ms(deadline);
        if (left == 0 || (p->out_fd < 0 && p->err_fd < 0))
            return;
        proc_pump(p, left);
    }
}

int h_proc_wait(h_proc *p, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    while (!proc_try_reap(p)) {
        int left = remaining_ms(deadline);
        if (left == 0) {
            kill(p->pid, SIGKILL);
            h_fail("child %d still running after %d ms; stdout:\n%s\nstderr:\n%s", (int)p->pid,
                   timeout_ms, buf_text(&p->out), buf_text(&p->err));
        }
        proc_pump(p, left < 20 ? left : 20);
    }
    /* Collect what it wrote last (bounded: a grandchild could hold the
     * pipes open). */
    int64_t drain_deadline = h_now_ms() + 2000;
    while ((p->out_fd >= 0 || p->err_fd >= 0) && remaining_ms(drain_deadline) > 0)
        proc_pump(p, remaining_ms(drain_deadline));
    return p->status;
}

const char *h_proc_stdout(h_proc *p) { return buf_text(&p->out); }
const char *h_proc_stderr(h_proc *p) { return buf_text(&p->err); }

int h_run(const char *const *argv, int timeout_ms, const char **out, const char **err)
{
    h_proc *p = proc_start(argv, open_devnull(O_RDONLY), -1);
    int status = h_proc_wait(p, timeout_ms);
    if (out)
        *out = h_proc_stdout(p);
    if (err)
        *err = h_proc_stderr(p);
    return status;
}

/* ---- the daemon --------------------------------------------------------------- */

static void daemon_log_append(h_daemon *d, const char *data, size_t len)
{
    pthread_mutex_lock(&d->lock);
    if (d->log_len + len + 1 > d->log_cap && d->log_len + len < LOG_CAP) {
        size_t cap = d->log_cap ? d->log_cap : 4096;
        while (cap < d->log_len + len + 1)
            cap *= 2;
        char *grown = realloc(d->log, cap);
        if (grown) {
            d->log = grown;
            d->log_cap = cap;
        }
    }
    /* Past LOG_CAP (or out of memory) the rest is read and dropped. */
    if (d->log_len + len + 1 <= d->log_cap) {
        memcpy(d->log + d->log_len, data, len);
        d->log_len += len;
        d->log[d->log_len] = '\0';
    }
    pthread_mutex_unlock(&d->lock);
}

/* Keeps reading the daemon's output until EOF so that it never blocks on a
 * full pipe. */
static void *drain_daemon_log(void *arg)
{
    h_daemon *d = arg;
    char chunk[4096];
    for (;;) {
        ssize_t n = read(d->log_fd, chunk, sizeof chunk);
        if (n > 0)
            daemon_log_append(d, chunk, (size_t)n);
        else if (n == 0 || errno != EINTR)
            break;
    }
    return NULL;
}

static int daemon_try_reap(h_daemon *d, int block)
{
    if (d->reaped)
        return 1;
    int wstatus;
    pid_t r;
    while ((r = waitpid(d->pid, &wstatus, block ? 0 : WNOHANG)) < 0 && errno == EINTR)
        ;
    if (r == d->pid) {
        d->reaped = 1;
        d->status = h_exit_status(wstatus);
    }
    return d->reaped;
}

/* Waits up to timeout_ms; returns 1 when the daemon has exited. */
static int daemon_wait_exit(h_daemon *d, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    while (!daemon_try_reap(d, 0)) {
        if (remaining_ms(deadline) == 0)
            return 0;
        h_sleep_ms(10);
    }
    return 1;
}

/* SIGTERM, a grace period, SIGKILL. Returns the exit status. */
static int daemon_terminate(h_daemon *d)
{
    if (!d->reaped) {
        kill(d->pid, SIGTERM);
        if (!daemon_wait_exit(d, STOP_GRACE_MS * SA_TEST_TIME_SCALE)) {
            fprintf(stderr, "harness: syncasyncd %d ignored SIGTERM for %d ms, killing it\n",
                    (int)d->pid, STOP_GRACE_MS * SA_TEST_TIME_SCALE);
            kill(d->pid, SIGKILL);
            daemon_try_reap(d, 1);
            d->status = -1;
        }
    }
    return d->status;
}

static void release_daemon(void *ptr)
{
    h_daemon *d = ptr;
    int status = daemon_terminate(d);
    if (status != 0 && !d->killed) {
        fprintf(stderr, "harness: syncasyncd %d exited with status %d after SIGTERM, not 0\n",
                (int)d->pid, status);
        print_daemon_tail(d);
        teardown_failed = 1;
    } else if (getenv("SA_TEST_VERBOSE")) {
        print_daemon_tail(d);
    }
    if (d->drainer_running)
        pthread_join(d->drainer, NULL);
    close_fd(&d->log_fd);
    pthread_mutex_destroy(&d->lock);
    free(d->log);
    free(d);
}

/* Copies the PORT of "HOST:PORT" at `start` (ended by a blank or the end
 * of its line, which must be complete) into port. Returns 1 when found. */
static int copy_listening_port(const char *start, char *port, size_t cap)
{
    const char *end = start;
    while (*end && *end != '\n' && *end != ' ' && *end != '\t')
        end++;
    const char *colon = NULL;
    for (const char *c = start; c < end; c++)
        if (*c == ':')
            colon = c;
    size_t digits = colon ? (size_t)(end - colon - 1) : 0;
    if (!*end || !colon || digits == 0 || digits >= cap ||
        strspn(colon + 1, "0123456789") < digits)
        return 0;
    memcpy(port, colon + 1, digits);
    port[digits] = '\0';
    return 1;
}

static const char listening_marker[] = "listening on ";

/* Finds "listening on HOST:PORT" in a complete line of the log so far and
 * copies PORT. Returns 1 when found. */
static int find_listening_port(h_daemon *d)
{
    pthread_mutex_lock(&d->lock);
    const char *at = d->log ? strstr(d->log, listening_marker) : NULL;
    int found = at && copy_listening_port(at + sizeof listening_marker - 1, d->port,
                                          sizeof d->port);
    pthread_mutex_unlock(&d->lock);
    return found;
}

/* The same for the first line of a TLS listener ("... (TLS)"). */
static int find_tls_listening_port(h_daemon *d, char *port, size_t cap)
{
    static const char tls_suffix[] = " (TLS)";
    pthread_mutex_lock(&d->lock);
    int found = 0;
    for (const char *at = d->log ? strstr(d->log, listening_marker) : NULL; at && !found;
         at = strstr(at + 1, listening_marker)) {
        const char *eol = strchr(at, '\n');
        const char *tls = strstr(at, tls_suffix);
        if (eol && tls && tls < eol)
            found = copy_listening_port(at + sizeof listening_marker - 1, port, cap);
    }
    pthread_mutex_unlock(&d->lock);
    return found;
}

const char *h_daemon_tls_port(h_daemon *d)
{
    char port[sizeof d->port];
    int64_t deadline = h_now_ms() + DAEMON_READY_MS;
    while (!find_tls_listening_port(d, port, sizeof port)) {
        /* Every listener is logged before "ready": no need to wait longer. */
        if (h_daemon_log_contains(d, " ready: engine") && !find_tls_listening_port(d, port,
                                                                               sizeof port))
            h_fail("syncasyncd is ready without a TLS listener");
        if (h_now_ms() >= deadline)
            h_fail("syncasyncd did not log \"listening on ... (TLS)\" within %d ms",
                   DAEMON_READY_MS);
        h_sleep_ms(10);
    }
    return h_fmt("%s", port);
}

h_daemon *h_daemon_start(const char *config, const char *const *overrides)
{
    return h_daemon_start_wrapped(NULL, config, overrides);
}

h_daemon *h_daemon_start_wrapped(const char *const *wrapper, const char *config,
                                 const char *const *overrides)
{
    const char *engine_opt = h_fmt("server.engine=%s", h_engine);
    size_t n_over = 0, n_wrap = 0;
    while (overrides && overrides[n_over])
        n_over++;
    while (wrapper && wrapper[n_wrap])
        n_wrap++;
    int log_pipe[2];
    make_pipe(log_pipe);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* SA_TEST_WORKERS=N runs every test's daemon with N event loops (the
     * async engine's multi-loop paths under the whole suite). */
    const char *workers = getenv("SA_TEST_WORKERS");
    const char **argv = calloc(10 + n_wrap + 2 * n_over, sizeof *argv);
    h_daemon *d = calloc(1, sizeof *d);
    if (devnull < 0 || !argv || !d || pthread_mutex_init(&d->lock, NULL) != 0) {
        if (devnull >= 0)
            close(devnull);
        close(log_pipe[0]);
        close(log_pipe[1]);
        free(argv);
        free(d);
        h_fail("cannot prepare to start syncasyncd (out of memory or no /dev/null)");
    }
    size_t a = 0;
    for (size_t i = 0; i < n_wrap; i++)
        argv[a++] = wrapper[i];
    argv[a++] = SA_TEST_SYNCASYNCD;
    argv[a++] = "-c";
    argv[a++] = config ? config : SA_TEST_DEFAULT_CONF;
    argv[a++] = "-o";
    argv[a++] = engine_opt;
    argv[a++] = "-o";
    argv[a++] = "server.listen=127.0.0.1:0";
    if (workers && *workers) {
        argv[a++] = "-o";
        argv[a++] = h_fmt("server.workers=%s", workers);
    }
    for (size_t i = 0; i < n_over; i++) {
        argv[a++] = "-o";
        argv[a++] = overrides[i];
    }
    argv[a] = NULL;

    d->log_fd = log_pipe[0];
    d->pid = spawn(argv, devnull, log_pipe[1], log_pipe[1]);
    close(devnull);
    close(log_pipe[1]);
    free(argv);
    if (d->pid < 0) {
        close(d->log_fd);
        pthread_mutex_destroy(&d->lock);
        free(d);
        h_fail("fork: %s", strerror(errno));
    }
    own(d, release_daemon);

    /* A wrapper such as valgrind makes the start many times slower. */
    int ready_ms = wrapper ? 5 * DAEMON_READY_MS : DAEMON_READY_MS;
    int64_t deadline = h_now_ms() + ready_ms;
    while (!find_listening_port(d)) {
        int left = remaining_ms(deadline);
        if (left == 0)
            h_fail("syncasyncd did not log \"listening on\" within %d ms", ready_ms);
        struct pollfd pfd = {.fd = d->log_fd, .events = POLLIN};
        if (poll(&pfd, 1, left) <= 0)
            continue;
        char chunk[4096];
        ssize_t got = read(d->log_fd, chunk, sizeof chunk);
        if (got > 0) {
            daemon_log_append(d, chunk, (size_t)got);
        } else if (got == 0 || errno != EINTR) {
            daemon_wait_exit(d, 2000);
            h_fail("syncasyncd ended before listening (exit status %d)",
                   d->reaped ? d->status : -1);
        }
    }
    if (pthread_create(&d->drainer, NULL, drain_daemon_log, d) != 0)
        h_fail("cannot start the log drainer thread");
    d->drainer_running = 1;
    return d;
}

h_daemon *h_daemon_startv(const char *config, ...)
{
    const char *overrides[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, config);
    const char *o;
    while ((o = va_arg(ap, const char *)) != NULL) {
        if (n + 1 >= sizeof overrides / sizeof *overrides) {
            va_end(ap);
            h_fail("too many overrides for h_daemon_startv");
        }
        overrides[n++] = o;
    }
    va_end(ap);
    overrides[n] = NULL;
    return h_daemon_start(config, overrides);
}

const char *h_daemon_port(const h_daemon *d) { return d->port; }
pid_t h_daemon_pid(const h_daemon *d) { return d->pid; }

void h_daemon_signal(h_daemon *d, int sig)
{
    if (!d->reaped && kill(d->pid, sig) != 0)
        h_fail("kill(%d, %d): %s", (int)d->pid, sig, strerror(errno));
}

void h_daemon_kill(h_daemon *d)
{
    h_daemon_signal(d, SIGKILL);
    d->killed = 1;
    int status = h_daemon_wait(d, 5000);
    if (status != 128 + SIGKILL)
        h_fail("syncasyncd %d exited with %d, not by SIGKILL", (int)d->pid, status);
}

int h_daemon_wait(h_daemon *d, int timeout_ms)
{
    if (!daemon_wait_exit(d, timeout_ms)) {
        h_fail("syncasyncd %d still running %d ms after being asked to stop", (int)d->pid,
               timeout_ms);
    }
    return d->status;
}

void h_daemon_stop(h_daemon *d)
{
    int status = daemon_terminate(d);
    if (status != 0)
        h_fail("syncasyncd exited with status %d after SIGTERM, expected 0", status);
    release_owned(d);
}

int h_daemon_log_contains(h_daemon *d, const char *needle)
{
    pthread_mutex_lock(&d->lock);
    int found = d->log && strstr(d->log, needle) != NULL;
    pthread_mutex_unlock(&d->lock);
    return found;
}

/* ---- clients ------------------------------------------------------------------ */

sa_client *h_connect(const h_daemon *d)
{
    char err[256] = "";
    sa_client *c = sa_client_connect("127.0.0.1", d->port, H_REPLY_MS, err, sizeof err);
    if (!c)
        h_fail("cannot connect to 127.0.0.1:%s: %s", d->port, err);
    return own(c, release_client);
}

sa_client *h_connect_tls(const char *host, const char *port, const sa_client_tls *tls)
{
    char err[256] = "";
    sa_client *c = sa_client_connect_tls(host, port, tls, H_REPLY_MS, err, sizeof err, NULL);
    if (!c)
        h_fail("cannot connect with TLS to %s:%s: %s", host, port, err);
    return own(c, release_client);
}

/* Says hello as `name` on c; fails unless the reply is ok. */
static sa_client *hello_ok(sa_client *c, const char *name)
{
    cJSON *reply = NULL;
    int rc = sa_client_hello(c, name, NULL, &reply, H_REPLY_MS);
    if (rc != SA_CLIENT_OK)
        h_fail("hello as %s: status %d (%s)", name, rc, sa_client_error(c));
    h_keep(reply);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(reply, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "ok") != 0)
        h_fail("hello as %s was refused: %s", name, h_json(reply));
    return c;
}

sa_client *h_login(const h_daemon *d, const char *name)
{
    return hello_ok(h_connect(d), name);
}

sa_client *h_login_tls(const char *port, const char *name, const sa_client_tls *tls)
{
    return hello_ok(h_connect_tls("127.0.0.1", port, tls), name);
}

void h_client_close(sa_client *c) { release_owned(c); }

void h_send_raw(sa_client *c, const void *bytes, size_t len)
{
    if (sa_client_send_raw(c, bytes, len) != 0)
        h_fail("sending %zu raw bytes failed: %s", len, sa_client_error(c));
}

void h_send_payload(sa_client *c, const void *payload, size_t len)
{
    unsigned char *frame = malloc(len + 4);
    if (!frame)
        h_fail("out of memory");
    frame[0] = (unsigned char)(len >> 24);
    frame[1] = (unsigned char)(len >> 16);
    frame[2] = (unsigned char)(len >> 8);
    frame[3] = (unsigned char)len;
    memcpy(frame + 4, payload, len);
    int rc = sa_client_send_raw(c, frame, len + 4);
    free(frame);
    if (rc != 0)
        h_fail("sending a %zu-byte frame failed: %s", len, sa_client_error(c));
}

static cJSON *parse_or_fail(const char *json)
{
    cJSON *msg = cJSON_Parse(json);
    if (!msg)
        h_fail("test bug: not JSON: %s", json);
    return h_keep(msg);
}

void h_send(sa_client *c, const char *json)
{
    cJSON *msg = parse_or_fail(json);
    if (sa_client_send(c, msg) != 0)
        h_fail("sending %s failed: %s", json, sa_client_error(c));
}

static const char *status_text(int rc)
{
    switch (rc) {
    case SA_CLIENT_OK:
        return "a frame";
    case SA_CLIENT_TIMEOUT:
        return "nothing (timeout)";
    case SA_CLIENT_CLOSED:
        return "the connection closed";
    default:
        return "an error";
    }
}

cJSON *h_recv(sa_client *c, int timeout_ms)
{
    cJSON *frame = NULL;
    int rc = sa_client_recv(c, &frame, timeout_ms);
    if (rc != SA_CLIENT_OK)
        h_fail("expected a frame within %d ms, got %s (%s)", timeout_ms, status_text(rc),
               rc == SA_CLIENT_ERROR ? sa_client_error(c) : "");
    return h_keep(frame);
}

static const char *type_of(const cJSON *frame)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(frame, "type");
    return cJSON_IsString(type) ? type->valuestring : NULL;
}

cJSON *h_expect(sa_client *c, const char *type, int timeout_ms)
{
    cJSON *frame = NULL;
    int rc = sa_client_recv(c, &frame, timeout_ms);
    if (rc != SA_CLIENT_OK)
        h_fail("expected a \"%s\" frame within %d ms, got %s %s", type, timeout_ms,
               status_text(rc), rc == SA_CLIENT_ERROR ? sa_client_error(c) : "");
    h_keep(frame);
    const char *got = type_of(frame);
    if (!got || strcmp(got, type) != 0)
        h_fail("expected a \"%s\" frame, got %s", type, h_json(frame));
    return frame;
}

cJSON *h_expect_error(sa_client *c, const char *code, int timeout_ms)
{
    cJSON *frame = NULL;
    int rc = sa_client_recv(c, &frame, timeout_ms);
    if (rc != SA_CLIENT_OK)
        h_fail("expected error %s within %d ms, got %s %s", code, timeout_ms, status_text(rc),
               rc == SA_CLIENT_ERROR ? sa_client_error(c) : "");
    h_keep(frame);
    const char *got = type_of(frame);
    const cJSON *got_code = cJSON_GetObjectItemCaseSensitive(frame, "code");
    if (!got || strcmp(got, "error") != 0 || !cJSON_IsString(got_code) ||
        strcmp(got_code->valuestring, code) != 0)
        h_fail("expected error %s, got %s", code, h_json(frame));
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(frame, "message")))
        h_fail("error %s has no string \"message\": %s", code, h_json(frame));
    return frame;
}

void h_expect_closed(sa_client *c, int timeout_ms)
{
    cJSON *frame = NULL;
    int rc = sa_client_recv(c, &frame, timeout_ms);
    if (rc == SA_CLIENT_CLOSED)
        return;
    if (rc == SA_CLIENT_OK)
        h_fail("expected the server to close the connection, got %s", h_json(h_keep(frame)));
    h_fail("expected the server to close the connection within %d ms, got %s %s", timeout_ms,
           status_text(rc), rc == SA_CLIENT_ERROR ? sa_client_error(c) : "");
}

void h_expect_bye_closed(sa_client *c, const char *reason, int timeout_ms)
{
    cJSON *bye = NULL;
    int rc = sa_client_recv(c, &bye, timeout_ms);
    if (rc != SA_CLIENT_OK)
        h_fail("expected bye %s within %d ms, got %s %s", reason, timeout_ms, status_text(rc),
               rc == SA_CLIENT_ERROR ? sa_client_error(c) : "");
    h_keep(bye);
    const char *type = type_of(bye);
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(bye, "reason");
    if (!type || strcmp(type, "bye") != 0 || !cJSON_IsString(got) ||
        strcmp(got->valuestring, reason) != 0)
        h_fail("expected bye %s, got %s", reason, h_json(bye));
    h_assert_absent(bye, "id");
    h_assert_absent(bye, "re");
    h_expect_closed(c, timeout_ms);
}

void h_expect_silence(sa_client *c, int ms)
{
    cJSON *frame = NULL;
    int rc = sa_client_recv(c, &frame, ms);
    if (rc == SA_CLIENT_TIMEOUT)
        return;
    if (rc == SA_CLIENT_OK)
        h_fail("expected nothing for %d ms, got %s", ms, h_json(h_keep(frame)));
    h_fail("expected nothing for %d ms, got %s %s", ms, status_text(rc),
           rc == SA_CLIENT_ERROR ? sa_client_error(c) : "");
}

cJSON *h_request(sa_client *c, const char *json)
{
    cJSON *req = parse_or_fail(json);
    cJSON *reply = NULL;
    int rc = sa_client_request(c, req, &reply, H_REPLY_MS);
    if (rc != SA_CLIENT_OK)
        h_fail("request %s: expected a reply within %d ms, got %s %s", json, H_REPLY_MS,
               status_text(rc), rc == SA_CLIENT_ERROR ? sa_client_error(c) : "");
    return h_keep(reply);
}

cJSON *h_request_ok(sa_client *c, const char *json)
{
    cJSON *reply = h_request(c, json);
    const char *type = type_of(reply);
    if (!type || strcmp(type, "ok") != 0)
        h_fail("request %s: expected ok, got %s", json, h_json(reply));
    return reply;
}

cJSON *h_request_error(sa_client *c, const char *json, const char *code)
{
    cJSON *reply = h_request(c, json);
    const char *type = type_of(reply);
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(reply, "code");
    if (!type || strcmp(type, "error") != 0 || !cJSON_IsString(got) ||
        strcmp(got->valuestring, code) != 0)
        h_fail("request %s: expected error %s, got %s", json, code, h_json(reply));
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(reply, "message")))
        h_fail("request %s: error %s has no string \"message\": %s", json, code, h_json(reply));
    return reply;
}

/* ---- frame accessors ------------------------------------------------------------ */

const char *h_json(const cJSON *frame)
{
    if (!frame)
        return "(null)";
    char *text = cJSON_PrintUnformatted(frame);
    return keep_string(text);
}

const char *h_get_str(const cJSON *frame, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(frame, key);
    if (!cJSON_IsString(item))
        h_fail("expected a string \"%s\" in %s", key, h_json(frame));
    return item->valuestring;
}

double h_get_num(const cJSON *frame, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(frame, key);
    if (!cJSON_IsNumber(item))
        h_fail("expected a number \"%s\" in %s", key, h_json(frame));
    return item->valuedouble;
}

void h_assert_str(const cJSON *frame, const char *key, const char *want)
{
    const char *got = h_get_str(frame, key);
    if (strcmp(got, want) != 0)
        h_fail("expected \"%s\":\"%s\" in %s", key, want, h_json(frame));
}

void h_assert_absent(const cJSON *frame, const char *key)
{
    if (cJSON_GetObjectItemCaseSensitive(frame, key))
        h_fail("unexpected member \"%s\" in %s", key, h_json(frame));
}
