/* POST /topics/{topic}/messages and GET .../partitions/{p}/messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/clock.h"
#include "broker/log.h"
#include "broker/metrics.h"
#include "http_internal.h"

#define PARTITION_UNSET UINT32_MAX
#define FETCH_MAX_LIMIT 10000
#define FETCH_MAX_WAIT_MS 30000

/* ==== produce: parsing ==== */

static bool is_json_type(const char *ct)
{
    size_t n;

    if (ct == NULL || ct[0] == '\0')
        return true; /* no type given: the documented default is JSON */
    n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

static uint8_t *dup_bytes(const void *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);

    if (d != NULL && len > 0)
        memcpy(d, p, len);
    return d;
}

static int parse_key(json_t *o, struct cmd_record *rec, const char *field,
                     char *errmsg)
{
    json_t *k = json_object_get(o, "key");

    if (k == NULL || json_is_null(k))
        return 0;
    if (!json_is_string(k))
        return brk_errf(errmsg, BRK_EINVAL, "field '%skey' must be a string "
                        "or null", field);
    rec->key_len = (uint32_t)json_string_length(k);
    rec->key = dup_bytes(json_string_value(k), rec->key_len);
    return rec->key ? 0 : BRK_ENOMEM;
}

static int parse_headers(json_t *o, struct cmd_record *rec, const char *field,
                         char *errmsg)
{
    json_t *h = json_object_get(o, "headers"), *v;
    const char *name;
    char *text;

    if (h == NULL || json_is_null(h))
        return 0;
    if (!json_is_object(h))
        return brk_errf(errmsg, BRK_EINVAL, "field '%sheaders' must be an "
                        "object of strings", field);
    json_object_foreach(h, name, v)
    {
        if (!json_is_string(v))
            return brk_errf(errmsg, BRK_EINVAL, "field '%sheaders.%s' must be "
                            "a string", field, name);
    }
    text = json_dumps(h, JSON_COMPACT);
    if (text == NULL)
        return BRK_ENOMEM;
    rec->headers = (uint8_t *)text;
    rec->headers_len = (uint32_t)strlen(text);
    return 0;
}

static int parse_partition(json_t *o, struct cmd_record *rec,
                           const char *field, char *errmsg)
{
    json_t *p = json_object_get(o, "partition");

    rec->partition = PARTITION_UNSET;
    if (p == NULL || json_is_null(p))
        return 0;
    if (!json_is_integer(p) || json_integer_value(p) < 0 ||
        json_integer_value(p) >= PARTITION_UNSET)
        return brk_errf(errmsg, BRK_EINVAL, "field '%spartition' must be a "
                        "non-negative integer", field);
    rec->partition = (uint32_t)json_integer_value(p);
    return 0;
}

/* Fields of one record, and of a batch body (API.md "Produce"). */
static const char *const record_fields[] = {"key", "value", "headers",
                                            "partition", NULL};
static const char *const batch_fields[] = {"records", NULL};

/* One record object; @field prefixes field names in errors. */
static int parse_record(struct http_req *r, json_t *o, struct cmd_record *rec,
                        const char *field, char *errmsg)
{
    json_t *v;
    char *text;
    int rv;

    if (!json_is_object(o))
        return brk_errf(errmsg, BRK_EINVAL, "field '%.*s' must be an object",
                        field[0] ? (int)strlen(field) - 1 : 4,
                        field[0] ? field : "body");
    if ((rv = http_json_fields(o, record_fields, field, errmsg)) != 0)
        return rv;
    v = json_object_get(o, "value");
    if (v == NULL)
        return brk_errf(errmsg, BRK_EINVAL, "field '%svalue' is required",
                        field);
    if ((rv = parse_key(o, rec, field, errmsg)) != 0 ||
        (rv = parse_headers(o, rec, field, errmsg)) != 0 ||
        (rv = parse_partition(o, rec, field, errmsg)) != 0)
        return rv;
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        return BRK_ENOMEM;
    rec->value = (uint8_t *)text;
    rec->value_len = (uint32_t)strlen(text);
    rec->flags = RECORD_F_JSON;
    if ((uint64_t)rec->key_len + rec->value_len + rec->headers_len >
        (uint64_t)r->srv->deps.cfg->max_message_size)
        return brk_errf(errmsg, BRK_EMSG_TOO_LARGE, "message%s%.*s is larger "
                        "than max_message_size (%lld bytes)",
                        field[0] ? " " : "",
                        field[0] ? (int)strlen(field) - 1 : 0, field,
                        (long long)r->srv->deps.cfg->max_message_size);
    return 0;
}

