/* Replica thread: another node's digest of a partition, over HTTP
 * (GET /internal/digest), and comparing two digests. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/forward.h"
#include "broker/log.h"
#include "replica_internal.h"

static int http_get_json(const char *base, const char *path, json_t **out,
                         int *status, char *errmsg)
{
    struct forward_request req = {.method = "GET", .base = base,
                                  .path = path, .timeout_ms = REPLICA_CALL_TIMEOUT_MS};
    struct forward_response resp;
    int rv = forward_call(&req, &resp, errmsg);

    *out = NULL;
    if (rv != 0)
        return rv;
    *status = resp.status;
    if (resp.status == 200)
        *out = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
    forward_response_free(&resp);
    if (resp.status == 200 && *out == NULL)
        return brk_errf(errmsg, BRK_EFORWARD, "%s: undecodable digest", base);
    return 0;
}

int replica_remote_range(const char *base, struct topic *t, uint32_t p,
                         uint64_t from, uint64_t to, uint32_t step,
                         uint32_t *chunk, struct digest_range *r,
                         char *errmsg)
{
    const char *topic = t->name;
    char path[512];
    json_t *o, *crcs;
    int status = 0, rv;
    size_t i;

    memset(r, 0, sizeof(*r));
    snprintf(path, sizeof(path), "/internal/digest/%s/%u?from=%llu&to=%llu"
             "&step=%u", topic, p, (unsigned long long)from,
             (unsigned long long)to, step);
    rv = http_get_json(base, path, &o, &status, errmsg);
    if (rv != 0)
        return rv;
    if (status == 404)
        return 1;
    if (status != 200)
        return brk_errf(errmsg, BRK_EFORWARD, "%s answered %d", base, status);
    if ((uint64_t)json_integer_value(json_object_get(o, "created_index")) !=
        t->created_index) {
        json_decref(o);
        return 1; /* another incarnation of the topic, not comparable */
    }
    crcs = json_object_get(o, "crcs");
    r->from = (uint64_t)json_integer_value(json_object_get(o, "from"));
    r->to = (uint64_t)json_integer_value(json_object_get(o, "to"));
    r->step = (uint32_t)json_integer_value(json_object_get(o, "step"));
    *chunk = (uint32_t)json_integer_value(json_object_get(o, "chunk"));
    r->n = json_array_size(crcs);
    r->crcs = calloc(r->n ? r->n : 1, sizeof(*r->crcs));
    for (i = 0; r->crcs != NULL && i < r->n; i++)
        r->crcs[i] = (uint32_t)json_integer_value(json_array_get(crcs, i));
    json_decref(o);
    if (r->crcs == NULL)
        return brk_errf(errmsg, BRK_ENOMEM, "digest: out of memory");
    return 0;
}

/* End of entry @i of @r. */
static uint64_t entry_end(const struct digest_range *r, size_t i)
{
    uint64_t e = r->from + (i + 1) * (uint64_t)r->step;

    return e < r->to ? e : r->to;
}

uint64_t replica_first_difference(const struct digest_range *a,
                                  const struct digest_range *b,
                                  uint64_t *end)
{
    uint64_t s = a->from > b->from ? a->from : b->from;
    size_t i, j;

    for (; s < a->to && s < b->to; s += a->step) {
        i = (size_t)((s - a->from) / a->step);
        j = (size_t)((s - b->from) / b->step);
        if (i >= a->n || j >= b->n || entry_end(a, i) != entry_end(b, j))
            break;
        if (a->crcs[i] != b->crcs[j]) {
            *end = entry_end(a, i);
            return s;
        }
    }
    return UINT64_MAX;
}
