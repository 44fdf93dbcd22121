/* Cluster mode: c-raft 0.15 with its libuv TCP transport and on-disk log,
 * owned by the loop thread. Drained batches become Raft entries; the FSM
 * (fsm.c) applies them on every node and answers the leader's requests.
 * There is no state-change callback in 0.15, so a short timer polls the
 * role, logs the operator lines and publishes the status. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/addr.h"
#include "broker/fsutil.h"
#include "broker/clock.h"
#include "broker/log.h"
#include "node_internal.h"

#define STATUS_POLL_MS 50
#define NODELAY_EVERY_TICKS 20
#define ENTRY_MAX_BYTES (8u << 20) /* soft cap per Raft entry */

/* ==== members' HTTP addresses ==== */

const char *cluster_member_http(struct node *n, uint64_t id)
{
    int i;

    for (i = 0; i < n->cl->n_members; i++)
        if (n->cl->members[i].id == id)
            return n->cl->members[i].http;
    return NULL;
}

int cluster_set_member(struct node *n, uint64_t id, const char *http)
{
    struct cluster *cl = n->cl;
    int i;

    for (i = 0; i < cl->n_members && cl->members[i].id != id; i++)
        ;
    if (http[0] == '\0') {
        /* Forget a removed member: its slot goes to later members. */
        if (i < cl->n_members)
            cl->members[i] = cl->members[--cl->n_members];
        return 0;
    }
    if (!addr_http_valid(http))
        return BRK_EINVAL;
    if (i == cl->n_members) {
        if (cl->n_members == NODE_MAX_MEMBERS)
            return BRK_ECONFLICT;
        cl->n_members++;
    }
    cl->members[i].id = id;
    snprintf(cl->members[i].http, sizeof(cl->members[i].http), "%s", http);
    return 0;
}

/* ==== status ==== */

static enum node_state map_state(int s)
{
    switch (s) {
    case RAFT_LEADER: return NODE_STATE_LEADER;
    case RAFT_FOLLOWER: return NODE_STATE_FOLLOWER;
    case RAFT_CANDIDATE: return NODE_STATE_CANDIDATE;
    default: return NODE_STATE_UNAVAILABLE;
    }
}

static enum node_role map_role(int role)
{
    return role == RAFT_STANDBY ? NODE_ROLE_STANDBY
           : role == RAFT_SPARE ? NODE_ROLE_SPARE
                                : NODE_ROLE_VOTER;
}

static void fill_member(struct node *n, const struct raft_server *srv,
                        struct node_member *m)
{
    const char *http = cluster_member_http(n, srv->id);

    m->id = srv->id;
    snprintf(m->raft_address, sizeof(m->raft_address), "%s", srv->address);
    snprintf(m->http_address, sizeof(m->http_address), "%s",
             http ? http : "");
    m->role = map_role(srv->role);
}

static size_t log_entries(const struct raft_log *l)
{
    return l->back >= l->front ? l->back - l->front
                               : l->size - l->front + l->back;
}

void cluster_publish_status(struct node *n)
{
    struct cluster *cl = n->cl;
    struct raft *r = &cl->raft;
    struct node_status *s = &n->status;
    raft_id lid = 0;
    const char *laddr = NULL;
    unsigned i;

    raft_leader(r, &lid, &laddr);
    pthread_mutex_lock(&n->status_lock);
    s->state = map_state(raft_state(r));
    s->term = r->current_term;
    s->leader_id = lid;
    s->commit_index = r->commit_index;
    s->applied_index = raft_last_applied(r);
    s->last_log_index = raft_last_index(r);
    s->snapshot_index = r->log.snapshot.last_index;
    s->log_entries = log_entries(&r->log);
    s->snapshots_taken = cl->snapshots_taken;
    s->elections = cl->elections;
    s->leader_changes = cl->leader_changes;
    s->n_members = 0;
    memset(&s->leader, 0, sizeof(s->leader));
    for (i = 0; i < r->configuration.n && i < NODE_MAX_MEMBERS; i++) {
        fill_member(n, &r->configuration.servers[i], &s->members[i]);
        if (s->members[i].id == lid)
            s->leader = s->members[i];
        s->n_members++;
    }
    if (lid != 0 && s->leader.id == 0 && laddr != NULL) {
        s->leader.id = lid;
        snprintf(s->leader.raft_address, sizeof(s->leader.raft_address), "%s",
                 laddr);
    }
    pthread_mutex_unlock(&n->status_lock);
}

