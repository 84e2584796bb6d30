/* sa-chaos command line: what to listen on, where to forward, and the
 * faults to inject in each direction. */
#ifndef CHAOS_OPTIONS_H
#define CHAOS_OPTIONS_H

#include <stdint.h>

#define CHAOS_NEVER UINT64_MAX

enum chaos_direction {
    CHAOS_UP = 0,   /* client -> server */
    CHAOS_DOWN = 1, /* server -> client */
};

/* The faults of one direction. The defaults (all zero / CHAOS_NEVER)
 * forward bytes unchanged. */
typedef struct chaos_faults {
    double delay;             /* seconds every segment is held back */
    double jitter;            /* seconds: up to this much more, drawn per segment */
    uint64_t segment;         /* 0: write what was read; else each write is 1..segment bytes */
    uint64_t rate;            /* bytes per second; 0: no cap */
    uint64_t reset_after;     /* reset once this many bytes went through */
    double reset_prob;        /* chance that a segment is replaced by a reset */
    uint64_t blackhole_after; /* swallow everything once this many bytes went through */
} chaos_faults;

typedef struct chaos_config {
    /* All four owned by the config, freed by chaos_config_free. */
    char *listen_host, *listen_port;
    char *connect_host, *connect_port;
    uint64_t seed;
    int quiet;
    chaos_faults faults[2]; /* indexed by enum chaos_direction */
} chaos_config;

/* Fills cfg from argv (a seed is made up when --seed is absent). Returns -1
 * to go on, or the exit status to end with: 0 after --help or --version,
 * 2 for bad usage (the message is printed). cfg must be freed with
 * chaos_config_free in every case. */
int chaos_parse_options(int argc, char **argv, chaos_config *cfg);
void chaos_config_free(chaos_config *cfg);

#endif
