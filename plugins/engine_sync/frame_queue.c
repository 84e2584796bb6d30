#include "frame_queue.h"

#include <stdint.h>
#include <stdlib.h>

#define FRAME_QUEUE_INITIAL_CAPACITY 16u

void frame_queue_init(frame_queue *q)
{
    q->slots = NULL;
    q->capacity = 0;
    q->first = 0;
    q->count = 0;
}

static size_t slot_of(const frame_queue *q, size_t index)
{
    return (q->first + index) % q->capacity;
}

static int grow(frame_queue *q)
{
    size_t capacity = q->capacity ? q->capacity * 2 : FRAME_QUEUE_INITIAL_CAPACITY;
    if (capacity < q->capacity || capacity > SIZE_MAX / sizeof *q->slots)
        return -1;
    sa_frame **slots = malloc(capacity * sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < q->count; i++)
        slots[i] = q->slots[slot_of(q, i)];
    free(q->slots);
    q->slots = slots;
    q->capacity = capacity;
    q->first = 0;
    return 0;
}

int frame_queue_push(frame_queue *q, sa_frame *f)
{
    if (q->count == q->capacity && grow(q) != 0)
        return -1;
    q->slots[slot_of(q, q->count)] = f;
    q->count++;
    return 0;
}

sa_frame *frame_queue_peek(const frame_queue *q, size_t index)
{
    return q->slots[slot_of(q, index)];
}

sa_frame *frame_queue_pop(frame_queue *q)
{
    sa_frame *f = q->slots[q->first];
    q->first = (q->first + 1) % q->capacity;
    q->count--;
    return f;
}

size_t frame_queue_truncate(frame_queue *q, size_t keep, frame_release_fn release)
{
    size_t removed_bytes = 0;
    while (q->count > keep) {
        sa_frame *f = q->slots[slot_of(q, q->count - 1)];
        removed_bytes += f->len;
        q->count--;
        release(f);
    }
    return removed_bytes;
}

void frame_queue_free(frame_queue *q, frame_release_fn release)
{
    frame_queue_truncate(q, 0, release);
    free(q->slots);
    frame_queue_init(q);
}
