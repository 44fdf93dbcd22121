/* Repair from peers: see broker/repair.h and docs/clustering.md. */
#include "broker/nap.h"
#include "broker/repair.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/clock.h"
#include "broker/err.h"
#include "broker/forward.h"
#include "broker/log.h"
#include "broker/metrics.h"
#include "node_internal.h"

#define REPAIR_CHECK_MS 1000L  /* how often damage is looked for */
#define REPAIR_RETRY_NS (5ull * 1000000000u) /* after a failed attempt */
#define REPAIR_MAX_RANGES 16   /* per partition and round */

struct repairer {
    struct node *node;
    struct topic_registry *reg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    uint64_t next_try_ns; /* after a failure, wait before the next round */
};

/* Encoded records of a range, gathered page by page. */
struct gather {
    uint8_t *buf;
    size_t len, cap;
};

static bool nap(struct repairer *r, long ms)
{
    return nap_until_stopped(&r->lock, &r->cond, &r->stop,
                             (uint64_t)ms * 1000000u);
}

static int gather_add(struct gather *g, const struct record *recs, size_t n)
{
    size_t i, need = 0, w;

    for (i = 0; i < n; i++)
        need += record_encoded_size(&recs[i]);
    if (need > g->cap - g->len) {
        size_t cap = g->cap ? g->cap : 1 << 16;
        uint8_t *b;
        while (cap - g->len < need)
            cap *= 2;
        if ((b = realloc(g->buf, cap)) == NULL)
            return BRK_ENOMEM;
        g->buf = b;
        g->cap = cap;
    }
    for (i = 0; i < n; i++) {
        w = record_encode(&recs[i], g->buf + g->len, g->cap - g->len);
        if (w == 0)
            return BRK_EINTERNAL;
        g->len += w;
    }
    return 0;
}

/* Fetch [from, to) of @t/@p from @peer into @g. */
static int fetch_range(struct repairer *r, const char *peer, struct topic *t,
                       uint32_t p, uint64_t from, uint64_t to,
                       struct gather *g, char *errmsg)
{
    struct forward_response resp;
    struct record *recs;
    uint64_t moved = 0;
    size_t count;
    int rv = 0;

    g->len = 0;
    while (rv == 0 && from < to) {
        if (nap(r, 0))
            return brk_errf(errmsg, BRK_ESHUTDOWN, "stopping");
        rv = catchup_fetch_page(peer, t->name, p, from, &resp, &moved, errmsg);
        if (rv == BRK_EOFFSET_RANGE)
            return brk_errf(errmsg, rv, "its log starts at %llu now",
                            (unsigned long long)moved);
        if (rv != 0)
            return rv;
        rv = catchup_decode_page(&resp, from, to, &recs, &count, errmsg);
        if (rv == 0 && count == 0)
            rv = brk_errf(errmsg, BRK_EFORWARD, "it sent no records");
        if (rv == 0)
            rv = gather_add(g, recs, count);
        free(recs);
        forward_response_free(&resp);
        from += rv == 0 ? count : 0;
    }
    return rv;
}

/* The members to ask, leader first; returns how many. */
static int peers(struct repairer *r, char (*out)[256], int max)
{
    struct node_status st;
    int i, n = 0;

    node_status(r->node, &st);
    if (st.leader_id != 0 && st.leader_id != st.node_id &&
        st.leader.http_address[0] != '\0')
        snprintf(out[n++], 256, "%s", st.leader.http_address);
    for (i = 0; i < st.n_members && n < max; i++)
        if (st.members[i].id != st.node_id &&
            st.members[i].id != st.leader_id &&
            st.members[i].http_address[0] != '\0')
            snprintf(out[n++], 256, "%s", st.members[i].http_address);
    return n;
}

/* Repair one damaged range from the first peer that has it whole. */
static bool repair_range(struct repairer *r, struct topic *t, uint32_t p,
                         const struct partition_damage *d, struct gather *g)
{
    char list[NODE_MAX_MEMBERS + 1][256], errmsg[BRK_ERRMSG_LEN];
    int n = peers(r, list, NODE_MAX_MEMBERS + 1), i, rv;

    if (n == 0)
        log_warn("repair %s/%u [%llu, %llu): no peer with a known HTTP "
                 "address yet", t->name, p, (unsigned long long)d->from,
                 (unsigned long long)d->to);
    for (i = 0; i < n; i++) {
        rv = fetch_range(r, list[i], t, p, d->from, d->to, g, errmsg);
        if (rv == 0)
            rv = partition_repair_range(t->partitions[p], d->from, d->to,
                                        g->buf, g->len, errmsg);
        if (rv == 0) {
            log_info("repaired %s/%u offsets [%llu, %llu) with records from "
                     "%s", t->name, p, (unsigned long long)d->from,
                     (unsigned long long)d->to, list[i]);
            metrics_add(MET_STORAGE_REPAIRED_RANGES, 1);
            metrics_add(MET_STORAGE_REPAIRED_RECORDS, d->to - d->from);
            return true;
        }
        if (rv == BRK_ECONFLICT || rv == BRK_ESHUTDOWN) {
            log_info("repair %s/%u [%llu, %llu): %s", t->name, p,
                      (unsigned long long)d->from,
                      (unsigned long long)d->to, errmsg);
            return false;
        }
        log_warn("repair %s/%u [%llu, %llu) from %s failed: %s", t->name, p,
                 (unsigned long long)d->from, (unsigned long long)d->to,
                 list[i], errmsg);
    }
    return false;
}

/* One round over every partition; true when everything known was
 * repaired. */
static bool repair_round(struct repairer *r)
{
    struct partition_damage d[REPAIR_MAX_RANGES];
    struct gather g = {0};
    struct topic **list;
    size_t n, i, k, j;
    uint32_t p;
    bool all = true;

    if (topic_registry_list(r->reg, &list, &n) != 0)
        return false;
    for (i = 0; i < n; i++) {
        for (p = 0; p < list[i]->n_partitions; p++) {
            if (atomic_load(&list[i]->deleted))
                break;
            k = partition_damage(list[i]->partitions[p], d, REPAIR_MAX_RANGES);
            for (j = 0; j < k && j < REPAIR_MAX_RANGES; j++)
                all &= repair_range(r, list[i], p, &d[j], &g);
        }
        topic_put(list[i]); /* a deleted topic is freed now */
        list[i] = NULL;
    }
    topic_list_free(list, n);
    free(g.buf);
    return all;
}

static void *repair_main(void *arg)
{
    struct repairer *r = arg;

    while (!nap(r, REPAIR_CHECK_MS)) {
        if (clock_mono_ns() < r->next_try_ns)
            continue;
        if (!repair_round(r))
            r->next_try_ns = clock_mono_ns() + REPAIR_RETRY_NS;
    }
    return NULL;
}

int repairer_start(struct node *n, struct topic_registry *reg,
                   struct repairer **out, char *errmsg)
{
    struct repairer *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "allocate repairer");
    r->node = n;
    r->reg = reg;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->thread, NULL, repair_main, r) != 0) {
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->cond);
        free(r);
        return brk_errf(errmsg, BRK_EINTERNAL, "start repair thread");
    }
    *out = r;
    return 0;
}

void repairer_stop(struct repairer *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}
