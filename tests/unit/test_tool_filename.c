/*
 * Unit tests of the client tools' file names (tools/lib/sa_filename.c):
 * how an offered name is made safe, the name announced for an upload, and
 * the "NAME (n)" variants; and of the final rename that picks among them
 * (tools/lib/sa_part_file.c) in a fresh temporary folder.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sa_filename.h"
#include "sa_part_file.h"

/* sa_filename_sanitize(offered, file_id) must give `want`. */
static void expect_sanitized(const char *offered, const char *file_id, const char *want)
{
    char *got = sa_filename_sanitize(offered, file_id);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_plain_names_pass(void **state)
{
    (void)state;
    expect_sanitized("report.pdf", "id1", "report.pdf");
    expect_sanitized(".hidden", "id1", ".hidden");
    expect_sanitized("with space (1).txt", "id1", "with space (1).txt");
    expect_sanitized("caf\xc3\xa9 \xe2\x82\xac.txt", "id1", "caf\xc3\xa9 \xe2\x82\xac.txt");
}

static void test_only_last_component(void **state)
{
    (void)state;
    expect_sanitized("../../etc/passwd", "id1", "passwd");
    expect_sanitized("/etc/passwd", "id1", "passwd");
    expect_sanitized("a\\..\\b.txt", "id1", "b.txt");
    expect_sanitized("C:\\Users\\x\\doc.txt", "id1", "doc.txt");
    expect_sanitized("dir/sub\\mixed/name", "id1", "name");
}

static void test_controls_dropped(void **state)
{
    (void)state;
    expect_sanitized("a\x01" "b\x1b[31mc\x7f" "d", "id1", "ab[31mcd");
    expect_sanitized("new\nline\r.txt", "id1", "newline.txt");
    /* C1 controls (U+0080..U+009F) and bytes that are not UTF-8. */
    expect_sanitized("x\xc2\x85y\xc2\x9bz", "id1", "xyz");
    expect_sanitized("bad\xff\xfe" "bytes\xc3", "id1", "badbytes");
    expect_sanitized("over\xc0\xaflong", "id1", "overlong");
}

static void test_unusable_falls_back_to_file_id(void **state)
{
    (void)state;
    expect_sanitized("", "f123", "f123");
    expect_sanitized(".", "f123", "f123");
    expect_sanitized("..", "f123", "f123");
    expect_sanitized("a/..", "f123", "f123");
    expect_sanitized("dir/", "f123", "f123");
    expect_sanitized("\x01\x02", "f123", "f123");
    expect_sanitized(NULL, "f123", "f123");
    /* The server's file_id is no more trusted than its name. */
    expect_sanitized("..", "../../x", "x");
    expect_sanitized("..", "..", "file");
    expect_sanitized(NULL, NULL, "file");
}

static void test_length_cut_at_character(void **state)
{
    (void)state;
    char long_name[600];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    char *got = sa_filename_sanitize(long_name, "id");
    assert_non_null(got);
    assert_int_equal(strlen(got), SA_FILENAME_MAX);
    free(got);

    /* 199 ASCII bytes then a 2-byte character: it does not fit whole. */
    char cut[256];
    memset(cut, 'b', 199);
    memcpy(cut + 199, "\xc3\xa9tail", 7);
    got = sa_filename_sanitize(cut, "id");
    assert_non_null(got);
    assert_int_equal(strlen(got), 199);
    free(got);
}

static void expect_upload_name(const char *path, const char *want)
{
    char *got = sa_filename_for_upload(path);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_upload_names(void **state)
{
    (void)state;
    expect_upload_name("report.pdf", "report.pdf");
    expect_upload_name("/home/u/docs/report.pdf", "report.pdf");
    expect_upload_name("docs/sub/", "sub");
    expect_upload_name("odd\\name.txt", "name.txt");
    expect_upload_name("tab\there", "tabhere");
    expect_upload_name("/", "file");
    expect_upload_name("..", "file");
}

static void test_variants(void **state)
{
    (void)state;
    char *name = sa_filename_variant("a.txt", 0);
    assert_string_equal(name, "a.txt");
    free(name);
    name = sa_filename_variant("a.txt", 1);
    assert_string_equal(name, "a.txt (1)");
    free(name);
    name = sa_filename_variant("a.txt", 4294967295u);
    assert_string_equal(name, "a.txt (4294967295)");
    free(name);
}

/* ---- the rename that picks "NAME (n)" ------------------------------------ */

typedef struct folder {
    char path[64];
    int fd;
} folder;

static int folder_setup(void **state)
{
    folder *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->path, sizeof f->path, "/tmp/sa-test-names-XXXXXX");
    if (!mkdtemp(f->path)) {
        free(f);
        return -1;
    }
    f->fd = open(f->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->fd < 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int folder_teardown(void **state)
{
    folder *f = *state;
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", f->path);
    int rc = system(command);
    close(f->fd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void write_file(const folder *f, const char *name, const char *text)
{
    int fd = openat(f->fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

static void expect_content(const folder *f, const char *name, const char *text)
{
    char buffer[64] = {0};
    int fd = openat(f->fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t got = read(fd, buffer, sizeof buffer - 1);
    assert_int_equal(close(fd), 0);
    assert_int_equal(got, (ssize_t)strlen(text));
    assert_string_equal(buffer, text);
}

/* Commits "n.part" holding `text`; the final name must be `want`. */
static void commit_expecting(const folder *f, const char *text, int force, const char *want)
{
    char err[256];
    write_file(f, "n.part", text);
    char *final = sa_part_commit(f->fd, "n.part", "n", force, err, sizeof err);
    assert_non_null(final);
    assert_string_equal(final, want);
    free(final);
    expect_content(f, want, text);
    assert_int_equal(faccessat(f->fd, "n.part", F_OK, AT_SYMLINK_NOFOLLOW), -1);
}

static void test_commit_picks_free_name(void **state)
{
    folder *f = *state;
    commit_expecting(f, "first", 0, "n");
    commit_expecting(f, "second", 0, "n (1)");
    commit_expecting(f, "third", 0, "n (2)");
    expect_content(f, "n", "first");
    expect_content(f, "n (1)", "second");
}

static void test_commit_never_follows_links(void **state)
{
    folder *f = *state;
    /* A dangling link at the name counts as taken; its target stays unmade. */
    assert_int_equal(symlinkat("target", f->fd, "n"), 0);
    commit_expecting(f, "data", 0, "n (1)");
    assert_int_equal(faccessat(f->fd, "target", F_OK, AT_SYMLINK_NOFOLLOW), -1);
    /* With force the link itself is replaced, its target still untouched. */
    commit_expecting(f, "forced", 1, "n");
    assert_int_equal(faccessat(f->fd, "target", F_OK, AT_SYMLINK_NOFOLLOW), -1);
}

static void test_part_open_refuses_traps(void **state)
{
    folder *f = *state;
    char err[256];
    int created = 0;
    assert_int_equal(symlinkat("elsewhere", f->fd, "link.part"), 0);
    assert_int_equal(sa_part_open(f->fd, "link.part", &created, err, sizeof err), -1);
    assert_non_null(strstr(err, "symbolic link"));

    write_file(f, "mine", "precious");
    assert_int_equal(linkat(f->fd, "mine", f->fd, "hard.part", 0), 0);
    assert_int_equal(sa_part_open(f->fd, "hard.part", &created, err, sizeof err), -1);
    assert_non_null(strstr(err, "hard links"));
    expect_content(f, "mine", "precious");

    assert_int_equal(mkdirat(f->fd, "dir.part", 0700), 0);
    assert_int_equal(sa_part_open(f->fd, "dir.part", &created, err, sizeof err), -1);

    int fd = sa_part_open(f->fd, "new.part", &created, err, sizeof err);
    assert_true(fd >= 0);
    assert_int_equal(created, 1);
    /* Locked while open: a second download of the same name is refused. */
    int again = sa_part_open(f->fd, "new.part", &created, err, sizeof err);
    assert_int_equal(again, -1);
    assert_non_null(strstr(err, "another download"));
    assert_int_equal(close(fd), 0);
    fd = sa_part_open(f->fd, "new.part", &created, err, sizeof err);
    assert_true(fd >= 0);
    assert_int_equal(created, 0);
    assert_int_equal(close(fd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_names_pass),
        cmocka_unit_test(test_only_last_component),
        cmocka_unit_test(test_controls_dropped),
        cmocka_unit_test(test_unusable_falls_back_to_file_id),
        cmocka_unit_test(test_length_cut_at_character),
        cmocka_unit_test(test_upload_names),
        cmocka_unit_test(test_variants),
        cmocka_unit_test_setup_teardown(test_commit_picks_free_name, folder_setup,
                                        folder_teardown),
        cmocka_unit_test_setup_teardown(test_commit_never_follows_links, folder_setup,
                                        folder_teardown),
        cmocka_unit_test_setup_teardown(test_part_open_refuses_traps, folder_setup,
                                        folder_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
