/* Internals of the HTTP layer: the per-request context, routing and
 * reply helpers shared by the handler files (h_*.c). */
#ifndef BROKER_HTTP_INTERNAL_H
#define BROKER_HTTP_INTERNAL_H
#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/buf.h"
#include "broker/http.h"
#include "broker/work.h"

#define HTTP_MAX_PARAMS 4

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_deps deps;
    atomic_int suspended;       /* connections waiting for the loop */
    atomic_int active;          /* requests begun and not yet completed */
    char node_id[24];           /* X-Broker-Node value */
    MHD_socket quiesced_fd;     /* listening socket, closed after stop */
};

enum req_state { REQ_NEW, REQ_PENDING, REQ_DONE, REQ_ANSWERED };

struct http_req;
typedef enum MHD_Result (*http_handler)(struct http_req *r);

struct route {
    const char *method;
    const char *pattern;        /* a star stands for one path segment */
    http_handler fn;
    const char *name;           /* metrics label */
    bool write;                 /* forwarded to the leader in a cluster */
};

struct http_req {
    bool begun;                 /* the handler has been called */
    size_t uri_len;             /* bytes of the target up to a NUL */
    bool uri_len_known;         /* uri_len set (by on_uri) */
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method;
    const char *url;            /* raw (still percent-encoded) path */
    char *params[HTTP_MAX_PARAMS]; /* decoded '*' segments */
    int n_params;
    bool param_bad[HTTP_MAX_PARAMS]; /* decoded to something unusable */
    char *body;
    size_t body_len, body_cap;
    bool body_too_large;
    uint64_t body_seen;         /* bytes received, kept or discarded */
    enum req_state state;
    int route;                  /* index into the route table, -1 none */
    struct work *work;          /* submitted work, freed with the request */
    http_handler on_done;       /* runs once the loop answered */
    struct topic *topic;        /* referenced: produce/fetch context */
    uint64_t t0_ns;             /* arrival, for latency */
    bool batch;                 /* produce: answer in the batch form */
    uint32_t part;              /* fetch: partition */
    uint64_t off;               /* fetch: offset */
    uint64_t limit;             /* fetch: record limit */
    uint64_t max_bytes;         /* fetch: byte cap, 0 = none */
    char *warning;              /* Warning header for a 2xx answer, or NULL */
    char idem_key[CMD_IDEM_KEY_MAX + 1]; /* Idempotency-Key, "" = none */
    uint64_t idem_fp;           /* fingerprint of method, path, query, body */
    bool idem_replayed;         /* a relayed answer was a replay */
};

/* ==== router.c ==== */
enum MHD_Result router_dispatch(struct http_req *r);
const char *const *router_route_names(size_t *n);
bool router_is_write(const struct http_req *r);
/* Percent-decode @in (len bytes) into a malloc'd string; *@bad is set when
 * the result holds a NUL byte or a broken escape. */
char *http_decode(const char *in, size_t len, bool *bad);
/* Decoded query argument or NULL (caller frees). */
char *http_query(struct http_req *r, const char *key);

/* ==== reply.c ==== */
enum MHD_Result http_reply_raw(struct http_req *r, int status,
                               const char *content_type, char *body,
                               size_t len); /* takes malloc'd @body */
