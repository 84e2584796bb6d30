/*
 * Fuzzes the configuration: the input is an INI file (loaded from a memfd
 * through its /proc/self/fd path), and also a list of -o overrides (the
 * input split at each NUL byte), applied to the loaded configuration or,
 * when the file is refused, to an empty one. Sections [fuzz] and [server]
 * are then checked against a schema with every key type, and when a check
 * passes every getter runs: a checked INT must lie within its range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_target.h"

/* Small on purpose: long messages must be cut, never overflow. */
#define ERR_LEN 96

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_config: %s\n", what);
    abort();
}

static const sa_config_key schema[] = {
    {.name = "count", .type = SA_CFG_INT, .default_value = "5", .min = -10, .max = 1000},
    {.name = "big", .type = SA_CFG_INT, .default_value = "0", .min = INT64_MIN, .max = INT64_MAX},
    {.name = "enabled", .type = SA_CFG_BOOL, .default_value = "yes"},
    {.name = "room", .type = SA_CFG_NAME, .default_value = "lobby"},
    {.name = "plugins", .type = SA_CFG_STRING, .default_value = "chat, rooms presence"},
    {.name = "spool", .type = SA_CFG_PATH, .default_value = "spool"},
    {.name = "tokens", .type = SA_CFG_PATH, .default_value = ""},
    {.name = NULL},
};

static const char *const sections[] = {"fuzz", "server"};

static int ini_fd = -1;
static char ini_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ini_fd = memfd_create("fuzz_config.ini", MFD_CLOEXEC);
    if (ini_fd < 0)
        fail("memfd_create failed");
    snprintf(ini_path, sizeof ini_path, "/proc/self/fd/%d", ini_fd);
    return 0;
}

static void write_ini(const uint8_t *data, size_t size)
{
    if (ftruncate(ini_fd, 0) != 0)
        fail("ftruncate failed");
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(ini_fd, data + done, size - done, (off_t)done);
        if (n <= 0)
            fail("pwrite failed");
        done += (size_t)n;
    }
}

static void use_checked_section(sa_config *cfg, const char *section)
{
    for (const sa_config_key *key = schema; key->name; key++) {
        sa_config_find(cfg, section, key->name);
        switch (key->type) {
        case SA_CFG_INT: {
            int64_t v = sa_config_int(cfg, section, key);
            if (v < key->min || v > key->max)
                fail("a checked INT is out of its range");
            break;
        }
        case SA_CFG_BOOL:
            sa_config_bool(cfg, section, key);
            break;
        case SA_CFG_STRING:
        case SA_CFG_PATH:
        case SA_CFG_NAME: {
            const char *value = sa_config_string(cfg, section, key);
            if (!value)
                fail("a checked string is NULL");
            char **list = sa_config_split_list(value); /* ours; one block */
            if (!list)
                fail("out of memory");
            free(list);
            break;
        }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ERR_LEN] = "";
    write_ini(data, size);
    sa_config *cfg = sa_config_load(ini_path, err, sizeof err); /* ours; freed below */
    if (!cfg) {
        if (!err[0])
            fail("a refused file gave no message");
        cfg = sa_config_new(".");
        if (!cfg)
            fail("out of memory");
    }

    /* The overrides: a NUL-terminated copy, read string by string. */
    char *text = malloc(size + 1); /* ours; freed below */
    if (!text)
        fail("out of memory");
    memcpy(text, data, size);
    text[size] = '\0';
    int position = 1;
    for (const char *p = text; p <= text + size; p += strlen(p) + 1) {
        err[0] = '\0';
        if (sa_config_override(cfg, p, position++, err, sizeof err) != 0 && !err[0])
            fail("a refused override gave no message");
    }
    free(text);

    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        err[0] = '\0';
        if (sa_config_check_section(cfg, sections[i], schema, err, sizeof err) == 0)
            use_checked_section(cfg, sections[i]);
        else if (!err[0])
            fail("a failed check gave no message");
    }
    if (!sa_config_base_dir(cfg))
        fail("no base folder");
    sa_config_path(cfg);
    sa_config_free(cfg);
    return 0;
}
