/*
 * A connection's output queue: a ring of frame references, written in
 * order with one writev per flush.
 *
 * Why references and not copies into a per-connection buffer: the hot
 * case is a broadcast, one frame to many connections. Copying it into each
 * recipient's buffer writes (and the kernel then reads) as many copies as
 * there are recipients, a working set far beyond the caches at the batch
 * sizes a loaded server sees (256 messages x 100 recipients x 220 bytes =
 * 5.6 MB per loop turn); measured, that was slower than the list of
 * malloc'd nodes it replaced. A reference costs one 8-byte slot, stored in
 * sequence, and the kernel copies from the one shared (hot) frame.
 *
 * Rings come from per-loop spare lists, one per power-of-two capacity, so
 * a busy connection allocates nothing in the steady state, and an idle one
 * holds no ring at all (it goes back to the spares when it empties).
 */
#include <stdlib.h>
#include <string.h>

#include "async_internal.h"

/* Slots of the smallest ring; each class doubles it. A ring grows as far
 * as the queue needs (sendq_max bounds it); one beyond the largest class
 * is freed when it empties instead of being kept. */
#define RING_MIN_SLOTS 16
/* Spare rings kept per class: the small ones, which every connection
 * takes, generously; the big ones, which few need at once, sparingly. */
#define SPARE_SMALL_RINGS 1024
#define SPARE_BIG_RINGS 64
#define SMALL_RING_CLASSES 4 /* 16 .. 128 slots */
/* Frames up to this size are copied into the loop's staging buffer when
 * written: the kernel's copy of many small iovec elements costs far more
 * per byte than one memcpy of hot data into a buffer that stays in the
 * cache (measured: see docs/benchmarks.md). Bigger ones go by reference. */
#define STAGE_COPY_MAX 2048

static size_t class_slots(unsigned cls) { return (size_t)RING_MIN_SLOTS << cls; }

static size_t spare_max(unsigned cls)
{
    return cls < SMALL_RING_CLASSES ? SPARE_SMALL_RINGS : SPARE_BIG_RINGS;
}

/* A ring of class `cls`: a spare one, or a new one. NULL when out of memory. */
static struct out_ring *ring_get(struct async_loop *loop, unsigned cls)
{
    if (cls < OUTQ_RING_CLASSES) {
        struct out_ring *r = loop->spare_rings[cls];
        if (r) {
            loop->spare_rings[cls] = r->next_spare;
            loop->spare_ring_count[cls]--;
            return r;
        }
    }
    size_t slots = class_slots(cls);
    struct out_ring *r = malloc(sizeof *r + slots * sizeof r->slots[0]);
    if (r)
        r->cls = cls;
    return r;
}

static void ring_put(struct async_loop *loop, struct out_ring *r)
{
    if (r->cls >= OUTQ_RING_CLASSES || loop->spare_ring_count[r->cls] >= spare_max(r->cls)) {
        free(r);
        return;
    }
    r->next_spare = loop->spare_rings[r->cls];
    loop->spare_rings[r->cls] = r;
    loop->spare_ring_count[r->cls]++;
}

void outq_free_spares(struct async_loop *loop)
{
    for (unsigned cls = 0; cls < OUTQ_RING_CLASSES; cls++) {
        struct out_ring *r;
        while ((r = loop->spare_rings[cls])) {
            loop->spare_rings[cls] = r->next_spare;
            free(r);
        }
        loop->spare_ring_count[cls] = 0;
    }
}

static size_t slot_mask(const struct out_ring *r) { return class_slots(r->cls) - 1; }

static sa_frame *slot_at(const sa_conn *c, size_t i)
{
    return c->out->slots[(c->out_head + i) & slot_mask(c->out)];
}

/* Moves the queue into a ring twice the size. */
static int grow(sa_conn *c)
{
    struct out_ring *bigger = ring_get(c->loop, c->out->cls + 1);
    if (!bigger)
        return -1;
    for (size_t i = 0; i < c->out_count; i++)
        bigger->slots[i] = slot_at(c, i);
    ring_put(c->loop, c->out);
    c->out = bigger;
    c->out_head = 0;
    return 0;
}

int outq_append(sa_conn *c, sa_frame *f)
{
    if (!c->out) {
        c->out = ring_get(c->loop, 0);
        if (!c->out)
            return -1;
        c->out_head = 0;
    } else if (c->out_count == class_slots(c->out->cls) && grow(c) != 0) {
        return -1;
    }
    c->loop->core->frame_ref(f);
    c->out->slots[(c->out_head + c->out_count) & slot_mask(c->out)] = f;
    c->out_count++;
    return 0;
}

int outq_gather(const sa_conn *c, struct iovec *iov, int max, size_t *total)
{
    struct async_loop *loop = c->loop;
    unsigned char *stage = loop->stage;
    size_t staged = 0;
    int count = 0;
    size_t skip = c->out_done;
    *total = 0;
    for (size_t i = 0; i < c->out_count && count < max; i++) {
        const sa_frame *f = slot_at(c, i);
        const unsigned char *piece = f->bytes + skip;
        size_t len = f->len - skip;
        skip = 0;
        if (len > STAGE_COPY_MAX) {
            iov[count++] = (struct iovec){.iov_base = (void *)piece, .iov_len = len};
        } else if (staged + len > ASYNC_STAGE_SIZE) {
            break;
        } else {
            memcpy(stage + staged, piece, len);
            if (count > 0 && iov[count - 1].iov_base == stage + staged - iov[count - 1].iov_len)
                iov[count - 1].iov_len += len;
            else
                iov[count++] = (struct iovec){.iov_base = stage + staged, .iov_len = len};
            staged += len;
        }
        *total += len;
    }
    return count;
}

/* Releases the first frame of the queue. */
static void pop(sa_conn *c)
{
    c->loop->core->frame_unref(slot_at(c, 0));
    c->out_head = (c->out_head + 1) & slot_mask(c->out);
    c->out_count--;
    c->out_done = 0;
    if (c->out_count == 0) {
        ring_put(c->loop, c->out);
        c->out = NULL;
    }
}

void outq_consume(sa_conn *c, size_t written)
{
    atomic_fetch_sub(&c->queued, written);
    while (c->out_count > 0) {
        size_t left = slot_at(c, 0)->len - c->out_done;
        if (written < left) {
            c->out_done += written;
            return;
        }
        written -= left;
        pop(c);
    }
}

/* Discards the frames after the first `keep`. */
static void truncate_after(sa_conn *c, size_t keep)
{
    while (c->out_count > keep) {
        size_t last = c->out_count - 1;
        sa_frame *f = slot_at(c, last);
        atomic_fetch_sub(&c->queued, f->len - (last == 0 ? c->out_done : 0));
        c->loop->core->frame_unref(f);
        c->out_count--;
    }
    if (c->out_count == 0 && c->out) {
        ring_put(c->loop, c->out);
        c->out = NULL;
        c->out_done = 0;
    }
}

void outq_clear(sa_conn *c) { truncate_after(c, 0); }

void outq_keep_frame_in_progress(sa_conn *c) { truncate_after(c, c->out_done > 0 ? 1 : 0); }