/* The leader records its own HTTP address in the replicated state. */
static void announce_self(struct node *n)
{
    const char *have = cluster_member_http(n, n->status.node_id);
    struct work *w;

    if (have != NULL && strcmp(have, n->cfg->server.advertise) == 0)
        return;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return;
    w->type = WORK_CMD;
    w->cmd.type = CMD_SET_MEMBER;
    w->cmd.node_id = n->status.node_id;
    snprintf(w->cmd.address, sizeof(w->cmd.address), "%s",
             n->cfg->server.advertise);
    w->done = node_free_internal_work;
    node_requeue(n, w);
    uv_async_send(&n->async);
}

static void note_transitions(struct node *n, int state, uint64_t leader,
                             uint64_t term)
{
    struct cluster *cl = n->cl;
    unsigned long long id = n->status.node_id;

    if (state != cl->last_state) {
        if (state == RAFT_LEADER)
            log_info(LOG_LINE_BECAME_LEADER " (node %llu, term %llu)", id,
                     (unsigned long long)term);
        else if (cl->last_state == RAFT_LEADER)
            log_info(LOG_LINE_LOST_LEADERSHIP " (node %llu, term %llu)", id,
                     (unsigned long long)term);
        cl->last_state = state; /* elections: see count_self_vote */
    }
    if (leader != cl->last_leader && leader != 0) {
        cl->leader_changes++;
        log_info("leader is now node %llu (node %llu, term %llu)",
                 (unsigned long long)leader, id, (unsigned long long)term);
    }
    if (leader != 0)
        cl->last_leader = leader;
    cl->last_term = term;
}

static void nodelay_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (h->type == UV_TCP && !uv_is_closing(h))
        uv_tcp_nodelay((uv_tcp_t *)h, 1);
}

/* c-raft's TCP transport leaves Nagle's algorithm on: a small
 * AppendEntries result then waits for the peer's delayed ACK (40 ms
 * stalls under load). Its sockets live on our loop, so switch it off on
 * every TCP handle there (cheap and idempotent). */
static void tcp_nodelay_all(struct node *n)
{
    uv_walk(&n->loop, nodelay_cb, NULL);
}

static void on_status(uv_timer_t *t)
{
    struct node *n = t->data;
    struct cluster *cl = n->cl;
    raft_id lid = 0;
    const char *addr;
    int state;

    if (cl->closing)
        return;
    state = raft_state(&cl->raft);
    raft_leader(&cl->raft, &lid, &addr);
    note_transitions(n, state, lid, cl->raft.current_term);
    /* New Raft connections are rare; long-poll timers can be many: walk the
     * loop's handles once a second, not at every tick. */
    if (cl->ticks++ % NODELAY_EVERY_TICKS == 0)
        tcp_nodelay_all(n);
    if (state == RAFT_LEADER)
        announce_self(n);
    cluster_publish_status(n);
}

/* ==== proposing ==== */

static void fail_works(struct node *n, struct work **works, size_t count,
                       int code, const char *msg)
{
    size_t i;

    for (i = 0; i < count; i++) {
        works[i]->res.err = code;
        snprintf(works[i]->res.errmsg, sizeof(works[i]->res.errmsg), "%s",
                 msg);
        node_finish_work(n, works[i]);
    }
}

static void pending_remove(struct cluster *cl, struct pbatch *pb)
{
    struct pbatch **pp;

    for (pp = &cl->pending; *pp != NULL; pp = &(*pp)->next)
        if (*pp == pb) {
            *pp = pb->next;
            return;
        }
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct pbatch *pb = req->data;
    struct node *n = pb->node;

    (void)result;
    if (!pb->applied) {
        pending_remove(n->cl, pb);
        fail_works(n, pb->works, pb->count, BRK_ENO_LEADER,
                   status == RAFT_SHUTDOWN || n->stopping
                       ? "the broker is shutting down"
                       : "leadership was lost before the write committed; it "
                         "may or may not be applied: retry");
    }
    free(pb->works);
    free(pb);
}

static void pending_append(struct cluster *cl, struct pbatch *pb)
{
    struct pbatch **pp = &cl->pending;

    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = pb;
}

