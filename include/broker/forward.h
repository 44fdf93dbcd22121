/* HTTP client for node-to-node calls (libcurl): relaying a follower's
 * write to the leader, registering a member's address, fetching records
 * for catch-up. One keep-alive easy handle per calling thread.
 * Never call it on the loop thread except for snapshot catch-up. */
#ifndef BROKER_FORWARD_H
#define BROKER_FORWARD_H
#include <stdbool.h>
#include <stddef.h>

#define FORWARD_MAX_BODY (64u << 20)

struct forward_response {
    int status;
    char *body;                   /* malloc'd, NUL-terminated */
    size_t len;
    char content_type[128];
    char broker_node[32];         /* X-Broker-Node of the answering node */
    char high_watermark[32];      /* X-High-Watermark (catch-up) */
    char replayed[8];             /* Idempotent-Replayed ("true") */
};

struct forward_request {
    const char *method;           /* "GET", "POST", "DELETE" */
    const char *base;             /* "host:port" */
    const char *path;             /* path and query, already encoded */
    const char *content_type;     /* may be NULL */
    const char *body;             /* may be NULL */
    size_t len;
    const char *forwarded_by;     /* X-Forwarded-By value, or NULL */
    const char *idem_key;         /* Idempotency-Key value, or NULL */
    long timeout_ms;
    const char *local_ip;         /* numeric source address, or NULL */
};

/* Perform @req. @req->base must pass addr_http_valid (a table entry
 * that does not is never called: BRK_EUNAVAILABLE). 0 with @out filled whenever an HTTP answer came back (any
 * status); BRK_EUNAVAILABLE when no connection could be made (the request
 * never left: safe to retry); BRK_EFORWARD when it may have been sent but
 * no answer came (a write may or may not have happened). @errmsg says
 * why. Free with forward_response_free. */
int forward_call(const struct forward_request *req,
                 struct forward_response *out, char *errmsg);
void forward_response_free(struct forward_response *r);

/* The header that carries the cluster secret on node-to-node requests. */
#define FORWARD_SECRET_HEADER "X-Cluster-Secret"

/* Set the cluster secret (cluster.secret, "" for none; copied). Once
 * set, forward_call sends it with every request (relayed writes,
 * announcements, catch-up, any later /internal call), so callers need
 * nothing more. Call once from main before any thread calls
 * forward_call. */
void forward_set_secret(const char *secret);

/* At shutdown: make every call in progress, and every later one, fail
 * at once (a relayed claim may wait 30 s otherwise). Any thread. */
void forward_abort_all(void);
bool forward_aborting(void);

#endif
