/* The loop thread: takes work from HTTP threads, applies commands, parks
 * long polls, runs retention, and stops cleanly. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/clock.h"
#include "broker/log.h"
#include "node_internal.h"

const char *node_state_name(enum node_state s)
{
    switch (s) {
    case NODE_STATE_LEADER: return "leader";
    case NODE_STATE_FOLLOWER: return "follower";
    case NODE_STATE_CANDIDATE: return "candidate";
    default: return "unavailable";
    }
}

const char *node_role_name(enum node_role r)
{
    switch (r) {
    case NODE_ROLE_STANDBY: return "standby";
    case NODE_ROLE_SPARE: return "spare";
    default: return "voter";
    }
}

/* ==== finishing work ==== */

void node_finish_work(struct node *n, struct work *w)
{
    (void)n;
    w->done(w);
}

void node_requeue(struct node *n, struct work *w)
{
    w->next = NULL;
    if (n->retry_tail != NULL)
        n->retry_tail->next = w;
    else
        n->retry_head = w;
    n->retry_tail = w;
}

void node_publish_waiters_count(struct node *n)
{
    pthread_mutex_lock(&n->status_lock);
    n->status.waiters = n->n_waiters;
    pthread_mutex_unlock(&n->status_lock);
}

/* ==== answering a batch (both write paths) ==== */

static bool claim_should_wait(struct node *n, struct work *w)
{
    return w->cmd.type == CMD_CLAIM && w->res.err == 0 &&
           w->res.n_claimed == 0 && w->wait_ms > 0 && !n->stopping &&
           uv_now(&n->loop) < w->deadline_ms;
}

static bool disk_failed(int err)
{
    return err == BRK_EIO || err == BRK_ESTORAGE_FULL;
}

/* Publish whether the batch's writes reached the disk. */
static void note_storage(struct node *n, struct work **works, size_t count)
{
    const char *failed = NULL;
    bool ok = false;
    size_t i;

    for (i = 0; i < count; i++) {
        if (works[i]->type != WORK_CMD)
            continue;
        if (disk_failed(works[i]->res.err))
            failed = works[i]->res.errmsg;
        else if (works[i]->res.err == 0)
            ok = true;
    }
    if (failed != NULL)
        node_set_storage(n, failed);
    else if (ok)
        node_set_storage(n, NULL);
}

void node_complete_batch(struct node *n, struct work **works, size_t count,
                         struct state_effects *fx, int err,
                         const char *errmsg)
{
    struct partition_stats st;
    size_t i;

    for (i = 0; i < fx->n_touched; i++) {
        struct topic *t = fx->touched[i].topic;
        uint32_t p = fx->touched[i].partition;
        partition_stats(t->partitions[p], &st);
        partition_publish(t->partitions[p], st.next_offset);
        waiters_wake_partition(n, t, p);
    }
    for (i = 0; i < fx->n_deleted; i++)
        waiters_wake_topic(n, fx->deleted[i]);
    note_storage(n, works, count);
    for (i = 0; i < count; i++) {
        struct work *w = works[i];
        if (err != 0 && w->res.err == 0) {
            w->res.err = err;
            snprintf(w->res.errmsg, sizeof(w->res.errmsg), "%s", errmsg);
        }
        if (claim_should_wait(n, w)) {
            cmd_result_clear(&w->res);
            waiters_add(n, w, true);
        } else {
            node_finish_work(n, w);
        }
    }
    state_effects_clear(fx);
}

/* ==== draining the queue ==== */

static bool wait_ready(struct work *w)
{
    struct partition_stats st;

    if (atomic_load(&w->topic->deleted) || w->partition >= w->topic->n_partitions)
        return true;
    partition_stats(w->topic->partitions[w->partition], &st);
    return st.high_watermark > w->offset;
}

/* Handle one non-command item; returns false for commands. */
static bool drain_other(struct node *n, struct work *w)
{
    switch (w->type) {
    case WORK_CALL:
        if (w->call(w, n))
            node_finish_work(n, w);
        return true;
    case WORK_WAIT:
        if (n->stopping || wait_ready(w))
            node_finish_work(n, w);
        else
            waiters_add(n, w, false);
        return true;
    default:
        return false;
    }
}

static struct work *take_pending(struct node *n)
{
    struct work *list = n->retry_head, *q = workq_take_all(&n->q);

