/* Writes on a follower: relay them to the leader (libcurl, keep-alive) and
 * pass its answer back. While an election runs, retry for a bounded time,
 * then answer 503 no_leader. A request that was already forwarded is
 * never forwarded again, so there are no loops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/clock.h"
#include "broker/forward.h"
#include "broker/metrics.h"
#include "http_internal.h"

#define FORWARD_WAIT_MS 5000
#define FORWARD_RETRY_MS 100
#define FORWARD_TIMEOUT_MS 10000L
#define FORWARD_CLAIM_TIMEOUT_MS 40000L /* above the longest claim wait */

struct query_ctx {
    struct buf *b;
    bool first;
};

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value)
{
    struct query_ctx *q = cls;

    (void)kind;
    buf_puts(q->b, q->first ? "?" : "&");
    q->first = false;
    buf_puts(q->b, key);
    if (value != NULL) {
        buf_puts(q->b, "=");
        buf_puts(q->b, value);
    }
    return MHD_YES;
}

/* The raw path plus the query, as the client sent them (no unescaping is
 * configured, so keys and values are still percent-encoded). */
static char *request_target(struct http_req *r)
{
    struct buf b;
    struct query_ctx q = {&b, true};

    buf_init(&b);
    buf_puts(&b, r->url);
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, add_arg, &q);
    if (b.oom) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}

static int try_forward(struct http_req *r, const char *leader,
                       struct forward_response *resp, char *errmsg)
{
    char *target = request_target(r);
    struct forward_request req = {
        .method = r->method,
        .base = leader,
        .path = target,
        .content_type = MHD_lookup_connection_value(
            r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        .body = r->body_len ? r->body : NULL,
        .len = r->body_len,
        .forwarded_by = r->srv->node_id,
        .timeout_ms = strstr(r->url, "/claim") ? FORWARD_CLAIM_TIMEOUT_MS
                                               : FORWARD_TIMEOUT_MS};
    int rv;

    if (target == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "out of memory");
    if (strcmp(r->method, "POST") == 0 && req.body == NULL) {
        req.body = "";
        req.len = 0;
    }
    rv = forward_call(&req, resp, errmsg);
    free(target);
    return rv;
}

static enum MHD_Result relay(struct http_req *r, struct forward_response *resp)
{
    metrics_add(MET_FORWARDED_REQUESTS, 1);
    return http_reply_relay(r, resp->status,
                            resp->content_type[0] ? resp->content_type : NULL,
                            resp->body, resp->len, resp->broker_node);
}

/* Whether the leader said the write may have been committed all the same
 * (it lost leadership or stopped after appending it). */
static bool maybe_applied(const struct forward_response *resp)
{
    return resp->body != NULL && strstr(resp->body, BRK_MAYBE_APPLIED) != NULL;
}

/* One attempt: 1 when answered, 0 to retry later. Retrying is safe only
 * when the request cannot have reached a leader: no connection, or a 503
 * from a node that is not leading (it applies nothing). A request sent to
 * a leader that then died, or that answered BRK_MAYBE_APPLIED, may have
 * been committed: pass on 503 "may or may not be applied" rather than
 * write it a second time. */
static int attempt(struct http_req *r, const struct node_status *st,
                   bool last, enum MHD_Result *ret, char *errmsg)
{
    struct forward_response resp;
    int rv;

    if (st->leader_id == 0 || st->leader.http_address[0] == '\0') {
        snprintf(errmsg, BRK_ERRMSG_LEN, "no leader is known");
        return 0;
    }
    rv = try_forward(r, st->leader.http_address, &resp, errmsg);
    if (rv == BRK_EFORWARD) {
        metrics_add(MET_FORWARD_ERRORS, 1);
        *ret = http_reply_error(r, BRK_ENO_LEADER, "the leader did not answer "
                                "(%s); the write may or may not have been "
                                "applied: retry", errmsg);
        return 1;
    }
    if (rv != 0)
        return 0;
    if (resp.status == 503 && !last && !maybe_applied(&resp)) {
        snprintf(errmsg, BRK_ERRMSG_LEN, "node %llu is not leading yet",
                 (unsigned long long)st->leader_id);
        forward_response_free(&resp);
        return 0;
    }
    *ret = relay(r, &resp); /* the body now belongs to the response */
    return 1;
}

enum MHD_Result http_forward_write(struct http_req *r, http_handler local)
{
    const char *by = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 "X-Forwarded-By");
    uint64_t deadline = clock_mono_ns() + FORWARD_WAIT_MS * 1000000ull;
    struct node_status st;
    enum MHD_Result ret;
    char errmsg[BRK_ERRMSG_LEN] = "no leader is known";

    for (;;) {
        bool last = clock_mono_ns() >= deadline;
        node_status(r->srv->deps.node, &st);
        if (!st.cluster || (st.leader_id == st.node_id &&
                            st.state == NODE_STATE_LEADER))
            return local(r);
        /* Relayed once already: never relay again (no loops). */
        if (by != NULL) {
            snprintf(errmsg, sizeof(errmsg), "this node is not the leader");
            break;
        }
        if (attempt(r, &st, last, &ret, errmsg))
            return ret;
        if (forward_aborting())
            return http_reply_error(r, BRK_ESHUTDOWN, "this node is shutting "
                                    "down; send the write to another node");
        if (last)
            break;
        usleep(FORWARD_RETRY_MS * 1000);
    }
    metrics_add(MET_FORWARD_ERRORS, 1);
    return http_reply_error(r, BRK_ENO_LEADER, "no leader reachable: %s",
                            errmsg);
}
