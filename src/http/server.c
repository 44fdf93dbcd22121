/* libmicrohttpd daemon: request contexts, bodies with limits, suspension
 * while the loop thread works, and a clean stop.
 *
 * DESIGN (see ../shared/notes/libmicrohttpd-0.9.75.md): internal epoll
 * thread pool with suspend/resume. A request that needs the loop thread is
 * suspended first, then queued; the loop's done callback resumes it, and
 * MHD calls the handler again on a pool thread to send the answer. */
#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "broker/clock.h"
#include "broker/forward.h"
#include "broker/log.h"
#include "http_internal.h"

#define HTTP_THREADS 2
/* Followers block a pool thread per forwarded write (libcurl easy API):
 * more threads keep concurrent forwards from queueing behind each other. */
#define HTTP_THREADS_CLUSTER 32
#define HTTP_CONNECTION_LIMIT 10000
#define HTTP_CONNECTION_MEMORY 16384

/* ==== request lifecycle ==== */

static void work_free(struct work *w)
{
    if (w == NULL)
        return;
    cmd_clear(&w->cmd);
    cmd_result_clear(&w->res);
    topic_put(w->topic);
    free(w);
}

static void req_free(struct http_req *r)
{
    int i;

    for (i = 0; i < r->n_params; i++)
        free(r->params[i]);
    free(r->body);
    free(r->warning);
    work_free(r->work);
    topic_put(r->topic);
    free(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_req *r = *con_cls;

    (void)c;
    (void)toe;
    if (r == NULL)
        return;
    /* Allocated by on_uri but never handled (MHD refused the headers). */
    if (r->begun)
        atomic_fetch_sub(&s->active, 1);
    /* Resumed but closed before its answer was built: no longer waiting. */
    if (r->state == REQ_PENDING || r->state == REQ_DONE)
        atomic_fetch_sub(&s->suspended, 1);
    req_free(r);
    *con_cls = NULL;
}

struct work *http_work_new(struct http_req *r, enum work_type type)
{
    struct work *w = calloc(1, sizeof(*w));

    if (w != NULL)
        w->type = type;
    /* Every command of a keyed write carries its key to the apply. */
    if (w != NULL && type == WORK_CMD && r->idem_key[0] != '\0') {
        memcpy(w->cmd.idem_key, r->idem_key, sizeof(w->cmd.idem_key));
        w->cmd.idem_fp = r->idem_fp;
    }
    return w;
}

/* Loop thread: the work is answered. Nothing touches @r after resume. */
static void req_work_done(struct work *w)
{
    struct http_req *r = w->data;

    r->state = REQ_DONE;
    MHD_resume_connection(r->conn);
}

enum MHD_Result http_submit(struct http_req *r, struct work *w,
                            http_handler on_done)
{
    r->work = w;
    r->on_done = on_done;
    r->state = REQ_PENDING;
    w->data = r;
    w->done = req_work_done;
    atomic_fetch_add(&r->srv->suspended, 1);
    MHD_suspend_connection(r->conn);
    if (node_submit(r->srv->deps.node, w) != 0) {
        w->res.err = BRK_ESHUTDOWN;
        snprintf(w->res.errmsg, sizeof(w->res.errmsg),
                 "the broker is shutting down");
        req_work_done(w);
    }
    return MHD_YES;
}

/* ==== bodies ==== */

json_t *http_body_object(struct http_req *r, enum MHD_Result *ret)
{
    json_error_t jerr;
    json_t *o;

    if (r->body_len == 0) {
        *ret = http_reply_error(r, BRK_EINVAL, "request body must be a JSON "
                                               "object");
        return NULL;
    }
    /* "\u0000" is valid JSON: values keep it; names refuse it later. */
    o = json_loadb(r->body, r->body_len, JSON_ALLOW_NUL, &jerr);
    if (o == NULL) {
        *ret = http_reply_error(r, BRK_EINVAL, "malformed JSON body at line "
                                "%d column %d: %s", jerr.line, jerr.column,
                                jerr.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        *ret = http_reply_error(r, BRK_EINVAL, "request body must be a JSON "
                                               "object");
        return NULL;
    }
    return o;
}

static bool body_append(struct http_req *r, const char *data, size_t len)
{
    size_t max = (size_t)r->srv->deps.cfg->max_request_bytes;
    size_t cap;
    char *b;

    if (r->body_too_large || len > max - r->body_len) {
        r->body_too_large = true;
        return false;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        b = realloc(r->body, cap);
        if (b == NULL) {
            r->body_too_large = true;
            return false;
        }
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return true;
}

static struct http_req *req_new(struct http_server *s,
                                struct MHD_Connection *c)
{
    struct http_req *r = calloc(1, sizeof(*r));

    if (r != NULL) {
        r->srv = s;
        r->conn = c;
        r->route = -1;
    }
    return r;
}

/* MHD calls this with the request target before it cuts the query off
 * and before the first handler call: the only moment its length can be
 * seen whole (a NUL byte in it ends the C string early). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct http_req *r = req_new(cls, c);

    /* MHD passes NULL when the request line has no target. */
    if (r != NULL && uri != NULL) {
        r->uri_len = strlen(uri);
        r->uri_len_known = true;
    }
    return r;
}

/* First call: headers only. Refuse what proxies could read differently
 * (request_check.c), then a declared oversized body before it is read
 * (MHD then closes the connection without reading it). */
static enum MHD_Result req_begin(struct http_server *s, struct MHD_Connection *c,
                                 const char *url, const char *method,
                                 const char *version, void **con_cls)
{
    struct http_req *r = *con_cls;
    char why[BRK_ERRMSG_LEN];
    const char *cl;

    if (r == NULL && (r = req_new(s, c)) == NULL)
        return MHD_NO;
    r->begun = true;
    r->url = url;
    r->method = method;
    r->t0_ns = clock_mono_ns();
    *con_cls = r;
    atomic_fetch_add(&s->active, 1);
    if (!http_request_check(r, version, why, sizeof(why)))
        return http_reply_error(r, BRK_EINVAL, "%s", why);
    cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL &&
        strtoull(cl, NULL, 10) > (unsigned long long)s->deps.cfg->max_request_bytes)
        return http_reply_error(r, BRK_EREQ_TOO_LARGE, "request body is larger "
                                "than max_request_bytes (%lld)",
                                (long long)s->deps.cfg->max_request_bytes);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_req *r = *con_cls;

    if (r == NULL || !r->begun)
        return req_begin(s, c, url, method, version, con_cls);
    if (*data_size != 0) {
        /* A chunked body past the limit: discard it up to twice the limit
         * so the 413 can be answered, then drop the connection. */
        r->body_seen += *data_size;
        if (!body_append(r, data, *data_size) &&
            r->body_seen > 2 * (uint64_t)s->deps.cfg->max_request_bytes)
            return MHD_NO;
        *data_size = 0;
        return MHD_YES;
    }
    if (r->state == REQ_DONE) {
        r->state = REQ_ANSWERED;
        atomic_fetch_sub(&s->suspended, 1);
        return r->on_done(r);
    }
    if (r->body_too_large)
        return http_reply_error(r, BRK_EREQ_TOO_LARGE, "request body is "
                                "larger than max_request_bytes (%lld)",
                                (long long)s->deps.cfg->max_request_bytes);
    return router_dispatch(r);
}

/* Keep the URL as sent: the router splits it on '/' before decoding each
 * segment, so that "a%2Fb" is a (bad) name rather than two segments. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* Resolve the bind address (numeric or a host name) with the port. */
static int http_resolve_bind(const char *host, int port,
                             struct sockaddr_storage *out, char *errmsg)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    int rv;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rv = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
    if (rv != 0 || res == NULL)
        return brk_errf(errmsg, BRK_EINVAL, "server.host '%s': %s", host,
                        gai_strerror(rv));
    memset(out, 0, sizeof(*out));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* Why MHD could not listen: bind the address ourselves and report the
 * errno (EACCES for a port below 1024 without the privilege, EADDRINUSE,
 * EADDRNOTAVAIL), not a guess. */
static int listen_error(const struct config *cfg,
                        const struct sockaddr_storage *addr, char *errmsg)
{
    socklen_t len = addr->ss_family == AF_INET6
                        ? sizeof(struct sockaddr_in6)
                        : sizeof(struct sockaddr_in);
    int fd = socket(addr->ss_family, SOCK_STREAM, 0), on = 1, err = 0;
    const char *hint = "";

    if (fd < 0) {
        err = errno;
    } else {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (bind(fd, (const struct sockaddr *)addr, len) != 0 ||
            listen(fd, 1) != 0)
            err = errno;
        close(fd);
    }
    if (err == EACCES)
        hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
    else if (err == EADDRINUSE)
        hint = " (another process listens there)";
    if (err == 0)
        return brk_errf(errmsg, BRK_EIO, "cannot listen on %s:%d (the HTTP "
                        "server did not start; see the log above)",
                        cfg->server.host, cfg->server.port);
    return brk_errf(errmsg, BRK_EIO, "cannot listen on %s:%d: %s%s",
                    cfg->server.host, cfg->server.port, strerror(err), hint);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int http_server_start(const struct http_deps *deps, struct http_server **out,
                      char *errmsg)
{
    struct http_server *s = calloc(1, sizeof(*s));
    struct sockaddr_storage addr;
    struct node_status st;

    if (s == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "allocate HTTP server");
    s->deps = *deps;
    s->quiesced_fd = MHD_INVALID_SOCKET;
    node_status(deps->node, &st);
    snprintf(s->node_id, sizeof(s->node_id), "%llu",
             (unsigned long long)st.node_id);
    if (http_resolve_bind(deps->cfg->server.host, deps->cfg->server.port,
                          &addr, errmsg) != 0) {
        free(s);
        return BRK_EINVAL;
    }
    raise_fd_limit();
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
            MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
            (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        (uint16_t)deps->cfg->server.port, NULL, NULL, on_request, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(deps->cfg->cluster.enabled ? HTTP_THREADS_CLUSTER
                                              : HTTP_THREADS),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)deps->cfg->server.max_connections_per_client,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONNECTION_MEMORY,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, s, MHD_OPTION_END);
    if (s->daemon == NULL) {
        free(s);
        return listen_error(deps->cfg, &addr, errmsg);
    }
    *out = s;
    return 0;
}

void http_server_quiesce(struct http_server *s)
{
    forward_abort_all();
    /* The listening socket is ours to close, but only after
     * MHD_stop_daemon: the pool threads drop it from their epoll sets
     * later, and closing it first makes MHD abort ("Failed to remove
     * listen FD from epoll set"). */
    s->quiesced_fd = MHD_quiesce_daemon(s->daemon);
}

bool http_server_stop(struct http_server *s)
{
    int i;

    /* MHD aborts if stopped with suspended connections, and drops answers
     * still queued: wait (bounded) until every request in progress has
     * been answered. */
    for (i = 0; i < 500 && (atomic_load(&s->suspended) > 0 ||
                            atomic_load(&s->active) > 0); i++)
        usleep(10000);
    if (atomic_load(&s->suspended) > 0) {
        /* Its threads still run: nothing they use may be freed. */
        log_warn("%d requests still suspended at stop",
                 atomic_load(&s->suspended));
        return false;
    }
    MHD_stop_daemon(s->daemon);
    if (s->quiesced_fd != MHD_INVALID_SOCKET)
        close(s->quiesced_fd);
    free(s);
    return true;
}
