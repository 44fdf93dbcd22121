/* Replies: JSON bodies, error bodies, X-Broker-Node, request metrics. */
#include <limits.h>
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

/* Replace every @from in @buf (NUL-terminated, @cap bytes) by @to. */
static void replace_all(char *buf, size_t cap, const char *from,
                        const char *to)
{
    size_t flen = strlen(from), tlen = strlen(to), len;
    char *p = buf;

    if (flen == 0)
        return;
    while ((p = strstr(p, from)) != NULL) {
        len = strlen(p + flen);
        if ((size_t)(p - buf) + tlen + len + 1 > cap)
            return;
        memmove(p + tlen, p + flen, len + 1);
        memcpy(p, to, tlen);
        p += tlen;
    }
}

static void redact_dir(char *buf, size_t cap, const char *dir,
                       const char *name)
{
    char real[PATH_MAX];

    if (dir[0] == '\0')
        return;
    /* The resolved form first: it is usually the longer one. */
    if (realpath(dir, real) != NULL)
        replace_all(buf, cap, real, name);
    /* A bare relative name ("data") would also match ordinary words. */
    if (strchr(dir, '/') != NULL)
        replace_all(buf, cap, dir, name);
}

/* Error answers name files relative to data_dir: where the broker keeps
 * its data on the machine is for the log, not for clients. */
void http_redact_paths(const struct http_req *r, const char *msg, char *out,
                       size_t cap)
{
    const struct config *cfg = r->srv->deps.cfg;

    snprintf(out, cap, "%s", msg);
    if (cfg == NULL)
        return;
    redact_dir(out, cap, cfg->cluster.data_dir, "cluster.data_dir");
    redact_dir(out, cap, cfg->data_dir, "data_dir");
}

enum MHD_Result http_reply_error_with(struct http_req *r, int code,
                                      json_t *extra, const char *msg)
{
    char text[BRK_ERRMSG_LEN + 256];
    json_t *o;

    http_redact_paths(r, msg && msg[0] ? msg : brk_err_str(code), text,
                      sizeof(text));
    o = json_pack("{s:s, s:s}", "error", text, "code", brk_err_word(code));

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