static int parse_json_records(struct http_req *r, json_t *body,
                              struct cmd *c, char *errmsg)
{
    json_t *recs = json_object_get(body, "records");
    char field[48];
    size_t i, n;
    int rv = 0;

    if (recs != NULL && !json_is_array(recs))
        return brk_errf(errmsg, BRK_EINVAL, "field 'records' must be an "
                        "array");
    if (recs != NULL && json_object_get(body, "value") != NULL)
        return brk_errf(errmsg, BRK_EINVAL, "give either 'value' (one "
                        "record) or 'records' (a batch), not both");
    if (recs != NULL && (rv = http_json_fields(body, batch_fields, "",
                                               errmsg)) != 0)
        return rv;
    r->batch = recs != NULL;
    n = recs ? json_array_size(recs) : 1;
    if (n == 0)
        return brk_errf(errmsg, BRK_EINVAL, "field 'records' must not be "
                        "empty");
    c->records = calloc(n, sizeof(*c->records));
    if (c->records == NULL)
        return BRK_ENOMEM;
    c->n_records = n;
    for (i = 0; i < n && rv == 0; i++) {
        if (recs)
            snprintf(field, sizeof(field), "records[%zu].", i);
        else
            field[0] = '\0';
        rv = parse_record(r, recs ? json_array_get(recs, i) : body,
                          &c->records[i], field, errmsg);
    }
    return rv;
}

/* ?key= decoded into *@out (NULL when absent). Not through http_query():
 * its stand-in for an undecodable argument ("%00", a broken escape) would
 * silently become the key, so that is refused here instead. */
static int query_key(struct http_req *r, char **out, char *errmsg)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
                                                "key");
    bool bad;

    *out = NULL;
    if (v == NULL)
        return 0;
    *out = http_decode(v, strlen(v), &bad);
    if (*out == NULL)
        return BRK_ENOMEM;
    if (!bad)
        return 0;
    free(*out);
    *out = NULL;
    return brk_errf(errmsg, BRK_EINVAL, "query argument 'key' must not hold "
                    "a NUL byte or a broken percent escape");
}

/* Any other Content-Type: the body is one raw value. */
static int parse_raw_record(struct http_req *r, struct cmd *c, char *errmsg)
{
    struct cmd_record *rec;
    char *key = NULL, *part = NULL;
    uint64_t p;
    int rv;

    c->records = rec = calloc(1, sizeof(*rec));
    if (rec == NULL)
        return BRK_ENOMEM;
    c->n_records = 1;
    rec->partition = PARTITION_UNSET;
    if ((rv = query_key(r, &key, errmsg)) != 0)
        return rv;
    part = http_query(r, "partition");
    if (part != NULL && !http_parse_u64(part, PARTITION_UNSET - 1, &p))
        rv = brk_errf(errmsg, BRK_EINVAL, "query argument 'partition' must be "
                      "a non-negative integer");
    else if ((uint64_t)r->body_len + (key ? strlen(key) : 0) >
             (uint64_t)r->srv->deps.cfg->max_message_size)
        rv = brk_errf(errmsg, BRK_EMSG_TOO_LARGE, "message is larger than "
                      "max_message_size (%lld bytes)",
                      (long long)r->srv->deps.cfg->max_message_size);
    if (rv == 0) {
        if (part != NULL)
            rec->partition = (uint32_t)p;
        rec->value = dup_bytes(r->body, r->body_len);
        rec->value_len = (uint32_t)r->body_len;
        if (key != NULL) {
            rec->key_len = (uint32_t)strlen(key);
            rec->key = (uint8_t *)key;
            key = NULL;
        }
        if (rec->value == NULL)
            rv = BRK_ENOMEM;
    }
    free(key);
    free(part);
    return rv;
}

