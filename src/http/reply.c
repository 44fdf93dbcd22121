/* Replies: JSON bodies, error bodies, X-Broker-Node, request metrics. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/log.h"
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

/* A directory worth hiding: a path that says where the data lives on
 * this machine (absolute, or relative with a directory part). */
static size_t hidden_len(const char *dir)
{
    size_t n = strlen(dir);

    while (n > 1 && dir[n - 1] == '/')
        n--;
    return n >= 2 && (dir[0] == '/' || strchr(dir, '/') != NULL) ? n : 0;
}

/* Copy @in to @out with the data directories replaced by their config
 * field names: answers must not show the layout of the server's disk
 * (the log keeps the full text). The longer directory is tried first. */
static void scrub_paths(const struct config *cfg, const char *in, char *out,
                        size_t cap)
{
    const char *dirs[2] = {cfg->data_dir, cfg->cluster.data_dir};
    const char *names[2] = {"<data_dir>", "<cluster.data_dir>"};
    size_t lens[2] = {hidden_len(dirs[0]), hidden_len(dirs[1])};
    size_t o = 0, k;
    int first = lens[1] > lens[0] ? 1 : 0;

    while (*in != '\0' && o + 1 < cap) {
        for (k = 0; k < 2; k++) {
            int d = k == 0 ? first : 1 - first;
            if (lens[d] > 0 && strncmp(in, dirs[d], lens[d]) == 0) {
                o += (size_t)snprintf(out + o, cap - o, "%s", names[d]);
                in += lens[d];
                break;
            }
        }
        if (o >= cap) {
            o = cap - 1;
            break;
        }
        if (k == 2)
            out[o++] = *in++;
    }
    out[o] = '\0';
}

enum MHD_Result http_reply_error_with(struct http_req *r, int code,
                                      json_t *extra, const char *msg)
{
    char shown[BRK_ERRMSG_LEN], clean[BRK_ERRMSG_LEN];
    json_t *o;

    msg = msg && msg[0] ? utf8_clean(msg, clean, sizeof(clean))
                        : brk_err_str(code);
    scrub_paths(r->srv->deps.cfg, msg, shown, sizeof(shown));
    if (strcmp(shown, msg) != 0 || brk_err_http_status(code) == 500)
        log_warn("%s %.200s answered %d %s: %s", r->method ? r->method : "?",
                 r->url ? r->url : "?", brk_err_http_status(code),
                 brk_err_word(code), msg);
    o = json_pack("{s:s, s:s}", "error", shown, "code", brk_err_word(code));

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

void http_redact_paths(const struct http_req *r, const char *msg, char *out,
                       size_t cap)
{
    scrub_paths(r->srv->deps.cfg, msg, out, cap);
}
