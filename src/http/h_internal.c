/* Node-to-node endpoints: records for snapshot catch-up, members
 * registering their HTTP address with the leader, whoami (which the
 * leader calls back to check an announced address), replica digests and
 * repair orders. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/addr.h"
#include "broker/forward.h"
#include "broker/digest.h"
#include "broker/replica.h"
#include "http_internal.h"

#define INTERNAL_MAX_BYTES (16u << 20)
#define MEMBER_VERIFY_TIMEOUT_MS 2000L

/* GET /internal/records/{topic}/{p}?from=N&max_bytes=M: the encoded
 * records (CRC included) from offset N, as stored. */
enum MHD_Result h_internal_records(struct http_req *r)
{
    enum MHD_Result ret;
    uint64_t p, from, max;
    struct topic *t;
    struct partition_read_result res = {0};
    char errmsg[BRK_ERRMSG_LEN];
    struct partition_stats st;
    uint8_t *out;
    size_t i, total, used;
    int rv;

    if (!http_param_topic(r, 0, &ret))
        return ret;
    if (r->param_bad[1] || !http_parse_u64(r->params[1], UINT32_MAX, &p))
        return http_reply_error(r, BRK_EINVAL, "bad partition");
    if (!http_query_u64(r, "from", 0, INT64_MAX, 0, &from, &ret) ||
        !http_query_u64(r, "max_bytes", 1, INTERNAL_MAX_BYTES,
                        INTERNAL_MAX_BYTES, &max, &ret))
        return ret;
    t = topic_registry_get(r->srv->deps.st->topics, r->params[0]);
    if (t == NULL || p >= t->n_partitions) {
        topic_put(t);
        return http_reply_error(r, BRK_EUNKNOWN_PARTITION, "unknown partition");
    }
    rv = partition_read(t->partitions[p], from, 100000, (size_t)max, &res,
                        errmsg);
    partition_stats(t->partitions[p], &st);
    topic_put(t);
    if (rv != 0) {
        partition_read_result_free(&res);
        /* The range lets a catching-up node restart at our log start. */
        return http_reply_error_with(
            r, rv,
            json_pack("{s:I, s:I}", "log_start_offset",
                      (json_int_t)st.log_start_offset, "high_watermark",
                      (json_int_t)st.high_watermark),
            errmsg);
    }
    for (i = 0, total = 0; i < res.n; i++)
        total += record_encoded_size(&res.recs[i]);
    out = malloc(total ? total : 1);
    for (i = 0, used = 0; out != NULL && i < res.n; i++)
        used += record_encode(&res.recs[i], out + used, total - used);
    partition_read_result_free(&res);
    if (out == NULL)
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    return http_reply_raw(r, 200, "application/octet-stream", (char *)out,
                          used);
}

/* GET /internal/whoami: who answers at this address. The leader calls it
 * back before it records an announced address. */
enum MHD_Result h_internal_whoami(struct http_req *r)
{
    const struct config *cfg = r->srv->deps.cfg;
    struct node_status st;

    node_status(r->srv->deps.node, &st);
    return http_reply_json(
        r, 200,
        json_pack("{s:I, s:s, s:s}", "node_id", (json_int_t)st.node_id,
                  "http_address", cfg->server.advertise, "raft_address",
                  cfg->cluster.raft_address));
}

