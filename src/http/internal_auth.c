/* Node-to-node routes (every path under /internal/) need the cluster
 * secret when one is configured: checked once, by path prefix, before
 * routing, so that a new /internal route is covered without code of its
 * own. The secret travels in X-Cluster-Secret (forward.c sends it). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "broker/forward.h"
#include "broker/log.h"
#include "broker/secret.h"
#include "http_internal.h"

#define INTERNAL_PREFIX "/internal"

bool http_is_internal_path(const char *url)
{
    size_t n = strlen(INTERNAL_PREFIX);

    return strncmp(url, INTERNAL_PREFIX, n) == 0 &&
           (url[n] == '/' || url[n] == '\0');
}

/* One warning a second at most: refused requests must not flood the log.
 * The presented value is never logged. */
static void warn_refused(struct http_req *r, const char *why)
{
    static atomic_llong last;
    long long now = (long long)time(NULL);
    long long prev = atomic_load(&last);
    char peer[64];

    if (prev == now || !atomic_compare_exchange_strong(&last, &prev, now))
        return;
    http_client_host(r, peer, sizeof(peer));
    log_warn("refused %s %.64s from %s: %s", r->method, r->url, peer, why);
}

bool http_internal_allowed(struct http_req *r, enum MHD_Result *ret)
{
    const char *secret = r->srv->deps.cfg->cluster.secret;
    const char *got;

    if (secret[0] == '\0' || !http_is_internal_path(r->url))
        return true;
    got = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                      FORWARD_SECRET_HEADER);
    if (got == NULL) {
        warn_refused(r, "no cluster secret");
        *ret = http_reply_error(r, BRK_EUNAUTHORIZED, "node-to-node route: "
                                "the cluster secret is required (header "
                                FORWARD_SECRET_HEADER ")");
        return false;
    }
    if (!secret_equal(secret, got)) {
        warn_refused(r, "wrong cluster secret");
        *ret = http_reply_error(r, BRK_EFORBIDDEN, "node-to-node route: "
                                "wrong cluster secret");
        return false;
    }
    return true;
}

const struct sockaddr *http_client_addr(struct http_req *r)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
        r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    return ci != NULL ? ci->client_addr : NULL;
}

void http_client_host(struct http_req *r, char *out, size_t cap)
{
    const struct sockaddr *sa = http_client_addr(r);

    snprintf(out, cap, "?");
    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
                  (socklen_t)cap);
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                  out, (socklen_t)cap);
}
