/* State machine apply: the only code that changes topics, partitions and
 * group offsets. Deterministic given (command, index, timestamp). */
#include "broker/state.h"

#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "broker/err.h"
#include "broker/log.h"

/* ==== effects ==== */

static void fx_touch(struct state_effects *fx, struct topic *t, uint32_t p)
{
    size_t i;

    for (i = 0; i < fx->n_touched; i++)
        if (fx->touched[i].topic == t && fx->touched[i].partition == p)
            return;
    if (fx->n_touched == fx->cap_touched) {
        size_t cap = fx->cap_touched ? fx->cap_touched * 2 : 8;
        void *a = realloc(fx->touched, cap * sizeof(*fx->touched));
        if (a == NULL) {
            fx->failed = true;
            return;
        }
        fx->touched = a;
        fx->cap_touched = cap;
    }
    topic_get(t);
    fx->touched[fx->n_touched].topic = t;
    fx->touched[fx->n_touched++].partition = p;
}

static void fx_deleted(struct state_effects *fx, struct topic *t)
{
    if (fx->n_deleted == fx->cap_deleted) {
        size_t cap = fx->cap_deleted ? fx->cap_deleted * 2 : 4;
        void *a = realloc(fx->deleted, cap * sizeof(*fx->deleted));
        if (a == NULL) {
            fx->failed = true;
            return;
        }
        fx->deleted = a;
        fx->cap_deleted = cap;
    }
    topic_get(t);
    fx->deleted[fx->n_deleted++] = t;
}

void state_effects_clear(struct state_effects *fx)
{
    size_t i;

    for (i = 0; i < fx->n_touched; i++)
        topic_put(fx->touched[i].topic);
    for (i = 0; i < fx->n_deleted; i++)
        topic_put(fx->deleted[i]);
    free(fx->touched);
    free(fx->deleted);
    memset(fx, 0, sizeof(*fx));
}

/* ==== open / close ==== */

/* The journal is written before the data's fsync: a key whose command
 * did not reach the disk (power loss) is dropped at start-up, so that a
 * retry applies it anew. */
static bool idem_durable(void *ctx, uint64_t index)
{
    return index <= state_last_index(ctx);
}

static bool idem_resolve(void *ctx, const struct idem_intent *in,
                         struct cmd_result *res);

/* Standalone, keys live in a journal next to the data; a cluster keeps
 * them in its Raft snapshots and rebuilds them by replaying the log. */
static int idem_open(struct state *s, char *errmsg)
{
    char path[4096];
    int rv = idem_table_create(s->cfg->idempotency_window_ms,
                               (uint64_t)s->cfg->idempotency_max_keys,
                               &s->idem);

    if (rv != 0)
        return brk_errf(errmsg, rv, "idempotency keys: out of memory");
    if (s->cfg->cluster.enabled)
        return 0;
    snprintf(path, sizeof(path), "%s/idempotency.jsonl", s->cfg->data_dir);
    rv = idem_journal_open(s->idem, path,
                           &(struct idem_journal_hooks){
                               idem_durable, idem_resolve, s},
                           errmsg);
    if (rv != 0) {
        idem_table_destroy(s->idem);
        s->idem = NULL;
    }
    return rv;
}

int state_open(struct state *s, const struct config *cfg, char *errmsg)
{
    struct partition_options popt = {
        .segment_size = (uint64_t)cfg->segment_size,
        .index_interval = PARTITION_DEFAULT_INDEX_INTERVAL,
        .digest_chunk = (uint32_t)cfg->digest_chunk,
    };
    int rv;

    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    rv = topic_registry_open(cfg->data_dir, &popt, &s->topics, errmsg);
    if (rv != 0)
        return rv;
    rv = group_store_open(cfg->data_dir, &s->groups, errmsg);
    if (rv == 0)
        rv = idem_open(s, errmsg);
    if (rv != 0) {
        group_store_close(s->groups);
        topic_registry_close(s->topics);
        s->topics = NULL;
        s->groups = NULL;
    }
    return rv;
}

void state_close(struct state *s)
{
    idem_table_destroy(s->idem);
    group_store_close(s->groups);
    topic_registry_close(s->topics);
    memset(s, 0, sizeof(*s));
}

