/* /cluster: status, leader, members, Raft figures, membership changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/addr.h"
#include "broker/forward.h"
#include "broker/idem.h"
#include "broker/metrics.h"
#include "broker/replica.h"
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

#define STATUS_MAX_DAMAGE 64 /* ranges listed per partition */

/* [{"topic", "partition", "from", "to"}] of every damaged range known. */
static json_t *storage_damage_json(struct http_req *r)
{
    struct partition_damage d[STATUS_MAX_DAMAGE];
    json_t *arr = json_array();
    struct topic **list;
    size_t n, i, k, j;
    uint32_t p;

    if (topic_registry_list(r->srv->deps.st->topics, &list, &n) != 0)
        return arr;
    for (i = 0; i < n; i++)
        for (p = 0; p < list[i]->n_partitions; p++) {
            k = partition_damage(list[i]->partitions[p], d, STATUS_MAX_DAMAGE);
            for (j = 0; j < k && j < STATUS_MAX_DAMAGE; j++)
                json_array_append_new(
                    arr, json_pack("{s:s, s:I, s:I, s:I}", "topic",
                                   list[i]->name, "partition", (json_int_t)p,
                                   "from", (json_int_t)d[j].from, "to",
                                   (json_int_t)d[j].to));
        }
    topic_list_free(list, n);
    return arr;
}

/* "storage": "ok" | "degraded" with "storage_damage" (see docs/storage.md). */
static json_t *add_storage_damage(json_t *o, struct http_req *r)
{
    json_t *dmg = storage_damage_json(r);

    if (o == NULL) {
        json_decref(dmg);
        return NULL;
    }
    json_object_set_new(o, "storage", json_string(json_array_size(dmg) > 0
                                                      ? "degraded"
                                                      : "ok"));
    json_object_set_new(o, "storage_damage", dmg);
    return o;
}

static json_t *status_json(struct http_req *r, const struct node_status *st)
{
    time_t now = time(NULL);

    /* The two message counters let one node's dashboard show cluster-wide
     * rates from /cluster/overview (a follower's produces count on the
     * leader). */
    return add_storage_damage(json_pack(
        "{s:I, s:s, s:s, s:I, s:o, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I}",
        "node_id",
        (json_int_t)st->node_id, "mode", st->cluster ? "cluster" : "standalone",
        "state", node_state_name(st->state), "term", (json_int_t)st->term,
        "leader", leader_json(st), "commit_index", (json_int_t)st->commit_index,
        "applied_index", (json_int_t)st->applied_index, "last_log_index",
        (json_int_t)st->last_log_index, "members", members_json(st), "topics",
        (json_int_t)topic_count(r), "uptime_s",
        (json_int_t)(now - st->started_ms / 1000), "produced_messages_total",
        (json_int_t)metrics_get(MET_PRODUCE_MESSAGES),
        "fetched_messages_total", (json_int_t)metrics_get(MET_FETCH_MESSAGES)),
        r);
}

/* "storage_writable", and "storage_error" (a sentence, no paths) when
 * the last write to data_dir failed. */
static void add_storage(struct http_req *r, const struct node_status *st,
                        json_t *o)
{
    char text[BRK_ERRMSG_LEN + 256];

    json_object_set_new(o, "storage_writable",
                        json_boolean(!st->storage_unwritable));
    if (!st->storage_unwritable)
        return;
    http_redact_paths(r, st->storage_error, text, sizeof(text));
    json_object_set_new(o, "storage_error", json_string(text));
}

/* What the leader's last digest check found (replica comparison). */
static json_t *divergence_json(void)
{
    struct replica_divergence d[REPLICA_MAX_DIVERGENCE];
    size_t n = replica_divergence(d, REPLICA_MAX_DIVERGENCE), i;
    json_t *arr = json_array();

    for (i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:I, s:s, s:I, s:I}", "node_id",
                           (json_int_t)d[i].node_id, "topic", d[i].topic,
                           "partition", (json_int_t)d[i].partition, "offset",
                           (json_int_t)d[i].offset));
    return arr;
}

enum MHD_Result h_cluster_status(struct http_req *r)
{
    struct node_status st;
    json_t *o;

    node_status(r->srv->deps.node, &st);
    o = status_json(r, &st);
    if (o != NULL) {
        add_storage(r, &st, o);
        json_object_set_new(o, "divergence", divergence_json());
        /* Keys held by this node's state machine (the same on every
         * replica once it has applied the same entries). */
        json_object_set_new(o, "idempotency_keys",
                            json_integer((json_int_t)idem_count(
                                r->srv->deps.st->idem)));
    }
    return http_reply_json(r, 200, o);
}

/* ==== overview: every member's status, fetched by this node ==== */

#define OVERVIEW_TIMEOUT_MS 800L

