/* Replica comparison thread (see include/broker/replica.h).
 *
 * DESIGN
 * - Network calls run on this thread (libcurl, forward.c), never on the
 *   loop or HTTP threads. Digests are read under their own lock.
 * - Repair and Raft apply: apply appends at the partition's next offset,
 *   so the tail must never be missing while the loop thread applies. The
 *   repair therefore fetches the leader's records [X, H) into memory
 *   first, H being this node's next offset, and only then hands one
 *   WORK_CALL to the loop thread, which checks that the next offset is
 *   still H (nothing applied meanwhile) and cuts and re-appends in that
 *   one step: apply never sees a partial tail. When apply appended
 *   meanwhile, the records up to the new next offset are fetched too and
 *   the swap is tried again. The cmd_index of the fetched records keeps
 *   replay idempotent afterwards. A repair holds at most
 *   REPAIR_MAX_BYTES in memory; a larger one is refused (logged). */
#include "broker/replica.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/clock.h"
#include "broker/digest.h"
#include "broker/forward.h"
#include "broker/log.h"
#include "broker/metrics.h"
#include "node_internal.h"

#define TICK_MS 200
#define BUILD_RECORDS 4096      /* records per build step */
#define BUILD_STEPS_PER_TICK 64
#define CALL_TIMEOUT_MS 10000L
#define REPAIR_MAX_BYTES (64u << 20) /* also bounds the loop-thread step */
#define REPAIR_ROUNDS 20
#define REPAIR_QUEUE 32
#define REPAIR_WAIT_LEADER_MS 5000
/* swap.rc when apply moved the next offset (not an error code). */
#define SWAP_MOVED (-1)

struct repair_job {
    char topic[TOPIC_NAME_MAX + 1];
    uint32_t partition;
    uint64_t offset;
};

struct page {
    struct forward_response resp;
    struct record *recs;
    size_t n;
};

/* A tail swap handed to the loop thread. */
struct swap {
    struct work w;
    struct topic *t;
    uint32_t p;
    uint64_t from;              /* first offset replaced */
    uint64_t local_next;        /* this node's next offset and last  */
    uint64_t local_cmd;         /* cmd_index: must not move before the swap */
    uint64_t end;               /* one past the last record fetched */
    struct page *pages;         /* the leader's records [from, end) */
    size_t n_pages;
    int rc;                     /* 0, SWAP_MOVED, an error */
    uint64_t now_next, now_cmd; /* what the swap found */
    char errmsg[BRK_ERRMSG_LEN];
    bool done;
};

struct replica {
    struct node *node;
    const struct config *cfg;
    struct state *st;
    pthread_t thread;
    pthread_mutex_t lock;       /* guards everything below */
    pthread_cond_t cond;
    bool stop, started;
    struct repair_job jobs[REPAIR_QUEUE];
    size_t n_jobs;
    struct replica_divergence div[REPLICA_MAX_DIVERGENCE];
    size_t n_div;
};

static struct replica R = {.lock = PTHREAD_MUTEX_INITIALIZER,
                           .cond = PTHREAD_COND_INITIALIZER};

static bool stopping(void)
{
    bool s;

    pthread_mutex_lock(&R.lock);
    s = R.stop;
    pthread_mutex_unlock(&R.lock);
    return s || forward_aborting();
}

/* ==== background build ==== */

/* A damaged record stops a digest's build; it is retried every tick, so
 * say so at most once a minute. */
static void warn_build(const char *topic, uint32_t p, const char *errmsg)
{
    static uint64_t last_ms;
    uint64_t now = clock_mono_ns() / 1000000ull;

    if (last_ms != 0 && now - last_ms < 60000)
        return;
    last_ms = now;
    log_warn("digest of %s/%u cannot be built past a damaged record (%s); "
             "only the chunks before it are compared", topic, p, errmsg);
}

