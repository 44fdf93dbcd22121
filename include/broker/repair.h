/* Repair from peers (cluster mode): a thread that re-fetches every damaged
 * range the verification found (partition.h) from a healthy replica — the
 * leader first, then any other member — over GET /internal/records,
 * CRC- and offset-checked, and swaps the rewritten segment in
 * (partition_repair_range) while the node keeps serving.
 *
 * Threads: its own (never the loop thread: the fetch is network I/O and no
 * lock is held across it). See docs/clustering.md. */
#ifndef BROKER_REPAIR_H
#define BROKER_REPAIR_H

#include "broker/node.h"
#include "broker/topic.h"

struct repairer;

int repairer_start(struct node *n, struct topic_registry *reg,
                   struct repairer **out, char *errmsg);

/* Stop (a fetch under way ends within its timeout) and free. NULL is
 * fine. */
void repairer_stop(struct repairer *r);

#endif