static json_t *remote_status(const struct node_member *m, const char *self)
{
    struct forward_request req = {.method = "GET", .base = m->http_address,
                                  .path = "/cluster/status",
                                  .forwarded_by = self,
                                  .timeout_ms = OVERVIEW_TIMEOUT_MS};
    struct forward_response resp;
    char errmsg[BRK_ERRMSG_LEN];
    json_t *o = NULL;

    if (m->http_address[0] != '\0' &&
        forward_call(&req, &resp, errmsg) == 0) {
        if (resp.status == 200)
            o = json_loadb(resp.body, resp.len, 0, NULL);
        forward_response_free(&resp);
    }
    if (o == NULL)
        return json_pack("{s:I, s:s, s:b, s:s}", "node_id", (json_int_t)m->id,
                         "http_address", m->http_address, "reachable", 0,
                         "error", m->http_address[0] ? "unreachable"
                                                     : "address unknown");
    json_object_set_new(o, "reachable", json_true());
    json_object_del(o, "members");
    return o;
}

/* GET /cluster/overview: the status of every member as seen from here, so
 * that the dashboard talks to one node only. */
enum MHD_Result h_cluster_overview(struct http_req *r)
{
    struct node_status st;
    json_t *nodes = json_array();
    int i;

    node_status(r->srv->deps.node, &st);
    for (i = 0; i < st.n_members; i++) {
        json_t *o;
        if (st.members[i].id != st.node_id) {
            json_array_append_new(nodes,
                                  remote_status(&st.members[i], r->srv->node_id));
            continue;
        }
        o = status_json(r, &st);
        add_storage(r, &st, o);
        json_object_set_new(o, "reachable", json_true());
        json_object_del(o, "members");
        json_array_append_new(nodes, o);
    }
    return http_reply_json(r, 200,
                           json_pack("{s:I, s:o, s:o, s:o}", "node_id",
                                     (json_int_t)st.node_id, "leader",
                                     leader_json(&st), "members",
                                     members_json(&st), "nodes", nodes));
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

/* ==== membership and leadership (leader only; forwarded) ==== */

static enum MHD_Result admin_done(struct http_req *r)
{
    struct node_status st;

    if (r->work->res.err != 0)
        return http_reply_error(r, r->work->res.err, "%s",
                                r->work->res.errmsg);
    node_status(r->srv->deps.node, &st);
    return http_reply_json(r, 200,
                           json_pack("{s:o, s:o}", "members", members_json(&st),
                                     "leader", leader_json(&st)));
}

static enum MHD_Result submit_call(struct http_req *r, work_call_cb call,
                                   uint64_t id, const char *raft,
                                   const char *http)
{
    struct work *w = http_work_new(r, WORK_CALL);

    if (w == NULL)
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    w->call = call;
    w->arg_id = id;
    snprintf(w->arg_addr, sizeof(w->arg_addr), "%s", raft ? raft : "");
    snprintf(w->arg_addr2, sizeof(w->arg_addr2), "%s", http ? http : "");
    return http_submit(r, w, admin_done);
}

/* Body fields of POST /cluster/members and of the transfer. */
static const char *const member_add_fields[] = {"node_id", "raft_address",
                                                "http_address", NULL};
static const char *const transfer_fields[] = {"node_id", NULL};

enum MHD_Result h_cluster_member_add(struct http_req *r)
{
    enum MHD_Result ret;
    json_t *body = http_body_fields(r, member_add_fields, &ret);
    const char *raft, *http;
    char resolved[CONFIG_ADDR_MAX], why[192];
    uint64_t id;

    if (body == NULL)
        return ret;
    raft = json_string_value(json_object_get(body, "raft_address"));
    http = json_string_value(json_object_get(body, "http_address"));
    if (!http_json_u64(r, body, "node_id", "node_id", 1, UINT32_MAX, 0, &id,
                       &ret)) {
        json_decref(body);
        return ret;
    }
    if (id == 0 || raft == NULL || (http && !addr_http_valid(http))) {
        json_decref(body);
        return http_reply_error(r, BRK_EINVAL, "fields 'node_id' (>= 1) and "
                                "'raft_address' (host:port) are required; "
                                "'http_address' must be host:port");
    }
    /* Resolved here, on an HTTP thread: c-raft takes numeric IPv4 only. */
    if (config_resolve_raft_address(raft, resolved, sizeof(resolved), why,
                                    sizeof(why)) != 0) {
        json_decref(body);
        return http_reply_error(r, BRK_EINVAL, "field 'raft_address': %s",
                                why);
    }
    ret = submit_call(r, node_call_member_add, id, resolved, http);
    json_decref(body);
    return ret;
}

enum MHD_Result h_cluster_member_remove(struct http_req *r)
{
    uint64_t id;

    if (r->param_bad[0] || !http_parse_u64(r->params[0], UINT32_MAX, &id) ||
        id == 0)
        return http_reply_error(r, BRK_EINVAL, "member id must be a positive "
                                "integer");
    return submit_call(r, node_call_member_remove, id, NULL, NULL);
}

enum MHD_Result h_cluster_transfer(struct http_req *r)
{
    enum MHD_Result ret;
    json_t *body = NULL;
    uint64_t id = 0;

    if (r->body_len > 0 &&
        (body = http_body_fields(r, transfer_fields, &ret)) == NULL)
        return ret;
    if (body != NULL && !http_json_u64(r, body, "node_id", "node_id", 1,
                                       UINT32_MAX, 0, &id, &ret)) {
        json_decref(body);
        return ret;
    }
    json_decref(body);
    return submit_call(r, node_call_transfer, id, NULL, NULL);
}
