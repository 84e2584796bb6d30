/*
 * Unit tests of the file plugin's display-name check
 * (plugins/file/file_name.c): every hostile name of PROTOCOL.md §8 is
 * refused, ordinary and UTF-8 names pass, and the 255-byte limit is exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "file_name.h"

static void test_hostile_names(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",     ".",          "..",         "../x",      "a/b",  "/abs",   "dir/",
        "a\\b", "\\",         "..\\x",      "a\x01z",    "a\nb", "tab\there", "a\x1f",
        "\x7f", "a\177b",   "esc\x1b[31m", "\r",        "x/../y",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (file_name_valid(bad[i]))
            fail_msg("accepted hostile name #%zu", i);
}

static void test_ordinary_names(void **state)
{
    (void)state;
    static const char *const good[] = {
        "report.pdf", "..x",         "a..b", "x.",   "...", ".hidden", "my file (1).txt",
        "r\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93.txt", "~", "a:b", "-", " ",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!file_name_valid(good[i]))
            fail_msg("refused ordinary name \"%s\"", good[i]);
}

static void test_length_limit(void **state)
{
    (void)state;
    char *name = malloc(10001);
    assert_non_null(name);
    memset(name, 'n', 10000);
    name[10000] = '\0';
    assert_false(file_name_valid(name));
    name[FILE_NAME_MAX + 1] = '\0';
    assert_false(file_name_valid(name));
    name[FILE_NAME_MAX] = '\0';
    assert_true(file_name_valid(name));
    /* A bad byte at the last allowed position still counts. */
    name[FILE_NAME_MAX - 1] = '/';
    assert_false(file_name_valid(name));
    free(name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_ordinary_names),
        cmocka_unit_test(test_length_limit),
    };
    return cmocka_run_group_tests_name("file_names", tests, NULL, NULL);
}