static void build_some(void)
{
    struct topic **list;
    size_t count, i;
    uint32_t p;
    int steps = 0, rc;
    char errmsg[BRK_ERRMSG_LEN];

    if (topic_registry_list(R.st->topics, &list, &count) != 0)
        return;
    for (i = 0; i < count && steps < BUILD_STEPS_PER_TICK; i++)
        for (p = 0; p < list[i]->n_partitions; p++)
            do {
                rc = digest_build_step(list[i]->partitions[p], BUILD_RECORDS,
                                       errmsg);
                if (rc > 1)
                    warn_build(list[i]->name, p, errmsg);
            } while (rc == 1 && ++steps < BUILD_STEPS_PER_TICK);
    topic_list_free(list, count);
}

/* ==== remote digests ==== */

static int http_get_json(const char *base, const char *path, json_t **out,
                         int *status, char *errmsg)
{
    struct forward_request req = {.method = "GET", .base = base,
                                  .path = path, .timeout_ms = CALL_TIMEOUT_MS};
    struct forward_response resp;
    int rv = forward_call(&req, &resp, errmsg);

    *out = NULL;
    if (rv != 0)
        return rv;
    *status = resp.status;
    if (resp.status == 200)
        *out = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
    forward_response_free(&resp);
    if (resp.status == 200 && *out == NULL)
        return brk_errf(errmsg, BRK_EFORWARD, "%s: undecodable digest", base);
    return 0;
}

/* Fetch @base's digest of @topic/@p over [@from, @to) in steps of @step
 * into @r. 1 when the member has no such partition (yet), or another
 * incarnation of the topic. */
static int remote_range(const char *base, struct topic *t, uint32_t p,
                        uint64_t from, uint64_t to, uint32_t step,
                        uint32_t *chunk, struct digest_range *r, char *errmsg)
{
    const char *topic = t->name;
    char path[512];
    json_t *o, *crcs;
    int status = 0, rv;
    size_t i;

    memset(r, 0, sizeof(*r));
    snprintf(path, sizeof(path), "/internal/digest/%s/%u?from=%llu&to=%llu"
             "&step=%u", topic, p, (unsigned long long)from,
             (unsigned long long)to, step);
    rv = http_get_json(base, path, &o, &status, errmsg);
    if (rv != 0)
        return rv;
    if (status == 404)
        return 1;
    if (status != 200)
        return brk_errf(errmsg, BRK_EFORWARD, "%s answered %d", base, status);
    if ((uint64_t)json_integer_value(json_object_get(o, "created_index")) !=
        t->created_index) {
        json_decref(o);
        return 1; /* another incarnation of the topic, not comparable */
    }
    crcs = json_object_get(o, "crcs");
    r->from = (uint64_t)json_integer_value(json_object_get(o, "from"));
    r->to = (uint64_t)json_integer_value(json_object_get(o, "to"));
    r->step = (uint32_t)json_integer_value(json_object_get(o, "step"));
    *chunk = (uint32_t)json_integer_value(json_object_get(o, "chunk"));
    r->n = json_array_size(crcs);
    r->crcs = calloc(r->n ? r->n : 1, sizeof(*r->crcs));
    for (i = 0; r->crcs != NULL && i < r->n; i++)
        r->crcs[i] = (uint32_t)json_integer_value(json_array_get(crcs, i));
    json_decref(o);
    if (r->crcs == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "digest: out of memory");
    return 0;
}

/* End of entry @i of @r. */
static uint64_t entry_end(const struct digest_range *r, size_t i)
{
    uint64_t e = r->from + (i + 1) * (uint64_t)r->step;

    return e < r->to ? e : r->to;
}

/* First entry start where @a and @b (same step, aligned starts) hold
 * entries of the same extent with different checksums; UINT64_MAX when
 * they agree wherever both can be compared. *@end gets that entry's end. */
static uint64_t first_difference(const struct digest_range *a,
                                 const struct digest_range *b, uint64_t *end)
{
    uint64_t s = a->from > b->from ? a->from : b->from;
    size_t i, j;

    for (; s < a->to && s < b->to; s += a->step) {
        i = (size_t)((s - a->from) / a->step);
        j = (size_t)((s - b->from) / b->step);
        if (i >= a->n || j >= b->n || entry_end(a, i) != entry_end(b, j))
            break;
        if (a->crcs[i] != b->crcs[j]) {
            *end = entry_end(a, i);
            return s;
        }
    }
    return UINT64_MAX;
}

