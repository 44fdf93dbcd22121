/* Replies: JSON bodies, error bodies, X-Broker-Node, request metrics. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/metrics.h"
#include "http_internal.h"

static enum MHD_Result reply(struct http_req *r, int status,
                             const char *content_type, char *body, size_t len,
                             const char *node, bool forwarded)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, body ? body : "",
                                           body ? MHD_RESPMEM_MUST_FREE
                                                : MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    if (content_type != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type);
    MHD_add_response_header(resp, "X-Broker-Node", node);
    if (forwarded)
        MHD_add_response_header(resp, "X-Forwarded-By", r->srv->node_id);
    if (status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->warning != NULL && status >= 200 && status < 300)
        MHD_add_response_header(resp, "Warning", r->warning);
    http_idem_headers(r, resp);
    ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    metrics_http(r->route, status);
    return ret;
}

enum MHD_Result http_reply_raw(struct http_req *r, int status,
                               const char *content_type, char *body,
                               size_t len)
{
    return reply(r, status, content_type, body, len, r->srv->node_id, false);
}

enum MHD_Result http_reply_relay(struct http_req *r, int status,
                                 const char *content_type, char *body,
                                 size_t len, const char *leader_node)
{
    return reply(r, status, content_type, body, len,
                 leader_node && leader_node[0] ? leader_node : "unknown",
                 true);
}

enum MHD_Result http_reply_json(struct http_req *r, int status, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

    json_decref(o);
    if (text == NULL)
        return http_reply_raw(r, 500, "application/json",
                              strdup("{\"error\":\"out of memory\","
                                     "\"code\":\"out_of_memory\"}"),
                              strlen("{\"error\":\"out of memory\","
                                     "\"code\":\"out_of_memory\"}"));
    return http_reply_raw(r, status, "application/json", text, strlen(text));
}

enum MHD_Result http_reply_empty(struct http_req *r, int status)
{
    return http_reply_raw(r, status, NULL, NULL, 0);
}

/* Length of the UTF-8 sequence that @p starts (at most @left bytes), or
 * 0 when it is not a valid one. */
static size_t utf8_seq(const uint8_t *p, size_t left)
{
    size_t n = p[0] < 0x80 ? 1 : p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : 2;

    return n <= left && utf8_valid(p, n) ? n : 0;
}

/* @msg with every byte that is not valid UTF-8 as '?': jansson refuses
 * such strings, and an error naming a raw request line ("GET /x\xff")
 * must still be answered. Returns @msg itself when it is valid. */
static const char *utf8_clean(const char *msg, char *out, size_t cap)
{
    const uint8_t *p = (const uint8_t *)msg;
    size_t len = strlen(msg), i = 0, o = 0, n;

    if (utf8_valid(p, len))
        return msg;
    while (i < len && o + 4 < cap) {
        n = utf8_seq(p + i, len - i);
        if (n == 0) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, p + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return out;
}

enum MHD_Result http_reply_error_with(struct http_req *r, int code,
                                      json_t *extra, const char *msg)
{
    char clean[BRK_ERRMSG_LEN];
    json_t *o;

    msg = msg && msg[0] ? utf8_clean(msg, clean, sizeof(clean))
                        : brk_err_str(code);
    o = json_pack("{s:s, s:s}", "error", msg, "code", brk_err_word(code));

    if (o != NULL && extra != NULL)
        json_object_update(o, extra);
    json_decref(extra);
    return http_reply_json(r, brk_err_http_status(code), o);
}

enum MHD_Result http_reply_error(struct http_req *r, int code,
                                 const char *fmt, ...)
{
    char msg[BRK_ERRMSG_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return http_reply_error_with(r, code, NULL, msg);
}
