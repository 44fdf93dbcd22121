/* The verification / scrub thread (see broker/scrub.h, docs/storage.md). */
#include "broker/nap.h"
#include "broker/scrub.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "broker/clock.h"
#include "broker/err.h"
#include "broker/log.h"
#include "broker/metrics.h"

struct scrubber {
    struct topic_registry *reg;
    int64_t interval_ms;
    int64_t bytes_per_s;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    /* rate limit of the pass under way */
    uint64_t pass_start_ns;
    uint64_t pass_bytes;
};

/* Sleep @ns unless stopped; returns true when stopping. */
static bool nap_ns(struct scrubber *s, uint64_t ns)
{
    return nap_until_stopped(&s->lock, &s->cond, &s->stop, ns);
}

static bool stopping(struct scrubber *s)
{
    bool stop;

    pthread_mutex_lock(&s->lock);
    stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

/* What the throttle watches: the scrubber, and the topic being read (a
 * deleted topic's files must not stay open for the rest of a pass). */
struct scrub_ctx {
    struct scrubber *s;
    struct topic *t;
};

/* Throttle: sleep as long as reading @bytes more put us ahead of the
 * rate. Returns false to stop. */
static bool throttle(void *arg, uint64_t bytes)
{
    struct scrub_ctx *c = arg;
    struct scrubber *s = c->s;
    uint64_t due_ns, spent;

    if (atomic_load(&c->t->deleted))
        return false;
    if (bytes == 0)
        return !stopping(s);
    metrics_add(MET_STORAGE_SCRUB_BYTES, bytes);
    s->pass_bytes += bytes;
    due_ns = (uint64_t)((double)s->pass_bytes * 1e9 / (double)s->bytes_per_s);
    spent = clock_mono_ns() - s->pass_start_ns;
    if (due_ns > spent)
        return !nap_ns(s, due_ns - spent);
    return !stopping(s);
}

/* Verify every partition once. Returns false when stopped midway. */
static bool scrub_pass(struct scrubber *s, uint64_t pass)
{
    struct partition_verify_stats st, sum = {0};
    char errmsg[BRK_ERRMSG_LEN];
    struct topic **list;
    size_t n, i;
    uint32_t p;
    bool stopped = false;

    if (topic_registry_list(s->reg, &list, &n) != 0)
        return true;
    s->pass_start_ns = clock_mono_ns();
    s->pass_bytes = 0;
    for (i = 0; i < n && !stopped; i++) {
        struct scrub_ctx ctx = {s, list[i]};

        for (p = 0; p < list[i]->n_partitions && !stopped; p++) {
            if (atomic_load(&list[i]->deleted))
                break;
            if (partition_verify(list[i]->partitions[p], throttle, &ctx, &st,
                                 errmsg) != 0)
                log_warn("verify %s/%u: %s", list[i]->name, p, errmsg);
            metrics_add(MET_STORAGE_CORRUPT_RECORDS, st.corrupt_records);
            metrics_add(MET_STORAGE_INDEX_REBUILDS, st.indexes_rebuilt);
            sum.bytes += st.bytes;
            sum.damaged_ranges += st.damaged_ranges;
            sum.indexes_rebuilt += st.indexes_rebuilt;
            stopped = st.stopped && stopping(s);
        }
        /* Done with it: a topic deleted meanwhile is freed now, not at the
         * end of a pass that may take hours. */
        topic_put(list[i]);
        list[i] = NULL;
    }
    topic_list_free(list, n);
    if (stopped)
        return false;
    metrics_add(MET_STORAGE_SCRUB_PASSES, 1);
    if (pass == 0 || sum.damaged_ranges > 0 || sum.indexes_rebuilt > 0)
        log_info("storage %s: %llu bytes of %zu topics read, %u damaged "
                 "ranges, %u indexes rebuilt",
                 pass == 0 ? "verification at start" : "scrub",
                 (unsigned long long)sum.bytes, n, sum.damaged_ranges,
                 sum.indexes_rebuilt);
    return true;
}

static void *scrub_main(void *arg)
{
    struct scrubber *s = arg;
    uint64_t pass = 0;

    while (scrub_pass(s, pass++)) {
        if (s->interval_ms == 0) {
            nap_ns(s, UINT64_MAX / 4);
            break;
        }
        /* Capped at ~3 years so that the product cannot overflow. */
        if (nap_ns(s, (uint64_t)(s->interval_ms < 100000000000LL
                                     ? s->interval_ms
                                     : 100000000000LL) *
                          1000000u))
            break;
    }
    return NULL;
}

int scrubber_start(struct topic_registry *reg, int64_t interval_ms,
                   int64_t bytes_per_s, struct scrubber **out, char *errmsg)
{
    struct scrubber *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "allocate scrubber");
    s->reg = reg;
    s->interval_ms = interval_ms;
    s->bytes_per_s = bytes_per_s > 0 ? bytes_per_s : 1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->thread, NULL, scrub_main, s) != 0) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        free(s);
        return brk_errf(errmsg, BRK_EINTERNAL, "start scrub thread");
    }
    *out = s;
    return 0;
}

void scrubber_stop(struct scrubber *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

size_t storage_damaged_ranges(struct topic_registry *reg)
{
    struct topic **list;
    size_t n, i, total = 0;
    uint32_t p;

    if (topic_registry_list(reg, &list, &n) != 0)
        return 0;
    for (i = 0; i < n; i++)
        for (p = 0; p < list[i]->n_partitions; p++)
            total += partition_damage(list[i]->partitions[p], NULL, 0);
    topic_list_free(list, n);
    return total;
}
