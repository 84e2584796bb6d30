/*
 * Integration test harness: runs the real syncasyncd (and sa-client) as
 * child processes on loopback ports and talks to them through the client
 * library, inside cmocka tests.
 *
 * Ownership: everything a h_* function returns (daemons, clients, child
 * processes, received frames, paths, captured output) belongs to the
 * harness and is released by h_teardown, which every test group installs
 * as its per-test teardown. Tests may release things earlier with the
 * matching h_*_close/stop call. A failed expectation prints what was
 * expected and what came instead, the tail of each running daemon's log,
 * and fails the current test (cmocka long-jumps out; teardown still runs).
 *
 * Every wait is bounded; all timeouts are in milliseconds.
 */
#ifndef SA_TEST_HARNESS_H
#define SA_TEST_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "sa_client.h"

/* How long a reply that should come at once may take (generous: the daemon
 * may run under AddressSanitizer on a loaded machine). */
#define H_REPLY_MS 5000
/* How long to watch for something that must not arrive. */
#define H_QUIET_MS 300

/* A test of a group: per-test setup and teardown by the harness. Expands
 * only where <cmocka.h> is included. */
#define H_TEST(fn) cmocka_unit_test_setup_teardown(fn, h_setup, h_teardown)

/* The engine under test ("sync" or "async"), from argv[1]. */
extern const char *h_engine;

/* Reads argv (ENGINE) and exits with status 2 and a usage line when it is
 * wrong; with SA_TEST_FILTER set in the environment (a cmocka pattern such
 * as "*reconnect*") runs only the tests it matches. Call first in main. */
void h_init(int argc, char **argv, const char *program);

/* cmocka per-test setup/teardown: teardown closes every client, kills
 * every child process, stops every daemon (failing the test when one does
 * not exit 0 after SIGTERM) and removes the test's temporary folder. */
int h_setup(void **state);
int h_teardown(void **state);

/* Prints a message (printf format) with the daemons' log tails and fails
 * the current test. */
void h_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- files ------------------------------------------------------------ */

/* The current test's temporary folder (made on first use). */
const char *h_tempdir(void);
/* Writes `content` to NAME inside the temporary folder; returns its path. */
const char *h_write_file(const char *name, const char *content);
/* printf into a string the harness owns. */
const char *h_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the daemon ------------------------------------------------------- */

typedef struct h_daemon h_daemon;

/* Starts syncasyncd -c CONFIG (NULL: the source tree's default INI) with
 * -o server.engine=<engine under test> -o server.listen=127.0.0.1:0 and
 * then each override of the NULL-terminated list ("section.key=value"),
 * and waits (10 s at most) for its "listening on" line. Fails the test when
 * it does not start. */
h_daemon *h_daemon_start(const char *config, const char *const *overrides);
/* The same under `wrapper` (a NULL-terminated argv, such as valgrind and
 * its options, that runs the program named after it; NULL: none). */
h_daemon *h_daemon_start_wrapped(const char *const *wrapper, const char *config,
                                 const char *const *overrides);
/* The same with the overrides as NULL-terminated arguments. */
h_daemon *h_daemon_startv(const char *config, ...) __attribute__((sentinel));
const char *h_daemon_port(const h_daemon *d);
/* Its process id (for /proc: memory, descriptors). */
pid_t h_daemon_pid(const h_daemon *d);
/* The port of the daemon's first TLS listener (its "listening on
 * HOST:PORT (TLS)" line, waited for like the first one). */
const char *h_daemon_tls_port(h_daemon *d);
/* Sends a signal to the daemon. */
void h_daemon_signal(h_daemon *d, int sig);
/* Waits up to timeout_ms for the daemon to exit; returns its exit status,
 * or fails the test when it is still running (it is then killed). */
int h_daemon_wait(h_daemon *d, int timeout_ms);
/* SIGKILL, and waits for it to die (a crash, on purpose: teardown does not
 * count it as a failure). */
void h_daemon_kill(h_daemon *d);
/* SIGTERM, wait 5 s, SIGKILL. Fails the test unless the exit status is 0. */
void h_daemon_stop(h_daemon *d);
/* 1 when the daemon's log so far contains `needle`. */
int h_daemon_log_contains(h_daemon *d, const char *needle);

/* ---- clients ----------------------------------------------------------- */

