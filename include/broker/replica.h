/* Replica comparison: one thread per node (standalone too, where it only
 * keeps digests built) that
 * - folds partitions' records into their digests after a restart
 *   (digest_build_step), in the background;
 * - on the leader, every digest_interval, compares each partition's
 *   digest with every member's (GET /internal/digest) over the range both
 *   hold, narrows a difference down to the first differing offset, counts
 *   and logs it and tells the member to repair (POST /internal/repair);
 * - on a member told to repair, fetches the leader's records from that
 *   offset, has the loop thread replace its tail with them
 *   (partition_cut_tail + partition_append) and confirms the digests then
 *   agree.
 * See docs/clustering.md, "Replica comparison". */
#ifndef BROKER_REPLICA_H
#define BROKER_REPLICA_H
#include <stddef.h>
#include <stdint.h>

#include "broker/config.h"
#include "broker/node.h"
#include "broker/state.h"
#include "broker/topic.h"

/* A difference found by the last check (on the leader). */
struct replica_divergence {
    uint64_t node_id;
    char topic[TOPIC_NAME_MAX + 1];
    uint32_t partition;
    uint64_t offset;               /* first differing offset */
};
#define REPLICA_MAX_DIVERGENCE 64

/* Start the thread. One per process. */
int replica_start(struct node *n, const struct config *cfg, struct state *st,
                  char *errmsg);
/* Stop and join it; before node_stop. Safe when never started. */
void replica_stop(void);

/* Any thread: queue a repair of @topic/@p from @offset on (this node must
 * be a follower). BRK_EUNAVAILABLE when the thread does not run,
 * BRK_ECONFLICT when too many repairs are queued. */
int replica_request_repair(const char *topic, uint32_t p, uint64_t offset,
                           char *errmsg);

/* Any thread: the differences the last completed check found (at most
 * @max copied into @out); returns how many. */
size_t replica_divergence(struct replica_divergence *out, size_t max);

#endif