enum MHD_Result http_reply_json(struct http_req *r, int status, json_t *o);
enum MHD_Result http_reply_empty(struct http_req *r, int status);
/* {"error": msg, "code": word} with the status of @code. */
enum MHD_Result http_reply_error(struct http_req *r, int code,
                                 const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like http_reply_error, with extra fields merged into the body (stolen). */
enum MHD_Result http_reply_error_with(struct http_req *r, int code,
                                      json_t *extra, const char *msg);

/* Copy @msg into @out (@cap bytes) with data_dir and cluster.data_dir
 * replaced by "<data_dir>" and "<cluster.data_dir>", as error answers. */
void http_redact_paths(const struct http_req *r, const char *msg, char *out,
                       size_t cap);

/* Relay a leader's answer (@body malloc'd, taken) with its node id and
 * X-Forwarded-By set to this node. */
enum MHD_Result http_reply_relay(struct http_req *r, int status,
                                 const char *content_type, char *body,
                                 size_t len, const char *leader_node);

/* ==== idempotency.c ==== */
/* Read and check the Idempotency-Key of a write and fingerprint the
 * request; false after replying 400 for a malformed key. */
bool http_idem_parse(struct http_req *r, enum MHD_Result *ret);
/* Give @r the key @key (a relay's own), fingerprinted as if sent: a node
 * that becomes leader while relaying applies it under the same key. */
void http_idem_assign(struct http_req *r, const char *key);
/* The Idempotent-Replayed header when the answer is a replay. */
void http_idem_headers(struct http_req *r, struct MHD_Response *resp);

/* ==== forwarding.c ==== */
/* Run @local when this node leads (or is standalone), else relay to the
 * leader, retrying during elections. */
enum MHD_Result http_forward_write(struct http_req *r, http_handler local);

/* ==== server.c ==== */
/* Suspend the connection and hand @w to the loop thread; @on_done answers
 * once it is back. @w is freed with the request. */
enum MHD_Result http_submit(struct http_req *r, struct work *w,
                            http_handler on_done);
struct work *http_work_new(struct http_req *r, enum work_type type);
/* The parsed JSON body (an object), or NULL after replying 400. */
json_t *http_body_object(struct http_req *r, enum MHD_Result *ret);

/* ==== request_check.c ==== */
/* First call: false with the reason in @why (a 400) when the request is
 * one that a proxy in front of us could read differently: a NUL byte in
 * the target, duplicate Content-Length, Content-Length with
 * Transfer-Encoding, a header name with spaces or other non-token bytes,
 * and the like. @version is MHD's. */
bool http_request_check(struct http_req *r, const char *version, char *why,
                        size_t cap);

/* ==== internal_auth.c ==== */
/* True for "/internal" and every path under "/internal/". */
bool http_is_internal_path(const char *url);
/* With a cluster secret configured, a request to an internal path must
 * carry it: false after replying 401 (none) or 403 (wrong). */
bool http_internal_allowed(struct http_req *r, enum MHD_Result *ret);
/* The peer's address (MHD's), or NULL. */
const struct sockaddr *http_client_addr(struct http_req *r);
/* The peer's IP as text ("?" when unknown). */
void http_client_host(struct http_req *r, char *out, size_t cap);

/* ==== handlers ==== */
enum MHD_Result h_produce(struct http_req *r);
/* Before a produce is run or relayed: a body that looks like a JSON
 * object under another Content-Type gets r->warning and a debug line. */
void h_produce_hint(struct http_req *r);
enum MHD_Result h_fetch(struct http_req *r);
enum MHD_Result h_topics_create(struct http_req *r);
enum MHD_Result h_topics_list(struct http_req *r);
enum MHD_Result h_topic_get(struct http_req *r);
enum MHD_Result h_topic_delete(struct http_req *r);
enum MHD_Result h_group_commit(struct http_req *r);
enum MHD_Result h_group_offsets(struct http_req *r);
enum MHD_Result h_groups_list(struct http_req *r);
enum MHD_Result h_group_delete(struct http_req *r);
enum MHD_Result h_group_claim(struct http_req *r);
enum MHD_Result h_cluster_status(struct http_req *r);
enum MHD_Result h_cluster_leader(struct http_req *r);
enum MHD_Result h_cluster_members(struct http_req *r);
enum MHD_Result h_cluster_member_add(struct http_req *r);
enum MHD_Result h_cluster_member_remove(struct http_req *r);
enum MHD_Result h_cluster_transfer(struct http_req *r);
enum MHD_Result h_cluster_raft(struct http_req *r);
enum MHD_Result h_cluster_overview(struct http_req *r);
enum MHD_Result h_healthz(struct http_req *r);
enum MHD_Result h_readyz(struct http_req *r);
enum MHD_Result h_metrics(struct http_req *r);
enum MHD_Result h_static(struct http_req *r);
enum MHD_Result h_internal_records(struct http_req *r);
enum MHD_Result h_internal_member(struct http_req *r);
enum MHD_Result h_internal_whoami(struct http_req *r);
enum MHD_Result h_internal_digest(struct http_req *r);
enum MHD_Result h_internal_repair(struct http_req *r);

/* ==== shared parsing helpers (h_common.c) ==== */
/* Validate params[i] as a topic (or group) name; replies 400 if not. */
bool http_param_topic(struct http_req *r, int i, enum MHD_Result *ret);
bool http_param_group(struct http_req *r, int i, enum MHD_Result *ret);
/* Parse a non-negative integer <= @max from @s; false when not one. */
bool http_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* Query argument @key as an integer in [@min, @max], @def when absent;
 * replies 400 naming the argument and returns false when invalid. */
bool http_query_u64(struct http_req *r, const char *key, uint64_t min,
                    uint64_t max, uint64_t def, uint64_t *out,
                    enum MHD_Result *ret);
/* Integer JSON field @key of @o in [@min, @max], @def when absent (or
 * null); replies 400 naming @field and returns false otherwise. */
bool http_json_u64(struct http_req *r, json_t *o, const char *key,
                   const char *field, uint64_t min, uint64_t max,
                   uint64_t def, uint64_t *out, enum MHD_Result *ret);
/* Strict bodies (API.md v2): every key of the JSON object @o must be in
 * the NULL-terminated @allowed, else BRK_EINVAL with "unknown field
 * '<@prefix><key>'" in @errmsg. Each handler keeps its own list next to
 * it, so that a new field is accepted only where it is implemented. */
int http_json_fields(json_t *o, const char *const *allowed,
                     const char *prefix, char *errmsg);
/* The same, replying 400 and returning false on an unknown field. */
bool http_json_check_fields(struct http_req *r, json_t *o,
                            const char *const *allowed, const char *prefix,
                            enum MHD_Result *ret);
/* http_body_object, then http_json_check_fields on its top level. */
json_t *http_body_fields(struct http_req *r, const char *const *allowed,
                         enum MHD_Result *ret);
/* Append one fetched record as a JSON object ("partition" included when
 * @with_partition). */
void http_write_message(struct buf *b, const struct record *rec,
                        uint32_t partition, bool with_partition);
/* Go-style duration text ("168h", "1h30m", "90s" -> "1m30s"). */
void http_format_duration(int64_t ms, char *out, size_t cap);

#endif