uint64_t state_last_index(struct state *s)
{
    struct topic **list;
    size_t n, i;
    uint32_t p;
    uint64_t max = 0;
    struct partition_stats st;

    if (topic_registry_list(s->topics, &list, &n) != 0)
        return 0;
    for (i = 0; i < n; i++) {
        if (list[i]->created_index > max)
            max = list[i]->created_index;
        for (p = 0; p < list[i]->n_partitions; p++) {
            partition_stats(list[i]->partitions[p], &st);
            if (st.last_cmd_index > max)
                max = st.last_cmd_index;
        }
    }
    topic_list_free(list, n);
    if (group_store_applied_index(s->groups) > max)
        max = group_store_applied_index(s->groups);
    return max;
}

/* ==== commands ==== */

static void apply_create(struct state *s, const struct cmd *c, uint64_t index,
                         struct cmd_result *res)
{
    struct topic *t = topic_registry_get(s->topics, c->topic);
    bool replayed = t != NULL && t->created_index >= index;

    topic_put(t);
    if (replayed)
        return; /* this very create, applied before a restart */
    if (c->partitions < 1 ||
        c->partitions > (uint64_t)s->cfg->max_topic_partitions) {
        res->err = brk_errf(res->errmsg, BRK_EINVAL,
                            "field 'partitions' must be 1..%lld",
                            (long long)s->cfg->max_topic_partitions);
        return;
    }
    res->err = topic_registry_create(s->topics, c->topic, c->partitions,
                                     c->retention_ms, index, NULL,
                                     res->errmsg);
}

/* A delete that finds no topic to remove may be a replay whose topic
 * is already gone (or created again) while the saved groups, older than
 * the delete, still hold offsets of the old topic: forget them. Live, no
 * offsets exist for a missing topic, so this changes nothing. Offsets of
 * a newer topic came from group commands past the delete and make the
 * saved applied index newer than it. */
static void forget_replayed(struct state *s, const struct cmd *c,
                            uint64_t index, struct state_effects *fx)
{
    if (index <= group_store_applied_index(s->groups))
        return;
    group_forget_topic(s->groups, c->topic);
    fx->groups_changed = true;
}

static void apply_delete(struct state *s, const struct cmd *c, uint64_t index,
                         struct cmd_result *res, struct state_effects *fx)
{
    struct topic *t = topic_registry_get(s->topics, c->topic);

    if (t == NULL) {
        forget_replayed(s, c, index, fx);
        res->err = brk_errf(res->errmsg, BRK_EUNKNOWN_TOPIC,
                            "unknown topic '%s'", c->topic);
        return;
    }
    if (t->created_index > index) {
        /* Replay after a restart: a later create made this topic. */
        forget_replayed(s, c, index, fx);
        topic_put(t);
        return;
    }
    res->err = topic_registry_delete(s->topics, c->topic, res->errmsg);
    if (res->err == 0) {
        fx_deleted(fx, t);
        group_forget_topic(s->groups, c->topic);
        fx->groups_changed = true;
    }
    topic_put(t);
}

/* The topic a produce goes to, auto-created when the command allows. */
static struct topic *produce_topic(struct state *s, const struct cmd *c,
                                   uint64_t index, struct cmd_result *res)
{
    struct topic *t = topic_registry_get(s->topics, c->topic);

    if (t != NULL)
        return t;
    if (c->partitions == 0) {
        res->err = brk_errf(res->errmsg, BRK_EUNKNOWN_TOPIC,
                            "unknown topic '%s'", c->topic);
        return NULL;
    }
    res->err = topic_registry_create(s->topics, c->topic, c->partitions, -1,
                                     index, NULL, res->errmsg);
    if (res->err != 0)
        return NULL;
    log_info("auto-created topic %s with %u partitions", c->topic,
             c->partitions);
    return topic_registry_get(s->topics, c->topic);
}

/* All-or-nothing checks before anything is written. */
static int produce_check(struct state *s, const struct cmd *c,
                         const struct topic *t, struct cmd_result *res)
{
    uint64_t bytes = 0;
    size_t i;

    for (i = 0; i < c->n_records; i++) {
        const struct cmd_record *r = &c->records[i];
        if (r->partition >= t->n_partitions)
            return brk_errf(res->errmsg, BRK_EUNKNOWN_PARTITION,
                            "topic '%s' has no partition %u", t->name,
                            r->partition);
        bytes += (uint64_t)RECORD_HEADER_SIZE + 8 + r->key_len +
                 r->value_len + r->headers_len;
    }
    /* A node's own disk usage is not replicated state: in a cluster the
     * leader checks the limit before proposing (state_storage_full), and
     * apply must not decide differently on different nodes. */
    if (!s->cfg->cluster.enabled && state_storage_full(s, bytes))
        return brk_errf(res->errmsg, BRK_ESTORAGE_FULL,
                        "storage is full (max_storage_size %lld bytes)",
                        (long long)s->cfg->max_storage_size);
    return 0;
}

