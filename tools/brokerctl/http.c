/* brokerctl's HTTP client: one request against a list of node URLs, with
 * failover to the next URL when a node cannot be reached (connection
 * refused, unresolvable, timed out before an answer). An answer of any
 * status, errors included, ends the search: the server has spoken. */
#include "brokerctl.h"

#include <stdlib.h>
#include <string.h>

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t add = size * n;
    if (add > RESP_MAX - r->len)
        return 0; /* too large: abort the transfer */
    char *grown = realloc(r->body, r->len + add + 1);
    if (!grown)
        return 0;
    r->body = grown;
    memcpy(r->body + r->len, data, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

/* May the request go to the next node? Always when this one could not be
 * reached; after the request was sent only for a GET: a write that timed
 * out may have been applied, and resending it elsewhere could apply it
 * twice (use --idempotency-key for safe resends of produce). */
static int unreachable(CURL *c, CURLcode rc, const char *method)
{
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return 1;
    if (rc != CURLE_OPERATION_TIMEDOUT && rc != CURLE_GOT_NOTHING &&
        rc != CURLE_RECV_ERROR && rc != CURLE_SEND_ERROR)
        return 0;
    curl_off_t sent = 0;
    curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &sent);
    return sent == 0 || !strcmp(method, "GET");
}

static struct curl_slist *build_headers(const struct req *q)
{
    struct curl_slist *h = NULL;
    char line[1024];
    if (q->content_type) {
        snprintf(line, sizeof line, "Content-Type: %s", q->content_type);
        h = curl_slist_append(h, line);
    }
    if (g_opt.token) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", g_opt.token);
        h = curl_slist_append(h, line);
    }
    if (q->idem_key) {
        snprintf(line, sizeof line, "Idempotency-Key: %s", q->idem_key);
        h = curl_slist_append(h, line);
    }
    h = curl_slist_append(h, "Expect:");
    return h;
}

static CURLcode try_one(CURL *c, const char *base, const struct req *q,
                        struct resp *r)
{
    char url[4096];
    int n = snprintf(url, sizeof url, "%s%s", base, q->path);
    if (n < 0 || (size_t)n >= sizeof url)
        return CURLE_URL_MALFORMAT;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(q->timeout_ms + 60000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (q->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)q->body_len);
    }
    struct curl_slist *h = build_headers(q);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    return rc;
}

int http_do(const struct req *q, struct resp *r)
{
    static CURL *c;
    if (!c && !(c = curl_easy_init()))
        return EXIT_UNREACHABLE;
    for (int i = 0; i < g_opt.nurls; i++) {
        int start = (g_opt.url_first + i) % g_opt.nurls;
        resp_free(r);
        CURLcode rc = try_one(c, g_opt.urls[start], q, r);
        if (rc == CURLE_OK) {
            g_opt.url_first = start; /* stick to the node that answered */
            return 0;
        }
        int next = unreachable(c, rc, q->method);
        if (g_opt.verbose || !next || i + 1 == g_opt.nurls)
            fprintf(stderr, "brokerctl: %s: %s\n", g_opt.urls[start],
                    curl_easy_strerror(rc));
        if (!next)
            break;
    }
    return EXIT_UNREACHABLE;
}

void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
    r->status = 0;
}

/* Prints an error answer's `error` and `code` to stderr. */
int report_error(const struct resp *r)
{
    json_error_t e;
    json_t *j = r->body ? json_loads(r->body, 0, &e) : NULL;
    const char *msg = json_string_value(json_object_get(j, "error"));
    const char *code = json_string_value(json_object_get(j, "code"));
    fprintf(stderr, "brokerctl: HTTP %ld: %s (code %s)\n", r->status,
            msg ? msg : (r->body ? r->body : ""), code ? code : "none");
    json_decref(j);
    return EXIT_SERVER;
}

/* Sends q; on a 2xx answer *out is the parsed JSON body (or NULL for an
 * empty body). Returns an exit code. */
int call_json(const struct req *q, json_t **out)
{
    struct resp r = {0};
    *out = NULL;
    int rc = http_do(q, &r);
    if (rc) {
        resp_free(&r);
        return rc;
    }
    if (r.status < 200 || r.status > 299) {
        rc = report_error(&r);
        resp_free(&r);
        return rc;
    }
    if (r.len > 0) {
        json_error_t e;
        *out = json_loads(r.body, 0, &e);
        if (!*out) {
            fprintf(stderr, "brokerctl: answer is not JSON: %s\n", e.text);
            rc = EXIT_SERVER;
        }
    }
    if (g_opt.json && rc == 0 && r.len > 0 && !q->quiet)
        printf("%s\n", r.body);
    resp_free(&r);
    return rc;
}

/* A JSON body request; body may be NULL. */
int call(const char *method, const char *path, json_t *body, json_t **out)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct req q = {.method = method, .path = path, .body = text,
                    .body_len = text ? strlen(text) : 0,
                    .content_type = text ? "application/json" : NULL};
    json_t *ans;
    int rc = call_json(&q, &ans);
    free(text);
    if (out)
        *out = ans;
    else
        json_decref(ans);
    return rc;
}

char *esc(const char *s)
{
    static CURL *c;
    if (!c)
        c = curl_easy_init();
    char *e = curl_easy_escape(c, s, 0);
    char *dup = strdup(e ? e : "");
    curl_free(e);
    return dup;
}
