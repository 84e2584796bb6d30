#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sa_hostport.h"

#ifndef SA_VERSION
#error "SA_VERSION must be defined by the build"
#endif

#define EXIT_USAGE 2
#define MAX_DELAY_MS 3600000u
#define MAX_BYTES (UINT64_C(1) << 62)

static const char usage_text[] =
    "Usage: sa-chaos --listen HOST:PORT --connect HOST:PORT [OPTION]...\n"
    "Chaos proxy: forwards every TCP connection made to --listen to --connect\n"
    "and injects faults on the way, separately in each direction: up (client to\n"
    "server) and down (server to client).\n"
    "\n"
    "  --listen HOST:PORT   where clients connect ([V6]:PORT for IPv6); port 0\n"
    "                       picks a free port; the log line \"listening on\n"
    "                       HOST:PORT\" names it once the proxy is ready\n"
    "  --connect HOST:PORT  the server every connection is forwarded to\n"
    "  --seed N             seed of the random choices (default: made up and\n"
    "                       logged); the same seed and the same bytes give the\n"
    "                       same faults; connection number K (from 0) uses N+K\n"
    "  -q, --quiet          log only errors and the \"listening on\" line\n"
    "  -h, --help           show this help and exit\n"
    "  --version            show the version and exit\n"
    "\n"
    "Faults. Each has a form for both directions (--delay), for the client to\n"
    "server direction only (--up-delay) and for the other one (--down-delay);\n"
    "a later option overrides an earlier one.\n"
    "  --delay MS           hold every segment back MS milliseconds\n"
    "  --jitter MS          and up to MS more, drawn per segment; bytes never\n"
    "                       overtake each other\n"
    "  --segment N          cut the stream into segments of 1 to N bytes (drawn\n"
    "                       at random), each sent with its own write: 1 = one\n"
    "                       byte at a time; without it a segment is what one\n"
    "                       read returned\n"
    "  --rate BYTES_PER_S   cap the throughput\n"
    "  --reset-after N      reset both connections (RST, via SO_LINGER 0) once\n"
    "                       N bytes went through in that direction\n"
    "  --reset-prob P       reset instead of sending a segment, with chance P\n"
    "                       (0 to 1) per segment\n"
    "  --blackhole-after N  once N bytes went through, stop forwarding in that\n"
    "                       direction: keep both connections open, read and\n"
    "                       discard everything (an end of stream too)\n"
    "\n"
    "The proxy reads from a side only while at most 1 MiB waits to be sent to\n"
    "the other: a slow reader slows the writer down, as without the proxy.\n"
    "SIGINT or SIGTERM closes every connection and exits 0.\n"
    "\n"
    "Exit status: 0 after a signal, --help or --version, 1 when it cannot listen\n"
    "or resolve --connect, 2 for bad usage.\n";

enum fault_kind {
    FAULT_DELAY,
    FAULT_JITTER,
    FAULT_SEGMENT,
    FAULT_RATE,
    FAULT_RESET_AFTER,
    FAULT_RESET_PROB,
    FAULT_BLACKHOLE_AFTER,
};

/* Which directions a fault option applies to: its val is
 * OPT_FAULT + 3 * kind + form. */
enum fault_form { FORM_BOTH, FORM_UP, FORM_DOWN };

enum long_only_option {
    OPT_LISTEN = 256,
    OPT_CONNECT,
    OPT_SEED,
    OPT_VERSION,
    OPT_FAULT,
};

#define FAULT_OPTIONS(name, kind)                                                      \
    {name, required_argument, NULL, OPT_FAULT + 3 * (kind) + FORM_BOTH},                \
        {"up-" name, required_argument, NULL, OPT_FAULT + 3 * (kind) + FORM_UP},        \
        {"down-" name, required_argument, NULL, OPT_FAULT + 3 * (kind) + FORM_DOWN}

