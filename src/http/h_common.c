/* Parsing and formatting helpers shared by the handlers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

static bool param_name(struct http_req *r, int i, int code, const char *what,
                       enum MHD_Result *ret)
{
    if (i < r->n_params && !r->param_bad[i] && topic_name_valid(r->params[i]))
        return true;
    *ret = http_reply_error(r, code, "invalid %s name: must match "
                            "[A-Za-z0-9._-]{1,249} and not be '.' or '..'",
                            what);
    return false;
}

bool http_param_topic(struct http_req *r, int i, enum MHD_Result *ret)
{
    return param_name(r, i, BRK_EINVALID_TOPIC, "topic", ret);
}

bool http_param_group(struct http_req *r, int i, enum MHD_Result *ret)
{
    return param_name(r, i, BRK_EINVALID_GROUP, "group", ret);
}

bool http_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

bool http_query_u64(struct http_req *r, const char *key, uint64_t min,
                    uint64_t max, uint64_t def, uint64_t *out,
                    enum MHD_Result *ret)
{
    char *v = http_query(r, key);
    bool ok;

    if (v == NULL) {
        *out = def;
        return true;
    }
    ok = http_parse_u64(v, max, out) && *out >= min;
    free(v);
    if (!ok)
        *ret = http_reply_error(r, BRK_EINVAL, "query argument '%s' must be "
                                "an integer from %llu to %llu", key,
                                (unsigned long long)min,
                                (unsigned long long)max);
    return ok;
}

bool http_json_u64(struct http_req *r, json_t *o, const char *key,
                   const char *field, uint64_t min, uint64_t max,
                   uint64_t def, uint64_t *out, enum MHD_Result *ret)
{
    json_t *v = json_object_get(o, key);
    json_int_t i;

    if (v == NULL || json_is_null(v)) {
        *out = def;
        return true;
    }
    i = json_is_integer(v) ? json_integer_value(v) : -1;
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max) {
        *ret = http_reply_error(r, BRK_EINVAL, "field '%s' must be an integer "
                                "from %llu to %llu", field,
                                (unsigned long long)min,
                                (unsigned long long)max);
        return false;
    }
    *out = (uint64_t)i;
    return true;
}

/* ==== strict bodies ==== */

/* @len counts the key's bytes: a key holding U+0000 ("partition\u0000x")
 * matches no allowed name, rather than passing as its prefix. */
static bool field_allowed(const char *key, size_t len,
                          const char *const *allowed)
{
    size_t i;

    for (i = 0; allowed[i] != NULL; i++)
        if (strlen(allowed[i]) == len && memcmp(key, allowed[i], len) == 0)
            return true;
    return false;
}

/* "a, b, c" from @allowed into @out (truncated to @cap). */
static void fields_list(const char *const *allowed, char *out, size_t cap)
{
    size_t i, n = 0;

    out[0] = '\0';
    for (i = 0; allowed[i] != NULL && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "",
                              allowed[i]);
}

int http_json_fields(json_t *o, const char *const *allowed,
                     const char *prefix, char *errmsg)
{
    const char *key;
    char list[160];
    size_t len;
    json_t *v;

    json_object_keylen_foreach(o, key, len, v)
    {
        if (field_allowed(key, len, allowed))
            continue;
        fields_list(allowed, list, sizeof(list));
        /* %.64s: a hostile key must not crowd out the rest. */
        return brk_errf(errmsg, BRK_EINVAL, "unknown field '%s%.64s%s' "
                        "(allowed: %s)", prefix, key,
                        strlen(key) > 64 ? "..." : "", list);
    }
    return 0;
}

bool http_json_check_fields(struct http_req *r, json_t *o,
                            const char *const *allowed, const char *prefix,
                            enum MHD_Result *ret)
{
    char errmsg[BRK_ERRMSG_LEN];

    if (http_json_fields(o, allowed, prefix, errmsg) == 0)
        return true;
    *ret = http_reply_error(r, BRK_EINVAL, "%s", errmsg);
    return false;
}

json_t *http_body_fields(struct http_req *r, const char *const *allowed,
                         enum MHD_Result *ret)
{
    json_t *o = http_body_object(r, ret);

    if (o != NULL && !http_json_check_fields(r, o, allowed, "", ret)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Bytes as a JSON string when they are UTF-8, else base64 with a
 * "<name>_encoding" marker. */
static void write_bytes(struct buf *b, const char *name, const uint8_t *p,
                        uint32_t len)
{
    buf_printf(b, ",\"%s\":", name);
    if (utf8_valid(p, len)) {
        buf_append_json_string(b, p, len);
        return;
    }
    buf_puts(b, "\"");
    buf_append_base64(b, p, len);
    buf_printf(b, "\",\"%s_encoding\":\"base64\"", name);
}

void http_write_message(struct buf *b, const struct record *rec,
                        uint32_t partition, bool with_partition)
{
    buf_puts(b, "{");
    if (with_partition)
        buf_printf(b, "\"partition\":%u,", partition);
    buf_printf(b, "\"offset\":%llu,\"timestamp\":%lld",
               (unsigned long long)rec->offset, (long long)rec->timestamp);
    if (rec->key == NULL)
        buf_puts(b, ",\"key\":null");
    else
        write_bytes(b, "key", rec->key, rec->key_len);
    if (rec->flags & RECORD_F_JSON) {
        buf_puts(b, ",\"value\":");
        buf_append(b, rec->value, rec->value_len);
    } else {
        write_bytes(b, "value", rec->value, rec->value_len);
    }
    buf_puts(b, ",\"headers\":");
    if (rec->headers != NULL && rec->headers_len > 0)
        buf_append(b, rec->headers, rec->headers_len);
    else
        buf_puts(b, "{}");
    buf_puts(b, "}");
}

void http_format_duration(int64_t ms, char *out, size_t cap)
{
    int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60;
    int64_t rest = ms % 1000;
    size_t n = 0;

    out[0] = '\0';
    if (h)
        n += (size_t)snprintf(out + n, cap - n, "%lldh", (long long)h);
    if (m && n < cap)
        n += (size_t)snprintf(out + n, cap - n, "%lldm", (long long)m);
    if (s && n < cap)
        n += (size_t)snprintf(out + n, cap - n, "%llds", (long long)s);
    if (rest && n < cap)
        n += (size_t)snprintf(out + n, cap - n, "%lldms", (long long)rest);
    if (n == 0)
        snprintf(out, cap, "0s");
}
