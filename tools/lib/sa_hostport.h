/*
 * "HOST:PORT" parsing for the tools, with the same rules as the server's
 * `listen` setting (core/net.c): HOST is a name or an IPv4 address, or an
 * IPv6 address in brackets; PORT is a decimal number from 0 to 65535.
 */
#ifndef SA_HOSTPORT_H
#define SA_HOSTPORT_H

/* Splits `hostport` into freshly allocated host and port strings (the
 * caller frees both; the brackets of an IPv6 address are dropped). Returns
 * 0, or -1 when the text is malformed or memory runs out (both then NULL). */
int sa_split_hostport(const char *hostport, char **host, char **port);

#endif