static const struct option long_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"connect", required_argument, NULL, OPT_CONNECT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    FAULT_OPTIONS("delay", FAULT_DELAY),
    FAULT_OPTIONS("jitter", FAULT_JITTER),
    FAULT_OPTIONS("segment", FAULT_SEGMENT),
    FAULT_OPTIONS("rate", FAULT_RATE),
    FAULT_OPTIONS("reset-after", FAULT_RESET_AFTER),
    FAULT_OPTIONS("reset-prob", FAULT_RESET_PROB),
    FAULT_OPTIONS("blackhole-after", FAULT_BLACKHOLE_AFTER),
    {NULL, 0, NULL, 0},
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sa-chaos: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'sa-chaos --help' for more information.\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* Whole decimal number in [min, max] into *out; -1 for anything else. */
static int parse_count(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!*text || strspn(text, "0123456789") != strlen(text))
        return -1;
    errno = 0;
    unsigned long long value = strtoull(text, NULL, 10);
    if (errno != 0 || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

static int parse_probability(const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (!*text || *end || errno != 0 || !isfinite(value) || value < 0.0 || value > 1.0)
        return -1;
    *out = value;
    return 0;
}

/* Parses the value of a fault option into `parsed` (the faults of a
 * scratch direction). Returns 0 or the exit status. */
static int parse_fault_value(enum fault_kind kind, const char *option, const char *text,
                             chaos_faults *parsed)
{
    uint64_t n = 0;
    switch (kind) {
    case FAULT_DELAY:
    case FAULT_JITTER:
        if (parse_count(text, 0, MAX_DELAY_MS, &n) != 0)
            return usage_error("--%s: '%s' is not a whole number of milliseconds (0-%u)", option,
                               text, MAX_DELAY_MS);
        *(kind == FAULT_DELAY ? &parsed->delay : &parsed->jitter) = (double)n / 1000.0;
        return 0;
    case FAULT_SEGMENT:
        if (parse_count(text, 1, MAX_BYTES, &parsed->segment) != 0)
            return usage_error("--%s: '%s' is not a byte count of at least 1", option, text);
        return 0;
    case FAULT_RATE:
        if (parse_count(text, 1, MAX_BYTES, &parsed->rate) != 0)
            return usage_error("--%s: '%s' is not a rate of at least 1 byte per second", option,
                               text);
        return 0;
    case FAULT_RESET_AFTER:
    case FAULT_BLACKHOLE_AFTER:
        if (parse_count(text, 0, MAX_BYTES, &n) != 0)
            return usage_error("--%s: '%s' is not a byte count", option, text);
        *(kind == FAULT_RESET_AFTER ? &parsed->reset_after : &parsed->blackhole_after) = n;
        return 0;
    case FAULT_RESET_PROB:
        if (parse_probability(text, &parsed->reset_prob) != 0)
            return usage_error("--%s: '%s' is not a probability from 0 to 1", option, text);
        return 0;
    }
    return usage_error("--%s: unknown fault", option);
}

/* Copies the one field of `kind` from `from` to `to`. */
static void copy_fault(enum fault_kind kind, const chaos_faults *from, chaos_faults *to)
{
    switch (kind) {
    case FAULT_DELAY:
        to->delay = from->delay;
        break;
    case FAULT_JITTER:
        to->jitter = from->jitter;
        break;
    case FAULT_SEGMENT:
        to->segment = from->segment;
        break;
    case FAULT_RATE:
        to->rate = from->rate;
        break;
    case FAULT_RESET_AFTER:
        to->reset_after = from->reset_after;
        break;
    case FAULT_RESET_PROB:
        to->reset_prob = from->reset_prob;
        break;
    case FAULT_BLACKHOLE_AFTER:
        to->blackhole_after = from->blackhole_after;
        break;
    }
}

static int apply_fault_option(int val, const char *text, chaos_config *cfg)
{
    enum fault_kind kind = (enum fault_kind)((val - OPT_FAULT) / 3);
    enum fault_form form = (enum fault_form)((val - OPT_FAULT) % 3);
    const char *option = NULL;
    for (const struct option *o = long_options; o->name; o++)
        if (o->val == val)
            option = o->name;
    chaos_faults parsed = {0};
    int status = parse_fault_value(kind, option ? option : "?", text, &parsed);
    if (status != 0)
        return status;
    if (form != FORM_DOWN)
        copy_fault(kind, &parsed, &cfg->faults[CHAOS_UP]);
    if (form != FORM_UP)
        copy_fault(kind, &parsed, &cfg->faults[CHAOS_DOWN]);
    return 0;
}

static int parse_address(const char *option, const char *text, char **host, char **port)
{
    free(*host);
    free(*port);
    if (sa_split_hostport(text, host, port) != 0)
        return usage_error("--%s: '%s' is not HOST:PORT (or [V6]:PORT)", option, text);
    return 0;
}

/* Different on every run, for when the user gave no --seed (it is logged
 * so that the run can be repeated). */
static uint64_t made_up_seed(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t seed = (uint64_t)now.tv_sec * 1000000007u + (uint64_t)now.tv_nsec;
    return (seed ^ ((uint64_t)getpid() << 32)) % 1000000000000u;
}

int chaos_parse_options(int argc, char **argv, chaos_config *cfg)
{
    *cfg = (chaos_config){0};
    for (int d = 0; d < 2; d++)
        cfg->faults[d] = (chaos_faults){.reset_after = CHAOS_NEVER,
                                        .blackhole_after = CHAOS_NEVER};
    int seed_given = 0;
    int status = 0;
    int c;
    while ((c = getopt_long(argc, argv, "hq", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN:
            status = parse_address("listen", optarg, &cfg->listen_host, &cfg->listen_port);
            break;
        case OPT_CONNECT:
            status = parse_address("connect", optarg, &cfg->connect_host, &cfg->connect_port);
            if (status == 0 && strcmp(cfg->connect_port, "0") == 0)
                status = usage_error("--connect: port 0 is not a port one can connect to");
            break;
        case OPT_SEED:
            if (parse_count(optarg, 0, UINT64_MAX, &cfg->seed) != 0)
                status = usage_error("--seed: '%s' is not a whole number", optarg);
            seed_given = 1;
            break;
        case 'q':
            cfg->quiet = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case OPT_VERSION:
            printf("sa-chaos %s\n", SA_VERSION);
            return 0;
        case '?':
            return usage_error("bad option");
        default:
            status = apply_fault_option(c, optarg, cfg);
            break;
        }
        if (status != 0)
            return status;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!cfg->listen_host)
        return usage_error("--listen HOST:PORT is required");
    if (!cfg->connect_host)
        return usage_error("--connect HOST:PORT is required");
    if (!seed_given)
        cfg->seed = made_up_seed();
    return -1;
}

void chaos_config_free(chaos_config *cfg)
{
    free(cfg->listen_host);
    free(cfg->listen_port);
    free(cfg->connect_host);
    free(cfg->connect_port);
    *cfg = (chaos_config){0};
}