/* Explicit partitions are checked, keyed records hashed like Kafka, and
 * key-less ones spread round-robin. */
static int assign_partitions(struct http_req *r, struct cmd *c, char *errmsg)
{
    const struct config *cfg = r->srv->deps.cfg;
    struct topic *t = topic_registry_get(r->srv->deps.st->topics, c->topic);
    static atomic_uint spread;
    uint32_t n = t ? t->n_partitions : (uint32_t)cfg->default_partitions;
    size_t i;

    if (t == NULL && !cfg->auto_create_topics)
        return brk_errf(errmsg, BRK_EUNKNOWN_TOPIC, "unknown topic '%s'",
                        c->topic);
    c->partitions = cfg->auto_create_topics ? (uint32_t)cfg->default_partitions
                                            : 0;
    for (i = 0; i < c->n_records; i++) {
        struct cmd_record *rec = &c->records[i];
        if (rec->partition != PARTITION_UNSET) {
            if (rec->partition >= n) {
                topic_put(t);
                return brk_errf(errmsg, BRK_EUNKNOWN_PARTITION, "topic '%s' "
                                "has %u partitions; no partition %u",
                                c->topic, n, rec->partition);
            }
        } else if (rec->key != NULL) {
            rec->partition = state_partition_for_key(rec->key, rec->key_len, n);
        } else {
            rec->partition = (t ? atomic_fetch_add(&t->next_partition, 1)
                                : atomic_fetch_add(&spread, 1)) % n;
        }
    }
    topic_put(t);
    return 0;
}

/* Bytes the records of @c take in segments (approximately, as apply
 * counts them). */
static uint64_t cmd_record_bytes(const struct cmd *c)
{
    uint64_t bytes = 0;
    size_t i;

    for (i = 0; i < c->n_records; i++)
        bytes += (uint64_t)RECORD_HEADER_SIZE + 8 + c->records[i].key_len +
                 c->records[i].value_len + c->records[i].headers_len;
    return bytes;
}

/* ==== produce: answer ==== */

static enum MHD_Result produce_done(struct http_req *r)
{
    struct work *w = r->work;
    struct cmd_result *res = &w->res;
    json_t *o, *arr;
    size_t i;
    uint64_t bytes = 0;

    if (res->err != 0)
        return http_reply_error(r, res->err, "%s", res->errmsg);
    for (i = 0; i < w->cmd.n_records; i++)
        bytes += w->cmd.records[i].key_len + w->cmd.records[i].value_len +
                 w->cmd.records[i].headers_len;
    metrics_add(MET_PRODUCE_REQUESTS, 1);
    /* A replay stored nothing (broker_idempotent_replays_total counts it). */
    if (res->replayed)
        bytes = 0;
    metrics_add(MET_PRODUCE_MESSAGES, res->replayed ? 0 : res->n_produced);
    metrics_add(MET_PRODUCE_BYTES, bytes);
    metrics_produce_latency((double)(clock_mono_ns() - r->t0_ns) / 1e9);
    if (!r->batch)
        return http_reply_json(
            r, 201,
            json_pack("{s:s, s:i, s:I, s:I}", "topic", w->cmd.topic,
                      "partition", (int)res->produced[0].partition, "offset",
                      (json_int_t)res->produced[0].offset, "timestamp",
                      (json_int_t)res->timestamp));
    arr = json_array();
    for (i = 0; i < res->n_produced; i++)
        json_array_append_new(arr, json_pack("{s:i, s:I}", "partition",
                                             (int)res->produced[i].partition,
                                             "offset",
                                             (json_int_t)res->produced[i].offset));
    o = json_pack("{s:s, s:o, s:I}", "topic", w->cmd.topic, "offsets", arr,
                  "timestamp", (json_int_t)res->timestamp);
    return http_reply_json(r, 201, o);
}

/* 507 before anything is written or proposed: past max_storage_size, or
 * when the disk of data_dir lacks the room. */
