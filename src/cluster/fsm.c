/* The Raft state machine: apply committed entries through state_apply,
 * snapshot the metadata only (topics, partition positions, groups,
 * members), and restore by reconciling local storage with a snapshot,
 * pulling missing records from the leader (catchup.c).
 *
 * Segments are not fsync'd per entry in a cluster (the Raft log is the
 * durable copy); before a snapshot lets c-raft drop entries, every
 * partition is fsync'd. c-raft 0.15's libuv I/O has no async_work, so
 * the FSM is version 2 and that fsync runs on the loop thread; a flush
 * every second on the thread pool (standalone.c) keeps it short. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/clock.h"
#include "broker/log.h"
#include "node_internal.h"

/* 2 adds "idempotency" (the key table); version 1 snapshots still load,
 * with no keys. */
#define SNAPSHOT_VERSION 2

/* Longest a restore may block the loop fetching records (see catchup.c). */
#define CATCHUP_BUDGET_MS 5000

/* Several commands share one Raft entry, and replay idempotence needs a
 * number per command: the entry index with the command's position. */
#define FSM_SEQ(index, i) (((index) << FSM_SEQ_BITS) | (uint64_t)(i))

/* ==== apply ==== */

/* Checked again here: an entry written before addresses were validated
 * (or by a faulty leader) must not become a relay target. The address is
 * logged only once it is known to be a plain host:port. */
static void apply_member(struct node *n, const struct cmd *c,
                         struct cmd_result *res)
{
    unsigned long long id = (unsigned long long)c->node_id;
    int rv = cluster_set_member(n, c->node_id, c->address);

    res->err = rv;
    if (rv == BRK_EINVAL) {
        log_warn("member %llu: ignoring an HTTP address that is not a valid "
                 "host:port", id);
        snprintf(res->errmsg, sizeof(res->errmsg), "not a valid host:port");
    } else if (rv != 0) {
        log_warn("member %llu: the member table is full (%d entries); its "
                 "HTTP address is not recorded", id, NODE_MAX_MEMBERS);
        snprintf(res->errmsg, sizeof(res->errmsg), "the member table is full "
                 "(%d entries)", NODE_MAX_MEMBERS);
    } else if (c->address[0] == '\0') {
        log_info("member %llu forgotten", id);
    } else {
        log_info("member %llu serves HTTP at %s", id, c->address);
    }
}

/* Errors of this node's disk or memory, as opposed to a command that is
 * refused everywhere alike (unknown topic, ...). */
static bool storage_failed(int err)
{
    return err == BRK_EIO || err == BRK_ECORRUPT || err == BRK_ESHORT ||
           err == BRK_ENOMEM || err == BRK_EINTERNAL ||
           err == BRK_ESTORAGE_FULL;
}

/* Going on would leave this node's partitions different from the others'.
 * The entry is not counted as applied: c-raft stops applying here and
 * tries again as new entries commit (the commands already applied are
 * skipped then, see state_apply), or stops this node's Raft. A leader
 * hands leadership to a healthy node. */
static void stop_diverging(struct node *n, uint64_t index, const char *errmsg)
{
    char why[BRK_ERRMSG_LEN];

    snprintf(why, sizeof(why), "cannot apply Raft entry %llu (%.300s): "
             "stopped applying so that this replica does not diverge; it "
             "resumes when the disk has room again (or restart it)",
             (unsigned long long)index, errmsg);
    if (!n->cl->apply_failed)
        log_error("%s", why);
    n->cl->apply_failed = true;
    node_set_storage(n, why);
}

/* The leader's own batch could not be applied here: the entry is
 * committed and the other nodes apply it, so the outcome is unknown to
 * the client, as after a lost leadership. */
static void fail_pending(struct node *n, struct pbatch *pb)
{
    size_t i;

    n->cl->pending = pb->next;
    pb->applied = true; /* answered here, not by apply_cb */
    for (i = 0; i < pb->count; i++) {
        struct cmd_result *res = &pb->works[i]->res;
        cmd_result_clear(res);
        res->err = BRK_EUNAVAILABLE;
        snprintf(res->errmsg, sizeof(res->errmsg), "this node cannot store "
                 "the write (disk full or not writable); the other nodes may "
                 "apply it: the write " BRK_MAYBE_APPLIED ": retry");
        node_finish_work(n, pb->works[i]);
    }
}