/* Room kept for what a produce writes besides its records (index entries,
 * a new segment's files, groups.json). */
#define STATE_DISK_RESERVE (64u << 10)

bool state_disk_full(struct state *s, uint64_t bytes, uint64_t *free_bytes)
{
    struct statvfs v;
    uint64_t avail;

    if (statvfs(s->cfg->data_dir, &v) != 0)
        return false; /* the write itself will tell */
    /* root may use the blocks reserved for it. */
    avail = (uint64_t)(geteuid() == 0 ? v.f_bfree : v.f_bavail) * v.f_frsize;
    *free_bytes = avail;
    return avail < bytes + STATE_DISK_RESERVE;
}

bool state_storage_full(struct state *s, uint64_t bytes)
{
    return s->cfg->max_storage_size >= 0 &&
           topic_registry_size_bytes(s->topics) + bytes >
               (uint64_t)s->cfg->max_storage_size;
}

/* How many of @c's @n records for partition @p it already holds: a
 * replay after a restart finds all of them (skip), none, or, when the
 * segment lost its tail inside the command, the first few. */
static int produce_done(struct partition *part, uint64_t index, size_t n,
                        size_t *done, char *errmsg)
{
    struct partition_stats st;

    partition_stats(part, &st);
    *done = 0;
    if (st.last_cmd_index > index) {
        *done = n; /* a later command wrote after it: all there */
        return 0;
    }
    if (st.last_cmd_index < index)
        return 0;
    return partition_tail_count(part, index, n, done, errmsg);
}

static uint64_t claim_end(struct partition *p, uint64_t lo, uint64_t hi,
                          uint64_t index, const struct partition_stats *st);

/* A keyed produce replayed after a restart (its records are on disk
 * already): find the offsets it was answered with, so that its key
 * remembers them. Records are in command order: the first one of @index
 * is the first past every earlier command. */
static void produce_replayed(struct partition *pt, uint32_t p,
                             const struct cmd *c, uint64_t index,
                             const struct partition_stats *st,
                             struct cmd_result *res)
{
    uint64_t first;
    size_t i, n = 0;

    if (c->idem_key[0] == '\0' || index == 0)
        return;
    first = claim_end(pt, st->log_start_offset, st->high_watermark,
                      index - 1, st);
    for (i = 0; i < c->n_records; i++)
        if (c->records[i].partition == p)
            res->produced[i] =
                (struct cmd_produced){.partition = p, .offset = first + n++};
}


/* Append the records of @c that go to partition @p, in request order,
 * except those a replay finds already stored. */
static int produce_partition(struct topic *t, uint32_t p, const struct cmd *c,
                             uint64_t index, int64_t ts,
                             struct cmd_result *res, struct record *recs)
{
    size_t i, n = 0, done;
    uint64_t first;
    struct partition_stats st;
    int rv;

    for (i = 0; i < c->n_records; i++) {
        const struct cmd_record *r = &c->records[i];
        if (r->partition != p)
            continue;
        recs[n] = (struct record){
            .timestamp = ts, .cmd_index = index, .flags = r->flags,
            .key = r->key, .key_len = r->key_len, .value = r->value,
            .value_len = r->value_len, .headers = r->headers,
            .headers_len = r->headers_len};
        n++;
    }
    rv = produce_done(t->partitions[p], index, n, &done, res->errmsg);
    if (rv != 0)
        return rv;
    partition_stats(t->partitions[p], &st);
    if (done == n && st.last_cmd_index > index) {
        /* Replayed behind newer records: only a key needs the offsets. */
        produce_replayed(t->partitions[p], p, c, index, &st, res);
        return 0;
    }
    if (done < n) {
        rv = partition_append(t->partitions[p], recs + done, n - done, &first,
                              res->errmsg);
        if (rv != 0)
            return rv;
    }
    first = st.next_offset - done;
    for (i = 0, n = 0; i < c->n_records; i++)
        if (c->records[i].partition == p)
            res->produced[i] =
                (struct cmd_produced){.partition = p, .offset = first + n++};
    return 0;
}