static int check_room(struct http_req *r, const struct cmd *c, char *errmsg)
{
    uint64_t bytes = cmd_record_bytes(c), free_bytes = 0;

    if (state_storage_full(r->srv->deps.st, bytes))
        return brk_errf(errmsg, BRK_ESTORAGE_FULL, "storage is full "
                        "(max_storage_size %lld bytes)",
                        (long long)r->srv->deps.cfg->max_storage_size);
    if (state_disk_full(r->srv->deps.st, bytes, &free_bytes))
        return brk_errf(errmsg, BRK_ESTORAGE_FULL, "storage is full: %llu "
                        "bytes free on the disk of data_dir",
                        (unsigned long long)free_bytes);
    return 0;
}

enum MHD_Result h_produce(struct http_req *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    char errmsg[BRK_ERRMSG_LEN] = "";
    enum MHD_Result ret;
    struct work *w;
    json_t *body = NULL;
    int rv;

    if (!http_param_topic(r, 0, &ret))
        return ret;
    if (is_json_type(ct) && (body = http_body_object(r, &ret)) == NULL)
        return ret;
    w = http_work_new(r, WORK_CMD);
    if (w == NULL) {
        json_decref(body);
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    }
    w->cmd.type = CMD_PRODUCE;
    snprintf(w->cmd.topic, sizeof(w->cmd.topic), "%s", r->params[0]);
    rv = body ? parse_json_records(r, body, &w->cmd, errmsg)
              : parse_raw_record(r, &w->cmd, errmsg);
    json_decref(body);
    if (rv == 0)
        rv = assign_partitions(r, &w->cmd, errmsg);
    if (rv == 0)
        rv = check_room(r, &w->cmd, errmsg);
    if (rv != 0) {
        r->work = w; /* freed with the request */
        return http_reply_error(r, rv, "%s", errmsg);
    }
    return http_submit(r, w, produce_done);
}

/* ==== produce: a hint for JSON under another Content-Type ==== */

/* The Content-Type for a quoted header value: printable ASCII without
 * quotes or backslashes, at most 100 bytes. */
static void quoted_safe(const char *in, char *out, size_t cap)
{
    size_t i;

    for (i = 0; in[i] != '\0' && i + 1 < cap && i < 100; i++)
        out[i] = in[i] >= 0x20 && in[i] < 0x7f && in[i] != '"' &&
                         in[i] != '\\'
                     ? in[i]
                     : '?';
    out[i] = '\0';
}

void h_produce_hint(struct http_req *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    char safe[104], text[256];
    size_t i = 0;
    json_t *o;

    /* The contract stays (a raw value); only say so when it is likely a
     * mistake, e.g. plain `curl -d '{"a":1}'` (form-urlencoded). Bodies
     * that cannot be an object are not parsed at all. */
    if (is_json_type(ct) || r->body_len > (1u << 20))
        return;
    while (i < r->body_len && strchr(" \t\r\n", r->body[i]) != NULL &&
           r->body[i] != '\0')
        i++;
    if (i == r->body_len || r->body[i] != '{')
        return;
    o = json_loadb(r->body, r->body_len, 0, NULL);
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        return;
    }
    json_decref(o);
    quoted_safe(ct, safe, sizeof(safe));
    snprintf(text, sizeof(text), "199 - \"body looks like JSON but "
             "Content-Type is %s; stored as a raw value (send Content-Type: "
             "application/json to store JSON)\"", safe);
    r->warning = strdup(text);
    log_debug("produce: body looks like JSON but Content-Type is '%s'; "
              "stored as a raw value", safe);
}

/* ==== fetch ==== */

static enum MHD_Result fetch_range_error(struct http_req *r, int code,
                                         const struct partition_stats *st,
                                         const char *msg)
{
    return http_reply_error_with(
        r, code,
        json_pack("{s:I, s:I}", "log_start_offset",
                  (json_int_t)st->log_start_offset, "high_watermark",
                  (json_int_t)st->high_watermark),
        msg);
}