static enum MHD_Result member_done(struct http_req *r)
{
    if (r->work->res.err != 0)
        return http_reply_error(r, r->work->res.err, "%s",
                                r->work->res.errmsg);
    return http_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

/* Without a cluster secret, an announcement must come from the host of
 * the member's Raft address (numeric IPv4, see config_raft_address_valid);
 * IPv4-mapped IPv6 peers count as IPv4. */
static bool from_raft_host(struct http_req *r, const char *raft)
{
    const struct sockaddr *sa = http_client_addr(r);
    struct in_addr want, got;
    char host[64];

    if (sa == NULL || !addr_host(raft, host, sizeof(host)) ||
        inet_pton(AF_INET, host, &want) != 1)
        return false;
    if (sa->sa_family == AF_INET) {
        got = ((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6 &&
               IN6_IS_ADDR_V4MAPPED(
                   &((const struct sockaddr_in6 *)sa)->sin6_addr)) {
        memcpy(&got, &((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr[12],
               4);
    } else {
        return false;
    }
    return got.s_addr == want.s_addr;
}

/* Call @http back: only the node itself may be recorded there. Runs on
 * the HTTP thread (a blocking call, bounded), never on the loop. */
static int verify_callback(const char *http, uint64_t id, char *errmsg)
{
    struct forward_response resp;
    struct forward_request req = {.method = "GET", .base = http,
                                  .path = "/internal/whoami",
                                  .timeout_ms = MEMBER_VERIFY_TIMEOUT_MS};
    json_t *o;
    json_int_t got;
    int rv = forward_call(&req, &resp, errmsg);

    if (rv != 0)
        return brk_errf(errmsg, BRK_EFORWARD, "the announced address did "
                        "not answer GET /internal/whoami");
    o = resp.status == 200 ? json_loadb(resp.body ? resp.body : "", resp.len,
                                        0, NULL)
                           : NULL;
    got = json_integer_value(json_object_get(o, "node_id"));
    json_decref(o);
    forward_response_free(&resp);
    if (got <= 0 || (uint64_t)got != id)
        return brk_errf(errmsg, BRK_EFORBIDDEN, "the announced address does "
                        "not answer as node %llu", (unsigned long long)id);
    return 0;
}

/* The member @id of the Raft configuration, or NULL. */
static const struct node_member *find_member(const struct node_status *st,
                                             uint64_t id)
{
    int i;

    for (i = 0; i < st->n_members; i++)
        if (st->members[i].id == id)
            return &st->members[i];
    return NULL;
}

/* Who may set member @id's address to @http (see docs/security.md). */
static int check_announcement(struct http_req *r, uint64_t id,
                              const char *http, char *errmsg)
{
    struct node_status st;
    const struct node_member *m;

    node_status(r->srv->deps.node, &st);
    if (!st.cluster)
        return brk_errf(errmsg, BRK_EINVAL, "cluster mode is not enabled");
    if (st.state != NODE_STATE_LEADER || st.leader_id != st.node_id)
        return brk_errf(errmsg, BRK_ENO_LEADER, "this node is not the "
                        "leader; announce to the leader");
    if (id == st.node_id)
        return brk_errf(errmsg, BRK_ECONFLICT, "node %llu is the leader: it "
                        "records its own address", (unsigned long long)id);
    if ((m = find_member(&st, id)) == NULL)
        return brk_errf(errmsg, BRK_EUNKNOWN_MEMBER, "node %llu is not a "
                        "member of the cluster", (unsigned long long)id);
    if (r->srv->deps.cfg->cluster.secret[0] == '\0' &&
        !from_raft_host(r, m->raft_address))
        return brk_errf(errmsg, BRK_EFORBIDDEN, "without a cluster secret, "
                        "node %llu may announce itself only from the host "
                        "of its Raft address", (unsigned long long)id);
    return verify_callback(http, id, errmsg);
}

/* POST /internal/members {"node_id", "http_address"} (on the leader):
 * a member announces its own HTTP address. */
static const char *const member_fields[] = {"node_id", "http_address", NULL};

enum MHD_Result h_internal_member(struct http_req *r)
{
    enum MHD_Result ret;
    json_t *body = http_body_fields(r, member_fields, &ret);
    char http[ADDR_MAX_LEN + 1], errmsg[BRK_ERRMSG_LEN];
    const char *s;
    uint64_t id;
    struct work *w;
    int rv;

    if (body == NULL)
        return ret;
    s = json_string_value(json_object_get(body, "http_address"));
    if (!http_json_u64(r, body, "node_id", "node_id", 1, UINT32_MAX, 0, &id,
                       &ret) ||
        id == 0 || !addr_http_valid(s)) {
        json_decref(body);
        return http_reply_error(r, BRK_EINVAL, "'node_id' (>= 1) and "
                                "'http_address' (host:port) are required");
    }
    snprintf(http, sizeof(http), "%s", s);
    json_decref(body);
    if ((rv = check_announcement(r, id, http, errmsg)) != 0)
        return http_reply_error(r, rv, "%s", errmsg);
    if ((w = http_work_new(r, WORK_CMD)) == NULL)
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    w->cmd.type = CMD_SET_MEMBER;
    w->cmd.node_id = id;
    snprintf(w->cmd.address, sizeof(w->cmd.address), "%s", http);
    return http_submit(r, w, member_done);
}

/* GET /internal/digest/{topic}/{p}?from=A&to=B&step=S: this node's
 * replica digest of the partition (docs/clustering.md). */
enum MHD_Result h_internal_digest(struct http_req *r)
{
    enum MHD_Result ret;
    uint64_t p, from, to, step;
    struct topic *t;
    struct digest_range d;
    struct partition_stats st;
    char errmsg[BRK_ERRMSG_LEN];
    uint32_t chunk;
    uint64_t created;
    json_t *crcs, *o;
    size_t i;
    int rv;

    if (!http_param_topic(r, 0, &ret))
        return ret;
    if (r->param_bad[1] || !http_parse_u64(r->params[1], UINT32_MAX, &p))
        return http_reply_error(r, BRK_EINVAL, "bad partition");
    t = topic_registry_get(r->srv->deps.st->topics, r->params[0]);
    if (t == NULL || p >= t->n_partitions) {
        topic_put(t);
        return http_reply_error(r, BRK_EUNKNOWN_PARTITION, "unknown partition");
    }
    chunk = digest_chunk_size(partition_digest(t->partitions[p]));
    if (!http_query_u64(r, "from", 0, INT64_MAX, 0, &from, &ret) ||
        !http_query_u64(r, "to", 0, INT64_MAX, INT64_MAX, &to, &ret) ||
        !http_query_u64(r, "step", 1, UINT32_MAX, chunk, &step, &ret)) {
        topic_put(t);
        return ret;
    }
    rv = digest_range(t->partitions[p], from, to, (uint32_t)step, &d, errmsg);
    partition_stats(t->partitions[p], &st);
    created = t->created_index;
    topic_put(t);
    if (rv != 0)
        return http_reply_error(r, rv, "%s", errmsg);
    crcs = json_array();
    for (i = 0; i < d.n; i++)
        json_array_append_new(crcs, json_integer(d.crcs[i]));
    o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:o}",
                  "topic", r->params[0], "partition", (json_int_t)p, "chunk",
                  (json_int_t)chunk, "step", (json_int_t)d.step, "from",
                  (json_int_t)d.from, "to", (json_int_t)d.to, "building",
                  d.building, "log_start_offset",
                  (json_int_t)st.log_start_offset, "high_watermark",
                  (json_int_t)st.high_watermark, "crcs", crcs);
    digest_range_free(&d);
    /* Which incarnation of the topic this is (deleted and re-created). */
    if (o != NULL)
        json_object_set_new(o, "created_index", json_integer((json_int_t)created));
    return http_reply_json(r, 200, o);
}

/* POST /internal/repair/{topic}/{p} {"offset": N}: the leader found this
 * replica different from offset N on; replace that tail with the
 * leader's records (in the background: 202). */
static const char *const repair_fields[] = {"offset", NULL};

enum MHD_Result h_internal_repair(struct http_req *r)
{
    enum MHD_Result ret;
    json_t *body;
    uint64_t p, offset;
    char errmsg[BRK_ERRMSG_LEN];
    int rv;

    if (!http_param_topic(r, 0, &ret))
        return ret;
    if (r->param_bad[1] || !http_parse_u64(r->params[1], UINT32_MAX, &p))
        return http_reply_error(r, BRK_EINVAL, "bad partition");
    if ((body = http_body_fields(r, repair_fields, &ret)) == NULL)
        return ret;
    if (!http_json_u64(r, body, "offset", "offset", 0, INT64_MAX, UINT64_MAX,
                       &offset, &ret)) {
        json_decref(body);
        return ret;
    }
    json_decref(body);
    if (offset == UINT64_MAX)
        return http_reply_error(r, BRK_EINVAL, "field 'offset' is required");
    rv = replica_request_repair(r->params[0], (uint32_t)p, offset, errmsg);
    if (rv != 0)
        return http_reply_error(r, rv, "%s", errmsg);
    return http_reply_json(r, 202, json_pack("{s:b}", "accepted", 1));
}
