#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: sa-bench [options]\n"
    "Load generator for syncasyncd, with matching drivers for Redis pub/sub and\n"
    "Mosquitto (MQTT 3.1.1), so that the same workload runs against each.\n"
    "\n"
    "  --host H            server address (default 127.0.0.1)\n"
    "  --port P            server port (default 5050; 6379 for redis, 1883 for mosquitto)\n"
    "  --target T          syncasync | redis | mosquitto (default syncasync)\n"
    "  --workload W        fanout | conns | files (default fanout)\n"
    "\n"
    "fanout: S subscribers in one room, P senders, M messages of B bytes each.\n"
    "  -S N                subscribers (default 100)\n"
    "  -P N                senders (default 1)\n"
    "  -M N                messages per sender (default 10000)\n"
    "  -B N                text bytes per message, at least 48 (default 100)\n"
    "  --rate R            messages per second, all senders together (default 0: flat out)\n"
    "  --window N          messages per sender sent but not yet delivered to every\n"
    "                      subscriber (and, where the protocol answers, acknowledged)\n"
    "                      (default 64)\n"
    "  --duration SEC      stop sending after SEC seconds even before M (default 10)\n"
    "  --drain SEC         after the last message, wait at most SEC seconds for the\n"
    "                      deliveries still due; also ends a run that makes no\n"
    "                      progress for SEC seconds (default 5)\n"
    "  --room NAME         room, channel or topic (default bench)\n"
    "  --rooms N           deal subscribers and senders round-robin over N rooms\n"
    "                      (NAME0 .. NAME<N-1>); each sender sends to its own room\n"
    "  --chat              senders are subscribers too: every member of a room gets\n"
    "                      the others' messages, latency included (syncasync only;\n"
    "                      e.g. -S 0 -P 2000 --rooms 20 --chat --rate 2000)\n"
    "  A syncasyncd under test needs the chat and rooms plugins and chat.rate=0.\n"
    "\n"
    "conns: C idle logged-in connections, then a ping on each that must be answered.\n"
    "  -C N                connections (default 1000)\n"
    "  --sources N         bind to 127.0.0.1 .. 127.0.0.N before connecting, so that\n"
    "                      more than one address's ports fit (default: C / 25000, rounded up)\n"
    "  --server-pid PID    read the server's VmRSS before and after (RSS per connection);\n"
    "                      with fanout, the server's CPU use is reported\n"
    "\n"
    "files: one file of random bytes uploaded, then downloaded by the same user, with\n"
    "  the client library of sa-send and sa-recv; SHA-256 checked both ways (syncasync\n"
    "  only; the server needs the file plugin). Seconds and MiB/s of each.\n"
    "  --mib N             the file's size in MiB (default 256)\n"
    "  --mode sync|async   the client library's blocking or libev core (default async)\n"
    "\n"
    "  --concurrency N     connections being set up at once (default 500)\n"
    "  --setup-timeout SEC connecting and logging in everyone (default 60)\n"
    "  --seed N            names, client ids and padding derive from it (default: clock)\n"
    "  --json              print only the summary JSON (one line) on stdout\n"
    "  --help, --version\n"
    "\n"
    "The last line on stdout is always the summary: \"SUMMARY {json}\" (or the bare\n"
    "JSON with --json). Exit status: 0 done, 1 the workload could not run (server\n"
    "unreachable, setup failed, connections not all up), 2 bad usage.\n";

const char *bench_target_name(enum bench_target target)
{
    switch (target) {
    case BENCH_REDIS:
        return "redis";
    case BENCH_MOSQUITTO:
        return "mosquitto";
    case BENCH_SYNCASYNC:
        break;
    }
    return "syncasync";
}

const char *bench_workload_name(enum bench_workload workload)
{
    return workload == BENCH_CONNS ? "conns" : workload == BENCH_FILES ? "files" : "fanout";
}

