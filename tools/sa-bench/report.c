#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

cJSON *report_new(const bench_options *opt)
{
    cJSON *s = cJSON_CreateObject();
    if (!s)
        return NULL;
    report_str(s, "workload", bench_workload_name(opt->workload));
    report_str(s, "target", bench_target_name(opt->target));
    report_str(s, "host", opt->host);
    report_str(s, "port", opt->port);
    /* A string: a 64-bit seed does not fit a JSON number exactly. */
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)opt->seed);
    report_str(s, "seed", seed);
    return s;
}

void report_num(cJSON *summary, const char *key, double value, int decimals)
{
    if (!summary)
        return;
    double scale = pow(10, decimals);
    double rounded = isfinite(value) ? round(value * scale) / scale : 0;
    cJSON_DeleteItemFromObjectCaseSensitive(summary, key);
    cJSON_AddNumberToObject(summary, key, rounded);
}

void report_str(cJSON *summary, const char *key, const char *value)
{
    if (!summary)
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(summary, key);
    cJSON_AddStringToObject(summary, key, value);
}

void report_print(const cJSON *summary, bool json_only)
{
    char *text = summary ? cJSON_PrintUnformatted(summary) : NULL;
    printf("%s%s\n", json_only ? "" : "SUMMARY ", text ? text : "{\"error\":\"out of memory\"}");
    fflush(stdout);
    free(text);
}