/* Connects to the daemon (fails the test when it cannot). */
sa_client *h_connect(const h_daemon *d);
/* Connects and says hello as `name`; fails unless the reply is ok. */
sa_client *h_login(const h_daemon *d, const char *name);
/* The same over TLS: to host:port (a TLS listener), and to 127.0.0.1:port. */
sa_client *h_connect_tls(const char *host, const char *port, const sa_client_tls *tls);
sa_client *h_login_tls(const char *port, const char *name, const sa_client_tls *tls);
/* Closes a client early (it is otherwise closed at teardown). */
void h_client_close(sa_client *c);

/* Sends the JSON text as one frame (it must parse; ids are kept). */
void h_send(sa_client *c, const char *json);
/* Sends the bytes as one frame payload, with its 4-byte length prefix. */
void h_send_payload(sa_client *c, const void *payload, size_t len);
/* Sends bytes exactly as given. */
void h_send_raw(sa_client *c, const void *bytes, size_t len);

/* The next frame within timeout_ms, whatever it is. */
cJSON *h_recv(sa_client *c, int timeout_ms);
/* The next frame, which must have "type" == type. */
cJSON *h_expect(sa_client *c, const char *type, int timeout_ms);
/* The next frame, which must be an error with "code" == code. */
cJSON *h_expect_error(sa_client *c, const char *code, int timeout_ms);
/* The next frame must be bye with `reason`, and then the connection must
 * close (EOF) within timeout_ms as well. */
void h_expect_bye_closed(sa_client *c, const char *reason, int timeout_ms);
/* The server must close the connection (EOF, nothing else) in time. */
void h_expect_closed(sa_client *c, int timeout_ms);
/* Nothing may arrive for `ms`. */
void h_expect_silence(sa_client *c, int ms);

/* Sends the JSON text as a request (the library adds a fresh id) and
 * returns the reply (ok or error). */
cJSON *h_request(sa_client *c, const char *json);
/* The same, but the reply must be ok / an error with `code`. */
cJSON *h_request_ok(sa_client *c, const char *json);
cJSON *h_request_error(sa_client *c, const char *json, const char *code);

/* Frame accessors: the member's value, failing the test when it is
 * missing or of another JSON type. */
const char *h_get_str(const cJSON *frame, const char *key);
double h_get_num(const cJSON *frame, const char *key);
/* Fails unless frame[key] is the string `want`. */
void h_assert_str(const cJSON *frame, const char *key, const char *want);
/* Fails when frame has the member `key`. */
void h_assert_absent(const cJSON *frame, const char *key);
/* The frame as compact JSON text (owned by the harness), for messages. */
const char *h_json(const cJSON *frame);
/* Hands a cJSON to the harness, which frees it at teardown. */
cJSON *h_keep(cJSON *json);
/* Hands anything to the harness, which calls release(ptr) at teardown. */
void *h_own(void *ptr, void (*release)(void *ptr));

/* ---- child processes ---------------------------------------------------- */

typedef struct h_proc h_proc;

/* Starts argv[0] (a path) with a pipe to its stdin and from its stdout;
 * its stderr is kept apart (see h_proc_stderr). */
h_proc *h_spawn(const char *const *argv);
/* Writes a line (a '\n' is added) to the child's stdin. */
void h_proc_write_line(h_proc *p, const char *line);
void h_proc_close_stdin(h_proc *p);
/* Reads the child's stdout until a line containing `needle` shows up
 * (returned, owned by the harness); fails after timeout_ms. */
const char *h_proc_expect_line(h_proc *p, const char *needle, int timeout_ms);
/* Fails when a line containing `needle` shows up within `ms`. */
void h_proc_expect_no_line(h_proc *p, const char *needle, int ms);
/* Reads the child's output until its stderr holds `needle` at least
 * `count` times; fails after timeout_ms. */
void h_proc_expect_stderr(h_proc *p, const char *needle, int count, int timeout_ms);
/* Waits for the child to exit; returns its exit status (128 + signal when
 * killed by one) or fails the test when it is still running. */
int h_proc_wait(h_proc *p, int timeout_ms);
/* Everything the child wrote to stdout / stderr so far. */
const char *h_proc_stdout(h_proc *p);
const char *h_proc_stderr(h_proc *p);

/* A waitpid status as an exit status: 128 + the signal for a process
 * killed by one, -1 when it is neither. */
int h_exit_status(int wstatus);

/* Runs argv to completion (stdin is /dev/null), at most timeout_ms; returns
 * the exit status and, when out/err are not NULL, what it printed. */
int h_run(const char *const *argv, int timeout_ms, const char **out, const char **err);

/* ---- time --------------------------------------------------------------- */

int64_t h_now_ms(void);      /* monotonic */
int64_t h_wall_ms(void);     /* Unix epoch */
void h_sleep_ms(int ms);

#endif
