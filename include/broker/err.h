/* Error codes shared by every module, with their API word and HTTP status. */
#ifndef BROKER_ERR_H
#define BROKER_ERR_H

#define BRK_ERRMSG_LEN 512

/* In the message of a write that failed after it may have been committed
 * (the entry can still commit under the next leader). A follower that
 * relayed the write passes such an answer on and never sends the write
 * again (src/http/forwarding.c): a second copy could be stored. */
#define BRK_MAYBE_APPLIED "may or may not be applied"

/* X(name, API code word, HTTP status, default human sentence) */
#define BRK_ERR_MAP(X)                                                       \
    X(BRK_OK, "ok", 200, "ok")                                               \
    X(BRK_EINVAL, "bad_request", 400, "bad request")                         \
    X(BRK_EINVALID_TOPIC, "invalid_topic", 400, "invalid topic name")        \
    X(BRK_EINVALID_GROUP, "invalid_group", 400, "invalid group name")        \
    X(BRK_ENOT_FOUND, "not_found", 404, "not found")                         \
    X(BRK_EUNKNOWN_TOPIC, "unknown_topic", 404, "unknown topic")             \
    X(BRK_EUNKNOWN_PARTITION, "unknown_partition", 404, "unknown partition") \
    X(BRK_EUNKNOWN_GROUP, "unknown_group", 404, "unknown group")             \
    X(BRK_EUNKNOWN_MEMBER, "unknown_member", 404, "unknown member")          \
    X(BRK_EMETHOD, "method_not_allowed", 405, "method not allowed")          \
    X(BRK_ETOPIC_EXISTS, "topic_exists", 409, "topic already exists")        \
    X(BRK_ECONFLICT, "conflict", 409, "conflicting change in progress")      \
    X(BRK_EMSG_TOO_LARGE, "message_too_large", 413, "message too large")     \
    X(BRK_EREQ_TOO_LARGE, "request_too_large", 413, "request too large")     \
    X(BRK_EOFFSET_RANGE, "offset_out_of_range", 416, "offset out of range")  \
    X(BRK_EIDEM_REUSED, "idempotency_key_reused", 422,                       \
      "idempotency key reused for another request")                         \
    X(BRK_EIO, "io_error", 500, "I/O error")                                 \
    X(BRK_ECORRUPT, "corrupt", 500, "corrupt data")                          \
    X(BRK_ESHORT, "short_read", 500, "short read")                           \
    X(BRK_ENOMEM, "out_of_memory", 500, "out of memory")                     \
    X(BRK_EINTERNAL, "internal", 500, "internal error")                      \
    X(BRK_EFORWARD, "forward_failed", 502, "forwarding to the leader failed")\
    X(BRK_ENO_LEADER, "no_leader", 503, "no leader")                         \
    X(BRK_EUNAVAILABLE, "unavailable", 503, "service unavailable")           \
    X(BRK_ESHUTDOWN, "shutting_down", 503, "broker is shutting down")        \
    X(BRK_EIDEM_FULL, "idempotency_keys_full", 503,                          \
      "too many idempotency keys held")                                     \
    X(BRK_ETIMEOUT, "timeout", 504, "timed out")                             \
    X(BRK_ESTORAGE_FULL, "storage_full", 507, "storage full")               \
    X(BRK_EUNAUTHORIZED, "unauthorized", 401, "unauthorized")              \
    X(BRK_EFORBIDDEN, "forbidden", 403, "forbidden")

#define BRK__ERR_ENUM(name, word, status, str) name,
enum brk_err { BRK_ERR_MAP(BRK__ERR_ENUM) BRK_ERR_COUNT };
#undef BRK__ERR_ENUM

/* The API `code` word ("unknown_topic"); "internal" for an unknown code. */
const char *brk_err_word(int code);
/* The HTTP status that goes with @code; 500 for an unknown code. */
int brk_err_http_status(int code);
/* A default human sentence for @code. */
const char *brk_err_str(int code);

/* The code for a failed file-system call's errno: BRK_ESTORAGE_FULL when
 * the disk (or quota) is full, BRK_EIO otherwise. */
int brk_err_from_errno(int e);

/* printf into a caller's BRK_ERRMSG_LEN buffer (NULL allowed: nothing
 * written). Returns @code so that `return brk_errf(m, BRK_EIO, ...)` works. */
int brk_errf(char *errmsg, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the message already in @errmsg: "<prefix>: <old message>". */
int brk_errwrap(char *errmsg, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
