/*
 * The two I/O drivers of sa-client. Each connects, runs the session in
 * ui.c until it is done, closes, and returns the exit status. They differ
 * only in how they wait: run_sync uses the blocking client API with a
 * receiving thread, run_async one libev loop.
 */
#ifndef SA_CLIENT_DRIVERS_H
#define SA_CLIENT_DRIVERS_H

#include "ui.h"

/* How long connecting may take. */
#define SA_CLIENT_CONNECT_TIMEOUT_MS 10000
/* Bytes asked of stdin per read. */
#define SA_CLIENT_STDIN_CHUNK 65536

int run_sync(const client_options *opt);
int run_async(const client_options *opt);

#endif