/* Propose works[0..count) as one entry. Takes the works array. */
static void propose_entry(struct node *n, struct work **works, size_t count,
                          int64_t ts)
{
    struct pbatch *pb = calloc(1, sizeof(*pb));
    struct cmd **cmds = calloc(count, sizeof(*cmds));
    struct raft_buffer buf = {0};
    size_t i;
    int rv = BRK_ENOMEM;

    for (i = 0; cmds != NULL && i < count; i++)
        cmds[i] = &works[i]->cmd;
    if (pb != NULL && cmds != NULL)
        rv = cmd_encode_entry(ts, cmds, count, (uint8_t **)&buf.base, &buf.len);
    free(cmds);
    if (rv == 0) {
        pb->node = n;
        pb->works = works;
        pb->count = count;
        pb->req.data = pb;
        /* raft_malloc is plain malloc here (no custom heap is set). */
        rv = raft_apply(&n->cl->raft, &pb->req, &buf, 1, apply_cb);
        if (rv == 0) {
            pending_append(n->cl, pb);
            return;
        }
        free(buf.base);
    }
    free(pb);
    fail_works(n, works, count, rv == RAFT_NOTLEADER ? BRK_ENO_LEADER
                                                     : BRK_EUNAVAILABLE,
               rv == RAFT_NOTLEADER ? "this node is not the leader"
                                    : "cannot propose the write");
    free(works);
}

static size_t cmd_bytes(const struct cmd *c)
{
    size_t i, sum = 64 + c->n_offsets * 280;

    for (i = 0; i < c->n_records; i++)
        sum += 32 + c->records[i].key_len + c->records[i].value_len +
               c->records[i].headers_len;
    return sum;
}

void cluster_propose(struct node *n, struct work **works, size_t count)
{
    int64_t ts = clock_wall_ms();
    size_t start = 0, i, bytes = 0;
    struct work **chunk;

    if (raft_state(&n->cl->raft) != RAFT_LEADER) {
        fail_works(n, works, count, BRK_ENO_LEADER,
                   "this node is not the leader");
        free(works);
        return;
    }
    /* Many requests ride in one entry, up to a soft size cap. */
    for (i = 0; i <= count; i++) {
        if (i < count && (i == start ||
                          (bytes + cmd_bytes(&works[i]->cmd) <= ENTRY_MAX_BYTES &&
                           i - start < FSM_MAX_CMDS))) {
            bytes += cmd_bytes(&works[i]->cmd);
            continue;
        }
        if (i == start)
            break; /* nothing left */
        chunk = malloc((i - start) * sizeof(*chunk));
        if (chunk == NULL) {
            fail_works(n, works + start, i - start, BRK_ENOMEM,
                       "out of memory");
        } else {
            memcpy(chunk, works + start, (i - start) * sizeof(*chunk));
            propose_entry(n, chunk, i - start, ts);
        }
        start = i;
        bytes = i < count ? cmd_bytes(&works[i]->cmd) : 0;
    }
    free(works);
}

/* ==== start / stop ==== */

static int bootstrap(struct node *n, char *errmsg)
{
    const struct config_cluster *cc = &n->cfg->cluster;
    struct raft_configuration conf;
    int i, rv = 0;

    if (cc->node_id > (uint64_t)cc->n_initial_members)
        return 0; /* a node added later joins through POST /cluster/members */
    raft_configuration_init(&conf);
    for (i = 0; i < cc->n_initial_members && rv == 0; i++)
        rv = raft_configuration_add(&conf, (raft_id)(i + 1),
                                    cc->initial_members[i], RAFT_VOTER);
    if (rv == 0)
        rv = raft_bootstrap(&n->cl->raft, &conf);
    raft_configuration_close(&conf);
    if (rv == RAFT_CANTBOOTSTRAP)
        return 0; /* already bootstrapped: recover from the log */
    if (rv != 0)
        return brk_errf(errmsg, BRK_EIO, "raft_bootstrap: %s",
                        raft_strerror(rv));
    return 0;
}

static void tune(struct node *n)
{
    const struct config_cluster *cc = &n->cfg->cluster;
    struct raft *r = &n->cl->raft;

    raft_set_election_timeout(r, (unsigned)(cc->election_rtt * cc->rtt_ms));
    /* c-raft 0.15 can lose the answer to an InstallSnapshot, leaving the
     * follower idle until the leader's install timeout (30 s by default)
     * re-sends it: retry after two election timeouts instead. */
    raft_set_install_snapshot_timeout(
        r, (unsigned)(2 * cc->election_rtt * cc->rtt_ms));
    raft_set_heartbeat_timeout(r, (unsigned)(cc->heartbeat_rtt * cc->rtt_ms));
    raft_set_pre_vote(r, true);
    raft_set_snapshot_threshold(r, (unsigned)cc->snapshot_entries);
    raft_set_snapshot_trailing(r, (unsigned)cc->compaction_overhead);
}