    n->retry_head = n->retry_tail = NULL;
    if (list == NULL)
        return q;
    for (struct work *w = list;; w = w->next)
        if (w->next == NULL) {
            w->next = q;
            break;
        }
    return list;
}

void node_drain(struct node *n)
{
    struct work *list, *w, *next, **cmds;
    size_t count = 0, cap = 0;

    if (n->syncing)
        return; /* the batch in flight drains again when it finishes */
    list = take_pending(n);
    for (w = list; w != NULL; w = w->next)
        cap++;
    if (cap == 0)
        return;
    cmds = malloc(cap * sizeof(*cmds));
    for (w = list; w != NULL; w = next) {
        next = w->next;
        if (w->deadline_ms == 0 && w->wait_ms > 0)
            w->deadline_ms = uv_now(&n->loop) + w->wait_ms;
        if (drain_other(n, w))
            continue;
        if (cmds == NULL) {
            w->res.err = BRK_ENOMEM;
            node_finish_work(n, w);
            continue;
        }
        cmds[count++] = w;
    }
    if (count > 0 && n->cl != NULL)
        cluster_propose(n, cmds, count);
    else if (count > 0)
        standalone_apply(n, cmds, count);
    else
        free(cmds);
}

static void on_async(uv_async_t *a)
{
    node_drain(a->data);
}

/* ==== retention ==== */

void node_free_internal_work(struct work *w)
{
    if (w->res.err != 0 && w->res.err != BRK_EUNKNOWN_TOPIC)
        log_error("internal command %d on '%s' failed: %s",
                  (int)w->cmd.type, w->cmd.topic, w->res.errmsg);
    cmd_clear(&w->cmd);
    cmd_result_clear(&w->res);
    free(w);
}

static void retention_check(struct node *n, struct topic *t, uint32_t p,
                            int64_t now)
{
    int64_t ret = t->retention_ms >= 0 ? t->retention_ms : n->cfg->retention_ms;
    uint64_t before;
    struct work *w;

    if (partition_retention_point(t->partitions[p], now, ret,
                                  n->cfg->retention_bytes, &before) != 1)
        return;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return;
    w->type = WORK_CMD;
    w->cmd.type = CMD_TRUNCATE;
    snprintf(w->cmd.topic, sizeof(w->cmd.topic), "%s", t->name);
    w->cmd.partition = p;
    w->cmd.before = before;
    w->done = node_free_internal_work;
    node_requeue(n, w);
}

static void on_retention(uv_timer_t *timer)
{
    struct node *n = timer->data;
    struct topic **list;
    size_t count, i;
    uint32_t p;
    int64_t now = clock_wall_ms();

    /* In a cluster only the leader decides; the truncation is replicated
     * so log_start_offset is the same on every node. */
    if (n->cl != NULL && n->status.state != NODE_STATE_LEADER)
        return;
    if (topic_registry_list(n->st->topics, &list, &count) != 0)
        return;
    for (i = 0; i < count; i++)
        for (p = 0; p < list[i]->n_partitions; p++)
            retention_check(n, list[i], p, now);
    topic_list_free(list, count);
    node_drain(n);
}

/* ==== lifecycle ==== */

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void maybe_finish_stop(struct node *n);

static void cluster_closed(struct node *n)
{
    maybe_finish_stop(n);
}

static void maybe_finish_stop(struct node *n)
{
    if (!n->stopping || n->syncing || n->flush_running || n->stopped)
        return;
    if (n->cl != NULL && !n->cl->closed) {
        if (!n->cl->closing)
            cluster_stop(n, cluster_closed);
        return;
    }
    n->stopped = true;
    waiters_wake_all(n);
    uv_close((uv_handle_t *)&n->async, close_cb);
    uv_close((uv_handle_t *)&n->stop_async, close_cb);
    uv_close((uv_handle_t *)&n->retention_timer, close_cb);
    uv_close((uv_handle_t *)&n->flush_timer, close_cb);
}

void node_after_batch(struct node *n)
{
    /* Work queued while the batch was syncing found the loop busy: look
     * again. Signalling ourselves avoids recursing under constant load;
     * once stopping no new work arrives, so draining directly ends. */
    if (n->stopping) {
        node_drain(n);
        maybe_finish_stop(n);
    } else {
        uv_async_send(&n->async);
    }
}

