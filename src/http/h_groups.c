/* /groups: commit and read offsets, list, delete, claim. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/metrics.h"
#include "http_internal.h"

#define CLAIM_MAX_LIMIT 10000
#define CLAIM_MAX_WAIT_MS 30000

static void add_lag(struct http_req *r, json_t *offsets);

/* A commit answers with the group's offsets in the form GET gives them
 * (sorted, with high watermark and lag), a delete with 204. */
static enum MHD_Result simple_done(struct http_req *r)
{
    struct work *w = r->work;
    json_t *offsets;

    if (w->res.err == BRK_EOFFSET_RANGE)
        return http_reply_error_with(
            r, w->res.err,
            json_pack("{s:I, s:I}", "log_start_offset",
                      (json_int_t)w->res.range_start, "high_watermark",
                      (json_int_t)w->res.range_end),
            w->res.errmsg);
    if (w->res.err != 0)
        return http_reply_error(r, w->res.err, "%s", w->res.errmsg);
    if (w->cmd.type == CMD_DELETE_GROUP)
        return http_reply_empty(r, 204);
    offsets = group_offsets_json(r->srv->deps.st->groups, w->cmd.group, NULL);
    if (offsets != NULL)
        add_lag(r, offsets);
    return http_reply_json(r, 200, json_pack("{s:s, s:o}", "group",
                                             w->cmd.group, "offsets",
                                             offsets ? offsets
                                                     : json_array()));
}

/* A JSON string may hold U+0000; the C string would then end early and
 * name another topic, so such a name is never valid. */
static bool json_name_valid(json_t *v)
{
    return json_is_string(v) &&
           strlen(json_string_value(v)) == json_string_length(v) &&
           topic_name_valid(json_string_value(v));
}

/* Body fields of a commit (API.md "Consumer groups"): one offset, a
 * reset of a whole topic (v2), or a list of either. */
static const char *const offset_fields[] = {"topic", "partition", "offset",
                                            NULL};
static const char *const reset_fields[] = {"topic", "reset", NULL};
static const char *const offsets_fields[] = {"offsets", NULL};

/* "reset": "earliest" | "latest" | <ms timestamp>, encoded as an entry
 * for every partition (cmd.h CMD_PARTITION_ALL), resolved at apply. */
static int parse_reset(struct http_req *r, json_t *v, struct cmd_offset *out,
                       const char *field, enum MHD_Result *ret)
{
    const char *s = json_string_value(v);

    out->partition = CMD_PARTITION_ALL;
    if (s != NULL && strcmp(s, "earliest") == 0)
        out->offset = CMD_RESET_EARLIEST;
    else if (s != NULL && strcmp(s, "latest") == 0)
        out->offset = CMD_RESET_LATEST;
    else if (json_is_integer(v) && json_integer_value(v) >= 0)
        out->offset = (uint64_t)json_integer_value(v);
    else {
        *ret = http_reply_error(r, BRK_EINVAL, "field '%sreset' must be "
                                "\"earliest\", \"latest\" or a timestamp "
                                "(ms since the epoch)", field);
        return -1;
    }
    return 0;
}

static int parse_offset(struct http_req *r, json_t *o, struct cmd_offset *out,
                        const char *field, enum MHD_Result *ret)
{
    json_t *t = json_object_get(o, "topic");
    json_t *reset = json_object_get(o, "reset");
    uint64_t p, off;
    char f[64];

    if (!json_is_object(o) || !json_is_string(t)) {
        *ret = http_reply_error(r, BRK_EINVAL, "field '%stopic' is required "
                                "(a topic name)", field);
        return -1;
    }
    if (!http_json_check_fields(r, o, reset ? reset_fields : offset_fields,
                                field, ret))
        return -1;
    if (!json_name_valid(t)) {
        *ret = http_reply_error(r, BRK_EINVALID_TOPIC, "field '%stopic': "
                                "invalid topic name", field);
        return -1;
    }
    snprintf(out->topic, sizeof(out->topic), "%s", json_string_value(t));
    if (reset != NULL)
        return parse_reset(r, reset, out, field, ret);
    snprintf(f, sizeof(f), "%spartition", field);
    if (!http_json_u64(r, o, "partition", f, 0, UINT32_MAX - 1, UINT64_MAX,
                       &p, ret))
        return -1;
    snprintf(f, sizeof(f), "%soffset", field);
    if (!http_json_u64(r, o, "offset", f, 0, INT64_MAX, UINT64_MAX, &off, ret))
        return -1;
    if (p == UINT64_MAX || off == UINT64_MAX) {
        *ret = http_reply_error(r, BRK_EINVAL, "fields '%spartition' and "
                                "'%soffset' are required (or '%sreset')",
                                field, field, field);
        return -1;
    }
    out->partition = (uint32_t)p;
    out->offset = off;
    return 0;
}

