/*
 * sa-chaos: a TCP proxy that injects faults (delay, jitter, tiny segments,
 * bandwidth caps, resets, black holes) between clients and a server, for
 * testing how both ends cope. One libev loop serves every connection.
 */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "options.h"
#include "proxy.h"

#define EXIT_FAILURE_RUNTIME 1

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    chaos_log_info("signal %d: stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

/* One line per direction naming the faults in force, for the log. */
static void log_faults(const chaos_config *cfg)
{
    for (int d = CHAOS_UP; d <= CHAOS_DOWN; d++) {
        const chaos_faults *f = &cfg->faults[d];
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        if (!out)
            return;
        if (f->delay > 0 || f->jitter > 0)
            fprintf(out, ", delay %.0f ms + up to %.0f ms jitter", f->delay * 1000.0,
                    f->jitter * 1000.0);
        if (f->segment)
            fprintf(out, ", segments of 1 to %llu bytes", (unsigned long long)f->segment);
        if (f->rate)
            fprintf(out, ", at most %llu bytes/s", (unsigned long long)f->rate);
        if (f->reset_after != CHAOS_NEVER)
            fprintf(out, ", reset after %llu bytes", (unsigned long long)f->reset_after);
        if (f->reset_prob > 0)
            fprintf(out, ", reset with chance %g per segment", f->reset_prob);
        if (f->blackhole_after != CHAOS_NEVER)
            fprintf(out, ", black hole after %llu bytes", (unsigned long long)f->blackhole_after);
        if (fclose(out) != 0) {
            free(text);
            return;
        }
        chaos_log_info("%s: %s", d == CHAOS_UP ? "up (client to server)" : "down (server to client)",
                       len ? text + 2 : "no faults");
        free(text);
    }
}

int main(int argc, char **argv)
{
    chaos_config cfg;
    int status = chaos_parse_options(argc, argv, &cfg);
    if (status >= 0) {
        chaos_config_free(&cfg);
        return status;
    }
    chaos_log_set_quiet(cfg.quiet);
    /* A peer that went away must be an error return, not a signal. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        chaos_log_error("cannot ignore SIGPIPE");
        chaos_config_free(&cfg);
        return EXIT_FAILURE_RUNTIME;
    }

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        chaos_log_error("cannot initialise libev");
        chaos_config_free(&cfg);
        return EXIT_FAILURE_RUNTIME;
    }
    log_faults(&cfg);
    chaos_proxy *proxy = chaos_proxy_open(loop, &cfg);
    if (!proxy) {
        ev_loop_destroy(loop);
        chaos_config_free(&cfg);
        return EXIT_FAILURE_RUNTIME;
    }
    ev_signal sigint, sigterm;
    ev_signal_init(&sigint, on_stop_signal, SIGINT);
    ev_signal_init(&sigterm, on_stop_signal, SIGTERM);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);

    ev_run(loop, 0);

    ev_signal_stop(loop, &sigint);
    ev_signal_stop(loop, &sigterm);
    chaos_proxy_close(proxy);
    ev_loop_destroy(loop);
    chaos_config_free(&cfg);
    return 0;
}