/* Counts the elections this node starts. c-raft 0.15 has no state-change
 * callback, and the status timer's poll misses a candidacy that ends
 * within one tick (a transfer's election usually does). Every real
 * election goes through c-raft's electionStart, which persists the new
 * term and then this node's vote for itself through io->set_vote(io, own
 * id) before it sends RequestVote; pre-vote rounds persist nothing, and
 * votes granted to others carry their id. So a successful set_vote with
 * our own id is exactly one election started here (loop thread). */
static int count_self_vote(struct raft_io *io, raft_id id)
{
    struct cluster *cl = (struct cluster *)((char *)io -
                                            offsetof(struct cluster, io));
    int rv = cl->io_set_vote(io, id);

    if (rv == 0 && id != 0 && id == cl->raft.id)
        cl->elections++;
    return rv;
}

static int start_raft(struct node *n, char *errmsg)
{
    const struct config_cluster *cc = &n->cfg->cluster;
    struct cluster *cl = n->cl;
    int rv;

    rv = raft_uv_tcp_init(&cl->transport, &n->loop);
    if (rv != 0)
        return brk_errf(errmsg, BRK_EIO, "raft_uv_tcp_init: %s",
                        raft_strerror(rv));
    rv = raft_uv_init(&cl->io, &n->loop, cc->data_dir, &cl->transport);
    if (rv != 0)
        return brk_errf(errmsg, BRK_EIO, "raft_uv_init(%s): %s", cc->data_dir,
                        cl->io.errmsg);
    cl->io_set_vote = cl->io.set_vote;
    cl->io.set_vote = count_self_vote;
    fsm_init(n);
    rv = raft_init(&cl->raft, &cl->io, &cl->fsm, (raft_id)cc->node_id,
                   cc->raft_address);
    if (rv != 0)
        return brk_errf(errmsg, BRK_EIO, "raft_init: %s (%s)",
                        raft_strerror(rv), cl->raft.errmsg);
    tune(n);
    rv = bootstrap(n, errmsg);
    if (rv != 0)
        return rv;
    rv = raft_start(&cl->raft);
    if (rv != 0)
        return brk_errf(errmsg, BRK_EIO, "raft_start: %s",
                        raft_errmsg(&cl->raft));
    return 0;
}

int cluster_start(struct node *n, char *errmsg)
{
    const struct config_cluster *cc = &n->cfg->cluster;
    int rv;

    n->cl = calloc(1, sizeof(*n->cl));
    if (n->cl == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "allocate cluster state");
    n->cl->last_state = -1;
    n->status.cluster = true;
    n->status.state = NODE_STATE_FOLLOWER;
    n->status.leader_id = 0;
    n->status.n_members = 0;
    rv = fsutil_mkdirs(cc->data_dir, errmsg);
    if (rv == 0)
        rv = start_raft(n, errmsg);
    if (rv != 0)
        return rv;
    uv_timer_init(&n->loop, &n->cl->status_timer);
    n->cl->status_timer.data = n;
    uv_timer_start(&n->cl->status_timer, on_status, 0, STATUS_POLL_MS);
    cluster_publish_status(n);
    log_info(LOG_LINE_RAFT_STARTED " (node %llu, term %llu): raft %s, "
             "%d initial members, log in %s",
             (unsigned long long)cc->node_id,
             (unsigned long long)n->cl->raft.current_term, cc->raft_address,
             cc->n_initial_members, cc->data_dir);
    return 0;
}

static void raft_closed(struct raft *r)
{
    struct node *n = r->data;

    raft_uv_close(&n->cl->io);
    raft_uv_tcp_close(&n->cl->transport);
    n->cl->closed = true;
    n->cl->on_closed(n);
}

/* Close Raft (failing what is pending), then call @done on the loop. */
void cluster_stop(struct node *n, void (*done)(struct node *n))
{
    n->cl->closing = true;
    n->cl->on_closed = done;
    uv_timer_stop(&n->cl->status_timer);
    uv_close((uv_handle_t *)&n->cl->status_timer, NULL);
    n->cl->raft.data = n;
    raft_close(&n->cl->raft, raft_closed);
}
