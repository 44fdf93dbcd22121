/* Writes on a follower: relay them to the leader (libcurl, keep-alive) and
 * pass its answer back. While an election runs, retry for a bounded time,
 * then answer 503 no_leader. A request that was already forwarded is
 * never forwarded again, so there are no loops. */
#include <stdatomic.h>
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
/* A relay that may have reached a leader is retried this long. */
#define FORWARD_OUTCOME_MS 30000
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
        .idem_key = r->idem_key,
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

/* A relayed write the client sent without a key gets one of this node's
 * own: unique per node and boot, so that resending it after the leader
 * died applies it at most once. */
static void relay_key(struct http_req *r, const struct node_status *st)
{
    static atomic_ulong seq;
    char key[CMD_IDEM_KEY_MAX + 1];

    if (r->idem_key[0] != '\0')
        return;
    snprintf(key, sizeof(key), "fwd-%llu-%llx-%lu",
             (unsigned long long)st->node_id,
             (unsigned long long)st->started_ms,
             (unsigned long)atomic_fetch_add(&seq, 1) + 1);
    http_idem_assign(r, key);
}

/* A leader's 503 that says the write may have been applied (its leadership
 * was lost after proposing it). */
static bool maybe_applied(const struct forward_response *resp)
{
    return resp->body != NULL && strstr(resp->body, BRK_MAYBE_APPLIED) != NULL;
}

/* One attempt: 1 when answered, 0 to retry later. Every relay carries an
 * Idempotency-Key (relay_key), so a request that reached a leader that
 * then died is sent again, to the next leader, with the same key: the
 * state machine applies it at most once. *@sent notes that the outcome
 * of an attempt was not known (for the final answer). */
static int attempt(struct http_req *r, const struct node_status *st,
                   bool last, bool *sent, enum MHD_Result *ret, char *errmsg)
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
        metrics_add(MET_RELAY_RETRIES, 1);
        *sent = true;
        return 0;
    }
    if (rv != 0)
        return 0;
    if (resp.status == 503 && (maybe_applied(&resp) || !last) &&
        (resp.body == NULL || !strstr(resp.body, "idempotency_keys_full"))) {
        if (maybe_applied(&resp)) {
            *sent = true;
            metrics_add(MET_RELAY_RETRIES, 1);
        }
        snprintf(errmsg, BRK_ERRMSG_LEN, "node %llu is not leading (%.200s)",
                 (unsigned long long)st->leader_id,
                 resp.body ? resp.body : "");
        forward_response_free(&resp);
        return 0;
    }
    r->idem_replayed = strcmp(resp.replayed, "true") == 0;
    *ret = relay(r, &resp); /* the body now belongs to the response */
    return 1;
}

/* After the deadline, a relay whose outcome is not known says so, with
 * the key that makes a retry safe (also in the Idempotency-Key header). */
static enum MHD_Result reply_unknown(struct http_req *r, const char *errmsg)
{
    metrics_add(MET_FORWARD_ERRORS, 1);
    return http_reply_error(r, BRK_EUNAVAILABLE, "the outcome of this write "
                            "is not known: no leader answered it within %d s "
                            "(%s); retry it with the header 'Idempotency-Key: "
                            "%s', which applies it at most once",
                            FORWARD_OUTCOME_MS / 1000, errmsg, r->idem_key);
}

enum MHD_Result http_forward_write(struct http_req *r, http_handler local)
{
    const char *by = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 "X-Forwarded-By");
    uint64_t deadline = clock_mono_ns() + FORWARD_WAIT_MS * 1000000ull;
    struct node_status st;
    enum MHD_Result ret;
    char errmsg[BRK_ERRMSG_LEN] = "no leader is known";
    bool sent = false, was_sent = false;

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
        relay_key(r, &st);
        if (attempt(r, &st, last, &sent, &ret, errmsg))
            return ret;
        if (sent && !was_sent) { /* from now on, until the outcome is known */
            deadline = clock_mono_ns() + FORWARD_OUTCOME_MS * 1000000ull;
            last = false; /* a first send on the last try is retried too */
        }
        was_sent = sent;
        if (forward_aborting())
            return sent ? reply_unknown(r, "this node is shutting down")
                        : http_reply_error(r, BRK_ESHUTDOWN, "this node is "
                                           "shutting down; send the write "
                                           "to another node");
        if (last)
            break;
        usleep(FORWARD_RETRY_MS * 1000);
    }
    if (sent)
        return reply_unknown(r, errmsg);
    metrics_add(MET_FORWARD_ERRORS, 1);
    return http_reply_error(r, BRK_ENO_LEADER, "no leader reachable: %s",
                            errmsg);
}
