/*
 * Unit tests of the configuration reader (core/config.c). Each test writes
 * its INI files into a fresh temporary folder, removed afterwards.
 */
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

#include "config.h"

/* The temporary folder of one test and the files made in it. */
typedef struct fixture {
    char dir[64];
    char paths[8][256];
    size_t path_count;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    strcpy(fx->dir, "/tmp/sa-unit-config-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    for (size_t i = fx->path_count; i-- > 0;)
        remove(fx->paths[i]); /* files, then the folders made after them */
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Makes `name` (relative to the test folder) holding `len` bytes. */
static const char *write_file(fixture *fx, const char *name, const char *text, size_t len)
{
    assert_true(fx->path_count < 8);
    char *path = fx->paths[fx->path_count++];
    char dir[sizeof fx->dir];
    memcpy(dir, fx->dir, sizeof dir);
    int n = snprintf(path, sizeof fx->paths[0], "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof fx->paths[0]);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

#define WRITE(fx, name, lit) write_file(fx, name, lit, sizeof(lit) - 1)

static const char *make_dir(fixture *fx, const char *name)
{
    assert_true(fx->path_count < 8);
    char *path = fx->paths[fx->path_count++];
    char dir[sizeof fx->dir];
    memcpy(dir, fx->dir, sizeof dir);
    int n = snprintf(path, sizeof fx->paths[0], "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof fx->paths[0]);
    assert_int_equal(mkdir(path, 0700), 0);
    return path;
}

/* Loads a file that must fail, and checks the message. */
static void expect_load_error(const char *path, const char *what)
{
    char err[512] = "";
    sa_config *cfg = sa_config_load(path, err, sizeof err);
    assert_null(cfg);
    char want[600];
    snprintf(want, sizeof want, "%s%s", path, what);
    assert_string_equal(err, want);
}

static const sa_config_key server_keys[] = {
    {"engine", SA_CFG_NAME, "async", 0, 0, "engine"},
    {"listen", SA_CFG_STRING, "127.0.0.1:5050", 0, 0, "listener"},
    {"max_clients", SA_CFG_INT, "10000", 1, 100000, "clients"},
    {"verbose", SA_CFG_BOOL, "false", 0, 0, "chatty"},
    {"spool_dir", SA_CFG_PATH, "spool", 0, 0, "spool"},
    {"plugin_dir", SA_CFG_PATH, NULL, 0, 0, "plugins"},
    {"motd", SA_CFG_STRING, NULL, 0, 0, "message of the day"},
    {NULL, 0, NULL, 0, 0, NULL},
};

/* ---- loading ---------------------------------------------------------- */

static void test_load_sections_comments(void **state)
{
    fixture *fx = *state;
    const char *path = WRITE(fx, "a.ini",
                             "; a comment\n"                         /* 1 */
                             "# another comment\n"                   /* 2 */
                             "\n"                                    /* 3 */
                             "[Server]\n"                            /* 4 */
                             "Engine = sync      ; inline comment\n" /* 5 */
                             "listen=127.0.0.1:6000\n"               /* 6 */
                             "  max_clients = 12\n"                  /* 7 */
                             "motd = a;b ; c\n"                      /* 8 */
                             "[ chat ]\r\n"                          /* 9 */
                             "max_text = 100\r\n"                    /* 10 */
                             "max_text = 200\n"                      /* 11 */
                             "empty =\n"                             /* 12 */
                             "last = no newline");                   /* 13 */
    char err[256] = "";
    sa_config *cfg = sa_config_load(path, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(err, "");
    assert_string_equal(sa_config_path(cfg), path);

    const sa_config_entry *e = sa_config_find(cfg, "server", "engine");
    assert_non_null(e);
    assert_string_equal(e->section, "server");
    assert_string_equal(e->key, "engine");
    assert_string_equal(e->value, "sync");
    assert_string_equal(e->origin, path);
    assert_int_equal(e->line, 5);

    e = sa_config_find(cfg, "server", "listen");
    assert_string_equal(e->value, "127.0.0.1:6000");
    assert_int_equal(e->line, 6);
    /* Indented: an ordinary entry, not a continuation of "listen". */
    e = sa_config_find(cfg, "server", "max_clients");
    assert_non_null(e);
    assert_string_equal(e->value, "12");
    assert_int_equal(e->line, 7);
    /* Only " ;" starts an inline comment. */
    assert_string_equal(sa_config_find(cfg, "server", "motd")->value, "a;b");

    e = sa_config_find(cfg, "chat", "max_text");
    assert_string_equal(e->value, "200"); /* the later one wins */
    assert_int_equal(e->line, 11);
    assert_string_equal(sa_config_find(cfg, "chat", "empty")->value, "");
    e = sa_config_find(cfg, "chat", "last");
    assert_string_equal(e->value, "no newline");
    assert_int_equal(e->line, 13);
    /* Lookups ignore case like the file does. */
    assert_non_null(sa_config_find(cfg, "CHAT", "Max_Text"));
    assert_null(sa_config_find(cfg, "chat", "absent"));
    assert_null(sa_config_find(cfg, "nosuch", "max_text"));

    assert_int_equal(sa_config_check_section(cfg, "server", server_keys, err, sizeof err), 0);
    assert_int_equal(sa_config_int(cfg, "server", &server_keys[2]), 12);
    sa_config_free(cfg);
}

static void test_load_missing_file(void **state)
{
    fixture *fx = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/nope.ini", fx->dir);
    expect_load_error(path, ": cannot open: No such file or directory");
}

static void test_load_directory(void **state)
{
    fixture *fx = *state;
    expect_load_error(fx->dir, ": cannot read: Is a directory");
}

static void test_load_syntax_error_line(void **state)
{
    fixture *fx = *state;
    expect_load_error(WRITE(fx, "syntax.ini", "[server]\nengine = async\n\nthis is not ini\n"),
                      ":4: syntax error");
    expect_load_error(WRITE(fx, "section.ini", "[server]\n[broken\nengine = async\n"),
                      ":2: syntax error");
    expect_load_error(WRITE(fx, "nokey.ini", "[server]\n = value\n"), ":2: syntax error");
}

static void test_load_key_outside_section(void **state)
{
    fixture *fx = *state;
    expect_load_error(WRITE(fx, "nosection.ini", "; top\nengine = async\n[server]\n"),
                      ":2: 'engine' is outside any [section]");
}

static void test_load_long_line(void **state)
{
    fixture *fx = *state;
    char text[400];
    int n = snprintf(text, sizeof text, "[server]\nlisten = a\nmotd = %0243d\nengine = x\n", 7);
    assert_true(n > 0);
    /* Line 3 is 250 bytes. */
    assert_int_equal(strchr(strchr(text, '\n') + 1, '\n') - text, 19);
    expect_load_error(write_file(fx, "long.ini", text, (size_t)n),
                      ":3: line too long (max 199 bytes)");

    /* 199 bytes fit, with or without the newline after them. */
    n = snprintf(text, sizeof text, "[server]\nmotd = %0192d\nlisten = b\n", 5);
    const char *path = write_file(fx, "fits.ini", text, (size_t)n);
    char err[256] = "";
    sa_config *cfg = sa_config_load(path, err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(strlen(sa_config_find(cfg, "server", "motd")->value), 192);
    const sa_config_entry *e = sa_config_find(cfg, "server", "listen");
    assert_string_equal(e->value, "b");
    assert_int_equal(e->line, 3);
    sa_config_free(cfg);

    n = snprintf(text, sizeof text, "[server]\nmotd = %0193d\n", 5);
    expect_load_error(write_file(fx, "over.ini", text, (size_t)n),
                      ":2: line too long (max 199 bytes)");
}

static void test_load_binary(void **state)
{
    fixture *fx = *state;
    static const char with_nul[] = "[server]\nengine = a\0b\n";
    expect_load_error(write_file(fx, "nul.ini", with_nul, sizeof with_nul - 1),
                      ":2: NUL byte in line");

    /* Random bytes: an error, not a crash. */
    unsigned char junk[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(x >> 16);
    }
    const char *path = write_file(fx, "junk.ini", (const char *)junk, sizeof junk);
    char err[256] = "";
    assert_null(sa_config_load(path, err, sizeof err));
    assert_true(strncmp(err, path, strlen(path)) == 0);
}

/* ---- checking ---------------------------------------------------------- */

/* Loads `text`, checks [server], and compares the error that follows the
 * file name. */
static void expect_check_error(fixture *fx, const char *name, const char *text, const char *what)
{
    const char *path = write_file(fx, name, text, strlen(text));
    char err[512] = "";
    sa_config *cfg = sa_config_load(path, err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(sa_config_check_section(cfg, "server", server_keys, err, sizeof err), -1);
    char want[600];
    snprintf(want, sizeof want, "%s%s", path, what);
    assert_string_equal(err, want);
    sa_config_free(cfg);
}

static void test_check_unknown_key(void **state)
{
    expect_check_error(*state, "unknown.ini", "[server]\nengine = sync\nBogus = 1\n",
                       ":3: [server] unknown key 'bogus'");
}

static void test_check_other_sections_ignored(void **state)
{
    fixture *fx = *state;
    const char *path = WRITE(fx, "other.ini", "[server]\nengine = sync\n[rooms]\nwhatever = 1\n");
    char err[256] = "";
    sa_config *cfg = sa_config_load(path, err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(sa_config_check_section(cfg, "server", server_keys, err, sizeof err), 0);
    assert_int_equal(sa_config_check_section(cfg, "absent", server_keys, err, sizeof err), 0);
    /* A section with no schema: every key is unknown. */
    assert_int_equal(sa_config_check_section(cfg, "rooms", NULL, err, sizeof err), -1);
    sa_config_free(cfg);
}

static void test_check_bad_int(void **state)
{
    static const char *const bad[] = {"abc", "12x", "", "1.5", "0", "100001", "0x10",
                                      "99999999999999999999", "-5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128], what[160];
        snprintf(text, sizeof text, "[server]\n\nmax_clients = %s\n", bad[i]);
        snprintf(what, sizeof what,
                 ":3: [server] max_clients: '%s' is not a whole number between 1 and 100000",
                 bad[i]);
        expect_check_error(*state, "int.ini", text, what);
        fixture *fx = *state;
        remove(fx->paths[--fx->path_count]);
    }
}

static void test_check_bad_bool(void **state)
{
    expect_check_error(*state, "bool.ini", "[server]\nverbose = maybe\n",
                       ":2: [server] verbose: 'maybe' is not a boolean (true/false, yes/no, "
                       "on/off, 1/0)");
}

static void test_check_bad_name(void **state)
{
    expect_check_error(*state, "name.ini", "[server]\nengine = a/b\n",
                       ":2: [server] engine: 'a/b' is not a name (1-64 of A-Z a-z 0-9 _ . -)");
    fixture *fx = *state;
    remove(fx->paths[--fx->path_count]);
    expect_check_error(*state, "name.ini",
                       "[server]\nengine = "
                       "a12345678901234567890123456789012345678901234567890123456789012345\n",
                       ":2: [server] engine: "
                       "'a12345678901234567890123456789012345678901234567890123456789012345' is "
                       "not a name (1-64 of A-Z a-z 0-9 _ . -)");
}

static void test_typed_values(void **state)
{
    fixture *fx = *state;
    static const struct {
        const char *text;
        int value;
    } bools[] = {{"true", 1}, {"YES", 1}, {"On", 1}, {"1", 1},
                 {"false", 0}, {"no", 0}, {"OFF", 0}, {"0", 0}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        char text[128];
        snprintf(text, sizeof text,
                 "[server]\nverbose = %s\nmax_clients = 100000\nengine =\n", bools[i].text);
        const char *path = write_file(fx, "typed.ini", text, strlen(text));
        char err[256] = "";
        sa_config *cfg = sa_config_load(path, err, sizeof err);
        assert_non_null(cfg);
        assert_int_equal(sa_config_check_section(cfg, "server", server_keys, err, sizeof err), 0);
        assert_int_equal(sa_config_bool(cfg, "server", &server_keys[3]), bools[i].value);
        assert_int_equal(sa_config_int(cfg, "server", &server_keys[2]), 100000);
        assert_string_equal(sa_config_string(cfg, "server", &server_keys[0]), ""); /* NAME: empty ok */
        sa_config_free(cfg);
        remove(fx->paths[--fx->path_count]);
    }
}

static void test_defaults(void **state)
{
    (void)state;
    sa_config *cfg = sa_config_new("/srv/sa");
    assert_non_null(cfg);
    assert_null(sa_config_path(cfg));
    assert_string_equal(sa_config_base_dir(cfg), "/srv/sa"); /* kept although it does not exist */
    assert_string_equal(sa_config_string(cfg, "server", &server_keys[0]), "async");
    assert_int_equal(sa_config_int(cfg, "server", &server_keys[2]), 10000);
    assert_int_equal(sa_config_bool(cfg, "server", &server_keys[3]), 0);
    assert_string_equal(sa_config_string(cfg, "server", &server_keys[6]), ""); /* NULL default */
    assert_string_equal(sa_config_string(cfg, "server", &server_keys[5]), ""); /* empty PATH */
    assert_string_equal(sa_config_string(cfg, "server", &server_keys[4]), "/srv/sa/spool");
    assert_int_equal(sa_config_check_section(cfg, "server", server_keys, NULL, 0), 0);
    sa_config_free(cfg);

    cfg = sa_config_new("/");
    assert_string_equal(sa_config_string(cfg, "server", &server_keys[4]), "/spool");
    sa_config_free(cfg);
}

static void test_key_find(void **state)
{
    (void)state;
    assert_ptr_equal(sa_config_key_find(server_keys, "listen"), &server_keys[1]);
    assert_null(sa_config_key_find(server_keys, "nope"));
    assert_null(sa_config_key_find(NULL, "listen"));
}

/* ---- overrides ---------------------------------------------------------- */

static void test_overrides_win(void **state)
{
    fixture *fx = *state;
    const char *path = WRITE(fx, "o.ini", "[server]\nengine = async\nmax_clients = 5\n");
    char err[256] = "";
    sa_config *cfg = sa_config_load(path, err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(sa_config_override(cfg, "server.engine=sync", 1, err, sizeof err), 0);
    assert_int_equal(sa_config_override(cfg, " Server . Listen = 127.0.0.1:7000 ", 2, err,
                                        sizeof err),
                     0);
    assert_int_equal(sa_config_override(cfg, "chat.motd=a=b", 3, err, sizeof err), 0);
    assert_int_equal(sa_config_override(cfg, "server.motd=", 4, err, sizeof err), 0);

    const sa_config_entry *e = sa_config_find(cfg, "server", "engine");
    assert_string_equal(e->value, "sync");
    assert_string_equal(e->origin, "-o");
    assert_int_equal(e->line, 1);
    e = sa_config_find(cfg, "server", "listen");
    assert_string_equal(e->value, "127.0.0.1:7000");
    assert_int_equal(e->line, 2);
    assert_string_equal(sa_config_find(cfg, "chat", "motd")->value, "a=b");
    assert_string_equal(sa_config_find(cfg, "server", "motd")->value, "");
    assert_int_equal(sa_config_find(cfg, "server", "max_clients")->line, 3); /* file value */
    assert_int_equal(sa_config_check_section(cfg, "server", server_keys, err, sizeof err), 0);
    assert_string_equal(sa_config_string(cfg, "server", &server_keys[0]), "sync");

    /* A bad override is reported as one. */
    assert_int_equal(sa_config_override(cfg, "server.max_clients=lots", 5, err, sizeof err), 0);
    assert_int_equal(sa_config_check_section(cfg, "server", server_keys, err, sizeof err), -1);
    assert_string_equal(err,
                        "-o server.max_clients: 'lots' is not a whole number between 1 and 100000");
    sa_config_free(cfg);

    cfg = sa_config_new(fx->dir);
    assert_int_equal(sa_config_override(cfg, "server.nonsense=1", 1, err, sizeof err), 0);
    assert_int_equal(sa_config_check_section(cfg, "server", server_keys, err, sizeof err), -1);
    assert_string_equal(err, "-o server.nonsense: unknown key 'nonsense'");
    sa_config_free(cfg);
}

static void test_bad_override(void **state)
{
    (void)state;
    static const char *const bad[] = {"serverengine=sync", "server.engine", ".engine=sync",
                                      "server.=sync", "=", "", "server=a.b"};
    sa_config *cfg = sa_config_new("/");
    assert_non_null(cfg);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[128] = "", want[160];
        assert_int_equal(sa_config_override(cfg, bad[i], (int)i, err, sizeof err), -1);
        snprintf(want, sizeof want, "-o %s: expected section.key=value", bad[i]);
        assert_string_equal(err, want);
    }
    assert_int_equal(sa_config_check_section(cfg, "server", server_keys, NULL, 0), 0);
    sa_config_free(cfg);
}

/* ---- paths and lists ---------------------------------------------------- */

static void test_path_resolution(void **state)
{
    fixture *fx = *state;
    make_dir(fx, "etc");
    const char *path = WRITE(fx, "etc/sa.ini",
                             "[server]\nspool_dir = data/spool\nplugin_dir = /opt/plugins\n");
    char err[256] = "";
    sa_config *cfg = sa_config_load(path, err, sizeof err);
    assert_non_null(cfg);
    char *real_dir = realpath(fx->dir, NULL); /* /tmp may be a link */
    assert_non_null(real_dir);
    char want[512];
    snprintf(want, sizeof want, "%s/etc", real_dir);
    assert_string_equal(sa_config_base_dir(cfg), want);

    snprintf(want, sizeof want, "%s/etc/data/spool", real_dir);
    const char *spool = sa_config_string(cfg, "server", &server_keys[4]);
    assert_string_equal(spool, want);
    assert_ptr_equal(sa_config_string(cfg, "server", &server_keys[4]), spool); /* cached */
    assert_string_equal(sa_config_string(cfg, "server", &server_keys[5]), "/opt/plugins");

    /* An override of the same key resolves too, and the first result stays valid. */
    assert_int_equal(sa_config_override(cfg, "server.spool_dir=other", 1, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s/etc/other", real_dir);
    assert_string_equal(sa_config_string(cfg, "server", &server_keys[4]), want);
    snprintf(want, sizeof want, "%s/etc/data/spool", real_dir);
    assert_string_equal(spool, want);
    /* STRING values are never touched. */
    assert_int_equal(sa_config_override(cfg, "server.listen=rel/x", 2, err, sizeof err), 0);
    assert_string_equal(sa_config_string(cfg, "server", &server_keys[1]), "rel/x");
    free(real_dir);
    sa_config_free(cfg);

    /* A file named without a folder resolves against the working folder. */
    char *cwd = getcwd(NULL, 0);
    assert_non_null(cwd);
    assert_int_equal(chdir(fx->dir), 0);
    cfg = sa_config_load("etc/sa.ini", err, sizeof err);
    assert_non_null(cfg);
    real_dir = realpath("etc", NULL);
    assert_string_equal(sa_config_base_dir(cfg), real_dir);
    free(real_dir);
    sa_config_free(cfg);
    assert_int_equal(chdir(cwd), 0);
    free(cwd);
}

static void expect_list(const char *value, const char *const *items, size_t count)
{
    char **list = sa_config_split_list(value);
    assert_non_null(list);
    for (size_t i = 0; i < count; i++) {
        assert_non_null(list[i]);
        assert_string_equal(list[i], items[i]);
    }
    assert_null(list[count]);
    free(list);
}

static void test_split_list(void **state)
{
    (void)state;
    static const char *const plugins[] = {"chat", "rooms", "presence", "file", "x"};
    expect_list("chat rooms presence file x", plugins, 5);
    expect_list("  chat,rooms ,, presence\t,file\tx,", plugins, 5);
    static const char *const one[] = {"a"};
    expect_list("a", one, 1);
    expect_list("", NULL, 0);
    expect_list(" ,\t, ", NULL, 0);
    expect_list(NULL, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_sections_comments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_syntax_error_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_key_outside_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_other_sections_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_bad_int, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_bad_bool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_bad_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_typed_values, setup, teardown),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_key_find),
        cmocka_unit_test_setup_teardown(test_overrides_win, setup, teardown),
        cmocka_unit_test(test_bad_override),
        cmocka_unit_test_setup_teardown(test_path_resolution, setup, teardown),
        cmocka_unit_test(test_split_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
