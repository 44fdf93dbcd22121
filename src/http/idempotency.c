/* Idempotency-Key on write requests (API.md v2 "Exactly-once writes"):
 * check the header, fingerprint the request, mark replayed answers. The
 * keys themselves live in the state machine (broker/idem.h). */
#include <stdio.h>
#include <string.h>

#include "broker/idem.h"
#include "broker/metrics.h"
#include "http_internal.h"

struct fp_ctx {
    uint64_t h;
};

static enum MHD_Result fp_arg(void *cls, enum MHD_ValueKind kind,
                              const char *key, const char *value)
{
    struct fp_ctx *c = cls;

    (void)kind;
    c->h = idem_fp_update(c->h, key, strlen(key) + 1);
    value = value ? value : "";
    c->h = idem_fp_update(c->h, value, strlen(value) + 1);
    return MHD_YES;
}

/* Method, raw path, query arguments in order and body, each followed by a
 * separator so that moving bytes between them changes the hash. A
 * follower relays all four unchanged, so the leader computes the same. */
static uint64_t fingerprint(struct http_req *r)
{
    struct fp_ctx c = {IDEM_FP_INIT};

    c.h = idem_fp_update(c.h, r->method, strlen(r->method) + 1);
    c.h = idem_fp_update(c.h, r->url, strlen(r->url) + 1);
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, fp_arg, &c);
    c.h = idem_fp_update(c.h, "\n", 1);
    return idem_fp_update(c.h, r->body ? r->body : "", r->body_len);
}

bool http_idem_parse(struct http_req *r, enum MHD_Result *ret)
{
    const char *key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                  "Idempotency-Key");

    if (key == NULL)
        return true;
    if (!idem_key_valid(key)) {
        *ret = http_reply_error(r, BRK_EINVAL, "header 'Idempotency-Key' must "
                                "be 1..%d printable ASCII characters",
                                CMD_IDEM_KEY_MAX);
        return false;
    }
    snprintf(r->idem_key, sizeof(r->idem_key), "%s", key);
    r->idem_fp = fingerprint(r);
    return true;
}

void http_idem_assign(struct http_req *r, const char *key)
{
    snprintf(r->idem_key, sizeof(r->idem_key), "%s", key);
    r->idem_fp = fingerprint(r);
}

void http_idem_headers(struct http_req *r, struct MHD_Response *resp)
{
    bool local = r->work != NULL && r->work->res.replayed;

    if (r->idem_key[0] == '\0')
        return;
    /* The key the answer belongs to: the client's own, or the one this
     * node gave a relayed write (to retry with when the outcome is not
     * known). */
    MHD_add_response_header(resp, "Idempotency-Key", r->idem_key);
    if (local || r->idem_replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    if (local)
        metrics_add(MET_IDEMPOTENT_REPLAYS, 1);
}
