/*
 * The "rooms" service, provided by the rooms plugin to other plugins
 * (chat sends room messages through it, presence finds who shares a room
 * with a user). Look it up with host->service_get(SA_ROOMS_SERVICE) and
 * declare `uses` (optional) or `requires` (mandatory) SA_ROOMS_SERVICE in
 * the plugin descriptor, so that the rooms plugin starts first.
 *
 * Every function is safe from any thread; none blocks.
 */
#ifndef SYNCASYNC_ROOMS_H
#define SYNCASYNC_ROOMS_H

#include <syncasync/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SA_ROOMS_SERVICE "rooms"
#define SA_ROOM_NAME_MAX 64 /* bytes of [A-Za-z0-9_.-] */

typedef struct sa_rooms_service {
    /* Sends `frame` to every member of `room` except `sender`, who must be
     * a member. Returns NULL when sent, else the protocol error code:
     * "bad_room", "no_such_room" or "not_member". Members receive frames
     * from one sender in the order that sender's lane sent them. */
    const char *(*send_to_room)(const char *room, sa_session *sender, sa_frame *frame);

    /* Checks that `sender` may send to `room` and copies the room's name
     * as first created into `canonical` (SA_ROOM_NAME_MAX + 1 bytes). Returns NULL
     * or the error code, as send_to_room. */
    const char *(*check_member)(const char *room, sa_session *sender, char *canonical);

    /* Visits every other session that shares at least one room with `s`,
     * each exactly once, however many rooms they share. The visitor runs
     * under the rooms lock: it may send, but must not call back into this
     * service. */
    void (*foreach_peer)(sa_session *s, sa_session_visit_fn visit, void *arg);

    /* Visits every member of `room` except `member`, who must be one (the
     * file plugin addresses a room's members this way). Returns NULL after
     * the visits, else the error code as send_to_room, and visits nobody.
     * The visitor runs under the rooms lock: it may send, session_ref and
     * session_name, but must not call back into this service. */
    const char *(*foreach_member)(const char *room, sa_session *member,
                                  sa_session_visit_fn visit, void *arg);
} sa_rooms_service;

#ifdef __cplusplus
}
#endif

#endif
