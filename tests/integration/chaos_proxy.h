/*
 * sa-chaos (tools/sa-chaos) as a test fixture: started in front of a
 * daemon, its log read as it goes, stopped with SIGTERM. Started and
 * stopped here rather than with h_spawn, so that every test can require
 * exit status 0 after SIGTERM (under ASan that also means no leak).
 *
 * Ownership: the proxies belong to this module; proxy_stop_all, called by
 * the test's teardown before h_teardown, stops and frees what is left.
 */
#ifndef SA_TEST_CHAOS_PROXY_H
#define SA_TEST_CHAOS_PROXY_H

#include <stddef.h>
#include <sys/types.h>

typedef struct proxy {
    struct proxy *next;
    pid_t pid;
    int reaped, status;
    int log_fd; /* read end of its stderr; -1 after EOF */
    char *log;  /* what it logged so far, NUL-terminated */
    size_t log_len;
    char port[16];
} proxy;

/* Starts sa-chaos in front of 127.0.0.1:upstream_port with --seed `seed`
 * and the fault options `faults` (NULL-terminated), and waits until it
 * listens (its port: p->port). */
proxy *proxy_start(const char *upstream_port, const char *seed, const char *const *faults);
/* The same, listening on 127.0.0.1:listen_port (a proxy started again
 * where a stopped one was). */
proxy *proxy_start_at(const char *listen_port, const char *upstream_port, const char *seed,
                      const char *const *faults);
/* What it logged so far. */
const char *proxy_log(const proxy *p);
/* The whole log line holding `needle`, once the proxy has logged it. */
const char *proxy_wait_log(proxy *p, const char *needle, int timeout_ms);
/* SIGTERM, then waits; fails the test unless it exits 0. */
void proxy_stop(proxy *p);
/* For teardown: stops every proxy left; returns 0, or -1 when one did not
 * exit 0 (said why on stderr). Never fails the test itself. */
int proxy_stop_all(void);

#endif