/* Whole number in [min, max]. */
static int parse_u64(const char *name, const char *text, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] == '-' || errno != 0 || end == text || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "sa-bench: %s wants a whole number from %llu to %llu, not \"%s\"\n",
                name, (unsigned long long)min, (unsigned long long)max, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_u32(const char *name, const char *text, uint32_t min, uint32_t max,
                     uint32_t *out)
{
    uint64_t v;
    if (parse_u64(name, text, min, max, &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Finite number in [min, max]. */
static int parse_double(const char *name, const char *text, double min, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "sa-bench: %s wants a number from %g to %g, not \"%s\"\n", name, min,
                max, text);
        return -1;
    }
    *out = v;
    return 0;
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_TARGET, OPT_WORKLOAD, OPT_RATE, OPT_WINDOW, OPT_DURATION,
    OPT_DRAIN, OPT_ROOM, OPT_SOURCES, OPT_SERVER_PID, OPT_CONCURRENCY, OPT_SETUP_TIMEOUT,
    OPT_SEED, OPT_JSON, OPT_ROOMS, OPT_CHAT, OPT_MIB, OPT_MODE, OPT_HELP, OPT_VERSION
};

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"target", required_argument, NULL, OPT_TARGET},
    {"workload", required_argument, NULL, OPT_WORKLOAD},
    {"rate", required_argument, NULL, OPT_RATE},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"room", required_argument, NULL, OPT_ROOM},
    {"rooms", required_argument, NULL, OPT_ROOMS},
    {"chat", no_argument, NULL, OPT_CHAT},
    {"sources", required_argument, NULL, OPT_SOURCES},
    {"server-pid", required_argument, NULL, OPT_SERVER_PID},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"setup-timeout", required_argument, NULL, OPT_SETUP_TIMEOUT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"json", no_argument, NULL, OPT_JSON},
    {"mib", required_argument, NULL, OPT_MIB},
    {"mode", required_argument, NULL, OPT_MODE},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* Room, channel and topic names: what every target accepts as one name. */
static int room_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

/* One option; 0 when it was fine. */
static int apply_option(int opt_char, const char *arg, bench_options *opt, bool *port_given)
{
    uint64_t u64;
    switch (opt_char) {
    case OPT_HOST:
        opt->host = arg;
        return 0;
    case OPT_PORT:
        if (parse_u64("--port", arg, 1, 65535, &u64) != 0)
            return -1;
        opt->port = arg;
        *port_given = true;
        return 0;
    case OPT_TARGET:
        if (strcmp(arg, "syncasync") == 0)
            opt->target = BENCH_SYNCASYNC;
        else if (strcmp(arg, "redis") == 0)
            opt->target = BENCH_REDIS;
        else if (strcmp(arg, "mosquitto") == 0 || strcmp(arg, "mqtt") == 0)
            opt->target = BENCH_MOSQUITTO;
        else {
            fprintf(stderr, "sa-bench: --target is syncasync, redis or mosquitto, not \"%s\"\n",
                    arg);
            return -1;
        }
        return 0;
    case OPT_WORKLOAD:
        if (strcmp(arg, "fanout") == 0)
            opt->workload = BENCH_FANOUT;
        else if (strcmp(arg, "conns") == 0)
            opt->workload = BENCH_CONNS;
        else if (strcmp(arg, "files") == 0)
            opt->workload = BENCH_FILES;
        else {
            fprintf(stderr, "sa-bench: --workload is fanout, conns or files, not \"%s\"\n",
                    arg);
            return -1;
        }
        return 0;
    case 'S':
        return parse_u32("-S", arg, 0, 1000000, &opt->subscribers);
    case 'P':
        return parse_u32("-P", arg, 1, 100000, &opt->senders);
    case 'M':
        return parse_u64("-M", arg, 1, UINT64_C(1000000000000), &opt->messages);
    case 'B':
        /* 48: room for the "SENDER SEQ TIMESTAMP " header of every text. */
        return parse_u32("-B", arg, 48, 1000000, &opt->text_bytes);
    case OPT_RATE:
        return parse_double("--rate", arg, 0, 1e9, &opt->rate);
    case OPT_WINDOW:
        return parse_u32("--window", arg, 1, 1u << 20, &opt->window);
    case OPT_DURATION:
        return parse_double("--duration", arg, 0.001, 3600, &opt->duration);
    case OPT_DRAIN:
        return parse_double("--drain", arg, 0.001, 600, &opt->drain);
    case OPT_ROOM:
        if (!room_name_valid(arg)) {
            fprintf(stderr, "sa-bench: --room wants 1 to 64 of A-Z a-z 0-9 _ . -\n");
            return -1;
        }
        opt->room = arg;
        return 0;
    case OPT_ROOMS:
        return parse_u32("--rooms", arg, 1, 100000, &opt->rooms);
    case OPT_CHAT:
        opt->chat = true;
        return 0;
    case 'C':
        return parse_u32("-C", arg, 1, 10000000, &opt->connections);
    case OPT_SOURCES:
        return parse_u32("--sources", arg, 1, 254, &opt->sources);
    case OPT_SERVER_PID:
        if (parse_u64("--server-pid", arg, 1, 4194304, &u64) != 0)
            return -1;
        opt->server_pid = (long)u64;
        return 0;
    case OPT_CONCURRENCY:
        return parse_u32("--concurrency", arg, 1, 1000000, &opt->concurrency);
    case OPT_SETUP_TIMEOUT:
        return parse_double("--setup-timeout", arg, 0.1, 3600, &opt->setup_timeout);
    case OPT_SEED:
        return parse_u64("--seed", arg, 0, UINT64_MAX, &opt->seed);
    case OPT_JSON:
        opt->json = true;
        return 0;
    case OPT_MIB:
        return parse_u64("--mib", arg, 1, UINT64_C(1) << 22, &opt->file_mib);
    case OPT_MODE:
        if (strcmp(arg, "sync") != 0 && strcmp(arg, "async") != 0) {
            fprintf(stderr, "sa-bench: --mode is sync or async, not \"%s\"\n", arg);
            return -1;
        }
        opt->blocking_client = strcmp(arg, "sync") == 0;
        return 0;
    default:
        return -1;
    }
}

