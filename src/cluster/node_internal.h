/* Loop-thread internals of struct node, shared by node.c, waiters.c and
 * standalone.c. Everything here is loop thread only unless marked. */
#ifndef BROKER_NODE_INTERNAL_H
#define BROKER_NODE_INTERNAL_H
#include <pthread.h>
#include <uv.h>

#include "broker/node.h"

/* A parked long poll or claim. Linked into its partition's (or topic's,
 * for claims) list and into the node's list of all waiters. */
struct waiter {
    struct waiter *next, *prev;       /* per-partition / per-topic list */
    struct waiter **head;             /* the list it is on */
    struct waiter *all_next, *all_prev;
    struct work *w;
    uv_timer_t *timer;                /* own allocation: closed async */
    struct node *node;
    struct topic *topic;              /* referenced */
    bool claim;
};

/* A batch of commands applied together and made durable by one fsync. */
struct sbatch {
    struct node *node;
    struct work **works;
    size_t n;
    struct state_effects fx;
    char *groups_text;                /* groups.json to write, or NULL */
    int err;                          /* sync failure */
    char errmsg[BRK_ERRMSG_LEN];
    uv_work_t req;
};

struct node {
    const struct config *cfg;
    struct state *st;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t async;                 /* work queued */
    uv_async_t stop_async;
    uv_timer_t retention_timer;
    uv_timer_t flush_timer;
    struct workq q;
    struct work *retry_head, *retry_tail; /* woken claims, retention cmds */
    bool syncing;                     /* an sbatch is in the thread pool */
    bool flush_running;               /* periodic flush in the thread pool */
    bool stopping;
    bool stopped;
    uint64_t index;                   /* standalone command sequence */
    struct waiter *all_waiters;
    uint64_t n_waiters;
    pthread_mutex_t status_lock;      /* any thread */
    struct node_status status;        /* published copy */
    uv_sem_t started;
};

/* node.c */
void node_drain(struct node *n);
void node_requeue(struct node *n, struct work *w);
void node_finish_work(struct node *n, struct work *w);
void node_publish_waiters_count(struct node *n);
/* After a batch finished: drain what waits, complete a pending stop. */
void node_after_batch(struct node *n);

/* waiters.c */
void waiters_add(struct node *n, struct work *w, bool claim);
void waiters_wake_partition(struct node *n, struct topic *t, uint32_t p);
void waiters_wake_topic(struct node *n, struct topic *t);
void waiters_wake_all(struct node *n);

/* standalone.c */
void standalone_apply(struct node *n, struct work **works, size_t count);
void standalone_flush_start(struct node *n);
void standalone_final_flush(struct node *n);
/* Publish, wake and answer after a batch is durable (also used by the
 * cluster path, where durability comes from the Raft log). */
void node_complete_batch(struct node *n, struct work **works, size_t count,
                         struct state_effects *fx, int err,
                         const char *errmsg);

#endif