static int parse_offsets(struct http_req *r, json_t *body, struct cmd *c,
                         enum MHD_Result *ret)
{
    json_t *arr = json_object_get(body, "offsets");
    size_t i, n = arr ? json_array_size(arr) : 1;
    char field[48] = "";

    if (arr != NULL && (!json_is_array(arr) || n == 0)) {
        *ret = http_reply_error(r, BRK_EINVAL, "field 'offsets' must be a "
                                "non-empty array");
        return -1;
    }
    if (arr != NULL && !http_json_check_fields(r, body, offsets_fields, "",
                                               ret))
        return -1;
    c->offsets = calloc(n, sizeof(*c->offsets));
    if (c->offsets == NULL) {
        *ret = http_reply_error(r, BRK_ENOMEM, "out of memory");
        return -1;
    }
    c->n_offsets = n;
    for (i = 0; i < n; i++) {
        if (arr)
            snprintf(field, sizeof(field), "offsets[%zu].", i);
        if (parse_offset(r, arr ? json_array_get(arr, i) : body,
                         &c->offsets[i], field, ret) != 0)
            return -1;
    }
    return 0;
}

enum MHD_Result h_group_commit(struct http_req *r)
{
    enum MHD_Result ret;
    json_t *body;
    struct work *w;

    if (!http_param_group(r, 0, &ret) || (body = http_body_object(r, &ret)) == NULL)
        return ret;
    if ((w = http_work_new(r, WORK_CMD)) == NULL) {
        json_decref(body);
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    }
    r->work = w; /* freed with the request if we answer early */
    w->cmd.type = CMD_COMMIT_OFFSETS;
    snprintf(w->cmd.group, sizeof(w->cmd.group), "%s", r->params[0]);
    if (parse_offsets(r, body, &w->cmd, &ret) != 0) {
        json_decref(body);
        return ret;
    }
    json_decref(body);
    return http_submit(r, w, simple_done);
}

static int cmp_offsets(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(json_string_value(json_object_get(x, "topic")),
                   json_string_value(json_object_get(y, "topic")));

    if (c != 0)
        return c;
    return (int)(json_integer_value(json_object_get(x, "partition")) -
                 json_integer_value(json_object_get(y, "partition")));
}

/* Sort by topic and partition, and add each partition's high watermark
 * and the group's lag behind it (as kafka-consumer-groups --describe). */
static void add_lag(struct http_req *r, json_t *offsets)
{
    size_t i, n = json_array_size(offsets);
    json_t **v = calloc(n ? n : 1, sizeof(*v));
    struct partition_stats st;

    for (i = 0; v != NULL && i < n; i++)
        v[i] = json_incref(json_array_get(offsets, i));
    if (v != NULL) {
        qsort(v, n, sizeof(*v), cmp_offsets);
        json_array_clear(offsets);
        for (i = 0; i < n; i++)
            json_array_append_new(offsets, v[i]);
        free(v);
    }
    for (i = 0; i < json_array_size(offsets); i++) {
        json_t *o = json_array_get(offsets, i);
        struct topic *t = topic_registry_get(
            r->srv->deps.st->topics,
            json_string_value(json_object_get(o, "topic")));
        json_int_t p = json_integer_value(json_object_get(o, "partition"));
        json_int_t off = json_integer_value(json_object_get(o, "offset"));
        json_int_t hw;

        if (t != NULL && p >= 0 && (uint64_t)p < t->n_partitions) {
            partition_stats(t->partitions[p], &st);
            hw = (json_int_t)st.high_watermark;
            json_object_set_new(o, "high_watermark", json_integer(hw));
            json_object_set_new(o, "lag", json_integer(hw > off ? hw - off : 0));
        }
        topic_put(t);
    }
}

enum MHD_Result h_group_offsets(struct http_req *r)
{
    enum MHD_Result ret;
    char *topic = http_query(r, "topic");
    json_t *offsets;