/* ==== the leader's check ==== */

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

    if (remote_range(m->http_address, t, p, s, e, 1, &chunk, &theirs,
                     errmsg) != 0)
        return s;
    if (digest_range(t->partitions[p], s, e, 1, &mine, errmsg) == 0) {
        at = first_difference(&mine, &theirs, &end);
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
                                  .body = body, .timeout_ms = CALL_TIMEOUT_MS};
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

/* Fetch @c->m's digest of @t/@p and compare it with ours. False when the
 * member could not be compared (unreachable, no such partition yet,
 * another chunk size). */
static bool compare_member(struct compared *c, struct topic *t, uint32_t p)
{
    struct partition *part = t->partitions[p];
    struct partition_stats st;
    struct digest_range mine;
    char errmsg[BRK_ERRMSG_LEN];
    uint32_t chunk = 0, own = digest_chunk_size(partition_digest(part));
    int rv;

    partition_stats(part, &st);
    rv = remote_range(c->m->http_address, t, p, st.log_start_offset,
                      st.high_watermark, own, &chunk, &c->theirs, errmsg);
    if (rv != 0) {
        if (rv != 1)
            log_debug("digest: node %llu: %s", (unsigned long long)c->m->id,
                      errmsg);
        return false;
    }
    if (chunk != own) {
        log_warn("digest: node %llu uses digest_chunk %u, this node %u: "
                 "%s/%u not compared", (unsigned long long)c->m->id, chunk,
                 own, t->name, p);
        digest_range_free(&c->theirs);
        return false;
    }
    if (digest_range(part, c->theirs.from, c->theirs.to, own, &mine,
                     errmsg) != 0) {
        log_warn("digest of %s/%u on this node: %s", t->name, p, errmsg);
        digest_range_free(&c->theirs);
        return false;
    }
    metrics_add(MET_DIGEST_CHECKS, 1);
    c->diff = first_difference(&mine, &c->theirs, &c->diff_end);
    digest_range_free(&mine);
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
static void step_aside(uint64_t to)
{
    struct work *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return;
    w->type = WORK_CALL;
    w->call = node_call_transfer;
    w->arg_id = to;
    w->done = transfer_done;
    if (node_submit(R.node, w) != 0)
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
static void check_partition(const struct node_member *ms, int n_ms,
                            uint64_t self, struct topic *t, uint32_t p,
                            struct replica_divergence *found,
                            size_t *n_found)
{
    struct compared v[NODE_MAX_MEMBERS];
    size_t n = 0, i;
    int m;

    for (m = 0; m < n_ms && !stopping(); m++) {
        if (ms[m].id == self || ms[m].role == NODE_ROLE_SPARE ||
            ms[m].http_address[0] == '\0')
            continue;
        v[n].m = &ms[m];
        if (compare_member(&v[n], t, p))
            n++;
    }
    if (leader_in_minority(v, n)) {
        for (i = 0; v[i].diff == UINT64_MAX; i++)
            ;
        metrics_add(MET_REPLICA_DIVERGENCE, 1);
        note_divergence(found, n_found, self, t->name, p, v[i].diff);
        log_error("replica divergence: this leader (node %llu) differs in "
                  "%s/%u from chunk %llu on, where a majority of the %zu "
                  "members compared agree; not repairing them from it, handing "
                  "leadership to node %llu", (unsigned long long)self,
                  t->name, p, (unsigned long long)v[i].diff, n,
                  (unsigned long long)v[i].m->id);
        step_aside(v[i].m->id);
    } else {
        for (i = 0; i < n; i++)
            if (v[i].diff != UINT64_MAX)
                report(&v[i], t, p, found, n_found);
    }
    for (i = 0; i < n; i++)
        digest_range_free(&v[i].theirs);
}

static void check_all(void)
{
    struct replica_divergence found[REPLICA_MAX_DIVERGENCE];
    struct node_status st;
    struct topic **list;
    size_t count, i, n_found = 0;
    uint32_t p;

    node_status(R.node, &st);
    if (st.state != NODE_STATE_LEADER || !st.cluster) {
        pthread_mutex_lock(&R.lock);
        R.n_div = 0; /* only the leader's findings are current */
        pthread_mutex_unlock(&R.lock);
        return;
    }
    if (topic_registry_list(R.st->topics, &list, &count) != 0)
        return;
    for (i = 0; i < count && !stopping(); i++)
        for (p = 0; p < list[i]->n_partitions; p++)
            check_partition(st.members, st.n_members, st.node_id, list[i], p,
                            found, &n_found);
    topic_list_free(list, count);
    pthread_mutex_lock(&R.lock);
    memcpy(R.div, found, n_found * sizeof(*found));
    R.n_div = n_found;
    pthread_mutex_unlock(&R.lock);
}

/* ==== repair (on the divergent member) ==== */

static void pages_free(struct page *v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(v[i].recs);
        forward_response_free(&v[i].resp);
    }
    free(v);
}

/* Store @pg in @sw's pages. */
static int keep_page(struct swap *sw, struct page *pg, size_t *bytes,
                     char *errmsg)
{
    struct page *v = NULL;

    *bytes += pg->resp.len;
    if (*bytes <= REPAIR_MAX_BYTES)
        v = realloc(sw->pages, (sw->n_pages + 1) * sizeof(*v));
    if (v == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "repair needs more than %u "
                        "bytes", REPAIR_MAX_BYTES);
    sw->pages = v;
    sw->pages[sw->n_pages++] = *pg;
    sw->end += pg->n;
    return 0;
}

/* Drop fetched records at and after @off. */
static void trim_pages(struct swap *sw, uint64_t off)
{
    uint64_t at = sw->from;
    size_t i;

    for (i = 0; i < sw->n_pages; i++) {
        if (at >= off) {
            sw->pages[i].n = 0;
        } else if (at + sw->pages[i].n > off) {
            sw->pages[i].n = (size_t)(off - at);
        }
        at += sw->pages[i].n;
    }
    while (sw->n_pages > 0 && sw->pages[sw->n_pages - 1].n == 0) {
        sw->n_pages--;
        free(sw->pages[sw->n_pages].recs);
        forward_response_free(&sw->pages[sw->n_pages].resp);
    }
    sw->end = off < sw->end ? off : sw->end;
}

static uint64_t last_fetched_cmd(const struct swap *sw)
{
    const struct page *pg;

    if (sw->n_pages == 0)
        return 0;
    pg = &sw->pages[sw->n_pages - 1];
    return pg->recs[pg->n - 1].cmd_index;
}

/* The leader has nothing more at sw->end yet. Done when its records so far
 * end with the last command this node applied; else wait for it to apply
 * that far. After the wait, fall back to replacing exactly this node's
 * offsets (its last cmd_index may be the damaged field). 1: wait again. */
static int at_leader_end(struct swap *sw, uint64_t deadline, char *errmsg)
{
    struct timespec ts = {0, 100 * 1000000L};

    if (sw->end > sw->from && last_fetched_cmd(sw) == sw->local_cmd)
        return 0;
    if (clock_mono_ns() < deadline) {
        nanosleep(&ts, NULL);
        return 1;
    }
    if (sw->end < sw->local_next)
        return brk_errf(errmsg, BRK_ETIMEOUT, "the leader has no records "
                        "at %llu", (unsigned long long)sw->end);
    trim_pages(sw, sw->local_next);
    return 0;
}

/* Fetch the leader's records from sw->end on, up to the end of the last
 * command this node applied to the partition (sw->local_cmd): that is
 * where apply goes on after the swap. Offsets may differ from this node's
 * (a replica that lost records holds later ones at lower offsets): the
 * commands, not the offsets, say how far to fetch. */
static int fetch_commands(const char *leader, struct swap *sw, size_t *bytes,
                          char *errmsg)
{
    uint64_t deadline = clock_mono_ns() + REPAIR_WAIT_LEADER_MS * 1000000ull;
    uint64_t moved;
    struct page pg;
    size_t k;
    int rv = 0;

    while (rv == 0) {
        if (stopping())
            return brk_errf(errmsg, BRK_ESHUTDOWN, "stopping");
        memset(&pg, 0, sizeof(pg));
        rv = catchup_fetch_page(leader, sw->t->name, sw->p, sw->end, &pg.resp,
                                &moved, errmsg);
        if (rv == 0)
            rv = catchup_decode_page(&pg.resp, sw->end, UINT64_MAX, &pg.recs,
                                     &pg.n, errmsg);
        if (rv != 0)
            break;
        for (k = 0; k < pg.n && pg.recs[k].cmd_index <= sw->local_cmd; k++)
            ;
        if (k == 0) {
            free(pg.recs);
            forward_response_free(&pg.resp);
            if (pg.n > 0)
                return 0; /* the next record is of a later command */
            rv = at_leader_end(sw, deadline, errmsg);
            if (rv == 1)
                rv = 0;
            else
                return rv;
            continue;
        }
        bool later = k < pg.n; /* a later command's record follows */
        pg.n = k;
        rv = keep_page(sw, &pg, bytes, errmsg);
        if (rv == 0 && later)
            return 0;
    }
    free(pg.recs);
    forward_response_free(&pg.resp);
    return rv;
}

/* Whether @sw's pages hold exactly the records [from, end). */
static bool pages_complete(const struct swap *sw)
{
    uint64_t next = sw->from;
    size_t i;

    for (i = 0; i < sw->n_pages; i++) {
        if (sw->pages[i].n == 0 || sw->pages[i].recs[0].offset != next)
            return false;
        next += sw->pages[i].n;
    }
    return next == sw->end;
}

/* Loop thread: the tail swap, in one step (see DESIGN). */
static bool swap_call(struct work *w, struct node *n)
{
    struct swap *sw = (struct swap *)w;
    struct partition *part = sw->t->partitions[sw->p];
    struct partition_stats st;
    uint64_t first;
    size_t i;
    int rc = 0;

    partition_stats(part, &st);
    sw->now_next = st.next_offset;
    sw->now_cmd = st.last_cmd_index;
    if (atomic_load(&sw->t->deleted) || sw->from < st.log_start_offset) {
        sw->rc = brk_errf(sw->errmsg, BRK_ECONFLICT, "topic deleted or "
                          "log start moved past %llu",
                          (unsigned long long)sw->from);
        return true;
    }
    if (st.next_offset != sw->local_next ||
        st.last_cmd_index != sw->local_cmd) {
        sw->rc = SWAP_MOVED;
        return true;
    }
    if (!pages_complete(sw)) {
        sw->rc = brk_errf(sw->errmsg, BRK_EINTERNAL, "fetched records do "
                          "not cover %llu..%llu", (unsigned long long)sw->from,
                          (unsigned long long)sw->end);
        return true;
    }
    rc = partition_cut_tail(part, sw->from, sw->errmsg);
    for (i = 0; rc == 0 && i < sw->n_pages; i++)
        rc = partition_append(part, sw->pages[i].recs, sw->pages[i].n, &first,
                              sw->errmsg);
    partition_stats(part, &st);
    partition_publish(part, st.next_offset);
    waiters_wake_partition(n, sw->t, sw->p);
    sw->rc = rc;
    if (rc != 0) {
        /* The tail may be gone and not rebuilt: applying on would put
         * records at the wrong offsets. A restart replays the Raft log and
         * the next check repairs what is still missing. */
        log_error("replica repair of %s/%u failed on this node (%s): "
                  "stopping so that this replica does not diverge further",
                  sw->t->name, sw->p, sw->errmsg);
        _exit(1);
    }
    return true;
}

static void swap_done(struct work *w)
{
    struct swap *sw = (struct swap *)w;

    pthread_mutex_lock(&R.lock);
    sw->done = true;
    pthread_cond_broadcast(&R.cond);
    pthread_mutex_unlock(&R.lock);
}

static int run_swap(struct swap *sw)
{
    sw->done = false;
    memset(&sw->w, 0, sizeof(sw->w));
    sw->w.type = WORK_CALL;
    sw->w.call = swap_call;
    sw->w.done = swap_done;
    if (node_submit(R.node, &sw->w) != 0)
        return BRK_ESHUTDOWN;
    pthread_mutex_lock(&R.lock);
    while (!sw->done)
        pthread_cond_wait(&R.cond, &R.lock);
    pthread_mutex_unlock(&R.lock);
    return sw->rc;
}

/* Do this node's digests of @t/@p from @from on match the leader's? 1
 * yes, 0 no, -1 unknown (the leader could not be asked). *@to gets the
 * end of the range compared. */
static int agrees(const char *leader, struct topic *t, uint32_t p,
                  uint64_t from, uint64_t *to)
{
    struct partition *part = t->partitions[p];
    struct digest_range mine, theirs;
    struct partition_stats st;
    char errmsg[BRK_ERRMSG_LEN];
    uint32_t chunk = digest_chunk_size(partition_digest(part)), c;
    uint64_t end, s;

    int rv = -1;

    partition_stats(part, &st);
    from = from / chunk * chunk;
    if (remote_range(leader, t, p, from, st.high_watermark, chunk, &c,
                     &theirs, errmsg) != 0)
        return -1;
    if (c == chunk &&
        digest_range(part, theirs.from, theirs.to, chunk, &mine, errmsg) == 0) {
        s = first_difference(&mine, &theirs, &end);
        rv = s == UINT64_MAX ? 1 : 0;
        /* Agreement counts only as far as both sides were compared. */
        *to = s != UINT64_MAX          ? s
              : mine.to < theirs.to ? mine.to
                                    : theirs.to;
        digest_range_free(&mine);
    }
    digest_range_free(&theirs);
    return rv;
}

/* After a repair: do this node's digests now match the leader's? */
static void confirm(const char *leader, struct topic *t, uint32_t p,
                    uint64_t from)
{
    uint64_t to = 0;
    int rv = agrees(leader, t, p, from, &to);

    if (rv == 1)
        log_info("repair of %s/%u confirmed: digests agree with the "
                 "leader's up to offset %llu", t->name, p,
                 (unsigned long long)to);
    else if (rv == 0)
        log_error("repair of %s/%u: still differs from the leader from "
                  "chunk %llu on", t->name, p, (unsigned long long)to);
}

static int repair_rounds(const char *leader, struct swap *sw, char *errmsg)
{
    size_t bytes = 0;
    int round, rv = 0;

    for (round = 0; round < REPAIR_ROUNDS && !stopping(); round++) {
        rv = fetch_commands(leader, sw, &bytes, errmsg);
        if (rv != 0)
            return rv;
        rv = run_swap(sw);
        if (rv != SWAP_MOVED)
            return rv == 0 ? 0 : brk_errf(errmsg, rv, "%s", sw->errmsg);
        /* Raft applied meanwhile: fetch that command's records too. */
        log_info("repair of %s/%u: applied on to offset %llu meanwhile, "
                 "fetching that too", sw->t->name, sw->p,
                 (unsigned long long)sw->now_next);
        sw->local_next = sw->now_next;
        sw->local_cmd = sw->now_cmd;
    }
    return brk_errf(errmsg, BRK_ETIMEOUT, "the partition kept moving");
}

static void repair(const struct repair_job *job)
{
    struct swap sw = {0};
    struct node_status st;
    struct partition_stats ps;
    char errmsg[BRK_ERRMSG_LEN], leader[256];
    int rv;

    node_status(R.node, &st);
    if (st.state == NODE_STATE_LEADER || st.leader.http_address[0] == '\0')
        return;
    snprintf(leader, sizeof(leader), "%s", st.leader.http_address);
    sw.t = topic_registry_get(R.st->topics, job->topic);
    if (sw.t == NULL || job->partition >= sw.t->n_partitions) {
        topic_put(sw.t);
        return;
    }
    sw.p = job->partition;
    sw.from = sw.end = job->offset;
    if (agrees(leader, sw.t, sw.p, sw.from, &ps.next_offset) == 1 &&
        ps.next_offset > sw.from) {
        /* A repeated order for a divergence already repaired. */
        log_info("repair of %s/%u from %llu: already agrees with the leader",
                 job->topic, sw.p, (unsigned long long)sw.from);
        topic_put(sw.t);
        return;
    }
    partition_stats(sw.t->partitions[sw.p], &ps);
    sw.local_next = ps.next_offset;
    sw.local_cmd = ps.last_cmd_index;
    log_warn("repairing %s/%u: replacing offsets %llu..%llu (commands up to "
             "%llu) with the leader's records (%s)", job->topic, sw.p,
             (unsigned long long)sw.from, (unsigned long long)sw.local_next,
             (unsigned long long)sw.local_cmd, leader);
    rv = sw.from < sw.local_next ? repair_rounds(leader, &sw, errmsg) : 0;
    pages_free(sw.pages, sw.n_pages);
    if (rv == 0) {
        metrics_add(MET_REPLICA_REPAIRS, 1);
        confirm(leader, sw.t, sw.p, sw.from);
    } else {
        log_error("repair of %s/%u from offset %llu failed: %s", job->topic,
                  sw.p, (unsigned long long)sw.from, errmsg);
    }
    topic_put(sw.t);
}

/* ==== the thread ==== */

static bool take_job(struct repair_job *job)
{
    bool have;

    pthread_mutex_lock(&R.lock);
    have = R.n_jobs > 0;
    if (have) {
        *job = R.jobs[0];
        memmove(R.jobs, R.jobs + 1, --R.n_jobs * sizeof(*R.jobs));
    }
    pthread_mutex_unlock(&R.lock);
    return have;
}

static void wait_tick(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += TICK_MS * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&R.lock);
    if (!R.stop && R.n_jobs == 0)
        pthread_cond_timedwait(&R.cond, &R.lock, &ts);
    pthread_mutex_unlock(&R.lock);
}