int bench_parse_options(int argc, char **argv, bench_options *opt)
{
    *opt = (bench_options){
        .host = "127.0.0.1",
        .port = "5050",
        .target = BENCH_SYNCASYNC,
        .workload = BENCH_FANOUT,
        .room = "bench",
        .rooms = 1,
        .subscribers = 100,
        .senders = 1,
        .messages = 10000,
        .text_bytes = 100,
        .window = 64,
        .duration = 10,
        .drain = 5,
        .connections = 1000,
        .concurrency = 500,
        .setup_timeout = 60,
        .file_mib = 256,
    };
    bool port_given = false, seed_given = false;
    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "S:P:M:B:C:", long_options, NULL)) != -1) {
        if (c == OPT_HELP) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (c == OPT_VERSION) {
            printf("sa-bench %s\n", SA_VERSION);
            return 0;
        }
        if (c == '?' || apply_option(c, optarg, opt, &port_given) != 0) {
            fprintf(stderr, "Try 'sa-bench --help'.\n");
            return 2;
        }
        if (c == OPT_SEED)
            seed_given = true;
    }
    if (optind < argc) {
        fprintf(stderr, "sa-bench: unexpected argument \"%s\"\nTry 'sa-bench --help'.\n",
                argv[optind]);
        return 2;
    }
    if (opt->chat && opt->target != BENCH_SYNCASYNC) {
        /* A Redis subscriber cannot publish on the same connection, and an
         * MQTT client would get its own messages back. */
        fprintf(stderr, "sa-bench: --chat works with --target syncasync only\n");
        return 2;
    }
    if (opt->workload == BENCH_FILES && opt->target != BENCH_SYNCASYNC) {
        fprintf(stderr, "sa-bench: --workload files works with --target syncasync only\n");
        return 2;
    }
    if (!port_given && opt->target == BENCH_REDIS)
        opt->port = "6379";
    else if (!port_given && opt->target == BENCH_MOSQUITTO)
        opt->port = "1883";
    if (!seed_given) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        opt->seed = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^
                    ((uint64_t)getpid() << 32);
    }
    return -1;
}
