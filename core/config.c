/*
 * Configuration: the INI file read with inih through our own line reader
 * (so that we know each entry's line), -o overrides, schema checks and
 * typed getters. See config.h for the contract.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OVERRIDE_ORIGIN "-o"
#define NAME_MAX_LEN 64

/* A PATH value made absolute, cached so the string outlives the call. */
typedef struct resolved_path {
    const char *raw; /* the entry's value or the key's default it came from */
    struct resolved_path *next;
    char resolved[];
} resolved_path;

/* Owns everything it points to: the path strings, every entry (each one
 * allocation with its strings, so pointers handed out stay valid while
 * more entries are added) and the resolved paths. sa_config_free frees. */
struct sa_config {
    char *path;     /* NULL when made by sa_config_new */
    char *base_dir; /* absolute when it could be resolved */
    sa_config_entry **entries;
    size_t count, cap;
    pthread_mutex_t paths_lock; /* host services read config from any thread */
    resolved_path *paths;
};

__attribute__((format(printf, 3, 4))) static void set_error(char *err, size_t errlen,
                                                            const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void ascii_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Start and length of s[0..len) without surrounding blanks. */
static const char *trim(const char *s, size_t *len)
{
    while (*len && is_blank(*s)) {
        s++;
        (*len)--;
    }
    while (*len && is_blank(s[*len - 1]))
        (*len)--;
    return s;
}

static sa_config *config_alloc(void)
{
    sa_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return NULL;
    if (pthread_mutex_init(&cfg->paths_lock, NULL) != 0) {
        free(cfg);
        return NULL;
    }
    return cfg;
}

void sa_config_free(sa_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->count; i++)
        free(cfg->entries[i]);
    free(cfg->entries);
    for (resolved_path *p = cfg->paths, *next; p; p = next) {
        next = p->next;
        free(p);
    }
    pthread_mutex_destroy(&cfg->paths_lock);
    free(cfg->path);
    free(cfg->base_dir);
    free(cfg);
}

/* The absolute form of `dir`, or a copy of it when it cannot be resolved
 * (a folder that does not exist yet still gives usable paths). */
static char *absolute_dir(const char *dir)
{
    char *abs = realpath(dir, NULL);
    return abs ? abs : strdup(dir);
}

