/* TCP listening sockets for the engines (one implementation for both). */
#ifndef SA_NET_H
#define SA_NET_H

#include <stddef.h>

/* Splits "HOST:PORT" or "[V6]:PORT" into freshly allocated host and port
 * strings (the caller frees both). Returns 0, or -1 when malformed. */
int sa_net_split_hostport(const char *hostport, char **host, char **port);

/* Binds and listens on hostport (non-blocking, close-on-exec,
 * SO_REUSEADDR), logs "listening on HOST:PORT" with the bound port.
 * Returns the fd, or -1 after logging why. */
int sa_net_listen_tcp(const char *hostport);
/* The same for a tls_listen entry: its line ends with " (TLS)". */
int sa_net_listen_tls(const char *hostport);

#endif
