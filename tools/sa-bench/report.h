/*
 * The run's summary: one flat JSON object, printed last on stdout as
 * "SUMMARY {json}" (or alone with --json), after a human-readable report.
 *
 * Ownership: report_new returns a cJSON the caller deletes.
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "options.h"

/* The fields every summary has: workload, target, host, port, seed. NULL
 * when out of memory. */
cJSON *report_new(const bench_options *opt);
/* Adds a number rounded to `decimals` places (so that 0.1 prints as 0.1). */
void report_num(cJSON *summary, const char *key, double value, int decimals);
void report_str(cJSON *summary, const char *key, const char *value);
/* Prints the summary line and flushes stdout. */
void report_print(const cJSON *summary, bool json_only);

#endif
