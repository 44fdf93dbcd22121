/* Routing: the route table of API.md, matched segment by segment on the
 * raw path; '*' segments are percent-decoded into request parameters. */
#include <stdlib.h>
#include <string.h>

#include "broker/metrics.h"
#include "http_internal.h"

static const struct route routes[] = {
    {"POST", "/topics/*/messages", h_produce, "produce", true},
    {"GET", "/topics/*/partitions/*/messages", h_fetch, "fetch", false},
    {"POST", "/topics", h_topics_create, "topics_create", true},
    {"GET", "/topics", h_topics_list, "topics_list", false},
    {"GET", "/topics/*", h_topic_get, "topic_get", false},
    {"DELETE", "/topics/*", h_topic_delete, "topic_delete", true},
    {"POST", "/groups/*/offsets", h_group_commit, "group_commit", true},
    {"GET", "/groups/*/offsets", h_group_offsets, "group_offsets", false},
    {"GET", "/groups", h_groups_list, "groups_list", false},
    {"DELETE", "/groups/*", h_group_delete, "group_delete", true},
    {"POST", "/groups/*/topics/*/claim", h_group_claim, "group_claim", true},
    {"GET", "/cluster/status", h_cluster_status, "cluster_status", false},
    {"GET", "/cluster/leader", h_cluster_leader, "cluster_leader", false},
    {"GET", "/cluster/members", h_cluster_members, "cluster_members", false},
    {"POST", "/cluster/members", h_cluster_member_add, "cluster_member_add",
     true},
    {"DELETE", "/cluster/members/*", h_cluster_member_remove,
     "cluster_member_remove", true},
    {"POST", "/cluster/leader/transfer", h_cluster_transfer,
     "cluster_transfer", true},
    {"GET", "/cluster/raft", h_cluster_raft, "cluster_raft", false},
    {"GET", "/cluster/overview", h_cluster_overview, "cluster_overview",
     false},
    {"GET", "/healthz", h_healthz, "healthz", false},
    {"GET", "/readyz", h_readyz, "readyz", false},
    {"GET", "/metrics", h_metrics, "metrics", false},
    {"GET", "/internal/records/*/*", h_internal_records, "internal_records",
     false},
    /* Not relayed: the leader checks where an announcement comes from. */
    {"POST", "/internal/members", h_internal_member, "internal_member",
     false},
    {"GET", "/internal/whoami", h_internal_whoami, "internal_whoami", false},
    {"GET", "/internal/digest/*/*", h_internal_digest, "internal_digest",
     false},
    {"POST", "/internal/repair/*/*", h_internal_repair, "internal_repair",
     false},
    {"GET", "/", h_static, "static", false},
    {"GET", "/ui/**", h_static, "ui", false},
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))
/* Per-route request counters have a slot per route (metrics.c). */
_Static_assert(N_ROUTES <= METRICS_MAX_ROUTES, "raise METRICS_MAX_ROUTES");

const char *const *router_route_names(size_t *n)
{
    static const char *names[N_ROUTES];
    size_t i;

    for (i = 0; i < N_ROUTES; i++)
        names[i] = routes[i].name;
    *n = N_ROUTES;
    return names;
}

bool router_is_write(const struct http_req *r)
{
    return r->route >= 0 && routes[r->route].write;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *http_decode(const char *in, size_t len, bool *bad)
{
    char *out = malloc(len + 1);
    size_t i, o = 0;

    *bad = false;
    if (out == NULL) {
        *bad = true;
        return NULL;
    }
    for (i = 0; i < len; i++) {
        int hi, lo;
        if (in[i] != '%') {
            out[o++] = in[i] == '+' ? ' ' : in[i];
            continue;
        }
        hi = i + 2 < len ? hexval(in[i + 1]) : -1;
        lo = i + 2 < len ? hexval(in[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            *bad = true;
            out[o++] = '%';
            continue;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

char *http_query(struct http_req *r, const char *key)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
                                                key);
    bool bad;
    char *d;

    if (v == NULL)
        return NULL;
    d = http_decode(v, strlen(v), &bad);
    if (d != NULL && bad) {
        free(d);
        return strdup("\x01"); /* present but not decodable: never valid */
    }
    return d;
}

/* Match @path against @pattern, filling r->params. A trailing "**" takes
 * the rest of the path (one parameter, undecoded). */
static bool match(struct http_req *r, const char *pattern, const char *path)
{
    const char *p = pattern, *s = path;

    r->n_params = 0;
    while (*p != '\0' && *s != '\0') {
        if (p[0] == '*' && p[1] == '*') {
            r->params[r->n_params++] = strdup(s);
            return r->params[r->n_params - 1] != NULL;
        }
        if (*p == '*') {
            size_t len = strcspn(s, "/");
            if (len == 0 || r->n_params >= HTTP_MAX_PARAMS)
                return false;
            r->params[r->n_params] = http_decode(s, len, &r->param_bad[r->n_params]);
            r->n_params++;
            s += len;
            p++;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *p == '\0' && (*s == '\0' || (s[0] == '/' && s[1] == '\0'));
}

static void clear_params(struct http_req *r)
{
    int i;

    for (i = 0; i < r->n_params; i++) {
        free(r->params[i]);
        r->params[i] = NULL;
        r->param_bad[i] = false;
    }
    r->n_params = 0;
}

/* HEAD is GET without a body (libmicrohttpd drops the body itself), so
 * probes such as `curl -I /healthz` work. */
static bool method_matches(const char *route, const char *method)
{
    return strcmp(route, method) == 0 ||
           (strcmp(route, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

enum MHD_Result router_dispatch(struct http_req *r)
{
    size_t i;
    bool path_known = false;
    enum MHD_Result ret;

    /* Before matching, so that unknown internal paths are refused alike. */
    if (!http_internal_allowed(r, &ret))
        return ret;
    for (i = 0; i < N_ROUTES; i++) {
        bool ok = match(r, routes[i].pattern, r->url);
        if (ok && method_matches(routes[i].method, r->method)) {
            r->route = (int)i;
            if (routes[i].fn == h_produce)
                h_produce_hint(r);
            if (routes[i].write) {
                enum MHD_Result ret;
                if (!http_idem_parse(r, &ret))
                    return ret;
                return http_forward_write(r, routes[i].fn);
            }
            return routes[i].fn(r);
        }
        path_known = path_known || ok;
        clear_params(r);
    }
    if (path_known)
        return http_reply_error(r, BRK_EMETHOD, "method %s is not allowed "
                                "on %s", r->method, r->url);
    return http_reply_error(r, BRK_ENOT_FOUND, "no such endpoint: %s %s",
                            r->method, r->url);
}
