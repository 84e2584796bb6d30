/*
 * The loop's inbox: send, close and drop requests made on other threads
 * (the host's timer thread, plugin threads), carried out on the loop.
 *
 * Each entry counts in its connection's inbox_refs, so a connection that
 * finishes while entries for it are still posted stays allocated until
 * the last of them has been drained.
 */
#include <stdlib.h>

#include "async_internal.h"

/* Entries kept for reuse per loop. */
#define SPARE_ENTRIES_MAX 1024

int inbox_post(struct async_loop *loop, sa_conn *c, enum inbox_op op, sa_frame *frame)
{
    pthread_mutex_lock(&loop->inbox_lock);
    struct inbox_entry *e = loop->spare_entries;
    if (e) {
        loop->spare_entries = e->next;
        loop->spare_entry_count--;
    }
    pthread_mutex_unlock(&loop->inbox_lock);
    if (!e) {
        e = malloc(sizeof *e);
        if (!e)
            return -1;
    }
    *e = (struct inbox_entry){.conn = c, .frame = frame, .op = op};
    pthread_mutex_lock(&loop->inbox_lock);
    atomic_fetch_add(&c->inbox_refs, 1);
    if (loop->inbox_tail)
        loop->inbox_tail->next = e;
    else
        loop->inbox_head = e;
    loop->inbox_tail = e;
    pthread_mutex_unlock(&loop->inbox_lock);
    ev_async_send(loop->ev, &loop->wakeup);
    return 0;
}

static struct inbox_entry *take_all(struct async_loop *loop)
{
    pthread_mutex_lock(&loop->inbox_lock);
    struct inbox_entry *batch = loop->inbox_head;
    loop->inbox_head = loop->inbox_tail = NULL;
    pthread_mutex_unlock(&loop->inbox_lock);
    return batch;
}

/* Drops each entry's count on its connection (freeing those finished and
 * now unreferenced) and recycles the entries. */
static void retire(struct async_loop *loop, struct inbox_entry *batch)
{
    for (struct inbox_entry *e = batch; e; e = e->next)
        if (atomic_fetch_sub(&e->conn->inbox_refs, 1) == 1)
            conn_release_if_done(e->conn);
    pthread_mutex_lock(&loop->inbox_lock);
    struct inbox_entry *next;
    for (struct inbox_entry *e = batch; e; e = next) {
        next = e->next;
        if (loop->spare_entry_count < SPARE_ENTRIES_MAX) {
            e->next = loop->spare_entries;
            loop->spare_entries = e;
            loop->spare_entry_count++;
        } else {
            free(e);
        }
    }
    pthread_mutex_unlock(&loop->inbox_lock);
}

void inbox_drain(struct async_loop *loop)
{
    struct inbox_entry *batch = take_all(loop);
    if (!batch)
        return;
    /* Acting on an entry never finishes or frees a connection (see
     * async_conn.c), so every entry's connection is valid here. */
    for (struct inbox_entry *e = batch; e; e = e->next) {
        switch (e->op) {
        case INBOX_SEND:
            conn_deliver(e->conn, e->frame);
            break;
        case INBOX_CLOSE:
            conn_begin_close(e->conn);
            break;
        case INBOX_DROP:
            conn_drop(e->conn);
            break;
        case INBOX_NOTIFY:
            conn_mark_dirty(e->conn);
            break;
        }
        e->frame = NULL;
    }
    retire(loop, batch);
}

void inbox_discard(struct async_loop *loop)
{
    struct inbox_entry *batch = take_all(loop);
    for (struct inbox_entry *e = batch; e; e = e->next)
        if (e->frame) {
            atomic_fetch_sub(&e->conn->queued, e->frame->len);
            loop->core->frame_unref(e->frame);
        }
    retire(loop, batch);
}

void inbox_free_spares(struct async_loop *loop)
{
    struct inbox_entry *e;
    while ((e = loop->spare_entries)) {
        loop->spare_entries = e->next;
        free(e);
    }
    loop->spare_entry_count = 0;
}
