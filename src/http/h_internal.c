/* Node-to-node endpoints: records for snapshot catch-up, and members
 * registering their HTTP address with the leader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

#define INTERNAL_MAX_BYTES (16u << 20)

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
    if (rv == BRK_ECORRUPT) {
        /* Never bad records to a peer; and no local paths in the answer. */
        snprintf(errmsg, sizeof(errmsg), "records from offset %llu failed "
                 "their checks on this node", (unsigned long long)from);
    }
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

static enum MHD_Result member_done(struct http_req *r)
{
    if (r->work->res.err != 0)
        return http_reply_error(r, r->work->res.err, "%s",
                                r->work->res.errmsg);
    return http_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

/* POST /internal/members {"node_id", "http_address"} (on the leader). */
static const char *const member_fields[] = {"node_id", "http_address", NULL};

enum MHD_Result h_internal_member(struct http_req *r)
{
    enum MHD_Result ret;
    json_t *body = http_body_fields(r, member_fields, &ret);
    const char *http;
    uint64_t id;
    struct work *w;

    if (body == NULL)
        return ret;
    http = json_string_value(json_object_get(body, "http_address"));
    if (!http_json_u64(r, body, "node_id", "node_id", 1, UINT32_MAX, 0, &id,
                       &ret) ||
        http == NULL || strlen(http) >= sizeof(w->cmd.address) || id == 0) {
        json_decref(body);
        return http_reply_error(r, BRK_EINVAL, "node_id and http_address "
                                "are required");
    }
    if ((w = http_work_new(r, WORK_CMD)) == NULL) {
        json_decref(body);
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    }
    w->cmd.type = CMD_SET_MEMBER;
    w->cmd.node_id = id;
    snprintf(w->cmd.address, sizeof(w->cmd.address), "%s", http);
    json_decref(body);
    return http_submit(r, w, member_done);
}
