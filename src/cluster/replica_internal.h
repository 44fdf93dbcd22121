/* Internals of the replica comparison thread (replica.c), shared with
 * its leader check (replica_check.c), repair (replica_repair.c) and remote
 * digest client (replica_digest.c). Everything here runs on the replica
 * thread unless marked. */
#ifndef BROKER_REPLICA_INTERNAL_H
#define BROKER_REPLICA_INTERNAL_H
#include <stdbool.h>
#include <stdint.h>

#include "broker/digest.h"
#include "broker/replica.h"
#include "node_internal.h"

#define REPLICA_CALL_TIMEOUT_MS 10000L

struct replica_job {
    char topic[TOPIC_NAME_MAX + 1];
    uint32_t partition;
    uint64_t offset;
};

/* replica.c. Any thread: the thread is told to stop (or the process is
 * shutting down its node-to-node calls). */
bool replica_stopping(void);
/* What the last check found (replaces the previous list). */
void replica_set_divergence(const struct replica_divergence *d, size_t n);

/* replica_digest.c */
/* Fetch @base's digest of @t/@p over [@from, @to) in steps of @step into
 * @r (free with digest_range_free), its chunk size into *@chunk. 1 when the
 * member has no such partition (yet), or another incarnation of the
 * topic; BRK_E* otherwise. */
int replica_remote_range(const char *base, struct topic *t, uint32_t p,
                         uint64_t from, uint64_t to, uint32_t step,
                         uint32_t *chunk, struct digest_range *r,
                         char *errmsg);
/* First entry start where @a and @b (same step, aligned starts) hold
 * entries of the same extent with different checksums; UINT64_MAX when
 * they agree wherever both can be compared. *@end gets that entry's end. */
uint64_t replica_first_difference(const struct digest_range *a,
                                  const struct digest_range *b,
                                  uint64_t *end);

/* replica_check.c: the leader's comparison of every partition with every
 * member. */
void replica_check_all(struct node *n, struct state *st);

/* replica_repair.c: replace this node's tail of @job's partition from
 * @job->offset on with the leader's records. */
void replica_repair(struct node *n, struct state *st,
                    const struct replica_job *job);

#endif
