/* Topic registry: the topics of this broker, each with its partitions,
 * persisted under data_dir/topics/<name>/ (topic.json + one directory per
 * partition).
 *
 * Threads: create/delete/close on the loop thread only; get/list from any
 * thread. A topic returned by topic_registry_get is referenced and stays
 * valid (even if deleted meanwhile) until topic_put. */
#ifndef BROKER_TOPIC_H
#define BROKER_TOPIC_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/partition.h"

#define TOPIC_NAME_MAX 249

struct waiter; /* long-poll waiters, see waiters.h (loop thread only) */

struct topic {
    char name[TOPIC_NAME_MAX + 1];
    uint32_t n_partitions;
    int64_t retention_ms;        /* -1: the broker's retention_time */
    uint64_t created_index;      /* command index that created it */
    struct partition **partitions;
    atomic_uint next_partition;  /* round-robin for key-less records */
    atomic_int refs;
    atomic_bool deleted;
    struct waiter **waiters;     /* per partition; loop thread only */
    struct waiter *claim_waiters;/* claims waiting for any partition */
    char dir[1300];
};

struct topic_registry;

/* True when @name matches ^[A-Za-z0-9._-]{1,249}$ and is not "." or "..".
 * Also used for group names. */
bool topic_name_valid(const char *name);

/* Open the registry under @data_dir: loads every topic (recovering its
 * partitions), removes leftovers of interrupted creates and deletes. */
int topic_registry_open(const char *data_dir,
                        const struct partition_options *popt,
                        struct topic_registry **out, char *errmsg);
void topic_registry_close(struct topic_registry *reg);

/* Referenced topic or NULL. Any thread. */
struct topic *topic_registry_get(struct topic_registry *reg, const char *name);
void topic_get(struct topic *t);
void topic_put(struct topic *t);

/* Loop thread. Create the directories, partitions and topic.json (fsync'd).
 * BRK_ETOPIC_EXISTS when present. *@out (may be NULL) is borrowed. */
int topic_registry_create(struct topic_registry *reg, const char *name,
                          uint32_t n_partitions, int64_t retention_ms,
                          uint64_t cmd_index, struct topic **out,
                          char *errmsg);

/* Loop thread. Remove the topic from the registry and its files from disk.
 * BRK_EUNKNOWN_TOPIC when absent. */
int topic_registry_delete(struct topic_registry *reg, const char *name,
                          char *errmsg);

/* Any thread. Referenced topics sorted by name; release with
 * topic_list_free. */
int topic_registry_list(struct topic_registry *reg, struct topic ***out,
                        size_t *n);
void topic_list_free(struct topic **list, size_t n);

/* Sum of size_bytes over every partition. Any thread. */
uint64_t topic_registry_size_bytes(struct topic_registry *reg);

#endif
