#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

int sa_net_split_hostport(const char *hostport, char **host, char **port)
{
    const char *colon;
    const char *host_start = hostport;
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
        if (!colon || memchr(hostport, ':', (size_t)(colon - hostport)))
            return -1;
        host_len = (size_t)(colon - hostport);
    }
    const char *port_text = colon + 1;
    if (host_len == 0 || *port_text == '\0' || strspn(port_text, "0123456789") != strlen(port_text))
        return -1;
    if (strtol(port_text, NULL, 10) > 65535)
        return -1;
    *host = strndup(host_start, host_len);
    *port = strdup(port_text);
    if (!*host || !*port) {
        free(*host);
        free(*port);
        return -1;
    }
    return 0;
}

/* `suffix` tells a TLS listener's line from a plain one's. */
static void log_bound_address(int fd, const char *suffix)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    char host[INET6_ADDRSTRLEN];
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        return;
    if (addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&addr;
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
        sa_log(SA_LOG_INFO, "core", "listening on [%s]:%u%s", host, ntohs(a6->sin6_port), suffix);
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)&addr;
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
        sa_log(SA_LOG_INFO, "core", "listening on %s:%u%s", host, ntohs(a4->sin_port), suffix);
    }
}

static int listen_socket(const char *hostport, const char *suffix)
{
    char *host = NULL, *port = NULL;
    if (sa_net_split_hostport(hostport, &host, &port) != 0) {
        sa_log(SA_LOG_ERROR, "core", "cannot listen on '%s': expected HOST:PORT", hostport);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        sa_log(SA_LOG_ERROR, "core", "cannot listen on '%s': %s", hostport, gai_strerror(rc));
        free(host);
        free(port);
        return -1;
    }
    int fd = -1;
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    free(host);
    free(port);
    if (fd < 0) {
        sa_log(SA_LOG_ERROR, "core", "cannot listen on %s: %s", hostport, strerror(last_errno));
        return -1;
    }
    log_bound_address(fd, suffix);
    return fd;
}

int sa_net_listen_tcp(const char *hostport) { return listen_socket(hostport, ""); }

int sa_net_listen_tls(const char *hostport) { return listen_socket(hostport, " (TLS)"); }
