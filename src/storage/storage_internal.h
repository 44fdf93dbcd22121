/* What verify.c and repair.c need of a partition's internals. Private to
 * src/storage; the functions live in partition.c. */
#ifndef BROKER_STORAGE_INTERNAL_H
#define BROKER_STORAGE_INTERNAL_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/partition.h"
#include "segment.h"

/* A segment as it was under the mutex: referenced, with a copy of its
 * index. */
struct segment_snap {
    struct segment *s;
    uint64_t size, next_offset;
    struct segment_index_entry *index;
    size_t index_n;
    bool active;
    uint64_t repairs; /* the partition's repair count then */
};

/* The first listed segment (@have_after false) or the first based after
 * @after. False when there is none (or out of memory). */
bool partition_snap_next(struct partition *p, bool have_after, uint64_t after,
                         struct segment_snap *out);
void segment_snap_free(struct segment_snap *sn);

/* Replace what is known of @s's damage by @d (@n runs). Returns how many
 * of them were not known before (@fresh, when not NULL, says which).
 * Nothing when @s is no longer listed, or when a repair was made since the
 * snapshot the runs were found from (@repairs): they may be stale. */
size_t partition_damage_set(struct partition *p, struct segment *s,
                            const struct segment_damage *d, size_t n,
                            bool *fresh, uint64_t repairs);

/* The damaged run [from, to) with its segment, referenced (for a gap,
 * *@missing: the segment it follows). False when no such run is known. */
bool partition_damage_find(struct partition *p, uint64_t from, uint64_t to,
                           struct segment **s, struct segment_damage *d,
                           bool *active, bool *missing);

/* Under the mutex: if the gap after the listed @prev still ends where the
 * next segment starts, rename @tmp_log and @tmp_index in as @repl's files
 * and list @repl after @prev, forgetting the gap; then fsync the
 * directory. BRK_ECONFLICT when things changed. */
int partition_segment_insert(struct partition *p, struct segment *prev,
                             struct segment *repl, const char *tmp_log,
                             const char *tmp_index, char *errmsg);

/* Forget the damaged run [from, to) of @s (repaired in place). False when
 * it is not known (any more). */
bool partition_damage_drop(struct partition *p, struct segment *s,
                           uint64_t from, uint64_t to);

/* Swap the in-memory index of the closed, listed segment @s for @idx (its
 * ownership passes when true is returned). */
bool partition_index_swap(struct partition *p, struct segment *s,
                          struct segment_index_entry *idx, size_t n);

/* Under the mutex: if @old is listed and not active, rename @tmp_log and
 * @tmp_index over its files, list @repl in its place and forget its
 * damage; then fsync the directory. BRK_ECONFLICT when @old
 * is gone or active. */
int partition_segment_replace(struct partition *p, struct segment *old,
                              struct segment *repl, const char *tmp_log,
                              const char *tmp_index, char *errmsg);

/* Whether @s is still in @p's segment list. */
bool partition_segment_listed(struct partition *p, struct segment *s);

/* Serializes the two background writers of segment files, the
 * verification's index rebuild and a repair, so that one never writes an
 * index over the files the other just renamed in. Appends and reads never
 * take it. */
extern pthread_mutex_t storage_maint_mu;

int partition_dirfd(const struct partition *p);
const char *partition_dir(const struct partition *p);
uint32_t partition_index_interval(const struct partition *p);

#endif
