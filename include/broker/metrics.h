/* Process-wide counters and the produce latency histogram, rendered in
 * Prometheus text format 0.0.4. Any thread (relaxed atomics). */
#ifndef BROKER_METRICS_H
#define BROKER_METRICS_H
#include <stddef.h>
#include <stdint.h>

#include "broker/buf.h"

#define METRICS_MAP(X)                                                        \
    X(MET_PRODUCE_REQUESTS, "broker_produce_requests_total",                 \
      "Produce requests answered with 201.")                                  \
    X(MET_PRODUCE_MESSAGES, "broker_produced_messages_total",                \
      "Messages acknowledged by produce requests.")                           \
    X(MET_PRODUCE_BYTES, "broker_produced_bytes_total",                      \
      "Key, value and header bytes of acknowledged messages.")                \
    X(MET_FETCH_REQUESTS, "broker_fetch_requests_total",                     \
      "Fetch requests answered with 200.")                                    \
    X(MET_FETCH_MESSAGES, "broker_fetched_messages_total",                   \
      "Messages returned by fetches.")                                        \
    X(MET_FETCH_BYTES, "broker_fetched_bytes_total",                         \
      "Key and value bytes returned by fetches.")                             \
    X(MET_CLAIMED_MESSAGES, "broker_claimed_messages_total",                 \
      "Messages handed out by group claims.")                                 \
    X(MET_FORWARDED_REQUESTS, "broker_forwarded_requests_total",             \
      "Write requests this follower relayed to the leader.")                  \
    X(MET_FORWARD_ERRORS, "broker_forward_errors_total",                     \
      "Relays to the leader that failed (no answer, no leader).")             \
    X(MET_REPLICA_DIVERGENCE, "broker_replica_divergence_total",             \
      "Divergent replica partitions found by the leader's digest check.")    \
    X(MET_REPLICA_REPAIRS, "broker_replica_repairs_total",                   \
      "Partition tails this node replaced with the leader's records.")       \
    X(MET_DIGEST_CHECKS, "broker_digest_checks_total",                       \
      "Digest comparisons of a partition with a member (leader).")            \
    X(MET_STORAGE_CORRUPT_RECORDS, "broker_storage_corrupt_records_total",   \
      "Records found damaged by the storage verification.")                   \
    X(MET_STORAGE_SCRUB_BYTES, "broker_storage_scrub_bytes_total",           \
      "Segment bytes read by the storage verification and scrubber.")        \
    X(MET_STORAGE_SCRUB_PASSES, "broker_storage_scrub_passes_total",         \
      "Complete verification passes over every partition.")                  \
    X(MET_STORAGE_INDEX_REBUILDS, "broker_storage_index_rebuilds_total",     \
      "Segment indexes found inconsistent and rebuilt.")                      \
    X(MET_STORAGE_REPAIRED_RANGES, "broker_storage_repaired_ranges_total",   \
      "Damaged ranges repaired with records from a peer.")                    \
    X(MET_STORAGE_REPAIRED_RECORDS, "broker_storage_repaired_records_total", \
      "Records rewritten by repairs from a peer.")                              \
    X(MET_IDEMPOTENT_REPLAYS, "broker_idempotent_replays_total",             \
      "Writes answered from a held Idempotency-Key instead of applied.")      \
    X(MET_RELAY_RETRIES, "broker_relay_retries_total",                       \
      "Keyed relays sent again after the leader died under them.")

#define METRICS__ENUM(id, name, help) id,
enum metric_id { METRICS_MAP(METRICS__ENUM) MET_COUNT };
#undef METRICS__ENUM

#define METRICS_MAX_ROUTES 64

void metrics_add(enum metric_id id, uint64_t n);
uint64_t metrics_get(enum metric_id id);
/* Count one answered HTTP request of route number @route. */
void metrics_http(int route, int status);
void metrics_produce_latency(double seconds);

/* Append the counters, the per-route request counts (route i is named
 * @routes[i]) and the histogram. */
void metrics_render(struct buf *b, const char *const *routes, size_t n_routes);

#endif
