/*
 * The proxy: a listening socket, and for every client it accepts a
 * connection to the server and a pair of flows between the two.
 *
 * Ownership: the proxy owns the listening socket, the resolved server
 * addresses and every connection pair (each pair its two sockets and two
 * flows); chaos_proxy_close frees them all. The config is the caller's and
 * must outlive the proxy.
 */
#ifndef CHAOS_PROXY_H
#define CHAOS_PROXY_H

#include <ev.h>

#include "options.h"

typedef struct chaos_proxy chaos_proxy;

/* Resolves --connect, binds and listens on --listen, logs "listening on
 * HOST:PORT" and starts accepting on `loop`. Returns NULL after logging
 * why it cannot. */
chaos_proxy *chaos_proxy_open(struct ev_loop *loop, const chaos_config *cfg);
/* Closes the listener and every connection, and frees. */
void chaos_proxy_close(chaos_proxy *proxy);

#endif
