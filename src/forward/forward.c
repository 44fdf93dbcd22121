/* libcurl client for node-to-node HTTP. A thread-local easy handle keeps
 * one keep-alive connection per thread (a shared connection cache is not
 * thread-safe in libcurl 7.88). */
#include "broker/forward.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/addr.h"
#include "broker/err.h"
#include "broker/secret.h"

#define FORWARD_CONNECT_TIMEOUT_MS 1000L

/* One easy handle per thread, cleaned up when the thread exits (MHD's
 * pool threads end at MHD_stop_daemon). */
static pthread_key_t handle_key;
static pthread_once_t handle_once = PTHREAD_ONCE_INIT;

static void handle_free(void *h)
{
    curl_easy_cleanup(h);
}

static void handle_key_init(void)
{
    pthread_key_create(&handle_key, handle_free);
}

struct sink {
    struct forward_response *r;
    size_t cap;
    bool too_big;
    bool sent;      /* some request bytes went to a socket */
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t len = size * n;
    char *b;

    if (s->r->len + len > FORWARD_MAX_BODY) {
        s->too_big = true;
        return 0;
    }
    if (s->r->len + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->r->len + len + 1)
            cap *= 2;
        b = realloc(s->r->body, cap);
        if (b == NULL)
            return 0;
        s->r->body = b;
        s->cap = cap;
    }
    memcpy(s->r->body + s->r->len, p, len);
    s->r->len += len;
    s->r->body[s->r->len] = '\0';
    return len;
}

/* Copy the value of header @name from line @p into @dst when it matches. */
static void take_header(const char *p, size_t len, const char *name,
                        char *dst, size_t cap)
{
    size_t nl = strlen(name), vl;

    if (len <= nl + 1 || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
        return;
    p += nl + 1;
    len -= nl + 1;
    while (len > 0 && (*p == ' ' || *p == '\t'))
        p++, len--;
    vl = len;
    while (vl > 0 && (p[vl - 1] == '\r' || p[vl - 1] == '\n' || p[vl - 1] == ' '))
        vl--;
    if (vl >= cap)
        vl = cap - 1;
    memcpy(dst, p, vl);
    dst[vl] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct forward_response *r = ((struct sink *)ud)->r;
    size_t len = size * n;

    take_header(p, len, "Content-Type", r->content_type,
                sizeof(r->content_type));
    take_header(p, len, "X-Broker-Node", r->broker_node,
                sizeof(r->broker_node));
    take_header(p, len, "X-High-Watermark", r->high_watermark,
                sizeof(r->high_watermark));
    take_header(p, len, "Idempotent-Replayed", r->replayed,
                sizeof(r->replayed));
    return len;
}

/* Written once before the threads start (forward_set_secret). */
static char cluster_secret[SECRET_MAX_LEN + 1];

void forward_set_secret(const char *secret)
{
    snprintf(cluster_secret, sizeof(cluster_secret), "%s", secret);
}

static struct curl_slist *build_headers(const struct forward_request *req)
{
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    char line[SECRET_MAX_LEN + 64];

    if (cluster_secret[0] != '\0') {
        snprintf(line, sizeof(line), FORWARD_SECRET_HEADER ": %s",
                 cluster_secret);
        h = curl_slist_append(h, line);
        memset(line, 0, sizeof(line));
    }

    if (req->content_type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        h = curl_slist_append(h, line);
    }
    if (req->forwarded_by != NULL) {
        snprintf(line, sizeof(line), "X-Forwarded-By: %s", req->forwarded_by);
        h = curl_slist_append(h, line);
    }
    if (req->idem_key != NULL && req->idem_key[0] != '\0') {
        snprintf(line, sizeof(line), "Idempotency-Key: %s", req->idem_key);
        h = curl_slist_append(h, line);
    }
    return h;
}

static CURL *handle(void)
{
    CURL *h;

    pthread_once(&handle_once, handle_key_init);
    h = pthread_getspecific(handle_key);
    if (h != NULL) {
        curl_easy_reset(h);
        return h;
    }
    h = curl_easy_init();
    if (h != NULL)
        pthread_setspecific(handle_key, h);
    return h;
}

/* Notes whether request bytes were written. libcurl retries a request
 * whose reused connection died on a fresh connection, so the final error
 * (say, connection refused) does not tell whether an earlier attempt
 * reached the peer; this does. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size,
                    void *ud)
{
    (void)h;
    (void)data;
    (void)size;
    if (type == CURLINFO_HEADER_OUT || type == CURLINFO_DATA_OUT)
        ((struct sink *)ud)->sent = true;
    return 0;
}

static atomic_bool aborting;

void forward_abort_all(void)
{
    atomic_store(&aborting, true);
}

bool forward_aborting(void)
{
    return atomic_load(&aborting);
}

/* Shutdown must not wait for a long relayed claim: stop transfers. */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                       curl_off_t un)
{
    (void)ud;
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return atomic_load(&aborting) ? 1 : 0;
}

/* Only a request that never left is safe to retry without risking a
 * second write. */
static int transport_error(const struct sink *s)
{
    return s->sent ? BRK_EFORWARD : BRK_EUNAVAILABLE;
}

int forward_call(const struct forward_request *req,
                 struct forward_response *out, char *errmsg)
{
    CURL *h = handle();
    struct sink sink = {out, 0, false, false};
    struct curl_slist *hdrs;
    char url[2048], iface[80];
    long status = 0;
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    if (h == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "curl_easy_init failed");
    /* Addresses come from the replicated member table: never call one
     * that is not a plain host:port (it would not have been stored). */
    if (!addr_http_valid(req->base))
        return brk_errf(errmsg, BRK_EUNAVAILABLE, "not a valid host:port "
                        "address");
    if ((size_t)snprintf(url, sizeof(url), "http://%s%s", req->base,
                         req->path) >= sizeof(url))
        return brk_errf(errmsg, BRK_EINVAL, "URL too long");
    hdrs = build_headers(req);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, FORWARD_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    if (req->local_ip != NULL) {
        /* "host!": a numeric address, never an interface name. */
        snprintf(iface, sizeof(iface), "host!%s", req->local_ip);
        curl_easy_setopt(h, CURLOPT_INTERFACE, iface);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, &sink);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    if (req->body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
    }
    rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status == 0) {
        forward_response_free(out);
        return brk_errf(errmsg, transport_error(&sink), "%s %s: %s", req->method,
                        url,
                        sink.too_big ? "answer too large"
                                     : curl_easy_strerror(rc));
    }
    out->status = (int)status;
    return 0;
}

void forward_response_free(struct forward_response *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