static void on_stop(uv_async_t *a)
{
    struct node *n = a->data;

    n->stopping = true;
    node_drain(n); /* whatever was queued before the close */
    maybe_finish_stop(n);
}

static void loop_main(void *arg)
{
    struct node *n = arg;

    uv_sem_post(&n->started);
    uv_run(&n->loop, UV_RUN_DEFAULT);
}

static void init_status(struct node *n)
{
    struct node_status *s = &n->status;
    struct node_member *m = &s->members[0];

    s->node_id = n->cfg->cluster.node_id ? n->cfg->cluster.node_id : 1;
    s->cluster = false;
    s->state = NODE_STATE_LEADER;
    s->leader_id = s->node_id;
    m->id = s->node_id;
    snprintf(m->raft_address, sizeof(m->raft_address), "%s",
             n->cfg->cluster.raft_address);
    snprintf(m->http_address, sizeof(m->http_address), "%s",
             n->cfg->server.advertise);
    m->role = NODE_ROLE_VOTER;
    s->leader = *m;
    s->n_members = 1;
    s->started_ms = clock_wall_ms();
}

static int init_handles(struct node *n)
{
    int rv = uv_loop_init(&n->loop);

    if (rv != 0)
        return rv;
    uv_async_init(&n->loop, &n->async, on_async);
    uv_async_init(&n->loop, &n->stop_async, on_stop);
    uv_timer_init(&n->loop, &n->retention_timer);
    uv_timer_init(&n->loop, &n->flush_timer);
    n->async.data = n->stop_async.data = n;
    n->retention_timer.data = n->flush_timer.data = n;
    workq_init(&n->q, &n->async);
    uv_timer_start(&n->retention_timer, on_retention,
                   (uint64_t)n->cfg->cleanup_interval_ms,
                   (uint64_t)n->cfg->cleanup_interval_ms);
    if (n->cfg->flush_interval_ms > 0 || n->cfg->cluster.enabled)
        node_flush_start(n);
    return 0;
}

int node_start(const struct config *cfg, struct state *st, struct node **out,
               char *errmsg)
{
    struct node *n = calloc(1, sizeof(*n));
    int rv;

    if (n == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "allocate node");
    n->cfg = cfg;
    n->st = st;
    n->index = state_last_index(st);
    pthread_mutex_init(&n->status_lock, NULL);
    init_status(n);
    rv = init_handles(n);
    if (rv == 0 && cfg->cluster.enabled && cluster_start(n, errmsg) != 0)
        return BRK_EIO; /* the process exits: nothing to unwind */
    if (rv == 0)
        rv = uv_sem_init(&n->started, 0);
    if (rv == 0)
        rv = uv_thread_create(&n->thread, loop_main, n);
    if (rv != 0) {
        free(n);
        return brk_errf(errmsg, BRK_EINTERNAL, "start loop thread: %s",
                        uv_strerror(rv));
    }
    uv_sem_wait(&n->started);
    *out = n;
    return 0;
}

int node_submit(struct node *n, struct work *w)
{
    return workq_push(&n->q, w);
}

void node_status(struct node *n, struct node_status *out)
{
    pthread_mutex_lock(&n->status_lock);
    *out = n->status;
    pthread_mutex_unlock(&n->status_lock);
}

void node_set_storage(struct node *n, const char *errmsg)
{
    bool was;

    pthread_mutex_lock(&n->status_lock);
    was = n->status.storage_unwritable;
    n->status.storage_unwritable = errmsg != NULL;
    snprintf(n->status.storage_error, sizeof(n->status.storage_error), "%s",
             errmsg ? errmsg : "");
    pthread_mutex_unlock(&n->status_lock);
    if (errmsg != NULL && !was)
        log_error("storage is not writable: %s", errmsg);
    else if (errmsg == NULL && was)
        log_info("storage is writable again");
}

void node_stop(struct node *n)
{
    workq_close(&n->q);
    uv_async_send(&n->stop_async);
    uv_thread_join(&n->thread);
    node_final_flush(n);
}

void node_destroy(struct node *n)
{
    if (n == NULL)
        return;
    uv_loop_close(&n->loop);
    free(n->cl);
    workq_destroy(&n->q);
    uv_sem_destroy(&n->started);
    pthread_mutex_destroy(&n->status_lock);
    free(n);
}
