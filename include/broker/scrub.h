/* Storage verification thread: verifies every partition once at start, in
 * the background, then again every scrub_interval, reading at most
 * scrub_bytes_per_s. What it finds is kept in the partitions (damaged
 * ranges, see partition.h), counted in /metrics and logged.
 *
 * Threads: its own; start and stop from main. */
#ifndef BROKER_SCRUB_H
#define BROKER_SCRUB_H
#include <stddef.h>
#include <stdint.h>

#include "broker/topic.h"

struct scrubber;

/* @interval_ms 0: only the pass at start. @reg must outlive the thread. */
int scrubber_start(struct topic_registry *reg, int64_t interval_ms,
                   int64_t bytes_per_s, struct scrubber **out, char *errmsg);

/* Stop (the pass under way ends at its next chunk) and free. NULL is
 * fine. */
void scrubber_stop(struct scrubber *s);

/* Any thread. Damaged ranges known over every partition of @reg. */
size_t storage_damaged_ranges(struct topic_registry *reg);

#endif