    if (!http_param_group(r, 0, &ret)) {
        free(topic);
        return ret;
    }
    if (topic != NULL && !topic_name_valid(topic)) {
        free(topic);
        return http_reply_error(r, BRK_EINVALID_TOPIC, "invalid topic name in "
                                "query argument 'topic'");
    }
    offsets = group_offsets_json(r->srv->deps.st->groups, r->params[0], topic);
    free(topic);
    if (offsets != NULL)
        add_lag(r, offsets);
    /* A group that never committed has no offsets yet (as in Kafka). */
    return http_reply_json(r, 200, json_pack("{s:s, s:o}", "group",
                                             r->params[0], "offsets",
                                             offsets ? offsets : json_array()));
}

enum MHD_Result h_groups_list(struct http_req *r)
{
    return http_reply_json(r, 200,
                           json_pack("{s:o}", "groups",
                                     group_list_json(r->srv->deps.st->groups)));
}

enum MHD_Result h_group_delete(struct http_req *r)
{
    enum MHD_Result ret;
    struct work *w;

    if (!http_param_group(r, 0, &ret))
        return ret;
    if ((w = http_work_new(r, WORK_CMD)) == NULL)
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    w->cmd.type = CMD_DELETE_GROUP;
    snprintf(w->cmd.group, sizeof(w->cmd.group), "%s", r->params[0]);
    return http_submit(r, w, simple_done);
}

/* ==== claim ==== */

static int claim_write_range(struct http_req *r, struct topic *t,
                             const struct cmd_claimed *c, struct buf *b,
                             size_t *count)
{
    struct partition_read_result res = {0};
    char errmsg[BRK_ERRMSG_LEN];
    size_t i;
    int rv;

    rv = partition_read(t->partitions[c->partition], c->from,
                        (size_t)(c->to - c->from), 0, &res, errmsg);
    for (i = 0; rv == 0 && i < res.n; i++) {
        if (*count > 0)
            buf_puts(b, ",");
        http_write_message(b, &res.recs[i], c->partition, true);
        (*count)++;
    }
    partition_read_result_free(&res);
    return rv == BRK_EOFFSET_RANGE ? 0 : rv; /* removed by retention meanwhile */
}

static enum MHD_Result claim_done(struct http_req *r)
{
    struct work *w = r->work;
    struct topic *t;
    struct buf b;
    size_t i, count = 0;
    int rv = 0;

    if (w->res.err != 0)
        return http_reply_error(r, w->res.err, "%s", w->res.errmsg);
    t = topic_registry_get(r->srv->deps.st->topics, w->cmd.topic);
    buf_init(&b);
    buf_puts(&b, "{\"messages\":[");
    for (i = 0; t != NULL && rv == 0 && i < w->res.n_claimed; i++)
        rv = claim_write_range(r, t, &w->res.claimed[i], &b, &count);
    buf_puts(&b, "]}");
    topic_put(t);
    if (rv != 0 || b.oom) {
        buf_free(&b);
        return http_reply_error(r, rv ? rv : BRK_ENOMEM, "reading claimed "
                                "messages failed");
    }
    metrics_add(MET_CLAIMED_MESSAGES, count);
    return http_reply_raw(r, 200, "application/json", b.data, b.len);
}

/* Claim body fields (v1; v2's visibility_timeout_ms and auto_ack are
 * added here once implemented). */
static const char *const claim_fields[] = {"limit", "wait_ms", NULL};

enum MHD_Result h_group_claim(struct http_req *r)
{
    enum MHD_Result ret;
    json_t *body = NULL;
    uint64_t limit = 100, wait_ms = 0;
    struct work *w;

    if (!http_param_group(r, 0, &ret) || !http_param_topic(r, 1, &ret))
        return ret;
    if (r->body_len > 0 &&
        (body = http_body_fields(r, claim_fields, &ret)) == NULL)
        return ret;
    if (body != NULL &&
        (!http_json_u64(r, body, "limit", "limit", 1, CLAIM_MAX_LIMIT, 100,
                        &limit, &ret) ||
         !http_json_u64(r, body, "wait_ms", "wait_ms", 0, CLAIM_MAX_WAIT_MS, 0,
                        &wait_ms, &ret))) {
        json_decref(body);
        return ret;
    }
    json_decref(body);
    if ((w = http_work_new(r, WORK_CMD)) == NULL)
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    w->cmd.type = CMD_CLAIM;
    snprintf(w->cmd.group, sizeof(w->cmd.group), "%s", r->params[0]);
    snprintf(w->cmd.topic, sizeof(w->cmd.topic), "%s", r->params[1]);
    w->cmd.limit = (uint32_t)limit;
    w->wait_ms = (uint32_t)wait_ms;
    return http_submit(r, w, claim_done);
}