static bool produce_targets(const struct cmd *c, uint32_t p)
{
    size_t i;

    for (i = 0; i < c->n_records; i++)
        if (c->records[i].partition == p)
            return true;
    return false;
}

static void apply_produce(struct state *s, const struct cmd *c, uint64_t index,
                          int64_t ts, struct cmd_result *res,
                          struct state_effects *fx)
{
    struct topic *t = produce_topic(s, c, index, res);
    struct record *recs = NULL;
    uint32_t p;

    if (t == NULL)
        return;
    if (t->created_index > index) {
        /* Replay after a restart: this produce wrote to an older topic of
         * the same name, deleted and created again since. */
        topic_put(t);
        return;
    }
    res->timestamp = ts;
    res->err = produce_check(s, c, t, res);
    if (res->err == 0) {
        recs = calloc(c->n_records ? c->n_records : 1, sizeof(*recs));
        res->produced = calloc(c->n_records ? c->n_records : 1,
                               sizeof(*res->produced));
        res->n_produced = c->n_records;
        if (recs == NULL || res->produced == NULL)
            res->err = brk_errf(res->errmsg, BRK_ENOMEM, "produce");
    }
    for (p = 0; res->err == 0 && p < t->n_partitions; p++) {
        /* A partition without records of @c must not be touched: touching
         * wakes its long polls, which would then answer empty early. */
        if (!produce_targets(c, p))
            continue;
        res->err = produce_partition(t, p, c, index, ts, res, recs);
        fx_touch(fx, t, p); /* even on error: partial bytes need a sync */
    }
    free(recs);
    topic_put(t);
}

static uint64_t claim_end(struct partition *p, uint64_t lo, uint64_t hi,
                          uint64_t index, const struct partition_stats *st);

/* The end of @p as command @index saw it: the high watermark less the
 * records of later commands, which are on disk already when @index is
 * replayed after a restart. The same on every replica, whatever batches
 * its applies came in. */
static uint64_t end_as_of(struct partition *p, uint64_t index,
                          struct partition_stats *st)
{
    partition_stats(p, st);
    return claim_end(p, st->log_start_offset, st->high_watermark, index, st);
}

/* Where a reset of @p to @how (cmd.h CMD_RESET_*, else a timestamp) puts
 * a group. Earliest is the log start at apply: a replay after retention
 * moved it lands later, which reads the same records. */
static int reset_target(struct partition *p, uint64_t how, uint64_t end,
                        const struct partition_stats *st, uint64_t *off,
                        char *errmsg)
{
    int rv;

    if (how == CMD_RESET_EARLIEST) {
        *off = st->log_start_offset;
    } else if (how == CMD_RESET_LATEST) {
        *off = end;
    } else {
        rv = partition_find_time(p, (int64_t)how, off, errmsg);
        if (rv != 0)
            return rv;
    }
    if (*off > end)
        *off = end;
    return 0;
}

/* One offset to set, once every entry of the commit is resolved. */
struct commit_set {
    const char *topic;
    uint32_t partition;
    uint64_t offset;
};

/* Resolve entry @o into @out (one per partition for a reset; *@n grows).
 * A plain offset above the partition's end is BRK_EOFFSET_RANGE with the
 * bounds in @res: a group pointed past the end looks healthy but is
 * stuck (API.md v2). */
static int commit_resolve(struct topic *t, const struct cmd_offset *o,
                          uint64_t index, struct commit_set *out, size_t *n,
                          struct cmd_result *res)
{
    struct partition_stats st;
    uint64_t end, off;
    uint32_t p;
    int rv;

    for (p = 0; p < t->n_partitions; p++) {
        if (o->partition != CMD_PARTITION_ALL && o->partition != p)
            continue;
        end = end_as_of(t->partitions[p], index, &st);
        if (o->partition != CMD_PARTITION_ALL && o->offset > end) {
            res->range_start = st.log_start_offset;
            res->range_end = end;
            return brk_errf(res->errmsg, BRK_EOFFSET_RANGE, "offset %llu is "
                            "past the end of %s/%u (high watermark %llu)",
                            (unsigned long long)o->offset, t->name, p,
                            (unsigned long long)end);
        }
        off = o->offset;
        if (o->partition == CMD_PARTITION_ALL) {
            rv = reset_target(t->partitions[p], o->offset, end, &st, &off,
                              res->errmsg);
            if (rv != 0)
                return rv;
        }
        out[(*n)++] = (struct commit_set){o->topic, p, off};
    }
    return 0;
}

