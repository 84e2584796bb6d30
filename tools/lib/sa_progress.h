/*
 * The progress bar of sa-send and sa-recv: one line on stderr, redrawn in
 * place at most SA_PROGRESS_INTERVAL_MS apart, and only when stderr is a
 * terminal (otherwise the tools stay quiet). The formatting functions are
 * pure, for the unit tests.
 */
#ifndef SA_PROGRESS_H
#define SA_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SA_PROGRESS_INTERVAL_MS 100
#define SA_PROGRESS_BAR_WIDTH 20
/* Bytes of the label (a file name) shown before the bar. */
#define SA_PROGRESS_LABEL_MAX 24

/* "512 B", "1.5 KiB", "12.3 MiB", "4.0 GiB", "2.0 TiB". */
void sa_format_bytes(uint64_t bytes, char *out, size_t outlen);
/* "0:07", "12:34", "1:02:03"; "--:--" when seconds < 0 (unknown). */
void sa_format_duration(int64_t seconds, char *out, size_t outlen);
/* The bar and figures for `done` of `total` bytes, `moved` of them in
 * `elapsed_ms` (the rate counts only this run's bytes, not those resumed):
 *   "[#########-----------]  45%  12.3 MiB/27.0 MiB  5.2 MiB/s  ETA 0:03"
 * A zero total counts as complete. */
void sa_progress_format(char *out, size_t outlen, uint64_t done, uint64_t total,
                        uint64_t moved, int64_t elapsed_ms);

typedef struct sa_progress {
    FILE *out;            /* NULL: disabled (not a terminal) */
    char label[SA_PROGRESS_LABEL_MAX + 4]; /* "..." may be added */
    uint64_t total;
    uint64_t first;       /* bytes already there when this run began */
    int64_t start_ms;
    int64_t last_draw_ms; /* -1: never drawn */
    int drawn;            /* a line is on screen and needs its newline */
} sa_progress;

/* Sets up a bar on `out` when it is a terminal, else a disabled one.
 * `label` is copied (cut at a character boundary); it must already be
 * free of control characters. */
void sa_progress_init(sa_progress *p, FILE *out, const char *label, uint64_t total,
                      uint64_t first, int64_t now_ms);
/* Redraws when SA_PROGRESS_INTERVAL_MS have passed since the last time. */
void sa_progress_update(sa_progress *p, uint64_t done, int64_t now_ms);
/* Draws the final state and ends the line (if anything was drawn or
 * `done` is complete). Safe to call on a disabled bar. */
void sa_progress_finish(sa_progress *p, uint64_t done, int64_t now_ms);
/* Ends the line without redrawing, e.g. before an error message. */
void sa_progress_break(sa_progress *p);

#endif