static void *replica_main(void *arg)
{
    struct repair_job job;
    uint64_t next_check = clock_mono_ns() / 1000000ull +
                          (uint64_t)R.cfg->digest_interval_ms;
    uint64_t now;

    (void)arg;
    while (!stopping()) {
        build_some();
        while (!stopping() && take_job(&job))
            repair(&job);
        now = clock_mono_ns() / 1000000ull;
        if (R.cfg->digest_interval_ms > 0 && now >= next_check) {
            check_all();
            next_check = now + (uint64_t)R.cfg->digest_interval_ms;
        }
        wait_tick();
    }
    return NULL;
}

int replica_start(struct node *n, const struct config *cfg, struct state *st,
                  char *errmsg)
{
    R.node = n;
    R.cfg = cfg;
    R.st = st;
    R.stop = false;
    if (pthread_create(&R.thread, NULL, replica_main, NULL) != 0)
        return brk_errf(errmsg, BRK_EINTERNAL, "start the replica thread");
    R.started = true;
    return 0;
}

void replica_stop(void)
{
    if (!R.started)
        return;
    pthread_mutex_lock(&R.lock);
    R.stop = true;
    pthread_cond_broadcast(&R.cond);
    pthread_mutex_unlock(&R.lock);
    pthread_join(R.thread, NULL);
    R.started = false;
}

