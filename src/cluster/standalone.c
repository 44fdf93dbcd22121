/* Standalone write path: apply a drained batch, fsync once for all of it
 * on the thread pool (group commit), then publish and acknowledge. With a
 * positive flush_interval, acknowledge after the write and fsync on a
 * timer instead. The periodic flush also serves cluster nodes, whose
 * segments are otherwise fsync'd only for snapshots. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "broker/clock.h"
#include "broker/log.h"
#include "node_internal.h"

/* ==== group commit ==== */

static void sync_work(uv_work_t *req)
{
    struct sbatch *b = req->data;
    size_t i;

    /* Keys first: a key without its data is dropped at start-up, data
     * without its key would be stored again by a retry. */
    b->err = idem_journal_sync(b->node->st->idem, b->errmsg);
    for (i = 0; i < b->fx.n_touched && b->err == 0; i++) {
        struct state_touched *t = &b->fx.touched[i];
        b->err = partition_sync(t->topic->partitions[t->partition], b->errmsg);
    }
    /* A groups.json that cannot be written (disk full, read-only) leaves
     * the old file whole: refuse the batch's group changes, not fatal. */
    if (b->err == 0 && b->groups_text != NULL)
        b->groups_err = group_store_write(b->node->st->groups, b->groups_text,
                                          b->groups_errmsg);
}

/* The batch's group changes are not on disk: answer them with the error
 * and go back to what groups.json holds, so that nothing answered as
 * failed is visible (a claim's messages stay unclaimed). */
static void groups_write_failed(struct node *n, struct sbatch *b)
{
    char errmsg[BRK_ERRMSG_LEN];
    size_t i;

    log_error("cannot store group offsets, refusing this batch's group "
              "changes: %s", b->groups_errmsg);
    if (group_store_revert(n->st->groups, errmsg) != 0)
        log_error("cannot reload group offsets: %s", errmsg);
    for (i = 0; i < b->fx.n_deleted; i++)
        group_forget_topic(n->st->groups, b->fx.deleted[i]->name);
    for (i = 0; i < b->n; i++) {
        struct cmd_result *res = &b->works[i]->res;
        if (!state_cmd_changes_groups(b->works[i]->cmd.type) || res->err != 0)
            continue;
        cmd_result_clear(res);
        res->err = b->groups_err;
        brk_errf(res->errmsg, b->groups_err, "cannot store the group "
                 "offsets: %s", b->groups_errmsg);
    }
}

static void fsync_failed(const char *errmsg)
{
    /* After a failed fsync the kernel may have dropped the dirty pages, so
     * retrying could acknowledge data that is gone. Stop instead; start-up
     * recovery cuts whatever is not intact. */
    log_error("fsync failed, stopping so that nothing unsafe is "
              "acknowledged: %s", errmsg);
    _exit(1);
}

static void after_sync(uv_work_t *req, int status)
{
    struct sbatch *b = req->data;
    struct node *n = b->node;

    (void)status;
    n->syncing = false;
    if (b->err != 0)
        fsync_failed(b->errmsg);
    if (b->groups_err != 0)
        groups_write_failed(n, b);
    node_complete_batch(n, b->works, b->n, &b->fx, 0, "");
    free(b->groups_text);
    free(b->works);
    free(b);
    node_after_batch(n);
}

static void apply_all(struct node *n, struct sbatch *b)
{
    int64_t ts = clock_wall_ms();

    char errmsg[BRK_ERRMSG_LEN];
    size_t i;

    for (i = 0; i < b->n; i++)
        state_apply(n->st, &b->works[i]->cmd, ++n->index, ts,
                    &b->works[i]->res, &b->fx);
    /* Written right after the records (fsync'd with them), so that a
     * crash leaves a stored write with its key as far as possible. */
    b->keys = idem_journal_pending(n->st->idem);
    if (idem_journal_append(n->st->idem, errmsg) != 0)
        fsync_failed(errmsg);
}

