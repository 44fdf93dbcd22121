/* Replica thread, on a member the leader found divergent: replace the
 * partition's tail with the leader's records.
 *
 * DESIGN (concurrency with Raft apply)
 * Apply appends a command's records at the partition's next offset, so the
 * tail must never be missing while the loop thread applies. The leader's
 * records from the differing offset X up to the end of the last command
 * this node applied (its last cmd_index L) are fetched into memory first;
 * then one WORK_CALL has the loop thread check that the partition's next
 * offset and last cmd_index are unchanged and cut and re-append in that
 * one step: apply never sees a partial tail. When apply appended meanwhile,
 * the records of the commands applied since are fetched too and the swap
 * tried again. Commands, not offsets, bound the fetch: a replica that lost
 * records holds later ones at shifted offsets. A repair holds at most
 * REPAIR_MAX_BYTES in memory; a larger one is refused (logged). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/clock.h"
#include "broker/forward.h"
#include "broker/log.h"
#include "broker/metrics.h"
#include "replica_internal.h"

#define REPAIR_MAX_BYTES (64u << 20) /* also bounds the loop-thread step */
#define REPAIR_ROUNDS 20
#define REPAIR_WAIT_LEADER_MS 5000
/* swap.rc when apply moved the partition on (not an error code). */
#define SWAP_MOVED (-1)

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

/* Wakes the replica thread when the loop thread has done a swap. */
static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t swap_cond = PTHREAD_COND_INITIALIZER;

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
        if (replica_stopping())
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
    /* Damaged ranges are the range repairer's (src/cluster/repair.c),
     * which rewrites segments from its own thread: cutting the tail under
     * it could interleave the two. The next check comes back here. */
    if (partition_damage(part, NULL, 0) > 0) {
        sw->rc = brk_errf(sw->errmsg, BRK_ECONFLICT, "damaged ranges are "
                          "being repaired first");
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

    pthread_mutex_lock(&swap_lock);
    sw->done = true;
    pthread_cond_broadcast(&swap_cond);
    pthread_mutex_unlock(&swap_lock);
}

static int run_swap(struct node *n, struct swap *sw)
{
    sw->done = false;
    memset(&sw->w, 0, sizeof(sw->w));
    sw->w.type = WORK_CALL;
    sw->w.call = swap_call;
    sw->w.done = swap_done;
    if (node_submit(n, &sw->w) != 0)
        return BRK_ESHUTDOWN;
    pthread_mutex_lock(&swap_lock);
    while (!sw->done)
        pthread_cond_wait(&swap_cond, &swap_lock);
    pthread_mutex_unlock(&swap_lock);
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
    if (replica_remote_range(leader, t, p, from, st.high_watermark, chunk, &c,
                     &theirs, errmsg) != 0)
        return -1;
    if (c == chunk &&
        digest_range(part, theirs.from, theirs.to, chunk, &mine, errmsg) == 0) {
        s = replica_first_difference(&mine, &theirs, &end);
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

static int repair_rounds(struct node *n, const char *leader, struct swap *sw,
                         char *errmsg)
{
    size_t bytes = 0;
    int round, rv = 0;

    for (round = 0; round < REPAIR_ROUNDS && !replica_stopping(); round++) {
        rv = fetch_commands(leader, sw, &bytes, errmsg);
        if (rv != 0)
            return rv;
        rv = run_swap(n, sw);
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

void replica_repair(struct node *n, struct state *st,
                    const struct replica_job *job)
{
    struct swap sw = {0};
    struct node_status ns;
    struct partition_stats ps;
    char errmsg[BRK_ERRMSG_LEN], leader[256];
    int rv;

    node_status(n, &ns);
    if (ns.state == NODE_STATE_LEADER || ns.leader.http_address[0] == '\0')
        return;
    snprintf(leader, sizeof(leader), "%s", ns.leader.http_address);
    sw.t = topic_registry_get(st->topics, job->topic);
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
    rv = sw.from < sw.local_next ? repair_rounds(n, leader, &sw, errmsg) : 0;
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
