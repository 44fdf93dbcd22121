/* Long-poll and claim waiters parked on the loop thread: woken by a
 * publish on their partition (or any partition of the topic, for claims),
 * by their own deadline timer, by topic deletion or by shutdown. */
#include <stdio.h>
#include <stdlib.h>

#include "node_internal.h"

static void timer_free(uv_handle_t *h)
{
    free(h);
}

static void waiter_unlink(struct node *n, struct waiter *wt)
{
    if (wt->prev != NULL)
        wt->prev->next = wt->next;
    else
        *wt->head = wt->next;
    if (wt->next != NULL)
        wt->next->prev = wt->prev;
    if (wt->all_prev != NULL)
        wt->all_prev->all_next = wt->all_next;
    else
        n->all_waiters = wt->all_next;
    if (wt->all_next != NULL)
        wt->all_next->all_prev = wt->all_prev;
    n->n_waiters--;
}

/* Take @wt off every list and hand its work back: a woken claim goes back
 * to the queue for another try unless @final. */
static void waiter_release(struct node *n, struct waiter *wt, bool final)
{
    struct work *w = wt->w;
    bool retry = wt->claim && !final;

    waiter_unlink(n, wt);
    uv_timer_stop(wt->timer);
    uv_close((uv_handle_t *)wt->timer, timer_free);
    topic_put(wt->topic);
    free(wt);
    if (retry)
        node_requeue(n, w);
    else
        node_finish_work(n, w);
}

static void on_deadline(uv_timer_t *t)
{
    struct waiter *wt = t->data;
    struct node *n = wt->node; /* wt is freed by the release */

    waiter_release(n, wt, true);
    node_publish_waiters_count(n);
}

static struct topic *waiter_topic(struct node *n, struct work *w)
{
    if (w->type == WORK_WAIT) {
        topic_get(w->topic);
        return w->topic;
    }
    return topic_registry_get(n->st->topics, w->cmd.topic);
}

void waiters_add(struct node *n, struct work *w, bool claim)
{
    struct waiter *wt = calloc(1, sizeof(*wt));
    struct topic *t = waiter_topic(n, w);
    uint64_t now = uv_now(&n->loop);

    if (wt == NULL || t == NULL || (wt->timer = malloc(sizeof(uv_timer_t))) == NULL) {
        free(wt);
        topic_put(t);
        node_finish_work(n, w); /* answer now rather than lose it */
        return;
    }
    wt->w = w;
    wt->node = n;
    wt->topic = t;
    wt->claim = claim;
    wt->head = claim ? &t->claim_waiters : &t->waiters[w->partition];
    wt->next = *wt->head;
    if (wt->next != NULL)
        wt->next->prev = wt;
    *wt->head = wt;
    wt->all_next = n->all_waiters;
    if (wt->all_next != NULL)
        wt->all_next->all_prev = wt;
    n->all_waiters = wt;
    n->n_waiters++;
    uv_timer_init(&n->loop, wt->timer);
    wt->timer->data = wt;
    uv_timer_start(wt->timer, on_deadline,
                   w->deadline_ms > now ? w->deadline_ms - now : 0, 0);
    node_publish_waiters_count(n);
}

static void release_list(struct node *n, struct waiter **head, bool final)
{
    while (*head != NULL)
        waiter_release(n, *head, final);
}

void waiters_wake_partition(struct node *n, struct topic *t, uint32_t p)
{
    if (p < t->n_partitions)
        release_list(n, &t->waiters[p], true);
    release_list(n, &t->claim_waiters, false);
    node_publish_waiters_count(n);
}

void waiters_wake_topic(struct node *n, struct topic *t)
{
    struct waiter *wt;
    uint32_t p;

    for (p = 0; p < t->n_partitions; p++)
        release_list(n, &t->waiters[p], true);
    /* A parked claim learns that its topic is gone, as a long poll does. */
    for (wt = t->claim_waiters; wt != NULL; wt = wt->next) {
        wt->w->res.err = BRK_EUNKNOWN_TOPIC;
        snprintf(wt->w->res.errmsg, sizeof(wt->w->res.errmsg),
                 "topic '%s' was deleted", t->name);
    }
    release_list(n, &t->claim_waiters, true);
    node_publish_waiters_count(n);
}

void waiters_wake_all(struct node *n)
{
    while (n->all_waiters != NULL)
        waiter_release(n, n->all_waiters, true);
    node_publish_waiters_count(n);
}
