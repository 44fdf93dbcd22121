/* Announcer thread: until the replicated member list shows this node's
 * HTTP address, POST it to the leader's /internal/members. The leader
 * records its own address itself (raft_node.c). */
#include "broker/nap.h"
#include "broker/announce.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/addr.h"
#include "broker/err.h"
#include "broker/forward.h"
#include "broker/log.h"

#define ANNOUNCE_RETRY_MS 300
#define ANNOUNCE_CHECK_MS 2000

struct announcer {
    struct node *node;
    const struct config *cfg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    int last_status;    /* of the last announcement, to log changes once */
};

static bool registered(const struct node_status *st, const char *self)
{
    int i;

    for (i = 0; i < st->n_members; i++)
        if (st->members[i].id == st->node_id)
            return strcmp(st->members[i].http_address, self) == 0;
    return false;
}

static void announce_once(struct announcer *a, const struct node_status *st)
{
    char body[512], errmsg[BRK_ERRMSG_LEN], id[24], host[64];
    int rv;
    struct forward_response resp;
    struct forward_request req = {
        .method = "POST", .base = st->leader.http_address,
        .path = "/internal/members", .content_type = "application/json",
        .body = body, .forwarded_by = id, .timeout_ms = 3000};

    snprintf(id, sizeof(id), "%llu", (unsigned long long)st->node_id);
    req.len = (size_t)snprintf(body, sizeof(body),
                               "{\"node_id\":%llu,\"http_address\":\"%s\"}",
                               (unsigned long long)st->node_id,
                               a->cfg->server.advertise);
    /* Without a secret the leader checks that we call from the host of
     * our Raft address: use it as the source (several addresses may sit
     * on one machine), or the default one if it cannot be bound. */
    if (a->cfg->cluster.secret[0] == '\0' &&
        addr_host(a->cfg->cluster.raft_address, host, sizeof(host)))
        req.local_ip = host;
    rv = forward_call(&req, &resp, errmsg);
    if (rv == BRK_EUNAVAILABLE && req.local_ip != NULL) {
        req.local_ip = NULL;
        rv = forward_call(&req, &resp, errmsg);
    }
    if (rv != 0) {
        log_debug("announce to leader: %s", errmsg);
        return;
    }
    /* A refusal (wrong secret, failed call-back) repeats every retry:
     * say it once, with the leader's reason. */
    if (resp.status == 503) /* a leader change under way: retried */
        log_debug("announce to leader: status 503");
    else if (resp.status != 200 && resp.status != a->last_status)
        log_warn("announcing %s to the leader (node %llu): status %d: %.200s",
                 a->cfg->server.advertise,
                 (unsigned long long)st->leader_id, resp.status,
                 resp.body ? resp.body : "");
    a->last_status = resp.status;
    forward_response_free(&resp);
}

/* Sleep @ms unless stopped; returns true when stopping. */
static bool nap(struct announcer *a, long ms)
{
    return nap_until_stopped(&a->lock, &a->cond, &a->stop,
                             (uint64_t)ms * 1000000u);
}

static void *announce_main(void *arg)
{
    struct announcer *a = arg;
    struct node_status st;
    long wait;

    do {
        node_status(a->node, &st);
        wait = ANNOUNCE_RETRY_MS;
        if (registered(&st, a->cfg->server.advertise))
            wait = ANNOUNCE_CHECK_MS;
        else if (st.leader_id != 0 && st.leader_id != st.node_id &&
                 st.leader.http_address[0] != '\0')
            announce_once(a, &st);
    } while (!nap(a, wait));
    return NULL;
}

int announcer_start(struct node *n, const struct config *cfg,
                    struct announcer **out, char *errmsg)
{
    struct announcer *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "allocate announcer");
    a->node = n;
    a->cfg = cfg;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    if (pthread_create(&a->thread, NULL, announce_main, a) != 0) {
        free(a);
        return brk_errf(errmsg, BRK_EINTERNAL, "start announcer thread");
    }
    *out = a;
    return 0;
}

void announcer_stop(struct announcer *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a);
}
