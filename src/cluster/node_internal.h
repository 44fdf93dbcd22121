/* Loop-thread internals of struct node, shared by node.c, waiters.c and
 * standalone.c. Everything here is loop thread only unless marked. */
#ifndef BROKER_NODE_INTERNAL_H
#define BROKER_NODE_INTERNAL_H
#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
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
    bool keys;                        /* idempotency keys to fsync */
    int err;                          /* sync failure */
    char errmsg[BRK_ERRMSG_LEN];
    int groups_err;                   /* groups.json not written */
    char groups_errmsg[BRK_ERRMSG_LEN];
    uv_work_t req;
};

/* A member's HTTP address, replicated by CMD_SET_MEMBER. */
struct member_http {
    uint64_t id;
    char http[256];
};

/* A drained batch proposed as one Raft entry (leader only). */
struct pbatch {
    struct raft_apply req;
    struct node *node;
    struct work **works;
    size_t count;
    bool applied;                     /* results filled by the FSM */
    struct pbatch *next;
};

/* Raft state of a cluster node (NULL standalone). Loop thread only. */
struct cluster {
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    uv_timer_t status_timer;
    struct pbatch *pending;           /* proposed, oldest first */
    struct member_http members[NODE_MAX_MEMBERS];
    int n_members;
    int last_state;
    uint64_t last_leader, last_term;
    uint64_t elections, leader_changes, snapshots_taken;
    int (*io_set_vote)(struct raft_io *io, raft_id id); /* raft_uv's own */
    uint64_t ticks;                   /* status timer ticks */
    bool closing, closed;
    void (*on_closed)(struct node *n);
    struct topic **snap_topics;       /* snapshot in progress: to fsync */
    size_t n_snap_topics;
    char *snap_groups;                /* groups.json text to persist */
    uint64_t catchup_deadline_ns;     /* restore: stop fetching after */
    bool apply_failed;                /* an entry could not be stored */
    bool stepping_down;               /* transfer asked after apply_failed */
    bool stepdown_logged;
    bool raft_stopped;                /* unavailable after apply_failed */
    struct raft_transfer stepdown;
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
    struct cluster *cl;               /* cluster mode only */
    uv_sem_t started;
};

/* node.c */
void node_drain(struct node *n);
void node_requeue(struct node *n, struct work *w);
void node_finish_work(struct node *n, struct work *w);
/* Publish, wake and answer after a batch is durable: after the group
 * fsync standalone, at apply in a cluster (the Raft log is durable). */
void node_complete_batch(struct node *n, struct work **works, size_t count,
                         struct state_effects *fx, int err,
                         const char *errmsg);
/* done callback of the loop's own works (retention, announcements). */
void node_free_internal_work(struct work *w);
void node_publish_waiters_count(struct node *n);
/* After a batch finished: drain what waits, complete a pending stop. */
void node_after_batch(struct node *n);

/* waiters.c */
void waiters_add(struct node *n, struct work *w, bool claim);
void waiters_wake_partition(struct node *n, struct topic *t, uint32_t p);
void waiters_wake_topic(struct node *n, struct topic *t);
void waiters_wake_all(struct node *n);

/* Commands per Raft entry are capped so that (index << FSM_SEQ_BITS) | i
 * numbers every command uniquely (fsm.c). */
#define FSM_SEQ_BITS 16
#define FSM_MAX_CMDS ((1u << FSM_SEQ_BITS) - 1)

/* raft_node.c */
int cluster_start(struct node *n, char *errmsg);
void cluster_propose(struct node *n, struct work **works, size_t count);
void cluster_stop(struct node *n, void (*done)(struct node *n));
void cluster_publish_status(struct node *n);
const char *cluster_member_http(struct node *n, uint64_t id);
/* Record member @id's HTTP address (checked with addr_http_valid: a bad
 * one from the log or a snapshot is never stored), or forget the member
 * when @http is "". 0, BRK_EINVAL (bad address) or BRK_ECONFLICT (the
 * table of NODE_MAX_MEMBERS is full). Same result on every node. */
int cluster_set_member(struct node *n, uint64_t id, const char *http);

/* fsm.c */
void fsm_init(struct node *n);

struct record;

/* catchup.c: fetch records a snapshot promises from the leader. */
int catchup_partition(struct node *n, const char *leader_http,
                      struct topic *t, uint32_t p, uint64_t upto,
                      char *errmsg);
/* One page of records from @from (GET /internal/records on @leader, or
 * any peer: repair.c and replica_repair.c share it).
 * BRK_EOFFSET_RANGE with *@moved_to set when the leader's log starts past
 * @from; BRK_EFORWARD on any other non-200 answer. */
struct forward_response;
int catchup_fetch_page(const char *leader, const char *topic, uint32_t p,
                       uint64_t from, struct forward_response *resp,
                       uint64_t *moved_to, char *errmsg);
/* Decode and CRC-check a page into @recs (pointers into resp->body, array
 * malloc'd): offsets must run from @from on, at most up to @upto. */
int catchup_decode_page(const struct forward_response *resp, uint64_t from,
                        uint64_t upto, struct record **recs, size_t *n,
                        char *errmsg);

/* standalone.c */
void standalone_apply(struct node *n, struct work **works, size_t count);
/* Periodic fsync on the thread pool (flush_interval > 0, or every second
 * in a cluster). */
void node_flush_start(struct node *n);
void node_final_flush(struct node *n);

#endif