void standalone_apply(struct node *n, struct work **works, size_t count)
{
    struct sbatch *b = calloc(1, sizeof(*b));
    bool err = false;

    if (b == NULL) {
        for (size_t i = 0; i < count; i++) {
            works[i]->res.err = BRK_ENOMEM;
            node_finish_work(n, works[i]);
        }
        free(works);
        return;
    }
    b->node = n;
    b->works = works;
    b->n = count;
    b->req.data = b;
    apply_all(n, b);
    if (n->cfg->flush_interval_ms > 0 ||
        (b->fx.n_touched == 0 && !b->fx.groups_changed && !b->keys)) {
        node_complete_batch(n, works, count, &b->fx, 0, "");
        free(works);
        free(b);
        node_after_batch(n);
        return;
    }
    b->groups_text = group_store_take_dirty(n->st->groups, &err);
    n->syncing = true;
    uv_queue_work(&n->loop, &b->req, sync_work, after_sync);
}

/* ==== periodic flush (flush_interval > 0) ==== */

struct flush {
    struct node *node;
    struct topic **topics;
    size_t n;
    char *groups_text;
    int err;
    char errmsg[BRK_ERRMSG_LEN];
    int groups_err;                   /* groups.json not written: retried */
    char groups_errmsg[BRK_ERRMSG_LEN];
    uv_work_t req;
};

static void flush_work(uv_work_t *req)
{
    struct flush *f = req->data;
    size_t i;
    uint32_t p;

    f->err = idem_journal_sync(f->node->st->idem, f->errmsg);
    for (i = 0; i < f->n && f->err == 0; i++)
        for (p = 0; p < f->topics[i]->n_partitions && f->err == 0; p++)
            f->err = partition_sync(f->topics[i]->partitions[p], f->errmsg);
    if (f->err == 0 && f->groups_text != NULL)
        f->groups_err = group_store_write(f->node->st->groups, f->groups_text,
                                          f->groups_errmsg);
}

static void after_flush(uv_work_t *req, int status)
{
    struct flush *f = req->data;
    struct node *n = f->node;

    (void)status;
    if (f->err != 0)
        fsync_failed(f->errmsg);
    if (f->groups_err != 0) {
        /* The old file is whole; the changes were acknowledged already
         * (flush_interval, or a cluster's Raft log has them): write them
         * again at the next flush. */
        group_store_mark_dirty(n->st->groups);
        node_set_storage(n, f->groups_errmsg);
    } else if (f->groups_text != NULL &&
               (n->cl == NULL || !n->cl->apply_failed)) {
        node_set_storage(n, NULL); /* written again */
    }
    topic_list_free(f->topics, f->n);
    free(f->groups_text);
    free(f);
    n->flush_running = false;
    node_after_batch(n);
}

static void on_flush(uv_timer_t *timer)
{
    struct node *n = timer->data;
    struct flush *f;
    bool err;

    if (n->flush_running || (f = calloc(1, sizeof(*f))) == NULL)
        return;
    if (topic_registry_list(n->st->topics, &f->topics, &f->n) != 0) {
        free(f);
        return;
    }
    f->node = n;
    f->req.data = f;
    f->groups_text = group_store_take_dirty(n->st->groups, &err);
    n->flush_running = true;
    uv_queue_work(&n->loop, &f->req, flush_work, after_flush);
}

/* Cluster nodes flush every second too: the Raft log is the durable copy,
 * but the snapshot's own fsync (on the loop thread) stays short. */
#define CLUSTER_FLUSH_MS 1000

void node_flush_start(struct node *n)
{
    uint64_t ms = n->cfg->flush_interval_ms > 0
                      ? (uint64_t)n->cfg->flush_interval_ms
                      : CLUSTER_FLUSH_MS;

    uv_timer_start(&n->flush_timer, on_flush, ms, ms);
}

/* After the loop has stopped: everything acknowledged reaches the disk
 * (with flush_interval, and in a cluster where segments are only fsync'd
 * for snapshots). */
void node_final_flush(struct node *n)
{
    struct flush f = {.node = n};
    bool err;

    if (n->cfg->flush_interval_ms <= 0 && n->cl == NULL)
        return;
    if (topic_registry_list(n->st->topics, &f.topics, &f.n) != 0)
        return;
    f.groups_text = group_store_take_dirty(n->st->groups, &err);
    flush_work(&(uv_work_t){.data = &f});
    if (f.err != 0)
        log_error("final flush failed: %s", f.errmsg);
    if (f.groups_err != 0)
        log_error("final flush: cannot store group offsets: %s",
                  f.groups_errmsg);
    topic_list_free(f.topics, f.n);
    free(f.groups_text);
}