/* 500 corrupt naming the damaged range by offsets only: the detail, with
 * file names and positions, goes to the log. */
static enum MHD_Result fetch_corrupt(struct http_req *r, struct partition *p,
                                     const char *detail)
{
    struct partition_damage d;
    char msg[TOPIC_NAME_MAX + 128];

    if (!partition_damage_at(p, r->off, &d)) {
        log_error("fetch %s/%u at %llu: %s", r->topic->name, r->part,
                  (unsigned long long)r->off, detail);
        return http_reply_error(r, BRK_ECORRUPT, "the records at offset %llu "
                                "of %s/%u failed their checks on this node",
                                (unsigned long long)r->off, r->topic->name,
                                r->part);
    }
    snprintf(msg, sizeof(msg), "offsets [%llu, %llu) of %s/%u are damaged "
             "on this node", (unsigned long long)d.from,
             (unsigned long long)d.to, r->topic->name, r->part);
    return http_reply_error_with(
        r, BRK_ECORRUPT,
        json_pack("{s:I, s:I}", "from", (json_int_t)d.from, "to",
                  (json_int_t)d.to),
        msg);
}

static enum MHD_Result fetch_reply(struct http_req *r)
{
    struct partition *p;
    struct partition_read_result res = {0};
    struct partition_stats st;
    char errmsg[BRK_ERRMSG_LEN] = "";
    struct buf b;
    size_t i;
    uint64_t bytes = 0;
    int rv;

    if (atomic_load(&r->topic->deleted))
        return http_reply_error(r, BRK_EUNKNOWN_TOPIC, "topic '%s' was deleted",
                                r->topic->name);
    p = r->topic->partitions[r->part];
    rv = partition_read(p, r->off, (size_t)r->limit, (size_t)r->max_bytes,
                        &res, errmsg);
    partition_stats(p, &st);
    if (rv == BRK_EOFFSET_RANGE)
        return fetch_range_error(r, rv, &st, "offset is outside the "
                                 "partition's range");
    if (rv == BRK_ECORRUPT)
        return fetch_corrupt(r, p, errmsg);
    if (rv != 0)
        return http_reply_error(r, rv, "%s", errmsg);
    buf_init(&b);
    buf_puts(&b, "{\"topic\":");
    buf_append_json_string(&b, (const uint8_t *)r->topic->name,
                           strlen(r->topic->name));
    buf_printf(&b, ",\"partition\":%u,\"messages\":[", r->part);
    for (i = 0; i < res.n; i++) {
        if (i > 0)
            buf_puts(&b, ",");
        http_write_message(&b, &res.recs[i], r->part, false);
        bytes += res.recs[i].key_len + res.recs[i].value_len;
    }
    buf_printf(&b, "],\"next_offset\":%llu,\"high_watermark\":%llu,"
                   "\"log_start_offset\":%llu}",
               (unsigned long long)(res.n ? res.next_offset : r->off),
               (unsigned long long)st.high_watermark,
               (unsigned long long)st.log_start_offset);
    metrics_add(MET_FETCH_REQUESTS, 1);
    metrics_add(MET_FETCH_MESSAGES, res.n);
    metrics_add(MET_FETCH_BYTES, bytes);
    partition_read_result_free(&res);
    if (b.oom) {
        buf_free(&b);
        return http_reply_error(r, BRK_ENOMEM, "out of memory");
    }
    return http_reply_raw(r, 200, "application/json", b.data, b.len);
}

/* offset=earliest|latest|N, resolved against the partition now. */
static bool fetch_offset(struct http_req *r, const struct partition_stats *st,
                         enum MHD_Result *ret)
{
    char *v = http_query(r, "offset");
    bool ok = true;

    if (v == NULL || strcmp(v, "earliest") == 0)
        r->off = st->log_start_offset;
    else if (strcmp(v, "latest") == 0)
        r->off = st->high_watermark;
    else if (v[0] >= '0' && v[0] <= '9' && v[strspn(v, "0123456789")] == '\0')
        /* Digits only: past 2^64 it is still an offset, above the high
         * watermark (416), not a malformed argument. */
        r->off = http_parse_u64(v, UINT64_MAX, &r->off) ? r->off : UINT64_MAX;
    else
        ok = false;
    free(v);
    if (!ok)
        *ret = http_reply_error(r, BRK_EINVAL, "query argument 'offset' must "
                                "be a non-negative integer, 'earliest' or "
                                "'latest'");
    return ok;
}

