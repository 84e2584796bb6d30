/*
 * Unit tests of the progress bar's formatting (tools/lib/sa_progress.c):
 * byte counts, durations, and the whole line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sa_progress.h"

static void expect_bytes(uint64_t bytes, const char *want)
{
    char out[32];
    sa_format_bytes(bytes, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_bytes(void **state)
{
    (void)state;
    expect_bytes(0, "0 B");
    expect_bytes(1023, "1023 B");
    expect_bytes(1024, "1.0 KiB");
    expect_bytes(1536, "1.5 KiB");
    expect_bytes(1048575, "1.0 MiB"); /* not "1024.0 KiB" */
    expect_bytes(12897485, "12.3 MiB");
    expect_bytes(4294967296ull, "4.0 GiB");
    expect_bytes(2199023255552ull, "2.0 TiB");
    expect_bytes(UINT64_MAX, "16384.0 PiB");
}

static void expect_duration(int64_t seconds, const char *want)
{
    char out[32];
    sa_format_duration(seconds, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_durations(void **state)
{
    (void)state;
    expect_duration(-1, "--:--");
    expect_duration(0, "0:00");
    expect_duration(7, "0:07");
    expect_duration(754, "12:34");
    expect_duration(3723, "1:02:03");
    expect_duration(359999, "99:59:59");
}

static void test_line_midway(void **state)
{
    (void)state;
    char out[160];
    /* 9 of 20 MiB, 10 MiB moved in 2 s: 5 MiB/s, 11 MiB left, ETA 2.2 s. */
    sa_progress_format(out, sizeof out, 9ull << 20, 20ull << 20, 10ull << 20, 2000);
    assert_string_equal(out, "[#########-----------]  45%  9.0 MiB/20.0 MiB  5.0 MiB/s  ETA 0:02");
}

static void test_line_edges(void **state)
{
    (void)state;
    char out[160];
    sa_progress_format(out, sizeof out, 0, 1000, 0, 0);
    assert_string_equal(out, "[--------------------]   0%  0 B/1000 B  -- B/s  ETA --:--");
    sa_progress_format(out, sizeof out, 1000, 1000, 1000, 500);
    assert_string_equal(out, "[####################] 100%  1000 B/1000 B  2.0 KiB/s  ETA 0:00");
    /* An empty file is complete at once. */
    sa_progress_format(out, sizeof out, 0, 0, 0, 0);
    assert_string_equal(out, "[####################] 100%  0 B/0 B  -- B/s  ETA 0:00");
    /* A crawl: the ETA is unknown rather than absurd. */
    sa_progress_format(out, sizeof out, 1, 1ull << 40, 1, 1000);
    assert_non_null(strstr(out, "ETA --:--"));
    /* A short buffer is cut, never overrun. */
    char tiny[8];
    sa_progress_format(tiny, sizeof tiny, 5, 10, 5, 1000);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

static void test_disabled_bar_is_quiet(void **state)
{
    (void)state;
    /* A stream that is not a terminal: nothing is ever written. */
    FILE *sink = tmpfile();
    assert_non_null(sink);
    sa_progress p;
    sa_progress_init(&p, sink, "a-rather-long-file-name-for-the-bar.bin", 100, 0, 0);
    sa_progress_update(&p, 50, 1000);
    sa_progress_finish(&p, 100, 2000);
    assert_int_equal(ftell(sink), 0);
    assert_string_equal(p.label, "a-rather-long-file-name-...");
    fclose(sink);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_line_midway),
        cmocka_unit_test(test_line_edges),
        cmocka_unit_test(test_disabled_bar_is_quiet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
