/* Connection limits against abuse: connections per address, and the
 * frame and hello timeouts that stop slow-loris clients (a frame trickled
 * in byte by byte keeps a connection "alive" but must still complete in
 * time). max_clients and hello_timeout alone: test_session.c; max_frame:
 * test_framing.c; max_text and rate: test_chat.c; max_rooms_per_user:
 * test_rooms.c. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* A plain socket from `source` (a loopback address) to the daemon. */
static int connect_from(const h_daemon *d, const char *source)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in from = {.sin_family = AF_INET};
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(h_daemon_port(d)))};
    inet_pton(AF_INET, source, &from.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&from, sizeof from) != 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof to) != 0)
        h_fail("cannot connect from %s", source);
    struct timeval limit = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    return fd;
}

/* Reads one frame's payload from a plain socket (NULL on EOF/timeout). */
static cJSON *read_frame(int fd)
{
    unsigned char header[4];
    size_t have = 0;
    while (have < 4) {
        ssize_t n = recv(fd, header + have, 4 - have, 0);
        if (n <= 0)
            return NULL;
        have += (size_t)n;
    }
    uint32_t len = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 |
                   (uint32_t)header[2] << 8 | header[3];
    if (len > 65536)
        h_fail("frame of %u bytes from the server", len);
    char *payload = malloc(len);
    for (have = 0; payload && have < len;) {
        ssize_t n = recv(fd, payload + have, len - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    cJSON *frame = have == len ? cJSON_ParseWithLength(payload, len) : NULL;
    free(payload);
    return frame ? h_keep(frame) : NULL;
}

static void send_hello(int fd, const char *name)
{
    const char *json = h_fmt("{\"type\":\"hello\",\"id\":1,\"name\":\"%s\"}", name);
    uint32_t len = (uint32_t)strlen(json);
    unsigned char header[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                               (unsigned char)(len >> 8), (unsigned char)len};
    if (send(fd, header, 4, MSG_NOSIGNAL) != 4 ||
        send(fd, json, len, MSG_NOSIGNAL) != (ssize_t)len)
        h_fail("cannot send hello");
}

static void test_max_per_address(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.max_per_address=2", NULL);
    sa_client *a = h_login(d, "alice");
    h_login(d, "bob");
    sa_client *third = h_connect(d);
    h_expect_bye_closed(third, "server_full", H_REPLY_MS);
    h_request_ok(a, "{\"type\":\"msg\",\"text\":\"still fine\"}");

    /* Another address has its own allowance. */
    int other = connect_from(d, "127.0.0.2");
    send_hello(other, "carol");
    cJSON *reply = read_frame(other);
    if (!reply)
        h_fail("no hello reply for a connection from 127.0.0.2");
    h_assert_str(reply, "type", "ok");
    close(other);

    /* A freed place can be taken again. */
    h_client_close(a);
    int64_t deadline = h_now_ms() + 3000;
    for (;;) {
        sa_client *again = h_connect(d);
        cJSON *hello = NULL;
        if (sa_client_hello(again, "dave", NULL, &hello, H_REPLY_MS) == SA_CLIENT_OK &&
            strcmp(h_get_str(h_keep(hello), "type"), "ok") == 0)
            break;
        h_client_close(again);
        if (h_now_ms() > deadline)
            h_fail("the freed place was not given back within 3 s");
        h_sleep_ms(50);
    }
}

static void test_frame_timeout_stalled_frame(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.frame_timeout=1", NULL);
    sa_client *c = h_login(d, "alice");
    /* Announce 100 bytes, send 10, then stall. */
    const unsigned char partial[] = {0, 0, 0, 100, '{', '"', 't', 'y', 'p', 'e', '"', ':', '"', 'm'};
    int64_t start = h_now_ms();
    h_send_raw(c, partial, sizeof partial);
    h_expect_bye_closed(c, "idle_timeout", 4000);
    if (h_now_ms() - start < 900)
        h_fail("closed after %lld ms, before frame_timeout", (long long)(h_now_ms() - start));
}

/* Sends json as one frame, one byte every 200 ms (never silent, but
 * slower than any timeout under test), until the server says bye; the
 * reason must be `reason`, within `within_ms` of the first byte. */
static void trickle_until_bye(sa_client *c, const char *json, const char *reason, int within_ms)
{
    uint32_t len = (uint32_t)strlen(json);
    unsigned char header[4] = {0, 0, 0, (unsigned char)len};
    h_send_raw(c, header, 4);
    int64_t start = h_now_ms();
    for (uint32_t i = 0; i < len; i++) {
        if (sa_client_send_raw(c, json + i, 1) != SA_CLIENT_OK)
            break; /* the server closed: expected */
        cJSON *frame = NULL;
        int rc = sa_client_recv(c, &frame, 200);
        if (rc == SA_CLIENT_OK) {
            h_keep(frame);
            h_assert_str(frame, "type", "bye");
            h_assert_str(frame, "reason", reason);
            h_expect_closed(c, H_REPLY_MS);
            if (h_now_ms() - start > within_ms)
                h_fail("trickling client closed only after %lld ms",
                       (long long)(h_now_ms() - start));
            return;
        }
        if (rc != SA_CLIENT_TIMEOUT)
            h_fail("connection ended without bye %s", reason);
    }
    h_fail("the trickling client was never closed");
}

static void test_frame_timeout_slow_loris(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.frame_timeout=1", NULL);
    trickle_until_bye(h_login(d, "alice"),
                      "{\"type\":\"msg\",\"text\":\"a frame sent one byte at a time, slowly\"}",
                      "idle_timeout", 4000);
}

static void test_frame_timeout_stalled_header(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.frame_timeout=1", NULL);
    sa_client *c = h_login(d, "alice");
    /* Half a length prefix already starts a frame. */
    const unsigned char half_header[] = {0, 0};
    int64_t start = h_now_ms();
    h_send_raw(c, half_header, sizeof half_header);
    h_expect_bye_closed(c, "idle_timeout", 4000);
    if (h_now_ms() - start < 900)
        h_fail("closed after %lld ms, before frame_timeout", (long long)(h_now_ms() - start));
}

/* Before hello, trickling bytes does not buy time: hello_timeout counts
 * from the connection, whatever arrives. */
static void test_slow_hello_gets_hello_timeout(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.hello_timeout=1", NULL);
    trickle_until_bye(h_connect(d),
                      "{\"type\":\"hello\",\"id\":1,\"name\":\"a_very_slow_client\"}",
                      "hello_timeout", 3000);
}

static void test_whole_frames_do_not_time_out(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.frame_timeout=1", NULL);
    sa_client *c = h_login(d, "alice");
    /* Idle between frames is the heartbeat's business, not frame_timeout's. */
    h_sleep_ms(2500);
    h_request_ok(c, "{\"type\":\"msg\",\"text\":\"still here\"}");
}

static void test_steady_stream_with_partial_frames(void **state)
{
    (void)state;
    h_daemon *d = h_daemon_startv(NULL, "server.frame_timeout=1", "chat.rate=0", NULL);
    sa_client *c = h_login(d, "streamer");
    /* Each write ends half-way into the next frame, for 2.5 frame timeouts:
     * frames keep completing, so no frame is slow and nothing may close. */
    const char *json = "{\"type\":\"ping\"}";
    size_t len = strlen(json);
    unsigned char frame[64];
    frame[0] = frame[1] = frame[2] = 0;
    frame[3] = (unsigned char)len;
    memcpy(frame + 4, json, len);
    size_t frame_len = len + 4, half = frame_len / 2;
    h_send_raw(c, frame, half);
    int64_t until = h_now_ms() + 2500;
    int sent = 0;
    while (h_now_ms() < until) {
        h_send_raw(c, frame + half, frame_len - half);
        h_send_raw(c, frame, half);
        sent++;
        h_expect(c, "pong", H_REPLY_MS);
        h_sleep_ms(50);
    }
    h_send_raw(c, frame + half, frame_len - half);
    h_expect(c, "pong", H_REPLY_MS);
    if (sent < 10)
        h_fail("only %d frames streamed", sent);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "test_limits");
    const struct CMUnitTest tests[] = {
        H_TEST(test_max_per_address),
        H_TEST(test_frame_timeout_stalled_frame),
        H_TEST(test_frame_timeout_slow_loris),
        H_TEST(test_frame_timeout_stalled_header),
        H_TEST(test_slow_hello_gets_hello_timeout),
        H_TEST(test_whole_frames_do_not_time_out),
        H_TEST(test_steady_stream_with_partial_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