/* timestamp=T (v2, instead of offset): the first message at or after T,
 * or the high watermark when there is none. Returns false after replying
 * (400, or a read error); *@given says whether it was there at all. */
static bool fetch_time(struct http_req *r, bool *given, enum MHD_Result *ret)
{
    char *v = http_query(r, "timestamp"), *o = http_query(r, "offset");
    char errmsg[BRK_ERRMSG_LEN] = "";
    uint64_t ts = 0;
    bool ok = v != NULL && http_parse_u64(v, INT64_MAX, &ts);
    int rv;

    *given = v != NULL;
    free(v);
    if (*given && o != NULL) {
        free(o);
        *ret = http_reply_error(r, BRK_EINVAL, "give either query argument "
                                "'offset' or 'timestamp', not both");
        return false;
    }
    free(o);
    if (!*given)
        return true;
    if (!ok) {
        *ret = http_reply_error(r, BRK_EINVAL, "query argument 'timestamp' "
                                "must be milliseconds since the epoch (a "
                                "non-negative integer)");
        return false;
    }
    rv = partition_find_time(r->topic->partitions[r->part], (int64_t)ts,
                             &r->off, errmsg);
    if (rv != 0) {
        *ret = http_reply_error(r, rv, "%s", errmsg);
        return false;
    }
    return true;
}

static enum MHD_Result fetch_wait(struct http_req *r, uint64_t wait_ms)
{
    struct work *w = http_work_new(r, WORK_WAIT);

    if (w == NULL)
        return fetch_reply(r);
    w->topic = r->topic;
    topic_get(w->topic);
    w->partition = r->part;
    w->offset = r->off;
    w->wait_ms = (uint32_t)wait_ms;
    return http_submit(r, w, fetch_reply);
}

enum MHD_Result h_fetch(struct http_req *r)
{
    enum MHD_Result ret;
    uint64_t part, wait_ms;
    struct partition_stats st;
    bool by_time;

    if (!http_param_topic(r, 0, &ret))
        return ret;
    if (r->param_bad[1] || !http_parse_u64(r->params[1], UINT32_MAX - 1, &part))
        return http_reply_error(r, BRK_EINVAL, "partition must be a "
                                "non-negative integer");
    if (!http_query_u64(r, "limit", 1, FETCH_MAX_LIMIT, 100, &r->limit, &ret) ||
        !http_query_u64(r, "max_bytes", 1, UINT32_MAX, 0, &r->max_bytes, &ret) ||
        !http_query_u64(r, "wait_ms", 0, FETCH_MAX_WAIT_MS, 0, &wait_ms, &ret))
        return ret;
    r->topic = topic_registry_get(r->srv->deps.st->topics, r->params[0]);
    if (r->topic == NULL)
        return http_reply_error(r, BRK_EUNKNOWN_TOPIC, "unknown topic '%s'",
                                r->params[0]);
    if (part >= r->topic->n_partitions)
        return http_reply_error(r, BRK_EUNKNOWN_PARTITION, "topic '%s' has no "
                                "partition %llu", r->params[0],
                                (unsigned long long)part);
    r->part = (uint32_t)part;
    if (!fetch_time(r, &by_time, &ret))
        return ret;
    /* After the search: a log start raised meanwhile still shows as 416. */
    partition_stats(r->topic->partitions[r->part], &st);
    if (!by_time && !fetch_offset(r, &st, &ret))
        return ret;
    if (r->off < st.log_start_offset || r->off > st.high_watermark)
        return fetch_range_error(r, BRK_EOFFSET_RANGE, &st, "offset is "
                                 "outside the partition's range");
    if (r->off == st.high_watermark && wait_ms > 0)
        return fetch_wait(r, wait_ms);
    return fetch_reply(r);
}
