/* sa-bench command line: which server, which workload, and its sizes. */
#ifndef BENCH_OPTIONS_H
#define BENCH_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

enum bench_workload { BENCH_FANOUT, BENCH_CONNS, BENCH_FILES };

enum bench_target { BENCH_SYNCASYNC, BENCH_REDIS, BENCH_MOSQUITTO };

typedef struct bench_options {
    /* host and port point into argv (or are string literals): not freed. */
    const char *host, *port;
    enum bench_target target;
    enum bench_workload workload;
    const char *room;       /* room / channel / topic of fanout (argv or literal) */
    uint32_t rooms;         /* --rooms: subscribers and senders dealt over this many rooms */
    bool chat;              /* --chat: senders receive too (every member is a subscriber) */
    uint32_t subscribers;   /* -S */
    uint32_t senders;       /* -P */
    uint64_t messages;      /* -M, per sender */
    uint32_t text_bytes;    /* -B */
    double rate;            /* --rate: messages per second, all senders together; 0 = flat out */
    uint32_t window;        /* --window: messages per sender not yet fully delivered */
    double duration;        /* --duration: seconds the senders may send at most */
    double drain;           /* --drain: seconds to wait for what is due, or without progress */
    uint32_t connections;   /* -C */
    uint32_t sources;       /* --sources: 127.0.0.1 .. 127.0.0.N; 0 = as many as C needs */
    uint32_t concurrency;   /* --concurrency: connections being set up at once */
    double setup_timeout;   /* --setup-timeout: seconds to connect and log in everyone */
    long server_pid;        /* --server-pid; 0 = none */
    uint64_t seed;          /* --seed; made up from the clock when absent */
    bool json;              /* --json: the summary JSON alone */
    uint64_t file_mib;      /* --mib: size of the files workload's file */
    bool blocking_client;   /* --mode sync: the files workload's blocking client core */
} bench_options;

/* Fills opt from argv. Returns -1 to go on, or the exit status to end with:
 * 0 after --help or --version, 2 for bad usage (the message is printed). */
int bench_parse_options(int argc, char **argv, bench_options *opt);

const char *bench_target_name(enum bench_target target);
const char *bench_workload_name(enum bench_workload workload);

#endif