/* 0, or the error that stopped the entry half-way. */
static int apply_cmds(struct node *n, struct cmd *cmds, size_t count,
                      uint64_t index, int64_t ts, struct pbatch *pb,
                      struct state_effects *fx)
{
    struct cmd_result scratch;
    size_t i;
    int err = 0;

    for (i = 0; i < count && err == 0; i++) {
        struct cmd_result *res = pb ? &pb->works[i]->res : &scratch;
        memset(&scratch, 0, sizeof(scratch));
        if (pb != NULL)
            cmd_result_clear(res); /* an earlier attempt's */
        if (cmds[i].type == CMD_SET_MEMBER)
            apply_member(n, &cmds[i], res);
        else
            state_apply(n->st, &cmds[i], FSM_SEQ(index, i), ts, res, fx);
        if (storage_failed(res->err)) {
            stop_diverging(n, index, res->errmsg);
            err = res->err;
        }
        if (pb == NULL)
            cmd_result_clear(&scratch);
    }
    return err;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    struct node *n = fsm->data;
    struct cluster *cl = n->cl;
    uint64_t index = raft_last_applied(&cl->raft) + 1;
    struct pbatch *pb = cl->pending;
    struct state_effects fx = {0};
    struct cmd *cmds;
    size_t count, i;
    int64_t ts;
    int rv;

    *result = NULL;
    if (cmd_decode_entry(buf->base, buf->len, &ts, &cmds, &count) != 0) {
        log_error("skipping undecodable Raft entry %llu",
                  (unsigned long long)index);
        return 0;
    }
    /* Entries this leader proposed come back in order: the oldest pending
     * batch is this entry exactly when the index matches. */
    if (pb != NULL && (pb->req.index != index || pb->count != count))
        pb = NULL;
    rv = apply_cmds(n, cmds, count, index, ts, pb, &fx);
    for (i = 0; i < count; i++)
        cmd_clear(&cmds[i]);
    free(cmds);
    if (rv != 0) {
        if (pb != NULL)
            fail_pending(n, pb);
        state_effects_clear(&fx);
        return RAFT_IOERR;
    }
    if (cl->apply_failed) {
        cl->apply_failed = false;
        cl->stepdown_logged = false;
        log_info("applying Raft entries again from entry %llu",
                 (unsigned long long)index);
        node_set_storage(n, NULL);
    }
    if (pb != NULL) {
        cl->pending = pb->next;
        pb->applied = true;
    }
    node_complete_batch(n, pb ? pb->works : NULL, pb ? pb->count : 0, &fx, 0,
                        "");
    if (n->retry_head != NULL)
        uv_async_send(&n->async);
    return 0;
}

/* ==== snapshot ==== */

static json_t *topic_json(struct topic *t)
{
    json_t *parts = json_array();
    struct partition_stats st;
    uint32_t p;

    for (p = 0; p < t->n_partitions; p++) {
        partition_stats(t->partitions[p], &st);
        json_array_append_new(parts,
                              json_pack("{s:I, s:I}", "log_start",
                                        (json_int_t)st.log_start_offset,
                                        "next", (json_int_t)st.next_offset));
    }
    return json_pack("{s:s, s:I, s:I, s:o}", "name", t->name, "retention_ms",
                     (json_int_t)t->retention_ms, "created_index",
                     (json_int_t)t->created_index, "parts", parts);
}

