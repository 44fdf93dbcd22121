/* Operations: /healthz, /readyz, /metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/metrics.h"
#include "broker/scrub.h"
#include "http_internal.h"

enum MHD_Result h_healthz(struct http_req *r)
{
    return http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

enum MHD_Result h_readyz(struct http_req *r)
{
    struct node_status st;

    node_status(r->srv->deps.node, &st);
    if (st.leader_id == 0)
        return http_reply_error(r, BRK_EUNAVAILABLE, "not ready: no leader "
                                "is known");
    if (st.catching_up)
        return http_reply_error(r, BRK_EUNAVAILABLE, "not ready: fetching "
                                "the records of a snapshot from the leader");
    return http_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

static void render_storage(struct http_req *r, struct buf *b)
{
    struct topic **list;
    size_t n, i;
    uint32_t p, parts = 0;
    uint64_t bytes = 0;
    struct partition_stats st;

    if (topic_registry_list(r->srv->deps.st->topics, &list, &n) != 0)
        return;
    for (i = 0; i < n; i++)
        for (p = 0; p < list[i]->n_partitions; p++, parts++) {
            partition_stats(list[i]->partitions[p], &st);
            bytes += st.size_bytes;
        }
    topic_list_free(list, n);
    buf_printf(b, "# HELP broker_topics Topics on this node.\n"
                  "# TYPE broker_topics gauge\nbroker_topics %zu\n"
                  "# HELP broker_partitions Partitions on this node.\n"
                  "# TYPE broker_partitions gauge\nbroker_partitions %u\n"
                  "# HELP broker_disk_bytes Bytes of segment files.\n"
                  "# TYPE broker_disk_bytes gauge\nbroker_disk_bytes %llu\n",
               n, parts, (unsigned long long)bytes);
    buf_printf(b, "# HELP broker_storage_damaged_ranges Damaged ranges known "
                  "on this node, not repaired yet.\n"
                  "# TYPE broker_storage_damaged_ranges gauge\n"
                  "broker_storage_damaged_ranges %zu\n",
               storage_damaged_ranges(r->srv->deps.st->topics));
}

static void gauge(struct buf *b, const char *name, const char *help,
                  const char *type, uint64_t v)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name,
               type, name, (unsigned long long)v);
}

static void render_node(struct http_req *r, struct buf *b)
{
    struct node_status st;
    static const char *roles[] = {"leader", "follower", "candidate",
                                  "unavailable"};
    size_t i;

    node_status(r->srv->deps.node, &st);
    gauge(b, "broker_longpoll_waiters", "Parked long polls and claims.",
          "gauge", st.waiters);
    gauge(b, "broker_raft_term", "Current Raft term.", "gauge", st.term);
    gauge(b, "broker_raft_commit_index", "Raft commit index.", "gauge",
          st.commit_index);
    gauge(b, "broker_raft_applied_index", "Last applied Raft index.", "gauge",
          st.applied_index);
    gauge(b, "broker_raft_last_log_index", "Last Raft log index.", "gauge",
          st.last_log_index);
    gauge(b, "broker_raft_elections_total", "Elections this node started.",
          "counter", st.elections);
    gauge(b, "broker_raft_leader_changes_total", "Leader changes seen.",
          "counter", st.leader_changes);
    gauge(b, "broker_raft_snapshots_total", "Snapshots taken.", "counter",
          st.snapshots_taken);
    buf_puts(b, "# HELP broker_raft_state Current role (1 for the role this "
                "node is in).\n# TYPE broker_raft_state gauge\n");
    for (i = 0; i < 4; i++)
        buf_printf(b, "broker_raft_state{state=\"%s\"} %d\n", roles[i],
                   strcmp(node_state_name(st.state), roles[i]) == 0);
}

enum MHD_Result h_metrics(struct http_req *r)
{
    struct buf b;
    size_t n;
    const char *const *names = router_route_names(&n);

    buf_init(&b);
    metrics_render(&b, names, n);
    render_storage(r, &b);
    render_node(r, &b);
    if (b.oom) {
        buf_free(&b);
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    }
    return http_reply_raw(r, 200, "text/plain; version=0.0.4", b.data, b.len);
}
