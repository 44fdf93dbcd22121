/* A unit of work handed from an HTTP thread to the loop thread, and the
 * queue that carries it (mutex + uv_async_send). */
#ifndef BROKER_WORK_H
#define BROKER_WORK_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "broker/cmd.h"
#include "broker/topic.h"

enum work_type {
    WORK_CMD,   /* apply a command (through Raft in a cluster) */
    WORK_WAIT,  /* long poll: finish when (topic, partition) passes offset */
    WORK_CALL,  /* run @call on the loop thread (status, admin) */
};

struct work;
struct node;
typedef void (*work_done_cb)(struct work *w);
/* Runs on the loop thread; returns true when @w is finished, false when it
 * finishes later (the callee then calls @w->done once). */
typedef bool (*work_call_cb)(struct work *w, struct node *node);

struct work {
    struct work *next;         /* queue link; owned by whoever holds it */
    enum work_type type;
    struct cmd cmd;            /* WORK_CMD, owned */
    struct cmd_result res;     /* filled on the loop thread */
    struct topic *topic;       /* WORK_WAIT: referenced by the submitter */
    uint32_t partition;        /* WORK_WAIT */
    uint64_t offset;           /* WORK_WAIT */
    uint32_t wait_ms;          /* WORK_WAIT; WORK_CMD claims: wait if empty */
    uint64_t deadline_ms;      /* set by the loop: uv_now() + wait_ms */
    work_call_cb call;         /* WORK_CALL */
    uint64_t arg_id;           /* WORK_CALL arguments (membership, transfer) */
    char arg_addr[256];
    char arg_addr2[256];
    work_done_cb done;         /* loop thread, exactly once; @w is then the
                                  submitter's again */
    void *data;                /* submitter's context */
};

struct workq {
    pthread_mutex_t lock;
    struct work *head, *tail;
    uv_async_t *async;         /* signalled on push */
    bool closed;
};

void workq_init(struct workq *q, uv_async_t *async);
void workq_destroy(struct workq *q);
/* Any thread. Returns BRK_ESHUTDOWN (and does not take @w) once closed. */
int workq_push(struct workq *q, struct work *w);
/* Loop thread. Take everything queued, oldest first (NULL if empty). */
struct work *workq_take_all(struct workq *q);
/* Refuse further pushes. */
void workq_close(struct workq *q);

#endif