static char *snapshot_text(struct node *n)
{
    struct cluster *cl = n->cl;
    json_t *o, *topics = json_array(), *members = json_array();
    char *groups = group_store_dump(n->st->groups), *text;
    size_t i;
    int m;

    for (i = 0; i < cl->n_snap_topics; i++)
        json_array_append_new(topics, topic_json(cl->snap_topics[i]));
    for (m = 0; m < cl->n_members; m++)
        json_array_append_new(members,
                              json_pack("{s:I, s:s}", "id",
                                        (json_int_t)cl->members[m].id, "http",
                                        cl->members[m].http));
    /* c-raft snapshots at last_applied; the index is kept in the
     * snapshot because restore at start-up cannot ask c-raft for it. */
    o = json_pack("{s:i, s:I, s:o, s:o, s:s}", "version", SNAPSHOT_VERSION,
                  "index", (json_int_t)raft_last_applied(&cl->raft), "topics",
                  topics, "members", members, "groups",
                  groups ? groups : "{}");
    if (o != NULL &&
        json_object_set_new(o, "idempotency", idem_dump(n->st->idem)) != 0) {
        json_decref(o);
        o = NULL;
    }
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    cl->snap_groups = groups;
    return text;
}

static void fsm_snapshot_release(struct cluster *cl)
{
    topic_list_free(cl->snap_topics, cl->n_snap_topics);
    cl->snap_topics = NULL;
    cl->n_snap_topics = 0;
    free(cl->snap_groups);
    cl->snap_groups = NULL;
}

/* Make the data the snapshot describes durable. */
static int snapshot_sync(struct node *n)
{
    struct cluster *cl = n->cl;
    char errmsg[BRK_ERRMSG_LEN];
    size_t i;
    uint32_t p;
    int rv = 0;

    for (i = 0; i < cl->n_snap_topics && rv == 0; i++)
        for (p = 0; p < cl->snap_topics[i]->n_partitions && rv == 0; p++)
            rv = partition_sync(cl->snap_topics[i]->partitions[p], errmsg);
    if (rv == 0 && cl->snap_groups != NULL)
        rv = group_store_write(n->st->groups, cl->snap_groups, errmsg);
    if (rv != 0)
        log_error("snapshot: cannot make data durable: %s", errmsg);
    return rv;
}

/* Loop thread: the metadata at this index, after an fsync of the data. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    struct node *n = fsm->data;
    struct cluster *cl = n->cl;
    char *text;

    if (n->flush_running)
        return RAFT_BUSY; /* retried after the next apply */
    if (topic_registry_list(n->st->topics, &cl->snap_topics,
                            &cl->n_snap_topics) != 0)
        return RAFT_NOMEM;
    text = snapshot_text(n);
    *bufs = raft_malloc(sizeof(**bufs));
    if (text == NULL || *bufs == NULL || snapshot_sync(n) != 0) {
        free(text);
        raft_free(*bufs);
        *bufs = NULL;
        *n_bufs = 0;
        fsm_snapshot_release(cl);
        return text == NULL ? RAFT_NOMEM : RAFT_IOERR;
    }
    (*bufs)[0].base = text;
    (*bufs)[0].len = strlen(text);
    *n_bufs = 1;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm,
                                 struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct node *n = fsm->data;
    struct cluster *cl = n->cl;

    if (*bufs != NULL) {
        free((*bufs)[0].base);
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    fsm_snapshot_release(cl);
    cl->snapshots_taken++;
    return 0;
}

/* ==== restore ==== */

static const char *leader_http(struct node *n)
{
    raft_id id = 0;
    const char *addr;

    raft_leader(&n->cl->raft, &id, &addr);
    return id != 0 && id != n->cfg->cluster.node_id
               ? cluster_member_http(n, id)
               : NULL;
}

/* At start-up no leader is known yet, and the local segments may have
 * lost records the snapshot covers (a damaged or cut tail). They are
 * committed, so every member's copy is the same (CRC-checked on the way
 * in): fetch them from the first other member that has them. */
static int catchup_from_peers(struct node *n, struct topic *t, uint32_t p,
                              uint64_t next, char *errmsg)
{
    int i, rv = brk_errf(errmsg, BRK_EUNAVAILABLE, "no other member's "
                         "address is known");

    for (i = 0; i < n->cl->n_members; i++) {
        const struct member_http *m = &n->cl->members[i];
        if (m->id == n->cfg->cluster.node_id || m->http[0] == '\0')
            continue;
        rv = catchup_partition(n, m->http, t, p, next, errmsg);
        if (rv == 0)
            return 0;
        log_warn("restore: %s/%u from node %llu: %s", t->name, p,
                 (unsigned long long)m->id, errmsg);
    }
    return rv;
}

