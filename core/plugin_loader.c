#include "plugin_loader.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"

char *sa_plugin_file_name(const char *name, enum sa_plugin_kind kind)
{
    char *file = NULL;
    if (asprintf(&file, "%s%s.so", kind == SA_PLUGIN_ENGINE ? "engine_" : "", name) < 0)
        return NULL;
    return file;
}

char *sa_plugin_default_dir(const char *exe_dir)
{
    char *dir = NULL;
    if (asprintf(&dir, "%s/%s", exe_dir, SA_PLUGIN_RELDIR) < 0)
        return NULL;
    /* Tidier in messages; a folder that does not exist stays as written. */
    char *resolved = realpath(dir, NULL);
    if (resolved) {
        free(dir);
        dir = resolved;
    }
    return dir;
}

__attribute__((format(printf, 4, 5))) static int refuse(sa_loaded_plugin *out, char *err,
                                                        size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    sa_plugin_unload(out);
    return -1;
}

int sa_plugin_load(char *const *dirs, const char *name, enum sa_plugin_kind kind,
                   sa_loaded_plugin *out, char *err, size_t errlen)
{
    const char *what = kind == SA_PLUGIN_ENGINE ? "engine" : "plugin";
    memset(out, 0, sizeof *out);
    if (!sa_name_valid(name, 64)) {
        snprintf(err, errlen, "%s name '%s' is not valid (letters, digits, _ . -)", what, name);
        return -1;
    }
    char *file = sa_plugin_file_name(name, kind);
    if (!file) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; dirs[i] && !out->path; i++) {
        char *candidate = NULL;
        if (asprintf(&candidate, "%s/%s", dirs[i], file) < 0)
            break;
        if (access(candidate, F_OK) == 0)
            out->path = candidate;
        else
            free(candidate);
    }
    free(file);
    if (!out->path) {
        snprintf(err, errlen, "unknown %s '%s': no %s%s.so in %s%s", what, name,
                 kind == SA_PLUGIN_ENGINE ? "engine_" : "", name, dirs[0] ? dirs[0] : "",
                 dirs[0] && dirs[1] ? " or the other plugin folders" : "");
        return -1;
    }
    out->handle = dlopen(out->path, RTLD_NOW | RTLD_LOCAL);
    if (!out->handle)
        return refuse(out, err, errlen, "cannot load %s: %s", name, dlerror());

    sa_plugin_entry_fn entry = NULL;
    *(void **)&entry = dlsym(out->handle, SA_PLUGIN_ENTRY_SYMBOL);
    if (!entry)
        return refuse(out, err, errlen, "%s: not a SyncAsync plugin (no %s symbol)", out->path,
                      SA_PLUGIN_ENTRY_SYMBOL);
    const sa_plugin *desc = entry();
    if (!desc)
        return refuse(out, err, errlen, "%s: %s returned no descriptor", out->path,
                      SA_PLUGIN_ENTRY_SYMBOL);
    if (desc->abi != SA_ABI_VERSION)
        return refuse(out, err, errlen,
                      "%s: built for plugin ABI version %u, this syncasyncd has ABI version %u; "
                      "rebuild the plugin against the installed headers",
                      out->path, desc->abi, SA_ABI_VERSION);
    if (desc->kind != (uint32_t)kind)
        return refuse(out, err, errlen, "%s: is not %s", out->path,
                      kind == SA_PLUGIN_ENGINE ? "an engine plugin" : "a handler plugin");
    if (!desc->name || strcmp(desc->name, name) != 0)
        return refuse(out, err, errlen, "%s: calls itself '%s'", out->path,
                      desc->name ? desc->name : "(null)");
    if (kind == SA_PLUGIN_ENGINE ? !desc->engine : !desc->init)
        return refuse(out, err, errlen, "%s: descriptor lacks %s", out->path,
                      kind == SA_PLUGIN_ENGINE ? "engine operations" : "an init function");
    out->desc = desc;
    return 0;
}

void sa_plugin_unload(sa_loaded_plugin *p)
{
    if (p->handle)
        dlclose(p->handle);
    free(p->path);
    memset(p, 0, sizeof *p);
}
