/* Snapshot catch-up: a node restoring a snapshot whose partitions are
 * ahead of its own segments pulls the missing records from the leader
 * (GET /internal/records/{topic}/{p}?from=N), CRC-checked, page by page,
 * before it applies newer entries. Runs on the loop thread inside
 * restore, so pages are bounded and the call has a timeout. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/clock.h"
#include "broker/forward.h"
#include "broker/log.h"
#include "node_internal.h"

#define CATCHUP_PAGE_BYTES (4u << 20)
#define CATCHUP_TIMEOUT_MS 10000L

/* Decode a page of encoded records into @recs (pointers into @body). */
int catchup_decode_page(const struct forward_response *resp, uint64_t from,
                       uint64_t upto, struct record **recs, size_t *n,
                       char *errmsg)
{
    const uint8_t *p = (const uint8_t *)resp->body;
    size_t left = resp->len, used, cap = 0;
    struct record rec;

    *recs = NULL;
    *n = 0;
    while (left > 0 && from + *n < upto) {
        if (record_decode(p, left, &rec, &used) != 0)
            return brk_errf(errmsg, BRK_ECORRUPT, "bad record in page at "
                            "offset %llu", (unsigned long long)(from + *n));
        if (rec.offset != from + *n)
            return brk_errf(errmsg, BRK_ECORRUPT, "expected offset %llu, got "
                            "%llu", (unsigned long long)(from + *n),
                            (unsigned long long)rec.offset);
        if (*n == cap) {
            void *a = realloc(*recs, (cap = cap ? cap * 2 : 256) * sizeof(rec));
            if (a == NULL)
                return brk_errf(errmsg, BRK_ENOMEM, "catch-up page");
            *recs = a;
        }
        (*recs)[(*n)++] = rec;
        p += used;
        left -= used;
    }
    return 0;
}

/* The leader's log start from a 416 body, or 0 when unreadable. */
static uint64_t leader_log_start(const struct forward_response *resp)
{
    json_t *o = json_loadb(resp->body ? resp->body : "", resp->len, 0, NULL);
    json_int_t v = json_integer_value(json_object_get(o, "log_start_offset"));

    json_decref(o);
    return v > 0 ? (uint64_t)v : 0;
}

int catchup_fetch_page(const char *leader, const char *topic, uint32_t p,
                       uint64_t from, struct forward_response *resp,
                       uint64_t *moved_to, char *errmsg)
{
    char path[512];
    struct forward_request req = {
        .method = "GET", .base = leader, .path = path,
        .timeout_ms = CATCHUP_TIMEOUT_MS};
    int rv;

    snprintf(path, sizeof(path), "/internal/records/%s/%u?from=%llu"
             "&max_bytes=%u", topic, p, (unsigned long long)from,
             CATCHUP_PAGE_BYTES);
    rv = forward_call(&req, resp, errmsg);
    if (rv == 0 && resp->status == 416 &&
        (*moved_to = leader_log_start(resp)) > from) {
        /* Retention on the leader removed what we lack: start over at the
         * leader's log start (TRUNCATE entries after the snapshot do the
         * same on every node). */
        forward_response_free(resp);
        return BRK_EOFFSET_RANGE;
    }
    if (rv == 0 && resp->status != 200) {
        rv = brk_errf(errmsg, BRK_EFORWARD, "leader answered %d: %.200s",
                      resp->status, resp->body ? resp->body : "");
        forward_response_free(resp);
    }
    return rv;
}

int catchup_partition(struct node *n, const char *leader, struct topic *t,
                      uint32_t p, uint64_t upto, char *errmsg)
{
    struct partition *part = t->partitions[p];
    struct partition_stats st;
    struct forward_response resp;
    struct record *recs;
    uint64_t first, fetched = 0, moved = 0;
    size_t count;
    int rv = 0;

    partition_stats(part, &st);
    while (rv == 0 && st.next_offset < upto) {
        /* This blocks the loop thread (c-raft's restore is synchronous):
         * bound it. What was fetched stays; the refused snapshot is sent
         * again and the next restore goes on from there. */
        if (clock_mono_ns() > n->cl->catchup_deadline_ns) {
            rv = brk_errf(errmsg, BRK_ETIMEOUT, "catch-up time budget used "
                          "up at %s/%u offset %llu; continuing at the next "
                          "snapshot attempt", t->name, p,
                          (unsigned long long)st.next_offset);
            break;
        }
        rv = catchup_fetch_page(leader, t->name, p, st.next_offset, &resp,
                                &moved, errmsg);
        if (rv == BRK_EOFFSET_RANGE) {
            log_warn("catch-up of %s/%u: the leader starts at %llu now",
                     t->name, p, (unsigned long long)moved);
            rv = partition_reset(part, moved, errmsg);
            partition_stats(part, &st);
            continue;
        }
        if (rv != 0)
            break;
        rv = catchup_decode_page(&resp, st.next_offset, upto, &recs, &count,
                                 errmsg);
        if (rv == 0 && count == 0)
            rv = brk_errf(errmsg, BRK_EFORWARD, "leader sent no records");
        if (rv == 0)
            rv = partition_append(part, recs, count, &first, errmsg);
        free(recs);
        forward_response_free(&resp);
        fetched += rv == 0 ? count : 0;
        partition_stats(part, &st);
        partition_publish(part, st.next_offset);
    }
    if (fetched > 0)
        log_info("caught up %s/%u: %llu records fetched from the leader %s",
                 t->name, p, (unsigned long long)fetched, leader);
    return rv;
}
