/* Replica thread, on the leader: compare every partition's digest with
 * every member's, narrow a difference down to its first offset, report it
 * and order the member to repair (docs/clustering.md, "Replica
 * comparison"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/forward.h"
#include "broker/log.h"
#include "broker/metrics.h"
#include "replica_internal.h"

/* Chunks asked for per digest request. */
#define CHECK_WINDOW 16384

static void note_divergence(struct replica_divergence *found, size_t *n,
                            uint64_t node_id, const char *topic, uint32_t p,
                            uint64_t offset)
{
    if (*n == REPLICA_MAX_DIVERGENCE)
        return;
    found[*n].node_id = node_id;
    snprintf(found[*n].topic, sizeof(found[*n].topic), "%s", topic);
    found[*n].partition = p;
    found[*n].offset = offset;
    (*n)++;
}

/* The exact first differing offset inside the chunk [@s, @e). */
static uint64_t narrow_down(const struct node_member *m, struct topic *t,
                            uint32_t p, uint64_t s, uint64_t e)
{
    struct digest_range mine, theirs;
    char errmsg[BRK_ERRMSG_LEN];
    uint64_t at = s, end;
    uint32_t chunk;

    if (replica_remote_range(m->http_address, t, p, s, e, 1, &chunk, &theirs,
                     errmsg) != 0)
        return s;
    if (digest_range(t->partitions[p], s, e, 1, &mine, errmsg) == 0) {
        at = replica_first_difference(&mine, &theirs, &end);
        if (at == UINT64_MAX)
            at = s;
        digest_range_free(&mine);
    }
    digest_range_free(&theirs);
    return at;
}

static void order_repair(const struct node_member *m, const char *topic,
                         uint32_t p, uint64_t offset)
{
    char path[512], body[64], errmsg[BRK_ERRMSG_LEN];
    struct forward_request req = {.method = "POST", .base = m->http_address,
                                  .path = path,
                                  .content_type = "application/json",
                                  .body = body, .timeout_ms = REPLICA_CALL_TIMEOUT_MS};
    struct forward_response resp;

    snprintf(path, sizeof(path), "/internal/repair/%s/%u", topic, p);
    req.len = (size_t)snprintf(body, sizeof(body), "{\"offset\":%llu}",
                               (unsigned long long)offset);
    if (forward_call(&req, &resp, errmsg) != 0) {
        log_warn("digest: cannot ask node %llu to repair %s/%u: %s",
                 (unsigned long long)m->id, topic, p, errmsg);
        return;
    }
    if (resp.status != 202)
        log_warn("digest: node %llu refused to repair %s/%u: %d %.200s",
                 (unsigned long long)m->id, topic, p, resp.status,
                 resp.body ? resp.body : "");
    forward_response_free(&resp);
}

/* One member's digest of a partition compared with the leader's. */
struct compared {
    const struct node_member *m;
    struct digest_range theirs;
    uint64_t diff, diff_end;    /* first differing chunk, UINT64_MAX none */
};

/* Compare the window [@from, @to) of @t/@p with @c's member: 0 with
 * c->theirs and c->diff set, 1 when the member has nothing comparable,
 * else an error. */
static int compare_window(struct compared *c, struct topic *t, uint32_t p,
                          uint64_t from, uint64_t to, char *errmsg)
{
    struct partition *part = t->partitions[p];
    struct digest_range mine;
    uint32_t chunk = 0, own = digest_chunk_size(partition_digest(part));
    int rv = replica_remote_range(c->m->http_address, t, p, from, to, own,
                                  &chunk, &c->theirs, errmsg);

    if (rv != 0)
        return rv;
    if (chunk != own) {
        log_warn("digest: node %llu uses digest_chunk %u, this node %u: "
                 "%s/%u not compared", (unsigned long long)c->m->id, chunk,
                 own, t->name, p);
        digest_range_free(&c->theirs);
        return 1;
    }
    rv = digest_range(part, c->theirs.from, c->theirs.to, own, &mine, errmsg);
    if (rv != 0) {
        digest_range_free(&c->theirs);
        return brk_errwrap(errmsg, rv, "this node's digest");
    }
    c->diff = replica_first_difference(&mine, &c->theirs, &c->diff_end);
    digest_range_free(&mine);
    return 0;
}

/* Fetch @c->m's digest of @t/@p, CHECK_WINDOW chunks at a time so that
 * an answer stays small, and compare it with ours up to the first
 * difference. False when the member could not be compared (unreachable,
 * no such partition yet, another chunk size). */
static bool compare_member(struct compared *c, struct topic *t, uint32_t p)
{
    struct partition *part = t->partitions[p];
    struct partition_stats st;
    char errmsg[BRK_ERRMSG_LEN];
    uint64_t n = digest_chunk_size(partition_digest(part));
    uint64_t from, to, end;
    int rv;

    partition_stats(part, &st);
    for (from = st.log_start_offset;;) {
        to = (from / n + CHECK_WINDOW) * n;
        to = to < st.high_watermark ? to : st.high_watermark;
        rv = compare_window(c, t, p, from, to, errmsg);
        if (rv != 0) {
            if (rv != 1)
                log_debug("digest of %s/%u with node %llu: %s", t->name, p,
                          (unsigned long long)c->m->id, errmsg);
            return false;
        }
        end = c->theirs.to;
        if (c->diff != UINT64_MAX || end < to || end >= st.high_watermark ||
            end <= from || replica_stopping())
            break; /* found, or the member holds no more (building, hw) */
        digest_range_free(&c->theirs);
        from = end;
    }
    metrics_add(MET_DIGEST_CHECKS, 1);
    return true;
}