/* Make one partition hold what the snapshot says: records up to "next"
 * (fetched from the leader when missing) and nothing below "log_start"
 * (truncations may have left the log with the compaction). Data ahead of
 * the snapshot stays: replayed entries skip it. */
static int restore_partition(struct node *n, struct topic *t, uint32_t p,
                             json_t *part, char *errmsg)
{
    uint64_t next = (uint64_t)json_integer_value(json_object_get(part, "next"));
    uint64_t start =
        (uint64_t)json_integer_value(json_object_get(part, "log_start"));
    struct partition *pt = t->partitions[p];
    const char *leader;
    char why[BRK_ERRMSG_LEN];
    struct partition_stats st;
    int rv = 0;

    partition_stats(pt, &st);
    if (st.next_offset < next && st.next_offset < start)
        rv = partition_reset(pt, start, errmsg); /* nothing usable here */
    else if (st.log_start_offset < start)
        rv = partition_truncate_before(pt, start, errmsg);
    partition_stats(pt, &st);
    if (rv != 0 || st.next_offset >= next)
        return rv;
    leader = leader_http(n);
    if (leader != NULL)
        return catchup_partition(n, leader, t, p, next, errmsg);
    if (catchup_from_peers(n, t, p, next, why) == 0)
        return 0;
    return brk_errf(errmsg, BRK_EUNAVAILABLE, "%s/%u needs offsets %llu.."
                    "%llu and neither a leader nor another member could "
                    "send them (%s; was data_dir emptied while "
                    "cluster.data_dir was kept? empty both to rebuild this "
                    "node)", t->name, p, (unsigned long long)st.next_offset,
                    (unsigned long long)next, why);
}

/* The local topic of that name, re-made when it is another incarnation
 * (deleted and re-created while this node was away). */
static struct topic *restore_topic_object(struct node *n, json_t *jt,
                                          const char *name, size_t parts,
                                          char *errmsg)
{
    uint64_t created =
        (uint64_t)json_integer_value(json_object_get(jt, "created_index"));
    struct topic *t = topic_registry_get(n->st->topics, name);

    if (t != NULL && (t->created_index != created || t->n_partitions != parts)) {
        log_warn("restore: replacing topic %s (another incarnation)", name);
        topic_put(t);
        t = NULL;
        if (topic_registry_delete(n->st->topics, name, errmsg) != 0)
            return NULL;
    }
    if (t != NULL)
        return t;
    if (topic_registry_create(
            n->st->topics, name, (uint32_t)parts,
            json_integer_value(json_object_get(jt, "retention_ms")), created,
            NULL, errmsg) != 0)
        return NULL;
    return topic_registry_get(n->st->topics, name);
}

static int restore_topic(struct node *n, json_t *jt, char *errmsg)
{
    const char *name = json_string_value(json_object_get(jt, "name"));
    json_t *parts = json_object_get(jt, "parts");
    struct topic *t;
    uint32_t p;
    int rv = 0;

    if (name == NULL || json_array_size(parts) == 0)
        return brk_errf(errmsg, BRK_ECORRUPT, "topic without name or parts");
    t = restore_topic_object(n, jt, name, json_array_size(parts), errmsg);
    if (t == NULL)
        return brk_errwrap(errmsg, BRK_EIO, "restore topic %s", name);
    for (p = 0; rv == 0 && p < t->n_partitions; p++)
        rv = restore_partition(n, t, p, json_array_get(parts, p), errmsg);
    topic_put(t);
    return rv;
}

/* Topics the snapshot does not know and that existed before it were
 * deleted meanwhile. */
