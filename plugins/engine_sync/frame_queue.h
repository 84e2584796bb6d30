/*
 * The outgoing frames of one connection, oldest first: a ring of frame
 * references that grows by doubling. Not thread-safe: the connection's lock
 * guards it.
 */
#ifndef SA_SYNC_FRAME_QUEUE_H
#define SA_SYNC_FRAME_QUEUE_H

#include <stddef.h>

#include <syncasync/engine.h>

typedef void (*frame_release_fn)(sa_frame *f);

typedef struct frame_queue {
    sa_frame **slots; /* owned by the queue; each used slot holds one reference */
    size_t capacity;
    size_t first; /* slot of the oldest frame */
    size_t count;
} frame_queue;

void frame_queue_init(frame_queue *q);

/* Appends f, taking over the caller's reference. Returns 0, or -1 when out
 * of memory (then the reference stays the caller's). */
int frame_queue_push(frame_queue *q, sa_frame *f);

/* The frame at `index` (0 = oldest, index < count); borrowed. */
sa_frame *frame_queue_peek(const frame_queue *q, size_t index);

/* Removes the oldest frame (count > 0) and hands its reference to the
 * caller. */
sa_frame *frame_queue_pop(frame_queue *q);

/* Removes every frame from `keep` on, passing each reference to `release`.
 * Returns the total length of the frames removed. */
size_t frame_queue_truncate(frame_queue *q, size_t keep, frame_release_fn release);

/* Releases every frame and the slots; the queue is empty and usable again. */
void frame_queue_free(frame_queue *q, frame_release_fn release);

#endif