/* Commit offsets (or resets), all or nothing: every entry is resolved and
 * checked before any is set. */
static void apply_commit(struct state *s, const struct cmd *c, uint64_t index,
                         struct cmd_result *res, struct state_effects *fx)
{
    struct commit_set *sets = NULL;
    size_t i, n = 0, cap = 0;
    struct topic *t;

    for (i = 0; i < c->n_offsets && res->err == 0; i++) {
        const struct cmd_offset *o = &c->offsets[i];
        t = topic_registry_get(s->topics, o->topic);
        if (t == NULL || (o->partition != CMD_PARTITION_ALL &&
                          o->partition >= t->n_partitions)) {
            res->err = brk_errf(res->errmsg,
                                t ? BRK_EUNKNOWN_PARTITION : BRK_EUNKNOWN_TOPIC,
                                "unknown topic/partition %s/%u", o->topic,
                                o->partition);
        } else if (n + t->n_partitions > cap) {
            struct commit_set *v;
            cap = (n + t->n_partitions) * 2;
            v = realloc(sets, cap * sizeof(*sets));
            if (v == NULL)
                res->err = brk_errf(res->errmsg, BRK_ENOMEM, "commit");
            else
                sets = v;
        }
        if (res->err == 0)
            res->err = commit_resolve(t, o, index, sets, &n, res);
        topic_put(t);
    }
    for (i = 0; i < n && res->err == 0; i++)
        res->err = group_commit(s->groups, c->group, sets[i].topic,
                                sets[i].partition, sets[i].offset);
    free(sets);
    fx->groups_changed = true;
}

static void apply_delete_group(struct state *s, const struct cmd *c,
                               struct cmd_result *res,
                               struct state_effects *fx)
{
    res->err = group_delete(s->groups, c->group);
    if (res->err != 0)
        brk_errf(res->errmsg, res->err, "unknown group '%s'", c->group);
    fx->groups_changed = true;
}

static int claim_add(struct cmd_result *res, uint32_t p, uint64_t from,
                     uint64_t to)
{
    void *a = realloc(res->claimed, (res->n_claimed + 1) * sizeof(*res->claimed));

    if (a == NULL)
        return BRK_ENOMEM;
    res->claimed = a;
    res->claimed[res->n_claimed++] = (struct cmd_claimed){p, from, to};
    return 0;
}

/* cmd_index of the record at @offset, or UINT64_MAX when unreadable. */
static uint64_t record_cmd_at(struct partition *p, uint64_t offset)
{
    struct partition_read_result r = {0};
    char errmsg[BRK_ERRMSG_LEN];
    uint64_t idx = UINT64_MAX;

    if (partition_read(p, offset, 1, 0, &r, errmsg) == 0 && r.n == 1)
        idx = r.recs[0].cmd_index;
    partition_read_result_free(&r);
    return idx;
}

/* The end of what a claim numbered @index could see: records written by
 * later commands are on disk when a claim is replayed after a restart,
 * and must not be handed out again by the replay. Records are in command
 * order, so the first later one is found by bisection in [@lo, @hi). */
