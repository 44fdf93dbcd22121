/* Consumer groups: committed offsets per (group, topic, partition), kept in
 * memory and persisted as data_dir/groups.json.
 *
 * Threads: changes on the loop thread only; reads (get, JSON views) from
 * any thread. Persisting is split: serialize on the loop thread, write
 * (fsync) from any thread. */
#ifndef BROKER_GROUP_H
#define BROKER_GROUP_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct group_store;

int group_store_open(const char *data_dir, struct group_store **out,
                     char *errmsg);
void group_store_close(struct group_store *gs);

/* Loop thread. Set the committed offset (the next offset to read). */
int group_commit(struct group_store *gs, const char *group, const char *topic,
                 uint32_t partition, uint64_t offset);

/* Any thread. 0 with *@offset, or BRK_ENOT_FOUND when never committed. */
int group_offset(struct group_store *gs, const char *group, const char *topic,
                 uint32_t partition, uint64_t *offset);

/* Loop thread. BRK_EUNKNOWN_GROUP when absent. */
int group_delete(struct group_store *gs, const char *group);

/* Loop thread. Forget every group's offsets for a deleted topic. */
void group_forget_topic(struct group_store *gs, const char *topic);

/* Any thread. New references: ["a", "b"] sorted; and the offsets of
 * @group as [{"topic","partition","offset"}] (only @topic if not NULL), or
 * NULL when the group does not exist. */
json_t *group_list_json(struct group_store *gs);
json_t *group_offsets_json(struct group_store *gs, const char *group,
                           const char *topic);

/* Loop thread. The store as text, or NULL when nothing changed since the
 * last call (or on allocation failure: then *@err is set). Caller frees. */
char *group_store_take_dirty(struct group_store *gs, bool *err);

/* Any thread. Write text from group_store_take_dirty durably. */
int group_store_write(struct group_store *gs, const char *text, char *errmsg);

/* Loop thread. Writing groups.json failed (disk full, read-only): go back
 * to what the file holds, so that nothing answered as failed stays
 * visible. 0, or an error with the in-memory state kept and marked dirty. */
int group_store_revert(struct group_store *gs, char *errmsg);

/* Loop thread. Write again at the next flush (a flush's write failed). */
void group_store_mark_dirty(struct group_store *gs);

/* Index of the last command applied to the groups (persisted with them);
 * replayed commands at or below it are skipped. Loop thread. */
uint64_t group_store_applied_index(struct group_store *gs);
void group_store_set_applied_index(struct group_store *gs, uint64_t index);

/* Loop thread. Whole state as JSON text (snapshots) and its restore. */
char *group_store_dump(struct group_store *gs);
int group_store_load_text(struct group_store *gs, const char *text,
                          char *errmsg);

#endif