int replica_request_repair(const char *topic, uint32_t p, uint64_t offset,
                           char *errmsg)
{
    int rc = 0;
    size_t i;

    pthread_mutex_lock(&R.lock);
    if (!R.started || R.stop || !R.cfg->cluster.enabled) {
        rc = brk_errf(errmsg, BRK_EUNAVAILABLE, "replica repair runs only "
                      "on a cluster node");
    } else {
        for (i = 0; i < R.n_jobs; i++)
            if (strcmp(R.jobs[i].topic, topic) == 0 &&
                R.jobs[i].partition == p)
                break;
        if (i == R.n_jobs && R.n_jobs == REPAIR_QUEUE) {
            rc = brk_errf(errmsg, BRK_ECONFLICT, "too many repairs queued");
        } else {
            /* A repeated order for a queued partition keeps the lowest
             * offset. */
            if (i == R.n_jobs || offset < R.jobs[i].offset) {
                snprintf(R.jobs[i].topic, sizeof(R.jobs[i].topic), "%s",
                         topic);
                R.jobs[i].partition = p;
                R.jobs[i].offset = offset;
            }
            if (i == R.n_jobs)
                R.n_jobs++;
            pthread_cond_broadcast(&R.cond);
        }
    }
    pthread_mutex_unlock(&R.lock);
    return rc;
}

size_t replica_divergence(struct replica_divergence *out, size_t max)
{
    size_t n;

    pthread_mutex_lock(&R.lock);
    n = R.n_div < max ? R.n_div : max;
    memcpy(out, R.div, n * sizeof(*out));
    pthread_mutex_unlock(&R.lock);
    return n;
}
