/* Work queue from HTTP threads to the loop thread. uv_async_send calls
 * coalesce, so the loop always takes the whole queue at once. */
#include "broker/work.h"

#include "broker/err.h"

void workq_init(struct workq *q, uv_async_t *async)
{
    pthread_mutex_init(&q->lock, NULL);
    q->head = q->tail = NULL;
    q->async = async;
    q->closed = false;
}

void workq_destroy(struct workq *q)
{
    pthread_mutex_destroy(&q->lock);
}

int workq_push(struct workq *q, struct work *w)
{
    pthread_mutex_lock(&q->lock);
    if (q->closed) {
        pthread_mutex_unlock(&q->lock);
        return BRK_ESHUTDOWN;
    }
    w->next = NULL;
    if (q->tail != NULL)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    /* Signal before unlocking: once workq_close has taken the lock, no
     * push can still be about to touch the async handle, so the loop may
     * close and free it right after the close. uv_async_send takes no
     * lock of its own. */
    uv_async_send(q->async);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

struct work *workq_take_all(struct workq *q)
{
    struct work *w;

    pthread_mutex_lock(&q->lock);
    w = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return w;
}

void workq_close(struct workq *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_mutex_unlock(&q->lock);
}
