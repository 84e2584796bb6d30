/* Requests: from a complete frame to its handler, in the session's lane.
 * The core itself handles hello, ping, pong and bye; plugins the rest. */
#ifndef SA_DISPATCH_H
#define SA_DISPATCH_H

#include <stddef.h>

#include <syncasync/plugin.h>

#include "codec.h"

enum sa_route_kind {
    SA_ROUTE_HELLO,
    SA_ROUTE_PING,
    SA_ROUTE_PONG,
    SA_ROUTE_BYE,
    SA_ROUTE_PLUGIN,
    SA_ROUTE_UNKNOWN,          /* unknown_type */
    SA_ROUTE_NOT_AUTHENTICATED /* not_authenticated */
};

/* Where a request of `type` goes, before or after hello (PROTOCOL.md §3:
 * before hello only hello and ping are accepted; bye closes quietly). */
enum sa_route_kind sa_dispatch_classify(const char *type, int after_hello, int plugin_handles);

/* What sa_request.host_private points at. */
typedef struct sa_request_private {
    const cJSON *id;
} sa_request_private;

/* Handles one frame's payload. */
void sa_dispatch_frame(sa_session *s, const unsigned char *payload, size_t len);

/* A session that completed hello is gone: unregisters it and runs the
 * plugins' on_disconnect hooks, in reverse start order. */
void sa_dispatch_departure(sa_session *s);

/* Replies to a request (also used by the host services). */
int sa_reply_ok(const sa_request *req, const cJSON *fields);
int sa_reply_error(const sa_request *req, const char *code, const char *message,
                   const cJSON *extra);

#endif
