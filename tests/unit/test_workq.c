/* Unit tests for the HTTP-to-loop work queue (src/core/workq.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <uv.h>

#include "broker/err.h"
#include "broker/work.h"

#define N_THREADS 4
#define PER_THREAD 2000

struct fixture {
    uv_loop_t loop;
    uv_async_t *async;        /* heap: the close test frees it early */
    struct workq q;
    unsigned wakeups;         /* async callbacks run */
    size_t taken;             /* items drained by the callback */
    struct work *last[N_THREADS]; /* last item seen per producer */
    bool order_ok;
};

/* Drain the whole queue, as the loop does, checking per-producer order. */
static void on_async(uv_async_t *a)
{
    struct fixture *f = a->data;
    struct work *w = workq_take_all(&f->q), *next;

    f->wakeups++;
    for (; w != NULL; w = next) {
        size_t t = (size_t)(uintptr_t)w->data;
        next = w->next;
        if (f->last[t] != NULL && w != f->last[t] + 1)
            f->order_ok = false;
        f->last[t] = w;
        f->taken++;
    }
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    f->async = calloc(1, sizeof(*f->async));
    if (f->async == NULL || uv_loop_init(&f->loop) != 0 ||
        uv_async_init(&f->loop, f->async, on_async) != 0)
        return -1;
    f->async->data = f;
    f->order_ok = true;
    workq_init(&f->q, f->async);
    *state = f;
    return 0;
}

static void free_on_close(uv_handle_t *h)
{
    free(h);
}

/* Close the async handle (if still open) and the loop. */
static void close_async(struct fixture *f)
{
    if (f->async == NULL)
        return;
    uv_close((uv_handle_t *)f->async, free_on_close);
    f->async = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    close_async(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    workq_destroy(&f->q);
    free(f);
    return 0;
}

/* take_all on an empty queue returns NULL. */
static void test_take_empty(void **state)
{
    struct fixture *f = *state;

    assert_null(workq_take_all(&f->q));
}

/* Items come out oldest first, linked through next, and the queue is
 * empty afterwards. */
static void test_push_take_order(void **state)
{
    struct fixture *f = *state;
    struct work w[5], *got;
    size_t i;

    memset(w, 0, sizeof(w));
    for (i = 0; i < 5; i++)
        assert_int_equal(workq_push(&f->q, &w[i]), 0);
    got = workq_take_all(&f->q);
    for (i = 0; i < 5; i++) {
        assert_ptr_equal(got, &w[i]);
        got = got->next;
    }
    assert_null(got);
    assert_null(workq_take_all(&f->q));
    /* The queue is usable again after being emptied. */
    assert_int_equal(workq_push(&f->q, &w[2]), 0);
    assert_ptr_equal(workq_take_all(&f->q), &w[2]);
    assert_null(w[2].next);
}

/* A push signals the async handle; coalesced signals still let one
 * callback drain every item. */
static void test_push_wakes_loop(void **state)
{
    struct fixture *f = *state;
    struct work w[3];
    size_t i;

    memset(w, 0, sizeof(w));
    for (i = 0; i < 3; i++)
        assert_int_equal(workq_push(&f->q, &w[i]), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->wakeups, 1);
    assert_int_equal(f->taken, 3);
}

/* A closed queue refuses with BRK_ESHUTDOWN and leaves the item alone;
 * items queued before the close can still be taken. */
static void test_closed_refuses(void **state)
{
    struct fixture *f = *state;
    struct work before, after, sentinel;

    memset(&before, 0, sizeof(before));
    memset(&after, 0, sizeof(after));
    after.next = &sentinel;
    assert_int_equal(workq_push(&f->q, &before), 0);
    workq_close(&f->q);
    assert_int_equal(workq_push(&f->q, &after), BRK_ESHUTDOWN);
    assert_ptr_equal(after.next, &sentinel);
    assert_ptr_equal(workq_take_all(&f->q), &before);
    assert_null(before.next);
    assert_null(workq_take_all(&f->q));
    assert_int_equal(workq_push(&f->q, &after), BRK_ESHUTDOWN);
}

struct producer {
    struct fixture *f;
    size_t id;
    struct work items[PER_THREAD];
    size_t pushed;            /* accepted pushes */
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    size_t i;

    for (i = 0; i < PER_THREAD; i++) {
        p->items[i].data = (void *)(uintptr_t)p->id;
        if (workq_push(&p->f->q, &p->items[i]) != 0)
            break;
        p->pushed++;
    }
    return NULL;
}

static struct producer *start_producers(struct fixture *f, pthread_t *th)
{
    struct producer *p = calloc(N_THREADS, sizeof(*p));
    size_t i;

    assert_non_null(p);
    for (i = 0; i < N_THREADS; i++) {
        p[i].f = f;
        p[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, produce, &p[i]), 0);
    }
    return p;
}

/* Pushes from several threads all arrive, each thread's in its order. */
static void test_concurrent_producers(void **state)
{
    struct fixture *f = *state;
    pthread_t th[N_THREADS];
    struct producer *p = start_producers(f, th);
    size_t i;

    while (f->taken < N_THREADS * PER_THREAD)
        uv_run(&f->loop, UV_RUN_ONCE);
    for (i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_true(f->order_ok);
    for (i = 0; i < N_THREADS; i++)
        assert_ptr_equal(f->last[i], &p[i].items[PER_THREAD - 1]);
    free(p);
}

/* Once workq_close has returned no push touches the async handle any
 * more, so the loop may close and free it right away (as node_stop's
 * shutdown does) while producers are still pushing. */
static void test_close_then_free_async(void **state)
{
    struct fixture *f = *state;
    pthread_t th[N_THREADS];
    struct producer *p;
    size_t i, pushed = 0;
    int round;

    for (round = 0; round < 20; round++) {
        p = start_producers(f, th);
        while (f->taken < 50)
            uv_run(&f->loop, UV_RUN_ONCE);
        workq_close(&f->q);
        close_async(f);
        for (i = 0; i < N_THREADS; i++) {
            pthread_join(th[i], NULL);
            pushed += p[i].pushed;
        }
        /* Everything accepted is still in the queue or was drained. */
        for (struct work *w = workq_take_all(&f->q); w; w = w->next)
            f->taken++;
        assert_int_equal(f->taken, pushed);
        free(p);
        /* Fresh handle and queue for the next round. */
        workq_destroy(&f->q);
        f->async = calloc(1, sizeof(*f->async));
        assert_non_null(f->async);
        assert_int_equal(uv_async_init(&f->loop, f->async, on_async), 0);
        f->async->data = f;
        workq_init(&f->q, f->async);
        memset(f->last, 0, sizeof(f->last));
        f->taken = 0;
        pushed = 0;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_take_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_take_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_push_wakes_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_closed_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_producers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_then_free_async, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