/* The checksum @c's member has for the chunk starting at @s, or false. */
static bool chunk_of(const struct compared *c, uint64_t s, uint32_t *crc)
{
    size_t i;

    if (s < c->theirs.from || s >= c->theirs.to)
        return false;
    i = (size_t)((s - c->theirs.from) / c->theirs.step);
    if (i >= c->theirs.n)
        return false;
    *crc = c->theirs.crcs[i];
    return true;
}

/* Whether the leader itself is the odd one: a majority of the compared
 * members (two at least) differ from it and agree among themselves on the
 * first chunk where it differs. Repairing them from this leader would
 * spread its damage. */
static bool leader_in_minority(const struct compared *v, size_t n)
{
    size_t i, differ = 0;
    uint64_t s = UINT64_MAX;
    uint32_t crc0 = 0, crc;
    bool have = false;

    for (i = 0; i < n; i++)
        if (v[i].diff != UINT64_MAX) {
            differ++;
            s = v[i].diff < s ? v[i].diff : s;
        }
    if (differ < 2 || differ * 2 <= n)
        return false;
    for (i = 0; i < n; i++) {
        if (v[i].diff == UINT64_MAX)
            continue;
        if (!chunk_of(&v[i], s, &crc))
            return false;
        if (have && crc != crc0)
            return false;
        crc0 = crc;
        have = true;
    }
    return true;
}

static void transfer_done(struct work *w)
{
    if (w->res.err != 0)
        log_warn("digest: leadership transfer failed: %s", w->res.errmsg);
    cmd_result_clear(&w->res);
    free(w);
}

/* Hand leadership to @to, whose copy agrees with the majority: the new
 * leader's check then repairs this node. */
static void step_aside(struct node *n, uint64_t to)
{
    struct work *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return;
    w->type = WORK_CALL;
    w->call = node_call_transfer;
    w->arg_id = to;
    w->done = transfer_done;
    if (node_submit(n, w) != 0)
        free(w);
}

static void report(const struct compared *c, struct topic *t, uint32_t p,
                   struct replica_divergence *found, size_t *n_found)
{
    uint64_t at = narrow_down(c->m, t, p, c->diff, c->diff_end);

    metrics_add(MET_REPLICA_DIVERGENCE, 1);
    note_divergence(found, n_found, c->m->id, t->name, p, at);
    log_error("replica divergence: node %llu differs from the leader in "
              "%s/%u from offset %llu (chunk %llu..%llu); asking it to "
              "repair from the leader", (unsigned long long)c->m->id, t->name,
              p, (unsigned long long)at, (unsigned long long)c->diff,
              (unsigned long long)c->diff_end);
    order_repair(c->m, t->name, p, at);
}

/* Compare @t/@p with every member in @ms; differences are noted, logged
 * and repaired (or, when this leader is the odd one, leadership moves). */
static void check_partition(struct node *n, const struct node_member *ms,
                            int n_ms,
                            uint64_t self, struct topic *t, uint32_t p,
                            struct replica_divergence *found,
                            size_t *n_found)
{
    struct compared v[NODE_MAX_MEMBERS];
    size_t k = 0, i;
    int m;

    for (m = 0; m < n_ms && !replica_stopping(); m++) {
        if (ms[m].id == self || ms[m].role == NODE_ROLE_SPARE ||
            ms[m].http_address[0] == '\0')
            continue;
        v[k].m = &ms[m];
        if (compare_member(&v[k], t, p))
            k++;
    }
    if (leader_in_minority(v, k)) {
        for (i = 0; v[i].diff == UINT64_MAX; i++)
            ;
        metrics_add(MET_REPLICA_DIVERGENCE, 1);
        note_divergence(found, n_found, self, t->name, p, v[i].diff);
        log_error("replica divergence: this leader (node %llu) differs in "
                  "%s/%u from chunk %llu on, where a majority of the %zu "
                  "members compared agree; not repairing them from it, handing "
                  "leadership to node %llu", (unsigned long long)self,
                  t->name, p, (unsigned long long)v[i].diff, k,
                  (unsigned long long)v[i].m->id);
        step_aside(n, v[i].m->id);
    } else {
        for (i = 0; i < k; i++)
            if (v[i].diff != UINT64_MAX)
                report(&v[i], t, p, found, n_found);
    }
    for (i = 0; i < k; i++)
        digest_range_free(&v[i].theirs);
}

void replica_check_all(struct node *n, struct state *sta)
{
    struct replica_divergence found[REPLICA_MAX_DIVERGENCE];
    struct node_status st;
    struct topic **list;
    size_t count, i, n_found = 0;
    uint32_t p;

    node_status(n, &st);
    if (st.state != NODE_STATE_LEADER || !st.cluster) {
        replica_set_divergence(NULL, 0); /* only a leader's are current */
        return;
    }
    if (topic_registry_list(sta->topics, &list, &count) != 0)
        return;
    for (i = 0; i < count && !replica_stopping(); i++)
        for (p = 0; p < list[i]->n_partitions; p++)
            check_partition(n, st.members, st.n_members, st.node_id,
                            list[i], p, found, &n_found);
    topic_list_free(list, count);
    replica_set_divergence(found, n_found);
}
