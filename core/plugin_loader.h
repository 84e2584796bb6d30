/* Finding and loading plugin shared objects, and refusing the wrong ones. */
#ifndef SA_PLUGIN_LOADER_H
#define SA_PLUGIN_LOADER_H

#include <stddef.h>

#include <syncasync/plugin.h>

typedef struct sa_loaded_plugin {
    void *handle;           /* dlopen handle; dlclose'd by sa_plugin_unload */
    const sa_plugin *desc;  /* lives inside the .so */
    char *path;             /* the file loaded (owned) */
} sa_loaded_plugin;

/* File name of a plugin: handlers "NAME.so", engines "engine_NAME.so". */
char *sa_plugin_file_name(const char *name, enum sa_plugin_kind kind);

/* Searches `dirs` (NULL-terminated, in order) for the plugin and loads it
 * with RTLD_NOW | RTLD_LOCAL. Refuses a file without the entry symbol, one
 * built for another ABI, one of the wrong kind, or whose name differs from
 * the one asked for. Returns 0, or -1 with a message in err. */
int sa_plugin_load(char *const *dirs, const char *name, enum sa_plugin_kind kind,
                   sa_loaded_plugin *out, char *err, size_t errlen);
void sa_plugin_unload(sa_loaded_plugin *p);

/* The built-in plugin folder: next to the running program. */
char *sa_plugin_default_dir(const char *exe_dir);

#endif
