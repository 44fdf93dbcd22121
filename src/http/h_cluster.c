/* /cluster: status, leader, members, Raft figures, membership changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_internal.h"

static json_t *member_json(const struct node_member *m)
{
    return json_pack("{s:I, s:s, s:s, s:s}", "node_id", (json_int_t)m->id,
                     "raft_address", m->raft_address, "http_address",
                     m->http_address, "role", node_role_name(m->role));
}

static json_t *leader_json(const struct node_status *st)
{
    if (st->leader_id == 0)
        return json_null();
    return json_pack("{s:I, s:s, s:s}", "node_id", (json_int_t)st->leader_id,
                     "raft_address", st->leader.raft_address, "http_address",
                     st->leader.http_address);
}

static json_t *members_json(const struct node_status *st)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; i < st->n_members; i++)
        json_array_append_new(arr, member_json(&st->members[i]));
    return arr;
}

static size_t topic_count(struct http_req *r)
{
    struct topic **list;
    size_t n = 0;

    if (topic_registry_list(r->srv->deps.st->topics, &list, &n) == 0)
        topic_list_free(list, n);
    return n;
}

enum MHD_Result h_cluster_status(struct http_req *r)
{
    struct node_status st;
    time_t now = time(NULL);

    node_status(r->srv->deps.node, &st);
    return http_reply_json(
        r, 200,
        json_pack("{s:I, s:s, s:s, s:I, s:o, s:I, s:I, s:I, s:o, s:I, s:I}",
                  "node_id", (json_int_t)st.node_id, "mode",
                  st.cluster ? "cluster" : "standalone", "state",
                  node_state_name(st.state), "term", (json_int_t)st.term,
                  "leader", leader_json(&st), "commit_index",
                  (json_int_t)st.commit_index, "applied_index",
                  (json_int_t)st.applied_index, "last_log_index",
                  (json_int_t)st.last_log_index, "members", members_json(&st),
                  "topics", (json_int_t)topic_count(r), "uptime_s",
                  (json_int_t)(now - st.started_ms / 1000)));
}

enum MHD_Result h_cluster_leader(struct http_req *r)
{
    struct node_status st;

    node_status(r->srv->deps.node, &st);
    if (st.leader_id == 0)
        return http_reply_error(r, BRK_ENO_LEADER, "no leader is known right "
                                "now (election in progress?)");
    return http_reply_json(r, 200, leader_json(&st));
}

enum MHD_Result h_cluster_members(struct http_req *r)
{
    struct node_status st;

    node_status(r->srv->deps.node, &st);
    return http_reply_json(r, 200,
                           json_pack("{s:o}", "members", members_json(&st)));
}

enum MHD_Result h_cluster_raft(struct http_req *r)
{
    struct node_status st;

    node_status(r->srv->deps.node, &st);
    return http_reply_json(
        r, 200,
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "term",
                  (json_int_t)st.term, "commit_index",
                  (json_int_t)st.commit_index, "applied_index",
                  (json_int_t)st.applied_index, "last_log_index",
                  (json_int_t)st.last_log_index, "snapshot_index",
                  (json_int_t)st.snapshot_index, "snapshots_taken",
                  (json_int_t)st.snapshots_taken, "elections",
                  (json_int_t)st.elections, "leader_changes",
                  (json_int_t)st.leader_changes, "log_entries",
                  (json_int_t)st.log_entries));
}

static enum MHD_Result not_cluster(struct http_req *r)
{
    return http_reply_error(r, BRK_EINVAL, "cluster mode is not enabled on "
                            "this broker (cluster.enabled is false)");
}

enum MHD_Result h_cluster_member_add(struct http_req *r)
{
    return not_cluster(r);
}

enum MHD_Result h_cluster_member_remove(struct http_req *r)
{
    return not_cluster(r);
}

enum MHD_Result h_cluster_transfer(struct http_req *r)
{
    return not_cluster(r);
}
