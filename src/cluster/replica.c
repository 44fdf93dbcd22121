/* Replica comparison thread (see include/broker/replica.h): the loop of
 * the thread, the repair queue, the divergence list, and the background
 * build of digests after a restart. The leader's check is in
 * replica_check.c, the repair in replica_repair.c. Network calls run on
 * this thread (libcurl), never on the loop or HTTP threads. */
#include "broker/replica.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/clock.h"
#include "broker/digest.h"
#include "broker/forward.h"
#include "broker/log.h"
#include "replica_internal.h"

#define TICK_MS 200
#define BUILD_RECORDS 4096      /* records per build step */
#define BUILD_STEPS_PER_TICK 64
#define REPAIR_QUEUE 32

struct replica {
    struct node *node;
    const struct config *cfg;
    struct state *st;
    pthread_t thread;
    pthread_mutex_t lock;       /* guards everything below */
    pthread_cond_t cond;
    bool stop, started;
    struct replica_job jobs[REPAIR_QUEUE];
    size_t n_jobs;
    struct replica_divergence div[REPLICA_MAX_DIVERGENCE];
    size_t n_div;
};

static struct replica R = {.lock = PTHREAD_MUTEX_INITIALIZER,
                           .cond = PTHREAD_COND_INITIALIZER};

bool replica_stopping(void)
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


/* ==== the thread ==== */

static bool take_job(struct replica_job *job)
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
    struct replica_job job;
    uint64_t next_check = clock_mono_ns() / 1000000ull +
                          (uint64_t)R.cfg->digest_interval_ms;
    uint64_t now;

    (void)arg;
    while (!replica_stopping()) {
        build_some();
        while (!replica_stopping() && take_job(&job))
            replica_repair(R.node, R.st, &job);
        now = clock_mono_ns() / 1000000ull;
        if (R.cfg->digest_interval_ms > 0 && now >= next_check) {
            replica_check_all(R.node, R.st);
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

void replica_set_divergence(const struct replica_divergence *d, size_t n)
{
    pthread_mutex_lock(&R.lock);
    if (n > 0)
        memcpy(R.div, d, n * sizeof(*d));
    R.n_div = n;
    pthread_mutex_unlock(&R.lock);
}