static uint64_t claim_end(struct partition *p, uint64_t lo, uint64_t hi,
                          uint64_t index, const struct partition_stats *st)
{
    if (st->last_cmd_index <= index)
        return hi; /* the usual case: nothing newer exists */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (record_cmd_at(p, mid) > index)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Hand out up to @c->limit visible messages of the topic, advancing the
 * group's offsets. Partitions are visited from a rotating start so that
 * no partition starves. */
static void apply_claim(struct state *s, const struct cmd *c, uint64_t index,
                        struct cmd_result *res, struct state_effects *fx)
{
    struct topic *t = topic_registry_get(s->topics, c->topic);
    uint64_t left = c->limit, off, take, end;
    uint32_t i, p;
    struct partition_stats st;

    if (t == NULL) {
        res->err = brk_errf(res->errmsg, BRK_EUNKNOWN_TOPIC,
                            "unknown topic '%s'", c->topic);
        return;
    }
    for (i = 0; i < t->n_partitions && left > 0 && res->err == 0; i++) {
        p = (uint32_t)((index + i) % t->n_partitions);
        partition_stats(t->partitions[p], &st);
        if (group_offset(s->groups, c->group, t->name, p, &off) != 0 ||
            off < st.log_start_offset)
            off = st.log_start_offset;
        end = off < st.high_watermark
                  ? claim_end(t->partitions[p], off, st.high_watermark, index, &st)
                  : off;
        if (off >= end)
            continue;
        take = end - off < left ? end - off : left;
        res->err = claim_add(res, p, off, off + take);
        if (res->err == 0)
            res->err = group_commit(s->groups, c->group, t->name, p,
                                    off + take);
        left -= take;
        fx->groups_changed = true;
    }
    topic_put(t);
}

static void apply_truncate(struct state *s, const struct cmd *c,
                           uint64_t index, struct cmd_result *res)
{
    struct topic *t = topic_registry_get(s->topics, c->topic);

    if (t != NULL && t->created_index > index) {
        /* Replay: the offsets were those of an older topic of the same
         * name; cutting the newer one would lose its records. */
        topic_put(t);
        return;
    }
    if (t == NULL || c->partition >= t->n_partitions) {
        res->err = BRK_EUNKNOWN_TOPIC;
    } else {
        res->err = partition_truncate_before(t->partitions[c->partition],
                                             c->before, res->errmsg);
    }
    topic_put(t);
}

bool state_cmd_changes_groups(enum cmd_type t)
{
    return t == CMD_COMMIT_OFFSETS || t == CMD_DELETE_GROUP || t == CMD_CLAIM;
}

static void apply_cmd(struct state *s, const struct cmd *c, uint64_t index,
                      int64_t now_ms, struct cmd_result *res,
                      struct state_effects *fx)
{
    if (state_cmd_changes_groups(c->type)) {
        /* Group changes are not idempotent (a claim advances offsets), so
         * a replayed one that the saved groups already hold is skipped. */
        if (index <= group_store_applied_index(s->groups))
            return;
        group_store_set_applied_index(s->groups, index);
    }
    switch (c->type) {
    case CMD_CREATE_TOPIC: apply_create(s, c, index, res); break;
    case CMD_DELETE_TOPIC: apply_delete(s, c, index, res, fx); break;
    case CMD_PRODUCE: apply_produce(s, c, index, now_ms, res, fx); break;
    case CMD_COMMIT_OFFSETS: apply_commit(s, c, index, res, fx); break;
    case CMD_DELETE_GROUP: apply_delete_group(s, c, res, fx); break;
    case CMD_CLAIM: apply_claim(s, c, index, res, fx); break;
    case CMD_TRUNCATE: apply_truncate(s, c, index, res); break;
    case CMD_SET_MEMBER: break; /* handled by the cluster node */
    default:
        res->err = brk_errf(res->errmsg, BRK_EINTERNAL, "unknown command %d",
                            (int)c->type);
    }
    if (res->err != 0 && res->errmsg[0] == '\0')
        snprintf(res->errmsg, sizeof(res->errmsg), "%s", brk_err_str(res->err));
}

/* The record at @offset: its command number and timestamp. */
static bool record_meta_at(struct partition *p, uint64_t offset,
                           uint64_t *index, int64_t *ts)
{
    struct partition_read_result r = {0};
    char errmsg[BRK_ERRMSG_LEN];
    bool ok = partition_read(p, offset, 1, 0, &r, errmsg) == 0 && r.n == 1;

    if (ok) {
        *index = r.recs[0].cmd_index;
        *ts = r.recs[0].timestamp;
    }
    partition_read_result_free(&r);
    return ok;
}

/* Offsets of @in's records in partition @p, into @res: its records are
 * the first of command number @in->index and on, one per record sent to
 * @p. False unless all of them are there. */
static bool resolve_partition(struct topic *t, uint32_t p,
                              const struct idem_intent *in,
                              struct cmd_result *res)
{
    struct partition *pt = t->partitions[p];
    struct partition_stats st;
    uint64_t first, idx, n = 0;
    int64_t ts;
    size_t i;

    partition_stats(pt, &st);
    first = claim_end(pt, st.log_start_offset, st.high_watermark,
                      in->index - 1, &st);
    for (i = 0; i < in->n; i++)
        if (in->parts[i] == p)
            res->produced[i] =
                (struct cmd_produced){.partition = p, .offset = first + n++};
    if (!record_meta_at(pt, first, &idx, &ts) || idx != in->index)
        return false;
    res->timestamp = ts;
    return record_meta_at(pt, first + n - 1, &idx, &ts) && idx == in->index;
}

/* Start-up: the answer of a keyed produce whose own journal line a crash
 * lost, rebuilt from its records (see idem_journal_intent). A produce
 * whose records are only partly there (a crash between two partitions'
 * writes) is forgotten: a retry writes it again. */
static bool idem_resolve(void *ctx, const struct idem_intent *in,
                         struct cmd_result *res)
{
    struct state *s = ctx;
    struct topic *t = topic_registry_get(s->topics, in->topic);
    bool ok = t != NULL && in->index > 0;
    size_t i;

    if (ok && (res->produced = calloc(in->n, sizeof(*res->produced))) == NULL)
        ok = false;
    res->n_produced = ok ? in->n : 0;
    for (i = 0; ok && i < in->n; i++) {
        size_t j = 0;
        while (j < i && in->parts[j] != in->parts[i])
            j++;
        if (in->parts[i] >= t->n_partitions)
            ok = false;
        else if (j == i) /* the first record of its partition */
            ok = resolve_partition(t, in->parts[i], in, res);
    }
    topic_put(t);
    if (ok)
        log_info("idempotency key '%s': answer rebuilt from its records",
                 in->key);
    return ok;
}

/* Standalone: note a keyed produce in the journal before its records are
 * written, so that a crash between the two leaves its key findable. */
static void idem_intent(struct state *s, const struct cmd *c, uint64_t index,
                        int64_t now_ms)
{
    char errmsg[BRK_ERRMSG_LEN];
    uint32_t *parts;
    size_t i;

    if (c->type != CMD_PRODUCE || !idem_journal_active(s->idem))
        return;
    parts = calloc(c->n_records ? c->n_records : 1, sizeof(*parts));
    if (parts == NULL)
        return; /* the key's own line still follows the apply */
    for (i = 0; i < c->n_records; i++)
        parts[i] = c->records[i].partition;
    if (idem_journal_intent(s->idem,
                            &(struct idem_intent){c->idem_key, c->idem_fp,
                                                  index, now_ms, c->topic,
                                                  parts, c->n_records},
                            errmsg) != 0)
        log_error("%s", errmsg);
    free(parts);
}

/* Whether the answer to @c is final and so remembered under its key: a
 * claim that found nothing changed nothing (it waits and is applied again
 * as a new command), and this node's own disk or memory trouble is not
 * the command's answer. */
static bool idem_final(const struct cmd *c, const struct cmd_result *res)
{
    if (c->type == CMD_CLAIM && res->err == 0 && res->n_claimed == 0)
        return false;
    return res->err != BRK_ENOMEM && res->err != BRK_EIO &&
           res->err != BRK_ECORRUPT && res->err != BRK_ESHORT &&
           res->err != BRK_EINTERNAL && res->err != BRK_ESTORAGE_FULL;
}

/* The key is checked here, at apply, in log order: a repeat that raced
 * its original through two nodes finds it applied. */
static bool idem_before(struct state *s, const struct cmd *c,
                        struct cmd_result *res)
{
    switch (idem_check(s->idem, c->idem_key, c->idem_fp, res)) {
    case IDEM_NEW:
        return true;
    case IDEM_REPLAY:
        return false;
    case IDEM_REUSED:
        res->err = brk_errf(res->errmsg, BRK_EIDEM_REUSED, "Idempotency-Key "
                            "'%s' was used for another request (method, "
                            "path, query or body differ)", c->idem_key);
        return false;
    default:
        res->err = brk_errf(res->errmsg, BRK_EIDEM_FULL, "%lld idempotency "
                            "keys are held (idempotency_max_keys): retry "
                            "later, when older keys expire",
                            (long long)s->cfg->idempotency_max_keys);
        return false;
    }
}

void state_apply(struct state *s, const struct cmd *c, uint64_t index,
                 int64_t now_ms, struct cmd_result *res,
                 struct state_effects *fx)
{
    bool keyed = c->idem_key[0] != '\0' && s->idem != NULL;

    if (s->idem != NULL)
        idem_expire(s->idem, now_ms);
    if (keyed && !idem_before(s, c, res))
        return;
    if (keyed)
        idem_intent(s, c, index, now_ms);
    apply_cmd(s, c, index, now_ms, res, fx);
    if (keyed && idem_final(c, res) &&
        idem_record(s->idem, c->idem_key, c->idem_fp, index, now_ms, res) != 0)
        log_error("cannot remember Idempotency-Key '%s': out of memory",
                  c->idem_key);
}
