/* The node: the one loop thread that owns the state machine (and, in a
 * cluster, Raft). HTTP threads hand it work through node_submit and are
 * called back (work->done) on the loop thread.
 *
 * DESIGN: every change of state is a command. Standalone, a drained batch
 * of commands is applied, then one fsync (off the loop, on libuv's thread
 * pool) covers the whole batch before any of it becomes visible or is
 * acknowledged: group commit. Long polls and empty claims wait in per-
 * partition waiter lists that the publish step wakes. */
#ifndef BROKER_NODE_H
#define BROKER_NODE_H
#include <stdbool.h>
#include <stdint.h>

#include "broker/config.h"
#include "broker/state.h"
#include "broker/work.h"

#define NODE_MAX_MEMBERS 16

struct node;

enum node_role { NODE_ROLE_VOTER, NODE_ROLE_STANDBY, NODE_ROLE_SPARE };
enum node_state {
    NODE_STATE_UNAVAILABLE,
    NODE_STATE_FOLLOWER,
    NODE_STATE_CANDIDATE,
    NODE_STATE_LEADER,
};

struct node_member {
    uint64_t id;
    char raft_address[256];
    char http_address[256];
    enum node_role role;
};

/* A copy of what the loop thread last published. */
struct node_status {
    uint64_t node_id;
    bool cluster;
    enum node_state state;
    uint64_t term;
    uint64_t leader_id;              /* 0 = unknown */
    struct node_member leader;       /* valid when leader_id != 0 */
    uint64_t commit_index, applied_index, last_log_index, snapshot_index;
    uint64_t snapshots_taken, elections, leader_changes, log_entries;
    struct node_member members[NODE_MAX_MEMBERS];
    int n_members;
    uint64_t waiters;                /* parked long polls and claims */
    bool catching_up;                /* restoring a snapshot: not ready */
    bool storage_unwritable;         /* the last write to data_dir failed */
    char storage_error[BRK_ERRMSG_LEN]; /* why, when unwritable */
    int64_t started_ms;              /* wall clock at start */
};

/* Start the loop thread over @st (borrowed; both must outlive the node). */
int node_start(const struct config *cfg, struct state *st, struct node **out,
               char *errmsg);

/* Any thread. Queue @w; its done callback runs later on the loop thread.
 * BRK_ESHUTDOWN (w not taken) once stopping. */
int node_submit(struct node *n, struct work *w);

/* Any thread. */
void node_status(struct node *n, struct node_status *out);

/* Loop thread. Record whether writes to data_dir work (published in
 * node_status): @errmsg is the failure, NULL once a write succeeded
 * again. Logs the transitions. */
void node_set_storage(struct node *n, const char *errmsg);
const char *node_state_name(enum node_state s);
const char *node_role_name(enum node_role r);

/* WORK_CALL bodies for the cluster admin API (loop thread). Arguments:
 * add: arg_id, arg_addr (raft), arg_addr2 (http, optional); remove:
 * arg_id; transfer: arg_id (0 = any voter). Errors in w->res. */
bool node_call_member_add(struct work *w, struct node *n);
bool node_call_member_remove(struct work *w, struct node *n);
bool node_call_transfer(struct work *w, struct node *n);

/* Stop taking work, finish what is queued and in flight, answer every
 * waiter, stop the thread. Then free with node_destroy. */
void node_stop(struct node *n);
void node_destroy(struct node *n);

#endif
