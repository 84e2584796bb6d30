/* syncasyncd: reads the configuration, loads the engine and the handler
 * plugins, serves. Exit status: 0 ok, 1 runtime failure, 2 bad usage or
 * bad configuration (INTERFACE.md). */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h" /* sa_codec_keep_heap */
#include "config.h"
#include "log.h"
#include "server.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static void usage(FILE *out)
{
    fprintf(out,
            "usage: syncasyncd [-c FILE] [-o SECTION.KEY=VALUE]... [-t] [-v|-q]\n"
            "\n"
            "SyncAsync chat and file-transfer server.\n"
            "\n"
            "  -c, --config FILE   configuration (default: %s,\n"
            "                      or the source tree's conf/syncasync.ini in a build tree)\n"
            "  -o, --set S.K=V     override one setting, e.g. -o server.engine=sync (repeatable)\n"
            "  -t, --test          check the configuration and that every plugin loads, then exit\n"
            "  -v, --verbose       log at debug level\n"
            "  -q, --quiet         log errors only\n"
            "  -h, --help          this text\n"
            "  -V, --version       print the version\n"
            "\n"
            "Signals: SIGINT/SIGTERM stop gracefully (clients get bye shutdown).\n"
            "Exit status: 0 ok, 1 runtime failure, 2 bad usage or configuration.\n",
            SA_INSTALLED_CONF);
}

/* The folder of the running program, for finding plugins and the
 * default configuration without any setting. */
static char *program_dir(const char *argv0)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0) {
        path[n] = '\0';
    } else if (!realpath(argv0, path)) {
        return NULL;
    }
    return strdup(dirname(path));
}

static const char *default_config(const char *exe_dir)
{
    return strcmp(exe_dir, SA_BUILD_BINDIR) == 0 ? SA_SOURCE_CONF : SA_INSTALLED_CONF;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 'o'},
        {"test", no_argument, NULL, 't'},         {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    const char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    size_t override_count = 0;
    int test_only = 0, verbosity = 0;
    if (!overrides)
        return EXIT_RUNTIME;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:o:tvqhV", options, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'o': overrides[override_count++] = optarg; break;
        case 't': test_only = 1; break;
        case 'v': verbosity = 1; break;
        case 'q': verbosity = -1; break;
        case 'h': usage(stdout); free(overrides); return 0;
        case 'V': printf("syncasyncd %s (plugin ABI %u)\n", SA_VERSION, SA_ABI_VERSION);
                  free(overrides); return 0;
        default: usage(stderr); free(overrides); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "syncasyncd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        free(overrides);
        return EXIT_USAGE;
    }
    /* As the last override, so that it wins over the INI and also governs
     * the plugin-load lines logged during setup. */
    if (verbosity != 0)
        overrides[override_count++] =
            verbosity > 0 ? "server.log_level=debug" : "server.log_level=error";
    sa_codec_keep_heap();
    /* Before any thread exists, so that every thread inherits the mask and
     * only the server's signal thread takes these signals. */
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGHUP);
    sigaddset(&blocked, SIGUSR1);
    sigaddset(&blocked, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);

    char *exe_dir = program_dir(argv[0]);
    if (!exe_dir) {
        fprintf(stderr, "syncasyncd: cannot find the program's own folder\n");
        free(overrides);
        return EXIT_RUNTIME;
    }
    if (!config_path)
        config_path = default_config(exe_dir);

    char err[1024];
    int status = EXIT_USAGE;
    sa_server *srv = NULL;
    sa_config *cfg = sa_config_load(config_path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "syncasyncd: %s\n", err);
        goto out;
    }
    for (size_t i = 0; i < override_count; i++) {
        if (sa_config_override(cfg, overrides[i], (int)i + 1, err, sizeof err) != 0) {
            fprintf(stderr, "syncasyncd: %s\n", err);
            goto out;
        }
    }
    srv = sa_server_setup(cfg, exe_dir, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "syncasyncd: %s\n", err);
        goto out;
    }
    if (test_only) {
        printf("syncasyncd: configuration %s is ok (engine %s, plugins %s)\n", config_path,
               srv->settings.engine, srv->features_json);
        status = 0;
        goto out;
    }
    status = sa_server_run(srv);
out:
    sa_server_teardown(srv);
    sa_config_free(cfg);
    free(exe_dir);
    free(overrides);
    return status;
}
