/* /topics: create, list, describe, delete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

static enum MHD_Result create_done(struct http_req *r)
{
    struct work *w = r->work;

    if (w->res.err != 0)
        return http_reply_error(r, w->res.err, "%s", w->res.errmsg);
    return http_reply_json(r, 201,
                           json_pack("{s:s, s:i}", "name", w->cmd.topic,
                                     "partitions", (int)w->cmd.partitions));
}

/* "retention_time": a Go-style duration string; absent = broker default. */
static bool parse_retention(struct http_req *r, json_t *body, int64_t *ms,
                            enum MHD_Result *ret)
{
    json_t *v = json_object_get(body, "retention_time");

    *ms = -1;
    if (v == NULL || json_is_null(v))
        return true;
    if (json_is_string(v) && config_parse_duration(json_string_value(v), ms) == 0)
        return true;
    *ret = http_reply_error(r, BRK_EINVAL, "field 'retention_time' must be a "
                            "duration such as \"7d\", \"24h\", \"1h30m\" "
                            "or \"90s\"");
    return false;
}

/* A JSON string may hold U+0000; the C string would then end early and
 * name another topic, so such a name is never valid. */
static bool json_name_valid(json_t *v)
{
    return json_is_string(v) &&
           strlen(json_string_value(v)) == json_string_length(v) &&
           topic_name_valid(json_string_value(v));
}

/* POST /topics body fields (API.md "Topics"). */
static const char *const create_fields[] = {"name", "partitions",
                                            "retention_time", NULL};

enum MHD_Result h_topics_create(struct http_req *r)
{
    const struct config *cfg = r->srv->deps.cfg;
    enum MHD_Result ret;
    json_t *body = http_body_fields(r, create_fields, &ret), *name;
    uint64_t parts;
    int64_t retention;
    struct work *w;

    if (body == NULL)
        return ret;
    name = json_object_get(body, "name");
    if (!json_name_valid(name)) {
        json_decref(body);
        return http_reply_error(r, name ? BRK_EINVALID_TOPIC : BRK_EINVAL,
                                name ? "invalid topic name: must match "
                                       "[A-Za-z0-9._-]{1,249} and not be '.' "
                                       "or '..'"
                                     : "field 'name' is required");
    }
    if (!http_json_u64(r, body, "partitions", "partitions", 1,
                       (uint64_t)cfg->max_topic_partitions,
                       (uint64_t)cfg->default_partitions, &parts, &ret) ||
        !parse_retention(r, body, &retention, &ret)) {
        json_decref(body);
        return ret;
    }
    if ((w = http_work_new(r, WORK_CMD)) == NULL) {
        json_decref(body);
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    }
    w->cmd.type = CMD_CREATE_TOPIC;
    snprintf(w->cmd.topic, sizeof(w->cmd.topic), "%s", json_string_value(name));
    w->cmd.partitions = (uint32_t)parts;
    w->cmd.retention_ms = retention;
    json_decref(body);
    return http_submit(r, w, create_done);
}

enum MHD_Result h_topics_list(struct http_req *r)
{
    struct topic **list;
    size_t n, i;
    json_t *arr;

    if (topic_registry_list(r->srv->deps.st->topics, &list, &n) != 0)
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    arr = json_array();
    for (i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:i}", "name",
                                             list[i]->name, "partitions",
                                             (int)list[i]->n_partitions));
    topic_list_free(list, n);
    return http_reply_json(r, 200, json_pack("{s:o}", "topics", arr));
}

enum MHD_Result h_topic_get(struct http_req *r)
{
    enum MHD_Result ret;
    struct topic *t;
    struct partition_stats st;
    json_t *arr;
    char dur[64];
    int64_t ret_ms;
    uint32_t p;

    if (!http_param_topic(r, 0, &ret))
        return ret;
    t = topic_registry_get(r->srv->deps.st->topics, r->params[0]);
    if (t == NULL)
        return http_reply_error(r, BRK_EUNKNOWN_TOPIC, "unknown topic '%s'",
                                r->params[0]);
    arr = json_array();
    for (p = 0; p < t->n_partitions; p++) {
        partition_stats(t->partitions[p], &st);
        json_array_append_new(
            arr, json_pack("{s:i, s:I, s:I, s:I, s:i}", "partition", (int)p,
                           "log_start_offset", (json_int_t)st.log_start_offset,
                           "high_watermark", (json_int_t)st.high_watermark,
                           "size_bytes", (json_int_t)st.size_bytes,
                           "segments", (int)st.segments));
    }
    ret_ms = t->retention_ms >= 0 ? t->retention_ms
                                  : r->srv->deps.cfg->retention_ms;
    http_format_duration(ret_ms, dur, sizeof(dur));
    ret = http_reply_json(r, 200,
                          json_pack("{s:s, s:o, s:s, s:I}", "name", t->name,
                                    "partitions", arr, "retention_time", dur,
                                    "retention_ms", (json_int_t)ret_ms));
    topic_put(t);
    return ret;
}

static enum MHD_Result delete_done(struct http_req *r)
{
    struct work *w = r->work;

    if (w->res.err != 0)
        return http_reply_error(r, w->res.err, "%s", w->res.errmsg);
    return http_reply_empty(r, 204);
}

enum MHD_Result h_topic_delete(struct http_req *r)
{
    enum MHD_Result ret;
    struct work *w;

    if (!http_param_topic(r, 0, &ret))
        return ret;
    if ((w = http_work_new(r, WORK_CMD)) == NULL)
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    w->cmd.type = CMD_DELETE_TOPIC;
    snprintf(w->cmd.topic, sizeof(w->cmd.topic), "%s", r->params[0]);
    return http_submit(r, w, delete_done);
}
