/* The broker's state machine: topics, partitions and group offsets, and the
 * one function that changes them (state_apply). Standalone mode and every
 * Raft node apply the same commands through it.
 *
 * Threads: state_apply and state_open/close on the loop thread only. */
#ifndef BROKER_STATE_H
#define BROKER_STATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/cmd.h"
#include "broker/config.h"
#include "broker/group.h"
#include "broker/idem.h"
#include "broker/topic.h"

struct state {
    const struct config *cfg;
    struct topic_registry *topics;
    struct group_store *groups;
    struct idem_table *idem;        /* idempotency keys (idem.h) */
};

/* What one batch of applies changed, for the caller to make durable,
 * publish and wake waiters. Holds references on the topics it names. */
struct state_touched {
    struct topic *topic;
    uint32_t partition;
};

struct state_effects {
    struct state_touched *touched;  /* partitions appended to */
    size_t n_touched, cap_touched;
    struct topic **deleted;         /* topics deleted */
    size_t n_deleted, cap_deleted;
    bool groups_changed;
    bool failed;                    /* allocation failure while recording */
};

void state_effects_clear(struct state_effects *fx);

int state_open(struct state *s, const struct config *cfg, char *errmsg);
void state_close(struct state *s);

/* Highest command index already written to storage (standalone restarts
 * continue their sequence after it). */
uint64_t state_last_index(struct state *s);

/* Apply @c as command number @index with the leader's timestamp @now_ms.
 * Business errors go to @res (err, errmsg). Replay after a restart: a
 * produce appends to a partition only the records it does not hold yet
 * (none when a newer command wrote there; the rest when the partition's
 * tail holds the first records of this very command, as a cut tail
 * leaves it) and reports every record's offset. Never fails as a whole.
 * A command carrying an idempotency key already held is not applied again:
 * @res gets the stored answer (res->replayed), or BRK_EIDEM_REUSED /
 * BRK_EIDEM_FULL. */
void state_apply(struct state *s, const struct cmd *c, uint64_t index,
                 int64_t now_ms, struct cmd_result *res,
                 struct state_effects *fx);

/* Whether commands of type @t change group offsets (and are numbered in
 * the groups' applied index). */
bool state_cmd_changes_groups(enum cmd_type t);

/* Whether the file system of data_dir has less than @bytes (plus a small
 * reserve for indexes and metadata) free for this process: a produce is
 * refused with 507 before anything is written or proposed. Any thread. */
bool state_disk_full(struct state *s, uint64_t bytes, uint64_t *free_bytes);

/* Whether @bytes more would pass max_storage_size. Any thread. */
bool state_storage_full(struct state *s, uint64_t bytes);

/* Kafka's default partitioner: murmur2(key) & 0x7fffffff % n. Stable
 * across restarts, nodes and Kafka clients. */
uint32_t state_partition_for_key(const uint8_t *key, size_t len, uint32_t n);
uint32_t murmur2(const uint8_t *data, size_t len);

#endif
