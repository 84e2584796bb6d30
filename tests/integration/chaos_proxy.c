#include "chaos_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef SA_TEST_SA_CHAOS
#error "SA_TEST_SA_CHAOS (path of sa-chaos) must be defined by the build"
#endif
/* Sanitizer builds run every program several times slower. */
#ifndef SA_TEST_TIME_SCALE
#define SA_TEST_TIME_SCALE 1
#endif

#define PROXY_READY_MS (10000 * SA_TEST_TIME_SCALE)
#define PROXY_STOP_MS (5000 * SA_TEST_TIME_SCALE)

static proxy *proxies; /* the current test's, newest first */


const char *proxy_log(const proxy *p) { return p->log ? p->log : ""; }

/* Reads what the proxy logged, waiting up to `ms` for the first bytes.
 * Never fails the test (teardown uses it too). */
static void proxy_read_log(proxy *p, int ms)
{
    while (p->log_fd >= 0) {
        struct pollfd pfd = {.fd = p->log_fd, .events = POLLIN};
        if (poll(&pfd, 1, ms) <= 0)
            return;
        char chunk[4096];
        ssize_t n = read(p->log_fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(p->log_fd);
            p->log_fd = -1;
            return;
        }
        /* Out of memory, this part of the log is dropped: a log is only
         * looked at, never worth failing a teardown for. */
        char *grown = realloc(p->log, p->log_len + (size_t)n + 1);
        if (grown) {
            memcpy(grown + p->log_len, chunk, (size_t)n);
            p->log_len += (size_t)n;
            grown[p->log_len] = '\0';
            p->log = grown;
        }
        ms = 0;
    }
}

const char *proxy_wait_log(proxy *p, const char *needle, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        const char *at = p->log ? strstr(p->log, needle) : NULL;
        const char *end = at ? strchr(at, '\n') : NULL;
        if (end) {
            const char *start = at;
            while (start > p->log && start[-1] != '\n')
                start--;
            return h_fmt("%.*s", (int)(end - start), start);
        }
        int64_t left = deadline - h_now_ms();
        if (left <= 0 || p->log_fd < 0)
            h_fail("sa-chaos did not log \"%s\" within %d ms; its log:\n%s", needle, timeout_ms,
                   proxy_log(p));
        proxy_read_log(p, (int)left);
    }
}

/* The port of "listening on HOST:PORT", once logged. */
static int find_listening_port(proxy *p)
{
    static const char marker[] = "listening on ";
    const char *at = p->log ? strstr(p->log, marker) : NULL;
    if (!at)
        return 0;
    const char *start = at + sizeof marker - 1;
    size_t len = strcspn(start, " \n");
    if (start[len] == '\0')
        return 0; /* the line is not complete yet */
    const char *colon = memrchr(start, ':', len);
    size_t digits = colon ? len - (size_t)(colon + 1 - start) : 0;
    if (digits == 0 || digits >= sizeof p->port || strspn(colon + 1, "0123456789") != digits)
        h_fail("sa-chaos logged a listening line without a port:\n%s", proxy_log(p));
    memcpy(p->port, colon + 1, digits);
    p->port[digits] = '\0';
    return 1;
}

proxy *proxy_start(const char *upstream_port, const char *seed, const char *const *faults)
{
    return proxy_start_at("0", upstream_port, seed, faults);
}

proxy *proxy_start_at(const char *listen_port, const char *upstream_port, const char *seed,
                      const char *const *faults)
{
    const char *argv[32];
    size_t n = 0;
    argv[n++] = SA_TEST_SA_CHAOS;
    argv[n++] = "--listen";
    argv[n++] = h_fmt("127.0.0.1:%s", listen_port);
    argv[n++] = "--connect";
    argv[n++] = h_fmt("127.0.0.1:%s", upstream_port);
    argv[n++] = "--seed";
    argv[n++] = seed;
    for (size_t i = 0; faults && faults[i]; i++) {
        if (n + 1 >= sizeof argv / sizeof *argv)
            h_fail("test bug: too many sa-chaos options");
        argv[n++] = faults[i];
    }
    argv[n] = NULL;

    int log_pipe[2];
    if (pipe2(log_pipe, O_CLOEXEC) != 0)
        h_fail("pipe: %s", strerror(errno));
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    proxy *p = calloc(1, sizeof *p);
    if (devnull < 0 || !p) {
        close(log_pipe[0]);
        close(log_pipe[1]);
        if (devnull >= 0)
            close(devnull);
        free(p);
        h_fail("cannot prepare to start sa-chaos");
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(log_pipe[1], 2) < 0)
            _exit(127);
        if (close_range(3, ~0u, 0) != 0)
            _exit(127); /* holding the test's sockets open would hide their closing */
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int fork_errno = errno;
    close(devnull);
    close(log_pipe[1]);
    if (pid < 0) {
        close(log_pipe[0]);
        free(p);
        h_fail("fork: %s", strerror(fork_errno));
    }
    p->pid = pid;
    p->log_fd = log_pipe[0];
    p->next = proxies;
    proxies = p;

    int64_t deadline = h_now_ms() + PROXY_READY_MS;
    while (!find_listening_port(p)) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0 || p->log_fd < 0)
            h_fail("sa-chaos did not log \"listening on\" within %d ms; its log:\n%s",
                   PROXY_READY_MS, proxy_log(p));
        proxy_read_log(p, (int)left);
    }
    return p;
}

/* SIGTERM, then waits; returns the exit status, or -1 when it had to be
 * killed. Never fails the test (teardown uses it too). */
static int proxy_terminate(proxy *p)
{
    if (!p->reaped) {
        kill(p->pid, SIGTERM);
        int64_t deadline = h_now_ms() + PROXY_STOP_MS;
        while (!p->reaped) {
            int wstatus;
            if (waitpid(p->pid, &wstatus, WNOHANG) == p->pid) {
                p->reaped = 1;
                p->status = h_exit_status(wstatus);
            } else if (h_now_ms() > deadline) {
                kill(p->pid, SIGKILL);
                while (waitpid(p->pid, &wstatus, 0) < 0 && errno == EINTR)
                    ;
                p->reaped = 1;
                p->status = -1;
            } else if (p->log_fd >= 0) {
                proxy_read_log(p, 10);
            } else {
                h_sleep_ms(10);
            }
        }
    }
    proxy_read_log(p, 0);
    return p->status;
}

void proxy_stop(proxy *p)
{
    int status = proxy_terminate(p);
    if (status != 0)
        h_fail("sa-chaos exited with status %d after SIGTERM, expected 0; its log:\n%s", status,
               proxy_log(p));
}

int proxy_stop_all(void)
{
    int failed = 0;
    while (proxies) {
        proxy *p = proxies;
        proxies = p->next;
        int status = proxy_terminate(p);
        if (status != 0) {
            fprintf(stderr, "sa-chaos %d exited with status %d after SIGTERM, not 0; its log:\n%s\n",
                    (int)p->pid, status, proxy_log(p));
            failed = 1;
        } else if (getenv("SA_TEST_VERBOSE")) {
            fprintf(stderr, "---- sa-chaos %d log ----\n%s----\n", (int)p->pid, proxy_log(p));
        }
        if (p->log_fd >= 0)
            close(p->log_fd);
        free(p->log);
        free(p);
    }
    return failed ? -1 : 0;
}