sa_config *sa_config_new(const char *base_dir)
{
    sa_config *cfg = config_alloc();
    if (!cfg)
        return NULL;
    cfg->base_dir = absolute_dir(base_dir ? base_dir : ".");
    if (!cfg->base_dir) {
        sa_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* Appends one entry; section and key are stored lower-case. */
static int add_entry(sa_config *cfg, const char *section, size_t section_len, const char *key,
                     size_t key_len, const char *value, size_t value_len, const char *origin,
                     int line)
{
    if (cfg->count == cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap * 2 : 16;
        sa_config_entry **grown = realloc(cfg->entries, cap * sizeof *grown);
        if (!grown)
            return -1;
        cfg->entries = grown;
        cfg->cap = cap;
    }
    sa_config_entry *e = malloc(sizeof *e + section_len + key_len + value_len + 3);
    if (!e)
        return -1;
    char *text = (char *)(e + 1);
    e->section = memcpy(text, section, section_len);
    e->section[section_len] = '\0';
    e->key = memcpy(text + section_len + 1, key, key_len);
    e->key[key_len] = '\0';
    e->value = memcpy(text + section_len + key_len + 2, value, value_len);
    e->value[value_len] = '\0';
    ascii_lower(e->section);
    ascii_lower(e->key);
    e->origin = origin;
    e->line = line;
    cfg->entries[cfg->count++] = e;
    return 0;
}

/* ---- loading -------------------------------------------------------- */

typedef struct load_state {
    sa_config *cfg;
    FILE *file;
    int line;       /* lines handed to inih so far: the current line */
    int error_line; /* line of the first error we found ourselves, or 0 */
    int read_errno; /* errno of a read error, or 0 */
    char *err;
    size_t errlen;
} load_state;

/* fgets for inih that counts lines and refuses lines longer than inih's
 * buffer (fgets would hand over the rest as a line of its own). Returning
 * NULL ends the parse, which we do at the first error we find. */
static char *read_line(char *str, int num, void *stream)
{
    load_state *st = stream;
    if (st->error_line || st->read_errno || num < 2)
        return NULL;
    size_t n = 0, cap = (size_t)num - 1;
    int c = EOF, has_nul = 0;
    while (n < cap && (c = getc(st->file)) != EOF) {
        has_nul |= c == '\0';
        str[n++] = (char)c;
        if (c == '\n')
            break;
    }
    if (n == 0) {
        if (ferror(st->file))
            st->read_errno = errno ? errno : EIO;
        return NULL;
    }
    str[n] = '\0';
    st->line++;
    if (n == cap && str[n - 1] != '\n') {
        c = getc(st->file);
        if (c != '\n' && c != EOF) {
            while ((c = getc(st->file)) != '\n' && c != EOF)
                continue;
            st->error_line = st->line;
            set_error(st->err, st->errlen, "%s:%d: line too long (max %zu bytes)",
                      st->cfg->path, st->line, cap);
            return NULL;
        }
    }
    if (has_nul) {
        st->error_line = st->line;
        set_error(st->err, st->errlen, "%s:%d: NUL byte in line", st->cfg->path, st->line);
        return NULL;
    }
    return str;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    load_state *st = user;
    if (st->error_line)
        return 0;
    size_t section_len = strlen(section), name_len = strlen(name);
    section = trim(section, &section_len);
    if (name_len == 0)
        return 0; /* "= value": inih reports this line as a syntax error */
    if (section_len == 0) {
        st->error_line = st->line;
        set_error(st->err, st->errlen, "%s:%d: '%s' is outside any [section]", st->cfg->path,
                  st->line, name);
        return 0;
    }
    if (add_entry(st->cfg, section, section_len, name, name_len, value, strlen(value),
                  st->cfg->path, st->line) != 0) {
        st->error_line = st->line;
        set_error(st->err, st->errlen, "%s:%d: out of memory", st->cfg->path, st->line);
        return 0;
    }
    return 1;
}

/* The folder holding `path`, absolute. */
static char *folder_of(const char *path)
{
    char *copy = strdup(path); /* dirname may write into its argument */
    if (!copy)
        return NULL;
    char *dir = absolute_dir(dirname(copy));
    free(copy);
    return dir;
}

sa_config *sa_config_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    sa_config *cfg = config_alloc();
    if (cfg) {
        cfg->path = strdup(path);
        cfg->base_dir = folder_of(path);
    }
    if (!cfg || !cfg->path || !cfg->base_dir) {
        set_error(err, errlen, "%s: out of memory", path);
        sa_config_free(cfg);
        fclose(f);
        return NULL;
    }

    /* inih's run-time settings (Debian builds it with them). Continuation
     * lines would silently turn an indented "key = value" into the value
     * of the key above; without them that line is an ordinary entry. */
    ini_allow_multiline = false;
    ini_stop_on_first_error = true;

    load_state st = {.cfg = cfg, .file = f, .err = err, .errlen = errlen};
    int rc = ini_parse_stream(read_line, &st, on_ini_entry, &st);
    fclose(f);
    if (st.read_errno) {
        set_error(err, errlen, "%s: cannot read: %s", path, strerror(st.read_errno));
    } else if (rc > 0 && (st.error_line == 0 || rc < st.error_line)) {
        set_error(err, errlen, "%s:%d: syntax error", path, rc);
    } else if (rc < 0) {
        set_error(err, errlen, "%s: out of memory", path);
    } else if (st.error_line == 0) {
        return cfg;
    }
    sa_config_free(cfg);
    return NULL;
}

int sa_config_override(sa_config *cfg, const char *assignment, int position, char *err,
                       size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    const char *dot = eq ? memchr(assignment, '.', (size_t)(eq - assignment)) : NULL;
    if (!dot) {
        set_error(err, errlen, "-o %s: expected section.key=value", assignment);
        return -1;
    }
    size_t section_len = (size_t)(dot - assignment);
    size_t key_len = (size_t)(eq - dot - 1);
    size_t value_len = strlen(eq + 1);
    const char *section = trim(assignment, &section_len);
    const char *key = trim(dot + 1, &key_len);
    const char *value = trim(eq + 1, &value_len);
    if (section_len == 0 || key_len == 0) {
        set_error(err, errlen, "-o %s: expected section.key=value", assignment);
        return -1;
    }
    if (add_entry(cfg, section, section_len, key, key_len, value, value_len, OVERRIDE_ORIGIN,
                  position) != 0) {
        set_error(err, errlen, "-o %s: out of memory", assignment);
        return -1;
    }
    return 0;
}

/* ---- lookups and checks --------------------------------------------- */

const sa_config_entry *sa_config_find(const sa_config *cfg, const char *section,
                                      const char *key)
{
    for (size_t i = cfg->count; i-- > 0;) {
        const sa_config_entry *e = cfg->entries[i];
        if (strcasecmp(e->section, section) == 0 && strcasecmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

const sa_config_key *sa_config_key_find(const sa_config_key *keys, const char *name)
{
    if (!keys)
        return NULL;
    for (; keys->name; keys++)
        if (strcasecmp(keys->name, name) == 0)
            return keys;
    return NULL;
}

static int parse_int(const char *text, int64_t *out)
{
    if (!*text)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* 1 or 0 for a boolean word, -1 for anything else. */
static int parse_bool(const char *text)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return 1;
        if (strcasecmp(text, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* The SA_CFG_NAME rule: empty, or 1..NAME_MAX_LEN of [A-Za-z0-9_.-]. */
static int is_config_name(const char *text)
{
    size_t len = 0;
    for (; text[len]; len++) {
        char c = text[len];
        if (len == NAME_MAX_LEN ||
            !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Appends to the message already in err (which set_error started). */
__attribute__((format(printf, 3, 4))) static void append_error(char *err, size_t errlen,
                                                               const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    size_t used = strnlen(err, errlen);
    if (used + 1 >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
}

/* Starts a message about entry `e` with where it came from. */
static void error_at(const sa_config_entry *e, char *err, size_t errlen)
{
    if (strcmp(e->origin, OVERRIDE_ORIGIN) == 0)
        set_error(err, errlen, "-o %s.%s: ", e->section, e->key);
    else
        set_error(err, errlen, "%s:%d: [%s] %s: ", e->origin, e->line, e->section, e->key);
}

/* Returns 0 when e's value parses as key's type; otherwise writes why. */
static int check_value(const sa_config_entry *e, const sa_config_key *key, char *err,
                       size_t errlen)
{
    int64_t v;
    switch (key->type) {
    case SA_CFG_INT:
        if (parse_int(e->value, &v) == 0 && v >= key->min && v <= key->max)
            return 0;
        error_at(e, err, errlen);
        append_error(err, errlen,
                     "'%s' is not a whole number between %" PRId64 " and %" PRId64, e->value,
                     key->min, key->max);
        return -1;
    case SA_CFG_BOOL:
        if (parse_bool(e->value) >= 0)
            return 0;
        error_at(e, err, errlen);
        append_error(err, errlen, "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                     e->value);
        return -1;
    case SA_CFG_NAME:
        if (is_config_name(e->value))
            return 0;
        error_at(e, err, errlen);
        append_error(err, errlen, "'%s' is not a name (1-64 of A-Z a-z 0-9 _ . -)", e->value);
        return -1;
    case SA_CFG_STRING:
    case SA_CFG_PATH:
        return 0;
    }
    error_at(e, err, errlen);
    append_error(err, errlen, "the plugin's schema gives this key an unknown type");
    return -1;
}

int sa_config_check_section(const sa_config *cfg, const char *section,
                            const sa_config_key *keys, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->count; i++) {
        const sa_config_entry *e = cfg->entries[i];
        if (strcasecmp(e->section, section) != 0)
            continue;
        const sa_config_key *key = sa_config_key_find(keys, e->key);
        if (!key) {
            if (strcmp(e->origin, OVERRIDE_ORIGIN) == 0)
                set_error(err, errlen, "-o %s.%s: unknown key '%s'", e->section, e->key, e->key);
            else
                set_error(err, errlen, "%s:%d: [%s] unknown key '%s'", e->origin, e->line,
                          e->section, e->key);
            return -1;
        }
        if (check_value(e, key, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* ---- typed getters -------------------------------------------------- */

static const char *raw_value(const sa_config *cfg, const char *section,
                             const sa_config_key *key)
{
    const sa_config_entry *e = sa_config_find(cfg, section, key->name);
    if (e)
        return e->value;
    return key->default_value ? key->default_value : "";
}

/* The cached absolute form of a relative path; NULL when out of memory. */
static const char *resolve_path(sa_config *cfg, const char *raw)
{
    const char *result = NULL;
    pthread_mutex_lock(&cfg->paths_lock);
    for (resolved_path *p = cfg->paths; p; p = p->next) {
        if (p->raw == raw) {
            result = p->resolved;
            break;
        }
    }
    if (!result) {
        size_t base_len = strlen(cfg->base_dir), raw_len = strlen(raw);
        int needs_slash = base_len == 0 || cfg->base_dir[base_len - 1] != '/';
        resolved_path *p = malloc(sizeof *p + base_len + (size_t)needs_slash + raw_len + 1);
        if (p) {
            char *out = p->resolved;
            memcpy(out, cfg->base_dir, base_len);
            if (needs_slash)
                out[base_len] = '/';
            memcpy(out + base_len + needs_slash, raw, raw_len + 1);
            p->raw = raw;
            p->next = cfg->paths;
            cfg->paths = p;
            result = p->resolved;
        }
    }
    pthread_mutex_unlock(&cfg->paths_lock);
    return result;
}

const char *sa_config_string(sa_config *cfg, const char *section, const sa_config_key *key)
{
    const char *raw = raw_value(cfg, section, key);
    if (key->type != SA_CFG_PATH || raw[0] == '\0' || raw[0] == '/')
        return raw;
    const char *resolved = resolve_path(cfg, raw);
    /* Out of memory: the relative path still names the file from a
     * process started in the INI's folder; better than nothing. */
    return resolved ? resolved : raw;
}

int64_t sa_config_int(const sa_config *cfg, const char *section, const sa_config_key *key)
{
    int64_t v;
    return parse_int(raw_value(cfg, section, key), &v) == 0 ? v : 0;
}

int sa_config_bool(const sa_config *cfg, const char *section, const sa_config_key *key)
{
    return parse_bool(raw_value(cfg, section, key)) == 1;
}

const char *sa_config_base_dir(const sa_config *cfg)
{
    return cfg->base_dir;
}

const char *sa_config_path(const sa_config *cfg)
{
    return cfg->path;
}

/* ---- lists ---------------------------------------------------------- */

static int is_list_separator(char c)
{
    return c == ' ' || c == '\t' || c == ',';
}

/* Finds the next item at or after *p: returns its start and length and
 * moves *p past it, or returns NULL at the end. */
static const char *next_item(const char **p, size_t *len)
{
    const char *s = *p;
    while (is_list_separator(*s))
        s++;
    if (!*s)
        return NULL;
    *len = 0;
    while (s[*len] && !is_list_separator(s[*len]))
        (*len)++;
    *p = s + *len;
    return s;
}

char **sa_config_split_list(const char *value)
{
    if (!value)
        value = "";
    size_t items = 0, text_bytes = 0, len;
    for (const char *p = value; next_item(&p, &len);) {
        items++;
        text_bytes += len + 1;
    }
    /* The pointer array first, then the strings it points at. */
    char **list = malloc((items + 1) * sizeof *list + text_bytes);
    if (!list)
        return NULL;
    char *text = (char *)(list + items + 1);
    size_t n = 0;
    const char *item;
    for (const char *p = value; (item = next_item(&p, &len));) {
        list[n++] = memcpy(text, item, len);
        text[len] = '\0';
        text += len + 1;
    }
    list[n] = NULL;
    return list;
}
