#include "sa_hostport.h"

#include <stdlib.h>
#include <string.h>

int sa_split_hostport(const char *hostport, char **host, char **port)
{
    *host = NULL;
    *port = NULL;
    const char *host_start = hostport;
    const char *colon;
    size_t host_len;
    if (hostport[0] == '[') {
        const char *close = strchr(hostport, ']');
        if (!close || close[1] != ':')
            return -1;
        host_start = hostport + 1;
        host_len = (size_t)(close - host_start);
        colon = close + 1;
    } else {
        colon = strrchr(hostport, ':');
        /* A second colon means a bare IPv6 address: brackets are required. */
        if (!colon || memchr(hostport, ':', (size_t)(colon - hostport)))
            return -1;
        host_len = (size_t)(colon - hostport);
    }
    const char *port_text = colon + 1;
    size_t port_len = strlen(port_text);
    if (host_len == 0 || port_len == 0 || port_len > 5 ||
        strspn(port_text, "0123456789") != port_len || strtol(port_text, NULL, 10) > 65535)
        return -1;
    *host = strndup(host_start, host_len);
    *port = strdup(port_text);
    if (!*host || !*port) {
        free(*host);
        free(*port);
        *host = NULL;
        *port = NULL;
        return -1;
    }
    return 0;
}