static void restore_deletions(struct node *n, json_t *topics, uint64_t index)
{
    struct topic **list;
    size_t count, i, j;
    char errmsg[BRK_ERRMSG_LEN];
    bool found;

    if (topic_registry_list(n->st->topics, &list, &count) != 0)
        return;
    for (i = 0; i < count; i++) {
        found = false;
        for (j = 0; j < json_array_size(topics) && !found; j++)
            found = strcmp(list[i]->name,
                           json_string_value(json_object_get(
                               json_array_get(topics, j), "name"))) == 0;
        if (!found && list[i]->created_index <= index)
            topic_registry_delete(n->st->topics, list[i]->name, errmsg);
    }
    topic_list_free(list, count);
}

static void restore_members(struct node *n, json_t *members)
{
    size_t i;

    for (i = 0; i < json_array_size(members); i++) {
        json_t *m = json_array_get(members, i);
        const char *http = json_string_value(json_object_get(m, "http"));
        json_int_t id = json_integer_value(json_object_get(m, "id"));
        if (http != NULL && http[0] != '\0' && id > 0 &&
            cluster_set_member(n, (uint64_t)id, http) != 0)
            log_warn("snapshot: member %lld: HTTP address not recorded "
                     "(invalid or table full)", (long long)id);
    }
}

static void restore_groups(struct node *n, const char *text)
{
    json_error_t jerr;
    json_t *g = json_loads(text, 0, &jerr);
    uint64_t idx = (uint64_t)json_integer_value(json_object_get(g, "applied_index"));
    char errmsg[BRK_ERRMSG_LEN];

    if (g != NULL && idx > group_store_applied_index(n->st->groups) &&
        group_store_load_text(n->st->groups, text, errmsg) != 0)
        log_error("restore: bad groups in snapshot: %s", errmsg);
    json_decref(g);
}

/* /readyz answers 503 while a snapshot's records are being fetched. */
static void set_catching_up(struct node *n, bool on)
{
    pthread_mutex_lock(&n->status_lock);
    n->status.catching_up = on;
    pthread_mutex_unlock(&n->status_lock);
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct node *n = fsm->data;
    json_error_t jerr;
    json_t *o = json_loadb(buf->base, buf->len, 0, &jerr), *topics;
    char errmsg[BRK_ERRMSG_LEN] = "";
    uint64_t index;
    size_t i;
    int rv = 0;

    if (o == NULL) {
        log_error("restore: undecodable snapshot: %s", jerr.text);
        return RAFT_MALFORMED;
    }
    index = (uint64_t)json_integer_value(json_object_get(o, "index"));
    set_catching_up(n, true);
    n->cl->catchup_deadline_ns = clock_mono_ns() + CATCHUP_BUDGET_MS * 1000000ull;
    restore_members(n, json_object_get(o, "members"));
    topics = json_object_get(o, "topics");
    restore_deletions(n, topics, FSM_SEQ(index, FSM_MAX_CMDS));
    for (i = 0; rv == 0 && i < json_array_size(topics); i++)
        rv = restore_topic(n, json_array_get(topics, i), errmsg);
    if (rv == 0 && json_is_string(json_object_get(o, "groups")))
        restore_groups(n, json_string_value(json_object_get(o, "groups")));
    if (rv == 0)
        rv = idem_load(n->st->idem, json_object_get(o, "idempotency"), errmsg);
    json_decref(o);
    set_catching_up(n, false);
    if (rv != 0) {
        /* Refuse the snapshot rather than serve data that differs from the
         * other nodes': c-raft keeps the old state and the leader re-sends
         * it (at start-up the broker stops with this message). */
        log_error("cannot restore snapshot at index %llu: %s",
                  (unsigned long long)index, errmsg);
        return RAFT_IOERR;
    }
    raft_free(buf->base);
    log_info("restored snapshot at index %llu", (unsigned long long)index);
    return 0;
}

void fsm_init(struct node *n)
{
    struct raft_fsm *f = &n->cl->fsm;

    f->version = 2;
    f->data = n;
    f->apply = fsm_apply;
    f->snapshot = fsm_snapshot;
    f->restore = fsm_restore;
    f->snapshot_finalize = fsm_snapshot_finalize;
}
